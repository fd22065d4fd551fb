//! Platform: one `os/arch[/variant]` value, parsed and normalised as containerd does, and the
//! one table of the architectures archway knows ([`ARCHES`]).
//!
//! Owns the spelling rules (`aarch64` → `arm64`, `armhf` → `arm/v7`, …) and, per architecture,
//! every name it goes by elsewhere: its ELF identity (what binfmt_misc matches), QEMU's name,
//! `uname -m`'s and Rust's. Other modules look architectures up here instead of keeping their
//! own lists. Pure: no I/O.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Operating systems archway accepts in a platform.
pub const KNOWN_OS: &[&str] = &["linux", "windows", "freebsd", "darwin"];

/// `e_type` of an executable.
pub const ET_EXEC: u16 = 2;
/// `e_type` of a shared object, which is what a PIE is.
pub const ET_DYN: u16 = 3;

/// `e_ident[EI_CLASS]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElfClass {
    Elf32 = 1,
    Elf64 = 2,
}

/// `e_ident[EI_DATA]`: the byte order of everything after `e_ident`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endian {
    Little = 1,
    Big = 2,
}

/// How an architecture's ELF executables identify it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elf {
    pub class: ElfClass,
    pub endian: Endian,
    /// `e_machine`.
    pub machine: u16,
}

impl Elf {
    /// A synthetic ELF file header (64 bytes; a 32-bit header is 52, the rest zero). Beyond
    /// `e_type` and `e_machine` only `e_version` is set: `e_flags` stays 0, which is what qemu's
    /// mips rules look at (bit 5, n32 ABI, clear for o32 and 64-bit binaries).
    pub fn header(&self, e_type: u16) -> [u8; 64] {
        let little = self.endian == Endian::Little;
        let put16 = |v: u16| if little { v.to_le_bytes() } else { v.to_be_bytes() };
        let mut h = [0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = self.class as u8;
        h[5] = self.endian as u8;
        h[6] = 1; // EI_VERSION
        h[16..18].copy_from_slice(&put16(e_type));
        h[18..20].copy_from_slice(&put16(self.machine));
        h[20..24].copy_from_slice(&if little { 1u32.to_le_bytes() } else { 1u32.to_be_bytes() });
        h
    }
}

/// qemu-binfmt-conf.sh's masks over the first 20 bytes of an ELF header (`e_ident`, `e_type`,
/// `e_machine`): `EI_OSABI` is ignored and so is the low bit of `e_type`, so that one handler
/// runs both executables and PIEs.
const QEMU_MASK_LE: [u8; 20] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, 0xff, 0xff,
    0xff,
];
const QEMU_MASK_BE: [u8; 20] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfc, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, 0xff,
    0xff,
];
/// ppc64le's also ignores `e_machine`'s high byte.
const QEMU_MASK_PPC64LE: [u8; 20] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfc, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, 0xff, 0xff,
    0x00,
];

/// One architecture archway knows, under each name it goes by.
#[derive(Debug)]
pub struct Arch {
    /// The normalised (OCI, Go `GOARCH`) name: `arm64`.
    pub name: &'static str,
    /// Other spellings read as this architecture: containerd's, Debian's and every name
    /// `uname -m` prints for it. The `arm` ones that imply a variant (`armv6l`, `armhf`) are
    /// resolved by the parser. (`uname -m` says `mips64` and `mips` for either byte order; they
    /// read as big-endian, as containerd reads them.)
    pub aliases: &'static [&'static str],
    /// How its ELF executables identify it.
    pub elf: Elf,
    /// The variants one ELF header serves, so that one binfmt handler runs them all (`arm`'s
    /// v7 and v6); empty for an architecture without variants.
    pub elf_variants: &'static [&'static str],
    /// QEMU's name: the handler `qemu-aarch64`, the binary `qemu-aarch64-static`.
    pub qemu: &'static str,
    /// The mask archway registers a QEMU handler with, qemu-binfmt-conf.sh's; `None` where
    /// archway registers none itself.
    pub qemu_mask: Option<[u8; 20]>,
    /// Rust's `std::env::consts::ARCH` for it (`powerpc64` and `mips*` also need the byte order).
    pub rust: &'static str,
}

