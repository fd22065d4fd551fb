//! publish: turns every platform's build into one multi-platform image and makes it visible.
//!
//! Reads each built result (from the registry or an OCI layout), builds the index (pure:
//! [`index_of`]), pushes it by digest, and only then puts the tags. Never called unless every
//! platform succeeded, so a tag never points at a partial image. [`merge`] does the same for
//! platforms that matrix legs pushed by digest.

pub mod merge;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use bytes::Bytes;

use crate::builder::Built;
use crate::error::UserError;
use crate::inputs::{BuildRequest, Output};
use crate::oci::{self, Descriptor, DescriptorPlatform, ImageConfig, ImageManifest, Index};
use crate::platform::Platform;
use crate::reference::{Digest, Reference};
use crate::registry::RegistryError;
use crate::registry::{Body, Client};
use crate::report::Log;
use futures_util::StreamExt as _;

/// Where the content of images can be read: the OCI layout a builder exported, or a
/// repository in a registry (for `merge`).
pub enum ImageSource<'a> {
    Layout(&'a Path),
    Registry {
        client: &'a Client,
        repo: &'a Reference,
        /// A manifest the caller has read already, so it is not fetched again.
        known: Option<&'a crate::registry::Manifest>,
    },
}

impl ImageSource<'_> {
    async fn manifest(&self, d: &Digest) -> anyhow::Result<Bytes> {
        match self {
            ImageSource::Layout(dir) => read_layout_blob(dir, d),
            ImageSource::Registry { known: Some(m), .. } if m.digest == *d => Ok(m.bytes.clone()),
            ImageSource::Registry { client, repo, .. } => {
                Ok(client.manifest_get(&repo.with_digest(d.clone())).await?.bytes)
            }
        }
    }
    async fn blob(&self, d: &Digest) -> anyhow::Result<Bytes> {
        match self {
            ImageSource::Layout(dir) => read_layout_blob(dir, d),
            ImageSource::Registry { client, repo, .. } => Ok(client.blob_get(repo, d).await?),
        }
    }
}

fn read_layout_blob(dir: &Path, d: &Digest) -> anyhow::Result<Bytes> {
    let path = dir.join("blobs/sha256").join(d.hex());
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    if Digest::of(&bytes) != *d {
        bail!("{} does not hash to its name", path.display());
    }
    Ok(bytes.into())
}

/// The platform an image manifest's config declares, and the image's size (config + layers).
async fn platform_of_manifest(src: &ImageSource<'_>, digest: &Digest) -> anyhow::Result<(DescriptorPlatform, u64)> {
    let bytes = src.manifest(digest).await?;
    let m: ImageManifest =
        serde_json::from_slice(&bytes).with_context(|| format!("manifest {digest} is not an image manifest"))?;
    let cfg = src.blob(&m.config.digest).await?;
    let c: ImageConfig =
        serde_json::from_slice(&cfg).with_context(|| format!("config {} is not an image config", m.config.digest))?;
    let size = m.config.size + m.layers.iter().map(|l| l.size).sum::<u64>();
    Ok((
        DescriptorPlatform {
            architecture: c.architecture,
            os: c.os,
            variant: c.variant.filter(|v| !v.is_empty()),
            os_version: None,
        },
        size,
    ))
}

/// One platform's contribution to the index.
#[derive(Debug, Clone)]
pub struct Entries {
    /// The image manifest first, then its attestation manifests.
    pub descriptors: Vec<Descriptor>,
    /// Config plus layers, compressed, as pushed.
    pub image_size: u64,
}

/// One image of a resolved manifest or index, with the platform its config declares.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    pub descriptor: Descriptor,
    pub platform: Platform,
    /// Config plus layers, compressed.
    pub image_size: u64,
    /// Attestation manifests that describe this image, kept as they were.
    pub attestations: Vec<Descriptor>,
}

/// Resolves what `top` names: an image manifest, or an index whose images (with `platform`
/// read from each config) and attestation manifests are flattened. Nested indexes are
/// flattened too.
pub async fn resolve(src: &ImageSource<'_>, top: &Descriptor) -> anyhow::Result<Vec<ResolvedImage>> {
    let mut images: Vec<Descriptor> = Vec::new();
    let mut attestations: Vec<Descriptor> = Vec::new();
    let mut pending = vec![top.clone()];
    while let Some(d) = pending.pop() {
        if oci::is_index(&d.media_type) {
            let bytes = src.manifest(&d.digest).await?;
            let idx: Index =
                serde_json::from_slice(&bytes).with_context(|| format!("index {} is unreadable", d.digest))?;
            for e in idx.manifests.into_iter().rev() {
                if e.is_attestation() {
                    attestations.push(e);
                } else {
                    pending.push(e);
                }
            }
        } else {
            images.push(d);
        }
    }
    let mut out = Vec::new();
    for image in images {
        let (from_config, image_size) = platform_of_manifest(src, &image.digest)
            .await
            .with_context(|| format!("reading the config of {}", image.digest))?;
        let platform = from_config.platform().with_context(|| {
            format!(
                "image {} names no known platform in its config (os `{}`, architecture `{}`)",
                image.digest, from_config.os, from_config.architecture
            )
        })?;
        let mine: Vec<Descriptor> = attestations
            .iter()
            .filter(|a| a.annotation(oci::ANN_REFERENCE_DIGEST) == Some(image.digest.as_str()))
            .cloned()
            .collect();
        let descriptor = image.with_platform(&platform);
        out.push(ResolvedImage { descriptor, platform, image_size, attestations: mine });
    }
    Ok(out)
}

