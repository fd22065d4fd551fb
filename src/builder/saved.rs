//! saved: an image that a builder left in a Docker engine's image store, read back the way
//! `docker save` does (`GET /images/{name}/get`) and turned into a gzip-compressed OCI image
//! layout, so the rest of archway pushes it by digest like any other platform. Used where the
//! engine cannot export OCI itself: its classic builder (`engine`), and buildx's `docker`
//! driver over the classic image store (`buildx`). The temporary tag is removed.

use std::path::{Path, PathBuf};

use bollard::Docker;
use futures_util::StreamExt as _;

use super::assemble::layer::HashWriter;
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

/// The first image `manifest.json` of a `docker save` archive names: its config and layers,
/// paths inside the archive.
#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SaveEntry {
    config: String,
    layers: Vec<String>,
}

impl SaveEntry {
    fn parse(bytes: &[u8]) -> Result<SaveEntry, String> {
        let entries: Vec<SaveEntry> =
            serde_json::from_slice(bytes).map_err(|e| format!("unreadable manifest.json in the image archive: {e}"))?;
        let entry = entries.into_iter().next().ok_or("the image archive holds no image")?;
        let inside = |p: &str| !p.starts_with('/') && !p.split('/').any(|c| c == "..");
        if !inside(&entry.config) || !entry.layers.iter().all(|l| inside(l)) {
            return Err("manifest.json in the image archive names a file outside it".into());
        }
        Ok(entry)
    }
}

/// Unpacks a `docker save` archive (OCI layout on Docker ≥ 25, or the older form; both have
/// `manifest.json`) into `dir`, and names its first image's config and layers, every path
/// inside `dir`.
pub fn unpack(saved: &Path, dir: &Path) -> Result<Unpacked, String> {
    tar::Archive::new(std::fs::File::open(saved).map_err(|e| e.to_string())?)
        .unpack(dir)
        .map_err(|e| format!("unreadable image archive: {e}"))?;
    let entry = SaveEntry::parse(&std::fs::read(dir.join("manifest.json")).map_err(|e| e.to_string())?)?;
    Ok(Unpacked { config: dir.join(&entry.config), layers: entry.layers.iter().map(|l| dir.join(l)).collect() })
}

/// What a path of a tar archive is: a regular file's data (where it starts in the archive, and
/// its size), or a link to another path of the archive.
enum Member {
    File { offset: u64, size: u64 },
    Link(String),
}

/// A path of an archive in one form: no `./`, no empty or `.` components, `..` applied (`None`
/// when it climbs out).
fn clean(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

/// A `docker save` archive, read in place: a table of its members, and each member's data
/// read from the file where it lies. Nothing is extracted; no member is held in memory whole.
struct SavedArchive {
    file: std::fs::File,
    members: std::collections::HashMap<String, Member>,
}

/// The largest `manifest.json` or image config read into memory (both are a few KiB).
const JSON_MAX: u64 = 64 << 20;

impl SavedArchive {
    /// Reads the archive's headers only: the data of each member is skipped by seeking.
    fn open(path: &Path) -> Result<SavedArchive, String> {
        let file = std::fs::File::open(path).map_err(|e| format!("cannot open the image archive: {e}"))?;
        let unreadable = |e: std::io::Error| format!("unreadable image archive: {e}");
        let mut members = std::collections::HashMap::new();
        for entry in tar::Archive::new(&file).entries_with_seek().map_err(unreadable)? {
            let entry = entry.map_err(unreadable)?;
            let Some(path) = clean(&String::from_utf8_lossy(&entry.path_bytes())) else { continue };
            let link = || entry.link_name_bytes().map(|l| String::from_utf8_lossy(&l).into_owned());
            let member = match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    Member::File { offset: entry.raw_file_position(), size: entry.size() }
                }
                // A symbolic link is relative to its own directory (Docker ≥ 25 links
                // `ID/layer.tar` to `../blobs/sha256/…`); a hard link names a path from the top.
                tar::EntryType::Symlink => {
                    let Some(target) = link() else { continue };
                    let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
                    match if target.starts_with('/') { clean(&target) } else { clean(&format!("{dir}/{target}")) } {
                        Some(t) => Member::Link(t),
                        None => continue,
                    }
                }
                tar::EntryType::Link => match link().as_deref().and_then(clean) {
                    Some(t) => Member::Link(t),
                    None => continue,
                },
                _ => continue,
            };
            members.insert(path, member);
        }
        Ok(SavedArchive { file, members })
    }

    /// The data of the member at `path`, links followed.
    fn reader(&self, path: &str) -> Result<(impl std::io::Read + '_, u64), String> {
        use std::io::{Read as _, Seek as _};
        let mut at = clean(path).ok_or_else(|| format!("`{path}` is outside the image archive"))?;
        for _ in 0..16 {
            match self.members.get(&at) {
                Some(Member::File { offset, size }) => {
                    let mut f = &self.file;
                    f.seek(std::io::SeekFrom::Start(*offset)).map_err(|e| e.to_string())?;
                    return Ok((f.take(*size), *size));
                }
                Some(Member::Link(to)) => at = to.clone(),
                None => break,
            }
        }
        Err(format!("the image archive has no file `{path}`, which its manifest.json names"))
    }

    /// A small member (JSON), whole.
    fn read_small(&self, path: &str) -> Result<Vec<u8>, String> {
        let (mut r, size) = self.reader(path)?;
        if size > JSON_MAX {
            return Err(format!("`{path}` in the image archive is {size} bytes; expected a small JSON file"));
        }
        let mut bytes = Vec::with_capacity(size as usize);
        std::io::Read::read_to_end(&mut r, &mut bytes).map_err(|e| format!("reading `{path}`: {e}"))?;
        Ok(bytes)
    }
}

