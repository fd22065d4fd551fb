//! `archway build` of several platforms in one buildx invocation, on the lab: what the
//! platforms share is built once, each image still runs on its CPU, a failure names the
//! platform that failed and moves no tag, and the push-access check still stops everything.

#![cfg(feature = "lab")]

mod support;

use support::lab::*;

/// A `$BUILDPLATFORM` stage every target copies from (its RUN prints a marker), then a RUN on
/// each target's CPU.
fn shared_stage_dockerfile() -> String {
    format!(
        "ARG BASE={base}\nFROM --platform=$BUILDPLATFORM $BASE AS gen\nARG NONCE\n\
         RUN echo \"shared-stage-$NONCE\" | tee /gen\n\
         FROM $BASE\nCOPY --from=gen /gen /gen\nRUN uname -m > /arch\nCMD [\"cat\", \"/arch\"]\n",
        base = lab().base
    )
}

#[test]
fn a_shared_build_platform_stage_runs_once_for_three_platforms() {
    let _machine = support::machine::lock();
    let repo = unique_repo("together");
    let tag = format!("{repo}:v1");
    let ctx = context(&shared_stage_dockerfile());
    let nonce = nonce();
    let out = archway(
        ctx.path(),
        &[
            "build",
            ".",
            "--platform",
            "linux/amd64,linux/arm64,linux/arm/v7",
            "-t",
            &tag,
            "--build-arg",
            &format!("NONCE={nonce}"),
            "--push",
        ],
    );
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "archway failed:\n{stderr}");

    // One invocation for the three, and the shared stage's RUN is one step of it, run once.
    for p in ["linux/amd64", "linux/arm64", "linux/arm/v7"] {
        assert!(
            stderr.contains(&format!("==> {p}: building "))
                && stderr.contains("one invocation for linux/amd64, linux/arm64, linux/arm/v7"),
            "{stderr}"
        );
    }
    let runs: Vec<&str> = stderr.lines().filter(|l| l.contains("] RUN echo \"shared-stage-")).collect();
    assert_eq!(runs.len(), 1, "the shared stage's RUN is one step: {runs:#?}\n{stderr}");
    let printed = stderr.lines().filter(|l| l.ends_with(&format!(" shared-stage-{nonce}"))).count();
    assert_eq!(printed, 1, "its output appears once:\n{stderr}");

    // The index has the three platforms, each with its attestation, as per-platform builds give.
    let (ct, bytes) = manifest(&repo, "v1").expect("the tag exists");
    assert_eq!(ct, "application/vnd.oci.image.index.v1+json");
    let index = json(&bytes);
    assert_eq!(platforms_of(&index), ["linux/amd64", "linux/arm64", "linux/arm/v7"]);
    let manifests = index["manifests"].as_array().unwrap();
    let attestations: Vec<&serde_json::Value> =
        manifests.iter().filter(|m| m["annotations"]["vnd.docker.reference.type"] == "attestation-manifest").collect();
    assert_eq!(attestations.len(), 3, "{index:#}");
    for (a, image) in attestations.iter().zip(&manifests[..3]) {
        assert_eq!(a["annotations"]["vnd.docker.reference.digest"], image["digest"]);
    }
    for m in manifests {
        let digest = m["digest"].as_str().unwrap();
        assert!(manifest(&repo, digest).is_some(), "{digest} pushed by digest");
    }

    // Each image runs on its CPU.
    assert_eq!(docker_run("linux/amd64", &tag), "x86_64");
    assert_eq!(docker_run("linux/arm64", &tag), "aarch64");
    assert_eq!(docker_run("linux/arm/v7", &tag), "armv7l");
}

#[test]
fn a_combined_build_failing_on_arm64_names_it_and_moves_no_tag() {
    let _machine = support::machine::lock();
    let repo = unique_repo("together-fails");
    let good = context(&shared_stage_dockerfile());
    let platforms = "linux/amd64,linux/arm64,linux/arm/v7";
    let out = archway(good.path(), &["build", ".", "--platform", platforms, "-t", &format!("{repo}:stable"), "--push"]);
    assert!(out.status.success(), "{}", text(&out).1);
    let before = tag_digest(&repo, "stable").unwrap();

    let bad = context(&format!(
        "ARG BASE={}\nFROM $BASE\nARG NONCE\nRUN echo $NONCE; if [ \"$(uname -m)\" = aarch64 ]; then echo 'arm64 is broken' >&2; exit 3; fi\n",
        lab().base
    ));
    let out = archway(
        bad.path(),
        &[
            "build",
            ".",
            "--platform",
            platforms,
            "-t",
            &format!("{repo}:stable"),
            "--push",
            "--build-arg",
            &format!("NONCE={}", nonce()),
        ],
    );
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let error = &stderr[stderr.find("error:").expect("an error line")..];
    assert!(error.contains("1 of 3 platforms failed: linux/arm64 at the build step"), "{error}");
    assert!(!error.contains("linux/amd64 at") && !error.contains("linux/arm/v7 at"), "only arm64 failed: {error}");
    assert!(error.contains("no tag was moved"), "{error}");
    assert!(error.contains("arm64 is broken"), "the cause is repeated in the error: {error}");
    assert!(!stderr.contains("pushed by digest"), "no platform of the failed build was pushed: {stderr}");
    assert_eq!(tag_digest(&repo, "stable").unwrap(), before, "the tag still names the old image");
}

