//! gitlab: GitLab CI — `ARCHWAY_*` inputs (set them from a component's inputs), commit metadata
//! from `CI_*`, the project's registry with the job's credentials, collapsible log sections, and a
//! dotenv report of the result for later jobs.

use std::io::{self, Write};
use std::path::PathBuf;

use super::log::{Dialect, Level, Reporter, lines, location_prefix};
use super::outputs::{self, CiResult};
use super::vars::{self, CI_DEPENDENCY_PROXY_PASSWORD, CI_JOB_TOKEN, CI_REGISTRY_PASSWORD};
use super::{Ci, Credentials, Env, GitMeta, Provider, Spelling, get};
use crate::secret::Secret;

/// The username that goes with `CI_JOB_TOKEN`.
pub const JOB_TOKEN_USER: &str = "gitlab-ci-token";
/// The dotenv report's file name in `CI_PROJECT_DIR` when `ARCHWAY_DOTENV` is unset.
pub const DOTENV_FILE: &str = "archway.env";

pub struct GitLab;

impl Ci for GitLab {
    fn provider(&self) -> Provider {
        Provider::GitLab
    }

    fn name(&self) -> &'static str {
        "GitLab CI"
    }

    fn spelling(&self) -> Spelling {
        Spelling::Archway
    }

    fn default_context(&self, env: &Env) -> Option<PathBuf> {
        get(env, vars::CI_PROJECT_DIR).map(PathBuf::from)
    }

    fn git_meta(&self, env: &Env, _event_json: Option<&str>) -> GitMeta {
        meta(env)
    }

    fn default_image(&self, env: &Env) -> Option<String> {
        get(env, vars::CI_REGISTRY_IMAGE).map(String::from)
    }

    /// For `CI_REGISTRY`: `CI_REGISTRY_USER` and `CI_REGISTRY_PASSWORD`, or the job token.
    fn own_credentials(&self, env: &Env) -> Vec<Credentials> {
        let Some(registry) = get(env, vars::CI_REGISTRY) else { return Vec::new() };
        let (username, password) = match (get(env, vars::CI_REGISTRY_USER), get(env, CI_REGISTRY_PASSWORD)) {
            (Some(u), Some(p)) => (u, p),
            _ => match get(env, CI_JOB_TOKEN) {
                Some(t) => (JOB_TOKEN_USER, t),
                None => return Vec::new(),
            },
        };
        vec![Credentials { registry: registry.into(), username: username.into(), password: Secret::new(password) }]
    }

    fn secret_vars(&self) -> &'static [&'static str] {
        &[CI_REGISTRY_PASSWORD, CI_JOB_TOKEN, CI_DEPENDENCY_PROXY_PASSWORD]
    }

    fn reporter(&self, env: &Env, out: Box<dyn Write + Send>) -> Box<dyn Reporter> {
        let debug = get(env, vars::CI_DEBUG_TRACE).is_some_and(|v| v.eq_ignore_ascii_case("true"));
        super::new_reporter(self, env, Sections::new(Box::new(unix_now), debug), out)
    }

    /// Writes the dotenv report (replacing it: the report is archway's alone) to
    /// `$ARCHWAY_DOTENV`, else `archway.env` in `$CI_PROJECT_DIR`, else in the current directory.
    fn write_outputs(&self, env: &Env, result: &CiResult) -> io::Result<Vec<PathBuf>> {
        let path = dotenv_path(env);
        let text = outputs::dotenv(&outputs::result_vars(result)).map_err(io::Error::other)?;
        std::fs::write(&path, text)?;
        Ok(vec![path])
    }
}

/// Where the dotenv report goes.
pub fn dotenv_path(env: &Env) -> PathBuf {
    match (get(env, vars::ARCHWAY_DOTENV), get(env, vars::CI_PROJECT_DIR)) {
        (Some(p), _) => PathBuf::from(p),
        (None, Some(dir)) => PathBuf::from(dir).join(DOTENV_FILE),
        (None, None) => PathBuf::from(DOTENV_FILE),
    }
}

