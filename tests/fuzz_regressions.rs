//! Inputs the fuzz targets (`fuzz/`, `scripts/fuzz-smoke`) once crashed on, replayed through the
//! public API the targets call. Each is also kept in `fuzz/corpus/<target>/`.

use std::time::{Duration, UNIX_EPOCH};

use archway::builder::assemble::archive::parse_http_date;
use archway::registry::{RateLimit, retry_after};
use reqwest::header::{HeaderMap, HeaderValue};

/// `retry_after` target: a `RateLimit-Remaining` of `u64::MAX` overflowed `remaining * 100` in
/// `RateLimit::is_low` (a panic in debug builds).
#[test]
fn rate_limit_of_u64_max() {
    let mut h = HeaderMap::new();
    h.insert("ratelimit-remaining", HeaderValue::from_static("18446744073709551615"));
    h.insert("ratelimit-limit", HeaderValue::from_static("18446744073709551615"));
    let r = RateLimit::parse(&h).expect("parses");
    assert!(!r.is_low());
    assert_eq!(
        retry_after(&h, UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
        None,
        "no Retry-After header, no wait"
    );
}

/// `retry_after` target: an HTTP date with a huge year, day or time overflowed the seconds
/// arithmetic of `parse_http_date` (ADD's `Last-Modified`).
#[test]
fn http_date_out_of_range() {
    for s in [
        "Sun, 06 Nov 9223372036854775807 08:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:9223372036854775807 GMT",
        "Sun, 9223372036854775807 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov -9223372036854775808 08:49:37 GMT",
    ] {
        assert_eq!(parse_http_date(s), None, "{s}");
    }
    assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(784111777));
}

/// `oci_layout` target: indexes nested 8 deep, each naming the next 6 times, made
/// `publish::resolve` read 6^7 manifests (a hang). Each index is now read once.
#[tokio::test]
async fn layout_index_diamonds_are_read_once() {
    use archway::oci::{self, Descriptor};
    use archway::publish::{self, ImageSource};
    use archway::reference::Digest;

    let dir = tempfile::tempdir().unwrap();
    let blobs = dir.path().join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| {
        let d = Digest::of(bytes);
        std::fs::write(blobs.join(d.hex()), bytes).unwrap();
        d
    };
    let config = put(br#"{"architecture":"amd64","os":"linux"}"#);
    let manifest = put(format!(
        r#"{{"schemaVersion":2,"config":{{"mediaType":"{}","digest":"{config}","size":1}},"layers":[]}}"#,
        "application/vnd.oci.image.config.v1+json"
    )
    .as_bytes());
    let (mut next, mut media_type) = (manifest, oci::OCI_MANIFEST);
    for _ in 0..8 {
        let entry = format!(r#"{{"mediaType":"{media_type}","digest":"{next}","size":1}}"#);
        let index = format!(r#"{{"schemaVersion":2,"manifests":[{}]}}"#, vec![entry; 6].join(","));
        next = put(index.as_bytes());
        media_type = oci::OCI_INDEX;
    }
    let top = Descriptor::new(oci::OCI_INDEX, next, 1);
    let started = std::time::Instant::now();
    let images = publish::resolve(&ImageSource::Layout(dir.path()), &top).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert_eq!(images.len(), 6, "the last index's six entries, once");
    assert_eq!(images[0].platform.to_string(), "linux/amd64");
}

/// `dockerignore` target: `.dockerignore` patterns with a few dozen `*` or `**/` took minutes
/// to match a path (backtracking, exponential); matching is now memoised.
#[test]
fn dockerignore_many_stars_match_quickly() {
    use archway::builder::assemble::ignore::{Matcher, read_ignore_file};

    let stars = format!("{}b\na/{}x\n!{}\n", "*a".repeat(30), "**/a/".repeat(30), "*".repeat(60));
    let m = Matcher::new(&read_ignore_file(&stars)).unwrap();
    let long = "a".repeat(200);
    let deep = vec!["a"; 60].join("/");
    let started = std::time::Instant::now();
    for p in [long.as_str(), deep.as_str(), "a/b", "b"] {
        let _ = m.matches(p);
    }
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    assert!(Matcher::new(&["*a*a*b"]).unwrap().matches("xaya-b"));
    assert!(!Matcher::new(&["*a*a*b"]).unwrap().matches("xayb"));
    assert!(Matcher::new(&["**/a/**/b"]).unwrap().matches("x/a/y/z/b"));
}

/// The inputs the `dockerignore` target timed out on (each took over a second) all match quickly.
#[test]
fn dockerignore_fuzz_timeouts() {
    use archway::builder::assemble::ignore::{Matcher, read_ignore_file};

    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzz/dockerignore");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let text = String::from_utf8_lossy(&std::fs::read(entry.unwrap().path()).unwrap()).into_owned();
        let (file, paths) =
            text.split_once('\0').unwrap_or((&text, "a/b/c.txt\nnode_modules/x\n.git/HEAD\nDockerfile"));
        let started = std::time::Instant::now();
        if let Ok(m) = Matcher::new(&read_ignore_file(file)) {
            for p in paths.lines().take(16) {
                let _ = m.matches(p);
            }
        }
        assert!(started.elapsed() < Duration::from_secs(1), "took {:?}", started.elapsed());
        n += 1;
    }
    assert!(n > 0);
}

/// `ci_env` target: `TAGS_COUNT=1234566` and the like (a Bitbucket list's count) made reading the pipe's
/// inputs look up every `TAGS_i` up to it (over a second). Reading now stops at the first
/// missing item, with an error naming both variables.
#[test]
fn a_huge_bitbucket_list_count_is_one_lookup() {
    use archway::ci::{self, Env, Provider};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzz/ci_env");
    let mut n = 0;
    for f in std::fs::read_dir(dir).unwrap() {
        let data = std::fs::read(f.unwrap().path()).unwrap();
        let text = String::from_utf8(data).unwrap();
        let mut chunks = text.split('\0');
        let event = chunks.next().filter(|e| !e.is_empty());
        let mut env: Env = chunks.filter_map(|c| c.split_once('=')).map(|(k, v)| (k.into(), v.into())).collect();
        env.insert("BITBUCKET_PIPE_STORAGE_DIR".into(), "/nonexistent/pipe".into());
        let ci = ci::for_provider(Provider::Bitbucket { pipe: true });
        let err = ci::resolve(&*ci, &env, event, 1_700_000_000).expect_err("a count without its items is refused");
        let e = err.to_string();
        assert!(e.starts_with("`TAGS_COUNT` is 123456") && e.ends_with(", and `TAGS_0` is not set"), "{e}");
        n += 1;
    }
    assert_eq!(n, 3);
}
