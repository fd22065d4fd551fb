#![cfg(feature = "lab")]
//! Oracle conformance of the `assembled` strategy (issue 8): every Dockerfile under
//! `tests/fixtures/assemble/` is built for linux/amd64 and linux/arm64 by plain
//! `docker buildx build` (the oracle, BuildKit) and by `archway build --prefer assembled` (the
//! candidate) into OCI layouts. Per platform, the root filesystems after all layers are applied
//! and the image configs must be equal, but for the differences listed in [`ALLOWED`].
//!
//! The candidate runs with no Docker engine reachable (`DOCKER_HOST` on a missing socket) and a
//! `PATH` without `docker`: only archway's own assembler can have made its image, so a case
//! archway cannot assemble fails, loudly, instead of quietly comparing buildx with buildx.
//!
//! A case is a folder: `Dockerfile` and context files; optional `flags` (one CLI flag a line,
//! given to both builders: `--file=`, `--target=`, `--build-arg=`); optional `Dockerfile.oracle`
//! (with its own `.dockerignore`) when the lab's BuildKit cannot build `Dockerfile` as written
//! ([`UNSUPPORTED_BY_LAB_BUILDKIT`]). Files git cannot hold (modes, owners, links, empty
//! directories, xattrs, archives) are made by [`prepare`]. `{{NAME}}` placeholders in
//! Dockerfiles are filled in at run time ([`Setup::placeholders`]). Folders starting with `_`
//! are base images the setup builds, not cases (`_base-users`: users, groups, symlinked
//! directories and whiteouts; `_base-onbuild`: ONBUILD triggers).
//!
//! `cargo test --features lab --test assemble_conformance` (needs `scripts/lab-up`); about
//! 90 s on two cores. Variables, for working on the harness or on a failure:
//! - `ARCHWAY_CONFORMANCE_CANDIDATE=buildx` builds the candidate with buildx as well: a check
//!   of the harness itself, which must then report no difference;
//! - `ARCHWAY_CONFORMANCE_KEEP=1` keeps every case's folder (`ctx/`, `oracle/`, `candidate/`),
//!   not only failing ones; the ignored tests `dump` and `compare` read such layouts.

mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;
use support::lab;
use support::layout::{self, Image};
use support::rootfs::{self, RootFs};

const PLATFORMS: [&str; 2] = ["linux/amd64", "linux/arm64"];

/// What may differ between BuildKit's image and archway's, each with the reason. Everything
/// else in the filesystem and the config must be equal.
const ALLOWED: &[(&str, &str)] = &[
    (
        "mtime of every path",
        "archway's layers are reproducible (issue 8: the same files give the same digest on every run \
         and machine), so it cannot keep a checkout's mtimes as BuildKit does; BuildKit also stamps the \
         directories it creates with the build's clock, which differs between any two builds",
    ),
    (
        "layer boundaries, count, compression, digests and sizes",
        "compared is what a container sees: the filesystem after every layer is applied. BuildKit makes a \
         layer per COPY/ADD/WORKDIR; archway may reuse, merge or compress them differently. Each side's \
         blobs are still checked against their digests, sizes and the config's diff_ids",
    ),
    (
        "config `created`, `history`, `rootfs`",
        "build timestamps and BuildKit's own wording (`COPY … # buildkit`, `buildkit.dockerfile.v0`); \
         history is checked instead to have one non-empty_layer entry per layer, and diff_ids to match \
         the layers",
    ),
    (
        "absent, null and empty config values (`Labels: {}`, `Cmd: null`, `User: \"\"`)",
        "every image client reads them alike (Go's `omitempty` writes none of them)",
    ),
    ("manifest and index annotations", "not part of the image; BuildKit stamps the index with its build time"),
];

/// Flags the Docker 26 engine's built-in Dockerfile frontend (1.7, BuildKit 0.13) rejects
/// without `# syntax=docker/dockerfile:1-labs`, an image the offline lab cannot pull. Cases
/// using them carry a `Dockerfile.oracle`: the same build in stable syntax, by BuildKit's own
/// definition of the flag (read in `dockerfile2llb/convert_copy.go`), so BuildKit still is the
/// oracle for the result, only not for the flag's parsing.
const UNSUPPORTED_BY_LAB_BUILDKIT: &[(&str, &str)] = &[
    (
        "COPY --exclude",
        "\"unknown flag: exclude\". BuildKit passes the patterns as the copy's exclude patterns, \
         relative to the source, matched like .dockerignore; the oracle excludes the same paths \
         through `Dockerfile.oracle.dockerignore`",
    ),
    (
        "COPY --parents",
        "\"unknown flag: parents\". BuildKit copies the context root with the source as the only \
         include pattern (parent directories kept, with their metadata); the oracle copies the root \
         through a `Dockerfile.oracle.dockerignore` of `*` and `!SOURCE`",
    ),
    (
        "COPY --chmod=$ARG (not in the corpus)",
        "BuildKit 0.13 neither expands ARGs in `--chmod` nor rejects the value: it ignores a mode that \
         does not parse as octal (`convert.go`, `strconv.ParseUint(cfg.chmod, 8, 32)`), a bug later \
         releases fixed; `--chown=$ARG` is expanded and is in `env_arg`",
    ),
];

// ------------------------------------------------------------------------------------ cases

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                run_case(stringify!($name));
            }
        )*
        const CASES: &[&str] = &[$(stringify!($name)),*];
    };
}

