//! Contract provisioning over HTTP: Hubject's OPCP contract pool (`/v1/ccp`), provisioning
//! certificate pool (`/v1/oem/provCerts`), the OCPP-shaped `Get15118EVCertificate` route, and
//! native contract management under `/api/v1/contracts`. Every handler reads the request,
//! calls the RA once and writes the answer.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{ApiError, body_error, current_trace_id, parse_json};
use super::{AppState, Routes};
use crate::model::{CertRecord, ContractRecord, ProvCertRecord, ProvisioningKind, rfc3339};
use crate::policy::authz::Principal;
use crate::ra::contracts::{NewContract, ProvCertUpload};
use crate::ra::provisioning::{OwnContractData, Pregenerate, ProvisionRequest, Provisioned};
use crate::ra::{KeyedRequest, RaError};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The provisioning routes.
pub fn routes(r: Routes) -> Routes {
    r.add(
        "/v1/ccp/signedContractData",
        &["POST"],
        post(signed_contract_data),
    )
    .add(
        "/api/v1/ocpp/get-15118-ev-certificate",
        &["POST"],
        post(get_15118_ev_certificate),
    )
    .add("/v1/oem/provCerts", &["PUT"], put(put_prov_certs))
    .add(
        "/v1/oem/provCerts/{pcid}",
        &["GET", "DELETE"],
        get(get_prov_certs).delete(delete_prov_certs),
    )
    .add(
        "/v1/oem/provCerts/lookupVehicle/{pcid}",
        &["GET"],
        get(lookup_vehicle),
    )
    .add(
        "/v1/cps/generate/signedContractData",
        &["PUT"],
        put(generate_signed_contract_data),
    )
    .add(
        "/v1/cps/contractData/signed",
        &["PUT"],
        put(put_contract_data_signed),
    )
    .add(
        "/v1/ccp/signedContractData/{key}",
        &["GET", "DELETE"],
        get(contracts_of_vehicle).delete(delete_signed_contract_data),
    )
    .add(
        "/v1/ccp/signedContractData/{key}/priorities",
        &["GET"],
        get(contract_priorities),
    )
    .add(
        "/v1/ccp/signedContractData/{key}/{emaid}/default",
        &["POST"],
        post(set_default_contract),
    )
    .add(
        "/v1/ccp/provideSignedContractData/{emaid}/{pcid}",
        &["GET"],
        get(provide_signed_contract_data),
    )
    .add("/cps/signer", &["GET"], get(cps_signers))
    .add(
        "/v1/ccp/lookupContract/{emaid}",
        &["GET"],
        get(lookup_contract),
    )
    .add(
        "/api/v1/contracts",
        &["GET", "POST"],
        get(list_contracts).post(create_contract),
    )
    .add(
        "/api/v1/contracts/{id}",
        &["GET", "DELETE"],
        get(get_contract).delete(cancel_contract),
    )
}

fn decode_b64(field: &str, s: &str) -> Result<Vec<u8>, ApiError> {
    let clean: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    B64.decode(clean.as_bytes()).map_err(|_| {
        ApiError::bad_request(
            "exi_invalid",
            format!("EXI format is invalid! ({field} is not base64)"),
        )
    })
}

fn header_bool(h: &HeaderMap, name: &str, default: bool) -> bool {
    match h.get(name).and_then(|v| v.to_str().ok()) {
        Some(v) if v.eq_ignore_ascii_case("false") => false,
        Some(v) if v.eq_ignore_ascii_case("true") => true,
        _ => default,
    }
}

/// The `Idempotency-Key` of a provisioning call, bound to its route and body (`Ra::provision`).
fn keyed(
    headers: &HeaderMap,
    route: &'static str,
    body: &[u8],
) -> Result<Option<KeyedRequest>, ApiError> {
    Ok(super::idempotency_key(headers)?.map(|key| KeyedRequest {
        key,
        scope: route,
        body: body.to_vec(),
    }))
}

