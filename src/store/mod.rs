//! Storage authority: SQLite (embedded default) and PostgreSQL through the same code paths. All
//! SQL of the service is under this module.
//!
//! We do not use sqlx's `Any` driver (no compile-time types, no uuid/chrono, surprising
//! placeholder rules). Each operation is written once and expanded for both pools by
//! `dispatch!`; SQL uses `$n` placeholders, which both SQLite and PostgreSQL accept, and portable
//! types only (BIGINT unix seconds, hex TEXT, BLOB/BYTEA).
//!
//! Every write that matters (issuance, revocation, a CRL, a client change) commits together with
//! its audit entry. Times come from the injected clock, never from the system directly.

mod audit;
pub mod batch;
mod clients;
mod compromise;
mod crl;
mod defaults;
mod leases;
pub mod ocsp;
mod pghosts;
mod provisioning;
mod rollover;
mod subjects;
mod supersede;
mod users;
mod webhooks;

pub use compromise::{
    CompromisePreviewCounts, CompromiseRecord, ContractToRegenerate, ReenrollEntry,
};
pub use defaults::VehicleChoices;
pub use provisioning::{ContractQuery, DueSupersession, PriorProvisioning, SupersededNow};
pub use users::{MAX_SESSIONS_PER_USER, SessionCutoffs};
pub use webhooks::Attempt;

use std::str::FromStr;
use std::time::Duration;

use sqlx::Row;
use sqlx::postgres::PgPool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

use crate::alg::KeyAlg;
use crate::clock::SharedClock;
use crate::error::ErrorKind;
use crate::model::{
    AuditEntry, AuditEvent, AuditFilter, AuditReport, CaRecord, CertFilter, CertRecord, CertStatus,
    RevocationReason, RevokeOutcome, StatusFilter,
};

pub use audit::{GENESIS_HASH, entry_hash};

/// Failures of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or could not be reached.
    #[error("database: {0}")]
    Db(sqlx::Error),
    /// A text value the database cannot hold (PostgreSQL: a NUL, SQLSTATE 22021 or 22P05). The
    /// front ends refuse control characters before they get here; this keeps one that slips
    /// through a 400 of the caller's, not a 503 of ours.
    #[error("a value holds characters the database cannot store")]
    InvalidText,
    /// A migration failed at start-up.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The (issuer, serial) pair exists already.
    #[error("a certificate with serial {serial} already exists for issuer {issuer}")]
    DuplicateSerial {
        /// Issuer id.
        issuer: String,
        /// Serial, hex.
        serial: String,
    },
    /// A CA with that id exists already.
    #[error("CA {0} already exists")]
    DuplicateCa(String),
    /// Something unique (a client id, a client certificate) is registered already.
    #[error("{0}")]
    Taken(String),
    /// A paging cursor that is not ours.
    #[error("{0}")]
    BadCursor(String),
    /// A URL we cannot connect to.
    #[error("{0}")]
    BadUrl(String),
    /// A stored value we cannot read back (a corrupted or foreign row).
    #[error("stored data: {0}")]
    Corrupt(String),
    /// OCSP replicas did not confirm a revocation in time.
    #[error("{0}")]
    ReplicasLagging(String),
    /// Not something this database does (an online SQLite backup of a PostgreSQL store).
    #[error("{0}")]
    Unsupported(String),
    /// Another call with the same idempotency key committed first.
    #[error("idempotency key {0} was used by a concurrent call")]
    IdempotencyKeyTaken(String),
    /// Another process changed the row first (two rollovers of one CA at once).
    #[error("{0}")]
    ConcurrentChange(String),
    /// The group commit holding this issuance failed; nothing of it was stored.
    #[error("database: the issuance batch did not commit: {0}")]
    BatchFailed(String),
    /// The connection died after COMMIT was sent and the database could not be asked since:
    /// the write may or may not be stored. A retry with the same idempotency key tells.
    #[error("database: the connection was lost during the commit; outcome unknown: {0}")]
    OutcomeUnknown(String),
    /// None of the database URL's hosts is a writable primary (all down, or standbys).
    #[error("{0}")]
    NoPrimary(String),
    /// The issuing CA key is stopped (`ca compromise`): the database refused to record a
    /// certificate it signed, whichever process signed it.
    #[error("the issuing CA key is stopped (compromised); retry once its replacement is in place")]
    KeyStopped,
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> StoreError {
        if key_stopped(&e) {
            tracing::warn!(
                "refused to record a certificate signed by a stopped (compromised) CA key"
            );
            return StoreError::KeyStopped;
        }
        if invalid_text(&e) {
            // The caller's input, not our fault: no ERROR line, no 503.
            tracing::info!(error = %e, "the database refused a text value");
            return StoreError::InvalidText;
        }
        StoreError::Db(e)
    }
}

/// The refusal of the `certificates_refuse_stopped_key` trigger (migration 0017).
fn key_stopped(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.message().contains("ca_key_stopped"))
}