cases!(
    // FROM
    from_registry,
    from_scratch,
    from_stage,
    from_platform,
    from_arg,
    from_arch_stage,
    from_digest,
    target_stage,
    // COPY
    copy_basic,
    copy_globs,
    copy_dirs,
    copy_into_symlink,
    copy_chown_numeric,
    copy_chown_names,
    copy_chown_names_scratch,
    copy_chmod,
    copy_link,
    copy_from_stage,
    copy_from_image,
    copy_exclude,
    copy_parents,
    // the context
    context_links,
    context_modes,
    context_empty_dirs,
    context_names,
    xattrs,
    dockerignore,
    dockerfile_dockerignore,
    dockerfile_dockerignore_default,
    // ADD
    add_local,
    add_tar,
    add_tar_gz,
    add_tar_bz2,
    add_tar_xz,
    add_archive_chown,
    add_url,
    add_url_checksum,
    // config
    workdir,
    env_arg,
    platform_args,
    config_misc,
    entrypoint_cmd,
    shell_form,
    healthcheck,
    healthcheck_none,
    onbuild,
    onbuild_trigger,
    onbuild_registry,
    parser,
    runs_under_qemu,
);

/// Every instruction and flag the assembler implements, each used by at least one case.
const COVERAGE: &[&str] = &[
    "FROM {{BASE}}",
    "FROM scratch",
    "FROM {{XATTRS}}",
    "FROM --platform=",
    " AS ",
    "FROM ${",
    "FROM {{BASE_DIGEST}}",
    "COPY --from=",
    "--from={{BASE}}",
    "--chown=",
    "--chmod=",
    "--link",
    "--exclude=",
    "--parents",
    "ADD --checksum=",
    "ADD {{HTTP}}",
    "ADD ",
    "WORKDIR",
    "ENV ",
    "ARG ",
    "$TARGETARCH",
    "LABEL ",
    "EXPOSE ",
    "VOLUME ",
    "USER ",
    "ENTRYPOINT ",
    "CMD ",
    "SHELL ",
    "STOPSIGNAL ",
    "HEALTHCHECK ",
    "ONBUILD ",
    "FROM {{ONBUILD}}",
    "--chown=$",
    "MAINTAINER ",
    "COPY *.txt",
    "COPY t?o.txt",
    "COPY [ot]*",
    "COPY [!t]",
    "COPY sub/*/file",
];

#[test]
fn corpus_covers_every_instruction_and_flag() {
    let root = fixtures();
    let mut dirs = BTreeSet::new();
    let mut text = String::new();
    for e in std::fs::read_dir(&root).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().into_string().unwrap();
        if name.starts_with('_') {
            continue;
        }
        let mut dockerfiles = 0;
        for f in std::fs::read_dir(e.path()).unwrap() {
            let f = f.unwrap();
            let file = f.file_name().into_string().unwrap();
            if file == "Dockerfile" || file.ends_with(".Dockerfile") {
                text.push_str(&std::fs::read_to_string(f.path()).unwrap());
                dockerfiles += 1;
            }
        }
        assert_eq!(dockerfiles, 1, "{name} has one Dockerfile (`Dockerfile` or `NAME.Dockerfile`)");
        dirs.insert(name);
    }
    let cases: BTreeSet<String> = CASES.iter().map(|c| c.to_string()).collect();
    assert_eq!(dirs, cases, "every fixture folder is a case in `cases!` and every case has a folder");
    assert!(CASES.len() >= 30, "the corpus has {} Dockerfiles, issue 8 asks for at least 30", CASES.len());
    let missing: Vec<_> = COVERAGE.iter().filter(|t| !text.contains(*t)).collect();
    assert!(missing.is_empty(), "no case uses {missing:?}");
    let ignore = std::fs::read_to_string(root.join("dockerignore/.dockerignore")).unwrap();
    assert!(ignore.lines().any(|l| l.starts_with('!')), ".dockerignore exceptions are covered");
    assert!(root.join("dockerfile_dockerignore/app.Dockerfile.dockerignore").exists());
    assert!(root.join("dockerfile_dockerignore_default/Dockerfile.dockerignore").exists());
}

// ----------------------------------------------------------------------------- the harness

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/assemble")
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Candidate {
    Archway,
    Buildx,
}

fn candidate() -> Candidate {
    match std::env::var("ARCHWAY_CONFORMANCE_CANDIDATE").as_deref() {
        Err(_) | Ok("") | Ok("archway") => Candidate::Archway,
        Ok("buildx") => Candidate::Buildx,
        Ok(other) => panic!("ARCHWAY_CONFORMANCE_CANDIDATE=`{other}`: expected `archway` (default) or `buildx`"),
    }
}

impl Candidate {
    fn name(self) -> &'static str {
        match self {
            Candidate::Archway => "archway",
            Candidate::Buildx => "buildx(candidate)",
        }
    }
}

/// A case's context, ready to build in a temp dir kept on failure.
struct Prepared {
    dir: tempfile::TempDir,
    flags: Vec<String>,
    /// `Dockerfile.oracle`, when the case has one.
    oracle_dockerfile: Option<PathBuf>,
}

impl Prepared {
    fn ctx(&self) -> PathBuf {
        self.dir.path().join("ctx")
    }
}

fn prepare_case(name: &str) -> Prepared {
    let setup = setup();
    let src = fixtures().join(name);
    let dir = tempfile::Builder::new().prefix(&format!("conform-{name}-")).tempdir().unwrap();
    let ctx = dir.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    // A checkout's mode, not tempdir's 0700: `COPY . /x` gives /x the context root's mode.
    std::fs::set_permissions(&ctx, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut flags = Vec::new();
    let mut oracle_dockerfile = None;
    for e in std::fs::read_dir(&src).unwrap() {
        let e = e.unwrap();
        let file = e.file_name().into_string().unwrap();
        match file.as_str() {
            "flags" => {
                flags = std::fs::read_to_string(e.path())
                    .unwrap()
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(String::from)
                    .collect();
            }
            "Dockerfile.oracle" | "Dockerfile.oracle.dockerignore" => {
                let to = dir.path().join(&file);
                std::fs::write(&to, setup.fill(&std::fs::read_to_string(e.path()).unwrap())).unwrap();
                if file == "Dockerfile.oracle" {
                    oracle_dockerfile = Some(to);
                }
            }
            _ => copy_tree(&e.path(), &ctx.join(&file)),
        }
    }
    for e in std::fs::read_dir(&ctx).unwrap() {
        let p = e.unwrap().path();
        if p.file_name().unwrap().to_string_lossy().contains("Dockerfile") && p.is_file() {
            std::fs::write(&p, setup.fill(&std::fs::read_to_string(&p).unwrap())).unwrap();
        }
    }
    prepare(name, &ctx);
    Prepared { dir, flags, oracle_dockerfile }
}

fn copy_tree(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            copy_tree(&e.path(), &to.join(e.file_name()));
        }
    } else {
        std::fs::copy(from, to).unwrap();
    }
}

