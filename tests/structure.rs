//! The shape of the source tree, as DESIGN.md draws it: checked by reading the files. Lab-free.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// Only `inputs` reads the process environment: every other stage gets what it needs from the
/// request, so a test can give it any environment and `plan` and `build` cannot disagree.
#[test]
fn only_inputs_reads_the_environment() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    // What reads variables, arguments or the executable's path, directly or through a crate's
    // own environment lookup.
    let readers = [
        "env::var(",
        "env::var_os(",
        "env::vars(",
        "env::vars_os(",
        "env::args(",
        "env::args_os(",
        "env::current_exe(",
        "env::temp_dir(",
        "env::home_dir(",
        "from_env(",
        "try_from_env(",
        "connect_with_defaults(",
        "connect_with_local_defaults(",
        "connect_with_socket_defaults(",
    ];
    let mut found = Vec::new();
    for f in rust_files(&src) {
        if f.starts_with(src.join("inputs")) {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for r in readers {
                if code.contains(r) && !code.contains("tempfile::env::temp_dir(") {
                    found.push(format!("{}:{}: {}", f.strip_prefix(&src).unwrap().display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(found.is_empty(), "read the environment in `inputs` and pass the value down:\n{}", found.join("\n"));
}

/// Each subcommand is a short list of stage calls.
#[test]
fn commands_are_thin() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/commands");
    for f in rust_files(&dir) {
        let lines = std::fs::read_to_string(&f).unwrap().lines().filter(|l| !l.trim().is_empty()).count();
        assert!(lines <= 80, "{} has {lines} lines; move the work into its stage", f.display());
    }
}
