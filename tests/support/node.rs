//! A second Docker engine, started by the test itself, as a remote build node: `dockerd` on a
//! free loopback TCP port with mutual TLS (`tcp://127.0.0.1:PORT`, certificates made here with
//! the `openssl` CLI). Stopped, unmounted and removed when dropped, also when the test panics.
//!
//! Everything the node owns lives in one short directory, `/tmp/awn-<pid>-<n>` (unix socket
//! paths are limited to 108 bytes, so no deep temp paths):
//!
//! ```text
//! client/      ca.pem cert.pem key.pem   what `--node-certs DIR` / DOCKER_CERT_PATH expect
//! tls/         the CA and the server's key and certificate (IP:127.0.0.1, serverAuth)
//! data/        dockerd --data-root          exec/   dockerd --exec-root
//! ctd/         the node's own containerd (root, state, containerd.sock)
//! dockerd.log  containerd.log  daemon.json  containerd.toml  dockerd.pid
//! ```
//!
//! Why the node has a containerd of its own, started here: dockerd only starts a managed
//! containerd when `/run/containerd/containerd.sock` does not exist; the lab's containerd
//! lives there, so a dockerd without `--containerd` would silently join it, in the main
//! engine's `moby` namespace. Distinct `--containerd-namespace`s on the shared containerd
//! would work but leave images, leases and snapshots in the lab's containerd to clean up.
//! A private containerd (`containerd --config containerd.toml`, CRI off, all paths under the
//! node's directory) is isolated and goes away with the directory.
//!
//! Why the node has a bridge of its own (`awn<pid>n<n>`, a free 10.x.y.0/24): BuildKit in
//! dockerd runs `RUN` steps on the default `bridge` network, so `--bridge=none` fails every
//! RUN with "network bridge not found", and worse, **dockerd `--bridge=none` deletes the
//! host's `docker0`** (moby's `configureNetworking` calls `removeDefaultBridgeInterface()`),
//! breaking `docker run` on the main engine. Sharing `docker0` would mean two IPAMs handing
//! out the same addresses. So `start` creates a uniquely named bridge, passes
//! `--bridge=<it>`, and `Drop` deletes it. `--iptables=false --ip6tables=false
//! --ip-forward=false --ip-masq=false`: the node changes no iptables rule and no sysctl
//! (checked by diffing `iptables-save` and `sysctl -a`), and `--config-file` points at the
//! node's own `daemon.json`, so the host's `/etc/docker/daemon.json` is not read.
//! RUN steps on the node have no route out, which the lab does not need; the node pulls
//! from the loopback registry itself (dockerd treats 127.0.0.0/8 registries as insecure).
//!
//! Proving where a build ran: [`Node::built_here`] looks for a marker in the descriptions of
//! the node's BuildKit cache records (`docker buildx du --verbose`: a RUN leaves
//! `mount / from exec /bin/sh -c <the RUN text>`), and [`Node::has_blob`] asks the node's
//! private containerd whether it holds a blob: a layer BuildKit made on the node stays in
//! the node's content store, and a fresh node holds nothing else, so the top layer of an
//! image's arm64 manifest being there (and the amd64 one not) proves which platform was built
//! on the node. (buildx 0.13 has no `buildx history`; the du description has no platform.)
//!
//! Cleanup (`Drop`): SIGTERM dockerd (it stops its containers and unmounts), then
//! containerd, SIGKILL after a timeout; then SIGKILL whatever still refers to the node's
//! directory (containerd shims, BuildKit's runc and their children) and remove the sockets
//! of killed shims (containerd 1.7 keeps them in the host-wide `/run/containerd/s`, named
//! `sha256(ADDRESS/NAMESPACE/ID)`); then lazily unmount everything mounted under the
//! directory, deepest first (dockerd bind-mounts `data/` onto itself; overlay rootfs and
//! netns mounts remain after a SIGKILL); then delete the bridge and the directory.
//! `start` also sweeps what an earlier test process that was killed (no `Drop`) left:
//! `/tmp/awn-<pid>-*` whose pid is gone. The daemons get `PR_SET_PDEATHSIG` (SIGTERM), so
//! they end when the thread that started them dies (dockerd then waits ~15 s for the
//! containerd that died with it, and leaves its mounts for that sweep); keep a `Node` in
//! the test that started it, not in a static.
//!
//! Safe next to tests using the main engine: own data root, exec root, pidfile, containerd,
//! bridge and port; nothing machine-wide is changed except the bridge with its unique name.
//! The node runs linux/amd64: it builds other platforms with the host's QEMU handlers, so a
//! test building them there depends on binfmt_misc state (take `machine::lock()`).

