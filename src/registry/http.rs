//! http: sending one request. Endpoint code describes a request (`Req`); `send` adds auth,
//! waits for a slot on the host, answers a 401 by (re)authenticating once, retries
//! transient failures within the budget, and turns every status code into an outcome in one
//! `match` (`outcome`). Errors carry URLs without their query, never a credential.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use reqwest::header::{AUTHORIZATION, CONTENT_LENGTH, HeaderMap, HeaderName, HeaderValue, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};

use super::retry::{Attempts, Transient, retry_after};
use super::{Body, Client, RegistryError};
use crate::reference::Reference;

/// What a request sends: bytes, or a slice of a file read anew for every attempt.
#[derive(Clone, Debug)]
pub(crate) enum Payload {
    Bytes(Bytes),
    File { path: PathBuf, offset: u64, len: u64 },
}

impl From<Body> for Payload {
    fn from(b: Body) -> Self {
        match b {
            Body::Bytes(b) => Payload::Bytes(b),
            Body::File { path, len } => Payload::File { path, offset: 0, len },
        }
    }
}

impl Payload {
    pub fn len(&self) -> u64 {
        match self {
            Payload::Bytes(b) => b.len() as u64,
            Payload::File { len, .. } => *len,
        }
    }

    /// `len` bytes from `start` (both within this payload).
    pub fn slice(&self, start: u64, len: u64) -> Payload {
        match self {
            Payload::Bytes(b) => Payload::Bytes(b.slice(start as usize..(start + len) as usize)),
            Payload::File { path, offset, .. } => Payload::File { path: path.clone(), offset: offset + start, len },
        }
    }

    async fn open(&self) -> std::io::Result<reqwest::Body> {
        match self {
            Payload::Bytes(b) => Ok(b.clone().into()),
            Payload::File { path, offset, len } => {
                let f = file_slice(path, *offset, *len).await?;
                Ok(reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(f, 256 * 1024)))
            }
        }
    }
}

async fn file_slice(
    path: &std::path::Path,
    offset: u64,
    len: u64,
) -> std::io::Result<impl tokio::io::AsyncRead + use<>> {
    use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
    let mut f = tokio::fs::File::open(path).await?;
    f.seek(std::io::SeekFrom::Start(offset)).await?;
    Ok(f.take(len))
}

/// The part of a request endpoint code describes; `send` does the rest.
pub(crate) struct Req<'a> {
    pub method: Method,
    pub registry: &'a str,
    pub repository: &'a str,
    /// Path after the host (`/v2/...`), or an absolute URL (an upload `Location`).
    pub target: String,
    pub headers: HeaderMap,
    pub body: Option<Payload>,
    pub push: bool,
    /// Another repository of the same registry this request reads (a cross-repository mount):
    /// the token must allow pulling from it too.
    pub mount_from: Option<&'a str>,
    /// Says what this request does in errors: "GET manifest ghcr.io/a/b:1".
    pub operation: String,
    /// A successful answer's body is left unread for the caller to stream (`Resp::stream`).
    pub stream: bool,
}

impl<'a> Req<'a> {
    pub fn new(method: Method, r: &'a Reference, target: impl Into<String>, operation: impl Into<String>) -> Self {
        Req {
            method,
            registry: &r.registry,
            repository: &r.repository,
            target: target.into(),
            headers: HeaderMap::new(),
            body: None,
            push: false,
            mount_from: None,
            operation: operation.into(),
            stream: false,
        }
    }

