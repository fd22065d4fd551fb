//! `archway build` end to end on the lab: real Docker engine and buildx, real QEMU, real
//! registry. Each test checks what a user would: the registry API, `skopeo`, `docker run`.

#![cfg(feature = "lab")]

mod support;

use support::lab::*;
use support::schema::{self, Kind};

/// A Dockerfile whose RUN executes on the target CPU (through QEMU when foreign) and records it.
fn uname_dockerfile() -> String {
    format!(
        "ARG BASE={}\nFROM $BASE\nARG NONCE\nRUN echo \"$NONCE\" > /nonce && uname -m > /arch\nCMD [\"cat\", \"/arch\"]\n",
        lab().base
    )
}

#[test]
fn pushes_a_multi_platform_index_that_runs_on_each_platform() {
    let _machine = support::machine::lock();
    let repo = unique_repo("hello");
    let tag = format!("{repo}:v1");
    let ctx = context(&uname_dockerfile());
    let meta = ctx.path().join("meta.json");
    let nonce = nonce();
    let out = archway(
        ctx.path(),
        &[
            "build",
            ".",
            "--provenance",
            "mode=min",
            "--platform",
            "linux/amd64,linux/aarch64,linux/arm/v7",
            "-t",
            &tag,
            "-t",
            &format!("{repo}:latest"),
            "--build-arg",
            &format!("NONCE={nonce}"),
            "--push",
            "--metadata-file",
            meta.to_str().unwrap(),
        ],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "archway failed:\n{stderr}");

    // The tag resolves to an index with exactly these platforms.
    let (ct, bytes) = manifest(&repo, "v1").expect("the tag exists");
    assert_eq!(ct, "application/vnd.oci.image.index.v1+json");
    let index = json(&bytes);
    schema::validate(Kind::Index, &index).unwrap_or_else(|e| panic!("index fails the OCI schema: {e:?}"));
    assert_eq!(platforms_of(&index), ["linux/amd64", "linux/arm64", "linux/arm/v7"]);
    // One provenance attestation per platform, kept as buildx made it and naming its image.
    let attestations: Vec<&serde_json::Value> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["annotations"]["vnd.docker.reference.type"] == "attestation-manifest")
        .collect();
    assert_eq!(attestations.len(), 3, "{index:#}");
    for (a, image) in attestations.iter().zip(&index["manifests"].as_array().unwrap()[..3]) {
        assert_eq!(a["annotations"]["vnd.docker.reference.digest"], image["digest"]);
        assert_eq!(a["platform"]["os"], "unknown");
    }
    assert_eq!(tag_digest(&repo, "latest").unwrap(), sha256(&bytes), "both tags name the same index");
    assert_eq!(stdout.trim(), format!("{repo}@{}", sha256(&bytes)), "stdout names the pushed index");

    // Each child is an image whose config says its platform.
    for m in index["manifests"].as_array().unwrap() {
        let digest = m["digest"].as_str().unwrap();
        let (_, child) = manifest(&repo, digest).expect("child pushed by digest");
        assert_eq!(sha256(&child), digest);
        let child = json(&child);
        schema::validate(Kind::Manifest, &child).unwrap_or_else(|e| panic!("manifest fails the OCI schema: {e:?}"));
        if m["annotations"]["vnd.docker.reference.type"].as_str() == Some("attestation-manifest") {
            let subject = m["annotations"]["vnd.docker.reference.digest"].as_str().unwrap();
            assert!(
                index["manifests"].as_array().unwrap().iter().any(|x| x["digest"] == subject),
                "attestation names an image in the index"
            );
            continue;
        }
        let config = json(&blob(&repo, child["config"]["digest"].as_str().unwrap()));
        assert_eq!(config["architecture"], m["platform"]["architecture"]);
        assert_eq!(config["os"], m["platform"]["os"]);
        assert_eq!(config["variant"].as_str(), m["platform"]["variant"].as_str());
    }

    // The RUN really ran on each CPU.
    assert_eq!(docker_run("linux/arm64", &tag), "aarch64");
    assert_eq!(docker_run("linux/arm/v7", &tag), "armv7l");
    assert_eq!(docker_run("linux/amd64", &tag), "x86_64");

    // The log names each platform's start and end, and the summary the index and tags. The
    // digest a platform's end names, and its summary row, are its image's in the index (not
    // that of the index around the image and its attestation that buildx exported).
    for (p, digest) in platform_manifests(&index) {
        assert!(stderr.contains(&format!("==> {p}: building ")), "{stderr}");
        assert!(stderr.contains(&format!("[{p}] ")), "buildx output is prefixed with {p}");
        let end = stderr.lines().find(|l| l.starts_with(&format!("==> {p}: done in "))).expect("an end line");
        assert!(end.ends_with(&format!(" → {digest}")), "{end}\nthe index has {digest} for {p}");
        let row = stderr.lines().find(|l| l.starts_with(&format!("{p} ")) && l.contains("sha256:")).expect("a row");
        assert!(row.contains(&digest), "{row}\nthe index has {digest} for {p}");
    }
    assert!(stderr.contains(&format!("tagged {tag}")), "{stderr}");

    // --metadata-file says the same.
    let m = json(&std::fs::read(&meta).unwrap());
    assert_eq!(m["digest"], sha256(&bytes));
    assert_eq!(m["platforms"].as_array().unwrap().len(), 3);
    assert_eq!(m["platforms"][1]["platform"], "linux/arm64");
    assert_eq!(m["platforms"][1]["digest"], index["manifests"][1]["digest"]);
}

