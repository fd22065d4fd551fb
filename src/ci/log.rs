//! log: the CI log as a [`Reporter`] — groups, annotated errors and warnings, and the final
//! line — in the dialect of each CI. The rules every CI shares live here once: groups do not nest,
//! a group is closed before the final line, and every line is passed through a [`Redactor`] so no
//! registered secret is ever written (the CI's own masker, where there is one, is a second net,
//! not the only one). Each provider file only spells lines ([`Dialect`]).

use std::borrow::Cow;
use std::io::Write;
use std::sync::Mutex;

use crate::secret::Secret;

/// What archway tells the person reading the CI log. Safe to share between build tasks; each
/// call writes whole lines.
pub trait Reporter: Send + Sync {
    /// Registers a secret: from now on it is replaced by `***` in every line, and on GitHub the
    /// runner is told to mask it too. The reporter from `Ci::reporter` has already registered
    /// every secret of the environment, before writing anything.
    fn mask(&self, secret: &Secret);
    /// Opens a collapsible group (closing the open one: groups do not nest).
    fn group_start(&self, title: &str);
    /// Closes the open group, if any.
    fn group_end(&self);
    /// An error, annotated at `file`:`line` where the CI can show it there.
    fn error(&self, file: Option<&str>, line: Option<u32>, message: &str);
    /// A warning, annotated like [`Reporter::error`].
    fn warning(&self, file: Option<&str>, line: Option<u32>, message: &str);
    fn info(&self, message: &str);
    /// Shown only when the CI's debug switch is on.
    fn debug(&self, message: &str);
    /// A line of a child's output (buildx), written as it is (but redacted).
    fn line(&self, text: &str);
    /// The last line of a run that worked.
    fn success(&self, final_line: &str);
    /// The error that ended a run, written once and last, as `crate::error::render` writes it:
    /// `error: …`, `  Caused by: …` lines, a blank line, `hint: …`. Each dialect spells the
    /// `error:` line as its CI marks a failure (GitHub `::error::`, Bitbucket `✖`); a missing
    /// `error: ` prefix is taken as said.
    fn failure(&self, error: &str);
    /// `text` with every registered secret replaced, for what is shown without being written
    /// through the reporter (the terminal view's live lines).
    fn redact(&self, text: &str) -> String {
        text.to_string()
    }
}

/// The kind of a message line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Debug,
    Info,
    Warning,
    Error,
}

/// How one CI spells each kind of line. Returns whole lines without their line break; the
/// text it is given has already been redacted and, except a child's output (`line`), passed
/// through [`visible`]. A child's output is the child's own (colours kept), so each dialect makes
/// sure no line of it can act on its CI's log: a workflow command, a section marker.
pub trait Dialect: Send {
    /// Lines that tell the CI's own masker about a secret. The only lines written unredacted,
    /// so only a dialect whose CI has a masker returns any.
    fn mask(&mut self, _secret: &str) -> Vec<String> {
        Vec::new()
    }
    fn group_start(&mut self, title: &str) -> Vec<String>;
    fn group_end(&mut self) -> Vec<String>;
    fn message(&mut self, level: Level, file: Option<&str>, line: Option<u32>, text: &str) -> Vec<String>;
    fn line(&mut self, text: &str) -> Vec<String> {
        lines(text)
    }
    /// The final line of a run that worked.
    fn success(&mut self, text: &str) -> Vec<String>;
    /// The error that ended a run (see [`Reporter::failure`]): its first line without the
    /// `error: ` prefix, then the lines after it as they are, blank ones included.
    fn failure(&mut self, headline: &str, rest: &[&str]) -> Vec<String>;
}

/// The lines of `text`, blank ones kept; an empty text is one blank line (`str::lines` yields
/// nothing for `""`, which would drop the blank line before an error's `hint:`).
pub(crate) fn lines(text: &str) -> Vec<String> {
    if text.is_empty() { vec![String::new()] } else { text.lines().map(String::from).collect() }
}

/// What `error::render` puts before an error's first line; each dialect spells it its own way.
const ERROR_PREFIX: &str = "error: ";

/// A rendered error cut for [`Dialect::failure`]: the first line without `error: `, and the
/// lines after it.
fn split_error(text: &str) -> (&str, Vec<&str>) {
    let mut lines = text.trim_end_matches(['\r', '\n']).lines();
    let first = lines.next().unwrap_or("");
    (first.strip_prefix(ERROR_PREFIX).unwrap_or(first), lines.collect())
}

