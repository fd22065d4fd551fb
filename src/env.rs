//! Every environment variable archway reads, as one documented constant each.

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
/// Directory with `key.pem`, `cert.pem` and `ca.pem`; `~/.docker` when unset.
pub const DOCKER_CERT_PATH: &str = "DOCKER_CERT_PATH";
/// The Docker CLI context; ignored for builds on remote nodes.
pub const DOCKER_CONTEXT: &str = "DOCKER_CONTEXT";
/// The buildx builder to use; ignored for builds on remote nodes.
pub const BUILDX_BUILDER: &str = "BUILDX_BUILDER";
