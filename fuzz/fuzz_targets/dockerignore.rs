//! `.dockerignore` as the assembler reads it (BuildKit's `ignorefile.ReadAll` and
//! patternmatcher): the file's patterns compiled, then matched against paths, with and without
//! parent results, and the skip-directory shortcut.
//!
//! Input: the ignore file, then `\0`, then paths to match, one a line.
#![no_main]
use archway::builder::assemble::ignore::{MatchInfo, Matcher, read_ignore_file};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (file, paths) = text.split_once('\0').unwrap_or((text, "a/b/c.txt\nnode_modules/x\n.git/HEAD\nDockerfile"));
    let patterns = read_ignore_file(file);
    let Ok(m) = Matcher::new(&patterns) else { return };
    let _ = (m.is_empty(), m.has_exclusions());
    for p in paths.lines().take(16) {
        let _ = m.matches(p);
        let _ = m.can_skip_dir(p);
        // Walk the path's directories as the context loader does, passing parent results down.
        let mut info = MatchInfo::default();
        let mut cur = String::new();
        for part in p.split('/') {
            cur = if cur.is_empty() { part.to_string() } else { format!("{cur}/{part}") };
            let (_, next) = m.matches_with_parent(&cur, &info);
            info = next;
        }
    }
});
