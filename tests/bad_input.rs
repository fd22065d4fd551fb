//! Bad input and unreachable registries: a clear message, the right exit code, and nothing
//! built or written. These need the lab registry only to prove nothing reached it.

#![cfg(feature = "lab")]

mod support;

use support::lab::*;

fn run_bad(args: &[&str]) -> (i32, String) {
    let ctx = context("FROM scratch\n");
    let mut full = vec!["build"];
    full.extend_from_slice(args);
    let out = archway(ctx.path(), &full);
    let (stdout, stderr) = text(&out);
    assert!(stdout.is_empty(), "nothing on stdout for a failure: {stdout}");
    (out.status.code().unwrap(), stderr)
}

#[test]
fn unknown_platform_is_exit_2_with_the_known_list() {
    let repo = unique_repo("bad-platform");
    let (code, err) = run_bad(&[".", "--platform", "linux/amd64,linux/sparc64", "-t", &format!("{repo}:x"), "--push"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.starts_with(
            "error: `--platform` has a platform archway does not know\n  Caused by: platform `linux/sparc64` has unknown architecture `sparc64`"
        ),
        "{err}"
    );
    assert!(err.contains("known: amd64, arm64, arm, 386"), "{err}");
    // The contract: the error once, a blank line, the hint, nothing after it.
    assert_eq!(err.matches("has unknown architecture `sparc64`").count(), 1, "printed once: {err}");
    let (_, hint) = err.split_once("\n\nhint: ").unwrap_or_else(|| panic!("a blank line before the hint: {err}"));
    assert_eq!(hint.lines().count(), 1, "nothing after the hint: {err}");
    assert!(!catalog().iter().any(|r| repo.ends_with(r.as_str())), "nothing was pushed");
}

#[test]
fn missing_dockerfile_is_exit_2() {
    let (code, err) = run_bad(&[".", "-f", "nope/Dockerfile.prod", "--platform", "linux/amd64"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("Dockerfile `nope/Dockerfile.prod` does not exist"), "{err}");
    let (code, err) = run_bad(&["no-such-dir"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("build context `no-such-dir` is not a directory"), "{err}");
}

#[test]
fn malformed_tag_is_exit_2_and_pushes_nothing() {
    let before = catalog();
    for bad in ["127.0.0.1:5000/Upper/Case:1", "127.0.0.1:5000/app:-bad", "https://127.0.0.1:5000/app:1"] {
        let (code, err) = run_bad(&[".", "--platform", "linux/amd64", "-t", bad, "--push"]);
        assert_eq!(code, 2, "{bad}: {err}");
        assert!(err.contains(&format!("`{bad}` is not a valid image reference")), "{err}");
    }
    let (code, err) = run_bad(&[".", "--platform", "linux/amd64", "--push"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("`--push` needs an image"), "{err}");
    // A matrix leg pushes by digest to one repository (a build's tags may name several).
    let (code, err) = run_bad(&[
        ".",
        "--platform",
        "linux/amd64",
        "-t",
        "127.0.0.1:5000/a:1",
        "-t",
        "127.0.0.1:5000/b:1",
        "--push-by-digest",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("two repositories"), "{err}");
    assert_eq!(catalog(), before, "nothing was pushed");
}

#[test]
fn unreachable_registry_fails_before_any_build() {
    // A loopback port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (code, err) =
        run_bad(&[".", "--platform", "linux/amd64,linux/arm64", "-t", &format!("127.0.0.1:{port}/app:1"), "--push"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&format!("cannot push to `127.0.0.1:{port}/app`; nothing was built")), "{err}");
    assert!(err.contains(&format!("cannot reach registry `127.0.0.1:{port}`")), "{err}");
    assert!(!err.contains("building with"), "no build started: {err}");
}

#[test]
fn refuses_to_write_into_a_directory_that_is_not_a_layout() {
    let ctx = context("FROM scratch\n");
    std::fs::create_dir(ctx.path().join("out")).unwrap();
    std::fs::write(ctx.path().join("out/precious.txt"), "keep me").unwrap();
    let out = archway(ctx.path(), &["build", ".", "--platform", "linux/amd64", "--output", "out"]);
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("is not an OCI image layout"), "{err}");
    assert_eq!(std::fs::read_to_string(ctx.path().join("out/precious.txt")).unwrap(), "keep me");
}

#[test]
fn rejected_credentials_fail_before_any_build_and_never_print_the_password() {
    let reg = support::auth_registry::AuthRegistry::start("ci-bot", "correct-horse");
    let ctx = context("FROM scratch\nCOPY Dockerfile /\n");
    let tag = format!("{}/team/app:1", reg.host);
    let wrong = [("ARCHWAY_REGISTRY_USERNAME", "ci-bot"), ("ARCHWAY_REGISTRY_PASSWORD", "wrong-battery-staple")];
    let out = archway_env(ctx.path(), &["build", ".", "--platform", "linux/amd64", "-t", &tag, "--push"], &wrong);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("cannot push to `{}/team/app`", reg.host)), "{stderr}");
    assert!(stderr.contains(&format!("registry `{}` rejected the credentials", reg.host)), "{stderr}");
    assert!(stderr.contains("hint: log in with `docker login"), "{stderr}");
    assert!(!stderr.contains("building with"), "no build started: {stderr}");
    assert!(!format!("{stdout}{stderr}").contains("wrong-battery-staple"), "the password never appears");

    // No credentials at all: the same clear refusal.
    let out = archway_env(
        ctx.path(),
        &["build", ".", "--platform", "linux/amd64", "-t", &tag, "--push"],
        &[("DOCKER_CONFIG", "/nonexistent")],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out).1);

    // The right ones push, and the secret is still nowhere in the output.
    let right = [("ARCHWAY_REGISTRY_USERNAME", "ci-bot"), ("ARCHWAY_REGISTRY_PASSWORD", "correct-horse")];
    let out =
        archway_env(ctx.path(), &["build", ".", "--platform", "linux/amd64,linux/arm64", "-t", &tag, "--push"], &right);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(!format!("{stdout}{stderr}").contains("correct-horse"), "the password never appears");
    let check = std::process::Command::new("curl")
        .args(["-fsS", "-u", "ci-bot:correct-horse", "-H", "Accept: application/vnd.oci.image.index.v1+json"])
        .arg(format!("http://{}/v2/team/app/manifests/1", reg.host))
        .output()
        .unwrap();
    assert!(check.status.success());
    assert_eq!(json(&check.stdout)["manifests"].as_array().unwrap().len(), 2);
}

#[test]
fn a_private_base_image_is_pulled_with_archways_credential_and_no_file_holds_it() {
    let _machine = support::machine::lock();
    let reg = support::auth_registry::AuthRegistry::start("ci-bot", "base-secret-123");
    // The lab's base image, copied into the private registry.
    let copy = std::process::Command::new("skopeo")
        .args([
            "copy",
            "--all",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--dest-creds",
            "ci-bot:base-secret-123",
        ])
        .arg(format!("docker://{}", lab().base))
        .arg(format!("docker://{}/private/base:1", reg.host))
        .output()
        .unwrap();
    assert!(copy.status.success(), "{}", String::from_utf8_lossy(&copy.stderr));
    let ctx = context(&format!("FROM {}/private/base:1\nRUN uname -m > /arch\n", reg.host));
    let tmp = tempfile::tempdir().unwrap();
    let env = [
        ("ARCHWAY_REGISTRY_USERNAME", "ci-bot"),
        ("ARCHWAY_REGISTRY_PASSWORD", "base-secret-123"),
        ("TMPDIR", tmp.path().to_str().unwrap()),
    ];
    let tag = format!("{}/team/app:2", reg.host);
    let out = archway_env(ctx.path(), &["build", ".", "--platform", "linux/amd64", "-t", &tag, "--push"], &env);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "buildx pulled the private base with archway's credential: {stderr}");
    assert!(!format!("{stdout}{stderr}").contains("base-secret-123"));
    // Nothing archway left in its temporary directory holds the secret (it leaves nothing).
    let mut stack = vec![tmp.path().to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                assert!(!bytes.windows(15).any(|w| w == b"base-secret-123"), "{} holds the secret", p.display());
            }
        }
    }
}
