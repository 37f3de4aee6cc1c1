//! The default contract of a vehicle (OPCP `setDefaultContract`): which of its contracts an
//! ISO 15118-2 installation delivers, which carries one contract only.
//!
//! The rule: the vehicle's first contract is its default. The OEM of the vehicle's WMI may
//! prefer another MO (its choice decides between MOs); each MO may move the default only among
//! its own contracts for that vehicle. So an MO that binds a vehicle never takes over another
//! MO's installations by doing so (the newest contract used to win).

use super::{Ra, RaError};
use crate::model::{AuditEvent, ContractRecord};
use crate::policy::authz::{Identifier, Operation, Principal, Role, Target};
use crate::store::VehicleChoices;

/// `active` in delivery order: the preferred MO's contracts (else those of the MO with the
/// vehicle's first contract) first, each MO's default first among its own, then by creation.
pub fn delivery_order(
    mut active: Vec<ContractRecord>,
    choices: &VehicleChoices,
) -> Vec<ContractRecord> {
    active.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    // Tenants in order of their first contract, the preferred one (if it has one) first.
    let mut tenants: Vec<String> = Vec::new();
    if let Some(t) = &choices.preferred_tenant
        && active.iter().any(|c| &c.tenant == t)
    {
        tenants.push(t.clone());
    }
    for c in &active {
        if !tenants.contains(&c.tenant) {
            tenants.push(c.tenant.clone());
        }
    }
    let mut out = Vec::with_capacity(active.len());
    for t in tenants {
        let default = choices
            .defaults
            .iter()
            .find(|(dt, _)| *dt == t)
            .map(|(_, id)| id.as_str());
        let mut own: Vec<ContractRecord> =
            active.iter().filter(|c| c.tenant == t).cloned().collect();
        // Stable: the MO's default first, the rest by creation.
        own.sort_by_key(|c| Some(c.id.as_str()) != default);
        out.extend(own);
    }
    out
}

impl Ra {
    /// A vehicle's stored default choices.
    pub(super) async fn vehicle_choices(&self, pcid: &str) -> Result<VehicleChoices, RaError> {
        Ok(self.inner.store.vehicle_choices(pcid).await?)
    }

    /// The id of the contract a -2 installation for `pcid` delivers now, if any.
    pub async fn default_contract_of(&self, pcid: &str) -> Result<Option<String>, RaError> {
        let active = self.active_contracts_of_vehicle(pcid).await?;
        let choices = self.vehicle_choices(pcid).await?;
        Ok(delivery_order(active, &choices)
            .first()
            .map(|c| c.id.clone()))
    }

    /// A vehicle's active contracts in delivery order (OEM of its WMI; an MO sees its own).
    pub async fn contract_priorities(
        &self,
        p: &Principal,
        pcid: &str,
    ) -> Result<Vec<ContractRecord>, RaError> {
        let visible: Vec<String> = self
            .contracts_of_vehicle(p, pcid)
            .await?
            .into_iter()
            .map(|c| c.id)
            .collect();
        let pcid = super::contracts::normalize_pcid(pcid)?;
        let active = self.active_contracts_of_vehicle(&pcid).await?;
        let choices = self.vehicle_choices(&pcid).await?;
        Ok(delivery_order(active, &choices)
            .into_iter()
            .filter(|c| visible.contains(&c.id))
            .collect())
    }

    /// [`Ra::contract_priorities`] with each contract's current ISO 15118-2 certificate.
    pub async fn contract_data_of_vehicle(
        &self,
        p: &Principal,
        pcid: &str,
    ) -> Result<Vec<(ContractRecord, Option<crate::model::CertRecord>)>, RaError> {
        let mut out = Vec::new();
        for c in self.contract_priorities(p, pcid).await? {
            let cur = self
                .inner
                .store
                .contract_certificates(&c.id)
                .await?
                .into_iter()
                .find(|x| x.status == crate::model::CertStatus::Valid && x.profile == "contract");
            out.push((c, cur));
        }
        Ok(out)
    }

