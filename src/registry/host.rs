//! host: what the client keeps per registry host: the cap on requests in flight, the time
//! before which the host asked not to be called again, and the last rate-limit headers seen.
//!
//! State for one host never slows another. No I/O beyond waiting.

use std::sync::Mutex;
use std::time::Duration;

use reqwest::header::HeaderMap;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

/// Requests in flight to one registry host unless the client is told otherwise.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 4;

/// Below this share of its limit (and at 10 or fewer otherwise), a remaining pull allowance is
/// worth a warning.
const LOW_RATE_LIMIT_PERCENT: u64 = 10;
const LOW_RATE_LIMIT_ABSOLUTE: u64 = 10;

/// A registry's pull allowance as its `ratelimit-limit` / `ratelimit-remaining` headers state
/// it (Docker Hub: `ratelimit-remaining: 76;w=21600`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub limit: Option<u64>,
    pub remaining: u64,
    /// The window the allowance is counted over (`w=` seconds).
    pub window: Option<Duration>,
}

impl RateLimit {
    pub fn parse(h: &HeaderMap) -> Option<RateLimit> {
        // `N;w=SECONDS`: a count, then optional parameters.
        fn field(h: &HeaderMap, name: &str) -> Option<(u64, Option<Duration>)> {
            let v = h.get(name)?.to_str().ok()?;
            let mut parts = v.split(';');
            let n = parts.next()?.trim().parse().ok()?;
            let w = parts.find_map(|p| p.trim().strip_prefix("w=")?.trim().parse().ok()).map(Duration::from_secs);
            Some((n, w))
        }
        let (remaining, w) = field(h, "ratelimit-remaining")?;
        let limit = field(h, "ratelimit-limit");
        Some(RateLimit { limit: limit.map(|l| l.0), remaining, window: w.or(limit.and_then(|l| l.1)) })
    }

    pub fn is_low(&self) -> bool {
        match self.limit {
            // In u128: the counts are the registry's to choose, up to `u64::MAX`.
            Some(l) if l > 0 => u128::from(self.remaining) * 100 <= u128::from(l) * u128::from(LOW_RATE_LIMIT_PERCENT),
            _ => self.remaining <= LOW_RATE_LIMIT_ABSOLUTE,
        }
    }
}

pub(crate) struct Host {
    permits: Semaphore,
    /// Set from a `Retry-After`: every request to this host waits until then.
    not_before: Mutex<Option<Instant>>,
    rate_limit: Mutex<Option<RateLimit>>,
}

impl Host {
    pub fn new(max_in_flight: usize) -> Host {
        Host {
            permits: Semaphore::new(max_in_flight.max(1)),
            not_before: Mutex::default(),
            rate_limit: Mutex::default(),
        }
    }

    /// Waits for the host's `Retry-After`, then for a free slot; the slot is held until the
    /// permit drops.
    pub async fn slot(&self) -> SemaphorePermit<'_> {
        loop {
            let until = *self.not_before.lock().unwrap();
            match until {
                Some(t) if t > Instant::now() => tokio::time::sleep_until(t).await,
                _ => break,
            }
        }
        self.permits.acquire().await.expect("the semaphore is never closed")
    }

    /// Holds every request to this host back for `wait`.
    pub fn pause(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut nb = self.not_before.lock().unwrap();
        if nb.is_none_or(|t| t < until) {
            *nb = Some(until);
        }
    }

    /// Remembers the host's rate-limit headers, warning the first time the allowance runs low.
    pub fn observe(&self, registry: &str, h: &HeaderMap) {
        let Some(now) = RateLimit::parse(h) else {
            return;
        };
        let before = self.rate_limit.lock().unwrap().replace(now);
        if now.is_low() && !before.is_some_and(|b| b.is_low()) {
            let window = now.window.map(|w| format!(" per {}h", w.as_secs_f64() / 3600.0)).unwrap_or_default();
            let limit = now.limit.map(|l| format!(" of {l}{window}")).unwrap_or_default();
            tracing::warn!(
                "registry `{registry}` allows {} more pulls{limit}; log in or wait for the window to reset",
                now.remaining
            );
        }
    }

    pub fn rate_limit(&self) -> Option<RateLimit> {
        *self.rate_limit.lock().unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn docker_hub_rate_limit_headers() {
        let mut h = HeaderMap::new();
        assert_eq!(RateLimit::parse(&h), None);
        h.insert("ratelimit-limit", HeaderValue::from_static("100;w=21600"));
        h.insert("ratelimit-remaining", HeaderValue::from_static("76;w=21600"));
        let r = RateLimit::parse(&h).unwrap();
        assert_eq!(r, RateLimit { limit: Some(100), remaining: 76, window: Some(Duration::from_secs(21600)) });
        assert!(!r.is_low());
        assert!(RateLimit { remaining: 10, ..r }.is_low());
        assert!(!RateLimit { remaining: 11, ..r }.is_low());
        assert!(RateLimit { limit: None, remaining: 3, window: None }.is_low());
        h.insert("ratelimit-remaining", HeaderValue::from_static("x;w=1"));
        assert_eq!(RateLimit::parse(&h), None);
    }

    /// Found by the `retry_after` fuzz target: `remaining * 100` overflowed (a panic in debug
    /// builds, a wrong answer in release).
    #[test]
    fn huge_rate_limit_counts_do_not_overflow() {
        let mut h = HeaderMap::new();
        h.insert("ratelimit-remaining", HeaderValue::from_static("18446744073709551615"));
        h.insert("ratelimit-limit", HeaderValue::from_static("18446744073709551615"));
        let r = RateLimit::parse(&h).unwrap();
        assert!(!r.is_low());
        h.insert("ratelimit-remaining", HeaderValue::from_static("3"));
        assert!(RateLimit::parse(&h).unwrap().is_low());
    }

    #[tokio::test]
    async fn slots_are_bounded_and_pauses_wait() {
        let host = Host::new(2);
        let a = host.slot().await;
        let _b = host.slot().await;
        let third = tokio::time::timeout(Duration::from_millis(50), host.slot()).await;
        assert!(third.is_err(), "a third request waits for a slot");
        drop(a);
        let _c = tokio::time::timeout(Duration::from_millis(50), host.slot()).await.expect("a slot came free");
        let other = Host::new(2);
        other.pause(Duration::from_millis(120));
        let started = std::time::Instant::now();
        drop(other.slot().await);
        assert!(started.elapsed() >= Duration::from_millis(100), "{:?}", started.elapsed());
    }
}
