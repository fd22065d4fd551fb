//! bitbucket: Bitbucket Pipelines — as a pipe (inputs are the pipe's variables: `IMAGE`,
//! `TAGS`, `REGISTRY_PASSWORD`, lists also as `TAGS_COUNT` + `TAGS_0…`) or in a script step
//! (`ARCHWAY_*`, because there the environment holds the repository's own variables, where a
//! `TAGS` or `IMAGE` may mean anything). Commit metadata from `BITBUCKET_*`, pipe-style log
//! lines ending in `✔` or an error marked `✖`, output variables and a JSON result for later pipes.

use std::io::{self, Write};
use std::path::PathBuf;

use super::log::{Dialect, Level, Reporter, location_prefix};
use super::outputs::{self, CiResult};
use super::vars::{self, BITBUCKET_STEP_OIDC_TOKEN};
use super::{Ci, Env, GitMeta, Provider, Spelling, get};

/// Written to `$BITBUCKET_PIPE_SHARED_STORAGE_DIR` for the pipes and scripts after archway.
pub const RESULT_FILE: &str = "archway-result.json";
/// Branches taken as the default one when `DEFAULT_BRANCH` is not given (Bitbucket does not
/// tell a build which branch is the default).
pub const USUAL_DEFAULT_BRANCHES: [&str; 2] = ["main", "master"];

pub struct Bitbucket {
    /// Running as a pipe (`BITBUCKET_PIPE_STORAGE_DIR` is set), not in a script step.
    pub pipe: bool,
}

impl Ci for Bitbucket {
    fn provider(&self) -> Provider {
        Provider::Bitbucket { pipe: self.pipe }
    }

    fn name(&self) -> &'static str {
        "Bitbucket Pipelines"
    }

    fn spelling(&self) -> Spelling {
        if self.pipe { Spelling::Pipe } else { Spelling::Archway }
    }

    fn default_context(&self, env: &Env) -> Option<PathBuf> {
        get(env, vars::BITBUCKET_CLONE_DIR).map(PathBuf::from)
    }

    fn git_meta(&self, env: &Env, _event_json: Option<&str>) -> GitMeta {
        let default_var = if self.pipe { vars::PIPE_DEFAULT_BRANCH } else { vars::ARCHWAY_DEFAULT_BRANCH };
        meta(env, get(env, default_var))
    }

    fn secret_vars(&self) -> &'static [&'static str] {
        &[vars::PASSWORD.pipe, BITBUCKET_STEP_OIDC_TOKEN]
    }

    fn reporter(&self, env: &Env, out: Box<dyn Write + Send>) -> Box<dyn Reporter> {
        let debug = get(env, vars::PIPE_DEBUG).is_some_and(|v| v.eq_ignore_ascii_case("true"));
        super::new_reporter(self, env, PipeStyle { debug }, out)
    }

    /// Appends `ARCHWAY_*=…` lines to `$BITBUCKET_PIPELINES_VARIABLES_PATH` (the step's
    /// `output-variables`) and writes `archway-result.json` in
    /// `$BITBUCKET_PIPE_SHARED_STORAGE_DIR`, each when set.
    fn write_outputs(&self, env: &Env, result: &CiResult) -> io::Result<Vec<PathBuf>> {
        let mut written = Vec::new();
        if let Some(path) = get(env, vars::BITBUCKET_PIPELINES_VARIABLES_PATH) {
            let text = outputs::dotenv(&outputs::result_vars(result)).map_err(io::Error::other)?;
            outputs::append(path.as_ref(), &text)?;
            written.push(path.into());
        }
        if let Some(dir) = get(env, vars::BITBUCKET_PIPE_SHARED_STORAGE_DIR) {
            let path = PathBuf::from(dir).join(RESULT_FILE);
            std::fs::write(&path, result.to_json())?;
            written.push(path);
        }
        Ok(written)
    }
}

