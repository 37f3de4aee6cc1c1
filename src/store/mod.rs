//! Storage authority: SQLite (embedded default) and PostgreSQL through the same code paths.
//!
//! We do not use sqlx's `Any` driver (no compile-time types, no uuid/chrono, surprising
//! placeholder rules). Each operation is written once and expanded for both pools by
//! `dispatch!`; SQL uses `$n` placeholders, which both SQLite and PostgreSQL accept, and portable
//! types only (BIGINT unix seconds, hex TEXT, BLOB/BYTEA).
//!
//! Every write that matters (issuance, revocation) commits together with its audit entry.

pub mod api;
pub mod audit;

use std::str::FromStr;
use std::time::Duration;

use sqlx::Row;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

pub use audit::{AuditEntry, AuditEvent, AuditReport};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("a certificate with serial {serial} already exists for issuer {issuer}")]
    DuplicateSerial { issuer: String, serial: String },
    #[error("CA {0} already exists")]
    DuplicateCa(String),
    #[error("{0}")]
    Invalid(String),
}

#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Expand `$body` once per backend with `$pool` bound to the concrete pool.
macro_rules! dispatch {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::store::Db::Sqlite($pool) => $body,
            $crate::store::Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use dispatch;

#[derive(Clone, Debug)]
pub struct Store {
    pub db: Db,
}

/// A CA the service holds a key for.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CaRecord {
    pub id: String,
    pub profile: String,
    pub parent_id: Option<String>,
    pub key_id: String,
    pub key_alg: String,
    pub serial_hex: String,
    pub subject: String,
    #[serde(skip)]
    pub cert_der: Vec<u8>,
    pub not_before: i64,
    pub not_after: i64,
    pub created_at: i64,
    /// For a CA signed by an issuer we do not hold: that issuer's chain (PEM, issuer first).
    #[serde(skip)]
    pub external_chain: Option<String>,
}

/// An issued certificate.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CertRecord {
    pub issuer_id: String,
    pub serial_hex: String,
    pub profile: String,
    pub subject: String,
    pub emaid: Option<String>,
    pub evse_id: Option<String>,
    pub pcid: Option<String>,
    pub not_before: i64,
    pub not_after: i64,
    pub status: String,
    pub revoked_at: Option<i64>,
    pub revocation_reason: Option<String>,
    #[serde(skip)]
    pub key_id: Option<String>,
    pub tenant: Option<String>,
    #[serde(skip)]
    pub der: Vec<u8>,
    pub created_at: i64,
}

/// Filters for listing certificates; all optional, combined with AND.
#[derive(Clone, Debug, Default, serde::Deserialize)]
pub struct CertFilter {
    pub issuer_id: Option<String>,
    pub profile: Option<String>,
    pub emaid: Option<String>,
    pub evse_id: Option<String>,
    pub pcid: Option<String>,
    pub status: Option<String>,
    pub serial_hex: Option<String>,
    pub tenant_prefix: Option<String>,
    pub expiring_before: Option<i64>,
    /// Keyset pagination cursor: "issuer_id/serial_hex" of the last item seen.
    pub after: Option<String>,
    pub limit: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RevokeOutcome {
    Revoked,
    AlreadyRevoked,
    NotFound,
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => {
            d.is_unique_violation()
                || d.code().as_deref() == Some("23505")
                || d.message().contains("UNIQUE constraint failed")
        }
        _ => false,
    }
}

const CERT_COLUMNS: &str = "issuer_id, serial_hex, profile, subject, emaid, evse_id, pcid, not_before, not_after, status, revoked_at, revocation_reason, key_id, tenant, der, created_at";
const CA_COLUMNS: &str = "id, profile, parent_id, key_id, key_alg, serial_hex, subject, cert_der, not_before, not_after, created_at, external_chain";

