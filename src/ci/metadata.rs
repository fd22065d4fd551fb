//! metadata: what the commit being built says about the image — its tags (the basics of
//! docker/metadata-action) and its `org.opencontainers.image.*` labels. Pure: the providers fill
//! a [`GitMeta`] from their environment, the clock comes in as a number.

use semver::Version;

/// What a CI says about the commit it builds. Every field is optional: a local run knows none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitMeta {
    /// What started the run, in the CI's words (`push`, `pull_request`, `merge_request_event`,
    /// `tag`, …); informative only.
    pub event: Option<String>,
    /// The branch built; for a pull/merge request, its source branch.
    pub branch: Option<String>,
    /// The git tag built.
    pub tag: Option<String>,
    /// The full commit id.
    pub sha: Option<String>,
    /// The pull or merge request number.
    pub pr: Option<u64>,
    /// The repository's default branch, when the CI tells it.
    pub default_branch: Option<String>,
    /// The repository's web address (`org.opencontainers.image.source`).
    pub repo_url: Option<String>,
    /// The repository's name (`org.opencontainers.image.title`).
    pub repo_name: Option<String>,
    /// The repository's description (`org.opencontainers.image.description`), where the CI
    /// gives one (GitHub's event payload, GitLab's `CI_PROJECT_DESCRIPTION`).
    pub description: Option<String>,
    /// The repository's home page (`org.opencontainers.image.url`).
    pub url: Option<String>,
    /// The repository's licence as an SPDX expression (`org.opencontainers.image.licenses`),
    /// where the CI gives one (GitHub's event payload).
    pub licenses: Option<String>,
    /// The repository's git tags this checkout knows (for `latest=auto`: a higher stable release
    /// keeps `latest` where it is). Empty when unknown.
    pub repo_tags: Vec<String>,
}

impl GitMeta {
    pub fn on_default_branch(&self) -> bool {
        self.tag.is_none() && self.pr.is_none() && self.branch.is_some() && self.branch == self.default_branch
    }
}

/// The longest tag a registry accepts.
pub const MAX_TAG: usize = 128;

/// A branch or other ref as a tag, as docker/metadata-action sanitizes one: every run of
/// characters outside `[A-Za-z0-9._-]` becomes one `-` (case is kept: tags may hold capitals),
/// leading and trailing `-` and `.` dropped, at most 128 characters.
/// `feature/Login_2` → `feature-Login_2`.
pub fn slug(name: &str) -> String {
    let mut mapped = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
            mapped.push(c);
        } else if !mapped.ends_with('-') {
            mapped.push('-');
        }
    }
    let trimmed = mapped.trim_matches(['-', '.']);
    trimmed[..trimmed.len().min(MAX_TAG)].trim_end_matches(['-', '.']).to_string()
}

/// The semantic version a git tag names (`v1.2.3`, `1.2.3-rc.1`, `v2.0.0+build.5`): strict
/// semver 2.0 after an optional leading `v` or `V`, as docker/metadata-action reads release tags.
pub fn release_version(tag: &str) -> Option<Version> {
    Version::parse(tag.strip_prefix(['v', 'V']).unwrap_or(tag)).ok()
}

/// A version as a tag: `1.2.3`, `1.2.3-rc.1` (build metadata joined with `-`, as a tag cannot
/// hold `+`).
fn version_tag(v: &Version) -> String {
    let mut t = format!("{}.{}.{}", v.major, v.minor, v.patch);
    for part in [v.pre.as_str(), v.build.as_str()].into_iter().filter(|p| !p.is_empty()) {
        t.push('-');
        t.push_str(part);
    }
    t
}

/// archway's tag rules when none are given, in docker/metadata-action's spelling (`type=computed`
/// in a `tags` input stands for all of them). With `latest=auto` they give:
///
/// | commit | tags |
/// | --- | --- |
/// | push to the default branch `main` | `edge`, `main`, `sha-0123456` |
/// | push to `feature/x` | `feature-x`, `sha-0123456` |
/// | git tag `v1.2.3` | `1.2.3`, `1.2`, `1`, `v1.2.3`, `sha-0123456`, `latest` |
/// | git tag `v1.3.0-rc.1` (a pre-release) | `1.3.0-rc.1`, `v1.3.0-rc.1`, `sha-0123456` |
/// | git tag `v0.3.0` (major version zero: no `0`) | `0.3.0`, `0.3`, `v0.3.0`, `sha-0123456`, `latest` |
/// | pull/merge request 42 | `pr-42`, `sha-0123456` |
/// | scheduled run on `main` | `nightly`, `edge`, `main`, `sha-0123456` |
pub const DEFAULT_RULES: &[&str] = &[
    "type=schedule",
    "type=ref,event=branch",
    "type=ref,event=tag",
    "type=ref,event=pr",
    "type=semver,pattern={{version}}",
    "type=semver,pattern={{major}}.{{minor}}",
    "type=semver,pattern={{major}}",
    "type=edge",
    "type=sha",
];

