//! schedule: runs the plan. Chooses each platform's builder from its strategy, registers the
//! QEMU handlers the plan needs (once each, before any build starts), builds into a staging
//! directory — every platform buildx builds on the local engine in one invocation, the others
//! one each, `jobs` invocations at a time — and pushes each platform by digest as soon as it
//! is built and push access is confirmed. Fails, naming every failed platform and step, when
//! any platform failed; never moves a tag.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt as _;

use super::assemble::{AssembleOptions, Assembler};
use super::buildx::{Buildx, Export, RemoteEngine};
use super::credentials::CredentialBridge;
use super::engine::EngineBuilder;
use super::stages::{EngineStages, StageBuilder};
use super::{BuildSpec, Builder, Built, Chosen, LineSink, SharedSink, qemu};
use crate::error::UserError;
use crate::inputs::{BuildRequest, Output};
use crate::plan::{Handler, LocalBuilder, Plan, Planned, Strategy};
use crate::platform::Platform;
use crate::probe::Capabilities;
use crate::probe::engine::EngineEndpoint;
use crate::publish;
use crate::registry::Client;
use crate::report::Log;

/// The `tracing` target of the lines that say how long each phase took, per platform
/// (`ARCHWAY_LOG=archway::timings=debug`).
pub const TIMINGS: &str = "archway::timings";

/// Every platform built, in the order requested, with the staging directory that holds their
/// layouts until they are published.
pub struct Builds {
    pub built: Vec<Built>,
    pub staging: Staging,
}

/// Builds every planned platform of `req` (see the module doc). Pushes wait for `access`.
/// From `caps`: whether buildx builds several platforms in one invocation here
/// ([`Capabilities::buildx_multi_platform`]), and which engines keep the classic image store
/// (then buildx's result is exported through the engine, [`Export::Engine`]).
pub async fn run(
    req: &BuildRequest,
    plan: &Plan,
    caps: &Capabilities,
    client: &Arc<Client>,
    log: &Arc<Log>,
    access: Access,
) -> anyhow::Result<Builds> {
    let planned: Vec<Planned> = plan.planned().into_iter().cloned().collect();
    let together = caps.buildx_multi_platform();
    let builders = choose(req, &planned, caps, client, log.builders_json()).await?;
    register_qemu(&planned, &req.runner.docker, log).await?;
    let staging = Staging::new(&req.output)?;
    // A cache scoped per platform needs an invocation per platform.
    let together = together && !req.options.scoped_cache();
    let built = build_all(req, &builders, together, client, staging.path(), log, access).await?;
    Ok(Builds { built, staging })
}

/// `call` (`check`, …): buildx runs the method for every platform and builds nothing; its
/// report is the log. Fails when buildx does.
pub async fn call(req: &BuildRequest, log: &Arc<Log>) -> anyhow::Result<String> {
    let method = req.options.call.clone().unwrap_or_default();
    log.group(&format!("buildx --call {method}"));
    let sink: SharedSink = {
        let log = log.clone();
        Arc::new(move |line| log.line(line))
    };
    let done = super::options::call(&req.runner.buildx(), &spec(req), &req.source.platforms, sink).await;
    log.end_group();
    done.map_err(|why| {
        UserError::failure(format!("`call: {method}` failed: {why}"))
            .hint("the lines above are buildx's report; nothing was built or pushed")
    })?;
    Ok(format!("`call: {method}` passed; nothing was built or pushed"))
}

/// The spec every builder gets, from the request.
pub fn spec(req: &BuildRequest) -> BuildSpec {
    BuildSpec {
        context: req.source.context.clone(),
        dockerfile: req.source.dockerfile.clone(),
        build_args: req.source.build_args.clone(),
        target: req.source.target.clone(),
        provenance: req.provenance.clone(),
        sbom: req.sbom.clone(),
        labels: req.labels.clone(),
        annotations: req.annotations.clone(),
        options: req.options.clone(),
    }
}

