//! The root filesystem a container sees: layer tars applied in order the way containerd's
//! applier does (whiteouts and opaque directories remove what lower layers had, a
//! non-directory replaces whatever was at its path, a directory over a directory only changes
//! its metadata, parents missing from a layer are made 0755 root:root), kept in memory as one
//! record per path. Two trees are compared field by field. Test-only: nothing here reads
//! archway's code.

use std::collections::{BTreeMap, BTreeSet};

use sha2::Digest as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    CharDevice,
    BlockDevice,
    Fifo,
}

/// One path of the tree. Timestamps are not kept: no comparison looks at them.
#[derive(Debug, Clone)]
pub struct Node {
    pub kind: Kind,
    /// Permission and setuid/setgid/sticky bits (`0o7777`).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Regular files only.
    pub size: u64,
    /// sha256 of a regular file's content.
    pub sha256: String,
    /// A symlink's target, as stored.
    pub target: String,
    /// `(major, minor)` of a device.
    pub device: (u32, u32),
    /// PAX `SCHILY.xattr.*` records (what Go's archive/tar and the tar crate write).
    pub xattrs: BTreeMap<String, Vec<u8>>,
    /// Paths that share an inode share this number (hard links).
    inode: u64,
}

/// A root filesystem: paths without a leading `/` (`""` is the root) to their records.
#[derive(Debug, Clone)]
pub struct RootFs {
    nodes: BTreeMap<String, Node>,
    next_inode: u64,
}

impl Default for RootFs {
    fn default() -> Self {
        let mut fs = RootFs { nodes: BTreeMap::new(), next_inode: 1 };
        let root = fs.dir_node();
        fs.nodes.insert(String::new(), root);
        fs
    }
}

/// One tar entry, read whole before any of its layer is applied.
struct Entry {
    path: String,
    node: Node,
    /// For a hard link: the path it links to.
    hardlink: Option<String>,
}

const OPAQUE: &str = ".wh..wh..opq";
const WHITEOUT: &str = ".wh.";

impl RootFs {
    /// Applies every layer tar, bottom first.
    pub fn from_layers<'a>(layers: impl IntoIterator<Item = &'a [u8]>) -> Result<RootFs, String> {
        let mut fs = RootFs::default();
        for (i, tar) in layers.into_iter().enumerate() {
            fs.apply(tar).map_err(|e| format!("layer {i}: {e}"))?;
        }
        Ok(fs)
    }

    pub fn nodes(&self) -> &BTreeMap<String, Node> {
        &self.nodes
    }

    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path.trim_start_matches('/'))
    }

    /// The other paths that are hard links of `path` (empty for most).
    pub fn hardlinks(&self, path: &str) -> Vec<String> {
        let Some(n) = self.nodes.get(path) else { return Vec::new() };
        if n.kind == Kind::Dir {
            return Vec::new();
        }
        self.nodes.iter().filter(|(p, o)| *p != path && o.inode == n.inode).map(|(p, _)| format!("/{p}")).collect()
    }

    fn dir_node(&mut self) -> Node {
        let inode = self.inode();
        Node {
            kind: Kind::Dir,
            mode: 0o755,
            uid: 0,
            gid: 0,
            size: 0,
            sha256: String::new(),
            target: String::new(),
            device: (0, 0),
            xattrs: BTreeMap::new(),
            inode,
        }
    }

    fn inode(&mut self) -> u64 {
        self.next_inode += 1;
        self.next_inode
    }

    /// Applies one layer: its whiteouts against the lower layers first, then its entries in
    /// order (a whiteout never hides what its own layer adds).
    pub fn apply(&mut self, tar: &[u8]) -> Result<(), String> {
        let entries = read_entries(tar, self)?;
        let mut adds = Vec::new();
        for e in entries {
            let (parent, name) = split(&e.path);
            if name == OPAQUE {
                let prefix = if parent.is_empty() { String::new() } else { format!("{parent}/") };
                self.nodes.retain(|p, _| !(p.starts_with(&prefix) && p.len() > prefix.len()));
            } else if let Some(hidden) = name.strip_prefix(WHITEOUT) {
                self.remove_tree(&join(parent, hidden));
            } else {
                adds.push(e);
            }
        }
        for e in adds {
            self.add(e)?;
        }
        Ok(())
    }

    fn remove_tree(&mut self, path: &str) {
        let prefix = format!("{path}/");
        self.nodes.retain(|p, _| p != path && !p.starts_with(&prefix));
    }

    fn add(&mut self, e: Entry) -> Result<(), String> {
        if e.path.is_empty() {
            // The root itself: only its metadata can change.
            let root = self.nodes.get_mut("").unwrap();
            if e.node.kind != Kind::Dir {
                return Err("the layer's root entry is not a directory".into());
            }
            *root = Node { inode: root.inode, ..e.node };
            return Ok(());
        }
        let (parent, name) = split(&e.path);
        let parent = self.make_parents(parent)?;
        let path = join(&parent, name);
        let mut node = match &e.hardlink {
            Some(target) => {
                let target = self.resolve_parents(target)?;
                self.nodes
                    .get(&target)
                    .filter(|n| n.kind != Kind::Dir)
                    .cloned()
                    .ok_or_else(|| format!("hard link `/{path}` to `/{target}`, which is not a file here"))?
            }
            None => e.node,
        };
        match self.nodes.get(&path) {
            Some(old) if old.kind == Kind::Dir && node.kind == Kind::Dir => {
                node.inode = old.inode;
            }
            Some(_) => self.remove_tree(&path),
            None => {}
        }
        self.nodes.insert(path, node);
        Ok(())
    }

    /// Makes the missing directories of `parent` (0755 root:root, as containerd does) after
    /// following symlinks already in the tree; returns the resolved parent path.
    fn make_parents(&mut self, parent: &str) -> Result<String, String> {
        let resolved = self.resolve_parents(parent)?;
        let mut at = String::new();
        for c in resolved.split('/').filter(|c| !c.is_empty()) {
            at = join(&at, c);
            match self.nodes.get(&at) {
                Some(n) if n.kind == Kind::Dir => {}
                Some(_) => return Err(format!("`/{at}` is not a directory but a layer writes under it")),
                None => {
                    let d = self.dir_node();
                    self.nodes.insert(at.clone(), d);
                }
            }
        }
        Ok(resolved)
    }

    /// `path` with every symlink among its components followed, never above the root.
    fn resolve_parents(&self, path: &str) -> Result<String, String> {
        let mut todo: Vec<String> = path.split('/').filter(|c| !c.is_empty()).rev().map(String::from).collect();
        let mut at: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(c) = todo.pop() {
            match c.as_str() {
                "." => continue,
                ".." => {
                    at.pop();
                    continue;
                }
                _ => {}
            }
            at.push(c);
            let here = at.join("/");
            if let Some(n) = self.nodes.get(&here).filter(|n| n.kind == Kind::Symlink) {
                hops += 1;
                if hops > 40 {
                    return Err(format!("too many symlinks under `/{path}`"));
                }
                at.pop();
                if n.target.starts_with('/') {
                    at.clear();
                }
                todo.extend(n.target.split('/').filter(|c| !c.is_empty()).rev().map(String::from));
            }
        }
        Ok(at.join("/"))
    }
}

