//! Benchmark, not a test: `archway merge` and `archway promote` against
//! `docker buildx imagetools create` and `skopeo copy --all` on the lab registry. It prints
//! numbers and never fails on timing; it fails only when the set-up cannot be made.
//!
//!   bench/registry.sh            (or: cargo test --release --test bench_registry -- --ignored --nocapture)
//!   BENCH_RUNS=9 bench/registry.sh
//!
//! Set-up: 8 single-platform images (`FROM scratch` + a few hundred KiB of random data each, no
//! RUN, so no emulation) pushed by digest to one repository by `archway build --push-by-digest`,
//! and an 8-platform index tagged `src8` made from them. Then, `BENCH_RUNS` runs (default 5)
//! per scenario, the tools' order rotating from run to run:
//!
//! - merge 2 (amd64, arm64) and merge 8 digests into a fresh tag;
//! - promote the 8-platform index to a fresh repository on the same registry;
//! - promote it to a fresh tag in the same repository.
//!
//! Each run of a tool is two invocations, each into its own fresh tag (and repository):
//!
//! - a **timed** one, straight to the registry (`127.0.0.1:5000`);
//! - a **counted** one, through a fresh request-counting proxy (`tests/support/proxy.rs`, no
//!   faults) in front of the registry, so the requests counted are that invocation's own.
//!
//! They are apart because the proxy would dominate the time: it answers each response in two
//! writes without `TCP_NODELAY`, so every request after the first few on a keep-alive connection
//! waits out the client's delayed ACK (about 40 ms on loopback; ten sequential `curl` GETs take
//! 0.41 s through it, 0.02 s without), and it never answers a TLS ClientHello, so a client that
//! tries HTTPS first (skopeo, even with `--tls-verify=false`) waits 10 s per host before falling
//! back to HTTP. A small front ([`TlsFront`]) answers such a probe as Go's `net/http` does on a
//! plain-HTTP port (a 400) and passes everything else through untouched; the probes are counted
//! apart, not as requests.
//!
//! skopeo gets an empty blob-info cache for every invocation (as on a fresh CI runner): with its
//! system-wide cache it mounts blobs it saw in earlier runs, without it uploads them, so the
//! timed and counted runs would otherwise disagree.
//!
//! Every result is checked in the registry directly (not through the proxy): the tag is an
//! index of exactly the expected platforms, and each child manifest, config and layer is in the
//! target repository. A tool that fails or gives a wrong result is reported as failed.

#![cfg(feature = "lab")]

mod support;

use std::collections::BTreeMap;
use std::io::{self, Read as _, Write as _};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use support::lab::*;
use support::proxy::{Kind, Proxy, Seen};

const PLATFORMS: [&str; 8] = [
    "linux/amd64",
    "linux/arm64",
    "linux/arm/v7",
    "linux/arm/v6",
    "linux/386",
    "linux/ppc64le",
    "linux/s390x",
    "linux/riscv64",
];
/// Random bytes per platform image (one layer each, different for every platform).
const PAYLOAD_KIB: usize = 384;
/// Any single invocation taking longer than this is killed and reported as failed.
const TIMEOUT_SECS: &str = "120";

