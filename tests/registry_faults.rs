//! archway's registry client against a registry that misbehaves: the lab registry behind the
//! fault-injecting proxy of `support/proxy.rs` (throttling, 5xx bursts, dropped uploads,
//! expiring tokens, redirects to another host, rate-limit headers, a slow host).
//!
//! Each scenario checks the outcome in the real registry (`127.0.0.1:5000`, read with `curl`,
//! not through the proxy or archway) and the number of requests the proxy counted. Retry
//! delays are milliseconds; `Retry-After` from the proxy is honoured as sent.

#![cfg(feature = "lab")]

mod support;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use archway::reference::{Digest, Reference};
use archway::registry::{BlobPush, Body, Client, CredentialSource, RateLimit, RegistryError, RetryPolicy};
use bytes::Bytes;
use support::lab::{self, lab};
use support::proxy::{Fault, Kind, Proxy, http_date};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Blobs above this go in chunks in these tests.
const MONOLITHIC_MAX: u64 = 64 * 1024;
const CHUNK: u64 = 128 * 1024;

fn quick() -> RetryPolicy {
    RetryPolicy {
        base: Duration::from_millis(10),
        cap: Duration::from_millis(100),
        max_attempts: 5,
        max_wait: Duration::from_secs(30),
    }
}

fn client() -> Client {
    Client::new(CredentialSource::default(), vec![]).with_retry(quick()).with_upload_chunks(MONOLITHIC_MAX, CHUNK)
}

/// A fresh repository: as reached through the proxy, and its name in the lab registry.
fn repo(proxy: &Proxy, prefix: &str) -> (Reference, String) {
    let name = lab::unique_repo(prefix);
    let path = name.split_once('/').unwrap().1;
    (format!("{}/{path}", proxy.addr).parse().unwrap(), name)
}

/// The same repository, straight at the lab registry.
fn direct(name: &str) -> Reference {
    name.parse().unwrap()
}

/// `len` bytes that differ per `seed`, without a random-number crate.
fn noise(seed: &str, len: usize) -> Bytes {
    use sha2::Digest as _;
    let mut out = Vec::with_capacity(len + 32);
    let mut i = 0u64;
    while out.len() < len {
        out.extend_from_slice(&sha2::Sha256::digest(format!("{seed}/{i}/{}", lab::nonce())));
        i += 1;
    }
    out.truncate(len);
    Bytes::from(out)
}

struct Image {
    config: Bytes,
    layer: Bytes,
    manifest: Bytes,
}

impl Image {
    fn new(seed: &str, layer_len: usize) -> Image {
        let config = Bytes::from(format!(
            r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}},"config":{{"Labels":{{"seed":"{seed}-{}"}}}}}}"#,
            lab::nonce()
        ));
        let layer = noise(seed, layer_len);
        let desc =
            |t: &str, b: &Bytes| format!(r#"{{"mediaType":"{t}","digest":"{}","size":{}}}"#, Digest::of(b), b.len());
        let manifest = Bytes::from(format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{},"layers":[{}]}}"#,
            desc("application/vnd.oci.image.config.v1+json", &config),
            desc("application/vnd.oci.image.layer.v1.tar", &layer),
        ));
        Image { config, layer, manifest }
    }

    fn digest(&self) -> Digest {
        Digest::of(&self.manifest)
    }

    /// Blobs, then the manifest under `r`'s tag.
    async fn push(&self, client: &Client, r: &Reference) -> Result<Digest, RegistryError> {
        for b in [&self.config, &self.layer] {
            client.blob_put(r, &Digest::of(b), Body::Bytes(b.clone())).await?;
        }
        client.manifest_put(r, &self.manifest, OCI_MANIFEST).await
    }
}

/// The blob as the lab registry serves it, checked against its digest.
fn assert_blob_in_lab(name: &str, bytes: &[u8]) {
    let digest = Digest::of(bytes);
    let got = lab::blob(name, digest.as_str());
    assert_eq!(lab::sha256(&got), digest.as_str(), "{name}@{digest} in the lab registry");
}

