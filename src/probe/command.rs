//! command: runs one short-lived child process for a probe (`docker buildx version`, `docker -H
//! ssh://… version`) from an argument vector, never a shell, with a deadline, and captures its
//! output. Long-running builds have their own runner in `build/`.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use super::ProbeError;

/// What a finished child printed.
#[derive(Debug)]
pub(crate) struct Finished {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    /// The last non-empty line of stderr, which is where the docker CLI puts its reason.
    pub fn reason(&self) -> String {
        let last = self.stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
        if last.is_empty() { "it printed no error".to_string() } else { last.to_string() }
    }
}

/// The command line as a user would type it, for messages.
pub(crate) fn display(program: &Path, args: &[&str]) -> String {
    let mut s = program.display().to_string();
    for a in args {
        s.push(' ');
        s.push_str(a);
    }
    s
}

/// Runs `program args…` with stdin closed; stdout and stderr are read concurrently (no pipe can
/// fill up). The child is killed when `timeout` passes. `Err` says why it could not run or
/// finish, naming the command; a non-zero exit is an `Ok` with `success: false`.
pub(crate) async fn run(program: &Path, args: &[&str], timeout: Duration) -> Result<Finished, ProbeError> {
    let mut cmd = Command::new(program);
    cmd.args(args);
    run_shown(&mut cmd, program, display(program, args), timeout).await
}

/// [`run`] for a prepared command, shown in messages as `shown` (`docker buildx version` while
/// the plugin runs directly).
pub(crate) async fn run_shown(
    cmd: &mut Command,
    program: &Path,
    shown: String,
    timeout: Duration,
) -> Result<Finished, ProbeError> {
    let child =
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true).spawn().map_err(
            |e| match e.kind() {
                std::io::ErrorKind::NotFound => ProbeError::NotInstalled { program: program.display().to_string() },
                _ => ProbeError::Spawn { command: shown.clone(), detail: e.to_string() },
            },
        )?;
    // Dropping the future on timeout drops the child, which kill_on_drop kills.
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Err(_) => Err(ProbeError::Timeout { command: shown, secs: timeout.as_secs() }),
        Ok(Err(e)) => Err(ProbeError::Spawn { command: shown, detail: e.to_string() }),
        Ok(Ok(out)) => Ok(Finished {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn captures_output_and_status() {
        let f = run(Path::new("sh"), &["-c", "echo out; echo err >&2; exit 3"], Duration::from_secs(5)).await.unwrap();
        assert!(!f.success);
        assert_eq!((f.stdout.as_str(), f.stderr.as_str()), ("out\n", "err\n"));
        assert_eq!(f.reason(), "err");
    }

    #[tokio::test]
    async fn missing_program_and_timeout_are_reasons() {
        let e = run(Path::new("archway-no-such-program"), &["x"], Duration::from_secs(5)).await.unwrap_err();
        assert_eq!(e.to_string(), "`archway-no-such-program` is not installed (not found)");
        let started = std::time::Instant::now();
        let e = run(Path::new("sleep"), &["30"], Duration::from_millis(200)).await.unwrap_err();
        assert!(matches!(&e, ProbeError::Timeout { command, .. } if command == "sleep 30"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
