//! The one way the CA signs: hash in process, `CKM_ECDSA` (or, for an RSA key, `CKM_RSA_PKCS`
//! over the DER DigestInfo: PKCS#1 v1.5) in the token on the blocking pool, and the raw `r‖s`
//! returned as is (JWS, XML signatures) or as a DER `ECDSA-Sig-Value` (X.509, CRLs, OCSP,
//! PKCS#10); RSA signatures are the same bytes in both forms. The hash is always the one the key's curve calls for
//! ([`crate::alg::KeyAlg::signature_alg`]), which is also what every profile must declare.

use super::{Ca, CaError};
use crate::hsm::KeyRef;

/// The form a signature is wanted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Form {
    /// DER `ECDSA-Sig-Value`.
    Der,
    /// Raw `r‖s`, each half the curve's field length.
    Raw,
}

impl Ca {
    /// Sign `data` with `key`.
    pub(super) async fn sign(
        &self,
        key: &KeyRef,
        data: Vec<u8>,
        form: Form,
    ) -> Result<Vec<u8>, CaError> {
        let alg = key.alg;
        let key = key.clone();
        let hash = key.alg.signature_alg().hash();
        let raw = self
            .hsm_call(move |h| h.sign_raw(&key, hash, &data))
            .await?;
        match form {
            Form::Raw => Ok(raw),
            // An RSA PKCS#1 v1.5 signature is the same bytes in every container.
            Form::Der if alg.is_rsa() => Ok(raw),
            Form::Der => Ok(crate::x509::ecdsa_raw_to_der(&raw)?),
        }
    }
}
