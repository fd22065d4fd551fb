//! probe on the real machine: the lab's binfmt_misc handlers, Docker engine, buildx, and nodes
//! that cannot be reached. Registers short-lived binfmt entries under test-only names and
//! always removes them. Needs root and `scripts/lab-up`.
//!
//! Tests that register handlers, and tests that rely on the lab's QEMU handlers, hold
//! `support::machine::lock()` (see there).

#![cfg(feature = "lab")]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use archway::platform::Platform;
use archway::probe::binfmt::{self, BINFMT_DIR};
use archway::probe::engine::{self, EngineEndpoint, PROBE_LABEL};
use archway::probe::{self, BinfmtEntry, Capabilities, NodeSpec, ProbeOptions, buildx, nodes};

fn p(s: &str) -> Platform {
    s.parse().unwrap()
}

fn binfmt_path(name: &str) -> PathBuf {
    Path::new(BINFMT_DIR).join(name)
}

fn entry<'a>(all: &'a [BinfmtEntry], name: &str) -> &'a BinfmtEntry {
    all.iter().find(|e| e.name == name).unwrap_or_else(|| panic!("no binfmt entry `{name}`; run `scripts/lab-up`"))
}

/// binfmt entries this test registered; removed (`-1`) when dropped, panics included.
struct Registered {
    names: Vec<String>,
}

impl Registered {
    fn new() -> Self {
        let register = binfmt_path("register");
        assert!(
            register.exists(),
            "binfmt_misc is not mounted at {BINFMT_DIR}; these tests need root and `scripts/lab-up`"
        );
        remove_stale_entries();
        Registered { names: Vec::new() }
    }

    /// Registers `rule` (binfmt.d syntax) under `name`, which must be in the rule already.
    fn add(&mut self, name: &str, rule: &str) {
        assert!(name.starts_with("archway-test-"));
        // Remember first: a write that fails half-way must still be cleaned up.
        self.names.push(name.to_string());
        std::fs::write(binfmt_path("register"), rule)
            .unwrap_or_else(|e| panic!("registering `{rule}` (needs root): {e}"));
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        for name in &self.names {
            let path = binfmt_path(name);
            if path.exists()
                && let Err(e) = std::fs::write(&path, "-1")
            {
                eprintln!("could not remove binfmt entry {name}: {e}");
            }
        }
    }
}

/// Entries left by a test process that was killed before its guard ran.
fn remove_stale_entries() {
    for item in std::fs::read_dir(BINFMT_DIR).unwrap().flatten() {
        let name = item.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix("archway-test-").and_then(|r| r.split('-').next()) else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::write(item.path(), "-1");
        }
    }
}

fn qemu_rule(arch: &str) -> String {
    let path = format!("/usr/lib/binfmt.d/qemu-{arch}.conf");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}; install qemu-user-static"))
        .trim()
        .to_string()
}

#[test]
fn the_lab_qemu_handlers_map_to_their_platforms() {
    let _machine = support::machine::lock();
    let all = binfmt::read_all(Path::new(BINFMT_DIR));
    for (name, platform) in [
        ("qemu-aarch64", "linux/arm64"),
        ("qemu-arm", "linux/arm/v7"),
        ("qemu-riscv64", "linux/riscv64"),
        ("qemu-s390x", "linux/s390x"),
        ("qemu-ppc64le", "linux/ppc64le"),
    ] {
        let e = entry(&all, name);
        assert!(e.enabled, "{e:?}");
        assert!(e.has_flag('F'), "{e:?}");
        assert!(e.usable_in_containers, "{e:?}");
        assert_eq!(e.platforms.first(), Some(&p(platform)), "{e:?}");
        assert_eq!(binfmt::handler_for(&all, &p(platform)).map(|h| h.name.as_str()), Some(name));
    }
    assert_eq!(entry(&all, "qemu-arm").platforms, [p("linux/arm/v7"), p("linux/arm/v6")]);
    assert!(binfmt::handler_for(&all, &Platform::host()).is_none(), "no handler for the host's own platform");
    assert!(!all.iter().any(|e| e.name == "register" || e.name == "status"));
}

