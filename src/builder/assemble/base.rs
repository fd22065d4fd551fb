//! base: a `FROM` image for one platform, read through the registry API: the index narrowed to
//! the platform's manifest, its config (a few KB, held), its layers streamed to disk (never
//! held whole), and its root filesystem indexed from them (whiteouts applied) so COPY knows
//! what exists, whose `/etc/passwd` to read, and what `COPY --from` an image copies.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::tree::{Content, Kind, LayerBlob, Node, Tree, base, parent};
use crate::oci::{self, Descriptor, ImageManifest, Index};
use crate::platform::Platform;
use crate::reference::{Digest, Reference};
use crate::registry::{Client, RegistryError};

#[derive(Debug, thiserror::Error)]
pub enum BaseError {
    #[error("`{image}` is not a valid image reference: {detail}")]
    Reference { image: String, detail: String },
    #[error("reading `{image}`: {source}")]
    Registry { image: String, source: RegistryError },
    #[error("`{image}` has no image for {platform}; it has {available}")]
    NoPlatform { image: String, platform: Platform, available: String },
    #[error("`{image}`: {detail}")]
    Unreadable { image: String, detail: String },
}

/// A base image resolved for one platform.
#[derive(Debug, Clone)]
pub struct BaseImage {
    /// As written in the Dockerfile, for messages.
    pub name: String,
    /// The repository, pinned to the platform manifest's digest.
    pub reference: Reference,
    /// The image config as the registry holds it.
    pub config: serde_json::Value,
    pub layers: Vec<Descriptor>,
}

impl BaseImage {
    pub fn diff_ids(&self) -> Vec<Digest> {
        self.config["rootfs"]["diff_ids"]
            .as_array()
            .map(|a| a.iter().filter_map(|d| d.as_str()?.parse().ok()).collect())
            .unwrap_or_default()
    }
}

fn unreadable(image: &str, detail: impl std::fmt::Display) -> BaseError {
    BaseError::Unreadable { image: image.to_string(), detail: detail.to_string() }
}

/// Whether an index entry serves `want` (arm64's `v8` variant is the same as none).
fn serves(d: &Descriptor, want: &Platform) -> bool {
    d.platform.as_ref().and_then(|p| p.platform()).is_some_and(|p| &p == want)
}

/// Reads `image`'s manifest for `platform` and its config.
pub async fn resolve(client: &Client, image: &str, platform: &Platform) -> Result<BaseImage, BaseError> {
    let reference: Reference = image.parse().map_err(|e: crate::reference::ReferenceError| BaseError::Reference {
        image: image.into(),
        detail: e.to_string(),
    })?;
    let reg = |source| BaseError::Registry { image: image.to_string(), source };
    let mut manifest = client.manifest_get(&reference).await.map_err(reg)?;
    if oci::is_index(&manifest.media_type) {
        let index: Index = serde_json::from_slice(&manifest.bytes).map_err(|e| unreadable(image, e))?;
        let Some(d) = index.manifests.iter().find(|d| !d.is_attestation() && serves(d, platform)) else {
            let available: Vec<String> = index
                .manifests
                .iter()
                .filter(|d| !d.is_attestation())
                .filter_map(|d| d.platform.as_ref().map(|p| p.to_string()))
                .collect();
            return Err(BaseError::NoPlatform {
                image: image.into(),
                platform: platform.clone(),
                available: if available.is_empty() { "none".into() } else { available.join(", ") },
            });
        };
        manifest = client.manifest_get(&reference.with_digest(d.digest.clone())).await.map_err(reg)?;
    }
    if oci::is_index(&manifest.media_type) {
        return Err(unreadable(
            image,
            format!("its {platform} entry {} is an index, not an image manifest", manifest.digest),
        ));
    }
    let m: ImageManifest = serde_json::from_slice(&manifest.bytes).map_err(|e| unreadable(image, e))?;
    let config_bytes = client.blob_get(&reference, &m.config.digest).await.map_err(reg)?;
    let config: serde_json::Value = serde_json::from_slice(&config_bytes).map_err(|e| unreadable(image, e))?;
    if oci::is_index(&manifest.media_type) || config.get("rootfs").is_none() {
        return Err(unreadable(image, "its manifest does not describe an image"));
    }
    // A single-platform image must still be the platform asked for.
    let os = config["os"].as_str().unwrap_or_default();
    let arch = config["architecture"].as_str().unwrap_or_default();
    let variant = config["variant"].as_str().filter(|v| !v.is_empty());
    if let Ok(p) = Platform::new(os, arch, variant)
        && p != *platform
        && !(p.os == platform.os && p.architecture == platform.architecture)
    {
        return Err(BaseError::NoPlatform {
            image: image.into(),
            platform: platform.clone(),
            available: p.to_string(),
        });
    }
    Ok(BaseImage {
        name: image.to_string(),
        reference: reference.with_digest(manifest.digest.clone()),
        config,
        layers: m.layers,
    })
}

