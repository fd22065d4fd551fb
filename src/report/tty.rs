//! tty: the live terminal view of `--progress tty`. One line per platform, redrawn in place by
//! `indicatif`: a spinner, the platform, its strategy, the time so far and what it is doing
//! now (buildx's current step and its last output, the instruction the assembler dispatches,
//! the bytes uploaded and the rate). A finished platform collapses to one line
//! (`✔ linux/arm64  assembled  1.2s  sha256:…`); a failed one prints its builder's last lines
//! between dividers. Every other line (the plan, the summary) is printed above the live lines,
//! through the run's [`Reporter`], so secrets are redacted and nothing is left behind.
//!
//! Only made when stderr is a terminal ([`crate::inputs::Invocation::progress`]); `indicatif`
//! draws nothing anywhere else.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use super::{human_size, secs};
use crate::ci::Reporter;
use crate::platform::Platform;

/// Lines of a failed platform's builder output shown between the dividers.
const TAIL: usize = 20;
/// How often spinners and times are redrawn.
const TICK: Duration = Duration::from_millis(100);
/// The spinner's frames.
const FRAMES: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

pub struct Tty {
    multi: MultiProgress,
    color: bool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Platforms in the order they started; their lines are drawn, and collapse, in it.
    order: Vec<Platform>,
    rows: HashMap<Platform, Row>,
    /// The last builder lines shown for a failure, and whose, so a build of several platforms
    /// that failed as one shows them once.
    shown: Option<(Platform, Vec<String>)>,
}

struct Row {
    bar: ProgressBar,
    strategy: String,
    /// buildx's step titles by number, the current step and its last output.
    titles: HashMap<u64, String>,
    current: Option<u64>,
    step: String,
    detail: String,
    tail: VecDeque<String>,
    /// When the push started, and what it sent once done (`12.3 MiB at 40.0 MiB/s`).
    push_started: Option<Instant>,
    pushed: Option<String>,
    /// The collapsed line, once the platform is done.
    done: Option<String>,
}

