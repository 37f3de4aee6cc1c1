//! OPCP (Hubject dialect) EST-like enrollment, CA certificates and the root certificate pool.
//! Paths follow what MaEVe, CitrineOS and the OPCP spec use (see shared/docs/clients-api.md).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use sha2::Digest;

use crate::model::rfc3339;

use super::error::{ApiError, body_error};
use super::{AppState, Routes};
use crate::policy::authz::{Family, Principal};
use crate::policy::profile::Standard;
use crate::server::Peer;
use crate::x509::pkcs7;

/// The CA "domains" of the OPCP paths and the leaf family each enrolls.
const DOMAINS: [(&str, Family); 4] = [
    ("cpo", Family::Secc),
    ("mo", Family::Contract),
    ("oem", Family::OemProvisioning),
    ("cps", Family::Cps),
];

/// The labels of the standard RFC 7030 tree (`/.well-known/est/{label}/…`), the family each
/// enrolls and the standard its default profile is of. `cpo`…`cps` answer the same bytes as the
/// Hubject dialect; `csms` (CSMS server certificates) and `charging-station` are OCPP's.
const EST_LABELS: [(&str, Family, Standard); 6] = [
    ("cpo", Family::Secc, Standard::Iso2),
    ("mo", Family::Contract, Standard::Iso2),
    ("oem", Family::OemProvisioning, Standard::Iso2),
    ("cps", Family::Cps, Standard::Iso2),
    ("csms", Family::CsmsServer, Standard::Ocpp),
    ("charging-station", Family::ChargingStation, Standard::Ocpp),
];

/// `ISO15118-2` / `ISO15118-20` (case-insensitive, `_` or `-`); anything else is refused.
pub(super) fn iso_standard(iso: &str) -> Result<Standard, ApiError> {
    let norm = iso.to_ascii_uppercase().replace('_', "-");
    match norm.as_str() {
        "ISO15118-2" | "ISO-15118-2" => Ok(Standard::Iso2),
        "ISO15118-20" | "ISO-15118-20" => Ok(Standard::Iso20),
        _ => Err(ApiError::bad_request(
            "unknown_iso_version",
            format!(
                "unsupported ISO version '{}' (use ISO15118-2 or ISO15118-20)",
                iso.chars().take(40).collect::<String>()
            ),
        )),
    }
}

/// The OPCP / EST routes.
pub fn routes(mut r: Routes) -> Routes {
    for (s, d) in DOMAINS {
        let enroll_iso = post(
            move |st: State<AppState>,
                  p: Principal,
                  Path(iso): Path<String>,
                  h: axum::http::HeaderMap,
                  b| async move { enroll(st, p, d, iso_standard(&iso)?, h, b).await },
        );
        let enroll_default = post(
            move |st: State<AppState>, p: Principal, h: axum::http::HeaderMap, b| async move {
                enroll(st, p, d, Standard::Iso2, h, b).await
            },
        );
        r = r
            .add(
                &format!("/{s}/simpleenroll/{{iso}}"),
                &["POST"],
                enroll_iso.clone(),
            )
            .add(
                &format!("/.well-known/est/{s}/simpleenroll/{{iso}}"),
                &["POST"],
                enroll_iso,
            )
            .add(
                &format!("/.well-known/{s}/simpleenroll"),
                &["POST"],
                enroll_default.clone(),
            )
            .add(
                &format!("/.well-known/est/{s}/simpleenroll"),
                &["POST"],
                enroll_default,
            );
        let cacerts_iso = get(
            move |st: State<AppState>, Path(iso): Path<String>| async move {
                cacerts(st, d, iso_standard(&iso)?).await
            },
        );
        let cacerts_alg = get(
            move |st: State<AppState>, Path((iso, _alg)): Path<(String, String)>| async move {
                cacerts(st, d, iso_standard(&iso)?).await
            },
        );
        let cacerts_default =
            get(move |st: State<AppState>| async move { cacerts(st, d, Standard::Iso2).await });
        r = r
            .add(
                &format!("/{s}/cacerts/{{iso}}"),
                &["GET"],
                cacerts_iso.clone(),
            )
            .add(
                &format!("/{s}/cacerts/{{iso}}/{{alg}}"),
                &["GET"],
                cacerts_alg,
            )
            .add(
                &format!("/.well-known/est/{s}/cacerts/{{iso}}"),
                &["GET"],
                cacerts_iso,
            )
            .add(
                &format!("/.well-known/{s}/cacerts"),
                &["GET"],
                cacerts_default.clone(),
            )
            .add(
                &format!("/.well-known/est/{s}/cacerts"),
                &["GET"],
                cacerts_default,
            );
    }
    for (s, d, std) in EST_LABELS {
        if std == Standard::Ocpp {
            // The Hubject-dialect loop above already serves these two for the ISO labels.
            r = r
                .add(
                    &format!("/.well-known/est/{s}/simpleenroll"),
                    &["POST"],
                    post(
                        move |st: State<AppState>,
                              p: Principal,
                              h: axum::http::HeaderMap,
                              b| async move { enroll(st, p, d, std, h, b).await },
                    ),
                )
                .add(
                    &format!("/.well-known/est/{s}/cacerts"),
                    &["GET"],
                    get(move |st: State<AppState>| async move { cacerts(st, d, std).await }),
                );
        }
        r = r
            .add(
                &format!("/.well-known/est/{s}/simplereenroll"),
                &["POST"],
                post(
                    move |st: State<AppState>, peer: Option<Extension<Peer>>, b| async move {
                        reenroll(st, peer, d, std, b).await
                    },
                ),
            )
            .add(
                &format!("/.well-known/est/{s}/csrattrs"),
                &["GET"],
                get(move |st: State<AppState>| async move { csrattrs(st, d, std).await }),
            );
    }
    r.add(
        "/v1/root/rootCerts",
        &["GET", "PUT"],
        get(root_certs).put(super::webhooks::put_root_cert),
    )
    .add(
        "/v1/root/rootCerts/{id}",
        &["GET", "DELETE"],
        get(root_cert).delete(super::webhooks::delete_root_cert),
    )
}

