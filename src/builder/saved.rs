//! saved: an image that a builder left in a Docker engine's image store, read back the way
//! `docker save` does (`GET /images/{name}/get`) and turned into a gzip-compressed OCI image
//! layout, so the rest of archway pushes it by digest like any other platform. Used where the
//! engine cannot export OCI itself: its classic builder (`engine`), and buildx's `docker`
//! driver over the classic image store (`buildx`). The temporary tag is removed.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use bollard::Docker;
use futures_util::StreamExt as _;

use crate::oci::{self, Descriptor, Index};
use crate::platform::Platform;
use crate::reference::Digest;

/// Reads the image tagged `tag` out of the engine into an OCI layout at `layout` (the
/// platform's image manifest, described as `platform`, with `annotations`), then removes the
/// tag whatever happened. Returns the manifest's descriptor, or why it failed.
pub async fn export(
    docker: &Docker,
    tag: &str,
    layout: &Path,
    platform: &Platform,
    annotations: &[(String, String)],
) -> Result<Descriptor, String> {
    let saved = tempfile::NamedTempFile::new().map_err(|e| format!("no temporary file: {e}"))?;
    let written = save(docker, tag, saved.path()).await;
    remove_tag(docker, tag).await;
    written?;
    convert(saved.path(), layout, platform, annotations).await
}

/// Writes image `tag` to `dest` as `docker save` does (`GET /images/{name}/get`).
pub async fn save(docker: &Docker, tag: &str, dest: &Path) -> Result<(), String> {
    let written = async {
        let mut out = tokio::fs::File::create(dest).await?;
        let mut s = docker.export_image(tag);
        while let Some(chunk) = s.next().await {
            let chunk = chunk.map_err(std::io::Error::other)?;
            tokio::io::AsyncWriteExt::write_all(&mut out, &chunk).await?;
        }
        tokio::io::AsyncWriteExt::flush(&mut out).await
    }
    .await;
    written.map_err(|e| format!("exporting the image `{tag}` from the engine: {e}"))
}

/// Removes a temporary tag (the image with it, when nothing else names it); a failure is
/// only logged, since the build itself succeeded.
pub async fn remove_tag(docker: &Docker, tag: &str) {
    if let Err(e) = docker.remove_image(tag, None::<bollard::query_parameters::RemoveImageOptions>, None).await {
        tracing::warn!("could not remove the temporary image `{tag}` from the engine: {e}");
    }
}

/// [`to_layout`] on a blocking thread.
pub async fn convert(
    saved: &Path,
    layout: &Path,
    platform: &Platform,
    annotations: &[(String, String)],
) -> Result<Descriptor, String> {
    let (saved, layout, p, a) = (saved.to_path_buf(), layout.to_path_buf(), platform.clone(), annotations.to_vec());
    tokio::task::spawn_blocking(move || to_layout(&saved, &layout, &p, &a)).await.map_err(|e| e.to_string())?
}

fn write_blob(layout: &Path, bytes: &[u8]) -> std::io::Result<Digest> {
    let d = Digest::of(bytes);
    std::fs::write(layout.join("blobs/sha256").join(d.hex()), bytes)?;
    Ok(d)
}

/// The image a `docker save` archive holds, unpacked: its config and its layer tars, in order.
pub struct Unpacked {
    pub config: PathBuf,
    pub layers: Vec<PathBuf>,
}

/// Unpacks a `docker save` archive (OCI layout on Docker ≥ 25, or the older form; both have
/// `manifest.json`) into `dir`, and names its first image's config and layers, every path
/// inside `dir`.
pub fn unpack(saved: &Path, dir: &Path) -> Result<Unpacked, String> {
    tar::Archive::new(std::fs::File::open(saved).map_err(|e| e.to_string())?)
        .unpack(dir)
        .map_err(|e| format!("unreadable image archive: {e}"))?;
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct SaveEntry {
        config: String,
        layers: Vec<String>,
    }
    let entries: Vec<SaveEntry> =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).map_err(|e| e.to_string())?)
            .map_err(|e| format!("unreadable manifest.json in the image archive: {e}"))?;
    let entry = entries.into_iter().next().ok_or("the image archive holds no image")?;
    let inside = |p: &str| !p.starts_with('/') && !p.split('/').any(|c| c == "..");
    if !inside(&entry.config) || !entry.layers.iter().all(|l| inside(l)) {
        return Err("manifest.json in the image archive names a file outside it".into());
    }
    Ok(Unpacked { config: dir.join(&entry.config), layers: entry.layers.iter().map(|l| dir.join(l)).collect() })
}

