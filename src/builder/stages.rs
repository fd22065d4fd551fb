//! stages: the part of a hybrid build that runs code. Each stage the plan gives to the engine
//! (`plan::Hybrid`) runs on the build platform, so the local engine builds it natively —
//! with buildx, or, where buildx is refused (Bitbucket's default runtime), with its classic
//! builder through the Engine API — once for all target platforms, or once per target when it
//! reads a `TARGET…` ARG. Its filesystem is exported as a tar that the assembler's
//! `COPY --from` reads (`Assembler::build_with`). Nothing here runs target-platform code.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::OnceCell;

use super::buildx::{Buildx, Route, RunError};
use super::engine::EngineBuilder;
use super::{BuildError, BuildSpec, LineSink, Tail};
use crate::dockerfile::EngineStage;
use crate::platform::Platform;

/// How the engine builds the stages.
pub enum StageBuilder {
    /// Runs as every buildx invocation does (credentials, secrets, output lines).
    Buildx(Buildx),
    Classic(EngineBuilder),
}

/// Why a stage's build failed: the command, how it ended, its last lines.
#[derive(Debug, Clone)]
struct Failure {
    command: String,
    status: String,
    tail: String,
}

/// Builds and exports engine stages, each once per key (the stage, plus the target platform
/// when it depends on it), however many platforms ask.
pub struct EngineStages {
    builder: StageBuilder,
    build_platform: Platform,
    /// The platforms whose per-platform stages buildx builds in one invocation (one solve,
    /// one export split by platform): set when the engine can build several at once and
    /// there are several; empty otherwise.
    together: Vec<Platform>,
    dir: tempfile::TempDir,
    cells: std::sync::Mutex<HashMap<String, Cell>>,
}

/// One stage's export, made once: the tar, or why its build failed.
type Cell = Arc<OnceCell<Result<Vec<PathBuf>, Failure>>>;

impl EngineStages {
    pub fn new(builder: StageBuilder, build_platform: Platform) -> std::io::Result<EngineStages> {
        let dir = tempfile::Builder::new().prefix("archway-stages-").tempdir()?;
        Ok(EngineStages { builder, build_platform, together: Vec::new(), dir, cells: Default::default() })
    }

    /// Builds the per-platform stages of `platforms` in one buildx invocation (with buildx
    /// only, and only for two or more platforms).
    pub fn together(mut self, platforms: Vec<Platform>) -> Self {
        if matches!(self.builder, StageBuilder::Buildx(_)) && platforms.len() > 1 {
            self.together = platforms;
        }
        self
    }

    pub fn builder_name(&self) -> &'static str {
        match self.builder {
            StageBuilder::Buildx(_) => "buildx",
            StageBuilder::Classic(_) => "the engine's classic builder",
        }
    }

    /// The filesystem of each of `stages` as built for `target`, by stage name: its layer
    /// tars, in order.
    pub async fn export(
        &self,
        spec: &BuildSpec,
        stages: &[EngineStage],
        target: &Platform,
        sink: &LineSink,
    ) -> Result<crate::builder::assemble::Prebuilt, BuildError> {
        let mut out = HashMap::new();
        for s in stages {
            // Built with the others in one invocation: the export holds every platform's files.
            let at = self.together.iter().position(|p| p == target).filter(|_| s.per_target);
            let key = match at {
                Some(_) => format!("{}@together", s.name),
                None if s.per_target => format!("{}@{}", s.name, target.slug()),
                None => s.name.clone(),
            };
            let cell = self.cells.lock().unwrap().entry(key.clone()).or_default().clone();
            let got = cell
                .get_or_init(|| async {
                    let dest = self.dir.path().join(key.replace(['/', '@'], "-"));
                    let names = self.together.iter().map(Platform::to_string).collect::<Vec<_>>().join(", ");
                    let which = match at {
                        Some(_) => format!("for {names} in one invocation"),
                        None if s.per_target => format!("for {target}"),
                        None => "once for all platforms".into(),
                    };
                    sink(
                        target,
                        &format!(
                            "building stage `{}` on {} with {} ({which})",
                            s.name,
                            self.build_platform,
                            self.builder_name()
                        ),
                    );
                    match at {
                        Some(_) => self.build_together(spec, s, target, &dest, sink).await,
                        None => self.build(spec, s, target, &dest, sink).await,
                    }
                })
                .await;
            match got {
                Ok(layers) => {
                    let mine = match at {
                        Some(i) => vec![layers[i].clone()],
                        None => layers.clone(),
                    };
                    out.insert(s.name.clone(), mine);
                }
                Err(f) => {
                    return Err(BuildError::Failed {
                        platform: target.clone(),
                        command: f.command.clone(),
                        status: format!("{} (building stage `{}` on the build platform)", f.status, s.name),
                        tail: f.tail.clone(),
                    });
                }
            }
        }
        Ok(out)
    }

    /// Builds `stage` for every platform of `together` in one buildx invocation and splits
    /// the export by platform; returns one tar per platform, in `together`'s order.
    async fn build_together(
        &self,
        spec: &BuildSpec,
        stage: &EngineStage,
        target: &Platform,
        dest: &Path,
        sink: &LineSink,
    ) -> Result<Vec<PathBuf>, Failure> {
        let StageBuilder::Buildx(bx) = &self.builder else { unreachable!("`together` is set for buildx only") };
        let tar = dest.with_extension("tar");
        buildx(bx, spec, stage, &self.together, target, &tar, sink).await?;
        let (platforms, dir) = (self.together.clone(), dest.to_path_buf());
        tokio::task::spawn_blocking(move || split_by_platform(&tar, &platforms, &dir))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()))
            .map_err(|detail| Failure {
                command: "splitting buildx's export by platform".into(),
                status: "an error".into(),
                tail: format!("  │ {detail}"),
            })
    }

    /// Builds `stage` for `target` and exports its files under `dest` (a tar, or the image's
    /// layers); returns the layer tars in order.
    async fn build(
        &self,
        spec: &BuildSpec,
        stage: &EngineStage,
        target: &Platform,
        dest: &Path,
        sink: &LineSink,
    ) -> Result<Vec<PathBuf>, Failure> {
        match &self.builder {
            StageBuilder::Buildx(bx) => {
                let tar = dest.with_extension("tar");
                let platforms = if stage.per_target { std::slice::from_ref(target) } else { &[] };
                buildx(bx, spec, stage, platforms, target, &tar, sink).await.map(|()| vec![tar])
            }
            StageBuilder::Classic(engine) => {
                classic(engine, spec, stage, &self.build_platform, target, dest, sink).await
            }
        }
    }
}