fn report(scenario: &str, took: Duration, proxy: &Proxy) {
    eprintln!("{scenario}: {:.2}s; {}", took.as_secs_f64(), proxy.summary());
}

#[tokio::test]
async fn too_many_requests_with_retry_after_seconds() {
    let proxy = Proxy::start(&lab().registry);
    proxy.fault("PUT", Kind::Manifest, 1, 1, Fault::Status(429, vec![("Retry-After", "1".into())]));
    let (r, name) = repo(&proxy, "faults-429-seconds");
    let img = Image::new("429s", 1000);
    let started = Instant::now();
    let d = img.push(&client(), &r.with_tag("v1")).await.unwrap();
    let took = started.elapsed();
    report("429 Retry-After: 1", took, &proxy);
    assert_eq!(d, img.digest());
    assert_eq!(proxy.count("PUT", Kind::Manifest), 2, "one 429, one success");
    assert!(took >= Duration::from_secs(1), "Retry-After: 1 was honoured: {took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert_eq!(lab::tag_digest(&name, "v1"), Some(img.digest().to_string()));
}

#[tokio::test]
async fn too_many_requests_with_retry_after_date() {
    let proxy = Proxy::start(&lab().registry);
    // The first upload session is refused until a date at least a second ahead.
    proxy.fault("POST", Kind::Upload, 1, 1, Fault::TooManyUntil(Duration::from_secs(1)));
    let (r, name) = repo(&proxy, "faults-429-date");
    let img = Image::new("429date", 1000);
    let started = Instant::now();
    img.push(&client(), &r.with_tag("v1")).await.unwrap();
    let took = started.elapsed();
    report("429 Retry-After: <date>", took, &proxy);
    assert_eq!(proxy.count("POST", Kind::Upload), 3, "two uploads, one of them refused once");
    assert!(took >= Duration::from_secs(1), "the date was honoured: {took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert_eq!(lab::tag_digest(&name, "v1"), Some(img.digest().to_string()));
}

#[tokio::test]
async fn a_burst_of_5xx_is_outlasted() {
    let proxy = Proxy::start(&lab().registry);
    proxy.fault("HEAD", Kind::Blob, 1, 1, Fault::Status(502, vec![]));
    proxy.fault("HEAD", Kind::Blob, 2, 1, Fault::Status(504, vec![]));
    proxy.fault("PUT", Kind::Manifest, 1, 3, Fault::Status(503, vec![]));
    let (r, name) = repo(&proxy, "faults-503");
    let img = Image::new("503", 1000);
    let started = Instant::now();
    img.push(&client(), &r.with_tag("v1")).await.unwrap();
    let took = started.elapsed();
    report("502, 504, 503×3", took, &proxy);
    assert_eq!(proxy.count("HEAD", Kind::Blob), 4, "two blobs, the first asked three times");
    assert_eq!(proxy.count("PUT", Kind::Manifest), 4, "three 503s, then the manifest");
    assert!(took < Duration::from_secs(3), "millisecond backoff: {took:?}");
    assert_eq!(lab::tag_digest(&name, "v1"), Some(img.digest().to_string()));
}

#[tokio::test]
async fn a_download_broken_halfway_is_started_again_after_a_pause() {
    let proxy = Proxy::start(&lab().registry);
    let (r, _) = repo(&proxy, "faults-cut-get");
    let blob = noise("cut", 300_000);
    let d = Digest::of(&blob);
    assert!(client().blob_put(&r, &d, Body::Bytes(blob.clone())).await.unwrap());
    proxy.fault("GET", Kind::Blob, 1, 1, Fault::CutAnswerBody);
    let pausing =
        client().with_retry(RetryPolicy { base: Duration::from_millis(400), cap: Duration::from_secs(1), ..quick() });
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("layer");
    let started = Instant::now();
    let len = pausing.blob_get_to_file(&r, &d, blob.len() as u64, &dest).await.unwrap();
    let took = started.elapsed();
    report("blob GET cut halfway", took, &proxy);
    assert_eq!(proxy.count("GET", Kind::Blob), 2, "started again once");
    assert_eq!(len, blob.len() as u64);
    assert_eq!(std::fs::read(&dest).unwrap(), blob);
    assert!(took >= Duration::from_millis(200), "not at once (jittered 400 ms backoff): {took:?}");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, ["layer"], "no partial file left");

    // Cut every time: an error that says so, and nothing at the destination.
    proxy.fault("GET", Kind::Blob, 3, 3, Fault::CutAnswerBody);
    let again = dir.path().join("again");
    let e = client().blob_get_to_file(&r, &d, blob.len() as u64, &again).await.unwrap_err();
    assert_eq!(proxy.count("GET", Kind::Blob), 5);
    let text = e.to_string();
    assert!(
        text.contains("after 3 attempts") && text.contains("a body broken off after 150000 of 300000 bytes"),
        "{text}"
    );
    assert!(!again.exists());
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, ["layer"], "no partial file left");
}

