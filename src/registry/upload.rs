//! Blob uploads: opening a session (or mounting instead), sending the bytes in one PUT or in
//! PATCH chunks, resuming a chunked upload after a broken PATCH from the offset the session
//! reports (`GET` → `Range: 0-N`), and starting over in a new session when the old one is
//! lost. One upload is one operation with one retry budget.

use reqwest::Method;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, HeaderValue};

use super::http::{Failure, Payload, Req, Resp};
use super::retry::{Attempts, Transient};
use super::{Client, RegistryError};
use crate::reference::{Digest, Reference};

/// Blobs up to this size are uploaded in one PUT: one request, nothing to resume, and the
/// registry hashes the bytes once (a chunked upload has them hashed again at the final PUT).
pub const MONOLITHIC_UPLOAD_MAX: u64 = 32 << 20;
/// Larger blobs go in PATCHes of this size; a broken one costs at most this much again.
pub const UPLOAD_CHUNK_SIZE: u64 = 16 << 20;

/// What `POST /v2/<repo>/blobs/uploads/` did.
pub(super) enum Opened {
    /// 201 to a mount request: the blob is there.
    Mounted,
    /// 202: a session to upload into, and the smallest chunk it accepts
    /// (`OCI-Chunk-Min-Length`, 0 when unstated).
    Session { location: String, chunk_min: u64 },
}

/// How one pass through an upload session ended.
enum Step {
    Done,
    /// The session is unusable (lost, or in an unknown state): open a new one.
    Restart,
}

fn octet_stream() -> HeaderValue {
    HeaderValue::from_static("application/octet-stream")
}

fn with_digest(location: &str, digest: &Digest) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!("{location}{sep}digest={digest}")
}

/// The last byte of a `Range: 0-N` answer.
fn range_end(v: &str) -> Option<u64> {
    let v = v.trim();
    let v = v.strip_prefix("bytes=").unwrap_or(v);
    let (start, end) = v.split_once('-')?;
    if start.trim() != "0" {
        return None;
    }
    end.trim().parse().ok()
}

/// The registry's `Docker-Content-Digest` for a finished upload, when it sends one, must be the
/// digest sent: another means it stored other bytes.
fn stored_as(r: &Reference, digest: &Digest, resp: &Resp, operation: &str) -> Result<(), RegistryError> {
    match super::manifest::header_digest(&resp.headers) {
        Some(got) if got != *digest => Err(RegistryError::HeaderDigest {
            registry: r.registry.clone(),
            operation: operation.to_string(),
            header: got.to_string(),
            actual: digest.to_string(),
        }),
        _ => Ok(()),
    }
}

impl Client {
    /// Opens an upload session in `r`'s repository, or mounts `mount`'s blob from its
    /// repository instead when the registry can.
    pub(super) async fn upload_open(
        &self,
        r: &Reference,
        mount: Option<(&Reference, &Digest)>,
    ) -> Result<Opened, RegistryError> {
        let (target, operation) = match mount {
            Some((from, d)) => (
                format!("/v2/{}/blobs/uploads/?mount={d}&from={}", r.repository, from.repository),
                format!("mount blob {d} from {} into {}", from.name(), r.name()),
            ),
            None => (format!("/v2/{}/blobs/uploads/", r.repository), format!("start blob upload to {}", r.name())),
        };
        let mut req = Req::new(Method::POST, r, target, operation.clone())
            .push()
            .header(CONTENT_LENGTH, HeaderValue::from_static("0"));
        if let Some((from, _)) = mount {
            req = req.mount_from(&from.repository);
        }
        let resp = self.send(req).await?;
        let unexpected = |detail: &str| RegistryError::Status {
            registry: r.registry.clone(),
            operation: operation.clone(),
            status: resp.status.as_u16(),
            detail: detail.into(),
        };
        match resp.status.as_u16() {
            201 if mount.is_some() => Ok(Opened::Mounted),
            202 => {
                let location =
                    resp.header("location").ok_or_else(|| unexpected("no `Location` header in the answer"))?;
                let chunk_min = resp.header("oci-chunk-min-length").and_then(|v| v.trim().parse().ok()).unwrap_or(0);
                Ok(Opened::Session { location: self.absolute(&r.registry, location), chunk_min })
            }
            _ => Err(unexpected("expected 202 Accepted and an upload session")),
        }
    }

    /// Cancels an upload session, in one attempt: a courtesy, as registries expire abandoned
    /// sessions anyway.
    pub(super) async fn upload_cancel(&self, r: &Reference, location: String) {
        let req = Req::new(Method::DELETE, r, location, format!("cancel blob upload to {}", r.name())).push();
        let _ = self.send_once(&req).await;
    }

    /// Uploads `data` as blob `digest` of `r`'s repository, into `session` if one is open.
    pub(super) async fn upload(
        &self,
        r: &Reference,
        digest: &Digest,
        data: Payload,
        mut session: Option<(String, u64)>,
    ) -> Result<(), RegistryError> {
        let operation = format!("upload blob {}@{digest}", r.name());
        let mut attempts = Attempts::new(self.retry);
        loop {
            let (location, chunk_min) = match session.take() {
                Some(s) => s,
                None => match self.upload_open(r, None).await? {
                    Opened::Session { location, chunk_min } => (location, chunk_min),
                    Opened::Mounted => return Ok(()),
                },
            };
            let step = if data.len() <= self.monolithic_max {
                self.upload_whole(r, digest, &data, &location, &operation, &mut attempts).await?
            } else {
                let chunk = self.chunk_size.max(chunk_min);
                self.upload_chunks(r, digest, &data, location, chunk, &operation, &mut attempts).await?
            };
            if let Step::Done = step {
                return Ok(());
            }
        }
    }

