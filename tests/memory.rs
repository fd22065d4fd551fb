//! Bounded memory (issue 12): archway's peak RSS, measured by GNU time (`/usr/bin/time -v`,
//! installed by `scripts/lab-up`) around the real binary, stays bounded however large the
//! layers are: every layer is streamed between files and sockets, never held whole.
//!
//! - a 2 GiB layer pushed to a registry, and promoted to another registry: < 100 MiB each;
//! - 8 platforms built and pushed in parallel: < 300 MiB;
//! - an image with a 2 GiB layer written as a `docker load` archive (`outputs`): < 100 MiB;
//! - a `docker save` archive with a 2 GiB layer (the classic image store's output) converted to
//!   an OCI layout: < 100 MiB;
//! - a 512 MiB build context sent to the engine's classic builder (no buildx: Bitbucket's
//!   default runtime), the image read back and pushed: < 100 MiB.
//!
//! The data is cheap to make and still measures what we want. Files are sparse (no disk
//! space, read at memory speed). The pushed layers are gzip at level 0 (`--compression-level
//! 0`: stored blocks), so the blob on the wire and in the registry is as large as the file
//! (a gzip of zeros at any other level would be a few MiB and prove nothing). The registries
//! are ones this test starts with their blobs in files (`AuthRegistry::on_disk`), since the
//! lab's registry keeps everything in its own memory. A case's files (context, registries,
//! archway's scratch) go to a tmpfs of its own where the machine has the memory ([`Space`]),
//! so the GiBs need no free disk. Each case prints its figure (`--nocapture`).

#![cfg(feature = "lab")]

mod support;

use std::io::{Seek as _, SeekFrom, Write as _};
use std::path::Path;
use std::process::Command;

use sha2::Digest as _;
use support::auth_registry::AuthRegistry;
use support::lab::*;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// The cases run one at a time: on two shared cores, GiBs moved by two cases at once take
/// twice as long, and the figures are cleaner alone.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// What GNU time said about one process.
struct Measured {
    success: bool,
    stdout: String,
    stderr: String,
    peak_rss: u64,
    wall: std::time::Duration,
}

/// Runs `program args` under `/usr/bin/time -v` (the lab's variables and `env`, nothing else
/// of this process's environment) in `cwd`; its peak RSS from the report GNU time writes.
fn measure(cwd: &Path, program: &Path, args: &[&str], env: &[(&str, &str)]) -> Measured {
    assert!(Path::new("/usr/bin/time").exists(), "GNU time is missing: run `scripts/lab-up` (it installs `time`)");
    let report = tempfile::NamedTempFile::new().unwrap();
    let mut c = support::spawn::clean("/usr/bin/time");
    support::spawn::pass_lab_env(&mut c)
        .arg("-v")
        .arg("-o")
        .arg(report.path())
        .arg(program)
        .args(args)
        .current_dir(cwd);
    for (k, v) in env {
        c.env(k, v);
    }
    let began = std::time::Instant::now();
    let out = c.output().expect("/usr/bin/time runs");
    let wall = began.elapsed();
    let report = std::fs::read_to_string(report.path()).unwrap();
    let kib: u64 = report
        .lines()
        .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes):"))
        .unwrap_or_else(|| panic!("no peak RSS in GNU time's report:\n{report}"))
        .trim()
        .parse()
        .unwrap();
    let (stdout, stderr) = text(&out);
    Measured { success: out.status.success(), stdout, stderr, peak_rss: kib * 1024, wall }
}

fn report(case: &str, m: &Measured, bound: u64) {
    eprintln!(
        "peak RSS of {case}: {:.1} MiB (bound {} MiB), wall {:.1}s",
        m.peak_rss as f64 / MIB as f64,
        bound / MIB,
        m.wall.as_secs_f64()
    );
    assert!(m.success, "{case} failed:\n{}\n{}", m.stdout, m.stderr);
    assert!(
        m.peak_rss < bound,
        "{case}: peak RSS {} MiB, over the bound of {} MiB\n{}",
        m.peak_rss / MIB,
        bound / MIB,
        m.stderr
    );
}

/// Where a case's files go — its context, its registries' blobs, archway's scratch (`TMPDIR`).
/// A tmpfs mounted for the case when the machine has the memory to spare: the GiBs then cost
/// no disk (a CI machine's disk may be nearly full by the time this binary runs: one had 3 GiB
/// left) and move at memory speed. Otherwise a directory in the temp dir, whose disk must then
/// have the space. Either way the measured process's RSS is the same: what it writes to files
/// is the kernel's page cache, not the writer's memory.
struct Space {
    dir: tempfile::TempDir,
    mounted: bool,
}

