//! copy: moves an image (index, child manifests, blobs) from one repository to another without
//! pulling it to disk. Same registry: blobs are mounted across repositories. Another registry:
//! blobs are streamed through this process, children before the index that names them. Moves
//! no tag itself; [`promote`] puts tags once everything is there.

use anyhow::Context as _;
use bytes::Bytes;

use crate::error::UserError;
use crate::inputs::PromoteRequest;
use crate::oci::{self, Descriptor, ImageManifest, Index};
use crate::platform::Platform;
use crate::reference::{Digest, Reference};
use crate::registry::{Body, Client, RegistryError};
use crate::report::Log;

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
    #[error("no temporary space to copy blob {digest} between registries: {detail}")]
    Spool { digest: Digest, detail: String },
    #[error("cannot mount blob `{reference}` from `{from}`")]
    Mount {
        reference: String,
        from: String,
        #[source]
        source: RegistryError,
    },
    /// The descriptor that led here says one kind of manifest, the content is the other.
    /// `named`, `got`: `an image manifest` or `an index`.
    #[error("`{reference}` is {got}, where the index naming it says {named}")]
    WrongKind { reference: String, named: &'static str, got: &'static str },
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
            CopyError::Malformed { .. } | CopyError::WrongKind { .. } => None,
            CopyError::Spool { .. } => Some("free space in the temporary directory (`TMPDIR`)".into()),
        }
    }
}

fn at(r: &Reference, d: &Digest) -> String {
    r.with_digest(d.clone()).to_string()
}

/// What a copy transferred, for the summary.
#[derive(Debug, Default, Clone)]
pub struct CopyStats {
    /// Manifests copied already in this copy: an index naming one several times (or indexes
    /// naming each other, from a hostile source) copies it once.
    copied: std::collections::HashSet<Digest>,
    pub manifests: usize,
    pub blobs_mounted: usize,
    pub blobs_uploaded: usize,
    /// Bytes downloaded and uploaded again (blobs copied across registries), and how long
    /// those copies took.
    pub bytes_copied: u64,
    pub copy_time: std::time::Duration,
    pub blobs_present: usize,
}

impl CopyStats {
    /// The log line of a copy into `repository`.
    pub fn summary(&self, repository: &str) -> String {
        format!(
            "==> copied into {repository}: {} manifests, {} blobs mounted, {} uploaded{}, {} already there",
            self.manifests,
            self.blobs_mounted,
            self.blobs_uploaded,
            self.transferred(),
            self.blobs_present
        )
    }

    /// ` (12.0 MiB at 40.0 MiB/s)` when blobs were copied across registries, else nothing.
    fn transferred(&self) -> String {
        match self.bytes_copied {
            0 => String::new(),
            n => format!(" ({} at {})", crate::report::human_size(n), crate::report::rate(n, self.copy_time)),
        }
    }
}

/// Copies one blob: a cross-repository mount on the same registry; else nothing if `to` has
/// it, or a download and upload.
async fn copy_blob(
    client: &Client,
    from: &Reference,
    to: &Reference,
    d: &Digest,
    size: u64,
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
    // Across registries through a temporary file: a layer of any size, never whole in memory,
    // and a body the upload can send again on a retry.
    let spool = tempfile::tempdir().map_err(|e| CopyError::Spool { digest: d.clone(), detail: e.to_string() })?;
    let path = spool.path().join(d.hex());
    let began = std::time::Instant::now();
    let len = client.blob_get_to_file(from, d, size, &path).await.map_err(read)?;
    client.blob_put(to, d, Body::File { path, len }).await.map_err(write)?;
    stats.bytes_copied += len;
    stats.copy_time += began.elapsed();
    stats.blobs_uploaded += 1;
    Ok(())
}

/// `an index` or `an image manifest` for those media types; `None` for any other.
fn kind(media_type: &str) -> Option<&'static str> {
    if oci::is_index(media_type) {
        Some("an index")
    } else if oci::MANIFEST_TYPES.contains(&media_type) {
        Some("an image manifest")
    } else {
        None
    }
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
    if !stats.copied.insert(d.digest.clone()) {
        return Ok(Bytes::new());
    }
    let source_ref = at(from, &d.digest);
    let m = client.manifest_get(&from.with_digest(d.digest.clone())).await.map_err(|source| CopyError::Read {
        what: "manifest",
        reference: source_ref.clone(),
        source,
    })?;
    if let (Some(named), Some(got)) = (kind(&d.media_type), kind(&m.media_type))
        && named != got
    {
        return Err(CopyError::WrongKind { reference: source_ref, named, got });
    }
    let malformed = |what| move |source| CopyError::Malformed { reference: source_ref.clone(), what, source };
    if oci::is_index(&m.media_type) {
        let idx: Index = serde_json::from_slice(&m.bytes).map_err(malformed("an index"))?;
        for child in &idx.manifests {
            Box::pin(copy_manifest(client, from, to, child, stats)).await?;
        }
    } else {
        let im: ImageManifest = serde_json::from_slice(&m.bytes).map_err(malformed("an image manifest"))?;
        for b in std::iter::once(&im.config).chain(&im.layers) {
            copy_blob(client, from, to, &b.digest, b.size, stats).await?;
        }
    }
    client
        .manifest_put(&to.with_digest(d.digest.clone()), &m.bytes, &m.media_type)
        .await
        .map_err(|source| CopyError::Write { what: "manifest", reference: at(to, &d.digest), source })?;
    stats.manifests += 1;
    Ok(m.bytes)
}

