//! github: GitHub Actions — `INPUT_*` inputs, commit metadata from `GITHUB_*` and the event
//! payload, `ghcr.io` with the workflow token when nothing else logs in, the `github-token` for Git contexts, workflow commands (`::group::`, `::error …::`,
//! `::add-mask::`) with GitHub's escaping, `$GITHUB_OUTPUT` and the step summary.

use std::io::{self, Write};
use std::path::PathBuf;

use super::log::{Dialect, Level, Reporter, lines};
use super::outputs::{self, CiResult};
use super::vars::{self, ACTIONS_RUNTIME_TOKEN, GITHUB_TOKEN, INPUT_GITHUB_TOKEN};
use super::{Ci, Credentials, Env, GitMeta, Provider, Spelling, get};
use crate::secret::Secret;

/// GitHub's container registry, where the workflow token can push.
pub const GHCR: &str = "ghcr.io";

pub struct GitHub;

impl Ci for GitHub {
    fn provider(&self) -> Provider {
        Provider::GitHub
    }

    fn name(&self) -> &'static str {
        "GitHub Actions"
    }

    fn spelling(&self) -> Spelling {
        Spelling::GitHub
    }

    fn default_context(&self, env: &Env) -> Option<PathBuf> {
        get(env, vars::GITHUB_WORKSPACE).map(PathBuf::from)
    }

    fn read_event(&self, env: &Env) -> Option<String> {
        std::fs::read_to_string(get(env, vars::GITHUB_EVENT_PATH)?).ok()
    }

    fn git_meta(&self, env: &Env, event_json: Option<&str>) -> GitMeta {
        meta(env, event_json)
    }

    /// `ghcr.io/OWNER/REPO`, lower-cased (GitHub names may have capitals, image names may not).
    fn default_image(&self, env: &Env) -> Option<String> {
        get(env, vars::GITHUB_REPOSITORY).map(|r| format!("{GHCR}/{}", r.to_lowercase()))
    }

    /// ghcr.io with the GitHub token (`GITHUB_TOKEN` in the step's environment, else the
    /// `github-token` input, by default the workflow token) as the actor, when nothing else has a
    /// credential for ghcr.io: `username`/`password`, `registry-auth` and the Docker config
    /// (docker/login-action) all come first.
    fn last_credentials(&self, env: &Env) -> Vec<Credentials> {
        let token = get(env, GITHUB_TOKEN).or_else(|| get(env, INPUT_GITHUB_TOKEN));
        match (token, get(env, vars::GITHUB_ACTOR)) {
            (Some(t), Some(actor)) => {
                vec![Credentials { registry: GHCR.into(), username: actor.into(), password: Secret::new(t) }]
            }
            _ => Vec::new(),
        }
    }

    /// The `github-token` input (else `GITHUB_TOKEN`) for the GitHub server's host
    /// (`GITHUB_SERVER_URL`, default `github.com`), as build-push-action passes it for a Git
    /// context.
    fn git_auth_token(&self, env: &Env) -> Option<(String, Secret)> {
        let token = get(env, INPUT_GITHUB_TOKEN).or_else(|| get(env, GITHUB_TOKEN))?;
        let server = get(env, vars::GITHUB_SERVER_URL).unwrap_or("https://github.com");
        let host = url::Url::parse(server).ok()?.host_str()?.to_ascii_lowercase();
        Some((host, Secret::new(token)))
    }

    fn secret_vars(&self) -> &'static [&'static str] {
        &[INPUT_GITHUB_TOKEN, GITHUB_TOKEN, ACTIONS_RUNTIME_TOKEN]
    }

    fn reporter(&self, env: &Env, out: Box<dyn Write + Send>) -> Box<dyn Reporter> {
        super::new_reporter(self, env, Commands::default(), out)
    }

    /// Appends to `$GITHUB_OUTPUT` and `$GITHUB_STEP_SUMMARY`, each when set.
    fn write_outputs(&self, env: &Env, result: &CiResult) -> io::Result<Vec<PathBuf>> {
        let mut written = Vec::new();
        if let Some(path) = get(env, vars::GITHUB_OUTPUT) {
            let values = output_values(result);
            let delimiter = loop {
                let d = format!("ghadelimiter_{}", outputs::random_hex());
                if !values.iter().any(|(_, v)| v.contains(&d)) {
                    break d;
                }
            };
            outputs::append(path.as_ref(), &output_file(&values, &delimiter))?;
            written.push(path.into());
        }
        if let Some(path) = get(env, vars::GITHUB_STEP_SUMMARY) {
            outputs::append(path.as_ref(), &step_summary(result))?;
            written.push(path.into());
        }
        Ok(written)
    }
}

