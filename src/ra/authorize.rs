//! Plug & Charge authorization for a CSMS (OCPP 2.0.1 `AuthorizeRequest`): is this contract
//! certificate, of whichever e-mobility PKI, good for this eMAID now? The certificate chain is
//! judged by the engine as a *contract* certificate to a trusted MO or V2G root, the leaf's CN
//! must be the `idToken`, and every certificate of the path is checked for revocation: ours in
//! the store, others at their own OCSP responder through the guarded fetcher.

use std::collections::HashMap;
use std::sync::Mutex;

use super::external::OcspAnswer;
use super::{Ra, RaError};
use crate::model::{CertStatus, ContractStatus};
use crate::policy::authz::{Operation, Principal, Target};
use crate::validation::{Failure, Role};
use crate::x509::ParsedCert;

/// OCPP's `certificate` limit (`AuthorizeRequest.certificate`, string[0..5500]).
pub const MAX_CERTIFICATE_CHARS: usize = 5500;

/// How long a verdict about another PKI's chain is reused (its revocation answers are cached
/// longer; a verdict about one of our own certificates is never reused, so a revocation here is
/// seen at once).
const VERDICT_TTL: i64 = 60;
/// Most cached verdicts.
const MAX_VERDICTS: usize = 10_000;

/// One OCPP `OCSPRequestDataType`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OcspRequestData {
    /// `SHA256`, `SHA384` or `SHA512`.
    pub hash_algorithm: String,
    /// Hex hash of the issuer's DER name.
    pub issuer_name_hash: String,
    /// Hex hash of the issuer's public key.
    pub issuer_key_hash: String,
    /// Hex serial number.
    pub serial_number: String,
    /// The responder the certificate names.
    #[serde(rename = "responderURL")]
    pub responder_url: String,
}

/// An authorization question.
#[derive(Debug, Clone, Default)]
pub struct AuthorizeQuery {
    /// `idToken.idToken` (the eMAID).
    pub id_token: String,
    /// The contract certificate chain, PEM, leaf first.
    pub certificate: Option<String>,
    /// `iso15118CertificateHashData`, when no certificate is given.
    pub hash_data: Vec<OcspRequestData>,
}

/// The answer: OCPP `AuthorizeCertificateStatusEnumType` and `AuthorizationStatusEnumType`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizeVerdict {
    /// `certificateStatus` (absent when it could not be decided).
    pub certificate_status: Option<&'static str>,
    /// `idTokenInfo.status`.
    pub id_status: &'static str,
    /// Why, for logs and the caller's `statusInfo`.
    pub reason: String,
}

impl AuthorizeVerdict {
    fn accepted() -> AuthorizeVerdict {
        AuthorizeVerdict {
            certificate_status: Some("Accepted"),
            id_status: "Accepted",
            reason: String::new(),
        }
    }

    fn refused(f: &Failure) -> AuthorizeVerdict {
        let id_status = match f {
            Failure::Expired(_) | Failure::NotYetValid(_) => "Expired",
            Failure::Revoked(_) => "Blocked",
            _ => "Invalid",
        };
        AuthorizeVerdict {
            certificate_status: Some(f.ocpp_status()),
            id_status,
            reason: f.to_string(),
        }
    }

    fn cancelled() -> AuthorizeVerdict {
        AuthorizeVerdict {
            certificate_status: Some("ContractCancelled"),
            id_status: "Invalid",
            reason: "the contract is cancelled".into(),
        }
    }

    fn unknown(why: String) -> AuthorizeVerdict {
        AuthorizeVerdict {
            certificate_status: None,
            id_status: "Unknown",
            reason: why,
        }
    }
}

