//! buildx: finds the buildx CLI plugin and the builder it would use, by running `docker buildx
//! version` and `docker buildx inspect` at once (child processes, argument vectors) and parsing what
//! they print: version, builder, driver, the platforms the builder can build, and why it
//! cannot be used, if that shows.
//!
//! The parsers are pure and tested on output captured from the lab machine
//! (`testdata/buildx/`); [`probe_buildx`] is the I/O.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::command;
use super::{BuildxInfo, ProbeError};
use crate::platform::Platform;

/// How archway runs buildx.
///
/// The Docker CLI runs a plugin by finding it, running it once for its metadata
/// (`docker-buildx docker-cli-plugin-metadata`) and once more for the command: two Go
/// programs started (~30 ms on the lab machine) before buildx does anything, on every `docker
/// buildx …`. buildx also runs standalone (`docker-buildx build …`, the same flags, the same
/// `DOCKER_HOST`, contexts and config), so where `docker` is the Docker CLI archway finds the
/// plugin where that CLI would and runs it directly. Where `docker` is a script (a wrapper that
/// may change what `docker buildx` means, or refuse it) or cannot be found, every call goes
/// through `docker buildx …` as written; so does every call where TLS comes from the
/// environment (`DOCKER_TLS_VERIFY`…), which the CLI turns into the plugin's flags and buildx
/// standalone does not read (`Runner::buildx`, and a node's certificates in the builder).
/// Messages always show the `docker buildx …` form, which a user can run to reproduce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildxProgram {
    /// The `docker` executable (a path, or a name looked up on `PATH`).
    pub docker: PathBuf,
    /// The `docker-buildx` plugin run directly, when found for a Docker CLI.
    pub plugin: Option<PathBuf>,
}

/// Where the Docker CLI looks for plugins after its config directory's `cli-plugins` and the
/// config's `cliPluginsExtraDirs`, in its order (docker/cli's `defaultSystemPluginDirs` on
/// Linux).
pub const SYSTEM_PLUGIN_DIRS: [&str; 4] = [
    "/usr/local/lib/docker/cli-plugins",
    "/usr/local/libexec/docker/cli-plugins",
    "/usr/lib/docker/cli-plugins",
    "/usr/libexec/docker/cli-plugins",
];

impl BuildxProgram {
    /// Always through `docker buildx …`.
    pub fn through(docker: impl Into<PathBuf>) -> BuildxProgram {
        BuildxProgram { docker: docker.into(), plugin: None }
    }

    /// Finds the plugin for `docker` (looked up on `path` when it is a bare name) the way the
    /// Docker CLI does with the config directory `docker_config`: `cli-plugins` there, then
    /// `cliPluginsExtraDirs` from its `config.json`, then [`SYSTEM_PLUGIN_DIRS`]; the first
    /// executable `docker-buildx` wins. Only when `docker` is an executable binary (not a
    /// script).
    pub fn find(docker: &Path, path: &str, docker_config: &Path) -> BuildxProgram {
        Self::find_in(docker, path, docker_config, &SYSTEM_PLUGIN_DIRS.map(Path::new))
    }

    fn find_in(docker: &Path, path: &str, docker_config: &Path, system: &[&Path]) -> BuildxProgram {
        let plugin = locate(docker, path).filter(|d| is_binary(d)).and_then(|_| {
            plugin_dirs(docker_config, system).into_iter().map(|d| d.join("docker-buildx")).find(|p| is_executable(p))
        });
        BuildxProgram { docker: docker.to_path_buf(), plugin }
    }

    /// The program and its arguments for `docker ARGS`, where `args` starts with `buildx`: the
    /// plugin with the rest, or `docker` with all of them.
    pub fn program_and_args<'a, S: AsRef<std::ffi::OsStr>>(&'a self, args: &'a [S]) -> (&'a Path, &'a [S]) {
        match (&self.plugin, args.split_first()) {
            (Some(plugin), Some((first, rest))) if first.as_ref() == "buildx" => (plugin, rest),
            _ => (&self.docker, args),
        }
    }

    /// A child process for `docker ARGS` (`args` starting with `buildx`), nothing else set.
    pub fn command<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> tokio::process::Command {
        let (program, args) = self.program_and_args(args);
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args);
        // A plugin started by the CLI gets this; buildx standalone must not think it has one.
        cmd.env_remove("DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND");
        cmd
    }
}

/// The directories the Docker CLI searches for plugins, in its order.
fn plugin_dirs(docker_config: &Path, system: &[&Path]) -> Vec<PathBuf> {
    let mut dirs = vec![docker_config.join("cli-plugins")];
    #[derive(serde::Deserialize)]
    struct Config {
        #[serde(rename = "cliPluginsExtraDirs", default)]
        extra: Vec<PathBuf>,
    }
    if let Ok(raw) = std::fs::read(docker_config.join("config.json"))
        && let Ok(c) = serde_json::from_slice::<Config>(&raw)
    {
        dirs.extend(c.extra);
    }
    dirs.extend(system.iter().map(|d| d.to_path_buf()));
    dirs
}

