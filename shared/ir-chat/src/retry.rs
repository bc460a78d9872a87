//! When and how long the clients wait before sending a request again.
//!
//! - HTTP 429: wait what `Retry-After` says (seconds), as long as the total wait stays within
//!   [`RetryPolicy::max_total_wait`]; a `Retry-After` beyond what is left ends the call with a
//!   `RateLimited` error, carrying the wait asked for, so the caller can reschedule.
//! - HTTP 5xx and transport errors (connection refused or reset, timeout): exponential backoff
//!   with jitter, up to [`RetryPolicy::max_attempts`] attempts in all, within the same total wait
//!   (a 5xx with a `Retry-After`, such as a 503, waits what it says instead).
//! - Any other 4xx is final: the request would be refused again.
//!
//! A request that timed out or got a 5xx may still have been carried out, so a retried post can
//! show twice (at least once, never silently lost). Jira issue creation guards against it with
//! its search for the step's label (`jira::JiraClient::create_issue_once`).

use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The retry rules of one client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub max_attempts: u32,
    /// The first backoff after a 5xx or transport error; doubled each time.
    pub base_delay: Duration,
    /// No single backoff is longer.
    pub max_delay: Duration,
    /// The total time one call may spend waiting between attempts (`Retry-After` included).
    pub max_total_wait: Duration,
}

impl Default for RetryPolicy {
    /// 4 attempts, 500 ms doubling up to 8 s, at most 30 s of waiting in all (a Lambda
    /// function's budget, not a batch job's).
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(8),
            max_total_wait: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// One attempt, no waiting.
    pub fn never() -> Self {
        Self {
            max_attempts: 1,
            base_delay: Duration::ZERO,
            max_delay: Duration::ZERO,
            max_total_wait: Duration::ZERO,
        }
    }

    /// The backoff after failed attempt `attempt` (1 for the first): `base * 2^(attempt-1)`,
    /// capped at `max_delay`, with "equal jitter" (between half of it and all of it), so
    /// concurrent callers spread out but none retries at once.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(20);
        let full = self
            .base_delay
            .saturating_mul(1u32 << exp)
            .min(self.max_delay);
        let half = full / 2;
        let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        let extra = if nanos == 0 {
            0
        } else {
            jitter() % (nanos + 1)
        };
        half + Duration::from_nanos(extra)
    }
}

/// A pseudo-random number for jitter (not for anything secret): the standard library's
/// randomly keyed hasher over a counter.
fn jitter() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.finish()
}

/// How a client waits between attempts. [`TokioSleep`] in production; tests substitute one that
/// records the waits and returns at once (`fake::RecordingSleep`).
pub trait Sleep: Send + Sync + fmt::Debug {
    /// Waits `duration`.
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

/// Waits on the tokio timer.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioSleep;

impl Sleep for TokioSleep {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(tokio::time::sleep(duration))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_its_jitter_and_is_capped() {
        let p = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
            max_total_wait: Duration::from_secs(60),
        };
        for _ in 0..200 {
            let d1 = p.backoff(1);
            assert!(d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100));
            let d3 = p.backoff(3);
            assert!(d3 >= Duration::from_millis(200) && d3 <= Duration::from_millis(400));
            let d9 = p.backoff(9);
            assert!(d9 >= Duration::from_millis(500) && d9 <= Duration::from_millis(1000));
        }
        assert_eq!(RetryPolicy::never().backoff(1), Duration::ZERO);
    }
}
