//! Persistence for the HTTP API: OAuth2 clients, the token signing key and CRL state.
//! Same rules as the rest of the store: written once, expanded per backend by `dispatch!`.

use sqlx::Row;

use super::{AuditEvent, Store, StoreError, audit, dispatch};

/// A registered API client. `secret_hash` is an argon2id PHC string, never the secret.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ClientRecord {
    pub client_id: String,
    pub name: String,
    pub role: String,
    pub tenants: Vec<String>,
    #[serde(skip)]
    pub secret_hash: String,
    pub disabled_at: Option<i64>,
    pub created_at: i64,
}

#[derive(Clone, Debug)]
pub struct SigningKeyRecord {
    pub kid: String,
    pub key_id: String,
    pub key_alg: String,
    pub public_point: Vec<u8>,
    pub created_at: i64,
}

#[derive(Clone, Debug)]
pub struct CrlRecord {
    pub issuer_id: String,
    pub crl_number: i64,
    pub this_update: i64,
    pub next_update: i64,
    pub der: Vec<u8>,
}

const CLIENT_COLUMNS: &str = "client_id, name, role, tenants, secret_hash, disabled_at, created_at";

macro_rules! client_from_row {
    ($row:expr) => {{
        let r = $row;
        let tenants: String = r.try_get("tenants")?;
        ClientRecord {
            client_id: r.try_get("client_id")?,
            name: r.try_get("name")?,
            role: r.try_get("role")?,
            tenants: serde_json::from_str(&tenants)
                .map_err(|e| StoreError::Invalid(format!("tenants column: {e}")))?,
            secret_hash: r.try_get("secret_hash")?,
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
        let tenants =
            serde_json::to_string(&c.tenants).map_err(|e| StoreError::Invalid(e.to_string()))?;
        dispatch!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            let _ = audit::append_in_tx!(tx, event);
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO api_clients ({CLIENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
            )))
            .bind(&c.client_id)
            .bind(&c.name)
            .bind(&c.role)
            .bind(&tenants)
            .bind(&c.secret_hash)
            .bind(c.disabled_at)
            .bind(c.created_at)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

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
    /// or was already disabled.
    pub async fn disable_client(
        &self,
        client_id: &str,
        at: i64,
        event: &AuditEvent,
    ) -> Result<bool, StoreError> {
        dispatch!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            let _ = audit::append_in_tx!(tx, event);
            let done = sqlx::query(
                "UPDATE api_clients SET disabled_at = $1 WHERE client_id = $2 AND disabled_at IS NULL",
            )
            .bind(at)
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

    /// The newest token signing key, if any.
    pub async fn current_signing_key(&self) -> Result<Option<SigningKeyRecord>, StoreError> {
        dispatch!(&self.db, pool => {
            let row = sqlx::query(
                "SELECT kid, key_id, key_alg, public_point, created_at FROM api_signing_keys \
                 ORDER BY created_at DESC, kid DESC LIMIT 1",
            )
            .fetch_optional(pool)
            .await?;
            match row {
                Some(r) => Ok(Some(SigningKeyRecord {
                    kid: r.try_get("kid")?,
                    key_id: r.try_get("key_id")?,
                    key_alg: r.try_get("key_alg")?,
                    public_point: r.try_get("public_point")?,
                    created_at: r.try_get("created_at")?,
                })),
                None => Ok(None),
            }
        })
    }

    pub async fn insert_signing_key(
        &self,
        k: &SigningKeyRecord,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        dispatch!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            let _ = audit::append_in_tx!(tx, event);
            sqlx::query(
                "INSERT INTO api_signing_keys (kid, key_id, key_alg, public_point, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&k.kid)
            .bind(&k.key_id)
            .bind(&k.key_alg)
            .bind(&k.public_point)
            .bind(k.created_at)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    pub async fn get_crl(&self, issuer_id: &str) -> Result<Option<CrlRecord>, StoreError> {
        dispatch!(&self.db, pool => {
            let row = sqlx::query(
                "SELECT issuer_id, crl_number, this_update, next_update, der FROM crl_state WHERE issuer_id = $1",
            )
            .bind(issuer_id)
            .fetch_optional(pool)
            .await?;
            match row {
                Some(r) => Ok(Some(CrlRecord {
                    issuer_id: r.try_get("issuer_id")?,
                    crl_number: r.try_get("crl_number")?,
                    this_update: r.try_get("this_update")?,
                    next_update: r.try_get("next_update")?,
                    der: r.try_get("der")?,
                })),
                None => Ok(None),
            }
        })
    }

    /// Store a new CRL unless a CRL with the same or a higher number is already stored (another
    /// process got there first); returns whether ours was kept.
    pub async fn put_crl(&self, c: &CrlRecord) -> Result<bool, StoreError> {
        dispatch!(&self.db, pool => {
            let done = sqlx::query(
                "INSERT INTO crl_state (issuer_id, crl_number, this_update, next_update, der) \
                 VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (issuer_id) DO UPDATE SET crl_number = excluded.crl_number, \
                 this_update = excluded.this_update, next_update = excluded.next_update, der = excluded.der \
                 WHERE crl_state.crl_number < excluded.crl_number",
            )
            .bind(&c.issuer_id)
            .bind(c.crl_number)
            .bind(c.this_update)
            .bind(c.next_update)
            .bind(&c.der)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() > 0)
        })
    }

    /// Revoked, unexpired certificates of one issuer: (serial_hex, revoked_at, reason name).
    pub async fn revoked_for_crl(
        &self,
        issuer_id: &str,
        now: i64,
    ) -> Result<Vec<(String, i64, Option<String>)>, StoreError> {
        dispatch!(&self.db, pool => {
            let rows = sqlx::query(
                "SELECT serial_hex, revoked_at, revocation_reason FROM certificates \
                 WHERE issuer_id = $1 AND status = 'revoked' AND not_after > $2 ORDER BY serial_hex",
            )
            .bind(issuer_id)
            .bind(now)
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                let at: Option<i64> = r.try_get("revoked_at")?;
                out.push((r.try_get("serial_hex")?, at.unwrap_or(0), r.try_get("revocation_reason")?));
            }
            Ok(out)
        })
    }

    /// Time of the newest revocation under an issuer (to spot a stale cached CRL).
    pub async fn last_revocation(&self, issuer_id: &str) -> Result<Option<i64>, StoreError> {
        dispatch!(&self.db, pool => {
            let row = sqlx::query(
                "SELECT MAX(revoked_at) AS last FROM certificates WHERE issuer_id = $1 AND status = 'revoked'",
            )
            .bind(issuer_id)
            .fetch_one(pool)
            .await?;
            Ok(row.try_get("last")?)
        })
    }
}
