//! One retry policy for every adapter that retries on its own (Comprehend's
//! batch calls, SQS's failed batch entries, Athena's polling): how many
//! attempts, and how long to wait before each next one.
//!
//! The wait is *equal jitter*: half the capped exponential delay, plus a
//! random share of the other half. Unlike full jitter (anywhere from zero)
//! it never retries immediately, which matters when the failure was
//! throttling; unlike no jitter it spreads the concurrent callers that
//! failed together.

use std::time::Duration;

/// Attempts and backoff of a retry loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first one included (at least 1).
    pub max_attempts: u32,
    /// The delay after the first failure, before jitter.
    pub base: Duration,
    /// The longest delay, before jitter.
    pub cap: Duration,
}

impl RetryPolicy {
    /// `max_attempts` (at least 1) with delays from `base` doubling up to `cap`.
    pub const fn new(max_attempts: u32, base: Duration, cap: Duration) -> Self {
        Self {
            max_attempts: if max_attempts == 0 { 1 } else { max_attempts },
            base,
            cap,
        }
    }

    /// Whether `attempt` (0-based) is the last one allowed.
    pub fn is_last(&self, attempt: u32) -> bool {
        attempt + 1 >= self.max_attempts
    }

    /// How long to wait after the failed `attempt` (0-based). `seed` varies
    /// the jitter between callers (and makes it reproducible in tests).
    pub fn delay(&self, attempt: u32, seed: u64) -> Duration {
        let exp = self.base.saturating_mul(1u32 << attempt.min(16));
        let ceiling = exp.min(self.cap);
        // xorshift over the seed: cheap, deterministic per call site, no RNG dependency.
        let mut x = seed ^ (u64::from(attempt) << 32) ^ 0x9E37_79B9_7F4A_7C15;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let frac = (x % 1_000) as f64 / 1_000.0;
        ceiling.mul_f64(0.5 + frac / 2.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy::new(5, Duration::from_millis(100), Duration::from_secs(2));
        let d0 = p.delay(0, 1);
        let d3 = p.delay(3, 1);
        let d10 = p.delay(10, 1);
        assert!(d0 >= Duration::from_millis(50) && d0 <= p.base);
        assert!(d3 >= Duration::from_millis(400) && d3 <= Duration::from_millis(800));
        assert!(d10 <= p.cap && d10 >= p.cap / 2);
    }

    #[test]
    fn equal_jitter_never_waits_less_than_half_the_ceiling() {
        let p = RetryPolicy::new(3, Duration::from_millis(80), Duration::from_secs(1));
        for seed in 0..500 {
            let d = p.delay(2, seed);
            assert!(
                d >= Duration::from_millis(160) && d <= Duration::from_millis(320),
                "{d:?}"
            );
        }
    }

    #[test]
    fn attempts_are_counted_from_zero_and_at_least_one() {
        let p = RetryPolicy::new(0, Duration::ZERO, Duration::ZERO);
        assert_eq!(p.max_attempts, 1);
        assert!(p.is_last(0));
        let p = RetryPolicy::new(3, Duration::ZERO, Duration::ZERO);
        assert!(!p.is_last(1) && p.is_last(2));
    }
}
