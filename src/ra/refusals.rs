//! Refusals in the audit log without letting anyone flood it: failed authentications
//! (`auth.failure`), policy denials (`auth.denied`), refused enrollments
//! (`certificate.enroll.refused`) and refused revocations (`certificate.revoke.refused`).
//!
//! Per source (the client address, or the authenticated actor) and action, the first refusal in
//! a window is written at once, in full; the ones after it are only counted, and when the window
//! ends one summary row (`<action>.repeated`: count, reasons, a few sample targets) is written.
//! So the log stays complete — every refusal is in a row or a count — and grows by at most two
//! rows per source and window, however many requests arrive. At most `MAX_SOURCES` sources are
//! tracked per window; refusals beyond share one `other` bucket.

use std::collections::{BTreeMap, HashMap};

use crate::model::AuditEvent;

/// Sources tracked per window; beyond, refusals are counted in one shared bucket.
pub const MAX_SOURCES: usize = 4096;
/// Distinct sample targets kept per summary.
const SAMPLES: usize = 5;

#[derive(Debug, Default)]
struct Tally {
    actor: String,
    /// Refusals after the first (the first was written at once).
    repeated: u64,
    reasons: BTreeMap<String, u64>,
    samples: Vec<String>,
    first_at: i64,
    last_at: i64,
}

#[derive(Debug, Default)]
struct Window {
    start: i64,
    tallies: HashMap<(String, &'static str), Tally>,
}

/// One refusal to record.
#[derive(Debug)]
pub struct Refusal<'a> {
    /// Who: the actor as far as known (`anonymous`, `client:…`).
    pub actor: &'a str,
    /// Where from: the aggregation key (an address, or the actor).
    pub source: &'a str,
    /// The audit action (`auth.failure`, …).
    pub action: &'static str,
    /// The machine-readable reason.
    pub reason: &'a str,
    /// What was asked for (a path, `issuer/serial`, a profile).
    pub target: &'a str,
    /// Details of the full row written for the first refusal.
    pub details: serde_json::Value,
}

/// The aggregation state (one per RA).
#[derive(Debug)]
pub struct Refusals {
    window: i64,
    state: std::sync::Mutex<Window>,
}

impl Refusals {
    /// Aggregate over windows of `window_secs` (at least 1).
    pub fn new(window_secs: i64) -> Refusals {
        Refusals {
            window: window_secs.max(1),
            state: std::sync::Mutex::new(Window::default()),
        }
    }

    /// Record a refusal at `now`; returns the rows to write (the full row if it is the first of
    /// its source in this window, and the summaries of a window that just ended).
    pub fn record(&self, r: Refusal<'_>, now: i64) -> Vec<AuditEvent> {
        let mut g = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = self.roll(&mut g, now);
        let full = g.tallies.len() >= MAX_SOURCES;
        let source = if full && !g.tallies.contains_key(&(r.source.to_string(), r.action)) {
            "other".to_string()
        } else {
            r.source.to_string()
        };
        match g.tallies.get_mut(&(source.clone(), r.action)) {
            Some(t) => {
                t.repeated += 1;
                t.last_at = now;
                *t.reasons.entry(cut(r.reason, 64)).or_default() += 1;
                let target = cut(r.target, 128);
                if t.samples.len() < SAMPLES && !t.samples.contains(&target) {
                    t.samples.push(target);
                }
            }
            None => {
                g.tallies.insert(
                    (source.clone(), r.action),
                    Tally {
                        actor: r.actor.to_string(),
                        first_at: now,
                        last_at: now,
                        ..Tally::default()
                    },
                );
                let mut details = r.details;
                if let Some(m) = details.as_object_mut() {
                    m.insert("reason".into(), r.reason.into());
                    m.insert("source".into(), source.into());
                }
                out.push(AuditEvent::new(r.actor, r.action, r.target, details));
            }
        }
        out
    }

    /// Summaries of the current window if it has ended by `now` (the periodic flush), or of
    /// everything counted so far when `force` (shutdown).
    pub fn flush(&self, now: i64, force: bool) -> Vec<AuditEvent> {
        let mut g = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if force {
            let w = std::mem::take(&mut *g);
            g.start = now;
            return summaries(w, now);
        }
        self.roll(&mut g, now)
    }

    fn roll(&self, g: &mut Window, now: i64) -> Vec<AuditEvent> {
        if now < g.start + self.window {
            return Vec::new();
        }
        let w = std::mem::take(g);
        g.start = now - now.rem_euclid(self.window);
        summaries(w, now)
    }
}

fn cut(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

fn summaries(w: Window, now: i64) -> Vec<AuditEvent> {
    let mut out: Vec<AuditEvent> = w
        .tallies
        .into_iter()
        .filter(|(_, t)| t.repeated > 0)
        .map(|((source, action), t)| {
            AuditEvent::new(
                &t.actor,
                &format!("{action}.repeated"),
                &source,
                serde_json::json!({
                    "source": source,
                    "count": t.repeated,
                    "reasons": t.reasons,
                    "sample_targets": t.samples,
                    "first_at": t.first_at,
                    "last_at": t.last_at,
                    "window_end": now,
                }),
            )
        })
        .collect();
    out.sort_by(|a, b| a.target.cmp(&b.target));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal<'a>(source: &'a str, target: &'a str) -> Refusal<'a> {
        Refusal {
            actor: "anonymous",
            source,
            action: "auth.failure",
            reason: "invalid_token",
            target,
            details: serde_json::json!({}),
        }
    }

    #[test]
    fn the_first_refusal_is_written_the_rest_counted_then_summarised() {
        let r = Refusals::new(60);
        let first = r.record(refusal("192.0.2.1", "/a"), 1000);
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].action, "auth.failure");
        assert_eq!(first[0].details["source"], "192.0.2.1");
        for i in 0..999 {
            let t = format!("/p{i}");
            assert!(r.record(refusal("192.0.2.1", &t), 1001).is_empty());
        }
        assert_eq!(r.record(refusal("192.0.2.2", "/b"), 1002).len(), 1);
        assert!(r.flush(1010, false).is_empty(), "window not over");
        let sums = r.flush(1020, false);
        assert_eq!(sums.len(), 1, "only the source with repeats gets a summary");
        assert_eq!(sums[0].action, "auth.failure.repeated");
        assert_eq!(sums[0].details["count"], 999);
        assert_eq!(sums[0].details["reasons"]["invalid_token"], 999);
        assert_eq!(
            sums[0].details["sample_targets"].as_array().unwrap().len(),
            SAMPLES
        );
        // A new window starts over: the next refusal is written in full again.
        assert_eq!(r.record(refusal("192.0.2.1", "/a"), 1030).len(), 1);
    }

    #[test]
    fn sources_beyond_the_bound_share_one_bucket() {
        let r = Refusals::new(60);
        let mut rows = 0;
        for i in 0..(MAX_SOURCES + 500) {
            rows += r.record(refusal(&format!("s{i}"), "/x"), 5).len();
        }
        assert_eq!(
            rows,
            MAX_SOURCES + 1,
            "one row per tracked source, one for 'other'"
        );
        let sums = r.flush(0, true);
        assert_eq!(sums.len(), 1);
        assert_eq!(sums[0].target, "other");
        assert_eq!(sums[0].details["count"], 499);
    }
}
