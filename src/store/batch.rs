//! Group commit of leaf issuances and contract provisionings: concurrent `record_issuance` and
//! `record_provisioning` calls are written by one task, many per transaction.
//!
//! Why: every issuance extends the audit chain, whose single head row serialises writers; one
//! transaction per issuance means one commit (an fsync on SQLite, a WAL flush on PostgreSQL) and
//! one head-row lock hand-over per certificate, and on SQLite concurrent writers wait in its busy
//! handler, which sleeps. Here one writer takes what is queued (up to [`MAX_BATCH`]), writes it
//! in one transaction and one chain extension, commits once and answers every caller.
//!
//! A provisioning's job also revokes what it supersedes with no grace period, and the
//! certificate of the pre-generated answer it replaces (`revoke_in_tx`: status, OCSP epoch and
//! event), each with its own `certificate.revoke` audit entry chained after the job's.
//!
//! The guarantee is unchanged: a caller gets its answer only after the transaction holding its
//! certificate, audit entry and idempotency key committed. Items do not wait for company: the
//! writer takes what is queued when it becomes free, so a lone issuance commits at once and
//! batches form by themselves under load (while one commit is in progress the next batch
//! queues). A batch is first written whole (one multi-row insert per table where it can);
//! when that fails on the data, it is written again item by item, each in a savepoint, so one
//! item's failure (a duplicate serial, a taken idempotency key, a stopped CA key) fails that
//! item only; a failed commit fails every item of the batch, and none was stored.
//!
//! A lost connection is not a failed commit. When it breaks before COMMIT was sent, nothing was
//! stored and the batch is run once more on a fresh connection (which may be to a promoted
//! standby, `pghosts`). When it breaks after, the outcome is unknown: the primary may have
//! committed (and, with synchronous replication, the standby may have it) or not. The writer
//! then asks a fresh connection which of the batch's certificates exist, behind the audit head
//! lock so that a commit still in flight has finished, and answers them as committed, or runs
//! the batch once more when none is there (never a `duplicate_serial` for our own rows). When
//! even that cannot be asked, every caller gets [`StoreError::OutcomeUnknown`].

use tokio::sync::{mpsc, oneshot};

use super::provisioning::{insert_provisionings, link_rows};
use super::{CERT_COLUMNS, Db, StoreError, SupersededNow, audit, insert_cert, is_unique_violation};
use crate::clock::SharedClock;
use crate::model::{
    AuditEntry, AuditEvent, CertRecord, IdempotencyKey, PROVISIONING_ACTOR, ProvisioningLink,
    RevocationReason,
};

/// Issuances per transaction at most.
pub const MAX_BATCH: usize = 64;

/// What a job records besides its certificate and audit entry.
pub(super) enum Rows {
    /// A leaf issuance: its idempotency key, if the call carried one.
    Issuance(Option<IdempotencyKey>),
    /// A provisioned contract certificate: what ties it to its request and contract
    /// (`Store::record_provisioning`).
    Provisioning(Box<ProvisioningLink>),
}

/// One issuance waiting to be written.
pub(super) struct Job {
    pub cert: CertRecord,
    pub event: AuditEvent,
    pub rows: Rows,
    pub reply: oneshot::Sender<Result<Committed, StoreError>>,
}