/// Commit metadata from `GITHUB_*` and, when given, the event payload (for the default branch,
/// and the pull request number of `pull_request_target` runs, whose ref is the base branch).
pub fn meta(env: &Env, event_json: Option<&str>) -> GitMeta {
    let event: Option<serde_json::Value> = event_json.and_then(|t| serde_json::from_str(t).ok());
    let event_name = get(env, vars::GITHUB_EVENT_NAME);
    let full_ref = get(env, vars::GITHUB_REF).unwrap_or("");
    let ref_type = get(env, vars::GITHUB_REF_TYPE);
    let ref_name = get(env, vars::GITHUB_REF_NAME);

    let pr =
        full_ref.strip_prefix("refs/pull/").and_then(|s| s.split('/').next()).and_then(|n| n.parse().ok()).or_else(
            || {
                event_name.filter(|e| e.starts_with("pull_request"))?;
                event.as_ref()?.pointer("/pull_request/number")?.as_u64()
            },
        );
    let tag = match full_ref.strip_prefix("refs/tags/") {
        _ if pr.is_some() => None,
        Some(t) => Some(t.to_string()),
        None => ref_name.filter(|_| ref_type == Some("tag")).map(String::from),
    };
    let branch = if pr.is_some() {
        get(env, vars::GITHUB_HEAD_REF).map(String::from)
    } else if tag.is_some() {
        None
    } else {
        full_ref
            .strip_prefix("refs/heads/")
            .map(String::from)
            .or_else(|| ref_name.filter(|_| ref_type == Some("branch")).map(String::from))
    };
    let text = |pointer: &str| {
        event.as_ref()?.pointer(pointer)?.as_str().map(str::trim).filter(|t| !t.is_empty()).map(String::from)
    };
    let repository = get(env, vars::GITHUB_REPOSITORY);
    let server = get(env, vars::GITHUB_SERVER_URL).unwrap_or("https://github.com").trim_end_matches('/');
    GitMeta {
        event: event_name.map(String::from),
        branch,
        tag,
        sha: get(env, vars::GITHUB_SHA).map(String::from),
        pr,
        default_branch: event
            .as_ref()
            .and_then(|e| e.pointer("/repository/default_branch")?.as_str().map(String::from)),
        repo_url: repository.map(|r| format!("{server}/{r}")),
        repo_name: repository.and_then(|r| r.rsplit('/').next()).map(String::from),
        description: text("/repository/description"),
        url: text("/repository/html_url").or_else(|| repository.map(|r| format!("{server}/{r}"))),
        // GitHub says `NOASSERTION` for a licence it cannot name.
        licenses: text("/repository/license/spdx_id").filter(|l| l != "NOASSERTION"),
        repo_tags: Vec::new(),
    }
}

