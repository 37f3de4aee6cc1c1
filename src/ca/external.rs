//! CAs signed elsewhere: real V2G roots are held offline by PKI operators, so an operator creates
//! the CA key here (`pnc-pki csr`), has the CSR signed by the root's owner, and imports the result
//! (`pnc-pki import-ca`). The key never leaves the token.

use der::{Decode, Encode};
use x509_cert::request::{CertReqInfo, Version};

use super::bootstrap::key_label;
use super::signing::Form;
use super::{Ca, CaError};
use crate::hsm::{KeyRef, PublicKey};
use crate::model::{AuditEvent, CaRecord};
use crate::policy::profile::Profile;
use crate::x509::{self, ParsedCert};
use x509_cert::name::RdnSequence;

fn ca_key_label(id: &str) -> String {
    key_label("ca", id)
}

impl Ca {
    /// Create (or reuse, if an earlier `csr` made it) the CA key for `id` and return a PKCS#10
    /// request signed by it, as PEM.
    pub async fn create_ca_csr(
        &self,
        id: &str,
        profile_name: &str,
        subject_text: &str,
        actor: &str,
    ) -> Result<String, CaError> {
        if self.inner.store.get_ca(id).await?.is_some() {
            return Err(CaError::CaExists(id.to_string()));
        }
        let profile = self.inner.profiles.get(profile_name)?.clone();
        if !profile.kind.is_ca() {
            return Err(CaError::Config(format!(
                "{profile_name} is not a CA profile"
            )));
        }
        let subject = x509::name::build_from_text(subject_text)
            .map_err(|r| CaError::Config(format!("subject: {r}")))?;
        crate::policy::subject::check_subject(&profile, &subject)?;
        let label = ca_key_label(id);
        let alg = profile.key;
        let (key, public) = self
            .hsm_call(move |h| match h.find_key_by_label(&label)? {
                Some(found) => Ok(found),
                None => h.generate_ca_key(alg, &label),
            })
            .await?;
        if key.alg != profile.key {
            return Err(CaError::Config(format!(
                "the token already holds a {} key labelled {}, the profile needs {}",
                key.alg.name(),
                ca_key_label(id),
                profile.key.name()
            )));
        }
        let pem = self.ca_csr(&key, &public, &subject).await?;
        self.inner
            .store
            .audit(&AuditEvent::new(
                actor,
                "ca.csr",
                id,
                serde_json::json!({"profile": profile_name, "subject": subject_text, "key_id": hex::encode(&key.id)}),
            ))
            .await?;
        Ok(pem)
    }

    /// A PKCS#10 request for the CA key `key` (public half `public`) with subject `subject`,
    /// signed by that key in the token, checked with OpenSSL, as PEM.
    pub(super) async fn ca_csr(
        &self,
        key: &KeyRef,
        public: &PublicKey,
        subject: &RdnSequence,
    ) -> Result<String, CaError> {
        let spki_der = x509::spki_der(public.alg, &public.point)?;
        let info = CertReqInfo {
            version: Version::V1,
            subject: x509_cert::name::Name::from_der(&x509::name::to_der(subject))
                .map_err(|e| CaError::Internal(e.to_string()))?,
            public_key: spki::SubjectPublicKeyInfoOwned::from_der(&spki_der)
                .map_err(|e| CaError::Internal(e.to_string()))?,
            attributes: Default::default(),
        };
        let info_der = info
            .to_der()
            .map_err(|e| CaError::Internal(e.to_string()))?;
        let sig = self.sign(key, info_der.clone(), Form::Der).await?;
        let der = x509::assemble_signed(&info_der, key.alg.signature_alg(), &sig)?;
        // Check our own output with OpenSSL before handing it out.
        let req =
            openssl::x509::X509Req::from_der(&der).map_err(|e| CaError::Internal(e.to_string()))?;
        let pk = req
            .public_key()
            .map_err(|e| CaError::Internal(e.to_string()))?;
        if !req.verify(&pk).unwrap_or(false) {
            return Err(CaError::Internal(
                "CSR self-signature does not verify".into(),
            ));
        }
        Ok(x509::to_pem("CERTIFICATE REQUEST", &der))
    }

