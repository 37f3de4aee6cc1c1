//! Certificate search, the detail page (decoded fields, chain, what OCSP answers now, its audit
//! trail) and revocation with a reason and a confirmation page.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};

use super::layout::{self, csrf_field, day, enc, page, problem, respond, see_other, when};
use super::session::SignedIn;
use super::{ConsoleState, Posted, posted, query};
use crate::alg::HashAlg;
use crate::model::{CertFilter, CertRecord, CertStatus, StatusFilter};
use crate::ocsp::responder::build_cert_id;
use crate::ocsp::wire::{CertStatus as OcspStatus, issuer_hashes};
use crate::policy::authz::Role;
use crate::ra::users::ConsoleSession;
use crate::x509::to_pem;

/// Reasons offered when revoking (RFC 5280 names; `certificateHold` is not offered: a hold
/// cannot be lifted here).
const REASONS: [&str; 7] = [
    "unspecified",
    "keyCompromise",
    "cACompromise",
    "affiliationChanged",
    "superseded",
    "cessationOfOperation",
    "privilegeWithdrawn",
];

const PAGE: i64 = 50;

#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct SearchQuery {
    q: Option<String>,
    profile: Option<String>,
    status: Option<String>,
    /// `YYYY-MM-DD`: expiring on or after this day.
    expires_from: Option<String>,
    /// `YYYY-MM-DD`: expiring before the end of this day.
    expires_to: Option<String>,
    after: Option<String>,
}

fn parse_day(s: Option<&str>) -> Result<Option<i64>, String> {
    let Some(s) = s.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s, &fmt)
        .map(|d| Some(d.midnight().assume_utc().unix_timestamp()))
        .map_err(|_| {
            format!(
                "'{}' is not a date (YYYY-MM-DD)",
                s.chars().take(20).collect::<String>()
            )
        })
}

fn detail_href(c: &CertRecord) -> String {
    format!("/ui/certificates/{}/{}", enc(&c.issuer_id), c.serial_hex)
}

fn status_label(c: &CertRecord, now: i64) -> &'static str {
    match c.status {
        CertStatus::Revoked => "revoked",
        CertStatus::Valid if c.not_after < now => "expired",
        CertStatus::Valid => "valid",
    }
}