/// `text` as archway may write it in a line of its own: every control character but the line
/// feed and the tab shown as its Unicode control picture (`ESC` → `␛`, `CR` → `␍`, `DEL` → `␡`;
/// C1 controls as `�`), a `\r\n` taken as a line feed. archway's own lines quote inputs, paths,
/// Dockerfile text and commit metadata; none of it may move the cursor or clear a terminal
/// (`ESC [2J`), link elsewhere (`ESC ]8`), end a line where the CI's log reader starts a new one
/// (GitHub's runner splits lines on a lone `CR` too) or open a GitLab section (its markers need
/// `CR ESC [0K`).
pub fn visible(text: &str) -> Cow<'_, str> {
    let shown = |c: char| c == '\n' || c == '\t' || !c.is_control();
    if text.chars().all(shown) {
        return Cow::Borrowed(text);
    }
    let text = text.replace("\r\n", "\n");
    Cow::Owned(
        text.chars()
            .map(|c| match c {
                c if shown(c) => c,
                '\u{7f}' => '\u{2421}',
                c if (c as u32) < 0x20 => char::from_u32(0x2400 + c as u32).unwrap_or('\u{fffd}'),
                _ => '\u{fffd}',
            })
            .collect(),
    )
}

/// Replaces every registered secret with `***`.
///
/// Each secret is registered whole and line by line (a multi-line secret may be printed one
/// line at a time), longest first so a secret containing another is replaced whole.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    needles: Vec<String>,
}

/// What a secret is replaced with.
pub const REDACTED: &str = "***";

impl Redactor {
    pub fn add(&mut self, secret: &Secret) {
        let value = secret.expose();
        let pieces = std::iter::once(value).chain(value.lines()).map(|p| p.trim_end_matches(['\r', '\n']));
        for p in pieces {
            if !p.is_empty() && !self.needles.iter().any(|n| n == p) {
                self.needles.push(p.to_string());
            }
        }
        self.needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
    }

    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for n in &self.needles {
            if out.contains(n.as_str()) {
                out = Cow::Owned(out.replace(n.as_str(), REDACTED));
            }
        }
        out
    }
}

/// The one [`Reporter`]: a dialect, a writer and the redactor, behind a lock.
pub struct CiLog<D: Dialect> {
    state: Mutex<State<D>>,
}

struct State<D> {
    dialect: D,
    out: Box<dyn Write + Send>,
    redactor: Redactor,
    group_open: bool,
}

impl<D: Dialect> CiLog<D> {
    pub fn new(dialect: D, out: Box<dyn Write + Send>) -> Self {
        CiLog { state: Mutex::new(State { dialect, out, redactor: Redactor::default(), group_open: false }) }
    }

    fn with<F: FnOnce(&mut D, &Redactor, &mut bool) -> Vec<String>>(&self, f: F) {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let st = &mut *guard;
        let lines = f(&mut st.dialect, &st.redactor, &mut st.group_open);
        for l in lines {
            // A log line that cannot be written is not worth failing a build for.
            let _ = writeln!(st.out, "{}", st.redactor.redact(&l));
        }
        let _ = st.out.flush();
    }
}

impl<D: Dialect> Reporter for CiLog<D> {
    fn mask(&self, secret: &Secret) {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let st = &mut *guard;
        st.redactor.add(secret);
        for l in st.dialect.mask(secret.expose()) {
            let _ = writeln!(st.out, "{l}");
        }
        let _ = st.out.flush();
    }

    fn group_start(&self, title: &str) {
        self.with(|d, r, open| {
            let mut lines = if *open { d.group_end() } else { Vec::new() };
            lines.extend(d.group_start(&own(r, title)));
            *open = true;
            lines
        });
    }

    fn group_end(&self) {
        self.with(|d, _, open| if std::mem::take(open) { d.group_end() } else { Vec::new() });
    }

    fn error(&self, file: Option<&str>, line: Option<u32>, message: &str) {
        self.with(|d, r, _| d.message(Level::Error, file.map(|f| own(r, f)).as_deref(), line, &own(r, message)));
    }

    fn warning(&self, file: Option<&str>, line: Option<u32>, message: &str) {
        self.with(|d, r, _| d.message(Level::Warning, file.map(|f| own(r, f)).as_deref(), line, &own(r, message)));
    }

    fn info(&self, message: &str) {
        self.with(|d, r, _| d.message(Level::Info, None, None, &own(r, message)));
    }

    fn debug(&self, message: &str) {
        self.with(|d, r, _| d.message(Level::Debug, None, None, &own(r, message)));
    }

    fn line(&self, text: &str) {
        self.with(|d, r, _| d.line(&r.redact(text)));
    }

    fn success(&self, final_line: &str) {
        self.finish(|d, r| d.success(&own(r, final_line)));
    }

    fn redact(&self, text: &str) -> String {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).redactor.redact(text).into_owned()
    }

    fn failure(&self, error: &str) {
        self.finish(|d, r| {
            let error = own(r, error);
            let (headline, rest) = split_error(&error);
            d.failure(headline, &rest)
        });
    }
}

/// A text of archway's own (not a child's output), as a dialect gets it: redacted, then
/// [`visible`] (in that order: a secret may hold a control character).
fn own(r: &Redactor, text: &str) -> String {
    visible(&r.redact(text)).into_owned()
}

impl<D: Dialect> CiLog<D> {
    /// Closes the open group, then writes the run's last lines.
    fn finish(&self, last: impl FnOnce(&mut D, &Redactor) -> Vec<String>) {
        self.with(|d, r, open| {
            let mut lines = if std::mem::take(open) { d.group_end() } else { Vec::new() };
            lines.extend(last(d, r));
            lines
        });
    }
}

