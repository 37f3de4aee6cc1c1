//! Native management API under `/api/v1` (JSON; errors as RFC 9457 problem details).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::auth::{self, Principal, Role};
use super::error::{ApiError, body_error, parse_json};
use super::{AppState, Routes};
use crate::ca::normalize_serial;
use crate::policy::identifiers::compact_id;
use crate::store::{CertFilter, CertRecord, RevokeOutcome};
use crate::x509::to_pem;

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
}

fn cert_json(st: &AppState, c: &CertRecord) -> serde_json::Value {
    let mut v = serde_json::to_value(c).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("pem".into(), to_pem("CERTIFICATE", &c.der).into());
        o.insert("crl_url".into(), st.ca.crl_url(&c.issuer_id).into());
    }
    v
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
    p.require(&[Role::Cpo, Role::Mo, Role::Oem])?;
    let Query(q) = q.map_err(|e| ApiError::bad_request("bad_query", e.body_text()))?;
    if let Some(s) = &q.status
        && !["valid", "revoked", "expired"].contains(&s.as_str())
    {
        return Err(ApiError::bad_request(
            "bad_query",
            "status must be valid, revoked or expired",
        ));
    }
    let tenant = if p.role == Role::Admin {
        q.tenant.clone()
    } else {
        match (&q.tenant, p.tenants.as_slice()) {
            (Some(t), mine) => {
                let n = auth::normalize_tenant(p.role, t)
                    .map_err(|e| ApiError::bad_request("invalid_tenant", e))?;
                if !mine.contains(&n) {
                    return Err(p.forbid("forbidden_tenant", format!("tenant {n} is not yours")));
                }
                Some(n)
            }
            (None, [one]) => Some(one.clone()),
            (None, []) => {
                return Err(p.forbid("forbidden_tenant", "this client has no tenant to list"));
            }
            (None, mine) => {
                // Several tenants: the identifier searched for names one.
                use crate::policy::identifiers as ids;
                let derived = if let Some(e) = &q.evse_id {
                    ids::evse_operator_prefix(e).ok()
                } else if let Some(e) = &q.emaid {
                    ids::emaid_prefix(e).ok()
                } else if let Some(pcid) = &q.pcid {
                    ids::pcid_wmi(pcid).ok()
                } else {
                    None
                };
                match derived {
                    Some(t) if mine.contains(&t) => Some(t),
                    Some(t) => {
                        return Err(
                            p.forbid("forbidden_tenant", format!("tenant {t} is not yours"))
                        );
                    }
                    None => {
                        return Err(ApiError::bad_request(
                            "bad_query",
                            "choose one of your tenants with ?tenant=",
                        ));
                    }
                }
            }
        }
    };
    let serial_hex = match &q.serial_hex {
        Some(s) => Some(
            normalize_serial(s)
                .ok_or_else(|| ApiError::bad_request("bad_query", "serial_hex is not hex"))?,
        ),
        None => None,
    };
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let filter = CertFilter {
        issuer_id: q.issuer_id,
        profile: q.profile,
        emaid: q.emaid.map(|e| compact_id(&e)),
        evse_id: q.evse_id.map(|e| compact_id(&e)),
        pcid: q.pcid,
        status: q.status,
        serial_hex,
        tenant_prefix: tenant,
        expiring_before: q.expiring_before,
        after: q.after,
        limit: Some(limit),
    };
    let items = st.ca.store.list_certs(&filter).await.map_err(|e| match e {
        crate::store::StoreError::Invalid(m) => ApiError::bad_request("bad_query", m),
        other => ApiError::from(other),
    })?;
    let next = if items.len() as i64 == limit {
        items
            .last()
            .map(|c| format!("{}/{}", c.issuer_id, c.serial_hex))
    } else {
        None
    };
    let items: Vec<_> = items.iter().map(|c| cert_json(&st, c)).collect();
    Ok(Json(serde_json::json!({ "items": items, "next": next })))
}

async fn load_owned(
    st: &AppState,
    p: &Principal,
    issuer_id: &str,
    serial: &str,
) -> Result<CertRecord, ApiError> {
    let serial = normalize_serial(serial)
        .ok_or_else(|| ApiError::bad_request("bad_serial", "serial_hex is not hex"))?;
    let c = st
        .ca
        .store
        .get_cert(issuer_id, &serial)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no certificate {issuer_id}/{serial}")))?;
    if !p.owns_tenant(c.tenant.as_deref()) {
        return Err(p.forbid(
            "forbidden_tenant",
            format!(
                "certificate {issuer_id}/{serial} is outside the tenants of client {}",
                p.client_id
            ),
        ));
    }
    Ok(c)
}

