//! commands: one file per subcommand, each wiring the stages of DESIGN.md in its own order.

pub mod binfmt_register;
pub mod build;
pub mod plan;

use std::path::PathBuf;

/// The `docker` executable archway runs (`ARCHWAY_DOCKER`, default `docker` on `PATH`).
pub fn docker_bin() -> PathBuf {
    std::env::var_os(crate::env::DOCKER_BIN).map(PathBuf::from).unwrap_or_else(|| "docker".into())
}
