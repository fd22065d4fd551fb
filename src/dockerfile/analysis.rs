//! dockerfile::analysis: what a parsed Dockerfile means for each target platform, decided as
//! BuildKit's `dockerfile2llb` decides it. Pure: no I/O.
//!
//! Owns: global ARGs (those before the first FROM) with build-arg overrides and BuildKit's
//! automatic platform ARGs; the expansion of FROM images and `--platform` values; stage names
//! and `--target`; the stages the target needs (FROM <stage>, `COPY --from`, `RUN --mount=from=`,
//! and ONBUILD triggers of a base stage); each stage's platform; and, per target platform,
//! whether foreign code runs (a RUN in a needed stage whose platform is not the build platform)
//! and which instruction decides it.
//!
//! Where BuildKit refuses a Dockerfile this refuses it too, with the file, the line, what was
//! expected and how to fix it: variables in `COPY --from` or a mount's `from=`, ARGs in stage
//! names, an image name that expands to nothing, a stage used before it is defined.

use std::collections::HashMap;

use super::parse::{self, Node, ParseError};
use super::shell::ShellLex;
use super::{Analysis, AnalyzeInput, EngineStage, Location, PlatformAnalysis, Stage, is_git_source};
use crate::platform::{Platform, PlatformError};

/// The instructions BuildKit knows.
const INSTRUCTIONS: &[&str] = &[
    "add",
    "arg",
    "cmd",
    "copy",
    "entrypoint",
    "env",
    "expose",
    "from",
    "healthcheck",
    "label",
    "maintainer",
    "onbuild",
    "run",
    "shell",
    "stopsignal",
    "user",
    "volume",
    "workdir",
];

/// The base image that is no image.
const SCRATCH: &str = "scratch";

/// How much of an instruction a `Location` quotes.
const MAX_INSTRUCTION_CHARS: usize = 80;

/// Why a Dockerfile cannot be analysed (and, in every case but `Parse`, why BuildKit would refuse
/// to build it too). The message says what is wrong, where (file and line) and what was
/// expected; [`AnalysisError::hint`] says how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnalysisError {
    #[error("{file}:{}: {}", .error.line, .error.kind)]
    Parse { file: String, error: ParseError },

    #[error("{file}:{line}: unknown instruction `{instruction}`")]
    UnknownInstruction { file: String, line: usize, instruction: String, suggestion: Option<String> },

    #[error("{file}:{line}: `{instruction}` comes before the first FROM; only ARG may come before it")]
    BeforeFrom { file: String, line: usize, instruction: String },

    #[error("`{file}` has no FROM instruction; expected at least one stage")]
    NoStages { file: String },

    /// An instruction's arguments or flags are wrong; `fix` is the hint.
    #[error("{file}:{line}: {message}")]
    Invalid { file: String, line: usize, message: String, fix: String },

    #[error("{file}:{line}: invalid stage name `{name}`: expected a letter, then letters, digits, `-`, `_` or `.`")]
    StageName { file: String, line: usize, name: String },

    #[error("{file}:{line}: cannot expand {what} (building for {platform}): {message}")]
    Expand { file: String, line: usize, what: String, platform: String, message: String },

    #[error(
        "{file}:{line}: FROM `{expression}` expands to an empty image name (building for {platform}); expected an \
         image or a stage name"
    )]
    EmptyBase { file: String, line: usize, expression: String, platform: String },

    #[error(
        "{file}:{line}: `--platform={expression}` expands to an empty platform (building for {platform}); expected \
         `os/arch[/variant]`"
    )]
    EmptyPlatform { file: String, line: usize, expression: String, platform: String },

    #[error(
        "{file}:{line}: `--platform={expression}` gives `{value}` (building for {platform}), which is not a platform"
    )]
    Platform {
        file: String,
        line: usize,
        expression: String,
        value: String,
        platform: String,
        #[source]
        error: Box<PlatformError>,
    },

    #[error("{file}:{line}: FROM `{base}` is not a valid image name; image and stage names are lowercase")]
    StageCase { file: String, line: usize, base: String, stage: String },

    /// `stages`: the Dockerfile's stage names; `suggestion`: the one closest to `target`.
    #[error("target stage `{target}` not found in `{file}`; {}", target_choices(.stages))]
    UnknownTarget { file: String, target: String, stages: Vec<String>, suggestion: Option<String> },

    #[error(
        "{file}:{line}: `{flag}={value}`: BuildKit does not expand variables in {flag}; expected a stage name, a \
         stage index or an image"
    )]
    FromVariable { file: String, line: usize, flag: String, value: String },

    #[error("{file}:{line}: `COPY --from={index}`: there is no stage {index}; expected 0 to {last}")]
    StageIndex { file: String, line: usize, index: String, last: usize },

    #[error(
        "{file}:{line}: circular dependency: stage `{stage}` needs itself through `COPY --from` or \
         `RUN --mount=from=`; expected each stage to use only earlier stages"
    )]
    Cycle { file: String, line: usize, stage: String },

    #[error(
        "{file}:{line}: stage `{stage}` uses stage `{used}`, which is defined later (line {used_line}); expected \
         stages to be defined before they are used"
    )]
    LaterStage { file: String, line: usize, stage: String, used: String, used_line: usize },
}

fn target_choices(stages: &[String]) -> String {
    if stages.is_empty() {
        return "the Dockerfile names no stage".into();
    }
    let list: Vec<String> = stages.iter().map(|n| format!("`{n}`")).collect();
    format!("expected one of {}", list.join(", "))
}

impl AnalysisError {
    /// The one fix to suggest, for the `hint:` line.
    pub fn hint(&self) -> String {
        use AnalysisError as E;
        match self {
            E::Parse { error, .. } => error.hint(),
            E::UnknownInstruction { suggestion: Some(s), .. } => format!("did you mean `{s}`?"),
            E::UnknownInstruction { .. } => {
                let all: Vec<String> = INSTRUCTIONS.iter().map(|i| format!("`{}`", i.to_uppercase())).collect();
                format!("use one of the Dockerfile instructions: {}", all.join(", "))
            }
            E::BeforeFrom { instruction, .. } => format!("move `{instruction}` below the first `FROM`"),
            E::NoStages { .. } => "begin the Dockerfile with `FROM <image>`".into(),
            E::Invalid { fix, .. } => fix.clone(),
            E::StageName { name, .. } if name.contains('$') => {
                "BuildKit does not expand ARGs in stage names; write the name itself, e.g. `AS build`".into()
            }
            E::StageName { .. } => "rename the stage, e.g. `AS build`".into(),
            E::Expand { what, .. } => {
                format!("pass the variables of {what} with `--build-arg NAME=VALUE`, or fix its `${{…}}` syntax")
            }
            E::EmptyBase { expression, .. } => {
                format!("give `{expression}` a value: a default in an `ARG` before the first FROM, or `--build-arg`")
            }
            E::EmptyPlatform { expression, .. } => format!(
                "give `{expression}` a value (a default in an `ARG` before the first FROM, or `--build-arg`), or use \
                 `$BUILDPLATFORM` or `$TARGETPLATFORM`"
            ),
            E::Platform { .. } => {
                "write a platform as `os/arch[/variant]`, e.g. `--platform=linux/arm64` or `--platform=$BUILDPLATFORM`"
                    .into()
            }
            E::StageCase { stage, .. } => format!("to build on stage `{stage}`, write `FROM {stage}`"),
            E::UnknownTarget { suggestion: Some(s), .. } => format!("did you mean `--target {s}`?"),
            E::UnknownTarget { stages, .. } if stages.is_empty() => {
                "name a stage with `FROM image AS name`, or leave out `--target` to build the last stage".into()
            }
            E::UnknownTarget { .. } => {
                "pass one of the stage names to `--target`, or leave it out to build the last stage".into()
            }
            E::FromVariable { flag, value, .. } => format!(
                "declare the ARG before the first FROM, add a stage `FROM {value} AS <name>` and use `<name>` in \
                 {flag} instead"
            ),
            E::StageIndex { last, .. } => format!("use a stage index from 0 to {last}, or the stage's name"),
            E::Cycle { stage, .. } => format!("make stage `{stage}` use only stages defined above it"),
            E::LaterStage { stage, used, .. } => format!("move stage `{used}` above stage `{stage}`"),
        }
    }
}