/// `GET /ui/certificates?q=…`: search and browse, a page at a time.
pub async fn search(
    State(st): State<ConsoleState>,
    SignedIn(s): SignedIn,
    RawQuery(raw): RawQuery,
) -> Response {
    let q: SearchQuery = match query(Some(&s), raw.as_deref()) {
        Ok(q) => q,
        Err(r) => return r,
    };
    let bad = |m: String| problem(Some(&s), StatusCode::BAD_REQUEST, "bad_query", &m);
    let status = match q.status.as_deref().unwrap_or("") {
        "" => None,
        "valid" => Some(StatusFilter::Valid),
        "revoked" => Some(StatusFilter::Revoked),
        "expired" => Some(StatusFilter::Expired),
        other => {
            return bad(format!(
                "unknown status '{}' (valid, revoked or expired)",
                other.chars().take(20).collect::<String>()
            ));
        }
    };
    let from = match parse_day(q.expires_from.as_deref()) {
        Ok(v) => v,
        Err(m) => return bad(m),
    };
    let to = match parse_day(q.expires_to.as_deref()) {
        Ok(v) => v.map(|t| t + 86_400),
        Err(m) => return bad(m),
    };
    let text =
        q.q.as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| t.chars().take(128).collect::<String>());
    let profile = q
        .profile
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string);
    let filter = CertFilter {
        text: text.clone(),
        profile: profile.clone(),
        status,
        expiring_after: from,
        expiring_before: to,
        after: q.after.clone().filter(|a| !a.is_empty()),
        limit: Some(PAGE),
        ..Default::default()
    };
    let page_result = st.ra.list_certificates(&s.principal, filter).await;
    let found = match page_result {
        Ok(p) => p,
        Err(e) => return layout::error_page(Some(&s), &e),
    };
    let now = st.ra.now();
    let keep = layout::keep_param;
    let next_href = found.next.as_ref().map(|n| {
        format!(
            "/ui/certificates?after={}{}{}{}{}{}",
            enc(n),
            keep("q", &q.q),
            keep("profile", &q.profile),
            keep("status", &q.status),
            keep("expires_from", &q.expires_from),
            keep("expires_to", &q.expires_to),
        )
    });
    let sel = |v: &str| q.status.as_deref() == Some(v);
    let body = html! {
        form class="search" method="get" action="/ui/certificates" role="search" {
            div {
                label for="q" { "EVSE ID, EMAID, PCID, serial or subject" }
                input id="q" name="q" type="search" value=(text.clone().unwrap_or_default()) maxlength="128";
            }
            div {
                label for="profile" { "Profile" }
                input id="profile" name="profile" type="text" value=(profile.clone().unwrap_or_default()) maxlength="64";
            }
            div {
                label for="status" { "Status" }
                select id="status" name="status" {
                    option value="" selected[q.status.as_deref().unwrap_or("").is_empty()] { "any" }
                    option value="valid" selected[sel("valid")] { "valid" }
                    option value="revoked" selected[sel("revoked")] { "revoked" }
                    option value="expired" selected[sel("expired")] { "expired" }
                }
            }
            div {
                label for="expires_from" { "Expires from" }
                input id="expires_from" name="expires_from" type="date" value=(q.expires_from.clone().unwrap_or_default());
            }
            div {
                label for="expires_to" { "Expires until" }
                input id="expires_to" name="expires_to" type="date" value=(q.expires_to.clone().unwrap_or_default());
            }
            div { button type="submit" { "Search" } }
        }
        @if found.items.is_empty() {
            p id="no-results" { "No certificate matches." }
        } @else {
            div class="scroll" {
                table id="results" {
                    caption { "Certificates" }
                    thead { tr {
                        th scope="col" { "Subject" } th scope="col" { "Profile" }
                        th scope="col" { "Issuer" } th scope="col" { "Serial" }
                        th scope="col" { "Expires" } th scope="col" { "Status" }
                    } }
                    tbody {
                        @for c in &found.items {
                            tr {
                                td { a href=(detail_href(c)) { (c.subject) } }
                                td { (c.profile) }
                                td { (c.issuer_id) }
                                td { code { (c.serial_hex) } }
                                td { (day(c.not_after)) }
                                td class=(status_label(c, now)) { (status_label(c, now)) }
                            }
                        }
                    }
                }
            }
        }
        @if let Some(h) = next_href {
            p { a id="next-page" href=(h) rel="next" { "Next page" } }
        }
    };
    respond(
        StatusCode::OK,
        page("Certificates", Some(&s), "/ui/certificates", body),
    )
}

/// What the OCSP responder of this process answers for the certificate now.
async fn ocsp_now(st: &ConsoleState, issuer_der: &[u8], c: &CertRecord) -> String {
    let Ok((name, key)) = issuer_hashes(issuer_der, HashAlg::Sha256) else {
        return "cannot be asked (issuer certificate unreadable)".into();
    };
    let Some(serial) = crate::ocsp::responder::serial_bytes(&c.serial_hex) else {
        return "cannot be asked (serial unreadable)".into();
    };
    let Ok(cid) = build_cert_id(HashAlg::Sha256, &name, &key, &serial) else {
        return "cannot be asked".into();
    };
    match st.ocsp.verdict(&cid).await {
        Ok(v) => match v.status {
            Some(OcspStatus::Good) => "good".into(),
            Some(OcspStatus::Revoked { time, .. }) => format!("revoked (since {})", when(time)),
            Some(OcspStatus::Unknown) => "unknown".into(),
            None => "unknown (not an issuer of ours)".into(),
        },
        Err(e) => format!("no answer now ({e:?})"),
    }
}

fn may_revoke(s: &ConsoleSession) -> bool {
    matches!(
        s.principal.role,
        Role::Admin | Role::Cpo | Role::Mo | Role::Oem
    )
}

