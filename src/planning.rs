//! planning: the planning stage's driver, shared by `archway plan` and `archway build`. Reads the
//! Dockerfile, analyses it, reads the base images' configs for ONBUILD triggers (the only
//! network it uses: a few KB per base), probes this runner (or loads recorded capabilities)
//! and plans every platform with the pure `plan::plan`. Never pulls an image.
//!
//! When the policy tries `assembled` first and every platform can be assembled, only this
//! machine's own facts are probed: no engine, no buildx, no nodes — nothing the plan would use.

use std::collections::HashMap;
use std::path::Path;

use crate::builder::assemble::base;
use crate::dockerfile::{self, Analysis, AnalyzeInput, Location};
use crate::error::UserError;
use crate::inputs::{BuildSource, RegistryAccess, Runner, StrategyInput};
use crate::plan::{self, Plan, StrategyKind};
use crate::platform::Platform;
use crate::probe::{self, Capabilities, NodeSpec, ProbeOptions, QemuInterpreter};
use crate::registry::{Client, RegistryError, RetryPolicy};

/// Everything planning found out.
pub struct Planning {
    pub caps: Capabilities,
    pub analysis: Analysis,
    pub plan: Plan,
}

/// How much of this runner to probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// Use these recorded capabilities instead.
    Recorded,
    /// Everything, even when the plan will not need it (`--save-capabilities`).
    Full,
    /// What the plan needs.
    Needed,
}

/// Analyses the Dockerfile, checks its base images and plans every platform, probing this
/// runner as `probe` says (`recorded` holds the capabilities for [`Probe::Recorded`]).
pub async fn make(
    source: &BuildSource,
    strategy: &StrategyInput,
    runner: &Runner,
    registry: &RegistryAccess,
    recorded: Option<Capabilities>,
    probe: Probe,
) -> Result<Planning, UserError> {
    let text = std::fs::read_to_string(&source.dockerfile).map_err(|e| {
        UserError::input(format!("cannot read Dockerfile `{}`", source.dockerfile.display()))
            .caused_by(e)
            .hint("check that the file exists and is readable")
    })?;
    let mut opts = probe_options(strategy, runner);
    if probe == Probe::Needed {
        opts.platforms = source.platforms.clone();
    }
    let assembled_first = strategy.policy.full_order().first() == Some(&StrategyKind::Assembled);
    // The build platform is the engine's; without one, the host's. Analyse for the host first:
    // when every platform is assembled, no engine is asked at all.
    let (mut caps, lazy) = match recorded {
        Some(c) => (c, false),
        None if probe == Probe::Needed && assembled_first && strategy.policy.not_assemblable.is_empty() => {
            (probe::probe_host(&opts), true)
        }
        None => (probe_all(source, &opts).await, false),
    };
    let mut analysis = analyze(source, &text, &caps)?;
    // Each base image's triggers per platform, read once even when the plan is made twice.
    let mut triggers = Triggers::new();
    let client = registry
        .client()
        // A plan waits seconds, not minutes, for a base image's config.
        .with_retry(RetryPolicy {
            max_attempts: 2,
            max_wait: std::time::Duration::from_secs(2),
            ..RetryPolicy::default()
        });
    check_bases(&client, &mut analysis, &caps.host, &file_name(source), &mut triggers).await;
    if lazy && !analysis.per_platform.iter().all(|p| p.assemblable) {
        caps = probe_all(source, &opts).await;
        analysis = analyze(source, &text, &caps)?;
        check_bases(&client, &mut analysis, &caps.host, &file_name(source), &mut triggers).await;
    }
    let plan = plan::plan(&source.platforms, &strategy.policy, &caps, &analysis);
    Ok(Planning { caps, analysis, plan })
}

fn probe_options(strategy: &StrategyInput, runner: &Runner) -> ProbeOptions {
    ProbeOptions {
        docker: runner.docker.clone(),
        buildx: runner.buildx(),
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
        default_builder: probe::buildx::default_builder_selected(
            &runner.docker_config,
            runner.buildx_builder.as_deref(),
        ),
        platforms: Vec::new(),
    }
}

