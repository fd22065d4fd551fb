//! local: what a build leaves on this machine after publishing, whatever the strategy — `load`
//! (the image of the engine's own platform, in the local engine) and `outputs` (extra
//! exporters: an OCI layout tar, a `docker load` tar).
//!
//! `load` pulls from the registry when the image was pushed (`POST /images/create` with the
//! registry credential, for the engine's platform): the engine gets exactly the published
//! manifest, whichever builder made it — the assembler and remote nodes leave nothing in the
//! local engine — on a classic image store and on containerd's alike. When nothing was
//! pushed, it loads a `docker load` tar made from the output layout (`POST /images/load`).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::StreamExt as _;

use super::{Outcome, PublishError};
use crate::error::UserError;
use crate::inputs::{BuildRequest, Exporter, Output};
use crate::oci::{self, Descriptor, ImageManifest, Index};
use crate::platform::Platform;
use crate::reference::{Digest, Reference};
use crate::registry::{Client, Credential};
use crate::report::Log;

/// Runs `load` and every exporter of `req`, after publishing. `engine`: the local engine's
/// platform, when one answered the probe.
pub async fn after_publish(
    req: &BuildRequest,
    client: &Client,
    outcome: &Outcome,
    engine: Option<&Platform>,
    log: &Log,
) -> Result<(), UserError> {
    if !req.load && req.exporters.is_empty() {
        return Ok(());
    }
    // A local OCI layout of the published image: the output layout, or one read back from
    // the registry (a pushed platform's base layers may exist only there).
    let (dir, _temp) = match &req.output {
        Output::Layout { dir, .. } => (dir.clone(), None),
        Output::Registry { .. } | Output::Digest { .. } if req.exporters.is_empty() => (PathBuf::new(), None),
        Output::Registry { .. } | Output::Digest { .. } => {
            let repo = req.repository().expect("pushing").clone();
            let t = tempfile::Builder::new()
                .prefix("archway-export-")
                .tempdir()
                .map_err(|e| UserError::failure("no temporary directory for `outputs`").caused_by(e))?;
            fetch_layout(client, &repo, &outcome.published.index, t.path())
                .await
                .map_err(|e| UserError::failure("cannot read the published image back for `outputs`").caused_by(e))?;
            (t.path().to_path_buf(), Some(t))
        }
    };
    let index = &outcome.published.index;
    for e in &req.exporters {
        match e {
            Exporter::Oci { dest, tar } => oci_export(&dir, index, dest, *tar),
            Exporter::Docker { dest } => {
                let p = engine.cloned().unwrap_or_else(crate::probe::host::platform);
                crate::files::replace_file(dest, |f| docker_archive(&dir, index, &p, &req.tags, f).map(drop))
            }
            Exporter::Local { dest, split } => super::rootfs::platform_images(&dir, index)
                .and_then(|images| super::rootfs::write_dir(&images, *split, dest).map_err(|e| e.to_string())),
            Exporter::Tar { dest, split } => super::rootfs::platform_images(&dir, index).and_then(|images| {
                crate::files::replace_file(dest, |f| {
                    super::rootfs::write_tar(&images, *split, std::io::BufWriter::new(f))
                        .and_then(|mut w| w.flush())
                        .map_err(|e| e.to_string())
                })
            }),
        }
        .map_err(|why| {
            UserError::failure(format!("cannot write the exporter `{}`: {why}", dest_of(e).display()))
                .hint("check that its directory exists and is writable")
        })?;
        log.line(&format!("==> wrote {}", dest_of(e).display()));
    }
    if req.load {
        // Every platform assembled: the plan did not ask the engine, so ask it now.
        let asked = match engine {
            Some(_) => None,
            None => engine_platform(req).await,
        };
        let Some(p) = engine.or(asked.as_ref()) else {
            return Err(UserError::failure("`load`: no Docker engine answers here, so nothing can be loaded")
                .hint("point `DOCKER_HOST` at an engine, or leave `load` out"));
        };
        let said = load(req, index, &dir, p).await.map_err(|why| {
            UserError::failure(format!("`load`: the {p} image could not be loaded into the local engine: {why}"))
                .hint("the image is published; `docker pull` it to try again")
        })?;
        log.line(&format!("==> loaded {said} ({p}) into the local engine"));
    }
    Ok(())
}