impl Tty {
    pub fn new(color: bool) -> Tty {
        console::set_colors_enabled(color);
        console::set_colors_enabled_stderr(color);
        Tty { multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()), color, state: Mutex::default() }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_string() }
    }

    fn width() -> usize {
        let (_, cols) = console::Term::stderr().size();
        usize::from(cols).max(20)
    }

    /// Runs `f`, which prints lines, with the live lines out of the way: they are printed
    /// above them (or as they are, when there are none).
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.multi.suspend(f)
    }

    /// A platform starts: its live line appears, below the others.
    pub fn started(&self, platform: &Platform, strategy: &str) {
        // The last frame is the finished bar's; a finished bar shows its own line instead.
        let frames: Vec<String> = FRAMES.iter().map(|f| self.paint("36", f)).chain([String::new()]).collect();
        let style = ProgressStyle::with_template("{spinner} {prefix} {secs:>6}  {wide_msg}")
            .expect("a valid template")
            .with_key("secs", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{}", secs(s.elapsed()));
            })
            .tick_strings(&frames.iter().map(String::as_str).collect::<Vec<_>>());
        let bar = self.multi.add(ProgressBar::new_spinner().with_style(style));
        let mut st = self.state.lock().unwrap();
        if !st.order.contains(platform) {
            st.order.push(platform.clone());
        }
        st.rows.insert(
            platform.clone(),
            Row {
                bar: bar.clone(),
                strategy: strategy.to_string(),
                titles: HashMap::new(),
                current: None,
                step: "starting".into(),
                detail: String::new(),
                tail: VecDeque::new(),
                push_started: None,
                pushed: None,
                done: None,
            },
        );
        let w = st.order.iter().map(|p| p.to_string().chars().count()).max().unwrap_or(0);
        for p in &st.order {
            if let Some(r) = st.rows.get(p).filter(|r| r.done.is_none()) {
                r.bar.set_prefix(format!("{:<w$}  {:<9}", p.to_string(), r.strategy));
            }
        }
        bar.set_message("starting");
        bar.enable_steady_tick(TICK);
    }

    /// A line of a platform's builder output: the step it names, kept for a failure.
    pub fn output(&self, reporter: &dyn Reporter, platform: &Platform, line: &str) {
        let mut st = self.state.lock().unwrap();
        let Some(row) = st.rows.get_mut(platform).filter(|r| r.done.is_none()) else { return };
        if !line.trim().is_empty() {
            if row.tail.len() == TAIL {
                row.tail.pop_front();
            }
            row.tail.push_back(line.to_string());
        }
        if observe(row, line) {
            let msg = if row.detail.is_empty() { row.step.clone() } else { format!("{} › {}", row.step, row.detail) };
            row.bar.set_message(reporter.redact(&msg).replace(['\r', '\n', '\t'], " "));
        }
    }

    /// Bytes sent so far of a platform's push.
    pub fn transfer(&self, platform: &Platform, done: u64, total: u64) {
        let mut st = self.state.lock().unwrap();
        let Some(row) = st.rows.get_mut(platform).filter(|r| r.done.is_none()) else { return };
        let started = *row.push_started.get_or_insert_with(Instant::now);
        row.bar.set_message(format!(
            "uploading {}/{}  {}",
            human_size(done),
            human_size(total),
            rate(done, started.elapsed())
        ));
    }

    /// The push is done: what it sent, for the collapsed line.
    pub fn pushed(&self, platform: &Platform, bytes: u64, took: Duration) {
        let mut st = self.state.lock().unwrap();
        if let Some(row) = st.rows.get_mut(platform) {
            row.pushed = Some(if bytes == 0 {
                "nothing new to push".into()
            } else {
                format!("pushed {} at {}", human_size(bytes), rate(bytes, took))
            });
        }
    }

    /// A platform is done: its line collapses.
    pub fn finished(&self, reporter: &dyn Reporter, platform: &Platform, took: Duration, digest: &str) {
        self.collapse(reporter, platform, took, true, digest);
    }

    /// A platform failed: its builder's last lines between dividers, then its line collapses.
    pub fn failed(&self, reporter: &dyn Reporter, platform: &Platform, took: Duration) {
        let tail: Vec<String> = {
            let st = self.state.lock().unwrap();
            st.rows.get(platform).map(|r| r.tail.iter().cloned().collect()).unwrap_or_default()
        };
        let same = {
            let mut st = self.state.lock().unwrap();
            let same = st.shown.as_ref().filter(|(_, t)| *t == tail).map(|(p, _)| p.clone());
            if same.is_none() {
                st.shown = Some((platform.clone(), tail.clone()));
            }
            same
        };
        if let Some(first) = same {
            self.multi
                .suspend(|| reporter.line(&self.paint("2", &format!("── {platform}: the same lines as {first}"))));
        } else if !tail.is_empty() {
            let width = Self::width().min(100);
            let title = format!("── {platform}: the last lines of its builder ");
            let fill = width.saturating_sub(console::measure_text_width(&title));
            self.multi.suspend(|| {
                reporter.line(&self.paint("2", &format!("{title}{}", "─".repeat(fill))));
                for l in &tail {
                    reporter.line(&console::truncate_str(l, Self::width(), "…"));
                }
                reporter.line(&self.paint("2", &"─".repeat(width)));
            });
        }
        self.collapse(reporter, platform, took, false, "failed");
    }

    /// A platform whose build stopped because another platform of the same invocation failed.
    pub fn stopped(&self, reporter: &dyn Reporter, platform: &Platform, took: Duration) {
        self.collapse(reporter, platform, took, false, "stopped: another platform failed");
    }

    fn collapse(&self, reporter: &dyn Reporter, platform: &Platform, took: Duration, ok: bool, what: &str) {
        let mut st = self.state.lock().unwrap();
        let w = st.order.iter().map(|p| p.to_string().chars().count()).max().unwrap_or(0);
        let Some(row) = st.rows.get_mut(platform) else { return };
        let mark = if ok { self.paint("32", "✔") } else { self.paint("31", "✘") };
        let pushed = row.pushed.as_deref().map(|p| format!("  {p}")).unwrap_or_default();
        let line =
            format!("{mark} {:<w$}  {:<9} {:>6}  {what}{pushed}", platform.to_string(), row.strategy, secs(took));
        let line = reporter.redact(&line);
        row.bar.set_style(ProgressStyle::with_template("{wide_msg}").expect("a valid template"));
        row.bar.finish_with_message(line.clone());
        row.done = Some(line);
        if st.rows.values().all(|r| r.done.is_some()) {
            self.flush(reporter, &mut st);
        }
    }

    /// Every platform is done: their lines become ordinary lines, in the order they started.
    fn flush(&self, reporter: &dyn Reporter, st: &mut State) {
        let lines: Vec<String> =
            st.order.iter().filter_map(|p| st.rows.get(p)).map(|r| r.done.clone().unwrap_or_default()).collect();
        for r in st.rows.values() {
            r.bar.finish_and_clear();
            self.multi.remove(&r.bar);
        }
        let _ = self.multi.clear();
        st.rows.clear();
        st.order.clear();
        let width = Self::width();
        for l in lines {
            reporter.line(&console::truncate_str(&l, width, "…"));
        }
    }

    /// The run ends: any live line left is removed.
    pub fn close(&self) {
        let mut st = self.state.lock().unwrap();
        for r in st.rows.values() {
            r.bar.finish_and_clear();
            self.multi.remove(&r.bar);
        }
        let _ = self.multi.clear();
        st.rows.clear();
        st.order.clear();
    }
}

