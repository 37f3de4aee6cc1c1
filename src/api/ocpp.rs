//! OCPP 2.0.1/2.1 certificate routes for a CSMS (security profiles 2 and 3):
//! `POST /api/v1/ocpp/sign-certificate` takes a `SignCertificateRequest` plus the station the
//! CSMS authenticated and answers the `CertificateSignedRequest` the CSMS sends on;
//! `GET /api/v1/ocpp/install-certificates?stationId=…` answers the `InstallCertificateRequest`
//! bodies for a new station and the `CertificateHashDataChainType` entries
//! `GetInstalledCertificateIds` would report for them. Each handler calls the RA once.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{ApiError, body_error, current_trace_id, parse_json};
use super::{AppState, Routes};
use crate::policy::PolicyError;
use crate::policy::authz::Principal;
use crate::ra::RaError;
use crate::ra::ocpp::{HashDataIn, OcppCertificateType, SignCertificate};

/// The OCPP certificate routes.
pub fn routes(r: Routes) -> Routes {
    r.add(
        "/api/v1/ocpp/sign-certificate",
        &["POST"],
        post(sign_certificate),
    )
    .add(
        "/api/v1/ocpp/install-certificates",
        &["GET"],
        get(install_certificates),
    )
    .add("/api/v1/ocpp/authorize", &["POST"], post(authorize))
}

/// OCPP 2.0.1 `AuthorizeRequest` (2.1's extra fields are read and ignored).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuthorizeRequest {
    id_token: IdToken,
    #[serde(default)]
    certificate: Option<String>,
    #[serde(default)]
    iso15118_certificate_hash_data: Vec<crate::ra::authorize::OcspRequestData>,
}

/// OCPP `IdTokenType`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IdToken {
    id_token: String,
    #[serde(rename = "type")]
    kind: String,
}

/// `POST /api/v1/ocpp/authorize`: a station's `AuthorizeRequest` for a Plug & Charge contract
/// in, the `AuthorizeResponse` out (roles `csms` and `cpo`): the chain is validated to a
/// trusted MO or V2G root as a contract certificate for the `idToken` eMAID, and every
/// certificate of it checked for revocation (ours in the store, others at their responder).
async fn authorize(
    State(st): State<AppState>,
    p: Principal,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(body_error)?;
    let req: AuthorizeRequest = parse_json(&body)?;
    if req.id_token.id_token.len() > 255 || req.id_token.kind.len() > 20 {
        return Err(ApiError::bad_request(
            "bad_id_token",
            "idToken.idToken is at most 255 characters (OCPP IdTokenType)",
        ));
    }
    let v = st
        .ra
        .authorize_contract(
            &p,
            crate::ra::authorize::AuthorizeQuery {
                id_token: req.id_token.id_token,
                certificate: req.certificate,
                hash_data: req.iso15118_certificate_hash_data,
            },
        )
        .await?;
    let mut out = json!({ "idTokenInfo": { "status": v.id_status } });
    if let Some(cs) = v.certificate_status {
        out["certificateStatus"] = json!(cs);
    }
    Ok(Json(out).into_response())
}

/// OCPP `SignCertificateRequest` (2.0.1 and 2.1) plus the station identity.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SignRequest {
    station_id: String,
    csr: String,
    #[serde(default)]
    certificate_type: Option<String>,
    #[serde(default)]
    hash_root_certificate: Option<HashDataIn>,
    #[serde(default)]
    request_id: Option<i64>,
    #[serde(default)]
    custom_data: Option<Value>,
}

/// OCPP's `csr` limit (`SignCertificateRequest.csr`, string[0..5500]).
const MAX_CSR_CHARS: usize = 5500;
/// OCPP's `certificateChain` limit (`CertificateSignedRequest`, string[0..10000]).
const MAX_CHAIN_CHARS: usize = 10_000;

/// OCPP `StatusInfo.reasonCode` (at most 20 characters) for a refusal code.
fn reason_code(code: &str) -> &'static str {
    match code {
        c if c.starts_with("csr_") => "InvalidCSR",
        "profile_violation" => "InvalidCSR",
        "station_id_mismatch" => "StationIdMismatch",
        "invalid_station_id" => "InvalidStationId",
        "root_hash_mismatch" => "NoMatchingRoot",
        "unknown_certificate_type" => "InvalidCertType",
        "forbidden_tenant" => "Unauthorized",
        "malformed_json" | "bad_request" => "FormationViolation",
        _ => "InternalError",
    }
}

