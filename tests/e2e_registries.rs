//! Tags on two registries in one run: the lab registry and a second real registry behind
//! htpasswd (`support::auth_registry`), the credential for it given as `REGISTRY`/`USERNAME`/
//! `PASSWORD`. One build publishes the same index under both tags; when the second registry
//! refuses, no tag moves on either.

#![cfg(feature = "lab")]

mod support;

use std::process::Command;

use support::auth_registry::AuthRegistry;
use support::lab::*;

const USER: &str = "ci-bot";
const PASSWORD: &str = "s3cret-pa55";

/// `GET` of a manifest on the auth registry: (status, body).
fn auth_manifest(host: &str, path: &str, reference: &str, password: &str) -> (u16, Vec<u8>) {
    let out = Command::new("curl")
        .args(["-s", "-u", &format!("{USER}:{password}"), "-w", "\n%{http_code}"])
        .args(["-H", "Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json"])
        .arg(format!("http://{host}/v2/{path}/manifests/{reference}"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap(), body.as_bytes().to_vec())
}

fn prebuilt(nonce: &str) -> tempfile::TempDir {
    let ctx = context(&format!("FROM {}\nARG TARGETARCH\nCOPY app-$TARGETARCH /app\n", lab().base));
    for arch in ["amd64", "arm64"] {
        std::fs::write(ctx.path().join(format!("app-{arch}")), format!("{nonce} {arch}\n")).unwrap();
    }
    ctx
}

#[test]
fn one_build_publishes_to_two_registries_or_to_neither() {
    let second = AuthRegistry::start(USER, PASSWORD);
    let lab_repo = unique_repo("two-registries");
    let other_path = format!("acme/two-registries-{}", nonce());
    let other_repo = format!("{}/{other_path}", second.host);
    let ctx = prebuilt(&nonce());
    let args = ["build", ".", "--platform", "linux/amd64,linux/arm64", "-t", &format!("{lab_repo}:1"), "-t"];
    let other_tag = format!("{other_repo}:1");
    let run = |password: &str| {
        archway_env(
            ctx.path(),
            &[&args[..], &[other_tag.as_str(), "--push"]].concat(),
            &[
                ("ARCHWAY_REGISTRY", second.host.as_str()),
                ("ARCHWAY_REGISTRY_USERNAME", USER),
                ("ARCHWAY_REGISTRY_PASSWORD", password),
            ],
        )
    };

    // A wrong password for the second registry: refused before anything is published.
    let out = run("wrong");
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains(&second.host), "the error names the registry: {stderr}");
    assert!(!stderr.contains("wrong") || !stderr.contains("PASSWORD=wrong"), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(tag_digest(&lab_repo, "1").is_none(), "no tag moved on the first registry");
    assert_eq!(auth_manifest(&second.host, &other_path, "1", PASSWORD).0, 404, "nor on the second");

    // The right one: the same index under both tags, its images and blobs in both registries.
    let out = run(PASSWORD);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains(PASSWORD) && !stdout.contains(PASSWORD), "the password is never printed");
    let (_, lab_index) = manifest(&lab_repo, "1").expect("tagged on the lab registry");
    let (status, other_index) = auth_manifest(&second.host, &other_path, "1", PASSWORD);
    assert_eq!(status, 200, "tagged on the second registry: {stderr}");
    assert_eq!(lab_index, other_index, "the same index, byte for byte");
    assert_eq!(platforms_of(&json(&other_index)), ["linux/amd64", "linux/arm64"]);
    for (_, digest) in platform_manifests(&json(&other_index)) {
        let (status, m) = auth_manifest(&second.host, &other_path, &digest, PASSWORD);
        assert_eq!(status, 200, "{digest} is on the second registry");
        for layer in json(&m)["layers"].as_array().unwrap() {
            let d = layer["digest"].as_str().unwrap();
            let code = Command::new("curl")
                .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-I", "-u", &format!("{USER}:{PASSWORD}")])
                .arg(format!("http://{}/v2/{other_path}/blobs/{d}", second.host))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&code.stdout), "200", "blob {d} on the second registry");
        }
    }
    assert!(stderr.contains(&format!("copied into {other_repo}")), "the copy is reported: {stderr}");
}

/// The list a GitLab job gives in the masked variable `ARCHWAY_REGISTRY_AUTH`: the second
/// registry's credential, and nothing else.
fn registry_auth(host: &str, password: &str) -> String {
    format!("- registry: {host}\n  username: {USER}\n  password: \"{password}\"\n")
}

