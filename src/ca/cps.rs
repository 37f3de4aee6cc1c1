//! The CPS leaf key as an [`RawSigner`] for the XML signatures of ISO 15118 provisioning
//! responses (`CertificateInstallationRes`), as `crate::exi::xmldsig` expects one. The key stays
//! in the HSM; the signer only holds its handle.

use super::{Ca, CaError};
use crate::exi::xmldsig::{RawSigner, SignerError};
use crate::hsm::{Hsm, KeyRef};
use crate::policy::profile::Standard;
use crate::x509::ParsedCert;

/// Signs digests with the current CPS leaf key of one standard.
pub struct CpsSigner {
    hsm: Hsm,
    key: KeyRef,
    /// The CPS leaf certificate.
    pub cert: ParsedCert,
    /// Its issuer chain, issuing CA first, root last.
    pub chain: Vec<ParsedCert>,
}

impl std::fmt::Debug for CpsSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpsSigner")
            .field("serial", &self.cert.serial_hex())
            .finish()
    }
}

impl RawSigner for CpsSigner {
    /// Blocks on the token: call from a blocking thread.
    fn sign_digest(&self, digest: &[u8]) -> Result<Vec<u8>, SignerError> {
        Ok(self.hsm.sign_digest_raw(&self.key, digest)?)
    }
}

impl Ca {
    /// The signer for the newest valid CPS leaf of `standard` whose key the service holds.
    pub async fn cps_signer(&self, standard: Standard) -> Result<CpsSigner, CaError> {
        let profile = match standard {
            Standard::Iso2 => "cps-leaf",
            Standard::Iso20 => "cps-leaf-20",
            Standard::Ocpp => {
                return Err(CaError::NotFound(
                    "there is no CPS in the OCPP PKI (contract provisioning is ISO 15118)".into(),
                ));
            }
        };
        let p = self.inner.profiles.get(profile)?.clone();
        // One read of the keys for the issuer and the chain.
        let keys = self.keys().await?;
        let issuer = keys.pick(&p, None, self.now())?;
        let rec = self
            .inner
            .store
            .current_service_cert(profile, &issuer.record.id, None)
            .await?
            .ok_or_else(|| {
                CaError::NotFound(format!(
                    "no valid {profile} certificate with a key in the HSM under {} (run `pnc-pki init`)",
                    issuer.record.id
                ))
            })?;
        let key_id = rec
            .key_id
            .as_deref()
            .ok_or_else(|| CaError::Internal("service certificate without a key".into()))?;
        let cert = ParsedCert::from_der(&rec.der)?;
        Ok(CpsSigner {
            hsm: self.inner.hsm.clone(),
            key: KeyRef {
                id: hex::decode(key_id).map_err(CaError::internal)?,
                alg: p.key,
            },
            chain: keys
                .issuer_at(&rec.issuer_id, rec.issuer_generation)?
                .chain
                .to_vec(),
            cert,
        })
    }
}