/// `program` as the system would run it: itself when it names a path, else the first
/// executable of that name on `path`.
fn locate(program: &Path, path: &str) -> Option<PathBuf> {
    if program.components().count() > 1 || program.is_absolute() {
        return is_executable(program).then(|| program.to_path_buf());
    }
    std::env::split_paths(path).map(|d| d.join(program)).find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Whether `p` is a compiled program (ELF), not a script a `#!` line runs.
fn is_binary(p: &Path) -> bool {
    use std::io::Read as _;
    let mut magic = [0u8; 4];
    std::fs::File::open(p).and_then(|mut f| f.read_exact(&mut magic)).is_ok() && magic == *b"\x7fELF"
}

/// How long one `docker buildx …` may take; `inspect` asks the engine, which may be slow.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Runs buildx (see [`BuildxProgram`]). `Err` says why there is no
/// buildx (not installed, `docker` missing, …). A builder that cannot be reached is an `Ok`
/// whose `refused` says why.
/// With `default_builder` (see [`default_builder_selected`]) only the version is asked: the
/// builder is buildx's `default`, the `docker` driver on the engine the engine probe reaches.
pub async fn probe_buildx(buildx: &BuildxProgram, default_builder: bool) -> Result<BuildxInfo, ProbeError> {
    let docker = &buildx.docker;
    if let Some(plugin) = &buildx.plugin {
        tracing::debug!("buildx runs as its plugin `{}`, not through `{}`", plugin.display(), docker.display());
    }
    // Both at once: they are independent, and each is a child process of ~20–150 ms.
    const VERSION_ARGS: [&str; 2] = ["buildx", "version"];
    const INSPECT_ARGS: [&str; 2] = ["buildx", "inspect"];
    let run = |args: &'static [&'static str]| async move {
        let (program, _) = buildx.program_and_args(args);
        command::run_shown(&mut buildx.command(args), program, command::display(docker, args), TIMEOUT).await
    };
    let inspect = async {
        match default_builder {
            true => None,
            false => Some(run(&INSPECT_ARGS).await),
        }
    };
    let (version, inspect) = tokio::join!(run(&VERSION_ARGS), inspect);
    let out = version?;
    if !out.success {
        return Err(ProbeError::Failed { command: command::display(docker, &VERSION_ARGS), reason: out.reason() });
    }
    let version = parse_version(&out.stdout).ok_or_else(|| ProbeError::NoVersion {
        command: command::display(docker, &VERSION_ARGS),
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
                ProbeError::Failed { command: command::display(docker, &INSPECT_ARGS), reason: out.reason() }
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

    /// Writes an executable file: a compiled program's first bytes, or a script.
    fn executable(path: &Path, binary: bool) {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(
            path,
            if binary { &b"\x7fELF\x02\x01\x01"[..] } else { &b"#!/bin/sh\nexec docker \"$@\"\n"[..] },
        )
        .unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn the_plugin_is_found_where_the_docker_cli_looks_first() {
        let t = tempfile::tempdir().unwrap();
        let (bin, config, extra, system) =
            (t.path().join("bin"), t.path().join("config"), t.path().join("extra"), t.path().join("system"));
        executable(&bin.join("docker"), true);
        let path = format!("/nonexistent:{}", bin.display());
        let find = || BuildxProgram::find_in(Path::new("docker"), &path, &config, &[&system]);
        assert_eq!(find(), BuildxProgram::through("docker"), "no plugin anywhere: through docker");

        executable(&system.join("docker-buildx"), true);
        assert_eq!(find().plugin, Some(system.join("docker-buildx")));
        std::fs::create_dir_all(&config).unwrap();
        std::fs::write(config.join("config.json"), format!(r#"{{"cliPluginsExtraDirs": ["{}"]}}"#, extra.display()))
            .unwrap();
        executable(&extra.join("docker-buildx"), true);
        assert_eq!(find().plugin, Some(extra.join("docker-buildx")), "cliPluginsExtraDirs before the system's");
        executable(&config.join("cli-plugins/docker-buildx"), true);
        assert_eq!(find().plugin, Some(config.join("cli-plugins/docker-buildx")), "the config's own first");

        // A file that is not executable is not a plugin.
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(config.join("cli-plugins/docker-buildx"), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        assert_eq!(find().plugin, Some(extra.join("docker-buildx")));

        // `docker` by path works the same; a `docker` that is a script is run as given.
        let by_path = BuildxProgram::find_in(&bin.join("docker"), "", &config, &[&system]);
        assert_eq!(by_path.plugin, Some(extra.join("docker-buildx")));
        executable(&bin.join("docker"), false);
        assert_eq!(find().plugin, None, "a wrapper script decides what `docker buildx` does");
        assert_eq!(BuildxProgram::find_in(Path::new("docker"), "", &config, &[&system]).plugin, None, "no docker");
    }

    #[test]
    fn commands_drop_buildx_only_for_the_plugin() {
        let through = BuildxProgram::through("/usr/bin/docker");
        let args = ["buildx", "build", "."];
        assert_eq!(through.program_and_args(&args), (Path::new("/usr/bin/docker"), &args[..]));
        let direct = BuildxProgram { plugin: Some("/p/docker-buildx".into()), ..through };
        assert_eq!(direct.program_and_args(&args), (Path::new("/p/docker-buildx"), &args[1..]));
        // Anything else still goes through docker.
        let save = ["save", "x"];
        assert_eq!(direct.program_and_args(&save), (Path::new("/usr/bin/docker"), &save[..]));
    }

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
