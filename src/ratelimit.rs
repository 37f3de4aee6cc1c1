//! Rate limits keyed by who is asking (an address, a client id), with memory bounded however
//! many keys an attacker invents. No I/O; the front ends and the RA decide what to key on.
//!
//! - [`Rate`]: `"10/s"`, `"600/min"`, `"5/s:20"` (rate and burst), or `"off"`.
//! - [`Keyed`]: one GCRA bucket per key (`governor`), at most `max_keys` of them: beyond that,
//!   idle buckets are swept (at most once a second) and, if the map is still full, every new
//!   key shares one overflow bucket, so a flood of fresh addresses degrades into one global
//!   limit instead of growing memory.
//! - [`FailureBudget`]: failures per key; a key that spent its budget is refused until the budget
//!   refills, without any of the work (argon2, signature checks) a request would cost.

use std::collections::HashMap;
use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};

/// A rate setting that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("'{0}' is not a rate (e.g. 10/s, 600/min, 5/s:20 for a burst of 20, or off)")]
pub struct RateError(pub String);

/// A sustained rate and the burst allowed on top of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// Events per `per`.
    pub count: NonZeroU32,
    /// The period `count` refers to.
    pub per: Duration,
    /// How many may come at once (at least 1).
    pub burst: NonZeroU32,
}

impl Rate {
    /// `count` per second with a burst of `burst`.
    pub fn per_second(count: u32, burst: u32) -> Option<Rate> {
        Some(Rate {
            count: NonZeroU32::new(count)?,
            per: Duration::from_secs(1),
            burst: NonZeroU32::new(burst)?,
        })
    }

    /// Parse `N/s`, `N/min` (`N/m`), `N/h`, optionally `:BURST` (default: N); `off` or `0`
    /// is `None` (no limit).
    pub fn parse(s: &str) -> Result<Option<Rate>, RateError> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("off") || t == "0" {
            return Ok(None);
        }
        let bad = || RateError(s.to_string());
        let (rate, burst) = match t.split_once(':') {
            Some((r, b)) => (r, Some(b.trim().parse::<u32>().map_err(|_| bad())?)),
            None => (t, None),
        };
        let (n, unit) = rate.split_once('/').ok_or_else(bad)?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        let per = match unit.trim() {
            "s" | "sec" => Duration::from_secs(1),
            "m" | "min" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            _ => return Err(bad()),
        };
        let count = NonZeroU32::new(count).ok_or_else(bad)?;
        let burst = NonZeroU32::new(burst.unwrap_or(count.get())).ok_or_else(bad)?;
        Ok(Some(Rate { count, per, burst }))
    }

    fn quota(&self) -> Quota {
        // One token every per/count; never a zero period.
        let every = (self.per / self.count.get()).max(Duration::from_nanos(1));
        Quota::with_period(every)
            .unwrap_or(Quota::per_second(self.count))
            .allow_burst(self.burst)
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let unit = match self.per.as_secs() {
            1 => "s",
            60 => "min",
            _ => "h",
        };
        write!(f, "{}/{unit}", self.count)?;
        if self.burst != self.count {
            write!(f, ":{}", self.burst)?;
        }
        Ok(())
    }
}

