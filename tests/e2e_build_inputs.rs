//! docker/build-push-action's build inputs end to end on the lab: each reaches the build and has
//! its effect — a registry cache per platform, a secret no output holds, an ssh agent, a named
//! context, `load`, `no-cache`, `pull`. Dockerfiles run a RUN on the target, so buildx (not the
//! assembler) builds them, unless the test is about the assembler.

#![cfg(feature = "lab")]

mod support;

use std::io::Read as _;
use std::path::Path;
use std::process::Command;

use support::lab::*;

/// The lines of `stderr` prefixed `[platform]`, without the prefix.
fn lines_of<'a>(stderr: &'a str, platform: &str) -> Vec<&'a str> {
    let prefix = format!("[{platform}] ");
    stderr.lines().filter_map(|l| l.split_once(&prefix).map(|(_, rest)| rest)).collect()
}

/// Whether the step of `lines` whose name contains `what` came from the cache: BuildKit says
/// `CACHED`, or only fetches the cached layer (`#6 sha256:… 198B / 198B done`) and prints
/// nothing the RUN printed (its command echoes `ran-…`).
fn step_cached(lines: &[&str], what: &str) -> bool {
    let Some(number) = lines.iter().find(|l| l.starts_with('#') && l.contains(what)).and_then(|l| l.split(' ').next())
    else {
        panic!("no step `{what}` in:\n{}", lines.join("\n"));
    };
    let of_step: Vec<&str> =
        lines.iter().filter_map(|l| l.strip_prefix(number).and_then(|r| r.strip_prefix(' '))).collect();
    // A RUN's own output: `#6 0.222 ran-x86_64`.
    let ran = of_step
        .iter()
        .any(|l| l.split_once(' ').is_some_and(|(t, rest)| t.parse::<f64>().is_ok() && rest.starts_with("ran-")));
    let cached = of_step.iter().any(|l| *l == "CACHED" || (l.starts_with("sha256:") && l.ends_with("done")));
    cached && !ran
}

fn ok(out: &std::process::Output) -> (String, String) {
    let (stdout, stderr) = text(out);
    assert!(out.status.success(), "archway failed:\n{stderr}");
    (stdout, stderr)
}

