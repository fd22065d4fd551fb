//! copy: COPY and ADD onto a stage's filesystem, as BuildKit's file op does it (fsutil's `Copy`
//! with the options the Dockerfile frontend sets: symlinks in the source path followed,
//! directory sources copy their contents, wildcards with `filepath.Match` rules, missing
//! parents created 0755, `--chown`/`--chmod` on everything copied and created, hard links kept
//! within one source, `--exclude` and `--parents` patterns). Works on trees, records which
//! paths changed; the layer is made from those. Pure: no I/O.

use std::collections::{BTreeSet, HashMap};

use super::glob;
use super::ignore::{MatchInfo, Matcher};
use super::tree::{Kind, Node, ResolveError, Tree, base, join, parent};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CopyError {
    #[error("`{0}` not found in the build context")]
    NotFound(String),
    #[error(transparent)]
    Escape(#[from] ResolveError),
    #[error("cannot copy `{src}` to `{dest}`: `{dest}` is not a directory")]
    NotDir { src: String, dest: String },
    #[error("cannot replace directory `/{0}` with a file")]
    ReplaceDir(String),
    #[error("invalid pattern: {0}")]
    Pattern(String),
    #[error(
        "the build context holds `{0}`, whose name is not UTF-8: BuildKit copies it, archway's assembler cannot \
         write such a name; rename it, exclude it in `.dockerignore`, or build with buildx (`--prefer cross`)"
    )]
    NotUtf8(String),
}

/// How one COPY or ADD copies.
#[derive(Debug, Clone, Default)]
pub struct CopyOpts {
    /// `--chown`, resolved to numbers.
    pub chown: Option<(u64, u64)>,
    /// `--chmod` (octal).
    pub mode: Option<u32>,
    /// `--parents` patterns (what to keep, relative to the source).
    pub include: Option<Matcher>,
    /// `--exclude` patterns.
    pub exclude: Option<Matcher>,
    /// The source is the build context: a path or symlink that leaves it is an error.
    pub strict: bool,
    /// mtime of directories COPY creates (BuildKit uses the build's time).
    pub created_mtime: i64,
}

/// The paths (relative) a copy wrote, directories it created included.
pub type Changes = BTreeSet<String>;

/// Checks a source path as written: `..` must not climb above the root.
pub fn check_inside(src: &str) -> Result<(), CopyError> {
    let mut depth: i64 = 0;
    for p in src.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                depth -= 1;
                if depth < 0 {
                    return Err(CopyError::Escape(ResolveError::Outside { path: src.to_string() }));
                }
            }
            _ => depth += 1,
        }
    }
    Ok(())
}

/// The source paths a COPY source names: itself, or its wildcard matches (none is fine, as in
/// BuildKit). Paths are relative to the source root, as matched (symlinks not yet followed).
pub fn expand_source(src: &Tree, pattern: &str, strict: bool) -> Result<Vec<String>, CopyError> {
    let cleaned = glob::clean(&format!("/{pattern}"));
    let cleaned = cleaned.trim_start_matches('/');
    let parts: Vec<&str> = if cleaned.is_empty() { vec![] } else { cleaned.split('/').collect() };
    let Some(first_wild) = parts.iter().position(|p| glob::has_wildcards(p)) else {
        return Ok(vec![cleaned.to_string()]);
    };
    let fixed = parts[..first_wild].join("/");
    let rest = parts[first_wild..].join("/");
    glob::validate(&rest).map_err(|e| CopyError::Pattern(e.to_string()))?;
    let dir = if strict { src.resolve_inside(&fixed, true)? } else { src.resolve(&fixed, true)? };
    let mut out = Vec::new();
    // filepath.Walk: lexical order, matched directories not entered.
    fn walk(src: &Tree, dir: &str, rel: &str, rest: &str, out: &mut Vec<String>) {
        for (name, node) in src.children(dir) {
            let r = join(rel, name);
            if glob::matches(rest, &r).unwrap_or(false) {
                out.push(join(dir, name));
                continue;
            }
            if node.is_dir() {
                walk(src, &join(dir, name), &r, rest, out);
            }
        }
    }
    if src.get(&dir).is_some_and(Node::is_dir) {
        walk(src, &dir, "", &rest, &mut out);
    }
    Ok(out)
}