/// Record the answer's size for `/metrics`.
fn observe(st: &AppState, p: &Provisioned) {
    st.metrics.provisioning_answer(p.exi.len());
}

// ---------------------------------------------------------------------------- OPCP CCP

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CcpRequest {
    certificate_installation_req: String,
    #[serde(default)]
    xsd_msg_def_namespace: Option<String>,
    #[serde(default)]
    metadata: Option<String>,
}

/// `POST /v1/ccp/signedContractData` (Hubject "Get Signed Contract Data").
async fn signed_contract_data(
    State(st): State<AppState>,
    p: Principal,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(body_error)?;
    let req: CcpRequest = parse_json(&body)?;
    if req
        .xsd_msg_def_namespace
        .as_deref()
        .is_some_and(|n| n.len() > 128)
    {
        return Err(ApiError::bad_request(
            "bad_namespace",
            "xsdMsgDefNamespace is longer than 128 characters",
        ));
    }
    let exi = decode_b64(
        "certificateInstallationReq",
        &req.certificate_installation_req,
    )?;
    let meta = req.metadata.unwrap_or_default();
    let always_exi = header_bool(&headers, "alwaysReturnEXI", true);
    let idempotency = keyed(&headers, "/v1/ccp/signedContractData", &body)?;
    match st
        .ra
        .provision(
            &p,
            ProvisionRequest {
                exi,
                idempotency,
                ..Default::default()
            },
        )
        .await
    {
        Ok(out) => {
            observe(&st, &out);
            Ok(Json(json!({
                "CCPResponse": { "emaidContent": [ {
                    "messageDef": {
                        "certificateInstallationRes": B64.encode(&out.exi),
                        "emaid": out.emaid,
                        "metaData": meta,
                    }
                } ] }
            }))
            .into_response())
        }
        Err(RaError::Provisioning(f)) if always_exi && f.failed_exi.is_some() => {
            let e = ApiError::from(RaError::Provisioning(f.clone()));
            let status = if st.cfg.failed_exi_ok {
                StatusCode::OK
            } else {
                e.status
            };
            let exi = f.failed_exi.as_deref().unwrap_or_default();
            Ok((
                status,
                Json(json!({
                    "CCPResponse": { "emaidContent": [ {
                        "messageDef": {
                            "certificateInstallationRes": B64.encode(exi),
                            "emaid": "",
                            "metaData": meta,
                        }
                    } ] },
                    "errorMessages": [f.detail],
                    "traceId": current_trace_id(),
                    "code": f.code,
                })),
            )
                .into_response())
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GenerateBody {
    emaid: String,
    pcid: String,
    #[serde(default)]
    contract_begins: Option<String>,
    #[serde(default)]
    contract_ends: Option<String>,
    #[serde(default)]
    xsd_msg_def_namespace: Option<String>,
}

fn rfc3339_secs(field: &str, v: &Option<String>) -> Result<Option<i64>, ApiError> {
    v.as_deref()
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            time::OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc3339)
                .map(|t| t.unix_timestamp())
                .map_err(|_| {
                    ApiError::bad_request(
                        "bad_validity",
                        format!("{field} is not an RFC 3339 time"),
                    )
                })
        })
        .transpose()
}

