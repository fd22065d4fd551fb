//! Tags and results in CI, against the lab: a Bitbucket pipe given `IMAGE` and `TAGS: "latest
//! 1.0"` and no `PUSH` publishes both tags; a GitLab job without the component pushes to
//! `$CI_REGISTRY_IMAGE`; `archway merge` as a GitHub step and as a GitLab job publishes under
//! the tags computed from the commit and writes the step's outputs and the dotenv report.

#![cfg(feature = "lab")]

mod support;

use std::collections::HashMap;
use std::path::Path;

use support::lab::*;

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

/// A checkout with a Dockerfile that runs nothing (assembled: quick on every platform).
fn workspace() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("src")).unwrap();
    std::fs::write(d.path().join("src/hello.txt"), "hello\n").unwrap();
    std::fs::write(d.path().join("src/Dockerfile"), format!("FROM {}\nCOPY hello.txt /\n", lab().base)).unwrap();
    d
}

/// Two matrix legs, pushed by digest to `repo`; their digest files in `ws/digests`.
fn legs(ws: &Path, repo: &str) {
    std::fs::create_dir_all(ws.join("digests")).unwrap();
    for (p, f) in [("linux/amd64", "amd64"), ("linux/arm64", "arm64")] {
        let file = ws.join("digests").join(f);
        let out = archway(
            &ws.join("src"),
            &["build", ".", "--platform", p, "--push-by-digest", "-t", repo, "--digest-file", file.to_str().unwrap()],
        );
        assert!(out.status.success(), "leg {p}: {}", text(&out).1);
    }
}

#[test]
fn bitbucket_pipe_tags_are_names_for_the_image_and_push_by_default() {
    let ws = workspace();
    let repo = unique_repo("bbtags");
    let shared = ws.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    let clone = ws.path().join("src");
    let env = vec![
        ("BITBUCKET_BUILD_NUMBER", "7".to_string()),
        ("BITBUCKET_PIPE_STORAGE_DIR", ws.path().join("pipe").display().to_string()),
        ("BITBUCKET_PIPE_SHARED_STORAGE_DIR", shared.display().to_string()),
        ("BITBUCKET_CLONE_DIR", clone.display().to_string()),
        ("BITBUCKET_BRANCH", "feature/x".into()),
        ("BITBUCKET_COMMIT", SHA.into()),
        ("IMAGE", repo.clone()),
        ("TAGS", "latest 1.0".into()),
        ("PLATFORMS", "linux/amd64,linux/arm64".into()),
    ];
    let out = archway_env(&clone, &["build"], &env);
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.trim_end().lines().last().unwrap().contains("✔"), "{stderr}");
    let latest = tag_digest(&repo, "latest").expect("IMAGE:latest pushed without PUSH");
    assert_eq!(tag_digest(&repo, "1.0"), Some(latest.clone()), "IMAGE:1.0, the same index");
    assert_eq!(platforms_of(&json(&manifest(&repo, "1.0").unwrap().1)), ["linux/amd64", "linux/arm64"]);
    assert!(!clone.join("archway-out").exists(), "no layout written into the clone");
    assert!(!stderr.contains("docker.io/library"), "{stderr}");
    for t in ["latest", "1.0"] {
        assert!(stderr.contains(&format!("tagged {repo}:{t}")), "{stderr}");
    }
    let result = json(&std::fs::read(shared.join("archway-result.json")).unwrap());
    assert_eq!(result["digest"], latest);
}

#[test]
fn gitlab_job_without_the_component_pushes_to_the_project_registry() {
    let ws = workspace();
    let repo = unique_repo("glzero");
    let env = vec![
        ("GITLAB_CI", "true".to_string()),
        ("CI_PROJECT_DIR", ws.path().join("src").display().to_string()),
        ("CI_REGISTRY", lab().registry.clone()),
        ("CI_REGISTRY_IMAGE", repo.clone()),
        ("CI_COMMIT_BRANCH", "main".into()),
        ("CI_COMMIT_REF_NAME", "main".into()),
        ("CI_COMMIT_SHA", SHA.into()),
        ("CI_DEFAULT_BRANCH", "main".into()),
        ("CI_PIPELINE_SOURCE", "push".into()),
        ("ARCHWAY_PLATFORMS", "linux/amd64".into()),
    ];
    let out = archway_env(ws.path(), &["build"], &env);
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    for t in ["edge", "main", "sha-0123456"] {
        assert!(tag_digest(&repo, t).is_some(), "{t}: {stderr}");
        assert!(stderr.contains(&format!("tagged {repo}:{t}")), "{stderr}");
    }
    assert!(tag_digest(&repo, "latest").is_none());
    assert!(!stderr.contains("written to"), "{stderr}");
}

