//! archway's own image, run the way each CI runs it: as a GitHub Docker container action
//! (`action.yml`: `runs.using: docker`, the runner's `docker run` with `INPUT_*` variables and
//! `/github/*` mounts) and as a Bitbucket pipe (bitbucket-pipes-toolkit's `PipeTestCase`,
//! through `scripts/pipe-test`). The image is built once per test binary with
//! `scripts/build-image --push` and pushed to the lab registry; inside the container archway
//! drives the host's engine through its socket and pushes over the host network.
//!
//! `archway --version` in both platforms of the image is checked by `tests/packaging.rs`
//! (`archway_image_builds_itself_without_emulation`), not here.

#![cfg(feature = "lab")]

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Instant;

use support::lab::*;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// archway's image, built and pushed once per test binary. Call it holding the machine lock
/// (`scripts/build-image` runs the arm64 image under QEMU).
fn image() -> &'static str {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(|| {
        // An image already built from this tree (to rerun one test without rebuilding).
        if let Ok(reference) = std::env::var("ARCHWAY_TEST_IMAGE") {
            return reference;
        }
        let reference = format!("{}/archway/archway:test-{}", lab().registry, std::process::id());
        let started = Instant::now();
        let out = Command::new(root().join("scripts/build-image"))
            .args(["--push", &reference])
            .current_dir(root())
            .env_remove("ARCHWAY_REGISTRY_USERNAME")
            .env_remove("ARCHWAY_REGISTRY_PASSWORD")
            .output()
            .expect("scripts/build-image runs");
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "scripts/build-image --push {reference} failed:\n{stdout}\n{stderr}");
        eprintln!("scripts/build-image --push {reference}: {:.0?}", started.elapsed());
        // The host's platform, as the runner's `docker run` takes it (`--pull always`: the tag
        // may hold the last platform build-image pulled).
        let pull =
            Command::new("docker").args(["pull", "-q", "--platform", host_platform(), &reference]).output().unwrap();
        assert!(pull.status.success(), "docker pull {reference}: {}", text(&pull).1);
        reference
    })
}

fn host_platform() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "linux/amd64",
        "aarch64" => "linux/arm64",
        other => panic!("no archway image for {other}"),
    }
}

/// The platform the lab's engine runs only under QEMU.
fn foreign_platform() -> &'static str {
    if host_platform() == "linux/amd64" { "linux/arm64" } else { "linux/amd64" }
}

/// `docker run ARGS`, with the time it took.
fn docker(args: &[String]) -> (Output, std::time::Duration) {
    let started = Instant::now();
    let out = Command::new("docker").args(args).output().expect("docker runs");
    (out, started.elapsed())
}

/// The build context the tests build: `tests/fixtures/pipe/` copied into `dir`.
fn fixture_into(dir: &Path) {
    for e in std::fs::read_dir(root().join("tests/fixtures/pipe")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.join(e.file_name())).unwrap();
    }
}

// ------------------------------------------------------------------------- binfmt_misc

const BINFMT: &str = "/proc/sys/fs/binfmt_misc";

/// The names of the kernel's binfmt_misc entries.
fn binfmt_entries() -> BTreeSet<String> {
    std::fs::read_dir(BINFMT)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != "register" && n != "status")
                .collect()
        })
        .unwrap_or_default()
}

/// Removes, when dropped (also on a failed assertion), every binfmt_misc entry that was not
/// there when it was made: a container step that registers a handler changes the whole
/// machine, and the other tests expect the lab's handlers only.
struct RestoreBinfmt(BTreeSet<String>);

impl RestoreBinfmt {
    fn added(&self) -> Vec<String> {
        binfmt_entries().difference(&self.0).cloned().collect()
    }
}

impl Drop for RestoreBinfmt {
    fn drop(&mut self) {
        for name in self.added() {
            let _ = std::fs::write(Path::new(BINFMT).join(&name), "-1");
        }
    }
}

/// The kernel's handler that runs `platform`'s binaries (lab-up registers `qemu-<arch>`).
fn lab_handler(platform: &str) -> String {
    let qemu = match platform {
        "linux/arm64" => "aarch64",
        "linux/amd64" => "x86_64",
        other => panic!("{other}"),
    };
    format!("qemu-{qemu}")
}

// ------------------------------------------------------------------------- GitHub