const ACCEPT: &str = "Accept: application/vnd.oci.image.index.v1+json, \
                      application/vnd.docker.distribution.manifest.list.v2+json, \
                      application/vnd.oci.image.manifest.v1+json, \
                      application/vnd.docker.distribution.manifest.v2+json";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tool {
    Archway,
    Imagetools,
    Skopeo,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::Archway => "archway",
            Tool::Imagetools => "buildx imagetools",
            Tool::Skopeo => "skopeo copy --all",
        }
    }
    fn short(self) -> &'static str {
        match self {
            Tool::Archway => "archway",
            Tool::Imagetools => "imagetools",
            Tool::Skopeo => "skopeo",
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Scenario {
    Merge2,
    Merge8,
    PromoteOtherRepo,
    PromoteSameRepo,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Merge2 => "merge 2 platforms",
            Scenario::Merge8 => "merge 8 platforms",
            Scenario::PromoteOtherRepo => "promote 8 → other repo",
            Scenario::PromoteSameRepo => "promote 8 → same repo",
        }
    }
    fn tools(self) -> &'static [Tool] {
        match self {
            Scenario::Merge2 | Scenario::Merge8 => &[Tool::Archway, Tool::Imagetools],
            Scenario::PromoteOtherRepo | Scenario::PromoteSameRepo => &[Tool::Archway, Tool::Skopeo, Tool::Imagetools],
        }
    }
    fn platforms(self) -> &'static [&'static str] {
        match self {
            Scenario::Merge2 => &PLATFORMS[..2],
            _ => &PLATFORMS[..],
        }
    }
    fn is_promote(self) -> bool {
        matches!(self, Scenario::PromoteOtherRepo | Scenario::PromoteSameRepo)
    }
    fn tag(self) -> &'static str {
        match self {
            Scenario::Merge2 => "m2",
            Scenario::Merge8 => "m8",
            Scenario::PromoteOtherRepo => "po",
            Scenario::PromoteSameRepo => "ps",
        }
    }
}

/// What the set-up made: `repo` is the path without the registry (`test/bench-…`).
struct Setup {
    repo: String,
    /// Per platform, in `PLATFORMS` order: the digest each leg pushed.
    digests: Vec<String>,
    /// The 8-platform index tagged `src8`.
    src_digest: String,
}

/// One invocation: the command, where its result must be, and what it must hold.
struct Job {
    argv: Vec<String>,
    env: Vec<(&'static str, String)>,
    repo: String,
    tag: String,
    /// skopeo's private blob-info cache, removed when the job is dropped.
    _cache: Option<tempfile::TempDir>,
}

/// `suffix` tells the timed (`t`) and the counted (`c`) invocation of one run apart.
fn job(scn: Scenario, tool: Tool, run: usize, suffix: &str, via: &str, s: &Setup) -> Job {
    let tag = format!("{}-{}-{run}{suffix}", scn.tag(), tool.short());
    let src = format!("{via}/{}:src8", s.repo);
    let repo = match scn {
        Scenario::PromoteOtherRepo => format!("{}-to-{}-{run}{suffix}", s.repo, tool.short()),
        _ => s.repo.clone(),
    };
    let dst = format!("{via}/{repo}:{tag}");
    let legs: Vec<String> =
        s.digests[..scn.platforms().len()].iter().map(|d| format!("{via}/{}@{d}", s.repo)).collect();
    let mut argv: Vec<String> = match (tool, scn.is_promote()) {
        (Tool::Archway, false) => vec![support::spawn::ARCHWAY.into(), "merge".into(), "-t".into(), dst],
        (Tool::Imagetools, false) => {
            vec!["docker".into(), "buildx".into(), "imagetools".into(), "create".into(), "-t".into(), dst]
        }
        (Tool::Archway, true) => vec![support::spawn::ARCHWAY.into(), "promote".into(), src, dst],
        (Tool::Imagetools, true) => {
            vec!["docker".into(), "buildx".into(), "imagetools".into(), "create".into(), "-t".into(), dst, src]
        }
        (Tool::Skopeo, true) => vec![
            "skopeo".into(),
            "copy".into(),
            "--all".into(),
            "--src-tls-verify=false".into(),
            "--dest-tls-verify=false".into(),
            format!("docker://{src}"),
            format!("docker://{dst}"),
        ],
        (Tool::Skopeo, false) => unreachable!("skopeo cannot merge"),
    };
    if !scn.is_promote() {
        argv.extend(legs);
    }
    // An empty blob-info cache: c/image keeps it under $XDG_DATA_HOME when it believes it runs
    // rootless, and under /var/lib/containers/cache (shared by every run) as root.
    let (env, cache) = if tool == Tool::Skopeo {
        let dir = tempfile::tempdir().unwrap();
        let env =
            vec![("_CONTAINERS_ROOTLESS_UID", "1".to_string()), ("XDG_DATA_HOME", dir.path().display().to_string())];
        (env, Some(dir))
    } else {
        (Vec::new(), None)
    };
    Job { argv, env, repo, tag, _cache: cache }
}

/// One run of a tool: the timed invocation's seconds, the counted one's requests.
struct Sample {
    secs: f64,
    seen: Vec<Seen>,
    /// TLS ClientHellos the front answered with a 400 (not HTTP requests).
    tls_probes: usize,
    /// The index digest and media type the tag resolves to, or why the run failed.
    result: Result<(String, String), String>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

/// Runs `argv` (under `timeout`): wall-clock seconds, and stderr's last lines on failure.
fn timed(argv: &[String], env: &[(&str, String)]) -> (f64, Result<(), String>) {
    let mut c = support::spawn::clean("timeout");
    support::spawn::pass_lab_env(&mut c).args(["--kill-after=5", TIMEOUT_SECS]).args(argv);
    for (k, v) in env {
        c.env(k, v);
    }
    let start = Instant::now();
    let out = c.output();
    let secs = start.elapsed().as_secs_f64();
    let result = match out {
        Err(e) => Err(format!("could not run {}: {e}", argv[0])),
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr);
            let tail: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
            let tail = tail[tail.len().saturating_sub(2)..].join(" | ");
            let code = o.status.code().map_or("a signal".to_string(), |c| c.to_string());
            Err(format!("exit {code}{}: {tail}", if code == "124" { " (timed out)" } else { "" }))
        }
    };
    (secs, result)
}

