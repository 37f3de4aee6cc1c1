//! Error answers. The native API answers RFC 9457 `application/problem+json` with a stable
//! `code`; OPCP routes answer Hubject's `{"errorMessages":[…],"traceId":…}` (plus our `code`).
//! Which one is decided per request from its path, so extractors (auth, body) need not know.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::ErrorKind;
use crate::ra::RaError;

/// Which error body a request gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// RFC 9457 problem details (native API, health, metrics).
    Problem,
    /// Hubject's OPCP shape.
    Opcp,
}

impl Style {
    /// The style of a request path.
    pub fn for_path(path: &str) -> Style {
        if path.starts_with("/api/") || path.starts_with("/health") || path == "/metrics" {
            Style::Problem
        } else {
            Style::Opcp
        }
    }
}

/// What the error renderer needs to know about the request being answered.
#[derive(Clone, Debug)]
pub struct RequestCtx {
    /// The request id.
    pub trace_id: String,
    /// Its error style.
    pub style: Style,
}

tokio::task_local! {
    /// Set by the request middleware for the whole handler future.
    pub static REQUEST_CTX: RequestCtx;
}

/// A fresh UUID-shaped request id.
pub fn new_trace_id() -> String {
    let b: [u8; 16] = rand::random();
    let h = hex::encode(b);
    // UUID-shaped (v4 bits set), as Hubject's traceIds are.
    format!(
        "{}-{}-4{}-{}{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        ["8", "9", "a", "b"][(b[8] & 3) as usize],
        &h[17..20],
        &h[20..32]
    )
}

/// The id of the request being answered (a fresh one outside a request).
pub fn current_trace_id() -> String {
    REQUEST_CTX
        .try_with(|c| c.trace_id.clone())
        .unwrap_or_else(|_| new_trace_id())
}

/// `Retry-After` seconds of a 503 that gives none of its own (the database or the token is
/// unavailable): short, because the pool and the token reconnect by themselves; clients keep
/// retrying within their own budget (`docs/deployment.md`).
pub const RETRY_AFTER_UNAVAILABLE: u64 = 1;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: String,
    /// Human-readable detail (never internal details).
    pub detail: String,
    /// Add `WWW-Authenticate` (401 answers).
    pub www_authenticate: bool,
    /// Add `Retry-After` with these seconds (429 and 503 answers of limits).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with a status, code and detail.
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code: code.to_string(),
            detail: detail.into(),
            www_authenticate: false,
            retry_after: None,
        }
    }
    /// 400.
    pub fn bad_request(code: &str, detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, detail)
    }
    /// 404 `not_found`.
    pub fn not_found(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", detail)
    }
    /// 500 `internal`; the detail goes to the log only.
    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %detail, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    }
}

impl From<RaError> for ApiError {
    fn from(e: RaError) -> ApiError {
        let kind = e.kind();
        let status =
            StatusCode::from_u16(kind.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if let Some(secs) = e.retry_after() {
            // A limit, not a fault: say which and when to come back.
            let mut out = ApiError::new(status, e.code(), e.to_string());
            out.retry_after = Some(secs);
            return out;
        }
        if let RaError::Provisioning(f) = &e {
            // Provisioning details name certificates and limits, never secrets: say them.
            return ApiError::new(status, f.code, f.detail.clone());
        }
        if e.code() == "outcome_unknown" {
            // The one 503 whose retry needs care: without the same key it could issue twice.
            let mut out = ApiError::new(
                status,
                "outcome_unknown",
                "the database connection was lost while this request was being committed, so \
                 whether it took effect is unknown; retry it with the same Idempotency-Key to get \
                 its result (a certificate that was stored is answered, not issued again)",
            );
            out.retry_after = Some(RETRY_AFTER_UNAVAILABLE);
            tracing::warn!(error = %e, "request answered outcome_unknown");
            return out;
        }
        if !kind.is_client_error() {
            // Internal details (token errors, SQL) go to the log, not to the client.
            tracing::error!(error = %e, code = e.code(), "request failed on our side");
            return ApiError::new(
                status,
                e.code(),
                "the service could not complete the request",
            );
        }
        let mut out = ApiError::new(status, e.code(), e.to_string());
        out.www_authenticate = kind == ErrorKind::Unauthenticated;
        out
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (trace_id, style) = REQUEST_CTX
            .try_with(|c| (c.trace_id.clone(), c.style))
            .unwrap_or_else(|_| (new_trace_id(), Style::Problem));
        let (ctype, body) = match style {
            Style::Problem => (
                "application/problem+json",
                serde_json::json!({
                    "type": format!("urn:pnc-pki:error:{}", self.code),
                    "title": self.status.canonical_reason().unwrap_or("Error"),
                    "status": self.status.as_u16(),
                    "code": self.code,
                    "detail": self.detail,
                    "traceId": trace_id,
                }),
            ),
            Style::Opcp => (
                "application/json",
                serde_json::json!({
                    "errorMessages": [self.detail],
                    "traceId": trace_id,
                    "code": self.code,
                }),
            ),
        };
        let mut resp = (
            self.status,
            [(header::CONTENT_TYPE, ctype)],
            body.to_string(),
        )
            .into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
        }
        if self.www_authenticate {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"pnc-pki\""),
            );
        }
        resp
    }
}

/// Body bytes with the limit turned into a 413 in our error format.
pub fn body_error(e: axum::extract::rejection::BytesRejection) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "request body too large",
        )
    } else {
        ApiError::bad_request("bad_body", e.body_text())
    }
}

/// Parse a JSON body with a 400 `malformed_json` on failure, and a 400 `invalid_characters`
/// for a control character in a field name or string (`crate::policy::text::json_ok`: none in
/// identifiers, line breaks and tabs only in free text such as a PEM block).
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let parsed = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("malformed_json", format!("invalid JSON body: {e}")))?;
    // Parsed a second time, as a tree, only when a control character is possible at all.
    if crate::policy::text::json_may_hold_controls(body)
        && let Ok(tree) = serde_json::from_slice::<serde_json::Value>(body)
        && let Err(field) = crate::policy::text::json_ok(&tree)
    {
        return Err(ApiError::bad_request(
            crate::policy::text::CODE,
            format!("control characters are not allowed in {field}"),
        ));
    }
    Ok(parsed)
}