/// What a job's caller gets once its transaction committed.
#[derive(Debug)]
pub(super) struct Committed {
    /// Its audit entry.
    pub entry: AuditEntry,
    /// The certificates a provisioning revoked in the transaction (superseded with no grace
    /// period, or its replaced pre-generated answer's).
    pub revoked: Vec<SupersededNow>,
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
    turns: super::WriteTurns,
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
            // The batch is one write transaction of this process (a second one, checking a
            // commit in doubt, only after the first ended): one turn for both.
            match turns.take().await {
                Ok(_turn) => write(&db, &clock, jobs).await,
                Err(e) => answer(jobs, Err(e)),
            }
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

/// How one try at writing a batch ended.
enum Attempt {
    /// Committed: each item's own result.
    Done(Vec<Result<Committed, StoreError>>),
    /// Failed before COMMIT was sent: nothing of it is stored.
    NotCommitted(StoreError),
    /// COMMIT was sent and the connection died before its answer: what each item's result is
    /// if it committed.
    Unknown {
        results: Vec<Result<Committed, StoreError>>,
        error: StoreError,
    },
}

/// The end of a transaction whose items are staged: commit, and tell a lost connection during
/// the commit (outcome unknown) from a refused commit (nothing stored).
fn after_commit(
    committed: Result<(), sqlx::Error>,
    results: Vec<Result<Committed, StoreError>>,
) -> Attempt {
    match committed {
        Ok(()) => Attempt::Done(results),
        Err(e) => {
            let error = StoreError::Db(e);
            if error.lost_connection() {
                Attempt::Unknown { results, error }
            } else {
                Attempt::NotCommitted(error)
            }
        }
    }
}

/// How long settling an unknown outcome may take before callers are told it is unknown.
const SETTLE_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

/// Write `jobs` in one transaction and answer each: first all together (one statement per
/// table, no savepoints); if that fails on the data, item by item in savepoints, so that one
/// item's duplicate serial or taken idempotency key fails that item only. A lost connection
/// runs the batch once more (after checking, when the commit was in doubt; module docs).
async fn write(db: &Db, clock: &SharedClock, jobs: Vec<Job>) {
    let mut rerun = false;
    loop {
        let ts = clock.now();
        let mut attempt = write_together(db, ts, &jobs).await;
        if let Attempt::NotCommitted(e) = &attempt
            && !e.lost_connection()
        {
            attempt = write_one_by_one(db, ts, &jobs).await;
        }
        let outcome = match attempt {
            Attempt::Done(results) => Ok(results),
            Attempt::NotCommitted(e) if e.lost_connection() && !rerun => {
                tracing::warn!(error = %e, items = jobs.len(), "database connection lost before an issuance batch committed (nothing stored); running it again on a fresh connection");
                rerun = true;
                continue;
            }
            Attempt::NotCommitted(e) => Err(e),
            Attempt::Unknown { results, error } => {
                match tokio::time::timeout(SETTLE_WITHIN, stored(db, &jobs, &results)).await {
                    Ok(Ok(true)) => {
                        tracing::warn!(error = %error, items = jobs.len(), "database connection lost during an issuance batch's commit; the batch is stored (checked on a fresh connection)");
                        Ok(results)
                    }
                    Ok(Ok(false)) if !rerun => {
                        tracing::warn!(error = %error, items = jobs.len(), "database connection lost during an issuance batch's commit; it is not stored (checked on a fresh connection); running it again");
                        rerun = true;
                        continue;
                    }
                    Ok(Ok(false)) => Err(error),
                    checked => {
                        let why = match checked {
                            Ok(Err(e)) => e.to_string(),
                            _ => format!("no answer within {SETTLE_WITHIN:?}"),
                        };
                        tracing::error!(error = %error, check = %why, items = jobs.len(), "database connection lost during an issuance batch's commit and the outcome cannot be checked: answering outcome_unknown");
                        for j in jobs {
                            let _ = j
                                .reply
                                .send(Err(StoreError::OutcomeUnknown(error.to_string())));
                        }
                        return;
                    }
                }
            }
        };
        answer(jobs, outcome);
        return;
    }
}

/// The audit entries of committed `items` (a job and the certificates it revoked) after `head`:
/// each job's own entry, then a `certificate.revoke` entry per certificate it revoked. Returns
/// every entry in chain order and, per item, the position of its own entry.
fn chain_jobs(
    head: (i64, String),
    ts: i64,
    items: &[(&Job, &[SupersededNow])],
) -> (Vec<AuditEntry>, Vec<usize>) {
    let revocations: Vec<AuditEvent> = items
        .iter()
        .flat_map(|(j, revoked)| {
            revoked.iter().map(|r| {
                AuditEvent::revocation(
                    PROVISIONING_ACTOR,
                    &r.issuer_id,
                    &r.serial_hex,
                    RevocationReason::Superseded,
                )
                .with_detail("by", format!("{}/{}", j.cert.issuer_id, j.cert.serial_hex))
            })
        })
        .collect();
    let mut rest = revocations.iter();
    let mut events: Vec<&AuditEvent> = Vec::with_capacity(items.len() + revocations.len());
    let mut own = Vec::with_capacity(items.len());
    for (j, revoked) in items {
        own.push(events.len());
        events.push(&j.event);
        events.extend(rest.by_ref().take(revoked.len()));
    }
    (chain(head, ts, &events), own)
}

/// The audit entries of `events` after `head` (seq, hash), chained; what the head becomes.
fn chain(head: (i64, String), ts: i64, events: &[&AuditEvent]) -> Vec<AuditEntry> {
    let (mut seq, mut prev) = head;
    let mut out = Vec::with_capacity(events.len());
    for ev in events {
        seq += 1;
        let details = ev.details.to_string();
        let hash = audit::entry_hash(&prev, seq, ts, &ev.actor, &ev.action, &ev.target, &details);
        out.push(AuditEntry {
            seq,
            ts,
            actor: ev.actor.clone(),
            action: ev.action.clone(),
            target: ev.target.clone(),
            details,
            prev_hash: std::mem::replace(&mut prev, hash.clone()),
            hash,
        });
    }
    out
}

/// Take the audit head row's lock (a write first, so SQLite takes its write lock before it
/// reads) and read it: `(seq, hash)` on `$conn`; `?`s a database error.
macro_rules! lock_head {
    ($conn:expr) => {{
        sqlx::query("UPDATE audit_head SET seq = seq WHERE id = 1")
            .execute(&mut *$conn)
            .await?;
        let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(&mut *$conn)
            .await?;
        let seq: i64 = sqlx::Row::try_get(&head, "seq")?;
        let hash: String = sqlx::Row::try_get(&head, "hash")?;
        (seq, hash)
    }};
}

/// Insert `$entries` into the audit log and move the head to the last one, on `$conn`.
macro_rules! extend_chain {
    ($conn:expr, $entries:expr) => {{
        let entries: &[AuditEntry] = $entries;
        if let Some(last) = entries.last() {
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO audit_log (seq, ts, actor, action, target, details, prev_hash, hash) ",
            );
            q.push_values(entries, |mut b, e| {
                b.push_bind(e.seq)
                    .push_bind(e.ts)
                    .push_bind(&e.actor)
                    .push_bind(&e.action)
                    .push_bind(&e.target)
                    .push_bind(&e.details)
                    .push_bind(&e.prev_hash)
                    .push_bind(&e.hash);
            });
            q.build().execute(&mut *$conn).await?;
            sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
                .bind(last.seq)
                .bind(&last.hash)
                .execute(&mut *$conn)
                .await?;
        }
    }};
}

