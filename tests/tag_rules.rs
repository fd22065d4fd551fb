//! Tag rules on real CI events: every fixture under `tests/fixtures/ci/` that is one of the six
//! events docker/metadata-action documents (a push to the default branch, to another branch, a
//! release tag, a pre-release tag, a `v0.x` tag, a pull or merge request), on each of the three
//! CIs, resolved with archway's default rules and with metadata-action's own `semver` recipe
//! given as the `tags` input. The expected tags are what metadata-action documents for the same
//! event (README "Tags from the commit" says where archway's default adds to it). Lab-free.

mod support;

use archway::ci::{self, Env, InputError, Provider};
use support::ci_fixture::{event, fixture};

/// 2024-05-02T10:00:00Z
const NOW: i64 = 1_714_644_000;

/// The `tags` variable on the fixture's CI, as that CI spells it.
fn tags_var(env: &Env) -> &'static str {
    ci::for_provider(ci::detect(env)).spelling().var(&ci::vars::TAGS)
}

fn resolve(env: &Env, name: &str) -> Result<ci::Resolved, InputError> {
    let ci = ci::for_provider(ci::detect(env));
    ci::resolve(&*ci, env, event(name).as_deref(), NOW)
}

/// The tag part of each reference, and its image.
fn names(r: &ci::Resolved) -> Vec<String> {
    r.tags.iter().map(|t| t.rsplit_once(':').unwrap().1.to_string()).collect()
}

/// docker/metadata-action's README recipe for semantic versions (`type=semver` with
/// `{{version}}`, `{{major}}.{{minor}}` and `{{major}}`), with branches, pull requests and `sha`.
const METADATA_ACTION_SEMVER: &str = "type=schedule
type=ref,event=branch
type=ref,event=pr
type=semver,pattern={{version}}
type=semver,pattern={{major}}.{{minor}}
type=semver,pattern={{major}}
type=sha";

struct Case {
    fixture: &'static str,
    provider: Provider,
    /// archway's default rules.
    default: &'static [&'static str],
    /// [`METADATA_ACTION_SEMVER`], as metadata-action documents it for this event.
    metadata_action: &'static [&'static str],
}

const S: &str = "sha-3f78685";

