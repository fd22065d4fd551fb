//! CI providers against real variable sets: each fixture under `tests/fixtures/ci/` is the
//! environment of one kind of run (copied from real runners, tokens replaced), and each test
//! checks what archway reads from it, how it logs there and what it writes back. No network,
//! no engine: everything runs on environment snapshots, buffers and temporary files.

mod support;

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use archway::ci::bitbucket::PipeStyle;
use archway::ci::gitlab::Sections;
use archway::ci::outputs::{self, DotenvError};
use archway::ci::{self, CiInputs, CiLog, CiResult, Env, PlatformRow, Provider, Reporter};
use archway::registry::{Credential, CredentialSource};
use archway::secret::Secret;
use support::ci_fixture::{event, fixture};

const SHA: &str = "3f786850e387550fdab836ed7e6dc881de23001b";
/// 2024-05-02T10:00:00Z
const NOW: i64 = 1_714_644_000;

fn resolve(name: &str) -> ci::Resolved {
    let env = fixture(name);
    let ci = ci::for_provider(ci::detect(&env));
    ci::resolve(&*ci, &env, event(name).as_deref(), NOW).unwrap()
}

/// (username, password) archway's one credential source gives for `registry` when pushing there
/// in the run `env` describes; the Docker config left out (a test must not read the machine's).
fn creds(env: &Env, registry: &str) -> Option<(String, String)> {
    creds_pushing_to(env, registry, registry)
}

/// `creds` for `registry` in a run that pushes to `target`.
fn creds_pushing_to(env: &Env, target: &str, registry: &str) -> Option<(String, String)> {
    let inv = archway::inputs::Invocation::new(env.clone(), None, NOW);
    let inputs = inv.ci.inputs(&inv.env).unwrap();
    let src = inv.credentials(Some(target), &inputs).unwrap();
    match (CredentialSource { docker_config: false, ..src }).lookup(registry).unwrap() {
        Some(Credential::Basic { username, password }) => Some((username, password.expose().to_string())),
        _ => None,
    }
}

/// `creds` as `&str`s, for comparing.
fn pair(c: &Option<(String, String)>) -> Option<(&str, &str)> {
    c.as_ref().map(|(u, p)| (u.as_str(), p.as_str()))
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn label<'a>(r: &'a ci::Resolved, key: &str) -> Option<&'a str> {
    r.labels.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// A `Write` whose bytes the test reads afterwards.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Capture {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' && chars.peek() == Some(&'[') {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn result() -> CiResult {
    CiResult {
        digest: format!("sha256:{}", "a".repeat(64)),
        image: "ghcr.io/acme-corp/hello-world".into(),
        tags: strings(&["ghcr.io/acme-corp/hello-world:main", "ghcr.io/acme-corp/hello-world:latest"]),
        platforms: vec![
            PlatformRow {
                platform: "linux/amd64".into(),
                strategy: "native".into(),
                reason: "the engine runs linux/amd64".into(),
                digest: format!("sha256:{}", "b".repeat(64)),
                duration_secs: 31.2,
            },
            PlatformRow {
                platform: "linux/arm64".into(),
                strategy: "emulated".into(),
                reason: "RUN at Dockerfile:4 runs arm64 code; QEMU handler registered".into(),
                digest: format!("sha256:{}", "c".repeat(64)),
                duration_secs: 140.0,
            },
        ],
        metadata_json: "{\n  \"digest\": \"sha256:aaaa\",\n  \"tags\": [\"main\", \"latest\"]\n}".into(),
    }
}

// ---- What each fixture yields ----

#[test]
fn github_push_to_main() {
    let r = resolve("github-push-main");
    assert_eq!(r.provider, Provider::GitHub);
    assert_eq!(r.inputs.platforms, ["linux/amd64", "linux/arm64", "linux/arm/v7"]);
    assert_eq!(r.inputs.build_args, ["VERSION=1.0", "GREETING=hello, world"]);
    assert_eq!(r.inputs.push, Some(true));
    assert_eq!(r.inputs.no_emulation, Some(false));
    assert_eq!(r.inputs.binfmt.as_deref(), Some("auto"));
    assert_eq!(r.inputs.tags, Vec::<String>::new(), "an empty input is not given");
    assert_eq!(r.inputs.context, None);
    assert_eq!(r.context, Some(PathBuf::from("/github/workspace")));
    assert_eq!(r.image.as_deref(), Some("ghcr.io/acme-corp/hello-world"));
    assert_eq!(
        r.tags,
        [
            "ghcr.io/acme-corp/hello-world:edge",
            "ghcr.io/acme-corp/hello-world:main",
            "ghcr.io/acme-corp/hello-world:sha-3f78685"
        ],
        "the default branch gets `edge`, never `latest`"
    );
    assert_eq!(
        r.labels,
        [
            ("org.opencontainers.image.created".to_string(), "2024-05-02T10:00:00Z".to_string()),
            ("org.opencontainers.image.revision".into(), SHA.into()),
            ("org.opencontainers.image.source".into(), "https://github.com/Acme-Corp/Hello-World".into()),
            ("org.opencontainers.image.title".into(), "Hello-World".into()),
            ("org.opencontainers.image.version".into(), "edge".into()),
            ("org.opencontainers.image.description".into(), "Hello, world: the example repository".into()),
            ("org.opencontainers.image.url".into(), "https://github.com/Acme-Corp/Hello-World".into()),
            ("org.opencontainers.image.licenses".into(), "MIT".into()),
        ]
    );
    assert_eq!(r.annotations, r.labels);
    r.check_push().unwrap();

    let env = fixture("github-push-main");
    assert_eq!(pair(&creds(&env, "ghcr.io")), Some(("octocat", "ghs_16C7e42F292c6912E7710c838347Ae178B4a")));
    assert_eq!(creds(&env, "docker.io"), None);
}