#[test]
fn an_unreachable_registry_stops_a_combined_build_before_any_tag_moves() {
    let _machine = support::machine::lock();
    // A loopback port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let ctx = context(&shared_stage_dockerfile());
    let out = archway(
        ctx.path(),
        &[
            "build",
            ".",
            "--platform",
            "linux/amd64,linux/arm64",
            "-t",
            &format!("127.0.0.1:{port}/app:1"),
            "--push",
            "--build-arg",
            &format!("NONCE={}", nonce()),
        ],
    );
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("cannot push to `127.0.0.1:{port}/app`; nothing was built")), "{stderr}");
    assert!(!stderr.contains("pushed by digest") && !stderr.contains("tagged"), "{stderr}");
}

#[test]
fn a_refusal_found_while_building_cancels_the_build() {
    use support::reqresp::{Server, Step};
    let _machine = support::machine::lock();
    // The registry answers the access check late, with a refusal: the build is under way then.
    let registry = Server::start();
    registry.script([Step::new("POST", "/v2/app/blobs/uploads/").delay(std::time::Duration::from_secs(4)).error(
        403,
        "DENIED",
        "requested access to the resource is denied",
    )]);
    let ctx = context(&format!("ARG BASE={}\nFROM $BASE\nARG NONCE\nRUN echo $NONCE; sleep 60\n", lab().base));
    let started = std::time::Instant::now();
    let out = archway(
        ctx.path(),
        &[
            "build",
            ".",
            "--platform",
            "linux/amd64,linux/arm64",
            "-t",
            &format!("{}/app:1", registry.host()),
            "--push",
            "--build-arg",
            &format!("NONCE={}", nonce()),
        ],
    );
    let took = started.elapsed();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("cannot push to `{}/app`; nothing was built", registry.host())), "{stderr}");
    assert!(stderr.contains("==> linux/arm64: building "), "the build had started: {stderr}");
    assert!(took < std::time::Duration::from_secs(40), "the build was cancelled, not waited for: {took:?}");
    let ps = std::process::Command::new("pgrep").args(["-f", &ctx.path().display().to_string()]).output().unwrap();
    assert!(ps.stdout.is_empty(), "buildx was stopped: {}", String::from_utf8_lossy(&ps.stdout));
    assert_eq!(registry.lines(), ["POST /v2/app/blobs/uploads/"], "nothing but the check reached the registry");
}

/// Large layers go to the registry while buildx is still exporting the rest (it writes each
/// blob into the layout complete, by rename): the push after the build finds them there, says
/// so, and the published images are whole.
#[test]
fn large_layers_are_uploaded_while_buildx_still_exports() {
    let _machine = support::machine::lock();
    let repo = unique_repo("together-early");
    let ctx = context(&format!(
        "FROM {}\nARG NONCE\nRUN echo $NONCE > /nonce && head -c 4194304 /dev/urandom > /payload\n",
        lab().base
    ));
    let tag = format!("{repo}:1");
    let out = archway(
        ctx.path(),
        &[
            "build",
            ".",
            "--platform",
            "linux/amd64,linux/arm64",
            "-t",
            &tag,
            "--push",
            "--build-arg",
            &format!("NONCE={}", nonce()),
        ],
    );
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    for p in ["linux/amd64", "linux/arm64"] {
        let line = stderr.lines().find(|l| l.starts_with(&format!("==> {p}: pushed by digest"))).expect(&stderr);
        // The 4 MiB layer at least (the base's 1 MiB layer too, this repository being new).
        assert!(line.contains(" while building") && !line.contains(", 0 while"), "uploaded during the export: {line}");
    }
    let (_, bytes) = manifest(&repo, "1").expect("tagged");
    for (_, digest) in platform_manifests(&json(&bytes)) {
        let (_, m) = manifest(&repo, &digest).unwrap();
        for layer in json(&m)["layers"].as_array().unwrap() {
            let d = layer["digest"].as_str().unwrap();
            assert_eq!(sha256(&blob(&repo, d)), d, "layer {d} of {digest} is whole");
        }
    }
}
