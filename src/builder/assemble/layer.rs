//! layer: deterministic layer tars, byte for byte as BuildKit's differ writes them (Go's
//! `archive/tar` with containerd's headers: USTAR when every field fits, PAX records
//! otherwise, `PaxHeaders.0/` names, no user or group names, mtimes truncated to seconds, two
//! zero blocks at the end and no record padding), and their compression.
//!
//! A layer is a sorted list of entries; its tar is produced twice when needed: once into a hash
//! only (the diff_id, to find a layer that already exists) and once through the compressor into
//! the blob. The same entries give the same bytes on every run and machine.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::path::Path;

use sha2::{Digest as _, Sha256};

use super::tree::{Content, Kind, Node};
use crate::reference::Digest;

const BLOCK: usize = 512;

/// How layer blobs are compressed (`--compression`, `--compression-level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    Gzip,
    Zstd,
}

impl Compression {
    pub fn parse(s: &str) -> Option<Compression> {
        match s.trim().to_ascii_lowercase().as_str() {
            "gzip" => Some(Compression::Gzip),
            "zstd" => Some(Compression::Zstd),
            _ => None,
        }
    }

    pub fn media_type(self) -> &'static str {
        match self {
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }

    /// The level when none is given: gzip's fastest (the measurements: BuildKit's
    /// default level is what makes it slow), zstd's default.
    pub fn default_level(self) -> i32 {
        match self {
            Compression::Gzip => 1,
            Compression::Zstd => 3,
        }
    }
}

/// One entry of a layer: a path (relative, no trailing `/`) and its node. A file whose `link`
/// is set is written as a hard link to that earlier path of the same layer.
#[derive(Debug, Clone)]
pub struct Entry {
    pub path: String,
    pub node: Node,
    pub link: Option<String>,
}

/// Sorts entries in the order a directory walk visits them (component by component, each
/// directory's children by name), the order BuildKit's differ writes.
pub fn sort_entries(entries: &mut [Entry]) {
    entries.sort_by(|a, b| a.path.split('/').cmp(b.path.split('/')));
}

/// Turns entries into hard links where files share an inode: the first in order keeps its
/// content, the later ones link to it.
pub fn link_hardlinks(entries: &mut [Entry]) {
    let mut first: HashMap<u64, String> = HashMap::new();
    for e in entries.iter_mut() {
        if let Kind::File { .. } = e.node.kind {
            if e.node.inode == 0 {
                continue;
            }
            match first.get(&e.node.inode) {
                Some(p) => e.link = Some(p.clone()),
                None => {
                    first.insert(e.node.inode, e.path.clone());
                }
            }
        }
    }
}

/// Reads the bytes of a file entry.
fn open(content: &Content) -> io::Result<Box<dyn Read + '_>> {
    match content {
        Content::Bytes(b) => Ok(Box::new(&b[..])),
        Content::Disk(p) => {
            use std::os::unix::fs::OpenOptionsExt as _;
            // Never follow a symlink swapped in after the context was read.
            let f = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(p)?;
            Ok(Box::new(f))
        }
        Content::Layer { entry, .. } => Err(io::Error::other(format!("`{entry}` was not extracted from its layer"))),
    }
}

/// Writes the tar of `entries` (already sorted) to `out`.
pub fn write_tar(entries: &[Entry], out: &mut dyn Write) -> io::Result<()> {
    for e in entries {
        let mut header = Header::for_entry(e);
        let data: Option<(&Content, u64)> = match (&e.node.kind, &e.link) {
            (Kind::File { size, content }, None) => Some((content, *size)),
            _ => None,
        };
        if let Some((_, size)) = data {
            header.size = size;
        }
        header.write(out)?;
        if let Some((content, size)) = data {
            let mut r = open(content)?.take(size);
            let copied = io::copy(&mut r, out)?;
            if copied != size {
                return Err(io::Error::other(format!(
                    "`{}` changed while it was read ({copied} of {size} bytes)",
                    e.path
                )));
            }
            pad(out, size)?;
        }
    }
    out.write_all(&[0u8; BLOCK * 2])
}

