//! glob: Go's `path/filepath.Match` (and `path.Clean`), the rules COPY and ADD sources follow:
//! `*` and `?` never match `/`, `[...]` classes with ranges and `^` negation, `\` escapes.
//! Pure: no I/O.

/// A malformed pattern (Go's `filepath.ErrBadPattern`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("syntax error in pattern `{0}`")]
pub struct BadPattern(pub String);

/// Whether `name` matches the whole of `pattern`, as Go's `filepath.Match` decides.
pub fn matches(pattern: &str, name: &str) -> Result<bool, BadPattern> {
    let bad = || BadPattern(pattern.to_string());
    let mut pat: &str = pattern;
    let mut name: &str = name;
    'pattern: while !pat.is_empty() {
        let (star, chunk, rest) = scan_chunk(pat);
        pat = rest;
        if star && chunk.is_empty() {
            // A trailing star matches the rest unless it holds a separator.
            return Ok(!name.contains('/'));
        }
        // Look for a match at the current position.
        let (t, ok) = match_chunk(chunk, name).map_err(|_| bad())?;
        // Without a star the chunk must match here; with one, a match that ends the name is
        // only fine when nothing is left of the pattern.
        if ok && (t.is_empty() || !pat.is_empty()) {
            name = t;
            continue;
        }
        if star {
            // Look for a match skipping i+1 bytes; a star never skips a separator.
            let mut i = 0;
            while i < name.len() && name.as_bytes()[i] != b'/' {
                i += name[i..].chars().next().map_or(1, char::len_utf8);
                let (t, ok) = match_chunk(chunk, &name[i..]).map_err(|_| bad())?;
                if ok {
                    // The last chunk must match the whole remaining name.
                    if pat.is_empty() && !t.is_empty() {
                        continue;
                    }
                    name = t;
                    continue 'pattern;
                }
            }
        }
        // Go checks the rest of the pattern for syntax errors before saying no.
        while !pat.is_empty() {
            let (_, chunk, rest) = scan_chunk(pat);
            pat = rest;
            match_chunk(chunk, "").map_err(|_| bad())?;
        }
        return Ok(false);
    }
    Ok(name.is_empty())
}

/// Checks a pattern's syntax the way Go's `filepath.Match(pattern, ".")` does.
pub fn validate(pattern: &str) -> Result<(), BadPattern> {
    matches(pattern, ".").map(|_| ())
}

/// Whether a path holds `*`, `?` or `[` (a backslash escapes the next byte).
pub fn has_wildcards(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 1,
            b'*' | b'?' | b'[' => return true,
            _ => {}
        }
        i += 1;
    }
    false
}

/// Splits off the leading stars and the next chunk up to a star outside a class.
fn scan_chunk(pattern: &str) -> (bool, &str, &str) {
    let mut star = false;
    let mut p = pattern;
    while let Some(rest) = p.strip_prefix('*') {
        p = rest;
        star = true;
    }
    let b = p.as_bytes();
    let mut in_range = false;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            // Skip the escaped byte (if any).
            b'\\' if i + 1 < b.len() => i += 1,
            b'[' => in_range = true,
            b']' => in_range = false,
            b'*' if !in_range => break,
            _ => {}
        }
        i += 1;
    }
    (star, &p[..i], &p[i..])
}

/// Matches `chunk` against the start of `s`; returns what is left of `s` and whether it matched.
/// `Err` means a syntax error in the chunk.
fn match_chunk<'a>(chunk: &str, mut s: &'a str) -> Result<(&'a str, bool), ()> {
    // After a failed match Go keeps scanning the chunk only to find syntax errors.
    let mut failed = false;
    let mut chunk = chunk;
    while !chunk.is_empty() {
        if !failed && s.is_empty() {
            failed = true;
        }
        match chunk.as_bytes()[0] {
            b'[' => {
                let mut r = '\0';
                if !failed {
                    r = s.chars().next().expect("not empty");
                    s = &s[r.len_utf8()..];
                }
                chunk = &chunk[1..];
                let negated = chunk.starts_with('^');
                if negated {
                    chunk = &chunk[1..];
                }
                let mut matched = false;
                let mut n = 0;
                loop {
                    if !chunk.is_empty() && chunk.as_bytes()[0] == b']' && n > 0 {
                        chunk = &chunk[1..];
                        break;
                    }
                    let (lo, rest) = get_esc(chunk)?;
                    chunk = rest;
                    let mut hi = lo;
                    if chunk.starts_with('-') {
                        let (h, rest) = get_esc(&chunk[1..])?;
                        hi = h;
                        chunk = rest;
                    }
                    if lo <= r && r <= hi {
                        matched = true;
                    }
                    n += 1;
                }
                if matched == negated {
                    failed = true;
                }
            }
            b'?' => {
                if !failed {
                    let c = s.chars().next().expect("not empty");
                    if c == '/' {
                        failed = true;
                    }
                    s = &s[c.len_utf8()..];
                }
                chunk = &chunk[1..];
            }
            // A character matches itself; `\x` matches `x`.
            first => {
                if first == b'\\' {
                    chunk = &chunk[1..];
                    if chunk.is_empty() {
                        return Err(());
                    }
                }
                let c = chunk.chars().next().expect("not empty");
                if !failed {
                    if !s.starts_with(c) {
                        failed = true;
                    } else {
                        s = &s[c.len_utf8()..];
                    }
                }
                chunk = &chunk[c.len_utf8()..];
            }
        }
    }
    if failed { Ok(("", false)) } else { Ok((s, true)) }
}

