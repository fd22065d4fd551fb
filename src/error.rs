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

/// Renders an error chain and picks the exit code: the first `UserError` in the chain decides
/// the kind and hint; anything else is a failure (exit 1).
pub fn render(err: &anyhow::Error) -> (String, u8) {
    let mut out = format!("error: {err}\n");
    let mut kind = ErrorKind::Failure;
    let mut hint = None;
    for (i, cause) in err.chain().enumerate() {
        if i > 0 {
            out.push_str(&format!("  Caused by: {cause}\n"));
        }
        if let Some(u) = cause.downcast_ref::<UserError>()
            && hint.is_none()
        {
            kind = u.kind;
            hint = u.hint.clone();
        }
    }
    if let Some(h) = hint {
        out.push_str(&format!("\nhint: {h}\n"));
    }
    (out, kind.exit_code())
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
        let (_, code) = render(&anyhow::anyhow!("boom"));
        assert_eq!(code, 1);
    }
}