/// `PUT /v1/cps/generate/signedContractData` (MO): pre-generate the contract data of an
/// (EMAID, PCID) for the vehicle in the provisioning pool; installation then needs no HSM call.
async fn generate_signed_contract_data(
    State(st): State<AppState>,
    p: Principal,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(body_error)?;
    let idempotency_key = super::idempotency_key(&headers)?;
    let b: GenerateBody = parse_json(&body)?;
    let out = st
        .ra
        .pregenerate(
            &p,
            Pregenerate {
                valid_from: rfc3339_secs("contractBegins", &b.contract_begins)?,
                valid_to: rfc3339_secs("contractEnds", &b.contract_ends)?,
                emaid: b.emaid,
                pcid: b.pcid,
                namespace: b.xsd_msg_def_namespace.unwrap_or_default(),
                body: body.to_vec(),
                idempotency_key,
            },
        )
        .await?;
    let c = out
        .certificate
        .as_ref()
        .ok_or_else(|| ApiError::internal("pre-generation returned no certificate"))?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "emaid": out.emaid,
            "pcid": c.pcid.clone().unwrap_or_default(),
            "contractId": out.contract_id,
            "contractCertificate": B64.encode(&c.der),
            "certValidFrom": rfc3339(c.not_before),
            "certValidTo": rfc3339(c.not_after),
            "xsdMsgDefNamespace": match out.schema {
                crate::exi::Schema::Iso2 => "urn:iso:15118:2:2013:MsgDef",
                crate::exi::Schema::Iso20 => "urn:iso:15118:20:2022:MsgDef",
            },
        })),
    )
        .into_response())
}

