//! The assembler end to end in the lab: a no-RUN Dockerfile on the lab's busybox base,
//! assembled for linux/arm64 into an OCI layout by `Assembler` (no engine involved), pushed by
//! digest with archway's publish path, then run under QEMU to print what the Dockerfile set.

#![cfg(feature = "lab")]

mod support;

use std::sync::Arc;

use archway::builder::assemble::{AssembleOptions, Assembler};
use archway::builder::{BuildSpec, Builder as _};
use archway::platform::Platform;
use archway::registry::{Client, CredentialSource};
use support::lab::{self, lab};

fn spec(dir: &std::path::Path) -> BuildSpec {
    BuildSpec {
        context: dir.to_path_buf(),
        dockerfile: dir.join("Dockerfile"),
        build_args: vec![("GREETING".into(), "hello from".into())],
        target: None,
        provenance: None,
        sbom: None,
        labels: vec![],
        annotations: vec![],
        options: Default::default(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn assembled_arm64_image_runs_under_qemu() {
    let lab = lab();
    let dockerfile = format!(
        r#"FROM {base}
ARG TARGETARCH
ARG GREETING=hi
ENV GREETING="$GREETING" ARCH=$TARGETARCH
WORKDIR /app
COPY --chmod=755 bin/$TARGETARCH/app ./app
COPY --chown=nobody:nobody conf/ /etc/app/
COPY --link notes.txt .
LABEL org.example.arch=$TARGETARCH
USER nobody
ENTRYPOINT ["/app/app"]
CMD ["world"]
"#,
        base = lab.base
    );
    let ctx = lab::context(&dockerfile);
    let d = ctx.path();
    for arch in ["amd64", "arm64"] {
        std::fs::create_dir_all(d.join(format!("bin/{arch}"))).unwrap();
        std::fs::write(
            d.join(format!("bin/{arch}/app")),
            "#!/bin/sh\necho \"$GREETING $ARCH ($(cat /app/notes.txt)) as $(id -u):$(id -g) in $(pwd): $1\"\n",
        )
        .unwrap();
    }
    std::fs::create_dir_all(d.join("conf")).unwrap();
    std::fs::write(d.join("conf/app.toml"), "x = 1\n").unwrap();
    std::fs::write(d.join("notes.txt"), "notes").unwrap();
    std::fs::write(d.join(".dockerignore"), "bin/amd64\n").unwrap();

    let client = Client::new(CredentialSource::default(), vec![]);
    let asm = Assembler::new(client, AssembleOptions::default());
    let platform: Platform = "linux/arm64".parse().unwrap();
    let out = tempfile::tempdir().unwrap();
    let lines = Arc::new(std::sync::Mutex::new(Vec::new()));
    let l2 = lines.clone();
    let sink: archway::builder::LineSink = Arc::new(move |_, l: &str| l2.lock().unwrap().push(l.to_string()));
    let started = std::time::Instant::now();
    let built = asm.build(&spec(d), &platform, out.path(), sink).await.unwrap_or_else(|e| panic!("{e}"));
    eprintln!("assembled in {:?}: {}", started.elapsed(), lines.lock().unwrap().join("\n"));
    assert!(out.path().join("oci-layout").is_file());

    // The layout's config says what the Dockerfile set.
    let blob = |d: &archway::reference::Digest| std::fs::read(out.path().join("blobs/sha256").join(d.hex())).unwrap();
    let manifest = lab::json(&blob(&built.descriptor.digest));
    let config = lab::json(&blob(&manifest["config"]["digest"].as_str().unwrap().parse().unwrap()));
    assert_eq!(config["architecture"], "arm64");
    assert_eq!(config["config"]["Entrypoint"], serde_json::json!(["/app/app"]));
    assert_eq!(config["config"]["WorkingDir"], "/app");
    assert_eq!(config["config"]["Labels"]["org.example.arch"], "arm64");
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), manifest["layers"].as_array().unwrap().len());

    // A second build of the same inputs gives the same manifest.
    let out2 = tempfile::tempdir().unwrap();
    let again = asm.build(&spec(d), &platform, out2.path(), Arc::new(|_, _| {})).await.unwrap();
    assert_eq!(again.descriptor.digest, built.descriptor.digest, "assembling is deterministic");

    let repo = lab::unique_repo("assembled");
    let reference: archway::reference::Reference = repo.parse().unwrap();
    let client = Client::new(CredentialSource::default(), vec![]);
    archway::publish::push_by_digest(
        &client,
        &reference,
        out.path(),
        &built.descriptor,
        &built.mounts,
        &Default::default(),
        &|_, _| {},
    )
    .await
    .unwrap();
    let printed = lab::docker_run("linux/arm64", &format!("{repo}@{}", built.descriptor.digest));
    assert_eq!(printed, "hello from arm64 (notes) as 65534:65534 in /app: world");
}

#[tokio::test(flavor = "multi_thread")]
async fn escaping_sources_are_errors_naming_the_path() {
    let lab = lab();
    for (source, setup, want) in [
        ("../x", None, "`../x` leaves the build context"),
        ("out", Some(("out", "../../etc")), "`out`"),
        ("shadow", Some(("shadow", "/etc/shadow")), "/etc/shadow"),
    ] {
        let ctx = lab::context(&format!("FROM {}\nCOPY {source} /x\n", lab.base));
        if let Some((name, target)) = setup {
            std::os::unix::fs::symlink(target, ctx.path().join(name)).unwrap();
        }
        let asm = Assembler::new(Client::new(CredentialSource::default(), vec![]), AssembleOptions::default());
        let out = tempfile::tempdir().unwrap();
        let e = asm
            .build(&spec(ctx.path()), &"linux/arm64".parse().unwrap(), out.path(), Arc::new(|_, _| {}))
            .await
            .expect_err(source);
        let msg = e.to_string();
        assert!(msg.contains(want) && msg.contains("Dockerfile:2"), "{source}: {msg}");
    }
}
