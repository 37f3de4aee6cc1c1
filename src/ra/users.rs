//! People of the operator console: registration (a one-time password shown once, stored as an
//! argon2id hash), sign-in with bounded attempts, sessions with idle and absolute timeouts, and
//! what the console's pages read (the dashboard, a certificate's audit trail, a recorded audit
//! verification). A signed-in person acts as [`Principal::user`]: the same roles and tenants as
//! an API client, decided by the same policy.

use std::sync::Arc;

use base64::Engine;
use sha2::{Digest, Sha256};

use super::clients::{cut, hash_secret, verify_secret};
use super::refusals::Refusal;
use super::{Health, Ra, RaError};
use crate::client_ip::ClientIp;
use crate::model::{
    AuditEntry, AuditEvent, AuditFilter, AuditReport, CaRecord, CertRecord, UserRecord,
};
use crate::policy::authz::{self, Operation, Principal, Role, Target, Via};
use crate::store::SessionCutoffs;

const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Roles a person may hold (the API-only roles `oem` and `cps` are machines).
pub const USER_ROLES: [Role; 4] = [Role::Admin, Role::Auditor, Role::Cpo, Role::Mo];

/// A session just opened: the cookie value (shown to the browser once, stored only hashed) and
/// the CSRF token its forms carry.
#[derive(Clone)]
pub struct SignedIn {
    /// The cookie value.
    pub token: String,
    /// The CSRF token of the session.
    pub csrf: String,
    /// Who signed in.
    pub principal: Principal,
}

impl std::fmt::Debug for SignedIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token or the CSRF value.
        f.debug_struct("SignedIn")
            .field("principal", &self.principal)
            .finish()
    }
}

/// A valid console session, as a request presents it.
#[derive(Clone)]
pub struct ConsoleSession {
    /// Who is signed in.
    pub principal: Principal,
    /// The token every state-changing form must carry.
    pub csrf: String,
    id_hash: String,
}

impl std::fmt::Debug for ConsoleSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleSession")
            .field("principal", &self.principal)
            .finish()
    }
}

/// What the console's dashboard shows, scoped to what the principal may see.
#[derive(Clone, Debug)]
pub struct Dashboard {
    /// Certificates by (profile, status), status one of valid, revoked, expired.
    pub counts: Vec<(String, String, i64)>,
    /// Valid certificates expiring within 30 days, OCSP signers aside.
    pub expiring_30: i64,
    /// Valid certificates expiring within 90 days, OCSP signers aside.
    pub expiring_90: i64,
    /// OCSP signers expiring within 30 days (renewed by the service itself).
    pub ocsp_signers_expiring_30: i64,
    /// The next valid certificates to expire within 90 days (at most 10, OCSP signers aside),
    /// soonest first.
    pub soonest: Vec<CertRecord>,
    /// CAs whose certificate expires within 90 days, soonest first.
    pub cas_expiring: Vec<CaRecord>,
    /// Number of CAs.
    pub ca_count: usize,
    /// Token and database.
    pub health: Health,
    /// The newest recorded audit verification (`audit.verified`), when the principal may read
    /// the audit log.
    pub last_verification: Option<AuditEntry>,
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// A user name as typed: 1–64 characters of letters, digits and `.` `_` `-` `@`.
fn check_name(name: &str) -> Result<&str, RaError> {
    let n = name.trim();
    let ok = !n.is_empty()
        && n.len() <= 64
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(n)
    } else {
        Err(RaError::BadRequest {
            code: "invalid_user_name",
            detail: "a user name is 1–64 letters, digits, '.', '_', '-' or '@'".into(),
        })
    }
}

fn new_password() -> String {
    B64URL.encode(rand::random::<[u8; 18]>())
}

impl Ra {
    fn session_cutoffs(&self) -> SessionCutoffs {
        let now = self.now();
        SessionCutoffs {
            idle_cutoff: now - self.inner.ui.idle,
            absolute_cutoff: now - self.inner.ui.max,
        }
    }

