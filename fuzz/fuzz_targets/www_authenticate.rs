//! `WWW-Authenticate` challenges (`Bearer realm=…,service=…,scope=…`, `Basic realm=…`).
#![no_main]
use archway::registry::auth::{Challenge, parse_challenge};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Some(Challenge::Bearer { realm, params }) = parse_challenge(text) {
        let _ = (realm.len(), params.len());
    }
});
