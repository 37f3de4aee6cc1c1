//! The operator console at `/ui/`: HTML pages for people (security officers, auditors, CPO and
//! MO staff), served by the same binary. A front end like `crate::api`: who is looking comes
//! from the session (`session`), everything else from the [`Ra`], which applies the same roles
//! and tenants as to API clients and audits every action under the person's name (`ui:NAME`).
//!
//! No JavaScript, no inline style, nothing from the internet: pages are plain HTML forms and one
//! embedded stylesheet, so the Content-Security-Policy can forbid everything else
//! (`default-src 'none'`). Confirmation steps (revocation) are a second page, not a script.
//!
//! Pages: sign-in, dashboard (`dashboard`), CA hierarchy, certificate search and detail with
//! revocation (`certs`), API clients, audit log with chain verification, contracts and the
//! provisioning-certificate pool (`admin`), reporting a sub-CA's compromise (`compromise`).

// The helpers below return `Result<_, Response>`: their error *is* the page to answer, made at
// most once per request and moved once, so boxing it (what clippy suggests) buys nothing.
#![allow(clippy::result_large_err)]

mod admin;
mod certs;
mod compromise;
mod dashboard;
pub mod layout;
pub mod session;
mod webhooks;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use maud::html;

use crate::client_ip::ClientIp;
use crate::ocsp::Responder;
use crate::ocsp::responder::RequestStats;
use crate::ra::users::ConsoleSession;
use crate::ra::{Ra, RaError};
use layout::{csrf_field, page, problem, respond, see_other};
use session::{SignedIn, Viewer};

/// The stylesheet, embedded at build time.
const CSS: &str = include_str!("console.css");

/// The Content-Security-Policy of every console answer: our stylesheet, our forms, nothing
/// else (no script at all, no frames, no inline style).
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                       frame-ancestors 'none'; base-uri 'none'";

/// What the console's handlers share.
#[derive(Clone)]
pub struct ConsoleState {
    /// The registration authority.
    pub ra: Ra,
    /// This process's OCSP responder (status "now" on detail pages, request rates).
    pub ocsp: Responder,
    /// Mark the session cookie `Secure` (the service is reached over TLS).
    pub secure_cookies: bool,
    rate: Arc<OcspRate>,
    /// Compromise responses started from the console, running or done.
    compromises: Arc<compromise::Jobs>,
}

impl ConsoleState {
    /// The console over `ra` and `ocsp`; `secure_cookies` when reached over TLS.
    pub fn new(ra: Ra, ocsp: Responder, secure_cookies: bool) -> ConsoleState {
        let rate = Arc::new(OcspRate::default());
        rate.sample(ocsp.request_stats());
        ConsoleState {
            ra,
            ocsp,
            secure_cookies,
            rate,
            compromises: Arc::default(),
        }
    }
}

/// OCSP request counters sampled every few seconds, for a "requests per second over the last
/// minute" that does not depend on how often the dashboard is looked at.
#[derive(Default)]
struct OcspRate {
    samples: Mutex<VecDeque<(Instant, RequestStats)>>,
}

impl OcspRate {
    const EVERY: Duration = Duration::from_secs(5);
    const SPAN: Duration = Duration::from_secs(60);

    fn sample(&self, s: RequestStats) {
        let mut g = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        g.push_back((now, s));
        while g
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > Self::SPAN + Self::EVERY)
        {
            g.pop_front();
        }
    }

    /// (requests per second, cache-hit share in percent) over the sampled span up to `now`.
    fn rate(&self, now: RequestStats) -> (f64, Option<f64>) {
        let g = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        let Some((t0, s0)) = g.front().copied() else {
            return (0.0, None);
        };
        let secs = t0.elapsed().as_secs_f64().max(1.0);
        let n = now.requests.saturating_sub(s0.requests);
        let hits = now.cache_hits.saturating_sub(s0.cache_hits);
        let share = (n > 0).then(|| hits as f64 * 100.0 / n as f64);
        (n as f64 / secs, share)
    }

    /// Sample `ocsp` until the console state is dropped.
    fn spawn_sampler(rate: Weak<OcspRate>, ocsp: Responder) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        rt.spawn(async move {
            let mut tick = tokio::time::interval(Self::EVERY);
            loop {
                tick.tick().await;
                let Some(r) = rate.upgrade() else { return };
                r.sample(ocsp.request_stats());
            }
        });
    }
}

