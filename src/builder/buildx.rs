//! buildx: builds by running `docker buildx build` as a child process (an argument vector,
//! never a shell), streaming its progress and reading the result from buildx's
//! `--metadata-file`. One platform per invocation ([`Builder::build`]), or every platform
//! the local engine builds in one invocation ([`Buildx::build_together`]), so BuildKit solves
//! the graph once and what the platforms share (a `$BUILDPLATFORM` stage) is built once; that
//! result is split back into one [`Built`] per platform. Never moves a tag.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;

use super::{BuildError, BuildSpec, Builder, Built, LineSink, SharedSink, Tail};
use crate::oci::{self, Descriptor, Index};
use crate::platform::Platform;
use crate::probe::engine::EngineEndpoint;
use crate::reference::Digest;

pub struct Buildx {
    /// How buildx runs: its plugin directly, or `docker buildx`; `docker` itself for the rest.
    pub program: crate::probe::buildx::BuildxProgram,
    /// Archway's registry credential, handed to buildx through a credential helper.
    pub credentials: Option<std::sync::Arc<super::credentials::CredentialBridge>>,
    /// Build on this remote engine instead of the local one.
    pub remote: Option<RemoteEngine>,
    /// Ask buildx for `--progress rawjson` instead of `plain` (archway's `--progress rawjson`).
    pub rawjson: bool,
    /// How the result leaves buildx.
    pub export: Export,
}

/// How buildx hands its result to archway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Export {
    /// `--output type=oci,tar=false,dest=DIR`: buildx writes the OCI layout itself.
    Oci,
    /// buildx's `docker` driver over the classic image store refuses OCI and docker-archive
    /// output, attestations and several platforms at once. So each platform is built alone
    /// and loaded into that engine under a temporary tag (`--output type=image,name=TAG`),
    /// read back as `docker save` does and turned into an OCI layout (`saved`); the tag is
    /// removed. The endpoint is the engine buildx builds on: the local one or the node.
    Engine(EngineEndpoint),
}

/// A remote Docker engine buildx builds on, through `DOCKER_HOST` for this one invocation.
#[derive(Debug, Clone)]
pub struct RemoteEngine {
    /// `tcp://HOST:PORT` or `ssh://USER@HOST`.
    pub endpoint: String,
    /// `ca.pem`, `cert.pem`, `key.pem` for TLS (`DOCKER_TLS_VERIFY`/`DOCKER_CERT_PATH`).
    pub cert_dir: Option<PathBuf>,
}

impl Buildx {
    /// The `--output` value for an OCI layout at `layout` (holding an index over the platforms
    /// when there are several).
    pub fn oci_output(layout: &Path) -> String {
        format!("type=oci,tar=false,dest={}", layout.display())
    }

    /// The `--output` value that loads the image into the engine under `tag`.
    pub fn image_output(tag: &str) -> String {
        format!("type=image,name={tag}")
    }

    /// The argument vector for `platforms` (without the program), exporting to `output`.
    pub fn args(spec: &BuildSpec, platforms: &[Platform], output: &str, metadata_file: &Path) -> Vec<String> {
        let names: Vec<String> = platforms.iter().map(Platform::to_string).collect();
        let mut a: Vec<String> = vec![
            "buildx".into(),
            "build".into(),
            "--platform".into(),
            names.join(","),
            "--progress".into(),
            "plain".into(),
            "--metadata-file".into(),
            metadata_file.display().to_string(),
            "--file".into(),
            spec.dockerfile.display().to_string(),
        ];
        for (k, v) in &spec.build_args {
            a.push("--build-arg".into());
            a.push(format!("{k}={v}"));
        }
        if let Some(t) = &spec.target {
            a.push("--target".into());
            a.push(t.clone());
        }
        for (k, v) in &spec.labels {
            a.push("--label".into());
            a.push(format!("{k}={v}"));
        }
        for (k, v) in &spec.annotations {
            a.push("--annotation".into());
            a.push(format!("{k}={v}"));
        }
        if let Some(v) = &spec.provenance {
            a.push(format!("--provenance={v}"));
        }
        if let Some(v) = &spec.sbom {
            a.push(format!("--sbom={v}"));
        }
        // A platform built alone gets its own cache scope; several at once share one.
        let scope = match platforms {
            [one] => Some(one.slug()),
            _ => None,
        };
        a.extend(spec.options.args(scope.as_deref()));
        a.push("--output".into());
        a.push(output.to_string());
        a.push(spec.context.display().to_string());
        a
    }
}