/// How assembled platforms are written, from the request: layers reused from the image under
/// the first tag and from `--cache-from` images on the registry pushed to.
pub fn assemble_options(req: &BuildRequest, build_platform: Platform) -> AssembleOptions {
    let a = &req.assemble;
    let target = match &req.output {
        Output::Registry { tags } => tags.first().cloned(),
        Output::Digest { .. } | Output::Layout { .. } => None,
    };
    let reuse_from = match req.repository() {
        Some(repo) => {
            target.into_iter().chain(a.cache_from.iter().cloned()).filter(|r| r.registry == repo.registry).collect()
        }
        None => Vec::new(),
    };
    AssembleOptions {
        compression: a.compression,
        compression_level: a.compression_level,
        epoch: a.epoch,
        build_platform,
        reuse_from,
    }
}

/// One builder per planned platform.
async fn choose(
    req: &BuildRequest,
    planned: &[Planned],
    caps: &Capabilities,
    client: &Arc<Client>,
    rawjson: bool,
) -> anyhow::Result<Vec<(Planned, Chosen)>> {
    // buildx pulls base images with the Docker config's credentials; archway's own reach it
    // through a credential helper, never through a file. Only when buildx builds something.
    let uses_buildx = planned.iter().any(|p| match (&p.strategy, &p.hybrid) {
        (Strategy::Assembled, Some(h)) => h.builder == LocalBuilder::Buildx,
        (Strategy::Assembled, None) | (Strategy::Native { builder: LocalBuilder::EngineApi }, _) => false,
        _ => true,
    });
    let overrides = if uses_buildx { req.registry.credentials.overrides() } else { Vec::new() };
    let bridge = if overrides.is_empty() {
        None
    } else {
        Some(Arc::new(
            CredentialBridge::new(&overrides, &req.runner)
                .map_err(|e| UserError::failure("cannot prepare the registry credentials for buildx").caused_by(e))?,
        ))
    };
    // How every buildx invocation of this run is started.
    let program = req.runner.buildx();
    // One assembler for every assembled platform, so a layer they share is made once.
    let assembler =
        Arc::new(Assembler::with_shared_client(client.clone(), assemble_options(req, crate::probe::host::platform())));
    // One set of engine-built stages for every hybrid platform, so a stage built once for all
    // is built once.
    let engine_stages = match planned.iter().find_map(|p| p.hybrid.as_ref()) {
        None => None,
        Some(h) => {
            let builder = match h.builder {
                LocalBuilder::Buildx => StageBuilder::Buildx(Buildx {
                    program: program.clone(),
                    credentials: bridge.clone(),
                    remote: None,
                    export: Export::Oci,
                    rawjson: false,
                }),
                LocalBuilder::EngineApi => {
                    StageBuilder::Classic(connect_engine(req, "the hybrid build's stages").await?)
                }
            };
            let stages = EngineStages::new(builder, h.platform.clone()).map_err(|e| {
                UserError::failure("no temporary directory for the stages the engine builds").caused_by(e)
            })?;
            // One solve for every platform's stages where buildx can build several at once
            // (a cache is scoped per platform, so then each builds alone).
            let hybrid: Vec<Platform> =
                planned.iter().filter(|p| p.hybrid.is_some()).map(|p| p.platform.clone()).collect();
            let cached = !req.options.cache_from.is_empty() || !req.options.cache_to.is_empty();
            let together = if caps.buildx_multi_platform() && !cached { hybrid } else { Vec::new() };
            Some(Arc::new(stages.together(together)))
        }
    };
    let mut out = Vec::new();
    for p in planned {
        let remote = match &p.strategy {
            Strategy::Remote { endpoint } => Some(RemoteEngine {
                endpoint: endpoint.clone(),
                cert_dir: req.strategy.nodes.iter().find(|n| &n.endpoint == endpoint).and_then(|n| n.cert_dir.clone()),
            }),
            _ => None,
        };
        let b = match &p.strategy {
            Strategy::Assembled => match (&p.hybrid, &engine_stages) {
                (Some(h), Some(engine)) => {
                    Chosen::Hybrid { assembler: assembler.clone(), engine: engine.clone(), stages: h.stages.clone() }
                }
                _ => Chosen::Assembled(assembler.clone()),
            },
            Strategy::Native { builder: LocalBuilder::EngineApi } => {
                Chosen::Engine(connect_engine(req, &p.platform.to_string()).await?)
            }
            _ => {
                let export = export(req, caps, p, remote.as_ref());
                Chosen::Buildx(Buildx {
                    program: program.clone(),
                    credentials: bridge.clone(),
                    remote,
                    export,
                    rawjson,
                })
            }
        };
        out.push((p.clone(), b));
    }
    Ok(out)
}

