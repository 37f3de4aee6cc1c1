//! Contracts (EMAID ↔ PCID), the OEM provisioning certificate pool and the external roots the
//! operator trusts: what contract provisioning ([`super::provisioning`]) reads.

use super::{Ra, RaError};
use crate::model::{
    AuditEvent, CertRecord, CertStatus, ContractRecord, ContractStatus, ProvCertRecord,
    RevocationReason, RootKind, TrustedRoot,
};
use crate::policy::authz::{Identifier, Operation, Principal, Role, Target};
use crate::policy::identifiers;
use crate::store::ContractQuery;
use crate::x509::{ParsedCert, chain, name};

/// Longest grace period before an updated contract certificate is revoked: 90 days.
const MAX_GRACE_SECONDS: i64 = 90 * 86_400;

/// A contract to create.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct NewContract {
    /// EMAID, with or without separators and check digit.
    pub emaid: String,
    /// PCID of the vehicle.
    pub pcid: String,
    /// Provisioning allowed from (Unix seconds).
    #[serde(default)]
    pub valid_from: Option<i64>,
    /// Provisioning allowed until; contract certificates expire no later (Unix seconds).
    #[serde(default)]
    pub valid_to: Option<i64>,
    /// MO sub-CA to issue under (default: the profile's default issuer).
    #[serde(default)]
    pub issuer_id: Option<String>,
    /// `O` of the contract certificates (default: the issuing sub-CA's).
    #[serde(default)]
    pub organization: Option<String>,
    /// Seconds an updated certificate stays valid after its successor is issued (default 0).
    #[serde(default)]
    pub grace_seconds: Option<i64>,
}

/// The result of a cancellation.
#[derive(Debug, Clone)]
pub struct Cancellation {
    /// The contract as it is now.
    pub contract: ContractRecord,
    /// Certificates revoked by this call.
    pub revoked: Vec<CertRecord>,
}

/// An uploaded OEM provisioning chain (DER).
#[derive(Debug, Clone)]
pub struct ProvCertUpload {
    /// The vehicle's OEM provisioning certificate.
    pub vehicle: Vec<u8>,
    /// OEM sub-CA 1.
    pub sub_ca1: Option<Vec<u8>>,
    /// OEM sub-CA 2.
    pub sub_ca2: Option<Vec<u8>>,
    /// `xsdMsgDefNamespace`.
    pub namespace: String,
}

/// Normalise an EMAID (-2 with check digit, else -20).
pub fn normalize_emaid(s: &str) -> Result<String, RaError> {
    identifiers::normalize_emaid(s)
        .or_else(|_| identifiers::normalize_emaid_20(s))
        .map_err(|e| RaError::bad("bad_emaid", e.to_string()))
}

/// Validate a PCID (-2 or -20), uppercase.
pub fn normalize_pcid(s: &str) -> Result<String, RaError> {
    identifiers::validate_pcid(s)
        .or_else(|_| identifiers::validate_pcid_20(s))
        .map_err(|e| RaError::bad("bad_pcid", e.to_string()))
}

fn random_id() -> Result<String, RaError> {
    let mut b = [0u8; 12];
    openssl::rand::rand_bytes(&mut b).map_err(|e| RaError::Internal(e.to_string()))?;
    Ok(hex::encode(b))
}

/// The CN of a certificate.
pub(super) fn common_name(c: &ParsedCert) -> Option<String> {
    name::values(c.tbs().subject().as_ref(), name::OID_CN)
        .into_iter()
        .next()
}

impl Ra {
    // --------------------------------------------------------------------------- contracts

    /// Create a contract for an EMAID of the caller's tenants; the OEM of its vehicle hears of it
    /// (`oem.contract.created`).
    pub async fn create_contract(
        &self,
        p: &Principal,
        c: NewContract,
    ) -> Result<ContractRecord, RaError> {
        self.create_contract_with(p, c, true).await
    }

    /// [`Ra::create_contract`] without the event: for a caller that announces the contract
    /// together with its data.
    pub(super) async fn create_contract_quietly(
        &self,
        p: &Principal,
        c: NewContract,
    ) -> Result<ContractRecord, RaError> {
        self.create_contract_with(p, c, false).await
    }

