//! Spawning archway from tests, always with a cleared environment.
//!
//! A test must see what it set up and nothing else: run on a GitHub runner (`GITHUB_ACTIONS=true`,
//! `INPUT_*`), under a GitLab job or with `ARCHWAY_*` set by a developer, an inheriting child
//! would switch log dialect, pick up inputs or credentials, and its output would depend on the
//! machine. So every archway process a test starts comes from [`archway`], which begins with
//! `env_clear()`; lab tests add back the few variables that find and reach the lab
//! ([`pass_lab_env`]). `tests/cli_snapshots.rs` checks that no test spawns archway another way.

use std::ffi::OsStr;
use std::process::Command;

/// The archway binary under test. Referenced here only: tests use [`archway`] (or [`clean`]
/// with this path as an argument, as the benchmark does under `timeout`).
pub const ARCHWAY: &str = env!("CARGO_BIN_EXE_archway");

/// `program` with an empty environment.
pub fn clean(program: impl AsRef<OsStr>) -> Command {
    let mut c = Command::new(program);
    c.env_clear();
    c
}

/// The archway binary with an empty environment.
pub fn archway() -> Command {
    clean(ARCHWAY)
}

/// Variables of the test process that lab tests hand on: where `docker`, `skopeo` and the
/// engine are, the Docker CLI configuration, a temp dir, and archway's own log filter. Never a
/// CI's variables, inputs or credentials.
pub const LAB_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "TMPDIR",
    "DOCKER_HOST",
    "DOCKER_CONFIG",
    "DOCKER_CERT_PATH",
    "DOCKER_TLS_VERIFY",
    "ARCHWAY_LOG",
    "RUST_BACKTRACE",
];

/// Adds the [`LAB_ENV`] variables the test process has.
pub fn pass_lab_env(c: &mut Command) -> &mut Command {
    for k in LAB_ENV {
        if let Some(v) = std::env::var_os(k) {
            c.env(k, v);
        }
    }
    c
}