/// The automatic platform ARGs for a stage built for `target` on `build`, for builders that
/// do not set them (the classic builder).
pub fn platform_args(build: &Platform, target: &Platform) -> Vec<(String, String)> {
    let v = |p: &Platform| p.variant.clone().unwrap_or_default();
    vec![
        ("BUILDPLATFORM".into(), build.to_string()),
        ("BUILDOS".into(), build.os.clone()),
        ("BUILDARCH".into(), build.architecture.clone()),
        ("BUILDVARIANT".into(), v(build)),
        ("TARGETPLATFORM".into(), target.to_string()),
        ("TARGETOS".into(), target.os.clone()),
        ("TARGETARCH".into(), target.architecture.clone()),
        ("TARGETVARIANT".into(), v(target)),
    ]
}

/// `docker buildx build --target STAGE --output type=tar` for `platforms` (none: the build
/// platform's own, for a stage that reads no TARGET ARG): BuildKit sets the platform ARGs
/// itself from `--platform` (the stage is pinned to `$BUILDPLATFORM`, so it runs natively).
/// With several platforms the tar holds one directory per platform (`linux_arm64/…`).
#[allow(clippy::too_many_arguments)]
async fn buildx(
    buildx: &Buildx,
    spec: &BuildSpec,
    stage: &EngineStage,
    platforms: &[Platform],
    target: &Platform,
    dest: &Path,
    sink: &LineSink,
) -> Result<(), Failure> {
    let mut args: Vec<String> = vec!["buildx".into(), "build".into(), "--progress".into(), "plain".into()];
    if !platforms.is_empty() {
        args.extend(["--platform".into(), platforms.iter().map(Platform::to_string).collect::<Vec<_>>().join(",")]);
    }
    args.extend(["--file".into(), spec.dockerfile.display().to_string(), "--target".into(), stage.name.clone()]);
    for (k, v) in &spec.build_args {
        args.extend(["--build-arg".into(), format!("{k}={v}")]);
    }
    // Cache, secrets, ssh, contexts, network…: these stages run the RUN steps.
    let scope = if stage.per_target {
        format!("stage-{}-{}", stage.name, target.slug())
    } else {
        format!("stage-{}", stage.name)
    };
    args.extend(spec.options.args(Some(&scope)));
    args.extend(["--output".into(), format!("type=tar,dest={}", dest.display()), spec.context.display().to_string()]);
    // Buildx's own runner: credentials, secrets in the environment, lines to the platform.
    buildx.invoke(spec, &args, Route::One(target.clone(), sink.clone())).await.map_err(|e| match e {
        RunError::Failed { command, status, tail } => Failure { command, status, tail },
        RunError::Spawn { program, detail } => {
            Failure { command: program, status: "no start".into(), tail: format!("  │ {detail}") }
        }
        RunError::Result(detail) | RunError::Unsupported(detail) => {
            Failure {
                command: "docker buildx build".into(), status: "an error".into(), tail: format!("  │ {detail}")
            }
        }
    })
}

