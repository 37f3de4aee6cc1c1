//! Scheduled supersessions: a certificate replaced by a re-issue for the same subject, revoked
//! (reason superseded) once its grace period has passed.

use sqlx::Row;

use super::{Store, StoreError, audit, dispatch};
use crate::model::AuditEvent;

impl Store {
    /// Schedule `old` to be revoked as superseded by `by` at `at`, with its audit entry, in one
    /// transaction. Returns `false` (and writes nothing) when it is already scheduled.
    pub async fn schedule_supersession(
        &self,
        old: (&str, &str),
        by: (&str, &str),
        at: i64,
        event: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let ts = self.now();
        dispatch!(&self.db, pool => {
            let _turn = self.turns.take().await?;
            let mut tx = pool.begin().await?;
            let _entry = audit::append_in_tx!(tx, event, ts);
            let n = sqlx::query(
                "INSERT INTO supersessions (issuer_id, serial_hex, by_issuer, by_serial, supersede_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (issuer_id, serial_hex) DO NOTHING",
            )
            .bind(old.0)
            .bind(old.1)
            .bind(by.0)
            .bind(by.1)
            .bind(at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 0 {
                // Already scheduled: the audit entry is rolled back with the rest.
                return Ok(false);
            }
            super::provisioning::close_provisioning!(tx, old.0, old.1, ts);
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Certificates whose supersession is due by `now` (at most `limit`), as (issuer, serial).
    pub async fn due_cert_supersessions(
        &self,
        now: i64,
        limit: i64,
    ) -> Result<Vec<(String, String)>, StoreError> {
        dispatch!(&self.db, pool => {
            let rows = sqlx::query(
                "SELECT issuer_id, serial_hex FROM supersessions WHERE supersede_at <= $1 \
                 ORDER BY supersede_at LIMIT $2",
            )
            .bind(now)
            .bind(limit)
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push((r.try_get("issuer_id")?, r.try_get("serial_hex")?));
            }
            Ok(out)
        })
    }

    /// Forget a supersession once its certificate is revoked.
    pub async fn cert_supersession_done(
        &self,
        issuer_id: &str,
        serial_hex: &str,
    ) -> Result<(), StoreError> {
        dispatch!(&self.db, pool => {
            let _turn = self.turns.take().await?;
            sqlx::query("DELETE FROM supersessions WHERE issuer_id = $1 AND serial_hex = $2")
                .bind(issuer_id)
                .bind(serial_hex)
                .execute(pool)
                .await?;
            Ok(())
        })
    }
}
