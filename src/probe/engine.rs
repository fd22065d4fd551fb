//! engine: asks a Docker engine through its API (`bollard`) what it is and what it allows —
//! version, platform, image store, authorization plugins, whether it accepts privileged
//! containers, and which helper images it already has. Also how archway connects to an engine
//! (`DOCKER_HOST`, TLS from `DOCKER_CERT_PATH`), shared with `nodes`.
//!
//! Never starts a container and never pulls: the privileged check creates a container from an
//! image already present and removes it at once. Every call has a short deadline.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig, ImageSummary};
use bollard::query_parameters::{CreateContainerOptions, ListImagesOptions, RemoveContainerOptions};

use super::{Engine, ProbeError};
use crate::platform::Platform;

/// How long one Engine API call may take.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// How long listing the engine's images may take (see `probe_engine_with`).
pub const LIST_TIMEOUT: Duration = Duration::from_secs(30);

const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";
/// Label on the container the privileged check creates, so it can be told from others.
pub const PROBE_LABEL: &str = "org.archway.probe";
/// Repository names archway may run without pulling: its own image and QEMU installers.
const HELPER_IMAGE_HINTS: &[&str] = &["archway", "qemu", "binfmt"];
/// How many local images the privileged check tries before giving up (one may lack the host's
/// platform in a multi-platform store).
const PRIVILEGED_TRIES: usize = 10;

/// Where an engine is and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineEndpoint {
    /// `unix:///…`, `tcp://HOST:PORT`.
    pub host: String,
    /// TLS certificates (`key.pem`, `cert.pem`, `ca.pem`) for a `tcp://` host; plain when `None`.
    pub cert_dir: Option<PathBuf>,
}

impl EngineEndpoint {
    /// The engine the Docker CLI would use given `DOCKER_HOST`, `DOCKER_TLS_VERIFY`,
    /// `DOCKER_CERT_PATH` and `HOME` (contexts aside). TLS is on when `DOCKER_TLS_VERIFY` is
    /// non-empty or `DOCKER_CERT_PATH` is set (the Docker client then uses TLS too, but without
    /// verifying; archway always verifies).
    pub fn from_vars(
        host: Option<&str>,
        tls_verify: Option<&str>,
        cert_path: Option<&str>,
        home: Option<&str>,
    ) -> Self {
        let host = host.map(str::trim).filter(|h| !h.is_empty()).unwrap_or(DEFAULT_HOST).to_string();
        let cert_path = cert_path.filter(|p| !p.is_empty());
        let tls = tls_verify.is_some_and(|v| !v.is_empty()) || cert_path.is_some();
        let cert_dir =
            tls.then(|| cert_path.map(PathBuf::from).or_else(|| home.map(|h| Path::new(h).join(".docker")))).flatten();
        EngineEndpoint { host, cert_dir }
    }
}

/// Probes the engine at `endpoint`; `Err` is why it cannot be used, for users.
/// `in_container`: whether archway runs in a container (then its own image is looked up).
pub async fn probe_engine(endpoint: &EngineEndpoint, in_container: bool) -> Result<Engine, ProbeError> {
    probe_engine_with(endpoint, in_container, true).await
}