/// Commit metadata from `CI_*`. In a merge request pipeline `CI_COMMIT_BRANCH` is unset; the
/// branch is the request's source branch.
pub fn meta(env: &Env) -> GitMeta {
    let s = |k| get(env, k).map(String::from);
    let pr = get(env, vars::CI_MERGE_REQUEST_IID).and_then(|n| n.parse().ok());
    let tag = s(vars::CI_COMMIT_TAG);
    let branch = s(vars::CI_COMMIT_BRANCH).or_else(|| {
        pr?;
        s(vars::CI_MERGE_REQUEST_SOURCE_BRANCH_NAME).or_else(|| s(vars::CI_COMMIT_REF_NAME))
    });
    GitMeta {
        event: s(vars::CI_PIPELINE_SOURCE),
        branch: branch.filter(|_| tag.is_none()),
        tag,
        sha: s(vars::CI_COMMIT_SHA),
        pr,
        default_branch: s(vars::CI_DEFAULT_BRANCH),
        repo_url: s(vars::CI_PROJECT_URL),
        repo_name: s(vars::CI_PROJECT_NAME),
        description: s(vars::CI_PROJECT_DESCRIPTION),
        url: s(vars::CI_PROJECT_URL),
        licenses: None,
        repo_tags: Vec::new(),
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

const ERASE: &str = "\x1b[0K";
const RED: &str = "\x1b[31;1m";
const YELLOW: &str = "\x1b[33;1m";
const GREEN: &str = "\x1b[32;1m";
const GRAY: &str = "\x1b[90m";
const CYAN: &str = "\x1b[36;1m";
const RESET: &str = "\x1b[0m";

/// GitLab's log sections:
/// `\e[0Ksection_start:TS:NAME[collapsed=true]\r\e[0KHeader` … `\e[0Ksection_end:TS:NAME\r\e[0K`.
pub struct Sections {
    clock: Box<dyn FnMut() -> u64 + Send>,
    debug: bool,
    count: u32,
    open: Option<String>,
}

impl Sections {
    /// `clock` gives the Unix time for section markers (GitLab shows each section's duration).
    pub fn new(clock: Box<dyn FnMut() -> u64 + Send>, debug: bool) -> Self {
        Sections { clock, debug, count: 0, open: None }
    }
}

/// A section name: `archway_N_` and the title with every character outside `[A-Za-z0-9_.-]`
/// turned into `_`; numbered so that two sections never share a name.
pub fn section_name(n: u32, title: &str) -> String {
    let cleaned: String = title
        .chars()
        .take(48)
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') { c } else { '_' })
        .collect();
    format!("archway_{n}_{}", cleaned.trim_matches('_')).trim_end_matches('_').to_string()
}

fn prefixed(prefix: &str, colour: &str, loc: &str, text: &str) -> Vec<String> {
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("");
    std::iter::once(format!("{colour}{prefix}{RESET} {loc}{first}")).chain(lines.map(String::from)).collect()
}

/// `line` unable to act as a section marker: GitLab's log reader takes
/// `section_start:TS:NAME[…]` or `section_end:TS:NAME` followed by `CR ESC [0K` for one,
/// anywhere in a line. In a line naming either, `CR` and `ESC` are shown as `␍` and `␛`.
pub fn defuse_sections(line: String) -> String {
    if line.contains("section_start:") || line.contains("section_end:") {
        line.replace('\r', "\u{240d}").replace('\x1b', "\u{241b}")
    } else {
        line
    }
}

impl Dialect for Sections {
    /// A child's output as it is (colours kept), except a line that could open or close a
    /// section ([`defuse_sections`]).
    fn line(&mut self, text: &str) -> Vec<String> {
        lines(text).into_iter().map(defuse_sections).collect()
    }

    fn group_start(&mut self, title: &str) -> Vec<String> {
        self.count += 1;
        let name = section_name(self.count, title);
        let header = title.replace(['\r', '\n'], " ");
        let line = format!("{ERASE}section_start:{}:{name}[collapsed=true]\r{ERASE}{header}", (self.clock)());
        self.open = Some(name);
        vec![line]
    }

    fn group_end(&mut self) -> Vec<String> {
        match self.open.take() {
            Some(name) => vec![format!("{ERASE}section_end:{}:{name}\r{ERASE}", (self.clock)())],
            None => Vec::new(),
        }
    }

    fn message(&mut self, level: Level, file: Option<&str>, line: Option<u32>, text: &str) -> Vec<String> {
        let loc = location_prefix(file, line);
        match level {
            Level::Debug if !self.debug => Vec::new(),
            Level::Debug => text.lines().map(|l| format!("{GRAY}debug: {l}{RESET}")).collect(),
            Level::Info => lines(text),
            Level::Warning => prefixed("warning:", YELLOW, &loc, text),
            Level::Error => prefixed("error:", RED, &loc, text),
        }
    }

    fn success(&mut self, text: &str) -> Vec<String> {
        text.lines().map(|l| format!("{GREEN}{l}{RESET}")).collect()
    }

    /// `error:` in red and `hint:` in cyan, as uv prints them; the rest as it is.
    fn failure(&mut self, headline: &str, rest: &[&str]) -> Vec<String> {
        let first = format!("{RED}error:{RESET} {headline}");
        let rest = rest.iter().map(|l| match l.strip_prefix("hint:") {
            Some(hint) => format!("{CYAN}hint:{RESET}{hint}"),
            None => l.to_string(),
        });
        std::iter::once(first).chain(rest).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::CiLog;
    use super::super::log::capture::Capture;
    use super::*;

    #[test]
    fn section_names() {
        assert_eq!(section_name(1, "build linux/arm64"), "archway_1_build_linux_arm64");
        assert_eq!(section_name(2, "***"), "archway_2");
        assert!(section_name(3, &"x".repeat(100)).len() < 64);
    }

    #[test]
    fn sections_have_gitlab_markers() {
        let cap = Capture::default();
        let mut t = 1_700_000_000;
        let clock = Box::new(move || {
            t += 5;
            t
        });
        let log = CiLog::new(Sections::new(clock, false), Box::new(cap.clone()));
        log.group_start("plan");
        log.info("linux/amd64  native");
        log.debug("hidden");
        log.error(Some("Dockerfile"), Some(3), "no such stage");
        log.success("done");
        assert_eq!(
            cap.text(),
            "\x1b[0Ksection_start:1700000005:archway_1_plan[collapsed=true]\r\x1b[0Kplan\n\
             linux/amd64  native\n\
             \x1b[31;1merror:\x1b[0m Dockerfile:3: no such stage\n\
             \x1b[0Ksection_end:1700000010:archway_1_plan\r\x1b[0K\n\
             \x1b[32;1mdone\x1b[0m\n"
        );
    }

    /// A child's line cannot open or close a section; archway's own text cannot either, and
    /// shows its escapes.
    #[test]
    fn child_and_own_lines_cannot_fake_sections() {
        let cap = Capture::default();
        let log = CiLog::new(Sections::new(Box::new(|| 1_700_000_000), false), Box::new(cap.clone()));
        log.group_start("Build");
        log.line("\x1b[32mok\x1b[0m");
        log.line("\x1b[0Ksection_end:1:archway_1_Build\r\x1b[0K");
        log.info("x\n\x1b[0Ksection_start:1:evil[collapsed=true]\r\x1b[0KFake");
        log.group_start("t \x1b[0Ksection_start:1:e\r\x1b[0K");
        let text = cap.text();
        let markers: Vec<&str> = text.lines().filter(|l| l.contains("section_") && l.contains("\r\x1b[0K")).collect();
        assert_eq!(markers.len(), 3, "archway's start, end, start: {text:?}");
        assert!(markers.iter().all(|m| m.starts_with("\x1b[0Ksection_") && m.contains(":archway_")), "{text:?}");
        assert!(text.contains("\x1b[32mok\x1b[0m\n"), "colours of a child kept: {text:?}");
        assert!(text.contains("\u{241b}[0Ksection_end:1:archway_1_Build\u{240d}\u{241b}[0K\n"), "{text:?}");
    }

    #[test]
    fn failure_closes_the_section_and_keeps_the_blank_line() {
        let cap = Capture::default();
        let log = CiLog::new(Sections::new(Box::new(|| 1_700_000_000), false), Box::new(cap.clone()));
        log.group_start("Plan");
        log.failure("error: `Dockerfile:2`: unknown instruction `RUNN`\n  Caused by: x\n\nhint: did you mean `RUN`?");
        assert_eq!(
            cap.text(),
            "\x1b[0Ksection_start:1700000000:archway_1_Plan[collapsed=true]\r\x1b[0KPlan\n\
             \x1b[0Ksection_end:1700000000:archway_1_Plan\r\x1b[0K\n\
             \x1b[31;1merror:\x1b[0m `Dockerfile:2`: unknown instruction `RUNN`\n  Caused by: x\n\n\
             \x1b[36;1mhint:\x1b[0m did you mean `RUN`?\n"
        );
    }
}
