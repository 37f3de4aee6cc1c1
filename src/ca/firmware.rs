//! Firmware signing (OCPP L01 SignedUpdateFirmware): the service-held firmware-signing key
//! (a `[[service_cert]]` under the manufacturer root, made by `init`) signs an image's SHA-256
//! through the one signing helper; the signature and its audit entry are recorded together.

use super::signing::Form;
use super::{Ca, CaError};
use crate::hsm::KeyRef;
use crate::model::AuditEvent;
use crate::x509::ParsedCert;

/// The firmware-signing profile.
const PROFILE: &str = "firmware-signing";

/// A firmware signature with what a station needs to check it.
#[derive(Debug, Clone)]
pub struct FirmwareSignature {
    /// DER signature (ECDSA-Sig-Value, or PKCS#1 v1.5 for an RSA key) over the image's SHA-256,
    /// as `openssl dgst -sha256 -verify` and OCPP's `signature` (base64) take it.
    pub signature: Vec<u8>,
    /// The signing certificate (OCPP's `signingCertificate`).
    pub cert: ParsedCert,
    /// Its issuing chain, up to the manufacturer root (root last).
    pub chain: Vec<ParsedCert>,
}

impl Ca {
    /// Sign `image` with the newest valid firmware-signing key the service holds.
    pub async fn sign_firmware(
        &self,
        image: Vec<u8>,
        actor: &str,
    ) -> Result<FirmwareSignature, CaError> {
        let p = self.inner.profiles.get(PROFILE)?.clone();
        let issuer = self.pick_issuer(&p, None).await?;
        let rec = self
            .inner
            .store
            .current_service_cert(PROFILE, &issuer.record.id, None)
            .await?
            .ok_or_else(|| {
                CaError::NotFound(format!(
                    "no valid {PROFILE} certificate with a key in the HSM under {} (run `pnc-pki init`)",
                    issuer.record.id
                ))
            })?;
        let key_id = rec
            .key_id
            .as_deref()
            .ok_or_else(|| CaError::Internal("service certificate without a key".into()))?;
        let cert = ParsedCert::from_der(&rec.der)?;
        let key = KeyRef {
            id: hex::decode(key_id).map_err(CaError::internal)?,
            alg: crate::x509::spki_key_alg(cert.spki())?,
        };
        let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&image));
        let size = image.len();
        let signature = self.sign(&key, image, Form::Der).await?;
        let event = AuditEvent::new(
            actor,
            "firmware.sign",
            &format!("{}/{}", rec.issuer_id, rec.serial_hex),
            serde_json::json!({ "sha256": digest, "bytes": size }),
        );
        self.inner.store.audit(&event).await?;
        tracing::info!(serial = %rec.serial_hex, sha256 = %digest, "firmware signed");
        Ok(FirmwareSignature {
            signature,
            cert,
            chain: self
                .chain_from(&rec.issuer_id, rec.issuer_generation)
                .await?,
        })
    }
}
