//! dockerfile::parse: Dockerfile text → instructions, read exactly as BuildKit's parser reads it
//! (moby/buildkit `frontend/dockerfile/parser` and the word lexer of `frontend/dockerfile/shell`).
//! Pure: no I/O, and no meaning — `analysis` decides what the instructions do.
//!
//! Owns: parser directives (`# syntax=`, `# escape=`, `# check=`), comments, line continuations
//! (with comment and empty lines inside them), heredocs, JSON (exec) versus shell form, flags,
//! the per-instruction argument rules (ENV/LABEL pairs, HEALTHCHECK, ONBUILD, …), BuildKit's
//! `Node.Dump()` S-expressions (`dump`), and `ShellLex`, the shell-word lexer BuildKit uses for
//! heredoc names and for expanding ARGs.
//!
//! Known gaps, none of which BuildKit's own test cases exercise: Go's `strconv.IsPrint` is
//! approximated (unassigned code points count as printable), and flag words are read as
//! characters where BuildKit reads bytes (it mangles non-ASCII flag values; we keep them).

use std::collections::{BTreeSet, HashMap};

/// The escape character when no `# escape=` directive says otherwise.
pub const DEFAULT_ESCAPE: char = '\\';

/// BuildKit reads lines with Go's `bufio.Scanner`, whose longest line is 64 KiB.
const MAX_LINE_BYTES: usize = 64 * 1024;

/// Go's `encoding/json` refuses documents nested deeper than this.
const MAX_JSON_DEPTH: usize = 10_000;

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

/// The S-expressions BuildKit's `Node.Dump()` prints: one line per instruction,
/// `(instruction ["--flag" …] "arg" …)`, strings quoted as Go's `strconv.Quote` does.
pub fn dump(parsed: &Parsed) -> String {
    let mut out = String::new();
    for node in &parsed.nodes {
        out.push('(');
        out.push_str(&dump_node(node));
        out.push_str(")\n");
    }
    out
}

