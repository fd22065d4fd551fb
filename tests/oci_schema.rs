//! The OCI schema validator in `support::schema` really validates: good documents pass, each kind
//! of broken one fails with a message pointing at the problem, every cross-file `$ref` is
//! resolved from local files, and the indexes archway itself assembles pass.

mod support;

use std::collections::BTreeMap;

use archway::oci::{self, Descriptor, DescriptorPlatform};
use archway::platform::Platform;
use archway::reference::Digest;
use serde_json::{Value, json};
use support::schema::{self, Kind};

const D1: &str = "sha256:6c3c624b58dbbcd3c0dd82b4c53f04194d1247c6eebdaab7c610cf7d66709b3b";
const D2: &str = "sha256:5b0bcabd1ed22e9fb1310cf6c2dec7cdef19f0ad69efa1f392e94a4333501270";
const D3: &str = "sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4";

fn valid_index() -> Value {
    json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": D1,
                "size": 7143,
                "platform": {"architecture": "amd64", "os": "linux"}
            },
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": D2,
                "size": 7682,
                "platform": {"architecture": "arm", "os": "linux", "variant": "v7"},
                "annotations": {"org.opencontainers.image.ref.name": "1.0"}
            }
        ],
        "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"}
    })
}

fn valid_manifest() -> Value {
    json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": D1, "size": 1470},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": D2, "size": 32654},
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": D3, "size": 16724}
        ],
        "annotations": {"com.example.key1": "value1"}
    })
}

fn valid_config() -> Value {
    json!({
        "created": "2015-10-31T22:22:56.015925234Z",
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["PATH=/usr/bin"], "Cmd": ["sh"], "Labels": {"a": "b"}, "ExposedPorts": {"80/tcp": {}}},
        "rootfs": {"type": "layers", "diff_ids": [D1, D2]},
        "history": [{"created": "2015-10-31T22:22:54.690851953Z", "created_by": "/bin/sh -c #(nop) ADD file"}]
    })
}

fn valid_descriptor() -> Value {
    json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": D1, "size": 7143})
}

#[track_caller]
fn assert_valid(kind: Kind, doc: &Value) {
    if let Err(errors) = schema::validate(kind, doc) {
        panic!("{kind:?} should be valid, got:\n{}\n{doc:#}", errors.join("\n"));
    }
}

/// Asserts `doc` is invalid and that some message contains every one of `needles`.
#[track_caller]
fn assert_invalid(kind: Kind, doc: &Value, needles: &[&str]) -> Vec<String> {
    let errors = schema::validate(kind, doc).expect_err(&format!("{kind:?} should be invalid:\n{doc:#}"));
    assert!(
        errors.iter().any(|e| needles.iter().all(|n| e.contains(n))),
        "no message contains all of {needles:?}:\n{}",
        errors.join("\n")
    );
    errors
}

#[test]
fn every_schema_compiles_with_local_refs_only() {
    for kind in Kind::ALL {
        // A non-object fails every schema, which forces its validator to compile.
        assert!(schema::validate(kind, &json!(42)).is_err(), "{kind:?} accepted 42");
    }
}

#[test]
fn an_unregistered_ref_is_refused_not_fetched() {
    let Err(e) = schema::options().build(&json!({"$ref": "https://opencontainers.org/schema/not-shipped.json"})) else {
        panic!("a $ref to an unregistered URL must not compile");
    };
    assert!(e.to_string().contains("refusing to fetch"), "{e}");
}

#[test]
fn valid_index_passes() {
    assert_valid(Kind::Index, &valid_index());
}

#[test]
fn index_with_bad_digest_fails() {
    let mut doc = valid_index();
    doc["manifests"][0]["digest"] = json!("sha256:xyz");
    assert_invalid(Kind::Index, &doc, &["/manifests/0/digest", "sha256:xyz", "64 lowercase hex"]);
}

#[test]
fn schema_alone_accepts_any_encoded_digest_but_checks_its_shape() {
    // The schema's digest pattern is `<algorithm>:<[a-zA-Z0-9=_-]+>`: `sha256:xyz` fits it, which
    // is why `validate` adds the spec's length/hex rule.
    let mut doc = valid_index();
    doc["manifests"][0]["digest"] = json!("sha256:xyz");
    assert_eq!(schema::schema_errors(Kind::Index, &doc), Vec::<String>::new());
    // A digest without an algorithm, or with an upper-case one, breaks the pattern itself.
    for bad in ["xyz", "SHA256:abc", "sha256:"] {
        doc["manifests"][0]["digest"] = json!(bad);
        let errors = schema::schema_errors(Kind::Index, &doc);
        assert!(
            errors.iter().any(|e| e.starts_with("/manifests/0/digest:") && e.contains("does not match")),
            "{bad}: {errors:?}"
        );
    }
}

