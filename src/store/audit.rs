//! Append-only, hash-chained audit log.
//!
//! Each entry's hash is SHA-256 over the previous entry's hash and the entry's canonical JSON, so
//! deleting, editing or reordering rows breaks the chain, which `pnc-pki audit verify` detects.
//! The database also refuses UPDATE and DELETE on the table (triggers); the chain is what catches
//! someone who drops those triggers.

use sha2::{Digest, Sha256};
use sqlx::Row;

use super::{Store, StoreError, dispatch};
use crate::model::{AuditEntry, AuditFilter, AuditReport};

/// `prev_hash` of the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The hashed form: field order fixed by this struct.
#[derive(serde::Serialize)]
struct Canonical<'a> {
    seq: i64,
    ts: i64,
    actor: &'a str,
    action: &'a str,
    target: &'a str,
    details: &'a str,
}

/// The hash of an entry: SHA-256 over the previous hash, a newline and the canonical JSON.
pub fn entry_hash(
    prev_hash: &str,
    seq: i64,
    ts: i64,
    actor: &str,
    action: &str,
    target: &str,
    details: &str,
) -> String {
    let c = Canonical {
        seq,
        ts,
        actor,
        action,
        target,
        details,
    };
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(b"\n");
    h.update(serde_json::to_vec(&c).unwrap_or_default());
    hex::encode(h.finalize())
}

