//! Bounded retries of lost races, with jittered exponential backoff, and per-call write tokens.

use std::hash::{BuildHasher, Hasher, RandomState};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::config::{AsyncSleep, SharedAsyncSleep};

use crate::Clients;

/// First backoff ceiling; doubled per contended attempt up to [`MAX_DELAY`].
const BASE_DELAY: Duration = Duration::from_millis(10);
const MAX_DELAY: Duration = Duration::from_millis(400);

/// A bounded number of attempts at one logical write.
#[derive(Debug)]
pub(crate) struct Attempts {
    used: u32,
    max: u32,
    contended: u32,
    sleep: Option<SharedAsyncSleep>,
}

impl Attempts {
    pub(crate) fn new(clients: &Clients, max: u32) -> Attempts {
        Attempts {
            used: 0,
            max,
            contended: 0,
            // The runtime's sleep (tokio), as the SDK itself uses for its retries.
            sleep: clients.dynamodb().config().sleep_impl(),
        }
    }

    /// Takes one attempt; `false` once they are all used.
    pub(crate) fn take(&mut self) -> bool {
        if self.used >= self.max {
            return false;
        }
        self.used += 1;
        true
    }

    /// The attempts used so far.
    pub(crate) fn used(&self) -> u32 {
        self.used
    }

    /// Waits before retrying a write that lost to a concurrent one: "full jitter" (a uniformly
    /// random delay below an exponentially growing ceiling), so that contenders spread out instead
    /// of colliding again in lockstep.
    pub(crate) async fn backoff(&mut self) {
        let ceiling = BASE_DELAY
            .saturating_mul(1u32 << self.contended.min(6))
            .min(MAX_DELAY);
        self.contended += 1;
        let ceiling_us = u64::try_from(ceiling.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        let delay = Duration::from_micros(random_u64() % ceiling_us);
        if let Some(sleep) = &self.sleep {
            sleep.sleep(delay).await;
        }
    }
}

/// 64 unpredictable bits: std's randomly keyed SipHash (keys drawn from the OS once per thread,
/// then incremented per `RandomState`) over the current time. Used for backoff jitter and write
/// tokens, never for secrets.
pub(crate) fn random_u64() -> u64 {
    let mut h = RandomState::new().build_hasher();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    h.write_u128(nanos);
    h.finish()
}

/// A token unique to one logical write (32 hex digits), stored with the change so that a retry
/// can tell "my earlier attempt landed" from "someone else changed it".
pub(crate) fn write_token() -> String {
    format!("{:016x}{:016x}", random_u64(), random_u64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_differ() {
        let a = write_token();
        let b = write_token();
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }
}
