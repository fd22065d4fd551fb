//! registry: the one HTTP core that talks to OCI distribution registries.
//!
//! Owns scheme choice (plain HTTP only for loopback and `--insecure-registry` hosts),
//! authentication (basic and bearer tokens, cached per host and scope), retries of
//! transient failures, and the mapping of status codes to typed errors. Endpoint code
//! lives in `manifest.rs` and `blob.rs`. Nothing here prints a credential.

pub mod auth;
mod blob;
mod manifest;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};

pub use auth::{Credential, CredentialSource};
pub use manifest::Manifest;

use crate::secret::Secret;

/// How many times one request is tried before its error is final.
const MAX_ATTEMPTS: u32 = 4;
/// First backoff delay; doubles each attempt.
const BACKOFF_START: Duration = Duration::from_millis(250);
/// Longest wait archway accepts from a `Retry-After` header.
const BACKOFF_CAP: Duration = Duration::from_secs(30);

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
    #[error("registry `{registry}` returned content with digest {got} for {expected}")]
    DigestMismatch { registry: String, expected: String, got: String },
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

impl Body {
    async fn to_reqwest(&self) -> std::io::Result<(reqwest::Body, u64)> {
        match self {
            Body::Bytes(b) => Ok((b.clone().into(), b.len() as u64)),
            Body::File { path, len } => {
                let f = tokio::fs::File::open(path).await?;
                Ok((reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(f, 256 * 1024)), *len))
            }
        }
    }
}

