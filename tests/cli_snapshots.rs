//! What a user reads, as snapshots (`insta`): exit code, stdout and stderr of the real binary
//! for every bad input of every subcommand, `--help`, `plan` in table and JSON form against
//! recorded capabilities (`tests/fixtures/capabilities/`), `inspect` of a scripted registry,
//! and one run rendered in each CI's log dialect; plus the CI reporters driven directly.
//!
//! Lab-free and fast: each case runs archway in a fresh temp dir with an empty environment
//! (only what the case sets, plus a temp `HOME`, `PATH=/nonexistent`, a `DOCKER_HOST` socket
//! that does not exist and a proxy that refuses every connection but to 127.0.0.1, so no engine,
//! `docker`, credential or remote registry is ever reached), and nothing in a
//! snapshot depends on the machine: temp paths, ports, thread ids and random tokens are
//! filtered; the host's platform shows only where recorded capabilities pin it.
//!
//! After a deliberate change of a message, review and accept the new snapshots:
//!
//! ```text
//! cargo insta test --accept --test cli_snapshots      # with cargo-insta, or:
//! INSTA_UPDATE=always cargo test --test cli_snapshots  # then read `git diff tests/snapshots`
//! ```

mod support;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use support::reqresp::{Server, Step};
use support::spawn;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn fixture(path: &str) -> Vec<u8> {
    let p = fixtures().join(path);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Variables of the CI fixtures that name the checkout: they point at the case's work dir.
const CHECKOUT_VARS: &[&str] = &["GITHUB_WORKSPACE", "CI_PROJECT_DIR", "BITBUCKET_CLONE_DIR"];

/// One run of archway: arguments, environment and the files of its work dir.
#[derive(Clone, Default)]
struct Case {
    args: Vec<String>,
    /// Applied after the defaults and the CI fixture; `{work}` and `{root}` are replaced.
    env: Vec<(String, String)>,
    /// A CI environment fixture (`tests/fixtures/ci/NAME.json`).
    ci: Option<String>,
    files: Vec<(std::path::PathBuf, Vec<u8>)>,
    dirs: Vec<String>,
    /// `{registry}` in arguments: a scripted registry's `127.0.0.1:PORT`.
    registry: Option<String>,
}

impl Case {
    fn new(args: &[&str]) -> Case {
        Case { args: args.iter().map(|a| a.to_string()).collect(), ..Case::default() }
    }

    fn env(mut self, k: &str, v: &str) -> Case {
        self.env.push((k.into(), v.into()));
        self
    }

    /// The environment of a CI run, from a fixture recorded on a real runner; paths in it are
    /// moved under the case's temp dir, and the checkout is the work dir.
    fn ci(mut self, fixture: &str) -> Case {
        self.ci = Some(fixture.into());
        self
    }

    fn file(mut self, path: &str, contents: impl AsRef<[u8]>) -> Case {
        self.files.push((path.into(), contents.as_ref().to_vec()));
        self
    }

    /// A file whose path is these bytes (a name that is not UTF-8).
    fn file_with_raw_name(mut self, path: &[u8], contents: impl AsRef<[u8]>) -> Case {
        use std::os::unix::ffi::OsStrExt as _;
        self.files.push((std::ffi::OsStr::from_bytes(path).into(), contents.as_ref().to_vec()));
        self
    }

    fn dir(mut self, path: &str) -> Case {
        self.dirs.push(path.into());
        self
    }

    /// `./Dockerfile` with this text.
    fn dockerfile(self, text: &str) -> Case {
        self.file("Dockerfile", text)
    }

    /// `./Dockerfile` from `tests/fixtures/dockerfiles/NAME.Dockerfile`.
    fn dockerfile_fixture(self, name: &str) -> Case {
        let text = fixture(&format!("dockerfiles/{name}.Dockerfile"));
        self.file("Dockerfile", text)
    }

    /// `--capabilities NAME.json`, copied from `tests/fixtures/capabilities/`.
    fn recorded(mut self, name: &str) -> Case {
        let file = format!("{name}.json");
        self = self.file(&file, fixture(&format!("capabilities/{file}")));
        self.args.extend(["--capabilities".into(), file]);
        self
    }

    fn arg(mut self, a: &str) -> Case {
        self.args.push(a.into());
        self
    }

    fn args(self, more: &[&str]) -> Case {
        more.iter().fold(self, |c, a| c.arg(a))
    }

    fn registry(mut self, server: &Server) -> Case {
        self.registry = Some(server.host());
        self
    }

    /// The command line, for the snapshot's description.
    fn describe(&self) -> String {
        let mut words: Vec<String> = Vec::new();
        if let Some(ci) = &self.ci {
            words.push(format!("[env of tests/fixtures/ci/{ci}.json]"));
        }
        for (k, v) in &self.env {
            words.push(format!("{k}={}", quote(v)));
        }
        words.push("archway".into());
        words.extend(self.args.iter().map(|a| quote(&a.replace("{registry}", "[REGISTRY]"))));
        words.join(" ")
    }

    /// Runs archway and renders what it did: exit code, stdout, stderr, and any file it wrote
    /// outside its work dir (CI output files).
    fn run(&self) -> String {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let (work, home) = (root.join("work"), root.join("home"));
        std::fs::create_dir_all(&work).unwrap();
        std::fs::create_dir_all(&home).unwrap();
        for d in &self.dirs {
            std::fs::create_dir_all(work.join(d)).unwrap();
        }
        for (path, contents) in &self.files {
            let p = work.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, contents).unwrap();
        }
        let subst = |s: &str| {
            s.replace("{work}", work.to_str().unwrap())
                .replace("{root}", root.to_str().unwrap())
                .replace("{registry}", self.registry.as_deref().unwrap_or("{registry}"))
        };

        let mut cmd = spawn::archway();
        cmd.current_dir(&work).args(self.args.iter().map(|a| subst(a)));
        let defaults = [
            ("HOME", home.to_str().unwrap().to_string()),
            ("PATH", "/nonexistent".into()),
            ("DOCKER_HOST", "unix:///nonexistent.sock".into()),
            // A case that reached for a real registry by mistake fails here, the same way on
            // every machine, instead of depending on DNS and the network.
            ("HTTPS_PROXY", "http://127.0.0.1:9".into()),
            ("HTTP_PROXY", "http://127.0.0.1:9".into()),
            ("NO_PROXY", "127.0.0.1,localhost".into()),
        ];
        if let Some(ci) = &self.ci {
            let vars: std::collections::BTreeMap<String, String> =
                serde_json::from_slice(&fixture(&format!("ci/{ci}.json"))).unwrap();
            for (k, v) in vars {
                let v = if CHECKOUT_VARS.contains(&k.as_str()) {
                    work.to_str().unwrap().to_string()
                } else if let Some(rel) = v.strip_prefix('/') {
                    // Output files and event payloads: under the temp dir, their folder made.
                    let moved = root.join("ci").join(rel);
                    std::fs::create_dir_all(moved.parent().unwrap()).unwrap();
                    moved.to_str().unwrap().to_string()
                } else {
                    v
                };
                cmd.env(k, v);
            }
            let event = fixtures().join(format!("ci/{ci}.event.json"));
            if event.exists() {
                let at = root.join("ci/event.json");
                std::fs::create_dir_all(at.parent().unwrap()).unwrap();
                std::fs::copy(event, &at).unwrap();
                cmd.env("GITHUB_EVENT_PATH", at);
            }
        }
        // After the fixture: a recorded `DOCKER_HOST` must not be reached from a test.
        for (k, v) in &defaults {
            cmd.env(k, v);
        }
        for (k, v) in &self.env {
            cmd.env(k, subst(v));
        }
        let before = files_under(root);
        let out = cmd.output().expect("the archway binary runs");
        let mut text = format!("exit: {}\n", out.status.code().map_or("a signal".into(), |c| c.to_string()));
        for (name, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
            text.push_str(&format!("----- {name} -----\n"));
            let s = String::from_utf8_lossy(bytes);
            text.push_str(&s);
            if !s.is_empty() && !s.ends_with('\n') {
                text.push_str("\n[no newline at the end]\n");
            }
        }
        for path in files_under(root).difference(&before) {
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            text.push_str(&format!("----- wrote {rel} -----\n"));
            text.push_str(&String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()));
        }
        // Longest first: the work and home dirs are inside the root.
        text.replace(work.to_str().unwrap(), "[WORK]")
            .replace(home.to_str().unwrap(), "[HOME]")
            .replace(root.to_str().unwrap(), "[TEMP]")
    }

    fn check(&self, name: &str) {
        let out = self.run();
        errors_once(&out);
        insta::with_settings!({
            description => self.describe(),
            omit_expression => true,
            filters => filters(),
        }, {
            insta::assert_snapshot!(name, out);
        });
    }
}

