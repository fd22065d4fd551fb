//! cli: the command-line surface as clap structs. Only says what can be typed; reading files
//! and the environment and checking values happens in `inputs`.
//!
//! Options are `Option`s, not defaults, so `inputs` can tell "not given" from a value and fill
//! it from the CI's inputs. The environment variables are listed by `--help` from the same
//! constants the resolver reads; clap's own `env =` is not used because the resolver, not clap,
//! must decide precedence, read booleans strictly (`ARCHWAY_PUSH=maybe` is an error, not
//! `true`) and read each CI's spelling (`INPUT_PUSH`, `PUSH`, `ARCHWAY_PUSH`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "archway",
    version,
    about = "Build multi-platform container images in one CI step",
    max_term_width = 100,
    after_long_help = environment_help()
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build a Dockerfile for several platforms and publish one multi-platform image
    Build(Box<BuildArgs>),
    /// Show how each platform would be built here, and why, without building
    Plan(PlanArgs),
    /// Stitch platforms pushed by digest (matrix legs) into one multi-platform image
    Merge(MergeArgs),
    /// Copy a multi-platform image to new tags without pulling it
    Promote(PromoteArgs),
    /// Show what a reference holds: platforms, digests, sizes, attestations
    Inspect(InspectArgs),
    /// Register QEMU handlers for platforms (used inside archway's own privileged helper container)
    #[command(hide = true)]
    BinfmtRegister(BinfmtRegisterArgs),
}

/// What to build: shared by `build` and `plan`.
#[derive(Debug, Clone, Args)]
pub struct SourceArgs {
    /// Build context directory (default: the CI's checkout, else `.`)
    pub context: Option<PathBuf>,

    /// Dockerfile (default: `CONTEXT/Dockerfile`)
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,

    /// Target platforms, comma-separated or repeated (default: `linux/amd64,linux/arm64`)
    #[arg(long = "platform", value_name = "P[,P...]")]
    pub platforms: Vec<String>,

    /// Build-time variable, `KEY=VALUE` (or `KEY` to take it from the environment)
    #[arg(long = "build-arg", value_name = "K=V")]
    pub build_args: Vec<String>,

    /// Stage to build (default: the last one)
    #[arg(long)]
    pub target: Option<String>,
}

/// How platforms may be built: shared by `build` and `plan`.
#[derive(Debug, Clone, Args)]
pub struct StrategyArgs {
    /// A remote Docker engine that builds one platform natively: `PLATFORM=tcp://HOST:PORT` or
    /// `PLATFORM=ssh://USER@HOST` (repeatable)
    #[arg(long = "node", value_name = "PLATFORM=ENDPOINT")]
    pub nodes: Vec<String>,

    /// Directory with `ca.pem`, `cert.pem` and `key.pem` for TLS to `tcp://` nodes
    #[arg(long = "node-certs", value_name = "DIR")]
    pub node_certs: Option<PathBuf>,

    /// Never run foreign code under QEMU; fail the plan instead
    #[arg(long)]
    pub no_emulation: bool,

    /// May archway register QEMU handlers in the kernel when none exists (default: `auto`)
    #[arg(long, value_enum)]
    pub binfmt: Option<BinfmtArg>,

    /// Order in which strategies are tried, e.g. `remote,emulated` (the rest follow in the
    /// default order: native, cross, remote, emulated)
    #[arg(long, value_name = "KIND[,KIND...]")]
    pub prefer: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BinfmtArg {
    /// Register the handlers a build needs when archway is allowed to
    Auto,
    /// Never change kernel state
    Never,
}

#[derive(Debug, Clone, Args)]
pub struct BuildArgs {
    #[command(flatten)]
    pub source: SourceArgs,

    #[command(flatten)]
    pub strategy: StrategyArgs,

    /// Image reference to publish, e.g. `ghcr.io/acme/app:1.2` (repeatable; several repositories
    /// and registries allowed: the index is copied by digest into each before any tag moves)
    #[arg(short = 't', long = "tag", value_name = "REF")]
    pub tags: Vec<String>,

    /// Provenance attestation passed to buildx: `false`, `true`, `mode=min` or `mode=max`
    /// (default: buildx's own)
    #[arg(long, value_name = "VALUE")]
    pub provenance: Option<String>,

    /// SBOM attestation passed to buildx: `false`, `true` or generator options
    #[arg(long, value_name = "VALUE")]
    pub sbom: Option<String>,

    /// Label on the image config, `KEY=VALUE` (repeatable)
    #[arg(long = "label", value_name = "K=V")]
    pub labels: Vec<String>,

    /// Annotation, as buildx: `KEY=VALUE` or `manifest:KEY=VALUE` on each platform's manifest,
    /// `index:KEY=VALUE` on the index, `index,manifest:KEY=VALUE` on both (repeatable)
    #[arg(long = "annotation", value_name = "[index:]K=V")]
    pub annotations: Vec<String>,