#[tokio::test]
async fn a_chunked_upload_resumes_after_a_dropped_patch() {
    let proxy = Proxy::start(&lab().registry);
    proxy.fault("PATCH", Kind::Upload, 3, 1, Fault::DropMidBody);
    let (r, name) = repo(&proxy, "faults-resume");
    let blob = noise("resume", 1024 * 1024 + 1000);
    // From a file, as `publish` sends layers: each chunk is read from its offset.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("layer");
    std::fs::write(&path, &blob).unwrap();
    let started = Instant::now();
    let body = Body::File { path, len: blob.len() as u64 };
    let uploaded = client().blob_put(&r, &Digest::of(&blob), body).await.unwrap();
    let took = started.elapsed();
    report("PATCH 3 dropped halfway", took, &proxy);
    assert!(uploaded);
    let chunks = (blob.len() as u64).div_ceil(CHUNK) as usize;
    assert_eq!(chunks, 9);
    assert_eq!(proxy.count("PATCH", Kind::Upload), chunks + 1, "only the broken chunk was sent again");
    assert_eq!(proxy.count("GET", Kind::Upload), 1, "the session was asked for its Range once");
    assert_eq!(proxy.count("POST", Kind::Upload), 1, "the same session went on");
    assert_eq!(proxy.count("PUT", Kind::Upload), 1);
    assert_eq!(
        proxy.body_bytes("PATCH", Kind::Upload),
        blob.len() as u64 + CHUNK / 2,
        "every byte once, plus the half chunk the proxy swallowed; not a restart from zero"
    );
    assert_blob_in_lab(&name, &blob);
}

#[tokio::test]
async fn a_chunked_upload_restarts_when_the_registry_lost_the_session() {
    // Distribution 2.8 keeps the half of a broken PATCH it read, then refuses the session
    // (404 BLOB_UPLOAD_INVALID: its size no longer matches the upload state): start over.
    let proxy = Proxy::start(&lab().registry);
    proxy.fault("PATCH", Kind::Upload, 3, 1, Fault::DropMidBodyForwarded);
    let (r, name) = repo(&proxy, "faults-restart");
    let blob = noise("restart", 1024 * 1024 + 1000);
    let started = Instant::now();
    assert!(client().blob_put(&r, &Digest::of(&blob), Body::Bytes(blob.clone())).await.unwrap());
    let took = started.elapsed();
    report("PATCH 3 half-written, session lost", took, &proxy);
    assert_eq!(proxy.count("GET", Kind::Upload), 1, "the session was asked once, and was gone");
    assert_eq!(proxy.count("POST", Kind::Upload), 2, "a new session");
    assert_eq!(proxy.count("PATCH", Kind::Upload), 3 + 9);
    assert_blob_in_lab(&name, &blob);
}