impl ParseError {
    /// The one fix to suggest, for the `hint:` line.
    pub fn hint(&self) -> String {
        use parse::ParseErrorKind as K;
        match &self.kind {
            K::DuplicateDirective(name) => format!("keep one `# {name}=` line at the top of the Dockerfile"),
            K::InvalidEscape(_) => "use `# escape=\\` (the default), or a backtick after `escape=`".into(),
            K::NoInstructions => "begin the Dockerfile with `FROM <image>`".into(),
            K::LineTooLong => "split the line with `\\` at the end of each part".into(),
            K::MissingValue { instruction } | K::MissingEquals { instruction, .. } => {
                format!("write `{instruction} name=value`, quoting a value that holds spaces")
            }
            K::NotStringArray => "quote every element of the JSON array: `[\"executable\", \"arg\"]`".into(),
            K::UnterminatedHeredoc(name) => format!("end the heredoc with a line holding only `{name}`"),
            K::BadHeredoc { .. } => "write the heredoc as `<<NAME`, `<<-NAME` or `<<\"NAME\"`".into(),
        }
    }
}

/// What the Dockerfile means for `input.platforms`, built on `input.build_platform`.
pub fn analyze(input: &AnalyzeInput) -> Result<Analysis, AnalysisError> {
    let file = input.file;
    let parsed = parse::parse(input.text).map_err(|error| AnalysisError::Parse { file: file.to_string(), error })?;
    let model = Model::read(file, &parsed)?;
    let lex = ShellLex::new(parsed.escape);
    let build_args: HashMap<String, String> = input.build_args.iter().cloned().collect();

    let target = match input.target {
        None => model.stages.len() - 1,
        Some(t) => *model.by_name.get(&t.to_lowercase()).ok_or_else(|| unknown_target(file, t, &model))?,
    };
    // BuildKit's TARGETSTAGE: `--target` as given, else the last stage's name.
    let target_stage =
        input.target.map(str::to_string).unwrap_or_else(|| model.stages[target].name.clone().unwrap_or_default());

    let ctx = Context { file, model: &model, lex, build_args: &build_args, target, target_stage, text: input.text };
    model.check_own_refs(&ctx)?;

    let mut resolutions = Vec::new();
    for platform in input.platforms {
        resolutions.push((platform.clone(), ctx.resolve(input.build_platform, platform)?));
    }
    // With no platform to build, still check the file and find the stages the target needs.
    let fallback =
        if resolutions.is_empty() { Some(ctx.resolve(input.build_platform, input.build_platform)?) } else { None };

    let display = ctx.display();
    let stages = model
        .stages
        .iter()
        .enumerate()
        .map(|(i, decl)| Stage {
            name: decl.label.clone(),
            base: display.bases[i].clone(),
            platform_flag: display.platforms[i].clone(),
            line: decl.line,
            runs: decl.runs.len(),
            needed: resolutions.iter().map(|(_, r)| r).chain(&fallback).any(|r| r.needed[i]),
        })
        .collect();

    let per_platform = resolutions.iter().map(|(platform, r)| ctx.verdict(input.build_platform, platform, r)).collect();
    let unknowns = ctx.unknowns(input.build_platform, &resolutions);
    Ok(Analysis { stages, target: model.stages[target].label.clone(), per_platform, unknowns })
}

// ---------------------------------------------------------------------------------------------
// The Dockerfile's structure, independent of platforms

/// A `COPY --from` or `RUN --mount=…,from=` value.
#[derive(Debug, Clone)]
struct Ref {
    line: usize,
    kind: RefKind,
    value: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RefKind {
    Copy,
    Mount,
}

/// An ONBUILD instruction: it does nothing in its own stage and runs in stages built on it.
struct Trigger<'a> {
    onbuild: &'a Node,
    run: bool,
    refs: Vec<Ref>,
}

struct Decl<'a> {
    /// `AS name`, lowercased.
    name: Option<String>,
    /// The name, or the index when unnamed.
    label: String,
    image: String,
    platform: Option<String>,
    line: usize,
    runs: Vec<&'a Node>,
    refs: Vec<Ref>,
    triggers: Vec<Trigger<'a>>,
    /// Instructions archway's assembler does not implement, with why.
    blockers: Vec<(&'a Node, &'static str)>,
    /// Declares a `TARGET…` ARG (other than TARGETSTAGE), or its FROM line may expand one:
    /// what it builds may differ per target platform.
    target_args: bool,
    /// The first instruction only BuildKit runs (a RUN mount, a heredoc, `COPY --link`, …):
    /// the engine's classic builder cannot build this stage.
    buildkit_only: Option<&'a Node>,
}

struct GlobalArg {
    key: String,
    value: Option<String>,
    line: usize,
}

struct Model<'a> {
    globals: Vec<GlobalArg>,
    stages: Vec<Decl<'a>>,
    /// Lowercased stage name → the last stage with that name.
    by_name: HashMap<String, usize>,
}