/// The `ONBUILD` triggers of `image`'s config for `platform` (they run in a child build).
pub async fn onbuild_triggers(client: &Client, image: &str, platform: &Platform) -> Result<Vec<String>, BaseError> {
    let b = resolve(client, image, platform).await?;
    Ok(b.config["config"]["OnBuild"]
        .as_array()
        .map(|a| a.iter().filter_map(|t| t.as_str().map(String::from)).collect())
        .unwrap_or_default())
}

/// Streams every layer blob of `b` into `blobs` (an OCI layout's `blobs/sha256`), skipping
/// those already there. Returns their paths, in order.
pub async fn fetch_layers(client: &Client, b: &BaseImage, blobs: &Path) -> Result<Fetched, BaseError> {
    let began = std::time::Instant::now();
    let fetches = b.layers.iter().map(|l| async move {
        let path = blobs.join(l.digest.hex());
        let mut bytes = 0;
        if !path.is_file() {
            bytes = client
                .blob_get_to_file(&b.reference, &l.digest, l.size, &path)
                .await
                .map_err(|source| BaseError::Registry { image: b.name.clone(), source })?;
        }
        Ok::<_, BaseError>((path, bytes))
    });
    let got = futures_util::future::try_join_all(fetches).await?;
    let downloaded = got.iter().filter(|(_, n)| *n > 0).count();
    Ok(Fetched {
        bytes: got.iter().map(|(_, n)| n).sum(),
        downloaded,
        took: began.elapsed(),
        paths: got.into_iter().map(|(p, _)| p).collect(),
    })
}

/// A base image's layers on disk, and what downloading them took.
pub struct Fetched {
    /// One per layer, in order.
    pub paths: Vec<PathBuf>,
    /// Layers downloaded now (the others were on disk already), their bytes, and the time.
    pub downloaded: usize,
    pub bytes: u64,
    pub took: std::time::Duration,
}

/// An uncompressing reader for a layer blob, by its magic bytes.
pub fn open_layer(path: &Path) -> std::io::Result<Box<dyn Read + Send>> {
    let mut f = std::io::BufReader::with_capacity(256 * 1024, std::fs::File::open(path)?);
    let magic = std::io::BufRead::fill_buf(&mut f)?.to_vec();
    Ok(if magic.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::bufread::MultiGzDecoder::new(f))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(f)?)
    } else {
        Box::new(f)
    })
}

/// A tar path as a tree path: no leading `./` or `/`, no trailing `/`.
pub fn tar_path(p: &str) -> String {
    let cleaned = super::glob::clean(&format!("/{p}"));
    cleaned.trim_start_matches('/').to_string()
}

/// One tar entry's metadata, as read.
pub struct Read_ {
    pub path: String,
    pub node: Node,
    /// A hard link's target path.
    pub hardlink: Option<String>,
}

/// Reads the entries of an uncompressed tar stream; `content` says where each file's bytes are.
pub fn read_entries(
    r: impl Read,
    mut content: impl FnMut(&str, &mut tar::Entry<'_, &mut dyn Read>) -> std::io::Result<Option<Content>>,
) -> std::io::Result<Vec<Read_>> {
    let mut r: Box<dyn Read> = Box::new(r);
    let r: &mut dyn Read = &mut r;
    let mut archive = tar::Archive::new(r);
    let mut out = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let raw_path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let path = tar_path(&raw_path);
        let h = entry.header();
        // Empty numeric fields read as 0, as Go's archive/tar reads them.
        let mode = h.mode().unwrap_or(0) & 0o7777;
        let uid = h.uid().unwrap_or(0);
        let gid = h.gid().unwrap_or(0);
        let mtime = h.mtime().unwrap_or(0) as i64;
        let size = h.size()?;
        let typeflag = h.entry_type().as_byte();
        let link = entry.link_name_bytes().map(|l| String::from_utf8_lossy(&l).into_owned());
        let (major, minor) =
            (h.device_major().ok().flatten().unwrap_or(0), h.device_minor().ok().flatten().unwrap_or(0));
        let mut xattrs = Vec::new();
        if let Some(exts) = entry.pax_extensions()? {
            for ext in exts {
                let ext = ext?;
                if let Some(name) = ext.key().ok().and_then(|k| k.strip_prefix("SCHILY.xattr.")) {
                    xattrs.push((name.to_string(), ext.value_bytes().to_vec()));
                }
            }
        }
        xattrs.sort();
        let (kind, hardlink) = match typeflag {
            b'5' => (Kind::Dir, None),
            b'2' => (Kind::Symlink(link.unwrap_or_default()), None),
            b'1' => (Kind::Dir, Some(tar_path(&link.unwrap_or_default()))),
            b'3' | b'4' | b'6' => (Kind::Special { typeflag, major, minor }, None),
            b'0' | 0 | b'7' => {
                let c = content(&path, &mut entry)?;
                match c {
                    Some(c) => (Kind::File { size, content: c }, None),
                    None => continue,
                }
            }
            // PAX, GNU long names and the like are read by the tar crate; anything else is
            // not part of a filesystem.
            _ => continue,
        };
        out.push(Read_ { path, node: Node { kind, mode, uid, gid, mtime, inode: 0, xattrs }, hardlink });
    }
    Ok(out)
}