#[tokio::test]
async fn a_dropped_monolithic_put_starts_a_new_session() {
    let proxy = Proxy::start(&lab().registry);
    proxy.fault("PUT", Kind::Upload, 1, 1, Fault::DropMidBody);
    let (r, name) = repo(&proxy, "faults-put-drop");
    let blob = noise("put", 10_000);
    let started = Instant::now();
    assert!(client().blob_put(&r, &Digest::of(&blob), Body::Bytes(blob.clone())).await.unwrap());
    report("monolithic PUT dropped halfway", started.elapsed(), &proxy);
    assert_eq!(proxy.count("HEAD", Kind::Blob), 2, "before, and after the unanswered PUT");
    assert_eq!(proxy.count("POST", Kind::Upload), 2);
    assert_eq!(proxy.count("PUT", Kind::Upload), 2);
    assert_blob_in_lab(&name, &blob);
}

#[tokio::test]
async fn an_expired_token_is_refreshed_once() {
    let proxy = Proxy::start(&lab().registry);
    proxy.require_bearer(3);
    let (r, name) = repo(&proxy, "faults-token");
    let img = Image::new("token", 1000);
    let started = Instant::now();
    img.push(&client(), &r.with_tag("v1")).await.unwrap();
    report("tokens good for 3 requests", started.elapsed(), &proxy);
    // HEAD 401 → token 1 → HEAD, POST, PUT; HEAD 401 → token 2 → HEAD, POST, PUT;
    // manifest PUT 401 → token 3 → PUT.
    assert_eq!(proxy.unauthorized("missing token"), 1);
    assert_eq!(proxy.unauthorized("expired token"), 2);
    assert_eq!(proxy.count("GET", Kind::Token), 3, "one refresh per expiry");
    assert_eq!(proxy.count("PUT", Kind::Manifest), 2);
    assert_eq!(lab::tag_digest(&name, "v1"), Some(img.digest().to_string()));
}

#[tokio::test]
async fn a_token_rejected_when_fresh_fails_without_looping() {
    let proxy = Proxy::start(&lab().registry);
    proxy.require_bearer(0);
    let (r, _) = repo(&proxy, "faults-token-dead");
    let e = client().manifest_get(&r.with_tag("v1")).await.unwrap_err();
    assert!(matches!(e, RegistryError::Unauthorized { .. }), "{e:?}");
    assert_eq!(proxy.count("GET", Kind::Manifest), 2, "first contact, then once with a fresh token");
    assert_eq!(proxy.count("GET", Kind::Token), 1);
    assert!(!e.to_string().contains("tok-"), "no token in the message: {e}");
}

#[tokio::test]
async fn a_cross_repository_mount_sends_no_bytes() {
    let proxy = Proxy::start(&lab().registry);
    let (from, from_name) = repo(&proxy, "faults-mount-src");
    let (to, to_name) = repo(&proxy, "faults-mount-dst");
    let (other, other_name) = repo(&proxy, "faults-mount-other");
    let blob = noise("mount", 200_000);
    let d = Digest::of(&blob);
    Client::new(CredentialSource::default(), vec![])
        .blob_put(&direct(&from_name), &d, Body::Bytes(blob.clone()))
        .await
        .unwrap();
    let c = client();
    let started = Instant::now();
    let got = c.blob_put_from(&to, &d, Body::Bytes(blob.clone()), Some(&from)).await.unwrap();
    report("mount 201", started.elapsed(), &proxy);
    assert_eq!(got, BlobPush::Mounted);
    let posts = proxy.seen(|s| s.method == "POST" && s.kind == Kind::Upload);
    assert_eq!(posts.len(), 1);
    assert!(posts[0].query.contains(&format!("mount={d}")) && posts[0].query.contains("from="), "{:?}", posts[0]);
    assert_eq!(posts[0].status, 201);
    assert_eq!(proxy.count("PATCH", Kind::Upload) + proxy.count("PUT", Kind::Upload), 0, "nothing uploaded");
    assert_blob_in_lab(&to_name, &blob);
    assert!(c.blob_mount(&other, &from, &d).await.unwrap());
    assert_blob_in_lab(&other_name, &blob);
    assert_eq!(c.blob_put_from(&to, &d, Body::Bytes(blob.clone()), Some(&from)).await.unwrap(), BlobPush::Present);
}