/// The local engine's platform, when it answers.
async fn engine_platform(req: &BuildRequest) -> Option<Platform> {
    let engine = crate::builder::engine::EngineBuilder::connect(&req.runner.engine).await.ok()?.docker;
    let v = engine.version().await.ok()?;
    format!("{}/{}", v.os?, v.arch?).parse().ok()
}

fn dest_of(e: &Exporter) -> &Path {
    match e {
        Exporter::Oci { dest, .. }
        | Exporter::Docker { dest }
        | Exporter::Local { dest, .. }
        | Exporter::Tar { dest, .. } => dest,
    }
}

/// Loads the engine's platform of the published image into the local engine; what it is
/// called there.
async fn load(req: &BuildRequest, index: &Descriptor, dir: &Path, p: &Platform) -> Result<String, String> {
    let engine =
        crate::builder::engine::EngineBuilder::connect(&req.runner.engine).await.map_err(|e| e.to_string())?.docker;
    let Some(repo) = req.repository() else {
        // Through an unnamed temporary file, streamed: an image of any size, never whole in memory.
        let mut tar = tempfile::tempfile().map_err(|e| format!("no temporary file: {e}"))?;
        tar = docker_archive(dir, index, p, &req.tags, tar)?;
        std::io::Seek::rewind(&mut tar).map_err(|e| e.to_string())?;
        let body = tokio_util::io::ReaderStream::with_capacity(tokio::fs::File::from_std(tar), 256 * 1024);
        let mut s = engine.import_image(
            bollard::query_parameters::ImportImageOptions { quiet: true, ..Default::default() },
            bollard::body_try_stream(body),
            None,
        );
        while let Some(item) = s.next().await {
            let info = item.map_err(|e| e.to_string())?;
            if let Some(e) = info.error_detail.and_then(|d| d.message) {
                return Err(e);
            }
        }
        return Ok(req.tags.first().map(ToString::to_string).unwrap_or_else(|| index.digest.to_string()));
    };
    let credentials = match req.registry.credentials.lookup(&repo.registry) {
        Ok(Some(Credential::Basic { username, password })) => Some(bollard::auth::DockerCredentials {
            username: Some(username),
            password: Some(password.expose().to_string()),
            serveraddress: Some(repo.registry.clone()),
            ..Default::default()
        }),
        Ok(Some(Credential::IdentityToken(t))) => Some(bollard::auth::DockerCredentials {
            identitytoken: Some(t.expose().to_string()),
            serveraddress: Some(repo.registry.clone()),
            ..Default::default()
        }),
        Ok(None) | Err(_) => None,
    };
    // By the tag when there is one (the engine then names it so), else by digest.
    let (from, tag) = match req.tags.iter().find(|t| t.tag.is_some() && matches!(req.output, Output::Registry { .. })) {
        Some(t) => (t.name(), t.tag.clone().unwrap_or_default()),
        None => (repo.name(), index.digest.to_string()),
    };
    let options = bollard::query_parameters::CreateImageOptions {
        from_image: Some(from.clone()),
        tag: Some(tag.clone()),
        platform: p.to_string(),
        ..Default::default()
    };
    let mut s = engine.create_image(Some(options), None, credentials);
    while let Some(item) = s.next().await {
        let info = item.map_err(|e| e.to_string())?;
        if let Some(e) = info.error_detail.and_then(|d| d.message) {
            return Err(e);
        }
    }
    let sep = if tag.starts_with("sha256:") { "@" } else { ":" };
    let pulled = format!("{from}{sep}{tag}");
    // The other tags name the same image.
    if let Output::Registry { tags } = &req.output {
        for t in tags.iter().skip(1) {
            let options = bollard::query_parameters::TagImageOptions { repo: Some(t.name()), tag: t.tag.clone() };
            engine.tag_image(&pulled, Some(options)).await.map_err(|e| e.to_string())?;
        }
    }
    Ok(pulled)
}

