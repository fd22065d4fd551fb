//! archway run the way each CI runs it — the environment a GitHub Actions runner, a GitLab job
//! and a Bitbucket pipe give it — against the lab: inputs, tags from commit metadata, log
//! dialect, output files. And the secret-leak check: one known password in every credential
//! variable of every CI, and no byte sequence of it in anything archway printed or wrote.

#![cfg(feature = "lab")]

mod support;

use std::collections::HashMap;
use std::path::Path;

use support::lab::*;

const PASSWORD: &str = "Pa55-w0rd%with,odd:chars";

/// Every file under `dir`, as bytes.
fn files_under(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push((p.display().to_string(), std::fs::read(&p).unwrap()));
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// No byte sequence of the password (nor of its longer pieces) anywhere but GitHub's mask line.
fn assert_no_leak(what: &str, out: &std::process::Output, dir: &Path) {
    let pieces: Vec<&[u8]> = vec![PASSWORD.as_bytes(), &PASSWORD.as_bytes()[..10], &PASSWORD.as_bytes()[8..]];
    let stdout_stderr = [("stdout", out.stdout.clone()), ("stderr", out.stderr.clone())];
    for (name, bytes) in stdout_stderr.iter().map(|(n, b)| (n.to_string(), b.clone())).chain(files_under(dir)) {
        for line in bytes.split(|b| *b == b'\n') {
            if line.starts_with(b"::add-mask::") {
                continue;
            }
            for p in &pieces {
                assert!(!contains(line, p), "{what}: {name} leaks the password: {}", String::from_utf8_lossy(line));
            }
        }
    }
}

fn workspace() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("src")).unwrap();
    std::fs::write(
        d.path().join("src/Dockerfile"),
        format!("ARG BASE={}\nFROM $BASE\nRUN uname -m > /arch\nCMD [\"cat\", \"/arch\"]\n", lab().base),
    )
    .unwrap();
    d
}

fn config_labels(repo: &str, tag: &str) -> serde_json::Value {
    let index = json(&manifest(repo, tag).unwrap().1);
    let child = json(&manifest(repo, index["manifests"][0]["digest"].as_str().unwrap()).unwrap().1);
    json(&blob(repo, child["config"]["digest"].as_str().unwrap()))["config"]["Labels"].clone()
}

#[test]
fn github_action_inputs_outputs_and_summary() {
    let _machine = support::machine::lock();
    let ws = workspace();
    let repo = unique_repo("gh");
    let out_file = ws.path().join("github_output");
    let summary = ws.path().join("step_summary");
    let event = ws.path().join("event.json");
    std::fs::write(&event, r#"{"repository":{"default_branch":"main"}}"#).unwrap();
    let env = vec![
        ("GITHUB_ACTIONS", "true".to_string()),
        ("GITHUB_WORKSPACE", ws.path().join("src").display().to_string()),
        ("GITHUB_REPOSITORY", "Acme/Widget".into()),
        ("GITHUB_SERVER_URL", "https://github.com".into()),
        ("GITHUB_REF", "refs/heads/main".into()),
        ("GITHUB_REF_NAME", "main".into()),
        ("GITHUB_REF_TYPE", "branch".into()),
        ("GITHUB_SHA", "0123456789abcdef0123456789abcdef01234567".into()),
        ("GITHUB_EVENT_NAME", "push".into()),
        ("GITHUB_EVENT_PATH", event.display().to_string()),
        ("GITHUB_OUTPUT", out_file.display().to_string()),
        ("GITHUB_STEP_SUMMARY", summary.display().to_string()),
        ("GITHUB_ACTOR", "octocat".into()),
        ("GITHUB_TOKEN", PASSWORD.into()),
        ("INPUT_PASSWORD", PASSWORD.into()),
        ("INPUT_USERNAME", "octocat".into()),
        ("INPUT_GITHUB-TOKEN", PASSWORD.into()),
        ("INPUT_IMAGE", repo.clone()),
        ("INPUT_PLATFORMS", "linux/amd64,\n linux/arm64\n".into()),
        ("INPUT_PUSH", "true".into()),
        ("INPUT_BUILD-ARGS", "A=1\nB=2".into()),
        ("ARCHWAY_REGISTRY_PASSWORD", PASSWORD.into()),
        ("ARCHWAY_REGISTRY_USERNAME", "x".into()),
    ];
    let out = archway_env(ws.path(), &["build"], &env);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.starts_with("::add-mask::"), "the mask comes first: {stderr}");
    assert!(stderr.contains("::group::Plan") && stderr.contains("::endgroup::"), "{stderr}");
    // Tags from the commit: default branch → edge (never latest), branch, short sha.
    for tag in ["edge", "main", "sha-0123456"] {
        assert!(tag_digest(&repo, tag).is_some(), "tag {tag}: {stderr}");
    }
    assert!(tag_digest(&repo, "latest").is_none(), "a branch push never moves latest");
    let digest = tag_digest(&repo, "edge").unwrap();
    assert!(stdout.contains(&digest));
    let outputs = std::fs::read_to_string(&out_file).unwrap();
    assert!(outputs.contains(&format!("digest={digest}\n")), "{outputs}");
    assert!(outputs.contains("platforms=linux/amd64,linux/arm64\n"), "{outputs}");
    let delim = outputs.lines().find_map(|l| l.strip_prefix("tags<<")).expect("tags as a heredoc");
    let tags_block: Vec<&str> = outputs
        .split(&format!("tags<<{delim}\n"))
        .nth(1)
        .unwrap()
        .split(&format!("\n{delim}"))
        .next()
        .unwrap()
        .lines()
        .collect();
    assert_eq!(tags_block.len(), 3, "{outputs}");
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(md.contains("| linux/arm64 | emulated |"), "{md}");
    let labels = config_labels(&repo, "edge");
    assert_eq!(labels["org.opencontainers.image.revision"], "0123456789abcdef0123456789abcdef01234567");
    assert_eq!(labels["org.opencontainers.image.source"], "https://github.com/Acme/Widget");
    assert_no_leak("github", &out, ws.path());
}

