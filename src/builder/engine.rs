//! engine: builds the engine's own platform with its classic builder through the Engine API
//! (`bollard`), for runners where buildx is missing or refused (Bitbucket's default runtime).
//! The context is sent as a tar (honouring `.dockerignore`), the image is exported with
//! `docker save` semantics and turned into a gzip-compressed OCI image layout, so the rest of
//! archway pushes it by digest like any other platform. The temporary image tag is removed.

use std::collections::HashMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use bollard::Docker;
use futures_util::StreamExt as _;

use super::{BuildError, BuildSpec, Builder, Built, LineSink, Tail};
use crate::oci::{self, Descriptor, Index};
use crate::platform::Platform;
use crate::reference::Digest;

/// Name of the Dockerfile inside the context tar (the user's may live outside the context).
const DOCKERFILE_IN_TAR: &str = ".archway.Dockerfile";

pub struct EngineBuilder {
    pub docker: Docker,
}

impl EngineBuilder {
    /// Connects to the engine at `endpoint` (the runner's, from `inputs`).
    pub async fn connect(endpoint: &crate::probe::engine::EngineEndpoint) -> Result<Self, crate::probe::ProbeError> {
        crate::probe::engine::connect(&endpoint.host, endpoint.cert_dir.as_deref())
            .await
            .map(|docker| EngineBuilder { docker })
    }
}

/// The build context as a tar, with `dockerfile` added under `DOCKERFILE_IN_TAR`.
fn context_tar_with(spec: &BuildSpec, dockerfile: &[u8]) -> std::io::Result<Vec<u8>> {
    // The classic builder reads `.dockerignore` at the context's root; the patterns are
    // BuildKit's (one matcher for every builder: `assemble::ignore`).
    let text = std::fs::read_to_string(spec.context.join(".dockerignore")).unwrap_or_default();
    let ignore = super::assemble::ignore::Matcher::new(&super::assemble::ignore::read_ignore_file(&text))
        .map_err(|e| std::io::Error::other(format!(".dockerignore: {e}")))?;
    let mut tar = tar::Builder::new(Vec::new());
    tar.follow_symlinks(false);
    let mut stack = vec![spec.context.clone()];
    while let Some(dir) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&dir)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let path = e.path();
            let rel =
                path.strip_prefix(&spec.context).expect("inside the context").to_string_lossy().replace('\\', "/");
            let ft = e.file_type()?;
            if ignore.matches(&rel) {
                // An excluded directory is still walked when a `!` exception may re-include
                // something under it.
                if ft.is_dir() && !ignore.can_skip_dir(&rel) {
                    stack.push(path);
                }
                continue;
            }
            if ft.is_dir() {
                tar.append_dir(&rel, &path)?;
                stack.push(path);
            } else {
                tar.append_path_with_name(&path, &rel)?;
            }
        }
    }
    let mut h = tar::Header::new_gnu();
    h.set_size(dockerfile.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    tar.append_data(&mut h, DOCKERFILE_IN_TAR, dockerfile)?;
    tar.into_inner()
}

fn write_blob(layout: &Path, bytes: &[u8]) -> std::io::Result<Digest> {
    let d = Digest::of(bytes);
    std::fs::write(layout.join("blobs/sha256").join(d.hex()), bytes)?;
    Ok(d)
}

/// Turns a `docker save` archive (OCI layout on Docker ≥ 25, or the older `manifest.json`
/// form) into an OCI image layout at `layout` whose layers are gzip-compressed. Returns the
/// image manifest's descriptor.
fn saved_to_layout(saved: &Path, layout: &Path, platform: &Platform) -> Result<Descriptor, String> {
    let extracted = tempfile::tempdir().map_err(|e| e.to_string())?;
    tar::Archive::new(std::fs::File::open(saved).map_err(|e| e.to_string())?)
        .unpack(extracted.path())
        .map_err(|e| format!("unreadable image archive: {e}"))?;
    let root = extracted.path();
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct SaveEntry {
        config: String,
        layers: Vec<String>,
    }
    let entries: Vec<SaveEntry> =
        serde_json::from_slice(&std::fs::read(root.join("manifest.json")).map_err(|e| e.to_string())?)
            .map_err(|e| format!("unreadable manifest.json in the image archive: {e}"))?;
    let entry = entries.into_iter().next().ok_or("the image archive holds no image")?;
    std::fs::create_dir_all(layout.join("blobs/sha256")).map_err(|e| e.to_string())?;
    let config = std::fs::read(root.join(&entry.config)).map_err(|e| e.to_string())?;
    let config_digest = write_blob(layout, &config).map_err(|e| e.to_string())?;
    let mut layers = Vec::new();
    for l in &entry.layers {
        let mut raw = Vec::new();
        std::fs::File::open(root.join(l)).and_then(|mut f| f.read_to_end(&mut raw)).map_err(|e| e.to_string())?;
        // Layers from a containerd image store arrive compressed already; older engines save
        // plain tars, which are gzipped here so less is pushed.
        let (media_type, data) = if raw.starts_with(&[0x1f, 0x8b]) {
            ("application/vnd.oci.image.layer.v1.tar+gzip", raw)
        } else if raw.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            ("application/vnd.oci.image.layer.v1.tar+zstd", raw)
        } else {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut gz, &raw).map_err(|e| e.to_string())?;
            ("application/vnd.oci.image.layer.v1.tar+gzip", gz.finish().map_err(|e| e.to_string())?)
        };
        let d = write_blob(layout, &data).map_err(|e| e.to_string())?;
        layers.push(serde_json::json!({"mediaType": media_type, "digest": d, "size": data.len()}));
    }
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": oci::OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": layers,
    });
    let bytes = serde_json::to_vec(&manifest).map_err(|e| e.to_string())?;
    let digest = write_blob(layout, &bytes).map_err(|e| e.to_string())?;
    let desc = Descriptor::new(oci::OCI_MANIFEST, digest, bytes.len() as u64).with_platform(platform);
    let index = Index {
        schema_version: 2,
        media_type: oci::OCI_INDEX.into(),
        manifests: vec![desc.clone()],
        annotations: None,
    };
    std::fs::write(layout.join("index.json"), index.to_bytes()).map_err(|e| e.to_string())?;
    std::fs::write(layout.join("oci-layout"), b"{\"imageLayoutVersion\":\"1.0.0\"}").map_err(|e| e.to_string())?;
    Ok(desc)
}