const fn elf(class: ElfClass, endian: Endian, machine: u16) -> Elf {
    Elf { class, endian, machine }
}

use ElfClass::{Elf32, Elf64};
use Endian::{Big, Little};

/// Every architecture archway accepts, most used first (error messages list them in this order).
#[rustfmt::skip]
pub static ARCHES: &[Arch] = &[
    Arch { name: "amd64", aliases: &["x86_64", "x86-64"], elf: elf(Elf64, Little, 62), elf_variants: &[], qemu: "x86_64", qemu_mask: Some(QEMU_MASK_LE), rust: "x86_64" },
    Arch { name: "arm64", aliases: &["aarch64"], elf: elf(Elf64, Little, 183), elf_variants: &[], qemu: "aarch64", qemu_mask: Some(QEMU_MASK_LE), rust: "aarch64" },
    Arch {
        name: "arm",
        aliases: &["armhf", "armel", "armv7l", "armv7", "armv6l", "armv6", "armv5l", "armv5", "armv8l"],
        elf: elf(Elf32, Little, 40), elf_variants: &["v7", "v6"], qemu: "arm", qemu_mask: Some(QEMU_MASK_LE), rust: "arm",
    },
    Arch { name: "386", aliases: &["i386", "i686", "x86"], elf: elf(Elf32, Little, 3), elf_variants: &[], qemu: "i386", qemu_mask: None, rust: "x86" },
    Arch { name: "ppc64le", aliases: &["powerpc64le"], elf: elf(Elf64, Little, 21), elf_variants: &[], qemu: "ppc64le", qemu_mask: Some(QEMU_MASK_PPC64LE), rust: "powerpc64" },
    Arch { name: "s390x", aliases: &[], elf: elf(Elf64, Big, 22), elf_variants: &[], qemu: "s390x", qemu_mask: Some(QEMU_MASK_BE), rust: "s390x" },
    Arch { name: "riscv64", aliases: &[], elf: elf(Elf64, Little, 243), elf_variants: &[], qemu: "riscv64", qemu_mask: Some(QEMU_MASK_LE), rust: "riscv64" },
    Arch { name: "mips64le", aliases: &["mips64el"], elf: elf(Elf64, Little, 8), elf_variants: &[], qemu: "mips64el", qemu_mask: Some(QEMU_MASK_LE), rust: "mips64" },
    Arch { name: "loong64", aliases: &["loongarch64"], elf: elf(Elf64, Little, 258), elf_variants: &[], qemu: "loongarch64", qemu_mask: Some(QEMU_MASK_LE), rust: "loongarch64" },
    Arch { name: "ppc64", aliases: &["powerpc64"], elf: elf(Elf64, Big, 21), elf_variants: &[], qemu: "ppc64", qemu_mask: None, rust: "powerpc64" },
    Arch { name: "mips64", aliases: &[], elf: elf(Elf64, Big, 8), elf_variants: &[], qemu: "mips64", qemu_mask: None, rust: "mips64" },
    Arch { name: "mipsle", aliases: &["mipsel"], elf: elf(Elf32, Little, 8), elf_variants: &[], qemu: "mipsel", qemu_mask: None, rust: "mips" },
    Arch { name: "mips", aliases: &[], elf: elf(Elf32, Big, 8), elf_variants: &[], qemu: "mips", qemu_mask: None, rust: "mips" },
];

impl Arch {
    /// The architecture a spelling names, normalised or not (lower case expected).
    pub fn named(spelling: &str) -> Option<&'static Arch> {
        ARCHES.iter().find(|a| a.name == spelling || a.aliases.contains(&spelling))
    }

    /// The architecture of a (normalised) platform.
    pub fn of(p: &Platform) -> Option<&'static Arch> {
        ARCHES.iter().find(|a| a.name == p.architecture)
    }

    /// The platforms its ELF executables run on: `linux/arm/v7` and `linux/arm/v6` for `arm`.
    pub fn elf_platforms(&self) -> Vec<Platform> {
        let plain = |variant: Option<&str>| Platform {
            os: "linux".into(),
            architecture: self.name.into(),
            variant: variant.map(String::from),
        };
        if self.elf_variants.is_empty() {
            vec![plain(None)]
        } else {
            self.elf_variants.iter().map(|v| plain(Some(v))).collect()
        }
    }
}

