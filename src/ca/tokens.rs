//! The access-token signing key: a P-256 key generated in the HSM on first use (label
//! `pnc-api-jwt`, non-extractable, like the CA keys) and recorded with its public point, so that
//! tokens are signed in the token and verified without it. Raw `r‖s` over SHA-256 is exactly the
//! JWS ES256 signature format.

use super::signing::Form;
use super::{Ca, CaError};
use crate::alg::KeyAlg;
use crate::hsm::KeyRef;
use crate::model::{AuditEvent, SigningKeyRecord};

/// The token signing key: its `kid` and public point; the private half stays in the HSM.
#[derive(Debug, Clone)]
pub struct TokenKey {
    key: KeyRef,
    /// JWS `kid`.
    pub kid: String,
    /// Uncompressed P-256 point `04 || X || Y`.
    pub public_point: Vec<u8>,
}

impl Ca {
    /// The token signing key, created (and audited) on first use. Replicas starting at once on
    /// a new deployment agree on one: the first recorded wins, and a loser's key is left unused
    /// in the token (logged).
    pub async fn token_key(&self) -> Result<TokenKey, CaError> {
        let store = &self.inner.store;
        let rec = match store.current_signing_key().await? {
            Some(r) => r,
            None => {
                let (key, public) = self
                    .hsm_call(|h| h.generate_ca_key(KeyAlg::EcP256, "pnc-api-jwt"))
                    .await?;
                let kid = hex::encode(&<sha2::Sha256 as sha2::Digest>::digest(&public.point)[..8]);
                let rec = SigningKeyRecord {
                    kid: kid.clone(),
                    key_id: hex::encode(&key.id),
                    key_alg: KeyAlg::EcP256,
                    public_point: public.point.clone(),
                    created_at: self.now(),
                };
                let ev = AuditEvent::new(
                    "service",
                    "api.signing_key.create",
                    &kid,
                    serde_json::json!({"alg": "ES256", "hsm_key_id": rec.key_id}),
                );
                if store.insert_first_signing_key(&rec, &ev).await? {
                    tracing::info!(kid = %kid, "created access-token signing key in the HSM");
                    rec
                } else {
                    tracing::warn!(
                        unused_hsm_key_id = %rec.key_id,
                        "another replica created the access-token signing key first; using it"
                    );
                    store.current_signing_key().await?.ok_or_else(|| {
                        CaError::Internal("the access-token signing key vanished".into())
                    })?
                }
            }
        };
        if rec.key_alg != KeyAlg::EcP256 || rec.public_point.len() != 65 || rec.public_point[0] != 4
        {
            return Err(CaError::Internal(format!(
                "token signing key {} is not an uncompressed P-256 key",
                rec.kid
            )));
        }
        Ok(TokenKey {
            key: KeyRef {
                id: hex::decode(&rec.key_id).map_err(CaError::internal)?,
                alg: KeyAlg::EcP256,
            },
            kid: rec.kid,
            public_point: rec.public_point,
        })
    }

    /// `(kid, uncompressed P-256 point)` of every access-token signing key ever recorded: a
    /// token signed by any of them is ours.
    pub async fn token_verification_keys(&self) -> Result<Vec<(String, Vec<u8>)>, CaError> {
        Ok(self
            .inner
            .store
            .signing_keys()
            .await?
            .into_iter()
            .filter(|k| k.key_alg == KeyAlg::EcP256 && k.public_point.len() == 65)
            .map(|k| (k.kid, k.public_point))
            .collect())
    }

    /// The ES256 signature (raw `r‖s`, low-S) over a JWS signing input.
    pub async fn sign_token(&self, key: &TokenKey, input: &[u8]) -> Result<Vec<u8>, CaError> {
        let raw = self.sign(&key.key, input.to_vec(), Form::Raw).await?;
        // PKCS#11 CKM_ECDSA returns whichever S the token computed (SoftHSM2: high half the
        // time); verifiers refuse high-S tokens, ours included, so normalise here.
        crate::x509::ecdsa::p256_low_s(&raw).ok_or_else(|| {
            CaError::Internal(format!(
                "the token returned a malformed ES256 signature ({} bytes)",
                raw.len()
            ))
        })
    }

    /// Readiness: one signature with the access-token key proves the token is reachable,
    /// logged in and willing to sign (a session check alone passes on a token that refuses to
    /// sign). Before any token key exists, the session check. The key is read from the store
    /// once and kept (it never changes once recorded), so that a store outage is not reported
    /// as a token outage; while the store cannot say, the session check judges the token.
    pub async fn sign_probe(&self) -> Result<(), CaError> {
        let kept = self
            .inner
            .probe_key
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let key = match kept {
            Some(k) => k,
            None => match self.inner.store.current_signing_key().await {
                Ok(Some(_)) => {
                    let k = self.token_key().await?;
                    *self
                        .inner
                        .probe_key
                        .lock()
                        .unwrap_or_else(|p| p.into_inner()) = Some(k.clone());
                    k
                }
                Ok(None) => return self.hsm_call(|h| h.check()).await,
                Err(e) => {
                    tracing::debug!(error = %e, "readiness: the store cannot name the token key; checking the token session");
                    return self.hsm_call(|h| h.check()).await;
                }
            },
        };
        self.sign_token(&key, b"pnc-pki readiness probe").await?;
        Ok(())
    }
}
