//! HTTP front end (axum): the OPCP (Hubject dialect) surface CSMSs speak, the native management
//! API under `/api/v1`, OAuth2 client credentials, CRLs and operations endpoints.
//!
//! Layout: `router()` assembles every route from the modules below and records each (path,
//! method) in a table so the OpenAPI test can compare code and spec. Other front ends (the OCSP
//! responder) are merged into `router()` with one `.merge(...)` line.

pub mod auth;
pub mod crl;
pub mod error;
pub mod est;
pub mod metrics;
pub mod native;
pub mod pkcs7;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use axum::{Json, Router};

use crate::ca::Ca;
pub use error::ApiError;

/// The OpenAPI document, served as is and checked against the router by a test.
pub const OPENAPI_YAML: &str = include_str!("../../api/openapi.yaml");

/// Settings of the HTTP service, from the environment (the data dir's settings file belongs to
/// the CA core; these only matter to `serve`).
///
/// | variable                  | default            | meaning                                       |
/// |---------------------------|--------------------|-----------------------------------------------|
/// | `PNC_API_ISSUER`          | public URL         | `iss` of the access tokens we issue           |
/// | `PNC_API_AUDIENCE`        | `pnc-pki`          | `aud` required in every access token          |
/// | `PNC_API_TOKEN_TTL`       | `3600`             | access token lifetime, seconds                |
/// | `PNC_API_JWKS_FILE`       | unset              | JWKS of an external token issuer we trust     |
/// | `PNC_API_JWKS_ISSUER`     | unset              | that issuer's `iss` (required with the file)  |
/// | `PNC_API_MAX_BODY`        | `65536`            | request body limit, bytes                     |
/// | `PNC_CRL_VALIDITY`        | `86400`            | CRL nextUpdate − thisUpdate, seconds          |
#[derive(Clone, Debug)]
pub struct ApiConfig {
    pub issuer: String,
    pub audience: String,
    pub token_ttl: i64,
    pub jwks_file: Option<String>,
    pub jwks_issuer: Option<String>,
    pub max_body: usize,
    pub crl_validity: i64,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> Result<T, String> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .map_err(|_| format!("{name}='{v}' is not a valid value")),
        _ => Ok(default),
    }
}

impl ApiConfig {
    pub fn from_env(public_url: &str) -> Result<ApiConfig, String> {
        let cfg = ApiConfig {
            issuer: env_or(
                "PNC_API_ISSUER",
                public_url.trim_end_matches('/').to_string(),
            )?,
            audience: env_or("PNC_API_AUDIENCE", "pnc-pki".to_string())?,
            token_ttl: env_or("PNC_API_TOKEN_TTL", 3600i64)?,
            jwks_file: std::env::var("PNC_API_JWKS_FILE")
                .ok()
                .filter(|s| !s.is_empty()),
            jwks_issuer: std::env::var("PNC_API_JWKS_ISSUER")
                .ok()
                .filter(|s| !s.is_empty()),
            max_body: env_or("PNC_API_MAX_BODY", 64 * 1024usize)?,
            crl_validity: env_or("PNC_CRL_VALIDITY", 86_400i64)?,
        };
        if cfg.token_ttl < 1 || cfg.crl_validity < 60 {
            return Err("PNC_API_TOKEN_TTL must be ≥ 1 and PNC_CRL_VALIDITY ≥ 60 seconds".into());
        }
        if cfg.jwks_file.is_some() != cfg.jwks_issuer.is_some() {
            return Err("PNC_API_JWKS_FILE and PNC_API_JWKS_ISSUER go together".into());
        }
        Ok(cfg)
    }
}

/// Everything a handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub ca: Ca,
    pub cfg: Arc<ApiConfig>,
    pub auth: Arc<auth::Authenticator>,
    pub metrics: Arc<metrics::Metrics>,
    pub crl: Arc<crl::CrlService>,
    /// The OCSP responder of this process (started by `serve`; see `crate::ocsp`).
    pub ocsp: crate::ocsp::Responder,
}

impl axum::extract::FromRef<AppState> for crate::ocsp::Responder {
    fn from_ref(st: &AppState) -> Self {
        st.ocsp.clone()
    }
}