    /// Needs push access (the token's scope says so).
    pub fn push(mut self) -> Self {
        self.push = true;
        self
    }

    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.insert(name, value);
        self
    }

    pub fn body(mut self, p: Payload) -> Self {
        self.body = Some(p);
        self
    }

    /// Leaves a successful answer's body unread (`Resp::stream`), for blobs too big to hold.
    pub fn streamed(mut self) -> Self {
        self.stream = true;
        self
    }

    pub fn mount_from(mut self, repository: &'a str) -> Self {
        self.mount_from = Some(repository);
        self
    }

    /// The token scopes this request needs, as one cache key and as the `scope` values of a
    /// token request.
    pub fn scopes(&self) -> Vec<String> {
        let own = if self.push { "pull,push" } else { "pull" };
        let mut s = vec![format!("repository:{}:{own}", self.repository)];
        if let Some(from) = self.mount_from {
            s.push(format!("repository:{from}:pull"));
        }
        s
    }
}

/// A registry's answer, read in full (registry answers are small; blobs arrive as bytes) unless
/// the request was `streamed`, when a success's body is left in `stream`.
pub(crate) struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub stream: Option<reqwest::Response>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)?.to_str().ok()
    }
}

/// Why one attempt failed.
pub(crate) enum Failure {
    /// Worth sending again after a wait.
    Transient(Transient),
    /// Final: sending it again would get the same answer.
    Fatal(RegistryError),
}

/// What a status code means for the request that got it. The only place that decides.
pub(super) enum Outcome {
    Done,
    /// 401: answer the challenge (first contact, or an expired token) and send once more.
    Authenticate,
    Retry,
    Denied,
    NotFound,
    Failed,
}

pub(super) fn outcome(status: StatusCode) -> Outcome {
    match status.as_u16() {
        200..=299 => Outcome::Done,
        401 => Outcome::Authenticate,
        403 => Outcome::Denied,
        404 => Outcome::NotFound,
        429 | 502 | 503 | 504 => Outcome::Retry,
        // Includes a 3xx reqwest did not follow (too many hops, or a body it cannot replay).
        _ => Outcome::Failed,
    }
}

