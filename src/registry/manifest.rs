//! Manifest endpoints: get, head, put. Bytes are pushed exactly as given and their digest is
//! checked against the registry's `Docker-Content-Digest`.

use bytes::Bytes;
use reqwest::Method;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue};

use super::http::{Payload, Req};
use super::{Client, RegistryError};
use crate::oci;
use crate::reference::{Digest, Reference};

/// A manifest as stored: its exact bytes, media type and digest.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub bytes: Bytes,
    pub media_type: String,
    pub digest: Digest,
}

impl Manifest {
    /// The descriptor that points at it (no platform or annotations).
    pub fn descriptor(&self) -> oci::Descriptor {
        oci::Descriptor::new(self.media_type.clone(), self.digest.clone(), self.bytes.len() as u64)
    }
}

fn accept_all() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(ACCEPT, HeaderValue::from_str(&oci::MANIFEST_TYPES.join(", ")).expect("static media types"));
    h
}

pub(super) fn header_digest(h: &HeaderMap) -> Option<Digest> {
    h.get("docker-content-digest")?.to_str().ok()?.parse().ok()
}

impl Client {
    /// Fetches a manifest; when the reference names a digest the bytes must hash to it, and so
    /// must they to the registry's `Docker-Content-Digest` when it sends one.
    pub async fn manifest_get(&self, r: &Reference) -> Result<Manifest, RegistryError> {
        let sel = r.selector();
        let mut req =
            Req::new(Method::GET, r, format!("/v2/{}/manifests/{sel}", r.repository), format!("GET manifest {r}"));
        req.headers = accept_all();
        let resp = self.send(req).await?;
        let header_type =
            resp.header(CONTENT_TYPE.as_str()).map(|s| s.split(';').next().unwrap_or(s).trim().to_string());
        let sent = header_digest(&resp.headers);
        let bytes = resp.body;
        let digest = Digest::of(&bytes);
        if let Some(header) = sent
            && header != digest
        {
            return Err(RegistryError::HeaderDigest {
                registry: r.registry.clone(),
                operation: format!("GET manifest {r}"),
                header: header.to_string(),
                actual: digest.to_string(),
            });
        }
        if let Some(want) = &r.digest
            && *want != digest
        {
            return Err(RegistryError::DigestMismatch {
                registry: r.registry.clone(),
                expected: r.to_string(),
                got: digest.to_string(),
            });
        }
        let media_type = oci::media_type_of(&bytes, header_type.as_deref());
        Ok(Manifest { bytes, media_type, digest })
    }

    /// Pushes `bytes` under `r`'s tag (or its digest) and returns their digest after checking the
    /// registry computed the same one.
    pub async fn manifest_put(&self, r: &Reference, bytes: &Bytes, media_type: &str) -> Result<Digest, RegistryError> {
        let digest = Digest::of(bytes);
        let sel = match (&r.tag, &r.digest) {
            (Some(t), _) => t.clone(),
            _ => digest.to_string(),
        };
        let operation = if sel.starts_with("sha256:") {
            format!("PUT manifest {}@{sel}", r.name())
        } else {
            format!("PUT manifest {}:{sel}", r.name())
        };
        let content_type = HeaderValue::from_str(media_type).map_err(|_| RegistryError::Status {
            registry: r.registry.clone(),
            operation: operation.clone(),
            status: 0,
            detail: format!("media type `{media_type}` is not a valid header"),
        })?;
        let req = Req::new(Method::PUT, r, format!("/v2/{}/manifests/{sel}", r.repository), operation)
            .push()
            .header(CONTENT_TYPE, content_type)
            .body(Payload::Bytes(bytes.clone()));
        let resp = self.send(req).await?;
        if let Some(got) = header_digest(&resp.headers)
            && got != digest
        {
            return Err(RegistryError::DigestMismatch {
                registry: r.registry.clone(),
                expected: digest.to_string(),
                got: got.to_string(),
            });
        }
        Ok(digest)
    }
}
