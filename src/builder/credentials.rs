//! credentials: hands archway's registry credential to buildx (which pulls base images with it)
//! without writing the secret to any file. buildx runs with a private `DOCKER_CONFIG` whose
//! `credHelpers` names `archway` for that one registry, and a `docker-credential-archway` on its
//! `PATH` that is archway itself: invoked under that name, archway answers the Docker
//! credential-helper protocol from variables set only in buildx's environment.

use std::io::{Read as _, Write as _};

use anyhow::Context as _;

use crate::inputs::Runner;
use crate::inputs::environment::{HelperCall, HelperCredential};
use crate::reference::docker_config_key;
use crate::registry::Credential;
use crate::secret::Secret;

/// The helper's name: `docker-credential-<HELPER>` on `PATH`, `"<HELPER>"` in `credHelpers`.
pub const HELPER: &str = "archway";
/// The variables that hand the credential to the helper, set only in buildx's environment.
pub const VAR_SERVER: &str = "ARCHWAY_CREDENTIAL_SERVER";
pub const VAR_USERNAME: &str = "ARCHWAY_CREDENTIAL_USERNAME";
pub const VAR_SECRET: &str = "ARCHWAY_CREDENTIAL_SECRET";

/// A private Docker config for buildx children; removed when dropped.
pub struct CredentialBridge {
    dir: tempfile::TempDir,
    /// `PATH` for buildx children: the helper's directory, then the runner's.
    path: std::ffi::OsString,
    server: String,
    username: String,
    secret: Secret,
}

impl CredentialBridge {
    /// A private config for `registry`, copied from the runner's Docker config, with archway
    /// (the runner's `exe`) as the credential helper for that registry.
    pub fn new(registry: &str, cred: &Credential, runner: &Runner) -> anyhow::Result<Self> {
        use std::os::unix::fs::PermissionsExt as _;
        let original = &runner.docker_config;
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
        let me = runner.exe.as_ref().context("locating archway's own executable")?;
        std::os::unix::fs::symlink(me, bin.join(format!("docker-credential-{HELPER}")))?;
        let mut paths = vec![bin.clone()];
        paths.extend(std::env::split_paths(&runner.path));
        let path = std::env::join_paths(paths).unwrap_or_else(|_| runner.path.clone().into());
        let (username, secret) = match cred {
            Credential::Basic { username, password } => (username.clone(), password.clone()),
            // The Docker convention for identity tokens.
            Credential::IdentityToken(t) => ("<token>".to_string(), t.clone()),
        };
        Ok(CredentialBridge { dir, path, server, username, secret })
    }

    /// Points a buildx child at the private config and gives it the helper's variables.
    pub fn apply(&self, cmd: &mut tokio::process::Command) {
        cmd.env(crate::env::DOCKER_CONFIG, self.dir.path())
            .env(crate::env::PATH, &self.path)
            .env(VAR_SERVER, &self.server)
            .env(VAR_USERNAME, &self.username)
            .env(VAR_SECRET, self.secret.expose());
    }
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
            let Some(HelperCredential { server, username, secret }) = &call.credential else {
                let _ = writeln!(out, "credentials not found in native keychain");
                return 1;
            };
            let norm = |s: &str| {
                s.trim_start_matches("https://").trim_start_matches("http://").trim_end_matches('/').to_string()
            };
            if norm(asked) != norm(server) {
                let _ = writeln!(out, "credentials not found in native keychain");
                return 1;
            }
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
