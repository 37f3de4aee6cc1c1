//! CA key generations: the switch of a CA to a new key (`ca rollover`) and the retired keys
//! that keep answering for the certificates they signed.

use super::{
    CA_COLUMNS, CERT_COLUMNS, Store, StoreError, audit, ca_from_row, dispatch, insert_cert,
    is_unique_violation, key_alg_of,
};
use sqlx::Row;

use crate::model::{AuditEntry, AuditEvent, CaRecord, CertRecord};

impl Store {
    /// Switch CA `new.id` from generation `new.generation - 1` to `new` in one transaction: the
    /// current row moves to `ca_retired_keys`, `new` takes its place, the new CA certificate is
    /// recorded, and the audit entry appended. A concurrent rollover of the same CA (the current
    /// generation is no longer the one the caller saw) changes nothing and fails with
    /// [`StoreError::ConcurrentChange`].
    pub async fn record_rollover(
        &self,
        new: &CaRecord,
        cert: &CertRecord,
        event: &AuditEvent,
    ) -> Result<AuditEntry, StoreError> {
        let ts = self.now();
        let old_generation = new.generation - 1;
        let retired_cols = CA_COLUMNS.to_string() + ", retired_at";
        dispatch!(&self.db, pool => {
            let _turn = self.turns.take().await?;
            let mut tx = pool.begin().await?;
            // The audit head first: it takes the write lock up front on SQLite.
            let entry = audit::append_in_tx!(tx, event, ts);
            let moved = sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO ca_retired_keys ({retired_cols}) \
                 SELECT {CA_COLUMNS}, $3 FROM cas WHERE id = $1 AND generation = $2"
            )))
            .bind(&new.id)
            .bind(old_generation)
            .bind(ts)
            .execute(&mut *tx)
            .await?;
            if moved.rows_affected() != 1 {
                return Err(StoreError::ConcurrentChange(format!(
                    "CA {} is no longer at key generation {old_generation}: another rollover \
                     committed first",
                    new.id
                )));
            }
            sqlx::query(
                "UPDATE cas SET key_id = $2, key_alg = $3, serial_hex = $4, subject = $5, \
                 cert_der = $6, not_before = $7, not_after = $8, external_chain = $9, \
                 generation = $10 WHERE id = $1",
            )
            .bind(&new.id)
            .bind(&new.key_id)
            .bind(new.key_alg.name())
            .bind(&new.serial_hex)
            .bind(&new.subject)
            .bind(&new.cert_der)
            .bind(new.not_before)
            .bind(new.not_after)
            .bind(&new.external_chain)
            .bind(new.generation)
            .execute(&mut *tx)
            .await?;
            insert_cert!(tx, cert);
            tx.commit().await?;
            Ok(entry)
        })
    }

    /// The retired key generations of every CA (of CA `id` only, when given) whose certificate
    /// has not expired at `now`, oldest first.
    pub async fn retired_ca_keys(
        &self,
        id: Option<&str>,
        now: i64,
    ) -> Result<Vec<CaRecord>, StoreError> {
        dispatch!(&self.db, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {CA_COLUMNS} FROM ca_retired_keys \
                 WHERE ($1 IS NULL OR id = $1) AND not_after > $2 ORDER BY id, generation"
            )))
            .bind(id)
            .bind(now)
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push(ca_from_row!(r));
            }
            Ok(out)
        })
    }

    /// One key generation of CA `id`: the current one or a retired one, expired or not.
    pub async fn ca_generation(
        &self,
        id: &str,
        generation: i64,
    ) -> Result<Option<CaRecord>, StoreError> {
        dispatch!(&self.db, pool => {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {CA_COLUMNS} FROM cas WHERE id = $1 AND generation = $2 \
                 UNION ALL SELECT {CA_COLUMNS} FROM ca_retired_keys WHERE id = $1 AND generation = $2"
            )))
            .bind(id)
            .bind(generation)
            .fetch_optional(pool)
            .await?;
            match row {
                Some(r) => Ok(Some(ca_from_row!(r))),
                None => Ok(None),
            }
        })
    }

    /// (number of CAs, sum of their current key generations): changes whenever a CA is added
    /// or rolls over, so a replica can tell cheaply that its view of the keys is stale.
    pub async fn ca_keys_fingerprint(&self) -> Result<(i64, i64), StoreError> {
        dispatch!(&self.db, pool => {
            let r = sqlx::query(
                "SELECT COUNT(*) AS n, CAST(COALESCE(SUM(generation), 0) AS BIGINT) AS g FROM cas",
            )
            .fetch_one(pool)
            .await?;
            Ok((r.try_get("n")?, r.try_get("g")?))
        })
    }
}
