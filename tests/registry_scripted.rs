//! archway's registry client against a scripted registry (`support::reqresp`): which answers
//! are retried and how often, when it gives up and what the error then says, the token dance,
//! redirects to storage hosts, and resuming a chunked upload. Lab-free and fast: retry delays
//! are zero, so only a test about `Retry-After` itself waits (one second).
//!
//! The same behaviour against the real registry behind a fault-injecting proxy is
//! `tests/registry_faults.rs` (lab).

mod support;

use std::time::{Duration, Instant};

use archway::reference::{Digest, Reference};
use archway::registry::{Body, Client, Credential, CredentialSource, RegistryError, RetryPolicy};
use archway::secret::Secret;
use bytes::Bytes;
use support::reqresp::{Seen, Server, Step};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const MANIFEST: &str = concat!(
    r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"#,
    r#""mediaType":"application/vnd.oci.image.config.v1+json","#,
    r#""digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#
);
const MANIFEST_PATH: &str = "/v2/acme/app/manifests/1";

/// No waiting between attempts; four attempts per operation.
fn no_delays() -> RetryPolicy {
    RetryPolicy { base: Duration::ZERO, cap: Duration::ZERO, max_attempts: 4, max_wait: Duration::from_secs(5) }
}

fn client() -> Client {
    Client::new(CredentialSource::default(), vec![]).with_retry(no_delays())
}

/// A client holding `ci-bot`/`s3cret` for the scripted registry.
fn client_with_login(server: &Server) -> Client {
    let cred = Credential::Basic { username: "ci-bot".into(), password: Secret::new("s3cret") };
    Client::new(CredentialSource::only(&server.host(), cred), vec![]).with_retry(no_delays())
}

fn reference(server: &Server) -> Reference {
    format!("{}/acme/app:1", server.host()).parse().unwrap()
}

fn manifest_ok() -> Step {
    Step::get(MANIFEST_PATH).typed(OCI_MANIFEST, MANIFEST)
}