/// The index entries one platform's build contributes: its image manifest with `platform`
/// filled from the config, then any attestation manifests buildx attached, as they were.
pub async fn entries_for(src: &ImageSource<'_>, built: &Built) -> anyhow::Result<Entries> {
    let want = &built.platform;
    let top = built.descriptor.bare();
    let mut images = resolve(src, &top).await.with_context(|| format!("{want}: reading the build's result"))?;
    if images.len() != 1 {
        bail!("{want}: the build produced {} images, expected exactly one", images.len());
    }
    let image = images.remove(0);
    if image.platform != *want {
        bail!("{want}: the image's config says it is {}; check the final stage's `FROM --platform`", image.platform);
    }
    let mut descriptors = vec![image.descriptor];
    descriptors.extend(image.attestations);
    Ok(Entries { descriptors, image_size: image.image_size })
}

/// Builds the index from every platform's entries (pure). An OCI index unless every child is
/// a Docker media type, then a Docker manifest list. Images first, in the order given, then
/// attestations, as `docker buildx imagetools create` lays them out.
pub fn index_of(per_platform: Vec<Vec<Descriptor>>, annotations: BTreeMap<String, String>) -> anyhow::Result<Index> {
    let mut images = Vec::new();
    let mut attestations = Vec::new();
    let mut seen: Vec<Platform> = Vec::new();
    for entries in per_platform {
        for e in entries {
            if e.is_attestation() {
                attestations.push(e);
                continue;
            }
            let p =
                e.platform.as_ref().and_then(DescriptorPlatform::platform).context("an image entry has no platform")?;
            if seen.contains(&p) {
                bail!("platform {p} appears twice; each platform may have one image");
            }
            seen.push(p);
            images.push(e);
        }
    }
    let manifests: Vec<Descriptor> = images.into_iter().chain(attestations).collect();
    let all_docker = !manifests.is_empty() && manifests.iter().all(|m| oci::is_docker_type(&m.media_type));
    Ok(Index {
        schema_version: 2,
        media_type: if all_docker { oci::DOCKER_LIST.into() } else { oci::OCI_INDEX.into() },
        manifests,
        annotations: if annotations.is_empty() || all_docker { None } else { Some(annotations) },
    })
}

/// What pushing one platform by digest transferred.
#[derive(Debug, Clone, Copy, Default)]
pub struct PushStats {
    pub blobs: usize,
    /// Blobs the registry did not have yet.
    pub uploaded: usize,
    pub bytes_uploaded: u64,
}

/// Blob uploads in flight at once for one image.
const BLOB_UPLOADS: usize = 4;

/// Pushes one image manifest from an OCI layout: the blobs the registry lacks, then the
/// manifest by digest.
async fn push_image(
    client: &Client,
    repo: &Reference,
    layout: &Path,
    d: &Descriptor,
    stats: &mut PushStats,
) -> anyhow::Result<()> {
    let bytes = read_layout_blob(layout, &d.digest)?;
    let m: ImageManifest =
        serde_json::from_slice(&bytes).with_context(|| format!("manifest {} is not an image manifest", d.digest))?;
    let blobs: Vec<&Descriptor> = std::iter::once(&m.config).chain(&m.layers).collect();
    let results: Vec<anyhow::Result<(bool, u64)>> = futures_util::stream::iter(blobs)
        .map(|b| async move {
            let path = layout.join("blobs/sha256").join(b.digest.hex());
            let uploaded = client.blob_put(repo, &b.digest, Body::File { path, len: b.size }).await?;
            Ok((uploaded, b.size))
        })
        .buffer_unordered(BLOB_UPLOADS)
        .collect()
        .await;
    for r in results {
        let (uploaded, size) = r?;
        stats.blobs += 1;
        if uploaded {
            stats.uploaded += 1;
            stats.bytes_uploaded += size;
        }
    }
    client.manifest_put(&repo.with_digest(d.digest.clone()), &bytes, &d.media_type).await?;
    Ok(())
}