/// GET through the lab registry directly: (status, content type, body).
fn http_get(path: &str) -> Result<(u16, String, Vec<u8>), String> {
    let url = format!("http://{}{path}", lab().registry);
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "30", "-H", ACCEPT, "-D", "-", "-o", "-", &url])
        .output()
        .map_err(|e| format!("curl: {e}"))?;
    if !out.status.success() {
        return Err(format!("GET {url}: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    let raw = out.stdout;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or(format!("GET {url}: no HTTP answer"))? + 4;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let ct = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-type:").map(|v| v.trim().to_string()))
        .unwrap_or_default();
    Ok((status, ct, raw[split..].to_vec()))
}

/// Status of HEAD through the lab registry directly.
fn http_head(path: &str) -> u16 {
    let url = format!("http://{}{path}", lab().registry);
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "30", "-I", "-H", ACCEPT, &url])
        .output();
    out.ok().and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok()).unwrap_or(0)
}

fn platform_of(m: &serde_json::Value) -> Option<String> {
    let p = &m["platform"];
    let (os, arch) = (p["os"].as_str()?, p["architecture"].as_str()?);
    if os == "unknown" {
        return None; // a BuildKit attestation manifest
    }
    Some(match p["variant"].as_str() {
        Some(v) if !v.is_empty() => format!("{os}/{arch}/{v}"),
        _ => format!("{os}/{arch}"),
    })
}

