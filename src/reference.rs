//! Image references (`registry/repository:tag@digest`) and content digests.
//!
//! Parsed and normalised as the Docker CLI does (`alpine` → `docker.io/library/alpine`). Also
//! owns Docker Hub's several names ([`canonical_registry`] and the hosts it stands for). Pure:
//! no I/O.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// Docker Hub, as archway names it in references.
pub const DOCKER_HUB: &str = "docker.io";
/// The host that serves Docker Hub's registry API.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";
/// The key of Docker Hub's credentials in a Docker config (`auths`, `credHelpers`) and for
/// credential helpers.
pub const DOCKER_HUB_CONFIG_KEY: &str = "https://index.docker.io/v1/";
/// Docker Hub's other names, each meaning [`DOCKER_HUB`].
const DOCKER_HUB_ALIASES: &[&str] = &["index.docker.io", DOCKER_HUB_API];

/// The name archway uses for a registry host: Docker Hub's aliases (`index.docker.io`,
/// `registry-1.docker.io`) become `docker.io`; any other host is returned as given.
pub fn canonical_registry(host: &str) -> &str {
    if DOCKER_HUB_ALIASES.contains(&host) { DOCKER_HUB } else { host }
}

/// Whether two spellings name one registry: case, a URL scheme, a trailing `/` (and a Docker
/// config key's `/v1/`) and Docker Hub's several names do not matter.
pub fn same_registry(a: &str, b: &str) -> bool {
    fn norm(r: &str) -> String {
        let r = r.trim().to_ascii_lowercase();
        let r = r.trim_start_matches("https://").trim_start_matches("http://").trim_end_matches('/');
        let r = r.strip_suffix("/v1").unwrap_or(r);
        canonical_registry(r).into()
    }
    norm(a) == norm(b)
}

/// The host to send registry API requests for `registry` to (`registry-1.docker.io` for Docker Hub).
pub fn api_host(registry: &str) -> &str {
    if canonical_registry(registry) == DOCKER_HUB { DOCKER_HUB_API } else { registry }
}

/// The key for `registry`'s credentials in a Docker config and for credential helpers (the
/// Docker CLI still keys Docker Hub by its v1 index URL).
pub fn docker_config_key(registry: &str) -> &str {
    if canonical_registry(registry) == DOCKER_HUB { DOCKER_HUB_CONFIG_KEY } else { registry }
}

/// A content digest, `sha256:<64 hex>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("`{0}` is not a digest; expected `sha256:` followed by 64 lowercase hex digits")]
    Digest(String),
    #[error(
        "`{input}` is not a valid image reference: {why}; expected `[registry/]repository[:tag][@sha256:…]`, e.g. `ghcr.io/acme/app:1.2`"
    )]
    Reference { input: String, why: String },
}

impl Digest {
    pub fn of(bytes: &[u8]) -> Self {
        Digest(format!("sha256:{}", hex::encode(Sha256::digest(bytes))))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The hex part, used as a blob file name in an OCI layout.
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }
}

impl FromStr for Digest {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex = s.strip_prefix("sha256:").ok_or_else(|| ReferenceError::Digest(s.into()))?;
        if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            Ok(Digest(s.to_string()))
        } else {
            Err(ReferenceError::Digest(s.into()))
        }
    }
}

impl TryFrom<String> for Digest {
    type Error = ReferenceError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> String {
        d.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An image reference with its registry made explicit.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Registry host as the user names it (`docker.io`, `ghcr.io`, `127.0.0.1:5000`).
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

impl Reference {
    /// `registry/repository`, the name buildx pushes by digest to.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// What to put in a manifest URL: the digest if any, else the tag, else `latest`.
    pub fn selector(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".into(),
        }
    }

    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference { tag: None, digest: Some(digest), ..self.clone() }
    }

    pub fn with_tag(&self, tag: &str) -> Reference {
        Reference { tag: Some(tag.into()), digest: None, ..self.clone() }
    }

    /// The repository alone: no tag, no digest.
    pub fn repository_only(&self) -> Reference {
        Reference { tag: None, digest: None, ..self.clone() }
    }

    pub fn same_repository(&self, other: &Reference) -> bool {
        self.registry == other.registry && self.repository == other.repository
    }
}

fn valid_path_component(c: &str) -> bool {
    // [a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*
    if c.is_empty() {
        return false;
    }
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter().all(|&x| x.is_ascii_alphanumeric() || x == b'_' || x == b'.' || x == b'-')
}