    /// One PUT with the whole blob. After a failure the session is not reused: it may hold
    /// part of the bytes.
    async fn upload_whole(
        &self,
        r: &Reference,
        digest: &Digest,
        data: &Payload,
        location: &str,
        operation: &str,
        attempts: &mut Attempts,
    ) -> Result<Step, RegistryError> {
        let req = Req::new(Method::PUT, r, with_digest(location, digest), operation)
            .push()
            .header(CONTENT_TYPE, octet_stream())
            .body(data.clone());
        match self.send_once(&req).await {
            Ok(resp) => stored_as(r, digest, &resp, operation).map(|()| Step::Done),
            Err(Failure::Fatal(e)) => Err(e),
            Err(Failure::Transient(t)) => {
                let unanswered = t.status.is_none();
                attempts.retry(t, &r.registry, operation).await?;
                // Without an answer, the PUT may have landed all the same.
                if unanswered && self.blob_exists(r, digest).await? { Ok(Step::Done) } else { Ok(Step::Restart) }
            }
        }
    }

    /// PATCHes of `chunk` bytes with `Content-Range`, then a PUT with the digest. A broken
    /// PATCH is not sent again blindly: the session says how much it holds, and the upload
    /// goes on from there.
    #[allow(clippy::too_many_arguments)]
    async fn upload_chunks(
        &self,
        r: &Reference,
        digest: &Digest,
        data: &Payload,
        mut location: String,
        chunk: u64,
        operation: &str,
        attempts: &mut Attempts,
    ) -> Result<Step, RegistryError> {
        let len = data.len();
        let mut offset = 0;
        loop {
            let finishing = offset >= len;
            let req = if finishing {
                Req::new(Method::PUT, r, with_digest(&location, digest), operation)
                    .push()
                    .header(CONTENT_LENGTH, HeaderValue::from_static("0"))
            } else {
                let n = chunk.min(len - offset);
                let range = HeaderValue::from_str(&format!("{offset}-{}", offset + n - 1)).expect("digits and a dash");
                Req::new(Method::PATCH, r, location.clone(), operation)
                    .push()
                    .header(CONTENT_TYPE, octet_stream())
                    .header(CONTENT_RANGE, range)
                    .body(data.slice(offset, n))
            };
            let failure = match self.send_once(&req).await {
                Ok(resp) if finishing => return stored_as(r, digest, &resp, operation).map(|()| Step::Done),
                Ok(resp) => {
                    if let Some(l) = resp.header("location") {
                        location = self.absolute(&r.registry, l);
                    }
                    let sent = offset + chunk.min(len - offset);
                    // The registry's count wins over ours.
                    offset = resp.header("range").and_then(range_end).map_or(sent, |end| end + 1).min(len);
                    continue;
                }
                // The session and this client disagree on the offset: ask the session.
                Err(Failure::Fatal(RegistryError::Status { status: 416, detail, .. })) => Transient {
                    status: Some(reqwest::StatusCode::RANGE_NOT_SATISFIABLE),
                    retry_after: None,
                    detail,
                    connect: false,
                    url: super::http::strip_query(&location),
                },
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Transient(t)) => t,
            };
            let unanswered = failure.status.is_none();
            attempts.retry(failure, &r.registry, operation).await?;
            if finishing && unanswered && self.blob_exists(r, digest).await? {
                return Ok(Step::Done);
            }
            match self.upload_status(r, &location).await {
                Ok((l, held)) => {
                    tracing::debug!(operation, held, "resuming the upload");
                    location = l;
                    offset = held.min(len);
                }
                Err(e) if e.is_not_found() => return Ok(Step::Restart),
                Err(e) => return Err(e),
            }
        }
    }

    /// How many bytes an upload session holds (`Range: 0-N`), and where the next ones go.
    async fn upload_status(&self, r: &Reference, location: &str) -> Result<(String, u64), RegistryError> {
        let req = Req::new(Method::GET, r, location, format!("GET blob upload status in {}", r.name())).push();
        let resp = self.send(req).await?;
        let next = resp.header("location").map_or_else(|| location.to_string(), |l| self.absolute(&r.registry, l));
        // Distribution answers `0-0` for an empty session; a one-byte prefix is sent again.
        let held = match resp.header("range").and_then(range_end) {
            Some(end) if end > 0 => end + 1,
            _ => 0,
        };
        Ok((next, held))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_digest_queries() {
        assert_eq!(range_end("0-99"), Some(99));
        assert_eq!(range_end("bytes=0-1048575"), Some(1048575));
        assert_eq!(range_end("0-0"), Some(0));
        assert_eq!(range_end("5-9"), None, "an upload always holds a prefix");
        assert_eq!(range_end("junk"), None);
        let d = Digest::of(b"x");
        assert_eq!(
            with_digest("http://r/v2/a/blobs/uploads/u", &d),
            format!("http://r/v2/a/blobs/uploads/u?digest={d}")
        );
        assert_eq!(with_digest("/u?_state=s", &d), format!("/u?_state=s&digest={d}"));
    }
}
