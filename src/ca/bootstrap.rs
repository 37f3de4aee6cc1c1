//! Hierarchy bootstrap (`pnc-pki init`): create the configured CAs, the service-held certificates
//! (CPS leaf) and one delegated OCSP signer per CA. Idempotent: what exists is left alone.

use super::build::{Signer, build_certificate};
use super::{Ca, CaError, IssuerHandle};
use crate::config::{CaSpec, HierarchyConfig};
use crate::hsm::KeyRef;
use crate::model::{AuditEvent, CaRecord, CertRecord, CertStatus};
use crate::policy::profile::{Kind, Standard};
use crate::policy::subject::{self, CheckedSubject};
use crate::x509::{self, ParsedCert};

/// One line of the init report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Step {
    /// What the line is about (a CA id, `ca/ocsp-signer`, …).
    pub id: String,
    /// Whether this run created it.
    pub created: bool,
    /// What was done or found.
    pub detail: String,
}

/// The CKA_LABEL of a key the service creates.
pub(super) fn key_label(kind: &str, id: &str) -> String {
    format!("pnc-pki:{kind}:{id}")
}

/// The delegated OCSP signer profile for CAs of `standard`.
pub(crate) fn ocsp_signer_profile(standard: Standard) -> &'static str {
    match standard {
        Standard::Iso2 => "ocsp-signer",
        Standard::Iso20 => "ocsp-signer-20",
        Standard::Ocpp => "ocsp-signer-ocpp",
    }
}

impl Ca {
    /// Create what `cfg` describes and does not exist yet.
    pub async fn init_hierarchy(
        &self,
        cfg: &HierarchyConfig,
        actor: &str,
    ) -> Result<Vec<Step>, CaError> {
        let mut steps = Vec::new();
        for spec in &cfg.ca {
            steps.push(self.ensure_ca(spec, actor).await?);
        }
        for spec in &cfg.service_cert {
            steps.push(self.ensure_service_cert(spec, actor).await?);
        }
        if cfg.ocsp_signers {
            for ca in self.inner.store.list_cas().await? {
                steps.push(self.ensure_ocsp_signer(&ca.id, false, actor).await?);
            }
        }
        Ok(steps)
    }

