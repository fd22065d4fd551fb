//! copy: moves an image (index, child manifests, blobs) from one repository to another without
//! pulling it to disk. Same registry: blobs are mounted across repositories. Another registry:
//! blobs are streamed through this process, children before the index that names them. Moves
//! no tag; callers put tags once everything is there.

use bytes::Bytes;

use crate::oci::{self, Descriptor, ImageManifest, Index};
use crate::reference::{Digest, Reference};
use crate::registry::{Body, Client, RegistryError};

/// Why a copy stopped. Each names the reference (`registry/repository@digest`) it was at; the
/// registry's own error is the source.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// `what`: `manifest` or `blob`.
    #[error("cannot read {what} `{reference}`")]
    Read {
        what: &'static str,
        reference: String,
        #[source]
        source: RegistryError,
    },
    /// `what`: `manifest` or `blob`.
    #[error("cannot write {what} `{reference}`")]
    Write {
        what: &'static str,
        reference: String,
        #[source]
        source: RegistryError,
    },
    #[error("cannot mount blob `{reference}` from `{from}`")]
    Mount {
        reference: String,
        from: String,
        #[source]
        source: RegistryError,
    },
    /// `what`: `an image manifest` or `an index`.
    #[error("`{reference}` is not {what}")]
    Malformed {
        reference: String,
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

impl CopyError {
    /// The one fix to suggest, where the registry's answer implies one.
    pub fn hint(&self) -> Option<String> {
        match self {
            CopyError::Read { source, .. } | CopyError::Write { source, .. } | CopyError::Mount { source, .. } => {
                source.hint()
            }
            CopyError::Malformed { .. } => None,
        }
    }
}

fn at(r: &Reference, d: &Digest) -> String {
    r.with_digest(d.clone()).to_string()
}

/// What a copy transferred, for the summary.
#[derive(Debug, Default, Clone, Copy)]
pub struct CopyStats {
    pub manifests: usize,
    pub blobs_mounted: usize,
    pub blobs_uploaded: usize,
    pub blobs_present: usize,
}

/// Copies one blob: a cross-repository mount on the same registry; else nothing if `to` has
/// it, or a download and upload.
async fn copy_blob(
    client: &Client,
    from: &Reference,
    to: &Reference,
    d: &Digest,
    stats: &mut CopyStats,
) -> Result<(), CopyError> {
    let read = |source| CopyError::Read { what: "blob", reference: at(from, d), source };
    let write = |source| CopyError::Write { what: "blob", reference: at(to, d), source };
    // On one registry a mount answers "already there" and "now there" alike: one request.
    if from.registry == to.registry
        && client.blob_mount(to, from, d).await.map_err(|source| CopyError::Mount {
            reference: at(to, d),
            from: from.name(),
            source,
        })?
    {
        stats.blobs_mounted += 1;
        return Ok(());
    }
    if client.blob_exists(to, d).await.map_err(write)? {
        stats.blobs_present += 1;
        return Ok(());
    }
    let data = client.blob_get(from, d).await.map_err(read)?;
    client.blob_put(to, d, Body::Bytes(data)).await.map_err(write)?;
    stats.blobs_uploaded += 1;
    Ok(())
}

/// Copies the manifest `d` (an image manifest with its blobs, or an index with everything it
/// names) from `from` to `to`, by digest. Returns its bytes as stored.
pub async fn copy_manifest(
    client: &Client,
    from: &Reference,
    to: &Reference,
    d: &Descriptor,
    stats: &mut CopyStats,
) -> Result<Bytes, CopyError> {
    let source_ref = at(from, &d.digest);
    let m = client.manifest_get(&from.with_digest(d.digest.clone())).await.map_err(|source| CopyError::Read {
        what: "manifest",
        reference: source_ref.clone(),
        source,
    })?;
    let malformed = |what| move |source| CopyError::Malformed { reference: source_ref.clone(), what, source };
    if oci::is_index(&m.media_type) {
        let idx: Index = serde_json::from_slice(&m.bytes).map_err(malformed("an index"))?;
        for child in &idx.manifests {
            Box::pin(copy_manifest(client, from, to, child, stats)).await?;
        }
    } else {
        let im: ImageManifest = serde_json::from_slice(&m.bytes).map_err(malformed("an image manifest"))?;
        for b in std::iter::once(&im.config).chain(&im.layers) {
            copy_blob(client, from, to, &b.digest, stats).await?;
        }
    }
    client
        .manifest_put(&to.with_digest(d.digest.clone()), &m.bytes, &m.media_type)
        .await
        .map_err(|source| CopyError::Write { what: "manifest", reference: at(to, &d.digest), source })?;
    stats.manifests += 1;
    Ok(m.bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_reference_and_keep_the_registry_error() {
        let to: Reference = "ghcr.io/acme/app".parse().unwrap();
        let d = Digest::of(b"x");
        let e = CopyError::Write {
            what: "blob",
            reference: at(&to, &d),
            source: RegistryError::Denied {
                registry: "ghcr.io".into(),
                repository: "acme/app".into(),
                action: "push",
                detail: String::new(),
            },
        };
        assert_eq!(e.to_string(), format!("cannot write blob `ghcr.io/acme/app@{d}`"));
        let cause = std::error::Error::source(&e).unwrap().to_string();
        assert_eq!(cause, "registry `ghcr.io` denied push access to `acme/app`");
        assert!(e.hint().unwrap().starts_with("log in with `docker login ghcr.io`"), "{:?}", e.hint());
    }
}
