//! The OCSP tables: pre-produced responses, the revocation epoch and its events, and replica
//! leases. The protocol they implement is described in `crate::ocsp::freshness`; this module only
//! reads and writes them (all times in unix milliseconds are the writer's clock).

use sqlx::Row;

use super::{Db, Store, StoreError, dispatch, reason_of, status_of};
use crate::model::{CertStatus, RevocationReason};

/// PostgreSQL notification channel a revocation is announced on.
pub const CHANNEL: &str = "pnc_ocsp";

/// A pre-produced response row.
#[derive(Debug, Clone)]
pub struct StoredResponse {
    /// The CertID TLV it answers (the key).
    pub cert_id: Vec<u8>,
    /// Issuing CA id.
    pub issuer_id: String,
    /// Serial, hex.
    pub serial_hex: String,
    /// The certificate's status when it was signed.
    pub status: CertStatus,
    /// thisUpdate, unix seconds.
    pub this_update: i64,
    /// nextUpdate, unix seconds.
    pub next_update: i64,
    /// producedAt, unix seconds.
    pub produced_at: i64,
    /// The signed OCSPResponse, DER.
    pub response_der: Vec<u8>,
}

/// Status of a certificate as the store has it.
#[derive(Debug, Clone)]
pub struct CertState {
    /// Serial, hex as stored.
    pub serial_hex: String,
    /// Revoked or not.
    pub status: CertStatus,
    /// When it was revoked, unix seconds.
    pub revoked_at: Option<i64>,
    /// Why.
    pub revocation_reason: Option<RevocationReason>,
    /// Expiry, unix seconds.
    pub not_after: i64,
    /// Which key generation of the issuer signed it.
    pub issuer_generation: i64,
}

/// A certificate that needs a (fresh) pre-produced response.
#[derive(Debug, Clone)]
pub struct Due {
    /// Issuing CA id.
    pub issuer_id: String,
    /// Serial, hex.
    pub serial_hex: String,
}

/// A revocation event: the epoch it made and the certificate it changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationEvent {
    /// The epoch.
    pub seq: i64,
    /// Issuing CA id.
    pub issuer_id: String,
    /// Serial, hex.
    pub serial_hex: String,
}

/// A StoredResponse from an `ocsp_responses` row (either database).
macro_rules! stored_from_row {
    ($r:expr) => {{
        let r = $r;
        let status: String = r.try_get("status")?;
        StoredResponse {
            cert_id: r.try_get("cert_id")?,
            issuer_id: r.try_get("issuer_id")?,
            serial_hex: r.try_get("serial_hex")?,
            status: status_of(&status)?,
            this_update: r.try_get("this_update")?,
            next_update: r.try_get("next_update")?,
            produced_at: r.try_get("produced_at")?,
            response_der: r.try_get("response_der")?,
        }
    }};
}

