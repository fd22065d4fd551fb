//! Injection (issue 12): hostile text in every place archway reads it from — branch and tag
//! names, the repository description, Dockerfile labels, ARGs and comments, build args, the
//! image name, tags, labels, annotations, platforms, the Dockerfile path, the target — in every
//! CI dialect. None of it may issue a GitHub workflow command, fake a GitLab log section, add an
//! output, a dotenv variable or a Bitbucket variable, or reach a terminal as an escape sequence.
//!
//! The real `archway build` runs with each CI's environment, without any engine or registry
//! (`FROM scratch` is assembled by archway itself, to an OCI layout); what it wrote is read back
//! the way the CI reads it: the log line by line as GitHub's runner (lines end at LF or CR,
//! `::NAME` after blanks or `##[` anywhere is a command unless commands are stopped) or GitLab's
//! log reader (`section_start:TS:NAME` … `CR ESC[0K` anywhere is a marker), `$GITHUB_OUTPUT` with
//! the runner's `name=value` / `name<<DELIMITER` grammar, the dotenv report and Bitbucket's
//! variables one `KEY=VALUE` a line. A value may be taken (sanitised where it becomes a tag) or
//! refused with an input error; either way nothing but archway's own commands, sections, outputs
//! and variables comes out.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Output;

use archway::ci::outputs::RESULT_VARS;
use archway::ci::vars::{self, InputVar};
use support::dialect::{DIALECTS, Dialect};

