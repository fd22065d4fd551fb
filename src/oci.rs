//! OCI and Docker image data types: media types, descriptors, manifests, indexes, configs.
//!
//! Manifests are kept as the exact bytes that were (or will be) pushed; these types only
//! read them or build new ones. Pure: no I/O.
//!
//! Why archway's own types and not the `oci-spec` crate's (`oci_spec::image`, 0.9):
//! - **Bytes are the identity.** An index archway writes is pushed by its digest, so its bytes
//!   must be the same on every run: `oci-spec` keeps annotations in a `HashMap`, which
//!   serialises in a different order from one process to the next (a new digest each run, and
//!   `merge` or `promote` re-run would not be idempotent). Here they are a `BTreeMap`.
//! - **Docker's media types are ordinary here.** buildx and the classic builder push Docker
//!   manifest lists and v2 manifests; `oci-spec`'s `MediaType` holds them only as
//!   `Other(String)`, so every comparison would go through strings anyway.
//! - **Reading is lenient, only what archway uses.** `ImageConfig` reads three fields and
//!   accepts anything else; `oci_spec::image::ImageConfiguration` requires `rootfs` and
//!   typed `Arch`/`Os` enums, and its fields are private behind getters and fallible
//!   builders (`derive_builder`, `getset`, `strum`, `regex` come along).
//! - **Digests are archway's [`Digest`]** (sha256, checked on parse), as everywhere else.
//!
//! So: a few small serde types, the exact bytes kept beside them ([`Index::to_bytes`]
//! serialises once, and that is what is pushed and digested). Manifests and configs that
//! archway writes itself (the assembler) need the same stable bytes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::platform::Platform;
use crate::reference::Digest;

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// Every manifest media type archway reads, for `Accept` headers.
pub const MANIFEST_TYPES: &[&str] = &[OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST];

/// Annotation buildx puts on an attestation manifest's descriptor.
pub const ANN_REFERENCE_TYPE: &str = "vnd.docker.reference.type";
/// Annotation naming the image manifest an attestation describes.
pub const ANN_REFERENCE_DIGEST: &str = "vnd.docker.reference.digest";
pub const ATTESTATION_MANIFEST: &str = "attestation-manifest";
/// Annotation naming an image in an OCI layout's `index.json`.
pub const ANN_REF_NAME: &str = "org.opencontainers.image.ref.name";

pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_LIST
}

pub fn is_docker_type(media_type: &str) -> bool {
    media_type.starts_with("application/vnd.docker.")
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<DescriptorPlatform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
}

impl Descriptor {
    /// Content of `media_type` with this digest and size, as at the top of a push: no platform,
    /// annotations or artifact type.
    pub fn new(media_type: impl Into<String>, digest: Digest, size: u64) -> Self {
        Descriptor {
            media_type: media_type.into(),
            digest,
            size,
            platform: None,
            annotations: None,
            artifact_type: None,
        }
    }

    /// The descriptor of `bytes`: their digest and length.
    pub fn of(media_type: impl Into<String>, bytes: &[u8]) -> Self {
        Descriptor::new(media_type, Digest::of(bytes), bytes.len() as u64)
    }

    /// The same content without what an index entry adds to it (platform, annotations).
    pub fn bare(&self) -> Self {
        Descriptor { platform: None, annotations: None, ..self.clone() }
    }

    /// With `platform` in its normalised spelling (so `arm64` never carries a `v8` variant).
    pub fn with_platform(self, platform: &Platform) -> Self {
        Descriptor { platform: Some(platform.into()), ..self }
    }

    /// With one more annotation.
    pub fn with_annotation(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.annotations.get_or_insert_default().insert(key.into(), value.into());
        self
    }

    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.as_ref()?.get(key).map(String::as_str)
    }

    pub fn is_attestation(&self) -> bool {
        self.annotation(ANN_REFERENCE_TYPE) == Some(ATTESTATION_MANIFEST)
    }

    /// Whether this is an attestation manifest describing the image `image`.
    pub fn attests(&self, image: &Digest) -> bool {
        self.is_attestation() && self.annotation(ANN_REFERENCE_DIGEST) == Some(image.as_str())
    }
}

/// The `platform` object of a descriptor (its own type: it may say `unknown/unknown`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DescriptorPlatform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(rename = "os.version", default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
}

impl From<&Platform> for DescriptorPlatform {
    fn from(p: &Platform) -> Self {
        DescriptorPlatform {
            architecture: p.architecture.clone(),
            os: p.os.clone(),
            variant: p.variant.clone(),
            os_version: None,
        }
    }
}

/// As stored, not normalised: `linux/arm/v7`, `unknown/unknown`.
impl std::fmt::Display for DescriptorPlatform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        match &self.variant {
            Some(v) => write!(f, "/{v}"),
            None => Ok(()),
        }
    }
}

impl DescriptorPlatform {
    /// The normalised platform, or `None` for `unknown/unknown` and other non-platforms.
    pub fn platform(&self) -> Option<Platform> {
        Platform::new(&self.os, &self.architecture, self.variant.as_deref()).ok()
    }
}

/// An OCI image index or Docker manifest list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default)]
    pub media_type: String,
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

impl Index {
    /// Serialises once; the returned bytes are what gets pushed and digested.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = serde_json::to_vec_pretty(self).expect("an index always serialises");
        b.push(b'\n');
        b
    }
}

/// The parts of an image manifest archway reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    #[serde(default)]
    pub media_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
}

/// The parts of an image config archway reads.
#[derive(Debug, Clone, Deserialize)]
pub struct ImageConfig {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub variant: Option<String>,
}

/// Only the media type, to tell an index from a manifest before parsing it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<serde_json::Value>,
}

/// The media type of a manifest: its own `mediaType`, else the one the registry sent, else a guess
/// from its shape.
pub fn media_type_of(bytes: &[u8], header: Option<&str>) -> String {
    let probe: Option<Probe> = serde_json::from_slice(bytes).ok();
    if let Some(mt) = probe.as_ref().and_then(|p| p.media_type.clone()) {
        return mt;
    }
    if let Some(h) = header {
        return h.to_string();
    }
    match probe {
        Some(Probe { manifests: Some(_), .. }) => OCI_INDEX.into(),
        _ => OCI_MANIFEST.into(),
    }
}
