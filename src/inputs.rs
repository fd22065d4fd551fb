//! inputs: turns what the user typed into a checked `Request`. Every problem found here is an
//! input error (exit 2) that names the input, says what was expected and how to fix it; nothing
//! has been built or pushed yet.

use std::path::{Path, PathBuf};

use crate::cli::{BinfmtArg, BuildArgs, SourceArgs, StrategyArgs};
use crate::error::UserError;
use crate::plan::{BinfmtPolicy, Policy, StrategyKind};
use crate::platform::{self, Platform};
use crate::reference::Reference;

/// Platforms built when none are given.
pub const DEFAULT_PLATFORMS: &str = "linux/amd64,linux/arm64";

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

/// What to build, for which platforms, and where the result goes.
#[derive(Debug, Clone)]
pub struct Request {
    pub source: BuildSource,
    pub strategy: StrategyInput,
    pub dry_run: bool,
    /// `--label` and `--annotation` pairs.
    pub labels: Vec<(String, String)>,
    pub annotations: Vec<(String, String)>,
    /// `--provenance` and `--sbom` values for buildx, when given.
    pub provenance: Option<String>,
    pub sbom: Option<String>,
    pub output: Output,
    pub metadata_file: Option<PathBuf>,
    pub insecure_registries: Vec<String>,
    /// Platforms built at once; at least 1.
    pub jobs: usize,
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

impl Request {
    /// The repository everything is pushed to (the first tag's), when pushing.
    pub fn repository(&self) -> Option<&Reference> {
        match &self.output {
            Output::Registry { tags } => tags.first(),
            Output::Digest { repo, .. } => Some(repo),
            Output::Layout { .. } => None,
        }
    }
}

/// Reads `KEY` from the environment when a build arg has no `=`.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

pub fn source_from_flags(a: &SourceArgs, env: EnvLookup<'_>) -> Result<BuildSource, UserError> {
    let platforms = parse_platforms(&a.platforms)?;

    let context = a.context.clone();
    if !context.is_dir() {
        return Err(UserError::input(format!("build context `{}` is not a directory", context.display()))
            .hint("pass the directory holding your sources as the first argument, e.g. `archway build .`"));
    }
    let dockerfile = a.file.clone().unwrap_or_else(|| context.join("Dockerfile"));
    if !dockerfile.is_file() {
        let hint = if a.file.is_none() {
            format!("add a `Dockerfile` to `{}` or name one with `-f PATH`", context.display())
        } else {
            "check the path given to `-f`; it is relative to the current directory".into()
        };
        return Err(UserError::input(format!("Dockerfile `{}` does not exist", dockerfile.display())).hint(hint));
    }

    let mut build_args = Vec::new();
    for b in &a.build_args {
        match b.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => build_args.push((k.trim().to_string(), v.to_string())),
            None if !b.trim().is_empty() => {
                // As `docker build`: a bare KEY takes its value from the environment, if set.
                if let Some(v) = env(b.trim()) {
                    build_args.push((b.trim().to_string(), v));
                }
            }
            _ => return Err(UserError::input(format!("`--build-arg {b}` has no name")).hint("write it as `KEY=VALUE`")),
        }
    }
    Ok(BuildSource { context, dockerfile, platforms, build_args, target: a.target.clone().filter(|t| !t.is_empty()) })
}

