//! commands: one file per subcommand, each wiring the stages of DESIGN.md in its own order.

pub mod binfmt_register;
pub mod build;
pub mod inspect;
pub mod merge;
pub mod plan;
pub mod promote;

use std::path::PathBuf;

use crate::error::UserError;
use crate::reference::Reference;
use crate::registry::{Credential, RegistryError};
use crate::secret::Secret;

/// The `docker` executable archway runs (`ARCHWAY_DOCKER`, default `docker` on `PATH`).
pub fn docker_bin() -> PathBuf {
    std::env::var_os(crate::env::DOCKER_BIN).map(PathBuf::from).unwrap_or_else(|| "docker".into())
}

pub(crate) fn push_check_error(repo: &Reference, e: RegistryError) -> UserError {
    let hint = match &e {
        RegistryError::Unreachable { .. } => format!(
            "check that `{}` is the right registry and is reachable from here; a plain-HTTP registry needs `--insecure-registry {}`",
            repo.registry, repo.registry
        ),
        RegistryError::Unauthorized { .. } | RegistryError::Denied { .. } => format!(
            "log in with `docker login {}`, or set `{}` and `{}`",
            repo.registry,
            crate::env::REGISTRY_USERNAME,
            crate::env::REGISTRY_PASSWORD
        ),
        _ => "nothing was built; fix the registry access and run again".into(),
    };
    UserError::failure(format!("cannot push to `{}`; nothing was built", repo.name())).hint(hint).caused_by(e)
}

/// `ARCHWAY_REGISTRY_USERNAME`/`_PASSWORD`, which apply to the registry being pushed to only.
pub(crate) fn explicit_credential(
    registry: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<(String, Credential)>, UserError> {
    use crate::env::{REGISTRY_PASSWORD, REGISTRY_USERNAME};
    let user = env(REGISTRY_USERNAME).filter(|s| !s.is_empty());
    let pass = env(REGISTRY_PASSWORD).filter(|s| !s.is_empty());
    let (user, pass) = match (user, pass) {
        (None, None) => return Ok(None),
        (Some(u), Some(p)) => (u, Secret::new(p)),
        (Some(_), None) => {
            return Err(UserError::input(format!("`{REGISTRY_USERNAME}` is set but `{REGISTRY_PASSWORD}` is not"))
                .hint("set both, or neither"));
        }
        (None, Some(_)) => {
            return Err(UserError::input(format!("`{REGISTRY_PASSWORD}` is set but `{REGISTRY_USERNAME}` is not"))
                .hint("set both, or neither"));
        }
    };
    Ok(registry.map(|r| (r.to_string(), Credential::Basic { username: user, password: pass })))
}
