//! nodes: reaches each remote builder node the user configured (`--node PLATFORM=ENDPOINT`)
//! and asks its engine for its native platform and its image store: `tcp://` (TLS with a
//! certificate directory) and `unix://` through the Engine API, `ssh://` through
//! `docker -H ssh://… version` and `… info`, since only the Docker CLI speaks ssh.
//!
//! A node that cannot be reached is a fact, not an error: its `reached` holds the reason.

use std::path::Path;
use std::time::Duration;

use super::{Node, NodeSpec, ProbeError, command, engine};
use crate::platform::Platform;

/// How long `docker -H ssh://… version` may take (ssh handshakes are slow).
pub const SSH_TIMEOUT: Duration = Duration::from_secs(10);

/// Probes every node concurrently, in the order given.
pub async fn probe_nodes(specs: &[NodeSpec], docker: &Path) -> Vec<Node> {
    futures_util::future::join_all(specs.iter().map(|s| probe_node(s, docker))).await
}

/// Probes one node; `docker` runs the ssh ones.
pub async fn probe_node(spec: &NodeSpec, docker: &Path) -> Node {
    let endpoint = spec.endpoint.trim();
    let reached = if endpoint.starts_with("ssh://") {
        over_ssh(endpoint, docker).await
    } else if endpoint.starts_with("tcp://") || endpoint.starts_with("unix://") {
        over_api(endpoint, spec.cert_dir.as_deref()).await
    } else {
        Err(ProbeError::NotAnEndpoint { endpoint: endpoint.to_string() })
    };
    // Recorded as text: a node's reach is a fact of the runner, saved with `--save-capabilities`.
    let (reached, containerd_store) = match reached {
        Ok((platform, store)) => (Ok(platform), store),
        Err(e) => (Err(e.to_string()), None),
    };
    Node { platform: spec.platform.clone(), endpoint: spec.endpoint.clone(), reached, containerd_store }
}

/// The node's platform, and whether it uses the containerd image store (`None`: unknown).
type Reached = (Platform, Option<bool>);

async fn over_api(endpoint: &str, cert_dir: Option<&Path>) -> Result<Reached, ProbeError> {
    let docker = engine::connect(endpoint, cert_dir).await?;
    let (v, info) = tokio::join!(engine::call(endpoint, docker.version()), engine::call(endpoint, docker.info()));
    let v = v?;
    let platform = engine::platform_of(v.os.as_deref(), v.arch.as_deref())
        .ok_or_else(|| engine::unknown_platform(endpoint, v.os.as_deref(), v.arch.as_deref()))?;
    let store = info.inspect_err(|e| tracing::info!("no `docker info` from {endpoint}: {e}")).ok();
    Ok((platform, store.map(|i| engine::containerd_store(&i))))
}

async fn over_ssh(endpoint: &str, docker: &Path) -> Result<Reached, ProbeError> {
    let args = ["-H", endpoint, "version", "--format", "{{.Server.Os}}/{{.Server.Arch}}"];
    let info_args = ["-H", endpoint, "info", "--format", "{{json .Driver}} {{json .DriverStatus}}"];
    let (out, info) =
        tokio::join!(command::run(docker, &args, SSH_TIMEOUT), command::run(docker, &info_args, SSH_TIMEOUT));
    let out = out?;
    if !out.success {
        return Err(ProbeError::Ssh { endpoint: endpoint.to_string(), reason: ssh_reason(&out.reason()) });
    }
    let store = info.ok().filter(|i| i.success).and_then(|i| parse_store(&i.stdout));
    Ok((parse_os_arch(endpoint, &out.stdout)?, store))
}

/// Whether the engine uses the containerd image store, from what it answered to
/// `docker info --format '{{json .Driver}} {{json .DriverStatus}}'`: `"overlay2" [["Backing
/// Filesystem","extfs"],…]`.
pub fn parse_store(text: &str) -> Option<bool> {
    let (driver, status) = text.trim().split_once(' ')?;
    let driver: String = serde_json::from_str(driver).ok()?;
    let status: Option<Vec<Vec<String>>> = serde_json::from_str(status).ok()?;
    Some(engine::store_is_containerd(Some(&driver), &status.unwrap_or_default()))
}