impl<'a> Model<'a> {
    /// Reads the instructions into stages, rejecting what BuildKit's instructions layer rejects.
    fn read(file: &str, parsed: &'a parse::Parsed) -> Result<Model<'a>, AnalysisError> {
        let invalid = |line: usize, message: String, fix: &str| AnalysisError::Invalid {
            file: file.to_string(),
            line,
            message,
            fix: fix.to_string(),
        };
        let mut globals = Vec::new();
        let mut stages: Vec<Decl<'a>> = Vec::new();
        for node in &parsed.nodes {
            let line = node.start_line;
            check_instruction(file, node)?;
            if node.instruction == "from" {
                stages.push(read_from(file, node, stages.len())?);
                continue;
            }
            let Some(stage) = stages.last_mut() else {
                if node.instruction != "arg" {
                    return Err(AnalysisError::BeforeFrom {
                        file: file.to_string(),
                        line,
                        instruction: node.instruction.to_uppercase(),
                    });
                }
                for (key, value) in read_arg(node).map_err(|m| invalid(line, m, ARG_FIX))? {
                    globals.push(GlobalArg { key, value, line });
                }
                continue;
            };
            if stage.buildkit_only.is_none() && buildkit_only(node) {
                stage.buildkit_only = Some(node);
            }
            match node.instruction.as_str() {
                "arg" => {
                    let args = read_arg(node).map_err(|m| invalid(line, m, ARG_FIX))?;
                    stage.target_args |= args.iter().any(|(k, _)| is_target_arg(k));
                }
                "run" => {
                    stage.blockers.push((node, "RUN executes code, which needs a builder"));
                    stage.runs.push(node);
                    stage.refs.extend(node_refs(node).map_err(|e| e.at(file, line))?);
                }
                "copy" => stage.refs.extend(node_refs(node).map_err(|e| e.at(file, line))?),
                "add" if node.args.split_last().is_some_and(|(_, srcs)| srcs.iter().any(|s| is_git_source(s))) => {
                    stage.blockers.push((node, "ADD of a git repository needs a builder"));
                }
                "onbuild" => {
                    let Some(trigger) = node.trigger.as_deref() else {
                        return Err(invalid(
                            line,
                            "ONBUILD needs an instruction to trigger".into(),
                            "write the instruction after it, e.g. `ONBUILD RUN make`, or remove the ONBUILD",
                        ));
                    };
                    if matches!(trigger.instruction.as_str(), "onbuild" | "from" | "maintainer") {
                        let what = trigger.instruction.to_uppercase();
                        return Err(invalid(
                            line,
                            format!("{what} isn't allowed as an ONBUILD trigger"),
                            &format!("remove this `ONBUILD {what}`"),
                        ));
                    }
                    let refs = node_refs(trigger).map_err(|e| e.at(file, line))?;
                    stage.triggers.push(Trigger { onbuild: node, run: trigger.instruction == "run", refs });
                }
                _ => {}
            }
        }
        if stages.is_empty() {
            return Err(AnalysisError::NoStages { file: file.to_string() });
        }
        // A FROM line that expands a variable may expand a TARGET… value, directly or through
        // a global ARG's default.
        let globals_use_target = globals.iter().any(|g| g.value.as_deref().is_some_and(|v| v.contains("TARGET")));
        for stage in &mut stages {
            let from = format!("{} {}", stage.image, stage.platform.as_deref().unwrap_or_default());
            stage.target_args |= from.contains('$')
                && (globals_use_target || AUTOMATIC_ARGS.iter().any(|a| is_target_arg(a) && from.contains(a)));
        }
        let mut by_name = HashMap::new();
        for (i, stage) in stages.iter().enumerate() {
            if let Some(name) = &stage.name {
                by_name.insert(name.clone(), i);
            }
        }
        Ok(Model { globals, stages, by_name })
    }

    /// Checks every stage's own `COPY --from` and `RUN --mount=from=` values (BuildKit checks
    /// them all, needed or not).
    fn check_own_refs(&self, ctx: &Context) -> Result<(), AnalysisError> {
        for stage in &self.stages {
            for r in &stage.refs {
                ctx.resolve_ref(r)?;
            }
        }
        Ok(())
    }
}

fn check_instruction(file: &str, node: &Node) -> Result<(), AnalysisError> {
    if INSTRUCTIONS.contains(&node.instruction.as_str()) {
        return Ok(());
    }
    let suggestion = suggest(&node.instruction, INSTRUCTIONS.iter().copied()).map(str::to_uppercase);
    let instruction = node.original.split_whitespace().next().unwrap_or_default().to_string();
    Err(AnalysisError::UnknownInstruction { file: file.to_string(), line: node.start_line, instruction, suggestion })
}

fn read_from<'a>(file: &str, node: &'a Node, index: usize) -> Result<Decl<'a>, AnalysisError> {
    let line = node.start_line;
    let invalid = |message: String, fix: &str| AnalysisError::Invalid {
        file: file.to_string(),
        line,
        message,
        fix: fix.to_string(),
    };
    // `Some(None)`: given, but empty.
    let mut platform: Option<Option<String>> = None;
    for flag in &node.flags {
        match flag.strip_prefix("--").and_then(|f| f.split_once('=')) {
            // BuildKit treats a literally empty `--platform=` as no flag at all.
            Some(("platform", "")) if platform.is_none() => platform = Some(None),
            Some(("platform", value)) if platform.is_none() => platform = Some(Some(value.to_string())),
            Some(("platform", _)) => {
                return Err(invalid("FROM: duplicate flag `--platform`".into(), "keep one `--platform`"));
            }
            _ if flag == "--platform" => {
                return Err(invalid(
                    "FROM: `--platform` needs a value".into(),
                    "write `--platform=os/arch`, e.g. `--platform=$BUILDPLATFORM`",
                ));
            }
            _ => {
                return Err(invalid(
                    format!("FROM: unknown flag `{flag}`; FROM takes only `--platform`"),
                    &format!("remove `{flag}`"),
                ));
            }
        }
    }
    let name = match node.args.as_slice() {
        [_] => None,
        [_, as_word, name] if as_word.eq_ignore_ascii_case("as") => {
            let lower = name.to_lowercase();
            let valid = lower.starts_with(|c: char| c.is_ascii_lowercase())
                && lower.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
            if !valid {
                return Err(AnalysisError::StageName { file: file.to_string(), line, name: name.clone() });
            }
            Some(lower)
        }
        args => {
            return Err(invalid(
                format!(
                    "FROM takes `[--platform=…] image [AS name]`; got {} argument{}",
                    args.len(),
                    if args.len() == 1 { "" } else { "s" }
                ),
                "write `FROM image` or `FROM image AS name`",
            ));
        }
    };
    Ok(Decl {
        label: name.clone().unwrap_or_else(|| index.to_string()),
        name,
        image: node.args[0].clone(),
        platform: platform.flatten(),
        line,
        runs: Vec::new(),
        refs: Vec::new(),
        triggers: Vec::new(),
        blockers: Vec::new(),
        target_args: false,
        buildkit_only: None,
    })
}

/// Whether only BuildKit runs this instruction (the classic builder refuses these flags and
/// heredocs).
fn buildkit_only(node: &Node) -> bool {
    let flag = |names: &[&str]| {
        node.flags.iter().any(|f| {
            let name = f.trim_start_matches('-').split('=').next().unwrap_or_default();
            names.contains(&name)
        })
    };
    !node.heredocs.is_empty()
        || match node.instruction.as_str() {
            "run" => flag(&["mount", "network", "security"]),
            "copy" | "add" => flag(&["link", "parents", "exclude", "checksum", "keep-git-dir"]),
            _ => false,
        }
}

/// A TARGET… ARG whose value differs between target platforms (TARGETSTAGE does not).
fn is_target_arg(key: &str) -> bool {
    key.starts_with("TARGET") && key != "TARGETSTAGE"
}

/// The fix for every problem [`read_arg`] reports.
const ARG_FIX: &str = "write `ARG name` or `ARG name=default`";

/// ARG's `name[=default]` words.
fn read_arg(node: &Node) -> Result<Vec<(String, Option<String>)>, String> {
    if node.args.is_empty() {
        return Err("ARG needs at least one name: `ARG name[=default]`".into());
    }
    node.args
        .iter()
        .map(|word| {
            let (key, value) = match word.split_once('=') {
                Some((k, v)) => (k, Some(v.to_string())),
                None => (word.as_str(), None),
            };
            if key.is_empty() {
                return Err(format!("ARG `{word}` has no name; expected `name[=default]`"));
            }
            Ok((key.to_string(), value))
        })
        .collect()
}