#[test]
fn a_platform_that_fails_moves_no_tag() {
    let _machine = support::machine::lock();
    let repo = unique_repo("atomic");
    let good = context(&uname_dockerfile());
    let out = archway(
        good.path(),
        &["build", ".", "--platform", "linux/amd64,linux/arm64", "-t", &format!("{repo}:stable"), "--push"],
    );
    assert!(out.status.success(), "{}", text(&out).1);
    let before = tag_digest(&repo, "stable").unwrap();

    // Fails only where the CPU is aarch64.
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
            "linux/amd64,linux/arm64",
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
    assert!(error.contains("linux/arm64 at the build step"), "{error}");
    assert!(!error.contains("linux/amd64 at"), "amd64 did not fail: {error}");
    assert!(error.contains("no tag was moved"), "{error}");
    assert!(error.contains("arm64 is broken"), "the cause is repeated in the error: {error}");
    assert_eq!(tag_digest(&repo, "stable").unwrap(), before, "the tag still names the old image");
}

#[test]
fn without_push_writes_an_oci_layout_that_skopeo_reads() {
    let _machine = support::machine::lock();
    let ctx = context(&uname_dockerfile());
    let out = archway(
        ctx.path(),
        &["build", ".", "--platform", "linux/amd64,linux/arm64,linux/arm/v7", "-t", "example.com/app:1.0"],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let dir = ctx.path().join("archway-out");
    assert_eq!(stdout.trim(), "archway-out", "stdout names the layout written");

    let layout = json(&std::fs::read(dir.join("oci-layout")).unwrap());
    schema::validate(Kind::Layout, &layout).unwrap_or_else(|e| panic!("oci-layout: {e:?}"));
    let top = json(&std::fs::read(dir.join("index.json")).unwrap());
    schema::validate(Kind::Index, &top).unwrap_or_else(|e| panic!("index.json: {e:?}"));
    assert_eq!(top["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"], "1.0");

    let digest = top["manifests"][0]["digest"].as_str().unwrap();
    let index_bytes = std::fs::read(dir.join("blobs/sha256").join(&digest[7..])).unwrap();
    assert_eq!(sha256(&index_bytes), digest);
    let index = json(&index_bytes);
    schema::validate(Kind::Index, &index).unwrap_or_else(|e| panic!("image index: {e:?}"));
    assert_eq!(platforms_of(&index), ["linux/amd64", "linux/arm64", "linux/arm/v7"]);
    for m in index["manifests"].as_array().unwrap() {
        let d = m["digest"].as_str().unwrap();
        assert!(dir.join("blobs/sha256").join(&d[7..]).is_file(), "child {d} is in the layout");
    }

    let skopeo = std::process::Command::new("skopeo")
        .args(["inspect", "--raw", "oci:archway-out"])
        .current_dir(ctx.path())
        .output()
        .unwrap();
    assert!(skopeo.status.success(), "skopeo: {}", String::from_utf8_lossy(&skopeo.stderr));
    assert_eq!(skopeo.stdout, index_bytes, "skopeo reads archway's index");
    let arm = std::process::Command::new("skopeo")
        .args(["inspect", "--override-arch", "arm", "--override-variant", "v7", "oci:archway-out"])
        .current_dir(ctx.path())
        .output()
        .unwrap();
    assert!(arm.status.success(), "skopeo inspect arm/v7: {}", String::from_utf8_lossy(&arm.stderr));
    assert_eq!(json(&arm.stdout)["Architecture"], "arm");
    assert!(
        !dir.read_dir().unwrap().any(|e| e.unwrap().file_name().to_string_lossy().starts_with(".archway-staging")),
        "staging removed"
    );
}
