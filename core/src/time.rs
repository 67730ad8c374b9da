//! Time as the core sees it: a monotonic microsecond count supplied by the caller.
//!
//! The core never reads a clock. Every time-dependent call takes `now: Instant`, and the
//! caller promises that successive values never go backwards (a smaller value is treated
//! as equal to the last one seen). The epoch is arbitrary: boot time, process start, or
//! zero in a simulation.

use core::ops::{Add, Sub};
use core::time::Duration;

/// A point on the caller's monotonic clock, in microseconds since an arbitrary epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(u64);

impl Instant {
    /// The epoch itself.
    pub const ZERO: Instant = Instant(0);
    /// A time later than any real one; used as "never" by timers.
    pub const FAR_FUTURE: Instant = Instant(u64::MAX);

    /// Makes an instant from microseconds since the caller's epoch.
    pub const fn from_micros(us: u64) -> Self {
        Instant(us)
    }
    /// Makes an instant from milliseconds since the caller's epoch.
    pub const fn from_millis(ms: u64) -> Self {
        Instant(ms.saturating_mul(1000))
    }
    /// Microseconds since the epoch.
    pub const fn as_micros(self) -> u64 {
        self.0
    }
    /// Time elapsed from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Instant) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }
    /// `self + d`, saturating at [`Instant::FAR_FUTURE`].
    pub fn saturating_add(self, d: Duration) -> Instant {
        Instant(self.0.saturating_add(duration_micros(d)))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        self.saturating_add(d)
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    fn sub(self, earlier: Instant) -> Duration {
        self.saturating_since(earlier)
    }
}

/// A duration in whole microseconds, saturating at `u64::MAX`.
pub fn duration_micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(feature = "std")]
impl Instant {
    /// Microseconds elapsed since `epoch` on the standard monotonic clock.
    /// A convenience for std adapters; the core itself never calls it.
    pub fn since(epoch: std::time::Instant) -> Self {
        Instant(duration_micros(epoch.elapsed()))
    }
}
