//! The lab `scripts/lab-up` started: its registry and base image, plus helpers that check
//! results the way a user would (the registry's HTTP API, `skopeo`, `docker run`), never
//! through archway's own code.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::OnceLock;

pub struct Lab {
    /// `127.0.0.1:PORT`
    pub registry: String,
    /// The multi-platform busybox image in the lab registry.
    pub base: String,
}

/// The lab's settings; panics with the fix when the lab is not up.
pub fn lab() -> &'static Lab {
    static LAB: OnceLock<Lab> = OnceLock::new();
    LAB.get_or_init(|| {
        let path = std::env::var("ARCHWAY_LAB_ENV_FILE").unwrap_or_else(|_| "/var/lib/archway-lab/env".into());
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{path}: {e}; these tests need the lab: run `scripts/lab-up` (as root) first"));
        let get = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .map(|v| v.trim_matches('"').to_string())
                .unwrap_or_else(|| panic!("{path} has no {k}"))
        };
        let lab = Lab { registry: get("ARCHWAY_LAB_REGISTRY"), base: get("ARCHWAY_LAB_BASE") };
        let ok = Command::new("curl").args(["-fsS", &format!("http://{}/v2/", lab.registry)]).output();
        assert!(
            ok.map(|o| o.status.success()).unwrap_or(false),
            "the lab registry at {} does not answer; run `scripts/lab-up`",
            lab.registry
        );
        lab
    })
}

/// A repository name no other test uses.
pub fn unique_repo(prefix: &str) -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let n = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("{}/test/{prefix}-{}-{}", lab().registry, std::process::id(), n % 1_000_000_000)
}

/// A value that changes every run, so a build's RUN steps really execute (no cache hit).
pub fn nonce() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos().to_string()
}

/// Runs the archway binary in `cwd`.
pub fn archway(cwd: &Path, args: &[&str]) -> Output {
    archway_env::<&str>(cwd, args, &[])
}

/// Runs the archway binary in `cwd` with the lab's variables ([`super::spawn::LAB_ENV`]) and
/// `env`, and nothing else of the test's environment.
pub fn archway_env<V: AsRef<std::ffi::OsStr>>(cwd: &Path, args: &[&str], env: &[(&str, V)]) -> Output {
    let mut c = super::spawn::archway();
    super::spawn::pass_lab_env(&mut c).args(args).current_dir(cwd);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("the archway binary runs")
}

/// archway with no engine and no `docker`: an empty `PATH`, a fresh `HOME` and a
/// `DOCKER_HOST` socket that does not exist (and nothing else of the test's environment).
pub fn archway_without_docker(cwd: &Path, args: &[&str]) -> Output {
    let empty = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    super::spawn::archway()
        .args(args)
        .current_dir(cwd)
        .env("PATH", empty.path())
        .env("HOME", home.path())
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .expect("the archway binary runs")
}

pub fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, \
                      application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// GET a manifest through the registry API: (content type, bytes), or `None` for 404.
pub fn manifest(name: &str, reference: &str) -> Option<(String, Vec<u8>)> {
    manifest_as(name, reference, None)
}

/// [`manifest`] from a registry that wants basic credentials (`user:password`).
pub fn manifest_as(name: &str, reference: &str, basic: Option<&str>) -> Option<(String, Vec<u8>)> {
    let (host, repo) = name.split_once('/').unwrap();
    let out = Command::new("curl")
        .args(["-sS", "-H", &format!("Accept: {ACCEPT}"), "-D", "-", "-o", "-"])
        .args(basic.map(|b| ["-u", b]).into_iter().flatten())
        .arg(format!("http://{host}/v2/{repo}/manifests/{reference}"))
        .output()
        .unwrap();
    let raw = out.stdout;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("an HTTP answer") + 4;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    if head.starts_with("HTTP/1.1 404") {
        return None;
    }
    assert!(head.starts_with("HTTP/1.1 200"), "GET {name}:{reference}: {head}");
    let ct = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-type:").map(|v| v.trim().to_string()))
        .unwrap_or_default();
    Some((ct, raw[split..].to_vec()))
}

pub fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).expect("JSON")
}

pub fn blob(name: &str, digest: &str) -> Vec<u8> {
    let (host, repo) = name.split_once('/').unwrap();
    let out =
        Command::new("curl").args(["-fsSL", &format!("http://{host}/v2/{repo}/blobs/{digest}")]).output().unwrap();
    assert!(out.status.success(), "GET blob {digest}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

pub fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// Tag → digest, or `None` when the tag does not exist.
pub fn tag_digest(name: &str, tag: &str) -> Option<String> {
    manifest(name, tag).map(|(_, b)| sha256(&b))
}

/// Repositories the registry holds.
pub fn catalog() -> Vec<String> {
    let out =
        Command::new("curl").args(["-fsS", &format!("http://{}/v2/_catalog?n=1000", lab().registry)]).output().unwrap();
    json(&out.stdout)["repositories"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
}

/// Writes a build context with this Dockerfile into a fresh temp dir.
pub fn context(dockerfile: &str) -> tempfile::TempDir {
    context_in(&std::env::temp_dir(), dockerfile)
}

/// [`context`] in a fresh directory under `parent`.
pub fn context_in(parent: &std::path::Path, dockerfile: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir_in(parent).unwrap();
    std::fs::write(d.path().join("Dockerfile"), dockerfile).unwrap();
    d
}

/// `docker run --rm --pull always --platform P IMAGE`, stdout trimmed.
pub fn docker_run(platform: &str, image: &str) -> String {
    let out = Command::new("docker")
        .args(["run", "--rm", "--pull", "always", "--platform", platform, image])
        .output()
        .unwrap();
    assert!(out.status.success(), "docker run {platform} {image}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The image platforms of an index (`os/arch[/variant]`) with their manifest digests,
/// attestation manifests left out.
pub fn platform_manifests(index: &serde_json::Value) -> Vec<(String, String)> {
    index["manifests"]
        .as_array()
        .expect("an index has manifests")
        .iter()
        .filter(|m| m["annotations"]["vnd.docker.reference.type"].as_str() != Some("attestation-manifest"))
        .map(|m| {
            let p = &m["platform"];
            let mut s = format!("{}/{}", p["os"].as_str().unwrap(), p["architecture"].as_str().unwrap());
            if let Some(v) = p["variant"].as_str() {
                s = format!("{s}/{v}");
            }
            (s, m["digest"].as_str().unwrap().to_string())
        })
        .collect()
}

/// The image platforms of an index (`os/arch[/variant]`), attestation manifests left out.
pub fn platforms_of(index: &serde_json::Value) -> Vec<String> {
    platform_manifests(index).into_iter().map(|(p, _)| p).collect()
}
