//! Native management API under `/api/v1` (JSON; errors as RFC 9457 problem details), and the
//! public CRL distribution points.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::error::{ApiError, body_error, parse_json};
use super::{AppState, Routes};
use crate::model::{AuditFilter, CaRecord, CertFilter, CertRecord, RevokeOutcome, StatusFilter};
use crate::policy::authz::{Principal, Role};
use crate::x509::to_pem;

/// The `/api/v1` routes and `/crl/{file}`.
pub fn routes(r: Routes) -> Routes {
    r.add("/api/v1/certificates", &["GET"], get(list_certs))
        .add(
            "/api/v1/certificates/{issuer_id}/{serial_hex}",
            &["GET"],
            get(get_cert),
        )
        .add(
            "/api/v1/certificates/{issuer_id}/{serial_hex}/revoke",
            &["POST"],
            post(revoke),
        )
        .add("/api/v1/cas", &["GET"], get(list_cas))
        .add("/api/v1/cas/{id}/chain", &["GET"], get(ca_chain))
        .add("/api/v1/cas/{id}/compromise", &["GET"], get(ca_compromise))
        .add(
            "/api/v1/clients",
            &["GET", "POST"],
            get(list_clients).post(add_client),
        )
        .add(
            "/api/v1/clients/{client_id}",
            &["DELETE"],
            axum::routing::delete(disable_client),
        )
        .add("/api/v1/audit", &["GET"], get(audit))
        .add("/crl/{file}", &["GET"], get(get_crl))
}

fn cert_json(st: &AppState, c: &CertRecord) -> serde_json::Value {
    let mut v = serde_json::to_value(c).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("pem".into(), to_pem("CERTIFICATE", &c.der).into());
        o.insert(
            "crl_url".into(),
            st.ra.crl_url(&c.issuer_id, c.issuer_generation).into(),
        );
    }
    v
}

fn bad_query(e: axum::extract::rejection::QueryRejection) -> ApiError {
    ApiError::bad_request("bad_query", e.body_text())
}

#[derive(Debug, Default, serde::Deserialize)]
struct ListQuery {
    issuer_id: Option<String>,
    profile: Option<String>,
    emaid: Option<String>,
    evse_id: Option<String>,
    pcid: Option<String>,
    status: Option<String>,
    serial_hex: Option<String>,
    /// Unix seconds.
    expiring_before: Option<i64>,
    /// Tenant to list (clients with several tenants must choose one).
    tenant: Option<String>,
    /// Cursor from the previous page's `next`.
    after: Option<String>,
    limit: Option<i64>,
}

/// `GET /api/v1/certificates`: search, paginated by keyset (`next` → `after`). Non-admin
/// callers see only their own tenant's certificates.
async fn list_certs(
    State(st): State<AppState>,
    p: Principal,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(q) = q.map_err(bad_query)?;
    let status = match &q.status {
        Some(s) => Some(
            s.parse::<StatusFilter>()
                .map_err(|e| ApiError::bad_request("bad_query", e.to_string()))?,
        ),
        None => None,
    };
    let page = st
        .ra
        .list_certificates(
            &p,
            CertFilter {
                issuer_id: q.issuer_id,
                profile: q.profile,
                emaid: q.emaid,
                evse_id: q.evse_id,
                pcid: q.pcid,
                status,
                serial_hex: q.serial_hex,
                text: None,
                expiring_before: q.expiring_before,
                expiring_after: None,
                tenant: q.tenant,
                subject: None,
                after: q.after,
                limit: q.limit,
            },
        )
        .await?;
    let items: Vec<_> = page.items.iter().map(|c| cert_json(&st, c)).collect();
    Ok(Json(
        serde_json::json!({ "items": items, "next": page.next }),
    ))
}