/// Splits a multi-platform tar export (`linux_amd64/…`, `linux_arm_v7/…`) into one tar per
/// platform, paths (and hard-link targets) without the platform's directory, in `platforms`'
/// order.
fn split_by_platform(tar: &Path, platforms: &[Platform], dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    use std::path::Component;
    std::fs::create_dir_all(dir)?;
    let names: Vec<String> = platforms.iter().map(|p| p.to_string().replace('/', "_")).collect();
    let paths: Vec<PathBuf> = platforms.iter().map(|p| dir.join(format!("{}.tar", p.slug()))).collect();
    let mut outs = paths
        .iter()
        .map(|p| Ok(tar::Builder::new(std::io::BufWriter::new(std::fs::File::create(p)?))))
        .collect::<std::io::Result<Vec<_>>>()?;
    // The platform's directory, and the path below it.
    let split = |p: &Path| -> Option<(usize, PathBuf)> {
        let mut c = p.components();
        let first = loop {
            match c.next()? {
                Component::CurDir | Component::RootDir => continue,
                other => break other.as_os_str().to_str()?.to_string(),
            }
        };
        Some((names.iter().position(|n| *n == first)?, c.as_path().to_path_buf()))
    };
    let mut archive = tar::Archive::new(std::io::BufReader::new(std::fs::File::open(tar)?));
    for entry in archive.entries()? {
        let mut e = entry?;
        let Some((i, rest)) = split(&e.path()?) else { continue };
        if rest.as_os_str().is_empty() {
            continue;
        }
        let mut h = e.header().clone();
        let kind = h.entry_type();
        if kind.is_hard_link() || kind.is_symlink() {
            let target = e.link_name()?.map(|l| l.into_owned()).unwrap_or_default();
            let target = match kind.is_hard_link() {
                true => split(&target).map(|(_, t)| t).unwrap_or(target),
                false => target,
            };
            outs[i].append_link(&mut h, &rest, &target)?;
        } else {
            outs[i].append_data(&mut h, &rest, &mut e)?;
        }
    }
    for o in outs {
        o.into_inner()?.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    }
    Ok(paths)
}

/// The Dockerfile without `--platform` on its FROM lines: the classic builder runs every stage
/// on the engine's own platform, which is the build platform these stages are pinned to, and
/// engines that refuse the option (Bitbucket's) cannot reject what is not sent.
pub fn without_platform_flags(text: &str) -> String {
    text.split_inclusive('\n')
        .map(|line| {
            let trimmed = line.trim_start();
            if !trimmed.get(..5).is_some_and(|w| w.eq_ignore_ascii_case("from ")) {
                return line.to_string();
            }
            let mut out = String::with_capacity(line.len());
            let mut rest = line;
            while let Some(at) = rest.find("--platform=") {
                out.push_str(&rest[..at]);
                let after = &rest[at..];
                let end = after.find(char::is_whitespace).unwrap_or(after.len());
                rest = after[end..].trim_start_matches([' ', '\t']);
            }
            out.push_str(rest);
            out
        })
        .collect()
}

/// The engine's classic builder (`POST /build`, no BuildKit) with the platform ARGs as build
/// args and the Dockerfile without `--platform`; then the stage's image read back as
/// `docker save` does (`GET /images/{name}/get`), its layers unpacked under `dest`. No
/// container is created (Bitbucket's plugin inspects every container create).
async fn classic(
    engine: &EngineBuilder,
    spec: &BuildSpec,
    stage: &EngineStage,
    build: &Platform,
    target: &Platform,
    dest: &Path,
    sink: &LineSink,
) -> Result<Vec<PathBuf>, Failure> {
    let command = format!("POST /build (Engine API, classic builder, --target {})", stage.name);
    let fail = |status: &str, detail: String| Failure {
        command: command.clone(),
        status: status.into(),
        tail: format!("  │ {detail}"),
    };
    let text = std::fs::read_to_string(&spec.dockerfile)
        .map_err(|e| fail("an unreadable Dockerfile", format!("{}: {e}", spec.dockerfile.display())))?;
    let derived = without_platform_flags(&text);
    if derived != text {
        sink(
            target,
            "the classic builder gets the Dockerfile without `FROM --platform`: these stages run on the engine's own platform",
        );
    }
    let mut args = spec.build_args.clone();
    for (k, v) in platform_args(build, target) {
        if !args.iter().any(|(a, _)| *a == k) {
            args.push((k, v));
        }
    }
    let stage_spec = BuildSpec { build_args: args, target: Some(stage.name.clone()), labels: vec![], ..spec.clone() };
    let tag = format!("archway-stage/{}:{}-{}", stage.name, target.slug(), std::process::id());
    let tail = Tail::default();
    let lines: LineSink = {
        let (sink, tail) = (sink.clone(), tail.clone());
        Arc::new(move |p: &Platform, l: &str| {
            sink(p, l);
            tail.push(l);
        })
    };
    engine.build_tagged(&stage_spec, derived.as_bytes(), &tag, target, lines).await.map_err(|_| Failure {
        command: command.clone(),
        status: "an error".into(),
        tail: tail.render(),
    })?;
    let exported = saved_layers(engine, &tag, dest).await;
    crate::builder::saved::remove_tag(&engine.docker, &tag).await;
    exported.map_err(|e| fail("an error exporting the stage's files", e))
}

