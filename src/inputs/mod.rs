//! inputs: the one settings resolver. Turns an environment snapshot, the CI's inputs (`INPUT_*`,
//! pipe variables, `ARCHWAY_*`), its commit metadata and the command-line flags into the checked
//! request of each subcommand — flags over CI inputs over defaults — and is the only stage that
//! reads the process environment ([`environment`]). Every problem found here is an input error
//! (exit 2) that names the input, says what was expected and how to fix it; nothing has been
//! built or pushed yet.
//!
//! `plan` and `build --dry-run` go through the same [`Invocation::source`] and
//! [`Invocation::strategy`], so they agree on every input by construction.

pub mod environment;
pub mod git_context;
pub mod gitrefs;
pub mod lists;

use std::path::{Path, PathBuf};

use crate::builder::assemble::layer::Compression;
use crate::builder::options::{BuildOptions, BuildSecret, SecretSource};
use crate::ci::{self, Ci, CiInputs, Env};
use crate::cli::{
    BinfmtArg, BinfmtRegisterArgs, BuildArgs, BuildxArgs, Format, InspectArgs, MergeArgs, PlanArgs, PromoteArgs,
    RegistryArgs, SourceArgs, StrategyArgs,
};
use crate::error::UserError;
use crate::plan::{BinfmtPolicy, Policy, StrategyKind};
use crate::platform::Platform;
use crate::reference::Reference;
use crate::registry::{Client, Credential, CredentialSource};
use crate::secret::Secret;

pub use environment::Runner;
pub use lists::DEFAULT_PLATFORMS;

/// The layout directory written when not pushing.
pub const DEFAULT_OUTPUT: &str = "archway-out";

/// What to build: the Dockerfile, its context, the platforms, args and target.
#[derive(Debug, Clone)]
pub struct BuildSource {
    pub context: PathBuf,
    pub dockerfile: PathBuf,
    pub platforms: Vec<Platform>,
    pub build_args: Vec<(String, String)>,
    pub target: Option<String>,
}

/// A remote engine the user named for one platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRequest {
    pub platform: Platform,
    pub endpoint: String,
    pub cert_dir: Option<PathBuf>,
}

/// How platforms may be built.
#[derive(Debug, Clone)]
pub struct StrategyInput {
    pub policy: Policy,
    pub nodes: Vec<NodeRequest>,
}

/// Which credentials and transport a registry client uses.
#[derive(Debug, Clone, Default)]
pub struct RegistryAccess {
    /// Where every registry's credential comes from ([`Invocation::credentials`]): the same
    /// source for `build` (and its buildx), `merge`, `promote`, `inspect` and `plan`.
    pub credentials: CredentialSource,
    /// Hosts talked to over plain HTTP (loopback hosts always are).
    pub insecure: Vec<String>,
}

impl RegistryAccess {
    /// A registry client with these credentials.
    pub fn client(&self) -> Client {
        Client::new(self.credentials.clone(), self.insecure.clone())
    }
}

/// `archway plan`.
#[derive(Debug, Clone)]
pub struct PlanRequest {
    pub source: BuildSource,
    pub strategy: StrategyInput,
    pub runner: Runner,
    /// For reading base images' configs.
    pub registry: RegistryAccess,
    pub format: Format,
    /// Plan against this record instead of probing.
    pub capabilities: Option<PathBuf>,
    pub save_capabilities: Option<PathBuf>,
}

/// `archway build`: what to build, for which platforms, and where the result goes.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    pub source: BuildSource,
    pub strategy: StrategyInput,
    pub runner: Runner,
    pub dry_run: bool,
    /// `--label` pairs and the manifests' annotations (`--annotation K=V`,
    /// `manifest:K=V`), with the CI's computed ones first.
    pub labels: Vec<(String, String)>,
    pub annotations: Vec<(String, String)>,
    /// The index's annotations (`index:K=V`), with the CI's computed ones first.
    pub index_annotations: Vec<(String, String)>,
    /// What tag computation decided that the log should say (`latest` kept back).
    pub notes: Vec<String>,
    /// `--provenance` and `--sbom` values for buildx, when given.
    pub provenance: Option<String>,
    pub sbom: Option<String>,
    pub output: Output,
    pub metadata_file: Option<PathBuf>,
    pub registry: RegistryAccess,
    /// Platforms built at once; at least 1.
    pub jobs: usize,
    /// How assembled platforms are written.
    pub assemble: AssembleSettings,
    /// docker/build-push-action's build inputs, for buildx.
    pub options: BuildOptions,
    /// `load`: after publishing, load the engine's own platform into the local engine.
    pub load: bool,
    /// The references given (`-t`, the CI's tags), pushed or not: what `load` names the image.
    pub tags: Vec<Reference>,
    /// `outputs`: extra exporters written after publishing.
    pub exporters: Vec<Exporter>,
    /// Every build secret's value (files' contents too), for the log masker.
    pub secret_masks: Vec<Secret>,
}

/// An extra exporter (`outputs`, `--output type=…`), written after publishing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exporter {
    /// `type=oci,dest=PATH`: an OCI image layout of the published image, as a tar (or a
    /// directory with `tar=false`).
    Oci { dest: PathBuf, tar: bool },
    /// `type=docker,dest=PATH`: a tar `docker load` reads, of the engine's own platform.
    Docker { dest: PathBuf },
    /// `type=local,dest=DIR`: each platform's root filesystem, in `DIR/os_arch[_variant]` when
    /// there are several (`platform-split=false`: all in `DIR`).
    Local { dest: PathBuf, split: bool },
    /// `type=tar,dest=FILE`: the same as a tar.
    Tar { dest: PathBuf, split: bool },
}

/// `--compression`, `--compression-level`, `--cache-from` and `SOURCE_DATE_EPOCH`.
#[derive(Debug, Clone)]
pub struct AssembleSettings {
    pub compression: Compression,
    /// `None`: the compression's default.
    pub compression_level: Option<i32>,
    /// Images whose layers may be reused by content (besides the image under the first tag).
    pub cache_from: Vec<Reference>,
    /// Seconds since the epoch for `created`.
    pub epoch: i64,
}

#[derive(Debug, Clone)]
pub enum Output {
    /// Push to a registry: `tags` are non-empty and share one repository.
    Registry { tags: Vec<Reference> },
    /// Write an OCI image layout; `names` go into `org.opencontainers.image.ref.name`.
    Layout { dir: PathBuf, names: Vec<String> },
    /// Push by digest only (a matrix leg): no tag moves.
    Digest { repo: Reference, digest_file: Option<PathBuf> },
}

impl BuildRequest {
    /// The repository everything is pushed to (the first tag's), when pushing.
    pub fn repository(&self) -> Option<&Reference> {
        match &self.output {
            Output::Registry { tags } => tags.first(),
            Output::Digest { repo, .. } => Some(repo),
            Output::Layout { .. } => None,
        }
    }

    /// Every repository the run publishes to, the first one's first (the tags may name
    /// several, on several registries).
    pub fn repositories(&self) -> Vec<Reference> {
        match &self.output {
            Output::Registry { tags } => crate::publish::repositories(tags),
            Output::Digest { repo, .. } => vec![repo.repository_only()],
            Output::Layout { .. } => vec![],
        }
    }
}

/// `archway merge`.
#[derive(Debug, Clone)]
pub struct MergeRequest {
    /// Non-empty, each with a tag, all in `repo`.
    pub tags: Vec<Reference>,
    pub repo: Reference,
    /// What to merge, as given (references, digest files, directories).
    pub sources: Vec<String>,
    /// Platforms that must be present.
    pub expected: Vec<Platform>,
    pub allow_partial: bool,
    pub annotations: std::collections::BTreeMap<String, String>,
    pub metadata_file: Option<PathBuf>,
    pub registry: RegistryAccess,
    /// What tag computation decided that the log should say.
    pub notes: Vec<String>,
}

/// `archway promote`.
#[derive(Debug, Clone)]
pub struct PromoteRequest {
    pub source: Reference,
    /// Non-empty, each with a tag.
    pub destinations: Vec<Reference>,
    /// Platforms to keep; empty keeps all.
    pub keep: Vec<Platform>,
    pub registry: RegistryAccess,
}

/// `archway inspect`.
#[derive(Debug, Clone)]
pub struct InspectRequest {
    pub reference: Reference,
    pub format: Format,
    pub raw: bool,
    pub registry: RegistryAccess,
}

/// One run of archway: the environment, read once, and the CI it names.
pub struct Invocation {
    pub env: Env,
    pub ci: Box<dyn Ci>,
    pub runner: Runner,
    /// Seconds since the epoch, for the `created` label.
    pub now_unix: i64,
    /// archway's stderr is a terminal.
    pub terminal: bool,
}

impl Invocation {
    /// Reads the process environment (the only time archway does).
    pub fn capture() -> Invocation {
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        let inv = Invocation::new(environment::snapshot(), environment::own_executable(), now);
        Invocation { terminal: environment::stderr_is_terminal(), ..inv }
    }

    /// An invocation from a given snapshot (tests).
    pub fn new(env: Env, exe: Option<PathBuf>, now_unix: i64) -> Invocation {
        let ci = ci::for_provider(ci::detect(&env));
        let runner = Runner::from_env(&env, exe);
        Invocation { env, ci, runner, now_unix, terminal: false }
    }

