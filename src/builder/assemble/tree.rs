//! tree: an in-memory model of an image's root filesystem (a stage, a base image, the build
//! context): each path's type, mode, owner, mtime and where its bytes are, never the bytes
//! themselves. Paths resolve symlinks the way BuildKit's `fs.RootPath` does — scoped to the
//! root, never above it — and `resolve_inside` refuses what would leave it. Pure: no I/O.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Symlinks followed while resolving one path before giving up (Linux's `MAXSYMLINKS`).
const MAX_SYMLINKS: usize = 40;

/// Where a regular file's bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// A file on disk (the build context, an extracted archive, a download).
    Disk(PathBuf),
    /// An entry of a layer blob (uncompressed path inside the tar).
    Layer { blob: Arc<LayerBlob>, entry: String },
    /// Bytes written by archway (heredocs).
    Bytes(Arc<Vec<u8>>),
}

/// A compressed layer blob on disk.
#[derive(Debug, PartialEq, Eq)]
pub struct LayerBlob {
    pub path: PathBuf,
    pub media_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File {
        size: u64,
        content: Content,
    },
    Symlink(String),
    /// Character or block devices and FIFOs: `typeflag` '3', '4' or '6'.
    Special {
        typeflag: u8,
        major: u32,
        minor: u32,
    },
}

/// One path's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: Kind,
    /// Permission bits with setuid, setgid and sticky (`0o7777`).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Seconds since the epoch.
    pub mtime: i64,
    /// Files that share this number are hard links of each other.
    pub inode: u64,
    /// Extended attributes (`SCHILY.xattr.*` records), sorted by name.
    pub xattrs: Vec<(String, Vec<u8>)>,
}

impl Node {
    pub fn dir(mode: u32, uid: u64, gid: u64, mtime: i64) -> Node {
        Node { kind: Kind::Dir, mode, uid, gid, mtime, inode: 0, xattrs: Vec::new() }
    }

    pub fn is_dir(&self) -> bool {
        matches!(self.kind, Kind::Dir)
    }
}

/// A path left the root it must stay in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("`{path}` leaves the build context through symlink `{link}` → `{target}`")]
    Escape { path: String, link: String, target: String },
    #[error("`{path}` leaves the build context")]
    Outside { path: String },
    #[error("too many levels of symlinks resolving `{0}`")]
    Loop(String),
    #[error("`{0}` is not a directory")]
    NotDir(String),
}

/// A root filesystem: relative paths (`etc/passwd`; `""` is the root) → nodes.
#[derive(Debug, Clone, Default)]
pub struct Tree {
    nodes: BTreeMap<String, Node>,
    next_inode: u64,
    /// Names a build context holds that are not UTF-8 (the tree's paths are strings): the
    /// directory each is in, and the name made readable (`bad\u{FFFD}name`). A COPY of that
    /// directory would leave them out, so it is refused instead.
    unnamed: Vec<(String, String)>,
}

impl Tree {
    /// An empty root directory (`scratch`).
    pub fn new() -> Tree {
        let mut t = Tree { nodes: BTreeMap::new(), next_inode: 1, unnamed: Vec::new() };
        t.nodes.insert(String::new(), Node::dir(0o755, 0, 0, 0));
        t
    }

    /// Records a name in directory `dir` that is not UTF-8 (shown as `readable`).
    pub fn note_unnamed(&mut self, dir: &str, readable: String) {
        self.unnamed.push((dir.to_string(), readable));
    }

    /// The first name directly in `dir` that is not UTF-8, made readable.
    pub fn unnamed_in(&self, dir: &str) -> Option<&str> {
        self.unnamed.iter().find(|(d, _)| d == dir).map(|(_, n)| n.as_str())
    }

