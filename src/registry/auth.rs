//! Registry credentials and the token dance: where a username/password comes from
//! ([`CredentialSource`]: archway's own, `~/.docker/config.json`, credential helpers), how a
//! `WWW-Authenticate` challenge is answered, and which token goes with which request.
//! Credentials live only in `Secret`s and sensitive header values; no message shows them.

use std::collections::HashMap;
use std::time::SystemTime;

use reqwest::header::HeaderValue;

use super::http::{ANSWER_TIMEOUT, MAX_TOKEN_BYTES, Outcome, Req, error_chain, error_detail, outcome, strip_query};
use super::retry::{Attempts, Transient, retry_after};
use super::{Client, HostAuth, RegistryError};
use crate::reference::docker_config_key;
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

/// Where credentials for a registry come from: the one source every command asks (`build` for
/// its own pushes and, through `builder::credentials`, for buildx; `merge`, `promote`, `inspect`,
/// `plan`), for every registry a run touches. In order: `first` (resolved by `inputs`: the
/// explicit `username`/`password`, the `registry-auth` list, the CI's own variables), then the
/// Docker CLI configuration and its helpers, then `last` (the GitHub token for ghcr.io, used only
/// when nothing else has a credential for it).
#[derive(Clone, Debug, Default)]
pub struct CredentialSource {
    /// (registry, credential), the first one for a registry wins.
    pub first: Vec<(String, Credential)>,
    /// Read `$DOCKER_CONFIG/config.json` (or `~/.docker/config.json`)? Off in tests.
    pub docker_config: bool,
    /// (registry, credential) used only when neither `first` nor the Docker config has one.
    pub last: Vec<(String, Credential)>,
}

impl CredentialSource {
    /// Only the Docker config (and its helpers).
    pub fn docker_config() -> Self {
        CredentialSource { docker_config: true, ..Default::default() }
    }

    /// Only `(registry, credential)`, no Docker config (tests).
    pub fn only(registry: &str, credential: Credential) -> Self {
        CredentialSource { first: vec![(registry.to_string(), credential)], ..Default::default() }
    }

    pub fn lookup(&self, registry: &str) -> Result<Option<Credential>, String> {
        if let Some(c) = find(&self.first, registry) {
            return Ok(Some(c));
        }
        if let Some(c) = self.docker_config_credential(registry)? {
            return Ok(Some(c));
        }
        Ok(find(&self.last, registry))
    }

    /// The credentials archway holds itself (not the Docker config's), one per registry, that
    /// buildx must be handed: every one of `first`, and those of `last` for registries the Docker
    /// config has nothing for.
    pub fn overrides(&self) -> Vec<(String, Credential)> {
        let mut out: Vec<(String, Credential)> = Vec::new();
        for (r, c) in &self.first {
            if find(&out, r).is_none() {
                out.push((r.clone(), c.clone()));
            }
        }
        for (r, c) in &self.last {
            if find(&out, r).is_none() && matches!(self.docker_config_credential(r), Ok(None)) {
                out.push((r.clone(), c.clone()));
            }
        }
        out
    }