#[test]
fn github_without_event_payload_has_no_default_branch() {
    let env = fixture("github-push-main");
    let gh = ci::for_provider(Provider::GitHub);
    let r = ci::resolve(&*gh, &env, None, NOW).unwrap();
    assert_eq!(r.meta.default_branch, None);
    assert!(!r.tags.iter().any(|t| t.ends_with(":latest") || t.ends_with(":edge")), "{:?}", r.tags);
}

#[test]
fn github_release_tag() {
    let r = resolve("github-tag-v1.2.3");
    assert_eq!(r.meta.tag.as_deref(), Some("v1.2.3"));
    assert_eq!(r.meta.branch, None);
    assert_eq!(r.image.as_deref(), Some("docker.io/acme/hello"));
    assert_eq!(
        r.tags,
        strings(&[
            "docker.io/acme/hello:1.2.3",
            "docker.io/acme/hello:1.2",
            "docker.io/acme/hello:1",
            "docker.io/acme/hello:v1.2.3",
            "docker.io/acme/hello:sha-3f78685",
            "docker.io/acme/hello:latest",
        ])
    );
    assert_eq!(label(&r, "org.opencontainers.image.version"), Some("1.2.3"));
    assert_eq!(label(&r, "org.opencontainers.image.vendor"), Some("Acme"));
    assert_eq!(
        label(&r, "org.opencontainers.image.description"),
        Some("Hello, world"),
        "a label value keeps its comma"
    );
    assert!(!r.annotations.iter().any(|(k, _)| k.ends_with("vendor")), "labels are not annotations");

    let env = fixture("github-tag-v1.2.3");
    assert_eq!(pair(&creds(&env, "index.docker.io")), Some(("acmebot", "dckr_pat_2b3e36beb5df4c5c8b8d")));
    // The inputs are for docker.io; ghcr.io still gets the workflow token.
    assert_eq!(pair(&creds(&env, "ghcr.io")), Some(("octocat", "ghs_16C7e42F292c6912E7710c838347Ae178B4a")));
}

#[test]
fn github_pull_request() {
    let r = resolve("github-pull-request");
    assert_eq!(r.meta.pr, Some(42));
    assert_eq!(r.meta.branch.as_deref(), Some("feature/x"));
    assert_eq!(r.meta.event.as_deref(), Some("pull_request"));
    assert_eq!(r.inputs.dry_run, Some(true));
    assert_eq!(r.inputs.push, Some(false));
    assert_eq!(r.inputs.platforms, ["linux/amd64"]);
    assert_eq!(r.tags, ["ghcr.io/acme-corp/hello-world:pr-42", "ghcr.io/acme-corp/hello-world:sha-9b2e1c4"]);
    assert_eq!(label(&r, "org.opencontainers.image.version"), Some("pr-42"));
}

#[test]
fn github_pull_request_target_takes_the_number_from_the_payload() {
    let mut env = fixture("github-pull-request");
    env.insert("GITHUB_EVENT_NAME".into(), "pull_request_target".into());
    env.insert("GITHUB_REF".into(), "refs/heads/main".into());
    env.insert("GITHUB_REF_NAME".into(), "main".into());
    let meta = ci::github::meta(&env, event("github-pull-request").as_deref());
    assert_eq!(meta.pr, Some(42));
    assert_eq!(meta.branch.as_deref(), Some("feature/x"));
}

#[test]
fn gitlab_branch_pipeline() {
    let r = resolve("gitlab-branch");
    assert_eq!(r.provider, Provider::GitLab);
    assert_eq!(r.inputs.platforms, ["linux/amd64", "linux/arm64"]);
    assert_eq!(r.inputs.build_args, ["VERSION=1.0", "COMMIT=3f78685"], "one line: split on commas");
    assert_eq!(r.inputs.push, Some(true));
    assert_eq!(r.context, Some(PathBuf::from("/builds/acme/hello-world")));
    assert_eq!(
        r.tags,
        [
            "registry.gitlab.com/acme/hello-world:edge",
            "registry.gitlab.com/acme/hello-world:main",
            "registry.gitlab.com/acme/hello-world:sha-3f78685"
        ]
    );
    assert_eq!(label(&r, "org.opencontainers.image.source"), Some("https://gitlab.com/acme/hello-world"));
    assert_eq!(label(&r, "org.opencontainers.image.title"), Some("hello-world"));

    let env = fixture("gitlab-branch");
    assert_eq!(
        pair(&creds(&env, "registry.gitlab.com")),
        Some(("gitlab-ci-token", "glcbt-64_job-token-aaaaaaaaaaaaaaaaaaaa"))
    );
    assert_eq!(creds(&env, "docker.io"), None);

    // Without CI_REGISTRY_USER/PASSWORD the job token still logs in.
    let mut env = env;
    env.remove("CI_REGISTRY_USER");
    env.remove("CI_REGISTRY_PASSWORD");
    env.insert("CI_JOB_TOKEN".into(), "job-token-only".into());
    assert_eq!(pair(&creds(&env, "registry.gitlab.com")), Some(("gitlab-ci-token", "job-token-only")));
}

