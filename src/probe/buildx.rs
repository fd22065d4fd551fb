//! buildx: finds the buildx CLI plugin and the builder it would use, by running `docker buildx
//! version` and `docker buildx inspect` at once (child processes, argument vectors) and parsing what
//! they print: version, builder, driver, the platforms the builder can build, and why it
//! cannot be used, if that shows.
//!
//! The parsers are pure and tested on output captured from the lab machine
//! (`testdata/buildx/`); [`probe_buildx`] is the I/O.

use std::path::Path;
use std::time::Duration;

use super::command;
use super::{BuildxInfo, ProbeError};
use crate::platform::Platform;

/// How long one `docker buildx …` may take; `inspect` asks the engine, which may be slow.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Runs buildx through `docker` (a path or a name on `PATH`). `Err` says why there is no
/// buildx (not installed, `docker` missing, …). A builder that cannot be reached is an `Ok`
/// whose `refused` says why.
/// With `default_builder` (see [`default_builder_selected`]) only the version is asked: the
/// builder is buildx's `default`, the `docker` driver on the engine the engine probe reaches.
pub async fn probe_buildx(docker: &Path, default_builder: bool) -> Result<BuildxInfo, ProbeError> {
    // Both at once: they are independent, and each is a child process of ~50–150 ms.
    let (version_args, inspect_args) = (["buildx", "version"], ["buildx", "inspect"]);
    let inspect = async {
        match default_builder {
            true => None,
            false => Some(command::run(docker, &inspect_args, TIMEOUT).await),
        }
    };
    let (version, inspect) = tokio::join!(command::run(docker, &version_args, TIMEOUT), inspect);
    let out = version?;
    if !out.success {
        return Err(ProbeError::Failed { command: command::display(docker, &version_args), reason: out.reason() });
    }
    let version = parse_version(&out.stdout).ok_or_else(|| ProbeError::NoVersion {
        command: command::display(docker, &version_args),
        output: out.stdout.trim().to_string(),
    })?;
    let Some(inspect) = inspect else {
        return Ok(BuildxInfo {
            version,
            builder: "default".into(),
            driver: "docker".into(),
            platforms: Vec::new(),
            refused: None,
        });
    };

    let (inspect, failed) = match inspect {
        Ok(out) if out.success => (parse_inspect(&out.stdout), None),
        Ok(out) => (
            Inspect::default(),
            Some(
                ProbeError::Failed { command: command::display(docker, &inspect_args), reason: out.reason() }
                    .to_string(),
            ),
        ),
        Err(why) => (Inspect::default(), Some(why.to_string())),
    };
    let refused = failed.or_else(|| {
        inspect.error.as_ref().map(|e| format!("buildx builder `{}` cannot be used: {e}", inspect.builder))
    });
    Ok(BuildxInfo { version, builder: inspect.builder, driver: inspect.driver, platforms: inspect.platforms, refused })
}

/// Whether buildx uses its default builder: `BUILDX_BUILDER` unset, and no builder selected
/// with `docker buildx use` (`$DOCKER_CONFIG/buildx/current` absent, or naming none, or
/// `default`).
pub fn default_builder_selected(docker_config: &Path, buildx_builder: Option<&str>) -> bool {
    if buildx_builder.is_some_and(|b| b != "default") {
        return false;
    }
    match std::fs::read(docker_config.join("buildx/current")) {
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
        Ok(raw) => {
            #[derive(serde::Deserialize)]
            struct Current {
                #[serde(rename = "Name", default)]
                name: String,
            }
            serde_json::from_slice::<Current>(&raw).is_ok_and(|c| c.name.is_empty() || c.name == "default")
        }
    }
}

/// The version from `docker buildx version`, without a leading `v`: `0.13.1+ds1` from Debian's
/// `github.com/docker/buildx 0.13.1+ds1 0.13.1+ds1-3`, `0.14.0` from upstream's
/// `github.com/docker/buildx v0.14.0 171fcbe`.
pub fn parse_version(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        if !words.next()?.ends_with("/buildx") {
            return None;
        }
        let v = words.next()?;
        let v = v.strip_prefix('v').unwrap_or(v);
        v.starts_with(|c: char| c.is_ascii_digit()).then(|| v.to_string())
    })
}

/// What `docker buildx inspect` says about the current builder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inspect {
    pub builder: String,
    pub driver: String,
    /// Every node's platforms, in order, without duplicates; the `*` buildx puts after
    /// platforms the user configured is dropped, and names archway cannot parse are skipped.
    pub platforms: Vec<Platform>,
    /// The builder's own `Error:` line, or, when no node lists any platform, the first node's.
    pub error: Option<String>,
}

