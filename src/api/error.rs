//! Error answers. The native API answers RFC 9457 `application/problem+json` with a stable
//! `code`; OPCP routes answer Hubject's `{"errorMessages":[…],"traceId":…}` (plus our `code`).
//! Which one is decided per request from its path, so extractors (auth, body) need not know.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::ca::CaError;
use crate::store::StoreError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    Problem,
    Opcp,
}

impl Style {
    pub fn for_path(path: &str) -> Style {
        if path.starts_with("/api/") || path.starts_with("/health") || path == "/metrics" {
            Style::Problem
        } else {
            Style::Opcp
        }
    }
}

#[derive(Clone, Debug)]
pub struct RequestCtx {
    pub trace_id: String,
    pub style: Style,
}

tokio::task_local! {
    /// Set by the request middleware for the whole handler future.
    pub static REQUEST_CTX: RequestCtx;
}

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

pub fn current_trace_id() -> String {
    REQUEST_CTX
        .try_with(|c| c.trace_id.clone())
        .unwrap_or_else(|_| new_trace_id())
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub detail: String,
    /// Extra headers (e.g. WWW-Authenticate).
    pub www_authenticate: bool,
    /// For refusals: who was refused (audited by the request middleware).
    pub actor: Option<String>,
}

/// Attached to 403 responses so the request middleware can audit the refusal.
#[derive(Clone, Debug)]
pub struct Denied {
    pub actor: String,
    pub code: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code: code.to_string(),
            detail: detail.into(),
            www_authenticate: false,
            actor: None,
        }
    }
    pub fn bad_request(code: &str, detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, detail)
    }
    pub fn unauthorized(code: &str, detail: impl Into<String>) -> ApiError {
        let mut e = ApiError::new(StatusCode::UNAUTHORIZED, code, detail);
        e.www_authenticate = true;
        e
    }
    pub fn forbidden(code: &str, detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, code, detail)
    }
    pub fn not_found(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", detail)
    }
    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        // Internal details go to the log only.
        tracing::error!(error = %detail, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    }
}

impl From<CaError> for ApiError {
    fn from(e: CaError) -> ApiError {
        let status = match &e {
            CaError::NotFound(_) => StatusCode::NOT_FOUND,
            CaError::UnknownIssuer(_) => StatusCode::NOT_FOUND,
            CaError::Hsm(_) | CaError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ if e.is_client_error() => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if !e.is_client_error() {
            tracing::error!(error = %e, code = e.code(), "CA error");
            return ApiError::new(
                status,
                e.code(),
                "the service could not complete the request",
            );
        }
        ApiError::new(status, e.code(), e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        tracing::error!(error = %e, "store error");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "the database could not complete the request",
        )
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
        if let Some(actor) = self.actor {
            resp.extensions_mut().insert(Denied {
                actor,
                code: self.code.clone(),
            });
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

/// Parse a JSON body with a 400 `malformed_json` on failure.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("malformed_json", format!("invalid JSON body: {e}")))
}