macro_rules! cert_from_row {
    ($row:expr) => {{
        let r = $row;
        CertRecord {
            issuer_id: r.try_get("issuer_id")?,
            serial_hex: r.try_get("serial_hex")?,
            profile: r.try_get("profile")?,
            subject: r.try_get("subject")?,
            emaid: r.try_get("emaid")?,
            evse_id: r.try_get("evse_id")?,
            pcid: r.try_get("pcid")?,
            not_before: r.try_get("not_before")?,
            not_after: r.try_get("not_after")?,
            status: r.try_get("status")?,
            revoked_at: r.try_get("revoked_at")?,
            revocation_reason: r.try_get("revocation_reason")?,
            key_id: r.try_get("key_id")?,
            tenant: r.try_get("tenant")?,
            der: r.try_get("der")?,
            created_at: r.try_get("created_at")?,
        }
    }};
}

macro_rules! ca_from_row {
    ($row:expr) => {{
        let r = $row;
        CaRecord {
            id: r.try_get("id")?,
            profile: r.try_get("profile")?,
            parent_id: r.try_get("parent_id")?,
            key_id: r.try_get("key_id")?,
            key_alg: r.try_get("key_alg")?,
            serial_hex: r.try_get("serial_hex")?,
            subject: r.try_get("subject")?,
            cert_der: r.try_get("cert_der")?,
            not_before: r.try_get("not_before")?,
            not_after: r.try_get("not_after")?,
            created_at: r.try_get("created_at")?,
            external_chain: r.try_get("external_chain")?,
        }
    }};
}

/// Insert a certificate row inside an open transaction.
macro_rules! insert_cert {
    ($tx:expr, $c:expr) => {{
        let c = $c;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO certificates ({CERT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
        )))
        .bind(&c.issuer_id)
        .bind(&c.serial_hex)
        .bind(&c.profile)
        .bind(&c.subject)
        .bind(&c.emaid)
        .bind(&c.evse_id)
        .bind(&c.pcid)
        .bind(c.not_before)
        .bind(c.not_after)
        .bind(&c.status)
        .bind(c.revoked_at)
        .bind(&c.revocation_reason)
        .bind(&c.key_id)
        .bind(&c.tenant)
        .bind(&c.der)
        .bind(c.created_at)
        .execute(&mut *$tx)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::DuplicateSerial {
                    issuer: c.issuer_id.clone(),
                    serial: c.serial_hex.clone(),
                }
            } else {
                StoreError::Db(e)
            }
        })?;
    }};
}

