//! The registration authority (Boulder's RA): the one thing front ends (the HTTP API, the OCPP
//! lookups, the CLI, contract provisioning over OPCP and OCPP) call for issuing, revoking,
//! enrolling, provisioning and looking up. Every operation first asks `policy::authz` whether the
//! principal may do it (and audits a refusal), applies subject policy, and only then makes one
//! call into the CA. Reads go through typed store functions.
//!
//! Front ends never hold the CA's token or the store: an [`Ra`] is all they get.

pub mod auth;
pub mod authorize;
mod clients;
pub mod compromise;
pub mod contracts;
pub mod defaults;
mod external;
mod guard;
pub mod ocpp;
pub mod provisioning;
mod reenroll;
pub mod refusals;
pub mod users;
mod validate;
pub mod webhooks;

use std::sync::Arc;

use crate::ca::bootstrap::Step;
use crate::ca::doctor::KeyReport;
use crate::ca::{Ca, CaError};
use crate::clock::SharedClock;
use crate::config::HierarchyConfig;
use crate::config::limits::LimitSettings;
use crate::error::ErrorKind;
use crate::hsm::ExportableKey;
use crate::model::{
    AuditEntry, AuditEvent, AuditFilter, AuditReport, CaRecord, CertFilter, CertRecord, CrlRecord,
    IdempotencyKey, Issued, Page, RevocationReason, RevokeOutcome,
};
use crate::policy::PolicyError;
use crate::policy::authz::{self, Family, Identifier, Operation, Principal, Target, Via};
use crate::policy::profile::{Profiles, Standard};
use crate::policy::subject;
use crate::store::{Store, StoreError};
use crate::x509::csr::{self, CsrError};
use crate::x509::{ParsedCert, normalize_serial_hex};
use refusals::Refusal;

/// Errors of the RA: everything a front end has to answer.
#[derive(Debug, thiserror::Error)]
pub enum RaError {
    /// No or bad credentials.
    #[error("{detail}")]
    Unauthenticated {
        /// Machine-readable reason (`missing_credentials`, `token_expired`, …).
        code: &'static str,
        /// What is wrong (never the credential itself).
        detail: String,
    },
    /// The request conflicts with an earlier one (an idempotency key reused for another body).
    #[error("{detail}")]
    Conflict {
        /// Machine-readable reason.
        code: &'static str,
        /// What conflicts.
        detail: String,
    },
    /// A request the RA refuses before policy is asked (a malformed query or body).
    #[error("{detail}")]
    BadRequest {
        /// Machine-readable reason.
        code: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// No such object.
    #[error("{0}")]
    NotFound(String),
    /// Policy refused (subject, tenant, role).
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The CA refused or failed.
    #[error(transparent)]
    Ca(#[from] CaError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// This process opened no CA (a database-only command asked for a signing operation).
    #[error("{0}")]
    NoCa(String),
    /// Too many requests from this address or client; retry after `retry_after` seconds.
    #[error("{detail}")]
    RateLimited {
        /// Machine-readable reason (`rate_limited`, `too_many_failures`).
        code: &'static str,
        /// What was limited.
        detail: String,
        /// Seconds to wait (`Retry-After`).
        retry_after: u64,
    },
    /// No capacity right now for anyone (all verification slots busy); retry shortly.
    #[error("{detail}")]
    Busy {
        /// Machine-readable reason (`busy`).
        code: &'static str,
        /// What is busy.
        detail: String,
        /// Seconds to wait (`Retry-After`).
        retry_after: u64,
    },
    /// A contract provisioning request refused, with the FAILED answer for the EV where the
    /// request could be read.
    #[error(transparent)]
    Provisioning(Box<provisioning::ProvisionFailure>),
    /// Anything else on our side.
    #[error("internal: {0}")]
    Internal(String),
}

impl From<CsrError> for RaError {
    fn from(e: CsrError) -> RaError {
        RaError::Ca(CaError::Csr(e))
    }
}

impl RaError {
    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            RaError::Unauthenticated { code, .. }
            | RaError::Conflict { code, .. }
            | RaError::BadRequest { code, .. }
            | RaError::RateLimited { code, .. }
            | RaError::Busy { code, .. } => code,
            RaError::NotFound(_) => "not_found",
            RaError::Policy(e) => e.code(),
            RaError::Ca(e) => e.code(),
            RaError::Store(e) => e.code(),
            RaError::Provisioning(f) => f.code,
            RaError::NoCa(_) | RaError::Internal(_) => "internal",
        }
    }

    /// How it is answered.
    pub fn kind(&self) -> ErrorKind {
        match self {
            RaError::Unauthenticated { .. } => ErrorKind::Unauthenticated,
            RaError::BadRequest { .. } => ErrorKind::BadRequest,
            RaError::Conflict { .. } => ErrorKind::Conflict,
            RaError::NotFound(_) => ErrorKind::NotFound,
            RaError::Policy(e) => e.kind(),
            RaError::Ca(e) => e.kind(),
            RaError::Store(e) => e.kind(),
            RaError::RateLimited { .. } => ErrorKind::TooManyRequests,
            RaError::Busy { .. } => ErrorKind::Unavailable,
            RaError::Provisioning(f) => f.kind,
            RaError::NoCa(_) | RaError::Internal(_) => ErrorKind::Internal,
        }
    }

    /// Seconds after which a retry may succeed (`Retry-After`), for limits and busy answers.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            RaError::RateLimited { retry_after, .. } | RaError::Busy { retry_after, .. } => {
                Some(*retry_after)
            }
            _ => None,
        }
    }

    fn bad(code: &'static str, detail: impl Into<String>) -> RaError {
        RaError::BadRequest {
            code,
            detail: detail.into(),
        }
    }
}

