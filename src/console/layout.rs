//! The frame every console page shares (head, navigation, sign-out form) and small view helpers.
//! Markup is built with `maud`, which escapes every value it is given: names, subjects and
//! audit details come from CSRs and callers, and none of them is ever written as raw HTML.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use crate::policy::authz::{Principal, Role};
use crate::ra::RaError;
use crate::ra::users::ConsoleSession;

/// Navigation entries: (path, label, shown to).
const NAV: &[(&str, &str, &[Role])] = &[
    ("/ui", "Dashboard", &Role::ALL),
    ("/ui/hierarchy", "CA hierarchy", &Role::ALL),
    ("/ui/certificates", "Certificates", &Role::ALL),
    (
        "/ui/contracts",
        "Contracts",
        &[Role::Admin, Role::Auditor, Role::Mo],
    ),
    (
        "/ui/provisioning-certificates",
        "Provisioning certificates",
        &[Role::Admin, Role::Auditor, Role::Mo],
    ),
    ("/ui/clients", "API clients", &[Role::Admin, Role::Auditor]),
    ("/ui/audit", "Audit log", &[Role::Admin, Role::Auditor]),
    ("/ui/webhooks", "Webhooks", &[Role::Admin, Role::Auditor]),
];

/// Whether the navigation shows `path` to `p`.
pub fn shows(p: &Principal, path: &str) -> bool {
    NAV.iter()
        .any(|(p2, _, roles)| *p2 == path && roles.contains(&p.role))
}

/// A whole page: `title`, the viewer's navigation (none when signed out) and `body`.
pub fn page(title: &str, viewer: Option<&ConsoleSession>, current: &str, body: Markup) -> Markup {
    page_refreshing(title, viewer, current, None, body)
}

/// [`page`], reloaded by the browser every `refresh` seconds when given (a page that shows
/// work under way: a `<meta http-equiv="refresh">`, since the console runs no script).
pub fn page_refreshing(
    title: &str,
    viewer: Option<&ConsoleSession>,
    current: &str,
    refresh: Option<u32>,
    body: Markup,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some(secs) = refresh {
                    meta http-equiv="refresh" content=(secs);
                }
                title { (title) " · pnc-pki" }
                link rel="stylesheet" href="/ui/assets/console.css";
            }
            body {
                a class="skip" href="#main" { "Skip to content" }
                header class="top" {
                    a class="brand" href="/ui" { "pnc-pki" }
                    @if let Some(s) = viewer {
                        nav aria-label="Main" {
                            ul {
                                @for (path, label, roles) in NAV {
                                    @if roles.contains(&s.principal.role) {
                                        li {
                                            @if *path == current {
                                                a href=(path) aria-current="page" { (label) }
                                            } @else {
                                                a href=(path) { (label) }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                        div class="who" {
                            span { (s.principal.id) " (" (s.principal.role.as_str()) ")" }
                            form method="post" action="/ui/logout" {
                                input type="hidden" name="csrf" value=(s.csrf);
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main id="main" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// An HTML answer with the console's headers (see `super::headers` for the security ones).
pub fn respond(status: StatusCode, m: Markup) -> Response {
    let mut r = (status, m.into_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

/// A 303 to `to` (after a form, so a reload does not post again).
pub fn see_other(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// The status an RA refusal is shown with.
pub fn status_of(e: &RaError) -> StatusCode {
    StatusCode::from_u16(e.kind().http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// A page explaining a refusal or failure: its status, machine-readable code and message.
pub fn error_page(viewer: Option<&ConsoleSession>, e: &RaError) -> Response {
    let status = status_of(e);
    let detail = if status.is_server_error() {
        // Internal details go to the log, not to the page.
        tracing::error!(error = %e, "console: request failed");
        "the service could not complete this request; see its log".to_string()
    } else {
        e.to_string()
    };
    problem(viewer, status, e.code(), &detail)
}

/// A page for a problem found by the console itself.
pub fn problem(
    viewer: Option<&ConsoleSession>,
    status: StatusCode,
    code: &str,
    detail: &str,
) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    respond(
        status,
        page(
            title,
            viewer,
            "",
            html! {
                p role="alert" class="error" { (detail) }
                p class="muted" { "Code: " code { (code) } }
                p { a href="/ui" { "Back to the dashboard" } }
            },
        ),
    )
}

/// `2026-12-02 14:05 UTC` for unix seconds.
pub fn when(t: i64) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| d.format(&fmt).ok())
        .unwrap_or_else(|| t.to_string())
}

/// `2026-12-02` for unix seconds.
pub fn day(t: i64) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| d.format(&fmt).ok())
        .unwrap_or_else(|| t.to_string())
}

/// How much of a validity period has passed at `now`, as a `<meter>` (no inline style: the
/// Content-Security-Policy allows none).
pub fn validity_bar(not_before: i64, not_after: i64, now: i64) -> Markup {
    let total = (not_after - not_before).max(1);
    let used = (now - not_before).clamp(0, total);
    let pct = used * 100 / total;
    let left_days = (not_after - now) / 86_400;
    html! {
        meter min="0" max="100" low="70" high="90" optimum="0" value=(pct)
            title=(format!("{pct} % of the validity period used")) {
            (pct) " %"
        }
        " "
        span class="muted" {
            @if now >= not_after { "expired" } @else { (left_days) " days left" }
        }
    }
}

/// The hidden CSRF field of a session's forms.
pub fn csrf_field(s: &ConsoleSession) -> Markup {
    html! { input type="hidden" name="csrf" value=(s.csrf); }
}

/// Percent-encode a query value.
pub fn enc(s: &str) -> String {
    serde_urlencoded::to_string([("v", s)])
        .map(|q| q.trim_start_matches("v=").to_string())
        .unwrap_or_default()
}

/// `&k=value` to carry a filter into the next page's link, or nothing when it is unset.
pub fn keep_param(k: &str, v: &Option<String>) -> String {
    v.as_deref()
        .filter(|v| !v.is_empty())
        .map(|v| format!("&{k}={}", enc(v)))
        .unwrap_or_default()
}

/// A query field that was filled in (not absent, not blank).
pub fn nonempty(v: &Option<String>) -> Option<String> {
    v.clone().filter(|v| !v.trim().is_empty())
}