fn dump_node(node: &Node) -> String {
    let mut s = node.instruction.to_lowercase();
    if !node.flags.is_empty() {
        let flags: Vec<String> = node.flags.iter().map(|f| go_quote(f)).collect();
        s.push_str(" [");
        s.push_str(&flags.join(" "));
        s.push(']');
    }
    if let Some(trigger) = &node.trigger {
        s.push_str(" (");
        s.push_str(&dump_node(trigger));
        s.push(')');
    }
    for arg in &node.args {
        s.push(' ');
        s.push_str(&go_quote(arg));
    }
    s.trim().to_string()
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
// JSON form

enum JsonError {
    /// Not a JSON array (or not valid JSON): the text is shell form.
    Invalid,
    /// A valid JSON array holding something other than strings: an error.
    NotStrings,
}

#[derive(Debug)]
enum JsonToken {
    Open(char),
    Close(char),
    Comma,
    Colon,
    Str(String),
    Scalar,
}

/// Reads `[ "a", "b" ]` as Go's `json.Unmarshal` into `[]any` would, then insists on strings.
fn parse_json_strings(text: &str) -> Result<Vec<String>, JsonError> {
    let text = text.trim_start();
    if !text.starts_with('[') {
        return Err(JsonError::Invalid);
    }
    let tokens = json_tokens(text)?;

    #[derive(Clone, Copy, PartialEq)]
    enum Expect {
        Value,
        ValueOrClose,
        CommaOrClose,
        KeyOrClose,
        Key,
        Colon,
        Done,
    }
    let mut stack: Vec<char> = Vec::new();
    let mut expect = Expect::Value;
    let mut strings = Vec::new();
    let mut non_string = false;
    for token in tokens {
        let starts_value = matches!(token, JsonToken::Open(_) | JsonToken::Str(_) | JsonToken::Scalar);
        if starts_value && matches!(expect, Expect::Value | Expect::ValueOrClose) {
            if stack.len() == 1 {
                match &token {
                    JsonToken::Str(s) => strings.push(s.clone()),
                    _ => non_string = true,
                }
            }
            if let JsonToken::Open(c) = token {
                stack.push(c);
                if stack.len() > MAX_JSON_DEPTH {
                    return Err(JsonError::Invalid);
                }
                expect = if c == '[' { Expect::ValueOrClose } else { Expect::KeyOrClose };
                continue;
            }
        } else {
            match (token, expect) {
                (JsonToken::Close(']'), Expect::ValueOrClose | Expect::CommaOrClose) if stack.last() == Some(&'[') => {
                    stack.pop();
                }
                (JsonToken::Close('}'), Expect::KeyOrClose | Expect::CommaOrClose) if stack.last() == Some(&'{') => {
                    stack.pop();
                }
                (JsonToken::Comma, Expect::CommaOrClose) => {
                    expect = if stack.last() == Some(&'[') { Expect::Value } else { Expect::Key };
                    continue;
                }
                (JsonToken::Str(_), Expect::KeyOrClose | Expect::Key) => {
                    expect = Expect::Colon;
                    continue;
                }
                (JsonToken::Colon, Expect::Colon) => {
                    expect = Expect::Value;
                    continue;
                }
                _ => return Err(JsonError::Invalid),
            }
        }
        // A value is complete.
        expect = if stack.is_empty() { Expect::Done } else { Expect::CommaOrClose };
    }
    if expect != Expect::Done {
        return Err(JsonError::Invalid);
    }
    if non_string { Err(JsonError::NotStrings) } else { Ok(strings) }
}

fn json_tokens(text: &str) -> Result<Vec<JsonToken>, JsonError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '[' | '{' => {
                tokens.push(JsonToken::Open(c));
                i += 1;
            }
            ']' | '}' => {
                tokens.push(JsonToken::Close(c));
                i += 1;
            }
            ',' => {
                tokens.push(JsonToken::Comma);
                i += 1;
            }
            ':' => {
                tokens.push(JsonToken::Colon);
                i += 1;
            }
            '"' => {
                let (s, next) = json_string(&chars, i + 1)?;
                tokens.push(JsonToken::Str(s));
                i = next;
            }
            't' | 'f' | 'n' => {
                let word = ["true", "false", "null"]
                    .into_iter()
                    .find(|w| chars[i..].starts_with(&w.chars().collect::<Vec<_>>()));
                let word = word.ok_or(JsonError::Invalid)?;
                tokens.push(JsonToken::Scalar);
                i += word.len();
            }
            '-' | '0'..='9' => {
                let end = json_number_end(&chars, i).ok_or(JsonError::Invalid)?;
                let number: String = chars[i..end].iter().collect();
                // Go cannot hold it in a float64: Unmarshal fails, so the text is shell form.
                if number.parse::<f64>().map_or(true, |f| f.is_infinite()) {
                    return Err(JsonError::Invalid);
                }
                tokens.push(JsonToken::Scalar);
                i = end;
            }
            _ => return Err(JsonError::Invalid),
        }
    }
    Ok(tokens)
}

fn json_number_end(chars: &[char], mut i: usize) -> Option<usize> {
    let digits = |chars: &[char], mut i: usize| {
        let start = i;
        while i < chars.len() && chars[i].is_ascii_digit() {
            i += 1;
        }
        (i > start).then_some(i)
    };
    if chars.get(i) == Some(&'-') {
        i += 1;
    }
    i = match chars.get(i) {
        Some('0') => i + 1,
        Some('1'..='9') => digits(chars, i)?,
        _ => return None,
    };
    if chars.get(i) == Some(&'.') {
        i = digits(chars, i + 1)?;
    }
    if matches!(chars.get(i), Some('e' | 'E')) {
        i += 1;
        if matches!(chars.get(i), Some('+' | '-')) {
            i += 1;
        }
        i = digits(chars, i)?;
    }
    Some(i)
}