/// A problem found in a node before the file and line are known.
enum RefError {
    Invalid { message: String, fix: &'static str },
    Variable { flag: String, value: String },
}

impl RefError {
    fn at(self, file: &str, line: usize) -> AnalysisError {
        match self {
            RefError::Invalid { message, fix } => {
                AnalysisError::Invalid { file: file.to_string(), line, message, fix: fix.to_string() }
            }
            RefError::Variable { flag, value } => {
                AnalysisError::FromVariable { file: file.to_string(), line, flag, value }
            }
        }
    }
}

/// The stages (or images) a RUN or COPY reads from.
fn node_refs(node: &Node) -> Result<Vec<Ref>, RefError> {
    let line = node.start_line;
    let mut refs = Vec::new();
    match node.instruction.as_str() {
        "copy" => {
            let values: Vec<Option<&str>> = node.flag_values("from").collect();
            match values.as_slice() {
                [] => {}
                [Some(value)] => refs.push(Ref { line, kind: RefKind::Copy, value: value.to_string() }),
                [None] => {
                    return Err(RefError::Invalid {
                        message: "COPY: `--from` needs a value".into(),
                        fix: "write `COPY --from=<stage or image> <src> <dest>`",
                    });
                }
                _ => {
                    return Err(RefError::Invalid {
                        message: "COPY: duplicate flag `--from`".into(),
                        fix: "keep one `--from`; copy from each source in a COPY of its own",
                    });
                }
            }
        }
        "run" => {
            for value in node.flag_values("mount") {
                let value = value.ok_or_else(|| RefError::Invalid {
                    message: "RUN: `--mount` needs a value".into(),
                    fix: "write `--mount=type=…,target=…`",
                })?;
                if let Some(from) = mount_from(value)? {
                    refs.push(Ref { line, kind: RefKind::Mount, value: from });
                }
            }
        }
        _ => {}
    }
    Ok(refs)
}

/// The `from=` of a `--mount` value (comma-separated `key=value` fields, CSV quoting allowed).
fn mount_from(value: &str) -> Result<Option<String>, RefError> {
    let fields = csv_fields(value).map_err(|why| RefError::Invalid {
        message: format!("RUN: `--mount={value}`: {why}"),
        fix: "write the `--mount` value as comma-separated `key=value` fields, quoting a field that holds a comma",
    })?;
    let mut from = None;
    for field in fields {
        let Some((key, v)) = field.split_once('=') else { continue };
        if key.eq_ignore_ascii_case("from") {
            // BuildKit refuses a `$` anywhere but at the very end.
            if v.find('$').is_some_and(|at| at + 1 != v.len()) {
                return Err(RefError::Variable { flag: "--mount from".into(), value: v.to_string() });
            }
            from = Some(v.to_string());
        }
    }
    Ok(from)
}

/// One CSV record as Go's `encoding/csv` reads it.
fn csv_fields(record: &str) -> Result<Vec<String>, String> {
    if record.is_empty() {
        return Err("empty mount".into());
    }
    let mut fields = Vec::new();
    let mut chars = record.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err("extraneous or missing `\"` in quoted field".into()),
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                }
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => fields.push(field),
                Some(_) => return Err("extraneous or missing `\"` in quoted field".into()),
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(field);
                        return Ok(fields);
                    }
                    Some(',') => break,
                    Some('"') => return Err("bare `\"` in non-quoted field".into()),
                    Some(c) => field.push(c),
                }
            }
            fields.push(field);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Resolution for one target platform

#[derive(Debug, Clone, PartialEq)]
enum Base {
    Stage(usize),
    Scratch,
    Image(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Source {
    Stage(usize),
    Image(String),
}

/// A dependency of a stage on another stage or an image.
#[derive(Debug, Clone)]
struct Dep {
    line: usize,
    kind: RefKind,
    source: Source,
}

/// The stages as built for one target platform.
struct Resolution {
    bases: Vec<Base>,
    platforms: Vec<Platform>,
    deps: Vec<Vec<Dep>>,
    needed: Vec<bool>,
}

/// Stage bases and `--platform` values with only the global ARGs known (automatic platform ARGs
/// stay as written), for display.
struct Display {
    bases: Vec<String>,
    platforms: Vec<Option<String>>,
}

struct Context<'a> {
    file: &'a str,
    model: &'a Model<'a>,
    lex: ShellLex,
    build_args: &'a HashMap<String, String>,
    target: usize,
    target_stage: String,
    text: &'a str,
}

impl Context<'_> {
    /// BuildKit's global scope: the automatic platform ARGs (when given), then each ARG before
    /// the first FROM, a build arg overriding its default.
    fn globals(
        &self,
        lex: &ShellLex,
        automatic: Option<(&Platform, &Platform)>,
        what: &str,
    ) -> Result<HashMap<String, String>, AnalysisError> {
        let mut env = HashMap::new();
        match automatic {
            Some((build, target)) => {
                for (key, value) in automatic_args(build, target, &self.target_stage) {
                    let value = self.build_args.get(key).cloned().unwrap_or(value);
                    env.insert(key.to_string(), value);
                }
            }
            // Without a platform only build args that override them are known.
            None => {
                for key in AUTOMATIC_ARGS {
                    if let Some(value) = self.build_args.get(key) {
                        env.insert(key.to_string(), value.clone());
                    }
                }
            }
        }
        for arg in &self.model.globals {
            let value = match (self.build_args.get(&arg.key), &arg.value) {
                (Some(v), _) => Some(v.clone()),
                (None, Some(default)) => Some(
                    lex.process(default, &env)
                        .map_err(|e| AnalysisError::Expand {
                            file: self.file.to_string(),
                            line: arg.line,
                            what: format!("the default of ARG `{}`", arg.key),
                            platform: what.to_string(),
                            message: e.message,
                        })?
                        .result,
                ),
                (None, None) => None,
            };
            if let Some(value) = value {
                env.insert(arg.key.clone(), value);
            }
        }
        Ok(env)
    }

    fn display(&self) -> Display {
        let lex = ShellLex { skip_unset_env: true, ..self.lex };
        let env = self.globals(&lex, None, "display").unwrap_or_default();
        let show = |word: &str| lex.process(word, &env).map(|e| e.result).unwrap_or_else(|_| word.to_string());
        Display {
            bases: self.model.stages.iter().map(|s| show(&s.image)).collect(),
            platforms: self.model.stages.iter().map(|s| s.platform.as_deref().map(show)).collect(),
        }
    }

