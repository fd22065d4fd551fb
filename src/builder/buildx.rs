//! buildx: builds one platform by running `docker buildx build` as a child process (an
//! argument vector, never a shell), streaming its progress and reading the result from
//! buildx's `--metadata-file`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;

use super::{BuildError, BuildSpec, Builder, Built, LineSink, Tail};
use crate::oci::Descriptor;
use crate::platform::Platform;

pub struct Buildx {
    /// The `docker` executable.
    pub docker: PathBuf,
    /// Archway's registry credential, handed to buildx through a credential helper.
    pub credentials: Option<std::sync::Arc<super::credentials::CredentialBridge>>,
    /// Build on this remote engine instead of the local one.
    pub remote: Option<RemoteEngine>,
}

/// A remote Docker engine buildx builds on, through `DOCKER_HOST` for this one invocation.
#[derive(Debug, Clone)]
pub struct RemoteEngine {
    /// `tcp://HOST:PORT` or `ssh://USER@HOST`.
    pub endpoint: String,
    /// `ca.pem`, `cert.pem`, `key.pem` for TLS (`DOCKER_TLS_VERIFY`/`DOCKER_CERT_PATH`).
    pub cert_dir: Option<PathBuf>,
}

impl Buildx {
    /// The argument vector for one platform (without the program).
    pub fn args(spec: &BuildSpec, platform: &Platform, layout: &Path, metadata_file: &Path) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "buildx".into(),
            "build".into(),
            "--platform".into(),
            platform.to_string(),
            "--progress".into(),
            "plain".into(),
            "--metadata-file".into(),
            metadata_file.display().to_string(),
            "--file".into(),
            spec.dockerfile.display().to_string(),
        ];
        for (k, v) in &spec.build_args {
            a.push("--build-arg".into());
            a.push(format!("{k}={v}"));
        }
        if let Some(t) = &spec.target {
            a.push("--target".into());
            a.push(t.clone());
        }
        for (k, v) in &spec.labels {
            a.push("--label".into());
            a.push(format!("{k}={v}"));
        }
        for (k, v) in &spec.annotations {
            a.push("--annotation".into());
            a.push(format!("{k}={v}"));
        }
        if let Some(v) = &spec.provenance {
            a.push(format!("--provenance={v}"));
        }
        if let Some(v) = &spec.sbom {
            a.push(format!("--sbom={v}"));
        }
        a.push("--output".into());
        a.push(format!("type=oci,tar=false,dest={}", layout.display()));
        a.push(spec.context.display().to_string());
        a
    }
}

/// Forwards each line to the sink and keeps the last few for the error message.
async fn pump(reader: impl AsyncRead + Unpin, platform: Platform, sink: LineSink, tail: Tail) {
    let mut lines = BufReader::new(reader).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        sink(&platform, &line);
        tail.push(&line);
    }
}

#[derive(serde::Deserialize)]
struct Metadata {
    #[serde(rename = "containerimage.descriptor")]
    descriptor: Option<Descriptor>,
    #[serde(rename = "containerimage.digest")]
    digest: Option<String>,
}