/// Hostile values, by name. Where one would become a command, its data starts with `EVIL`.
const HOSTILE: &[(&str, &str)] = &[
    ("set-output", "::set-output name=digest::EVIL"),
    ("add-mask", "::add-mask::EVIL"),
    ("stop-commands", "::stop-commands::EVIL"),
    ("endgroup", "::endgroup::"),
    ("LF command", "x\n::error::EVIL"),
    ("LF blanks command", "x\n   ::error::EVIL"),
    ("%0A command", "x%0A::error::EVIL"),
    ("CR command", "x\r::error::EVIL"),
    ("##[ command", "x ##[error]EVIL"),
    ("ANSI clear", "x\x1b[2Jy"),
    ("ANSI link", "\x1b]8;;https://evil.example/\x07EVIL\x1b]8;;\x07"),
    ("section_start", "x\x1b[0Ksection_start:1:EVIL[collapsed=true]\r\x1b[0KFake section"),
    ("section_end", "x\x1b[0Ksection_end:1:archway_1_Plan\r\x1b[0K"),
    ("dotenv", "A=B\nEVIL=1"),
    ("result var", "x\nARCHWAY_RESULT_DIGEST=EVIL"),
    ("quotes", "\"EVIL\" 'EVIL'"),
    ("heredoc delimiter", "x\nghadelimiter_0123456789abcdef0123456789abcdef\nEVIL=1"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Entry {
    Branch,
    GitTag,
    Description,
    DockerfileLabel,
    DockerfileArg,
    DockerfileComment,
    BuildArg,
    Image,
    Tags,
    Labels,
    Annotations,
    Platforms,
    DockerfilePath,
    Target,
}

const ENTRIES: [Entry; 14] = [
    Entry::Branch,
    Entry::GitTag,
    Entry::Description,
    Entry::DockerfileLabel,
    Entry::DockerfileArg,
    Entry::DockerfileComment,
    Entry::BuildArg,
    Entry::Image,
    Entry::Tags,
    Entry::Labels,
    Entry::Annotations,
    Entry::Platforms,
    Entry::DockerfilePath,
    Entry::Target,
];

/// One run: the environment of `dialect` with `hostile` entering at `entry`.
struct Run {
    dir: tempfile::TempDir,
    out: Output,
}

impl Run {
    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }
}

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

fn run(dialect: Dialect, entry: Entry, hostile: &str) -> Option<Run> {
    use Dialect::*;
    let applies = match entry {
        Entry::Branch | Entry::GitTag => dialect != Local,
        // Bitbucket tells a build nothing about its repository but the slug.
        Entry::Description => matches!(dialect, GitHub | GitLab),
        _ => true,
    };
    if !applies {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("src");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(ctx.join("app.txt"), "hello\n").unwrap();
    let mut dockerfile = String::from("FROM scratch\nARG EVIL\nCOPY app.txt /app.txt\nLABEL from.arg=\"$EVIL\"\n");
    match entry {
        Entry::DockerfileLabel => dockerfile.push_str(&format!("LABEL evil=\"{hostile}\"\n")),
        Entry::DockerfileArg => dockerfile.push_str(&format!("ARG OTHER=\"{hostile}\"\nENV OTHER=$OTHER\n")),
        Entry::DockerfileComment => dockerfile.push_str(&format!("# {hostile}\n")),
        _ => {}
    }
    std::fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
    // Something an earlier step wrote to the files archway appends to.
    std::fs::write(dir.path().join("github_output"), "earlier=step\n").unwrap();
    std::fs::write(dir.path().join("variables"), "EARLIER=step\n").unwrap();
    std::fs::create_dir(dir.path().join("shared")).unwrap();
    std::fs::create_dir(dir.path().join("pipe")).unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    let ctx_s = ctx.display().to_string();
    let mut env: Vec<(String, String)> = vec![
        ("PATH".into(), empty.display().to_string()),
        ("HOME".into(), p("empty")),
        ("DOCKER_HOST".into(), "unix:///nonexistent/docker.sock".into()),
    ];
    let mut set = |k: &str, v: String| {
        env.retain(|(e, _)| e != k);
        env.push((k.into(), v));
    };
    let (branch, tag) = match entry {
        Entry::Branch => (Some(format!("feat/{hostile}")), None),
        Entry::GitTag => (None, Some(format!("v1.2.3{hostile}"))),
        _ => (Some("main".to_string()), None),
    };
    let description = if entry == Entry::Description { hostile.to_string() } else { "A widget".into() };
    match dialect {
        GitHub => {
            let event = serde_json::json!({"repository": {"default_branch": "main", "description": description}});
            std::fs::write(dir.path().join("event.json"), event.to_string()).unwrap();
            set("GITHUB_ACTIONS", "true".into());
            set("GITHUB_WORKSPACE", ctx_s.clone());
            set("GITHUB_REPOSITORY", "acme/widget".into());
            set("GITHUB_SHA", SHA.into());
            set("GITHUB_EVENT_NAME", "push".into());
            set("GITHUB_EVENT_PATH", p("event.json"));
            set("GITHUB_OUTPUT", p("github_output"));
            set("GITHUB_STEP_SUMMARY", p("summary.md"));
            match (&branch, &tag) {
                (Some(b), _) => {
                    set("GITHUB_REF", format!("refs/heads/{b}"));
                    set("GITHUB_REF_NAME", b.clone());
                    set("GITHUB_REF_TYPE", "branch".into());
                }
                (_, Some(t)) => {
                    set("GITHUB_REF", format!("refs/tags/{t}"));
                    set("GITHUB_REF_NAME", t.clone());
                    set("GITHUB_REF_TYPE", "tag".into());
                }
                _ => unreachable!(),
            }
        }
        GitLab => {
            set("GITLAB_CI", "true".into());
            set("CI_PROJECT_DIR", ctx_s.clone());
            set("CI_PROJECT_URL", "https://gitlab.example.com/acme/widget".into());
            set("CI_PROJECT_DESCRIPTION", description);
            set("CI_REGISTRY_IMAGE", "registry.example.com/acme/widget".into());
            set("CI_COMMIT_SHA", SHA.into());
            set("CI_DEFAULT_BRANCH", "main".into());
            set("ARCHWAY_DOTENV", p("archway.env"));
            if let Some(b) = &branch {
                set("CI_COMMIT_BRANCH", b.clone());
                set("CI_COMMIT_REF_NAME", b.clone());
            }
            if let Some(t) = &tag {
                set("CI_COMMIT_TAG", t.clone());
                set("CI_COMMIT_REF_NAME", t.clone());
            }
        }
        BitbucketPipe | BitbucketStep => {
            set("BITBUCKET_BUILD_NUMBER", "7".into());
            set("BITBUCKET_CLONE_DIR", ctx_s.clone());
            set("BITBUCKET_COMMIT", SHA.into());
            set("BITBUCKET_REPO_SLUG", "widget".into());
            set("BITBUCKET_PIPELINES_VARIABLES_PATH", p("variables"));
            set("BITBUCKET_PIPE_SHARED_STORAGE_DIR", p("shared"));
            if dialect == BitbucketPipe {
                set("BITBUCKET_PIPE_STORAGE_DIR", p("pipe"));
            }
            if let Some(b) = &branch {
                set("BITBUCKET_BRANCH", b.clone());
            }
            if let Some(t) = &tag {
                set("BITBUCKET_TAG", t.clone());
            }
        }
        Local => {}
    }
    let var = |i: &InputVar| dialect.var(i).to_string();
    if matches!(dialect, BitbucketPipe | BitbucketStep | Local) {
        set(&var(&vars::IMAGE), "registry.example.com/acme/widget".into());
    }
    set(&var(&vars::PUSH), "false".into());
    set(&var(&vars::CONTEXT), ctx_s.clone());
    set(&var(&vars::PLATFORMS), "linux/amd64,linux/arm64".into());
    set(&var(&vars::BUILD_ARGS), "EVIL=harmless".into());
    match entry {
        Entry::BuildArg => set(&var(&vars::BUILD_ARGS), format!("EVIL={hostile}")),
        Entry::Image => set(&var(&vars::IMAGE), format!("registry.example.com/acme/{hostile}")),
        Entry::Tags => set(&var(&vars::TAGS), hostile.into()),
        Entry::Labels => set(&var(&vars::LABELS), format!("evil={hostile}")),
        Entry::Annotations => set(&var(&vars::ANNOTATIONS), format!("evil={hostile}")),
        Entry::Platforms => set(&var(&vars::PLATFORMS), format!("linux/amd64,{hostile}")),
        Entry::DockerfilePath => set(&var(&vars::FILE), format!("{ctx_s}/Dockerfile{hostile}")),
        Entry::Target => set(&var(&vars::TARGET), hostile.into()),
        _ => {}
    }
    let mut c = support::spawn::archway();
    c.args(["build", "--output", &p("layout"), "--metadata-file", &p("metadata.json")]).current_dir(&ctx);
    for (k, v) in &env {
        c.env(k, v);
    }
    let out = c.output().expect("the archway binary runs");
    Some(Run { dir, out })
}

/// What GitHub's runner takes from the log: its workflow commands outside stopped stretches,
/// as (name, data). Lines end at LF, CR or CR LF (.NET's `ReadLine`). Fails on a command that is
/// not archway's.
fn github_commands(log: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut stopped: Option<String> = None;
    let mut seen_other = false;
    let mut open_group = false;
    for line in log.split(['\n', '\r']) {
        let trimmed = line.trim_start();
        if let Some(token) = &stopped {
            if trimmed == format!("::{token}::") {
                stopped = None;
            }
            continue;
        }
        let Some(rest) = trimmed.strip_prefix("::") else {
            // The runner tries `::` commands first; only other lines are read as `##[` ones.
            if line.contains("##[") {
                return Err(format!("a `##[` command outside stopped commands: {line:?}"));
            }
            seen_other |= !line.is_empty();
            continue;
        };
        let (head, data) = rest.split_once("::").ok_or_else(|| format!("a malformed command: {line:?}"))?;
        let name = head.split(' ').next().unwrap_or("");
        match name {
            "add-mask" if !seen_other => {}
            "add-mask" => return Err(format!("`::add-mask::` after the log began: {line:?}")),
            "stop-commands" => {
                let hex = data.strip_prefix("archway-").unwrap_or("");
                if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(format!("commands stopped with a token that is not archway's: {line:?}"));
                }
                stopped = Some(data.to_string());
            }
            "group" if !open_group => open_group = true,
            "endgroup" if open_group => open_group = false,
            "group" | "endgroup" => return Err(format!("groups out of order at {line:?}")),
            "error" | "warning" | "debug" | "notice" => {}
            _ => return Err(format!("a command archway never writes: {line:?}")),
        }
        if data.starts_with("EVIL") {
            return Err(format!("an injected command: {line:?}"));
        }
        seen_other |= name != "add-mask";
        out.push((name.to_string(), data.to_string()));
    }
    Ok(out)
}

/// GitLab's section markers in the log, as its log reader finds them (anywhere in a line:
/// `section_start:TS:NAME[OPTIONS]` or `section_end:TS:NAME`, then CR ESC[0K). Fails unless
/// each is archway's: at the start of its line after ESC[0K, named `archway_N…`, starts and
/// ends alternating with matching names.
fn gitlab_sections(log: &str) -> Result<usize, String> {
    let mut open: Option<String> = None;
    let mut count = 0;
    for line in log.split('\n') {
        let mut at = 0;
        while let Some(i) = line[at..].find("section_").map(|i| i + at) {
            at = i + 1;
            let rest = &line[i + "section_".len()..];
            let (kind, rest) = match rest.split_once(':') {
                Some((k @ ("start" | "end"), r)) => (k, r),
                _ => continue,
            };
            let Some((ts, rest)) = rest.split_once(':') else { continue };
            if ts.is_empty() || !ts.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let name_len = rest.bytes().take_while(|b| b.is_ascii_alphanumeric() || b"_.-".contains(b)).count();
            let (name, mut rest) = rest.split_at(name_len);
            if name.is_empty() {
                continue;
            }
            if rest.starts_with('[') {
                match rest.find(']') {
                    Some(j) => rest = &rest[j + 1..],
                    None => continue,
                }
            }
            if !rest.starts_with("\r\x1b[0K") {
                continue;
            }
            // A marker.
            if i != "\x1b[0K".len() || !line.starts_with("\x1b[0K") || !name.starts_with("archway_") {
                return Err(format!("a section marker that is not archway's: {line:?}"));
            }
            match (kind, &open) {
                ("start", None) => open = Some(name.to_string()),
                ("end", Some(o)) if o == name => open = None,
                _ => return Err(format!("section {kind} `{name}` out of order: {line:?}")),
            }
            count += 1;
        }
    }
    Ok(count)
}

/// `$GITHUB_OUTPUT` as the runner reads it: `name=value`, or `name<<DELIMITER`, the value's
/// lines, and a line that is the delimiter (trailing CR ignored). Names may repeat (the last
/// wins); returns each name with how often it was set.
fn github_output(text: &str) -> Result<BTreeMap<String, (usize, String)>, String> {
    let mut out: BTreeMap<String, (usize, String)> = BTreeMap::new();
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    while let Some(line) = lines.next() {
        if line.is_empty() {
            continue;
        }
        let (eq, hd) = (line.find('='), line.find("<<"));
        let (name, value) = match (eq, hd) {
            (Some(e), h) if h.is_none_or(|h| e < h) => (line[..e].to_string(), line[e + 1..].to_string()),
            (_, Some(h)) => {
                let (name, delimiter) = (&line[..h], &line[h + 2..]);
                if name.is_empty() || delimiter.is_empty() {
                    return Err(format!("invalid heredoc line {line:?}"));
                }
                let mut value = Vec::new();
                loop {
                    match lines.next() {
                        None => return Err(format!("no closing delimiter for {name}")),
                        Some(l) if l == delimiter => break,
                        Some(l) => value.push(l),
                    }
                }
                (name.to_string(), value.join("\n"))
            }
            _ => return Err(format!("not an output line: {line:?}")),
        };
        let e = out.entry(name).or_default();
        e.0 += 1;
        e.1 = value;
    }
    Ok(out)
}

/// A dotenv file as GitLab reads it (and Bitbucket its output variables): one `KEY=VALUE` a
/// line, the key up to the first `=`; a key must be letters, digits and `_`.
fn dotenv(text: &str) -> Result<BTreeMap<String, usize>, String> {
    let mut out = BTreeMap::new();
    for line in text.split('\n').filter(|l| !l.is_empty()) {
        let (k, v) = line.split_once('=').ok_or_else(|| format!("not KEY=VALUE: {line:?}"))?;
        if k.is_empty() || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!("an invalid key: {line:?}"));
        }
        if v.contains('\r') {
            return Err(format!("a CR in the value of {k}"));
        }
        *out.entry(k.to_string()).or_default() += 1;
    }
    Ok(out)
}

