//! registry_auth: the `registry-auth` input, credentials for several registries, written as
//! docker/login-action's input of that name: a YAML list of `registry` (Docker Hub when left
//! out), `username` and `password`.
//!
//! ```yaml
//! registry-auth: |
//!   - registry: docker.io
//!     username: ${{ vars.DOCKERHUB_USERNAME }}
//!     password: ${{ secrets.DOCKERHUB_TOKEN }}
//!   - registry: ghcr.io
//!     username: ${{ github.actor }}
//!     password: ${{ secrets.GITHUB_TOKEN }}
//! ```
//!
//! The whole value is a secret: no error quotes any of it, not even the YAML library's own
//! message (it may quote a value); an error names the variable, the item's number and the field,
//! and, for a syntax error, the line and column. Pure: reads only the text it is given.

use serde_norway::Value;

use super::{Credentials, InputError};
use crate::reference::{DOCKER_HUB, same_registry};
use crate::secret::Secret;

/// The fields of an item, as docker/login-action names them.
const FIELDS: &[&str] = &["registry", "username", "password"];

/// The credentials `value` lists, in its order; `var` is the variable it came from, for errors.
pub fn parse(value: &Secret, var: &str) -> Result<Vec<Credentials>, InputError> {
    let bad = |why: String| InputError::BadRegistryAuth { var: var.to_string(), why };
    let doc: Value = serde_norway::from_str(value.expose()).map_err(|e| {
        bad(match e.location() {
            Some(l) => format!("is not valid YAML (line {}, column {})", l.line(), l.column()),
            None => "is not valid YAML".into(),
        })
    })?;
    let items = match doc {
        Value::Null => return Ok(Vec::new()),
        Value::Sequence(items) => items,
        _ => return Err(bad("is not a YAML list (`- registry: …`, one item per registry)".into())),
    };
    let mut out: Vec<Credentials> = Vec::new();
    for (n, item) in items.into_iter().enumerate() {
        let n = n + 1;
        let Value::Mapping(map) = item else {
            return Err(bad(format!("item {n} is not a mapping of `registry`, `username` and `password`")));
        };
        let (mut registry, mut username, mut password) = (None, None, None);
        for (key, v) in map {
            // A key is named only when it is a field archway knows of: a stray key may be a
            // value that lost its indentation.
            let key = match key {
                Value::String(k) if FIELDS.contains(&k.as_str()) || ["ecr", "scope"].contains(&k.as_str()) => k,
                _ => {
                    return Err(bad(format!("item {n} has a key other than `registry`, `username` and `password`")));
                }
            };
            let slot = match key.as_str() {
                "registry" => &mut registry,
                "username" => &mut username,
                "password" => &mut password,
                other => {
                    return Err(bad(format!(
                        "item {n}: `{other}` is docker/login-action's and archway does not take it; give the registry's own username and password (for ECR, `AWS` and the output of `aws ecr get-login-password`)"
                    )));
                }
            };
            *slot = match v {
                Value::Null => None,
                Value::String(s) if s.trim().is_empty() => None,
                Value::String(s) => Some(s),
                // A number or a boolean would come back in YAML's spelling of it, not as typed.
                _ => return Err(bad(format!("item {n}: `{key}` is not a string; quote it (`{key}: \"…\"`)"))),
            };
        }
        let registry = match registry.map(|r| r.trim().to_string()) {
            None => DOCKER_HUB.to_string(),
            Some(r) if is_host(&r) => r,
            Some(_) => {
                return Err(bad(format!(
                    "item {n}: `registry` is not a registry host (`ghcr.io`, `registry.example.com:5000`)"
                )));
            }
        };
        let Some(username) = username.map(|u| u.trim().to_string()) else {
            return Err(bad(format!("item {n} (registry `{registry}`) has no `username`")));
        };
        let Some(password) = password else {
            return Err(bad(format!(
                "item {n} (registry `{registry}`) has no `password` (is the secret it comes from set?)"
            )));
        };
        if let Some(first) = out.iter().position(|c| same_registry(&c.registry, &registry)) {
            return Err(bad(format!("item {n} names registry `{registry}` again (item {})", first + 1)));
        }
        out.push(Credentials { registry, username, password: Secret::new(password.trim_end_matches(['\r', '\n'])) });
    }
    Ok(out)
}