impl Client {
    /// Sends a request, retrying transient failures until they stop or the budget is spent.
    pub(crate) async fn send(&self, req: Req<'_>) -> Result<Resp, RegistryError> {
        let mut attempts = Attempts::new(self.retry);
        loop {
            match self.send_once(&req).await {
                Ok(r) => return Ok(r),
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Transient(t)) => attempts.retry(t, req.registry, &req.operation).await?,
            }
        }
    }

    /// Sends a request once (twice when a 401 asks for fresh credentials) and says whether a
    /// failure is worth retrying. For requests that must not simply be repeated (an upload
    /// chunk), whose caller decides how to go on.
    pub(crate) async fn send_once(&self, req: &Req<'_>) -> Result<Resp, Failure> {
        let url = if req.target.starts_with("http://") || req.target.starts_with("https://") {
            req.target.clone()
        } else {
            format!("{}{}", self.base_url(req.registry), req.target)
        };
        let host = self.host(req.registry);
        let scopes = req.scopes();
        let mut reauthenticated = false;
        loop {
            self.prepare_auth(req, &scopes).await.map_err(Failure::Fatal)?;
            let sent_auth = self.cached_auth(req.registry, &scopes);
            let mut b = self.http.request(req.method.clone(), &url).headers(req.headers.clone());
            if let Some(a) = &sent_auth {
                b = b.header(AUTHORIZATION, a.clone());
            }
            if let Some(p) = &req.body {
                let body = p.open().await.map_err(|e| {
                    Failure::Fatal(RegistryError::Status {
                        registry: req.registry.into(),
                        operation: req.operation.clone(),
                        status: 0,
                        detail: format!("cannot read the content to send: {e}"),
                    })
                })?;
                b = b.header(CONTENT_LENGTH, p.len()).body(body);
            }
            // A blob upload gets as long as `UPLOAD_TIMEOUT`; a streamed download as long as its
            // bytes keep coming (`blob_get_to_file`), after headers within `ANSWER_TIMEOUT`;
            // everything else, the whole answer within `ANSWER_TIMEOUT`.
            let uploads = req.body.as_ref().is_some_and(|p| p.len() > MAX_MANIFEST_BYTES as u64);
            if uploads {
                b = b.timeout(UPLOAD_TIMEOUT);
            } else if !req.stream {
                b = b.timeout(ANSWER_TIMEOUT);
            }
            let slot = host.slot().await;
            let header_wait = if uploads { UPLOAD_TIMEOUT } else { ANSWER_TIMEOUT };
            let resp = match tokio::time::timeout(header_wait, b.send()).await {
                Ok(r) => r.map_err(|e| transport_failure(e, req.registry, &url))?,
                Err(_) => return Err(no_answer(&url)),
            };
            host.observe(req.registry, resp.headers());
            let (status, headers) = (resp.status(), resp.headers().clone());
            if req.stream && matches!(outcome(status), Outcome::Done) {
                return Ok(Resp { status, headers, body: Bytes::new(), stream: Some(resp) });
            }
            // A manifest, a config or an index is read whole, within a bound; an error's body
            // only as far as its message goes.
            let limit = if matches!(outcome(status), Outcome::Done) { MAX_MANIFEST_BYTES } else { MAX_ERROR_BODY };
            let body = match read_bounded(resp, limit).await {
                Ok(Bounded::Whole(b)) => b,
                Ok(Bounded::Cut(b)) if !matches!(outcome(status), Outcome::Done) => b,
                Ok(Bounded::Cut(_)) => {
                    return Err(Failure::Fatal(RegistryError::Status {
                        registry: req.registry.into(),
                        operation: req.operation.clone(),
                        status: status.as_u16(),
                        detail: format!(
                            "its answer is larger than {} MiB, more than any manifest, index or config archway reads",
                            MAX_MANIFEST_BYTES >> 20
                        ),
                    }));
                }
                // Headers came, the body did not: the registry is there but too slow (or
                // trickling on purpose); asking again would take as long.
                Err(e) if e.is_timeout() => {
                    return Err(Failure::Fatal(RegistryError::Status {
                        registry: req.registry.into(),
                        operation: req.operation.clone(),
                        status: status.as_u16(),
                        detail: format!(
                            "its answer did not arrive in full within {} s; a registry sends a manifest, index, \
                             config or token well within that",
                            ANSWER_TIMEOUT.as_secs()
                        ),
                    }));
                }
                // The registry answered; its body broke off (a reset, a cut connection): say
                // so, rather than "no answer", and try again.
                Err(e) => {
                    let mut failure = transport_failure(e, req.registry, &url);
                    if let Failure::Transient(t) = &mut failure {
                        t.status = Some(status);
                        t.detail = format!("its body broke off: {}", t.detail);
                    }
                    return Err(failure);
                }
            };
            drop(slot);
            let action = if req.push { "push" } else { "pull" };
            let detail = || error_detail(&body);
            return Err(Failure::Fatal(match outcome(status) {
                Outcome::Done => return Ok(Resp { status, headers, body, stream: None }),
                Outcome::Authenticate if !reauthenticated => {
                    reauthenticated = true;
                    let challenge = headers.get(WWW_AUTHENTICATE).and_then(|v| v.to_str().ok());
                    self.authenticate(req, &scopes, challenge, sent_auth.as_ref()).await.map_err(Failure::Fatal)?;
                    continue;
                }
                Outcome::Retry => {
                    let asked = retry_after(&headers, SystemTime::now());
                    if let Some(wait) = asked.filter(|w| *w <= self.retry.max_wait) {
                        host.pause(wait);
                    }
                    return Err(Failure::Transient(Transient {
                        status: Some(status),
                        retry_after: asked,
                        detail: detail(),
                        connect: false,
                        url: strip_query(&url),
                    }));
                }
                Outcome::Authenticate => RegistryError::Unauthorized {
                    registry: req.registry.into(),
                    repository: req.repository.into(),
                    action,
                    detail: detail(),
                },
                Outcome::Denied => RegistryError::Denied {
                    registry: req.registry.into(),
                    repository: req.repository.into(),
                    action,
                    detail: detail(),
                },
                Outcome::NotFound => {
                    RegistryError::NotFound { registry: req.registry.into(), what: req.operation.clone() }
                }
                Outcome::Failed => RegistryError::Status {
                    registry: req.registry.into(),
                    operation: req.operation.clone(),
                    status: status.as_u16(),
                    detail: detail(),
                },
            }));
        }
    }
}