impl Store {
    /// Connect and run migrations. `sqlite://path` (created if missing) or `postgres://…`.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        let db = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect(url)
                .await?;
            sqlx::migrate!("./migrations/postgres").run(&pool).await?;
            Db::Postgres(pool)
        } else if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_secs(15))
                .foreign_keys(true);
            let pool = SqlitePoolOptions::new()
                .max_connections(8)
                .connect_with(opts)
                .await?;
            sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
            Db::Sqlite(pool)
        } else {
            return Err(StoreError::Invalid(format!(
                "unsupported database URL scheme in '{}' (use sqlite:// or postgres://)",
                redact_url(url)
            )));
        };
        Ok(Store { db })
    }

    pub fn backend(&self) -> &'static str {
        match self.db {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        dispatch!(&self.db, pool => { sqlx::query("SELECT 1").execute(pool).await?; });
        Ok(())
    }

    /// Record an issued certificate (and, for a CA certificate, the CA itself) together with its
    /// audit entry, in one transaction. Nothing is visible unless all of it commits.
    pub async fn record_issuance(
        &self,
        cert: &CertRecord,
        ca: Option<&CaRecord>,
        event: &AuditEvent,
    ) -> Result<AuditEntry, StoreError> {
        dispatch!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            // The audit head first: it takes the write lock up front on SQLite.
            let entry = audit::append_in_tx!(tx, event);
            if let Some(ca) = ca {
                let r = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO cas ({CA_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
                )))
                .bind(&ca.id)
                .bind(&ca.profile)
                .bind(&ca.parent_id)
                .bind(&ca.key_id)
                .bind(&ca.key_alg)
                .bind(&ca.serial_hex)
                .bind(&ca.subject)
                .bind(&ca.cert_der)
                .bind(ca.not_before)
                .bind(ca.not_after)
                .bind(ca.created_at)
                .bind(&ca.external_chain)
                .execute(&mut *tx)
                .await;
                if let Err(e) = r {
                    return Err(if is_unique_violation(&e) {
                        StoreError::DuplicateCa(ca.id.clone())
                    } else {
                        StoreError::Db(e)
                    });
                }
            }
            insert_cert!(tx, cert);
            tx.commit().await?;
            Ok(entry)
        })
    }

    /// Revoke; idempotent. The status change and the audit entry commit together.
    pub async fn revoke(
        &self,
        issuer_id: &str,
        serial_hex: &str,
        reason: &str,
        at: i64,
        event: &AuditEvent,
    ) -> Result<RevokeOutcome, StoreError> {
        dispatch!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            // Write first: on SQLite (WAL) a transaction that reads before writing fails at once
            // with SQLITE_BUSY when another process committed meanwhile. Early returns roll back.
            let _entry = audit::append_in_tx!(tx, event);
            let entry_needed = sqlx::query(
                "SELECT status FROM certificates WHERE issuer_id = $1 AND serial_hex = $2",
            )
            .bind(issuer_id)
            .bind(serial_hex)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = entry_needed else {
                return Ok(RevokeOutcome::NotFound);
            };
            let status: String = row.try_get("status")?;
            if status == "revoked" {
                return Ok(RevokeOutcome::AlreadyRevoked);
            }
            let done = sqlx::query(
                "UPDATE certificates SET status = 'revoked', revoked_at = $1, revocation_reason = $2 \
                 WHERE issuer_id = $3 AND serial_hex = $4 AND status = 'valid'",
            )
            .bind(at)
            .bind(reason)
            .bind(issuer_id)
            .bind(serial_hex)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                // Someone else revoked it between our read and write.
                return Ok(RevokeOutcome::AlreadyRevoked);
            }
            tx.commit().await?;
            Ok(RevokeOutcome::Revoked)
        })
    }

    /// Append an audit entry on its own (authentication failures, client changes, …).
    pub async fn audit(&self, event: &AuditEvent) -> Result<AuditEntry, StoreError> {
        dispatch!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            let entry = audit::append_in_tx!(tx, event);
            tx.commit().await?;
            Ok(entry)
        })
    }

    pub async fn get_ca(&self, id: &str) -> Result<Option<CaRecord>, StoreError> {
        dispatch!(&self.db, pool => {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {CA_COLUMNS} FROM cas WHERE id = $1")))
                .bind(id)
                .fetch_optional(pool)
                .await?;
            match row {
                Some(r) => Ok(Some(ca_from_row!(r))),
                None => Ok(None),
            }
        })
    }

    pub async fn list_cas(&self) -> Result<Vec<CaRecord>, StoreError> {
        dispatch!(&self.db, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {CA_COLUMNS} FROM cas ORDER BY created_at, id")))
                .fetch_all(pool)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push(ca_from_row!(r));
            }
            Ok(out)
        })
    }

    pub async fn get_cert(
        &self,
        issuer_id: &str,
        serial_hex: &str,
    ) -> Result<Option<CertRecord>, StoreError> {
        dispatch!(&self.db, pool => {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {CERT_COLUMNS} FROM certificates WHERE issuer_id = $1 AND serial_hex = $2"
            )))
            .bind(issuer_id)
            .bind(serial_hex)
            .fetch_optional(pool)
            .await?;
            match row {
                Some(r) => Ok(Some(cert_from_row!(r))),
                None => Ok(None),
            }
        })
    }

    /// Certificates matching a filter, ordered by (issuer_id, serial_hex) for keyset paging.
    pub async fn list_certs(&self, f: &CertFilter) -> Result<Vec<CertRecord>, StoreError> {
        let mut clauses: Vec<String> = Vec::new();
        let mut args: Vec<String> = Vec::new();
        let mut push = |clause: &str, v: String| {
            args.push(v);
            clauses.push(clause.replace('?', &format!("${}", args.len())));
        };
        if let Some(v) = &f.issuer_id {
            push("issuer_id = ?", v.clone());
        }
        if let Some(v) = &f.profile {
            push("profile = ?", v.clone());
        }
        if let Some(v) = &f.emaid {
            push("emaid = ?", v.to_ascii_uppercase());
        }
        if let Some(v) = &f.evse_id {
            push("evse_id = ?", v.to_ascii_uppercase());
        }
        if let Some(v) = &f.pcid {
            push("pcid = ?", v.to_ascii_uppercase());
        }
        if let Some(v) = &f.status {
            if v == "expired" {
                push("status = ?", "valid".into());
            } else {
                push("status = ?", v.clone());
            }
        }
        if let Some(v) = &f.serial_hex {
            push("serial_hex = ?", v.to_ascii_lowercase());
        }
        if let Some(v) = &f.tenant_prefix {
            push("tenant = ?", v.clone());
        }
        if let Some(after) = &f.after {
            let (i, s) = after
                .split_once('/')
                .ok_or_else(|| StoreError::Invalid("cursor must be issuer_id/serial_hex".into()))?;
            args.push(i.to_string());
            let a = args.len();
            args.push(s.to_string());
            let b = args.len();
            clauses.push(format!(
                "(issuer_id > ${a} OR (issuer_id = ${a} AND serial_hex > ${b}))"
            ));
        }
        let mut int_clauses = Vec::new();
        let mut ints: Vec<i64> = Vec::new();
        if let Some(t) = f.expiring_before {
            ints.push(t);
            int_clauses.push(format!("not_after < ${}", args.len() + ints.len()));
        }
        if f.status.as_deref() == Some("expired") {
            ints.push(now());
            int_clauses.push(format!("not_after < ${}", args.len() + ints.len()));
        }
        let limit = f.limit.unwrap_or(100).clamp(1, 1000);
        let all: Vec<String> = clauses.into_iter().chain(int_clauses).collect();
        let where_sql = if all.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", all.join(" AND "))
        };
        let sql = format!(
            "SELECT {CERT_COLUMNS} FROM certificates {where_sql} ORDER BY issuer_id, serial_hex LIMIT {limit}"
        );
        dispatch!(&self.db, pool => {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.clone()));
            for a in &args {
                q = q.bind(a);
            }
            for i in &ints {
                q = q.bind(*i);
            }
            let rows = q.fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push(cert_from_row!(r));
            }
            Ok(out)
        })
    }

    /// (issuer_id, valid, revoked) counts.
    pub async fn counts_by_issuer(&self) -> Result<Vec<(String, i64, i64)>, StoreError> {
        dispatch!(&self.db, pool => {
            let rows = sqlx::query(
                "SELECT issuer_id, \
                 SUM(CASE WHEN status = 'valid' THEN 1 ELSE 0 END) AS valid_n, \
                 SUM(CASE WHEN status = 'revoked' THEN 1 ELSE 0 END) AS revoked_n \
                 FROM certificates GROUP BY issuer_id",
            )
            .fetch_all(pool)
            .await?;
            let mut out = Vec::new();
            for r in rows {
                out.push((r.try_get("issuer_id")?, r.try_get("valid_n")?, r.try_get("revoked_n")?));
            }
            Ok(out)
        })
    }

    pub async fn audit_verify(&self) -> Result<AuditReport, StoreError> {
        audit::verify(self).await
    }
}

/// Hide the password in a database URL before it reaches a log or an error.
pub fn redact_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://")
        && let Some((creds, host)) = rest.split_once('@')
    {
        let user = creds.split(':').next().unwrap_or("");
        return format!("{scheme}://{user}:***@{host}");
    }
    url.to_string()
}
