//! Validates JSON documents against the OCI image-spec JSON Schemas (draft-04) kept in
//! `../shared/conformance/oci-image-spec-schema` (override: `ARCHWAY_OCI_SCHEMA_DIR`).
//!
//! Everything is resolved from local files: the helper schemas are registered under every URL
//! the other files `$ref` them by, and the retriever refuses any other URL instead of fetching
//! it (jsonschema is also built without its `resolve-http`/`resolve-file` features).
//!
//! The schemas accept any `<algorithm>:<encoded>` digest, `sha256:xyz` included, so
//! [`validate`] adds the OCI spec's rule for the registered algorithms (`sha256`: 64, `sha512`:
//! 128 lowercase hex digits) on top. [`schema_errors`] is the schema alone.

use std::path::PathBuf;
use std::sync::OnceLock;

use jsonschema::{Draft, Retrieve, Uri, Validator};
use serde_json::Value;

/// Which OCI document a JSON value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An image index (`application/vnd.oci.image.index.v1+json`), also an OCI layout's `index.json`.
    Index,
    /// An image manifest (`application/vnd.oci.image.manifest.v1+json`).
    Manifest,
    /// An image config (`application/vnd.oci.image.config.v1+json`).
    Config,
    /// An OCI layout's `oci-layout` file.
    Layout,
    /// A content descriptor on its own.
    Descriptor,
}

impl Kind {
    pub const ALL: [Kind; 5] = [Kind::Index, Kind::Manifest, Kind::Config, Kind::Layout, Kind::Descriptor];

    /// The schema file for this kind.
    pub fn file(self) -> &'static str {
        match self {
            Kind::Index => "image-index-schema.json",
            Kind::Manifest => "image-manifest-schema.json",
            Kind::Config => "config-schema.json",
            Kind::Layout => "image-layout-schema.json",
            Kind::Descriptor => "content-descriptor.json",
        }
    }

    fn slot(self) -> usize {
        self as usize
    }
}

/// The files other files `$ref`, with the absolute URLs those references resolve to.
///
/// A relative `$ref` resolves against the nearest enclosing `id` (draft-04 ignores an `id` that
/// sits beside a `$ref`, as in the `annotations` properties), so the same relative name lands on
/// different URLs:
/// - `image-index-schema.json`, `image-manifest-schema.json` and `config-schema.json` have ids
///   under `https://opencontainers.org/schema/image/…`, so `defs-descriptor.json`,
///   `content-descriptor.json` and `defs.json` resolve under `…/schema/image/`;
/// - `content-descriptor.json` has id `https://opencontainers.org/schema/descriptor` (no
///   `image/`), so its `defs-descriptor.json` and `defs.json` resolve under `…/schema/`;
/// - `defs-descriptor.json` has no top-level id: its `defs.json` resolves next to whichever URL
///   it was reached by, i.e. both of the above.
///
/// `content-descriptor.json`, once reached, switches to its own id, so it needs only the one URL.
/// jsonschema resolves every registered resource's references when it builds any validator, so
/// each URL here is needed by every kind: drop one and all five fail to compile, naming it.
const REFERENCED: &[(&str, &[&str])] = &[
    ("content-descriptor.json", &["https://opencontainers.org/schema/image/content-descriptor.json"]),
    (
        "defs-descriptor.json",
        &[
            "https://opencontainers.org/schema/image/defs-descriptor.json",
            "https://opencontainers.org/schema/defs-descriptor.json",
        ],
    ),
    (
        "defs.json",
        &["https://opencontainers.org/schema/image/defs.json", "https://opencontainers.org/schema/defs.json"],
    ),
];

/// Refuses every URL: all references must be satisfied by [`REFERENCED`], never by a fetch.
struct Offline;

impl Retrieve for Offline {
    fn retrieve(&self, uri: &Uri<String>) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        Err(format!(
            "OCI schema $ref to {uri} is not registered (tests/support/schema.rs REFERENCED); refusing to fetch it"
        )
        .into())
    }
}

/// The schema directory; panics with the fix when it is missing.
pub fn schema_dir() -> PathBuf {
    let dir = match std::env::var_os("ARCHWAY_OCI_SCHEMA_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance/oci-image-spec-schema"),
    };
    if !dir.join(Kind::Index.file()).is_file() {
        panic!(
            "OCI image-spec schemas not found in {}: expected the files of shared/conformance/oci-image-spec-schema \
             (image-index-schema.json, …) there; check out shared/ next to the repo or set ARCHWAY_OCI_SCHEMA_DIR",
            dir.display()
        );
    }
    dir
}