#[test]
fn gitlab_tag_pipeline_with_a_pre_release() {
    let r = resolve("gitlab-tag");
    assert_eq!(
        r.tags,
        [
            "registry.gitlab.com/acme/hello-world:2.0.0-rc.1",
            "registry.gitlab.com/acme/hello-world:v2.0.0-rc.1",
            "registry.gitlab.com/acme/hello-world:sha-3f78685"
        ],
        "a pre-release moves neither `2.0`, `2` nor `latest`"
    );
    assert_eq!(label(&r, "org.opencontainers.image.version"), Some("2.0.0-rc.1"));
    assert_eq!(r.inputs.annotations, ["org.opencontainers.image.licenses=Apache-2.0"]);
}

#[test]
fn gitlab_merge_request_pipeline() {
    let r = resolve("gitlab-merge-request");
    assert_eq!(r.meta.pr, Some(17));
    assert_eq!(r.meta.branch.as_deref(), Some("fix/Login-Page"));
    assert_eq!(r.inputs.push, Some(false));
    assert_eq!(r.inputs.nodes, ["linux/arm64=ssh://builder@arm64.example.com", "linux/riscv64=tcp://10.0.0.9:2376"]);
    assert_eq!(r.image.as_deref(), Some("registry.example.com/acme/hello"));
    assert_eq!(r.tags, ["registry.example.com/acme/hello:pr-17", "registry.example.com/acme/hello:sha-3f78685"]);
    // Not CI_REGISTRY, no inputs: no credentials.
    let env = fixture("gitlab-merge-request");
    assert_eq!(creds(&env, "registry.example.com"), None);
}

#[test]
fn bitbucket_branch_build_as_a_pipe() {
    let r = resolve("bitbucket-pipe-branch");
    assert_eq!(r.provider, Provider::Bitbucket { pipe: true });
    assert_eq!(r.inputs.platforms, ["linux/amd64", "linux/arm64"], "PLATFORMS_COUNT form");
    assert_eq!(r.inputs.build_args, ["GREETING=hello, world", "VERSION=1.0"], "items stay whole");
    assert_eq!(r.inputs.no_emulation, Some(false));
    assert_eq!(r.context, Some(PathBuf::from("/opt/atlassian/pipelines/agent/build")));
    assert_eq!(
        r.tags,
        [
            "docker.io/acme/hello-world:edge",
            "docker.io/acme/hello-world:master",
            "docker.io/acme/hello-world:sha-3f78685"
        ],
        "master counts as the default branch"
    );
    assert_eq!(label(&r, "org.opencontainers.image.source"), Some("https://bitbucket.org/acme/hello-world"));

    let env = fixture("bitbucket-pipe-branch");
    let bb = ci::for_provider(Provider::Bitbucket { pipe: true });
    assert_eq!(pair(&creds(&env, "docker.io")), Some(("acmebot", "dckr_pat_2b3e36beb5df4c5c8b8d")));

    // DEFAULT_BRANCH names another default: no `edge` for master.
    let mut env = env;
    env.insert("DEFAULT_BRANCH".into(), "develop".into());
    let r = ci::resolve(&*bb, &env, None, NOW).unwrap();
    assert!(!r.tags.iter().any(|t| t.ends_with(":latest") || t.ends_with(":edge")), "{:?}", r.tags);
}

/// README promises every CI pushes by default whenever an image is named (the action and the
/// component also say `push: true` themselves); a local run pushes only when asked.
#[test]
fn bitbucket_pipe_pushes_by_default_when_it_has_tags() {
    let mut env = fixture("bitbucket-pipe-branch");
    env.remove("PUSH");
    let bb = ci::for_provider(ci::detect(&env));
    let r = ci::resolve(&*bb, &env, None, NOW).unwrap();
    assert_eq!(r.inputs.push, None);
    assert!(!r.tags.is_empty());
    assert!(r.push(true), "tags from IMAGE and no PUSH: push");
    assert!(!r.push(false), "no tags: nothing to push to");
    r.check_push().unwrap();

    env.insert("PUSH".into(), "false".into());
    assert!(!ci::resolve(&*bb, &env, None, NOW).unwrap().push(true), "PUSH=false wins");

    let mut step = fixture("bitbucket-tag");
    step.remove("ARCHWAY_PUSH");
    let ci = ci::for_provider(ci::detect(&step));
    assert!(ci::resolve(&*ci, &step, None, NOW).unwrap().push(true), "a script step with ARCHWAY_IMAGE pushes too");

    // A GitLab job without the component: `$CI_REGISTRY_IMAGE` is the image, so it pushes.
    let mut gl = fixture("gitlab-branch");
    gl.retain(|k, _| !k.starts_with("ARCHWAY_"));
    let ci = ci::for_provider(ci::detect(&gl));
    let r = ci::resolve(&*ci, &gl, None, NOW).unwrap();
    assert_eq!(r.image.as_deref(), Some("registry.gitlab.com/acme/hello-world"));
    assert!(r.push(!r.tags.is_empty()));

    let local: Env =
        [("ARCHWAY_IMAGE", "localhost:5000/a")].iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let ci = ci::for_provider(ci::detect(&local));
    assert!(!ci::resolve(&*ci, &local, None, NOW).unwrap().push(true), "a local run pushes only when asked");
}