fn split(path: &str) -> (&str, &str) {
    path.rsplit_once('/').unwrap_or(("", path))
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() { name.to_string() } else { format!("{parent}/{name}") }
}

/// A tar path as a tree key: no leading `./` or `/`, no trailing `/`, no `.` components.
fn clean(raw: &[u8]) -> Result<String, String> {
    let s = String::from_utf8(raw.to_vec()).map_err(|_| format!("a non-UTF-8 path {raw:?}"))?;
    let mut parts = Vec::new();
    for c in s.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(format!("`{s}` climbs out of the root")),
            c => parts.push(c),
        }
    }
    Ok(parts.join("/"))
}

fn read_entries(tar: &[u8], fs: &mut RootFs) -> Result<Vec<Entry>, String> {
    let mut archive = tar::Archive::new(tar);
    let mut out = Vec::new();
    for entry in archive.entries().map_err(|e| e.to_string())? {
        let mut entry = entry.map_err(|e| format!("tar: {e}"))?;
        let path = clean(&entry.path_bytes())?;
        let header = entry.header().clone();
        let kind = header.entry_type();
        let mut xattrs = BTreeMap::new();
        let (mut uid, mut gid) = (header.uid().map_err(|e| e.to_string())?, header.gid().map_err(|e| e.to_string())?);
        if let Some(pax) = entry.pax_extensions().map_err(|e| e.to_string())? {
            for ext in pax {
                let ext = ext.map_err(|e| e.to_string())?;
                let key = ext.key().map_err(|e| e.to_string())?;
                if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                    xattrs.insert(name.to_string(), ext.value_bytes().to_vec());
                } else if key == "uid" {
                    uid = ext.value().map_err(|e| e.to_string())?.parse().map_err(|_| "a PAX uid")?;
                } else if key == "gid" {
                    gid = ext.value().map_err(|e| e.to_string())?.parse().map_err(|_| "a PAX gid")?;
                }
            }
        }
        let mut node = fs.dir_node();
        node.mode = header.mode().map_err(|e| e.to_string())? & 0o7777;
        node.uid = uid;
        node.gid = gid;
        node.xattrs = xattrs;
        let mut hardlink = None;
        node.kind = match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let mut h = sha2::Sha256::new();
                let n = std::io::copy(&mut entry, &mut h).map_err(|e| format!("{path}: {e}"))?;
                node.size = n;
                node.sha256 = hex::encode(h.finalize());
                Kind::File
            }
            tar::EntryType::Directory => Kind::Dir,
            tar::EntryType::Symlink => {
                node.target = link_name(&entry)?;
                Kind::Symlink
            }
            tar::EntryType::Link => {
                hardlink = Some(clean(link_name(&entry)?.as_bytes())?);
                Kind::File
            }
            tar::EntryType::Char | tar::EntryType::Block => {
                node.device = (
                    header.device_major().ok().flatten().unwrap_or(0),
                    header.device_minor().ok().flatten().unwrap_or(0),
                );
                if kind == tar::EntryType::Char { Kind::CharDevice } else { Kind::BlockDevice }
            }
            tar::EntryType::Fifo => Kind::Fifo,
            tar::EntryType::XGlobalHeader => continue,
            other => return Err(format!("`{path}`: tar entry type {other:?} is not expected in a layer")),
        };
        // Drain whatever a non-file entry might carry so the next header is read right.
        std::io::copy(&mut entry, &mut std::io::sink()).map_err(|e| e.to_string())?;
        out.push(Entry { path, node, hardlink });
    }
    Ok(out)
}

