//! Freshness across replicas: the revocation epoch, replica leases, and the `ocsp_responses`
//! table. Every statement is written once for SQLite and PostgreSQL (`dispatch!`).
//!
//! Protocol (all times are unix milliseconds of the process that writes them):
//! - A revocation commits in `certificates` first; then [`record_revocation`] bumps
//!   `ocsp_state.epoch` (an UPDATE, so the row is locked) and inserts `ocsp_events(seq = epoch)` in
//!   one transaction; sequence order is therefore commit order.
//! - Every serving replica has a row in `ocsp_replicas` (`acked` = last epoch it applied,
//!   `lease_until_ms`). It serves from memory only while its local lease is valid. It renews the
//!   lease in a transaction that first locks `ocsp_state` and refuses to renew when the epoch is
//!   ahead of what it has applied ([`renew_lease`]); so a renewal is serialised either before a
//!   revocation (then the revoker sees the lease and waits for the ack) or after it (then the
//!   replica applies the event first).
//! - The revoker then waits ([`wait_for_replicas`]) until every replica with an unexpired lease
//!   has acknowledged its epoch, or that lease has run out. Only then does `Ca::revoke` return.
//!   PostgreSQL `NOTIFY pnc_ocsp` wakes the replicas at once; SQLite replicas poll.
//!
//! Assumption: replica clocks agree with the revoker's within [`CLOCK_SKEW_MS`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::Row;

use crate::store::{Store, StoreError, dispatch};

/// Tolerated clock difference between processes, added to every lease the revoker looks at.
pub const CLOCK_SKEW_MS: i64 = 500;
/// PostgreSQL notification channel.
pub const CHANNEL: &str = "pnc_ocsp";
/// Upper bound for a revoker's wait, whatever leases say (a lease is never longer).
pub const MAX_WAIT: Duration = Duration::from_secs(60);

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A `StoredResponse` from an `ocsp_responses` row (either database).
macro_rules! stored_from_row {
    ($r:expr) => {{
        let r = $r;
        StoredResponse {
            cert_id: r.try_get("cert_id")?,
            issuer_id: r.try_get("issuer_id")?,
            serial_hex: r.try_get("serial_hex")?,
            status: r.try_get("status")?,
            this_update: r.try_get("this_update")?,
            next_update: r.try_get("next_update")?,
            produced_at: r.try_get("produced_at")?,
            response_der: r.try_get("response_der")?,
        }
    }};
}

/// A pre-produced response row.
#[derive(Debug, Clone)]
pub struct StoredResponse {
    pub cert_id: Vec<u8>,
    pub issuer_id: String,
    pub serial_hex: String,
    /// `valid` or `revoked`, as `certificates.status` was when it was signed.
    pub status: String,
    pub this_update: i64,
    pub next_update: i64,
    pub produced_at: i64,
    pub response_der: Vec<u8>,
}

/// Status of a certificate as the store has it.
#[derive(Debug, Clone)]
pub struct CertState {
    pub serial_hex: String,
    pub status: String,
    pub revoked_at: Option<i64>,
    pub revocation_reason: Option<String>,
    pub not_after: i64,
}

/// A certificate that needs a (fresh) pre-produced response.
#[derive(Debug, Clone)]
pub struct Due {
    pub issuer_id: String,
    pub serial_hex: String,
}

pub async fn current_epoch(store: &Store) -> Result<i64, StoreError> {
    dispatch!(&store.db, pool => {
        let r = sqlx::query("SELECT epoch FROM ocsp_state WHERE id = 1").fetch_one(pool).await?;
        Ok(r.try_get::<i64, _>("epoch")?)
    })
}

/// Bump the epoch and record which certificate changed; returns the new epoch.
pub async fn record_revocation(
    store: &Store,
    issuer_id: &str,
    serial_hex: &str,
) -> Result<i64, StoreError> {
    let now = crate::store::now();
    dispatch!(&store.db, pool => {
        let mut tx = pool.begin().await?;
        let r = sqlx::query("UPDATE ocsp_state SET epoch = epoch + 1 WHERE id = 1 RETURNING epoch")
            .fetch_one(&mut *tx)
            .await?;
        let epoch: i64 = r.try_get("epoch")?;
        sqlx::query("INSERT INTO ocsp_events (seq, issuer_id, serial_hex, created_at) VALUES ($1, $2, $3, $4)")
            .bind(epoch)
            .bind(issuer_id)
            .bind(serial_hex)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        // Stored "good" answers for it are now wrong; drop them (loads also re-check status).
        sqlx::query("DELETE FROM ocsp_responses WHERE issuer_id = $1 AND serial_hex = $2 AND status <> 'revoked'")
            .bind(issuer_id)
            .bind(serial_hex)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(epoch)
    })
}

