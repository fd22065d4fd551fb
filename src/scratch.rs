//! scratch: directories of one run's work that outlive the run only when it is killed, and
//! that the next run removes.
//!
//! A run can be killed at any moment (`kill -9`, a cancelled CI job, the OOM killer); then no
//! destructor removes its staging layouts, spooled blobs or temporary files. So each such
//! directory is [`Owned`]: the run holds an exclusive lock on a file inside for as long as it
//! lives, which the kernel releases however the process ends. A later run removes the
//! directories whose lock it can take ([`remove_abandoned`]), never one a running process
//! still holds — also one in another container that shares the directory. The lock goes last
//! when a directory is removed ([`remove`]), so a run killed while removing one leaves it
//! recognisable.
//!
//! Every temporary file and directory of a run is made inside one owned directory in the
//! system's temporary directory ([`temp_root`]), removed at the end of the run.

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};

const LOCK: &str = ".archway-lock";

/// A directory this process works in, locked for as long as the value lives.
#[derive(Debug)]
pub struct Owned {
    dir: PathBuf,
    _lock: File,
}

impl Owned {
    /// Creates `dir` (and its parents) and locks it. Fails when another living process holds
    /// it.
    pub fn create(dir: PathBuf) -> std::io::Result<Owned> {
        std::fs::create_dir_all(&dir)?;
        let busy = || {
            std::io::Error::new(
                std::io::ErrorKind::ResourceBusy,
                format!("`{}` is in use by another running archway", dir.display()),
            )
        };
        if let Ok(held) = File::open(dir.join(LOCK))
            && matches!(held.try_lock(), Err(TryLockError::WouldBlock))
        {
            return Err(busy());
        }
        // Locked under another name, then renamed: whoever opens the lock file finds it held
        // (a lock file not yet locked would look abandoned to another run's cleaning).
        let making = dir.join(format!("{LOCK}.{}", std::process::id()));
        let lock = File::create(&making)?;
        match lock.try_lock() {
            Ok(()) => {
                std::fs::rename(&making, dir.join(LOCK))?;
                Ok(Owned { dir, _lock: lock })
            }
            Err(TryLockError::WouldBlock) => Err(busy()),
            Err(TryLockError::Error(e)) => Err(e),
        }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }
}

/// Removes the directories in `parent` whose names start with `prefix` and whose owner is
/// gone: their lock can be taken, or they have none (left by a run killed as it made or removed
/// one) and are older than a minute. Returns how many were removed.
pub fn remove_abandoned(parent: &Path, prefix: &str) -> usize {
    let Ok(entries) = std::fs::read_dir(parent) else { return 0 };
    let mut removed = 0;
    for e in entries.flatten() {
        if !e.file_name().to_string_lossy().starts_with(prefix) || !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        // Held while removing, so that no other run removes it at the same time.
        let lock = File::open(e.path().join(LOCK));
        let abandoned = match &lock {
            Ok(lock) => lock.try_lock().is_ok(),
            // Made a moment ago, its lock not yet there: not abandoned.
            Err(_) => {
                e.metadata().and_then(|m| m.modified()).is_ok_and(|t| t.elapsed().unwrap_or_default() > ABANDONED)
            }
        };
        if abandoned && remove(&e.path()).is_ok() {
            tracing::debug!(dir = %e.path().display(), "removed what a killed run left");
            removed += 1;
        }
    }
    removed
}

/// How old a directory without a lock must be to be taken for abandoned.
const ABANDONED: std::time::Duration = std::time::Duration::from_secs(60);

/// Removes an owned directory, its lock last: a run killed while removing it leaves one the
/// next run can still tell abandoned.
pub fn remove(dir: &Path) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if e.file_name() == LOCK {
            continue;
        }
        if e.file_type()?.is_dir() {
            std::fs::remove_dir_all(e.path())?;
        } else {
            std::fs::remove_file(e.path())?;
        }
    }
    std::fs::remove_dir_all(dir)
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
    fn only_directories_of_gone_owners_are_removed() {
        let d = tempfile::tempdir().unwrap();
        let held = Owned::create(d.path().join("x-held")).unwrap();
        drop(Owned::create(d.path().join("x-gone")).unwrap());
        std::fs::create_dir(d.path().join("x-just-made")).unwrap();
        drop(Owned::create(d.path().join("y-gone")).unwrap());
        assert_eq!(remove_abandoned(d.path(), "x-"), 1);
        assert!(held.path().exists(), "a living owner's directory stays");
        assert!(!d.path().join("x-gone").exists());
        assert!(d.path().join("x-just-made").exists(), "a directory without a lock yet is being made");
        assert!(d.path().join("y-gone").exists(), "another prefix is left alone");
        let e = Owned::create(d.path().join("x-held")).unwrap_err();
        assert!(e.to_string().contains("in use by another running archway"), "{e}");
    }
}