/// `GET /api/v1/certificates/{issuer_id}/{serial_hex}`: JSON, or PEM / DER by `Accept`.
async fn get_cert(
    State(st): State<AppState>,
    p: Principal,
    Path((issuer_id, serial)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let c = st.ra.certificate(&p, &issuer_id, &serial).await?;
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if accept.contains("application/pkix-cert")
        || accept.contains("application/x-x509")
        || accept.contains("application/octet-stream")
    {
        return Ok(([(header::CONTENT_TYPE, "application/pkix-cert")], c.der).into_response());
    }
    if accept.contains("application/x-pem-file")
        || accept.contains("application/pem-certificate-chain")
        || accept.starts_with("text/plain")
    {
        return Ok((
            [(header::CONTENT_TYPE, "application/x-pem-file")],
            to_pem("CERTIFICATE", &c.der),
        )
            .into_response());
    }
    Ok(Json(cert_json(&st, &c)).into_response())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeBody {
    reason: Option<String>,
}

/// `POST /api/v1/certificates/{issuer_id}/{serial_hex}/revoke` `{"reason": "keyCompromise"}`.
/// Idempotent: a second call answers 200 with `"outcome": "already_revoked"`; a retry with the
/// first call's `Idempotency-Key` gets the first call's answer (`Ra::revoke_keyed`).
async fn revoke(
    State(st): State<AppState>,
    p: Principal,
    headers: axum::http::HeaderMap,
    Path((issuer_id, serial)): Path<(String, String)>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let body = body.map_err(body_error)?;
    let key = super::idempotency_key(&headers)?;
    let b: RevokeBody = if body.trim_ascii().is_empty() {
        RevokeBody { reason: None }
    } else {
        parse_json(&body)?
    };
    let reason = b.reason.unwrap_or_else(|| "unspecified".into());
    let done = st
        .ra
        .revoke_keyed(&p, &issuer_id, &serial, &reason, key.as_deref())
        .await?;
    let c = &done.record;
    Ok(Json(serde_json::json!({
        "issuer_id": c.issuer_id,
        "serial_hex": c.serial_hex,
        "status": "revoked",
        "outcome": match done.outcome { RevokeOutcome::Revoked => "revoked", _ => "already_revoked" },
        "reason": c.revocation_reason,
        "revoked_at": c.revoked_at,
    })))
}

fn ca_json(st: &AppState, c: &CaRecord) -> serde_json::Value {
    let mut v = serde_json::to_value(c).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("pem".into(), to_pem("CERTIFICATE", &c.cert_der).into());
        o.insert("crl_url".into(), st.ra.crl_url(&c.id, c.generation).into());
    }
    v
}

/// `GET /api/v1/cas`: every CA (public data, any authenticated client).
async fn list_cas(
    State(st): State<AppState>,
    p: Principal,
) -> Result<Json<serde_json::Value>, ApiError> {
    let cas = st.ra.list_cas(&p).await?;
    let items: Vec<_> = cas.iter().map(|c| ca_json(&st, c)).collect();
    Ok(Json(serde_json::json!({ "items": items })))
}

/// `GET /api/v1/cas/{id}/chain`: that CA first, root last; JSON or PEM by `Accept`.
async fn ca_chain(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let chain = st.ra.ca_chain(&p, &id).await?;
    let pem = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("pem") || a.starts_with("text/plain"));
    if pem {
        let all: String = chain.iter().map(|c| c.pem()).collect();
        return Ok(([(header::CONTENT_TYPE, "application/x-pem-file")], all).into_response());
    }
    let items: Vec<_> = chain
        .iter()
        .map(|c| {
            serde_json::json!({
                "subject": c.subject_string(),
                "issuer": c.issuer_string(),
                "serial_hex": c.serial_hex(),
                "not_before": c.not_before(),
                "not_after": c.not_after(),
                "pem": c.pem(),
            })
        })
        .collect();
    Ok(Json(serde_json::json!({ "id": id, "chain": items })).into_response())
}

#[derive(Debug, Default, serde::Deserialize)]
struct CompromiseQuery {
    /// `csv` for CSV (as `Accept: text/csv`), `json` otherwise.
    format: Option<String>,
}