/// Pushes one platform's result from its OCI layout to `repo` by digest, children before
/// the index that names them. Moves no tag.
pub async fn push_by_digest(
    client: &Client,
    repo: &Reference,
    layout: &Path,
    top: &Descriptor,
) -> anyhow::Result<PushStats> {
    let mut stats = PushStats::default();
    if oci::is_index(&top.media_type) {
        let bytes = read_layout_blob(layout, &top.digest)?;
        let idx: Index =
            serde_json::from_slice(&bytes).with_context(|| format!("index {} is unreadable", top.digest))?;
        for child in &idx.manifests {
            push_image(client, repo, layout, child, &mut stats).await?;
        }
        client.manifest_put(&repo.with_digest(top.digest.clone()), &bytes, &top.media_type).await?;
    } else {
        push_image(client, repo, layout, top, &mut stats).await?;
    }
    Ok(stats)
}

/// What `publish` made visible.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Published {
    /// The index's descriptor.
    pub index: Descriptor,
    /// Where it went: `registry/repo@digest`, or the layout directory.
    pub location: String,
    pub tags: Vec<String>,
}

/// Fails before anything is built when `repo` cannot be pushed to (an upload is opened and
/// cancelled): an unreachable registry or rejected credentials, with the fix.
pub async fn check_access(client: &Client, repo: &Reference) -> Result<(), UserError> {
    client.check_push(repo).await.map_err(|e| {
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
    })
}

/// What a build published: each platform with its index entries, and the index.
pub struct Outcome {
    pub platforms: Vec<(Built, Entries)>,
    pub published: Published,
}

/// Publishes every built platform where `req.output` says: the index by digest and then the
/// tags; a matrix leg's own result, by digest only; or an OCI layout.
pub async fn build_result(
    req: &BuildRequest,
    client: &Client,
    built: Vec<Built>,
    log: &Log,
) -> anyhow::Result<Outcome> {
    let mut platforms: Vec<(Built, Entries)> = Vec::new();
    for b in built {
        let e = entries_for(&ImageSource::Layout(&b.layout), &b).await?;
        platforms.push((b, e));
    }
    let index = index_of(platforms.iter().map(|(_, e)| e.descriptors.clone()).collect(), Default::default())?;
    let failed = |repo: &Reference| {
        let name = repo.name();
        move |e: anyhow::Error| {
            UserError::failure(format!("publishing to {name} failed")).caused_by(e.into_boxed_dyn_error())
        }
    };
    let published = match &req.output {
        // A matrix leg with one platform: its own result, as pushed, is what `merge` takes.
        Output::Digest { repo, .. } if platforms.len() == 1 => {
            let top = platforms[0].0.descriptor.bare();
            Published { location: repo.with_digest(top.digest.clone()).to_string(), index: top, tags: vec![] }
        }
        Output::Digest { repo, .. } => {
            log.line("==> pushing the multi-platform index by digest (no tag)");
            to_registry(client, repo, &index, &[]).await.map_err(failed(repo))?
        }
        Output::Registry { tags } => to_registry(client, &tags[0], &index, tags).await.map_err(failed(&tags[0]))?,
        Output::Layout { dir, names } => {
            let dirs: Vec<PathBuf> = platforms.iter().map(|(b, _)| b.layout.clone()).collect();
            to_layout(dir, &dirs, &index, names)?
        }
    };
    Ok(Outcome { platforms, published })
}

/// Pushes the index by digest to `repo`, then puts each tag. Called only after every
/// platform succeeded.
pub async fn to_registry(
    client: &Client,
    repo: &Reference,
    index: &Index,
    tags: &[Reference],
) -> anyhow::Result<Published> {
    let bytes = Bytes::from(index.to_bytes());
    let top = Descriptor::of(index.media_type.clone(), &bytes);
    client
        .manifest_put(&repo.with_digest(top.digest.clone()), &bytes, &index.media_type)
        .await
        .with_context(|| format!("pushing the index to {}", repo.name()))?;
    let mut moved = Vec::new();
    for t in tags {
        client.manifest_put(t, &bytes, &index.media_type).await.with_context(|| {
            if moved.is_empty() {
                format!("tagging {t}")
            } else {
                format!("tagging {t} (already tagged: {})", moved.join(", "))
            }
        })?;
        moved.push(t.to_string());
    }
    Ok(Published { location: repo.with_digest(top.digest.clone()).to_string(), index: top, tags: moved })
}

