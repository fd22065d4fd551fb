//! `archway promote` and `archway inspect` against the lab registry, with the request-counting
//! proxy in front: within one repository a promote is one manifest GET and one PUT per tag and
//! moves no blob; across repositories it mounts blobs. `inspect` agrees with skopeo and buildx.

#![cfg(feature = "lab")]

mod support;

use support::lab::*;
use support::proxy::{Kind, Proxy};

/// A two-platform image with provenance attestations, built by archway; returns its repo path
/// (without registry) and the index bytes.
fn source_image() -> (String, Vec<u8>) {
    let repo = unique_repo("promote-src");
    let ctx = context(&format!("ARG BASE={}\nFROM $BASE\nRUN uname -m > /arch\n", lab().base));
    let out = archway(
        ctx.path(),
        &[
            "build",
            ".",
            "--platform",
            "linux/amd64,linux/arm64",
            "--provenance",
            "mode=min",
            "-t",
            &format!("{repo}:src"),
            "--push",
        ],
    );
    assert!(out.status.success(), "{}", text(&out).1);
    let (_, bytes) = manifest(&repo, "src").unwrap();
    let path = repo.split_once('/').unwrap().1.to_string();
    (path, bytes)
}

fn skopeo_raw(reference: &str) -> Vec<u8> {
    let out = std::process::Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false", &format!("docker://{reference}")])
        .output()
        .unwrap();
    assert!(out.status.success(), "skopeo {reference}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

#[test]
fn promote_within_a_repository_is_one_get_and_one_put_per_tag() {
    let _machine = support::machine::lock();
    let (path, bytes) = source_image();
    let proxy = Proxy::start(&lab().registry);
    let via = |tag: &str| format!("{}/{path}:{tag}", proxy.addr);
    let ctx = tempfile::tempdir().unwrap();
    let out = archway(ctx.path(), &["promote", &via("src"), &via("v1"), &via("stable")]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(proxy.count("GET", Kind::Manifest), 1, "{}", proxy.summary());
    assert_eq!(proxy.count("PUT", Kind::Manifest), 2, "{}", proxy.summary());
    let blob_requests = proxy.seen(|s| matches!(s.kind, Kind::Blob | Kind::Upload)).len();
    assert_eq!(blob_requests, 0, "no blob moved: {}", proxy.summary());
    let direct = format!("{}/{path}", lab().registry);
    assert_eq!(skopeo_raw(&format!("{direct}:v1")), bytes);
    assert_eq!(skopeo_raw(&format!("{direct}:stable")), bytes);
    assert!(stdout.trim().ends_with(&sha256(&bytes)), "{stdout}");
}

#[test]
fn promote_to_another_repository_mounts_blobs() {
    let _machine = support::machine::lock();
    let (path, bytes) = source_image();
    let proxy = Proxy::start(&lab().registry);
    let target = unique_repo("promote-dst");
    let target_path = target.split_once('/').unwrap().1;
    let ctx = tempfile::tempdir().unwrap();
    let out = archway(
        ctx.path(),
        &["promote", &format!("{}/{path}:src", proxy.addr), &format!("{}/{target_path}:release", proxy.addr)],
    );
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let mounts = proxy.seen(|s| s.method == "POST" && s.kind == Kind::Upload && s.query.contains("mount=")).len();
    let uploads = proxy.seen(|s| matches!(s.method.as_str(), "PUT" | "PATCH") && s.kind == Kind::Upload).len();
    assert!(mounts >= 2, "blobs were mounted: {}", proxy.summary());
    assert_eq!(uploads, 0, "no blob was uploaded: {}", proxy.summary());
    assert!(stderr.contains("blobs mounted"), "{stderr}");
    assert_eq!(skopeo_raw(&format!("{target}:release")), bytes, "the same index, by digest");
    for m in json(&bytes)["manifests"].as_array().unwrap() {
        let d = m["digest"].as_str().unwrap();
        assert!(manifest(&target, d).is_some(), "child {d} is in the new repository");
    }
}

/// Across registries (the proxy's address is another registry to archway, over the same
/// storage): every blob is downloaded and uploaded, streamed through a file, and the index
/// arrives byte for byte.
#[test]
fn promote_to_another_registry_streams_blobs() {
    let _machine = support::machine::lock();
    let (path, bytes) = source_image();
    let proxy = Proxy::start(&lab().registry);
    let target = unique_repo("promote-xreg");
    let target_path = target.split_once('/').unwrap().1;
    let ctx = tempfile::tempdir().unwrap();
    let out = archway(
        ctx.path(),
        &["promote", &format!("{}/{path}:src", lab().registry), &format!("{}/{target_path}:release", proxy.addr)],
    );
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let mounts = proxy.seen(|s| s.method == "POST" && s.kind == Kind::Upload && s.query.contains("mount=")).len();
    let uploaded = proxy.body_bytes("PUT", Kind::Upload) + proxy.body_bytes("PATCH", Kind::Upload);
    assert_eq!(mounts, 0, "no mount across registries: {}", proxy.summary());
    assert!(uploaded > 0, "blobs were uploaded: {}", proxy.summary());
    assert!(
        stderr.lines().any(|l| l.contains("copied into") && l.contains(" at ") && l.contains("/s)")),
        "the copy reports its bytes and rate: {stderr}"
    );
    assert_eq!(skopeo_raw(&format!("{target}:release")), bytes, "the same index, by digest");
}

#[test]
fn promote_a_subset_of_platforms_says_so() {
    let _machine = support::machine::lock();
    let (path, _) = source_image();
    let ctx = tempfile::tempdir().unwrap();
    let direct = format!("{}/{path}", lab().registry);
    let out = archway(
        ctx.path(),
        &["promote", "--platform", "linux/arm64", &format!("{direct}:src"), &format!("{direct}:arm-only")],
    );
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("keeping linux/arm64") && stderr.contains("dropping linux/amd64"), "{stderr}");
    let index = json(&manifest(&direct, "arm-only").unwrap().1);
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 2, "the arm64 image and its attestation: {index:#}");
    assert_eq!(manifests[0]["platform"]["architecture"], "arm64");
}

#[test]
fn inspect_agrees_with_skopeo_and_buildx() {
    let _machine = support::machine::lock();
    let (path, bytes) = source_image();
    let reference = format!("{}/{path}:src", lab().registry);
    let ctx = tempfile::tempdir().unwrap();
    let raw = archway(ctx.path(), &["inspect", "--raw", &reference]);
    assert!(raw.status.success(), "{}", text(&raw).1);
    assert_eq!(raw.stdout, bytes);
    assert_eq!(skopeo_raw(&reference), raw.stdout);
    let imagetools = std::process::Command::new("docker")
        .args(["buildx", "imagetools", "inspect", "--raw", &reference])
        .output()
        .unwrap();
    assert!(imagetools.status.success(), "{}", String::from_utf8_lossy(&imagetools.stderr));
    assert_eq!(String::from_utf8_lossy(&imagetools.stdout).trim(), String::from_utf8_lossy(&raw.stdout).trim());

    let out = archway(ctx.path(), &["inspect", "--format", "json", &reference]);
    assert!(out.status.success(), "{}", text(&out).1);
    let j = json(&out.stdout);
    let index = json(&bytes);
    assert_eq!(j["digest"], sha256(&bytes));
    assert_eq!(j["media_type"], index["mediaType"]);
    let platforms = j["platforms"].as_array().unwrap();
    assert_eq!(platforms.len(), 2);
    for p in platforms {
        let entry =
            index["manifests"].as_array().unwrap().iter().find(|m| m["digest"] == p["digest"]).expect("in the index");
        assert_eq!(p["platform"], format!("linux/{}", entry["platform"]["architecture"].as_str().unwrap()));
        let att = &p["attestations"][0];
        let att_entry = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["digest"] == att["digest"])
            .expect("attestation in the index");
        assert_eq!(
            att_entry["annotations"]["vnd.docker.reference.digest"], p["digest"],
            "linked to the image it describes"
        );
        assert!(att["predicate_types"][0].as_str().unwrap().contains("slsa.dev/provenance"), "{att}");
        assert!(p["image_size"].as_u64().unwrap() > 100_000);
    }
}