/// How buildx's result leaves the engine it builds on (`remote`, else the local one): through
/// that engine when it keeps the classic image store (and buildx uses its `docker` driver).
fn export(req: &BuildRequest, caps: &Capabilities, planned: &Planned, remote: Option<&RemoteEngine>) -> Export {
    match (classic_store_engine(&planned.strategy, caps), remote) {
        (None, _) => Export::Oci,
        (Some(_), Some(r)) => Export::Engine(EngineEndpoint { host: r.endpoint.clone(), cert_dir: r.cert_dir.clone() }),
        (Some(_), None) => Export::Engine(req.runner.engine.clone()),
    }
}

/// The endpoint of the engine buildx builds `strategy`'s platform on, when that engine keeps
/// the classic image store (see [`Export::Engine`]).
pub fn classic_store_engine<'a>(strategy: &'a Strategy, caps: &'a Capabilities) -> Option<&'a str> {
    match strategy {
        Strategy::Assembled | Strategy::Native { builder: LocalBuilder::EngineApi } => None,
        Strategy::Remote { endpoint } => caps.node_classic_store(endpoint).then_some(endpoint.as_str()),
        Strategy::Native { builder: LocalBuilder::Buildx } | Strategy::Cross | Strategy::Emulated { .. } => {
            caps.engine.as_ref().filter(|_| caps.local_classic_store()).map(|e| e.endpoint.as_str())
        }
    }
}

/// One line for each engine with the classic image store that buildx builds on in `plan`.
pub fn classic_store_notes(plan: &Plan, caps: &Capabilities) -> Vec<String> {
    let mut engines: Vec<&str> = Vec::new();
    for e in plan.planned().iter().filter_map(|p| classic_store_engine(&p.strategy, caps)) {
        if !engines.contains(&e) {
            engines.push(e);
        }
    }
    engines
        .iter()
        .map(|e| format!("the engine at {e} uses the classic image store: buildx builds one platform at a time there, and archway exports each image with `docker save`"))
        .collect()
}

/// The local engine's classic builder, for `what`.
async fn connect_engine(req: &BuildRequest, what: &str) -> anyhow::Result<EngineBuilder> {
    Ok(EngineBuilder::connect(&req.runner.engine).await.map_err(|e| {
        UserError::failure(format!("{what}: cannot reach the Docker engine"))
            .caused_by(e)
            .hint("check `DOCKER_HOST`, or build this platform another way (`archway plan` lists them)")
    })?)
}

/// What one build produced: a platform's result, or why it failed and at which step.
type Outcome = Result<Built, (Platform, &'static str, anyhow::Error)>;

/// What one builder invocation builds: a platform alone, or every platform buildx builds on
/// the local engine at once (one solve: what they share is built once).
enum Unit<'a> {
    One(&'a Planned, &'a Chosen),
    Together(Vec<&'a Planned>, &'a Buildx),
}

/// Groups the platforms into builder invocations: every platform buildx builds on the local
/// engine (native, cross, emulated: same engine, same spec) in one, when there are several
/// and `together` says buildx can; remote nodes, the Engine API builder and the assembler
/// one platform each.
fn units(builders: &[(Planned, Chosen)], together: bool) -> Vec<Unit<'_>> {
    let local = |c: &Chosen| together && matches!(c, Chosen::Buildx(b) if b.remote.is_none());
    let together: Vec<&(Planned, Chosen)> = builders.iter().filter(|(_, c)| local(c)).collect();
    let mut out = Vec::new();
    let grouped = match together.as_slice() {
        [(_, Chosen::Buildx(first)), _, ..] => {
            out.push(Unit::Together(together.iter().map(|(p, _)| p).collect(), first));
            true
        }
        _ => false,
    };
    for (p, c) in builders {
        if !(grouped && local(c)) {
            out.push(Unit::One(p, c));
        }
    }
    out
}

