//! dockerfile::shell: BuildKit's shell-word lexer (moby/buildkit `frontend/dockerfile/shell`):
//! quotes, escapes, `$VAR` and `${VAR…}` expansion, and splitting into words. The parser reads
//! heredoc openers with it, `analysis` expands ARGs with it, and so does any code that must
//! expand an instruction's arguments as BuildKit would. Not a shell: it runs nothing. Pure.

use std::collections::{BTreeSet, HashMap};

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
