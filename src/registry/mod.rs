//! registry: the one HTTP core that talks to OCI distribution registries.
//!
//! Owns scheme choice (plain HTTP only for loopback and `--insecure-registry` hosts),
//! authentication (basic and bearer tokens, cached per host and scope, refreshed when they
//! expire), retries of transient failures within a budget (`retry.rs`), a cap on requests
//! in flight per host (`host.rs`), and the mapping of status codes to typed errors
//! (`http.rs`). Endpoint code lives in `manifest.rs`, `blob.rs` and `upload.rs`. Nothing here
//! prints a credential or a URL's query.
//!
//! Why archway's own client and not `oci-client` (oras-project/rust-oci-client, 0.17), whose
//! API shape it otherwise resembles:
//! - **No retries.** Every request is sent once; a 429, a 503 or a reset connection fails the
//!   operation. Here transient failures are retried within a budget, honouring `Retry-After`.
//! - **Manifests must go out as the exact bytes built.** `push_manifest` re-serialises the
//!   manifest (canonical JSON), so its digest is no longer buildx's. `push_manifest_raw` keeps
//!   the bytes, but when the registry omits `Location` (ECR does) it rebuilds the URL by
//!   stripping the tag, behind an `expect`: a push by digest panics. Nor does it check the
//!   registry's `Docker-Content-Digest` against its own, as `manifest_put` does.
//! - **No resumable uploads.** A failed chunk `PATCH` fails the whole blob; here the upload
//!   resumes from the offset the session reports (`upload.rs`).
//! - **A declined mount is an error there.** `mount_blob` expects 201; the spec's 202 (mount
//!   declined, upload into this session instead) comes back as a spec violation, the session
//!   left open. Here the blob is uploaded into that session (`blob.rs`).
//! - **No per-host limits.** Concurrency is set per call, not per registry host, and rate-limit
//!   headers are not read (`host.rs`).

pub mod auth;
mod blob;
mod host;
mod http;
mod manifest;
mod retry;
mod upload;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;

pub use auth::{Credential, CredentialSource};
pub use blob::BlobPush;
pub use host::{DEFAULT_MAX_IN_FLIGHT, RateLimit};
pub(crate) use http::error_chain;
pub use http::{
    ANSWER_TIMEOUT, MAX_ERROR_BODY, MAX_MANIFEST_BYTES, MAX_TOKEN_BYTES, STALLED_BLOB_BYTES, UPLOAD_TIMEOUT,
};
pub use manifest::Manifest;
pub use retry::RetryPolicy;
/// For the fuzz targets (`fuzz/`): the `Retry-After` reader.
#[doc(hidden)]
pub use retry::retry_after;
pub use upload::{MONOLITHIC_UPLOAD_MAX, UPLOAD_CHUNK_SIZE};

use crate::secret::Secret;
use retry::plural;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot reach registry `{registry}` at {url}: {detail}")]
    Unreachable { registry: String, url: String, detail: String },
    #[error("registry `{registry}` rejected the credentials for `{repository}` ({action}){}", detail_suffix(.detail))]
    Unauthorized { registry: String, repository: String, action: &'static str, detail: String },
    #[error("registry `{registry}` denied {action} access to `{repository}`{}", detail_suffix(.detail))]
    Denied { registry: String, repository: String, action: &'static str, detail: String },
    #[error("`{what}` was not found in registry `{registry}`")]
    NotFound { registry: String, what: String },
    #[error("registry `{registry}` answered {status} to {operation}{}", detail_suffix(.detail))]
    Status { registry: String, operation: String, status: u16, detail: String },
    /// A transient failure (429, 502, 503, 504, a reset, a timeout) outlasted the retry budget.
    #[error("registry `{registry}` still failed {operation} after {}; the last answer was {last}", plural(*.attempts, "attempt"))]
    GaveUp { registry: String, operation: String, attempts: u32, status: Option<u16>, last: String },
    #[error("registry `{registry}` returned content with digest {got} for {expected}")]
    DigestMismatch { registry: String, expected: String, got: String },
    /// The registry's `WWW-Authenticate` names a token realm on another host over plain HTTP.
    #[error(
        "registry `{registry}` asks for its credentials to be sent to `{realm}`, another host, over plain HTTP; \
         archway sends them to another host only over HTTPS"
    )]
    InsecureRealm { registry: String, realm: String, host: String },
    /// A `Docker-Content-Digest` that is not the digest of the content it came with (a
    /// manifest read) or was sent for (a blob or manifest written).
    #[error(
        "registry `{registry}` answered {operation} with `Docker-Content-Digest: {header}`, but the content is {actual}"
    )]
    HeaderDigest { registry: String, operation: String, header: String, actual: String },
    #[error("{0}")]
    Credentials(String),
}

fn detail_suffix(d: &str) -> String {
    if d.is_empty() { String::new() } else { format!(": {d}") }
}

impl RegistryError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, RegistryError::NotFound { .. })
    }

    /// The one fix to suggest, where the failure implies one.
    pub fn hint(&self) -> Option<String> {
        match self {
            RegistryError::Unreachable { registry, .. } => Some(format!(
                "check that `{registry}` is the right registry and is reachable from here; a plain-HTTP registry \
                 needs `--insecure-registry {registry}`"
            )),
            RegistryError::Unauthorized { registry, .. } | RegistryError::Denied { registry, .. } => Some(format!(
                "log in with `docker login {registry}`, or set `{}` and `{}`",
                crate::env::REGISTRY_USERNAME,
                crate::env::REGISTRY_PASSWORD
            )),
            RegistryError::InsecureRealm { host, .. } => Some(format!(
                "have the registry's token service use HTTPS; or, if `{host}` is as trusted as the registry, \
                 name it with `--insecure-registry {host}`"
            )),
            RegistryError::DigestMismatch { registry, .. } | RegistryError::HeaderDigest { registry, .. } => {
                Some(format!(
                    "`{registry}`, or a proxy or cache in front of it, changed the content; archway uses only \
                     content that matches its digest"
                ))
            }
            _ => None,
        }
    }
}