/// Applies one layer's entries to `tree`: whiteouts first (`.wh.name` removes `name`,
/// `.wh..wh..opq` empties its directory), then the entries in order.
pub fn apply_layer(tree: &mut Tree, entries: Vec<Read_>) {
    for e in &entries {
        let name = base(&e.path);
        if name == ".wh..wh..opq" {
            let dir = parent(&e.path).to_string();
            let children: Vec<String> = tree.children(&dir).iter().map(|(n, _)| super::tree::join(&dir, n)).collect();
            for c in children {
                tree.remove(&c);
            }
        } else if let Some(hidden) = name.strip_prefix(".wh.") {
            tree.remove(&super::tree::join(parent(&e.path), hidden));
        }
    }
    for mut e in entries {
        if base(&e.path).starts_with(".wh.") || e.path.is_empty() && !e.node.is_dir() {
            continue;
        }
        if let Some(target) = &e.hardlink {
            match tree.get(target) {
                Some(t) if matches!(t.kind, Kind::File { .. }) => {
                    let mut t = t.clone();
                    if t.inode == 0 {
                        t.inode = tree.new_inode();
                        tree.insert(target, t.clone());
                    }
                    e.node.kind = t.kind.clone();
                    e.node.inode = t.inode;
                }
                _ => continue,
            }
        } else if matches!(e.node.kind, Kind::File { .. }) {
            e.node.inode = tree.new_inode();
        }
        ensure_parents(tree, &e.path);
        if e.path.is_empty() {
            // The root's own entry keeps the root a directory.
            tree.insert("", e.node);
            continue;
        }
        if e.node.is_dir()
            && let Some(old) = tree.get(&e.path)
            && old.is_dir()
        {
            // A directory entry over a directory changes its metadata, not its content.
            tree.insert(&e.path, e.node);
            continue;
        }
        tree.remove(&e.path);
        tree.insert(&e.path, e.node);
    }
}

/// Creates missing parent directories of `path` (0755, root), as tar extractors do.
fn ensure_parents(tree: &mut Tree, path: &str) {
    let mut cur = String::new();
    let parts: Vec<&str> = path.split('/').collect();
    for p in &parts[..parts.len().saturating_sub(1)] {
        cur = super::tree::join(&cur, p);
        match tree.get(&cur) {
            Some(n) if n.is_dir() => {}
            _ => {
                tree.remove(&cur);
                tree.insert(&cur, Node::dir(0o755, 0, 0, 0));
            }
        }
    }
}

