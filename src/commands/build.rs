//! `archway build`: inputs → (push check) → build every platform → publish → report.
//! Tags move only after every platform has been built and the index pushed by digest.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use futures_util::StreamExt as _;

use crate::builder::Chosen;
use crate::builder::buildx::{Buildx, RemoteEngine};
use crate::builder::credentials::CredentialBridge;
use crate::builder::engine::EngineBuilder;
use crate::builder::qemu;
use crate::builder::{BuildSpec, Builder, Built, LineSink};
use crate::cli::BuildArgs;
use crate::commands::{explicit_credential, push_check_error};
use crate::error::UserError;
use crate::inputs::{self, Output, Request};
use crate::oci::Descriptor;
use crate::plan::{Handler, LocalBuilder, Planned, Strategy};
use crate::platform::Platform;
use crate::publish::{self, Entries, ImageSource, Published};
use crate::registry::{Client, Credential, CredentialSource};
use crate::report::{self, Log};

/// Flags win; CI inputs (`INPUT_*`, pipe variables, `ARCHWAY_*`) fill what the flags left
/// unset; tags, labels and annotations come from the CI's commit metadata when not given.
fn with_ci(args: &BuildArgs, ci: &crate::ci::Resolved) -> Result<BuildArgs, UserError> {
    let i = &ci.inputs;
    let mut a = args.clone();
    if a.source.context == std::path::Path::new(".")
        && let Some(c) = &ci.context
    {
        a.source.context = c.clone();
    }
    a.source.file = a.source.file.or_else(|| i.file.clone());
    if a.source.platforms.is_empty() {
        a.source.platforms = i.platforms.clone();
    }
    a.source.build_args = i.build_args.iter().cloned().chain(a.source.build_args).collect();
    a.source.target = a.source.target.or_else(|| i.target.clone());
    if a.tags.is_empty() {
        a.tags = ci.tags.clone();
    }
    a.push |= i.push == Some(true);
    a.provenance = a.provenance.or_else(|| i.provenance.clone());
    a.sbom = a.sbom.or_else(|| i.sbom.clone());
    if ci.provider != crate::ci::Provider::Local || !i.labels.is_empty() || !i.annotations.is_empty() {
        a.labels = ci.labels.iter().map(|(k, v)| format!("{k}={v}")).chain(a.labels).collect();
        a.annotations = ci.annotations.iter().map(|(k, v)| format!("{k}={v}")).chain(a.annotations).collect();
    }
    if a.strategy.nodes.is_empty() {
        a.strategy.nodes = i.nodes.clone();
    }
    a.strategy.node_certs = a.strategy.node_certs.or_else(|| i.node_certs.clone());
    a.strategy.no_emulation |= i.no_emulation == Some(true);
    match i.binfmt.as_deref().map(|b| b.trim().to_ascii_lowercase()) {
        None => {}
        Some(b) if b == "auto" || b.is_empty() => {}
        Some(b) if b == "never" => a.strategy.binfmt = crate::cli::BinfmtArg::Never,
        Some(b) => {
            return Err(UserError::input(format!("`{}` is `{b}`", ci.spelling.var(&crate::ci::vars::BINFMT)))
                .hint("use `auto` or `never`"));
        }
    }
    if a.strategy.prefer.is_none() && !i.prefer.is_empty() {
        a.strategy.prefer = Some(i.prefer.join(","));
    }
    a.dry_run |= i.dry_run == Some(true);
    a.metadata_file = a.metadata_file.or_else(|| i.metadata_file.clone());
    Ok(a)
}