/// Saves image `tag` from the engine and unpacks it under `dest`; returns its layer tars, in
/// order (from the archive's `manifest.json`, which both of `docker save`'s formats have).
async fn saved_layers(engine: &EngineBuilder, tag: &str, dest: &Path) -> Result<Vec<PathBuf>, String> {
    let archive = dest.with_extension("image.tar");
    crate::builder::saved::save(&engine.docker, tag, &archive).await?;
    let dest = dest.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let unpacked = crate::builder::saved::unpack(&archive, &dest);
        let _ = std::fs::remove_file(&archive);
        unpacked.map(|u| u.layers)
    })
    .await
    .map_err(|e| e.to_string())?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_flags_are_dropped_from_from_lines_only() {
        let text = "# syntax=docker/dockerfile:1\nFROM --platform=$BUILDPLATFORM golang:1.22 AS build\nARG TARGETARCH\n\
                    RUN echo --platform=x\nfrom  --platform=linux/amd64 busybox\nFROM scratch\n";
        assert_eq!(
            without_platform_flags(text),
            "# syntax=docker/dockerfile:1\nFROM golang:1.22 AS build\nARG TARGETARCH\nRUN echo --platform=x\n\
             from  busybox\nFROM scratch\n"
        );
    }

    #[test]
    fn a_multi_platform_export_splits_by_platform() {
        let dir = tempfile::tempdir().unwrap();
        let tar_path = dir.path().join("all.tar");
        let mut b = tar::Builder::new(std::fs::File::create(&tar_path).unwrap());
        let mut add = |path: &str, kind: tar::EntryType, data: &[u8], link: Option<&str>| {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(kind);
            h.set_size(data.len() as u64);
            h.set_mode(0o755);
            h.set_uid(1000);
            match link {
                Some(l) => b.append_link(&mut h, path, l).unwrap(),
                None => b.append_data(&mut h, path, data).unwrap(),
            }
        };
        for p in ["linux_amd64", "linux_arm_v7"] {
            add(&format!("{p}/"), tar::EntryType::Directory, b"", None);
            add(&format!("{p}/out/app"), tar::EntryType::Regular, p.as_bytes(), None);
            add(&format!("{p}/out/same"), tar::EntryType::Link, b"", Some(&format!("{p}/out/app")));
            add(&format!("{p}/out/sym"), tar::EntryType::Symlink, b"", Some("app"));
        }
        b.finish().unwrap();
        drop(b);
        let platforms: Vec<Platform> = vec!["linux/amd64".parse().unwrap(), "linux/arm/v7".parse().unwrap()];
        let out = split_by_platform(&tar_path, &platforms, &dir.path().join("split")).unwrap();
        for (path, want) in out.iter().zip(["linux_amd64", "linux_arm_v7"]) {
            let mut a = tar::Archive::new(std::fs::File::open(path).unwrap());
            let mut seen = Vec::new();
            for e in a.entries().unwrap() {
                let mut e = e.unwrap();
                let name = e.path().unwrap().display().to_string();
                let link = e.link_name().unwrap().map(|l| l.display().to_string());
                let mut body = String::new();
                std::io::Read::read_to_string(&mut e, &mut body).unwrap();
                assert_eq!(e.header().uid().unwrap(), 1000);
                seen.push((name, link, body));
            }
            assert_eq!(
                seen,
                [
                    ("out/app".to_string(), None, want.to_string()),
                    ("out/same".to_string(), Some("out/app".to_string()), String::new()),
                    ("out/sym".to_string(), Some("app".to_string()), String::new()),
                ]
            );
        }
    }

    #[test]
    fn platform_args_name_both_platforms() {
        let a = platform_args(&"linux/amd64".parse().unwrap(), &"linux/arm/v7".parse().unwrap());
        let get = |k: &str| a.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("BUILDARCH"), Some("amd64"));
        assert_eq!(get("TARGETPLATFORM"), Some("linux/arm/v7"));
        assert_eq!(get("TARGETARCH"), Some("arm"));
        assert_eq!(get("TARGETVARIANT"), Some("v7"));
    }
}
