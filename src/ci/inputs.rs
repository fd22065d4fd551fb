//! ci inputs: the inputs that mean the same on every CI (`context`, `platforms`, `tags`, …), read
//! from an environment snapshot in the spelling of the CI at hand. Reads only the snapshot it is
//! given; defaults (platforms, context, image, tags) are applied elsewhere.

use std::path::PathBuf;

use serde::{Deserialize, Deserializer};

use super::vars::{self, InputKind, InputVar};
use super::{Env, InputError, lists};
use crate::secret::Secret;

/// How a CI spells its inputs as environment variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spelling {
    /// `INPUT_BUILD-ARGS`: a GitHub action's inputs.
    GitHub,
    /// `BUILD_ARGS`, `REGISTRY_PASSWORD`, lists also as `TAGS_COUNT` + `TAGS_0…`: a Bitbucket pipe.
    Pipe,
    /// `ARCHWAY_BUILD_ARGS`: GitLab, a Bitbucket script step, a local run.
    Archway,
}

impl Spelling {
    /// The variable that carries `input` in this spelling.
    pub fn var(self, input: &InputVar) -> &'static str {
        match self {
            Spelling::GitHub => input.github,
            Spelling::Pipe => input.pipe,
            Spelling::Archway => input.archway,
        }
    }
}

/// Everything the user may set through the CI; `None` or empty means not given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct CiInputs {
    pub context: Option<PathBuf>,
    pub file: Option<PathBuf>,
    #[serde(deserialize_with = "lists::de_items")]
    pub platforms: Vec<String>,
    /// References, tag names and docker/metadata-action rules ([`super::metadata::tag_items`]).
    #[serde(deserialize_with = "lists::de_tag_items")]
    pub tags: Vec<String>,
    /// docker/metadata-action's `flavor`, one item a line.
    #[serde(deserialize_with = "lists::de_lines")]
    pub flavor: Vec<String>,
    /// Image name without tag (`ghcr.io/acme/app`).
    pub image: Option<String>,
    /// `KEY=VALUE` or `KEY`, as `--build-arg`.
    #[serde(deserialize_with = "lists::de_key_values")]
    pub build_args: Vec<String>,
    /// `KEY=VALUE`, as `--label`.
    #[serde(deserialize_with = "lists::de_key_values")]
    pub labels: Vec<String>,
    /// `KEY=VALUE`, as `--annotation`.
    #[serde(deserialize_with = "lists::de_key_values")]
    pub annotations: Vec<String>,
    pub target: Option<String>,
    #[serde(skip)]
    pub push: Option<bool>,
    /// `PLATFORM=ENDPOINT`, as `--node`.
    #[serde(deserialize_with = "lists::de_items")]
    pub nodes: Vec<String>,
    pub node_certs: Option<PathBuf>,
    #[serde(skip)]
    pub no_emulation: Option<bool>,
    pub binfmt: Option<String>,
    #[serde(deserialize_with = "lists::de_items")]
    pub prefer: Vec<String>,
    pub provenance: Option<String>,
    pub sbom: Option<String>,
    pub username: Option<String>,
    #[serde(deserialize_with = "de_secret")]
    pub password: Option<Secret>,
    pub registry: Option<String>,
    /// docker/login-action's `registry-auth`: a YAML list, kept whole as a secret until
    /// [`super::registry_auth::parse`] reads it.
    #[serde(deserialize_with = "de_secret")]
    pub registry_auth: Option<Secret>,
    pub metadata_file: Option<PathBuf>,
    #[serde(skip)]
    pub dry_run: Option<bool>,
    // docker/build-push-action's build inputs.
    #[serde(deserialize_with = "lists::de_lines")]
    pub cache_from: Vec<String>,
    #[serde(deserialize_with = "lists::de_lines")]
    pub cache_to: Vec<String>,
    #[serde(skip)]
    pub no_cache: Option<bool>,
    #[serde(deserialize_with = "lists::de_items")]
    pub no_cache_filters: Vec<String>,
    #[serde(skip)]
    pub pull: Option<bool>,
    /// `ID=VALUE` lines, kept whole as a secret until the resolver splits them.
    #[serde(deserialize_with = "de_secret")]
    pub secrets: Option<Secret>,
    /// `ID=VARIABLE`.
    #[serde(deserialize_with = "lists::de_key_values")]
    pub secret_envs: Vec<String>,
    /// `ID=PATH`.
    #[serde(deserialize_with = "lists::de_lines")]
    pub secret_files: Vec<String>,
    #[serde(deserialize_with = "lists::de_lines")]
    pub ssh: Vec<String>,
    #[serde(deserialize_with = "lists::de_key_values")]
    pub build_contexts: Vec<String>,
    #[serde(skip)]
    pub load: Option<bool>,
    #[serde(deserialize_with = "lists::de_lines")]
    pub outputs: Vec<String>,
    pub shm_size: Option<String>,
    #[serde(deserialize_with = "lists::de_lines")]
    pub ulimit: Vec<String>,
    #[serde(deserialize_with = "lists::de_lines")]
    pub attests: Vec<String>,
    pub cgroup_parent: Option<String>,
    #[serde(deserialize_with = "lists::de_items")]
    pub add_hosts: Vec<String>,
    pub network: Option<String>,
    #[serde(deserialize_with = "lists::de_items")]
    pub allow: Vec<String>,
    pub builder: Option<String>,
    pub call: Option<String>,
    pub progress: Option<String>,
}

