//! Bitbucket Pipelines' default runtime, simulated: a Docker authorization plugin named
//! `pipelines`, served from a thread of the test process, and a second dockerd (see
//! [`super::node`]) that asks it about every request.
//!
//! ```ignore
//! let bb = support::authz::BitbucketEngine::start();   // plugin + node (classic store, unix socket)
//! bb.docker(&["run", "--rm", "--privileged", …]);      // the CLI against it
//! bb.docker_command(authz::docker_cli_20(), &["build", "."]).env("DOCKER_BUILDKIT", "1");
//! bb.docker_host();                                     // "unix:///tmp/awn-…/docker.sock", for archway
//! bb.socket_volume();                                   // "-v" value for a pipe's container
//! bb.plugin.seen(); bb.plugin.denied(); bb.plugin.log(); // what dockerd asked about
//! ```
//!
//! The engine pulls from the lab registry (loopback, insecure by default) and pushes there;
//! it holds the lab's busybox (also tagged `moby/buildkit:buildx-stable-1`, see
//! [`BitbucketEngine::start_with`]), nothing else.
//!
//! # The protocol
//!
//! Docker's plugin protocol (moby's `pkg/plugins`, `pkg/authorization`; the Engine docs'
//! "Access authorization plugin" page): dockerd finds `/run/docker/plugins/NAME.sock`, POSTs
//! `/Plugin.Activate` and expects `{"Implements":["authz"]}`, then, for every API request,
//! POSTs `/AuthZPlugin.AuthZReq` with a JSON object: `RequestMethod`, `RequestUri` (the full
//! URI, `/v1.45/containers/create?…`), `RequestHeaders` (a string map), `RequestBody`
//! (base64; only for `application/json`/`text/*` bodies under 1 MiB, so never a build context)
//! and `User`/`UserAuthNMethod` (TLS only). The answer is `{"Allow":bool,"Msg":"…"}`; a
//! refusal reaches the client as `403 authorization denied by plugin pipelines: <Msg>`.
//! After the daemon answered, it POSTs `/AuthZPlugin.AuthZRes` (the same object plus the
//! response); we always allow those. For hijacked connections (`/grpc`, `/session`, attach)
//! only the initial request is seen.
//!
//! # What the plugin refuses, and why
//!
//! Atlassian's documentation ("Run Docker commands in Bitbucket Pipelines", the default
//! runtime, i.e. not runtime v3): with `DOCKER_BUILDKIT=1`, "the following Docker BuildKit
//! features have been disabled …: multi-architecture builds; the `--platform` option (such as
//! `docker run --platform linux/arm/v7`); the Docker BuildKit Buildx plugin"; among the
//! commands "restricted for security reasons": `docker run --privileged`. The refusal texts
//! users report are `--privileged=true is not allowed` and, for `--mount`, `Command not
//! supported`. Runtime v3 lifts these (privileged containers, buildx).
//!
//! What each command really sends, read from this plugin's log (the ignored test
//! `requests_each_command_makes` in `tests/bitbucket_runtime.rs` prints it; Docker CLI
//! 20.10.24 — Bitbucket's mounted `/usr/bin/docker` —, 26.1.5 and 28.2.2, buildx 0.13.1,
//! engine 26.1.5, API 1.45; `_ping` and `GET /version` left out):
//!
//! | command | requests |
//! | --- | --- |
//! | `docker run --privileged IMG` | `POST /containers/create`, body `HostConfig.Privileged: true` |
//! | `docker run --platform P IMG` | `POST /containers/create?platform=P` (then `POST /images/create?fromImage=…&platform=P` when P is missing locally) |
//! | `docker pull --platform P IMG` | `POST /images/create?fromImage=…&tag=…&platform=P` |
//! | `docker buildx build [--platform P] .` (driver `docker`) | `POST /grpc` (`Upgrade: h2c`, `User-Agent: Go-http-client/1.1`), `POST /session` (same headers); the platforms travel inside gRPC, invisible to a plugin |
//! | the same with `/grpc` refused | buildx falls back to its `docker-container` driver: `GET /containers/buildx_buildkit_default/json`, `POST /images/create?fromImage=moby/buildkit&tag=buildx-stable-1`, `POST /containers/create` with `Privileged: true` |
//! | CLI ≥ 23 with buildx: `DOCKER_BUILDKIT=1 docker build .` | exactly `docker buildx build .` |
//! | CLI 20.10: `DOCKER_BUILDKIT=1 docker build .` | `POST /session` (`Upgrade: h2c`, `User-Agent: Docker-Client/20.10.24…`), `POST /build?…&remote=client-session&session=…&version=2` (`&platform=P` with `--platform`) |
//! | `DOCKER_BUILDKIT=0 docker build .` (any CLI) | `POST /build?…&version=1` (classic builder) |
//!
//! So buildx and the old CLI's BuildKit both use `/session`; only buildx dials `/grpc` (and
//! says `Go-http-client`, not `Docker-Client`). The plugin refuses:
//!
//! | request | refused when | Msg | documented as |
//! | --- | --- | --- | --- |
//! | `POST /containers/create` | body `HostConfig.Privileged: true` | `--privileged=true is not allowed` | `docker run --privileged` restricted; also what buildx's fallback hits |
//! | `POST /containers/{id}/exec` | body `Privileged: true` | `--privileged=true is not allowed` | the same, `docker exec --privileged` |
//! | `POST /containers/create` | body `HostConfig.Mounts` holds a `bind` mount | `Command not supported` | `docker run --mount` restricted |
//! | `POST /containers/create` | query `platform` set | `--platform is not allowed` | "the --platform option (such as docker run --platform linux/arm/v7)" |
//! | `POST /images/create` | query `platform` set | `--platform is not allowed` | the same, `docker pull --platform` |
//! | `POST /build` | query `platform` set; a list (`a,b`) | `--platform is not allowed`; `multi-architecture builds are not allowed` | "the --platform option", "multi-architecture builds" |
//! | `/grpc` | always | `the buildx plugin is not allowed` | "the Docker BuildKit Buildx plugin" |
//!
//! Everything else is allowed, in particular what Bitbucket allows and archway's fallbacks
//! use there: CLI 20.10's `DOCKER_BUILDKIT=1 docker build` (`/session`, `/build?version=2`
//! without `platform`), the classic builder (`/build?version=1`), containers created without
//! `--privileged`/`--platform`, `GET /containers/{id}/export`, `GET /images/get`, pull, push,
//! `docker info`. (A buildx build is refused whatever its flags, because `/grpc` is; with the
//! fallback it ends in the privileged refusal, the very error Bitbucket users report: "booting
//! buildkit … authorization denied by plugin pipelines: --privileged=true is not allowed".)
//!
//! An assumption: a `platform` query parameter that is present but empty counts as no
//! `--platform`. The Docker CLI never sends one; bollard (archway) sends `platform=` on every
//! container create. Were Bitbucket's plugin stricter, archway's containers there would be
//! refused; nothing public says which.
//!
//! Not simulated: Bitbucket also limits `-v` bind mounts to `$BITBUCKET_CLONE_DIR` (`-v only
//! supports $BITBUCKET_CLONE_DIR and its subdirectories`), refuses `RUN --mount=type=ssh`
//! and other frontend options, swarm, and more; archway needs none of those.
//!
//! # Sharing the machine
//!
//! The socket path is machine-wide (dockerd only looks in `/run/docker/plugins/`), so one
//! plugin runs at a time: [`Plugin::start`] takes a process-wide lock and an exclusive
//! `flock` on [`LOCK_PATH`] (other test processes), removes a socket a dead process left,
//! and its `Drop` stops the server and removes the socket (so one test holds one
//! [`BitbucketEngine`] at a time: starting a second before dropping the first blocks forever).
//! The main lab engine has no authorization plugin and never reads this socket.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt as _;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use base64::Engine as _;