fn valid_host(h: &str) -> bool {
    let (host, port) = match h.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || h.starts_with('[') => (host, Some(port)),
        _ => (h, None),
    };
    let host_ok = if host.starts_with('[') && host.ends_with(']') {
        host[1..host.len() - 1].parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !host.is_empty()
            && host.split('.').all(|l| {
                !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') && !l.starts_with('-')
            })
    };
    host_ok && port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()))
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| ReferenceError::Reference { input: input.into(), why: why.into() };
        let s = input.trim();
        if s.is_empty() {
            return Err(bad("it is empty"));
        }
        if s.contains("://") {
            return Err(bad("it has a URL scheme; drop the `https://`"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                (r, Some(d.parse::<Digest>().map_err(|_| bad("the part after `@` is not a sha256 digest"))?))
            }
            None => (s, None),
        };
        // A tag is after the last ':' that comes after the last '/'.
        let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(t) = tag
            && !valid_tag(t)
        {
            return Err(bad(
                "the tag may hold only letters, digits, `_`, `.` and `-` (at most 128, not starting with `.` or `-`)",
            ));
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" || first.starts_with('[') =>
            {
                if !valid_host(first) {
                    return Err(bad("the registry host is not a valid host[:port]"));
                }
                (first.to_string(), rest.to_string())
            }
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        let registry = canonical_registry(&registry).to_string();
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        if repository.is_empty() || !repository.split('/').all(valid_path_component) {
            return Err(bad(
                "the repository must be lowercase letters, digits and separators (`.`, `_`, `__`, `-`) between `/`",
            ));
        }
        if registry.len() + 1 + repository.len() > 255 {
            return Err(bad("the name is longer than 255 characters"));
        }
        Ok(Reference { registry, repository, tag: tag.map(String::from), digest })
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalises() {
        let cases = [
            ("alpine", "docker.io", "library/alpine", None),
            ("alpine:3.20", "docker.io", "library/alpine", Some("3.20")),
            ("acme/app:v1", "docker.io", "acme/app", Some("v1")),
            ("ghcr.io/acme/app:1.2.3", "ghcr.io", "acme/app", Some("1.2.3")),
            ("127.0.0.1:5000/x/y:latest", "127.0.0.1:5000", "x/y", Some("latest")),
            ("localhost/app", "localhost", "app", None),
            ("localhost:5000/a/b/c", "localhost:5000", "a/b/c", None),
            ("index.docker.io/library/busybox", "docker.io", "library/busybox", None),
            ("registry.gitlab.com/g/sub/p:feature-x", "registry.gitlab.com", "g/sub/p", Some("feature-x")),
            ("my-registry.local:8443/a__b/c.d-e", "my-registry.local:8443", "a__b/c.d-e", None),
        ];
        for (input, reg, repo, tag) in cases {
            let r: Reference = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!((r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()), (reg, repo, tag), "{input}");
        }
        let d = "sha256:".to_string() + &"a".repeat(64);
        let r: Reference = format!("ghcr.io/a/b:t@{d}").parse().unwrap();
        assert_eq!(r.digest.as_ref().unwrap().as_str(), d);
        assert_eq!(r.selector(), d);
        assert_eq!(r.to_string(), format!("ghcr.io/a/b:t@{d}"));
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "UPPER/case",
            "app:",
            "app:-x",
            "a//b",
            "https://ghcr.io/a",
            "app@sha256:123",
            "a/b:t t",
            "-a/b",
            "ghcr.io/",
            "a/b:",
        ] {
            let e = bad.parse::<Reference>();
            assert!(e.is_err(), "{bad:?} should be rejected, got {e:?}");
        }
        let msg = "Acme/App".parse::<Reference>().unwrap_err().to_string();
        assert!(msg.contains("`Acme/App`") && msg.contains("lowercase"), "{msg}");
    }

    #[test]
    fn docker_hub_names() {
        for alias in ["docker.io", "index.docker.io", "registry-1.docker.io"] {
            assert_eq!(canonical_registry(alias), DOCKER_HUB);
            assert_eq!(api_host(alias), "registry-1.docker.io");
            assert_eq!(docker_config_key(alias), "https://index.docker.io/v1/");
        }
        assert_eq!(canonical_registry("ghcr.io"), "ghcr.io");
        assert_eq!(api_host("ghcr.io"), "ghcr.io");
        assert_eq!(docker_config_key("127.0.0.1:5000"), "127.0.0.1:5000");
    }

    #[test]
    fn digest_of_bytes() {
        assert_eq!(Digest::of(b"").as_str(), "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert!("sha256:ABC".parse::<Digest>().is_err());
    }
}