/// Drops the engine's BuildKit cache, so only an imported cache can make a step `CACHED`.
fn prune_build_cache() {
    let out = Command::new("docker").args(["buildx", "prune", "-af"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_registry_cache_is_exported_per_platform_and_used_by_the_next_run() {
    let _machine = support::machine::lock();
    let repo = unique_repo("cache");
    // The same RUN in both runs (a nonce in its text keeps other tests' caches out).
    let ctx = context(&format!(
        "FROM {}\nRUN echo ran-$(uname -m) && echo cache-{} > /n && uname -m > /arch\nCMD [\"cat\", \"/arch\"]\n",
        lab().base,
        nonce()
    ));
    let cache = format!("{repo}:buildcache");
    let platforms = "linux/amd64,linux/arm64";
    let first = archway(
        ctx.path(),
        &[
            "build",
            ".",
            "--platform",
            platforms,
            "-t",
            &format!("{repo}:1"),
            "--push",
            "--cache-to",
            &format!("type=registry,ref={cache},mode=max"),
        ],
    );
    let (_, stderr) = ok(&first);
    for p in ["linux/amd64", "linux/arm64"] {
        assert!(!step_cached(&lines_of(&stderr, p), "echo cache-"), "the first run runs the RUN on {p}");
    }
    // Each platform's cache is its own, under its own tag; none under the shared one.
    assert!(tag_digest(&repo, "buildcache-linux-amd64").is_some());
    assert!(tag_digest(&repo, "buildcache-linux-arm64").is_some());
    assert_ne!(tag_digest(&repo, "buildcache-linux-amd64"), tag_digest(&repo, "buildcache-linux-arm64"));
    assert!(tag_digest(&repo, "buildcache").is_none(), "no cache shared by the platforms");

    prune_build_cache();
    let second = archway(
        ctx.path(),
        &["build", ".", "--platform", platforms, "-t", &format!("{repo}:2"), "--push", "--cache-from", &cache],
    );
    let (_, stderr) = ok(&second);
    for p in ["linux/amd64", "linux/arm64"] {
        assert!(step_cached(&lines_of(&stderr, p), "echo cache-"), "{p}'s RUN comes from its cache:\n{stderr}");
    }
    // Each platform got its own result back, not the other's.
    assert_eq!(docker_run("linux/arm64", &format!("{repo}:2")), "aarch64");
    assert_eq!(docker_run("linux/amd64", &format!("{repo}:2")), "x86_64");
}

#[test]
fn a_secret_reaches_the_run_and_nothing_archway_writes() {
    // One build at a time: the cache test prunes the engine's build cache, and a build
    // meanwhile could make its cache import miss.
    let _machine = support::machine::lock();
    let repo = unique_repo("secret");
    let secret = format!("s3cr3t-{}", nonce());
    let ctx = context(&format!(
        "FROM {}\nRUN --mount=type=secret,id=token,required=true cat /run/secrets/token; \
         sha256sum /run/secrets/token | cut -c1-64 > /token.sha\nCMD [\"cat\", \"/token.sha\"]\n",
        lab().base
    ));
    let meta = ctx.path().join("meta.json");
    let tag = format!("{repo}:1");
    let out = archway_env(
        ctx.path(),
        &["build", ".", "--platform", "linux/amd64", "-t", &tag, "--push", "--metadata-file", meta.to_str().unwrap()],
        &[("ARCHWAY_SECRETS", &format!("token={secret}"))],
    );
    let (stdout, stderr) = ok(&out);
    // The RUN read it: the image holds its hash.
    use sha2::Digest as _;
    let want = hex::encode(sha2::Sha256::digest(secret.as_bytes()));
    assert_eq!(docker_run("linux/amd64", &tag), want);
    // The RUN printed it, and the log masked it.
    assert!(stderr.contains("***"), "{stderr}");
    for (what, text) in [("stdout", stdout), ("stderr", stderr), ("metadata", std::fs::read_to_string(&meta).unwrap())]
    {
        assert!(!text.contains(&secret), "the secret is in {what}:\n{text}");
    }
    // Not in any file archway left in the context, nor in any blob of the image.
    for entry in std::fs::read_dir(ctx.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap_or_default();
        assert!(!String::from_utf8_lossy(&bytes).contains(&secret));
    }
    let (_, index) = manifest(&repo, "1").unwrap();
    let digest = platform_manifests(&json(&index))[0].1.clone();
    let (_, image) = manifest(&repo, &digest).unwrap();
    let image = json(&image);
    let config = blob(&repo, image["config"]["digest"].as_str().unwrap());
    assert!(!String::from_utf8_lossy(&config).contains(&secret));
    for layer in image["layers"].as_array().unwrap() {
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(&blob(&repo, layer["digest"].as_str().unwrap())[..])
            .read_to_end(&mut raw)
            .unwrap();
        assert!(!raw.windows(secret.len()).any(|w| w == secret.as_bytes()), "a layer holds the secret");
    }
}

/// An ssh-agent on a socket of its own, killed when dropped.
struct Agent {
    pid: u32,
    socket: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Agent {
    fn start() -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("agent.sock");
        let out =
            Command::new("ssh-agent").arg("-a").arg(&socket).arg("-s").output().expect("ssh-agent (openssh-client)");
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        let pid = text.split("SSH_AGENT_PID=").nth(1).and_then(|r| r.split(';').next()).unwrap().parse().unwrap();
        let key = dir.path().join("id_ed25519");
        let st = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "archway-test-key", "-f"])
            .arg(&key)
            .status()
            .unwrap();
        assert!(st.success());
        let st = Command::new("ssh-add").arg(&key).env("SSH_AUTH_SOCK", &socket).output().unwrap();
        assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
        Agent { pid, socket, _dir: dir }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.pid.to_string()).status();
    }
}

/// `ssh-add` and the libraries it loads, into `dir` (the lab's base image has no ssh client).
fn copy_ssh_add(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::copy("/usr/bin/ssh-add", dir.join("ssh-add")).unwrap();
    let ldd = Command::new("ldd").arg("/usr/bin/ssh-add").output().unwrap();
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        let path = line.split_whitespace().find(|w| w.starts_with('/')).map(str::to_string);
        if let Some(p) = path {
            let name = Path::new(&p).file_name().unwrap().to_owned();
            std::fs::copy(&p, dir.join(name)).unwrap();
        }
    }
}