fn pkcs7_response(b64: String) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                "application/pkcs7-mime; smime-type=certs-only",
            ),
            (
                header::HeaderName::from_static("content-transfer-encoding"),
                "base64",
            ),
        ],
        b64,
    )
        .into_response()
}

/// RFC 7030 §4.2.2 `simplereenroll`: the client authenticates with the certificate it renews
/// (mutual TLS), asks for the same subject, and the old certificate is superseded.
async fn reenroll(
    State(st): State<AppState>,
    peer: Option<Extension<Peer>>,
    family: Family,
    standard: Standard,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(body_error)?;
    let cert = peer.and_then(|Extension(p)| p.client_cert);
    let issued = st
        .ra
        .reenroll(family, standard, cert.as_deref().map(Vec::as_slice), &body)
        .await?;
    st.metrics.issued(&issued.record.profile);
    let mut certs: Vec<&[u8]> = vec![&issued.cert.der];
    for c in issued.intermediates() {
        certs.push(&c.der);
    }
    Ok(pkcs7_response(pkcs7::certs_only_base64(&certs)))
}

/// RFC 7030 §4.5 `csrattrs`: `application/csrattrs`, base64 DER `CsrAttrs`.
async fn csrattrs(
    State(st): State<AppState>,
    family: Family,
    standard: Standard,
) -> Result<Response, ApiError> {
    let der = st.ra.csr_attrs(family, standard)?;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    Ok((
        [
            (header::CONTENT_TYPE, "application/csrattrs"),
            (
                header::HeaderName::from_static("content-transfer-encoding"),
                "base64",
            ),
        ],
        b64,
    )
        .into_response())
}

pub(super) async fn enroll(
    State(st): State<AppState>,
    p: Principal,
    family: Family,
    standard: Standard,
    headers: axum::http::HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(body_error)?;
    // A retry with the same key and body gets the first certificate (`Ra::enroll`).
    let key = super::idempotency_key(&headers)?;
    let issued = st
        .ra
        .enroll(&p, family, standard, &body, key.as_deref())
        .await?;
    st.metrics.issued(&issued.record.profile);
    // Leaf first, then the issuing sub-CAs; the root is left out (clients get it from cacerts /
    // rootCerts and must not take it from an enrollment answer).
    let mut certs: Vec<&[u8]> = vec![&issued.cert.der];
    for c in issued.intermediates() {
        certs.push(&c.der);
    }
    Ok(pkcs7_response(pkcs7::certs_only_base64(&certs)))
}