/// PostgreSQL's answer to a text parameter holding a NUL: 22021 (character not in repertoire,
/// "invalid byte sequence for encoding") or 22P05 (untranslatable character, a `\u0000` in
/// JSON). SQLite stores such values, so only PostgreSQL says this.
fn invalid_text(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if matches!(d.code().as_deref(), Some("22021" | "22P05")))
}

impl StoreError {
    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::InvalidText => "invalid_characters",
            StoreError::Db(e) if invalid_text(e) => "invalid_characters",
            StoreError::DuplicateSerial { .. } => "duplicate_serial",
            StoreError::DuplicateCa(_) => "ca_exists",
            StoreError::Taken(_) => "already_registered",
            StoreError::BadCursor(_) => "bad_query",
            StoreError::BadUrl(_) => "config",
            StoreError::ReplicasLagging(_) => "revocation_not_propagated",
            StoreError::Unsupported(_) => "unsupported",
            StoreError::IdempotencyKeyTaken(_) => "idempotency_key_in_use",
            StoreError::ConcurrentChange(_) => "concurrent_change",
            StoreError::OutcomeUnknown(_) => "outcome_unknown",
            StoreError::KeyStopped => "issuer_key_stopped",
            _ => "store_unavailable",
        }
    }

    /// How it is answered.
    pub fn kind(&self) -> ErrorKind {
        match self {
            StoreError::BadCursor(_) | StoreError::Unsupported(_) | StoreError::InvalidText => {
                ErrorKind::BadRequest
            }
            StoreError::Db(e) if invalid_text(e) => ErrorKind::BadRequest,
            StoreError::DuplicateCa(_)
            | StoreError::Taken(_)
            | StoreError::IdempotencyKeyTaken(_)
            | StoreError::ConcurrentChange(_) => ErrorKind::Conflict,
            StoreError::BadUrl(_) | StoreError::Corrupt(_) => ErrorKind::Internal,
            _ => ErrorKind::Unavailable,
        }
    }

    /// Whether this is the loss of the database connection in use (or of the primary behind
    /// it) rather than a refusal of the data: a transaction that failed so, before its COMMIT
    /// was sent, stored nothing and may be run again on a fresh connection. Not when no
    /// connection could be had at all (the pool timed out): a second wait as long helps no one.
    pub fn lost_connection(&self) -> bool {
        match self {
            StoreError::Db(e) => is_connection_loss(e),
            _ => false,
        }
    }
}

/// A broken connection, a server shutting down, or a server that is no longer a primary
/// (`25006`: a read-only transaction, which wrote nothing).
fn is_connection_loss(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(d) => d.code().is_some_and(|c| {
            c.starts_with("08") || matches!(c.as_ref(), "57P01" | "57P02" | "57P03" | "25006")
        }),
        _ => false,
    }
}

#[derive(Clone, Debug)]
enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Which database a store runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// SQLite (embedded default).
    Sqlite,
    /// PostgreSQL (replicas).
    Postgres,
}

impl Backend {
    /// `sqlite` or `postgres`.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
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
use dispatch;

/// Handle to the database. Cheap to clone (pools are shared).
#[derive(Clone, Debug)]
pub struct Store {
    db: Db,
    clock: SharedClock,
    /// The group-commit writer of leaf issuances and provisionings (`batch`), started by `connect`.
    batch: tokio::sync::mpsc::Sender<batch::Job>,
    batch_stats: std::sync::Arc<batch::BatchStats>,
    /// Turns of this process's write transactions (SQLite only; [`WriteTurns`]).
    turns: WriteTurns,
}

/// The condition of [`Store::current_service_cert`]. `not_after + 0`: SQLite, without
/// statistics, would otherwise walk the (status, not_after) index, i.e. every valid certificate
/// of the store, instead of the partial index of the few signers (migration 0019); the plan is
/// checked by a test (`plans`).
const SERVICE_CERT_WHERE: &str = "WHERE issuer_id = $1 AND profile = $2 \
     AND status = 'valid' AND key_id IS NOT NULL AND not_after + 0 > $3 \
     AND ($4 IS NULL OR issuer_generation = $4) \
     ORDER BY not_before DESC, serial_hex DESC LIMIT 1";

/// How long a write transaction waits for its turn: SQLite's own busy timeout.
const WRITE_TURN_WAIT: Duration = Duration::from_secs(15);

/// On SQLite, the write transactions of one process take turns here before they begin.
///
/// Why: SQLite has one writer at a time, and a connection that finds the write lock taken
/// waits in SQLite's busy handler, which *sleeps* (1, 2, 5, 10, … up to 100 ms a try) rather
/// than waking when the lock is free. With 16 concurrent installations that sleeping, not the
/// work, made the slowest requests take hundreds of milliseconds. Queued here, a writer is
/// woken the moment the previous one commits, in arrival order. Writers of other processes
/// (the CLI beside `serve`, a second replica) still meet in SQLite's lock. PostgreSQL locks
/// rows and wakes waiters itself: no turns there.
#[derive(Clone, Debug, Default)]
pub(crate) struct WriteTurns(Option<std::sync::Arc<tokio::sync::Mutex<()>>>);

impl WriteTurns {
    fn for_db(db: &Db) -> WriteTurns {
        match db {
            Db::Sqlite(_) => WriteTurns(Some(Default::default())),
            Db::Postgres(_) => WriteTurns(None),
        }
    }