/// `GET /api/v1/cas/{id}/compromise` (admin, auditor): the CA's stopped (compromised) key
/// generations and the certificates whose holders must enroll again, by tenant; JSON, or CSV
/// with `Accept: text/csv` or `?format=csv` (one row per certificate, for a CSMS to trigger
/// `SignCertificate`).
async fn ca_compromise(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    q: Result<Query<CompromiseQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(bad_query)?;
    let report = st.ra.compromise_report(&p, &id).await?;
    let csv = match q.format.as_deref() {
        Some("csv") => true,
        Some("json") | None => headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/csv")),
        Some(other) => {
            return Err(ApiError::bad_request(
                "bad_query",
                format!(
                    "format must be csv or json, not '{}'",
                    other.chars().take(32).collect::<String>()
                ),
            ));
        }
    };
    if csv {
        return Ok((
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            report.reenroll_csv(),
        )
            .into_response());
    }
    Ok(Json(report).into_response())
}

async fn list_clients(
    State(st): State<AppState>,
    p: Principal,
) -> Result<Json<serde_json::Value>, ApiError> {
    let items = st.ra.list_clients(&p).await?;
    Ok(Json(serde_json::json!({ "items": items })))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NewClient {
    name: String,
    role: Role,
    #[serde(default)]
    tenants: Vec<String>,
    /// PEM client certificate for mutual TLS (bound by fingerprint).
    #[serde(default)]
    certificate: Option<String>,
}

/// `POST /api/v1/clients` (admin): the secret is in this answer only.
async fn add_client(
    State(st): State<AppState>,
    p: Principal,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let body = body.map_err(body_error)?;
    let n: NewClient = parse_json(&body)?;
    let (rec, secret) = st
        .ra
        .create_client(
            &p,
            &n.name,
            n.role,
            &n.tenants,
            n.certificate.as_deref().map(str::as_bytes),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({
            "client_id": rec.client_id,
            "client_secret": secret,
            "name": rec.name,
            "role": rec.role,
            "tenants": rec.tenants,
            "cert_sha256": rec.cert_sha256,
        })),
    ))
}

/// `DELETE /api/v1/clients/{client_id}` (admin): disables; no new tokens, and its tokens
/// already issued are refused within the client-state cache time (5 s).
async fn disable_client(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    st.ra.disable_client(&p, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    /// Cursor: entries with a larger `seq` (the previous page's `next`).
    after: Option<i64>,
    /// Only actions starting with this (`certificate.`, `crl.issued`, …).
    action: Option<String>,
    limit: Option<i64>,
}

/// `GET /api/v1/audit` (admin, auditor): the audit log in `seq` order, a page at a time.
async fn audit(
    State(st): State<AppState>,
    p: Principal,
    q: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(q) = q.map_err(bad_query)?;
    if q.after.is_some_and(|a| a < 0) {
        return Err(ApiError::bad_request("bad_query", "after must be ≥ 0"));
    }
    if q.action.as_ref().is_some_and(|a| a.len() > 64) {
        return Err(ApiError::bad_request(
            "bad_query",
            "action prefix is at most 64 characters",
        ));
    }
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let entries = st
        .ra
        .audit_entries(
            &p,
            &AuditFilter {
                after_seq: q.after,
                action_prefix: q.action,
                limit: Some(limit),
                ..Default::default()
            },
        )
        .await?;
    let next = if entries.len() as i64 == limit {
        entries.last().map(|e| e.seq)
    } else {
        None
    };
    let items: Vec<_> = entries.iter().map(|e| e.export_json()).collect();
    Ok(Json(serde_json::json!({ "items": items, "next": next })))
}

/// `GET /crl/{ca_id}.crl` (DER, `application/pkix-crl`). Public, as RFC 5280 distribution
/// points are.
async fn get_crl(
    State(st): State<AppState>,
    Path(file): Path<String>,
) -> Result<Response, ApiError> {
    let Some(id) = file.strip_suffix(".crl") else {
        return Err(ApiError::not_found(
            "CRLs are at /crl/{ca_id}.crl (a CA's first key) or /crl/{ca_id}.g{N}.crl (its N-th)",
        ));
    };
    let crl = st.ra.crl(id).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/pkix-crl".to_string()),
            (
                header::CACHE_CONTROL,
                format!(
                    "public, max-age={}",
                    (crl.next_update - st.ra.now()).clamp(0, 300)
                ),
            ),
        ],
        crl.der,
    )
        .into_response())
}
