//! A token bucket shared by every Comprehend call in a container.
//!
//! A consumer container processes several messages at once
//! (`MESSAGE_CONCURRENCY`), each of which makes Comprehend batch calls; left
//! alone they would together exceed the account's request quota, get
//! throttled, retry with backoff and, near the function's deadline, fail
//! whole messages. One [`RateLimiter`] per container spaces the calls
//! instead: each call (retries included) takes one token; tokens refill at
//! `rate` per second up to `burst`. A caller that finds the bucket empty
//! reserves the next token and sleeps until it is due, so waiters are served
//! in arrival order and no caller spins.
//!
//! The default is [`DEFAULT_COMPREHEND_TPS`] (`COMPREHEND_MAX_TPS`):
//! Comprehend's default quota for BatchDetectSentiment (and
//! BatchDetectDominantLanguage) is 10 transactions per second per account
//! and region (AWS General Reference, "Amazon Comprehend endpoints and
//! quotas"; adjustable in Service Quotas). Several containers share that
//! quota, so set `COMPREHEND_MAX_TPS` to the quota divided by the
//! function's maximum concurrency.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Comprehend's default BatchDetectSentiment quota, in calls per second.
pub const DEFAULT_COMPREHEND_TPS: f64 = 10.0;

/// A token bucket; see the module docs. Share it behind an `Arc` (or inside
/// one shared analyzer).
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    state: Mutex<Bucket>,
    granted: AtomicU64,
}

#[derive(Debug)]
struct Bucket {
    /// Tokens available at `at`; negative when callers have reserved ahead.
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    /// `rate` tokens per second, at most `burst` saved up (both at least
    /// one token; a non-finite or non-positive rate is read as 1/s). The
    /// bucket starts full.
    pub fn new(rate: f64, burst: f64) -> Self {
        let rate = if rate.is_finite() && rate > 0.0 {
            rate
        } else {
            1.0
        };
        let burst = burst.max(1.0);
        Self {
            rate,
            burst,
            state: Mutex::new(Bucket {
                tokens: burst,
                at: Instant::now(),
            }),
            granted: AtomicU64::new(0),
        }
    }

    /// A bucket of `tps` calls per second with a one-second burst.
    pub fn per_second(tps: f64) -> Self {
        Self::new(tps, tps.floor())
    }

    /// Calls per second.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Take one token, waiting until it is due. Returns how long it waited.
    pub async fn acquire(&self) -> Duration {
        let wait = self.reserve();
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        wait
    }

    /// Tokens handed out so far.
    pub fn granted(&self) -> u64 {
        self.granted.load(Ordering::Relaxed)
    }

    /// Reserve one token now; how long until it may be used.
    fn reserve(&self) -> Duration {
        self.reserve_at(Instant::now())
    }

    /// Reserve one token at `now`; how long until it may be used.
    fn reserve_at(&self, now: Instant) -> Duration {
        self.granted.fetch_add(1, Ordering::Relaxed);
        let mut b = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = now.max(b.at);
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.rate).min(self.burst);
        b.at = now;
        b.tokens -= 1.0;
        if b.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-b.tokens / self.rate)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Within a microsecond (float arithmetic).
    fn near(d: Duration, want: Duration) -> bool {
        d.abs_diff(want) <= Duration::from_micros(1)
    }

    #[test]
    fn a_full_bucket_allows_a_burst_then_spaces_calls_at_the_rate() {
        let limiter = RateLimiter::per_second(10.0);
        let t0 = Instant::now();
        for _ in 0..10 {
            assert_eq!(limiter.reserve_at(t0), Duration::ZERO, "burst of 10");
        }
        // The 11th to 15th, asked at the same moment, wait one refill more each.
        for k in 1..=5 {
            let wait = limiter.reserve_at(t0);
            assert!(near(wait, ms(100 * k)), "{wait:?}");
        }
        // 2 s later the debt (0.5 s) is paid and 1.5 s of tokens are back.
        for _ in 0..10 {
            assert_eq!(limiter.reserve_at(t0 + ms(2_000)), Duration::ZERO);
        }
        assert!(near(limiter.reserve_at(t0 + ms(2_000)), ms(100)));
        assert_eq!(limiter.granted(), 26);
    }

    #[test]
    fn concurrent_callers_share_one_budget() {
        let limiter = Arc::new(RateLimiter::per_second(10.0));
        let t0 = Instant::now();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let l = Arc::clone(&limiter);
                std::thread::spawn(move || (0..10).map(|_| l.reserve_at(t0)).collect::<Vec<_>>())
            })
            .collect();
        let mut waits: Vec<Duration> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        waits.sort();
        // 40 calls at one moment: 10 now, then one per 100 ms up to 3 s,
        // whichever thread asked.
        for (n, w) in waits.iter().enumerate() {
            let want = ms(100 * (n.saturating_sub(9)) as u64);
            assert!(near(*w, want), "call {n}: {w:?}, want {want:?}");
        }
    }

    #[test]
    fn an_idle_bucket_refills_only_up_to_its_burst() {
        let limiter = RateLimiter::new(2.0, 3.0);
        let later = Instant::now() + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(limiter.reserve_at(later), Duration::ZERO);
        }
        assert!(near(limiter.reserve_at(later), ms(500)));
        assert_eq!(RateLimiter::new(f64::NAN, 0.0).rate(), 1.0);
    }

    #[tokio::test]
    async fn acquire_without_waiting_when_tokens_are_there() {
        let limiter = RateLimiter::per_second(5.0);
        for _ in 0..5 {
            assert_eq!(limiter.acquire().await, Duration::ZERO);
        }
        assert_eq!(limiter.granted(), 5);
    }
}
