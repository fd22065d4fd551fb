//! CI inputs from an environment map, for every CI (GitHub, GitLab, a Bitbucket pipe and script
//! step, local): `ci::resolve` (inputs, commit metadata from the variables and GitHub's event
//! payload, default image and tags, labels), credentials and secrets; then the whole `build`
//! request as `archway build` would make it (`Invocation::build`).
//!
//! Input: NUL-separated chunks; the first is the event payload (JSON), each other `NAME=VALUE`.
#![no_main]
use archway::ci::{self, Env, Provider};
use archway::cli::{Cli, Command};
use archway::inputs::Invocation;
use clap::Parser as _;
use libfuzzer_sys::fuzz_target;

const PROVIDERS: [(Provider, &str, &str); 5] = [
    (Provider::GitHub, "GITHUB_ACTIONS", "true"),
    (Provider::GitLab, "GITLAB_CI", "true"),
    (Provider::Bitbucket { pipe: true }, "BITBUCKET_PIPE_STORAGE_DIR", "/nonexistent/pipe"),
    (Provider::Bitbucket { pipe: false }, "BITBUCKET_BUILD_NUMBER", "1"),
    (Provider::Local, "", ""),
];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut chunks = text.split('\0');
    let event = chunks.next().filter(|e| !e.is_empty());
    let mut env = Env::new();
    for c in chunks {
        if let Some((k, v)) = c.split_once('=') {
            env.insert(k.to_string(), v.to_string());
        }
    }
    // The `registry-auth` list (YAML), from any variable's value.
    for v in env.values() {
        let secret = archway::secret::Secret::new(v.clone());
        if ci::registry_auth::parse(&secret, "REGISTRY_AUTH").is_ok() {
            let _ = ci::registry_auth::secrets(v);
        }
    }
    for (p, _, _) in PROVIDERS {
        let ci = ci::for_provider(p);
        let _ = ci.secrets(&env);
        let _ = ci.default_context(&env);
        match ci::resolve(&*ci, &env, event, 1_700_000_000) {
            Ok(run) => {
                let _ = run.check_push();
                let _ = run.push(true);
                let _ = ci.own_credentials(&env);
                let _ = run.inputs.secrets();
            }
            Err(e) => {
                let _ = (e.to_string(), e.hint());
            }
        }
    }
    // The whole `build` request, for each CI: files named by variables are read (the event
    // file, secret files), so none may name a device or a process's files, which could block.
    env.retain(|_, v| !["dev", "proc", "sys"].iter().any(|d| v.contains(d)));
    let Command::Build(args) = Cli::try_parse_from(["archway", "build", "--dry-run"]).expect("flags parse").command
    else {
        unreachable!()
    };
    for (_, var, value) in PROVIDERS {
        let mut env = env.clone();
        for (_, v, _) in PROVIDERS {
            env.remove(v);
        }
        if !var.is_empty() {
            env.insert(var.into(), value.into());
        }
        let inv = Invocation::new(env, None, 1_700_000_000);
        let _ = inv.build(&args);
        let _ = inv.progress(None);
    }
});