/// `GET /api/v1/certificates/{issuer_id}/{serial_hex}`: JSON, or PEM / DER by `Accept`.
async fn get_cert(
    State(st): State<AppState>,
    p: Principal,
    Path((issuer_id, serial)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    p.require(&[Role::Cpo, Role::Mo, Role::Oem])?;
    let c = load_owned(&st, &p, &issuer_id, &serial).await?;
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
/// Idempotent: a second call answers 200 with `"outcome": "already_revoked"`.
async fn revoke(
    State(st): State<AppState>,
    p: Principal,
    Path((issuer_id, serial)): Path<(String, String)>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    p.require(&[Role::Cpo, Role::Mo, Role::Oem])?;
    let body = body.map_err(body_error)?;
    let b: RevokeBody = if body.trim_ascii().is_empty() {
        RevokeBody { reason: None }
    } else {
        parse_json(&body)?
    };
    let reason = b.reason.unwrap_or_else(|| "unspecified".into());
    if crate::ca::reason_code(&reason).is_none() {
        return Err(ApiError::bad_request(
            "invalid_reason",
            format!(
                "unknown revocation reason (use one of: {})",
                crate::ca::REVOCATION_REASONS
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    let c = load_owned(&st, &p, &issuer_id, &serial).await?;
    let out = st
        .ca
        .revoke(&c.issuer_id, &c.serial_hex, &reason, &p.actor())
        .await?;
    if out == RevokeOutcome::Revoked {
        // Publish at once; a failure here is logged and the next GET or the scheduler retries.
        if let Err(e) = st.crl.regenerate(&st.ca, &c.issuer_id).await {
            tracing::warn!(issuer = %c.issuer_id, error = %e, "CRL regeneration after revocation failed");
        }
    }
    let after = st.ca.store.get_cert(&c.issuer_id, &c.serial_hex).await?;
    Ok(Json(serde_json::json!({
        "issuer_id": c.issuer_id,
        "serial_hex": c.serial_hex,
        "status": "revoked",
        "outcome": match out { RevokeOutcome::Revoked => "revoked", _ => "already_revoked" },
        "reason": after.as_ref().and_then(|a| a.revocation_reason.clone()),
        "revoked_at": after.as_ref().and_then(|a| a.revoked_at),
    })))
}

fn ca_json(st: &AppState, c: &crate::store::CaRecord) -> serde_json::Value {
    let mut v = serde_json::to_value(c).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("pem".into(), to_pem("CERTIFICATE", &c.cert_der).into());
        o.insert("crl_url".into(), st.ca.crl_url(&c.id).into());
    }
    v
}

/// `GET /api/v1/cas`: every CA (public data, any authenticated client).
async fn list_cas(
    State(st): State<AppState>,
    _p: Principal,
) -> Result<Json<serde_json::Value>, ApiError> {
    let cas = st.ca.store.list_cas().await?;
    let items: Vec<_> = cas.iter().map(|c| ca_json(&st, c)).collect();
    Ok(Json(serde_json::json!({ "items": items })))
}

/// `GET /api/v1/cas/{id}/chain`: that CA first, root last; JSON or PEM by `Accept`.
async fn ca_chain(
    State(st): State<AppState>,
    _p: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let chain = st.ca.chain(&id).await?;
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

async fn list_clients(
    State(st): State<AppState>,
    p: Principal,
) -> Result<Json<serde_json::Value>, ApiError> {
    p.require(&[])?;
    let items = st.ca.store.list_clients().await?;
    Ok(Json(serde_json::json!({ "items": items })))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NewClient {
    name: String,
    role: Role,
    #[serde(default)]
    tenants: Vec<String>,
}

/// `POST /api/v1/clients` (admin): the secret is in this answer only.
async fn add_client(
    State(st): State<AppState>,
    p: Principal,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    p.require(&[])?;
    let body = body.map_err(body_error)?;
    let n: NewClient = parse_json(&body)?;
    let (rec, secret) =
        auth::create_client(&st.ca.store, &n.name, n.role, &n.tenants, &p.actor()).await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({
            "client_id": rec.client_id,
            "client_secret": secret,
            "name": rec.name,
            "role": rec.role,
            "tenants": rec.tenants,
        })),
    ))
}

/// `DELETE /api/v1/clients/{client_id}` (admin): disables; tokens already issued stay valid
/// until they expire (short TTL), new ones are refused.
async fn disable_client(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    p.require(&[])?;
    if st.ca.store.get_client(&id).await?.is_none() {
        return Err(ApiError::not_found(format!("no client {id}")));
    }
    auth::disable_client(&st.ca.store, &id, &p.actor()).await?;
    Ok(StatusCode::NO_CONTENT)
}
