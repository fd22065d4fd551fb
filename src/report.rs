//! report: everything archway tells the user while it works and when it is done: progress
//! lines (on stderr), the summary table, and the `--metadata-file` JSON. Data meant to be piped
//! (the published reference) goes to stdout.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use serde::Serialize;

use crate::builder::Built;
use crate::ci::Reporter;
use crate::platform::Platform;
use crate::publish::{Entries, Published};

mod json;
mod outcome;
pub mod tty;
pub use outcome::{Metadata, PlatformMetadata, build_done, merged, metadata, plan, plan_output};

/// What is shown while building (`--progress`), as resolved by
/// [`crate::inputs::Invocation::progress`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// The CI dialect's lines (the default in CI and where stderr is not a terminal).
    Plain,
    /// The live terminal view ([`tty`]), with or without colours (`NO_COLOR`).
    Tty { color: bool },
    /// Nothing but errors on stderr; the result on stdout.
    Quiet,
    /// JSON events, one a line, each with its `platform`.
    RawJson,
}

/// How a [`Log`] shows a build other than as plain lines.
enum View {
    Tty(tty::Tty),
    Quiet,
    Json(json::Json),
}

/// The log of one run, in the dialect of the CI it runs in (`crate::ci::Reporter`): phases
/// and platforms as collapsible groups where the CI has them, every known secret redacted.
///
/// Groups cannot nest or interleave, so when several platforms build at once in a CI with
/// groups, each platform's builder output is held back and printed as one group when that
/// platform ends; a line says when each starts and ends meanwhile. Locally, builder output
/// streams as it comes, each line prefixed with its platform.
pub struct Log {
    reporter: Box<dyn Reporter>,
    /// The CI shows groups (GitHub `::group::`, GitLab sections).
    groups: bool,
    /// More than one platform builds at once.
    parallel: std::sync::atomic::AtomicBool,
    held: Mutex<HashMap<Platform, (String, Vec<String>)>>,
    /// Set by `--progress` other than `plain`.
    view: OnceLock<View>,
}

impl Log {
    pub fn new(reporter: Box<dyn Reporter>, groups: bool) -> Self {
        Log { reporter, groups, parallel: Default::default(), held: Mutex::default(), view: OnceLock::new() }
    }

    /// Shows the rest of the run as `progress` says (once; plain lines until then).
    pub fn set_progress(&self, progress: Progress) {
        let view = match progress {
            Progress::Plain => return,
            Progress::Tty { color } => View::Tty(tty::Tty::new(color)),
            Progress::Quiet => View::Quiet,
            Progress::RawJson => View::Json(json::Json::default()),
        };
        let _ = self.view.set(view);
    }

    /// The live terminal view is shown.
    pub fn live(&self) -> bool {
        matches!(self.view.get(), Some(View::Tty(_)))
    }

    /// Builders should write JSON events (buildx's `--progress rawjson`).
    pub fn builders_json(&self) -> bool {
        matches!(self.view.get(), Some(View::Json(_)))
    }

    pub fn reporter(&self) -> &dyn Reporter {
        &*self.reporter
    }

    /// Says whether platforms are about to build at once (their output is then held back).
    pub fn set_parallel(&self, parallel: bool) {
        self.parallel.store(parallel, std::sync::atomic::Ordering::SeqCst);
    }

