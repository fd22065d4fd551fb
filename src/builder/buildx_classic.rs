//! buildx over the classic image store: buildx's `docker` driver on an engine without the
//! containerd snapshotter refuses `--output type=oci` ("OCI exporter is not supported for the
//! docker driver"), `type=docker` with a file, attestations and multi-platform builds; it
//! accepts a single `--platform` (native, cross, or emulated with QEMU) loaded into the engine.
//! So the image is loaded under a temporary tag, read back as `docker save` does
//! (`builder::saved`, the same converter the classic builder uses) into the OCI layout the
//! push-by-digest path reads, and the tag removed ([`Export::Engine`]). buildx ignores
//! `--annotation` there; the converter writes them onto the manifest instead.

use std::path::Path;

use super::buildx::{Buildx, Route, RunError};
use super::{BuildSpec, saved};
use crate::oci::Descriptor;
use crate::platform::Platform;
use crate::probe::engine::EngineEndpoint;

#[cfg(doc)]
use super::buildx::Export;

/// Repository of the temporary tags (`archway-buildx/linux-arm64:<pid>-<n>`).
const TEMPORARY_REPOSITORY: &str = "archway-buildx";

impl Buildx {
    /// Builds `platform` alone into the engine at `engine` under a temporary tag, and exports
    /// it from there into an OCI layout at `layout`.
    pub(super) async fn run_loaded(
        &self,
        spec: &BuildSpec,
        platform: &Platform,
        layout: &Path,
        route: Route,
        engine: &EngineEndpoint,
    ) -> Result<Descriptor, RunError> {
        if let Some(flag) = attestations(spec) {
            return Err(RunError::Unsupported(format!(
                "`{flag}` asks for an attestation, which the engine at {} cannot make: it keeps images in the classic image store, where buildx's `docker` driver makes none; \
                 drop `{flag}` (or set it to `false`), turn on the engine's containerd image store (`\"features\": {{\"containerd-snapshotter\": true}}` in daemon.json, the default from Docker 29), \
                 or select a `docker-container` builder (`docker buildx create --use`)",
                engine.host
            )));
        }
        let tag = temporary_tag(platform);
        let meta = tempfile::tempdir().map_err(|e| RunError::Spawn {
            program: "docker".into(),
            detail: format!("no temporary directory: {e}"),
        })?;
        let args = Self::args(
            spec,
            std::slice::from_ref(platform),
            &Self::image_output(&tag),
            &meta.path().join("metadata.json"),
        );
        self.invoke(spec, &args, route).await?;
        if engine.host.starts_with("ssh://") {
            return self.save_with_cli(&tag, layout, platform, &spec.annotations).await;
        }
        let docker = crate::probe::engine::connect(&engine.host, engine.cert_dir.as_deref()).await.map_err(|e| {
            RunError::Result(format!(
                "the image was built as `{tag}`, but exporting it failed: {e}; remove it with `docker image rm {tag}`"
            ))
        })?;
        saved::export(&docker, &tag, layout, platform, &spec.annotations).await.map_err(RunError::Result)
    }

    /// `docker save` and `docker image rm` through the CLI, for an engine archway reaches only
    /// through it (`ssh://`).
    async fn save_with_cli(
        &self,
        tag: &str,
        layout: &Path,
        platform: &Platform,
        annotations: &[(String, String)],
    ) -> Result<Descriptor, RunError> {
        let file = tempfile::NamedTempFile::new().map_err(|e| RunError::Result(format!("no temporary file: {e}")))?;
        let path = file.path().display().to_string();
        let saved = self.command().args(["save", "--output", &path, tag]).output().await;
        let removed = self.command().args(["image", "rm", tag]).output().await;
        if !removed.as_ref().is_ok_and(|o| o.status.success()) {
            tracing::warn!("could not remove the temporary image `{tag}` from the engine");
        }
        match saved {
            Ok(o) if o.status.success() => {}
            Ok(o) => {
                let why = String::from_utf8_lossy(&o.stderr).trim().to_string();
                return Err(RunError::Result(format!("`docker save {tag}` failed: {why}")));
            }
            Err(e) => return Err(RunError::Result(format!("cannot run `docker save {tag}`: {e}"))),
        }
        saved::convert(file.path(), layout, platform, annotations).await.map_err(RunError::Result)
    }
}

/// The attestation flag `spec` turns on (`--provenance`, `--sbom`), if any.
fn attestations(spec: &BuildSpec) -> Option<&'static str> {
    let on = |v: &Option<String>| v.as_deref().is_some_and(|v| !matches!(v.trim(), "false" | "0"));
    if on(&spec.provenance) {
        Some("--provenance")
    } else if on(&spec.sbom) {
        Some("--sbom")
    } else {
        None
    }
}

/// A tag no other build uses: this process, and a counter.
fn temporary_tag(platform: &Platform) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("{TEMPORARY_REPOSITORY}/{}:{}-{}", platform.slug(), std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(provenance: Option<&str>, sbom: Option<&str>) -> BuildSpec {
        BuildSpec {
            context: ".".into(),
            dockerfile: "Dockerfile".into(),
            build_args: vec![],
            target: None,
            provenance: provenance.map(Into::into),
            sbom: sbom.map(Into::into),
            labels: vec![],
            annotations: vec![],
            options: Default::default(),
        }
    }

    #[test]
    fn attestations_asked_for() {
        assert_eq!(attestations(&spec(None, None)), None);
        assert_eq!(attestations(&spec(Some("false"), Some("0"))), None, "turning them off is allowed");
        assert_eq!(attestations(&spec(Some("mode=min"), None)), Some("--provenance"));
        assert_eq!(attestations(&spec(Some("false"), Some("true"))), Some("--sbom"));
    }

    #[test]
    fn temporary_tags_differ_and_are_valid_names() {
        let p: Platform = "linux/arm/v7".parse().unwrap();
        let (a, b) = (temporary_tag(&p), temporary_tag(&p));
        assert_ne!(a, b);
        assert!(a.starts_with("archway-buildx/linux-arm-v7:"), "{a}");
        assert!(a.parse::<crate::reference::Reference>().is_ok(), "{a}");
    }

    #[test]
    fn loads_the_image_under_the_tag() {
        let a = Buildx::args(
            &spec(Some("false"), None),
            &["linux/arm64".parse().unwrap()],
            &Buildx::image_output("archway-buildx/linux-arm64:1-0"),
            Path::new("/m.json"),
        );
        let output = a.iter().position(|x| x == "--output").unwrap();
        assert_eq!(a[output + 1], "type=image,name=archway-buildx/linux-arm64:1-0");
        assert!(a.contains(&"--provenance=false".to_string()));
    }
}
