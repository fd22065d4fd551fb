//! archive: what ADD does beyond COPY. A local tar archive (plain, gzip, bzip2, xz or zstd) is
//! extracted into the destination as moby's `Untar` does (owners, modes and mtimes from the
//! archive — `--chown` only owns the destination directory, as in the lab's BuildKit 0.13 —
//! missing parents 0755, directories merged, nothing may climb out);
//! an `http(s)` URL is downloaded to a file named after the URL's last path component, mode
//! 0600, mtime from `Last-Modified` (else the epoch), checked against `--checksum`. Git URLs
//! are declined.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::copy::{Changes, CopyError, CopyOpts, mkdir_all};
use super::tree::{Content, Kind, Node, Tree, join, parent};

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("`{source_name}`: {detail}")]
    Unreadable { source_name: String, detail: String },
    #[error("archive `{source_name}` holds `{entry}`, which would be written outside `{dest}`")]
    Breakout { source_name: String, entry: String, dest: String },
    #[error(transparent)]
    Copy(#[from] CopyError),
    #[error("downloading `{url}`: {detail}")]
    Download { url: String, detail: String },
    #[error("`{url}`: checksum mismatch: expected {expected}, got {got}")]
    Checksum { url: String, expected: String, got: String },
}

pub use crate::dockerfile::is_git_source;

pub fn is_url(src: &str) -> bool {
    (src.starts_with("http://") || src.starts_with("https://")) && !is_git_source(src)
}

/// A decompressing reader by magic bytes: gzip, bzip2, xz, zstd or plain.
pub fn decompress(path: &Path) -> std::io::Result<Box<dyn Read>> {
    let mut f = std::io::BufReader::with_capacity(256 * 1024, std::fs::File::open(path)?);
    let magic = std::io::BufRead::fill_buf(&mut f)?.to_vec();
    Ok(if magic.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::bufread::MultiGzDecoder::new(f))
    } else if magic.starts_with(b"BZh") {
        Box::new(bzip2::bufread::MultiBzDecoder::new(f))
    } else if magic.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Box::new(liblzma::bufread::XzDecoder::new_multi_decoder(f))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(f)?)
    } else {
        Box::new(f)
    })
}

/// `isArchivePath`: a regular file that decompresses to something with a readable first tar
/// header.
pub fn is_archive(path: &Path) -> bool {
    let Ok(r) = decompress(path) else { return false };
    let mut a = tar::Archive::new(r);
    a.entries().ok().and_then(|mut e| e.next()).is_some_and(|e| e.is_ok())
}

