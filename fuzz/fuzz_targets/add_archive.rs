//! `ADD archive.tar[.gz|.bz2|.xz|.zst] /dest/`: the archive sniffed (`is_archive`), decompressed
//! and extracted onto a tree that already holds a few files and a symlink, with the breakout
//! checks (`archive::extract`).
#![no_main]
use archway::builder::assemble::archive;
use archway::builder::assemble::copy::{Changes, CopyOpts};
use archway::builder::assemble::tree::{Content, Kind, Node, Tree};
use libfuzzer_sys::fuzz_target;

fn file(data: &'static [u8]) -> Node {
    Node {
        kind: Kind::File { size: data.len() as u64, content: Content::Bytes(std::sync::Arc::new(data.to_vec())) },
        mode: 0o644,
        uid: 0,
        gid: 0,
        mtime: 0,
        inode: 0,
        xattrs: Vec::new(),
    }
}

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("src.tar");
    std::fs::write(&path, data).unwrap();
    if !archive::is_archive(&path) {
        return;
    }
    let scratch = dir.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    let mut tree = Tree::new();
    tree.insert("etc", Node::dir(0o755, 0, 0, 0));
    tree.insert("etc/passwd", file(b"root:x:0:0::/root:/bin/sh\n"));
    tree.insert("app", Node::dir(0o755, 0, 0, 0));
    tree.insert("app/up", Node { kind: Kind::Symlink("../etc".into()), ..file(b"") });
    let mut changes = Changes::new();
    let opts = CopyOpts { created_mtime: 1, ..CopyOpts::default() };
    if let Err(e) = archive::extract(&path, "src.tar", &mut tree, "/app/", &opts, &scratch, &mut changes) {
        let _ = e.to_string();
    }
});