/// [`probe_engine`], finding out what a privileged helper container needs (an image to run it
/// from: archway's own when it runs in a container of this engine, else the local images,
/// listed; and a privileged container, created and removed: the slowest questions) only when
/// `helpers`; else `accepts_privileged` is `None` and `local_images` empty.
pub async fn probe_engine_with(
    endpoint: &EngineEndpoint,
    in_container: bool,
    helpers: bool,
) -> Result<Engine, ProbeError> {
    let host = endpoint.host.as_str();
    let docker = connect(host, endpoint.cert_dir.as_deref()).await?;
    // Independent questions, asked at once. Listing the images is the slowest: the containerd
    // store takes a few hundred ms for a few dozen images and 4–5 s for 700 (measured on the lab
    // after many test runs). So archway asks for helper images only (a `reference` filter:
    // 0.25 s on that engine), and each list gets a bound of its own: the client's own deadline
    // (`TIMEOUT`, set in `connect`) would cut it.
    let lister = docker.clone().with_timeout(LIST_TIMEOUT);
    let list = |filters: Option<std::collections::HashMap<String, Vec<String>>>| {
        let options = ListImagesOptions { filters, ..Default::default() };
        let lister = lister.clone();
        async move {
            call_within(host, LIST_TIMEOUT, lister.list_images(Some(options))).await.unwrap_or_else(|why| {
                tracing::info!("cannot list the images at {host}: {why}");
                Vec::new()
            })
        }
    };
    let helper = async {
        if !helpers {
            return (None, Vec::new());
        }
        // Running as a container step of this engine (a GitHub action, a Bitbucket pipe):
        // archway's own image is the one to run privileged helpers from, and the one to try
        // the privileged check with, so the images need no listing.
        if let Some(own) = own_image(&docker, in_container).await {
            return (Some(own), Vec::new());
        }
        (None, list(Some([("reference".to_string(), helper_reference_patterns())].into())).await)
    };
    let (version, info, (own, images)) = tokio::join!(call(host, docker.version()), call(host, docker.info()), helper);
    let (version, info) = (version?, info?);
    let platform = platform_of(version.os.as_deref(), version.arch.as_deref())
        .ok_or_else(|| unknown_platform(host, version.os.as_deref(), version.arch.as_deref()))?;
    let (accepts_privileged, local_images) = match own {
        Some(own) => {
            tracing::debug!("archway runs in a container of `{own}` on {host}: its helpers run from that image");
            (accepts_privileged(&docker, host, std::slice::from_ref(&own)).await, vec![own])
        }
        None => {
            let tried = privileged_candidates(&images);
            let mut accepts = accepts_privileged(&docker, host, &tried).await;
            if helpers && accepts.is_none() {
                // No helper image could be tried: any image tells whether the engine accepts
                // privileged containers (what the plan says when it cannot register QEMU).
                let mut others = privileged_candidates(&list(None).await);
                others.retain(|i| !tried.contains(i));
                accepts = accepts_privileged(&docker, host, &others).await;
            }
            (accepts, helper_images(&images))
        }
    };
    Ok(Engine {
        endpoint: host.to_string(),
        version: version.version.unwrap_or_default(),
        platform,
        containerd_store: containerd_store(&info),
        authorization_plugins: info.plugins.and_then(|p| p.authorization).unwrap_or_default(),
        accepts_privileged,
        local_images,
    })
}

/// The 64-hex container ID in a `/containers/<id>/` path of mountinfo.
pub fn container_id(mountinfo: &str) -> Option<String> {
    mountinfo.split("/containers/").skip(1).find_map(|rest| {
        let id: String = rest.chars().take_while(|c| c.is_ascii_hexdigit()).collect();
        (id.len() == 64 && rest[64..].starts_with('/')).then_some(id)
    })
}

/// The image of the container this process runs in, when `docker`'s engine runs that
/// container.
async fn own_image(docker: &Docker, in_container: bool) -> Option<String> {
    if !in_container {
        return None;
    }
    // The container ID from the engine's bind mounts (`/var/lib/docker/containers/<id>/…`),
    // which holds with host networking too; else the hostname Docker gave it (its short ID).
    let id = std::fs::read_to_string("/proc/self/mountinfo")
        .ok()
        .and_then(|m| container_id(&m))
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok().map(|h| h.trim().to_string()))?;
    let c = docker.inspect_container(&id, None::<bollard::query_parameters::InspectContainerOptions>).await.ok()?;
    // The name it was started from (what the planner and `docker run` know it by).
    c.config.and_then(|c| c.image).filter(|i| !i.is_empty())
}

/// A client for `host` with the API version negotiated (bollard speaks a newer API than most
/// engines accept). TLS with `cert_dir` for `tcp://` and `https://` hosts.
pub(crate) async fn connect(host: &str, cert_dir: Option<&Path>) -> Result<Docker, ProbeError> {
    let tls = cert_dir.filter(|_| host.starts_with("tcp://") || host.starts_with("https://"));
    let client = match tls {
        Some(dir) => {
            for file in ["key.pem", "cert.pem", "ca.pem"] {
                if !dir.join(file).is_file() {
                    return Err(ProbeError::TlsFile { endpoint: host.to_string(), dir: dir.to_path_buf(), file });
                }
            }
            Docker::connect_with_ssl(
                host,
                &dir.join("key.pem"),
                &dir.join("cert.pem"),
                &dir.join("ca.pem"),
                TIMEOUT.as_secs(),
                bollard::API_DEFAULT_VERSION,
            )
        }
        None if host.starts_with("ssh://") => return Err(ProbeError::SshOverApi { endpoint: host.to_string() }),
        None => Docker::connect_with_host(host).map(|d| d.with_timeout(TIMEOUT)),
    }
    .map_err(|e| engine_error(host, describe(host, &e)))?;
    call(host, client.negotiate_version()).await
}