#[test]
fn registered_entries_are_parsed_and_always_removed() {
    let _machine = support::machine::lock();
    let pid = std::process::id();
    let arm64 = format!("archway-test-{pid}-arm64");
    let made_up = format!("archway-test-{pid}-made-up");
    let ext = format!("archway-test-{pid}-ext");

    let mut reg = Registered::new();
    // A copy of Debian's aarch64 rule under another name: the same interpreter and flags, so
    // while it exists (and shadows the real one) aarch64 binaries run exactly as before.
    let rule = qemu_rule("aarch64").replacen(":qemu-aarch64:", &format!(":{arm64}:"), 1);
    reg.add(&arm64, &rule);
    // A made-up format nothing on the machine matches, without F, its interpreter missing.
    let made_up_rule = format!(
        r":{made_up}:M:3:ARCHWAY\x00TEST:\xff\xff\xff\xff\xff\xff\xff\x00\xdf\xdf\xdf\xdf:/nonexistent/archway-test-interpreter:"
    );
    reg.add(&made_up, &made_up_rule);
    std::fs::write(binfmt_path(&made_up), "0").unwrap();
    reg.add(&ext, &format!(":{ext}:E::archwaytest::/nonexistent/archway-test-interpreter:"));

    let all = binfmt::read_all(Path::new(BINFMT_DIR));

    let e = entry(&all, &arm64);
    assert!(e.enabled);
    assert_eq!(e.platforms, [p("linux/arm64")]);
    assert_eq!(e.flags, "POF", "the kernel prints the rule's `OPF` in its own order");
    assert!(e.usable_in_containers);
    let expected = binfmt::parse_rule(&rule).unwrap();
    assert_eq!((&e.magic, &e.mask, e.offset), (&expected.magic, &expected.mask, expected.offset));
    assert_eq!(e.magic, "7f454c460201010000000000000000000200b700");
    assert_eq!(e.interpreter, expected.interpreter);

    let e = entry(&all, &made_up);
    assert!(!e.enabled, "disabled with `echo 0`");
    assert_eq!(e.offset, 3);
    assert_eq!(e.magic, hex("ARCHWAY\0TEST"));
    assert_eq!(e.mask, "ffffffffffffff00dfdfdfdf");
    assert_eq!(e.flags, "");
    assert!(e.platforms.is_empty());
    assert!(!e.usable_in_containers, "no F flag and no interpreter");
    assert_eq!(binfmt::parse_rule(&made_up_rule).unwrap().magic, e.magic);

    let e = entry(&all, &ext);
    assert!(e.enabled);
    assert_eq!(e.interpreter, "/nonexistent/archway-test-interpreter");
    assert!(e.magic.is_empty() && e.mask.is_empty() && e.platforms.is_empty());

    drop(reg);
    for name in [&arm64, &made_up, &ext] {
        assert!(!binfmt_path(name).exists(), "{name} was not removed");
    }
    // The real handler serves arm64 again.
    let all = binfmt::read_all(Path::new(BINFMT_DIR));
    assert_eq!(binfmt::handler_for(&all, &p("linux/arm64")).map(|h| h.name.as_str()), Some("qemu-aarch64"));
}