    /// Wait for this process's turn to write (at once on PostgreSQL); the turn lasts as long
    /// as the guard. A transaction must not wait for a second turn while it holds one.
    pub(crate) async fn take(
        &self,
    ) -> Result<Option<tokio::sync::OwnedMutexGuard<()>>, StoreError> {
        let Some(m) = &self.0 else {
            return Ok(None);
        };
        tokio::time::timeout(WRITE_TURN_WAIT, m.clone().lock_owned())
            .await
            .map(Some)
            .map_err(|_| StoreError::Db(sqlx::Error::PoolTimedOut))
    }
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

fn corrupt(what: &str, v: &str) -> StoreError {
    StoreError::Corrupt(format!(
        "{what} '{}'",
        v.chars().take(40).collect::<String>()
    ))
}

fn status_of(s: &str) -> Result<CertStatus, StoreError> {
    CertStatus::from_db(s).ok_or_else(|| corrupt("certificate status", s))
}

fn reason_of(s: Option<String>) -> Result<Option<RevocationReason>, StoreError> {
    s.map(|r| RevocationReason::parse(&r).map_err(|_| corrupt("revocation reason", &r)))
        .transpose()
}

fn key_alg_of(s: &str) -> Result<KeyAlg, StoreError> {
    KeyAlg::from_name(s).ok_or_else(|| corrupt("key algorithm", s))
}

const CERT_COLUMNS: &str = "issuer_id, serial_hex, profile, subject, emaid, evse_id, pcid, not_before, not_after, status, revoked_at, revocation_reason, key_id, tenant, der, created_at, issuer_generation";
const CA_COLUMNS: &str = "id, profile, parent_id, key_id, key_alg, serial_hex, subject, cert_der, not_before, not_after, created_at, external_chain, generation";

macro_rules! cert_from_row {
    ($row:expr) => {{
        let r = $row;
        let status: String = r.try_get("status")?;
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
            status: status_of(&status)?,
            revoked_at: r.try_get("revoked_at")?,
            revocation_reason: reason_of(r.try_get("revocation_reason")?)?,
            key_id: r.try_get("key_id")?,
            tenant: r.try_get("tenant")?,
            der: r.try_get("der")?,
            created_at: r.try_get("created_at")?,
            issuer_generation: r.try_get("issuer_generation")?,
        }
    }};
}

macro_rules! ca_from_row {
    ($row:expr) => {{
        let r = $row;
        let alg: String = r.try_get("key_alg")?;
        CaRecord {
            id: r.try_get("id")?,
            profile: r.try_get("profile")?,
            parent_id: r.try_get("parent_id")?,
            key_id: r.try_get("key_id")?,
            key_alg: key_alg_of(&alg)?,
            serial_hex: r.try_get("serial_hex")?,
            subject: r.try_get("subject")?,
            cert_der: r.try_get("cert_der")?,
            not_before: r.try_get("not_before")?,
            not_after: r.try_get("not_after")?,
            created_at: r.try_get("created_at")?,
            external_chain: r.try_get("external_chain")?,
            generation: r.try_get("generation")?,
        }
    }};
}

use ca_from_row;
use cert_from_row;

/// Insert a certificate row inside an open transaction.
macro_rules! insert_cert {
    ($tx:expr, $c:expr) => {{
        let c = $c;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO certificates ({CERT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
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
        .bind(c.status.as_str())
        .bind(c.revoked_at)
        .bind(c.revocation_reason.map(|r| r.name()))
        .bind(&c.key_id)
        .bind(&c.tenant)
        .bind(&c.der)
        .bind(c.created_at)
        .bind(c.issuer_generation)
        .execute(&mut *$tx)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::DuplicateSerial {
                    issuer: c.issuer_id.clone(),
                    serial: c.serial_hex.clone(),
                }
            } else {
                StoreError::from(e)
            }
        })?;
    }};
}

use insert_cert;

/// Revoke the certificate (`$issuer`, `$serial`) on `$conn` (a transaction) at `$at` for
/// `$reason` if it is valid, with the OCSP epoch bump that tells every replica (same
/// transaction). Evaluates to `Some((epoch, issuer_generation))`, or `None` when it is absent or
/// no longer valid; `?`s a database error. The one way a revocation is written (`Store::revoke`,
/// a provisioning's superseded certificates in `batch`).
macro_rules! revoke_in_tx {
    ($conn:expr, $issuer:expr, $serial:expr, $reason:expr, $at:expr, $ts:expr) => {{
        let reason: $crate::model::RevocationReason = $reason;
        let row = sqlx::query(
            "UPDATE certificates SET status = 'revoked', revoked_at = $1, revocation_reason = $2 \
             WHERE issuer_id = $3 AND serial_hex = $4 AND status = 'valid' \
             RETURNING issuer_generation",
        )
        .bind($at)
        .bind(reason.name())
        .bind($issuer)
        .bind($serial)
        .fetch_optional(&mut *$conn)
        .await?;
        match row {
            Some(r) => {
                let generation: i64 = sqlx::Row::try_get(&r, "issuer_generation")?;
                let epoch = $crate::store::ocsp::bump_epoch_in_tx!($conn, $issuer, $serial, $ts);
                Some((epoch, generation))
            }
            None => None,
        }
    }};
}
use revoke_in_tx;

