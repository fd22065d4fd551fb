//! probe: finds out what this runner can do, without changing anything, and records it as
//! `Capabilities` — host platform, privilege, binfmt_misc handlers, the Docker engine, buildx,
//! and the remote nodes the user configured. Everything here reads the world; `plan` decides.
//!
//! `Capabilities` serialises to JSON so a runner's facts can be recorded (`archway plan
//! --capabilities-out`) and replayed in planner tests (the Bitbucket runtime, say).

pub mod binfmt;
pub mod buildx;
mod command;
pub mod engine;
pub mod host;
pub mod nodes;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::platform::Platform;

/// Why a probe could not find something out. Each names the command or endpoint involved.
///
/// A probe failing is a fact about the runner, not a failure of archway: [`probe`] records it
/// (as `None`, or as a [`Node`]'s `reached`) and the planner explains what it means.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    #[error("`{program}` is not installed (not found)")]
    NotInstalled { program: String },
    /// The child could not be started or waited for; `detail` is the system's reason.
    #[error("cannot run `{command}`: {detail}")]
    Spawn { command: String, detail: String },
    #[error("`{command}` did not finish within {secs} s")]
    Timeout { command: String, secs: u64 },
    /// The child exited unsuccessfully; `reason` is the last line of its stderr.
    #[error("`{command}` failed: {reason}")]
    Failed { command: String, reason: String },
    #[error("`{command}` printed no version: {output}")]
    NoVersion { command: String, output: String },
    /// An engine cannot be used; `reason` names it and says why ("connection refused at
    /// tcp://…", "no Docker socket at unix://…").
    #[error("{reason}")]
    Engine { endpoint: String, reason: String },
    #[error("no {file} in {} to reach {endpoint} over TLS", .dir.display())]
    TlsFile { endpoint: String, dir: PathBuf, file: &'static str },
    #[error("{endpoint} is an ssh endpoint; archway reaches those through the `docker` CLI only")]
    SshOverApi { endpoint: String },
    #[error("the engine at {endpoint} reports an unknown platform `{platform}`")]
    UnknownPlatform { endpoint: String, platform: String },
    #[error("`{endpoint}` is not a node endpoint; expected `tcp://HOST:PORT` or `ssh://USER@HOST`")]
    NotAnEndpoint { endpoint: String },
    /// `docker -H ssh://…` could not reach the node; `reason` is ssh's own complaint.
    #[error("cannot reach {endpoint}: {reason}")]
    Ssh { endpoint: String, reason: String },
}

/// Everything the planner needs to know about this runner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// The platform of the machine archway runs on (from `uname`, normalised).
    pub host: Platform,
    /// Whether archway itself runs inside a container (`/.dockerenv`, cgroup, or `container` env).
    pub in_container: bool,
    pub privilege: Privilege,
    /// Every binfmt_misc entry, parsed; empty when binfmt_misc is not mounted.
    pub binfmt: Vec<BinfmtEntry>,
    /// The Docker engine reached through `DOCKER_HOST` (or the default socket), if any.
    pub engine: Option<Engine>,
    /// The buildx CLI plugin, if installed.
    pub buildx: Option<BuildxInfo>,
    /// Remote builder nodes from `--node PLATFORM=ENDPOINT`.
    pub nodes: Vec<Node>,
    /// qemu-user-static interpreters present on this host (or in archway's image), from which
    /// archway can register handlers. Filled by the lead's code (`crate::builder::qemu`).
    #[serde(default)]
    pub qemu: Vec<QemuInterpreter>,
}

/// A qemu-user-static binary archway could register for a platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QemuInterpreter {
    pub platform: Platform,
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Privilege {
    /// CAP_SYS_ADMIN is in this process's effective capability set (`CapEff` in /proc/self/status).
    pub cap_sys_admin: bool,
    /// `/proc/sys/fs/binfmt_misc` is mounted (its `register` file exists).
    pub binfmt_mounted: bool,
    /// binfmt_misc could be mounted here (not mounted, but CAP_SYS_ADMIN is held).
    pub binfmt_mountable: bool,
    /// `/proc/sys/fs/binfmt_misc/register` is writable by this process (checked with access(2),
    /// never written).
    pub binfmt_register_writable: bool,
}

impl Privilege {
    /// archway itself can register binfmt handlers here.
    pub fn can_register_binfmt(&self) -> bool {
        self.cap_sys_admin && (self.binfmt_register_writable || (!self.binfmt_mounted && self.binfmt_mountable))
    }
}