/// Text form for settings files: `"10/s"`, `"off"`.
pub fn display_rate(r: Option<Rate>) -> String {
    r.map_or_else(|| "off".to_string(), |r| r.to_string())
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Slot<K> {
    Key(K),
    Overflow,
}

type Limiter<K, C> =
    RateLimiter<Slot<K>, DashMapStateStore<Slot<K>>, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// The default bound on tracked keys of one limiter (a few MB at most).
pub const DEFAULT_MAX_KEYS: usize = 65_536;

/// A rate limit per key with a bounded number of keys (see the module docs).
pub struct Keyed<K: Hash + Eq + Clone, C: Clock + Clone = DefaultClock> {
    limiter: Option<Limiter<K, C>>,
    clock: C,
    max_keys: usize,
    last_sweep: Mutex<Option<C::Instant>>,
}

impl<K: Hash + Eq + Clone> Keyed<K> {
    /// A limiter on the monotonic clock; `None` means no limit.
    pub fn new(rate: Option<Rate>, max_keys: usize) -> Keyed<K> {
        Keyed::with_clock(rate, max_keys, DefaultClock::default())
    }
}

impl<K: Hash + Eq + Clone, C: Clock + Clone> Keyed<K, C> {
    /// A limiter on `clock` (tests pass governor's `FakeRelativeClock`).
    pub fn with_clock(rate: Option<Rate>, max_keys: usize, clock: C) -> Keyed<K, C> {
        Keyed {
            limiter: rate.map(|r| RateLimiter::dashmap_with_clock(r.quota(), clock.clone())),
            clock,
            max_keys: max_keys.max(1),
            last_sweep: Mutex::new(None),
        }
    }

    /// Whether this limiter limits anything.
    pub fn enabled(&self) -> bool {
        self.limiter.is_some()
    }

    /// Take one event for `key`: `Err(wait)` when over the limit (retry after `wait`).
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        let Some(l) = &self.limiter else {
            return Ok(());
        };
        let slot = if l.len() >= self.max_keys && !self.sweep(l) {
            Slot::Overflow
        } else {
            Slot::Key(key.clone())
        };
        l.check_key(&slot)
            .map_err(|n| n.wait_time_from(self.clock.now()))
    }

    /// Drop idle buckets, at most once a second; whether there is room afterwards.
    fn sweep(&self, l: &Limiter<K, C>) -> bool {
        let now = self.clock.now();
        let mut last = self.last_sweep.lock().unwrap_or_else(|p| p.into_inner());
        let due =
            last.is_none_or(|t| Duration::from(now.duration_since(t)) >= Duration::from_secs(1));
        if due {
            *last = Some(now);
            l.retain_recent();
            l.shrink_to_fit();
        }
        l.len() < self.max_keys
    }

    /// How many keys are tracked (for tests and metrics).
    pub fn tracked(&self) -> usize {
        self.limiter.as_ref().map_or(0, |l| l.len())
    }
}

/// Failures per key: a key that failed more often than its budget allows is refused until the
/// budget refills (see the module docs).
pub struct FailureBudget<K: Hash + Eq + Clone, C: Clock + Clone = DefaultClock> {
    failures: Keyed<K, C>,
    clock: C,
    start: C::Instant,
    /// Key → until when (time since `start`) it is refused.
    blocked: Mutex<HashMap<K, Duration>>,
    max_keys: usize,
}

impl<K: Hash + Eq + Clone> FailureBudget<K> {
    /// A budget on the monotonic clock; `None` means failures are never refused.
    pub fn new(rate: Option<Rate>, max_keys: usize) -> FailureBudget<K> {
        FailureBudget::with_clock(rate, max_keys, DefaultClock::default())
    }
}

impl<K: Hash + Eq + Clone, C: Clock + Clone> FailureBudget<K, C> {
    /// A budget on `clock`.
    pub fn with_clock(rate: Option<Rate>, max_keys: usize, clock: C) -> FailureBudget<K, C> {
        FailureBudget {
            failures: Keyed::with_clock(rate, max_keys, clock.clone()),
            start: clock.now(),
            clock,
            blocked: Mutex::new(HashMap::new()),
            max_keys: max_keys.max(1),
        }
    }

    fn elapsed(&self) -> Duration {
        self.clock.now().duration_since(self.start).into()
    }

    /// `Some(wait)` while `key` is refused.
    pub fn refused(&self, key: &K) -> Option<Duration> {
        if !self.failures.enabled() {
            return None;
        }
        let now = self.elapsed();
        let mut b = self.blocked.lock().unwrap_or_else(|p| p.into_inner());
        match b.get(key) {
            Some(until) if *until > now => Some(*until - now),
            Some(_) => {
                b.remove(key);
                None
            }
            None => None,
        }
    }