/// Reads the published image (`top`, an index or a manifest) and every blob it names from
/// `repo` into an OCI layout at `dir`.
async fn fetch_layout(client: &Client, repo: &Reference, top: &Descriptor, dir: &Path) -> Result<(), PublishError> {
    let blobs = dir.join("blobs/sha256");
    let write = |path: &Path, e| PublishError::WriteLayout { path: path.to_path_buf(), source: e };
    std::fs::create_dir_all(&blobs).map_err(|e| write(&blobs, e))?;
    let mut todo = vec![top.digest.clone()];
    while let Some(d) = todo.pop() {
        if blobs.join(d.hex()).exists() {
            // Fetched already: an index named twice is read once (see `publish::resolve`).
            continue;
        }
        let r = repo.with_digest(d.clone());
        let m = client.manifest_get(&r).await.map_err(|source| PublishError::Read {
            what: "manifest",
            reference: r.to_string(),
            source,
        })?;
        let path = blobs.join(d.hex());
        std::fs::write(&path, &m.bytes).map_err(|e| write(&path, e))?;
        if let Ok(index) = serde_json::from_slice::<Index>(&m.bytes)
            && !index.manifests.is_empty()
        {
            todo.extend(index.manifests.iter().map(|x| x.digest.clone()));
            continue;
        }
        if let Ok(image) = serde_json::from_slice::<ImageManifest>(&m.bytes) {
            for b in std::iter::once(&image.config).chain(&image.layers) {
                let path = blobs.join(b.digest.hex());
                if !path.exists() {
                    client.blob_get_to_file(repo, &b.digest, b.size, &path).await.map_err(|source| {
                        PublishError::Read {
                            what: "blob",
                            reference: repo.with_digest(b.digest.clone()).to_string(),
                            source,
                        }
                    })?;
                }
            }
        }
    }
    let top_index =
        Index { schema_version: 2, media_type: oci::OCI_INDEX.into(), manifests: vec![top.clone()], annotations: None };
    let files = [
        ("oci-layout", Bytes::from_static(b"{\"imageLayoutVersion\":\"1.0.0\"}\n")),
        ("index.json", Bytes::from(top_index.to_bytes())),
    ];
    for (name, bytes) in files {
        let path = dir.join(name);
        std::fs::write(&path, bytes).map_err(|e| write(&path, e))?;
    }
    Ok(())
}

/// `type=oci`: the layout at `dir` (whose image is `top`) as a tar at `dest`, or copied to the
/// directory `dest`.
fn oci_export(dir: &Path, top: &Descriptor, dest: &Path, tar: bool) -> Result<(), String> {
    let blobs = reachable(dir, &top.digest)?;
    let index =
        Index { schema_version: 2, media_type: oci::OCI_INDEX.into(), manifests: vec![top.clone()], annotations: None };
    let mut files: Vec<(String, Member)> = vec![
        ("oci-layout".into(), Member::Bytes(b"{\"imageLayoutVersion\":\"1.0.0\"}\n".to_vec())),
        ("index.json".into(), Member::Bytes(index.to_bytes())),
    ];
    for d in blobs {
        files.push((format!("blobs/sha256/{}", d.hex()), Member::Blob(dir.join("blobs/sha256").join(d.hex()))));
    }
    if tar {
        crate::files::replace_file(dest, |f| write_tar(f, &files).map(drop))
    } else {
        for (name, member) in files {
            let path = dest.join(name);
            std::fs::create_dir_all(path.parent().expect("in dest")).map_err(|e| e.to_string())?;
            match member {
                Member::Bytes(bytes) => std::fs::write(&path, bytes).map_err(|e| e.to_string())?,
                Member::Blob(from) => {
                    std::fs::copy(&from, &path).map_err(|e| format!("{}: {e}", from.display()))?;
                }
            }
        }
        Ok(())
    }
}