    /// What is shown while building (`--progress`, else the CI's `progress` input, else
    /// `auto`): `auto` is the live view on a terminal when no CI is detected, else plain lines.
    /// The live view is never drawn where stderr is not a terminal, even when asked for.
    pub fn progress(&self, flag: Option<&str>) -> Result<crate::report::Progress, UserError> {
        use crate::report::Progress;
        let input = self.ci.inputs(&self.env)?.progress;
        let (name, value) = match (flag, input.as_deref()) {
            (Some(f), _) => ("`--progress`".to_string(), f.to_string()),
            (None, Some(i)) => (format!("`{}`", self.var(&ci::vars::PROGRESS)), i.to_string()),
            (None, None) => (String::new(), "auto".into()),
        };
        let in_ci = self.ci.provider() != ci::Provider::Local
            || ci::get(&self.env, crate::env::CI).is_some_and(|v| v != "0" && !v.eq_ignore_ascii_case("false"));
        let color = ci::get(&self.env, crate::env::NO_COLOR).is_none();
        let live = Progress::Tty { color };
        Ok(match value.trim() {
            "auto" if self.terminal && !in_ci => live,
            "tty" if self.terminal => live,
            "auto" | "tty" | "plain" => Progress::Plain,
            "quiet" => Progress::Quiet,
            "rawjson" => Progress::RawJson,
            other => {
                return Err(UserError::input(format!("{name} is `{other}`; expected a progress mode"))
                    .hint("use `auto`, `tty`, `plain`, `quiet` or `rawjson`"));
            }
        })
    }

    /// The CI's inputs and commit metadata, its defaults applied (the checkout's git tags read
    /// for `latest=auto`).
    fn ci_run(&self) -> Result<ci::Resolved, UserError> {
        let event = self.ci.read_event(&self.env);
        let checkout = self.ci.default_context(&self.env).unwrap_or_else(|| PathBuf::from("."));
        let repo_tags = gitrefs::tags(&checkout);
        Ok(ci::resolve_with(&*self.ci, &self.env, event.as_deref(), self.now_unix, repo_tags)?)
    }

    /// The Dockerfile named by `-f` or the CI's `file` input, if any.
    pub fn file_input(&self, a: &SourceArgs) -> Option<PathBuf> {
        a.file.clone().or_else(|| self.ci.inputs(&self.env).ok()?.file)
    }

    /// docker/build-push-action's default context, when it applies: on GitHub, no `context`
    /// given and no Dockerfile in the workspace (no `actions/checkout`) — then the repository
    /// at the workflow's commit is fetched and built ([`git_context`]).
    pub fn git_context(&self, a: &SourceArgs) -> Result<Option<git_context::GitContext>, UserError> {
        use ci::vars;
        if self.ci.spelling() != ci::Spelling::GitHub || a.context.is_some() {
            return Ok(None);
        }
        // The inputs and the workspace only: the commit's metadata and tags are the build's to
        // read, once.
        let inputs = self.ci.inputs(&self.env)?;
        if inputs.context.is_some() {
            return Ok(None);
        }
        let workspace = self.ci.default_context(&self.env).unwrap_or_else(|| PathBuf::from("."));
        let dockerfile = match a.file.clone().or(inputs.file) {
            Some(f) if f.is_relative() && !f.exists() => workspace.join(f),
            Some(f) => f,
            None => workspace.join("Dockerfile"),
        };
        let get = |k: &str| self.env.get(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let (Some(repository), Some(sha)) = (get(vars::GITHUB_REPOSITORY), get(vars::GITHUB_SHA)) else {
            return Ok(None);
        };
        if dockerfile.is_file() {
            return Ok(None);
        }
        Ok(Some(git_context::GitContext {
            api: get(vars::GITHUB_API_URL).unwrap_or_else(|| git_context::DEFAULT_API.into()),
            repository,
            sha,
            token: get(vars::INPUT_GITHUB_TOKEN).or_else(|| get(vars::GITHUB_TOKEN)).map(Secret::new),
        }))
    }

    fn var(&self, input: &ci::vars::InputVar) -> &'static str {
        self.ci.spelling().var(input)
    }

    pub fn plan(&self, a: &PlanArgs) -> Result<PlanRequest, UserError> {
        let run = self.ci_run()?;
        let (options, _) = self.build_options(&[], &BuildxArgs::default(), &run)?;
        let mut strategy = self.strategy(&a.strategy, &run)?;
        limit(&mut strategy, &options);
        Ok(PlanRequest {
            source: self.source(&a.source, &run)?,
            strategy,
            runner: self.runner.clone(),
            registry: RegistryAccess { credentials: self.credentials(None, &run.inputs)?, insecure: Vec::new() },
            format: a.format,
            capabilities: a.capabilities.clone(),
            save_capabilities: a.save_capabilities.clone(),
        })
    }

    pub fn build(&self, a: &BuildArgs) -> Result<BuildRequest, UserError> {
        let run = self.ci_run()?;
        let i = &run.inputs;
        let source = self.source(&a.source, &run)?;
        let mut strategy = self.strategy(&a.strategy, &run)?;
        let (options, secret_masks) = self.build_options(&a.cache_from, &a.buildx, &run)?;
        limit(&mut strategy, &options);
        let Exports { layout_dir: layout_dirs, exporters, image } =
            exporters(&a.output, &i.outputs, self.var(&ci::vars::OUTPUTS))?;

        let mut given = if a.tags.is_empty() { run.tags.clone() } else { a.tags.clone() };
        if a.tags.is_empty() {
            run.check_push()?;
        }
        for name in &image.names {
            if !given.contains(name) {
                given.push(name.clone());
            }
        }
        let tags = lists::tags("-t", &given)?;
        let push_by_digest = a.push_by_digest || image.push_by_digest;
        if push_by_digest {
            lists::one_repository(&tags, "a matrix leg pushes to one repository; `archway merge` can tag others")?;
        }

        let given_tags = tags.clone();
        let push = a.push || image.push || run.push(!tags.is_empty());
        let output = if push_by_digest {
            let Some(first) = tags.first() else {
                return Err(UserError::input(
                    "`--push-by-digest` needs a repository to push to, and no `-t` was given",
                )
                .hint("add `-t registry/repository`"));
            };
            Output::Digest { repo: first.repository_only(), digest_file: a.digest_file.clone() }
        } else if push {
            if tags.is_empty() {
                return Err(UserError::input("`--push` needs an image to push to, and no `-t` was given")
                    .hint("add `-t registry/repository:tag`"));
            }
            Output::Registry { tags }
        } else {
            let dir = layout_dirs.unwrap_or_else(|| DEFAULT_OUTPUT.into());
            check_layout_dir(&dir)?;
            Output::Layout {
                dir,
                names: tags.iter().map(|t| t.tag.clone().unwrap_or_else(|| "latest".into())).collect(),
            }
        };

        for h in &a.insecure_registries {
            if h.contains('/') || h.trim().is_empty() {
                return Err(UserError::input(format!("`--insecure-registry {h}` is not a host"))
                    .hint("give `host` or `host:port`, without a scheme or path"));
            }
        }

        // The CI's computed labels and annotations go first, so a flag can replace one. Computed
        // annotations go on the manifests and the index; given ones where their prefix says.
        let from_ci = run.provider != ci::Provider::Local || !i.labels.is_empty() || !i.annotations.is_empty();
        let mut labels = if from_ci { run.labels.clone() } else { Vec::new() };
        for (k, v) in lists::pairs("--label", &a.labels)? {
            lists::set(&mut labels, k, v);
        }
        let computed = if from_ci { run.annotations.clone() } else { Vec::new() };
        let (mut annotations, mut index_annotations) = (computed.clone(), computed);
        let given = i
            .annotations
            .iter()
            .map(|x| (self.var(&ci::vars::ANNOTATIONS), x))
            .chain(a.annotations.iter().map(|x| ("--annotation", x)))
            .chain(image.annotations.iter().map(|x| (self.var(&ci::vars::OUTPUTS), x)));
        for (flag, item) in given {
            let (levels, k, v) = lists::annotation(flag, item)?;
            if levels.manifest {
                lists::set(&mut annotations, k.clone(), v.clone());
            }
            if levels.index {
                lists::set(&mut index_annotations, k, v);
            }
        }
        let registry = RegistryAccess {
            credentials: self.credentials(
                match &output {
                    Output::Registry { tags } => tags.first().map(|t| t.registry.as_str()),
                    Output::Digest { repo, .. } => Some(repo.registry.as_str()),
                    Output::Layout { .. } => None,
                },
                i,
            )?,
            insecure: a.insecure_registries.clone(),
        };
        let assemble = self.assemble_settings(a, &options.cache_from)?;
        let jobs = match a.jobs.unwrap_or(0) {
            0 => source.platforms.len(),
            n => n,
        };
        Ok(BuildRequest {
            source,
            strategy,
            runner: self.runner.clone(),
            dry_run: a.dry_run || i.dry_run == Some(true),
            labels,
            annotations,
            index_annotations,
            notes: run.notes.clone(),
            provenance: attestation_value("--provenance", a.provenance.as_deref().or(i.provenance.as_deref()))?,
            sbom: attestation_value("--sbom", a.sbom.as_deref().or(i.sbom.as_deref()))?,
            output,
            metadata_file: a.metadata_file.clone().or_else(|| i.metadata_file.clone()),
            registry,
            jobs: jobs.max(1),
            assemble,
            load: a.buildx.load || i.load == Some(true),
            tags: given_tags,
            exporters,
            options,
            secret_masks,
        })
    }

