//! Hardening, end to end on the lab (issue 12): `kill -9` at any moment never leaves a tag on
//! an incomplete image; two publishers racing for one tag leave it on one complete index,
//! one of theirs; a build's own output cannot issue GitHub workflow commands.

#![cfg(feature = "lab")]

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use support::auth_registry::AuthRegistry;
use support::lab::*;
use support::proxy::{Fault, Kind, Proxy, Seen};

/// A no-RUN context on `base` whose files (`size` bytes per platform) differ per `nonce`.
fn payload_from(base: &str, nonce: &str, size: usize) -> tempfile::TempDir {
    let ctx = context(&format!("FROM {base}\nARG TARGETARCH\nCOPY blob-$TARGETARCH /blob\n"));
    write_payload(ctx.path(), nonce, size);
    ctx
}

/// (Re)writes the context's per-platform files with content that differs per `nonce`.
fn write_payload(dir: &Path, nonce: &str, size: usize) {
    for arch in ["amd64", "arm64"] {
        std::fs::write(dir.join(format!("blob-{arch}")), noise(&format!("{nonce} {arch}"), size)).unwrap();
    }
}

/// `size` bytes, incompressible enough that compressing and pushing take a while, that differ
/// per `seed`.
fn noise(seed: &str, size: usize) -> Vec<u8> {
    let mut data = format!("{seed}\n").into_bytes();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ seed.bytes().fold(0u64, |h, b| h.rotate_left(5) ^ u64::from(b));
    while data.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    data.truncate(size.max(seed.len() + 1));
    data
}

/// Pushes a two-platform image (linux/amd64, linux/arm64) to `repo:tag` through the
/// registry API, without archway: per platform one gzip layer holding one file of `size`
/// bytes that differ per `seed`. A base image small enough that reading it costs nothing,
/// and a fresh source for each promote. Returns the index digest.
fn push_image(repo: &str, tag: &str, seed: &str, size: usize) -> String {
    use support::layout::{push_blob, push_manifest, write_blob};
    let dir = tempfile::tempdir().unwrap();
    let put = |bytes: &[u8]| (write_blob(dir.path(), bytes), bytes.len());
    let mut children = Vec::new();
    for arch in ["amd64", "arm64"] {
        let mut tar = tar::Builder::new(Vec::new());
        let data = noise(&format!("{seed} {arch}"), size);
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        tar.append_data(&mut h, format!("payload-{arch}"), &data[..]).unwrap();
        let tar = tar.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar).unwrap();
        let (layer, layer_size) = put(&gz.finish().unwrap());
        let config = serde_json::json!({
            "architecture": arch, "os": "linux", "config": {},
            "rootfs": { "type": "layers", "diff_ids": [sha256(&tar)] },
            "history": [{ "created_by": format!("test layer {seed}") }],
        });
        let (config, config_size) = put(config.to_string().as_bytes());
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": config_size },
            "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer, "size": layer_size }],
        });
        let (manifest, manifest_size) = put(manifest.to_string().as_bytes());
        for d in [&layer, &config] {
            push_blob(dir.path(), repo, d).unwrap();
        }
        push_manifest(dir.path(), repo, &manifest, &manifest, "application/vnd.oci.image.manifest.v1+json").unwrap();
        children.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest, "size": manifest_size,
            "platform": { "architecture": arch, "os": "linux" },
        }));
    }
    let index = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": children,
    });
    let (index, _) = put(index.to_string().as_bytes());
    push_manifest(dir.path(), repo, tag, &index, "application/vnd.oci.image.index.v1+json").unwrap();
    index
}

/// Whether what `repo:tag` names is whole: an index whose every child manifest, config and
/// layer the registry holds. `None` when the tag does not exist.
fn complete(repo: &str, tag: &str) -> Option<Result<String, String>> {
    complete_as(repo, tag, None)
}

/// [`complete`] for a tag or a digest, on a registry that may want basic credentials.
fn complete_as(repo: &str, reference: &str, basic: Option<&str>) -> Option<Result<String, String>> {
    let (_, bytes) = manifest_as(repo, reference, basic)?;
    let index = json(&bytes);
    let Some(children) = index["manifests"].as_array() else {
        return Some(Err(format!("{repo}:{reference} is not an index: {index}")));
    };
    for child in children {
        let d = child["digest"].as_str().unwrap();
        let Some((_, m)) = manifest_as(repo, d, basic) else {
            return Some(Err(format!("{repo}:{reference} names {d}, which the registry lacks")));
        };
        let m = json(&m);
        let blobs = std::iter::once(&m["config"]).chain(m["layers"].as_array().into_iter().flatten());
        for b in blobs {
            let bd = b["digest"].as_str().unwrap();
            if blob_status(repo, bd, basic) != 200 {
                return Some(Err(format!("{repo}:{reference} → {d} names blob {bd}, which the registry lacks")));
            }
        }
    }
    Some(Ok(sha256(&bytes)))
}