#[test]
fn bitbucket_pipe_without_image_cannot_push() {
    let mut env = fixture("bitbucket-pipe-branch");
    env.remove("IMAGE");
    let bb = ci::for_provider(ci::detect(&env));
    let r = ci::resolve(&*bb, &env, None, NOW).unwrap();
    assert_eq!(r.image, None, "Bitbucket has no default image");
    let e = r.check_push().unwrap_err();
    assert_eq!(e.to_string(), "pushing needs tags, and neither `TAGS` nor `IMAGE` is set");
    assert!(e.hint().contains("`IMAGE`"));
}

#[test]
fn bitbucket_tag_build_in_a_script_step() {
    let r = resolve("bitbucket-tag");
    assert_eq!(r.provider, Provider::Bitbucket { pipe: false });
    assert!(r.inputs.tags.is_empty(), "a repository variable `TAGS` is not read outside a pipe");
    assert_eq!(r.meta.branch, None);
    assert_eq!(
        r.tags,
        strings(&[
            "docker.io/acme/hello-world:1.2.3",
            "docker.io/acme/hello-world:1.2",
            "docker.io/acme/hello-world:1",
            "docker.io/acme/hello-world:v1.2.3",
            "docker.io/acme/hello-world:sha-3f78685",
            "docker.io/acme/hello-world:latest",
        ])
    );
    let env = fixture("bitbucket-tag");
    assert_eq!(creds(&env, "docker.io").unwrap().0, "acmebot");
}

#[test]
fn bitbucket_pull_request_build() {
    let r = resolve("bitbucket-pull-request");
    assert_eq!(r.meta.pr, Some(5));
    assert_eq!(r.meta.event.as_deref(), Some("pull_request"));
    assert_eq!(r.inputs.dry_run, Some(true));
    assert_eq!(r.tags, ["docker.io/acme/hello-world:pr-5", "docker.io/acme/hello-world:sha-3f78685"]);
}