    /// docker/build-push-action's build inputs: flags (buildx's spellings), else the CI's
    /// inputs. With every secret value, for the log masker.
    fn build_options(
        &self,
        cache_from_flags: &[String],
        a: &BuildxArgs,
        run: &ci::Resolved,
    ) -> Result<(BuildOptions, Vec<Secret>), UserError> {
        use ci::vars;
        let i = &run.inputs;
        let pick = |flags: &[String], ci: &[String]| if flags.is_empty() { ci.to_vec() } else { flags.to_vec() };
        let cache_from = pick(cache_from_flags, &i.cache_from);
        let cache_to = pick(&a.cache_to, &i.cache_to);
        for (flag, var, flags, specs) in [
            ("--cache-from", vars::CACHE_FROM, cache_from_flags, &cache_from),
            ("--cache-to", vars::CACHE_TO, a.cache_to.as_slice(), &cache_to),
        ] {
            let name = if flags.is_empty() { self.var(&var) } else { flag };
            if let Some(c) = specs.iter().find(|c| c.contains(',') && !c.contains("type=")) {
                return Err(UserError::input(format!("`{name}`: `{c}` is not a cache spec"))
                    .hint("write it as buildx does, e.g. `type=registry,ref=REGISTRY/REPO:buildcache` or `type=gha`"));
            }
        }
        let (mut secrets, mut masks) = self.secrets(a, i)?;
        let ssh = pick(&a.ssh, &i.ssh);
        if ssh.iter().any(|s| s.trim() == "default" || s.trim().starts_with("default="))
            && !ssh.iter().any(|s| s.contains('='))
            && !self.env.contains_key(crate::env::SSH_AUTH_SOCK)
        {
            return Err(UserError::input("`ssh default` forwards the SSH agent, and `SSH_AUTH_SOCK` is not set")
                .hint("start an agent first (`eval $(ssh-agent) && ssh-add KEY`), or give `ID=PATH` to a key file"));
        }
        let mut build_contexts = Vec::new();
        let (flag, given) = if a.build_contexts.is_empty() {
            (self.var(&vars::BUILD_CONTEXTS).to_string(), i.build_contexts.clone())
        } else {
            ("--build-context".to_string(), a.build_contexts.clone())
        };
        for c in &given {
            let (k, v) = lists::split_pair(c).filter(|(_, v)| !v.is_empty()).ok_or_else(|| {
                UserError::input(format!("`{flag} {c}` is not `NAME=VALUE`"))
                    .hint("e.g. `src=../src`, `alpine=docker-image://alpine:3.20` or `repo=https://github.com/o/r.git`")
            })?;
            lists::set(&mut build_contexts, k, v);
        }
        // build-push-action's `github-token`: for a Git context on the CI's Git server, the build
        // secret `GIT_AUTH_TOKEN.<host>` BuildKit fetches it with, unless one is given already.
        if let Some((host, token)) = self.ci.git_auth_token(&self.env)
            && build_contexts.iter().any(|(_, v)| lists::git_url_host(v).is_some_and(|h| h.eq_ignore_ascii_case(&host)))
            && !secrets.iter().any(|s| s.id == "GIT_AUTH_TOKEN" || s.id.starts_with("GIT_AUTH_TOKEN."))
        {
            masks.push(token.clone());
            secrets.push(BuildSecret { id: format!("GIT_AUTH_TOKEN.{host}"), source: SecretSource::Value(token) });
        }
        let call = match (a.check, a.call.clone().or_else(|| i.call.clone())) {
            (true, _) => Some("check".to_string()),
            (false, Some(c)) if c.trim() == "build" || c.trim().is_empty() => None,
            (false, c) => c.map(|c| c.trim().to_string()),
        };
        let options = BuildOptions {
            cache_from,
            cache_to,
            no_cache: a.no_cache || i.no_cache == Some(true),
            no_cache_filters: pick(&a.no_cache_filters, &i.no_cache_filters),
            pull: a.pull || i.pull == Some(true),
            secrets,
            ssh,
            build_contexts,
            shm_size: a.shm_size.clone().or_else(|| i.shm_size.clone()),
            ulimits: pick(&a.ulimits, &i.ulimit),
            attests: pick(&a.attests, &i.attests),
            cgroup_parent: a.cgroup_parent.clone().or_else(|| i.cgroup_parent.clone()),
            add_hosts: pick(&a.add_hosts, &i.add_hosts),
            network: a.network.clone().or_else(|| i.network.clone()),
            allow: pick(&a.allow, &i.allow),
            builder: a.builder.clone().or_else(|| i.builder.clone()),
            call,
        };
        Ok((options, masks))
    }