/// Every blob `top` reaches in the layout at `dir`, `top` included.
fn reachable(dir: &Path, top: &Digest) -> Result<Vec<Digest>, String> {
    let mut out = Vec::new();
    let mut todo = vec![top.clone()];
    while let Some(d) = todo.pop() {
        if out.contains(&d) {
            continue;
        }
        let bytes = std::fs::read(dir.join("blobs/sha256").join(d.hex())).map_err(|e| format!("{d}: {e}"))?;
        out.push(d);
        if let Ok(index) = serde_json::from_slice::<Index>(&bytes)
            && !index.manifests.is_empty()
        {
            todo.extend(index.manifests.into_iter().map(|m| m.digest));
        } else if let Ok(image) = serde_json::from_slice::<ImageManifest>(&bytes) {
            out.extend(std::iter::once(image.config).chain(image.layers).map(|b| b.digest));
        }
    }
    out.dedup();
    Ok(out)
}

/// Writes to `out` a tar `docker load` reads (its `manifest.json`, and an OCI layout besides,
/// as `docker save` writes since Docker 25) of the image for `platform` in the layout at `dir`,
/// tagged `tags`; gives `out` back. The layers are streamed from the layout's files.
pub fn docker_archive<W: std::io::Write>(
    dir: &Path,
    top: &Descriptor,
    platform: &Platform,
    tags: &[Reference],
    out: W,
) -> Result<W, String> {
    let read = |d: &Digest| std::fs::read(dir.join("blobs/sha256").join(d.hex())).map_err(|e| format!("{d}: {e}"));
    // Down the indexes to the platform's image manifest.
    let mut desc = top.clone();
    loop {
        let bytes = read(&desc.digest)?;
        match serde_json::from_slice::<Index>(&bytes) {
            Ok(index) if !index.manifests.is_empty() => {
                desc = index
                    .manifests
                    .into_iter()
                    .find(|m| {
                        !m.is_attestation()
                            && m.platform
                                .as_ref()
                                .and_then(oci::DescriptorPlatform::platform)
                                .is_none_or(|mp| &mp == platform)
                    })
                    .ok_or_else(|| format!("the image has no {platform} manifest"))?;
            }
            _ => break,
        }
    }
    let image: ImageManifest = serde_json::from_slice(&read(&desc.digest)?)
        .map_err(|e| format!("{}: not an image manifest: {e}", desc.digest))?;
    let path = |d: &Digest| format!("blobs/sha256/{}", d.hex());
    let repo_tags: Vec<String> = tags.iter().filter(|t| t.tag.is_some()).map(ToString::to_string).collect();
    let manifest_json = serde_json::json!([{
        "Config": path(&image.config.digest),
        "RepoTags": repo_tags,
        "Layers": image.layers.iter().map(|l| path(&l.digest)).collect::<Vec<_>>(),
    }]);
    let mut named = desc.clone();
    if let Some(t) = tags.iter().find(|t| t.tag.is_some()) {
        named = named
            .with_annotation("io.containerd.image.name", t.to_string())
            .with_annotation(oci::ANN_REF_NAME, t.tag.as_deref().unwrap_or_default());
    }
    let index =
        Index { schema_version: 2, media_type: oci::OCI_INDEX.into(), manifests: vec![named], annotations: None };
    let mut files: Vec<(String, Member)> = vec![
        ("oci-layout".into(), Member::Bytes(b"{\"imageLayoutVersion\":\"1.0.0\"}\n".to_vec())),
        ("index.json".into(), Member::Bytes(index.to_bytes())),
        ("manifest.json".into(), Member::Bytes(serde_json::to_vec(&manifest_json).map_err(|e| e.to_string())?)),
    ];
    for d in std::iter::once(&desc.digest)
        .chain(std::iter::once(&image.config.digest))
        .chain(image.layers.iter().map(|l| &l.digest))
    {
        files.push((path(d), Member::Blob(dir.join(path(d)))));
    }
    write_tar(out, &files)
}

/// What goes into an exported tar under a name: bytes made here, or a blob of the layout,
/// streamed from its file.
enum Member {
    Bytes(Vec<u8>),
    Blob(PathBuf),
}