/// `build`, `merge` and `promote` in a GitLab job, the second registry's credential given only
/// in the `registry-auth` list (`ARCHWAY_REGISTRY_AUTH`): each reaches both registries, reading
/// from and writing to the second with the list's credential; with a wrong password in the list,
/// each fails naming the registry, and no tag moves on either registry.
#[test]
fn build_merge_and_promote_take_the_second_registrys_credential_from_the_list() {
    let second = AuthRegistry::start(USER, PASSWORD);
    let lab_repo = unique_repo("registry-auth");
    let other_path = format!("acme/registry-auth-{}", nonce());
    let other_repo = format!("{}/{other_path}", second.host);
    let ctx = prebuilt(&nonce());
    let run = |args: &[&str], password: &str| {
        let out = archway_env(
            ctx.path(),
            args,
            &[
                ("GITLAB_CI", "true"),
                ("CI_PROJECT_DIR", ctx.path().to_str().unwrap()),
                ("ARCHWAY_REGISTRY_AUTH", &registry_auth(&second.host, password)),
            ],
        );
        let (stdout, stderr) = text(&out);
        for secret in [PASSWORD, "wr0ng-pa55"] {
            assert!(!stdout.contains(secret) && !stderr.contains(secret), "a password was printed: {stderr}");
        }
        (out.status.success(), stderr)
    };
    let other = |reference: &str| auth_manifest(&second.host, &other_path, reference, PASSWORD);
    let build = ["build", ".", "--platform", "linux/amd64,linux/arm64", "--push"];
    let (lab_tag, other_tag) = (format!("{lab_repo}:1"), format!("{other_repo}:1"));
    let build = [&build[..], &["-t", &lab_tag, "-t", &other_tag]].concat();

    // build: a wrong password in the list stops it before anything is published.
    let (ok, stderr) = run(&build, "wr0ng-pa55");
    assert!(!ok && stderr.contains(&second.host), "the error names the registry: {stderr}");
    assert!(tag_digest(&lab_repo, "1").is_none(), "no tag moved on the lab registry");
    assert_eq!(other("1").0, 404, "nor on the second");
    let (ok, stderr) = run(&build, PASSWORD);
    assert!(ok, "{stderr}");
    let (_, lab_index) = manifest(&lab_repo, "1").expect("tagged on the lab registry");
    let (status, other_index) = other("1");
    assert_eq!((status, &other_index), (200, &lab_index), "the same index on both: {stderr}");
    let children: Vec<String> =
        platform_manifests(&json(&other_index)).into_iter().map(|(_, d)| format!("{other_repo}@{d}")).collect();

    // merge: the platform images on the second registry, under a new tag there.
    let merged = format!("{other_repo}:merged");
    let merge: Vec<&str> = ["merge", "-t", &merged].into_iter().chain(children.iter().map(String::as_str)).collect();
    let (ok, stderr) = run(&merge, "wr0ng-pa55");
    assert!(!ok && stderr.contains(&second.host), "{stderr}");
    assert_eq!(other("merged").0, 404, "a refused merge moves no tag");
    let (ok, stderr) = run(&merge, PASSWORD);
    assert!(ok, "{stderr}");
    assert_eq!(platforms_of(&json(&other("merged").1)), ["linux/amd64", "linux/arm64"]);

    // promote: from the second registry (read with the list's credential) to the lab registry,
    // and from the lab registry to the second (written with it).
    let (to_lab, to_other) = (format!("{lab_repo}:promoted"), format!("{other_repo}:promoted"));
    for (src, dst) in [(other_tag.as_str(), to_lab.as_str()), (lab_tag.as_str(), to_other.as_str())] {
        let (ok, stderr) = run(&["promote", src, dst], "wr0ng-pa55");
        assert!(!ok && stderr.contains(&second.host), "{src} → {dst}: {stderr}");
    }
    assert!(tag_digest(&lab_repo, "promoted").is_none(), "a refused promote moves no tag");
    assert_eq!(other("promoted").0, 404);
    for (src, dst) in [(other_tag.as_str(), to_lab.as_str()), (lab_tag.as_str(), to_other.as_str())] {
        let (ok, stderr) = run(&["promote", src, dst], PASSWORD);
        assert!(ok, "{src} → {dst}: {stderr}");
    }
    assert_eq!(manifest(&lab_repo, "promoted").unwrap().1, lab_index, "promoted to the lab registry");
    assert_eq!(other("promoted"), (200, lab_index), "promoted to the second registry");
}

/// buildx pulls a private base image from the second registry with the list's credential while
/// the image is pushed to the lab registry: the credential of a registry that is not the one
/// pushed to reaches buildx too (through archway's credential helper; no file holds it).
#[test]
fn buildx_pulls_a_private_base_from_another_registry_with_the_lists_credential() {
    let _machine = support::machine::lock();
    let second = AuthRegistry::start(USER, PASSWORD);
    let copy = Command::new("skopeo")
        .args(["copy", "--all", "--src-tls-verify=false", "--dest-tls-verify=false", "--dest-creds"])
        .arg(format!("{USER}:{PASSWORD}"))
        .arg(format!("docker://{}", lab().base))
        .arg(format!("docker://{}/private/base:1", second.host))
        .output()
        .unwrap();
    assert!(copy.status.success(), "{}", String::from_utf8_lossy(&copy.stderr));
    let ctx = context(&format!("FROM {}/private/base:1\nRUN echo {} > /built\n", second.host, nonce()));
    let repo = unique_repo("private-base");
    let args = ["build", ".", "--platform", "linux/amd64", "--prefer", "native", "-t", &format!("{repo}:1"), "--push"];
    let run = |password: &str| {
        let tmp = tempfile::tempdir().unwrap();
        let env = [
            ("GITLAB_CI", "true"),
            ("CI_PROJECT_DIR", ctx.path().to_str().unwrap()),
            ("ARCHWAY_REGISTRY_AUTH", &registry_auth(&second.host, password)),
            ("TMPDIR", tmp.path().to_str().unwrap()),
        ];
        let out = archway_env(ctx.path(), &args, &env);
        let (stdout, stderr) = text(&out);
        assert!(!format!("{stdout}{stderr}").contains(password), "the password was printed: {stderr}");
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0, "archway leaves nothing behind");
        (out.status.success(), stderr)
    };
    let (ok, stderr) = run("wr0ng-pa55");
    assert!(!ok, "a wrong password in the list cannot pull the base: {stderr}");
    assert!(tag_digest(&repo, "1").is_none(), "no tag moved");
    let (ok, stderr) = run(PASSWORD);
    assert!(ok, "buildx pulled the private base with the list's credential: {stderr}");
    assert!(stderr.contains("native"), "built by buildx, not assembled: {stderr}");
    assert!(tag_digest(&repo, "1").is_some());
}
