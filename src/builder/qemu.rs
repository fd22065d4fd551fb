//! qemu: registers QEMU user-mode handlers in the kernel's binfmt_misc for exactly the
//! architectures a build needs, with the F flag (the kernel opens the interpreter at
//! registration, so it works inside build containers), from qemu-user-static binaries on this
//! host — or from a privileged container of an image already present. Never pulls an image,
//! never overwrites an existing handler.

use std::path::{Path, PathBuf};

use crate::platform::{Arch, ET_EXEC, Platform};

pub use crate::probe::binfmt::BINFMT_DIR;

/// What a handler for one architecture is registered with: QEMU's name for it, and the ELF magic
/// and mask qemu's `qemu-binfmt-conf.sh` uses (20 bytes: e_ident, e_type, e_machine), from
/// [`crate::platform::ARCHES`].
struct ElfPattern {
    qemu: &'static str,
    magic: [u8; 20],
    mask: [u8; 20],
}

fn pattern(p: &Platform) -> Option<ElfPattern> {
    let arch = Arch::of(p)?;
    let mask = arch.qemu_mask?;
    let header = arch.elf.header(ET_EXEC);
    let magic = header[..20].try_into().expect("an ELF header is longer than 20 bytes");
    Some(ElfPattern { qemu: arch.qemu, magic, mask })
}

#[derive(Debug, thiserror::Error)]
pub enum QemuError {
    #[error("archway has no binfmt pattern for {0}; register a QEMU handler for it before this step")]
    UnknownArch(Platform),
    #[error("QEMU interpreter `{0}` does not exist")]
    NoInterpreter(String),
    #[error("cannot mount binfmt_misc at {dir}: {detail}")]
    Mount { dir: String, detail: String },
    #[error("binfmt_misc already has handlers named `{0}` and `archway-{0}`; archway will not overwrite them")]
    Taken(String),
    #[error("the kernel refused to register `{name}`: {detail}")]
    Register { name: String, detail: String },
    #[error("registering QEMU from a privileged container of `{image}` failed: {detail}")]
    Container { image: String, detail: String },
}

/// The line written to `register`: `:name:M:0:magic:mask:interpreter:F`.
fn register_line(name: &str, pat: &ElfPattern, interpreter: &str) -> String {
    let esc = |b: &[u8]| b.iter().map(|x| format!("\\x{x:02x}")).collect::<String>();
    format!(":{name}:M:0:{}:{}:{interpreter}:F", esc(&pat.magic), esc(&pat.mask))
}

/// The qemu-user-static interpreter for `p` in the usual places, if installed.
pub fn find_interpreter(p: &Platform) -> Option<PathBuf> {
    let pat = pattern(p)?;
    ["/usr/bin", "/usr/local/bin"]
        .iter()
        .map(|d| Path::new(d).join(format!("qemu-{}-static", pat.qemu)))
        .find(|path| path.is_file())
}

fn mount_if_needed(dir: &Path) -> Result<(), QemuError> {
    if dir.join("register").exists() {
        return Ok(());
    }
    let c = |s: &str| std::ffi::CString::new(s).expect("no NUL in static strings");
    let (src, target, fstype) = (c("binfmt_misc"), c(&dir.display().to_string()), c("binfmt_misc"));
    // SAFETY: every pointer is a valid NUL-terminated string that outlives the call; data is null.
    let rc = unsafe { libc::mount(src.as_ptr(), target.as_ptr(), fstype.as_ptr(), 0, std::ptr::null()) };
    if rc != 0 {
        return Err(QemuError::Mount {
            dir: dir.display().to_string(),
            detail: std::io::Error::last_os_error().to_string(),
        });
    }
    Ok(())
}

/// What `register` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registered {
    /// An enabled handler for the platform was there already (seen once binfmt_misc was
    /// mounted: a container does not see the host's handlers until it mounts it).
    Existing(String),
    /// archway registered this one.
    New(String),
}