/// Turns a `docker save` archive (OCI layout on Docker ≥ 25, or the older `manifest.json`
/// form) into an OCI image layout at `layout` whose layers are gzip-compressed, the image
/// manifest carrying `annotations` (`--annotation`, as the assembler writes them). Returns
/// the image manifest's descriptor.
pub fn to_layout(
    saved: &Path,
    layout: &Path,
    platform: &Platform,
    annotations: &[(String, String)],
) -> Result<Descriptor, String> {
    let extracted = tempfile::tempdir().map_err(|e| e.to_string())?;
    let entry = unpack(saved, extracted.path())?;
    std::fs::create_dir_all(layout.join("blobs/sha256")).map_err(|e| e.to_string())?;
    let config = std::fs::read(&entry.config).map_err(|e| e.to_string())?;
    let config_digest = write_blob(layout, &config).map_err(|e| e.to_string())?;
    let mut layers = Vec::new();
    for l in &entry.layers {
        let mut raw = Vec::new();
        std::fs::File::open(l).and_then(|mut f| f.read_to_end(&mut raw)).map_err(|e| e.to_string())?;
        // Layers from a containerd image store arrive compressed already; the classic store
        // saves plain tars, which are gzipped here so less is pushed.
        let (media_type, data) = if raw.starts_with(&[0x1f, 0x8b]) {
            ("application/vnd.oci.image.layer.v1.tar+gzip", raw)
        } else if raw.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            ("application/vnd.oci.image.layer.v1.tar+zstd", raw)
        } else {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut gz, &raw).map_err(|e| e.to_string())?;
            ("application/vnd.oci.image.layer.v1.tar+gzip", gz.finish().map_err(|e| e.to_string())?)
        };
        let d = write_blob(layout, &data).map_err(|e| e.to_string())?;
        layers.push(serde_json::json!({"mediaType": media_type, "digest": d, "size": data.len()}));
    }
    let mut manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": oci::OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": layers,
    });
    if !annotations.is_empty() {
        manifest["annotations"] =
            serde_json::json!(annotations.iter().cloned().collect::<std::collections::BTreeMap<_, _>>());
    }
    let bytes = serde_json::to_vec(&manifest).map_err(|e| e.to_string())?;
    let digest = write_blob(layout, &bytes).map_err(|e| e.to_string())?;
    let desc = Descriptor::new(oci::OCI_MANIFEST, digest, bytes.len() as u64).with_platform(platform);
    let index = Index {
        schema_version: 2,
        media_type: oci::OCI_INDEX.into(),
        manifests: vec![desc.clone()],
        annotations: None,
    };
    std::fs::write(layout.join("index.json"), index.to_bytes()).map_err(|e| e.to_string())?;
    std::fs::write(layout.join("oci-layout"), b"{\"imageLayoutVersion\":\"1.0.0\"}").map_err(|e| e.to_string())?;
    Ok(desc)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `docker save` archive as the classic store writes it: plain tar layers, named in
    /// `manifest.json`.
    fn archive(config: &[u8], layer: &[u8]) -> tempfile::NamedTempFile {
        let mut tar = tar::Builder::new(Vec::new());
        let mut add = |name: &str, data: &[u8]| {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            tar.append_data(&mut h, name, data).unwrap();
        };
        let (c, l) = (Digest::of(config), Digest::of(layer));
        let manifest = format!(
            r#"[{{"Config":"blobs/sha256/{}","RepoTags":["archway-buildx/linux-arm64:1"],"Layers":["blobs/sha256/{}"]}}]"#,
            c.hex(),
            l.hex()
        );
        add(&format!("blobs/sha256/{}", c.hex()), config);
        add(&format!("blobs/sha256/{}", l.hex()), layer);
        add("manifest.json", manifest.as_bytes());
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), tar.into_inner().unwrap()).unwrap();
        f
    }

    #[test]
    fn a_saved_image_becomes_an_oci_layout_with_gzip_layers() {
        let config = br#"{"architecture":"arm64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
        let layer = {
            let mut t = tar::Builder::new(Vec::new());
            let mut h = tar::Header::new_ustar();
            h.set_size(7);
            h.set_mode(0o644);
            h.set_cksum();
            t.append_data(&mut h, "arch", &b"aarch64"[..]).unwrap();
            t.into_inner().unwrap()
        };
        let saved = archive(config, &layer);
        let layout = tempfile::tempdir().unwrap();
        let platform: Platform = "linux/arm64".parse().unwrap();
        let annotations = [("org.opencontainers.image.source".to_string(), "https://example.com/app".to_string())];
        let d = to_layout(saved.path(), layout.path(), &platform, &annotations).unwrap();
        assert_eq!(d.media_type, oci::OCI_MANIFEST);
        assert_eq!(d.platform.as_ref().and_then(oci::DescriptorPlatform::platform), Some(platform));
        let blob = |digest: &str| std::fs::read(layout.path().join("blobs/sha256").join(&digest[7..])).unwrap();
        let manifest: serde_json::Value = serde_json::from_slice(&blob(d.digest.as_str())).unwrap();
        assert_eq!(manifest["config"]["digest"], Digest::of(config).as_str(), "the config is kept byte for byte");
        assert_eq!(manifest["annotations"]["org.opencontainers.image.source"], "https://example.com/app");
        let l = &manifest["layers"][0];
        assert_eq!(l["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip");
        let mut unzipped = Vec::new();
        flate2::read::GzDecoder::new(&blob(l["digest"].as_str().unwrap())[..]).read_to_end(&mut unzipped).unwrap();
        assert_eq!(unzipped, layer, "the layer's diff_id is unchanged");
        let index: Index = serde_json::from_slice(&std::fs::read(layout.path().join("index.json")).unwrap()).unwrap();
        assert_eq!(index.manifests, vec![d]);
    }
}
