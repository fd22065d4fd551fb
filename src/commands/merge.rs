//! `archway merge`: stitches platforms that matrix legs pushed by digest into one
//! multi-platform image. Starts at publish: resolves each source, rejects duplicate platforms,
//! builds the index (children that are indexes are flattened, attestations kept), pushes it by
//! digest, then tags. A missing leg moves no tag unless `--allow-partial`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;

use crate::cli::MergeArgs;
use crate::commands::{explicit_credential, push_check_error};
use crate::copy::{self, CopyStats};
use crate::error::UserError;
use crate::oci::Descriptor;
use crate::platform::{self, Platform};
use crate::publish::{self, ImageSource, ResolvedImage};
use crate::reference::{Digest, Reference};
use crate::registry::{Client, CredentialSource};
use crate::report::{self, Log};

/// One thing the user asked to merge, as named on the command line or in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leg {
    /// What the user gave (`REPO@sha256:…`, a file path).
    pub label: String,
    /// The image, or why it cannot be known (an empty digest file, …).
    pub reference: Result<Reference, String>,
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
            let mut files: Vec<_> = walk(path);
            files.sort();
            if files.is_empty() {
                out.push(Leg { label: s.clone(), reference: Err("the directory holds no digest file".into()) });
            }
            for f in files {
                let text = std::fs::read_to_string(&f).unwrap_or_default();
                out.push(Leg { label: f.display().to_string(), reference: parse_digest_text(&text, repo) });
            }
        } else if path.is_file() {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            out.push(Leg { label: s.clone(), reference: parse_digest_text(&text, repo) });
        } else if let Ok(d) = s.parse::<Digest>() {
            out.push(Leg { label: s.clone(), reference: Ok(repo.with_digest(d)) });
        } else if s.contains('@') {
            match s.parse::<Reference>() {
                Ok(r) => out.push(Leg { label: s.clone(), reference: Ok(r) }),
                Err(e) => {
                    return Err(UserError::input(format!("merge source: {e}"))
                        .hint("give `REPO@sha256:…`, a digest file, or a directory of digest files"));
                }
            }
        } else {
            // Not a reference, not an existing path: a digest file a failed leg never wrote.
            out.push(Leg { label: s.clone(), reference: Err("no such file or directory".into()) });
        }
    }
    Ok(out)
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else if p.is_file() {
                out.push(p);
            }
        }
    }
    out
}

