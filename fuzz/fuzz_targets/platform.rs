//! Platform lists (`--platform`, the `platforms` input): `platform::parse_list`, the input list
//! parser and `Platform::from_str`; a platform that parses prints back as itself.
#![no_main]
use archway::inputs::lists;
use archway::platform::{self, Platform};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(list) = platform::parse_list(text) {
        for p in list {
            let shown = p.to_string();
            let again: Platform = shown.parse().unwrap_or_else(|e| panic!("{text:?}: {shown:?} does not parse: {e}"));
            assert_eq!(again, p, "{text:?}: {shown:?}");
            let _ = p.slug();
        }
    }
    let _ = text.parse::<Platform>();
    let _ = lists::platforms("--platform", &[text.to_string()], Some(lists::DEFAULT_PLATFORMS));
});
