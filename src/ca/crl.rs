//! CRLs, signed in the HSM with the CA's key and audited (`crl.issued`, with number and issuer).
//! Each key generation of a CA has its own CRL, signed by that key and listing the certificates
//! it signed (what RFC 5280 verifiers such as OpenSSL accept without indirect-CRL support), at
//! `/crl/{id}.crl` for the first key and `/crl/{id}.g{N}.crl` for the N-th (see
//! [`crl_file`]), until the key's certificate expires.
//!
//! A CRL is regenerated when a certificate of its CA is revoked (by this process, or by anyone: a
//! request notices a revocation newer than the stored CRL), on a schedule before nextUpdate, and
//! never lists expired certificates. CRL numbers are persisted and only grow; across processes the
//! store keeps only a higher number.

use std::time::Duration;

use super::signing::Form;
use super::{Ca, CaError};
use crate::model::{AuditEvent, CrlRecord};
use crate::x509::{self, crl};

/// Lower bound of the scheduler's period, whatever the CRL validity says.
pub const MIN_SCHEDULER_PERIOD: Duration = Duration::from_secs(30);

/// Per-process CRL state.
pub(super) struct CrlState {
    validity: i64,
    /// One generation at a time per process, so numbers are not raced within it.
    lock: tokio::sync::Mutex<()>,
}

impl CrlState {
    pub(super) fn new(validity: i64) -> CrlState {
        CrlState {
            validity: validity.max(60),
            lock: tokio::sync::Mutex::new(()),
        }
    }
}

/// The CRL file name (without `.crl`) of key generation `generation` of CA `issuer_id`: the id
/// itself for the first key (the name every certificate issued before any rollover carries),
/// `{id}.g{N}` after.
pub fn crl_file(issuer_id: &str, generation: i64) -> String {
    if generation <= 1 {
        issuer_id.to_string()
    } else {
        format!("{issuer_id}.g{generation}")
    }
}

/// The CA id and key generation a CRL file name (without `.crl`) stands for. A CA whose id is
/// the whole name wins over the `.g{N}` reading.
pub(crate) fn parse_crl_file(name: &str) -> Vec<(String, i64)> {
    let mut out = vec![(name.to_string(), 1)];
    if let Some((id, g)) = name.rsplit_once(".g")
        && let Ok(n) = g.parse::<i64>()
        && n >= 2
        && g.bytes().all(|b| b.is_ascii_digit())
    {
        out.push((id.to_string(), n));
    }
    out
}

impl Ca {
    /// Build, sign, store and audit a fresh CRL for key generation `generation` of `issuer_id`.
    pub async fn issue_crl(
        &self,
        issuer_id: &str,
        generation: i64,
        actor: &str,
    ) -> Result<CrlRecord, CaError> {
        let _g = self.inner.crl.lock.lock().await;
        self.issue_crl_locked(issuer_id, generation, actor).await
    }

