//! API clients (OAuth2 client credentials) and the access-token signing key. Same rules as the
//! rest of the store: written once, expanded per backend by `dispatch!`, audited in the same
//! transaction.

use sqlx::Row;

use super::{Store, StoreError, audit, corrupt, dispatch, is_unique_violation, key_alg_of};
use crate::model::{AuditEvent, ClientRecord, SigningKeyRecord};
use crate::policy::authz::Role;

const CLIENT_COLUMNS: &str =
    "client_id, name, role, tenants, secret_hash, cert_sha256, disabled_at, created_at";

macro_rules! client_from_row {
    ($row:expr) => {{
        let r = $row;
        let tenants: String = r.try_get("tenants")?;
        let role: String = r.try_get("role")?;
        ClientRecord {
            client_id: r.try_get("client_id")?,
            name: r.try_get("name")?,
            role: role
                .parse::<Role>()
                .map_err(|_| corrupt("client role", &role))?,
            tenants: serde_json::from_str(&tenants).map_err(|_| corrupt("tenants", &tenants))?,
            secret_hash: r.try_get("secret_hash")?,
            cert_sha256: r.try_get("cert_sha256")?,
            disabled_at: r.try_get("disabled_at")?,
            created_at: r.try_get("created_at")?,
        }
    }};
}

impl Store {
    /// Register a client; the audit entry commits with it.
    pub async fn insert_client(
        &self,
        c: &ClientRecord,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let tenants = serde_json::Value::from(c.tenants.clone()).to_string();
        let ts = self.now();
        dispatch!(&self.db, pool => {
            let _turn = self.turns.take().await?;
            let mut tx = pool.begin().await?;
            let _ = audit::append_in_tx!(tx, event, ts);
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO api_clients ({CLIENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            )))
            .bind(&c.client_id)
            .bind(&c.name)
            .bind(c.role.as_str())
            .bind(&tenants)
            .bind(&c.secret_hash)
            .bind(&c.cert_sha256)
            .bind(c.disabled_at)
            .bind(c.created_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Taken(format!(
                        "client {} or its certificate is registered already",
                        c.client_id
                    ))
                } else {
                    StoreError::Db(e)
                }
            })?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// A client by id.
    pub async fn get_client(&self, client_id: &str) -> Result<Option<ClientRecord>, StoreError> {
        dispatch!(&self.db, pool => {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {CLIENT_COLUMNS} FROM api_clients WHERE client_id = $1"
            )))
            .bind(client_id)
            .fetch_optional(pool)
            .await?;
            match row {
                Some(r) => Ok(Some(client_from_row!(r))),
                None => Ok(None),
            }
        })
    }

    /// The client registered for the client certificate with this SHA-256 (hex).
    pub async fn get_client_by_cert(
        &self,
        cert_sha256: &str,
    ) -> Result<Option<ClientRecord>, StoreError> {
        dispatch!(&self.db, pool => {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {CLIENT_COLUMNS} FROM api_clients WHERE cert_sha256 = $1"
            )))
            .bind(cert_sha256)
            .fetch_optional(pool)
            .await?;
            match row {
                Some(r) => Ok(Some(client_from_row!(r))),
                None => Ok(None),
            }
        })
    }

    /// Every client, oldest first.
    pub async fn list_clients(&self) -> Result<Vec<ClientRecord>, StoreError> {
        dispatch!(&self.db, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {CLIENT_COLUMNS} FROM api_clients ORDER BY created_at, client_id"
            )))
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push(client_from_row!(r));
            }
            Ok(out)
        })
    }

    /// Disable a client (kept for the audit trail, never deleted). False when it does not exist
    /// or was already disabled; then no audit entry is written either.
    pub async fn disable_client(
        &self,
        client_id: &str,
        event: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let ts = self.now();
        dispatch!(&self.db, pool => {
            let _turn = self.turns.take().await?;
            let mut tx = pool.begin().await?;
            let _ = audit::append_in_tx!(tx, event, ts);
            let done = sqlx::query(
                "UPDATE api_clients SET disabled_at = $1 WHERE client_id = $2 AND disabled_at IS NULL",
            )
            .bind(ts)
            .bind(client_id)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                // Nothing changed: do not leave an audit entry claiming it did.
                return Ok(false);
            }
            tx.commit().await?;
            Ok(true)
        })
    }

    /// The newest access-token signing key.
    pub async fn current_signing_key(&self) -> Result<Option<SigningKeyRecord>, StoreError> {
        Ok(self.signing_keys().await?.into_iter().next())
    }

    /// Every access-token signing key, newest first: tokens signed by any of them verify.
    pub async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        dispatch!(&self.db, pool => {
            let rows = sqlx::query(
                "SELECT kid, key_id, key_alg, public_point, created_at FROM api_signing_keys \
                 ORDER BY created_at DESC, kid DESC",
            )
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                let alg: String = r.try_get("key_alg")?;
                out.push(SigningKeyRecord {
                    kid: r.try_get("kid")?,
                    key_id: r.try_get("key_id")?,
                    key_alg: key_alg_of(&alg)?,
                    public_point: r.try_get("public_point")?,
                    created_at: r.try_get("created_at")?,
                });
            }
            Ok(out)
        })
    }

    /// Record the first access-token signing key with its audit entry, unless another process
    /// recorded one meanwhile (replicas starting at once): then nothing is written and `false`
    /// comes back. The audit head's lock, taken first, orders the racers; the later one's
    /// insert then sees the earlier one's key.
    pub async fn insert_first_signing_key(
        &self,
        k: &SigningKeyRecord,
        event: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let ts = self.now();
        dispatch!(&self.db, pool => {
            let _turn = self.turns.take().await?;
            let mut tx = pool.begin().await?;
            let _ = audit::append_in_tx!(tx, event, ts);
            let done = sqlx::query(
                "INSERT INTO api_signing_keys (kid, key_id, key_alg, public_point, created_at) \
                 SELECT $1, $2, $3, $4, $5 WHERE NOT EXISTS (SELECT 1 FROM api_signing_keys)",
            )
            .bind(&k.kid)
            .bind(&k.key_id)
            .bind(k.key_alg.name())
            .bind(&k.public_point)
            .bind(k.created_at)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                return Ok(false);
            }
            tx.commit().await?;
            Ok(true)
        })
    }
}
