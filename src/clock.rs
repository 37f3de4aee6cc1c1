//! The time every layer uses: validity periods, CRL and OCSP times, replica leases, expiry filters
//! and audit timestamps. Injected (one [`SharedClock`] per process) rather than read from the
//! system everywhere, so that tests can move time forward instead of sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of the current time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Unix time in milliseconds.
    fn now_ms(&self) -> i64;

    /// Unix time in seconds.
    fn now(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }
}

/// The clock handle layers hold.
pub type SharedClock = Arc<dyn Clock>;

/// The operating system's clock (production).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// The system clock as a [`SharedClock`].
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// A clock that stands still until told to move (tests).
#[derive(Debug)]
pub struct ManualClock {
    ms: AtomicI64,
}

impl ManualClock {
    /// A clock reading `unix_ms`.
    pub fn at_ms(unix_ms: i64) -> Arc<ManualClock> {
        Arc::new(ManualClock {
            ms: AtomicI64::new(unix_ms),
        })
    }

    /// A clock reading the system time now (and then standing still).
    pub fn starting_now() -> Arc<ManualClock> {
        Self::at_ms(SystemClock.now_ms())
    }

    /// Move forward (or, with a negative amount, back) by `ms` milliseconds.
    pub fn advance_ms(&self, ms: i64) {
        self.ms.fetch_add(ms, Ordering::SeqCst);
    }

    /// Move forward by `secs` seconds.
    pub fn advance_secs(&self, secs: i64) {
        self.advance_ms(secs.saturating_mul(1000));
    }

    /// Set the time.
    pub fn set_ms(&self, unix_ms: i64) {
        self.ms.store(unix_ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.ms.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::at_ms(1_000_500);
        assert_eq!(c.now(), 1000);
        c.advance_secs(86_400);
        assert_eq!(c.now(), 87_400);
        c.advance_ms(-1);
        assert_eq!(c.now_ms(), 87_400_499);
        let shared: SharedClock = c.clone();
        c.set_ms(5);
        assert_eq!(shared.now_ms(), 5);
        assert!(SystemClock.now() > 1_700_000_000);
    }
}