#[test]
fn local_run_reads_archway_variables_only() {
    let env: Env = [
        ("ARCHWAY_TAGS", "localhost:5000/a:1,\n localhost:5000/a:2"),
        ("ARCHWAY_PREFER", "remote, emulated"),
        ("INPUT_PUSH", "maybe"),
        ("PUSH", "maybe"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(ci::detect(&env), Provider::Local);
    let local = ci::for_provider(Provider::Local);
    let r = ci::resolve(&*local, &env, None, NOW).unwrap();
    assert_eq!(r.tags, ["localhost:5000/a:1", "localhost:5000/a:2"]);
    assert_eq!(r.inputs.prefer, ["remote", "emulated"]);
    assert_eq!(r.context, None);
    assert_eq!(r.image, None);
    assert_eq!(label(&r, "org.opencontainers.image.version"), Some("1"));
    assert!(local.write_outputs(&env, &result()).unwrap().is_empty());
}

// ---- Input parsing ----

#[test]
fn bad_booleans_name_the_input_as_each_ci_spells_it() {
    let cases = [
        ("github-push-main", "INPUT_PUSH", "`INPUT_PUSH` is `maybe`"),
        ("github-push-main", "INPUT_NO-EMULATION", "`INPUT_NO-EMULATION` is `maybe`"),
        ("bitbucket-pipe-branch", "PUSH", "`PUSH` is `maybe`"),
        ("bitbucket-tag", "ARCHWAY_PUSH", "`ARCHWAY_PUSH` is `maybe`"),
        ("gitlab-branch", "ARCHWAY_DRY_RUN", "`ARCHWAY_DRY_RUN` is `maybe`"),
    ];
    for (name, var, expected) in cases {
        let mut env = fixture(name);
        env.insert(var.into(), "maybe".into());
        let c = ci::for_provider(ci::detect(&env));
        let e = c.inputs(&env).unwrap_err();
        assert!(e.to_string().starts_with(expected), "{name}: {e}");
        assert!(e.to_string().contains("expected `true` or `false`"), "{e}");
        let u: archway::error::UserError = e.into();
        assert_eq!(u.kind, archway::error::ErrorKind::Input);
        assert!(u.hint.unwrap().contains(var));
    }
}

#[test]
fn list_inputs_trim_split_and_drop_empties() {
    let mut env = fixture("gitlab-branch");
    env.insert("ARCHWAY_PLATFORMS".into(), "\n linux/amd64 ,,linux/arm64\r\n\n linux/arm/v7 ,".into());
    env.insert("ARCHWAY_TAGS".into(), " , ".into());
    env.insert("ARCHWAY_LABELS".into(), "a=1, with comma\nb=2\n".into());
    let i = ci::for_provider(Provider::GitLab).inputs(&env).unwrap();
    assert_eq!(i.platforms, ["linux/amd64", "linux/arm64", "linux/arm/v7"]);
    assert!(i.tags.is_empty());
    assert_eq!(i.labels, ["a=1, with comma", "b=2"]);

    let mut env = fixture("bitbucket-pipe-branch");
    for (k, v) in [("TAGS_COUNT", "3"), ("TAGS_0", " r/a:1 "), ("TAGS_1", ""), ("TAGS_2", "r/a:2")] {
        env.insert(k.into(), v.into());
    }
    let i = ci::for_provider(Provider::Bitbucket { pipe: true }).inputs(&env).unwrap();
    assert_eq!(i.tags, ["r/a:1", "r/a:2"]);
}

#[test]
fn a_label_without_equals_is_an_input_error() {
    let mut env = fixture("github-push-main");
    env.insert("INPUT_LABELS".into(), "vendor".into());
    let gh = ci::for_provider(Provider::GitHub);
    let e = ci::resolve(&*gh, &env, None, NOW).unwrap_err();
    assert_eq!(e.to_string(), "`INPUT_LABELS`: `vendor` is not `KEY=VALUE`");
}

// ---- Logs ----

#[test]
fn github_log_masks_first_and_groups_do_not_nest() {
    let env = fixture("github-push-main");
    let cap = Capture::default();
    let log = ci::for_provider(Provider::GitHub).reporter(&env, Box::new(cap.clone()));
    log.group_start("plan");
    log.group_start("build linux/arm64");
    log.error(Some("Dockerfile"), Some(14), "exec format error: 100% sure,\nreally");
    log.group_end();
    log.group_end();
    log.success("published");
    let text = cap.text();
    let lines: Vec<&str> = text.lines().collect();
    let masks = lines.iter().take_while(|l| l.starts_with("::add-mask::")).count();
    assert_eq!(masks, 2, "INPUT_GITHUB-TOKEN and ACTIONS_RUNTIME_TOKEN: {text}");
    assert_eq!(
        &lines[masks..],
        [
            "::group::plan",
            "::endgroup::",
            "::group::build linux/arm64",
            "::error file=Dockerfile,line=14::exec format error: 100%25 sure,%0Areally",
            "::endgroup::",
            "published"
        ]
    );
}

#[test]
fn github_escaping_rules() {
    use archway::ci::github::{escape_data, escape_property};
    assert_eq!(escape_data("a%b\rc\nd:e,f"), "a%25b%0Dc%0Ad:e,f");
    assert_eq!(escape_property("a%b\rc\nd:e,f"), "a%25b%0Dc%0Ad%3Ae%2Cf");
    let cap = Capture::default();
    let log = CiLog::new(ci::github::Commands::default(), Box::new(cap.clone()));
    log.warning(Some("dir,1/Docker:file"), Some(2), "x");
    assert_eq!(cap.text(), "::warning file=dir%2C1/Docker%3Afile,line=2::x\n");
}

#[test]
fn github_child_output_cannot_issue_commands() {
    let cap = Capture::default();
    let log = CiLog::new(ci::github::Commands::default(), Box::new(cap.clone()));
    log.group_start("build");
    log.line("#7 0.3 ::add-mask::nothing");
    log.line("::error::injected");
    log.warning(None, None, "ours");
    log.success("done");
    let text = cap.text();
    let lines: Vec<&str> = text.lines().collect();
    let token = lines[1].strip_prefix("::stop-commands::").expect("commands stopped before child output");
    assert!(token.len() > 20, "{token}");
    assert_eq!(lines[2..4], ["#7 0.3 ::add-mask::nothing", "::error::injected"]);
    assert_eq!(lines[4], format!("::{token}::"), "resumed before archway's own command");
    assert_eq!(lines[5..], ["::warning::ours", "::endgroup::", "done"]);
}

#[test]
fn gitlab_sections() {
    let cap = Capture::default();
    let log = CiLog::new(Sections::new(Box::new(|| 1_714_644_000), false), Box::new(cap.clone()));
    log.group_start("Build linux/arm64 (emulated)");
    log.group_start("Push");
    log.success("done");
    assert_eq!(
        cap.text(),
        "\x1b[0Ksection_start:1714644000:archway_1_Build_linux_arm64__emulated[collapsed=true]\r\x1b[0KBuild linux/arm64 (emulated)\n\
         \x1b[0Ksection_end:1714644000:archway_1_Build_linux_arm64__emulated\r\x1b[0K\n\
         \x1b[0Ksection_start:1714644000:archway_2_Push[collapsed=true]\r\x1b[0KPush\n\
         \x1b[0Ksection_end:1714644000:archway_2_Push\r\x1b[0K\n\
         \x1b[32;1mdone\x1b[0m\n"
    );
    for line in cap.text().lines().filter(|l| l.contains("section_")) {
        let name = line.split(':').nth(2).unwrap().split(['[', '\r']).next().unwrap();
        assert!(name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)), "{name}");
    }
}

