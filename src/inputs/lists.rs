//! lists: the one parser for each kind of list a user types — image references (`-t`, merge
//! and promote arguments), `KEY=VALUE` pairs (`--build-arg`, `--label`, `--annotation`) and
//! platforms — shared by every subcommand and by the CI inputs. Pure: no environment, no files.
//!
//! Items are split as [`crate::ci::lists::items`] splits a CI input: on commas and newlines,
//! trimmed, empties dropped, so `-t a,b`, `-t a -t b` and a multi-line `tags:` input agree.

use crate::ci::lists::items;
use crate::error::UserError;
use crate::platform::{self, Platform};
use crate::reference::Reference;

/// Platforms built when none are given.
pub const DEFAULT_PLATFORMS: &str = "linux/amd64,linux/arm64";

/// Image references to publish to, from `flag` (`-t`, `DST`): each parsed, none naming a
/// digest. An empty list is not an error here; the caller knows whether tags are required.
pub fn tags(flag: &str, given: &[String]) -> Result<Vec<Reference>, UserError> {
    let mut out = Vec::new();
    for t in given.iter().flat_map(|g| items(g)) {
        out.push(reference(flag, &t)?);
        if out.last().is_some_and(|r: &Reference| r.digest.is_some()) {
            return Err(UserError::input(format!("`{flag} {t}` names a digest; a tag cannot be pushed to a digest"))
                .hint("drop the `@sha256:…` part"));
        }
    }
    Ok(out)
}

/// One image reference typed as `flag`.
pub fn reference(flag: &str, text: &str) -> Result<Reference, UserError> {
    text.trim().parse::<Reference>().map_err(|e| {
        UserError::input(format!("`{flag} {}` is not an image reference", text.trim()))
            .caused_by(e)
            .hint("references look like `registry/repository:tag`, e.g. `ghcr.io/acme/app:1.2`")
    })
}

/// Fails unless every reference is in the first one's repository.
pub fn one_repository(tags: &[Reference], hint: &str) -> Result<(), UserError> {
    if let Some(first) = tags.first()
        && let Some(other) = tags.iter().find(|t| !t.same_repository(first))
    {
        return Err(UserError::input(format!(
            "tags name two repositories, `{}` and `{}`; one run publishes to one repository",
            first.name(),
            other.name()
        ))
        .hint(hint));
    }
    Ok(())
}

/// `KEY=VALUE` pairs given as `flag`; a later key replaces an earlier one in place.
pub fn pairs(flag: &str, given: &[String]) -> Result<Vec<(String, String)>, UserError> {
    let mut out: Vec<(String, String)> = Vec::new();
    for g in given {
        let (k, v) = split_pair(g).ok_or_else(|| {
            UserError::input(format!("`{flag} {g}` is not `KEY=VALUE`")).hint(format!("write it as `{flag} KEY=VALUE`"))
        })?;
        set(&mut out, k, v);
    }
    Ok(out)
}

/// Where an annotation goes, as buildx's `--annotation [TYPE[,TYPE…]:]KEY=VALUE` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Levels {
    pub manifest: bool,
    pub index: bool,
}

/// One annotation typed as `flag`: `KEY=VALUE` (each platform's manifest, as buildx),
/// `manifest:KEY=VALUE`, `index:KEY=VALUE` or `index,manifest:KEY=VALUE`.
pub fn annotation(flag: &str, item: &str) -> Result<(Levels, String, String), UserError> {
    let hint = "write it as buildx does: `KEY=VALUE` or `manifest:KEY=VALUE` (each platform's manifest), `index:KEY=VALUE` (the index), `index,manifest:KEY=VALUE` (both)";
    let (levels, kv) = match item.split_once(':') {
        Some((types, kv)) if !types.contains('=') => {
            let mut l = Levels { manifest: false, index: false };
            for t in types.split(',').map(str::trim) {
                match t {
                    "manifest" => l.manifest = true,
                    "index" => l.index = true,
                    other => {
                        return Err(UserError::input(format!(
                            "`{flag} {item}`: archway does not write `{other}` annotations"
                        ))
                        .hint(hint));
                    }
                }
            }
            (l, kv)
        }
        _ => (Levels { manifest: true, index: false }, item),
    };
    let (k, v) =
        split_pair(kv).ok_or_else(|| UserError::input(format!("`{flag} {item}` is not `KEY=VALUE`")).hint(hint))?;
    Ok((levels, k, v))
}