    async fn create_contract_with(
        &self,
        p: &Principal,
        c: NewContract,
        announce: bool,
    ) -> Result<ContractRecord, RaError> {
        let emaid = normalize_emaid(&c.emaid)?;
        let pcid = normalize_pcid(&c.pcid)?;
        self.authorize(
            p,
            Operation::ManageContracts,
            Target::Identifier(Identifier::Emaid(&emaid)),
            &format!("contracts/{emaid}"),
        )
        .await?;
        let now = self.now();
        if let (Some(f), Some(t)) = (c.valid_from, c.valid_to)
            && t <= f
        {
            return Err(RaError::bad(
                "bad_validity",
                "valid_to must be after valid_from",
            ));
        }
        if c.valid_to.is_some_and(|t| t <= now) {
            return Err(RaError::bad("bad_validity", "valid_to is in the past"));
        }
        let grace = c.grace_seconds.unwrap_or(0);
        if !(0..=MAX_GRACE_SECONDS).contains(&grace) {
            return Err(RaError::bad(
                "bad_grace",
                format!("grace_seconds must be 0..={MAX_GRACE_SECONDS}"),
            ));
        }
        // A contract is refused at creation when its certificates could never be issued: its
        // issuer must be an MO sub-CA 2 of the contract's schema (an EMAID of the -2 form is a
        // -2 contract; its -20 installations use the default -20 MO sub-CA 2), and its subject
        // (built attribute by attribute, as issuance builds it) must pass the profile.
        let profile = if identifiers::normalize_emaid(&emaid).is_ok() {
            "contract"
        } else {
            "contract-20"
        };
        let prof = self.inner.profiles.get(profile)?.clone();
        if let Some(id) = &c.issuer_id {
            let ca = self.inner.store.get_ca(id).await?;
            if !ca.is_some_and(|ca| prof.issuer_profiles.contains(&ca.profile)) {
                return Err(RaError::bad(
                    "bad_issuer",
                    format!(
                        "issuer_id '{}' is not an MO sub-CA 2 of this service that issues {profile} certificates ({})",
                        id.chars().take(64).collect::<String>(),
                        prof.issuer_profiles.join(", ")
                    ),
                ));
            }
        }
        if let Some(o) = &c.organization
            && (o.trim().is_empty() || o.len() > 64)
        {
            return Err(RaError::bad(
                "bad_organization",
                "organization must be 1..64 characters",
            ));
        }
        if let Some(o) = &c.organization
            && o.chars()
                .any(|ch| ch.is_control() || ",=+;\"\\<>".contains(ch))
        {
            // Never a value that reads as more than one attribute wherever a name is shown
            // or written as text (`Evil, CN=…`).
            return Err(RaError::bad(
                "bad_organization",
                "organization must not contain control characters or any of , = + ; \" \\ < >",
            ));
        }
        if let Some(o) = &c.organization {
            super::provisioning::contract_subject_of(&prof, o.trim(), &emaid).map_err(|e| {
                RaError::bad(
                    "bad_organization",
                    format!("the contract certificate's subject would be refused: {e}"),
                )
            })?;
        }
        let tenant = identifiers::emaid_prefix(&emaid)
            .map_err(|e| RaError::bad("bad_emaid", e.to_string()))?;
        let rec = ContractRecord {
            id: random_id()?,
            emaid,
            pcid,
            tenant,
            issuer_id: c.issuer_id,
            organization: c.organization.map(|o| o.trim().to_string()),
            valid_from: c.valid_from,
            valid_to: c.valid_to,
            grace_seconds: grace,
            status: ContractStatus::Active,
            created_by: p.actor(),
            created_at: now,
            cancelled_at: None,
        };
        let ev = AuditEvent::new(
            &p.actor(),
            "contract.create",
            &format!("contract/{}", rec.id),
            serde_json::json!({ "emaid": rec.emaid, "pcid": rec.pcid }),
        );
        let ev = if announce {
            ev.with_event(super::webhooks::contract_event(
                crate::events::OEM_CREATED,
                &rec,
                None,
                now,
            ))
        } else {
            ev
        };
        self.inner.store.insert_contract(&rec, &ev).await?;
        tracing::info!(contract = %rec.id, emaid = %rec.emaid, pcid = %rec.pcid, "contract created");
        Ok(rec)
    }

    /// Contracts the caller may see, filtered by EMAID and/or PCID, newest first.
    pub async fn list_contracts(
        &self,
        p: &Principal,
        emaid: Option<&str>,
        pcid: Option<&str>,
        limit: Option<i64>,
    ) -> Result<Vec<ContractRecord>, RaError> {
        self.authorize(p, Operation::ReadContracts, Target::Any, "contracts")
            .await?;
        let q = ContractQuery {
            emaid: emaid.map(normalize_emaid).transpose()?,
            pcid: pcid.map(normalize_pcid).transpose()?,
            tenants: (!p.role.sees_all_tenants()).then(|| p.tenants.clone()),
            limit: limit.unwrap_or(100),
        };
        Ok(self.inner.store.list_contracts(&q).await?)
    }

