//! `archway build`: inputs → plan → build every platform → publish → report. The push-access
//! check starts with planning and runs alongside everything up to the first push: a failure
//! known before the build stops it from starting, one found later cancels it. Tags move only
//! after every platform has been built and the index pushed by digest.

use std::sync::Arc;
use std::time::Instant;

use crate::builder::schedule::{self, TIMINGS};
use crate::cli::BuildArgs;
use crate::inputs::{Invocation, git_context};
use crate::planning::Probe;
use crate::report::{self, Log};
use crate::{planning, publish};

pub async fn run(args: &BuildArgs, inv: &Invocation, log: Arc<Log>) -> anyhow::Result<String> {
    let (source, _git_context) = git_context::resolve(inv, &args.source, &log).await?;
    let req = inv.build(&BuildArgs { source, ..args.clone() })?;
    for s in &req.secret_masks {
        log.reporter().mask(s);
    }
    if req.options.call.is_some() {
        return schedule::call(&req, &log).await;
    }
    log.set_progress(inv.progress(args.buildx.progress.as_deref())?);
    let client = Arc::new(req.registry.client());
    // A dry run pushes nothing, so it asks the registry nothing either.
    let checking = req.repository().filter(|_| !req.dry_run).map(|_| {
        let (client, repos) = (client.clone(), req.repositories());
        tokio::spawn(async move { publish::check_access_all(&client, &repos).await })
    });

    log.group("Plan");
    for n in &req.notes {
        log.line(&format!("note: {n}"));
    }
    let t = Instant::now();
    let planning = planning::make(&req.source, &req.strategy, &req.runner, &req.registry, None, Probe::Needed).await;
    tracing::debug!(target: TIMINGS, phase = "plan", secs = t.elapsed().as_secs_f64(), "timing");
    let shown = planning.map(|p| (report::plan(&p, &log), p));
    log.end_group();
    let (shown, planning) = shown?;
    shown?;
    if req.dry_run {
        return Ok("dry run: the plan above is what a build would do".into());
    }

    // Pushes by digest wait for the check; its failure drops the build (killing buildx).
    let (tx, access) = tokio::sync::watch::channel(false);
    let access = checking.is_some().then_some(access);
    let check = async {
        if let (Some(checking), Some(repo)) = (checking, req.repository()) {
            log.line(&format!("==> checking push access to {}", repo.name()));
            checking.await??;
            tracing::debug!(target: TIMINGS, phase = "access_check", secs = t.elapsed().as_secs_f64(), "timing");
            let _ = tx.send(true);
        }
        anyhow::Ok(())
    };
    let ((), builds) =
        tokio::try_join!(check, schedule::run(&req, &planning.plan, &planning.caps, &client, &log, access))?;

    log.group("Publish");
    let t = Instant::now();
    let outcome = publish::build_result(&req, &client, builds.built, &log).await;
    tracing::debug!(target: TIMINGS, phase = "publish", secs = t.elapsed().as_secs_f64(), "timing");
    drop(builds.staging);
    let outcome = outcome.inspect_err(|_| log.end_group())?;
    let engine = planning.caps.engine.as_ref().map(|e| &e.platform);
    publish::local::after_publish(&req, &client, &outcome, engine, &log).await.inspect_err(|_| log.end_group())?;
    report::build_done(&req, &planning.plan, &outcome, &*inv.ci, &inv.env, &log)
}