/// A valid tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
fn valid_tag(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 128
        && !t.starts_with(['.', '-'])
        && t.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// Checks one run; returns `ok` (built) or `refused (exit N)`.
fn check(dialect: Dialect, run: &Run) -> Result<String, String> {
    let stdout = String::from_utf8_lossy(&run.out.stdout);
    let stderr = String::from_utf8_lossy(&run.out.stderr);
    let code = run.out.status.code().unwrap_or(-1);
    let ok = code == 0;
    if !ok && code != 2 && code != 3 {
        return Err(format!("exit {code}: neither built nor refused as bad input\n{stderr}"));
    }
    for (name, log) in [("stdout", &stdout), ("stderr", &stderr)] {
        // No builder runs here: every line is archway's, and none holds a terminal escape but
        // the colours its dialect uses.
        for bad in ["\x1b[2J", "\x1b]8", "\x07"] {
            if log.contains(bad) {
                return Err(format!("{name} holds the escape {bad:?}:\n{log}"));
            }
        }
        match dialect {
            Dialect::GitHub => {
                github_commands(log).map_err(|e| format!("{name}: {e}\n{log}"))?;
            }
            Dialect::GitLab => {
                let n = gitlab_sections(log).map_err(|e| format!("{name}: {e}\n{log:?}"))?;
                if ok && name == "stderr" && n == 0 {
                    return Err(format!("no section at all: {log:?}"));
                }
            }
            _ => {}
        }
    }
    let read = |n: &str| std::fs::read_to_string(run.path(n)).ok();
    match dialect {
        Dialect::GitHub => {
            let text = read("github_output").unwrap();
            let outputs = github_output(&text).map_err(|e| format!("$GITHUB_OUTPUT: {e}\n{text}"))?;
            let mut keys: BTreeSet<&str> = outputs.keys().map(String::as_str).collect();
            assert!(keys.remove("earlier"), "an earlier step's output survives: {text}");
            let ours: BTreeSet<&str> = ["digest", "imageid", "image", "tags", "platforms", "metadata"].into();
            if ok && keys != ours || !ok && !keys.is_empty() {
                return Err(format!("$GITHUB_OUTPUT names {keys:?}:\n{text}"));
            }
            if let Some((n, _)) = outputs.values().find(|(n, _)| *n != 1) {
                return Err(format!("an output set {n} times:\n{text}"));
            }
            if let Some((_, tags)) = outputs.get("tags") {
                for t in tags.lines() {
                    let tag = t.rsplit_once(':').map(|(_, t)| t).unwrap_or("");
                    if !valid_tag(tag) {
                        return Err(format!("tags output holds `{t}`:\n{text}"));
                    }
                }
            }
            if let Some(md) = read("summary.md") {
                for l in md.lines() {
                    let known = l.is_empty()
                        || l.starts_with("### archway: `")
                        || l.starts_with('|')
                        || l.starts_with("Tags: ");
                    if !known {
                        return Err(format!("the step summary has a line archway does not write: {l:?}\n{md}"));
                    }
                }
            }
        }
        Dialect::GitLab => {
            if let Some(text) = read("archway.env") {
                let keys = dotenv(&text).map_err(|e| format!("dotenv: {e}\n{text}"))?;
                let want: BTreeMap<String, usize> = RESULT_VARS.iter().map(|k| (k.to_string(), 1)).collect();
                if keys != want {
                    return Err(format!("the dotenv report names {keys:?}:\n{text}"));
                }
            } else if ok {
                return Err("no dotenv report after a build".into());
            }
        }
        Dialect::BitbucketPipe | Dialect::BitbucketStep => {
            let text = read("variables").unwrap();
            let mut keys = dotenv(&text).map_err(|e| format!("variables: {e}\n{text}"))?;
            assert_eq!(keys.remove("EARLIER"), Some(1), "{text}");
            let want: BTreeMap<String, usize> =
                if ok { RESULT_VARS.iter().map(|k| (k.to_string(), 1)).collect() } else { BTreeMap::new() };
            if keys != want {
                return Err(format!("Bitbucket's variables name {keys:?}:\n{text}"));
            }
            if let Some(json) = read("shared/archway-result.json") {
                let v: serde_json::Value = serde_json::from_str(&json).map_err(|e| format!("result file: {e}"))?;
                let keys: BTreeSet<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
                let want: BTreeSet<&str> = ["digest", "image", "image_ref", "tags", "platforms", "metadata"].into();
                if keys != want {
                    return Err(format!("archway-result.json has {keys:?}"));
                }
            }
        }
        Dialect::Local => {}
    }
    if let Some(m) = read("metadata.json") {
        serde_json::from_str::<serde_json::Value>(&m).map_err(|e| format!("--metadata-file is not JSON: {e}"))?;
    }
    Ok(if ok { "ok".into() } else { format!("refused ({code})") })
}

/// Every hostile value, at every entry point, in every dialect: taken or refused, never
/// injected. Prints the table of what happened (`--nocapture`).
#[test]
fn no_hostile_value_injects_anything_anywhere() {
    let cases: Vec<(Entry, usize, Dialect)> = ENTRIES
        .iter()
        .flat_map(|&e| (0..HOSTILE.len()).flat_map(move |h| DIALECTS.iter().map(move |&d| (e, h, d))))
        .collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(BTreeMap::new());
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let Some(&(entry, h, dialect)) = cases.get(i) else { break };
                    let (name, value) = HOSTILE[h];
                    let Some(r) = run(dialect, entry, value) else { continue };
                    let verdict = check(dialect, &r);
                    results.lock().unwrap().insert((entry, h, dialect), verdict.map_err(|e| format!("{name}: {e}")));
                }
            });
        }
    });
    let results = results.into_inner().unwrap();
    let mut failures = Vec::new();
    let mut table = String::from("| entry | value | GitHub | GitLab | Bitbucket pipe | Bitbucket step | local |\n");
    table.push_str("| --- | --- | --- | --- | --- | --- | --- |\n");
    for entry in ENTRIES {
        for (h, (name, _)) in HOSTILE.iter().enumerate() {
            let cells: Vec<String> = DIALECTS
                .iter()
                .map(|&d| match results.get(&(entry, h, d)) {
                    None => "–".into(),
                    Some(Ok(v)) => v.clone(),
                    Some(Err(e)) => {
                        failures.push(format!("{entry:?} × {d:?} × {e}"));
                        "INJECTED".into()
                    }
                })
                .collect();
            table.push_str(&format!("| {entry:?} | {name} | {} |\n", cells.join(" | ")));
        }
    }
    eprintln!("{table}");
    assert!(failures.is_empty(), "{} injections:\n{}", failures.len(), failures.join("\n\n"));
    // Most runs built: the table is about what reached the outputs, not only about input errors.
    assert!(results.values().filter(|v| matches!(v, Ok(s) if s == "ok")).count() > results.len() / 3, "{table}");
}

