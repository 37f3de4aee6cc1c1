//! CRLs (RFC 5280 §5), built by us and signed in the HSM with the CA's key.
//!
//! x509-cert 0.3's `CrlBuilder` wants an in-process `Signer` and keeps `TbsCertList` fields
//! private; like `crate::x509::TbsCertificate`, we encode the TBS with our own `der` derive and
//! sign through `Hsm::sign_der`. A CRL is regenerated when a certificate of its CA is revoked (by
//! this process, or by anyone: a GET notices a revocation newer than the stored CRL), on a
//! schedule before nextUpdate, and never lists expired certificates. CRL numbers are persisted
//! and only grow.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use der::asn1::{OctetString, Uint};
use der::{Encode, Sequence};
use spki::AlgorithmIdentifierOwned;
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::AuthorityKeyIdentifier;
use x509_cert::name::RdnSequence;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::Time;

use super::error::ApiError;
use super::{AppState, Routes};
use crate::ca::{Ca, CaError, reason_code};
use crate::hsm::{HashAlg, KeyAlg};
use crate::store::api::CrlRecord;
use crate::x509;

const OID_CRL_NUMBER: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("2.5.29.20");
const OID_CRL_REASON: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("2.5.29.21");
const OID_AKI: der::asn1::ObjectIdentifier = der::asn1::ObjectIdentifier::new_unwrap("2.5.29.35");

#[derive(Clone, Debug, Sequence)]
struct RevokedEntry {
    serial: SerialNumber,
    revocation_date: Time,
    #[asn1(optional = "true")]
    extensions: Option<Vec<Extension>>,
}

/// TBSCertList (v2).
#[derive(Clone, Debug, Sequence)]
struct TbsCertList {
    version: u8,
    signature: AlgorithmIdentifierOwned,
    issuer: RdnSequence,
    this_update: Time,
    next_update: Time,
    #[asn1(optional = "true")]
    revoked: Option<Vec<RevokedEntry>>,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    extensions: Option<Vec<Extension>>,
}

fn hash_for(alg: KeyAlg) -> HashAlg {
    match alg {
        KeyAlg::EcP256 => HashAlg::Sha256,
        KeyAlg::EcP384 => HashAlg::Sha384,
        KeyAlg::EcP521 => HashAlg::Sha512,
    }
}

pub struct CrlService {
    validity: i64,
    /// One generation at a time per process, so numbers are not raced within it (across
    /// processes `put_crl` keeps only a higher number).
    lock: tokio::sync::Mutex<()>,
}

impl CrlService {
    pub fn new(validity: i64) -> CrlService {
        CrlService {
            validity,
            lock: tokio::sync::Mutex::new(()),
        }
    }