/// Streams one layer of the archive into the layout's blobs as it is (when compressed already)
/// or gzip-compressed (a plain tar), hashing while it writes. Returns its media type, digest
/// and size.
fn layer_blob(archive: &SavedArchive, path: &str, layout: &Path) -> Result<(&'static str, Digest, u64), String> {
    use std::io::{BufRead as _, Write as _};
    let failed = |e: std::io::Error| format!("converting the layer `{path}` of the image archive: {e}");
    let (r, _) = archive.reader(path)?;
    let mut r = std::io::BufReader::with_capacity(256 * 1024, r);
    let head = r.fill_buf().map_err(failed)?;
    // Layers from a containerd image store arrive compressed already; the classic store
    // saves plain tars, which are gzipped here so less is pushed.
    let compressed = if head.starts_with(&[0x1f, 0x8b]) {
        Some("application/vnd.oci.image.layer.v1.tar+gzip")
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some("application/vnd.oci.image.layer.v1.tar+zstd")
    } else {
        None
    };
    let blobs = layout.join("blobs/sha256");
    let tmp = tempfile::NamedTempFile::new_in(&blobs).map_err(failed)?;
    let mut out = HashWriter::new(std::io::BufWriter::with_capacity(256 * 1024, tmp.as_file()));
    let media_type = match compressed {
        Some(media_type) => {
            std::io::copy(&mut r, &mut out).map_err(failed)?;
            media_type
        }
        None => {
            let mut gz = flate2::write::GzEncoder::new(&mut out, flate2::Compression::fast());
            std::io::copy(&mut r, &mut gz).map_err(failed)?;
            gz.finish().map_err(failed)?;
            "application/vnd.oci.image.layer.v1.tar+gzip"
        }
    };
    out.flush().map_err(failed)?;
    let (digest, size) = (out.digest(), out.len);
    drop(out);
    tmp.persist(blobs.join(digest.hex())).map_err(|e| failed(e.error))?;
    Ok((media_type, digest, size))
}