use super::node::{Node, NodeOptions};

/// The plugin's name, as dockerd's `--authorization-plugin` takes it.
pub const NAME: &str = "pipelines";
/// Where dockerd looks for it.
pub const SOCKET: &str = "/run/docker/plugins/pipelines.sock";
/// Serialises every user of [`SOCKET`] on this machine.
pub const LOCK_PATH: &str = "/tmp/archway-authz-pipelines.lock";

/// The image buildx's `docker-container` driver boots BuildKit from.
pub const BUILDKIT_IMAGE: &str = "moby/buildkit:buildx-stable-1";

/// Bitbucket's own Docker CLI, 20.10 (what `scripts/lab-up` keeps from Debian 12's docker.io,
/// `ARCHWAY_LAB_DOCKER_CLI_20` in the lab's env file); panics with the fix when it is missing.
pub fn docker_cli_20() -> PathBuf {
    let path = std::env::var("ARCHWAY_LAB_ENV_FILE").unwrap_or_else(|_| "/var/lib/archway-lab/env".into());
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let cli = text
        .lines()
        .find_map(|l| l.strip_prefix("ARCHWAY_LAB_DOCKER_CLI_20="))
        .map(|v| PathBuf::from(v.trim().trim_matches('"')))
        .filter(|p| p.is_file());
    cli.unwrap_or_else(|| {
        panic!("{path} names no docker CLI 20.10 (ARCHWAY_LAB_DOCKER_CLI_20); run `scripts/lab-up` (it fetches Debian 12's)")
    })
}