/// The `tags` item that stands for [`DEFAULT_RULES`], so literal tags can be added to them.
pub const COMPUTED: &str = "type=computed";

/// Which commits a `type=ref` rule tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefEvent {
    Branch,
    Tag,
    Pr,
}

/// What a rule computes its tag from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleKind {
    /// `type=schedule[,pattern=nightly]`: scheduled runs.
    Schedule { pattern: String },
    /// `type=semver,pattern={{version}}|{{major}}.{{minor}}|{{major}}|{{raw}}…[,value=V]`: a
    /// git tag (or `value`) that is a semantic version.
    Semver { pattern: String, value: Option<String> },
    /// `type=ref,event=branch|tag|pr`: the branch, the git tag as it is, or `pr-N`.
    Ref(RefEvent),
    /// `type=edge[,branch=B]`: `edge` on the default branch (or `B`).
    Edge { branch: Option<String> },
    /// `type=raw,value=V`, `type=raw,V` or a bare `V`.
    Raw(String),
    /// `type=sha[,format=short|long]`: `sha-` and 7 characters (or all 40) of the commit.
    Sha { long: bool },
}

/// One tag rule, as a line of docker/metadata-action's `tags` input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub kind: RuleKind,
    pub enable: bool,
    /// Higher first; the first tag gives the `version` label, as in metadata-action.
    pub priority: i32,
    /// `None`: the flavor's.
    pub prefix: Option<String>,
    pub suffix: Option<String>,
}

/// `latest` handling (`flavor: latest=…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Latest {
    /// Only for a git tag that is a stable semantic version, and not when the checkout holds a
    /// higher stable one.
    #[default]
    Auto,
    True,
    False,
}

/// docker/metadata-action's `flavor`: `latest=auto|true|false`, `prefix=P[,onlatest=true]`,
/// `suffix=S[,onlatest=true]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Flavor {
    pub latest: Latest,
    pub prefix: String,
    pub prefix_on_latest: bool,
    pub suffix: String,
    pub suffix_on_latest: bool,
}

/// Reads `flavor` items (one a line; `onlatest=true` follows the `prefix`/`suffix` it is for).
/// The error says which item and why.
pub fn parse_flavor(items: &[String]) -> Result<Flavor, String> {
    let mut f = Flavor::default();
    for item in items {
        let mut last: Option<&str> = None;
        for kv in item.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (k, v) = kv.split_once('=').ok_or_else(|| format!("`{kv}` is not `KEY=VALUE`"))?;
            match (k.trim(), v.trim()) {
                ("latest", v) => {
                    f.latest = match v {
                        "auto" => Latest::Auto,
                        "true" => Latest::True,
                        "false" => Latest::False,
                        _ => return Err(format!("`latest={v}`: expected `auto`, `true` or `false`")),
                    }
                }
                ("prefix", v) => {
                    f.prefix = v.to_string();
                    last = Some("prefix");
                }
                ("suffix", v) => {
                    f.suffix = v.to_string();
                    last = Some("suffix");
                }
                ("onlatest", v) => {
                    let on = v == "true";
                    match last {
                        Some("prefix") => f.prefix_on_latest = on,
                        Some("suffix") => f.suffix_on_latest = on,
                        _ => return Err(format!("`{kv}` follows no `prefix=` or `suffix=`")),
                    }
                }
                (k, _) => return Err(format!("`{k}` is not a flavor; expected `latest`, `prefix` or `suffix`")),
            }
        }
    }
    Ok(f)
}

/// One item of a `tags` input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagItem {
    /// A full reference (`ghcr.io/acme/app:1.0`): published as it is.
    Reference(String),
    /// A rule computed for the image ([`DEFAULT_RULES`] for `type=computed`, a bare tag name as
    /// `type=raw`).
    Rules(Vec<Rule>),
}