    /// Push each platform by digest, then the index, then the tags
    #[arg(long)]
    pub push: bool,

    /// Push by digest only, moving no tag (a matrix leg; `archway merge` tags later). Prints
    /// the digest
    #[arg(long, conflicts_with = "push")]
    pub push_by_digest: bool,

    /// With `--push-by-digest`: write `REPO@sha256:…` to FILE, for `archway merge`
    #[arg(long, value_name = "FILE", requires = "push_by_digest")]
    pub digest_file: Option<PathBuf>,

    /// OCI image layout directory to write when not pushing (default: `archway-out`); or, as
    /// buildx spells it, an extra exporter written after publishing: `type=oci|docker|tar,dest=FILE`,
    /// `type=local,dest=DIR`, or `type=image|registry,name=…,push=true` for the push (repeatable)
    #[arg(long, value_name = "DIR|type=…")]
    pub output: Vec<String>,

    /// Write the result (index digest, tags, per-platform digests) as JSON to FILE
    #[arg(long, value_name = "FILE")]
    pub metadata_file: Option<PathBuf>,

    /// Registry host[:port] to talk plain HTTP to (loopback hosts always are)
    #[arg(long = "insecure-registry", value_name = "HOST")]
    pub insecure_registries: Vec<String>,

    /// Platforms built at once (default, and `0`: all of them)
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,

    /// Print the plan and stop
    #[arg(long)]
    pub dry_run: bool,

    /// Layer compression of assembled platforms: `gzip` or `zstd` (default: `gzip`)
    #[arg(long, value_name = "gzip|zstd")]
    pub compression: Option<String>,

    /// Compression level (default: 1 for gzip, 3 for zstd)
    #[arg(long, value_name = "N")]
    pub compression_level: Option<i32>,

    /// A cache source, as buildx's (`type=registry,ref=REF`, `type=gha`, `type=local,src=DIR`;
    /// a bare `REF` is a registry); each platform reads its own scope. Registry images are
    /// also where assembled platforms reuse layers of the same content (repeatable)
    #[arg(long = "cache-from", value_name = "SPEC")]
    pub cache_from: Vec<String>,

    #[command(flatten)]
    pub buildx: BuildxArgs,
}

/// docker/build-push-action's build inputs, spelled as buildx's flags.
#[derive(Debug, Clone, Default, Args)]
pub struct BuildxArgs {
    /// A cache export destination, as buildx's (`type=registry,ref=REF:buildcache`,
    /// `type=gha`, `type=local,dest=DIR`); each platform writes its own scope (repeatable)
    #[arg(long = "cache-to", value_name = "SPEC")]
    pub cache_to: Vec<String>,

    /// Do not use the build cache
    #[arg(long)]
    pub no_cache: bool,

    /// A stage not to take from the build cache (repeatable)
    #[arg(long = "no-cache-filter", value_name = "STAGE")]
    pub no_cache_filters: Vec<String>,

    /// Always resolve the base images again
    #[arg(long)]
    pub pull: bool,

    /// A build secret for `RUN --mount=type=secret`: `id=ID,env=VARIABLE` or `id=ID,src=PATH`
    /// (`id=ID` alone: the variable or file named ID) (repeatable)
    #[arg(long = "secret", value_name = "id=ID,…")]
    pub secrets: Vec<String>,

    /// An SSH agent socket or keys to forward: `default` or `ID=PATH` (repeatable)
    #[arg(long = "ssh", value_name = "default|ID=PATH")]
    pub ssh: Vec<String>,

    /// An additional named build context, `NAME=PATH|URL|docker-image://REF` (repeatable)
    #[arg(long = "build-context", value_name = "NAME=VALUE")]
    pub build_contexts: Vec<String>,

    /// After publishing, load the image of the engine's own platform into the local engine
    #[arg(long)]
    pub load: bool,

    /// Size of `/dev/shm` in RUN steps, e.g. `2g`
    #[arg(long, value_name = "BYTES")]
    pub shm_size: Option<String>,

    /// A ulimit of RUN steps, e.g. `nofile=1024:1024` (repeatable)
    #[arg(long = "ulimit", value_name = "NAME=SOFT[:HARD]")]
    pub ulimits: Vec<String>,

    /// An attestation to add, as buildx's (`type=sbom`, `type=provenance,mode=max`) (repeatable)
    #[arg(long = "attest", value_name = "SPEC")]
    pub attests: Vec<String>,

    /// Parent cgroup of RUN steps
    #[arg(long = "cgroup-parent", value_name = "CGROUP")]
    pub cgroup_parent: Option<String>,

    /// An `/etc/hosts` entry of RUN steps, `HOST:IP` (repeatable)
    #[arg(long = "add-host", value_name = "HOST:IP")]
    pub add_hosts: Vec<String>,

