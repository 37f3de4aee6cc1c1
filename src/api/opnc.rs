//! CharIN OPNC (`charinev/opnc`, `specification/apis/`, the successor of OPCP used by GIREVE):
//! the operations that map onto what we have, under `/opnc/v1/{pki,ccp,cps,rcp,event}`, with
//! OPNC's paths, parameters and answer shapes. Each handler calls the RA once, as its OPCP twin
//! does. OPNC's routing headers (`OPNC-from-party-type`, `OPNC-from-party-id`,
//! `OPNC-to-party-type`, `OPNC-to-party-id`) are accepted and not needed: the caller is the
//! token's client. Event names `emsp.*` are OPNC's for OPCP's `mo.*` and are accepted as such.
//!
//! Not mounted (yet): `pcp` (use `/v1/oem/provCerts`), `PUT ccp/signedcontractdata`,
//! `ccp/signedcontractdata/{emaid}` and `ccp/contractData/emaid/{emaid}`, `cps/contractData/sign`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{ApiError, body_error, parse_json};
use super::{AppState, Routes};
use crate::policy::authz::{Family, Principal};
use crate::ra::webhooks::EndpointRequest;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Every OPNC operation we serve, as (OPNC file's path under its server, method): what the
/// OPNC schema test checks against the specification.
pub const OPERATIONS: &[(&str, &str, &str)] = &[
    ("pki", "/est/cacerts", "get"),
    ("pki", "/est/simpleenroll", "post"),
    ("pki", "/pki/revokeCertificate", "post"),
    ("rcp", "/rootcertificates", "get"),
    ("rcp", "/rootcertificates", "put"),
    ("rcp", "/rootcertificates/{rootCertificateId}", "get"),
    ("rcp", "/rootcertificates/{rootCertificateId}", "delete"),
    ("cps", "/cpsCertificates", "get"),
    ("ccp", "/signedcontractdata", "post"),
    ("ccp", "/signedcontractdata/{emaid}/{pcid}", "get"),
    (
        "ccp",
        "/signedcontractdata/{emaid}/{pcid}/setdefault",
        "post",
    ),
    ("ccp", "/contractData/pcid/{pcid}", "get"),
    ("event", "/opnc/v1/event/endpoints", "get"),
    ("event", "/opnc/v1/event/endpoints", "post"),
    ("event", "/opnc/v1/event/endpoints/{id}", "get"),
    ("event", "/opnc/v1/event/endpoints/{id}", "put"),
    ("event", "/opnc/v1/event/endpoints/{id}", "delete"),
];

/// The OPNC routes.
pub fn routes(r: Routes) -> Routes {
    r.add("/opnc/v1/pki/est/cacerts", &["GET"], get(cacerts))
        .add(
            "/opnc/v1/pki/est/simpleenroll",
            &["POST"],
            post(simpleenroll),
        )
        .add(
            "/opnc/v1/pki/pki/revokeCertificate",
            &["POST"],
            post(revoke_certificate),
        )
        .add(
            "/opnc/v1/rcp/rootcertificates",
            &["GET", "PUT"],
            get(root_certificates).put(super::webhooks::put_root_cert),
        )
        .add(
            "/opnc/v1/rcp/rootcertificates/{id}",
            &["GET", "DELETE"],
            get(root_certificate).delete(super::webhooks::delete_root_cert),
        )
        .add(
            "/opnc/v1/cps/cpsCertificates",
            &["GET"],
            get(cps_certificates),
        )
        .add(
            "/opnc/v1/ccp/signedcontractdata",
            &["POST"],
            post(signed_contract_data),
        )
        .add(
            "/opnc/v1/ccp/signedcontractdata/{emaid}/{pcid}",
            &["GET"],
            get(provide_signed_contract_data),
        )
        .add(
            "/opnc/v1/ccp/signedcontractdata/{emaid}/{pcid}/setdefault",
            &["POST"],
            post(set_default),
        )
        .add(
            "/opnc/v1/ccp/contractData/pcid/{pcid}",
            &["GET"],
            get(contract_data_by_pcid),
        )
        .add(
            "/opnc/v1/event/endpoints",
            &["GET", "POST"],
            get(super::webhooks::list_endpoints).post(create_endpoint),
        )
        .add(
            "/opnc/v1/event/endpoints/{id}",
            &["GET", "PUT", "DELETE"],
            get(super::webhooks::get_endpoint)
                .put(update_endpoint)
                .delete(super::webhooks::delete_endpoint),
        )
}

/// OPNC's `caDomain` → the leaf family it enrolls.
fn ca_domain(d: &str) -> Result<Family, ApiError> {
    match d.trim().to_ascii_lowercase().as_str() {
        "cpo" => Ok(Family::Secc),
        "emsp" => Ok(Family::Contract),
        "oem" => Ok(Family::OemProvisioning),
        "cps" => Ok(Family::Cps),
        other => Err(ApiError::bad_request(
            "unknown_ca_domain",
            format!(
                "caDomain '{}' is not served (use cpo, emsp, oem or cps)",
                other.chars().take(20).collect::<String>()
            ),
        )),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EstQuery {
    ca_domain: String,
    #[serde(rename = "iso15118Version")]
    iso15118_version: Option<String>,
}

fn est_query(
    q: Result<Query<EstQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<(Family, crate::policy::profile::Standard), ApiError> {
    let q = q
        .map_err(|e| ApiError::bad_request("bad_query", e.body_text()))?
        .0;
    let std = super::est::iso_standard(q.iso15118_version.as_deref().unwrap_or("ISO15118-2"))?;
    Ok((ca_domain(&q.ca_domain)?, std))
}

/// `GET /opnc/v1/pki/est/cacerts?caDomain=…&iso15118Version=…`: the domain's CA chain (PKCS#7).
async fn cacerts(
    st: State<AppState>,
    q: Result<Query<EstQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let (family, std) = est_query(q)?;
    super::est::cacerts(st, family, std).await
}

/// `POST /opnc/v1/pki/est/simpleenroll?caDomain=…&iso15118Version=…`: base64 PKCS#10 in, base64
/// PKCS#7 out, as the OPCP route.
async fn simpleenroll(
    st: State<AppState>,
    p: Principal,
    q: Result<Query<EstQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let (family, std) = est_query(q)?;
    super::est::enroll(st, p, family, std, headers, body).await
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RevokeBody {
    certificate: String,
    revocation_reason: String,
}

/// `POST /opnc/v1/pki/pki/revokeCertificate` `{certificate, revocationReason}`: one of the
/// caller's own certificates, found by its bytes.
async fn revoke_certificate(
    State(st): State<AppState>,
    p: Principal,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = body.map_err(body_error)?;
    let b: RevokeBody = parse_json(&body)?;
    let text: String = b.certificate.split_whitespace().collect();
    if text.len() > 8192 {
        return Err(ApiError::bad_request(
            "bad_certificate",
            "certificate is larger than 8192 characters",
        ));
    }
    let der = B64
        .decode(text.as_bytes())
        .map_err(|_| ApiError::bad_request("bad_certificate", "certificate is not base64 DER"))?;
    let r = st
        .ra
        .revoke_presented(&p, &der, &b.revocation_reason)
        .await?;
    Ok(Json(json!({
        "status": "revoked",
        "serialNumber": r.record.serial_hex,
        "revocationReason": b.revocation_reason,
    })))
}

/// OPNC's `rootCertificate` from OPCP's root object.
fn opnc_root(v: &Value) -> Value {
    let rt = match v["rootType"].as_str() {
        Some("MO") => "eMSP",
        Some(other) => other,
        None => "",
    };
    let mut o = v.clone();
    if let Some(m) = o.as_object_mut() {
        // OPNC requires `rootType` (its `rootTypeList` is an array constrained by a string enum,
        // which no value satisfies; it is optional and left out).
        m.insert("rootType".into(), json!(rt));
    }
    o
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RootQuery {
    pki_type: Option<String>,
}

/// `GET /opnc/v1/rcp/rootcertificates[?pkiType=emsp|v2g|oem]`.
async fn root_certificates(
    State(st): State<AppState>,
    q: Result<Query<RootQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let q = q
        .map_err(|e| ApiError::bad_request("bad_query", e.body_text()))?
        .0;
    let want = match q
        .pki_type
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None => None,
        Some("emsp") => Some("MO"),
        Some("v2g") => Some("V2G"),
        Some("oem") => Some("OEM"),
        Some(_) => {
            return Err(ApiError::bad_request(
                "bad_query",
                "pkiType must be emsp, v2g or oem",
            ));
        }
    };
    let list: Vec<Value> = super::est::all_roots(&st)
        .await?
        .into_iter()
        .filter(|(rt, _)| want.is_none_or(|w| w == *rt))
        .map(|(_, v)| opnc_root(&v))
        .collect();
    Ok(Json(json!({ "rootCertificateCollection": list })))
}

/// `GET /opnc/v1/rcp/rootcertificates/{rootCertificateId}` (OPNC names the member
/// `roootCertificate`; both spellings are sent).
async fn root_certificate(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    for (_, v) in super::est::all_roots(&st).await? {
        if v["rootCertificateId"].as_str() == Some(id.as_str()) {
            let r = opnc_root(&v);
            return Ok(Json(json!({ "roootCertificate": r, "rootCertificate": r })));
        }
    }
    Err(ApiError::not_found(format!(
        "no root certificate {}",
        id.chars().take(64).collect::<String>()
    )))
}

/// `GET /opnc/v1/cps/cpsCertificates`.
async fn cps_certificates(
    State(st): State<AppState>,
    p: Principal,
) -> Result<Json<Value>, ApiError> {
    let items: Vec<Value> = st
        .ra
        .cps_signers(&p)
        .await?
        .iter()
        .map(|i| {
            let subject: &x509_cert::name::RdnSequence = i.leaf.tbs().subject().as_ref();
            let org = crate::x509::name::values(subject, const_oid::db::rfc4519::O)
                .into_iter()
                .next()
                .unwrap_or_default();
            let root = i.chain.last();
            let subs: Vec<&crate::x509::ParsedCert> =
                i.chain.iter().filter(|c| !c.is_self_issued()).collect();
            let mut chain = json!({ "certificate": B64.encode(&i.leaf.der) });
            if let Some(c) = subs.first() {
                chain["subCa2Certificate"] = B64.encode(&c.der).into();
            }
            if let Some(c) = subs.get(1) {
                chain["subCa1Certificate"] = B64.encode(&c.der).into();
            }
            json!({
                "cpsDistinguishedName": crate::x509::name::opcp_dn(subject),
                "cpsCertificateChain": chain,
                "validFrom": crate::model::rfc3339(i.leaf.not_before()),
                "validTo": crate::model::rfc3339(i.leaf.not_after()),
                "organizationName": org,
                "cpsV2GRootCertificateFingerprint": root.map(|r| r.sha256_hex()),
                "cpsV2GRootDistinguishedName": root.map(|r| crate::x509::name::opcp_dn(r.tbs().subject().as_ref())),
                "xsdMsgDefNamespace": opnc_namespace(i.namespace),
            })
        })
        .collect();
    Ok(Json(json!({ "cpsCertificateDataCollection": items })))
}

/// OPNC spells the -20 namespace `urn:iso:15118:20:2020:MsgDef`.
fn opnc_namespace(ns: &str) -> &str {
    if ns == crate::events::NS_ISO20 {
        "urn:iso:15118:20:2020:MsgDef"
    } else {
        ns
    }
}

/// `POST /opnc/v1/ccp/signedcontractdata` `{certificateInstallationReq, xsdMsgDefNamespace,
/// metadata}` (CPO): the installation, answered as `signedContractDataCollection`.
async fn signed_contract_data(
    State(st): State<AppState>,
    p: Principal,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Req {
        certificate_installation_req: String,
        xsd_msg_def_namespace: Option<String>,
        metadata: Option<String>,
    }
    let body = body.map_err(body_error)?;
    let req: Req = parse_json(&body)?;
    let exi = B64
        .decode(req.certificate_installation_req.trim())
        .map_err(|_| {
            ApiError::bad_request(
                "bad_request_encoding",
                "certificateInstallationReq is not base64",
            )
        })?;
    let out = st
        .ra
        .provision(
            &p,
            crate::ra::provisioning::ProvisionRequest {
                exi,
                ..Default::default()
            },
        )
        .await?;
    let ns = match out.schema {
        crate::exi::Schema::Iso2 => crate::events::NS_ISO2,
        crate::exi::Schema::Iso20 => "urn:iso:15118:20:2020:MsgDef",
    };
    let pcid = out
        .certificate
        .as_ref()
        .and_then(|c| c.pcid.clone())
        .unwrap_or_default();
    let _ = req.xsd_msg_def_namespace;
    Ok(Json(json!({ "signedContractDataCollection": [ {
        "certificateInstallationRes": B64.encode(&out.exi),
        "emaid": out.emaid,
        "pcid": pcid,
        "xsdMsgDefNamespace": ns,
        "metaData": req.metadata.unwrap_or_default(),
    } ] })))
}

#[derive(Debug, Deserialize)]
struct VehiclePath {
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

/// `GET /opnc/v1/ccp/signedcontractdata/{emaid}/{pcid}` (OEM): over-the-air contract data.
async fn provide_signed_contract_data(
    State(st): State<AppState>,
    p: Principal,
    Path(path): Path<VehiclePath>,
    q: Result<Query<OtaQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let q = q
        .map_err(|e| ApiError::bad_request("bad_query", e.body_text()))?
        .0;
    let (emaid, pcid) = (path.emaid.clone(), path.pcid.clone());
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
    Ok(Json(json!({ "signedContractDataCollection": [ {
        "certificateInstallationRes": B64.encode(&out.exi),
        "emaid": emaid,
        "pcid": pcid,
        "xsdMsgDefNamespace": crate::events::NS_ISO2,
        "cpsV2GRootCertificateFingerprint": out.cps_root_fingerprint,
    } ] })))
}

/// `POST /opnc/v1/ccp/signedcontractdata/{emaid}/{pcid}/setdefault`.
async fn set_default(
    State(st): State<AppState>,
    p: Principal,
    Path(path): Path<VehiclePath>,
) -> Result<Json<Value>, ApiError> {
    let c = st
        .ra
        .set_default_contract(&p, &path.pcid, &path.emaid)
        .await?;
    let default = st.ra.default_contract_of(&c.pcid).await?;
    Ok(Json(json!({
        "emaid": c.emaid,
        "pcid": c.pcid,
        "defaultContract": default.as_deref() == Some(c.id.as_str()),
    })))
}

/// `GET /opnc/v1/ccp/contractData/pcid/{pcid}`: a vehicle's contracts in delivery order with
/// their current certificates (the OEM of its WMI; an MO sees its own).
async fn contract_data_by_pcid(
    State(st): State<AppState>,
    p: Principal,
    Path(pcid): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let list = st.ra.contract_data_of_vehicle(&p, &pcid).await?;
    if list.is_empty() {
        return Err(ApiError::not_found("Contract or Vehicle not found."));
    }
    let mut items = Vec::new();
    for (i, (c, cur)) in list.iter().enumerate() {
        let mut v = json!({
            "pcid": c.pcid,
            "emaid": c.emaid,
            "xsdMsgDefNamespace": crate::events::NS_ISO2,
            "defaultContract": i == 0,
        });
        if let Some(x) = cur {
            v["contractCertificate"] = B64.encode(&x.der).into();
            v["certValidFrom"] = crate::model::rfc3339(x.not_before).into();
            v["certValidTo"] = crate::model::rfc3339(x.not_after).into();
        }
        items.push(v);
    }
    Ok(Json(json!({ "contractDataCollection": items })))
}

/// OPNC's event names for OPCP's: `emsp.…` is `mo.…`.
fn opcp_events(body: &[u8]) -> Result<EndpointRequest, ApiError> {
    let mut v: Value = parse_json(body)?;
    if let Some(list) = v.get_mut("enabledEvents").and_then(Value::as_array_mut) {
        for e in list.iter_mut() {
            if let Some(rest) = e.as_str().and_then(|s| s.strip_prefix("emsp.")) {
                *e = Value::String(format!("mo.{rest}"));
            }
        }
    }
    serde_json::from_value(v)
        .map_err(|e| ApiError::bad_request("bad_json", format!("the body does not fit: {e}")))
}

async fn create_endpoint(
    State(st): State<AppState>,
    p: Principal,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(body_error)?;
    let req = opcp_events(&body)?;
    let e = st.ra.create_webhook_endpoint(&p, req).await?;
    Ok((
        axum::http::StatusCode::CREATED,
        Json(super::webhooks::endpoint_json(&e, &p, true)),
    )
        .into_response())
}

async fn update_endpoint(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = body.map_err(body_error)?;
    let req = opcp_events(&body)?;
    let e = st.ra.update_webhook_endpoint(&p, &id, req).await?;
    Ok(Json(super::webhooks::endpoint_json(&e, &p, false)))
}
