//! Which contract a vehicle's ISO 15118-2 installation delivers (OPCP `setDefaultContract`):
//! the OEM's preferred MO of a vehicle, and each MO's default among its own contracts.

use sqlx::Row;

use super::{Store, StoreError, audit, dispatch};
use crate::model::AuditEvent;

/// Inside the transaction `$tx` that inserts the contract `$c`: the vehicle's first active
/// contract makes its MO the vehicle's preferred one, and an MO's first active contract for a
/// vehicle is that MO's default. Recorded, not derived from creation times, which tie within a
/// second.
macro_rules! record_first {
    ($tx:expr, $c:expr) => {{
        let c: &$crate::model::ContractRecord = $c;
        sqlx::query(
            "INSERT INTO vehicle_priorities (pcid, tenant, set_by, set_at) \
             SELECT $1, $2, $3, $4 WHERE NOT EXISTS (SELECT 1 FROM contracts \
             WHERE pcid = $1 AND status = 'active' AND id <> $5) \
             ON CONFLICT (pcid) DO UPDATE SET tenant = excluded.tenant, \
             set_by = excluded.set_by, set_at = excluded.set_at",
        )
        .bind(&c.pcid)
        .bind(&c.tenant)
        .bind(&c.created_by)
        .bind(c.created_at)
        .bind(&c.id)
        .execute(&mut *$tx)
        .await?;
        sqlx::query(
            "INSERT INTO contract_defaults (pcid, tenant, contract_id, set_by, set_at) \
             SELECT $1, $2, $5, $3, $4 WHERE NOT EXISTS (SELECT 1 FROM contracts \
             WHERE pcid = $1 AND tenant = $2 AND status = 'active' AND id <> $5) \
             ON CONFLICT (pcid, tenant) DO UPDATE SET contract_id = excluded.contract_id, \
             set_by = excluded.set_by, set_at = excluded.set_at",
        )
        .bind(&c.pcid)
        .bind(&c.tenant)
        .bind(&c.created_by)
        .bind(c.created_at)
        .bind(&c.id)
        .execute(&mut *$tx)
        .await?;
    }};
}
pub(super) use record_first;

/// A vehicle's stored choices.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VehicleChoices {
    /// The OEM's preferred MO (EMAID prefix), if it chose one.
    pub preferred_tenant: Option<String>,
    /// Each MO's default contract: (tenant, contract id).
    pub defaults: Vec<(String, String)>,
}

impl Store {
    /// Record `contract_id` as `tenant`'s default for `pcid`, and, when `oem_choice`, `tenant`
    /// as the vehicle's preferred MO; the audit entry commits with it.
    pub async fn set_contract_default(
        &self,
        pcid: &str,
        tenant: &str,
        contract_id: &str,
        oem_choice: bool,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let ts = self.clock.now();
        dispatch!(&self.db, pool => {
            let _turn = self.turns.take().await?;
            let mut tx = pool.begin().await?;
            let _ = audit::append_in_tx!(tx, event, ts);
            sqlx::query(
                "INSERT INTO contract_defaults (pcid, tenant, contract_id, set_by, set_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (pcid, tenant) DO UPDATE SET \
                 contract_id = excluded.contract_id, set_by = excluded.set_by, set_at = excluded.set_at",
            )
            .bind(pcid)
            .bind(tenant)
            .bind(contract_id)
            .bind(&event.actor)
            .bind(ts)
            .execute(&mut *tx)
            .await?;
            if oem_choice {
                sqlx::query(
                    "INSERT INTO vehicle_priorities (pcid, tenant, set_by, set_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (pcid) DO UPDATE SET \
                     tenant = excluded.tenant, set_by = excluded.set_by, set_at = excluded.set_at",
                )
                .bind(pcid)
                .bind(tenant)
                .bind(&event.actor)
                .bind(ts)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// The stored choices for a vehicle.
    pub async fn vehicle_choices(&self, pcid: &str) -> Result<VehicleChoices, StoreError> {
        dispatch!(&self.db, pool => {
            let pref = sqlx::query("SELECT tenant FROM vehicle_priorities WHERE pcid = $1")
                .bind(pcid)
                .fetch_optional(pool)
                .await?;
            let rows = sqlx::query(
                "SELECT tenant, contract_id FROM contract_defaults WHERE pcid = $1 ORDER BY tenant",
            )
            .bind(pcid)
            .fetch_all(pool)
            .await?;
            let mut defaults = Vec::with_capacity(rows.len());
            for r in rows {
                defaults.push((r.try_get("tenant")?, r.try_get("contract_id")?));
            }
            Ok(VehicleChoices {
                preferred_tenant: match pref {
                    Some(r) => Some(r.try_get("tenant")?),
                    None => None,
                },
                defaults,
            })
        })
    }
}
