//! files: writing a file a user named (`--metadata-file`, `--digest-file`, an exporter's
//! `dest`) so that it holds the old contents or the whole new ones, never a part: written
//! beside it under a temporary name, then renamed over it. A run killed half-way leaves the
//! old file, not an empty one that a later `merge` or script would read (and a
//! `.archway-*.tmp` beside it, named after it, which the next write of that file removes).

use std::fs::File;
use std::path::Path;

/// Writes `dest` through `write`, which gets the new file; `dest` changes only when `write`
/// succeeds. A `dest` that exists and is not a regular file (`/dev/stdout`, a FIFO, a
/// symbolic link) is written in place: replacing it would change what it is. The new file's
/// mode is 0666 less the umask, as `open(2)` would make it.
pub fn replace_file<T>(dest: &Path, write: impl FnOnce(File) -> Result<T, String>) -> Result<T, String> {
    use std::os::unix::fs::OpenOptionsExt as _;
    if std::fs::symlink_metadata(dest).is_ok_and(|m| !m.is_file()) {
        return write(File::create(dest).map_err(|e| e.to_string())?);
    }
    let dir = dest.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    remove_abandoned(dir, &name);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let tmp = dir.join(format!(".archway-{name}-{}-{nanos}.tmp", std::process::id()));
    // Removes the temporary file unless it became `dest`.
    struct Pending<'a>(Option<&'a Path>);
    impl Drop for Pending<'_> {
        fn drop(&mut self) {
            if let Some(p) = self.0 {
                let _ = std::fs::remove_file(p);
            }
        }
    }
    let file =
        std::fs::OpenOptions::new().write(true).create_new(true).mode(0o666).open(&tmp).map_err(|e| e.to_string())?;
    let mut pending = Pending(Some(&tmp));
    let sync = file.try_clone().map_err(|e| e.to_string())?;
    let out = write(file)?;
    sync.sync_all().map_err(|e| e.to_string())?;
    std::fs::rename(&tmp, dest).map_err(|e| e.to_string())?;
    pending.0 = None;
    Ok(out)
}

/// Removes what killed runs left beside `dir/name`: `.archway-NAME-PID-N.tmp` whose process
/// is gone (a live one may be writing it).
fn remove_abandoned(dir: &Path, name: &str) {
    let prefix = format!(".archway-{name}-");
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let file = e.file_name();
        let Some(rest) = file.to_str().and_then(|f| f.strip_prefix(&prefix)).and_then(|r| r.strip_suffix(".tmp"))
        else {
            continue;
        };
        let Some(pid) = rest.split_once('-').and_then(|(pid, _)| pid.parse::<u32>().ok()) else { continue };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Whether `path` is the temporary file of a [`replace_file`] that never finished (its run was
/// killed): never a result, so readers of a directory of results (`merge DIR`) skip it.
pub fn is_unfinished(path: &Path) -> bool {
    path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(".archway-") && n.ends_with(".tmp"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;
    use std::os::unix::fs::PermissionsExt as _;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    }

    #[test]
    fn the_old_file_stays_until_the_new_one_is_whole() {
        let t = tempfile::tempdir().unwrap();
        let dest = t.path().join("digest");
        std::fs::write(&dest, "old\n").unwrap();
        let failed = replace_file(&dest, |mut f| {
            f.write_all(b"half").unwrap();
            // What `dest` holds while the new file is being written.
            assert_eq!(std::fs::read_to_string(&dest).unwrap(), "old\n");
            Err::<(), _>("the disk is full".to_string())
        });
        assert_eq!(failed, Err("the disk is full".to_string()));
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), "old\n", "a failed write leaves the old file");
        assert_eq!(names(t.path()), ["digest"], "and no temporary file");

        // What a killed run leaves beside it is recognised as unfinished.
        let mut seen = None;
        let _ = replace_file(&dest, |_| {
            seen = names(t.path()).into_iter().find(|n| n != "digest");
            Err::<(), _>(String::new())
        });
        let seen = seen.expect("a temporary file while writing");
        assert!(is_unfinished(&t.path().join(&seen)), "{seen}");
        assert!(!is_unfinished(&dest) && !is_unfinished(Path::new(".archway-x")));

        replace_file(&dest, |mut f| f.write_all(b"new\n").map_err(|e| e.to_string())).unwrap();
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), "new\n");
        assert_eq!(names(t.path()), ["digest"]);
        let mode = std::fs::metadata(&dest).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o044, 0o044, "readable by others as a plain write makes it (umask 022): {mode:o}");
    }

    #[test]
    fn what_a_killed_run_left_is_removed_by_the_next() {
        let t = tempfile::tempdir().unwrap();
        let dest = t.path().join("digest");
        // No process has a pid above the kernel's limit (4194304); this one is alive.
        let dead = format!(".archway-digest-{}-7.tmp", 4_194_305);
        let alive = format!(".archway-digest-{}-7.tmp", std::process::id());
        let other = format!(".archway-metadata.json-{}-7.tmp", 4_194_305);
        for f in [&dead, &alive, &other] {
            std::fs::write(t.path().join(f), "half").unwrap();
        }
        replace_file(&dest, |mut f| f.write_all(b"new\n").map_err(|e| e.to_string())).unwrap();
        assert_eq!(names(t.path()), [alive.as_str(), other.as_str(), "digest"], "only this file's dead leftover goes");
    }

    #[test]
    fn special_files_and_links_are_written_in_place() {
        let t = tempfile::tempdir().unwrap();
        let target = t.path().join("target");
        std::fs::write(&target, "old").unwrap();
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        replace_file(&link, |mut f| f.write_all(b"through the link").map_err(|e| e.to_string())).unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "still a link");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "through the link");
        replace_file(Path::new("/dev/null"), |mut f| f.write_all(b"x").map_err(|e| e.to_string())).unwrap();
        use std::os::unix::fs::FileTypeExt as _;
        assert!(std::fs::metadata("/dev/null").unwrap().file_type().is_char_device(), "not replaced by a file");
    }

    #[test]
    fn a_missing_directory_is_an_error() {
        let e = replace_file(Path::new("/nonexistent/dir/file"), |_| Ok(())).unwrap_err();
        assert_eq!(e, "No such file or directory (os error 2)", "no temporary name in the message");
    }
}
