//! The `archway` binary: read the environment once, pick the CI's log dialect, run one
//! command, render its error, exit.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser as _;

use archway::ci;
use archway::cli::{Cli, Command};
use archway::report::Log;

async fn interrupted() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}

fn main() -> ExitCode {
    // Started as `docker-credential-archway` by buildx: answer the helper protocol and stop.
    if archway::builder::credentials::invoked_as_helper() {
        return ExitCode::from(archway::builder::credentials::serve_helper());
    }
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env(archway::env::LOG).unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .without_time()
        .init();
    // The environment, read once; the CI it names decides the log dialect, and every secret
    // it holds is masked before anything is written.
    let env = ci::snapshot();
    let provider = ci::detect(&env);
    let groups = matches!(provider, ci::Provider::GitHub | ci::Provider::GitLab);
    let log = Arc::new(Log::new(ci::for_provider(provider).reporter(&env, Box::new(std::io::stderr())), groups));
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("the async runtime starts");
    let result = runtime.block_on(async {
        let command = async {
            match &cli.command {
                Command::Build(args) => archway::commands::build::run(args, log.clone(), &env).await,
                Command::Plan(args) => archway::commands::plan::run(args, log.clone()).await.map(|()| String::new()),
                Command::Merge(args) => archway::commands::merge::run(args, log.clone()).await,
                Command::Promote(args) => archway::commands::promote::run(args, log.clone()).await,
                Command::Inspect(args) => archway::commands::inspect::run(args).await.map(|()| String::new()),
                Command::BinfmtRegister(args) => {
                    archway::commands::binfmt_register::run(args, &log).map(|()| String::new())
                }
            }
        };
        // On SIGINT/SIGTERM the command is dropped, which kills its buildx children; no tag
        // moves because tags are only ever put at the very end.
        tokio::select! {
            r = command => r,
            s = interrupted() => Err(archway::error::UserError::failure(format!("stopped by {s}; no tag was moved unless the summary above says so")).into()),
        }
    });
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