    /// The active contract of a (normalised) EMAID, if any.
    pub(super) async fn active_contract_of(
        &self,
        emaid: &str,
    ) -> Result<Option<ContractRecord>, RaError> {
        Ok(self
            .inner
            .store
            .list_contracts(&ContractQuery {
                emaid: Some(emaid.to_string()),
                limit: 10,
                ..Default::default()
            })
            .await?
            .into_iter()
            .find(|c| c.status == ContractStatus::Active))
    }

    /// One contract.
    pub async fn contract(&self, p: &Principal, id: &str) -> Result<ContractRecord, RaError> {
        self.contract_for(p, Operation::ReadContracts, id).await
    }

    async fn contract_for(
        &self,
        p: &Principal,
        op: Operation,
        id: &str,
    ) -> Result<ContractRecord, RaError> {
        self.authorize(p, op, Target::Any, "contracts").await?;
        let c = self
            .inner
            .store
            .get_contract(id)
            .await?
            .ok_or_else(|| RaError::NotFound(format!("no contract {}", echo(id))))?;
        self.authorize(
            p,
            op,
            Target::Stored {
                tenant: Some(&c.tenant),
            },
            &format!("contract/{id}"),
        )
        .await?;
        Ok(c)
    }

    /// Certificates issued under a contract.
    pub async fn contract_certificates(
        &self,
        p: &Principal,
        id: &str,
    ) -> Result<Vec<CertRecord>, RaError> {
        let c = self.contract_for(p, Operation::ReadContracts, id).await?;
        Ok(self.inner.store.contract_certificates(&c.id).await?)
    }

    /// Cancel a contract: nothing more is provisioned under it, and every certificate it
    /// produced is revoked (OCSP answers "revoked" when this returns). Idempotent: a repeated
    /// call revokes what an interrupted one left.
    pub async fn cancel_contract(&self, p: &Principal, id: &str) -> Result<Cancellation, RaError> {
        self.cancel_contract_keyed(p, id, None).await
    }

    /// [`Ra::cancel_contract`] under an idempotency key (`Idempotency-Key`), bound to the caller
    /// and the contract.
    ///
    /// The key is recorded in the cancellation's transaction (or alone, when the contract was
    /// cancelled before) together with the certificates still valid then, which this call then
    /// revokes: the key and the target are stored, and the answer is rebuilt from the store
    /// (the contract as it is now, those certificates). So a retry within 24 h answers the
    /// same `revoked` list as the first call (not an empty one), and after a crash between the
    /// cancellation and the last revocation a retry finds the key and revokes the rest before
    /// answering. The same key for another contract is refused (409 `idempotency_key_reused`).
    pub async fn cancel_contract_keyed(
        &self,
        p: &Principal,
        id: &str,
        idempotency_key: Option<&str>,
    ) -> Result<Cancellation, RaError> {
        let c = self.contract_for(p, Operation::ManageContracts, id).await?;
        let idem = idempotency_key
            .map(|k| super::idempotency(p, k, "contract.cancel", c.id.as_bytes()))
            .transpose()?;
        let mut earlier = match &idem {
            Some(k) => self.earlier(k).await?,
            None => None,
        };
        if earlier.is_none() {
            let ev = AuditEvent::new(
                &p.actor(),
                "contract.cancel",
                &format!("contract/{}", c.id),
                serde_json::json!({ "emaid": c.emaid, "pcid": c.pcid }),
            )
            .with_event(super::webhooks::contract_event(
                crate::events::OEM_DELETED,
                &c,
                None,
                self.now(),
            ));
            match self
                .inner
                .store
                .cancel_contract(&c.id, self.now(), &ev, idem.as_ref())
                .await
            {
                Ok(_) => {}
                // A concurrent call with this key committed first: answer as it does.
                Err(crate::store::StoreError::IdempotencyKeyTaken(_)) => {}
                Err(e) => return Err(e.into()),
            }
            if let Some(k) = &idem {
                earlier = self.earlier(k).await?;
            }
        }
        let mut revoked = Vec::new();
        for cert in self.certificates_of_cancelled(&c).await? {
            self.ca()?
                .revoke(
                    &cert.issuer_id,
                    &cert.serial_hex,
                    RevocationReason::CessationOfOperation,
                    &p.actor(),
                )
                .await?;
            revoked.push(cert);
        }
        if let Some(prev) = earlier {
            // Keyed: the certificates the key was recorded with, as they are now.
            let list: Vec<(String, String)> = prev
                .response
                .as_deref()
                .and_then(|r| serde_json::from_slice(r).ok())
                .ok_or_else(|| {
                    RaError::Internal("an idempotency key of a cancellation has no answer".into())
                })?;
            revoked.clear();
            for (issuer, serial) in list {
                if let Some(cert) = self.inner.store.get_cert(&issuer, &serial).await? {
                    revoked.push(cert);
                }
            }
        } else if idem.is_some() {
            return Err(RaError::Internal(
                "an idempotency key of a cancellation was recorded but is not found".into(),
            ));
        }
        let contract = self.inner.store.get_contract(&c.id).await?.unwrap_or(c);
        tracing::info!(contract = %contract.id, revoked = revoked.len(), "contract cancelled");
        Ok(Cancellation { contract, revoked })
    }

