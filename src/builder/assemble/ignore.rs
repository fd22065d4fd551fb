//! ignore: `.dockerignore` files and `--exclude` patterns, matched as BuildKit matches them
//! (moby/patternmatcher and its `ignorefile` reader): `filepath.Match` syntax checked, `**` for
//! any number of directories, `!` exceptions, the last matching pattern wins, and a pattern
//! that matches a directory matches everything under it. Pure: no I/O.

use super::glob;

/// One cleaned pattern, compiled.
#[derive(Debug, Clone)]
struct Pattern {
    exclusion: bool,
    /// The cleaned pattern, without `!`.
    text: String,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    Exact,
    /// `foo**`: the path starts with the text before the `**`.
    Prefix(String),
    /// `**foo`: the path ends with the text after the `**` (or is it, without its `/`).
    Suffix(String),
    Tokens(Vec<Token>),
}

/// The regular expression patternmatcher builds, as tokens.
#[derive(Debug, Clone, PartialEq)]
enum Token {
    Lit(char),
    /// `*`: any run of non-`/` characters.
    Star,
    /// `?`: one non-`/` character.
    One,
    /// `**/` in the middle: `(.*/)?`.
    Dirs,
    /// A final `**` after other tokens: `.*`.
    Rest,
    /// `[...]`, kept as written (a regular expression class).
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

/// A `.dockerignore` or `--exclude` matcher.
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    patterns: Vec<Pattern>,
}

/// Which patterns matched a directory, so its children need not match them again
/// (patternmatcher's `MatchInfo`).
#[derive(Debug, Clone, Default)]
pub struct MatchInfo(Vec<bool>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("illegal exclusion pattern: `!`")]
    Bang,
    #[error(transparent)]
    Syntax(#[from] glob::BadPattern),
}

/// The patterns of an ignore file, as BuildKit's `ignorefile.ReadAll` reads them: a BOM
/// dropped, `#` lines skipped, spaces trimmed, each pattern cleaned and its leading `/` dropped.
pub fn read_ignore_file(text: &str) -> Vec<String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let mut p = line.trim();
        if p.is_empty() {
            continue;
        }
        let invert = p.starts_with('!');
        if invert {
            p = p[1..].trim();
        }
        let mut pattern = String::new();
        if !p.is_empty() {
            pattern = glob::clean(p);
            if pattern.len() > 1 && pattern.starts_with('/') {
                pattern.remove(0);
            }
        }
        out.push(if invert { format!("!{pattern}") } else { pattern });
    }
    out
}

impl Matcher {
    /// patternmatcher's `New`: patterns trimmed and cleaned, empty ones dropped, syntax checked.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, PatternError> {
        let mut out = Vec::new();
        for p in patterns {
            let p = p.as_ref().trim();
            if p.is_empty() {
                continue;
            }
            let mut p = glob::clean(p);
            let exclusion = p.starts_with('!');
            if exclusion {
                if p.len() == 1 {
                    return Err(PatternError::Bang);
                }
                p.remove(0);
            }
            glob::validate(&p)?;
            let kind = compile(&p);
            out.push(Pattern { exclusion, text: p, kind });
        }
        Ok(Matcher { patterns: out })
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether some pattern is a `!` exception.
    pub fn has_exclusions(&self) -> bool {
        self.patterns.iter().any(|p| p.exclusion)
    }

    /// `MatchesOrParentMatches`: whether `path` (slash-separated, relative) or one of its
    /// parents is matched by the patterns, the last one deciding.
    pub fn matches(&self, path: &str) -> bool {
        self.matches_with_parent(path, &MatchInfo::default()).0
    }

    /// `MatchesUsingParentResults`: as `matches`, reusing what matched the parent directory.
    pub fn matches_with_parent(&self, path: &str, parent: &MatchInfo) -> (bool, MatchInfo) {
        let mut matched = false;
        let mut info = vec![false; self.patterns.len()];
        for (i, pattern) in self.patterns.iter().enumerate() {
            let mut hit = parent.0.get(i).copied().unwrap_or(false);
            if !hit {
                // An inclusion cannot change a match, nor an exception a non-match.
                if pattern.exclusion != matched {
                    continue;
                }
                hit = if parent.0.is_empty() {
                    // No parent results: the path or any parent directory.
                    pattern.matches_or_parent(path)
                } else {
                    pattern.matches(path)
                };
            }
            info[i] = hit;
            if hit {
                matched = !pattern.exclusion;
            }
        }
        (matched, MatchInfo(info))
    }

