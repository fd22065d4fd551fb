//! Conformance: archway's Dockerfile parser against BuildKit's own parser cases
//! (`../shared/conformance/buildkit-dockerfile-parser`, an unmodified copy of
//! moby/buildkit `frontend/dockerfile/parser` test data). This test reads those files; the
//! parser it checks does no I/O.
//!
//! Every case must pass: there is no skip list. Each test counts the cases it ran, so an empty
//! or misplaced directory fails instead of passing silently.

use std::fs;
use std::path::{Path, PathBuf};

use archway::dockerfile::parse::{dump, parse};

/// Overrides where the BuildKit parser cases are read from (a directory holding `testfiles/`,
/// `testfiles-negative/` and `testfile-line/`).
const CONFORMANCE_DIR_ENV: &str = "ARCHWAY_CONFORMANCE_DIR";

fn data_dir() -> PathBuf {
    match std::env::var_os(CONFORMANCE_DIR_ENV) {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance/buildkit-dockerfile-parser"),
    }
}

/// The case directories under `sub`, sorted.
fn cases(sub: &str) -> Vec<PathBuf> {
    let dir = data_dir().join(sub);
    let entries = fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot list `{}`: {e}", dir.display()));
    let mut out: Vec<PathBuf> = entries.map(|e| e.expect("directory entry").path()).filter(|p| p.is_dir()).collect();
    out.sort();
    out
}

fn name(case: &Path) -> String {
    case.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

fn read(path: &Path) -> Result<String, String> {
    fs::read_to_string(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))
}

/// A line-by-line diff: `-` expected, `+` got.
fn diff(want: &str, got: &str) -> String {
    let want: Vec<&str> = want.lines().collect();
    let got: Vec<&str> = got.lines().collect();
    let mut out = String::new();
    for i in 0..want.len().max(got.len()) {
        let (w, g) = (want.get(i), got.get(i));
        if w != g {
            out.push_str(&format!("  line {}:\n", i + 1));
            if let Some(w) = w {
                out.push_str(&format!("    - {w}\n"));
            }
            if let Some(g) = g {
                out.push_str(&format!("    + {g}\n"));
            }
        }
    }
    out
}

#[test]
fn every_positive_case_dumps_its_expected_result() {
    let cases = cases("testfiles");
    let mut failures = Vec::new();
    for case in &cases {
        let outcome = (|| {
            let text = read(&case.join("Dockerfile"))?;
            let want = read(&case.join("result"))?;
            let parsed = parse(&text).map_err(|e| format!("parse error: {e}"))?;
            let got = dump(&parsed);
            if got == want { Ok(()) } else { Err(format!("dump differs:\n{}", diff(&want, &got))) }
        })();
        if let Err(why) = outcome {
            failures.push(format!("{}: {why}", name(case)));
        }
    }
    assert!(cases.len() > 30, "expected more than 30 cases in `{}`, found {}", data_dir().display(), cases.len());
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

#[test]
fn every_negative_case_is_rejected() {
    let cases = cases("testfiles-negative");
    let mut failures = Vec::new();
    for case in &cases {
        match read(&case.join("Dockerfile")).map(|text| parse(&text)) {
            Err(why) => failures.push(format!("{}: {why}", name(case))),
            Ok(Ok(parsed)) => failures.push(format!("{}: accepted, dump:\n{}", name(case), dump(&parsed))),
            Ok(Err(_)) => {}
        }
    }
    assert!(
        cases.len() >= 4,
        "expected at least 4 negative cases in `{}`, found {}",
        data_dir().display(),
        cases.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} negative cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// The file carries no expectations of its own: BuildKit's `TestParseIncludesLineNumbers`
/// (frontend/dockerfile/parser/parser_test.go) expects the instructions to span lines 5–5,
/// 11–12 and 17–31 (a directive, blank lines, comments, and empty lines inside continuations).
#[test]
fn line_numbers_match_buildkit() {
    let path = data_dir().join("testfile-line/Dockerfile");
    let text = read(&path).unwrap_or_else(|e| panic!("{e}"));
    let parsed = parse(&text).unwrap_or_else(|e| panic!("`{}`: {e}", path.display()));
    let got: Vec<(usize, usize)> = parsed.nodes.iter().map(|n| (n.start_line, n.end_line)).collect();
    assert_eq!(got, [(5, 5), (11, 12), (17, 31)]);
    let instructions: Vec<&str> = parsed.nodes.iter().map(|n| n.instruction.as_str()).collect();
    assert_eq!(instructions, ["from", "env", "run"]);
    assert_eq!(parsed.directives.len(), 1, "`# ESCAPE=\\` is a directive");
}