/// Decodes a JSON string body starting after its opening quote; returns it and the index after
/// the closing quote. Lone surrogates become U+FFFD, as in Go.
fn json_string(chars: &[char], mut i: usize) -> Result<(String, usize), JsonError> {
    let mut out = String::new();
    let hex4 = |i: usize| -> Option<u32> {
        let s: String = chars.get(i..i + 4)?.iter().collect();
        if s.chars().all(|c| c.is_ascii_hexdigit()) { u32::from_str_radix(&s, 16).ok() } else { None }
    };
    loop {
        let c = *chars.get(i).ok_or(JsonError::Invalid)?;
        i += 1;
        match c {
            '"' => return Ok((out, i)),
            '\\' => {
                let e = *chars.get(i).ok_or(JsonError::Invalid)?;
                i += 1;
                match e {
                    '"' => out.push('"'),
                    '\\' => out.push('\\'),
                    '/' => out.push('/'),
                    'b' => out.push('\x08'),
                    'f' => out.push('\x0c'),
                    'n' => out.push('\n'),
                    'r' => out.push('\r'),
                    't' => out.push('\t'),
                    'u' => {
                        let unit = hex4(i).ok_or(JsonError::Invalid)?;
                        i += 4;
                        if (0xD800..0xDC00).contains(&unit)
                            && chars.get(i) == Some(&'\\')
                            && chars.get(i + 1) == Some(&'u')
                            && let Some(low) = hex4(i + 2).filter(|l| (0xDC00..0xE000).contains(l))
                        {
                            i += 6;
                            let c = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
                            out.push(char::from_u32(c).unwrap_or('\u{fffd}'));
                        } else {
                            out.push(char::from_u32(unit).unwrap_or('\u{fffd}'));
                        }
                    }
                    _ => return Err(JsonError::Invalid),
                }
            }
            c if (c as u32) < 0x20 => return Err(JsonError::Invalid),
            c => out.push(c),
        }
    }
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

// ---------------------------------------------------------------------------------------------
// Go's strconv.Quote

/// Quotes a string as Go's `strconv.Quote` does.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if go_is_print(c) => out.push(c),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\x7f' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// Go's `strconv.IsPrint`: letters, marks, numbers, punctuation, symbols and the ASCII space.
/// Approximated without Unicode category tables: controls, non-ASCII spaces, format characters,
/// private use and noncharacters are not printable; everything else is.
fn go_is_print(c: char) -> bool {
    let u = c as u32;
    if u < 0x80 {
        return (0x20..0x7f).contains(&u);
    }
    let format = matches!(u,
        0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x890..=0x891 | 0x8E2 | 0x180E | 0x200B..=0x200F
        | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F | 0xFEFF | 0xFFF9..=0xFFFB | 0x110BD
        | 0x110CD | 0x13430..=0x1343F | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A | 0xE0001 | 0xE0020..=0xE007F);
    let private = matches!(u, 0xE000..=0xF8FF | 0xF0000..=0xFFFFD | 0x100000..=0x10FFFD);
    let nonchar = (0xFDD0..=0xFDEF).contains(&u) || u & 0xFFFE == 0xFFFE;
    !c.is_control() && !c.is_whitespace() && !format && !private && !nonchar
}

// ---------------------------------------------------------------------------------------------
// BuildKit's shell-word lexer

/// BuildKit's shell lexer (`shell.Lex`): quotes, escapes and `$VAR`, `${VAR}`,
/// `${VAR:-x}`, `${VAR-x}`, `${VAR:+x}`, `${VAR+x}`, `${VAR:?msg}`, `${VAR#p}`, `${VAR%p}`,
/// `${VAR/p/r}` and their doubled forms; it also splits the result into words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShellLex {
    /// The Dockerfile's escape character.
    pub escape: char,
    /// Keep quote characters in the result.
    pub raw_quotes: bool,
    /// Keep escape characters in the result.
    pub raw_escapes: bool,
    /// Leave references to unset variables as written instead of expanding them to "".
    pub skip_unset_env: bool,
}

/// What `ShellLex::process` made of a word.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expansion {
    /// The expanded text.
    pub result: String,
    /// The expanded text split into words, honouring quotes.
    pub words: Vec<String>,
    /// Variables referenced and found.
    pub matched: BTreeSet<String>,
    /// Variables referenced but not set.
    pub unmatched: BTreeSet<String>,
}

/// Why a word could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot expand `{word}`: {message}")]
pub struct LexError {
    pub word: String,
    pub message: String,
}

impl ShellLex {
    pub fn new(escape: char) -> Self {
        ShellLex { escape, raw_quotes: false, raw_escapes: false, skip_unset_env: false }
    }

    /// Expands `word` with `env` (names compared exactly, as on Linux).
    pub fn process(&self, word: &str, env: &HashMap<String, String>) -> Result<Expansion, LexError> {
        let mut state = LexState {
            lex: *self,
            chars: word.chars().collect(),
            pos: 0,
            raw_escapes: self.raw_escapes,
            env,
            matched: BTreeSet::new(),
            unmatched: BTreeSet::new(),
        };
        let raw_escapes = self.raw_escapes;
        match state.process_until(None, raw_escapes) {
            Ok((result, words)) => Ok(Expansion { result, words, matched: state.matched, unmatched: state.unmatched }),
            Err(message) => Err(LexError { word: word.to_string(), message }),
        }
    }
}