/// OCPP `hashAlgorithm` as our hash and OpenSSL's digest (SHA-1 is not an OCPP 2.0.1 value).
fn hash_algorithm(
    name: &str,
) -> Result<(crate::alg::HashAlg, openssl::hash::MessageDigest), RaError> {
    use crate::alg::HashAlg;
    use openssl::hash::MessageDigest;
    match name.to_ascii_uppercase().as_str() {
        "SHA256" => Ok((HashAlg::Sha256, MessageDigest::sha256())),
        "SHA384" => Ok((HashAlg::Sha384, MessageDigest::sha384())),
        "SHA512" => Ok((HashAlg::Sha512, MessageDigest::sha512())),
        _ => Err(RaError::bad(
            "bad_hash_algorithm",
            "hashAlgorithm must be SHA256, SHA384 or SHA512",
        )),
    }
}

/// Verdicts about other PKIs' chains, by SHA-256 of (token, chain).
#[derive(Default)]
pub(crate) struct VerdictCache(Mutex<HashMap<[u8; 32], (AuthorizeVerdict, i64)>>);

impl Ra {
    /// A CertID of another PKI (OCPP `OCSPRequestDataType`), asked at its `responderURL` through
    /// the guarded fetcher: the responder's DER answer, verified against the issuer (a trusted
    /// root of ours, or another PKI's CA seen in a validated chain), and what it says. `Err`
    /// with the reason when the issuer is unknown here, or the answer cannot be had or verified.
    pub async fn foreign_status(
        &self,
        d: &OcspRequestData,
    ) -> Result<Result<(Vec<u8>, OcspAnswer), String>, RaError> {
        let (alg, md) = hash_algorithm(&d.hash_algorithm)?;
        let serial = crate::x509::normalize_serial_hex(&d.serial_number)
            .map(|h| if h.len() % 2 == 1 { format!("0{h}") } else { h })
            .and_then(|h| hex::decode(h).ok())
            .ok_or_else(|| RaError::bad("bad_serial", "serialNumber is not hex"))?;
        let trust = self.trust_store().await?;
        let mut known: Vec<ParsedCert> = trust
            .candidates()
            .iter()
            .filter(|c| trust.own_id_of(&c.cert.der).is_none())
            .map(|c| c.cert.clone())
            .collect();
        known.extend(self.inner.external.seen_issuers());
        let issuer = known.into_iter().find(|c| {
            crate::ocsp::wire::issuer_hashes(&c.der, alg).is_ok_and(|(n, k)| {
                hex::encode(n).eq_ignore_ascii_case(d.issuer_name_hash.trim())
                    && hex::encode(k).eq_ignore_ascii_case(d.issuer_key_hash.trim())
            })
        });
        let Some(issuer) = issuer else {
            return Ok(Err(
                "the issuer is not a CA known here (neither trusted nor seen in a validated chain): its answer could not be verified, so its responder is not asked".into(),
            ));
        };
        Ok(self
            .inner
            .external
            .ask_by_id(d.responder_url.trim(), &issuer, &serial, md)
            .await)
    }

    /// OCPP `GetCertificateStatus` for a CertID of another PKI (after our responder found it is
    /// not ours): the other responder's verified DER answer (roles as for OCSP lookups).
    pub async fn foreign_certificate_status(
        &self,
        p: &Principal,
        d: &OcspRequestData,
    ) -> Result<Result<Vec<u8>, String>, RaError> {
        self.authorize(p, Operation::OcspLookup, Target::Any, "ocsp")
            .await?;
        Ok(self.foreign_status(d).await?.map(|(der, _)| der))
    }

    /// Answer an OCPP `AuthorizeRequest` for a contract (roles `csms` and `cpo`; contract
    /// certificates belong to no CPO, so no tenant applies). See the module.
    pub async fn authorize_contract(
        &self,
        p: &Principal,
        q: AuthorizeQuery,
    ) -> Result<AuthorizeVerdict, RaError> {
        self.authorize(p, Operation::AuthorizeContract, Target::Any, "authorize")
            .await?;
        if let Some(pem) = q.certificate.as_deref().filter(|c| !c.trim().is_empty()) {
            if pem.len() > MAX_CERTIFICATE_CHARS {
                return Err(RaError::bad(
                    "certificate_too_long",
                    format!("certificate is longer than OCPP's {MAX_CERTIFICATE_CHARS} characters"),
                ));
            }
            return self.authorize_chain(&q.id_token, pem).await;
        }
        if !q.hash_data.is_empty() {
            if q.hash_data.len() > 4 {
                return Err(RaError::bad(
                    "too_many_hashes",
                    "iso15118CertificateHashData holds 1 to 4 entries",
                ));
            }
            return self.authorize_hashes(&q.hash_data).await;
        }
        Ok(AuthorizeVerdict {
            certificate_status: Some("NoCertificateAvailable"),
            id_status: "Invalid",
            reason: "neither certificate nor iso15118CertificateHashData".into(),
        })
    }