/// A committed revocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revocation {
    /// What changed.
    pub outcome: RevokeOutcome,
    /// The OCSP revocation epoch this revocation bumped to (when it changed something).
    pub epoch: Option<i64>,
    /// The issuer's key generation that signed the certificate (when this call revoked it):
    /// whose CRL lists it.
    pub generation: Option<i64>,
}

/// The SQLite file holds argon2 hashes and the audit log: create it 0600 before SQLite does
/// (SQLite gives its `-wal` and `-shm` files the database file's mode), and tighten an existing
/// one that others can read.
fn owner_only_file(path: &std::path::Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        if path.as_os_str().is_empty() || path.to_str() == Some(":memory:") {
            return;
        }
        match std::fs::metadata(path) {
            Err(_) => {
                // Created here, empty: SQLite initialises an empty file as a new database.
                let _ = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path);
            }
            Ok(meta) => {
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    for p in [
                        path.to_path_buf(),
                        wal_side(path, "-wal"),
                        wal_side(path, "-shm"),
                    ] {
                        if p.exists() {
                            let _ = std::fs::set_permissions(
                                &p,
                                std::fs::Permissions::from_mode(0o600),
                            );
                        }
                    }
                    tracing::warn!(file = %path.display(), was = format!("{mode:o}"), "database file was readable by other users; now 0600");
                }
            }
        }
    }
}

#[cfg(unix)]
fn wal_side(path: &std::path::Path, suffix: &str) -> std::path::PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    s.into()
}