    fn holding(&self) -> bool {
        self.groups && self.parallel.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn line(&self, text: &str) {
        match self.view.get() {
            None => self.plain_line(text),
            Some(View::Tty(t)) => t.suspend(|| self.plain_line(text)),
            Some(View::Quiet | View::Json(_)) => {}
        }
    }

    fn plain_line(&self, text: &str) {
        for l in text.lines() {
            self.reporter.info(l);
        }
        if text.is_empty() {
            self.reporter.info("");
        }
    }

    /// A collapsible group (a phase of the run) in CIs that have them; a heading elsewhere.
    pub fn group(&self, title: &str) {
        if self.view.get().is_some() {
            return;
        }
        if self.groups {
            self.reporter.group_start(title);
        } else {
            self.reporter.info(&format!("==> {title}"));
        }
    }

    pub fn end_group(&self) {
        if self.groups && self.view.get().is_none() {
            self.reporter.group_end();
        }
    }

    /// A line of a builder's own output.
    pub fn build_output(&self, platform: &Platform, text: &str) {
        match self.view.get() {
            None => {}
            Some(View::Tty(t)) => return t.output(&*self.reporter, platform, text),
            Some(View::Quiet) => return,
            Some(View::Json(j)) => return j.output(&*self.reporter, platform, text),
        }
        if self.holding()
            && let Some((_, lines)) = self.held.lock().unwrap().get_mut(platform)
        {
            lines.push(text.to_string());
            return;
        }
        if self.groups {
            self.reporter.line(text);
        } else {
            self.reporter.line(&format!("[{platform}] {text}"));
        }
    }

    /// A line of a builder's output that belongs to every platform it builds at once, not one.
    /// Printed as it comes, outside the platforms' groups.
    pub fn shared_output(&self, platforms: &[Platform], text: &str) {
        match self.view.get() {
            None => {}
            Some(View::Tty(t)) => {
                for p in platforms {
                    t.output(&*self.reporter, p, text);
                }
                return;
            }
            Some(View::Quiet) => return,
            Some(View::Json(j)) => return j.shared(&*self.reporter, platforms, text),
        }
        if self.groups {
            self.reporter.line(text);
        } else {
            let names: Vec<String> = platforms.iter().map(Platform::to_string).collect();
            self.reporter.line(&format!("[{}] {text}", names.join(",")));
        }
    }

    /// A platform starts building; `how` begins with its strategy (`assembled with archway (…)`).
    pub fn started(&self, platform: &Platform, how: &str) {
        let strategy = how.split(' ').next().unwrap_or("");
        match self.view.get() {
            None => {}
            Some(View::Tty(t)) => return t.started(platform, strategy),
            Some(View::Quiet) => return,
            Some(View::Json(j)) => {
                let fields = serde_json::json!({ "strategy": strategy, "message": format!("building {how}") });
                return j.event(&*self.reporter, &platform.to_string(), "started", fields);
            }
        }
        let title = format!("{platform}: building {how}");
        if self.holding() {
            self.held.lock().unwrap().insert(platform.clone(), (title.clone(), Vec::new()));
            self.reporter.info(&format!("==> {title}"));
        } else if self.groups {
            self.reporter.group_start(&title);
        } else {
            self.reporter.info(&format!("==> {title}"));
        }
    }

    /// Ends a platform's group (printing its held output first).
    fn close(&self, platform: &Platform) {
        if self.holding() {
            let held = self.held.lock().unwrap().remove(platform);
            if let Some((title, lines)) = held {
                self.reporter.group_start(&title);
                for l in lines {
                    self.reporter.line(&l);
                }
                self.reporter.group_end();
            }
        } else if self.groups {
            self.reporter.group_end();
        }
    }

    /// A platform's push by digest to `repo` is done.
    pub fn pushed(&self, platform: &Platform, repo: &str, s: &crate::publish::PushStats, took: Duration) {
        // The rate of what this push sent itself: blobs uploaded while the build exported
        // took their time then.
        let rate = (s.bytes_uploaded - s.bytes_early) as f64 / took.as_secs_f64().max(0.001);
        match self.view.get() {
            None => {}
            Some(View::Tty(t)) => return t.pushed(platform, s.bytes_uploaded, took),
            Some(View::Quiet) => return,
            Some(View::Json(j)) => {
                let fields = serde_json::json!({
                    "repository": repo, "blobs": s.blobs, "uploaded": s.uploaded,
                    "bytes": s.bytes_uploaded, "seconds": took.as_secs_f64(), "bytesPerSecond": rate.round(),
                    "uploadedWhileBuilding": s.early,
                });
                return j.event(&*self.reporter, &platform.to_string(), "pushed", fields);
            }
        }
        // After early uploads only small blobs are left, whose "rate" is their round trips.
        let sent_here = s.bytes_uploaded - s.bytes_early;
        let at = if sent_here > 0 && (s.early == 0 || sent_here >= crate::publish::early::EARLY_MIN_BYTES) {
            format!(" at {}/s", human_size(rate as u64))
        } else {
            String::new()
        };
        let early = match s.early {
            0 => String::new(),
            n => format!(", {n} while building"),
        };
        self.line(&format!(
            "==> {platform}: pushed by digest to {repo} ({} of {} blobs uploaded{early}, {}{at})",
            s.uploaded,
            s.blobs,
            human_size(s.bytes_uploaded)
        ));
    }

    /// Bytes of a platform's push sent so far, of `total` (shown live on a terminal).
    pub fn transfer(&self, platform: &Platform, done: u64, total: u64) {
        match self.view.get() {
            Some(View::Tty(t)) => t.transfer(platform, done, total),
            Some(View::Json(j)) => j.event(
                &*self.reporter,
                &platform.to_string(),
                "upload",
                serde_json::json!({ "bytes": done, "total": total }),
            ),
            None | Some(View::Quiet) => {}
        }
    }

    /// `b` is built (and pushed); `image` is its image manifest's digest, which the summary
    /// and the index show for it.
    pub fn finished(&self, b: &Built, image: &crate::reference::Digest) {
        match self.view.get() {
            None => {}
            Some(View::Tty(t)) => {
                return t.finished(&*self.reporter, &b.platform, b.duration, &image.to_string());
            }
            Some(View::Quiet) => return,
            Some(View::Json(j)) => {
                let fields = serde_json::json!({ "digest": image, "seconds": b.duration.as_secs_f64() });
                return j.event(&*self.reporter, &b.platform.to_string(), "done", fields);
            }
        }
        self.close(&b.platform);
        self.reporter.info(&format!("==> {}: done in {} → {image}", b.platform, secs(b.duration)));
    }

    pub fn failed(&self, platform: &Platform, took: Duration) {
        match self.view.get() {
            None => {}
            Some(View::Tty(t)) => return t.failed(&*self.reporter, platform, took),
            Some(View::Quiet) => return,
            Some(View::Json(j)) => {
                let fields = serde_json::json!({ "seconds": took.as_secs_f64() });
                return j.event(&*self.reporter, &platform.to_string(), "failed", fields);
            }
        }
        self.close(platform);
        self.reporter.info(&format!("==> {platform}: FAILED after {}", secs(took)));
    }

    /// A platform built with others in one invocation that failed, not by its own fault.
    pub fn stopped(&self, platform: &Platform, took: Duration) {
        match self.view.get() {
            Some(View::Tty(t)) => t.stopped(&*self.reporter, platform, took),
            Some(View::Json(j)) => {
                let fields = serde_json::json!({ "seconds": took.as_secs_f64(), "cause": "another platform failed" });
                j.event(&*self.reporter, &platform.to_string(), "failed", fields);
            }
            None | Some(View::Quiet) => self.failed(platform, took),
        }
    }

    /// The last line of a successful run.
    pub fn success(&self, text: &str) {
        match self.view.get() {
            None => {}
            Some(View::Tty(t)) => t.close(),
            Some(View::Quiet | View::Json(_)) => return,
        }
        self.reporter.success(text);
    }

    /// A failed run: the error as `crate::error::render` wrote it, once, its `error:` line
    /// spelled as the CI marks a failure (GitHub `::error::`, Bitbucket `✖`).
    pub fn failure(&self, rendered: &str) {
        if let Some(View::Tty(t)) = self.view.get() {
            t.close();
        }
        self.reporter.failure(rendered);
    }
}

/// `42.0 MiB/s`: `bytes` moved in `took`.
pub fn rate(bytes: u64, took: Duration) -> String {
    let s = took.as_secs_f64().max(0.001);
    format!("{}/s", human_size((bytes as f64 / s) as u64))
}

pub fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{n} B") } else { format!("{v:.1} {}", UNITS[u]) }
}

