//! archway against a hostile registry (issue 12): a loopback server (`support::reqresp`'s route
//! table) that lies about digests, serves bytes that do not match them, sends 100 MiB
//! manifests and 50 MiB tokens, redirects in circles, trickles, cuts bodies short and points
//! its token realm at another host over plain HTTP. Each case runs the real `archway` binary
//! (`promote`, `merge`, `inspect`, `build --push` of an assembled image) under
//! `/usr/bin/time -v` and checks what a user would: a non-zero exit with an error that names
//! the registry and what was wrong, within a bound; a peak RSS well under any huge body; no
//! credential sent where it must not go; and no tag moved, on the lab registry or the hostile
//! one.
//!
//! Each test prints one `| scenario | exit | error | time | RSS |` row (`--nocapture`).

#![cfg(feature = "lab")]

mod support;

use std::time::{Duration, Instant};

use support::lab::{lab, sha256, tag_digest, unique_repo};
use support::reqresp::{Seen, Server, Step};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// A digest nothing has.
const BOGUS: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
/// What `/usr/bin/time` reports for a small archway run is ~15–25 MiB; bodies here are 50 and
/// 100 MiB.
const RSS_BOUND_KIB: u64 = 64 << 10;

/// One archway run.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    took: Duration,
    max_rss_kib: u64,
}

impl Run {
    /// The error archway printed: its `error:` line and the causes under it, on one line; for
    /// a failed platform, the platform's own error line too.
    fn error_line(&self) -> String {
        let mut lines = self.stderr.lines().skip_while(|l| !l.starts_with("error"));
        let first = lines.next().unwrap_or_default().to_string();
        let mut line = lines.take_while(|l| l.starts_with("  ")).fold(first, |acc, l| format!("{acc} / {}", l.trim()));
        if let Some(platform) = self.stderr.lines().find(|l| l.starts_with("linux/") && l.contains("): ")) {
            line = format!("{line} / {platform}");
        }
        line
    }

    /// Fails unless archway exited non-zero within `bound` and its stderr holds every `needle`;
    /// prints the row of the report table.
    fn failed_with(&self, scenario: &str, bound: Duration, needles: &[&str]) {
        eprintln!(
            "| {scenario} | {} | `{}` | {:.1} s | {} MiB |",
            self.code.map_or("signal".into(), |c| c.to_string()),
            self.error_line(),
            self.took.as_secs_f64(),
            self.max_rss_kib >> 10
        );
        assert!(self.code.is_some_and(|c| c != 0), "{scenario}: archway succeeded:\n{}{}", self.stdout, self.stderr);
        for n in needles {
            assert!(self.stderr.contains(n), "{scenario}: stderr lacks {n:?}:\n{}", self.stderr);
        }
        assert!(self.took < bound, "{scenario}: took {:?}, over {bound:?}", self.took);
        assert!(
            self.max_rss_kib > 0 && self.max_rss_kib < RSS_BOUND_KIB,
            "{scenario}: peak RSS {} KiB",
            self.max_rss_kib
        );
        assert!(!self.stderr.contains("panicked"), "{scenario}: {}", self.stderr);
    }
}

/// Runs archway in a fresh directory under `/usr/bin/time -v`, with the lab's variables, a
/// Docker config directory of its own (no credentials unless `config_json`) and `env`.
fn run(args: &[&str], config_json: Option<&str>, env: &[(&str, &str)]) -> Run {
    let cwd = tempfile::tempdir().unwrap();
    let docker_config = tempfile::tempdir().unwrap();
    if let Some(c) = config_json {
        std::fs::write(docker_config.path().join("config.json"), c).unwrap();
    }
    let report = cwd.path().join("time.txt");
    let mut c = support::spawn::clean("/usr/bin/time");
    support::spawn::pass_lab_env(&mut c)
        .env("DOCKER_CONFIG", docker_config.path())
        .arg("-v")
        .arg("-o")
        .arg(&report)
        .arg(support::spawn::ARCHWAY)
        .args(args)
        .current_dir(cwd.path());
    for (k, v) in env {
        c.env(k, v);
    }
    let began = Instant::now();
    let out = c.output().expect("/usr/bin/time runs archway");
    let took = began.elapsed();
    let time = std::fs::read_to_string(&report).unwrap_or_default();
    let max_rss_kib = time
        .lines()
        .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes):"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    // `/usr/bin/time` exits with the command's code.
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        took,
        max_rss_kib,
    }
}

/// A small single-platform image: its config, one layer, its manifest, and their digests.
struct Image {
    config: Vec<u8>,
    layer: Vec<u8>,
    manifest: Vec<u8>,
}