#[rustfmt::skip]
const CASES: &[Case] = &[
    // GitHub Actions
    Case { fixture: "github-push-main", provider: Provider::GitHub,
        default: &["edge", "main", S], metadata_action: &["main", S] },
    Case { fixture: "github-push-feature", provider: Provider::GitHub,
        default: &["feature-Login_2", S], metadata_action: &["feature-Login_2", S] },
    Case { fixture: "github-tag-v1.2.3", provider: Provider::GitHub,
        default: &["1.2.3", "1.2", "1", "v1.2.3", S, "latest"], metadata_action: &["1.2.3", "1.2", "1", S, "latest"] },
    Case { fixture: "github-tag-v1.3.0-rc.1", provider: Provider::GitHub,
        default: &["1.3.0-rc.1", "v1.3.0-rc.1", S], metadata_action: &["1.3.0-rc.1", S] },
    Case { fixture: "github-tag-v0.3.0", provider: Provider::GitHub,
        default: &["0.3.0", "0.3", "v0.3.0", S, "latest"], metadata_action: &["0.3.0", "0.3", S, "latest"] },
    Case { fixture: "github-pull-request", provider: Provider::GitHub,
        default: &["pr-42", "sha-9b2e1c4"], metadata_action: &["pr-42", "sha-9b2e1c4"] },
    // GitLab CI
    Case { fixture: "gitlab-branch", provider: Provider::GitLab,
        default: &["edge", "main", S], metadata_action: &["main", S] },
    Case { fixture: "gitlab-branch-feature", provider: Provider::GitLab,
        default: &["feature-Login_2", S], metadata_action: &["feature-Login_2", S] },
    Case { fixture: "gitlab-tag-v1.2.3", provider: Provider::GitLab,
        default: &["1.2.3", "1.2", "1", "v1.2.3", S, "latest"], metadata_action: &["1.2.3", "1.2", "1", S, "latest"] },
    Case { fixture: "gitlab-tag", provider: Provider::GitLab,
        default: &["2.0.0-rc.1", "v2.0.0-rc.1", S], metadata_action: &["2.0.0-rc.1", S] },
    Case { fixture: "gitlab-tag-v0.3.0", provider: Provider::GitLab,
        default: &["0.3.0", "0.3", "v0.3.0", S, "latest"], metadata_action: &["0.3.0", "0.3", S, "latest"] },
    Case { fixture: "gitlab-merge-request", provider: Provider::GitLab,
        default: &["pr-17", S], metadata_action: &["pr-17", S] },
    // Bitbucket Pipelines (as a pipe, and in a script step)
    Case { fixture: "bitbucket-pipe-branch", provider: Provider::Bitbucket { pipe: true },
        default: &["edge", "master", S], metadata_action: &["master", S] },
    Case { fixture: "bitbucket-pipe-feature", provider: Provider::Bitbucket { pipe: true },
        default: &["feature-Login_2", S], metadata_action: &["feature-Login_2", S] },
    Case { fixture: "bitbucket-tag", provider: Provider::Bitbucket { pipe: false },
        default: &["1.2.3", "1.2", "1", "v1.2.3", S, "latest"], metadata_action: &["1.2.3", "1.2", "1", S, "latest"] },
    Case { fixture: "bitbucket-tag-v1.3.0-rc.1", provider: Provider::Bitbucket { pipe: false },
        default: &["1.3.0-rc.1", "v1.3.0-rc.1", S], metadata_action: &["1.3.0-rc.1", S] },
    Case { fixture: "bitbucket-tag-v0.3.0", provider: Provider::Bitbucket { pipe: false },
        default: &["0.3.0", "0.3", "v0.3.0", S, "latest"], metadata_action: &["0.3.0", "0.3", S, "latest"] },
    Case { fixture: "bitbucket-pull-request", provider: Provider::Bitbucket { pipe: false },
        default: &["pr-5", S], metadata_action: &["pr-5", S] },
];

