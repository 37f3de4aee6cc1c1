//! Sub-CA compromise response (`pnc-pki ca compromise`): stop the compromised key everywhere,
//! revoke its certificate at its parent, revoke everything it signed (and everything below it),
//! and put a replacement key and certificate in place under the same parent.
//!
//! Each step is idempotent and audited, and the state lives in the store, so a crash (or
//! `kill -9`) mid-way is finished by running the command again:
//!
//! 1. **stop**: one transaction marks the current key generation of the CA and of every CA
//!    below it stopped (`ca_compromises`). The store refuses from then on to record anything
//!    those keys sign (a trigger, in the issuing transaction), so a serving replica that has not
//!    reloaded its keys fails its issuance (503 `issuer_key_stopped`) rather than delivering it.
//! 2. **revoke-ca**: the CA's certificate is revoked at its parent (`keyCompromise` or the
//!    reason given), like `pnc-pki revoke`: the parent's CRL is regenerated and no OCSP replica
//!    answers "good" once this returns. A CA signed elsewhere cannot be revoked here: the report
//!    says what to send its issuer.
//! 3. **revoke-issued**: everything the stopped keys signed (leaves, OCSP signers, the
//!    certificates of the CAs below) is revoked with `cACompromise`, in batches, one transaction
//!    and one audit entry per batch, each waited for by every OCSP replica (the epoch protocol of
//!    `docs/ocsp.md`), then the CRL of each stopped key is regenerated. That CRL is signed by the
//!    stopped key itself: it is the only key whose CRL matches the authority key identifier of
//!    what it signed, and the parent's CRL already revokes the key's certificate, so a forged CRL
//!    under it is no worse than any other certificate it could sign.
//! 4. **replace**: top-down, each stopped CA gets a new key in the token and a certificate with
//!    the same name and profile under its parent's current key (a rollover: new generation, new
//!    key identifier); the old key becomes a retired generation that is stopped, not good.
//!    A CA signed elsewhere gets its new key and a CSR for its issuer instead; the CAs below it
//!    wait, since only its new key may sign their new certificates. The response is then
//!    pending, not finished: once the issuer's certificate is imported (`ca rollover --cert`),
//!    running the command again replaces the CAs below and finishes it.
//!
//! Re-issuing what depended on the CA (contract data, the re-enrollment list) is the RA's part
//! (`crate::ra`), after these steps.

use std::time::Instant;

use super::events::Revoked;
use super::{Ca, CaError};
use crate::model::{AuditEvent, CertFilter, RevocationReason};
use crate::store::CompromiseRecord;
use crate::x509::ParsedCert;

/// The environment variable of the crash hook for tests: the process exits abruptly right after
/// the named step committed (`stop`, `revoke-ca`, `revoke-issued`, `replace`, `contracts`).
pub const EXIT_AFTER_ENV: &str = "PNC_COMPROMISE_EXIT_AFTER";

/// Exit at once (no cleanup, as `kill -9` would) when the crash hook names `step`.
pub fn crash_point(step: &str) {
    if std::env::var(EXIT_AFTER_ENV).is_ok_and(|v| v == step) {
        eprintln!("{EXIT_AFTER_ENV}={step}: exiting abruptly after step {step}");
        std::process::exit(137);
    }
}

/// How to run a compromise response.
#[derive(Debug, Clone)]
pub struct CompromiseOptions {
    /// Why the CA's own certificate is revoked at its parent (default `keyCompromise`).
    pub reason: RevocationReason,
    /// Certificates revoked per transaction.
    pub batch_size: i64,
    /// Treat the CA's current key as compromised even when it is the replacement a finished
    /// compromise response put in place.
    pub again: bool,
}

/// One step of the report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StepReport {
    /// `stop`, `revoke-ca`, `revoke-issued`, `replace`, `contracts`, `reenroll`.
    pub step: &'static str,
    /// What it counted (keys stopped, certificates revoked, CAs replaced, …) in this run.
    pub count: i64,
    /// Wall time in this run, seconds.
    pub seconds: f64,
    /// What it did, in words.
    pub detail: String,
}

