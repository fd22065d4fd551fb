//! merge: the publish stage for platforms that matrix legs pushed by digest. Turns what the user
//! named (references, digest files, directories of them) into legs, resolves each in the
//! registry (copying a leg from another repository in first), flattens children that are
//! indexes (attestations kept) and refuses a platform that two legs provide. A missing leg
//! fails the merge unless partial results are allowed.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::{ImageSource, ResolvedImage, resolve};
use crate::copy::{self, CopyStats};
use crate::error::UserError;
use crate::inputs::MergeRequest;
use crate::oci::Descriptor;
use crate::reference::{Digest, Reference};
use crate::registry::Client;
use crate::report::Log;

/// One thing the user asked to merge, as named on the command line or in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leg {
    /// What the user gave (`REPO@sha256:…`, a file path).
    pub label: String,
    /// The image, or why it cannot be known (an empty digest file, …).
    pub reference: Result<Reference, String>,
}

/// What the legs provided, and what is missing (label, why).
pub struct Gathered {
    pub found: Vec<(String, ResolvedImage)>,
    pub missing: Vec<(String, String)>,
}

impl Gathered {
    /// Each platform's index entries: its image, then its attestations.
    pub fn per_platform(&self) -> Vec<Vec<Descriptor>> {
        self.found
            .iter()
            .map(|(_, i)| std::iter::once(i.descriptor.clone()).chain(i.attestations.iter().cloned()).collect())
            .collect()
    }
}

/// Reads a digest file's first non-empty line: `sha256:…` (in `repo`) or `REPO@sha256:…`.
pub fn parse_digest_text(text: &str, repo: &Reference) -> Result<Reference, String> {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty()).ok_or("it is empty")?;
    if let Ok(d) = line.parse::<Digest>() {
        return Ok(repo.with_digest(d));
    }
    match line.parse::<Reference>() {
        Ok(r) if r.digest.is_some() => Ok(r),
        _ => Err(format!("`{line}` is neither `sha256:…` nor `REPO@sha256:…`")),
    }
}

/// Turns the sources given into legs: references, digest files, directories of digest files.
pub fn legs(sources: &[String], repo: &Reference) -> Result<Vec<Leg>, UserError> {
    let mut out = Vec::new();
    for s in sources {
        let path = Path::new(s);
        if path.is_dir() {
            let mut files = walk(path);
            files.sort();
            if files.is_empty() {
                out.push(Leg { label: s.clone(), reference: Err("the directory holds no digest file".into()) });
            }
            for f in files {
                out.push(Leg { label: f.display().to_string(), reference: read_digest_file(&f, repo) });
            }
        } else if path.is_file() {
            out.push(Leg { label: s.clone(), reference: read_digest_file(path, repo) });
        } else if let Ok(d) = s.parse::<Digest>() {
            out.push(Leg { label: s.clone(), reference: Ok(repo.with_digest(d)) });
        } else if s.contains('@') || (s.contains('/') && s.contains(':') && s.parse::<Reference>().is_ok()) {
            // `REPO@sha256:…`, or `REPO:TAG`: a leg pushed under a tag of its own.
            let r = crate::inputs::lists::reference("SOURCE", s)
                .map_err(|e| e.hint("give `REPO@sha256:…`, a digest file, or a directory of digest files"))?;
            out.push(Leg { label: s.clone(), reference: Ok(r) });
        } else {
            // Not a reference, not an existing path: a digest file a failed leg never wrote.
            out.push(Leg { label: s.clone(), reference: Err("no such file or directory".into()) });
        }
    }
    Ok(out)
}

fn read_digest_file(path: &Path, repo: &Reference) -> Result<Reference, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read it: {e}"))?;
    parse_digest_text(&text, repo)
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else if p.is_file() && !crate::files::is_unfinished(&p) {
                out.push(p);
            }
        }
    }
    out
}