pub async fn run(args: &BuildArgs, log: Arc<Log>, env: &crate::ci::Env) -> anyhow::Result<String> {
    let ci = crate::ci::for_provider(crate::ci::detect(env));
    let event = ci.read_event(env);
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let resolved = crate::ci::resolve(&*ci, env, event.as_deref(), now).map_err(UserError::from)?;
    let args = with_ci(args, &resolved)?;
    if args.tags.is_empty() {
        resolved.check_push().map_err(UserError::from)?;
    }
    let req = inputs::from_flags(&args, &|k| env.get(k).cloned())?;
    // The CI's own credentials for the registry pushed to, else `ARCHWAY_REGISTRY_*`.
    let explicit = match req.repository().and_then(|r| ci.credentials(env, &resolved.inputs, &r.registry)) {
        Some(c) => Some((c.registry, Credential::Basic { username: c.username, password: c.password })),
        None => explicit_credential(req.repository().map(|r| r.registry.as_str()), &|k| env.get(k).cloned())?,
    };
    let docker = crate::commands::docker_bin();

    log.group("Plan");
    let planning = crate::commands::plan::make(&req.source, &req.strategy, &docker, None).await;
    let planning = planning.inspect_err(|_| log.end_group())?;
    let reported = crate::commands::plan::report(&planning, &log);
    log.end_group();
    reported?;
    if req.dry_run {
        return Ok("dry run: the plan above is what a build would do".into());
    }
    let planned: Vec<Planned> = planning.plan.planned().into_iter().cloned().collect();
    let client = Client::new(
        CredentialSource { explicit: explicit.clone(), docker_config: true },
        req.insecure_registries.clone(),
    );

    if let Some(repo) = req.repository() {
        log.line(&format!("==> checking push access to {}", repo.name()));
        client.check_push(repo).await.map_err(|e| push_check_error(repo, e))?;
    }

    // buildx pulls base images with the Docker config's credentials; archway's own reach it
    // through a credential helper, never through a file.
    let bridge = match &explicit {
        Some((registry, cred)) => {
            Some(Arc::new(CredentialBridge::new(registry, cred).context("preparing credentials for buildx")?))
        }
        None => None,
    };

    register_qemu(&planned, &docker, &log).await?;

    let spec = BuildSpec {
        context: req.source.context.clone(),
        dockerfile: req.source.dockerfile.clone(),
        build_args: req.source.build_args.clone(),
        target: req.source.target.clone(),
        provenance: req.provenance.clone(),
        sbom: req.sbom.clone(),
        labels: req.labels.clone(),
        annotations: req.annotations.clone(),
    };
    // Each platform is exported to a layout here before it is pushed or merged.
    let staging = match &req.output {
        Output::Layout { dir, .. } => {
            let s = dir.join(format!(".archway-staging-{}", std::process::id()));
            std::fs::create_dir_all(&s).with_context(|| format!("creating {}", s.display()))?;
            Staging::Dir(s)
        }
        Output::Registry { .. } | Output::Digest { .. } => {
            Staging::Temp(tempfile::Builder::new().prefix("archway-staging-").tempdir()?)
        }
    };

    let mut builders: Vec<(Planned, Chosen)> = Vec::new();
    for p in planned {
        let remote = match &p.strategy {
            Strategy::Remote { endpoint } => Some(RemoteEngine {
                endpoint: endpoint.clone(),
                cert_dir: req.strategy.nodes.iter().find(|n| &n.endpoint == endpoint).and_then(|n| n.cert_dir.clone()),
            }),
            _ => None,
        };
        let b = match &p.strategy {
            Strategy::Native { builder: LocalBuilder::EngineApi } => Chosen::Engine(
                EngineBuilder::connect()
                    .map_err(|e| UserError::failure(format!("{}: cannot reach the Docker engine: {e}", p.platform)))?,
            ),
            _ => Chosen::Buildx(Buildx { docker: docker.clone(), credentials: bridge.clone(), remote }),
        };
        builders.push((p, b));
    }
    let planned_rows: Vec<(Platform, String, String)> =
        builders.iter().map(|(p, _)| (p.platform.clone(), p.strategy.kind().to_string(), p.reason.clone())).collect();
    log.set_parallel(req.jobs > 1 && builders.len() > 1);
    let built = build_all(&req, &builders, &client, &spec, staging.path(), &log).await?;
    log.group("Publish");

    let mut with_entries: Vec<(Built, Entries)> = Vec::new();
    for b in built {
        let e = publish::entries_for(&ImageSource::Layout(&b.layout), &b).await?;
        with_entries.push((b, e));
    }
    let index =
        publish::assemble(with_entries.iter().map(|(_, e)| e.descriptors.clone()).collect(), Default::default())?;
    let published = match &req.output {
        // A matrix leg with one platform: its own result, as pushed, is what `merge` takes.
        Output::Digest { repo, .. } if with_entries.len() == 1 => {
            let b = &with_entries[0].0;
            let top = Descriptor { platform: None, annotations: None, ..b.descriptor.clone() };
            Published { location: repo.with_digest(top.digest.clone()).to_string(), index: top, tags: vec![] }
        }
        Output::Digest { repo, .. } => {
            log.line("==> pushing the multi-platform index by digest (no tag)");
            publish::to_registry(&client, repo, &index, &[])
                .await
                .map_err(|e| UserError::failure(format!("publishing to {} failed", repo.name())).caused_by(e))?
        }
        Output::Registry { tags } => publish::to_registry(&client, &tags[0], &index, tags)
            .await
            .map_err(|e| UserError::failure(format!("publishing to {} failed", tags[0].name())).caused_by(e))?,
        Output::Layout { dir, names } => {
            let dirs: Vec<PathBuf> = with_entries.iter().map(|(b, _)| b.layout.clone()).collect();
            publish::to_layout(dir, &dirs, &index, names)?
        }
    };
    drop(staging);

    log.line("");
    log.line(report::summary(&with_entries, &published).trim_end());
    if let Some(path) = &req.metadata_file {
        let json = serde_json::to_vec_pretty(&report::metadata(&with_entries, &published))?;
        std::fs::write(path, json).with_context(|| format!("writing `--metadata-file {}`", path.display()))?;
    }
    log.end_group();
    if let Output::Digest { digest_file: Some(path), .. } = &req.output {
        std::fs::write(path, format!("{}\n", published.location))
            .with_context(|| format!("writing `--digest-file {}`", path.display()))?;
    }
    let result = crate::ci::CiResult {
        digest: published.index.digest.to_string(),
        image: req.repository().map(|r| r.name()).unwrap_or_else(|| published.location.clone()),
        tags: published.tags.clone(),
        platforms: with_entries
            .iter()
            .map(|(b, e)| {
                let (strategy, reason) = planned_rows
                    .iter()
                    .find(|(p, _, _)| *p == b.platform)
                    .map(|(_, s, r)| (s.clone(), r.clone()))
                    .unwrap_or_default();
                crate::ci::PlatformRow {
                    platform: b.platform.to_string(),
                    strategy,
                    reason,
                    digest: e.descriptors[0].digest.to_string(),
                    duration_secs: (b.duration.as_secs_f64() * 10.0).round() / 10.0,
                }
            })
            .collect(),
        metadata_json: serde_json::to_string(&report::metadata(&with_entries, &published))?,
    };
    let written = ci.write_outputs(env, &result).context("writing the CI's output files")?;
    for w in written {
        tracing::debug!(path = %w.display(), "wrote CI outputs");
    }
    // A Bitbucket pipe's log is stdout and stderr merged: the reference would land after the
    // final ✔, so there it is only in the summary and the result file.
    if ci.provider() != (crate::ci::Provider::Bitbucket { pipe: true }) {
        println!("{}", published.location);
    }
    Ok(match &req.output {
        Output::Layout { .. } => format!("wrote {} to {}", published.index.digest, published.location),
        _ if published.tags.is_empty() => format!("pushed {} (by digest, no tag)", published.location),
        _ => format!("published {} as {}", published.location, published.tags.join(", ")),
    })
}

