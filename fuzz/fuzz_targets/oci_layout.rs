//! The OCI layout reader: what `publish` reads from a layout a builder exported (an index or
//! manifest, nested indexes flattened, each image's config read for its platform, attestation
//! manifests matched to their images).
//!
//! Input: blobs separated by `\0\0`. In blob *i*, `@j@` (a digit *j* > *i*) is replaced with the
//! digest of blob *j*, so the fuzzer can build graphs of blobs that name each other. Each blob is
//! stored under its digest; blob 0 is the top (read as an index, then as a manifest).
#![no_main]
use std::sync::OnceLock;

use archway::oci::{self, Descriptor};
use archway::publish::{self, ImageSource};
use archway::reference::Digest;
use libfuzzer_sys::fuzz_target;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_current_thread().build().unwrap())
}

fn split(data: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some(i) = rest.windows(2).position(|w| w == b"\0\0") {
        out.push(rest[..i].to_vec());
        rest = &rest[i + 2..];
    }
    out.push(rest.to_vec());
    out.truncate(10);
    out
}

fuzz_target!(|data: &[u8]| {
    let mut blobs = split(data);
    let mut digests: Vec<Option<Digest>> = vec![None; blobs.len()];
    for i in (0..blobs.len()).rev() {
        let mut b = blobs[i].clone();
        for (j, d) in digests.iter().enumerate().skip(i + 1) {
            let Some(d) = d else { continue };
            let pat = format!("@{j}@");
            let mut out = Vec::with_capacity(b.len());
            let mut k = 0;
            while k < b.len() {
                if b[k..].starts_with(pat.as_bytes()) {
                    out.extend_from_slice(d.as_str().as_bytes());
                    k += pat.len();
                } else {
                    out.push(b[k]);
                    k += 1;
                }
            }
            b = out;
        }
        digests[i] = Some(Digest::of(&b));
        blobs[i] = b;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("blobs/sha256");
    std::fs::create_dir_all(&store).unwrap();
    for (b, d) in blobs.iter().zip(&digests) {
        std::fs::write(store.join(d.as_ref().unwrap().hex()), b).unwrap();
    }
    let top = digests[0].clone().unwrap();
    let size = blobs[0].len() as u64;
    let src = ImageSource::Layout(dir.path());
    for mt in [oci::OCI_INDEX, oci::OCI_MANIFEST] {
        let d = Descriptor::new(mt, top.clone(), size);
        if let Err(e) = runtime().block_on(publish::resolve(&src, &d)) {
            let _ = (e.to_string(), e.hint());
        }
    }
});