/// Where buildx's output lines go.
#[derive(Clone)]
pub(super) enum Route {
    /// Every line is this platform's.
    One(Platform, LineSink),
    /// A build of several platforms: a line goes to the platform its step names, else (the
    /// build definition, the context, the export) to `shared`.
    Many { steps: Arc<Mutex<Steps>>, sink: LineSink, shared: SharedSink },
}

impl Route {
    fn send(&self, line: &str) {
        match self {
            Route::One(p, sink) => sink(p, line),
            // buildx separates steps with blank lines; with a prefix on every line they only
            // add noise.
            Route::Many { .. } if line.is_empty() => {}
            Route::Many { steps, sink, shared } => {
                let owner = steps.lock().unwrap().route(line);
                match owner {
                    Some(p) => sink(&p, line),
                    None => shared(line),
                }
            }
        }
    }

    /// The platforms the lines are for, as the timing lines name them (`linux/amd64,linux/arm64`).
    fn platforms(&self) -> String {
        match self {
            Route::One(p, _) => p.to_string(),
            Route::Many { steps, .. } => {
                steps.lock().unwrap().platforms.iter().map(Platform::to_string).collect::<Vec<_>>().join(",")
            }
        }
    }
}

/// Forwards each line and keeps the last few for the error message; says how long buildx's
/// export took (the `export` timing) when its step ends.
async fn pump(reader: impl AsyncRead + Unpin, route: Route, tail: Tail) {
    let mut lines = BufReader::new(reader).lines();
    let mut export = ExportStep::default();
    while let Ok(Some(line)) = lines.next_line().await {
        route.send(&line);
        tail.push(&line);
        if let Some(secs) = export.see(&line) {
            let platform = route.platforms();
            tracing::debug!(target: super::schedule::TIMINGS, %platform, phase = "export", secs, "timing");
        }
    }
}

/// A line of buildx's plain progress that belongs to a step: its number and the rest
/// (`#7 [linux/arm64 stage-1 2/3] RUN …` → `7`, `[linux/arm64 …`).
fn step_line(line: &str) -> Option<(u64, &str)> {
    let (number, rest) = line.strip_prefix('#')?.split_once(' ')?;
    Some((number.parse().ok()?, rest))
}

/// Finds buildx's export step in its plain progress (`#10 exporting to oci image format`, `…
/// to image`, `… to client tarball`) and the time buildx gives it when it ends (`#10 DONE
/// 0.3s`): the part of a build spent writing the result, not solving.
#[derive(Debug, Default)]
pub struct ExportStep {
    number: Option<u64>,
}

impl ExportStep {
    /// The export's seconds, on the line that ends it.
    pub fn see(&mut self, line: &str) -> Option<f64> {
        let (number, rest) = step_line(line)?;
        if rest.starts_with("exporting to ") {
            self.number = Some(number);
            return None;
        }
        if self.number != Some(number) {
            return None;
        }
        rest.strip_prefix("DONE ")?.strip_suffix('s')?.parse().ok()
    }
}

/// Attributes the lines of buildx's plain progress to the platforms of a build of several.
/// A step's first line names its platform (`#7 [linux/arm64 stage-1 2/3] RUN …`); its later
/// lines carry only its number (`#7 0.12 …`, `#7 ERROR: …`). The error summary repeats the
/// failed step's name (` > [linux/arm64 stage-1 2/3] RUN …:`). Remembers which platforms had a
/// step fail; a step BuildKit cancelled because another failed is not a failure of its own.
#[derive(Debug, Default)]
pub struct Steps {
    platforms: Vec<Platform>,
    owner: HashMap<u64, Platform>,
    failed: Vec<Platform>,
}

impl Steps {
    pub fn new(platforms: &[Platform]) -> Self {
        Steps { platforms: platforms.to_vec(), ..Steps::default() }
    }

    /// The platform `line` belongs to, if it names or continues a step of one of ours.
    pub fn route(&mut self, line: &str) -> Option<Platform> {
        if let Some(rest) = line.strip_prefix(" > [") {
            let p = self.ours(rest)?;
            self.fail(&p);
            return Some(p);
        }
        let (number, rest) = step_line(line)?;
        if let Some(name) = rest.strip_prefix('[') {
            let p = self.ours(name)?;
            self.owner.insert(number, p.clone());
            return Some(p);
        }
        let p = self.owner.get(&number)?.clone();
        if rest.starts_with("ERROR") {
            self.fail(&p);
        }
        Some(p)
    }