/// The docker CLI wraps ssh's own complaint in a long sentence ending `stderr=…`; that part is
/// what a user needs.
pub fn ssh_reason(line: &str) -> String {
    match line.rsplit_once("stderr=") {
        Some((_, ssh)) if !ssh.trim().is_empty() => ssh.trim().to_string(),
        _ => line.to_string(),
    }
}

/// Parses what the engine at `endpoint` answered to
/// `docker version --format '{{.Server.Os}}/{{.Server.Arch}}'`: `linux/arm64`.
pub fn parse_os_arch(endpoint: &str, text: &str) -> Result<Platform, ProbeError> {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
    line.parse().map_err(|_| ProbeError::UnknownPlatform { endpoint: endpoint.to_string(), platform: line.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_arch_parses() {
        let ssh = "ssh://ci@arm-box";
        assert_eq!(parse_os_arch(ssh, "linux/arm64\n").unwrap().to_string(), "linux/arm64");
        assert_eq!(parse_os_arch(ssh, "\nlinux/amd64\n").unwrap().to_string(), "linux/amd64");
        assert_eq!(
            parse_os_arch(ssh, "linux/sparc64\n").unwrap_err().to_string(),
            "the engine at ssh://ci@arm-box reports an unknown platform `linux/sparc64`"
        );
        assert!(parse_os_arch(ssh, "").is_err());
    }

    #[test]
    fn image_store_over_ssh() {
        // `docker info --format '{{json .Driver}} {{json .DriverStatus}}'` against the lab's
        // engine (containerd store) and a node with the classic store (Docker 26.1).
        assert_eq!(parse_store("\"overlayfs\" [[\"driver-type\",\"io.containerd.snapshotter.v1\"]]\n"), Some(true));
        let classic = "\"overlay2\" [[\"Backing Filesystem\",\"extfs\"],[\"Supports d_type\",\"true\"]]\n";
        assert_eq!(parse_store(classic), Some(false));
        assert_eq!(parse_store(""), None);
    }

    #[test]
    fn ssh_reasons_are_ssh_s_own() {
        // `docker -H ssh://nobody@127.0.0.1:44549 version` on the lab machine (Docker CLI 28.2).
        let cli = "error during connect: Get \"http://docker.example.com/v1.50/version\": command [ssh -o \
                   ConnectTimeout=30 -T -l nobody -p 44549 -- 127.0.0.1 docker system dial-stdio] has exited with \
                   exit status 255, make sure the URL is valid, and Docker 18.09 or later is installed on the remote \
                   host: stderr=ssh: connect to host 127.0.0.1 port 44549: Connection refused";
        assert_eq!(ssh_reason(cli), "ssh: connect to host 127.0.0.1 port 44549: Connection refused");
        assert_eq!(ssh_reason("permission denied"), "permission denied");
        assert_eq!(ssh_reason("… stderr="), "… stderr=");
    }

    #[tokio::test]
    async fn bad_endpoints_are_reasons() {
        let spec =
            NodeSpec { platform: "linux/arm64".parse().unwrap(), endpoint: "arm-box:2376".into(), cert_dir: None };
        let n = probe_node(&spec, Path::new("docker")).await;
        assert_eq!(n.endpoint, "arm-box:2376");
        assert_eq!(
            n.reached.unwrap_err(),
            "`arm-box:2376` is not a node endpoint; expected `tcp://HOST:PORT` or `ssh://USER@HOST`"
        );
        let spec = NodeSpec { endpoint: "ssh://ci@arm-box".into(), ..spec };
        let n = probe_node(&spec, Path::new("archway-no-such-docker")).await;
        assert_eq!(n.reached.unwrap_err(), "`archway-no-such-docker` is not installed (not found)");
    }
}
