//! vars: every environment variable the CI layer reads, as one documented constant each, and the
//! table of inputs with their spelling on each CI. Names only: nothing here reads the environment.

// ---- Detection ----

/// `true` on a GitHub Actions runner.
pub const GITHUB_ACTIONS: &str = "GITHUB_ACTIONS";
/// `true` in a GitLab CI job.
pub const GITLAB_CI: &str = "GITLAB_CI";
/// Set in every Bitbucket Pipelines step, and passed on to pipes.
pub const BITBUCKET_BUILD_NUMBER: &str = "BITBUCKET_BUILD_NUMBER";
/// Set only inside a Bitbucket pipe's container: the pipe's own storage directory.
pub const BITBUCKET_PIPE_STORAGE_DIR: &str = "BITBUCKET_PIPE_STORAGE_DIR";

// ---- GitHub Actions ----

/// The checkout directory (`/github/workspace` inside a container action); the default context.
pub const GITHUB_WORKSPACE: &str = "GITHUB_WORKSPACE";
/// `owner/repo`; gives the default image `ghcr.io/owner/repo` and the title label.
pub const GITHUB_REPOSITORY: &str = "GITHUB_REPOSITORY";
/// `https://github.com` or a GitHub Enterprise server; with the repository, the source label.
pub const GITHUB_SERVER_URL: &str = "GITHUB_SERVER_URL";
/// The full ref: `refs/heads/main`, `refs/tags/v1.2.3`, `refs/pull/42/merge`.
pub const GITHUB_REF: &str = "GITHUB_REF";
/// The short ref name: `main`, `v1.2.3`, `42/merge`.
pub const GITHUB_REF_NAME: &str = "GITHUB_REF_NAME";
/// `branch` or `tag`.
pub const GITHUB_REF_TYPE: &str = "GITHUB_REF_TYPE";
/// The commit the workflow runs on (for a pull request: the merge commit).
pub const GITHUB_SHA: &str = "GITHUB_SHA";
/// GitHub's REST API (`https://api.github.com`, or a GitHub Enterprise Server's); where the
/// Git context is fetched from when nothing is checked out.
pub const GITHUB_API_URL: &str = "GITHUB_API_URL";
/// A pull request's source branch; empty for other events.
pub const GITHUB_HEAD_REF: &str = "GITHUB_HEAD_REF";
/// `push`, `pull_request`, `release`, …
pub const GITHUB_EVENT_NAME: &str = "GITHUB_EVENT_NAME";
/// The webhook payload as a JSON file; archway reads `repository.default_branch` and
/// `pull_request.number` from it.
pub const GITHUB_EVENT_PATH: &str = "GITHUB_EVENT_PATH";
/// The user or app that triggered the run; the username for `ghcr.io` with the GitHub token.
pub const GITHUB_ACTOR: &str = "GITHUB_ACTOR";
/// The workflow token, when the workflow puts it in the step's environment; for ghcr.io when no
/// other credential is found. Never printed.
pub const GITHUB_TOKEN: &str = "GITHUB_TOKEN";
/// The action's `github-token` input (the runner keeps the hyphen), as build-push-action's: the
/// token for a Git context on the GitHub server, handed to buildx as the build secret
/// `GIT_AUTH_TOKEN.<host>`; for ghcr.io after `GITHUB_TOKEN`. Never printed.
pub const INPUT_GITHUB_TOKEN: &str = "INPUT_GITHUB-TOKEN";
/// The runner's own token for the Actions service; masked in case anything echoes it.
pub const ACTIONS_RUNTIME_TOKEN: &str = "ACTIONS_RUNTIME_TOKEN";
/// File the step appends `name=value` outputs to.
pub const GITHUB_OUTPUT: &str = "GITHUB_OUTPUT";
/// File the step appends Markdown to, shown on the run's summary page.
pub const GITHUB_STEP_SUMMARY: &str = "GITHUB_STEP_SUMMARY";

