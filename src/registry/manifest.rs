//! Manifest endpoints: get, head, put. Bytes are pushed exactly as given and their digest is
//! checked against the registry's `Docker-Content-Digest`.

use bytes::Bytes;
use reqwest::Method;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue};

use super::{Body, Client, RegistryError, Req};
use crate::oci;
use crate::reference::{Digest, Reference};

/// A manifest as stored: its exact bytes, media type and digest.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub bytes: Bytes,
    pub media_type: String,
    pub digest: Digest,
}

fn accept_all() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(ACCEPT, HeaderValue::from_str(&oci::MANIFEST_TYPES.join(", ")).expect("static media types"));
    h
}

fn header_digest(h: &HeaderMap) -> Option<Digest> {
    h.get("docker-content-digest")?.to_str().ok()?.parse().ok()
}

impl Client {
    /// Fetches a manifest; when the reference names a digest, the bytes must hash to it.
    pub async fn manifest_get(&self, r: &Reference) -> Result<Manifest, RegistryError> {
        let sel = r.selector();
        let resp = self
            .send(Req {
                method: Method::GET,
                registry: &r.registry,
                repository: &r.repository,
                target: format!("/v2/{}/manifests/{sel}", r.repository),
                headers: accept_all(),
                body: None,
                push: false,
                operation: format!("GET manifest {r}"),
            })
            .await?;
        let header_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.split(';').next().unwrap_or(s).trim().to_string());
        let bytes = resp.bytes().await.map_err(|e| RegistryError::Unreachable {
            registry: r.registry.clone(),
            url: sel.clone(),
            detail: e.to_string(),
        })?;
        let digest = Digest::of(&bytes);
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

    /// The digest a tag or digest resolves to, or `None` when it does not exist.
    pub async fn manifest_digest(&self, r: &Reference) -> Result<Option<Digest>, RegistryError> {
        let resp = self
            .send(Req {
                method: Method::HEAD,
                registry: &r.registry,
                repository: &r.repository,
                target: format!("/v2/{}/manifests/{}", r.repository, r.selector()),
                headers: accept_all(),
                body: None,
                push: false,
                operation: format!("HEAD manifest {r}"),
            })
            .await;
        match resp {
            Ok(resp) => match header_digest(resp.headers()) {
                Some(d) => Ok(Some(d)),
                // Some registries omit the header on HEAD: fall back to hashing the body.
                None => Ok(Some(self.manifest_get(r).await?.digest)),
            },
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Pushes `bytes` under `r`'s tag (or its digest) and returns their digest after checking the
    /// registry computed the same one.
    pub async fn manifest_put(&self, r: &Reference, bytes: &Bytes, media_type: &str) -> Result<Digest, RegistryError> {
        let digest = Digest::of(bytes);
        let sel = match (&r.tag, &r.digest) {
            (Some(t), _) => t.clone(),
            _ => digest.to_string(),
        };
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_str(media_type).map_err(|_| RegistryError::Status {
                registry: r.registry.clone(),
                operation: "PUT manifest".into(),
                status: 0,
                detail: format!("media type `{media_type}` is not a valid header"),
            })?,
        );
        let resp = self
            .send(Req {
                method: Method::PUT,
                registry: &r.registry,
                repository: &r.repository,
                target: format!("/v2/{}/manifests/{sel}", r.repository),
                headers,
                body: Some(Body::Bytes(bytes.clone())),
                push: true,
                operation: format!("PUT manifest {}:{sel}", r.name()),
            })
            .await?;
        if let Some(got) = header_digest(resp.headers())
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