use std::collections::HashMap;
use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

pub struct Node {
    /// `tcp://127.0.0.1:PORT`
    pub endpoint: String,
    /// Holds the client's `ca.pem`, `cert.pem` and `key.pem`.
    pub certs: PathBuf,
    pub port: u16,
    /// The node's whole state, `/tmp/awn-<pid>-<n>`.
    pub dir: PathBuf,
    /// The node's bridge interface.
    pub bridge: String,
    /// How long `start` took.
    pub started_in: Duration,
    dockerd: Option<Child>,
    containerd: Option<Child>,
    options: NodeOptions,
}

/// How a node's engine differs from the default (containerd image store, TCP with TLS only).
#[derive(Debug, Clone, Default)]
pub struct NodeOptions {
    /// Start dockerd without the containerd snapshotter: the classic image store, as
    /// Docker-in-Docker before Docker 29 and many CI engines run.
    pub classic_store: bool,
    /// `--authorization-plugin NAME` (the plugin's socket must already answer under
    /// `/run/docker/plugins/NAME.sock`).
    pub authorization_plugin: Option<String>,
    /// Also listen on a unix socket, `DIR/docker.sock` (for mounting into a container).
    pub unix_socket: bool,
}

impl Node {
    /// Starts the node; panics (after cleaning up) with the daemon's log tail when it fails.
    pub fn start() -> Node {
        Node::start_with(NodeOptions::default())
    }

    /// Starts a node with `options`; panics (after cleaning up) as `start` does.
    pub fn start_with(options: NodeOptions) -> Node {
        let began = Instant::now();
        sweep_stale();
        static N: AtomicUsize = AtomicUsize::new(0);
        let pid = std::process::id();
        let (dir, n) = loop {
            let n = N.fetch_add(1, Ordering::SeqCst);
            let dir = PathBuf::from(format!("/tmp/awn-{pid}-{n}"));
            match std::fs::create_dir(&dir) {
                Ok(()) => break (dir, n),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => panic!("{}: {e}", dir.display()),
            }
        };
        let mut node = Node {
            endpoint: String::new(),
            certs: dir.join("client"),
            port: 0,
            bridge: format!("awn{pid}n{n}"),
            dir,
            started_in: Duration::ZERO,
            dockerd: None,
            containerd: None,
            options,
        };
        // From here on, a panic drops `node`, which cleans up whatever was made so far.
        node.make_certs();
        node.make_bridge();
        node.start_containerd();
        for attempt in 1..=3 {
            node.port = free_port();
            node.endpoint = format!("tcp://127.0.0.1:{}", node.port);
            match node.start_dockerd() {
                Ok(()) => break,
                // The free port was taken between finding it and dockerd binding it.
                Err(log) if attempt < 3 && log.contains("address already in use") => continue,
                Err(log) => panic!("the node's dockerd did not start on {}:\n{log}", node.endpoint),
            }
        }
        node.started_in = began.elapsed();
        node
    }

    /// The docker CLI against the node, with TLS.
    pub fn docker(&self, args: &[&str]) -> Output {
        self.docker_command(args).output().expect("the docker CLI runs")
    }