/// Splits a `tags` input: one item a line; a line that is not a `type=` rule may hold several,
/// separated by commas or blanks (`TAGS: "latest 1.0"`, `latest,1.0`).
pub fn tag_items(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.starts_with("type=") {
            out.push(line.to_string());
        } else {
            out.extend(line.split([',', ' ', '\t']).map(str::trim).filter(|s| !s.is_empty()).map(String::from));
        }
    }
    out
}

/// Reads one item of a `tags` input: a `type=` rule, a bare tag name (`latest`, `1.0`) or a
/// reference (anything with `/`, `:` or `@`). The error says why.
pub fn parse_tag_item(item: &str) -> Result<TagItem, String> {
    let item = item.trim();
    if item == COMPUTED {
        return Ok(TagItem::Rules(default_rules()));
    }
    if item.starts_with("type=") {
        return parse_rule(item).map(|r| TagItem::Rules(vec![r]));
    }
    if item.contains(['/', ':', '@']) {
        return Ok(TagItem::Reference(item.to_string()));
    }
    check_template(item)?;
    if !item.contains("{{") && !valid_tag(item) {
        return Err(format!(
            "`{item}` is not a tag name (letters, digits, `_`, `.` and `-`, not starting with `.` or `-`, at most {MAX_TAG})"
        ));
    }
    Ok(TagItem::Rules(vec![Rule {
        kind: RuleKind::Raw(item.to_string()),
        enable: true,
        priority: 200,
        prefix: None,
        suffix: None,
    }]))
}

/// [`DEFAULT_RULES`], parsed.
pub fn default_rules() -> Vec<Rule> {
    DEFAULT_RULES.iter().map(|r| parse_rule(r).expect("the default rules parse")).collect()
}

/// A tag as registries take it: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn valid_tag(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= MAX_TAG
        && !t.starts_with(['.', '-'])
        && t.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// The expressions archway fills in `value`, `prefix` and `suffix`.
const GLOBALS: [&str; 3] = ["{{branch}}", "{{tag}}", "{{sha}}"];

fn check_template(s: &str) -> Result<(), String> {
    let mut rest = s.to_string();
    for g in GLOBALS {
        rest = rest.replace(g, "");
    }
    match rest.find("{{") {
        Some(i) => Err(format!(
            "`{}` is not an expression archway fills; use `{{{{branch}}}}`, `{{{{tag}}}}` or `{{{{sha}}}}`",
            &rest[i..rest[i..].find("}}").map_or(rest.len(), |j| i + j + 2)]
        )),
        None => Ok(()),
    }
}