/// The contract for every failure: its error message appears exactly once in what the user
/// reads, whatever the CI dialect marks it with.
fn errors_once(out: &str) {
    let stderr = out.split("----- stderr -----\n").nth(1).unwrap_or_default();
    let stderr = stderr.split("\n----- wrote ").next().unwrap_or_default();
    for line in stderr.lines() {
        let Some((_, message)) = line.split_once("error: ").or_else(|| line.split_once("::error::")) else {
            continue;
        };
        let message = message.trim_end_matches("\u{1b}[0m").trim();
        if message.len() < 12 {
            continue;
        }
        assert_eq!(stderr.matches(message).count(), 1, "the error `{message}` is printed once:\n{stderr}");
    }
}

/// What varies between runs and machines.
fn filters() -> Vec<(&'static str, &'static str)> {
    vec![
        (r"127\.0\.0\.1:\d+", "[REGISTRY]"),
        (r"127\.0\.0\.2:\d+", "[OTHER-HOST]"),
        (r"thread '([^']*)' \(\d+\)", "thread '$1' ([TID])"),
        (r"archway-[0-9a-f]{32}", "archway-[TOKEN]"),
        (r"ghadelimiter_[0-9a-f]{32}", "ghadelimiter_[TOKEN]"),
        (r"\b\d+\.\d+ ?s\b", "[DURATION]"),
        (r"section_(start|end):\d+:", "section_$1:[TIMESTAMP]:"),
        (r"\barchway \d+\.\d+\.\d+\S*", "archway [VERSION]"),
    ]
}

/// Regular files under `dir`, recursively.
fn files_under(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p);
            }
        }
    }
    out
}

fn quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=,@%+{}[]".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''").replace('\n', r"\n"))
    }
}

/// One test per case; the snapshot is named after the test.
macro_rules! snapshots {
    ($($name:ident: $case:expr;)+) => {$(
        #[test]
        fn $name() {
            $case.check(stringify!($name));
        }
    )+};
}

/// A context whose Dockerfile has no RUN and a `FROM scratch` base: planning it says nothing
/// about the machine (no base image note, no emulation).
fn build(args: &[&str]) -> Case {
    Case::new(&[&["build"], args].concat()).dockerfile("FROM scratch\nCOPY app /app\n").file("app", "")
}

fn plan(args: &[&str]) -> Case {
    Case::new(&[&["plan"], args].concat()).dockerfile("FROM scratch\nCOPY app /app\n").file("app", "")
}

/// `merge -t ghcr.io/acme/app:1 ARGS ghcr.io/acme/app@sha256:…`
fn merge_one(args: &[&str]) -> Case {
    Case::new(&["merge", "-t", "ghcr.io/acme/app:1"]).args(args).arg(&format!("ghcr.io/acme/app@{DIGEST}"))
}

const DIGEST: &str = "sha256:6c3c624b58dbbcd3c0dd82b4c53f04194d1247c6eebdaab7c610cf7d66709b3b";

// ---------------------------------------------------------------------------------------------
// `--help` of every subcommand, and the command line itself.

snapshots! {
    help: Case::new(&["--help"]);
    help_build: Case::new(&["build", "--help"]);
    help_plan: Case::new(&["plan", "--help"]);
    help_merge: Case::new(&["merge", "--help"]);
    help_promote: Case::new(&["promote", "--help"]);
    help_inspect: Case::new(&["inspect", "--help"]);
    version: Case::new(&["--version"]);
    no_subcommand: Case::new(&[]);
    misspelled_subcommand: Case::new(&["biuld", "."]);
    unknown_flag: build(&[".", "--platfrom", "linux/arm64"]);
}

// ---------------------------------------------------------------------------------------------
// `build`: every input it refuses before building anything (exit 2).