/// The names of [`ARCHES`], for messages: `amd64, arm64, arm, …`.
fn known_arches() -> String {
    ARCHES.iter().map(|a| a.name).collect::<Vec<_>>().join(", ")
}

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
    #[error("platform `{input}` has unknown architecture `{arch}`; known: {}", known_arches())]
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
        let endian = if cfg!(target_endian = "little") { Endian::Little } else { Endian::Big };
        let arch = ARCHES
            .iter()
            .find(|a| a.rust == std::env::consts::ARCH && a.elf.endian == endian)
            .map_or(std::env::consts::ARCH, |a| a.name);
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

/// Returns (arch, variant) normalised; or, when rejected, the architecture whose variant is
/// wrong (empty when the architecture is unknown).
fn normalize_arch(arch: &str, variant: Option<&str>) -> Result<(String, Option<String>), String> {
    let arch = arch.to_ascii_lowercase();
    let variant = variant.map(|v| v.to_ascii_lowercase());
    let v = variant.as_deref();
    let known = Arch::named(&arch).ok_or_else(String::new)?;
    let r = match known.name {
        "amd64" => match v {
            None | Some("v1") => ("amd64", None),
            Some(v @ ("v2" | "v3" | "v4")) => ("amd64", Some(v)),
            Some(_) => return Err("amd64".into()),
        },
        "arm64" => match v {
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
        "arm" => match (arch.as_str(), v) {
            // Debian's names for ABIs: no variant may be added.
            ("armhf", None) => ("arm", Some("v7")),
            ("armel", None) => ("arm", Some("v6")),
            ("armhf" | "armel", Some(_)) => return Err(arch.clone()),
            _ => {
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
        },
        // Every other architecture has no variants.
        other if v.is_some() => return Err(other.into()),
        other => (other, None),
    };
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
    fn every_arch_name_and_alias_reads_back_as_that_arch() {
        let mut seen = std::collections::HashSet::new();
        for a in ARCHES {
            for spelling in std::iter::once(&a.name).chain(a.aliases) {
                assert!(seen.insert(*spelling), "`{spelling}` names two architectures");
                let p: Platform = format!("linux/{spelling}").parse().unwrap_or_else(|e| panic!("{spelling}: {e}"));
                assert_eq!(p.architecture, a.name, "{spelling}");
                assert_eq!(Arch::of(&p).map(|x| x.name), Some(a.name), "{spelling}");
            }
            for p in a.elf_platforms() {
                assert_eq!(p.to_string().parse::<Platform>().unwrap(), p, "already normalised");
            }
        }
        assert_eq!(
            known_arches(),
            "amd64, arm64, arm, 386, ppc64le, s390x, riscv64, mips64le, loong64, ppc64, mips64, mipsle, mips"
        );
    }

    #[test]
    fn elf_headers_put_fields_in_their_byte_order() {
        let arm64 = Arch::named("aarch64").unwrap().elf.header(ET_EXEC);
        assert_eq!(arm64[..20], *b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\x00\xb7\x00");
        let s390x = Arch::named("s390x").unwrap().elf.header(ET_DYN);
        assert_eq!(s390x[16..24], *b"\x00\x03\x00\x16\0\0\0\x01");
    }

    #[test]
    fn host_is_a_known_arch() {
        assert!(Arch::of(&Platform::host()).is_some(), "{}", Platform::host());
    }

    #[test]
    fn slug_is_file_safe() {
        assert_eq!("linux/arm/v7".parse::<Platform>().unwrap().slug(), "linux-arm-v7");
    }
}