    fn resolve(&self, build: &Platform, target: &Platform) -> Result<Resolution, AnalysisError> {
        let file = self.file.to_string();
        let for_platform = target.to_string();
        let env = self.globals(&self.lex, Some((build, target)), &for_platform)?;
        let stages = &self.model.stages;
        let mut bases = Vec::with_capacity(stages.len());
        let mut platforms: Vec<Platform> = Vec::with_capacity(stages.len());
        let mut names_so_far: HashMap<&str, usize> = HashMap::new();
        for (i, decl) in stages.iter().enumerate() {
            let line = decl.line;
            let expand = |word: &str, what: &str| {
                self.lex.process(word, &env).map(|e| e.result).map_err(|e| AnalysisError::Expand {
                    file: file.clone(),
                    line,
                    what: format!("{what} `{word}`"),
                    platform: for_platform.clone(),
                    message: e.message,
                })
            };
            let image = expand(&decl.image, "the FROM image")?;
            if image.is_empty() {
                return Err(AnalysisError::EmptyBase {
                    file,
                    line,
                    expression: decl.image.clone(),
                    platform: for_platform,
                });
            }
            let flag = match &decl.platform {
                None => None,
                Some(expression) => {
                    let value = expand(expression, "the --platform value")?;
                    if value.is_empty() {
                        return Err(AnalysisError::EmptyPlatform {
                            file,
                            line,
                            expression: expression.clone(),
                            platform: for_platform,
                        });
                    }
                    let parsed = value.parse::<Platform>().map_err(|error| AnalysisError::Platform {
                        file: file.clone(),
                        line,
                        expression: expression.clone(),
                        value: value.clone(),
                        platform: for_platform.clone(),
                        error: Box::new(error),
                    })?;
                    Some(parsed)
                }
            };
            // FROM names a stage only if that stage comes earlier and the name matches exactly.
            let base = match names_so_far.get(image.as_str()) {
                Some(&j) => Base::Stage(j),
                None if image != image.to_lowercase() && names_so_far.contains_key(image.to_lowercase().as_str()) => {
                    return Err(AnalysisError::StageCase { file, line, stage: image.to_lowercase(), base: image });
                }
                None if image == SCRATCH => Base::Scratch,
                None => Base::Image(image),
            };
            // As in BuildKit: a stage built on a stage takes that stage's platform (its own
            // --platform is ignored), and scratch is always the target platform.
            let platform = match &base {
                Base::Stage(j) => platforms[*j].clone(),
                Base::Scratch => target.clone(),
                Base::Image(_) => flag.unwrap_or_else(|| target.clone()),
            };
            bases.push(base);
            platforms.push(platform);
            if let Some(name) = &decl.name {
                names_so_far.insert(name, i);
            }
        }

        let mut deps = Vec::with_capacity(stages.len());
        for (i, decl) in stages.iter().enumerate() {
            let mut stage_deps = Vec::new();
            for r in decl.refs.iter().chain(self.inherited(&bases[i]).flat_map(|t| &t.refs)) {
                stage_deps.push(Dep { line: r.line, kind: r.kind, source: self.resolve_ref(r)? });
            }
            deps.push(stage_deps);
        }
        self.check_cycles(&deps)?;

        let mut needed = vec![false; stages.len()];
        let mut todo = vec![self.target];
        while let Some(i) = todo.pop() {
            if std::mem::replace(&mut needed[i], true) {
                continue;
            }
            if let Base::Stage(j) = bases[i] {
                todo.push(j);
            }
            todo.extend(deps[i].iter().filter_map(|d| match d.source {
                Source::Stage(j) => Some(j),
                Source::Image(_) => None,
            }));
        }
        for (i, stage_deps) in deps.iter().enumerate().filter(|(i, _)| needed[*i]) {
            for dep in stage_deps {
                if let Source::Stage(j) = dep.source
                    && j > i
                {
                    return Err(AnalysisError::LaterStage {
                        file,
                        line: dep.line,
                        stage: stages[i].label.clone(),
                        used: stages[j].label.clone(),
                        used_line: stages[j].line,
                    });
                }
            }
        }
        Ok(Resolution { bases, platforms, deps, needed })
    }

