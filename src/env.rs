//! Every environment variable archway reads outside the CI layer (whose variables are in
//! `ci::vars`), as one documented constant each. Only `inputs` reads them.

/// Username for the registry archway pushes to; overrides `~/.docker/config.json` for that registry.
pub const REGISTRY_USERNAME: &str = "ARCHWAY_REGISTRY_USERNAME";
/// Password or token for the registry archway pushes to. Never printed.
pub const REGISTRY_PASSWORD: &str = "ARCHWAY_REGISTRY_PASSWORD";
/// Docker CLI configuration directory (credentials, buildx state); default `~/.docker`.
pub const DOCKER_CONFIG: &str = "DOCKER_CONFIG";
/// The `docker` executable archway runs for buildx; default `docker` on `PATH`.
pub const DOCKER_BIN: &str = "ARCHWAY_DOCKER";
/// Log filter for archway's own diagnostics (`tracing` syntax, e.g. `archway=debug`).
pub const LOG: &str = "ARCHWAY_LOG";
/// The engine to talk to; `unix:///var/run/docker.sock` when unset.
pub const DOCKER_HOST: &str = "DOCKER_HOST";
/// Non-empty: talk TLS to a `tcp://` engine, verifying it with the certificates below.
pub const DOCKER_TLS_VERIFY: &str = "DOCKER_TLS_VERIFY";
/// Non-empty: the Docker CLI talks TLS to the engine without verifying it.
pub const DOCKER_TLS: &str = "DOCKER_TLS";
/// Directory with `key.pem`, `cert.pem` and `ca.pem`; `~/.docker` when unset.
pub const DOCKER_CERT_PATH: &str = "DOCKER_CERT_PATH";
/// The Docker CLI context; ignored for builds on remote nodes.
pub const DOCKER_CONTEXT: &str = "DOCKER_CONTEXT";
/// The buildx builder to use; ignored for builds on remote nodes.
pub const BUILDX_BUILDER: &str = "BUILDX_BUILDER";
/// Seconds since the epoch for the `created` time of assembled images and the files they add
/// (reproducible builds); 0 when unset, so the same inputs give the same digest.
pub const SOURCE_DATE_EPOCH: &str = "SOURCE_DATE_EPOCH";
/// The user's home directory: `~/.docker` when `DOCKER_CONFIG` is unset.
pub const HOME: &str = "HOME";
/// The SSH agent's socket, which `ssh default` forwards to RUN steps.
pub const SSH_AUTH_SOCK: &str = "SSH_AUTH_SOCK";
/// Where buildx children find programs; archway puts its credential helper first.
pub const PATH: &str = "PATH";
/// Set (non-empty): no colours in the terminal view (<https://no-color.org>).
pub const NO_COLOR: &str = "NO_COLOR";
/// Set by most CI services (`true`): `--progress auto` then writes plain lines.
pub const CI: &str = "CI";

/// The variables above that a user sets, with their descriptions, for `--help`.
pub const DOCUMENTED: &[(&str, &str)] = &[
    (REGISTRY_USERNAME, "username for the registry pushed to (overrides the Docker config for it)"),
    (REGISTRY_PASSWORD, "password or token for the registry pushed to; never printed"),
    (DOCKER_CONFIG, "Docker CLI configuration directory (credentials, buildx state); default `~/.docker`"),
    (DOCKER_BIN, "the `docker` executable archway runs for buildx; default `docker` on `PATH`"),
    (DOCKER_HOST, "the engine to talk to; default `unix:///var/run/docker.sock`"),
    (DOCKER_TLS_VERIFY, "non-empty: TLS to a `tcp://` engine, verified with `DOCKER_CERT_PATH`"),
    (DOCKER_CERT_PATH, "directory with `key.pem`, `cert.pem`, `ca.pem`; default `~/.docker`"),
    (LOG, "archway's own diagnostics, e.g. `archway=debug`"),
    (SOURCE_DATE_EPOCH, "seconds since the epoch for the `created` time of assembled images; default 0"),
    (SSH_AUTH_SOCK, "the SSH agent's socket, forwarded to RUN steps by `--ssh default`"),
];
