//! OCPP-shaped OCSP lookups for CSMSs that only hold certificate hash data.
//!
//! - OCPP 2.0.1 `GetCertificateStatusRequest {ocspRequestData}` → `{status, ocspResult}` where
//!   `ocspResult` is the base64 DER OCSPResponse the CSMS relays to the station verbatim.
//! - OCPP 2.1 `GetCertificateChainStatusRequest {certificateStatusRequests[1..4]}` →
//!   `{certificateStatus[]}` with verdicts `Good|Revoked|Unknown|Failed` and `nextUpdate`.
//!
//! Hex is accepted in either case; serial numbers may have their leading zeros stripped (EVerest
//! sends them so) or an odd number of digits. These routes are authenticated: the API router
//! applies its authentication layer to `/api/v1/ocsp/*` when it merges [`super::routes`].

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};

use super::responder::{Answer, Responder, build_cert_id};
use super::wire::{CertId, CertStatus, ErrorStatus};
use crate::alg::HashAlg;

/// A request the OCPP handlers refuse (HTTP 400, RFC 9457 problem body).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct OcppError {
    /// Machine-readable code (`invalid_request`, `invalid_json`).
    pub code: &'static str,
    /// What is wrong.
    pub message: String,
}

impl OcppError {
    fn bad(message: impl Into<String>) -> OcppError {
        OcppError {
            code: "invalid_request",
            message: message.into(),
        }
    }
}

impl IntoResponse for OcppError {
    fn into_response(self) -> Response {
        (
            StatusCode::BAD_REQUEST,
            [(axum::http::header::CONTENT_TYPE, "application/problem+json")],
            Json(json!({
                "type": "about:blank",
                "title": "Bad Request",
                "status": 400,
                "code": self.code,
                "detail": self.message,
            })),
        )
            .into_response()
    }
}

/// OCPP `CertificateHashDataType` / `OCSPRequestDataType` (the latter adds `responderURL`).
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HashData {
    /// `SHA256`, `SHA384`, `SHA512` (and `SHA1`).
    pub hash_algorithm: String,
    /// Hex hash of the issuer's name.
    pub issuer_name_hash: String,
    /// Hex hash of the issuer's public key.
    pub issuer_key_hash: String,
    /// Hex serial (leading zeros optional).
    pub serial_number: String,
    /// `responderURL` (OCSPRequestDataType only).
    #[serde(
        rename = "responderURL",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub responder_url: Option<String>,
}

fn hash_alg(name: &str) -> Result<HashAlg, OcppError> {
    match name.to_ascii_uppercase().replace(['-', '_'], "").as_str() {
        "SHA1" => Ok(HashAlg::Sha1),
        "SHA256" => Ok(HashAlg::Sha256),
        "SHA384" => Ok(HashAlg::Sha384),
        "SHA512" => Ok(HashAlg::Sha512),
        other => Err(OcppError::bad(format!(
            "unsupported hashAlgorithm '{other}'"
        ))),
    }
}

fn hex_field(what: &str, s: &str, odd_ok: bool) -> Result<Vec<u8>, OcppError> {
    let t = s.trim();
    let t = if odd_ok && t.len() % 2 == 1 {
        format!("0{t}")
    } else {
        t.to_string()
    };
    hex::decode(&t).map_err(|_| OcppError::bad(format!("{what} is not hex")))
}

