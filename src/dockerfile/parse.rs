//! dockerfile::parse: Dockerfile text → instructions, read exactly as BuildKit's parser reads it
//! (moby/buildkit `frontend/dockerfile/parser`). Pure: no I/O, and no meaning — `analysis`
//! decides what the instructions do.
//!
//! Owns: parser directives (`# syntax=`, `# escape=`, `# check=`), comments, line continuations
//! (with comment and empty lines inside them), heredocs, JSON (exec) versus shell form, flags,
//! and the per-instruction argument rules (ENV/LABEL pairs, HEALTHCHECK, ONBUILD, …). The JSON
//! reader is `json.rs`, the shell-word lexer (used here for heredoc openers) `shell.rs`, and
//! BuildKit's `Node.Dump()` form `dump.rs`.
//!
//! Known gap, which none of BuildKit's own test cases exercise: flag words are read as
//! characters where BuildKit reads bytes (it mangles non-ASCII flag values; we keep them).

use std::collections::{BTreeSet, HashMap};

use super::json::{JsonError, parse_json_strings};
// Paths other modules (and tests) used when all of this lived here.
pub use super::dump::{dump, go_quote};
pub use super::shell::{Expansion, LexError, ShellLex};

/// The escape character when no `# escape=` directive says otherwise.
pub const DEFAULT_ESCAPE: char = '\\';

/// BuildKit reads lines with Go's `bufio.Scanner`, whose longest line is 64 KiB.
const MAX_LINE_BYTES: usize = 64 * 1024;

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// The parser directives found at the top of the file, in order.
    pub directives: Vec<Directive>,
    /// The escape character in force (`\` or a backtick).
    pub escape: char,
    /// One node per instruction, in file order.
    pub nodes: Vec<Node>,
    /// Non-fatal findings (BuildKit warns about empty lines inside a continuation).
    pub warnings: Vec<Warning>,
}

/// A parser directive: `# name=value` before any other line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// Lowercased: `syntax`, `escape` or `check`.
    pub name: String,
    pub value: String,
    /// 1-based.
    pub line: usize,
}

/// A non-fatal finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// 1-based line where the instruction ends.
    pub line: usize,
    pub message: String,
}

/// A heredoc attached to a RUN, COPY or ADD (or to an ONBUILD holding one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The terminator word, quotes removed (`EOF` for `<<'EOF'`).
    pub name: String,
    /// The lines between the instruction and the terminator, newlines kept, tabs not stripped.
    pub content: String,
    /// `<<-`: leading tabs are stripped from the content when it is used.
    pub chomp: bool,
    /// Whether variables in the content are expanded (the terminator was not quoted).
    pub expand: bool,
    /// `3<<EOF` → 3; 0 when absent.
    pub fd: u32,
}

/// One instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The instruction word, lowercased (`from`, `run`, …). Unknown words are kept as written,
    /// lowercased; rejecting them is `analysis`'s job, as it is BuildKit's instructions layer's.
    pub instruction: String,
    /// `--name=value` words before the arguments, quotes removed.
    pub flags: Vec<String>,
    /// The arguments as BuildKit's node chain holds them: JSON form unpacked, ENV and LABEL as
    /// `key, value, "="` triples (`""` instead of `"="` for the legacy `ENV key value` form),
    /// HEALTHCHECK as its type followed by its command.
    pub args: Vec<String>,
    /// The arguments were given in JSON (exec) form.
    pub json: bool,
    /// ONBUILD's trigger instruction.
    pub trigger: Option<Box<Node>>,
    pub heredocs: Vec<Heredoc>,
    /// The logical line: continuations joined, comment lines inside them dropped.
    pub original: String,
    /// 1-based line of the instruction's first line.
    pub start_line: usize,
    /// 1-based line of its last line (continuations and heredoc bodies included).
    pub end_line: usize,
    /// The comment lines right above it.
    pub comments: Vec<String>,
}