impl CiInputs {
    /// The secrets among the inputs, for the log masker.
    pub fn secrets(&self) -> Vec<Secret> {
        let mut out: Vec<Secret> = self.password.iter().cloned().collect();
        out.extend(self.registry_auth.iter().flat_map(|a| super::registry_auth::secrets(a.expose())));
        out.extend(self.secrets.iter().flat_map(secret_values));
        out
    }
}

/// The values of a `secrets` input (`ID=VALUE` lines), each to be masked on its own.
pub fn secret_values(secrets: &Secret) -> Vec<Secret> {
    secrets
        .expose()
        .lines()
        .filter_map(|l| l.split_once('=').map(|(_, v)| v.trim_end_matches('\r')))
        .filter(|v| !v.is_empty())
        .map(Secret::new)
        .collect()
}

// Option<Secret> needs its own function because `Secret` has no `Deserialize` (on purpose: it
// should only come from places that know they hold one). A trailing line break is dropped (a
// password file read into a variable often ends with one); other whitespace is the password's.
fn de_secret<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Secret>, D::Error> {
    let raw = String::deserialize(d)?;
    Ok(Some(Secret::new(raw.trim_end_matches(['\r', '\n']))))
}

/// Reads every input in `spelling` from `env`.
///
/// A variable that is empty or blank counts as not given (the GitHub runner sets every input an
/// action declares, empty when the workflow leaves it out). Booleans are checked here so that a
/// wrong value is reported under the name the user typed.
pub fn read(env: &Env, spelling: Spelling) -> Result<CiInputs, InputError> {
    let mut pairs = Vec::new();
    let mut bools = Vec::new();
    for input in vars::INPUTS {
        let var = spelling.var(input);
        let value = match (spelling, input.kind) {
            (Spelling::Pipe, InputKind::List | InputKind::KeyValues | InputKind::Lines) => {
                counted_list(env, var)?.or_else(|| env.get(var).cloned())
            }
            _ => env.get(var).cloned(),
        };
        let Some(value) = value.filter(|v| !v.trim().is_empty()) else { continue };
        match input.kind {
            InputKind::Bool => bools.push((input.name, lists::boolean(var, &value)?)),
            InputKind::Text => pairs.push((field(input), value.trim().to_string())),
            InputKind::List | InputKind::KeyValues | InputKind::Lines | InputKind::Secret => {
                pairs.push((field(input), value))
            }
        }
    }
    let mut inputs: CiInputs = envy::from_iter(pairs).map_err(|e| InputError::Unreadable(e.to_string()))?;
    for (name, value) in bools {
        let slot = match name {
            "push" => &mut inputs.push,
            "no-emulation" => &mut inputs.no_emulation,
            "dry-run" => &mut inputs.dry_run,
            "no-cache" => &mut inputs.no_cache,
            "pull" => &mut inputs.pull,
            "load" => &mut inputs.load,
            other => unreachable!("boolean input `{other}` has no field"),
        };
        *slot = Some(value);
    }
    Ok(inputs)
}