struct LexState<'a> {
    lex: ShellLex,
    chars: Vec<char>,
    pos: usize,
    raw_escapes: bool,
    env: &'a HashMap<String, String>,
    matched: BTreeSet<String>,
    unmatched: BTreeSet<String>,
}

#[derive(Default)]
struct Words {
    word: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, c: char) {
        if c.is_whitespace() {
            if self.in_word && !self.word.is_empty() {
                self.words.push(std::mem::take(&mut self.word));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(c);
        }
    }
    fn add_raw_char(&mut self, c: char) {
        self.word.push(c);
        self.in_word = true;
    }
    fn add_string(&mut self, s: &str) {
        s.chars().for_each(|c| self.add_char(c));
    }
    fn add_raw_string(&mut self, s: &str) {
        self.word.push_str(s);
        self.in_word = true;
    }
    fn finish(mut self) -> Vec<String> {
        if !self.word.is_empty() {
            self.words.push(self.word);
        }
        self.words
    }
}

impl LexState<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn get_env(&mut self, name: &str) -> Option<String> {
        match self.env.get(name) {
            Some(v) => {
                self.matched.insert(name.to_string());
                Some(v.clone())
            }
            None => {
                self.unmatched.insert(name.to_string());
                None
            }
        }
    }

    /// Reads until `stop` (consumed) or the end; returns the text and its words.
    fn process_until(&mut self, stop: Option<char>, raw_escapes: bool) -> Result<(String, Vec<String>), String> {
        let saved = self.raw_escapes;
        self.raw_escapes = raw_escapes;
        let out = self.process_until_inner(stop);
        self.raw_escapes = saved;
        out
    }

    fn process_until_inner(&mut self, stop: Option<char>) -> Result<(String, Vec<String>), String> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.next();
                return Ok((result, words.finish()));
            }
            match ch {
                '$' => {
                    let value = self.dollar()?;
                    result.push_str(&value);
                    words.add_string(&value);
                }
                '<' => {
                    let value = self.possible_heredoc();
                    result.push_str(&value);
                    words.add_raw_string(&value);
                }
                '\'' => {
                    let value = self.single_quote()?;
                    result.push_str(&value);
                    words.add_raw_string(&value);
                }
                '"' => {
                    let value = self.double_quote()?;
                    result.push_str(&value);
                    words.add_raw_string(&value);
                }
                _ => {
                    let mut ch = self.next().unwrap_or_default();
                    if ch == self.lex.escape {
                        if self.raw_escapes {
                            words.add_raw_char(ch);
                            result.push(ch);
                        }
                        // An escape escapes the next character, except at the very end.
                        match self.next() {
                            None => break,
                            Some(c) => ch = c,
                        }
                        words.add_raw_char(ch);
                    } else {
                        words.add_char(ch);
                    }
                    result.push(ch);
                }
            }
        }
        if let Some(stop) = stop {
            return Err(format!("unexpected end of statement while looking for matching {stop}"));
        }
        Ok((result, words.finish()))
    }

    /// `<<` keeps the spaces after it, so that `<< EOF` stays one word.
    fn possible_heredoc(&mut self) -> String {
        self.next();
        if self.peek() != Some('<') {
            return "<".to_string();
        }
        self.next();
        let mut out = "<<".to_string();
        while let Some(c @ (' ' | '\t' | '\r')) = self.peek() {
            out.push(c);
            self.next();
        }
        out
    }

    fn single_quote(&mut self) -> Result<String, String> {
        let mut out = String::new();
        let open = self.next().unwrap_or('\'');
        if self.lex.raw_quotes {
            out.push(open);
        }
        loop {
            match self.next() {
                None => return Err("unexpected end of statement while looking for matching single-quote".into()),
                Some('\'') => {
                    if self.lex.raw_quotes {
                        out.push('\'');
                    }
                    return Ok(out);
                }
                Some(c) => out.push(c),
            }
        }
    }

    fn double_quote(&mut self) -> Result<String, String> {
        let mut out = String::new();
        let open = self.next().unwrap_or('"');
        if self.lex.raw_quotes {
            out.push(open);
        }
        loop {
            match self.peek() {
                None => return Err("unexpected end of statement while looking for matching double-quote".into()),
                Some('"') => {
                    self.next();
                    if self.lex.raw_quotes {
                        out.push('"');
                    }
                    return Ok(out);
                }
                Some('$') => out.push_str(&self.dollar()?),
                Some(_) => {
                    let mut ch = self.next().unwrap_or_default();
                    if ch == self.lex.escape {
                        if self.raw_escapes {
                            out.push(ch);
                        }
                        match self.peek() {
                            // An escape at the very end is dropped; the quote is then unterminated.
                            None => continue,
                            Some(c) if c == '"' || c == '$' || c == self.lex.escape => {
                                ch = self.next().unwrap_or(c);
                            }
                            // Other escapes stay as written.
                            Some(_) => {}
                        }
                    }
                    out.push(ch);
                }
            }
        }
    }

    fn dollar(&mut self) -> Result<String, String> {
        self.next();
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".to_string());
            }
            return Ok(match self.get_env(&name) {
                Some(v) => v,
                None if self.lex.skip_unset_env => format!("${name}"),
                None => String::new(),
            });
        }
        self.next();
        match self.peek() {
            None => return Err("syntax error: missing '}'".into()),
            Some('{' | '}' | ':') => return Err("syntax error: bad substitution".into()),
            Some(_) => {}
        }
        let name = self.name();
        let ch = self.next();
        // Go prints a missing character as U+FFFD.
        let mut modifier = ch.unwrap_or('\u{fffd}').to_string();
        match ch {
            Some('}') => Ok(match self.get_env(&name) {
                Some(v) => v,
                None if self.lex.skip_unset_env => format!("${{{name}}}"),
                None => String::new(),
            }),
            Some(':') => {
                let op = self.next();
                modifier.push(op.unwrap_or('\u{fffd}'));
                self.modifier(&name, op, &modifier, true)
            }
            Some('+' | '-' | '?' | '#' | '%') => self.modifier(&name, ch, &modifier, false),
            Some('/') => self.replace(&name),
            _ => Err(format!("unsupported modifier ({modifier}) in substitution")),
        }
    }

    fn modifier(
        &mut self,
        name: &str,
        op: Option<char>,
        modifier: &str,
        null_is_unset: bool,
    ) -> Result<String, String> {
        let raw_escapes = matches!(op, Some('#' | '%'));
        let word = match self.process_until(Some('}'), raw_escapes) {
            Ok((word, _)) => word,
            Err(_) if self.peek().is_none() => return Err("syntax error: missing '}'".into()),
            Err(e) => return Err(e),
        };
        let value = self.get_env(name);
        let Some(value) = value else {
            if self.lex.skip_unset_env {
                return Ok(format!("${{{name}{modifier}{word}}}"));
            }
            return match op {
                Some('-') => Ok(word),
                Some('+') => Ok(String::new()),
                Some('?') => {
                    let message = if word.is_empty() { "is not allowed to be unset" } else { &word };
                    Err(format!("{name}: {message}"))
                }
                Some('%' | '#') => trim_pattern(op == Some('%'), &word, ""),
                _ => Err(format!("unsupported modifier ({modifier}) in substitution")),
            };
        };
        let empty = null_is_unset && value.is_empty();
        match op {
            Some('-') => Ok(if empty { word } else { value }),
            Some('+') => Ok(if empty { String::new() } else { word }),
            Some('?') if empty => {
                let message = if word.is_empty() { "is not allowed to be empty" } else { &word };
                Err(format!("{name}: {message}"))
            }
            Some('?') => Ok(value),
            Some('%' | '#') => trim_pattern(op == Some('%'), &word, &value),
            _ => Err(format!("unsupported modifier ({modifier}) in substitution")),
        }
    }

    fn replace(&mut self, name: &str) -> Result<String, String> {
        let all = self.peek() == Some('/');
        if all {
            self.next();
        }
        let pattern = match self.process_until(Some('/'), true) {
            Ok((p, _)) => p,
            Err(_) if self.peek().is_none() => return Err("syntax error: missing '/' in ${}".into()),
            Err(e) => return Err(e),
        };
        let replacement = match self.process_until(Some('}'), true) {
            Ok((r, _)) => r,
            Err(_) if self.peek().is_none() => return Err("syntax error: missing '}'".into()),
            Err(e) => return Err(e),
        };
        let Some(value) = self.get_env(name) else {
            if self.lex.skip_unset_env {
                return Ok(format!("${{{name}/{pattern}/{replacement}}}"));
            }
            return replace_pattern("", &pattern, &replacement, all);
        };
        replace_pattern(&value, &pattern, &replacement, all)
    }

    /// A variable name: letters, digits and `_`; or a run of digits; or one special parameter.
    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && ch.is_numeric() {
                while let Some(d) = self.peek().filter(|c| c.is_numeric()) {
                    name.push(d);
                    self.next();
                }
                return name;
            }
            if name.is_empty() && matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.next();
                return ch.to_string();
            }
            if !ch.is_alphanumeric() && ch != '_' {
                break;
            }
            name.push(ch);
            self.next();
        }
        name
    }
}