/// Creates `path` and missing parents (fsutil's `MkdirAll`), following symlinks, and records
/// what it created. An existing non-directory in the way is an error.
pub fn mkdir_all(dest: &mut Tree, path: &str, opts: &CopyOpts, changes: &mut Changes) -> Result<String, CopyError> {
    let resolved = dest.resolve(path, true)?;
    let mut cur = String::new();
    for part in resolved.split('/').filter(|p| !p.is_empty()) {
        cur = join(&cur, part);
        match dest.get(&cur) {
            Some(n) if n.is_dir() => {}
            Some(_) => return Err(CopyError::NotDir { src: path.to_string(), dest: format!("/{cur}") }),
            None => {
                let (uid, gid) = opts.chown.unwrap_or((0, 0));
                dest.insert(&cur, Node::dir(0o755, uid, gid, opts.created_mtime));
                changes.insert(cur.clone());
            }
        }
    }
    Ok(resolved)
}

/// Copies source path `src_path` (relative to `src`'s root, as matched) to `dest_path` (as
/// written: absolute, a trailing `/` meaning a directory) in `dest`.
pub fn copy(
    src: &Tree,
    src_path: &str,
    dest: &mut Tree,
    dest_path: &str,
    opts: &CopyOpts,
    changes: &mut Changes,
) -> Result<(), CopyError> {
    // The destination's directory (all of it when it ends with `/`) exists first.
    let dir_dest = dest_path.ends_with('/') || dest_path.ends_with("/.") || dest_path == "." || dest_path.is_empty();
    let cleaned_dest = glob::clean(&format!("/{dest_path}"));
    let ensure = if dir_dest { cleaned_dest.clone() } else { parent(cleaned_dest.trim_start_matches('/')).to_string() };
    mkdir_all(dest, &ensure, opts, changes)?;
    let dst = dest.resolve(&cleaned_dest, true)?;

    let followed = if opts.strict { src.resolve_inside(src_path, true)? } else { src.resolve(src_path, true)? };
    let Some(src_node) = src.get(&followed) else {
        return Err(CopyError::NotFound(format!("/{src_path}")));
    };
    let dest_node = dest.stat(&dst).map(|(_, n)| n.clone());
    let mut target = dst.clone();
    if !src_node.is_dir() && dest_node.as_ref().is_some_and(Node::is_dir) {
        target = join(&dst, base(src_path));
    }
    let target_dir =
        if src_node.is_dir() && dest_node.is_none() { target.clone() } else { parent(&target).to_string() };
    mkdir_all(dest, &target_dir, opts, changes)?;

    let mut c = Copier { src, dest, opts, changes, inodes: HashMap::new(), pending: Vec::new() };
    c.copy(&followed, "", &target, false, &MatchInfo::default(), &MatchInfo::default())
}

struct Copier<'a> {
    src: &'a Tree,
    dest: &'a mut Tree,
    opts: &'a CopyOpts,
    changes: &'a mut Changes,
    /// Source inode → the destination path and inode it was first copied to.
    inodes: HashMap<u64, u64>,
    /// Directories not copied yet because no include pattern matched them so far.
    pending: Vec<(String, String, bool)>,
}