impl Builder for Buildx {
    fn name(&self) -> &'static str {
        "buildx"
    }

    async fn build(
        &self,
        spec: &BuildSpec,
        platform: &Platform,
        layout: &Path,
        sink: LineSink,
    ) -> Result<Built, BuildError> {
        let started = Instant::now();
        let meta_dir = tempfile::tempdir().map_err(|e| BuildError::Spawn {
            platform: platform.clone(),
            program: "docker".into(),
            detail: format!("no temporary directory: {e}"),
        })?;
        let meta_path = meta_dir.path().join("metadata.json");
        let args = Self::args(spec, platform, layout, &meta_path);
        let command_line = format!("{} {}", self.docker.display(), args.join(" "));
        tracing::debug!(%command_line, "running");
        let mut cmd = Command::new(&self.docker);
        cmd.args(&args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        // BuildKit's plain progress is what users paste into bug reports; keep it uncoloured.
        cmd.env("BUILDKIT_COLORS", "").env("NO_COLOR", "1");
        if let Some(c) = &self.credentials {
            c.apply(&mut cmd);
        }
        if let Some(r) = &self.remote {
            // The remote engine's own default builder; the user's selected local builder and
            // context must not apply.
            use crate::env::{BUILDX_BUILDER, DOCKER_CERT_PATH, DOCKER_CONTEXT, DOCKER_HOST, DOCKER_TLS_VERIFY};
            cmd.env(DOCKER_HOST, &r.endpoint).env_remove(DOCKER_CONTEXT).env_remove(BUILDX_BUILDER);
            match &r.cert_dir {
                Some(d) => cmd.env(DOCKER_TLS_VERIFY, "1").env(DOCKER_CERT_PATH, d),
                None => cmd.env_remove(DOCKER_TLS_VERIFY),
            };
        }
        let mut child = cmd.spawn().map_err(|e| BuildError::Spawn {
            platform: platform.clone(),
            program: self.docker.display().to_string(),
            detail: e.to_string(),
        })?;
        let tail = Tail::default();
        let out = tokio::spawn(pump(child.stdout.take().expect("piped"), platform.clone(), sink.clone(), tail.clone()));
        let err = tokio::spawn(pump(child.stderr.take().expect("piped"), platform.clone(), sink, tail.clone()));
        let status = child.wait().await.map_err(|e| BuildError::Spawn {
            platform: platform.clone(),
            program: self.docker.display().to_string(),
            detail: e.to_string(),
        })?;
        let _ = tokio::join!(out, err);
        if !status.success() {
            let tail = tail.render();
            let status = match status.code() {
                Some(c) => format!("status {c}"),
                None => "a signal".into(),
            };
            return Err(BuildError::Failed { platform: platform.clone(), command: command_line, status, tail });
        }
        let bad = |detail: String| BuildError::Result { platform: platform.clone(), detail };
        let raw = std::fs::read(&meta_path).map_err(|e| bad(format!("no metadata file from buildx: {e}")))?;
        let meta: Metadata =
            serde_json::from_slice(&raw).map_err(|e| bad(format!("buildx metadata is not JSON: {e}")))?;
        let descriptor = match (meta.descriptor, meta.digest) {
            (Some(d), _) => d,
            (None, Some(_)) | (None, None) => {
                return Err(bad(
                    "buildx metadata has no `containerimage.descriptor`; buildx 0.10 or newer is needed".into()
                ));
            }
        };
        if !layout.join("blobs/sha256").join(descriptor.digest.hex()).is_file() {
            return Err(bad(format!(
                "buildx reported {} but {} does not hold it",
                descriptor.digest,
                layout.display()
            )));
        }
        Ok(Built {
            platform: platform.clone(),
            descriptor,
            duration: started.elapsed(),
            layout: layout.to_path_buf(),
            mounts: vec![],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argument_vector() {
        let spec = BuildSpec {
            context: "ctx dir".into(),
            dockerfile: "ctx dir/Dockerfile".into(),
            build_args: vec![("A".into(), "x y".into())],
            target: Some("final".into()),
            provenance: Some("mode=min".into()),
            sbom: None,
            labels: vec![],
            annotations: vec![],
        };
        let p: Platform = "linux/arm/v7".parse().unwrap();
        let a = Buildx::args(&spec, &p, Path::new("/tmp/out dir"), Path::new("/tmp/m.json"));
        assert_eq!(
            a,
            [
                "buildx",
                "build",
                "--platform",
                "linux/arm/v7",
                "--progress",
                "plain",
                "--metadata-file",
                "/tmp/m.json",
                "--file",
                "ctx dir/Dockerfile",
                "--build-arg",
                "A=x y",
                "--target",
                "final",
                "--provenance=mode=min",
                "--output",
                "type=oci,tar=false,dest=/tmp/out dir",
                "ctx dir"
            ]
        );
    }
}
