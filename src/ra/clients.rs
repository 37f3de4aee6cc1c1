//! API clients: registration (secret shown once, stored as an argon2id hash), listing and
//! disabling, and the secret check behind `POST /oauth/token`.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;

use super::{Ra, RaError};
use crate::model::{AuditEvent, ClientRecord};
use crate::policy::authz::{self, Operation, Principal, Role, Target};

const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The argon2id PHC string of `secret`.
fn hash_secret(secret: &str) -> Result<String, RaError> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    argon2::Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| RaError::Internal(format!("argon2: {e}")))
}

/// A hash to verify unknown clients against, so that response time does not reveal which ids
/// exist.
static DUMMY_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| hash_secret("dummy-secret-for-timing").unwrap_or_default());

/// Whether `secret` matches the PHC string `hash`. Argon2 is deliberately slow: it runs on the
/// blocking pool.
pub(super) async fn verify_secret(hash: Option<&str>, secret: String) -> bool {
    let known = hash.is_some();
    let hash = hash
        .map(str::to_string)
        .unwrap_or_else(|| DUMMY_HASH.clone());
    let ok = tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash)
            .map(|h| {
                argon2::Argon2::default()
                    .verify_password(secret.as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false);
    known && ok
}

impl Ra {
    /// Register a client: validates role and tenants, stores the argon2 hash, audits, and returns
    /// the record with the secret (shown once, never stored).
    pub async fn create_client(
        &self,
        p: &Principal,
        name: &str,
        role: Role,
        tenants: &[String],
    ) -> Result<(ClientRecord, String), RaError> {
        self.authorize(p, Operation::ManageClients, Target::Any, "clients")
            .await?;
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
            return Err(RaError::bad(
                "invalid_client_name",
                "name must be 1–200 printable characters",
            ));
        }
        let norm = authz::normalize_tenants(role, tenants)?;
        let client_id = format!("pnc_{}", hex::encode(rand::random::<[u8; 10]>()));
        let secret = B64URL.encode(rand::random::<[u8; 32]>());
        let s2 = secret.clone();
        let secret_hash = tokio::task::spawn_blocking(move || hash_secret(&s2))
            .await
            .map_err(|e| RaError::Internal(e.to_string()))??;
        let rec = ClientRecord {
            client_id: client_id.clone(),
            name: name.to_string(),
            role,
            tenants: norm.clone(),
            secret_hash,
            disabled_at: None,
            created_at: self.now(),
        };
        let ev = AuditEvent::new(
            &p.actor(),
            "client.create",
            &client_id,
            serde_json::json!({"name": name, "role": role.as_str(), "tenants": norm}),
        );
        self.inner.store.insert_client(&rec, &ev).await?;
        Ok((rec, secret))
    }

    /// Every client (never their secrets).
    pub async fn list_clients(&self, p: &Principal) -> Result<Vec<ClientRecord>, RaError> {
        self.authorize(p, Operation::ReadClients, Target::Any, "clients")
            .await?;
        Ok(self.inner.store.list_clients().await?)
    }

    /// Disable a client: no new tokens. `Ok(false)` when it was disabled already.
    pub async fn disable_client(&self, p: &Principal, client_id: &str) -> Result<bool, RaError> {
        self.authorize(p, Operation::ManageClients, Target::Any, client_id)
            .await?;
        if self.inner.store.get_client(client_id).await?.is_none() {
            return Err(RaError::NotFound(format!(
                "no client {}",
                client_id.chars().take(64).collect::<String>()
            )));
        }
        let ev = AuditEvent::new(
            &p.actor(),
            "client.disable",
            client_id,
            serde_json::json!({}),
        );
        Ok(self.inner.store.disable_client(client_id, &ev).await?)
    }

    /// The enabled client `client_id` if `secret` is its secret. Unknown ids cost the same time.
    pub(super) async fn check_client_secret(
        &self,
        client_id: &str,
        secret: String,
    ) -> Result<Option<ClientRecord>, RaError> {
        let client = self
            .inner
            .store
            .get_client(client_id)
            .await?
            .filter(|c| c.disabled_at.is_none());
        let ok = verify_secret(client.as_ref().map(|c| c.secret_hash.as_str()), secret).await;
        Ok(client.filter(|_| ok))
    }

    /// An enabled client by id (mutual TLS).
    pub(super) async fn enabled_client(
        &self,
        client_id: &str,
    ) -> Result<Option<ClientRecord>, RaError> {
        Ok(self
            .inner
            .store
            .get_client(client_id)
            .await?
            .filter(|c| c.disabled_at.is_none()))
    }

    /// Record a failed authentication (`auth.failure`): who (as far as known), why, and what
    /// was asked for (cut to a bounded length).
    pub async fn audit_auth_failure(&self, who: &str, code: &str, resource: &str) {
        let ev = AuditEvent::new(
            who,
            "auth.failure",
            resource,
            serde_json::json!({ "reason": code }),
        );
        if let Err(e) = self.inner.store.audit(&ev).await {
            tracing::error!(error = %e, "could not audit an authentication failure");
        }
    }
}
