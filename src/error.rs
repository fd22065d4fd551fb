//! Errors the user sees: what kind of failure (which decides the exit code), what went wrong,
//! and a hint. Rendered once, in `main`, as `error:` / `Caused by:` / `hint:`.

use std::fmt;

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

/// What goes before each cause: `error::render`'s lines line up under it.
const CAUSED_BY: &str = "  Caused by: ";

/// Renders an error chain and picks the exit code: the first `UserError` in the chain decides
/// the kind (none: a failure, exit 1), the first one with a hint gives the hint.
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
    let mut previous = err.to_string();
    for (i, cause) in err.chain().enumerate() {
        if let Some(u) = cause.downcast_ref::<UserError>() {
            kind = kind.or(Some(u.kind));
            hint = hint.or_else(|| u.hint.clone());
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
    if let Some(h) = hint {
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
        let e = UserError::input("`--platform linux/sparc` is not a list of platforms")
            .hint("write platforms as `os/arch[/variant]`")
            .caused_by(cause);
        let (text, code) = render(&e.into());
        assert_eq!(code, 2);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "error: `--platform linux/sparc` is not a list of platforms");
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