    pub fn new_inode(&mut self) -> u64 {
        self.next_inode += 1;
        self.next_inode
    }

    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.len() <= 1
    }

    /// Sets `path` (its parent must exist; the caller sees to that), replacing what was there.
    /// Replacing a directory by something else removes what was under it.
    pub fn insert(&mut self, path: &str, node: Node) {
        if let Some(old) = self.nodes.get(path)
            && old.is_dir()
            && !node.is_dir()
        {
            self.remove(path);
        }
        if node.inode >= self.next_inode {
            self.next_inode = node.inode + 1;
        }
        self.nodes.insert(path.to_string(), node);
    }

    /// Removes `path` and everything under it.
    pub fn remove(&mut self, path: &str) {
        if path.is_empty() {
            self.nodes.retain(|k, _| k.is_empty());
            return;
        }
        self.nodes.remove(path);
        let prefix = format!("{path}/");
        let under: Vec<String> = self
            .nodes
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| k.clone())
            .collect();
        for k in under {
            self.nodes.remove(&k);
        }
    }

    /// The direct children of directory `dir`, sorted by name.
    pub fn children(&self, dir: &str) -> Vec<(&str, &Node)> {
        let prefix = if dir.is_empty() { String::new() } else { format!("{dir}/") };
        self.nodes
            .range(prefix.clone()..)
            .skip_while(|(k, _)| k.as_str() == dir)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter(|(k, _)| !k[prefix.len()..].contains('/'))
            .map(|(k, n)| (&k[prefix.len()..], n))
            .collect()
    }

    /// Every path at or under `dir`, in order.
    pub fn walk(&self, dir: &str) -> impl Iterator<Item = (&String, &Node)> {
        let prefix = if dir.is_empty() { String::new() } else { format!("{dir}/") };
        let dir = dir.to_string();
        self.nodes.range(dir.clone()..).take_while(move |(k, _)| **k == dir || k.starts_with(&prefix))
    }

    /// BuildKit's `fs.RootPath`: follows every symlink in `path` (the last component too when
    /// `follow_last`), scoped to the root: `..` stops at it and absolute targets start from it.
    pub fn resolve(&self, path: &str, follow_last: bool) -> Result<String, ResolveError> {
        self.resolve_with(path, follow_last, false)
    }

    /// As `resolve`, but a symlink whose target leaves the root (an absolute target, or `..`
    /// above it) is an error naming it, as is a `..` in `path` itself that would.
    pub fn resolve_inside(&self, path: &str, follow_last: bool) -> Result<String, ResolveError> {
        self.resolve_with(path, follow_last, true)
    }

    fn resolve_with(&self, path: &str, follow_last: bool, strict: bool) -> Result<String, ResolveError> {
        let mut todo: Vec<String> = Vec::new();
        for part in path.split('/').rev() {
            if !part.is_empty() && part != "." {
                todo.push(part.to_string());
            }
        }
        let mut done: Vec<String> = Vec::new();
        let mut links = 0;
        while let Some(part) = todo.pop() {
            if part == ".." {
                if done.pop().is_none() && strict {
                    return Err(ResolveError::Outside { path: path.to_string() });
                }
                continue;
            }
            done.push(part);
            let cur = done.join("/");
            let last = todo.is_empty();
            match self.nodes.get(&cur) {
                Some(Node { kind: Kind::Symlink(target), .. }) if follow_last || !last => {
                    links += 1;
                    if links > MAX_SYMLINKS {
                        return Err(ResolveError::Loop(path.to_string()));
                    }
                    done.pop();
                    if strict {
                        let escapes = target.starts_with('/') || {
                            let mut depth = done.len() as i64;
                            target.split('/').any(|p| {
                                match p {
                                    ".." => depth -= 1,
                                    "" | "." => {}
                                    _ => depth += 1,
                                }
                                depth < 0
                            })
                        };
                        if escapes {
                            return Err(ResolveError::Escape {
                                path: path.to_string(),
                                link: cur,
                                target: target.clone(),
                            });
                        }
                    }
                    if target.starts_with('/') {
                        done.clear();
                    }
                    for p in target.split('/').rev() {
                        if !p.is_empty() && p != "." {
                            todo.push(p.to_string());
                        }
                    }
                }
                Some(n) if !last && !n.is_dir() && !matches!(n.kind, Kind::Symlink(_)) => {
                    return Err(ResolveError::NotDir(cur));
                }
                _ => {}
            }
        }
        Ok(done.join("/"))
    }

    /// `os.Stat` after resolving: the node a path leads to, symlinks followed.
    pub fn stat(&self, path: &str) -> Option<(String, &Node)> {
        let p = self.resolve(path, true).ok()?;
        self.nodes.get(&p).map(|n| (p, n))
    }
}