    async fn ensure_ca(&self, spec: &CaSpec, actor: &str) -> Result<Step, CaError> {
        if let Some(existing) = self.inner.store.get_ca(&spec.id).await? {
            return Ok(Step {
                id: spec.id.clone(),
                created: false,
                detail: format!("exists ({}), unchanged", existing.subject),
            });
        }
        let profile = self.inner.profiles.get(&spec.profile)?.clone();
        if !profile.kind.is_ca() {
            return Err(CaError::Config(format!(
                "[[ca]] {} uses profile {} which is not a CA profile",
                spec.id, spec.profile
            )));
        }
        let subject = x509::name::build_from_text(&spec.subject)
            .map_err(|e| CaError::Config(format!("[[ca]] {}: subject: {e}", spec.id)))?;
        let checked = subject::check_subject(&profile, &subject)?;
        let parent = match (&spec.parent, profile.kind) {
            (None, Kind::Root) => None,
            (Some(_), Kind::Root) => {
                return Err(CaError::Config(format!(
                    "[[ca]] {}: a root has no parent",
                    spec.id
                )));
            }
            (None, _) => {
                return Err(CaError::Config(format!(
                    "[[ca]] {}: a sub-CA needs a parent",
                    spec.id
                )));
            }
            (Some(p), _) => {
                let h = self.issuer(p).await.map_err(|_| {
                    CaError::Config(format!(
                        "[[ca]] {}: parent '{p}' does not exist (list parents before children)",
                        spec.id
                    ))
                })?;
                if !profile.issuer_profiles.contains(&h.record.profile) {
                    return Err(CaError::Config(format!(
                        "[[ca]] {}: profile {} may not be issued by {} (profile {})",
                        spec.id, profile.name, p, h.record.profile
                    )));
                }
                Some(h)
            }
        };
        let label = key_label("ca", &spec.id);
        let alg = profile.key;
        // A key left by an earlier run that died before its commit (or made by `csr`) is reused
        // rather than orphaned on the token.
        let (key, public) = self
            .hsm_call(move |h| match h.find_key_by_label(&label)? {
                Some(found) if found.0.alg == alg => Ok(found),
                _ => h.generate_ca_key(alg, &label),
            })
            .await?;
        let spki = x509::spki_owned(public.alg, &public.point)?;
        let signer = match &parent {
            Some(h) => Signer::Issuer(h),
            None => Signer::SelfSigned {
                key: &key,
                public: &public,
            },
        };
        let cert = build_certificate(
            self,
            &profile,
            signer,
            &checked.name,
            &[],
            &spki,
            spec.validity_days,
        )
        .await?;
        let issuer_id = parent
            .as_ref()
            .map(|p| p.record.id.clone())
            .unwrap_or_else(|| spec.id.clone());
        let now = self.now();
        let ca_rec = ca_record(
            &spec.id,
            &profile.name,
            spec.parent.clone(),
            &key,
            &cert,
            None,
            1,
            now,
        );
        let issuer_generation = parent.as_ref().map(|p| p.record.generation).unwrap_or(1);
        let cert_rec = cert_record(
            &cert,
            &issuer_id,
            issuer_generation,
            &profile.name,
            Some(&ca_rec.key_id),
            now,
        );
        let event = AuditEvent::new(
            actor,
            "ca.create",
            &spec.id,
            serde_json::json!({
                "profile": profile.name,
                "subject": ca_rec.subject,
                "parent": spec.parent,
                "serial": ca_rec.serial_hex,
                "key_id": ca_rec.key_id,
            }),
        );
        // A new root of ours joins the pool: everyone subscribed hears of it.
        let event = match (
            spec.parent.is_none(),
            crate::events::root_type_of(&profile.name),
        ) {
            (true, Some(rt)) => event.with_event(crate::events::root_event(
                crate::events::ROOT_ADDED,
                &cert.der,
                rt,
                now,
            )),
            _ => event,
        };
        self.inner
            .store
            .record_issuance(&cert_rec, Some(&ca_rec), &event, None)
            .await?;
        tracing::info!(ca = %spec.id, "CA created");
        Ok(Step {
            id: spec.id.clone(),
            created: true,
            detail: format!("created ({}, {})", ca_rec.subject, key.alg.name()),
        })
    }

    /// Certificates whose keys stay in our HSM (the CPS leaf signing provisioning responses).
    async fn ensure_service_cert(&self, spec: &CaSpec, actor: &str) -> Result<Step, CaError> {
        let parent = spec.parent.as_deref().ok_or_else(|| {
            CaError::Config(format!("[[service_cert]] {} needs a parent CA", spec.id))
        })?;
        if let Some(c) = self
            .inner
            .store
            .current_service_cert(&spec.profile, parent, None)
            .await?
        {
            return Ok(Step {
                id: spec.id.clone(),
                created: false,
                detail: format!("exists (serial {}), unchanged", c.serial_hex),
            });
        }
        let profile = self.inner.profiles.get(&spec.profile)?.clone();
        let subject = x509::name::build_from_text(&spec.subject)
            .map_err(|e| CaError::Config(format!("[[service_cert]] {}: subject: {e}", spec.id)))?;
        let checked = subject::check_subject(&profile, &subject)?;
        let issuer = self.issuer(parent).await?;
        let rec = self
            .issue_service_key_cert(&issuer, checked, &spec.id, spec.validity_days, actor)
            .await?;
        Ok(Step {
            id: spec.id.clone(),
            created: true,
            detail: format!("created (serial {})", rec.serial_hex),
        })
    }

    /// Generate a token key and issue a certificate for it (CPS leaf, OCSP signer): the key is
    /// persistent, sensitive and never extractable, like a CA key.
    async fn issue_service_key_cert(
        &self,
        issuer: &IssuerHandle,
        checked: CheckedSubject,
        label_id: &str,
        validity_days: Option<u32>,
        actor: &str,
    ) -> Result<CertRecord, CaError> {
        let profile = self.inner.profiles.get(&checked.profile)?.clone();
        let label = key_label(&profile.name, label_id);
        let alg = profile.key;
        let (key, public) = self
            .hsm_call(move |h| h.generate_ca_key(alg, &label))
            .await?;
        let spki = x509::spki_owned(public.alg, &public.point)?;
        let issued = self
            .sign_and_record(
                &profile,
                issuer,
                checked,
                spki,
                validity_days,
                Some(&key),
                actor,
                None,
            )
            .await?;
        Ok(issued.record)
    }