/// The registry's status for `HEAD` of a blob.
fn blob_status(repo: &str, digest: &str, basic: Option<&str>) -> u16 {
    let (registry, path) = repo.split_once('/').unwrap();
    let out = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-I"])
        .args(basic.map(|b| ["-u", b]).into_iter().flatten())
        .arg(format!("http://{registry}/v2/{path}/blobs/{digest}"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0)
}

/// The `sha256:…` of the `REPO@sha256:…` line archway prints on stdout.
fn printed_digest(o: &Output) -> String {
    let stdout = text(o).0;
    let line =
        stdout.lines().rev().find(|l| l.contains("@sha256:")).unwrap_or_else(|| panic!("no digest in {stdout:?}"));
    line.trim().rsplit('@').next().unwrap().to_string()
}

/// One command a test kills at chosen moments and then runs again to the end.
struct Command<'a> {
    cwd: &'a Path,
    args: Vec<String>,
    env: Vec<(&'static str, String)>,
}

impl Command<'_> {
    /// Started, with stdout and stderr into `log` (a pipe nobody reads could stall it).
    fn spawn(&self, log: &Path) -> Child {
        let f = std::fs::File::create(log).unwrap();
        let mut c = support::spawn::archway();
        support::spawn::pass_lab_env(&mut c)
            .args(&self.args)
            .current_dir(self.cwd)
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())));
        c.spawn().unwrap()
    }

    /// Run to the end.
    fn run(&self) -> Output {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        archway_env(self.cwd, &args, &env)
    }
}

/// Where a kill lands: once the proxy has answered `requests` requests of this run, `then`
/// later.
#[derive(Debug, Clone, Copy)]
struct KillPoint {
    requests: usize,
    then: Duration,
}

/// Kill points over a run like `reference` (the requests a whole run made): after each request
/// of the publishing phases (uploads, manifests, index, tags), right away and `later` (inside
/// the next request, which the proxy holds), and after requests of the long start (reading,
/// building, checking access) spread evenly, until there are `at_least`.
fn kill_points(reference: &[Seen], children: usize, tags: usize, at_least: usize, later: Duration) -> Vec<KillPoint> {
    let at = |requests, then| KillPoint { requests, then };
    let (start, publishing): (Vec<usize>, Vec<usize>) =
        (0..=reference.len()).partition(|&n| phase(&reference[..n], children, tags) == START);
    let mut points: Vec<KillPoint> = publishing.iter().flat_map(|&n| [at(n, Duration::ZERO), at(n, later)]).collect();
    let need = at_least.saturating_sub(points.len()).max(4);
    points.extend((0..need).map(|k| at(start[k * start.len() / need], Duration::ZERO)));
    points
}

/// SIGKILLs `child` at `at` (counting the proxy's requests from `before`), unless it exits
/// first; `true` when it was killed before it finished.
fn kill_at(child: &mut Child, proxy: &Proxy, before: usize, at: KillPoint) -> bool {
    let deadline = Instant::now() + Duration::from_secs(120);
    while proxy.requests() < before + at.requests {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        assert!(Instant::now() < deadline, "the run never made {} requests", at.requests);
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(at.then);
    let finished = child.try_wait().unwrap().is_some();
    let _ = child.kill(); // SIGKILL: no cleanup, no destructor
    let _ = child.wait();
    !finished
}

/// What a publisher had done when it was killed, from the requests the proxy answered:
/// `children` manifests are pushed by digest before the index; `tags` are the tags it puts.
fn phase(seen: &[Seen], children: usize, tags: usize) -> &'static str {
    let puts = |by_digest: bool| {
        seen.iter()
            .filter(|s| {
                s.method == "PUT" && s.kind == Kind::Manifest && s.path.contains("/manifests/sha256:") == by_digest
            })
            .count()
    };
    let uploads = seen
        .iter()
        .any(|s| (s.kind == Kind::Upload && s.method == "PUT") || (s.method == "POST" && s.query.contains("mount=")));
    match (puts(false), puts(true)) {
        (t, _) if t >= tags => "after the last tag PUT",
        (t, _) if t > 0 => "between tag PUTs",
        (_, m) if m > children => "index pushed, no tag yet",
        (_, m) if m > 0 => "child manifests by digest",
        _ if uploads => "blob uploads",
        _ => START,
    }
}