/// The `/ui` routes, each answer with the console's security headers.
pub fn router(st: ConsoleState) -> Router {
    OcspRate::spawn_sampler(Arc::downgrade(&st.rate), st.ocsp.clone());
    Router::new()
        .route("/ui", get(dashboard::home))
        .route("/ui/login", get(login_page).post(login))
        .route("/ui/logout", post(logout))
        .route("/ui/assets/console.css", get(stylesheet))
        .route("/ui/hierarchy", get(admin::hierarchy))
        .route("/ui/cas/{id}/pem", get(admin::ca_pem))
        .route(
            "/ui/cas/{id}/compromise",
            get(compromise::status).post(compromise::post),
        )
        .route(
            "/ui/cas/{id}/compromise/reenroll.csv",
            get(compromise::reenroll_csv),
        )
        .route("/ui/certificates", get(certs::search))
        .route("/ui/certificates/{issuer}/{serial}", get(certs::detail))
        .route("/ui/certificates/{issuer}/{serial}/pem", get(certs::pem))
        .route(
            "/ui/certificates/{issuer}/{serial}/revoke",
            post(certs::revoke),
        )
        .route("/ui/clients", get(admin::clients).post(admin::add_client))
        .route("/ui/clients/{id}/disable", post(admin::disable_client))
        .route("/ui/audit", get(admin::audit))
        .route("/ui/audit/verify", post(admin::verify_audit))
        .route("/ui/contracts", get(admin::contracts))
        .route("/ui/webhooks", get(webhooks::webhooks))
        .route(
            "/ui/provisioning-certificates",
            get(admin::provisioning_certificates),
        )
        .route("/ui/{*rest}", get(not_found).post(not_found))
        .layer(axum::middleware::from_fn(headers))
        .with_state(st)
}

/// Security headers on every console answer; pages are never cached (they show who is signed in
/// and what they may see), the stylesheet briefly.
async fn headers(req: Request<Body>, next: Next) -> Response {
    let css = req.uri().path() == "/ui/assets/console.css";
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if css {
            "public, max-age=3600"
        } else {
            "no-store"
        }),
    );
    r
}

async fn stylesheet() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS).into_response()
}

async fn not_found(viewer: Viewer) -> Response {
    problem(
        viewer.0.as_ref(),
        StatusCode::NOT_FOUND,
        "not_found",
        "There is no such page.",
    )
}

/// The address a request is attributed to (set by `crate::server`).
pub struct Ip(pub ClientIp);

impl<S: Send + Sync> FromRequestParts<S> for Ip {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Ip(parts.extensions.get::<ClientIp>().copied().unwrap_or(
            ClientIp(std::net::Ipv4Addr::UNSPECIFIED.into()),
        )))
    }
}