use super::rate;

/// Takes in one line of a builder's output; says whether the shown step changed.
///
/// buildx's plain progress: a step's first line is its title (`#7 [2/3] RUN make`, with the
/// platform first when several build at once: `#7 [linux/arm64 2/3] RUN make`), its later
/// lines its output (`#7 0.512 cc -o app`), progress (`#6 sha256:… 1.2MB / 3.4MB 0.5s`) or
/// end (`#7 DONE 1.2s`). Any other line (the assembler's `[stage] COPY …`, the classic
/// builder's `Step 2/5 : RUN make`) is a step of its own.
fn observe(row: &mut Row, line: &str) -> bool {
    let line = line.trim_end();
    if line.trim().is_empty() {
        return false;
    }
    if let Some((n, body)) = line.strip_prefix('#').and_then(|r| r.split_once(' '))
        && let Ok(n) = n.parse::<u64>()
    {
        if let std::collections::hash_map::Entry::Vacant(e) = row.titles.entry(n) {
            let title = without_platform(body);
            e.insert(title.clone());
            row.current = Some(n);
            row.step = title;
            row.detail.clear();
            return true;
        }
        if row.current != Some(n) {
            row.current = Some(n);
            row.step = row.titles[&n].clone();
            row.detail.clear();
        }
        let first = body.split(' ').next().unwrap_or("");
        row.detail = if first == "DONE" || first == "CACHED" {
            String::new()
        } else if first.parse::<f64>().is_ok() {
            body[first.len()..].trim().to_string()
        } else {
            body.trim().to_string()
        };
        return true;
    }
    row.current = None;
    row.step = line.trim().to_string();
    row.detail.clear();
    true
}

/// A step title without the platform buildx puts first when it builds several at once.
fn without_platform(body: &str) -> String {
    if let Some(inner) = body.strip_prefix('[')
        && let Some((first, rest)) = inner.split_once(' ')
        && first.contains('/')
        && !first.contains(']')
    {
        return format!("[{rest}");
    }
    body.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> Row {
        Row {
            bar: ProgressBar::hidden(),
            strategy: "native".into(),
            titles: HashMap::new(),
            current: None,
            step: String::new(),
            detail: String::new(),
            tail: VecDeque::new(),
            push_started: None,
            pushed: None,
            done: None,
        }
    }

    #[test]
    fn follows_buildx_steps() {
        let mut r = row();
        for (line, step, detail) in [
            (
                "#1 [internal] load build definition from Dockerfile",
                "[internal] load build definition from Dockerfile",
                "",
            ),
            (
                "#1 transferring dockerfile: 72B done",
                "[internal] load build definition from Dockerfile",
                "transferring dockerfile: 72B done",
            ),
            ("#5 [linux/arm64 stage-1 2/3] RUN make", "[stage-1 2/3] RUN make", ""),
            ("#5 0.512 cc -o app main.c", "[stage-1 2/3] RUN make", "cc -o app main.c"),
            ("#1 DONE 0.1s", "[internal] load build definition from Dockerfile", ""),
            ("#5 DONE 1.2s", "[stage-1 2/3] RUN make", ""),
            ("[build] COPY . /src", "[build] COPY . /src", ""),
        ] {
            observe(&mut r, line);
            assert_eq!((r.step.as_str(), r.detail.as_str()), (step, detail), "{line}");
        }
        assert_eq!(without_platform("[linux/amd64->arm64 build 1/2] RUN go build"), "[build 1/2] RUN go build");
        assert_eq!(without_platform("[2/2] RUN x"), "[2/2] RUN x");
    }
}
