//! Registry credentials and the token dance: where a username/password comes from
//! (`ARCHWAY_REGISTRY_*`, `~/.docker/config.json`, credential helpers) and how a
//! `WWW-Authenticate` challenge is answered. Credentials live only in `Secret`s.

use std::collections::HashMap;

use crate::reference::DOCKER_HUB;
use crate::secret::Secret;

#[derive(Clone, Debug)]
pub enum Credential {
    Basic {
        username: String,
        password: Secret,
    },
    /// An identity (refresh) token from `docker login` against an OAuth registry.
    IdentityToken(Secret),
}

/// Where credentials for a registry come from, in order: the explicit override for one
/// registry, then the Docker CLI configuration and its helpers.
#[derive(Clone, Debug, Default)]
pub struct CredentialSource {
    /// (registry, credential) given through `ARCHWAY_REGISTRY_USERNAME`/`_PASSWORD`.
    pub explicit: Option<(String, Credential)>,
    /// Read `$DOCKER_CONFIG/config.json` (or `~/.docker/config.json`)? Off in tests.
    pub docker_config: bool,
}

impl CredentialSource {
    pub fn lookup(&self, registry: &str) -> Result<Option<Credential>, String> {
        if let Some((r, c)) = &self.explicit
            && r == registry
        {
            return Ok(Some(c.clone()));
        }
        if !self.docker_config {
            return Ok(None);
        }
        let server = if registry == DOCKER_HUB { "https://index.docker.io/v1/" } else { registry };
        use docker_credential::{CredentialRetrievalError as E, DockerCredential as D};
        match docker_credential::get_credential(server) {
            Ok(D::UsernamePassword(u, p)) => Ok(Some(Credential::Basic { username: u, password: Secret::new(p) })),
            Ok(D::IdentityToken(t)) => Ok(Some(Credential::IdentityToken(Secret::new(t)))),
            Err(E::NoCredentialConfigured | E::ConfigNotFound | E::ConfigReadError) => Ok(None),
            // The helper's own output may echo secrets: name the helper only.
            Err(E::HelperFailure { helper, .. }) => {
                Err(format!("credential helper `docker-credential-{helper}` failed for `{registry}`"))
            }
            Err(e) => Err(format!("could not read credentials for `{registry}` from the Docker config: {e}")),
        }
    }
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer { realm: String, params: HashMap<String, String> },
}

/// Parses `Bearer realm="…",service="…",scope="…"` or `Basic realm="…"`.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut params = HashMap::new();
    let mut s = rest.trim();
    while !s.is_empty() {
        let Some((key, after)) = s.split_once('=') else {
            break;
        };
        let key = key.trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (value, next) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find('"')?;
            (q[..end].to_string(), &q[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        params.insert(key, value);
        s = next.trim_start().trim_start_matches(',').trim_start();
    }
    let realm = params.remove("realm")?;
    Some(Challenge::Bearer { realm, params })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_challenges() {
        let c = parse_challenge(r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#).unwrap();
        match c {
            Challenge::Bearer { realm, params } => {
                assert_eq!(realm, "https://auth.docker.io/token");
                assert_eq!(params["service"], "registry.docker.io");
                assert_eq!(params["scope"], "repository:library/alpine:pull");
            }
            _ => panic!("bearer expected"),
        }
        assert_eq!(parse_challenge(r#"Basic realm="Registry Realm""#), Some(Challenge::Basic));
        assert_eq!(parse_challenge("Negotiate"), None);
        let c = parse_challenge("Bearer realm=https://x/token, service=reg").unwrap();
        assert!(
            matches!(c, Challenge::Bearer { ref realm, ref params } if realm == "https://x/token" && params["service"] == "reg")
        );
    }

    #[test]
    fn explicit_credential_only_for_its_registry() {
        let src = CredentialSource {
            explicit: Some(("ghcr.io".into(), Credential::Basic { username: "u".into(), password: Secret::new("p") })),
            docker_config: false,
        };
        assert!(src.lookup("ghcr.io").unwrap().is_some());
        assert!(src.lookup("docker.io").unwrap().is_none());
    }
}