    /// The platforms that had a step fail, in the order they were requested.
    pub fn failed(&self) -> Vec<Platform> {
        self.platforms.iter().filter(|p| self.failed.contains(p)).cloned().collect()
    }

    fn fail(&mut self, p: &Platform) {
        if !self.failed.contains(p) {
            self.failed.push(p.clone());
        }
    }

    /// The platform a step name starts with (`linux/arm64 stage-1 2/3]`), when it is one of
    /// ours. A stage for another platform names both (`linux/amd64->arm64 build 1/2]`: the
    /// build platform, then the target's architecture, or its whole platform when the OS
    /// differs); the step is the target's.
    fn ours(&self, name: &str) -> Option<Platform> {
        let word = name.split([' ', ']']).next()?;
        let p = match word.split_once("->") {
            None => word.parse::<Platform>().ok()?,
            Some((base, target)) => {
                let base: Platform = base.parse().ok()?;
                format!("{}/{target}", base.os).parse().or_else(|_| target.parse()).ok()?
            }
        };
        self.platforms.contains(&p).then_some(p)
    }
}

#[derive(serde::Deserialize)]
struct Metadata {
    #[serde(rename = "containerimage.descriptor")]
    descriptor: Option<Descriptor>,
    #[serde(rename = "containerimage.digest")]
    digest: Option<String>,
}

/// Why one buildx invocation did not give a result.
pub(super) enum RunError {
    Spawn {
        program: String,
        detail: String,
    },
    Failed {
        command: String,
        status: String,
        tail: String,
    },
    Result(String),
    /// What was asked cannot be done with this builder; the text says why and what to change.
    Unsupported(String),
}

impl Buildx {
    /// A `docker` command with the environment every invocation gets: archway's credentials,
    /// and the remote engine's `DOCKER_HOST` when there is one.
    pub(super) fn command(&self) -> Command {
        self.with_env(Command::new(&self.program.docker))
    }

    /// [`Buildx::command`] for `docker ARGS` where `args` start with `buildx`: the plugin itself
    /// runs them where archway found it.
    /// A node reached over TLS goes through `docker`, which turns `DOCKER_TLS_VERIFY` into the
    /// plugin's TLS settings; buildx standalone ignores that variable.
    fn buildx_command(&self, args: &[String]) -> Command {
        match self.remote.as_ref().is_some_and(|r| r.cert_dir.is_some()) {
            true => self.with_env(crate::probe::buildx::BuildxProgram::through(&self.program.docker).command(args)),
            false => self.with_env(self.program.command(args)),
        }
    }

    fn with_env(&self, mut cmd: Command) -> Command {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        // BuildKit's plain progress is what users paste into bug reports; keep it uncoloured.
        cmd.env("BUILDKIT_COLORS", "").env("NO_COLOR", "1");
        if let Some(c) = &self.credentials {
            c.apply(&mut cmd);
        }
        if let Some(r) = &self.remote {
            // The remote engine's own default builder; the user's selected local builder and
            // context must not apply.
            use crate::env::{BUILDX_BUILDER, DOCKER_CERT_PATH, DOCKER_CONTEXT, DOCKER_HOST, DOCKER_TLS_VERIFY};
            cmd.env(DOCKER_HOST, &r.endpoint).env_remove(DOCKER_CONTEXT).env_remove(BUILDX_BUILDER);
            match &r.cert_dir {
                Some(d) => cmd.env(DOCKER_TLS_VERIFY, "1").env(DOCKER_CERT_PATH, d),
                None => cmd.env_remove(DOCKER_TLS_VERIFY),
            };
        }
        cmd
    }

