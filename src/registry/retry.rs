//! retry: when a failed request is tried again, how long to wait first, and when to give up.
//!
//! The policy and the delay arithmetic are pure (tested below); `Attempts` is the budget of
//! one operation and the only place here that sleeps. Which failures are worth a retry is
//! decided in `http.rs`, not here.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

use super::RegistryError;

/// Attempts at a host that refuses connections (or whose name does not resolve): more often a
/// wrong address than a registry restarting, so it is not worth the whole budget.
const CONNECT_ATTEMPTS: u32 = 3;

/// How a client retries transient failures (429, 502, 503, 504, resets, timeouts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The delay after the first failure; it doubles after each further one.
    pub base: Duration,
    /// The longest computed delay. A registry's own `Retry-After` may ask for more.
    pub cap: Duration,
    /// Requests sent for one operation, the first included, before its error is final.
    pub max_attempts: u32,
    /// The most one operation sleeps in total, `Retry-After` included.
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    /// 0.5 s, 1 s, 2 s, 4 s, 8 s: six attempts within about 15 s unless a registry asks to
    /// wait longer, and never more than two minutes of waiting for one operation.
    fn default() -> Self {
        RetryPolicy {
            base: Duration::from_millis(500),
            cap: Duration::from_secs(30),
            max_attempts: 6,
            max_wait: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// The delay after `failures` failed attempts (1 or more), before jitter:
    /// `base · 2^(failures−1)`, at most `cap`.
    pub fn backoff(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        self.base.saturating_mul(1u32 << doublings).min(self.cap)
    }
}

/// "Equal jitter": half the delay is fixed, the other half scaled by `unit` in `[0, 1)`, so
/// clients that failed together do not retry together, yet none retries at once.
fn jittered(delay: Duration, unit: f64) -> Duration {
    delay / 2 + (delay / 2).mul_f64(unit.clamp(0.0, 1.0))
}

/// A number in `[0, 1)` that differs between calls, without a random-number crate: std's
/// `RandomState` is seeded randomly per process and per instance.
fn random_unit() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos());
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// The pause before attempt `failures + 1` of something that failed `failures` times without a
/// status to go by (a download broken halfway): the policy's backoff, jittered.
pub(crate) fn pause(policy: &RetryPolicy, failures: u32) -> Duration {
    jittered(policy.backoff(failures), random_unit())
}

/// `Retry-After` in seconds or as an HTTP date (any of the three forms RFC 9110 §5.6.7 says a
/// recipient must accept); a date in the past means no wait.
pub fn retry_after(h: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let v = h.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(when.duration_since(now).unwrap_or_default())
}

/// `1 attempt`, `3 attempts`.
pub(crate) fn plural(n: u32, noun: &str) -> String {
    if n == 1 { format!("{n} {noun}") } else { format!("{n} {noun}s") }
}

/// One failed attempt that may succeed if sent again.
#[derive(Debug)]
pub(crate) struct Transient {
    /// The registry's answer, or `None` when the connection failed.
    pub status: Option<StatusCode>,
    /// What the registry asked for in `Retry-After`.
    pub retry_after: Option<Duration>,
    /// The registry's error message, or the connection error (never a URL query).
    pub detail: String,
    /// No connection could be made at all (refused, DNS): the registry looks down.
    pub connect: bool,
    /// Where the request went, without its query (which may carry upload state or a signature).
    pub url: String,
}

/// The retry budget of one operation: counts attempts and the time slept between them.
pub(crate) struct Attempts {
    policy: RetryPolicy,
    failed: u32,
    waited: Duration,
}

impl Attempts {
    pub fn new(policy: RetryPolicy) -> Self {
        Attempts { policy, failed: 0, waited: Duration::ZERO }
    }