/// The GitHub dialect's own guarantees, checked on one build: the outputs parse back to exactly
/// archway's names with a fresh random delimiter each time, and a tag derived from a hostile
/// branch name is sanitised, not refused.
#[test]
fn github_outputs_use_a_fresh_delimiter_and_branch_names_become_valid_tags() {
    let r = run(Dialect::GitHub, Entry::Branch, "x\n::error::EVIL %0A $(id) `id`").unwrap();
    assert!(r.out.status.success(), "{}", String::from_utf8_lossy(&r.out.stderr));
    let r2 = run(Dialect::GitHub, Entry::Branch, "main").unwrap();
    let delimiters = |r: &Run| -> Vec<String> {
        let text = std::fs::read_to_string(r.path("github_output")).unwrap();
        text.lines().filter_map(|l| l.split_once("<<").map(|(_, d)| d.to_string())).collect()
    };
    let (d1, d2) = (delimiters(&r), delimiters(&r2));
    assert_eq!(d1.len(), 1, "metadata is multi-line; tags are none here (a layout): {d1:?}");
    assert!(d1[0].starts_with("ghadelimiter_") && d1[0].len() == "ghadelimiter_".len() + 32, "{d1:?}");
    assert_ne!(d1, d2, "a fresh delimiter every write");
    // The layout's index names the image by the sanitised branch tag.
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(r.path("layout/index.json")).unwrap()).unwrap();
    let names: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["annotations"]["org.opencontainers.image.ref.name"].as_str())
        .collect();
    assert!(names.contains(&"feat-x-error-EVIL-0A-id-id"), "{names:?}");
    assert!(names.iter().all(|n| valid_tag(n)), "{names:?}");
}

