//! HTTP front end (axum): the OPCP (Hubject dialect) surface CSMSs speak, the native management
//! API under `/api/v1`, OAuth2 client credentials, CRLs and operations endpoints.
//!
//! Handlers only read requests and write answers: who the caller is comes from `crate::ra::auth`,
//! everything else from the [`Ra`]. Layout: `router()` assembles every route from the modules
//! below and records each (path, method) in a table so the OpenAPI test can compare code and
//! spec; the OCSP responder's routes are merged in with one `.merge(...)` line.

pub mod auth;
pub mod error;
pub mod est;
pub mod metrics;
pub mod native;
pub mod ocpp;
pub mod opnc;
pub mod provisioning;
pub mod webhooks;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use axum::{Json, Router};

use crate::ocsp::Responder;
use crate::policy::authz::Principal;
use crate::ra::Ra;
use crate::ra::auth::{TokenSettings, Tokens};
use crate::server::tls::{TlsConfig, serve_tls};
use crate::server::{Limits, serve_plain};
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
/// | `PNC_API_TOKEN_TTL`       | `1h`               | access token lifetime (a duration with a unit) |
/// | `PNC_API_JWKS_FILE`       | unset              | JWKS of an external token issuer we trust     |
/// | `PNC_API_JWKS_ISSUER`     | unset              | that issuer's `iss` (required with the file)  |
/// | `PNC_API_MAX_BODY`        | `65536`            | request body limit, bytes                     |
/// | `PNC_PROVISIONING_FAILED_EXI_STATUS` | `error` | `200`: answer refused installations with 200 + FAILED EXI (`alwaysReturnEXI`) |
/// | `PNC_UI`                  | `on`               | `off`: no operator console at `/ui/`          |
#[derive(Clone, Debug)]
pub struct ApiConfig {
    /// `iss` of our tokens.
    pub issuer: String,
    /// `aud` required in every token.
    pub audience: String,
    /// Token lifetime, seconds.
    pub token_ttl: i64,
    /// JWKS file of a trusted external issuer.
    pub jwks_file: Option<String>,
    /// That issuer's `iss`.
    pub jwks_issuer: Option<String>,
    /// Request body limit, bytes.
    pub max_body: usize,
    /// Answer a refused installation that carries a FAILED EXI with HTTP 200 (both CSMSs discard
    /// 404 bodies) instead of its error status.
    pub failed_exi_ok: bool,
    /// Serve the operator console at `/ui/`.
    pub ui: bool,
    /// Mark console session cookies `Secure`: the public URL is https, or `serve` terminates
    /// TLS itself.
    pub secure_cookies: bool,
    /// What an OCPP `SignCertificateRequest` without `certificateType` asks for
    /// (`PNC_OCPP_DEFAULT_CERTIFICATE_TYPE`; OCPP says "both", and MaEVe and CitrineOS read it
    /// differently).
    pub ocpp_default_certificate_type: crate::ra::ocpp::OcppCertificateType,
}

/// Settings or files `serve` cannot start with.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// An environment variable or file is not usable.
    #[error("{0}")]
    Config(String),
    /// Listening failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The RA could not load the token key.
    #[error(transparent)]
    Ra(#[from] crate::ra::RaError),
}

impl From<crate::config::ConfigError> for ServeError {
    fn from(e: crate::config::ConfigError) -> ServeError {
        ServeError::Config(e.to_string())
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> Result<T, ServeError> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .map_err(|_| ServeError::Config(format!("{name}='{v}' is not a valid value"))),
        _ => Ok(default),
    }
}