/// Awaits one API call with [`TIMEOUT`] (bollard's own deadline does not cover reading the
/// body), turning failures into reasons.
pub(crate) async fn call<T>(
    host: &str,
    fut: impl Future<Output = Result<T, bollard::errors::Error>>,
) -> Result<T, ProbeError> {
    call_within(host, TIMEOUT, fut).await
}

/// [`call`] with another bound than [`TIMEOUT`].
async fn call_within<T>(
    host: &str,
    bound: Duration,
    fut: impl Future<Output = Result<T, bollard::errors::Error>>,
) -> Result<T, ProbeError> {
    match tokio::time::timeout(bound, fut).await {
        Err(_) => Err(engine_error(host, no_answer_within(host, bound))),
        Ok(r) => r.map_err(|e| engine_error(host, describe(host, &e))),
    }
}

fn engine_error(host: &str, reason: String) -> ProbeError {
    ProbeError::Engine { endpoint: host.to_string(), reason }
}

/// The engine at `host` answered `docker version` with an `Os`/`Arch` archway does not know.
pub(crate) fn unknown_platform(host: &str, os: Option<&str>, arch: Option<&str>) -> ProbeError {
    let platform = format!("{}/{}", os.unwrap_or_default(), arch.unwrap_or_default());
    ProbeError::UnknownPlatform { endpoint: host.to_string(), platform }
}

fn no_answer(host: &str) -> String {
    no_answer_within(host, TIMEOUT)
}

fn no_answer_within(host: &str, bound: Duration) -> String {
    format!("no answer within {} s from {host}", bound.as_secs())
}

/// A reason a user can act on: "connection refused at tcp://127.0.0.1:2376".
pub(crate) fn describe(host: &str, err: &bollard::errors::Error) -> String {
    use bollard::errors::Error as E;
    match err {
        E::SocketNotFoundError(_) => return format!("no Docker socket at {host}"),
        E::RequestTimeoutError => return no_answer(host),
        E::DockerResponseServerError { status_code, message } if message.trim().is_empty() => {
            return format!(
                "{host} answered HTTP {status_code} without a message; is a Docker engine listening there?"
            );
        }
        E::DockerResponseServerError { status_code, message } => {
            return format!("{host} answered HTTP {status_code}: {}", message.trim());
        }
        E::CertPathError { path } | E::CertParseError { path } => {
            return format!("cannot use {} to reach {host} over TLS", path.display());
        }
        E::UnsupportedURISchemeError { .. } => {
            return format!(
                "`{host}` is not an endpoint archway can reach; expected `unix://PATH` or `tcp://HOST:PORT`"
            );
        }
        _ => {}
    }
    let mut chain = vec![err.to_string()];
    let mut source = std::error::Error::source(err);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as K;
            match io.kind() {
                K::ConnectionRefused => return format!("connection refused at {host}"),
                K::NotFound => return format!("no Docker socket at {host}"),
                K::PermissionDenied => return format!("permission denied connecting to {host}"),
                K::TimedOut => return no_answer(host),
                _ => {}
            }
        }
        chain.push(e.to_string());
        source = e.source();
    }
    chain.dedup();
    format!("cannot reach {host}: {}", chain.join(": "))
}

/// The engine's platform from `docker version`'s `Os` and `Arch`.
pub fn platform_of(os: Option<&str>, arch: Option<&str>) -> Option<Platform> {
    format!("{}/{}", os?, arch?).parse().ok()
}

/// Whether the engine keeps its images in the containerd image store, from `docker info` alone.
/// That store reports `DriverStatus` `[["driver-type", "io.containerd.snapshotter.v1"]]` and
/// the snapshotter as `Driver` (`overlayfs`) — opted into on Docker 24–28, the default of a
/// fresh Docker 29. The classic store reports its graph driver (`overlay2`, `vfs`, …) and that
/// driver's own status lines.
pub fn containerd_store(info: &bollard::models::SystemInfo) -> bool {
    store_is_containerd(info.driver.as_deref(), info.driver_status.as_deref().unwrap_or_default())
}