/// Builds every platform, `req.jobs` at a time, and pushes each by digest as soon as it is
/// built. Fails, naming every failed platform and step, if any failed.
async fn build_all(
    req: &Request,
    builders: &[(Planned, Chosen)],
    client: &Client,
    spec: &BuildSpec,
    staging: &Path,
    log: &Arc<Log>,
) -> anyhow::Result<Vec<Built>> {
    let sink: LineSink = {
        let log = log.clone();
        Arc::new(move |p, line| log.build_output(p, line))
    };
    let results: Vec<Result<Built, (Platform, &'static str, anyhow::Error)>> =
        futures_util::stream::iter(builders.iter())
            .map(|(planned, builder)| {
                let sink = sink.clone();
                let p = planned.platform.clone();
                let layout = staging.join(p.slug());
                async move {
                    log.started(
                        &p,
                        &format!("{} with {} ({})", planned.strategy.kind(), builder.name(), planned.reason),
                    );
                    let t = Instant::now();
                    let b = match builder.build(spec, &p, &layout, sink).await {
                        Ok(b) => b,
                        Err(e) => {
                            log.failed(&p, t.elapsed());
                            return Err((p, "build", e.into()));
                        }
                    };
                    if let Some(repo) = req.repository() {
                        match publish::push_by_digest(client, repo, &b.layout, &b.descriptor).await {
                            Ok(s) => log.line(&format!(
                                "==> {p}: pushed by digest to {} ({} of {} blobs uploaded, {})",
                                repo.name(),
                                s.uploaded,
                                s.blobs,
                                report::human_size(s.bytes_uploaded)
                            )),
                            Err(e) => {
                                log.failed(&p, t.elapsed());
                                return Err((p, "push", e.into()));
                            }
                        }
                    }
                    let b = Built { duration: t.elapsed(), ..b };
                    log.finished(&b);
                    Ok(b)
                }
            })
            .buffer_unordered(req.jobs)
            .collect()
            .await;

    let mut built = Vec::new();
    let mut failed = Vec::new();
    for r in results {
        match r {
            Ok(b) => built.push(b),
            Err(e) => failed.push(e),
        }
    }
    if !failed.is_empty() {
        failed.sort_by_key(|(p, _, _)| req.source.platforms.iter().position(|x| x == p));
        let names: Vec<String> = failed.iter().map(|(p, step, _)| format!("{p} at the {step} step")).collect();
        let what = match &req.output {
            Output::Registry { .. } | Output::Digest { .. } => "no tag was moved",
            Output::Layout { .. } => "nothing was written to the output layout",
        };
        let details: Vec<String> = failed.iter().map(|(p, step, e)| format!("{p} ({step}): {e:#}")).collect();
        return Err(UserError::failure(format!(
            "{} of {} platforms failed: {}; {what}\n\n{}",
            failed.len(),
            req.source.platforms.len(),
            names.join(", "),
            details.join("\n\n")
        ))
        .hint(format!("the lines prefixed `[{}]` above show the cause", failed[0].0))
        .into());
    }
    built.sort_by_key(|b| req.source.platforms.iter().position(|p| *p == b.platform));
    Ok(built)
}

/// Where platforms are exported before being pushed or merged; removed when the run ends.
enum Staging {
    /// Inside the output layout, so blobs move into it by rename.
    Dir(PathBuf),
    Temp(tempfile::TempDir),
}

impl Staging {
    fn path(&self) -> &Path {
        match self {
            Staging::Dir(p) => p,
            Staging::Temp(t) => t.path(),
        }
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if let Staging::Dir(p) = self {
            let _ = std::fs::remove_dir_all(p);
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
