//! API clients: registration (secret shown once, stored as an argon2id hash), listing and
//! disabling, and the secret check behind `POST /oauth/token`.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;

use super::refusals::Refusal;
use super::{Ra, RaError};
use crate::client_ip::ClientIp;
use crate::model::{AuditEvent, CertStatus, ClientRecord};
use crate::policy::authz::{self, Operation, Principal, Role, Target};
use crate::x509::ParsedCert;

const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

fn refused(why: &str) -> RaError {
    RaError::Unauthenticated {
        code: "invalid_client_certificate",
        detail: why.to_string(),
    }
}

/// Whether a certificate may authenticate a TLS client: an extendedKeyUsage with clientAuth.
fn allows_client_auth(cert: &ParsedCert) -> bool {
    cert.extended_key_usage()
        .is_some_and(|eku| eku.contains(&const_oid::db::rfc5280::ID_KP_CLIENT_AUTH))
}

/// The fingerprint a client is bound to, from its certificate (PEM); the certificate must allow
/// clientAuth.
fn client_certificate_fingerprint(pem: &[u8]) -> Result<String, RaError> {
    let bad = |m: String| RaError::BadRequest {
        code: "invalid_client_certificate",
        detail: m,
    };
    let cert = ParsedCert::from_pem(pem).map_err(|e| bad(format!("client certificate: {e}")))?;
    if !allows_client_auth(&cert) {
        return Err(bad(
            "the client certificate has no extendedKeyUsage clientAuth".into(),
        ));
    }
    Ok(cert.sha256_hex())
}