/// A CA that was replaced.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Replaced {
    /// The CA.
    pub ca: String,
    /// Its stopped key generation.
    pub stopped_generation: i64,
    /// Its new key generation (none yet for a CA signed elsewhere).
    pub generation: Option<i64>,
    /// Serial of the new CA certificate, hex.
    pub serial_hex: Option<String>,
    /// Subject key identifier of the new certificate, hex.
    pub subject_key_identifier: Option<String>,
    /// For a CA signed elsewhere: the CSR of its new key, to be signed by its issuer and
    /// imported with `pnc-pki ca rollover --ca ID --cert FILE`, after which the command is run
    /// again to finish the response.
    pub csr_pem: Option<String>,
    /// When there is no replacement yet: what it waits for and what to do, in words.
    pub pending: Option<String>,
}

/// For a CA signed by an issuer this service does not hold: what to send that issuer.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ExternalRevocation {
    /// The certificate to revoke, PEM.
    pub certificate_pem: String,
    /// Its subject.
    pub subject: String,
    /// Its issuer.
    pub issuer: String,
    /// Its serial, hex.
    pub serial_hex: String,
    /// The reason to ask for.
    pub reason: String,
}

/// What the CA part of a compromise response did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CaCompromise {
    /// The CA the command was run for.
    pub ca: String,
    /// Its stopped key generation.
    pub stopped_generation: i64,
    /// Its parent, when it is one of ours.
    pub parent: Option<String>,
    /// Whether this run resumed an interrupted one.
    pub resumed: bool,
    /// Every stopped CA (this one first, then those below it, top-down) and its replacement.
    pub replaced: Vec<Replaced>,
    /// For a CA signed elsewhere: what to send its issuer.
    pub external: Option<ExternalRevocation>,
    /// Certificates revoked by this run (the CA's own certificate not included).
    pub revoked_this_run: i64,
    /// Steps done, in order.
    pub steps: Vec<StepReport>,
}

/// Progress of a long step: (step, done so far).
pub type Progress<'a> = &'a (dyn Fn(&str, i64) + Sync);

