//! What the OCSP responder needs from the CA: who signs a CA's responses (its delegated signer, or
//! the CA key itself) and the signature over a ResponseData. The key handle stays inside `ca`.

use super::bootstrap::ocsp_signer_profile;
use super::signing::Form;
use super::{Ca, CaError};
use crate::alg::{HashAlg, SignatureAlg};
use crate::hsm::KeyRef;
use crate::x509::ParsedCert;

/// Who signs one CA's OCSP responses.
#[derive(Debug, Clone)]
pub struct OcspSigner {
    key: KeyRef,
    /// Signature algorithm of the responses.
    pub signature: SignatureAlg,
    /// SHA-1 of the signer's public key (ResponderID byKey).
    pub key_hash: [u8; 20],
    /// Certificates embedded in responses: the delegated signer's, or none.
    pub certs: Vec<Vec<u8>>,
    /// Responses never claim validity beyond this (unix seconds).
    pub not_after: i64,
    /// Serial of the delegated signer certificate; `None` when the CA key signs.
    pub serial_hex: Option<String>,
}

fn key_hash(cert: &ParsedCert) -> Result<[u8; 20], CaError> {
    let h = HashAlg::Sha1.digest(cert.spki().subject_public_key.raw_bytes());
    h.try_into()
        .map_err(|_| CaError::Internal("SHA-1 is 20 bytes".into()))
}

impl Ca {
    /// The signer of responses about certificates that key generation `generation` of CA
    /// `ca_id` signed: that key's newest valid delegated signer when `delegated` and one exists,
    /// else that CA key itself (with no certificate to embed). A retired key's delegated signer
    /// is not renewed: when it expires, the retired CA key signs.
    pub async fn ocsp_signer(
        &self,
        ca_id: &str,
        generation: i64,
        delegated: bool,
    ) -> Result<OcspSigner, CaError> {
        let issuer = self.issuer_at(ca_id, generation).await?;
        if delegated {
            let standard = self.inner.profiles.get(&issuer.record.profile)?.standard;
            let profile = ocsp_signer_profile(standard);
            if let Some(rec) = self
                .inner
                .store
                .current_service_cert(profile, ca_id, Some(generation))
                .await?
                && let Some(key_id) = rec.key_id.as_deref()
            {
                let cert = ParsedCert::from_der(&rec.der)?;
                let alg = crate::x509::spki_key_alg(cert.spki())?;
                return Ok(OcspSigner {
                    key: KeyRef {
                        id: hex::decode(key_id).map_err(CaError::internal)?,
                        alg,
                    },
                    signature: alg.signature_alg(),
                    key_hash: key_hash(&cert)?,
                    certs: vec![rec.der.clone()],
                    not_after: rec.not_after,
                    serial_hex: Some(rec.serial_hex.clone()),
                });
            }
            tracing::warn!(ca = %ca_id, "OCSP: CA has no delegated signer; signing with the CA key");
        }
        Ok(OcspSigner {
            signature: issuer.key.alg.signature_alg(),
            key_hash: key_hash(&issuer.cert)?,
            certs: Vec::new(),
            not_after: issuer.cert.not_after(),
            serial_hex: None,
            key: issuer.key,
        })
    }

    /// Sign an encoded ResponseData; the DER signature for the BasicOCSPResponse.
    pub async fn sign_ocsp(&self, signer: &OcspSigner, tbs: Vec<u8>) -> Result<Vec<u8>, CaError> {
        self.sign(&signer.key, tbs, Form::Der).await
    }
}
