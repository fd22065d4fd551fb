//! local: a run outside any CI — `ARCHWAY_*` inputs, no commit metadata, plain log lines
//! without escape sequences, and no output files (`--metadata-file` is the way to keep a result).

use std::io::{self, Write};
use std::path::PathBuf;

use super::log::{Dialect, Level, Reporter, lines, location_prefix};
use super::outputs::CiResult;
use super::{Ci, Env, GitMeta, Provider, Spelling};

pub struct Local;

impl Ci for Local {
    fn provider(&self) -> Provider {
        Provider::Local
    }

    fn name(&self) -> &'static str {
        "local"
    }

    fn spelling(&self) -> Spelling {
        Spelling::Archway
    }

    fn default_context(&self, _env: &Env) -> Option<PathBuf> {
        None
    }

    fn git_meta(&self, _env: &Env, _event_json: Option<&str>) -> GitMeta {
        GitMeta::default()
    }

    fn secret_vars(&self) -> &'static [&'static str] {
        &[]
    }

    fn reporter(&self, env: &Env, out: Box<dyn Write + Send>) -> Box<dyn Reporter> {
        super::new_reporter(self, env, Plain, out)
    }

    fn write_outputs(&self, _env: &Env, _result: &CiResult) -> io::Result<Vec<PathBuf>> {
        Ok(Vec::new())
    }
}

/// Plain lines: `==> TITLE` for a group, `warning: ` and `error: ` prefixes, the final line as
/// it is, and a failure exactly as `crate::error::render` writes it. Debug lines are not shown
/// (archway's own diagnostics go through `ARCHWAY_LOG`).
pub struct Plain;

impl Dialect for Plain {
    fn group_start(&mut self, title: &str) -> Vec<String> {
        vec![format!("==> {}", title.replace(['\r', '\n'], " "))]
    }

    fn group_end(&mut self) -> Vec<String> {
        Vec::new()
    }

    fn message(&mut self, level: Level, file: Option<&str>, line: Option<u32>, text: &str) -> Vec<String> {
        let prefix = match level {
            Level::Debug => return Vec::new(),
            Level::Info => return lines(text),
            Level::Warning => "warning",
            Level::Error => "error",
        };
        vec![format!("{prefix}: {}{text}", location_prefix(file, line))]
    }

    fn success(&mut self, text: &str) -> Vec<String> {
        lines(text)
    }

    fn failure(&mut self, headline: &str, rest: &[&str]) -> Vec<String> {
        std::iter::once(format!("error: {headline}")).chain(rest.iter().map(|l| l.to_string())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::CiLog;
    use super::super::log::capture::Capture;
    use super::*;

    #[test]
    fn plain_lines() {
        let cap = Capture::default();
        let log = CiLog::new(Plain, Box::new(cap.clone()));
        log.group_start("plan");
        log.debug("hidden");
        log.error(Some("Dockerfile"), Some(2), "bad");
        log.success("done");
        assert_eq!(cap.text(), "==> plan\nerror: Dockerfile:2: bad\ndone\n");
        assert!(!cap.text().contains('\x1b'));
    }

    #[test]
    fn failure_is_the_rendered_error_once() {
        let cap = Capture::default();
        let log = CiLog::new(Plain, Box::new(cap.clone()));
        log.group_start("Plan");
        log.failure(
            "error: invalid `--platform` value\n  Caused by: unknown architecture `sparc`\n\nhint: use `linux/arm64`",
        );
        assert_eq!(
            cap.text(),
            "==> Plan\nerror: invalid `--platform` value\n  Caused by: unknown architecture `sparc`\n\nhint: use `linux/arm64`\n"
        );
    }
}