    /// The valid certificates a cancellation of `c` revokes: every certificate provisioned
    /// under it, and every contract certificate of its EMAID made before it was cancelled
    /// (re-enrolled over EST, or issued from a CSR), so that no contract certificate of a
    /// cancelled contract stays valid.
    async fn certificates_of_cancelled(
        &self,
        c: &ContractRecord,
    ) -> Result<Vec<CertRecord>, RaError> {
        let mut out: Vec<CertRecord> = self
            .inner
            .store
            .contract_certificates(&c.id)
            .await?
            .into_iter()
            .filter(|x| x.status == CertStatus::Valid)
            .collect();
        let cancelled_at = self
            .inner
            .store
            .get_contract(&c.id)
            .await?
            .and_then(|x| x.cancelled_at)
            .unwrap_or(self.now());
        for profile in ["contract", "contract-20"] {
            let more = self
                .inner
                .store
                .list_certs(&crate::model::CertFilter {
                    profile: Some(profile.to_string()),
                    emaid: Some(c.emaid.clone()),
                    status: Some(crate::model::StatusFilter::Valid),
                    limit: Some(1000),
                    ..Default::default()
                })
                .await?;
            for x in more {
                if x.created_at <= cancelled_at
                    && !out
                        .iter()
                        .any(|o| o.issuer_id == x.issuer_id && o.serial_hex == x.serial_hex)
                {
                    out.push(x);
                }
            }
        }
        Ok(out)
    }

    // ------------------------------------------------------------------------ trusted roots

    /// Contracts of a vehicle: all of them for the OEM of its WMI, an auditor or admin; an MO's
    /// own for an MO.
    pub async fn contracts_of_vehicle(
        &self,
        p: &Principal,
        pcid: &str,
    ) -> Result<Vec<ContractRecord>, RaError> {
        let pcid = normalize_pcid(pcid)?;
        let target = if p.role == Role::Oem {
            Target::Identifier(Identifier::Pcid(&pcid))
        } else {
            Target::Any
        };
        self.authorize(
            p,
            Operation::ReadProvCerts,
            target,
            &format!("contracts/{pcid}"),
        )
        .await?;
        let tenants = (p.role == Role::Mo).then(|| p.tenants.clone());
        Ok(self
            .inner
            .store
            .list_contracts(&ContractQuery {
                pcid: Some(pcid),
                tenants,
                limit: 100,
                ..Default::default()
            })
            .await?)
    }

    /// Trust an external root (operator only).
    pub async fn trust_root(
        &self,
        p: &Principal,
        kind: RootKind,
        der: &[u8],
    ) -> Result<TrustedRoot, RaError> {
        self.authorize(p, Operation::ManageTrust, Target::Any, "trust")
            .await?;
        let cert = ParsedCert::from_der(der)
            .map_err(|e| RaError::bad("bad_certificate", e.to_string()))?;
        if !cert.is_self_issued() {
            return Err(RaError::bad(
                "not_a_root",
                format!("{} is not self-issued", cert.subject_string()),
            ));
        }
        // A root must verify with its own key.
        chain::verify(
            der,
            &[],
            &[der],
            cert.not_before().max(self.now().min(cert.not_after())),
        )
        .map_err(|e| RaError::bad("not_a_root", e.to_string()))?;
        let root = TrustedRoot {
            id: cert.sha256_hex(),
            kind,
            subject: cert.subject_string(),
            serial_hex: cert.serial_hex(),
            not_before: cert.not_before(),
            not_after: cert.not_after(),
            der: der.to_vec(),
            added_at: self.now(),
        };
        let ev = AuditEvent::new(
            &p.actor(),
            "trust.add",
            &format!("root/{}", root.id),
            serde_json::json!({ "kind": kind.as_str(), "subject": root.subject }),
        )
        .with_event(super::webhooks::root_event(
            crate::events::ROOT_ADDED,
            der,
            kind.opcp_type(),
            self.now(),
        ));
        self.inner.store.add_trusted_root(&root, &ev).await?;
        self.forget_trust();
        Ok(root)
    }