    /// Network mode of RUN steps: `default`, `host` or `none`
    #[arg(long, value_name = "MODE")]
    pub network: Option<String>,

    /// An extra privileged entitlement, e.g. `network.host` (repeatable)
    #[arg(long = "allow", value_name = "ENTITLEMENT")]
    pub allow: Vec<String>,

    /// The buildx builder instance to use (default: buildx's current one)
    #[arg(long, value_name = "NAME")]
    pub builder: Option<String>,

    /// Run a build method instead of building, e.g. `check` (buildx 0.14 or newer)
    #[arg(long, value_name = "METHOD")]
    pub call: Option<String>,

    /// Shorthand for `--call check`
    #[arg(long, conflicts_with = "call")]
    pub check: bool,

    /// What to show while building, as buildx's `--progress`: `auto` (a live view on a
    /// terminal outside CI, else `plain`), `tty`, `plain`, `quiet` (only the result on stdout)
    /// or `rawjson` (the builders' JSON events, each with its `platform`)
    #[arg(long, value_name = "MODE")]
    pub progress: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub source: SourceArgs,

    #[command(flatten)]
    pub strategy: StrategyArgs,

    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,

    /// Plan against capabilities recorded earlier (`--save-capabilities`) instead of probing
    #[arg(long, value_name = "FILE")]
    pub capabilities: Option<PathBuf>,

    /// Write the probed capabilities of this runner as JSON to FILE
    #[arg(long, value_name = "FILE")]
    pub save_capabilities: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct BinfmtRegisterArgs {
    /// Platforms to register QEMU handlers for
    #[arg(long = "platform", value_name = "P[,P...]", required = true)]
    pub platforms: Vec<String>,
}

/// Registry access shared by the registry commands.
#[derive(Debug, Args)]
pub struct RegistryArgs {
    /// Registry host[:port] to talk plain HTTP to (loopback hosts always are)
    #[arg(long = "insecure-registry", value_name = "HOST")]
    pub insecure_registries: Vec<String>,
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Image reference to publish (repeatable; one repository). In CI, default the tags computed
    /// from the commit, as `build` computes them (`image`, `tags`, `flavor`)
    #[arg(short = 't', long = "tag", value_name = "REF")]
    pub tags: Vec<String>,

    /// What to merge: `REPO@sha256:…`, a digest file a leg wrote (`sha256:…` or
    /// `REPO@sha256:…`), or a directory of digest files
    #[arg(value_name = "SOURCE", required = true)]
    pub sources: Vec<String>,

    /// Platforms that must be present (a missing one fails the merge unless `--allow-partial`)
    #[arg(long = "platform", value_name = "P[,P...]")]
    pub platforms: Vec<String>,

    /// Publish even when a leg is missing or failed; the summary names what is missing
    #[arg(long)]
    pub allow_partial: bool,

    /// Annotation on the index, `index:KEY=VALUE` (repeatable)
    #[arg(long = "annotation", value_name = "index:KEY=VALUE")]
    pub annotations: Vec<String>,

    /// Write the result as JSON to FILE
    #[arg(long, value_name = "FILE")]
    pub metadata_file: Option<PathBuf>,

    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, Args)]
pub struct PromoteArgs {
    /// The image to copy (`REPO:TAG` or `REPO@sha256:…`)
    #[arg(value_name = "SRC")]
    pub source: String,

    /// Where to copy it (`REPO:TAG`; repeatable)
    #[arg(value_name = "DST", required = true)]
    pub destinations: Vec<String>,

    /// Keep only these platforms (the index is rewritten, so its digest changes)
    #[arg(long = "platform", value_name = "P[,P...]")]
    pub platforms: Vec<String>,

    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The image to inspect
    #[arg(value_name = "REF")]
    pub reference: String,

    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table, conflicts_with = "raw")]
    pub format: Format,

    /// Print the stored manifest bytes exactly
    #[arg(long)]
    pub raw: bool,

    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// The environment variables archway reads, for `--help`: every input in its local spelling
/// (`ARCHWAY_*`) and the Docker and registry variables, each with its one-line description.
pub fn environment_help() -> String {
    use crate::ci::vars::InputDefault;
    use crate::env;
    let mut out = String::from("Environment variables (flags win over them; in CI, the CI's inputs are read too):\n");
    for i in crate::ci::vars::INPUTS {
        let default = match i.local_default {
            InputDefault::Value(v) => format!("; default `{v}`"),
            InputDefault::Computed(how) => format!("; default {how}"),
            InputDefault::None | InputDefault::NotListed => String::new(),
        };
        let secret = if i.secret() { "; never printed" } else { "" };
        out.push_str(&format!("  {:<28} {}{default}{secret}\n", i.archway, i.doc));
    }
    for (name, doc) in env::DOCUMENTED {
        out.push_str(&format!("  {name:<28} {doc}\n"));
    }
    out
}