/// A run ends with `✔ …` in green, or with its error: `✖ …` in red, then the error's causes and
/// hint (the contract of `archway::error::render`, printed once).
#[test]
fn bitbucket_ends_with_a_tick_or_the_error_under_a_cross() {
    for ok in [true, false] {
        let cap = Capture::default();
        let log = CiLog::new(PipeStyle { debug: true }, Box::new(cap.clone()));
        log.group_start("Building");
        log.debug("probe done");
        log.info("linux/arm64: emulated");
        if ok {
            log.success("Image pushed");
        } else {
            log.failure(
                "error: 1 of 2 platforms failed\n  Caused by: linux/arm64: exit 1\n\nhint: see `[linux/arm64]`",
            );
        }
        let text = strip_ansi(&cap.text());
        assert!(text.contains("DEBUG: probe done"), "{text}");
        assert!(text.contains("INFO: linux/arm64: emulated"), "{text}");
        let raw = cap.text();
        let lines: Vec<&str> = raw.lines().collect();
        if ok {
            assert_eq!(lines.last(), Some(&"\x1b[32m✔ Image pushed\x1b[0m"), "{text}");
        } else {
            assert_eq!(
                lines[lines.len() - 4..],
                [
                    "\x1b[31m✖ 1 of 2 platforms failed\x1b[0m",
                    "  Caused by: linux/arm64: exit 1",
                    "",
                    "hint: see `[linux/arm64]`"
                ],
                "{text}"
            );
        }
    }
    // DEBUG unset: no debug lines.
    let env = fixture("bitbucket-tag");
    let cap = Capture::default();
    let log = ci::for_provider(ci::detect(&env)).reporter(&env, Box::new(cap.clone()));
    log.debug("hidden");
    log.success("ok");
    assert_eq!(strip_ansi(&cap.text()), "✔ ok\n");
}

#[test]
fn local_log_is_plain() {
    let cap = Capture::default();
    let log = ci::for_provider(Provider::Local).reporter(&Env::new(), Box::new(cap.clone()));
    log.group_start("plan");
    log.warning(Some("Dockerfile"), Some(3), "slow");
    log.line("#5 [linux/arm64 2/3] RUN make");
    log.failure("error: 1 of 1 platforms failed\n  Caused by: linux/arm64: exit 1\n\nhint: see the `RUN make` output");
    assert_eq!(
        cap.text(),
        "==> plan\nwarning: Dockerfile:3: slow\n#5 [linux/arm64 2/3] RUN make\nerror: 1 of 1 platforms failed\n  \
         Caused by: linux/arm64: exit 1\n\nhint: see the `RUN make` output\n"
    );
}

// ---- Outputs ----

/// Reads `$GITHUB_OUTPUT` as the runner does: `name=value` lines and
/// `name<<DELIMITER` … `DELIMITER` blocks.
fn parse_github_output(text: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let eq = line.find('=');
        let heredoc = line.find("<<");
        match (eq, heredoc) {
            (Some(e), h) if h.is_none_or(|h| e < h) => {
                out.insert(line[..e].to_string(), line[e + 1..].to_string());
            }
            (_, Some(h)) => {
                let (name, delim) = (&line[..h], &line[h + 2..]);
                let mut value = Vec::new();
                for l in lines.by_ref() {
                    if l == delim {
                        break;
                    }
                    value.push(l);
                }
                out.insert(name.to_string(), value.join("\n"));
            }
            _ => panic!("not an output line: {line}"),
        }
    }
    out
}

#[test]
fn github_output_and_summary_are_appended_and_parse_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = fixture("github-push-main");
    let output = dir.path().join("output");
    let summary = dir.path().join("summary");
    std::fs::write(&output, "earlier=step\n").unwrap();
    env.insert("GITHUB_OUTPUT".into(), output.display().to_string());
    env.insert("GITHUB_STEP_SUMMARY".into(), summary.display().to_string());
    let r = result();
    let written = ci::for_provider(Provider::GitHub).write_outputs(&env, &r).unwrap();
    assert_eq!(written, [output.clone(), summary.clone()]);

    let text = std::fs::read_to_string(&output).unwrap();
    assert!(text.starts_with("earlier=step\n"), "appended: {text}");
    let delimiters: Vec<&str> = text.lines().filter_map(|l| l.split_once("<<").map(|(_, d)| d)).collect();
    assert_eq!(delimiters.len(), 2, "tags and metadata are multi-line: {text}");
    assert!(delimiters.iter().all(|d| d.starts_with("ghadelimiter_") && d.len() == "ghadelimiter_".len() + 32));
    let parsed = parse_github_output(&text);
    assert_eq!(parsed["earlier"], "step");
    assert_eq!(parsed["digest"], r.digest);
    assert_eq!(parsed["image"], "ghcr.io/acme-corp/hello-world");
    assert_eq!(parsed["tags"], r.tags.join("\n"));
    assert_eq!(parsed["platforms"], "linux/amd64,linux/arm64");
    assert_eq!(parsed["metadata"], r.metadata_json);

    // A second run appends again, with a fresh delimiter.
    ci::for_provider(Provider::GitHub).write_outputs(&env, &r).unwrap();
    let again = std::fs::read_to_string(&output).unwrap();
    let d2: Vec<&str> = again.lines().filter_map(|l| l.split_once("<<").map(|(_, d)| d)).collect();
    assert_eq!(d2.len(), 4);
    assert_ne!(d2[0], d2[2]);

    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(md.contains("| platform | strategy | why | digest | duration |"), "{md}");
    assert!(md.contains("| linux/arm64 | emulated | RUN at Dockerfile:4 runs arm64 code; QEMU handler registered | `sha256:cccccccccccc` | 140.0 s |"), "{md}");
}

