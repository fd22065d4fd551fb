//! Errors the user sees: what kind of failure (which decides the exit code), what went wrong,
//! and a hint. Rendered once, in `main`, as `error:` / `Caused by:` / `hint:`.

use std::fmt;

use crate::builder::credentials::CredentialError;
use crate::copy::CopyError;
use crate::dockerfile::AnalysisError;
use crate::publish::PublishError;
use crate::registry::RegistryError;

/// Why archway stopped; decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A build, push or registry operation failed (exit 1).
    Failure,
    /// The input was wrong; nothing was built or pushed (exit 2).
    Input,
    /// Some platform cannot be built on this runner; nothing was built or pushed (exit 3).
    Impossible,
}

impl ErrorKind {
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorKind::Failure => 1,
            ErrorKind::Input => 2,
            ErrorKind::Impossible => 3,
        }
    }
}

/// An error with a kind and an optional hint, meant to be read by a person.
#[derive(Debug)]
pub struct UserError {
    pub kind: ErrorKind,
    pub message: String,
    pub hint: Option<String>,
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl UserError {
    pub fn input(message: impl Into<String>) -> Self {
        UserError { kind: ErrorKind::Input, message: message.into(), hint: None, source: None }
    }
    pub fn failure(message: impl Into<String>) -> Self {
        UserError { kind: ErrorKind::Failure, message: message.into(), hint: None, source: None }
    }
    pub fn impossible(message: impl Into<String>) -> Self {
        UserError { kind: ErrorKind::Impossible, message: message.into(), hint: None, source: None }
    }
    /// An input that cannot be used: `invalid {input}`, the reason on its own `Caused by:`
    /// line. `input` names it as the user typed it: ``"`--platform linux/sparc`"``.
    pub fn invalid_input(input: impl fmt::Display, cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        UserError::input(format!("invalid {input}")).caused_by(cause)
    }
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
    pub fn caused_by(mut self, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        self.source = Some(source.into());
        self
    }
}

impl fmt::Display for UserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for UserError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// A Dockerfile archway cannot read is an input error (exit 2), with the analysis' own hint;
/// an invalid `--platform` value in it is the cause.
impl From<AnalysisError> for UserError {
    fn from(e: AnalysisError) -> Self {
        let user = UserError::input(e.to_string()).hint(e.hint());
        match e {
            AnalysisError::Platform { error, .. } => user.caused_by(*error),
            _ => user,
        }
    }
}

/// The fix a layer's own error suggests, for an error that reaches [`render`] without a
/// `UserError` hint: so a hint is never lost because a caller passed the error on with `?`.
fn layer_hint(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    if let Some(e) = e.downcast_ref::<AnalysisError>() {
        return Some(e.hint());
    }
    if let Some(e) = e.downcast_ref::<PublishError>() {
        return e.hint();
    }
    if let Some(e) = e.downcast_ref::<CopyError>() {
        return e.hint();
    }
    if let Some(e) = e.downcast_ref::<CredentialError>() {
        return Some(e.hint());
    }
    if let Some(e) = e.downcast_ref::<RegistryError>() {
        return e.hint();
    }
    None
}

/// What goes before each cause: `error::render`'s lines line up under it.
const CAUSED_BY: &str = "  Caused by: ";

/// Renders an error chain and picks the exit code: the first `UserError` in the chain decides
/// the kind (none: a failure, exit 1); the first one with a hint gives the hint, else the first
/// layer error that has one (`AnalysisError::hint`, `PublishError::hint`, …).
///
/// ```text
/// error: <the outermost message>
///   Caused by: <each source, outermost first; its further lines indented under it>
///
/// hint: <the hint>
/// ```
///
/// A cause that only repeats the line above it is left out.
pub fn render(err: &anyhow::Error) -> (String, u8) {
    let mut out = format!("error: {err}\n");
    let mut kind = None;
    let mut hint = None;
    let mut fallback_hint = None;
    let mut previous = err.to_string();
    for (i, cause) in err.chain().enumerate() {
        if let Some(u) = cause.downcast_ref::<UserError>() {
            kind = kind.or(Some(u.kind));
            hint = hint.or_else(|| u.hint.clone());
        } else if fallback_hint.is_none() {
            fallback_hint = layer_hint(cause);
        }
        let text = cause.to_string();
        if i == 0 || text == previous {
            continue;
        }
        let indent = " ".repeat(CAUSED_BY.len());
        for (n, line) in text.lines().enumerate() {
            match n {
                0 => out.push_str(CAUSED_BY),
                _ if line.is_empty() => {}
                _ => out.push_str(&indent),
            }
            out.push_str(line);
            out.push('\n');
        }
        previous = text;
    }
    if let Some(h) = hint.or(fallback_hint) {
        out.push_str(&format!("\nhint: {h}\n"));
    }
    (out, kind.unwrap_or(ErrorKind::Failure).exit_code())
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context as _;

    #[test]
    fn renders_chain_hint_and_code() {
        let e: anyhow::Result<()> =
            Err(UserError::input("platform `linux/sparc` is unknown").hint("use `linux/arm64`").into());
        let e = e.context("reading `--platform`").unwrap_err();
        let (text, code) = render(&e);
        assert_eq!(code, 2);
        assert_eq!(
            text,
            "error: reading `--platform`\n  Caused by: platform `linux/sparc` is unknown\n\nhint: use `linux/arm64`\n"
        );
        let (text, code) = render(&anyhow::anyhow!("boom"));
        assert_eq!((text.as_str(), code), ("error: boom\n", 1));
    }

    #[test]
    fn input_error_keeps_its_cause_on_its_own_line() {
        let cause = "linux/sparc".parse::<crate::platform::Platform>().unwrap_err();
        let e =
            UserError::invalid_input("`--platform linux/sparc`", cause).hint("write platforms as `os/arch[/variant]`");
        let (text, code) = render(&e.into());
        assert_eq!(code, 2);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "error: invalid `--platform linux/sparc`");
        assert!(lines[1].starts_with("  Caused by: platform `linux/sparc` has unknown architecture `sparc`"), "{text}");
        assert_eq!(lines[2..], ["", "hint: write platforms as `os/arch[/variant]`"]);
    }