/// One `type=…` line of docker/metadata-action's `tags` input.
pub fn parse_rule(line: &str) -> Result<Rule, String> {
    let mut parts = line.split(',').map(str::trim);
    let ty = parts.next().and_then(|p| p.strip_prefix("type=")).unwrap_or_default().trim().to_string();
    let mut attrs: Vec<(String, String)> = Vec::new();
    for p in parts.filter(|p| !p.is_empty()) {
        match p.split_once('=') {
            Some((k, v)) => attrs.push((k.trim().to_string(), v.trim().to_string())),
            // `type=raw,foo`: the value without `value=`.
            None if ty == "raw" => attrs.push(("value".into(), p.to_string())),
            None => return Err(format!("`{p}` is not `KEY=VALUE`")),
        }
    }
    let get = |k: &str| attrs.iter().rev().find(|(a, _)| a == k).map(|(_, v)| v.clone());
    let allowed: &[&str] = match ty.as_str() {
        "schedule" => &["pattern"],
        "semver" => &["pattern", "value"],
        "ref" => &["event"],
        "edge" => &["branch"],
        "raw" => &["value"],
        "sha" => &["format"],
        "match" | "pep440" => {
            return Err(format!("archway does not compute `type={ty}` tags; use `type=semver` or `type=raw`"));
        }
        other => {
            return Err(format!(
                "`type={other}` is not a tag rule; expected `schedule`, `semver`, `ref`, `edge`, `raw`, `sha` or `computed`"
            ));
        }
    };
    for (k, _) in &attrs {
        if !allowed.contains(&k.as_str()) && !["enable", "priority", "prefix", "suffix"].contains(&k.as_str()) {
            return Err(format!("`type={ty}` has no attribute `{k}`"));
        }
    }
    let kind = match ty.as_str() {
        "schedule" => {
            let pattern = get("pattern").unwrap_or_else(|| "nightly".into());
            if pattern.contains("{{") {
                return Err(format!(
                    "`pattern={pattern}`: archway writes no dates; give the tag itself, e.g. `nightly`"
                ));
            }
            RuleKind::Schedule { pattern }
        }
        "semver" => {
            let Some(pattern) = get("pattern") else { return Err("`type=semver` needs a `pattern=`".into()) };
            let mut rest = pattern.clone();
            for p in ["{{version}}", "{{major}}", "{{minor}}", "{{patch}}", "{{raw}}"] {
                rest = rest.replace(p, "");
            }
            if rest.contains("{{") || rest == pattern {
                return Err(format!(
                    "`pattern={pattern}`: use `{{{{version}}}}`, `{{{{major}}}}`, `{{{{minor}}}}`, `{{{{patch}}}}` or `{{{{raw}}}}`"
                ));
            }
            RuleKind::Semver { pattern, value: get("value") }
        }
        "ref" => match get("event").as_deref() {
            Some("branch") => RuleKind::Ref(RefEvent::Branch),
            Some("tag") => RuleKind::Ref(RefEvent::Tag),
            Some("pr") => RuleKind::Ref(RefEvent::Pr),
            _ => return Err("`type=ref` needs `event=branch`, `event=tag` or `event=pr`".into()),
        },
        "edge" => RuleKind::Edge { branch: get("branch") },
        "raw" => {
            let Some(v) = get("value").filter(|v| !v.is_empty()) else {
                return Err("`type=raw` needs a `value=`".into());
            };
            check_template(&v)?;
            RuleKind::Raw(v)
        }
        _ => match get("format").as_deref() {
            None | Some("short") => RuleKind::Sha { long: false },
            Some("long") => RuleKind::Sha { long: true },
            Some(f) => return Err(format!("`format={f}`: expected `short` or `long`")),
        },
    };
    let enable = match get("enable").as_deref() {
        None | Some("true") => true,
        Some("false") => false,
        Some(v) => return Err(format!("`enable={v}`: expected `true` or `false`")),
    };
    let priority = match get("priority") {
        None => match &kind {
            RuleKind::Schedule { .. } => 1000,
            RuleKind::Semver { .. } => 900,
            RuleKind::Edge { .. } => 700,
            RuleKind::Ref(_) => 600,
            RuleKind::Raw(_) => 200,
            RuleKind::Sha { .. } => 100,
        },
        Some(p) => p.parse().map_err(|_| format!("`priority={p}`: expected a whole number"))?,
    };
    // `type=ref,event=pr` and `type=sha` have prefixes of their own, which the flavor's does
    // not replace.
    let prefix = get("prefix").or_else(|| match &kind {
        RuleKind::Ref(RefEvent::Pr) => Some("pr-".into()),
        RuleKind::Sha { .. } => Some("sha-".into()),
        _ => None,
    });
    let suffix = get("suffix");
    for v in prefix.iter().chain(&suffix) {
        check_template(v)?;
    }
    Ok(Rule { kind, enable, priority, prefix, suffix })
}

/// The tag names the rules give for a commit, highest priority first (ties in the order given),
/// `latest` last; and notes on what `latest=auto` decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Computed {
    pub names: Vec<String>,
    pub notes: Vec<String>,
}

/// The short commit id (7 characters), when the CI gives a commit.
fn short_sha(meta: &GitMeta) -> Option<String> {
    let sha = meta.sha.as_deref()?;
    (sha.len() >= 7 && sha.bytes().all(|b| b.is_ascii_hexdigit())).then(|| sha[..7].to_ascii_lowercase())
}

/// `{{branch}}`, `{{tag}}` and `{{sha}}` filled from the commit.
fn expand(s: &str, meta: &GitMeta) -> String {
    s.replace("{{branch}}", &meta.branch.as_deref().map(slug).unwrap_or_default())
        .replace("{{tag}}", &meta.tag.as_deref().map(slug).unwrap_or_default())
        .replace("{{sha}}", &short_sha(meta).unwrap_or_default())
}

/// A computed value as a tag: every character a tag cannot hold becomes `-`, leading `-`/`.`
/// dropped, at most 128 characters (case kept: tags may hold capitals).
fn sanitize(t: &str) -> String {
    let mapped: String =
        t.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '-' }).collect();
    let trimmed = mapped.trim_start_matches(['-', '.']);
    trimmed[..trimmed.len().min(MAX_TAG)].to_string()
}

/// A git push of a branch (no tag, no pull request).
fn branch_push(meta: &GitMeta) -> Option<&str> {
    meta.branch.as_deref().filter(|_| meta.tag.is_none() && meta.pr.is_none())
}