// ---- GitLab CI ----

/// The checkout directory; the default context and where the dotenv report goes.
pub const CI_PROJECT_DIR: &str = "CI_PROJECT_DIR";
/// The project's web address; the source label.
pub const CI_PROJECT_URL: &str = "CI_PROJECT_URL";
/// The project's name; the title label.
pub const CI_PROJECT_NAME: &str = "CI_PROJECT_NAME";
/// The project's description; the description label.
pub const CI_PROJECT_DESCRIPTION: &str = "CI_PROJECT_DESCRIPTION";
/// The branch of a branch pipeline; unset in tag and merge request pipelines.
pub const CI_COMMIT_BRANCH: &str = "CI_COMMIT_BRANCH";
/// The tag of a tag pipeline.
pub const CI_COMMIT_TAG: &str = "CI_COMMIT_TAG";
/// The commit the pipeline runs on.
pub const CI_COMMIT_SHA: &str = "CI_COMMIT_SHA";
/// The branch or tag name in every pipeline (the source branch in a merge request pipeline).
pub const CI_COMMIT_REF_NAME: &str = "CI_COMMIT_REF_NAME";
/// The merge request's number within the project, in merge request pipelines.
pub const CI_MERGE_REQUEST_IID: &str = "CI_MERGE_REQUEST_IID";
/// The merge request's source branch, in merge request pipelines.
pub const CI_MERGE_REQUEST_SOURCE_BRANCH_NAME: &str = "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME";
/// The project's default branch.
pub const CI_DEFAULT_BRANCH: &str = "CI_DEFAULT_BRANCH";
/// What started the pipeline: `push`, `merge_request_event`, `schedule`, …
pub const CI_PIPELINE_SOURCE: &str = "CI_PIPELINE_SOURCE";
/// The project's container registry host, e.g. `registry.gitlab.com`.
pub const CI_REGISTRY: &str = "CI_REGISTRY";
/// The project's image in that registry; the default image.
pub const CI_REGISTRY_IMAGE: &str = "CI_REGISTRY_IMAGE";
/// Username for `CI_REGISTRY`, valid for this job.
pub const CI_REGISTRY_USER: &str = "CI_REGISTRY_USER";
/// Password for `CI_REGISTRY`, valid for this job. Never printed.
pub const CI_REGISTRY_PASSWORD: &str = "CI_REGISTRY_PASSWORD";
/// The job token; logs in to `CI_REGISTRY` as `gitlab-ci-token`. Never printed.
pub const CI_JOB_TOKEN: &str = "CI_JOB_TOKEN";
/// Password for the dependency proxy; masked in case anything echoes it.
pub const CI_DEPENDENCY_PROXY_PASSWORD: &str = "CI_DEPENDENCY_PROXY_PASSWORD";
/// `true` when the job runs with debug logging; enables archway's debug lines on GitLab.
pub const CI_DEBUG_TRACE: &str = "CI_DEBUG_TRACE";
/// Where archway writes its dotenv report on GitLab; default `archway.env` in `CI_PROJECT_DIR`.
pub const ARCHWAY_DOTENV: &str = "ARCHWAY_DOTENV";

// ---- Bitbucket Pipelines ----