    /// Build secrets: `--secret` flags (buildx's spelling), else the `secrets`, `secret-envs`
    /// and `secret-files` inputs. Values are looked up here and never appear in an error.
    fn secrets(&self, a: &BuildxArgs, i: &CiInputs) -> Result<(Vec<BuildSecret>, Vec<Secret>), UserError> {
        use ci::vars;
        let mut out: Vec<BuildSecret> = Vec::new();
        let from_env = |flag: &str, id: &str, var: &str| -> Result<SecretSource, UserError> {
            match self.env.get(var.trim()) {
                Some(v) => Ok(SecretSource::Value(Secret::new(v.as_str()))),
                None => {
                    Err(UserError::input(format!("`{flag}`: secret `{id}` is to come from `{var}`, which is not set"))
                        .hint(format!("set `{var}` in this step's environment, or drop the secret")))
                }
            }
        };
        let from_file = |flag: &str, id: &str, path: &str| -> Result<SecretSource, UserError> {
            let p = PathBuf::from(path.trim());
            if p.is_file() {
                Ok(SecretSource::File(p))
            } else {
                Err(UserError::input(format!(
                    "`{flag}`: secret `{id}` is to come from `{}`, which is not a file",
                    p.display()
                ))
                .hint("give the path of a readable file, relative to the current directory"))
            }
        };
        if a.secrets.is_empty() {
            if let Some(all) = &i.secrets {
                let var = self.var(&vars::SECRETS);
                for (n, line) in all.expose().lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
                    // The value never goes into a message: only the line number and the id.
                    let Some((id, value)) = line.split_once('=').filter(|(id, _)| !id.trim().is_empty()) else {
                        return Err(UserError::input(format!("`{var}`: line {} is not `ID=VALUE`", n + 1))
                            .hint("write one secret a line, `ID=VALUE`; its value is never printed"));
                    };
                    let value = value.trim_end_matches('\r');
                    out.push(BuildSecret { id: id.trim().into(), source: SecretSource::Value(Secret::new(value)) });
                }
            }
            let var = self.var(&vars::SECRET_ENVS);
            for item in &i.secret_envs {
                let (id, name) = lists::split_pair(item).filter(|(_, v)| !v.trim().is_empty()).ok_or_else(|| {
                    UserError::input(format!("`{var}`: `{item}` is not `ID=VARIABLE`"))
                        .hint("e.g. `token=GITHUB_TOKEN`")
                })?;
                out.push(BuildSecret { source: from_env(var, &id, &name)?, id });
            }
            let var = self.var(&vars::SECRET_FILES);
            for item in &i.secret_files {
                let (id, path) = lists::split_pair(item).filter(|(_, v)| !v.trim().is_empty()).ok_or_else(|| {
                    UserError::input(format!("`{var}`: `{item}` is not `ID=PATH`")).hint("e.g. `npmrc=.npmrc`")
                })?;
                out.push(BuildSecret { source: from_file(var, &id, &path)?, id });
            }
        } else {
            for s in &a.secrets {
                let flag = format!("--secret {s}");
                let mut id = None;
                let (mut ty, mut src, mut env) = (None, None, None);
                for kv in s.split(',') {
                    match kv.split_once('=') {
                        Some(("id", v)) => id = Some(v.to_string()),
                        Some(("type", v)) => ty = Some(v.to_string()),
                        Some(("src" | "source", v)) => src = Some(v.to_string()),
                        Some(("env", v)) => env = Some(v.to_string()),
                        _ => {
                            return Err(UserError::input(format!("`{flag}`: `{kv}` is not a secret option"))
                                .hint("write it as buildx does: `id=ID,env=VARIABLE` or `id=ID,src=PATH`"));
                        }
                    }
                }
                let Some(id) = id.or_else(|| src.clone()).or_else(|| env.clone()) else {
                    return Err(UserError::input(format!("`{flag}` names no `id=`"))
                        .hint("write it as buildx does: `id=ID,env=VARIABLE` or `id=ID,src=PATH`"));
                };
                let source = match (ty.as_deref(), src, env) {
                    (_, Some(p), _) => from_file(&flag, &id, &p)?,
                    (_, None, Some(v)) => from_env(&flag, &id, &v)?,
                    (Some("env"), None, None) => from_env(&flag, &id, &id)?,
                    (Some("file"), None, None) => from_file(&flag, &id, &id)?,
                    (_, None, None) if self.env.contains_key(&id) => from_env(&flag, &id, &id)?,
                    (_, None, None) => from_file(&flag, &id, &id)?,
                };
                out.push(BuildSecret { id, source });
            }
        }
        let mut masks = Vec::new();
        for s in &out {
            match &s.source {
                SecretSource::Value(v) => masks.push(v.clone()),
                // A small text file's content is masked too (a token in a file).
                SecretSource::File(p) => {
                    if let Ok(text) = std::fs::read_to_string(p)
                        && text.len() <= 64 * 1024
                    {
                        masks.extend(text.lines().map(str::trim).filter(|l| l.len() >= 4).map(Secret::new));
                    }
                }
            }
        }
        Ok((out, masks))
    }

    fn assemble_settings(&self, a: &BuildArgs, cache_from: &[String]) -> Result<AssembleSettings, UserError> {
        let compression = match a.compression.as_deref() {
            None => Compression::Gzip,
            Some(c) => Compression::parse(c).ok_or_else(|| {
                UserError::input(format!("`--compression {c}` is not a compression archway writes"))
                    .hint("use `--compression gzip` or `--compression zstd`")
            })?,
        };
        let range = match compression {
            Compression::Gzip => 0..=9,
            Compression::Zstd => 1..=22,
        };
        if let Some(l) = a.compression_level.filter(|l| !range.contains(l)) {
            return Err(UserError::input(format!("`--compression-level {l}` is out of range for {compression:?}"))
                .hint(format!("use a level from {} to {}", range.start(), range.end())));
        }
        // Registry caches are also images assembled platforms may reuse layers from; other
        // backends (`gha`, `local`, …) are for buildx only.
        let mut reuse = Vec::new();
        for c in cache_from {
            if c.contains("type=") && !c.contains("type=registry") {
                continue;
            }
            let r = c.split(',').find_map(|kv| kv.trim().strip_prefix("ref=")).unwrap_or(c);
            reuse.push(lists::reference("--cache-from", r)?);
        }
        let cache_from = reuse;
        let epoch = match ci::get(&self.env, crate::env::SOURCE_DATE_EPOCH) {
            None => 0,
            Some(e) => e.parse::<i64>().map_err(|_| {
                UserError::input(format!("`{}` is `{e}`; expected whole seconds", crate::env::SOURCE_DATE_EPOCH))
                    .hint("set it to `$(git log -1 --format=%ct)` or leave it unset")
            })?,
        };
        Ok(AssembleSettings { compression, compression_level: a.compression_level, cache_from, epoch })
    }

    /// `archway merge`: `-t`, else (in CI) the tags `build` would compute for this commit;
    /// the CI's credentials, computed index annotations and metadata file, as for `build`.
    pub fn merge(&self, a: &MergeArgs) -> Result<MergeRequest, UserError> {
        let run = self.ci_run()?;
        let given = if a.tags.is_empty() { run.tags.clone() } else { a.tags.clone() };
        let tags = lists::tags("-t", &given)?;
        let Some(first) = tags.first() else {
            let hint = if run.provider == ci::Provider::Local {
                "add `-t registry/repository:tag`, e.g. `-t ghcr.io/acme/app:1.2`".to_string()
            } else {
                format!(
                    "add `-t registry/repository:tag`, or set `{}` to merge under the tags computed from the commit",
                    self.var(&ci::vars::IMAGE)
                )
            };
            return Err(
                UserError::input("`-t` names no tag; merge publishes the index under at least one tag").hint(hint)
            );
        };
        if let Some(t) = tags.iter().find(|t| t.tag.is_none()) {
            return Err(UserError::input(format!("`-t {t}` must name a tag")).hint("e.g. `-t ghcr.io/acme/app:1.2`"));
        }
        lists::one_repository(&tags, "merge into one repository, then `archway promote` to the other")?;
        let repo = first.repository_only();
        // In CI the index gets the computed `org.opencontainers.image.*` annotations, as a build's
        // index does; `--annotation` adds to them or replaces one.
        let mut annotations: std::collections::BTreeMap<String, String> = if run.provider == ci::Provider::Local {
            Default::default()
        } else {
            run.annotations.iter().cloned().collect()
        };
        annotations.extend(index_annotations(&a.annotations)?);
        Ok(MergeRequest {
            expected: lists::platforms("--platform", &a.platforms, None)?,
            annotations,
            sources: a.sources.clone(),
            allow_partial: a.allow_partial,
            metadata_file: a.metadata_file.clone().or_else(|| run.inputs.metadata_file.clone()),
            registry: self.registry(&a.registry, Some(&repo.registry), &run.inputs)?,
            notes: if a.tags.is_empty() { run.notes.clone() } else { Vec::new() },
            tags,
            repo,
        })
    }

    pub fn promote(&self, a: &PromoteArgs) -> Result<PromoteRequest, UserError> {
        let source = lists::reference("SRC", &a.source)?;
        let destinations = lists::tags("DST", &a.destinations)?;
        let Some(first) = destinations.first() else {
            return Err(UserError::input("no `DST` given: promote needs a tag to copy to")
                .hint("e.g. `archway promote ghcr.io/acme/app:1.2 ghcr.io/acme/app:stable`"));
        };
        if let Some(d) = destinations.iter().find(|d| d.tag.is_none()) {
            return Err(UserError::input(format!("DST `{d}` must name a tag")).hint("e.g. `ghcr.io/acme/app:1.2`"));
        }
        // ARCHWAY_REGISTRY_* apply to the destination registry (the one written to).
        let registry = first.registry.clone();
        let inputs = self.ci.inputs(&self.env)?;
        Ok(PromoteRequest {
            keep: lists::platforms("--platform", &a.platforms, None)?,
            registry: self.registry(&a.registry, Some(&registry), &inputs)?,
            source,
            destinations,
        })
    }

    pub fn inspect(&self, a: &InspectArgs) -> Result<InspectRequest, UserError> {
        let reference = lists::reference("REF", &a.reference)?;
        let inputs = self.ci.inputs(&self.env)?;
        Ok(InspectRequest {
            registry: self.registry(&a.registry, Some(&reference.registry), &inputs)?,
            reference,
            format: a.format,
            raw: a.raw,
        })
    }

    pub fn binfmt_register(&self, a: &BinfmtRegisterArgs) -> Result<Vec<Platform>, UserError> {
        lists::platforms("--platform", &a.platforms, None)
    }

    fn registry(&self, a: &RegistryArgs, registry: Option<&str>, i: &CiInputs) -> Result<RegistryAccess, UserError> {
        Ok(RegistryAccess { credentials: self.credentials(registry, i)?, insecure: a.insecure_registries.clone() })
    }

    /// The one credential source of a run, for every registry it touches; `target` is the
    /// registry written to. In order: the `username`/`password` inputs (else
    /// `ARCHWAY_REGISTRY_USERNAME`/`_PASSWORD`) for `registry` or `target`; the `registry-auth`
    /// list (else `ARCHWAY_REGISTRY_AUTH`); the CI's own (GitLab's `CI_REGISTRY`); the Docker
    /// config; last the CI's fallback (GitHub's token for ghcr.io).
    pub fn credentials(&self, target: Option<&str>, i: &CiInputs) -> Result<CredentialSource, UserError> {
        let basic = |c: ci::Credentials| (c.registry, Credential::Basic { username: c.username, password: c.password });
        let mut first: Vec<(String, Credential)> = Vec::new();
        first.extend(self.explicit_credential(target, i)?);
        let (var, list) = match &i.registry_auth {
            Some(l) => (self.var(&ci::vars::REGISTRY_AUTH), Some(l.clone())),
            None => {
                let var = ci::vars::REGISTRY_AUTH.archway;
                (var, self.env.get(var).filter(|v| !v.trim().is_empty()).map(|v| Secret::new(v.as_str())))
            }
        };
        if let Some(list) = list {
            first.extend(ci::registry_auth::parse(&list, var)?.into_iter().map(basic));
        }
        first.extend(self.ci.own_credentials(&self.env).into_iter().map(basic));
        let last = self.ci.last_credentials(&self.env).into_iter().map(basic).collect();
        Ok(CredentialSource { first, docker_config: true, last })
    }

    /// The `username`/`password` inputs (else `ARCHWAY_REGISTRY_USERNAME`/`_PASSWORD`, on any CI):
    /// for the `registry` input when given, else for `target`. One without the other is an error.
    fn explicit_credential(
        &self,
        target: Option<&str>,
        i: &CiInputs,
    ) -> Result<Option<(String, Credential)>, UserError> {
        use ci::vars::{PASSWORD, USERNAME};
        let (uvar, pvar) = (self.var(&USERNAME), self.var(&PASSWORD));
        let (user, pass, uvar, pvar) = if i.username.is_some() || i.password.is_some() {
            (i.username.clone(), i.password.clone(), uvar, pvar)
        } else {
            let user = ci::get(&self.env, USERNAME.archway).map(String::from);
            let pass = self.env.get(PASSWORD.archway).filter(|s| !s.is_empty()).map(|p| Secret::new(p.as_str()));
            (user, pass, USERNAME.archway, PASSWORD.archway)
        };
        let (user, pass) = match (user, pass) {
            (None, None) => return Ok(None),
            (Some(u), Some(p)) => (u, p),
            (Some(_), None) => {
                return Err(UserError::input(format!("`{uvar}` is set but `{pvar}` is not"))
                    .hint("set both, or neither (an empty password: is its secret set for this job?)"));
            }
            (None, Some(_)) => {
                return Err(
                    UserError::input(format!("`{pvar}` is set but `{uvar}` is not")).hint("set both, or neither")
                );
            }
        };
        // The `registry` input names the registry they are for; else the one written to.
        let registry =
            i.registry.as_deref().map(str::trim).filter(|r| !r.is_empty()).map(crate::reference::canonical_registry);
        Ok(registry.or(target).map(|r| (r.to_string(), Credential::Basic { username: user, password: pass })))
    }

    /// What to build: flags, else the CI's inputs, else the defaults.
    pub fn source(&self, a: &SourceArgs, run: &ci::Resolved) -> Result<BuildSource, UserError> {
        let i = &run.inputs;
        let platforms = if a.platforms.is_empty() && !i.platforms.is_empty() {
            lists::platforms(self.var(&ci::vars::PLATFORMS), &i.platforms, Some(DEFAULT_PLATFORMS))?
        } else {
            lists::platforms("--platform", &a.platforms, Some(DEFAULT_PLATFORMS))?
        };
        let context = a.context.clone().or_else(|| run.context.clone()).unwrap_or_else(|| PathBuf::from("."));
        if !context.is_dir() {
            return Err(UserError::input(format!("build context `{}` is not a directory", context.display()))
                .hint("pass the directory holding your sources as the first argument, e.g. `archway build .`"));
        }
        let file = a.file.clone().or_else(|| i.file.clone());
        let dockerfile = file.clone().unwrap_or_else(|| context.join("Dockerfile"));
        if !dockerfile.is_file() {
            let hint = if file.is_none() {
                format!("add a `Dockerfile` to `{}` or name one with `-f PATH`", context.display())
            } else {
                "check the path given to `-f`; it is relative to the current directory".into()
            };
            return Err(UserError::input(format!("Dockerfile `{}` does not exist", dockerfile.display())).hint(hint));
        }
        // The CI's build args first, so a flag replaces one.
        let mut build_args: Vec<(String, String)> = Vec::new();
        for b in i.build_args.iter().chain(&a.build_args) {
            match lists::split_pair(b) {
                Some((k, v)) => lists::set(&mut build_args, k, v),
                None if !b.trim().is_empty() && !b.contains('=') => {
                    // As `docker build`: a bare KEY takes its value from the environment, if set.
                    if let Some(v) = self.env.get(b.trim()) {
                        lists::set(&mut build_args, b.trim().to_string(), v.clone());
                    }
                }
                _ => {
                    return Err(
                        UserError::input(format!("`--build-arg {b}` has no name")).hint("write it as `KEY=VALUE`")
                    );
                }
            }
        }
        let target = a.target.clone().or_else(|| i.target.clone()).filter(|t| !t.is_empty());
        Ok(BuildSource { context, dockerfile, platforms, build_args, target })
    }

    /// How platforms may be built: flags, else the CI's inputs, else the defaults.
    pub fn strategy(&self, a: &StrategyArgs, run: &ci::Resolved) -> Result<StrategyInput, UserError> {
        let i = &run.inputs;
        let (prefer_flag, prefer) = match &a.prefer {
            Some(p) => ("--prefer".to_string(), ci::lists::items(p)),
            None => (self.var(&ci::vars::PREFER).to_string(), i.prefer.clone()),
        };
        let mut order = Vec::new();
        for item in &prefer {
            let k = StrategyKind::parse(item).ok_or_else(|| {
                UserError::input(format!("`{prefer_flag}`: `{item}` is not a strategy")).hint(format!(
                    "use one of {}, e.g. `--prefer remote,emulated`",
                    StrategyKind::DEFAULT_ORDER.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
                ))
            })?;
            if !order.contains(&k) {
                order.push(k);
            }
        }
        let binfmt = match (a.binfmt, i.binfmt.as_deref().map(|b| b.trim().to_ascii_lowercase())) {
            (Some(BinfmtArg::Never), _) => BinfmtPolicy::Never,
            (Some(BinfmtArg::Auto), _) | (None, None) => BinfmtPolicy::Auto,
            (None, Some(b)) if b == "auto" || b.is_empty() => BinfmtPolicy::Auto,
            (None, Some(b)) if b == "never" => BinfmtPolicy::Never,
            (None, Some(b)) => {
                return Err(UserError::input(format!("`{}` is `{b}`", self.var(&ci::vars::BINFMT)))
                    .hint("use `auto` or `never`"));
            }
        };
        let policy =
            Policy { order, no_emulation: a.no_emulation || i.no_emulation == Some(true), binfmt, ..Policy::default() };
        let node_certs = a.node_certs.clone().or_else(|| i.node_certs.clone());
        let given = if a.nodes.is_empty() { &i.nodes } else { &a.nodes };
        let mut nodes = Vec::new();
        for n in given.iter().flat_map(|n| ci::lists::items(n)) {
            nodes.push(node(&n, node_certs.clone())?);
        }
        if let Some(d) = &node_certs
            && !["ca.pem", "cert.pem", "key.pem"].iter().all(|f| d.join(f).is_file())
        {
            return Err(UserError::input(format!(
                "`--node-certs {}` does not hold `ca.pem`, `cert.pem` and `key.pem`",
                d.display()
            ))
            .hint("point it at the directory `docker --tlsverify` would use (`DOCKER_CERT_PATH`)"));
        }
        Ok(StrategyInput { policy, nodes })
    }
}