/// The part of a request endpoint code describes; `send` does the rest.
pub(crate) struct Req<'a> {
    pub method: Method,
    pub registry: &'a str,
    pub repository: &'a str,
    /// Path after the host (`/v2/...`), or an absolute URL (an upload `Location`).
    pub target: String,
    pub headers: HeaderMap,
    pub body: Option<Body>,
    pub push: bool,
    /// Says what this request does in errors: "GET manifest ghcr.io/a/b:1".
    pub operation: String,
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
    /// How each host asked to be authenticated (learned from its first 401).
    host_auth: Mutex<HashMap<String, HostAuth>>,
    /// Bearer tokens by (host, scope).
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
            .timeout(Duration::from_secs(600))
            .build()
            .expect("the TLS backend initialises");
        Client { http, insecure, creds, host_auth: Mutex::default(), tokens: Mutex::default() }
    }

    /// `http` for loopback hosts and hosts named by `--insecure-registry`, else `https`.
    pub fn scheme(&self, registry: &str) -> &'static str {
        if is_loopback(registry) || self.insecure.iter().any(|h| h == registry) { "http" } else { "https" }
    }

    pub(crate) fn base_url(&self, registry: &str) -> String {
        let host = if registry == crate::reference::DOCKER_HUB { "registry-1.docker.io" } else { registry };
        format!("{}://{}", self.scheme(registry), host)
    }

    fn scope(repository: &str, push: bool) -> String {
        if push { format!("repository:{repository}:pull,push") } else { format!("repository:{repository}:pull") }
    }

    fn cached_auth(&self, registry: &str, scope: &str) -> Option<HeaderValue> {
        let host_auth = self.host_auth.lock().unwrap().get(registry).cloned()?;
        let value = match host_auth {
            HostAuth::Basic(b) => format!("Basic {}", b.expose()),
            HostAuth::Bearer { .. } => {
                let tokens = self.tokens.lock().unwrap();
                let t = tokens.get(&(registry.to_string(), scope.to_string()))?;
                format!("Bearer {}", t.expose())
            }
        };
        let mut v = HeaderValue::from_str(&value).ok()?;
        v.set_sensitive(true);
        Some(v)
    }

    /// Answers a 401 challenge: learns the scheme, fetches a token when needed.
    async fn authenticate(
        &self,
        registry: &str,
        repository: &str,
        push: bool,
        challenge: Option<&str>,
    ) -> Result<(), RegistryError> {
        let action = if push { "push" } else { "pull" };
        let unauthorized = |detail: String| RegistryError::Unauthorized {
            registry: registry.into(),
            repository: repository.into(),
            action,
            detail,
        };
        let cred = self.creds.lookup(registry).map_err(RegistryError::Credentials)?;
        let challenge = challenge.and_then(auth::parse_challenge);
        let host_auth = match challenge {
            Some(auth::Challenge::Basic) => {
                let Some(Credential::Basic { username, password }) = &cred else {
                    return Err(unauthorized("no username and password are configured for it".into()));
                };
                use base64::Engine as _;
                let b = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{}", password.expose()));
                HostAuth::Basic(Secret::new(b))
            }
            Some(auth::Challenge::Bearer { realm, params }) => {
                HostAuth::Bearer { realm, service: params.get("service").cloned() }
            }
            None => {
                return Err(unauthorized("it answered 401 without a usable `WWW-Authenticate` challenge".into()));
            }
        };
        if let HostAuth::Bearer { realm, service } = &host_auth {
            let scope = Self::scope(repository, push);
            let token = self.fetch_token(registry, realm, service.as_deref(), &scope, cred.as_ref()).await.map_err(
                |e| match e {
                    TokenError::Rejected(d) => unauthorized(d),
                    TokenError::Other(e) => e,
                },
            )?;
            self.tokens.lock().unwrap().insert((registry.to_string(), scope), token);
        }
        self.host_auth.lock().unwrap().insert(registry.to_string(), host_auth);
        Ok(())
    }

    async fn fetch_token(
        &self,
        registry: &str,
        realm: &str,
        service: Option<&str>,
        scope: &str,
        cred: Option<&Credential>,
    ) -> Result<Secret, TokenError> {
        let mut url = url::Url::parse(realm).map_err(|_| {
            TokenError::Other(RegistryError::Status {
                registry: registry.into(),
                operation: "token request".into(),
                status: 401,
                detail: format!("its token realm `{realm}` is not a URL"),
            })
        })?;
        let mut req = match cred {
            Some(Credential::IdentityToken(t)) => {
                // OAuth2 refresh-token grant, as the Docker CLI does with identity tokens.
                let mut form = vec![
                    ("grant_type", "refresh_token".to_string()),
                    ("refresh_token", t.expose().to_string()),
                    ("scope", scope.to_string()),
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
                    q.append_pair("scope", scope);
                }
                let r = self.http.get(url.clone());
                match cred {
                    Some(Credential::Basic { username, password }) => r.basic_auth(username, Some(password.expose())),
                    _ => r,
                }
            }
        };
        req = req.header("Accept", "application/json");
        let resp = req.send().await.map_err(|e| {
            TokenError::Other(RegistryError::Unreachable {
                registry: registry.into(),
                url: strip_query(&url),
                detail: error_chain(&e),
            })
        })?;
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(TokenError::Rejected(format!("its token service answered {}", status.as_u16())));
        }
        if !status.is_success() {
            url.set_query(None);
            return Err(TokenError::Other(RegistryError::Status {
                registry: registry.into(),
                operation: format!("token request to {url}"),
                status: status.as_u16(),
                detail: String::new(),
            }));
        }
        #[derive(serde::Deserialize)]
        struct Token {
            token: Option<String>,
            access_token: Option<String>,
        }
        let t: Token = resp.json().await.map_err(|e| {
            TokenError::Other(RegistryError::Status {
                registry: registry.into(),
                operation: "token request".into(),
                status: status.as_u16(),
                detail: format!("unreadable token response: {e}"),
            })
        })?;
        t.token
            .or(t.access_token)
            .filter(|t| !t.is_empty())
            .map(Secret::new)
            .ok_or_else(|| TokenError::Rejected("its token service returned no token".into()))
    }

    /// Sends one request: adds auth, answers one 401 challenge, retries transient failures.
    pub(crate) async fn send(&self, req: Req<'_>) -> Result<reqwest::Response, RegistryError> {
        let url = if req.target.starts_with("http://") || req.target.starts_with("https://") {
            req.target.clone()
        } else {
            format!("{}{}", self.base_url(req.registry), req.target)
        };
        let scope = Self::scope(req.repository, req.push);
        let mut authenticated_once = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut builder = self.http.request(req.method.clone(), &url).headers(req.headers.clone());
            if let Some(a) = self.cached_auth(req.registry, &scope) {
                builder = builder.header(AUTHORIZATION, a);
            }
            if let Some(b) = &req.body {
                let (body, len) = b.to_reqwest().await.map_err(|e| RegistryError::Status {
                    registry: req.registry.into(),
                    operation: req.operation.clone(),
                    status: 0,
                    detail: format!("cannot read the content to send: {e}"),
                })?;
                builder = builder.header(reqwest::header::CONTENT_LENGTH, len).body(body);
            }
            let result = builder.send().await;
            let retry_after = match &result {
                Err(e) if attempt < MAX_ATTEMPTS && (e.is_connect() || e.is_timeout() || e.is_request()) => Some(None),
                Err(e) => {
                    return Err(RegistryError::Unreachable {
                        registry: req.registry.into(),
                        url: strip_query_str(&url),
                        detail: format!("{} (after {attempt} attempts)", error_chain(e)),
                    });
                }
                Ok(r) if r.status() == StatusCode::UNAUTHORIZED && !authenticated_once => {
                    authenticated_once = true;
                    let challenge = r.headers().get(WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()).map(String::from);
                    self.authenticate(req.registry, req.repository, req.push, challenge.as_deref()).await?;
                    attempt -= 1;
                    continue;
                }
                Ok(r) if attempt < MAX_ATTEMPTS && matches!(r.status().as_u16(), 429 | 502 | 503 | 504) => {
                    Some(retry_after(r.headers()))
                }
                Ok(_) => None,
            };
            match retry_after {
                Some(wait) => {
                    let backoff = BACKOFF_START * 2u32.pow(attempt - 1);
                    let wait = wait.unwrap_or(backoff).min(BACKOFF_CAP);
                    tracing::debug!(operation = %req.operation, attempt, ?wait, "retrying");
                    tokio::time::sleep(wait).await;
                }
                None => {
                    let resp = result.expect("errors returned above");
                    return self.check_status(resp, &req).await;
                }
            }
        }
    }

    async fn check_status(&self, resp: reqwest::Response, req: &Req<'_>) -> Result<reqwest::Response, RegistryError> {
        let status = resp.status();
        if status.is_success() || status.is_redirection() {
            return Ok(resp);
        }
        let action = if req.push { "push" } else { "pull" };
        let detail = error_body(resp).await;
        Err(match status {
            StatusCode::UNAUTHORIZED => RegistryError::Unauthorized {
                registry: req.registry.into(),
                repository: req.repository.into(),
                action,
                detail,
            },
            StatusCode::FORBIDDEN => RegistryError::Denied {
                registry: req.registry.into(),
                repository: req.repository.into(),
                action,
                detail,
            },
            StatusCode::NOT_FOUND => {
                RegistryError::NotFound { registry: req.registry.into(), what: req.operation.clone() }
            }
            s => RegistryError::Status {
                registry: req.registry.into(),
                operation: req.operation.clone(),
                status: s.as_u16(),
                detail,
            },
        })
    }
}

