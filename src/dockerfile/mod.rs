//! dockerfile: what a Dockerfile means for each target platform. Pure: no I/O.
//!
//! Split by job as BuildKit splits `frontend/dockerfile`: `parse` reads the text as BuildKit's
//! parser does (directives, continuations, heredocs, JSON and shell forms, flags), with `json`
//! (the exec form's reader) and `dump` (BuildKit's `Node.Dump()`, for conformance tests);
//! `shell` is BuildKit's shell-word lexer (quotes, escapes, `${VAR…}` expansion); `analysis`
//! gives the instructions meaning: global ARGs and their expansion, stages and their platforms,
//! the stages the target needs, and — per target platform — whether foreign code would run (a
//! RUN in a needed stage whose platform is not the build platform).
//!
//! Why archway's own parser and not the `parse-dockerfile` crate (0.1.7): BuildKit is the
//! oracle, and `tests/dockerfile_conformance.rs` holds this parser to BuildKit's own parser
//! cases, compared as `Node.Dump()` output; that crate's typed AST has no such form. It reads
//! directives, `# escape=` and continuations, but not everything those cases and real files use:
//! - RUN heredocs only where `<<` opens the arguments, one per RUN: `RUN python3 <<EOF`,
//!   `RUN 3<<EOF` and `RUN <<A <<B` are not read as BuildKit reads them;
//! - no shell lexer: `${VAR:-x}` and the like stay unexpanded, and which platform a stage runs
//!   on depends on expanding `FROM` and `--platform` exactly as BuildKit does;
//! - an unknown instruction fails the whole parse with a message; BuildKit's parser keeps it
//!   for the next layer, which here names the line and suggests the instruction meant.

pub mod analysis;
mod dump;
mod json;
pub mod parse;
pub mod shell;

use serde::{Deserialize, Serialize};

use crate::platform::Platform;

pub use analysis::{AnalysisError, analyze};
pub use dump::{dump, go_quote};
pub use parse::{
    DEFAULT_ESCAPE, Directive, Heredoc, Node, ParseError, ParseErrorKind, Parsed, Warning, parse, parse_heredoc,
    parse_words,
};
pub use shell::{Expansion, LexError, ShellLex};

/// What `analyze` needs besides the text.
#[derive(Debug, Clone)]
pub struct AnalyzeInput<'a> {
    /// The Dockerfile's text.
    pub text: &'a str,
    /// How to name the file in locations (`Dockerfile`, `docker/Dockerfile.prod`).
    pub file: &'a str,
    /// `--build-arg` values (they override ARG defaults, global and per stage).
    pub build_args: &'a [(String, String)],
    /// `--target`; `None` means the last stage.
    pub target: Option<&'a str>,
    /// The platform the build runs on (`BUILDPLATFORM`).
    pub build_platform: &'a Platform,
    /// The platforms to build (`TARGETPLATFORM`, one at a time).
    pub platforms: &'a [Platform],
}

/// Where an instruction is: file, 1-based line, the stage it is in, and its text (first line,
/// trimmed, at most ~80 characters).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    pub file: String,
    pub line: usize,
    pub stage: String,
    pub instruction: String,
}

/// One stage as declared and, where it depends on the target platform, as resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stage {
    /// `AS name`, or the stage's index as a string when unnamed.
    pub name: String,
    /// The FROM image after global ARG expansion (`scratch`, an image, or another stage's name).
    pub base: String,
    /// The `--platform` value after expansion of globals (still holding `$TARGETPLATFORM` and
    /// the like, which are resolved per platform); `None` when absent.
    pub platform_flag: Option<String>,
    /// Line of its FROM.
    pub line: usize,
    /// Number of RUN instructions in it.
    pub runs: usize,
    /// Whether the target needs it (transitively, through FROM, `COPY --from`, `RUN --mount=from=`).
    pub needed: bool,
}