fn pad(out: &mut dyn Write, size: u64) -> io::Result<()> {
    let rem = (size % BLOCK as u64) as usize;
    if rem != 0 {
        out.write_all(&vec![0u8; BLOCK - rem])?;
    }
    Ok(())
}

/// A writer that only hashes and counts.
pub struct HashWriter<W> {
    pub inner: W,
    pub hash: Sha256,
    pub len: u64,
}

impl<W: Write> HashWriter<W> {
    pub fn new(inner: W) -> Self {
        HashWriter { inner, hash: Sha256::new(), len: 0 }
    }
    pub fn digest(&self) -> Digest {
        format!("sha256:{}", hex::encode(self.hash.clone().finalize())).parse().expect("a sha256 digest")
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The diff_id of a layer: sha256 of its uncompressed tar, computed without storing it.
pub fn diff_id(entries: &[Entry]) -> io::Result<(Digest, u64)> {
    let mut w = HashWriter::new(io::sink());
    write_tar(entries, &mut io::BufWriter::with_capacity(256 * 1024, &mut w))?;
    Ok((w.digest(), w.len))
}

/// A compressed layer blob as written.
#[derive(Debug, Clone)]
pub struct Blob {
    pub digest: Digest,
    pub size: u64,
    pub diff_id: Digest,
    pub media_type: &'static str,
}

/// Writes the compressed tar of `entries` to `path` and returns its digest and size; checks
/// that the uncompressed bytes still hash to `diff_id`.
pub fn write_blob(
    entries: &[Entry],
    diff_id: &Digest,
    compression: Compression,
    level: i32,
    path: &Path,
) -> io::Result<Blob> {
    let file = std::fs::File::create(path)?;
    let mut hashed = HashWriter::new(io::BufWriter::with_capacity(256 * 1024, file));
    let raw_digest = match compression {
        Compression::Gzip => {
            let level = flate2::Compression::new(level.clamp(0, 9) as u32);
            let mut gz = flate2::GzBuilder::new().write(&mut hashed, level);
            let mut raw = HashWriter::new(&mut gz);
            write_tar(entries, &mut io::BufWriter::with_capacity(256 * 1024, &mut raw))?;
            let d = raw.digest();
            gz.try_finish()?;
            d
        }
        Compression::Zstd => {
            let mut z = zstd::stream::Encoder::new(&mut hashed, level)?;
            let mut raw = HashWriter::new(&mut z);
            write_tar(entries, &mut io::BufWriter::with_capacity(256 * 1024, &mut raw))?;
            let d = raw.digest();
            z.finish()?;
            d
        }
    };
    hashed.flush()?;
    if &raw_digest != diff_id {
        return Err(io::Error::other("a layer's files changed while it was written"));
    }
    Ok(Blob { digest: hashed.digest(), size: hashed.len, diff_id: raw_digest, media_type: compression.media_type() })
}

// ---------------------------------------------------------------------------------------------
// Go's archive/tar headers

struct Header {
    name: String,
    linkname: String,
    typeflag: u8,
    mode: u64,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: i64,
    devmajor: u64,
    devminor: u64,
    /// PAX records that are not about fields (`SCHILY.xattr.*`); values are bytes.
    records: Vec<(String, Vec<u8>)>,
}

/// The one extended attribute a layer keeps, as BuildKit's do.
const KEPT_XATTR: &str = "security.capability";

impl Header {
    fn for_entry(e: &Entry) -> Header {
        let n = &e.node;
        let (typeflag, linkname, devmajor, devminor) = match (&n.kind, &e.link) {
            (Kind::Dir, _) => (b'5', String::new(), 0, 0),
            (Kind::File { .. }, Some(l)) => (b'1', l.clone(), 0, 0),
            (Kind::File { .. }, None) => (b'0', String::new(), 0, 0),
            (Kind::Symlink(t), _) => (b'2', t.clone(), 0, 0),
            (Kind::Special { typeflag, major, minor }, _) => (*typeflag, String::new(), *major as u64, *minor as u64),
        };
        let name = if n.is_dir() { format!("{}/", e.path) } else { e.path.clone() };
        // BuildKit's layers carry file capabilities and nothing else of a file's extended
        // attributes (containerd's tar writer keeps only `security.capability`): the same here.
        let records = n
            .xattrs
            .iter()
            .filter(|(k, _)| k.as_str() == KEPT_XATTR)
            .map(|(k, v)| (format!("SCHILY.xattr.{k}"), v.clone()))
            .collect();
        Header {
            name,
            linkname,
            typeflag,
            mode: (n.mode & 0o7777) as u64,
            uid: n.uid,
            gid: n.gid,
            size: 0,
            mtime: n.mtime,
            devmajor,
            devminor,
            records,
        }
    }

    fn write(&self, out: &mut dyn Write) -> io::Result<()> {
        let mut pax: Vec<(String, Vec<u8>)> = self.records.clone();
        let name_fits = fits_string(&self.name, 100) || split_ustar(&self.name).is_some();
        if !name_fits {
            pax.push(("path".into(), self.name.clone().into_bytes()));
        }
        if !fits_string(&self.linkname, 100) {
            pax.push(("linkpath".into(), self.linkname.clone().into_bytes()));
        }
        for (key, v, width) in [("uid", self.uid, 8), ("gid", self.gid, 8), ("size", self.size, 12)] {
            if !fits_octal(v as i64, width) {
                pax.push((key.into(), v.to_string().into_bytes()));
            }
        }
        if !fits_octal(self.mtime, 12) {
            pax.push(("mtime".into(), self.mtime.to_string().into_bytes()));
        }
        if pax.is_empty() {
            // USTAR, with the name split into prefix and name when it is long.
            let mut b = [0u8; BLOCK];
            let (prefix, name) = match split_ustar(&self.name) {
                Some((p, n)) => (p, n),
                None => ("", self.name.as_str()),
            };
            self.fill(&mut b, name);
            put_str(&mut b[345..500], prefix);
            finish(&mut b);
            return out.write_all(&b);
        }
        pax.sort();
        let mut data = Vec::new();
        for (k, v) in &pax {
            data.extend(pax_record(k, v));
        }
        let (dir, file) = match self.name.rfind('/') {
            Some(i) => (&self.name[..=i], &self.name[i + 1..]),
            None => ("", self.name.as_str()),
        };
        let pax_name = super::glob::clean(&format!("{dir}PaxHeaders.0/{file}"));
        let mut pax_name = to_ascii(&pax_name);
        pax_name.truncate(100);
        let pax_name = pax_name.trim_end_matches('/');
        let mut b = [0u8; BLOCK];
        put_str(&mut b[0..100], pax_name);
        put_octal(&mut b[100..108], 0);
        put_octal(&mut b[108..116], 0);
        put_octal(&mut b[116..124], 0);
        put_octal(&mut b[124..136], data.len() as i64);
        put_octal(&mut b[136..148], 0);
        b[156] = b'x';
        finish(&mut b);
        out.write_all(&b)?;
        out.write_all(&data)?;
        pad(out, data.len() as u64)?;
        let mut b = [0u8; BLOCK];
        let name = to_ascii(&self.name);
        self.fill(&mut b, &name);
        finish(&mut b);
        out.write_all(&b)
    }

    /// The V7 and USTAR fields Go's `templateV7Plus` fills.
    fn fill(&self, b: &mut [u8; BLOCK], name: &str) {
        put_str(&mut b[0..100], name);
        put_octal(&mut b[100..108], self.mode as i64);
        put_octal(&mut b[108..116], self.uid as i64);
        put_octal(&mut b[116..124], self.gid as i64);
        put_octal(&mut b[124..136], self.size as i64);
        put_octal(&mut b[136..148], self.mtime);
        b[156] = self.typeflag;
        put_str(&mut b[157..257], &to_ascii(&self.linkname));
        put_octal(&mut b[329..337], self.devmajor as i64);
        put_octal(&mut b[337..345], self.devminor as i64);
    }
}

/// Magic, version and checksum (`%06o\0 `, computed with the field as spaces).
fn finish(b: &mut [u8; BLOCK]) {
    b[257..263].copy_from_slice(b"ustar\0");
    b[263..265].copy_from_slice(b"00");
    b[148..156].copy_from_slice(b"        ");
    let sum: u64 = b.iter().map(|&x| x as u64).sum();
    let s = format!("{sum:06o}");
    b[148..154].copy_from_slice(s.as_bytes());
    b[154] = 0;
    b[155] = b' ';
}

fn fits_string(s: &str, width: usize) -> bool {
    s.is_ascii() && s.len() <= width
}

/// Go's `fitsInOctal`: the value and a terminating NUL fit.
fn fits_octal(v: i64, width: u32) -> bool {
    v >= 0 && (width >= 22 || v < 1i64 << (3 * (width - 1)))
}

/// Go's `splitUSTARPath`.
fn split_ustar(name: &str) -> Option<(&str, &str)> {
    let len = name.len();
    if len <= 100 || !name.is_ascii() {
        return None;
    }
    let mut length = len;
    if length > 156 {
        length = 156;
    } else if name.as_bytes()[length - 1] == b'/' {
        length -= 1;
    }
    let i = name[..length].rfind('/')?;
    let nlen = len - i - 1;
    if i == 0 || nlen > 100 || nlen == 0 || i > 155 {
        return None;
    }
    Some((&name[..i], &name[i + 1..]))
}

fn to_ascii(s: &str) -> String {
    s.chars().filter(char::is_ascii).collect()
}

fn put_str(field: &mut [u8], s: &str) {
    let n = s.len().min(field.len());
    field[..n].copy_from_slice(&s.as_bytes()[..n]);
    if n < field.len() {
        field[n] = 0;
    }
}

/// Zero-padded octal and a NUL; a value that does not fit is written as 0 (its PAX record
/// holds it).
fn put_octal(field: &mut [u8], v: i64) {
    let v = if fits_octal(v, field.len() as u32) { v } else { 0 };
    let s = format!("{v:0width$o}", width = field.len() - 1);
    put_str(field, &s);
}

/// `"%d %s=%s\n"` where the length counts itself.
fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let size = key.len() + value.len() + 3;
    let mut total = size + size.to_string().len();
    if total.to_string().len() != size.to_string().len() {
        total = size + total.to_string().len();
    }
    let mut r = format!("{total} {key}=").into_bytes();
    r.extend_from_slice(value);
    r.push(b'\n');
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn file(bytes: &[u8], mode: u32, mtime: i64) -> Node {
        Node {
            kind: Kind::File { size: bytes.len() as u64, content: Content::Bytes(Arc::new(bytes.to_vec())) },
            mode,
            uid: 0,
            gid: 0,
            mtime,
            inode: 0,
            xattrs: vec![],
        }
    }

    fn entry(path: &str, node: Node) -> Entry {
        Entry { path: path.into(), node, link: None }
    }

    /// The `COPY link hard.txt l* ü* /misc/` layer buildx wrote in the lab (BuildKit 0.13),
    /// rebuilt from the same metadata: the same bytes, so the same diff_id.
    #[test]
    fn same_bytes_as_buildkit() {
        let long = "l".repeat(150);
        let mut entries = vec![
            entry("misc", Node::dir(0o755, 0, 0, 1796032150)),
            entry("misc/hard.txt", file(b"hello\n", 0o644, 1796032149)),
            entry("misc/link", file(b"hello\n", 0o644, 1796032149)),
            entry(&format!("misc/{long}"), file(b"x", 0o644, 1796032149)),
            entry("misc/ünï.txt", file(b"u\n", 0o644, 1796032149)),
        ];
        sort_entries(&mut entries);
        let (d, len) = diff_id(&entries).unwrap();
        assert_eq!(len, 7680);
        assert_eq!(d.to_string(), "sha256:4f94c819e78b656e41e81da0dbb4112d733473c3ddca580a992546766894c877");
        // An empty layer (an existing WORKDIR) is two zero blocks.
        assert_eq!(
            diff_id(&[]).unwrap().0.to_string(),
            "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"
        );
    }

    #[test]
    fn walk_order_hard_links_and_symlinks() {
        let mut entries = vec![
            entry("a.txt", file(b"1", 0o644, 0)),
            entry("a/b", file(b"2", 0o644, 0)),
            entry("a", Node::dir(0o755, 0, 0, 0)),
        ];
        sort_entries(&mut entries);
        let order: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(order, ["a", "a/b", "a.txt"]);

        let mut one = file(b"h\n", 0o644, 0);
        one.inode = 7;
        let mut entries = vec![
            entry("hl", Node::dir(0o755, 0, 0, 0)),
            entry("hl/one", one.clone()),
            entry("hl/sym", Node { kind: Kind::Symlink("one".into()), ..Node::dir(0o777, 0, 0, 0) }),
            entry("hl/two", one),
        ];
        link_hardlinks(&mut entries);
        let mut out = Vec::new();
        write_tar(&entries, &mut out).unwrap();
        let mut a = tar::Archive::new(&out[..]);
        let got: Vec<(String, u8, String, u64)> = a
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().display().to_string(),
                    h.entry_type().as_byte(),
                    h.link_name().unwrap().map(|l| l.display().to_string()).unwrap_or_default(),
                    h.size().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("hl/".into(), b'5', String::new(), 0),
                ("hl/one".into(), b'0', String::new(), 2),
                ("hl/sym".into(), b'2', "one".into(), 0),
                ("hl/two".into(), b'1', "hl/one".into(), 0),
            ]
        );
    }

    #[test]
    fn only_file_capabilities_of_the_xattrs_are_kept() {
        let mut n = file(b"x", 0o755, 0);
        n.xattrs = vec![
            ("security.capability".to_string(), vec![1, 0, 0, 2]),
            ("user.mime_type".to_string(), b"text/plain".to_vec()),
        ];
        let mut tar = Vec::new();
        write_tar(&[entry("bin/ping", n)], &mut tar).unwrap();
        let text = String::from_utf8_lossy(&tar);
        assert!(text.contains("SCHILY.xattr.security.capability"), "capabilities stay, as in BuildKit's layers");
        assert!(!text.contains("user.mime_type"), "other xattrs are dropped, as BuildKit does");
    }

    #[test]
    fn compresses_deterministically() {
        let entries = vec![entry("f", file(&vec![7u8; 100_000], 0o600, 1))];
        let dir = tempfile::tempdir().unwrap();
        let (d, _) = diff_id(&entries).unwrap();
        for c in [Compression::Gzip, Compression::Zstd] {
            let a = write_blob(&entries, &d, c, c.default_level(), &dir.path().join("a")).unwrap();
            let b = write_blob(&entries, &d, c, c.default_level(), &dir.path().join("b")).unwrap();
            assert_eq!(a.digest, b.digest);
            assert_eq!(Digest::of(&std::fs::read(dir.path().join("a")).unwrap()), a.digest);
            assert!(a.size < 10_000, "{c:?}: {}", a.size);
        }
        assert_eq!(pax_record("path", b"x"), b"9 path=x\n");
        assert_eq!(
            pax_record("path", "a".repeat(94).as_bytes()),
            format!("104 path={}\n", "a".repeat(94)).into_bytes()
        );
    }
}
