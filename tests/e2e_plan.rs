//! Planning and strategies on the lab: cross builds with no QEMU handler, refusing to emulate
//! when registration is forbidden (at plan time, naming the line), archway registering the
//! handler itself, `archway plan --format json`, and the classic-builder path when buildx is
//! missing. Tests that touch binfmt_misc hold the machine lock and restore it even on failure.

#![cfg(feature = "lab")]

mod support;

use std::path::Path;

use support::lab::*;

const BINFMT: &str = "/proc/sys/fs/binfmt_misc";

/// Disables the lab's qemu-aarch64 handler; on drop re-enables it and removes any handler
/// archway registered in its place.
struct Arm64HandlerDisabled;

impl Arm64HandlerDisabled {
    fn new() -> Self {
        assert!(Path::new(BINFMT).join("qemu-aarch64").exists(), "the lab registers qemu-aarch64; run scripts/lab-up");
        std::fs::write(Path::new(BINFMT).join("qemu-aarch64"), "0").unwrap();
        Arm64HandlerDisabled
    }
}

impl Drop for Arm64HandlerDisabled {
    fn drop(&mut self) {
        let ours = Path::new(BINFMT).join("archway-qemu-aarch64");
        if ours.exists() {
            let _ = std::fs::write(&ours, "-1");
        }
        let _ = std::fs::write(Path::new(BINFMT).join("qemu-aarch64"), "1");
    }
}

fn run_dockerfile() -> String {
    format!(
        "ARG BASE={}\nFROM $BASE\nARG NONCE\n# a comment, so the RUN is not on line 3\nRUN echo \"$NONCE\" > /nonce && \\\n    uname -m > /arch\nCMD [\"cat\", \"/arch\"]\n",
        lab().base
    )
}

fn cross_dockerfile() -> String {
    format!(
        "ARG BASE={}\nFROM --platform=$BUILDPLATFORM $BASE AS build\nARG NONCE\nARG TARGETARCH\nRUN echo \"$NONCE\" > /nonce && echo \"built-on-$(uname -m)-for-$TARGETARCH\" > /out\n\nFROM $BASE\nCOPY --from=build /out /out\nCMD [\"cat\", \"/out\"]\n",
        lab().base
    )
}

#[test]
fn without_a_handler_cross_builds_refuses_or_registers() {
    let _lock = support::machine::lock();
    let guard = Arm64HandlerDisabled::new();

    // 1. Cross-compiling Dockerfile, built through buildx (`--prefer cross`; by default it is
    // a hybrid `assembled` build, tests/e2e_hybrid.rs): strategy cross, no handler needed.
    let repo = unique_repo("cross");
    let ctx = context(&cross_dockerfile());
    let out = archway(
        ctx.path(),
        &[
            "build",
            ".",
            "--prefer",
            "cross",
            "--platform",
            "linux/arm64",
            "--binfmt",
            "never",
            "-t",
            &format!("{repo}:1"),
            "--push",
            "--build-arg",
            &format!("NONCE={}", nonce()),
        ],
    );
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("linux/arm64  cross"), "the plan says cross: {stderr}");
    assert!(!Path::new(BINFMT).join("archway-qemu-aarch64").exists(), "nothing was registered");

    // 2. A RUN on the target with registration forbidden: refused at plan time.
    let repo2 = unique_repo("refused");
    let ctx2 = context(&run_dockerfile());
    let out = archway(
        ctx2.path(),
        &[
            "build",
            ".",
            "--platform",
            "linux/amd64,linux/arm64",
            "--binfmt",
            "never",
            "-t",
            &format!("{repo2}:1"),
            "--push",
        ],
    );
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("error: linux/arm64 cannot be built on this runner; nothing was built or pushed"),
        "{stderr}"
    );
    assert!(stderr.contains("`--binfmt never` forbids registering one"), "{stderr}");
    assert!(
        stderr.contains("move the RUN at Dockerfile:5 into a `FROM --platform=$BUILDPLATFORM` stage"),
        "names the line: {stderr}"
    );
    assert!(stderr.contains("--node linux/arm64=tcp://HOST:2376"), "{stderr}");
    assert!(!stderr.contains("building native"), "nothing was built: {stderr}");
    assert!(tag_digest(&repo2, "1").is_none(), "nothing was pushed");

    // 3. The same, allowed: archway registers a handler itself and the build succeeds.
    let out = archway(
        ctx2.path(),
        &[
            "build",
            ".",
            "--platform",
            "linux/arm64",
            "-t",
            &format!("{repo2}:1"),
            "--push",
            "--build-arg",
            &format!("NONCE={}", nonce()),
        ],
    );
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("registered QEMU handler `archway-qemu-aarch64`"), "{stderr}");
    let entry = std::fs::read_to_string(Path::new(BINFMT).join("archway-qemu-aarch64")).unwrap();
    assert!(entry.contains("flags: F"), "registered with the F flag: {entry}");

    drop(guard);
    assert!(!Path::new(BINFMT).join("archway-qemu-aarch64").exists());
    assert_eq!(docker_run("linux/arm64", &format!("{repo2}:1")), "aarch64");
    assert_eq!(docker_run("linux/arm64", &format!("{repo}:1")), "built-on-x86_64-for-arm64");
}