#[test]
fn entries_are_removed_when_the_test_panics() {
    let _machine = support::machine::lock();
    let name = format!("archway-test-{}-panics", std::process::id());
    let outcome = std::panic::catch_unwind(|| {
        let mut reg = Registered::new();
        reg.add(&name, &format!(r":{name}:M::\x00ARCHWAYPANIC::/nonexistent/archway-test-interpreter:"));
        assert!(binfmt_path(&name).exists());
        panic!("a failing assertion while the entry is registered");
    });
    assert!(outcome.is_err());
    assert!(!binfmt_path(&name).exists(), "the guard removed {name} during unwinding");
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

/// This process's probe containers (`archway-probe-PID-…`), by the Docker CLI rather than
/// archway's own code.
fn our_probe_containers() -> Vec<String> {
    let filter = format!("name=archway-probe-{}-", std::process::id());
    let out = Command::new("docker").args(["ps", "-a", "-q", "--filter", &filter]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(String::from).collect()
}

/// What the engine did to this process's probe containers between two times (`docker events`).
fn probe_container_events(since: &str, until: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args(["events", "--since", since, "--until", until, "--filter", "type=container"])
        .args(["--filter", &format!("label={PROBE_LABEL}"), "--format", "{{.Action}} {{.Actor.Attributes.name}}"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let ours = format!("archway-probe-{}-", std::process::id());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(&ours))
        .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
        .collect()
}

fn now() -> String {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    format!("{}.{:09}", t.as_secs(), t.subsec_nanos())
}

/// Tests in this binary that probe the lab engine run one at a time, so the containers and
/// events of one are not mistaken for the other's.
static ENGINE_PROBES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn lab_engine() -> EngineEndpoint {
    support::lab::lab();
    EngineEndpoint { host: "unix:///var/run/docker.sock".into(), cert_dir: None }
}

#[tokio::test]
async fn the_lab_engine() {
    probe_log();
    let _engine = ENGINE_PROBES.lock().await;
    let endpoint = lab_engine();
    let before = our_probe_containers();
    let since = now();

    let e = engine::probe_engine(&endpoint, false).await.unwrap();
    assert_eq!(e.endpoint, "unix:///var/run/docker.sock");
    assert!(e.version.starts_with("26"), "{}", e.version);
    assert_eq!(e.platform, p("linux/amd64"));
    assert!(e.containerd_store);
    assert!(e.authorization_plugins.is_empty(), "{:?}", e.authorization_plugins);
    assert_eq!(e.accepts_privileged, Some(true));
    // The helper images, as the engine's own full list (the Docker CLI's) has them: archway
    // asks the engine for those only (a `reference` filter), and must miss none.
    let listed = std::process::Command::new("docker")
        .args(["image", "ls", "--format", "{{.Repository}}:{{.Tag}}"])
        .output()
        .unwrap();
    assert!(listed.status.success(), "docker image ls: {}", String::from_utf8_lossy(&listed.stderr));
    let mut helpers: Vec<String> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .filter(|l| !l.contains("<none>"))
        .filter(|l| {
            let repo = l.rsplit_once(':').map_or(*l, |(r, _)| r);
            ["archway", "qemu", "binfmt"].iter().any(|h| repo.contains(h))
        })
        .map(String::from)
        .collect();
    helpers.sort();
    helpers.dedup();
    assert!(helpers.iter().any(|i| i.contains("archway")), "the lab has archway's image (scripts/build-image)");
    assert_eq!(e.local_images, helpers);

    let until = now();
    assert_eq!(before, Vec::<String>::new());
    assert_eq!(our_probe_containers(), Vec::<String>::new(), "the probe container was left behind");
    // Created, never started, removed.
    assert_eq!(probe_container_events(&since, &until), ["create", "destroy"]);
}

/// An engine holding no helper image (a node of its own): the engine's filtered list finds
/// none, so the privileged check takes any image there is, and says `None` only when there is
/// none at all.
#[tokio::test(flavor = "multi_thread")]
async fn an_engine_without_helper_images_is_still_asked_about_privileged_containers() {
    probe_log();
    let base = support::lab::lab().base.clone();
    let node = tokio::task::spawn_blocking(support::node::Node::start).await.unwrap();
    let endpoint = EngineEndpoint { host: node.endpoint.clone(), cert_dir: Some(node.certs.clone()) };

    let empty = engine::probe_engine(&endpoint, false).await.unwrap();
    assert_eq!((empty.accepts_privileged, empty.local_images.len()), (None, 0), "no image at all: {empty:?}");

    let pulled = node.docker(&["pull", "-q", &base]);
    assert!(pulled.status.success(), "docker pull {base} on the node: {}", String::from_utf8_lossy(&pulled.stderr));
    let e = engine::probe_engine(&endpoint, false).await.unwrap();
    assert_eq!(e.local_images, Vec::<String>::new(), "{base} is no helper image");
    assert_eq!(e.accepts_privileged, Some(true), "the privileged check ran with {base}: {e:?}");
}

#[tokio::test]
async fn an_engine_that_is_not_there() {
    let port = closed_port();
    let host = format!("tcp://127.0.0.1:{port}");
    let e = engine::probe_engine(&EngineEndpoint { host: host.clone(), cert_dir: None }, false).await.unwrap_err();
    assert_eq!(e.to_string(), format!("connection refused at {host}"));
}

#[test]
fn the_default_builder_is_known_from_buildx_state() {
    let dir = tempfile::tempdir().unwrap();
    assert!(buildx::default_builder_selected(dir.path(), None), "no state: default");
    assert!(!buildx::default_builder_selected(dir.path(), Some("ci")), "BUILDX_BUILDER names another");
    std::fs::create_dir_all(dir.path().join("buildx")).unwrap();
    let current = dir.path().join("buildx/current");
    std::fs::write(&current, r#"{"Key":"unix:///var/run/docker.sock","Name":"","Global":false}"#).unwrap();
    assert!(buildx::default_builder_selected(dir.path(), None), "`docker buildx use default`");
    std::fs::write(&current, r#"{"Key":"unix:///var/run/docker.sock","Name":"multi","Global":false}"#).unwrap();
    assert!(!buildx::default_builder_selected(dir.path(), None), "`docker buildx use multi`");
    std::fs::write(&current, "not json").unwrap();
    assert!(!buildx::default_builder_selected(dir.path(), None), "unreadable: ask buildx");
}

#[tokio::test]
async fn the_lab_buildx() {
    let _machine = support::machine::lock();
    // The lab's `docker` is the Docker CLI, so its plugin is run directly; through `docker
    // buildx` it says the same.
    let direct = buildx::BuildxProgram::find(Path::new("docker"), &std::env::var("PATH").unwrap(), &docker_config());
    assert!(direct.plugin.as_ref().is_some_and(|p| p.ends_with("docker-buildx")), "{direct:?}");
    let b = buildx::probe_buildx(&direct, false).await.unwrap();
    let through = buildx::probe_buildx(&buildx::BuildxProgram::through("docker"), false).await.unwrap();
    assert_eq!(b, through);
    assert!(b.version.contains("0.13"), "{b:?}");
    assert_eq!(b.driver, "docker");
    assert_eq!(b.builder, "default");
    for want in ["linux/amd64", "linux/arm64"] {
        assert!(b.platforms.contains(&p(want)), "{want} missing: {b:?}");
    }
    assert_eq!(b.refused, None);
    // With the default builder known to be in use, `inspect` is not run; what matters for
    // planning (builder, driver, not refused) is the same.
    let quick = buildx::probe_buildx(&direct, true).await.unwrap();
    assert_eq!(
        (&quick.version, &quick.builder, &quick.driver, &quick.refused),
        (&b.version, &b.builder, &b.driver, &b.refused)
    );
    let missing = buildx::BuildxProgram::find(Path::new("/nonexistent/docker"), "", &docker_config());
    assert_eq!(missing.plugin, None, "no Docker CLI, no plugin run behind its back");
    let e = buildx::probe_buildx(&missing, false).await.unwrap_err();
    assert_eq!(e.to_string(), "`/nonexistent/docker` is not installed (not found)");
}

/// The probe's debug lines in a failing test's output: why each image the privileged check
/// tried was not usable (seen once: `accepts_privileged` None on a machine after five full runs).
fn probe_log() {
    let _ = tracing_subscriber::fmt().with_env_filter("archway::probe=debug").with_test_writer().try_init();
}

/// The Docker CLI's config directory here, as archway finds it.
fn docker_config() -> PathBuf {
    std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(&std::env::var("HOME").unwrap()).join(".docker"))
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test]
async fn nodes_reached_and_not() {
    let port = closed_port();
    let specs = [
        NodeSpec { platform: p("linux/arm64"), endpoint: format!("tcp://127.0.0.1:{port}"), cert_dir: None },
        NodeSpec { platform: p("linux/amd64"), endpoint: "unix:///var/run/docker.sock".into(), cert_dir: None },
        NodeSpec { platform: p("linux/s390x"), endpoint: format!("ssh://nobody@127.0.0.1:{port}"), cert_dir: None },
    ];
    lab_engine();
    let got = nodes::probe_nodes(&specs, Path::new("docker")).await;
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].platform, p("linux/arm64"));
    assert_eq!(got[0].reached, Err(format!("connection refused at tcp://127.0.0.1:{port}")));
    assert_eq!(got[1].reached, Ok(p("linux/amd64")));
    let ssh = got[2].reached.as_ref().unwrap_err();
    assert_eq!(
        ssh,
        &format!(
            "cannot reach ssh://nobody@127.0.0.1:{port}: ssh: connect to host 127.0.0.1 port {port}: Connection refused"
        )
    );
}

#[tokio::test]
async fn a_node_that_is_not_a_docker_engine() {
    use std::io::{Read as _, Write as _};
    // An HTTP server that answers everything with an empty 404.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let _ = conn.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    let spec = NodeSpec { platform: p("linux/arm64"), endpoint: format!("tcp://127.0.0.1:{port}"), cert_dir: None };
    let n = nodes::probe_node(&spec, Path::new("docker")).await;
    assert_eq!(
        n.reached,
        Err(format!("tcp://127.0.0.1:{port} answered HTTP 404 without a message; is a Docker engine listening there?"))
    );
}

#[tokio::test]
async fn a_tls_node_without_certificates() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), "not a certificate").unwrap();
    let spec = NodeSpec {
        platform: p("linux/arm64"),
        endpoint: "tcp://127.0.0.1:2376".into(),
        cert_dir: Some(dir.path().to_path_buf()),
    };
    let n = nodes::probe_node(&spec, Path::new("docker")).await;
    assert_eq!(
        n.reached,
        Err(format!("no key.pem in {} to reach tcp://127.0.0.1:2376 over TLS", dir.path().display()))
    );
}