snapshots! {
    build_unknown_platform: build(&[".", "--platform", "linux/amd64,linux/sparc64"]);
    build_misspelled_os: build(&[".", "--platform", "linx/amd64"]);
    build_platform_without_arch: build(&[".", "--platform", "linux"]);
    build_platform_bad_variant: build(&[".", "--platform", "linux/arm/v9"]);
    build_bad_tag: build(&[".", "-t", "ghcr.io/Acme/App:1.0"]);
    build_tag_with_space: build(&[".", "-t", "acme/app:not a tag"]);
    build_digest_as_tag: build(&[".", "--push", "-t", &format!("ghcr.io/acme/app@{DIGEST}")]);
    build_two_repositories_by_digest:
        build(&[".", "--push-by-digest", "-t", "ghcr.io/acme/app:1", "-t", "docker.io/acme/app:1"]);
    build_two_registries_dry_run:
        build(&[".", "--push", "--dry-run", "-t", "ghcr.io/acme/app:1", "-t", "docker.io/acme/app:1"]);
    build_missing_context: build(&["no-such-dir"]);
    build_context_is_a_file: build(&["app"]);
    build_missing_default_dockerfile: Case::new(&["build", "src"]).dir("src");
    build_missing_dockerfile: build(&[".", "-f", "docker/Dockerfile.prod"]);
    build_build_arg_without_name: build(&[".", "--build-arg", "=1.0"]);
    build_label_without_value: build(&[".", "--label", "org.opencontainers.image.version"]);
    build_annotation_without_key: build(&[".", "--annotation", "=x"]);
    build_bad_prefer: build(&[".", "--prefer", "remote,qemu-static"]);
    build_node_without_equals: build(&[".", "--node", "tcp://10.0.0.5:2376"]);
    build_node_bad_platform: build(&[".", "--node", "linux/arm65=tcp://10.0.0.5:2376"]);
    build_node_bad_scheme: build(&[".", "--node", "linux/arm64=http://10.0.0.5:2376"]);
    build_node_certs_without_files: build(&[".", "--node", "linux/arm64=tcp://10.0.0.5:2376", "--node-certs", "certs"])
        .dir("certs")
        .file("certs/ca.pem", "");
    build_push_without_tags: build(&[".", "--push"]);
    build_push_by_digest_without_repository: build(&[".", "--push-by-digest"]);
    build_push_and_push_by_digest: build(&[".", "--push", "--push-by-digest", "-t", "ghcr.io/acme/app"]);
    build_digest_file_without_push_by_digest: build(&[".", "--digest-file", "digest.txt"]);
    build_output_is_a_file: build(&[".", "--output", "app"]);
    build_output_is_not_a_layout: build(&[".", "--output", "out"]).file("out/notes.txt", "mine");
    build_copies_a_name_that_is_not_utf8: Case::new(&["build", ".", "--platform", "linux/amd64", "--output", "out"])
        .dockerfile("FROM scratch\nCOPY . /ctx/\n")
        .file_with_raw_name(b"data/report-\xff.csv", "1,2");
    build_bad_provenance: build(&[".", "--provenance", "maybe"]);
    build_bad_progress: build(&[".", "--progress", "fancy"]);
    build_bad_sbom: build(&[".", "--sbom", "generator"]);
    build_insecure_registry_with_scheme: build(&[".", "--insecure-registry", "http://reg.internal:5000"]);
    build_bad_binfmt: build(&[".", "--binfmt", "always"]);
    build_bad_jobs: build(&[".", "--jobs", "many"]);
    build_username_without_password: build(&[".", "--push", "-t", "ghcr.io/acme/app:1"])
        .env("ARCHWAY_REGISTRY_USERNAME", "ci-bot");
    build_password_without_username: build(&[".", "--push", "-t", "ghcr.io/acme/app:1"])
        .env("ARCHWAY_REGISTRY_PASSWORD", "s3cret");
}

// ---------------------------------------------------------------------------------------------
// CI inputs that are wrong, under each CI's spelling.

snapshots! {
    github_push_maybe: build(&["--dry-run"]).env("GITHUB_ACTIONS", "true").env("INPUT_PUSH", "maybe");
    github_bad_prefer_input: build(&["--dry-run"]).env("GITHUB_ACTIONS", "true").env("INPUT_PREFER", "fastest");
    gitlab_bad_binfmt_input: build(&["--dry-run"]).env("GITLAB_CI", "true").env("ARCHWAY_BINFMT", "sometimes");
    gitlab_two_repositories_in_tags: build(&["--dry-run"])
        .env("GITLAB_CI", "true")
        .env("ARCHWAY_TAGS", "registry.gitlab.com/acme/app:1,ghcr.io/acme/app:1");
    local_platforms_variable_sparc_build: build(&["--dry-run"]).env("ARCHWAY_PLATFORMS", "linux/sparc");
    // `plan` ignores the variable today (issue 11): it plans the defaults instead.
    local_platforms_variable_sparc_plan: plan(&[])
        .recorded("github-ubuntu-amd64")
        .env("ARCHWAY_PLATFORMS", "linux/sparc");
    bitbucket_pipe_push_without_tags: build(&[])
        .env("BITBUCKET_BUILD_NUMBER", "7")
        .env("BITBUCKET_PIPE_STORAGE_DIR", "{root}/pipe")
        .env("BITBUCKET_CLONE_DIR", "{work}")
        .env("PUSH", "true");
    bitbucket_pipe_bad_platforms_count: build(&[])
        .env("BITBUCKET_BUILD_NUMBER", "7")
        .env("BITBUCKET_PIPE_STORAGE_DIR", "{root}/pipe")
        .env("BITBUCKET_CLONE_DIR", "{work}")
        .env("PLATFORMS_COUNT", "two");
    bitbucket_step_dry_run_maybe: build(&[])
        .env("BITBUCKET_BUILD_NUMBER", "7")
        .env("BITBUCKET_CLONE_DIR", "{work}")
        .env("ARCHWAY_DRY_RUN", "maybe");
    local_registry_username_without_password_variable: build(&["--dry-run"])
        .env("ARCHWAY_REGISTRY_USERNAME", "ci-bot")
        .env("ARCHWAY_PUSH", "true")
        .env("ARCHWAY_TAGS", "ghcr.io/acme/app:1");
}

// ---------------------------------------------------------------------------------------------
// `registry-auth` lists that cannot be used. The whole value is a secret: the error names the
// variable, the item and the field (or the line), never a value; on GitHub the values are masked
// (`::add-mask::`, the one place they may appear) before anything else is written.

/// The password in every list below; no output may show it but a GitHub mask.
const LIST_SECRET: &str = "hunter2-listed";