    /// Import a CA certificate for a key made by `create_ca_csr`. `issuer_chain_pem` (issuer
    /// first) is required when the issuer is not one of our CAs.
    pub async fn import_ca(
        &self,
        id: &str,
        profile_name: &str,
        cert_pem: &[u8],
        issuer_chain_pem: Option<&[u8]>,
        actor: &str,
    ) -> Result<CaRecord, CaError> {
        if self.inner.store.get_ca(id).await?.is_some() {
            return Err(CaError::CaExists(id.to_string()));
        }
        let profile = self.inner.profiles.get(profile_name)?.clone();
        let cert = ParsedCert::from_pem(cert_pem)
            .map_err(|e| CaError::Config(format!("certificate: {e}")))?;
        let label = ca_key_label(id);
        let (key, public) = self
            .hsm_call(move |h| h.find_key_by_label(&label))
            .await?
            .ok_or_else(|| {
                CaError::Config(format!(
                    "no key for CA '{id}' on the token: run `pnc-pki csr --id {id}` first"
                ))
            })?;
        if cert.spki_der() != x509::spki_der(public.alg, &public.point)? {
            return Err(CaError::Config(format!(
                "the certificate's public key is not the key created for CA '{id}'"
            )));
        }
        check_ca_shape(&cert, &profile)?;
        // Find the issuer: one of ours, or the first certificate of the given chain.
        let issuer_subject = cert
            .tbs()
            .issuer()
            .to_der()
            .map_err(|e| CaError::Internal(e.to_string()))?;
        let ours = self.inner.store.list_cas().await?.into_iter().find(|c| {
            ParsedCert::from_der(&c.cert_der)
                .map(|p| p.subject_der() == issuer_subject)
                .unwrap_or(false)
        });
        let mut issuer_generation = 1;
        let (parent_id, issuer_spki, external_chain) = match (ours, issuer_chain_pem) {
            (Some(p), _) => {
                let pc = ParsedCert::from_der(&p.cert_der)?;
                issuer_generation = p.generation;
                (Some(p.id.clone()), pc.spki_der(), None)
            }
            (None, Some(chain)) => {
                let certs = ParsedCert::chain_from_pem(chain)
                    .map_err(|e| CaError::Config(format!("issuer chain: {e}")))?;
                let first = certs
                    .into_iter()
                    .next()
                    .ok_or_else(|| CaError::Config("issuer chain is empty".into()))?;
                if first.subject_der() != issuer_subject {
                    return Err(CaError::Config(
                        "the first certificate of the issuer chain did not issue this certificate"
                            .into(),
                    ));
                }
                (
                    None,
                    first.spki_der(),
                    Some(String::from_utf8_lossy(chain).into_owned()),
                )
            }
            (None, None) => {
                return Err(CaError::Config(format!(
                    "the issuer '{}' is not one of our CAs: give its chain with --issuer-chain",
                    cert.issuer_string()
                )));
            }
        };
        super::build::verify_signed_by(&cert.der, &issuer_spki).map_err(|_| {
            CaError::Config(
                "the certificate's signature does not verify with the issuer's key".into(),
            )
        })?;
        let now = self.now();
        let rec = super::bootstrap::ca_record(
            id,
            &profile.name,
            parent_id.clone(),
            &key,
            &cert,
            external_chain,
            1,
            now,
        );
        // An externally issued CA is recorded under itself: its issuer is not ours to track.
        let issuer_for_row = parent_id.unwrap_or_else(|| id.to_string());
        let cert_rec = super::bootstrap::cert_record(
            &cert,
            &issuer_for_row,
            issuer_generation,
            &profile.name,
            Some(&rec.key_id),
            now,
        );
        let event = AuditEvent::new(
            actor,
            "ca.import",
            id,
            serde_json::json!({"profile": profile.name, "subject": rec.subject, "issuer": cert.issuer_string(), "serial": rec.serial_hex}),
        );
        self.inner
            .store
            .record_issuance(&cert_rec, Some(&rec), &event, None)
            .await?;
        Ok(rec)
    }
}

/// Refuse a certificate that is not a CA certificate of the shape `profile` describes.
pub(super) fn check_ca_shape(cert: &ParsedCert, profile: &Profile) -> Result<(), CaError> {
    use const_oid::db::rfc5280 as o;
    let bc = cert
        .extension(o::ID_CE_BASIC_CONSTRAINTS)
        .and_then(|e| {
            x509_cert::ext::pkix::BasicConstraints::from_der(e.extn_value.as_bytes()).ok()
        })
        .ok_or_else(|| CaError::Config("certificate has no basicConstraints".into()))?;
    if !bc.ca || bc.path_len_constraint != profile.basic_constraints.path_len {
        return Err(CaError::Config(format!(
            "basicConstraints cA={} pathLen={:?} do not match profile {} (pathLen {:?})",
            bc.ca, bc.path_len_constraint, profile.name, profile.basic_constraints.path_len
        )));
    }
    Ok(())
}
