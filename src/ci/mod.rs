//! ci: what makes archway feel native on GitHub Actions, GitLab CI and Bitbucket Pipelines (and
//! plain on a laptop) — which CI this is, the inputs it was given, the tags and labels its commit
//! metadata implies, the registry credentials it provides, its log dialect and the output files
//! it reads back. One file per CI behind the [`Ci`] trait; nothing here builds or pushes.
//!
//! Everything reads one snapshot of the environment ([`Env`], taken once by
//! `inputs::environment::snapshot`), so each CI can be tested with a fixture. Variable names are constants in [`vars`].
//!
//! How `inputs` and `report` use it:
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use archway::ci;
//! let env = archway::inputs::environment::snapshot();
//! let ci = ci::for_provider(ci::detect(&env));
//! let log = ci.reporter(&env, Box::new(std::io::stderr())); // masks every secret first
//! let event = ci.read_event(&env); // GitHub's event payload; `None` elsewhere
//! let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() as i64;
//! let run = ci::resolve(&*ci, &env, event.as_deref(), now)?;
//! // … `inputs` merges `run` with the command-line flags, then before pushing:
//! run.check_push()?;
//! let gitlab_registry = ci.own_credentials(&env); // the CI's own credentials, for its registry
//! log.group_start("build linux/arm64");
//! // … build, publish, then:
//! let result = ci::CiResult::default();
//! ci.write_outputs(&env, &result)?;
//! log.success("published ghcr.io/acme/app@sha256:…");
//! # Ok(()) }
//! ```

pub mod bitbucket;
pub mod github;
pub mod gitlab;
pub mod inputs;
pub mod lists;
pub mod local;
pub mod log;
pub mod metadata;
pub mod outputs;
pub mod registry_auth;
pub mod vars;

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::PathBuf;

pub use inputs::{CiInputs, Spelling};
pub use log::{CiLog, Dialect, Level, Redactor, Reporter};
pub use metadata::{GitMeta, oci_labels, tags_for};
pub use outputs::{CiResult, PlatformRow};

use crate::error::UserError;
use crate::secret::Secret;

/// A snapshot of the environment: variable name → value.
pub type Env = HashMap<String, String>;

/// The CI archway runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    GitHub,
    GitLab,
    /// `pipe`: running as a Bitbucket pipe (inputs are pipe variables), not in a script step.
    Bitbucket {
        pipe: bool,
    },
    Local,
}

/// Which CI this is: GitHub (`GITHUB_ACTIONS=true`), GitLab (`GITLAB_CI=true`), a Bitbucket pipe
/// (`BITBUCKET_PIPE_STORAGE_DIR` set), a Bitbucket step (`BITBUCKET_BUILD_NUMBER` set), else local.
pub fn detect(env: &Env) -> Provider {
    let is_true = |k: &str| env.get(k).is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if is_true(vars::GITHUB_ACTIONS) {
        Provider::GitHub
    } else if is_true(vars::GITLAB_CI) {
        Provider::GitLab
    } else if env.contains_key(vars::BITBUCKET_PIPE_STORAGE_DIR) {
        Provider::Bitbucket { pipe: true }
    } else if env.contains_key(vars::BITBUCKET_BUILD_NUMBER) {
        Provider::Bitbucket { pipe: false }
    } else {
        Provider::Local
    }
}

/// The CI behind `p`.
pub fn for_provider(p: Provider) -> Box<dyn Ci> {
    match p {
        Provider::GitHub => Box::new(github::GitHub),
        Provider::GitLab => Box::new(gitlab::GitLab),
        Provider::Bitbucket { pipe } => Box::new(bitbucket::Bitbucket { pipe }),
        Provider::Local => Box::new(local::Local),
    }
}

/// Registry credentials a CI provides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The registry host they are for, as asked.
    pub registry: String,
    pub username: String,
    pub password: Secret,
}