/// The checkout directory; the default context.
pub const BITBUCKET_CLONE_DIR: &str = "BITBUCKET_CLONE_DIR";
/// The branch built; for a pull request, its source branch. Unset in tag builds.
pub const BITBUCKET_BRANCH: &str = "BITBUCKET_BRANCH";
/// The tag of a tag build.
pub const BITBUCKET_TAG: &str = "BITBUCKET_TAG";
/// The commit built.
pub const BITBUCKET_COMMIT: &str = "BITBUCKET_COMMIT";
/// The pull request's number, in pull request builds.
pub const BITBUCKET_PR_ID: &str = "BITBUCKET_PR_ID";
/// `http://bitbucket.org/workspace/repo`; the source label (upgraded to `https://`).
pub const BITBUCKET_GIT_HTTP_ORIGIN: &str = "BITBUCKET_GIT_HTTP_ORIGIN";
/// The repository's slug; the title label.
pub const BITBUCKET_REPO_SLUG: &str = "BITBUCKET_REPO_SLUG";
/// The step's OIDC token when the step asks for one; masked in case anything echoes it.
pub const BITBUCKET_STEP_OIDC_TOKEN: &str = "BITBUCKET_STEP_OIDC_TOKEN";
/// File a step appends `KEY=VALUE` lines to, for its `output-variables`.
pub const BITBUCKET_PIPELINES_VARIABLES_PATH: &str = "BITBUCKET_PIPELINES_VARIABLES_PATH";
/// Directory shared by the pipes of a step; archway writes `archway-result.json` there.
pub const BITBUCKET_PIPE_SHARED_STORAGE_DIR: &str = "BITBUCKET_PIPE_SHARED_STORAGE_DIR";
/// Pipe variable `DEBUG=true`: show debug lines (as every Atlassian pipe does).
pub const PIPE_DEBUG: &str = "DEBUG";
/// The default branch, which Bitbucket does not tell a build; `main` and `master` count as
/// default when it is not given. Spelled `DEFAULT_BRANCH` in a pipe, `ARCHWAY_DEFAULT_BRANCH`
/// in a script step.
pub const PIPE_DEFAULT_BRANCH: &str = "DEFAULT_BRANCH";
/// `DEFAULT_BRANCH` in a Bitbucket script step.
pub const ARCHWAY_DEFAULT_BRANCH: &str = "ARCHWAY_DEFAULT_BRANCH";
/// Suffix of the variable Bitbucket sets for a list-valued pipe variable: `TAGS_COUNT=2` with
/// `TAGS_0`, `TAGS_1`.
pub const COUNT_SUFFIX: &str = "_COUNT";

// ---- Inputs ----

/// How an input's value is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// One value, trimmed.
    Text,
    /// Items split on commas and newlines, trimmed, empties dropped.
    List,
    /// `KEY=VALUE` items: split on newlines when the value has any, else on commas.
    KeyValues,
    /// Items one a line, commas kept (buildx specs such as `type=registry,ref=…`).
    Lines,
    /// `true`/`false`, `1`/`0`, `yes`/`no`, any case.
    Bool,
    /// Kept as a `Secret`; only a trailing line break is dropped.
    Secret,
}

/// An input's default on one CI, as the CI's own file and README state it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputDefault {
    /// Nothing: left out, the input is not set. No `default:` in action.yml, `default: ""` in the
    /// GitLab component (its way of making an input optional), an empty cell in README.
    None,
    /// This value: `default:` in action.yml, pipe.yml and the component, `` `VALUE` `` in README.
    Value(&'static str),
    /// Worked out by archway when the input is left out (README says how, in these words); no
    /// value in the CI's file (`default: ""` in the component).
    Computed(&'static str),
    /// Not an input on this CI: the GitLab component leaves credentials to masked CI/CD
    /// variables, since component inputs are part of the pipeline configuration.
    NotListed,
}

/// One input and the variable that carries it on each CI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputVar {
    /// The input's name in an action's `with:` (docker/build-push-action's where it means the same).
    pub name: &'static str,
    /// On GitHub: `INPUT_` and the name upper-cased, hyphens kept (as the runner sets it).
    pub github: &'static str,
    /// In a Bitbucket pipe: the name in UPPER_SNAKE (credentials as `REGISTRY_*`).
    pub pipe: &'static str,
    /// On GitLab, in a Bitbucket script step and locally: `ARCHWAY_` and UPPER_SNAKE.
    pub archway: &'static str,
    pub kind: InputKind,
    /// One line saying what the input means; every description of it (action.yml, pipe.yml, the
    /// component, README's tables) starts with these words (`tests/inputs_table.rs`).
    pub doc: &'static str,
    /// The default in the action (`action.yml`), the pipe and the GitLab component.
    pub github_default: InputDefault,
    pub pipe_default: InputDefault,
    pub gitlab_default: InputDefault,
    /// The default of the `ARCHWAY_*` variable outside the component (a Bitbucket script step,
    /// a laptop), shown by `--help`.
    pub local_default: InputDefault,
}

