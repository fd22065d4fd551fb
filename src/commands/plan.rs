//! `archway plan`: inputs → probe (or recorded capabilities) → dockerfile → plan → report.
//! Planning never pulls an image and needs no network: only the Dockerfile, the build args and
//! the probe.

use std::sync::Arc;

use crate::cli::PlanArgs;
use crate::inputs::{Invocation, git_context};
use crate::planning::{self, Probe};
use crate::report::{self, Log};

pub async fn run(args: &PlanArgs, inv: &Invocation, log: Arc<Log>) -> anyhow::Result<String> {
    let (source, _git_context) = git_context::resolve(inv, &args.source, &log).await?;
    let req = inv.plan(&PlanArgs { source, ..args.clone() })?;
    let recorded = req.capabilities.as_deref().map(planning::load_capabilities).transpose()?;
    let probe = match (&recorded, &req.save_capabilities) {
        (Some(_), _) => Probe::Recorded,
        (None, Some(_)) => Probe::Full,
        (None, None) => Probe::Needed,
    };
    let planning = planning::make(&req.source, &req.strategy, &req.runner, &req.registry, recorded, probe).await?;
    if let Some(path) = &req.save_capabilities {
        planning::save_capabilities(path, &planning.caps)?;
    }
    report::plan_output(&planning, req.format, &log)?;
    Ok(String::new())
}