    /// fsutil's shortcut: an excluded directory need not be walked when no exception could
    /// match anything inside it (exceptions are all literal prefixes and none starts with it).
    pub fn can_skip_dir(&self, dir: &str) -> bool {
        if !self.has_exclusions() {
            return true;
        }
        let literal =
            self.patterns.iter().filter(|p| p.exclusion).all(|p| !has_pattern_chars(without_trailing_glob(&p.text)));
        if !literal {
            return false;
        }
        let dir_slash = format!("{dir}/");
        !self
            .patterns
            .iter()
            .filter(|p| p.exclusion)
            .any(|p| format!("{}/", without_trailing_glob(&p.text)).starts_with(&dir_slash))
    }
}

fn without_trailing_glob(p: &str) -> &str {
    let p = p.strip_suffix("/**").unwrap_or(p);
    p.strip_suffix("/*").unwrap_or(p)
}

fn has_pattern_chars(s: &str) -> bool {
    s.contains(['*', '[', ']', '?', '^', '\\'])
}

impl Pattern {
    /// Whether the pattern matches `path` or one of its parent directories (`path` cut before
    /// any `/`); for a regular expression in one pass over `path`.
    fn matches_or_parent(&self, path: &str) -> bool {
        if let Kind::Tokens(tokens) = &self.kind {
            let chars: Vec<char> = path.chars().collect();
            let ends = match_ends(tokens, &chars);
            return ends[chars.len()] || chars.iter().enumerate().any(|(i, &c)| c == '/' && ends[i]);
        }
        if self.matches(path) {
            return true;
        }
        let parts: Vec<&str> = path.split('/').collect();
        (1..parts.len()).any(|n| self.matches(&parts[..n].join("/")))
    }

    fn matches(&self, path: &str) -> bool {
        match &self.kind {
            Kind::Exact => path == self.text,
            Kind::Prefix(prefix) => path.starts_with(prefix.as_str()),
            Kind::Suffix(suffix) => {
                path.ends_with(suffix.as_str()) || suffix.strip_prefix('/').is_some_and(|s| path == s)
            }
            Kind::Tokens(tokens) => {
                let chars: Vec<char> = path.chars().collect();
                match_tokens(tokens, &chars)
            }
        }
    }
}

/// patternmatcher's `compile`: the match type (the last one detected wins) and, for regular
/// expressions, the tokens.
fn compile(pattern: &str) -> Kind {
    #[derive(PartialEq)]
    enum Detected {
        Exact,
        Prefix,
        Suffix,
        Regexp,
    }
    let chars: Vec<char> = pattern.chars().collect();
    let mut tokens = Vec::new();
    let mut detected = Detected::Exact;
    let mut i = 0;
    let mut first = true;
    while i < chars.len() {
        let ch = chars[i];
        i += 1;
        match ch {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i == chars.len() {
                    if detected == Detected::Exact {
                        detected = Detected::Prefix;
                    } else {
                        tokens.push(Token::Rest);
                        detected = Detected::Regexp;
                    }
                } else {
                    tokens.push(Token::Dirs);
                    detected = Detected::Regexp;
                }
                if first {
                    detected = Detected::Suffix;
                }
            }
            '*' => {
                tokens.push(Token::Star);
                detected = Detected::Regexp;
            }
            '?' => {
                tokens.push(Token::One);
                detected = Detected::Regexp;
            }
            '\\' => match chars.get(i) {
                Some(&next) => {
                    i += 1;
                    tokens.push(Token::Lit(next));
                    detected = Detected::Regexp;
                }
                None => tokens.push(Token::Lit('\\')),
            },
            '[' => {
                let (class, used) = parse_class(&chars[i..]);
                i += used;
                tokens.push(class);
                detected = Detected::Regexp;
            }
            ']' => {
                tokens.push(Token::Lit(']'));
                detected = Detected::Regexp;
            }
            c => tokens.push(Token::Lit(c)),
        }
        first = false;
    }
    match detected {
        Detected::Exact => Kind::Exact,
        Detected::Prefix => Kind::Prefix(pattern[..pattern.len() - 2].to_string()),
        Detected::Suffix => Kind::Suffix(pattern[2..].to_string()),
        Detected::Regexp => Kind::Tokens(tokens),
    }
}