/// A shell pattern: `*`, `?` and literal characters (`\` escapes `*`, `?` and `\`).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Glob {
    Star,
    One,
    Lit(char),
}

fn compile_glob(pattern: &str) -> Result<Vec<Glob>, String> {
    let invalid = |why: String| format!("invalid pattern ({pattern}) in substitution: {why}");
    let mut out = Vec::new();
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => out.push(Glob::Star),
            '?' => out.push(Glob::One),
            '\\' => {
                // `\}` and `\/` only kept the character out of the `${}` syntax.
                if matches!(chars.peek(), Some('}' | '/')) {
                    continue;
                }
                match chars.next() {
                    Some(e @ ('*' | '?' | '\\')) => out.push(Glob::Lit(e)),
                    Some(e) => return Err(invalid(format!("invalid escape '\\{e}'"))),
                    None => return Err(invalid("invalid escape '\\'".into())),
                }
            }
            c => out.push(Glob::Lit(c)),
        }
    }
    Ok(out)
}

/// The end positions at which `glob` can match `chars[start..]`.
fn glob_ends(glob: &[Glob], chars: &[char], start: usize) -> Vec<usize> {
    let n = chars.len();
    let mut set = vec![false; n + 1];
    set[start] = true;
    for g in glob {
        let mut next = vec![false; n + 1];
        match g {
            Glob::Star => {
                if let Some(first) = set.iter().position(|&b| b) {
                    next[first..].iter_mut().for_each(|b| *b = true);
                }
            }
            Glob::One => (0..n).filter(|&p| set[p]).for_each(|p| next[p + 1] = true),
            Glob::Lit(c) => (0..n).filter(|&p| set[p] && chars[p] == *c).for_each(|p| next[p + 1] = true),
        }
        set = next;
    }
    (0..=n).filter(|&p| set[p]).collect()
}