/// A request body that can be sent again on a retry.
#[derive(Clone, Debug)]
pub enum Body {
    Bytes(Bytes),
    /// A file streamed from disk, opened anew for each attempt.
    File {
        path: std::path::PathBuf,
        len: u64,
    },
}

#[derive(Clone)]
enum HostAuth {
    Basic(Secret),
    Bearer { realm: String, service: Option<String> },
}

/// A registry client shared by every operation of one run.
pub struct Client {
    http: reqwest::Client,
    insecure: Vec<String>,
    creds: CredentialSource,
    retry: RetryPolicy,
    max_in_flight: usize,
    /// Blobs up to this size go in one PUT; larger ones in chunks of `chunk_size`.
    monolithic_max: u64,
    chunk_size: u64,
    hosts: Mutex<HashMap<String, Arc<host::Host>>>,
    /// How each host asked to be authenticated (learned from its first 401).
    host_auth: Mutex<HashMap<String, HostAuth>>,
    /// Bearer tokens by (host, scopes).
    tokens: Mutex<HashMap<(String, String), Secret>>,
}

fn is_loopback(registry: &str) -> bool {
    let host = match registry.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => registry,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.parse::<std::net::IpAddr>().map(|ip| ip.is_loopback()).unwrap_or(false)
}

impl Client {
    pub fn new(creds: CredentialSource, insecure: Vec<String>) -> Self {
        let http = reqwest::Client::builder()
            .user_agent(concat!("archway/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(15))
            // Timeouts are per request (`http.rs`: `ANSWER_TIMEOUT`, `UPLOAD_TIMEOUT`): a blob
            // download may take longer than any fixed time as long as its bytes keep coming.
            // (reqwest's `read_timeout` would run while a body is still being sent.)
            // Blob GETs are redirected to storage hosts (S3, CDNs). reqwest drops
            // `Authorization` when a redirect changes host or port (tests/registry_faults.rs).
            .redirect(reqwest::redirect::Policy::limited(10))
            .build()
            .expect("the TLS backend initialises");
        Client {
            http,
            insecure,
            creds,
            retry: RetryPolicy::default(),
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            monolithic_max: MONOLITHIC_UPLOAD_MAX,
            chunk_size: UPLOAD_CHUNK_SIZE,
            hosts: Mutex::default(),
            host_auth: Mutex::default(),
            tokens: Mutex::default(),
        }
    }

    /// Replaces the retry policy (tests use millisecond delays; `Retry-After` still counts).
    pub fn with_retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Caps the requests in flight to any one registry host (at least 1).
    pub fn with_max_in_flight(mut self, per_host: usize) -> Self {
        self.max_in_flight = per_host.max(1);
        self.hosts.get_mut().unwrap().clear();
        self
    }

    /// Blobs up to `monolithic_max` bytes are uploaded in one PUT; larger ones in PATCHes of
    /// `chunk_size` bytes (at least 1), resumable after a broken one.
    pub fn with_upload_chunks(mut self, monolithic_max: u64, chunk_size: u64) -> Self {
        self.monolithic_max = monolithic_max;
        self.chunk_size = chunk_size.max(1);
        self
    }

    /// The rate-limit headers `registry` sent last, if it sends them (Docker Hub does).
    pub fn rate_limit(&self, registry: &str) -> Option<RateLimit> {
        self.hosts.lock().unwrap().get(registry)?.rate_limit()
    }

    fn host(&self, registry: &str) -> Arc<host::Host> {
        let mut hosts = self.hosts.lock().unwrap();
        hosts.entry(registry.to_string()).or_insert_with(|| Arc::new(host::Host::new(self.max_in_flight))).clone()
    }

    /// `http` for loopback hosts and hosts named by `--insecure-registry`, else `https`.
    pub fn scheme(&self, registry: &str) -> &'static str {
        if is_loopback(registry) || self.insecure.iter().any(|h| h == registry) { "http" } else { "https" }
    }

    pub(crate) fn base_url(&self, registry: &str) -> String {
        format!("{}://{}", self.scheme(registry), crate::reference::api_host(registry))
    }

    /// A `Location` made absolute against the registry it came from.
    pub(crate) fn absolute(&self, registry: &str, loc: &str) -> String {
        if loc.starts_with("http://") || loc.starts_with("https://") {
            loc.to_string()
        } else {
            format!("{}{}", self.base_url(registry), loc)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_for_loopback_and_named_hosts() {
        let c = Client::new(CredentialSource::default(), vec!["reg.internal:5000".into()]);
        assert_eq!(c.scheme("127.0.0.1:5000"), "http");
        assert_eq!(c.scheme("localhost:5000"), "http");
        assert_eq!(c.scheme("[::1]:5000"), "http");
        assert_eq!(c.scheme("reg.internal:5000"), "http");
        assert_eq!(c.scheme("reg.internal"), "https");
        assert_eq!(c.scheme("ghcr.io"), "https");
        assert_eq!(c.base_url("docker.io"), "https://registry-1.docker.io");
    }
}