fn parse_annotations(given: &[String]) -> Result<BTreeMap<String, String>, UserError> {
    let mut out = BTreeMap::new();
    for a in given {
        let (scope, kv) = match a.split_once(':') {
            Some((scope, kv)) if !scope.contains('=') => (scope, kv),
            _ => ("index", a.as_str()),
        };
        if scope != "index" {
            return Err(UserError::input(format!("`--annotation {a}`: only `index:` annotations are supported"))
                .hint("write it as `index:KEY=VALUE`"));
        }
        let (k, v) = kv.split_once('=').filter(|(k, _)| !k.is_empty()).ok_or_else(|| {
            UserError::input(format!("`--annotation {a}` has no `KEY=VALUE`")).hint("write it as `index:KEY=VALUE`")
        })?;
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

pub async fn run(args: &MergeArgs, log: Arc<Log>) -> anyhow::Result<String> {
    let mut tags: Vec<Reference> = Vec::new();
    for t in args.tags.iter().flat_map(|t| t.split([',', '\n'])).map(str::trim).filter(|t| !t.is_empty()) {
        let r: Reference = t.parse().map_err(|e| UserError::input(format!("`-t`: {e}")))?;
        if r.digest.is_some() || r.tag.is_none() {
            return Err(UserError::input(format!("`-t {t}` must name a tag"))
                .hint("e.g. `-t ghcr.io/acme/app:1.2`")
                .into());
        }
        tags.push(r);
    }
    let repo = Reference { tag: None, ..tags[0].clone() };
    if let Some(other) = tags.iter().find(|t| !t.same_repository(&repo)) {
        return Err(UserError::input(format!("tags name two repositories, `{}` and `{}`", repo.name(), other.name()))
            .hint("merge into one repository, then `archway promote` to the other")
            .into());
    }
    let expected: Vec<Platform> =
        platform::parse_list(&args.platforms.join(",")).map_err(|e| UserError::input(format!("`--platform`: {e}")))?;
    let annotations = parse_annotations(&args.annotations)?;
    let legs = legs(&args.sources, &repo)?;

    let explicit = explicit_credential(Some(&repo.registry), &|k| std::env::var(k).ok())?;
    let client =
        Client::new(CredentialSource { explicit, docker_config: true }, args.registry.insecure_registries.clone());
    log.line(&format!("==> checking push access to {}", repo.name()));
    client.check_push(&repo).await.map_err(|e| push_check_error(&repo, e))?;

    // Resolve every leg; a leg in another repository is copied in first.
    let mut missing: Vec<(String, String)> = Vec::new();
    let mut found: Vec<(String, ResolvedImage)> = Vec::new();
    let mut stats = CopyStats::default();
    for leg in &legs {
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
        let top = Descriptor {
            media_type: m.media_type.clone(),
            digest: m.digest.clone(),
            size: m.bytes.len() as u64,
            platform: None,
            annotations: None,
            artifact_type: None,
        };
        if !r.same_repository(&repo) {
            log.line(&format!("==> copying {r} into {}", repo.name()));
            copy::copy_manifest(&client, r, &repo, &top, &mut stats).await?;
        }
        let images = publish::resolve(&ImageSource::Registry { client: &client, repo: &repo, known: Some(&m) }, &top)
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
    for p in &expected {
        if !found.iter().any(|(_, f)| &f.platform == p) {
            missing.push((p.to_string(), "no leg provided it".into()));
        }
    }
    if found.is_empty() {
        return Err(UserError::failure("nothing to merge: no source could be read; no tag was moved").into());
    }
    if !missing.is_empty() && !args.allow_partial {
        let list: Vec<String> = missing.iter().map(|(l, why)| format!("  {l}: {why}")).collect();
        return Err(UserError::failure(format!(
            "{} missing; no tag was moved\n{}",
            plural(missing.len()),
            list.join("\n")
        ))
        .hint("rerun the failed legs, or publish what is there with `--allow-partial`")
        .into());
    }
    let per_platform: Vec<Vec<Descriptor>> = found
        .iter()
        .map(|(_, i)| std::iter::once(i.descriptor.clone()).chain(i.attestations.iter().cloned()).collect())
        .collect();
    let index = publish::assemble(per_platform, annotations)?;
    let published = publish::to_registry(&client, &repo, &index, &tags)
        .await
        .map_err(|e| UserError::failure(format!("publishing to {} failed", repo.name())).caused_by(e))?;

    let mut out = String::new();
    for (label, i) in &found {
        out.push_str(&format!(
            "{:<14} {}  {:>10}  from {label}\n",
            i.platform.to_string(),
            i.descriptor.digest,
            report::human_size(i.image_size)
        ));
    }
    out.push_str(&format!("index {} ({})\n", published.index.digest, published.index.media_type));
    for t in &published.tags {
        out.push_str(&format!("tagged {t}\n"));
    }
    if !missing.is_empty() {
        out.push_str(&format!(
            "PARTIAL: published without {} (--allow-partial)\n",
            missing.iter().map(|(l, why)| format!("{l} ({why})")).collect::<Vec<_>>().join(", ")
        ));
    }
    log.line("");
    log.line(out.trim_end());
    if let Some(path) = &args.metadata_file {
        let json = serde_json::json!({
            "location": published.location,
            "digest": published.index.digest,
            "mediaType": published.index.media_type,
            "tags": published.tags,
            "platforms": found.iter().map(|(l, i)| serde_json::json!({"platform": i.platform.to_string(), "digest": i.descriptor.digest, "source": l})).collect::<Vec<_>>(),
            "missing": missing.iter().map(|(l, why)| serde_json::json!({"source": l, "why": why})).collect::<Vec<_>>(),
        });
        std::fs::write(path, serde_json::to_vec_pretty(&json)?)
            .with_context(|| format!("writing `--metadata-file {}`", path.display()))?;
    }
    println!("{}", published.location);
    Ok(format!("published {} as {}", published.location, published.tags.join(", ")))
}

fn plural(n: usize) -> String {
    if n == 1 { "1 leg is".into() } else { format!("{n} legs are") }
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
    fn annotations_take_index_scope_only() {
        let a = parse_annotations(&["index:org.opencontainers.image.version=1.2".into(), "a=b".into()]).unwrap();
        assert_eq!(a["org.opencontainers.image.version"], "1.2");
        assert_eq!(a["a"], "b");
        assert!(parse_annotations(&["manifest:a=b".into()]).is_err());
        assert!(parse_annotations(&["index:=b".into()]).is_err());
    }
}
