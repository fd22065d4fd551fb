//! git_context: docker/build-push-action's default context on GitHub — the repository at the
//! workflow's commit, without `actions/checkout`.
//!
//! build-push-action builds `https://github.com/OWNER/REPO.git#SHA` when no `context` is given,
//! so a workflow that never checks out still builds. archway does the same when the workspace
//! holds no Dockerfile: it reads the commit's tarball through GitHub's REST API
//! (`GET /repos/OWNER/REPO/tarball/SHA`, with `github-token` — the same token build-push-action
//! gives BuildKit for it) into a temporary directory, and builds that, whatever the strategy.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt as _;
use tokio::io::AsyncWriteExt as _;

use crate::error::UserError;
use crate::secret::Secret;

/// GitHub's REST API, unless `GITHUB_API_URL` names another (GitHub Enterprise Server).
pub const DEFAULT_API: &str = "https://api.github.com";
/// The whole download, at most; a repository's tarball larger than that is not a build context
/// to fetch on every run.
const TIMEOUT: Duration = Duration::from_secs(600);

/// The commit to fetch.
#[derive(Debug, Clone)]
pub struct GitContext {
    /// `GITHUB_API_URL`.
    pub api: String,
    /// `OWNER/REPO`.
    pub repository: String,
    pub sha: String,
    /// `github-token`, else `GITHUB_TOKEN`; none for a public repository.
    pub token: Option<Secret>,
}

impl GitContext {
    /// How the log names it: `github.com/acme/app@0123abc` (as build-push-action's Git context).
    pub fn describe(&self) -> String {
        let short = &self.sha[..self.sha.len().min(12)];
        format!("{}@{short}", self.repository)
    }

    /// Downloads the tarball and unpacks it into `dir`; returns the directory that holds the
    /// repository's files (GitHub's tarball puts them under one `OWNER-REPO-SHA/` folder).
    pub async fn fetch(&self, dir: &Path) -> Result<PathBuf, UserError> {
        let url = format!("{}/repos/{}/tarball/{}", self.api.trim_end_matches('/'), self.repository, self.sha);
        let failed = |why: String| {
            UserError::failure(format!(
                "no checkout here, and the Git context {} could not be fetched from {url}: {why}",
                self.describe()
            ))
            .hint(
                "check out the repository first (`actions/checkout`), or give `github-token` a token that can read it \
                 (`permissions: contents: read`)",
            )
        };
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .user_agent(concat!("archway/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| failed(e.to_string()))?;
        let mut req = client.get(&url).header("Accept", "application/vnd.github+json");
        if let Some(t) = &self.token {
            // reqwest drops it when GitHub redirects to its download host.
            req = req.bearer_auth(t.expose());
        }
        let resp = req.send().await.map_err(|e| failed(crate::registry::error_chain(&e)))?;
        let status = resp.status();
        if !status.is_success() {
            let why = match status.as_u16() {
                401 | 403 => "the token was refused".to_string(),
                404 => "not found (a private repository needs a token that can read it)".to_string(),
                s => format!("HTTP {s}"),
            };
            return Err(failed(why));
        }
        let tarball = dir.join("context.tar.gz");
        let mut file = tokio::fs::File::create(&tarball).await.map_err(|e| failed(e.to_string()))?;
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| failed(crate::registry::error_chain(&e)))?;
            file.write_all(&chunk).await.map_err(|e| failed(e.to_string()))?;
        }
        file.flush().await.map_err(|e| failed(e.to_string()))?;
        drop(file);
        let into = dir.join("repository");
        let unpack = {
            let (tarball, into) = (tarball.clone(), into.clone());
            tokio::task::spawn_blocking(move || unpack(&tarball, &into))
        };
        let top = unpack.await.map_err(|e| failed(e.to_string()))?.map_err(|e| failed(format!("its tarball: {e}")))?;
        let _ = std::fs::remove_file(&tarball);
        Ok(top)
    }
}

/// Unpacks the gzip tarball into `into` (the tar crate keeps every entry inside it); the one
/// top-level folder, or `into` itself when there are several.
fn unpack(tarball: &Path, into: &Path) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(into)?;
    let f = std::io::BufReader::new(std::fs::File::open(tarball)?);
    let mut archive = tar::Archive::new(flate2::bufread::GzDecoder::new(f));
    archive.set_preserve_permissions(true);
    archive.set_overwrite(true);
    archive.unpack(into)?;
    let entries: Vec<PathBuf> = std::fs::read_dir(into)?.flatten().map(|e| e.path()).collect();
    Ok(match entries.as_slice() {
        [one] if one.is_dir() => one.clone(),
        _ => into.to_path_buf(),
    })
}

/// The source to build: `a` itself, or — when build-push-action's Git context applies (see
/// [`super::Invocation::git_context`]) — `a` pointing into the repository fetched at the
/// workflow's commit, which lives as long as the returned directory.
pub async fn resolve(
    inv: &super::Invocation,
    a: &crate::cli::SourceArgs,
    log: &crate::report::Log,
) -> Result<(crate::cli::SourceArgs, Option<tempfile::TempDir>), UserError> {
    let Some(g) = inv.git_context(a)? else {
        return Ok((a.clone(), None));
    };
    log.line(&format!(
        "==> no Dockerfile in the workspace (no checkout): building the Git context {}, as docker/build-push-action does",
        g.describe()
    ));
    let dir = tempfile::Builder::new()
        .prefix("archway-git-context-")
        .tempdir()
        .map_err(|e| UserError::failure("no temporary directory for the Git context").caused_by(e))?;
    let top = g.fetch(dir.path()).await?;
    let mut a = a.clone();
    a.file = inv.file_input(&a).map(|f| if f.is_relative() { top.join(f) } else { f });
    a.context = Some(top);
    Ok((a, Some(dir)))
}