/// What the build inputs given rule out, for the plan: the classic builder cannot honour
/// some, the assembler others, and some only matter to RUN steps.
fn limit(strategy: &mut StrategyInput, options: &BuildOptions) {
    strategy.policy.buildkit_only = options.buildkit_only();
    strategy.policy.not_assemblable = options.not_assemblable();
    strategy.policy.run_only = options.run_only();
}

/// What `--output` values and the CI's `outputs` ask for.
#[derive(Debug, Default)]
struct Exports {
    /// The OCI layout directory (a bare `--output DIR`).
    layout_dir: Option<PathBuf>,
    /// Files and directories written after publishing.
    exporters: Vec<Exporter>,
    /// `type=image`/`type=registry`: the image exporter buildx users name, mapped onto
    /// archway's own push.
    image: ImageExport,
}

/// buildx's image exporter (`type=image,name=…,push=true`, `type=registry,name=…`) as archway
/// does it: the names are tags, `push` pushes, `push-by-digest` is a matrix leg, and
/// `annotation*.KEY=VALUE` are annotations at the level buildx puts them.
#[derive(Debug, Default)]
struct ImageExport {
    names: Vec<String>,
    push: bool,
    push_by_digest: bool,
    /// As `--annotation` takes them: `KEY=VALUE`, `index:KEY=VALUE`, `manifest:KEY=VALUE`.
    annotations: Vec<String>,
}

/// `--output` values: at most one layout directory, and exporters (`type=…`), with the CI's
/// `outputs` after the flags'.
fn exporters(flags: &[String], ci: &[String], var: &str) -> Result<Exports, UserError> {
    let mut out = Exports::default();
    let given = flags.iter().map(|f| ("--output", f)).chain(ci.iter().map(|c| (var, c)));
    for (flag, value) in given {
        if !value.contains("type=") {
            if flag != "--output" || out.layout_dir.is_some() {
                return Err(UserError::input(format!("`{flag} {value}` names no exporter type"))
                    .hint("give `type=oci,dest=FILE`, `type=docker,dest=FILE`, `type=local,dest=DIR` or `type=tar,dest=FILE`; the layout directory is given once"));
            }
            out.layout_dir = Some(PathBuf::from(value));
            continue;
        }
        let mut ty = String::new();
        let (mut dest, mut tar, mut split) = (None, true, true);
        let mut attrs = Vec::new();
        for kv in lists::csv_fields(value) {
            match kv.trim().split_once('=') {
                Some(("type", v)) => ty = v.to_string(),
                Some(("dest", v)) => dest = Some(PathBuf::from(v)),
                Some(("tar", v)) => tar = v != "false",
                Some(("platform-split", v)) => split = v != "false",
                Some((k, v)) => attrs.push((k.to_string(), v.to_string())),
                None => attrs.push((kv.trim().to_string(), "true".to_string())),
            }
        }
        let bad =
            |why: String, hint: &str| Err(UserError::input(format!("`{flag} {value}`: {why}")).hint(hint.to_string()));
        if ty == "image" || ty == "registry" {
            let mut image = ImageExport { push: ty == "registry", ..ImageExport::default() };
            for (k, v) in attrs {
                let on = || v != "false";
                match k.as_str() {
                    "name" => image.names.extend(v.split(',').map(str::to_string)),
                    "push" => image.push = on(),
                    "push-by-digest" => image.push_by_digest = on(),
                    // archway always pushes canonical names and OCI media types where buildx
                    // would (an index unless every child is a Docker manifest).
                    "name-canonical" | "oci-mediatypes" | "store" | "unpack" => {}
                    _ => match k.split_once('.') {
                        Some(("annotation" | "annotation-manifest", key)) => {
                            image.annotations.push(format!("manifest:{key}={v}"))
                        }
                        Some(("annotation-index", key)) => image.annotations.push(format!("index:{key}={v}")),
                        _ => {
                            return bad(
                                format!("archway does not take `{k}` on `type={ty}`"),
                                "archway's image output takes `name`, `push`, `push-by-digest` and `annotation[-index|-manifest].KEY=VALUE`; compression is `--compression`",
                            );
                        }
                    },
                }
            }
            if image.push_by_digest && !image.push {
                return bad("`push-by-digest=true` without `push=true` publishes nothing".into(), "add `push=true`");
            }
            out.image.names.append(&mut image.names);
            out.image.push |= image.push;
            out.image.push_by_digest |= image.push_by_digest;
            out.image.annotations.append(&mut image.annotations);
            continue;
        }
        if !matches!(ty.as_str(), "oci" | "docker" | "local" | "tar") {
            return bad(
                format!("archway does not write `type={ty}`"),
                "use `type=oci`, `docker`, `local`, `tar`, `image` or `registry`; pushing is `push`/`--push`, loading `load`/`--load`",
            );
        }
        if let Some((k, _)) = attrs.first() {
            return bad(format!("archway does not take `{k}` on `type={ty}`"), "give `type=…,dest=…`");
        }
        let Some(dest) = dest else {
            return bad("no `dest=`".into(), "name the file or directory to write, e.g. `type=oci,dest=image.tar`");
        };
        if dest.as_os_str() == "-" {
            return bad("archway does not write an exporter to standard output".into(), "name a file with `dest=`");
        }
        out.exporters.push(match ty.as_str() {
            "oci" => Exporter::Oci { dest, tar },
            "docker" => Exporter::Docker { dest },
            "local" => Exporter::Local { dest, split },
            _ => Exporter::Tar { dest, split },
        });
    }
    Ok(out)
}