fn registry_auth_cases() -> Vec<(&'static str, Case)> {
    let item = |registry: &str, rest: &str| format!("- registry: {registry}\n  username: bot\n{rest}");
    let github = |list: String| build(&["--dry-run"]).env("GITHUB_ACTIONS", "true").env("INPUT_REGISTRY-AUTH", &list);
    let gitlab = |list: String| build(&["--dry-run"]).env("GITLAB_CI", "true").env("ARCHWAY_REGISTRY_AUTH", &list);
    let pipe = |list: String| {
        build(&["--dry-run"])
            .env("BITBUCKET_BUILD_NUMBER", "7")
            .env("BITBUCKET_PIPE_STORAGE_DIR", "{root}/pipe")
            .env("BITBUCKET_CLONE_DIR", "{work}")
            .env("REGISTRY_AUTH", &list)
    };
    vec![
        ("github_registry_auth_not_yaml", github(item("ghcr.io", &format!("  password: '{LIST_SECRET}\n")))),
        (
            "github_registry_auth_not_a_list",
            github(format!("registry: ghcr.io\nusername: bot\npassword: {LIST_SECRET}\n")),
        ),
        ("gitlab_registry_auth_without_password", gitlab(item("quay.io", "  password:\n"))),
        (
            "gitlab_registry_auth_number_as_password",
            gitlab(item("quay.io", "  password: 8675309\n").replace("8675309", "12345678901")),
        ),
        (
            "bitbucket_pipe_registry_auth_stray_key",
            pipe(item("docker.io", &format!("  password: dckr_pat_0123\n  {LIST_SECRET}: yes\n"))),
        ),
        (
            "local_registry_auth_registry_twice",
            build(&["--dry-run"]).env(
                "ARCHWAY_REGISTRY_AUTH",
                &format!(
                    "{}{}",
                    item("docker.io", "  password: dckr_pat_0123\n"),
                    item("index.docker.io", &format!("  password: {LIST_SECRET}\n"))
                ),
            ),
        ),
        (
            "github_registry_auth_ecr",
            github(item("1.dkr.ecr.us-east-1.amazonaws.com", &format!("  password: {LIST_SECRET}\n  ecr: true\n"))),
        ),
        (
            "promote_registry_auth_not_a_host",
            Case::new(&["promote", "ghcr.io/acme/app:1", "ghcr.io/acme/app:2"])
                .env("ARCHWAY_REGISTRY_AUTH", &item(&format!("{LIST_SECRET} x"), "  password: dckr_pat_0123\n")),
        ),
        (
            "merge_registry_auth_not_yaml",
            merge_one(&[]).env("ARCHWAY_REGISTRY_AUTH", &format!("- {{registry: ghcr.io, password: {LIST_SECRET}\n")),
        ),
    ]
}

#[test]
fn registry_auth_errors_never_show_the_list() {
    for (name, case) in registry_auth_cases() {
        let out = case.run();
        for line in out.lines().filter(|l| !l.starts_with("::add-mask::")) {
            assert!(!line.contains(LIST_SECRET) && !line.contains("12345678901"), "{name}: {line}");
        }
        assert!(out.starts_with("exit: 2\n"), "{name}: an input error: {out}");
        case.check(name);
    }
}

// ---------------------------------------------------------------------------------------------
// Dockerfiles archway cannot make sense of, through `plan` (recorded capabilities) and
// through `build --dry-run` (the same analysis after probing: nothing answers here).

fn dockerfile_plan(text: &str) -> Case {
    Case::new(&["plan"]).dockerfile(text).recorded("github-ubuntu-amd64")
}

snapshots! {
    dockerfile_unknown_instruction: dockerfile_plan("FROM alpine:3.20\nRUNN apk add curl\n");
    dockerfile_empty: dockerfile_plan("# nothing but a comment\n");
    dockerfile_instruction_before_from: dockerfile_plan("RUN echo hi\nFROM alpine:3.20\n");
    dockerfile_required_arg_in_from: dockerfile_plan("ARG BASE\nFROM ${BASE:?required}\nRUN true\n");
    // BuildKit splits FROM into words before expanding, so this fails the same way there.
    dockerfile_spaces_in_from_expansion: dockerfile_plan("ARG BASE\nFROM ${BASE:-debian bookworm}\nRUN true\n");
    dockerfile_unset_arg_in_from: dockerfile_plan("FROM ${BASE}\nRUN true\n");
    dockerfile_unknown_target: Case::new(&["plan", "--target", "relase"])
        .dockerfile_fixture("multi-target")
        .recorded("github-ubuntu-amd64");
    dockerfile_cyclic_stages:
        dockerfile_plan("FROM alpine AS a\nCOPY --from=b /x /x\nFROM alpine AS b\nCOPY --from=a /y /y\n");
    // Not errors: BuildKit accepts both (the second FROM names the first stage; broken JSON is
    // the shell form).
    dockerfile_duplicate_stage_name: dockerfile_plan("FROM alpine AS a\nFROM a AS a\n");
    dockerfile_unterminated_heredoc: dockerfile_plan("FROM alpine\nRUN <<EOF\necho hi\n");
    dockerfile_broken_json_is_shell_form: dockerfile_plan("FROM alpine\nCMD [\"app\", \n");
    dockerfile_unknown_instruction_build_dry_run: Case::new(&["build", "--dry-run"])
        .dockerfile("FROM alpine:3.20\nRUNN apk add curl\n");
    plan_unparsable_capabilities: plan(&["--capabilities", "caps.json"])
        .file("caps.json", "{\"host\": \"linux/amd64\"}");
    plan_capabilities_not_json: plan(&["--capabilities", "caps.json"]).file("caps.json", "host: linux/amd64\n");
    plan_missing_capabilities: plan(&["--capabilities", "nope.json"]);
    plan_unknown_platform: plan(&["--platform", "linux/sparc"]).recorded("github-ubuntu-amd64");
    plan_bad_format: plan(&["--format", "yaml"]).recorded("github-ubuntu-amd64");
    plan_bad_prefer: plan(&["--prefer", "fast"]).recorded("github-ubuntu-amd64");
    plan_bad_node: plan(&["--node", "linux/arm64"]).recorded("github-ubuntu-amd64");
    plan_node_certs_without_files: plan(&["--node-certs", "certs"]).dir("certs").recorded("github-ubuntu-amd64");
    plan_missing_context: plan(&["no-such-dir"]).recorded("github-ubuntu-amd64");
}

// ---------------------------------------------------------------------------------------------
// `merge`, `promote`, `inspect`: inputs refused before any registry is contacted.