/// `${v#p}`, `${v##p}` (prefix) and `${v%p}`, `${v%%p}` (suffix); the doubled forms remove the
/// longest match, the single ones the shortest.
fn trim_pattern(suffix: bool, word: &str, value: &str) -> Result<String, String> {
    let op = if suffix { '%' } else { '#' };
    let (greedy, pattern) = match word.strip_prefix(op) {
        Some(p) => (true, p),
        None => (false, word),
    };
    let glob = compile_glob(pattern)?;
    let chars: Vec<char> = value.chars().collect();
    let n = chars.len();
    if suffix {
        let starts: Vec<usize> = (0..=n).filter(|&s| glob_ends(&glob, &chars, s).contains(&n)).collect();
        let start = if greedy { starts.first() } else { starts.last() };
        Ok(start.map_or_else(|| value.to_string(), |&s| chars[..s].iter().collect()))
    } else {
        let ends = glob_ends(&glob, &chars, 0);
        let end = if greedy { ends.last() } else { ends.first() };
        Ok(end.map_or_else(|| value.to_string(), |&e| chars[e..].iter().collect()))
    }
}

/// `${v/p/r}` and `${v//p/r}`: replaces the first (or every) longest leftmost match.
fn replace_pattern(value: &str, pattern: &str, replacement: &str, all: bool) -> Result<String, String> {
    let glob = compile_glob(pattern)?;
    let chars: Vec<char> = value.chars().collect();
    let n = chars.len();
    let find = |from: usize| (from..=n).find_map(|s| glob_ends(&glob, &chars, s).last().map(|&e| (s, e)));
    let text = |a: usize, b: usize| chars[a..b].iter().collect::<String>();
    if !all {
        return Ok(match find(0) {
            Some((s, e)) => format!("{}{replacement}{}", text(0, s), text(e, n)),
            None => value.to_string(),
        });
    }
    // Go's Regexp.ReplaceAllString, which also expands `$0`, `${0}` and `$$` in the replacement.
    let mut out = String::new();
    let mut last_end = 0;
    let mut search = 0;
    while search <= n {
        let Some((s, e)) = find(search) else { break };
        out.push_str(&text(last_end, s));
        if e > last_end || s == 0 {
            out.push_str(&expand_template(replacement, &text(s, e)));
        }
        last_end = e;
        search = if search + 1 > e { search + 1 } else { e };
    }
    out.push_str(&text(last_end.min(n), n));
    Ok(out)
}