/// Inside a revocation's transaction: bump the epoch (an UPDATE, so the row is locked and
/// sequence order is commit order), record which certificate changed, and drop its stored
/// "good" answers. Evaluates to the new epoch.
macro_rules! bump_epoch_in_tx {
    ($tx:expr, $issuer:expr, $serial:expr, $ts:expr) => {{
        let r = sqlx::query("UPDATE ocsp_state SET epoch = epoch + 1 WHERE id = 1 RETURNING epoch")
            .fetch_one(&mut *$tx)
            .await?;
        let epoch: i64 = sqlx::Row::try_get(&r, "epoch")?;
        sqlx::query(
            "INSERT INTO ocsp_events (seq, issuer_id, serial_hex, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(epoch)
        .bind($issuer)
        .bind($serial)
        .bind($ts)
        .execute(&mut *$tx)
        .await?;
        sqlx::query(
            "DELETE FROM ocsp_responses WHERE issuer_id = $1 AND serial_hex = $2 AND status <> 'revoked'",
        )
        .bind($issuer)
        .bind($serial)
        .execute(&mut *$tx)
        .await?;
        epoch
    }};
}
pub(super) use bump_epoch_in_tx;

/// Notifications of new revocations (PostgreSQL `LISTEN`).
pub struct RevocationListener {
    inner: sqlx::postgres::PgListener,
}

impl RevocationListener {
    /// Wait for the next notification.
    pub async fn recv(&mut self) -> Result<(), StoreError> {
        self.inner.recv().await?;
        Ok(())
    }
}

/// Upsert one pre-produced response on `$conn` (see [`Store::ocsp_store_response`]).
macro_rules! store_response {
    ($conn:expr, $r:expr) => {{
        let r: &StoredResponse = $r;
        sqlx::query(
                "INSERT INTO ocsp_responses (cert_id, issuer_id, serial_hex, status, this_update, next_update, produced_at, response_der) \
                 SELECT $1, $2, $3, $4, $5, $6, $7, $8 WHERE EXISTS \
                 (SELECT 1 FROM certificates WHERE issuer_id = $2 AND serial_hex = $3 AND status = $4) \
                 ON CONFLICT (cert_id) DO UPDATE SET issuer_id = excluded.issuer_id, serial_hex = excluded.serial_hex, \
                 status = excluded.status, this_update = excluded.this_update, next_update = excluded.next_update, \
                 produced_at = excluded.produced_at, response_der = excluded.response_der",
            )
            .bind(&r.cert_id)
            .bind(&r.issuer_id)
            .bind(&r.serial_hex)
            .bind(r.status.as_str())
            .bind(r.this_update)
            .bind(r.next_update)
            .bind(r.produced_at)
            .bind(&r.response_der)
            .execute($conn)
            .await?;
    }};
}

impl Store {
    /// The current revocation epoch.
    pub async fn ocsp_epoch(&self) -> Result<i64, StoreError> {
        dispatch!(&self.db, pool => {
            let r = sqlx::query("SELECT epoch FROM ocsp_state WHERE id = 1").fetch_one(pool).await?;
            Ok(r.try_get::<i64, _>("epoch")?)
        })
    }

    /// Wake PostgreSQL replicas (no-op on SQLite, whose replicas poll).
    pub async fn ocsp_notify(&self) -> Result<(), StoreError> {
        if let Db::Postgres(pool) = &self.db {
            sqlx::query("SELECT pg_notify($1, '')")
                .bind(CHANNEL)
                .execute(pool)
                .await?;
        }
        Ok(())
    }

    /// A listener for revocation notifications; `None` on SQLite (replicas poll there).
    pub async fn ocsp_listener(&self) -> Result<Option<RevocationListener>, StoreError> {
        match &self.db {
            Db::Postgres(pool) => {
                let mut l = sqlx::postgres::PgListener::connect_with(pool).await?;
                l.listen(CHANNEL).await?;
                Ok(Some(RevocationListener { inner: l }))
            }
            Db::Sqlite(_) => Ok(None),
        }
    }

    /// Replicas that hold a lease ending after `cutoff_ms` and have not yet applied `epoch`.
    pub async fn ocsp_lagging_replicas(
        &self,
        epoch: i64,
        cutoff_ms: i64,
    ) -> Result<i64, StoreError> {
        dispatch!(&self.db, pool => {
            let r = sqlx::query("SELECT COUNT(*) AS n FROM ocsp_replicas WHERE acked < $1 AND lease_until_ms > $2")
                .bind(epoch)
                .bind(cutoff_ms)
                .fetch_one(pool)
                .await?;
            Ok(r.try_get::<i64, _>("n")?)
        })
    }

    /// Join the replica set (no lease yet), and drop rows of replicas gone for an hour.
    pub async fn ocsp_register_replica(&self, id: &str, acked: i64) -> Result<(), StoreError> {
        let now = self.now();
        let now_ms = self.clock.now_ms();
        dispatch!(&self.db, pool => {
            let _turn = self.turns.take().await?;
            sqlx::query("INSERT INTO ocsp_replicas (id, acked, lease_until_ms, started_at) VALUES ($1, $2, 0, $3)")
                .bind(id)
                .bind(acked)
                .bind(now)
                .execute(pool)
                .await?;
            sqlx::query("DELETE FROM ocsp_replicas WHERE lease_until_ms < $1 AND id <> $2")
                .bind(now_ms - 3_600_000)
                .bind(id)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// Leave the replica set.
    pub async fn ocsp_deregister_replica(&self, id: &str) -> Result<(), StoreError> {
        dispatch!(&self.db, pool => {
            let _turn = self.turns.take().await?;
            sqlx::query("DELETE FROM ocsp_replicas WHERE id = $1").bind(id).execute(pool).await?;
            Ok(())
        })
    }

    /// Revocation events after epoch `after`, oldest first (at most 10,000).
    pub async fn ocsp_events_after(&self, after: i64) -> Result<Vec<RevocationEvent>, StoreError> {
        dispatch!(&self.db, pool => {
            let rows = sqlx::query("SELECT seq, issuer_id, serial_hex FROM ocsp_events WHERE seq > $1 ORDER BY seq LIMIT 10000")
                .bind(after)
                .fetch_all(pool)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push(RevocationEvent {
                    seq: r.try_get("seq")?,
                    issuer_id: r.try_get("issuer_id")?,
                    serial_hex: r.try_get("serial_hex")?,
                });
            }
            Ok(out)
        })
    }

    /// Record that replica `id` applied every event up to `acked`.
    pub async fn ocsp_ack(&self, id: &str, acked: i64) -> Result<(), StoreError> {
        dispatch!(&self.db, pool => {
            let _turn = self.turns.take().await?;
            sqlx::query("UPDATE ocsp_replicas SET acked = $1 WHERE id = $2 AND acked < $1")
                .bind(acked)
                .bind(id)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// Renew replica `id`'s lease until `until_ms`, unless an epoch newer than `applied` exists
    /// (then `Ok(false)`: apply the events first). Serialised against revocations by the lock on
    /// the `ocsp_state` row.
    pub async fn ocsp_renew_lease(
        &self,
        id: &str,
        applied: i64,
        until_ms: i64,
    ) -> Result<bool, StoreError> {
        let now = self.now();
        dispatch!(&self.db, pool => {
            let _turn = self.turns.take().await?;
            let mut tx = pool.begin().await?;
            let r = sqlx::query("UPDATE ocsp_state SET epoch = epoch WHERE id = 1 RETURNING epoch")
                .fetch_one(&mut *tx)
                .await?;
            let epoch: i64 = r.try_get("epoch")?;
            if epoch > applied {
                tx.rollback().await?;
                return Ok(false);
            }
            let done = sqlx::query("UPDATE ocsp_replicas SET lease_until_ms = $1, acked = $2 WHERE id = $3")
                .bind(until_ms)
                .bind(applied)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 0 {
                // Our row was cleaned up (we were gone for an hour?): register again.
                sqlx::query("INSERT INTO ocsp_replicas (id, acked, lease_until_ms, started_at) VALUES ($1, $2, $3, $4)")
                    .bind(id)
                    .bind(applied)
                    .bind(until_ms)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Drop events older than `before` (unix seconds), never the newest. A replica that is
    /// further behind than the oldest kept event clears its whole cache.
    pub async fn ocsp_prune_events(&self, before: i64) -> Result<(), StoreError> {
        dispatch!(&self.db, pool => {
            let _turn = self.turns.take().await?;
            sqlx::query("DELETE FROM ocsp_events WHERE created_at < $1 AND seq < (SELECT epoch FROM ocsp_state WHERE id = 1)")
                .bind(before)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// A stored response still consistent with the certificate's status and fresh enough.
    pub async fn ocsp_load_response(
        &self,
        cert_id: &[u8],
        min_this_update: i64,
        min_next_update: i64,
    ) -> Result<Option<StoredResponse>, StoreError> {
        dispatch!(&self.db, pool => {
            let row = sqlx::query(
                "SELECT r.cert_id, r.issuer_id, r.serial_hex, r.status, r.this_update, r.next_update, r.produced_at, r.response_der \
                 FROM ocsp_responses r JOIN certificates c ON c.issuer_id = r.issuer_id AND c.serial_hex = r.serial_hex \
                 WHERE r.cert_id = $1 AND r.status = c.status AND r.this_update >= $2 AND r.next_update >= $3",
            )
            .bind(cert_id)
            .bind(min_this_update)
            .bind(min_next_update)
            .fetch_optional(pool)
            .await?;
            match row {
                None => Ok(None),
                Some(r) => Ok(Some(stored_from_row!(r))),
            }
        })
    }

    /// All stored responses that are consistent and fresh (cache warm-up at start).
    pub async fn ocsp_load_all_responses(
        &self,
        min_this_update: i64,
        min_next_update: i64,
    ) -> Result<Vec<StoredResponse>, StoreError> {
        dispatch!(&self.db, pool => {
            let rows = sqlx::query(
                "SELECT r.cert_id, r.issuer_id, r.serial_hex, r.status, r.this_update, r.next_update, r.produced_at, r.response_der \
                 FROM ocsp_responses r JOIN certificates c ON c.issuer_id = r.issuer_id AND c.serial_hex = r.serial_hex \
                 WHERE r.status = c.status AND r.this_update >= $1 AND r.next_update >= $2",
            )
            .bind(min_this_update)
            .bind(min_next_update)
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push(stored_from_row!(r));
            }
            Ok(out)
        })
    }

    /// Insert or replace a pre-produced response, unless the certificate's status changed since it
    /// was signed (the row would be dropped on load anyway; this keeps the table clean).
    pub async fn ocsp_store_response(&self, r: &StoredResponse) -> Result<(), StoreError> {
        self.ocsp_store_responses(std::slice::from_ref(r)).await
    }

    /// [`Store::ocsp_store_response`] for several responses, in one transaction.
    pub async fn ocsp_store_responses(&self, rows: &[StoredResponse]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        dispatch!(&self.db, pool => {
            let _turn = self.turns.take().await?;
            let mut tx = pool.begin().await?;
            for r in rows {
                store_response!(&mut *tx, r);
            }
            tx.commit().await?;
            Ok(())
        })
    }
}

impl Store {
    /// Status of a serial (given as its possible hex spellings, at most two) from one issuer.
    pub async fn ocsp_cert_state(
        &self,
        issuer_id: &str,
        serials: &[String],
    ) -> Result<Option<CertState>, StoreError> {
        let a = serials.first().cloned().unwrap_or_default();
        let b = serials.get(1).cloned().unwrap_or_else(|| a.clone());
        dispatch!(&self.db, pool => {
            let row = sqlx::query(
                "SELECT serial_hex, status, revoked_at, revocation_reason, not_after, issuer_generation FROM certificates \
                 WHERE issuer_id = $1 AND serial_hex IN ($2, $3)",
            )
            .bind(issuer_id)
            .bind(&a)
            .bind(&b)
            .fetch_optional(pool)
            .await?;
            match row {
                None => Ok(None),
                Some(r) => {
                    let status: String = r.try_get("status")?;
                    Ok(Some(CertState {
                        serial_hex: r.try_get("serial_hex")?,
                        status: status_of(&status)?,
                        revoked_at: r.try_get("revoked_at")?,
                        revocation_reason: reason_of(r.try_get("revocation_reason")?)?,
                        not_after: r.try_get("not_after")?,
                        issuer_generation: r.try_get("issuer_generation")?,
                    }))
                }
            }
        })
    }

    /// Unexpired certificates without a stored response of their current status produced at or
    /// after `fresh_after` (the SHA-1 CertID is the probe), at most `limit`.
    pub async fn ocsp_due_for_production(
        &self,
        fresh_after: i64,
        limit: i64,
    ) -> Result<Vec<Due>, StoreError> {
        let now = self.now();
        let limit = limit.clamp(1, 10_000);
        dispatch!(&self.db, pool => {
            let rows = sqlx::query(
                "SELECT c.issuer_id, c.serial_hex FROM certificates c \
                 WHERE c.not_after > $1 AND NOT EXISTS (SELECT 1 FROM ocsp_responses r \
                 WHERE r.issuer_id = c.issuer_id AND r.serial_hex = c.serial_hex AND r.status = c.status AND r.this_update >= $2) \
                 ORDER BY c.issuer_id, c.serial_hex LIMIT $3",
            )
            .bind(now)
            .bind(fresh_after)
            .bind(limit)
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push(Due { issuer_id: r.try_get("issuer_id")?, serial_hex: r.try_get("serial_hex")? });
            }
            Ok(out)
        })
    }

    /// Certificates revoked at or after `since` (unix seconds): a safety net for caches.
    pub async fn ocsp_revoked_since(
        &self,
        since: i64,
    ) -> Result<Vec<(String, String)>, StoreError> {
        dispatch!(&self.db, pool => {
            let rows = sqlx::query("SELECT issuer_id, serial_hex FROM certificates WHERE status = 'revoked' AND revoked_at >= $1")
                .bind(since)
                .fetch_all(pool)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push((r.try_get("issuer_id")?, r.try_get("serial_hex")?));
            }
            Ok(out)
        })
    }

    /// Drop stored responses past their nextUpdate.
    pub async fn ocsp_prune_responses(&self) -> Result<(), StoreError> {
        let now = self.now();
        dispatch!(&self.db, pool => {
            let _turn = self.turns.take().await?;
            sqlx::query("DELETE FROM ocsp_responses WHERE next_update < $1")
                .bind(now)
                .execute(pool)
                .await?;
            Ok(())
        })
    }
}