/// `GET /ui/certificates/{issuer}/{serial}`.
pub async fn detail(
    State(st): State<ConsoleState>,
    SignedIn(s): SignedIn,
    Path((issuer, serial)): Path<(String, String)>,
) -> Response {
    let c = match st.ra.certificate(&s.principal, &issuer, &serial).await {
        Ok(c) => c,
        Err(e) => return layout::error_page(Some(&s), &e),
    };
    let chain = st
        .ra
        .ca_chain(&s.principal, &c.issuer_id)
        .await
        .unwrap_or_default();
    let ocsp = match chain.first() {
        Some(ca) => ocsp_now(&st, &ca.der, &c).await,
        None => "cannot be asked (issuer unknown)".into(),
    };
    let audit = st
        .ra
        .certificate_audit(&s.principal, &c.issuer_id, &c.serial_hex)
        .await
        .unwrap_or_default();
    let decoded = openssl::x509::X509::from_der(&c.der)
        .ok()
        .and_then(|x| x.to_text().ok())
        .map(|t| String::from_utf8_lossy(&t).into_owned())
        .unwrap_or_else(|| "the certificate could not be decoded".into());
    let parsed = crate::x509::ParsedCert::from_der(&c.der).ok();
    let now = st.ra.now();
    let label = status_label(&c, now);
    let body = html! {
        dl class="fields" id="fields" {
            dt { "Subject" } dd id="subject" { (c.subject) }
            dt { "Issuer" } dd { (parsed.as_ref().map(|p| p.issuer_string()).unwrap_or_default()) " (" (c.issuer_id) ")" }
            dt { "Serial" } dd { code id="serial" { (c.serial_hex) } }
            dt { "Profile" } dd { (c.profile) }
            @if let Some(v) = &c.evse_id { dt { "EVSE ID" } dd { (v) } }
            @if let Some(v) = &c.emaid { dt { "EMAID" } dd { (v) } }
            @if let Some(v) = &c.pcid { dt { "PCID" } dd { (v) } }
            @if let Some(v) = &c.tenant { dt { "Tenant" } dd { (v) } }
            dt { "Valid" } dd { (when(c.not_before)) " – " (when(c.not_after)) " "
                // A revoked certificate has no days left to count.
                @if c.status == CertStatus::Valid {
                    (layout::validity_bar(c.not_before, c.not_after, now))
                } }
            dt { "Status" } dd id="status" class=(label) { (label)
                @if let (Some(t), Some(r)) = (c.revoked_at, c.revocation_reason) {
                    " since " (when(t)) ", reason " (r.name())
                }
            }
            dt { "OCSP now" } dd id="ocsp-status" { (ocsp) }
            dt { "SHA-256" } dd { code { (parsed.as_ref().map(|p| p.sha256_hex()).unwrap_or_default()) } }
            dt { "Download" } dd { a href=(format!("{}/pem", detail_href(&c))) download { "PEM" } }
        }
        section aria-labelledby="chain" {
            h2 id="chain" { "Chain" }
            ol class="chain" {
                li { (c.subject) }
                @for ca in &chain {
                    li { (ca.subject_string()) }
                }
            }
        }
        @if may_revoke(&s) && c.status == CertStatus::Valid {
            section aria-labelledby="revoke" {
                h2 id="revoke" { "Revoke" }
                form method="post" action=(format!("{}/revoke", detail_href(&c))) {
                    (csrf_field(&s))
                    label for="reason" { "Reason" }
                    select id="reason" name="reason" {
                        @for r in REASONS { option value=(r) { (r) } }
                    }
                    button type="submit" { "Revoke…" }
                }
            }
        }
        section aria-labelledby="audit" {
            h2 id="audit" { "Audit entries" }
            (audit_table(&audit))
        }
        details {
            summary { "All fields (decoded by OpenSSL)" }
            pre { (decoded) }
        }
    };
    respond(
        StatusCode::OK,
        page("Certificate", Some(&s), "/ui/certificates", body),
    )
}

