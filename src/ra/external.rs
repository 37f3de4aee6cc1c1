//! Other PKIs' revocation: the engine's external [`RevocationSource`], asking a certificate's
//! own OCSP responder (or, without one, its CRL) through the guarded fetcher.
//!
//! Verified answers are cached per CertID until their `nextUpdate` (at most 24 h; 1 h without
//! one), bounded in entries; concurrent checks of one CertID share one fetch (single flight). A
//! responder that cannot be reached or whose answer does not verify is *unknown* (never good),
//! remembered for 30 s so that a dead responder costs one fetch budget per 30 s, not one per
//! request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::fetch::{self, Fetcher};
use crate::validation::ocsp;
pub use crate::validation::ocsp::OcspAnswer;
use crate::validation::{ExternalStatus, RevocationSource, UnknownPolicy};
use crate::x509::ParsedCert;

/// Longest a verified answer is used.
const MAX_AGE: i64 = 24 * 3600;
/// How long an answer without `nextUpdate` is used.
const NO_NEXT_UPDATE: i64 = 3600;
/// How long an unreachable responder is not asked again.
const NEGATIVE: i64 = 30;
/// Most cached statuses.
const MAX_ENTRIES: usize = 100_000;

type Cell = Arc<tokio::sync::OnceCell<(ExternalStatus, i64)>>;

/// The external revocation source (see the module).
pub struct External {
    /// The guarded fetcher.
    pub fetcher: Arc<Fetcher>,
    /// What an unknown status means.
    pub policy: UnknownPolicy,
    cache: Mutex<HashMap<Vec<u8>, (ExternalStatus, i64)>>,
    inflight: Mutex<HashMap<Vec<u8>, Cell>>,
    clock: crate::clock::SharedClock,
    /// Other PKIs' CA certificates seen in validated paths, by SHA-256 of their DER: the
    /// issuers that OCSP hash data of their certificates names (at most 1,000).
    issuers: Mutex<HashMap<[u8; 32], ParsedCert>>,
}

impl External {
    /// A source fetching through `fetcher`.
    pub fn new(
        fetcher: Arc<Fetcher>,
        policy: UnknownPolicy,
        clock: crate::clock::SharedClock,
    ) -> External {
        External {
            fetcher,
            policy,
            cache: Mutex::new(HashMap::new()),
            inflight: Mutex::new(HashMap::new()),
            clock,
            issuers: Mutex::new(HashMap::new()),
        }
    }

    fn now(&self) -> i64 {
        self.clock.now()
    }

    /// The cached status of `key`, if still fresh.
    fn cached(&self, key: &[u8]) -> Option<ExternalStatus> {
        let now = self.now();
        let c = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        c.get(key)
            .filter(|(_, exp)| *exp > now)
            .map(|(s, _)| s.clone())
    }

    fn remember(&self, key: Vec<u8>, st: ExternalStatus, until: i64) {
        let mut c = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if c.len() >= MAX_ENTRIES {
            let now = self.now();
            c.retain(|_, (_, exp)| *exp > now);
            if c.len() >= MAX_ENTRIES {
                c.clear();
            }
        }
        c.insert(key, (st, until));
    }

    /// Remember another PKI's CA certificate that a validated path went through.
    pub fn saw_issuer(&self, issuer: &ParsedCert) {
        let k: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(&issuer.der).into();
        let mut m = self.issuers.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() >= 1000 && !m.contains_key(&k) {
            m.clear();
        }
        m.insert(k, issuer.clone());
    }

