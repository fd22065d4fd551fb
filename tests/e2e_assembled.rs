//! The `assembled` strategy end to end, as a user on a runner without Docker sees it: no
//! engine (`DOCKER_HOST` names a socket that does not exist) and no `docker` on `PATH`, a
//! no-RUN Dockerfile builds for three platforms to the lab registry and to a layout, and the
//! images run (under QEMU, checked with the test's own `docker`). A RUN on the target fails at
//! plan time, naming the line. A second build of the same files under the same tag reuses
//! every layer: no layer is uploaded (counted through the proxy) and the index digest is the
//! same.

#![cfg(feature = "lab")]

mod support;

use support::lab::*;
use support::proxy::{Kind, Proxy};

/// A prebuilt-binary context: one shell script per architecture, copied by `$TARGETARCH`.
fn prebuilt(nonce: &str) -> tempfile::TempDir {
    let ctx = context(&format!(
        "FROM {}\nARG TARGETARCH\nCOPY --chmod=0755 bin/$TARGETARCH/app /usr/local/bin/app\nENV GREETING=hello\nENTRYPOINT [\"/usr/local/bin/app\"]\n",
        lab().base
    ));
    for arch in ["amd64", "arm64", "arm"] {
        let dir = ctx.path().join("bin").join(arch);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("app"), format!("#!/bin/sh\necho \"$GREETING from {arch} $(uname -m) {nonce}\"\n"))
            .unwrap();
    }
    ctx
}

#[test]
fn without_an_engine_a_no_run_dockerfile_builds_every_platform() {
    let repo = unique_repo("assembled-no-engine");
    let n = nonce();
    let ctx = prebuilt(&n);
    let platforms = "linux/amd64,linux/arm64,linux/arm/v7";
    let out = archway_without_docker(
        ctx.path(),
        &["build", ".", "--platform", platforms, "-t", &format!("{repo}:1"), "--push"],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    for p in platforms.split(',') {
        assert!(stderr.contains(&format!("{p:<13} assembled")), "{p} is assembled in the plan:\n{stderr}");
    }
    assert!(stdout.trim().starts_with(&format!("{repo}@sha256:")), "{stdout}");
    assert!(
        stderr.lines().any(|l| l.contains("downloaded ") && l.contains(" layer(s) of ") && l.ends_with("/s")),
        "base layer downloads report bytes and rate: {stderr}"
    );
    let (_, index) = manifest(&repo, "1").expect("the tag exists");
    assert_eq!(platforms_of(&json(&index)), ["linux/amd64", "linux/arm64", "linux/arm/v7"]);
    assert_eq!(docker_run("linux/arm64", &format!("{repo}:1")), format!("hello from arm64 aarch64 {n}"));
    assert_eq!(docker_run("linux/arm/v7", &format!("{repo}:1")), format!("hello from arm armv7l {n}"));
    assert_eq!(docker_run("linux/amd64", &format!("{repo}:1")), format!("hello from amd64 x86_64 {n}"));

    // The same without pushing: an OCI layout skopeo reads, one image per platform.
    let layout = ctx.path().join("out");
    let out = archway_without_docker(
        ctx.path(),
        &["build", ".", "--platform", platforms, "--output", layout.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out).1);
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let top = index["manifests"][0]["digest"].as_str().unwrap().strip_prefix("sha256:").unwrap().to_string();
    let inner = json(&std::fs::read(layout.join("blobs/sha256").join(top)).unwrap());
    assert_eq!(platforms_of(&inner), ["linux/amd64", "linux/arm64", "linux/arm/v7"]);
    let skopeo = std::process::Command::new("skopeo")
        .args(["inspect", "--raw", &format!("oci:{}", layout.display())])
        .output()
        .unwrap();
    assert!(skopeo.status.success(), "{}", String::from_utf8_lossy(&skopeo.stderr));
}

#[test]
fn without_an_engine_a_run_on_the_target_fails_at_plan_time() {
    let repo = unique_repo("assembled-run");
    let ctx = context(&format!("FROM {}\nRUN echo built > /built\n", lab().base));
    let out = archway_without_docker(
        ctx.path(),
        &["build", ".", "--platform", "linux/amd64,linux/arm64", "-t", &format!("{repo}:1"), "--push"],
    );
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("`RUN echo built > /built` at Dockerfile:2"), "names the RUN and its line:\n{stderr}");
    assert!(stderr.contains("no Docker engine answers here"), "{stderr}");
    assert!(!catalog().iter().any(|r| repo.ends_with(r.as_str())), "nothing was pushed");
}