/// Why a Dockerfile could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {kind}")]
pub struct ParseError {
    /// 1-based line the problem starts at.
    pub line: usize,
    pub kind: ParseErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseErrorKind {
    #[error("only one `{0}` parser directive can be used")]
    DuplicateDirective(String),
    #[error("invalid escape token `{0}`; expected `\\` or a backtick")]
    InvalidEscape(String),
    #[error("the Dockerfile has no instructions; expected at least a FROM")]
    NoInstructions,
    #[error("line longer than {} bytes", MAX_LINE_BYTES - 1)]
    LineTooLong,
    #[error("{instruction} needs a name and a value: `{instruction} name=value`")]
    MissingValue { instruction: String },
    #[error("{instruction}: cannot find `=` in `{word}`; expected `name=value`")]
    MissingEquals { instruction: String, word: String },
    #[error("the JSON array form takes strings only")]
    NotStringArray,
    #[error("heredoc `{0}` is never terminated; expected a line holding only `{0}`")]
    UnterminatedHeredoc(String),
    #[error("heredoc `{word}`: {message}")]
    BadHeredoc { word: String, message: String },
}

/// Parses a Dockerfile as BuildKit does.
pub fn parse(text: &str) -> Result<Parsed, ParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let (lines, too_long) = split_lines(text);
    let mut directive_parser = DirectiveParser::default();
    let mut escape = DEFAULT_ESCAPE;
    let mut directives = Vec::new();
    let mut nodes: Vec<Node> = Vec::new();
    let mut warnings = Vec::new();
    let mut comments: Vec<String> = Vec::new();

    let mut i = 0;
    while i < lines.len() {
        let raw = lines[i];
        let line_no = i + 1;
        if is_comment(raw) {
            let comment = raw.trim_start()[1..].trim();
            if comment.is_empty() {
                comments.clear();
            } else {
                comments.push(comment.to_string());
            }
        }
        let token = trim_newline(raw).trim_start();
        let err = |kind| ParseError { line: line_no, kind };
        if let Some(d) = directive_parser.parse_line(token, line_no).map_err(err)? {
            if d.name == "escape" {
                escape = match d.value.as_str() {
                    "\\" => '\\',
                    "`" => '`',
                    other => return Err(err(ParseErrorKind::InvalidEscape(other.to_string()))),
                };
            }
            // A directive is not a comment about the next instruction.
            comments.pop();
            directives.push(d);
        }
        let content = if is_comment(token) { "" } else { token };
        i += 1;
        let start_line = i;

        let (first, mut complete) = trim_continuation(content, escape);
        if complete && first.is_empty() {
            continue;
        }
        let mut line = first.to_string();
        let mut had_empty_line = false;
        while !complete && i < lines.len() {
            let raw = lines[i];
            i += 1;
            // Comment lines inside a continuation are dropped and the continuation goes on;
            // so are empty lines (with a warning).
            if is_comment(raw) {
                continue;
            }
            let content = trim_newline(raw);
            if content.trim_start().is_empty() {
                had_empty_line = true;
                continue;
            }
            let (part, done) = trim_continuation(content, escape);
            line.push_str(part);
            complete = done;
        }
        if had_empty_line {
            warnings.push(Warning {
                line: i,
                message: format!(
                    "empty continuation line found in: {line}; empty continuation lines will become errors"
                ),
            });
        }

        let at_start = |kind| ParseError { line: start_line, kind };
        let mut node = node_from_line(&line, escape).map_err(at_start)?;
        if node.can_contain_heredoc() && line.contains("<<") {
            for mut doc in heredocs_from_line(&line).map_err(at_start)? {
                let mut terminated = false;
                while i < lines.len() {
                    let raw = lines[i];
                    i += 1;
                    let mut candidate = trim_newline(raw);
                    if doc.chomp {
                        candidate = candidate.trim_start_matches('\t');
                    }
                    if candidate == doc.name {
                        terminated = true;
                        break;
                    }
                    doc.content.push_str(raw);
                }
                if !terminated {
                    return Err(at_start(ParseErrorKind::UnterminatedHeredoc(doc.name)));
                }
                node.heredocs.push(doc);
            }
        }
        node.start_line = start_line;
        node.end_line = i;
        node.comments = std::mem::take(&mut comments);
        nodes.push(node);
    }