#[test]
fn registered_algorithms_need_lowercase_hex_of_their_length() {
    let mut doc = valid_descriptor();
    let upper = D1.to_uppercase().replacen("SHA256", "sha256", 1);
    for bad in [&D1[..D1.len() - 1], upper.as_str(), "sha512:abcd"] {
        doc["digest"] = json!(bad);
        assert_invalid(Kind::Descriptor, &doc, &["/digest", "lowercase hex"]);
    }
    // Unregistered algorithms only have to fit the schema's pattern.
    doc["digest"] = json!("multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8");
    assert_valid(Kind::Descriptor, &doc);
}

#[test]
fn index_entry_without_size_fails() {
    let mut doc = valid_index();
    doc["manifests"][1].as_object_mut().unwrap().remove("size");
    assert_invalid(Kind::Index, &doc, &["/manifests/1", "\"size\" is a required property"]);
}

#[test]
fn index_with_schema_version_1_fails() {
    let mut doc = valid_index();
    doc["schemaVersion"] = json!(1);
    assert_invalid(Kind::Index, &doc, &["/schemaVersion", "minimum of 2"]);
    doc["schemaVersion"] = json!(3);
    assert_invalid(Kind::Index, &doc, &["/schemaVersion", "maximum of 2"]);
    doc.as_object_mut().unwrap().remove("schemaVersion");
    assert_invalid(Kind::Index, &doc, &["(root)", "\"schemaVersion\" is a required property"]);
}

#[test]
fn platform_without_os_fails() {
    let mut doc = valid_index();
    doc["manifests"][0]["platform"].as_object_mut().unwrap().remove("os");
    assert_invalid(Kind::Index, &doc, &["/manifests/0/platform", "\"os\" is a required property"]);
}

#[test]
fn index_entry_media_type_and_annotations_go_through_the_shared_defs() {
    // mediaType: image-index-schema.json -> defs-descriptor.json (under .../schema/image/).
    let mut doc = valid_index();
    doc["manifests"][0]["mediaType"] = json!("not a media type");
    assert_invalid(Kind::Index, &doc, &["/manifests/0/mediaType", "does not match"]);
    // annotations: -> defs-descriptor.json -> defs.json#/definitions/mapStringString.
    let mut doc = valid_index();
    doc["manifests"][1]["annotations"]["count"] = json!(3);
    assert_invalid(Kind::Index, &doc, &["/manifests/1/annotations/count", "is not of type \"string\""]);
    let mut doc = valid_index();
    doc["annotations"] = json!({"ok": "yes", "bad": true});
    assert_invalid(Kind::Index, &doc, &["/annotations/bad", "is not of type \"string\""]);
}

#[test]
fn urls_must_be_absolute_uris() {
    let mut doc = valid_index();
    doc["manifests"][0]["urls"] = json!(["https://example.com/blobs/sha256/abc"]);
    assert_valid(Kind::Index, &doc);
    doc["manifests"][0]["urls"] = json!(["just-a-name"]);
    assert_invalid(Kind::Index, &doc, &["/manifests/0/urls/0", "uri"]);
    // Same rule through content-descriptor.json (resolved under .../schema/, not .../schema/image/).
    let mut doc = valid_descriptor();
    doc["urls"] = json!(["not a uri"]);
    assert_invalid(Kind::Descriptor, &doc, &["/urls/0", "uri"]);
}

#[test]
fn valid_manifest_passes() {
    assert_valid(Kind::Manifest, &valid_manifest());
}

#[test]
fn manifest_without_config_fails() {
    let mut doc = valid_manifest();
    doc.as_object_mut().unwrap().remove("config");
    assert_invalid(Kind::Manifest, &doc, &["(root)", "\"config\" is a required property"]);
}

#[test]
fn manifest_descriptors_go_through_content_descriptor() {
    // image-manifest-schema.json -> content-descriptor.json (its own id) -> defs-descriptor.json
    // and defs.json under .../schema/.
    let mut doc = valid_manifest();
    doc["layers"][1].as_object_mut().unwrap().remove("digest");
    assert_invalid(Kind::Manifest, &doc, &["/layers/1", "\"digest\" is a required property"]);
    let mut doc = valid_manifest();
    doc["config"]["size"] = json!(-1);
    assert_invalid(Kind::Manifest, &doc, &["/config/size", "minimum of 0"]);
    let mut doc = valid_manifest();
    doc["layers"][0]["annotations"] = json!({"n": 1});
    assert_invalid(Kind::Manifest, &doc, &["/layers/0/annotations/n", "is not of type \"string\""]);
    let mut doc = valid_manifest();
    doc["layers"] = json!([]);
    assert_invalid(Kind::Manifest, &doc, &["/layers", "[]"]);
}

#[test]
fn layout_file() {
    assert_valid(Kind::Layout, &json!({"imageLayoutVersion": "1.0.0"}));
    assert_invalid(Kind::Layout, &json!({}), &["(root)", "\"imageLayoutVersion\" is a required property"]);
    assert_invalid(Kind::Layout, &json!({"imageLayoutVersion": "2.0.0"}), &["/imageLayoutVersion"]);
}

