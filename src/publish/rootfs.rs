//! rootfs: the `local` and `tar` exporters (`outputs: type=local,dest=DIR`, `type=tar,dest=FILE`),
//! as buildx writes them: each platform's root filesystem — its layers applied in order, OCI
//! whiteouts honoured — in a directory or a tar; with several platforms, under one
//! `os_arch[_variant]` directory each (`platform-split=false`: all in one).
//!
//! Two passes over the layers, streamed (no layer or file held in memory): the first finds which
//! entry of which layer each path ends as, the second copies exactly those entries out.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::builder::assemble::base::{open_layer, tar_path};
use crate::oci::{self, Descriptor, ImageManifest, Index};
use crate::platform::Platform;

const WHITEOUT: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";

/// Each platform's image of `top` in the layout at `dir`: (platform, its layer files).
pub fn platform_images(dir: &Path, top: &Descriptor) -> Result<Vec<(Platform, Vec<PathBuf>)>, String> {
    let blob = |d: &crate::reference::Digest| dir.join("blobs/sha256").join(d.hex());
    let read = |d: &Descriptor| std::fs::read(blob(&d.digest)).map_err(|e| format!("{}: {e}", d.digest));
    let mut out = Vec::new();
    let mut todo = vec![(top.clone(), None::<Platform>)];
    let mut seen = std::collections::HashSet::new();
    while let Some((d, platform)) = todo.pop() {
        if !seen.insert(d.digest.clone()) {
            continue;
        }
        let bytes = read(&d)?;
        if let Ok(index) = serde_json::from_slice::<Index>(&bytes)
            && !index.manifests.is_empty()
        {
            for m in index.manifests.iter().rev().filter(|m| !m.is_attestation()) {
                let p = m.platform.as_ref().and_then(oci::DescriptorPlatform::platform);
                todo.push((m.clone(), p.or_else(|| platform.clone())));
            }
            continue;
        }
        let image: ImageManifest = serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", d.digest))?;
        let platform = match platform {
            Some(p) => p,
            None => {
                // A single image without an index: its config says.
                let config: serde_json::Value = serde_json::from_slice(&read(&image.config)?)
                    .map_err(|e| format!("{}: {e}", image.config.digest))?;
                let field = |k: &str| config.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_string();
                let text = match field("variant") {
                    v if v.is_empty() => format!("{}/{}", field("os"), field("architecture")),
                    v => format!("{}/{}/{v}", field("os"), field("architecture")),
                };
                text.parse().map_err(|e| format!("the image's config names no platform archway knows: {e}"))?
            }
        };
        out.push((platform, image.layers.iter().map(|l| blob(&l.digest)).collect()));
    }
    Ok(out)
}

/// The directory name buildx gives a platform when it splits an export: `linux_arm_v7`.
pub fn split_name(p: &Platform) -> String {
    p.to_string().replace('/', "_")
}

/// Writes the root filesystems of `images` as one tar to `w`, each under `prefix(platform)`.
pub fn write_tar<W: Write>(images: &[(Platform, Vec<PathBuf>)], split: bool, w: W) -> io::Result<W> {
    let mut out = tar::Builder::new(w);
    out.follow_symlinks(false);
    for (platform, layers) in images {
        let prefix = if split && images.len() > 1 { format!("{}/", split_name(platform)) } else { String::new() };
        if !prefix.is_empty() {
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
            h.set_size(0);
            out.append_data(&mut h, &prefix, io::empty())?;
        }
        let last = final_entries(layers)?;
        for (i, layer) in layers.iter().enumerate() {
            let mut archive = tar::Archive::new(open_layer(layer)?);
            for (j, entry) in archive.entries()?.enumerate() {
                let mut entry = entry?;
                let path = tar_path(&String::from_utf8_lossy(&entry.path_bytes()));
                if path.is_empty() || last.get(&path) != Some(&(i, j)) {
                    continue;
                }
                copy_entry(&mut out, &mut entry, &format!("{prefix}{path}"), &prefix)?;
            }
        }
    }
    out.into_inner()
}

/// Writes the root filesystems of `images` into the directory `dest` (created).
pub fn write_dir(images: &[(Platform, Vec<PathBuf>)], split: bool, dest: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dest)?;
    // The tar goes through a temporary file beside `dest`, then is unpacked by the tar crate,
    // which keeps every entry inside `dest` (no `..`, no writing through a symlink).
    let parent = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new().prefix(".archway-rootfs-").tempfile_in(parent)?;
    write_tar(images, split, io::BufWriter::new(tmp.as_file_mut()))?.flush()?;
    let mut archive = tar::Archive::new(io::BufReader::new(std::fs::File::open(tmp.path())?));
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive.set_overwrite(true);
    archive.unpack(dest)
}

