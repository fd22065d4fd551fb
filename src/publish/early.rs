//! early: uploads a build's large blobs while the builder is still exporting.
//!
//! buildx's OCI layout export (`type=oci,tar=false`) receives each blob into `ingest/` and
//! renames it into `blobs/sha256/HEX` once its digest is verified, so a file there is
//! complete. For a combined multi-platform build the layers arrive one after another during
//! the export, and buildx only exits after the last one and the manifests: uploading each large
//! layer as it appears takes the upload off the critical path (measured on the lab: the two
//! 8 MiB layers of `bench/build.sh` land 0.2 s before buildx exits).
//!
//! Best effort: a failed early upload is dropped silently; the push that follows the build
//! checks every blob again and uploads (and reports) whatever is missing. Nothing here moves a
//! tag or pushes a manifest.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;

use crate::reference::{Digest, Reference};
use crate::registry::{BlobPush, Body, Client};

/// Smaller blobs (manifests, configs, small layers) are left to the push after the build:
/// their upload is one round trip anyway.
pub const EARLY_MIN_BYTES: u64 = 256 << 10;
/// How often the layout's blob directory is listed while the build runs.
const POLL: Duration = Duration::from_millis(25);

/// Uploads to `repo` each blob of at least [`EARLY_MIN_BYTES`] that appears in `dir/blobs/sha256`
/// until `done` resolves, once `access` (when given) says the repository takes pushes. Then
/// waits for the uploads in flight, so the push after it finds them in the registry. Returns
/// the blobs it uploaded, with their sizes, for the push's report.
pub async fn upload_as_they_appear(
    client: &Client,
    repo: &Reference,
    dir: &Path,
    access: Option<tokio::sync::watch::Receiver<bool>>,
    done: impl std::future::Future<Output = ()>,
) -> HashMap<Digest, u64> {
    let blobs = dir.join("blobs/sha256");
    let mut seen = HashSet::new();
    let mut uploaded = HashMap::new();
    let mut in_flight = FuturesUnordered::new();
    tokio::pin!(done);
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = &mut done => break,
            Some((digest, size, ok)) = in_flight.next(), if !in_flight.is_empty() => {
                if ok {
                    uploaded.insert(digest, size);
                }
            }
            _ = tick.tick() => {
                if access.as_ref().is_some_and(|a| !*a.borrow()) {
                    continue;
                }
                for (digest, size) in new_blobs(&blobs, &mut seen) {
                    let path = blobs.join(digest.hex());
                    in_flight.push(async move {
                        let r = client.blob_put_from(repo, &digest, Body::File { path, len: size }, None).await;
                        tracing::debug!(%digest, size, ?r, "early upload");
                        (digest, size, matches!(r, Ok(BlobPush::Uploaded)))
                    });
                }
            }
        }
    }
    while let Some((digest, size, ok)) = in_flight.next().await {
        if ok {
            uploaded.insert(digest, size);
        }
    }
    uploaded
}

/// The large blobs in `blobs` not seen before.
fn new_blobs(blobs: &Path, seen: &mut HashSet<String>) -> Vec<(Digest, u64)> {
    let Ok(entries) = std::fs::read_dir(blobs) else {
        return Vec::new(); // not created yet
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if seen.contains(&name) {
            continue;
        }
        let Ok(meta) = e.metadata() else { continue };
        let Ok(digest) = format!("sha256:{name}").parse::<Digest>() else {
            seen.insert(name);
            continue;
        };
        seen.insert(name);
        if meta.is_file() && meta.len() >= EARLY_MIN_BYTES {
            out.push((digest, meta.len()));
        }
    }
    out
}
