//! assemble: the `assembled` strategy — archway writes an OCI image itself from the base
//! image's registry manifest, the build context and the Dockerfile's instructions, with no
//! engine, no buildx and no emulation. BuildKit's `dockerfile2llb` is the reference for what
//! every instruction does; where this code and buildx disagree, buildx is right.

pub mod archive;
pub mod base;
pub mod config;
pub mod context;
pub mod copy;
mod dispatch;
pub mod glob;
pub mod ignore;
pub mod layer;
mod reuse;
pub mod tree;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::{BuildError, BuildSpec, Builder, Built, LineSink};
use crate::oci::{self, Descriptor, DescriptorPlatform, Index};
use crate::platform::Platform;
use crate::reference::Digest;
use crate::registry::Client;
use layer::{Blob, Compression};

pub use dispatch::StageResult;

/// How the assembler writes layers and dates images.
#[derive(Debug, Clone)]
pub struct AssembleOptions {
    /// `--compression` (gzip unless told otherwise).
    pub compression: Compression,
    /// `--compression-level`; `None` is the compression's default (`Compression::default_level`).
    pub compression_level: Option<i32>,
    /// Seconds since the epoch for the image's `created`, its new history entries and the
    /// directories COPY and WORKDIR create (`SOURCE_DATE_EPOCH`; 0 when unset), so the same
    /// inputs give the same image.
    pub epoch: i64,
    /// `BUILDPLATFORM`: the machine archway runs on.
    pub build_platform: Platform,
    /// Images whose layers are reused when a new layer has the same content (diff_id): the
    /// image under the first tag and `--cache-from`, on the registry pushed to. Their blobs
    /// are mounted at push time instead of being compressed and uploaded again.
    pub reuse_from: Vec<crate::reference::Reference>,
}

impl Default for AssembleOptions {
    fn default() -> Self {
        AssembleOptions {
            compression: Compression::Gzip,
            compression_level: None,
            epoch: 0,
            build_platform: Platform::host(),
            reuse_from: Vec::new(),
        }
    }
}

/// A compressed layer made once and reused by every platform that has it.
type Made = Arc<tokio::sync::OnceCell<(Blob, PathBuf)>>;

/// The `assembled` builder.
/// The stages an engine built for a hybrid build, by stage name: each one's filesystem as
/// layer tars, in order.
pub type Prebuilt = HashMap<String, Vec<PathBuf>>;

pub struct Assembler {
    client: Arc<Client>,
    options: AssembleOptions,
    /// Build contexts read so far (one per context directory and ignore file).
    contexts: Mutex<HashMap<PathBuf, Arc<tree::Tree>>>,
    /// Layers compressed so far, by diff_id.
    made: Mutex<HashMap<Digest, Made>>,
    /// Layers of the `reuse_from` images, by diff_id, read once.
    reusable: tokio::sync::OnceCell<HashMap<Digest, (Blob, crate::reference::Reference)>>,
}

impl Assembler {
    pub fn new(client: Client, options: AssembleOptions) -> Self {
        Assembler::with_shared_client(Arc::new(client), options)
    }

    pub fn with_shared_client(client: Arc<Client>, options: AssembleOptions) -> Self {
        Assembler {
            client,
            options,
            contexts: Mutex::default(),
            made: Mutex::default(),
            reusable: tokio::sync::OnceCell::new(),
        }
    }

    pub fn options(&self) -> &AssembleOptions {
        &self.options
    }

    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    /// The build context as a tree, read once per run.
    pub(crate) fn context(&self, spec: &BuildSpec) -> Result<Arc<tree::Tree>, context::ContextError> {
        if let Some(t) = self.contexts.lock().unwrap().get(&spec.context) {
            return Ok(t.clone());
        }
        let (file, patterns) = context::ignore_patterns(&spec.context, &spec.dockerfile)?;
        let t = Arc::new(context::load(&spec.context, &file, &patterns)?);
        self.contexts.lock().unwrap().insert(spec.context.clone(), t.clone());
        Ok(t)
    }

