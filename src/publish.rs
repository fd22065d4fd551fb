//! publish: turns every platform's build into one multi-platform image and makes it visible.
//!
//! Reads each built result (from the registry or an OCI layout), builds the index (pure:
//! [`index_of`]), pushes it by digest, and only then puts the tags. Never called unless every
//! platform succeeded, so a tag never points at a partial image. [`merge`] does the same for
//! platforms that matrix legs pushed by digest.

pub mod early;
pub mod layout;
pub mod local;
pub mod merge;
pub mod rootfs;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::builder::Built;
use crate::error::UserError;
use crate::inputs::{BuildRequest, Output};
use crate::oci::{self, Descriptor, DescriptorPlatform, ImageConfig, ImageManifest, Index};
use crate::platform::Platform;
use crate::reference::{Digest, Reference};
use crate::registry::{Body, Client, RegistryError};
use crate::report::Log;
use futures_util::StreamExt as _;

/// Why an image could not be read, assembled or published. Each names the reference, digest,
/// path or platform involved; a registry's or the file system's own error is the source.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("cannot read `{}`", .path.display())]
    ReadLayout {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{}` does not hash to its name; the OCI layout is damaged", .path.display())]
    LayoutDigest { path: PathBuf },
    #[error("cannot write `{}`", .path.display())]
    WriteLayout {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `what`: `manifest` or `blob`; `reference`: `registry/repository@digest`.
    #[error("cannot read {what} `{reference}`")]
    Read {
        what: &'static str,
        reference: String,
        #[source]
        source: RegistryError,
    },
    /// `what`: `an image manifest`, `an image config` or `an index`.
    #[error("`{digest}` is not {what}")]
    Malformed {
        digest: Digest,
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("image `{digest}` names no known platform in its config (os `{os}`, architecture `{architecture}`)")]
    UnknownPlatform { digest: Digest, os: String, architecture: String },
    #[error("{platform}: cannot read the build's result")]
    BuildResult {
        platform: Platform,
        #[source]
        source: Box<PublishError>,
    },
    #[error("{platform}: the build produced {count} images, expected exactly one")]
    ImageCount { platform: Platform, count: usize },
    #[error("{platform}: the image's config says it is {found}")]
    WrongPlatform { platform: Platform, found: Platform },
    #[error("index entry `{digest}` is an image without a platform")]
    NoPlatform { digest: Digest },
    #[error("platform {platform} appears twice; each platform may have one image")]
    DuplicatePlatform { platform: Platform },
    /// `what`: `blob`, `manifest` or `index`; `reference`: `registry/repository@digest`.
    #[error("cannot push {what} `{reference}`")]
    Push {
        what: &'static str,
        reference: String,
        #[source]
        source: RegistryError,
    },
    /// `moved`: the tags put before this one failed; they now point at the new index.
    #[error("cannot tag `{tag}`{}", moved_suffix(.moved))]
    Tag {
        tag: String,
        moved: Vec<String>,
        #[source]
        source: RegistryError,
    },
}

fn moved_suffix(moved: &[String]) -> String {
    if moved.is_empty() {
        return String::new();
    }
    let list: Vec<String> = moved.iter().map(|t| format!("`{t}`")).collect();
    format!(" (already tagged: {})", list.join(", "))
}

impl PublishError {
    /// The one fix to suggest, where the error implies one.
    pub fn hint(&self) -> Option<String> {
        match self {
            PublishError::BuildResult { source, .. } => source.hint(),
            PublishError::WrongPlatform { .. } => {
                Some("check the final stage's `FROM --platform`; it should be `$TARGETPLATFORM` or absent".into())
            }
            PublishError::DuplicatePlatform { .. } => Some("build or merge each platform once".into()),
            PublishError::Push { source, .. }
            | PublishError::Tag { source, .. }
            | PublishError::Read { source, .. } => source.hint(),
            _ => None,
        }
    }
}

fn malformed(digest: &Digest, what: &'static str) -> impl FnOnce(serde_json::Error) -> PublishError {
    let digest = digest.clone();
    move |source| PublishError::Malformed { digest, what, source }
}

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
    async fn manifest(&self, d: &Digest) -> Result<Bytes, PublishError> {
        match self {
            ImageSource::Layout(dir) => read_layout_blob(dir, d),
            ImageSource::Registry { known: Some(m), .. } if m.digest == *d => Ok(m.bytes.clone()),
            ImageSource::Registry { client, repo, .. } => {
                let reference = repo.with_digest(d.clone());
                match client.manifest_get(&reference).await {
                    Ok(m) => Ok(m.bytes),
                    Err(source) => {
                        Err(PublishError::Read { what: "manifest", reference: reference.to_string(), source })
                    }
                }
            }
        }
    }
    async fn blob(&self, d: &Digest) -> Result<Bytes, PublishError> {
        match self {
            ImageSource::Layout(dir) => read_layout_blob(dir, d),
            ImageSource::Registry { client, repo, .. } => client.blob_get(repo, d).await.map_err(|source| {
                PublishError::Read { what: "blob", reference: repo.with_digest(d.clone()).to_string(), source }
            }),
        }
    }
}

fn read_layout_blob(dir: &Path, d: &Digest) -> Result<Bytes, PublishError> {
    let path = dir.join("blobs/sha256").join(d.hex());
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(source) => return Err(PublishError::ReadLayout { path, source }),
    };
    if Digest::of(&bytes) != *d {
        return Err(PublishError::LayoutDigest { path });
    }
    Ok(bytes.into())
}

/// The platform an image manifest's config declares, and the image's size (config + layers).
async fn platform_of_manifest(
    src: &ImageSource<'_>,
    digest: &Digest,
) -> Result<(DescriptorPlatform, u64), PublishError> {
    let bytes = src.manifest(digest).await?;
    let m: ImageManifest = serde_json::from_slice(&bytes).map_err(malformed(digest, "an image manifest"))?;
    let cfg = src.blob(&m.config.digest).await?;
    let c: ImageConfig = serde_json::from_slice(&cfg).map_err(malformed(&m.config.digest, "an image config"))?;
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
pub async fn resolve(src: &ImageSource<'_>, top: &Descriptor) -> Result<Vec<ResolvedImage>, PublishError> {
    let mut images: Vec<Descriptor> = Vec::new();
    let mut attestations: Vec<Descriptor> = Vec::new();
    let mut pending = vec![top.clone()];
    // Each index is read once: one named again (a diamond, or a hostile index naming another
    // many times over) adds nothing, and reading it again made the work exponential in the
    // nesting depth (found by the `oci_layout` fuzz target).
    let mut expanded = std::collections::HashSet::new();
    while let Some(d) = pending.pop() {
        if oci::is_index(&d.media_type) {
            if !expanded.insert(d.digest.clone()) {
                continue;
            }
            let bytes = src.manifest(&d.digest).await?;
            let idx: Index = serde_json::from_slice(&bytes).map_err(malformed(&d.digest, "an index"))?;
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
        let (from_config, image_size) = platform_of_manifest(src, &image.digest).await?;
        let Some(platform) = from_config.platform() else {
            return Err(PublishError::UnknownPlatform {
                digest: image.digest,
                os: from_config.os,
                architecture: from_config.architecture,
            });
        };
        let mine: Vec<Descriptor> = attestations.iter().filter(|a| a.attests(&image.digest)).cloned().collect();
        let descriptor = image.with_platform(&platform);
        out.push(ResolvedImage { descriptor, platform, image_size, attestations: mine });
    }
    Ok(out)
}

/// The index entries one platform's build contributes: its image manifest with `platform`
/// filled from the config, then any attestation manifests buildx attached, as they were.
pub async fn entries_for(src: &ImageSource<'_>, built: &Built) -> Result<Entries, PublishError> {
    let want = &built.platform;
    let top = built.descriptor.bare();
    let images = resolve(src, &top)
        .await
        .map_err(|e| PublishError::BuildResult { platform: want.clone(), source: Box::new(e) })?;
    let image = match <[ResolvedImage; 1]>::try_from(images) {
        Ok([image]) => image,
        Err(images) => return Err(PublishError::ImageCount { platform: want.clone(), count: images.len() }),
    };
    if image.platform != *want {
        return Err(PublishError::WrongPlatform { platform: want.clone(), found: image.platform });
    }
    let mut descriptors = vec![image.descriptor];
    descriptors.extend(image.attestations);
    Ok(Entries { descriptors, image_size: image.image_size })
}

/// Builds the index from every platform's entries (pure). An OCI index unless every child is
/// a Docker media type, then a Docker manifest list. Images first, in the order given, then
/// attestations, as `docker buildx imagetools create` lays them out.
pub fn index_of(
    per_platform: Vec<Vec<Descriptor>>,
    annotations: BTreeMap<String, String>,
) -> Result<Index, PublishError> {
    let mut images = Vec::new();
    let mut attestations = Vec::new();
    let mut seen: Vec<Platform> = Vec::new();
    for entries in per_platform {
        for e in entries {
            if e.is_attestation() {
                attestations.push(e);
                continue;
            }
            let Some(p) = e.platform.as_ref().and_then(DescriptorPlatform::platform) else {
                return Err(PublishError::NoPlatform { digest: e.digest });
            };
            if seen.contains(&p) {
                return Err(PublishError::DuplicatePlatform { platform: p });
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
    /// Of those, uploaded while the build was still exporting (counted in both).
    pub early: usize,
    pub bytes_early: u64,
}

/// Reports a push's progress: bytes of blobs done (uploaded, mounted or found) and the total
/// known so far, after each blob.
pub type OnBytes<'a> = &'a (dyn Fn(u64, u64) + Sync);

/// Counts a push's bytes for [`OnBytes`].
struct Counter<'a> {
    done: std::sync::atomic::AtomicU64,
    total: std::sync::atomic::AtomicU64,
    report: OnBytes<'a>,
}

impl Counter<'_> {
    fn add(&self, done: u64, total: u64) {
        use std::sync::atomic::Ordering::SeqCst;
        let t = self.total.fetch_add(total, SeqCst) + total;
        let d = self.done.fetch_add(done, SeqCst) + done;
        (self.report)(d, t);
    }
}

/// Blob uploads in flight at once for one image.
const BLOB_UPLOADS: usize = 4;

/// Pushes one image manifest from an OCI layout: the blobs the registry lacks, then the
/// manifest by digest.
/// Where a push finds each blob: the layout, a repository to mount it from, or the registry
/// already (uploaded while the build exported).
struct BlobSources<'a> {
    layout: &'a Path,
    mounts: &'a [(Digest, Reference)],
    early: &'a HashMap<Digest, u64>,
}

async fn push_image(
    client: &Client,
    repo: &Reference,
    d: &Descriptor,
    sources: &BlobSources<'_>,
    stats: &mut PushStats,
    counter: &Counter<'_>,
) -> Result<(), PublishError> {
    let BlobSources { layout, mounts, early } = *sources;
    let bytes = read_layout_blob(layout, &d.digest)?;
    let m: ImageManifest = serde_json::from_slice(&bytes).map_err(malformed(&d.digest, "an image manifest"))?;
    let blobs: Vec<&Descriptor> = std::iter::once(&m.config).chain(&m.layers).collect();
    counter.add(0, blobs.iter().map(|b| b.size).sum());
    let results: Vec<Result<(bool, bool, u64), PublishError>> = futures_util::stream::iter(blobs)
        .map(|b| async move {
            let path = layout.join("blobs/sha256").join(b.digest.hex());
            let from = mounts.iter().find(|(d, _)| *d == b.digest).map(|(_, r)| r);
            match client.blob_put_from(repo, &b.digest, Body::File { path, len: b.size }, from).await {
                Ok(pushed) => {
                    counter.add(b.size, 0);
                    // Uploaded here, or while the build was still exporting (`early`).
                    let before = pushed != crate::registry::BlobPush::Uploaded && early.contains_key(&b.digest);
                    Ok((pushed == crate::registry::BlobPush::Uploaded || before, before, b.size))
                }
                Err(source) => Err(push_error("blob", repo, &b.digest, source)),
            }
        })
        .buffer_unordered(BLOB_UPLOADS)
        .collect()
        .await;
    for r in results {
        let (uploaded, before, size) = r?;
        stats.blobs += 1;
        if uploaded {
            stats.uploaded += 1;
            stats.bytes_uploaded += size;
        }
        if before {
            stats.early += 1;
            stats.bytes_early += size;
        }
    }
    put_manifest(client, repo, &d.digest, &bytes, &d.media_type, "manifest").await
}

fn push_error(what: &'static str, repo: &Reference, digest: &Digest, source: RegistryError) -> PublishError {
    PublishError::Push { what, reference: repo.with_digest(digest.clone()).to_string(), source }
}

/// Puts `bytes` as `repo@digest`.
async fn put_manifest(
    client: &Client,
    repo: &Reference,
    digest: &Digest,
    bytes: &Bytes,
    media_type: &str,
    what: &'static str,
) -> Result<(), PublishError> {
    match client.manifest_put(&repo.with_digest(digest.clone()), bytes, media_type).await {
        Ok(_) => Ok(()),
        Err(source) => Err(push_error(what, repo, digest, source)),
    }
}

/// Pushes one platform's result from its OCI layout to `repo` by digest, children (at once)
/// before the index that names them. Moves no tag.
///
/// A blob named in `mounts` is mounted from the repository given there (same registry) when
/// `repo` lacks it; the layout need not hold it. `early`: blobs [`early::upload_as_they_appear`]
/// uploaded already, counted as uploaded by this push.
pub async fn push_by_digest(
    client: &Client,
    repo: &Reference,
    layout: &Path,
    top: &Descriptor,
    mounts: &[(Digest, Reference)],
    early: &HashMap<Digest, u64>,
    on_bytes: OnBytes<'_>,
) -> Result<PushStats, PublishError> {
    let mut stats = PushStats::default();
    let counter = Counter { done: 0.into(), total: 0.into(), report: on_bytes };
    let counter = &counter;
    let sources = &BlobSources { layout, mounts, early };
    if oci::is_index(&top.media_type) {
        let bytes = read_layout_blob(layout, &top.digest)?;
        let idx: Index = serde_json::from_slice(&bytes).map_err(malformed(&top.digest, "an index"))?;
        // The image and its attestations share nothing but the index that names them.
        let children = idx.manifests.iter().map(|child| async move {
            let mut stats = PushStats::default();
            push_image(client, repo, child, sources, &mut stats, counter).await.map(|()| stats)
        });
        for s in futures_util::future::try_join_all(children).await? {
            stats.blobs += s.blobs;
            stats.uploaded += s.uploaded;
            stats.bytes_uploaded += s.bytes_uploaded;
            stats.early += s.early;
            stats.bytes_early += s.bytes_early;
        }
        put_manifest(client, repo, &top.digest, &bytes, &top.media_type, "index").await?;
    } else {
        push_image(client, repo, top, sources, &mut stats, counter).await?;
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
    /// The tags archway put on it, in order (another publisher may have moved one since);
    /// never a layout's names.
    pub tags: Vec<String>,
    /// The names a layout's `index.json` gives it (`org.opencontainers.image.ref.name`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
}

/// Fails before anything is built when `repo` cannot be pushed to (an upload is opened and
/// cancelled): an unreachable registry or rejected credentials, with the fix.
/// [`check_access`] for every repository, at once.
pub async fn check_access_all(client: &Client, repos: &[Reference]) -> Result<(), UserError> {
    futures_util::future::try_join_all(repos.iter().map(|r| check_access(client, r))).await.map(|_| ())
}

/// The distinct repositories of `tags`, in the order they first appear.
pub fn repositories(tags: &[Reference]) -> Vec<Reference> {
    let mut out: Vec<Reference> = Vec::new();
    for t in tags {
        if !out.iter().any(|r| r.same_repository(t)) {
            out.push(t.repository_only());
        }
    }
    out
}

pub async fn check_access(client: &Client, repo: &Reference) -> Result<(), UserError> {
    client.check_push(repo).await.map_err(|e| {
        let hint = e.hint().unwrap_or_else(|| "nothing was built; fix the registry access and run again".into());
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
    // Manifest annotations are on each platform's manifest already (the builders put them there,
    // as buildx's `--annotation` does); the index gets its own (`index:`, and the computed
    // `org.opencontainers.image.*`, where registries such as ghcr.io read a multi-platform
    // image's description).
    let annotations = req.index_annotations.iter().cloned().collect();
    let index = index_of(platforms.iter().map(|(_, e)| e.descriptors.clone()).collect(), annotations)?;
    let published = match &req.output {
        // A matrix leg with one platform: its own result, as pushed, is what `merge` takes.
        Output::Digest { repo, .. } if platforms.len() == 1 => {
            let top = platforms[0].0.descriptor.bare();
            Published {
                location: repo.with_digest(top.digest.clone()).to_string(),
                index: top,
                tags: vec![],
                names: vec![],
            }
        }
        Output::Digest { repo, .. } => {
            log.line("==> pushing the multi-platform index by digest (no tag)");
            to_registry(client, repo, &index, &[]).await.map_err(|e| failed(repo, e))?
        }
        Output::Registry { tags } => to_registries(client, tags, &index, log).await?,
        Output::Layout { dir, names } => {
            let dirs: Vec<PathBuf> = platforms.iter().map(|(b, _)| b.layout.clone()).collect();
            to_layout(dir, &dirs, &index, names)?
        }
    };
    Ok(Outcome { platforms, published })
}

/// Publishes to every repository `tags` name: the index by digest in the first (where the
/// platforms were pushed), copied by digest into each other one (blobs mounted on one
/// registry, streamed across registries), and only then every tag. A failure anywhere before
/// the tags moves none.
async fn to_registries(client: &Client, tags: &[Reference], index: &Index, log: &Log) -> anyhow::Result<Published> {
    let repos = repositories(tags);
    let first = &repos[0];
    if repos.len() == 1 {
        return Ok(to_registry(client, first, index, tags).await.map_err(|e| failed(first, e))?);
    }
    let mut published = to_registry(client, first, index, &[]).await.map_err(|e| failed(first, e))?;
    for other in &repos[1..] {
        let mut stats = crate::copy::CopyStats::default();
        crate::copy::copy_manifest(client, first, other, &published.index, &mut stats).await.map_err(|e| {
            UserError::failure(format!("publishing to {} failed; no tag was moved", other.name()))
                .caused_by(e)
                .hint("check the credentials and access for that registry (`docker login` or the Docker config), then run again")
        })?;
        log.line(&stats.summary(&other.name()));
    }
    let bytes = Bytes::from(index.to_bytes());
    published.tags = put_tags(client, tags, &bytes, &index.media_type).await.map_err(|e| {
        // Named after the tag that failed, in whichever repository.
        let at = match &e {
            PublishError::Tag { tag, .. } => tags.iter().find(|t| t.to_string() == *tag).unwrap_or(first),
            _ => first,
        };
        failed(at, e)
    })?;
    Ok(published)
}

/// A publish to `repo` that failed, its cause below (whose hint `error::render` shows).
pub fn failed(repo: &Reference, e: PublishError) -> UserError {
    UserError::failure(format!("publishing to {} failed", repo.name())).caused_by(e)
}

/// Pushes the index by digest to `repo`, then puts each tag. Called only after every
/// platform succeeded.
pub async fn to_registry(
    client: &Client,
    repo: &Reference,
    index: &Index,
    tags: &[Reference],
) -> Result<Published, PublishError> {
    let bytes = Bytes::from(index.to_bytes());
    let top = Descriptor::of(index.media_type.clone(), &bytes);
    put_manifest(client, repo, &top.digest, &bytes, &index.media_type, "index").await?;
    let moved = put_tags(client, tags, &bytes, &index.media_type).await?;
    Ok(Published { location: repo.with_digest(top.digest.clone()).to_string(), index: top, tags: moved, names: vec![] })
}

/// Puts the index under each tag, in order; the first failure says which tags moved before it.
async fn put_tags(
    client: &Client,
    tags: &[Reference],
    bytes: &Bytes,
    media_type: &str,
) -> Result<Vec<String>, PublishError> {
    let mut moved = Vec::new();
    for t in tags {
        if let Err(source) = client.manifest_put(t, bytes, media_type).await {
            return Err(PublishError::Tag { tag: t.to_string(), moved, source });
        }
        moved.push(t.to_string());
    }
    Ok(moved)
}

/// Writes the index into an OCI image layout at `out`, moving every platform's blobs from its
/// staging layout, and names it in `index.json` once per tag (`org.opencontainers.image.ref.name`).
///
/// The layout is written beside `out` and put in place whole ([`layout::put_in_place`]): `out`
/// holds the old layout, or nothing, until the new one replaces it in one step.
pub fn to_layout(out: &Path, staging: &[PathBuf], index: &Index, tags: &[String]) -> Result<Published, PublishError> {
    let write = |path: &Path| {
        let path = path.to_path_buf();
        move |source| PublishError::WriteLayout { path, source }
    };
    let new = layout::beside(out).join("layout");
    if new.exists() {
        std::fs::remove_dir_all(&new).map_err(write(&new))?;
    }
    let blobs = new.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).map_err(write(&blobs))?;
    for dir in staging {
        let from = dir.join("blobs/sha256");
        let read = |source| PublishError::ReadLayout { path: from.clone(), source };
        for entry in std::fs::read_dir(&from).map_err(read)? {
            let entry = entry.map_err(read)?;
            let dest = blobs.join(entry.file_name());
            if dest.exists() {
                continue;
            }
            std::fs::rename(entry.path(), &dest)
                .or_else(|_| std::fs::copy(entry.path(), &dest).map(|_| ()))
                .map_err(write(&dest))?;
        }
    }
    let bytes = index.to_bytes();
    let digest = Digest::of(&bytes);
    let index_blob = blobs.join(digest.hex());
    std::fs::write(&index_blob, &bytes).map_err(write(&index_blob))?;
    let desc = Descriptor::new(index.media_type.clone(), digest.clone(), bytes.len() as u64);
    let refs: Vec<Descriptor> = if tags.is_empty() {
        vec![desc.clone()]
    } else {
        tags.iter().map(|t| desc.clone().with_annotation(oci::ANN_REF_NAME, t)).collect()
    };
    let top = Index { schema_version: 2, media_type: oci::OCI_INDEX.into(), manifests: refs, annotations: None };
    let marker = new.join("oci-layout");
    std::fs::write(&marker, b"{\"imageLayoutVersion\":\"1.0.0\"}\n").map_err(write(&marker))?;
    let index_json = new.join("index.json");
    std::fs::write(&index_json, top.to_bytes()).map_err(write(&index_json))?;
    layout::put_in_place(&new, out).map_err(write(out))?;
    Ok(Published { index: desc, location: out.display().to_string(), tags: vec![], names: tags.to_vec() })
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
        assert_eq!(e.to_string(), "platform linux/arm64 appears twice; each platform may have one image");
        let e = index_of(vec![vec![d(1, oci::OCI_MANIFEST, None)]], BTreeMap::new()).unwrap_err();
        assert_eq!(e.to_string(), format!("index entry `{}` is an image without a platform", Digest::of(&[1])));
    }

    /// An OCI layout holding one image whose config says `config_platform`.
    fn layout(dir: &Path, config_platform: &str) -> Descriptor {
        let blobs = dir.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).unwrap();
        let put = |bytes: &[u8]| {
            let digest = Digest::of(bytes);
            std::fs::write(blobs.join(digest.hex()), bytes).unwrap();
            Descriptor {
                media_type: oci::OCI_MANIFEST.into(),
                digest,
                size: bytes.len() as u64,
                platform: None,
                annotations: None,
                artifact_type: None,
            }
        };
        let (os, arch) = config_platform.split_once('/').unwrap();
        let config = put(format!(r#"{{"os":"{os}","architecture":"{arch}"}}"#).as_bytes());
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": oci::OCI_MANIFEST,
            "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.digest.to_string(), "size": config.size },
            "layers": [],
        });
        put(manifest.to_string().as_bytes())
    }

    fn built(dir: &Path, platform: &str, descriptor: Descriptor) -> Built {
        Built {
            mounts: vec![],
            platform: platform.parse().unwrap(),
            descriptor,
            duration: std::time::Duration::ZERO,
            layout: dir.to_path_buf(),
        }
    }

    #[tokio::test]
    async fn errors_name_the_platform_and_path() {
        let dir = tempfile::tempdir().unwrap();
        let top = layout(dir.path(), "linux/arm64");
        let src = ImageSource::Layout(dir.path());

        let e = entries_for(&src, &built(dir.path(), "linux/amd64", top.clone())).await.unwrap_err();
        assert_eq!(e.to_string(), "linux/amd64: the image's config says it is linux/arm64");
        assert_eq!(
            e.hint().as_deref(),
            Some("check the final stage's `FROM --platform`; it should be `$TARGETPLATFORM` or absent")
        );

        let missing = Descriptor { digest: Digest::of(b"gone"), ..top.clone() };
        let e = entries_for(&src, &built(dir.path(), "linux/arm64", missing.clone())).await.unwrap_err();
        assert_eq!(e.to_string(), "linux/arm64: cannot read the build's result");
        let path = dir.path().join("blobs/sha256").join(missing.digest.hex());
        let cause = std::error::Error::source(&e).unwrap();
        assert_eq!(cause.to_string(), format!("cannot read `{}`", path.display()));
        assert!(std::error::Error::source(cause).is_some(), "the io::Error is kept as the source");

        std::fs::write(dir.path().join("blobs/sha256").join(top.digest.hex()), b"{}").unwrap();
        let e = read_layout_blob(dir.path(), &top.digest).unwrap_err();
        let path = dir.path().join("blobs/sha256").join(top.digest.hex());
        assert_eq!(e.to_string(), format!("`{}` does not hash to its name; the OCI layout is damaged", path.display()));
    }

    #[test]
    fn a_failed_tag_says_which_tags_moved() {
        assert_eq!(moved_suffix(&[]), "");
        assert_eq!(moved_suffix(&["r/a:1".into(), "r/a:2".into()]), " (already tagged: `r/a:1`, `r/a:2`)");
    }
}