/// What the plugin decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Refuse what Bitbucket's default runtime refuses (the table in the module doc).
    Pipelines,
    /// Allow everything, only record (to find out what a command sends).
    RecordOnly,
}

/// The plugin's answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Deny(String),
}

impl Verdict {
    pub fn allowed(&self) -> bool {
        matches!(self, Verdict::Allow)
    }
}

/// One request dockerd asked the plugin about.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// The full URI, with the API version: `/v1.45/build?…`.
    pub uri: String,
    pub headers: BTreeMap<String, String>,
    /// The body, when dockerd sent one (JSON and text bodies only).
    pub body: Option<Vec<u8>>,
    pub verdict: Verdict,
}

impl Seen {
    /// The path without the `/vX.Y` prefix and without the query: `/containers/create`.
    pub fn path(&self) -> &str {
        split_uri(&self.uri).0
    }

    /// A query parameter's value (percent-decoded).
    pub fn query(&self, key: &str) -> Option<String> {
        query_value(split_uri(&self.uri).1, key)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Option<serde_json::Value> {
        self.body.as_deref().and_then(|b| serde_json::from_slice(b).ok())
    }

    /// One line: verdict, method, URI, User-Agent, Upgrade, and the parts of a JSON body that
    /// matter here (privileged, mounts, platform, image).
    pub fn line(&self) -> String {
        let verdict = match &self.verdict {
            Verdict::Allow => "allow".to_string(),
            Verdict::Deny(m) => format!("DENY ({m})"),
        };
        let mut s = format!("{verdict:<12} {} {}", self.method, self.uri);
        if let Some(ua) = self.header("User-Agent") {
            s.push_str(&format!("  UA={ua}"));
        }
        if let Some(up) = self.header("Upgrade") {
            s.push_str(&format!("  Upgrade={up}"));
        }
        if let Some(j) = self.json() {
            let mut parts = Vec::new();
            for key in ["Image", "Platform"] {
                if let Some(v) = j.get(key).filter(|v| !v.is_null()) {
                    parts.push(format!("{key}={v}"));
                }
            }
            if let Some(p) = j.get("Privileged").filter(|v| !v.is_null()) {
                parts.push(format!("Privileged={p}"));
            }
            if let Some(h) = j.get("HostConfig") {
                for key in ["Privileged", "Mounts", "Binds"] {
                    if let Some(v) = h.get(key).filter(|v| !v.is_null() && **v != serde_json::json!(false)) {
                        parts.push(format!("HostConfig.{key}={v}"));
                    }
                }
            }
            if !parts.is_empty() {
                s.push_str(&format!("  body: {}", parts.join(" ")));
            }
        } else if let Some(b) = &self.body {
            s.push_str(&format!("  body: {} bytes", b.len()));
        }
        s
    }
}

/// `/v1.45/containers/create?name=x` → (`/containers/create`, `name=x`).
fn split_uri(uri: &str) -> (&str, &str) {
    let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
    let unversioned = path
        .strip_prefix("/v")
        .and_then(|rest| rest.find('/').map(|i| (&rest[..i], &rest[i..])))
        .filter(|(v, _)| !v.is_empty() && v.chars().all(|c| c.is_ascii_digit() || c == '.'))
        .map(|(_, p)| p);
    (unversioned.unwrap_or(path), query)
}

fn query_value(query: &str, key: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == key).map(|(_, v)| v.into_owned())
}