    /// [`Ca::issue_crl`] with the generation lock held.
    async fn issue_crl_locked(
        &self,
        issuer_id: &str,
        generation: i64,
        actor: &str,
    ) -> Result<CrlRecord, CaError> {
        let issuer = self.issuer_at(issuer_id, generation).await?;
        let store = &self.inner.store;
        let prev = store.get_crl(issuer_id, generation).await?;
        // Counted before the entries are read: a revocation in between makes this CRL look
        // older than it is (one extra CRL later), never newer.
        let revoked_count = store.revoked_count(issuer_id, generation).await?;
        let number = prev.as_ref().map(|p| p.crl_number + 1).unwrap_or(1);
        let now = self.now();
        // A retired key's CRLs never claim more than its certificate's life.
        let next = (now + self.inner.crl.validity).min(issuer.cert.not_after().max(now + 60));
        let revoked = store.revoked_for_crl(issuer_id, generation, now).await?;
        let entries: Vec<crl::Entry> = revoked
            .into_iter()
            .map(|r| crl::Entry {
                serial_hex: r.serial_hex,
                revoked_at: r.revoked_at,
                reason_code: r.reason.and_then(|x| x.encoded_code()),
            })
            .collect();
        let tbs = crl::tbs_der(&crl::CrlContent {
            issuer: &issuer.cert,
            number,
            this_update: now,
            next_update: next,
            entries: &entries,
            signature: issuer.key.alg.signature_alg(),
        })?;
        let sig = self.sign(&issuer.key, tbs.clone(), Form::Der).await?;
        let der = x509::assemble_signed(&tbs, issuer.key.alg.signature_alg(), &sig)?;
        let rec = CrlRecord {
            issuer_id: issuer_id.to_string(),
            generation,
            crl_number: number,
            this_update: now,
            next_update: next,
            revoked_count,
            der,
        };
        let event = AuditEvent::new(
            actor,
            "crl.issued",
            issuer_id,
            serde_json::json!({
                "issuer": issuer_id,
                "generation": generation,
                "number": number,
                "entries": entries.len(),
                "this_update": now,
                "next_update": next,
                "sha256": hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&rec.der)),
            }),
        );
        if !store.put_crl(&rec, &event).await? {
            // Another process stored a newer one meanwhile: serve that.
            if let Some(newer) = store.get_crl(issuer_id, generation).await? {
                return Ok(newer);
            }
        }
        tracing::info!(issuer = %issuer_id, generation, number, entries = entries.len(), "CRL issued");
        Ok(rec)
    }

    /// The current CRL: the stored one unless missing, past half its life, or made before a
    /// revocation of its CA; otherwise a fresh one (issued as `actor`).
    ///
    /// Single-flight: a stale CRL is checked again under the generation lock, so any number of
    /// requests racing after a revocation produce one CRL, not one each.
    pub async fn current_crl(
        &self,
        issuer_id: &str,
        generation: i64,
        actor: &str,
    ) -> Result<CrlRecord, CaError> {
        if let Some(c) = self.stored_crl_if_current(issuer_id, generation).await? {
            return Ok(c);
        }
        let _g = self.inner.crl.lock.lock().await;
        if let Some(c) = self.stored_crl_if_current(issuer_id, generation).await? {
            return Ok(c);
        }
        self.issue_crl_locked(issuer_id, generation, actor).await
    }

    /// The current CRL behind a file name of [`crl_file`] (without `.crl`).
    pub async fn crl_by_file(&self, name: &str, actor: &str) -> Result<CrlRecord, CaError> {
        let mut last = None;
        for (id, generation) in parse_crl_file(name) {
            match self.inner.store.ca_generation(&id, generation).await? {
                Some(_) => return self.current_crl(&id, generation, actor).await,
                None => last = Some(id),
            }
        }
        Err(CaError::UnknownIssuer(format!(
            "no CA key with CRL {}",
            last.unwrap_or_default()
                .chars()
                .take(64)
                .collect::<String>()
        )))
    }

    async fn stored_crl_if_current(
        &self,
        issuer_id: &str,
        generation: i64,
    ) -> Result<Option<CrlRecord>, CaError> {
        let store = &self.inner.store;
        let Some(c) = store.get_crl(issuer_id, generation).await? else {
            return Ok(None);
        };
        let fresh = self.now() < c.this_update + (c.next_update - c.this_update) / 2;
        if fresh
            && c.revoked_count >= 0
            && store.revoked_count(issuer_id, generation).await? == c.revoked_count
        {
            return Ok(Some(c));
        }
        Ok(None)
    }

    /// How often the scheduler looks at every CA's CRL.
    pub fn crl_scheduler_period(&self) -> Duration {
        Duration::from_secs(
            u64::try_from(self.inner.crl.validity / 4)
                .unwrap_or(1)
                .max(1),
        )
        .max(MIN_SCHEDULER_PERIOD)
    }

    /// One pass of the scheduler: refresh the CRL of every CA key (current, or retired with
    /// an unexpired certificate) that needs it. Returns how many failed.
    pub async fn refresh_crls(&self) -> usize {
        let store = &self.inner.store;
        let keys = match (
            store.list_cas().await,
            store.retired_ca_keys(None, self.now()).await,
        ) {
            (Ok(mut c), Ok(r)) => {
                c.extend(r);
                c
            }
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(error = %e, "scheduled CRL refresh: cannot list CAs");
                return 1;
            }
        };
        let mut failed = 0;
        for c in keys {
            if let Err(e) = self
                .current_crl(&c.id, c.generation, "service:crl-scheduler")
                .await
            {
                failed += 1;
                tracing::warn!(issuer = %c.id, generation = c.generation, error = %e, "scheduled CRL refresh failed");
            }
        }
        failed
    }

    /// Refresh every CA's CRL before it is half way to nextUpdate, until the task is dropped.
    pub async fn run_crl_scheduler(self) {
        let period = self.crl_scheduler_period();
        loop {
            self.refresh_crls().await;
            tokio::time::sleep(period).await;
        }
    }
}