/// The verdict for one target platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformAnalysis {
    pub platform: Platform,
    /// A needed stage whose platform differs from the build platform contains a RUN.
    pub foreign_code: bool,
    /// The first such RUN (when `foreign_code`).
    pub deciding: Option<Location>,
    /// The platforms that foreign code runs on: the target's, and any other a stage is pinned
    /// to with `--platform` (e.g. a tools stage on linux/arm64 in an amd64 build).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub foreign_platforms: Vec<Platform>,
    /// Every stage the target needs holds only instructions archway's assembler implements
    /// (no RUN, no RUN among the ONBUILD triggers of a stage it is built on, no ADD of a git
    /// repository), so archway can write the image itself. Base images' own ONBUILD triggers
    /// are not in the file: the planning driver reads them (`assemble::base::onbuild_triggers`)
    /// and calls `PlatformAnalysis::base_trigger`.
    #[serde(default)]
    pub assemblable: bool,
    /// The first instruction that prevents it, when not `assemblable`.
    #[serde(default)]
    pub not_assemblable: Option<Location>,
    /// Why, in a few words (`RUN executes code`, `ADD of a git repository`).
    #[serde(default)]
    pub not_assemblable_reason: Option<String>,
    /// When not `assemblable` only because of stages on the build platform that the target
    /// reads through `COPY --from`: those stages. An engine builds them natively and archway
    /// assembles the rest (a hybrid build). Empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub engine_stages: Vec<EngineStage>,
}

/// A stage an engine builds on the build platform in a hybrid build, for `COPY --from`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineStage {
    /// The stage's name (or index): what the engine's `--target` names.
    pub name: String,
    /// Line of its FROM.
    pub line: usize,
    /// Every stage the engine builds for it (it, and what it is built on or copies from).
    pub stages: Vec<String>,
    /// Its result depends on the target platform (it, or a stage it uses, declares a
    /// `TARGET…` ARG), so it is built once per target platform; otherwise once for all.
    pub per_target: bool,
    /// The first instruction in those stages that the assembler cannot do.
    pub deciding: Location,
    /// Why, in a few words (`RUN executes code, which needs a builder`).
    pub reason: String,
    /// The first instruction in those stages that only BuildKit runs (`RUN --mount`, a
    /// heredoc, `COPY --link`, …): the engine's classic builder cannot build them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buildkit_only: Option<Location>,
}

/// Whether an ADD source names a git repository (BuildKit clones it; the assembler declines).
pub fn is_git_source(src: &str) -> bool {
    let s = src.trim();
    s.starts_with("git@")
        || s.starts_with("git://")
        || s.starts_with("ssh://")
        || ((s.starts_with("http://") || s.starts_with("https://"))
            && s.split('#').next().is_some_and(|u| u.trim_end_matches('/').ends_with(".git")))
}

impl PlatformAnalysis {
    /// Records that base image `image` (FROM at `from`) has an ONBUILD trigger that runs
    /// code: the stage is then not assemblable, and this says so unless an earlier line
    /// already decided it.
    pub fn base_trigger(&mut self, image: &str, from: Location, trigger: &str) {
        // An engine runs a trigger in a stage it builds anyway.
        if self.engine_stages.iter().any(|e| e.stages.contains(&from.stage)) {
            return;
        }
        self.engine_stages.clear();
        self.assemblable = false;
        if self.not_assemblable.as_ref().is_none_or(|d| from.line < d.line) {
            self.not_assemblable_reason =
                Some(format!("base image `{image}` has the trigger `ONBUILD {trigger}`, which runs code"));
            self.not_assemblable = Some(from);
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Analysis {
    pub stages: Vec<Stage>,
    /// Name of the target stage.
    pub target: String,
    pub per_platform: Vec<PlatformAnalysis>,
    /// What cannot be known from the file (e.g. ONBUILD triggers in base images), one sentence each.
    pub unknowns: Vec<String>,
}

impl Analysis {
    pub fn for_platform(&self, p: &Platform) -> Option<&PlatformAnalysis> {
        self.per_platform.iter().find(|a| &a.platform == p)
    }
}
