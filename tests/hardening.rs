//! Hardening, end to end on the lab (issue 12): `kill -9` at any moment never leaves a tag on
//! an incomplete image; two publishers racing for one tag leave it on one complete index,
//! one of theirs; a build's own output cannot issue GitHub workflow commands.

#![cfg(feature = "lab")]

mod support;

use std::process::Stdio;

use support::lab::*;

/// A no-RUN context (assembled: no engine) with `size` bytes that differ per `nonce`.
fn payload(nonce: &str, size: usize) -> tempfile::TempDir {
    let ctx = context(&format!("FROM {}\nARG TARGETARCH\nCOPY blob-$TARGETARCH /blob\n", lab().base));
    for arch in ["amd64", "arm64"] {
        let mut data = format!("{nonce} {arch}\n").into_bytes();
        let mut x: u64 = nonce.len() as u64 + arch.len() as u64;
        while data.len() < size {
            // Incompressible enough that compressing and pushing take a while.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            data.extend_from_slice(&x.to_le_bytes());
        }
        std::fs::write(ctx.path().join(format!("blob-{arch}")), data).unwrap();
    }
    ctx
}

/// Whether what `repo:tag` names is whole: an index whose every child manifest, config and
/// layer the registry holds. `None` when the tag does not exist.
fn complete(repo: &str, tag: &str) -> Option<Result<String, String>> {
    let (_, bytes) = manifest(repo, tag)?;
    let index = json(&bytes);
    let Some(children) = index["manifests"].as_array() else {
        return Some(Err(format!("{repo}:{tag} is not an index: {index}")));
    };
    for child in children {
        let d = child["digest"].as_str().unwrap();
        let Some((_, m)) = manifest(repo, d) else {
            return Some(Err(format!("{repo}:{tag} names {d}, which the registry lacks")));
        };
        let m = json(&m);
        let blobs = std::iter::once(&m["config"]).chain(m["layers"].as_array().into_iter().flatten());
        for b in blobs {
            let bd = b["digest"].as_str().unwrap();
            if blob_status(repo, bd) != 200 {
                return Some(Err(format!("{repo}:{tag} → {d} names blob {bd}, which the registry lacks")));
            }
        }
    }
    Some(Ok(sha256(&bytes)))
}