/// `docker buildx build` of the context into an OCI layout at `out`.
fn build_buildx(ctx: &Path, flags: &[String], dockerfile: Option<&Path>, out: &Path) -> Result<(), String> {
    let mut c = Command::new("docker");
    c.args(["buildx", "build", "--progress=plain", "--provenance=false", "--sbom=false"])
        .arg(format!("--platform={}", PLATFORMS.join(",")))
        .arg(format!("--output=type=oci,dest={},tar=false", out.display()))
        .args(flags);
    if let Some(f) = dockerfile {
        c.arg(format!("--file={}", f.display()));
    }
    run(c.arg(".").current_dir(ctx))
}

/// The exact command line the harness expects archway to accept.
fn archway_args(flags: &[String], out: &Path) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "build".into(),
        ".".into(),
        format!("--platform={}", PLATFORMS.join(",")),
        "--prefer=assembled".into(),
        format!("--output={}", out.display()),
    ];
    args.extend(flags.iter().cloned());
    args
}

/// `archway build --prefer assembled` with no engine to fall back on.
fn build_archway(ctx: &Path, flags: &[String], out: &Path) -> Result<(), String> {
    let mut c = archway_command(ctx);
    run(c.args(archway_args(flags, out)))
}

/// The archway binary in `ctx`, started with an empty environment but for `HOME`, `TMPDIR`
/// and the log filter, with no Docker engine reachable and no `docker` on `PATH`.
fn archway_command(ctx: &Path) -> Command {
    static EMPTY_PATH: OnceLock<tempfile::TempDir> = OnceLock::new();
    let path = EMPTY_PATH.get_or_init(|| tempfile::tempdir().unwrap());
    let mut c = support::spawn::archway();
    for k in ["HOME", "TMPDIR", "ARCHWAY_LOG", "RUST_BACKTRACE"] {
        if let Some(v) = std::env::var_os(k) {
            c.env(k, v);
        }
    }
    c.current_dir(ctx)
        .env("DOCKER_HOST", "unix:///nonexistent/archway-conformance/docker.sock")
        .env("PATH", path.path());
    c
}

fn run(c: &mut Command) -> Result<(), String> {
    let out = c.output().map_err(|e| format!("{c:?}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<_> = err.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect();
    Err(format!("{c:?} exited with {}:\n{}", out.status, tail.join("\n")))
}

/// One line of a report.
struct Finding {
    platform: String,
    what: String,
    field: String,
    oracle: String,
    candidate: String,
}

fn run_case(name: &str) {
    let case = prepare_case(name);
    let ctx = case.ctx();
    let oracle_out = case.dir.path().join("oracle");
    let candidate_out = case.dir.path().join("candidate");
    let who = candidate();
    let keep = |case: Prepared| case.dir.keep().display().to_string();

    if let Err(e) = build_buildx(&ctx, &case.flags, case.oracle_dockerfile.as_deref(), &oracle_out) {
        panic!("case {name}: the oracle (buildx) failed; the case itself is wrong:\n{e}\n(kept {})", keep(case));
    }
    let built = match who {
        Candidate::Archway => build_archway(&ctx, &case.flags, &candidate_out),
        Candidate::Buildx => build_buildx(&ctx, &case.flags, case.oracle_dockerfile.as_deref(), &candidate_out),
    };
    if let Err(e) = built {
        panic!("case {name}: {} could not assemble it; BuildKit could:\n{e}\n(kept {})", who.name(), keep(case));
    }
    let findings = match compare_layouts(&oracle_out, &candidate_out) {
        Ok(f) => f,
        Err(e) => panic!("case {name}: {e}\n(kept {})", keep(case)),
    };
    if std::env::var_os("ARCHWAY_CONFORMANCE_KEEP").is_some() {
        eprintln!("case {name}: kept {}", keep(case));
        return;
    }
    if !findings.is_empty() {
        let mut report = report(name, who, &findings);
        if case.oracle_dockerfile.is_some() {
            report.push_str("the oracle built `Dockerfile.oracle`, a stable-syntax rewrite, because:\n");
            for (flag, why) in UNSUPPORTED_BY_LAB_BUILDKIT {
                report.push_str(&format!("  - {flag}: {why}\n"));
            }
        }
        panic!("{report}\n(kept {}: ctx/, oracle/, candidate/)", keep(case));
    }
}

fn report(name: &str, who: Candidate, findings: &[Finding]) -> String {
    let mut rows = vec![[
        "PLATFORM".to_string(),
        "PATH / CONFIG".into(),
        "FIELD".into(),
        "BUILDX".into(),
        who.name().to_uppercase(),
    ]];
    for f in findings {
        rows.push([f.platform.clone(), f.what.clone(), f.field.clone(), f.oracle.clone(), f.candidate.clone()]);
    }
    let mut widths = [0; 4];
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r.iter()) {
            *w = (*w).max(c.chars().count().min(60));
        }
    }
    let mut out = format!("case {name}: {} differences between buildx and {}\n", findings.len(), who.name());
    for r in rows.iter().take(201) {
        let mut line = String::from("  ");
        for (w, c) in widths.iter().zip(r.iter()) {
            line.push_str(&format!("{c:<w$}  "));
        }
        line.push_str(&r[4]);
        out.push_str(line.trim_end());
        out.push('\n');
    }
    if rows.len() > 201 {
        out.push_str(&format!("  … and {} more\n", rows.len() - 201));
    }
    out.push_str("allowed differences (not compared):\n");
    for (what, why) in ALLOWED {
        out.push_str(&format!("  - {what}: {why}\n"));
    }
    out
}