/// Extracts archive `path` into directory `dest` (absolute) of `tree`, its files written under
/// `scratch`. Records what changed.
pub fn extract(
    path: &Path,
    source_name: &str,
    tree: &mut Tree,
    dest: &str,
    opts: &CopyOpts,
    scratch: &Path,
    changes: &mut Changes,
) -> Result<(), ArchiveError> {
    let bad = |detail: String| ArchiveError::Unreadable { source_name: source_name.to_string(), detail };
    let dest = mkdir_all(tree, dest, &CopyOpts { mode: None, ..opts.clone() }, changes)?;
    let mut n = 0usize;
    let reader = decompress(path).map_err(|e| bad(e.to_string()))?;
    let entries = super::base::read_entries(reader, |_, entry| {
        n += 1;
        let out = scratch.join(format!("a{n}"));
        let mut f = std::fs::File::create(&out)?;
        std::io::copy(entry, &mut f)?;
        Ok(Some(Content::Disk(out)))
    })
    .map_err(|e| bad(e.to_string()))?;
    for mut e in entries {
        if e.path.is_empty() {
            continue;
        }
        // tar_path cleaned the name; a `..` that climbed out left it unchanged at the top.
        let target = join(&dest, &e.path);
        let resolved_parent = tree.resolve(parent(&target), true).map_err(CopyError::from)?;
        if !resolved_parent.starts_with(&dest) && resolved_parent != dest {
            return Err(ArchiveError::Breakout {
                source_name: source_name.to_string(),
                entry: e.path,
                dest: format!("/{dest}"),
            });
        }
        let target = join(&resolved_parent, super::tree::base(&target));
        // Missing parents: 0755, root. (BuildKit 0.13, the lab's oracle, leaves the archive's
        // owners as they are even with --chown; only the destination directory takes it.)
        let (uid, gid) = (0, 0);
        let mut cur = String::new();
        for part in parent(&target).split('/').filter(|p| !p.is_empty()) {
            cur = join(&cur, part);
            if tree.get(&cur).is_none_or(|n| !n.is_dir()) {
                tree.remove(&cur);
                tree.insert(&cur, Node::dir(0o755, uid, gid, opts.created_mtime));
                changes.insert(cur.clone());
            }
        }
        if let Some(link) = &e.hardlink {
            let src = join(&dest, link);
            match tree.get(&src) {
                Some(t) if matches!(t.kind, Kind::File { .. }) => {
                    e.node.kind = t.kind.clone();
                    e.node.inode = t.inode;
                    e.node.mode = t.mode;
                }
                _ => {
                    return Err(bad(format!("hard link `{}` to `{link}`, which is not in the archive", e.path)));
                }
            }
        } else if matches!(e.node.kind, Kind::File { .. }) {
            e.node.inode = tree.new_inode();
        }
        let existing_dir = tree.get(&target).is_some_and(Node::is_dir);
        if !(existing_dir && e.node.is_dir()) {
            tree.remove(&target);
        }
        tree.insert(&target, e.node);
        changes.insert(target);
    }
    Ok(())
}

/// A downloaded ADD source.
pub struct Download {
    pub file: PathBuf,
    pub name: String,
    pub size: u64,
    pub mtime: i64,
}

/// Downloads `url` into `dir`; checks `--checksum` (`sha256:…`) when given.
pub async fn download(url: &str, checksum: Option<&str>, dir: &Path) -> Result<Download, ArchiveError> {
    use futures_util::StreamExt as _;
    use sha2::Digest as _;
    use tokio::io::AsyncWriteExt as _;
    let fail = |detail: String| ArchiveError::Download { url: url.to_string(), detail };
    let name = url::Url::parse(url)
        .ok()
        .and_then(|u| u.path_segments().and_then(|mut s| s.next_back().map(String::from)))
        .filter(|b| !b.is_empty() && b != "." && b != "..")
        .unwrap_or_else(|| "__unnamed__".to_string());
    let client = reqwest::Client::builder()
        .user_agent(concat!("archway/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| fail(e.to_string()))?;
    let resp = client.get(url).send().await.map_err(|e| fail(e.without_url().to_string()))?;
    if !resp.status().is_success() {
        return Err(fail(format!("the server answered {}", resp.status())));
    }
    let mtime = resp
        .headers()
        .get(reqwest::header::LAST_MODIFIED)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_http_date)
        .unwrap_or(0);
    let file = dir.join(format!(
        "download-{}",
        sha2::Sha256::digest(url.as_bytes()).iter().take(8).map(|b| format!("{b:02x}")).collect::<String>()
    ));
    let mut out = tokio::fs::File::create(&file).await.map_err(|e| fail(e.to_string()))?;
    let mut hash = sha2::Sha256::new();
    let mut size = 0u64;
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| fail(e.without_url().to_string()))?;
        hash.update(&chunk);
        size += chunk.len() as u64;
        out.write_all(&chunk).await.map_err(|e| fail(e.to_string()))?;
    }
    out.flush().await.map_err(|e| fail(e.to_string()))?;
    if let Some(want) = checksum {
        let got = format!("sha256:{}", hex::encode(hash.finalize()));
        if want != got {
            return Err(ArchiveError::Checksum { url: url.to_string(), expected: want.to_string(), got });
        }
    }
    Ok(Download { file, name, size, mtime })
}