snapshots! {
    // Panics today (exit 101); issue 11 names it.
    merge_empty_tag_list: Case::new(&["merge", "-t", ",", "x"]);
    merge_without_sources: Case::new(&["merge", "-t", "ghcr.io/acme/app:1"]);
    merge_without_tags: Case::new(&["merge", &format!("ghcr.io/acme/app@{DIGEST}")]);
    merge_bad_tag: Case::new(&["merge", "-t", "ghcr.io/Acme/App:1", &format!("ghcr.io/acme/app@{DIGEST}")]);
    merge_two_repositories: merge_one(&["-t", "ghcr.io/acme/other:1"]);
    merge_bad_source_reference:
        Case::new(&["merge", "-t", "ghcr.io/acme/app:1", &format!("ghcr.io/acme/App@{DIGEST}")]);
    merge_manifest_annotation: merge_one(&["--annotation", "manifest:description=x"]);
    merge_annotation_without_value: merge_one(&["--annotation", "index:description"]);
    merge_tag_without_tag: Case::new(&["merge", "-t", "ghcr.io/acme/app", &format!("ghcr.io/acme/app@{DIGEST}")]);
    merge_bad_platform: merge_one(&["--platform", "linux/sparc"]);
    promote_without_destination: Case::new(&["promote", "ghcr.io/acme/app:rc"]);
    promote_bad_source: Case::new(&["promote", "ghcr.io/acme/App:rc", "ghcr.io/acme/app:1"]);
    promote_destination_digest: Case::new(&["promote", "ghcr.io/acme/app:rc", &format!("ghcr.io/acme/app@{DIGEST}")]);
    promote_bad_platform:
        Case::new(&["promote", "ghcr.io/acme/app:rc", "ghcr.io/acme/app:1", "--platform", "linux/amd46"]);
    promote_username_without_password: Case::new(&["promote", "ghcr.io/acme/app:rc", "ghcr.io/acme/app:1"])
        .env("ARCHWAY_REGISTRY_USERNAME", "ci-bot");
    inspect_bad_reference: Case::new(&["inspect", "ghcr.io/acme/App"]);
    inspect_raw_and_format: Case::new(&["inspect", "--raw", "--format", "json", "ghcr.io/acme/app:1"]);
    inspect_without_reference: Case::new(&["inspect"]);
}

// ---------------------------------------------------------------------------------------------
// `plan` against recorded runners: each Dockerfile where the runners differ, table and JSON.

fn plan_of(dockerfile: &str, caps: &str) -> Case {
    Case::new(&["plan"]).dockerfile_fixture(dockerfile).recorded(caps)
}

fn plan_json(dockerfile: &str, caps: &str) -> Case {
    plan_of(dockerfile, caps).args(&["--format", "json"])
}

snapshots! {
    plan_prebuilt_github: plan_of("prebuilt", "github-ubuntu-amd64");
    plan_prebuilt_laptop_arm64: plan_of("prebuilt", "laptop-arm64");
    plan_prebuilt_no_engine: plan_of("prebuilt", "no-engine");
    plan_prebuilt_bitbucket_default: plan_of("prebuilt", "bitbucket-default");
    plan_prebuilt_bitbucket_default_json: plan_json("prebuilt", "bitbucket-default");
    plan_prebuilt_scratch_bitbucket_default: plan_of("prebuilt-scratch", "bitbucket-default");
    plan_prebuilt_scratch_bitbucket_default_json: plan_json("prebuilt-scratch", "bitbucket-default");
    plan_prebuilt_scratch_no_engine: plan_of("prebuilt-scratch", "no-engine")
        .args(&["--platform", "linux/amd64,linux/arm64,linux/arm/v7"]);
    plan_prebuilt_scratch_prefer_native_bitbucket: plan_of("prebuilt-scratch", "bitbucket-default").args(&["--prefer", "native"]);
    plan_prebuilt_many_platforms_gitlab: plan_of("prebuilt", "gitlab-dind-unprivileged")
        .args(&["--platform", "linux/amd64,linux/arm64,linux/arm/v7,linux/386,linux/riscv64"]);

    plan_cross_github: plan_of("cross", "github-ubuntu-amd64");
    plan_cross_github_json: plan_json("cross", "github-ubuntu-amd64");
    plan_cross_laptop_arm64: plan_of("cross", "laptop-arm64");
    plan_cross_no_engine: plan_of("cross", "no-engine");
    plan_cross_no_engine_json: plan_json("cross", "no-engine");
    plan_cross_bitbucket_default: plan_of("cross", "bitbucket-default");
    plan_cross_bitbucket_runtime_v3: plan_of("cross", "bitbucket-runtime-v3");
    plan_cross_prefer_emulated_github: plan_of("cross", "github-ubuntu-amd64").args(&["--prefer", "emulated"]);

    plan_run_on_target_github: plan_of("run-on-target", "github-ubuntu-amd64");
    plan_run_on_target_github_json: plan_json("run-on-target", "github-ubuntu-amd64");
    plan_run_on_target_github_no_emulation: plan_of("run-on-target", "github-ubuntu-amd64").arg("--no-emulation");
    plan_run_on_target_github_no_emulation_json: plan_json("run-on-target", "github-ubuntu-amd64")
        .arg("--no-emulation");
    plan_run_on_target_github_many_platforms: plan_of("run-on-target", "github-ubuntu-amd64")
        .args(&["--platform", "linux/amd64,linux/arm64,linux/arm/v7,linux/386,linux/riscv64,linux/mips64le"]);
    plan_run_on_target_gitlab_dind: plan_of("run-on-target", "gitlab-dind-unprivileged");
    plan_run_on_target_gitlab_dind_json: plan_json("run-on-target", "gitlab-dind-unprivileged");
    plan_run_on_target_gitlab_binfmt_never: plan_of("run-on-target", "gitlab-dind-unprivileged")
        .args(&["--binfmt", "never"]);
    plan_run_on_target_laptop_arm64: plan_of("run-on-target", "laptop-arm64");
    plan_run_on_target_laptop_arm64_json: plan_json("run-on-target", "laptop-arm64");
    plan_run_on_target_no_engine: plan_of("run-on-target", "no-engine");
    plan_run_on_target_bitbucket_default: plan_of("run-on-target", "bitbucket-default");
    plan_run_on_target_bitbucket_default_json: plan_json("run-on-target", "bitbucket-default");
    plan_run_on_target_bitbucket_runtime_v3: plan_of("run-on-target", "bitbucket-runtime-v3");

    plan_multi_target_default_github: plan_of("multi-target", "github-ubuntu-amd64");
    plan_multi_target_debug_github: plan_of("multi-target", "github-ubuntu-amd64").args(&["--target", "debug"]);
    plan_multi_target_debug_github_json: plan_json("multi-target", "github-ubuntu-amd64").args(&["--target", "debug"]);
    plan_multi_target_test_gitlab_dind: plan_of("multi-target", "gitlab-dind-unprivileged").args(&["--target", "test"]);
    plan_multi_target_debug_laptop_arm64: plan_of("multi-target", "laptop-arm64").args(&["--target", "debug"]);
    plan_multi_target_release_bitbucket_default: plan_of("multi-target", "bitbucket-default")
        .args(&["--target", "release"]);

    plan_args_github: plan_of("args", "github-ubuntu-amd64");
    plan_args_tools_on_arm64_github: plan_of("args", "github-ubuntu-amd64")
        .args(&["--build-arg", "TOOLS_PLATFORM=linux/arm64"]);
    plan_args_tools_on_arm64_github_json: plan_json("args", "github-ubuntu-amd64")
        .args(&["--build-arg", "TOOLS_PLATFORM=linux/arm64"]);
    plan_args_other_base_laptop_arm64: plan_of("args", "laptop-arm64")
        .args(&["--build-arg", "REGISTRY=registry.example.com:5000", "--build-arg", "BASE_TAG=edge"]);
    plan_args_from_environment_gitlab_dind: plan_of("args", "gitlab-dind-unprivileged")
        .args(&["--build-arg", "BASE_TAG"])
        .env("BASE_TAG", "3.19");

    // build-push-action's build inputs: what each strategy can honour, said before building.
    plan_prebuilt_scratch_run_only_inputs_github: plan_of("prebuilt-scratch", "github-ubuntu-amd64")
        .env("ARCHWAY_SECRET_ENVS", "token=MY_TOKEN")
        .env("MY_TOKEN", "s3cr3t-never-shown")
        .env("ARCHWAY_NETWORK", "none");
    plan_prebuilt_scratch_build_contexts_github: plan_of("prebuilt-scratch", "github-ubuntu-amd64")
        .env("ARCHWAY_BUILD_CONTEXTS", "extra=.");
    plan_run_on_target_ssh_bitbucket_default: plan_of("run-on-target", "bitbucket-default")
        .env("ARCHWAY_SSH", "default")
        .env("SSH_AUTH_SOCK", "/tmp/agent.sock");
    plan_run_on_target_no_cache_bitbucket_default: plan_of("run-on-target", "bitbucket-default")
        .env("ARCHWAY_NO_CACHE", "true")
        .env("ARCHWAY_NETWORK", "host");
    plan_cross_cache_to_bitbucket_default: plan_of("cross", "bitbucket-default")
        .env("ARCHWAY_CACHE_TO", "type=registry,ref=registry.example.com/acme/app:buildcache");
    build_ssh_default_without_agent: build(&["--dry-run", "--ssh", "default"]);
    build_secret_from_unset_variable: build(&["--dry-run", "--secret", "id=token,env=NOT_SET_ANYWHERE"]);
    build_bad_secrets_line: build(&["--dry-run"]).env("ARCHWAY_SECRETS", "s3cr3t-without-id");
    build_unknown_exporter: build(&["--dry-run", "--output", "type=cacheonly"]);
    build_exporter_to_stdout: build(&["--dry-run", "--output", "type=tar,dest=-"]);
    build_image_exporter_attribute: build(&["--dry-run", "--output", "type=image,name=r.example/a:1,compression=zstd"]);
    build_image_exporter_by_digest_without_push: build(&["--dry-run", "--output", "type=image,name=r.example/a,push-by-digest=true"]);
}