/// Every difference between the two layouts' images, platform by platform.
fn compare_layouts(oracle: &Path, candidate: &Path) -> Result<Vec<Finding>, String> {
    let o = layout::images(oracle).map_err(|e| format!("the oracle's layout: {e}"))?;
    let c = layout::images(candidate).map_err(|e| format!("the candidate's layout: {e}"))?;
    let want: BTreeSet<String> = PLATFORMS.iter().map(|p| p.to_string()).collect();
    let (op, cp): (BTreeSet<_>, BTreeSet<_>) = (o.keys().cloned().collect(), c.keys().cloned().collect());
    if op != want {
        return Err(format!("the oracle's layout has platforms {op:?}, expected {want:?}"));
    }
    if cp != want {
        return Err(format!("the candidate's layout has platforms {cp:?}, expected {want:?}"));
    }
    let mut out = Vec::new();
    for p in PLATFORMS {
        let (oi, ci) = (&o[p], &c[p]);
        let finding = |what: &str, field: &str, a: String, b: String| Finding {
            platform: p.to_string(),
            what: what.to_string(),
            field: field.to_string(),
            oracle: a,
            candidate: b,
        };
        if norm(&oi.descriptor_platform) != norm(&ci.descriptor_platform) {
            out.push(finding(
                "index",
                "platform",
                oi.descriptor_platform.to_string(),
                ci.descriptor_platform.to_string(),
            ));
        }
        for (key, a, b) in config_differences(&oi.config, &ci.config) {
            out.push(finding(&key, "", a, b));
        }
        let ofs = flatten(oracle, oi).map_err(|e| format!("the oracle's {p} image: {e}"))?;
        let cfs = flatten(candidate, ci).map_err(|e| format!("the candidate's {p} image: {e}"))?;
        for d in rootfs::compare(&ofs, &cfs) {
            out.push(finding(&d.path, d.field, d.left, d.right));
        }
    }
    Ok(out)
}

fn flatten(layout: &Path, image: &Image) -> Result<RootFs, String> {
    let tars = (0..image.layers.len()).map(|i| image.layer_tar(layout, i)).collect::<Result<Vec<_>, _>>()?;
    RootFs::from_layers(tars.iter().map(Vec::as_slice))
}

/// Config keys not compared; see [`ALLOWED`].
const CONFIG_IGNORED: &[&str] = &["created", "history", "rootfs"];

/// `(key, oracle, candidate)` for every config value that differs: the top-level fields
/// (`architecture`, `os`, `variant`, `author`, …) and each field of `config` (`Env`, `Cmd`, …).
fn config_differences(o: &Value, c: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let keys = |v: &Value| v.as_object().map(|m| m.keys().cloned().collect::<BTreeSet<_>>()).unwrap_or_default();
    for k in keys(o).union(&keys(c)) {
        if CONFIG_IGNORED.contains(&k.as_str()) {
            continue;
        }
        if k == "config" {
            for f in keys(&o[k]).union(&keys(&c[k])) {
                if norm(&o[k][f]) != norm(&c[k][f]) {
                    out.push((format!("config.{f}"), show(&o[k][f]), show(&c[k][f])));
                }
            }
        } else if norm(&o[k]) != norm(&c[k]) {
            out.push((k.clone(), show(&o[k]), show(&c[k])));
        }
    }
    out
}

/// Absent, null, `""`, `[]` and `{}` are the same value to an image's reader.
fn norm(v: &Value) -> Option<&Value> {
    match v {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::Array(a) if a.is_empty() => None,
        Value::Object(m) if m.is_empty() => None,
        v => Some(v),
    }
}

fn show(v: &Value) -> String {
    if v.is_null() { "(absent)".into() } else { v.to_string() }
}

// ------------------------------------------------------------------------------ the setup

/// What every case shares: the lab, a base image with users, and an HTTP server.
struct Setup {
    registry: String,
    base: String,
    /// The lab base by its index digest.
    base_digest: String,
    /// A multi-platform base with `/etc/passwd` and `/etc/group` naming users, symlinked
    /// directories and whiteouts in its last layer; built from `_base-users`.
    users: String,
    /// A base made by the test itself, layer bytes and all: a file with xattrs (a file
    /// capability and a `user.` attribute), which no other way of building gives here.
    xattrs: String,
    /// A base whose config holds ONBUILD triggers without RUN; built from `_base-onbuild`.
    onbuild: String,
    http: String,
}

impl Setup {
    fn placeholders(&self) -> [(&'static str, &str); 7] {
        [
            ("{{REGISTRY}}", &self.registry),
            ("{{BASE}}", &self.base),
            ("{{BASE_DIGEST}}", &self.base_digest),
            ("{{USERS}}", &self.users),
            ("{{XATTRS}}", &self.xattrs),
            ("{{ONBUILD}}", &self.onbuild),
            ("{{HTTP}}", &self.http),
        ]
    }

    fn fill(&self, text: &str) -> String {
        let mut s = text.to_string();
        for (k, v) in self.placeholders() {
            s = s.replace(k, v);
        }
        assert!(!s.contains("{{"), "an unknown placeholder in:\n{s}");
        s
    }
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let lab = lab::lab();
        let (repo, _) = lab.base.rsplit_once(':').unwrap();
        let (_, index) = lab::manifest(repo, "latest").expect("the lab base image exists");
        let base_digest = format!("{repo}@{}", lab::sha256(&index));
        let http = serve_http();
        let mut s = Setup {
            registry: lab.registry.clone(),
            base: lab.base.clone(),
            base_digest,
            users: String::new(),
            xattrs: push_xattrs_base(),
            onbuild: String::new(),
            http,
        };
        s.users = build_base(&s, "_base-users", "users");
        s.onbuild = build_base(&s, "_base-onbuild", "onbuild");
        s
    })
}

