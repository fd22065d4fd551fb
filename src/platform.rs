//! Platform: one `os/arch[/variant]` value, parsed and normalised as containerd does.
//!
//! Owns the spelling rules (`aarch64` → `arm64`, `armhf` → `arm/v7`, …) and the list of
//! architectures archway knows. Pure: no I/O.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Operating systems archway accepts in a platform.
pub const KNOWN_OS: &[&str] = &["linux", "windows", "freebsd", "darwin"];

/// Architectures archway accepts, in their normalised spelling.
pub const KNOWN_ARCH: &[&str] = &[
    "amd64", "arm64", "arm", "386", "ppc64le", "s390x", "riscv64", "mips64le", "loong64", "ppc64", "mips64", "mipsle",
    "mips",
];

/// A target platform such as `linux/arm/v7`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// Why a platform string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlatformError {
    #[error("platform `{0}` is empty or has an empty part; expected `os/arch[/variant]`, e.g. `linux/arm64`")]
    Malformed(String),
    #[error("platform `{input}` has unknown operating system `{os}`; known: {}", KNOWN_OS.join(", "))]
    UnknownOs { input: String, os: String },
    #[error("platform `{input}` has unknown architecture `{arch}`; known: {}", KNOWN_ARCH.join(", "))]
    UnknownArch { input: String, arch: String },
    #[error("platform `{input}` has variant `{variant}`, which `{arch}` does not have")]
    UnknownVariant { input: String, arch: String, variant: String },
}

impl Platform {
    pub fn new(os: &str, arch: &str, variant: Option<&str>) -> Result<Self, PlatformError> {
        let mut s = format!("{os}/{arch}");
        if let Some(v) = variant {
            s.push('/');
            s.push_str(v);
        }
        s.parse()
    }

    /// The platform of the machine this binary was compiled for.
    pub fn host() -> Self {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        Platform::new("linux", arch, None).unwrap_or(Platform {
            os: "linux".into(),
            architecture: arch.into(),
            variant: None,
        })
    }

    /// A string safe to use in file names: `linux-arm-v7`.
    pub fn slug(&self) -> String {
        self.to_string().replace('/', "-")
    }
}

fn normalize_os(os: &str) -> String {
    let os = os.to_ascii_lowercase();
    match os.as_str() {
        "macos" => "darwin".into(),
        _ => os,
    }
}

/// Returns (arch, variant) normalised, or the reason.
fn normalize_arch(arch: &str, variant: Option<&str>) -> Result<(String, Option<String>), String> {
    let arch = arch.to_ascii_lowercase();
    let variant = variant.map(|v| v.to_ascii_lowercase());
    let v = variant.as_deref();
    let r = match arch.as_str() {
        "i386" | "386" | "i686" | "x86" => ("386", None),
        "x86_64" | "x86-64" | "amd64" => match v {
            None | Some("v1") => ("amd64", None),
            Some(v @ ("v2" | "v3" | "v4")) => ("amd64", Some(v)),
            Some(_) => return Err("amd64".into()),
        },
        "aarch64" | "arm64" => match v {
            None | Some("8" | "v8" | "v8.0") => ("arm64", None),
            Some(v) => {
                let n = v.strip_prefix('v').unwrap_or(v);
                let ok = n.split('.').all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
                if !ok {
                    return Err("arm64".into());
                }
                return Ok(("arm64".into(), Some(format!("v{n}"))));
            }
        },
        "armhf" => match v {
            None => ("arm", Some("v7")),
            Some(_) => return Err("armhf".into()),
        },
        "armel" => match v {
            None => ("arm", Some("v6")),
            Some(_) => return Err("armel".into()),
        },
        "arm" | "armv7l" | "armv7" | "armv6l" | "armv6" | "armv5l" | "armv5" | "armv8l" => {
            let implied = match arch.as_str() {
                "armv7l" | "armv7" => Some("7"),
                "armv6l" | "armv6" => Some("6"),
                "armv5l" | "armv5" => Some("5"),
                "armv8l" => Some("8"),
                _ => None,
            };
            let v = match (implied, v) {
                (Some(i), None) => Some(i),
                (Some(i), Some(given)) if given.trim_start_matches('v') == i => Some(i),
                (Some(_), Some(_)) => return Err(arch.clone()),
                (None, v) => v,
            };
            match v.map(|v| v.trim_start_matches('v')) {
                None | Some("7") => ("arm", Some("v7")),
                Some("6") => ("arm", Some("v6")),
                Some("5") => ("arm", Some("v5")),
                Some("8") => ("arm", Some("v8")),
                Some(_) => return Err("arm".into()),
            }
        }
        "ppc64le" | "powerpc64le" => ("ppc64le", None),
        "ppc64" | "powerpc64" => ("ppc64", None),
        "s390x" => ("s390x", None),
        "riscv64" => ("riscv64", None),
        "mips64le" | "mips64el" => ("mips64le", None),
        "mips64" => ("mips64", None),
        "mipsle" | "mipsel" => ("mipsle", None),
        "mips" => ("mips", None),
        "loong64" | "loongarch64" => ("loong64", None),
        _ => return Err(String::new()),
    };
    if matches!(
        r.0,
        "386" | "ppc64le" | "ppc64" | "s390x" | "riscv64" | "mips64le" | "mips64" | "mipsle" | "mips" | "loong64"
    ) && v.is_some()
    {
        return Err(r.0.into());
    }
    Ok((r.0.into(), r.1.map(String::from)))
}