/// The registry's status for `HEAD` of a blob.
fn blob_status(repo: &str, digest: &str) -> u16 {
    let (registry, path) = repo.split_once('/').unwrap();
    let out = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-I"])
        .arg(format!("http://{registry}/v2/{path}/blobs/{digest}"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0)
}

#[test]
fn kill_9_at_any_moment_never_leaves_a_tag_on_an_incomplete_image() {
    let repo = unique_repo("kill9");
    let tag = format!("{repo}:1");
    let args = ["build", ".", "--platform", "linux/amd64,linux/arm64", "-t", tag.as_str(), "--push"];
    let no_engine = [("DOCKER_HOST", "unix:///nonexistent/docker.sock")];
    // One whole run first: how long a run takes, and a tag that must stay whole from now on.
    let began = std::time::Instant::now();
    let out = archway_env(payload(&nonce(), 6 << 20).path(), &args, &no_engine);
    let whole_run = began.elapsed();
    assert!(out.status.success(), "{}", text(&out).1);
    let mut last = complete(&repo, "1").expect("tagged").unwrap();
    let mut moved = 0;
    // Then runs with new content, each killed at another moment of its life.
    for tenth in 1..=11u32 {
        let ctx = payload(&format!("{}-{tenth}", nonce()), 6 << 20);
        let mut child = support::spawn::archway();
        support::spawn::pass_lab_env(&mut child)
            .args(args)
            .env(no_engine[0].0, no_engine[0].1)
            .current_dir(ctx.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = child.spawn().unwrap();
        std::thread::sleep(whole_run * tenth / 10);
        let _ = child.kill(); // SIGKILL: no cleanup, no destructor
        let _ = child.wait();
        match complete(&repo, "1") {
            None => panic!("killed at {tenth}/10 of a run: the tag disappeared"),
            Some(Ok(now)) => {
                moved += usize::from(now != last);
                last = now;
            }
            Some(Err(why)) => panic!("killed at {tenth}/10 of a run ({whole_run:?}): {why}"),
        }
    }
    eprintln!("a whole run took {whole_run:?}; {moved} of 11 killed runs had moved the tag (to a whole image)");
}

#[test]
fn two_publishers_racing_for_one_tag_leave_it_on_one_whole_index() {
    let repo = unique_repo("race");
    let tag = format!("{repo}:latest");
    for round in 0..3 {
        let (a, b) =
            (payload(&format!("a{round}-{}", nonce()), 2 << 20), payload(&format!("b{round}-{}", nonce()), 2 << 20));
        let start = |ctx: &std::path::Path| {
            let mut c = support::spawn::archway();
            support::spawn::pass_lab_env(&mut c)
                .args(["build", ".", "--platform", "linux/amd64,linux/arm64", "-t", &tag, "--push"])
                .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
                .current_dir(ctx)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            c.spawn().unwrap()
        };
        let (ca, cb) = (start(a.path()), start(b.path()));
        let (oa, ob) = (ca.wait_with_output().unwrap(), cb.wait_with_output().unwrap());
        assert!(oa.status.success() && ob.status.success(), "{}\n{}", text(&oa).1, text(&ob).1);
        let digest = |o: &std::process::Output| text(o).0.trim().rsplit('@').next().unwrap().to_string();
        let (da, db) = (digest(&oa), digest(&ob));
        assert_ne!(da, db, "different content, different indexes");
        let now = complete(&repo, "latest").expect("the tag exists").unwrap_or_else(|why| panic!("{why}"));
        assert!(now == da || now == db, "round {round}: the tag is on {now}, neither {da} nor {db}");
    }
}

/// A build's output is the user's (or an attacker's, through a dependency) text: on GitHub it
/// must not run workflow commands. Every line of builder output that looks like one is only
/// printed between `::stop-commands::TOKEN` and `::TOKEN::`.
#[test]
fn build_output_cannot_issue_github_workflow_commands() {
    let ctx = context(&format!(
        "FROM {}\nARG NONCE\nRUN echo \"$NONCE\" && echo '::error::injected by the build' && echo '::add-mask::not-a-secret'\n",
        lab().base
    ));
    let ws = tempfile::tempdir().unwrap();
    let out_file = ws.path().join("github_output");
    let nonce = format!("NONCE={}", nonce());
    let env: Vec<(&str, String)> = vec![
        ("GITHUB_ACTIONS", "true".into()),
        ("GITHUB_WORKSPACE", ctx.path().display().to_string()),
        ("GITHUB_REPOSITORY", "acme/widget".into()),
        ("GITHUB_REF", "refs/heads/main".into()),
        ("GITHUB_REF_NAME", "main".into()),
        ("GITHUB_REF_TYPE", "branch".into()),
        ("GITHUB_SHA", "0123456789abcdef0123456789abcdef01234567".into()),
        ("GITHUB_EVENT_NAME", "push".into()),
        ("GITHUB_OUTPUT", out_file.display().to_string()),
        ("INPUT_PLATFORMS", "linux/amd64".into()),
        ("INPUT_PUSH", "false".into()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = archway_env(ctx.path(), &["build", "--build-arg", &nonce, "--output", "out"], &env);
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let mut stopped: Option<String> = None;
    let mut injected = 0;
    for line in stderr.lines() {
        if let Some(token) = line.strip_prefix("::stop-commands::") {
            stopped = Some(token.to_string());
            continue;
        }
        if stopped.as_deref().is_some_and(|t| line == format!("::{t}::")) {
            stopped = None;
            continue;
        }
        if line.contains("::error::injected") || line.contains("::add-mask::not-a-secret") {
            injected += 1;
            assert!(stopped.is_some(), "a builder line ran as a workflow command: `{line}`\n{stderr}");
        }
    }
    assert!(injected > 0, "the build printed the lines: {stderr}");
}