/// Fills `pattern` from `v` (`raw`: the git tag as written). A pre-release gives only its full
/// version (a pattern without `{{raw}}` yields `{{version}}`), and `{{major}}` alone gives nothing
/// for major version zero — as docker/metadata-action.
fn semver_tag(pattern: &str, v: &Version, raw: &str) -> Option<String> {
    if pattern.trim() == "{{major}}" && v.major == 0 {
        return None;
    }
    let pattern = if !v.pre.is_empty() && !pattern.contains("{{raw}}") { "{{version}}" } else { pattern };
    Some(
        pattern
            .replace("{{version}}", &version_tag(v))
            .replace("{{major}}", &v.major.to_string())
            .replace("{{minor}}", &v.minor.to_string())
            .replace("{{patch}}", &v.patch.to_string())
            .replace("{{raw}}", raw),
    )
}

/// The tags `rules` give for `meta` (see [`DEFAULT_RULES`] for what the defaults give).
///
/// `latest` (with `latest=auto`) goes only to a git tag that is a stable semantic version and
/// only when some rule tags that git tag — and not when `meta.repo_tags` holds a higher stable
/// version, so rebuilding an old release never moves `latest` back. A pre-release, another git
/// tag, a branch or a pull request never gets it.
pub fn compute(rules: &[Rule], flavor: &Flavor, meta: &GitMeta) -> Computed {
    let mut out: Vec<(i32, String)> = Vec::new();
    let mut notes = Vec::new();
    let mut tag_rule_fired = false;
    for r in rules.iter().filter(|r| r.enable) {
        let value = match &r.kind {
            RuleKind::Schedule { pattern } => {
                meta.event.as_deref().filter(|e| *e == "schedule").map(|_| pattern.clone())
            }
            RuleKind::Semver { pattern, value } => {
                let raw = value.clone().or_else(|| meta.tag.clone().filter(|_| meta.pr.is_none()));
                raw.and_then(|raw| {
                    let v = release_version(&raw)?;
                    tag_rule_fired |= value.is_none();
                    semver_tag(pattern, &v, &raw)
                })
            }
            RuleKind::Ref(RefEvent::Branch) => branch_push(meta).map(slug),
            RuleKind::Ref(RefEvent::Tag) => meta.tag.as_deref().filter(|_| meta.pr.is_none()).map(|t| {
                tag_rule_fired = true;
                slug(t)
            }),
            RuleKind::Ref(RefEvent::Pr) => meta.pr.map(|n| n.to_string()),
            RuleKind::Edge { branch } => branch_push(meta)
                .filter(|b| match branch {
                    Some(want) => b == want,
                    None => meta.default_branch.as_deref() == Some(b),
                })
                .map(|_| "edge".to_string()),
            RuleKind::Raw(v) => Some(expand(v, meta)),
            RuleKind::Sha { long } => {
                let full = meta.sha.as_deref().filter(|s| s.len() >= 7 && s.bytes().all(|b| b.is_ascii_hexdigit()));
                full.map(|s| if *long { s.to_ascii_lowercase() } else { s[..7].to_ascii_lowercase() })
            }
        };
        let Some(value) = value.filter(|v| !v.is_empty()) else { continue };
        let prefix = expand(r.prefix.as_deref().unwrap_or(&flavor.prefix), meta);
        let suffix = expand(r.suffix.as_deref().unwrap_or(&flavor.suffix), meta);
        out.push((r.priority, sanitize(&format!("{prefix}{value}{suffix}"))));
    }
    out.sort_by_key(|(p, _)| std::cmp::Reverse(*p));
    let mut names: Vec<String> = Vec::new();
    for (_, n) in out {
        if !n.is_empty() && !names.contains(&n) {
            names.push(n);
        }
    }
    let latest = match flavor.latest {
        Latest::False => false,
        Latest::True => true,
        Latest::Auto => {
            let stable = meta
                .tag
                .as_deref()
                .filter(|_| meta.pr.is_none())
                .and_then(release_version)
                .filter(|v| v.pre.is_empty());
            match stable {
                Some(v) if tag_rule_fired => match highest_stable(&meta.repo_tags).filter(|h| *h > v) {
                    Some(h) => {
                        notes.push(format!(
                            "`latest` stays where it is: this checkout has a higher release, {}",
                            version_tag(&h)
                        ));
                        false
                    }
                    None => true,
                },
                _ => false,
            }
        }
    };
    if latest {
        let prefix = if flavor.prefix_on_latest { expand(&flavor.prefix, meta) } else { String::new() };
        let suffix = if flavor.suffix_on_latest { expand(&flavor.suffix, meta) } else { String::new() };
        let l = sanitize(&format!("{prefix}latest{suffix}"));
        if !names.contains(&l) {
            names.push(l);
        }
    }
    Computed { names, notes }
}