/// A table of audit entries (shared with the audit log page).
pub(super) fn audit_table(entries: &[crate::model::AuditEntry]) -> Markup {
    html! {
        @if entries.is_empty() {
            p { "No entries." }
        } @else {
            div class="scroll" {
                table class="audit" {
                    thead { tr {
                        th scope="col" { "#" } th scope="col" { "When" } th scope="col" { "Actor" }
                        th scope="col" { "Action" } th scope="col" { "Target" } th scope="col" { "Details" }
                    } }
                    tbody {
                        @for e in entries {
                            tr data-seq=(e.seq) {
                                td class="num" { (e.seq) }
                                td { (when(e.ts)) }
                                td title=(e.actor) { (e.actor) }
                                td { code { (e.action) } }
                                td title=(e.target) { (e.target) }
                                td title=(e.details) { code class="details" { (e.details) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `GET /ui/certificates/{issuer}/{serial}/pem`.
pub async fn pem(
    State(st): State<ConsoleState>,
    SignedIn(s): SignedIn,
    Path((issuer, serial)): Path<(String, String)>,
) -> Response {
    match st.ra.certificate(&s.principal, &issuer, &serial).await {
        Ok(c) => pem_download(&format!("{}-{}.pem", c.issuer_id, c.serial_hex), &c.der),
        Err(e) => layout::error_page(Some(&s), &e),
    }
}

/// A PEM file to download.
pub(super) fn pem_download(file: &str, der: &[u8]) -> Response {
    let mut r = (
        [(header::CONTENT_TYPE, "application/x-pem-file")],
        to_pem("CERTIFICATE", der),
    )
        .into_response();
    let safe: String = file
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .collect();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{safe}\"")) {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

#[derive(Debug, Default, serde::Deserialize)]
struct RevokeForm {
    csrf: Option<String>,
    reason: Option<String>,
    confirm: Option<String>,
}

impl Posted for RevokeForm {
    fn csrf(&self) -> Option<&str> {
        self.csrf.as_deref()
    }
}

/// `POST /ui/certificates/{issuer}/{serial}/revoke`: without `confirm=yes`, the confirmation
/// page; with it, the revocation (then back to the detail page, which shows OCSP "revoked").
pub async fn revoke(
    State(st): State<ConsoleState>,
    SignedIn(s): SignedIn,
    headers: HeaderMap,
    Path((issuer, serial)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let f: RevokeForm = match posted(&headers, &s, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let reason = f.reason.unwrap_or_else(|| "unspecified".into());
    if !REASONS.contains(&reason.as_str()) {
        return problem(
            Some(&s),
            StatusCode::BAD_REQUEST,
            "invalid_reason",
            "choose one of the offered revocation reasons",
        );
    }
    let c = match st.ra.certificate(&s.principal, &issuer, &serial).await {
        Ok(c) => c,
        Err(e) => return layout::error_page(Some(&s), &e),
    };
    if f.confirm.as_deref() != Some("yes") {
        let body = html! {
            p { "Revoke this certificate? Chargers and vehicles that check OCSP or the CRL will refuse it at once. This cannot be undone." }
            dl class="fields" {
                dt { "Subject" } dd { (c.subject) }
                dt { "Serial" } dd { code { (c.serial_hex) } }
                dt { "Issuer" } dd { (c.issuer_id) }
                dt { "Reason" } dd id="confirm-reason" { (reason) }
            }
            form method="post" action=(format!("{}/revoke", detail_href(&c))) {
                (csrf_field(&s))
                input type="hidden" name="reason" value=(reason);
                input type="hidden" name="confirm" value="yes";
                button type="submit" class="danger" id="confirm-revoke" { "Revoke certificate" }
                " "
                a href=(detail_href(&c)) { "Cancel" }
            }
        };
        return respond(
            StatusCode::OK,
            page("Confirm revocation", Some(&s), "/ui/certificates", body),
        );
    }
    match st
        .ra
        .revoke(&s.principal, &c.issuer_id, &c.serial_hex, &reason)
        .await
    {
        Ok(_) => see_other(&detail_href(&c)),
        Err(e) => layout::error_page(Some(&s), &e),
    }
}