    /// Record a failure of `key`; `Some(wait)` when this one spent the budget.
    pub fn failed(&self, key: &K) -> Option<Duration> {
        let wait = self.failures.check(key).err()?;
        let now = self.elapsed();
        let mut b = self.blocked.lock().unwrap_or_else(|p| p.into_inner());
        if b.len() >= self.max_keys {
            b.retain(|_, until| *until > now);
        }
        if b.len() < self.max_keys || b.contains_key(key) {
            b.insert(key.clone(), now + wait);
        }
        Some(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    #[test]
    fn rates_parse_and_print() {
        let r = Rate::parse("10/s").unwrap().unwrap();
        assert_eq!(
            (r.count.get(), r.per, r.burst.get()),
            (10, Duration::from_secs(1), 10)
        );
        let r = Rate::parse(" 600/min:50 ").unwrap().unwrap();
        assert_eq!(
            (r.count.get(), r.per.as_secs(), r.burst.get()),
            (600, 60, 50)
        );
        assert_eq!(r.to_string(), "600/min:50");
        assert_eq!(Rate::parse("off").unwrap(), None);
        assert_eq!(Rate::parse("0").unwrap(), None);
        for bad in ["", "10", "10/d", "x/s", "0/s", "5/s:0", "5/s:x", "-1/s"] {
            assert!(Rate::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_key_gets_its_burst_then_the_rate() {
        let clock = FakeRelativeClock::default();
        let l: Keyed<u32, _> = Keyed::with_clock(Rate::per_second(2, 3), 100, clock.clone());
        assert!((0..3).all(|_| l.check(&1).is_ok()));
        let wait = l.check(&1).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(500),
            "{wait:?}"
        );
        assert!(l.check(&2).is_ok(), "other keys are not affected");
        clock.advance(Duration::from_millis(500));
        assert!(l.check(&1).is_ok());
        assert!(l.check(&1).is_err());
    }

    #[test]
    fn no_rate_means_no_limit() {
        let l: Keyed<u32> = Keyed::new(None, 1);
        assert!((0..10_000).all(|k| l.check(&k).is_ok()));
        assert_eq!(l.tracked(), 0);
    }

    #[test]
    fn fresh_keys_beyond_the_bound_share_one_bucket() {
        let clock = FakeRelativeClock::default();
        let l: Keyed<u32, _> = Keyed::with_clock(Rate::per_second(1, 5), 100, clock.clone());
        let mut refused = 0;
        for k in 0..10_000 {
            if l.check(&k).is_err() {
                refused += 1;
            }
        }
        // 100 keys got their own bucket, the 9,900 others shared 5 tokens.
        assert_eq!(refused, 10_000 - 100 - 5);
        assert!(l.tracked() <= 101, "{}", l.tracked());
        // Once the tracked buckets are idle again they are swept and new keys get their own.
        clock.advance(Duration::from_secs(10));
        assert!(l.check(&20_000).is_ok() && l.check(&20_001).is_ok());
        assert!(l.tracked() <= 3, "{}", l.tracked());
    }

    #[test]
    fn a_key_that_spent_its_failures_is_refused_until_they_refill() {
        let clock = FakeRelativeClock::default();
        let b: FailureBudget<u32, _> =
            FailureBudget::with_clock(Rate::per_second(1, 3), 100, clock.clone());
        for _ in 0..3 {
            assert!(b.refused(&7).is_none());
            assert!(b.failed(&7).is_none());
        }
        assert!(
            b.failed(&7).is_some(),
            "the fourth failure spends the budget"
        );
        assert!(b.refused(&7).is_some());
        assert!(b.refused(&8).is_none(), "per key");
        clock.advance(Duration::from_secs(2));
        assert!(b.refused(&7).is_none());
        let none: FailureBudget<u32> = FailureBudget::new(None, 10);
        assert!((0..100).all(|_| none.failed(&1).is_none() && none.refused(&1).is_none()));
    }
}