    /// Register a console user (the operator only) and return it with its one-time password
    /// (shown once, never stored).
    pub async fn create_user(
        &self,
        p: &Principal,
        name: &str,
        role: Role,
        tenants: &[String],
    ) -> Result<(UserRecord, String), RaError> {
        self.authorize(p, Operation::ManageUsers, Target::Any, "users")
            .await?;
        let name = check_name(name)?;
        if !USER_ROLES.contains(&role) {
            return Err(RaError::BadRequest {
                code: "invalid_role",
                detail: format!("a console user is admin, auditor, cpo or mo, not {role}"),
            });
        }
        let norm = authz::normalize_tenants(role, tenants)?;
        let password = new_password();
        let pw = password.clone();
        let password_hash = tokio::task::spawn_blocking(move || hash_secret(&pw))
            .await
            .map_err(|e| RaError::Internal(e.to_string()))??;
        let rec = UserRecord {
            name: name.to_string(),
            role,
            tenants: norm.clone(),
            password_hash,
            disabled_at: None,
            created_at: self.now(),
        };
        let ev = AuditEvent::new(
            &p.actor(),
            "user.create",
            name,
            serde_json::json!({"role": role.as_str(), "tenants": norm}),
        );
        self.inner.store.insert_user(&rec, &ev).await?;
        Ok((rec, password))
    }

    /// Every console user (never their password hashes).
    pub async fn list_users(&self, p: &Principal) -> Result<Vec<UserRecord>, RaError> {
        self.authorize(p, Operation::ManageUsers, Target::Any, "users")
            .await?;
        Ok(self.inner.store.list_users().await?)
    }

    /// Disable a user and end its sessions. `Ok(false)` when it was disabled already.
    pub async fn disable_user(&self, p: &Principal, name: &str) -> Result<bool, RaError> {
        self.authorize(p, Operation::ManageUsers, Target::Any, "users")
            .await?;
        let name = check_name(name)?;
        if self.inner.store.get_user(name).await?.is_none() {
            return Err(RaError::NotFound(format!("no user {name}")));
        }
        let ev = AuditEvent::new(&p.actor(), "user.disable", name, serde_json::json!({}));
        Ok(self.inner.store.disable_user(name, &ev).await?)
    }

    /// Give a user a new one-time password (ending its sessions) and return it.
    pub async fn reset_user_password(&self, p: &Principal, name: &str) -> Result<String, RaError> {
        self.authorize(p, Operation::ManageUsers, Target::Any, "users")
            .await?;
        let name = check_name(name)?;
        let password = new_password();
        let pw = password.clone();
        let hash = tokio::task::spawn_blocking(move || hash_secret(&pw))
            .await
            .map_err(|e| RaError::Internal(e.to_string()))??;
        let ev = AuditEvent::new(
            &p.actor(),
            "user.password_reset",
            name,
            serde_json::json!({}),
        );
        if !self.inner.store.set_user_password(name, &hash, &ev).await? {
            return Err(RaError::NotFound(format!("no user {name}")));
        }
        Ok(password)
    }

    /// Sign a person in. Refused with 429 before any work when the address or the user name
    /// spent its failure budget, 503 when every argon2 slot stays busy; a wrong name or
    /// password costs the same time, is audited (`ui.signin.failure`, aggregated per address)
    /// and counted against both budgets. Success opens a session, audited (`ui.signin`) in the
    /// same transaction.
    pub async fn sign_in(
        &self,
        ip: ClientIp,
        name: &str,
        password: &str,
    ) -> Result<SignedIn, RaError> {
        let typed: String = cut(name.trim())
            .chars()
            .filter(|c| !c.is_control())
            .collect();
        self.admit_source(ip, "/ui/login").await?;
        if let Err(e) = self.inner.guard.signin_allowed(&typed) {
            let source = ip.to_string();
            self.audit_refusal(Refusal {
                actor: &format!("ui:{typed}"),
                source: &source,
                action: "ui.signin.limited",
                reason: e.code(),
                target: "/ui/login",
                details: serde_json::json!({}),
            })
            .await;
            return Err(e);
        }
        let _slot = self.inner.guard.verification_slot().await?;
        let user = match check_name(&typed) {
            Ok(n) => self
                .inner
                .store
                .get_user(n)
                .await?
                .filter(|u| u.disabled_at.is_none()),
            Err(_) => None,
        };
        let ok = verify_secret(
            user.as_ref().map(|u| u.password_hash.as_str()),
            password.to_string(),
        )
        .await;
        let Some(user) = user.filter(|_| ok) else {
            self.inner.guard.failed(ip);
            self.inner.guard.signin_failed(&typed);
            let source = ip.to_string();
            self.audit_refusal(Refusal {
                actor: &format!("ui:{typed}"),
                source: &source,
                action: "ui.signin.failure",
                reason: "invalid_credentials",
                target: "/ui/login",
                details: serde_json::json!({}),
            })
            .await;
            return Err(RaError::Unauthenticated {
                code: "invalid_credentials",
                detail: "unknown user or wrong password".into(),
            });
        };
        let token = B64URL.encode(rand::random::<[u8; 32]>());
        let csrf = B64URL.encode(rand::random::<[u8; 32]>());
        let ev = AuditEvent::new(
            &format!("ui:{}", user.name),
            "ui.signin",
            &user.name,
            serde_json::json!({"source": ip.to_string()}),
        );
        self.inner
            .store
            .insert_session(
                &sha256_hex(&token),
                &user.name,
                &csrf,
                self.session_cutoffs(),
                &ev,
            )
            .await?;
        Ok(SignedIn {
            token,
            csrf,
            principal: Principal::user(&user.name, user.role, user.tenants),
        })
    }