/// For each path of the final filesystem, the (layer, entry) it comes from.
fn final_entries(layers: &[PathBuf]) -> io::Result<BTreeMap<String, (usize, usize)>> {
    let mut last: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (i, layer) in layers.iter().enumerate() {
        let mut archive = tar::Archive::new(open_layer(layer)?);
        let mut added = Vec::new();
        for (j, entry) in archive.entries()?.enumerate() {
            let entry = entry?;
            let path = tar_path(&String::from_utf8_lossy(&entry.path_bytes()));
            if path.is_empty() {
                continue;
            }
            let (dir, name) = path.rsplit_once('/').unwrap_or(("", path.as_str()));
            // Whiteouts hide what the layers below have, not this layer's own entries.
            if name == OPAQUE {
                remove_below(&mut last, &format!("{dir}/"), i);
            } else if let Some(hidden) = name.strip_prefix(WHITEOUT) {
                let hidden = if dir.is_empty() { hidden.to_string() } else { format!("{dir}/{hidden}") };
                last.retain(|p, (l, _)| *l == i || !(p == &hidden || p.starts_with(&format!("{hidden}/"))));
            } else {
                added.push((path, j, entry.header().entry_type().is_dir()));
            }
        }
        for (path, j, is_dir) in added {
            if !is_dir {
                // A file over a directory below replaces the directory and what it held.
                remove_below(&mut last, &format!("{path}/"), i);
            }
            last.insert(path, (i, j));
        }
    }
    Ok(last)
}

/// Drops the entries under `dir_slash` ("" is the root) that come from layers below `layer`.
fn remove_below(last: &mut BTreeMap<String, (usize, usize)>, dir_slash: &str, layer: usize) {
    let dir_slash = dir_slash.trim_start_matches('/');
    last.retain(|p, (l, _)| *l == layer || !p.starts_with(dir_slash));
}

fn copy_entry<W: Write>(
    out: &mut tar::Builder<W>,
    entry: &mut tar::Entry<impl Read>,
    path: &str,
    prefix: &str,
) -> io::Result<()> {
    let mut h = entry.header().clone();
    let kind = h.entry_type();
    if kind.is_hard_link() {
        let target = entry.link_name_bytes().map(|l| tar_path(&String::from_utf8_lossy(&l))).unwrap_or_default();
        h.set_size(0);
        return out.append_link(&mut h, path, format!("{prefix}{target}"));
    }
    if kind.is_symlink() {
        // A symlink's target is kept as the image has it (absolute ones point into the image).
        let target = entry.link_name_bytes().map(|l| String::from_utf8_lossy(&l).into_owned()).unwrap_or_default();
        return out.append_link(&mut h, path, target);
    }
    if kind.is_dir() {
        h.set_size(0);
        return out.append_data(&mut h, path, io::empty());
    }
    out.append_data(&mut h, path, entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(dir: &Path, name: &str, entries: &[(&str, Option<&str>)]) -> PathBuf {
        let path = dir.join(name);
        let mut b = tar::Builder::new(std::fs::File::create(&path).unwrap());
        for (p, content) in entries {
            let mut h = tar::Header::new_ustar();
            match content {
                Some(c) => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(c.len() as u64);
                    h.set_mode(0o644);
                    b.append_data(&mut h, p, c.as_bytes()).unwrap();
                }
                None => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_size(0);
                    h.set_mode(0o755);
                    b.append_data(&mut h, p, io::empty()).unwrap();
                }
            }
        }
        b.finish().unwrap();
        path
    }

    fn listing(tar_bytes: &[u8]) -> Vec<(String, String)> {
        let mut a = tar::Archive::new(tar_bytes);
        a.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let p = e.path().unwrap().to_string_lossy().into_owned();
                let mut s = String::new();
                e.read_to_string(&mut s).unwrap();
                (p, s)
            })
            .collect()
    }

    #[test]
    fn layers_apply_in_order_with_whiteouts() {
        let t = tempfile::tempdir().unwrap();
        let l0 = layer(
            t.path(),
            "0",
            &[
                ("etc/", None),
                ("etc/a", Some("a0")),
                ("etc/b", Some("b0")),
                ("opt/", None),
                ("opt/x", Some("x0")),
                ("keep", Some("k")),
            ],
        );
        let l1 = layer(
            t.path(),
            "1",
            &[
                ("etc/.wh.b", Some("")),
                ("etc/a", Some("a1")),
                ("opt/", None),
                ("opt/.wh..wh..opq", Some("")),
                ("opt/y", Some("y1")),
            ],
        );
        let p: Platform = "linux/arm64".parse().unwrap();
        let bytes = write_tar(&[(p, vec![l0, l1])], true, Vec::new()).unwrap();
        let got = listing(&bytes);
        let names: Vec<&str> = got.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(names, ["etc", "keep", "etc/a", "opt", "opt/y"], "{got:?}");
        assert!(got.contains(&("etc/a".into(), "a1".into())));
    }

    #[test]
    fn several_platforms_are_split_as_buildx_does() {
        let t = tempfile::tempdir().unwrap();
        let a = layer(t.path(), "a", &[("bin", Some("amd64"))]);
        let b = layer(t.path(), "b", &[("bin", Some("armv7"))]);
        let images = vec![("linux/amd64".parse().unwrap(), vec![a]), ("linux/arm/v7".parse().unwrap(), vec![b])];
        let got = listing(&write_tar(&images, true, Vec::new()).unwrap());
        assert!(got.contains(&("linux_amd64/bin".into(), "amd64".into())), "{got:?}");
        assert!(got.contains(&("linux_arm_v7/bin".into(), "armv7".into())), "{got:?}");
        let dest = t.path().join("out");
        write_dir(&images, true, &dest).unwrap();
        assert_eq!(std::fs::read_to_string(dest.join("linux_arm_v7/bin")).unwrap(), "armv7");
        assert!(
            std::fs::read_dir(t.path()).unwrap().all(|e| !e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(".archway"))
        );
    }
}
