//! scratch: directories of one run's work that outlive the run only when it is killed, and
//! that the next run removes.
//!
//! A run can be killed at any moment (`kill -9`, a cancelled CI job, the OOM killer); then no
//! destructor removes its staging layouts, spooled blobs or temporary files. So each such
//! directory is [`Owned`]: the run holds an exclusive lock on a file inside for as long as it
//! lives, which the kernel releases however the process ends. A later run removes the
//! directories whose lock it can take ([`remove_abandoned`]), never one a running process
//! still holds — also one in another container that shares the directory.
//!
//! Every temporary file and directory of a run is made inside one owned directory in the
//! system's temporary directory ([`temp_root`]), removed at the end of the run.

use std::fs::{File, TryLockError};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

/// A directory this process works in, locked (`flock` on the directory itself) for as long as
/// the value lives.
#[derive(Debug)]
pub struct Owned {
    dir: PathBuf,
    _lock: File,
}

impl Owned {
    /// Creates `dir` (and its parents) and locks it. Fails when another living process holds
    /// it.
    pub fn create(dir: PathBuf) -> std::io::Result<Owned> {
        let busy = || {
            std::io::Error::new(
                std::io::ErrorKind::ResourceBusy,
                format!("`{}` is in use by another running archway", dir.display()),
            )
        };
        // Another run's cleaning may take a directory just made, before it is locked, for
        // abandoned and remove it: then make it again.
        for _ in 0..5 {
            std::fs::create_dir_all(&dir)?;
            let lock = match File::open(&dir) {
                Ok(l) => l,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            match lock.try_lock() {
                Ok(()) if same(&lock, &dir) => return Ok(Owned { dir, _lock: lock }),
                Ok(()) | Err(TryLockError::WouldBlock) => {}
                Err(TryLockError::Error(e)) => return Err(e),
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Err(busy())
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }
}

/// Whether `file` is (still) the directory at `path`.
fn same(file: &File, path: &Path) -> bool {
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
        _ => false,
    }
}

/// Removes the directories in `parent` whose names start with `prefix` and that nobody holds:
/// their owner is gone (or was killed before it locked one). Each is locked while it is
/// removed, so two runs never remove one at once. Returns how many were removed.
pub fn remove_abandoned(parent: &Path, prefix: &str) -> usize {
    let Ok(entries) = std::fs::read_dir(parent) else { return 0 };
    let mut removed = 0;
    for e in entries.flatten() {
        if !e.file_name().to_string_lossy().starts_with(prefix) || !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let Ok(lock) = File::open(e.path()) else { continue };
        if lock.try_lock().is_ok() && std::fs::remove_dir_all(e.path()).is_ok() {
            tracing::debug!(dir = %e.path().display(), "removed what a killed run left");
            removed += 1;
        }
    }
    removed
}

/// The prefix of [`temp_root`]'s directories.
const TEMP_PREFIX: &str = "archway-run-";

/// Makes this run's temporary directory — every temporary file and directory of the run goes
/// inside it — after removing those that killed runs left. `None` when the system's temporary
/// directory is not writable (then temporary files go there directly, as before).
pub fn temp_root() -> Option<Owned> {
    let system = tempfile::env::temp_dir();
    remove_abandoned(&system, TEMP_PREFIX);
    let dir = tempfile::Builder::new().prefix(TEMP_PREFIX).tempdir_in(&system).ok()?.keep();
    let owned = Owned::create(dir).ok()?;
    tempfile::env::override_temp_dir(owned.path()).ok()?;
    Some(owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_directories_nobody_holds_are_removed() {
        let d = tempfile::tempdir().unwrap();
        let held = Owned::create(d.path().join("x-held")).unwrap();
        drop(Owned::create(d.path().join("x-gone")).unwrap());
        std::fs::create_dir_all(d.path().join("x-killed-before-locking/sub")).unwrap();
        drop(Owned::create(d.path().join("y-gone")).unwrap());
        assert_eq!(remove_abandoned(d.path(), "x-"), 2);
        assert!(held.path().exists(), "a living owner's directory stays");
        assert!(!d.path().join("x-gone").exists() && !d.path().join("x-killed-before-locking").exists());
        assert!(d.path().join("y-gone").exists(), "another prefix is left alone");
        let e = Owned::create(d.path().join("x-held")).unwrap_err();
        assert!(e.to_string().contains("in use by another running archway"), "{e}");
    }
}