    /// The Docker config's credential for `registry`, when it is read.
    fn docker_config_credential(&self, registry: &str) -> Result<Option<Credential>, String> {
        if !self.docker_config {
            return Ok(None);
        }
        let server = docker_config_key(registry);
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

/// The credential `entries` hold for `registry` (the first, spelled any way that names it).
fn find(entries: &[(String, Credential)], registry: &str) -> Option<Credential> {
    entries.iter().find(|(r, _)| crate::reference::same_registry(r, registry)).map(|(_, c)| c.clone())
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

enum TokenError {
    /// The token service turned the credentials down.
    Rejected(String),
    Transient(Transient),
    Other(RegistryError),
}

impl Client {
    /// The `Authorization` value for a request needing `scopes`, if one is known.
    pub(super) fn cached_auth(&self, registry: &str, scopes: &[String]) -> Option<HeaderValue> {
        let host_auth = self.host_auth.lock().unwrap().get(registry).cloned()?;
        let value = match host_auth {
            HostAuth::Basic(b) => format!("Basic {}", b.expose()),
            HostAuth::Bearer { .. } => {
                let tokens = self.tokens.lock().unwrap();
                let t = tokens.get(&(registry.to_string(), scopes.join(" ")))?;
                format!("Bearer {}", t.expose())
            }
        };
        let mut v = HeaderValue::from_str(&value).ok()?;
        v.set_sensitive(true);
        Some(v)
    }

    /// Before sending: a host known to want bearer tokens gets one for these scopes now,
    /// rather than after a 401.
    pub(super) async fn prepare_auth(&self, req: &Req<'_>, scopes: &[String]) -> Result<(), RegistryError> {
        let known = self.host_auth.lock().unwrap().get(req.registry).cloned();
        let Some(HostAuth::Bearer { realm, service }) = known else {
            return Ok(());
        };
        if self.tokens.lock().unwrap().contains_key(&(req.registry.to_string(), scopes.join(" "))) {
            return Ok(());
        }
        self.bearer_token(req, scopes, &realm, service.as_deref()).await
    }

    /// Answers a 401: learns how the host authenticates and fetches a token when it wants
    /// one. `sent` is what the rejected request carried: an expired token is replaced, unless
    /// another request already replaced it.
    pub(super) async fn authenticate(
        &self,
        req: &Req<'_>,
        scopes: &[String],
        challenge: Option<&str>,
        sent: Option<&HeaderValue>,
    ) -> Result<(), RegistryError> {
        if let Some(sent) = sent
            && self.cached_auth(req.registry, scopes).is_some_and(|now| now != *sent)
        {
            return Ok(());
        }
        match challenge.and_then(parse_challenge) {
            Some(Challenge::Basic) => {
                let cred = self.creds.lookup(req.registry).map_err(RegistryError::Credentials)?;
                let Some(Credential::Basic { username, password }) = &cred else {
                    return Err(unauthorized(req, "no username and password are configured for it".into()));
                };
                use base64::Engine as _;
                let b = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{}", password.expose()));
                self.host_auth.lock().unwrap().insert(req.registry.to_string(), HostAuth::Basic(Secret::new(b)));
                Ok(())
            }
            Some(Challenge::Bearer { realm, params }) => {
                let service = params.get("service").cloned();
                self.bearer_token(req, scopes, &realm, service.as_deref()).await?;
                self.host_auth.lock().unwrap().insert(req.registry.to_string(), HostAuth::Bearer { realm, service });
                Ok(())
            }
            None => Err(unauthorized(req, "it answered 401 without a usable `WWW-Authenticate` challenge".into())),
        }
    }

    /// Fetches and caches a token for `scopes`, retrying a token service that is busy.
    async fn bearer_token(
        &self,
        req: &Req<'_>,
        scopes: &[String],
        realm: &str,
        service: Option<&str>,
    ) -> Result<(), RegistryError> {
        let cred = self.creds.lookup(req.registry).map_err(RegistryError::Credentials)?;
        let mut attempts = Attempts::new(self.retry);
        let token = loop {
            match self.fetch_token(req.registry, realm, service, scopes, cred.as_ref()).await {
                Ok(t) => break t,
                Err(TokenError::Rejected(d)) => return Err(unauthorized(req, d)),
                Err(TokenError::Transient(t)) => {
                    attempts.retry(t, req.registry, &format!("token request for {}", req.operation)).await?
                }
                Err(TokenError::Other(e)) => return Err(e),
            }
        };
        self.tokens.lock().unwrap().insert((req.registry.to_string(), scopes.join(" ")), token);
        Ok(())
    }

    async fn fetch_token(
        &self,
        registry: &str,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
        cred: Option<&Credential>,
    ) -> Result<Secret, TokenError> {
        let status_error = |status: u16, detail: String| {
            TokenError::Other(RegistryError::Status {
                registry: registry.into(),
                operation: format!("the token request to {}", strip_query(realm)),
                status,
                detail,
            })
        };
        let mut url = url::Url::parse(realm)
            .map_err(|_| status_error(401, format!("its token realm `{}` is not a URL", strip_query(realm))))?;
        if cred.is_some() && !self.may_send_credentials(registry, &url) {
            return Err(TokenError::Other(RegistryError::InsecureRealm {
                registry: registry.into(),
                realm: strip_query(realm),
                host: realm_host(&url),
            }));
        }
        let req = match cred {
            Some(Credential::IdentityToken(t)) => {
                // OAuth2 refresh-token grant, as the Docker CLI does with identity tokens.
                let mut form = vec![
                    ("grant_type", "refresh_token".to_string()),
                    ("refresh_token", t.expose().to_string()),
                    ("scope", scopes.join(" ")),
                    ("client_id", "archway".into()),
                ];
                if let Some(s) = service {
                    form.push(("service", s.to_string()));
                }
                self.http.post(url.clone()).form(&form)
            }
            _ => {
                {
                    let mut q = url.query_pairs_mut();
                    if let Some(s) = service {
                        q.append_pair("service", s);
                    }
                    for s in scopes {
                        q.append_pair("scope", s);
                    }
                }
                let r = self.http.get(url.clone());
                match cred {
                    Some(Credential::Basic { username, password }) => r.basic_auth(username, Some(password.expose())),
                    _ => r,
                }
            }
        };
        let transient = |detail: String, connect: bool, status, retry_after| {
            TokenError::Transient(Transient { status, retry_after, detail, connect, url: strip_query(realm) })
        };
        let resp = req.header("Accept", "application/json").timeout(ANSWER_TIMEOUT).send().await.map_err(|e| {
            // No answer within `ANSWER_TIMEOUT` counts as a refused connection does.
            let connect = e.is_connect() || e.is_timeout();
            transient(error_chain(&e.without_url()), connect, None, None)
        })?;
        let status = resp.status();
        let asked = retry_after(resp.headers(), SystemTime::now());
        let body = match super::http::read_bounded(resp, MAX_TOKEN_BYTES).await {
            Ok(super::http::Bounded::Whole(b)) => b,
            Ok(super::http::Bounded::Cut(b)) if !matches!(outcome(status), Outcome::Done) => b,
            Ok(super::http::Bounded::Cut(_)) => {
                return Err(status_error(
                    status.as_u16(),
                    format!("its token answer is larger than {} MiB", MAX_TOKEN_BYTES >> 20),
                ));
            }
            Err(e) if e.is_timeout() => {
                return Err(status_error(
                    status.as_u16(),
                    format!("its token answer did not arrive in full within {} s", ANSWER_TIMEOUT.as_secs()),
                ));
            }
            Err(e) => return Err(transient(error_chain(&e.without_url()), false, None, None)),
        };
        match outcome(status) {
            Outcome::Done => {}
            Outcome::Retry => return Err(transient(error_detail(&body), false, Some(status), asked)),
            Outcome::Authenticate | Outcome::Denied => {
                return Err(TokenError::Rejected(format!("its token service answered {}", status.as_u16())));
            }
            Outcome::NotFound | Outcome::Failed => return Err(status_error(status.as_u16(), error_detail(&body))),
        }
        #[derive(serde::Deserialize)]
        struct Token {
            token: Option<String>,
            access_token: Option<String>,
        }
        let t: Token = serde_json::from_slice(&body)
            .map_err(|e| status_error(status.as_u16(), format!("unreadable token response: {e}")))?;
        t.token
            .or(t.access_token)
            .filter(|t| !t.is_empty())
            .map(Secret::new)
            .ok_or_else(|| TokenError::Rejected("its token service returned no token".into()))
    }
}

/// `HOST[:PORT]` of a realm URL, as `--insecure-registry` names it.
fn realm_host(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    }
}

impl Client {
    /// Whether a registry's credentials may go to its token realm `url`: over HTTPS; over plain
    /// HTTP only to the registry's own host (any port: reached over plain HTTP already) or to a
    /// host named by `--insecure-registry`. Being on loopback is not enough: `127.0.0.2` is
    /// another host than a registry on `127.0.0.1`.
    fn may_send_credentials(&self, registry: &str, url: &url::Url) -> bool {
        if url.scheme() == "https" {
            return true;
        }
        let api = crate::reference::api_host(registry);
        let registry_host = match api.rsplit_once(':') {
            Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => api,
        };
        let host = url.host_str().unwrap_or_default();
        host.eq_ignore_ascii_case(registry_host) || self.insecure.iter().any(|h| *h == realm_host(url) || h == host)
    }
}

fn unauthorized(req: &Req<'_>, detail: String) -> RegistryError {
    RegistryError::Unauthorized {
        registry: req.registry.into(),
        repository: req.repository.into(),
        action: if req.push { "push" } else { "pull" },
        detail,
    }
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
    fn credentials_go_to_a_plain_http_realm_only_on_the_registry_host_or_a_named_one() {
        let c = Client::new(CredentialSource::default(), vec!["auth.internal:8080".into()]);
        let ok = |registry: &str, realm: &str| c.may_send_credentials(registry, &url::Url::parse(realm).unwrap());
        assert!(ok("127.0.0.1:5000", "https://127.0.0.2/token"));
        assert!(ok("ghcr.io", "https://ghcr.io/token"));
        assert!(ok("127.0.0.1:5000", "http://127.0.0.1:5001/token"), "the registry's own host");
        assert!(ok("reg.internal:5000", "http://auth.internal:8080/token"), "named by --insecure-registry");
        assert!(!ok("127.0.0.1:5000", "http://127.0.0.2:5000/token"), "another loopback address is another host");
        assert!(!ok("reg.internal:5000", "http://evil.example/token"));
        assert!(!ok("docker.io", "http://auth.docker.io/token"));
    }

    #[test]
    fn explicit_credential_only_for_its_registry() {
        let basic = |u: &str| Credential::Basic { username: u.into(), password: Secret::new("p") };
        let user = |c: Option<Credential>| match c {
            Some(Credential::Basic { username, .. }) => Some(username),
            _ => None,
        };
        let src = CredentialSource::only("ghcr.io", basic("u"));
        assert!(src.lookup("ghcr.io").unwrap().is_some());
        assert!(src.lookup("docker.io").unwrap().is_none());
        // The first entry for a registry wins, however it is spelled; `last` only when nothing else.
        let src = CredentialSource {
            first: vec![("https://index.docker.io/v1/".into(), basic("hub")), ("docker.io".into(), basic("later"))],
            docker_config: false,
            last: vec![("docker.io".into(), basic("fallback")), ("ghcr.io".into(), basic("token"))],
        };
        assert_eq!(user(src.lookup("docker.io").unwrap()).as_deref(), Some("hub"));
        assert_eq!(user(src.lookup("ghcr.io").unwrap()).as_deref(), Some("token"));
        let over: Vec<String> = src.overrides().into_iter().map(|(r, _)| r).collect();
        assert_eq!(over, ["https://index.docker.io/v1/", "ghcr.io"]);
    }
}
