//! The HTTP side of authentication: `POST /oauth/token` (client credentials in a JSON or form
//! body, or HTTP Basic), `GET /oauth/jwks.json`, and the [`Principal`] extractor that reads a
//! bearer token (`Authorization: Bearer`, `X-API-Key`) or the mutual-TLS client certificate.
//! Deciding who the caller is happens in `crate::ra::auth`; this module only reads headers.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;

use super::error::{ApiError, body_error};
use super::{AppState, Routes};
use crate::client_ip::ClientIp;
use crate::policy::authz::Principal;
use crate::ra::RaError;
use crate::ra::auth::Credential;

/// The credential a request carries: `Authorization: Bearer …` or `X-API-Key: …` (MaEVe sends
/// both with the same value; if both are present they must agree), else the client certificate.
fn credential(parts: &Parts) -> Result<Credential, &'static str> {
    let headers = &parts.headers;
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| rest.trim().to_string())
        });
    let key = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().trim_start_matches("Bearer ").trim().to_string())
        .filter(|s| !s.is_empty());
    match (auth, key) {
        (Some(a), Some(k)) if a != k => Err("Authorization and X-API-Key carry different tokens"),
        (Some(a), _) | (None, Some(a)) => Ok(Credential::Bearer(a)),
        (None, None) => Ok(parts
            .extensions
            .get::<crate::server::Peer>()
            .and_then(|p| p.client_cert.clone())
            .map(Credential::ClientCertificate)
            .unwrap_or(Credential::None)),
    }
}

/// Where the request comes from (set by `crate::server`; the unspecified address when a request
/// arrives some other way, e.g. a unit test calling the router directly).
pub fn client_ip(ext: &axum::http::Extensions) -> ClientIp {
    ext.get::<ClientIp>()
        .copied()
        .unwrap_or(ClientIp(std::net::Ipv4Addr::UNSPECIFIED.into()))
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Self::Rejection> {
        let path = parts.uri.path().to_string();
        let ip = client_ip(&parts.extensions);
        let result = match credential(parts) {
            Ok(c) => st.tokens.authenticate(c, &path, ip).await,
            Err(detail) => Err(st.tokens.refuse(ip, "invalid_token", detail, &path).await),
        };
        result.map_err(|e| {
            match &e {
                RaError::Unauthenticated { code, .. } => st.metrics.auth_failure(code),
                RaError::RateLimited { code, .. } | RaError::Busy { code, .. } => {
                    st.metrics.limited(code)
                }
                _ => {}
            }
            ApiError::from(e)
        })
    }
}

/// The OAuth2 routes.
pub fn routes(r: Routes) -> Routes {
    r.add("/oauth/token", &["POST"], post(token))
        .add("/oauth/jwks.json", &["GET"], get(jwks))
}

async fn jwks(State(st): State<AppState>) -> Json<serde_json::Value> {
    Json(st.tokens.jwks())
}

#[derive(Debug, Default, serde::Deserialize)]
struct TokenRequest {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    /// Accepted and ignored: our tokens always carry our own audience.
    #[serde(rename = "audience")]
    _audience: Option<String>,
    /// Accepted and ignored: the scope is the client's role.
    #[serde(rename = "scope")]
    _scope: Option<String>,
}

/// RFC 6749 §5.2 error body (with our traceId).
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    oauth_error_coded(status, error, None, description)
}

/// RFC 6749 §5.2 error body with our own stable `code` besides `error` (which must stay one of
/// the values RFC 6749 registers, the ones clients know).
fn oauth_error_coded(
    status: StatusCode,
    error: &str,
    code: Option<&str>,
    description: &str,
) -> Response {
    let mut body = serde_json::json!({
        "error": error,
        "error_description": description,
        "traceId": super::error::current_trace_id(),
    });
    if let Some(code) = code {
        body["code"] = code.into();
    }
    let mut resp = (status, Json(body)).into_response();
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    resp
}

/// `POST /oauth/token`: client credentials in a JSON (MaEVe, ev-server) or form (CitrineOS)
/// body, or in HTTP Basic (RFC 6749 §2.3.1).
async fn token(
    State(st): State<AppState>,
    ext: axum::http::Extensions,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) => return body_error(e).into_response(),
    };
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let trimmed = body.trim_ascii_start();
    let bad = |what: &str, e: &dyn std::fmt::Display| {
        oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            &format!("invalid {what} body: {e}"),
        )
    };
    let mut req: TokenRequest = if ctype.contains("json") || trimmed.first() == Some(&b'{') {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => return bad("JSON", &e),
        }
    } else {
        match serde_urlencoded::from_bytes(&body) {
            Ok(r) => r,
            Err(e) => return bad("form", &e),
        }
    };
    if let Some((id, secret)) = basic_credentials(&headers) {
        req.client_id.get_or_insert(id);
        req.client_secret.get_or_insert(secret);
    }
    // A control character in an identifier is refused before the client is looked up (and the
    // failure audited): PostgreSQL cannot store a NUL, SQLite would.
    let id_ok = [&req.client_id, &req.grant_type]
        .into_iter()
        .flatten()
        .all(|v| crate::policy::text::identifier_ok(v));
    if !id_ok
        || !req
            .client_secret
            .as_deref()
            .is_none_or(crate::policy::text::text_ok)
    {
        return oauth_error_coded(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            Some(crate::policy::text::CODE),
            "client_id, client_secret and grant_type must not contain control characters",
        );
    }
    if req.grant_type.as_deref() != Some("client_credentials") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant_type must be client_credentials",
        );
    }
    let (Some(id), Some(secret)) = (req.client_id, req.client_secret) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "client_id and client_secret are required",
        );
    };
    match st.tokens.grant(client_ip(&ext), &id, secret).await {
        Ok(g) => {
            let mut resp = Json(serde_json::json!({
                "access_token": g.access_token,
                "token_type": "Bearer",
                "expires_in": g.expires_in,
                "scope": g.scope.as_str(),
            }))
            .into_response();
            resp.headers_mut().insert(
                header::CACHE_CONTROL,
                header::HeaderValue::from_static("no-store"),
            );
            resp
        }
        Err(RaError::Unauthenticated { code, detail }) => {
            st.metrics.auth_failure(code);
            oauth_error(StatusCode::UNAUTHORIZED, code, &detail)
        }
        Err(e @ (RaError::RateLimited { .. } | RaError::Busy { .. })) => {
            st.metrics.limited(e.code());
            let status = StatusCode::from_u16(e.kind().http_status())
                .unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            let mut resp = oauth_error(status, e.code(), &e.to_string());
            if let Some(secs) = e.retry_after() {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
            }
            resp
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (id, secret) = s.split_once(':')?;
    Some((id.to_string(), secret.to_string()))
}