#[test]
fn every_event_on_every_ci_gets_metadata_actions_tags() {
    let mut failures = Vec::new();
    for c in CASES {
        let env = fixture(c.fixture);
        assert_eq!(ci::detect(&env), c.provider, "{}", c.fixture);
        let r = resolve(&env, c.fixture).unwrap();
        if names(&r) != c.default {
            failures.push(format!("{} (default rules): {:?}, expected {:?}", c.fixture, names(&r), c.default));
        }
        let mut env = env;
        env.insert(tags_var(&env).into(), METADATA_ACTION_SEMVER.into());
        let r = resolve(&env, c.fixture).unwrap();
        if names(&r) != c.metadata_action {
            failures.push(format!(
                "{} (metadata-action's rules): {:?}, expected {:?}",
                c.fixture,
                names(&r),
                c.metadata_action
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `latest` never moves on a branch, a pull request or a pre-release, whatever the CI.
#[test]
fn latest_is_only_for_stable_release_tags() {
    for c in CASES {
        let stable = c.fixture.contains("v1.2.3") || c.fixture.contains("v0.3.0") || c.fixture == "bitbucket-tag";
        assert_eq!(c.default.contains(&"latest"), stable, "{}", c.fixture);
        assert!(!c.default.contains(&"0"), "{}: metadata-action publishes no `0`", c.fixture);
    }
}

#[test]
fn computed_and_literal_tags_combine_with_prefix_suffix_and_flavor() {
    let mut env = fixture("github-tag-v1.2.3");
    env.insert("INPUT_TAGS".into(), "type=computed\nstable\nquay.io/acme/hello:1.2.3".into());
    let r = resolve(&env, "github-tag-v1.2.3").unwrap();
    assert_eq!(
        r.tags,
        [
            "docker.io/acme/hello:1.2.3",
            "docker.io/acme/hello:1.2",
            "docker.io/acme/hello:1",
            "docker.io/acme/hello:v1.2.3",
            "docker.io/acme/hello:stable",
            "docker.io/acme/hello:sha-3f78685",
            "docker.io/acme/hello:latest",
            "quay.io/acme/hello:1.2.3",
        ]
    );
    env.insert("INPUT_TAGS".into(), "type=semver,pattern={{major}}.{{minor}}\ntype=raw,value=build-{{sha}}".into());
    env.insert("INPUT_FLAVOR".into(), "prefix=app-\nsuffix=-alpine,onlatest=true".into());
    let r = resolve(&env, "github-tag-v1.2.3").unwrap();
    assert_eq!(names(&r), ["app-1.2-alpine", "app-build-3f78685-alpine", "latest-alpine"]);
    env.insert("INPUT_FLAVOR".into(), "latest=false".into());
    assert!(!names(&resolve(&env, "github-tag-v1.2.3").unwrap()).contains(&"latest".to_string()));

    env.insert("INPUT_FLAVOR".into(), "latest=sometimes".into());
    let e = resolve(&env, "github-tag-v1.2.3").unwrap_err();
    assert_eq!(e.to_string(), "`INPUT_FLAVOR`: `latest=sometimes`: expected `auto`, `true` or `false`");
    env.insert("INPUT_FLAVOR".into(), String::new());
    env.insert("INPUT_TAGS".into(), "type=match,pattern=v(.*),group=1".into());
    let e = resolve(&env, "github-tag-v1.2.3").unwrap_err();
    assert!(e.to_string().starts_with("`INPUT_TAGS`: archway does not compute `type=match`"), "{e}");
    assert!(e.hint().contains("type=semver,pattern={{version}}"), "{}", e.hint());
}

/// Bitbucket's `TAGS` are tag names for `IMAGE`, as Atlassian's pipes take them: separated by
/// blanks, commas or newlines, or a YAML list; full references are still references.
#[test]
fn bitbucket_tags_are_names_for_the_image() {
    let base = fixture("bitbucket-pipe-branch");
    for (given, want) in [
        (vec![("TAGS", "latest 1.0")], vec!["docker.io/acme/hello-world:latest", "docker.io/acme/hello-world:1.0"]),
        (vec![("TAGS", "latest,1.0")], vec!["docker.io/acme/hello-world:latest", "docker.io/acme/hello-world:1.0"]),
        (vec![("TAGS", "latest\n1.0\n")], vec!["docker.io/acme/hello-world:latest", "docker.io/acme/hello-world:1.0"]),
        (
            vec![("TAGS_COUNT", "2"), ("TAGS_0", "latest"), ("TAGS_1", "docker.io/acme/other:9")],
            vec!["docker.io/acme/hello-world:latest", "docker.io/acme/other:9"],
        ),
    ] {
        let mut env = base.clone();
        for (k, v) in &given {
            env.insert(k.to_string(), v.to_string());
        }
        let r = resolve(&env, "bitbucket-pipe-branch").unwrap();
        assert_eq!(r.tags, want, "{given:?}");
        env.remove("PUSH");
        let r = resolve(&env, "bitbucket-pipe-branch").unwrap();
        assert!(r.push(!r.tags.is_empty()), "an image is named: PUSH defaults to true");
    }
    // Names without an image cannot be published; full references can.
    let mut env = base.clone();
    env.remove("IMAGE");
    env.insert("TAGS".into(), "latest 1.0".into());
    let e = resolve(&env, "bitbucket-pipe-branch").unwrap_err();
    assert_eq!(
        e.to_string(),
        "`TAGS` names the tag `latest`, and there is no image to apply it to (`IMAGE` is not set)"
    );
    assert!(e.hint().contains("set `IMAGE`"), "{}", e.hint());
    env.insert("TAGS".into(), "docker.io/acme/app:1.0 docker.io/acme/app:latest".into());
    let r = resolve(&env, "bitbucket-pipe-branch").unwrap();
    assert_eq!(r.tags, ["docker.io/acme/app:1.0", "docker.io/acme/app:latest"]);
}