/// [`containerd_store`] from the two fields (`docker info --format` over ssh gives just these).
pub fn store_is_containerd(driver: Option<&str>, driver_status: &[Vec<String>]) -> bool {
    let snapshotter = |kv: &Vec<String>| matches!(kv.as_slice(), [k, v] if k == "driver-type" && v == SNAPSHOTTER);
    // `overlayfs` is containerd's snapshotter; the classic store's overlay driver is `overlay2`.
    driver_status.iter().any(snapshotter) || (driver_status.is_empty() && driver == Some("overlayfs"))
}

/// The containerd plugin type moby's containerd image service names as its `driver-type`.
const SNAPSHOTTER: &str = "io.containerd.snapshotter.v1";

/// `repo:tag` names of an image, without `<none>`.
fn tags(image: &ImageSummary) -> impl Iterator<Item = &String> {
    image.repo_tags.iter().filter(|t| !t.starts_with("<none>"))
}

/// The repository part of `repo:tag` (a `:` before the last `/` is a registry port).
fn repository(tag: &str) -> &str {
    match tag.rsplit_once(':') {
        Some((repo, t)) if !t.contains('/') => repo,
        _ => tag,
    }
}

/// The engine's `reference` filter (Go's `path.Match` on each image's name, `*` within one
/// path component) for every name [`helper_images`] keeps: a hint anywhere in one of a name's
/// first four components. A superset (a tag holding a hint matches too); `helper_images`
/// decides.
pub fn helper_reference_patterns() -> Vec<String> {
    let mut out = Vec::new();
    for hint in HELPER_IMAGE_HINTS {
        for components in 1..=4 {
            for at in 0..components {
                let parts: Vec<String> =
                    (0..components).map(|i| if i == at { format!("*{hint}*") } else { "*".to_string() }).collect();
                out.push(parts.join("/"));
            }
        }
    }
    out
}

/// Local images archway may run without pulling: its own, and QEMU installers. Sorted.
pub fn helper_images(images: &[ImageSummary]) -> Vec<String> {
    let mut out: Vec<String> = images
        .iter()
        .flat_map(tags)
        .filter(|t| {
            let repo = repository(t).to_ascii_lowercase();
            HELPER_IMAGE_HINTS.iter().any(|h| repo.contains(h))
        })
        .cloned()
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Images to create the privileged test container from: archway's own first, then any, by
/// name (or id when untagged).
pub fn privileged_candidates(images: &[ImageSummary]) -> Vec<String> {
    let name = |i: &ImageSummary| tags(i).next().cloned().unwrap_or_else(|| i.id.clone());
    let (mut ours, others): (Vec<_>, Vec<_>) =
        images.iter().partition(|i| tags(i).any(|t| repository(t).contains("archway")));
    ours.extend(others);
    let mut out: Vec<String> = ours.into_iter().map(name).filter(|n| !n.is_empty()).collect();
    out.dedup();
    out
}

/// An authorization plugin said no (Bitbucket's `pipelines` answers 403 "authorization denied
/// by plugin pipelines: …").
pub fn is_authorization_denial(status: u16, message: &str) -> bool {
    status == 403 || message.to_ascii_lowercase().contains("authorization denied")
}

/// Creates (never starts) a privileged container from a local image and removes it. `None`
/// when no local image could be used for the test.
async fn accepts_privileged(docker: &Docker, host: &str, candidates: &[String]) -> Option<bool> {
    for image in candidates.iter().take(PRIVILEGED_TRIES) {
        let name = format!("archway-probe-{}-{}", std::process::id(), unique());
        let body = ContainerCreateBody {
            image: Some(image.clone()),
            // Never run; a command is needed only for images that have none.
            cmd: Some(vec!["true".into()]),
            network_disabled: Some(true),
            labels: Some([(PROBE_LABEL.to_string(), "accepts-privileged".to_string())].into()),
            host_config: Some(HostConfig { privileged: Some(true), ..Default::default() }),
            ..Default::default()
        };
        let options = CreateContainerOptions { name: Some(name.clone()), ..Default::default() };
        let created = tokio::time::timeout(TIMEOUT, docker.create_container(Some(options), body)).await;
        // Remove by name whatever the outcome: a create that timed out here may still finish in
        // the engine. `v` removes the anonymous volumes an image's VOLUME created.
        let remove = RemoveContainerOptions { force: true, v: true, ..Default::default() };
        match tokio::time::timeout(TIMEOUT, docker.remove_container(&name, Some(remove))).await {
            Ok(Ok(())) => {}
            Ok(Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. })) => {}
            Ok(Err(e)) => tracing::warn!("could not remove the probe container {name}: {}", describe(host, &e)),
            Err(_) => tracing::warn!("could not remove the probe container {name}: {}", no_answer(host)),
        }
        match created {
            Ok(Ok(_)) => return Some(true),
            Ok(Err(bollard::errors::Error::DockerResponseServerError { status_code, message }))
                if is_authorization_denial(status_code, &message) =>
            {
                return Some(false);
            }
            Ok(Err(e)) => tracing::debug!("privileged check with {image}: {}", describe(host, &e)),
            Err(_) => tracing::debug!("privileged check with {image}: {}", no_answer(host)),
        }
    }
    None
}