/// A workflow command's message: `%`, CR and LF escaped, so it stays one line.
pub fn escape_data(s: &str) -> String {
    s.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

/// A workflow command's property value: as [`escape_data`], and `:` and `,` too.
pub fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// `::name k=v,k=v::data`, escaped.
pub fn command(name: &str, props: &[(&str, String)], data: &str) -> String {
    let props: Vec<String> = props.iter().map(|(k, v)| format!("{k}={}", escape_property(v))).collect();
    let sep = if props.is_empty() { "" } else { " " };
    format!("::{name}{sep}{}::{}", props.join(","), escape_data(data))
}

/// The workflow-command dialect. Groups cannot nest on GitHub; [`super::CiLog`] closes the open
/// one first.
///
/// A child's output (buildx, a `RUN` step's echo) could hold a line the runner takes for a
/// command (`::add-mask::`, `::error::`, `::stop-commands::`); before such output the dialect
/// stops command processing with `::stop-commands::TOKEN` and resumes it with `::TOKEN::` before
/// its own next command, so one stretch of child output costs two lines.
#[derive(Default)]
pub struct Commands {
    stopped: Option<String>,
}

/// Whether GitHub's runner would take `line` for a workflow command: `::NAME…` after leading
/// blanks (the runner trims them), or the older `##[NAME]…` anywhere in the line.
pub fn looks_like_command(line: &str) -> bool {
    line.trim_start().starts_with("::") || line.contains("##[")
}

impl Commands {
    /// `text` as plain lines of archway's own (the plan table, a note quoting an input): as
    /// they are, unless one would be taken for a workflow command; then as a child's output,
    /// after `::stop-commands::`.
    fn plain(&mut self, text: &str) -> Vec<String> {
        let out = lines(text);
        if out.iter().any(|l| looks_like_command(l)) { self.line(text) } else { out }
    }

    /// The line that resumes command processing, if a child's output had stopped it.
    fn resume(&mut self) -> Vec<String> {
        self.stopped.take().map(|t| format!("::{t}::")).into_iter().collect()
    }

    /// `line`, a command, after resuming command processing.
    fn command(&mut self, line: String) -> Vec<String> {
        let mut out = self.resume();
        out.push(line);
        out
    }
}

impl Dialect for Commands {
    /// One `::add-mask::` per line of the secret: the runner masks a multi-line value only line
    /// by line.
    fn mask(&mut self, secret: &str) -> Vec<String> {
        let mut out = self.resume();
        out.extend(secret.lines().filter(|l| !l.is_empty()).map(|l| command("add-mask", &[], l)));
        out
    }

    fn group_start(&mut self, title: &str) -> Vec<String> {
        self.command(command("group", &[], title))
    }

    fn group_end(&mut self) -> Vec<String> {
        self.command(command("endgroup", &[], ""))
    }

    fn message(&mut self, level: Level, file: Option<&str>, line: Option<u32>, text: &str) -> Vec<String> {
        let mut props = Vec::new();
        if let Some(f) = file {
            props.push(("file", f.to_string()));
            if let Some(l) = line {
                props.push(("line", l.to_string()));
            }
        }
        match level {
            Level::Debug => self.command(command("debug", &[], text)),
            Level::Info => self.plain(text),
            Level::Warning => self.command(command("warning", &props, text)),
            Level::Error => self.command(command("error", &props, text)),
        }
    }

    fn line(&mut self, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        if self.stopped.is_none() {
            let token = format!("archway-{}", outputs::random_hex());
            out.push(format!("::stop-commands::{token}"));
            self.stopped = Some(token);
        }
        out.extend(lines(text));
        out
    }

    fn success(&mut self, text: &str) -> Vec<String> {
        let mut out = self.resume();
        out.extend(self.plain(text));
        out
    }

    /// One `::error::` command holding the whole error: the runner shows it as one annotation
    /// and, in the log, as `Error: …` followed by the cause and hint lines.
    fn failure(&mut self, headline: &str, rest: &[&str]) -> Vec<String> {
        let text: Vec<&str> = std::iter::once(headline).chain(rest.iter().copied()).collect();
        self.command(command("error", &[], &text.join("\n")))
    }
}

/// The outputs, by name: `digest`, `image`, `tags` (one per line, as docker/metadata-action),
/// `platforms` (comma-joined) and `metadata` (the JSON document).
pub fn output_values(r: &CiResult) -> Vec<(&'static str, String)> {
    vec![
        ("digest", r.digest.clone()),
        // docker/build-push-action's name for it; for a multi-platform image, the index.
        ("imageid", r.digest.clone()),
        ("image", r.image.clone()),
        ("tags", r.tags.join("\n")),
        ("platforms", r.platform_list()),
        ("metadata", r.metadata_json.clone()),
    ]
}

/// `$GITHUB_OUTPUT` text: `name=value`, or for a value with a line break
/// `name<<DELIMITER` / the value / `DELIMITER`. `delimiter` must not occur in any value.
pub fn output_file(values: &[(&str, String)], delimiter: &str) -> String {
    let mut out = String::new();
    for (name, value) in values {
        if value.contains(['\n', '\r']) {
            out.push_str(&format!("{name}<<{delimiter}\n{value}\n{delimiter}\n"));
        } else {
            out.push_str(&format!("{name}={value}\n"));
        }
    }
    out
}

/// The step summary: the published reference, then a table of platforms.
pub fn step_summary(r: &CiResult) -> String {
    let cell = |s: &str| s.replace('|', "\\|").replace(['\r', '\n'], " ");
    let mut out = format!("### archway: `{}`\n\n", cell(&r.image_ref()).replace('`', "'"));
    out.push_str("| platform | strategy | why | digest | duration |\n| --- | --- | --- | --- | --- |\n");
    for p in &r.platforms {
        out.push_str(&format!(
            "| {} | {} | {} | `{}` | {:.1} s |\n",
            cell(&p.platform),
            cell(&p.strategy),
            cell(&p.reason),
            cell(short_digest(&p.digest)),
            p.duration_secs
        ));
    }
    if !r.tags.is_empty() {
        let tags: Vec<String> = r.tags.iter().map(|t| format!("`{}`", cell(t))).collect();
        out.push_str(&format!("\nTags: {}\n", tags.join(", ")));
    }
    out.push('\n');
    out
}

/// `sha256:` and the first 12 hex digits, enough to tell platforms apart in a table.
fn short_digest(d: &str) -> &str {
    match d.split_once(':') {
        // `get`: the digest is a string in `CiResult`; a non-ASCII one is shown whole.
        Some((alg, hex)) if hex.len() > 12 => d.get(..alg.len() + 1 + 12).unwrap_or(d),
        _ => d,
    }
}

#[cfg(test)]
mod tests {
    use super::super::log::capture::Capture;
    use super::super::{CiLog, PlatformRow};
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(escape_data("100%\r\nok: a,b"), "100%25%0D%0Aok: a,b");
        assert_eq!(escape_property("a:b,c%\n"), "a%3Ab%2Cc%25%0A");
        assert_eq!(
            command("error", &[("file", "src/a,b.rs".into()), ("line", "3".into())], "bad: x\ny"),
            "::error file=src/a%2Cb.rs,line=3::bad: x%0Ay"
        );
        assert_eq!(command("endgroup", &[], ""), "::endgroup::");
    }

    #[test]
    fn dialect() {
        let cap = Capture::default();
        let log = CiLog::new(Commands::default(), Box::new(cap.clone()));
        log.mask(&Secret::new("two\nlines"));
        log.group_start("plan");
        log.group_start("build");
        log.warning(Some("Dockerfile"), Some(4), "slow");
        log.error(Some("Dockerfile"), None, "broken");
        log.debug("d");
        log.failure("1 platform failed");
        assert_eq!(
            cap.text(),
            "::add-mask::two\n::add-mask::lines\n::group::plan\n::endgroup::\n::group::build\n\
             ::warning file=Dockerfile,line=4::slow\n::error file=Dockerfile::broken\n::debug::d\n\
             ::endgroup::\n::error::1 platform failed\n"
        );
    }

    /// archway's own lines quote inputs and Dockerfile text: one the runner would take for a
    /// command (`::…` after blanks, `##[…` anywhere) is written with commands stopped.
    #[test]
    fn own_lines_that_look_like_commands_are_not_commands() {
        let cap = Capture::default();
        let log = CiLog::new(Commands::default(), Box::new(cap.clone()));
        log.info("note: plain");
        log.info("note: `x`\n  ::set-output name=digest::evil");
        log.info("a ##[error]old style");
        log.warning(None, None, "w");
        log.success("done\n::endgroup::");
        let text = cap.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "note: plain");
        let token = lines[1].strip_prefix("::stop-commands::archway-").expect(&text);
        assert_eq!(lines[2..5], ["note: `x`", "  ::set-output name=digest::evil", "a ##[error]old style"]);
        assert_eq!(lines[5..7], [format!("::archway-{token}::"), "::warning::w".into()]);
        assert!(lines[7].starts_with("::stop-commands::archway-") && lines[7] != lines[1], "{text}");
        assert_eq!(lines[8..], ["done", "::endgroup::"]);
        assert!(looks_like_command(" \t::x") && !looks_like_command("a ::x") && looks_like_command("a ##[x]"));
    }

    #[test]
    fn failure_is_one_annotation_holding_causes_and_hint() {
        let cap = Capture::default();
        let log = CiLog::new(Commands::default(), Box::new(cap.clone()));
        log.line("#5 RUN make");
        log.failure("error: cannot push to `ghcr.io/a/b`\n  Caused by: 100% denied\n\nhint: log in");
        let text = cap.text();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("::stop-commands::"), "{text}");
        assert_eq!(lines[1], "#5 RUN make");
        assert!(lines[2].starts_with("::archway-"), "commands resumed before the error: {text}");
        assert_eq!(
            lines[3..],
            ["::error::cannot push to `ghcr.io/a/b`%0A  Caused by: 100%25 denied%0A%0Ahint: log in"]
        );
    }

    #[test]
    fn summary_table() {
        let r = CiResult {
            digest: "sha256:aaaa".into(),
            image: "ghcr.io/a/b".into(),
            tags: vec!["ghcr.io/a/b:1".into()],
            platforms: vec![PlatformRow {
                platform: "linux/arm64".into(),
                strategy: "emulated".into(),
                reason: "a | b".into(),
                digest: format!("sha256:{}", "b".repeat(64)),
                duration_secs: 12.34,
            }],
            metadata_json: "{}".into(),
        };
        let s = step_summary(&r);
        assert!(s.starts_with("### archway: `ghcr.io/a/b@sha256:aaaa`\n"), "{s}");
        assert!(s.contains("| linux/arm64 | emulated | a \\| b | `sha256:bbbbbbbbbbbb` | 12.3 s |\n"), "{s}");
        assert!(s.contains("Tags: `ghcr.io/a/b:1`"), "{s}");
        assert_eq!(short_digest("sha256:aéééééééééé"), "sha256:aéééééééééé", "12 bytes end inside a character");
    }
}