    /// Make sure CA `ca_id` has a delegated OCSP signer with more than a third of its life left
    /// (or, with `force`, issue a new one whatever the current one has left).
    pub async fn ensure_ocsp_signer(
        &self,
        ca_id: &str,
        force: bool,
        actor: &str,
    ) -> Result<Step, CaError> {
        let issuer = self.issuer(ca_id).await?;
        let standard = self.inner.profiles.get(&issuer.record.profile)?.standard;
        let signer_profile = ocsp_signer_profile(standard);
        let now = self.now();
        if !force
            && let Some(c) = self
                .inner
                .store
                .current_service_cert(signer_profile, ca_id, Some(issuer.record.generation))
                .await?
        {
            let life = (c.not_after - c.not_before).max(1);
            if (c.not_after - now) * 3 > life {
                return Ok(Step {
                    id: format!("{ca_id}/ocsp-signer"),
                    created: false,
                    detail: format!("exists (serial {}), unchanged", c.serial_hex),
                });
            }
        }
        let profile = self.inner.profiles.get(signer_profile)?.clone();
        let ca_name = issuer.cert.tbs().subject().as_ref();
        let mut pairs = Vec::new();
        if let Some(o) = x509::name::values(ca_name, x509::name::OID_O).first() {
            pairs.push(("O".to_string(), o.clone()));
        }
        let base = x509::name::values(ca_name, x509::name::OID_CN)
            .first()
            .cloned()
            .unwrap_or_else(|| ca_id.to_string());
        let mut signer_cn = format!("{base} OCSP Signer");
        signer_cn.truncate(64);
        pairs.push(("CN".to_string(), signer_cn));
        let subject = x509::name::build(&pairs)?;
        let checked = subject::check_subject(&profile, &subject)?;
        let rec = self
            .issue_service_key_cert(&issuer, checked, ca_id, None, actor)
            .await?;
        Ok(Step {
            id: format!("{ca_id}/ocsp-signer"),
            created: true,
            detail: format!(
                "created (serial {}, valid {} days)",
                rec.serial_hex,
                (rec.not_after - rec.not_before) / 86_400
            ),
        })
    }
}

/// The `cas` row of key generation `generation` of a CA whose key `key` we hold and whose
/// certificate is `cert`.
#[allow(clippy::too_many_arguments)]
pub(super) fn ca_record(
    id: &str,
    profile: &str,
    parent_id: Option<String>,
    key: &KeyRef,
    cert: &ParsedCert,
    external_chain: Option<String>,
    generation: i64,
    now: i64,
) -> CaRecord {
    CaRecord {
        id: id.to_string(),
        profile: profile.to_string(),
        parent_id,
        key_id: hex::encode(&key.id),
        key_alg: key.alg,
        serial_hex: cert.serial_hex(),
        subject: cert.subject_string(),
        cert_der: cert.der.clone(),
        not_before: cert.not_before(),
        not_after: cert.not_after(),
        created_at: now,
        external_chain,
        generation,
    }
}

/// The `certificates` row of a CA certificate, signed by key generation `issuer_generation` of
/// `issuer_id`.
pub(super) fn cert_record(
    cert: &ParsedCert,
    issuer_id: &str,
    issuer_generation: i64,
    profile: &str,
    key_id: Option<&str>,
    now: i64,
) -> CertRecord {
    CertRecord {
        issuer_id: issuer_id.into(),
        serial_hex: cert.serial_hex(),
        profile: profile.into(),
        subject: cert.subject_string(),
        emaid: None,
        evse_id: None,
        pcid: None,
        not_before: cert.not_before(),
        not_after: cert.not_after(),
        status: CertStatus::Valid,
        revoked_at: None,
        revocation_reason: None,
        key_id: key_id.map(str::to_string),
        tenant: None,
        der: cert.der.clone(),
        created_at: now,
        issuer_generation,
    }
}