#[tokio::test]
async fn a_declined_mount_uploads_into_the_session_it_opened() {
    let proxy = Proxy::start(&lab().registry);
    let (from, _) = repo(&proxy, "faults-mount-empty");
    let (to, to_name) = repo(&proxy, "faults-mount-fallback");
    let blob = noise("fallback", 200_000);
    let d = Digest::of(&blob);
    let c = client();
    let started = Instant::now();
    let got = c.blob_put_from(&to, &d, Body::Bytes(blob.clone()), Some(&from)).await.unwrap();
    report("mount 202 → upload", started.elapsed(), &proxy);
    assert_eq!(got, BlobPush::Uploaded);
    let posts = proxy.seen(|s| s.method == "POST" && s.kind == Kind::Upload);
    assert_eq!(posts.len(), 1, "no second session: {posts:?}");
    assert!(posts[0].query.contains("mount=") && posts[0].status == 202, "{:?}", posts[0]);
    assert_eq!(proxy.count("PATCH", Kind::Upload), 2, "200 kB in 128 KiB chunks");
    assert_eq!(proxy.count("PUT", Kind::Upload), 1);
    assert_blob_in_lab(&to_name, &blob);
    let (elsewhere, _) = repo(&proxy, "faults-mount-none");
    assert!(!c.blob_mount(&elsewhere, &from, &d).await.unwrap(), "the source lacks the blob");
    assert_eq!(proxy.count("DELETE", Kind::Upload), 1, "the session a declined mount opened is cancelled");
}

#[tokio::test]
async fn a_redirect_to_another_host_loses_the_authorization() {
    let proxy = Proxy::start(&lab().registry);
    proxy.require_bearer(100);
    proxy.fault("GET", Kind::Blob, 1, 1, Fault::RedirectToAlt);
    let (r, name) = repo(&proxy, "faults-redirect");
    let blob = noise("redirect", 5000);
    let d = Digest::of(&blob);
    Client::new(CredentialSource::default(), vec![])
        .blob_put(&direct(&name), &d, Body::Bytes(blob.clone()))
        .await
        .unwrap();
    let started = Instant::now();
    let got = client().blob_get(&r, &d).await.unwrap();
    report("blob GET redirected to localhost", started.elapsed(), &proxy);
    assert_eq!(got, blob);
    let here = proxy.seen(|s| !s.alt && s.kind == Kind::Blob && s.status == 307);
    assert_eq!(here.len(), 1);
    assert!(here[0].authorization, "the registry itself got the token");
    let there = proxy.seen(|s| s.alt);
    assert_eq!(there.len(), 1, "{there:?}");
    assert_eq!((there[0].method.as_str(), there[0].kind, there[0].status), ("GET", Kind::Blob, 200));
    assert!(!there[0].authorization, "`Authorization` must not follow a redirect to {}", proxy.alt_addr);
}