/// Commit metadata from `BITBUCKET_*`; `default_branch` as given, else `main` or `master` when
/// that is the branch built.
pub fn meta(env: &Env, default_branch: Option<&str>) -> GitMeta {
    let s = |k| get(env, k).map(String::from);
    let tag = s(vars::BITBUCKET_TAG);
    let pr = get(env, vars::BITBUCKET_PR_ID).and_then(|n| n.parse().ok());
    let branch = s(vars::BITBUCKET_BRANCH).filter(|_| tag.is_none());
    let default_branch = default_branch
        .map(String::from)
        .or_else(|| branch.clone().filter(|b| USUAL_DEFAULT_BRANCHES.contains(&b.as_str())));
    let event = if pr.is_some() {
        "pull_request"
    } else if tag.is_some() {
        "tag"
    } else {
        "push"
    };
    let repo_url = get(env, vars::BITBUCKET_GIT_HTTP_ORIGIN).map(|u| match u.strip_prefix("http://bitbucket.org/") {
        Some(rest) => format!("https://bitbucket.org/{rest}"),
        None => u.to_string(),
    });
    GitMeta {
        event: Some(event.into()),
        branch,
        tag,
        sha: s(vars::BITBUCKET_COMMIT),
        pr,
        default_branch,
        // Bitbucket gives `http://bitbucket.org/…`; the same page is served over https.
        url: repo_url.clone(),
        repo_url,
        repo_name: s(vars::BITBUCKET_REPO_SLUG),
        description: None,
        licenses: None,
        repo_tags: Vec::new(),
    }
}

// The colours of Atlassian's own pipes (their `common.sh`).
const GRAY: &str = "\x1b[37m";
const BLUE: &str = "\x1b[36m";
const YELLOW: &str = "\x1b[33m";
const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const RESET: &str = "\x1b[0m";

/// Atlassian pipe style: `INFO:`, `DEBUG:` (only with `DEBUG=true`), `WARNING:`, `ERROR:` in
/// colour; a run ends with `✔ …` (green), or with its error, whose first line is `✖ …` (red)
/// and whose `Caused by:` and `hint:` lines follow. Bitbucket's log has no folding, so a group
/// is an `INFO:` line.
pub struct PipeStyle {
    pub debug: bool,
}

fn levelled(colour: &str, level: &str, loc: &str, text: &str) -> Vec<String> {
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("");
    std::iter::once(format!("{colour}{level}: {loc}{first}{RESET}"))
        .chain(lines.map(|l| format!("{colour}{l}{RESET}")))
        .collect()
}

impl Dialect for PipeStyle {
    fn group_start(&mut self, title: &str) -> Vec<String> {
        levelled(BLUE, "INFO", "", title)
    }

    fn group_end(&mut self) -> Vec<String> {
        Vec::new()
    }

    fn message(&mut self, level: Level, file: Option<&str>, line: Option<u32>, text: &str) -> Vec<String> {
        let loc = location_prefix(file, line);
        match level {
            Level::Debug if !self.debug => Vec::new(),
            Level::Debug => levelled(GRAY, "DEBUG", &loc, text),
            Level::Info if text.is_empty() => vec![String::new()],
            Level::Info => levelled(BLUE, "INFO", &loc, text),
            Level::Warning => levelled(YELLOW, "WARNING", &loc, text),
            Level::Error => levelled(RED, "ERROR", &loc, text),
        }
    }

    fn success(&mut self, text: &str) -> Vec<String> {
        // One line, so that it is the last one whatever the text holds.
        let text = text.replace(['\r', '\n'], " ");
        vec![format!("{GREEN}✔ {text}{RESET}")]
    }

    fn failure(&mut self, headline: &str, rest: &[&str]) -> Vec<String> {
        std::iter::once(format!("{RED}✖ {headline}{RESET}")).chain(rest.iter().map(|l| l.to_string())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::CiLog;
    use super::super::log::capture::Capture;
    use super::*;

    #[test]
    fn pipe_style() {
        let cap = Capture::default();
        let log = CiLog::new(PipeStyle { debug: false }, Box::new(cap.clone()));
        log.group_start("Building linux/arm64");
        log.debug("hidden");
        log.warning(None, None, "slow\nvery");
        log.info("");
        log.failure("error: 1 of 2 platforms failed\n  Caused by: exit 1\n\nhint: see `[linux/arm64]`");
        assert_eq!(
            cap.text(),
            "\x1b[36mINFO: Building linux/arm64\x1b[0m\n\x1b[33mWARNING: slow\x1b[0m\n\x1b[33mvery\x1b[0m\n\n\
             \x1b[31m✖ 1 of 2 platforms failed\x1b[0m\n  Caused by: exit 1\n\nhint: see `[linux/arm64]`\n"
        );
        let cap = Capture::default();
        let log = CiLog::new(PipeStyle { debug: true }, Box::new(cap.clone()));
        log.debug("shown");
        log.success("Pushed");
        assert_eq!(cap.text(), "\x1b[37mDEBUG: shown\x1b[0m\n\x1b[32m✔ Pushed\x1b[0m\n");
    }
}
