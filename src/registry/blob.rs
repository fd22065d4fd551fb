//! Blob endpoints: get, exists, upload, and the push-access check (an upload opened and
//! cancelled, so nothing is written).

use bytes::Bytes;
use reqwest::Method;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderValue, LOCATION};

use super::{Body, Client, RegistryError, Req};
use crate::reference::{Digest, Reference};

impl Client {
    pub async fn blob_get(&self, r: &Reference, digest: &Digest) -> Result<Bytes, RegistryError> {
        let resp = self
            .send(Req {
                method: Method::GET,
                registry: &r.registry,
                repository: &r.repository,
                target: format!("/v2/{}/blobs/{digest}", r.repository),
                headers: HeaderMap::new(),
                body: None,
                push: false,
                operation: format!("GET blob {}@{digest}", r.name()),
            })
            .await?;
        let bytes = resp.bytes().await.map_err(|e| RegistryError::Unreachable {
            registry: r.registry.clone(),
            url: digest.to_string(),
            detail: e.to_string(),
        })?;
        let got = Digest::of(&bytes);
        if got != *digest {
            return Err(RegistryError::DigestMismatch {
                registry: r.registry.clone(),
                expected: digest.to_string(),
                got: got.to_string(),
            });
        }
        Ok(bytes)
    }

    pub async fn blob_exists(&self, r: &Reference, digest: &Digest) -> Result<bool, RegistryError> {
        let resp = self
            .send(Req {
                method: Method::HEAD,
                registry: &r.registry,
                repository: &r.repository,
                target: format!("/v2/{}/blobs/{digest}", r.repository),
                headers: HeaderMap::new(),
                body: None,
                push: true,
                operation: format!("HEAD blob {}@{digest}", r.name()),
            })
            .await;
        match resp {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Opens an upload session; returns its absolute `Location`.
    async fn upload_start(&self, r: &Reference) -> Result<String, RegistryError> {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
        let resp = self
            .send(Req {
                method: Method::POST,
                registry: &r.registry,
                repository: &r.repository,
                target: format!("/v2/{}/blobs/uploads/", r.repository),
                headers,
                body: None,
                push: true,
                operation: format!("start blob upload to {}", r.name()),
            })
            .await?;
        let loc = resp.headers().get(LOCATION).and_then(|v| v.to_str().ok()).ok_or_else(|| RegistryError::Status {
            registry: r.registry.clone(),
            operation: format!("start blob upload to {}", r.name()),
            status: resp.status().as_u16(),
            detail: "no `Location` header in the answer".into(),
        })?;
        Ok(self.absolute(&r.registry, loc))
    }

    fn absolute(&self, registry: &str, loc: &str) -> String {
        if loc.starts_with("http://") || loc.starts_with("https://") {
            loc.to_string()
        } else {
            format!("{}{}", self.base_url(registry), loc)
        }
    }

    /// Uploads a blob in one PUT unless the repository already has it; says whether it uploaded.
    pub async fn blob_put(&self, r: &Reference, digest: &Digest, data: Body) -> Result<bool, RegistryError> {
        if self.blob_exists(r, digest).await? {
            return Ok(false);
        }
        let loc = self.upload_start(r).await?;
        let sep = if loc.contains('?') { '&' } else { '?' };
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
        self.send(Req {
            method: Method::PUT,
            registry: &r.registry,
            repository: &r.repository,
            target: format!("{loc}{sep}digest={digest}"),
            headers,
            body: Some(data),
            push: true,
            operation: format!("PUT blob {}@{digest}", r.name()),
        })
        .await?;
        Ok(true)
    }

    /// Proves push access to `r`'s repository without writing anything: opens an upload
    /// session and cancels it.
    pub async fn check_push(&self, r: &Reference) -> Result<(), RegistryError> {
        let loc = self.upload_start(r).await?;
        // Cancelling is a courtesy; registries expire abandoned sessions anyway.
        let _ = self
            .send(Req {
                method: Method::DELETE,
                registry: &r.registry,
                repository: &r.repository,
                target: loc,
                headers: HeaderMap::new(),
                body: None,
                push: true,
                operation: format!("cancel blob upload to {}", r.name()),
            })
            .await;
        Ok(())
    }
}