    async fn authorize_chain(
        &self,
        id_token: &str,
        pem: &str,
    ) -> Result<AuthorizeVerdict, RaError> {
        let key: [u8; 32] = {
            use sha2::Digest;
            let mut h = sha2::Sha256::new();
            h.update(id_token.as_bytes());
            h.update([0]);
            h.update(pem.as_bytes());
            h.finalize().into()
        };
        let now = self.now();
        if let Some((v, exp)) = self
            .inner
            .verdicts
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            && *exp > now
        {
            return Ok(v.clone());
        }
        let chain = match ParsedCert::chain_from_pem(pem.as_bytes()) {
            Ok(c) if !c.is_empty() && c.len() <= 5 => c,
            Ok(_) => {
                return Ok(AuthorizeVerdict::refused(&Failure::Malformed(
                    "certificate holds no certificate, or more than 5".into(),
                )));
            }
            Err(e) => {
                return Ok(AuthorizeVerdict::refused(&Failure::Malformed(
                    e.to_string(),
                )));
            }
        };
        let leaf = chain[0].der.clone();
        let presented: Vec<Vec<u8>> = chain[1..].iter().map(|c| c.der.clone()).collect();
        let verdict = match self.judge(&leaf, &presented, Role::Contract).await? {
            Ok(j) => {
                let cn = super::contracts::common_name(j.path.leaf()).unwrap_or_default();
                let emaid_ok = match (
                    super::contracts::normalize_emaid(&cn),
                    super::contracts::normalize_emaid(id_token),
                ) {
                    (Ok(a), Ok(b)) => a == b,
                    _ => false,
                };
                if !emaid_ok {
                    AuthorizeVerdict {
                        certificate_status: Some("CertChainError"),
                        id_status: "Invalid",
                        reason: format!(
                            "the certificate is for eMAID {}, not for the idToken",
                            cn.chars().take(32).collect::<String>()
                        ),
                    }
                } else if let Some(rec) = &j.own
                    && self
                        .contract_cancelled(&rec.issuer_id, &rec.serial_hex)
                        .await?
                {
                    AuthorizeVerdict::cancelled()
                } else {
                    let v = AuthorizeVerdict::accepted();
                    if j.own.is_none() && j.path.issued_by_us().is_empty() {
                        self.remember_verdict(key, &v, now);
                    }
                    v
                }
            }
            Err(Failure::RevocationUnknown(why)) => {
                if self.inner.authorize_unreachable_accept {
                    tracing::warn!(reason = %why, "contract authorized although its revocation is unknown (PNC_AUTHORIZE_UNREACHABLE=accept)");
                    AuthorizeVerdict::accepted()
                } else {
                    AuthorizeVerdict::unknown(why)
                }
            }
            Err(f @ Failure::Revoked(_)) => {
                // Ours and revoked because its contract was cancelled: say so.
                match self.record_by_bytes(&leaf).await? {
                    Some(rec)
                        if self
                            .contract_cancelled(&rec.issuer_id, &rec.serial_hex)
                            .await? =>
                    {
                        AuthorizeVerdict::cancelled()
                    }
                    _ => AuthorizeVerdict::refused(&f),
                }
            }
            Err(f) => AuthorizeVerdict::refused(&f),
        };
        tracing::info!(certificate_status = ?verdict.certificate_status, id_status = verdict.id_status, reason = %verdict.reason, "contract authorization");
        Ok(verdict)
    }

