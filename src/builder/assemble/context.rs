//! context: the build context read as BuildKit receives it — every path the ignore file lets
//! through (`<Dockerfile>.dockerignore` beside the Dockerfile, else `.dockerignore` at the
//! context's root; `!` exceptions re-include paths under excluded directories, whose parents
//! then come along), owned by root, symlinks kept as symlinks, hard links detected. Only
//! metadata is read here; file bytes are read when a layer is written.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

use super::ignore::{MatchInfo, Matcher, PatternError, read_ignore_file};
use super::tree::{Content, Kind, Node, Tree, join};

#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("cannot read the build context at `{path}`: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("`{file}`: {source}")]
    Pattern { file: String, source: PatternError },
}

/// The ignore file that applies: `<Dockerfile>.dockerignore`, else `<context>/.dockerignore`.
pub fn ignore_patterns(context: &Path, dockerfile: &Path) -> Result<(String, Vec<String>), ContextError> {
    let mut own = dockerfile.as_os_str().to_owned();
    own.push(".dockerignore");
    for path in [std::path::PathBuf::from(own), context.join(".dockerignore")] {
        match std::fs::read_to_string(&path) {
            Ok(text) => return Ok((path.display().to_string(), read_ignore_file(&text))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => return Err(ContextError::Io { path: path.display().to_string(), source }),
        }
    }
    Ok((String::new(), Vec::new()))
}

/// Reads the context at `root` into a tree, leaving out what `patterns` exclude.
pub fn load(root: &Path, ignore_file: &str, patterns: &[String]) -> Result<Tree, ContextError> {
    let matcher =
        Matcher::new(patterns).map_err(|source| ContextError::Pattern { file: ignore_file.to_string(), source })?;
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| ContextError::Io { path, source }
    };
    let meta = std::fs::metadata(root).map_err(io(root))?;
    let mut tree = Tree::new();
    tree.insert("", Node::dir(meta.mode() & 0o7777, 0, 0, meta.mtime()));
    let mut walk = Walk { tree, matcher, inodes: HashMap::new() };
    walk.dir(root, "", &MatchInfo::default(), &mut Vec::new())?;
    Ok(walk.tree)
}

struct Walk {
    tree: Tree,
    matcher: Matcher,
    /// (device, inode) of files with several links → the tree's inode.
    inodes: HashMap<(u64, u64), u64>,
}

