//! Engines with the classic image store (no containerd snapshotter: Docker-in-Docker before
//! Docker 29, many CI engines), end to end. buildx's `docker` driver there refuses OCI output
//! and multi-platform builds, so archway builds each platform alone, loads it into that engine
//! and exports it with `docker save`. A second dockerd started by the test with the classic
//! store (`support::node`, `NodeOptions { classic_store: true }`) is (a) the engine archway
//! runs against (`DOCKER_HOST`), building native, cross and emulated platforms, and (b) a
//! remote node building linux/arm64 while the lab engine builds linux/amd64. Every result is
//! checked through the registry and run on the lab engine.

#![cfg(feature = "lab")]

mod support;

use support::lab::*;
use support::node::{Node, NodeOptions};

/// Keeps `assembled` (or a hybrid assembly) from taking Dockerfiles whose target has no RUN:
/// these tests are about buildx on the engine.
const PREFER: [&str; 2] = ["--prefer", "native,cross,remote,emulated"];

fn classic_node() -> Node {
    let node = Node::start_with(NodeOptions { classic_store: true, ..Default::default() });
    eprintln!("classic-store node {} started in {:?}", node.endpoint, node.started_in);
    let info = node.docker(&["info", "--format", "{{.Driver}} {{json .DriverStatus}}"]);
    let info = String::from_utf8_lossy(&info.stdout).to_string();
    assert!(info.starts_with("overlay2 ") && !info.contains("snapshotter"), "the node uses the classic store: {info}");
    node
}

/// The variables that point archway (and the docker CLI it runs) at `node`.
fn at(node: &Node) -> Vec<(&'static str, String)> {
    vec![
        ("DOCKER_HOST", node.endpoint.clone()),
        ("DOCKER_TLS_VERIFY", "1".into()),
        ("DOCKER_CERT_PATH", node.certs.display().to_string()),
    ]
}

