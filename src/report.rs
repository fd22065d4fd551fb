//! report: everything archway tells the user while it works and when it is done: progress
//! lines (on stderr), the summary table, and the `--metadata-file` JSON. Data meant to be piped
//! (the published reference) goes to stdout.

use std::io::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

use crate::build::Built;
use crate::platform::Platform;
use crate::publish::{Entries, Published};

/// Serialises writes so lines from concurrent builds never interleave mid-line.
pub struct Log {
    out: Mutex<Box<dyn std::io::Write + Send>>,
}

impl Default for Log {
    fn default() -> Self {
        Log { out: Mutex::new(Box::new(std::io::stderr())) }
    }
}

impl Log {
    pub fn to_writer(w: Box<dyn std::io::Write + Send>) -> Self {
        Log { out: Mutex::new(w) }
    }

    pub fn line(&self, text: &str) {
        let mut o = self.out.lock().unwrap();
        let _ = writeln!(o, "{text}");
    }

    /// A line of a builder's own output, prefixed by its platform.
    pub fn build_output(&self, platform: &Platform, text: &str) {
        self.line(&format!("[{platform}] {text}"));
    }

    pub fn started(&self, platform: &Platform, builder: &str) {
        self.line(&format!("==> {platform}: building with {builder}"));
    }

    pub fn finished(&self, b: &Built) {
        self.line(&format!("==> {}: done in {} → {}", b.platform, secs(b.duration), b.descriptor.digest));
    }

    pub fn failed(&self, platform: &Platform, took: Duration) {
        self.line(&format!("==> {platform}: FAILED after {}", secs(took)));
    }
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
        out.push_str(&format!("written to {}\n", published.location));
    }
    for t in &published.tags {
        out.push_str(&format!("tagged {t}\n"));
    }
    out
}

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
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlatformMetadata {
    pub platform: String,
    pub digest: String,
    pub media_type: String,
    pub image_size: u64,
    pub duration_seconds: f64,
    pub attestations: Vec<String>,
}

pub fn metadata<'a>(built: &[(Built, Entries)], published: &'a Published) -> Metadata<'a> {
    Metadata {
        location: &published.location,
        digest: published.index.digest.to_string(),
        media_type: &published.index.media_type,
        size: published.index.size,
        tags: &published.tags,
        platforms: built
            .iter()
            .map(|(b, e)| PlatformMetadata {
                platform: b.platform.to_string(),
                digest: e.descriptors[0].digest.to_string(),
                media_type: e.descriptors[0].media_type.clone(),
                image_size: e.image_size,
                duration_seconds: (b.duration.as_secs_f64() * 10.0).round() / 10.0,
                attestations: e.descriptors[1..].iter().map(|d| d.digest.to_string()).collect(),
            })
            .collect(),
    }
}