impl Image {
    fn new(note: &str) -> Image {
        let layer = format!("not really a tar: {note}").into_bytes();
        let config = serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {"Env": [format!("NOTE={note}")]},
            "rootfs": {"type": "layers", "diff_ids": [sha256(&layer)]},
        })
        .to_string()
        .into_bytes();
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha256(&config), "size": config.len()},
            "layers": [{"mediaType": OCI_LAYER, "digest": sha256(&layer), "size": layer.len()}],
        })
        .to_string()
        .into_bytes();
        Image { config, layer, manifest }
    }

    fn digest(&self) -> String {
        sha256(&self.manifest)
    }

    fn config_digest(&self) -> String {
        sha256(&self.config)
    }

    /// The routes that serve it honestly from `repo` under `tag` and by digest.
    fn routes(&self, repo: &str, tag: &str) -> Vec<Step> {
        let manifest = |sel: &str| {
            Step::get(&format!("/v2/{repo}/manifests/{sel}"))
                .typed(OCI_MANIFEST, self.manifest.clone())
                .header("Docker-Content-Digest", self.digest())
        };
        let blob = |b: &[u8]| {
            Step::get(&format!("/v2/{repo}/blobs/{}", sha256(b)))
                .typed("application/octet-stream", b.to_vec())
                .header("Docker-Content-Digest", sha256(b))
        };
        vec![manifest(tag), manifest(&self.digest()), blob(&self.config), blob(&self.layer)]
    }
}

/// An index of one `linux/amd64` entry `child` of `media_type`.
fn index_of(child: &[u8], media_type: &str) -> Vec<u8> {
    serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{
            "mediaType": media_type,
            "digest": sha256(child),
            "size": child.len(),
            "platform": {"architecture": "amd64", "os": "linux"},
        }],
    })
    .to_string()
    .into_bytes()
}

/// A tag on the lab registry holding the lab's base image, as a promote's destination whose
/// digest must not change. Returns (`REGISTRY/REPO:TAG`, `REGISTRY/REPO`, its digest).
fn lab_destination(prefix: &str) -> (String, String, String) {
    let repo = unique_repo(prefix);
    let dst = format!("{repo}:live");
    let setup = run(&["promote", &lab().base, &dst], None, &[]);
    assert_eq!(setup.code, Some(0), "setting up {dst}: {}", setup.stderr);
    let digest = tag_digest(&repo, "live").expect("the destination tag exists");
    (dst, repo, digest)
}

/// The manifest PUTs a server saw: a tag or an index that moved there.
fn manifest_puts(seen: &[Seen]) -> Vec<String> {
    seen.iter().filter(|s| s.method == "PUT" && s.path().contains("/manifests/")).map(Seen::line).collect()
}

/// Promotes `HOSTILE/acme/app:1` to a lab tag; the lab tag must keep its digest.
fn promote_from(server: &Server, scenario: &str, bound: Duration, needles: &[&str]) -> Run {
    let (dst, repo, before) = lab_destination("hostile");
    let r = run(&["promote", &format!("{}/acme/app:1", server.host()), &dst], None, &[]);
    r.failed_with(scenario, bound, needles);
    assert_eq!(tag_digest(&repo, "live").as_deref(), Some(before.as_str()), "{scenario}: the lab tag moved");
    r
}

#[test]
fn wrong_docker_content_digest_on_a_manifest_get() {
    let img = Image::new("wrong header");
    let server = Server::routes("127.0.0.1");
    server.script([Step::get("/v2/acme/app/manifests/1")
        .typed(OCI_MANIFEST, img.manifest.clone())
        .header("Docker-Content-Digest", BOGUS)]);
    server.script(img.routes("acme/app", "1"));
    promote_from(
        &server,
        "1a wrong Docker-Content-Digest on manifest GET",
        Duration::from_secs(30),
        &[&server.host(), BOGUS, &img.digest()],
    );
    server.finish();
}