/// Parses `docker buildx inspect`: `Key: value` lines, the builder's first, then one block per
/// node after `Nodes:`. Indented lines (labels, GC policy) are skipped.
pub fn parse_inspect(text: &str) -> Inspect {
    let mut out = Inspect::default();
    let mut in_nodes = false;
    let mut node_error = None;
    for line in text.lines() {
        if line.starts_with(char::is_whitespace) {
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match (in_nodes, key) {
            (_, "Nodes") => in_nodes = true,
            (false, "Name") if out.builder.is_empty() => out.builder = value.to_string(),
            (false, "Driver") => out.driver = value.to_string(),
            (false, "Error") => out.error = Some(value.to_string()),
            (true, "Error") => {
                node_error.get_or_insert_with(|| value.to_string());
            }
            (true, "Platforms") => {
                for item in value.split(',') {
                    let item = item.trim().trim_end_matches('*');
                    if let Ok(p) = item.parse::<Platform>()
                        && !out.platforms.contains(&p)
                    {
                        out.platforms.push(p);
                    }
                }
            }
            _ => {}
        }
    }
    if out.error.is_none() && out.platforms.is_empty() {
        out.error = node_error;
    }
    out
}

/// Why builds may be refused when the engine runs authorization plugins, for users; `None`
/// without plugins.
pub fn authorization_refusal(plugins: &[String]) -> Option<String> {
    if plugins.is_empty() {
        return None;
    }
    Some(format!(
        "the Docker engine's authorization plugin(s) `{}` may refuse BuildKit, `--platform` and privileged containers \
         (Bitbucket's default runtime does)",
        plugins.join("`, `")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(ps: &[Platform]) -> Vec<String> {
        ps.iter().map(|p| p.to_string()).collect()
    }

    // Captured on the lab machine: Debian's buildx 0.13.1 against Docker Engine 26.1.5.
    const VERSION: &str = include_str!("testdata/buildx/version.txt");
    const INSPECT_DOCKER: &str = include_str!("testdata/buildx/inspect-docker-driver.txt");
    /// `DOCKER_HOST=tcp://127.0.0.1:1 docker buildx inspect`: exit status 0, the reason in `Error:`.
    const INSPECT_UNREACHABLE: &str = include_str!("testdata/buildx/inspect-engine-unreachable.txt");
    /// A `docker-container` builder created but never started (`docker buildx create --driver
    /// docker-container --platform linux/arm64,linux/arm/v7`): no platforms until bootstrapped.
    const INSPECT_INACTIVE: &str = include_str!("testdata/buildx/inspect-container-inactive.txt");

    #[test]
    fn version_from_debian_and_upstream() {
        assert_eq!(parse_version(VERSION).as_deref(), Some("0.13.1+ds1"));
        assert_eq!(
            parse_version("github.com/docker/buildx v0.14.0 171fcbeb69d67c90ba7f44f41a9e418f6a6ec1da\n").as_deref(),
            Some("0.14.0")
        );
        assert_eq!(parse_version(""), None);
        assert_eq!(parse_version("docker: 'buildx' is not a docker command.\n"), None);
    }

    #[test]
    fn inspect_of_the_docker_driver() {
        let i = parse_inspect(INSPECT_DOCKER);
        assert_eq!(i.builder, "default");
        assert_eq!(i.driver, "docker");
        assert_eq!(
            names(&i.platforms),
            [
                "linux/amd64",
                "linux/amd64/v2",
                "linux/amd64/v3",
                "linux/arm64",
                "linux/riscv64",
                "linux/ppc64le",
                "linux/s390x"
            ]
        );
        assert_eq!(i.error, None);
    }

    #[test]
    fn inspect_with_the_engine_down() {
        let i = parse_inspect(INSPECT_UNREACHABLE);
        assert_eq!((i.builder.as_str(), i.driver.as_str()), ("default", ""));
        assert!(i.platforms.is_empty());
        assert_eq!(
            i.error.as_deref(),
            Some("Cannot connect to the Docker daemon at tcp://127.0.0.1:1. Is the docker daemon running?")
        );
    }

    #[test]
    fn inspect_of_an_inactive_container_builder() {
        let i = parse_inspect(INSPECT_INACTIVE);
        assert_eq!(i.builder, "archway-fixture-capture", "the builder's name, not its node's (`n1`)");
        assert_eq!(i.driver, "docker-container");
        assert!(i.platforms.is_empty());
        assert_eq!(i.error, None);
    }

    #[test]
    fn inspect_of_several_nodes() {
        // The shape buildx prints for a bootstrapped multi-node builder, one node down.
        let text = "Name:          multi\nDriver:        docker-container\n\nNodes:\n\
                    Name:      a\nEndpoint:  unix:///var/run/docker.sock\nStatus:    running\n\
                    Platforms: linux/amd64*, linux/386, linux/sparc\n\
                    Labels:\n org.mobyproject.buildkit.worker.executor: oci\n\n\
                    Name:      b\nEndpoint:  tcp://10.0.0.2:2376\nError:     connection refused\n\n\
                    Name:      c\nEndpoint:  tcp://10.0.0.3:2376\nStatus:    running\n\
                    Platforms: linux/arm64*, linux/arm/v7, linux/amd64\n";
        let i = parse_inspect(text);
        assert_eq!(i.builder, "multi");
        assert_eq!(names(&i.platforms), ["linux/amd64", "linux/386", "linux/arm64", "linux/arm/v7"]);
        assert_eq!(i.error, None, "one node down leaves the others usable");
        let only_down = "Name: m\nDriver: remote\nNodes:\nName: b\nError: connection refused\n";
        assert_eq!(parse_inspect(only_down).error.as_deref(), Some("connection refused"));
    }

    #[test]
    fn refusal_names_the_plugins() {
        assert_eq!(authorization_refusal(&[]), None);
        let r = authorization_refusal(&["pipelines".to_string()]).unwrap();
        assert_eq!(
            r,
            "the Docker engine's authorization plugin(s) `pipelines` may refuse BuildKit, `--platform` and privileged \
             containers (Bitbucket's default runtime does)"
        );
        let r = authorization_refusal(&["a".to_string(), "b".to_string()]).unwrap();
        assert!(r.contains("`a`, `b`"), "{r}");
    }
}
