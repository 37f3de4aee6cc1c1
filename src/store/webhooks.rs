//! Webhook endpoints, the event outbox and its deliveries.
//!
//! An event is written by [`outbox_in_tx!`] inside the transaction of what caused it (every
//! audit entry that carries events calls it), and fanned out there to one delivery row per
//! endpoint that is enabled, subscribed and entitled (tenant) at that moment. A crash after the
//! commit loses nothing: the rows wait for the deliverer, which claims due rows under a job
//! lease and records each attempt.

use sqlx::Row;

use super::{Store, StoreError, audit, corrupt, dispatch};
use crate::events::OutboxEvent;
use crate::model::{AuditEvent, DueDelivery, WebhookDelivery, WebhookEndpoint};

/// Write `$events` (`&[OutboxEvent]`) to the outbox inside the open transaction `$tx`, with one
/// pending delivery, due at once, per endpoint that is enabled, subscribed to the event type,
/// owned by an enabled client and entitled to the event's audience.
macro_rules! outbox_in_tx {
    ($tx:expr, $events:expr) => {{
        let events: &[$crate::events::OutboxEvent] = $events;
        if !events.is_empty() {
            let rows = sqlx::query(
                "SELECT e.id, e.events, c.role, c.tenants FROM webhook_endpoints e \
                 JOIN api_clients c ON c.client_id = e.client_id \
                 WHERE e.status = 'enabled' AND e.deleted_at IS NULL AND c.disabled_at IS NULL",
            )
            .fetch_all(&mut *$tx)
            .await?;
            let mut endpoints: Vec<(
                String,
                Vec<String>,
                $crate::policy::authz::Role,
                Vec<String>,
            )> = Vec::with_capacity(rows.len());
            for r in rows {
                let id: String = sqlx::Row::try_get(&r, "id")?;
                let ev: String = sqlx::Row::try_get(&r, "events")?;
                let role: String = sqlx::Row::try_get(&r, "role")?;
                let tenants: String = sqlx::Row::try_get(&r, "tenants")?;
                // A row we cannot read subscribes to nothing (never to everything).
                let (Ok(ev), Ok(role), Ok(tenants)) = (
                    serde_json::from_str::<Vec<String>>(&ev),
                    role.parse::<$crate::policy::authz::Role>(),
                    serde_json::from_str::<Vec<String>>(&tenants),
                ) else {
                    continue;
                };
                endpoints.push((id, ev, role, tenants));
            }
            for e in events {
                sqlx::query(
                    "INSERT INTO webhook_events (event_id, event_type, audience, body, created_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&e.event_id)
                .bind(&e.event_type)
                .bind(e.audience.to_db())
                .bind(&e.body)
                .bind(e.created_at)
                .execute(&mut *$tx)
                .await?;
                for (id, subscribed, role, tenants) in &endpoints {
                    if !subscribed.iter().any(|s| *s == e.event_type)
                        || !e.audience.admits(*role, tenants)
                    {
                        continue;
                    }
                    sqlx::query(
                        "INSERT INTO webhook_deliveries (event_id, endpoint_id, state, attempts, \
                         next_at_ms, log, created_at) VALUES ($1, $2, 'pending', 0, $3, '[]', $4)",
                    )
                    .bind(&e.event_id)
                    .bind(id)
                    .bind(e.created_at.saturating_mul(1000))
                    .bind(e.created_at)
                    .execute(&mut *$tx)
                    .await?;
                }
            }
        }
    }};
}
pub(crate) use outbox_in_tx;

const ENDPOINT_COLUMNS: &str = "id, client_id, url, events, status, description, metadata, \
     api_version, secret, created_at, updated_at";

macro_rules! endpoint_from_row {
    ($row:expr) => {{
        let r = $row;
        let events: String = r.try_get("events")?;
        let metadata: String = r.try_get("metadata")?;
        WebhookEndpoint {
            id: r.try_get("id")?,
            client_id: r.try_get("client_id")?,
            url: r.try_get("url")?,
            events: serde_json::from_str(&events)
                .map_err(|_| corrupt("webhook events", &events))?,
            status: r.try_get("status")?,
            description: r.try_get("description")?,
            metadata: serde_json::from_str(&metadata)
                .map_err(|_| corrupt("webhook metadata", &metadata))?,
            api_version: r.try_get("api_version")?,
            secret: r.try_get("secret")?,
            created_at: r.try_get("created_at")?,
            updated_at: r.try_get("updated_at")?,
        }
    }};
}

/// What became of one attempt.
#[derive(Clone, Debug)]
pub struct Attempt {
    /// The state after it: `pending` (retry at `next_at_ms`), `delivered` or `failed`.
    pub state: &'static str,
    /// When to try again (pending).
    pub next_at_ms: i64,
    /// The attempt log including this attempt.
    pub log: serde_json::Value,
    /// Unix seconds.
    pub now: i64,
    /// Events this outcome causes (`mo.contract.*.sent.to.oem` and the like).
    pub follow_up: Vec<OutboxEvent>,
}

impl Store {
    /// Register an endpoint; the audit entry commits with it.
    pub async fn insert_webhook_endpoint(
        &self,
        e: &WebhookEndpoint,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let ts = self.clock.now();
        let events = serde_json::Value::from(e.events.clone()).to_string();
        let metadata = e.metadata.to_string();
        dispatch!(&self.db, pool => {
            let _turn = self.turns.take().await?;
            let mut tx = pool.begin().await?;
            let _ = audit::append_in_tx!(tx, event, ts);
            sqlx::query(
                "INSERT INTO webhook_endpoints (id, client_id, url, events, status, description, \
                 metadata, api_version, secret, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(&e.id)
            .bind(&e.client_id)
            .bind(&e.url)
            .bind(&events)
            .bind(&e.status)
            .bind(&e.description)
            .bind(&metadata)
            .bind(&e.api_version)
            .bind(&e.secret)
            .bind(e.created_at)
            .bind(e.updated_at)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// An endpoint that is not deleted.
    pub async fn get_webhook_endpoint(
        &self,
        id: &str,
    ) -> Result<Option<WebhookEndpoint>, StoreError> {
        let sql = format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1 AND deleted_at IS NULL"
        );
        dispatch!(&self.db, pool => {
            let row = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .bind(id)
                .fetch_optional(pool)
                .await?;
            match row {
                Some(r) => Ok(Some(endpoint_from_row!(r))),
                None => Ok(None),
            }
        })
    }

    /// Endpoints that are not deleted, oldest first; of one client, or all.
    pub async fn list_webhook_endpoints(
        &self,
        client_id: Option<&str>,
    ) -> Result<Vec<WebhookEndpoint>, StoreError> {
        let sql = format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE deleted_at IS NULL \
             AND ($1 = '' OR client_id = $1) ORDER BY created_at, id LIMIT 1000"
        );
        let client = client_id.unwrap_or_default();
        dispatch!(&self.db, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .bind(client)
                .fetch_all(pool)
                .await?;
            let mut v = Vec::with_capacity(rows.len());
            for r in rows {
                v.push(endpoint_from_row!(r));
            }
            Ok(v)
        })
    }

    /// How many live endpoints a client has.
    pub async fn count_webhook_endpoints(&self, client_id: &str) -> Result<i64, StoreError> {
        dispatch!(&self.db, pool => {
            let r = sqlx::query(
                "SELECT COUNT(*) AS n FROM webhook_endpoints WHERE client_id = $1 AND deleted_at IS NULL",
            )
            .bind(client_id)
            .fetch_one(pool)
            .await?;
            Ok(r.try_get::<i64, _>("n")?)
        })
    }

    /// Change an endpoint's URL, events, status, description and metadata; false when it is
    /// gone. A disabled endpoint's pending deliveries stay pending (delivered once enabled).
    pub async fn update_webhook_endpoint(
        &self,
        e: &WebhookEndpoint,
        event: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let ts = self.clock.now();
        let events = serde_json::Value::from(e.events.clone()).to_string();
        let metadata = e.metadata.to_string();
        dispatch!(&self.db, pool => {
            let _turn = self.turns.take().await?;
            let mut tx = pool.begin().await?;
            let _ = audit::append_in_tx!(tx, event, ts);
            let done = sqlx::query(
                "UPDATE webhook_endpoints SET url = $2, events = $3, status = $4, description = $5, \
                 metadata = $6, updated_at = $7 WHERE id = $1 AND deleted_at IS NULL",
            )
            .bind(&e.id)
            .bind(&e.url)
            .bind(&events)
            .bind(&e.status)
            .bind(&e.description)
            .bind(&metadata)
            .bind(e.updated_at)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() != 1 {
                tx.rollback().await?;
                return Ok(false);
            }
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Delete an endpoint (kept, marked deleted, for its delivery log); its pending deliveries
    /// are cancelled. False when it is gone already.
    pub async fn delete_webhook_endpoint(
        &self,
        id: &str,
        event: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let ts = self.clock.now();
        dispatch!(&self.db, pool => {
            let _turn = self.turns.take().await?;
            let mut tx = pool.begin().await?;
            let _ = audit::append_in_tx!(tx, event, ts);
            let done = sqlx::query(
                "UPDATE webhook_endpoints SET deleted_at = $2 WHERE id = $1 AND deleted_at IS NULL",
            )
            .bind(id)
            .bind(ts)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() != 1 {
                tx.rollback().await?;
                return Ok(false);
            }
            sqlx::query(
                "UPDATE webhook_deliveries SET state = 'cancelled', finished_at = $2 \
                 WHERE endpoint_id = $1 AND state = 'pending'",
            )
            .bind(id)
            .bind(ts)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Write events that no audit entry carries (a sweep's findings) to the outbox.
    pub async fn insert_events(&self, events: &[OutboxEvent]) -> Result<(), StoreError> {
        dispatch!(&self.db, pool => {
            let _turn = self.turns.take().await?;
            let mut tx = pool.begin().await?;
            outbox_in_tx!(tx, events);
            tx.commit().await?;
            Ok(())
        })
    }

    /// Pending deliveries due at `now_ms` to enabled endpoints of enabled clients, oldest first,
    /// at most `limit`.
    pub async fn due_webhook_deliveries(
        &self,
        now_ms: i64,
        limit: i64,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        dispatch!(&self.db, pool => {
            let rows = sqlx::query(
                "SELECT d.event_id, d.endpoint_id, d.attempts, d.log, v.event_type, v.audience, \
                 v.body, e.url, e.secret, c.role FROM webhook_deliveries d \
                 JOIN webhook_events v ON v.event_id = d.event_id \
                 JOIN webhook_endpoints e ON e.id = d.endpoint_id \
                 JOIN api_clients c ON c.client_id = e.client_id \
                 WHERE d.state = 'pending' AND d.next_at_ms <= $1 \
                 AND e.status = 'enabled' AND e.deleted_at IS NULL AND c.disabled_at IS NULL \
                 ORDER BY d.next_at_ms, d.created_at LIMIT $2",
            )
            .bind(now_ms)
            .bind(limit.clamp(1, 1000))
            .fetch_all(pool)
            .await?;
            let mut v = Vec::with_capacity(rows.len());
            for r in rows {
                let log: String = r.try_get("log")?;
                v.push(DueDelivery {
                    event_id: r.try_get("event_id")?,
                    event_type: r.try_get("event_type")?,
                    audience: r.try_get("audience")?,
                    body: r.try_get("body")?,
                    endpoint_id: r.try_get("endpoint_id")?,
                    url: r.try_get("url")?,
                    secret: r.try_get("secret")?,
                    owner_role: r.try_get("role")?,
                    attempts: r.try_get("attempts")?,
                    log: serde_json::from_str(&log).unwrap_or_else(|_| serde_json::json!([])),
                });
            }
            Ok(v)
        })
    }

    /// Record an attempt of a pending delivery, with the events its outcome causes; false when
    /// the delivery was no longer pending (another replica, or the endpoint was deleted).
    pub async fn record_webhook_attempt(
        &self,
        event_id: &str,
        endpoint_id: &str,
        a: &Attempt,
    ) -> Result<bool, StoreError> {
        let finished = (a.state != "pending").then_some(a.now);
        let log = a.log.to_string();
        dispatch!(&self.db, pool => {
            let _turn = self.turns.take().await?;
            let mut tx = pool.begin().await?;
            let done = sqlx::query(
                "UPDATE webhook_deliveries SET state = $3, attempts = attempts + 1, next_at_ms = $4, \
                 log = $5, finished_at = $6 WHERE event_id = $1 AND endpoint_id = $2 AND state = 'pending'",
            )
            .bind(event_id)
            .bind(endpoint_id)
            .bind(a.state)
            .bind(a.next_at_ms)
            .bind(&log)
            .bind(finished)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() != 1 {
                tx.rollback().await?;
                return Ok(false);
            }
            outbox_in_tx!(tx, &a.follow_up);
            tx.commit().await?;
            Ok(true)
        })
    }

    /// An endpoint's deliveries, newest first, at most `limit`.
    pub async fn webhook_deliveries(
        &self,
        endpoint_id: &str,
        limit: i64,
    ) -> Result<Vec<WebhookDelivery>, StoreError> {
        dispatch!(&self.db, pool => {
            let rows = sqlx::query(
                "SELECT d.event_id, d.endpoint_id, d.state, d.attempts, d.next_at_ms, d.log, \
                 d.created_at, d.finished_at, v.event_type FROM webhook_deliveries d \
                 JOIN webhook_events v ON v.event_id = d.event_id \
                 WHERE d.endpoint_id = $1 ORDER BY d.created_at DESC, d.event_id LIMIT $2",
            )
            .bind(endpoint_id)
            .bind(limit.clamp(1, 1000))
            .fetch_all(pool)
            .await?;
            let mut v = Vec::with_capacity(rows.len());
            for r in rows {
                let log: String = r.try_get("log")?;
                let state: String = r.try_get("state")?;
                let next: i64 = r.try_get("next_at_ms")?;
                v.push(WebhookDelivery {
                    event_id: r.try_get("event_id")?,
                    event_type: r.try_get("event_type")?,
                    endpoint_id: r.try_get("endpoint_id")?,
                    next_attempt_ms: (state == "pending").then_some(next),
                    state,
                    attempts: r.try_get("attempts")?,
                    log: serde_json::from_str(&log).map_err(|_| corrupt("delivery log", &log))?,
                    created_at: r.try_get("created_at")?,
                    finished_at: r.try_get("finished_at")?,
                });
            }
            Ok(v)
        })
    }

    /// Deliveries by state (`pending`, `delivered`, …), for `/metrics` and the console.
    pub async fn webhook_delivery_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        dispatch!(&self.db, pool => {
            let rows = sqlx::query(
                "SELECT state, COUNT(*) AS n FROM webhook_deliveries GROUP BY state ORDER BY state",
            )
            .fetch_all(pool)
            .await?;
            let mut v = Vec::with_capacity(rows.len());
            for r in rows {
                v.push((r.try_get("state")?, r.try_get("n")?));
            }
            Ok(v)
        })
    }

    /// Forget finished deliveries (delivered, given up, cancelled) that ended before `before`
    /// (unix seconds), and events left without any delivery written before it; returns the
    /// deliveries removed. Pending deliveries are never removed.
    pub async fn purge_webhook_history(&self, before: i64) -> Result<u64, StoreError> {
        dispatch!(&self.db, pool => {
            let _turn = self.turns.take().await?;
            let mut tx = pool.begin().await?;
            let n = sqlx::query(
                "DELETE FROM webhook_deliveries WHERE state <> 'pending' AND finished_at < $1",
            )
            .bind(before)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            sqlx::query(
                "DELETE FROM webhook_events WHERE created_at < $1 AND NOT EXISTS \
                 (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = webhook_events.event_id)",
            )
            .bind(before)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(n)
        })
    }

    /// Roots (SHA-256 hex) whose expiry was announced already.
    pub async fn announced_expiries(&self) -> Result<Vec<String>, StoreError> {
        dispatch!(&self.db, pool => {
            let rows = sqlx::query("SELECT root_sha256 FROM root_expiry_announced")
                .fetch_all(pool)
                .await?;
            let mut v = Vec::with_capacity(rows.len());
            for r in rows {
                v.push(r.try_get("root_sha256")?);
            }
            Ok(v)
        })
    }

    /// Announce that a root expired: the marker and its `root.cert.expired` event commit
    /// together, once (false when another replica announced it first).
    pub async fn announce_root_expiry(
        &self,
        root_sha256: &str,
        event: &OutboxEvent,
    ) -> Result<bool, StoreError> {
        let ts = self.clock.now();
        dispatch!(&self.db, pool => {
            let _turn = self.turns.take().await?;
            let mut tx = pool.begin().await?;
            let done = sqlx::query(
                "INSERT INTO root_expiry_announced (root_sha256, announced_at) VALUES ($1, $2) \
                 ON CONFLICT (root_sha256) DO NOTHING",
            )
            .bind(root_sha256)
            .bind(ts)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() != 1 {
                tx.rollback().await?;
                return Ok(false);
            }
            outbox_in_tx!(tx, std::slice::from_ref(event));
            tx.commit().await?;
            Ok(true)
        })
    }
}