#[test]
fn wrong_docker_content_digest_on_a_blob_upload() {
    let server = Server::routes("127.0.0.1");
    server.script([
        Step::new("HEAD", "/v2/acme/dst/blobs/*").status(404),
        Step::new("POST", "/v2/acme/dst/blobs/uploads/").status(202).header("Location", "/upload/1"),
        Step::new("PUT", "/upload/1").status(201).header("Docker-Content-Digest", BOGUS),
        Step::new("PATCH", "/upload/1").status(202).header("Location", "/upload/1"),
        Step::new("DELETE", "/upload/1").status(204),
        Step::get("/v2/acme/dst/manifests/*").status(404),
        Step::new("HEAD", "/v2/acme/dst/manifests/*").status(404),
        Step::new("PUT", "/v2/acme/dst/manifests/*").status(201),
    ]);
    let ctx = support::lab::context(&format!("FROM {}\nCOPY hello /hello\n", lab().base));
    std::fs::write(ctx.path().join("hello"), "hello\n").unwrap();
    let tag = format!("{}/acme/dst:1", server.host());
    let r = run(&["build", ctx.path().to_str().unwrap(), "--platform", "linux/amd64", "-t", &tag, "--push"], None, &[]);
    r.failed_with(
        "1b wrong Docker-Content-Digest on blob upload 201",
        Duration::from_secs(120),
        &[&server.host(), BOGUS, "Docker-Content-Digest"],
    );
    let seen = server.finish();
    assert!(seen.iter().any(|s| s.line() == "PUT /upload/1"), "a blob was uploaded");
    assert_eq!(manifest_puts(&seen), Vec::<String>::new(), "no manifest or tag was written");
}

#[test]
fn a_blob_whose_bytes_do_not_match_its_digest() {
    let img = Image::new("bad blob");
    let server = Server::routes("127.0.0.1");
    server.script([Step::get(&format!("/v2/acme/app/blobs/{}", img.config_digest()))
        .typed("application/octet-stream", b"{\"tampered\":true}".to_vec())]);
    server.script(img.routes("acme/app", "1"));
    promote_from(
        &server,
        "2a blob bytes ≠ digest (promote)",
        Duration::from_secs(30),
        &[&server.host(), &img.config_digest()],
    );
    // `inspect` reads the config whole.
    let r = run(&["inspect", &format!("{}/acme/app:1", server.host())], None, &[]);
    r.failed_with("2a blob bytes ≠ digest (inspect)", Duration::from_secs(30), &[&server.host(), &img.config_digest()]);
    server.finish();
}

/// A layer whose body runs past its descriptor's size (here 1 GiB for a few bytes, generated
/// while sent): refused as soon as it passes the size, not after filling the disk.
#[test]
fn a_blob_longer_than_its_descriptor() {
    let img = Image::new("endless layer");
    let server = Server::routes("127.0.0.1");
    server.script([Step::get(&format!("/v2/acme/app/blobs/{}", sha256(&img.layer))).generated_body(
        b"",
        b'x',
        1 << 30,
        b"",
    )]);
    server.script(img.routes("acme/app", "1"));
    promote_from(
        &server,
        "2c blob longer than its descriptor (promote)",
        Duration::from_secs(30),
        &[&server.host(), "larger than the", "bytes its descriptor says"],
    );
    server.finish();
}

#[test]
fn a_manifest_whose_bytes_do_not_match_the_digest_asked_for() {
    let (img, other) = (Image::new("asked for"), Image::new("served instead"));
    let server = Server::routes("127.0.0.1");
    server.script([
        Step::new("POST", "/v2/acme/app/blobs/uploads/").status(202).header("Location", "/upload/1"),
        Step::new("DELETE", "/upload/1").status(204),
        Step::get(&format!("/v2/acme/app/manifests/{}", img.digest()))
            .typed(OCI_MANIFEST, other.manifest.clone())
            .header("Docker-Content-Digest", img.digest()),
        Step::new("PUT", "/v2/acme/app/manifests/*").status(201),
    ]);
    let leg = format!("{}/acme/app@{}", server.host(), img.digest());
    let tag = format!("{}/acme/app:merged", server.host());
    let r = run(&["merge", "--platform", "linux/amd64", "-t", &tag, &leg], None, &[]);
    r.failed_with(
        "2b manifest bytes ≠ digest asked (merge)",
        Duration::from_secs(30),
        &[&server.host(), &img.digest(), &other.digest()],
    );
    assert_eq!(manifest_puts(&server.finish()), Vec::<String>::new(), "no tag moved on the hostile registry");
}

/// `inspect` of a 100 MiB manifest, with and without `Content-Length`.
#[test]
fn a_100_mib_manifest_is_refused_at_the_limit() {
    for (scenario, framed) in [("3 100 MiB manifest (Content-Length)", true), ("3 100 MiB manifest (unframed)", false)]
    {
        let server = Server::routes("127.0.0.1");
        let mut step = Step::get("/v2/acme/app/manifests/1").header("Content-Type", OCI_MANIFEST).generated_body(
            br#"{"schemaVersion":2,"annotations":{"x":""#,
            b'a',
            100 << 20,
            br#""}}"#,
        );
        if !framed {
            step = step.without_length();
        }
        server.script([step]);
        let r = run(&["inspect", &format!("{}/acme/app:1", server.host())], None, &[]);
        r.failed_with(scenario, Duration::from_secs(30), &[&server.host(), "larger than 4 MiB"]);
        assert_eq!(server.finish().len(), 1, "{scenario}: asked once, not again");
    }
}