/// The highest stable semantic version among git tags.
fn highest_stable(tags: &[String]) -> Option<Version> {
    tags.iter().filter_map(|t| release_version(t)).filter(|v| v.pre.is_empty()).max()
}

/// The tags (without the image name) [`DEFAULT_RULES`] give for a commit with `latest=auto`.
pub fn tag_names(meta: &GitMeta) -> Vec<String> {
    compute(&default_rules(), &Flavor::default(), meta).names
}

/// `image:TAG` for each of [`tag_names`]; `image` is a name without tag (`ghcr.io/acme/app`).
pub fn tags_for(image: &str, meta: &GitMeta) -> Vec<String> {
    tag_names(meta).into_iter().map(|t| format!("{image}:{t}")).collect()
}

/// Label and annotation keys archway fills.
pub const CREATED: &str = "org.opencontainers.image.created";
pub const REVISION: &str = "org.opencontainers.image.revision";
pub const SOURCE: &str = "org.opencontainers.image.source";
pub const TITLE: &str = "org.opencontainers.image.title";
pub const VERSION: &str = "org.opencontainers.image.version";
pub const DESCRIPTION: &str = "org.opencontainers.image.description";
pub const URL: &str = "org.opencontainers.image.url";
pub const LICENSES: &str = "org.opencontainers.image.licenses";

/// The `org.opencontainers.image.*` labels (also used as index annotations) for a commit:
/// `created` (from `now_unix`, RFC 3339 UTC), `revision` (the sha), `source` (the repository's
/// address), `title` (its name), `version` (the semver of a release tag, else the tag part of
/// the first of `tags`), `description`, `url` and `licenses` (where the CI gives them). Only
/// those known are returned, in that order.
pub fn oci_labels(meta: &GitMeta, tags: &[String], now_unix: i64) -> Vec<(String, String)> {
    let version = meta
        .tag
        .as_deref()
        .and_then(release_version)
        .map(|v| version_tag(&v))
        .or_else(|| tags.first().and_then(|r| tag_of(r)).map(String::from));
    [
        (CREATED, Some(rfc3339(now_unix))),
        (REVISION, meta.sha.clone()),
        (SOURCE, meta.repo_url.clone()),
        (TITLE, meta.repo_name.clone()),
        (VERSION, version),
        (DESCRIPTION, meta.description.clone()),
        (URL, meta.url.clone()),
        (LICENSES, meta.licenses.clone()),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.filter(|v| !v.is_empty()).map(|v| (k.to_string(), v)))
    .collect()
}

/// The tag of a reference: after the last `:` that follows the last `/`.
fn tag_of(reference: &str) -> Option<&str> {
    let name = reference.split('@').next().unwrap_or(reference);
    let last = &name[name.rfind('/').map_or(0, |i| i + 1)..];
    last.rsplit_once(':').map(|(_, t)| t)
}

