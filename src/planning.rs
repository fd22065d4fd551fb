//! planning: the planning stage's driver, shared by `archway plan` and `archway build`. Reads the
//! Dockerfile, probes this runner (or loads recorded capabilities), analyses the Dockerfile for
//! the build platform and plans every platform with the pure `plan::plan`. Never pulls an image.

use std::path::Path;

use crate::dockerfile::{self, Analysis, AnalyzeInput};
use crate::error::UserError;
use crate::inputs::{BuildSource, Runner, StrategyInput};
use crate::plan::{self, Plan};
use crate::probe::{self, Capabilities, NodeSpec, ProbeOptions, QemuInterpreter};

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
    runner: &Runner,
    recorded: Option<Capabilities>,
) -> Result<Planning, UserError> {
    let text = std::fs::read_to_string(&source.dockerfile).map_err(|e| {
        UserError::input(format!("cannot read Dockerfile `{}`", source.dockerfile.display()))
            .caused_by(e)
            .hint("check that the file is readable")
    })?;
    let caps = match recorded {
        Some(c) => c,
        None => probe_runner(source, strategy, runner).await,
    };
    // The build platform is the engine's; without one, the host's.
    let build_platform = caps.engine.as_ref().map(|e| e.platform.clone()).unwrap_or_else(|| caps.host.clone());
    // Named as the user knows it: relative to the context (`Dockerfile`, `docker/Dockerfile.prod`)
    // when it is inside, so CI annotations point at the file in the checkout.
    let file = source
        .dockerfile
        .strip_prefix(&source.context)
        .or_else(|_| source.dockerfile.strip_prefix("."))
        .unwrap_or(&source.dockerfile)
        .display()
        .to_string();
    let analysis = dockerfile::analyze(&AnalyzeInput {
        text: &text,
        file: &file,
        build_args: &source.build_args,
        target: source.target.as_deref(),
        build_platform: &build_platform,
        platforms: &source.platforms,
    })
    .map_err(UserError::from)?;
    let plan = plan::plan(&source.platforms, &strategy.policy, &caps, &analysis);
    Ok(Planning { caps, analysis, plan })
}

/// What this runner can do for these platforms: the probe, plus the QEMU interpreters archway
/// could register for them.
async fn probe_runner(source: &BuildSource, strategy: &StrategyInput, runner: &Runner) -> Capabilities {
    let opts = ProbeOptions {
        docker: runner.docker.clone(),
        nodes: strategy
            .nodes
            .iter()
            .map(|n| NodeSpec {
                platform: n.platform.clone(),
                endpoint: n.endpoint.clone(),
                cert_dir: n.cert_dir.clone(),
            })
            .collect(),
        engine: runner.engine.clone(),
        container_var: runner.container_var.clone(),
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

/// Capabilities recorded with `--save-capabilities`.
pub fn load_capabilities(path: &Path) -> Result<Capabilities, UserError> {
    let bytes = std::fs::read(path).map_err(|e| {
        UserError::input(format!("cannot read `--capabilities {}`", path.display()))
            .caused_by(e)
            .hint("record one with `archway plan --save-capabilities FILE` on the runner")
    })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        UserError::input(format!("`--capabilities {}` is not a capabilities record", path.display()))
            .caused_by(e)
            .hint("record one with `archway plan --save-capabilities FILE` on the runner")
    })
}

/// Writes what the probe found, for `--capabilities` later.
pub fn save_capabilities(path: &Path, caps: &Capabilities) -> Result<(), UserError> {
    let json =
        serde_json::to_vec_pretty(caps).map_err(|e| UserError::failure("cannot encode capabilities").caused_by(e))?;
    std::fs::write(path, json).map_err(|e| {
        UserError::failure(format!("cannot write `--save-capabilities {}`", path.display()))
            .caused_by(e)
            .hint("check that the directory exists and is writable")
    })
}