/// Every password in `value`, for the log masker: the parsed ones; when it does not parse,
/// every value (and its line) but a `registry`'s, a `username`'s, an `ecr`'s or a `scope`'s, in
/// block or flow style, of 4 characters or more (shorter ones would mask every word).
pub fn secrets(value: &str) -> Vec<Secret> {
    if let Ok(list) = parse(&Secret::new(value), "") {
        return list.into_iter().map(|c| c.password).collect();
    }
    const PUBLIC: &[&str] = &["registry", "username", "ecr", "scope"];
    let mut out: Vec<&str> = Vec::new();
    for line in value.lines() {
        let mut secret_line = false;
        for seg in line.split([',', '{', '}', '[', ']']) {
            let seg = seg.trim().trim_start_matches('-').trim();
            let v = match seg.split_once(':') {
                Some((k, _)) if PUBLIC.contains(&k.trim()) => continue,
                Some((_, v)) => v,
                None => seg,
            };
            secret_line |= !seg.is_empty();
            out.push(v.trim().trim_matches(['"', '\'']));
        }
        if secret_line {
            out.push(line.trim());
        }
    }
    out.into_iter().filter(|v| v.chars().count() >= 4).map(Secret::new).collect()
}

/// A registry as a Docker config or docker/login-action names it: a host with an optional port,
/// an optional `https://` and path (`https://index.docker.io/v1/`).
fn is_host(r: &str) -> bool {
    let host = r.trim_start_matches("https://").trim_start_matches("http://");
    let host = host.split('/').next().unwrap_or("");
    !host.is_empty()
        && host.len() <= 253
        && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_' | '[' | ']'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(text: &str) -> Result<Vec<(String, String, String)>, String> {
        parse(&Secret::new(text), "INPUT_REGISTRY-AUTH")
            .map(|l| l.into_iter().map(|c| (c.registry, c.username, c.password.expose().to_string())).collect())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn login_action_lists() {
        let l = list(
            "- username: hubuser\n  password: hubpass\n- registry: ghcr.io\n  username: octocat\n  password: \"gh: p#1\"\n",
        )
        .unwrap();
        assert_eq!(
            l,
            [
                ("docker.io".into(), "hubuser".into(), "hubpass".into()),
                ("ghcr.io".into(), "octocat".into(), "gh: p#1".into())
            ]
        );
        // Flow style, comments and block scalars are YAML too.
        let l = list("# registries\n- {registry: 'quay.io', username: u, password: p}\n").unwrap();
        assert_eq!(l, [("quay.io".into(), "u".into(), "p".into())]);
        assert_eq!(list("").unwrap(), []);
        assert_eq!(list("[]").unwrap(), []);
    }

    #[test]
    fn errors_name_item_and_field_never_a_value() {
        let cases = [
            ("- registry: r.io\n  username: u\n  password: 'unclosed\n", "is not valid YAML (line 4"),
            ("registry: r.io\nusername: u\npassword: hunter2\n", "is not a YAML list"),
            ("- hunter2\n", "item 1 is not a mapping"),
            ("- registry: r.io\n  username: u\n  hunter2: x\n", "item 1 has a key other than"),
            ("- registry: r.io\n  username: u\n  password:\n", "item 1 (registry `r.io`) has no `password`"),
            ("- registry: r.io\n  password: hunter2\n", "item 1 (registry `r.io`) has no `username`"),
            ("- registry: r.io\n  username: u\n  password: 123456\n", "item 1: `password` is not a string"),
            ("- registry: hunter2 x\n  username: u\n  password: p\n", "item 1: `registry` is not a registry host"),
            (
                "- registry: aws.ecr\n  username: u\n  password: p\n  ecr: true\n",
                "item 1: `ecr` is docker/login-action's",
            ),
            (
                "- registry: GHCR.io\n  username: u\n  password: p\n- registry: ghcr.io\n  username: v\n  password: hunter2\n",
                "item 2 names registry `ghcr.io` again (item 1)",
            ),
        ];
        for (text, want) in cases {
            let e = list(text).unwrap_err();
            assert!(e.starts_with("`INPUT_REGISTRY-AUTH` "), "{e}");
            assert!(e.contains(want), "{text:?}: {e}");
            assert!(!e.contains("hunter2") && !e.contains("123456") && !e.contains("unclosed"), "{e}");
        }
    }

    #[test]
    fn every_password_is_masked_even_when_the_list_is_broken() {
        let s: Vec<String> =
            secrets("- registry: a.io\n  username: u\n  password: p1\n- username: v\n  password: p2\n")
                .iter()
                .map(|s| s.expose().to_string())
                .collect();
        assert_eq!(s, ["p1", "p2"]);
        let broken = |text: &str| -> Vec<String> { secrets(text).iter().map(|s| s.expose().to_string()).collect() };
        let s = broken("- registry: a.io\n  username: bot-user\n  password: 'hunter2\n");
        assert_eq!(s, ["hunter2", "password: 'hunter2"], "not the registry, nor the username");
        let s = broken("- {registry: ghcr.io, password: hunter2\n- ghp_stray_token\n");
        assert!(s.contains(&"hunter2".to_string()) && s.contains(&"ghp_stray_token".to_string()), "{s:?}");
        assert!(!s.iter().any(|v| v == "ghcr.io"), "{s:?}");
    }
}
