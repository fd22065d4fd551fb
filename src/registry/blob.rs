//! Blob endpoints: get, exists, mount, push (already present, mounted from another
//! repository, or uploaded), and the push-access check (an upload opened and cancelled, so
//! nothing is written). How the bytes of an upload travel is `upload.rs`.

use bytes::Bytes;
use reqwest::Method;

use super::http::{ANSWER_TIMEOUT, Req, STALLED_BLOB_BYTES};
use super::upload::Opened;
use super::{Body, Client, RegistryError};
use crate::reference::{Digest, Reference};

/// Downloads of one blob started before giving up when each breaks off halfway (a reset, a
/// stall), with the retry policy's backoff between them.
const BROKEN_DOWNLOAD_ATTEMPTS: u32 = 3;

/// How `blob_put_from` got a blob into a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobPush {
    /// The repository had it already.
    Present,
    /// Mounted from another repository of the same registry: no bytes sent.
    Mounted,
    Uploaded,
}

/// A mount needs a source in the same registry, other than the target.
fn mountable(to: &Reference, from: &Reference) -> bool {
    to.registry == from.registry && to.repository != from.repository
}

impl Client {
    pub async fn blob_get(&self, r: &Reference, digest: &Digest) -> Result<Bytes, RegistryError> {
        let target = format!("/v2/{}/blobs/{digest}", r.repository);
        let resp = self.send(Req::new(Method::GET, r, target, format!("GET blob {}@{digest}", r.name()))).await?;
        let got = Digest::of(&resp.body);
        if got != *digest {
            return Err(RegistryError::DigestMismatch {
                registry: r.registry.clone(),
                expected: digest.to_string(),
                got: got.to_string(),
            });
        }
        Ok(resp.body)
    }

    /// Streams blob `digest` into the file `dest` (through a temporary file beside it, renamed
    /// once the content hashes to `digest`), never holding it whole in memory. Returns its size.
    /// `size`: the descriptor's; a body that goes past it is refused at once (a hostile or broken
    /// registry cannot fill the disk), one that ends short fails the digest check.
    /// A download broken halfway is started again, within the retry budget's attempts.
    pub async fn blob_get_to_file(
        &self,
        r: &Reference,
        digest: &Digest,
        size: u64,
        dest: &std::path::Path,
    ) -> Result<u64, RegistryError> {
        let expected = size;
        use futures_util::StreamExt as _;
        use sha2::Digest as _;
        use tokio::io::AsyncWriteExt as _;
        let operation = format!("GET blob {}@{digest}", r.name());
        let io_err = |e: std::io::Error| RegistryError::Status {
            registry: r.registry.clone(),
            operation: operation.clone(),
            status: 0,
            detail: format!("cannot write `{}`: {e}", dest.display()),
        };
        let tmp = dest.with_extension(format!("partial-{}", std::process::id()));
        let mut last = None;
        for attempt in 0..BROKEN_DOWNLOAD_ATTEMPTS {
            if attempt > 0 {
                // Not at once: a registry that cut the body may be restarting or overloaded.
                let wait = super::retry::pause(&self.retry, attempt);
                tracing::debug!(%operation, attempt, wait_ms = wait.as_millis() as u64, "download broke; retrying");
                tokio::time::sleep(wait).await;
            }
            let target = format!("/v2/{}/blobs/{digest}", r.repository);
            let resp = self.send(Req::new(Method::GET, r, target, operation.clone()).streamed()).await?;
            let mut body = resp.stream.expect("a streamed request").bytes_stream();
            let mut file = tokio::fs::File::create(&tmp).await.map_err(io_err)?;
            let mut hash = sha2::Sha256::new();
            let mut size = 0u64;
            let mut broken = None;
            // A download may take any time while its bytes keep coming: at least
            // `STALLED_BLOB_BYTES` in every `ANSWER_TIMEOUT`.
            let (mut window_end, mut window_bytes) = (tokio::time::Instant::now() + ANSWER_TIMEOUT, 0u64);
            loop {
                let chunk = match tokio::time::timeout_at(window_end, body.next()).await {
                    Ok(Some(chunk)) => chunk,
                    Ok(None) => break,
                    Err(_) if window_bytes >= STALLED_BLOB_BYTES => {
                        (window_end, window_bytes) = (tokio::time::Instant::now() + ANSWER_TIMEOUT, 0);
                        continue;
                    }
                    Err(_) => {
                        broken = Some(format!(
                            "stalled: {window_bytes} bytes in {} s, less than {} KiB",
                            ANSWER_TIMEOUT.as_secs(),
                            STALLED_BLOB_BYTES >> 10
                        ));
                        break;
                    }
                };
                match chunk {
                    Ok(c) => {
                        hash.update(&c);
                        size += c.len() as u64;
                        window_bytes += c.len() as u64;
                        if size > expected {
                            drop(file);
                            let _ = tokio::fs::remove_file(&tmp).await;
                            return Err(RegistryError::Status {
                                registry: r.registry.clone(),
                                operation,
                                status: 200,
                                detail: format!("the blob is larger than the {expected} bytes its descriptor says"),
                            });
                        }
                        file.write_all(&c).await.map_err(io_err)?;
                    }
                    Err(e) => {
                        broken = Some(super::http::error_chain(&e));
                        break;
                    }
                }
            }
            file.flush().await.map_err(io_err)?;
            drop(file);
            if let Some(why) = broken {
                last = Some(format!("a body broken off after {size} of {expected} bytes ({why})"));
                continue;
            }
            let got: Digest = format!("sha256:{}", hex::encode(hash.finalize())).parse().expect("a sha256 digest");
            if got != *digest {
                let _ = tokio::fs::remove_file(&tmp).await;
                return Err(RegistryError::DigestMismatch {
                    registry: r.registry.clone(),
                    expected: digest.to_string(),
                    got: got.to_string(),
                });
            }
            tokio::fs::rename(&tmp, dest).await.map_err(io_err)?;
            return Ok(size);
        }
        let _ = tokio::fs::remove_file(&tmp).await;
        Err(RegistryError::GaveUp {
            registry: r.registry.clone(),
            operation,
            attempts: BROKEN_DOWNLOAD_ATTEMPTS,
            status: None,
            last: last.unwrap_or_default(),
        })
    }