impl AppState {
    /// Load (or create, on first start) the token signing key and the trusted external keys.
    pub async fn new(ca: Ca, cfg: ApiConfig) -> anyhow::Result<AppState> {
        let auth = auth::Authenticator::load(&ca, &cfg).await?;
        Ok(AppState {
            ocsp: crate::ocsp::Responder::current(&ca),
            crl: Arc::new(crl::CrlService::new(cfg.crl_validity)),
            ca,
            cfg: Arc::new(cfg),
            auth: Arc::new(auth),
            metrics: Arc::new(metrics::Metrics::default()),
        })
    }
}

/// Routes with the (path, method) pairs they serve, recorded as they are added.
pub struct Routes {
    router: Router<AppState>,
    table: Vec<(String, String)>,
}

impl Routes {
    fn new() -> Routes {
        Routes {
            router: Router::new(),
            table: Vec::new(),
        }
    }

    /// Add `path` for the listed methods (upper case, as in the table the OpenAPI test reads).
    /// Record a route that another router serves (see `ocsp_router`).
    fn record(mut self, path: &str, methods: &[&str]) -> Routes {
        let spec_path = path.replace("{*", "{");
        for m in methods {
            self.table.push((spec_path.clone(), m.to_ascii_lowercase()));
        }
        self
    }

    pub fn add(mut self, path: &str, methods: &[&str], mr: MethodRouter<AppState>) -> Routes {
        // The spec names a catch-all `{*x}` segment `{x}`.
        let spec_path = path.replace("{*", "{");
        for m in methods {
            self.table.push((spec_path.clone(), m.to_ascii_lowercase()));
        }
        self.router = self.router.route(path, mr);
        self
    }
}

fn build() -> Routes {
    let r = Routes::new()
        .add(
            "/health/live",
            &["GET"],
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
        .add("/health/ready", &["GET"], get(ready))
        .add("/metrics", &["GET"], get(metrics::render))
        .add("/api/openapi.yaml", &["GET"], get(openapi));
    let r = ocsp_routes(r);
    let r = auth::routes(r);
    let r = est::routes(r);
    let r = crl::routes(r);
    native::routes(r)
}

/// OCSP (public, the URL in every certificate's AIA) and the OCPP-shaped lookups (authenticated:
/// any registered client, since a CSMS relays them for its stations).
fn ocsp_routes(r: Routes) -> Routes {
    // The public OCSP paths are served by `ocsp_router` (outside the per-request bookkeeping
    // layers); they are recorded here so the OpenAPI check covers them.
    r.record("/ocsp", &["GET", "POST"])
        .record("/ocsp/", &["GET", "POST"])
        .record("/ocsp/{*request}", &["GET", "POST"])
        .add(
            "/api/v1/ocsp/certificate-status",
            &["POST"],
            axum::routing::post(ocpp_certificate_status),
        )
        .add(
            "/api/v1/ocsp/chain-status",
            &["POST"],
            axum::routing::post(ocpp_chain_status),
        )
}

/// `POST /ocsp`, `GET /ocsp/{base64}`: the hottest path of the product (chargers and CSMSs,
/// thousands of requests a second). Request ids, per-request log lines and per-route metrics cost
/// about 40 % of its throughput, and OCSP answers carry their own status, so these routes get only
/// the panic guard; the handler enforces its own 4 KiB request limit.
fn ocsp_router() -> Router<AppState> {
    use crate::ocsp::http::{get_ocsp, post_ocsp};
    Router::new()
        .route("/ocsp", get(get_ocsp).post(post_ocsp))
        .route("/ocsp/", get(get_ocsp).post(post_ocsp))
        .route("/ocsp/{*request}", get(get_ocsp).post(post_ocsp))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_response,
        ))
}

async fn ocpp_certificate_status(
    State(st): State<AppState>,
    _caller: auth::Principal,
    body: axum::body::Bytes,
) -> axum::response::Response {
    crate::ocsp::ocpp::certificate_status_route(State(st.ocsp.clone()), body).await
}

