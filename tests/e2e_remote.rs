//! Remote build nodes end to end: a second real dockerd (mutual TLS on a loopback port,
//! started by the test, see `support::node`) builds linux/arm64 while the lab engine builds
//! linux/amd64, and archway pushes one index. Where each platform was built is checked on the
//! engines themselves: the node's content store holds the arm64 image's top layer and not the
//! amd64 one, and each engine's BuildKit cache ran the marked RUN exactly once.

#![cfg(feature = "lab")]

mod support;

use std::net::TcpListener;

use support::lab::*;
use support::node::{self, Node};

/// A Dockerfile whose one RUN executes on the target CPU and carries a marker unique to this
/// run, so it is never a cache hit and can be found in an engine's build cache.
fn marker_dockerfile(marker: &str) -> String {
    format!("ARG BASE={}\nFROM $BASE\nRUN echo {marker} && uname -m > /arch\nCMD [\"cat\", \"/arch\"]\n", lab().base)
}

/// The digest of the last layer (the one the RUN made) of this image manifest.
fn top_layer(repo: &str, manifest_digest: &str) -> String {
    let (_, body) = manifest(repo, manifest_digest).unwrap_or_else(|| panic!("{repo}@{manifest_digest} exists"));
    let m = json(&body);
    m["layers"].as_array().and_then(|l| l.last()).and_then(|l| l["digest"].as_str()).expect("a layer").to_string()
}

#[test]
fn arm64_builds_on_the_node_and_amd64_here_into_one_index() {
    // The node is amd64 too, so it emulates arm64 with the host's QEMU handlers: hold them.
    let _machine = support::machine::lock();
    let node = Node::start();
    eprintln!("node {} started in {:?}", node.endpoint, node.started_in);
    let certs = node.certs.to_str().unwrap().to_string();
    let node_flag = format!("linux/arm64={}", node.endpoint);
    let marker = format!("archway-marker-{}", nonce());
    let ctx = context(&marker_dockerfile(&marker));

    // The plan names the node.
    let both = ["--platform", "linux/amd64,linux/arm64", "--node", &node_flag, "--node-certs", &certs];
    let out = archway(ctx.path(), &[&["plan", "."][..], &both, &["--format", "json"]].concat());
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "plan: {stderr}\n{stdout}");
    let plan = json(stdout.as_bytes());
    let arm =
        plan["platforms"].as_array().unwrap().iter().find(|p| p["platform"] == "linux/arm64").expect("arm64 planned");
    assert_eq!(arm["strategy"], "remote", "{plan}");
    assert!(arm["reason"].as_str().unwrap_or("").contains(&node.endpoint), "the reason names the node: {plan}");

    // The build.
    let repo = unique_repo("remote");
    let tag = format!("{repo}:v1");
    let out = archway(ctx.path(), &[&["build", "."][..], &both, &["-t", &tag, "--push"]].concat());
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "build: {stderr}\n--- node's dockerd log:\n{}", node.log_tail());
    assert!(stderr.contains("linux/arm64: building remote"), "{stderr}");

    // One index with exactly the two platforms.
    let (content_type, body) = manifest(&repo, "v1").expect("the tag was pushed");
    assert!(content_type.contains("index") || content_type.contains("manifest.list"), "{content_type}");
    let index = json(&body);
    let mut manifests = platform_manifests(&index);
    manifests.sort();
    let platforms: Vec<&str> = manifests.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"], "{index}");

    // Where each platform was built. A fresh node holds only what was built or pulled on it:
    // the arm64 RUN layer is there, the amd64 one is not.
    let arm_top = top_layer(&repo, &manifests[1].1);
    let amd_top = top_layer(&repo, &manifests[0].1);
    assert!(node.has_blob(&arm_top), "the arm64 layer {arm_top} was made on the node; it holds {:?}", node.blobs());
    assert!(!node.has_blob(&amd_top), "the amd64 layer {amd_top} was not made on the node");
    // And the marked RUN ran once on each engine: arm64 on the node, amd64 here.
    assert!(node.built_here(&marker), "the node's build cache has the marked RUN");
    assert_eq!(node.cache_records(&marker), 1, "the node ran the RUN for one platform only");
    assert_eq!(node::main_engine_cache_records(&marker), 1, "the local engine ran the RUN for amd64 only");

    // The result runs.
    assert_eq!(docker_run("linux/arm64", &tag), "aarch64");
    assert_eq!(docker_run("linux/amd64", &tag), "x86_64");
}

#[test]
fn an_unreachable_node_with_no_emulation_is_impossible_and_names_the_node() {
    // A port nothing listens on.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let endpoint = format!("tcp://127.0.0.1:{port}");
    let ctx = context(&marker_dockerfile(&format!("archway-marker-{}", nonce())));
    let out = archway(
        ctx.path(),
        &[
            "plan",
            ".",
            "--platform",
            "linux/arm64",
            "--node",
            &format!("linux/arm64={endpoint}"),
            "--no-emulation",
            "--format",
            "json",
        ],
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stderr}\n{stdout}");
    let plan = json(stdout.as_bytes());
    let p = &plan["platforms"][0];
    assert_eq!(p["platform"], "linux/arm64", "{plan}");
    assert_eq!(p["strategy"], "impossible", "{plan}");
    assert_eq!(p["foreign_code"], true, "{plan}");
    let tried = p["tried"].as_array().unwrap_or_else(|| panic!("`tried` lists the options: {plan}"));
    assert!(
        tried.iter().any(|t| t["strategy"] == "remote" && t.to_string().contains(&endpoint)),
        "a `remote` entry in `tried` names {endpoint}: {plan}"
    );
}