impl Space {
    /// Room for `gib` GiB of files; fails with the reason when the machine has neither the
    /// memory nor the disk.
    fn new(gib: u64) -> Space {
        let dir = tempfile::tempdir().unwrap();
        // What stays for the engine, the registries and the processes measured.
        const HEADROOM: u64 = 4;
        let memory = mem_available();
        if memory >= (gib + HEADROOM) * GIB {
            let mounted = Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={}G,mode=0700", gib + 1), "archway-memory-test"])
                .arg(dir.path())
                .output();
            match mounted {
                Ok(out) if out.status.success() => {
                    eprintln!("this case's files go to a tmpfs of {} GiB at {}", gib + 1, dir.path().display());
                    return Space { dir, mounted: true };
                }
                Ok(out) => eprintln!(
                    "no tmpfs for this case ({}); its files go to {}",
                    String::from_utf8_lossy(&out.stderr).trim(),
                    dir.path().display()
                ),
                Err(e) => eprintln!("no tmpfs for this case (mount: {e}); its files go to {}", dir.path().display()),
            }
        }
        let disk = free_space(dir.path());
        assert!(
            disk >= gib * GIB,
            "this case writes about {gib} GiB of files: {} GiB of memory are available (a tmpfs needs {} GiB with \
             what the lab uses) and {} GiB are free under {}; free some space (or set TMPDIR)",
            memory / GIB,
            gib + HEADROOM,
            disk / GIB,
            dir.path().display()
        );
        Space { dir, mounted: false }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A context (a Dockerfile in a directory of its own) in this space.
    fn context(&self, dockerfile: &str) -> tempfile::TempDir {
        context_in(self.path(), dockerfile)
    }

    /// archway under `/usr/bin/time -v`, its scratch files in this space.
    fn archway(&self, cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Measured {
        let mut env = env.to_vec();
        env.push(("TMPDIR", self.path().to_str().unwrap()));
        measure(cwd, Path::new(support::spawn::ARCHWAY), args, &env)
    }
}

impl Drop for Space {
    fn drop(&mut self) {
        if self.mounted {
            // Lazily: a process of the case's that still holds a file there must not keep the
            // mount (and its memory) for the rest of the run.
            let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
        }
    }
}

/// The engine's data root (`docker info`), or its parent's when the engine has not made it.
fn docker_root_dir() -> std::path::PathBuf {
    let out = Command::new("docker").args(["info", "--format", "{{.DockerRootDir}}"]).output().unwrap();
    assert!(out.status.success(), "docker info: {}", String::from_utf8_lossy(&out.stderr));
    let root = std::path::PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    root.ancestors().find(|p| p.exists()).unwrap_or(Path::new("/")).to_path_buf()
}

/// `MemAvailable` from `/proc/meminfo`, in bytes.
fn mem_available() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("MemAvailable in /proc/meminfo");
    kib * 1024
}

/// Bytes free for an unprivileged writer on the filesystem holding `dir`.
fn free_space(dir: &Path) -> u64 {
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).unwrap();
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0, "statvfs of {}", dir.display());
    st.f_bavail as u64 * st.f_frsize as u64
}

/// A sparse file of `len` zero bytes.
fn sparse(path: &Path, len: u64) {
    std::fs::File::create(path).unwrap().set_len(len).unwrap();
}

/// The image manifest of `reference` (an index of one platform, as archway pushes it, is
/// followed to its child).
fn image_manifest(name: &str, reference: &str) -> serde_json::Value {
    let (_, bytes) = manifest(name, reference).unwrap_or_else(|| panic!("{name}:{reference} exists"));
    let m = json(&bytes);
    match m["manifests"].as_array() {
        Some(children) => image_manifest(name, children[0]["digest"].as_str().unwrap()),
        None => m,
    }
}

