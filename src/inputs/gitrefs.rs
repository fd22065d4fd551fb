//! gitrefs: the git tags a checkout knows, read from its `.git` directory (loose refs under
//! `refs/tags/` and `packed-refs`), for `latest=auto`: a rebuild of an old release must not
//! move `latest` back. Reads files only; runs no git. A shallow CI clone may know few tags or
//! none, and then nothing holds `latest` back.

use std::path::{Path, PathBuf};

/// The tag names under `dir`'s repository (`dir` or a parent holding `.git`); empty when none
/// can be read.
pub fn tags(dir: &Path) -> Vec<String> {
    let Some(git) = git_dir(dir) else { return Vec::new() };
    let mut out = Vec::new();
    if let Ok(packed) = std::fs::read_to_string(git.join("packed-refs")) {
        for line in packed.lines().filter(|l| !l.starts_with(['#', '^'])) {
            if let Some((_, name)) = line.split_once(' ')
                && let Some(tag) = name.trim().strip_prefix("refs/tags/")
            {
                out.push(tag.to_string());
            }
        }
    }
    loose(&git.join("refs/tags"), "", &mut out);
    out.sort();
    out.dedup();
    out
}

fn loose(dir: &Path, prefix: &str, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let name = format!("{prefix}{}", e.file_name().to_string_lossy());
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            loose(&e.path(), &format!("{name}/"), out);
        } else {
            out.push(name);
        }
    }
}

/// The repository's common git directory: `.git` in `dir` or a parent; for a worktree (`.git`
/// is a file naming its own git directory), the directory its `commondir` names.
fn git_dir(dir: &Path) -> Option<PathBuf> {
    let start = std::fs::canonicalize(dir).ok()?;
    for d in start.ancestors() {
        let dot = d.join(".git");
        if dot.is_dir() {
            return Some(dot);
        }
        if dot.is_file() {
            let text = std::fs::read_to_string(&dot).ok()?;
            let own = d.join(text.trim().strip_prefix("gitdir:")?.trim());
            return Some(match std::fs::read_to_string(own.join("commondir")) {
                Ok(common) => own.join(common.trim()),
                Err(_) => own,
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loose_and_packed_tags() {
        let d = tempfile::tempdir().unwrap();
        let git = d.path().join(".git");
        std::fs::create_dir_all(git.join("refs/tags/release")).unwrap();
        std::fs::write(git.join("refs/tags/v1.0.0"), "0\n").unwrap();
        std::fs::write(git.join("refs/tags/release/x"), "0\n").unwrap();
        std::fs::write(
            git.join("packed-refs"),
            "# pack-refs with: peeled\naaa refs/tags/v2.0.0\n^bbb\nccc refs/heads/main\n",
        )
        .unwrap();
        let sub = d.path().join("app");
        std::fs::create_dir(&sub).unwrap();
        assert_eq!(tags(&sub), ["release/x", "v1.0.0", "v2.0.0"]);
        assert!(tags(Path::new("/nonexistent")).is_empty());
    }
}
