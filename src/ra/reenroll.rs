//! Re-enrollment (RFC 7030 `simplereenroll`) authenticated by the certificate being renewed, and
//! superseding: a certificate re-issued for the same subject replaces the ones before it.

use der::Encode;

use super::{Ra, RaError, ocpp};
use crate::model::{AuditEvent, CertFilter, CertRecord, Issued, RevocationReason, StatusFilter};
use crate::policy::authz::{Family, Operation, Principal};
use crate::policy::profile::Standard;
use crate::x509::ParsedCert;

impl Ra {
    /// RFC 7030 `simplereenroll`: `client_cert` (DER, the certificate the client presented over
    /// mutual TLS) must be one of ours, of `family`'s profile, valid and not revoked; the CSR
    /// must ask for exactly its subject (and, for a server certificate, names it already had).
    /// The holder acts as a client of the family's role whose only tenant is the certificate's
    /// own, so every enrollment check applies. The old certificate is then superseded.
    pub async fn reenroll(
        &self,
        family: Family,
        standard: Standard,
        client_cert: Option<&[u8]>,
        csr_input: &[u8],
    ) -> Result<Issued, RaError> {
        let profile_name = family.profile(standard);
        let unauth = |detail: &str| RaError::Unauthenticated {
            code: "client_certificate_required",
            detail: detail.to_string(),
        };
        let der = client_cert.ok_or_else(|| {
            unauth("simplereenroll needs the current certificate presented over mutual TLS")
        })?;
        let old = self
            .record_by_bytes(der)
            .await?
            .ok_or_else(|| unauth("the client certificate was not issued by this service"))?;
        let now = self.now();
        if old.status != crate::model::CertStatus::Valid || old.not_after <= now {
            return Err(unauth("the client certificate is revoked or expired"));
        }
        // Judged like every certificate that comes in: its path (through the CA key that
        // signed it, retired or not) and the role of the profile it was issued under.
        if let Some(role) = crate::validation::Role::of_profile(&old.profile)
            && let Err(f) = self.judge(der, &[], role).await?
        {
            return Err(unauth(&format!("the client certificate is refused: {f}")));
        }
        let holder = holder_principal(&old, family, der);
        let op = Operation::Enroll(family);
        let r = async {
            if old.profile != profile_name {
                return Err(RaError::Policy(crate::policy::PolicyError::Denied(
                    crate::policy::authz::Denial {
                        code: crate::policy::authz::DenialCode::ForbiddenRole,
                        detail: format!(
                            "a {} certificate cannot re-enroll for {profile_name}",
                            old.profile
                        ),
                        actor: holder.actor(),
                        operation: op,
                    },
                )));
            }
            let parsed = crate::x509::csr::parse_and_verify(csr_input)?;
            let old_cert = ParsedCert::from_der(&old.der).map_err(crate::ca::CaError::from)?;
            let csr_subject = parsed.subject.to_der().unwrap_or_default();
            if csr_subject != old_cert.subject_der() {
                return Err(RaError::bad(
                    "subject_mismatch",
                    "simplereenroll must ask for the subject of the current certificate",
                ));
            }
            self.limit_enrollment(&holder)?;
            self.issue_checked(
                &holder,
                op,
                &profile_name,
                csr_input,
                Some(&old.issuer_id),
                None,
                ocpp::Extra::default(),
                None,
            )
            .await
        }
        .await;
        let issued = match r {
            Ok(i) => i,
            Err(e) => {
                return Err(self
                    .refused(&holder, "certificate.enroll.refused", &profile_name, e)
                    .await);
            }
        };
        if old.profile.starts_with("contract") {
            self.link_reenrolled_contract(&old, &issued, csr_input)
                .await;
        }
        self.supersede_previous(&issued, &holder.actor()).await;
        Ok(issued)
    }

    /// A re-enrolled contract certificate belongs to the contract of the one it renews: linked
    /// to it, so that the contract lists it and its cancellation revokes it (cancellation also
    /// revokes every valid contract certificate of the contract's EMAID, so a link that failed
    /// here is no escape).
    async fn link_reenrolled_contract(&self, old: &CertRecord, issued: &Issued, csr: &[u8]) {
        let r = async {
            let Some(contract) = self
                .inner
                .store
                .contract_of_certificate(&old.issuer_id, &old.serial_hex)
                .await?
            else {
                return Ok::<(), RaError>(());
            };
            let schema = if issued.record.profile.ends_with("-20") {
                "iso15118-20"
            } else {
                "iso15118-2"
            };
            self.inner
                .store
                .link_to_contract(
                    (&issued.record.issuer_id, &issued.record.serial_hex),
                    &contract,
                    schema,
                    csr,
                    self.now(),
                )
                .await?;
            Ok(())
        }
        .await;
        if let Err(e) = r {
            tracing::warn!(serial = %issued.record.serial_hex, error = %e, "linking a re-enrolled contract certificate to its contract failed");
        }
    }