#[test]
fn an_unchanged_rebuild_reuses_every_layer_and_keeps_the_digest() {
    let ctx = prebuilt(&nonce());
    // 8 MiB per platform, so a re-upload could not hide in the counts.
    for arch in ["amd64", "arm64"] {
        // xorshift: incompressible, the same on every run.
        let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ arch.len() as u64;
        let big: Vec<u8> = (0..8 << 20)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        std::fs::write(ctx.path().join("bin").join(arch).join("data"), big).unwrap();
    }
    let df = std::fs::read_to_string(ctx.path().join("Dockerfile")).unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), format!("{df}COPY bin/$TARGETARCH/data /data\n")).unwrap();
    let proxy = Proxy::start(&lab().registry);
    let path = unique_repo("assembled-reuse").split_once('/').unwrap().1.to_string();
    let tag = format!("{}/{path}:1", proxy.addr);
    let args = ["build", ".", "--platform", "linux/amd64,linux/arm64", "-t", tag.as_str(), "--push"];

    let first = archway_without_docker(ctx.path(), &args);
    assert!(first.status.success(), "{}", text(&first).1);
    let uploaded_first = proxy.body_bytes("PUT", Kind::Upload) + proxy.body_bytes("PATCH", Kind::Upload);
    assert!(uploaded_first > 8 << 20, "the first build uploads its layers: {}", proxy.summary());
    let digest_first = text(&first).0.trim().to_string();

    let before = proxy.seen(|_| true).len();
    let second = archway_without_docker(ctx.path(), &args);
    let (stdout, stderr) = text(&second);
    assert!(second.status.success(), "{stderr}");
    let later: Vec<_> = proxy.seen(|_| true).into_iter().skip(before).collect();
    let uploads: Vec<_> =
        later.iter().filter(|s| s.kind == Kind::Upload && matches!(s.method.as_str(), "PUT" | "PATCH")).collect();
    assert!(uploads.is_empty(), "no blob is uploaded again: {uploads:?}\n{}", proxy.summary());
    assert!(stderr.contains("reused 2 by content"), "both new layers are reused:\n{stderr}");
    assert_eq!(stdout.trim(), digest_first, "the same files give the same index");
}

/// A base image whose config carries `ONBUILD RUN` (made here with buildx): BuildKit would run
/// the trigger in the child build, so the child is not assembled, and the plan names the base.
/// A base with only an `ONBUILD COPY`-like trigger stays assemblable.
#[test]
fn a_base_with_an_onbuild_run_trigger_is_not_assembled() {
    let repo = unique_repo("onbuild-base");
    let base_ctx = context(&format!("FROM {}\nONBUILD RUN echo triggered > /triggered\n", lab().base));
    let out = support::spawn::pass_lab_env(&mut support::spawn::clean("docker"))
        .args(["buildx", "build", "--platform", "linux/amd64,linux/arm64", "--provenance", "false"])
        .args(["--output", &format!("type=image,name={repo}:run,push=true")])
        .arg(base_ctx.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let ctx = context(&format!("FROM {repo}:run\nCOPY Dockerfile /Dockerfile.copy\n"));
    let out = archway(ctx.path(), &["plan", ".", "--platform", "linux/arm64", "--format", "json"]);
    let plan = json(&out.stdout);
    let p = &plan["platforms"][0];
    assert_eq!(p["assemblable"], false, "{plan:#}");
    assert_eq!(p["assemble_line"], 1, "{plan:#}");
    let why = p["assemble_reason"].as_str().unwrap();
    assert!(why.contains(&format!("`{repo}:run`")) && why.contains("ONBUILD RUN echo triggered"), "{why}");
    assert_ne!(p["strategy"], "assembled", "{plan:#}");

    // Without the trigger the same Dockerfile is assembled.
    let ctx = context(&format!("FROM {}\nCOPY Dockerfile /Dockerfile.copy\n", lab().base));
    let out = archway(ctx.path(), &["plan", ".", "--platform", "linux/arm64", "--format", "json"]);
    assert_eq!(json(&out.stdout)["platforms"][0]["strategy"], "assembled", "{}", text(&out).1);
}