    /// The session a cookie value names, if it is still valid: not idle for longer than the
    /// idle timeout, not older than the absolute one, its user enabled. An expired session is
    /// deleted. Activity is noted at most every few seconds, so page views cost no write.
    pub async fn console_session(&self, token: &str) -> Result<Option<ConsoleSession>, RaError> {
        if token.is_empty() || token.len() > 128 {
            return Ok(None);
        }
        let id_hash = sha256_hex(token);
        let Some(s) = self.inner.store.get_session(&id_hash).await? else {
            return Ok(None);
        };
        let now = self.now();
        let cut = self.session_cutoffs();
        if s.last_seen < cut.idle_cutoff
            || s.created_at < cut.absolute_cutoff
            || s.user.disabled_at.is_some()
        {
            let ev = AuditEvent::new(
                &format!("ui:{}", s.user.name),
                "ui.session.expired",
                &s.user.name,
                serde_json::json!({}),
            );
            self.inner.store.delete_session(&id_hash, Some(&ev)).await?;
            return Ok(None);
        }
        let touch_every = (self.inner.ui.idle / 4).min(10);
        if now - s.last_seen >= touch_every {
            self.inner.store.touch_session(&id_hash).await?;
        }
        Ok(Some(ConsoleSession {
            principal: Principal::user(&s.user.name, s.user.role, s.user.tenants),
            csrf: s.csrf,
            id_hash,
        }))
    }

    /// End a session (`ui.signout`, audited with it).
    pub async fn sign_out(&self, s: &ConsoleSession) -> Result<(), RaError> {
        let ev = AuditEvent::new(
            &s.principal.actor(),
            "ui.signout",
            &s.principal.id,
            serde_json::json!({}),
        );
        self.inner
            .store
            .delete_session(&s.id_hash, Some(&ev))
            .await?;
        Ok(())
    }

    /// The key that signs the console's sign-in form tokens: one per database, made on first
    /// use, so every replica accepts a form another served.
    pub async fn console_form_key(&self) -> Result<Arc<Vec<u8>>, RaError> {
        let key = self
            .inner
            .form_key
            .get_or_try_init(|| async {
                let candidate = hex::encode(rand::random::<[u8; 32]>());
                let hex_key = self.inner.store.ui_secret(&candidate).await?;
                let key = hex::decode(hex_key.trim()).map_err(|_| {
                    RaError::Internal("the console secret in the database is not hex".into())
                })?;
                Ok::<_, RaError>(Arc::new(key))
            })
            .await?;
        Ok(key.clone())
    }

    /// The tenants a principal's dashboard covers: `None` for every tenant.
    fn dashboard_tenants(p: &Principal) -> Option<Vec<String>> {
        if p.via == Via::Operator || p.role.sees_all_tenants() {
            None
        } else {
            Some(p.tenants.clone())
        }
    }