impl Walk {
    /// Walks directory `dir` (`rel` in the tree). `pending` holds excluded parent directories
    /// that are added once something under them is included.
    fn dir(
        &mut self,
        dir: &Path,
        rel: &str,
        parent: &MatchInfo,
        pending: &mut Vec<(String, Node)>,
    ) -> Result<(), ContextError> {
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source| ContextError::Io { path, source }
        };
        let mut names: Vec<std::ffi::OsString> = std::fs::read_dir(dir)
            .map_err(io(dir))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(io(dir))?;
        names.sort();
        for name in names {
            let path = dir.join(&name);
            let Some(name) = name.to_str() else {
                // Not UTF-8: BuildKit sends it, and a COPY of its directory copies it, but the
                // tree's paths are strings. Noted, unless ignored, so that COPY can refuse.
                let readable = name.to_string_lossy().into_owned();
                let excluded =
                    !self.matcher.is_empty() && self.matcher.matches_with_parent(&join(rel, &readable), parent).0;
                if !excluded {
                    self.tree.note_unnamed(rel, readable);
                }
                continue;
            };
            let rel = join(rel, name);
            let m = std::fs::symlink_metadata(&path).map_err(io(&path))?;
            let (excluded, info) = if self.matcher.is_empty() {
                (false, MatchInfo::default())
            } else {
                self.matcher.matches_with_parent(&rel, parent)
            };
            let ft = m.file_type();
            let base = Node {
                kind: Kind::Dir,
                mode: m.mode() & 0o7777,
                uid: 0,
                gid: 0,
                mtime: m.mtime(),
                inode: 0,
                xattrs: Vec::new(),
            };
            if ft.is_dir() {
                if excluded {
                    if self.matcher.can_skip_dir(&rel) {
                        continue;
                    }
                    pending.push((rel.clone(), base));
                    self.dir(&path, &rel, &info, pending)?;
                    if pending.last().is_some_and(|(p, _)| *p == rel) {
                        pending.pop();
                    }
                } else {
                    self.flush(pending);
                    self.tree.insert(&rel, base);
                    let mut mine = Vec::new();
                    self.dir(&path, &rel, &info, &mut mine)?;
                }
                continue;
            }
            if excluded {
                continue;
            }
            let kind = if ft.is_symlink() {
                let target = std::fs::read_link(&path).map_err(io(&path))?;
                Kind::Symlink(target.to_string_lossy().into_owned())
            } else if ft.is_file() {
                Kind::File { size: m.len(), content: Content::Disk(path.clone()) }
            } else {
                use std::os::unix::fs::FileTypeExt as _;
                let (typeflag, dev) = if ft.is_fifo() {
                    (b'6', 0)
                } else if ft.is_char_device() {
                    (b'3', m.rdev())
                } else if ft.is_block_device() {
                    (b'4', m.rdev())
                } else {
                    continue; // sockets
                };
                Kind::Special { typeflag, major: libc::major(dev), minor: libc::minor(dev) }
            };
            let mut node = Node { kind, ..base };
            if matches!(node.kind, Kind::File { .. }) {
                node.inode = if m.nlink() > 1 {
                    let next = self.tree.new_inode();
                    *self.inodes.entry((m.dev(), m.ino())).or_insert(next)
                } else {
                    self.tree.new_inode()
                };
            }
            self.flush(pending);
            self.tree.insert(&rel, node);
        }
        Ok(())
    }

    /// Adds the excluded directories above an included path.
    fn flush(&mut self, pending: &mut Vec<(String, Node)>) {
        for (p, n) in pending.drain(..) {
            self.tree.insert(&p, n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_are_not_utf8_are_noted_unless_ignored() {
        use std::os::unix::ffi::OsStrExt as _;
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("dir")).unwrap();
        std::fs::write(d.path().join("dir").join(std::ffi::OsStr::from_bytes(b"bad\xffname")), "x").unwrap();
        std::fs::write(d.path().join("ok.txt"), "x").unwrap();
        let t = load(d.path(), "", &[]).unwrap();
        assert_eq!(t.unnamed_in("dir"), Some("bad\u{FFFD}name"));
        assert_eq!(t.unnamed_in(""), None);
        assert!(t.get("ok.txt").is_some());
        let t = load(d.path(), ".dockerignore", &["dir/bad*".to_string()]).unwrap();
        assert_eq!(t.unnamed_in("dir"), None, "ignored: nothing to refuse");
    }

    #[test]
    fn reads_the_context_with_exceptions() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        for dir in ["src", "target/debug", "docs/keep"] {
            std::fs::create_dir_all(r.join(dir)).unwrap();
        }
        for f in ["Dockerfile", "src/main.rs", "a.log", "keep.log", "target/debug/x", "docs/keep/a.md", "docs/b.md"] {
            std::fs::write(r.join(f), f).unwrap();
        }
        std::fs::hard_link(r.join("src/main.rs"), r.join("src/hard.rs")).unwrap();
        std::os::unix::fs::symlink("../etc/shadow", r.join("src/escape")).unwrap();
        std::fs::write(r.join("Dockerfile.dockerignore"), "*.log\n!keep.log\ntarget\ndocs\n!docs/keep\n").unwrap();
        std::fs::write(r.join(".dockerignore"), "src\n").unwrap();
        let (file, patterns) = ignore_patterns(r, &r.join("Dockerfile")).unwrap();
        assert!(file.ends_with("Dockerfile.dockerignore"));
        let t = load(r, &file, &patterns).unwrap();
        let paths: Vec<&String> = t.walk("").map(|(p, _)| p).collect();
        assert_eq!(
            paths,
            [
                "",
                ".dockerignore",
                "Dockerfile",
                "Dockerfile.dockerignore",
                "docs",
                "docs/keep",
                "docs/keep/a.md",
                "keep.log",
                "src",
                "src/escape",
                "src/hard.rs",
                "src/main.rs"
            ]
        );
        assert_eq!(t.get("src/hard.rs").unwrap().inode, t.get("src/main.rs").unwrap().inode);
        assert_eq!(t.get("src/escape").unwrap().kind, Kind::Symlink("../etc/shadow".into()));
        assert_eq!(t.get("docs").unwrap().uid, 0);
    }
}