    /// Counts a failed attempt, then sleeps before the next one; or, when the budget is spent
    /// (attempts or total wait), returns the operation's final error.
    pub async fn retry(&mut self, failure: Transient, registry: &str, operation: &str) -> Result<(), RegistryError> {
        self.failed += 1;
        let wait = match failure.retry_after {
            Some(asked) => asked,
            None => jittered(self.policy.backoff(self.failed), random_unit()),
        };
        // Saturating: `Retry-After` is the registry's to choose, up to `u64::MAX` seconds.
        let over_time = self.waited.saturating_add(wait) > self.policy.max_wait;
        let max_attempts =
            if failure.connect { self.policy.max_attempts.min(CONNECT_ATTEMPTS) } else { self.policy.max_attempts };
        if self.failed >= max_attempts || over_time {
            let mut last = match failure.status {
                Some(s) => format!("{}", s.as_u16()),
                None => "no answer".into(),
            };
            if let Some(reason) = failure.status.and_then(|s| s.canonical_reason()) {
                last = format!("{last} {reason}");
            }
            if !failure.detail.is_empty() {
                last = format!("{last} ({})", failure.detail);
            }
            if over_time && self.failed < max_attempts {
                last = format!(
                    "{last}; waiting {:.1}s more would pass the retry budget of {:.0}s",
                    wait.as_secs_f64(),
                    self.policy.max_wait.as_secs_f64()
                );
            }
            if failure.connect {
                return Err(RegistryError::Unreachable {
                    registry: registry.into(),
                    url: failure.url,
                    detail: format!("{} after {}", failure.detail, plural(self.failed, "attempt")),
                });
            }
            return Err(RegistryError::GaveUp {
                registry: registry.into(),
                operation: operation.into(),
                attempts: self.failed,
                status: failure.status.map(|s| s.as_u16()),
                last,
            });
        }
        tracing::debug!(
            operation,
            attempt = self.failed,
            status = failure.status.map(|s| s.as_u16()),
            wait_ms = wait.as_millis() as u64,
            "retrying"
        );
        tokio::time::sleep(wait).await;
        self.waited += wait;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
            max_attempts: 10,
            max_wait: Duration::from_secs(60),
        };
        let got: Vec<u128> = (1..=6).map(|n| p.backoff(n).as_millis()).collect();
        assert_eq!(got, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(p.backoff(0), Duration::from_millis(100));
        assert_eq!(p.backoff(u32::MAX), Duration::from_secs(1), "no overflow");
        let d = RetryPolicy::default();
        assert_eq!((d.backoff(1), d.backoff(5)), (Duration::from_millis(500), Duration::from_secs(8)));
    }