impl ApiConfig {
    /// The settings from the environment; `public_url` is the default token issuer.
    pub fn from_env(public_url: &str) -> Result<ApiConfig, ServeError> {
        let cfg = ApiConfig {
            issuer: env_or(
                "PNC_API_ISSUER",
                public_url.trim_end_matches('/').to_string(),
            )?,
            audience: env_or("PNC_API_AUDIENCE", "pnc-pki".to_string())?,
            token_ttl: match std::env::var("PNC_API_TOKEN_TTL") {
                Ok(v) if !v.trim().is_empty() => crate::duration::parse_duration(&v)
                    .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
                    .map_err(|e| ServeError::Config(format!("PNC_API_TOKEN_TTL: {e}")))?,
                _ => 3600,
            },
            jwks_file: std::env::var("PNC_API_JWKS_FILE")
                .ok()
                .filter(|s| !s.is_empty()),
            jwks_issuer: std::env::var("PNC_API_JWKS_ISSUER")
                .ok()
                .filter(|s| !s.is_empty()),
            max_body: env_or("PNC_API_MAX_BODY", 64 * 1024usize)?,
            failed_exi_ok: match std::env::var("PNC_PROVISIONING_FAILED_EXI_STATUS").as_deref() {
                Ok("200") => true,
                Ok("error") | Ok("") | Err(_) => false,
                Ok(other) => {
                    return Err(ServeError::Config(format!(
                        "PNC_PROVISIONING_FAILED_EXI_STATUS='{other}' (use 200 or error)"
                    )));
                }
            },
            ui: match std::env::var("PNC_UI").as_deref().map(str::trim) {
                Ok("on") | Ok("1") | Ok("true") | Ok("") | Err(_) => true,
                Ok("off") | Ok("0") | Ok("false") => false,
                Ok(other) => {
                    return Err(ServeError::Config(format!(
                        "PNC_UI='{other}' (use on or off)"
                    )));
                }
            },
            secure_cookies: public_url.starts_with("https://"),
            ocpp_default_certificate_type: match std::env::var(
                "PNC_OCPP_DEFAULT_CERTIFICATE_TYPE",
            ) {
                Ok(v) if !v.trim().is_empty() => {
                    crate::ra::ocpp::OcppCertificateType::from_name(v.trim()).ok_or_else(|| {
                        ServeError::Config(format!(
                            "PNC_OCPP_DEFAULT_CERTIFICATE_TYPE='{}' (use ChargingStationCertificate, V2GCertificate or V2G20Certificate)",
                            v.chars().take(40).collect::<String>()
                        ))
                    })?
                }
                _ => crate::ra::ocpp::OcppCertificateType::ChargingStation,
            },
        };
        if cfg.token_ttl < 1 {
            return Err(ServeError::Config(
                "PNC_API_TOKEN_TTL must be ≥ 1 second".into(),
            ));
        }
        if cfg.jwks_file.is_some() != cfg.jwks_issuer.is_some() {
            return Err(ServeError::Config(
                "PNC_API_JWKS_FILE and PNC_API_JWKS_ISSUER go together".into(),
            ));
        }
        Ok(cfg)
    }

    fn token_settings(&self) -> Result<TokenSettings, ServeError> {
        let external = match (&self.jwks_file, &self.jwks_issuer) {
            (Some(file), Some(iss)) => {
                let text = std::fs::read_to_string(file)
                    .map_err(|e| ServeError::Config(format!("JWKS file {file}: {e}")))?;
                Some((text, iss.clone()))
            }
            _ => None,
        };
        Ok(TokenSettings {
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            ttl: self.token_ttl,
            external,
        })
    }
}

/// Everything a handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The registration authority.
    pub ra: Ra,
    /// Access tokens.
    pub tokens: Arc<Tokens>,
    /// HTTP settings.
    pub cfg: Arc<ApiConfig>,
    /// Counters.
    pub metrics: Arc<metrics::Metrics>,
    /// The OCSP responder of this process.
    pub ocsp: Responder,
}

impl axum::extract::FromRef<AppState> for Responder {
    fn from_ref(st: &AppState) -> Self {
        st.ocsp.clone()
    }
}