/// The readers above catch what they are for (a checker that cannot fail proves nothing).
#[test]
fn log_checkers_catch_injections() {
    assert!(github_commands("::add-mask::s\n::group::Plan\nx\n::endgroup::\n").is_ok());
    assert!(github_commands("::group::a\nx\r::error::EVIL\n").is_err());
    assert!(github_commands("  ::set-output name=digest::EVIL\n").is_err());
    assert!(github_commands("a ##[error]EVIL\n").is_err());
    assert!(github_commands("::group::a\n::endgroup::\n::endgroup::\n").is_err());
    assert!(github_commands("x\n::add-mask::late\n").is_err());
    let tok = format!("archway-{}", "a".repeat(32));
    assert!(github_commands(&format!("::stop-commands::{tok}\n::error::EVIL\n::{tok}::\n")).is_ok());
    assert!(github_commands("::stop-commands::EVIL\n").is_err());
    let start = "\x1b[0Ksection_start:1:archway_1_Plan[collapsed=true]\r\x1b[0KPlan\n";
    let end = "\x1b[0Ksection_end:1:archway_1_Plan\r\x1b[0K\n";
    assert_eq!(gitlab_sections(&format!("{start}x\n{end}")), Ok(2));
    assert!(gitlab_sections(&format!("{start}x \x1b[0Ksection_start:2:evil\r\x1b[0K\n{end}")).is_err());
    assert!(gitlab_sections(&format!("{start}{end}{end}")).is_err());
    assert!(gitlab_sections("section_start:1:evil\r\x1b[0K").is_err());
    assert!(gitlab_sections("section_start:1:evil\u{240d}\u{241b}[0K").is_ok());
    assert!(github_output("a<<D\nx\nD\nb=1\n").is_ok());
    assert!(github_output("a<<D\nx\n").is_err());
    assert!(dotenv("A=1\nB C=2\n").is_err());
    assert!(Path::new(support::spawn::ARCHWAY).exists());
}
