//! The `archway` binary: read the environment once, pick the CI's log dialect, run one
//! command, render its error, exit.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser as _;

use archway::cli::{Cli, Command};
use archway::commands;
use archway::inputs::{Invocation, environment};
use archway::report::Log;

async fn interrupted() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else { return std::future::pending().await };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}

fn main() -> ExitCode {
    // Started as `docker-credential-archway` by buildx: answer the helper protocol and stop.
    if let Some(call) = environment::helper_call() {
        return ExitCode::from(archway::builder::credentials::serve_helper(&call));
    }
    let cli = Cli::parse();
    // The environment, read once; the CI it names decides the log dialect, and every secret
    // it holds is masked before anything is written.
    let inv = Invocation::capture();
    let filter = inv.env.get(archway::env::LOG).and_then(|f| tracing_subscriber::EnvFilter::try_new(f).ok());
    tracing_subscriber::fmt()
        .with_env_filter(filter.unwrap_or_else(|| "warn".into()))
        .with_writer(std::io::stderr)
        .without_time()
        .init();
    // Every temporary file of this run in one directory, removed at the end; a killed run's is
    // removed by the next.
    let scratch = archway::scratch::temp_root();
    let groups = matches!(inv.ci.provider(), archway::ci::Provider::GitHub | archway::ci::Provider::GitLab);
    let log = Arc::new(Log::new(inv.ci.reporter(&inv.env, Box::new(std::io::stderr())), groups));
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            log.failure(&format!("error: cannot start the async runtime\n  Caused by: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let command = async {
            match &cli.command {
                Command::Build(args) => commands::build::run(args, &inv, log.clone()).await,
                Command::Plan(args) => commands::plan::run(args, &inv, log.clone()).await,
                Command::Merge(args) => commands::merge::run(args, &inv, log.clone()).await,
                Command::Promote(args) => commands::promote::run(args, &inv, log.clone()).await,
                Command::Inspect(args) => commands::inspect::run(args, &inv).await,
                Command::BinfmtRegister(args) => commands::binfmt_register::run(args, &inv, &log),
            }
        };
        // On SIGINT/SIGTERM the command is dropped, which kills its buildx children; no tag
        // moves because tags are only ever put at the very end.
        tokio::select! {
            r = command => r,
            s = interrupted() => Err(archway::error::UserError::failure(format!("stopped by {s}; no tag was moved unless the summary above says so")).into()),
        }
    });
    drop(runtime);
    if let Some(s) = scratch {
        let _ = std::fs::remove_dir_all(s.path());
    }
    match result {
        Ok(done) => {
            if !done.is_empty() {
                log.success(&done);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            let (text, code) = archway::error::render(&e);
            log.failure(text.trim_end());
            ExitCode::from(code)
        }
    }
}