/// Checks, in the registry itself, that `repo:tag` is an index of exactly `want` and that the
/// repository holds every child manifest and blob. Returns the index digest and media type.
fn check(repo: &str, tag: &str, want: &[&str]) -> Result<(String, String), String> {
    let (status, ct, bytes) = http_get(&format!("/v2/{repo}/manifests/{tag}"))?;
    if status != 200 {
        return Err(format!("{repo}:{tag} does not resolve (HTTP {status})"));
    }
    if !(ct.contains("index") || ct.contains("manifest.list")) {
        return Err(format!("{repo}:{tag} is not an index but {ct}"));
    }
    let index: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| format!("{repo}:{tag}: {e}"))?;
    let children = index["manifests"].as_array().cloned().unwrap_or_default();
    let mut got: Vec<String> = children.iter().filter_map(platform_of).collect();
    got.sort();
    let mut expected: Vec<String> = want.iter().map(|p| p.to_string()).collect();
    expected.sort();
    if got != expected {
        return Err(format!("{repo}:{tag} has platforms [{}], not [{}]", got.join(", "), expected.join(", ")));
    }
    for child in &children {
        let d = child["digest"].as_str().unwrap_or_default();
        let (status, _, bytes) = http_get(&format!("/v2/{repo}/manifests/{d}"))?;
        if status != 200 {
            return Err(format!("child manifest {d} is not in {repo} (HTTP {status})"));
        }
        let m: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| format!("{d}: {e}"))?;
        let blobs = std::iter::once(&m["config"]).chain(m["layers"].as_array().into_iter().flatten());
        for b in blobs {
            let bd = b["digest"].as_str().unwrap_or_default();
            let status = http_head(&format!("/v2/{repo}/blobs/{bd}"));
            if status != 200 {
                return Err(format!("blob {bd} of {d} is not in {repo} (HTTP {status})"));
            }
        }
    }
    Ok((sha256(&bytes), ct))
}

fn run_one(scn: Scenario, tool: Tool, run: usize, s: &Setup) -> Sample {
    // Timed: straight to the registry.
    let j = job(scn, tool, run, "t", &lab().registry, s);
    let (secs, ran) = timed(&j.argv, &j.env);
    let timed_result =
        ran.and_then(|()| check(&j.repo, &j.tag, scn.platforms())).map_err(|e| format!("timed run: {e}"));
    // Counted: through a fresh proxy (behind the TLS front).
    let proxy = Proxy::start(&lab().registry);
    let front = TlsFront::start(&proxy.addr);
    let j = job(scn, tool, run, "c", &front.addr, s);
    let (_, ran) = timed(&j.argv, &j.env);
    let seen = proxy.seen(|_| true);
    let tls_probes = front.probes.load(Ordering::SeqCst);
    drop(front);
    drop(proxy);
    let counted_result =
        ran.and_then(|()| check(&j.repo, &j.tag, scn.platforms())).map_err(|e| format!("counted run: {e}"));
    let result = timed_result.and_then(|r| counted_result.map(|_| r));
    Sample { secs, seen, tls_probes, result }
}

/// In front of the proxy: answers a TLS ClientHello as Go's `net/http` does on a plain-HTTP port
/// (`400`, then close), so a client that tries HTTPS first falls back to HTTP at once; any other
/// connection is passed byte for byte to `upstream`, so the proxy sees every HTTP request.
struct TlsFront {
    addr: String,
    probes: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    port: u16,
    accept: Option<JoinHandle<()>>,
}

impl TlsFront {
    fn start(upstream: &str) -> TlsFront {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (probes, stop) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
        let accept = {
            let (probes, stop, upstream) = (probes.clone(), stop.clone(), upstream.to_string());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let (probes, upstream) = (probes.clone(), upstream.clone());
                    std::thread::spawn(move || {
                        let _ = pass(conn, &upstream, &probes);
                    });
                }
            })
        };
        TlsFront { addr: format!("127.0.0.1:{port}"), probes, stop, port, accept: Some(accept) }
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