impl InputVar {
    /// Never printed, masked in logs, never given a default, never a GitLab component input.
    pub fn secret(&self) -> bool {
        self.kind == InputKind::Secret
    }
}

/// `$a` when given, else `$b` (the optional per-CI defaults of `inputs!`).
macro_rules! either {
    ($a:expr; $b:expr) => {
        $a
    };
    (; $b:expr) => {
        $b
    };
}

/// `ID: name, github, pipe, archway, Kind, doc, default D [github G] [pipe P] [gitlab L] [local O];`
/// where D is the default everywhere that has no default of its own.
macro_rules! inputs {
    ($($id:ident: $name:literal, $github:literal, $pipe:literal, $archway:literal, $kind:ident, $doc:literal,
        default $default:expr $(, github $gd:expr)? $(, pipe $pd:expr)? $(, gitlab $ld:expr)? $(, local $od:expr)?;)*) => {
        $(
            #[doc = $doc]
            pub const $id: InputVar = InputVar {
                name: $name,
                github: $github,
                pipe: $pipe,
                archway: $archway,
                kind: InputKind::$kind,
                doc: $doc,
                github_default: either!($($gd)?; $default),
                pipe_default: either!($($pd)?; $default),
                gitlab_default: either!($($ld)?; $default),
                local_default: either!($($od)?; $default),
            };
        )*
        /// Every input, in the order of `CiInputs`' fields.
        pub const INPUTS: &[InputVar] = &[$($id),*];
    };
}

use InputDefault::{Computed, NotListed, Value};

