//! outcome: what each subcommand tells the user when its stages are done — the plan (table or
//! JSON, and the error for an impossible platform), the summary of a build or a merge, the
//! `--metadata-file` JSON (one type for `build` and `merge`), the matrix leg's digest file and
//! the CI's output files. Data meant to be piped (the published reference) goes to stdout.

use serde::Serialize;

use super::{Log, human_size, impossible_detail, plan_json, plan_table, summary};
use crate::builder::Built;
use crate::ci::{self, Ci};
use crate::cli::Format;
use crate::error::UserError;
use crate::inputs::{BuildRequest, MergeRequest, Output};
use crate::plan::Plan;
use crate::planning::Planning;
use crate::publish::merge::Gathered;
use crate::publish::{Entries, Outcome, Published};

/// Prints the plan; fails with exit code 3 when some platform cannot be built here.
pub fn plan(planning: &Planning, log: &Log) -> Result<(), UserError> {
    log.line(plan_table(&planning.plan).trim_end());
    for u in &planning.analysis.unknowns {
        log.line(&format!("note: {u}"));
    }
    for n in crate::builder::schedule::classic_store_notes(&planning.plan, &planning.caps) {
        log.line(&format!("note: {n}"));
    }
    let impossible = planning.plan.impossible();
    if impossible.is_empty() {
        return Ok(());
    }
    // Annotate the deciding line, where the CI shows annotations (GitHub `::error file=…`).
    for i in &impossible {
        if let Some(d) = &i.deciding {
            let first_fix = i.fixes.first().map(String::as_str).unwrap_or("");
            log.reporter().error(
                Some(&d.file),
                u32::try_from(d.line).ok(),
                &format!(
                    "{} cannot be built on this runner: this RUN executes {} code; {first_fix}",
                    i.platform, i.platform
                ),
            );
        }
    }
    let names: Vec<String> = impossible.iter().map(|i| i.platform.to_string()).collect();
    Err(UserError::impossible(format!(
        "{} cannot be built on this runner; nothing was built or pushed\n\n{}",
        names.join(", "),
        impossible.iter().map(|i| impossible_detail(i)).collect::<Vec<_>>().join("\n").trim_end()
    ))
    .hint(impossible[0].fixes.first().cloned().unwrap_or_default()))
}

/// `archway plan`'s output in `format`: the table on the log, or JSON on stdout.
pub fn plan_output(planning: &Planning, format: Format, log: &Log) -> anyhow::Result<()> {
    match format {
        Format::Table => Ok(plan(planning, log)?),
        Format::Json => {
            println!("{}", serde_json::to_string_pretty(&plan_json(&planning.plan, &planning.analysis))?);
            if planning.plan.impossible().is_empty() {
                Ok(())
            } else {
                Err(UserError::impossible(
                    "some platforms cannot be built on this runner (see `strategy: impossible` above)",
                )
                .hint("`archway plan` without `--format json` lists the fixes")
                .into())
            }
        }
    }
}

/// The `--metadata-file` document of `build` and `merge`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata<'a> {
    /// `registry/repo@digest` or the layout directory.
    pub location: &'a str,
    pub digest: String,
    pub media_type: &'a str,
    pub size: u64,
    pub tags: &'a [String],
    pub platforms: Vec<PlatformMetadata>,
    /// What a partial merge went without (`--allow-partial`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<Missing>,
    /// buildx's `--metadata-file` keys (what docker/build-push-action's `metadata` output
    /// holds), for workflows that read them: the index digest, the tags comma-joined, the
    /// index's descriptor.
    #[serde(rename = "containerimage.digest")]
    pub containerimage_digest: String,
    #[serde(rename = "image.name")]
    pub image_name: String,
    #[serde(rename = "containerimage.descriptor")]
    pub containerimage_descriptor: serde_json::Value,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlatformMetadata {
    pub platform: String,
    pub digest: String,
    pub media_type: String,
    pub image_size: u64,
    /// How long the platform took to build (`build`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<f64>,
    pub attestations: Vec<String>,
    /// The leg it came from (`merge`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

#[derive(Serialize)]
pub struct Missing {
    pub source: String,
    pub why: String,
}

fn published_metadata<'a>(published: &'a Published, platforms: Vec<PlatformMetadata>) -> Metadata<'a> {
    Metadata {
        location: &published.location,
        digest: published.index.digest.to_string(),
        media_type: &published.index.media_type,
        size: published.index.size,
        tags: &published.tags,
        platforms,
        missing: vec![],
        containerimage_digest: published.index.digest.to_string(),
        image_name: published.tags.join(","),
        containerimage_descriptor: serde_json::json!({
            "mediaType": published.index.media_type,
            "digest": published.index.digest,
            "size": published.index.size,
        }),
    }
}

/// A build's metadata.
pub fn metadata<'a>(built: &[(Built, Entries)], published: &'a Published) -> Metadata<'a> {
    published_metadata(
        published,
        built
            .iter()
            .map(|(b, e)| PlatformMetadata {
                platform: b.platform.to_string(),
                digest: e.descriptors[0].digest.to_string(),
                media_type: e.descriptors[0].media_type.clone(),
                image_size: e.image_size,
                duration_seconds: Some(tenths(b.duration)),
                attestations: e.descriptors[1..].iter().map(|d| d.digest.to_string()).collect(),
                source: None,
            })
            .collect(),
    )
}

fn tenths(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 10.0).round() / 10.0
}

fn write_file(flag: &str, path: &std::path::Path, bytes: &[u8]) -> Result<(), UserError> {
    use std::io::Write as _;
    crate::files::replace_file(path, |mut f| f.write_all(bytes).map_err(|e| e.to_string())).map_err(|e| {
        UserError::failure(format!("cannot write `{flag} {}`", path.display()))
            .caused_by(anyhow::anyhow!(e))
            .hint("check that its directory exists and is writable; the image itself was published")
    })
}