fn run(ctx: &std::path::Path, args: &[&str], env: &[(&'static str, String)]) -> (bool, String, String) {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = archway_env(ctx, args, &env);
    let (stdout, stderr) = text(&out);
    (out.status.success(), stdout, stderr)
}

/// Each platform's strategy in `archway plan --format json`.
fn strategies(plan: &serde_json::Value) -> Vec<(String, String)> {
    plan["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["platform"].as_str().unwrap().to_string(), p["strategy"].as_str().unwrap().to_string()))
        .collect()
}

/// The pushed index under `repo:tag`: its platforms with their manifests, checked to be image
/// manifests whose config names the platform and whose layers are compressed.
fn check_index(repo: &str, tag: &str, want: &[&str]) {
    let (ct, body) = manifest(repo, tag).unwrap_or_else(|| panic!("{repo}:{tag} was pushed"));
    assert_eq!(ct, "application/vnd.oci.image.index.v1+json");
    let index = json(&body);
    let manifests = platform_manifests(&index);
    assert_eq!(manifests.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(), want, "{index:#}");
    for (platform, digest) in &manifests {
        let (ct, body) = manifest(repo, digest).expect("each platform pushed by digest");
        assert_eq!(ct, "application/vnd.oci.image.manifest.v1+json", "{platform}");
        assert_eq!(&sha256(&body), digest);
        let m = json(&body);
        for l in m["layers"].as_array().unwrap() {
            assert_eq!(l["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip", "{platform}: {m}");
        }
        let config = json(&blob(repo, m["config"]["digest"].as_str().unwrap()));
        let mut parts = platform.split('/').skip(1);
        assert_eq!(config["architecture"], parts.next().unwrap(), "{platform}: {config}");
        assert_eq!(config["variant"].as_str(), parts.next(), "{platform}: {config}");
        assert_eq!(config["os"], "linux");
    }
}

/// No temporary tag is left in the node's image store.
fn no_temporary_images(node: &Node) {
    let out = node.docker(&["image", "ls", "--format", "{{.Repository}}:{{.Tag}}"]);
    let images = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(!images.contains("archway-buildx"), "temporary tags were removed: {images}");
}

#[test]
fn builds_native_cross_and_emulated_platforms_on_an_engine_with_the_classic_store() {
    // linux/arm64 with a RUN on the target runs under the host's QEMU handlers: hold them.
    let _machine = support::machine::lock();
    let node = classic_node();
    let env = at(&node);
    let base = &lab().base;

    // Cross: the RUN is in a `$BUILDPLATFORM` stage; linux/amd64 is the engine's own.
    let cross = context(&format!(
        "FROM --platform=$BUILDPLATFORM {base} AS build\nARG TARGETARCH\nARG NONCE\n\
         RUN echo \"$NONCE built on $(uname -m) for $TARGETARCH\" > /out\n\
         FROM {base}\nCOPY --from=build /out /out\nCMD [\"sed\", \"s/^[0-9]* //\", \"/out\"]\n"
    ));
    let platforms = ["--platform", "linux/amd64,linux/arm64"];
    let (ok, stdout, stderr) =
        run(cross.path(), &[&["plan", "."][..], &platforms, &PREFER, &["--format", "json"]].concat(), &env);
    assert!(ok, "plan: {stderr}\n{stdout}");
    let plan = json(stdout.as_bytes());
    assert_eq!(
        strategies(&plan),
        [("linux/amd64".into(), "native".into()), ("linux/arm64".into(), "cross".into())],
        "{plan:#}"
    );
    let (ok, _, stderr) = run(cross.path(), &[&["plan", "."][..], &platforms, &PREFER].concat(), &env);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains(&format!("note: the engine at {} uses the classic image store", node.endpoint)),
        "the plan says how the classic store changes the build: {stderr}"
    );

    let repo = unique_repo("classic-cross");
    let tag = format!("{repo}:v1");
    let nonce = format!("NONCE={}", nonce());
    let annotation = ["--annotation", "org.opencontainers.image.title=classic"];
    let build = [&["build", "."][..], &platforms, &PREFER, &annotation, &["--build-arg", &nonce, "-t", &tag, "--push"]]
        .concat();
    let (ok, _, stderr) = run(cross.path(), &build, &env);
    assert!(ok, "build: {stderr}\n--- node's dockerd log:\n{}", node.log_tail());
    assert!(!stderr.contains("OCI exporter is not supported"), "{stderr}");
    check_index(&repo, "v1", &["linux/amd64", "linux/arm64"]);
    for (platform, digest) in platform_manifests(&json(&manifest(&repo, "v1").unwrap().1)) {
        let m = json(&manifest(&repo, &digest).unwrap().1);
        assert_eq!(m["annotations"]["org.opencontainers.image.title"], "classic", "{platform}: {m}");
    }
    assert_eq!(docker_run("linux/amd64", &tag), "built on x86_64 for amd64");
    assert_eq!(docker_run("linux/arm64", &tag), "built on x86_64 for arm64", "the RUN ran on the build platform");

    // Hybrid (the default order): buildx builds the `$BUILDPLATFORM` stage on the classic
    // store with `--output type=tar`, archway assembles the rest.
    let repo = unique_repo("classic-hybrid");
    let tag = format!("{repo}:v1");
    let build = [&["build", "."][..], &platforms, &["--build-arg", &nonce, "-t", &tag, "--push"]].concat();
    let (ok, _, stderr) = run(cross.path(), &build, &env);
    assert!(ok, "hybrid build: {stderr}\n--- node's dockerd log:\n{}", node.log_tail());
    assert!(stderr.contains("linux/arm64  assembled  stage `build`"), "{stderr}");
    check_index(&repo, "v1", &["linux/amd64", "linux/arm64"]);
    assert_eq!(docker_run("linux/arm64", &tag), "built on x86_64 for arm64", "the stage ran on the build platform");

    // Emulated: a RUN on the target, linux/arm64 under QEMU on the node.
    let emulated =
        context(&format!("FROM {base}\nARG NONCE\nRUN echo $NONCE && uname -m > /arch\nCMD [\"cat\", \"/arch\"]\n"));
    let platforms = ["--platform", "linux/arm64"];
    let (ok, stdout, stderr) =
        run(emulated.path(), &[&["plan", "."][..], &platforms, &PREFER, &["--format", "json"]].concat(), &env);
    assert!(ok, "plan: {stderr}\n{stdout}");
    assert_eq!(strategies(&json(stdout.as_bytes())), [("linux/arm64".into(), "emulated".into())], "{stdout}");
    let repo = unique_repo("classic-emulated");
    let tag = format!("{repo}:v1");
    let build = [&["build", "."][..], &platforms, &PREFER, &["--build-arg", &nonce, "-t", &tag, "--push"]].concat();
    let (ok, _, stderr) = run(emulated.path(), &build, &env);
    assert!(ok, "build: {stderr}\n--- node's dockerd log:\n{}", node.log_tail());
    check_index(&repo, "v1", &["linux/arm64"]);
    assert_eq!(docker_run("linux/arm64", &tag), "aarch64");

    // Attestations cannot be made there: the build says so and what to change, pushing nothing.
    let repo = unique_repo("classic-provenance");
    let tag = format!("{repo}:v1");
    let build =
        [&["build", "."][..], &platforms, &PREFER, &["--provenance", "mode=min", "-t", &tag, "--push"]].concat();
    let (ok, _, stderr) = run(emulated.path(), &build, &env);
    assert!(!ok, "{stderr}");
    assert!(stderr.contains("`--provenance` asks for an attestation"), "{stderr}");
    assert!(stderr.contains("containerd-snapshotter"), "the fix is named: {stderr}");
    assert_eq!(tag_digest(&repo, "v1"), None, "nothing was tagged");

    no_temporary_images(&node);
}

#[test]
fn a_node_with_the_classic_store_builds_arm64_while_amd64_builds_here() {
    // The node is amd64: it emulates arm64 with the host's QEMU handlers.
    let _machine = support::machine::lock();
    let node = classic_node();
    let marker = format!("archway-marker-{}", nonce());
    let ctx =
        context(&format!("FROM {}\nRUN echo {marker} && uname -m > /arch\nCMD [\"cat\", \"/arch\"]\n", lab().base));
    let certs = node.certs.display().to_string();
    let node_flag = format!("linux/arm64={}", node.endpoint);
    let both = ["--platform", "linux/amd64,linux/arm64", "--node", &node_flag, "--node-certs", &certs];

    let (ok, stdout, stderr) = run(ctx.path(), &[&["plan", "."][..], &both, &["--format", "json"]].concat(), &[]);
    assert!(ok, "plan: {stderr}\n{stdout}");
    let plan = json(stdout.as_bytes());
    assert_eq!(
        strategies(&plan),
        [("linux/amd64".into(), "native".into()), ("linux/arm64".into(), "remote".into())],
        "{plan:#}"
    );

    let repo = unique_repo("classic-node");
    let tag = format!("{repo}:v1");
    let (ok, _, stderr) = run(ctx.path(), &[&["build", "."][..], &both, &["-t", &tag, "--push"]].concat(), &[]);
    assert!(ok, "build: {stderr}\n--- node's dockerd log:\n{}", node.log_tail());
    assert!(stderr.contains("linux/arm64: building remote"), "{stderr}");
    assert!(
        stderr.contains(&format!("note: the engine at {} uses the classic image store", node.endpoint)),
        "only the node is named, the lab engine has the containerd store: {stderr}"
    );
    assert!(!stderr.contains("note: the engine at unix://"), "{stderr}");
    check_index(&repo, "v1", &["linux/amd64", "linux/arm64"]);
    // The marked RUN ran on the node once: for arm64 only.
    assert_eq!(node.cache_records(&marker), 1, "the node ran the RUN for one platform");
    assert_eq!(docker_run("linux/arm64", &tag), "aarch64");
    assert_eq!(docker_run("linux/amd64", &tag), "x86_64");
    no_temporary_images(&node);
}