impl AppState {
    /// Load (or create, on first start) the token signing key and the trusted external keys.
    pub async fn new(ra: Ra, ocsp: Responder, cfg: ApiConfig) -> Result<AppState, ServeError> {
        let tokens = Tokens::load(&ra, cfg.token_settings()?).await?;
        Ok(AppState {
            ra,
            tokens: Arc::new(tokens),
            cfg: Arc::new(cfg),
            metrics: Arc::new(metrics::Metrics::default()),
            ocsp,
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

    /// Record a route that another router serves (see `ocsp_routes`).
    fn record(mut self, path: &str, methods: &[&str]) -> Routes {
        let spec_path = path.replace("{*", "{");
        for m in methods {
            self.table.push((spec_path.clone(), m.to_ascii_lowercase()));
        }
        self
    }

    /// Add `path` for the listed methods (upper case, as in the table the OpenAPI test reads).
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
    let r = provisioning::routes(r);
    let r = ocpp::routes(r);
    let r = webhooks::routes(r);
    let r = opnc::routes(r);
    native::routes(r)
}

/// OCSP (public, the URL in every certificate's AIA) and the OCPP-shaped lookups (authenticated:
/// any registered client, since a CSMS relays them for its stations).
fn ocsp_routes(r: Routes) -> Routes {
    // The public OCSP paths are served by `crate::ocsp::routes` (outside the per-request
    // bookkeeping layers); they are recorded here so the OpenAPI check covers them.
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

/// OCPP lookups are open to every authenticated client (a CSMS relays them for its stations);
/// the RA still decides, so that a role without the right is refused and audited.
async fn ocsp_lookup_allowed(st: &AppState, p: &Principal) -> Result<(), ApiError> {
    st.ra.authorize_ocsp_lookup(p).await.map_err(ApiError::from)
}

async fn ocpp_certificate_status(
    State(st): State<AppState>,
    caller: Principal,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    ocsp_lookup_allowed(&st, &caller).await?;
    let ours =
        crate::ocsp::ocpp::certificate_status_route(State(st.ocsp.clone()), body.clone()).await;
    // Not one of our CAs' certificates: the other PKI's own responder is asked (OCPP M06),
    // through the guarded fetcher, and its answer relayed once it verifies.
    let parsed: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
    let data = parsed
        .as_ref()
        .and_then(|v| v.get("ocspRequestData"))
        .and_then(|d| {
            serde_json::from_value::<crate::ra::authorize::OcspRequestData>(d.clone()).ok()
        });
    let (Some(data), true) = (data, ours.status() == axum::http::StatusCode::OK) else {
        return Ok(ours);
    };
    let (parts, b) = ours.into_parts();
    let bytes = axum::body::to_bytes(b, 1 << 20)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let answer: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    if answer["statusInfo"]["reasonCode"] != "UnknownIssuer" {
        return Ok(Response::from_parts(parts, axum::body::Body::from(bytes)));
    }
    use base64::Engine as _;
    let out = match st.ra.foreign_certificate_status(&caller, &data).await? {
        Ok(der) => serde_json::json!({
            "status": "Accepted",
            "ocspResult": base64::engine::general_purpose::STANDARD.encode(der),
        }),
        Err(why) => serde_json::json!({
            "status": "Failed",
            "statusInfo": {"reasonCode": "UnknownIssuer", "additionalInfo": why.chars().take(500).collect::<String>()},
        }),
    };
    Ok(axum::Json(out).into_response())
}

async fn ocpp_chain_status(
    State(st): State<AppState>,
    caller: Principal,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    ocsp_lookup_allowed(&st, &caller).await?;
    let ours = crate::ocsp::ocpp::chain_status_route(State(st.ocsp.clone()), body.clone()).await;
    if ours.status() != axum::http::StatusCode::OK {
        return Ok(ours);
    }
    let (parts, b) = ours.into_parts();
    let bytes = axum::body::to_bytes(b, 1 << 20)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let (Ok(mut answer), Ok(request)) = (
        serde_json::from_slice::<serde_json::Value>(&bytes),
        serde_json::from_slice::<serde_json::Value>(&body),
    ) else {
        return Ok(Response::from_parts(parts, axum::body::Body::from(bytes)));
    };
    // Entries our responder cannot answer (not our CAs') are asked at the other PKI's
    // responder named in `urls`, through the guarded fetcher, when the issuer is a CA we know.
    let entries = request["certificateStatusRequests"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for (i, e) in entries.iter().enumerate() {
        // Our responder says Failed or Unknown for a CertID that is not our CAs'.
        let st_i = &answer["certificateStatus"][i]["status"];
        if st_i != "Failed" && st_i != "Unknown" {
            continue;
        }
        let url = e["urls"]
            .as_array()
            .and_then(|u| u.first())
            .and_then(|u| u.as_str());
        let Some(url) = url else { continue };
        let mut hd = e["certificateHashData"].clone();
        hd["responderURL"] = serde_json::json!(url);
        let Ok(data) = serde_json::from_value::<crate::ra::authorize::OcspRequestData>(hd) else {
            continue;
        };
        let (status, next) = match st.ra.foreign_status(&data).await {
            Ok(Ok((_, a))) => match a {
                crate::validation::ocsp::OcspAnswer::Good { next_update } => ("Good", next_update),
                crate::validation::ocsp::OcspAnswer::Revoked { next_update, .. } => {
                    ("Revoked", next_update)
                }
                crate::validation::ocsp::OcspAnswer::Unknown { next_update } => {
                    ("Unknown", next_update)
                }
            },
            // Not a CA we know, no usable answer, or hash data we cannot use (SHA-1): our
            // responder's word stands.
            _ => continue,
        };
        answer["certificateStatus"][i]["status"] = serde_json::json!(status);
        if let Some(n) = next
            && let Ok(t) = time::OffsetDateTime::from_unix_timestamp(n)
            && let Ok(s) = t.format(&time::format_description::well_known::Rfc3339)
        {
            answer["certificateStatus"][i]["nextUpdate"] = serde_json::json!(s);
        }
    }
    Ok(axum::Json(answer).into_response())
}

/// Every (path, method) the router serves; the OpenAPI test compares it with the spec.
pub fn route_table() -> Vec<(String, String)> {
    build().table
}

/// The application router.
///
/// `POST /ocsp`, `GET /ocsp/{base64}` are the hottest path of the product (chargers and CSMSs,
/// thousands of requests a second). Request ids, per-request log lines and per-route metrics
/// cost about 40 % of its throughput, and OCSP answers carry their own status, so those routes
/// are merged after the bookkeeping layers and get only the panic guard; the handler enforces
/// its own request limit.
pub fn router(state: AppState) -> Router {
    let max_body = state.cfg.max_body;
    let ocsp = crate::ocsp::routes(state.ocsp.clone()).layer(
        tower_http::catch_panic::CatchPanicLayer::custom(panic_response),
    );
    let mut app: Router = build()
        .router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state.clone());
    if state.cfg.ui {
        // HTML pages for people, not API routes: not in the route table or the OpenAPI spec,
        // but under the same request ids, log lines, metrics and limits.
        let console = crate::console::ConsoleState::new(
            state.ra.clone(),
            state.ocsp.clone(),
            state.cfg.secure_cookies,
        );
        app = app.merge(crate::console::router(console));
    }
    app.layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn(hygiene))
        .layer(axum::middleware::from_fn_with_state(state, observe))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_response,
        ))
        .merge(ocsp)
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
    if resp.status() == StatusCode::SERVICE_UNAVAILABLE
        && !resp.headers().contains_key(header::RETRY_AFTER)
    {
        // Every 503 says when to come back (store, token, readiness), not only limits'.
        resp.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(error::RETRY_AFTER_UNAVAILABLE),
        );
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    st.metrics
        .observe(method.as_str(), &matched, resp.status().as_u16(), elapsed);
    // Method and path as sent are the caller's: bounded before they reach the log.
    let logged_path: String = path.chars().take(256).collect();
    tracing::info!(
        trace_id = %id,
        method = metrics::method_label(method.as_str()),
        path = %logged_path,
        status = resp.status().as_u16(),
        ms = elapsed.as_secs_f64() * 1000.0,
        "request"
    );
    resp
}

/// Input hygiene around every routed request (inside [`observe`], so answers carry the request
/// id and the path's error style):
/// - a path or query string holding a control character once percent-decoded is refused with
///   `400 invalid_characters` before routing (`crate::policy::text`): a NUL reaching PostgreSQL
///   was a 503, reaching SQLite a stored NUL;
/// - a plain-text error the framework itself wrote (an extractor's rejection: body too large,
///   a path segment that is not UTF-8, a wrong content type) is rewritten into our error format
///   with a `code`, so that every error body is machine-readable.
async fn hygiene(req: Request<Body>, next: Next) -> Response {
    let uri = req.uri();
    let bad = if !crate::policy::text::uri_component_ok(uri.path()) {
        Some("path")
    } else if !uri
        .query()
        .is_none_or(crate::policy::text::uri_component_ok)
    {
        Some("query string")
    } else {
        None
    };
    if let Some(part) = bad {
        tracing::debug!(part, "control characters in the request URI");
        return ApiError::bad_request(
            crate::policy::text::CODE,
            format!("control characters are not allowed in the {part}"),
        )
        .into_response();
    }
    let resp = next.run(req).await;
    coded_rejection(resp).await
}

/// A framework rejection (status ≥ 400, `text/plain` body) as an [`ApiError`] of the same
/// status with a code; every other answer unchanged.
async fn coded_rejection(resp: Response) -> Response {
    let plain = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain"));
    let status = resp.status();
    if !plain || !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "unprocessable_body",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::LENGTH_REQUIRED => "length_required",
        s if s.is_server_error() => "internal",
        _ => "bad_request",
    };
    // Rejection texts are short and say what was wrong with the request (never secrets);
    // bounded all the same.
    let text = axum::body::to_bytes(resp.into_body(), 4096)
        .await
        .map(|b| {
            String::from_utf8_lossy(&b)
                .chars()
                .take(300)
                .collect::<String>()
        })
        .unwrap_or_default();
    let detail = if code == "body_too_large" {
        "request body too large".to_string()
    } else {
        text
    };
    ApiError::new(status, code, detail).into_response()
}

