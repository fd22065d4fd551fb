//! binfmt: reads the kernel's binfmt_misc entries (`/proc/sys/fs/binfmt_misc/<name>`) and works
//! out which platforms each one runs, by matching its magic and mask against the ELF header of
//! every architecture archway knows ([`crate::platform::ARCHES`]). Also parses binfmt.d rules
//! (`:name:M::magic:mask:interp:F`), and names where binfmt_misc lives ([`BINFMT_DIR`]).
//!
//! Only reads: registering or removing handlers is not this module's job. The parsers and the
//! matching are pure; [`read_all`] is the thin I/O wrapper.

use std::path::Path;

use super::BinfmtEntry;
use crate::platform::{ARCHES, ET_DYN, ET_EXEC, Platform};

/// Where binfmt_misc is mounted.
pub const BINFMT_DIR: &str = "/proc/sys/fs/binfmt_misc";

/// Files in [`BINFMT_DIR`] that are not entries.
const CONTROL_FILES: &[&str] = &["register", "status"];

/// Reads every entry in `dir` (normally [`BINFMT_DIR`]), sorted by name. Empty when the
/// directory does not exist (binfmt_misc not mounted); entries that cannot be read or parsed
/// are skipped.
pub fn read_all(dir: &Path) -> Vec<BinfmtEntry> {
    let Ok(listing) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in listing.flatten() {
        let name = item.file_name().to_string_lossy().into_owned();
        if CONTROL_FILES.contains(&name.as_str()) {
            continue;
        }
        let parsed =
            std::fs::read_to_string(item.path()).map_err(|e| e.to_string()).and_then(|text| parse_entry(&name, &text));
        match parsed {
            Ok(mut e) => {
                // Without F the kernel opens the interpreter at exec time, in the exec'ing
                // process's mount namespace; this host's path is the best guess we have.
                e.usable_in_containers |= !e.interpreter.is_empty() && Path::new(&e.interpreter).exists();
                out.push(e);
            }
            Err(why) => tracing::debug!("skipping binfmt_misc entry {name}: {why}"),
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Parses the text of one entry file, as the kernel prints it:
///
/// ```text
/// enabled
/// interpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P
/// flags: POF
/// offset 0
/// magic 7f454c460201010000000000000000000200b700
/// mask ffffffffffffff00fffffffffffffffffeffffff
/// ```
///
/// Extension entries print `extension .exe` instead of offset, magic and mask; their magic
/// and mask stay empty and they run no platform. A magic entry without a mask gets an all-`ff`
/// mask (the kernel then compares every byte). `usable_in_containers` is set from the F flag
/// only: whether the interpreter exists is for the caller to check.
pub fn parse_entry(name: &str, text: &str) -> Result<BinfmtEntry, String> {
    let mut enabled = None;
    let mut interpreter = String::new();
    let mut flags = String::new();
    let mut offset = 0u32;
    let mut magic = String::new();
    let mut mask = String::new();
    for line in text.lines() {
        let (key, value) = line.split_once(' ').unwrap_or((line, ""));
        match key {
            "enabled" => enabled = Some(true),
            "disabled" => enabled = Some(false),
            "interpreter" => interpreter = value.to_string(),
            "flags:" => flags = value.trim().to_string(),
            "offset" => offset = value.trim().parse().map_err(|_| format!("bad offset `{value}`"))?,
            "magic" => magic = value.trim().to_ascii_lowercase(),
            "mask" => mask = value.trim().to_ascii_lowercase(),
            // `extension .exe`, and whatever a newer kernel may add
            _ => {}
        }
    }
    let enabled = enabled.ok_or("no `enabled`/`disabled` line")?;
    let magic_bytes = hex::decode(&magic).map_err(|e| format!("bad magic `{magic}`: {e}"))?;
    let mask_bytes = if mask.is_empty() {
        vec![0xff; magic_bytes.len()]
    } else {
        hex::decode(&mask).map_err(|e| format!("bad mask `{mask}`: {e}"))?
    };
    if mask_bytes.len() != magic_bytes.len() {
        return Err(format!("mask `{mask}` and magic `{magic}` differ in length"));
    }
    Ok(BinfmtEntry {
        name: name.to_string(),
        enabled,
        platforms: platforms_for(offset, &magic_bytes, &mask_bytes),
        usable_in_containers: flags.contains('F'),
        interpreter,
        flags,
        offset,
        magic,
        mask: hex::encode(&mask_bytes),
    })
}

/// Parses one binfmt.d rule (`/usr/lib/binfmt.d/qemu-aarch64.conf`, or a line written to
/// `register`): `:name:type:offset:magic:mask:interpreter:flags`, the first character being the
/// separator and magic and mask written with `\xHH` escapes or as plain characters. Returns the
/// entry the kernel would show once the rule is registered (enabled; flags as given, which the
/// kernel may print in another order).
pub fn parse_rule(line: &str) -> Result<BinfmtEntry, String> {
    let line = line.trim_end_matches(['\n', '\r']);
    let sep = line.chars().next().ok_or("empty rule")?;
    let fields: Vec<&str> = line[sep.len_utf8()..].split(sep).collect();
    let [name, kind, offset, magic, mask, interpreter, rest @ ..] = fields.as_slice() else {
        return Err(format!(
            "`{line}` has {} fields; expected :name:type:offset:magic:mask:interpreter:flags",
            fields.len()
        ));
    };
    let flags = rest.first().copied().unwrap_or("").to_string();
    let base = BinfmtEntry {
        name: name.to_string(),
        enabled: true,
        interpreter: interpreter.to_string(),
        usable_in_containers: flags.contains('F'),
        flags,
        offset: 0,
        magic: String::new(),
        mask: String::new(),
        platforms: Vec::new(),
    };
    match *kind {
        "E" => Ok(base),
        "M" => {
            let offset =
                if offset.is_empty() { 0 } else { offset.parse().map_err(|_| format!("bad offset `{offset}`"))? };
            let magic = unescape(magic)?;
            let mask = if mask.is_empty() { vec![0xff; magic.len()] } else { unescape(mask)? };
            if mask.len() != magic.len() {
                return Err(format!("rule `{name}`: mask and magic differ in length"));
            }
            Ok(BinfmtEntry {
                offset,
                platforms: platforms_for(offset, &magic, &mask),
                magic: hex::encode(&magic),
                mask: hex::encode(&mask),
                ..base
            })
        }
        other => Err(format!("rule `{name}` has type `{other}`; expected `M` or `E`")),
    }
}

/// Decodes binfmt.d escapes: `\xHH` is a byte, `\\` a backslash, anything else itself.
fn unescape(s: &str) -> Result<Vec<u8>, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match (b[i], b.get(i + 1)) {
            (b'\\', Some(b'x')) => {
                let hex = s.get(i + 2..i + 4).ok_or_else(|| format!("`{s}` ends inside an escape"))?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| format!("bad escape `\\x{hex}` in `{s}`"))?);
                i += 4;
            }
            (b'\\', Some(b'\\')) => {
                out.push(b'\\');
                i += 2;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(out)
}

/// The platforms whose ELF executables a magic/mask at `offset` matches. Real qemu masks
/// ignore the low bit of `e_type`, so a match for EXEC or for DYN (PIE) counts.
pub fn platforms_for(offset: u32, magic: &[u8], mask: &[u8]) -> Vec<Platform> {
    let mut out = Vec::new();
    if magic.is_empty() {
        return out; // an extension entry
    }
    for arch in ARCHES {
        if [ET_EXEC, ET_DYN].iter().any(|&t| matches(&arch.elf.header(t), offset, magic, mask)) {
            out.extend(arch.elf_platforms());
        }
    }
    out
}

/// The kernel's test (`check_file` in fs/binfmt_misc.c): every masked bit of the file's bytes
/// at `offset` equals the magic's.
fn matches(file: &[u8], offset: u32, magic: &[u8], mask: &[u8]) -> bool {
    let start = offset as usize;
    let Some(bytes) = file.get(start..start + magic.len()) else {
        return false;
    };
    bytes.iter().zip(magic).zip(mask).all(|((f, m), k)| (f ^ m) & k == 0)
}

/// The enabled entry that runs `p`, if any. `amd64` and `arm64` variants (`linux/amd64/v3`,
/// `linux/arm64/v9`) run on the emulator of their architecture, so an entry for the plain
/// platform serves them too.
pub fn handler_for<'a>(entries: &'a [BinfmtEntry], p: &Platform) -> Option<&'a BinfmtEntry> {
    entries.iter().filter(|e| e.enabled).find(|e| e.platforms.iter().any(|ep| runs(ep, p)))
}