/// Writes the index into an OCI image layout at `out`, moving every platform's blobs from its
/// staging layout, and names it in `index.json` once per tag (`org.opencontainers.image.ref.name`).
pub fn to_layout(out: &Path, staging: &[PathBuf], index: &Index, tags: &[String]) -> anyhow::Result<Published> {
    let blobs = out.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).with_context(|| format!("creating {}", blobs.display()))?;
    for dir in staging {
        let from = dir.join("blobs/sha256");
        for entry in std::fs::read_dir(&from).with_context(|| format!("reading {}", from.display()))? {
            let entry = entry?;
            let dest = blobs.join(entry.file_name());
            if dest.exists() {
                continue;
            }
            std::fs::rename(entry.path(), &dest)
                .or_else(|_| std::fs::copy(entry.path(), &dest).map(|_| ()))
                .with_context(|| format!("moving {} into {}", entry.path().display(), blobs.display()))?;
        }
    }
    let bytes = index.to_bytes();
    let desc = Descriptor::of(index.media_type.clone(), &bytes);
    std::fs::write(blobs.join(desc.digest.hex()), &bytes)?;
    let refs: Vec<Descriptor> = if tags.is_empty() {
        vec![desc.clone()]
    } else {
        tags.iter().map(|t| desc.clone().with_annotation(oci::ANN_REF_NAME, t)).collect()
    };
    let top = Index { schema_version: 2, media_type: oci::OCI_INDEX.into(), manifests: refs, annotations: None };
    std::fs::write(out.join("oci-layout"), b"{\"imageLayoutVersion\":\"1.0.0\"}\n")?;
    // Written last: a layout whose index.json exists is complete.
    let tmp = out.join("index.json.tmp");
    std::fs::write(&tmp, top.to_bytes())?;
    std::fs::rename(&tmp, out.join("index.json"))?;
    Ok(Published { index: desc, location: out.display().to_string(), tags: tags.to_vec() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8, mt: &str, platform: Option<&str>) -> Descriptor {
        let d = Descriptor::new(mt, Digest::of(&[n]), 100 + n as u64);
        match platform {
            Some(p) => d.with_platform(&p.parse().unwrap()),
            None => d,
        }
    }

    fn attestation(n: u8, of: &Descriptor) -> Descriptor {
        Descriptor {
            platform: Some(DescriptorPlatform {
                architecture: "unknown".into(),
                os: "unknown".into(),
                variant: None,
                os_version: None,
            }),
            annotations: Some(BTreeMap::from([
                (oci::ANN_REFERENCE_DIGEST.into(), of.digest.to_string()),
                (oci::ANN_REFERENCE_TYPE.into(), oci::ATTESTATION_MANIFEST.into()),
            ])),
            ..d(n, oci::OCI_MANIFEST, None)
        }
    }

    #[test]
    fn docker_list_only_when_every_child_is_docker() {
        let idx = index_of(
            vec![
                vec![d(1, oci::DOCKER_MANIFEST, Some("linux/amd64"))],
                vec![d(2, oci::DOCKER_MANIFEST, Some("linux/arm64"))],
            ],
            BTreeMap::new(),
        )
        .unwrap();
        assert_eq!(idx.media_type, oci::DOCKER_LIST);
        let idx = index_of(
            vec![
                vec![d(1, oci::DOCKER_MANIFEST, Some("linux/amd64"))],
                vec![d(2, oci::OCI_MANIFEST, Some("linux/arm64"))],
            ],
            BTreeMap::new(),
        )
        .unwrap();
        assert_eq!(idx.media_type, oci::OCI_INDEX);
    }

    #[test]
    fn images_first_then_attestations_kept_verbatim() {
        let a = d(1, oci::OCI_MANIFEST, Some("linux/amd64"));
        let b = d(2, oci::OCI_MANIFEST, Some("linux/arm/v7"));
        let (aa, ba) = (attestation(3, &a), attestation(4, &b));
        let idx = index_of(vec![vec![a.clone(), aa.clone()], vec![b.clone(), ba.clone()]], BTreeMap::new()).unwrap();
        assert_eq!(idx.manifests, vec![a, b, aa, ba]);
        let json: serde_json::Value = serde_json::from_slice(&idx.to_bytes()).unwrap();
        assert_eq!(json["manifests"][1]["platform"]["variant"], "v7");
        assert_eq!(json["manifests"][2]["annotations"]["vnd.docker.reference.type"], "attestation-manifest");
        assert_eq!(json["mediaType"], oci::OCI_INDEX);
    }

    #[test]
    fn duplicate_platform_is_refused() {
        let e = index_of(
            vec![
                vec![d(1, oci::OCI_MANIFEST, Some("linux/arm64"))],
                vec![d(2, oci::OCI_MANIFEST, Some("linux/aarch64"))],
            ],
            BTreeMap::new(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("linux/arm64 appears twice"), "{e}");
    }
}