/// Resolves every leg in `req.repo` (copying legs from other repositories in first). Fails
/// when nothing could be read, when two legs provide one platform, and — unless
/// `req.allow_partial` — when anything is missing; no tag has moved then.
pub async fn gather(client: &Client, req: &MergeRequest, legs: &[Leg], log: &Log) -> anyhow::Result<Gathered> {
    let repo = &req.repo;
    let mut missing: Vec<(String, String)> = Vec::new();
    let mut found: Vec<(String, ResolvedImage)> = Vec::new();
    let mut stats = CopyStats::default();
    for leg in legs {
        let r = match &leg.reference {
            Ok(r) => r,
            Err(why) => {
                missing.push((leg.label.clone(), why.clone()));
                continue;
            }
        };
        let m = match client.manifest_get(r).await {
            Ok(m) => m,
            Err(e) if e.is_not_found() => {
                missing.push((leg.label.clone(), format!("{r} does not exist")));
                continue;
            }
            Err(e) => return Err(anyhow::Error::new(e).context(format!("reading merge source `{}`", leg.label))),
        };
        let top = m.descriptor();
        if !r.same_repository(repo) {
            log.line(&format!("==> copying {r} into {}", repo.name()));
            copy::copy_manifest(client, r, repo, &top, &mut stats).await?;
        }
        let images = resolve(&ImageSource::Registry { client, repo, known: Some(&m) }, &top)
            .await
            .with_context(|| format!("resolving merge source `{}`", leg.label))?;
        for i in images {
            if let Some((other, _)) = found.iter().find(|(_, f)| f.platform == i.platform) {
                return Err(UserError::input(format!(
                    "{} appears twice: in `{other}` and in `{}`; each platform may come from one leg",
                    i.platform, leg.label
                ))
                .hint("drop one of the two sources")
                .into());
            }
            log.line(&format!("==> {}: {} from `{}`", i.platform, i.descriptor.digest, leg.label));
            found.push((leg.label.clone(), i));
        }
    }
    if stats.manifests > 0 {
        log.line(&stats.summary(&repo.name()));
    }
    for p in &req.expected {
        if !found.iter().any(|(_, f)| &f.platform == p) {
            missing.push((p.to_string(), "no leg provided it".into()));
        }
    }
    if found.is_empty() {
        let list: Vec<String> = missing.iter().map(|(l, why)| format!("  {l}: {why}")).collect();
        return Err(UserError::failure(format!(
            "nothing to merge: no source could be read; no tag was moved\n{}",
            list.join("\n")
        ))
        .hint("check the digest files the legs wrote, or name `REPO@sha256:…` sources")
        .into());
    }
    if !missing.is_empty() && !req.allow_partial {
        let list: Vec<String> = missing.iter().map(|(l, why)| format!("  {l}: {why}")).collect();
        let n = if missing.len() == 1 { "1 leg is".into() } else { format!("{} legs are", missing.len()) };
        return Err(UserError::failure(format!("{n} missing; no tag was moved\n{}", list.join("\n")))
            .hint("rerun the failed legs, or publish what is there with `--allow-partial`")
            .into());
    }
    Ok(Gathered { found, missing })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_files_and_references() {
        let repo: Reference = "127.0.0.1:5000/a/b".parse().unwrap();
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            parse_digest_text(&format!("\n{d}\n"), &repo).unwrap().to_string(),
            format!("127.0.0.1:5000/a/b@{d}")
        );
        assert_eq!(
            parse_digest_text(&format!("ghcr.io/x/y@{d}"), &repo).unwrap().to_string(),
            format!("ghcr.io/x/y@{d}")
        );
        assert!(parse_digest_text("", &repo).unwrap_err().contains("empty"));
        assert!(parse_digest_text("ghcr.io/x/y:1", &repo).is_err());
    }

    #[test]
    fn a_directory_of_legs_skips_what_a_killed_leg_left_unfinished() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("sub")).unwrap();
        for f in ["linux-amd64", "sub/linux-arm64", ".archway-linux-arm-v7-41-5.tmp", ".hidden"] {
            std::fs::write(t.path().join(f), "x").unwrap();
        }
        let mut found: Vec<String> =
            walk(t.path()).iter().map(|p| p.strip_prefix(t.path()).unwrap().display().to_string()).collect();
        found.sort();
        assert_eq!(found, [".hidden", "linux-amd64", "sub/linux-arm64"]);
    }
}