    /// Compresses a layer into `blobs` (once per run for identical layers, however many
    /// platforms have it).
    /// A layer with the same content in a `reuse_from` image is not made at all: its blob is
    /// returned with the repository to mount it from.
    async fn make_layer(
        &self,
        entries: Arc<Vec<layer::Entry>>,
        blobs: &Path,
    ) -> std::io::Result<(Blob, Option<crate::reference::Reference>)> {
        let e2 = entries.clone();
        let (diff_id, _) =
            tokio::task::spawn_blocking(move || layer::diff_id(&e2)).await.map_err(std::io::Error::other)??;
        if let Some((blob, from)) = self.reusable().await.get(&diff_id) {
            return Ok((blob.clone(), Some(from.clone())));
        }
        let cell = self.made.lock().unwrap().entry(diff_id.clone()).or_default().clone();
        let (compression, level) = (
            self.options.compression,
            self.options.compression_level.unwrap_or(self.options.compression.default_level()),
        );
        let blobs_dir = blobs.to_path_buf();
        let (blob, path) = cell
            .get_or_try_init(|| async move {
                let tmp = blobs_dir.join(format!(".layer-{}", diff_id.hex()));
                let t2 = tmp.clone();
                let blob =
                    tokio::task::spawn_blocking(move || layer::write_blob(&entries, &diff_id, compression, level, &t2))
                        .await
                        .map_err(std::io::Error::other)??;
                let path = blobs_dir.join(blob.digest.hex());
                std::fs::rename(&tmp, &path)?;
                Ok::<_, std::io::Error>((blob, path))
            })
            .await?;
        let want = blobs.join(blob.digest.hex());
        if &want != path && !want.exists() {
            link_or_copy(path, &want)?;
        }
        Ok((blob.clone(), None))
    }

    /// The layers of every `reuse_from` image (each platform's), by diff_id; read once. An
    /// image that cannot be read (a first push: the tag does not exist yet) adds nothing.
    async fn reusable(&self) -> &HashMap<Digest, (Blob, crate::reference::Reference)> {
        self.reusable
            .get_or_init(|| async {
                let mut out = HashMap::new();
                for r in &self.options.reuse_from {
                    match reuse::layers_of(&self.client, r).await {
                        Ok(found) => out.extend(found),
                        Err(e) => tracing::debug!(image = %r, "no layers to reuse: {e}"),
                    }
                }
                out
            })
            .await
    }
}

/// Hard-links `from` to `to`, copying when they are on different filesystems.
fn link_or_copy(from: &Path, to: &Path) -> std::io::Result<()> {
    if std::fs::hard_link(from, to).is_err() {
        std::fs::copy(from, to)?;
    }
    Ok(())
}

/// RFC 3339 in UTC for seconds since the epoch (one implementation, shared with the CI labels).
pub use crate::ci::metadata::rfc3339;

/// Docker's layer media types as their OCI equivalents (BuildKit converts them in OCI
/// manifests; the bytes are the same).
fn oci_layer_type(media_type: &str) -> String {
    match media_type {
        "application/vnd.docker.image.rootfs.diff.tar.gzip" => "application/vnd.oci.image.layer.v1.tar+gzip".into(),
        "application/vnd.docker.image.rootfs.diff.tar" => "application/vnd.oci.image.layer.v1.tar".into(),
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => {
            "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip".into()
        }
        other => other.to_string(),
    }
}

fn write_blob(blobs: &Path, bytes: &[u8]) -> std::io::Result<Digest> {
    let d = Digest::of(bytes);
    std::fs::write(blobs.join(d.hex()), bytes)?;
    Ok(d)
}

impl Builder for Assembler {
    fn name(&self) -> &'static str {
        "archway's assembler"
    }

    async fn build(
        &self,
        spec: &BuildSpec,
        platform: &Platform,
        layout: &Path,
        sink: LineSink,
    ) -> Result<Built, BuildError> {
        self.build_with(spec, platform, layout, sink, &HashMap::new()).await
    }
}

impl Assembler {
    /// Assembles `platform` into `layout`; `prebuilt` holds the stages an engine built, by
    /// name, each an exported filesystem tar (a hybrid build).
    pub async fn build_with(
        &self,
        spec: &BuildSpec,
        platform: &Platform,
        layout: &Path,
        sink: LineSink,
        prebuilt: &Prebuilt,
    ) -> Result<Built, BuildError> {
        let started = Instant::now();
        let fail = |detail: String| BuildError::Result { platform: platform.clone(), detail };
        let blobs = layout.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).map_err(|e| fail(format!("cannot create `{}`: {e}", blobs.display())))?;
        let scratch = tempfile::Builder::new()
            .prefix(".archway-assemble-")
            .tempdir_in(layout)
            .map_err(|e| fail(format!("no temporary directory in `{}`: {e}", layout.display())))?;

        let result = dispatch::assemble(self, spec, platform, scratch.path(), &sink, prebuilt).await?;