/// A job's rows after its certificate (and, for a provisioning, its `provisionings` row) on
/// `$conn`: an issuance's idempotency key; a provisioning's supersessions, pre-generated answer
/// and idempotency key. Evaluates to the certificates it revoked (`link_rows`); `?`s an error.
macro_rules! job_rows {
    ($conn:expr, $job:expr, $ts:expr) => {{
        let j: &Job = $job;
        match &j.rows {
            Rows::Issuance(idem) => {
                if let Some(k) = idem {
                    insert_idem!(
                        &mut *$conn,
                        k,
                        &j.cert.issuer_id,
                        &j.cert.serial_hex,
                        None,
                        $ts
                    )?;
                }
                Vec::new()
            }
            Rows::Provisioning(link) => link_rows!($conn, &j.cert, link.as_ref(), $ts),
        }
    }};
}

/// Every job in one transaction with one multi-row insert per table (where a job's rows depend
/// on an earlier job's, as two pre-generated answers of one contract do, one job after the
/// other); any failure fails all (and the caller retries item by item).
async fn write_together(db: &Db, ts: i64, jobs: &[Job]) -> Attempt {
    super::dispatch!(db, pool => {
        let mut tx = match pool.begin().await {
            Ok(tx) => tx,
            Err(e) => return Attempt::NotCommitted(e.into()),
        };
        let staged: Result<Vec<Committed>, StoreError> = async {
            let head = lock_head!(tx);
            let mut q =
                sqlx::QueryBuilder::new(format!("INSERT INTO certificates ({CERT_COLUMNS}) "));
            q.push_values(jobs, |mut b, j| {
                let c = &j.cert;
                b.push_bind(&c.issuer_id)
                    .push_bind(&c.serial_hex)
                    .push_bind(&c.profile)
                    .push_bind(&c.subject)
                    .push_bind(&c.emaid)
                    .push_bind(&c.evse_id)
                    .push_bind(&c.pcid)
                    .push_bind(c.not_before)
                    .push_bind(c.not_after)
                    .push_bind(c.status.as_str())
                    .push_bind(c.revoked_at)
                    .push_bind(c.revocation_reason.map(|r| r.name()))
                    .push_bind(&c.key_id)
                    .push_bind(&c.tenant)
                    .push_bind(&c.der)
                    .push_bind(c.created_at)
                    .push_bind(c.issuer_generation);
            });
            q.build().execute(&mut *tx).await?;
            let links: Vec<(&CertRecord, &ProvisioningLink)> = jobs
                .iter()
                .filter_map(|j| match &j.rows {
                    Rows::Provisioning(link) => Some((&j.cert, link.as_ref())),
                    Rows::Issuance(_) => None,
                })
                .collect();
            insert_provisionings!(tx, &links);
            let mut revoked = Vec::with_capacity(jobs.len());
            for j in jobs {
                revoked.push(job_rows!(tx, j, ts));
            }
            let outbox: Vec<crate::events::OutboxEvent> =
                jobs.iter().flat_map(|j| j.event.events.iter().cloned()).collect();
            super::webhooks::outbox_in_tx!(tx, &outbox);
            let items: Vec<(&Job, &[SupersededNow])> =
                jobs.iter().zip(&revoked).map(|(j, r)| (j, r.as_slice())).collect();
            let (entries, own) = chain_jobs(head, ts, &items);
            extend_chain!(tx, &entries);
            if jobs.iter().any(has_idem) {
                purge_idem!(&mut *tx, ts);
            }
            Ok(own
                .into_iter()
                .zip(revoked)
                .map(|(i, revoked)| Committed { entry: entries[i].clone(), revoked })
                .collect())
        }
        .await;
        match staged {
            // Dropping the transaction rolls it back.
            Err(e) => Attempt::NotCommitted(e),
            Ok(done) => after_commit(tx.commit().await, done.into_iter().map(Ok).collect()),
        }
    })
}