/// An idempotency key as sent (`Idempotency-Key`): 1–255 visible ASCII characters, bound to
/// the caller and to a digest of the profile and the request body.
pub(super) fn idempotency(
    p: &Principal,
    key: &str,
    profile: &str,
    body: &[u8],
) -> Result<IdempotencyKey, RaError> {
    let ok = !key.is_empty() && key.len() <= 255 && key.bytes().all(|b| b.is_ascii_graphic());
    if !ok {
        return Err(RaError::bad(
            "invalid_idempotency_key",
            "Idempotency-Key must be 1–255 visible ASCII characters",
        ));
    }
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(profile.as_bytes());
    h.update(b"\n");
    h.update(body);
    Ok(IdempotencyKey {
        actor: p.key(),
        key: key.to_string(),
        request_sha256: hex::encode(h.finalize()),
    })
}

/// An `Idempotency-Key` as a front end received it, with what it is bound to besides the caller.
#[derive(Debug, Clone)]
pub struct KeyedRequest {
    /// The key as sent.
    pub key: String,
    /// The route or operation (a key reused on another route is another request).
    pub scope: &'static str,
    /// The request body as received.
    pub body: Vec<u8>,
}

/// What a revocation did, with the record as it is now.
#[derive(Clone, Debug)]
pub struct Revocation {
    /// Revoked now, or already before.
    pub outcome: RevokeOutcome,
    /// The certificate after the revocation.
    pub record: CertRecord,
}

/// Whether the dependencies can do their work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Health {
    /// The token signs (a probe signature with the access-token key).
    pub hsm: bool,
    /// The database accepts a write.
    pub store: bool,
}

struct Inner {
    ca: Option<Ca>,
    store: Store,
    profiles: Profiles,
    clock: SharedClock,
    guard: guard::Guard,
    refusals: refusals::Refusals,
    clients: clients::ClientStates,
    health: tokio::sync::Mutex<Option<(tokio::time::Instant, Health)>>,
    /// Largest provisioning answers, base64 characters: (-2, -20).
    response_caps: (usize, usize),
    /// The validation engine's trust store, built once per [`validate`] TTL.
    trust: std::sync::Mutex<Option<(std::time::Instant, Arc<crate::validation::TrustStore>)>>,
    /// Console session timeouts.
    ui: UiTimeouts,
    /// The console's form-signing key, read from the store once (`users::console_form_key`).
    form_key: tokio::sync::OnceCell<Arc<Vec<u8>>>,
    /// Seconds a superseded certificate stays valid (`PNC_SUPERSEDE_GRACE`).
    supersede_grace: i64,
    /// This process's name in job leases (`store::Store::job_lease`).
    holder: String,
    /// Other PKIs' revocation through the guarded fetcher.
    external: external::External,
    /// Authorize a contract whose revocation cannot be learnt (`PNC_AUTHORIZE_UNREACHABLE`).
    authorize_unreachable_accept: bool,
    /// Recent verdicts about other PKIs' contract chains.
    verdicts: authorize::VerdictCache,
    /// Waits before each retry of a failed webhook delivery.
    webhook_retry: Vec<std::time::Duration>,
    /// How long finished webhook deliveries are kept, seconds.
    webhook_retention: i64,
    /// Wakes the webhook deliverer when this process wrote an event.
    webhook_wake: tokio::sync::Notify,
}

/// Console session timeouts, seconds.
#[derive(Clone, Copy, Debug)]
struct UiTimeouts {
    idle: i64,
    max: i64,
}

/// The registration authority. Cheap to clone.
#[derive(Clone)]
pub struct Ra {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Ra {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ra")
            .field("ca", &self.inner.ca.is_some())
            .finish()
    }
}

impl Ra {
    /// An RA over `store`, issuing through `ca` (`None` for database-only commands, which then
    /// refuse every signing operation), under `limits`.
    pub fn new(
        store: Store,
        profiles: Profiles,
        clock: SharedClock,
        ca: Option<Ca>,
        limits: LimitSettings,
    ) -> Ra {
        let window = i64::try_from(limits.refusal_window.as_secs()).unwrap_or(60);
        let ui = UiTimeouts {
            idle: i64::try_from(limits.ui_idle_timeout.as_secs())
                .unwrap_or(900)
                .max(1),
            max: i64::try_from(limits.ui_session_max.as_secs())
                .unwrap_or(28_800)
                .max(1),
        };
        let limits_grace = limits.supersede_grace;
        let external = external::External::new(
            Arc::new(crate::fetch::Fetcher::new(limits.fetch.clone())),
            limits.external_revocation,
            clock.clone(),
        );
        let authorize_unreachable_accept = limits.authorize_unreachable_accept;
        let webhook_retry = limits.webhook_retry.clone();
        let webhook_retention =
            i64::try_from(limits.webhook_retention.as_secs()).unwrap_or(i64::MAX);
        let response_caps = (
            limits.max_response_chars_iso2,
            limits.max_response_chars_iso20,
        );
        Ra {
            inner: Arc::new(Inner {
                ca,
                store,
                profiles,
                clock,
                guard: guard::Guard::new(limits),
                refusals: refusals::Refusals::new(window),
                clients: clients::ClientStates::default(),
                health: tokio::sync::Mutex::new(None),
                response_caps,
                trust: std::sync::Mutex::new(None),
                ui,
                form_key: tokio::sync::OnceCell::new(),
                supersede_grace: i64::try_from(limits_grace.as_secs()).unwrap_or(i64::MAX),
                holder: format!("ra-{}", hex::encode(rand::random::<[u8; 8]>())),
                external,
                authorize_unreachable_accept,
                verdicts: authorize::VerdictCache::default(),
                webhook_retry,
                webhook_retention,
                webhook_wake: tokio::sync::Notify::new(),
            }),
        }
    }

