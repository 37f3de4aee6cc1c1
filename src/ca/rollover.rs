//! CA key rollover (`pnc-pki ca rollover`): a CA gets a new key and a new certificate with the
//! same name, and issues with it from the commit on, without downtime.
//!
//! The CA keeps its id. Its keys are generations (1 = the key `init` made); the store switches
//! the CA row to the new generation and moves the old one to the retired keys in one transaction
//! with the new CA certificate and its audit entry. A retired key stays in the token and keeps
//! answering for what it signed, until its certificate expires (leaves never outlive their
//! issuer): OCSP under its own CertID hashes (signed by its delegated signer while that lasts,
//! then by the retired key itself) and its own CRL at the distribution point its certificates
//! carry. Certificates and sub-CAs it signed stay valid and chain to its certificate.
//!
//! A CA signed by an issuer we do not hold (a V2G root operated elsewhere) cannot be re-signed
//! here: its rollover is in two steps, a CSR for the new key, then the import of the certificate
//! its owner signed, which makes the switch.

use super::bootstrap::{ca_record, cert_record, key_label, ocsp_signer_profile};
use super::build::{Signer, build_certificate};
use super::{Ca, CaError, IssuerHandle};
use crate::hsm::{KeyRef, PublicKey};
use crate::model::AuditEvent;
use crate::x509::{self, ParsedCert};

/// What a rollover did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Rollover {
    /// The CA.
    pub ca: String,
    /// Its new key generation.
    pub generation: i64,
    /// CKA_ID of the new key, hex.
    pub key_id: String,
    /// Subject key identifier of the new certificate, hex (the authority key identifier of
    /// everything issued from now on).
    pub subject_key_identifier: String,
    /// Serial of the new CA certificate, hex.
    pub serial_hex: String,
    /// Validity end of the new CA certificate, unix seconds.
    pub not_after: i64,
    /// The new CA certificate, PEM.
    pub certificate_pem: String,
    /// The retired generation.
    pub previous_generation: i64,
    /// Subject key identifier of the retired certificate, hex.
    pub previous_subject_key_identifier: String,
    /// Until when the retired key keeps answering OCSP and signing CRLs, unix seconds.
    pub previous_serves_until: i64,
    /// Where the new key's CRL is published.
    pub crl_url: String,
    /// What happened to the delegated OCSP signer (a new one under the new key, or none).
    pub ocsp_signer: String,
}

/// The token label of key generation `generation` of CA `id` (the first keeps `init`'s label).
fn generation_label(id: &str, generation: i64) -> String {
    if generation <= 1 {
        key_label("ca", id)
    } else {
        key_label("ca", &format!("{id}:g{generation}"))
    }
}

impl Ca {
    /// Roll CA `ca_id` over to a new key: generate it in the token, have the parent (or, for a
    /// root, the new key itself) sign a certificate with the same name and profile, and switch
    /// issuance to it. Refused for a CA signed by an issuer we do not hold (see
    /// [`Ca::rollover_csr`]).
    pub async fn rollover(&self, ca_id: &str, actor: &str) -> Result<Rollover, CaError> {
        let old = self.issuer(ca_id).await?;
        if is_external(&old) {
            return Err(CaError::Config(format!(
                "CA '{ca_id}' is signed by an issuer this service does not hold: run `pnc-pki ca \
                 rollover --ca {ca_id} --csr-out FILE`, have the CSR signed, then `pnc-pki ca \
                 rollover --ca {ca_id} --cert FILE`"
            )));
        }
        let profile = self.inner.profiles.get(&old.record.profile)?.clone();
        let generation = old.record.generation + 1;
        let (key, public) = self.generation_key(&old, generation).await?;
        let spki = x509::spki_owned(public.alg, &public.point)?;
        let parent = match &old.record.parent_id {
            Some(p) => Some(self.issuer(p).await?),
            None => None,
        };
        // The same lifetime as the certificate it replaces, within what the profile allows.
        let days = ((old.cert.not_after() - old.cert.not_before()) / 86_400)
            .clamp(1, i64::from(profile.validity.max_days));
        let days = u32::try_from(days).unwrap_or(profile.validity.max_days);
        let signer = match &parent {
            Some(h) => Signer::Issuer(h),
            None => Signer::SelfSigned {
                key: &key,
                public: &public,
            },
        };
        let name = old.cert.tbs().subject().as_ref().clone();
        let cert = build_certificate(self, &profile, signer, &name, &[], &spki, Some(days)).await?;
        let (issuer_id, issuer_generation) = match &parent {
            Some(p) => (p.record.id.clone(), p.record.generation),
            None => (ca_id.to_string(), generation),
        };
        self.switch(
            &old,
            key,
            cert,
            None,
            (&issuer_id, issuer_generation),
            actor,
        )
        .await
    }