#[test]
fn an_ssh_agent_is_forwarded_to_the_run() {
    // One build at a time: the cache test prunes the engine's build cache, and a build
    // meanwhile could make its cache import miss.
    let _machine = support::machine::lock();
    let agent = Agent::start();
    let repo = unique_repo("ssh");
    let ctx = context(&format!(
        "FROM {}\nCOPY ssh /ssh\nRUN --mount=type=ssh /ssh/ld-linux-x86-64.so.2 --library-path /ssh /ssh/ssh-add -l > /keys\nCMD [\"cat\", \"/keys\"]\n",
        lab().base
    ));
    copy_ssh_add(&ctx.path().join("ssh"));
    let tag = format!("{repo}:1");
    let out = archway_env(
        ctx.path(),
        &["build", ".", "--platform", "linux/amd64", "-t", &tag, "--push", "--ssh", "default"],
        &[("SSH_AUTH_SOCK", agent.socket.to_str().unwrap())],
    );
    ok(&out);
    let keys = docker_run("linux/amd64", &tag);
    assert!(keys.contains("archway-test-key") && keys.contains("ED25519"), "{keys}");
}

#[test]
fn a_named_build_context_is_copied_from() {
    // One build at a time: the cache test prunes the engine's build cache, and a build
    // meanwhile could make its cache import miss.
    let _machine = support::machine::lock();
    let repo = unique_repo("contexts");
    let ctx = context(&format!(
        "FROM {}\nCOPY --from=extra hello.txt /hello.txt\nCMD [\"cat\", \"/hello.txt\"]\n",
        lab().base
    ));
    let extra = tempfile::tempdir().unwrap();
    std::fs::write(extra.path().join("hello.txt"), "from the named context\n").unwrap();
    let tag = format!("{repo}:1");
    let out = archway_env(
        ctx.path(),
        &["build", ".", "--platform", "linux/amd64", "-t", &tag, "--push"],
        &[("ARCHWAY_BUILD_CONTEXTS", &format!("extra={}", extra.path().display()))],
    );
    let (_, stderr) = ok(&out);
    // No RUN, yet the assembler is ruled out: it does not read named contexts.
    assert!(
        stderr.contains("archway's assembler cannot honour `build-contexts`") || stderr.contains("native"),
        "{stderr}"
    );
    assert_eq!(docker_run("linux/amd64", &tag), "from the named context");
}

fn image_exists_locally(reference: &str) -> bool {
    Command::new("docker").args(["image", "inspect", reference]).output().unwrap().status.success()
}

fn remove_local(reference: &str) {
    let _ = Command::new("docker").args(["image", "rm", "-f", reference]).output();
}