/// A number that differs between calls in one process.
fn unique() -> u128 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default() % 1_000_000_000
}

#[cfg(test)]
mod own_image_tests {
    #[test]
    fn container_id_from_mountinfo() {
        let id = "a".repeat(64);
        let m = format!("1 2 0:3 /var/lib/docker/containers/{id}/resolv.conf /etc/resolv.conf rw - ext4 /dev/vda rw\n");
        assert_eq!(super::container_id(&m), Some(id));
        assert_eq!(super::container_id("1 2 0:3 / / rw - overlay overlay rw\n"), None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(id: &str, tags: &[&str]) -> ImageSummary {
        ImageSummary {
            id: id.to_string(),
            repo_tags: tags.iter().map(|t| t.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn endpoint_from_the_docker_variables() {
        let e = EngineEndpoint::from_vars(None, None, None, Some("/root"));
        assert_eq!(e, EngineEndpoint { host: "unix:///var/run/docker.sock".into(), cert_dir: None });
        let e = EngineEndpoint::from_vars(Some("tcp://10.0.0.1:2376"), Some("1"), None, Some("/home/ci"));
        assert_eq!(e.cert_dir.as_deref(), Some(Path::new("/home/ci/.docker")));
        let e = EngineEndpoint::from_vars(Some("tcp://10.0.0.1:2376"), Some("1"), Some("/certs"), None);
        assert_eq!(e.cert_dir.as_deref(), Some(Path::new("/certs")));
        let e = EngineEndpoint::from_vars(Some("tcp://10.0.0.1:2376"), None, Some("/certs"), None);
        assert_eq!(e.cert_dir.as_deref(), Some(Path::new("/certs")), "the cert path alone turns TLS on");
        let e = EngineEndpoint::from_vars(Some("tcp://docker:2375"), Some(""), Some(""), Some("/root"));
        assert_eq!(e, EngineEndpoint { host: "tcp://docker:2375".into(), cert_dir: None });
    }

    #[test]
    fn engine_facts() {
        assert_eq!(platform_of(Some("linux"), Some("amd64")).map(|p| p.to_string()).as_deref(), Some("linux/amd64"));
        assert_eq!(platform_of(Some("linux"), Some("arm64")).map(|p| p.to_string()).as_deref(), Some("linux/arm64"));
        assert_eq!(platform_of(Some("linux"), None), None);
        let s = |kv: &[&str]| kv.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(store_is_containerd(Some("overlayfs"), &[]), "the snapshotter's name alone");
        assert!(!store_is_containerd(Some("overlay2"), &[]));
        assert!(!store_is_containerd(Some("overlayfs"), &[s(&["Backing Filesystem", "extfs"])]));
    }

    /// `GET /info` as engines answer it (tests/fixtures/docker-info: Docker 26 recorded with
    /// each store; Docker 29 written from its documentation, see the README there).
    #[test]
    fn image_store_from_docker_info() {
        let info = |name: &str| -> bollard::models::SystemInfo {
            let path = format!("{}/tests/fixtures/docker-info/{name}.json", env!("CARGO_MANIFEST_DIR"));
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap_or_else(|e| panic!("{path}: {e}"))
        };
        let classic = info("docker26-classic");
        assert_eq!(classic.driver.as_deref(), Some("overlay2"));
        assert!(!containerd_store(&classic), "Docker 26 with the classic store (overlay2)");
        assert!(containerd_store(&info("docker26-containerd")), "Docker 26 with the containerd store turned on");
        let v29 = info("docker29");
        assert_eq!(v29.server_version.as_deref(), Some("29.0.0"));
        assert!(containerd_store(&v29), "Docker 29's default: the containerd store");
    }

    #[test]
    fn helper_images_and_candidates() {
        let images = [
            image("sha256:1", &["busybox:latest", "127.0.0.1:5000/lab/busybox:latest"]),
            image("sha256:2", &["tonistiigi/binfmt:qemu-v8"]),
            image("sha256:3", &["<none>:<none>"]),
            image("sha256:4", &["ghcr.io/acme/archway:1.2", "ghcr.io/acme/archway:latest"]),
            image("sha256:5", &["multiarch/qemu-user-static:latest"]),
            image("sha256:6", &["registry:5000/tools:qemu"]),
        ];
        assert_eq!(
            helper_images(&images),
            [
                "ghcr.io/acme/archway:1.2",
                "ghcr.io/acme/archway:latest",
                "multiarch/qemu-user-static:latest",
                "tonistiigi/binfmt:qemu-v8"
            ],
            "a tag that merely says qemu is not a QEMU image"
        );
        assert_eq!(
            privileged_candidates(&images),
            [
                "ghcr.io/acme/archway:1.2",
                "busybox:latest",
                "tonistiigi/binfmt:qemu-v8",
                "sha256:3",
                "multiarch/qemu-user-static:latest",
                "registry:5000/tools:qemu"
            ]
        );
        assert_eq!(repository("127.0.0.1:5000/lab/busybox"), "127.0.0.1:5000/lab/busybox");
    }

    /// The engine's `reference` filter lets through every name `helper_images` keeps (matched
    /// as the engine does: Go's `path.Match` on the familiar name), and not the others.
    #[test]
    fn the_reference_filter_lets_every_helper_image_through() {
        let patterns = helper_reference_patterns();
        let passes = |name: &str| {
            patterns.iter().any(|p| crate::builder::assemble::glob::matches(p, name).expect("a valid pattern"))
        };
        let names = [
            "archway:dev",
            "127.0.0.1:5000/archway/archway:test-1",
            "ghcr.io/archway-build/archway:1",
            "ghcr.io/acme/archway:1.2",
            "registry.gitlab.com/group/sub/archway:1",
            "tonistiigi/binfmt:qemu-v8",
            "multiarch/qemu-user-static:latest",
            "busybox:latest",
            "127.0.0.1:5000/lab/busybox:latest",
            "ghcr.io/acme/tools/builder:2",
        ];
        let images: Vec<ImageSummary> = names.iter().map(|n| image("sha256:1", &[n])).collect();
        let kept = helper_images(&images);
        for name in names {
            assert_eq!(passes(name), kept.iter().any(|k| k == name), "{name}");
        }
        assert_eq!(kept.len(), 7);
        // A tag that says qemu passes the filter (a superset); `helper_images` decides.
        assert!(passes("registry:5000/tools:qemu"));
    }

    #[test]
    fn authorization_denials() {
        assert!(is_authorization_denial(
            403,
            "authorization denied by plugin pipelines: --privileged=true is not allowed"
        ));
        assert!(is_authorization_denial(500, "Error: Authorization denied by plugin x"));
        assert!(!is_authorization_denial(404, "No such image: busybox:latest"));
    }

    #[tokio::test]
    async fn unreachable_engines_have_readable_reasons() {
        let e = probe_engine(&EngineEndpoint { host: "unix:///nonexistent/docker.sock".into(), cert_dir: None }, false)
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), "no Docker socket at unix:///nonexistent/docker.sock");
        let e =
            probe_engine(&EngineEndpoint { host: "ssh://ci@builder".into(), cert_dir: None }, false).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "ssh://ci@builder is an ssh endpoint; archway reaches those through the `docker` CLI only"
        );
        let e = probe_engine(&EngineEndpoint { host: "npipe:////./pipe/x".into(), cert_dir: None }, false)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("`npipe:////./pipe/x` is not an endpoint"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let e = probe_engine(
            &EngineEndpoint { host: "tcp://127.0.0.1:1".into(), cert_dir: Some(dir.path().into()) },
            false,
        )
        .await
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("no key.pem in {} to reach tcp://127.0.0.1:1 over TLS", dir.path().display())
        );
        assert_eq!(
            unknown_platform("tcp://arm:2376", Some("linux"), Some("sparc")).to_string(),
            "the engine at tcp://arm:2376 reports an unknown platform `linux/sparc`"
        );
    }
}