/// One `/proc/sys/fs/binfmt_misc/<name>` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BinfmtEntry {
    pub name: String,
    pub enabled: bool,
    pub interpreter: String,
    /// Flags as the kernel prints them, e.g. `POCF`.
    pub flags: String,
    /// Byte offset of the magic (magic entries only).
    pub offset: u32,
    /// Hex-encoded magic and mask; empty for extension (`E`) entries.
    pub magic: String,
    pub mask: String,
    /// Platforms whose ELF binaries this entry matches (mask/magic against each known
    /// architecture's ELF header: class, endianness, e_machine).
    pub platforms: Vec<Platform>,
    /// Usable for builds inside containers: the F flag (interpreter opened at registration), or
    /// an interpreter path that exists on this host.
    pub usable_in_containers: bool,
}

impl BinfmtEntry {
    pub fn has_flag(&self, f: char) -> bool {
        self.flags.contains(f)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Engine {
    /// Where it was reached: `unix:///var/run/docker.sock`, `tcp://…`.
    pub endpoint: String,
    pub version: String,
    /// The engine's own platform (`os`/`arch` from `docker version`).
    pub platform: Platform,
    /// The containerd image store is on (`driver-type io.containerd.snapshotter.v1`).
    pub containerd_store: bool,
    /// Authorization plugins (`Plugins.Authorization` in `docker info`), e.g. Bitbucket's `pipelines`.
    pub authorization_plugins: Vec<String>,
    /// Whether the engine accepts privileged containers: `Some(false)` when creating one was
    /// refused (authorization plugin), `None` when it could not be tried (no local image).
    pub accepts_privileged: Option<bool>,
    /// Images present locally (repo:tag), used to run helpers without pulling. Only the ones
    /// archway may use: its own image, and images carrying qemu-user-static.
    pub local_images: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildxInfo {
    pub version: String,
    /// The builder buildx would use (`docker buildx inspect`).
    pub builder: String,
    pub driver: String,
    /// Platforms the builder reports it can build (native plus emulated).
    pub platforms: Vec<Platform>,
    /// `None` when buildx can run builds here; otherwise why not (e.g. an authorization
    /// plugin refuses BuildKit).
    pub refused: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// The platform the user assigned to this node.
    pub platform: Platform,
    /// `tcp://HOST:PORT` or `ssh://USER@HOST`.
    pub endpoint: String,
    /// The node's engine platform when reached, or why it could not be reached.
    pub reached: Result<Platform, String>,
    /// Whether the node's engine uses the containerd image store; `None` when that is not
    /// known (unreachable, or capabilities recorded before archway asked).
    #[serde(default)]
    pub containerd_store: Option<bool>,
}

/// What to probe besides this machine and the engine `DOCKER_HOST` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeOptions {
    /// The `docker` executable, for nodes reached over ssh.
    pub docker: PathBuf,
    /// How buildx runs: the plugin directly, or through `docker`.
    pub buildx: buildx::BuildxProgram,
    /// The remote nodes the user configured.
    pub nodes: Vec<NodeSpec>,
    /// The local engine (from `DOCKER_HOST` and friends, read by `inputs`).
    pub engine: engine::EngineEndpoint,
    /// The `container` variable, a hint that archway runs in a container.
    pub container_var: Option<String>,
    /// buildx's default builder (the `docker` driver on the current engine) is the one in use:
    /// no `BUILDX_BUILDER`, no other builder selected with `docker buildx use`. Then
    /// `docker buildx inspect` tells nothing the engine probe does not, and is not run.
    pub default_builder: bool,
    /// The platforms to be built. What a privileged helper container needs from the engine
    /// (its images, whether it accepts privileged containers) is only asked when one of them
    /// may need QEMU registered: it has no handler and is not this machine's own. Empty: always.
    pub platforms: Vec<Platform>,
}

/// One `--node PLATFORM=ENDPOINT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpec {
    pub platform: Platform,
    /// `tcp://HOST:PORT`, `ssh://USER@HOST` or `unix:///PATH`.
    pub endpoint: String,
    /// A directory with `key.pem`, `cert.pem` and `ca.pem` (what `DOCKER_CERT_PATH` names) to
    /// reach a `tcp://` endpoint over verified TLS; plain TCP when `None`.
    pub cert_dir: Option<PathBuf>,
}

/// Probes everything at once: the local facts, the engine, buildx and every node are
/// independent, so the slow ones (network, child processes) run concurrently.
pub async fn probe(opts: &ProbeOptions) -> Capabilities {
    let in_container = host::in_container(opts.container_var.as_deref());
    // The local reads block, but for microseconds (small /proc files); not worth a thread.
    let (host, privilege) = (host::platform(), host::privilege());
    let binfmt = binfmt::read_all(std::path::Path::new(binfmt::BINFMT_DIR));
    let local_engine = opts.engine.host.starts_with("unix://");
    let helpers = opts.platforms.is_empty()
        || opts.platforms.iter().any(|p| binfmt::handler_for(&binfmt, p).is_none() && !(local_engine && *p == host));
    let timed = |part: &'static str, t: std::time::Instant| tracing::debug!(target: "archway::timings", phase = "probe", part, secs = t.elapsed().as_secs_f64(), "timing");
    let engine = async {
        let t = std::time::Instant::now();
        let e = engine::probe_engine_with(&opts.engine, in_container, helpers)
            .await
            .inspect_err(|why| tracing::info!("no Docker engine: {why}"))
            .ok();
        timed("engine", t);
        e
    };
    let buildx = async {
        let t = std::time::Instant::now();
        let b = buildx::probe_buildx(&opts.buildx, opts.default_builder)
            .await
            .inspect_err(|why| tracing::info!("no buildx: {why}"))
            .ok();
        timed("buildx", t);
        b
    };
    let nodes = nodes::probe_nodes(&opts.nodes, &opts.docker);
    let (engine, mut buildx, nodes) = tokio::join!(engine, buildx, nodes);
    if let (Some(b), Some(e)) = (buildx.as_mut(), engine.as_ref())
        && b.refused.is_none()
    {
        b.refused = buildx::authorization_refusal(&e.authorization_plugins);
    }
    // `qemu` depends on the platforms requested; the caller fills it (`crate::builder::qemu`).
    Capabilities { host, in_container, privilege, binfmt, engine, buildx, nodes, qemu: Vec::new() }
}

/// This machine's own facts only (platform, container, privileges, binfmt handlers): what a
/// plan needs when every platform is assembled, which uses no engine. No child process, no
/// network; `engine`, `buildx` and `nodes` are left empty.
pub fn probe_host(opts: &ProbeOptions) -> Capabilities {
    let binfmt = binfmt::read_all(std::path::Path::new(binfmt::BINFMT_DIR));
    Capabilities {
        host: host::platform(),
        in_container: host::in_container(opts.container_var.as_deref()),
        privilege: host::privilege(),
        binfmt,
        engine: None,
        buildx: None,
        nodes: Vec::new(),
        qemu: Vec::new(),
    }
}

impl Capabilities {
    /// The enabled binfmt_misc entry that runs `p`'s binaries, if any (see [`binfmt::handler_for`]).
    pub fn handler_for(&self, p: &Platform) -> Option<&BinfmtEntry> {
        binfmt::handler_for(&self.binfmt, p)
    }

    /// Whether buildx builds several platforms in one invocation here: with any driver but
    /// `docker`, and with the `docker` driver over the containerd image store (over the classic
    /// store buildx refuses a multi-platform build).
    pub fn buildx_multi_platform(&self) -> bool {
        match &self.buildx {
            None => false,
            Some(b) if b.driver == "docker" => self.engine.as_ref().is_some_and(|e| e.containerd_store),
            Some(_) => true,
        }
    }

    /// Whether buildx builds on the local engine through its `docker` driver over the classic
    /// image store, which refuses OCI output, attestations and several platforms at once: each
    /// platform is then built alone and exported through the engine (see
    /// `builder::buildx::Export`).
    pub fn local_classic_store(&self) -> bool {
        matches!(&self.buildx, Some(b) if b.driver == "docker")
            && self.engine.as_ref().is_some_and(|e| !e.containerd_store)
    }

    /// Whether the node at `endpoint` keeps its images in the classic image store (buildx
    /// builds there with the node's own `docker` driver). Unknown counts as not.
    pub fn node_classic_store(&self, endpoint: &str) -> bool {
        self.nodes.iter().any(|n| n.endpoint == endpoint && n.containerd_store == Some(false))
    }
}