    /// Build, sign and store a fresh CRL for `issuer_id`.
    pub async fn regenerate(&self, ca: &Ca, issuer_id: &str) -> Result<CrlRecord, CaError> {
        let _g = self.lock.lock().await;
        let issuer = ca.issuer(issuer_id).await?;
        let prev = ca.store.get_crl(issuer_id).await?;
        let number = prev.as_ref().map(|p| p.crl_number + 1).unwrap_or(1);
        let now = crate::store::now();
        let next = now + self.validity;
        let hash = hash_for(issuer.key.alg);
        let internal = |e: String| CaError::Internal(format!("CRL for {issuer_id}: {e}"));
        let mut entries = Vec::new();
        for (serial_hex, at, reason) in ca.store.revoked_for_crl(issuer_id, now).await? {
            let bytes = hex::decode(&serial_hex).map_err(|e| internal(e.to_string()))?;
            let serial = SerialNumber::new(&bytes).map_err(|e| internal(e.to_string()))?;
            let code = reason.as_deref().and_then(reason_code).unwrap_or(0);
            // RFC 5280 §5.3.1: omit reasonCode rather than use unspecified (0).
            let exts = if code == 0 {
                None
            } else {
                Some(vec![Extension {
                    extn_id: OID_CRL_REASON,
                    critical: false,
                    extn_value: OctetString::new(vec![0x0a, 0x01, code])
                        .map_err(|e| internal(e.to_string()))?,
                }])
            };
            entries.push(RevokedEntry {
                serial,
                revocation_date: x509::x509_time(at).map_err(internal)?,
                extensions: exts,
            });
        }
        let aki = AuthorityKeyIdentifier {
            key_identifier: issuer
                .cert
                .ski()
                .map(OctetString::new)
                .transpose()
                .map_err(|e| internal(e.to_string()))?,
            authority_cert_issuer: None,
            authority_cert_serial_number: None,
        };
        let number_bytes = (number as u64).to_be_bytes();
        let tbs = TbsCertList {
            version: 1,
            signature: x509::ecdsa_alg(hash),
            issuer: issuer.cert.tbs().subject().as_ref().clone(),
            this_update: x509::x509_time(now).map_err(internal)?,
            next_update: x509::x509_time(next).map_err(internal)?,
            revoked: if entries.is_empty() {
                None
            } else {
                Some(entries)
            },
            extensions: Some(vec![
                x509::extension(OID_AKI, false, &aki).map_err(internal)?,
                x509::extension(
                    OID_CRL_NUMBER,
                    false,
                    &Uint::new(&number_bytes).map_err(|e| internal(e.to_string()))?,
                )
                .map_err(internal)?,
            ]),
        };
        let tbs_der = tbs.to_der().map_err(|e| internal(e.to_string()))?;
        let hsm = ca.hsm.clone();
        let key = issuer.key.clone();
        let to_sign = tbs_der.clone();
        let sig = tokio::task::spawn_blocking(move || hsm.sign_der(&key, hash, &to_sign))
            .await
            .map_err(|e| internal(e.to_string()))??;
        let der = x509::assemble_signed(&tbs_der, hash, &sig).map_err(internal)?;
        let rec = CrlRecord {
            issuer_id: issuer_id.to_string(),
            crl_number: number,
            this_update: now,
            next_update: next,
            der,
        };
        if !ca.store.put_crl(&rec).await? {
            // Another process stored a newer one meanwhile: serve that.
            if let Some(newer) = ca.store.get_crl(issuer_id).await? {
                return Ok(newer);
            }
        }
        tracing::info!(issuer = %issuer_id, number, "CRL generated");
        Ok(rec)
    }

    /// The current CRL: the stored one unless missing, past half its life, or older than the
    /// newest revocation.
    pub async fn current(&self, ca: &Ca, issuer_id: &str) -> Result<CrlRecord, CaError> {
        let now = crate::store::now();
        if let Some(c) = ca.store.get_crl(issuer_id).await? {
            let fresh = now < c.this_update + (c.next_update - c.this_update) / 2;
            let last = ca.store.last_revocation(issuer_id).await?;
            if fresh && last.is_none_or(|l| l < c.this_update) {
                return Ok(c);
            }
        }
        self.regenerate(ca, issuer_id).await
    }
}

pub fn routes(r: Routes) -> Routes {
    r.add("/crl/{file}", &["GET"], get(get_crl))
}

/// `GET /crl/{ca_id}.crl` (DER, `application/pkix-crl`). Public, as RFC 5280 distribution
/// points are.
async fn get_crl(
    State(st): State<AppState>,
    Path(file): Path<String>,
) -> Result<Response, ApiError> {
    let Some(id) = file.strip_suffix(".crl") else {
        return Err(ApiError::not_found("CRLs are at /crl/{ca_id}.crl"));
    };
    let crl = st.crl.current(&st.ca, id).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/pkix-crl".to_string()),
            (
                header::CACHE_CONTROL,
                format!(
                    "public, max-age={}",
                    (crl.next_update - crate::store::now()).clamp(0, 300)
                ),
            ),
        ],
        crl.der,
    )
        .into_response())
}

/// Refresh every CA's CRL before it is half way to nextUpdate, forever (until shutdown).
pub fn spawn_scheduler(st: AppState) {
    let period = std::time::Duration::from_secs((st.cfg.crl_validity as u64 / 4).max(1))
        .max(super::CRL_SCHEDULER_MIN_PERIOD);
    let st = Arc::new(st);
    tokio::spawn(async move {
        loop {
            match st.ca.store.list_cas().await {
                Ok(cas) => {
                    for c in cas {
                        if let Err(e) = st.crl.current(&st.ca, &c.id).await {
                            tracing::warn!(issuer = %c.id, error = %e, "scheduled CRL refresh failed");
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "scheduled CRL refresh: cannot list CAs"),
            }
            tokio::time::sleep(period).await;
        }
    });
}