    /// Every trusted external root (public data, as the root pool is).
    pub async fn trusted_roots(&self) -> Result<Vec<TrustedRoot>, RaError> {
        Ok(self.inner.store.list_trusted_roots().await?)
    }

    /// Stop trusting a root, by its SHA-256 (operator only).
    pub async fn distrust_root(&self, p: &Principal, id: &str) -> Result<(), RaError> {
        self.authorize(p, Operation::ManageTrust, Target::Any, "trust")
            .await?;
        let id = id.trim().to_ascii_lowercase();
        let Some(root) = self
            .inner
            .store
            .list_trusted_roots()
            .await?
            .into_iter()
            .find(|r| r.id == id)
        else {
            return Err(RaError::NotFound(format!("no trusted root {}", echo(&id))));
        };
        // Everyone subscribed learns that the root left the pool (stations must drop it).
        let ev = AuditEvent::new(
            &p.actor(),
            "trust.remove",
            &format!("root/{id}"),
            serde_json::json!({ "kind": root.kind.as_str(), "subject": root.subject }),
        )
        .with_event(super::webhooks::root_event(
            crate::events::ROOT_REVOKED,
            &root.der,
            root.kind.opcp_type(),
            self.now(),
        ));
        if self.inner.store.remove_trusted_root(&id, &ev).await? {
            self.forget_trust();
            Ok(())
        } else {
            Err(RaError::NotFound(format!("no trusted root {}", echo(&id))))
        }
    }

    // --------------------------------------------------------------- provisioning pool

    /// Store a vehicle's OEM provisioning chain after checking it ends in a trusted OEM root.
    pub async fn put_prov_cert(
        &self,
        p: &Principal,
        u: ProvCertUpload,
    ) -> Result<ProvCertRecord, RaError> {
        let leaf = ParsedCert::from_der(&u.vehicle)
            .map_err(|e| RaError::bad("bad_certificate", format!("vehicleCertificate: {e}")))?;
        let pcid = common_name(&leaf)
            .ok_or_else(|| RaError::bad("bad_pcid", "vehicleCertificate has no CN"))?;
        let pcid = normalize_pcid(&pcid)?;
        self.authorize(
            p,
            Operation::ManageProvCerts,
            Target::Identifier(Identifier::Pcid(&pcid)),
            &format!("provCerts/{pcid}"),
        )
        .await?;
        let mut presented: Vec<Vec<u8>> = Vec::new();
        presented.extend(u.sub_ca2.clone());
        presented.extend(u.sub_ca1.clone());
        let judged = self
            .judge(
                &u.vehicle,
                &presented,
                crate::validation::Role::OemProvisioning,
            )
            .await?
            .map_err(|f| match f {
                // Revoked at its OEM's responder (or by us): OPCP's code for it.
                crate::validation::Failure::Revoked(_) => {
                    RaError::bad("oem_revoked", format!("vehicleCertificate: {f}"))
                }
                f => super::validate::upload_refusal("vehicleCertificate", f),
            })?;
        let root_der = judged.path.anchor().der.clone();
        let tenant =
            identifiers::pcid_wmi(&pcid).map_err(|e| RaError::bad("bad_pcid", e.to_string()))?;
        let rec = ProvCertRecord {
            pcid: pcid.clone(),
            tenant,
            namespace: u.namespace.chars().take(128).collect(),
            leaf_der: u.vehicle,
            sub_ca1_der: u.sub_ca1,
            sub_ca2_der: u.sub_ca2,
            root_der,
            uploaded_by: p.actor(),
            uploaded_at: self.now(),
        };
        let mut ev = AuditEvent::new(
            &p.actor(),
            "provcert.put",
            &format!("provCerts/{pcid}"),
            serde_json::json!({ "subject": leaf.subject_string(), "serial": leaf.serial_hex() }),
        );
        // A new key for a pooled vehicle (a factory reset, a new OEM certificate): contract data
        // encrypted for the old key is useless; the MOs of its contracts are told.
        let previous = self.inner.store.get_prov_cert(&pcid).await?;
        if let Some(old) = previous
            && ParsedCert::from_der(&old.leaf_der)
                .map(|o| o.spki_der() != leaf.spki_der())
                .unwrap_or(true)
        {
            for c in self.active_contracts_of_vehicle(&pcid).await? {
                ev = ev.with_event(super::webhooks::contract_event(
                    crate::events::PROV_UPDATED,
                    &c,
                    None,
                    self.now(),
                ));
            }
        }
        self.inner.store.put_prov_cert(&rec, &ev).await?;
        Ok(rec)
    }

