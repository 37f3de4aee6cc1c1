//! The dashboard: certificates by profile and status, what expires in 30 and 90 days, OCSP
//! traffic, token and database health, and when the audit chain was last verified.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;

use super::layout::{self, day, page, respond, validity_bar, when};
use super::session::Viewer;
use super::{ConsoleState, sign_in_page};

/// `GET /ui`: the dashboard, or the sign-in page for a visitor without a session.
pub async fn home(State(st): State<ConsoleState>, viewer: Viewer) -> Response {
    let Some(s) = viewer.0 else {
        return sign_in_page(&st, StatusCode::OK, None, "").await;
    };
    let d = match st.ra.dashboard(&s.principal).await {
        Ok(d) => d,
        Err(e) => return layout::error_page(Some(&s), &e),
    };
    let now = st.ra.now();
    let stats = st.ocsp.request_stats();
    // External OCSP health: what the outbound fetcher did with other PKIs' responders.
    let fetch = st.ra.fetch_stats();
    let (fetch_ok, fetch_failed) =
        fetch
            .outcomes()
            .iter()
            .fold((0u64, 0u64), |(ok, bad), (o, n)| {
                if *o == "ok" {
                    (ok + n, bad)
                } else {
                    (ok, bad + n)
                }
            });
    let slowest = fetch.slowest_hosts(5);
    let (rps, hit_share) = st.rate.rate(stats);
    let total: i64 = d.counts.iter().map(|(_, _, n)| n).sum();
    let of = |status: &str| -> i64 {
        d.counts
            .iter()
            .filter(|(_, s, _)| s == status)
            .map(|(_, _, n)| n)
            .sum()
    };
    let mut profiles: Vec<&str> = d.counts.iter().map(|(p, _, _)| p.as_str()).collect();
    profiles.dedup();
    let count = |profile: &str, status: &str| -> i64 {
        d.counts
            .iter()
            .find(|(p, s, _)| p == profile && s == status)
            .map_or(0, |(_, _, n)| *n)
    };
    let ok = |b: bool| if b { "ok" } else { "failing" };
    let body = html! {
        section aria-labelledby="totals" {
            h2 id="totals" { "Certificates" }
            dl class="tiles" {
                div { dt { "All" } dd id="count-all" { (total) } }
                div { dt { "Valid" } dd id="count-valid" { (of("valid")) } }
                div { dt { "Revoked" } dd id="count-revoked" { (of("revoked")) } }
                div { dt { "Expired" } dd id="count-expired" { (of("expired")) } }
                div { dt { "Expiring in 30 days" } dd id="expiring-30" { (d.expiring_30) } }
                div { dt { "Expiring in 90 days" } dd id="expiring-90" { (d.expiring_90) } }
            }
            p id="ocsp-signers-expiring" {
                "Not counted above: " (d.ocsp_signers_expiring_30)
                " OCSP signer certificates expiring in 30 days, renewed by the service itself."
            }
            div class="scroll" {
                table id="by-profile" {
                    caption { "By profile and status" }
                    thead { tr { th scope="col" { "Profile" } th scope="col" class="num" { "Valid" }
                        th scope="col" class="num" { "Revoked" } th scope="col" class="num" { "Expired" } } }
                    tbody {
                        @for p in &profiles {
                            tr data-profile=(p) {
                                th scope="row" {
                                    a href=(format!("/ui/certificates?profile={}", layout::enc(p))) { (p) }
                                }
                                td class="num" data-status="valid" { (count(p, "valid")) }
                                td class="num" data-status="revoked" { (count(p, "revoked")) }
                                td class="num" data-status="expired" { (count(p, "expired")) }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="expiry" {
            h2 id="expiry" { "Expiring next" }
            @if d.soonest.is_empty() && d.cas_expiring.is_empty() {
                p { "Nothing expires in the next 90 days." }
            } @else {
                ol class="timeline" {
                    @for c in &d.cas_expiring {
                        li class="ca" {
                            time datetime=(day(c.not_after)) { (day(c.not_after)) }
                            " CA " strong { (c.id) } " "
                            (validity_bar(c.not_before, c.not_after, now))
                        }
                    }
                    @for c in &d.soonest {
                        li {
                            time datetime=(day(c.not_after)) { (day(c.not_after)) }
                            " "
                            a href=(format!("/ui/certificates/{}/{}", layout::enc(&c.issuer_id), c.serial_hex)) { (c.subject) }
                            " (" (c.profile) ") "
                            (validity_bar(c.not_before, c.not_after, now))
                        }
                    }
                }
            }
        }
        section aria-labelledby="service" {
            h2 id="service" { "Service" }
            dl class="tiles" {
                div { dt { "OCSP requests/s (last minute)" } dd id="ocsp-rps" { (format!("{rps:.1}")) } }
                div { dt { "OCSP cache hits" } dd id="ocsp-hits" {
                    @match hit_share { Some(p) => (format!("{p:.0} %")), None => "–" }
                } }
                div { dt { "OCSP requests since start" } dd id="ocsp-total" { (stats.requests) } }
                div { dt { "HSM" } dd id="health-hsm" class=(ok(d.health.hsm)) { (ok(d.health.hsm)) } }
                div { dt { "Database" } dd id="health-db" class=(ok(d.health.store)) { (ok(d.health.store)) } }
                div { dt { "CAs" } dd id="ca-count" { (d.ca_count) } }
                div { dt { "Other PKIs' responders: fetches" } dd id="fetch-ok" { (fetch_ok) } }
                div { dt { "Other PKIs' responders: failures" } dd id="fetch-failed" class=(if fetch_failed > 0 { "failing" } else { "ok" }) { (fetch_failed) } }
            }
            @if !slowest.is_empty() {
                h3 { "Slowest responders of other PKIs" }
                table id="slowest-responders" {
                    thead { tr { th { "host" } th { "fetches" } th { "slowest" } } }
                    tbody {
                        @for (host, n, took) in &slowest {
                            tr { td { (host) } td { (n) } td { (format!("{} ms", took.as_millis())) } }
                        }
                    }
                }
            }
            @if super::layout::shows(&s.principal, "/ui/audit") {
                p id="last-verification" {
                    "Audit chain: "
                    @match &d.last_verification {
                        Some(e) => {
                            @let ok = serde_json::from_str::<serde_json::Value>(&e.details)
                                .ok()
                                .and_then(|v| v["ok"].as_bool())
                                .unwrap_or(false);
                            @if ok { "verified intact" } @else { strong class="failing" { "found broken" } }
                            " at " (when(e.ts)) " by " (e.actor) ". "
                        }
                        None => { "never verified from the console. " }
                    }
                    a href="/ui/audit" { "Verify now" }
                }
            }
        }
    };
    respond(StatusCode::OK, page("Dashboard", Some(&s), "/ui", body))
}
