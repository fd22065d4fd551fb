//! archway's GitLab CI/CD component (templates/archway.yml) in a whole GitLab pipeline, run by
//! gitlab-ci-local (`scripts/gitlab-ci-local pipeline`): the `archway` job, in archway's own
//! image from the lab registry, builds tests/fixtures/gitlab-local/Dockerfile for linux/amd64
//! and linux/arm64 on the host's engine and pushes to the lab registry; the `verify` job of a
//! later stage `needs:` it and prints the ARCHWAY_* variables of its dotenv report. Checked from
//! outside: the registry has an index with both platforms under the digest the downstream job
//! printed, and the branch tag points at it.
//!
//! Needs the lab (`scripts/lab-up`), archway's image (`scripts/build-image --push
//! 127.0.0.1:5000/archway/archway:dev`; pulled from the lab registry when it is not in the
//! engine) and npm (the script installs gitlab-ci-local into .tools/gitlab-ci-local).

#![cfg(feature = "lab")]

mod support;

use std::path::Path;
use std::process::Command;

use support::lab::*;

/// The value the `verify` job printed as `downstream NAME=VALUE` (gitlab-ci-local shows a
/// job's output as `verify > …`, its commands as `verify $ …`).
fn downstream(log: &str, name: &str) -> String {
    let key = format!("> downstream {name}=");
    log.lines()
        .find_map(|l| l.split_once(&key).map(|(_, v)| v.trim().to_string()))
        .unwrap_or_else(|| panic!("the verify job printed no {name}:\n{log}"))
}

#[test]
fn component_pipeline_pushes_and_downstream_job_reads_dotenv() {
    // The foreign platform's RUN needs a QEMU handler, and archway registers one of its own from
    // the job (it cannot see the host's from inside a container): machine state.
    let _machine = support::machine::lock();
    let lab = lab();
    let repo = unique_repo("gitlab-local");
    let archway_image = format!("{}/archway/archway:dev", lab.registry);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));

    let out = Command::new(root.join("scripts/gitlab-ci-local"))
        .args(["pipeline", "--image", &repo, "--archway-image", &archway_image])
        .current_dir(root)
        .env_remove("ARCHWAY_REGISTRY_USERNAME")
        .env_remove("ARCHWAY_REGISTRY_PASSWORD")
        .output()
        .expect("scripts/gitlab-ci-local runs");
    let (stdout, stderr) = text(&out);
    let all = format!("--- stdout:\n{stdout}\n--- stderr:\n{stderr}");
    assert!(out.status.success(), "the pipeline failed:\n{all}");
    // gitlab-ci-local's summary: ` PASS  [ 6.92 s] archway`, one line per job.
    for job in ["archway", "verify"] {
        assert!(
            all.lines().any(|l| l.trim_start().starts_with("PASS") && l.trim_end().ends_with(job)),
            "{job} passed:\n{all}"
        );
    }
    assert!(all.contains("linux/arm64  emulated"), "the plan is in the job's log:\n{all}");

    // What the downstream job got from the dotenv report.
    let digest = downstream(&all, "ARCHWAY_RESULT_DIGEST");
    assert!(digest.starts_with("sha256:") && digest.len() == 71, "ARCHWAY_RESULT_DIGEST={digest}");
    assert_eq!(downstream(&all, "ARCHWAY_RESULT_IMAGE"), repo);
    assert_eq!(downstream(&all, "ARCHWAY_RESULT_IMAGE_REF"), format!("{repo}@{digest}"));
    assert_eq!(downstream(&all, "ARCHWAY_RESULT_PLATFORMS"), "linux/amd64,linux/arm64");
    let tags = downstream(&all, "ARCHWAY_RESULT_TAGS");
    assert!(tags.split(',').any(|t| t == format!("{repo}:main")), "the branch is a tag: {tags}");

    // The registry has that digest: an index of both platforms, and the branch tag on it.
    let (content_type, bytes) =
        manifest(&repo, &digest).unwrap_or_else(|| panic!("{repo}@{digest} is not in the registry"));
    assert_eq!(sha256(&bytes), digest);
    assert!(content_type.contains("index") || content_type.contains("manifest.list"), "{content_type}");
    let mut platforms = platforms_of(&json(&bytes));
    platforms.sort();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
    assert_eq!(tag_digest(&repo, "main").as_deref(), Some(digest.as_str()), "tag main");

    // The arm64 image really ran its RUN on arm64 (under QEMU).
    let arm = docker_run("linux/arm64", &format!("{repo}@{digest}"));
    assert!(arm.starts_with("built on aarch64"), "{arm}");

    // Whatever QEMU handler archway registered from the job is gone again.
    let leftover: Vec<_> = std::fs::read_dir("/proc/sys/fs/binfmt_misc")
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    assert!(!leftover.iter().any(|n| n.starts_with("archway-qemu-")), "left registered: {leftover:?}");
}
