//! docker/build-push-action's default context on GitHub: with no checkout in the workspace and
//! no `context` input, archway builds the repository at the workflow's commit, fetched through
//! GitHub's REST API (`GITHUB_API_URL`, here a scripted server) with `github-token`. Lab-free:
//! the image is assembled (`FROM scratch`) into an OCI layout.

mod support;

use std::io::Read as _;
use std::path::Path;

use support::reqresp::{Server, Step};

const SHA: &str = "0123abc4567def890123abc4567def890123abcd";

/// GitHub's tarball of a commit: everything under one `OWNER-REPO-SHORTSHA/` folder.
fn tarball() -> Vec<u8> {
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
    for (path, body) in [
        ("acme-app-0123abc/Dockerfile", "FROM scratch\nCOPY hello.txt /hello.txt\n"),
        ("acme-app-0123abc/hello.txt", "from the commit\n"),
        ("acme-app-0123abc/docker/Dockerfile.alt", "FROM scratch\nCOPY hello.txt /alt.txt\n"),
    ] {
        let mut h = tar::Header::new_ustar();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, path, body.as_bytes()).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap()
}

fn github(workspace: &Path, api: &str, extra: &[(&str, &str)]) -> std::process::Output {
    let mut c = support::spawn::archway();
    c.args(["build"])
        .current_dir(workspace)
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_REPOSITORY", "acme/app")
        .env("GITHUB_SHA", SHA)
        .env("GITHUB_REF", "refs/heads/main")
        .env("GITHUB_WORKSPACE", workspace)
        .env("GITHUB_API_URL", api)
        .env("INPUT_GITHUB-TOKEN", "ghs_gitcontexttoken")
        .env("INPUT_PUSH", "false")
        .env("INPUT_PLATFORMS", "linux/amd64,linux/arm64")
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock");
    for (k, v) in extra {
        c.env(k, v);
    }
    c.output().unwrap()
}

/// Every layer of the layout under `dir`, gunzipped, as one text.
fn layers_text(dir: &Path) -> String {
    let mut out = String::new();
    for e in std::fs::read_dir(dir.join("blobs/sha256")).unwrap().flatten() {
        let bytes = std::fs::read(e.path()).unwrap();
        if bytes.starts_with(&[0x1f, 0x8b]) {
            let mut s = Vec::new();
            flate2::read::GzDecoder::new(&bytes[..]).read_to_end(&mut s).unwrap();
            out.push_str(&String::from_utf8_lossy(&s));
        }
    }
    out
}

#[test]
fn without_a_checkout_the_commit_is_fetched_and_built() {
    let server = Server::routes("127.0.0.1");
    server.script([Step::get(&format!("/repos/acme/app/tarball/{SHA}")).typed("application/x-gzip", tarball())]);
    let workspace = tempfile::tempdir().unwrap();
    let out = github(workspace.path(), &server.url(), &[]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("building the Git context acme/app@0123abc4567d, as docker/build-push-action does"),
        "{stderr}"
    );
    let text = layers_text(&workspace.path().join("archway-out"));
    assert!(text.contains("hello.txt") && text.contains("from the commit"), "the commit's file is in the image");
    let seen = server.finish();
    assert_eq!(seen.len(), 1, "{:?}", seen.iter().map(|s| s.line()).collect::<Vec<_>>());
    assert_eq!(seen[0].header("authorization"), Some("Bearer ghs_gitcontexttoken"));
    let printed = format!("{stdout}{stderr}");
    let leaks: Vec<&str> =
        printed.lines().filter(|l| l.contains("ghs_gitcontexttoken") && !l.starts_with("::add-mask::")).collect();
    assert!(leaks.is_empty(), "the token is only ever given to GitHub's masker: {leaks:?}");

    // `file` is inside the Git context, as with build-push-action.
    let server = Server::routes("127.0.0.1");
    server.script([Step::get(&format!("/repos/acme/app/tarball/{SHA}")).typed("application/x-gzip", tarball())]);
    let workspace = tempfile::tempdir().unwrap();
    let out = github(workspace.path(), &server.url(), &[("INPUT_FILE", "docker/Dockerfile.alt")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(layers_text(&workspace.path().join("archway-out")).contains("alt.txt"));
}

#[test]
fn a_checkout_is_built_as_it_is() {
    let server = Server::routes("127.0.0.1");
    let workspace = tempfile::tempdir().unwrap();
    std::fs::write(workspace.path().join("Dockerfile"), "FROM scratch\nCOPY local.txt /local.txt\n").unwrap();
    std::fs::write(workspace.path().join("local.txt"), "checked out\n").unwrap();
    let out = github(workspace.path(), &server.url(), &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(server.finish().is_empty(), "nothing fetched when the workspace has the Dockerfile");
    assert!(layers_text(&workspace.path().join("archway-out")).contains("checked out"));
}

#[test]
fn an_unreadable_repository_says_how_to_fix_it() {
    let server = Server::routes("127.0.0.1");
    server
        .script([Step::get(&format!("/repos/acme/app/tarball/{SHA}")).status(404).body("{\"message\":\"Not Found\"}")]);
    let workspace = tempfile::tempdir().unwrap();
    let out = github(workspace.path(), &server.url(), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("the Git context acme/app@0123abc4567d could not be fetched"), "{stderr}");
    assert!(stderr.contains("not found (a private repository needs a token that can read it)"), "{stderr}");
    assert!(stderr.contains("actions/checkout"), "{stderr}");
    assert!(!workspace.path().join("archway-out").exists(), "nothing written");
}