/// `PLATFORM=ENDPOINT`, as `--node` takes it.
fn node(n: &str, cert_dir: Option<PathBuf>) -> Result<NodeRequest, UserError> {
    let bad = |why: &str| {
        UserError::input(format!("`--node {n}`: {why}"))
            .hint("write it as `PLATFORM=tcp://HOST:PORT` or `PLATFORM=ssh://USER@HOST`, e.g. `linux/arm64=tcp://10.0.0.5:2376`")
    };
    let (platform, endpoint) = n.split_once('=').ok_or_else(|| bad("no `=` between the platform and the endpoint"))?;
    let platform: Platform =
        platform.trim().parse().map_err(|e: crate::platform::PlatformError| bad(&e.to_string()))?;
    if !(endpoint.starts_with("tcp://") || endpoint.starts_with("ssh://")) {
        return Err(bad("the endpoint must start with `tcp://` or `ssh://`"));
    }
    Ok(NodeRequest { platform, endpoint: endpoint.to_string(), cert_dir })
}

/// `merge --annotation [index:]KEY=VALUE`.
fn index_annotations(given: &[String]) -> Result<std::collections::BTreeMap<String, String>, UserError> {
    let mut out = std::collections::BTreeMap::new();
    for a in given {
        let (scope, kv) = match a.split_once(':') {
            Some((scope, kv)) if !scope.contains('=') => (scope, kv),
            _ => ("index", a.as_str()),
        };
        if scope != "index" {
            return Err(UserError::input(format!("`--annotation {a}`: only `index:` annotations are supported"))
                .hint("write it as `index:KEY=VALUE`"));
        }
        let (k, v) = lists::split_pair(kv).ok_or_else(|| {
            UserError::input(format!("`--annotation {a}` has no `KEY=VALUE`")).hint("write it as `index:KEY=VALUE`")
        })?;
        out.insert(k, v);
    }
    Ok(out)
}

/// `true`, `false`, `1`, `0`, or comma-separated `key=value` options, as buildx takes them.
fn attestation_value(flag: &str, v: Option<&str>) -> Result<Option<String>, UserError> {
    let Some(v) = v.map(str::trim) else { return Ok(None) };
    let ok = matches!(v, "true" | "false" | "1" | "0")
        || (!v.is_empty() && v.split(',').all(|kv| kv.split_once('=').is_some_and(|(k, _)| !k.is_empty())));
    if ok {
        Ok(Some(v.to_string()))
    } else {
        Err(UserError::input(format!("`{flag} {v}` is not an attestation setting"))
            .hint(format!("use `{flag} false`, `{flag} true` or options such as `{flag} mode=max`")))
    }
}