fn bearer_challenge(server: &Server) -> Step {
    Step::get(MANIFEST_PATH).status(401).header(
        "WWW-Authenticate",
        format!(r#"Bearer realm="{}/token",service="scripted",scope="repository:acme/app:pull""#, server.url()),
    )
}

fn token(value: &str) -> Step {
    Step::get("/token")
        .query_has("service=scripted")
        .query_has("scope=repository%3Aacme%2Fapp%3Apull")
        .typed("application/json", format!(r#"{{"token":"{value}","expires_in":300}}"#))
}

fn auth(seen: &[Seen]) -> Vec<Option<&str>> {
    seen.iter().map(|s| s.header("authorization")).collect()
}

/// `Basic base64(ci-bot:s3cret)`
const BASIC: &str = "Basic Y2ktYm90OnMzY3JldA==";

#[tokio::test]
async fn throttling_and_gateway_errors_are_retried_until_the_registry_answers() {
    let server = Server::start();
    server.script([
        Step::get(MANIFEST_PATH).error(429, "TOOMANYREQUESTS", "slow down"),
        Step::get(MANIFEST_PATH).status(502).body("bad gateway"),
        Step::get(MANIFEST_PATH).error(503, "UNAVAILABLE", "restarting"),
        Step::get(MANIFEST_PATH).status(504),
        manifest_ok(),
    ]);
    let client = client().with_retry(RetryPolicy { max_attempts: 5, ..no_delays() });
    let m = client.manifest_get(&reference(&server)).await.expect("the fifth attempt succeeds");
    assert_eq!(m.digest, Digest::of(MANIFEST.as_bytes()));
    assert_eq!(m.media_type, OCI_MANIFEST);
    assert_eq!(server.finish().len(), 5, "one request per attempt");
}

#[tokio::test]
async fn gives_up_after_the_budget_naming_the_registry_and_the_last_answer() {
    let server = Server::start();
    server.script(Step::get(MANIFEST_PATH).error(503, "UNAVAILABLE", "registry is restarting").times(4));
    let err = client().manifest_get(&reference(&server)).await.expect_err("503 four times is final");
    let text = err.to_string();
    assert!(
        matches!(err, RegistryError::GaveUp { attempts: 4, status: Some(503), .. }),
        "gave up after the budget of 4: {err:?}"
    );
    for part in [
        format!("registry `{}`", server.host()),
        format!("GET manifest {}/acme/app:1", server.host()),
        "after 4 attempts".into(),
        "503 Service Unavailable (UNAVAILABLE registry is restarting)".into(),
    ] {
        assert!(text.contains(&part), "`{part}` in: {text}");
    }
    assert_eq!(server.finish().len(), 4, "no request after the budget is spent");
}

#[tokio::test]
async fn final_answers_are_not_retried() {
    for (status, expect) in [
        (400, "answered 400"),
        (401, "rejected the credentials"),
        (403, "denied"),
        (404, "not found"),
        (500, "answered 500"),
    ] {
        let server = Server::start();
        server.script([Step::get(MANIFEST_PATH).error(status, "CODE", "final")]);
        let err = client().manifest_get(&reference(&server)).await.expect_err("a final answer");
        let text = err.to_string();
        assert!(text.contains(expect) && text.contains(&server.host()), "{status}: {text}");
        assert_eq!(server.finish().len(), 1, "{status} is sent once: {text}");
    }
}

#[tokio::test]
async fn a_bearer_challenge_is_answered_once_and_the_token_reused() {
    let server = Server::start();
    server.script([bearer_challenge(&server), token("tok-1"), manifest_ok(), manifest_ok()]);
    let client = client_with_login(&server);
    client.manifest_get(&reference(&server)).await.expect("authenticated");
    client.manifest_get(&reference(&server)).await.expect("the cached token is reused");
    let seen = server.finish();
    assert_eq!(
        seen.iter().map(Seen::line).collect::<Vec<_>>(),
        [
            format!("GET {MANIFEST_PATH}"),
            "GET /token".into(),
            format!("GET {MANIFEST_PATH}"),
            format!("GET {MANIFEST_PATH}")
        ]
    );
    assert_eq!(auth(&seen), [None, Some(BASIC), Some("Bearer tok-1"), Some("Bearer tok-1")]);
}

#[tokio::test]
async fn an_expired_token_is_refreshed_once_per_operation() {
    let server = Server::start();
    server.script([
        bearer_challenge(&server),
        token("tok-1"),
        manifest_ok(),
        // The token expired: one refresh, then the request again.
        bearer_challenge(&server),
        token("tok-2"),
        manifest_ok(),
        // Refused even with a fresh token: final, no second refresh.
        bearer_challenge(&server),
        token("tok-3"),
        bearer_challenge(&server),
    ]);
    let client = client_with_login(&server);
    let r = reference(&server);
    client.manifest_get(&r).await.expect("first token");
    client.manifest_get(&r).await.expect("refreshed token");
    let err = client.manifest_get(&r).await.expect_err("refused with a fresh token");
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err:?}");
    assert!(err.to_string().contains(&format!("registry `{}` rejected the credentials", server.host())), "{err}");
    let seen = server.finish();
    assert_eq!(
        auth(&seen),
        [
            None,
            Some(BASIC),
            Some("Bearer tok-1"),
            Some("Bearer tok-1"),
            Some(BASIC),
            Some("Bearer tok-2"),
            Some("Bearer tok-2"),
            Some(BASIC),
            Some("Bearer tok-3"),
        ]
    );
}

#[tokio::test]
async fn a_busy_token_service_is_retried() {
    let server = Server::start();
    server.script([
        bearer_challenge(&server),
        Step::get("/token").status(503),
        Step::get("/token").status(429).header("Retry-After", "0"),
        token("tok-1"),
        manifest_ok(),
    ]);
    client_with_login(&server).manifest_get(&reference(&server)).await.expect("the token came on the third try");
    assert_eq!(server.finish().len(), 5);
}

#[tokio::test]
async fn authorization_is_not_sent_to_the_storage_host_a_blob_redirects_to() {
    let (registry, storage) = (Server::start(), Server::start());
    let blob = b"layer bytes".to_vec();
    let digest = Digest::of(&blob);
    let path = format!("/v2/acme/app/blobs/{digest}");
    registry.script([
        Step::get(&path).status(401).header("WWW-Authenticate", r#"Basic realm="scripted""#),
        Step::get(&path)
            .status(307)
            .header("Location", format!("{}/storage/blob?X-Amz-Signature=s3cret-signature", storage.url())),
    ]);
    storage.script([Step::get("/storage/blob").typed("application/octet-stream", blob.clone())]);
    let got = client_with_login(&registry).blob_get(&reference(&registry), &digest).await.expect("the blob");
    assert_eq!(got, Bytes::from(blob));
    assert_eq!(auth(&registry.finish()), [None, Some(BASIC)], "the registry gets the credentials");
    let at_storage = storage.finish();
    assert_eq!(auth(&at_storage), [None], "another host never sees them");
    assert_eq!(at_storage[0].query(), "X-Amz-Signature=s3cret-signature", "the signed URL is followed as given");
}

#[tokio::test]
async fn a_connection_dropped_in_the_middle_of_a_body_is_retried() {
    let server = Server::start();
    let blob = b"0123456789abcdefghij".to_vec();
    let digest = Digest::of(&blob);
    let path = format!("/v2/acme/app/blobs/{digest}");
    server.script([
        Step::get(&path).typed("application/octet-stream", blob.clone()).cut_body_after(5),
        Step::get(&path).typed("application/octet-stream", blob.clone()),
    ]);
    let got = client().blob_get(&reference(&server), &digest).await.expect("the second attempt");
    assert_eq!(got, Bytes::from(blob));
    assert_eq!(server.finish().len(), 2);
}

#[tokio::test]
async fn a_chunked_upload_resumes_from_the_range_the_session_reports() {
    let server = Server::start();
    let blob = b"0123456789".to_vec();
    let digest = Digest::of(&blob);
    let session = "/v2/acme/app/blobs/uploads/u1";
    server.script([
        Step::new("HEAD", &format!("/v2/acme/app/blobs/{digest}")).status(404),
        Step::new("POST", "/v2/acme/app/blobs/uploads/").status(202).header("Location", format!("{session}?_state=a")),
        Step::new("PATCH", session)
            .status(202)
            .header("Location", format!("{session}?_state=b"))
            .header("Range", "0-3"),
        // The second chunk gets no answer; the session says it holds six bytes.
        Step::new("PATCH", session).drop_connection(),
        Step::get(session).status(204).header("Location", format!("{session}?_state=c")).header("Range", "0-5"),
        Step::new("PATCH", session)
            .status(202)
            .header("Location", format!("{session}?_state=d"))
            .header("Range", "0-9"),
        Step::new("PUT", session).query_has(&format!("digest={digest}")).status(201),
    ]);
    let client = client().with_upload_chunks(4, 4);
    let uploaded =
        client.blob_put(&reference(&server), &digest, Body::Bytes(Bytes::from(blob))).await.expect("resumed upload");
    assert!(uploaded);
    let seen = server.finish();
    let patches: Vec<(Option<&str>, &[u8])> =
        seen.iter().filter(|s| s.method == "PATCH").map(|s| (s.header("content-range"), s.body.as_slice())).collect();
    assert_eq!(
        patches,
        [(Some("0-3"), &b"0123"[..]), (Some("4-7"), &b"4567"[..]), (Some("6-9"), &b"6789"[..])],
        "the third PATCH starts where the session's Range ends"
    );
    assert!(seen[4].query().contains("_state=b"), "the status request goes to the latest Location: {:?}", seen[4]);
    assert!(seen[6].query().contains("_state=d"), "the final PUT too: {:?}", seen[6]);
}

#[tokio::test]
async fn retry_after_is_waited_for() {
    let server = Server::start();
    server.script([Step::get(MANIFEST_PATH).status(429).header("Retry-After", "1"), manifest_ok()]);
    let started = Instant::now();
    client().manifest_get(&reference(&server)).await.expect("after the wait");
    assert!(started.elapsed() >= Duration::from_millis(950), "waited {:?}", started.elapsed());
    assert_eq!(server.finish().len(), 2);
}

#[tokio::test]
async fn a_retry_after_in_the_past_means_no_wait() {
    let server = Server::start();
    server.script([
        Step::get(MANIFEST_PATH).status(503).header("Retry-After", "Sun, 06 Nov 1994 08:49:37 GMT"),
        manifest_ok(),
    ]);
    let started = Instant::now();
    client().manifest_get(&reference(&server)).await.expect("at once");
    assert!(started.elapsed() < Duration::from_millis(900), "took {:?}", started.elapsed());
    assert_eq!(server.finish().len(), 2);
}

#[tokio::test]
async fn a_retry_after_beyond_the_budget_gives_up_at_once() {
    let server = Server::start();
    server.script([Step::get(MANIFEST_PATH).status(503).header("Retry-After", "3600")]);
    let started = Instant::now();
    let err = client().manifest_get(&reference(&server)).await.expect_err("an hour is past the budget");
    assert!(started.elapsed() < Duration::from_secs(2), "did not wait: {:?}", started.elapsed());
    let text = err.to_string();
    assert!(text.contains("after 1 attempt;") && text.contains("503 Service Unavailable"), "{text}");
    assert!(text.contains("waiting 3600.0s more would pass the retry budget of 5s"), "{text}");
    assert_eq!(server.finish().len(), 1);
}

#[tokio::test]
async fn a_refused_connection_is_tried_three_times_then_reported_unreachable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let r: Reference = format!("127.0.0.1:{port}/acme/app:1").parse().unwrap();
    let err = client().manifest_get(&r).await.expect_err("nothing listens there");
    let text = err.to_string();
    assert!(matches!(err, RegistryError::Unreachable { .. }), "{err:?}");
    assert!(text.starts_with(&format!("cannot reach registry `127.0.0.1:{port}`")), "{text}");
    assert!(text.contains("after 3 attempts"), "a refused connection gets 3 attempts, not the whole budget: {text}");
}

#[tokio::test]
async fn a_slow_registry_does_not_hold_up_another() {
    let (slow, fast) = (Server::start(), Server::start());
    slow.script(manifest_ok().delay(Duration::from_millis(400)).times(2));
    fast.script([manifest_ok()]);
    let client = client().with_max_in_flight(1);
    let (rs, rf) = (reference(&slow), reference(&fast));
    let started = Instant::now();
    let slow_pair = async {
        let (a, b) = tokio::join!(client.manifest_get(&rs), client.manifest_get(&rs));
        a.and(b).expect("slow answers");
        started.elapsed()
    };
    let fast_one = async {
        client.manifest_get(&rf).await.expect("fast answer");
        started.elapsed()
    };
    let (slow_done, fast_done) = tokio::join!(slow_pair, fast_one);
    assert!(slow_done >= Duration::from_millis(800), "one request at a time to the slow host: {slow_done:?}");
    assert!(fast_done < Duration::from_millis(400), "the other host is not queued behind it: {fast_done:?}");
    slow.finish();
    fast.finish();
}

#[tokio::test]
async fn an_oversized_answer_is_refused_without_holding_it() {
    let server = Server::start();
    server
        .script([Step::get(MANIFEST_PATH).typed(OCI_MANIFEST, "x".repeat(archway::registry::MAX_MANIFEST_BYTES + 1))]);
    let err = client().manifest_get(&reference(&server)).await.expect_err("a manifest over 4 MiB");
    let text = err.to_string();
    assert!(text.contains("larger than 4 MiB") && text.contains(&server.host()), "{text}");
    assert_eq!(server.finish().len(), 1, "not retried: {text}");

    // An error's body is read only as far as its message goes.
    let server = Server::start();
    server.script([Step::get(MANIFEST_PATH).status(400).body(format!("bad request {}", "y".repeat(8 << 20)))]);
    let err = client().manifest_get(&reference(&server)).await.expect_err("a 400");
    let text = err.to_string();
    assert!(
        text.contains("answered 400") && text.len() < 4096,
        "{} chars: {}",
        text.len(),
        &text[..200.min(text.len())]
    );
}
