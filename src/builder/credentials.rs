//! credentials: hands archway's registry credentials (every one its credential source holds
//! besides the Docker config's: `username`/`password`, `registry-auth`, the CI's own) to buildx,
//! which pulls base images and caches with them, without writing a secret to any file. buildx
//! runs with a private `DOCKER_CONFIG` whose `credHelpers` names `archway` for each of those
//! registries, and a `docker-credential-archway` on its `PATH` that is archway itself: invoked
//! under that name, archway answers the Docker credential-helper protocol from variables set only
//! in buildx's environment.

use std::io::{Read as _, Write as _};

use std::path::{Path, PathBuf};

use crate::inputs::Runner;
use crate::inputs::environment::{HelperCall, HelperCredential};
use crate::reference::docker_config_key;
use crate::registry::Credential;
use crate::secret::Secret;

/// The helper's name: `docker-credential-<HELPER>` on `PATH`, `"<HELPER>"` in `credHelpers`.
pub const HELPER: &str = "archway";
/// The variables that hand the credentials to the helper, set only in buildx's environment,
/// each with the credential's number as suffix (`ARCHWAY_CREDENTIAL_SERVER_0`, …).
pub const VAR_SERVER: &str = "ARCHWAY_CREDENTIAL_SERVER_";
pub const VAR_USERNAME: &str = "ARCHWAY_CREDENTIAL_USERNAME_";
pub const VAR_SECRET: &str = "ARCHWAY_CREDENTIAL_SECRET_";

/// Why the private Docker config for buildx could not be prepared. Names the registry and the
/// path involved, never the credential.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("cannot prepare a private Docker config for `{registry}` in `{}`", .path.display())]
    Write {
        registry: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the Docker config `{}` is not a JSON object", .path.display())]
    NotAnObject { path: PathBuf },
    #[error("`credHelpers` in the Docker config `{}` is not a JSON object", .path.display())]
    HelpersNotAnObject { path: PathBuf },
    #[error("cannot locate archway's own executable to serve as `docker-credential-{HELPER}`")]
    OwnExecutable(#[source] std::io::Error),
}

impl CredentialError {
    /// The one fix to suggest.
    pub fn hint(&self) -> String {
        match self {
            CredentialError::Write { .. } => "make the temporary directory (`TMPDIR`) writable".into(),
            CredentialError::NotAnObject { path } | CredentialError::HelpersNotAnObject { path } => {
                format!("fix `{}`, or point `DOCKER_CONFIG` at another directory", path.display())
            }
            CredentialError::OwnExecutable(_) => "run archway from a path it can read back (`/proc/self/exe`)".into(),
        }
    }
}

/// A private Docker config for buildx children; removed when dropped.
pub struct CredentialBridge {
    dir: tempfile::TempDir,
    /// `PATH` for buildx children: the helper's directory, then the runner's.
    path: std::ffi::OsString,
    /// (server as the Docker config keys it, username, secret), one per registry.
    entries: Vec<(String, String, Secret)>,
}

impl CredentialBridge {
    /// A private config for `credentials`' registries, copied from the runner's Docker config,
    /// with archway (the runner's `exe`) as the credential helper for each of them.
    pub fn new(credentials: &[(String, Credential)], runner: &Runner) -> Result<Self, CredentialError> {
        use std::os::unix::fs::PermissionsExt as _;
        let original = &runner.docker_config;
        let names: Vec<&str> = credentials.iter().map(|(r, _)| r.as_str()).collect();
        let registry = names.join(", ");
        let write = |path: &Path| {
            let (registry, path) = (registry.clone(), path.to_path_buf());
            move |source| CredentialError::Write { registry, path, source }
        };
        let dir = tempfile::Builder::new()
            .prefix("archway-docker-config-")
            .tempdir()
            .map_err(write(&tempfile::env::temp_dir()))?;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).map_err(write(dir.path()))?;
        let original_config = original.join("config.json");
        let mut cfg: serde_json::Value = std::fs::read(&original_config)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_else(|| serde_json::json!({}));
        let mut entries = Vec::new();
        for (registry, cred) in credentials {
            let server = docker_config_key(crate::reference::canonical_registry(registry)).to_string();
            cfg = with_helper(cfg, &server, &original_config)?;
            let (username, secret) = match cred {
                Credential::Basic { username, password } => (username.clone(), password.clone()),
                // The Docker convention for identity tokens.
                Credential::IdentityToken(t) => ("<token>".to_string(), t.clone()),
            };
            entries.push((server, username, secret));
        }
        let config = dir.path().join("config.json");
        std::fs::write(&config, cfg.to_string()).map_err(write(&config))?;
        // The user's builders, contexts and CLI plugins stay visible.
        for sub in ["buildx", "cli-plugins", "contexts"] {
            let from = original.join(sub);
            if from.exists() {
                let link = dir.path().join(sub);
                std::os::unix::fs::symlink(&from, &link).map_err(write(&link))?;
            }
        }
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).map_err(write(&bin))?;
        let me = runner.exe.as_ref().ok_or_else(|| {
            CredentialError::OwnExecutable(std::io::Error::other("the path of archway's executable is unknown"))
        })?;
        let helper = bin.join(format!("docker-credential-{HELPER}"));
        std::os::unix::fs::symlink(me, &helper).map_err(write(&helper))?;
        let mut paths = vec![bin.clone()];
        paths.extend(std::env::split_paths(&runner.path));
        let path = std::env::join_paths(paths).unwrap_or_else(|_| runner.path.clone().into());
        Ok(CredentialBridge { dir, path, entries })
    }

    /// Points a buildx child at the private config and gives it the helper's variables.
    pub fn apply(&self, cmd: &mut tokio::process::Command) {
        cmd.env(crate::env::DOCKER_CONFIG, self.dir.path()).env(crate::env::PATH, &self.path);
        for (n, (server, username, secret)) in self.entries.iter().enumerate() {
            cmd.env(format!("{VAR_SERVER}{n}"), server)
                .env(format!("{VAR_USERNAME}{n}"), username)
                .env(format!("{VAR_SECRET}{n}"), secret.expose());
        }
    }
}