/// The most of a manifest, index or config (any successful answer but a blob, which streams)
/// read into memory: 4 MiB, containerd's limit; distribution refuses to store larger manifests.
/// A longer answer is refused, not retried.
pub const MAX_MANIFEST_BYTES: usize = 4 << 20;
/// The most of a token service's answer read into memory.
pub const MAX_TOKEN_BYTES: usize = 1 << 20;
/// The most of an error answer read (its message is at the start).
pub const MAX_ERROR_BODY: usize = 64 << 10;
/// How long a registry has for its whole answer — headers and body — to any request but a
/// blob's upload or download: a manifest, index, config, token, `HEAD` or upload session.
/// No headers by then counts as no answer (retried as a refused connection is); headers but
/// not the whole body (a body that trickles) fails the operation at once.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one blob upload request (a whole blob up to `MONOLITHIC_UPLOAD_MAX`, or one
/// chunk) may take, answer included.
pub const UPLOAD_TIMEOUT: Duration = Duration::from_secs(600);
/// A blob download that brings fewer bytes than this in any `ANSWER_TIMEOUT` has stalled (about
/// 2 KiB/s): it is broken off and started again, within the download's attempts.
pub const STALLED_BLOB_BYTES: u64 = 64 << 10;

/// No answer at all within `ANSWER_TIMEOUT`: tried again as a refused connection is.
fn no_answer(url: &str) -> Failure {
    Failure::Transient(Transient {
        status: None,
        retry_after: None,
        detail: format!("no answer within {} s", ANSWER_TIMEOUT.as_secs()),
        connect: true,
        url: strip_query(url),
    })
}

/// A body read up to a bound.
pub(crate) enum Bounded {
    Whole(Bytes),
    /// The first `limit` bytes of a longer body (the rest is not read).
    Cut(Bytes),
}

/// Reads a response's body, at most `limit` bytes of it: a registry cannot make archway hold
/// more than that in memory.
pub(crate) async fn read_bounded(mut resp: reqwest::Response, limit: usize) -> Result<Bounded, reqwest::Error> {
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        let mut first = bytes::BytesMut::new();
        while first.len() < limit.min(MAX_ERROR_BODY)
            && let Some(chunk) = resp.chunk().await?
        {
            first.extend_from_slice(&chunk);
        }
        first.truncate(limit.min(MAX_ERROR_BODY));
        return Ok(Bounded::Cut(first.freeze()));
    }
    let mut buf = bytes::BytesMut::new();
    while let Some(chunk) = resp.chunk().await? {
        if buf.len() + chunk.len() > limit {
            buf.extend_from_slice(&chunk[..limit - buf.len()]);
            return Ok(Bounded::Cut(buf.freeze()));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Bounded::Whole(buf.freeze()))
}

/// A request that got no (complete) answer: resets, timeouts and refused connections are
/// worth another try; a request reqwest could not even build, or a redirect loop, is not.
fn transport_failure(e: reqwest::Error, registry: &str, url: &str) -> Failure {
    let e = e.without_url();
    if e.is_timeout() {
        return no_answer(url);
    }
    if e.is_builder() || e.is_redirect() {
        return Failure::Fatal(RegistryError::Unreachable {
            registry: registry.into(),
            url: strip_query(url),
            detail: error_chain(&e),
        });
    }
    Failure::Transient(Transient {
        status: None,
        retry_after: None,
        detail: error_chain(&e),
        connect: e.is_connect(),
        url: strip_query(url),
    })
}