#[test]
fn merge_as_a_github_step_uses_the_computed_tags_and_writes_the_outputs() {
    let ws = workspace();
    let repo = unique_repo("ghmerge");
    legs(ws.path(), &repo);
    let out_file = ws.path().join("github_output");
    let summary = ws.path().join("step_summary");
    let env = vec![
        ("GITHUB_ACTIONS", "true".to_string()),
        ("GITHUB_WORKSPACE", ws.path().join("src").display().to_string()),
        ("GITHUB_REPOSITORY", "Acme/Widget".into()),
        ("GITHUB_REF", "refs/tags/v1.2.3".into()),
        ("GITHUB_REF_NAME", "v1.2.3".into()),
        ("GITHUB_REF_TYPE", "tag".into()),
        ("GITHUB_SHA", SHA.into()),
        ("GITHUB_EVENT_NAME", "push".into()),
        ("GITHUB_OUTPUT", out_file.display().to_string()),
        ("GITHUB_STEP_SUMMARY", summary.display().to_string()),
        ("INPUT_IMAGE", repo.clone()),
    ];
    let out = archway_env(ws.path(), &["merge", "--platform", "linux/amd64,linux/arm64", "digests/"], &env);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let digest = tag_digest(&repo, "1.2.3").expect("merged under the computed tags");
    for t in ["1.2", "1", "v1.2.3", "sha-0123456", "latest"] {
        assert_eq!(tag_digest(&repo, t).as_ref(), Some(&digest), "{t}");
    }
    assert!(tag_digest(&repo, "0").is_none());
    assert!(stdout.contains(&digest), "{stdout}");
    let outputs = std::fs::read_to_string(&out_file).unwrap();
    assert!(outputs.contains(&format!("digest={digest}\n")), "{outputs}");
    assert!(outputs.contains(&format!("image={repo}\n")), "{outputs}");
    assert!(outputs.contains("platforms=linux/amd64,linux/arm64\n"), "{outputs}");
    assert!(outputs.contains(&format!("{repo}:latest\n")), "{outputs}");
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(md.contains(&digest), "{md}");
    let index = json(&manifest(&repo, "1.2.3").unwrap().1);
    assert_eq!(index["annotations"]["org.opencontainers.image.version"], "1.2.3");
    assert_eq!(index["annotations"]["org.opencontainers.image.revision"], SHA);
}

#[test]
fn merge_as_a_gitlab_job_writes_the_dotenv_report() {
    let ws = workspace();
    let repo = unique_repo("glmerge");
    legs(ws.path(), &repo);
    let env = vec![
        ("GITLAB_CI", "true".to_string()),
        ("CI_PROJECT_DIR", ws.path().display().to_string()),
        ("CI_REGISTRY", lab().registry.clone()),
        ("CI_REGISTRY_IMAGE", repo.clone()),
        ("CI_COMMIT_BRANCH", "main".into()),
        ("CI_COMMIT_REF_NAME", "main".into()),
        ("CI_COMMIT_SHA", SHA.into()),
        ("CI_DEFAULT_BRANCH", "main".into()),
        ("CI_PIPELINE_SOURCE", "push".into()),
    ];
    let out = archway_env(ws.path(), &["merge", "digests/"], &env);
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("section_start:") || stderr.contains("tagged"), "{stderr}");
    let digest = tag_digest(&repo, "edge").expect("edge for the default branch");
    assert_eq!(tag_digest(&repo, "main"), Some(digest.clone()));
    let dotenv = std::fs::read_to_string(ws.path().join("archway.env")).unwrap();
    let vars: HashMap<&str, &str> = dotenv.lines().filter_map(|l| l.split_once('=')).collect();
    assert_eq!(vars["ARCHWAY_RESULT_DIGEST"], digest);
    assert_eq!(vars["ARCHWAY_RESULT_IMAGE_REF"], format!("{repo}@{digest}"));
    assert!(vars["ARCHWAY_RESULT_TAGS"].split(',').any(|t| t == format!("{repo}:main")), "{dotenv}");
    assert!(!vars.contains_key("ARCHWAY_TAGS") && !vars.contains_key("ARCHWAY_IMAGE"), "{dotenv}");
}

/// `--annotation` as buildx spells it: unprefixed and `manifest:` on each platform's manifest,
/// `index:` on the index only, `index,manifest:` on both.
#[test]
fn annotations_go_where_their_prefix_says() {
    let ws = workspace();
    let repo = unique_repo("annot");
    let tag = format!("{repo}:1");
    let out = archway(
        &ws.path().join("src"),
        &[
            "build",
            ".",
            "--platform",
            "linux/amd64,linux/arm64",
            "-t",
            &tag,
            "--push",
            "--annotation",
            "plain=m",
            "--annotation",
            "manifest:only.manifest=m",
            "--annotation",
            "index:org.opencontainers.image.description=for the index",
            "--annotation",
            "index,manifest:both=b",
        ],
    );
    assert!(out.status.success(), "{}", text(&out).1);
    let index = json(&manifest(&repo, "1").unwrap().1);
    let a = &index["annotations"];
    assert_eq!(a["org.opencontainers.image.description"], "for the index");
    assert_eq!(a["both"], "b");
    assert!(a.get("plain").is_none() && a.get("only.manifest").is_none(), "{a}");
    for (platform, digest) in platform_manifests(&index) {
        let m = json(&manifest(&repo, &digest).unwrap().1);
        let a = &m["annotations"];
        assert_eq!(
            (a["plain"].as_str(), a["only.manifest"].as_str(), a["both"].as_str()),
            (Some("m"), Some("m"), Some("b")),
            "{platform}: {a}"
        );
        assert!(a.get("org.opencontainers.image.description").is_none(), "{platform}: {a}");
    }
}
