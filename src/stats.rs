//! Counters and latency histograms made of atomics, for the hot paths `/metrics` watches (every
//! HSM call, every OCSP answer): recording is a few relaxed atomic adds, no lock, no allocation.
//! A leaf: the token, the responder and the store record here; the HTTP front end renders.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds of the latency buckets, seconds (Prometheus `le`), shared by every histogram
/// here so that dashboards can compare them.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// A latency histogram of atomics (cumulative buckets are computed when read).
#[derive(Debug, Default)]
pub struct Latency {
    /// Observations per bucket, not cumulative; the last one is +Inf.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

/// A histogram as read at one moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LatencySnapshot {
    /// Cumulative counts for each bound of [`LATENCY_BUCKETS`] (`le`), without +Inf.
    pub cumulative: Vec<u64>,
    /// Observations (+Inf).
    pub count: u64,
    /// Their sum, seconds.
    pub sum_seconds: f64,
}

impl Latency {
    /// Record one observation.
    pub fn observe(&self, took: Duration) {
        let secs = took.as_secs_f64();
        let i = LATENCY_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(LATENCY_BUCKETS.len());
        if let Some(b) = self.buckets.get(i) {
            b.fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_nanos
            .fetch_add(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX), Relaxed);
    }

    /// The histogram now (buckets read one by one: under load a scrape may see an observation
    /// in `count` but not yet in its bucket, which Prometheus tolerates).
    pub fn snapshot(&self) -> LatencySnapshot {
        let mut acc = 0;
        let cumulative = self.buckets[..LATENCY_BUCKETS.len()]
            .iter()
            .map(|b| {
                acc += b.load(Relaxed);
                acc
            })
            .collect();
        LatencySnapshot {
            cumulative,
            count: self.count.load(Relaxed),
            sum_seconds: self.sum_nanos.load(Relaxed) as f64 / 1e9,
        }
    }
}

/// Kinds of HSM operation counted (`pnc_hsm_operations_total{op}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HsmOp {
    /// A signature (certificates, CRLs, OCSP answers, tokens, provisioning answers).
    Sign,
    /// A key pair generated (CA keys, exportable contract keys).
    Generate,
    /// A key looked up or read (by label or id, its public key or attributes).
    Find,
    /// A health check of the keeper session.
    Check,
    /// The module finalized and initialized again (a token that went away).
    Reinitialize,
    /// Anything else (token initialisation, object counts, token info).
    Other,
}

impl HsmOp {
    /// Every kind, in exposition order.
    pub const ALL: [HsmOp; 6] = [
        HsmOp::Sign,
        HsmOp::Generate,
        HsmOp::Find,
        HsmOp::Check,
        HsmOp::Reinitialize,
        HsmOp::Other,
    ];

    /// The `op` label.
    pub fn name(self) -> &'static str {
        match self {
            HsmOp::Sign => "sign",
            HsmOp::Generate => "generate",
            HsmOp::Find => "find",
            HsmOp::Check => "check",
            HsmOp::Reinitialize => "reinitialize",
            HsmOp::Other => "other",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// HSM call counters of one process.
#[derive(Debug, Default)]
pub struct HsmStats {
    calls: [AtomicU64; HsmOp::ALL.len()],
    errors: [AtomicU64; HsmOp::ALL.len()],
    /// Time of each signature, session wait and retries included.
    pub sign_latency: Latency,
}

/// HSM counters as read at one moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HsmSnapshot {
    /// (kind, calls, failed calls).
    pub ops: Vec<(&'static str, u64, u64)>,
    /// Signature latency.
    pub sign_latency: LatencySnapshot,
}

impl HsmStats {
    /// Count one call of `op`, failed or not, and for a signature its time.
    pub fn record(&self, op: HsmOp, ok: bool, took: Duration) {
        let i = op.index();
        if let Some(c) = self.calls.get(i) {
            c.fetch_add(1, Relaxed);
        }
        if !ok && let Some(c) = self.errors.get(i) {
            c.fetch_add(1, Relaxed);
        }
        if op == HsmOp::Sign {
            self.sign_latency.observe(took);
        }
    }

    /// The counters now.
    pub fn snapshot(&self) -> HsmSnapshot {
        HsmSnapshot {
            ops: HsmOp::ALL
                .iter()
                .map(|op| {
                    let i = op.index();
                    let load = |a: &[AtomicU64]| a.get(i).map_or(0, |c| c.load(Relaxed));
                    (op.name(), load(&self.calls), load(&self.errors))
                })
                .collect(),
            sign_latency: self.sign_latency.snapshot(),
        }
    }
}

/// Connections of a database pool, read at scrape time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolSnapshot {
    /// Open connections (in use + idle).
    pub size: u32,
    /// Idle connections.
    pub idle: u32,
    /// The pool's maximum.
    pub max: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_counts_per_kind() {
        let l = Latency::default();
        l.observe(Duration::from_micros(100));
        l.observe(Duration::from_millis(30));
        l.observe(Duration::from_secs(5));
        let s = l.snapshot();
        assert_eq!(s.count, 3);
        assert_eq!(s.cumulative[0], 1, "0.5 ms");
        assert_eq!(s.cumulative[6], 2, "50 ms");
        assert_eq!(*s.cumulative.last().unwrap(), 2, "5 s is only in +Inf");
        assert!((s.sum_seconds - 5.0301).abs() < 1e-6);

        let h = HsmStats::default();
        h.record(HsmOp::Sign, true, Duration::from_millis(2));
        h.record(HsmOp::Find, false, Duration::ZERO);
        let s = h.snapshot();
        assert_eq!(s.ops[0], ("sign", 1, 0));
        assert_eq!(s.ops[2], ("find", 1, 1));
        assert_eq!(s.sign_latency.count, 1);
    }
}
