//! `--progress` end to end on the lab. In a terminal (a 160×50 pseudo-terminal, read back
//! through a terminal emulator): one finished line per platform and the summary, with no live
//! line left behind; a failing platform's builder lines between dividers. Without one: `quiet`
//! prints the reference alone, `rawjson` one JSON object a line, each naming its platform.

#![cfg(feature = "lab")]

mod support;

use support::lab::*;

const COLS: u16 = 160;
const ROWS: u16 = 50;

/// Snapshot settings: what changes from run to run replaced (times, digests, sizes, rates, the
/// test's repository) and the spacing of the columns they set collapsed.
fn insta_settings(repo: &str) -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.add_filter(&regex_escape(repo), "[REPO]");
    s.add_filter(r"sha256:[0-9a-f]{64}", "sha256:[DIGEST]");
    s.add_filter(r"\b\d+(\.\d+)? (B|KiB|MiB|GiB)(/s)?", "[SIZE]");
    s.add_filter(r"\b\d+(\.\d+)?s\b", "[TIME]");
    // The lab's QEMU handler, as the plan names it.
    s.add_filter(r"QEMU handler `[^`]+` is registered \([^)]*\)", "QEMU handler [HANDLER]");
    s.add_filter(r" {2,}", "  ");
    s
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '/' || c == '-' { c.to_string() } else { format!("\\{c}") })
        .collect()
}

/// Leftovers of the live view: a spinner frame or a live step.
fn assert_no_live_line(screen: &str) {
    for frame in ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"] {
        assert!(!screen.contains(frame), "a live line is left on the screen:\n{screen}");
    }
    assert!(!screen.contains("uploading") && !screen.contains("starting"), "{screen}");
}

fn run_dockerfile(nonce: &str) -> String {
    format!(
        "FROM {}\nARG NONCE={nonce}\nRUN echo \"$NONCE\" > /nonce && uname -m > /arch\nCMD [\"cat\", \"/arch\"]\n",
        lab().base
    )
}

fn no_run_dockerfile() -> String {
    format!("FROM {}\nARG TARGETARCH\nCOPY hello.txt /hello-$TARGETARCH.txt\nENV GREETING=hello\n", lab().base)
}

#[test]
fn a_terminal_shows_one_finished_line_per_platform_and_the_summary() {
    let _machine = support::machine::lock();
    let repo = unique_repo("tty-run");
    let ctx = context(&run_dockerfile(&nonce()));
    let tag = format!("{repo}:1");
    let args = ["build", ".", "--platform", "linux/amd64,linux/arm64", "-t", &tag, "--push", "--progress", "tty"];
    let screen = support::pty::archway(ctx.path(), &args, &[("TERM", "xterm-256color")], COLS, ROWS);
    assert_eq!(screen.status, 0, "{}", screen.text);
    let text = &screen.text;
    assert_no_live_line(text);
    for p in ["linux/amd64", "linux/arm64"] {
        let finished: Vec<&str> = text.lines().filter(|l| l.starts_with(&format!("✔ {p} "))).collect();
        assert_eq!(finished.len(), 1, "one finished line for {p}:\n{text}");
        assert!(finished[0].contains("sha256:") && finished[0].contains("pushed"), "{text}");
    }
    assert!(text.contains("PLATFORM") && text.contains(&format!("tagged {tag}")), "the summary:\n{text}");
    // Colours on a terminal, none of buildx's plain log.
    let raw = String::from_utf8_lossy(&screen.raw);
    assert!(raw.contains("\x1b[32m✔"), "a green mark");
    assert!(!text.contains("[linux/arm64] #"), "no plain builder lines:\n{text}");
    insta_settings(&repo).bind(|| insta::assert_snapshot!("tty_two_platforms_run", text));
}

#[test]
fn a_terminal_shows_an_assembled_build_and_auto_picks_the_live_view_outside_ci() {
    let repo = unique_repo("tty-assembled");
    let ctx = context(&no_run_dockerfile());
    std::fs::write(ctx.path().join("hello.txt"), "hello\n").unwrap();
    let tag = format!("{repo}:1");
    let empty = tempfile::tempdir().unwrap();
    let env = [
        ("TERM", "xterm-256color"),
        ("NO_COLOR", "1"),
        ("PATH", empty.path().to_str().unwrap()),
        ("DOCKER_HOST", "unix:///nonexistent/docker.sock"),
    ];
    let args = ["build", ".", "--platform", "linux/amd64,linux/arm64", "-t", &tag, "--push"];
    let screen = support::pty::archway(ctx.path(), &args, &env, COLS, ROWS);
    assert_eq!(screen.status, 0, "{}", screen.text);
    assert_no_live_line(&screen.text);
    assert_eq!(screen.text.lines().filter(|l| l.starts_with("✔ linux/") && l.contains(" assembled ")).count(), 2);
    assert!(!String::from_utf8_lossy(&screen.raw).contains("\x1b[32m"), "NO_COLOR: no colours");
    insta_settings(&repo).bind(|| insta::assert_snapshot!("tty_two_platforms_assembled", &screen.text));

    // Narrower than 80 columns: the lines are cut, not wrapped.
    let screen = support::pty::archway(ctx.path(), &args, &env, 60, ROWS);
    assert_eq!(screen.status, 0, "{}", screen.text);
    assert_no_live_line(&screen.text);
    let finished: Vec<&str> = screen.text.lines().filter(|l| l.starts_with("✔ linux/")).collect();
    assert_eq!(finished.len(), 2, "{}", screen.text);
    assert!(finished.iter().all(|l| l.ends_with('…')), "{}", screen.text);
}