/// Whether a job stores an idempotency key.
fn has_idem(j: &Job) -> bool {
    match &j.rows {
        Rows::Issuance(idem) => idem.is_some(),
        Rows::Provisioning(link) => link.idempotency.is_some(),
    }
}

/// Every job in its own savepoint of one transaction: a failing item is rolled back alone;
/// the audit entries of the others are chained and written at the end.
async fn write_one_by_one(db: &Db, ts: i64, jobs: &[Job]) -> Attempt {
    super::dispatch!(db, pool => {
        let mut tx = match pool.begin().await {
            Ok(tx) => tx,
            Err(e) => return Attempt::NotCommitted(e.into()),
        };
        let staged: Result<Vec<Result<Committed, StoreError>>, StoreError> = async {
            let head = lock_head!(tx);
            let mut outcome: Vec<Result<Vec<SupersededNow>, StoreError>> =
                Vec::with_capacity(jobs.len());
            for j in jobs {
                let one: Result<Vec<SupersededNow>, StoreError> = async {
                    let mut sp = sqlx::Acquire::begin(&mut *tx).await?;
                    insert_cert!(sp, &j.cert);
                    if let Rows::Provisioning(link) = &j.rows {
                        insert_provisionings!(sp, &[(&j.cert, link.as_ref())]);
                    }
                    let revoked = job_rows!(sp, j, ts);
                    super::webhooks::outbox_in_tx!(sp, &j.event.events);
                    sp.commit().await?;
                    Ok(revoked)
                }
                .await;
                // A lost connection is not this item's fault: the whole batch did not commit.
                if let Err(e) = &one
                    && e.lost_connection()
                {
                    return Err(one.unwrap_err());
                }
                outcome.push(one);
            }
            let items: Vec<(&Job, &[SupersededNow])> = jobs
                .iter()
                .zip(&outcome)
                .filter_map(|(j, o)| o.as_ref().ok().map(|r| (j, r.as_slice())))
                .collect();
            let (entries, own) = chain_jobs(head, ts, &items);
            extend_chain!(tx, &entries);
            if jobs.iter().any(has_idem) {
                purge_idem!(&mut *tx, ts);
            }
            let mut own = own.into_iter();
            Ok(outcome
                .into_iter()
                .map(|o| {
                    o.and_then(|revoked| {
                        own.next()
                            .and_then(|i| entries.get(i).cloned())
                            .map(|entry| Committed { entry, revoked })
                            .ok_or_else(|| StoreError::BatchFailed("audit entry missing".into()))
                    })
                })
                .collect())
        }
        .await;
        match staged {
            Err(e) => Attempt::NotCommitted(e),
            Ok(results) => after_commit(tx.commit().await, results),
        }
    })
}