    /// The service's listen addresses: the outbound fetcher never contacts them.
    pub fn note_listen_addresses(&self, addrs: &[std::net::SocketAddr]) {
        self.inner.external.fetcher.add_own_addresses(addrs);
    }

    /// What the outbound fetcher did (`/metrics`, the console).
    pub fn fetch_stats(&self) -> &crate::fetch::FetchStats {
        &self.inner.external.fetcher.stats
    }

    fn ca(&self) -> Result<&Ca, RaError> {
        self.inner.ca.as_ref().ok_or_else(|| {
            RaError::NoCa("this operation needs the HSM, which this command did not open".into())
        })
    }

    /// Unix seconds by the process clock.
    pub fn now(&self) -> i64 {
        self.inner.clock.now()
    }

    /// Ask policy; a refusal is audited (`auth.denied`) and returned.
    async fn authorize(
        &self,
        p: &Principal,
        op: Operation,
        target: Target<'_>,
        resource: &str,
    ) -> Result<(), RaError> {
        match authz::decide(p, op, target) {
            Ok(()) => Ok(()),
            Err(d) => {
                self.audit_denial(&d, resource).await;
                Err(RaError::Policy(PolicyError::Denied(d)))
            }
        }
    }

    async fn audit_denial(&self, d: &authz::Denial, resource: &str) {
        self.audit_refusal(Refusal {
            actor: &d.actor,
            source: &d.actor,
            action: "auth.denied",
            reason: d.code.as_str(),
            target: resource,
            details: serde_json::json!({ "operation": d.operation.name() }),
        })
        .await;
    }

    /// Record a refusal through the aggregation of [`refusals`]: the rows it yields are
    /// written now (a failure to write is logged; the refusal itself stands).
    async fn audit_refusal(&self, r: Refusal<'_>) {
        let rows = self.inner.refusals.record(r, self.now());
        self.write_audit_rows(rows).await;
    }

    async fn write_audit_rows(&self, rows: Vec<AuditEvent>) {
        for ev in rows {
            if let Err(e) = self.inner.store.audit(&ev).await {
                tracing::error!(error = %e, action = %ev.action, "could not audit a refusal");
            }
        }
    }

    /// Write the summaries of refusals counted in a window that has ended (all of them with
    /// `force`, at shutdown).
    pub async fn flush_refusals(&self, force: bool) {
        let rows = self.inner.refusals.flush(self.now(), force);
        self.write_audit_rows(rows).await;
    }