fn pass(mut client: TcpStream, upstream: &str, probes: &AtomicUsize) -> io::Result<()> {
    client.set_nodelay(true)?;
    let mut first = [0u8; 1];
    if client.peek(&mut first)? == 0 {
        return Ok(());
    }
    if first[0] == 0x16 {
        // A TLS handshake record: read the hello, refuse it in plain HTTP.
        probes.fetch_add(1, Ordering::SeqCst);
        let mut hello = [0u8; 4096];
        let _ = client.read(&mut hello)?;
        client.write_all(b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")?;
        return client.shutdown(Shutdown::Write);
    }
    let server = TcpStream::connect(upstream)?;
    server.set_nodelay(true)?;
    let (mut from_client, mut to_server) = (client.try_clone()?, server.try_clone()?);
    let up = std::thread::spawn(move || {
        let _ = io::copy(&mut from_client, &mut to_server);
        let _ = to_server.shutdown(Shutdown::Write);
    });
    let (mut from_server, mut to_client) = (server, client);
    let _ = io::copy(&mut from_server, &mut to_client);
    let _ = to_client.shutdown(Shutdown::Write);
    let _ = up.join();
    Ok(())
}

/// `method kind` → count, in a fixed order, cross-repository mounts counted apart.
fn by_kind(seen: &[Seen]) -> BTreeMap<(usize, usize, String), usize> {
    let kinds = [Kind::Base, Kind::Manifest, Kind::Blob, Kind::Upload, Kind::Token, Kind::Other];
    let methods = ["GET", "HEAD", "POST", "PATCH", "PUT", "DELETE"];
    let mut out = BTreeMap::new();
    for s in seen {
        let k = kinds.iter().position(|k| *k == s.kind).unwrap_or(kinds.len());
        let m = methods.iter().position(|m| *m == s.method).unwrap_or(methods.len());
        let label = match s.kind {
            Kind::Base => format!("{} /v2/", s.method),
            Kind::Upload if s.method == "POST" && s.query.contains("mount=") => "POST upload?mount".to_string(),
            kind => format!("{} {}", s.method, format!("{kind:?}").to_lowercase()),
        };
        let sub = usize::from(label.ends_with("?mount"));
        *out.entry((k, m * 2 + sub, label)).or_default() += 1;
    }
    out
}

fn breakdown(sample: &Sample) -> String {
    let seen = &sample.seen;
    let mut parts: Vec<String> = by_kind(seen).into_iter().map(|((_, _, label), n)| format!("{label} {n}")).collect();
    let errors = seen.iter().filter(|s| s.status >= 400).count();
    if errors > 0 {
        parts.push(format!("(answered ≥400: {errors})"));
    }
    if sample.tls_probes > 0 {
        parts.push(format!("+ {} HTTPS probes refused (not counted)", sample.tls_probes));
    }
    parts.join(", ")
}

struct Row {
    scn: Scenario,
    tool: Tool,
    /// median seconds, median requests, the run's breakdown, median upload KiB, result note
    stats: Result<(f64, f64, f64, String, f64, String), String>,
}

fn summarize(scn: Scenario, tool: Tool, samples: &[Sample], src_digest: &str) -> Row {
    let failed: Vec<&String> = samples.iter().filter_map(|s| s.result.as_ref().err()).collect();
    if let Some(first) = failed.first() {
        return Row { scn, tool, stats: Err(format!("FAILED in {} of {} runs: {first}", failed.len(), samples.len())) };
    }
    let secs = median(samples.iter().map(|s| s.secs).collect());
    let min = samples.iter().map(|s| s.secs).fold(f64::INFINITY, f64::min);
    let reqs = median(samples.iter().map(|s| s.seen.len() as f64).collect());
    let up = median(samples.iter().map(|s| s.seen.iter().map(|x| x.body_bytes).sum::<u64>() as f64 / 1024.0).collect());
    // The breakdown of the run whose request count is nearest the median.
    let typical = samples
        .iter()
        .min_by(|a, b| {
            let da = (a.seen.len() as f64 - reqs).abs();
            let db = (b.seen.len() as f64 - reqs).abs();
            da.partial_cmp(&db).unwrap()
        })
        .unwrap();
    let (digest, ct) = samples[0].result.as_ref().unwrap();
    let kind = if ct.contains("oci") { "OCI index" } else { "Docker list" };
    let mut note = kind.to_string();
    if scn.is_promote() {
        note.push_str(if digest == src_digest { ", same digest" } else { ", NEW digest" });
    }
    let counts: Vec<usize> = samples.iter().map(|s| s.seen.len()).collect();
    if counts.iter().any(|c| *c != counts[0]) {
        note.push_str(&format!(", requests vary {counts:?}"));
    }
    Row { scn, tool, stats: Ok((secs, min, reqs, breakdown(typical), up, note)) }
}

fn random_payload() -> Vec<u8> {
    let mut buf = vec![0; PAYLOAD_KIB * 1024];
    std::fs::File::open("/dev/urandom").unwrap().read_exact(&mut buf).unwrap();
    buf
}

/// Builds and pushes by digest one single-platform image per platform (all at once), then
/// merges them into `src8`, directly against the registry (no proxy).
fn setup() -> Setup {
    let full = unique_repo("bench-registry");
    let repo = full.split_once('/').unwrap().1.to_string();
    let ctx = context(
        "FROM scratch\nARG TARGETARCH\nARG TARGETVARIANT\nCOPY payload-${TARGETARCH}${TARGETVARIANT} /payload\n",
    );
    for p in PLATFORMS {
        let mut parts = p.split('/').skip(1);
        let name = format!("payload-{}{}", parts.next().unwrap(), parts.next().unwrap_or(""));
        std::fs::write(ctx.path().join(name), random_payload()).unwrap();
    }
    let digests_dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let digests: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = PLATFORMS
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let (ctx, full) = (ctx.path(), &full);
                let file = digests_dir.path().join(format!("digest-{i}"));
                scope.spawn(move || {
                    let out = archway(
                        ctx,
                        &[
                            "build",
                            ".",
                            "--platform",
                            p,
                            "--no-emulation",
                            "--provenance",
                            "false",
                            "--push-by-digest",
                            "-t",
                            full,
                            "--digest-file",
                            file.to_str().unwrap(),
                        ],
                    );
                    let (_, stderr) = text(&out);
                    assert!(out.status.success(), "set-up: building {p} failed:\n{stderr}");
                    let line = std::fs::read_to_string(&file).unwrap();
                    line.trim().rsplit_once('@').expect("REPO@sha256:…").1.to_string()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let refs: Vec<String> = digests.iter().map(|d| format!("{full}@{d}")).collect();
    let mut args = vec!["merge", "-t"];
    let src8 = format!("{full}:src8");
    args.push(&src8);
    args.extend(refs.iter().map(String::as_str));
    let out = archway(ctx.path(), &args);
    assert!(out.status.success(), "set-up: merging src8 failed:\n{}", text(&out).1);
    let (src_digest, _) = check(&repo, "src8", &PLATFORMS).unwrap_or_else(|e| panic!("set-up: {e}"));
    let (_, ct, leg) = http_get(&format!("/v2/{repo}/manifests/{}", digests[0])).unwrap();
    eprintln!(
        "set-up: {} images ({PAYLOAD_KIB} KiB payload each; a leg is {} bytes of {ct}) pushed by digest and merged \
         into {full}:src8 in {:.1}s",
        PLATFORMS.len(),
        leg.len(),
        started.elapsed().as_secs_f64()
    );
    Setup { repo, digests, src_digest }
}

/// Each tool once, untimed, so no measured run pays for a cold start (binary, plugin, page cache).
fn warm_up(s: &Setup) {
    let src = format!("{}/{}:src8", lab().registry, s.repo);
    let runs: [Vec<String>; 3] = [
        vec![support::spawn::ARCHWAY.into(), "inspect".into(), "--raw".into(), src.clone()],
        vec!["docker".into(), "buildx".into(), "imagetools".into(), "inspect".into(), "--raw".into(), src.clone()],
        vec!["skopeo".into(), "inspect".into(), "--raw".into(), "--tls-verify=false".into(), format!("docker://{src}")],
    ];
    for argv in runs {
        let (_, r) = timed(&argv, &[]);
        if let Err(e) = r {
            eprintln!("warm-up: {} failed: {e}", argv[0]);
        }
    }
}

fn version(argv: &[&str]) -> String {
    support::spawn::pass_lab_env(&mut support::spawn::clean(argv[0]))
        .args(&argv[1..])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().next().unwrap_or("").trim().to_string())
        .unwrap_or_else(|e| format!("({e})"))
}

#[test]
#[ignore = "a benchmark: bench/registry.sh runs it"]
fn bench_registry() {
    let runs: usize = std::env::var("BENCH_RUNS").ok().and_then(|v| v.parse().ok()).filter(|n| *n > 0).unwrap_or(5);
    let total = Instant::now();
    let s = setup();
    warm_up(&s);

    let scenarios = [Scenario::Merge2, Scenario::Merge8, Scenario::PromoteOtherRepo, Scenario::PromoteSameRepo];
    let mut rows = Vec::new();
    for scn in scenarios {
        let tools = scn.tools();
        let mut samples: Vec<Vec<Sample>> = tools.iter().map(|_| Vec::new()).collect();
        for run in 1..=runs {
            // Rotate who goes first, so no tool always runs right after another one.
            let mut line = format!("{:<24} run {run}:", scn.name());
            for k in 0..tools.len() {
                let t = (k + run - 1) % tools.len();
                let sample = run_one(scn, tools[t], run, &s);
                match &sample.result {
                    Ok(_) => {
                        line.push_str(&format!("  {} {:.3}s/{} req", tools[t].short(), sample.secs, sample.seen.len()))
                    }
                    Err(e) => line.push_str(&format!("  {} FAILED ({e})", tools[t].short())),
                }
                samples[t].push(sample);
            }
            eprintln!("{line}");
        }
        for (t, tool) in tools.iter().enumerate() {
            rows.push(summarize(scn, *tool, &samples[t], &s.src_digest));
        }
    }

    println!();
    println!(
        "registry benchmark, lab registry {}: {runs} runs per tool and scenario, each timed straight to the registry \
         and counted in a second invocation through a fresh request-counting proxy",
        lab().registry
    );
    println!(
        "  {}; {}; {}",
        version(&["docker", "buildx", "version"]),
        version(&["skopeo", "--version"]),
        version(&[support::spawn::ARCHWAY, "--version"])
    );
    println!("  ratio = archway / that tool (below 1: archway is faster / makes fewer requests)");
    println!();
    println!(
        "{:<24} {:<18} {:>9} {:>7} {:>9} {:>9} {:>9} {:>8}  result",
        "scenario", "tool", "median s", "min s", "time ×", "requests", "req ×", "up KiB"
    );
    println!("{}", "-".repeat(120));
    for row in &rows {
        let archway = rows
            .iter()
            .find(|r| r.tool == Tool::Archway && r.scn.name() == row.scn.name())
            .and_then(|r| r.stats.as_ref().ok());
        match &row.stats {
            Err(e) => println!("{:<24} {:<18} {e}", row.scn.name(), row.tool.name()),
            Ok((secs, min, reqs, _, up, note)) => {
                let (tr, rr) = match (row.tool, archway) {
                    (Tool::Archway, _) => ("—".to_string(), "—".to_string()),
                    (_, Some(a)) => (format!("{:.2}", a.0 / secs), format!("{:.2}", a.2 / reqs)),
                    (_, None) => ("n/a".to_string(), "n/a".to_string()),
                };
                println!(
                    "{:<24} {:<18} {:>9.3} {:>7.3} {:>9} {:>9} {:>9} {:>8.0}  {note}",
                    row.scn.name(),
                    row.tool.name(),
                    secs,
                    min,
                    tr,
                    reqs,
                    rr,
                    up
                );
            }
        }
    }
    println!();
    println!("requests by kind (the run nearest the median; `upload?mount` = cross-repository mount):");
    for row in &rows {
        if let Ok((_, _, _, b, _, _)) = &row.stats {
            println!("  {:<24} {:<18} {b}", row.scn.name(), row.tool.name());
        }
    }
    println!();
    println!("total bench time {:.0}s", total.elapsed().as_secs_f64());
}