    /// Runs `docker ARGS` to the end, its lines going to `route`.
    pub(super) async fn invoke(&self, spec: &BuildSpec, args: &[String], route: Route) -> Result<(), RunError> {
        let program = self.program.docker.display().to_string();
        // A remote node builds with its own engine's builder, never the `builder` input's.
        let mut args = args.to_vec();
        if self.rawjson
            && let Some(i) = args.iter().position(|a| a == "--progress")
        {
            args[i + 1] = "rawjson".into();
        }
        if self.remote.is_some()
            && let Some(at) = args.iter().position(|a| a == "--builder")
        {
            args.drain(at..at + 2);
        }
        let command_line = format!("{program} {}", args.join(" "));
        let (runs, _) = self.program.program_and_args(&args);
        tracing::debug!(%command_line, program = %runs.display(), "running");
        let mut cmd = self.buildx_command(&args);
        spec.options.apply(&mut cmd);
        let mut child = cmd.spawn().map_err(|e| RunError::Spawn { program: program.clone(), detail: e.to_string() })?;
        let tail = Tail::default();
        let out = tokio::spawn(pump(child.stdout.take().expect("piped"), route.clone(), tail.clone()));
        let err = tokio::spawn(pump(child.stderr.take().expect("piped"), route, tail.clone()));
        let status = child.wait().await.map_err(|e| RunError::Spawn { program, detail: e.to_string() })?;
        let _ = tokio::join!(out, err);
        if !status.success() {
            let status = match status.code() {
                Some(c) => format!("status {c}"),
                None => "a signal".into(),
            };
            return Err(RunError::Failed { command: command_line, status, tail: tail.render() });
        }
        Ok(())
    }

    /// Runs one `docker buildx build` for `platforms` into `layout`, and returns the descriptor
    /// buildx reports for what it exported (checked to be in the layout).
    async fn run(
        &self,
        spec: &BuildSpec,
        platforms: &[Platform],
        layout: &Path,
        route: Route,
    ) -> Result<Descriptor, RunError> {
        let meta_dir = tempfile::tempdir().map_err(|e| RunError::Spawn {
            program: "docker".into(),
            detail: format!("no temporary directory: {e}"),
        })?;
        let meta_path = meta_dir.path().join("metadata.json");
        self.invoke(spec, &Self::args(spec, platforms, &Self::oci_output(layout), &meta_path), route).await?;
        let raw =
            std::fs::read(&meta_path).map_err(|e| RunError::Result(format!("no metadata file from buildx: {e}")))?;
        let meta: Metadata =
            serde_json::from_slice(&raw).map_err(|e| RunError::Result(format!("buildx metadata is not JSON: {e}")))?;
        let descriptor = match (meta.descriptor, meta.digest) {
            (Some(d), _) => d,
            (None, Some(_)) | (None, None) => {
                return Err(RunError::Result(
                    "buildx metadata has no `containerimage.descriptor`; buildx 0.10 or newer is needed".into(),
                ));
            }
        };
        if !layout.join("blobs/sha256").join(descriptor.digest.hex()).is_file() {
            return Err(RunError::Result(format!(
                "buildx reported {} but {} does not hold it",
                descriptor.digest,
                layout.display()
            )));
        }
        Ok(descriptor)
    }

    /// Builds every platform of `platforms` (two or more, all on the local engine, with the
    /// same spec) in one invocation into one layout, and splits the result into one [`Built`]
    /// per platform, in the order given. Each platform's lines go to `sink`, the lines no
    /// platform owns to `shared`.
    ///
    /// On failure, one error per platform that failed, each naming it: the platforms whose
    /// steps failed in buildx's output, or every platform when the output names none of them
    /// (the definition, or a stage on the build platform only, failed).
    pub async fn build_together(
        &self,
        spec: &BuildSpec,
        platforms: &[Platform],
        layout: &Path,
        sink: LineSink,
        shared: SharedSink,
    ) -> Result<Vec<Built>, Vec<BuildError>> {
        let started = Instant::now();
        let steps = Arc::new(Mutex::new(Steps::new(platforms)));
        let route = Route::Many { steps: steps.clone(), sink, shared };
        let each = |f: &dyn Fn(&Platform) -> BuildError| platforms.iter().map(f).collect::<Vec<_>>();
        let top = match self.run(spec, platforms, layout, route).await {
            Ok(top) => top,
            Err(RunError::Spawn { program, detail }) => {
                return Err(each(&|p| BuildError::Spawn {
                    platform: p.clone(),
                    program: program.clone(),
                    detail: detail.clone(),
                }));
            }
            Err(RunError::Result(detail)) => {
                return Err(each(&|p| BuildError::Result { platform: p.clone(), detail: detail.clone() }));
            }
            Err(RunError::Unsupported(detail)) => {
                return Err(each(&|p| BuildError::Unsupported { platform: p.clone(), detail: detail.clone() }));
            }
            Err(RunError::Failed { command, status, tail }) => {
                let mut failed = steps.lock().unwrap().failed();
                if failed.is_empty() {
                    failed = platforms.to_vec();
                }
                // The output is shown once, under the first.
                let first = failed[0].clone();
                return Err(failed
                    .into_iter()
                    .map(|p| BuildError::Failed {
                        tail: if p == first { tail.clone() } else { format!("  │ (the same invocation as {first})") },
                        platform: p,
                        command: command.clone(),
                        status: status.clone(),
                    })
                    .collect());
            }
        };
        let index = read_index(layout, &top.digest)
            .map_err(|detail| each(&|p| BuildError::Result { platform: p.clone(), detail: detail.clone() }))?;
        let split = split(&index, platforms);
        let mut built = Vec::new();
        let mut errors = Vec::new();
        for (p, found) in platforms.iter().zip(split) {
            let result = match found {
                None => Err(format!("the index buildx exported ({}) has no image for {p}", top.digest)),
                Some(Part::Image(d)) => Ok(d),
                Some(Part::Index(idx)) => write_index(layout, &idx),
            };
            match result {
                Ok(descriptor) => built.push(Built {
                    platform: p.clone(),
                    descriptor,
                    duration: started.elapsed(),
                    layout: layout.to_path_buf(),
                    mounts: vec![],
                }),
                Err(detail) => errors.push(BuildError::Result { platform: p.clone(), detail }),
            }
        }
        if errors.is_empty() { Ok(built) } else { Err(errors) }
    }
}