#[test]
fn plan_json_says_strategy_reason_and_line() {
    let _lock = support::machine::lock();
    let ctx = context(&run_dockerfile());
    let out =
        archway(ctx.path(), &["plan", ".", "--platform", "linux/amd64,linux/arm64,linux/arm/v7", "--format", "json"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let plan = json(stdout.as_bytes());
    let p = plan["platforms"].as_array().unwrap();
    assert_eq!(p.len(), 3);
    assert_eq!(p[0]["platform"], "linux/amd64");
    assert_eq!(p[0]["strategy"], "native");
    assert_eq!(p[0]["foreign_code"], false);
    assert_eq!(p[1]["strategy"], "emulated");
    assert_eq!(p[1]["foreign_code"], true);
    assert_eq!(p[1]["line"], 5);
    assert!(p[1]["reason"].as_str().unwrap().contains("qemu-aarch64"), "{}", p[1]);
    assert_eq!(p[2]["strategy"], "emulated");

    let cross = context(&cross_dockerfile());
    let out = archway(cross.path(), &["plan", ".", "--platform", "linux/arm64", "--format", "json"]);
    let plan = json(&out.stdout);
    assert_eq!(plan["platforms"][0]["strategy"], "assembled", "{plan}");
    assert_eq!(plan["platforms"][0]["hybrid"]["stages"][0]["name"], "build", "{plan}");
    assert_eq!(plan["platforms"][0]["foreign_code"], false);
    assert!(plan["platforms"][0]["line"].is_null());
    let out =
        archway(cross.path(), &["plan", ".", "--platform", "linux/arm64", "--prefer", "cross", "--format", "json"]);
    let plan = json(&out.stdout);
    assert_eq!(plan["platforms"][0]["strategy"], "cross", "{plan}");

    // --no-emulation makes arm64 impossible: exit 3 and every option explained.
    let out = archway(ctx.path(), &["plan", ".", "--platform", "linux/arm64", "--no-emulation"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    for word in ["native", "cross", "remote", "emulated", "`--no-emulation` is set", "drop `--no-emulation`"] {
        assert!(stderr.contains(word), "{word}: {stderr}");
    }
}

#[test]
fn recorded_bitbucket_capabilities_explain_the_way_out() {
    let ctx = context(&run_dockerfile());
    let caps = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/capabilities/bitbucket-default.json");
    let out = archway(
        ctx.path(),
        &["plan", ".", "--platform", "linux/amd64,linux/arm64", "--capabilities", caps.to_str().unwrap()],
    );
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("linux/amd64  native"), "{stderr}");
    assert!(stderr.contains("classic builder"), "{stderr}");
    assert!(stderr.contains("refuses privileged containers"), "{stderr}");
    assert!(stderr.contains("runtime v3"), "{stderr}");
}

#[test]
fn without_buildx_the_engine_classic_builder_builds_its_own_platform() {
    let _lock = support::machine::lock();
    let repo = unique_repo("classic");
    let ctx = context(&run_dockerfile());
    std::fs::write(ctx.path().join(".dockerignore"), "secret.txt\n").unwrap();
    std::fs::write(ctx.path().join("secret.txt"), "do not send").unwrap();
    // A sparse file in the context goes to the engine as a plain entry (it refuses GNU sparse
    // headers: "unhandled tar header type 83").
    std::fs::File::create(ctx.path().join("disk.img")).unwrap().set_len(8 << 20).unwrap();
    let env = [("ARCHWAY_DOCKER", "/nonexistent/docker")];
    let out = archway_env(
        ctx.path(),
        &[
            "build",
            ".",
            "--platform",
            "linux/amd64",
            "-t",
            &format!("{repo}:1"),
            "--push",
            "--build-arg",
            &format!("NONCE={}", nonce()),
        ],
        &env,
    );
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("classic builder"), "{stderr}");
    let (_, bytes) = manifest(&repo, "1").unwrap();
    let index = json(&bytes);
    assert_eq!(index["manifests"][0]["platform"]["architecture"], "amd64");
    assert_eq!(docker_run("linux/amd64", &format!("{repo}:1")), "x86_64");

    // Other platforms need buildx (or a node): impossible, said at plan time.
    let out = archway_env(ctx.path(), &["plan", ".", "--platform", "linux/amd64,linux/arm64"], &env);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out).1);
}
