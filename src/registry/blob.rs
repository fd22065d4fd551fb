//! Blob endpoints: get, exists, mount, push (already present, mounted from another
//! repository, or uploaded), and the push-access check (an upload opened and cancelled, so
//! nothing is written). How the bytes of an upload travel is `upload.rs`.

use bytes::Bytes;
use reqwest::Method;

use super::http::Req;
use super::upload::Opened;
use super::{Body, Client, RegistryError};
use crate::reference::{Digest, Reference};

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