/// An HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`) in seconds since the epoch.
pub fn parse_http_date(s: &str) -> Option<i64> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else { return None };
    let month = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        .iter()
        .position(|m| m == month)? as i64
        + 1;
    let (day, year): (i64, i64) = (day.parse().ok()?, year.parse().ok()?);
    let t: Vec<i64> = time.split(':').map(|x| x.parse().ok()).collect::<Option<_>>()?;
    let [h, mi, se] = t.as_slice() else { return None };
    // The ranges Go's `http.ParseTime` layouts allow (a 4-digit year); nothing larger can
    // overflow the arithmetic below.
    if !(0..=9999).contains(&year) || !(1..=31).contains(&day) || !(0..24).contains(h) || !(0..60).contains(mi) {
        return None;
    }
    if !(0..=60).contains(se) {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Some(days * 86400 + h * 3600 + mi * 60 + se)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_bytes() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, data, mode, kind) in
            [("d/", &b""[..], 0o750, b'5'), ("d/f", &b"hello"[..], 0o600, b'0'), ("top", &b"t"[..], 0o644, b'0')]
        {
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(tar::EntryType::new(kind));
            h.set_path(path).unwrap();
            h.set_mode(mode);
            h.set_uid(7);
            h.set_gid(8);
            h.set_mtime(1234);
            h.set_size(data.len() as u64);
            h.set_cksum();
            b.append(&h, data).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn extracts_every_compression() {
        let dir = tempfile::tempdir().unwrap();
        let raw = tar_bytes();
        let mut files = vec![("plain.tar", raw.clone())];
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &raw).unwrap();
        files.push(("a.tar.gz", gz.finish().unwrap()));
        let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        std::io::Write::write_all(&mut bz, &raw).unwrap();
        files.push(("a.tar.bz2", bz.finish().unwrap()));
        let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 1);
        std::io::Write::write_all(&mut xz, &raw).unwrap();
        files.push(("a.tar.xz", xz.finish().unwrap()));
        files.push(("a.tar.zst", zstd::encode_all(&raw[..], 1).unwrap()));
        files.push(("not.txt", b"just text".to_vec()));
        for (name, bytes) in files {
            let p = dir.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            if name == "not.txt" {
                assert!(!is_archive(&p));
                continue;
            }
            assert!(is_archive(&p), "{name}");
            let mut t = Tree::new();
            let mut changes = Changes::new();
            extract(&p, name, &mut t, "/x/y", &CopyOpts::default(), dir.path(), &mut changes).unwrap();
            let f = t.get("x/y/d/f").unwrap();
            assert_eq!((f.mode, f.uid, f.gid, f.mtime), (0o600, 7, 8, 1234), "{name}");
            assert_eq!(t.get("x/y/d").unwrap().mode, 0o750);
            assert_eq!(changes.into_iter().collect::<Vec<_>>(), ["x", "x/y", "x/y/d", "x/y/d/f", "x/y/top"]);
        }
    }

    #[test]
    fn urls_and_dates() {
        assert!(is_git_source("https://github.com/moby/buildkit.git#v0.13"));
        assert!(is_git_source("git@github.com:moby/buildkit.git"));
        assert!(!is_git_source("https://example.com/a.tar.gz"));
        assert!(is_url("https://example.com/a.tar.gz"));
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(784111777));
        assert_eq!(parse_http_date("nonsense"), None);
        // Found by the `retry_after` fuzz target: a huge year or hour overflowed the arithmetic.
        assert_eq!(parse_http_date("Sun, 06 Nov 9223372036854775807 08:49:37 GMT"), None);
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 9223372036854775807:49:37 GMT"), None);
        assert_eq!(parse_http_date("Sun, -9223372036854775807 Nov 1994 08:49:37 GMT"), None);
    }
}