const START: &str = "start: reading, building, checking access";

/// Counts per phase, for the test's output and its checks.
#[derive(Default)]
struct Phases(BTreeMap<&'static str, usize>);

impl Phases {
    fn add(&mut self, p: &'static str) {
        *self.0.entry(p).or_default() += 1;
    }
    fn report(&self, what: &str, elapsed: Duration) -> String {
        let total: usize = self.0.iter().filter(|(k, _)| **k != NOT_KILLED).map(|(_, n)| n).sum();
        let list: Vec<String> = self.0.iter().map(|(k, n)| format!("{k}: {n}")).collect();
        format!("{what}: {total} kills survived in {elapsed:.1?} ({})", list.join(", "))
    }
    /// Fails unless a kill landed in each of `phases`.
    fn cover(&self, what: &str, phases: &[&str]) {
        for p in phases {
            assert!(self.0.get(p).copied().unwrap_or(0) > 0, "{what}: no kill landed in `{p}`: {:?}", self.0);
        }
    }
}

const NOT_KILLED: &str = "finished before the kill";

/// Tags whose digests (`None`: absent) were read after a kill.
fn read_tags(repo: &str, tags: &[&str], basic: Option<&str>, context: &str) -> Vec<Option<String>> {
    tags.iter()
        .map(|t| complete_as(repo, t, basic).map(|r| r.unwrap_or_else(|why| panic!("{context}: {why}"))))
        .collect()
}

/// The kill-and-rerun loop shared by every subcommand. `next(trial)` prepares trial's new
/// content and returns the command to run; every tag is read (whole or absent) after each
/// kill, must then be on the index before it (`old`) or on the one the rerun publishes, and
/// is on the rerun's afterwards.
#[allow(clippy::too_many_arguments)]
fn kill_and_rerun<'a>(
    what: &str,
    proxy: &Proxy,
    repo: &str,
    tags: &[&str],
    basic: Option<&str>,
    children: usize,
    points: &[KillPoint],
    mut next: impl FnMut(usize) -> Command<'a>,
) -> Phases {
    let logs = tempfile::tempdir().unwrap();
    // Its own temporary directory, to see what killed runs leave there.
    let tmp = tempfile::tempdir().unwrap();
    let mut old: Vec<Option<String>> = read_tags(repo, tags, basic, what);
    let mut phases = Phases::default();
    for (trial, at) in points.iter().enumerate() {
        let mut cmd = next(trial);
        cmd.env.push(("TMPDIR", tmp.path().display().to_string()));
        let log = logs.path().join(format!("{trial}.log"));
        let before = proxy.requests();
        let mut child = cmd.spawn(&log);
        let killed = kill_at(&mut child, proxy, before, *at);
        let seen: Vec<Seen> = proxy.seen(|_| true).into_iter().skip(before).collect();
        let landed = if killed { phase(&seen, children, tags.len()) } else { NOT_KILLED };
        phases.add(landed);
        let context = format!("{what}, killed at {at:?} ({landed})");
        let after_kill = read_tags(repo, tags, basic, &context);
        let out = cmd.run();
        assert!(
            out.status.success(),
            "{context}: the rerun failed:\n{}\nthe killed run said:\n{}",
            text(&out).1,
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        let new = printed_digest(&out);
        for ((tag, was), now) in tags.iter().zip(&old).zip(&after_kill) {
            assert!(
                now.is_some() && (now == was || now.as_deref() == Some(new.as_str())),
                "{context}: `{tag}` is on {now:?}, neither the index before ({was:?}) nor the new one ({new})"
            );
        }
        let after_rerun = read_tags(repo, tags, basic, &format!("{context}, rerun"));
        assert!(
            after_rerun.iter().all(|d| d.as_deref() == Some(new.as_str())),
            "{context}: the rerun left {after_rerun:?}, not {new}"
        );
        let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(left.is_empty(), "{context}: the rerun left in the temporary directory: {left:?}");
        old = after_rerun;
    }
    phases
}

/// How long the proxy holds each manifest PUT, so a kill lands inside the short phases too.
const HOLD: Duration = Duration::from_millis(100);

/// A fault-injecting proxy in front of `registry` that holds every manifest PUT for [`HOLD`].
fn holding_proxy(registry: &str) -> Proxy {
    let proxy = Proxy::start(registry);
    proxy.fault("PUT", Kind::Manifest, 1, usize::MAX, Fault::Delay(HOLD));
    proxy
}

/// `reference` on the lab registry, reached through `proxy` instead.
fn via(proxy: &Proxy, reference: &str) -> String {
    reference.replacen(&lab().registry, &proxy.addr, 1)
}

/// `archway build … --push` with two tags, killed at ≥ 30 points spread over its requests
/// (reading the base, building, uploading, the manifests by digest, the index, between and
/// after the tag PUTs). Manifest PUTs go through a proxy that holds each a moment, so a kill
/// lands inside the short phases too.
#[test]
fn kill_9_at_any_moment_never_leaves_a_tag_on_an_incomplete_image() {
    let began = Instant::now();
    let proxy = holding_proxy(&lab().registry);
    let via = |r: &str| via(&proxy, r);
    let lab_repo = unique_repo("kill9");
    let repo = via(&lab_repo);
    let base = unique_repo("kill9-base");
    push_image(&base, "1", &nonce(), 4 << 10);
    let (t1, latest) = (format!("{repo}:1"), format!("{repo}:latest"));
    let ctx = payload_from(&via(&format!("{base}:1")), &nonce(), SIZE);
    let args: Vec<String> = ["build", ".", "--platform", "linux/amd64,linux/arm64", "-t", &t1, "-t", &latest, "--push"]
        .map(String::from)
        .to_vec();
    let cmd = || Command {
        cwd: ctx.path(),
        args: args.clone(),
        env: vec![("DOCKER_HOST", "unix:///nonexistent/docker.sock".into())],
    };
    // A whole run puts the tags that must stay whole from now on; a second (over them, with new
    // content) shows the requests of a run.
    assert!(cmd().run().status.success());
    write_payload(ctx.path(), &nonce(), SIZE);
    let before = proxy.requests();
    let out = cmd().run();
    assert!(out.status.success(), "{}", text(&out).1);
    let reference: Vec<Seen> = proxy.seen(|_| true).into_iter().skip(before).collect();
    let points = kill_points(&reference, 2, 2, 32, HOLD / 2);
    let phases = kill_and_rerun("build --push", &proxy, &lab_repo, &["1", "latest"], None, 2, &points, |trial| {
        write_payload(ctx.path(), &format!("{}-{trial}", nonce()), SIZE);
        cmd()
    });
    eprintln!("{} (a run makes {} requests)", phases.report("build --push", began.elapsed()), reference.len());
    phases.cover(
        "build --push",
        &[START, "blob uploads", "child manifests by digest", "index pushed, no tag yet", "between tag PUTs"],
    );
}

/// `archway merge` of two legs that `build --push-by-digest` pushed, with two tags, killed
/// at every request (each merge annotates its index differently, so each moves the tags).
#[test]
fn kill_9_during_merge_never_leaves_a_tag_on_an_incomplete_image() {
    let began = Instant::now();
    let proxy = holding_proxy(&lab().registry);
    let via = |r: &str| via(&proxy, r);
    let lab_repo = unique_repo("kill9-merge");
    let repo = via(&lab_repo);
    let base = unique_repo("kill9-merge-base");
    push_image(&base, "1", &nonce(), 4 << 10);
    let ctx = payload_from(&via(&format!("{base}:1")), &nonce(), SIZE);
    let no_engine = [("DOCKER_HOST", "unix:///nonexistent/docker.sock")];
    std::fs::create_dir(ctx.path().join("legs")).unwrap();
    for p in ["linux/amd64", "linux/arm64"] {
        let file = format!("legs/{}", p.replace('/', "-"));
        let leg = ["build", ".", "--platform", p, "--push-by-digest", "-t", &repo, "--digest-file", &file];
        let out = archway_env(ctx.path(), &leg, &no_engine);
        assert!(out.status.success(), "{}", text(&out).1);
    }
    let (t1, latest) = (format!("{repo}:1"), format!("{repo}:latest"));
    let cmd = |trial: &str| Command {
        cwd: ctx.path(),
        args: ["merge", "-t", &t1, "-t", &latest, "--platform", "linux/amd64,linux/arm64", "--annotation"]
            .map(String::from)
            .into_iter()
            .chain([format!("index:org.example.trial={trial}-{}", nonce()), "legs".into()])
            .collect(),
        env: vec![],
    };
    assert!(cmd("first").run().status.success());
    let before = proxy.requests();
    let out = cmd("reference").run();
    assert!(out.status.success(), "{}", text(&out).1);
    let reference: Vec<Seen> = proxy.seen(|_| true).into_iter().skip(before).collect();
    let points = kill_points(&reference, 0, 2, 18, HOLD / 2);
    let phases =
        kill_and_rerun("merge", &proxy, &lab_repo, &["1", "latest"], None, 0, &points, |trial| cmd(&trial.to_string()));
    eprintln!("{} (a run makes {} requests)", phases.report("merge", began.elapsed()), reference.len());
    phases.cover("merge", &[START, "index pushed, no tag yet", "between tag PUTs"]);
}

/// `archway promote` of a new two-platform image each time into another repository of the
/// same registry (blobs mounted), with two tags, killed at every request.
#[test]
fn kill_9_during_promote_never_leaves_a_tag_on_an_incomplete_image() {
    let began = Instant::now();
    let proxy = holding_proxy(&lab().registry);
    let via = |r: &str| via(&proxy, r);
    let src = unique_repo("kill9-promote-src");
    let lab_repo = unique_repo("kill9-promote");
    let dst = via(&lab_repo);
    let ctx = tempfile::tempdir().unwrap();
    let cmd = |tag: &str| {
        push_image(&src, tag, &format!("{tag}-{}", nonce()), 64 << 10);
        Command {
            cwd: ctx.path(),
            args: vec!["promote".into(), via(&format!("{src}:{tag}")), format!("{dst}:1"), format!("{dst}:latest")],
            env: vec![],
        }
    };
    assert!(cmd("first").run().status.success());
    let reference_cmd = cmd("reference");
    let before = proxy.requests();
    let out = reference_cmd.run();
    assert!(out.status.success(), "{}", text(&out).1);
    let reference: Vec<Seen> = proxy.seen(|_| true).into_iter().skip(before).collect();
    let points = kill_points(&reference, 2, 2, 16, HOLD / 2);
    let phases = kill_and_rerun("promote", &proxy, &lab_repo, &["1", "latest"], None, 2, &points, |trial| {
        cmd(&format!("t{trial}"))
    });
    eprintln!("{} (a run makes {} requests)", phases.report("promote", began.elapsed()), reference.len());
    phases.cover(
        "promote",
        &[START, "blob uploads", "child manifests by digest", "index pushed, no tag yet", "between tag PUTs"],
    );
}

/// `archway promote` from the lab registry into a second registry that wants a password
/// (blobs streamed through archway), with two tags, killed at every request to the second.
#[test]
fn kill_9_during_promote_across_registries_never_leaves_a_tag_on_an_incomplete_image() {
    const USER: &str = "ci-bot";
    const PASSWORD: &str = "kill9-pa55";
    let began = Instant::now();
    let second = AuthRegistry::start(USER, PASSWORD);
    let proxy = holding_proxy(&second.host);
    let src = unique_repo("kill9-xpromote-src");
    let path = format!("acme/kill9-{}", nonce());
    let (direct, dst) = (format!("{}/{path}", second.host), format!("{}/{path}", proxy.addr));
    let basic = format!("{USER}:{PASSWORD}");
    let ctx = tempfile::tempdir().unwrap();
    let cmd = |tag: &str| {
        push_image(&src, tag, &format!("{tag}-{}", nonce()), 64 << 10);
        Command {
            cwd: ctx.path(),
            args: vec!["promote".into(), format!("{src}:{tag}"), format!("{dst}:1"), format!("{dst}:latest")],
            env: vec![
                ("ARCHWAY_REGISTRY", proxy.addr.clone()),
                ("ARCHWAY_REGISTRY_USERNAME", USER.into()),
                ("ARCHWAY_REGISTRY_PASSWORD", PASSWORD.into()),
            ],
        }
    };
    let out = cmd("first").run();
    assert!(out.status.success(), "{}", text(&out).1);
    let reference_cmd = cmd("reference");
    let before = proxy.requests();
    let out = reference_cmd.run();
    assert!(out.status.success(), "{}", text(&out).1);
    let reference: Vec<Seen> = proxy.seen(|_| true).into_iter().skip(before).collect();
    let points = kill_points(&reference, 2, 2, 16, HOLD / 2);
    let phases = kill_and_rerun(
        "promote to another registry",
        &proxy,
        &direct,
        &["1", "latest"],
        Some(&basic),
        2,
        &points,
        |t| cmd(&format!("t{t}")),
    );
    eprintln!(
        "{} (a run makes {} requests)",
        phases.report("promote to another registry", began.elapsed()),
        reference.len()
    );
    phases.cover(
        "promote to another registry",
        &[START, "blob uploads", "child manifests by digest", "index pushed, no tag yet", "between tag PUTs"],
    );
}

/// What an OCI layout directory holds: `None` when absent; the digest of the image its
/// `index.json` names when it is whole (every blob there, of the right digest and size, every
/// layer's diff_id right, and skopeo reads it); else why not.
fn layout_state(dir: &Path) -> Option<Result<String, String>> {
    if !dir.exists() {
        return None;
    }
    let check = || -> Result<String, String> {
        let images = support::layout::images(dir)?;
        for image in images.values() {
            for i in 0..image.layers.len() {
                image.layer_tar(dir, i)?;
            }
        }
        let index = json(&std::fs::read(dir.join("index.json")).map_err(|e| e.to_string())?);
        let top = index["manifests"][0]["digest"].as_str().ok_or("index.json names nothing")?.to_string();
        let raw = std::process::Command::new("skopeo")
            .args(["inspect", "--raw", &format!("oci:{}", dir.display())])
            .output()
            .map_err(|e| format!("skopeo: {e}"))?;
        if !raw.status.success() || sha256(&raw.stdout) != top {
            return Err(format!("skopeo reads {}: {}", sha256(&raw.stdout), String::from_utf8_lossy(&raw.stderr)));
        }
        Ok(top)
    };
    Some(check().map_err(|why| format!("{} is not a whole OCI layout: {why}", dir.display())))
}

/// `archway build` to an OCI layout (no push), killed at moments spread over its whole run
/// and beyond: the output is absent (when it was), the old whole layout or the new whole one;
/// nothing is left beside it that trips the rerun, which succeeds.
#[test]
fn kill_9_during_a_layout_write_leaves_the_old_layout_or_the_new_one() {
    let began = Instant::now();
    let base = unique_repo("kill9-layout-base");
    push_image(&base, "1", &nonce(), 4 << 10);
    let ctx = payload_from(&format!("{base}:1"), &nonce(), SIZE);
    let tmp = tempfile::tempdir().unwrap();
    let cmd = |out: &str| Command {
        cwd: ctx.path(),
        args: ["build", ".", "--platform", "linux/amd64,linux/arm64", "--output", out].map(String::from).to_vec(),
        env: vec![
            ("DOCKER_HOST", "unix:///nonexistent/docker.sock".into()),
            ("TMPDIR", tmp.path().display().to_string()),
        ],
    };
    let t = Instant::now();
    let out = cmd("out").run();
    let whole_run = t.elapsed();
    assert!(out.status.success(), "{}", text(&out).1);
    let mut old = layout_state(&ctx.path().join("out")).expect("written").unwrap_or_else(|e| panic!("{e}"));
    let logs = tempfile::tempdir().unwrap();
    let (mut killed, mut moved) = (0, 0);
    const TRIALS: u32 = 20;
    for trial in 0..TRIALS {
        write_payload(ctx.path(), &format!("{}-{trial}", nonce()), SIZE);
        // Every fourth into a directory that does not exist yet.
        let name = if trial % 4 == 0 { format!("fresh-{trial}") } else { "out".into() };
        let dir = ctx.path().join(&name);
        let c = cmd(&name);
        let mut child = c.spawn(&logs.path().join(format!("{trial}.log")));
        // From a tenth of a run to a fifth past its end: the layout is written at the end.
        std::thread::sleep(whole_run.mul_f64(0.1 + 1.1 * f64::from(trial) / f64::from(TRIALS - 1)));
        killed += usize::from(child.try_wait().unwrap().is_none());
        let _ = child.kill();
        let _ = child.wait();
        let after_kill = layout_state(&dir).map(|r| r.unwrap_or_else(|e| panic!("killed in trial {trial}: {e}")));
        let out = c.run();
        assert!(out.status.success(), "trial {trial}: the rerun failed: {}", text(&out).1);
        let new = layout_state(&dir).expect("written").unwrap_or_else(|e| panic!("trial {trial}, rerun: {e}"));
        let was = (name == "out").then(|| old.clone());
        assert!(
            after_kill.is_none() && was.is_none() || after_kill == was || after_kill.as_ref() == Some(&new),
            "trial {trial}: after the kill `{name}` held {after_kill:?}, neither what it held before ({was:?}) nor the new image ({new})"
        );
        moved += usize::from(name == "out" && after_kill.as_ref() == Some(&new));
        let left: Vec<String> = std::fs::read_dir(ctx.path())
            .unwrap()
            .chain(std::fs::read_dir(&dir).unwrap())
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(left.is_empty(), "trial {trial}: the rerun left {left:?} beside or in the layout");
        let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(left.is_empty(), "trial {trial}: the rerun left in the temporary directory: {left:?}");
        if name == "out" {
            old = new;
        }
    }
    eprintln!(
        "layout: {killed} of {TRIALS} runs killed before they finished, {moved} had replaced `out` already, in {:.1?}",
        began.elapsed()
    );
}

/// Bytes per platform of the content the kill tests build: small, so that the ~100 runs stay
/// quick.
const SIZE: usize = 256 << 10;

/// Checks what a publisher that raced another for `tag` (in `repo` on the lab registry,
/// reached through `proxy`) says it published: the index it printed is whole by digest and is
/// the one it names in its log; each tag it says it put was really put on that index (the
/// proxy saw the PUT of those bytes answered 201) — the other may have moved it since.
fn truthful(o: &Output, who: &str, proxy: &Proxy, before: usize, lab_repo: &str, tag: &str) -> String {
    let (_, stderr) = text(o);
    assert!(o.status.success(), "{who}: {stderr}");
    let digest = printed_digest(o);
    match complete_as(lab_repo, &digest, None) {
        Some(Ok(_)) => {}
        Some(Err(why)) => panic!("{who} printed {digest}: {why}"),
        None => panic!("{who} printed {digest}, which the registry lacks"),
    }
    let (name, tag_name) = tag.rsplit_once(':').unwrap();
    let path = format!("/v2/{}/manifests/{tag_name}", name.split_once('/').unwrap().1);
    assert!(stderr.contains(&digest), "{who} names the index it printed ({digest}) in its log: {stderr}");
    let claims = stderr.lines().any(|l| l.trim() == format!("tagged {tag}"));
    assert!(claims, "{who} says it tagged {tag}: {stderr}");
    let puts = proxy.seen(|_| true).into_iter().skip(before).filter(|s| {
        s.method == "PUT" && s.path == path && s.status == 201 && s.body_digest.as_deref() == Some(digest.as_str())
    });
    assert_eq!(puts.count(), 1, "{who} says it tagged {tag} with {digest}: the registry took that PUT once");
    digest
}

/// Two `archway build --push` of different content to one tag at the same moment, 20 times:
/// the tag ends on one whole index, one of theirs, and each says truly what it published.
#[test]
fn two_publishers_racing_for_one_tag_leave_it_on_one_whole_index() {
    let began = Instant::now();
    let proxy = Proxy::start(&lab().registry);
    let via = |r: &str| via(&proxy, r);
    let lab_repo = unique_repo("race");
    let base = unique_repo("race-base");
    push_image(&base, "1", &nonce(), 4 << 10);
    let tag = format!("{}:latest", via(&lab_repo));
    let mut won = [0; 2];
    for round in 0..20 {
        let ctxs = ["a", "b"]
            .map(|who| payload_from(&via(&format!("{base}:1")), &format!("{who}{round}-{}", nonce()), 16 << 10));
        let before = proxy.requests();
        let children = ctxs.each_ref().map(|ctx| {
            let mut c = support::spawn::archway();
            support::spawn::pass_lab_env(&mut c)
                .args(["build", ".", "--platform", "linux/amd64,linux/arm64", "-t", &tag, "--push"])
                .args(["--metadata-file", "metadata.json"])
                .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
                .current_dir(ctx.path())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            c.spawn().unwrap()
        });
        let outs = children.map(|c| c.wait_with_output().unwrap());
        let digests: Vec<String> = ["a", "b"]
            .iter()
            .zip(&outs)
            .map(|(who, o)| truthful(o, &format!("round {round}, {who}"), &proxy, before, &lab_repo, &tag))
            .collect();
        assert_ne!(digests[0], digests[1], "different content, different indexes");
        // The metadata file says the same: this index, under the tag it put.
        for (ctx, d) in ctxs.iter().zip(&digests) {
            let m = json(&std::fs::read(ctx.path().join("metadata.json")).unwrap());
            assert_eq!(m["digest"], d.as_str(), "round {round}: {m}");
            assert_eq!(m["tags"], serde_json::json!([tag]), "round {round}: {m}");
        }
        let now = complete(&lab_repo, "latest").expect("the tag exists").unwrap_or_else(|why| panic!("{why}"));
        let i = digests.iter().position(|d| *d == now);
        let i = i.unwrap_or_else(|| panic!("round {round}: the tag is on {now}, neither of {digests:?}"));
        won[i] += 1;
    }
    eprintln!("20 races of build --push: a won {}, b won {}, in {:.1?}", won[0], won[1], began.elapsed());
}

/// Two `archway promote` of different images to one tag at the same moment, 20 times: the tag
/// ends on one whole index, one of theirs, and each says truly what it published.
#[test]
fn two_promotes_racing_for_one_tag_leave_it_on_one_whole_index() {
    let began = Instant::now();
    let proxy = Proxy::start(&lab().registry);
    let via = |r: &str| via(&proxy, r);
    let src = unique_repo("race-promote-src");
    let lab_repo = unique_repo("race-promote");
    let tag = format!("{}:latest", via(&lab_repo));
    let ctx = tempfile::tempdir().unwrap();
    let mut won = [0; 2];
    for round in 0..20 {
        let pushed = ["a", "b"]
            .map(|who| push_image(&src, &format!("{who}{round}"), &format!("{who}{round}-{}", nonce()), 16 << 10));
        let before = proxy.requests();
        let children = ["a", "b"].map(|who| {
            let mut c = support::spawn::archway();
            support::spawn::pass_lab_env(&mut c)
                .args(["promote", &via(&format!("{src}:{who}{round}")), &tag])
                .current_dir(ctx.path())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            c.spawn().unwrap()
        });
        let outs = children.map(|c| c.wait_with_output().unwrap());
        for (i, who) in ["a", "b"].iter().enumerate() {
            let d = truthful(&outs[i], &format!("round {round}, {who}"), &proxy, before, &lab_repo, &tag);
            assert_eq!(d, pushed[i], "round {round}, {who}: promote prints the index it copied");
        }
        let now = complete(&lab_repo, "latest").expect("the tag exists").unwrap_or_else(|why| panic!("{why}"));
        let i = pushed.iter().position(|d| *d == now);
        won[i.unwrap_or_else(|| panic!("round {round}: the tag is on {now}, neither of {pushed:?}"))] += 1;
    }
    eprintln!("20 races of promote: a won {}, b won {}, in {:.1?}", won[0], won[1], began.elapsed());
}

/// A build's output is the user's (or an attacker's, through a dependency) text: on GitHub it
/// must not run workflow commands. Every line of builder output that looks like one is only
/// printed between `::stop-commands::TOKEN` and `::TOKEN::`.
#[test]
fn build_output_cannot_issue_github_workflow_commands() {
    let ctx = context(&format!(
        "FROM {}\nARG NONCE\nRUN echo \"$NONCE\" && echo '::error::injected by the build' && echo '::add-mask::not-a-secret'\n",
        lab().base
    ));
    let ws = tempfile::tempdir().unwrap();
    let out_file = ws.path().join("github_output");
    let nonce = format!("NONCE={}", nonce());
    let env: Vec<(&str, String)> = vec![
        ("GITHUB_ACTIONS", "true".into()),
        ("GITHUB_WORKSPACE", ctx.path().display().to_string()),
        ("GITHUB_REPOSITORY", "acme/widget".into()),
        ("GITHUB_REF", "refs/heads/main".into()),
        ("GITHUB_REF_NAME", "main".into()),
        ("GITHUB_REF_TYPE", "branch".into()),
        ("GITHUB_SHA", "0123456789abcdef0123456789abcdef01234567".into()),
        ("GITHUB_EVENT_NAME", "push".into()),
        ("GITHUB_OUTPUT", out_file.display().to_string()),
        ("INPUT_PLATFORMS", "linux/amd64".into()),
        ("INPUT_PUSH", "false".into()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = archway_env(ctx.path(), &["build", "--build-arg", &nonce, "--output", "out"], &env);
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let mut stopped: Option<String> = None;
    let mut injected = 0;
    for line in stderr.lines() {
        if let Some(token) = line.strip_prefix("::stop-commands::") {
            stopped = Some(token.to_string());
            continue;
        }
        if stopped.as_deref().is_some_and(|t| line == format!("::{t}::")) {
            stopped = None;
            continue;
        }
        if line.contains("::error::injected") || line.contains("::add-mask::not-a-secret") {
            injected += 1;
            assert!(stopped.is_some(), "a builder line ran as a workflow command: `{line}`\n{stderr}");
        }
    }
    assert!(injected > 0, "the build printed the lines: {stderr}");
}