    #[test]
    fn jitter_stays_between_half_and_the_whole_delay() {
        let d = Duration::from_millis(800);
        assert_eq!(jittered(d, 0.0), Duration::from_millis(400));
        assert_eq!(jittered(d, 0.5), Duration::from_millis(600));
        assert!(jittered(d, 0.999_999) <= d);
        for _ in 0..1000 {
            let u = random_unit();
            assert!((0.0..1.0).contains(&u), "{u}");
        }
        let spread: std::collections::HashSet<u64> = (0..50).map(|_| random_unit().to_bits()).collect();
        assert!(spread.len() > 40, "jitter varies between calls");
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = UNIX_EPOCH + Duration::from_secs(784111777); // Sun, 06 Nov 1994 08:49:37 GMT
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h, now), None);
        h.insert("retry-after", HeaderValue::from_static("3"));
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(3)));
        h.insert("retry-after", HeaderValue::from_static(" 0 "));
        assert_eq!(retry_after(&h, now), Some(Duration::ZERO));
        h.insert("retry-after", HeaderValue::from_static("Sun, 06 Nov 1994 08:49:39 GMT"));
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(2)));
        h.insert("retry-after", HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"));
        assert_eq!(retry_after(&h, now), Some(Duration::ZERO));
        h.insert("retry-after", HeaderValue::from_static("Sat, 05 Nov 1994 08:49:37 GMT"));
        assert_eq!(retry_after(&h, now), Some(Duration::ZERO), "a date in the past means no wait");
        h.insert("retry-after", HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h, now), None);
        // The obsolete RFC 850 and asctime forms too, as RFC 9110 asks of a recipient.
        for obsolete in ["Sunday, 06-Nov-94 08:49:39 GMT", "Sun Nov  6 08:49:39 1994"] {
            h.insert("retry-after", HeaderValue::from_static(obsolete));
            assert_eq!(retry_after(&h, now), Some(Duration::from_secs(2)), "{obsolete}");
        }
        h.insert("retry-after", HeaderValue::from_static("Thu, 29 Feb 2024 23:59:59 GMT"));
        let leap_day = UNIX_EPOCH + Duration::from_secs(1709251199);
        assert_eq!(retry_after(&h, leap_day - Duration::from_secs(5)), Some(Duration::from_secs(5)));
    }

    #[tokio::test]
    async fn a_huge_retry_after_is_over_budget_not_a_panic() {
        let mut a = Attempts::new(RetryPolicy { max_attempts: 5, ..RetryPolicy::default() });
        a.waited = Duration::from_secs(1);
        let t = Transient {
            status: Some(StatusCode::TOO_MANY_REQUESTS),
            retry_after: Some(Duration::from_secs(u64::MAX)),
            detail: String::new(),
            connect: false,
            url: "https://r.example/v2/".into(),
        };
        let e = a.retry(t, "r.example", "GET manifest r.example/a:1").await.unwrap_err();
        assert!(matches!(e, RegistryError::GaveUp { attempts: 1, .. }), "{e}");
    }

    #[tokio::test]
    async fn budget_counts_attempts_and_names_the_last_status() {
        let p = RetryPolicy {
            base: Duration::from_millis(1),
            cap: Duration::from_millis(4),
            max_attempts: 3,
            max_wait: Duration::from_secs(60),
        };
        let mut a = Attempts::new(p);
        let unavailable = || Transient {
            status: Some(StatusCode::SERVICE_UNAVAILABLE),
            retry_after: None,
            detail: String::new(),
            connect: false,
            url: "https://r.example/v2/a/manifests/1".into(),
        };
        a.retry(unavailable(), "r.example", "PUT manifest r.example/a:1").await.unwrap();
        a.retry(unavailable(), "r.example", "PUT manifest r.example/a:1").await.unwrap();
        let e = a.retry(unavailable(), "r.example", "PUT manifest r.example/a:1").await.unwrap_err();
        assert!(matches!(e, RegistryError::GaveUp { attempts: 3, status: Some(503), .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            "registry `r.example` still failed PUT manifest r.example/a:1 after 3 attempts; the last answer was 503 Service Unavailable"
        );
    }

    #[tokio::test]
    async fn a_wait_beyond_the_budget_fails_at_once() {
        let p = RetryPolicy {
            base: Duration::from_millis(1),
            cap: Duration::from_millis(4),
            max_attempts: 5,
            max_wait: Duration::from_secs(10),
        };
        let mut a = Attempts::new(p);
        let started = std::time::Instant::now();
        let t = Transient {
            status: Some(StatusCode::TOO_MANY_REQUESTS),
            retry_after: Some(Duration::from_secs(3600)),
            detail: "slow down".into(),
            connect: false,
            url: "https://r.example/v2/a/manifests/1".into(),
        };
        let e = a.retry(t, "r.example", "GET manifest r.example/a:1").await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(e.to_string().contains("429 Too Many Requests (slow down); waiting 3600.0s more"), "{e}");
    }

    #[tokio::test]
    async fn a_refused_connection_gets_three_attempts() {
        let conn = || Transient {
            status: None,
            retry_after: None,
            detail: "connection refused".into(),
            connect: true,
            url: "https://r.example/v2/".into(),
        };
        let p = RetryPolicy {
            base: Duration::from_millis(1),
            cap: Duration::from_millis(4),
            max_attempts: 5,
            max_wait: Duration::from_secs(10),
        };
        let mut a = Attempts::new(p);
        a.retry(conn(), "r.example", "HEAD blob").await.unwrap();
        a.retry(conn(), "r.example", "HEAD blob").await.unwrap();
        let e = a.retry(conn(), "r.example", "HEAD blob").await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot reach registry `r.example` at https://r.example/v2/: connection refused after 3 attempts"
        );
        let mut a = Attempts::new(RetryPolicy { max_attempts: 1, ..p });
        let e = a.retry(conn(), "r.example", "HEAD blob").await.unwrap_err();
        assert!(e.to_string().ends_with("after 1 attempt"), "{e}");
    }
}