/// The `Idempotency-Key` header of an issuing or revoking call, if sent (what it binds:
/// `Ra::enroll`, `Ra::revoke_keyed`, `Ra::provision`).
fn idempotency_key(headers: &axum::http::HeaderMap) -> Result<Option<String>, ApiError> {
    match headers.get("idempotency-key").map(|v| v.to_str()) {
        None => Ok(None),
        Some(Ok(k)) => Ok(Some(k.trim().to_string())),
        Some(Err(_)) => Err(ApiError::bad_request(
            "invalid_idempotency_key",
            "Idempotency-Key must be visible ASCII",
        )),
    }
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
    let h = st.ra.health().await;
    let (hsm_ok, store_ok) = (h.hsm, h.store);
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

/// Whether `serve` listens on loopback while the public URL points to another loopback address
/// or port: certificates would send OCSP and CRL requests to whatever else listens there (often
/// another pnc-pki), and nothing else would notice.
fn elsewhere_on_loopback(local: std::net::SocketAddr, public_url: &str) -> bool {
    if !local.ip().is_loopback() {
        return false;
    }
    let Ok(u) = url::Url::parse(public_url) else {
        return false;
    };
    let host_ip = match u.host() {
        Some(url::Host::Ipv4(a)) => Some(std::net::IpAddr::V4(a)),
        Some(url::Host::Ipv6(a)) => Some(std::net::IpAddr::V6(a)),
        Some(url::Host::Domain(d)) if d.eq_ignore_ascii_case("localhost") => None,
        _ => return false,
    };
    if host_ip.is_some_and(|ip| !ip.is_loopback()) {
        return false;
    }
    let other_host = host_ip.is_some_and(|ip| ip != local.ip());
    other_host || u.port_or_known_default() != Some(local.port())
}

/// Serve HTTP (or TLS 1.3 when `PNC_TLS_CERT`/`PNC_TLS_KEY` are set) on `listen` until Ctrl-C,
/// under the connection limits of [`crate::server::Limits`].
pub async fn serve(
    ra: Ra,
    ocsp: Responder,
    public_url: &str,
    listen: &str,
) -> Result<(), ServeError> {
    let cfg = ApiConfig::from_env(public_url)?;
    let tls = TlsConfig::from_env()?;
    let limits = Limits::from_env()?;
    if let Some(t) = &tls {
        refuse_own_client_ca(&ra, t).await?;
    }
    let mut cfg = cfg;
    cfg.secure_cookies |= tls.is_some();
    let state = AppState::new(ra.clone(), ocsp, cfg).await?;
    // Summaries of repeated refusals (see `crate::ra::refusals`), written as windows end.
    let flusher = tokio::spawn(ra.clone().run_refusal_flusher());
    // Updated contract certificates are revoked once their grace period ends.
    let sweeper = tokio::spawn(ra.clone().run_supersession_sweeper());
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| ServeError::Config(format!("cannot listen on {listen}: {e}")))?;
    let local = listener.local_addr()?;
    if elsewhere_on_loopback(local, public_url) {
        tracing::warn!(
            listen = %local,
            public_url,
            "serve listens on {local} but the public URL written into certificates (OCSP, CRL) is \
             {public_url}, another address on this machine: relying parties will ask whatever \
             answers there. Re-run `pnc-pki init --public-url` (new CA certificates need a \
             rollover) or listen where the public URL points"
        );
    }
    // Requests to other PKIs never come back to this service.
    ra.note_listen_addresses(&[local]);
    // Ecosystem events leave through the guarded fetcher (which now knows our own address).
    let deliverer = tokio::spawn(ra.clone().run_webhook_deliverer());
    let ocsp = state.ocsp.clone();
    let svc = tower::Layer::layer(
        &tower::util::MapRequestLayer::new(normalize_path),
        router(state),
    );
    // SIGTERM (systemd, Kubernetes, docker stop) and Ctrl-C both drain and exit 0.
    let shutdown = async {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = term.recv() => {}
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    };
    match tls {
        Some(t) => {
            tracing::info!(addr = %local, mtls = t.client_ca.is_some(), console = %format!("https://{local}/ui/"), "pnc-pki listening (TLS 1.3)");
            serve_tls(listener, &t, svc, limits, shutdown).await?;
        }
        None => {
            // Tokens and client secrets travel in these requests: plain HTTP only on loopback,
            // unless a TLS-terminating proxy in front is declared with PNC_ALLOW_PLAIN_HTTP=1.
            if !local.ip().is_loopback()
                && std::env::var("PNC_ALLOW_PLAIN_HTTP").as_deref() != Ok("1")
            {
                return Err(ServeError::Config(format!(
                    "refusing plain HTTP on {local}: set PNC_TLS_CERT and PNC_TLS_KEY, listen on loopback, \
                     or set PNC_ALLOW_PLAIN_HTTP=1 behind a TLS-terminating proxy"
                )));
            }
            tracing::info!(addr = %local, console = %format!("http://{local}/ui/"), "pnc-pki listening (plain HTTP)");
            // A direct path for OCSP requests: see `crate::server` and docs/benchmarks-ocsp.md
            // for why and how much. mTLS identities exist only on the TLS path above.
            serve_plain(listener, svc, ocsp, limits, shutdown).await?;
        }
    }
    flusher.abort();
    sweeper.abort();
    deliverer.abort();
    ra.release_webhook_lease().await;
    ra.flush_refusals(true).await;
    Ok(())
}