    if nodes.is_empty() {
        return Err(ParseError { line: lines.len().max(1), kind: ParseErrorKind::NoInstructions });
    }
    if too_long {
        return Err(ParseError { line: lines.len() + 1, kind: ParseErrorKind::LineTooLong });
    }
    Ok(Parsed { directives, escape, nodes, warnings })
}

impl Node {
    /// Whether BuildKit looks for heredocs in this instruction: RUN, COPY and ADD in shell form,
    /// directly or as an ONBUILD trigger.
    pub fn can_contain_heredoc(&self) -> bool {
        let node = match (&self.trigger, self.instruction.as_str()) {
            (Some(trigger), "onbuild") => trigger.as_ref(),
            _ => self,
        };
        matches!(node.instruction.as_str(), "run" | "copy" | "add") && !node.json
    }

    /// The value of each `--name=value` flag called `name`, in order. A flag given without `=`
    /// yields `None`.
    pub fn flag_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = Option<&'a str>> + 'a {
        self.flags.iter().filter_map(move |f| {
            let rest = f.strip_prefix("--")?;
            match rest.split_once('=') {
                Some((n, v)) if n == name => Some(Some(v)),
                None if rest == name => Some(None),
                _ => None,
            }
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Lines, comments, directives, continuations

/// Splits after each `\n`, keeping it, as BuildKit's scanner does. Also says whether a line was
/// too long for BuildKit's scanner, which stops there.
fn split_lines(text: &str) -> (Vec<&str>, bool) {
    let mut lines = Vec::new();
    for piece in text.split_inclusive('\n') {
        let too_long = if piece.ends_with('\n') { piece.len() > MAX_LINE_BYTES } else { piece.len() >= MAX_LINE_BYTES };
        if too_long {
            return (lines, true);
        }
        lines.push(piece);
    }
    (lines, false)
}

fn trim_newline(s: &str) -> &str {
    s.trim_end_matches(['\r', '\n'])
}

fn is_comment(s: &str) -> bool {
    s.trim_start().starts_with('#')
}

/// Go's RE2 `\s`.
fn is_re_space(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\x0c' | '\r' | ' ')
}

/// BuildKit's `reWhitespace`, `[\t\v\f\r ]`.
fn is_token_space(c: char) -> bool {
    matches!(c, '\t' | '\x0b' | '\x0c' | '\r' | ' ')
}

#[derive(Default)]
struct DirectiveParser {
    done: bool,
    seen: BTreeSet<String>,
}

impl DirectiveParser {
    /// Directives are `#name=value` lines before anything else; the first other line (an
    /// empty one included) ends them.
    fn parse_line(&mut self, token: &str, line: usize) -> Result<Option<Directive>, ParseErrorKind> {
        if self.done {
            return Ok(None);
        }
        let Some((name, value)) = token.strip_prefix('#').and_then(|rest| match_directive(rest.trim_start())) else {
            self.done = true;
            return Ok(None);
        };
        let name = name.to_ascii_lowercase();
        if !matches!(name.as_str(), "syntax" | "escape" | "check") {
            self.done = true;
            return Ok(None);
        }
        if !self.seen.insert(name.clone()) {
            return Err(ParseErrorKind::DuplicateDirective(name));
        }
        Ok(Some(Directive { name, value, line }))
    }
}

/// `^([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$`, as RE2 matches it.
fn match_directive(s: &str) -> Option<(String, String)> {
    if !s.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    let name_end = s.find(|c: char| !c.is_ascii_alphanumeric()).unwrap_or(s.len());
    let rest = s[name_end..].trim_start_matches(is_re_space).strip_prefix('=')?;
    let last = rest.chars().last()?;
    let value = rest.trim_matches(is_re_space);
    // An all-space value still matches: the lazy group takes the last space.
    let value = if value.is_empty() { last.to_string() } else { value.to_string() };
    Some((s[..name_end].to_string(), value))
}

/// Removes a trailing escape character (and the spaces after it) that continues the line, unless
/// it is itself escaped. Returns the line and whether the instruction is complete.
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let body = line.trim_end_matches([' ', '\t']);
    let Some(before) = body.strip_suffix(escape) else {
        return (line, true);
    };
    if before.is_empty() || !before.ends_with(escape) { (before, false) } else { (line, true) }
}

// ---------------------------------------------------------------------------------------------
// One logical line → one node

fn node_from_line(line: &str, escape: char) -> Result<Node, ParseErrorKind> {
    let trimmed = line.trim();
    let (word, rest) = match trimmed.find(is_token_space) {
        Some(at) => (&trimmed[..at], Some(trimmed[at..].trim_start_matches(is_token_space))),
        None => (trimmed, None),
    };
    let (args, flags) = rest.map(extract_flags).unwrap_or(("", Vec::new()));
    let args = args.trim();
    let mut node = Node {
        instruction: word.to_lowercase(),
        flags,
        args: Vec::new(),
        json: false,
        trigger: None,
        heredocs: Vec::new(),
        original: line.to_string(),
        start_line: 0,
        end_line: 0,
        comments: Vec::new(),
    };
    match node.instruction.as_str() {
        "add" | "copy" | "volume" => maybe_json_to_list(args, &mut node)?,
        "cmd" | "entrypoint" | "run" | "shell" => maybe_json(args, &mut node)?,
        "arg" => node.args = parse_words(args, escape),
        "env" | "label" => node.args = name_values(args, &word.to_uppercase(), escape)?,
        "expose" | "from" => node.args = split_token_space(args),
        "healthcheck" => health_config(args, &mut node)?,
        "maintainer" | "stopsignal" | "user" | "workdir" => {
            if !args.is_empty() {
                node.args = vec![args.to_string()];
            }
        }
        "onbuild" => {
            if !args.is_empty() {
                node.trigger = Some(Box::new(node_from_line(args, escape)?));
            }
        }
        // BuildKit keeps one empty argument for words it does not know.
        _ => node.args = vec![String::new()],
    }
    Ok(node)
}

/// Takes the `--flag` words off the front of an instruction's arguments. Quotes and backslashes
/// in them are processed; `--` ends the flags.
fn extract_flags(line: &str) -> (&str, Vec<String>) {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let n = chars.len();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut k = 0;
    while k <= n {
        let at_end = k == n;
        let mut ch = if at_end { '\0' } else { chars[k].1 };
        if phase == Phase::Spaces {
            if at_end {
                break;
            }
            if ch.is_whitespace() {
                k += 1;
                continue;
            }
            if ch != '-' || k + 1 == n || chars[k + 1].1 != '-' {
                return (&line[chars[k].0..], words);
            }
            phase = Phase::Word;
        }
        if at_end {
            if word != "--" && (blank_ok || !word.is_empty()) {
                words.push(word);
            }
            break;
        }
        if phase == Phase::Word {
            if ch.is_whitespace() {
                phase = Phase::Spaces;
                if word == "--" {
                    return (&line[chars[k].0..], words);
                }
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                blank_ok = false;
                k += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
                k += 1;
                continue;
            }
            if ch == '\\' {
                if k + 1 == n {
                    k += 1;
                    continue;
                }
                k += 1;
                ch = chars[k].1;
            }
            word.push(ch);
            k += 1;
            continue;
        }
        // In quotes.
        if ch == quote {
            phase = Phase::Word;
            k += 1;
            continue;
        }
        if ch == '\\' {
            if k + 1 == n {
                phase = Phase::Word;
                k += 1;
                continue;
            }
            k += 1;
            ch = chars[k].1;
        }
        word.push(ch);
        k += 1;
    }
    ("", words)
}

/// Go's `regexp.MustCompile("[\t\v\f\r ]+").Split(s, -1)`, for non-empty `s`.
fn split_token_space(s: &str) -> Vec<String> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut current = String::new();
    let mut in_space = false;
    for c in s.chars() {
        if is_token_space(c) {
            if !in_space {
                out.push(std::mem::take(&mut current));
                in_space = true;
            }
        } else {
            in_space = false;
            current.push(c);
        }
    }
    out.push(current);
    out
}

/// CMD, ENTRYPOINT, RUN, SHELL: a JSON array of strings, or else the whole text as one argument.
fn maybe_json(rest: &str, node: &mut Node) -> Result<(), ParseErrorKind> {
    if rest.is_empty() {
        return Ok(());
    }
    match parse_json_strings(rest) {
        Ok(args) => {
            node.args = args;
            node.json = true;
        }
        Err(JsonError::NotStrings) => return Err(ParseErrorKind::NotStringArray),
        Err(JsonError::Invalid) => node.args = vec![rest.to_string()],
    }
    Ok(())
}

/// ADD, COPY, VOLUME: a JSON array of strings, or else whitespace-separated words.
fn maybe_json_to_list(rest: &str, node: &mut Node) -> Result<(), ParseErrorKind> {
    match parse_json_strings(rest) {
        Ok(args) => {
            node.args = args;
            node.json = true;
        }
        Err(JsonError::NotStrings) => return Err(ParseErrorKind::NotStringArray),
        Err(JsonError::Invalid) => node.args = split_token_space(rest),
    }
    Ok(())
}

/// HEALTHCHECK: its type word (`CMD`, `NONE`, …) then the command as in CMD.
fn health_config(rest: &str, node: &mut Node) -> Result<(), ParseErrorKind> {
    let sep = rest.find(|c: char| c.is_ascii_whitespace() || c == '\x0b').unwrap_or(rest.len());
    if sep == 0 {
        return Ok(());
    }
    let command = rest[sep..].trim_start_matches(|c: char| c.is_ascii_whitespace() || c == '\x0b');
    maybe_json(command, node)?;
    node.args.insert(0, rest[..sep].to_string());
    Ok(())
}

/// ENV and LABEL: `key=value …` pairs, or the legacy `key value` form.
fn name_values(rest: &str, instruction: &str, escape: char) -> Result<Vec<String>, ParseErrorKind> {
    let words = parse_words(rest, escape);
    let Some(first) = words.first() else {
        return Ok(Vec::new());
    };
    if !first.contains('=') {
        let Some(at) = rest.find(is_token_space) else {
            return Err(ParseErrorKind::MissingValue { instruction: instruction.to_string() });
        };
        let value = rest[at..].trim_start_matches(is_token_space);
        return Ok(vec![rest[..at].to_string(), value.to_string(), String::new()]);
    }
    let mut out = Vec::new();
    for word in words {
        let Some((key, value)) = word.split_once('=') else {
            return Err(ParseErrorKind::MissingEquals { instruction: instruction.to_string(), word });
        };
        out.extend([key.to_string(), value.to_string(), "=".to_string()]);
    }
    Ok(out)
}

/// Splits on unquoted whitespace, keeping quotes and escapes in the words (BuildKit's
/// `parseWords`).
pub fn parse_words(rest: &str, escape: char) -> Vec<String> {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let chars: Vec<char> = rest.chars().collect();
    let n = chars.len();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut word = String::new();
    let mut pos = 0;
    while pos <= n {
        let at_end = pos == n;
        let mut ch = if at_end { '\0' } else { chars[pos] };
        if phase == Phase::Spaces {
            if at_end {
                break;
            }
            if ch.is_whitespace() {
                pos += 1;
                continue;
            }
            phase = Phase::Word;
        }
        if at_end {
            if blank_ok || !word.is_empty() {
                words.push(word);
            }
            break;
        }
        if phase == Phase::Word {
            if ch.is_whitespace() {
                phase = Phase::Spaces;
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
            }
            if ch == escape {
                if pos + 1 == n {
                    pos += 1;
                    continue;
                }
                // Unquoted, an escape and the character after it are both kept.
                word.push(ch);
                pos += 1;
                ch = chars[pos];
            }
            word.push(ch);
            pos += 1;
            continue;
        }
        // In quotes; single quotes escape nothing.
        if ch == quote {
            phase = Phase::Word;
        }
        if ch == escape && quote != '\'' {
            if pos + 1 == n {
                phase = Phase::Word;
                pos += 1;
                continue;
            }
            pos += 1;
            word.push(ch);
            ch = chars[pos];
        }
        word.push(ch);
        pos += 1;
    }
    words
}

// ---------------------------------------------------------------------------------------------
// Heredocs

/// The heredocs an instruction line opens, in order (`COPY <<A <<B /dst`).
fn heredocs_from_line(line: &str) -> Result<Vec<Heredoc>, ParseErrorKind> {
    let lex = ShellLex { escape: '\\', raw_quotes: true, raw_escapes: true, skip_unset_env: true };
    // BuildKit ignores a line its lexer cannot split: such a line opens no heredoc.
    let Ok(expansion) = lex.process(line, &HashMap::new()) else {
        return Ok(Vec::new());
    };
    let mut docs = Vec::new();
    for word in expansion.words {
        if let Some(doc) = parse_heredoc(&word)? {
            docs.push(doc);
        }
    }
    Ok(docs)
}

/// Reads one word as a heredoc opener: `[fd]<<[-]NAME`, where quoting any part of NAME turns
/// expansion off. `None` when the word is not one.
pub fn parse_heredoc(word: &str) -> Result<Option<Heredoc>, ParseErrorKind> {
    let digits_end = word.find(|c: char| !c.is_ascii_digit()).unwrap_or(word.len());
    let Some(rest) = word[digits_end..].strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    let rest = rest.trim_start_matches(is_re_space);
    if rest.is_empty() || rest.contains('<') {
        return Ok(None);
    }
    let fd = word[..digits_end].parse().unwrap_or(0);
    let bad = |e: LexError| ParseErrorKind::BadHeredoc { word: word.to_string(), message: e.message };
    let plain = ShellLex { skip_unset_env: true, ..ShellLex::new('\\') };
    let words = plain.process(rest, &HashMap::new()).map_err(bad)?.words;
    if words.len() != 1 {
        return Ok(None);
    }
    let raw = ShellLex { raw_quotes: true, ..plain }.process(rest, &HashMap::new()).map_err(bad)?.words;
    if raw.len() != 1 {
        return Err(ParseErrorKind::BadHeredoc {
            word: word.to_string(),
            message: "inconsistent word splitting".to_string(),
        });
    }
    // Quotes that did quoting vanish from the plain reading; escaped ones stay in both.
    let quotes = |s: &str| s.chars().filter(|c| matches!(c, '\'' | '"')).count();
    let expand = quotes(&words[0]) == quotes(&raw[0]);
    Ok(Some(Heredoc { name: words[0].clone(), content: String::new(), chomp, expand, fd }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Node {
        let parsed = parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert_eq!(parsed.nodes.len(), 1, "{text:?}");
        parsed.nodes.into_iter().next().unwrap()
    }

    #[test]
    fn directives_only_at_the_top() {
        let p = parse("# syntax=docker/dockerfile:1\n# CHECK = skip=all\n#escape=`\nFROM a `\n  AS b\n").unwrap();
        let names: Vec<_> = p.directives.iter().map(|d| (d.name.as_str(), d.value.as_str())).collect();
        assert_eq!(names, [("syntax", "docker/dockerfile:1"), ("check", "skip=all"), ("escape", "`")]);
        assert_eq!(p.nodes[0].args, ["a", "AS", "b"]);

        let p = parse("\n# escape=`\nFROM a `\n").unwrap();
        assert!(p.directives.is_empty());
        assert_eq!(p.nodes[0].args, ["a", "`"]);

        let e = parse("# escape=x\nFROM a\n").unwrap_err();
        assert_eq!(e.kind, ParseErrorKind::InvalidEscape("x".into()));
        let e = parse("# syntax=a\n# syntax=b\nFROM a\n").unwrap_err();
        assert_eq!((e.line, e.kind), (2, ParseErrorKind::DuplicateDirective("syntax".into())));
    }

    #[test]
    fn heredocs_as_buildkit_reads_them() {
        // From BuildKit's parser_heredoc_test.go.
        // (text, [(name, content, expand, chomp)])
        type Want = &'static [(&'static str, &'static str, bool, bool)];
        let cases: &[(&str, Want)] = &[
            ("RUN <<EMPTY\nEMPTY\n", &[("EMPTY", "", true, false)]),
            ("RUN 3<<EMPTY2\nEMPTY2\n", &[("EMPTY2", "", true, false)]),
            ("RUN <<INDENT\n\tfoo\n\tbar\nINDENT\n", &[("INDENT", "\tfoo\n\tbar\n", true, false)]),
            ("RUN <<-UNINDENT\n\tbaz\n\tquux\n\tUNINDENT\n", &[("UNINDENT", "\tbaz\n\tquux\n", true, true)]),
            (
                "RUN <<-'NOEXPAND'\n\tdon't expand $NAME\nNOEXPAND\n",
                &[("NOEXPAND", "\tdon't expand $NAME\n", false, true)],
            ),
            (
                "RUN --mount=type=cache,target=/foo <<MOUNT\necho hello\nMOUNT\n",
                &[("MOUNT", "echo hello\n", true, false)],
            ),
            (
                "COPY <<FILE1 <<FILE2 /dest\ncontent 1\nFILE1\ncontent 2\nFILE2\n",
                &[("FILE1", "content 1\n", true, false), ("FILE2", "content 2\n", true, false)],
            ),
            ("COPY <<X <<Y /dest\nY\nX\nX\nY\n", &[("X", "Y\n", true, false), ("Y", "X\n", true, false)]),
            (
                "RUN <<COMPLEX python3\nprint('hello world')\nCOMPLEX\n",
                &[("COMPLEX", "print('hello world')\n", true, false)],
            ),
            ("RUN <<eo'f'\necho foo\neof\n", &[("eof", "echo foo\n", false, false)]),
            ("RUN <<eo\\'f\necho foo\neo'f\n", &[("eo'f", "echo foo\n", true, false)]),
            ("RUN <<'e'o\\'f\necho foo\neo'f\n", &[("eo'f", "echo foo\n", false, false)]),
            ("RUN <<'one two'\necho bar\none two\n", &[("one two", "echo bar\n", false, false)]),
            ("RUN <<$EOF\n$EOF\n", &[("$EOF", "", true, false)]),
            ("RUN <<  EOF\nEOF\n", &[("EOF", "", true, false)]),
            ("RUN <<  EOF  > foo\nEOF\n", &[("EOF", "", true, false)]),
            ("ONBUILD RUN <<EOF\necho\nEOF\n", &[("EOF", "echo\n", true, false)]),
            ("RUN \"<<NOHEREDOC\"\n", &[]),
            ("RUN [\"<<EOF\"]\n", &[]),
            ("USER <<INVALID\n", &[]),
        ];
        for (text, want) in cases {
            let node = one(text);
            let got: Vec<_> =
                node.heredocs.iter().map(|h| (h.name.as_str(), h.content.as_str(), h.expand, h.chomp)).collect();
            assert_eq!(&got, want, "{text:?}");
            assert_eq!(node.end_line, text.lines().count(), "{text:?}");
        }
        assert_eq!(one("RUN 3<<EMPTY2\nEMPTY2\n").heredocs[0].fd, 3);
        let e = parse("FROM a\nRUN <<EOF\necho\n").unwrap_err();
        assert_eq!((e.line, e.kind), (2, ParseErrorKind::UnterminatedHeredoc("EOF".into())));
    }

    #[test]
    fn heredoc_openers() {
        for word in
            ["<<EOF", "<<'EOF'", "<<\"EOF\"", "<<-EOF", "<<-'EOF'", "<<-\"EOF\"", "<<EO\"F\"", "<< EOF", "<<- EOF"]
        {
            assert_eq!(parse_heredoc(word).unwrap().map(|h| h.name), Some("EOF".into()), "{word}");
        }
        for word in ["<<'EOF", "<<\"EOF", "<<EOF'", "<<EOF\""] {
            assert!(parse_heredoc(word).is_err(), "{word}");
        }
        for word in ["", "EOF", "<<", "<<-", "<EOF", "<<<EOF", "<<EOF sh"] {
            assert_eq!(parse_heredoc(word).unwrap(), None, "{word}");
        }
    }

    #[test]
    fn words_keep_quotes() {
        let cases: &[(&str, &[&str])] = &[
            ("foo bar", &["foo", "bar"]),
            ("foo\\ bar", &["foo\\ bar"]),
            ("foo bar 'abc xyz'", &["foo", "bar", "'abc xyz'"]),
            ("föo bàr \"âbc xÿz\"", &["föo", "bàr", "\"âbc xÿz\""]),
        ];
        for (input, want) in cases {
            assert_eq!(parse_words(input, '\\'), *want, "{input}");
        }
    }

    #[test]
    fn flags_and_json() {
        let n = one("COPY --from=build --chmod=\"0755\" -- --x /y\n");
        assert_eq!(n.flags, ["--from=build", "--chmod=0755"]);
        assert_eq!(n.args, ["--x", "/y"]);
        assert_eq!(n.flag_values("from").collect::<Vec<_>>(), [Some("build")]);
        assert!(one("CMD [\"a\", \"\\ud83d\\ude00\", \"\\ud800\"]").json);
        assert_eq!(one("CMD [\"\\ud83d\\ude00\", \"\\ud800\"]").args, ["\u{1F600}", "\u{fffd}"]);
        assert_eq!(one("CMD [1e999]").args, ["[1e999]"]);
        assert_eq!(parse("CMD [\"a\", 1]").unwrap_err().kind, ParseErrorKind::NotStringArray);
        assert_eq!(parse("CMD [[\"a\"]]").unwrap_err().kind, ParseErrorKind::NotStringArray);
        assert_eq!(one("CMD [\"a\", {\"b\": [1, true, null]}").args, ["[\"a\", {\"b\": [1, true, null]}"]);
        assert_eq!(one("FOO bar").args, [""]);
    }

    #[test]
    fn continuation_rules() {
        let p = parse("FROM a\nRUN a \\\n\n  # c\n  b \\\\\nRUN c\n").unwrap();
        assert_eq!(p.nodes[1].args, ["a   b \\\\"]);
        assert_eq!((p.nodes[1].start_line, p.nodes[1].end_line), (2, 5));
        assert_eq!(p.warnings.len(), 1);
        assert_eq!(p.nodes[2].start_line, 6);
    }

    #[test]
    fn long_lines_stop_the_parser() {
        let text = format!("FROM image\nLABEL test={}\n", "a".repeat(MAX_LINE_BYTES));
        assert_eq!(parse(&text).unwrap_err().kind, ParseErrorKind::LineTooLong);
    }
}
