//! The retry policy both hosts apply when the model's commit loses a race: how the
//! `transport.backoff` import is answered.
//!
//! The model decides *that* it retries (only whole transactions, only after a failed
//! version check); the host decides *how often and how long to wait*, since waiting is an
//! effect the guest cannot have. `ds` sleeps the calling thread; `ads` awaits a tokio timer,
//! so a backing-off transaction never blocks a worker.

use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

/// Retries after a lost commit race, and the waits between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries allowed after the first attempt (default 3, as Cloud NDB's transactions).
    pub retries: u32,
    /// The wait before the first retry; each later retry waits up to twice as long.
    pub base_delay: Duration,
    /// The longest wait between two attempts.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retries: ds_model::transport::DEFAULT_RETRIES,
            base_delay: Duration::from_millis(2),
            max_delay: Duration::from_millis(200),
        }
    }
}

impl RetryPolicy {
    /// How long to wait before retry number `attempt` (from 1), or `None` when the retries
    /// are spent. Exponential with "equal jitter": between half and all of
    /// `base_delay * 2^(attempt-1)` (capped at `max_delay`), so that racing writers spread
    /// out instead of colliding again.
    pub fn delay(&self, attempt: u32) -> Option<Duration> {
        if attempt == 0 || attempt > self.retries {
            return None;
        }
        let exponent = (attempt - 1).min(20);
        let ceiling = self
            .base_delay
            .saturating_mul(1 << exponent)
            .min(self.max_delay);
        let half = ceiling / 2;
        let jitter = random_fraction();
        Some(half + half.mul_f64(jitter))
    }
}

/// A random number in `[0, 1)`: std's per-process random hasher keys over a counter (no
/// extra dependency; this is for spreading retries, not for security).
fn random_fraction() -> f64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    thread_local!(static KEYS: RandomState = RandomState::new());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let bits = KEYS.with(|keys| keys.hash_one(n));
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// Retries of a lost race the policy granted, in this process (all datastores): a service's
/// metrics report it.
static RETRIES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

pub(crate) fn count_retry() {
    RETRIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// How many times, in this process, a model retried a read-modify-write after a failed
/// version check (a commit conflict), with the host's leave.
pub fn retries_so_far() -> u64 {
    RETRIES.load(std::sync::atomic::Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_are_capped_and_stop() {
        let policy = RetryPolicy {
            retries: 5,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(30),
        };
        assert_eq!(policy.delay(0), None);
        for (attempt, ceiling) in [(1, 10), (2, 20), (3, 30), (5, 30)] {
            let delay = policy.delay(attempt).unwrap();
            let ceiling = Duration::from_millis(ceiling);
            assert!(
                delay >= ceiling / 2 && delay <= ceiling,
                "{attempt}: {delay:?}"
            );
        }
        assert_eq!(policy.delay(6), None);
        assert_eq!(
            RetryPolicy {
                retries: 0,
                ..policy
            }
            .delay(1),
            None
        );
    }
}