#[test]
fn config_and_its_date_time_format() {
    assert_valid(Kind::Config, &valid_config());
    let mut doc = valid_config();
    doc["created"] = json!("yesterday");
    assert_invalid(Kind::Config, &doc, &["/created", "date-time"]);
    let mut doc = valid_config();
    doc["rootfs"]["diff_ids"][1] = json!("sha256:xyz");
    assert_invalid(Kind::Config, &doc, &["/rootfs/diff_ids/1", "64 lowercase hex"]);
    let mut doc = valid_config();
    doc.as_object_mut().unwrap().remove("os");
    assert_invalid(Kind::Config, &doc, &["\"os\" is a required property"]);
    // config -> defs.json under .../schema/image/.
    let mut doc = valid_config();
    doc["config"]["Labels"] = json!({"a": 1});
    assert_invalid(Kind::Config, &doc, &["/config/Labels"]);
}

#[test]
fn descriptor_kind() {
    assert_valid(Kind::Descriptor, &valid_descriptor());
    let mut doc = valid_descriptor();
    doc["annotations"] = json!({"a": "b"});
    doc["artifactType"] = json!("application/vnd.example+json");
    assert_valid(Kind::Descriptor, &doc);
    doc["annotations"] = json!({"a": ["b"]});
    assert_invalid(Kind::Descriptor, &doc, &["/annotations/a", "is not of type \"string\""]);
}

// ---- indexes built by archway's own code ----

fn image(n: u8, media_type: &str, platform: &str) -> Descriptor {
    Descriptor {
        media_type: media_type.into(),
        digest: Digest::of(&[n]),
        size: 500 + n as u64,
        platform: Some(DescriptorPlatform::from(&platform.parse::<Platform>().unwrap())),
        annotations: None,
        artifact_type: None,
    }
}

/// An attestation manifest's descriptor as buildx writes it: `unknown/unknown`, pointing at its image.
fn attestation(n: u8, of: &Descriptor) -> Descriptor {
    Descriptor {
        media_type: oci::OCI_MANIFEST.into(),
        digest: Digest::of(&[n]),
        size: 800 + n as u64,
        platform: Some(DescriptorPlatform {
            architecture: "unknown".into(),
            os: "unknown".into(),
            variant: None,
            os_version: None,
        }),
        annotations: Some(BTreeMap::from([
            (oci::ANN_REFERENCE_DIGEST.into(), of.digest.to_string()),
            (oci::ANN_REFERENCE_TYPE.into(), oci::ATTESTATION_MANIFEST.into()),
        ])),
        artifact_type: None,
    }
}

fn assembled(per_platform: Vec<Vec<Descriptor>>, annotations: BTreeMap<String, String>) -> Value {
    let index = archway::publish::index_of(per_platform, annotations).expect("index_of");
    serde_json::from_slice(&index.to_bytes()).expect("Index::to_bytes is JSON")
}

#[test]
fn archway_assembled_index_passes() {
    let amd64 = image(1, oci::OCI_MANIFEST, "linux/amd64");
    let arm64 = image(2, oci::OCI_MANIFEST, "linux/arm64");
    let armv7 = image(3, oci::OCI_MANIFEST, "linux/arm/v7");
    let (a1, a2, a3) = (attestation(11, &amd64), attestation(12, &arm64), attestation(13, &armv7));
    let annotations = BTreeMap::from([
        ("org.opencontainers.image.created".to_string(), "2024-05-01T12:00:00Z".to_string()),
        ("org.opencontainers.image.source".to_string(), "https://example.com/acme/app".to_string()),
    ]);
    let doc = assembled(vec![vec![amd64, a1], vec![arm64, a2], vec![armv7, a3]], annotations);
    // It is the document the tests above describe, so passing means something.
    assert_eq!(doc["mediaType"], oci::OCI_INDEX);
    assert_eq!(doc["manifests"].as_array().unwrap().len(), 6);
    assert_eq!(doc["manifests"][5]["platform"]["os"], "unknown");
    assert_valid(Kind::Index, &doc);
    for (i, m) in doc["manifests"].as_array().unwrap().iter().enumerate() {
        assert_valid(Kind::Descriptor, m);
        assert!(m["digest"].as_str().unwrap().starts_with("sha256:"), "entry {i}: {m}");
    }

    // And the validator would notice if archway broke it.
    let mut broken = doc.clone();
    broken["manifests"][2]["platform"].as_object_mut().unwrap().remove("architecture");
    assert_invalid(Kind::Index, &broken, &["/manifests/2/platform", "\"architecture\" is a required property"]);
}

#[test]
fn archway_assembled_docker_list_and_single_platform_pass() {
    let docker = assembled(
        vec![vec![image(1, oci::DOCKER_MANIFEST, "linux/amd64")], vec![image(2, oci::DOCKER_MANIFEST, "linux/arm64")]],
        BTreeMap::from([("dropped".to_string(), "for docker lists".to_string())]),
    );
    assert_eq!(docker["mediaType"], oci::DOCKER_LIST);
    assert_valid(Kind::Index, &docker);

    let single = assembled(vec![vec![image(4, oci::OCI_MANIFEST, "linux/amd64")]], BTreeMap::new());
    assert!(single.get("annotations").is_none());
    assert_valid(Kind::Index, &single);
}