fn load(name: &str) -> Value {
    let path = schema_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()))
}

/// jsonschema options as the OCI validators use them: draft-04, formats checked, every helper
/// file registered, and no fetching. Public so tests can check the offline guarantee.
pub fn options() -> jsonschema::ValidationOptions {
    let mut options = jsonschema::options()
        .with_draft(Draft::Draft4)
        .with_retriever(Offline)
        // Draft-04 checks formats by default in jsonschema; say so explicitly, and make a format
        // this crate does not know (none today: only `uri` and `date-time`) an error, not a pass.
        .should_validate_formats(true)
        .should_ignore_unknown_formats(false);
    for (file, urls) in REFERENCED {
        // Explicit draft: `defs.json` has no `$schema`, and autodetection would read it as 2020-12.
        let contents = load(file);
        for url in *urls {
            options = options.with_resource(*url, Draft::Draft4.create_resource(contents.clone()));
        }
    }
    options
}

fn compile(kind: Kind) -> Validator {
    let schema = load(kind.file());
    options().build(&schema).unwrap_or_else(|e| panic!("OCI schema {} does not compile: {e}", kind.file()))
}

fn validator(kind: Kind) -> &'static Validator {
    static VALIDATORS: [OnceLock<Validator>; 5] = [const { OnceLock::new() }; 5];
    VALIDATORS[kind.slot()].get_or_init(|| compile(kind))
}

/// Validates `doc` against the OCI schema for `kind`, plus the spec's digest rules for the
/// registered algorithms. On failure, one message per problem, each starting with its JSON
/// pointer (`(root)` for the document itself), then the schema keyword that failed.
pub fn validate(kind: Kind, doc: &Value) -> Result<(), Vec<String>> {
    let mut errors = schema_errors(kind, doc);
    errors.extend(digest_errors(kind, doc));
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}

/// What the JSON schema alone says about `doc`.
pub fn schema_errors(kind: Kind, doc: &Value) -> Vec<String> {
    validator(kind)
        .iter_errors(doc)
        .map(|e| {
            let at = e.instance_path.as_str();
            let at = if at.is_empty() { "(root)" } else { at };
            format!("{at}: {e} (schema {}#{})", kind.file(), e.schema_path)
        })
        .collect()
}

/// Digests of registered algorithms whose encoded part is not what the spec requires.
fn digest_errors(kind: Kind, doc: &Value) -> Vec<String> {
    let mut found: Vec<(String, &Value)> = Vec::new();
    let mut descriptor = |pointer: String| {
        if let Some(d) = doc.pointer(&format!("{pointer}/digest")) {
            found.push((format!("{pointer}/digest"), d));
        }
    };
    let each = |key: &str| doc.get(key).and_then(Value::as_array).map_or(0, Vec::len);
    match kind {
        Kind::Descriptor => descriptor(String::new()),
        Kind::Index => {
            (0..each("manifests")).for_each(|i| descriptor(format!("/manifests/{i}")));
            descriptor("/subject".into());
        }
        Kind::Manifest => {
            descriptor("/config".into());
            (0..each("layers")).for_each(|i| descriptor(format!("/layers/{i}")));
            descriptor("/subject".into());
        }
        Kind::Config => {
            let ids = doc.pointer("/rootfs/diff_ids").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
            found.extend(ids.iter().enumerate().map(|(i, d)| (format!("/rootfs/diff_ids/{i}"), d)));
        }
        Kind::Layout => {}
    }
    found
        .into_iter()
        .filter_map(|(at, d)| {
            let d = d.as_str()?; // a non-string is the schema's to report
            let (algorithm, encoded) = d.split_once(':')?;
            let want = match algorithm {
                "sha256" => 64,
                "sha512" => 128,
                _ => return None, // unregistered algorithms are allowed
            };
            let ok = encoded.len() == want && encoded.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            (!ok).then(|| {
                format!(
                    "{at}: {d:?} is not a valid {algorithm} digest: the OCI spec requires {want} lowercase hex digits \
                     (a rule the JSON schema does not check)"
                )
            })
        })
        .collect()
}