/// The size the registry gives for a blob (`HEAD`, `Content-Length`).
fn blob_size(name: &str, digest: &str) -> u64 {
    let (host, repo) = name.split_once('/').unwrap();
    let out =
        Command::new("curl").args(["-fsSI", &format!("http://{host}/v2/{repo}/blobs/{digest}")]).output().unwrap();
    assert!(out.status.success(), "HEAD blob {digest} in {name}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
        .expect("a Content-Length")
}

#[test]
fn pushing_and_promoting_a_2_gib_layer_stay_under_100_mib() {
    let _alone = one_at_a_time();
    // The output layout, both registries' copies and the promote's spool file: 2 GiB each.
    let space = Space::new(9);
    let (source, target) = (AuthRegistry::on_disk(space.path()), AuthRegistry::on_disk(space.path()));
    let ctx = space.context("FROM scratch\nCOPY big /big\n");
    sparse(&ctx.path().join("big"), 2 * GIB);
    let image = format!("{}/memory/big", source.host);

    // (a) Built by the assembler (no engine) and pushed: the layer is hashed, "compressed" and
    // written to the output layout, then uploaded in chunks from that file.
    let pushed = space.archway(
        ctx.path(),
        &["build", ".", "--platform", "linux/amd64", "--compression-level", "0", "-t", &format!("{image}:1"), "--push"],
        &[],
    );
    report("`archway build --push` of a 2 GiB layer", &pushed, 100 * MIB);
    let layers = image_manifest(&image, "1")["layers"].clone();
    let layer = layers[0]["digest"].as_str().unwrap().to_string();
    assert!(layers[0]["size"].as_u64().unwrap() > 2 * GIB, "the pushed layer is not 2 GiB: {layers}");
    assert_eq!(blob_size(&image, &layer), layers[0]["size"].as_u64().unwrap(), "the registry holds the whole layer");

    // (b) Promoted to another registry: downloaded to a temporary file, uploaded from it.
    let copy = format!("{}/memory/copy", target.host);
    let promoted = space.archway(ctx.path(), &["promote", &format!("{image}:1"), &format!("{copy}:release")], &[]);
    report("`archway promote` of a 2 GiB layer to another registry", &promoted, 100 * MIB);
    assert!(promoted.stderr.contains("2 uploaded (2.0 GiB at "), "{}", promoted.stderr);
    assert_eq!(tag_digest(&copy, "release"), tag_digest(&image, "1"), "the same index under the new tag");
    assert_eq!(blob_size(&copy, &layer), layers[0]["size"].as_u64().unwrap(), "the other registry holds the layer");
}

#[test]
fn a_512_mib_context_through_the_classic_builder_stays_under_100_mib() {
    let _alone = one_at_a_time();
    let _machine = support::machine::lock();
    // The context's tar and the image read back, in archway's scratch.
    let space = Space::new(2);
    // The engine's copy of the context and its layer, on the engine's disk: ~1 GiB.
    let root = docker_root_dir();
    let free = free_space(&root);
    assert!(
        free >= 2 * GIB,
        "the engine's data root {} has {} MiB free; this case needs 2 GiB",
        root.display(),
        free / MIB
    );
    // A RUN on the target: with no buildx, the engine's classic builder builds it (Engine API).
    let ctx = space.context(&format!("FROM {}\nRUN true\nCOPY big /big\n", lab().base));
    sparse(&ctx.path().join("big"), 512 * MIB);
    let repo = unique_repo("memory-classic");
    let m = space.archway(
        ctx.path(),
        &["build", ".", "--platform", "linux/amd64", "-t", &format!("{repo}:1"), "--push"],
        &[("ARCHWAY_DOCKER", "/nonexistent/docker")],
    );
    report("`archway build --push` of a 512 MiB context through the classic builder", &m, 100 * MIB);
    assert!(m.stderr.contains("classic builder"), "the engine's classic builder built it:\n{}", m.stderr);
    let (_, bytes) = manifest(&repo, "1").unwrap();
    let index: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(index["manifests"][0]["platform"]["architecture"], "amd64", "{index}");
}

#[test]
fn eight_platforms_in_parallel_stay_under_300_mib() {
    let _alone = one_at_a_time();
    let space = Space::new(5);
    let registry = AuthRegistry::on_disk(space.path());
    // Each platform copies a file of its own (different sizes, so 8 different layers of
    // 256 MiB each), all built and pushed at once (`--jobs` defaults to all).
    let ctx = space
        .context("FROM scratch\nARG TARGETARCH\nARG TARGETVARIANT\nCOPY part-${TARGETARCH}${TARGETVARIANT} /part\n");
    let platforms = [
        "linux/amd64",
        "linux/arm64",
        "linux/arm/v7",
        "linux/arm/v6",
        "linux/386",
        "linux/ppc64le",
        "linux/s390x",
        "linux/riscv64",
    ];
    for (i, p) in platforms.iter().enumerate() {
        let name = p.trim_start_matches("linux/").replace('/', "");
        sparse(&ctx.path().join(format!("part-{name}")), 256 * MIB + i as u64 * 4096);
    }
    let image = format!("{}/memory/eight", registry.host);
    let pushed = space.archway(
        ctx.path(),
        &[
            "build",
            ".",
            "--platform",
            &platforms.join(","),
            "--compression-level",
            "0",
            "-t",
            &format!("{image}:1"),
            "--push",
        ],
        &[],
    );
    report("`archway build --push` of 8 platforms with a 256 MiB layer each", &pushed, 300 * MIB);
    let (_, index) = manifest(&image, "1").unwrap();
    let index = json(&index);
    let mut got = platforms_of(&index);
    got.sort();
    let mut want: Vec<String> = platforms.iter().map(|p| p.to_string()).collect();
    want.sort();
    assert_eq!(got, want);
    let mut layers: Vec<String> = platform_manifests(&index)
        .iter()
        .map(|(p, d)| {
            let layer = &image_manifest(&image, d)["layers"][0];
            assert!(layer["size"].as_u64().unwrap() > 256 * MIB, "{p}: {layer}");
            layer["digest"].as_str().unwrap().to_string()
        })
        .collect();
    layers.sort();
    layers.dedup();
    assert_eq!(layers.len(), 8, "a layer of its own per platform");
}

#[test]
fn exporting_a_2_gib_image_as_a_docker_archive_stays_under_100_mib() {
    let _alone = one_at_a_time();
    let space = Space::new(5);
    let ctx = space.context("FROM scratch\nCOPY big /big\n");
    sparse(&ctx.path().join("big"), 2 * GIB);
    // `outputs: type=docker,dest=…` (also what `load` sends the engine when nothing is pushed):
    // the layout's blobs streamed into the tar.
    let tar = ctx.path().join("image.tar");
    let dest = format!("type=docker,dest={}", tar.display());
    let m = space.archway(
        ctx.path(),
        &["build", ".", "--platform", "linux/amd64", "--compression-level", "0", "--output", &dest],
        &[],
    );
    report("`archway build --output type=docker` of a 2 GiB layer", &m, 100 * MIB);
    // What `docker load` reads: manifest.json, and each layer it names at its full size.
    let mut members = std::collections::HashMap::new();
    let mut manifest_json = Vec::new();
    let mut archive = tar::Archive::new(std::fs::File::open(&tar).unwrap());
    for e in archive.entries_with_seek().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().display().to_string();
        if name == "manifest.json" {
            std::io::Read::read_to_end(&mut e, &mut manifest_json).unwrap();
        }
        members.insert(name, e.size());
    }
    let layers = json(&manifest_json)[0]["Layers"].clone();
    let layer = layers[0].as_str().unwrap_or_else(|| panic!("a layer in manifest.json: {layers}"));
    assert!(members[layer] > 2 * GIB, "the layer is whole in the archive: {members:?}");
}