/// CA chain for the domain: issuing sub-CA 2, sub-CA 1, root (root last).
pub(super) async fn cacerts(
    State(st): State<AppState>,
    family: Family,
    standard: Standard,
) -> Result<Response, ApiError> {
    let chain = st.ra.issuing_chain(family, standard).await?;
    let certs: Vec<&[u8]> = chain.iter().map(|c| c.der.as_slice()).collect();
    Ok(pkcs7_response(pkcs7::certs_only_base64(&certs)))
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct RootQuery {
    root_type: Option<String>,
}

/// OPCP `RootCert` object for a root CA record, with its `rootType`.
fn root_json(
    rec: &crate::model::CaRecord,
) -> Result<Option<(&'static str, serde_json::Value)>, ApiError> {
    if rec.parent_id.is_some() {
        return Ok(None);
    }
    let Some(rt) = crate::events::root_type_of(&rec.profile) else {
        return Ok(None);
    };
    root_json_der(&rec.cert_der, rt).map(Some)
}

/// Every root of the pool: our own, then the external ones the operator trusts.
pub(super) async fn all_roots(
    st: &AppState,
) -> Result<Vec<(&'static str, serde_json::Value)>, ApiError> {
    let mut out = Vec::new();
    for rec in st.ra.cas().await? {
        if let Some(v) = root_json(&rec)? {
            out.push(v);
        }
    }
    for t in st.ra.trusted_roots().await? {
        out.push(root_json_der(&t.der, t.kind.opcp_type())?);
    }
    Ok(out)
}

/// OPCP `RootCert` object for a root certificate.
fn root_json_der(
    der: &[u8],
    rt: &'static str,
) -> Result<(&'static str, serde_json::Value), ApiError> {
    let rec_der = der;
    let cert = crate::x509::ParsedCert::from_der(rec_der).map_err(ApiError::internal)?;
    let subject: &x509_cert::name::RdnSequence = cert.tbs().subject().as_ref();
    let cn = crate::x509::name::values(subject, const_oid::db::rfc4519::CN)
        .into_iter()
        .next();
    let org = crate::x509::name::values(subject, const_oid::db::rfc4519::O)
        .into_iter()
        .next();
    let b64 = base64::engine::general_purpose::STANDARD;
    Ok((
        rt,
        serde_json::json!({
            "rootCertificateId": crate::events::cert_uuid(rec_der),
            "distinguishedName": crate::x509::name::opcp_dn(subject),
            "caCertificate": b64.encode(rec_der),
            "commonName": cn,
            "rootAuthorityKeyIdentifier": cert.ski().map(|s| b64.encode(s)),
            "rootIssuerSerialNumber": cert.serial_hex(),
            "validFrom": rfc3339(cert.not_before()),
            "validTo": rfc3339(cert.not_after()),
            "organizationName": org,
            "rootType": rt,
            "fingerprint": hex::encode(sha2::Sha256::digest(rec_der)),
        }),
    ))
}

/// `GET /v1/root/rootCerts[?rootType=V2G|MO|OEM]`: every root CA this deployment holds.
async fn root_certs(
    State(st): State<AppState>,
    q: Result<Query<RootQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let q = q.map_err(|e| ApiError::bad_request("bad_query", e.body_text()))?;
    let want = q.0.root_type.map(|s| s.to_ascii_uppercase());
    if let Some(w) = &want
        && !["V2G", "MO", "OEM"].contains(&w.as_str())
    {
        return Err(ApiError::bad_request(
            "bad_query",
            "rootType must be V2G, MO or OEM",
        ));
    }
    let out: Vec<serde_json::Value> = all_roots(&st)
        .await?
        .into_iter()
        .filter(|(rt, _)| want.as_deref().is_none_or(|w| w == *rt))
        .map(|(_, v)| v)
        .collect();
    Ok(Json(serde_json::json!({
        "RootCertificateCollection": { "rootCertificates": out }
    })))
}

/// `GET /v1/root/rootCerts/{rootCertificateId}` → `{"RootResponse": RootCert}`.
async fn root_cert(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    for (_, v) in all_roots(&st).await? {
        if v["rootCertificateId"].as_str() == Some(id.as_str()) {
            return Ok(Json(serde_json::json!({ "RootResponse": v })));
        }
    }
    Err(ApiError::not_found(format!(
        "no root certificate {}",
        id.chars().take(64).collect::<String>()
    )))
}
