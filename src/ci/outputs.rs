//! outputs: the result of a run as the files each CI reads back — what is shared between them
//! (the result, the `ARCHWAY_*` variables, the dotenv format and its limits, the JSON result)
//! and the two small effects of writing or appending a file. The per-CI files are in the
//! provider files; everything that builds text here is pure.

use std::fmt;
use std::io::Write as _;
use std::path::Path;

use serde::Serialize;

/// What a finished run produced, as the CI outputs need it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CiResult {
    /// The digest of the index (or of the single manifest) published or written.
    pub digest: String,
    /// The image name without tag (`ghcr.io/acme/app`).
    pub image: String,
    /// Full references: `ghcr.io/acme/app:1.2.3`.
    pub tags: Vec<String>,
    pub platforms: Vec<PlatformRow>,
    /// The `--metadata-file` JSON document, as text.
    #[serde(skip)]
    pub metadata_json: String,
}

/// One platform of the result: how it was built, why, and what came out.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PlatformRow {
    pub platform: String,
    pub strategy: String,
    pub reason: String,
    pub digest: String,
    pub duration_secs: f64,
}

impl CiResult {
    /// `image@digest`: the exact thing published, whatever the tags do later.
    pub fn image_ref(&self) -> String {
        format!("{}@{}", self.image, self.digest)
    }

    /// The platforms, comma-joined: `linux/amd64,linux/arm64`.
    pub fn platform_list(&self) -> String {
        self.platforms.iter().map(|p| p.platform.as_str()).collect::<Vec<_>>().join(",")
    }

    /// `archway-result.json`: this result with the metadata document inside (`null` when it is
    /// empty or not JSON).
    pub fn to_json(&self) -> String {
        let mut v = serde_json::to_value(self).expect("a result serialises");
        v["image_ref"] = self.image_ref().into();
        v["metadata"] = serde_json::from_str(&self.metadata_json).unwrap_or(serde_json::Value::Null);
        serde_json::to_string_pretty(&v).expect("a value serialises") + "\n"
    }
}

/// The names of the variables archway exports where a CI passes variables to later steps or
/// jobs (GitLab's dotenv report, Bitbucket's output variables). `ARCHWAY_RESULT_*`, so they never
/// collide with an input (`ARCHWAY_IMAGE`, `ARCHWAY_TAGS`, …): a dotenv variable reaches every
/// later job, and a second archway job there must not take the first one's result as its input.
pub const RESULT_VARS: [&str; 5] = [
    "ARCHWAY_RESULT_DIGEST",
    "ARCHWAY_RESULT_IMAGE",
    "ARCHWAY_RESULT_IMAGE_REF",
    "ARCHWAY_RESULT_TAGS",
    "ARCHWAY_RESULT_PLATFORMS",
];

/// The variables archway exports ([`RESULT_VARS`]). Every value is one line.
pub fn result_vars(r: &CiResult) -> Vec<(String, String)> {
    let [digest, image, image_ref, tags, platforms] = RESULT_VARS;
    [
        (digest, r.digest.clone()),
        (image, r.image.clone()),
        (image_ref, r.image_ref()),
        (tags, r.tags.join(",")),
        (platforms, r.platform_list()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// GitLab's limits for a dotenv report (Bitbucket's output variables are read the same way).
pub const DOTENV_MAX_VARIABLES: usize = 20;
pub const DOTENV_MAX_BYTES: usize = 5 * 1024;

/// Why a set of variables cannot be written as a dotenv file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DotenvError {
    TooMany(usize),
    BadKey(String),
    MultiLine(String),
    TooLarge(usize),
}

impl fmt::Display for DotenvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DotenvError::TooMany(n) => write!(f, "{n} variables; a dotenv report holds at most {DOTENV_MAX_VARIABLES}"),
            DotenvError::BadKey(k) => write!(f, "variable name `{k}` may hold only ASCII letters, digits and `_`"),
            DotenvError::MultiLine(k) => write!(f, "the value of `{k}` has a line break; dotenv values are one line"),
            DotenvError::TooLarge(n) => write!(f, "{n} bytes; a dotenv report holds at most {DOTENV_MAX_BYTES}"),
        }
    }
}

impl std::error::Error for DotenvError {}