/// The layout directory may be absent, empty, or an earlier OCI layout (which is replaced);
/// anything else is refused so nothing of the user's is overwritten.
fn check_layout_dir(dir: &Path) -> Result<(), UserError> {
    if !dir.exists() {
        return Ok(());
    }
    if !dir.is_dir() {
        return Err(UserError::input(format!("`--output {}` exists and is not a directory", dir.display()))
            .hint("name a new directory with `--output DIR`"));
    }
    // What an older archway, killed, left inside the output (its staging, now made beside it)
    // does not count: the new layout replaces the whole directory.
    let leftover = |e: &std::fs::DirEntry| e.file_name().to_string_lossy().starts_with(".archway-staging-");
    let empty = dir.read_dir().map(|mut d| d.all(|e| e.is_ok_and(|e| leftover(&e)))).unwrap_or(false);
    if !empty && !dir.join("oci-layout").is_file() {
        return Err(UserError::input(format!(
            "`--output {}` holds files and is not an OCI image layout; archway will not write into it",
            dir.display()
        ))
        .hint("name a new or empty directory with `--output DIR`"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    use crate::cli::{Cli, Command};

    /// An invocation with exactly these variables, run in a temp dir holding a Dockerfile.
    fn inv(vars: &[(&str, &str)]) -> Invocation {
        Invocation::new(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(), None, 0)
    }

    fn ctx() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("Dockerfile"), "FROM scratch\n").unwrap();
        d
    }

    fn build_args(words: &[&str]) -> BuildArgs {
        match Cli::try_parse_from(["archway", "build"].iter().chain(words)).unwrap().command {
            Command::Build(a) => *a,
            _ => unreachable!(),
        }
    }

    fn plan_args(words: &[&str]) -> PlanArgs {
        match Cli::try_parse_from(["archway", "plan"].iter().chain(words)).unwrap().command {
            Command::Plan(a) => a,
            _ => unreachable!(),
        }
    }

    /// What `plan` and `build --dry-run` agree on, as text.
    fn planned(s: &BuildSource, st: &StrategyInput) -> String {
        format!("{:?} {:?} {:?} {:?} {:?} {:?}", s.platforms, s.build_args, s.target, s.dockerfile, st.policy, st.nodes)
    }

    #[test]
    fn progress_is_the_live_view_only_on_a_terminal_outside_ci() {
        use crate::report::Progress;
        let on_terminal = |vars: &[(&str, &str)]| Invocation { terminal: true, ..inv(vars) };
        let live = Progress::Tty { color: true };
        assert_eq!(on_terminal(&[]).progress(None).unwrap(), live);
        assert_eq!(on_terminal(&[("NO_COLOR", "1")]).progress(None).unwrap(), Progress::Tty { color: false });
        assert_eq!(on_terminal(&[("CI", "true")]).progress(None).unwrap(), Progress::Plain);
        assert_eq!(on_terminal(&[("GITHUB_ACTIONS", "true")]).progress(None).unwrap(), Progress::Plain);
        assert_eq!(on_terminal(&[("CI", "true")]).progress(Some("tty")).unwrap(), live, "asked for");
        assert_eq!(inv(&[]).progress(None).unwrap(), Progress::Plain, "not a terminal");
        assert_eq!(inv(&[]).progress(Some("tty")).unwrap(), Progress::Plain, "never drawn off a terminal");
        assert_eq!(inv(&[("ARCHWAY_PROGRESS", "quiet")]).progress(None).unwrap(), Progress::Quiet);
        assert_eq!(inv(&[("ARCHWAY_PROGRESS", "quiet")]).progress(Some("rawjson")).unwrap(), Progress::RawJson);
        assert_eq!(
            inv(&[("GITHUB_ACTIONS", "true"), ("INPUT_PROGRESS", "quiet")]).progress(None).unwrap(),
            Progress::Quiet
        );
        let e = inv(&[("ARCHWAY_PROGRESS", "fancy")]).progress(None).unwrap_err().to_string();
        assert!(e.starts_with("`ARCHWAY_PROGRESS` is `fancy`"), "{e}");
        let e = inv(&[]).progress(Some("json")).unwrap_err().to_string();
        assert!(e.starts_with("`--progress` is `json`"), "{e}");
    }

    #[test]
    fn plan_and_build_dry_run_resolve_the_same_source_and_strategy() {
        let d = ctx();
        let c = d.path().to_str().unwrap();
        type Vars<'a> = Vec<(&'a str, &'a str)>;
        let cases: Vec<(Vars, Vec<&str>)> = vec![
            (vec![], vec![c]),
            (vec![("ARCHWAY_PLATFORMS", "linux/arm64,linux/arm/v7"), ("ARCHWAY_PREFER", "emulated")], vec![c]),
            (vec![("ARCHWAY_PLATFORMS", "linux/arm64")], vec![c, "--platform", "linux/riscv64"]),
            (vec![("ARCHWAY_BUILD_ARGS", "A=1\nB=2"), ("ARCHWAY_NO_EMULATION", "true")], vec![c, "--build-arg", "A=3"]),
            (vec![("ARCHWAY_BINFMT", "never"), ("ARCHWAY_TARGET", "t")], vec![c]),
            (vec![("GITHUB_ACTIONS", "true"), ("INPUT_PLATFORMS", "linux/s390x"), ("INPUT_CONTEXT", c)], vec![]),
        ];
        for (vars, words) in cases {
            let i = inv(&vars);
            let p = i.plan(&plan_args(&words)).unwrap();
            let mut bw = words.clone();
            bw.push("--dry-run");
            let b = i.build(&build_args(&bw)).unwrap();
            assert!(b.dry_run);
            assert_eq!(planned(&p.source, &p.strategy), planned(&b.source, &b.strategy), "{vars:?} {words:?}");
        }
    }

    #[test]
    fn a_bad_ci_input_fails_plan_and_build_alike() {
        let d = ctx();
        let c = d.path().to_str().unwrap();
        let i = inv(&[("ARCHWAY_PLATFORMS", "linux/sparc")]);
        let p = i.plan(&plan_args(&[c])).unwrap_err();
        let b = i.build(&build_args(&[c, "--dry-run"])).unwrap_err();
        assert_eq!(p.message, b.message);
        assert_eq!(p.message, "`ARCHWAY_PLATFORMS` has a platform archway does not know");
        assert_eq!(p.kind, crate::error::ErrorKind::Input);
        let i = inv(&[("GITHUB_ACTIONS", "true"), ("INPUT_BINFMT", "sometimes")]);
        assert_eq!(i.plan(&plan_args(&[c])).unwrap_err().message, "`INPUT_BINFMT` is `sometimes`");
        assert_eq!(i.build(&build_args(&[c])).unwrap_err().message, "`INPUT_BINFMT` is `sometimes`");
    }

    #[test]
    fn flags_win_over_ci_inputs_over_defaults() {
        let d = ctx();
        let c = d.path().to_str().unwrap();
        let i = inv(&[
            ("ARCHWAY_PLATFORMS", "linux/arm64"),
            ("ARCHWAY_BUILD_ARGS", "A=ci\nB=ci"),
            ("ARCHWAY_PROVENANCE", "mode=max"),
            ("ARCHWAY_BINFMT", "never"),
            ("ARCHWAY_TAGS", "127.0.0.1:5000/a/b:ci"),
        ]);
        let b = i
            .build(&build_args(&[
                c,
                "--platform",
                "linux/amd64",
                "--build-arg",
                "A=flag",
                "--binfmt",
                "auto",
                "-t",
                "127.0.0.1:5000/a/b:flag",
            ]))
            .unwrap();
        assert_eq!(b.source.platforms, ["linux/amd64".parse::<Platform>().unwrap()]);
        assert_eq!(b.source.build_args, [("A".to_string(), "flag".to_string()), ("B".into(), "ci".into())]);
        assert_eq!(b.provenance.as_deref(), Some("mode=max"));
        assert_eq!(b.strategy.policy.binfmt, BinfmtPolicy::Auto);
        match &b.output {
            Output::Layout { dir, names } => {
                assert_eq!(dir, Path::new(DEFAULT_OUTPUT));
                assert_eq!(names, &["flag".to_string()]);
            }
            o => panic!("not pushing, so a layout: {o:?}"),
        }
        let b = i.build(&build_args(&[c])).unwrap();
        assert_eq!(b.strategy.policy.binfmt, BinfmtPolicy::Never);
        assert_eq!(b.jobs, 1, "one platform: one job");
        // The default context is the CI's checkout, `.` only when there is none.
        let b = inv(&[("GITHUB_ACTIONS", "true"), ("GITHUB_WORKSPACE", c)]).build(&build_args(&["--dry-run"])).unwrap();
        assert_eq!(b.source.context, Path::new(c));
        assert_eq!(b.source.platforms.len(), 2, "the default platforms");
    }

    #[test]
    fn merge_tags_are_parsed_once_and_never_panic() {
        let i = inv(&[]);
        let m = |t: &[&str]| {
            let a = match Cli::try_parse_from(["archway", "merge"].iter().chain(t).chain(&["x"])).unwrap().command {
                Command::Merge(a) => a,
                _ => unreachable!(),
            };
            i.merge(&a)
        };
        assert_eq!(
            m(&["-t", ","]).unwrap_err().message,
            "`-t` names no tag; merge publishes the index under at least one tag"
        );
        assert!(m(&["-t", "ghcr.io/a/b"]).unwrap_err().message.contains("must name a tag"));
        assert!(m(&["-t", "ghcr.io/a/b:1,docker.io/a/b:1"]).unwrap_err().message.contains("two repositories"));
        let ok = m(&["-t", "ghcr.io/a/b:1, ghcr.io/a/b:2"]).unwrap();
        assert_eq!(ok.tags.len(), 2);
        assert_eq!(ok.repo.to_string(), "ghcr.io/a/b");
    }

    #[test]
    fn merge_in_ci_takes_the_computed_tags_credentials_and_annotations() {
        let merge_args =
            |t: &[&str]| match Cli::try_parse_from(["archway", "merge"].iter().chain(t).chain(&["digests/"]))
                .unwrap()
                .command
            {
                Command::Merge(a) => a,
                _ => unreachable!(),
            };
        let i = inv(&[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_REPOSITORY", "Acme/App"),
            ("GITHUB_REF", "refs/tags/v1.2.3"),
            ("GITHUB_REF_NAME", "v1.2.3"),
            ("GITHUB_REF_TYPE", "tag"),
            ("GITHUB_SHA", "0123456789abcdef0123456789abcdef01234567"),
            ("GITHUB_ACTOR", "octocat"),
            ("GITHUB_TOKEN", "ghs_token"),
        ]);
        let m = i.merge(&merge_args(&[])).unwrap();
        let tags: Vec<String> = m.tags.iter().map(|t| t.to_string()).collect();
        assert_eq!(
            tags,
            [
                "ghcr.io/acme/app:1.2.3",
                "ghcr.io/acme/app:1.2",
                "ghcr.io/acme/app:1",
                "ghcr.io/acme/app:v1.2.3",
                "ghcr.io/acme/app:sha-0123456",
                "ghcr.io/acme/app:latest"
            ]
        );
        assert_eq!(user_for(&m.registry.credentials, "ghcr.io").as_deref(), Some("octocat"), "the workflow token");
        assert_eq!(m.annotations.get("org.opencontainers.image.version").map(String::as_str), Some("1.2.3"));
        assert_eq!(
            m.annotations.get("org.opencontainers.image.revision").map(String::as_str),
            Some("0123456789abcdef0123456789abcdef01234567")
        );
        // `-t` still wins, and `--annotation` adds to the computed ones.
        let m = i.merge(&merge_args(&["-t", "ghcr.io/acme/app:x", "--annotation", "index:a=b"])).unwrap();
        assert_eq!(m.tags.len(), 1);
        assert_eq!(m.annotations.get("a").map(String::as_str), Some("b"));
        assert!(m.annotations.contains_key("org.opencontainers.image.created"));
        // Locally there is nothing to compute from.
        let e = inv(&[]).merge(&merge_args(&[])).unwrap_err();
        assert_eq!(e.message, "`-t` names no tag; merge publishes the index under at least one tag");
    }

    #[test]
    fn registry_credentials_reach_every_registry_command() {
        let i = inv(&[("ARCHWAY_REGISTRY_USERNAME", "u"), ("ARCHWAY_REGISTRY_PASSWORD", "p")]);
        let a = match Cli::try_parse_from(["archway", "inspect", "127.0.0.1:5000/a/b:1"]).unwrap().command {
            Command::Inspect(a) => a,
            _ => unreachable!(),
        };
        let r = i.inspect(&a).unwrap();
        assert_eq!(user_for(&r.registry.credentials, "127.0.0.1:5000").as_deref(), Some("u"));
        let i = inv(&[("ARCHWAY_REGISTRY_USERNAME", "u")]);
        assert!(i.inspect(&a).unwrap_err().message.contains("`ARCHWAY_REGISTRY_PASSWORD` is not"));
    }

    /// The username the source gives for `registry`, the Docker config left out (a test must
    /// not read the machine's).
    fn user_for(src: &CredentialSource, registry: &str) -> Option<String> {
        match (CredentialSource { docker_config: false, ..src.clone() }).lookup(registry).unwrap() {
            Some(Credential::Basic { username, .. }) => Some(username),
            _ => None,
        }
    }

    const LIST: &str = "- registry: registry.gitlab.com\n  username: listed\n  password: list-pass\n- username: hubuser\n  password: hub-pass\n";

    /// Explicit `username`/`password` > the `registry-auth` list > the CI's own variables > the
    /// Docker config > the GitHub token for ghcr.io, on every CI and for every command.
    #[test]
    fn credential_precedence() {
        let gitlab = [
            ("GITLAB_CI", "true"),
            ("CI_REGISTRY", "registry.gitlab.com"),
            ("CI_REGISTRY_USER", "gitlab-ci-token"),
            ("CI_REGISTRY_PASSWORD", "job-pass"),
        ];
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut v = gitlab.to_vec();
            v.extend_from_slice(extra);
            inv(&v)
        };
        let src = |i: &Invocation, target: &str| i.credentials(Some(target), &i.ci.inputs(&i.env).unwrap()).unwrap();
        type Case = (Vec<(&'static str, &'static str)>, &'static str, &'static str, Option<&'static str>);
        let cases: Vec<Case> = vec![
            // (extra variables, target pushed to, registry asked, username expected)
            (vec![], "registry.gitlab.com", "registry.gitlab.com", Some("gitlab-ci-token")),
            (vec![("ARCHWAY_REGISTRY_AUTH", LIST)], "quay.io", "registry.gitlab.com", Some("listed")),
            (vec![("ARCHWAY_REGISTRY_AUTH", LIST)], "quay.io", "docker.io", Some("hubuser")),
            (vec![("ARCHWAY_REGISTRY_AUTH", LIST)], "quay.io", "index.docker.io", Some("hubuser")),
            (vec![("ARCHWAY_REGISTRY_AUTH", LIST)], "quay.io", "ghcr.io", None),
            (
                vec![
                    ("ARCHWAY_REGISTRY_AUTH", LIST),
                    ("ARCHWAY_REGISTRY_USERNAME", "me"),
                    ("ARCHWAY_REGISTRY_PASSWORD", "p"),
                ],
                "registry.gitlab.com",
                "registry.gitlab.com",
                Some("me"),
            ),
            (
                vec![
                    ("ARCHWAY_REGISTRY_AUTH", LIST),
                    ("ARCHWAY_REGISTRY_USERNAME", "me"),
                    ("ARCHWAY_REGISTRY_PASSWORD", "p"),
                ],
                "quay.io",
                "registry.gitlab.com",
                Some("listed"),
            ),
            (
                vec![
                    ("ARCHWAY_REGISTRY_USERNAME", "me"),
                    ("ARCHWAY_REGISTRY_PASSWORD", "p"),
                    ("ARCHWAY_REGISTRY", "docker.io"),
                    ("ARCHWAY_REGISTRY_AUTH", LIST),
                ],
                "quay.io",
                "docker.io",
                Some("me"),
            ),
        ];
        for (extra, target, asked, want) in cases {
            let i = with(&extra);
            assert_eq!(user_for(&src(&i, target), asked).as_deref(), want, "{extra:?} pushing to {target}, {asked}");
        }

        // GitHub: the list (its own spelling, or `ARCHWAY_REGISTRY_AUTH`) comes before the
        // workflow token, which is a last resort, after the Docker config.
        let github = [("GITHUB_ACTIONS", "true"), ("GITHUB_ACTOR", "octocat"), ("INPUT_GITHUB-TOKEN", "ghs_x")];
        let list = "- registry: ghcr.io\n  username: bot\n  password: pat\n";
        for var in ["INPUT_REGISTRY-AUTH", "ARCHWAY_REGISTRY_AUTH"] {
            let mut v = github.to_vec();
            v.push((var, list));
            let i = inv(&v);
            assert_eq!(user_for(&src(&i, "ghcr.io"), "ghcr.io").as_deref(), Some("bot"), "{var}");
        }
        let i = inv(&github);
        let s = src(&i, "ghcr.io");
        assert_eq!(user_for(&s, "ghcr.io").as_deref(), Some("octocat"));
        assert!(s.first.is_empty() && s.last.len() == 1, "the token is only the last resort: {s:?}");
        let mut v = github.to_vec();
        v.extend([("INPUT_USERNAME", "me"), ("INPUT_PASSWORD", "pw"), ("INPUT_REGISTRY-AUTH", list)]);
        assert_eq!(user_for(&src(&inv(&v), "ghcr.io"), "ghcr.io").as_deref(), Some("me"), "explicit first");
        // A Bitbucket pipe spells it `REGISTRY_AUTH`.
        let i = inv(&[("BITBUCKET_BUILD_NUMBER", "1"), ("BITBUCKET_PIPE_STORAGE_DIR", "/s"), ("REGISTRY_AUTH", list)]);
        assert_eq!(user_for(&src(&i, "docker.io"), "ghcr.io").as_deref(), Some("bot"));
        // A password without its username, in the CI's own spelling, is an error too.
        let mut v = github.to_vec();
        v.push(("INPUT_USERNAME", "me"));
        let i = inv(&v);
        let e = i.credentials(Some("ghcr.io"), &i.ci.inputs(&i.env).unwrap()).unwrap_err();
        assert_eq!(e.message, "`INPUT_USERNAME` is set but `INPUT_PASSWORD` is not");
    }

    #[test]
    fn build_merge_and_promote_share_one_credential_source() {
        let d = ctx();
        let c = d.path().to_str().unwrap();
        let vars = [("GITLAB_CI", "true"), ("ARCHWAY_REGISTRY_AUTH", LIST)];
        let i = inv(&vars);
        let b = i.build(&build_args(&[c, "-t", "quay.io/a/b:1", "-t", "registry.gitlab.com/a/b:1", "--push"])).unwrap();
        let m = match Cli::try_parse_from(["archway", "merge", "-t", "quay.io/a/b:1", "d/"]).unwrap().command {
            Command::Merge(a) => i.merge(&a).unwrap(),
            _ => unreachable!(),
        };
        let p = match Cli::try_parse_from(["archway", "promote", "docker.io/a/b:1", "registry.gitlab.com/a/b:2"])
            .unwrap()
            .command
        {
            Command::Promote(a) => i.promote(&a).unwrap(),
            _ => unreachable!(),
        };
        let plan = i.plan(&plan_args(&[c])).unwrap();
        for (name, src) in [
            ("build", &b.registry.credentials),
            ("merge", &m.registry.credentials),
            ("promote", &p.registry.credentials),
            ("plan", &plan.registry.credentials),
        ] {
            assert_eq!(user_for(src, "registry.gitlab.com").as_deref(), Some("listed"), "{name}");
            assert_eq!(user_for(src, "docker.io").as_deref(), Some("hubuser"), "{name}: a source registry too");
        }
        // A broken list stops each of them alike, naming the variable and never its content.
        let i = inv(&[
            ("GITLAB_CI", "true"),
            ("ARCHWAY_REGISTRY_AUTH", "- registry: r.io\n  username: u\n  password: 'hunter2\n"),
        ]);
        let errors = [
            i.build(&build_args(&[c, "-t", "quay.io/a/b:1", "--push"])).unwrap_err(),
            i.plan(&plan_args(&[c])).unwrap_err(),
            match Cli::try_parse_from(["archway", "promote", "r.io/a/b:1", "r.io/a/b:2"]).unwrap().command {
                Command::Promote(a) => i.promote(&a).unwrap_err(),
                _ => unreachable!(),
            },
        ];
        for e in errors {
            assert_eq!(e.kind, crate::error::ErrorKind::Input);
            assert!(
                e.message.starts_with("`ARCHWAY_REGISTRY_AUTH` is not valid YAML (line 3, column 21)"),
                "{}",
                e.message
            );
            assert!(!format!("{e:?}").contains("hunter2"), "{e:?}");
        }
    }

    /// build-push-action's `github-token`: a Git build context on the GitHub server gets the
    /// build secret `GIT_AUTH_TOKEN.github.com`, by variable, never on the command line.
    #[test]
    fn github_token_reaches_buildx_as_the_git_auth_secret() {
        let d = ctx();
        let c = d.path().to_str().unwrap();
        let gh = |extra: &[(&'static str, &'static str)]| {
            let mut v = vec![("GITHUB_ACTIONS", "true"), ("INPUT_GITHUB-TOKEN", "ghs_secret")];
            v.extend_from_slice(extra);
            inv(&v).build(&build_args(&[c, "--dry-run"])).unwrap()
        };
        let b = gh(&[("INPUT_BUILD-CONTEXTS", "lib=https://github.com/acme/private.git#main")]);
        let args = b.options.args(None).join(" ");
        assert!(args.contains("--secret id=GIT_AUTH_TOKEN.github.com,env=ARCHWAY_BUILD_SECRET_0"), "{args}");
        assert!(!args.contains("ghs_secret"), "{args}");
        let env: Vec<(String, String)> =
            b.options.secret_env().into_iter().map(|(k, v)| (k, v.expose().to_string())).collect();
        assert_eq!(env, [("ARCHWAY_BUILD_SECRET_0".to_string(), "ghs_secret".to_string())]);
        assert!(b.secret_masks.iter().any(|s| s.expose() == "ghs_secret"), "masked");
        assert!(b.strategy.policy.not_assemblable.contains(&"build-contexts".to_string()), "never assembled");
        // GitHub Enterprise: the server's own host.
        let b = gh(&[
            ("GITHUB_SERVER_URL", "https://ghe.acme.io"),
            ("INPUT_BUILD-CONTEXTS", "lib=https://ghe.acme.io/a/b.git"),
        ]);
        assert_eq!(b.options.secrets[0].id, "GIT_AUTH_TOKEN.ghe.acme.io");
        // Not for another host, a path, or when the user gives the secret.
        for contexts in ["lib=https://gitlab.com/acme/private.git", "lib=../lib"] {
            assert!(gh(&[("INPUT_BUILD-CONTEXTS", contexts)]).options.secrets.is_empty(), "{contexts}");
        }
        let b = gh(&[
            ("INPUT_BUILD-CONTEXTS", "lib=https://github.com/acme/private.git"),
            ("INPUT_SECRETS", "GIT_AUTH_TOKEN.github.com=pat"),
        ]);
        assert_eq!(b.options.secrets.len(), 1);
        assert!(matches!(&b.options.secrets[0].source, SecretSource::Value(v) if v.expose() == "pat"));
    }

    #[test]
    fn an_output_holding_only_a_killed_runs_staging_is_written_into() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join(".archway-staging-4999999/linux-amd64")).unwrap();
        assert!(check_layout_dir(d.path()).is_ok(), "an older archway's leftover staging does not count");
        std::fs::write(d.path().join("notes.txt"), "mine").unwrap();
        assert!(check_layout_dir(d.path()).is_err(), "the user's files do");
    }
}