/// Append `$event` stamped `$ts` inside the open transaction `$tx`; evaluates to the new
/// `AuditEntry`. Updating the single head row first serialises concurrent appenders on both
/// databases.
macro_rules! append_in_tx {
    ($tx:expr, $event:expr, $ts:expr) => {{
        let ev: &$crate::model::AuditEvent = $event;
        sqlx::query("UPDATE audit_head SET seq = seq + 1 WHERE id = 1")
            .execute(&mut *$tx)
            .await?;
        let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(&mut *$tx)
            .await?;
        let seq: i64 = sqlx::Row::try_get(&head, "seq")?;
        let prev_hash: String = sqlx::Row::try_get(&head, "hash")?;
        let ts: i64 = $ts;
        let details = ev.details.to_string();
        let hash = $crate::store::audit::entry_hash(
            &prev_hash, seq, ts, &ev.actor, &ev.action, &ev.target, &details,
        );
        sqlx::query(
            "INSERT INTO audit_log (seq, ts, actor, action, target, details, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(seq)
        .bind(ts)
        .bind(&ev.actor)
        .bind(&ev.action)
        .bind(&ev.target)
        .bind(&details)
        .bind(&prev_hash)
        .bind(&hash)
        .execute(&mut *$tx)
        .await?;
        sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
            .bind(&hash)
            .execute(&mut *$tx)
            .await?;
        // The events this change causes commit with it (the webhook outbox).
        $crate::store::webhooks::outbox_in_tx!($tx, &ev.events);
        $crate::model::AuditEntry {
            seq,
            ts,
            actor: ev.actor.clone(),
            action: ev.action.clone(),
            target: ev.target.clone(),
            details,
            prev_hash,
            hash,
        }
    }};
}
pub(super) use append_in_tx;

macro_rules! entry_from_row {
    ($r:expr) => {{
        let r = $r;
        AuditEntry {
            seq: r.try_get("seq")?,
            ts: r.try_get("ts")?,
            actor: r.try_get("actor")?,
            action: r.try_get("action")?,
            target: r.try_get("target")?,
            details: r.try_get("details")?,
            prev_hash: r.try_get("prev_hash")?,
            hash: r.try_get("hash")?,
        }
    }};
}

/// Entries after `f.after_seq` (and before `f.before_seq`), oldest or newest first, optionally
/// only those whose action starts with `f.action_prefix` and with exactly `f.target` /
/// `f.actor` (`api:ID` also matching `api:NAME (ID)`).
pub(super) async fn entries(store: &Store, f: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
    let after = f.after_seq.unwrap_or(0);
    let before = f.before_seq.unwrap_or(i64::MAX);
    let limit = f.limit.unwrap_or(100).clamp(1, 1000);
    // A prefix match without LIKE, whose wildcards (`_`, `%`) would need escaping per dialect.
    let prefix = f.action_prefix.clone().unwrap_or_default();
    let target = f.target.clone().unwrap_or_default();
    let actor = f.actor.clone().unwrap_or_default();
    // `api:ID` also finds the entries that carry the client's name: `api:NAME (ID)`.
    let named = actor
        .strip_prefix("api:")
        .filter(|id| !id.is_empty() && !id.contains(' '))
        .map(|id| format!(" ({id})"))
        .unwrap_or_default();
    let order = if f.newest_first { "DESC" } else { "ASC" };
    let sql = format!(
        "SELECT seq, ts, actor, action, target, details, prev_hash, hash FROM audit_log \
         WHERE seq > $1 AND seq < $2 AND ($3 = '' OR SUBSTR(action, 1, LENGTH($3)) = $3) \
         AND ($4 = '' OR target = $4) AND ($5 = '' OR actor = $5 OR ($7 <> '' AND SUBSTR(actor, 1, 4) = 'api:' \
         AND SUBSTR(actor, LENGTH(actor) - LENGTH($7) + 1) = $7)) \
         ORDER BY seq {order} LIMIT $6"
    );
    dispatch!(&store.db, pool => {
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
        .bind(after)
        .bind(before)
        .bind(&prefix)
        .bind(&target)
        .bind(&actor)
        .bind(limit)
        .bind(&named)
        .fetch_all(pool)
        .await?;
        let mut v = Vec::with_capacity(rows.len());
        for r in rows {
            v.push(entry_from_row!(r));
        }
        Ok(v)
    })
}

/// Walk the whole chain in order, in pages, recomputing every hash.
pub(super) async fn verify(store: &Store) -> Result<AuditReport, StoreError> {
    let mut prev = GENESIS_HASH.to_string();
    let mut expected_seq = 1i64;
    let mut count = 0i64;
    loop {
        let rows: Vec<AuditEntry> = dispatch!(&store.db, pool => {
            let rows = sqlx::query(
                "SELECT seq, ts, actor, action, target, details, prev_hash, hash FROM audit_log \
                 WHERE seq >= $1 ORDER BY seq LIMIT 1000",
            )
            .bind(expected_seq)
            .fetch_all(pool)
            .await?;
            let mut v = Vec::with_capacity(rows.len());
            for r in rows {
                v.push(entry_from_row!(r));
            }
            v
        });
        if rows.is_empty() {
            break;
        }
        for e in rows {
            let fail = |why: String| AuditReport {
                entries: count,
                head_hash: prev.clone(),
                broken_at: Some((e.seq, why)),
            };
            if e.seq != expected_seq {
                return Ok(fail(format!("entry {expected_seq} is missing")));
            }
            if e.prev_hash != prev {
                return Ok(fail("prev_hash does not match the previous entry".into()));
            }
            let h = entry_hash(
                &prev, e.seq, e.ts, &e.actor, &e.action, &e.target, &e.details,
            );
            if h != e.hash {
                return Ok(fail("entry content does not match its hash".into()));
            }
            prev = e.hash;
            expected_seq += 1;
            count += 1;
        }
    }
    // The head must point at the last entry: truncating the tail is tampering too.
    let (head_seq, head_hash): (i64, String) = dispatch!(&store.db, pool => {
        let r = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(pool)
            .await?;
        (r.try_get("seq")?, r.try_get("hash")?)
    });
    if head_seq != count || head_hash != prev {
        return Ok(AuditReport {
            entries: count,
            head_hash: prev,
            broken_at: Some((
                count + 1,
                format!("audit head says {head_seq} entries but the chain has {count}"),
            )),
        });
    }
    Ok(AuditReport {
        entries: count,
        head_hash: prev,
        broken_at: None,
    })
}