/// Bitbucket's default runtime's answer to one request (the table in the module doc). Pure.
pub fn decide(method: &str, uri: &str, body: Option<&serde_json::Value>) -> Verdict {
    let (path, query) = split_uri(uri);
    let deny = |m: &str| Verdict::Deny(m.to_string());
    let platform = query_value(query, "platform").filter(|p| !p.trim().is_empty());
    let truthy = |v: Option<&serde_json::Value>| v.and_then(|v| v.as_bool()).unwrap_or(false);
    if path == "/grpc" {
        return deny("the buildx plugin is not allowed");
    }
    if method != "POST" {
        return Verdict::Allow;
    }
    match path {
        "/containers/create" => {
            let host = body.and_then(|b| b.get("HostConfig"));
            if truthy(host.and_then(|h| h.get("Privileged"))) {
                return deny("--privileged=true is not allowed");
            }
            let binds = host
                .and_then(|h| h.get("Mounts"))
                .and_then(|m| m.as_array())
                .is_some_and(|mounts| mounts.iter().any(|m| m.get("Type").and_then(|t| t.as_str()) == Some("bind")));
            if binds {
                return deny("Command not supported");
            }
            if platform.is_some() {
                return deny("--platform is not allowed");
            }
        }
        "/images/create" if platform.is_some() => return deny("--platform is not allowed"),
        "/build" => {
            if let Some(p) = platform {
                return deny(if p.contains(',') {
                    "multi-architecture builds are not allowed"
                } else {
                    "--platform is not allowed"
                });
            }
        }
        p if p.starts_with("/containers/")
            && p.ends_with("/exec")
            && truthy(body.and_then(|b| b.get("Privileged"))) =>
        {
            return deny("--privileged=true is not allowed");
        }
        _ => {}
    }
    Verdict::Allow
}

/// The plugin, serving [`SOCKET`] until dropped.
pub struct Plugin {
    pub socket: PathBuf,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    _file_lock: File,
    _process_lock: MutexGuard<'static, ()>,
}

impl Plugin {
    /// Serves [`SOCKET`] with `policy`; blocks while another test (any process) serves it.
    pub fn start(policy: Policy) -> Plugin {
        // Threads of this process first (a poisoned lock only means an earlier test failed),
        // then other processes.
        static IN_PROCESS: Mutex<()> = Mutex::new(());
        let process_lock = IN_PROCESS.lock().unwrap_or_else(|e| e.into_inner());
        let file_lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o666)
            .open(LOCK_PATH)
            .unwrap_or_else(|e| panic!("cannot open {LOCK_PATH}: {e}"));
        file_lock.lock().unwrap_or_else(|e| panic!("cannot lock {LOCK_PATH}: {e}"));

        let socket = PathBuf::from(SOCKET);
        std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
        // We hold the lock, so a socket here was left by a process that died.
        match std::fs::remove_file(&socket) {
            Ok(()) => eprintln!("authz: removed {SOCKET}, left by an earlier test process"),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => panic!("cannot remove {SOCKET}: {e}"),
        }
        let listener = UnixListener::bind(&socket).unwrap_or_else(|e| panic!("cannot listen on {SOCKET}: {e}"));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (seen, stop) = (seen.clone(), stop.clone());
            std::thread::Builder::new()
                .name("authz-pipelines".into())
                .spawn(move || {
                    for conn in listener.incoming() {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        let Ok(conn) = conn else { continue };
                        let seen = seen.clone();
                        // dockerd keeps connections open and asks concurrently; one thread each.
                        std::thread::spawn(move || {
                            if let Err(e) = serve(conn, &seen, policy)
                                && e.kind() != io::ErrorKind::UnexpectedEof
                            {
                                eprintln!("authz: connection: {e}");
                            }
                        });
                    }
                })
                .unwrap()
        };
        Plugin { socket, seen, stop, thread: Some(thread), _file_lock: file_lock, _process_lock: process_lock }
    }

    /// Every request seen so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Forgets what was seen so far (to look at one command's requests).
    pub fn clear(&self) {
        self.seen.lock().unwrap().clear();
    }

    /// What was seen, one request a line.
    pub fn log(&self) -> String {
        self.seen().iter().map(Seen::line).collect::<Vec<_>>().join("\n")
    }

    /// The requests that were refused.
    pub fn denied(&self) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| !s.verdict.allowed()).collect()
    }
}