fn run_local(reference: &str) -> String {
    let out = Command::new("docker").args(["run", "--rm", "--pull", "never", reference]).output().unwrap();
    assert!(out.status.success(), "docker run {reference}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn load_puts_the_engines_platform_in_the_local_engine_whatever_the_strategy() {
    // One build at a time: the cache test prunes the engine's build cache, and a build
    // meanwhile could make its cache import miss.
    let _machine = support::machine::lock();
    let repo = unique_repo("load");
    // Assembled (no RUN): nothing of it is in the engine until `load`.
    let ctx = context(&format!("FROM {}\nCOPY msg /msg\nCMD [\"cat\", \"/msg\"]\n", lab().base));
    std::fs::write(ctx.path().join("msg"), "loaded\n").unwrap();
    let (tag, other) = (format!("{repo}:1"), format!("{repo}:latest"));
    let out = archway(
        ctx.path(),
        &["build", ".", "--platform", "linux/amd64,linux/arm64", "-t", &tag, "-t", &other, "--push", "--load"],
    );
    let (_, stderr) = ok(&out);
    assert!(stderr.contains("assembled"), "{stderr}");
    assert!(stderr.contains(&format!("loaded {tag}")), "{stderr}");
    assert_eq!(run_local(&tag), "loaded");
    assert!(image_exists_locally(&other), "every tag names the loaded image");
    remove_local(&tag);
    remove_local(&other);

    // Without a push: from the output layout.
    let local = format!("{repo}:local");
    let out =
        archway(ctx.path(), &["build", ".", "--platform", "linux/amd64", "-t", &local, "--load", "--output", "layout"]);
    ok(&out);
    assert_eq!(run_local(&local), "loaded");
    remove_local(&local);
}

#[test]
fn no_cache_runs_the_run_steps_again() {
    // One build at a time: the cache test prunes the engine's build cache, and a build
    // meanwhile could make its cache import miss.
    let _machine = support::machine::lock();
    let repo = unique_repo("nocache");
    let ctx = context(&format!("FROM {}\nRUN echo ran-it && echo nocache-{} > /n\n", lab().base, nonce()));
    let build = |extra: &[&str]| {
        let mut args = vec!["build", ".", "--platform", "linux/amd64", "--output", "out"];
        args.extend(extra);
        let _ = std::fs::remove_dir_all(ctx.path().join("out"));
        let out = archway(ctx.path(), &args);
        ok(&out).1
    };
    build(&[]);
    let again = build(&[]);
    assert!(step_cached(&lines_of(&again, "linux/amd64"), "echo nocache-"), "cached without `--no-cache`");
    let fresh = build(&["--no-cache"]);
    assert!(!step_cached(&lines_of(&fresh, "linux/amd64"), "echo nocache-"), "{fresh}");
    let _ = repo;
}

#[test]
fn pull_resolves_the_base_again() {
    // One build at a time: the cache test prunes the engine's build cache, and a build
    // meanwhile could make its cache import miss.
    let _machine = support::machine::lock();
    let base = unique_repo("pullbase");
    let repo = unique_repo("pull");
    // Publishes `base:latest` holding `/v` = `version`.
    let publish_base = |version: &str| {
        let ctx = context(&format!("FROM {}\nCOPY v /v\n", lab().base));
        std::fs::write(ctx.path().join("v"), version).unwrap();
        ok(&archway(
            ctx.path(),
            &["build", ".", "--platform", "linux/amd64", "-t", &format!("{base}:latest"), "--push"],
        ));
    };
    publish_base("one");
    let ctx = context(&format!("FROM {base}:latest\nRUN cp /v /seen\nCMD [\"cat\", \"/seen\"]\n"));
    let tag = format!("{repo}:1");
    let build = |extra: &[&str]| {
        let mut args = vec!["build", ".", "--platform", "linux/amd64", "-t", &tag, "--push"];
        args.extend(extra);
        ok(&archway(ctx.path(), &args));
    };
    build(&[]);
    assert_eq!(docker_run("linux/amd64", &tag), "one");
    publish_base("two");
    build(&["--pull"]);
    assert_eq!(docker_run("linux/amd64", &tag), "two", "`--pull` built on the base as it is now");
}

/// Every path under `dir` (relative), with what a user would compare: the kind, the mode, a
/// file's content, a link's target. Not mtimes (each build stamps its own).
fn tree(dir: &Path) -> std::collections::BTreeMap<String, String> {
    use std::os::unix::fs::MetadataExt as _;
    let mut out = std::collections::BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            let what = if m.file_type().is_symlink() {
                format!("link -> {}", std::fs::read_link(&p).unwrap().display())
            } else if m.is_dir() {
                todo.push(p.clone());
                format!("dir {:o}", m.mode() & 0o7777)
            } else {
                format!("file {:o} {}", m.mode() & 0o7777, sha256(&std::fs::read(&p).unwrap()))
            };
            out.insert(rel, what);
        }
    }
    out
}

/// The paths of a tar, without a trailing `/`.
fn tar_paths(file: &Path) -> std::collections::BTreeSet<String> {
    let mut a = tar::Archive::new(std::fs::File::open(file).unwrap());
    a.entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().trim_end_matches('/').to_string())
        .filter(|p| !p.is_empty() && p != ".")
        .collect()
}

