//! Image references and digests: `Reference::from_str`, the `-t` list parser, digest files; a
//! reference that parses prints back as itself (parse ∘ display is the identity).
#![no_main]
use archway::inputs::lists;
use archway::publish::merge::parse_digest_text;
use archway::reference::{Digest, Reference};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(r) = text.parse::<Reference>() {
        let (_, _, _) = (r.name(), r.selector(), r.repository_only());
        let shown = r.to_string();
        let again: Reference =
            shown.parse().unwrap_or_else(|e| panic!("{text:?} parsed, but its display {shown:?} does not: {e}"));
        assert_eq!(again, r, "{text:?} → {shown:?} parses differently");
        let _ = archway::reference::docker_config_key(&r.registry);
        let _ = archway::reference::api_host(&r.registry);
    }
    let _ = text.parse::<Digest>();
    let _ = lists::tags("-t", &[text.to_string()]);
    let _ = lists::pairs("--label", &[text.to_string()]);
    let repo: Reference = "127.0.0.1:5000/a/b".parse().unwrap();
    let _ = parse_digest_text(text, &repo);
});
