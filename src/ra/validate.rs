//! The RA's side of the validation engine ([`crate::validation`]): the trust store it builds
//! from the store (our roots and sub-CAs, current and retired keys, and the roots the operator
//! trusts), and the revocation of our own certificates, looked up by their bytes.

use std::sync::Arc;

use super::{Ra, RaError};
use crate::model::{CertRecord, CertStatus, RootKind};
use crate::validation::{
    self, AnchorKind, ExternalStatus, Failure, RevocationSource, Role, TrustStore, UnknownPolicy,
    ValidPath,
};

/// How long a built [`TrustStore`] is used before it is read again: a root trusted or removed
/// by another process (the CLI), or a rollover, takes effect within this time; in this
/// process, at once.
const TRUST_TTL: std::time::Duration = std::time::Duration::from_secs(2);

/// A validated certificate: its path, and our record of the leaf when one of our CAs issued it.
#[derive(Debug)]
pub(crate) struct Judged {
    /// The path, leaf first.
    pub(crate) path: ValidPath,
    /// Our record of the leaf (found by its bytes), if we issued it.
    pub(crate) own: Option<CertRecord>,
}

impl Ra {
    /// The current trust store (built again after [`TRUST_TTL`]).
    pub(crate) async fn trust_store(&self) -> Result<Arc<TrustStore>, RaError> {
        self.trust_store_within(TRUST_TTL).await
    }

    /// The trust store, built again when the cached one is older than `max_age`.
    async fn trust_store_within(
        &self,
        max_age: std::time::Duration,
    ) -> Result<Arc<TrustStore>, RaError> {
        if let Some((at, t)) = self
            .inner
            .trust
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            && at.elapsed() < max_age
        {
            return Ok(t.clone());
        }
        let mut t = TrustStore::new();
        for r in self.inner.store.list_trusted_roots().await? {
            let kind = match r.kind {
                RootKind::Oem => AnchorKind::Oem,
                RootKind::V2g => AnchorKind::V2g,
                RootKind::Mo => AnchorKind::Mo,
            };
            t.add_anchor(&r.der, kind, None);
        }
        let mut cas = self.inner.store.list_cas().await?;
        cas.extend(self.inner.store.retired_ca_keys(None, self.now()).await?);
        for ca in &cas {
            match (&ca.parent_id, AnchorKind::of_profile(&ca.profile)) {
                (None, Some(kind)) => t.add_anchor(&ca.cert_der, kind, Some(ca.id.clone())),
                // A root of ours that anchors no role (none today) is still ours.
                (None, None) => t.add_own_ca(&ca.cert_der, &ca.id, &ca.profile),
                (Some(_), _) => t.add_own_ca(&ca.cert_der, &ca.id, &ca.profile),
            }
        }
        let t = Arc::new(t);
        *self.inner.trust.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((std::time::Instant::now(), t.clone()));
        Ok(t)
    }