/// `outputs: type=local` and `type=tar` give what buildx's own exporters give for the same
/// Dockerfile (the oracle): one `os_arch` folder per platform, each the image's filesystem
/// with the RUN's deletions applied — from archway's pushed image, read back.
#[test]
fn local_and_tar_outputs_equal_buildxs() {
    let _machine = support::machine::lock();
    let repo = unique_repo("outputs");
    let ctx = context(&format!(
        "FROM {}\nRUN rm /bin/ls && mkdir -p /opt/app && echo hi > /opt/app/hello && ln -s hello /opt/app/link\nCOPY f.txt /opt/app/f.txt\n",
        lab().base
    ));
    std::fs::write(ctx.path().join("f.txt"), "from the context\n").unwrap();
    let work = tempfile::tempdir().unwrap();
    let (oracle, oracle_tar) = (work.path().join("oracle"), work.path().join("oracle.tar"));
    for out in [format!("type=local,dest={}", oracle.display()), format!("type=tar,dest={}", oracle_tar.display())] {
        let o = Command::new("docker")
            .args(["buildx", "build", "--platform", "linux/amd64,linux/arm64", "--output", &out, "."])
            .current_dir(ctx.path())
            .output()
            .unwrap();
        assert!(o.status.success(), "buildx: {}", String::from_utf8_lossy(&o.stderr));
    }
    let (dir, file) = (work.path().join("candidate"), work.path().join("candidate.tar"));
    let tag = format!("{repo}:1");
    let out = archway(
        ctx.path(),
        &[
            "build",
            ".",
            "--platform",
            "linux/amd64,linux/arm64",
            "-t",
            &tag,
            "--push",
            "--output",
            &format!("type=local,dest={}", dir.display()),
            "--output",
            &format!("type=tar,dest={}", file.display()),
        ],
    );
    let (_, stderr) = ok(&out);
    assert!(stderr.contains(&format!("wrote {}", dir.display())), "{stderr}");
    let (want, got) = (tree(&oracle), tree(&dir));
    assert!(got.contains_key("linux_arm64/bin/busybox") && !got.contains_key("linux_arm64/bin/ls"), "{got:#?}");
    assert_eq!(got.get("linux_amd64/opt/app/f.txt").map(|s| s.starts_with("file 644")), Some(true), "{got:#?}");
    let differ: Vec<_> = want
        .keys()
        .chain(got.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter(|k| want.get(*k) != got.get(*k))
        .map(|k| format!("{k}: buildx {:?}, archway {:?}", want.get(k), got.get(k)))
        .collect();
    assert!(differ.is_empty(), "type=local differs from buildx's:\n{}", differ.join("\n"));
    assert_eq!(tar_paths(&file), tar_paths(&oracle_tar), "type=tar names other paths than buildx's");
}

/// buildx's image exporter, as the native-runner recipe writes it, is archway's push: the
/// names are the tags, `push-by-digest=true` pushes without a tag, and `annotation-index.*`
/// lands on the index.
#[test]
fn image_outputs_are_archways_push() {
    let repo = unique_repo("image-output");
    let ctx = context(&format!("FROM {}\nCOPY f.txt /f.txt\n", lab().base));
    std::fs::write(ctx.path().join("f.txt"), "x\n").unwrap();
    let out = archway(
        ctx.path(),
        &[
            "build",
            ".",
            "--platform",
            "linux/amd64,linux/arm64",
            "--output",
            &format!("type=image,\"name={repo}:a,{repo}:b\",push=true,annotation-index.org.example.note=hello"),
        ],
    );
    ok(&out);
    let a = tag_digest(&repo, "a").expect("tag a pushed");
    assert_eq!(tag_digest(&repo, "b").as_deref(), Some(a.as_str()));
    let (_, index) = manifest(&repo, &a).unwrap();
    assert_eq!(json(&index)["annotations"]["org.example.note"], "hello");

    let leg = format!("{repo}-leg");
    let out = archway(
        ctx.path(),
        &[
            "build",
            ".",
            "--platform",
            "linux/arm64",
            "--output",
            &format!("type=image,name={leg},push-by-digest=true,name-canonical=true,push=true"),
        ],
    );
    let (stdout, _) = ok(&out);
    let digest = stdout.trim().rsplit('@').next().unwrap().to_string();
    assert!(digest.starts_with("sha256:"), "{stdout}");
    assert!(manifest(&leg, &digest).is_some(), "pushed by digest");
    assert_eq!(tag_digest(&leg, "latest"), None, "no tag moves for a matrix leg");
}