/// Writes `files` as a tar to `out` (a name given twice is written once); gives `out` back.
fn write_tar<W: std::io::Write>(out: W, files: &[(String, Member)]) -> Result<W, String> {
    let mut t = tar::Builder::new(std::io::BufWriter::with_capacity(256 * 1024, out));
    let mut seen = std::collections::HashSet::new();
    for (name, member) in files {
        if !seen.insert(name.clone()) {
            continue;
        }
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o644);
        match member {
            Member::Bytes(bytes) => {
                h.set_size(bytes.len() as u64);
                h.set_cksum();
                t.append_data(&mut h, name, bytes.as_slice()).map_err(|e| e.to_string())?;
            }
            Member::Blob(path) => {
                let unreadable = |e: std::io::Error| format!("{}: {e}", path.display());
                let f = std::fs::File::open(path).map_err(unreadable)?;
                h.set_size(f.metadata().map_err(unreadable)?.len());
                h.set_cksum();
                t.append_data(&mut h, name, f).map_err(|e| e.to_string())?;
            }
        }
    }
    let mut out = t.into_inner().map_err(|e| e.to_string())?;
    out.flush().map_err(|e| e.to_string())?;
    out.into_inner().map_err(|e| e.error().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::io::Read as _;

    /// An OCI layout of one linux/amd64 image with one layer; its manifest's descriptor and
    /// every blob by name.
    fn layout(dir: &Path) -> (Descriptor, HashMap<String, Vec<u8>>) {
        let blobs = dir.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).unwrap();
        let mut all = HashMap::new();
        let mut put = |media_type: &str, bytes: Vec<u8>| {
            let d = Descriptor::of(media_type, &bytes);
            std::fs::write(blobs.join(d.digest.hex()), &bytes).unwrap();
            all.insert(format!("blobs/sha256/{}", d.digest.hex()), bytes);
            d
        };
        let config =
            put("application/vnd.oci.image.config.v1+json", br#"{"architecture":"amd64","os":"linux"}"#.to_vec());
        let layer = put("application/vnd.oci.image.layer.v1.tar+gzip", vec![7; 300_000]);
        let manifest = serde_json::json!({
            "schemaVersion": 2, "mediaType": oci::OCI_MANIFEST, "config": config, "layers": [layer],
        });
        let top = put(oci::OCI_MANIFEST, serde_json::to_vec(&manifest).unwrap());
        (top.with_platform(&"linux/amd64".parse().unwrap()), all)
    }

    fn members(tar: &[u8]) -> HashMap<String, Vec<u8>> {
        let mut out = HashMap::new();
        for e in tar::Archive::new(tar).entries().unwrap() {
            let mut e = e.unwrap();
            let mut bytes = Vec::new();
            e.read_to_end(&mut bytes).unwrap();
            out.insert(e.path().unwrap().display().to_string(), bytes);
        }
        out
    }

    #[test]
    fn exporters_stream_every_blob_of_the_image() {
        let dir = tempfile::tempdir().unwrap();
        let (top, blobs) = layout(dir.path());
        let out = tempfile::tempdir().unwrap();

        let tar = out.path().join("oci.tar");
        oci_export(dir.path(), &top, &tar, true).unwrap();
        let got = members(&std::fs::read(&tar).unwrap());
        for (name, bytes) in &blobs {
            assert_eq!(got.get(name), Some(bytes), "{name} in the OCI tar");
        }
        let index: Index = serde_json::from_slice(&got["index.json"]).unwrap();
        assert_eq!(index.manifests, vec![top.clone()]);

        let copy = out.path().join("oci");
        oci_export(dir.path(), &top, &copy, false).unwrap();
        for (name, bytes) in &blobs {
            assert_eq!(&std::fs::read(copy.join(name)).unwrap(), bytes, "{name} in the OCI directory");
        }

        let tags = ["127.0.0.1:5000/acme/app:1".parse().unwrap()];
        let docker = docker_archive(dir.path(), &top, &"linux/amd64".parse().unwrap(), &tags, Vec::new()).unwrap();
        let got = members(&docker);
        let manifest: serde_json::Value = serde_json::from_slice(&got["manifest.json"]).unwrap();
        assert_eq!(manifest[0]["RepoTags"][0], "127.0.0.1:5000/acme/app:1");
        let named = std::iter::once(&manifest[0]["Config"]).chain(manifest[0]["Layers"].as_array().unwrap());
        for name in named {
            let name = name.as_str().unwrap();
            assert_eq!(got.get(name), blobs.get(name), "{name} in the docker archive");
        }
    }
}