/// Registers a handler for `p` from `interpreter` in binfmt_misc at `dir`, under `qemu-<arch>`
/// or, when that name is taken (say, by a disabled handler), `archway-qemu-<arch>` — unless an
/// enabled handler already runs `p`, which is then left as it is.
pub fn register(p: &Platform, interpreter: &Path, dir: &Path) -> Result<Registered, QemuError> {
    let pat = pattern(p).ok_or_else(|| QemuError::UnknownArch(p.clone()))?;
    mount_if_needed(dir)?;
    let entries = crate::probe::binfmt::read_all(dir);
    if let Some(h) = crate::probe::binfmt::handler_for(&entries, p) {
        return Ok(Registered::Existing(h.name.clone()));
    }
    if !interpreter.is_file() {
        return Err(QemuError::NoInterpreter(interpreter.display().to_string()));
    }
    let base = format!("qemu-{}", pat.qemu);
    let name = [base.clone(), format!("archway-{base}")]
        .into_iter()
        .find(|n| !dir.join(n).exists())
        .ok_or_else(|| QemuError::Taken(base.clone()))?;
    let line = register_line(&name, &pat, &interpreter.display().to_string());
    std::fs::write(dir.join("register"), line)
        .map_err(|e| QemuError::Register { name: name.clone(), detail: e.to_string() })?;
    Ok(Registered::New(name))
}

/// Registers handlers from a privileged container of `image` (archway's own image), running
/// `archway binfmt-register --platform P` in it; a handler the host has already is left as it
/// is. Creates no image; removes the container. Returns what the helper said.
pub async fn register_in_container(
    docker: &Path,
    image: &str,
    platforms: &[Platform],
) -> Result<Vec<String>, QemuError> {
    let list = platforms.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(",");
    let out = tokio::process::Command::new(docker)
        .args(["run", "--rm", "--privileged", "--pull", "never", "--entrypoint", "archway", image])
        .args(["binfmt-register", "--platform", &list])
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| QemuError::Container { image: image.into(), detail: e.to_string() })?;
    if !out.status.success() {
        return Err(QemuError::Container {
            image: image.into(),
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unescape(s: &str) -> Vec<u8> {
        let mut out = Vec::new();
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'\\' && b.get(i + 1) == Some(&b'x') {
                out.push(u8::from_str_radix(&s[i + 2..i + 4], 16).unwrap());
                i += 4;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        out
    }

    /// Our patterns agree with the ones Debian's qemu-user-static ships, where installed.
    #[test]
    fn patterns_match_debian_binfmt_conf() {
        let mut checked = 0;
        for arch in ["linux/arm64", "linux/arm/v7", "linux/riscv64", "linux/s390x", "linux/ppc64le"] {
            let p: Platform = arch.parse().unwrap();
            let pat = pattern(&p).unwrap();
            let conf = format!("/usr/lib/binfmt.d/qemu-{}.conf", pat.qemu);
            let Ok(text) = std::fs::read_to_string(&conf) else { continue };
            let fields: Vec<&str> = text.trim().split(':').collect();
            // :name:type:offset:magic:mask:interpreter:flags
            let (magic, mask) = (unescape(fields[4]), unescape(fields[5]));
            assert_eq!(magic, pat.magic[..magic.len()], "{conf} magic");
            assert_eq!(mask, pat.mask[..mask.len()], "{conf} mask");
            checked += 1;
        }
        if Path::new("/usr/lib/binfmt.d/qemu-aarch64.conf").exists() {
            assert!(checked >= 5, "checked {checked}");
        }
    }

    #[test]
    fn register_line_format() {
        let p: Platform = "linux/arm64".parse().unwrap();
        let line = register_line("qemu-aarch64", &pattern(&p).unwrap(), "/usr/bin/qemu-aarch64-static");
        assert!(line.starts_with(":qemu-aarch64:M:0:\\x7f\\x45\\x4c\\x46\\x02\\x01\\x01"), "{line}");
        assert!(line.ends_with(":/usr/bin/qemu-aarch64-static:F"), "{line}");
        assert_eq!(line.matches(':').count(), 7);
    }
}