// ---------------------------------------------------------------------------------------------
// The classic image store's `docker save` archive, converted to an OCI layout.

/// Where a docker save archive is written: zero runs become holes (seeks), so a 2 GiB layer
/// costs neither disk space nor time; the inner layer tar is hashed as it is written (its
/// diff_id).
struct SparseTar {
    file: std::fs::File,
    pos: u64,
}

impl SparseTar {
    fn bytes(&mut self, b: &[u8]) {
        self.file.write_all(b).unwrap();
        self.pos += b.len() as u64;
    }
    fn zeros(&mut self, n: u64) {
        self.pos += n;
        self.file.seek(SeekFrom::Start(self.pos)).unwrap();
    }
    fn pad(&mut self) {
        self.zeros((512 - self.pos % 512) % 512);
    }
    fn header(&mut self, path: &str, size: u64) -> [u8; 512] {
        let mut h = tar::Header::new_ustar();
        h.set_path(path).unwrap();
        h.set_size(size);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        let raw = *h.as_bytes();
        self.bytes(&raw);
        raw
    }
    fn entry(&mut self, path: &str, data: &[u8]) {
        self.header(path, data.len() as u64);
        self.bytes(data);
        self.pad();
    }
}

/// Writes, as the classic store's `docker save` does (the legacy form: `ID/layer.tar`, named
/// by `manifest.json`), an image whose one layer holds a file of `len` zero bytes. Returns the
/// layer's diff_id.
fn docker_save_archive(path: &Path, len: u64) -> String {
    let mut t = SparseTar { file: std::fs::File::create(path).unwrap(), pos: 0 };
    let layer_len = 512 + len.div_ceil(512) * 512 + 1024;
    t.header("0123abcd/layer.tar", layer_len);
    let mut diff_id = sha2::Sha256::new();
    diff_id.update(t.header("big", len));
    let zeros = vec![0u8; 1 << 20];
    let mut left = layer_len - 512;
    while left > 0 {
        let n = left.min(zeros.len() as u64);
        diff_id.update(&zeros[..n as usize]);
        left -= n;
    }
    t.zeros(layer_len - 512);
    t.pad();
    let diff_id = format!("sha256:{}", hex::encode(diff_id.finalize()));
    let config =
        format!(r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{diff_id}"]}}}}"#);
    t.entry("0123abcd.json", config.as_bytes());
    t.entry(
        "manifest.json",
        br#"[{"Config":"0123abcd.json","RepoTags":["archway-buildx/linux-amd64:1"],"Layers":["0123abcd/layer.tar"]}]"#,
    );
    t.zeros(1024);
    t.file.set_len(t.pos).unwrap();
    diff_id
}

/// Run by [`converting_a_docker_save_archive_with_a_2_gib_layer_stays_under_100_mib`] in a
/// process of its own (this test binary again, under GNU time): converts the archive it is
/// given into the layout it is given.
#[test]
#[ignore = "the child process of converting_a_docker_save_archive_with_a_2_gib_layer_stays_under_100_mib"]
fn docker_save_conversion_child() {
    let (Some(saved), Some(layout)) =
        (std::env::var_os("ARCHWAY_MEMORY_SAVED"), std::env::var_os("ARCHWAY_MEMORY_LAYOUT"))
    else {
        eprintln!("nothing to convert: this test runs as the child of another");
        return;
    };
    let platform = "linux/amd64".parse().unwrap();
    archway::builder::saved::to_layout(Path::new(&saved), Path::new(&layout), &platform, &[]).unwrap();
}

#[test]
fn converting_a_docker_save_archive_with_a_2_gib_layer_stays_under_100_mib() {
    let _alone = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let (saved, layout) = (dir.path().join("saved.tar"), dir.path().join("layout"));
    let diff_id = docker_save_archive(&saved, 2 * GIB);
    let me = std::env::current_exe().unwrap();
    let m = measure(
        dir.path(),
        &me,
        &["--exact", "docker_save_conversion_child", "--ignored", "--nocapture", "--test-threads", "1"],
        &[("ARCHWAY_MEMORY_SAVED", saved.to_str().unwrap()), ("ARCHWAY_MEMORY_LAYOUT", layout.to_str().unwrap())],
    );
    report("converting a `docker save` archive with a 2 GiB layer", &m, 100 * MIB);
    assert!(m.stdout.contains("1 passed"), "the child converted: {}", m.stdout);

    // What the conversion wrote: an OCI layout whose one layer is the gzip of the saved tar.
    let index = json(&std::fs::read(layout.join("index.json")).unwrap());
    let blob = |d: &str| layout.join("blobs/sha256").join(d.strip_prefix("sha256:").unwrap());
    let image = json(&std::fs::read(blob(index["manifests"][0]["digest"].as_str().unwrap())).unwrap());
    let layer = &image["layers"][0];
    assert_eq!(layer["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip");
    let gz = std::fs::read(blob(layer["digest"].as_str().unwrap())).unwrap();
    assert_eq!(layer["size"].as_u64().unwrap(), gz.len() as u64);
    assert_eq!(sha256(&gz), layer["digest"].as_str().unwrap(), "the layer blob is named by its digest");
    let mut unzipped = sha2::Sha256::new();
    let n = std::io::copy(&mut flate2::read::GzDecoder::new(&gz[..]), &mut unzipped).unwrap();
    assert!(n > 2 * GIB, "the whole layer is there ({n} bytes)");
    assert_eq!(format!("sha256:{}", hex::encode(unzipped.finalize())), diff_id, "the layer's diff_id is unchanged");
}