    /// Make `emaid`'s contract the default of `pcid`: an OEM (of the PCID's WMI) chooses between
    /// MOs; an MO moves the default among its own contracts only.
    pub async fn set_default_contract(
        &self,
        p: &Principal,
        pcid: &str,
        emaid: &str,
    ) -> Result<ContractRecord, RaError> {
        let pcid = super::contracts::normalize_pcid(pcid)?;
        let emaid = super::contracts::normalize_emaid(emaid)?;
        let oem_choice = match p.role {
            Role::Mo => {
                self.authorize(
                    p,
                    Operation::ManageContracts,
                    Target::Identifier(Identifier::Emaid(&emaid)),
                    &format!("contracts/{emaid}/default"),
                )
                .await?;
                false
            }
            _ => {
                self.authorize(
                    p,
                    Operation::ManageProvCerts,
                    Target::Identifier(Identifier::Pcid(&pcid)),
                    &format!("provCerts/{pcid}/default"),
                )
                .await?;
                true
            }
        };
        let c = self
            .active_contract_of(&emaid)
            .await?
            .filter(|c| c.pcid == pcid)
            .ok_or_else(|| {
                RaError::NotFound(format!(
                    "Contract or Vehicle not found: no active contract of {emaid} for PCID {pcid}"
                ))
            })?;
        let ev = AuditEvent::new(
            &p.actor(),
            "contract.default",
            &format!("contract/{}", c.id),
            serde_json::json!({ "emaid": c.emaid, "pcid": c.pcid, "oem_choice": oem_choice }),
        );
        self.inner
            .store
            .set_contract_default(&pcid, &c.tenant, &c.id, oem_choice, &ev)
            .await?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ContractStatus;

    fn c(id: &str, tenant: &str, at: i64) -> ContractRecord {
        ContractRecord {
            id: id.into(),
            emaid: format!("{tenant}C{id}"),
            pcid: "WP0ZZZ99ZTS392124".into(),
            tenant: tenant.into(),
            issuer_id: None,
            organization: None,
            valid_from: None,
            valid_to: None,
            grace_seconds: 0,
            status: ContractStatus::Active,
            created_by: "t".into(),
            created_at: at,
            cancelled_at: None,
        }
    }

    fn ids(v: &[ContractRecord]) -> Vec<&str> {
        v.iter().map(|c| c.id.as_str()).collect()
    }

    #[test]
    fn the_first_contract_wins_until_someone_entitled_moves_it() {
        let all = vec![
            c("b1", "DE8AB", 20),
            c("a1", "DE8AA", 10),
            c("a2", "DE8AA", 30),
        ];
        let none = VehicleChoices::default();
        assert_eq!(ids(&delivery_order(all.clone(), &none)), ["a1", "a2", "b1"]);
        // MO B's own default changes nothing between MOs.
        let b = VehicleChoices {
            preferred_tenant: None,
            defaults: vec![("DE8AB".into(), "b1".into())],
        };
        assert_eq!(ids(&delivery_order(all.clone(), &b))[0], "a1");
        // MO A moves its default to its second contract.
        let a = VehicleChoices {
            preferred_tenant: None,
            defaults: vec![("DE8AA".into(), "a2".into())],
        };
        assert_eq!(ids(&delivery_order(all.clone(), &a)), ["a2", "a1", "b1"]);
        // The OEM prefers MO B.
        let oem = VehicleChoices {
            preferred_tenant: Some("DE8AB".into()),
            defaults: vec![("DE8AA".into(), "a2".into())],
        };
        assert_eq!(ids(&delivery_order(all.clone(), &oem)), ["b1", "a2", "a1"]);
        // A preferred MO without an active contract is passed over.
        let gone = VehicleChoices {
            preferred_tenant: Some("DE8AC".into()),
            defaults: vec![("DE8AA".into(), "zz".into())],
        };
        assert_eq!(ids(&delivery_order(all, &gone)), ["a1", "a2", "b1"]);
    }
}