/// One CI: how it spells inputs, what it says about the commit, its credentials, its log and
/// its output files. Every method reads only the snapshot it is given, except `read_event`,
/// `reporter` (which writes to `out`) and `write_outputs`.
pub trait Ci: Send + Sync {
    fn provider(&self) -> Provider;
    /// The CI's name for messages: `GitHub Actions`.
    fn name(&self) -> &'static str;
    /// How this CI spells inputs.
    fn spelling(&self) -> Spelling;

    /// The inputs given through this CI; an error names the variable as this CI spells it.
    fn inputs(&self, env: &Env) -> Result<CiInputs, InputError> {
        inputs::read(env, self.spelling())
    }

    /// The checkout, the build context when none is given; `None` locally (use `.`).
    fn default_context(&self, env: &Env) -> Option<PathBuf>;

    /// The CI's event payload, when it has one as a file (GitHub's `GITHUB_EVENT_PATH`).
    fn read_event(&self, _env: &Env) -> Option<String> {
        None
    }

    /// What the CI says about the commit. `event_json` is what `read_event` returned.
    fn git_meta(&self, env: &Env, event_json: Option<&str>) -> GitMeta;

    /// The image to tag when the user names neither an image nor tags.
    fn default_image(&self, _env: &Env) -> Option<String> {
        None
    }

    /// The credentials this CI provides for its own registry (GitLab's `CI_REGISTRY`), after
    /// the `username`/`password` inputs and the `registry-auth` list, before the Docker config.
    fn own_credentials(&self, _env: &Env) -> Vec<Credentials> {
        Vec::new()
    }

    /// Credentials used only when nothing else (not even the Docker config) has one for their
    /// registry: the GitHub token for ghcr.io.
    fn last_credentials(&self, _env: &Env) -> Vec<Credentials> {
        Vec::new()
    }

    /// build-push-action's `github-token`: the token for a Git context on this CI's Git server,
    /// with that server's host (`github.com`), for the build secret `GIT_AUTH_TOKEN.<host>`.
    fn git_auth_token(&self, _env: &Env) -> Option<(String, Secret)> {
        None
    }

    /// Variables that hold a secret on this CI, besides the `password` input.
    fn secret_vars(&self) -> &'static [&'static str];

    /// Every secret value in the environment this CI's code could come across: the `password`
    /// input, the CI's tokens, and `ARCHWAY_REGISTRY_PASSWORD`. For the log masker.
    fn secrets(&self, env: &Env) -> Vec<Secret> {
        let password = self.spelling().var(&vars::PASSWORD);
        let mut names = vec![password, vars::PASSWORD.archway];
        names.extend(self.secret_vars());
        names.dedup();
        let mut out: Vec<Secret> = names
            .iter()
            .filter_map(|n| env.get(*n))
            .filter(|v| !v.is_empty())
            .map(|v| Secret::new(v.as_str()))
            .collect();
        // Each password of the `registry-auth` list.
        for var in [self.spelling().var(&vars::REGISTRY_AUTH), vars::REGISTRY_AUTH.archway] {
            out.extend(env.get(var).map(|v| registry_auth::secrets(v)).unwrap_or_default());
        }
        // Build secrets: each value of `secrets`, and the variables `secret-envs` names.
        let spelling = self.spelling();
        for var in [spelling.var(&vars::SECRETS), vars::SECRETS.archway] {
            out.extend(env.get(var).map(|v| inputs::secret_values(&Secret::new(v.as_str()))).unwrap_or_default());
        }
        for var in [spelling.var(&vars::SECRET_ENVS), vars::SECRET_ENVS.archway] {
            for item in env.get(var).map(|v| lists::key_values(v)).unwrap_or_default() {
                if let Some((_, name)) = item.split_once('=')
                    && let Some(v) = env.get(name.trim()).filter(|v| !v.is_empty())
                {
                    out.push(Secret::new(v.as_str()));
                }
            }
        }
        out.dedup();
        out
    }

    /// The log in this CI's dialect, writing to `out`, with every secret of `env` registered
    /// before anything else is written.
    fn reporter(&self, env: &Env, out: Box<dyn Write + Send>) -> Box<dyn Reporter>;

    /// Writes the files this CI reads back after the step (outputs, summary, variables) and
    /// returns their paths; none where the CI has none or its variables are unset.
    fn write_outputs(&self, env: &Env, result: &CiResult) -> io::Result<Vec<PathBuf>>;
}