/// `KEY=VALUE` lines, checked against the dotenv rules: at most 20 variables, names of ASCII
/// letters, digits and `_` (not starting with a digit), one-line values, at most 5 KiB. Values
/// are not quoted: GitLab keeps quotes as part of the value.
pub fn dotenv(vars: &[(String, String)]) -> Result<String, DotenvError> {
    if vars.len() > DOTENV_MAX_VARIABLES {
        return Err(DotenvError::TooMany(vars.len()));
    }
    let mut out = String::new();
    for (k, v) in vars {
        let key_ok = !k.is_empty()
            && !k.starts_with(|c: char| c.is_ascii_digit())
            && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !key_ok {
            return Err(DotenvError::BadKey(k.clone()));
        }
        if v.contains(['\n', '\r']) {
            return Err(DotenvError::MultiLine(k.clone()));
        }
        out.push_str(&format!("{k}={v}\n"));
    }
    if out.len() > DOTENV_MAX_BYTES {
        return Err(DotenvError::TooLarge(out.len()));
    }
    Ok(out)
}

/// Appends `text` to `path`, creating it: CI files that other steps also write to. When what is
/// there does not end with a line break, one is added first, so an earlier writer's last line
/// (`name=value` without its newline) does not swallow archway's first.
pub fn append(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let mut f = std::fs::OpenOptions::new().create(true).read(true).append(true).open(path)?;
    let mut last = [0u8; 1];
    let unterminated = f.seek(SeekFrom::End(0))? > 0 && {
        f.seek(SeekFrom::End(-1))?;
        f.read_exact(&mut last)?;
        last[0] != b'\n'
    };
    let text = if unterminated { format!("\n{text}") } else { text.to_string() };
    f.write_all(text.as_bytes())
}

/// 128 random bits as hex, from the OS; where `/dev/urandom` cannot be read, from the clock, the
/// process id and the standard library's per-process hash seed.
pub fn random_hex() -> String {
    use std::io::Read as _;
    let mut buf = [0u8; 16];
    if std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut buf)).is_ok() {
        return hex::encode(buf);
    }
    use std::hash::{BuildHasher as _, Hasher as _};
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let half = |salt: u64| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(nanos);
        h.write_u32(std::process::id());
        h.write_u64(salt);
        h.finish()
    };
    format!("{:016x}{:016x}", half(1), half(2))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(n: usize) -> Vec<(String, String)> {
        (0..n).map(|i| (format!("V{i}"), "x".into())).collect()
    }

    #[test]
    fn dotenv_limits() {
        assert_eq!(dotenv(&vars(2)).unwrap(), "V0=x\nV1=x\n");
        assert!(dotenv(&vars(20)).is_ok());
        assert_eq!(dotenv(&vars(21)), Err(DotenvError::TooMany(21)));
        for bad in ["A-B", "", "1A", "ÄB", "A B"] {
            assert_eq!(dotenv(&[(bad.into(), "x".into())]), Err(DotenvError::BadKey(bad.into())), "{bad}");
        }
        assert_eq!(dotenv(&[("A".into(), "x\ny".into())]), Err(DotenvError::MultiLine("A".into())));
        assert_eq!(dotenv(&[("A".into(), "x\r".into())]), Err(DotenvError::MultiLine("A".into())));
        assert!(matches!(dotenv(&[("A".into(), "x".repeat(6000))]), Err(DotenvError::TooLarge(_))));
    }

    /// No result variable is an input on any CI, and they fit in one dotenv report.
    #[test]
    fn result_names_never_collide_with_inputs() {
        for name in RESULT_VARS {
            for i in super::super::vars::INPUTS {
                assert!(![i.archway, i.pipe, i.github].contains(&name), "{name} is input `{}`", i.name);
            }
        }
        assert!(RESULT_VARS.len() <= DOTENV_MAX_VARIABLES);
        assert_eq!(result_vars(&CiResult::default()).len(), RESULT_VARS.len());
    }

    #[test]
    fn append_starts_on_a_line_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out");
        append(&p, "a=1\n").unwrap();
        append(&p, "b=2\n").unwrap();
        std::fs::write(dir.path().join("out"), "x=unterminated").and_then(|_| append(&p, "c=3\n")).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "x=unterminated\nc=3\n");
        let q = dir.path().join("q");
        append(&q, "a=1\n").unwrap();
        append(&q, "b=2\n").unwrap();
        assert_eq!(std::fs::read_to_string(&q).unwrap(), "a=1\nb=2\n");
    }

    #[test]
    fn random_hex_differs() {
        let (a, b) = (random_hex(), random_hex());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }

    #[test]
    fn result_json_embeds_metadata() {
        let r = CiResult {
            digest: "sha256:00".into(),
            image: "r/a".into(),
            metadata_json: r#"{"k":1}"#.into(),
            ..Default::default()
        };
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(v["image_ref"], "r/a@sha256:00");
        assert_eq!(v["metadata"]["k"], 1);
        let v: serde_json::Value = serde_json::from_str(&CiResult::default().to_json()).unwrap();
        assert!(v["metadata"].is_null());
    }
}