/// The root filesystem of `layers` (blob paths and media types, bottom first).
pub fn index(layers: &[(PathBuf, String)]) -> std::io::Result<Tree> {
    // Reading is the slow part: each layer on its own thread, applied in order after.
    let read: Vec<std::io::Result<Vec<Read_>>> = std::thread::scope(|s| {
        let handles: Vec<_> = layers
            .iter()
            .map(|(path, media_type)| {
                s.spawn(move || {
                    let blob = Arc::new(LayerBlob { path: path.clone(), media_type: media_type.clone() });
                    read_entries(open_layer(path)?, |p, _| {
                        Ok(Some(Content::Layer { blob: blob.clone(), entry: p.to_string() }))
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(std::io::Error::other("a layer reader panicked"))))
            .collect()
    });
    let mut tree = Tree::new();
    for entries in read {
        apply_layer(&mut tree, entries?);
    }
    Ok(tree)
}

/// Extracts the files `wanted` (tar paths) of one layer blob into `dir`; returns where each is.
pub fn extract(blob: &Path, wanted: &HashSet<String>, dir: &Path) -> std::io::Result<HashMap<String, PathBuf>> {
    let mut out = HashMap::new();
    let mut n = 0usize;
    read_entries(open_layer(blob)?, |p, entry| {
        if wanted.contains(p) {
            n += 1;
            let dest = dir.join(format!("x{n}"));
            let mut f = std::fs::File::create(&dest)?;
            std::io::copy(entry, &mut f)?;
            out.insert(p.to_string(), dest);
        }
        Ok(None)
    })?;
    Ok(out)
}

/// `user`'s uid and gid in an `/etc/passwd` text (its first line naming `user` with at least
/// four fields); a number that does not parse reads as 0, as BuildKit has it.
pub fn passwd_ids(text: &str, user: &str) -> Option<(u64, u64)> {
    text.lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 4 && f[0] == user)
        .map(|f| (f[2].parse().unwrap_or(0), f[3].parse().unwrap_or(0)))
}

/// `group`'s gid in an `/etc/group` text (its first line naming `group` with at least three
/// fields); a number that does not parse reads as 0.
pub fn group_id(text: &str, group: &str) -> Option<u64> {
    text.lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 3 && f[0] == group)
        .map(|f| f[2].parse().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_and_group_names() {
        let passwd = "root:x:0:0::/root:/bin/sh\nshort:x:5\napp:x:1000:1001::/home/app:/bin/sh\napp:x:7:7::/:/bin/sh\nodd:x:-1:nan:\n";
        assert_eq!(passwd_ids(passwd, "app"), Some((1000, 1001)), "the first line naming the user");
        assert_eq!(passwd_ids(passwd, "short"), None, "fewer than four fields");
        assert_eq!(passwd_ids(passwd, "odd"), Some((0, 0)), "numbers that do not parse read as 0");
        assert_eq!(passwd_ids(passwd, "nobody"), None);
        assert_eq!(passwd_ids("", ""), None);
        let group = "wheel:x:10:root\nstaff:x:50:\nbad:x\n";
        assert_eq!(group_id(group, "staff"), Some(50));
        assert_eq!(group_id(group, "bad"), None);
        assert_eq!(group_id(group, "none"), None);
    }

    fn layer(entries: &[(&str, u8, &[u8], &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, kind, data, link) in entries {
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(tar::EntryType::new(*kind));
            h.set_mode(if *kind == b'5' { 0o755 } else { 0o644 });
            h.set_size(data.len() as u64);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            if !link.is_empty() {
                h.set_link_name(link).unwrap();
            }
            h.set_path(path).unwrap();
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn whiteouts_and_hard_links() {
        let dir = tempfile::tempdir().unwrap();
        let l1 = dir.path().join("l1");
        let mut gz = flate2::write::GzEncoder::new(std::fs::File::create(&l1).unwrap(), flate2::Compression::fast());
        std::io::Write::write_all(
            &mut gz,
            &layer(&[
                ("./etc/", b'5', b"", ""),
                ("etc/passwd", b'0', b"root:x:0:0::/root:/bin/sh\n", ""),
                ("etc/group", b'0', b"root:x:0:\n", ""),
                ("etc/hard", b'1', b"", "etc/passwd"),
                ("opq/a", b'0', b"a", ""),
                ("usr/bin/sh", b'0', b"#!", ""),
            ]),
        )
        .unwrap();
        gz.finish().unwrap();
        let l2 = dir.path().join("l2");
        std::fs::write(
            &l2,
            layer(&[("etc/.wh.group", b'0', b"", ""), ("opq/.wh..wh..opq", b'0', b"", ""), ("opq/b", b'0', b"b", "")]),
        )
        .unwrap();
        let t = index(&[(l1.clone(), "gzip".into()), (l2, "tar".into())]).unwrap();
        assert!(t.get("etc/group").is_none());
        assert!(t.get("opq/a").is_none() && t.get("opq/b").is_some());
        assert!(t.get("usr").is_some_and(|n| n.is_dir()));
        let (p, h) = (t.get("etc/passwd").unwrap(), t.get("etc/hard").unwrap());
        assert_eq!(p.inode, h.inode);
        assert_eq!(p.kind, h.kind);
        let wanted: HashSet<String> = ["etc/passwd".to_string()].into();
        let got = extract(&l1, &wanted, dir.path()).unwrap();
        assert_eq!(std::fs::read_to_string(&got["etc/passwd"]).unwrap(), "root:x:0:0::/root:/bin/sh\n");
    }
}
