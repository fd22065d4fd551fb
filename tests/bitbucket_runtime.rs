//! Bitbucket Pipelines' default runtime, simulated for real (`support::authz`): a dockerd
//! with the classic image store whose authorization plugin `pipelines` refuses what
//! Bitbucket's documentation lists. First that the simulation is faithful (what Bitbucket
//! refuses is refused here with Bitbucket's message, what it allows works), then that
//! archway's probe sees that engine the way `tests/fixtures/capabilities/bitbucket-default.json`
//! records Bitbucket's.

#![cfg(feature = "lab")]

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::json;
use support::authz::{self, BitbucketEngine, Policy, Verdict, decide};
use support::lab::*;

fn show(o: &Output) -> String {
    let (out, err) = text(o);
    format!("exit {:?}\n--- stdout\n{out}\n--- stderr\n{err}", o.status.code())
}

const DENIED: &str = "authorization denied by plugin pipelines";

#[test]
fn the_plugin_decides_as_the_table_says() {
    let deny = |m: &str| Verdict::Deny(m.to_string());
    let privileged = json!({"Image": "x", "HostConfig": {"Privileged": true}});
    let plain = json!({"Image": "x", "HostConfig": {"Privileged": false, "Binds": ["/a:/b"]}});
    let mount = json!({"Image": "x", "HostConfig": {"Mounts": [{"Type": "bind", "Source": "/", "Target": "/h"}]}});
    let volume = json!({"Image": "x", "HostConfig": {"Mounts": [{"Type": "volume", "Target": "/v"}]}});
    let cases: &[(&str, &str, Option<&serde_json::Value>, Verdict)] = &[
        ("POST", "/v1.45/containers/create", Some(&privileged), deny("--privileged=true is not allowed")),
        ("POST", "/v1.41/containers/create?name=a", Some(&plain), Verdict::Allow),
        ("POST", "/containers/create", Some(&mount), deny("Command not supported")),
        ("POST", "/v1.45/containers/create", Some(&volume), Verdict::Allow),
        ("POST", "/v1.45/containers/create?platform=linux%2Farm64", Some(&plain), deny("--platform is not allowed")),
        ("POST", "/v1.45/containers/create?platform=", Some(&plain), Verdict::Allow),
        (
            "POST",
            "/v1.45/containers/abc/exec",
            Some(&json!({"Privileged": true})),
            deny("--privileged=true is not allowed"),
        ),
        ("POST", "/v1.45/containers/abc/exec", Some(&json!({"Cmd": ["true"]})), Verdict::Allow),
        (
            "POST",
            "/v1.45/images/create?fromImage=a&tag=b&platform=linux%2Farm64",
            None,
            deny("--platform is not allowed"),
        ),
        ("POST", "/v1.45/images/create?fromImage=a&tag=b", None, Verdict::Allow),
        ("POST", "/v1.41/build?remote=client-session&session=s&version=2", None, Verdict::Allow),
        ("POST", "/v1.41/build?platform=linux%2Farm64&version=2", None, deny("--platform is not allowed")),
        (
            "POST",
            "/v1.41/build?platform=linux%2Famd64%2Clinux%2Farm64&version=2",
            None,
            deny("multi-architecture builds are not allowed"),
        ),
        ("POST", "/v1.45/build?dockerfile=Dockerfile&version=1", None, Verdict::Allow),
        ("POST", "/grpc", None, deny("the buildx plugin is not allowed")),
        ("POST", "/session", None, Verdict::Allow),
        ("GET", "/v1.45/containers/abc/export", None, Verdict::Allow),
        ("GET", "/v1.45/images/get?names=a", None, Verdict::Allow),
        ("GET", "/v1.45/info", None, Verdict::Allow),
    ];
    for (method, uri, body, want) in cases {
        assert_eq!(&decide(method, uri, *body), want, "{method} {uri} {body:?}");
    }
}