/// `inputs.<name>.default` of every input of `action.yml` that has one, and `runs.args`:
/// what the runner passes when a workflow gives no `with:` (read line by line: the file is
/// YAML with one level of inputs, and archway has no YAML parser).
fn action_defaults_and_args() -> (Vec<(String, String)>, Vec<String>) {
    let text = std::fs::read_to_string(root().join("action.yml")).unwrap();
    let mut defaults = Vec::new();
    let mut args = Vec::new();
    let mut section = "";
    let mut input = String::new();
    let mut in_args = false;
    for line in text.lines() {
        if !line.starts_with(' ') && line.ends_with(':') {
            section = match line {
                "inputs:" => "inputs",
                "runs:" => "runs",
                _ => "",
            };
            continue;
        }
        match section {
            "inputs" => {
                if let Some(name) =
                    line.strip_prefix("  ").and_then(|l| l.strip_suffix(':')).filter(|l| !l.starts_with(' '))
                {
                    input = name.to_string();
                } else if let Some(v) = line.strip_prefix("    default: ") {
                    defaults.push((input.clone(), v.trim().trim_matches('"').to_string()));
                }
            }
            "runs" => {
                if line == "  args:" {
                    in_args = true;
                } else if in_args {
                    match line.strip_prefix("    - ") {
                        Some(a) => args.push(a.trim().trim_matches('"').to_string()),
                        None => in_args = false,
                    }
                }
            }
            _ => {}
        }
    }
    assert!(!defaults.is_empty() && !args.is_empty(), "action.yml: no input defaults or no runs.args");
    (defaults, args)
}

/// The runner's name for an input's variable: `INPUT_` and the name upper-cased, spaces as
/// underscores, hyphens kept (`build-args` → `INPUT_BUILD-ARGS`).
fn input_var(name: &str) -> String {
    format!("INPUT_{}", name.replace(' ', "_").to_uppercase())
}