    #[test]
    fn the_outer_user_error_decides_the_kind_an_inner_one_may_give_the_hint() {
        let inner = UserError::input("`Dockerfile:2`: unknown instruction `RUNN`").hint("write `RUN`");
        let e = UserError::failure("planning failed").caused_by(inner);
        let (text, code) = render(&e.into());
        assert_eq!(code, 1);
        assert_eq!(
            text,
            "error: planning failed\n  Caused by: `Dockerfile:2`: unknown instruction `RUNN`\n\nhint: write `RUN`\n"
        );
    }

    #[test]
    fn multi_line_causes_are_indented_and_repeats_dropped() {
        let tail = anyhow::anyhow!("`docker buildx build` exited with 1\n  │ step 3\n\n  │ step 4");
        let e =
            UserError::failure("1 of 2 platforms failed").caused_by(tail.context("linux/arm64").into_boxed_dyn_error());
        let (text, _) = render(&e.into());
        assert_eq!(
            text,
            "error: 1 of 2 platforms failed\n  Caused by: linux/arm64\n  Caused by: `docker buildx build` exited \
             with 1\n               │ step 3\n\n               │ step 4\n"
        );
        let (text, _) = render(&anyhow::anyhow!("no answer").context("no answer").context("probing"));
        assert_eq!(text, "error: probing\n  Caused by: no answer\n");
    }

