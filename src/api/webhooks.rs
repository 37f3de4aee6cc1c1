//! Webhook endpoints (OPCP `webhooks.v1`) and the root pool's write side (OPCP `rcp.v1`
//! `PUT /v1/root/rootCerts`, `DELETE /v1/root/rootCerts/{id}`). Each handler reads the
//! request, calls the RA once and writes the answer.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use serde_json::{Value, json};

use super::error::{ApiError, body_error, parse_json};
use super::{AppState, Routes};
use crate::model::{RootKind, WebhookEndpoint};
use crate::policy::authz::Principal;
use crate::ra::webhooks::EndpointRequest;

/// The webhook routes (the root pool's writes are added with its reads, in `est`).
pub fn routes(r: Routes) -> Routes {
    r.add(
        "/v1/webhook/endpoints",
        &["GET", "POST"],
        get(list_endpoints).post(create_endpoint),
    )
    .add(
        "/v1/webhook/endpoints/{id}",
        &["GET", "PUT", "DELETE"],
        get(get_endpoint)
            .put(update_endpoint)
            .delete(delete_endpoint),
    )
    .add(
        "/v1/webhook/endpoints/{id}/deliveries",
        &["GET"],
        get(deliveries),
    )
}

/// OPCP `EndpointResponse` (the secret only when `with_secret`: at creation).
pub(super) fn endpoint_json(e: &WebhookEndpoint, p: &Principal, with_secret: bool) -> Value {
    let mut v = json!({
        "id": e.id,
        "apiVersion": e.api_version,
        "created": e.created_at,
        "description": e.description,
        "enabledEvents": e.events,
        "metadata": e.metadata,
        "status": e.status,
        "url": e.url,
        "userName": e.client_id,
    });
    if e.client_id == p.id {
        v["userRole"] = p.role.as_str().to_ascii_uppercase().into();
        match p.role {
            crate::policy::authz::Role::Mo => v["providerIds"] = p.tenants.clone().into(),
            crate::policy::authz::Role::Oem => v["wmis"] = p.tenants.clone().into(),
            _ => {}
        }
    }
    if with_secret {
        v["secret"] = e.secret.clone().into();
    }
    v
}

pub(super) async fn create_endpoint(
    State(st): State<AppState>,
    p: Principal,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(body_error)?;
    let req: EndpointRequest = parse_json(&body)?;
    let e = st.ra.create_webhook_endpoint(&p, req).await?;
    Ok((StatusCode::CREATED, Json(endpoint_json(&e, &p, true))).into_response())
}

pub(super) async fn list_endpoints(
    State(st): State<AppState>,
    p: Principal,
) -> Result<Json<Value>, ApiError> {
    let list = st.ra.list_webhook_endpoints(&p).await?;
    Ok(Json(Value::Array(
        list.iter().map(|e| endpoint_json(e, &p, false)).collect(),
    )))
}

pub(super) async fn get_endpoint(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let e = st.ra.webhook_endpoint(&p, &id).await?;
    Ok(Json(endpoint_json(&e, &p, false)))
}

pub(super) async fn update_endpoint(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = body.map_err(body_error)?;
    let req: EndpointRequest = parse_json(&body)?;
    let e = st.ra.update_webhook_endpoint(&p, &id, req).await?;
    Ok(Json(endpoint_json(&e, &p, false)))
}

pub(super) async fn delete_endpoint(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    st.ra.delete_webhook_endpoint(&p, &id).await?;
    Ok(Json(json!({ "id": id, "deleted": true })))
}

#[derive(Debug, serde::Deserialize)]
struct DeliveryQuery {
    limit: Option<i64>,
}

/// `GET /v1/webhook/endpoints/{id}/deliveries[?limit=N]`: the delivery log, newest first.
async fn deliveries(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    q: Result<Query<DeliveryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let q = q.map_err(|e| ApiError::bad_request("bad_query", e.body_text()))?;
    let list = st
        .ra
        .webhook_deliveries(&p, &id, q.0.limit.unwrap_or(100))
        .await?;
    Ok(Json(json!({ "deliveries": list })))
}

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct RootBody {
    ca_certificate: String,
    root_type: String,
}

/// `PUT /v1/root/rootCerts` (admin): add a root to the pool, with the checks of `trust add`.
pub async fn put_root_cert(
    State(st): State<AppState>,
    p: Principal,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(body_error)?;
    let b: RootBody = parse_json(&body)?;
    let kind = match b.root_type.trim().to_ascii_uppercase().as_str() {
        "V2G" => RootKind::V2g,
        "MO" => RootKind::Mo,
        "OEM" => RootKind::Oem,
        _ => {
            return Err(ApiError::bad_request(
                "bad_root_type",
                "rootType must be V2G, MO or OEM",
            ));
        }
    };
    let text: String = b.ca_certificate.split_whitespace().collect();
    if text.len() > 8192 {
        return Err(ApiError::bad_request(
            "bad_certificate",
            "caCertificate is larger than 8192 characters",
        ));
    }
    let der = base64::engine::general_purpose::STANDARD
        .decode(text.as_bytes())
        .map_err(|_| ApiError::bad_request("bad_certificate", "caCertificate is not base64 DER"))?;
    let root = st.ra.trust_root(&p, kind, &der).await?;
    Ok((
        StatusCode::OK,
        Json(json!({
            "rootCertificateId": crate::events::cert_uuid(&root.der),
            "fingerprint": root.id,
            "rootType": kind.opcp_type(),
            "distinguishedName": root.subject,
        })),
    )
        .into_response())
}

/// `DELETE /v1/root/rootCerts/{id}` (admin): remove a trusted root by its `rootCertificateId`
/// or SHA-256 fingerprint. Our own roots are not removed this way.
pub async fn delete_root_cert(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = id.trim().to_ascii_lowercase();
    let fingerprint = st
        .ra
        .trusted_roots()
        .await?
        .into_iter()
        .find(|r| r.id == id || crate::events::cert_uuid(&r.der) == id)
        .map(|r| r.id)
        .unwrap_or(id);
    st.ra.distrust_root(&p, &fingerprint).await?;
    Ok(Json(json!({ "fingerprint": fingerprint, "deleted": true })))
}
