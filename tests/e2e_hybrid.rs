//! Hybrid builds end to end on the lab engine: a cross-compiling Dockerfile (a
//! `FROM --platform=$BUILDPLATFORM` stage that runs RUN with the target's `TARGETARCH`, a final
//! stage that only copies its result onto the base) is planned `assembled`: the engine builds
//! the build stage natively, archway assembles the rest. Each image, run under QEMU, proves its
//! build stage ran on the build platform (x86_64) with that platform's TARGETARCH. A stage that
//! reads no TARGET ARG is built once for all platforms. With buildx unusable, the engine's
//! classic builder builds the stage instead (the path Bitbucket's default runtime takes).

#![cfg(feature = "lab")]

mod support;

use std::os::unix::fs::PermissionsExt as _;

use support::lab::*;

/// The cross-compiling pattern: `/msg` says what the build stage was built for and where.
fn cross_compiling(nonce: &str) -> tempfile::TempDir {
    context(&format!(
        "FROM --platform=$BUILDPLATFORM {base} AS build\n\
         ARG TARGETARCH\nARG TARGETVARIANT\n\
         RUN mkdir /out && echo \"built for $TARGETARCH$TARGETVARIANT on $(uname -m) {nonce}\" > /out/msg\n\
         FROM --platform=$BUILDPLATFORM {base} AS stamp\n\
         RUN echo \"stamp $(cat /proc/sys/kernel/random/uuid)\" > /stamp\n\
         FROM {base}\n\
         COPY --from=build /out/msg /msg\n\
         COPY --from=stamp /stamp /stamp\n\
         CMD [\"cat\", \"/msg\", \"/stamp\"]\n",
        base = lab().base
    ))
}

fn check(repo: &str, nonce: &str, stderr: &str) {
    let (_, index) = manifest(repo, "1").expect("the tag exists");
    assert_eq!(platforms_of(&json(&index)), ["linux/amd64", "linux/arm64", "linux/arm/v7"], "{stderr}");
    let mut stamps = Vec::new();
    for (p, arch) in [("linux/amd64", "amd64"), ("linux/arm64", "arm64"), ("linux/arm/v7", "armv7")] {
        let out = docker_run(p, &format!("{repo}:1"));
        let mut lines = out.lines();
        assert_eq!(lines.next(), Some(format!("built for {arch} on x86_64 {nonce}").as_str()), "{p}: {out}");
        stamps.push(lines.next().unwrap_or_default().to_string());
    }
    // The stage that reads no TARGET ARG was built once: every platform has the same stamp.
    assert!(stamps[0].starts_with("stamp "), "{stamps:?}");
    assert!(stamps.iter().all(|s| *s == stamps[0]), "built once for all platforms: {stamps:?}");
}

#[test]
fn a_cross_compiling_dockerfile_is_built_natively_and_assembled() {
    let repo = unique_repo("hybrid-buildx");
    let n = nonce();
    let ctx = cross_compiling(&n);
    let platforms = "linux/amd64,linux/arm64,linux/arm/v7";
    let plan = archway(ctx.path(), &["plan", ".", "--platform", platforms, "--format", "json"]);
    let (plan_out, plan_err) = text(&plan);
    assert!(plan.status.success(), "{plan_err}");
    let plan = json(plan_out.as_bytes());
    for p in plan["platforms"].as_array().unwrap() {
        assert_eq!(p["strategy"], "assembled", "{p}");
        assert_eq!(p["hybrid"]["builder"], "buildx", "{p}");
        let stages: Vec<(&str, bool)> = p["hybrid"]["stages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["name"].as_str().unwrap(), s["per_target"].as_bool().unwrap()))
            .collect();
        assert_eq!(stages, [("build", true), ("stamp", false)], "{p}");
    }

    let out = archway(ctx.path(), &["build", ".", "--platform", platforms, "-t", &format!("{repo}:1"), "--push"]);
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    // One buildx invocation builds the per-platform stage for all three (one solve).
    assert!(
        stderr.contains(
            "building stage `build` on linux/amd64 with buildx (for linux/amd64, linux/arm64, linux/arm/v7 in one invocation)"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("building stage `stamp` on linux/amd64 with buildx (once for all platforms)"), "{stderr}");
    check(&repo, &n, &stderr);
}

#[test]
fn without_buildx_the_classic_builder_builds_the_stages() {
    // A `docker` that has no buildx plugin, in front of the real one.
    let bin = tempfile::tempdir().unwrap();
    let wrapper = bin.path().join("docker");
    std::fs::write(
        &wrapper,
        "#!/bin/sh\nif [ \"$1\" = buildx ]; then echo \"docker: 'buildx' is not a docker command.\" >&2; exit 1; fi\nexec /usr/bin/docker \"$@\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.path().display(), std::env::var("PATH").unwrap_or_default());

    let repo = unique_repo("hybrid-classic");
    let n = nonce();
    let ctx = cross_compiling(&n);
    let platforms = "linux/amd64,linux/arm64,linux/arm/v7";
    let out = archway_env(
        ctx.path(),
        &["build", ".", "--platform", platforms, "-t", &format!("{repo}:1"), "--push"],
        &[("PATH", &path)],
    );
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("with the engine's classic builder"), "the plan names the builder:\n{stderr}");
    assert!(stderr.contains("without `FROM --platform`"), "the log says the Dockerfile was changed:\n{stderr}");
    check(&repo, &n, &stderr);
}