/// Proves the simulation faithful: Bitbucket's refusals, with its message, and the builds it
/// allows working.
#[test]
fn the_simulated_engine_refuses_what_bitbucket_refuses() {
    let bb = BitbucketEngine::start();
    let cli20 = authz::docker_cli_20();
    let base = &lab().base;
    let marker = format!("bb-{}", nonce());
    let ctx = context(&format!("FROM {base}\nRUN echo {marker} > /built\nCMD [\"cat\", \"/built\"]\n"));
    let dir = ctx.path().to_str().unwrap();
    let run = |cli: &PathBuf, args: &[&str], buildkit: Option<&str>| {
        bb.plugin.clear();
        let mut c = bb.docker_command(cli, args);
        if let Some(v) = buildkit {
            c.env("DOCKER_BUILDKIT", v);
        }
        c.output().unwrap()
    };
    let refused = |o: &Output, what: &str, msg: &str| {
        let (_, err) = text(o);
        assert!(
            !o.status.success() && err.contains(DENIED) && err.contains(msg),
            "{what} should be refused with `{DENIED}: {msg}`: {}\nplugin:\n{}",
            show(o),
            bb.plugin.log()
        );
    };
    let works = |o: &Output, what: &str| {
        assert!(o.status.success(), "{what} should work: {}\nplugin:\n{}", show(o), bb.plugin.log());
    };
    let docker = PathBuf::from("docker");

    // The engine is Bitbucket's kind: the plugin is configured, the image store is classic.
    let info = bb.docker(&["info", "--format", "{{json .Plugins.Authorization}} {{json .DriverStatus}}"]);
    let (info, _) = text(&info);
    assert!(info.contains("\"pipelines\""), "docker info: {info}");
    assert!(!info.contains("io.containerd.snapshotter"), "the classic image store, not containerd's: {info}");

    // What Bitbucket refuses.
    let o = run(&docker, &["run", "--rm", "--privileged", base, "true"], None);
    refused(&o, "docker run --privileged", "--privileged=true is not allowed");
    let o = run(&docker, &["run", "--rm", "--platform", "linux/arm64", base, "uname", "-m"], None);
    refused(&o, "docker run --platform linux/arm64", "--platform is not allowed");
    let o = run(&docker, &["pull", "--platform", "linux/arm64", base], None);
    refused(&o, "docker pull --platform linux/arm64", "--platform is not allowed");
    // buildx: its `docker` driver needs `/grpc`, refused; its fallback driver needs a
    // privileged container, refused — Bitbucket users' error.
    for args in [vec!["buildx", "build", "--platform", "linux/arm64", dir], vec!["buildx", "build", dir]] {
        let o = run(&docker, &args, None);
        refused(&o, &format!("docker {}", args.join(" ")), "--privileged=true is not allowed");
        assert!(bb.plugin.denied().iter().any(|s| s.path() == "/grpc"), "buildx dialled /grpc:\n{}", bb.plugin.log());
    }
    // A CLI from 23 on with buildx installed makes `docker build` a buildx build: refused too,
    // as Bitbucket's answer to such images' users says ("docker client v23 … /usr/local/bin").
    let o = run(&docker, &["build", dir], Some("1"));
    refused(&o, "DOCKER_BUILDKIT=1 docker build (CLI with buildx)", "--privileged=true is not allowed");
    // Bitbucket's own CLI with --platform, one or several.
    let o = run(&cli20, &["build", "--platform", "linux/arm64", dir], Some("1"));
    refused(&o, "DOCKER_BUILDKIT=1 docker build --platform linux/arm64 (CLI 20.10)", "--platform is not allowed");
    let o = run(&cli20, &["build", "--platform", "linux/amd64,linux/arm64", dir], Some("1"));
    refused(
        &o,
        "DOCKER_BUILDKIT=1 docker build --platform a,b (CLI 20.10)",
        "multi-architecture builds are not allowed",
    );

    // What Bitbucket allows. `DOCKER_BUILDKIT=1 docker build .` is Bitbucket's documented way,
    // with the CLI it mounts (20.10): BuildKit through the Engine API (`/session` +
    // `/build?version=2`), no buildx.
    let o = run(&cli20, &["build", "-t", "bb-test:buildkit", dir], Some("1"));
    works(&o, "DOCKER_BUILDKIT=1 docker build (CLI 20.10)");
    let seen = bb.plugin.seen();
    let build = seen.iter().find(|s| s.path() == "/build").expect("a /build request");
    assert_eq!(build.query("version").as_deref(), Some("2"), "BuildKit: {}", build.line());
    assert!(seen.iter().any(|s| s.path() == "/session"), "a BuildKit session:\n{}", bb.plugin.log());
    assert!(!seen.iter().any(|s| s.path() == "/grpc"), "no buildx:\n{}", bb.plugin.log());
    // The classic builder (any CLI): what archway falls back to through the Engine API.
    let o = run(&docker, &["build", "-t", "bb-test:classic", dir], Some("0"));
    works(&o, "DOCKER_BUILDKIT=0 docker build");
    let seen = bb.plugin.seen();
    let build = seen.iter().find(|s| s.path() == "/build").expect("a /build request");
    assert_eq!(build.query("version").as_deref(), Some("1"), "the classic builder: {}", build.line());
    for image in ["bb-test:buildkit", "bb-test:classic"] {
        let o = run(&docker, &["run", "--rm", image], None);
        works(&o, &format!("docker run {image}"));
        assert_eq!(text(&o).0.trim(), marker, "{image} ran its RUN");
    }
    // What archway reads a built image's files through: a container's export, `docker save`.
    let o = run(&docker, &["create", "bb-test:classic"], None);
    works(&o, "docker create");
    let id = text(&o).0.trim().to_string();
    let out = tempfile::tempdir().unwrap();
    let fs_tar = out.path().join("fs.tar");
    let o = run(&docker, &["export", "-o", fs_tar.to_str().unwrap(), &id], None);
    works(&o, "docker export");
    assert!(bb.plugin.seen().iter().any(|s| s.path() == format!("/containers/{id}/export")), "{}", bb.plugin.log());
    let image_tar = out.path().join("image.tar");
    let o = run(&docker, &["save", "-o", image_tar.to_str().unwrap(), "bb-test:buildkit"], None);
    works(&o, "docker save");
    assert!(bb.plugin.seen().iter().any(|s| s.path() == "/images/get"), "{}", bb.plugin.log());
    let o = run(&docker, &["run", "--rm", base, "uname", "-m"], None);
    works(&o, "docker run (no flags)");
    assert_eq!(text(&o).0.trim(), "x86_64");

    // The main lab engine has no authorization plugin, and keeps none.
    let main = std::process::Command::new("docker")
        .args(["info", "--format", "{{json .Plugins.Authorization}}"])
        .env_remove("DOCKER_HOST")
        .output()
        .unwrap();
    assert_eq!(text(&main).0.trim(), "null", "the main engine: {}", show(&main));
}