/// OCPP hash data → CertID (encoded as OpenSSL/Go would, so cached responses match).
pub fn cert_id_from_hash_data(d: &HashData) -> Result<CertId, OcppError> {
    let alg = hash_alg(&d.hash_algorithm)?;
    let name = hex_field("issuerNameHash", &d.issuer_name_hash, false)?;
    let key = hex_field("issuerKeyHash", &d.issuer_key_hash, false)?;
    if name.len() != alg.output_len() || key.len() != alg.output_len() {
        return Err(OcppError::bad(format!(
            "issuerNameHash and issuerKeyHash must be {} bytes for {}",
            alg.output_len(),
            alg.ocpp_name()
        )));
    }
    let mut serial = hex_field("serialNumber", &d.serial_number, true)?;
    if serial.is_empty() || serial.len() > 21 {
        return Err(OcppError::bad("serialNumber must be 1 to 20 bytes of hex"));
    }
    while serial.len() > 1 && serial[0] == 0 {
        serial.remove(0);
    }
    build_cert_id(alg, &name, &key, &serial).map_err(|e| OcppError::bad(e.to_string()))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatusRequest {
    ocsp_request_data: HashData,
}

/// OCPP 2.0.1 GetCertificateStatus.
pub async fn certificate_status(responder: &Responder, req: Value) -> Result<Value, OcppError> {
    let req: StatusRequest =
        serde_json::from_value(req).map_err(|e| OcppError::bad(e.to_string()))?;
    let cid = cert_id_from_hash_data(&req.ocsp_request_data)?;
    let request = super::wire::OcspRequest {
        cert_ids: vec![cid],
        nonce: None,
        has_signature: false,
    };
    Ok(match responder.answer(&request, None).await {
        Answer::Signed { der, .. } => json!({
            "status": "Accepted",
            "ocspResult": base64::engine::general_purpose::STANDARD.encode(&der),
        }),
        Answer::Error(s) => {
            let (code, info) = match s {
                ErrorStatus::Unauthorized => {
                    ("UnknownIssuer", "the issuer is not a CA of this service")
                }
                _ => ("TryLater", "the responder cannot answer now"),
            };
            json!({"status": "Failed", "statusInfo": {"reasonCode": code, "additionalInfo": info}})
        }
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChainEntry {
    certificate_hash_data: HashData,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    urls: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChainRequest {
    certificate_status_requests: Vec<ChainEntry>,
}

fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}

/// OCPP 2.1 GetCertificateChainStatus.
pub async fn chain_status(responder: &Responder, req: Value) -> Result<Value, OcppError> {
    let req: ChainRequest =
        serde_json::from_value(req).map_err(|e| OcppError::bad(e.to_string()))?;
    let n = req.certificate_status_requests.len();
    if !(1..=4).contains(&n) {
        return Err(OcppError::bad(format!(
            "certificateStatusRequests has {n} items (allowed 1..4)"
        )));
    }
    let mut out = Vec::with_capacity(n);
    for e in req.certificate_status_requests {
        let _ = &e.urls;
        let source = e.source.clone().unwrap_or_else(|| "OCSP".into());
        let (status, next) = match cert_id_from_hash_data(&e.certificate_hash_data) {
            Err(_) => ("Failed", responder.now()),
            Ok(cid) => match responder.verdict(&cid).await {
                Ok(v) => (
                    match v.status {
                        Some(CertStatus::Good) => "Good",
                        Some(CertStatus::Revoked { .. }) => "Revoked",
                        Some(CertStatus::Unknown) | None => "Unknown",
                    },
                    v.next_update,
                ),
                Err(_) => ("Failed", responder.now()),
            },
        };
        let mut hd = e.certificate_hash_data.clone();
        hd.responder_url = None;
        out.push(json!({
            "certificateHashData": hd,
            "source": source,
            "status": status,
            "nextUpdate": rfc3339(next),
        }));
    }
    Ok(json!({ "certificateStatus": out }))
}

/// `POST /api/v1/ocsp/certificate-status` (the caller is authenticated by the API router).
pub async fn certificate_status_route(
    State(r): State<Responder>,
    body: axum::body::Bytes,
) -> Response {
    match parse_json(&body) {
        Ok(v) => match certificate_status(&r, v).await {
            Ok(v) => Json(v).into_response(),
            Err(e) => e.into_response(),
        },
        Err(e) => e.into_response(),
    }
}

/// `POST /api/v1/ocsp/chain-status` (the caller is authenticated by the API router).
pub async fn chain_status_route(State(r): State<Responder>, body: axum::body::Bytes) -> Response {
    match parse_json(&body) {
        Ok(v) => match chain_status(&r, v).await {
            Ok(v) => Json(v).into_response(),
            Err(e) => e.into_response(),
        },
        Err(e) => e.into_response(),
    }
}

fn parse_json(body: &[u8]) -> Result<Value, OcppError> {
    if body.len() > 64 * 1024 {
        return Err(OcppError::bad("body too large"));
    }
    serde_json::from_slice(body).map_err(|e| OcppError {
        code: "invalid_json",
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_data_normalises() {
        let d = HashData {
            hash_algorithm: "sha256".into(),
            issuer_name_hash: "AB".repeat(32),
            issuer_key_hash: "cd".repeat(32),
            serial_number: "0A1b".into(),
            responder_url: None,
        };
        let a = cert_id_from_hash_data(&d).unwrap();
        let d2 = HashData {
            serial_number: "a1B".into(),
            ..d.clone()
        };
        let b = cert_id_from_hash_data(&d2).unwrap();
        assert_eq!(a.der, b.der);
        assert_eq!(a.serial, vec![0x0a, 0x1b]);
        let parsed = crate::ocsp::wire::parse_request(&wrap_request(&a.der)).unwrap();
        assert_eq!(parsed.cert_ids[0], a);
        let bad = HashData {
            issuer_name_hash: "ab".into(),
            ..d
        };
        assert!(cert_id_from_hash_data(&bad).is_err());
    }

    /// OCSPRequest { TBSRequest { requestList { Request { reqCert } } } } around a CertID.
    fn wrap_request(cid: &[u8]) -> Vec<u8> {
        fn seq(body: &[u8]) -> Vec<u8> {
            let mut v = vec![0x30];
            assert!(body.len() < 0x80 * 2);
            if body.len() < 0x80 {
                v.push(body.len() as u8);
            } else {
                v.extend([0x81, body.len() as u8]);
            }
            v.extend_from_slice(body);
            v
        }
        seq(&seq(&seq(&seq(cid))))
    }
}