#[test]
fn gitlab_dotenv_report() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = fixture("gitlab-branch");
    env.insert("CI_PROJECT_DIR".into(), dir.path().display().to_string());
    let written = ci::for_provider(Provider::GitLab).write_outputs(&env, &result()).unwrap();
    let path = dir.path().join("archway.env");
    assert_eq!(written, std::slice::from_ref(&path));
    let text = std::fs::read_to_string(&path).unwrap();
    let vars: Vec<(&str, &str)> = text.lines().map(|l| l.split_once('=').unwrap()).collect();
    assert!(vars.len() <= outputs::DOTENV_MAX_VARIABLES);
    for (k, v) in &vars {
        assert!(k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'), "{k}");
        assert!(!v.contains('\r'), "{k}");
    }
    let vars: HashMap<&str, &str> = vars.into_iter().collect();
    assert_eq!(vars["ARCHWAY_RESULT_DIGEST"], result().digest);
    assert_eq!(vars["ARCHWAY_RESULT_IMAGE_REF"], format!("ghcr.io/acme-corp/hello-world@{}", result().digest));
    assert_eq!(vars["ARCHWAY_RESULT_TAGS"], "ghcr.io/acme-corp/hello-world:main,ghcr.io/acme-corp/hello-world:latest");
    assert_eq!(vars["ARCHWAY_RESULT_PLATFORMS"], "linux/amd64,linux/arm64");

    // ARCHWAY_DOTENV names another file.
    let other = dir.path().join("build.env");
    env.insert("ARCHWAY_DOTENV".into(), other.display().to_string());
    assert_eq!(ci::for_provider(Provider::GitLab).write_outputs(&env, &result()).unwrap(), [other]);

    // A value with a line break is refused, not written half-way.
    let mut bad = result();
    bad.tags.push("x\ny".into());
    let e = ci::for_provider(Provider::GitLab).write_outputs(&env, &bad).unwrap_err();
    assert!(e.to_string().contains("`ARCHWAY_RESULT_TAGS` has a line break"), "{e}");
}

#[test]
fn dotenv_validation() {
    let many: Vec<(String, String)> = (0..21).map(|i| (format!("K{i}"), "v".into())).collect();
    assert_eq!(outputs::dotenv(&many), Err(DotenvError::TooMany(21)));
    assert!(outputs::dotenv(&many[..20]).is_ok());
    assert_eq!(outputs::dotenv(&[("A-B".into(), "v".into())]), Err(DotenvError::BadKey("A-B".into())));
    assert_eq!(outputs::dotenv(&[("A".into(), "1\n2".into())]), Err(DotenvError::MultiLine("A".into())));
    assert_eq!(outputs::result_vars(&result()).len(), 5);
}

#[test]
fn bitbucket_output_variables_and_result_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = fixture("bitbucket-pipe-branch");
    let vars_path = dir.path().join("pipelinesVariables");
    env.insert("BITBUCKET_PIPELINES_VARIABLES_PATH".into(), vars_path.display().to_string());
    env.insert("BITBUCKET_PIPE_SHARED_STORAGE_DIR".into(), dir.path().display().to_string());
    let written = ci::for_provider(ci::detect(&env)).write_outputs(&env, &result()).unwrap();
    let json_path = dir.path().join("archway-result.json");
    assert_eq!(written, [vars_path.clone(), json_path.clone()]);
    let vars = std::fs::read_to_string(&vars_path).unwrap();
    assert!(vars.contains("ARCHWAY_RESULT_DIGEST=sha256:aaaa"), "{vars}");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    assert_eq!(v["digest"], result().digest);
    assert_eq!(v["platforms"][1]["strategy"], "emulated");
    assert_eq!(v["metadata"]["tags"][1], "latest");

    // Neither variable set: nothing written.
    let env = fixture("bitbucket-pull-request");
    assert!(ci::for_provider(ci::detect(&env)).write_outputs(&env, &result()).unwrap().is_empty());
}

// ---- Secrets ----

