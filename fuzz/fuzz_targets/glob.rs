//! Go's `filepath.Match` as the assembler has it (COPY sources, `--exclude`, ignore patterns),
//! `validate`, `has_wildcards` and `clean`.
//!
//! Input: the pattern, then `\0`, then the name.
#![no_main]
use archway::builder::assemble::glob;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (pattern, name) = text.split_once('\0').unwrap_or((text, text));
    let valid = glob::validate(pattern).is_ok();
    if let Ok(m) = glob::matches(pattern, name) {
        let _ = m;
        assert!(valid, "{pattern:?} matched {name:?} but does not validate");
    }
    let _ = glob::has_wildcards(pattern);
    let c = glob::clean(name);
    assert_eq!(glob::clean(&c), c, "clean is idempotent for {name:?}");
});
