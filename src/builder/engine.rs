//! engine: builds the engine's own platform with its classic builder through the Engine API
//! (`bollard`), for runners where buildx is missing or refused (Bitbucket's default runtime).
//! The context is sent as a tar (honouring `.dockerignore`); the image, built under a
//! temporary tag, becomes an OCI image layout through `saved` (as buildx's `docker` driver's
//! results do over the classic image store).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use bollard::Docker;
use futures_util::StreamExt as _;

use super::{BuildError, BuildSpec, Builder, Built, LineSink, Tail};
use crate::platform::Platform;

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

/// The build context as a tar, with `dockerfile` added under `DOCKERFILE_IN_TAR`, written to
/// an unnamed temporary file (a context of any size, never whole in memory) and rewound.
fn context_tar_with(spec: &BuildSpec, dockerfile: &[u8]) -> std::io::Result<std::fs::File> {
    // The classic builder reads `.dockerignore` at the context's root; the patterns are
    // BuildKit's (one matcher for every builder: `assemble::ignore`).
    let text = std::fs::read_to_string(spec.context.join(".dockerignore")).unwrap_or_default();
    let ignore = super::assemble::ignore::Matcher::new(&super::assemble::ignore::read_ignore_file(&text))
        .map_err(|e| std::io::Error::other(format!(".dockerignore: {e}")))?;
    let mut tar = tar::Builder::new(std::io::BufWriter::with_capacity(256 * 1024, tempfile::tempfile()?));
    tar.follow_symlinks(false);
    // Plain entries for sparse files too: the engine's untar refuses GNU sparse headers
    // ("unhandled tar header type 83"), which `tar` writes for them by default.
    tar.sparse(false);
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
    let mut file = tar.into_inner()?.into_inner().map_err(|e| e.into_error())?;
    std::io::Seek::rewind(&mut file)?;
    Ok(file)
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
        let body = tokio_util::io::ReaderStream::with_capacity(tokio::fs::File::from_std(tar), 256 * 1024);
        let mut stream = self.docker.build_image(options, None, Some(bollard::body_try_stream(body)));
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
        let descriptor = super::saved::export(&self.docker, &tag, layout, platform, &spec.annotations)
            .await
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