// ---------------------------------------------------------------------------------------------
// One run in each CI's log dialect: GitHub, GitLab, a Bitbucket pipe, a Bitbucket step, local.

/// Each CI's environment for the same run, from the fixtures recorded on real runners.
const DIALECTS: &[(&str, &str)] = &[
    ("github", "github-push-main"),
    ("gitlab", "gitlab-branch"),
    ("bitbucket_pipe", "bitbucket-pipe-branch"),
    ("bitbucket_step", "bitbucket-tag"),
];

fn in_dialect(case: Case, dialect: &str) -> Case {
    match DIALECTS.iter().find(|(d, _)| *d == dialect) {
        Some((_, fixture)) => case.ci(fixture),
        None => case,
    }
}

/// `plan` that cannot build arm64 here: the error is annotated on the RUN's line.
fn impossible_plan(dialect: &str) -> Case {
    in_dialect(plan_of("run-on-target", "github-ubuntu-amd64").arg("--no-emulation"), dialect)
}

/// `plan` that works.
fn good_plan(dialect: &str) -> Case {
    in_dialect(plan_of("cross", "github-ubuntu-amd64"), dialect)
}

/// `build --dry-run` where nothing answers: probing finds no engine, so no platform can be built.
fn dry_run_no_engine(dialect: &str) -> Case {
    in_dialect(build(&["--dry-run", "--platform", "linux/amd64,linux/arm64"]), dialect)
}

/// `build --dry-run` with a platform no CI input can fix.
fn dry_run_bad_platform(dialect: &str) -> Case {
    in_dialect(build(&["--dry-run", "--platform", "linux/sparc"]), dialect)
}

snapshots! {
    dialect_github_plan: good_plan("github");
    dialect_gitlab_plan: good_plan("gitlab");
    dialect_bitbucket_pipe_plan: good_plan("bitbucket_pipe");
    dialect_bitbucket_step_plan: good_plan("bitbucket_step");
    dialect_local_plan: good_plan("local");
    dialect_github_impossible_plan: impossible_plan("github");
    dialect_gitlab_impossible_plan: impossible_plan("gitlab");
    dialect_bitbucket_pipe_impossible_plan: impossible_plan("bitbucket_pipe");
    dialect_bitbucket_step_impossible_plan: impossible_plan("bitbucket_step");
    dialect_local_impossible_plan: impossible_plan("local");
    dialect_github_dry_run_no_engine: dry_run_no_engine("github");
    dialect_gitlab_dry_run_no_engine: dry_run_no_engine("gitlab");
    dialect_bitbucket_pipe_dry_run_no_engine: dry_run_no_engine("bitbucket_pipe");
    dialect_bitbucket_step_dry_run_no_engine: dry_run_no_engine("bitbucket_step");
    dialect_local_dry_run_no_engine: dry_run_no_engine("local");
    dialect_github_bad_platform: dry_run_bad_platform("github");
    dialect_gitlab_bad_platform: dry_run_bad_platform("gitlab");
    dialect_bitbucket_pipe_bad_platform: dry_run_bad_platform("bitbucket_pipe");
    dialect_bitbucket_step_bad_platform: dry_run_bad_platform("bitbucket_step");
    dialect_local_bad_platform: dry_run_bad_platform("local");
}