/// A [`CiLog`] with `dialect`, every secret of `env` masked first.
pub(crate) fn new_reporter<D: Dialect + 'static>(
    ci: &dyn Ci,
    env: &Env,
    dialect: D,
    out: Box<dyn Write + Send>,
) -> Box<dyn Reporter> {
    let log = CiLog::new(dialect, out);
    for s in ci.secrets(env) {
        log.mask(&s);
    }
    Box::new(log)
}

pub use crate::reference::same_registry;

/// A CI input that cannot be used. Each names the variable as the CI spells it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("`{var}` is `{value}`; expected `true` or `false` (also `1`/`0`, `yes`/`no`)")]
    NotBool { var: String, value: String },
    #[error("`{var}` is `{value}`; expected a whole number")]
    NotCount { var: String, value: String },
    #[error("`{var}` is {count}, and `{missing}` is not set")]
    MissingItem { var: String, count: usize, missing: String },
    #[error("`{var}`: `{item}` is not `KEY=VALUE`")]
    NotKeyValue { var: String, item: String },
    #[error("pushing needs tags, and neither `{tags_var}` nor `{image_var}` is set")]
    NoTags { tags_var: String, image_var: String },
    #[error("`{var}`: {why}")]
    BadTag { var: String, why: String },
    #[error("`{var}` names the tag `{item}`, and there is no image to apply it to (`{image_var}` is not set)")]
    TagWithoutImage { var: String, item: String, image_var: String },
    #[error("`{var}`: {why}")]
    BadFlavor { var: String, why: String },
    /// Names the item and field, never a value: the whole input is a secret.
    #[error("`{var}` {why}")]
    BadRegistryAuth { var: String, why: String },
    #[error("the CI inputs cannot be read: {0}")]
    Unreadable(String),
}

impl InputError {
    /// How to fix it, in one line.
    pub fn hint(&self) -> String {
        match self {
            InputError::NotBool { var, .. } => format!("set `{var}` to `true` or `false`, or leave it out"),
            InputError::NotCount { var, .. } | InputError::MissingItem { var, .. } => {
                format!("`{var}` is set by Bitbucket for a list; give the list as a YAML list or as one string")
            }
            InputError::NotKeyValue { var, .. } => format!("write each item of `{var}` as `KEY=VALUE`, one per line"),
            InputError::NoTags { tags_var, image_var } => {
                format!(
                    "set `{image_var}` (e.g. `registry.example.com/team/app`) to tag from the commit, or list `{tags_var}`"
                )
            }
            InputError::BadTag { var, .. } => format!(
                "list in `{var}` image references (`ghcr.io/acme/app:1.0`), tag names for the image (`latest 1.0`) or docker/metadata-action rules (`type=semver,pattern={{{{version}}}}`), one rule a line"
            ),
            InputError::TagWithoutImage { image_var, .. } => format!(
                "set `{image_var}` to the image name (e.g. `docker.io/acme/app`), or give full references such as `docker.io/acme/app:1.0`"
            ),
            InputError::BadFlavor { var, .. } => {
                format!(
                    "write `{var}` as docker/metadata-action's flavor: `latest=auto`, `prefix=…`, `suffix=…`, one a line"
                )
            }
            InputError::BadRegistryAuth { var, .. } => format!(
                "write `{var}` as docker/login-action's `registry-auth`: a YAML list with `registry`, `username` and `password` in each item; quote a value holding `: `, ` #` or starting with `*`, `&`, `!`, `@`, `%`, `'` or `\"`"
            ),
            InputError::Unreadable(_) => "check the CI variables archway reads (see `archway::ci::vars`)".into(),
        }
    }
}