/// Answer every caller: its own result once the transaction committed, else the error of a
/// batch of which nothing is stored.
fn answer(jobs: Vec<Job>, committed: Result<Vec<Result<Committed, StoreError>>, StoreError>) {
    match committed {
        Ok(results) => {
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

/// Whether the items of a batch whose commit is in doubt are stored: each certificate the batch
/// would have recorded (`results` Ok) looked up with its DER, on a fresh connection, after
/// taking the audit head lock (a commit of that batch still in flight holds it, so it has
/// ended by then). All there: true; none: false; some: the database is not what one
/// transaction leaves, an error.
async fn stored(
    db: &Db,
    jobs: &[Job],
    results: &[Result<Committed, StoreError>],
) -> Result<bool, StoreError> {
    super::dispatch!(db, pool => {
        let mut tx = pool.begin().await?;
        let _head = lock_head!(tx);
        let (mut found, mut expected) = (0usize, 0usize);
        for (j, r) in jobs.iter().zip(results) {
            if r.is_err() {
                continue;
            }
            expected += 1;
            let der: Option<Vec<u8>> = sqlx::query_scalar(
                "SELECT der FROM certificates WHERE issuer_id = $1 AND serial_hex = $2",
            )
            .bind(&j.cert.issuer_id)
            .bind(&j.cert.serial_hex)
            .fetch_optional(&mut *tx)
            .await?;
            match der {
                Some(d) if d == j.cert.der => found += 1,
                Some(_) => {
                    return Err(StoreError::Corrupt(format!(
                        "serial {} of {} holds another certificate",
                        j.cert.serial_hex, j.cert.issuer_id
                    )));
                }
                None => {}
            }
        }
        tx.rollback().await?;
        if found == expected {
            Ok(true)
        } else if found == 0 {
            Ok(false)
        } else {
            Err(StoreError::Corrupt(format!(
                "{found} of {expected} certificates of one transaction are stored"
            )))
        }
    })
}