#[test]
fn gitlab_job_with_zero_configuration_writes_a_dotenv_report() {
    let _machine = support::machine::lock();
    let ws = workspace();
    let repo = unique_repo("gl");
    let env = vec![
        ("GITLAB_CI", "true".to_string()),
        ("CI_PROJECT_DIR", ws.path().join("src").display().to_string()),
        ("CI_PROJECT_URL", "https://gitlab.example.com/acme/widget".into()),
        ("CI_PROJECT_NAME", "widget".into()),
        ("CI_REGISTRY", lab().registry.clone()),
        ("CI_REGISTRY_IMAGE", repo.clone()),
        ("CI_REGISTRY_USER", "gitlab-ci-token".into()),
        ("CI_REGISTRY_PASSWORD", PASSWORD.into()),
        ("CI_JOB_TOKEN", PASSWORD.into()),
        ("CI_COMMIT_BRANCH", "Feature/Login_Page".into()),
        ("CI_COMMIT_REF_NAME", "Feature/Login_Page".into()),
        ("CI_COMMIT_SHA", "89abcdef0123456789abcdef0123456789abcdef".into()),
        ("CI_DEFAULT_BRANCH", "main".into()),
        ("CI_PIPELINE_SOURCE", "push".into()),
        ("ARCHWAY_PUSH", "true".into()),
    ];
    let out = archway_env(ws.path(), &["build"], &env);
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("section_start:") && stderr.contains("section_end:"), "collapsible sections: {stderr}");
    let index = json(&manifest(&repo, "Feature-Login_Page").expect("branch slug tag").1);
    assert_eq!(platforms_of(&index), ["linux/amd64", "linux/arm64"], "the default platforms");
    assert!(tag_digest(&repo, "sha-89abcde").is_some());
    assert!(tag_digest(&repo, "latest").is_none(), "not the default branch");
    let dotenv = std::fs::read_to_string(ws.path().join("src/archway.env")).unwrap();
    let vars: HashMap<&str, &str> = dotenv.lines().filter_map(|l| l.split_once('=')).collect();
    assert!(vars.len() <= 20, "{dotenv}");
    assert_eq!(vars["ARCHWAY_RESULT_DIGEST"], tag_digest(&repo, "Feature-Login_Page").unwrap());
    assert_eq!(vars["ARCHWAY_RESULT_IMAGE"], repo);
    assert!(vars.keys().all(|k| k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')));
    assert_no_leak("gitlab", &out, ws.path());
}

#[test]
fn bitbucket_pipe_ends_with_a_tick_or_a_cross() {
    let ws = workspace();
    let repo = unique_repo("bb");
    let shared = ws.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    let base = |push: &str| {
        vec![
            ("BITBUCKET_BUILD_NUMBER", "42".to_string()),
            ("BITBUCKET_PIPE_STORAGE_DIR", ws.path().join("pipe").display().to_string()),
            ("BITBUCKET_PIPE_SHARED_STORAGE_DIR", shared.display().to_string()),
            ("BITBUCKET_CLONE_DIR", ws.path().join("src").display().to_string()),
            ("BITBUCKET_BRANCH", "main".into()),
            ("BITBUCKET_COMMIT", "fedcba9876543210fedcba9876543210fedcba98".into()),
            ("BITBUCKET_REPO_SLUG", "widget".into()),
            ("IMAGE", repo.clone()),
            ("PLATFORMS", "linux/amd64".into()),
            ("PUSH", push.into()),
            ("REGISTRY_USERNAME", "bb-user".into()),
            ("REGISTRY_PASSWORD", PASSWORD.into()),
        ]
    };
    // A bad variable: the error marked ✖, its hint last, non-zero, nothing pushed.
    let out = archway_env(ws.path(), &["build"], &base("maybe"));
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.lines().any(|l| l.contains("✖ `PUSH` is `maybe`")), "{stderr}");
    assert!(stderr.trim_end().lines().last().unwrap().starts_with("hint: "), "{stderr}");
    assert!(stderr.contains("PUSH"), "names the variable: {stderr}");
    assert!(tag_digest(&repo, "main").is_none());
    assert_no_leak("bitbucket bad", &out, ws.path());

    let out = archway_env(ws.path(), &["build"], &base("true"));
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.trim_end().lines().last().unwrap().contains("✔"), "{stderr}");
    let digest = tag_digest(&repo, "main").expect("pushed");
    let result = json(&std::fs::read(shared.join("archway-result.json")).expect("the pipe's result file"));
    assert_eq!(result["digest"], digest);
    assert_no_leak("bitbucket", &out, ws.path());
}