    fn remember_verdict(&self, key: [u8; 32], v: &AuthorizeVerdict, now: i64) {
        let mut c = self
            .inner
            .verdicts
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if c.len() >= MAX_VERDICTS {
            c.retain(|_, (_, exp)| *exp > now);
            if c.len() >= MAX_VERDICTS {
                c.clear();
            }
        }
        c.insert(key, (v.clone(), now + VERDICT_TTL));
    }

    async fn contract_cancelled(&self, issuer: &str, serial: &str) -> Result<bool, RaError> {
        let Some(id) = self
            .inner
            .store
            .contract_of_certificate(issuer, serial)
            .await?
        else {
            return Ok(false);
        };
        Ok(self
            .inner
            .store
            .get_contract(&id)
            .await?
            .is_some_and(|c| c.status == ContractStatus::Cancelled))
    }

    /// Hash data only: each CertID issued by one of our CAs is answered from the store; one of
    /// another PKI at its `responderURL` through the guarded fetcher, when its issuer is a CA
    /// we know (a trusted root, or a sub-CA of a chain validated before): the answer's
    /// signature must verify against it. An unknown issuer is `Unknown`, and its responder is
    /// not contacted.
    async fn authorize_hashes(
        &self,
        data: &[OcspRequestData],
    ) -> Result<AuthorizeVerdict, RaError> {
        let trust = self.trust_store().await?;
        for d in data {
            let (alg, _) = hash_algorithm(&d.hash_algorithm)?;
            let mut ours = None;
            for c in trust.candidates() {
                let Some(id) = trust.own_id_of(&c.cert.der) else {
                    continue;
                };
                let Ok((name_hash, key_hash)) = crate::ocsp::wire::issuer_hashes(&c.cert.der, alg)
                else {
                    continue;
                };
                if hex::encode(name_hash).eq_ignore_ascii_case(d.issuer_name_hash.trim())
                    && hex::encode(key_hash).eq_ignore_ascii_case(d.issuer_key_hash.trim())
                {
                    ours = Some(id.to_string());
                    break;
                }
            }
            let Some(ca_id) = ours else {
                // Another PKI's: asked at its responder, when its issuer is one we know.
                match self.foreign_status(d).await? {
                    Ok((_, OcspAnswer::Good { .. })) => continue,
                    Ok((_, OcspAnswer::Revoked { reason, .. })) => {
                        return Ok(AuthorizeVerdict::refused(&Failure::Revoked(format!(
                            "revoked at its responder ({reason})"
                        ))));
                    }
                    Ok((_, OcspAnswer::Unknown { .. })) => {
                        return Ok(AuthorizeVerdict::unknown(
                            "the responder does not know the certificate".into(),
                        ));
                    }
                    Err(why) if self.inner.authorize_unreachable_accept => {
                        tracing::warn!(reason = %why, "contract authorized although its revocation is unknown (PNC_AUTHORIZE_UNREACHABLE=accept)");
                        continue;
                    }
                    Err(why) => return Ok(AuthorizeVerdict::unknown(why)),
                }
            };
            let serial = crate::x509::normalize_serial_hex(&d.serial_number)
                .ok_or_else(|| RaError::bad("bad_serial", "serialNumber is not hex"))?;
            let rec = self.inner.store.get_cert(&ca_id, &serial).await?;
            let f = match rec {
                None => Some(Failure::Unrecorded(format!(
                    "no certificate {serial} of {ca_id}"
                ))),
                Some(r) if r.status == CertStatus::Revoked => {
                    if self.contract_cancelled(&r.issuer_id, &r.serial_hex).await? {
                        return Ok(AuthorizeVerdict::cancelled());
                    }
                    Some(Failure::Revoked(format!("{serial} is revoked")))
                }
                Some(r) if r.not_after <= self.now() => {
                    Some(Failure::Expired(format!("{serial} has expired")))
                }
                Some(_) => None,
            };
            if let Some(f) = f {
                return Ok(AuthorizeVerdict::refused(&f));
            }
        }
        Ok(AuthorizeVerdict::accepted())
    }
}