/// Builds every platform, `req.jobs` invocations at a time, and pushes each platform by
/// digest as soon as it is built and `access` says the repository may be pushed to. Fails,
/// naming every failed platform and step, if any failed.
async fn build_all(
    req: &BuildRequest,
    builders: &[(Planned, Chosen)],
    together: bool,
    client: &Client,
    staging: &Path,
    log: &Arc<Log>,
    access: Access,
) -> anyhow::Result<Vec<Built>> {
    let spec = spec(req);
    let sink: LineSink = {
        let log = log.clone();
        Arc::new(move |p, line| log.build_output(p, line))
    };
    let units = units(builders, together);
    log.set_parallel(units.iter().any(|u| matches!(u, Unit::Together(..))) || (req.jobs > 1 && units.len() > 1));
    let results: Vec<Vec<Outcome>> = futures_util::stream::iter(units)
        .map(|unit| {
            let (sink, spec, access) = (sink.clone(), &spec, access.clone());
            async move {
                match unit {
                    Unit::One(planned, builder) => {
                        vec![build_one(req, planned, builder, spec, client, staging, log, sink, access).await]
                    }
                    Unit::Together(planned, buildx) => {
                        build_together(req, &planned, buildx, spec, client, staging, log, sink, access).await
                    }
                }
            }
        })
        .buffer_unordered(req.jobs)
        .collect()
        .await;

    let (mut built, mut failed): (Vec<Built>, Vec<_>) = (Vec::new(), Vec::new());
    for r in results.into_iter().flatten() {
        match r {
            Ok(b) => built.push(b),
            Err(e) => failed.push(e),
        }
    }
    let order = |p: &Platform| req.source.platforms.iter().position(|x| x == p);
    if !failed.is_empty() {
        failed.sort_by_key(|(p, _, _)| order(p));
        return Err(failure(req, &failed, log.live()).into());
    }
    built.sort_by_key(|b| order(&b.platform));
    Ok(built)
}

/// Resolves once the repository is known to accept pushes; never, when it does not (the
/// caller then drops the build). `None` when there is nothing to check.
pub type Access = Option<tokio::sync::watch::Receiver<bool>>;

/// Builds one platform alone, then pushes it by digest.
#[allow(clippy::too_many_arguments)]
async fn build_one(
    req: &BuildRequest,
    planned: &Planned,
    builder: &Chosen,
    spec: &BuildSpec,
    client: &Client,
    staging: &Path,
    log: &Log,
    sink: LineSink,
    access: Access,
) -> Outcome {
    let p = planned.platform.clone();
    let layout = staging.join(p.slug());
    log.started(&p, &format!("{} with {} ({})", planned.strategy.kind(), builder.name(), planned.reason));
    let t = Instant::now();
    let b = match builder.build(spec, &p, &layout, sink).await {
        Ok(b) => b,
        Err(e) => {
            log.failed(&p, t.elapsed());
            return Err((p, "build", e.into()));
        }
    };
    tracing::debug!(target: TIMINGS, platform = %p, phase = "build", secs = t.elapsed().as_secs_f64(), "timing");
    push(req, b, client, log, t, access, &HashMap::new()).await
}

