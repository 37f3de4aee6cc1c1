//! Group commit of leaf issuances: concurrent `record_issuance` calls are written by one task,
//! many per transaction, each in its own savepoint.
//!
//! Why: every issuance extends the audit chain, whose single head row serialises writers; one
//! transaction per issuance means one commit (an fsync on SQLite, a WAL flush on PostgreSQL) and
//! one head-row lock hand-over per certificate, and on SQLite concurrent writers wait in its busy
//! handler, which sleeps. Here one writer takes what is queued (up to [`MAX_BATCH`]), writes it
//! in one transaction and one chain extension, commits once and answers every caller.
//!
//! The guarantee is unchanged: a caller gets its answer only after the transaction holding its
//! certificate, audit entry and idempotency key committed. Items do not wait for company: the
//! writer takes what is queued when it becomes free, so a lone issuance commits at once and
//! batches form by themselves under load (while one commit is in progress the next batch
//! queues). One item's failure (a duplicate serial, a taken idempotency key) rolls back its
//! savepoint only; a failed commit fails every item of the batch, and none was stored.

use tokio::sync::{mpsc, oneshot};

use super::{CERT_COLUMNS, Db, StoreError, audit, insert_cert, is_unique_violation};
use crate::clock::SharedClock;
use crate::model::{AuditEntry, AuditEvent, CertRecord, IdempotencyKey};

/// Issuances per transaction at most.
pub const MAX_BATCH: usize = 64;

/// One issuance waiting to be written.
pub(super) struct Job {
    pub cert: CertRecord,
    pub event: AuditEvent,
    pub idem: Option<IdempotencyKey>,
    pub reply: oneshot::Sender<Result<AuditEntry, StoreError>>,
}

/// Sizes of the batches taken so far (for `/metrics`).
#[derive(Debug, Default)]
pub struct BatchStats {
    /// Transactions committed.
    pub batches: std::sync::atomic::AtomicU64,
    /// Issuances in them.
    pub items: std::sync::atomic::AtomicU64,
    /// The largest batch.
    pub largest: std::sync::atomic::AtomicU64,
}

/// Start the writer for `db`; it ends when every sender is dropped.
pub(super) fn spawn(
    db: Db,
    clock: SharedClock,
    stats: std::sync::Arc<BatchStats>,
) -> mpsc::Sender<Job> {
    let (tx, mut rx) = mpsc::channel::<Job>(MAX_BATCH * 16);
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut jobs = vec![first];
            while jobs.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(j) => jobs.push(j),
                    Err(_) => break,
                }
            }
            // Counted before the answers go out, so a caller that got its answer sees its batch.
            let n = jobs.len() as u64;
            use std::sync::atomic::Ordering::Relaxed;
            stats.batches.fetch_add(1, Relaxed);
            stats.items.fetch_add(n, Relaxed);
            stats.largest.fetch_max(n, Relaxed);
            write(&db, &clock, jobs).await;
        }
    });
    tx
}

/// Insert the idempotency key `$k` of the certificate (`$issuer`, `$serial`) on `$conn`, with the
/// answer for retries (`$resp`: `Option<&[u8]>`) when the certificate alone does not give it;
/// evaluates to `Result<(), StoreError>`.
macro_rules! insert_idem {
    ($conn:expr, $k:expr, $issuer:expr, $serial:expr, $resp:expr, $ts:expr) => {{
        let resp: Option<&[u8]> = $resp;
        let r = sqlx::query(
            "INSERT INTO idempotency_keys \
             (actor, idem_key, request_sha256, issuer_id, serial_hex, response, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&$k.actor)
        .bind(&$k.key)
        .bind(&$k.request_sha256)
        .bind($issuer)
        .bind($serial)
        .bind(resp)
        .bind($ts)
        .execute($conn)
        .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) if $crate::store::is_unique_violation(&e) => Err(
                $crate::store::StoreError::IdempotencyKeyTaken($k.key.chars().take(64).collect()),
            ),
            Err(e) => Err($crate::store::StoreError::Db(e)),
        }
    }};
}
pub(super) use insert_idem;

/// Delete idempotency keys (and the answers kept with them) older than 24 h on `$conn`, in the
/// transaction that adds one; `?`s a database error.
macro_rules! purge_idem {
    ($conn:expr, $ts:expr) => {{
        sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
            .bind($ts - $crate::store::IDEMPOTENCY_KEEP_SECS)
            .execute($conn)
            .await?;
    }};
}
pub(super) use purge_idem;

/// Write `jobs` in one transaction and answer each.
async fn write(db: &Db, clock: &SharedClock, jobs: Vec<Job>) {
    let ts = clock.now();
    let mut results: Vec<Result<AuditEntry, StoreError>> = Vec::with_capacity(jobs.len());
    let committed: Result<(), StoreError> = async {
        super::dispatch!(db, pool => {
            let mut tx = pool.begin().await?;
            for j in &jobs {
                let one: Result<AuditEntry, StoreError> = async {
                    let mut sp = sqlx::Acquire::begin(&mut *tx).await?;
                    let entry = audit::append_in_tx!(sp, &j.event, ts);
                    insert_cert!(sp, &j.cert);
                    if let Some(k) = &j.idem {
                        insert_idem!(&mut *sp, k, &j.cert.issuer_id, &j.cert.serial_hex, None, ts)?;
                    }
                    sp.commit().await?;
                    Ok(entry)
                }
                .await;
                results.push(one);
            }
            if jobs.iter().any(|j| j.idem.is_some()) {
                purge_idem!(&mut *tx, ts);
            }
            tx.commit().await?;
            Ok(())
        })
    }
    .await;
    match committed {
        Ok(()) => {
            for (j, r) in jobs.into_iter().zip(results) {
                let _ = j.reply.send(r);
            }
        }
        Err(e) => {
            // Nothing of this batch is stored: every caller gets the error.
            tracing::error!(error = %e, items = jobs.len(), "an issuance batch failed to commit");
            let msg = e.to_string();
            for j in jobs {
                let _ = j.reply.send(Err(StoreError::BatchFailed(msg.clone())));
            }
        }
    }
}