    /// First step of the rollover of a CA signed elsewhere: the new key (made in the token, or
    /// the one an earlier call made) and a PKCS#10 request for it with the CA's name, as PEM.
    pub async fn rollover_csr(&self, ca_id: &str, actor: &str) -> Result<String, CaError> {
        let old = self.issuer(ca_id).await?;
        let generation = old.record.generation + 1;
        let (key, public) = self.generation_key(&old, generation).await?;
        let pem = self
            .ca_csr(&key, &public, old.cert.tbs().subject().as_ref())
            .await?;
        self.inner
            .store
            .audit(&AuditEvent::new(
                actor,
                "ca.rollover.csr",
                ca_id,
                serde_json::json!({"generation": generation, "key_id": hex::encode(&key.id)}),
            ))
            .await?;
        Ok(pem)
    }

    /// Second step: import the certificate the issuer's owner signed for the key of
    /// [`Ca::rollover_csr`] and switch to it. `issuer_chain_pem` (issuer first) replaces the
    /// recorded external chain when the issuer's chain changed too.
    pub async fn rollover_import(
        &self,
        ca_id: &str,
        cert_pem: &[u8],
        issuer_chain_pem: Option<&[u8]>,
        actor: &str,
    ) -> Result<Rollover, CaError> {
        let old = self.issuer(ca_id).await?;
        let generation = old.record.generation + 1;
        let label = generation_label(ca_id, generation);
        let (key, public) = self
            .hsm_call(move |h| h.find_key_by_label(&label))
            .await?
            .ok_or_else(|| {
                CaError::Config(format!(
                    "no new key for CA '{ca_id}' on the token: run `pnc-pki ca rollover --ca \
                     {ca_id} --csr-out FILE` first"
                ))
            })?;
        let cert = ParsedCert::from_pem(cert_pem)
            .map_err(|e| CaError::Config(format!("certificate: {e}")))?;
        if cert.spki_der() != x509::spki_der(public.alg, &public.point)? {
            return Err(CaError::Config(format!(
                "the certificate's public key is not the new key of CA '{ca_id}'"
            )));
        }
        if cert.subject_der() != old.cert.subject_der() {
            return Err(CaError::Config(format!(
                "the certificate's subject ({}) is not CA '{ca_id}''s ({})",
                cert.subject_string(),
                old.cert.subject_string()
            )));
        }
        let profile = self.inner.profiles.get(&old.record.profile)?.clone();
        super::external::check_ca_shape(&cert, &profile)?;
        // Signed by our parent (its current key), or by the first certificate of the chain
        // given now or recorded at import.
        let (issuer_id, issuer_generation, chain) = match &old.record.parent_id {
            Some(p) => {
                let h = self.issuer(p).await?;
                super::build::verify_signed_by(&cert.der, &h.cert.spki_der())
                    .map_err(|_| not_signed_by_issuer())?;
                (p.clone(), h.record.generation, None)
            }
            None => {
                let pem = match issuer_chain_pem {
                    Some(c) => String::from_utf8_lossy(c).into_owned(),
                    None => old.record.external_chain.clone().ok_or_else(|| {
                        CaError::Config("give the issuer's chain with --issuer-chain".into())
                    })?,
                };
                let first = ParsedCert::chain_from_pem(pem.as_bytes())
                    .map_err(|e| CaError::Config(format!("issuer chain: {e}")))?
                    .into_iter()
                    .next()
                    .ok_or_else(|| CaError::Config("issuer chain is empty".into()))?;
                if first.subject_der() != cert.issuer_der() {
                    return Err(CaError::Config(
                        "the first certificate of the issuer chain did not issue this certificate"
                            .into(),
                    ));
                }
                super::build::verify_signed_by(&cert.der, &first.spki_der())
                    .map_err(|_| not_signed_by_issuer())?;
                (ca_id.to_string(), generation, Some(pem))
            }
        };
        self.switch(
            &old,
            key,
            cert,
            chain,
            (&issuer_id, issuer_generation),
            actor,
        )
        .await
    }