#[test]
fn a_failing_platform_shows_its_builder_lines_between_dividers() {
    let _machine = support::machine::lock();
    let repo = unique_repo("tty-fail");
    let ctx = context(&format!(
        "FROM {}\nARG NONCE={}\nRUN if [ \"$(uname -m)\" = aarch64 ]; then echo \"no luck on $(uname -m)\"; exit 3; fi\n",
        lab().base,
        nonce()
    ));
    let tag = format!("{repo}:1");
    let args = ["build", ".", "--platform", "linux/amd64,linux/arm64", "-t", &tag, "--push", "--progress", "tty"];
    // Tall enough to keep the error that follows on the screen too.
    let screen = support::pty::archway(ctx.path(), &args, &[("TERM", "xterm-256color")], COLS, 120);
    assert_ne!(screen.status, 0, "{}", screen.text);
    let text = &screen.text;
    assert_no_live_line(text);
    let lines: Vec<&str> = text.lines().collect();
    let open = lines
        .iter()
        .position(|l| l.starts_with("── linux/arm64: the last lines of its builder ─"))
        .unwrap_or_else(|| panic!("a divider names the failed platform:\n{text}"));
    let close = open
        + 1
        + lines[open + 1..].iter().position(|l| !l.is_empty() && l.chars().all(|c| c == '─')).unwrap_or_else(|| {
            panic!("a closing divider:\n{text}");
        });
    let between = lines[open + 1..close].join("\n");
    assert!(between.contains("no luck on aarch64") && between.contains("exit code: 3"), "{between}");
    assert!(lines.iter().any(|l| l.starts_with("✘ linux/arm64 ") && l.ends_with(" failed")), "{text}");
    assert!(
        lines.iter().any(|l| l.starts_with("✘ linux/amd64 ") && l.contains("stopped: another platform failed")),
        "{text}"
    );
    assert!(!text.contains("── linux/amd64"), "no lines for the platform that did not fail:\n{text}");
    assert!(text.contains("error: "), "the error follows:\n{text}");
    assert!(
        text.contains("hint: the builder's lines between the dividers above show the cause for linux/arm64"),
        "{text}"
    );
    assert!(tag_digest(&repo, "1").is_none(), "no tag moved");
}

#[test]
fn quiet_prints_the_reference_alone() {
    let repo = unique_repo("quiet");
    let ctx = context(&no_run_dockerfile());
    std::fs::write(ctx.path().join("hello.txt"), "hello\n").unwrap();
    let tag = format!("{repo}:1");
    let out = archway_without_docker(
        ctx.path(),
        &["build", ".", "--platform", "linux/amd64,linux/arm64", "-t", &tag, "--push", "--progress", "quiet"],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stderr, "", "nothing on stderr");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.starts_with(&format!("{repo}@sha256:")), "{stdout}");
    // The same through `ARCHWAY_PROGRESS`, to a layout.
    let out = support::spawn::archway()
        .args(["build", ".", "--platform", "linux/arm64", "--output", "out"])
        .current_dir(ctx.path())
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .env("ARCHWAY_PROGRESS", "quiet")
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success() && stderr.is_empty(), "{stderr}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
}

/// Every stderr line is a JSON object whose `platform` names platforms of the run.
fn assert_rawjson(stderr: &str, platforms: &[&str]) -> Vec<serde_json::Value> {
    assert!(!stderr.trim().is_empty());
    stderr
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
            let p = v["platform"].as_str().unwrap_or_else(|| panic!("no platform: {l}"));
            assert!(p.split(',').all(|p| platforms.contains(&p)), "{p} is not a platform of the run: {l}");
            v
        })
        .collect()
}

#[test]
fn rawjson_gives_json_events_with_their_platform() {
    let repo = unique_repo("rawjson");
    let ctx = context(&no_run_dockerfile());
    std::fs::write(ctx.path().join("hello.txt"), "hello\n").unwrap();
    let platforms = ["linux/amd64", "linux/arm64"];
    let out = archway_without_docker(
        ctx.path(),
        &[
            "build",
            ".",
            "--platform",
            &platforms.join(","),
            "-t",
            &format!("{repo}:1"),
            "--push",
            "--progress",
            "rawjson",
        ],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let events = assert_rawjson(&stderr, &platforms);
    for p in platforms {
        let kinds: Vec<&str> =
            events.iter().filter(|e| e["platform"] == p).filter_map(|e| e["event"].as_str()).collect();
        for k in ["started", "log", "upload", "pushed", "done"] {
            assert!(kinds.contains(&k), "{p}: no `{k}` event in {kinds:?}");
        }
    }
    assert!(stdout.starts_with(&format!("{repo}@sha256:")), "{stdout}");
}

#[test]
fn rawjson_passes_buildx_events_through() {
    let _machine = support::machine::lock();
    let repo = unique_repo("rawjson-buildx");
    let ctx = context(&run_dockerfile(&nonce()));
    let platforms = ["linux/amd64", "linux/arm64"];
    let out = archway(
        ctx.path(),
        &[
            "build",
            ".",
            "--platform",
            &platforms.join(","),
            "-t",
            &format!("{repo}:1"),
            "--push",
            "--progress",
            "rawjson",
        ],
    );
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let events = assert_rawjson(&stderr, &platforms);
    assert!(events.iter().any(|e| e["vertexes"].is_array()), "buildx's own events:\n{stderr}");
    for p in platforms {
        assert!(
            events.iter().any(|e| e["platform"] == p && e["vertexes"].is_array()),
            "a buildx event of {p}:\n{stderr}"
        );
    }
}