    /// A vehicle's chain (OEMs of that WMI; MOs and auditors).
    pub async fn prov_cert(&self, p: &Principal, pcid: &str) -> Result<ProvCertRecord, RaError> {
        let pcid = normalize_pcid(pcid)?;
        let target = if p.role == Role::Oem {
            Target::Identifier(Identifier::Pcid(&pcid))
        } else {
            Target::Any
        };
        self.authorize(
            p,
            Operation::ReadProvCerts,
            target,
            &format!("provCerts/{pcid}"),
        )
        .await?;
        self.inner.store.get_prov_cert(&pcid).await?.ok_or_else(|| {
            RaError::NotFound(format!("no provisioning certificate for PCID {pcid}"))
        })
    }

    /// The provisioning-certificate pool, newest first: all of it for admins and auditors, an
    /// OEM's own WMIs for an OEM. Others (an MO) look vehicles up by PCID instead of listing
    /// every vehicle.
    pub async fn list_prov_certs(
        &self,
        p: &Principal,
        limit: i64,
    ) -> Result<Vec<ProvCertRecord>, RaError> {
        self.authorize(p, Operation::ReadProvCerts, Target::Any, "provCerts")
            .await?;
        if p.via == crate::policy::authz::Via::Operator || p.role.sees_all_tenants() {
            return Ok(self.inner.store.list_prov_certs(None, limit).await?);
        }
        if p.role != Role::Oem {
            self.authorize(
                p,
                Operation::ReadProvCerts,
                Target::NoIdentifier("a listing of every vehicle"),
                "provCerts",
            )
            .await?;
        }
        let mut out = Vec::new();
        for t in &p.tenants {
            out.extend(self.inner.store.list_prov_certs(Some(t), limit).await?);
        }
        out.sort_by_key(|p| std::cmp::Reverse(p.uploaded_at));
        out.truncate(usize::try_from(limit.clamp(1, 1000)).unwrap_or(1000));
        Ok(out)
    }

    /// Remove a vehicle's chain.
    pub async fn delete_prov_cert(&self, p: &Principal, pcid: &str) -> Result<(), RaError> {
        let pcid = normalize_pcid(pcid)?;
        self.authorize(
            p,
            Operation::ManageProvCerts,
            Target::Identifier(Identifier::Pcid(&pcid)),
            &format!("provCerts/{pcid}"),
        )
        .await?;
        let mut ev = AuditEvent::new(
            &p.actor(),
            "provcert.delete",
            &format!("provCerts/{pcid}"),
            serde_json::json!({}),
        );
        for c in self.active_contracts_of_vehicle(&pcid).await? {
            ev = ev.with_event(super::webhooks::contract_event(
                crate::events::PROV_DELETED,
                &c,
                None,
                self.now(),
            ));
        }
        if self.inner.store.delete_prov_cert(&pcid, &ev).await? {
            Ok(())
        } else {
            Err(RaError::NotFound(format!(
                "no provisioning certificate for PCID {pcid}"
            )))
        }
    }
}

impl Ra {
    /// A vehicle's active contracts (any MO's), oldest first.
    pub(super) async fn active_contracts_of_vehicle(
        &self,
        pcid: &str,
    ) -> Result<Vec<ContractRecord>, RaError> {
        let mut v: Vec<ContractRecord> = self
            .inner
            .store
            .list_contracts(&ContractQuery {
                pcid: Some(pcid.to_string()),
                limit: 100,
                ..Default::default()
            })
            .await?
            .into_iter()
            .filter(|c| c.status == ContractStatus::Active)
            .collect();
        v.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(v)
    }
}

fn echo(s: &str) -> String {
    s.chars().take(64).collect()
}