/// With one password in every credential variable of every CI, and another in its
/// `registry-auth` list, run inputs, credentials, the log and the outputs, and look for the
/// passwords in every byte written. GitHub's `::add-mask::` lines, which must come first, are the
/// one allowed place.
#[test]
fn no_secret_is_ever_written() {
    const PASSWORD: &str = "pa55-W0rd%:,\"x";
    const LISTED: &str = "l1st-pa55 #:x";
    let list = format!("- registry: quay.io\n  username: lister\n  password: \"{LISTED}\"\n");
    let cases: [(&str, &[&str], &str); 5] = [
        ("github-push-main", &["INPUT_PASSWORD", "INPUT_GITHUB-TOKEN", "GITHUB_TOKEN"], "ghcr.io"),
        (
            "gitlab-branch",
            &["CI_REGISTRY_PASSWORD", "CI_JOB_TOKEN", "ARCHWAY_REGISTRY_PASSWORD"],
            "registry.gitlab.com",
        ),
        ("bitbucket-pipe-branch", &["REGISTRY_PASSWORD"], "docker.io"),
        ("bitbucket-tag", &["ARCHWAY_REGISTRY_PASSWORD"], "docker.io"),
        ("local", &["ARCHWAY_REGISTRY_PASSWORD"], "localhost:5000"),
    ];
    for (name, vars, registry) in cases {
        let dir = tempfile::tempdir().unwrap();
        let mut env = if name == "local" { Env::new() } else { fixture(name) };
        for v in vars {
            env.insert(v.to_string(), PASSWORD.into());
        }
        for (k, user) in [("INPUT_USERNAME", "u"), ("REGISTRY_USERNAME", "u"), ("ARCHWAY_REGISTRY_USERNAME", "u")] {
            env.insert(k.into(), user.into());
        }
        let spelled = ci::for_provider(ci::detect(&env)).spelling().var(&ci::vars::REGISTRY_AUTH);
        env.insert(spelled.into(), list.clone());
        for (k, file) in [
            ("GITHUB_OUTPUT", "output"),
            ("GITHUB_STEP_SUMMARY", "summary"),
            ("ARCHWAY_DOTENV", "archway.env"),
            ("BITBUCKET_PIPELINES_VARIABLES_PATH", "variables"),
        ] {
            env.insert(k.into(), dir.path().join(file).display().to_string());
        }
        env.insert("BITBUCKET_PIPE_SHARED_STORAGE_DIR".into(), dir.path().display().to_string());

        let c = ci::for_provider(ci::detect(&env));
        let cap = Capture::default();
        let log = c.reporter(&env, Box::new(cap.clone()));
        let inputs: CiInputs = c.inputs(&env).unwrap();
        let found = creds(&env, registry).unwrap_or_else(|| panic!("{name}: credentials"));
        assert_eq!(found.1, PASSWORD, "{name}");
        let listed = creds_pushing_to(&env, registry, "quay.io");
        assert_eq!(pair(&listed), Some(("lister", LISTED)), "{name}: from the list");
        let inv = archway::inputs::Invocation::new(env.clone(), None, NOW);
        let creds = inv.credentials(Some(registry), &inputs).unwrap();
        for secret in [PASSWORD, LISTED] {
            assert!(c.secrets(&env).iter().any(|s| s.expose() == secret), "{name}: {secret} is masked");
        }
        let run = ci::resolve(&*c, &env, None, NOW).unwrap();

        // Everything a careless caller might print.
        log.group_start(&format!("login {PASSWORD}"));
        log.info(&format!("inputs: {inputs:?}"));
        log.info(&format!("credentials: {creds:?}, run: {run:?}"));
        log.debug(&format!("token={PASSWORD}"));
        log.warning(Some(PASSWORD), Some(1), &format!("401 for {PASSWORD}"));
        log.error(None, None, &format!("multi\nline {PASSWORD}\n"));
        log.line(&format!("#3 buildx: --password {PASSWORD}"));
        log.failure(&format!("failed with {PASSWORD}"));
        log.info(&format!("the list: {list}, its password {LISTED}"));
        let mut r = result();
        r.platforms[0].reason = "native".into();
        c.write_outputs(&env, &r).unwrap();

        let text = cap.text();
        let mut lines = text.lines().peekable();
        if c.provider() == Provider::GitHub {
            assert!(lines.peek().unwrap().starts_with("::add-mask::"), "{name}: {text}");
            let mut masked = Vec::new();
            while let Some(l) = lines.next_if(|l| l.starts_with("::add-mask::")) {
                masked.push(l);
            }
            for secret in [PASSWORD, LISTED] {
                let line = format!("::add-mask::{}", ci::github::escape_data(secret));
                assert!(masked.contains(&line.as_str()), "{name}: {secret} masked first: {masked:?}");
            }
        } else {
            assert!(!text.contains("add-mask"), "{name}");
        }
        let rest: Vec<&str> = lines.collect();
        assert!(rest.iter().any(|l| l.contains("***")), "{name}: the log was written: {text}");
        for l in &rest {
            assert!(!l.contains(PASSWORD) && !l.contains(LISTED), "{name}: password in log line {l:?}");
        }
        assert!(!text.contains(PASSWORD) || c.provider() == Provider::GitHub, "{name}");
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            for secret in [PASSWORD, LISTED] {
                assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()), "{name}: {}", path.display());
            }
        }
        // The Secret type itself never prints.
        assert_eq!(format!("{}", Secret::new(PASSWORD)), "***");
    }
}