        // Base layers: from the download area into the layout.
        let mut descriptors = Vec::new();
        let mut mounts = Vec::new();
        let mut image = result.image.clone();
        for l in &result.layers {
            match l {
                dispatch::LayerSource::Base { descriptor, path, from } => {
                    mounts.push((descriptor.digest.clone(), (**from).clone()));
                    let to = blobs.join(descriptor.digest.hex());
                    if !to.exists() {
                        link_or_copy(path, &to)
                            .map_err(|e| fail(format!("copying base layer {}: {e}", descriptor.digest)))?;
                    }
                    descriptors.push(serde_json::json!({
                        "mediaType": oci_layer_type(&descriptor.media_type),
                        "digest": descriptor.digest,
                        "size": descriptor.size,
                    }));
                }
                dispatch::LayerSource::New(_) => descriptors.push(serde_json::Value::Null),
            }
        }
        // New layers: compressed in parallel.
        let made = futures_util::future::try_join_all(result.layers.iter().enumerate().filter_map(|(i, l)| match l {
            dispatch::LayerSource::New(entries) => {
                let blobs = &blobs;
                Some(async move { self.make_layer(entries.clone(), blobs).await.map(|b| (i, b)) })
            }
            dispatch::LayerSource::Base { .. } => None,
        }))
        .await
        .map_err(|e| fail(format!("writing a layer: {e}")))?;
        let new_diff_ids: HashMap<usize, Digest> = made.iter().map(|(i, (b, _))| (*i, b.diff_id.clone())).collect();
        let reused: Vec<Blob> =
            made.iter().filter(|(_, (_, from))| from.is_some()).map(|(_, (b, _))| b.clone()).collect();
        for (_, (b, from)) in &made {
            if let Some(from) = from {
                mounts.push((b.digest.clone(), from.clone()));
            }
        }
        let made: Vec<(usize, Blob)> = made.into_iter().map(|(i, (b, _))| (i, b)).collect();
        for (i, b) in &made {
            descriptors[*i] = serde_json::json!({"mediaType": b.media_type, "digest": b.digest, "size": b.size});
        }
        // diff_ids: the base's as its config says, ours as computed.
        let mut diff_ids = Vec::new();
        let mut base_ids = result.base_diff_ids.iter();
        for (i, l) in result.layers.iter().enumerate() {
            match l {
                dispatch::LayerSource::Base { .. } => diff_ids.push(
                    base_ids
                        .next()
                        .cloned()
                        .ok_or_else(|| fail("a base image has more layers than diff_ids".into()))?,
                ),
                dispatch::LayerSource::New(_) => diff_ids.push(new_diff_ids[&i].clone()),
            }
        }
        image.diff_ids = diff_ids;
        for (k, v) in &spec.labels {
            image.config.labels.insert(k.clone(), v.clone());
        }
        let config = image.to_json(&rfc3339(self.options.epoch));
        let config_digest = write_blob(&blobs, &config).map_err(|e| fail(e.to_string()))?;
        let mut manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": oci::OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
            "layers": descriptors,
        });
        if !spec.annotations.is_empty() {
            manifest["annotations"] =
                serde_json::json!(spec.annotations.iter().cloned().collect::<std::collections::BTreeMap<_, _>>());
        }
        let bytes = serde_json::to_vec(&manifest).expect("a manifest serialises");
        let digest = write_blob(&blobs, &bytes).map_err(|e| fail(e.to_string()))?;
        let descriptor = Descriptor {
            media_type: oci::OCI_MANIFEST.into(),
            digest,
            size: bytes.len() as u64,
            platform: Some(DescriptorPlatform {
                architecture: image.architecture.clone(),
                os: image.os.clone(),
                variant: Some(image.variant.clone()).filter(|v| !v.is_empty()),
                os_version: None,
            }),
            annotations: None,
            artifact_type: None,
        };
        let index = Index {
            schema_version: 2,
            media_type: oci::OCI_INDEX.into(),
            manifests: vec![descriptor.clone()],
            annotations: None,
        };
        std::fs::write(layout.join("index.json"), index.to_bytes()).map_err(|e| fail(e.to_string()))?;
        std::fs::write(layout.join("oci-layout"), b"{\"imageLayoutVersion\":\"1.0.0\"}")
            .map_err(|e| fail(e.to_string()))?;
        let new_bytes: u64 = made.iter().map(|(_, b)| b.size).sum::<u64>() - reused.iter().map(|b| b.size).sum::<u64>();
        sink(
            platform,
            &format!(
                "wrote {} new layer(s), {} compressed; reused {} by content; manifest {}",
                made.len() - reused.len(),
                crate::report::human_size(new_bytes),
                reused.len(),
                descriptor.digest
            ),
        );
        Ok(Built {
            platform: platform.clone(),
            descriptor,
            duration: started.elapsed(),
            layout: layout.to_path_buf(),
            mounts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_media_types() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1796032149), "2026-11-30T09:49:09Z");
        assert_eq!(rfc3339(951782400), "2000-02-29T00:00:00Z");
        assert_eq!(
            oci_layer_type("application/vnd.docker.image.rootfs.diff.tar.gzip"),
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
    }
}