/// archway's probe on the simulated engine sees what `bitbucket-default.json` says Bitbucket's
/// engine is: the plugin, privileged containers refused, buildx refused naming the plugin,
/// the classic image store.
#[test]
fn archway_probe_sees_the_bitbucket_runtime() {
    let bb = BitbucketEngine::start();
    let base = &lab().base;
    let ctx = context(&format!("FROM {base}\nRUN echo probe\n"));
    let saved = ctx.path().join("capabilities.json");
    let host = bb.docker_host();
    let config = bb.docker_config.path().to_str().unwrap();
    let out = archway_env(
        ctx.path(),
        &[
            "plan",
            "--platform",
            "linux/amd64,linux/arm64",
            "--format",
            "json",
            "--save-capabilities",
            "capabilities.json",
        ],
        &[("DOCKER_HOST", host.as_str()), ("DOCKER_CONFIG", config)],
    );
    let (stdout, stderr) = text(&out);
    eprintln!("archway plan: {}\nplugin:\n{}", show(&out), bb.plugin.log());
    let seen: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&saved).unwrap_or_else(|e| panic!("{e}: {stdout}{stderr}")))
            .unwrap();
    let fixture: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/capabilities/bitbucket-default.json"
        ))
        .unwrap(),
    )
    .unwrap();
    eprintln!("recorded: {}", serde_json::to_string_pretty(&seen).unwrap());
    let engine = &seen["engine"];
    for key in ["authorization_plugins", "accepts_privileged", "containerd_store"] {
        assert_eq!(engine[key], fixture["engine"][key], "engine.{key}: {engine}");
    }
    assert_eq!(engine["endpoint"], host.as_str());
    let refused = seen["buildx"]["refused"].as_str().unwrap_or_else(|| panic!("buildx refused: {}", seen["buildx"]));
    assert!(refused.contains("pipelines"), "the reason names the plugin: {refused}");
    // The probe asked the engine what Bitbucket would refuse, and was refused.
    assert!(
        bb.plugin.denied().iter().any(|s| s.path() == "/containers/create"),
        "the privileged check was refused:\n{}",
        bb.plugin.log()
    );
}