    /// Other PKIs' CA certificates seen in validated paths.
    pub fn seen_issuers(&self) -> Vec<ParsedCert> {
        self.issuers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Ask `url` about the certificate `serial` of `issuer` (a CertID hashed with `md`): the
    /// responder's DER answer and what it says, once it verifies.
    pub async fn ask_by_id(
        &self,
        url: &str,
        issuer: &ParsedCert,
        serial: &[u8],
        md: openssl::hash::MessageDigest,
    ) -> Result<(Vec<u8>, OcspAnswer), String> {
        let stand_in = ocsp::stand_in(issuer, serial).map_err(|e| e.to_string())?;
        let req = ocsp::request(&stand_in, issuer, md).map_err(|e| e.to_string())?;
        let body = self
            .fetcher
            .post(
                url,
                "application/ocsp-request",
                req,
                fetch::MAX_OCSP_RESPONSE,
            )
            .await
            .map_err(|e| format!("OCSP responder {}: {e}", short(url)))?;
        let a = ocsp::verify(&body, &stand_in, issuer, md, self.now())
            .map_err(|e| format!("OCSP responder {}: {e}", short(url)))?;
        Ok((body, a))
    }

    /// Ask `cert`'s responder (or CRL) once, for every concurrent caller.
    async fn ask(&self, cert: &ParsedCert, issuer: &ParsedCert) -> (ExternalStatus, i64) {
        let now = self.now();
        if let Some(url) = ocsp::responder_url(cert) {
            return self.ask_ocsp(&url, cert, issuer, now).await;
        }
        if let Some(url) = ocsp::crl_url(cert) {
            return self.ask_crl(&url, cert, issuer, now).await;
        }
        (ExternalStatus::NoSource, now + MAX_AGE)
    }

    async fn ask_ocsp(
        &self,
        url: &str,
        cert: &ParsedCert,
        issuer: &ParsedCert,
        now: i64,
    ) -> (ExternalStatus, i64) {
        let req = match ocsp::request(cert, issuer, openssl::hash::MessageDigest::sha1()) {
            Ok(r) => r,
            Err(e) => return (ExternalStatus::Unknown(e.to_string()), now + NEGATIVE),
        };
        let body = match self
            .fetcher
            .post(
                url,
                "application/ocsp-request",
                req,
                fetch::MAX_OCSP_RESPONSE,
            )
            .await
        {
            Ok(b) => b,
            Err(e) => {
                return (
                    ExternalStatus::Unknown(format!("OCSP responder {}: {e}", short(url))),
                    now + NEGATIVE,
                );
            }
        };
        match ocsp::verify(
            &body,
            cert,
            issuer,
            openssl::hash::MessageDigest::sha1(),
            now,
        ) {
            Ok(a) => {
                let (st, next) = match a {
                    OcspAnswer::Good { next_update } => (ExternalStatus::Good, next_update),
                    OcspAnswer::Revoked {
                        reason,
                        next_update,
                    } => (ExternalStatus::Revoked(reason), next_update),
                    OcspAnswer::Unknown { next_update } => (
                        ExternalStatus::Unknown(format!(
                            "OCSP responder {} does not know the certificate",
                            short(url)
                        )),
                        next_update,
                    ),
                };
                let until = next
                    .unwrap_or(now + NO_NEXT_UPDATE)
                    .min(now + MAX_AGE)
                    .max(now + 1);
                (st, until)
            }
            Err(e) => {
                tracing::warn!(responder = %short(url), error = %e, "an OCSP answer did not verify");
                (
                    ExternalStatus::Unknown(format!("OCSP responder {}: {e}", short(url))),
                    now + NEGATIVE,
                )
            }
        }
    }

    async fn ask_crl(
        &self,
        url: &str,
        cert: &ParsedCert,
        issuer: &ParsedCert,
        now: i64,
    ) -> (ExternalStatus, i64) {
        let unknown = |why: String| (ExternalStatus::Unknown(why), now + NEGATIVE);
        let body = match self.fetcher.get(url, fetch::MAX_CRL).await {
            Ok(b) => b,
            Err(e) => return unknown(format!("CRL {}: {e}", short(url))),
        };
        let check = || -> Result<(ExternalStatus, i64), String> {
            let crl = openssl::x509::X509Crl::from_der(&body).map_err(|e| e.to_string())?;
            let key = openssl::pkey::PKey::public_key_from_der(&issuer.spki_der())
                .map_err(|e| e.to_string())?;
            if !crl.verify(&key).map_err(|e| e.to_string())? {
                return Err("not signed by the certificate's issuer".into());
            }
            if !crate::validation::names_match(&crl_issuer_der(&crl)?, &issuer.subject_der()) {
                return Err("issued by another CA".into());
            }
            let base = openssl::asn1::Asn1Time::from_unix(now).map_err(|e| e.to_string())?;
            let next = match crl.next_update() {
                Some(t) => {
                    let d = base.diff(t).map_err(|e| e.to_string())?;
                    let n = now + i64::from(d.days) * 86_400 + i64::from(d.secs);
                    if n < now {
                        return Err("nextUpdate has passed".into());
                    }
                    Some(n)
                }
                None => None,
            };
            let serial = openssl::bn::BigNum::from_slice(cert.tbs().serial_number().as_bytes())
                .and_then(|b| b.to_asn1_integer())
                .map_err(|e| e.to_string())?;
            let st = match crl.get_by_serial(&serial) {
                openssl::x509::CrlStatus::NotRevoked => ExternalStatus::Good,
                _ => ExternalStatus::Revoked("listed on its CRL".into()),
            };
            Ok((
                st,
                next.unwrap_or(now + NO_NEXT_UPDATE)
                    .min(now + MAX_AGE)
                    .max(now + 1),
            ))
        };
        check().unwrap_or_else(|e| unknown(format!("CRL {}: {e}", short(url))))
    }
}

fn crl_issuer_der(crl: &openssl::x509::X509Crl) -> Result<Vec<u8>, String> {
    crl.issuer_name().to_der().map_err(|e| e.to_string())
}

/// A URL for logs and messages: scheme, host and port only.
fn short(url: &str) -> String {
    url::Url::parse(url)
        .map(|u| format!("{}://{}", u.scheme(), u.host_str().unwrap_or("?")))
        .unwrap_or_else(|_| "?".into())
}

impl RevocationSource for External {
    async fn status(&self, cert: &ParsedCert, issuer: &ParsedCert) -> ExternalStatus {
        let key = ocsp::cache_key(cert, issuer);
        if let Some(s) = self.cached(&key) {
            return s;
        }
        let cell = self
            .inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key.clone())
            .or_default()
            .clone();
        let (st, until) = cell.get_or_init(|| self.ask(cert, issuer)).await.clone();
        {
            let mut m = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
            if m.get(&key).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
                m.remove(&key);
            }
        }
        self.remember(key, st.clone(), until);
        st
    }
}