impl FromStr for Platform {
    type Err = PlatformError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let trimmed = input.trim();
        let parts: Vec<&str> = trimmed.split('/').collect();
        if trimmed.is_empty() || parts.iter().any(|p| p.is_empty()) || parts.len() > 3 {
            return Err(PlatformError::Malformed(input.to_string()));
        }
        // A single part is an architecture on linux (`arm64`), as containerd reads it.
        let (os, arch, variant) = match parts.as_slice() {
            [a] => ("linux".to_string(), *a, None),
            [o, a] => (normalize_os(o), *a, None),
            [o, a, v] => (normalize_os(o), *a, Some(*v)),
            _ => unreachable!("length checked above"),
        };
        if !KNOWN_OS.contains(&os.as_str()) {
            return Err(PlatformError::UnknownOs { input: input.to_string(), os });
        }
        match normalize_arch(arch, variant) {
            Ok((architecture, variant)) => Ok(Platform { os, architecture, variant }),
            Err(base) if base.is_empty() => {
                Err(PlatformError::UnknownArch { input: input.to_string(), arch: arch.to_string() })
            }
            Err(base) => Err(PlatformError::UnknownVariant {
                input: input.to_string(),
                arch: base,
                variant: variant.unwrap_or_default().to_string(),
            }),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Parses a comma- or newline-separated list, trimming and dropping empties and duplicates
/// (first occurrence wins, order kept).
pub fn parse_list(input: &str) -> Result<Vec<Platform>, PlatformError> {
    let mut out: Vec<Platform> = Vec::new();
    for item in input.split([',', '\n']).map(str::trim).filter(|s| !s.is_empty()) {
        let p: Platform = item.parse()?;
        if !out.contains(&p) {
            out.push(p);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_like_containerd() {
        let cases = [
            ("linux/amd64", "linux/amd64"),
            ("linux/x86_64", "linux/amd64"),
            ("linux/x86-64", "linux/amd64"),
            ("amd64", "linux/amd64"),
            ("linux/amd64/v1", "linux/amd64"),
            ("linux/amd64/v3", "linux/amd64/v3"),
            ("linux/aarch64", "linux/arm64"),
            ("aarch64", "linux/arm64"),
            ("linux/arm64/v8", "linux/arm64"),
            ("linux/arm64/8", "linux/arm64"),
            ("linux/arm64/v9", "linux/arm64/v9"),
            ("linux/armhf", "linux/arm/v7"),
            ("linux/armel", "linux/arm/v6"),
            ("linux/arm", "linux/arm/v7"),
            ("linux/arm/7", "linux/arm/v7"),
            ("linux/arm/v6", "linux/arm/v6"),
            ("linux/arm/v5", "linux/arm/v5"),
            ("linux/armv7l", "linux/arm/v7"),
            ("linux/armv6l", "linux/arm/v6"),
            ("linux/i386", "linux/386"),
            ("linux/i686", "linux/386"),
            ("linux/386", "linux/386"),
            ("LINUX/ARM64", "linux/arm64"),
            (" linux/riscv64 ", "linux/riscv64"),
            ("linux/ppc64le", "linux/ppc64le"),
            ("linux/powerpc64le", "linux/ppc64le"),
            ("linux/s390x", "linux/s390x"),
            ("linux/mips64el", "linux/mips64le"),
            ("linux/loongarch64", "linux/loong64"),
            ("macos/arm64", "darwin/arm64"),
            ("windows/amd64", "windows/amd64"),
        ];
        for (input, want) in cases {
            let got: Platform = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(got.to_string(), want, "input {input}");
        }
    }

    #[test]
    fn rejects_unknown_with_the_list() {
        let err = "linux/sparc".parse::<Platform>().unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("`sparc`"), "{msg}");
        assert!(msg.contains("amd64, arm64, arm"), "{msg}");
        let err = "plan9/amd64".parse::<Platform>().unwrap_err().to_string();
        assert!(err.contains("unknown operating system `plan9`") && err.contains("linux"), "{err}");
        for bad in [
            "",
            "/",
            "linux/",
            "linux//v7",
            "linux/arm/v7/x",
            "linux/arm/v9",
            "linux/s390x/v2",
            "linux/amd64/v7",
            "linux/armhf/v6",
        ] {
            assert!(bad.parse::<Platform>().is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn list_splits_trims_and_dedupes() {
        let got = parse_list("linux/amd64, linux/aarch64\n\nlinux/arm64,linux/arm/v7,").unwrap();
        let got: Vec<String> = got.iter().map(|p| p.to_string()).collect();
        assert_eq!(got, ["linux/amd64", "linux/arm64", "linux/arm/v7"]);
    }

    #[test]
    fn slug_is_file_safe() {
        assert_eq!("linux/arm/v7".parse::<Platform>().unwrap().slug(), "linux-arm-v7");
    }
}