fn read_index(layout: &Path, digest: &Digest) -> Result<Index, String> {
    let path = layout.join("blobs/sha256").join(digest.hex());
    let bytes = std::fs::read(&path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("`{}` is not an index: {e}", path.display()))
}

/// Writes `index` into the layout's blobs; its descriptor.
fn write_index(layout: &Path, index: &Index) -> Result<Descriptor, String> {
    let bytes = index.to_bytes();
    let d = Descriptor::of(index.media_type.clone(), &bytes);
    let path = layout.join("blobs/sha256").join(d.digest.hex());
    std::fs::write(&path, &bytes).map_err(|e| format!("cannot write `{}`: {e}", path.display()))?;
    Ok(d)
}

/// One platform's share of a multi-platform index.
#[derive(Debug, PartialEq)]
pub enum Part {
    /// Its image manifest alone.
    Image(Descriptor),
    /// Its image manifest and the attestation manifests that describe it: the index buildx
    /// exports when it builds that platform alone.
    Index(Index),
}

/// Each platform's share of `index` (pure), in the order of `platforms`: its image manifest
/// (found by the platform the index gives it) with the attestations that reference it.
pub fn split(index: &Index, platforms: &[Platform]) -> Vec<Option<Part>> {
    platforms
        .iter()
        .map(|want| {
            let image = index.manifests.iter().find(|d| {
                !d.is_attestation()
                    && d.platform.as_ref().and_then(oci::DescriptorPlatform::platform).as_ref() == Some(want)
            })?;
            let attestations: Vec<Descriptor> =
                index.manifests.iter().filter(|a| a.attests(&image.digest)).cloned().collect();
            if attestations.is_empty() {
                return Some(Part::Image(image.clone()));
            }
            Some(Part::Index(Index {
                schema_version: 2,
                media_type: oci::OCI_INDEX.into(),
                manifests: std::iter::once(image.clone()).chain(attestations).collect(),
                annotations: None,
            }))
        })
        .collect()
}

