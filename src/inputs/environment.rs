//! environment: the only code in archway that reads the process environment (variables,
//! arguments, its own path). Everything is read once, here, into values the other stages are
//! given: the [`Env`] snapshot, the [`Runner`] (how to reach Docker here) and, when archway is
//! started as buildx's credential helper, the [`HelperCall`]. A test greps `src/` to keep it so.

use std::path::{Path, PathBuf};

use crate::ci::{self, Env};
use crate::env::{
    BUILDX_BUILDER, DOCKER_BIN, DOCKER_CERT_PATH, DOCKER_CONFIG, DOCKER_HOST, DOCKER_TLS, DOCKER_TLS_VERIFY, HOME, PATH,
};
use crate::probe::engine::EngineEndpoint;

/// Set by podman, systemd-nspawn and LXC (`container=podman`, …) in a container's environment.
pub const CONTAINER_VAR: &str = "container";

/// The process environment, read once. Variables whose name or value is not UTF-8 are left out
/// (none that archway reads can be).
pub fn snapshot() -> Env {
    std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))).collect()
}

/// How this machine's Docker is reached and what the probe and builders need to know about
/// the process: all from the snapshot, so a test can give any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runner {
    /// The `docker` executable (`ARCHWAY_DOCKER`, default `docker` on `PATH`).
    pub docker: PathBuf,
    /// The engine (`DOCKER_HOST`, `DOCKER_TLS_VERIFY`, `DOCKER_CERT_PATH`).
    pub engine: EngineEndpoint,
    /// The `container` variable container runtimes set, a hint that archway runs in one.
    pub container_var: Option<String>,
    /// The Docker CLI configuration directory (`DOCKER_CONFIG`, default `~/.docker`).
    pub docker_config: PathBuf,
    /// The buildx builder chosen by `BUILDX_BUILDER`, if any.
    pub buildx_builder: Option<String>,
    /// `PATH`, extended for buildx children (the credential helper goes first).
    pub path: String,
    /// archway's own executable, which buildx runs as its credential helper.
    pub exe: Option<PathBuf>,
    /// The Docker CLI is told to use TLS by the environment (`DOCKER_TLS`, `DOCKER_TLS_VERIFY`,
    /// `DOCKER_CERT_PATH`), which buildx run standalone does not read: then buildx runs
    /// through `docker`.
    pub docker_tls: bool,
}

impl Runner {
    /// How buildx runs here (see [`BuildxProgram`]): looked up on each call, in microseconds.
    /// Through `docker` when the environment asks for TLS: the CLI reads that into its flags and
    /// hands them to the plugin, buildx standalone would speak plain HTTP.
    pub fn buildx(&self) -> crate::probe::buildx::BuildxProgram {
        use crate::probe::buildx::BuildxProgram;
        match self.docker_tls {
            true => BuildxProgram::through(&self.docker),
            false => BuildxProgram::find(&self.docker, &self.path, &self.docker_config),
        }
    }

    /// The runner as `env` describes it; `exe` is archway's own path.
    pub fn from_env(env: &Env, exe: Option<PathBuf>) -> Runner {
        let get = |k: &str| ci::get(env, k);
        let home = get(HOME);
        Runner {
            docker: get(DOCKER_BIN).map(PathBuf::from).unwrap_or_else(|| "docker".into()),
            engine: EngineEndpoint::from_vars(get(DOCKER_HOST), get(DOCKER_TLS_VERIFY), get(DOCKER_CERT_PATH), home),
            container_var: get(CONTAINER_VAR).map(String::from),
            docker_config: get(DOCKER_CONFIG)
                .map(PathBuf::from)
                .or_else(|| home.map(|h| Path::new(h).join(".docker")))
                .unwrap_or_else(|| PathBuf::from("/root/.docker")),
            buildx_builder: get(BUILDX_BUILDER).filter(|b| !b.is_empty()).map(String::from),
            path: env.get(PATH).cloned().unwrap_or_default(),
            exe,
            docker_tls: [DOCKER_TLS, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH]
                .iter()
                .any(|k| get(k).is_some_and(|v| !v.is_empty())),
        }
    }
}

/// Whether archway's stderr is a terminal (a live progress view may be drawn there).
pub fn stderr_is_terminal() -> bool {
    use std::io::IsTerminal as _;
    std::io::stderr().is_terminal()
}

/// archway's own executable.
pub fn own_executable() -> Option<PathBuf> {
    std::env::current_exe().ok()
}

/// What buildx asked when it ran archway as `docker-credential-archway ACTION`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelperCall {
    pub action: String,
    /// The credentials the parent archway handed down: the `n`th from the three variables with
    /// the suffix `n`, from 0 until one is missing.
    pub credentials: Vec<HelperCredential>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelperCredential {
    pub server: String,
    pub username: String,
    pub secret: crate::secret::Secret,
}

/// `Some` when this process was started as the credential helper (by its program name).
pub fn helper_call() -> Option<HelperCall> {
    use crate::builder::credentials::{HELPER, VAR_SECRET, VAR_SERVER, VAR_USERNAME};
    let mut args = std::env::args_os();
    let name = args.next()?;
    let name = Path::new(&name).file_name()?.to_string_lossy().into_owned();
    if name != format!("docker-credential-{HELPER}") {
        return None;
    }
    let action = args.next().map(|a| a.to_string_lossy().into_owned()).unwrap_or_default();
    let var = |k: &str, n: usize| std::env::var(format!("{k}{n}")).ok();
    let mut credentials = Vec::new();
    for n in 0.. {
        match (var(VAR_SERVER, n), var(VAR_USERNAME, n), var(VAR_SECRET, n)) {
            (Some(server), Some(username), Some(secret)) => {
                credentials.push(HelperCredential { server, username, secret: crate::secret::Secret::new(secret) })
            }
            _ => break,
        }
    }
    Some(HelperCall { action, credentials })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runner_from_a_snapshot() {
        let env: Env = [
            ("HOME", "/home/u"),
            ("DOCKER_HOST", "tcp://docker:2376"),
            ("DOCKER_TLS_VERIFY", "1"),
            ("ARCHWAY_DOCKER", "/opt/docker"),
            ("PATH", "/bin"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let r = Runner::from_env(&env, None);
        assert_eq!(r.docker, PathBuf::from("/opt/docker"));
        assert_eq!(r.engine.host, "tcp://docker:2376");
        assert_eq!(r.engine.cert_dir, Some(PathBuf::from("/home/u/.docker")));
        assert_eq!(r.docker_config, PathBuf::from("/home/u/.docker"));
        assert!(r.docker_tls);
        assert_eq!(r.buildx(), crate::probe::buildx::BuildxProgram::through("/opt/docker"), "TLS: through docker");
        let r = Runner::from_env(&Env::new(), None);
        assert!(!r.docker_tls);
        assert_eq!(r.docker, PathBuf::from("docker"));
        assert_eq!(r.engine.host, "unix:///var/run/docker.sock");
    }
}