impl EngineBuilder {
    /// Builds `spec` with `dockerfile` as its Dockerfile into the engine under `tag`, with the
    /// classic builder; every output line to `sink`. `Err` with the builder's error message.
    pub async fn build_tagged(
        &self,
        spec: &BuildSpec,
        dockerfile: &[u8],
        tag: &str,
        platform: &Platform,
        sink: LineSink,
    ) -> Result<(), String> {
        let (spec2, dockerfile) = (spec.clone(), dockerfile.to_vec());
        let tar = tokio::task::spawn_blocking(move || context_tar_with(&spec2, &dockerfile))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| {
                let msg = format!("the context cannot be read: {e}");
                sink(platform, &msg);
                msg
            })?;
        let options = bollard::query_parameters::BuildImageOptions {
            dockerfile: DOCKERFILE_IN_TAR.into(),
            t: Some(tag.to_string()),
            rm: true,
            forcerm: true,
            buildargs: Some(spec.build_args.iter().cloned().collect::<HashMap<_, _>>()),
            target: spec.target.clone().unwrap_or_default(),
            labels: (!spec.labels.is_empty()).then(|| spec.labels.iter().cloned().collect::<HashMap<_, _>>()),
            version: bollard::query_parameters::BuilderVersion::BuilderV1,
            // The build inputs the classic builder honours (the plan refuses the others).
            nocache: spec.options.no_cache,
            pull: spec.options.pull.then(|| "1".to_string()),
            networkmode: spec.options.network.clone(),
            ..Default::default()
        };
        let mut stream = self.docker.build_image(options, None, Some(bollard::body_full(tar.into())));
        let mut error = None;
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(s) = info.stream {
                        for l in s.lines().filter(|l| !l.trim().is_empty()) {
                            sink(platform, l);
                        }
                    }
                    if let Some(e) = info.error_detail.and_then(|d| d.message) {
                        sink(platform, &e);
                        error = Some(e);
                    }
                }
                Err(e) => {
                    let msg = e.to_string();
                    sink(platform, &msg);
                    error = Some(msg);
                }
            }
        }
        error.map_or(Ok(()), Err)
    }
}

impl Builder for EngineBuilder {
    fn name(&self) -> &'static str {
        "the engine's classic builder"
    }

    async fn build(
        &self,
        spec: &BuildSpec,
        platform: &Platform,
        layout: &Path,
        sink: LineSink,
    ) -> Result<Built, BuildError> {
        let started = Instant::now();
        let fail = |status: &str, tail: String| BuildError::Failed {
            platform: platform.clone(),
            command: "POST /build (Engine API, classic builder)".into(),
            status: status.into(),
            tail,
        };
        let dockerfile = std::fs::read(&spec.dockerfile)
            .map_err(|e| fail("an unreadable Dockerfile", format!("  │ {}: {e}", spec.dockerfile.display())))?;
        let tag = format!("archway-build/{}:{}", platform.slug(), std::process::id());
        let tail = Tail::default();
        let lines: LineSink = {
            let tail = tail.clone();
            std::sync::Arc::new(move |p: &Platform, line: &str| {
                sink(p, line);
                tail.push(line);
            })
        };
        if self.build_tagged(spec, &dockerfile, &tag, platform, lines).await.is_err() {
            return Err(fail("an error", tail.render()));
        }
        // Export, then drop the temporary tag whatever happens.
        let saved = tempfile::NamedTempFile::new().map_err(|e| fail("an internal error", e.to_string()))?;
        let export = async {
            let mut out = tokio::fs::File::create(saved.path()).await?;
            let mut s = self.docker.export_image(&tag);
            while let Some(chunk) = s.next().await {
                let chunk = chunk.map_err(std::io::Error::other)?;
                tokio::io::AsyncWriteExt::write_all(&mut out, &chunk).await?;
            }
            tokio::io::AsyncWriteExt::flush(&mut out).await
        }
        .await;
        let _ = self.docker.remove_image(&tag, None::<bollard::query_parameters::RemoveImageOptions>, None).await;
        export.map_err(|e| BuildError::Result {
            platform: platform.clone(),
            detail: format!("exporting the image: {e}"),
        })?;
        let (saved_path, layout_path, p) = (saved.path().to_path_buf(), layout.to_path_buf(), platform.clone());
        let descriptor = tokio::task::spawn_blocking(move || saved_to_layout(&saved_path, &layout_path, &p))
            .await
            .map_err(|e| BuildError::Result { platform: platform.clone(), detail: e.to_string() })?
            .map_err(|detail| BuildError::Result { platform: platform.clone(), detail })?;
        Ok(Built {
            platform: platform.clone(),
            descriptor,
            duration: started.elapsed(),
            layout: PathBuf::from(layout),
            mounts: vec![],
        })
    }
}