/// Builds every platform of `planned` in one buildx invocation, then pushes each by digest,
/// concurrently. When the build fails, the platforms it names fail at the build step and the
/// others are not pushed.
#[allow(clippy::too_many_arguments)]
async fn build_together(
    req: &BuildRequest,
    planned: &[&Planned],
    buildx: &Buildx,
    spec: &BuildSpec,
    client: &Client,
    staging: &Path,
    log: &Arc<Log>,
    sink: LineSink,
    access: Access,
) -> Vec<Outcome> {
    let platforms: Vec<Platform> = planned.iter().map(|p| p.platform.clone()).collect();
    let names: Vec<String> = platforms.iter().map(Platform::to_string).collect();
    let layout = staging.join("together");
    for p in planned {
        log.started(
            &p.platform,
            &format!("{} with buildx, one invocation for {} ({})", p.strategy.kind(), names.join(", "), p.reason),
        );
    }
    let shared: SharedSink = {
        let (log, platforms) = (log.clone(), platforms.clone());
        Arc::new(move |line| log.shared_output(&platforms, line))
    };
    let t = Instant::now();
    // Large layers are uploaded as buildx's export writes them, while it writes the rest.
    let (exported, exported_rx) = tokio::sync::oneshot::channel::<()>();
    let build = async {
        let r = buildx.build_together(spec, &platforms, &layout, sink, shared).await;
        let _ = exported.send(());
        r
    };
    let early = async {
        match req.repository() {
            Some(repo) => {
                let done = async {
                    let _ = exported_rx.await;
                };
                publish::early::upload_as_they_appear(client, repo, &layout, access.clone(), done).await
            }
            None => HashMap::new(),
        }
    };
    let (built, early) = tokio::join!(build, early);
    if !early.is_empty() {
        let bytes: u64 = early.values().sum();
        tracing::debug!(target: TIMINGS, platform = %names.join(","), phase = "early-push", blobs = early.len(), bytes, secs = t.elapsed().as_secs_f64(), "timing");
    }
    let built = match built {
        Ok(b) => b,
        Err(errors) => {
            for p in &platforms {
                if errors.iter().any(|e| e.platform() == p) {
                    log.failed(p, t.elapsed());
                } else {
                    log.stopped(p, t.elapsed());
                }
            }
            return errors.into_iter().map(|e| Err((e.platform().clone(), "build", e.into()))).collect();
        }
    };
    tracing::debug!(target: TIMINGS, platform = %names.join(","), phase = "build", secs = t.elapsed().as_secs_f64(), "timing");
    futures_util::future::join_all(built.into_iter().map(|b| push(req, b, client, log, t, access.clone(), &early)))
        .await
}

/// Pushes one built platform by digest (when the output is a registry), once `access` allows.
async fn push(
    req: &BuildRequest,
    b: Built,
    client: &Client,
    log: &Log,
    t: Instant,
    access: Access,
    early: &HashMap<crate::reference::Digest, u64>,
) -> Outcome {
    let p = b.platform.clone();
    if let Some(repo) = req.repository() {
        if let Some(mut ready) = access
            && ready.wait_for(|ok| *ok).await.is_err()
        {
            log.failed(&p, t.elapsed());
            return Err((p, "push", anyhow::anyhow!("the push access check did not finish")));
        }
        let pushing = Instant::now();
        let on_bytes = |done, total| log.transfer(&p, done, total);
        match publish::push_by_digest(client, repo, &b.layout, &b.descriptor, &b.mounts, early, &on_bytes).await {
            Ok(s) => log.pushed(&p, &repo.name(), &s, pushing.elapsed()),
            Err(e) => {
                log.failed(&p, t.elapsed());
                return Err((p, "push", e.into()));
            }
        }
        tracing::debug!(target: TIMINGS, platform = %p, phase = "push", secs = pushing.elapsed().as_secs_f64(), "timing");
    }
    let b = Built { duration: t.elapsed(), ..b };
    // The platform's image manifest, as the summary and the index show it: a build with
    // attestations produced an index around it, whose digest is nowhere else in the log.
    let image = match publish::entries_for(&publish::ImageSource::Layout(&b.layout), &b).await {
        Ok(e) => e.descriptors[0].digest.clone(),
        Err(_) => b.descriptor.digest.clone(),
    };
    log.finished(&b, &image);
    Ok(b)
}

