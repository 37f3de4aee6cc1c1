//! Prometheus text exposition, hand-rolled: a few counters and a latency histogram per route are
//! all we need, and a mutex around small maps is far below the cost of one HSM signature.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::AppState;

const BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

#[derive(Default)]
struct Hist {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
struct Inner {
    requests: BTreeMap<(String, String, u16), u64>,
    latency: BTreeMap<String, Hist>,
    issued: BTreeMap<String, u64>,
    auth_failures: BTreeMap<String, u64>,
    limited: BTreeMap<String, u64>,
    provisioned: u64,
    provisioned_bytes: u64,
    provisioned_max_bytes: u64,
}

/// The counters of one process.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    fn with(&self, f: impl FnOnce(&mut Inner)) {
        // A poisoned lock only means a panic elsewhere mid-update; counters stay usable.
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g);
    }

    /// Count a request and its latency. Methods outside the standard set count as `other`, so
    /// that callers cannot create series (routes are the router's own, statuses ours).
    pub fn observe(&self, method: &str, route: &str, status: u16, took: Duration) {
        let secs = took.as_secs_f64();
        let method = method_label(method);
        self.with(|m| {
            *m.requests
                .entry((method.to_string(), route.to_string(), status))
                .or_default() += 1;
            let h = m.latency.entry(route.to_string()).or_default();
            h.count += 1;
            h.sum += secs;
            for (i, b) in BUCKETS.iter().enumerate() {
                if secs <= *b {
                    h.counts[i] += 1;
                }
            }
        });
    }

    /// Count an issuance over HTTP.
    pub fn issued(&self, profile: &str) {
        self.with(|m| *m.issued.entry(profile.to_string()).or_default() += 1);
    }

    /// Count a rejected authentication.
    pub fn auth_failure(&self, reason: &str) {
        self.with(|m| *m.auth_failures.entry(reason.to_string()).or_default() += 1);
    }

    /// Count a request refused by a limit (`rate_limited`, `too_many_failures`, `busy`).
    pub fn limited(&self, code: &str) {
        self.with(|m| *m.limited.entry(code.to_string()).or_default() += 1);
    }

    /// Count a delivered provisioning answer of `bytes` EXI bytes.
    pub fn provisioning_answer(&self, bytes: usize) {
        let b = u64::try_from(bytes).unwrap_or(u64::MAX);
        self.with(|m| {
            m.provisioned += 1;
            m.provisioned_bytes += b;
            m.provisioned_max_bytes = m.provisioned_max_bytes.max(b);
        });
    }

    /// The Prometheus text exposition.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        self.with(|m| {
            let _ = writeln!(out, "# HELP pnc_http_requests_total HTTP requests by route and status.");
            let _ = writeln!(out, "# TYPE pnc_http_requests_total counter");
            for ((method, route, status), n) in &m.requests {
                let _ = writeln!(
                    out,
                    "pnc_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {n}",
                    esc(route)
                );
            }
            let _ = writeln!(out, "# HELP pnc_http_request_duration_seconds Request latency by route.");
            let _ = writeln!(out, "# TYPE pnc_http_request_duration_seconds histogram");
            for (route, h) in &m.latency {
                let r = esc(route);
                for (i, b) in BUCKETS.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "pnc_http_request_duration_seconds_bucket{{route=\"{r}\",le=\"{b}\"}} {}",
                        h.counts[i]
                    );
                }
                let _ = writeln!(out, "pnc_http_request_duration_seconds_bucket{{route=\"{r}\",le=\"+Inf\"}} {}", h.count);
                let _ = writeln!(out, "pnc_http_request_duration_seconds_sum{{route=\"{r}\"}} {}", h.sum);
                let _ = writeln!(out, "pnc_http_request_duration_seconds_count{{route=\"{r}\"}} {}", h.count);
            }
            let _ = writeln!(out, "# HELP pnc_certificates_issued_total Certificates issued over HTTP by profile.");
            let _ = writeln!(out, "# TYPE pnc_certificates_issued_total counter");
            for (p, n) in &m.issued {
                let _ = writeln!(out, "pnc_certificates_issued_total{{profile=\"{}\"}} {n}", esc(p));
            }
            let _ = writeln!(out, "# HELP pnc_auth_failures_total Rejected authentications by reason.");
            let _ = writeln!(out, "# TYPE pnc_auth_failures_total counter");
            for (r, n) in &m.auth_failures {
                let _ = writeln!(out, "pnc_auth_failures_total{{reason=\"{}\"}} {n}", esc(r));
            }
            let _ = writeln!(out, "# HELP pnc_limited_total Requests refused by a rate or capacity limit, by reason.");
            let _ = writeln!(out, "# TYPE pnc_limited_total counter");
            for (r, n) in &m.limited {
                let _ = writeln!(out, "pnc_limited_total{{reason=\"{}\"}} {n}", esc(r));
            }
            let _ = writeln!(out, "# HELP pnc_provisioning_answers_total Contract provisioning answers delivered.");
            let _ = writeln!(out, "# TYPE pnc_provisioning_answers_total counter");
            let _ = writeln!(out, "pnc_provisioning_answers_total {}", m.provisioned);
            let _ = writeln!(out, "# HELP pnc_provisioning_answer_bytes_total EXI bytes of the delivered provisioning answers.");
            let _ = writeln!(out, "# TYPE pnc_provisioning_answer_bytes_total counter");
            let _ = writeln!(out, "pnc_provisioning_answer_bytes_total {}", m.provisioned_bytes);
            let _ = writeln!(out, "# HELP pnc_provisioning_answer_max_bytes Largest provisioning answer so far, EXI bytes.");
            let _ = writeln!(out, "# TYPE pnc_provisioning_answer_max_bytes gauge");
            let _ = writeln!(out, "pnc_provisioning_answer_max_bytes {}", m.provisioned_max_bytes);
        });
        out
    }
}

