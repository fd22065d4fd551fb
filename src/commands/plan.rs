//! `archway plan`: inputs → probe → dockerfile → plan → report. Also the planning half that
//! `archway build` runs first. Planning never pulls an image and needs no network: only the
//! Dockerfile, the build args and the probe.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;

use crate::cli::{Format, PlanArgs};
use crate::dockerfile::{self, Analysis, AnalyzeInput};
use crate::error::UserError;
use crate::inputs::{self, BuildSource, StrategyInput};
use crate::plan::{self, Plan};
use crate::probe::{self, Capabilities, NodeSpec, ProbeOptions, QemuInterpreter};
use crate::report::{self, Log};

/// Everything planning found out.
pub struct Planning {
    pub caps: Capabilities,
    pub analysis: Analysis,
    pub plan: Plan,
}

/// Probes this runner (unless `recorded` capabilities are given), analyses the Dockerfile and
/// plans every platform.
pub async fn make(
    source: &BuildSource,
    strategy: &StrategyInput,
    docker: &Path,
    recorded: Option<Capabilities>,
) -> anyhow::Result<Planning> {
    let text = std::fs::read_to_string(&source.dockerfile)
        .with_context(|| format!("reading Dockerfile `{}`", source.dockerfile.display()))?;
    let caps = match recorded {
        Some(c) => c,
        None => {
            let opts = ProbeOptions {
                docker: docker.to_path_buf(),
                nodes: strategy
                    .nodes
                    .iter()
                    .map(|n| NodeSpec {
                        platform: n.platform.clone(),
                        endpoint: n.endpoint.clone(),
                        cert_dir: n.cert_dir.clone(),
                    })
                    .collect(),
            };
            let mut caps = probe::probe(&opts).await;
            caps.qemu = source
                .platforms
                .iter()
                .filter_map(|p| {
                    crate::builder::qemu::find_interpreter(p)
                        .map(|path| QemuInterpreter { platform: p.clone(), path: path.display().to_string() })
                })
                .collect();
            caps
        }
    };
    // The build platform is the engine's; without one, the host's.
    let build_platform = caps.engine.as_ref().map(|e| e.platform.clone()).unwrap_or_else(|| caps.host.clone());
    let file = source.dockerfile.strip_prefix(".").unwrap_or(&source.dockerfile).display().to_string();
    let analysis = dockerfile::analyze(&AnalyzeInput {
        text: &text,
        file: &file,
        build_args: &source.build_args,
        target: source.target.as_deref(),
        build_platform: &build_platform,
        platforms: &source.platforms,
    })
    .map_err(|e| {
        UserError::input(e.to_string()).hint("fix the Dockerfile; `docker buildx build --check` explains most problems")
    })?;
    let plan = plan::plan(&source.platforms, &strategy.policy, &caps, &analysis);
    Ok(Planning { caps, analysis, plan })
}

/// Prints the plan; fails with exit code 3 when some platform cannot be built here.
pub fn report(planning: &Planning, log: &Log) -> anyhow::Result<()> {
    log.line(report::plan_table(&planning.plan).trim_end());
    for u in &planning.analysis.unknowns {
        log.line(&format!("note: {u}"));
    }
    let impossible = planning.plan.impossible();
    if impossible.is_empty() {
        return Ok(());
    }
    // Annotate the deciding line, where the CI shows annotations (GitHub `::error file=…`).
    for i in &impossible {
        if let Some(d) = &i.deciding {
            let line = u32::try_from(d.line).ok();
            let first_fix = i.fixes.first().map(String::as_str).unwrap_or("");
            log.reporter().error(
                Some(&d.file),
                line,
                &format!(
                    "{} cannot be built on this runner: this RUN executes {} code; {first_fix}",
                    i.platform, i.platform
                ),
            );
        }
    }
    let names: Vec<String> = impossible.iter().map(|i| i.platform.to_string()).collect();
    Err(UserError::impossible(format!(
        "{} cannot be built on this runner; nothing was built or pushed\n\n{}",
        names.join(", "),
        impossible.iter().map(|i| report::impossible_detail(i)).collect::<Vec<_>>().join("\n")
    ))
    .hint(impossible[0].fixes.first().cloned().unwrap_or_default())
    .into())
}

pub async fn run(args: &PlanArgs, log: Arc<Log>) -> anyhow::Result<()> {
    let source = inputs::source_from_flags(&args.source, &|k| std::env::var(k).ok())?;
    let strategy = inputs::strategy_from_flags(&args.strategy)?;
    let recorded = match &args.capabilities {
        Some(path) => {
            let bytes = std::fs::read(path).with_context(|| format!("reading `--capabilities {}`", path.display()))?;
            Some(serde_json::from_slice(&bytes).map_err(|e| {
                UserError::input(format!("`--capabilities {}` is not a capabilities record: {e}", path.display()))
                    .hint("record one with `archway plan --save-capabilities FILE` on the runner")
            })?)
        }
        None => None,
    };
    let planning = make(&source, &strategy, &crate::commands::docker_bin(), recorded).await?;
    if let Some(path) = &args.save_capabilities {
        std::fs::write(path, serde_json::to_vec_pretty(&planning.caps)?)
            .with_context(|| format!("writing `--save-capabilities {}`", path.display()))?;
    }
    match args.format {
        Format::Table => report(&planning, &log),
        Format::Json => {
            println!("{}", serde_json::to_string_pretty(&report::plan_json(&planning.plan, &planning.analysis))?);
            if planning.plan.impossible().is_empty() {
                Ok(())
            } else {
                Err(UserError::impossible(
                    "some platforms cannot be built on this runner (see `strategy: impossible` above)",
                )
                .into())
            }
        }
    }
}