/// Refuse a client CA bundle holding one of our own CAs (its key), unless
/// `PNC_TLS_CLIENT_CA_ALLOW_OWN=1`: every certificate such a CA issues — a charger's, a contract's
/// — would then pass the TLS layer as an API client certificate. Pinning (`client add --cert`)
/// keeps those from authenticating anyway; this keeps the configuration from inviting it.
async fn refuse_own_client_ca(ra: &Ra, t: &TlsConfig) -> Result<(), ServeError> {
    let bundle = t.client_ca_certs()?;
    if bundle.is_empty() || std::env::var("PNC_TLS_CLIENT_CA_ALLOW_OWN").as_deref() == Ok("1") {
        return Ok(());
    }
    let ours: Vec<(String, Vec<u8>)> = ra
        .cas()
        .await?
        .into_iter()
        .filter_map(|ca| {
            let spki = crate::x509::ParsedCert::from_der(&ca.cert_der)
                .ok()?
                .spki_der();
            Some((ca.id, spki))
        })
        .collect();
    for der in &bundle {
        let Ok(c) = crate::x509::ParsedCert::from_der(der) else {
            continue;
        };
        let spki = c.spki_der();
        if let Some((id, _)) = ours.iter().find(|(_, k)| *k == spki) {
            return Err(ServeError::Config(format!(
                "PNC_TLS_CLIENT_CA holds this service's own CA '{id}': every certificate it issues \
                 would pass as an API client certificate. Use a separate CA for API clients, or set \
                 PNC_TLS_CLIENT_CA_ALLOW_OWN=1 if that is intended"
            )));
        }
    }
    Ok(())
}

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

    #[test]
    fn public_url_elsewhere_on_loopback() {
        let l: std::net::SocketAddr = "127.0.0.1:9000".parse().unwrap();
        assert!(super::elsewhere_on_loopback(l, "http://127.0.0.1:8080"));
        assert!(super::elsewhere_on_loopback(l, "http://localhost:8080"));
        assert!(super::elsewhere_on_loopback(l, "http://127.0.0.2:9000"));
        assert!(!super::elsewhere_on_loopback(l, "http://127.0.0.1:9000"));
        assert!(!super::elsewhere_on_loopback(l, "http://localhost:9000/"));
        assert!(!super::elsewhere_on_loopback(l, "https://pki.example.com"));
        let l: std::net::SocketAddr = "127.0.0.1:80".parse().unwrap();
        assert!(!super::elsewhere_on_loopback(l, "http://127.0.0.1"));
        let l: std::net::SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert!(!super::elsewhere_on_loopback(l, "http://127.0.0.1:9000"));
    }
}
