//! layout: where an OCI image layout output is made and how it is put in place, so that the
//! output path only ever holds a whole layout (the old one or the new one) or nothing, even
//! when archway is killed at any moment (`kill -9`, a cancelled CI job).
//!
//! Everything is written beside the output, in `PARENT/.NAME.archway-PID` (on the same file
//! system, so the finished layout moves into place by `rename`): the platforms' staging
//! layouts, then the new layout itself. An absent output is created by renaming the new layout
//! onto it; an existing one is swapped with it in one step (`renameat2(RENAME_EXCHANGE)`), and
//! the old one, now beside, is removed. A run that was killed leaves its directory beside the
//! output; the next run removes it (`crate::scratch`).

use std::path::{Path, PathBuf};

/// The prefix of every directory archway makes beside the output `out`.
fn prefix(out: &Path) -> String {
    let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "archway-out".into());
    format!(".{name}.archway-")
}

/// The output directory itself: a symbolic link is followed, so the layout replaces what it
/// points to rather than the link.
pub fn resolve(out: &Path) -> PathBuf {
    match std::fs::symlink_metadata(out) {
        Ok(m) if m.file_type().is_symlink() => std::fs::canonicalize(out).unwrap_or_else(|_| out.to_path_buf()),
        _ => out.to_path_buf(),
    }
}

/// The directory that holds this process's work for the output `out`, beside it.
pub fn beside(out: &Path) -> PathBuf {
    let out = resolve(out);
    parent(&out).join(format!("{}{}", prefix(&out), std::process::id()))
}

fn parent(out: &Path) -> PathBuf {
    match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Removes what killed runs left beside `out` ([`crate::scratch::remove_abandoned`]); the work
/// of a running process (another build writing the same output) is left alone.
pub fn clean_stale(out: &Path) {
    let out = resolve(out);
    crate::scratch::remove_abandoned(&parent(&out), &prefix(&out));
}

/// Puts the whole layout `new` at `out` in one step: renamed onto it when `out` does not
/// exist, else swapped with it, and the old layout (then at `new`) removed.
pub fn put_in_place(new: &Path, out: &Path) -> std::io::Result<()> {
    let out = resolve(out);
    if std::fs::symlink_metadata(&out).is_err() {
        return std::fs::rename(new, &out);
    }
    match exchange(new, &out) {
        Ok(()) => {}
        // No atomic swap here (another OS, a file system without it): move the old layout
        // aside first. A kill between the two renames leaves no output, and the old layout
        // beside it, which the next run removes.
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) => {
            let old = new.with_extension("old");
            std::fs::rename(&out, &old)?;
            std::fs::rename(new, &out)?;
            let _ = std::fs::remove_dir_all(&old);
            return Ok(());
        }
        Err(e) => return Err(e),
    }
    let _ = std::fs::remove_dir_all(new);
    Ok(())
}

/// Swaps two paths atomically: `renameat2(RENAME_EXCHANGE)`.
#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt as _;
    let a = std::ffi::CString::new(a.as_os_str().as_bytes())?;
    let b = std::ffi::CString::new(b.as_os_str().as_bytes())?;
    // SAFETY: both are NUL-terminated paths that live across the call; the syscall reads them only.
    let r = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if r == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

#[cfg(not(target_os = "linux"))]
fn exchange(_: &Path, _: &Path) -> std::io::Result<()> {
    Err(std::io::Error::from_raw_os_error(libc::ENOSYS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beside_the_output_in_its_parent() {
        let me = std::process::id();
        assert_eq!(beside(Path::new("archway-out")), PathBuf::from(format!("./.archway-out.archway-{me}")));
        assert_eq!(beside(Path::new("/w/out/")), PathBuf::from(format!("/w/.out.archway-{me}")));
    }

    #[test]
    fn put_in_place_creates_or_swaps_and_removes_the_old() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        let new = |content: &str| {
            let n = beside(&out).join("layout");
            std::fs::create_dir_all(&n).unwrap();
            std::fs::write(n.join("index.json"), content).unwrap();
            n
        };
        put_in_place(&new("1"), &out).unwrap();
        assert_eq!(std::fs::read_to_string(out.join("index.json")).unwrap(), "1");
        std::fs::write(out.join("old-blob"), "x").unwrap();
        put_in_place(&new("2"), &out).unwrap();
        assert_eq!(std::fs::read_to_string(out.join("index.json")).unwrap(), "2");
        assert!(!out.join("old-blob").exists(), "the old layout is replaced, not merged into");
        assert!(!beside(&out).join("layout").exists(), "and removed");
    }

    #[test]
    fn what_killed_runs_left_beside_the_output_is_removed() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        let dead = d.path().join(".out.archway-4999999");
        drop(crate::scratch::Owned::create(dead.clone()).unwrap());
        let mine = crate::scratch::Owned::create(beside(&out)).unwrap();
        let other = d.path().join(".other.archway-4999999");
        drop(crate::scratch::Owned::create(other.clone()).unwrap());
        clean_stale(&out);
        assert!(!dead.exists(), "a killed run's directory is removed");
        assert!(mine.path().exists() && other.exists(), "this run's and another output's are kept");
    }
}
