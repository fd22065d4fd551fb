//! The machine-wide state lock: tests that change state every process on this machine shares
//! (binfmt_misc handlers, registered or removed) must not run while tests that depend on that
//! state (QEMU handlers present: emulated builds, `docker buildx inspect` platforms, reading
//! the real binfmt entries) do — in any thread, test binary or process.
//!
//! Both kinds take [`lock()`] for as long as they touch or rely on the state:
//!
//! ```ignore
//! let _machine = support::machine::lock();
//! ```
//!
//! It is an exclusive `flock(2)` on [`LOCK_PATH`] (through `File::lock`), released when the
//! guard drops, also when the test panics or the process dies. Two guards in one process
//! exclude each other as well: each opens its own file description. Tests that neither change
//! nor depend on machine state should not take it, so they keep running in parallel.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt as _;

/// Shared by every test binary and by anything else that wants to join in (scripts can use
/// `flock /tmp/archway-machine-state.lock CMD`).
pub const LOCK_PATH: &str = "/tmp/archway-machine-state.lock";

/// Holds the machine-wide lock until dropped.
#[must_use = "the lock is released when the guard drops"]
pub struct MachineLock {
    _file: File,
}

/// Blocks until this test holds the machine-wide lock.
pub fn lock() -> MachineLock {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        // Readable and writable by everyone, so tests run as different users share it.
        .mode(0o666)
        .open(LOCK_PATH)
        .or_else(|_| File::open(LOCK_PATH))
        .unwrap_or_else(|e| panic!("cannot open the machine lock {LOCK_PATH}: {e}"));
    file.lock().unwrap_or_else(|e| panic!("cannot lock {LOCK_PATH}: {e}"));
    MachineLock { _file: file }
}