impl Copier<'_> {
    /// The metadata a copied node gets: `--chown` and `--chmod` applied.
    fn meta(&self, n: &Node) -> Node {
        let mut out = n.clone();
        if let Some((uid, gid)) = self.opts.chown {
            out.uid = uid;
            out.gid = gid;
        }
        if let Some(m) = self.opts.mode
            && !matches!(n.kind, Kind::Symlink(_))
        {
            out.mode = m & 0o7777;
        }
        out
    }

    fn copy(
        &mut self,
        src: &str,
        components: &str,
        target: &str,
        overwrite: bool,
        parent_inc: &MatchInfo,
        parent_exc: &MatchInfo,
    ) -> Result<(), CopyError> {
        let mut include = true;
        let mut excluded = false;
        let (mut inc_info, mut exc_info) = (MatchInfo::default(), MatchInfo::default());
        if !components.is_empty() {
            if let Some(m) = &self.opts.include {
                let (hit, info) = m.matches_with_parent(components, parent_inc);
                include = hit;
                inc_info = info;
            }
            if let Some(m) = &self.opts.exclude {
                let (hit, info) = m.matches_with_parent(components, parent_exc);
                exc_info = info;
                if hit {
                    include = false;
                    excluded = true;
                }
            }
            let can_skip = !include
                && self.opts.include.is_none()
                && self.opts.exclude.as_ref().is_none_or(|m| !m.has_exclusions());
            if can_skip {
                return Ok(());
            }
        }
        let node = self.src.get(src).expect("walked from the tree").clone();
        if !include && !node.is_dir() {
            return Ok(());
        }
        if include {
            self.create_pending()?;
        }
        let existing = self.dest.get(target).cloned();
        if node.is_dir() {
            let mut created = false;
            if include {
                match &existing {
                    None => {
                        self.dest.insert(target, self.meta(&node));
                        created = true;
                    }
                    Some(e) if !e.is_dir() => {
                        return Err(CopyError::NotDir { src: format!("/{src}"), dest: format!("/{target}") });
                    }
                    Some(_) => {}
                }
                if created || overwrite {
                    let mut m = self.meta(&node);
                    if !created && !overwrite {
                        m = existing.clone().expect("exists");
                    }
                    self.dest.insert(target, m);
                    self.changes.insert(target.to_string());
                }
                self.pending.push((src.to_string(), target.to_string(), true));
            } else {
                self.pending.push((src.to_string(), target.to_string(), false));
            }
            if excluded && self.opts.exclude.as_ref().is_none_or(|m| !m.has_exclusions()) {
                self.pending.pop();
                return Ok(());
            }
            if include && let Some(name) = self.src.unnamed_in(src) {
                return Err(CopyError::NotUtf8(join(src, name)));
            }
            let children: Vec<String> = self.src.children(src).iter().map(|(n, _)| n.to_string()).collect();
            for name in children {
                self.copy(
                    &join(src, &name),
                    &join(components, &name),
                    &join(target, &name),
                    true,
                    &inc_info,
                    &exc_info,
                )?;
            }
            self.pending.pop();
            return Ok(());
        }
        if existing.as_ref().is_some_and(Node::is_dir) {
            return Err(CopyError::ReplaceDir(target.to_string()));
        }
        let mut m = self.meta(&node);
        if let Kind::File { .. } = node.kind {
            m.inode = match self.inodes.get(&node.inode) {
                Some(&i) if node.inode != 0 => i,
                _ => {
                    let i = self.dest.new_inode();
                    if node.inode != 0 {
                        self.inodes.insert(node.inode, i);
                    }
                    i
                }
            };
        }
        self.dest.remove(target);
        self.dest.insert(target, m);
        self.changes.insert(target.to_string());
        Ok(())
    }

    /// Creates the directories an include pattern held back, now that something under them is
    /// copied.
    fn create_pending(&mut self) -> Result<(), CopyError> {
        for i in 0..self.pending.len() {
            if self.pending[i].2 {
                continue;
            }
            let (src, target) = (self.pending[i].0.clone(), self.pending[i].1.clone());
            let node = self.src.get(&src).expect("walked").clone();
            match self.dest.get(&target) {
                None => {
                    self.dest.insert(&target, self.meta(&node));
                    self.changes.insert(target.clone());
                }
                Some(e) if !e.is_dir() => {
                    return Err(CopyError::NotDir { src: format!("/{src}"), dest: format!("/{target}") });
                }
                Some(_) => {}
            }
            self.pending[i].2 = true;
        }
        Ok(())
    }
}