/// Builds the base image in fixture folder `folder` with buildx for both platforms and pushes
/// it to a fresh repository of the lab registry; returns its reference.
fn build_base(s: &Setup, folder: &str, tag: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path();
    copy_tree(&fixtures().join(folder), ctx);
    let df = ctx.join("Dockerfile");
    std::fs::write(&df, s.fill(&std::fs::read_to_string(&df).unwrap())).unwrap();
    if folder == "_base-users" {
        std::os::unix::fs::symlink("../run", ctx.join("rootfs/var/run")).unwrap();
        std::os::unix::fs::symlink("/opt/v1", ctx.join("rootfs/opt/current")).unwrap();
    }
    let reference = format!("{}:{tag}", lab::unique_repo("conform-base"));
    let mut c = Command::new("docker");
    c.args(["buildx", "build", "--progress=plain", "--provenance=false", "--sbom=false", "--push"])
        .arg(format!("--platform={}", PLATFORMS.join(",")))
        .arg(format!("--tag={reference}"))
        .arg(".")
        .current_dir(ctx);
    // `_base-users` RUNs for arm64 under QEMU: the handlers must stay registered meanwhile.
    let _machine = support::machine::lock();
    run(&mut c).unwrap_or_else(|e| panic!("building the base image {folder}: {e}"));
    reference
}

/// `(cap_net_bind_service+ep)` as `setcap` writes it: a `vfs_cap_data` of revision 2.
fn file_capability() -> Vec<u8> {
    [0x0200_0001u32, 1 << 10, 0, 0, 0].iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// Writes and pushes a two-platform image whose only layer holds `/opt/cap-tool` with a
/// `security.capability` and a `user.origin` xattr (PAX `SCHILY.xattr.*` records).
fn push_xattrs_base() -> String {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o755);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_600_000_000);
    h.set_size(0);
    b.append_data(&mut h, "opt/", &b""[..]).unwrap();
    let cap = file_capability();
    b.append_pax_extensions([
        ("SCHILY.xattr.security.capability", &cap[..]),
        ("SCHILY.xattr.user.origin", &b"crafted by the conformance test"[..]),
    ])
    .unwrap();
    let body = b"#!/bin/sh\necho cap-tool\n";
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(body.len() as u64);
    b.append_data(&mut h, "opt/cap-tool", &body[..]).unwrap();
    let tar = b.into_inner().unwrap();
    let layer = gzip(&tar);
    let layer_digest = layout::write_blob(layout, &layer);
    let mut manifests = Vec::new();
    for p in PLATFORMS {
        let arch = p.split('/').nth(1).unwrap();
        let config = serde_json::json!({
            "architecture": arch,
            "os": "linux",
            "config": {"Env": ["PATH=/bin"], "Cmd": ["/opt/cap-tool"]},
            "rootfs": {"type": "layers", "diff_ids": [lab::sha256(&tar)]},
            "history": [{"created_by": "made by assemble_conformance.rs"}],
        });
        let config = serde_json::to_vec(&config).unwrap();
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": layout::write_blob(layout, &config), "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest, "size": layer.len()}],
        });
        let manifest = serde_json::to_vec(&manifest).unwrap();
        manifests.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": layout::write_blob(layout, &manifest),
            "size": manifest.len(),
            "platform": {"architecture": arch, "os": "linux"},
        }));
    }
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    });
    let index = serde_json::to_vec(&index).unwrap();
    let index_digest = layout::write_blob(layout, &index);
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json", "digest": index_digest, "size": index.len()}]}))
        .unwrap(),
    )
    .unwrap();
    let name = lab::unique_repo("conform-xattrs");
    for (_, image) in layout::images(layout).unwrap() {
        layout::push_blob(layout, &name, &layer_digest).unwrap();
        layout::push_blob(layout, &name, image.manifest["config"]["digest"].as_str().unwrap()).unwrap();
        let m = image.manifest_digest.clone();
        layout::push_manifest(layout, &name, &m, &m, "application/vnd.oci.image.manifest.v1+json").unwrap();
    }
    layout::push_manifest(layout, &name, "xattrs", &index_digest, "application/vnd.oci.image.index.v1+json").unwrap();
    format!("{name}:xattrs")
}

// --------------------------------------------------------------------------- HTTP server

/// The content `ADD {{HTTP}}/files/plain.txt` downloads (its sha256 is in `add_url_checksum`).
const PLAIN: &[u8] = b"served over HTTP by the conformance test\n";
const LAST_MODIFIED: &str = "Wed, 21 Oct 2015 07:28:00 GMT";

/// A tiny HTTP/1.1 server on loopback for `ADD <url>`; BuildKit in the engine shares the
/// host's network, so it reaches 127.0.0.1 too. `/files/NAME` serves a fixed file with
/// `Last-Modified`; `/named/…` also sends a `Content-Disposition` filename.
fn serve_http() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let archive = gzip(&sample_archive());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let archive = archive.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request = String::new();
                if reader.read_line(&mut request).is_err() {
                    return;
                }
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                }
                let mut parts = request.split_whitespace();
                let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                let (status, body, extra): (&str, Vec<u8>, String) = match path {
                    "/files/plain.txt" => ("200 OK", PLAIN.to_vec(), String::new()),
                    "/files/app.tar.gz" => ("200 OK", archive, String::new()),
                    p if p.starts_with("/named/") => (
                        "200 OK",
                        PLAIN.to_vec(),
                        "Content-Disposition: attachment; filename=\"from-header.txt\"\r\n".into(),
                    ),
                    _ => ("404 Not Found", b"not found\n".to_vec(), String::new()),
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\n\
                     Last-Modified: {LAST_MODIFIED}\r\nETag: \"{}\"\r\n{extra}Connection: close\r\n\r\n",
                    body.len(),
                    &lab::sha256(&body)[7..23],
                );
                let _ = stream.write_all(head.as_bytes());
                if method != "HEAD" {
                    let _ = stream.write_all(&body);
                }
            });
        }
    });
    format!("http://{addr}")
}