    fn analysis_error(text: &str) -> AnalysisError {
        let amd64: crate::platform::Platform = "linux/amd64".parse().unwrap();
        crate::dockerfile::analyze(&crate::dockerfile::AnalyzeInput {
            text,
            file: "Dockerfile",
            build_args: &[],
            target: None,
            build_platform: &amd64,
            platforms: std::slice::from_ref(&amd64),
        })
        .unwrap_err()
    }

    #[test]
    fn a_dockerfile_error_is_an_input_error_with_its_own_hint() {
        let (text, code) = render(&UserError::from(analysis_error("FROM alpine\nRUNN make\n")).into());
        assert_eq!(code, 2);
        assert_eq!(text, "error: Dockerfile:2: unknown instruction `RUNN`\n\nhint: did you mean `RUN`?\n");
        let (text, _) = render(&UserError::from(analysis_error("FROM --platform=linux/sparc alpine\n")).into());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "error: Dockerfile:1: `--platform=linux/sparc` gives `linux/sparc` (building for linux/amd64), which is \
             not a platform"
        );
        assert!(lines[1].starts_with("  Caused by: platform `linux/sparc` has unknown architecture `sparc`"), "{text}");
        assert!(lines[3].starts_with("hint: write a platform as `os/arch[/variant]`"), "{text}");
    }

    #[test]
    fn a_layer_error_passed_on_with_question_mark_keeps_its_hint() {
        let e = anyhow::Error::new(analysis_error("FROM alpine\nRUNN make\n")).context("planning");
        let (text, code) = render(&e);
        assert_eq!(code, 1, "no UserError: a failure");
        assert_eq!(
            text,
            "error: planning\n  Caused by: Dockerfile:2: unknown instruction `RUNN`\n\nhint: did you mean `RUN`?\n"
        );
        // A UserError's own hint wins.
        let e = UserError::failure("planning failed")
            .hint("run `archway plan`")
            .caused_by(analysis_error("FROM alpine\nRUNN x\n"));
        assert!(render(&e.into()).0.ends_with("\n\nhint: run `archway plan`\n"));
    }

    /// The contract in every CI's log: the error once, the blank line before the hint kept, the
    /// `error:` line spelled as the CI marks failures, nothing after it.
    #[test]
    fn printed_once_in_every_dialect() {
        use crate::ci::{self, Provider};
        let e = UserError::input("build context `/nonexistent` is not a directory")
            .hint("pass the directory holding your sources, e.g. `archway build .`")
            .caused_by(std::io::Error::from(std::io::ErrorKind::NotFound));
        let (text, code) = render(&e.into());
        assert_eq!(code, 2);
        let expected = [
            (
                Provider::Local,
                "error: build context `/nonexistent` is not a directory\n  Caused by: entity not found\n\nhint: pass the directory holding your sources, e.g. `archway build .`\n",
            ),
            (
                Provider::GitHub,
                "::error::build context `/nonexistent` is not a directory%0A  Caused by: entity not found%0A%0Ahint: pass the directory holding your sources, e.g. `archway build .`\n",
            ),
            (
                Provider::GitLab,
                "\x1b[31;1merror:\x1b[0m build context `/nonexistent` is not a directory\n  Caused by: entity not found\n\n\x1b[36;1mhint:\x1b[0m pass the directory holding your sources, e.g. `archway build .`\n",
            ),
            (
                Provider::Bitbucket { pipe: true },
                "\x1b[31m✖ build context `/nonexistent` is not a directory\x1b[0m\n  Caused by: entity not found\n\nhint: pass the directory holding your sources, e.g. `archway build .`\n",
            ),
        ];
        for (provider, want) in expected {
            let cap = crate::ci::log::capture::Capture::default();
            let reporter = ci::for_provider(provider).reporter(&ci::Env::new(), Box::new(cap.clone()));
            let log = crate::report::Log::new(reporter, false);
            // As `main` calls it.
            log.failure(text.trim_end());
            assert_eq!(cap.text(), want, "{provider:?}");
        }
    }
}