/// A form body, or a 400 page (also for a control character in a field: see
/// `crate::policy::text`).
fn form<T: serde::de::DeserializeOwned>(
    s: Option<&ConsoleSession>,
    body: &Bytes,
) -> Result<T, Response> {
    if let Ok(pairs) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        && let Err(field) =
            crate::policy::text::form_ok(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    {
        return Err(problem(
            s,
            StatusCode::BAD_REQUEST,
            crate::policy::text::CODE,
            &format!("control characters are not allowed in {field}"),
        ));
    }
    serde_urlencoded::from_bytes(body).map_err(|e| {
        problem(
            s,
            StatusCode::BAD_REQUEST,
            "bad_form",
            &format!("the form could not be read: {e}"),
        )
    })
}

/// A query string, or a 400 page.
fn query<T: serde::de::DeserializeOwned + Default>(
    s: Option<&ConsoleSession>,
    q: Option<&str>,
) -> Result<T, Response> {
    match q {
        None | Some("") => Ok(T::default()),
        Some(q) => serde_urlencoded::from_str(q).map_err(|e| {
            problem(
                s,
                StatusCode::BAD_REQUEST,
                "bad_query",
                &format!("the query could not be read: {e}"),
            )
        }),
    }
}

/// A state-changing form: it names the CSRF token it carries.
trait Posted: serde::de::DeserializeOwned {
    /// The form's `csrf` field.
    fn csrf(&self) -> Option<&str>;
}

/// Read a state-changing form of session `s`, refusing one that is not from our pages: another
/// site's `Origin`, or a missing or wrong CSRF token (403 `csrf`).
fn posted<T: Posted>(headers: &HeaderMap, s: &ConsoleSession, body: &Bytes) -> Result<T, Response> {
    let f: T = form(Some(s), body)?;
    let ok =
        session::same_origin(headers) && f.csrf().is_some_and(|t| session::same_token(t, &s.csrf));
    if ok {
        Ok(f)
    } else {
        Err(problem(
            Some(s),
            StatusCode::FORBIDDEN,
            "csrf",
            "This form did not come from this console (missing or wrong CSRF token). Reload the page and try again.",
        ))
    }
}

// ------------------------------------------------------------------------------ sign-in

#[derive(Debug, Default, serde::Deserialize)]
struct LoginForm {
    name: Option<String>,
    password: Option<String>,
    csrf: Option<String>,
}

/// The sign-in page (also what `/ui` shows to a visitor without a session).
async fn sign_in_page(
    st: &ConsoleState,
    status: StatusCode,
    message: Option<&str>,
    name: &str,
) -> Response {
    let key = match st.ra.console_form_key().await {
        Ok(k) => k,
        Err(e) => return layout::error_page(None, &e),
    };
    let token = session::login_token(&key, st.ra.now());
    respond(
        status,
        page(
            "Sign in",
            None,
            "/ui/login",
            html! {
                @if let Some(m) = message {
                    p role="alert" class="error" { (m) }
                }
                form class="signin" method="post" action="/ui/login" {
                    input type="hidden" name="csrf" value=(token);
                    label for="name" { "Name" }
                    input id="name" name="name" type="text" autocomplete="username" required
                        autofocus value=(name) maxlength="64";
                    label for="password" { "Password" }
                    input id="password" name="password" type="password"
                        autocomplete="current-password" required maxlength="256";
                    button type="submit" { "Sign in" }
                }
                p class="muted" {
                    "Accounts are made by the operator with " code { "pnc-pki user add" } "."
                }
            },
        ),
    )
}

async fn login_page(State(st): State<ConsoleState>, viewer: Viewer) -> Response {
    if viewer.0.is_some() {
        return see_other("/ui");
    }
    sign_in_page(&st, StatusCode::OK, None, "").await
}

async fn login(
    State(st): State<ConsoleState>,
    Ip(ip): Ip,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let f: LoginForm = match form(None, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let key = match st.ra.console_form_key().await {
        Ok(k) => k,
        Err(e) => return layout::error_page(None, &e),
    };
    let name = f.name.unwrap_or_default();
    let token_ok = f
        .csrf
        .as_deref()
        .is_some_and(|t| session::login_token_valid(&key, t, st.ra.now()));
    if !session::same_origin(&headers) || !token_ok {
        return problem(
            None,
            StatusCode::FORBIDDEN,
            "csrf",
            "This sign-in form did not come from this console or has expired. Reload the page and try again.",
        );
    }
    let password = f.password.unwrap_or_default();
    if password.len() > 256 {
        return sign_in_page(
            &st,
            StatusCode::BAD_REQUEST,
            Some("That password is too long."),
            "",
        )
        .await;
    }
    match st.ra.sign_in(ip, &name, &password).await {
        Ok(s) => {
            let mut r = see_other("/ui");
            if let Ok(v) = HeaderValue::from_str(&session::set_cookie(&s.token, st.secure_cookies))
            {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        Err(RaError::Unauthenticated { .. }) => {
            let shown: String = name.chars().take(64).collect();
            sign_in_page(
                &st,
                StatusCode::UNAUTHORIZED,
                Some("Unknown user or wrong password."),
                &shown,
            )
            .await
        }
        Err(e) => {
            let mut r = layout::error_page(None, &e);
            if let Some(s) = e.retry_after()
                && let Ok(v) = HeaderValue::from_str(&s.to_string())
            {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            r
        }
    }
}

/// A form that carries only its CSRF token (sign-out, verify, disable).
#[derive(Debug, Default, serde::Deserialize)]
struct CsrfForm {
    csrf: Option<String>,
}

impl Posted for CsrfForm {
    fn csrf(&self) -> Option<&str> {
        self.csrf.as_deref()
    }
}

async fn logout(
    State(st): State<ConsoleState>,
    SignedIn(s): SignedIn,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = posted::<CsrfForm>(&headers, &s, &body) {
        return r;
    }
    if let Err(e) = st.ra.sign_out(&s).await {
        return layout::error_page(Some(&s), &e);
    }
    let mut r = see_other("/ui/login");
    if let Ok(v) = HeaderValue::from_str(&session::clear_cookie(st.secure_cookies)) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// A small form that posts only a CSRF token to `action`, with one button.
fn button_form(s: &ConsoleSession, action: &str, label: &str) -> maud::Markup {
    html! {
        form method="post" action=(action) class="inline" {
            (csrf_field(s))
            button type="submit" { (label) }
        }
    }
}