/// The summary table printed after a successful run.
pub fn summary(built: &[(Built, Entries)], published: &Published) -> String {
    let mut rows = vec![["PLATFORM".to_string(), "DIGEST".into(), "SIZE".into(), "TIME".into()]];
    for (b, e) in built {
        let image = &e.descriptors[0];
        rows.push([b.platform.to_string(), image.digest.to_string(), human_size(e.image_size), secs(b.duration)]);
    }
    let widths: Vec<usize> = (0..4).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for r in &rows {
        let line: Vec<String> = r.iter().enumerate().map(|(i, cell)| format!("{cell:<w$}", w = widths[i])).collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out.push_str(&format!("index {} ({})\n", published.index.digest, published.index.media_type));
    if published.tags.is_empty() {
        match published.names.as_slice() {
            [] => out.push_str(&format!("written to {}\n", published.location)),
            names => out.push_str(&format!(
                "written to {} (named {} in its index.json; no registry holds it)\n",
                published.location,
                names.join(", ")
            )),
        }
    }
    for t in &published.tags {
        out.push_str(&format!("tagged {t}\n"));
    }
    out
}

/// One line saying why, with the deciding RUN when code is foreign.
fn why(p: &crate::plan::Planned) -> String {
    match (&p.strategy, &p.deciding) {
        (crate::plan::Strategy::Emulated { .. }, Some(d)) => {
            let on = p.emulates.as_ref().unwrap_or(&p.platform);
            format!("the RUN at {}:{} executes {on} code; {}", d.file, d.line, p.reason)
        }
        _ => p.reason.clone(),
    }
}

/// The plan as a table: platform | strategy | why.
pub fn plan_table(plan: &crate::plan::Plan) -> String {
    let mut rows = vec![["PLATFORM".to_string(), "STRATEGY".into(), "WHY".into()]];
    for r in &plan.platforms {
        rows.push(match r {
            Ok(p) => [p.platform.to_string(), p.strategy.kind().to_string(), why(p)],
            Err(i) => [i.platform.to_string(), "impossible".into(), "no strategy works here (details below)".into()],
        });
    }
    let w0 = rows.iter().map(|r| r[0].len()).max().unwrap_or(0);
    let w1 = rows.iter().map(|r| r[1].len()).max().unwrap_or(0);
    rows.iter().map(|r| format!("{:<w0$}  {:<w1$}  {}\n", r[0], r[1], r[2])).collect()
}

/// Every option tried for an impossible platform, and the fixes.
pub fn impossible_detail(i: &crate::plan::Impossible) -> String {
    let mut s = format!("{} cannot be built here:\n", i.platform);
    for (k, why) in &i.tried {
        s.push_str(&format!("  {k:<9} {why}\n"));
    }
    s.push_str("  to fix it, any of:\n");
    for f in &i.fixes {
        s.push_str(&format!("    - {f}\n"));
    }
    s
}

#[derive(Serialize)]
pub struct PlanJson {
    pub platforms: Vec<PlatformPlanJson>,
    pub unknowns: Vec<String>,
}

#[derive(Serialize)]
pub struct PlatformPlanJson {
    pub platform: String,
    /// `assembled`, `native`, `cross`, `remote`, `emulated` or `impossible`.
    pub strategy: String,
    pub reason: String,
    /// For a hybrid `assembled` plan: the stages the local engine builds, and with which builder.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hybrid: Option<crate::plan::Hybrid>,
    pub foreign_code: bool,
    /// Whether archway can assemble the target for this platform (no RUN in the stages it
    /// needs), and if not the line that decides it and why.
    pub assemblable: bool,
    pub assemble_line: Option<usize>,
    pub assemble_reason: Option<String>,
    /// The deciding RUN's file and line, when code is foreign.
    pub file: Option<String>,
    pub line: Option<usize>,
    pub instruction: Option<String>,
    /// Details of the strategy (remote endpoint, QEMU handler), when any.
    pub detail: Option<serde_json::Value>,
    pub tried: Vec<TriedJson>,
    pub fixes: Vec<String>,
}

#[derive(Serialize)]
pub struct TriedJson {
    pub strategy: String,
    pub why_not: String,
}

pub fn plan_json(plan: &crate::plan::Plan, analysis: &crate::dockerfile::Analysis) -> PlanJson {
    let tried = |t: &[(crate::plan::StrategyKind, String)]| {
        t.iter().map(|(k, w)| TriedJson { strategy: k.to_string(), why_not: w.clone() }).collect::<Vec<_>>()
    };
    let assemble = |p: &crate::platform::Platform| {
        let v = analysis.for_platform(p);
        (
            v.is_some_and(|v| v.assemblable),
            v.and_then(|v| v.not_assemblable.as_ref().map(|l| l.line)),
            v.and_then(|v| v.not_assemblable_reason.clone()),
        )
    };
    PlanJson {
        platforms: plan
            .platforms
            .iter()
            .map(|r| match r {
                Ok(p) => PlatformPlanJson {
                    platform: p.platform.to_string(),
                    strategy: p.strategy.kind().to_string(),
                    reason: why(p),
                    hybrid: p.hybrid.clone(),
                    foreign_code: p.foreign_code,
                    assemblable: assemble(&p.platform).0,
                    assemble_line: assemble(&p.platform).1,
                    assemble_reason: assemble(&p.platform).2,
                    file: p.deciding.as_ref().map(|d| d.file.clone()),
                    line: p.deciding.as_ref().map(|d| d.line),
                    instruction: p.deciding.as_ref().map(|d| d.instruction.clone()),
                    detail: serde_json::to_value(&p.strategy).ok(),
                    tried: tried(&p.passed_over),
                    fixes: vec![],
                },
                Err(i) => PlatformPlanJson {
                    platform: i.platform.to_string(),
                    strategy: "impossible".into(),
                    reason: i.reason(),
                    hybrid: None,
                    foreign_code: i.foreign_code,
                    assemblable: assemble(&i.platform).0,
                    assemble_line: assemble(&i.platform).1,
                    assemble_reason: assemble(&i.platform).2,
                    file: i.deciding.as_ref().map(|d| d.file.clone()),
                    line: i.deciding.as_ref().map(|d| d.line),
                    instruction: i.deciding.as_ref().map(|d| d.instruction.clone()),
                    detail: None,
                    tried: tried(&i.tried),
                    fixes: i.fixes.clone(),
                },
            })
            .collect(),
        unknowns: analysis.unknowns.clone(),
    }
}
