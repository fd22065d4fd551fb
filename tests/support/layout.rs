//! Reads an OCI image layout directory (what `docker buildx build --output type=oci,tar=false`
//! and `archway build --output DIR` write) into its per-platform images: manifest, config and
//! uncompressed layer tars. Checks on the way what any registry client relies on: every blob's
//! digest and size, each layer's diff_id, and one non-empty history entry per layer. Test-only:
//! it never calls archway's code.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

/// One platform's image from a layout.
pub struct Image {
    /// The index descriptor's platform, `os/arch[/variant]`.
    pub platform: String,
    /// The index descriptor's `platform` object as written.
    pub descriptor_platform: Value,
    /// The manifest's digest; its bytes are in the layout's blobs.
    pub manifest_digest: String,
    pub manifest: Value,
    pub config: Value,
    /// Layer descriptors, in order.
    pub layers: Vec<Value>,
}

impl Image {
    /// The uncompressed tar of layer `i`, after checking its digest, size and diff_id.
    pub fn layer_tar(&self, layout: &Path, i: usize) -> Result<Vec<u8>, String> {
        let d = &self.layers[i];
        let digest = d["digest"].as_str().ok_or("a layer descriptor has no digest")?;
        let media_type = d["mediaType"].as_str().unwrap_or_default();
        let blob = read_blob(layout, digest, d["size"].as_u64())?;
        let tar = decompress(media_type, &blob).map_err(|e| format!("layer {i} ({digest}): {e}"))?;
        let diff_id = super::lab::sha256(&tar);
        let want = self.config["rootfs"]["diff_ids"][i].as_str().unwrap_or_default();
        if diff_id != want {
            return Err(format!(
                "{}: layer {i} ({digest}) uncompresses to {diff_id}, the config's diff_id is `{want}`",
                self.platform
            ));
        }
        Ok(tar)
    }
}

/// Every image manifest the layout's `index.json` reaches (through nested indexes), keyed by
/// platform; attestation manifests are left out. Fails on a missing or corrupt blob.
pub fn images(layout: &Path) -> Result<BTreeMap<String, Image>, String> {
    let index_path = layout.join("index.json");
    let index: Value =
        serde_json::from_slice(&std::fs::read(&index_path).map_err(|e| format!("{}: {e}", index_path.display()))?)
            .map_err(|e| format!("{}: {e}", index_path.display()))?;
    let mut out = BTreeMap::new();
    collect(layout, &index, None, &mut out, 0)?;
    if out.is_empty() {
        return Err(format!("{}: no image manifest", layout.display()));
    }
    Ok(out)
}

fn collect(
    layout: &Path,
    index: &Value,
    platform: Option<&Value>,
    out: &mut BTreeMap<String, Image>,
    depth: usize,
) -> Result<(), String> {
    if depth > 4 {
        return Err("indexes nested more than 4 deep".into());
    }
    for d in index["manifests"].as_array().ok_or("an index without `manifests`")? {
        if d["annotations"]["vnd.docker.reference.type"].as_str() == Some("attestation-manifest") {
            continue;
        }
        let digest = d["digest"].as_str().ok_or("a descriptor without digest")?;
        let bytes = read_blob(layout, digest, d["size"].as_u64())?;
        let doc: Value = serde_json::from_slice(&bytes).map_err(|e| format!("{digest}: {e}"))?;
        let media_type = d["mediaType"].as_str().or(doc["mediaType"].as_str()).unwrap_or_default();
        let p = d.get("platform").or(platform);
        if media_type.contains("index") || media_type.contains("manifest.list") {
            collect(layout, &doc, p, out, depth + 1)?;
            continue;
        }
        let config_digest = doc["config"]["digest"].as_str().ok_or_else(|| format!("{digest}: no config"))?;
        let config: Value = serde_json::from_slice(&read_blob(layout, config_digest, doc["config"]["size"].as_u64())?)
            .map_err(|e| format!("{config_digest}: {e}"))?;
        let descriptor_platform = p.cloned().unwrap_or(Value::Null);
        let plat = if descriptor_platform.is_object() { &descriptor_platform } else { &config };
        let mut name =
            format!("{}/{}", plat["os"].as_str().unwrap_or("?"), plat["architecture"].as_str().unwrap_or("?"));
        // containerd's normalisation: arm64/v8 is arm64 (a written variant still shows up in the
        // comparison of the descriptors' platforms).
        let variant = plat["variant"].as_str().filter(|v| !v.is_empty());
        let variant = variant.filter(|v| !(plat["architecture"] == "arm64" && *v == "v8"));
        if let Some(v) = variant {
            name = format!("{name}/{v}");
        }
        if name == "unknown/unknown" {
            continue;
        }
        let layers = doc["layers"].as_array().cloned().unwrap_or_default();
        check_history(&name, &config, layers.len())?;
        let image = Image {
            platform: name.clone(),
            descriptor_platform,
            manifest_digest: digest.to_string(),
            manifest: doc,
            config,
            layers,
        };
        if out.insert(name.clone(), image).is_some() {
            return Err(format!("two manifests for {name}"));
        }
    }
    Ok(())
}

