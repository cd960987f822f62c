//! The wall clock, passed in rather than read: the consume step stamps
//! `processed_at` and the producer's filter counts writers whose clocks are
//! ahead, and both must be testable (and reproducible byte for byte) with a
//! clock the test controls.

use chrono::{DateTime, Utc};

/// Where "now" comes from.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that always reads the same instant (tests, reproducible runs).
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub DateTime<Utc>);

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
}

/// The system clock as a `&'static dyn Clock`, for the common case.
pub static SYSTEM_CLOCK: SystemClock = SystemClock;