/// The error for failed platforms: each named with its step, the causes below, nothing moved.
fn failure(req: &BuildRequest, failed: &[(Platform, &'static str, anyhow::Error)], live: bool) -> UserError {
    let names: Vec<String> = failed.iter().map(|(p, step, _)| format!("{p} at the {step} step")).collect();
    let what = match &req.output {
        Output::Registry { .. } | Output::Digest { .. } => "no tag was moved",
        Output::Layout { .. } => "nothing was written to the output layout",
    };
    let details: Vec<String> = failed.iter().map(|(p, step, e)| format!("{p} ({step}): {e:#}")).collect();
    UserError::failure(format!(
        "{} of {} platforms failed: {}; {what}\n\n{}",
        failed.len(),
        req.source.platforms.len(),
        names.join(", "),
        details.join("\n\n")
    ))
    .hint(failure_hint(&failed[0], live))
}

/// Where to look for the first failure's cause: the builder's output, or — when archway's
/// assembler failed, or a push did — the error itself.
fn failure_hint((p, step, e): &(Platform, &'static str, anyhow::Error), live: bool) -> String {
    let assembled = matches!(e.downcast_ref::<super::BuildError>(), Some(super::BuildError::Assemble { .. }));
    match (*step, assembled, live) {
        ("push", ..) => format!("the registry's answer for {p} is in the error above"),
        (_, true, _) => format!("the error above names the Dockerfile line that failed for {p}"),
        (_, false, true) => format!("the builder's lines between the dividers above show the cause for {p}"),
        (_, false, false) => format!("the lines prefixed `[{p}]` above show the cause"),
    }
}

/// Where platforms are exported before being pushed or merged; removed when dropped.
pub enum Staging {
    /// Beside the output layout (`publish::layout::beside`), so blobs move into the new layout
    /// by rename and the new layout into place.
    Dir(crate::scratch::Owned),
    Temp(tempfile::TempDir),
}

impl Staging {
    fn new(output: &Output) -> Result<Staging, UserError> {
        let made = match output {
            Output::Layout { dir, .. } => {
                crate::publish::layout::clean_stale(dir);
                let s = crate::publish::layout::beside(dir);
                crate::scratch::Owned::create(s.clone()).map(Staging::Dir).map_err(|e| (s, e))
            }
            Output::Registry { .. } | Output::Digest { .. } => tempfile::Builder::new()
                .prefix("archway-staging-")
                .tempdir()
                .map(Staging::Temp)
                .map_err(|e| (tempfile::env::temp_dir(), e)),
        };
        made.map_err(|(dir, e)| {
            UserError::failure(format!("cannot create the staging directory `{}`", dir.display()))
                .caused_by(e)
                .hint("check free space and permissions there")
        })
    }

    pub fn path(&self) -> &Path {
        match self {
            Staging::Dir(p) => p.path(),
            Staging::Temp(t) => t.path(),
        }
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if let Staging::Dir(p) = self {
            let _ = std::fs::remove_dir_all(p.path());
        }
    }
}

/// Registers the QEMU handlers the plan needs, once per handler, before any build starts.
async fn register_qemu(planned: &[Planned], docker: &Path, log: &Log) -> anyhow::Result<()> {
    let dir = Path::new(qemu::BINFMT_DIR);
    let mut in_container: Vec<(String, Platform)> = Vec::new();
    for p in planned {
        match &p.strategy {
            Strategy::Emulated { handler: Handler::RegisterFromHost { interpreter } } => {
                let done = qemu::register(&p.platform, Path::new(interpreter), dir).map_err(|e| {
                    UserError::failure(format!("{}: registering QEMU failed; nothing was built", p.platform))
                        .hint("register a handler before this step, or build this platform another way (`archway plan` lists them)")
                        .caused_by(e)
                })?;
                log.line(&match done {
                    qemu::Registered::New(name) => format!(
                        "==> {}: registered QEMU handler `{name}` ({interpreter}, flag F); it stays registered after this run",
                        p.platform
                    ),
                    qemu::Registered::Existing(name) => {
                        format!("==> {}: QEMU handler `{name}` is registered already; left as it is", p.platform)
                    }
                });
            }
            Strategy::Emulated { handler: Handler::RegisterFromContainer { image } } => {
                in_container.push((image.clone(), p.platform.clone()));
            }
            _ => {}
        }
    }
    if let Some((image, _)) = in_container.first() {
        let platforms: Vec<Platform> = in_container.iter().map(|(_, p)| p.clone()).collect();
        let said = qemu::register_in_container(docker, image, &platforms).await.map_err(|e| {
            UserError::failure("registering QEMU from a privileged container failed; nothing was built").caused_by(e)
        })?;
        for line in said {
            log.line(&format!("==> QEMU helper (`{image}`, privileged): {line}"));
        }
    }
    Ok(())
}

/// Registers QEMU handlers for `platforms` from the qemu-user-static binaries on this machine
/// (archway's privileged helper container); one line for each, saying what was done.
pub fn register_here(platforms: &[Platform]) -> Result<Vec<String>, UserError> {
    let dir = Path::new(qemu::BINFMT_DIR);
    let mut said = Vec::new();
    for p in platforms {
        let interpreter = qemu::find_interpreter(p).ok_or_else(|| {
            UserError::failure(format!("no qemu-user-static interpreter for {p} in this image"))
                .hint("use an archway image that ships `qemu-user-static`, or register the handler on the host")
        })?;
        let done = qemu::register(p, &interpreter, dir).map_err(|e| {
            UserError::failure(format!("{p}: registering QEMU failed"))
                .caused_by(e)
                .hint("the helper container must run privileged with `/proc/sys/fs/binfmt_misc` mounted")
        })?;
        said.push(match done {
            qemu::Registered::New(name) => {
                format!("registered QEMU handler `{name}` for {p} ({})", interpreter.display())
            }
            qemu::Registered::Existing(name) => {
                format!("QEMU handler `{name}` for {p} is registered on the host already; left as it is")
            }
        });
    }
    Ok(said)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planned(platform: &str, strategy: Strategy) -> Planned {
        Planned {
            platform: platform.parse().unwrap(),
            strategy,
            reason: String::new(),
            foreign_code: false,
            deciding: None,
            passed_over: vec![],
            emulates: None,
            hybrid: None,
        }
    }

    fn buildx(remote: Option<&str>) -> Chosen {
        Chosen::Buildx(Buildx {
            program: crate::probe::buildx::BuildxProgram::through("docker"),
            credentials: None,
            remote: remote.map(|e| RemoteEngine { endpoint: e.into(), cert_dir: None }),
            export: Export::Oci,
            rawjson: false,
        })
    }

    /// Each unit as the platforms it builds, `+` joining those built together.
    fn shape(units: &[Unit<'_>]) -> Vec<String> {
        units
            .iter()
            .map(|u| match u {
                Unit::One(p, _) => p.platform.to_string(),
                Unit::Together(ps, _) => ps.iter().map(|p| p.platform.to_string()).collect::<Vec<_>>().join("+"),
            })
            .collect()
    }

    #[test]
    fn the_hint_points_where_the_cause_is() {
        let p: Platform = "linux/arm64".parse().unwrap();
        let assembled = super::super::BuildError::Assemble {
            platform: p.clone(),
            file: "Dockerfile".into(),
            line: 3,
            message: "`app` not found in the build context".into(),
        };
        let hint = |step, e: anyhow::Error, live| failure_hint(&(p.clone(), step, e), live);
        assert_eq!(
            hint("build", assembled.into(), false),
            "the error above names the Dockerfile line that failed for linux/arm64"
        );
        assert_eq!(
            hint("push", anyhow::anyhow!("401"), true),
            "the registry's answer for linux/arm64 is in the error above"
        );
        assert_eq!(
            hint("build", anyhow::anyhow!("exit 1"), false),
            "the lines prefixed `[linux/arm64]` above show the cause"
        );
        assert_eq!(
            hint("build", anyhow::anyhow!("exit 1"), true),
            "the builder's lines between the dividers above show the cause for linux/arm64"
        );
    }

    #[test]
    fn engines_with_the_classic_store_are_named() {
        // GitLab's `docker:dind` service before Docker 29: the classic store, buildx's `docker` driver.
        let mut caps: Capabilities =
            serde_json::from_str(include_str!("../../tests/fixtures/capabilities/gitlab-dind-unprivileged.json"))
                .unwrap();
        let local = caps.engine.as_ref().unwrap().endpoint.clone();
        let native = Strategy::Native { builder: LocalBuilder::Buildx };
        assert_eq!(classic_store_engine(&native, &caps), Some(local.as_str()));
        assert_eq!(classic_store_engine(&Strategy::Cross, &caps), Some(local.as_str()));
        assert_eq!(classic_store_engine(&Strategy::Native { builder: LocalBuilder::EngineApi }, &caps), None);
        assert_eq!(classic_store_engine(&Strategy::Assembled, &caps), None);
        let remote = Strategy::Remote { endpoint: "tcp://arm:2376".into() };
        for (store, expected) in [(Some(false), Some("tcp://arm:2376")), (Some(true), None), (None, None)] {
            caps.nodes = vec![crate::probe::Node {
                platform: "linux/arm64".parse().unwrap(),
                endpoint: "tcp://arm:2376".into(),
                reached: Ok("linux/arm64".parse().unwrap()),
                containerd_store: store,
            }];
            assert_eq!(classic_store_engine(&remote, &caps), expected, "a node whose store is {store:?}");
        }
        caps.nodes[0].containerd_store = Some(false);
        let plan = Plan {
            platforms: vec![
                Ok(planned("linux/amd64", native.clone())),
                Ok(planned("linux/arm64", remote)),
                Ok(planned("linux/arm/v7", Strategy::Cross)),
            ],
        };
        let notes = classic_store_notes(&plan, &caps);
        assert_eq!(notes.len(), 2, "one line per engine: {notes:?}");
        assert!(notes[0].starts_with(&format!("the engine at {local} uses the classic image store")), "{notes:?}");
        assert!(notes[1].contains("tcp://arm:2376"), "{notes:?}");
        // The docker driver over the containerd store, or another driver: nothing to say.
        caps.engine.as_mut().unwrap().containerd_store = true;
        assert_eq!(classic_store_engine(&native, &caps), None);
        caps.engine.as_mut().unwrap().containerd_store = false;
        caps.buildx.as_mut().unwrap().driver = "docker-container".into();
        assert_eq!(classic_store_engine(&native, &caps), None);
    }

    #[test]
    fn local_buildx_platforms_build_together_remote_ones_alone() {
        let emulated = || Strategy::Emulated { handler: Handler::Registered { name: "qemu-aarch64".into() } };
        let builders = vec![
            (planned("linux/amd64", Strategy::Native { builder: LocalBuilder::Buildx }), buildx(None)),
            (
                planned("linux/s390x", Strategy::Remote { endpoint: "tcp://z:2375".into() }),
                buildx(Some("tcp://z:2375")),
            ),
            (planned("linux/arm64", emulated()), buildx(None)),
            (planned("linux/arm/v7", emulated()), buildx(None)),
        ];
        assert_eq!(shape(&units(&builders, true)), ["linux/amd64+linux/arm64+linux/arm/v7", "linux/s390x"]);
        assert_eq!(
            shape(&units(&builders, false)),
            ["linux/amd64", "linux/s390x", "linux/arm64", "linux/arm/v7"],
            "one invocation each where buildx cannot build several platforms at once"
        );
        // One local platform alone keeps its own invocation, wherever it is in the list.
        let builders = vec![
            (
                planned("linux/s390x", Strategy::Remote { endpoint: "tcp://z:2375".into() }),
                buildx(Some("tcp://z:2375")),
            ),
            (planned("linux/arm64", emulated()), buildx(None)),
        ];
        assert_eq!(shape(&units(&builders, true)), ["linux/s390x", "linux/arm64"]);
    }
}