/// The label of a request method: one of the RFC 9110 methods (and PATCH), else `other`.
pub fn method_label(method: &str) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ];
    KNOWN
        .iter()
        .find(|m| **m == method)
        .copied()
        .unwrap_or("other")
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `GET /metrics`: the HTTP counters, the OCSP responder's budget, counters and answer time,
/// the token's operations, revocations and the database pool (read now).
pub async fn render(State(st): State<AppState>) -> impl IntoResponse {
    let mut text = st.metrics.render_text();
    let live = st.ocsp.live_stats();
    let _ = writeln!(
        text,
        "# HELP pnc_ocsp_live_signatures_total Live OCSP signatures made for requests (nonce, several CertIDs, unknown serials)."
    );
    let _ = writeln!(text, "# TYPE pnc_ocsp_live_signatures_total counter");
    let _ = writeln!(text, "pnc_ocsp_live_signatures_total {}", live.signed);
    let _ = writeln!(
        text,
        "# HELP pnc_ocsp_live_refused_total Requests that wanted a live OCSP signature beyond the budget."
    );
    let _ = writeln!(text, "# TYPE pnc_ocsp_live_refused_total counter");
    let _ = writeln!(text, "pnc_ocsp_live_refused_total {}", live.refused);
    let (batches, items, largest) = st.ra.issuance_batches();
    let _ = writeln!(
        text,
        "# HELP pnc_store_issuance_batches_total Transactions the group commit of issuances and provisionings wrote."
    );
    let _ = writeln!(text, "# TYPE pnc_store_issuance_batches_total counter");
    let _ = writeln!(text, "pnc_store_issuance_batches_total {batches}");
    let _ = writeln!(
        text,
        "# HELP pnc_store_issuance_batch_items_total Issuances and provisionings written by the group commit."
    );
    let _ = writeln!(text, "# TYPE pnc_store_issuance_batch_items_total counter");
    let _ = writeln!(text, "pnc_store_issuance_batch_items_total {items}");
    let _ = writeln!(
        text,
        "# HELP pnc_store_issuance_batch_largest The largest batch so far."
    );
    let _ = writeln!(text, "# TYPE pnc_store_issuance_batch_largest gauge");
    let _ = writeln!(text, "pnc_store_issuance_batch_largest {largest}");
    let req = st.ocsp.request_stats();
    let _ = writeln!(
        text,
        "# HELP pnc_ocsp_requests_total OCSP requests answered by this process."
    );
    let _ = writeln!(text, "# TYPE pnc_ocsp_requests_total counter");
    let _ = writeln!(text, "pnc_ocsp_requests_total {}", req.requests);
    let _ = writeln!(
        text,
        "# HELP pnc_ocsp_cache_hits_total OCSP requests answered from memory (no database read, no signature)."
    );
    let _ = writeln!(text, "# TYPE pnc_ocsp_cache_hits_total counter");
    let _ = writeln!(text, "pnc_ocsp_cache_hits_total {}", req.cache_hits);
    let _ = writeln!(
        text,
        "# HELP pnc_ocsp_cache_misses_total Single-certificate OCSP requests memory could not answer (a database read, maybe a signature)."
    );
    let _ = writeln!(text, "# TYPE pnc_ocsp_cache_misses_total counter");
    let _ = writeln!(text, "pnc_ocsp_cache_misses_total {}", req.cache_misses);
    latency(
        &mut text,
        "pnc_ocsp_answer_duration_seconds",
        "Time the OCSP responder took to answer a parsed request.",
        &st.ocsp.answer_latency(),
    );
    if let Some(hsm) = st.ra.hsm_stats() {
        render_hsm(&mut text, &hsm);
    }
    if let Some(revs) = st.ra.revocation_counts() {
        let _ = writeln!(
            text,
            "# HELP pnc_revocations_total Certificates this process revoked, by reason (a repeat of a revocation is not counted)."
        );
        let _ = writeln!(text, "# TYPE pnc_revocations_total counter");
        for (reason, n) in revs {
            let _ = writeln!(text, "pnc_revocations_total{{reason=\"{reason}\"}} {n}");
        }
    }
    let fetch = st.ra.fetch_stats();
    let _ = writeln!(
        text,
        "# HELP pnc_fetch_total Outbound requests to other PKIs (OCSP responders, CRLs), by outcome."
    );
    let _ = writeln!(text, "# TYPE pnc_fetch_total counter");
    for (outcome, n) in fetch.outcomes() {
        let _ = writeln!(text, "pnc_fetch_total{{outcome=\"{outcome}\"}} {n}");
    }
    latency(
        &mut text,
        "pnc_fetch_duration_seconds",
        "Time of one outbound request, connect included.",
        &fetch.latency.snapshot(),
    );
    let pool = st.ra.pool_stats();
    let in_use = pool.size.saturating_sub(pool.idle);
    for (name, help, v) in [
        (
            "pnc_db_pool_connections_in_use",
            "Database connections handed out now.",
            in_use,
        ),
        (
            "pnc_db_pool_connections_idle",
            "Open database connections waiting in the pool now.",
            pool.idle,
        ),
        (
            "pnc_db_pool_connections_max",
            "The database pool's maximum size.",
            pool.max,
        ),
    ] {
        let _ = writeln!(text, "# HELP {name} {help}");
        let _ = writeln!(text, "# TYPE {name} gauge");
        let _ = writeln!(text, "{name} {v}");
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

/// The token's counters: calls and failures by kind, and the signing time.
fn render_hsm(text: &mut String, hsm: &crate::stats::HsmSnapshot) {
    let _ = writeln!(
        text,
        "# HELP pnc_hsm_operations_total PKCS#11 operations by kind (a retry on a fresh session is part of its operation)."
    );
    let _ = writeln!(text, "# TYPE pnc_hsm_operations_total counter");
    for (op, calls, _) in &hsm.ops {
        let _ = writeln!(text, "pnc_hsm_operations_total{{op=\"{op}\"}} {calls}");
    }
    let _ = writeln!(
        text,
        "# HELP pnc_hsm_errors_total PKCS#11 operations that failed, by kind."
    );
    let _ = writeln!(text, "# TYPE pnc_hsm_errors_total counter");
    for (op, _, errors) in &hsm.ops {
        let _ = writeln!(text, "pnc_hsm_errors_total{{op=\"{op}\"}} {errors}");
    }
    latency(
        text,
        "pnc_hsm_sign_duration_seconds",
        "Time of one HSM signature, waiting for a session and retries included.",
        &hsm.sign_latency,
    );
}

/// A histogram of [`crate::stats::LATENCY_BUCKETS`] named `name`.
fn latency(text: &mut String, name: &str, help: &str, h: &crate::stats::LatencySnapshot) {
    let _ = writeln!(text, "# HELP {name} {help}");
    let _ = writeln!(text, "# TYPE {name} histogram");
    for (b, n) in crate::stats::LATENCY_BUCKETS.iter().zip(&h.cumulative) {
        let _ = writeln!(text, "{name}_bucket{{le=\"{b}\"}} {n}");
    }
    let _ = writeln!(text, "{name}_bucket{{le=\"+Inf\"}} {}", h.count);
    let _ = writeln!(text, "{name}_sum {}", h.sum_seconds);
    let _ = writeln!(text, "{name}_count {}", h.count);
}
