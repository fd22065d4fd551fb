//! `/etc/passwd` and `/etc/group` as the assembler reads them for `--chown` and `USER`.
//!
//! Input: the first line is the `user[:group]` spec, the rest the file's text.
#![no_main]
use archway::builder::assemble::base::{group_id, passwd_ids};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (spec, file) = text.split_once('\n').unwrap_or((&text, ""));
    let (user, group) = spec.split_once(':').unwrap_or((spec, spec));
    let _ = passwd_ids(file, user);
    let _ = group_id(file, group);
    let _ = passwd_ids(file, "root");
});