async fn ocpp_chain_status(
    State(st): State<AppState>,
    _caller: auth::Principal,
    body: axum::body::Bytes,
) -> axum::response::Response {
    crate::ocsp::ocpp::chain_status_route(State(st.ocsp.clone()), body).await
}

/// Every (path, method) the router serves; the OpenAPI test compares it with the spec.
pub fn route_table() -> Vec<(String, String)> {
    build().table
}

/// The application router. Merge other front ends here (e.g. the OCSP responder's `Router`).
pub fn router(state: AppState) -> Router {
    let max_body = state.cfg.max_body;
    build()
        .router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_response,
        ))
        // Merged after the layers above, so they do not wrap OCSP (see `ocsp_router`).
        .merge(ocsp_router())
        .with_state(state)
}

/// Collapse `//` and drop a trailing `/` before routing: MaEVe joins its base URL and paths with
/// `fmt.Sprintf("%s/…")`, so a base URL ending in `/` yields `//cpo/…`; the OPCP spec also shows
/// cacerts paths with a trailing slash.
/// OCSP GET paths are left alone: their last part is base64, where `//` and `/` are data.
fn normalize_path(mut req: Request<Body>) -> Request<Body> {
    let path = req.uri().path();
    let ocsp = path.starts_with("/ocsp/") || path.starts_with("/api/v1/ocsp/");
    if !ocsp && path.len() > 1 && (path.contains("//") || path.ends_with('/')) {
        let mut p = String::with_capacity(path.len());
        for seg in path.split('/').filter(|s| !s.is_empty()) {
            p.push('/');
            p.push_str(seg);
        }
        if p.is_empty() {
            p.push('/');
        }
        let pq = match req.uri().query() {
            Some(q) => format!("{p}?{q}"),
            None => p,
        };
        let mut parts = req.uri().clone().into_parts();
        if let Ok(v) = pq.parse() {
            parts.path_and_query = Some(v);
            if let Ok(uri) = axum::http::Uri::from_parts(parts) {
                *req.uri_mut() = uri;
            }
        }
    }
    req
}

