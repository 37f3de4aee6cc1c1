//! `pnc-pki hsm doctor`: what the token says about every CA key.

use super::{Ca, CaError};
use crate::hsm::KeyAttributes;

/// The token's view of the CA keys.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyReport {
    /// Token label.
    pub token: String,
    /// Objects visible to the user.
    pub objects: usize,
    /// (CA id, attributes) of every CA key found.
    pub keys: Vec<(String, KeyAttributes)>,
    /// What is wrong (a missing key, an extractable key, …).
    pub problems: Vec<String>,
}

impl Ca {
    /// Read every CA key's attributes straight from the token.
    pub async fn key_report(&self) -> Result<KeyReport, CaError> {
        let cas = self.inner.store.list_cas().await?;
        let ids: Vec<(String, String)> = cas.into_iter().map(|c| (c.id, c.key_id)).collect();
        self.hsm_call(move |h| {
            let mut keys = Vec::new();
            let mut problems = Vec::new();
            for (ca, key_id) in ids {
                let Ok(id) = hex::decode(&key_id) else {
                    problems.push(format!("CA {ca}: stored key id is not hex"));
                    continue;
                };
                match h.key_attributes(&id) {
                    Ok(a) => {
                        if !a.sensitive || a.extractable || !a.token || !a.private {
                            problems.push(format!("CA {ca} key is not sensitive/non-extractable"));
                        }
                        keys.push((ca, a));
                    }
                    Err(e) => problems.push(format!("CA {ca}: {e}")),
                }
            }
            Ok(KeyReport {
                token: h.token_label()?,
                objects: h.object_count()?,
                keys,
                problems,
            })
        })
        .await
    }
}
