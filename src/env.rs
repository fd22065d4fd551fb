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