    /// A `docker` command set up for the node (DOCKER_HOST, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH).
    pub fn docker_command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("docker");
        c.args(args)
            .env("DOCKER_HOST", &self.endpoint)
            .env("DOCKER_TLS_VERIFY", "1")
            .env("DOCKER_CERT_PATH", &self.certs)
            .env_remove("DOCKER_CONTEXT")
            .env_remove("BUILDX_BUILDER")
            .stdin(Stdio::null());
        c
    }

    /// Whether a build on this node ran a step whose text contains `marker` (its BuildKit
    /// cache has such a record).
    pub fn built_here(&self, marker: &str) -> bool {
        self.cache_records(marker) > 0
    }

    /// How many of the node's BuildKit cache records mention `marker` in their description.
    pub fn cache_records(&self, marker: &str) -> usize {
        let out = self.docker(&["buildx", "du", "--verbose"]);
        assert!(out.status.success(), "docker buildx du on the node: {}", String::from_utf8_lossy(&out.stderr));
        count_records(&String::from_utf8_lossy(&out.stdout), marker)
    }

    /// Whether the node's containerd content store holds this blob (`sha256:…`).
    pub fn has_blob(&self, digest: &str) -> bool {
        self.blobs().iter().any(|d| d == digest)
    }

    /// Every blob digest in the node's content store (dockerd's `moby` namespace).
    pub fn blobs(&self) -> Vec<String> {
        let out = self.ctr(&["-n", "moby", "content", "ls", "-q"]);
        assert!(out.status.success(), "ctr content ls on the node: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect()
    }

    /// `ctr` against the node's private containerd.
    pub fn ctr(&self, args: &[&str]) -> Output {
        Command::new("ctr")
            .arg("--address")
            .arg(self.containerd_socket())
            .args(args)
            .output()
            .expect("ctr (from the containerd package) runs")
    }

    pub fn containerd_socket(&self) -> PathBuf {
        self.dir.join("ctd/containerd.sock")
    }

    /// The node's unix socket (listening only with `NodeOptions::unix_socket`).
    pub fn socket(&self) -> PathBuf {
        self.dir.join("docker.sock")
    }

    /// The last lines of the node's dockerd log.
    pub fn log_tail(&self) -> String {
        tail(&self.dir.join("dockerd.log"), 40)
    }

    fn make_certs(&self) {
        let tls = self.dir.join("tls");
        std::fs::create_dir_all(&tls).unwrap();
        std::fs::create_dir_all(&self.certs).unwrap();
        let t = |f: &str| tls.join(f).display().to_string();
        let c = |f: &str| self.certs.join(f).display().to_string();
        std::fs::write(tls.join("server.ext"), "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n").unwrap();
        std::fs::write(tls.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
        let (ca, ca_key) = (t("ca.pem"), t("ca-key.pem"));
        let sign = |csr: String, ext: String, out: String| {
            let days = "2".to_string();
            ["x509", "-req", "-in", &csr, "-CA", &ca, "-CAkey", &ca_key, "-CAcreateserial", "-days", &days]
                .iter()
                .map(|s| s.to_string())
                .chain(["-extfile".into(), ext, "-out".into(), out])
                .collect::<Vec<String>>()
        };
        let new_key = |subject: &str, key: String, out: String| {
            let subject = format!("/CN={subject}");
            ["req", "-newkey", "rsa:2048", "-nodes", "-subj", &subject, "-keyout", &key, "-out", &out]
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<String>>()
        };
        let mut ca_req = new_key("archway-test-node-ca", ca_key.clone(), ca.clone());
        ca_req.extend(["-x509".into(), "-days".into(), "2".into()]); // req -x509 marks it CA:TRUE
        let steps = [
            ca_req,
            new_key("127.0.0.1", t("server-key.pem"), t("server.csr")),
            sign(t("server.csr"), t("server.ext"), t("server-cert.pem")),
            new_key("archway-test-client", c("key.pem"), t("client.csr")),
            sign(t("client.csr"), t("client.ext"), c("cert.pem")),
        ];
        for args in steps {
            let out = Command::new("openssl").args(&args).stdin(Stdio::null()).output().expect("the openssl CLI runs");
            assert!(out.status.success(), "openssl {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
        }
        std::fs::copy(tls.join("ca.pem"), self.certs.join("ca.pem")).unwrap();
    }

    fn make_bridge(&self) {
        let subnet = free_subnet();
        for args in [
            vec!["link", "add", &self.bridge, "type", "bridge"],
            vec!["addr", "add", &format!("{subnet}.1/24"), "dev", &self.bridge],
            vec!["link", "set", &self.bridge, "up"],
        ] {
            let args: Vec<&str> = args.iter().map(|s| s.as_ref()).collect();
            let out = Command::new("ip").args(&args).output().expect("ip (iproute2) runs");
            assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
        }
    }

    fn start_containerd(&mut self) {
        let d = self.dir.display();
        std::fs::write(
            self.dir.join("containerd.toml"),
            format!(
                "version = 2\nroot = \"{d}/ctd/root\"\nstate = \"{d}/ctd/state\"\n\
                 disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
                 [grpc]\n  address = \"{d}/ctd/containerd.sock\"\n\
                 [ttrpc]\n  address = \"{d}/ctd/containerd.sock.ttrpc\"\n\
                 [debug]\n  address = \"\"\n[metrics]\n  address = \"\"\n\
                 [plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"{d}/ctd/opt\"\n"
            ),
        )
        .unwrap();
        std::fs::create_dir_all(self.dir.join("ctd")).unwrap();
        let log = self.dir.join("containerd.log");
        let mut cmd = Command::new("containerd");
        cmd.arg("--config").arg(self.dir.join("containerd.toml"));
        self.containerd = Some(spawn_daemon(cmd, &log));
        let sock = self.containerd_socket();
        let began = Instant::now();
        while std::os::unix::net::UnixStream::connect(&sock).is_err() {
            if let Some(s) = self.containerd.as_mut().unwrap().try_wait().unwrap() {
                panic!("the node's containerd exited ({s}):\n{}", tail(&log, 40));
            }
            assert!(began.elapsed() < START_TIMEOUT, "the node's containerd did not answer:\n{}", tail(&log, 40));
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts dockerd and waits until `docker version` answers over TLS; `Err(log tail)` when
    /// it exits first (dockerd is then reaped and `self.dockerd` empty).
    fn start_dockerd(&mut self) -> Result<(), String> {
        let snapshotter = !self.options.classic_store;
        std::fs::write(
            self.dir.join("daemon.json"),
            format!("{{\"features\":{{\"containerd-snapshotter\":{snapshotter}}}}}\n"),
        )
        .unwrap();
        let p = |f: &str| self.dir.join(f);
        let log = p("dockerd.log");
        let _ = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .and_then(|mut f| writeln!(f, "=== node.rs starting dockerd on {}", self.endpoint));
        let mut cmd = Command::new("dockerd");
        cmd.arg("--config-file")
            .arg(p("daemon.json"))
            .arg("--data-root")
            .arg(p("data"))
            .arg("--exec-root")
            .arg(p("exec"))
            .arg("--pidfile")
            .arg(p("dockerd.pid"))
            .arg("--containerd")
            .arg(self.containerd_socket())
            .arg("--host")
            .arg(&self.endpoint)
            .arg("--tlsverify")
            .arg("--tlscacert")
            .arg(p("tls/ca.pem"))
            .arg("--tlscert")
            .arg(p("tls/server-cert.pem"))
            .arg("--tlskey")
            .arg(p("tls/server-key.pem"))
            .arg(format!("--bridge={}", self.bridge))
            .args(["--iptables=false", "--ip6tables=false", "--ip-forward=false", "--ip-masq=false"])
            .arg("--shutdown-timeout=5");
        if let Some(plugin) = &self.options.authorization_plugin {
            cmd.arg("--authorization-plugin").arg(plugin);
        }
        if self.options.unix_socket {
            cmd.arg("--host").arg(format!("unix://{}", self.socket().display()));
        }
        self.dockerd = Some(spawn_daemon(cmd, &log));
        let began = Instant::now();
        loop {
            let out = self.docker(&["version", "--format", "{{.Server.Version}}"]);
            if out.status.success() {
                return Ok(());
            }
            if let Some(s) = self.dockerd.as_mut().unwrap().try_wait().unwrap() {
                self.dockerd = None;
                return Err(format!("dockerd exited ({s}); the end of {}:\n{}", log.display(), tail(&log, 40)));
            }
            if began.elapsed() > START_TIMEOUT {
                return Err(format!(
                    "no answer within {START_TIMEOUT:?} (last: {}); the end of {}:\n{}",
                    String::from_utf8_lossy(&out.stderr).trim(),
                    log.display(),
                    tail(&log, 40)
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(c) = self.dockerd.take() {
            stop(c);
        }
        if let Some(c) = self.containerd.take() {
            stop(c);
        }
        clean_dir(&self.dir);
        delete_link(&self.bridge);
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("node: could not remove {}: {e}", self.dir.display());
        }
    }
}

/// Counts the `docker buildx du --verbose` records whose description mentions `marker`.
pub fn count_records(du_verbose: &str, marker: &str) -> usize {
    du_verbose
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("Description:"))
        .filter(|d| d.contains(marker))
        .count()
}

/// Build cache records of the main engine (its currently selected builder) that mention
/// `marker`, the same way as [`Node::cache_records`].
pub fn main_engine_cache_records(marker: &str) -> usize {
    let out = Command::new("docker").args(["buildx", "du", "--verbose"]).output().expect("the docker CLI runs");
    assert!(out.status.success(), "docker buildx du: {}", String::from_utf8_lossy(&out.stderr));
    count_records(&String::from_utf8_lossy(&out.stdout), marker)
}

/// Spawns a daemon in its own process group (the terminal's Ctrl-C does not reach it),
/// stdin closed, stdout and stderr appended to `log`, terminated when this thread dies.
fn spawn_daemon(mut cmd: Command, log: &Path) -> Child {
    let f = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
    cmd.stdin(Stdio::null()).stdout(f.try_clone().unwrap()).stderr(f).current_dir("/").process_group(0);
    // SAFETY: prctl is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    let program = cmd.get_program().to_string_lossy().into_owned();
    cmd.spawn().unwrap_or_else(|e| panic!("{program} runs: {e}"))
}

/// SIGTERM, wait, SIGKILL when it takes longer than STOP_TIMEOUT.
fn stop(mut c: Child) {
    unsafe {
        libc::kill(c.id() as i32, libc::SIGTERM);
    }
    let began = Instant::now();
    while began.elapsed() < STOP_TIMEOUT {
        if let Ok(Some(_)) = c.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("node: pid {} did not stop within {STOP_TIMEOUT:?}; killing it", c.id());
    let _ = c.kill();
    let _ = c.wait();
}

/// Kills every process still referring to `dir` (shims, runc, their children), then
/// unmounts everything under `dir`, deepest first.
fn clean_dir(dir: &Path) {
    let needle = format!("{}/", dir.display());
    for _ in 0..5 {
        let procs = processes();
        let roots: Vec<i32> = procs
            .iter()
            .filter(|(pid, (_, cmdline))| **pid != std::process::id() as i32 && cmdline.contains(&needle))
            .map(|(pid, _)| *pid)
            .collect();
        if roots.is_empty() {
            break;
        }
        // Children first (a shim's container init; killing it ends its pid namespace).
        let mut all = Vec::new();
        let mut todo = roots.clone();
        while let Some(p) = todo.pop() {
            if !all.contains(&p) {
                all.push(p);
                todo.extend(procs.iter().filter(|(_, (ppid, _))| *ppid == p).map(|(pid, _)| *pid));
            }
        }
        for p in all.iter().rev() {
            unsafe {
                libc::kill(*p, libc::SIGKILL);
            }
        }
        eprintln!("node: killed leftover processes {all:?} under {}", dir.display());
        std::thread::sleep(Duration::from_millis(200));
        // A killed shim leaves its socket in containerd's fixed /run/containerd/s.
        for p in &roots {
            if let Some(sock) = shim_socket(&procs[p].1) {
                let _ = std::fs::remove_file(sock);
            }
        }
    }
    let mut mounts = mounts_under(dir);
    mounts.sort_by_key(|m| std::cmp::Reverse(m.matches('/').count()));
    for m in mounts {
        let c = std::ffi::CString::new(m.as_str()).unwrap();
        let rc = unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        if rc != 0 {
            eprintln!("node: umount {m}: {}", std::io::Error::last_os_error());
        }
    }
}

/// The socket a `containerd-shim-runc-v2 -namespace NS -id ID -address ADDR` listens on:
/// containerd 1.7 puts it at `/run/containerd/s/<sha256(ADDR/NS/ID)>` whatever its own root.
fn shim_socket(cmdline: &str) -> Option<PathBuf> {
    use sha2::Digest as _;
    let words: Vec<&str> = cmdline.split_whitespace().collect();
    if !words.first()?.ends_with("containerd-shim-runc-v2") {
        return None;
    }
    let arg = |flag: &str| words.iter().position(|w| *w == flag).and_then(|i| words.get(i + 1)).copied();
    let key = format!("{}/{}/{}", arg("-address")?, arg("-namespace")?, arg("-id")?);
    Some(PathBuf::from("/run/containerd/s").join(hex::encode(sha2::Sha256::digest(key.as_bytes()))))
}

/// pid → (ppid, command line with NULs as spaces).
fn processes() -> HashMap<i32, (i32, String)> {
    let mut out = HashMap::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else { continue };
        // `pid (comm) state ppid …`; comm may hold spaces and parentheses.
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else { continue };
        let mut f = after.split_whitespace();
        let state = f.next().unwrap_or("");
        if state == "Z" || state == "X" {
            continue;
        }
        let ppid = f.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        out.insert(pid, (ppid, cmdline));
    }
    out
}

/// Mount points at or under `dir` (from this process's mount table).
fn mounts_under(dir: &Path) -> Vec<String> {
    let d = dir.display().to_string();
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut v: Vec<String> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mount)
        .filter(|m| m == &d || m.starts_with(&format!("{d}/")))
        .collect();
    v.dedup();
    v
}

fn unescape_mount(s: &str) -> String {
    s.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")
}

fn delete_link(name: &str) {
    if Path::new("/sys/class/net").join(name).exists() {
        let out = Command::new("ip").args(["link", "del", name]).output();
        if !matches!(&out, Ok(o) if o.status.success()) {
            eprintln!("node: ip link del {name}: {out:?}");
        }
    }
}

/// Cleans up after earlier test processes that died without dropping their node:
/// `/tmp/awn-<pid>-<n>` (and bridge `awn<pid>n<n>`) whose pid no longer runs.
fn sweep_stale() {
    for e in std::fs::read_dir("/tmp").into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some((pid, n)) = name.strip_prefix("awn-").and_then(|r| r.split_once('-')) else { continue };
        let (Ok(pid), Ok(n)) = (pid.parse::<u32>(), n.parse::<u32>()) else { continue };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        eprintln!("node: removing {} left by the dead test process {pid}", e.path().display());
        clean_dir(&e.path());
        delete_link(&format!("awn{pid}n{n}"));
        let _ = std::fs::remove_dir_all(e.path());
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `10.X.Y` such that 10.X.Y.0/24 overlaps no route and no address on the machine.
fn free_subnet() -> String {
    let out = Command::new("ip").args(["-4", "-o", "route", "show", "table", "all"]).output().expect("ip runs");
    let addrs = Command::new("ip").args(["-4", "-o", "addr"]).output().expect("ip runs");
    let text = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&addrs.stdout));
    let taken: Vec<(u32, u32)> = text.split_whitespace().filter_map(parse_cidr).collect();
    let seed = std::process::id() as u64 * 7919
        + std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() as u64;
    for i in 0..4096u64 {
        let k = (seed + i * 2654435761) % (55 * 256);
        let (x, y) = (200 + k / 256, k % 256);
        let net = (10u32 << 24) | ((x as u32) << 16) | ((y as u32) << 8);
        if taken.iter().all(|&(t, mask)| (t & mask & 0xffff_ff00) != (net & mask & 0xffff_ff00)) {
            return format!("10.{x}.{y}");
        }
    }
    panic!("no free 10.200-254.x.0/24 for the node's bridge");
}

/// `a.b.c.d/len` or `a.b.c.d` → (address, mask).
fn parse_cidr(s: &str) -> Option<(u32, u32)> {
    let (ip, len) = match s.split_once('/') {
        Some((ip, len)) => (ip, len.parse::<u32>().ok()?),
        None => (s, 32),
    };
    let ip: std::net::Ipv4Addr = ip.parse().ok()?;
    if len > 32 {
        return None;
    }
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    Some((u32::from(ip) & mask, mask))
}

fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