pub fn strategy_from_flags(a: &StrategyArgs) -> Result<StrategyInput, UserError> {
    let mut order = Vec::new();
    if let Some(p) = &a.prefer {
        for item in p.split([',', '\n']).map(str::trim).filter(|s| !s.is_empty()) {
            let k = StrategyKind::parse(item).ok_or_else(|| {
                UserError::input(format!("`--prefer`: `{item}` is not a strategy"))
                    .hint("use `native`, `cross`, `remote` or `emulated`, e.g. `--prefer remote,emulated`")
            })?;
            if !order.contains(&k) {
                order.push(k);
            }
        }
    }
    let policy = Policy {
        order,
        no_emulation: a.no_emulation,
        binfmt: match a.binfmt {
            BinfmtArg::Auto => BinfmtPolicy::Auto,
            BinfmtArg::Never => BinfmtPolicy::Never,
        },
    };
    let mut nodes = Vec::new();
    for n in a.nodes.iter().flat_map(|n| n.split([',', '\n'])).map(str::trim).filter(|s| !s.is_empty()) {
        let bad = |why: &str| {
            UserError::input(format!("`--node {n}`: {why}"))
                .hint("write it as `PLATFORM=tcp://HOST:PORT` or `PLATFORM=ssh://USER@HOST`, e.g. `linux/arm64=tcp://10.0.0.5:2376`")
        };
        let (platform, endpoint) =
            n.split_once('=').ok_or_else(|| bad("no `=` between the platform and the endpoint"))?;
        let platform: Platform = platform.parse().map_err(|e: platform::PlatformError| bad(&e.to_string()))?;
        if !(endpoint.starts_with("tcp://") || endpoint.starts_with("ssh://")) {
            return Err(bad("the endpoint must start with `tcp://` or `ssh://`"));
        }
        nodes.push(NodeRequest { platform, endpoint: endpoint.to_string(), cert_dir: a.node_certs.clone() });
    }
    if let Some(d) = &a.node_certs
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

pub fn from_flags(a: &BuildArgs, env: EnvLookup<'_>) -> Result<Request, UserError> {
    let source = source_from_flags(&a.source, env)?;
    let strategy = strategy_from_flags(&a.strategy)?;

    let mut tags: Vec<Reference> = Vec::new();
    for t in a.tags.iter().flat_map(|t| t.split([',', '\n'])).map(str::trim).filter(|t| !t.is_empty()) {
        let r: Reference = t.parse().map_err(|e| {
            UserError::input(format!("`-t`: {e}"))
                .hint("tags look like `registry/repository:tag`, e.g. `ghcr.io/acme/app:1.2`")
        })?;
        if r.digest.is_some() {
            return Err(UserError::input(format!("`-t {t}` names a digest; a tag cannot be pushed to a digest"))
                .hint("drop the `@sha256:…` part"));
        }
        tags.push(r);
    }
    if let Some(first) = tags.first()
        && let Some(other) = tags.iter().find(|t| !t.same_repository(first))
    {
        return Err(UserError::input(format!(
            "tags name two repositories, `{}` and `{}`; one run publishes to one repository",
            first.name(),
            other.name()
        ))
        .hint("give tags of one repository, and copy the result to the other afterwards"));
    }

    let output = if a.push_by_digest {
        let Some(first) = tags.first() else {
            return Err(UserError::input("`--push-by-digest` needs a repository to push to, and no `-t` was given")
                .hint("add `-t registry/repository`"));
        };
        Output::Digest { repo: Reference { tag: None, ..first.clone() }, digest_file: a.digest_file.clone() }
    } else if a.push {
        if tags.is_empty() {
            return Err(UserError::input("`--push` needs an image to push to, and no `-t` was given")
                .hint("add `-t registry/repository:tag`"));
        }
        Output::Registry { tags }
    } else {
        check_layout_dir(&a.output)?;
        Output::Layout {
            dir: a.output.clone(),
            names: tags.iter().map(|t| t.tag.clone().unwrap_or_else(|| "latest".into())).collect(),
        }
    };

    for h in &a.insecure_registries {
        if h.contains('/') || h.trim().is_empty() {
            return Err(UserError::input(format!("`--insecure-registry {h}` is not a host"))
                .hint("give `host` or `host:port`, without a scheme or path"));
        }
    }

    let jobs = if a.jobs == 0 { source.platforms.len() } else { a.jobs };
    Ok(Request {
        source,
        strategy,
        dry_run: a.dry_run,
        labels: pairs("--label", &a.labels)?,
        annotations: pairs("--annotation", &a.annotations)?,
        provenance: attestation_value("--provenance", a.provenance.as_deref())?,
        sbom: attestation_value("--sbom", a.sbom.as_deref())?,
        output,
        metadata_file: a.metadata_file.clone(),
        insecure_registries: a.insecure_registries.clone(),
        jobs: jobs.max(1),
    })
}

/// `KEY=VALUE` pairs; a later key replaces an earlier one.
fn pairs(flag: &str, given: &[String]) -> Result<Vec<(String, String)>, UserError> {
    let mut out: Vec<(String, String)> = Vec::new();
    for g in given {
        let (k, v) = g.split_once('=').filter(|(k, _)| !k.trim().is_empty()).ok_or_else(|| {
            UserError::input(format!("`{flag} {g}` is not `KEY=VALUE`")).hint(format!("write it as `{flag} KEY=VALUE`"))
        })?;
        match out.iter_mut().find(|(ek, _)| ek == k.trim()) {
            Some(slot) => slot.1 = v.to_string(),
            None => out.push((k.trim().to_string(), v.to_string())),
        }
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

fn parse_platforms(given: &[String]) -> Result<Vec<Platform>, UserError> {
    let joined = given.join(",");
    let text = if joined.trim_matches([',', ' ', '\n']).is_empty() { DEFAULT_PLATFORMS } else { &joined };
    let list = platform::parse_list(text).map_err(|e| {
        UserError::input(format!("`--platform`: {e}"))
            .hint("write platforms as `os/arch[/variant]`, e.g. `linux/amd64,linux/arm64,linux/arm/v7`")
    })?;
    Ok(list)
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
    let empty = dir.read_dir().map(|mut d| d.next().is_none()).unwrap_or(false);
    if !empty && !dir.join("oci-layout").is_file() {
        return Err(UserError::input(format!(
            "`--output {}` holds files and is not an OCI image layout; archway will not write into it",
            dir.display()
        ))
        .hint("name a new or empty directory with `--output DIR`"));
    }
    Ok(())
}
