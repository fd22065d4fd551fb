//! Fan out and merge: matrix legs push by digest from separate processes, `archway merge`
//! stitches them; a missing leg moves no tag unless `--allow-partial`; duplicate platforms are
//! refused. Checked through the registry API and skopeo.

#![cfg(feature = "lab")]

mod support;

use support::lab::*;

fn leg(ctx: &std::path::Path, repo: &str, platform: &str, digest_file: &std::path::Path) -> String {
    let out = archway(
        ctx,
        &[
            "build",
            ".",
            "--platform",
            platform,
            "--push-by-digest",
            "-t",
            repo,
            "--digest-file",
            digest_file.to_str().unwrap(),
            "--provenance",
            "mode=min",
        ],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "leg {platform}: {stderr}");
    let written = std::fs::read_to_string(digest_file).unwrap();
    assert_eq!(written.trim(), stdout.trim(), "the digest file holds what was printed");
    assert!(stdout.trim().starts_with(&format!("{repo}@sha256:")), "{stdout}");
    stdout.trim().to_string()
}

fn platforms(repo: &str, tag: &str) -> Vec<String> {
    platforms_of(&json(&manifest(repo, tag).expect("tag exists").1))
}

#[test]
fn legs_pushed_by_digest_merge_into_one_index() {
    let _machine = support::machine::lock();
    let repo = unique_repo("matrix");
    let ctx =
        context(&format!("ARG BASE={}\nFROM $BASE\nRUN uname -m > /arch\nCMD [\"cat\", \"/arch\"]\n", lab().base));
    let artifacts = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(artifacts.path().join("digest-amd64")).unwrap();
    std::fs::create_dir_all(artifacts.path().join("digest-arm64")).unwrap();
    let amd = leg(ctx.path(), &repo, "linux/amd64", &artifacts.path().join("digest-amd64/digest"));
    let arm = leg(ctx.path(), &repo, "linux/arm64", &artifacts.path().join("digest-arm64/digest"));
    assert_ne!(amd, arm);
    assert!(manifest(&repo, "latest").is_none(), "legs move no tag");

    // A leg is missing: no tag moves.
    let out = archway(
        ctx.path(),
        &[
            "merge",
            "-t",
            &format!("{repo}:1.0"),
            "--platform",
            "linux/amd64,linux/arm64",
            artifacts.path().join("digest-amd64").to_str().unwrap(),
        ],
    );
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("linux/arm64: no leg provided it"), "{stderr}");
    assert!(stderr.contains("no tag was moved"), "{stderr}");
    assert!(manifest(&repo, "1.0").is_none(), "the tag was not created");

    // A digest file that a failed leg never wrote: missing too.
    let out = archway(
        ctx.path(),
        &[
            "merge",
            "-t",
            &format!("{repo}:1.0"),
            artifacts.path().join("digest-amd64/digest").to_str().unwrap(),
            "does-not-exist/digest",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out).1);
    assert!(text(&out).1.contains("does-not-exist/digest: no such file or directory"));

    // Both legs, from the artifacts directory: one index, both platforms, attestations kept.
    let out = archway(
        ctx.path(),
        &[
            "merge",
            "-t",
            &format!("{repo}:1.0"),
            "-t",
            &format!("{repo}:latest"),
            artifacts.path().to_str().unwrap(),
            "--annotation",
            "index:org.opencontainers.image.version=1.0",
        ],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let mut got = platforms(&repo, "1.0");
    got.sort();
    assert_eq!(got, ["linux/amd64", "linux/arm64"]);
    let (_, bytes) = manifest(&repo, "1.0").unwrap();
    let index = json(&bytes);
    assert_eq!(index["annotations"]["org.opencontainers.image.version"], "1.0");
    assert_eq!(index["manifests"].as_array().unwrap().len(), 4, "two images, two attestations: {index:#}");
    assert_eq!(stdout.trim(), format!("{repo}@{}", sha256(&bytes)));
    assert_eq!(tag_digest(&repo, "latest").unwrap(), sha256(&bytes));
    let skopeo = std::process::Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false", &format!("docker://{repo}:1.0")])
        .output()
        .unwrap();
    assert_eq!(skopeo.stdout, bytes);
    assert_eq!(docker_run("linux/arm64", &format!("{repo}:1.0")), "aarch64");

    // The same platform twice is refused.
    let out = archway(
        ctx.path(),
        &["merge", "-t", &format!("{repo}:dup"), &amd, artifacts.path().join("digest-amd64/digest").to_str().unwrap()],
    );
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("linux/amd64 appears twice"), "{stderr}");

    // --allow-partial publishes what is there and says what is missing.
    let out = archway(
        ctx.path(),
        &["merge", "-t", &format!("{repo}:partial"), "--platform", "linux/amd64,linux/arm64", "--allow-partial", &amd],
    );
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("PARTIAL: published without linux/arm64"), "{stderr}");
    assert_eq!(platforms(&repo, "partial"), ["linux/amd64"]);
}