/// `file:line: ` or `file: ` or nothing, for dialects that write locations as text.
pub(crate) fn location_prefix(file: Option<&str>, line: Option<u32>) -> String {
    match (file, line) {
        (Some(f), Some(l)) => format!("{f}:{l}: "),
        (Some(f), None) => format!("{f}: "),
        _ => String::new(),
    }
}

/// A `Write` that keeps what is written, for the tests of the dialects.
#[cfg(test)]
pub(crate) mod capture {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    pub(crate) struct Capture(Arc<Mutex<Vec<u8>>>);

    impl Capture {
        pub(crate) fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
        }
    }

    impl Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::capture::Capture;
    use super::*;

    #[test]
    fn visible_shows_control_characters() {
        assert!(matches!(visible("plain\ttext\nnext ünï"), Cow::Borrowed(_)));
        assert_eq!(visible("a\x1b[2Jb\rc\r\nd\x7f\u{9b}e\0"), "a\u{241b}[2Jb\u{240d}c\nd\u{2421}\u{fffd}e\u{2400}");
    }

    /// A secret is redacted before control characters are shown, so one holding a `CR` is still
    /// found; a child's line keeps its escapes (its colours), archway's own lines do not.
    #[test]
    fn own_lines_are_visible_child_lines_are_not() {
        let cap = Capture::default();
        let log = CiLog::new(Plain, Box::new(cap.clone()));
        log.mask(&Secret::new("s\r3"));
        log.info("x s\r3 \x1b[2J\ry");
        log.line("\x1b[31mred\x1b[0m");
        log.group_start("t\x1b]8;;http://e\x07");
        log.success("ok\r::error::x");
        assert_eq!(
            cap.text(),
            "x *** \u{241b}[2J\u{240d}y\n\x1b[31mred\x1b[0m\n[t\u{241b}]8;;http://e\u{2407}\n]\nok ok\u{240d}::error::x\n"
        );
    }

    #[test]
    fn redacts_longest_first_and_line_by_line() {
        let mut r = Redactor::default();
        r.add(&Secret::new("abc"));
        r.add(&Secret::new("abcdef"));
        r.add(&Secret::new("line1\nline2\n"));
        r.add(&Secret::new(""));
        assert_eq!(r.redact("x abcdef abc y"), "x *** *** y");
        assert_eq!(r.redact("got line2 only"), "got *** only");
        assert_eq!(r.redact("nothing here"), "nothing here");
    }

    struct Plain;
    impl Dialect for Plain {
        fn group_start(&mut self, title: &str) -> Vec<String> {
            vec![format!("[{title}")]
        }
        fn group_end(&mut self) -> Vec<String> {
            vec!["]".into()]
        }
        fn message(&mut self, _: Level, _: Option<&str>, _: Option<u32>, text: &str) -> Vec<String> {
            vec![text.into()]
        }
        fn success(&mut self, text: &str) -> Vec<String> {
            vec![format!("ok {text}")]
        }
        fn failure(&mut self, headline: &str, rest: &[&str]) -> Vec<String> {
            std::iter::once(format!("failed {headline}")).chain(rest.iter().map(|l| format!("|{l}"))).collect()
        }
    }

    #[test]
    fn groups_do_not_nest_and_close_before_the_end() {
        let cap = Capture::default();
        let log = CiLog::new(Plain, Box::new(cap.clone()));
        log.mask(&Secret::new("s3cret"));
        log.group_start("a");
        log.group_start("b s3cret");
        log.info("in b");
        log.group_end();
        log.group_end();
        log.group_start("c");
        log.success("done");
        assert_eq!(cap.text(), "[a\n]\n[b ***\nin b\n]\n[c\n]\nok done\n");
    }

    #[test]
    fn blank_lines_are_kept() {
        assert_eq!(lines(""), [""]);
        assert_eq!(lines("a\n\nb\n"), ["a", "", "b"]);
        let cap = Capture::default();
        let log = CiLog::new(Plain, Box::new(cap.clone()));
        log.line("");
        log.line("x\n\ny");
        assert_eq!(cap.text(), "\nx\n\ny\n");
    }

    #[test]
    fn failure_is_cut_after_its_error_prefix_and_redacted() {
        let cap = Capture::default();
        let log = CiLog::new(Plain, Box::new(cap.clone()));
        log.mask(&Secret::new("s3cret"));
        log.group_start("build");
        log.failure("error: push failed for s3cret\n  Caused by: 401\n\nhint: log in\n");
        assert_eq!(cap.text(), "[build\n]\nfailed push failed for ***\n|  Caused by: 401\n|\n|hint: log in\n");
        let cap = Capture::default();
        let log = CiLog::new(Plain, Box::new(cap.clone()));
        log.failure("no prefix");
        assert_eq!(cap.text(), "failed no prefix\n");
    }
}