/// A `[...]` class after its `[`: the token and how many characters it used (up to the `]`).
fn parse_class(chars: &[char]) -> (Token, usize) {
    let mut i = 0;
    let negated = chars.first() == Some(&'^');
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    let mut first = true;
    while i < chars.len() {
        let mut c = chars[i];
        if c == ']' && !first {
            i += 1;
            break;
        }
        first = false;
        i += 1;
        if c == '\\' && i < chars.len() {
            c = chars[i];
            i += 1;
        }
        let mut hi = c;
        if chars.get(i) == Some(&'-') && chars.get(i + 1).is_some_and(|&n| n != ']') {
            hi = chars[i + 1];
            i += 2;
            if hi == '\\' && i < chars.len() {
                hi = chars[i];
                i += 1;
            }
        }
        ranges.push((c, hi));
    }
    (Token::Class { negated, ranges }, i)
}

/// Match of the whole path.
fn match_tokens(tokens: &[Token], s: &[char]) -> bool {
    match_ends(tokens, s)[s.len()]
}

/// For each end `e` in `0..=s.len()`, whether `tokens` match `s[..e]` exactly: one forward pass
/// over `s` keeping the set of token positions reached (a Thompson simulation), so a path and
/// all its parent directories cost O(tokens × path) together. Backtracking was exponential in
/// the number of `*` and `**/`, and a memo per parent directory still took seconds for a
/// hundred stars over a path of many slashes (both found by the `dockerignore` fuzz target);
/// patternmatcher compiles to a Go regexp, which is linear too.
fn match_ends(tokens: &[Token], s: &[char]) -> Vec<bool> {
    let n = tokens.len();
    let mut out = vec![false; s.len() + 1];
    // Zero-width steps only go forward (`*` and `**/` may match nothing), so one sweep closes.
    let close = |set: &mut [bool]| {
        for t in 0..n {
            if set[t] && matches!(tokens[t], Token::Star | Token::Dirs) {
                set[t + 1] = true;
            }
        }
    };
    let mut cur = vec![false; n + 1];
    cur[0] = true;
    close(&mut cur);
    // `**/` part-way through a segment: it must reach a `/` before the tokens after it may go
    // on (in `cur` it is at a segment's start, where it may also match nothing).
    let mut inside = vec![false; n];
    // A final `**` reached: everything from there on matches.
    let mut rest = false;
    for i in 0..=s.len() {
        rest |= (0..n).any(|t| cur[t] && matches!(tokens[t], Token::Rest));
        out[i] = rest || cur[n];
        let Some(&c) = s.get(i) else { break };
        let mut next = vec![false; n + 1];
        let mut next_inside = vec![false; n];
        for t in (0..n).filter(|&t| inside[t]) {
            if c == '/' {
                next[t] = true;
            } else {
                next_inside[t] = true;
            }
        }
        for t in (0..n).filter(|&t| cur[t]) {
            match &tokens[t] {
                Token::Lit(x) => next[t + 1] |= c == *x,
                Token::One => next[t + 1] |= c != '/',
                Token::Class { negated, ranges } => {
                    next[t + 1] |= ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
                }
                Token::Star => next[t] |= c != '/',
                Token::Dirs => {
                    if c == '/' {
                        next[t] = true;
                    } else {
                        next_inside[t] = true;
                    }
                }
                Token::Rest => {}
            }
        }
        close(&mut next);
        cur = next;
        inside = next_inside;
        if rest {
            out[i + 1..].iter_mut().for_each(|e| *e = true);
            break;
        }
        if !cur.iter().chain(&inside).any(|&b| b) {
            break; // nothing can match any longer prefix
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The matcher before the one-pass simulation (each (token, position) state decided once by
    /// backtracking), kept as the reference the simulation must agree with.
    #[allow(clippy::only_used_in_recursion)]
    fn backtracking(tokens: &[Token], s: &[char], t: usize, i: usize, memo: &mut [Option<bool>]) -> bool {
        let key = t * (s.len() + 1) + i;
        if let Some(known) = memo[key] {
            return known;
        }
        let next = t + 1;
        let one = |ok: &dyn Fn(char) -> bool| s.get(i).is_some_and(|&c| ok(c));
        let matched = match tokens.get(t) {
            None => i == s.len(),
            Some(Token::Lit(c)) => one(&|x| x == *c) && backtracking(tokens, s, next, i + 1, memo),
            Some(Token::One) => one(&|x| x != '/') && backtracking(tokens, s, next, i + 1, memo),
            Some(Token::Class { negated, ranges }) => {
                one(&|x| ranges.iter().any(|&(lo, hi)| lo <= x && x <= hi) != *negated)
                    && backtracking(tokens, s, next, i + 1, memo)
            }
            Some(Token::Star) => {
                let run = s[i..].iter().take_while(|&&c| c != '/').count();
                (0..=run).any(|n| backtracking(tokens, s, next, i + n, memo))
            }
            Some(Token::Rest) => true,
            Some(Token::Dirs) => {
                backtracking(tokens, s, next, i, memo)
                    || (i..s.len()).filter(|&n| s[n] == '/').any(|n| backtracking(tokens, s, next, n + 1, memo))
            }
        };
        memo[key] = Some(matched);
        matched
    }

    /// The one-pass simulation agrees with backtracking on every end of generated paths, for
    /// generated patterns of literals, `?`, `*`, `**/`, final `**` and classes.
    #[test]
    fn one_pass_agrees_with_backtracking() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let pieces = ["a", "b", "/", "?", "*", "**/", "[ab]", "[^a]", ".x"];
        let letters = ['a', 'b', '/', 'x', '.'];
        for _ in 0..3000 {
            let len = 1 + next(6);
            let mut pattern: String = (0..len).map(|_| pieces[next(pieces.len() as u64) as usize]).collect();
            if next(4) == 0 {
                pattern.push_str("/**");
            }
            let Kind::Tokens(tokens) = compile(&pattern) else { continue };
            for _ in 0..20 {
                let path: Vec<char> = (0..next(10)).map(|_| letters[next(letters.len() as u64) as usize]).collect();
                let ends = match_ends(&tokens, &path);
                for e in 0..=path.len() {
                    let prefix = &path[..e];
                    let mut memo = vec![None; (tokens.len() + 1) * (prefix.len() + 1)];
                    let want = backtracking(&tokens, prefix, 0, 0, &mut memo);
                    assert_eq!(ends[e], want, "pattern {pattern:?} on {:?}", prefix.iter().collect::<String>());
                }
            }
        }
    }

    fn m(patterns: &[&str]) -> Matcher {
        Matcher::new(patterns).unwrap()
    }

    #[test]
    fn reads_ignore_files_like_buildkit() {
        let got = read_ignore_file("\u{feff}# c\n  *.log  \n\n/abs/x\n! keep.log\n./a/../b/\n#x\n !y");
        assert_eq!(got, ["*.log", "abs/x", "!keep.log", "b", "!y"]);
    }

    #[test]
    fn matches_like_patternmatcher() {
        // From moby/patternmatcher's tests (MatchesOrParentMatches and pattern.match).
        let cases: &[(&str, &str, bool)] = &[
            ("**", "file", true),
            ("**", "file/", true),
            ("**/", "file", true),
            ("**/", "file/", true),
            ("**", "/", true),
            ("**/", "/", true),
            ("**", "dir/file", true),
            ("**/", "dir/file", true),
            ("**", "dir/file/", true),
            ("**/", "dir/file/", true),
            ("**/**", "dir/file", true),
            ("**/**", "dir/file/", true),
            ("dir/**", "dir/file", true),
            ("dir/**", "dir/file/", true),
            ("dir/**", "dir/dir2/file", true),
            ("dir/**", "dir/dir2/file/", true),
            ("**/dir", "dir", true),
            ("**/dir", "dir/file", true),
            ("**/dir2/*", "dir/dir2/file", true),
            ("**/dir2/*", "dir/dir2/file/", true),
            ("**/dir2/**", "dir/dir2/dir3/file", true),
            ("**/dir2/**", "dir/dir2/dir3/file/", true),
            ("**file", "file", true),
            ("**file", "dir/file", true),
            ("**/file", "dir/file", true),
            ("**file", "dir/dir/file", true),
            ("**/file", "dir/dir/file", true),
            ("**/file*", "dir/dir/file", true),
            ("**/file*", "dir/dir/file.txt", true),
            ("**/file*txt", "dir/dir/file.txt", true),
            ("**/file*.txt", "dir/dir/file.txt", true),
            ("**/file*.txt*", "dir/dir/file.txt", true),
            ("**/**/*.txt", "dir/dir/file.txt", true),
            ("**/**/*.txt2", "dir/dir/file.txt", false),
            ("**/*.txt", "file.txt", true),
            ("**/**/*.txt", "file.txt", true),
            ("a**/*.txt", "a/file.txt", true),
            ("a**/*.txt", "a/dir/file.txt", true),
            ("a**/*.txt", "a/dir/dir/file.txt", true),
            ("a/*.txt", "a/dir/file.txt", false),
            ("a/*.txt", "a/file.txt", true),
            ("a/*.txt**", "a/file.txt", true),
            ("a[b-d]e", "ae", false),
            ("a[b-d]e", "ace", true),
            ("a[b-d]e", "aae", false),
            ("a[^b-d]e", "aze", true),
            (".*", ".foo", true),
            (".*", "foo", false),
            ("abc.def", "abcdef", false),
            ("abc.def", "abc.def", true),
            ("abc.def", "abcZdef", false),
            ("abc?def", "abcZdef", true),
            ("abc?def", "abcdef", false),
            ("a\\\\", "a\\", true),
            ("**/foo/bar", "foo/bar", true),
            ("**/foo/bar", "dir/foo/bar", true),
            ("**/foo/bar", "dir/dir2/foo/bar", true),
            ("abc/**", "abc", false),
            ("abc/**", "abc/def", true),
            ("abc/**", "abc/def/ghi", true),
            ("**/.foo", ".foo", true),
            ("**/.foo", "bar.foo", false),
            ("a(b)c/def", "a(b)c/def", true),
            ("a(b)c/def", "a(b)c/xyz", false),
            ("a.|)$(}+{bc", "a.|)$(}+{bc", true),
            (
                "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
                "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
                true,
            ),
            ("dist/*.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", true),
            ("fileutils.go", "fileutils.go", true),
            ("*.go", "fileutils.go", true),
            ("docs", "docs/README.md", true),
        ];
        for (pattern, path, want) in cases {
            assert_eq!(m(&[pattern]).matches(path), *want, "{pattern:?} vs {path:?}");
        }
    }

    #[test]
    fn exceptions_and_last_match_wins() {
        let ig = m(&["*.log", "!keep.log", "target", "**/node_modules", "docs/**/*.md", "!docs/keep/*.md"]);
        for (path, want) in [
            ("app.log", true),
            ("keep.log", false),
            ("src/app.log", false),
            ("target", true),
            ("target/debug/x", true),
            ("a/b/node_modules/c", true),
            ("node_modules", true),
            ("docs/a/b/x.md", true),
            ("docs/x.md", true),
            ("docs/keep/x.md", false),
            ("src/main.rs", false),
        ] {
            assert_eq!(ig.matches(path), want, "{path}");
        }
        // An exception for a file inside an excluded directory.
        let ig = m(&["dir", "!dir/keep"]);
        assert!(ig.matches("dir/other") && !ig.matches("dir/keep") && ig.matches("dir"));
        assert!(!ig.can_skip_dir("dir") && ig.can_skip_dir("other"));
        assert!(m(&["dir"]).can_skip_dir("dir"));
        assert!(!m(&["dir", "!**/keep"]).can_skip_dir("dir"));
        assert!(matches!(Matcher::new(&["!"]), Err(PatternError::Bang)));
        assert!(matches!(Matcher::new(&["a["]), Err(PatternError::Syntax(_))));
    }

    #[test]
    fn parent_results_are_reused() {
        let ig = m(&["a", "!a/b"]);
        let (dir, info) = ig.matches_with_parent("a", &MatchInfo::default());
        assert!(dir);
        assert!(!ig.matches_with_parent("a/b", &info).0);
        assert!(ig.matches_with_parent("a/c", &info).0);
    }
}