/// The registry's error message (`errors[].code message`), or a short plain body.
pub(crate) fn error_detail(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Errs {
        errors: Vec<E>,
    }
    #[derive(serde::Deserialize)]
    struct E {
        code: Option<String>,
        message: Option<String>,
    }
    if let Ok(e) = serde_json::from_slice::<Errs>(body) {
        return e
            .errors
            .iter()
            .map(|e| {
                format!("{} {}", e.code.as_deref().unwrap_or_default(), e.message.as_deref().unwrap_or_default())
                    .trim()
                    .to_string()
            })
            .collect::<Vec<_>>()
            .join("; ");
    }
    let text = String::from_utf8_lossy(body);
    let t = text.trim();
    if t.len() <= 200 { t.to_string() } else { format!("{}…", &t[..t.floor_char_boundary(200)]) }
}

pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
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

/// A URL fit for a message: upload `_state`, signed storage URLs and tokens live in queries.
pub(crate) fn strip_query(u: &str) -> String {
    let u = u.split('#').next().unwrap_or(u);
    u.split('?').next().unwrap_or(u).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_has_one_outcome() {
        let o = |s: u16| outcome(StatusCode::from_u16(s).unwrap());
        assert!(matches!(o(200), Outcome::Done));
        assert!(matches!(o(201), Outcome::Done));
        assert!(matches!(o(202), Outcome::Done));
        assert!(matches!(o(307), Outcome::Failed));
        assert!(matches!(o(400), Outcome::Failed));
        assert!(matches!(o(401), Outcome::Authenticate));
        assert!(matches!(o(403), Outcome::Denied));
        assert!(matches!(o(404), Outcome::NotFound));
        assert!(matches!(o(416), Outcome::Failed));
        for s in [429, 502, 503, 504] {
            assert!(matches!(o(s), Outcome::Retry), "{s}");
        }
        assert!(matches!(o(500), Outcome::Failed), "a registry's own 500 is not retried");
    }

    #[test]
    fn messages_lose_queries_and_keep_registry_errors() {
        assert_eq!(
            strip_query("https://s3.example/blob?X-Amz-Signature=secret&X-Amz-Credential=key"),
            "https://s3.example/blob"
        );
        assert_eq!(strip_query("http://r/v2/a/blobs/uploads/u?_state=abc"), "http://r/v2/a/blobs/uploads/u");
        assert_eq!(
            error_detail(br#"{"errors":[{"code":"BLOB_UPLOAD_INVALID","message":"blob upload invalid"}]}"#),
            "BLOB_UPLOAD_INVALID blob upload invalid"
        );
        assert_eq!(error_detail(b" plain text \n"), "plain text");
    }

    #[test]
    fn scopes_name_the_mount_source() {
        let r: Reference = "ghcr.io/acme/app:1".parse().unwrap();
        let req = Req::new(Method::POST, &r, "/v2/acme/app/blobs/uploads/", "mount").push().mount_from("acme/base");
        assert_eq!(req.scopes(), ["repository:acme/app:pull,push", "repository:acme/base:pull"]);
        assert_eq!(Req::new(Method::GET, &r, "/", "get").scopes(), ["repository:acme/app:pull"]);
    }

    #[tokio::test]
    async fn payload_slices_of_a_file() {
        use tokio::io::AsyncReadExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        std::fs::write(&path, b"0123456789").unwrap();
        let p = Payload::from(Body::File { path, len: 10 }).slice(3, 4).slice(1, 2);
        assert_eq!(p.len(), 2);
        let Payload::File { path, offset, len } = p else { panic!("a file slice") };
        let mut got = Vec::new();
        file_slice(&path, offset, len).await.unwrap().read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"45");
        let b = Payload::Bytes(Bytes::from_static(b"abcdef")).slice(2, 3);
        assert!(matches!(b, Payload::Bytes(ref x) if &x[..] == b"cde"));
    }
}