/// Request id, error style, metrics and one log line per request. The id is taken from a sane
/// incoming `X-Request-Id` or made up, returned as `X-Request-Id` and as `traceId` in errors.
/// Only method, path, status and duration are logged: never headers (tokens) or bodies (secrets).
async fn observe(State(st): State<AppState>, req: Request<Body>, next: Next) -> Response {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|s| {
            !s.is_empty()
                && s.len() <= 64
                && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        .map(str::to_string)
        .unwrap_or_else(error::new_trace_id);
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let matched = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let style = error::Style::for_path(&path);
    let started = std::time::Instant::now();
    let ctx = error::RequestCtx {
        trace_id: id.clone(),
        style,
    };
    let mut resp = error::REQUEST_CTX.scope(ctx, next.run(req)).await;
    let elapsed = started.elapsed();
    // Refused requests (wrong role or tenant) are audited like authentication failures.
    if let Some(d) = resp.extensions().get::<error::Denied>() {
        let ev = crate::store::AuditEvent::new(
            &d.actor,
            "auth.denied",
            &path,
            serde_json::json!({ "reason": d.code, "method": method.as_str() }),
        );
        if let Err(e) = st.ca.store.audit(&ev).await {
            tracing::error!(error = %e, "could not audit a refused request");
        }
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    st.metrics
        .observe(method.as_str(), &matched, resp.status().as_u16(), elapsed);
    tracing::info!(
        trace_id = %id,
        method = %method,
        path = %path,
        status = resp.status().as_u16(),
        ms = elapsed.as_secs_f64() * 1000.0,
        "request"
    );
    resp
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this route",
    )
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    // The panic message may hold request data; it goes to the log, not to the client.
    tracing::error!("handler panicked");
    let body = serde_json::json!({
        "type": "about:blank",
        "title": "Internal Server Error",
        "status": 500,
        "code": "internal",
        "detail": "internal error",
    });
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        [(header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/yaml")], OPENAPI_YAML)
}

async fn ready(State(st): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    let hsm = {
        let h = st.ca.hsm.clone();
        tokio::task::spawn_blocking(move || h.check()).await
    };
    let hsm_ok = matches!(hsm, Ok(Ok(())));
    let store_ok = st.ca.store.ping().await.is_ok();
    let status = if hsm_ok && store_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(serde_json::json!({
            "status": if status == StatusCode::OK { "ok" } else { "unavailable" },
            "hsm": if hsm_ok { "ok" } else { "down" },
            "store": if store_ok { "ok" } else { "down" },
        })),
    )
}

pub async fn serve(ca: Ca, listen: &str) -> anyhow::Result<()> {
    let cfg = ApiConfig::from_env(&ca.public_url).map_err(|e| anyhow::anyhow!(e))?;
    let tls = tls::TlsConfig::from_env().map_err(|e| anyhow::anyhow!(e))?;
    let state = AppState::new(ca, cfg).await?;
    crl::spawn_scheduler(state.clone());
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    let local = listener.local_addr()?;
    let ocsp = state.ocsp.clone();
    let svc = tower::Layer::layer(
        &tower::util::MapRequestLayer::new(normalize_path),
        router(state),
    );
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    match tls {
        Some(t) => {
            let l = tls::TlsListener::new(listener, &t).map_err(|e| anyhow::anyhow!(e))?;
            tracing::info!(addr = %local, mtls = t.client_ca.is_some(), "pnc-pki listening (TLS 1.3)");
            let mk = axum::ServiceExt::<Request<Body>>::into_make_service_with_connect_info::<
                tls::PeerInfo,
            >(svc);
            axum::serve(l, mk).with_graceful_shutdown(shutdown).await?;
        }
        None => {
            // Tokens and client secrets travel in these requests: plain HTTP only on loopback,
            // unless a TLS-terminating proxy in front is declared with PNC_ALLOW_PLAIN_HTTP=1.
            if !local.ip().is_loopback()
                && std::env::var("PNC_ALLOW_PLAIN_HTTP").as_deref() != Ok("1")
            {
                anyhow::bail!(
                    "refusing plain HTTP on {local}: set PNC_TLS_CERT and PNC_TLS_KEY, listen on loopback, \
                     or set PNC_ALLOW_PLAIN_HTTP=1 behind a TLS-terminating proxy"
                );
            }
            tracing::info!(addr = %local, "pnc-pki listening (plain HTTP)");
            // HTTP/1 with TCP_NODELAY, a header-read timeout and a direct path for OCSP
            // requests: see `ocsp::server` and docs/benchmarks-ocsp.md for why and how much.
            // mTLS identities exist only on the TLS path above.
            crate::ocsp::server::serve_http1(listener, svc, ocsp, shutdown).await?;
        }
    }
    Ok(())
}

/// Lower bound of the CRL refresh period, whatever `PNC_CRL_VALIDITY` says.
pub(crate) const CRL_SCHEDULER_MIN_PERIOD: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    async fn boom() -> &'static str {
        panic!("secret detail")
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_500_problem_json() {
        let app: Router = Router::new().route("/boom", get(boom)).layer(
            tower_http::catch_panic::CatchPanicLayer::custom(panic_response),
        );
        let resp = app
            .oneshot(Request::builder().uri("/boom").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            resp.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        let body = axum::body::to_bytes(resp.into_body(), 4096).await.unwrap();
        let text = String::from_utf8_lossy(&body);
        assert!(
            text.contains("\"code\":\"internal\"") && !text.contains("secret detail"),
            "{text}"
        );
    }

    #[test]
    fn double_slashes_and_trailing_slash_are_collapsed_but_not_for_ocsp() {
        let n = |p: &str| {
            normalize_path(Request::builder().uri(p).body(Body::empty()).unwrap())
                .uri()
                .to_string()
        };
        assert_eq!(
            n("//cpo/simpleenroll/ISO15118-2"),
            "/cpo/simpleenroll/ISO15118-2"
        );
        assert_eq!(
            n("/cpo/cacerts/ISO15118-2/secp256r1/?x=1"),
            "/cpo/cacerts/ISO15118-2/secp256r1?x=1"
        );
        assert_eq!(n("/ocsp/MEow//AB=="), "/ocsp/MEow//AB==");
        assert_eq!(n("/"), "/");
    }
}