fn runs(entry: &Platform, wanted: &Platform) -> bool {
    if entry == wanted {
        return true;
    }
    entry.os == wanted.os
        && entry.architecture == wanted.architecture
        && entry.variant.is_none()
        && matches!(wanted.architecture.as_str(), "amd64" | "arm64")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        s.parse().unwrap()
    }

    fn names(ps: &[Platform]) -> Vec<String> {
        ps.iter().map(|p| p.to_string()).collect()
    }

    /// Captured from this project's lab machine (Debian 12, qemu-user-static 7.2).
    const AARCH64: &str = include_str!("testdata/binfmt_misc/qemu-aarch64");
    const QEMU_CONFS: &str = include_str!("testdata/qemu-binfmt.d.conf");

    /// What each qemu rule Debian ships runs, as archway names platforms. The rules for
    /// architectures archway does not build for map to nothing, and so do n32 mips (same ELF
    /// class and machine as o32, told apart by an `e_flags` bit Docker platforms do not carry).
    const EXPECTED: &[(&str, &[&str])] = &[
        ("qemu-aarch64", &["linux/arm64"]),
        ("qemu-alpha", &[]),
        ("qemu-arm", &["linux/arm/v7", "linux/arm/v6"]),
        ("qemu-armeb", &[]),
        ("qemu-cris", &[]),
        ("qemu-hexagon", &[]),
        ("qemu-hppa", &[]),
        ("qemu-loongarch64", &["linux/loong64"]),
        ("qemu-m68k", &[]),
        ("qemu-microblaze", &[]),
        ("qemu-mips", &["linux/mips"]),
        ("qemu-mips64", &["linux/mips64"]),
        ("qemu-mips64el", &["linux/mips64le"]),
        ("qemu-mipsel", &["linux/mipsle"]),
        ("qemu-mipsn32", &[]),
        ("qemu-mipsn32el", &[]),
        ("qemu-ppc", &[]),
        ("qemu-ppc64", &["linux/ppc64"]),
        ("qemu-ppc64le", &["linux/ppc64le"]),
        ("qemu-riscv32", &[]),
        ("qemu-riscv64", &["linux/riscv64"]),
        ("qemu-s390x", &["linux/s390x"]),
        ("qemu-sh4", &[]),
        ("qemu-sh4eb", &[]),
        ("qemu-sparc", &[]),
        ("qemu-sparc32plus", &[]),
        ("qemu-sparc64", &[]),
        ("qemu-x86_64", &["linux/amd64"]),
        ("qemu-i386", &["linux/386"]),
        ("qemu-xtensa", &[]),
        ("qemu-xtensaeb", &[]),
    ];

    fn expected(name: &str) -> &'static [&'static str] {
        EXPECTED.iter().find(|(n, _)| *n == name).unwrap_or_else(|| panic!("no expectation for rule `{name}`")).1
    }

    #[test]
    fn parses_a_real_qemu_entry() {
        let e = parse_entry("qemu-aarch64", AARCH64).unwrap();
        assert_eq!(e.name, "qemu-aarch64");
        assert!(e.enabled);
        assert_eq!(e.interpreter, "/usr/libexec/qemu-binfmt/aarch64-binfmt-P");
        assert_eq!(e.flags, "POF");
        assert!(e.has_flag('F') && e.has_flag('P') && !e.has_flag('C'));
        assert_eq!(e.offset, 0);
        assert_eq!(e.magic, "7f454c460201010000000000000000000200b700");
        assert_eq!(e.mask, "ffffffffffffff00fffffffffffffffffeffffff");
        assert_eq!(names(&e.platforms), ["linux/arm64"]);
        assert!(e.usable_in_containers);
    }

    #[test]
    fn parses_extension_disabled_and_maskless_entries() {
        let ext = "enabled\ninterpreter /usr/bin/wine\nflags: \nextension .exe\n";
        let e = parse_entry("wine", ext).unwrap();
        assert!(e.enabled);
        assert_eq!((e.interpreter.as_str(), e.flags.as_str()), ("/usr/bin/wine", ""));
        assert_eq!((e.magic.as_str(), e.mask.as_str(), e.offset), ("", "", 0));
        assert!(e.platforms.is_empty());
        assert!(!e.usable_in_containers);

        let disabled = AARCH64.replacen("enabled", "disabled", 1).replace("flags: POF", "flags: P");
        let e = parse_entry("qemu-aarch64", &disabled).unwrap();
        assert!(!e.enabled);
        assert_eq!(names(&e.platforms), ["linux/arm64"]);
        assert!(!e.usable_in_containers, "no F flag, and the interpreter is checked by read_all only");

        // The kernel prints no mask line when the rule had none: every byte must match, so
        // an exact ELF header's magic still maps, with either e_type written.
        let maskless = "enabled\ninterpreter /x\nflags: F\noffset 0\nmagic 7f454c460201010000000000000000000300b700\n";
        let e = parse_entry("pie-only", maskless).unwrap();
        assert_eq!(e.mask, "ff".repeat(20));
        assert_eq!(names(&e.platforms), ["linux/arm64"]);

        // Offset moves the magic: `ELF` at 1 still matches the header.
        let e = parse_entry("at-1", "enabled\ninterpreter /x\nflags: \noffset 1\nmagic 454c46\n").unwrap();
        assert_eq!(e.offset, 1);
        assert_eq!(e.platforms.len(), ARCHES.iter().map(|a| a.elf_platforms().len()).sum::<usize>());
    }

    #[test]
    fn rejects_broken_entries() {
        assert!(parse_entry("x", "interpreter /x\n").is_err());
        assert!(parse_entry("x", "enabled\noffset 0\nmagic zz\n").is_err());
        assert!(parse_entry("x", "enabled\noffset 0\nmagic 7f45\nmask ff\n").is_err());
        assert!(parse_entry("x", "enabled\noffset -1\nmagic 7f45\n").is_err());
    }

    #[test]
    fn reads_a_directory_of_entries() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/probe/testdata/binfmt_misc");
        let all = read_all(&dir);
        let got: Vec<(String, bool, Vec<String>)> =
            all.iter().map(|e| (e.name.clone(), e.enabled, names(&e.platforms))).collect();
        let want = [
            ("qemu-aarch64", true, vec!["linux/arm64"]),
            ("qemu-arm", true, vec!["linux/arm/v7", "linux/arm/v6"]),
            ("qemu-mips-disabled", false, vec!["linux/mips"]),
            ("qemu-ppc64le", true, vec!["linux/ppc64le"]),
            ("qemu-riscv64", true, vec!["linux/riscv64"]),
            ("qemu-s390x", true, vec!["linux/s390x"]),
            ("wine", true, vec![]),
        ];
        let want: Vec<(String, bool, Vec<String>)> =
            want.into_iter().map(|(n, e, ps)| (n.to_string(), e, ps.into_iter().map(String::from).collect())).collect();
        assert_eq!(got, want);
        // `wine` has no F flag: usable only if its interpreter exists on this machine.
        let wine = all.last().unwrap();
        assert_eq!(wine.usable_in_containers, Path::new("/usr/bin/wine").exists());
        assert!(read_all(Path::new("/nonexistent/binfmt_misc")).is_empty());
    }

    #[test]
    fn handler_lookup_skips_disabled_entries() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/probe/testdata/binfmt_misc");
        let all = read_all(&dir);
        assert_eq!(handler_for(&all, &p("linux/arm64")).map(|e| e.name.as_str()), Some("qemu-aarch64"));
        assert_eq!(handler_for(&all, &p("linux/arm64/v9")).map(|e| e.name.as_str()), Some("qemu-aarch64"));
        assert_eq!(handler_for(&all, &p("linux/arm/v6")).map(|e| e.name.as_str()), Some("qemu-arm"));
        assert_eq!(handler_for(&all, &p("linux/arm/v5")), None);
        assert_eq!(handler_for(&all, &p("linux/mips")), None, "its entry is disabled");
        assert_eq!(handler_for(&all, &p("linux/amd64")), None);
    }

    #[test]
    fn each_shipped_qemu_rule_maps_to_its_platform() {
        let mut seen = 0;
        for line in QEMU_CONFS.lines().filter(|l| !l.trim().is_empty()) {
            let e = parse_rule(line).unwrap_or_else(|why| panic!("{line}: {why}"));
            assert_eq!(names(&e.platforms), expected(&e.name), "{line}");
            assert!(e.usable_in_containers && e.flags == "OPF", "{line}");
            seen += 1;
        }
        assert_eq!(seen, 29);
    }

    /// The same check on the rules installed on the machine running the tests, which may be a
    /// newer qemu than the captured fixture.
    #[test]
    fn each_installed_qemu_rule_maps_to_its_platform() {
        let Ok(dir) = std::fs::read_dir("/usr/lib/binfmt.d") else {
            eprintln!("no /usr/lib/binfmt.d here; the captured rules are checked by another test");
            return;
        };
        let mut checked = Vec::new();
        for f in dir.flatten() {
            let file = f.file_name().to_string_lossy().into_owned();
            if !(file.starts_with("qemu-") && file.ends_with(".conf")) {
                continue;
            }
            let text = std::fs::read_to_string(f.path()).unwrap();
            let line = text.lines().find(|l| !l.trim().is_empty() && !l.starts_with('#')).unwrap();
            let e = parse_rule(line).unwrap_or_else(|why| panic!("{file}: {why}"));
            assert_eq!(format!("{}.conf", e.name), file);
            assert_eq!(names(&e.platforms), expected(&e.name), "{file}: {line}");
            checked.push(e.name);
        }
        for must in ["qemu-aarch64", "qemu-arm", "qemu-riscv64", "qemu-s390x", "qemu-ppc64le"] {
            assert!(checked.iter().any(|n| n == must), "{must}.conf is not installed (qemu-user-static)");
        }
    }

    #[test]
    fn rule_parsing_details() {
        // Plain characters mix with escapes (Debian's hexagon and loongarch64 rules do this).
        let e = parse_rule(r":t:M::\x7fELF\x02\x01\x01:\xff\xff\xff\xff\xff\xff\xff:/bin/x:").unwrap();
        assert_eq!(e.magic, "7f454c46020101");
        assert_eq!(e.flags, "");
        assert!(!e.usable_in_containers);
        assert_eq!(e.platforms.len(), 6, "every 64-bit little-endian arch: {:?}", names(&e.platforms));
        // Another separator, an offset, no mask, no flags field at all.
        let e = parse_rule("|t|M|1|ELF||/bin/x").unwrap();
        assert_eq!((e.offset, e.mask.as_str()), (1, "ffffff"));
        // Extension rules carry no magic.
        let e = parse_rule(":DOSWin:E::exe::/usr/bin/wine:").unwrap();
        assert!(e.magic.is_empty() && e.platforms.is_empty());
        assert!(parse_rule(":t:Q::a::/x:").is_err());
        assert!(parse_rule(":t:M::\\x7:ff:/x:").is_err());
        assert!(parse_rule(":t:M::ab:\\xff:/x:").is_err());
        assert!(parse_rule(":t:M").is_err());
        assert!(parse_rule("").is_err());
    }

    #[test]
    fn every_arch_header_matches_only_itself() {
        // A full-mask magic taken from each synthetic header finds exactly that architecture.
        for arch in ARCHES {
            let h = arch.elf.header(ET_EXEC);
            let got = platforms_for(0, &h[..20], &[0xff; 20]);
            assert_eq!(got, arch.elf_platforms(), "{}", arch.name);
        }
    }
}
