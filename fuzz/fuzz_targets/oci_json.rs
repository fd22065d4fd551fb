//! Manifest, index and config JSON as read from registries and layouts: archway's serde types,
//! the media-type sniffer, the assembler's reading of a base image's config, and the bytes an
//! index is written back as (which must read again as the same index).
#![no_main]
use archway::builder::assemble::config::Image;
use archway::oci::{self, Descriptor, ImageConfig, ImageManifest, Index};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = oci::media_type_of(data, None);
    let _ = oci::media_type_of(data, Some(oci::OCI_MANIFEST));
    if let Ok(idx) = serde_json::from_slice::<Index>(data) {
        for d in &idx.manifests {
            let _ = (d.platform.as_ref().map(|p| p.platform()), d.is_attestation(), d.bare());
        }
        let bytes = idx.to_bytes();
        let again: Index = serde_json::from_slice(&bytes).expect("an index archway wrote reads back");
        assert_eq!(again.to_bytes(), bytes, "index bytes are stable");
    }
    if let Ok(m) = serde_json::from_slice::<ImageManifest>(data) {
        let _ = m.layers.iter().map(|l| l.size).fold(0u64, |a, b| a.saturating_add(b));
    }
    let _ = serde_json::from_slice::<ImageConfig>(data);
    let _ = serde_json::from_slice::<Descriptor>(data);
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        let mut img = Image::from_base(&v);
        let _ = img.env("PATH");
        img.set_env("PATH", "/usr/bin");
        img.commit("fuzz".into(), true);
        let _ = img.to_json("2024-01-01T00:00:00Z");
    }
});