impl From<InputError> for UserError {
    fn from(e: InputError) -> Self {
        let hint = e.hint();
        UserError::input(e.to_string()).hint(hint)
    }
}

/// The CI's view of a run, defaults applied: what `build` merges with its flags.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub provider: Provider,
    pub spelling: Spelling,
    pub inputs: CiInputs,
    pub meta: GitMeta,
    /// The `context` input, else the CI's checkout; `None` locally.
    pub context: Option<PathBuf>,
    /// The `image` input; else, when no tags are given, the CI's default image.
    pub image: Option<String>,
    /// The full references the `tags` input gives (its references, and `image:NAME` for its
    /// tag names and the tags its rules compute); without a `tags` input, the tags
    /// [`metadata::DEFAULT_RULES`] compute for `image`.
    pub tags: Vec<String>,
    /// What tag computation decided that the user should hear (`latest` kept back).
    pub notes: Vec<String>,
    /// [`oci_labels`], then the `labels` input (which wins for a key it repeats).
    pub labels: Vec<(String, String)>,
    /// [`oci_labels`]: the computed annotations, put on each platform's manifest and on the
    /// index (the `annotations` input is scoped by `inputs`, as buildx's `--annotation`).
    pub annotations: Vec<(String, String)>,
}

impl Resolved {
    /// Fails when the `push` input asks to push but there are no tags to push to (Bitbucket has
    /// no default image). Call it after merging the flags only if no `--tag` was given.
    pub fn check_push(&self) -> Result<(), InputError> {
        if self.inputs.push == Some(true) && self.tags.is_empty() {
            return Err(InputError::NoTags {
                tags_var: self.spelling.var(&vars::TAGS).into(),
                image_var: self.spelling.var(&vars::IMAGE).into(),
            });
        }
        Ok(())
    }

    /// Whether the CI asks to push: the `push` input; left out, every CI pushes when there is
    /// an image to push to (named by `image`, `tags`, `-t` or the CI's own default image: what
    /// README, action.yml, pipe.yml and the component say). A local run does not.
    pub fn push(&self, has_tags: bool) -> bool {
        self.inputs.push.unwrap_or(self.provider != Provider::Local && has_tags)
    }
}

/// Reads the inputs and the commit metadata and applies the CI's defaults. Pure given its
/// arguments: `event_json` from [`Ci::read_event`], `now_unix` for the `created` label.
pub fn resolve(ci: &dyn Ci, env: &Env, event_json: Option<&str>, now_unix: i64) -> Result<Resolved, InputError> {
    resolve_with(ci, env, event_json, now_unix, Vec::new())
}

/// [`resolve`], knowing the repository's git tags (read from the checkout), so `latest=auto`
/// can keep `latest` on a higher release.
pub fn resolve_with(
    ci: &dyn Ci,
    env: &Env,
    event_json: Option<&str>,
    now_unix: i64,
    repo_tags: Vec<String>,
) -> Result<Resolved, InputError> {
    use metadata::TagItem;
    let spelling = ci.spelling();
    let inputs = ci.inputs(env)?;
    let mut meta = ci.git_meta(env, event_json);
    meta.repo_tags = repo_tags;
    let tags_var = spelling.var(&vars::TAGS);
    let flavor = metadata::parse_flavor(&inputs.flavor)
        .map_err(|why| InputError::BadFlavor { var: spelling.var(&vars::FLAVOR).into(), why })?;
    let items = if inputs.tags.is_empty() {
        vec![TagItem::Rules(metadata::default_rules())]
    } else {
        let mut items = Vec::new();
        for item in &inputs.tags {
            items.push(metadata::parse_tag_item(item).map_err(|why| InputError::BadTag { var: tags_var.into(), why })?);
        }
        items
    };
    let mut references = Vec::new();
    let mut rules = Vec::new();
    let mut first_name = None;
    for (item, text) in items.into_iter().zip(inputs.tags.iter().map(Some).chain(std::iter::repeat(None))) {
        match item {
            TagItem::Reference(r) => references.push(r),
            TagItem::Rules(r) => {
                first_name = first_name.or(text.cloned());
                rules.extend(r);
            }
        }
    }
    let image = inputs.image.clone().or_else(|| if rules.is_empty() { None } else { ci.default_image(env) });
    if let (None, Some(item)) = (&image, &first_name) {
        return Err(InputError::TagWithoutImage {
            var: tags_var.into(),
            item: item.clone(),
            image_var: spelling.var(&vars::IMAGE).into(),
        });
    }
    let computed =
        if rules.is_empty() { metadata::Computed::default() } else { metadata::compute(&rules, &flavor, &meta) };
    let mut tags: Vec<String> = match &image {
        Some(image) => computed.names.iter().map(|t| format!("{image}:{t}")).collect(),
        None => Vec::new(),
    };
    tags.extend(references);
    let labels_computed = oci_labels(&meta, &tags, now_unix);
    let labels = merge_pairs(&labels_computed, &inputs.labels, spelling.var(&vars::LABELS))?;
    let annotations = labels_computed;
    let context = inputs.context.clone().or_else(|| ci.default_context(env));
    Ok(Resolved {
        provider: ci.provider(),
        spelling,
        inputs,
        meta,
        context,
        image,
        tags,
        notes: computed.notes,
        labels,
        annotations,
    })
}

