//! lists: how the text of one CI variable becomes a list or a boolean. Pure string work, no
//! environment access; the serde functions here let `envy` fill list fields with these rules
//! (envy's own lists split on commas only and keep the whitespace).

use serde::{Deserialize, Deserializer};

use super::InputError;

/// Items of a list input: split on commas and newlines, trimmed, empties dropped.
///
/// `"linux/amd64, linux/arm64\n\n linux/arm/v7,"` → `linux/amd64`, `linux/arm64`, `linux/arm/v7`.
pub fn items(text: &str) -> Vec<String> {
    text.split([',', '\n']).map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
}

/// Items of a `KEY=VALUE` list (build args, labels, annotations): one per line when the text
/// has a line break — so a value may hold commas, as in docker/build-push-action, which uses
/// lines — else split on commas, so a one-line `A=1,B=2` works too. Trimmed, empties dropped.
pub fn key_values(text: &str) -> Vec<String> {
    let parts: Vec<&str> = if text.contains('\n') { text.split('\n').collect() } else { text.split(',').collect() };
    parts.into_iter().map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
}

/// Items one a line, commas kept (buildx specs: `type=registry,ref=…`). Trimmed, empties dropped.
pub fn lines(text: &str) -> Vec<String> {
    text.lines().map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
}

/// `true`/`false`, `1`/`0`, `yes`/`no`, any case, surrounding blanks ignored. `var` is the
/// variable as this CI spells it, for the error.
pub fn boolean(var: &str, text: &str) -> Result<bool, InputError> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(InputError::NotBool { var: var.into(), value: text.trim().into() }),
    }
}

/// serde: a list field filled with [`items`].
pub fn de_items<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(items(&String::deserialize(d)?))
}

/// serde: the `tags` input, split by [`super::metadata::tag_items`].
pub fn de_tag_items<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(super::metadata::tag_items(&String::deserialize(d)?))
}

/// serde: a list field filled with [`key_values`].
pub fn de_key_values<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(key_values(&String::deserialize(d)?))
}

/// serde: a list field filled with [`lines`].
pub fn de_lines<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(lines(&String::deserialize(d)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_split_on_commas_and_newlines() {
        assert_eq!(items("linux/amd64, linux/arm64\n\n linux/arm/v7,"), ["linux/amd64", "linux/arm64", "linux/arm/v7"]);
        assert_eq!(items("a\r\nb"), ["a", "b"]);
        assert!(items(" , \n ").is_empty());
    }

    #[test]
    fn key_values_prefer_lines() {
        assert_eq!(key_values("A=1,B=2"), ["A=1", "B=2"]);
        assert_eq!(key_values("A=1,2\n B=x \n\n"), ["A=1,2", "B=x"]);
        assert_eq!(key_values("DESCRIPTION=a, b\n"), ["DESCRIPTION=a, b"]);
    }

    #[test]
    fn booleans() {
        for t in ["true", "TRUE", " Yes ", "1"] {
            assert!(boolean("X", t).unwrap(), "{t}");
        }
        for f in ["false", "False", "no", "0"] {
            assert!(!boolean("X", f).unwrap(), "{f}");
        }
        let e = boolean("INPUT_PUSH", "maybe").unwrap_err().to_string();
        assert_eq!(e, "`INPUT_PUSH` is `maybe`; expected `true` or `false` (also `1`/`0`, `yes`/`no`)");
    }
}