    /// Flush refusal summaries once a second, until the task is dropped.
    pub async fn run_refusal_flusher(self) {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            self.flush_refusals(false).await;
        }
    }

    /// Audit a refused enrollment or revocation (client errors only: a failure on our side is
    /// logged where it happens, and denials are audited by `authorize`), then return it.
    async fn refused(
        &self,
        p: &Principal,
        action: &'static str,
        target: &str,
        e: RaError,
    ) -> RaError {
        let denial = matches!(&e, RaError::Policy(PolicyError::Denied(_)));
        if e.kind().is_client_error() && !denial {
            let detail: String = e.to_string().chars().take(512).collect();
            self.audit_refusal(Refusal {
                actor: &p.actor(),
                source: &p.actor(),
                action,
                reason: e.code(),
                target,
                details: serde_json::json!({ "detail": detail }),
            })
            .await;
        }
        e
    }

    /// Audit a policy error if it is a refusal, then return it.
    async fn audited(&self, e: PolicyError, resource: &str) -> RaError {
        if let PolicyError::Denied(d) = &e {
            self.audit_denial(d, resource).await;
        }
        RaError::Policy(e)
    }

    // ------------------------------------------------------------------------------- issuing

    /// Enroll a leaf of `family` from a CSR: the principal's role, then the CSR's subject under
    /// the family's profile, then the identifier's tenant, then the CA.
    ///
    /// With an idempotency key (`Idempotency-Key`), a retry of the same call (same caller, key,
    /// family, standard and body, within 24 h) returns the certificate the first call issued,
    /// and issues nothing; the same key with another request is refused (409
    /// `idempotency_key_reused`). The key is stored in the transaction that stores the
    /// certificate, so after a crash at any moment a retry finds both or neither.
    pub async fn enroll(
        &self,
        p: &Principal,
        family: Family,
        standard: Standard,
        csr_input: &[u8],
        idempotency_key: Option<&str>,
    ) -> Result<Issued, RaError> {
        let op = Operation::Enroll(family);
        let profile_name = family.profile(standard);
        let r = async {
            self.authorize(p, op, Target::Any, &profile_name).await?;
            let idem = idempotency_key
                .map(|k| idempotency(p, k, &profile_name, csr_input))
                .transpose()?;
            self.idempotent(idem.as_ref(), || async {
                self.limit_enrollment(p)?;
                self.issue_checked(
                    p,
                    op,
                    &profile_name,
                    csr_input,
                    None,
                    None,
                    ocpp::Extra::default(),
                    idem.as_ref(),
                )
                .await
            })
            .await
        }
        .await;
        match r {
            Ok(i) => Ok(i),
            Err(e) => Err(self
                .refused(p, "certificate.enroll.refused", &profile_name, e)
                .await),
        }
    }

    /// Run an issuing call under its idempotency key, if it has one: the certificate an earlier
    /// call with the key issued, if any (409 when that call asked for something else); else
    /// `issue` (which must record the key with its certificate), and when a concurrent call
    /// with the same key committed first, what that call issued.
    ///
    /// A keyed call that fails on a lost database connection (or whose commit is in doubt) is
    /// safe to run again: the key is looked up first, so a certificate that was stored is
    /// answered, and only when there is none is `issue` run once more, on a fresh connection.
    pub(super) async fn idempotent<F, Fut>(
        &self,
        idem: Option<&IdempotencyKey>,
        issue: F,
    ) -> Result<Issued, RaError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<Issued, RaError>>,
    {
        let Some(k) = idem else {
            return issue().await;
        };
        if let Some(done) = self.replay(k).await? {
            return Ok(done);
        }
        let first = match issue().await {
            Err(e) if lost_connection(&e) => e,
            other => return self.settle_taken(k, other).await,
        };
        tracing::warn!(error = %first, "a keyed issuance failed on a lost database connection; looking the key up and retrying once");
        let again = async {
            if let Some(done) = self.replay(k).await? {
                return Ok(done);
            }
            self.settle_taken(k, issue().await).await
        }
        .await;
        match again {
            // Still unreachable: an outcome that was unknown stays unknown to the caller.
            Err(e) if e.kind() == ErrorKind::Unavailable && outcome_unknown(&first) => Err(first),
            other => other,
        }
    }

    /// `r`, or what a concurrent call with the same key issued when it committed first.
    async fn settle_taken(
        &self,
        k: &IdempotencyKey,
        r: Result<Issued, RaError>,
    ) -> Result<Issued, RaError> {
        match r {
            Err(RaError::Ca(CaError::Store(StoreError::IdempotencyKeyTaken(_)))) => {
                self.replay(k).await?.ok_or_else(|| {
                    RaError::Internal(
                        "an idempotency key was taken but its certificate is not found".into(),
                    )
                })
            }
            other => other,
        }
    }

    /// The certificate an earlier call with this idempotency key issued (`None`: no such call
    /// in the last 24 h); 409 when that call asked for something else.
    async fn replay(&self, k: &IdempotencyKey) -> Result<Option<Issued>, RaError> {
        let Some(prev) = self.earlier(k).await? else {
            return Ok(None);
        };
        let record = self
            .inner
            .store
            .get_cert(&prev.issuer_id, &prev.serial_hex)
            .await?
            .ok_or_else(|| {
                RaError::Internal(format!(
                    "idempotency key names {}/{}, which is not stored",
                    prev.issuer_id, prev.serial_hex
                ))
            })?;
        let cert = ParsedCert::from_der(&record.der).map_err(CaError::from)?;
        let chain = self
            .ca()?
            .chain_from(&record.issuer_id, record.issuer_generation)
            .await?;
        tracing::info!(issuer = %record.issuer_id, serial = %record.serial_hex, "idempotent retry answered with the first certificate");
        Ok(Some(Issued {
            record,
            cert,
            chain,
        }))
    }

    /// What an earlier call with this idempotency key recorded (`None`: no such call in the
    /// last 24 h); 409 `idempotency_key_reused` when that call asked for something else.
    async fn earlier(
        &self,
        k: &IdempotencyKey,
    ) -> Result<Option<crate::model::IdempotentResult>, RaError> {
        let Some(prev) = self.inner.store.idempotent_result(&k.actor, &k.key).await? else {
            return Ok(None);
        };
        if prev.request_sha256 != k.request_sha256 {
            return Err(RaError::Conflict {
                code: "idempotency_key_reused",
                detail: "this Idempotency-Key was used with a different request".into(),
            });
        }
        Ok(Some(prev))
    }

    /// Per-client enrollment limit (API clients; the local operator is not limited).
    fn limit_enrollment(&self, p: &Principal) -> Result<(), RaError> {
        match p.via {
            Via::Client | Via::User => self.inner.guard.enrollment(&p.id),
            Via::Operator => Ok(()),
        }
    }

    /// Issue any leaf profile from a CSR, optionally from a chosen issuer and for a chosen
    /// validity (the local operator).
    pub async fn issue_from_csr(
        &self,
        p: &Principal,
        profile: &str,
        csr_input: &[u8],
        issuer_id: Option<&str>,
        validity_days: Option<u32>,
    ) -> Result<Issued, RaError> {
        let op = Operation::IssueAnyLeaf;
        let r = async {
            self.authorize(p, op, Target::Any, profile).await?;
            self.limit_enrollment(p)?;
            self.issue_checked(
                p,
                op,
                profile,
                csr_input,
                issuer_id,
                validity_days,
                ocpp::Extra::default(),
                None,
            )
            .await
        }
        .await;
        match r {
            Ok(i) => Ok(i),
            Err(e) => Err(self
                .refused(p, "certificate.enroll.refused", profile, e)
                .await),
        }
    }

    /// The checks every CSR enrollment makes, in order: leaf profile, CSR, subject, the
    /// station identity (OCPP), the tenant, requested extensions, the subjectAltName against
    /// the caller's allow-list (OCPP server certificates), the root the station expects
    /// (OCPP 2.1); then one call into the CA (with the call's idempotency key, if any).
    #[allow(clippy::too_many_arguments)]
    async fn issue_checked(
        &self,
        p: &Principal,
        op: Operation,
        profile_name: &str,
        csr_input: &[u8],
        issuer_id: Option<&str>,
        validity_days: Option<u32>,
        extra: ocpp::Extra<'_>,
        idem: Option<&IdempotencyKey>,
    ) -> Result<Issued, RaError> {
        let ca = self.ca()?;
        ca.require_leaf_profile(profile_name)?;
        let profile = self.inner.profiles.get(profile_name)?.clone();
        let mut parsed = csr::parse_and_verify(csr_input)?;
        if let Some(org) = extra.default_organization
            && crate::x509::name::values(&parsed.subject, crate::x509::name::OID_O).is_empty()
        {
            parsed.subject = ocpp::with_organization(&parsed.subject, org)?;
        }
        let checked = subject::check_subject(&profile, &parsed.subject)?;
        if let Some(sid) = extra.station_id {
            let cn = crate::x509::name::values(&checked.name, crate::x509::name::OID_CN);
            if cn.first().map(String::as_str) != Some(sid) {
                return Err(RaError::bad(
                    "station_id_mismatch",
                    format!(
                        "the CSR's CN '{}' is not the station '{sid}'",
                        cn.first()
                            .map(|c| c.chars().take(64).collect::<String>())
                            .unwrap_or_default()
                    ),
                ));
            }
        }
        let target = match checked.identifier() {
            Some(id) => Target::Identifier(id),
            None => Target::NoIdentifier("identifier"),
        };
        self.authorize(p, op, target, profile_name).await?;
        subject::check_requested_extensions(&profile, &parsed.requested_extensions)?;
        let checked = checked.with_requested_sans(
            &profile,
            &parsed.requested_extensions,
            |san| match san {
                subject::SanName::Dns(n) => authz::dns_name_allowed(p, n),
                subject::SanName::Ip(a) => authz::ip_allowed(p, a),
            },
        )?;
        if let Some(h) = extra.hash_root {
            let chain = ca.issuing_chain(profile_name).await?;
            if !chain.last().is_some_and(|root| h.names(root)) {
                return Err(RaError::bad(
                    "root_hash_mismatch",
                    "hashRootCertificate does not name the root this certificate is issued under",
                ));
            }
        }
        Ok(ca
            .issue_leaf_keyed(
                checked,
                parsed.spki,
                issuer_id,
                validity_days,
                &p.actor(),
                idem,
            )
            .await?)
    }

    /// Issue a leaf with a key generated in the HSM and handed to the caller (the operator's
    /// contract keys). A CA or OCSP signer profile is refused before anything is generated.
    pub async fn issue_with_generated_key(
        &self,
        p: &Principal,
        profile: &str,
        subject_text: &str,
        issuer_id: Option<&str>,
        validity_days: Option<u32>,
    ) -> Result<(Issued, ExportableKey), RaError> {
        let r = async {
            self.authorize(p, Operation::IssueWithExportedKey, Target::Any, profile)
                .await?;
            self.limit_enrollment(p)?;
            let ca = self.ca()?;
            ca.require_leaf_profile(profile)?;
            let prof = self.inner.profiles.get(profile)?.clone();
            let checked = subject::check_subject_text(&prof, subject_text)?;
            Ok(ca
                .issue_leaf_with_generated_key(checked, issuer_id, validity_days, &p.actor())
                .await?)
        }
        .await;
        match r {
            Ok(i) => Ok(i),
            Err(e) => Err(self
                .refused(p, "certificate.enroll.refused", profile, e)
                .await),
        }
    }

    /// The CA chain that issues `family` by default (EST `cacerts`); public.
    pub async fn issuing_chain(
        &self,
        family: Family,
        standard: Standard,
    ) -> Result<Vec<ParsedCert>, RaError> {
        Ok(self.ca()?.issuing_chain(&family.profile(standard)).await?)
    }

    /// Sign a firmware image with the service-held firmware-signing key (the operator only; the
    /// signature is audited with the image's SHA-256).
    pub async fn sign_firmware(
        &self,
        p: &Principal,
        image: Vec<u8>,
    ) -> Result<crate::ca::firmware::FirmwareSignature, RaError> {
        self.authorize(p, Operation::SignFirmware, Target::Any, "firmware")
            .await?;
        Ok(self.ca()?.sign_firmware(image, &p.actor()).await?)
    }

    /// RFC 7030 `csrattrs` for `family` (DER): the keys and signature algorithms its profile
    /// takes, and whether it wants a subjectAltName; public.
    pub fn csr_attrs(&self, family: Family, standard: Standard) -> Result<Vec<u8>, RaError> {
        let p = self.inner.profiles.get(&family.profile(standard))?;
        let mut keys = vec![p.key];
        keys.extend(p.csr_keys.iter().copied());
        Ok(csr::csr_attrs_der(
            &keys,
            p.san != crate::policy::profile::SanRule::None,
        ))
    }

    // ------------------------------------------------------------------------------- lookups

    /// Search certificates as a front end asks (`f.tenant` is the tenant asked for, if any).
    /// Clients see only their tenant (chosen or derived, see `authz::listing_tenant`); admins,
    /// auditors and the operator see all unless they choose. Identifiers and the serial are
    /// normalised before the store sees them.
    pub async fn list_certificates(
        &self,
        p: &Principal,
        mut f: CertFilter,
    ) -> Result<Page<CertRecord>, RaError> {
        use crate::policy::identifiers::compact_id;
        let hint = if let Some(e) = &f.evse_id {
            Some(Identifier::EvseId(e))
        } else if let Some(e) = &f.emaid {
            Some(Identifier::Emaid(e))
        } else {
            f.pcid.as_deref().map(Identifier::Pcid)
        };
        f.tenant = match authz::listing_tenant(p, f.tenant.as_deref(), hint) {
            Ok(t) => t,
            Err(e) => return Err(self.audited(e, "certificates").await),
        };
        if let Some(s) = &f.serial_hex {
            f.serial_hex = Some(
                normalize_serial_hex(s)
                    .ok_or_else(|| RaError::bad("bad_query", "serial_hex is not hex"))?,
            );
        }
        // An EMAID is searched in the form certificates carry it: normalised like the contract
        // API does (separators and case; a -2 EMAID without its check digit gets it).
        f.emaid = f.emaid.map(|e| {
            contracts::normalize_emaid(e.trim())
                .map(|n| compact_id(&n))
                .unwrap_or_else(|_| compact_id(&e))
        });
        f.pcid = f.pcid.map(|v| v.trim().to_string());
        f.evse_id = f.evse_id.map(|e| compact_id(&e));
        let limit = f.limit.unwrap_or(100).clamp(1, 1000);
        f.limit = Some(limit);
        let items = self.inner.store.list_certs(&f).await?;
        let next = if items.len() as i64 == limit {
            items
                .last()
                .map(|c| format!("{}/{}", c.issuer_id, c.serial_hex))
        } else {
            None
        };
        Ok(Page { items, next })
    }

    /// One certificate, if the principal may see it.
    pub async fn certificate(
        &self,
        p: &Principal,
        issuer_id: &str,
        serial: &str,
    ) -> Result<CertRecord, RaError> {
        self.load_for(p, Operation::ReadCertificates, issuer_id, serial)
            .await
    }

    /// The certificate with `serial`: from `issuer_id` if given, else the only one with that
    /// serial (the CLI, where serials are typed without their issuer).
    pub async fn find_certificate(
        &self,
        p: &Principal,
        serial: &str,
        issuer_id: Option<&str>,
    ) -> Result<CertRecord, RaError> {
        if let Some(i) = issuer_id {
            return self.certificate(p, i, serial).await;
        }
        self.authorize(p, Operation::ReadCertificates, Target::Any, "certificates")
            .await?;
        let s = normalize_serial_hex(serial).ok_or_else(|| {
            RaError::bad(
                "bad_serial",
                format!(
                    "'{}' is not a hex serial number",
                    serial.chars().take(64).collect::<String>()
                ),
            )
        })?;
        let certs = self
            .inner
            .store
            .list_certs(&CertFilter {
                serial_hex: Some(s.clone()),
                limit: Some(2),
                ..Default::default()
            })
            .await?;
        match certs.as_slice() {
            [c] => {
                self.authorize(
                    p,
                    Operation::ReadCertificates,
                    Target::Stored {
                        tenant: c.tenant.as_deref(),
                    },
                    &format!("{}/{}", c.issuer_id, c.serial_hex),
                )
                .await?;
                Ok(c.clone())
            }
            [] => Err(RaError::NotFound(format!("no certificate with serial {s}"))),
            _ => Err(RaError::bad(
                "ambiguous_serial",
                format!("serial {s} exists under several issuers; add --issuer"),
            )),
        }
    }

    async fn load_for(
        &self,
        p: &Principal,
        op: Operation,
        issuer_id: &str,
        serial: &str,
    ) -> Result<CertRecord, RaError> {
        self.authorize(p, op, Target::Any, "certificates").await?;
        let serial = normalize_serial_hex(serial)
            .ok_or_else(|| RaError::bad("bad_serial", "serial_hex is not hex"))?;
        let c = self
            .inner
            .store
            .get_cert(issuer_id, &serial)
            .await?
            .ok_or_else(|| RaError::NotFound(format!("no certificate {issuer_id}/{serial}")))?;
        self.authorize(
            p,
            op,
            Target::Stored {
                tenant: c.tenant.as_deref(),
            },
            &format!("{issuer_id}/{serial}"),
        )
        .await?;
        Ok(c)
    }

    /// Revoke a certificate the principal may manage; idempotent. When this returns, no OCSP
    /// replica answers "good" for it, and its CA's CRL has been regenerated.
    pub async fn revoke(
        &self,
        p: &Principal,
        issuer_id: &str,
        serial: &str,
        reason: &str,
    ) -> Result<Revocation, RaError> {
        self.revoke_keyed(p, issuer_id, serial, reason, None).await
    }

    /// [`Ra::revoke`] under an idempotency key (`Idempotency-Key`), bound to the caller, the
    /// certificate and the reason (the request's meaning, not its bytes: an empty body and
    /// `{"reason":"unspecified"}` are one request).
    ///
    /// The key and the outcome of the first call are recorded in the transaction of the
    /// revocation and its audit entry (or alone, when the certificate was revoked before), so
    /// after a crash a retry finds both or neither. A retry within 24 h answers that outcome
    /// again (`revoked`, not `already_revoked`), with the record as it is now; it writes no
    /// second audit entry, but still waits until no OCSP replica answers "good", as a first
    /// call does. The same key for another certificate or reason is refused (409
    /// `idempotency_key_reused`). No key is recorded for a refused call.
    pub async fn revoke_keyed(
        &self,
        p: &Principal,
        issuer_id: &str,
        serial: &str,
        reason: &str,
        idempotency_key: Option<&str>,
    ) -> Result<Revocation, RaError> {
        let r = async {
            self.authorize(p, Operation::Revoke, Target::Any, "certificates")
                .await?;
            let reason = RevocationReason::parse(reason).map_err(CaError::from)?;
            let c = self
                .load_for(p, Operation::Revoke, issuer_id, serial)
                .await?;
            let request = format!("{}/{}\n{}", c.issuer_id, c.serial_hex, reason.name());
            let idem = idempotency_key
                .map(|k| idempotency(p, k, "revoke", request.as_bytes()))
                .transpose()?;
            let ca = self.ca()?;
            let earlier = match &idem {
                Some(k) => self.earlier(k).await?,
                None => None,
            };
            let outcome = match earlier {
                Some(prev) => self.revoke_again(ca, &c, reason, p, &prev).await?,
                None => match ca
                    .revoke_keyed(
                        &c.issuer_id,
                        &c.serial_hex,
                        reason,
                        &p.actor(),
                        idem.as_ref(),
                    )
                    .await
                {
                    Err(CaError::Store(StoreError::IdempotencyKeyTaken(_))) => {
                        // A concurrent call with this key committed first: its answer.
                        let prev = match &idem {
                            Some(k) => self.earlier(k).await?,
                            None => None,
                        }
                        .ok_or_else(|| {
                            RaError::Internal(
                                "an idempotency key was taken but is not found".into(),
                            )
                        })?;
                        self.revoke_again(ca, &c, reason, p, &prev).await?
                    }
                    other => other?,
                },
            };
            let record = self
                .inner
                .store
                .get_cert(&c.issuer_id, &c.serial_hex)
                .await?
                .unwrap_or(c);
            Ok(Revocation { outcome, record })
        }
        .await;
        match r {
            Ok(rev) => Ok(rev),
            Err(e) => {
                let target = format!("{issuer_id}/{serial}");
                Err(self
                    .refused(p, "certificate.revoke.refused", &target, e)
                    .await)
            }
        }
    }

    /// A retry of a keyed revocation: the outcome the first call recorded, once the guarantee
    /// of [`Ra::revoke`] holds (revoking again is a no-op that writes nothing, but waits for the
    /// OCSP replicas as a first call does).
    async fn revoke_again(
        &self,
        ca: &Ca,
        c: &CertRecord,
        reason: RevocationReason,
        p: &Principal,
        prev: &crate::model::IdempotentResult,
    ) -> Result<RevokeOutcome, RaError> {
        let outcome = prev
            .response
            .as_deref()
            .and_then(RevokeOutcome::parse)
            .ok_or_else(|| {
                RaError::Internal("an idempotency key of a revocation has no outcome".into())
            })?;
        ca.revoke(&c.issuer_id, &c.serial_hex, reason, &p.actor())
            .await?;
        tracing::info!(issuer = %c.issuer_id, serial = %c.serial_hex, "idempotent retry answered with the first revocation's outcome");
        Ok(outcome)
    }

    /// Every CA (public data: certificates are published anyway).
    pub async fn cas(&self) -> Result<Vec<CaRecord>, RaError> {
        Ok(self.inner.store.list_cas().await?)
    }

    /// Every CA, for an authenticated principal.
    pub async fn list_cas(&self, p: &Principal) -> Result<Vec<CaRecord>, RaError> {
        self.authorize(p, Operation::ReadCas, Target::Any, "cas")
            .await?;
        self.cas().await
    }

    /// The chain of CA `id`, that CA first, root last.
    pub async fn ca_chain(&self, p: &Principal, id: &str) -> Result<Vec<ParsedCert>, RaError> {
        self.authorize(p, Operation::ReadCas, Target::Any, "cas")
            .await?;
        Ok(self.ca()?.chain(id).await?)
    }

    /// (issuer_id, valid, revoked) counts (for `tree`).
    pub async fn counts_by_issuer(&self) -> Result<Vec<(String, i64, i64)>, RaError> {
        Ok(self.inner.store.counts_by_issuer().await?)
    }

    /// The current CRL named `file` (`{ca_id}` for a CA's first key, `{ca_id}.g{N}` for its
    /// N-th; public, as RFC 5280 distribution points are).
    pub async fn crl(&self, file: &str) -> Result<CrlRecord, RaError> {
        Ok(self.ca()?.crl_by_file(file, "service:crl-request").await?)
    }

    /// Every CA certificate and the newest valid CPS leaf of each standard: (name, DER).
    pub async fn export_certificates(
        &self,
        p: &Principal,
    ) -> Result<Vec<(String, Vec<u8>)>, RaError> {
        self.authorize(p, Operation::ReadCas, Target::Any, "export")
            .await?;
        let mut out = Vec::new();
        let cas = self.inner.store.list_cas().await?;
        for ca in &cas {
            out.push((ca.id.clone(), ca.cert_der.clone()));
        }
        for profile in ["cps-leaf", "cps-leaf-20", "firmware-signing"] {
            let mut newest: Option<CertRecord> = None;
            for ca in &cas {
                if let Some(c) = self
                    .inner
                    .store
                    .current_service_cert(profile, &ca.id, None)
                    .await?
                    && newest.as_ref().is_none_or(|n| c.not_before > n.not_before)
                {
                    newest = Some(c);
                }
            }
            if let Some(c) = newest {
                out.push((profile.to_string(), c.der));
            }
        }
        Ok(out)
    }

    // ---------------------------------------------------------------------------- the audit log

    /// Audit entries after a cursor (admins, auditors, the operator).
    pub async fn audit_entries(
        &self,
        p: &Principal,
        f: &AuditFilter,
    ) -> Result<Vec<AuditEntry>, RaError> {
        self.authorize(p, Operation::ReadAudit, Target::Any, "audit")
            .await?;
        Ok(self.inner.store.audit_entries(f).await?)
    }

    /// Write a consistent copy of the database to `out` while the service runs (SQLite; the
    /// operator only); the backup is then audited (`store.backup`, with the file name).
    pub async fn backup(&self, p: &Principal, out: &std::path::Path) -> Result<(), RaError> {
        self.authorize(p, Operation::Backup, Target::Any, "store")
            .await?;
        self.inner.store.backup_to(out).await?;
        let ev = AuditEvent::new(
            &p.actor(),
            "store.backup",
            "store",
            serde_json::json!({ "file": out.display().to_string() }),
        );
        self.inner.store.audit(&ev).await?;
        Ok(())
    }

    /// Connections of the database pool now: open, idle, maximum.
    pub fn pool_stats(&self) -> crate::stats::PoolSnapshot {
        self.inner.store.pool_stats()
    }

    /// Token calls by kind since start (`None`: this process opened no CA).
    pub fn hsm_stats(&self) -> Option<crate::stats::HsmSnapshot> {
        self.inner.ca.as_ref().map(Ca::hsm_stats)
    }

    /// Revocations this process made since start, by reason name (`None`: no CA).
    pub fn revocation_counts(&self) -> Option<Vec<(&'static str, u64)>> {
        self.inner.ca.as_ref().map(|ca| {
            ca.revocation_counts()
                .into_iter()
                .map(|(r, n)| (r.name(), n))
                .collect()
        })
    }

    /// Group commit of issuances so far: (transactions, issuances in them, largest batch).
    pub fn issuance_batches(&self) -> (u64, u64, u64) {
        self.inner.store.batch_stats()
    }

    /// Recompute the whole audit chain.
    pub async fn verify_audit(&self, p: &Principal) -> Result<AuditReport, RaError> {
        self.authorize(p, Operation::ReadAudit, Target::Any, "audit")
            .await?;
        Ok(self.inner.store.audit_verify().await?)
    }

    // ------------------------------------------------------------------------- the hierarchy

    /// Create the CAs, service certificates and OCSP signers `cfg` describes (idempotent).
    pub async fn init_hierarchy(
        &self,
        p: &Principal,
        cfg: &HierarchyConfig,
    ) -> Result<Vec<Step>, RaError> {
        self.authorize(p, Operation::ManageHierarchy, Target::Any, "hierarchy")
            .await?;
        Ok(self.ca()?.init_hierarchy(cfg, &p.actor()).await?)
    }

    /// Create (or reuse) the key of CA `id` and return a CSR for an external root to sign.
    pub async fn create_ca_csr(
        &self,
        p: &Principal,
        id: &str,
        profile: &str,
        subject_text: &str,
    ) -> Result<String, RaError> {
        self.authorize(p, Operation::ManageHierarchy, Target::Any, id)
            .await?;
        Ok(self
            .ca()?
            .create_ca_csr(id, profile, subject_text, &p.actor())
            .await?)
    }

    /// Import the externally signed certificate of CA `id`.
    pub async fn import_ca(
        &self,
        p: &Principal,
        id: &str,
        profile: &str,
        cert_pem: &[u8],
        issuer_chain_pem: Option<&[u8]>,
    ) -> Result<CaRecord, RaError> {
        self.authorize(p, Operation::ManageHierarchy, Target::Any, id)
            .await?;
        Ok(self
            .ca()?
            .import_ca(id, profile, cert_pem, issuer_chain_pem, &p.actor())
            .await?)
    }

    /// Roll CA `id` over to a new key (`ca rollover`); see [`crate::ca::rollover`].
    pub async fn rollover_ca(
        &self,
        p: &Principal,
        id: &str,
    ) -> Result<crate::ca::rollover::Rollover, RaError> {
        self.authorize(p, Operation::ManageHierarchy, Target::Any, id)
            .await?;
        Ok(self.ca()?.rollover(id, &p.actor()).await?)
    }

    /// First step of the rollover of an externally signed CA `id`: the CSR of its new key.
    pub async fn rollover_ca_csr(&self, p: &Principal, id: &str) -> Result<String, RaError> {
        self.authorize(p, Operation::ManageHierarchy, Target::Any, id)
            .await?;
        Ok(self.ca()?.rollover_csr(id, &p.actor()).await?)
    }

    /// Second step: switch externally signed CA `id` to the certificate signed for its new key.
    pub async fn rollover_ca_import(
        &self,
        p: &Principal,
        id: &str,
        cert_pem: &[u8],
        issuer_chain_pem: Option<&[u8]>,
    ) -> Result<crate::ca::rollover::Rollover, RaError> {
        self.authorize(p, Operation::ManageHierarchy, Target::Any, id)
            .await?;
        Ok(self
            .ca()?
            .rollover_import(id, cert_pem, issuer_chain_pem, &p.actor())
            .await?)
    }

    /// What the token says about every CA key.
    pub async fn hsm_doctor(&self, p: &Principal) -> Result<KeyReport, RaError> {
        self.authorize(p, Operation::InspectHsm, Target::Any, "hsm")
            .await?;
        Ok(self.ca()?.key_report().await?)
    }

    /// Whether the token can sign and the database can write. Probed at most once a second
    /// (one signature, one one-row UPDATE), however often readiness is asked; concurrent
    /// askers wait for the one probe in flight.
    pub async fn health(&self) -> Health {
        let mut cached = self.inner.health.lock().await;
        if let Some((at, h)) = *cached
            && at.elapsed() < std::time::Duration::from_secs(1)
        {
            return h;
        }
        // A hung token or database must not hold every asker behind this lock.
        let limit = std::time::Duration::from_secs(5);
        let hsm = match &self.inner.ca {
            Some(ca) => match tokio::time::timeout(limit, ca.sign_probe()).await {
                Ok(Ok(())) => true,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "readiness: the token cannot sign");
                    false
                }
                Err(_) => {
                    tracing::warn!("readiness: the token did not sign within 5 s");
                    false
                }
            },
            None => false,
        };
        let store = match tokio::time::timeout(limit, self.inner.store.write_probe()).await {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "readiness: the store cannot write");
                false
            }
            Err(_) => {
                tracing::warn!("readiness: the store did not write within 5 s");
                false
            }
        };
        let h = Health { hsm, store };
        *cached = Some((tokio::time::Instant::now(), h));
        h
    }

    /// May `p` relay OCPP-shaped OCSP lookups?
    pub async fn authorize_ocsp_lookup(&self, p: &Principal) -> Result<(), RaError> {
        self.authorize(p, Operation::OcspLookup, Target::Any, "ocsp")
            .await
    }

    /// The CRL URL certificates signed by key generation `generation` of CA `issuer_id` carry.
    pub fn crl_url(&self, issuer_id: &str, generation: i64) -> Option<String> {
        self.inner
            .ca
            .as_ref()
            .map(|c| c.crl_url(issuer_id, generation))
    }
}

/// The store error inside `e`, if any.
fn store_error(e: &RaError) -> Option<&StoreError> {
    match e {
        RaError::Store(s) | RaError::Ca(CaError::Store(s)) => Some(s),
        _ => None,
    }
}

/// A failure on a lost database connection, or a commit whose outcome is unknown.
fn lost_connection(e: &RaError) -> bool {
    store_error(e).is_some_and(|s| s.lost_connection() || outcome_unknown_store(s))
}

fn outcome_unknown(e: &RaError) -> bool {
    store_error(e).is_some_and(outcome_unknown_store)
}

fn outcome_unknown_store(s: &StoreError) -> bool {
    matches!(s, StoreError::OutcomeUnknown(_))
}
