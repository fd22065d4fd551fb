//! build: turns one platform of a request into a built, pushed (by digest) or exported image.
//!
//! One file per builder behind the `Builder` trait. Every builder exports its result as an
//! OCI image layout in a directory it is given; archway pushes from there by digest. That
//! works with every buildx driver (the `docker` driver cannot push by digest itself) and keeps
//! retries and digest checks in archway's registry client. Builders never move tags: that is
//! `publish`'s job, once every platform has succeeded.

pub mod assemble;
pub mod buildx;
mod buildx_classic;
pub mod credentials;
pub mod engine;
pub mod options;
pub mod qemu;
pub mod saved;
pub mod schedule;
pub mod stages;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::oci::Descriptor;
use crate::platform::Platform;

/// What to build, independent of the platform.
#[derive(Debug, Clone)]
pub struct BuildSpec {
    pub context: PathBuf,
    pub dockerfile: PathBuf,
    pub build_args: Vec<(String, String)>,
    pub target: Option<String>,
    pub provenance: Option<String>,
    pub sbom: Option<String>,
    /// Image config labels and manifest annotations.
    pub labels: Vec<(String, String)>,
    pub annotations: Vec<(String, String)>,
    /// docker/build-push-action's build inputs (cache, secrets, ssh, contexts, …).
    pub options: options::BuildOptions,
}

/// The result of one platform's build.
#[derive(Debug, Clone)]
pub struct Built {
    pub platform: Platform,
    /// What the builder produced: an image manifest, or an index when it added attestations.
    pub descriptor: Descriptor,
    pub duration: Duration,
    /// The OCI image layout holding the result's blobs.
    pub layout: PathBuf,
    /// Blobs the layout may lack, and a repository that has each: a base image's layers, or
    /// layers reused by content from the image under the tag or `--cache-from`. Pushing
    /// mounts them from there instead of uploading.
    pub mounts: Vec<(crate::reference::Digest, crate::reference::Reference)>,
}

/// Receives a builder's output, one line at a time, for the log.
pub type LineSink = Arc<dyn Fn(&Platform, &str) + Send + Sync>;

/// Receives the lines of a build of several platforms that belong to none of them (loading
/// the definition and the context, exporting).
pub type SharedSink = Arc<dyn Fn(&str) + Send + Sync>;

/// Lines of a failed build's output repeated in its error.
const TAIL_LINES: usize = 25;

/// The last lines of a builder's output, kept for its error message; shared by the tasks that
/// read the builder's streams.
#[derive(Clone, Default)]
pub(crate) struct Tail(Arc<std::sync::Mutex<std::collections::VecDeque<String>>>);

impl Tail {
    pub(crate) fn push(&self, line: &str) {
        let mut t = self.0.lock().unwrap();
        if t.len() == TAIL_LINES {
            t.pop_front();
        }
        t.push_back(line.to_string());
    }

    /// The kept lines, indented under the error.
    pub(crate) fn render(&self) -> String {
        self.0.lock().unwrap().iter().map(|l| format!("  │ {l}")).collect::<Vec<_>>().join("\n")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{platform}: cannot start `{program}`: {detail}")]
    Spawn { platform: Platform, program: String, detail: String },
    #[error("{platform}: build failed (`{command}` exited with {status})\n{tail}")]
    Failed { platform: Platform, command: String, status: String, tail: String },
    #[error("{platform}: the builder finished but its result is unreadable: {detail}")]
    Result { platform: Platform, detail: String },
    /// The builder cannot do what was asked here (attestations on the classic image store);
    /// `detail` says why and what to change.
    #[error("{platform}: {detail}")]
    Unsupported { platform: Platform, detail: String },
    /// The assembler cannot do what an instruction asks (a RUN, an ADD of a git repository).
    #[error("{platform}: {file}:{line}: `{instruction}` cannot be assembled: {reason}")]
    NotAssemblable { platform: Platform, file: String, line: usize, instruction: String, reason: String },
    /// An instruction failed while assembling: a missing or escaping source, a base image that
    /// cannot be read, an invalid value.
    #[error("{platform}: {file}:{line}: {message}")]
    Assemble { platform: Platform, file: String, line: usize, message: String },
}

impl BuildError {
    pub fn platform(&self) -> &Platform {
        match self {
            BuildError::Spawn { platform, .. }
            | BuildError::Failed { platform, .. }
            | BuildError::Result { platform, .. }
            | BuildError::Unsupported { platform, .. }
            | BuildError::NotAssemblable { platform, .. }
            | BuildError::Assemble { platform, .. } => platform,
        }
    }
}

/// A way to build one platform.
pub trait Builder: Send + Sync {
    /// A short name for logs (`buildx`).
    fn name(&self) -> &'static str;

    fn build(
        &self,
        spec: &BuildSpec,
        platform: &Platform,
        layout: &std::path::Path,
        sink: LineSink,
    ) -> impl std::future::Future<Output = Result<Built, BuildError>> + Send;
}

/// The builder the plan chose for one platform.
pub enum Chosen {
    Buildx(buildx::Buildx),
    Engine(engine::EngineBuilder),
    /// Shared by every assembled platform, so a layer they have in common is made once.
    Assembled(Arc<assemble::Assembler>),
    /// A hybrid build: the engine builds `stages` (shared by every hybrid platform, so a stage
    /// built once for all is built once), the assembler the rest.
    Hybrid {
        assembler: Arc<assemble::Assembler>,
        engine: Arc<stages::EngineStages>,
        stages: Vec<crate::dockerfile::EngineStage>,
    },
}

impl Builder for Chosen {
    fn name(&self) -> &'static str {
        match self {
            Chosen::Buildx(b) => b.name(),
            Chosen::Engine(b) => b.name(),
            Chosen::Assembled(b) | Chosen::Hybrid { assembler: b, .. } => b.name(),
        }
    }

    async fn build(
        &self,
        spec: &BuildSpec,
        platform: &Platform,
        layout: &std::path::Path,
        sink: LineSink,
    ) -> Result<Built, BuildError> {
        match self {
            Chosen::Buildx(b) => b.build(spec, platform, layout, sink).await,
            Chosen::Engine(b) => b.build(spec, platform, layout, sink).await,
            Chosen::Assembled(b) => b.build(spec, platform, layout, sink).await,
            Chosen::Hybrid { assembler, engine, stages } => {
                let prebuilt = engine.export(spec, stages, platform, &sink).await?;
                assembler.build_with(spec, platform, layout, sink, &prebuilt).await
            }
        }
    }
}