/// Puts `bytes` (an OCI index) into `repo` by digest with curl; returns its digest.
fn put_index(repo: &str, bytes: &[u8]) -> String {
    let digest = sha256(bytes);
    let (registry, path) = repo.split_once('/').unwrap();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), bytes).unwrap();
    let out = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT"])
        .args(["-H", "Content-Type: application/vnd.oci.image.index.v1+json", "--data-binary"])
        .arg(format!("@{}", file.path().display()))
        .arg(format!("http://{registry}/v2/{path}/manifests/{digest}"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "201", "PUT index {digest}");
    digest
}

/// A source whose indexes name the same manifests over and over (a hostile or odd registry):
/// each manifest is read and copied once, not once per mention.
#[test]
fn promote_copies_each_manifest_once_however_often_it_is_named() {
    let _machine = support::machine::lock();
    let (path, bytes) = source_image();
    let direct = format!("{}/{path}", lab().registry);
    let child = json(&bytes)["manifests"][0].clone();
    let inner = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [child.clone(), child.clone(), child],
    });
    let inner_bytes = serde_json::to_vec(&inner).unwrap();
    let inner_digest = put_index(&direct, &inner_bytes);
    let entry = serde_json::json!({
        "mediaType": "application/vnd.oci.image.index.v1+json", "digest": inner_digest, "size": inner_bytes.len(),
    });
    let outer = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [entry.clone(), entry.clone(), entry.clone(), entry],
    });
    let outer_digest = put_index(&direct, &serde_json::to_vec(&outer).unwrap());
    let proxy = Proxy::start(&lab().registry);
    let target = unique_repo("promote-repeated");
    let target_path = target.split_once('/').unwrap().1;
    let ctx = tempfile::tempdir().unwrap();
    let out = archway(
        ctx.path(),
        &["promote", &format!("{}/{path}@{outer_digest}", proxy.addr), &format!("{}/{target_path}:x", proxy.addr)],
    );
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let reads = proxy.seen(|s| s.method == "GET" && s.path.ends_with(&inner_digest)).len();
    assert_eq!(reads, 1, "the inner index is read once: {}", proxy.summary());
    assert!(manifest(&target, &inner_digest).is_some(), "and copied");
}