// ---------------------------------------------------------------------------------------------
// The reporters themselves, driven with one fixed sequence into a buffer.

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn reporter_transcript(provider: archway::ci::Provider, ok: bool) -> String {
    let mut env = archway::ci::Env::new();
    env.insert("ARCHWAY_REGISTRY_PASSWORD".into(), "hunter2-registry-secret".into());
    let buf = Buffer::default();
    let log = archway::ci::for_provider(provider).reporter(&env, Box::new(buf.clone()));
    log.group_start("Plan");
    log.info("linux/amd64  native    the local engine runs linux/amd64");
    log.line("#5 [linux/arm64 2/3] RUN apk add --no-cache curl\n#5 0.412 fetch https://dl-cdn.alpinelinux.org/alpine");
    log.line("::error::a build step printing a workflow command");
    log.debug("probe: engine 26.1.3 at unix:///var/run/docker.sock");
    log.warning(Some("Dockerfile"), Some(3), "ONBUILD triggers in `alpine:3.20` cannot be seen");
    log.group_start("Build linux/arm64");
    log.warning(None, None, "registry `docker.io` allows 9 more pulls of 100 per 6h");
    log.error(
        Some("docker/Dockerfile.prod"),
        Some(12),
        "linux/arm64 cannot be built on this runner: this RUN executes linux/arm64 code",
    );
    log.error(None, None, "logging in with hunter2-registry-secret failed\n  Caused by: 401 Unauthorized");
    log.group_end();
    if ok {
        log.success("published ghcr.io/acme/app@sha256:6c3c624b58db…");
    } else {
        log.failure(
            "error: linux/arm64 cannot be built on this runner\n\nhint: add `--node linux/arm64=tcp://HOST:2376`",
        );
    }
    let out = buf.0.lock().unwrap().clone();
    String::from_utf8(out).unwrap()
}

#[test]
fn reporters_in_every_dialect() {
    use archway::ci::Provider;
    for (name, provider) in [
        ("github", Provider::GitHub),
        ("gitlab", Provider::GitLab),
        ("bitbucket_pipe", Provider::Bitbucket { pipe: true }),
        ("bitbucket_step", Provider::Bitbucket { pipe: false }),
        ("local", Provider::Local),
    ] {
        for ok in [true, false] {
            let snapshot = format!("reporter_{name}_{}", if ok { "success" } else { "failure" });
            insta::with_settings!({ omit_expression => true, filters => filters() }, {
                insta::assert_snapshot!(snapshot, reporter_transcript(provider, ok));
            });
        }
    }
}

// ---------------------------------------------------------------------------------------------
// `inspect` of a scripted registry (it reads registries only, never a layout).

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn digest(bytes: &[u8]) -> String {
    archway::reference::Digest::of(bytes).to_string()
}

fn bytes(v: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

/// A config blob, an image manifest using it, and the manifest's bytes.
fn image(arch: &str, layer_sizes: &[u64]) -> (Vec<u8>, Vec<u8>) {
    let config = bytes(&serde_json::json!({
        "architecture": arch, "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": []}, "config": {}
    }));
    let layers: Vec<serde_json::Value> = layer_sizes
        .iter()
        .enumerate()
        .map(|(i, size)| {
            serde_json::json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": digest(format!("{arch}-layer-{i}").as_bytes()),
                "size": size
            })
        })
        .collect();
    let manifest = bytes(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": descriptor("application/vnd.oci.image.config.v1+json", &config),
        "layers": layers
    }));
    (config, manifest)
}

fn descriptor(media_type: &str, bytes: &[u8]) -> serde_json::Value {
    serde_json::json!({"mediaType": media_type, "digest": digest(bytes), "size": bytes.len()})
}

/// A two-platform index with a provenance attestation for amd64, and the steps serving it
/// the way `inspect` reads it: the index, then each platform's manifest followed by its
/// attestations.
fn index_steps() -> Vec<Step> {
    let (_, amd64) = image("amd64", &[3_145_728, 1_024]);
    let (_, arm64) = image("arm64", &[2_936_012]);
    let attestation = bytes(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(b"{}"), "size": 2},
        "layers": [{
            "mediaType": "application/vnd.in-toto+json", "digest": digest(b"provenance"), "size": 1432,
            "annotations": {"in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2"}
        }]
    }));
    let mut d_amd64 = descriptor(OCI_MANIFEST, &amd64);
    d_amd64["platform"] = serde_json::json!({"architecture": "amd64", "os": "linux"});
    let mut d_arm64 = descriptor(OCI_MANIFEST, &arm64);
    d_arm64["platform"] = serde_json::json!({"architecture": "arm64", "os": "linux", "variant": "v8"});
    let mut d_att = descriptor(OCI_MANIFEST, &attestation);
    d_att["platform"] = serde_json::json!({"architecture": "unknown", "os": "unknown"});
    d_att["annotations"] = serde_json::json!({
        "vnd.docker.reference.digest": digest(&amd64),
        "vnd.docker.reference.type": "attestation-manifest"
    });
    let index = bytes(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [d_amd64, d_arm64, d_att],
        "annotations": {
            "org.opencontainers.image.created": "2024-05-02T10:00:00Z",
            "org.opencontainers.image.source": "https://github.com/acme/app"
        }
    }));
    let get = |reference: String, body: &[u8]| {
        Step::get(&format!("/v2/acme/app/manifests/{reference}")).typed(OCI_MANIFEST, body.to_vec())
    };
    vec![
        Step::get("/v2/acme/app/manifests/1").typed(OCI_INDEX, index),
        get(digest(&amd64), &amd64),
        get(digest(&attestation), &attestation),
        get(digest(&arm64), &arm64),
    ]
}

fn single_manifest_steps() -> Vec<Step> {
    let (config, manifest) = image("riscv64", &[5_000, 700_000]);
    vec![
        Step::get("/v2/acme/app/manifests/1").typed(OCI_MANIFEST, manifest),
        Step::get(&format!("/v2/acme/app/blobs/{}", digest(&config))).typed("application/octet-stream", config),
    ]
}

/// Runs `inspect ARGS [REGISTRY]/acme/app:1` against a registry scripted with `steps`, which
/// must all be used.
fn inspect(name: &str, args: &[&str], steps: Vec<Step>) {
    let mut case = Case::new(&["inspect"]);
    for a in args {
        case = case.arg(a);
    }
    with_registry(name, case.arg("{registry}/acme/app:1"), steps);
}

/// Checks `case` against a registry scripted with `steps`. Whether every step was used is left
/// to the snapshot: a request off the script gets a `599`, which shows in the output.
fn with_registry(name: &str, case: Case, steps: Vec<Step>) {
    let server = Server::start();
    server.script(steps);
    case.registry(&server).check(name);
}

#[test]
fn inspect_index() {
    inspect("inspect_index", &[], index_steps());
}