    /// Supersede the other valid certificates of the same profile, subject and tenant as
    /// `issued`: a station re-issued a certificate keeps only the newest. They are revoked
    /// (`superseded`) once the grace period has passed (`PNC_SUPERSEDE_GRACE`; at once when it
    /// is zero), the schedule audited. A failure is logged; the new certificate stands.
    pub(super) async fn supersede_previous(&self, issued: &Issued, actor: &str) {
        let Ok(ca) = self.ca() else {
            return;
        };
        let grace = self.inner.supersede_grace;
        let older = self
            .inner
            .store
            .list_certs(&CertFilter {
                profile: Some(issued.record.profile.clone()),
                subject: Some(issued.record.subject.clone()),
                tenant: issued.record.tenant.clone(),
                status: Some(StatusFilter::Valid),
                limit: Some(1000),
                ..Default::default()
            })
            .await;
        let older = match older {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "could not list certificates to supersede");
                return;
            }
        };
        for c in older {
            if c.issuer_id == issued.record.issuer_id && c.serial_hex == issued.record.serial_hex {
                continue;
            }
            let by = (
                issued.record.issuer_id.as_str(),
                issued.record.serial_hex.as_str(),
            );
            let r = if grace == 0 {
                ca.revoke(
                    &c.issuer_id,
                    &c.serial_hex,
                    RevocationReason::Superseded,
                    actor,
                )
                .await
                .map(|_| ())
                .map_err(RaError::from)
            } else {
                let at = self.now().saturating_add(grace);
                let event = AuditEvent::new(
                    actor,
                    "certificate.supersede.scheduled",
                    &format!("{}/{}", c.issuer_id, c.serial_hex),
                    serde_json::json!({
                        "by": format!("{}/{}", by.0, by.1),
                        "revoke_at": at,
                    }),
                );
                self.inner
                    .store
                    .schedule_supersession((&c.issuer_id, &c.serial_hex), by, at, &event)
                    .await
                    .map(|_| ())
                    .map_err(RaError::from)
            };
            if let Err(e) = r {
                tracing::warn!(issuer = %c.issuer_id, serial = %c.serial_hex, error = %e, "superseding failed");
            }
        }
    }
}

impl Ra {
    /// Revoke (superseded) the replaced certificates whose grace period has ended (at most 100
    /// a call); what fails stays scheduled for the next sweep. Returns how many were due.
    pub async fn sweep_cert_supersessions(&self) -> Result<usize, RaError> {
        let due = self
            .inner
            .store
            .due_cert_supersessions(self.now(), 100)
            .await?;
        let ca = self.ca()?;
        for (issuer, serial) in &due {
            let r = ca
                .revoke(
                    issuer,
                    serial,
                    RevocationReason::Superseded,
                    "service:supersede",
                )
                .await;
            match r {
                // Revoked now, revoked before (by hand), or gone: nothing is left to do.
                Ok(_) | Err(crate::ca::CaError::NotFound(_)) => {
                    self.inner
                        .store
                        .cert_supersession_done(issuer, serial)
                        .await?;
                }
                Err(e) => {
                    tracing::warn!(issuer = %issuer, serial = %serial, error = %e, "revoking a superseded certificate failed; the sweep retries");
                }
            }
        }
        Ok(due.len())
    }

    /// How often the supersession sweeper runs: every minute, or as often as the grace period
    /// (at least every second) when it is shorter.
    pub fn supersession_sweep_interval(&self) -> std::time::Duration {
        let g = u64::try_from(self.inner.supersede_grace).unwrap_or(60);
        std::time::Duration::from_secs(g.clamp(1, 60))
    }
}

/// The holder of certificate `rec` as a client: the family's role, its own tenant, and (for
/// server certificates) the names it already has as its subjectAltName allow-list.
fn holder_principal(rec: &CertRecord, family: Family, der: &[u8]) -> Principal {
    let mut tenants: Vec<String> = rec.tenant.iter().cloned().collect();
    if let Ok(cert) = ParsedCert::from_der(der) {
        for san in cert.subject_alt_names() {
            tenants.push(san);
        }
    }
    let id = format!(
        "cert:{}",
        &hex::encode(<sha2::Sha256 as sha2::Digest>::digest(der))[..16]
    );
    Principal::client(&id, family.role(), tenants)
}