    /// What the dashboard shows, for what `p` may see: a CPO or MO sees its tenants' counts only.
    pub async fn dashboard(&self, p: &Principal) -> Result<Dashboard, RaError> {
        self.authorize(p, Operation::ReadCertificates, Target::Any, "dashboard")
            .await?;
        let now = self.now();
        let day = 86_400;
        let scopes: Vec<Option<String>> = match Self::dashboard_tenants(p) {
            None => vec![None],
            Some(ts) => ts.into_iter().map(Some).collect(),
        };
        let mut counts: std::collections::BTreeMap<(String, String), i64> = Default::default();
        let (mut expiring_30, mut expiring_90, mut ocsp_signers_expiring_30) = (0, 0, 0);
        let mut soonest: Vec<CertRecord> = Vec::new();
        // OCSP signers renew themselves: counted apart from what people act on.
        let signers = self.ocsp_signer_profiles();
        for t in &scopes {
            for (profile, status, n) in self.inner.store.cert_counts(t.as_deref()).await? {
                *counts.entry((profile, status)).or_default() += n;
            }
            for (days, total) in [(30, &mut expiring_30), (90, &mut expiring_90)] {
                let by_profile = self
                    .inner
                    .store
                    .count_expiring_by_profile(now, now + days * day, t.as_deref())
                    .await?;
                for (profile, n) in by_profile {
                    if !signers.contains(&profile) {
                        *total += n;
                    } else if days == 30 {
                        ocsp_signers_expiring_30 += n;
                    }
                }
            }
            soonest.extend(
                self.inner
                    .store
                    .expiring_soonest(now, now + 90 * day, t.as_deref(), &signers, 10)
                    .await?,
            );
        }
        soonest.sort_by_key(|c| c.not_after);
        soonest.truncate(10);
        let cas = self.inner.store.list_cas().await?;
        let ca_count = cas.len();
        let mut cas_expiring: Vec<CaRecord> = cas
            .into_iter()
            .filter(|c| c.not_after < now + 90 * day)
            .collect();
        cas_expiring.sort_by_key(|c| c.not_after);
        let last_verification = if authz::decide(p, Operation::ReadAudit, Target::Any).is_ok() {
            self.inner
                .store
                .audit_entries(&AuditFilter {
                    action_prefix: Some("audit.verified".into()),
                    newest_first: true,
                    limit: Some(1),
                    ..Default::default()
                })
                .await?
                .into_iter()
                .next()
        } else {
            None
        };
        Ok(Dashboard {
            counts: counts
                .into_iter()
                .map(|((profile, status), n)| (profile, status, n))
                .collect(),
            expiring_30,
            expiring_90,
            ocsp_signers_expiring_30,
            soonest,
            cas_expiring,
            ca_count,
            health: self.health().await,
            last_verification,
        })
    }

    /// The profiles of delegated OCSP signers: renewed by the service itself, so listed apart
    /// from the certificates people act on (dashboard, `report expiring`).
    pub fn ocsp_signer_profiles(&self) -> Vec<String> {
        self.inner
            .profiles
            .iter()
            .filter(|p| p.kind == crate::policy::profile::Kind::OcspSigner)
            .map(|p| p.name.clone())
            .collect()
    }

    /// The audit entries about one certificate, newest first, for whoever may see it.
    pub async fn certificate_audit(
        &self,
        p: &Principal,
        issuer_id: &str,
        serial: &str,
    ) -> Result<Vec<AuditEntry>, RaError> {
        let c = self.certificate(p, issuer_id, serial).await?;
        Ok(self
            .inner
            .store
            .audit_entries(&AuditFilter {
                target: Some(format!("{}/{}", c.issuer_id, c.serial_hex)),
                newest_first: true,
                limit: Some(100),
                ..Default::default()
            })
            .await?)
    }

    /// Verify the whole audit chain and record the result (`audit.verified`), so the dashboard
    /// can say when the chain was last checked and by whom.
    pub async fn verify_audit_recorded(&self, p: &Principal) -> Result<AuditReport, RaError> {
        let report = self.verify_audit(p).await?;
        let ev = AuditEvent::new(
            &p.actor(),
            "audit.verified",
            "audit",
            serde_json::json!({
                "entries": report.entries,
                "ok": report.broken_at.is_none(),
                "broken_at": report.broken_at.as_ref().map(|(seq, _)| *seq),
                "why": report.broken_at.as_ref().map(|(_, why)| why.clone()),
            }),
        );
        self.inner.store.audit(&ev).await?;
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_are_plain() {
        assert!(check_name("alice").is_ok());
        assert!(check_name("ops.team-1@example").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("<script>").is_err());
        assert!(check_name(&"a".repeat(65)).is_err());
        assert!(check_name("a b").is_err());
    }

    #[test]
    fn passwords_are_long_and_fresh() {
        let a = new_password();
        assert_eq!(a.len(), 24);
        assert_ne!(a, new_password());
    }
}