/// Not a check: prints the requests each command makes, as the plugin sees them, with
/// everything allowed and then with Bitbucket's rules. How the table in `support::authz` was
/// found; run it again after a Docker upgrade:
/// `cargo test --features lab --test bitbucket_runtime -- --ignored --nocapture requests_each`.
#[test]
#[ignore]
fn requests_each_command_makes() {
    for policy in [Policy::RecordOnly, Policy::Pipelines] {
        let bb = BitbucketEngine::start_with(policy);
        let base = &lab().base;
        let ctx = context(&format!("FROM {base}\nRUN echo built > /built\n"));
        let dir = ctx.path().to_str().unwrap();
        let mut clis: Vec<(String, PathBuf)> = vec![("docker".into(), PathBuf::from("docker"))];
        if Path::new("/usr/bin/docker").exists() {
            clis.push(("/usr/bin/docker".into(), PathBuf::from("/usr/bin/docker")));
        }
        let cli20 = authz::docker_cli_20();
        clis.push((cli20.display().to_string(), cli20));
        for (name, cli) in &clis {
            let version = bb.docker_command(cli, &["version", "--format", "{{.Client.Version}}"]).output().unwrap();
            let version = text(&version).0.trim().to_string();
            let commands: Vec<(Vec<&str>, Option<&str>)> = vec![
                (vec!["run", "--rm", "--privileged", base, "true"], None),
                (vec!["run", "--rm", "--platform", "linux/arm64", base, "true"], None),
                (vec!["pull", "--platform", "linux/arm64", base], None),
                (vec!["buildx", "build", "--platform", "linux/arm64", dir], None),
                (vec!["buildx", "build", dir], None),
                (vec!["build", dir], Some("1")),
                (vec!["build", "--platform", "linux/arm64", dir], Some("1")),
                (vec!["build", dir], Some("0")),
            ];
            for (args, buildkit) in commands {
                bb.plugin.clear();
                let mut c = bb.docker_command(cli, &args);
                if let Some(v) = buildkit {
                    c.env("DOCKER_BUILDKIT", v);
                }
                let out = c.output().unwrap();
                let (_, err) = text(&out);
                let err: Vec<&str> =
                    err.lines().filter(|l| l.contains("rror") || l.contains("denied")).take(3).collect();
                eprintln!(
                    "\n=== {policy:?} {name} {version}: {}{} → exit {:?} {}\n{}",
                    buildkit.map(|v| format!("DOCKER_BUILDKIT={v} ")).unwrap_or_default(),
                    args.join(" "),
                    out.status.code(),
                    err.join(" | "),
                    bb.plugin.log()
                );
            }
        }
    }
}