/// A registry client pairs layers with `rootfs.diff_ids` and with the history entries that
/// are not `empty_layer`; all three must have the same length.
fn check_history(platform: &str, config: &Value, layers: usize) -> Result<(), String> {
    let diff_ids = config["rootfs"]["diff_ids"].as_array().map(Vec::len).unwrap_or(0);
    if diff_ids != layers {
        return Err(format!("{platform}: {layers} layers but {diff_ids} rootfs.diff_ids"));
    }
    if let Some(history) = config["history"].as_array() {
        let non_empty = history.iter().filter(|h| h["empty_layer"].as_bool() != Some(true)).count();
        if non_empty != layers {
            return Err(format!("{platform}: {layers} layers but {non_empty} history entries without empty_layer"));
        }
    }
    Ok(())
}

fn blob_path(layout: &Path, digest: &str) -> Result<PathBuf, String> {
    let (alg, hex) = digest.split_once(':').ok_or_else(|| format!("`{digest}` is not a digest"))?;
    Ok(layout.join("blobs").join(alg).join(hex))
}

/// A blob's bytes, checked against its digest and (when given) its size.
fn read_blob(layout: &Path, digest: &str, size: Option<u64>) -> Result<Vec<u8>, String> {
    let path = blob_path(layout, digest)?;
    let bytes = std::fs::read(&path).map_err(|e| format!("blob {digest}: {}: {e}", path.display()))?;
    let got = super::lab::sha256(&bytes);
    if got != digest {
        return Err(format!("blob {digest} hashes to {got}"));
    }
    if let Some(size) = size.filter(|&s| s != bytes.len() as u64) {
        return Err(format!("blob {digest} has {} bytes, its descriptor says {size}", bytes.len()));
    }
    Ok(bytes)
}

/// A layer blob as a tar, by its media type; the content must be what the type says.
fn decompress(media_type: &str, blob: &[u8]) -> Result<Vec<u8>, String> {
    let gzip = blob.starts_with(&[0x1f, 0x8b]);
    let zstd = blob.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]);
    if media_type.ends_with("gzip") {
        if !gzip {
            return Err(format!("`{media_type}` but not gzip data"));
        }
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(blob).read_to_end(&mut out).map_err(|e| format!("gunzip: {e}"))?;
        Ok(out)
    } else if media_type.ends_with("zstd") {
        if !zstd {
            return Err(format!("`{media_type}` but not zstd data"));
        }
        unzstd(blob)
    } else if media_type.ends_with(".tar") || media_type.ends_with("tar.diff") {
        if gzip || zstd {
            return Err(format!("`{media_type}` says uncompressed but the data is compressed"));
        }
        Ok(blob.to_vec())
    } else {
        Err(format!("unknown layer media type `{media_type}`"))
    }
}

