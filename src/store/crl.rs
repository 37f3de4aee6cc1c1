//! CRL state: the newest CRL per CA key generation, whose number only grows, and the revoked
//! entries it lists.

use sqlx::Row;

use super::{Store, StoreError, audit, dispatch, reason_of};
use crate::model::{AuditEvent, CrlRecord, RevokedEntry};

/// The query of [`Store::revoked_for_crl`]. `not_after + 0` keeps SQLite (no statistics) on an
/// index of the issuer instead of walking every unexpired revoked certificate of the store
/// through (status, not_after): a CRL is reissued on every revocation (the plan is checked by a
/// test, `store::plans`).
pub(super) const REVOKED_FOR_CRL: &str = "SELECT serial_hex, revoked_at, revocation_reason \
     FROM certificates WHERE issuer_id = $1 AND issuer_generation = $3 AND status = 'revoked' \
     AND not_after + 0 > $2 ORDER BY serial_hex";

impl Store {
    /// The stored CRL of a CA's key generation.
    pub async fn get_crl(
        &self,
        issuer_id: &str,
        generation: i64,
    ) -> Result<Option<CrlRecord>, StoreError> {
        dispatch!(&self.db, pool => {
            let row = sqlx::query(
                "SELECT issuer_id, generation, crl_number, this_update, next_update, revoked_count, der \
                 FROM crls WHERE issuer_id = $1 AND generation = $2",
            )
            .bind(issuer_id)
            .bind(generation)
            .fetch_optional(pool)
            .await?;
            match row {
                Some(r) => Ok(Some(CrlRecord {
                    issuer_id: r.try_get("issuer_id")?,
                    generation: r.try_get("generation")?,
                    crl_number: r.try_get("crl_number")?,
                    this_update: r.try_get("this_update")?,
                    next_update: r.try_get("next_update")?,
                    revoked_count: r.try_get("revoked_count")?,
                    der: r.try_get("der")?,
                })),
                None => Ok(None),
            }
        })
    }

    /// Store a new CRL with its audit entry, unless a CRL with the same or a higher number is
    /// stored already (another process got there first): then neither is written and `false`
    /// comes back.
    pub async fn put_crl(&self, c: &CrlRecord, event: &AuditEvent) -> Result<bool, StoreError> {
        let ts = self.now();
        dispatch!(&self.db, pool => {
            let _turn = self.turns.take().await?;
            let mut tx = pool.begin().await?;
            let _ = audit::append_in_tx!(tx, event, ts);
            let done = sqlx::query(
                "INSERT INTO crls (issuer_id, generation, crl_number, this_update, next_update, revoked_count, der) \
                 VALUES ($1, $7, $2, $3, $4, $5, $6) \
                 ON CONFLICT (issuer_id, generation) DO UPDATE SET crl_number = excluded.crl_number, \
                 this_update = excluded.this_update, next_update = excluded.next_update, \
                 revoked_count = excluded.revoked_count, der = excluded.der \
                 WHERE crls.crl_number < excluded.crl_number",
            )
            .bind(&c.issuer_id)
            .bind(c.crl_number)
            .bind(c.this_update)
            .bind(c.next_update)
            .bind(c.revoked_count)
            .bind(&c.der)
            .bind(c.generation)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                return Ok(false);
            }
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Revoked certificates signed by one key generation of an issuer that have not expired at
    /// `now`, by serial.
    pub async fn revoked_for_crl(
        &self,
        issuer_id: &str,
        generation: i64,
        now: i64,
    ) -> Result<Vec<RevokedEntry>, StoreError> {
        dispatch!(&self.db, pool => {
            let rows = sqlx::query(REVOKED_FOR_CRL)
            .bind(issuer_id)
            .bind(now)
            .bind(generation)
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                let at: Option<i64> = r.try_get("revoked_at")?;
                out.push(RevokedEntry {
                    serial_hex: r.try_get("serial_hex")?,
                    revoked_at: at.unwrap_or(0),
                    reason: reason_of(r.try_get("revocation_reason")?)?,
                });
            }
            Ok(out)
        })
    }

    /// How many certificates signed by one key generation of an issuer are revoked (expired
    /// ones included). Only grows: there is no un-revoking.
    pub async fn revoked_count(&self, issuer_id: &str, generation: i64) -> Result<i64, StoreError> {
        dispatch!(&self.db, pool => {
            let row = sqlx::query(
                "SELECT COUNT(*) AS n FROM certificates WHERE issuer_id = $1 \
                 AND issuer_generation = $2 AND status = 'revoked'",
            )
            .bind(issuer_id)
            .bind(generation)
            .fetch_one(pool)
            .await?;
            Ok(row.try_get("n")?)
        })
    }
}