impl Store {
    /// Connect and run migrations. `sqlite://path` (created if missing) or `postgres://…`.
    pub async fn connect(url: &str, clock: SharedClock) -> Result<Store, StoreError> {
        let db = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            // While the server is down, sqlx retries connecting until this passes: it is how
            // long a request waits before its 503, so it is short (`PNC_DB_ACQUIRE_TIMEOUT`).
            let acquire = match std::env::var("PNC_DB_ACQUIRE_TIMEOUT") {
                Ok(v) if !v.trim().is_empty() => crate::duration::parse_duration(&v)
                    .map_err(|e| StoreError::BadUrl(format!("PNC_DB_ACQUIRE_TIMEOUT: {e}")))?,
                _ => Duration::from_secs(3),
            };
            // One attempt on one host is bounded by this, so that the acquire budget covers
            // several hosts of a host list (`pghosts`).
            let connect_timeout = match std::env::var("PNC_DB_CONNECT_TIMEOUT") {
                Ok(v) if !v.trim().is_empty() => crate::duration::parse_duration(&v)
                    .map_err(|e| StoreError::BadUrl(format!("PNC_DB_CONNECT_TIMEOUT: {e}")))?,
                _ => pghosts::DEFAULT_CONNECT_TIMEOUT,
            };
            let pool = pghosts::connect(url, acquire, connect_timeout).await?;
            sqlx::migrate!("./migrations/postgres").run(&pool).await?;
            Db::Postgres(pool)
        } else if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_secs(15))
                .foreign_keys(true)
                // 16 MiB of page cache per connection (SQLite's default is 2 MiB): the hot
                // index pages of a store with many thousand contracts stay in memory. (Memory
                // mapping the file instead costs more than it saves here: a database that grows
                // with every commit is unmapped and mapped again by every connection.)
                .pragma("cache_size", "-16384");
            owner_only_file(opts.get_filename());
            let pool = SqlitePoolOptions::new()
                .max_connections(8)
                .connect_with(opts)
                .await?;
            sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
            Db::Sqlite(pool)
        } else {
            return Err(StoreError::BadUrl(format!(
                "unsupported database URL scheme in '{}' (use sqlite:// or postgres://)",
                redact_url(url)
            )));
        };
        let batch_stats = std::sync::Arc::new(batch::BatchStats::default());
        let turns = WriteTurns::for_db(&db);
        let batch = batch::spawn(
            db.clone(),
            clock.clone(),
            batch_stats.clone(),
            turns.clone(),
        );
        Ok(Store {
            db,
            clock,
            batch,
            batch_stats,
            turns,
        })
    }

    /// Write a consistent copy of the whole database to `path` while it is in use: SQLite's
    /// `VACUUM INTO` reads in one transaction, so the copy is a snapshot of committed data (a
    /// certificate and its audit entry are both in it or both not), and writers go on meanwhile.
    /// The file is created owner-only; an existing one is never overwritten. PostgreSQL stores
    /// are backed up with its own tools (`docs/deployment.md`).
    pub async fn backup_to(&self, path: &std::path::Path) -> Result<(), StoreError> {
        let Db::Sqlite(pool) = &self.db else {
            return Err(StoreError::Unsupported(
                "an online backup here is for SQLite; back PostgreSQL up with pg_dump or \
                 pg_basebackup (docs/deployment.md)"
                    .into(),
            ));
        };
        let target = path.to_str().ok_or_else(|| {
            StoreError::Unsupported(format!("{} is not a UTF-8 path", path.display()))
        })?;
        if path.exists() {
            return Err(StoreError::Unsupported(format!(
                "{} exists already; choose a new file",
                path.display()
            )));
        }
        // Owner-only before SQLite writes a byte: the copy holds argon2 hashes and the audit log.
        owner_only_file(path);
        let done = sqlx::query("VACUUM INTO $1")
            .bind(target)
            .execute(pool)
            .await;
        if let Err(e) = done {
            let _ = std::fs::remove_file(path);
            return Err(e.into());
        }
        Ok(())
    }

    /// Close every connection (a checkpointed, closed SQLite file can then be moved).
    pub async fn close(&self) {
        dispatch!(&self.db, pool => pool.close().await)
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        match self.db {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    fn now(&self) -> i64 {
        self.clock.now()
    }

    /// Prove the database accepts writes: update the one row of `health_probe` (a read-only
    /// file, a full disk or a read-only replica fail here, where `SELECT 1` would not).
    pub async fn write_probe(&self) -> Result<(), StoreError> {
        let now = self.now();
        dispatch!(&self.db, pool => {
            let _turn = self.turns.take().await?;
            sqlx::query("UPDATE health_probe SET checked_at = $1 WHERE id = 1")
                .bind(now)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Record an issued certificate (and, for a CA certificate, the CA itself) together with its
    /// audit entry and, when the call carried one, its idempotency key, in one transaction.
    /// Nothing is visible unless all of it commits; a key another call committed first fails
    /// the whole transaction with [`StoreError::IdempotencyKeyTaken`].
    pub async fn record_issuance(
        &self,
        cert: &CertRecord,
        ca: Option<&CaRecord>,
        event: &AuditEvent,
        idem: Option<&crate::model::IdempotencyKey>,
    ) -> Result<AuditEntry, StoreError> {
        // Leaf issuances are group-committed (`batch`); a CA's record takes its own transaction.
        if ca.is_none() {
            let rows = batch::Rows::Issuance(idem.cloned());
            return Ok(self.group_commit(cert, event, rows).await?.entry);
        }
        let ts = self.now();
        dispatch!(&self.db, pool => {
            let _turn = self.turns.take().await?;
            let mut tx = pool.begin().await?;
            // The audit head first: it takes the write lock up front on SQLite.
            let entry = audit::append_in_tx!(tx, event, ts);
            if let Some(ca) = ca {
                let r = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO cas ({CA_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
                )))
                .bind(&ca.id)
                .bind(&ca.profile)
                .bind(&ca.parent_id)
                .bind(&ca.key_id)
                .bind(ca.key_alg.name())
                .bind(&ca.serial_hex)
                .bind(&ca.subject)
                .bind(&ca.cert_der)
                .bind(ca.not_before)
                .bind(ca.not_after)
                .bind(ca.created_at)
                .bind(&ca.external_chain)
                .bind(ca.generation)
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
            if let Some(k) = idem {
                batch::insert_idem!(&mut *tx, k, &cert.issuer_id, &cert.serial_hex, None, ts)?;
            }
            tx.commit().await?;
            Ok(entry)
        })
    }

    /// Hand a certificate, its audit entry and its other rows to the group-commit writer and
    /// wait for the commit of the transaction that holds them.
    async fn group_commit(
        &self,
        cert: &CertRecord,
        event: &AuditEvent,
        rows: batch::Rows,
    ) -> Result<batch::Committed, StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = batch::Job {
            cert: cert.clone(),
            event: event.clone(),
            rows,
            reply,
        };
        let stopped = || StoreError::BatchFailed("the batch writer stopped".into());
        self.batch.send(job).await.map_err(|_| stopped())?;
        answer.await.unwrap_or_else(|_| Err(stopped()))
    }

    /// Connections of the database pool now: open, idle and the maximum (`/metrics`).
    pub fn pool_stats(&self) -> crate::stats::PoolSnapshot {
        dispatch!(&self.db, pool => crate::stats::PoolSnapshot {
            size: pool.size(),
            idle: u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
            max: pool.options().get_max_connections(),
        })
    }

    /// Group-commit statistics: (transactions, issuances in them, largest batch).
    pub fn batch_stats(&self) -> (u64, u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        let s = &self.batch_stats;
        (
            s.batches.load(Relaxed),
            s.items.load(Relaxed),
            s.largest.load(Relaxed),
        )
    }

    /// What an earlier call by `actor` with idempotency key `key` produced, if it is younger
    /// than 24 hours.
    pub async fn idempotent_result(
        &self,
        actor: &str,
        key: &str,
    ) -> Result<Option<crate::model::IdempotentResult>, StoreError> {
        let since = self.now() - IDEMPOTENCY_KEEP_SECS;
        dispatch!(&self.db, pool => {
            let row = sqlx::query(
                "SELECT request_sha256, issuer_id, serial_hex, response FROM idempotency_keys \
                 WHERE actor = $1 AND idem_key = $2 AND created_at >= $3",
            )
            .bind(actor)
            .bind(key)
            .bind(since)
            .fetch_optional(pool)
            .await?;
            match row {
                Some(r) => Ok(Some(crate::model::IdempotentResult {
                    request_sha256: r.try_get("request_sha256")?,
                    issuer_id: r.try_get("issuer_id")?,
                    serial_hex: r.try_get("serial_hex")?,
                    response: r.try_get("response")?,
                })),
                None => Ok(None),
            }
        })
    }

    /// Revoke; idempotent. The status change, its audit entry, the OCSP revocation epoch bump and
    /// the event replicas apply, and the removal of stored "good" OCSP answers commit together:
    /// no replica can miss a revocation that committed.
    ///
    /// With an idempotency key, the key and the outcome (`revoked` / `already_revoked`) are
    /// recorded too: in the revocation's transaction when this call revoked; alone when the
    /// certificate was revoked before (nothing else is written then). A key another call
    /// committed first fails the call with [`StoreError::IdempotencyKeyTaken`], and nothing of it
    /// is stored. No key is recorded for an unknown certificate.
    pub async fn revoke(
        &self,
        issuer_id: &str,
        serial_hex: &str,
        reason: RevocationReason,
        at: i64,
        event: &AuditEvent,
        idem: Option<&crate::model::IdempotencyKey>,
    ) -> Result<Revocation, StoreError> {
        let ts = self.now();
        let nothing = |outcome| Revocation {
            outcome,
            epoch: None,
            generation: None,
        };
        let done = dispatch!(&self.db, pool => {
            let _turn = self.turns.take().await?;
            let mut tx = pool.begin().await?;
            // Write first: on SQLite (WAL) a transaction that reads before writing fails at once
            // with SQLITE_BUSY when another process committed meanwhile. Early returns roll back.
            let _entry = audit::append_in_tx!(tx, event, ts);
            match revoke_in_tx!(tx, issuer_id, serial_hex, reason, at, ts) {
                Some((epoch, generation)) => {
                    if let Some(k) = idem {
                        let outcome: &[u8] = RevokeOutcome::Revoked.name().as_bytes();
                        batch::insert_idem!(&mut *tx, k, issuer_id, serial_hex, Some(outcome), ts)?;
                        batch::purge_idem!(&mut *tx, ts);
                    }
                    tx.commit().await?;
                    Revocation {
                        outcome: RevokeOutcome::Revoked,
                        epoch: Some(epoch),
                        generation: Some(generation),
                    }
                }
                // Not valid: absent, or revoked already (by another call too). The status is
                // read only then, one statement less on the common path.
                None => {
                    let row = sqlx::query(
                        "SELECT status FROM certificates WHERE issuer_id = $1 AND serial_hex = $2",
                    )
                    .bind(issuer_id)
                    .bind(serial_hex)
                    .fetch_optional(&mut *tx)
                    .await?;
                    match row {
                        None => nothing(RevokeOutcome::NotFound),
                        Some(row) => {
                            status_of(&row.try_get::<String, _>("status")?)?;
                            nothing(RevokeOutcome::AlreadyRevoked)
                        }
                    }
                }
            }
            // Not revoked by this call: `tx` (its audit entry) rolls back when dropped here.
        });
        if done.outcome == RevokeOutcome::AlreadyRevoked
            && let Some(k) = idem
        {
            // Nothing else to keep consistent with: the key alone, so that the same key with
            // another body is still refused and a retry still answers "already revoked".
            let outcome: &[u8] = RevokeOutcome::AlreadyRevoked.name().as_bytes();
            dispatch!(&self.db, pool => {
                let _turn = self.turns.take().await?;
                let mut tx = pool.begin().await?;
                batch::insert_idem!(&mut *tx, k, issuer_id, serial_hex, Some(outcome), ts)?;
                batch::purge_idem!(&mut *tx, ts);
                tx.commit().await?;
            });
        }
        Ok(done)
    }

    /// Append an audit entry on its own (authentication failures, refusals, CSRs, …).
    pub async fn audit(&self, event: &AuditEvent) -> Result<AuditEntry, StoreError> {
        let ts = self.now();
        dispatch!(&self.db, pool => {
            let _turn = self.turns.take().await?;
            let mut tx = pool.begin().await?;
            let entry = audit::append_in_tx!(tx, event, ts);
            tx.commit().await?;
            Ok(entry)
        })
    }

    /// A CA by id.
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

    /// Every CA, oldest first.
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

    /// A certificate by issuer and serial.
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
        match f.status {
            Some(StatusFilter::Valid) | Some(StatusFilter::Expired) => {
                push("status = ?", CertStatus::Valid.as_str().into())
            }
            Some(StatusFilter::Revoked) => push("status = ?", CertStatus::Revoked.as_str().into()),
            None => {}
        }
        if let Some(v) = &f.serial_hex {
            push("serial_hex = ?", v.to_ascii_lowercase());
        }
        if let Some(v) = &f.tenant {
            push("tenant = ?", v.clone());
        }
        if let Some(v) = &f.subject {
            push("subject = ?", v.clone());
        }
        if let Some(t) = f.text.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            // LIKE with its wildcards escaped (the ESCAPE clause reads the same on both
            // databases); LOWER on both sides, since only SQLite's LIKE ignores case.
            let esc = |s: &str| {
                s.replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_")
            };
            let compact: String = t
                .chars()
                .filter(|c| !matches!(c, '*' | '-' | ' ' | ':'))
                .collect::<String>()
                .to_lowercase();
            // Subjects are RFC 4514-escaped (`O=ACME\, Inc.`): backslashes are ignored on
            // both sides, so the name is found however it is typed.
            args.push(format!("%{}%", esc(&t.replace('\\', "").to_lowercase())));
            let a = args.len();
            args.push(format!("%{}%", esc(&compact)));
            let b = args.len();
            clauses.push(format!(
                "(REPLACE(LOWER(subject), '\\', '') LIKE ${a} ESCAPE '\\' OR LOWER(evse_id) LIKE ${b} ESCAPE '\\' \
                 OR LOWER(emaid) LIKE ${b} ESCAPE '\\' OR LOWER(pcid) LIKE ${b} ESCAPE '\\' \
                 OR serial_hex LIKE ${b} ESCAPE '\\')"
            ));
        }
        if let Some(after) = &f.after {
            let (i, s) = after.split_once('/').ok_or_else(|| {
                StoreError::BadCursor("cursor must be issuer_id/serial_hex".into())
            })?;
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
        if let Some(t) = f.expiring_after {
            ints.push(t);
            int_clauses.push(format!("not_after >= ${}", args.len() + ints.len()));
        }
        if f.status == Some(StatusFilter::Expired) {
            ints.push(self.now());
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

    /// The newest valid, unexpired certificate of `profile` from `issuer_id` (signed by its key
    /// generation `generation`, when given) whose key the service holds (CPS leaf, OCSP signer).
    pub async fn current_service_cert(
        &self,
        profile: &str,
        issuer_id: &str,
        generation: Option<i64>,
    ) -> Result<Option<CertRecord>, StoreError> {
        let now = self.now();
        dispatch!(&self.db, pool => {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {CERT_COLUMNS} FROM certificates {SERVICE_CERT_WHERE}"
            )))
            .bind(issuer_id)
            .bind(profile)
            .bind(now)
            .bind(generation)
            .fetch_optional(pool)
            .await?;
            match row {
                Some(r) => Ok(Some(cert_from_row!(r))),
                None => Ok(None),
            }
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

    /// Walk the whole audit chain, recomputing every hash.
    pub async fn audit_verify(&self) -> Result<AuditReport, StoreError> {
        audit::verify(self).await
    }

    /// Audit entries in `seq` order, from after the filter's cursor.
    pub async fn audit_entries(&self, f: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
        audit::entries(self, f).await
    }
}

/// How long an idempotency key is kept, seconds (24 h).
pub const IDEMPOTENCY_KEEP_SECS: i64 = 86_400;

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

/// SQLite's query plans of lookups made per issuance, installation or revocation: each must go
/// through its index, not walk a table or every valid certificate (the planner has no
/// statistics and likes the (status, not_after) index). A walk made a compromise response's
/// regeneration slow down as the store grew (docs/benchmarks.md, issue 24).
#[cfg(test)]
mod plans {
    use super::*;

    /// `EXPLAIN QUERY PLAN` of `sql` (with `$n` placeholders) on a migrated SQLite store.
    async fn plan(store: &Store, sql: &str) -> String {
        let Db::Sqlite(pool) = &store.db else {
            unreachable!("a SQLite store")
        };
        let mut q = sql.to_string();
        for n in (1..=9).rev() {
            q = q.replace(&format!("${n}"), "?");
        }
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {q}")))
            .fetch_all(pool)
            .await
            .unwrap();
        rows.iter()
            .map(|r| r.try_get::<String, _>("detail").unwrap())
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[tokio::test]
    async fn per_request_lookups_use_their_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/plans.db", dir.path().display());
        let store = Store::connect(&url, crate::clock::system()).await.unwrap();
        let cases: [(&str, String, &str); 4] = [
            (
                "the CPS / OCSP signer",
                format!("SELECT {CERT_COLUMNS} FROM certificates {SERVICE_CERT_WHERE}"),
                "certificates_signers",
            ),
            (
                "what an installation supersedes",
                provisioning::TO_SUPERSEDE.to_string(),
                // The contract's open provisionings, not its history.
                "provisionings_contract (contract_id=? AND closed_at=?)",
            ),
            (
                "a CRL's entries",
                crl::REVOKED_FOR_CRL.to_string(),
                "(issuer_id=?",
            ),
            (
                "a contract by EMAID",
                "SELECT id FROM contracts WHERE 1 = 1 AND emaid = $1 ORDER BY created_at DESC, id LIMIT 10"
                    .to_string(),
                "contracts_emaid",
            ),
        ];
        for (what, sql, index) in cases {
            let p = plan(&store, &sql).await;
            assert!(
                p.contains(index),
                "{what}: expected {index} in the plan:\n{p}"
            );
            assert!(
                !p.contains("certificates_status_not_after"),
                "{what}: walks every valid certificate:\n{p}"
            );
            assert!(
                !p.lines().any(|l| l.starts_with("SCAN")),
                "{what}: scans a table:\n{p}"
            );
        }
    }

    /// PostgreSQL without statistics (a new deployment whose tables just grew, before
    /// autovacuum analysed them): what an installation supersedes is still looked up from the
    /// contract's open provisionings, not by walking every valid contract certificate (the plan
    /// it chose before, 25 times slower at 1,000 contracts and growing with the fleet) nor the
    /// contract's history (14 ms at 1,000 installations of one car).
    #[tokio::test]
    async fn postgres_looks_up_what_an_installation_supersedes_by_contract_without_statistics() {
        use sqlx::Connection;
        let admin = std::env::var("PNC_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let mut conn = match sqlx::PgConnection::connect(&admin).await {
            Ok(c) => c,
            Err(e) if std::env::var_os("CI").is_none() => {
                eprintln!(
                    "\n!!! SKIPPED the PostgreSQL plan test: {admin} unavailable ({e}) !!!\n"
                );
                return;
            }
            Err(e) => panic!("CI is set but PostgreSQL at {admin} is unavailable: {e}"),
        };
        let name = format!("pnc_plans_{}", std::process::id());
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name}"
        )))
        .execute(&mut conn)
        .await;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .unwrap();
        let url = format!("{}/{name}", admin.rsplit_once('/').unwrap().0);
        let store = Store::connect(&url, crate::clock::system()).await.unwrap();
        let Db::Postgres(pool) = &store.db else {
            unreachable!("a PostgreSQL store")
        };
        // 3,000 contracts with one valid contract certificate each, and one car installed 3,000
        // times before (closed provisionings of contract k42), never analysed.
        for sql in [
            "INSERT INTO cas (id, profile, key_id, key_alg, serial_hex, subject, cert_der, \
             not_before, not_after, created_at) VALUES ('mo', 'mo-sub-ca-2', '00', 'ec-p256', \
             '01', 'CN=mo', '\\x3000', 0, 4000000000, 0)",
            "INSERT INTO certificates (issuer_id, serial_hex, profile, subject, not_before, \
             not_after, status, der, created_at) SELECT 'mo', to_hex(i), 'contract', 'CN=x', 0, \
             4000000000, 'valid', '\\x3000', i FROM generate_series(1, 3000) i",
            "INSERT INTO provisionings (issuer_id, serial_hex, contract_id, kind, schema_version, \
             request_sha256, request, response_size, created_at) SELECT 'mo', to_hex(i), \
             'k' || i, 'install', 'iso15118-2', '00', '\\x00', 0, i \
             FROM generate_series(1, 3000) i",
            "INSERT INTO certificates (issuer_id, serial_hex, profile, subject, not_before, \
             not_after, status, der, created_at) SELECT 'mo', 'h' || i, 'contract', \
             'CN=x', 0, 4000000000, 'revoked', '\\x3000', i FROM generate_series(1, 3000) i",
            "INSERT INTO provisionings (issuer_id, serial_hex, contract_id, kind, schema_version, \
             request_sha256, request, response_size, created_at, closed_at) SELECT 'mo', \
             'h' || i, 'k42', 'install', 'iso15118-2', '00', '\\x00', 0, i, i \
             FROM generate_series(1, 3000) i",
        ] {
            sqlx::query(sql).execute(pool).await.unwrap();
        }
        let mut q = provisioning::TO_SUPERSEDE.to_string();
        for (n, v) in [(3, "1000"), (2, "'contract'"), (1, "'k42'")] {
            q = q.replace(&format!("${n}"), v);
        }
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN {q}")))
            .fetch_all(pool)
            .await
            .unwrap();
        let plan = rows
            .iter()
            .map(|r| r.try_get::<String, _>(0).unwrap())
            .collect::<Vec<_>>()
            .join("\n");
        store.close().await;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut conn)
        .await
        .unwrap();
        assert!(
            plan.contains("provisionings_contract") && plan.contains("certificates_pkey"),
            "expected the contract's provisionings, then each certificate by key:\n{plan}"
        );
        assert!(
            plan.lines()
                .any(|l| l.contains("Index Cond") && l.contains("closed_at IS NULL")),
            "expected only the contract's open provisionings from the index:\n{plan}"
        );
        for index in ["certificates_status_not_after", "certificates_profile"] {
            assert!(
                !plan.contains(index),
                "walks valid certificates ({index}):\n{plan}"
            );
        }
    }
}