#[test]
fn an_index_where_an_image_manifest_was_asked_for() {
    // The top index names an image manifest, and that digest is an index (of itself-like
    // content): promote must not copy it as what it is not.
    let img = Image::new("nested");
    let inner = index_of(&img.manifest, OCI_MANIFEST);
    let top = index_of(&inner, OCI_MANIFEST);
    let server = Server::routes("127.0.0.1");
    let serve = |sel: String, bytes: &[u8], ct: &str| {
        Step::get(&format!("/v2/acme/app/manifests/{sel}"))
            .typed(ct, bytes.to_vec())
            .header("Docker-Content-Digest", sha256(bytes))
    };
    server.script([
        serve("1".into(), &top, OCI_INDEX),
        serve(sha256(&top), &top, OCI_INDEX),
        serve(sha256(&inner), &inner, OCI_INDEX),
    ]);
    server.script(img.routes("acme/app", "img"));
    promote_from(
        &server,
        "4 index where image manifest expected (promote)",
        Duration::from_secs(30),
        &[&sha256(&inner), "an index", "image manifest"],
    );

    // An assembled build, with no engine to fall back on, whose base names an index for
    // linux/amd64.
    let ctx = support::lab::context(&format!("FROM {}/acme/app:1\nCOPY hello /hello\n", server.host()));
    std::fs::write(ctx.path().join("hello"), "hello\n").unwrap();
    let no_path = tempfile::tempdir().unwrap();
    let r = run(
        &["build", ctx.path().to_str().unwrap(), "--platform", "linux/amd64"],
        None,
        &[("PATH", no_path.path().to_str().unwrap()), ("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
    );
    r.failed_with(
        "4 index where image manifest expected (build base)",
        Duration::from_secs(60),
        &[&server.host(), "is an index, not an image manifest"],
    );

    // And the other way round: a tag whose descriptor in an index says "index" but holds an
    // image manifest.
    let server = Server::routes("127.0.0.1");
    let top = index_of(&img.manifest, OCI_INDEX);
    server.script([serve("1".into(), &top, OCI_INDEX), serve(sha256(&top), &top, OCI_INDEX)]);
    server.script(img.routes("acme/app", "img"));
    promote_from(
        &server,
        "4 image manifest where index expected (promote)",
        Duration::from_secs(30),
        &[&img.digest(), "an image manifest", "index"],
    );
}

#[test]
fn a_redirect_loop_on_a_blob() {
    let img = Image::new("redirects");
    let config_path = format!("/v2/acme/app/blobs/{}", img.config_digest());
    let server = Server::routes("127.0.0.1");
    server.script([Step::get(&config_path).status(307).header("Location", config_path.clone())]);
    server.script(img.routes("acme/app", "1"));
    promote_from(&server, "5 blob GET 307 → itself", Duration::from_secs(30), &[&server.host(), "redirect"]);

    // A → B → A, B on another loopback address.
    let (a, b) = (Server::routes("127.0.0.1"), Server::routes("127.0.0.2"));
    a.script([Step::get(&config_path).status(307).header("Location", format!("{}/storage/x", b.url()))]);
    a.script(img.routes("acme/app", "1"));
    b.script([Step::get("/storage/x").status(307).header("Location", format!("{}{config_path}", a.url()))]);
    let r = run(&["inspect", &format!("{}/acme/app:1", a.host())], None, &[]);
    r.failed_with("5 blob GET A → B → A", Duration::from_secs(30), &[&a.host(), "redirect"]);
    a.finish();
    b.finish();
}

#[test]
fn a_body_that_trickles_one_byte_per_second() {
    let img = Image::new("trickle");
    let server = Server::routes("127.0.0.1");
    server.script([Step::get("/v2/acme/app/manifests/1")
        .typed(OCI_MANIFEST, img.manifest.clone())
        .trickle(Duration::from_secs(1))]);
    let r = run(&["inspect", &format!("{}/acme/app:1", server.host())], None, &[]);
    r.failed_with("6 manifest trickles 1 B/s", Duration::from_secs(45), &[&server.host(), "30 s"]);
    server.finish();
}

#[test]
fn a_truncated_body_with_a_correct_content_length() {
    let img = Image::new("truncated");
    let server = Server::routes("127.0.0.1");
    server.script([Step::get("/v2/acme/app/manifests/1")
        .typed(OCI_MANIFEST, img.manifest.clone())
        .cut_body_after(img.manifest.len() / 2)]);
    let r = run(&["inspect", &format!("{}/acme/app:1", server.host())], None, &[]);
    r.failed_with(
        "7 truncated manifest",
        Duration::from_secs(40),
        &[&server.host(), "GET manifest", "200 OK (its body broke off"],
    );
    server.finish();

    let server = Server::routes("127.0.0.1");
    server.script([Step::get(&format!("/v2/acme/app/blobs/{}", img.config_digest()))
        .body(img.config.clone())
        .cut_body_after(10)]);
    server.script(img.routes("acme/app", "1"));
    promote_from(
        &server,
        "7 truncated blob (promote)",
        Duration::from_secs(40),
        &[&server.host(), &img.config_digest()],
    );
    server.finish();
}

fn bearer_challenge(_registry: &Server, realm: &str) -> Step {
    Step::get("/v2/acme/app/manifests/1")
        .status(401)
        .header("WWW-Authenticate", format!(r#"Bearer realm="{realm}",service="hostile""#))
}

#[test]
fn a_token_endpoint_that_answers_garbage() {
    let server = Server::routes("127.0.0.1");
    server.script([
        bearer_challenge(&server, &format!("{}/token", server.url())),
        Step::get("/token").typed("application/json", "{\"token\": <html>oops"),
    ]);
    let r = run(&["inspect", &format!("{}/acme/app:1", server.host())], None, &[]);
    r.failed_with(
        "8 token endpoint returns garbage JSON",
        Duration::from_secs(30),
        &[&server.host(), "token", "unreadable"],
    );
    server.finish();

    let server = Server::routes("127.0.0.1");
    server.script([
        bearer_challenge(&server, &format!("{}/token", server.url())),
        Step::get("/token").header("Content-Type", "application/json").generated_body(
            br#"{"token":""#,
            b'A',
            50 << 20,
            br#""}"#,
        ),
    ]);
    let r = run(&["inspect", &format!("{}/acme/app:1", server.host())], None, &[]);
    r.failed_with(
        "8 token endpoint returns a 50 MiB token",
        Duration::from_secs(30),
        &[&server.host(), "larger than 1 MiB"],
    );
    server.finish();
}

/// A Docker config holding `ci-bot`/`s3cret` for `registry`.
fn config_with_login(registry: &str) -> String {
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode("ci-bot:s3cret");
    serde_json::json!({"auths": {registry: {"auth": auth}}}).to_string()
}

fn sent_credentials(seen: &[Seen]) -> Vec<String> {
    seen.iter().filter(|s| s.header("authorization").is_some_and(|a| a.starts_with("Basic "))).map(Seen::line).collect()
}

#[test]
fn credentials_never_go_to_a_plain_http_realm_on_another_host() {
    let img = Image::new("realm");
    let registry = Server::routes("127.0.0.1");
    let realm = Server::routes("127.0.0.2");
    registry.script([bearer_challenge(&registry, &format!("{}/token", realm.url()))]);
    realm.script([Step::get("/token").typed("application/json", r#"{"token":"handed-out"}"#)]);
    let r =
        run(&["inspect", &format!("{}/acme/app:1", registry.host())], Some(&config_with_login(&registry.host())), &[]);
    r.failed_with(
        "9 plain-HTTP realm on another host",
        Duration::from_secs(30),
        &[&registry.host(), &realm.host(), "plain HTTP"],
    );
    assert!(!r.stderr.contains("s3cret"), "{}", r.stderr);
    assert_eq!(sent_credentials(&realm.finish()), Vec::<String>::new(), "credentials went to the foreign realm");
    assert_eq!(sent_credentials(&registry.finish()), Vec::<String>::new());

    // The control: a realm on the registry's own host gets them (so the check above can fail).
    let registry = Server::routes("127.0.0.1");
    registry.script([
        Step::get("/token").typed("application/json", r#"{"token":"handed-out"}"#),
        Step::get("/v2/acme/app/manifests/1")
            .when_header("authorization", "Bearer handed-out")
            .typed(OCI_MANIFEST, img.manifest.clone())
            .header("Docker-Content-Digest", img.digest()),
        Step::get(&format!("/v2/acme/app/blobs/{}", img.config_digest()))
            .when_header("authorization", "Bearer handed-out")
            .body(img.config.clone()),
        bearer_challenge(&registry, &format!("{}/token", registry.url())),
    ]);
    let r =
        run(&["inspect", &format!("{}/acme/app:1", registry.host())], Some(&config_with_login(&registry.host())), &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(sent_credentials(&registry.finish()), ["GET /token"], "the registry's own realm gets the login");
}
