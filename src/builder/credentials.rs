//! credentials: hands archway's registry credential to buildx (which pulls base images with it)
//! without writing the secret to any file. buildx runs with a private `DOCKER_CONFIG` whose
//! `credHelpers` names `archway` for that one registry, and a `docker-credential-archway` on its
//! `PATH` that is archway itself: invoked under that name, archway answers the Docker
//! credential-helper protocol from variables set only in buildx's environment.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::reference::docker_config_key;
use crate::registry::Credential;
use crate::secret::Secret;

/// The helper's name: `docker-credential-<HELPER>` on `PATH`, `"<HELPER>"` in `credHelpers`.
pub const HELPER: &str = "archway";
const VAR_SERVER: &str = "ARCHWAY_CREDENTIAL_SERVER";
const VAR_USERNAME: &str = "ARCHWAY_CREDENTIAL_USERNAME";
const VAR_SECRET: &str = "ARCHWAY_CREDENTIAL_SECRET";

/// A private Docker config for buildx children; removed when dropped.
pub struct CredentialBridge {
    dir: tempfile::TempDir,
    server: String,
    username: String,
    secret: Secret,
}

impl CredentialBridge {
    pub fn new(registry: &str, cred: &Credential) -> anyhow::Result<Self> {
        use std::os::unix::fs::PermissionsExt as _;
        let original = std::env::var_os(crate::env::DOCKER_CONFIG)
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))
            .unwrap_or_else(|| PathBuf::from("/root/.docker"));
        let dir = tempfile::Builder::new().prefix("archway-docker-config-").tempdir()?;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))?;
        let mut cfg: serde_json::Value = std::fs::read(original.join("config.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_else(|| serde_json::json!({}));
        let server = docker_config_key(registry).to_string();
        let obj = cfg.as_object_mut().context("the Docker config is not a JSON object")?;
        let helpers = obj.entry("credHelpers").or_insert_with(|| serde_json::json!({}));
        helpers
            .as_object_mut()
            .context("`credHelpers` in the Docker config is not an object")?
            .insert(server.clone(), serde_json::json!(HELPER));
        std::fs::write(dir.path().join("config.json"), serde_json::to_vec(&cfg)?)?;
        // The user's builders, contexts and CLI plugins stay visible.
        for sub in ["buildx", "cli-plugins", "contexts"] {
            let from = original.join(sub);
            if from.exists() {
                std::os::unix::fs::symlink(&from, dir.path().join(sub))?;
            }
        }
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin)?;
        let me = std::env::current_exe().context("locating archway's own executable")?;
        std::os::unix::fs::symlink(me, bin.join(format!("docker-credential-{HELPER}")))?;
        let (username, secret) = match cred {
            Credential::Basic { username, password } => (username.clone(), password.clone()),
            // The Docker convention for identity tokens.
            Credential::IdentityToken(t) => ("<token>".to_string(), t.clone()),
        };
        Ok(CredentialBridge { dir, server, username, secret })
    }

    /// Points a buildx child at the private config and gives it the helper's variables.
    pub fn apply(&self, cmd: &mut tokio::process::Command) {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut paths = vec![self.dir.path().join("bin")];
        paths.extend(std::env::split_paths(&path));
        cmd.env(crate::env::DOCKER_CONFIG, self.dir.path())
            .env("PATH", std::env::join_paths(paths).unwrap_or(path))
            .env(VAR_SERVER, &self.server)
            .env(VAR_USERNAME, &self.username)
            .env(VAR_SECRET, self.secret.expose());
    }
}

/// Whether this process was started as the credential helper.
pub fn invoked_as_helper() -> bool {
    std::env::args_os()
        .next()
        .and_then(|a| Path::new(&a).file_name().map(|f| f.to_string_lossy().into_owned()))
        .is_some_and(|n| n == format!("docker-credential-{HELPER}"))
}

/// The Docker credential-helper protocol: `get` reads a server URL on stdin and answers JSON;
/// `store`, `erase` and `list` change nothing. Returns the exit code.
pub fn serve_helper() -> u8 {
    let action = std::env::args().nth(1).unwrap_or_default();
    let mut input = String::new();
    let _ = std::io::stdin().read_to_string(&mut input);
    let mut out = std::io::stdout();
    match action.as_str() {
        "get" => {
            let asked = input.trim();
            let (Ok(server), Ok(username), Ok(secret)) =
                (std::env::var(VAR_SERVER), std::env::var(VAR_USERNAME), std::env::var(VAR_SECRET))
            else {
                let _ = writeln!(out, "credentials not found in native keychain");
                return 1;
            };
            let norm = |s: &str| {
                s.trim_start_matches("https://").trim_start_matches("http://").trim_end_matches('/').to_string()
            };
            if norm(asked) != norm(&server) {
                let _ = writeln!(out, "credentials not found in native keychain");
                return 1;
            }
            let answer = serde_json::json!({ "ServerURL": asked, "Username": username, "Secret": secret });
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