#[tokio::test]
async fn everything_at_once_on_the_lab() {
    probe_log();
    let _machine = support::machine::lock();
    let _engine = ENGINE_PROBES.lock().await;
    lab_engine();
    let opts = ProbeOptions {
        docker: PathBuf::from("docker"),
        buildx: buildx::BuildxProgram::find(Path::new("docker"), &std::env::var("PATH").unwrap(), &docker_config()),
        nodes: vec![NodeSpec {
            platform: p("linux/arm64"),
            endpoint: format!("tcp://127.0.0.1:{}", closed_port()),
            cert_dir: None,
        }],
        engine: lab_engine(),
        container_var: None,
        default_builder: false,
        platforms: vec![],
    };
    let caps = probe::probe(&opts).await;
    assert_eq!(caps.host, p("linux/amd64"));
    assert!(caps.privilege.cap_sys_admin, "the lab runs as root: {:?}", caps.privilege);
    assert!(caps.privilege.binfmt_mounted && caps.privilege.binfmt_register_writable, "{:?}", caps.privilege);
    assert!(caps.privilege.can_register_binfmt());
    assert_eq!(caps.handler_for(&p("linux/arm64")).map(|h| h.name.as_str()), Some("qemu-aarch64"));
    assert_eq!(caps.handler_for(&p("linux/arm/v7")).map(|h| h.name.as_str()), Some("qemu-arm"));
    assert!(caps.handler_for(&p("linux/mips64le")).is_none());
    let e = caps.engine.as_ref().expect("the lab engine answers");
    assert_eq!(e.accepts_privileged, Some(true));
    let b = caps.buildx.as_ref().expect("buildx is installed");
    assert_eq!(b.refused, None);
    assert_eq!(caps.nodes.len(), 1);
    assert!(caps.nodes[0].reached.is_err());
    assert!(caps.qemu.is_empty(), "filled by the caller");

    // What `archway plan --capabilities-out` records comes back the same.
    let json = serde_json::to_string_pretty(&caps).unwrap();
    let back: Capabilities = serde_json::from_str(&json).unwrap();
    assert_eq!(back, caps);
}
