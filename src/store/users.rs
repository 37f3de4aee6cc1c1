//! People of the operator console and their sessions, plus the console's dashboard counts. Same
//! rules as the rest of the store: written once, expanded per backend by `dispatch!`, every
//! change audited in the same transaction.

use sqlx::Row;

use super::{
    CERT_COLUMNS, Store, StoreError, audit, cert_from_row, corrupt, dispatch, is_unique_violation,
    reason_of, status_of,
};
use crate::model::{AuditEvent, CertRecord, SessionRecord, UserRecord};
use crate::policy::authz::Role;

const USER_COLUMNS: &str = "name, role, tenants, password_hash, disabled_at, created_at";

/// Sessions one user may hold at once; signing in again drops the oldest beyond this.
pub const MAX_SESSIONS_PER_USER: i64 = 10;

macro_rules! user_from_row {
    ($row:expr) => {{
        let r = $row;
        let tenants: String = r.try_get("tenants")?;
        let role: String = r.try_get("role")?;
        UserRecord {
            name: r.try_get("name")?,
            role: role
                .parse::<Role>()
                .map_err(|_| corrupt("user role", &role))?,
            tenants: serde_json::from_str(&tenants).map_err(|_| corrupt("tenants", &tenants))?,
            password_hash: r.try_get("password_hash")?,
            disabled_at: r.try_get("disabled_at")?,
            created_at: r.try_get("created_at")?,
        }
    }};
}

/// Sessions that have expired at `now`: idle since `idle_cutoff` or signed in before
/// `absolute_cutoff`.
#[derive(Clone, Copy, Debug)]
pub struct SessionCutoffs {
    /// Sessions last seen before this are idle-expired.
    pub idle_cutoff: i64,
    /// Sessions created before this are past their absolute lifetime.
    pub absolute_cutoff: i64,
}

