//! copy: moves an image (index, child manifests, blobs) from one repository to another without
//! pulling it to disk. Same registry: blobs are mounted across repositories. Another registry:
//! blobs are streamed through this process, children before the index that names them. Moves
//! no tag; callers put tags once everything is there.

use anyhow::Context as _;
use bytes::Bytes;

use crate::oci::{self, Descriptor, ImageManifest, Index};
use crate::reference::{Digest, Reference};
use crate::registry::{Body, Client};

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
) -> anyhow::Result<()> {
    // On one registry a mount answers "already there" and "now there" alike: one request.
    if from.registry == to.registry && client.blob_mount(to, from, d).await? {
        stats.blobs_mounted += 1;
        return Ok(());
    }
    if client.blob_exists(to, d).await? {
        stats.blobs_present += 1;
        return Ok(());
    }
    let data = client.blob_get(from, d).await.with_context(|| format!("reading blob {d} from {}", from.name()))?;
    client.blob_put(to, d, Body::Bytes(data)).await.with_context(|| format!("writing blob {d} to {}", to.name()))?;
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
) -> anyhow::Result<Bytes> {
    let m = client.manifest_get(&from.with_digest(d.digest.clone())).await?;
    if oci::is_index(&m.media_type) {
        let idx: Index =
            serde_json::from_slice(&m.bytes).with_context(|| format!("index {} is unreadable", d.digest))?;
        for child in &idx.manifests {
            Box::pin(copy_manifest(client, from, to, child, stats)).await?;
        }
    } else {
        let im: ImageManifest =
            serde_json::from_slice(&m.bytes).with_context(|| format!("manifest {} is unreadable", d.digest))?;
        for b in std::iter::once(&im.config).chain(&im.layers) {
            copy_blob(client, from, to, &b.digest, stats).await?;
        }
    }
    client.manifest_put(&to.with_digest(d.digest.clone()), &m.bytes, &m.media_type).await?;
    stats.manifests += 1;
    Ok(m.bytes)
}
