//! Response headers the registry client acts on besides `WWW-Authenticate`: `Retry-After`
//! (seconds or an HTTP date), Docker Hub's `RateLimit-*`, and `Last-Modified` (the mtime of an
//! `ADD <url>` file).
//!
//! Input: the header value (the same bytes are tried as each header).
#![no_main]
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use archway::builder::assemble::archive::parse_http_date;
use archway::registry::{RateLimit, retry_after};
use libfuzzer_sys::fuzz_target;
use reqwest::header::{HeaderMap, HeaderValue};

fuzz_target!(|data: &[u8]| {
    let Ok(value) = HeaderValue::from_bytes(data) else { return };
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let mut h = HeaderMap::new();
    h.insert("retry-after", value.clone());
    let _ = retry_after(&h, now);
    let _ = retry_after(&h, SystemTime::UNIX_EPOCH);
    let mut h = HeaderMap::new();
    h.insert("ratelimit-remaining", value.clone());
    h.insert("ratelimit-limit", value.clone());
    if let Some(r) = RateLimit::parse(&h) {
        let _ = r.is_low();
    }
    let mut h = HeaderMap::new();
    h.insert("ratelimit-remaining", HeaderValue::from_static("3"));
    h.insert("ratelimit-limit", value.clone());
    if let Some(r) = RateLimit::parse(&h) {
        let _ = r.is_low();
    }
    if let Ok(s) = value.to_str() {
        let _ = parse_http_date(s);
    }
});