/// The Docker config `cfg` (read from `path`) with archway as the credential helper for `server`.
fn with_helper(mut cfg: serde_json::Value, server: &str, path: &Path) -> Result<serde_json::Value, CredentialError> {
    let obj = cfg.as_object_mut().ok_or_else(|| CredentialError::NotAnObject { path: path.to_path_buf() })?;
    let helpers = obj.entry("credHelpers").or_insert_with(|| serde_json::json!({}));
    helpers
        .as_object_mut()
        .ok_or_else(|| CredentialError::HelpersNotAnObject { path: path.to_path_buf() })?
        .insert(server.to_string(), serde_json::json!(HELPER));
    Ok(cfg)
}

/// The Docker credential-helper protocol: `get` reads a server URL on stdin and answers JSON;
/// `store`, `erase` and `list` change nothing. Returns the exit code.
pub fn serve_helper(call: &HelperCall) -> u8 {
    let action = call.action.as_str();
    let mut input = String::new();
    let _ = std::io::stdin().read_to_string(&mut input);
    let mut out = std::io::stdout();
    match action {
        "get" => {
            let asked = input.trim();
            let found = call.credentials.iter().find(|c| crate::reference::same_registry(asked, &c.server));
            let Some(HelperCredential { username, secret, .. }) = found else {
                let _ = writeln!(out, "credentials not found in native keychain");
                return 1;
            };
            let answer = serde_json::json!({ "ServerURL": asked, "Username": username, "Secret": secret.expose() });
            let _ = writeln!(out, "{answer}");
            0
        }
        "list" => {
            let _ = writeln!(out, "{{}}");
            0
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helper_is_added_and_odd_configs_are_named() {
        let path = Path::new("/home/ci/.docker/config.json");
        let cfg = with_helper(serde_json::json!({"auths": {}}), "ghcr.io", path).unwrap();
        assert_eq!(cfg["credHelpers"]["ghcr.io"], HELPER);
        let e = with_helper(serde_json::json!([]), "ghcr.io", path).unwrap_err();
        assert_eq!(e.to_string(), "the Docker config `/home/ci/.docker/config.json` is not a JSON object");
        let e = with_helper(serde_json::json!({"credHelpers": "x"}), "ghcr.io", path).unwrap_err();
        assert_eq!(
            e.to_string(),
            "`credHelpers` in the Docker config `/home/ci/.docker/config.json` is not a JSON object"
        );
        assert_eq!(e.hint(), "fix `/home/ci/.docker/config.json`, or point `DOCKER_CONFIG` at another directory");
    }
}