/// `KEY=VALUE` → (`KEY`, `VALUE`), the key trimmed and non-empty; `None` otherwise.
pub fn split_pair(item: &str) -> Option<(String, String)> {
    let (k, v) = item.split_once('=')?;
    let k = k.trim();
    (!k.is_empty()).then(|| (k.to_string(), v.to_string()))
}

/// Sets `key` in an ordered list of pairs: replaced in place when present, else appended.
pub fn set(pairs: &mut Vec<(String, String)>, key: String, value: String) {
    match pairs.iter_mut().find(|(k, _)| *k == key) {
        Some(slot) => slot.1 = value,
        None => pairs.push((key, value)),
    }
}

/// The host of a Git repository fetched over HTTP(S), as buildx tells a Git context from a
/// tarball URL: `https://HOST/PATH.git` (with an optional `#REF:DIR`), or `github.com/…` without
/// a scheme. `None` for anything else (SSH remotes use keys, not a token).
pub fn git_url_host(value: &str) -> Option<String> {
    let v = value.trim();
    if let Some(rest) = v.strip_prefix("github.com/") {
        return (!rest.is_empty()).then(|| "github.com".to_string());
    }
    let url = url::Url::parse(v).ok()?;
    if !matches!(url.scheme(), "https" | "http") || !url.path().ends_with(".git") {
        return None;
    }
    url.host_str().map(str::to_ascii_lowercase)
}

/// Platforms given as `flag` (repeated or comma-separated), duplicates dropped; `default` when
/// none are given (`None`: the empty list).
pub fn platforms(flag: &str, given: &[String], default: Option<&str>) -> Result<Vec<Platform>, UserError> {
    let joined = given.iter().flat_map(|g| items(g)).collect::<Vec<_>>().join(",");
    let text = if joined.is_empty() { default.unwrap_or_default() } else { joined.as_str() };
    platform::parse_list(text).map_err(|e| {
        UserError::input(format!("`{flag}` has a platform archway does not know"))
            .caused_by(e)
            .hint("write platforms as `os/arch[/variant]`, e.g. `linux/amd64,linux/arm64,linux/arm/v7`")
    })
}

/// The fields of a buildx output or cache spec, read as buildx reads them (one CSV record):
/// commas separate fields, except inside double quotes (`"name=a:1,a:2"`), where `""` is a quote.
pub fn csv_fields(spec: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = spec.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                fields.last_mut().expect("one field").push('"');
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(String::new()),
            c => fields.last_mut().expect("one field").push(c),
        }
    }
    fields.retain(|f| !f.trim().is_empty());
    fields
}