/// The serde field an input fills: its name in snake case (envy lower-cases keys itself).
fn field(input: &InputVar) -> String {
    input.name.replace('-', "_")
}

/// A Bitbucket list variable given as YAML list: `TAGS_COUNT=2`, `TAGS_0`, `TAGS_1`; joined
/// with line breaks so each item stays whole.
fn counted_list(env: &Env, var: &str) -> Result<Option<String>, InputError> {
    let count_var = format!("{var}{}", vars::COUNT_SUFFIX);
    let Some(count) = env.get(&count_var) else { return Ok(None) };
    let n: usize = count
        .trim()
        .parse()
        .map_err(|_| InputError::NotCount { var: count_var.clone(), value: count.trim().to_string() })?;
    // Bitbucket sets every item; reading stops at the first missing one, so a count nobody's list
    // has (`TAGS_COUNT=99999999`) costs one lookup, not millions.
    let mut items = Vec::new();
    for i in 0..n {
        let item = format!("{var}_{i}");
        match env.get(&item) {
            Some(v) => items.push(v.as_str()),
            None => return Err(InputError::MissingItem { var: count_var, count: n, missing: item }),
        }
    }
    Ok(Some(items.join("\n")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn github_keeps_hyphens_and_ignores_empty_inputs() {
        let e = env(&[
            ("INPUT_BUILD-ARGS", "A=1\nB=x,y"),
            ("INPUT_NO-EMULATION", "true"),
            ("INPUT_PLATFORMS", ""),
            ("INPUT_TARGET", "  "),
            ("INPUT_CONTEXT", " ./app "),
            ("BUILD_ARGS", "ignored"),
        ]);
        let i = read(&e, Spelling::GitHub).unwrap();
        assert_eq!(i.build_args, ["A=1", "B=x,y"]);
        assert_eq!(i.no_emulation, Some(true));
        assert!(i.platforms.is_empty());
        assert_eq!(i.target, None);
        assert_eq!(i.context, Some(PathBuf::from("./app")));
        assert_eq!(i.push, None);
    }

    #[test]
    fn pipe_lists_in_count_form() {
        let e = env(&[("TAGS_COUNT", "2"), ("TAGS_0", "a:1"), ("TAGS_1", " a:2 "), ("PLATFORMS", "linux/amd64")]);
        let i = read(&e, Spelling::Pipe).unwrap();
        assert_eq!(i.tags, ["a:1", "a:2"]);
        assert_eq!(i.platforms, ["linux/amd64"]);
        let e = env(&[("BUILD_ARGS_COUNT", "2"), ("BUILD_ARGS_0", "A=1,2"), ("BUILD_ARGS_1", "B=3")]);
        assert_eq!(read(&e, Spelling::Pipe).unwrap().build_args, ["A=1,2", "B=3"]);
        let e = env(&[("TAGS_COUNT", "two")]);
        assert_eq!(read(&e, Spelling::Pipe).unwrap_err().to_string(), "`TAGS_COUNT` is `two`; expected a whole number");
        // Found by fuzzing (ci_env): a count of millions was millions of lookups.
        let e = env(&[("TAGS_COUNT", "1234566"), ("TAGS_0", "a:1")]);
        assert_eq!(
            read(&e, Spelling::Pipe).unwrap_err().to_string(),
            "`TAGS_COUNT` is 1234566, and `TAGS_1` is not set"
        );
    }

    #[test]
    fn bad_booleans_name_the_variable() {
        let e = env(&[("ARCHWAY_DRY_RUN", "sure")]);
        let err = read(&e, Spelling::Archway).unwrap_err();
        assert!(err.to_string().starts_with("`ARCHWAY_DRY_RUN` is `sure`"), "{err}");
    }

    #[test]
    fn password_keeps_inner_whitespace_and_drops_a_final_newline() {
        let e = env(&[("REGISTRY_PASSWORD", " p w\n"), ("REGISTRY_USERNAME", "bob")]);
        let i = read(&e, Spelling::Pipe).unwrap();
        assert_eq!(i.password.unwrap().expose(), " p w");
        assert_eq!(i.username.as_deref(), Some("bob"));
    }
}
