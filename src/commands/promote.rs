//! `archway promote SRC DST…`: copies a multi-platform image to new tags without pulling it to
//! disk. Same repository: the index is fetched once and put under each tag. Another repository
//! on the same registry: blobs are mounted, children pushed by digest, then the index. Another
//! registry: blobs are streamed through, children first. `--platform` keeps a subset.

use std::sync::Arc;

use anyhow::Context as _;
use bytes::Bytes;

use crate::cli::PromoteArgs;
use crate::commands::{explicit_credential, push_check_error};
use crate::copy::{self, CopyStats};
use crate::error::UserError;
use crate::oci::{self, Descriptor, Index};
use crate::platform::{self, Platform};
use crate::reference::{Digest, Reference};
use crate::registry::{Client, CredentialSource};
use crate::report::Log;

/// Keeps the images of `keep` (and the attestations that describe them). Pure.
pub fn filter_index(index: &Index, keep: &[Platform]) -> (Index, Vec<Platform>) {
    let mut kept_digests = Vec::new();
    let mut dropped = Vec::new();
    for m in &index.manifests {
        if m.is_attestation() {
            continue;
        }
        match m.platform.as_ref().and_then(|p| p.platform()) {
            Some(p) if keep.contains(&p) => kept_digests.push(m.digest.clone()),
            Some(p) => dropped.push(p),
            None => {}
        }
    }
    let manifests = index
        .manifests
        .iter()
        .filter(|m| {
            if m.is_attestation() {
                m.annotation(oci::ANN_REFERENCE_DIGEST).is_some_and(|d| kept_digests.iter().any(|k| k.as_str() == d))
            } else {
                kept_digests.contains(&m.digest)
            }
        })
        .cloned()
        .collect();
    (Index { manifests, ..index.clone() }, dropped)
}

pub async fn run(args: &PromoteArgs, log: Arc<Log>) -> anyhow::Result<String> {
    let src: Reference = args.source.parse().map_err(|e| UserError::input(format!("SRC: {e}")))?;
    let mut dsts: Vec<Reference> = Vec::new();
    for d in &args.destinations {
        let r: Reference = d.parse().map_err(|e| UserError::input(format!("DST: {e}")))?;
        if r.tag.is_none() || r.digest.is_some() {
            return Err(UserError::input(format!("DST `{d}` must name a tag"))
                .hint("e.g. `ghcr.io/acme/app:1.2`")
                .into());
        }
        dsts.push(r);
    }
    let keep =
        platform::parse_list(&args.platforms.join(",")).map_err(|e| UserError::input(format!("`--platform`: {e}")))?;
    // ARCHWAY_REGISTRY_* apply to the destination registry (the one written to).
    let explicit = explicit_credential(Some(&dsts[0].registry), &|k| std::env::var(k).ok())?;
    let client =
        Client::new(CredentialSource { explicit, docker_config: true }, args.registry.insecure_registries.clone());

    let m = client.manifest_get(&src).await.with_context(|| format!("reading {src}"))?;
    let (bytes, media_type) = if keep.is_empty() {
        (m.bytes.clone(), m.media_type.clone())
    } else {
        if !oci::is_index(&m.media_type) {
            return Err(UserError::input(format!(
                "`--platform` needs a multi-platform image, and {src} is a single image"
            ))
            .into());
        }
        let idx: Index = serde_json::from_slice(&m.bytes).with_context(|| format!("{src} is not a readable index"))?;
        let (filtered, dropped) = filter_index(&idx, &keep);
        if let Some(p) = keep.iter().find(|p| {
            !filtered.manifests.iter().any(|m| m.platform.as_ref().and_then(|x| x.platform()).as_ref() == Some(p))
        }) {
            return Err(UserError::input(format!("{src} has no {p} image"))
                .hint("`archway inspect` lists its platforms")
                .into());
        }
        log.line(&format!(
            "==> keeping {} of {src}; dropping {} (the index is rewritten, so its digest changes)",
            keep.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", "),
            dropped.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", ")
        ));
        (Bytes::from(filtered.to_bytes()), filtered.media_type.clone())
    };
    let digest = Digest::of(&bytes);
    let top = Descriptor {
        media_type: media_type.clone(),
        digest: digest.clone(),
        size: bytes.len() as u64,
        platform: None,
        annotations: None,
        artifact_type: None,
    };

    // Children first, into each repository that does not have them; tags last.
    let mut done: Vec<Reference> = Vec::new();
    for dst in &dsts {
        let repo = Reference { tag: None, digest: None, ..dst.clone() };
        if done.iter().any(|r| r.same_repository(&repo)) || (src.same_repository(&repo) && keep.is_empty()) {
            continue;
        }
        client.check_push(&repo).await.map_err(|e| push_check_error(&repo, e))?;
        let mut stats = CopyStats::default();
        if oci::is_index(&media_type) {
            let idx: Index = serde_json::from_slice(&bytes)?;
            for child in &idx.manifests {
                copy::copy_manifest(&client, &src, &repo, child, &mut stats).await?;
            }
            client.manifest_put(&repo.with_digest(digest.clone()), &bytes, &media_type).await?;
        } else {
            copy::copy_manifest(&client, &src, &repo, &top, &mut stats).await?;
        }
        log.line(&format!(
            "==> copied into {}: {} manifests, {} blobs mounted, {} uploaded, {} already there",
            repo.name(),
            stats.manifests,
            stats.blobs_mounted,
            stats.blobs_uploaded,
            stats.blobs_present
        ));
        done.push(repo);
    }
    for dst in &dsts {
        client.manifest_put(dst, &bytes, &media_type).await.with_context(|| format!("tagging {dst}"))?;
        log.line(&format!("tagged {dst}"));
    }
    println!("{}", Reference { tag: None, ..dsts[0].clone() }.with_digest(digest.clone()));
    Ok(format!("promoted {src} ({digest}) to {}", dsts.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn filter_keeps_platforms_and_their_attestations() {
        let img = |n: u8, p: &str| Descriptor {
            media_type: oci::OCI_MANIFEST.into(),
            digest: Digest::of(&[n]),
            size: 1,
            platform: Some((&p.parse::<Platform>().unwrap()).into()),
            annotations: None,
            artifact_type: None,
        };
        let att = |n: u8, of: &Descriptor| Descriptor {
            platform: None,
            annotations: Some(BTreeMap::from([
                (oci::ANN_REFERENCE_TYPE.to_string(), oci::ATTESTATION_MANIFEST.to_string()),
                (oci::ANN_REFERENCE_DIGEST.to_string(), of.digest.to_string()),
            ])),
            ..img(n, "linux/amd64")
        };
        let (a, b) = (img(1, "linux/amd64"), img(2, "linux/arm64"));
        let idx = Index {
            schema_version: 2,
            media_type: oci::OCI_INDEX.into(),
            manifests: vec![a.clone(), b.clone(), att(3, &a), att(4, &b)],
            annotations: None,
        };
        let (f, dropped) = filter_index(&idx, &["linux/arm64".parse().unwrap()]);
        assert_eq!(f.manifests, vec![b.clone(), att(4, &b)]);
        assert_eq!(dropped, vec!["linux/amd64".parse::<Platform>().unwrap()]);
    }
}