inputs! {
    CONTEXT: "context", "INPUT_CONTEXT", "CONTEXT", "ARCHWAY_CONTEXT", Text,
        "Build context directory",
        default Computed("the checkout; without one, the Git context (the repository at the workflow's commit), as build-push-action"), pipe Computed("the clone directory"), gitlab Value("."), local Value(".");
    FILE: "file", "INPUT_FILE", "FILE", "ARCHWAY_FILE", Text,
        "Dockerfile",
        default Computed("`CONTEXT/Dockerfile`");
    PLATFORMS: "platforms", "INPUT_PLATFORMS", "PLATFORMS", "ARCHWAY_PLATFORMS", List,
        "Target platforms, comma- or newline-separated",
        default Value("linux/amd64,linux/arm64");
    TAGS: "tags", "INPUT_TAGS", "TAGS", "ARCHWAY_TAGS", List,
        "Tags to publish (several repositories and registries allowed; every tag moves only once all are written): image references, tag names for `image`, or docker/metadata-action rules",
        default Computed("computed from `image` and the commit"), pipe Computed("computed from `IMAGE` and the commit");
    FLAVOR: "flavor", "INPUT_FLAVOR", "FLAVOR", "ARCHWAY_FLAVOR", Lines,
        "How computed tags are written, as docker/metadata-action's `flavor`: `latest=auto|true|false`, `prefix=…`, `suffix=…`",
        default Computed("`latest=auto`");
    IMAGE: "image", "INPUT_IMAGE", "IMAGE", "ARCHWAY_IMAGE", Text,
        "Image name without tag, to compute tags for",
        default Computed("`ghcr.io/OWNER/REPO`"), pipe InputDefault::None, gitlab Value("$CI_REGISTRY_IMAGE"),
        local InputDefault::None;
    BUILD_ARGS: "build-args", "INPUT_BUILD-ARGS", "BUILD_ARGS", "ARCHWAY_BUILD_ARGS", KeyValues,
        "Build arguments, `KEY=VALUE` (or `KEY` to take it from the environment)",
        default InputDefault::None;
    LABELS: "labels", "INPUT_LABELS", "LABELS", "ARCHWAY_LABELS", KeyValues,
        "Image labels, `KEY=VALUE`, added to the computed `org.opencontainers.image.*` ones",
        default InputDefault::None;
    ANNOTATIONS: "annotations", "INPUT_ANNOTATIONS", "ANNOTATIONS", "ARCHWAY_ANNOTATIONS", KeyValues,
        "Annotations, `KEY=VALUE` on each platform's manifest (as buildx) or `index:KEY=VALUE` on the index, added to the computed `org.opencontainers.image.*` ones, which go on both",
        default InputDefault::None;
    TARGET: "target", "INPUT_TARGET", "TARGET", "ARCHWAY_TARGET", Text,
        "Stage to build",
        default Computed("the last stage");
    PUSH: "push", "INPUT_PUSH", "PUSH", "ARCHWAY_PUSH", Bool,
        "Push every platform by digest, then the index, then the tags",
        default Value("true"), pipe Computed("`true` whenever an image is named"),
        local Computed("`true` in CI whenever an image is named, else `false`");
    NODES: "nodes", "INPUT_NODES", "NODES", "ARCHWAY_NODES", List,
        "Remote Docker engines that build a platform natively, `PLATFORM=ENDPOINT`",
        default InputDefault::None;
    NODE_CERTS: "node-certs", "INPUT_NODE-CERTS", "NODE_CERTS", "ARCHWAY_NODE_CERTS", Text,
        "Directory with `ca.pem`, `cert.pem` and `key.pem` for TLS to `tcp://` nodes",
        default InputDefault::None;
    NO_EMULATION: "no-emulation", "INPUT_NO-EMULATION", "NO_EMULATION", "ARCHWAY_NO_EMULATION", Bool,
        "Never run foreign code under QEMU",
        default Value("false");
    BINFMT: "binfmt", "INPUT_BINFMT", "BINFMT", "ARCHWAY_BINFMT", Text,
        "May archway register QEMU handlers in the kernel (`auto` or `never`)",
        default Value("auto");
    PREFER: "prefer", "INPUT_PREFER", "PREFER", "ARCHWAY_PREFER", List,
        "Strategies to try first, comma-separated (`assembled`, `native`, `cross`, `remote`, `emulated`)",
        default InputDefault::None;
    PROVENANCE: "provenance", "INPUT_PROVENANCE", "PROVENANCE", "ARCHWAY_PROVENANCE", Text,
        "Provenance attestation, as buildx's `--provenance`",
        default Computed("buildx's default");
    SBOM: "sbom", "INPUT_SBOM", "SBOM", "ARCHWAY_SBOM", Text,
        "SBOM attestation, as buildx's `--sbom`",
        default Computed("buildx's default");
    USERNAME: "username", "INPUT_USERNAME", "REGISTRY_USERNAME", "ARCHWAY_REGISTRY_USERNAME", Text,
        "Username for the registry pushed to (or for `registry`)",
        default InputDefault::None, gitlab NotListed;
    PASSWORD: "password", "INPUT_PASSWORD", "REGISTRY_PASSWORD", "ARCHWAY_REGISTRY_PASSWORD", Secret,
        "Password or token for the registry pushed to (or for `registry`)",
        default InputDefault::None, gitlab NotListed;
    REGISTRY: "registry", "INPUT_REGISTRY", "REGISTRY", "ARCHWAY_REGISTRY", Text,
        "The registry the credentials are for",
        default Computed("the one pushed to");
    REGISTRY_AUTH: "registry-auth", "INPUT_REGISTRY-AUTH", "REGISTRY_AUTH", "ARCHWAY_REGISTRY_AUTH", Secret,
        "Credentials for several registries, as docker/login-action's `registry-auth`: a YAML list of `registry` (Docker Hub when left out), `username` and `password`",
        default InputDefault::None, gitlab NotListed;
    METADATA_FILE: "metadata-file", "INPUT_METADATA-FILE", "METADATA_FILE", "ARCHWAY_METADATA_FILE", Text,
        "File to write the result to, as JSON",
        default InputDefault::None, gitlab Value("archway-metadata.json");
    DRY_RUN: "dry-run", "INPUT_DRY-RUN", "DRY_RUN", "ARCHWAY_DRY_RUN", Bool,
        "Print the plan and stop",
        default Value("false");
    CACHE_FROM: "cache-from", "INPUT_CACHE-FROM", "CACHE_FROM", "ARCHWAY_CACHE_FROM", Lines,
        "External cache sources, as buildx's `--cache-from`, one a line; each platform reads its own scope",
        default InputDefault::None;
    CACHE_TO: "cache-to", "INPUT_CACHE-TO", "CACHE_TO", "ARCHWAY_CACHE_TO", Lines,
        "Cache export destinations, as buildx's `--cache-to`, one a line; each platform writes its own scope",
        default InputDefault::None;
    NO_CACHE: "no-cache", "INPUT_NO-CACHE", "NO_CACHE", "ARCHWAY_NO_CACHE", Bool,
        "Do not use the build cache",
        default Value("false");
    NO_CACHE_FILTERS: "no-cache-filters", "INPUT_NO-CACHE-FILTERS", "NO_CACHE_FILTERS", "ARCHWAY_NO_CACHE_FILTERS", List,
        "Stages not to take from the build cache, as buildx's `--no-cache-filter`",
        default InputDefault::None;
    PULL: "pull", "INPUT_PULL", "PULL", "ARCHWAY_PULL", Bool,
        "Always resolve the base images again",
        default Value("false");
    SECRETS: "secrets", "INPUT_SECRETS", "SECRETS", "ARCHWAY_SECRETS", Secret,
        "Build secrets, `ID=VALUE`, one a line, for `RUN --mount=type=secret`",
        default InputDefault::None, gitlab NotListed;
    SECRET_ENVS: "secret-envs", "INPUT_SECRET-ENVS", "SECRET_ENVS", "ARCHWAY_SECRET_ENVS", KeyValues,
        "Build secrets from environment variables, `ID=VARIABLE`",
        default InputDefault::None;
    SECRET_FILES: "secret-files", "INPUT_SECRET-FILES", "SECRET_FILES", "ARCHWAY_SECRET_FILES", Lines,
        "Build secrets from files, `ID=PATH`, one a line",
        default InputDefault::None;
    SSH: "ssh", "INPUT_SSH", "SSH", "ARCHWAY_SSH", Lines,
        "Forward SSH agent sockets or keys, as buildx's `--ssh` (`default` or `ID=PATH`)",
        default InputDefault::None;
    BUILD_CONTEXTS: "build-contexts", "INPUT_BUILD-CONTEXTS", "BUILD_CONTEXTS", "ARCHWAY_BUILD_CONTEXTS", KeyValues,
        "Additional named build contexts, `NAME=PATH` (or an image or URL, as buildx's `--build-context`)",
        default InputDefault::None;
    LOAD: "load", "INPUT_LOAD", "LOAD", "ARCHWAY_LOAD", Bool,
        "After publishing, load the image of the engine's own platform into the local engine",
        default Value("false");
    OUTPUTS: "outputs", "INPUT_OUTPUTS", "OUTPUTS", "ARCHWAY_OUTPUTS", Lines,
        "Extra exporters, written after publishing: `type=oci|docker|tar,dest=FILE` or `type=local,dest=DIR` (each platform's filesystem); `type=image|registry,name=…,push=…` is archway's own push",
        default InputDefault::None;
    SHM_SIZE: "shm-size", "INPUT_SHM-SIZE", "SHM_SIZE", "ARCHWAY_SHM_SIZE", Text,
        "Size of `/dev/shm` in RUN steps, e.g. `2g`",
        default InputDefault::None;
    ULIMIT: "ulimit", "INPUT_ULIMIT", "ULIMIT", "ARCHWAY_ULIMIT", Lines,
        "Ulimits of RUN steps, e.g. `nofile=1024:1024`, one a line",
        default InputDefault::None;
    ADD_HOSTS: "add-hosts", "INPUT_ADD-HOSTS", "ADD_HOSTS", "ARCHWAY_ADD_HOSTS", List,
        "Extra `/etc/hosts` entries of RUN steps, `HOST:IP`",
        default InputDefault::None;
    NETWORK: "network", "INPUT_NETWORK", "NETWORK", "ARCHWAY_NETWORK", Text,
        "Network mode of RUN steps (`default`, `host`, `none`)",
        default InputDefault::None;
    ALLOW: "allow", "INPUT_ALLOW", "ALLOW", "ARCHWAY_ALLOW", List,
        "Extra privileged entitlements, e.g. `network.host`",
        default InputDefault::None;
    BUILDER: "builder", "INPUT_BUILDER", "BUILDER", "ARCHWAY_BUILDER", Text,
        "The buildx builder instance to use",
        default Computed("buildx's current builder");
    CALL: "call", "INPUT_CALL", "CALL", "ARCHWAY_CALL", Text,
        "Run a build method instead of building, e.g. `check` (buildx 0.14 or newer)",
        default Computed("`build`");
    ATTESTS: "attests", "INPUT_ATTESTS", "ATTESTS", "ARCHWAY_ATTESTS", Lines,
        "Attestations to add, as buildx's `--attest` (e.g. `type=sbom`), one a line",
        default InputDefault::None;
    CGROUP_PARENT: "cgroup-parent", "INPUT_CGROUP-PARENT", "CGROUP_PARENT", "ARCHWAY_CGROUP_PARENT", Text,
        "Parent cgroup of RUN steps, as buildx's `--cgroup-parent`",
        default InputDefault::None;
    PROGRESS: "progress", "INPUT_PROGRESS", "PROGRESS", "ARCHWAY_PROGRESS", Text,
        "What to show while building, as buildx's `--progress`: `auto`, `tty`, `plain`, `quiet` or `rawjson`",
        default Value("auto");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spellings are written out so they can be searched for; this keeps them following the
    /// rule each CI uses.
    #[test]
    fn spellings_follow_each_ci_rule() {
        for i in INPUTS {
            assert_eq!(i.github, format!("INPUT_{}", i.name.to_uppercase()), "{}", i.name);
            let snake = i.name.to_uppercase().replace('-', "_");
            let pipe = match i.name {
                "username" | "password" => format!("REGISTRY_{snake}"),
                _ => snake.clone(),
            };
            assert_eq!(i.pipe, pipe);
            assert_eq!(i.archway, format!("ARCHWAY_{pipe}"));
        }
        assert_eq!(USERNAME.archway, crate::env::REGISTRY_USERNAME);
        assert_eq!(PASSWORD.archway, crate::env::REGISTRY_PASSWORD);
        assert_eq!(INPUTS.len(), 46);
    }

    /// A secret is never a component input (inputs are part of the pipeline configuration) and
    /// never has a value written in any file.
    #[test]
    fn secrets_have_no_default_value_and_are_no_gitlab_input() {
        for i in INPUTS.iter().filter(|i| i.secret()) {
            assert_eq!(i.gitlab_default, InputDefault::NotListed, "{}", i.name);
            for d in [i.github_default, i.pipe_default, i.local_default] {
                assert!(!matches!(d, InputDefault::Value(_)), "{}: {d:?}", i.name);
            }
        }
        assert!(PASSWORD.secret() && !USERNAME.secret());
    }
}