    pub async fn blob_exists(&self, r: &Reference, digest: &Digest) -> Result<bool, RegistryError> {
        let target = format!("/v2/{}/blobs/{digest}", r.repository);
        match self.send(Req::new(Method::HEAD, r, target, format!("HEAD blob {}@{digest}", r.name())).push()).await {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Asks the registry to link blob `digest` of `from`'s repository into `to`'s without
    /// sending it, and says whether it did. When the registry declines (or `from` lacks the
    /// blob) it opens an upload session instead, which this cancels; `blob_put_from` uses it.
    pub async fn blob_mount(&self, to: &Reference, from: &Reference, digest: &Digest) -> Result<bool, RegistryError> {
        if !mountable(to, from) {
            return Ok(false);
        }
        match self.upload_open(to, Some((from, digest))).await? {
            Opened::Mounted => Ok(true),
            Opened::Session { location, .. } => {
                self.upload_cancel(to, location).await;
                Ok(false)
            }
        }
    }

    /// Uploads a blob unless the repository already has it; says whether it uploaded.
    pub async fn blob_put(&self, r: &Reference, digest: &Digest, data: Body) -> Result<bool, RegistryError> {
        Ok(self.blob_put_from(r, digest, data, None).await? == BlobPush::Uploaded)
    }

    /// Gets blob `digest` into `to`'s repository: nothing to do when it is there; else a
    /// cross-repository mount from `mount_from` (same registry) when given; else an upload, in
    /// the session a declined mount opened if there is one.
    pub async fn blob_put_from(
        &self,
        to: &Reference,
        digest: &Digest,
        data: Body,
        mount_from: Option<&Reference>,
    ) -> Result<BlobPush, RegistryError> {
        if self.blob_exists(to, digest).await? {
            return Ok(BlobPush::Present);
        }
        let mut session = None;
        if let Some(from) = mount_from.filter(|f| mountable(to, f)) {
            match self.upload_open(to, Some((from, digest))).await? {
                Opened::Mounted => return Ok(BlobPush::Mounted),
                Opened::Session { location, chunk_min } => session = Some((location, chunk_min)),
            }
        }
        self.upload(to, digest, data.into(), session).await?;
        Ok(BlobPush::Uploaded)
    }

    /// Proves push access to `r`'s repository without writing anything: opens an upload
    /// session and cancels it.
    pub async fn check_push(&self, r: &Reference) -> Result<(), RegistryError> {
        if let Opened::Session { location, .. } = self.upload_open(r, None).await? {
            self.upload_cancel(r, location).await;
        }
        Ok(())
    }
}