impl Ca {
    /// Run the CA part of the compromise response for CA `ca_id` (steps 1 to 4 of the module
    /// docs), or finish an interrupted one. A root is refused.
    pub async fn compromise(
        &self,
        ca_id: &str,
        opts: &CompromiseOptions,
        actor: &str,
        progress: Progress<'_>,
    ) -> Result<CaCompromise, CaError> {
        let store = &self.inner.store;
        let mut steps = Vec::new();
        let started = Instant::now();
        let mut stopped = store.compromise_unfinished(ca_id).await?;
        let resumed = !stopped.is_empty();
        if stopped.is_empty() {
            let h = self.issuer(ca_id).await?;
            if h.record.parent_id.is_none() && h.cert.subject_der() == h.cert.issuer_der() {
                return Err(CaError::Config(format!(
                    "CA '{ca_id}' is a root: a root cannot be revoked by a parent and replaced \
                     under it. Retire it instead: take it out of the trust stores (V2G root \
                     pool, `pnc-pki trust`), build a new hierarchy with `pnc-pki init`, and \
                     move every party to it"
                )));
            }
            if !opts.again
                && let Some(last) = store.compromises_of(ca_id).await?.first()
                && last.finished_at.is_some()
                && last.generation + 1 == h.record.generation
            {
                return Err(CaError::Config(format!(
                    "CA '{ca_id}''s key generation {} was stopped and replaced by generation {} \
                     already; its current key is the replacement. To treat the replacement as \
                     compromised too, run again with --again",
                    last.generation, h.record.generation
                )));
            }
            // The CA and every CA below it, top-down.
            let keys = self.keys().await?;
            let mut order = vec![(h.record.id.clone(), h.record.generation)];
            let mut i = 0;
            while i < order.len() {
                let parent = order[i].0.clone();
                for c in &keys.current {
                    if c.record.parent_id.as_deref() == Some(parent.as_str())
                        && c.record.id != parent
                    {
                        order.push((c.record.id.clone(), c.record.generation));
                    }
                }
                i += 1;
            }
            let event = AuditEvent::new(
                actor,
                "ca.compromise.stop",
                ca_id,
                serde_json::json!({
                    "reason": opts.reason.name(),
                    "stopped": order.iter().map(|(c, g)| serde_json::json!({"ca": c, "generation": g})).collect::<Vec<_>>(),
                }),
            );
            let n = store
                .compromise_stop(&order, opts.reason, ca_id, &event)
                .await?;
            tracing::warn!(ca = %ca_id, keys = n, "CA keys stopped (compromise)");
            crash_point("stop");
            stopped = store.compromise_unfinished(ca_id).await?;
            steps.push(StepReport {
                step: "stop",
                count: i64::try_from(n).unwrap_or(0),
                seconds: started.elapsed().as_secs_f64(),
                detail: format!(
                    "stopped {}",
                    order
                        .iter()
                        .map(|(c, g)| format!("{c} generation {g}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        } else {
            steps.push(StepReport {
                step: "stop",
                count: 0,
                seconds: 0.0,
                detail: format!(
                    "resumed the compromise response started {}",
                    crate::model::rfc3339(stopped[0].started_at)
                ),
            });
        }
        let origin = stopped
            .iter()
            .find(|r| r.ca_id == ca_id)
            .cloned()
            .ok_or_else(|| CaError::Internal(format!("no stopped key of CA '{ca_id}'")))?;
        let reason = RevocationReason::parse(&origin.reason)?;

        // 2. The CA's own certificate, at its parent.
        let t = Instant::now();
        let old = self.issuer_at(ca_id, origin.generation).await?;
        let mut external = None;
        let detail = match &old.record.parent_id {
            Some(parent) => {
                let parent_gen = self.generation_of_cert(parent, &old.cert).await?;
                let outcome = self
                    .revoke(parent, &old.record.serial_hex, reason, actor)
                    .await?;
                format!(
                    "certificate {} revoked at {parent} (key generation {parent_gen}, {}): {}",
                    old.record.serial_hex,
                    reason.name(),
                    outcome.name()
                )
            }
            None => {
                let e = ExternalRevocation {
                    certificate_pem: old.cert.pem(),
                    subject: old.cert.subject_string(),
                    issuer: old.cert.issuer_string(),
                    serial_hex: old.cert.serial_hex(),
                    reason: reason.name().to_string(),
                };
                let d = format!(
                    "signed by an issuer this service does not hold ({}): ask it to revoke serial \
                     {} ({})",
                    e.issuer, e.serial_hex, e.reason
                );
                external = Some(e);
                d
            }
        };
        crash_point("revoke-ca");
        steps.push(StepReport {
            step: "revoke-ca",
            count: 1,
            seconds: t.elapsed().as_secs_f64(),
            detail,
        });

        // 3. Everything the stopped keys signed.
        let t = Instant::now();
        let mut revoked = 0i64;
        for rec in &stopped {
            revoked += self
                .revoke_all_of(rec, opts.batch_size, actor, revoked, progress)
                .await?;
        }
        crash_point("revoke-issued");
        steps.push(StepReport {
            step: "revoke-issued",
            count: revoked,
            seconds: t.elapsed().as_secs_f64(),
            detail: format!(
                "revoked {revoked} certificates (cACompromise) in batches of at most {}",
                opts.batch_size
            ),
        });

        // 4. Replacements, top-down (a CA below is signed by its parent's new key).
        let t = Instant::now();
        let mut replaced: Vec<Replaced> = Vec::new();
        let mut n = 0;
        for rec in self.top_down(&stopped).await? {
            let waiting: Vec<&str> = replaced
                .iter()
                .filter(|r| r.generation.is_none())
                .map(|r| r.ca.as_str())
                .collect();
            let r = self.replace(&rec, &waiting, actor).await?;
            if r.generation.is_some() {
                n += 1;
            }
            replaced.push(r);
        }
        crash_point("replace");
        steps.push(StepReport {
            step: "replace",
            count: n,
            seconds: t.elapsed().as_secs_f64(),
            detail: replaced
                .iter()
                .map(|r| match (&r.generation, &r.pending) {
                    (Some(g), _) => format!("{} now at key generation {g}", r.ca),
                    (None, Some(why)) => format!("{}: {why}", r.ca),
                    (None, None) => format!("{}: no replacement", r.ca),
                })
                .collect::<Vec<_>>()
                .join("; "),
        });
        Ok(CaCompromise {
            ca: ca_id.to_string(),
            stopped_generation: origin.generation,
            parent: old.record.parent_id.clone(),
            resumed,
            replaced,
            external,
            revoked_this_run: revoked,
            steps,
        })
    }

    /// The generation of CA `parent` that signed `cert`.
    async fn generation_of_cert(&self, parent: &str, cert: &ParsedCert) -> Result<i64, CaError> {
        let keys = self.keys().await?;
        Ok(keys
            .generation_that_signed(parent, cert)
            .map(|h| h.record.generation)
            .unwrap_or(1))
    }

    /// Revoke, in batches, every valid certificate key generation `rec` signed; each batch waits
    /// until no OCSP replica answers "good" for it. Then the key's CRL is regenerated.
    async fn revoke_all_of(
        &self,
        rec: &CompromiseRecord,
        batch_size: i64,
        actor: &str,
        before: i64,
        progress: Progress<'_>,
    ) -> Result<i64, CaError> {
        let mut total = 0i64;
        let mut batch_no = 0u64;
        loop {
            batch_no += 1;
            let event = AuditEvent::new(
                actor,
                "ca.compromise.revoke-batch",
                &format!("{}/g{}", rec.ca_id, rec.generation),
                serde_json::json!({
                    "reason": RevocationReason::CaCompromise.name(),
                    "origin": rec.origin,
                    "batch": batch_no,
                }),
            );
            let (serials, epoch) = self
                .inner
                .store
                .compromise_revoke_batch(
                    &rec.ca_id,
                    rec.generation,
                    RevocationReason::CaCompromise,
                    batch_size.clamp(1, 5000),
                    &event,
                )
                .await?;
            let Some(last) = serials.last() else { break };
            total += i64::try_from(serials.len()).unwrap_or(0);
            if let Some(n) = RevocationReason::ALL
                .iter()
                .position(|r| *r == RevocationReason::CaCompromise)
                .and_then(|i| self.inner.revocations.get(i))
            {
                n.fetch_add(
                    u64::try_from(serials.len()).unwrap_or(0),
                    std::sync::atomic::Ordering::Relaxed,
                );
            }
            // The batch's last epoch covers all of it: replicas apply events in order.
            let notice = Revoked {
                issuer_id: rec.ca_id.clone(),
                serial_hex: last.clone(),
                epoch,
            };
            for o in self.observers() {
                o.revoked(&notice).await?;
            }
            progress("revoke-issued", before + total);
        }
        if let Err(e) = self.issue_crl(&rec.ca_id, rec.generation, actor).await {
            tracing::warn!(ca = %rec.ca_id, error = %e, "CRL of the stopped key not regenerated; the scheduler retries");
        }
        Ok(total)
    }

    /// `stopped` ordered parents first.
    async fn top_down(
        &self,
        stopped: &[CompromiseRecord],
    ) -> Result<Vec<CompromiseRecord>, CaError> {
        let keys = self.keys().await?;
        let depth = |id: &str| {
            let mut d = 0;
            let mut cur = keys.current.iter().find(|h| h.record.id == id);
            while let Some(h) = cur {
                d += 1;
                if d > 16 {
                    break;
                }
                cur = h
                    .record
                    .parent_id
                    .as_deref()
                    .and_then(|p| keys.current.iter().find(|x| x.record.id == p));
            }
            d
        };
        let mut v = stopped.to_vec();
        v.sort_by_key(|r| depth(&r.ca_id));
        Ok(v)
    }

    /// Give the stopped CA of `rec` a new key and certificate under its parent, unless an
    /// earlier run did (or, for a CA signed elsewhere, its certificate was imported since). A
    /// CA signed elsewhere gets its new key and a CSR for its issuer; a CA whose parent is in
    /// `waiting` (stopped CAs of this response with no replacement yet) waits too.
    async fn replace(
        &self,
        rec: &CompromiseRecord,
        waiting: &[&str],
        actor: &str,
    ) -> Result<Replaced, CaError> {
        let current = self.issuer(&rec.ca_id).await?;
        let mut out = Replaced {
            ca: rec.ca_id.clone(),
            stopped_generation: rec.generation,
            generation: None,
            serial_hex: None,
            subject_key_identifier: None,
            csr_pem: None,
            pending: None,
        };
        if current.record.generation > rec.generation {
            // A replacement this response imported (a CA signed elsewhere) has no delegated
            // OCSP signer yet: the import saw only the revoked one.
            self.ocsp_signer_like(rec, &current.record.profile, actor)
                .await?;
            out.generation = Some(current.record.generation);
            out.serial_hex = Some(current.record.serial_hex.clone());
            out.subject_key_identifier = Some(hex::encode(current.cert.ski().unwrap_or_default()));
            return Ok(out);
        }
        if let Some(parent) = current.record.parent_id.as_deref()
            && waiting.contains(&parent)
        {
            // Its parent's current key is stopped too, and only the parent's new key may sign
            // the new certificate: that key is not usable until its issuer's certificate is
            // imported.
            out.pending = Some(format!(
                "waits for the replacement of its parent '{parent}'; once that is imported, run \
                 `pnc-pki ca compromise --ca {}` again",
                rec.origin
            ));
            return Ok(out);
        }
        if super::rollover::is_external(&current) {
            out.csr_pem = Some(self.rollover_csr(&rec.ca_id, actor).await?);
            out.pending = Some(format!(
                "signed by an issuer this service does not hold ({}): its new key is in the \
                 token; have the issuer sign the CSR of the new key (`csr_pem`, or `pnc-pki ca \
                 rollover --ca {id} --csr-out FILE`), import the certificate with `pnc-pki ca \
                 rollover --ca {id} --cert FILE`, then run `pnc-pki ca compromise --ca {}` \
                 again; until then the CA and those below it issue nothing",
                current.cert.issuer_string(),
                rec.origin,
                id = rec.ca_id,
            ));
            return Ok(out);
        }
        let done = self.rollover(&rec.ca_id, actor).await?;
        self.ocsp_signer_like(rec, &current.record.profile, actor)
            .await?;
        self.inner
            .store
            .audit(&AuditEvent::new(
                actor,
                "ca.compromise.replaced",
                &rec.ca_id,
                serde_json::json!({
                    "stopped_generation": rec.generation,
                    "generation": done.generation,
                    "serial": done.serial_hex,
                    "subject_key_identifier": done.subject_key_identifier,
                }),
            ))
            .await?;
        out.generation = Some(done.generation);
        out.serial_hex = Some(done.serial_hex);
        out.subject_key_identifier = Some(done.subject_key_identifier);
        Ok(out)
    }

    /// Give the replacement of the stopped CA of `rec` (profile `profile`) a delegated OCSP
    /// signer when the stopped key had one and it has none yet. The stopped key's signer was
    /// revoked with the rest, so the rollover did not see one to renew.
    async fn ocsp_signer_like(
        &self,
        rec: &CompromiseRecord,
        profile: &str,
        actor: &str,
    ) -> Result<(), CaError> {
        let signer_profile =
            super::bootstrap::ocsp_signer_profile(self.inner.profiles.get(profile)?.standard);
        let had_signer = self
            .inner
            .store
            .list_certs(&CertFilter {
                issuer_id: Some(rec.ca_id.clone()),
                profile: Some(signer_profile.to_string()),
                limit: Some(1000),
                ..Default::default()
            })
            .await?
            .iter()
            .any(|c| c.issuer_generation == rec.generation);
        if had_signer && let Err(e) = self.ensure_ocsp_signer(&rec.ca_id, false, actor).await {
            tracing::warn!(ca = %rec.ca_id, error = %e, "no delegated OCSP signer for the replacement yet; the key signs its OCSP answers itself");
        }
        Ok(())
    }
}