#[test]
fn github_container_action_publishes_a_release_tag() {
    let _machine = support::machine::lock();
    let image = image();
    let binfmt = RestoreBinfmt(binfmt_entries());
    let repo = unique_repo("gh-action");

    // What the runner lays out: the checkout, the file-command files, the event payload.
    let runner = tempfile::tempdir().unwrap();
    let (workspace, commands, workflow) =
        (runner.path().join("workspace"), runner.path().join("file_commands"), runner.path().join("workflow"));
    for d in [&workspace, &commands, &workflow] {
        std::fs::create_dir(d).unwrap();
    }
    fixture_into(&workspace);
    std::fs::write(commands.join("output"), "").unwrap();
    std::fs::write(commands.join("summary"), "").unwrap();
    std::fs::write(
        workflow.join("event.json"),
        r#"{"ref":"refs/tags/v1.2.3","repository":{"default_branch":"main","full_name":"acme/widget"}}"#,
    )
    .unwrap();

    let sha = "89abcdef0123456789abcdef0123456789abcdef";
    let mount = |host: &Path, container: &str| vec!["-v".to_string(), format!("{}:{container}", host.display())];
    let mut args: Vec<String> = ["run", "--rm", "--workdir", "/github/workspace"].map(String::from).into();
    args.extend(mount(&workspace, "/github/workspace"));
    args.extend(mount(&commands, "/github/file_commands"));
    args.extend(mount(&workflow, "/github/workflow"));
    args.extend(mount(Path::new("/var/run/docker.sock"), "/var/run/docker.sock"));
    // The lab registry is 127.0.0.1:5000 on the host (a hosted runner uses a bridge network
    // and a registry on the internet).
    args.extend(["--network", "host"].map(String::from));
    let mut env: Vec<(String, String)> = vec![
        ("GITHUB_ACTIONS", "true"),
        ("CI", "true"),
        ("HOME", "/github/home"),
        ("GITHUB_WORKSPACE", "/github/workspace"),
        ("GITHUB_OUTPUT", "/github/file_commands/output"),
        ("GITHUB_STEP_SUMMARY", "/github/file_commands/summary"),
        ("GITHUB_EVENT_PATH", "/github/workflow/event.json"),
        ("GITHUB_EVENT_NAME", "push"),
        ("GITHUB_REPOSITORY", "acme/widget"),
        ("GITHUB_SERVER_URL", "https://github.com"),
        ("GITHUB_REF", "refs/tags/v1.2.3"),
        ("GITHUB_REF_TYPE", "tag"),
        ("GITHUB_REF_NAME", "v1.2.3"),
        ("GITHUB_SHA", sha),
        ("GITHUB_ACTOR", "octocat"),
        // The probe says which image it runs helpers from (checked below).
        ("ARCHWAY_LOG", "archway::probe::engine=debug"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    // Every input with a default, as the runner passes them, then the workflow's `with:`.
    let (defaults, action_args) = action_defaults_and_args();
    for (name, value) in defaults {
        let value = if value.contains("${{") { "ghs_not_a_real_token".to_string() } else { value };
        env.push((input_var(&name), value));
    }
    let with = [
        ("image", repo.clone()),
        ("push", "true".into()),
        ("platforms", "linux/amd64\nlinux/arm64\n".into()),
        ("build-args", format!("BASE={}\nNONCE={}", lab().base, nonce())),
    ];
    for (name, value) in with {
        env.retain(|(k, _)| *k != input_var(name));
        env.push((input_var(name), value));
    }
    assert!(env.iter().any(|(k, _)| k == "INPUT_BUILD-ARGS"), "the runner keeps hyphens");
    for (k, v) in &env {
        args.extend(["-e".to_string(), format!("{k}={v}")]);
    }
    args.push(image.to_string());
    args.extend(action_args.iter().cloned());
    assert_eq!(action_args, ["build"]);

    let (out, took) = docker(&args);
    let (stdout, stderr) = text(&out);
    eprintln!("GitHub container action: {took:.1?}");
    assert!(out.status.success(), "the action failed ({}):\n{stdout}\n{stderr}", out.status);
    assert!(stderr.contains("::group::Plan") && stderr.contains("::endgroup::"), "workflow commands: {stderr}");

    // Tags from the release tag, all on one index with both platforms.
    let digest = tag_digest(&repo, "1.2.3").unwrap_or_else(|| panic!("{repo}:1.2.3 missing\n{stderr}"));
    for tag in ["1.2.3", "1.2", "1", "latest", "sha-89abcde"] {
        assert_eq!(tag_digest(&repo, tag).as_deref(), Some(digest.as_str()), "tag {tag}:\n{stderr}");
    }
    let index = json(&manifest(&repo, &digest).unwrap().1);
    assert_eq!(platforms_of(&index), ["linux/amd64", "linux/arm64"]);

    // $GITHUB_OUTPUT and the step summary, written inside the container, read on the host.
    let outputs = std::fs::read_to_string(commands.join("output")).unwrap();
    assert!(outputs.contains(&format!("digest={digest}\n")), "{outputs}");
    assert!(outputs.contains(&format!("image={repo}\n")), "{outputs}");
    assert!(outputs.contains("platforms=linux/amd64,linux/arm64\n"), "{outputs}");
    assert!(outputs.contains(&format!("{repo}:1.2.3\n")), "{outputs}");
    let summary = std::fs::read_to_string(commands.join("summary")).unwrap();
    assert!(summary.contains(&format!("### archway: `{repo}")), "{summary}");
    assert!(summary.contains("| platform | strategy | why | digest | duration |"), "{summary}");
    assert!(summary.contains(&format!("| {} | native |", host_platform())), "{summary}");
    assert!(summary.contains(&format!("| {} | emulated |", foreign_platform())), "{summary}");
    assert!(summary.contains("`1.2.3`") || summary.contains(&format!("`{repo}:1.2.3`")), "{summary}");

    // The step knows its own image from the engine (its container), so it neither lists the
    // engine's images (seconds on an engine with hundreds) nor runs a helper from another.
    assert!(
        stderr.contains(&format!("archway runs in a container of `{image}`")),
        "the step did not find its own image:\n{stderr}"
    );

    // QEMU: the step is an unprivileged container, which sees no binfmt_misc (it is not
    // mounted in containers), but the kernel's handlers are global and the lab's have the F
    // flag, so they work in buildx's containers. The step should use the handler that is
    // there, not register another one from a privileged container.
    let handler = lab_handler(foreign_platform());
    let plan_row = stderr
        .lines()
        .find(|l| l.starts_with(foreign_platform()) && l.contains("emulated"))
        .unwrap_or_else(|| panic!("no plan row for {}:\n{stderr}", foreign_platform()));
    let added = binfmt.added();
    let used = stderr
        .contains(&format!("QEMU handler `{handler}` for {} is registered on the host already", foreign_platform()));
    assert!(
        added.is_empty() && (plan_row.contains(&format!("`{handler}` is registered")) || used),
        "the container step did not use the host's QEMU handler `{handler}`:\n  plan: {plan_row}\n  \
         binfmt_misc entries it added to the host: {added:?}"
    );
}

// ------------------------------------------------------------------------- Bitbucket

#[test]
fn bitbucket_pipe_with_pipe_test_case() {
    let _machine = support::machine::lock();
    let image = image();
    let binfmt = RestoreBinfmt(binfmt_entries());
    let repo = unique_repo("bb-pipe");
    let started = Instant::now();
    let out = Command::new(root().join("scripts/pipe-test"))
        .args([image, repo.as_str()])
        .current_dir(root())
        .output()
        .expect("scripts/pipe-test runs");
    let (stdout, stderr) = text(&out);
    eprintln!("scripts/pipe-test (PipeTestCase, 3 pipe runs): {:.1?}", started.elapsed());
    assert!(out.status.success(), "scripts/pipe-test failed ({}):\n{stdout}\n{stderr}", out.status);
    // Checked again here, through the lab helpers: the pipe published REPO:main and :edge (a
    // default-branch push never moves `latest`).
    let digest = tag_digest(&repo, "main").expect("the pipe pushed REPO:main");
    assert_eq!(tag_digest(&repo, "edge"), Some(digest));
    assert_eq!(tag_digest(&repo, "latest"), None);
    assert!(!catalog().iter().any(|r| r.starts_with(&format!("{}-bad-", repo.split_once('/').unwrap().1))));
    drop(binfmt);
}

/// The same pipe with plain `docker run`, as Bitbucket runs it (no toolkit): the image's
/// default command (no arguments: `CMD ["build"]`), the clone mounted at its own path.
#[test]
fn bitbucket_pipe_with_docker_run() {
    let _machine = support::machine::lock();
    let image = image();
    let binfmt = RestoreBinfmt(binfmt_entries());
    let clone = tempfile::tempdir().unwrap();
    let dir = clone.path().display().to_string();
    fixture_into(clone.path());
    let pipes = clone.path().join(".bitbucket/pipelines/generated/pipeline/pipes");
    let (storage, shared) = (pipes.join("archway"), pipes.join("shared"));
    std::fs::create_dir_all(&storage).unwrap();
    std::fs::create_dir_all(&shared).unwrap();

    let run = |repo: &str, vars: &[(&str, &str)]| {
        let mut args: Vec<String> = ["run", "--rm", "-v", &format!("{dir}:{dir}"), "-w", &dir]
            .into_iter()
            .map(String::from)
            .chain(["-v", "/var/run/docker.sock:/var/run/docker.sock", "--network", "host"].map(String::from))
            .collect();
        let base = format!("BASE={}", lab().base);
        let nonce = format!("NONCE={}", nonce());
        let mut env = vec![
            ("BITBUCKET_BUILD_NUMBER", "1"),
            ("BITBUCKET_CLONE_DIR", dir.as_str()),
            ("BITBUCKET_BRANCH", "main"),
            ("BITBUCKET_COMMIT", "fedcba9876543210fedcba9876543210fedcba98"),
            ("BITBUCKET_REPO_SLUG", "widget"),
            ("IMAGE", repo),
            ("PUSH", "true"),
            ("PLATFORMS", "linux/amd64,linux/arm64"),
            ("BUILD_ARGS_COUNT", "2"),
            ("BUILD_ARGS_0", base.as_str()),
            ("BUILD_ARGS_1", nonce.as_str()),
        ];
        env.retain(|(k, _)| !vars.iter().any(|(v, _)| v == k));
        env.extend_from_slice(vars);
        let (storage, shared) = (storage.display().to_string(), shared.display().to_string());
        env.push(("BITBUCKET_PIPE_STORAGE_DIR", &storage));
        env.push(("BITBUCKET_PIPE_SHARED_STORAGE_DIR", &shared));
        for (k, v) in env {
            args.extend(["-e".to_string(), format!("{k}={v}")]);
        }
        args.push(image.to_string());
        let (out, took) = docker(&args);
        eprintln!("pipe {vars:?}: {took:.1?}");
        out
    };
    let last_line = |o: &Output| text(o).1.trim_end().lines().last().unwrap_or("").to_string();

    // Bad variables: the error once (its first line marked ✖, the hint last), exit 2, nothing pushed.
    for (var, value) in [("PUSH", "maybe"), ("PLATFORMS", "linux/sparc")] {
        let repo = unique_repo("bb-bad");
        let out = run(&repo, &[(var, value)]);
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{var}={value}:\n{stderr}");
        assert_eq!(stderr.matches('✖').count(), 1, "{var}={value}:\n{stderr}");
        assert!(last_line(&out).starts_with("hint: "), "{var}={value}:\n{stderr}");
        assert!(stderr.contains(var) || stderr.contains(value), "names the variable: {stderr}");
        assert!(manifest(&repo, "main").is_none() && !catalog().contains(&repo.split_once('/').unwrap().1.to_string()));
    }
    assert!(!shared.join("archway-result.json").exists());

    let repo = unique_repo("bb-pipe");
    let out = run(&repo, &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(last_line(&out).contains("✔"), "{stderr}");
    let digest = tag_digest(&repo, "main").expect("pushed REPO:main");
    // A pipe's log merges stdout and stderr, so the reference is not printed after the ✔;
    // it is in the result file.
    assert_eq!(stdout.trim(), "", "nothing on stdout in a pipe");
    assert_eq!(tag_digest(&repo, "edge").as_deref(), Some(digest.as_str()));
    assert_eq!(tag_digest(&repo, "latest"), None, "a default-branch push never moves `latest`");
    assert_eq!(tag_digest(&repo, "sha-fedcba9").as_deref(), Some(digest.as_str()));
    assert_eq!(platforms_of(&json(&manifest(&repo, &digest).unwrap().1)), ["linux/amd64", "linux/arm64"]);
    let result = json(&std::fs::read(shared.join("archway-result.json")).expect("the result in the shared storage"));
    assert_eq!(result["digest"], digest);
    drop(binfmt);
}

/// Bitbucket's default runtime, simulated for real (`support::authz`: a second engine whose
/// authorization plugin `pipelines` refuses privileged containers, `--platform`,
/// multi-architecture builds and buildx, with the classic image store). archway's image runs
/// as a pipe against it, for linux/amd64, linux/arm64 and linux/arm/v7:
/// (1) a no-RUN Dockerfile is assembled; (2) a cross-compiling Dockerfile is hybrid — the
/// engine's classic builder runs its `$BUILDPLATFORM` stage once per target with that target's
/// TARGETARCH, archway assembles the rest — and each image, run under QEMU on the main engine,
/// proves it; (3) a RUN on the target platform ends ✖, naming the line and the fixes, with
/// nothing pushed. No build request is ever refused.
#[test]
fn bitbucket_default_runtime_builds_arm_images() {
    let _machine = support::machine::lock();
    let image = image();
    let bb = support::authz::BitbucketEngine::start();
    let base = lab().base.clone();
    let pipe = |clone: &Path, repo: &str| {
        let dir = clone.display().to_string();
        let pipes = clone.join(".bitbucket/pipelines/generated/pipeline/pipes");
        std::fs::create_dir_all(pipes.join("archway")).unwrap();
        std::fs::create_dir_all(pipes.join("shared")).unwrap();
        let mut args: Vec<String> =
            ["run", "--rm", "-v", &format!("{dir}:{dir}"), "-w", &dir, "-v", &bb.socket_volume(), "--network", "host"]
                .into_iter()
                .map(String::from)
                .collect();
        for (k, v) in [
            ("BITBUCKET_BUILD_NUMBER", "7"),
            ("BITBUCKET_CLONE_DIR", dir.as_str()),
            ("BITBUCKET_BRANCH", "main"),
            ("BITBUCKET_COMMIT", "0123456789abcdef0123456789abcdef01234567"),
            ("BITBUCKET_REPO_SLUG", "widget"),
            ("IMAGE", repo),
            ("PUSH", "true"),
            ("PLATFORMS", "linux/amd64,linux/arm64,linux/arm/v7"),
        ] {
            args.extend(["-e".to_string(), format!("{k}={v}")]);
        }
        for (k, d) in [("BITBUCKET_PIPE_STORAGE_DIR", "archway"), ("BITBUCKET_PIPE_SHARED_STORAGE_DIR", "shared")] {
            args.extend(["-e".to_string(), format!("{k}={}", pipes.join(d).display())]);
        }
        args.push(image.to_string());
        let (out, took) = docker(&args);
        eprintln!("pipe on the Bitbucket engine ({repo}): {took:.1?}");
        out
    };
    let finished = |o: &Output| text(o).1.trim_end().lines().last().unwrap_or("").to_string();
    let platforms = ["linux/amd64", "linux/arm64", "linux/arm/v7"];

    // (1) No RUN: assembled, no engine work at all.
    let clone = tempfile::tempdir().unwrap();
    std::fs::write(
        clone.path().join("Dockerfile"),
        format!("FROM {base}\nARG TARGETARCH\nCOPY msg-$TARGETARCH /msg\nCMD [\"cat\", \"/msg\"]\n"),
    )
    .unwrap();
    for arch in ["amd64", "arm64", "arm"] {
        std::fs::write(clone.path().join(format!("msg-{arch}")), format!("prebuilt for {arch}\n")).unwrap();
    }
    let repo = unique_repo("bb-default-prebuilt");
    let out = pipe(clone.path(), &repo);
    let stderr = text(&out).1;
    assert!(out.status.success() && finished(&out).contains('✔'), "{stderr}\n{}", bb.plugin.log());
    for p in platforms {
        assert!(stderr.contains(&format!("{p:<13} assembled  no RUN")), "{p} is assembled:\n{stderr}");
    }
    assert_eq!(platforms_of(&json(&manifest(&repo, "main").expect("REPO:main").1)), platforms);
    assert_eq!(docker_run("linux/arm/v7", &format!("{repo}:main")), "prebuilt for arm");

    // (2) Cross-compiling: the build stage on the engine's classic builder, per target.
    let n = nonce();
    let clone = tempfile::tempdir().unwrap();
    std::fs::write(
        clone.path().join("Dockerfile"),
        format!(
            "FROM --platform=$BUILDPLATFORM {base} AS build\nARG TARGETARCH\nARG TARGETVARIANT\n\
             RUN mkdir /out && echo \"built for $TARGETARCH$TARGETVARIANT on $(uname -m) {n}\" > /out/msg\n\
             FROM {base}\nCOPY --from=build /out/msg /msg\nCMD [\"cat\", \"/msg\"]\n"
        ),
    )
    .unwrap();
    bb.plugin.clear();
    let repo = unique_repo("bb-default-cross");
    let out = pipe(clone.path(), &repo);
    let stderr = text(&out).1;
    assert!(out.status.success() && finished(&out).contains('✔'), "{stderr}\n{}", bb.plugin.log());
    for p in platforms {
        assert!(
            stderr.contains(&format!(
                "{p:<13} assembled  stage `build` (Dockerfile:4) runs natively on linux/amd64 with the engine's classic builder, per platform"
            )),
            "{p} is hybrid on the classic builder:\n{stderr}"
        );
    }
    assert_eq!(platforms_of(&json(&manifest(&repo, "main").expect("REPO:main").1)), platforms);
    for (p, arch) in [("linux/amd64", "amd64"), ("linux/arm64", "arm64"), ("linux/arm/v7", "armv7")] {
        assert_eq!(docker_run(p, &format!("{repo}:main")), format!("built for {arch} on x86_64 {n}"), "{p}");
    }
    let refused_builds: Vec<String> =
        bb.plugin.denied().iter().filter(|s| s.path().starts_with("/build")).map(|s| s.line()).collect();
    assert!(refused_builds.is_empty(), "no build request is refused: {refused_builds:?}");
    assert!(
        bb.plugin.seen().iter().any(|s| s.path() == "/build" && s.query("version").as_deref() == Some("1")),
        "the classic builder built the stage:\n{}",
        bb.plugin.log()
    );

    // (3) A RUN on the target platform: ✖, the line and the fixes; nothing pushed.
    let clone = tempfile::tempdir().unwrap();
    std::fs::write(clone.path().join("Dockerfile"), format!("FROM {base}\nRUN echo hi > /x\n")).unwrap();
    let repo = unique_repo("bb-default-foreign");
    let out = pipe(clone.path(), &repo);
    let stderr = text(&out).1;
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains('✖'), "{stderr}");
    assert!(stderr.contains("Dockerfile:2"), "names the line:\n{stderr}");
    for fix in ["runtime v3", "--node linux/arm64=", "FROM --platform=$BUILDPLATFORM"] {
        assert!(stderr.contains(fix), "suggests `{fix}`:\n{stderr}");
    }
    assert!(manifest(&repo, "main").is_none(), "nothing pushed");
}