/// Seconds since the Unix epoch as RFC 3339 in UTC: `2024-03-01T12:00:00Z`.
pub fn rfc3339(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Days to civil date (Howard Hinnant's algorithm), so no date library is needed for one line.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs % 3600 / 60, secs % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> GitMeta {
        GitMeta { sha: Some("0123456789abcdef0123456789abcdef01234567".into()), ..Default::default() }
    }

    #[test]
    fn slugs() {
        assert_eq!(slug("feature/Login_2"), "feature-Login_2");
        assert_eq!(slug("a//b"), "a-b");
        assert_eq!(slug("-.release/1.x.-"), "release-1.x");
        assert_eq!(slug("ünïcode"), "n-code");
        assert_eq!(slug(&"a".repeat(200)).len(), 128);
        assert_eq!(slug(&format!("{}-b", "a".repeat(127))), "a".repeat(127));
        assert_eq!(slug("///"), "");
    }

    #[test]
    fn semver() {
        let v = release_version("v1.2.3").unwrap();
        assert_eq!((v.major, v.minor, v.patch, v.pre.is_empty()), (1, 2, 3, true));
        assert_eq!(version_tag(&release_version("1.2.3-rc.1").unwrap()), "1.2.3-rc.1");
        assert_eq!(version_tag(&release_version("V2.0.0+build.5").unwrap()), "2.0.0-build.5");
        assert_eq!(version_tag(&release_version("1.0.0-alpha+001").unwrap()), "1.0.0-alpha-001");
        // `1.2.3-01`: a numeric pre-release identifier with a leading zero, which semver 2.0 (and
        // metadata-action) reject.
        for bad in ["v1.2", "1.2.3.4", "v01.2.3", "release-1", "1.2.3-", "1.2.3-a..b", "v1.2.x", "1.2.3-01", "vv1.2.3"]
        {
            assert_eq!(release_version(bad), None, "{bad}");
        }
    }

    #[test]
    fn release_tags_get_every_level_and_latest_last() {
        let m = GitMeta { tag: Some("v1.2.3".into()), ..meta() };
        assert_eq!(
            tags_for("ghcr.io/a/b", &m),
            [
                "ghcr.io/a/b:1.2.3",
                "ghcr.io/a/b:1.2",
                "ghcr.io/a/b:1",
                "ghcr.io/a/b:v1.2.3",
                "ghcr.io/a/b:sha-0123456",
                "ghcr.io/a/b:latest"
            ]
        );
    }

    #[test]
    fn pre_releases_get_their_version_and_never_latest() {
        let m = GitMeta { tag: Some("v1.2.3-rc.1".into()), ..meta() };
        assert_eq!(tag_names(&m), ["1.2.3-rc.1", "v1.2.3-rc.1", "sha-0123456"]);
    }

    #[test]
    fn major_version_zero_gets_no_major_tag() {
        let m = GitMeta { tag: Some("v0.3.0".into()), ..meta() };
        assert_eq!(tag_names(&m), ["0.3.0", "0.3", "v0.3.0", "sha-0123456", "latest"]);
    }

    #[test]
    fn a_higher_release_in_the_checkout_keeps_latest() {
        let m = GitMeta {
            tag: Some("v1.2.3".into()),
            repo_tags: vec!["v1.2.3".into(), "v2.0.0".into(), "v3.0.0-rc.1".into(), "junk".into()],
            ..meta()
        };
        let c = compute(&default_rules(), &Flavor::default(), &m);
        assert!(!c.names.contains(&"latest".to_string()), "{:?}", c.names);
        assert_eq!(c.notes, ["`latest` stays where it is: this checkout has a higher release, 2.0.0"]);
        let m = GitMeta { repo_tags: vec!["v1.2.2".into(), "v1.3.0-rc.1".into()], ..m };
        assert!(tag_names(&m).contains(&"latest".to_string()));
    }

    #[test]
    fn other_tags_branches_and_requests() {
        let m = GitMeta { tag: Some("Nightly/2024".into()), ..meta() };
        assert_eq!(tag_names(&m), ["Nightly-2024", "sha-0123456"]);
        let m = GitMeta { branch: Some("main".into()), default_branch: Some("main".into()), ..meta() };
        assert_eq!(tag_names(&m), ["edge", "main", "sha-0123456"]);
        let m = GitMeta { branch: Some("feature/x".into()), default_branch: Some("main".into()), ..meta() };
        assert_eq!(tag_names(&m), ["feature-x", "sha-0123456"]);
        let m = GitMeta { branch: Some("main".into()), default_branch: Some("main".into()), pr: Some(7), ..meta() };
        assert_eq!(tag_names(&m), ["pr-7", "sha-0123456"]);
        let m = GitMeta { event: Some("schedule".into()), ..m };
        assert_eq!(tag_names(&m), ["nightly", "pr-7", "sha-0123456"]);
        assert!(tag_names(&GitMeta::default()).is_empty());
    }

    fn rules(lines: &[&str]) -> Vec<Rule> {
        lines.iter().map(|l| parse_rule(l).unwrap()).collect()
    }

    #[test]
    fn rules_flavor_prefix_suffix_and_templates() {
        let m = GitMeta { tag: Some("v1.2.3".into()), ..meta() };
        let f =
            parse_flavor(&["latest=auto".into(), "prefix=app-,onlatest=true".into(), "suffix=-alpine".into()]).unwrap();
        let c = compute(
            &rules(&["type=semver,pattern={{major}}.{{minor}}", "type=sha,format=long", "type=raw,value=x-{{sha}}"]),
            &f,
            &m,
        );
        assert_eq!(
            c.names,
            [
                "app-1.2-alpine",
                "app-x-0123456-alpine",
                "sha-0123456789abcdef0123456789abcdef01234567-alpine",
                "app-latest"
            ]
        );
        // A rule's own prefix replaces the flavor's; `latest=false` drops latest; `enable=false`.
        let f = parse_flavor(&["latest=false,prefix=p-".into()]).unwrap();
        let c = compute(
            &rules(&[
                "type=semver,pattern={{version}},prefix=",
                "type=raw,foo,enable=false",
                "type=raw,bar,priority=950",
            ]),
            &f,
            &m,
        );
        assert_eq!(c.names, ["p-bar", "1.2.3"]);
        // `latest=true` on a branch; `type=edge,branch=dev`.
        let m = GitMeta { branch: Some("dev".into()), default_branch: Some("main".into()), ..meta() };
        let f = parse_flavor(&["latest=true".into()]).unwrap();
        assert_eq!(
            compute(&rules(&["type=edge,branch=dev", "type=semver,pattern={{version}}"]), &f, &m).names,
            ["edge", "latest"]
        );
        // A semver rule with `value=` reads that value, not the git tag (and moves no latest).
        let c = compute(&rules(&["type=semver,pattern={{major}},value=v4.5.6"]), &Flavor::default(), &m);
        assert_eq!(c.names, ["4"]);
    }

    #[test]
    fn bad_rules_and_flavors_say_why() {
        for (bad, why) in [
            ("type=match,pattern=v(.*)", "archway does not compute `type=match`"),
            ("type=semver", "needs a `pattern=`"),
            ("type=semver,pattern=x", "use `{{version}}`"),
            ("type=ref", "needs `event=branch`"),
            ("type=sha,format=medium", "`format=medium`"),
            ("type=raw", "needs a `value=`"),
            ("type=raw,value={{date 'YYYY'}}", "`{{date 'YYYY'}}` is not an expression"),
            ("type=edge,pattern=x", "has no attribute `pattern`"),
            ("type=nope", "is not a tag rule"),
        ] {
            let e = parse_rule(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        assert!(parse_flavor(&["latest=maybe".into()]).unwrap_err().contains("expected `auto`"));
        assert!(parse_flavor(&["onlatest=true".into()]).is_err());
        assert!(parse_flavor(&["colour=red".into()]).unwrap_err().contains("is not a flavor"));
    }

    #[test]
    fn tag_items_split_names_on_blanks_and_commas_but_keep_rules_whole() {
        assert_eq!(tag_items("latest 1.0"), ["latest", "1.0"]);
        assert_eq!(tag_items("latest,1.0\n ghcr.io/a/b:x \n"), ["latest", "1.0", "ghcr.io/a/b:x"]);
        assert_eq!(
            tag_items("type=semver,pattern={{version}}\ntype=computed"),
            ["type=semver,pattern={{version}}", "type=computed"]
        );
        assert_eq!(parse_tag_item("ghcr.io/a/b:1").unwrap(), TagItem::Reference("ghcr.io/a/b:1".into()));
        assert!(
            matches!(parse_tag_item("type=computed").unwrap(), TagItem::Rules(r) if r.len() == DEFAULT_RULES.len())
        );
        assert!(
            matches!(parse_tag_item("1.0").unwrap(), TagItem::Rules(r) if r[0].kind == RuleKind::Raw("1.0".into()))
        );
        assert!(parse_tag_item("-x").unwrap_err().contains("is not a tag name"));
    }

    #[test]
    fn labels() {
        let m = GitMeta {
            tag: Some("v1.2.3".into()),
            repo_url: Some("https://github.com/acme/app".into()),
            repo_name: Some("app".into()),
            ..meta()
        };
        let l = oci_labels(&m, &["x:9".into()], 1_709_294_400);
        assert_eq!(
            l,
            [
                (CREATED.to_string(), "2024-03-01T12:00:00Z".to_string()),
                (REVISION.into(), "0123456789abcdef0123456789abcdef01234567".into()),
                (SOURCE.into(), "https://github.com/acme/app".into()),
                (TITLE.into(), "app".into()),
                (VERSION.into(), "1.2.3".into()),
            ]
        );
        let l = oci_labels(&GitMeta::default(), &["localhost:5000/a/b:main".into()], 0);
        assert_eq!(l, [(CREATED.into(), "1970-01-01T00:00:00Z".into()), (VERSION.into(), "main".into())]);
        assert!(oci_labels(&GitMeta::default(), &["localhost:5000/a/b".into()], 0).len() == 1);
    }

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_735_689_599), "2024-12-31T23:59:59Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
    }
}