/// `COPY --parents`: splits a source at its `/./` pivot (or keeps the whole path), giving the
/// directory to copy from and the pattern of what to keep under it.
pub fn parents_split(src: &str) -> (String, String) {
    match src.split_once("/./") {
        Some((parent, pattern)) => {
            (parent.to_string(), glob::clean(&format!("/{pattern}")).trim_start_matches('/').to_string())
        }
        None => ("/".to_string(), glob::clean(&format!("/{src}")).trim_start_matches('/').to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::assemble::tree::Content;
    use std::sync::Arc;

    fn file(data: &str, inode: u64) -> Node {
        Node {
            kind: Kind::File { size: data.len() as u64, content: Content::Bytes(Arc::new(data.as_bytes().to_vec())) },
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 5,
            inode,
            xattrs: vec![],
        }
    }
    fn dir(mode: u32) -> Node {
        Node::dir(mode, 0, 0, 5)
    }
    fn link(t: &str) -> Node {
        Node { kind: Kind::Symlink(t.into()), ..Node::dir(0o777, 0, 0, 5) }
    }

    fn context() -> Tree {
        let mut t = Tree::new();
        t.insert("a.txt", file("a", 1));
        t.insert("hard.txt", file("a", 1));
        t.insert("link", link("a.txt"));
        t.insert("escape", link("/etc/shadow"));
        t.insert("dir", dir(0o755));
        t.insert("dir/b.txt", file("b", 2));
        t.insert("dir/sub", dir(0o700));
        t.insert("dir/sub/c.md", file("c", 3));
        t.insert("dir/sub/h", file("b", 2));
        t
    }

    fn base_image() -> Tree {
        let mut t = Tree::new();
        t.insert("etc", dir(0o755));
        t.insert("etc/passwd", file("root", 9));
        t.insert("usr", dir(0o755));
        t.insert("usr/bin", dir(0o755));
        t.insert("bin", link("usr/bin"));
        t
    }

    fn strict() -> CopyOpts {
        CopyOpts { strict: true, created_mtime: 0, ..CopyOpts::default() }
    }

    fn run(srcs: &[&str], dest_path: &str, opts: &CopyOpts) -> Result<(Tree, Vec<String>), CopyError> {
        let ctx = context();
        let mut dest = base_image();
        let mut changes = Changes::new();
        for s in srcs {
            check_inside(s)?;
            for m in expand_source(&ctx, s, opts.strict)? {
                copy(&ctx, &m, &mut dest, dest_path, opts, &mut changes)?;
            }
        }
        Ok((dest, changes.into_iter().collect()))
    }

    #[test]
    fn destination_rules() {
        // A file to a new path is that path; with a trailing slash, into that directory.
        let (t, ch) = run(&["a.txt"], "/x", &strict()).unwrap();
        assert!(matches!(t.get("x").unwrap().kind, Kind::File { .. }));
        assert_eq!(ch, ["x"]);
        let (t, ch) = run(&["a.txt"], "/new/", &strict()).unwrap();
        assert!(t.get("new/a.txt").is_some());
        assert_eq!(ch, ["new", "new/a.txt"]);
        // An existing directory takes the file by its name.
        let (_, ch) = run(&["a.txt"], "/etc", &strict()).unwrap();
        assert_eq!(ch, ["etc/a.txt"]);
        // A symlink in the destination is followed.
        let (_, ch) = run(&["a.txt"], "/bin/", &strict()).unwrap();
        assert_eq!(ch, ["usr/bin/a.txt"]);
        // A directory source copies its contents; the source's own name is not kept.
        let (t, ch) = run(&["dir"], "/d", &strict()).unwrap();
        assert_eq!(ch, ["d", "d/b.txt", "d/sub", "d/sub/c.md", "d/sub/h"]);
        assert_eq!(t.get("d/sub").unwrap().mode, 0o700);
        assert_eq!(t.get("d/b.txt").unwrap().inode, t.get("d/sub/h").unwrap().inode);
        // Several sources, a wildcard, a source symlink followed and named as written.
        let (t, ch) = run(&["link", "*.txt"], "/m/", &strict()).unwrap();
        assert_eq!(ch, ["m", "m/a.txt", "m/hard.txt", "m/link"]);
        assert!(matches!(t.get("m/link").unwrap().kind, Kind::File { .. }));
        // Separate sources are separate copies: no hard link between them.
        assert_ne!(t.get("m/a.txt").unwrap().inode, t.get("m/hard.txt").unwrap().inode);
        // A wildcard that matches nothing copies nothing.
        assert_eq!(run(&["*.none"], "/m/", &strict()).unwrap().1, Vec::<String>::new());
        // A file over a directory is an error.
        assert!(matches!(run(&["a.txt"], "/usr/bin", &CopyOpts { ..strict() }).map(|_| ()), Ok(())));
        let mut dest = base_image();
        dest.insert("usr/bin/a.txt", dir(0o755));
        let e = copy(&context(), "a.txt", &mut dest, "/usr/bin/", &strict(), &mut Changes::new()).unwrap_err();
        assert_eq!(e, CopyError::ReplaceDir("usr/bin/a.txt".into()));
    }

    #[test]
    fn chown_chmod_and_created_parents() {
        let opts = CopyOpts { chown: Some((1000, 1001)), mode: Some(0o640), ..strict() };
        let (t, ch) = run(&["dir"], "/n/m/", &opts).unwrap();
        assert_eq!(ch, ["n", "n/m", "n/m/b.txt", "n/m/sub", "n/m/sub/c.md", "n/m/sub/h"]);
        let n = t.get("n").unwrap();
        assert_eq!((n.mode, n.uid, n.gid), (0o755, 1000, 1001));
        let s = t.get("n/m/sub").unwrap();
        assert_eq!((s.mode, s.uid), (0o640, 1000));
        let f = t.get("n/m/b.txt").unwrap();
        assert_eq!((f.mode, f.uid, f.gid, f.mtime), (0o640, 1000, 1001, 5));
    }

    #[test]
    fn a_directory_holding_a_name_that_is_not_utf8_is_refused_not_copied_without_it() {
        let mut ctx = context();
        ctx.note_unnamed("dir/sub", "bad\u{FFFD}name".into());
        let mut dest = base_image();
        for (src, refused) in [("dir", true), ("dir/sub", true), ("a.txt", false)] {
            let r = copy(&ctx, src, &mut dest, "/x/", &strict(), &mut Changes::new());
            match refused {
                true => assert_eq!(r, Err(CopyError::NotUtf8("dir/sub/bad\u{FFFD}name".into())), "{src}"),
                false => assert_eq!(r, Ok(()), "{src}"),
            }
        }
        let e = CopyError::NotUtf8("dir/sub/bad\u{FFFD}name".into()).to_string();
        assert!(e.contains("`.dockerignore`") && e.contains("--prefer cross"), "the fixes: {e}");
    }

    #[test]
    fn escapes_are_errors_naming_the_path() {
        let e = run(&["../x"], "/", &strict()).unwrap_err();
        assert_eq!(e.to_string(), "`../x` leaves the build context");
        let e = run(&["escape"], "/", &strict()).unwrap_err();
        assert!(e.to_string().contains("`escape`") && e.to_string().contains("/etc/shadow"), "{e}");
        assert_eq!(run(&["nope"], "/", &strict()).unwrap_err(), CopyError::NotFound("/nope".into()));
    }

    #[test]
    fn exclude_and_parents() {
        // As in patternmatcher, `*.md` is about the top level only; `**/*.md` reaches down.
        let opts = CopyOpts { exclude: Some(Matcher::new(&["*.md", "b.*"]).unwrap()), ..strict() };
        let (_, ch) = run(&["dir"], "/e/", &opts).unwrap();
        assert_eq!(ch, ["e", "e/sub", "e/sub/c.md", "e/sub/h"]);
        let opts = CopyOpts { exclude: Some(Matcher::new(&["**/*.md"]).unwrap()), ..strict() };
        let (_, ch) = run(&["dir"], "/e/", &opts).unwrap();
        assert_eq!(ch, ["e", "e/b.txt", "e/sub", "e/sub/h"]);
        // --parents: `dir/sub/c.md` keeps its path under the destination.
        let (from, pattern) = parents_split("dir/sub/c.md");
        assert_eq!((from.as_str(), pattern.as_str()), ("/", "dir/sub/c.md"));
        let opts = CopyOpts { include: Some(Matcher::new(&[pattern]).unwrap()), ..strict() };
        let ctx = context();
        let mut dest = base_image();
        let mut changes = Changes::new();
        copy(&ctx, "", &mut dest, "/p/", &opts, &mut changes).unwrap();
        assert_eq!(changes.into_iter().collect::<Vec<_>>(), ["p", "p/dir", "p/dir/sub", "p/dir/sub/c.md"]);
        assert_eq!(parents_split("a/./b/c"), ("a".to_string(), "b/c".to_string()));
    }
}
