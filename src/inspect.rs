//! inspect: what a reference holds — media type, digest, each platform with its digest and
//! size, attestations linked to the image they describe, annotations — read through `registry/`
//! alone, and rendered as a table or JSON.

use anyhow::Context as _;
use serde::Serialize;

use crate::cli::Format;
use crate::oci::{self, DescriptorPlatform, ImageManifest, Index};
use crate::reference::Reference;
use crate::registry::{Client, Manifest};
use crate::report::human_size;

#[derive(Debug, Serialize)]
pub struct Inspected {
    pub reference: String,
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    pub annotations: std::collections::BTreeMap<String, String>,
    pub platforms: Vec<PlatformEntry>,
}

#[derive(Debug, Serialize)]
pub struct PlatformEntry {
    pub platform: String,
    pub digest: String,
    pub media_type: String,
    /// Size of the manifest itself.
    pub manifest_size: u64,
    /// Config plus layers, compressed.
    pub image_size: u64,
    pub attestations: Vec<Attestation>,
}

#[derive(Debug, Serialize)]
pub struct Attestation {
    pub digest: String,
    pub size: u64,
    /// In-toto predicate types found in its layers (`https://slsa.dev/provenance/v0.2`, …).
    pub predicate_types: Vec<String>,
}

/// Reads what `r` holds; `m` is its manifest, read already.
pub async fn inspect(client: &Client, r: &Reference, m: &Manifest) -> anyhow::Result<Inspected> {
    let mut out = Inspected {
        reference: r.to_string(),
        media_type: m.media_type.clone(),
        digest: m.digest.to_string(),
        size: m.bytes.len() as u64,
        annotations: Default::default(),
        platforms: vec![],
    };
    let image_size = |bytes: &[u8]| -> u64 {
        serde_json::from_slice::<ImageManifest>(bytes)
            .map(|im| im.config.size + im.layers.iter().map(|l| l.size).sum::<u64>())
            .unwrap_or(0)
    };
    if oci::is_index(&m.media_type) {
        let idx: Index = serde_json::from_slice(&m.bytes).with_context(|| format!("{r} is not a readable index"))?;
        out.annotations = idx.annotations.clone().unwrap_or_default();
        for d in idx.manifests.iter().filter(|d| !d.is_attestation()) {
            let child = client.manifest_get(&r.with_digest(d.digest.clone())).await?;
            let mut attestations = Vec::new();
            for a in idx.manifests.iter().filter(|a| a.attests(&d.digest)) {
                let am = client.manifest_get(&r.with_digest(a.digest.clone())).await?;
                let predicate_types = serde_json::from_slice::<ImageManifest>(&am.bytes)
                    .map(|im| {
                        im.layers
                            .iter()
                            .filter_map(|l| l.annotation("in-toto.io/predicate-type").map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                attestations.push(Attestation { digest: a.digest.to_string(), size: a.size, predicate_types });
            }
            out.platforms.push(PlatformEntry {
                platform: d.platform.as_ref().map(|p| p.to_string()).unwrap_or_else(|| "unknown".into()),
                digest: d.digest.to_string(),
                media_type: d.media_type.clone(),
                manifest_size: d.size,
                image_size: image_size(&child.bytes),
                attestations,
            });
        }
    } else {
        let im: ImageManifest =
            serde_json::from_slice(&m.bytes).with_context(|| format!("{r} is not a readable manifest"))?;
        let cfg = client.blob_get(r, &im.config.digest).await?;
        let c: oci::ImageConfig =
            serde_json::from_slice(&cfg).with_context(|| format!("the config of {r} is unreadable"))?;
        out.platforms.push(PlatformEntry {
            platform: DescriptorPlatform {
                os: c.os,
                architecture: c.architecture,
                variant: c.variant.filter(|v| !v.is_empty()),
                os_version: None,
            }
            .to_string(),
            digest: m.digest.to_string(),
            media_type: m.media_type.clone(),
            manifest_size: m.bytes.len() as u64,
            image_size: image_size(&m.bytes),
            attestations: vec![],
        });
    }
    Ok(out)
}

/// `out` as `format`, for stdout.
pub fn render(out: &Inspected, format: Format) -> anyhow::Result<String> {
    use std::fmt::Write as _;
    let mut s = String::new();
    match format {
        Format::Json => writeln!(s, "{}", serde_json::to_string_pretty(&out)?)?,
        Format::Table => {
            writeln!(s, "Name:      {}", out.reference)?;
            writeln!(s, "MediaType: {}", out.media_type)?;
            writeln!(s, "Digest:    {}", out.digest)?;
            for (k, v) in &out.annotations {
                writeln!(s, "Annotation {k}={v}")?;
            }
            writeln!(s)?;
            writeln!(s, "{:<16} {:<72} {:>10}  ATTESTATIONS", "PLATFORM", "DIGEST", "SIZE")?;
            for p in &out.platforms {
                let att: Vec<String> = p
                    .attestations
                    .iter()
                    .map(|a| {
                        let what = if a.predicate_types.is_empty() {
                            "attestation".into()
                        } else {
                            a.predicate_types.join(", ")
                        };
                        format!("{} ({what})", a.digest)
                    })
                    .collect();
                writeln!(
                    s,
                    "{:<16} {:<72} {:>10}  {}",
                    p.platform,
                    p.digest,
                    human_size(p.image_size),
                    att.join("; ")
                )?;
            }
        }
    }
    Ok(s)
}