/// One possibly escaped character of a class.
fn get_esc(chunk: &str) -> Result<(char, &str), ()> {
    if chunk.is_empty() || chunk.starts_with('-') || chunk.starts_with(']') {
        return Err(());
    }
    let mut chunk = chunk;
    if let Some(rest) = chunk.strip_prefix('\\') {
        chunk = rest;
        if chunk.is_empty() {
            return Err(());
        }
    }
    let c = chunk.chars().next().expect("not empty");
    let rest = &chunk[c.len_utf8()..];
    if rest.is_empty() {
        return Err(());
    }
    Ok((c, rest))
}

/// Go's `path.Clean`: the shortest equivalent path, lexically (`.` for nothing).
pub fn clean(path: &str) -> String {
    if path.is_empty() {
        return ".".into();
    }
    let rooted = path.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|l| *l != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            p => out.push(p),
        }
    }
    let joined = out.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_go_filepath_match() {
        // From Go's match_test.go.
        let cases: &[(&str, &str, Result<bool, ()>)] = &[
            ("abc", "abc", Ok(true)),
            ("*", "abc", Ok(true)),
            ("*c", "abc", Ok(true)),
            ("a*", "a", Ok(true)),
            ("a*", "abc", Ok(true)),
            ("a*", "ab/c", Ok(false)),
            ("a*/b", "abc/b", Ok(true)),
            ("a*/b", "a/c/b", Ok(false)),
            ("a*b*c*d*e*/f", "axbxcxdxe/f", Ok(true)),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/f", Ok(true)),
            ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", Ok(false)),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", Ok(false)),
            ("a*b?c*x", "abxbbxdbxebxczzx", Ok(true)),
            ("a*b?c*x", "abxbbxdbxebxczzy", Ok(false)),
            ("ab[c]", "abc", Ok(true)),
            ("ab[b-d]", "abc", Ok(true)),
            ("ab[e-g]", "abc", Ok(false)),
            ("ab[^c]", "abc", Ok(false)),
            ("ab[^b-d]", "abc", Ok(false)),
            ("ab[^e-g]", "abc", Ok(true)),
            ("a\\*b", "a*b", Ok(true)),
            ("a\\*b", "ab", Ok(false)),
            ("a?b", "a☺b", Ok(true)),
            ("a[^a]b", "a☺b", Ok(true)),
            ("a???b", "a☺b", Ok(false)),
            ("a[^a][^a][^a]b", "a☺b", Ok(false)),
            ("[a-ζ]*", "α", Ok(true)),
            ("*[a-ζ]", "A", Ok(false)),
            ("a?b", "a/b", Ok(false)),
            ("a*b", "a/b", Ok(false)),
            ("[\\]a]", "]", Ok(true)),
            ("[\\-]", "-", Ok(true)),
            ("[x\\-]", "x", Ok(true)),
            ("[x\\-]", "-", Ok(true)),
            ("[x\\-]", "z", Ok(false)),
            ("[\\-x]", "x", Ok(true)),
            ("[\\-x]", "-", Ok(true)),
            ("[\\-x]", "a", Ok(false)),
            ("[]a]", "]", Err(())),
            ("[-]", "-", Err(())),
            ("[x-]", "x", Err(())),
            ("[x-]", "-", Err(())),
            ("[x-]", "z", Err(())),
            ("[-x]", "x", Err(())),
            ("[-x]", "-", Err(())),
            ("[-x]", "a", Err(())),
            ("\\", "a", Err(())),
            ("[a-b-c]", "a", Err(())),
            ("[", "a", Err(())),
            ("[^", "a", Err(())),
            ("[^bc", "a", Err(())),
            ("a[", "a", Err(())),
            ("a[", "ab", Err(())),
            ("a[", "x", Err(())),
            ("a/b[", "x", Err(())),
            ("*x", "xxx", Ok(true)),
        ];
        for (pattern, name, want) in cases {
            let got = matches(pattern, name).map_err(|_| ());
            assert_eq!(got, *want, "Match({pattern:?}, {name:?})");
        }
    }

    #[test]
    fn cleans_like_go() {
        for (input, want) in [
            ("", "."),
            ("abc", "abc"),
            ("abc/def/", "abc/def"),
            ("a/./b", "a/b"),
            ("a/../../b", "../b"),
            ("/../x", "/x"),
            ("//a//b/", "/a/b"),
            ("../x", "../x"),
            ("/", "/"),
            ("a/..", "."),
        ] {
            assert_eq!(clean(input), want, "{input}");
        }
        assert!(has_wildcards("a/*.txt") && has_wildcards("x[ab]") && !has_wildcards("a\\*b") && !has_wildcards("a/b"));
    }
}
