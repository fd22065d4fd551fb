//! The CI environments recorded on real runners (`tests/fixtures/ci/NAME.json`, and the event
//! payload `NAME.event.json` where the CI has one).

use std::path::{Path, PathBuf};

use archway::ci::Env;

pub fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ci")
}

/// The environment recorded as `name`.
pub fn fixture(name: &str) -> Env {
    let text = std::fs::read_to_string(fixture_dir().join(format!("{name}.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Its event payload, when there is one.
pub fn event(name: &str) -> Option<String> {
    std::fs::read_to_string(fixture_dir().join(format!("{name}.event.json"))).ok()
}
