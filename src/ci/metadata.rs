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
}

impl GitMeta {
    pub fn on_default_branch(&self) -> bool {
        self.tag.is_none() && self.pr.is_none() && self.branch.is_some() && self.branch == self.default_branch
    }
}

/// The longest tag a registry accepts.
pub const MAX_TAG: usize = 128;

/// A branch or other ref as a tag: lower case, every character outside `[a-z0-9._-]` becomes
/// `-`, leading and trailing `-` and `.` dropped, at most 128 characters.
/// `feature/Login_2` → `feature-login_2`.
pub fn slug(name: &str) -> String {
    let mapped: String = name
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-') { c } else { '-' })
        .collect();
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

/// The tags (without the image name) a commit gets, most specific first:
///
/// | commit | tags |
/// | --- | --- |
/// | pull/merge request 42 | `pr-42` |
/// | git tag `v1.2.3` | `1.2.3`, `1.2`, `1`, `latest` |
/// | git tag `v1.2.3-rc.1` (a pre-release) | `1.2.3-rc.1` |
/// | another git tag | its [`slug`] |
/// | a branch | its [`slug`], and `latest` on the default branch |
///
/// and in every case `sha-` and the first 7 characters of the commit.
pub fn tag_names(meta: &GitMeta) -> Vec<String> {
    let mut t = Vec::new();
    if let Some(pr) = meta.pr {
        t.push(format!("pr-{pr}"));
    } else if let Some(tag) = &meta.tag {
        match release_version(tag) {
            Some(v) => {
                t.push(version_tag(&v));
                if v.pre.is_empty() {
                    t.push(format!("{}.{}", v.major, v.minor));
                    t.push(v.major.to_string());
                    t.push("latest".into());
                }
            }
            None => t.push(slug(tag)),
        }
    } else if let Some(branch) = &meta.branch {
        t.push(slug(branch));
        if meta.on_default_branch() {
            t.push("latest".into());
        }
    }
    if let Some(sha) = &meta.sha
        && sha.len() >= 7
        && sha.bytes().all(|b| b.is_ascii_hexdigit())
    {
        t.push(format!("sha-{}", sha[..7].to_ascii_lowercase()));
    }
    let mut seen = Vec::new();
    t.retain(|x| {
        !x.is_empty() && !seen.contains(x) && {
            seen.push(x.clone());
            true
        }
    });
    t
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

/// The `org.opencontainers.image.*` labels (also used as index annotations) for a commit:
/// `created` (from `now_unix`, RFC 3339 UTC), `revision` (the sha), `source` (the repository's
/// address), `title` (its name), `version` (the semver of a release tag, else the tag part of
/// the first of `tags`). Only those known are returned, in that order.
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
        assert_eq!(slug("feature/Login_2"), "feature-login_2");
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
    fn release_tags_get_every_level_and_latest() {
        let m = GitMeta { tag: Some("v1.2.3".into()), ..meta() };
        assert_eq!(
            tags_for("ghcr.io/a/b", &m),
            ["ghcr.io/a/b:1.2.3", "ghcr.io/a/b:1.2", "ghcr.io/a/b:1", "ghcr.io/a/b:latest", "ghcr.io/a/b:sha-0123456"]
        );
    }

    #[test]
    fn pre_releases_get_only_their_version() {
        let m = GitMeta { tag: Some("v1.2.3-rc.1".into()), ..meta() };
        assert_eq!(tag_names(&m), ["1.2.3-rc.1", "sha-0123456"]);
    }

    #[test]
    fn other_tags_branches_and_requests() {
        let m = GitMeta { tag: Some("Nightly/2024".into()), ..meta() };
        assert_eq!(tag_names(&m), ["nightly-2024", "sha-0123456"]);
        let m = GitMeta { branch: Some("main".into()), default_branch: Some("main".into()), ..meta() };
        assert_eq!(tag_names(&m), ["main", "latest", "sha-0123456"]);
        let m = GitMeta { branch: Some("feature/x".into()), default_branch: Some("main".into()), ..meta() };
        assert_eq!(tag_names(&m), ["feature-x", "sha-0123456"]);
        let m = GitMeta { branch: Some("main".into()), default_branch: Some("main".into()), pr: Some(7), ..meta() };
        assert_eq!(tag_names(&m), ["pr-7", "sha-0123456"]);
        assert!(tag_names(&GitMeta::default()).is_empty());
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