    /// The key of generation `generation` of `old`'s CA: one an earlier, interrupted call made
    /// (so a retry does not orphan it on the token), else a new one.
    async fn generation_key(
        &self,
        old: &IssuerHandle,
        generation: i64,
    ) -> Result<(KeyRef, PublicKey), CaError> {
        let label = generation_label(&old.record.id, generation);
        let alg = old.record.key_alg;
        let old_id = old.key.id.clone();
        let (key, public) = self
            .hsm_call(move |h| match h.find_key_by_label(&label)? {
                Some(found) if found.0.alg == alg && found.0.id != old_id => Ok(found),
                _ => h.generate_ca_key(alg, &label),
            })
            .await?;
        Ok((key, public))
    }

    /// Record the switch of `old`'s CA to `key` and its certificate `cert` (signed by key
    /// generation `issuer.1` of `issuer.0`), then give the new key a delegated OCSP signer (when
    /// the old one had one) and a first CRL.
    async fn switch(
        &self,
        old: &IssuerHandle,
        key: KeyRef,
        cert: ParsedCert,
        external_chain: Option<String>,
        issuer: (&str, i64),
        actor: &str,
    ) -> Result<Rollover, CaError> {
        let ca_id = old.record.id.clone();
        let generation = old.record.generation + 1;
        let now = self.now();
        let external_chain = external_chain.or_else(|| old.record.external_chain.clone());
        let rec = ca_record(
            &ca_id,
            &old.record.profile,
            old.record.parent_id.clone(),
            &key,
            &cert,
            external_chain,
            generation,
            now,
        );
        let cert_rec = cert_record(
            &cert,
            issuer.0,
            issuer.1,
            &old.record.profile,
            Some(&rec.key_id),
            now,
        );
        let ski = hex::encode(cert.ski().unwrap_or_default());
        let old_ski = hex::encode(old.cert.ski().unwrap_or_default());
        let event = AuditEvent::new(
            actor,
            "ca.rollover",
            &ca_id,
            serde_json::json!({
                "generation": generation,
                "key_id": rec.key_id,
                "serial": rec.serial_hex,
                "subject_key_identifier": ski,
                "previous_generation": old.record.generation,
                "previous_key_id": old.record.key_id,
                "previous_serial": old.record.serial_hex,
                "previous_not_after": old.record.not_after,
            }),
        );
        self.inner
            .store
            .record_rollover(&rec, &cert_rec, &event)
            .await?;
        self.announce_issued(&cert_rec);
        tracing::info!(ca = %ca_id, generation, "CA rolled over to a new key");

        // From here on the switch has happened; what follows is best effort and repaired by the
        // background jobs (signer renewal, CRL scheduler) if it fails.
        let signer_profile =
            ocsp_signer_profile(self.inner.profiles.get(&old.record.profile)?.standard);
        let had_signer = self
            .inner
            .store
            .current_service_cert(signer_profile, &ca_id, Some(old.record.generation))
            .await?
            .is_some();
        let ocsp_signer = if had_signer {
            match self.ensure_ocsp_signer(&ca_id, true, actor).await {
                Ok(step) => step.detail,
                Err(e) => {
                    tracing::warn!(ca = %ca_id, error = %e, "no delegated OCSP signer for the new key yet");
                    format!("not yet issued ({e}); the new key signs its OCSP answers itself")
                }
            }
        } else {
            "none (the CA key signs its OCSP answers)".into()
        };
        if let Err(e) = self.issue_crl(&ca_id, generation, actor).await {
            tracing::warn!(ca = %ca_id, error = %e, "first CRL of the new key failed; the scheduler retries");
        }
        Ok(Rollover {
            ca: ca_id.clone(),
            generation,
            key_id: rec.key_id.clone(),
            subject_key_identifier: ski,
            serial_hex: rec.serial_hex.clone(),
            not_after: rec.not_after,
            certificate_pem: cert.pem(),
            previous_generation: old.record.generation,
            previous_subject_key_identifier: old_ski,
            previous_serves_until: old.record.not_after,
            crl_url: self.crl_url(&ca_id, generation),
            ocsp_signer,
        })
    }
}

/// Whether `h`'s CA was signed by an issuer we do not hold.
pub(super) fn is_external(h: &IssuerHandle) -> bool {
    h.record.external_chain.is_some()
        || (h.record.parent_id.is_none() && h.cert.subject_der() != h.cert.issuer_der())
}

fn not_signed_by_issuer() -> CaError {
    CaError::Config("the certificate's signature does not verify with the issuer's key".into())
}