/// The argon2id PHC string of `secret`.
pub(super) fn hash_secret(secret: &str) -> Result<String, RaError> {
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

/// How long a client's enabled/disabled state is believed before the store is asked again:
/// a client disabled on another replica loses access within this time (at once on this one).
pub const CLIENT_STATE_TTL: std::time::Duration = std::time::Duration::from_secs(2);

/// Clients' enabled state (and name) as last read, per client id. Only ids of validly signed
/// tokens get here, so it holds at most one entry per registered client.
#[derive(Default)]
pub(super) struct ClientStates(
    std::sync::Mutex<std::collections::HashMap<String, (Option<String>, tokio::time::Instant)>>,
);

impl ClientStates {
    /// `Some(name)` for an enabled client, `Some(None)` for a disabled or unknown one.
    fn get(&self, id: &str) -> Option<Option<String>> {
        let g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        g.get(id)
            .filter(|(_, at)| at.elapsed() < CLIENT_STATE_TTL)
            .map(|(name, _)| name.clone())
    }

    fn put(&self, id: &str, name: Option<String>) {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        g.insert(id.to_string(), (name, tokio::time::Instant::now()));
    }
}

impl Ra {
    /// Register a client: validates role and tenants, stores the argon2 hash, audits, and returns
    /// the record with the secret (shown once, never stored).
    /// With `certificate` (PEM), the client may also authenticate over mutual TLS with exactly
    /// that certificate (bound by its SHA-256 fingerprint; it must allow clientAuth).
    pub async fn create_client(
        &self,
        p: &Principal,
        name: &str,
        role: Role,
        tenants: &[String],
        certificate: Option<&[u8]>,
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
        let cert_sha256 = match certificate {
            Some(pem) => Some(client_certificate_fingerprint(pem)?),
            None => None,
        };
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
            cert_sha256: cert_sha256.clone(),
            disabled_at: None,
            created_at: self.now(),
        };
        let ev = AuditEvent::new(
            &p.actor(),
            "client.create",
            &client_id,
            serde_json::json!({"name": name, "role": role.as_str(), "tenants": norm, "cert_sha256": cert_sha256}),
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
        let changed = self.inner.store.disable_client(client_id, &ev).await?;
        // Its tokens stop working here at once, on other replicas within CLIENT_STATE_TTL.
        self.inner.clients.put(client_id, None);
        Ok(changed)
    }

    /// The name of `client_id` if it is a registered, enabled client, `None` otherwise (read
    /// at most every [`CLIENT_STATE_TTL`] per client).
    pub(super) async fn active_client_name(
        &self,
        client_id: &str,
    ) -> Result<Option<String>, RaError> {
        if let Some(name) = self.inner.clients.get(client_id) {
            return Ok(name);
        }
        let name = self
            .inner
            .store
            .get_client(client_id)
            .await?
            .filter(|c| c.disabled_at.is_none())
            .map(|c| c.name);
        self.inner.clients.put(client_id, name.clone());
        Ok(name)
    }

    /// The enabled client `client_id` if `secret` is its secret. Unknown ids cost the same time.
    /// Refused with 429 when `ip` or `client_id` asks too often or `ip` failed too often, and
    /// with 503 when every argon2 slot stays busy.
    pub(super) async fn check_client_secret(
        &self,
        ip: ClientIp,
        client_id: &str,
        secret: String,
    ) -> Result<Option<ClientRecord>, RaError> {
        if let Err(e) = self.inner.guard.token_request(ip, client_id) {
            self.audit_limited(
                ip,
                &format!("client:{}", cut(client_id)),
                &e,
                "/oauth/token",
            )
            .await;
            return Err(e);
        }
        let _slot = self.inner.guard.verification_slot().await?;
        let client = self
            .inner
            .store
            .get_client(client_id)
            .await?
            .filter(|c| c.disabled_at.is_none());
        let ok = verify_secret(client.as_ref().map(|c| c.secret_hash.as_str()), secret).await;
        Ok(client.filter(|_| ok))
    }

    /// The enabled client registered for this client certificate (DER, verified by the TLS
    /// layer against the client CA). `Ok(None)`: no client is bound to it. Refused when it does
    /// not allow clientAuth, or when one of our CAs issued and revoked it.
    pub(super) async fn client_for_certificate(
        &self,
        der: &[u8],
    ) -> Result<Option<ClientRecord>, RaError> {
        let cert =
            ParsedCert::from_der(der).map_err(|_| refused("unreadable client certificate"))?;
        let Some(client) = self
            .inner
            .store
            .get_client_by_cert(&cert.sha256_hex())
            .await?
            .filter(|c| c.disabled_at.is_none())
        else {
            return Ok(None);
        };
        if !allows_client_auth(&cert) {
            return Err(refused("the client certificate does not allow clientAuth"));
        }
        // Issued by one of our CAs: it must be one we recorded, and not revoked.
        let issuer = cert.issuer_der();
        for ca in self.inner.store.list_cas().await? {
            let ours = ParsedCert::from_der(&ca.cert_der)
                .map(|c| c.subject_der() == issuer)
                .unwrap_or(false);
            if !ours {
                continue;
            }
            match self
                .inner
                .store
                .get_cert(&ca.id, &cert.serial_hex())
                .await?
            {
                Some(rec) if rec.status == CertStatus::Valid => {}
                Some(_) => return Err(refused("the client certificate is revoked")),
                None => return Err(refused("the client certificate is unknown to its CA")),
            }
        }
        Ok(Some(client))
    }

    /// Record a failed authentication (`auth.failure`, aggregated per address: see
    /// [`super::refusals`]) and count it against `ip`'s failure budget.
    pub async fn audit_auth_failure(&self, ip: ClientIp, who: &str, code: &str, resource: &str) {
        self.inner.guard.failed(ip);
        let source = ip.to_string();
        self.audit_refusal(Refusal {
            actor: who,
            source: &source,
            action: "auth.failure",
            reason: code,
            target: resource,
            details: serde_json::json!({}),
        })
        .await;
    }

    /// Refuse an address that spent its failure budget (429) before any work is done; the
    /// refusal is counted in the audit log like any other.
    pub(super) async fn admit_source(&self, ip: ClientIp, resource: &str) -> Result<(), RaError> {
        if let Err(e) = self.inner.guard.not_failing(ip) {
            self.audit_limited(ip, "anonymous", &e, resource).await;
            return Err(e);
        }
        Ok(())
    }

    async fn audit_limited(&self, ip: ClientIp, who: &str, e: &RaError, resource: &str) {
        let source = ip.to_string();
        self.audit_refusal(Refusal {
            actor: who,
            source: &source,
            action: "auth.limited",
            reason: e.code(),
            target: resource,
            details: serde_json::json!({}),
        })
        .await;
    }
}

/// A client id as audit rows carry it (ids are ours and short; anything longer is cut).
pub(super) fn cut(id: &str) -> String {
    id.chars().take(64).collect()
}