impl Store {
    /// Register a console user; the audit entry commits with it.
    pub async fn insert_user(&self, u: &UserRecord, event: &AuditEvent) -> Result<(), StoreError> {
        let tenants = serde_json::Value::from(u.tenants.clone()).to_string();
        let ts = self.now();
        dispatch!(&self.db, pool => {
            let _turn = self.turns.take().await?;
            let mut tx = pool.begin().await?;
            let _ = audit::append_in_tx!(tx, event, ts);
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO ui_users ({USER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"
            )))
            .bind(&u.name)
            .bind(u.role.as_str())
            .bind(&tenants)
            .bind(&u.password_hash)
            .bind(u.disabled_at)
            .bind(u.created_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Taken(format!("user {} exists already", u.name))
                } else {
                    StoreError::Db(e)
                }
            })?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// A console user by name.
    pub async fn get_user(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        dispatch!(&self.db, pool => {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {USER_COLUMNS} FROM ui_users WHERE name = $1"
            )))
            .bind(name)
            .fetch_optional(pool)
            .await?;
            match row {
                Some(r) => Ok(Some(user_from_row!(r))),
                None => Ok(None),
            }
        })
    }

    /// Every console user, by name.
    pub async fn list_users(&self) -> Result<Vec<UserRecord>, StoreError> {
        dispatch!(&self.db, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {USER_COLUMNS} FROM ui_users ORDER BY name"
            )))
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push(user_from_row!(r));
            }
            Ok(out)
        })
    }

    /// Disable a user and end its sessions. False (and no audit entry) when it does not exist or
    /// was disabled already.
    pub async fn disable_user(&self, name: &str, event: &AuditEvent) -> Result<bool, StoreError> {
        let ts = self.now();
        dispatch!(&self.db, pool => {
            let _turn = self.turns.take().await?;
            let mut tx = pool.begin().await?;
            let _ = audit::append_in_tx!(tx, event, ts);
            let done = sqlx::query(
                "UPDATE ui_users SET disabled_at = $1 WHERE name = $2 AND disabled_at IS NULL",
            )
            .bind(ts)
            .bind(name)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                return Ok(false);
            }
            sqlx::query("DELETE FROM ui_sessions WHERE user_name = $1")
                .bind(name)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Replace a user's password hash and end its sessions, audited.
    pub async fn set_user_password(
        &self,
        name: &str,
        password_hash: &str,
        event: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let ts = self.now();
        dispatch!(&self.db, pool => {
            let _turn = self.turns.take().await?;
            let mut tx = pool.begin().await?;
            let _ = audit::append_in_tx!(tx, event, ts);
            let done = sqlx::query("UPDATE ui_users SET password_hash = $1 WHERE name = $2")
                .bind(password_hash)
                .bind(name)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 0 {
                return Ok(false);
            }
            sqlx::query("DELETE FROM ui_sessions WHERE user_name = $1")
                .bind(name)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Record a new session with its `ui.signin` audit entry. In the same transaction, expired
    /// sessions (of anyone) are dropped and the user's oldest beyond
    /// [`MAX_SESSIONS_PER_USER`] too, so the table stays bounded.
    pub async fn insert_session(
        &self,
        id_hash: &str,
        user: &str,
        csrf: &str,
        cutoffs: SessionCutoffs,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let ts = self.now();
        dispatch!(&self.db, pool => {
            let _turn = self.turns.take().await?;
            let mut tx = pool.begin().await?;
            let _ = audit::append_in_tx!(tx, event, ts);
            sqlx::query("DELETE FROM ui_sessions WHERE last_seen < $1 OR created_at < $2")
                .bind(cutoffs.idle_cutoff)
                .bind(cutoffs.absolute_cutoff)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "DELETE FROM ui_sessions WHERE user_name = $1 AND id_hash NOT IN \
                 (SELECT id_hash FROM ui_sessions WHERE user_name = $1 \
                  ORDER BY created_at DESC, id_hash LIMIT $2)",
            )
            .bind(user)
            .bind(MAX_SESSIONS_PER_USER - 1)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO ui_sessions (id_hash, user_name, csrf, created_at, last_seen) \
                 VALUES ($1, $2, $3, $4, $4)",
            )
            .bind(id_hash)
            .bind(user)
            .bind(csrf)
            .bind(ts)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// The session with this id hash, with its user.
    pub async fn get_session(&self, id_hash: &str) -> Result<Option<SessionRecord>, StoreError> {
        dispatch!(&self.db, pool => {
            let row = sqlx::query(
                "SELECT s.id_hash, s.csrf, s.created_at AS s_created, s.last_seen, \
                 u.name, u.role, u.tenants, u.password_hash, u.disabled_at, u.created_at \
                 FROM ui_sessions s JOIN ui_users u ON u.name = s.user_name WHERE s.id_hash = $1",
            )
            .bind(id_hash)
            .fetch_optional(pool)
            .await?;
            match row {
                Some(r) => Ok(Some(SessionRecord {
                    id_hash: r.try_get("id_hash")?,
                    csrf: r.try_get("csrf")?,
                    created_at: r.try_get("s_created")?,
                    last_seen: r.try_get("last_seen")?,
                    user: user_from_row!(&r),
                })),
                None => Ok(None),
            }
        })
    }

    /// Note activity on a session.
    pub async fn touch_session(&self, id_hash: &str) -> Result<(), StoreError> {
        let ts = self.now();
        dispatch!(&self.db, pool => {
            let _turn = self.turns.take().await?;
            sqlx::query("UPDATE ui_sessions SET last_seen = $1 WHERE id_hash = $2")
                .bind(ts)
                .bind(id_hash)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// End a session; with `event`, audited in the same transaction. False when there was none.
    pub async fn delete_session(
        &self,
        id_hash: &str,
        event: Option<&AuditEvent>,
    ) -> Result<bool, StoreError> {
        let ts = self.now();
        dispatch!(&self.db, pool => {
            let _turn = self.turns.take().await?;
            let mut tx = pool.begin().await?;
            let done = sqlx::query("DELETE FROM ui_sessions WHERE id_hash = $1")
                .bind(id_hash)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 0 {
                return Ok(false);
            }
            if let Some(ev) = event {
                let _ = audit::append_in_tx!(tx, ev, ts);
            }
            tx.commit().await?;
            Ok(true)
        })
    }

    /// The console's form-signing secret: `candidate` becomes it unless one exists already;
    /// every replica then reads the same one.
    pub async fn ui_secret(&self, candidate: &str) -> Result<String, StoreError> {
        dispatch!(&self.db, pool => {
            let _turn = self.turns.take().await?;
            sqlx::query("INSERT INTO ui_secret (id, secret) VALUES (1, $1) ON CONFLICT (id) DO NOTHING")
                .bind(candidate)
                .execute(pool)
                .await?;
            let r = sqlx::query("SELECT secret FROM ui_secret WHERE id = 1")
                .fetch_one(pool)
                .await?;
            Ok(r.try_get("secret")?)
        })
    }

    /// Certificates counted by (profile, status), optionally of one tenant; expired ones
    /// (valid but past `not_after`) are counted as `expired`.
    pub async fn cert_counts(
        &self,
        tenant: Option<&str>,
    ) -> Result<Vec<(String, String, i64)>, StoreError> {
        let now = self.now();
        let tenant = tenant.unwrap_or_default().to_string();
        dispatch!(&self.db, pool => {
            let rows = sqlx::query(
                "SELECT profile, CASE WHEN status = 'valid' AND not_after < $1 THEN 'expired' \
                 ELSE status END AS st, COUNT(*) AS n FROM certificates \
                 WHERE ($2 = '' OR tenant = $2) GROUP BY profile, st ORDER BY profile, st",
            )
            .bind(now)
            .bind(&tenant)
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push((r.try_get("profile")?, r.try_get("st")?, r.try_get("n")?));
            }
            Ok(out)
        })
    }

    /// The valid certificates (optionally of one tenant) that expire first in `[from, to)`, at
    /// most `limit`, soonest first.
    pub async fn expiring_soonest(
        &self,
        from: i64,
        to: i64,
        tenant: Option<&str>,
        skip_profiles: &[String],
        limit: i64,
    ) -> Result<Vec<CertRecord>, StoreError> {
        let tenant = tenant.unwrap_or_default().to_string();
        let limit = limit.clamp(1, 1000);
        let skip: String = (0..skip_profiles.len())
            .map(|i| format!(" AND profile <> ${}", i + 5))
            .collect();
        dispatch!(&self.db, pool => {
            let sql = format!(
                "SELECT {CERT_COLUMNS} FROM certificates WHERE status = 'valid' \
                 AND not_after >= $1 AND not_after < $2 AND ($3 = '' OR tenant = $3){skip} \
                 ORDER BY not_after, issuer_id, serial_hex LIMIT $4"
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(from)
                .bind(to)
                .bind(&tenant)
                .bind(limit);
            for p in skip_profiles {
                q = q.bind(p);
            }
            let rows = q.fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push(cert_from_row!(r));
            }
            Ok(out)
        })
    }

    /// How many valid certificates (optionally of one tenant) expire in `[from, to)`, by
    /// profile.
    pub async fn count_expiring_by_profile(
        &self,
        from: i64,
        to: i64,
        tenant: Option<&str>,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let tenant = tenant.unwrap_or_default().to_string();
        dispatch!(&self.db, pool => {
            let rows = sqlx::query(
                "SELECT profile, COUNT(*) AS n FROM certificates WHERE status = 'valid' \
                 AND not_after >= $1 AND not_after < $2 AND ($3 = '' OR tenant = $3) \
                 GROUP BY profile",
            )
            .bind(from)
            .bind(to)
            .bind(&tenant)
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push((r.try_get("profile")?, r.try_get("n")?));
            }
            Ok(out)
        })
    }
}