#[cfg(test)]
mod tests {
    #[test]
    fn output_specs_are_read_as_csv() {
        assert_eq!(super::csv_fields("type=local,dest=out"), ["type=local", "dest=out"]);
        assert_eq!(
            super::csv_fields(r#"type=image,"name=r/a:1,r/a:2",push=true"#),
            ["type=image", "name=r/a:1,r/a:2", "push=true"]
        );
        assert_eq!(super::csv_fields(r#""annotation.x=say ""hi"", twice",,"#), [r#"annotation.x=say "hi", twice"#]);
    }

    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn git_urls_as_buildx_tells_them() {
        assert_eq!(git_url_host("https://github.com/acme/private.git#main:sub").as_deref(), Some("github.com"));
        assert_eq!(git_url_host("https://GHE.example.com/a/b.git").as_deref(), Some("ghe.example.com"));
        assert_eq!(git_url_host("github.com/acme/private").as_deref(), Some("github.com"));
        assert_eq!(git_url_host("https://github.com/acme/app/archive/v1.tar.gz"), None, "a tarball");
        assert_eq!(git_url_host("git@github.com:acme/private.git"), None, "SSH: keys, not a token");
        assert_eq!(git_url_host("../src"), None);
        assert_eq!(git_url_host("docker-image://alpine:3.20"), None);
    }

    #[test]
    fn tags_split_like_ci_lists_and_never_panic_on_empties() {
        let t = tags("-t", &s(&["ghcr.io/a/b:1, ghcr.io/a/b:2", "ghcr.io/a/b:3"])).unwrap();
        assert_eq!(t.len(), 3);
        assert!(tags("-t", &s(&[",", " \n"])).unwrap().is_empty());
        let d = format!("ghcr.io/a/b@sha256:{}", "a".repeat(64));
        let e = tags("-t", &[d]).unwrap_err();
        assert!(e.message.contains("names a digest"), "{}", e.message);
        let e = tags("-t", &s(&["UPPER/case:1"])).unwrap_err();
        assert_eq!(e.kind, crate::error::ErrorKind::Input);
        assert!(e.source.is_some(), "the parse error is the cause, not flattened into the message");
    }

    #[test]
    fn one_repository_names_both() {
        let t = tags("-t", &s(&["ghcr.io/a/b:1", "docker.io/a/b:1"])).unwrap();
        let e = one_repository(&t, "h").unwrap_err();
        assert!(e.message.contains("`ghcr.io/a/b` and `docker.io/a/b`"), "{}", e.message);
        assert!(one_repository(&t[..1], "h").is_ok());
    }

    #[test]
    fn pairs_later_wins_in_place() {
        let p = pairs("--label", &s(&["a=1", "b=2", " a =3=4"])).unwrap();
        assert_eq!(p, [("a".to_string(), "3=4".to_string()), ("b".into(), "2".into())]);
        assert!(pairs("--label", &s(&["=x"])).is_err());
        assert!(pairs("--label", &s(&["novalue"])).is_err());
    }

    #[test]
    fn annotations_are_scoped_as_buildx_scopes_them() {
        let m = Levels { manifest: true, index: false };
        let i = Levels { manifest: false, index: true };
        let b = Levels { manifest: true, index: true };
        assert_eq!(annotation("-a", "a=b").unwrap(), (m, "a".into(), "b".into()));
        assert_eq!(annotation("-a", "a=http://x").unwrap(), (m, "a".into(), "http://x".into()));
        assert_eq!(annotation("-a", "manifest:a=b").unwrap().0, m);
        assert_eq!(
            annotation("-a", "index:org.opencontainers.image.description=x: y").unwrap(),
            (i, "org.opencontainers.image.description".into(), "x: y".into())
        );
        assert_eq!(annotation("-a", "index,manifest:a=b").unwrap().0, b);
        let e = annotation("--annotation", "manifest-descriptor:a=b").unwrap_err();
        assert!(e.message.contains("does not write `manifest-descriptor`"), "{}", e.message);
        assert!(annotation("-a", "index:novalue").unwrap_err().message.contains("is not `KEY=VALUE`"));
    }

    #[test]
    fn platforms_default_and_dedupe() {
        assert_eq!(platforms("--platform", &[], Some(DEFAULT_PLATFORMS)).unwrap().len(), 2);
        assert!(platforms("--platform", &[], None).unwrap().is_empty());
        assert_eq!(platforms("--platform", &s(&["amd64,linux/amd64", "aarch64"]), None).unwrap().len(), 2);
        let e = platforms("--platform", &s(&["linux/sparc"]), None).unwrap_err();
        assert!(e.source.is_some());
    }
}