/// zstd through the `zstd` program: no crate for it in this project, and only zstd-compressed
/// candidates need it.
fn unzstd(blob: &[u8]) -> Result<Vec<u8>, String> {
    let mut child = Command::new("zstd")
        .args(["-dc"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("`zstd -dc`: {e}"))?;
    let mut stdin = child.stdin.take().unwrap();
    let input = blob.to_vec();
    let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &input));
    let out = child.wait_with_output().map_err(|e| format!("`zstd -dc`: {e}"))?;
    writer.join().unwrap().map_err(|e| format!("`zstd -dc` stdin: {e}"))?;
    if !out.status.success() {
        return Err(format!("`zstd -dc`: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(out.stdout)
}

/// Pushes one image of a layout to `REGISTRY/REPO:TAG` through the registry API with `curl`
/// (plain HTTP, as the lab registry speaks): blobs, then the manifest's own bytes.
pub fn push_image(layout: &Path, image: &Image, reference: &str) -> Result<(), String> {
    let (name, tag) = reference.rsplit_once(':').ok_or_else(|| format!("`{reference}` has no tag"))?;
    let mut blobs = vec![image.manifest["config"]["digest"].as_str().unwrap_or_default().to_string()];
    blobs.extend(image.layers.iter().map(|l| l["digest"].as_str().unwrap_or_default().to_string()));
    for digest in blobs {
        push_blob(layout, name, &digest)?;
    }
    let media_type = image.manifest["mediaType"].as_str().unwrap_or("application/vnd.oci.image.manifest.v1+json");
    push_manifest(layout, name, tag, &image.manifest_digest, media_type)
}

/// Uploads the layout's blob `digest` to the repository `REGISTRY/REPO` (monolithic upload).
pub fn push_blob(layout: &Path, name: &str, digest: &str) -> Result<(), String> {
    let (host, repo) = name.split_once('/').ok_or_else(|| format!("`{name}` has no registry"))?;
    let start =
        curl(&["-X", "POST", "-D", "-", "-o", "/dev/null", &format!("http://{host}/v2/{repo}/blobs/uploads/")])?;
    let location = start
        .lines()
        .find_map(|l| l.to_ascii_lowercase().starts_with("location:").then(|| l[9..].trim().to_string()))
        .ok_or_else(|| format!("starting an upload to {name}: no Location in\n{start}"))?;
    let url = if location.starts_with('/') { format!("http://{host}{location}") } else { location };
    let sep = if url.contains('?') { '&' } else { '?' };
    let file = blob_path(layout, digest)?;
    curl(&[
        "-f",
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/octet-stream",
        "--data-binary",
        &format!("@{}", file.display()),
        &format!("{url}{sep}digest={digest}"),
    ])
    .map(drop)
}

/// PUTs the layout's blob `digest` as the manifest (or index) `REGISTRY/REPO:reference`.
pub fn push_manifest(layout: &Path, name: &str, reference: &str, digest: &str, media_type: &str) -> Result<(), String> {
    let (host, repo) = name.split_once('/').ok_or_else(|| format!("`{name}` has no registry"))?;
    let file = blob_path(layout, digest)?;
    curl(&[
        "-f",
        "-X",
        "PUT",
        "-H",
        &format!("Content-Type: {media_type}"),
        "--data-binary",
        &format!("@{}", file.display()),
        &format!("http://{host}/v2/{repo}/manifests/{reference}"),
    ])
    .map(drop)
}

/// Stores `bytes` as a blob of the layout; returns its digest.
pub fn write_blob(layout: &Path, bytes: &[u8]) -> String {
    let digest = super::lab::sha256(bytes);
    let path = blob_path(layout, &digest).unwrap();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
    digest
}

fn curl(args: &[&str]) -> Result<String, String> {
    let out = Command::new("curl").arg("-sS").args(args).output().map_err(|e| format!("curl: {e}"))?;
    if !out.status.success() {
        return Err(format!("curl {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