enum TokenError {
    Rejected(String),
    Other(RegistryError),
}

/// Seconds or an HTTP date, as `Retry-After` allows.
fn retry_after(h: &HeaderMap) -> Option<Duration> {
    let v = h.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate_parse(v)?;
    Some(when.duration_since(std::time::SystemTime::now()).unwrap_or_default())
}

/// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
fn httpdate_parse(s: &str) -> Option<std::time::SystemTime> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    let [_, day, mon, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let m = months.iter().position(|x| x == mon)? as i64 + 1;
    let (d, y): (i64, i64) = (day.parse().ok()?, year.parse().ok()?);
    let t: Vec<i64> = time.split(':').map(|x| x.parse().ok()).collect::<Option<_>>()?;
    let [hh, mm, ss] = t.as_slice() else {
        return None;
    };
    // Days from civil (Howard Hinnant's algorithm).
    let (y2, m2) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * m2 + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    let secs = days * 86400 + hh * 3600 + mm * 60 + ss;
    Some(std::time::UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

/// The registry's error message (`errors[0].message`), or a short plain body.
async fn error_body(resp: reqwest::Response) -> String {
    let text = resp.text().await.unwrap_or_default();
    #[derive(serde::Deserialize)]
    struct Errs {
        errors: Vec<E>,
    }
    #[derive(serde::Deserialize)]
    struct E {
        code: Option<String>,
        message: Option<String>,
    }
    if let Ok(e) = serde_json::from_str::<Errs>(&text) {
        return e
            .errors
            .iter()
            .map(|e| {
                format!("{} {}", e.code.clone().unwrap_or_default(), e.message.clone().unwrap_or_default())
                    .trim()
                    .to_string()
            })
            .collect::<Vec<_>>()
            .join("; ");
    }
    let t = text.trim();
    if t.len() <= 200 { t.to_string() } else { format!("{}…", &t[..t.floor_char_boundary(200)]) }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

fn strip_query(u: &url::Url) -> String {
    let mut u = u.clone();
    u.set_query(None);
    u.to_string()
}

fn strip_query_str(u: &str) -> String {
    u.split('?').next().unwrap_or(u).to_string()
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

    #[test]
    fn retry_after_seconds_and_date() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("3"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert("retry-after", HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"));
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        assert_eq!(
            httpdate_parse("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(std::time::UNIX_EPOCH + Duration::from_secs(784111777))
        );
    }
}