// --------------------------------------------------------------- contexts git cannot hold

/// Makes the files of a case that git cannot store.
fn prepare(case: &str, ctx: &Path) {
    let p = |rel: &str| ctx.join(rel);
    match case {
        "context_links" => {
            write(&p("files/target.txt"), b"the target\n");
            write(&p("files/sub/x"), b"x\n");
            symlink("target.txt", &p("files/rel-link"));
            symlink("/etc/passwd", &p("files/abs-link"));
            symlink("sub", &p("files/dir-link"));
            symlink("does-not-exist", &p("files/dangling"));
            symlink("../target.txt", &p("files/sub/up-link"));
            write(&p("files/hard1"), b"one inode, three names\n");
            std::fs::hard_link(p("files/hard1"), p("files/hard2")).unwrap();
            std::fs::hard_link(p("files/hard1"), p("files/sub/hard3")).unwrap();
        }
        "context_modes" => {
            for (rel, mode) in [
                ("m/suid", 0o4755),
                ("m/sgid", 0o2755),
                ("m/private", 0o600),
                ("m/open", 0o777),
                ("m/exec-only", 0o111),
                ("m/none", 0o000),
                ("m/secret/inside", 0o640),
                ("m/owned", 0o644),
                ("m/xattr", 0o644),
            ] {
                write(&p(rel), format!("{rel}\n").as_bytes());
                chmod(&p(rel), mode);
            }
            std::fs::create_dir(p("m/sticky")).unwrap();
            chmod(&p("m/sticky"), 0o1777);
            chmod(&p("m/secret"), 0o700);
            chmod(&p("m"), 0o750);
            std::os::unix::fs::chown(p("m/owned"), Some(1234), Some(5678)).unwrap();
            std::os::unix::fs::lchown(p("m/secret"), Some(42), Some(43)).unwrap();
            set_xattr(&p("m/xattr"), "user.comment", b"kept?");
            set_xattr(&p("m/xattr"), "security.capability", &file_capability());
        }
        "context_empty_dirs" => {
            for d in ["empty", "tree/a/b", "tree/c", "private-empty"] {
                std::fs::create_dir_all(p(d)).unwrap();
            }
            write(&p("tree/file"), b"f\n");
            chmod(&p("private-empty"), 0o700);
        }
        "context_names" => {
            let long = "l".repeat(120);
            let deep = format!("{}/{}/{}", "d".repeat(60), "e".repeat(60), "f".repeat(60));
            for rel in [
                "names/é.txt".to_string(),
                "names/日本語/ファイル.txt".into(),
                "names/🦀.rs".into(),
                "names/with space".into(),
                "names/-dash".into(),
                "names/q'uote\"s".into(),
                format!("names/{long}.txt"),
                format!("names/{deep}/{long}"),
            ] {
                write(&p(&rel), rel.as_bytes());
            }
            symlink(&format!("{deep}/{long}"), &p("names/long-link"));
            std::fs::hard_link(p(&format!("names/{long}.txt")), p(&format!("names/{deep}/hard-{long}"))).unwrap();
        }
        "add_tar" => write(&p("app.tar"), &sample_archive()),
        "add_tar_gz" => {
            write(&p("app.tar.gz"), &gzip(&sample_archive()));
            write(&p("archive.bin"), &gzip(&sample_archive()));
        }
        "add_tar_bz2" => write(&p("app.tar.bz2"), &compress("bzip2", &sample_archive())),
        "add_tar_xz" => write(&p("app.tar.xz"), &compress("xz", &sample_archive())),
        "add_archive_chown" => write(&p("app.tar.gz"), &gzip(&sample_archive())),
        "copy_parents" => chmod(&p("y/b"), 0o750),
        "copy_link" => {
            std::fs::create_dir_all(p("dir/sub")).unwrap();
            write(&p("dir/sub/f"), b"in a linked copy\n");
            chmod(&p("dir"), 0o750);
        }
        _ => {}
    }
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn symlink(target: &str, link: &Path) {
    std::fs::create_dir_all(link.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(target, link).unwrap();
}

fn set_xattr(path: &Path, name: &str, value: &[u8]) {
    use std::os::unix::ffi::OsStrExt as _;
    let p = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    // SAFETY: both strings are NUL-terminated and live across the call; the value is a slice.
    let rc = unsafe { libc::lsetxattr(p.as_ptr(), n.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    assert_eq!(rc, 0, "setxattr {name} on {}: {}", path.display(), std::io::Error::last_os_error());
}

/// The archive every `ADD` archive case extracts: owners, names, modes, links and a long name
/// that only tar can carry.
fn sample_archive() -> Vec<u8> {
    use tar::EntryType::{Directory as D, Link as H, Regular as F, Symlink as S};
    struct Entry<'a>(&'a str, tar::EntryType, u32, (u64, u64, &'a str), &'a [u8], &'a str);
    let root = (0, 0, "root");
    let app = (1000, 1000, "app");
    let odd = (4321, 8765, "nobody-known");
    let long = format!("app/{}.txt", "n".repeat(130));
    let entries = [
        Entry("app/", D, 0o750, app, b"", ""),
        Entry("app/bin/", D, 0o755, root, b"", ""),
        Entry("app/bin/run", F, 0o755, root, b"#!/bin/sh\necho run\n", ""),
        Entry("app/data.txt", F, 0o640, app, b"data\n", ""),
        Entry("app/unknown-owner", F, 0o600, odd, b"owned by ids no passwd names\n", ""),
        Entry("app/suid", F, 0o4755, root, b"suid\n", ""),
        Entry("app/current", S, 0o777, root, b"", "bin/run"),
        Entry("app/hard", H, 0o640, app, b"", "app/data.txt"),
        Entry("app/empty/", D, 0o700, app, b"", ""),
        Entry(&long, F, 0o644, root, b"long name\n", ""),
        Entry("app/ünïcödé.txt", F, 0o644, root, b"unicode\n", ""),
        Entry("app/with-xattr.txt", F, 0o644, root, b"an xattr in the archive\n", ""),
        Entry("top-level.txt", F, 0o644, root, b"next to app/\n", ""),
    ];
    let mut b = tar::Builder::new(Vec::new());
    for Entry(path, kind, mode, (uid, gid, name), data, link) in entries {
        if path.ends_with("with-xattr.txt") {
            b.append_pax_extensions([("SCHILY.xattr.user.mime_type", &b"text/plain"[..])]).unwrap();
        }
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_username(name).unwrap();
        h.set_groupname(name).unwrap();
        h.set_mtime(1_600_000_000);
        h.set_size(data.len() as u64);
        if link.is_empty() {
            b.append_data(&mut h, path, data).unwrap();
        } else {
            b.append_link(&mut h, path, link).unwrap();
        }
    }
    b.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Compresses with `bzip2` or `xz` (both in Debian's standard install).
fn compress(program: &str, data: &[u8]) -> Vec<u8> {
    let mut child = Command::new(program)
        .args(["-c"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("`{program}` (to make a test archive): {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let input = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let mut out = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    writer.join().unwrap().unwrap();
    assert!(child.wait().unwrap().success(), "`{program} -c` failed");
    out
}

// ---------------------------------------------------------------- beyond the comparison

/// An assembled arm64 image runs under the lab's QEMU and prints what its Dockerfile says.
#[test]
fn assembled_arm64_image_runs_under_qemu() {
    let case = prepare_case("runs_under_qemu");
    let out = case.dir.path().join("candidate");
    let built = match candidate() {
        Candidate::Archway => build_archway(&case.ctx(), &case.flags, &out),
        Candidate::Buildx => build_buildx(&case.ctx(), &case.flags, None, &out),
    };
    built.unwrap_or_else(|e| panic!("{} could not assemble `runs_under_qemu`:\n{e}", candidate().name()));
    let images = layout::images(&out).unwrap();
    let reference = format!("{}:arm64", lab::unique_repo("conform-qemu"));
    layout::push_image(&out, &images["linux/arm64"], &reference).unwrap();
    let printed = {
        let _machine = support::machine::lock();
        lab::docker_run("linux/arm64", &reference)
    };
    assert_eq!(printed, "hello from arm64 on aarch64, as /home/app with 755 greet");
}

/// A COPY source that leaves the context, directly or through a symlink, is an error that
/// names it, and nothing reaches the registry.
#[test]
fn escapes_are_refused_and_nothing_is_pushed() {
    if candidate() == Candidate::Buildx {
        eprintln!("escapes: archway's own behaviour, not compared with BuildKit; skipped for the buildx candidate");
        return;
    }
    let base = &setup().base;
    let cases = [
        ("a symlink out of the context", "COPY link-out /x", "link-out"),
        ("a parent path", "COPY ../outside.txt /x", "../outside.txt"),
        ("an absolute symlink to /etc/shadow", "COPY shadow /x", "shadow"),
        ("a symlinked directory out of the context", "COPY linkdir/secret.txt /x", "linkdir/secret.txt"),
        ("ADD of a symlink out of the context", "ADD link-out /x", "link-out"),
    ];
    let mut failures = Vec::new();
    for (what, instruction, path) in cases {
        let dir = tempfile::tempdir().unwrap();
        let ctx = dir.path().join("ctx");
        write(&dir.path().join("outside.txt"), b"SECRET-OUTSIDE\n");
        write(&dir.path().join("outside-dir/secret.txt"), b"SECRET-OUTSIDE\n");
        write(&ctx.join("Dockerfile"), format!("FROM {base}\n{instruction}\n").as_bytes());
        write(&ctx.join("inside.txt"), b"inside\n");
        symlink("../outside.txt", &ctx.join("link-out"));
        symlink("/etc/shadow", &ctx.join("shadow"));
        symlink("../outside-dir", &ctx.join("linkdir"));
        let repo = lab::unique_repo("conform-escape");
        let out = archway_command(&ctx)
            .args(["build", ".", "--platform=linux/amd64,linux/arm64", "--prefer=assembled", "--push"])
            .arg(format!("--tag={repo}:escape"))
            .output()
            .unwrap();
        let (stdout, stderr) = lab::text(&out);
        let repo_path = repo.split_once('/').unwrap().1;
        if out.status.success() {
            failures.push(format!("{what} (`{instruction}`): archway succeeded\n{stderr}"));
        } else if !stderr.contains(path) {
            failures.push(format!("{what} (`{instruction}`): the error does not name `{path}`:\n{stderr}"));
        }
        if stdout.contains("SECRET-OUTSIDE") || stderr.contains("SECRET-OUTSIDE") {
            failures.push(format!("{what}: archway printed the outside file's content"));
        }
        if lab::catalog().iter().any(|r| r == repo_path) || lab::tag_digest(&repo, "escape").is_some() {
            failures.push(format!("{what} (`{instruction}`): something was pushed to {repo}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Prints the images of the OCI layout named by `ARCHWAY_CONFORMANCE_DUMP` (a kept `oracle/`
/// or `candidate/`): config without history, then one line per path. For reading a failure:
/// `ARCHWAY_CONFORMANCE_DUMP=DIR cargo test --features lab --test assemble_conformance dump -- --ignored --nocapture`
#[test]
#[ignore = "a debugging aid, run by hand"]
fn dump() {
    let dir = PathBuf::from(std::env::var("ARCHWAY_CONFORMANCE_DUMP").expect("ARCHWAY_CONFORMANCE_DUMP=LAYOUT_DIR"));
    for (platform, image) in layout::images(&dir).unwrap() {
        let mut config = image.config.clone();
        config.as_object_mut().unwrap().remove("history");
        println!("== {platform}\n{}", serde_json::to_string_pretty(&config).unwrap());
        let fs = flatten(&dir, &image).unwrap();
        for (path, n) in fs.nodes() {
            let links = fs.hardlinks(path);
            println!(
                "/{path}\t{:?} {:04o} {}:{} {} {}{}{}{}",
                n.kind,
                n.mode,
                n.uid,
                n.gid,
                n.size,
                &n.sha256.get(..12).unwrap_or(""),
                if n.target.is_empty() { String::new() } else { format!(" -> {}", n.target) },
                if links.is_empty() { String::new() } else { format!(" links={links:?}") },
                if n.xattrs.is_empty() { String::new() } else { format!(" xattrs={:?}", n.xattrs.keys()) },
            );
        }
    }
}

/// Compares two OCI layouts as a case does: `ARCHWAY_CONFORMANCE_COMPARE="ORACLE CANDIDATE"`,
/// e.g. a kept `oracle/` and a candidate rebuilt by hand.
#[test]
#[ignore = "a debugging aid, run by hand"]
fn compare() {
    let dirs = std::env::var("ARCHWAY_CONFORMANCE_COMPARE").expect("ARCHWAY_CONFORMANCE_COMPARE=\"ORACLE CANDIDATE\"");
    let (o, c) = dirs.split_once(' ').expect("two layout directories");
    let findings = compare_layouts(Path::new(o), Path::new(c)).unwrap();
    println!("{}", report("compare", candidate(), &findings));
}

#[test]
fn config_comparison_ignores_only_the_allowed_keys() {
    let o = serde_json::json!({
        "architecture": "arm64", "os": "linux", "author": "a", "created": "1", "history": [1],
        "rootfs": {"diff_ids": ["x"]},
        "config": {"Env": ["A=1", "B=2"], "Labels": {}, "User": "", "Cmd": ["sh"]},
    });
    let c = serde_json::json!({
        "architecture": "arm64", "os": "linux", "variant": "v8", "created": "2", "rootfs": {},
        "config": {"Env": ["B=2", "A=1"], "Cmd": ["sh"], "Volumes": null},
    });
    let keys: Vec<_> = config_differences(&o, &c).into_iter().map(|(k, _, _)| k).collect();
    assert_eq!(keys, ["author", "config.Env", "variant"]);
}

// -------------------------------------------------------------- the flattening itself

mod applier {
    use super::rootfs::{Kind, RootFs, compare};
    use tar::EntryType::{Directory as D, Link as H, Regular as F, Symlink as S};

    fn layer(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, kind, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_mode(if *kind == D { 0o755 } else { 0o644 });
            h.set_uid(0);
            h.set_gid(0);
            if matches!(kind, S | H) {
                h.set_size(0);
                b.append_link(&mut h, path, data).unwrap();
            } else {
                h.set_size(data.len() as u64);
                b.append_data(&mut h, path, data.as_bytes()).unwrap();
            }
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn whiteouts_hide_lower_layers_only() {
        let l1 = layer(&[("a/", D, ""), ("a/x", F, "1"), ("a/y", F, "2"), ("b/", D, ""), ("b/z", F, "3")]);
        let l2 = layer(&[("a/.wh.x", F, ""), ("b/new", F, "4"), ("b/.wh..wh..opq", F, "")]);
        let fs = RootFs::from_layers([&l1[..], &l2[..]]).unwrap();
        let paths: Vec<_> = fs.nodes().keys().cloned().collect();
        assert_eq!(paths, ["", "a", "a/y", "b", "b/new"]);
    }

    #[test]
    fn hard_links_share_an_inode_until_one_is_replaced() {
        let l1 = layer(&[("f", F, "data"), ("g", H, "f"), ("h", H, "f")]);
        let mut fs = RootFs::from_layers([&l1[..]]).unwrap();
        assert_eq!(fs.hardlinks("f"), ["/g", "/h"]);
        fs.apply(&layer(&[("g", F, "other")])).unwrap();
        assert_eq!(fs.hardlinks("f"), ["/h"]);
        assert!(fs.hardlinks("g").is_empty());
    }

    #[test]
    fn parents_follow_symlinks_and_a_file_replaces_a_directory() {
        let l1 = layer(&[("usr/lib/", D, ""), ("lib", S, "usr/lib"), ("d/", D, ""), ("d/k", F, "")]);
        let l2 = layer(&[("lib/x", F, "x"), ("d", F, "now a file"), ("m/n/o", F, "")]);
        let fs = RootFs::from_layers([&l1[..], &l2[..]]).unwrap();
        assert!(fs.get("usr/lib/x").is_some());
        assert_eq!(fs.get("d").unwrap().kind, Kind::File);
        assert!(fs.get("d/k").is_none());
        assert_eq!(fs.get("m/n").unwrap().mode, 0o755);
    }

    #[test]
    fn compare_names_path_and_field() {
        let a = RootFs::from_layers([&layer(&[("f", F, "1")])[..]]).unwrap();
        let b = RootFs::from_layers([&layer(&[("f", F, "22"), ("g", S, "f")])[..]]).unwrap();
        let d = compare(&a, &b);
        let fields: Vec<_> = d.iter().map(|d| (d.path.as_str(), d.field)).collect();
        assert_eq!(fields, [("/f", "size"), ("/f", "sha256"), ("/g", "exists")]);
    }
}