/// Turns a `docker save` archive (OCI layout on Docker ≥ 25, or the older `manifest.json`
/// form) into an OCI image layout at `layout` whose layers are gzip-compressed, the image
/// manifest carrying `annotations` (`--annotation`, as the assembler writes them). Returns
/// the image manifest's descriptor.
///
/// The archive is read in place and each layer streamed through a bounded buffer into its blob
/// (hashed and compressed on the way), so memory stays flat whatever the layers weigh.
pub fn to_layout(
    saved: &Path,
    layout: &Path,
    platform: &Platform,
    annotations: &[(String, String)],
) -> Result<Descriptor, String> {
    let archive = SavedArchive::open(saved)?;
    let entry = SaveEntry::parse(&archive.read_small("manifest.json")?)?;
    std::fs::create_dir_all(layout.join("blobs/sha256")).map_err(|e| e.to_string())?;
    let config = archive.read_small(&entry.config)?;
    let config_digest = write_blob(layout, &config).map_err(|e| e.to_string())?;
    // A layer named twice (an image can repeat one) is converted once.
    let mut done: std::collections::HashMap<&str, (&'static str, Digest, u64)> = std::collections::HashMap::new();
    let mut layers = Vec::new();
    for l in &entry.layers {
        let (media_type, d, size) = match done.get(l.as_str()) {
            Some(b) => b.clone(),
            None => {
                let b = layer_blob(&archive, l, layout)?;
                done.insert(l, b.clone());
                b
            }
        };
        layers.push(serde_json::json!({"mediaType": media_type, "digest": d, "size": size}));
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

    use std::io::Read as _;

    /// A tar archive of these members: a file's bytes, or (`Err`) a symbolic link's target.
    fn tar_of(members: &[(&str, Result<&[u8], &str>)]) -> tempfile::NamedTempFile {
        let mut tar = tar::Builder::new(Vec::new());
        for (name, member) in members {
            let mut h = tar::Header::new_ustar();
            h.set_mode(0o644);
            match member {
                Ok(data) => {
                    h.set_size(data.len() as u64);
                    h.set_cksum();
                    tar.append_data(&mut h, name, *data).unwrap();
                }
                Err(target) => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_size(0);
                    tar.append_link(&mut h, name, target).unwrap();
                }
            }
        }
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), tar.into_inner().unwrap()).unwrap();
        f
    }

    /// A `docker save` archive as the classic store writes it: plain tar layers, named in
    /// `manifest.json`.
    fn archive(config: &[u8], layer: &[u8]) -> tempfile::NamedTempFile {
        let (c, l) = (Digest::of(config), Digest::of(layer));
        let manifest = format!(
            r#"[{{"Config":"blobs/sha256/{}","RepoTags":["archway-buildx/linux-arm64:1"],"Layers":["blobs/sha256/{}"]}}]"#,
            c.hex(),
            l.hex()
        );
        let (c, l) = (format!("blobs/sha256/{}", c.hex()), format!("blobs/sha256/{}", l.hex()));
        tar_of(&[(&c, Ok(config)), (&l, Ok(layer)), ("manifest.json", Ok(manifest.as_bytes()))])
    }

    /// A layer tar holding one file.
    fn layer_tar(name: &str, data: &[u8]) -> Vec<u8> {
        let mut t = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        t.append_data(&mut h, name, data).unwrap();
        t.into_inner().unwrap()
    }

    #[test]
    fn a_saved_image_becomes_an_oci_layout_with_gzip_layers() {
        let config = br#"{"architecture":"arm64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
        let layer = layer_tar("arch", b"aarch64");
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

    /// Docker ≥ 25 saves an OCI layout plus the legacy names, `ID/layer.tar` being a symbolic
    /// link into `blobs/`; a containerd image store's layers are compressed already.
    #[test]
    fn linked_and_compressed_layers_are_read_in_place() {
        let config = br#"{"architecture":"amd64","os":"linux"}"#;
        let plain = layer_tar("a", b"plain");
        let gzipped = {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            std::io::Write::write_all(&mut gz, &layer_tar("b", b"gzipped")).unwrap();
            gz.finish().unwrap()
        };
        let (c, p, g) = (Digest::of(config), Digest::of(&plain), Digest::of(&gzipped));
        let blob = |d: &Digest| format!("blobs/sha256/{}", d.hex());
        let manifest =
            format!(r#"[{{"Config":"{}","Layers":["1111/layer.tar","./{}","1111/layer.tar"]}}]"#, blob(&c), blob(&g));
        let target = format!("../{}", blob(&p));
        let saved = tar_of(&[
            (&blob(&c), Ok(config)),
            (&blob(&p), Ok(&plain)),
            (&blob(&g), Ok(&gzipped)),
            ("1111/layer.tar", Err(&target)),
            ("manifest.json", Ok(manifest.as_bytes())),
        ]);
        let layout = tempfile::tempdir().unwrap();
        let d = to_layout(saved.path(), layout.path(), &"linux/amd64".parse().unwrap(), &[]).unwrap();
        let read = |digest: &str| std::fs::read(layout.path().join("blobs/sha256").join(&digest[7..])).unwrap();
        let manifest: serde_json::Value = serde_json::from_slice(&read(d.digest.as_str())).unwrap();
        let layers = manifest["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 3);
        assert_eq!(layers[0], layers[2], "a layer named twice is the same blob");
        let mut unzipped = Vec::new();
        let first = read(layers[0]["digest"].as_str().unwrap());
        flate2::read::GzDecoder::new(&first[..]).read_to_end(&mut unzipped).unwrap();
        assert_eq!(unzipped, plain, "the linked layer was followed and gzipped");
        assert_eq!(layers[1]["digest"], g.as_str(), "a compressed layer is kept byte for byte");
        assert_eq!(layers[1]["size"], gzipped.len());
        assert_eq!(layers[1]["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip");
        for f in std::fs::read_dir(layout.path().join("blobs/sha256")).unwrap() {
            let f = f.unwrap();
            let named = f.file_name().to_string_lossy().into_owned();
            assert_eq!(Digest::of(&std::fs::read(f.path()).unwrap()).hex(), named, "no blob under another name");
        }
    }

    #[test]
    fn a_layer_missing_from_the_archive_is_named() {
        let manifest = br#"[{"Config":"c.json","Layers":["gone/layer.tar"]}]"#;
        let saved = tar_of(&[("c.json", Ok(b"{}")), ("manifest.json", Ok(manifest))]);
        let layout = tempfile::tempdir().unwrap();
        let e = to_layout(saved.path(), layout.path(), &"linux/amd64".parse().unwrap(), &[]).unwrap_err();
        assert_eq!(e, "the image archive has no file `gone/layer.tar`, which its manifest.json names");
    }
}