#[tokio::test]
async fn past_the_retry_budget_the_error_counts_and_the_tag_stays() {
    let proxy = Proxy::start(&lab().registry);
    proxy.fault("PUT", Kind::Manifest, 1, usize::MAX, Fault::Status(503, vec![]));
    let (r, name) = repo(&proxy, "faults-budget");
    let before = Image::new("budget-v1", 1000);
    before.push(&Client::new(CredentialSource::default(), vec![]), &direct(&name).with_tag("v1")).await.unwrap();
    let after = Image::new("budget-v2", 1000);
    let started = Instant::now();
    let e = after.push(&client(), &r.with_tag("v1")).await.unwrap_err();
    let took = started.elapsed();
    report("503 forever on the manifest PUT", took, &proxy);
    eprintln!("  error: {e}");
    assert!(matches!(e, RegistryError::GaveUp { attempts: 5, status: Some(503), .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("after 5 attempts") && msg.contains("503 Service Unavailable"), "{msg}");
    assert!(msg.contains(&format!("{}:v1", r.name())), "names the reference: {msg}");
    assert_eq!(proxy.count("PUT", Kind::Manifest), 5);
    assert_eq!(lab::tag_digest(&name, "v1"), Some(before.digest().to_string()), "the tag did not move");
}

#[tokio::test]
async fn a_low_rate_limit_is_reported() {
    let proxy = Proxy::start(&lab().registry);
    proxy.fault("GET", Kind::Manifest, 1, usize::MAX, Fault::RateLimit { limit: 100, remaining: 7 });
    let (r, name) = repo(&proxy, "faults-ratelimit");
    let img = Image::new("ratelimit", 1000);
    img.push(&Client::new(CredentialSource::default(), vec![]), &direct(&name).with_tag("v1")).await.unwrap();
    let c = client();
    assert_eq!(c.rate_limit(&proxy.addr), None);
    let m = c.manifest_get(&r.with_tag("v1")).await.unwrap();
    assert_eq!(m.digest, img.digest());
    assert_eq!(
        c.rate_limit(&proxy.addr),
        Some(RateLimit { limit: Some(100), remaining: 7, window: Some(Duration::from_secs(21600)) })
    );
    assert!(c.rate_limit(&proxy.addr).unwrap().is_low());
}

#[tokio::test]
async fn a_slow_host_has_a_cap_and_does_not_slow_another() {
    let slow = Proxy::start(&lab().registry);
    let fast = Proxy::start(&lab().registry);
    slow.fault("HEAD", Kind::Blob, 1, usize::MAX, Fault::Delay(Duration::from_millis(300)));
    let (on_slow, _) = repo(&slow, "faults-slow");
    let (on_fast, _) = repo(&fast, "faults-fast");
    let c = client().with_max_in_flight(2);
    let d = Digest::of(b"absent");
    let started = Instant::now();
    let slow_all = futures_util::future::join_all((0..6).map(|_| c.blob_exists(&on_slow, &d)));
    let fast_one = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let t = Instant::now();
        assert!(!c.blob_exists(&on_fast, &d).await.unwrap());
        t.elapsed()
    };
    let (slow_results, fast_took) = tokio::join!(slow_all, fast_one);
    let slow_took = started.elapsed();
    eprintln!(
        "6 HEADs at 300 ms with 2 in flight: {:.2}s; the other host meanwhile: {:.3}s",
        slow_took.as_secs_f64(),
        fast_took.as_secs_f64()
    );
    assert!(slow_results.into_iter().all(|r| !r.unwrap()));
    assert_eq!(slow.max_in_flight(), 2, "never more than 2 requests at once to one host");
    assert!(slow_took >= Duration::from_millis(900), "three waves of two: {slow_took:?}");
    assert!(fast_took < slow_took / 3, "the other host was not held up: {fast_took:?}");
}

#[test]
fn the_proxy_writes_http_dates_archway_reads() {
    let at = |s: u64| UNIX_EPOCH + Duration::from_secs(s);
    assert_eq!(http_date(at(784111777)), "Sun, 06 Nov 1994 08:49:37 GMT");
    assert_eq!(http_date(at(1709251199)), "Thu, 29 Feb 2024 23:59:59 GMT");
    assert_eq!(http_date(at(0)), "Thu, 01 Jan 1970 00:00:00 GMT");
    assert!(http_date(SystemTime::now()).ends_with(" GMT"));
}