/// A refusal in OCPP terms (the `SignCertificateResponse` a CSMS would send), with our code;
/// the HTTP status says the same for callers that look only at it.
fn rejected(status: StatusCode, code: &str, detail: &str) -> Response {
    let info: String = detail.chars().take(512).collect();
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json!({
            "status": "Rejected",
            "statusInfo": { "reasonCode": reason_code(code), "additionalInfo": info },
            "code": code,
            "traceId": current_trace_id(),
        })
        .to_string(),
    )
        .into_response()
}

fn rejected_api(e: ApiError) -> Response {
    rejected(e.status, &e.code, &e.detail)
}

/// `POST /api/v1/ocpp/sign-certificate`.
async fn sign_certificate(
    State(st): State<AppState>,
    p: Principal,
    headers: axum::http::HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(body_error)?;
    // A CSMS that retries (a timeout, another replica) gets the first certificate.
    let idempotency_key = super::idempotency_key(&headers)?;
    let req: SignRequest = match parse_json(&body) {
        Ok(r) => r,
        Err(e) => return Ok(rejected_api(e)),
    };
    // OCPP allows customData on every message; it carries nothing we act on.
    let _ = req.custom_data;
    if req.csr.chars().count() > MAX_CSR_CHARS {
        return Ok(rejected(
            StatusCode::BAD_REQUEST,
            "csr_too_large",
            &format!("csr is longer than {MAX_CSR_CHARS} characters (OCPP)"),
        ));
    }
    let certificate_type = match req.certificate_type.as_deref() {
        None => st.cfg.ocpp_default_certificate_type,
        Some(t) => match OcppCertificateType::from_name(t) {
            Some(t) => t,
            None => {
                return Ok(rejected(
                    StatusCode::BAD_REQUEST,
                    "unknown_certificate_type",
                    "certificateType must be ChargingStationCertificate, V2GCertificate or V2G20Certificate",
                ));
            }
        },
    };
    let r = st
        .ra
        .ocpp_sign_certificate(
            &p,
            SignCertificate {
                station_id: &req.station_id,
                csr: req.csr.as_bytes(),
                certificate_type,
                hash_root: req.hash_root_certificate.as_ref(),
                idempotency_key: idempotency_key.as_deref(),
            },
        )
        .await;
    let issued = match r {
        Ok(i) => i,
        // The caller's own standing (credentials, role, limits) is answered in HTTP terms; what
        // is wrong with the station's request, in OCPP terms.
        Err(
            e @ (RaError::Unauthenticated { .. }
            | RaError::RateLimited { .. }
            | RaError::Busy { .. }),
        ) => return Err(e.into()),
        Err(RaError::Policy(PolicyError::Denied(d)))
            if d.code == crate::policy::authz::DenialCode::ForbiddenRole =>
        {
            return Err(RaError::Policy(PolicyError::Denied(d)).into());
        }
        Err(e) if e.kind().is_client_error() => return Ok(rejected_api(e.into())),
        Err(e) => return Err(e.into()),
    };
    st.metrics.issued(&issued.record.profile);
    let mut chain = issued.cert.pem();
    for c in issued.intermediates() {
        chain.push_str(&c.pem());
    }
    if chain.len() > MAX_CHAIN_CHARS {
        // Issued and recorded, but a station could not take it: say so rather than truncate.
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "chain_too_large",
            format!(
                "the chain is {} characters, more than OCPP's {MAX_CHAIN_CHARS}",
                chain.len()
            ),
        ));
    }
    let mut out = json!({
        "certificateChain": chain,
        "certificateType": certificate_type.name(),
    });
    if let Some(id) = req.request_id {
        out["requestId"] = id.into();
    }
    Ok(Json(out).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct InstallQuery {
    station_id: Option<String>,
}

/// `GET /api/v1/ocpp/install-certificates?stationId=…`.
async fn install_certificates(
    State(st): State<AppState>,
    p: Principal,
    q: Result<Query<InstallQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let q = q.map_err(|e| ApiError::bad_request("bad_query", e.body_text()))?;
    let station = q.0.station_id.unwrap_or_default();
    if station.trim().is_empty() || station.chars().count() > 48 {
        return Err(ApiError::bad_request(
            "invalid_station_id",
            "stationId must be 1 to 48 characters",
        ));
    }
    let roots = st.ra.ocpp_install_roots(&p).await?;
    let install: Vec<Value> = roots
        .iter()
        .map(|r| {
            json!({
                "certificateType": r.kind.name(),
                "certificate": r.cert.pem(),
            })
        })
        .collect();
    let hashes: Vec<Value> = roots
        .iter()
        .map(|r| {
            json!({
                "certificateType": r.kind.name(),
                "certificateHashData": r.hash_data,
            })
        })
        .collect();
    Ok(Json(json!({
        "stationId": station,
        "installCertificateRequests": install,
        "certificateHashDataChain": hashes,
    })))
}