impl Builder for Buildx {
    fn name(&self) -> &'static str {
        "buildx"
    }

    async fn build(
        &self,
        spec: &BuildSpec,
        platform: &Platform,
        layout: &Path,
        sink: LineSink,
    ) -> Result<Built, BuildError> {
        let started = Instant::now();
        let route = Route::One(platform.clone(), sink);
        let ran = match &self.export {
            Export::Oci => self.run(spec, std::slice::from_ref(platform), layout, route).await,
            Export::Engine(engine) => self.run_loaded(spec, platform, layout, route, engine).await,
        };
        let descriptor = ran.map_err(|e| match e {
            RunError::Spawn { program, detail } => BuildError::Spawn { platform: platform.clone(), program, detail },
            RunError::Failed { command, status, tail } => {
                BuildError::Failed { platform: platform.clone(), command, status, tail }
            }
            RunError::Result(detail) => BuildError::Result { platform: platform.clone(), detail },
            RunError::Unsupported(detail) => BuildError::Unsupported { platform: platform.clone(), detail },
        })?;
        Ok(Built {
            platform: platform.clone(),
            descriptor,
            duration: started.elapsed(),
            layout: layout.to_path_buf(),
            mounts: vec![],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argument_vector() {
        let spec = BuildSpec {
            context: "ctx dir".into(),
            dockerfile: "ctx dir/Dockerfile".into(),
            build_args: vec![("A".into(), "x y".into())],
            target: Some("final".into()),
            provenance: Some("mode=min".into()),
            sbom: None,
            labels: vec![],
            annotations: vec![],
            options: Default::default(),
        };
        let p: Platform = "linux/arm/v7".parse().unwrap();
        let a = Buildx::args(
            &spec,
            std::slice::from_ref(&p),
            &Buildx::oci_output(Path::new("/tmp/out dir")),
            Path::new("/tmp/m.json"),
        );
        assert_eq!(
            a,
            [
                "buildx",
                "build",
                "--platform",
                "linux/arm/v7",
                "--progress",
                "plain",
                "--metadata-file",
                "/tmp/m.json",
                "--file",
                "ctx dir/Dockerfile",
                "--build-arg",
                "A=x y",
                "--target",
                "final",
                "--provenance=mode=min",
                "--output",
                "type=oci,tar=false,dest=/tmp/out dir",
                "ctx dir"
            ]
        );
    }

    #[test]
    fn argument_vector_with_build_inputs_scopes_caches_per_platform() {
        use crate::builder::options::{BuildOptions, BuildSecret, SecretSource};
        let spec = BuildSpec {
            context: ".".into(),
            dockerfile: "Dockerfile".into(),
            build_args: vec![],
            target: None,
            provenance: None,
            sbom: None,
            labels: vec![],
            annotations: vec![],
            options: BuildOptions {
                cache_from: vec!["type=registry,ref=r.io/a/b:buildcache".into()],
                cache_to: vec!["type=registry,ref=r.io/a/b:buildcache,mode=max".into()],
                secrets: vec![BuildSecret {
                    id: "tok".into(),
                    source: SecretSource::Value(crate::secret::Secret::new("v")),
                }],
                ssh: vec!["default".into()],
                build_contexts: vec![("extra".into(), "../extra".into())],
                network: Some("host".into()),
                no_cache: true,
                pull: true,
                ..BuildOptions::default()
            },
        };
        let one: Platform = "linux/arm64".parse().unwrap();
        let a =
            Buildx::args(&spec, std::slice::from_ref(&one), &Buildx::oci_output(Path::new("/o")), Path::new("/m.json"))
                .join(" ");
        assert!(
            a.contains(
                "--cache-from type=registry,ref=r.io/a/b:buildcache-linux-arm64 \
                 --cache-to type=registry,ref=r.io/a/b:buildcache-linux-arm64,mode=max \
                 --secret id=tok,env=ARCHWAY_BUILD_SECRET_0 --ssh default --build-context extra=../extra \
                 --network host --no-cache --pull --output type=oci"
            ),
            "{a}"
        );
        // Several platforms in one invocation share the scope they were given.
        let two = [one, "linux/amd64".parse().unwrap()];
        let a = Buildx::args(&spec, &two, &Buildx::oci_output(Path::new("/o")), Path::new("/m.json")).join(" ");
        assert!(a.contains("--cache-to type=registry,ref=r.io/a/b:buildcache,mode=max"), "{a}");
    }

    fn ps(names: &[&str]) -> Vec<Platform> {
        names.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn steps_route_lines_to_their_platform() {
        let mut s = Steps::new(&ps(&["linux/amd64", "linux/arm64", "linux/arm/v7"]));
        let route = |s: &mut Steps, l: &str| s.route(l).map(|p| p.to_string());
        assert_eq!(route(&mut s, "#1 [internal] load build definition from Dockerfile"), None);
        assert_eq!(route(&mut s, "#1 DONE 0.0s"), None);
        assert_eq!(
            route(&mut s, "#4 [linux/arm/v7 internal] load metadata for r/busybox"),
            Some("linux/arm/v7".into())
        );
        assert_eq!(route(&mut s, "#7 [linux/arm64 stage-1 2/3] RUN uname -m"), Some("linux/arm64".into()));
        assert_eq!(route(&mut s, "#7 0.123 aarch64"), Some("linux/arm64".into()));
        assert_eq!(route(&mut s, "#9 [linux/amd64->arm/v7 build 2/2] RUN make"), Some("linux/arm/v7".into()));
        assert_eq!(route(&mut s, "#9 DONE 0.5s"), Some("linux/arm/v7".into()));
        assert_eq!(route(&mut s, "#16 exporting to oci image format"), None);
        assert_eq!(route(&mut s, ""), None);
        assert_eq!(route(&mut s, "ERROR: failed to solve"), None);
        assert!(s.failed().is_empty());
    }

    #[test]
    fn the_export_step_and_its_time() {
        // Captured from buildx 0.13 (two platforms, OCI layout export).
        let out = include_str!("testdata/buildx-plain-two-platforms.txt");
        let mut e = ExportStep::default();
        let seen: Vec<f64> = out.lines().filter_map(|l| e.see(l)).collect();
        assert_eq!(seen, [0.1], "only the export step's DONE, not the other steps'");
        let mut e = ExportStep::default();
        assert_eq!(e.see("#12 exporting to image"), None);
        assert_eq!(e.see("#11 DONE 2.5s"), None);
        assert_eq!(e.see("#12 exporting layers 0.3s done"), None);
        assert_eq!(e.see("#12 DONE 1.25s"), Some(1.25));
    }

    #[test]
    fn steps_remember_which_platforms_failed() {
        // Captured from buildx 0.13 with the docker driver: one platform's base lacks it.
        let out = "#2 [linux/riscv64 internal] load metadata for r/busybox:latest\n\
                   #2 ERROR: no match for platform in manifest: not found\n\n\
                   #3 [linux/amd64 internal] load metadata for r/busybox:latest\n#3 CANCELED\n\
                   ------\n > [linux/riscv64 internal] load metadata for r/busybox:latest:\n------\n\
                   ERROR: failed to solve: no match for platform in manifest: not found\n";
        let mut s = Steps::new(&ps(&["linux/amd64", "linux/riscv64"]));
        for l in out.lines() {
            s.route(l);
        }
        assert_eq!(s.failed(), ps(&["linux/riscv64"]), "a cancelled step is not a failure of its own");

        let mut s = Steps::new(&ps(&["linux/amd64", "linux/arm64"]));
        s.route(" > [linux/arm64 2/2] RUN false:");
        assert_eq!(s.failed(), ps(&["linux/arm64"]));

        // A stage on a build platform that is not a target belongs to no target.
        let mut s = Steps::new(&ps(&["linux/arm64", "linux/arm/v7"]));
        assert_eq!(s.route("#5 [linux/amd64 gen 2/2] RUN false"), None);
        assert_eq!(s.route("#5 ERROR: exit code: 1"), None);
        assert!(s.failed().is_empty());
    }

    #[test]
    fn split_gives_each_platform_its_image_and_attestations() {
        let image = |n: u8, p: &str| {
            Descriptor::new(oci::OCI_MANIFEST, Digest::of(&[n]), 100).with_platform(&p.parse().unwrap())
        };
        let (amd, arm) = (image(1, "linux/amd64"), image(2, "linux/arm64"));
        let att = Descriptor {
            platform: Some(oci::DescriptorPlatform {
                architecture: "unknown".into(),
                os: "unknown".into(),
                variant: None,
                os_version: None,
            }),
            ..Descriptor::new(oci::OCI_MANIFEST, Digest::of(&[3]), 50)
                .with_annotation(oci::ANN_REFERENCE_TYPE, oci::ATTESTATION_MANIFEST)
                .with_annotation(oci::ANN_REFERENCE_DIGEST, arm.digest.as_str())
        };
        let index = Index {
            schema_version: 2,
            media_type: oci::OCI_INDEX.into(),
            manifests: vec![amd.clone(), arm.clone(), att.clone()],
            annotations: None,
        };
        let parts = split(&index, &ps(&["linux/arm64", "linux/amd64", "linux/arm/v7"]));
        assert_eq!(
            parts,
            vec![
                Some(Part::Index(Index {
                    schema_version: 2,
                    media_type: oci::OCI_INDEX.into(),
                    manifests: vec![arm, att],
                    annotations: None
                })),
                Some(Part::Image(amd)),
                None
            ]
        );
    }
}