impl Drop for Plugin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = UnixStream::connect(&self.socket);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// One connection: HTTP/1.1 requests with keep-alive, `Content-Length` or chunked bodies.
fn serve(conn: UnixStream, seen: &Mutex<Vec<Seen>>, policy: Policy) -> io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut writer = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut words = line.split_whitespace();
        let (_method, path) = (words.next().unwrap_or(""), words.next().unwrap_or("").to_string());
        let mut length = 0usize;
        let mut chunked = false;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h)? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                let (k, v) = (k.trim(), v.trim());
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.parse().unwrap_or(0);
                } else if k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked") {
                    chunked = true;
                }
            }
        }
        let body = if chunked { read_chunked(&mut reader)? } else { read_exact(&mut reader, length)? };
        let (status, answer) = answer(&path, &body, seen, policy);
        let answer = answer.to_string();
        write!(
            writer,
            "HTTP/1.1 {status}\r\nContent-Type: application/vnd.docker.plugins.v1+json\r\nContent-Length: {}\r\n\r\n{answer}",
            answer.len()
        )?;
        writer.flush()?;
    }
}

fn read_exact(r: &mut impl Read, n: usize) -> io::Result<Vec<u8>> {
    let mut body = vec![0; n];
    r.read_exact(&mut body)?;
    Ok(body)
}

fn read_chunked(r: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        r.read_line(&mut size)?;
        let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        body.extend(read_exact(r, size)?);
        let mut crlf = String::new();
        r.read_line(&mut crlf)?;
        if size == 0 {
            return Ok(body);
        }
    }
}

/// The plugin's routes.
fn answer(path: &str, body: &[u8], seen: &Mutex<Vec<Seen>>, policy: Policy) -> (&'static str, serde_json::Value) {
    use serde_json::json;
    match path {
        "/Plugin.Activate" => ("200 OK", json!({"Implements": ["authz"]})),
        "/AuthZPlugin.AuthZReq" => {
            let Ok(req) = serde_json::from_slice::<serde_json::Value>(body) else {
                return ("400 Bad Request", json!({"Err": "the request is not JSON"}));
            };
            let s = |k: &str| req.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
            let (method, uri) = (s("RequestMethod"), s("RequestUri"));
            let headers: BTreeMap<String, String> = req
                .get("RequestHeaders")
                .and_then(|h| h.as_object())
                .map(|h| h.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string())).collect())
                .unwrap_or_default();
            let body = req
                .get("RequestBody")
                .and_then(|b| b.as_str())
                .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok());
            let json_body = body.as_deref().and_then(|b| serde_json::from_slice(b).ok());
            let verdict = match policy {
                Policy::Pipelines => decide(&method, &uri, json_body.as_ref()),
                Policy::RecordOnly => Verdict::Allow,
            };
            let reply = match &verdict {
                Verdict::Allow => json!({"Allow": true}),
                Verdict::Deny(msg) => json!({"Allow": false, "Msg": msg}),
            };
            seen.lock().unwrap().push(Seen { method, uri, headers, body, verdict });
            ("200 OK", reply)
        }
        "/AuthZPlugin.AuthZRes" => ("200 OK", json!({"Allow": true})),
        _ => ("404 Not Found", json!({"Err": format!("no such plugin method {path}")})),
    }
}