/// Wake PostgreSQL replicas (no-op on SQLite, whose replicas poll).
pub async fn notify(store: &Store) {
    if let crate::store::Db::Postgres(pool) = &store.db
        && let Err(e) = sqlx::query("SELECT pg_notify($1, '')")
            .bind(CHANNEL)
            .execute(pool)
            .await
    {
        tracing::warn!(error = %e, "OCSP: NOTIFY failed; replicas will see the revocation at their next poll");
    }
}

/// Replicas that hold a lease and have not yet applied `epoch`.
pub async fn lagging_replicas(store: &Store, epoch: i64) -> Result<i64, StoreError> {
    let cutoff = now_ms() - CLOCK_SKEW_MS;
    dispatch!(&store.db, pool => {
        let r = sqlx::query("SELECT COUNT(*) AS n FROM ocsp_replicas WHERE acked < $1 AND lease_until_ms > $2")
            .bind(epoch)
            .bind(cutoff)
            .fetch_one(pool)
            .await?;
        Ok(r.try_get::<i64, _>("n")?)
    })
}

/// Wait until no replica can still serve a response older than `epoch` from memory.
pub async fn wait_for_replicas(store: &Store, epoch: i64) -> Result<(), StoreError> {
    let deadline = tokio::time::Instant::now() + MAX_WAIT;
    let mut pause = Duration::from_millis(1);
    loop {
        if lagging_replicas(store, epoch).await? == 0 {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(StoreError::Invalid(format!(
                "OCSP replicas did not confirm revocation epoch {epoch} within {MAX_WAIT:?}"
            )));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

pub async fn register_replica(store: &Store, id: &str, acked: i64) -> Result<(), StoreError> {
    let now = crate::store::now();
    dispatch!(&store.db, pool => {
        sqlx::query("INSERT INTO ocsp_replicas (id, acked, lease_until_ms, started_at) VALUES ($1, $2, 0, $3)")
            .bind(id)
            .bind(acked)
            .bind(now)
            .execute(pool)
            .await?;
        // Rows of replicas gone for an hour.
        sqlx::query("DELETE FROM ocsp_replicas WHERE lease_until_ms < $1 AND id <> $2")
            .bind(now_ms() - 3_600_000)
            .bind(id)
            .execute(pool)
            .await?;
        Ok(())
    })
}

pub async fn deregister_replica(store: &Store, id: &str) -> Result<(), StoreError> {
    dispatch!(&store.db, pool => {
        sqlx::query("DELETE FROM ocsp_replicas WHERE id = $1").bind(id).execute(pool).await?;
        Ok(())
    })
}

/// Events after `after`, oldest first.
pub async fn events_after(
    store: &Store,
    after: i64,
) -> Result<Vec<(i64, String, String)>, StoreError> {
    dispatch!(&store.db, pool => {
        let rows = sqlx::query("SELECT seq, issuer_id, serial_hex FROM ocsp_events WHERE seq > $1 ORDER BY seq LIMIT 10000")
            .bind(after)
            .fetch_all(pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push((r.try_get("seq")?, r.try_get("issuer_id")?, r.try_get("serial_hex")?));
        }
        Ok(out)
    })
}

pub async fn ack(store: &Store, id: &str, acked: i64) -> Result<(), StoreError> {
    dispatch!(&store.db, pool => {
        sqlx::query("UPDATE ocsp_replicas SET acked = $1 WHERE id = $2 AND acked < $1")
            .bind(acked)
            .bind(id)
            .execute(pool)
            .await?;
        Ok(())
    })
}

/// Renew this replica's lease until `until_ms`, unless an epoch newer than `applied` exists
/// (then `Ok(false)`: apply the events first). Serialised against [`record_revocation`] by the
/// lock on the `ocsp_state` row.
pub async fn renew_lease(
    store: &Store,
    id: &str,
    applied: i64,
    until_ms: i64,
) -> Result<bool, StoreError> {
    dispatch!(&store.db, pool => {
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
                .bind(crate::store::now())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    })
}

/// Drop events older than `before` (unix seconds). A replica that is further behind than the
/// oldest kept event clears its whole cache.
pub async fn prune_events(store: &Store, before: i64) -> Result<(), StoreError> {
    dispatch!(&store.db, pool => {
        sqlx::query("DELETE FROM ocsp_events WHERE created_at < $1 AND seq < (SELECT epoch FROM ocsp_state WHERE id = 1)")
            .bind(before)
            .execute(pool)
            .await?;
        Ok(())
    })
}

/// A stored response still consistent with the certificate's status and fresh enough.
pub async fn load_response(
    store: &Store,
    cert_id: &[u8],
    min_this_update: i64,
    min_next_update: i64,
) -> Result<Option<StoredResponse>, StoreError> {
    dispatch!(&store.db, pool => {
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
pub async fn load_all_responses(
    store: &Store,
    min_this_update: i64,
    min_next_update: i64,
) -> Result<Vec<StoredResponse>, StoreError> {
    dispatch!(&store.db, pool => {
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
pub async fn store_response(store: &Store, r: &StoredResponse) -> Result<(), StoreError> {
    dispatch!(&store.db, pool => {
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
        .bind(&r.status)
        .bind(r.this_update)
        .bind(r.next_update)
        .bind(r.produced_at)
        .bind(&r.response_der)
        .execute(pool)
        .await?;
        Ok(())
    })
}

/// Status of a serial (given as its possible hex spellings) from one issuer.
pub async fn cert_state(
    store: &Store,
    issuer_id: &str,
    serials: &[String],
) -> Result<Option<CertState>, StoreError> {
    let a = serials.first().cloned().unwrap_or_default();
    let b = serials.get(1).cloned().unwrap_or_else(|| a.clone());
    dispatch!(&store.db, pool => {
        let row = sqlx::query(
            "SELECT serial_hex, status, revoked_at, revocation_reason, not_after FROM certificates \
             WHERE issuer_id = $1 AND serial_hex IN ($2, $3)",
        )
        .bind(issuer_id)
        .bind(&a)
        .bind(&b)
        .fetch_optional(pool)
        .await?;
        match row {
            None => Ok(None),
            Some(r) => Ok(Some(CertState {
                serial_hex: r.try_get("serial_hex")?,
                status: r.try_get("status")?,
                revoked_at: r.try_get("revoked_at")?,
                revocation_reason: r.try_get("revocation_reason")?,
                not_after: r.try_get("not_after")?,
            })),
        }
    })
}

/// Unexpired certificates of our CAs without a stored response newer than `fresh_after`
/// (for the hash form `cert_ids` of `probe_alg`: the SHA-1 CertID is the probe).
pub async fn due_for_production(
    store: &Store,
    fresh_after: i64,
    limit: i64,
) -> Result<Vec<Due>, StoreError> {
    let now = crate::store::now();
    dispatch!(&store.db, pool => {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT c.issuer_id, c.serial_hex FROM certificates c \
             WHERE c.not_after > $1 AND NOT EXISTS (SELECT 1 FROM ocsp_responses r \
             WHERE r.issuer_id = c.issuer_id AND r.serial_hex = c.serial_hex AND r.status = c.status AND r.this_update >= $2) \
             ORDER BY c.issuer_id, c.serial_hex LIMIT {limit}"
        )))
        .bind(now)
        .bind(fresh_after)
        .fetch_all(pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(Due { issuer_id: r.try_get("issuer_id")?, serial_hex: r.try_get("serial_hex")? });
        }
        Ok(out)
    })
}

/// Certificates revoked at or after `since` (unix seconds): a safety net that catches a
/// revocation whose event was never written (process killed between the two commits).
pub async fn revoked_since(store: &Store, since: i64) -> Result<Vec<(String, String)>, StoreError> {
    dispatch!(&store.db, pool => {
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

/// Drop stored responses of expired certificates.
pub async fn prune_responses(store: &Store) -> Result<(), StoreError> {
    let now = crate::store::now();
    dispatch!(&store.db, pool => {
        sqlx::query("DELETE FROM ocsp_responses WHERE next_update < $1")
            .bind(now)
            .execute(pool)
            .await?;
        Ok(())
    })
}