/// `base`, then each `KEY=VALUE` of `given`, a repeated key replacing the earlier value in place
/// (the one `KEY=VALUE` parser, `inputs::lists`).
fn merge_pairs(base: &[(String, String)], given: &[String], var: &str) -> Result<Vec<(String, String)>, InputError> {
    use crate::inputs::lists::{set, split_pair};
    let mut out = base.to_vec();
    for item in given {
        let (k, v) = split_pair(item).ok_or_else(|| InputError::NotKeyValue { var: var.into(), item: item.clone() })?;
        set(&mut out, k, v);
    }
    Ok(out)
}

/// A non-empty variable of the snapshot.
pub(crate) fn get<'a>(env: &'a Env, name: &str) -> Option<&'a str> {
    env.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn detection() {
        assert_eq!(detect(&env(&[("GITHUB_ACTIONS", "true")])), Provider::GitHub);
        assert_eq!(detect(&env(&[("GITLAB_CI", "true")])), Provider::GitLab);
        assert_eq!(detect(&env(&[("BITBUCKET_BUILD_NUMBER", "7")])), Provider::Bitbucket { pipe: false });
        assert_eq!(
            detect(&env(&[("BITBUCKET_BUILD_NUMBER", "7"), ("BITBUCKET_PIPE_STORAGE_DIR", "/s")])),
            Provider::Bitbucket { pipe: true }
        );
        assert_eq!(detect(&env(&[("GITHUB_ACTIONS", "false")])), Provider::Local);
        assert_eq!(detect(&Env::new()), Provider::Local);
    }

    #[test]
    fn registries() {
        assert!(same_registry("https://Index.Docker.io/", "docker.io"));
        assert!(same_registry("ghcr.io", "GHCR.IO"));
        assert!(!same_registry("ghcr.io", "docker.io"));
    }

    #[test]
    fn user_labels_win_in_place() {
        let base = vec![("a".to_string(), "1".to_string()), ("b".into(), "2".into())];
        let m = merge_pairs(&base, &["a=x=y".into(), "c=".into()], "L").unwrap();
        assert_eq!(m, [("a".into(), "x=y".into()), ("b".into(), "2".into()), ("c".into(), String::new())]);
        assert_eq!(
            merge_pairs(&base, &["oops".into()], "INPUT_LABELS").unwrap_err().to_string(),
            "`INPUT_LABELS`: `oops` is not `KEY=VALUE`"
        );
    }

    #[test]
    fn input_errors_become_input_user_errors() {
        let u: UserError = InputError::NotBool { var: "PUSH".into(), value: "y".into() }.into();
        assert_eq!(u.kind, crate::error::ErrorKind::Input);
        assert!(u.hint.unwrap().contains("`PUSH`"));
    }
}