/// Bitbucket's default runtime: the `pipelines` plugin and a dockerd that asks it (classic
/// image store, as Bitbucket's engine; listening on a unix socket, for mounting into a pipe's
/// container, and on TLS TCP). Dropped in order: the engine, then the plugin.
pub struct BitbucketEngine {
    pub node: Node,
    pub plugin: Plugin,
    /// `DOCKER_CONFIG` of every CLI run through [`BitbucketEngine::docker_command`], so buildx
    /// leaves no state in the user's `~/.docker`.
    pub docker_config: tempfile::TempDir,
}

impl BitbucketEngine {
    /// The plugin with Bitbucket's rules and a node using it.
    pub fn start() -> BitbucketEngine {
        BitbucketEngine::start_with(Policy::Pipelines)
    }

    /// The plugin with `policy` and a node using it, holding the lab's busybox (pulled) and
    /// the stand-in BuildKit image; what the plugin saw of that is forgotten.
    pub fn start_with(policy: Policy) -> BitbucketEngine {
        let plugin = Plugin::start(policy);
        let node = Node::start_with(NodeOptions {
            authorization_plugin: Some(NAME.into()),
            unix_socket: true,
            classic_store: true,
        });
        let bb = BitbucketEngine { node, plugin, docker_config: tempfile::tempdir().unwrap() };
        bb.stand_in_buildkit_image();
        bb.plugin.clear();
        bb
    }

    /// With `/grpc` refused, buildx falls back to its `docker-container` driver: it pulls
    /// `moby/buildkit:buildx-stable-1`, then creates a privileged container from it, which
    /// Bitbucket refuses (`--privileged=true is not allowed`, what Bitbucket users report).
    /// The lab has no Docker Hub, so the pull fails first; buildx then uses a local image of
    /// that name if there is one. The lab's busybox under that name lets buildx reach the
    /// refusal, as on Bitbucket (the container is never created, so its content is moot).
    fn stand_in_buildkit_image(&self) {
        let base = &super::lab::lab().base;
        self.pull(base);
        let out = self.docker(&["tag", base, BUILDKIT_IMAGE]);
        assert!(out.status.success(), "docker tag on the Bitbucket engine: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// `unix:///tmp/awn-…/docker.sock`
    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.node.socket().display())
    }

    /// The engine's unix socket, to mount into a container as `/var/run/docker.sock`.
    pub fn socket(&self) -> PathBuf {
        self.node.socket()
    }

    /// `-v` for a container (a pipe) that is to use this engine as its Docker:
    /// `SOCKET:/var/run/docker.sock`. The container itself runs on the main lab engine, as
    /// Bitbucket's agent, not the step's plugin-guarded engine, starts a pipe's container.
    pub fn socket_volume(&self) -> String {
        format!("{}:/var/run/docker.sock", self.socket().display())
    }

    /// `docker ARGS` against the engine's unix socket, with the CLI on `PATH`.
    pub fn docker(&self, args: &[&str]) -> Output {
        self.docker_command("docker", args).output().expect("the docker CLI runs")
    }

    /// `cli ARGS` (a docker CLI binary) set up for the engine: `DOCKER_HOST` its unix socket,
    /// no TLS, no context, no builder chosen, `DOCKER_BUILDKIT` unset, a `DOCKER_CONFIG` of its own.
    pub fn docker_command(&self, cli: impl AsRef<Path>, args: &[&str]) -> Command {
        let mut c = Command::new(cli.as_ref());
        c.args(args)
            .env("DOCKER_HOST", self.docker_host())
            .env("DOCKER_CONFIG", self.docker_config.path())
            .env_remove("DOCKER_TLS_VERIFY")
            .env_remove("DOCKER_CERT_PATH")
            .env_remove("DOCKER_CONTEXT")
            .env_remove("BUILDX_BUILDER")
            .env_remove("DOCKER_BUILDKIT")
            .stdin(Stdio::null());
        c
    }

    /// Pulls an image (from the lab registry, on loopback) into the engine, without
    /// `--platform`: the engine's own platform, as Bitbucket allows.
    pub fn pull(&self, image: &str) {
        let out = self.docker(&["pull", "-q", image]);
        assert!(
            out.status.success(),
            "docker pull {image} on the Bitbucket engine: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.plugin.log()
        );
    }
}