    /// Forget the cached trust store (a root was trusted or removed in this process).
    pub(crate) fn forget_trust(&self) {
        *self.inner.trust.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Judge a certificate that arrived from outside in `role`: the engine's path validation
    /// (with `presented` as candidate intermediates), then the revocation of every certificate
    /// of the path that our CAs issued, from the store by its bytes (one signed by our key that
    /// we have no identical record of is refused), and of the others from the external source.
    /// The outer error is a fault on our side; the inner one the certificate's refusal.
    pub(crate) async fn judge(
        &self,
        leaf: &[u8],
        presented: &[Vec<u8>],
        role: Role,
    ) -> Result<Result<Judged, Failure>, RaError> {
        let req = validation::Request {
            leaf,
            presented,
            role,
            at: self.now(),
        };
        let trust = self.trust_store().await?;
        let path = match validation::validate(&trust, &self.inner.profiles, &req) {
            Ok(p) => p,
            Err(_) => {
                // A root trusted (or a CA rolled over) by another process a moment ago is not in
                // a cached store: a refusal is decided again on a fresh one (at most one
                // rebuild per 100 ms, whatever refusals cost the caller).
                let fresh = self
                    .trust_store_within(std::time::Duration::from_millis(100))
                    .await?;
                match validation::validate(&fresh, &self.inner.profiles, &req) {
                    Ok(p) => p,
                    Err(f) => return Ok(Err(f)),
                }
            }
        };
        let mut own = None;
        for (i, (cert, ca_id)) in path.issued_by_us().into_iter().enumerate() {
            let rec = self
                .inner
                .store
                .get_cert(ca_id, &cert.serial_hex())
                .await?
                .filter(|r| r.der == cert.der);
            let Some(rec) = rec else {
                return Ok(Err(Failure::Unrecorded(format!(
                    "{} (serial {}) is signed by our CA {ca_id} but is not the certificate we recorded",
                    cert.subject_string(),
                    cert.serial_hex()
                ))));
            };
            if rec.status == CertStatus::Revoked {
                return Ok(Err(Failure::Revoked(format!(
                    "{} (serial {}) is revoked{}",
                    cert.subject_string(),
                    rec.serial_hex,
                    rec.revocation_reason
                        .map(|r| format!(" ({})", r.name()))
                        .unwrap_or_default()
                ))));
            }
            if i == 0 && cert.der == leaf {
                own = Some(rec);
            }
        }
        for (cert, issuer) in path.issued_by_others() {
            self.inner.external.saw_issuer(issuer);
            match self.inner.external.status(cert, issuer).await {
                ExternalStatus::Good => {}
                ExternalStatus::NoSource => {
                    tracing::info!(subject = %cert.subject_string(), "a certificate of another PKI names no revocation source");
                }
                ExternalStatus::Revoked(why) => {
                    return Ok(Err(Failure::Revoked(format!(
                        "{} is revoked at its responder: {why}",
                        cert.subject_string()
                    ))));
                }
                ExternalStatus::Unknown(why) => {
                    if self.inner.external.policy == UnknownPolicy::BestEffort {
                        tracing::warn!(subject = %cert.subject_string(), reason = %why, "revocation status unknown; accepted (PNC_EXTERNAL_REVOCATION=best-effort)");
                        continue;
                    }
                    return Ok(Err(Failure::RevocationUnknown(format!(
                        "{}: {why}",
                        cert.subject_string()
                    ))));
                }
            }
        }
        Ok(Ok(Judged { path, own }))
    }

    /// Our record of a certificate, found by its bytes (issuer by key, then serial, then the
    /// whole DER compared): never by issuer name and serial alone.
    pub(crate) async fn record_by_bytes(&self, der: &[u8]) -> Result<Option<CertRecord>, RaError> {
        let Ok(cert) = crate::x509::ParsedCert::from_der(der) else {
            return Ok(None);
        };
        let trust = self.trust_store().await?;
        for c in trust.candidates() {
            if !validation::names_match(&cert.issuer_der(), &c.cert.subject_der()) {
                continue;
            }
            let Some(id) = trust.own_id_of(&c.cert.der) else {
                continue;
            };
            if let Some(rec) = self.inner.store.get_cert(id, &cert.serial_hex()).await?
                && rec.der == der
            {
                return Ok(Some(rec));
            }
        }
        Ok(None)
    }
}

impl Ra {
    /// Revoke a certificate the caller presents (OPNC `revokeCertificate`): found by its exact
    /// bytes among ours, never by issuer name and serial alone; then revoked as
    /// [`Ra::revoke`] does, with its role and tenant checks.
    pub async fn revoke_presented(
        &self,
        p: &crate::policy::authz::Principal,
        der: &[u8],
        reason: &str,
    ) -> Result<super::Revocation, RaError> {
        let rec = self.record_by_bytes(der).await?.ok_or_else(|| {
            RaError::NotFound("no certificate issued by this service has these bytes".into())
        })?;
        self.revoke(p, &rec.issuer_id, &rec.serial_hex, reason)
            .await
    }
}

/// A refusal of an uploaded certificate (pool, contract data) for `f`: the engine's code.
pub(crate) fn upload_refusal(what: &str, f: Failure) -> RaError {
    RaError::bad(f.code(), format!("{what}: {f}"))
}
