//! `archway build`: inputs → plan → (push check) → build every platform → publish → report.
//! Tags move only after every platform has been built and the index pushed by digest.

use std::sync::Arc;

use crate::builder::schedule;
use crate::cli::BuildArgs;
use crate::inputs::Invocation;
use crate::planning::Probe;
use crate::report::{self, Log};
use crate::{planning, publish};

pub async fn run(args: &BuildArgs, inv: &Invocation, log: Arc<Log>) -> anyhow::Result<String> {
    let req = inv.build(args)?;

    log.group("Plan");
    let planning = planning::make(&req.source, &req.strategy, &req.runner, &req.registry, None, Probe::Needed).await;
    let shown = planning.map(|p| (report::plan(&p, &log), p));
    log.end_group();
    let (shown, planning) = shown?;
    shown?;
    if req.dry_run {
        return Ok("dry run: the plan above is what a build would do".into());
    }

    let client = Arc::new(req.registry.client());
    if let Some(repo) = req.repository() {
        log.line(&format!("==> checking push access to {}", repo.name()));
        publish::check_access(&client, repo).await?;
    }
    let builds = schedule::run(&req, &planning.plan, &client, &log).await?;

    log.group("Publish");
    let outcome = publish::build_result(&req, &client, builds.built, &log).await;
    drop(builds.staging);
    let outcome = outcome.inspect_err(|_| log.end_group())?;
    report::build_done(&req, &planning.plan, &outcome, &*inv.ci, &inv.env, &log)
}