/// The Dockerfile as the user knows it: relative to the context (`Dockerfile`,
/// `docker/Dockerfile.prod`) when it is inside, so CI annotations point at the file.
fn file_name(source: &BuildSource) -> String {
    source
        .dockerfile
        .strip_prefix(&source.context)
        .or_else(|_| source.dockerfile.strip_prefix("."))
        .unwrap_or(&source.dockerfile)
        .display()
        .to_string()
}

fn analyze(source: &BuildSource, text: &str, caps: &Capabilities) -> Result<Analysis, UserError> {
    let build_platform = caps.engine.as_ref().map(|e| e.platform.clone()).unwrap_or_else(|| caps.host.clone());
    let file = file_name(source);
    Ok(dockerfile::analyze(&AnalyzeInput {
        text,
        file: &file,
        build_args: &source.build_args,
        target: source.target.as_deref(),
        build_platform: &build_platform,
        platforms: &source.platforms,
    })?)
}

/// What this runner can do for these platforms: the probe, plus the QEMU interpreters archway
/// could register for them.
async fn probe_all(source: &BuildSource, opts: &ProbeOptions) -> Capabilities {
    let t = std::time::Instant::now();
    let mut caps = probe::probe(opts).await;
    tracing::debug!(target: crate::builder::schedule::TIMINGS, phase = "probe", secs = t.elapsed().as_secs_f64(), "timing");
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

/// Reads the ONBUILD triggers of every registry base image a still-assemblable platform needs
/// (BuildKit runs them in the child build). A trigger that runs code, or a base that cannot be
/// read, makes that platform not assemblable, saying why; a base found without such triggers
/// drops the analysis' note that its triggers could not be seen.
/// ONBUILD triggers by (image, platform), or why they could not be read.
type Triggers = HashMap<(String, Platform), Result<Vec<String>, String>>;

async fn check_bases(client: &Client, analysis: &mut Analysis, host: &Platform, file: &str, seen: &mut Triggers) {
    let stage_names: Vec<String> = analysis.stages.iter().map(|s| s.name.clone()).collect();
    let bases: Vec<(String, Option<String>, Location)> = analysis
        .stages
        .iter()
        .filter(|s| s.needed && !s.base.eq_ignore_ascii_case("scratch") && !stage_names.contains(&s.base))
        .filter(|s| !s.base.contains('$'))
        .map(|s| {
            let from = Location {
                file: file.to_string(),
                line: s.line,
                stage: s.name.clone(),
                instruction: format!("FROM {}", s.base),
            };
            (s.base.clone(), s.platform_flag.clone(), from)
        })
        .collect();
    let mut all_clear: Vec<String> = Vec::new();
    for (image, flag, from) in bases {
        let (mut checked, mut clear) = (false, true);
        for pa in analysis.per_platform.iter_mut().filter(|p| p.assemblable) {
            // A stage pinned to the build platform runs the build platform's image.
            let platform = match flag.as_deref() {
                Some(f) if f.contains("BUILDPLATFORM") => host.clone(),
                Some(f) => f.parse().unwrap_or_else(|_| pa.platform.clone()),
                None => pa.platform.clone(),
            };
            checked = true;
            let key = (image.clone(), platform.clone());
            if !seen.contains_key(&key) {
                let read = base::onbuild_triggers(client, &image, &platform).await.map_err(|e| match &e {
                    base::BaseError::Registry { source: RegistryError::Unreachable { registry, .. }, .. } => {
                        format!("registry `{registry}` is unreachable from here")
                    }
                    other => other.to_string(),
                });
                seen.insert(key.clone(), read);
            }
            match &seen[&key] {
                Ok(triggers) => {
                    if let Some(t) = triggers.iter().find(|t| t.trim_start().to_ascii_uppercase().starts_with("RUN")) {
                        pa.base_trigger(&image, from.clone(), t);
                        clear = false;
                    }
                }
                Err(why) => {
                    pa.assemblable = false;
                    pa.not_assemblable_reason = Some(format!(
                        "the base image `{image}` could not be read to check its ONBUILD triggers: {why}"
                    ));
                    pa.not_assemblable = Some(from.clone());
                    clear = false;
                }
            }
        }
        if checked && clear {
            all_clear.push(image);
        }
    }
    analysis.unknowns.retain(|u| !all_clear.iter().any(|i| u.contains(&format!("base image `{i}`"))));
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