/// After a build: the summary, the metadata file, the leg's digest file, the CI's outputs and
/// the reference on stdout. Returns the last line.
pub fn build_done(
    req: &BuildRequest,
    plan: &Plan,
    outcome: &Outcome,
    ci: &dyn Ci,
    env: &ci::Env,
    log: &Log,
) -> anyhow::Result<String> {
    let Outcome { platforms, published } = outcome;
    log.line("");
    log.line(summary(platforms, published).trim_end());
    let metadata_json = serde_json::to_string_pretty(&metadata(platforms, published))?;
    if let Some(path) = &req.metadata_file {
        write_file("--metadata-file", path, metadata_json.as_bytes())?;
    }
    log.end_group();
    if let Output::Digest { digest_file: Some(path), .. } = &req.output {
        write_file("--digest-file", path, format!("{}\n", published.location).as_bytes())?;
    }
    let planned = plan.planned();
    let result = ci::CiResult {
        digest: published.index.digest.to_string(),
        image: req.repository().map(|r| r.name()).unwrap_or_else(|| published.location.clone()),
        tags: published.tags.clone(),
        platforms: platforms
            .iter()
            .map(|(b, e)| {
                let p = planned.iter().find(|p| p.platform == b.platform);
                ci::PlatformRow {
                    platform: b.platform.to_string(),
                    strategy: p.map(|p| p.strategy.kind().to_string()).unwrap_or_default(),
                    reason: p.map(|p| p.reason.clone()).unwrap_or_default(),
                    digest: e.descriptors[0].digest.to_string(),
                    duration_secs: tenths(b.duration),
                }
            })
            .collect(),
        metadata_json,
    };
    write_ci_outputs(ci, env, &result)?;
    // A Bitbucket pipe's log is stdout and stderr merged: the reference would land after the
    // final ✔, so there it is only in the summary and the result file.
    if ci.provider() != (ci::Provider::Bitbucket { pipe: true }) {
        println!("{}", published.location);
    }
    Ok(match &req.output {
        Output::Layout { .. } => format!("wrote {} to {}", published.index.digest, published.location),
        _ if published.tags.is_empty() => format!("pushed {} (by digest, no tag)", published.location),
        _ => format!("published {} as {}", published.location, published.tags.join(", ")),
    })
}

/// After a merge: what came from where, the index, the tags, what is missing; the metadata
/// file; the CI's output files (as after a build); the reference on stdout. Returns the last
/// line.
pub fn merged(
    req: &MergeRequest,
    gathered: &Gathered,
    published: &Published,
    ci: &dyn Ci,
    env: &ci::Env,
    log: &Log,
) -> anyhow::Result<String> {
    let mut out = String::new();
    for (label, i) in &gathered.found {
        out.push_str(&format!(
            "{:<14} {}  {:>10}  from {label}\n",
            i.platform.to_string(),
            i.descriptor.digest,
            human_size(i.image_size)
        ));
    }
    out.push_str(&format!("index {} ({})\n", published.index.digest, published.index.media_type));
    for t in &published.tags {
        out.push_str(&format!("tagged {t}\n"));
    }
    if !gathered.missing.is_empty() {
        out.push_str(&format!(
            "PARTIAL: published without {} (--allow-partial)\n",
            gathered.missing.iter().map(|(l, why)| format!("{l} ({why})")).collect::<Vec<_>>().join(", ")
        ));
    }
    log.line("");
    log.line(out.trim_end());
    let mut m = published_metadata(
        published,
        gathered
            .found
            .iter()
            .map(|(label, i)| PlatformMetadata {
                platform: i.platform.to_string(),
                digest: i.descriptor.digest.to_string(),
                media_type: i.descriptor.media_type.clone(),
                image_size: i.image_size,
                duration_seconds: None,
                attestations: i.attestations.iter().map(|d| d.digest.to_string()).collect(),
                source: Some(label.clone()),
            })
            .collect(),
    );
    m.missing = gathered.missing.iter().map(|(s, w)| Missing { source: s.clone(), why: w.clone() }).collect();
    let metadata_json = serde_json::to_string_pretty(&m)?;
    if let Some(path) = &req.metadata_file {
        write_file("--metadata-file", path, metadata_json.as_bytes())?;
    }
    let result = ci::CiResult {
        digest: published.index.digest.to_string(),
        image: req.repo.name(),
        tags: published.tags.clone(),
        platforms: gathered
            .found
            .iter()
            .map(|(label, i)| ci::PlatformRow {
                platform: i.platform.to_string(),
                strategy: "merged".into(),
                reason: format!("pushed by a matrix leg: {label}"),
                digest: i.descriptor.digest.to_string(),
                duration_secs: 0.0,
            })
            .collect(),
        metadata_json,
    };
    write_ci_outputs(ci, env, &result)?;
    if ci.provider() != (ci::Provider::Bitbucket { pipe: true }) {
        println!("{}", published.location);
    }
    Ok(format!("published {} as {}", published.location, published.tags.join(", ")))
}

/// The CI's output files (`$GITHUB_OUTPUT` and the step summary, the dotenv report, Bitbucket's
/// variables), after the image itself was published.
fn write_ci_outputs(ci: &dyn Ci, env: &ci::Env, result: &ci::CiResult) -> Result<(), UserError> {
    for w in ci.write_outputs(env, result).map_err(|e| {
        UserError::failure("cannot write the CI's output files").caused_by(e).hint("the image itself was published")
    })? {
        tracing::debug!(path = %w.display(), "wrote CI outputs");
    }
    Ok(())
}