#[test]
fn inspect_index_json() {
    inspect("inspect_index_json", &["--format", "json"], index_steps());
}

#[test]
fn inspect_index_raw() {
    inspect("inspect_index_raw", &["--raw"], index_steps()[..1].to_vec());
}

#[test]
fn inspect_single_manifest() {
    inspect("inspect_single_manifest", &[], single_manifest_steps());
}

#[test]
fn inspect_single_manifest_json() {
    inspect("inspect_single_manifest_json", &["--format", "json"], single_manifest_steps());
}

#[test]
fn inspect_tag_not_found() {
    let steps = vec![Step::get("/v2/acme/app/manifests/1").error(404, "MANIFEST_UNKNOWN", "manifest unknown")];
    inspect("inspect_tag_not_found", &[], steps);
}

#[test]
fn inspect_private_without_login() {
    let server = Server::start();
    let challenge = format!(r#"Bearer realm="{}/token",service="scripted""#, server.url());
    server.script([
        Step::get("/v2/acme/app/manifests/1").status(401).header("WWW-Authenticate", challenge),
        Step::get("/token").error(401, "UNAUTHORIZED", "authentication required"),
    ]);
    Case::new(&["inspect", "{registry}/acme/app:1"]).registry(&server).check("inspect_private_without_login");
}

#[test]
fn inspect_wrong_content_digest_header() {
    let (_, manifest) = image("amd64", &[100]);
    let lie = format!("sha256:{}", "0".repeat(64));
    let steps =
        vec![Step::get("/v2/acme/app/manifests/1").typed(OCI_MANIFEST, manifest).header("Docker-Content-Digest", lie)];
    inspect("inspect_wrong_content_digest_header", &[], steps);
}

#[test]
fn inspect_manifest_over_the_limit() {
    let steps = vec![Step::get("/v2/acme/app/manifests/1").header("Content-Type", OCI_MANIFEST).generated_body(
        b"{",
        b' ',
        5 << 20,
        b"}",
    )];
    inspect("inspect_manifest_over_the_limit", &[], steps);
}

/// Credentials for the registry, and its token realm on another host over plain HTTP: archway
/// does not send them there.
#[test]
fn inspect_realm_on_another_host_over_http() {
    use base64::Engine as _;
    let (server, realm) = (Server::start(), Server::routes("127.0.0.2"));
    let challenge = format!(r#"Bearer realm="{}/token",service="scripted""#, realm.url());
    server.script([Step::get("/v2/acme/app/manifests/1").status(401).header("WWW-Authenticate", challenge)]);
    let auth = base64::engine::general_purpose::STANDARD.encode("ci-bot:s3cret");
    let config = serde_json::json!({"auths": {server.host(): {"auth": auth}}}).to_string();
    Case::new(&["inspect", "{registry}/acme/app:1"])
        .file("docker/config.json", config)
        .env("DOCKER_CONFIG", "{work}/docker")
        .registry(&server)
        .check("inspect_realm_on_another_host_over_http");
    assert!(realm.seen().is_empty(), "nothing went to the realm: {:?}", realm.lines());
}

#[test]
fn inspect_registry_error() {
    let steps = vec![Step::get("/v2/acme/app/manifests/1").error(500, "UNKNOWN", "database is locked")];
    inspect("inspect_registry_error", &[], steps);
}

// ---------------------------------------------------------------------------------------------
// `merge` sources that cannot be read: they are looked at after the push check, so these run
// against a scripted registry that grants push access.

/// The push-access check: an upload opened and cancelled.
fn push_check() -> Vec<Step> {
    vec![
        Step::new("POST", "/v2/acme/app/blobs/uploads/")
            .status(202)
            .header("Location", "/v2/acme/app/blobs/uploads/check"),
        Step::new("DELETE", "/v2/acme/app/blobs/uploads/check").status(204),
    ]
}

fn merge(sources: &[&str]) -> Case {
    let mut case = Case::new(&["merge", "-t", "{registry}/acme/app:1"]);
    for s in sources {
        case = case.arg(s);
    }
    case
}

#[test]
fn merge_source_not_found() {
    with_registry("merge_source_not_found", merge(&["digests/amd64"]), push_check());
}

#[test]
fn merge_source_file_without_digest() {
    let case = merge(&["digest.txt"]).file("digest.txt", "not a digest\n");
    with_registry("merge_source_file_without_digest", case, push_check());
}

#[test]
fn merge_source_with_tag() {
    with_registry("merge_source_with_tag", merge(&["{registry}/acme/app:amd64"]), push_check());
}

#[test]
fn merge_empty_digest_dir() {
    with_registry("merge_empty_digest_dir", merge(&["digests"]).dir("digests"), push_check());
}

#[test]
fn merge_missing_leg() {
    let (config, manifest) = image("amd64", &[1_000]);
    let mut steps = push_check();
    steps.extend([
        Step::get(&format!("/v2/acme/app/manifests/{}", digest(&manifest))).typed(OCI_MANIFEST, manifest.clone()),
        Step::get(&format!("/v2/acme/app/blobs/{}", digest(&config))).typed("application/octet-stream", config),
    ]);
    let case = merge(&["digests"]).file("digests/amd64", format!("{}\n", digest(&manifest))).file("digests/arm64", "");
    with_registry("merge_missing_leg", case, steps);
}

// ---------------------------------------------------------------------------------------------
// The tests themselves never hand their environment to archway.

#[test]
fn no_test_spawns_archway_with_the_inherited_environment() {
    assert!(
        format!("{:?}", spawn::archway()).starts_with("env -i "),
        "support::spawn::archway() must clear the environment: {:?}",
        spawn::archway()
    );
    assert!(format!("{:?}", spawn::clean("x")).starts_with("env -i "));
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut offenders = Vec::new();
    for path in files_under(&tests) {
        if path.extension().is_none_or(|e| e != "rs") || path.ends_with("support/spawn.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        if text.contains(concat!("CARGO_BIN_", "EXE_archway")) {
            offenders.push(path.strip_prefix(&tests).unwrap().display().to_string());
        }
    }
    assert!(
        offenders.is_empty(),
        "these tests name the archway binary themselves; start it with `support::spawn::archway()` \
         (an empty environment) instead: {offenders:?}"
    );
}

/// The once-only check catches a repeated message (it can fail).
#[test]
#[should_panic(expected = "is printed once")]
fn a_repeated_error_is_caught() {
    errors_once(
        "exit: 2\n----- stdout -----\n----- stderr -----\nerror: the tag is not valid\n\nhint: fix it\nthe tag is not valid\n",
    );
}