/// Keeps the images of `keep` (and the attestations that describe them). Pure.
pub fn filter_index(index: &Index, keep: &[Platform]) -> (Index, Vec<Platform>) {
    let mut kept_digests = Vec::new();
    let mut dropped = Vec::new();
    for m in &index.manifests {
        if m.is_attestation() {
            continue;
        }
        match m.platform.as_ref().and_then(|p| p.platform()) {
            Some(p) if keep.contains(&p) => kept_digests.push(m.digest.clone()),
            Some(p) => dropped.push(p),
            None => {}
        }
    }
    let manifests = index
        .manifests
        .iter()
        .filter(|m| {
            if m.is_attestation() {
                m.annotation(oci::ANN_REFERENCE_DIGEST).is_some_and(|d| kept_digests.iter().any(|k| k.as_str() == d))
            } else {
                kept_digests.contains(&m.digest)
            }
        })
        .cloned()
        .collect();
    (Index { manifests, ..index.clone() }, dropped)
}

/// Copies `req.source` to every destination without pulling it: children first, into each
/// repository that lacks them (mounted on one registry, streamed across registries), then the
/// tags. With `req.keep`, the index is rewritten to those platforms first.
pub async fn promote(client: &Client, req: &PromoteRequest, log: &Log) -> anyhow::Result<String> {
    let (src, dsts, keep) = (&req.source, &req.destinations, &req.keep);
    let m = client.manifest_get(src).await.with_context(|| format!("reading {src}"))?;
    let (bytes, media_type) = if keep.is_empty() {
        (m.bytes.clone(), m.media_type.clone())
    } else {
        if !oci::is_index(&m.media_type) {
            return Err(UserError::input(format!(
                "`--platform` needs a multi-platform image, and {src} is a single image"
            ))
            .into());
        }
        let idx: Index = serde_json::from_slice(&m.bytes).with_context(|| format!("{src} is not a readable index"))?;
        let (filtered, dropped) = filter_index(&idx, keep);
        if let Some(p) = keep.iter().find(|p| {
            !filtered.manifests.iter().any(|m| m.platform.as_ref().and_then(|x| x.platform()).as_ref() == Some(p))
        }) {
            return Err(UserError::input(format!("{src} has no {p} image"))
                .hint("`archway inspect` lists its platforms")
                .into());
        }
        log.line(&format!(
            "==> keeping {} of {src}; dropping {} (the index is rewritten, so its digest changes)",
            keep.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", "),
            dropped.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", ")
        ));
        (Bytes::from(filtered.to_bytes()), filtered.media_type.clone())
    };
    let digest = Digest::of(&bytes);
    let top = Descriptor::new(media_type.clone(), digest.clone(), bytes.len() as u64);

    // Children first, into each repository that does not have them; tags last.
    let mut done: Vec<Reference> = Vec::new();
    for dst in dsts {
        let repo = dst.repository_only();
        if done.iter().any(|r| r.same_repository(&repo)) || (src.same_repository(&repo) && keep.is_empty()) {
            continue;
        }
        crate::publish::check_access(client, &repo).await?;
        let mut stats = CopyStats::default();
        if oci::is_index(&media_type) {
            let idx: Index = serde_json::from_slice(&bytes)?;
            for child in &idx.manifests {
                copy_manifest(client, src, &repo, child, &mut stats).await?;
            }
            client.manifest_put(&repo.with_digest(digest.clone()), &bytes, &media_type).await?;
        } else {
            copy_manifest(client, src, &repo, &top, &mut stats).await?;
        }
        log.line(&stats.summary(&repo.name()));
        done.push(repo);
    }
    for dst in dsts {
        client.manifest_put(dst, &bytes, &media_type).await.with_context(|| format!("tagging {dst}"))?;
        log.line(&format!("tagged {dst}"));
    }
    println!("{}", dsts[0].repository_only().with_digest(digest.clone()));
    Ok(format!("promoted {src} ({digest}) to {}", dsts.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn filter_keeps_platforms_and_their_attestations() {
        let img = |n: u8, p: &str| Descriptor {
            media_type: oci::OCI_MANIFEST.into(),
            digest: Digest::of(&[n]),
            size: 1,
            platform: Some((&p.parse::<Platform>().unwrap()).into()),
            annotations: None,
            artifact_type: None,
        };
        let att = |n: u8, of: &Descriptor| Descriptor {
            platform: None,
            annotations: Some(BTreeMap::from([
                (oci::ANN_REFERENCE_TYPE.to_string(), oci::ATTESTATION_MANIFEST.to_string()),
                (oci::ANN_REFERENCE_DIGEST.to_string(), of.digest.to_string()),
            ])),
            ..img(n, "linux/amd64")
        };
        let (a, b) = (img(1, "linux/amd64"), img(2, "linux/arm64"));
        let idx = Index {
            schema_version: 2,
            media_type: oci::OCI_INDEX.into(),
            manifests: vec![a.clone(), b.clone(), att(3, &a), att(4, &b)],
            annotations: None,
        };
        let (f, dropped) = filter_index(&idx, &["linux/arm64".parse().unwrap()]);
        assert_eq!(f.manifests, vec![b.clone(), att(4, &b)]);
        assert_eq!(dropped, vec!["linux/amd64".parse::<Platform>().unwrap()]);
    }

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