    /// The ONBUILD triggers a stage runs: those of the stage it is built on.
    fn inherited<'s>(&'s self, base: &Base) -> impl Iterator<Item = &'s Trigger<'s>> + 's {
        let triggers: &[Trigger] = match base {
            Base::Stage(j) => &self.model.stages[*j].triggers,
            _ => &[],
        };
        triggers.iter()
    }

    /// A `COPY --from` value is a stage index, a stage name (any case) or an image; a mount's
    /// `from=` is a stage name or an image.
    fn resolve_ref(&self, r: &Ref) -> Result<Source, AnalysisError> {
        if r.kind == RefKind::Copy {
            let expanded = self.lex.process(&r.value, &HashMap::new()).map(|e| e.result);
            if expanded.as_deref() != Ok(r.value.as_str()) {
                return Err(AnalysisError::FromVariable {
                    file: self.file.to_string(),
                    line: r.line,
                    flag: "COPY --from".into(),
                    value: r.value.clone(),
                });
            }
            if let Some(index) = go_atoi(&r.value) {
                let count = self.model.stages.len();
                return match usize::try_from(index).ok().filter(|&i| i < count) {
                    Some(i) => Ok(Source::Stage(i)),
                    None => Err(AnalysisError::StageIndex {
                        file: self.file.to_string(),
                        line: r.line,
                        index: r.value.clone(),
                        last: count - 1,
                    }),
                };
            }
        }
        Ok(match self.model.by_name.get(&r.value.to_lowercase()) {
            Some(&i) => Source::Stage(i),
            None => Source::Image(r.value.clone()),
        })
    }

    /// BuildKit's check: no stage may reach itself through COPY --from or mounts.
    fn check_cycles(&self, deps: &[Vec<Dep>]) -> Result<(), AnalysisError> {
        fn visit(
            i: usize,
            deps: &[Vec<Dep>],
            visited: &mut [bool],
            on_path: &mut [bool],
            first: Option<usize>,
        ) -> Option<usize> {
            if visited[i] {
                return None;
            }
            visited[i] = true;
            on_path[i] = true;
            for dep in &deps[i] {
                let Source::Stage(j) = dep.source else { continue };
                let first = first.or(Some(dep.line));
                if on_path[j] {
                    return first;
                }
                if let Some(line) = visit(j, deps, visited, on_path, first) {
                    return Some(line);
                }
            }
            on_path[i] = false;
            None
        }
        let n = deps.len();
        let mut visited = vec![false; n];
        for i in 0..n {
            let mut on_path = vec![false; n];
            if let Some(line) = visit(i, deps, &mut visited, &mut on_path, None) {
                let stage = self.model.stages[i].label.clone();
                return Err(AnalysisError::Cycle { file: self.file.to_string(), line, stage });
            }
        }
        Ok(())
    }

    /// Whether foreign code runs for `target`, and the first RUN that makes it so.
    fn verdict(&self, build: &Platform, target: &Platform, r: &Resolution) -> PlatformAnalysis {
        let mut deciding: Option<Location> = None;
        let mut foreign_platforms: Vec<Platform> = Vec::new();
        for (i, decl) in self.model.stages.iter().enumerate() {
            if !r.needed[i] || &r.platforms[i] == build {
                continue;
            }
            let own = decl.runs.iter().map(|n| n.start_line);
            let triggered = self.inherited(&r.bases[i]).filter(|t| t.run).map(|t| t.onbuild.start_line);
            let first = own.chain(triggered).min();
            if first.is_some() && !foreign_platforms.contains(&r.platforms[i]) {
                foreign_platforms.push(r.platforms[i].clone());
            }
            if let Some(line) = first
                && deciding.as_ref().is_none_or(|d| line < d.line)
            {
                deciding = Some(self.location(line, i));
            }
        }
        // Assemblable: no stage the target needs holds an instruction the assembler cannot do,
        // whatever its platform.
        let blocker = self.first_blocker((0..self.model.stages.len()).filter(|&i| r.needed[i]), r);
        let not_assemblable = blocker.map(|(line, _, i)| self.location(line, i));
        let engine_stages = if blocker.is_some() { self.hybrid(build, r).unwrap_or_default() } else { vec![] };
        PlatformAnalysis {
            platform: target.clone(),
            foreign_code: deciding.is_some(),
            deciding,
            foreign_platforms,
            assemblable: blocker.is_none(),
            not_assemblable,
            not_assemblable_reason: blocker.map(|(_, why, _)| why.to_string()),
            engine_stages,
        }
    }

    /// Where line `line` of stage `i` is.
    fn location(&self, line: usize, i: usize) -> Location {
        Location {
            file: self.file.to_string(),
            line,
            stage: self.model.stages[i].label.clone(),
            instruction: instruction_text(self.text, line),
        }
    }

    /// The first instruction of stage `i` the assembler cannot do (its own, or a RUN trigger
    /// of the stage it is built on).
    fn blocker_of(&self, i: usize, r: &Resolution) -> Option<(usize, &'static str)> {
        let own = self.model.stages[i].blockers.iter().map(|(n, why)| (n.start_line, *why));
        let triggered = self
            .inherited(&r.bases[i])
            .filter(|t| t.run)
            .map(|t| (t.onbuild.start_line, "its ONBUILD RUN trigger runs code in this stage"));
        own.chain(triggered).min_by_key(|(line, _)| *line)
    }

    /// The first instruction the assembler cannot do among `stages`: its line, why, its stage.
    fn first_blocker(
        &self,
        stages: impl Iterator<Item = usize>,
        r: &Resolution,
    ) -> Option<(usize, &'static str, usize)> {
        stages.filter_map(|i| self.blocker_of(i, r).map(|(line, why)| (line, why, i))).min_by_key(|(line, _, _)| *line)
    }

    /// Stage `i` and every stage it is built on or uses, in index order.
    fn closure(&self, i: usize, r: &Resolution) -> Vec<usize> {
        let mut seen = vec![false; self.model.stages.len()];
        let mut todo = vec![i];
        while let Some(j) = todo.pop() {
            if std::mem::replace(&mut seen[j], true) {
                continue;
            }
            if let Base::Stage(k) = r.bases[j] {
                todo.push(k);
            }
            todo.extend(r.deps[j].iter().filter_map(|d| match d.source {
                Source::Stage(k) => Some(k),
                Source::Image(_) => None,
            }));
        }
        (0..seen.len()).filter(|&j| seen[j]).collect()
    }

    /// A hybrid build: the stages the target's filesystem is made of are assemblable, and
    /// every stage that is not is reached only through `COPY --from`, with everything it uses
    /// on the build platform, so an engine builds it natively. `None` when that is not so.
    fn hybrid(&self, build: &Platform, r: &Resolution) -> Option<Vec<EngineStage>> {
        let mut engine: Vec<usize> = Vec::new();
        let mut assembled = vec![false; self.model.stages.len()];
        let mut todo = vec![self.target];
        while let Some(i) = todo.pop() {
            if std::mem::replace(&mut assembled[i], true) {
                continue;
            }
            if self.blocker_of(i, r).is_some() {
                return None;
            }
            if let Base::Stage(k) = r.bases[i] {
                todo.push(k);
            }
            for d in &r.deps[i] {
                let Source::Stage(k) = d.source else { continue };
                let runs_code = self.closure(k, r).iter().any(|&j| self.blocker_of(j, r).is_some());
                if d.kind == RefKind::Copy && runs_code {
                    if !engine.contains(&k) {
                        engine.push(k);
                    }
                } else {
                    todo.push(k);
                }
            }
        }
        engine.sort_unstable();
        let mut out = Vec::new();
        for k in engine {
            let stages = self.closure(k, r);
            if stages.iter().any(|&j| &r.platforms[j] != build) {
                return None;
            }
            let (line, reason, at) = self.first_blocker(stages.iter().copied(), r)?;
            out.push(EngineStage {
                name: self.model.stages[k].label.clone(),
                line: self.model.stages[k].line,
                stages: stages.iter().map(|&j| self.model.stages[j].label.clone()).collect(),
                per_target: stages.iter().any(|&j| self.model.stages[j].target_args),
                deciding: self.location(line, at),
                reason: reason.to_string(),
                buildkit_only: stages
                    .iter()
                    .filter_map(|&j| self.model.stages[j].buildkit_only.map(|n| (n.start_line, j)))
                    .min()
                    .map(|(line, j)| self.location(line, j)),
            });
        }
        Some(out).filter(|o| !o.is_empty())
    }

    /// What the file cannot tell, one sentence each, across all target platforms.
    fn unknowns(&self, build: &Platform, resolutions: &[(Platform, Resolution)]) -> Vec<String> {
        // Base images whose hidden ONBUILD triggers would run as foreign code: image → (stage, platforms).
        let mut onbuild: Vec<(String, usize, Vec<String>)> = Vec::new();
        let mut images: Vec<(RefKind, String, usize)> = Vec::new();
        let mut ignored: Vec<usize> = Vec::new();
        for (_, r) in resolutions {
            for (i, decl) in self.model.stages.iter().enumerate().filter(|(i, _)| r.needed[*i]) {
                match &r.bases[i] {
                    Base::Image(image) if &r.platforms[i] != build => {
                        let platform = r.platforms[i].to_string();
                        match onbuild.iter_mut().find(|(img, _, _)| img == image) {
                            Some((_, _, platforms)) if !platforms.contains(&platform) => platforms.push(platform),
                            Some(_) => {}
                            None => onbuild.push((image.clone(), i, vec![platform])),
                        }
                    }
                    Base::Stage(_) if decl.platform.is_some() && !ignored.contains(&i) => ignored.push(i),
                    _ => {}
                }
                for dep in &r.deps[i] {
                    if let Source::Image(image) = &dep.source {
                        let key = (dep.kind, image.clone(), dep.line);
                        if !images.contains(&key) {
                            images.push(key);
                        }
                    }
                }
            }
        }
        let targets: Vec<String> = resolutions.iter().map(|(p, _)| p.to_string()).collect();
        let mut out = Vec::new();
        for (image, i, platforms) in onbuild {
            let decl = &self.model.stages[i];
            out.push(format!(
                "ONBUILD triggers in base image `{image}` (stage `{}`, {}:{}) cannot be seen from the Dockerfile; if it \
                 has any, they run on {}, not on the build platform {build}",
                decl.label,
                self.file,
                decl.line,
                join_and(&platforms),
            ));
        }
        for (kind, image, line) in images {
            let how = match kind {
                RefKind::Copy => format!("`COPY --from={image}`"),
                RefKind::Mount => format!("`RUN --mount=from={image}`"),
            };
            out.push(format!(
                "{how} ({}:{line}) reads image `{image}`, not a stage: nothing in it runs, but whether it is \
                 published for {} cannot be seen from the Dockerfile",
                self.file,
                join_and(&targets),
            ));
        }
        for i in ignored {
            let decl = &self.model.stages[i];
            if let Base::Stage(j) = resolutions[0].1.bases[i] {
                out.push(format!(
                    "stage `{}` ({}:{}) is built on stage `{}`, so BuildKit builds it on that stage's platform and \
                     ignores its `--platform={}`",
                    decl.label,
                    self.file,
                    decl.line,
                    self.model.stages[j].label,
                    decl.platform.as_deref().unwrap_or_default(),
                ));
            }
        }
        out
    }
}