/// Go's `Regexp.Expand` for a pattern without groups: `$$` is `$`, `$0`/`${0}` the match, any
/// other valid reference is empty, and a `$` that starts no reference stays.
fn expand_template(template: &str, matched: &str) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        if let Some(r) = rest.strip_prefix('$') {
            out.push('$');
            rest = r;
            continue;
        }
        let is_name = |c: char| c.is_alphanumeric() || c == '_';
        let (name, after) = if let Some(r) = rest.strip_prefix('{') {
            match r.find('}') {
                Some(close) if close > 0 && r[..close].chars().all(is_name) => (&r[..close], &r[close + 1..]),
                _ => ("", rest),
            }
        } else {
            let end = rest.find(|c: char| !is_name(c)).unwrap_or(rest.len());
            (&rest[..end], &rest[end..])
        };
        if name.is_empty() {
            out.push('$');
            continue;
        }
        if name == "0" || (name.chars().all(|c| c.is_ascii_digit()) && name.parse::<u64>() == Ok(0)) {
            out.push_str(matched);
        }
        rest = after;
    }
    out.push_str(rest);
    out
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
    fn quotes_like_go() {
        assert_eq!(go_quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(go_quote("\x00\x07\x7f\u{85}♥"), r#""\x00\a\x7f\u0085♥""#);
        assert_eq!(go_quote("\u{feff}\u{1F600}"), "\"\\ufeff\u{1F600}\"");
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

    fn expand(word: &str, env: &[(&str, &str)]) -> Result<String, LexError> {
        let env: HashMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        ShellLex::new('\\').process(word, &env).map(|e| e.result)
    }

    #[test]
    fn expands_like_buildkit() {
        let env = [("A", "abc"), ("E", ""), ("P", "a/b/c.tar.gz")];
        let cases = [
            ("$A", "abc"),
            ("${A}", "abc"),
            ("x${U}y", "xy"),
            ("${U:-d}", "d"),
            ("${E:-d}", "d"),
            ("${E-d}", ""),
            ("${A:+set}", "set"),
            ("${E:+set}", ""),
            ("${E+set}", "set"),
            ("${U+set}", ""),
            ("'$A'", "$A"),
            ("\"$A\"", "abc"),
            ("\\$A", "$A"),
            ("$", "$"),
            ("${P#*/}", "b/c.tar.gz"),
            ("${P##*/}", "c.tar.gz"),
            ("${P%.*}", "a/b/c.tar"),
            ("${P%%.*}", "a/b/c"),
            ("${P/\\//-}", "a-b/c.tar.gz"),
            ("${P//\\//-}", "a-b-c.tar.gz"),
            ("${A:-x${P}}", "abc"),
        ];
        for (word, want) in cases {
            assert_eq!(expand(word, &env).unwrap(), want, "{word}");
        }
        assert_eq!(expand("${U:?must be set}", &env).unwrap_err().message, "U: must be set");
        assert_eq!(expand("${E:?}", &env).unwrap_err().message, "E: is not allowed to be empty");
        assert!(expand("${}", &env).is_err());
        assert!(expand("${A", &env).is_err());
        assert!(expand("\"abc", &env).is_err());

        let skip = ShellLex { skip_unset_env: true, ..ShellLex::new('\\') };
        let got = skip.process("${TARGETARCH:-x}/$B/${C}", &HashMap::new()).unwrap();
        assert_eq!(got.result, "${TARGETARCH:-x}/$B/${C}");
        assert_eq!(got.unmatched.len(), 3);
    }
}
