//! Base-image layers as the assembler reads them: a blob (plain, gzip or zstd tar) opened by its
//! magic bytes, its entries read, whiteouts and hard links applied to the root filesystem tree
//! (`base::index`), and single files extracted (`base::extract`, how `/etc/passwd` is read).
//!
//! Input: one or two layers (bottom first), separated by `\0LAYER\0`.
#![no_main]
use std::collections::HashSet;
use std::path::PathBuf;

use archway::builder::assemble::base;
use libfuzzer_sys::fuzz_target;

const SEP: &[u8] = b"\0LAYER\0";

fuzz_target!(|data: &[u8]| {
    let parts: Vec<&[u8]> = match data.windows(SEP.len()).position(|w| w == SEP) {
        Some(i) => vec![&data[..i], &data[i + SEP.len()..]],
        None => vec![data],
    };
    let dir = tempfile::tempdir().unwrap();
    let mut layers: Vec<(PathBuf, String)> = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let path = dir.path().join(format!("layer{i}"));
        std::fs::write(&path, p).unwrap();
        layers.push((path, "application/vnd.oci.image.layer.v1.tar".into()));
    }
    if let Ok(tree) = base::index(&layers) {
        let files: HashSet<String> = tree.walk("").map(|(p, _)| p.clone()).take(4).collect();
        let out = dir.path().join("x");
        std::fs::create_dir(&out).unwrap();
        let wanted: HashSet<String> = files.into_iter().chain(["etc/passwd".to_string()]).collect();
        let _ = base::extract(&layers[0].0, &wanted, &out);
    }
});