/// BuildKit's automatic ARGs, available in FROM lines without a declaration.
const AUTOMATIC_ARGS: [&str; 11] = [
    "BUILDPLATFORM",
    "BUILDOS",
    "BUILDOSVERSION",
    "BUILDARCH",
    "BUILDVARIANT",
    "TARGETPLATFORM",
    "TARGETOS",
    "TARGETOSVERSION",
    "TARGETARCH",
    "TARGETVARIANT",
    "TARGETSTAGE",
];

/// The values of `AUTOMATIC_ARGS`, in the same order.
fn automatic_args(build: &Platform, target: &Platform, target_stage: &str) -> [(&'static str, String); 11] {
    let variant = |p: &Platform| p.variant.clone().unwrap_or_default();
    let values = [
        build.to_string(),
        build.os.clone(),
        String::new(),
        build.architecture.clone(),
        variant(build),
        target.to_string(),
        target.os.clone(),
        String::new(),
        target.architecture.clone(),
        variant(target),
        target_stage.to_string(),
    ];
    let mut values = values.into_iter();
    AUTOMATIC_ARGS.map(|key| (key, values.next().unwrap_or_default()))
}

/// Go's `strconv.Atoi`: an optional sign, then ASCII digits.
fn go_atoi(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The first physical line of the instruction at `line`, trimmed and shortened.
fn instruction_text(text: &str, line: usize) -> String {
    let raw = text.split('\n').nth(line.saturating_sub(1)).unwrap_or_default();
    let raw = if line == 1 { raw.trim_start_matches('\u{feff}') } else { raw };
    let trimmed = raw.trim();
    // The first line of a continued instruction ends with the escape: say it goes on.
    if let Some(first) = trimmed.strip_suffix(['\\', '`']).map(str::trim_end)
        && first.chars().count() < MAX_INSTRUCTION_CHARS
    {
        return format!("{first} …");
    }
    if trimmed.chars().count() <= MAX_INSTRUCTION_CHARS {
        return trimmed.to_string();
    }
    let mut short: String = trimmed.chars().take(MAX_INSTRUCTION_CHARS - 1).collect();
    short.push('…');
    short
}

fn unknown_target(file: &str, target: &str, model: &Model) -> AnalysisError {
    let stages: Vec<String> = model.stages.iter().filter_map(|s| s.name.clone()).collect();
    let suggestion = suggest(&target.to_lowercase(), stages.iter().map(String::as_str)).map(String::from);
    AnalysisError::UnknownTarget { file: file.to_string(), target: target.to_string(), stages, suggestion }
}

/// The closest candidate by Levenshtein distance, if it is close enough to be a likely typo.
fn suggest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let word = word.to_lowercase();
    candidates
        .map(|c| (strsim::levenshtein(&word, c), c))
        .filter(|(d, c)| *d > 0 && *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// `a`, `a and b`, `a, b and c`.
fn join_and(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_like_go() {
        assert_eq!(csv_fields("type=cache,from=deps,target=/x").unwrap(), ["type=cache", "from=deps", "target=/x"]);
        assert_eq!(csv_fields("\"from=a,b\",x").unwrap(), ["from=a,b", "x"]);
        assert_eq!(csv_fields("a,").unwrap(), ["a", ""]);
        assert!(csv_fields("a\"b").is_err());
        assert!(csv_fields("\"a\"b").is_err());
    }

    #[test]
    fn mount_from_refuses_variables() {
        assert_eq!(mount_from("type=cache,from=deps,target=/x").ok().flatten(), Some("deps".into()));
        assert_eq!(mount_from("type=cache,target=/x").ok().flatten(), None);
        assert!(matches!(mount_from("from=$X,target=/x"), Err(RefError::Variable { .. })));
        assert_eq!(mount_from("from=a$,target=/x").ok().flatten(), Some("a$".into()));
    }

    /// Each target platform's verdict on `text`, built on linux/amd64.
    fn verdicts(text: &str, platforms: &[&str]) -> Vec<PlatformAnalysis> {
        let build: Platform = "linux/amd64".parse().unwrap();
        let platforms: Vec<Platform> = platforms.iter().map(|p| p.parse().unwrap()).collect();
        let input = AnalyzeInput {
            text,
            file: "Dockerfile",
            build_args: &[],
            target: None,
            build_platform: &build,
            platforms: &platforms,
        };
        analyze(&input).unwrap().per_platform
    }

    #[test]
    fn assemblable_per_instruction() {
        let verdict = |text: &str| {
            let p = verdicts(text, &["linux/arm64"]).remove(0);
            (p.assemblable, p.not_assemblable.map(|l| l.line), p.not_assemblable_reason)
        };
        let all = "FROM scratch AS s\nCOPY a /a\nFROM busybox\nARG X\nENV A=1\nLABEL l=1\nWORKDIR /w\nCOPY --from=s /a /b\n\
                   ADD x.tar.gz https://example.com/f /d/\nEXPOSE 80\nVOLUME /v\nUSER u\nSHELL [\"/bin/sh\", \"-c\"]\n\
                   CMD x\nENTRYPOINT [\"y\"]\nSTOPSIGNAL SIGTERM\nHEALTHCHECK CMD true\nONBUILD RUN x\nMAINTAINER m\n";
        assert_eq!(verdict(all), (true, None, None));
        let (ok, line, why) = verdict("FROM busybox\nCOPY a /a\nRUN make\n");
        assert_eq!((ok, line), (false, Some(3)));
        assert!(why.unwrap().contains("RUN"));
        assert_eq!(verdict("FROM busybox\nADD https://github.com/a/b.git /src\n").1, Some(2));
        // A RUN in a stage the target does not need does not matter; in one it copies from does.
        assert!(verdict("FROM busybox AS x\nRUN make\nFROM scratch\nCOPY a /\n").0);
        assert_eq!(verdict("FROM busybox AS x\nRUN make\nFROM scratch\nCOPY --from=x /a /\n").1, Some(2));
        // An ONBUILD RUN of a stage the target is built on runs in the target.
        let (ok, line, why) = verdict("FROM busybox AS b\nONBUILD RUN x\nFROM b\nCOPY a /\n");
        assert_eq!((ok, line), (false, Some(2)));
        assert!(why.unwrap().contains("ONBUILD"));
    }

    #[test]
    fn hybrid_engine_stages() {
        let engine = |text: &str| {
            verdicts(text, &["linux/arm64"])[0]
                .engine_stages
                .iter()
                .map(|e| (e.name.clone(), e.stages.join("+"), e.per_target, e.deciding.line))
                .collect::<Vec<_>>()
        };
        let s = |n: &str, st: &str, per: bool, line: usize| (n.to_string(), st.to_string(), per, line);
        // The cross-compiling pattern: built per target, it reads TARGETARCH.
        let cross = "FROM --platform=$BUILDPLATFORM busybox AS build\nARG TARGETARCH\nRUN echo $TARGETARCH > /out\n\
                     FROM busybox\nCOPY --from=build /out /out\n";
        assert_eq!(engine(cross), vec![s("build", "build", true, 3)]);
        // The same result for every target: built once.
        assert_eq!(
            engine(
                "FROM --platform=$BUILDPLATFORM busybox AS gen\nRUN date > /d\nFROM scratch\nCOPY --from=gen /d /\n"
            ),
            vec![s("gen", "gen", false, 2)]
        );
        // What the engine stage is built on comes along, TARGET ARGs included; a no-RUN
        // stage the target copies from is assembled.
        let chain = "FROM --platform=$BUILDPLATFORM busybox AS base\nARG TARGETOS\nFROM base AS build\nRUN make\n\
                     FROM scratch AS files\nCOPY a /a\nFROM busybox\nCOPY --from=files /a /a\nCOPY --from=build /x /x\n";
        assert_eq!(engine(chain), vec![s("build", "base+build", true, 4)]);
        // Not hybrid: the RUN stage runs on the target platform, the target is built on it,
        // or the target itself runs code.
        assert!(engine("FROM busybox AS build\nRUN make\nFROM busybox\nCOPY --from=build /x /x\n").is_empty());
        assert!(
            engine("FROM --platform=$BUILDPLATFORM busybox AS build\nRUN make\nFROM build\nCOPY a /a\n").is_empty()
        );
        assert!(
            engine("FROM --platform=$BUILDPLATFORM busybox AS build\nRUN make\nFROM busybox\nCOPY --from=build /x /x\nRUN x\n")
                .is_empty()
        );
        // What only BuildKit runs is named (the classic builder cannot build it).
        let mount = "FROM --platform=$BUILDPLATFORM busybox AS build\nCOPY a /a\nRUN --mount=type=cache,target=/c make\n\
                     FROM busybox\nCOPY --from=build /x /x\n";
        let v = verdicts(mount, &["linux/arm64"]).remove(0);
        assert_eq!(v.engine_stages[0].buildkit_only.as_ref().map(|l| l.line), Some(3));
        // Fully assemblable: nothing for an engine.
        assert!(engine("FROM busybox\nCOPY a /a\n").is_empty());
    }

    #[test]
    fn a_stage_pinned_to_another_platform_is_foreign_for_every_target() {
        let text = "ARG TOOLS=linux/arm64\nFROM --platform=$TOOLS busybox AS tools\nRUN make\nFROM busybox\nCOPY --from=tools /x /x\n";
        for v in &verdicts(text, &["linux/amd64", "linux/arm/v7"]) {
            assert!(v.foreign_code, "{}", v.platform);
            assert_eq!(v.foreign_platforms, vec!["linux/arm64".parse::<Platform>().unwrap()], "{}", v.platform);
            assert_eq!(v.deciding.as_ref().map(|d| d.line), Some(3));
            assert!(v.engine_stages.is_empty(), "not on the build platform, so not hybrid");
        }
    }

    #[test]
    fn small_helpers() {
        assert_eq!(go_atoi("+1"), Some(1));
        assert_eq!(go_atoi("-1"), Some(-1));
        assert_eq!(go_atoi("1a"), None);
        assert_eq!(go_atoi(""), None);
        assert_eq!(suggest("biuld", ["build", "final"].into_iter()), Some("build"));
        assert_eq!(suggest("zzz", ["build", "final"].into_iter()), None);
        assert_eq!(join_and(&["a".into(), "b".into(), "c".into()]), "a, b and c");
        let long = format!("RUN {}", "x".repeat(200));
        assert_eq!(instruction_text(&format!("FROM a\n  {long}  \n"), 2).chars().count(), MAX_INSTRUCTION_CHARS);
    }

    fn error(text: &str, target: Option<&str>) -> AnalysisError {
        let amd64: Platform = "linux/amd64".parse().unwrap();
        let input = AnalyzeInput {
            text,
            file: "docker/Dockerfile",
            build_args: &[],
            target,
            build_platform: &amd64,
            platforms: std::slice::from_ref(&amd64),
        };
        analyze(&input).unwrap_err()
    }

    /// Message and hint as `error::render` shows them: where and what, then the one fix.
    fn shown(e: &AnalysisError) -> String {
        format!("{e}\nhint: {}", e.hint())
    }

    #[test]
    fn each_error_has_its_own_hint() {
        let cases = [
            (
                "FROM alpine\nCOPY --from /a /b\n",
                None,
                "docker/Dockerfile:2: COPY: `--from` needs a value\nhint: write `COPY --from=<stage or image> <src> <dest>`",
            ),
            (
                "FROM alpine\nARG =1\n",
                None,
                "docker/Dockerfile:2: ARG `=1` has no name; expected `name[=default]`\nhint: write `ARG name` or `ARG name=default`",
            ),
            (
                "FROM --chown=1 alpine\n",
                None,
                "docker/Dockerfile:1: FROM: unknown flag `--chown=1`; FROM takes only `--platform`\nhint: remove `--chown=1`",
            ),
            (
                "FROM alpine\n",
                Some("x"),
                "target stage `x` not found in `docker/Dockerfile`; the Dockerfile names no stage\nhint: name a stage with `FROM image AS name`, or leave out `--target` to build the last stage",
            ),
            (
                "FROM alpine AS a\nFROM alpine AS b\n",
                Some("zzz"),
                "target stage `zzz` not found in `docker/Dockerfile`; expected one of `a`, `b`\nhint: pass one of the stage names to `--target`, or leave it out to build the last stage",
            ),
            (
                "# escape=x\nFROM alpine\n",
                None,
                "docker/Dockerfile:1: invalid escape token `x`; expected `\\` or a backtick\nhint: use `# escape=\\` (the default), or a backtick after `escape=`",
            ),
            (
                "FROM alpine\nCMD [\"a\", 1]\n",
                None,
                "docker/Dockerfile:2: the JSON array form takes strings only\nhint: quote every element of the JSON array: `[\"executable\", \"arg\"]`",
            ),
        ];
        for (text, target, want) in cases {
            assert_eq!(shown(&error(text, target)), want, "{text:?}");
        }
    }

    #[test]
    fn a_bad_platform_is_the_cause_not_part_of_the_message() {
        let e = error("FROM --platform=linux/sparc alpine\n", None);
        assert_eq!(
            e.to_string(),
            "docker/Dockerfile:1: `--platform=linux/sparc` gives `linux/sparc` (building for linux/amd64), which is \
             not a platform"
        );
        let cause = std::error::Error::source(&e).expect("the platform error is the source").to_string();
        assert!(cause.starts_with("platform `linux/sparc` has unknown architecture `sparc`"), "{cause}");
        assert_eq!(
            e.hint(),
            "write a platform as `os/arch[/variant]`, e.g. `--platform=linux/arm64` or `--platform=$BUILDPLATFORM`"
        );
    }
}