fn link_name(entry: &tar::Entry<'_, &[u8]>) -> Result<String, String> {
    let raw = entry.link_name_bytes().ok_or("a link without a target")?;
    String::from_utf8(raw.to_vec()).map_err(|_| format!("a non-UTF-8 link target {raw:?}"))
}

/// One difference between two trees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub path: String,
    pub field: &'static str,
    pub left: String,
    pub right: String,
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::File => "file",
        Kind::Dir => "directory",
        Kind::Symlink => "symlink",
        Kind::CharDevice => "char device",
        Kind::BlockDevice => "block device",
        Kind::Fifo => "fifo",
    }
}

fn describe(n: &Node) -> String {
    match n.kind {
        Kind::File => format!("file {:04o} {}:{} {} bytes", n.mode, n.uid, n.gid, n.size),
        Kind::Symlink => format!("symlink -> {}", n.target),
        k => format!("{} {:04o} {}:{}", kind_name(k), n.mode, n.uid, n.gid),
    }
}

fn xattrs_text(x: &BTreeMap<String, Vec<u8>>) -> String {
    if x.is_empty() {
        return "(none)".into();
    }
    x.iter().map(|(k, v)| format!("{k}={}", String::from_utf8_lossy(v).escape_debug())).collect::<Vec<_>>().join(", ")
}

/// Every difference between `left` and `right`, path by path (type, mode, owner, size,
/// content, symlink target, device numbers, xattrs, hard-link group).
pub fn compare(left: &RootFs, right: &RootFs) -> Vec<Difference> {
    let mut out = Vec::new();
    let mut absent_roots: BTreeMap<&str, usize> = BTreeMap::new();
    let mut below: Vec<usize> = Vec::new();
    let paths: BTreeSet<&String> = left.nodes.keys().chain(right.nodes.keys()).collect();
    for p in paths {
        let shown = format!("/{p}");
        let mut diff = |field: &'static str, l: String, r: String| {
            if l != r {
                out.push(Difference { path: shown.clone(), field, left: l, right: r });
            }
        };
        let (l, r) = match (left.nodes.get(p), right.nodes.get(p)) {
            (Some(l), Some(r)) => (l, r),
            (l, r) => {
                // A whole missing tree is one line, its root's, with a count of what is below.
                let ancestor = p.match_indices('/').map(|(i, _)| &p[..i]).find_map(|a| absent_roots.get(a).copied());
                if let Some(i) = ancestor {
                    below[i] += 1;
                    continue;
                }
                let show = |n: Option<&Node>| n.map(describe).unwrap_or_else(|| "(absent)".into());
                diff("exists", show(l), show(r));
                absent_roots.insert(p.as_str(), out.len() - 1);
                below.resize(out.len(), 0);
                continue;
            }
        };
        if l.kind != r.kind {
            diff("type", describe(l), describe(r));
            continue;
        }
        diff("mode", format!("{:04o}", l.mode), format!("{:04o}", r.mode));
        diff("uid", l.uid.to_string(), r.uid.to_string());
        diff("gid", l.gid.to_string(), r.gid.to_string());
        match l.kind {
            Kind::File => {
                diff("size", l.size.to_string(), r.size.to_string());
                diff("sha256", l.sha256.clone(), r.sha256.clone());
                diff("hardlinks", left.hardlinks(p).join(" "), right.hardlinks(p).join(" "));
            }
            Kind::Symlink => diff("target", l.target.clone(), r.target.clone()),
            Kind::CharDevice | Kind::BlockDevice => {
                diff("device", format!("{:?}", l.device), format!("{:?}", r.device))
            }
            Kind::Dir | Kind::Fifo => {}
        }
        diff("xattrs", xattrs_text(&l.xattrs), xattrs_text(&r.xattrs));
    }
    for (i, n) in below.into_iter().enumerate().filter(|(_, n)| *n > 0) {
        let d = &mut out[i];
        let side = if d.left == "(absent)" { &mut d.right } else { &mut d.left };
        side.push_str(&format!(" (+{n} paths below)"));
    }
    out
}
