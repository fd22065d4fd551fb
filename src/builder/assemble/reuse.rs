//! reuse: the layers an earlier image already has, by content. Reads an image's manifests and
//! configs (every platform's) and pairs each layer's `diff_id` with its compressed blob, so a
//! new layer with the same uncompressed bytes is neither compressed nor uploaded again.

use std::collections::HashMap;

use super::layer::Blob;
use crate::oci::{self, ImageManifest, Index};
use crate::reference::{Digest, Reference};
use crate::registry::{Client, RegistryError};

/// Every layer of `image` (all platforms), by diff_id, with the repository holding its blob.
pub async fn layers_of(
    client: &Client,
    image: &Reference,
) -> Result<HashMap<Digest, (Blob, Reference)>, RegistryError> {
    let repo = image.repository_only();
    let top = client.manifest_get(image).await?;
    let children: Vec<Digest> = if oci::is_index(&top.media_type) {
        serde_json::from_slice::<Index>(&top.bytes)
            .map(|i| i.manifests.into_iter().filter(|m| !m.is_attestation()).map(|m| m.digest).collect())
            .unwrap_or_default()
    } else {
        vec![top.digest.clone()]
    };
    let mut out = HashMap::new();
    for d in children {
        let m = if d == top.digest { top.clone() } else { client.manifest_get(&repo.with_digest(d)).await? };
        let Ok(im) = serde_json::from_slice::<ImageManifest>(&m.bytes) else { continue };
        let config = client.blob_get(&repo, &im.config.digest).await?;
        let Ok(config) = serde_json::from_slice::<serde_json::Value>(&config) else { continue };
        let diff_ids: Vec<Digest> = config["rootfs"]["diff_ids"]
            .as_array()
            .map(|a| a.iter().filter_map(|d| d.as_str()?.parse().ok()).collect())
            .unwrap_or_default();
        for (diff_id, layer) in diff_ids.into_iter().zip(im.layers) {
            let Some(media_type) = known_layer_type(&layer.media_type) else { continue };
            let blob = Blob { digest: layer.digest, size: layer.size, diff_id: diff_id.clone(), media_type };
            out.insert(diff_id, (blob, repo.clone()));
        }
    }
    Ok(out)
}

/// The layer media types the assembler writes, as `'static` strings; others are not reused
/// (a Docker-typed layer would change the manifest's media types).
fn known_layer_type(t: &str) -> Option<&'static str> {
    [super::layer::Compression::Gzip.media_type(), super::layer::Compression::Zstd.media_type()]
        .into_iter()
        .find(|k| *k == t)
}