/// `DELETE /v1/ccp/signedContractData/{emaid}` (MO): drop the pre-generated data; its
/// certificate is revoked unless `X-Skip-Revocation: true`. (The path's one segment is an EMAID
/// here and a PCID for `GET`, as in Hubject's API; one route serves both.)
async fn delete_signed_contract_data(
    State(st): State<AppState>,
    p: Principal,
    headers: HeaderMap,
    Path(key): Path<String>,
) -> Result<StatusCode, ApiError> {
    let skip = header_bool(&headers, "X-Skip-Revocation", false);
    st.ra.delete_pregenerated(&p, &key, skip).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/ccp/signedContractData/{pcid}`: the contracts of a vehicle (OEM of its WMI; an MO
/// sees its own).
async fn contracts_of_vehicle(
    State(st): State<AppState>,
    p: Principal,
    Path(pcid): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let contracts = st.ra.contracts_of_vehicle(&p, &pcid).await?;
    let default = match contracts.first() {
        Some(c) => st.ra.default_contract_of(&c.pcid).await?,
        None => None,
    };
    let items: Vec<Value> = contracts
        .iter()
        .filter(|c| c.cancelled_at.is_none())
        .map(|c| {
            json!({
                "pcid": c.pcid,
                "emaid": c.emaid,
                "contractId": c.id,
                "defaultContract": default.as_deref() == Some(c.id.as_str()),
                "contractBegins": c.valid_from.map(rfc3339),
                "contractEnds": c.valid_to.map(rfc3339),
            })
        })
        .collect();
    if items.is_empty() {
        return Err(ApiError::not_found("Contract or Vehicle not found."));
    }
    Ok(Json(json!({ "XMLContracts": items })))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContractDataBody {
    contract_data: ContractDataFields,
    pcid: String,
    #[serde(default)]
    xsd_msg_def_namespace: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContractDataFields {
    contract_certificate: String,
    #[serde(default)]
    contract_sub_ca1_certificate: Option<String>,
    #[serde(default)]
    contract_sub_ca2_certificate: Option<String>,
    contract_signature_encrypted_private_key: String,
    #[serde(rename = "dHpublickey")]
    dh_public_key: String,
}

/// `PUT /v1/cps/contractData/signed` (MO with its own PKI): contract data the MO encrypted
/// itself; we sign the answer and keep it for delivery.
async fn put_contract_data_signed(
    State(st): State<AppState>,
    p: Principal,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(body_error)?;
    let b: ContractDataBody = parse_json(&body)?;
    let f = &b.contract_data;
    let opt = |name: &str, v: &Option<String>| -> Result<Option<Vec<u8>>, ApiError> {
        v.as_deref()
            .filter(|s| !s.trim().is_empty())
            .map(|s| cert_b64(name, s))
            .transpose()
    };
    let raw = |name: &str, v: &str| -> Result<Vec<u8>, ApiError> {
        B64.decode(v.trim()).map_err(|_| {
            ApiError::bad_request("bad_contract_data", format!("{name} is not base64"))
        })
    };
    let c = st
        .ra
        .accept_contract_data(
            &p,
            OwnContractData {
                contract_certificate: cert_b64("contractCertificate", &f.contract_certificate)?,
                sub_ca1: opt("contractSubCa1Certificate", &f.contract_sub_ca1_certificate)?,
                sub_ca2: opt("contractSubCa2Certificate", &f.contract_sub_ca2_certificate)?,
                encrypted_private_key: raw(
                    "contractSignatureEncryptedPrivateKey",
                    &f.contract_signature_encrypted_private_key,
                )?,
                dh_public_key: raw("dHpublickey", &f.dh_public_key)?,
                pcid: b.pcid.clone(),
                namespace: b.xsd_msg_def_namespace.clone().unwrap_or_default(),
            },
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "emaid": c.emaid, "pcid": c.pcid, "contractId": c.id })),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
struct ContractPath {
    emaid: String,
}

/// `GET /v1/ccp/lookupContract/{emaid}` → `{XMLContracts: [...]}` (contracts the caller sees).
async fn lookup_contract(
    State(st): State<AppState>,
    p: Principal,
    Path(path): Path<ContractPath>,
) -> Result<Json<Value>, ApiError> {
    let contracts = st
        .ra
        .list_contracts(&p, Some(&path.emaid), None, Some(10))
        .await?;
    let mut items = Vec::new();
    for c in contracts.iter().filter(|c| c.cancelled_at.is_none()) {
        let certs = st.ra.contract_certificates(&p, &c.id).await?;
        let newest = certs
            .iter()
            .find(|x| x.status == crate::model::CertStatus::Valid);
        let default = st.ra.default_contract_of(&c.pcid).await?;
        items.push(json!({
            "pcid": c.pcid,
            "emaid": c.emaid,
            "xsdMsgDefNamespace": newest.map(namespace_of).unwrap_or("urn:iso:15118:2:2013:MsgDef"),
            "contractCertificate": newest.map(|x| B64.encode(&x.der)),
            "defaultContract": default.as_deref() == Some(c.id.as_str()),
            "certValidFrom": newest.map(|x| rfc3339(x.not_before)),
            "certValidTo": newest.map(|x| rfc3339(x.not_after)),
        }));
    }
    if items.is_empty() {
        return Err(ApiError::not_found("Contract or Vehicle not found."));
    }
    Ok(Json(json!({ "XMLContracts": items })))
}

/// `GET /v1/ccp/signedContractData/{pcid}/priorities`: the vehicle's active contracts in the
/// order installations deliver them (1: the default).
async fn contract_priorities(
    State(st): State<AppState>,
    p: Principal,
    Path(pcid): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let list = st.ra.contract_priorities(&p, &pcid).await?;
    if list.is_empty() {
        return Err(ApiError::not_found("Contract or Vehicle not found."));
    }
    let items: Vec<Value> = list
        .iter()
        .enumerate()
        .map(|(i, c)| {
            json!({
                "pcid": c.pcid,
                "emaid": c.emaid,
                "contractId": c.id,
                "priority": i + 1,
                "defaultContract": i == 0,
            })
        })
        .collect();
    Ok(Json(json!({ "XMLContracts": items })))
}

#[derive(Debug, Deserialize)]
struct DefaultPath {
    key: String,
    emaid: String,
}

/// `POST /v1/ccp/signedContractData/{pcid}/{emaid}/default`: the OEM of the PCID chooses the
/// vehicle's default among every MO's contracts; an MO moves it among its own.
async fn set_default_contract(
    State(st): State<AppState>,
    p: Principal,
    Path(path): Path<DefaultPath>,
) -> Result<Json<Value>, ApiError> {
    let c = st
        .ra
        .set_default_contract(&p, &path.key, &path.emaid)
        .await?;
    let default = st.ra.default_contract_of(&c.pcid).await?;
    Ok(Json(json!({
        "pcid": c.pcid,
        "emaid": c.emaid,
        "contractId": c.id,
        "defaultContract": default.as_deref() == Some(c.id.as_str()),
    })))
}

#[derive(Debug, Deserialize)]
struct OtaPath {
    emaid: String,
    pcid: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OtaQuery {
    #[serde(rename = "sessionID", alias = "sessionId")]
    session_id: Option<String>,
    xsd_msg_def_namespace: Option<String>,
    #[serde(rename = "cpsV2GRootCertificateFingerprint")]
    cps_v2g_root_certificate_fingerprint: Option<String>,
}

/// `GET /v1/ccp/provideSignedContractData/{emaid}/{pcid}` (OEM of the PCID's WMI): the signed
/// `CertificateInstallationRes` for the pooled vehicle, over the air.
async fn provide_signed_contract_data(
    State(st): State<AppState>,
    p: Principal,
    Path(path): Path<OtaPath>,
    q: Result<Query<OtaQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let q = q
        .map_err(|e| ApiError::bad_request("bad_query", e.body_text()))?
        .0;
    let out = st
        .ra
        .provide_contract_data(
            &p,
            crate::ra::provisioning::OtaRequest {
                emaid: path.emaid,
                pcid: path.pcid,
                session_id: q.session_id,
                namespace: q.xsd_msg_def_namespace,
                cps_root_fingerprint: q.cps_v2g_root_certificate_fingerprint,
            },
        )
        .await?;
    Ok(Json(json!({
        "certificateInstallationRes": B64.encode(&out.exi),
        "xsdMsgDefNamespace": "urn:iso:15118:2:2013:MsgDef",
        "cpsV2GRootCertificateFingerprint": out.cps_root_fingerprint,
    })))
}

/// `GET /cps/signer` (OPCP `getAllCpsSigners`): which CPS signer certificates exist, under
/// which V2G root, so that an MO can choose (`cpsV2GRootCertificateFingerprint`).
async fn cps_signers(State(st): State<AppState>, p: Principal) -> Result<Json<Value>, ApiError> {
    let list = st.ra.cps_signers(&p).await?;
    let items: Vec<Value> = list
        .iter()
        .map(|i| {
            let (leaf, chain) = (&i.leaf, &i.chain);
            let subject: &x509_cert::name::RdnSequence = leaf.tbs().subject().as_ref();
            let org = crate::x509::name::values(subject, const_oid::db::rfc4519::O)
                .into_iter()
                .next();
            let root = chain.last();
            let subs: Vec<&crate::x509::ParsedCert> =
                chain.iter().filter(|c| !c.is_self_issued()).collect();
            json!({
                "cpsDistinguishedName": crate::x509::name::opcp_dn(subject),
                "cpsCertificate": B64.encode(&leaf.der),
                "validFrom": rfc3339(leaf.not_before()),
                "validTo": rfc3339(leaf.not_after()),
                "organizationName": org,
                "cpsRootCertificateId": root.map(|r| crate::events::cert_uuid(&r.der)),
                "cpsRootDistinguishedName": root.map(|r| crate::x509::name::opcp_dn(r.tbs().subject().as_ref())),
                "cpsRootCertificateFingerprint": root.map(|r| r.sha256_hex()),
                "cpsCa2Certificate": subs.first().map(|c| B64.encode(&c.der)),
                "cpsCa1Certificate": subs.get(1).map(|c| B64.encode(&c.der)),
                "xsdMsgDefNamespace": i.namespace,
            })
        })
        .collect();
    Ok(Json(json!({ "cpsCertificates": items })))
}

fn namespace_of(c: &CertRecord) -> &'static str {
    if c.profile.ends_with("-20") {
        "urn:iso:std:iso:15118:-20:CommonMessages"
    } else {
        "urn:iso:15118:2:2013:MsgDef"
    }
}

// -------------------------------------------------------------------------------- OCPP

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OcppRequest {
    iso15118_schema_version: String,
    action: String,
    exi_request: String,
    #[serde(default)]
    maximum_contract_certificate_chains: Option<u32>,
    #[serde(default, rename = "prioritizedEMAIDs")]
    prioritized_emaids: Option<Vec<String>>,
}

/// OCPP `StatusInfo.reasonCode` (at most 20 characters) for a refusal code.
fn reason_code(code: &str) -> &'static str {
    match code {
        "no_contract" => "NoContract",
        "contract_cancelled" => "ContractCanceled",
        "signature_invalid" => "SignatureError",
        "oem_certificate_expired" | "contract_expired" => "CertificateExpired",
        "oem_revoked" | "contract_revoked" => "CertificateRevoked",
        "oem_untrusted"
        | "oem_certificate_invalid"
        | "contract_unknown"
        | "contract_untrusted"
        | "contract_certificate_invalid"
        | "certificate_invalid" => "CertChainError",
        "no_matching_root" => "NoMatchingRoot",
        "action_mismatch" => "ActionMismatch",
        "exi_invalid" | "unsupported_message" => "InvalidEXI",
        "emaid_mismatch" => "EmaidMismatch",
        "response_too_large" => "ResponseTooLarge",
        "request_replayed" => "RequestReplayed",
        "revocation_unknown" => "RevocationUnknown",
        "forbidden_role" | "forbidden_tenant" => "Unauthorized",
        _ => "InternalError",
    }
}

/// `POST /api/v1/ocpp/get-15118-ev-certificate`: OCPP 2.0.1/2.1 `Get15118EVCertificateRequest`
/// → `Get15118EVCertificateResponse`. Refusals are `status: Failed` with a `statusInfo`.
async fn get_15118_ev_certificate(
    State(st): State<AppState>,
    p: Principal,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(body_error)?;
    let idempotency = keyed(&headers, "/api/v1/ocpp/get-15118-ev-certificate", &body)?;
    let req: OcppRequest = parse_json(&body)?;
    let v21 = req.maximum_contract_certificate_chains.is_some() || req.prioritized_emaids.is_some();
    if req.iso15118_schema_version.len() > 50 {
        return Err(ApiError::bad_request(
            "bad_request",
            "iso15118SchemaVersion is longer than 50 characters",
        ));
    }
    let action = match req.action.as_str() {
        "Install" => ProvisioningKind::Install,
        "Update" => ProvisioningKind::Update,
        _ => {
            return Err(ApiError::bad_request(
                "bad_request",
                "action must be Install or Update",
            ));
        }
    };
    if req.exi_request.len() > 11_000 {
        return Err(ApiError::bad_request(
            "bad_request",
            "exiRequest is longer than 11000 characters (OCPP 2.1)",
        ));
    }
    let prioritized = req.prioritized_emaids.unwrap_or_default();
    if prioritized.len() > 8 || prioritized.iter().any(|e| e.len() > 255) {
        return Err(ApiError::bad_request(
            "bad_request",
            "prioritizedEMAIDs: at most 8 EMAIDs of at most 255 characters",
        ));
    }
    let failed = |code: &str, detail: &str, exi: Option<&[u8]>| {
        let info: String = detail.chars().take(512).collect();
        Json(json!({
            "status": "Failed",
            "exiResponse": exi.map(|e| B64.encode(e)).unwrap_or_default(),
            "statusInfo": { "reasonCode": reason_code(code), "additionalInfo": info },
        }))
        .into_response()
    };
    let exi = match B64.decode(
        req.exi_request
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect::<String>()
            .as_bytes(),
    ) {
        Ok(e) => e,
        Err(_) => return Ok(failed("exi_invalid", "exiRequest is not base64", None)),
    };
    let r = st
        .ra
        .provision(
            &p,
            ProvisionRequest {
                exi,
                action: Some(action),
                maximum_chains: req
                    .maximum_contract_certificate_chains
                    .map(|n| u8::try_from(n).unwrap_or(u8::MAX)),
                prioritized_emaids: prioritized,
                idempotency,
            },
        )
        .await;
    match r {
        Ok(out) => {
            observe(&st, &out);
            let mut v = json!({ "status": "Accepted", "exiResponse": B64.encode(&out.exi) });
            if v21 {
                v["remainingContracts"] = out.remaining.into();
            }
            Ok(Json(v).into_response())
        }
        Err(RaError::Provisioning(f)) => Ok(failed(f.code, &f.detail, f.failed_exi.as_deref())),
        // The caller's own standing (credentials, role, limits, its idempotency key) is answered
        // in HTTP terms; what is wrong with the EV's request or its contract, in OCPP terms.
        Err(
            e @ (RaError::Unauthenticated { .. }
            | RaError::RateLimited { .. }
            | RaError::Busy { .. }
            | RaError::Conflict { .. }
            | RaError::BadRequest {
                code: "invalid_idempotency_key",
                ..
            }
            | RaError::Policy(crate::policy::PolicyError::Denied(_))),
        ) => Err(e.into()),
        Err(e) if e.kind().is_client_error() => Ok(failed(e.code(), &e.to_string(), None)),
        Err(e) => Err(e.into()),
    }
}

// --------------------------------------------------------------------------- OPCP PCP

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProvCertBody {
    vehicle_certificate: String,
    #[serde(default, rename = "subCA1Certificate")]
    sub_ca1_certificate: Option<String>,
    #[serde(default, rename = "subCA2Certificate")]
    sub_ca2_certificate: Option<String>,
    #[serde(default)]
    xsd_msg_def_namespace: Option<String>,
}

fn cert_b64(field: &str, s: &str) -> Result<Vec<u8>, ApiError> {
    let clean: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    B64.decode(clean.as_bytes())
        .map_err(|_| ApiError::bad_request("bad_certificate", format!("{field} is not base64 DER")))
}

/// `PUT /v1/oem/provCerts`: upload a vehicle's OEM provisioning chain (checked at once).
async fn put_prov_certs(
    State(st): State<AppState>,
    p: Principal,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(body_error)?;
    let b: ProvCertBody = parse_json(&body)?;
    let opt = |f: &str, v: &Option<String>| -> Result<Option<Vec<u8>>, ApiError> {
        v.as_deref()
            .filter(|s| !s.trim().is_empty())
            .map(|s| cert_b64(f, s))
            .transpose()
    };
    let rec = st
        .ra
        .put_prov_cert(
            &p,
            ProvCertUpload {
                vehicle: cert_b64("vehicleCertificate", &b.vehicle_certificate)?,
                sub_ca1: opt("subCA1Certificate", &b.sub_ca1_certificate)?,
                sub_ca2: opt("subCA2Certificate", &b.sub_ca2_certificate)?,
                namespace: b
                    .xsd_msg_def_namespace
                    .unwrap_or_else(|| "urn:iso:15118:2:2013:MsgDef".into()),
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(oem_message(&rec))).into_response())
}

fn oem_message(rec: &ProvCertRecord) -> Value {
    let root = crate::x509::ParsedCert::from_der(&rec.root_der).ok();
    json!({
        "OEMMessage": {
            "pcid": rec.pcid,
            "vehicleCertificate": B64.encode(&rec.leaf_der),
            "subCA1Certificate": rec.sub_ca1_der.as_deref().map(|d| B64.encode(d)),
            "subCA2Certificate": rec.sub_ca2_der.as_deref().map(|d| B64.encode(d)),
            "rootAuthorityKeyIdentifier": root.as_ref().and_then(|r| r.ski()).map(|s| B64.encode(s)),
            "rootIssuerDistinguishedName": root.as_ref().map(|r| r.subject_string()),
            "rootIssuerSerialNumber": root.as_ref().map(|r| r.serial_hex()),
            "xsdMsgDefNamespace": rec.namespace,
        }
    })
}

/// `GET /v1/oem/provCerts/{pcid}`.
async fn get_prov_certs(
    State(st): State<AppState>,
    p: Principal,
    Path(pcid): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(oem_message(&st.ra.prov_cert(&p, &pcid).await?)))
}

/// `GET /v1/oem/provCerts/lookupVehicle/{pcid}`: whether the pool knows the vehicle.
async fn lookup_vehicle(
    State(st): State<AppState>,
    p: Principal,
    Path(pcid): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let rec = st.ra.prov_cert(&p, &pcid).await?;
    Ok(Json(json!({
        "pcid": rec.pcid,
        "xsdMsgDefNamespace": rec.namespace,
        "uploadedAt": rfc3339(rec.uploaded_at),
    })))
}

/// `DELETE /v1/oem/provCerts/{pcid}`.
async fn delete_prov_certs(
    State(st): State<AppState>,
    p: Principal,
    Path(pcid): Path<String>,
) -> Result<StatusCode, ApiError> {
    st.ra.delete_prov_cert(&p, &pcid).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ----------------------------------------------------------------- native contracts

fn contract_json(c: &ContractRecord) -> Value {
    serde_json::to_value(c).unwrap_or_default()
}

/// `POST /api/v1/contracts` (MO): bind an EMAID to a PCID.
async fn create_contract(
    State(st): State<AppState>,
    p: Principal,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(body_error)?;
    let c: NewContract = parse_json(&body)?;
    let rec = st.ra.create_contract(&p, c).await?;
    Ok((StatusCode::CREATED, Json(contract_json(&rec))).into_response())
}

#[derive(Debug, Default, Deserialize)]
struct ContractQuery {
    emaid: Option<String>,
    pcid: Option<String>,
    limit: Option<i64>,
}

/// `GET /api/v1/contracts?emaid=&pcid=`.
async fn list_contracts(
    State(st): State<AppState>,
    p: Principal,
    q: Result<Query<ContractQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request("bad_query", e.body_text()))?;
    let items = st
        .ra
        .list_contracts(&p, q.emaid.as_deref(), q.pcid.as_deref(), q.limit)
        .await?;
    Ok(Json(json!({
        "items": items.iter().map(contract_json).collect::<Vec<_>>()
    })))
}

/// `GET /api/v1/contracts/{id}`: the contract and its certificates.
async fn get_contract(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let c = st.ra.contract(&p, &id).await?;
    let certs = st.ra.contract_certificates(&p, &id).await?;
    let mut v = contract_json(&c);
    v["certificates"] = certs
        .iter()
        .map(|x| {
            json!({
                "issuer_id": x.issuer_id,
                "serial_hex": x.serial_hex,
                "profile": x.profile,
                "status": x.status,
                "not_after": x.not_after,
            })
        })
        .collect::<Vec<_>>()
        .into();
    Ok(Json(v))
}

/// `DELETE /api/v1/contracts/{id}`: cancel; its certificates are revoked before this answers.
/// With `Idempotency-Key`, a retry answers the first call's `revoked` list
/// (`Ra::cancel_contract_keyed`).
async fn cancel_contract(
    State(st): State<AppState>,
    p: Principal,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let key = super::idempotency_key(&headers)?;
    let done = st.ra.cancel_contract_keyed(&p, &id, key.as_deref()).await?;
    let mut v = contract_json(&done.contract);
    v["revoked"] = done
        .revoked
        .iter()
        .map(|x| json!({ "issuer_id": x.issuer_id, "serial_hex": x.serial_hex }))
        .collect::<Vec<_>>()
        .into();
    Ok(Json(v))
}
