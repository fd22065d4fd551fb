//! cli: the command-line surface as clap structs. Only says what can be typed; reading files
//! and the environment and checking values happens in `inputs`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "archway",
    version,
    about = "Build multi-platform container images in one CI step",
    max_term_width = 100
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build a Dockerfile for several platforms and publish one multi-platform image
    Build(BuildArgs),
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Build context directory
    #[arg(default_value = ".")]
    pub context: PathBuf,

    /// Dockerfile (default: `CONTEXT/Dockerfile`)
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,

    /// Target platforms, comma-separated or repeated (default: `linux/amd64,linux/arm64`)
    #[arg(long = "platform", value_name = "P[,P...]")]
    pub platforms: Vec<String>,

    /// Image reference to publish, e.g. `ghcr.io/acme/app:1.2` (repeatable; one repository)
    #[arg(short = 't', long = "tag", value_name = "REF")]
    pub tags: Vec<String>,

    /// Build-time variable, `KEY=VALUE` (or `KEY` to take it from the environment)
    #[arg(long = "build-arg", value_name = "K=V")]
    pub build_args: Vec<String>,

    /// Stage to build (default: the last one)
    #[arg(long)]
    pub target: Option<String>,

    /// Provenance attestation passed to buildx: `false`, `true`, `mode=min` or `mode=max`
    /// (default: buildx's own)
    #[arg(long, value_name = "VALUE")]
    pub provenance: Option<String>,

    /// SBOM attestation passed to buildx: `false`, `true` or generator options
    #[arg(long, value_name = "VALUE")]
    pub sbom: Option<String>,

    /// Push each platform by digest, then the index, then the tags
    #[arg(long)]
    pub push: bool,

    /// OCI image layout directory to write when not pushing
    #[arg(long, default_value = "archway-out", value_name = "DIR")]
    pub output: PathBuf,

    /// Write the result (index digest, tags, per-platform digests) as JSON to FILE
    #[arg(long, value_name = "FILE")]
    pub metadata_file: Option<PathBuf>,

    /// Registry host[:port] to talk plain HTTP to (loopback hosts always are)
    #[arg(long = "insecure-registry", value_name = "HOST")]
    pub insecure_registries: Vec<String>,

    /// Platforms built at once (0: all of them)
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub jobs: usize,
}
