//! dockerfile::json: the JSON (exec) form of CMD, RUN, COPY and the like, read as BuildKit reads
//! it: Go's `json.Unmarshal` into `[]any`, then strings only. A text that is not JSON is shell
//! form, not an error; a JSON array holding anything but strings is. Pure.

/// Go's `encoding/json` refuses documents nested deeper than this.
const MAX_JSON_DEPTH: usize = 10_000;

pub(super) enum JsonError {
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
pub(super) fn parse_json_strings(text: &str) -> Result<Vec<String>, JsonError> {
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