/// The parent of a relative path (`""` for top-level paths).
pub fn parent(path: &str) -> &str {
    path.rfind('/').map_or("", |i| &path[..i])
}

/// The last component of a relative path.
pub fn base(path: &str) -> &str {
    path.rfind('/').map_or(path, |i| &path[i + 1..])
}

/// `a` joined with `b` (either may be empty).
pub fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ => format!("{a}/{b}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> Node {
        Node { kind: Kind::File { size: 0, content: Content::Bytes(Arc::new(vec![])) }, ..Node::dir(0o644, 0, 0, 0) }
    }
    fn link(t: &str) -> Node {
        Node { kind: Kind::Symlink(t.into()), ..Node::dir(0o777, 0, 0, 0) }
    }

    fn tree() -> Tree {
        let mut t = Tree::new();
        t.insert("usr", Node::dir(0o755, 0, 0, 0));
        t.insert("usr/bin", Node::dir(0o755, 0, 0, 0));
        t.insert("usr/bin/sh", file());
        t.insert("bin", link("usr/bin"));
        t.insert("abs", link("/usr/bin"));
        t.insert("up", link("../../usr"));
        t.insert("out", link("../outside"));
        t.insert("loop", link("loop"));
        t
    }

    #[test]
    fn resolves_scoped_to_the_root() {
        let t = tree();
        assert_eq!(t.resolve("bin/sh", true).unwrap(), "usr/bin/sh");
        assert_eq!(t.resolve("/abs/sh", true).unwrap(), "usr/bin/sh");
        assert_eq!(t.resolve("up/bin", true).unwrap(), "usr/bin");
        assert_eq!(t.resolve("bin", false).unwrap(), "bin");
        assert_eq!(t.resolve("../../bin/x", true).unwrap(), "usr/bin/x");
        assert!(matches!(t.resolve("loop", true), Err(ResolveError::Loop(_))));
        assert!(matches!(t.resolve("usr/bin/sh/x", true), Err(ResolveError::NotDir(_))));
    }

    #[test]
    fn strict_resolution_names_the_escape() {
        let t = tree();
        assert_eq!(t.resolve_inside("bin/sh", true).unwrap(), "usr/bin/sh");
        let e = t.resolve_inside("abs/sh", true).unwrap_err();
        assert_eq!(e, ResolveError::Escape { path: "abs/sh".into(), link: "abs".into(), target: "/usr/bin".into() });
        assert!(matches!(t.resolve_inside("up", true), Err(ResolveError::Escape { .. })));
        assert!(matches!(t.resolve_inside("out", true), Err(ResolveError::Escape { .. })));
        assert!(matches!(t.resolve_inside("../x", true), Err(ResolveError::Outside { .. })));
        // Not followed, the link itself is fine.
        assert_eq!(t.resolve_inside("abs", false).unwrap(), "abs");
    }

    #[test]
    fn children_walk_and_replace() {
        let mut t = tree();
        let names: Vec<&str> = t.children("usr").iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["bin"]);
        let top: Vec<&str> = t.children("").iter().map(|(n, _)| *n).collect();
        assert_eq!(top, ["abs", "bin", "loop", "out", "up", "usr"]);
        assert_eq!(t.walk("usr").count(), 3);
        t.insert("usr", file());
        assert!(t.get("usr/bin/sh").is_none());
        assert_eq!((parent("a/b/c"), base("a/b/c"), join("", "x")), ("a/b", "c", "x".to_string()));
    }
}
