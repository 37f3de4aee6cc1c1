//! The certificate authority: builds certificates, CRLs and OCSP responses from profiles and signs
//! them, only through the HSM layer, then records them (with their audit entry) before anyone
//! sees them.
//!
//! [`Ca`] is closed: its token and store handles are private, and it offers typed operations
//! only. Leaves come from [`Ca::issue_leaf`] (or [`Ca::issue_leaf_with_generated_key`]), CAs from
//! the hierarchy bootstrap ([`bootstrap`]) and external signing ([`external`]), CRLs from
//! [`crl`], OCSP signatures and delegated signers from [`ocsp`], access-token signatures from
//! [`tokens`], and the CPS key's raw signer from [`cps`]. Every signature goes through one helper
//! (`signing`). Issuance and revocation are announced to the [`events::Observer`]s the process
//! subscribed (the OCSP cache), so `ca` never calls up into the responder.

pub mod bootstrap;
mod build;
pub mod compromise;
pub mod cps;
pub mod crl;
pub mod doctor;
pub mod events;
pub mod external;
pub mod firmware;
pub mod ocsp;
pub mod rollover;
mod signing;
pub mod tokens;

use std::sync::{Arc, RwLock};

use der::Encode;
use spki::SubjectPublicKeyInfoOwned;

use crate::clock::SharedClock;
use crate::error::ErrorKind;
use crate::hsm::{ExportableKey, Hsm, HsmError, KeyRef};
use crate::model::{
    AuditEvent, CaRecord, CertRecord, CertStatus, Issued, ProvisioningLink, RevocationReason,
    RevokeOutcome, UnknownReason,
};
use crate::policy::PolicyError;
use crate::policy::profile::{Kind, Profile, Profiles};
use crate::policy::subject::CheckedSubject;
use crate::store::{Store, StoreError, SupersededNow};
use crate::x509::csr::CsrError;
use crate::x509::{ParsedCert, X509Error};

/// Errors of the CA layer, each with a stable machine-readable code.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// The CSR is malformed or its signature does not verify.
    #[error(transparent)]
    Csr(#[from] CsrError),
    /// Policy refused the request.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The profile does not allow what was asked (key, validity, issuer key).
    #[error("request refused by profile {profile}: {reason}")]
    Profile {
        /// The profile.
        profile: String,
        /// Why.
        reason: String,
    },
    /// A CA or OCSP-signer profile was asked for where only leaves are issued.
    #[error(
        "profile {profile} is a {kind} profile: only leaf profiles are issued here; CAs are \
         created with `init` or `csr`/`import-ca`, and CA and OCSP signer keys never leave the HSM"
    )]
    NotLeaf {
        /// The profile.
        profile: String,
        /// What it is instead.
        kind: &'static str,
    },
    /// The certificate would exceed the profile's size cap.
    #[error(
        "certificate would be {len} bytes of DER, over the {max}-byte limit of profile {profile}"
    )]
    TooLarge {
        /// The profile.
        profile: String,
        /// DER length it would have.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// No such CA, or none that may issue the profile.
    #[error("{0}")]
    UnknownIssuer(String),
    /// A revocation reason RFC 5280 does not define.
    #[error(transparent)]
    UnknownReason(#[from] UnknownReason),
    /// A CA with that id exists already.
    #[error("CA '{0}' already exists")]
    CaExists(String),
    /// No such certificate.
    #[error("{0}")]
    NotFound(String),
    /// The hierarchy file or an imported certificate is not acceptable.
    #[error("{0}")]
    Config(String),
    /// The token failed.
    #[error("HSM: {0}")]
    Hsm(#[from] HsmError),
    /// The database failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// A revocation committed but could not be confirmed by every OCSP replica in time.
    #[error("{0}")]
    Propagation(String),
    /// Our own encoding failed (a bug or corrupted stored data).
    #[error("internal: {0}")]
    X509(#[from] X509Error),
    /// Anything else on our side.
    #[error("internal: {0}")]
    Internal(String),
}

impl CaError {
    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            CaError::Csr(e) => e.code(),
            CaError::Policy(e) => e.code(),
            CaError::Profile { .. } => "profile_violation",
            CaError::NotLeaf { .. } => "not_a_leaf_profile",
            CaError::TooLarge { .. } => "certificate_too_large",
            CaError::UnknownIssuer(_) => "unknown_issuer",
            CaError::UnknownReason(_) => "invalid_reason",
            CaError::CaExists(_) => "ca_exists",
            CaError::NotFound(_) => "not_found",
            CaError::Config(_) => "config",
            CaError::Hsm(_) => "hsm_unavailable",
            CaError::Store(e) => e.code(),
            CaError::Propagation(_) => "revocation_not_propagated",
            CaError::X509(_) | CaError::Internal(_) => "internal",
        }
    }

    /// How it is answered.
    pub fn kind(&self) -> ErrorKind {
        match self {
            CaError::Csr(_)
            | CaError::Profile { .. }
            | CaError::NotLeaf { .. }
            | CaError::TooLarge { .. }
            | CaError::UnknownReason(_)
            | CaError::Config(_) => ErrorKind::BadRequest,
            CaError::Policy(e) => e.kind(),
            CaError::UnknownIssuer(_) | CaError::NotFound(_) => ErrorKind::NotFound,
            CaError::CaExists(_) => ErrorKind::Conflict,
            CaError::Hsm(_) | CaError::Propagation(_) => ErrorKind::Unavailable,
            CaError::Store(e) => e.kind(),
            CaError::X509(_) | CaError::Internal(_) => ErrorKind::Internal,
        }
    }

    fn profile(p: &Profile, reason: impl Into<String>) -> CaError {
        CaError::Profile {
            profile: p.name.clone(),
            reason: reason.into(),
        }
    }

    fn internal(e: impl std::fmt::Display) -> CaError {
        CaError::Internal(e.to_string())
    }
}

/// A certificate built and signed but not recorded (see [`Ca::prepare_leaf_with_generated_key`]).
/// Dropping it leaves nothing behind: the serial was never stored, the key was never a token
/// object.
#[derive(Debug)]
pub struct Prepared {
    /// The record that [`Ca::commit_provisioned`] stores.
    pub record: CertRecord,
    /// The certificate.
    pub cert: ParsedCert,
    /// Issuer chain, issuing CA first, root last.
    pub chain: Vec<ParsedCert>,
    event: AuditEvent,
}

/// What the CA needs at construction.
pub struct CaConfig {
    /// The token.
    pub hsm: Hsm,
    /// The database.
    pub store: Store,
    /// The profiles in force.
    pub profiles: Profiles,
    /// Base URL written into certificates (OCSP at `{url}/ocsp`, CRLs at `{url}/crl/…`).
    pub public_url: String,
    /// nextUpdate − thisUpdate of every CRL, seconds.
    pub crl_validity: i64,
    /// The process clock.
    pub clock: SharedClock,
}

struct Inner {
    hsm: Hsm,
    store: Store,
    profiles: Profiles,
    public_url: String,
    clock: SharedClock,
    observers: RwLock<Vec<Arc<dyn events::Observer>>>,
    crl: crl::CrlState,
    /// Revocations this process made, by reason (index in `RevocationReason::ALL`), for
    /// `/metrics`.
    revocations: [std::sync::atomic::AtomicU64; RevocationReason::ALL.len()],
    /// The CA keys as last read from the store (see [`Ca::keys`]).
    keys: RwLock<Option<Arc<Keys>>>,
    /// The access-token key once read, for the readiness probe: the token is judged by the
    /// token alone, not by whether the store can say which key to use (`Ca::sign_probe`).
    probe_key: std::sync::Mutex<Option<tokens::TokenKey>>,
}

/// Every CA's current key and the retired ones, parsed, as of one store fingerprint.
#[derive(Debug)]
struct Keys {
    /// [`Store::ca_keys_fingerprint`] when they were read (before reading them).
    fingerprint: (i64, i64),
    /// Current keys, in `list_cas` order.
    current: Vec<IssuerHandle>,
    /// Retired keys, expired ones included (chains of old certificates need them).
    retired: Vec<IssuerHandle>,
}

impl Keys {
    /// CA `id`'s current key.
    fn issuer(&self, id: &str) -> Result<IssuerHandle, CaError> {
        self.current
            .iter()
            .find(|h| h.record.id == id)
            .cloned()
            .ok_or_else(|| {
                CaError::UnknownIssuer(format!(
                    "no CA with id '{}'",
                    id.chars().take(64).collect::<String>()
                ))
            })
    }

    /// Key generation `generation` of CA `id`, current or retired.
    fn issuer_at(&self, id: &str, generation: i64) -> Result<IssuerHandle, CaError> {
        self.current
            .iter()
            .chain(&self.retired)
            .find(|h| h.record.id == id && h.record.generation == generation)
            .cloned()
            .ok_or_else(|| {
                CaError::UnknownIssuer(format!(
                    "CA '{}' has no key generation {generation}",
                    id.chars().take(64).collect::<String>()
                ))
            })
    }

    /// See [`Ca::pick_issuer`]; `now` judges expiry.
    fn pick(
        &self,
        profile: &Profile,
        issuer_id: Option<&str>,
        now: i64,
    ) -> Result<IssuerHandle, CaError> {
        if let Some(id) = issuer_id {
            let h = self.issuer(id)?;
            if !profile.issuer_profiles.contains(&h.record.profile) {
                return Err(CaError::UnknownIssuer(format!(
                    "CA '{id}' (profile {}) may not issue {} certificates",
                    h.record.profile, profile.name
                )));
            }
            return Ok(h);
        }
        let candidates: Vec<&IssuerHandle> = self
            .current
            .iter()
            .filter(|h| {
                profile.issuer_profiles.contains(&h.record.profile) && h.record.not_after > now
            })
            .collect();
        for ip in &profile.issuer_profiles {
            let of_profile: Vec<&IssuerHandle> = candidates
                .iter()
                .copied()
                .filter(|h| &h.record.profile == ip)
                .collect();
            match of_profile.len() {
                0 => continue,
                1 => return Ok(of_profile[0].clone()),
                _ => {
                    return Err(CaError::UnknownIssuer(format!(
                        "several CAs can issue {}: {}; choose one with --issuer",
                        profile.name,
                        of_profile
                            .iter()
                            .map(|c| c.record.id.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
            }
        }
        Err(CaError::UnknownIssuer(format!(
            "no CA in this deployment can issue {} certificates (needs a CA of profile {})",
            profile.name,
            profile.issuer_profiles.join(" or ")
        )))
    }

    /// The chain above and including `first`.
    fn chain_above(&self, first: &IssuerHandle) -> Result<Vec<ParsedCert>, CaError> {
        let mut out = Vec::new();
        let mut cur = Some(first);
        while let Some(h) = cur {
            if out.len() > 8 {
                return Err(CaError::Internal("CA hierarchy loops".into()));
            }
            out.push(h.cert.clone());
            if let Some(pem) = &h.record.external_chain {
                out.extend(ParsedCert::chain_from_pem(pem.as_bytes())?);
            }
            cur = match &h.record.parent_id {
                Some(p) => Some(self.generation_that_signed(p, &h.cert).ok_or_else(|| {
                    CaError::Internal(format!("CA {} has no parent {p}", h.record.id))
                })?),
                None => None,
            };
        }
        Ok(out)
    }

    /// The key of CA `parent` that signed `cert`: the current one unless `cert`'s authority key
    /// identifier names a retired one.
    fn generation_that_signed(&self, parent: &str, cert: &ParsedCert) -> Option<&IssuerHandle> {
        let current = self.current.iter().find(|h| h.record.id == parent)?;
        let Some(aki) = cert.aki() else {
            return Some(current);
        };
        if current.cert.ski().as_deref() == Some(aki.as_slice()) {
            return Some(current);
        }
        Some(
            self.retired
                .iter()
                .find(|h| h.record.id == parent && h.cert.ski().as_deref() == Some(aki.as_slice()))
                .unwrap_or(current),
        )
    }
}

/// The certificate authority. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Ca {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field("public_url", &self.inner.public_url)
            .finish()
    }
}

/// One loaded CA: record, key and parsed certificate. Its key handle stays inside `ca`.
#[derive(Debug, Clone)]
pub(crate) struct IssuerHandle {
    pub(crate) record: CaRecord,
    pub(crate) cert: ParsedCert,
    key: KeyRef,
    /// Its chain: this certificate first, root last (an external root's chain included), each
    /// certificate followed by the one of the key that signed it.
    chain: Arc<Vec<ParsedCert>>,
}

impl Ca {
    /// A CA over `cfg`. Subscribe observers with [`Ca::subscribe`] before serving.
    pub fn new(cfg: CaConfig) -> Ca {
        Ca {
            inner: Arc::new(Inner {
                hsm: cfg.hsm,
                store: cfg.store,
                profiles: cfg.profiles,
                public_url: cfg.public_url,
                clock: cfg.clock,
                observers: RwLock::new(Vec::new()),
                crl: crl::CrlState::new(cfg.crl_validity),
                revocations: Default::default(),
                keys: RwLock::new(None),
                probe_key: std::sync::Mutex::new(None),
            }),
        }
    }

    /// Announce issuances and revocations to `o`, after those subscribed before it.
    pub fn subscribe(&self, o: Arc<dyn events::Observer>) {
        self.inner
            .observers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(o);
    }

    fn observers(&self) -> Vec<Arc<dyn events::Observer>> {
        self.inner
            .observers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn now(&self) -> i64 {
        self.inner.clock.now()
    }

    /// `{public_url}/ocsp`, the one OCSP URL every non-root certificate carries.
    pub(crate) fn ocsp_url(&self) -> String {
        format!("{}/ocsp", self.inner.public_url.trim_end_matches('/'))
    }

    /// `{public_url}/crl/{file}.crl`: the CRL of key generation `generation` of `issuer_id`
    /// (file name from [`crl::crl_file`]).
    pub fn crl_url(&self, issuer_id: &str, generation: i64) -> String {
        format!(
            "{}/crl/{}.crl",
            self.inner.public_url.trim_end_matches('/'),
            crl::crl_file(issuer_id, generation)
        )
    }

    /// The CA keys, parsed: from memory while the store's fingerprint of them is unchanged
    /// (one small aggregate query instead of reading and parsing every CA certificate for each
    /// issuance), read again when a CA was added or rolled over, by any process.
    async fn keys(&self) -> Result<Arc<Keys>, CaError> {
        let store = &self.inner.store;
        let fingerprint = store.ca_keys_fingerprint().await?;
        if let Some(k) = self
            .inner
            .keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            && k.fingerprint == fingerprint
        {
            return Ok(k.clone());
        }
        let mut keys = Keys {
            fingerprint,
            current: store
                .list_cas()
                .await?
                .into_iter()
                .map(Self::handle)
                .collect::<Result<Vec<_>, _>>()?,
            retired: store
                .retired_ca_keys(None, i64::MIN)
                .await?
                .into_iter()
                .map(Self::handle)
                .collect::<Result<Vec<_>, _>>()?,
        };
        // Chains once per load, not per issuance.
        let chains = keys
            .current
            .iter()
            .chain(&keys.retired)
            .map(|h| keys.chain_above(h))
            .collect::<Result<Vec<_>, _>>()?;
        for (h, c) in keys
            .current
            .iter_mut()
            .chain(keys.retired.iter_mut())
            .zip(chains)
        {
            h.chain = Arc::new(c);
        }
        let keys = Arc::new(keys);
        *self.inner.keys.write().unwrap_or_else(|p| p.into_inner()) = Some(keys.clone());
        Ok(keys)
    }

    pub(crate) async fn issuer(&self, id: &str) -> Result<IssuerHandle, CaError> {
        self.keys().await?.issuer(id)
    }

    /// Key generation `generation` of CA `id`, current or retired.
    pub(crate) async fn issuer_at(
        &self,
        id: &str,
        generation: i64,
    ) -> Result<IssuerHandle, CaError> {
        self.keys().await?.issuer_at(id, generation)
    }

    /// A handle for `record`, its chain not yet filled in (see [`Ca::keys`]).
    fn handle(record: CaRecord) -> Result<IssuerHandle, CaError> {
        let cert = ParsedCert::from_der(&record.cert_der)?;
        let key = KeyRef {
            id: hex::decode(&record.key_id).map_err(CaError::internal)?,
            alg: record.key_alg,
        };
        Ok(IssuerHandle {
            record,
            cert,
            key,
            chain: Arc::default(),
        })
    }

    /// Chain above and including CA `id`'s current key: that CA first, root last (an external
    /// root's chain included).
    pub async fn chain(&self, id: &str) -> Result<Vec<ParsedCert>, CaError> {
        Ok(self.issuer(id).await?.chain.to_vec())
    }

    /// Chain above and including key generation `generation` of CA `id`: what a certificate
    /// that generation signed chains to, after the CA rolled over to a new key too.
    pub async fn chain_from(&self, id: &str, generation: i64) -> Result<Vec<ParsedCert>, CaError> {
        Ok(self.issuer_at(id, generation).await?.chain.to_vec())
    }

    /// The issuing CA for a profile: the one given, else the only unexpired CA whose profile may
    /// issue it (the most specific issuer profile listed first wins).
    pub(crate) async fn pick_issuer(
        &self,
        profile: &Profile,
        issuer_id: Option<&str>,
    ) -> Result<IssuerHandle, CaError> {
        self.keys().await?.pick(profile, issuer_id, self.now())
    }

    /// The chain (issuing CA first, root last) that issues `profile` by default: what EST
    /// `cacerts` returns.
    pub async fn issuing_chain(&self, profile: &str) -> Result<Vec<ParsedCert>, CaError> {
        let p = self.inner.profiles.get(profile)?.clone();
        // The handle's chain: one read of the keys, not two.
        Ok(self.pick_issuer(&p, None).await?.chain.to_vec())
    }

    fn leaf_profile(&self, name: &str) -> Result<Profile, CaError> {
        let p = self.inner.profiles.get(name)?.clone();
        if !p.is_leaf() {
            return Err(CaError::NotLeaf {
                profile: p.name.clone(),
                kind: match p.kind {
                    Kind::Root => "root CA",
                    Kind::SubCa => "sub-CA",
                    Kind::OcspSigner => "OCSP signer",
                    Kind::Leaf => "leaf",
                },
            });
        }
        Ok(p)
    }

    /// Refuse a profile that is not a leaf profile, before anything is generated or signed.
    pub fn require_leaf_profile(&self, name: &str) -> Result<(), CaError> {
        self.leaf_profile(name).map(|_| ())
    }

    fn check_key(profile: &Profile, spki: &SubjectPublicKeyInfoOwned) -> Result<(), CaError> {
        let alg = crate::x509::spki_key_alg(spki)
            .map_err(|r| CaError::profile(profile, r.to_string()))?;
        if !profile.accepts_key(alg) {
            let accepted: Vec<&str> = std::iter::once(profile.key)
                .chain(profile.csr_keys.iter().copied())
                .map(|k| k.name())
                .collect();
            return Err(CaError::profile(
                profile,
                format!(
                    "public key is {}, the profile requires {}",
                    alg.name(),
                    accepted.join(" or ")
                ),
            ));
        }
        // The point must be on the curve (an RSA key well-formed): OpenSSL checks, through
        // its EC primitives for EC keys (`x509::ecdsa`), its generic decoder otherwise.
        let der = spki.to_der().map_err(CaError::internal)?;
        let valid = match crate::x509::ecdsa::ec_point_valid(&der) {
            Some(v) => v,
            None => openssl::pkey::PKey::public_key_from_der(&der).is_ok(),
        };
        if !valid {
            return Err(CaError::profile(
                profile,
                "public key is not a valid point on its curve",
            ));
        }
        Ok(())
    }

    /// Issue a leaf certificate for a checked subject and a public key (from a verified CSR).
    /// Only leaf profiles; the subject's profile decides.
    pub async fn issue_leaf(
        &self,
        subject: CheckedSubject,
        spki: SubjectPublicKeyInfoOwned,
        issuer_id: Option<&str>,
        validity_days: Option<u32>,
        actor: &str,
    ) -> Result<Issued, CaError> {
        self.issue_leaf_keyed(subject, spki, issuer_id, validity_days, actor, None)
            .await
    }

    /// [`Ca::issue_leaf`] for a call that carried an idempotency key: the key is recorded in the
    /// transaction that records the certificate (a key another call committed first fails it,
    /// and nothing is stored).
    pub async fn issue_leaf_keyed(
        &self,
        subject: CheckedSubject,
        spki: SubjectPublicKeyInfoOwned,
        issuer_id: Option<&str>,
        validity_days: Option<u32>,
        actor: &str,
        idem: Option<&crate::model::IdempotencyKey>,
    ) -> Result<Issued, CaError> {
        let profile = self.leaf_profile(&subject.profile)?;
        Self::check_key(&profile, &spki)?;
        let issuer = self.pick_issuer(&profile, issuer_id).await?;
        self.sign_and_record(
            &profile,
            &issuer,
            subject,
            spki,
            validity_days,
            None,
            actor,
            idem,
        )
        .await
    }

    /// Issue a leaf certificate with a key pair generated in the HSM as session objects (never
    /// token objects) and handed out once: the contract key. Only leaf profiles: a CA or OCSP
    /// signer profile is refused before any key exists.
    pub async fn issue_leaf_with_generated_key(
        &self,
        subject: CheckedSubject,
        issuer_id: Option<&str>,
        validity_days: Option<u32>,
        actor: &str,
    ) -> Result<(Issued, ExportableKey), CaError> {
        let profile = self.leaf_profile(&subject.profile)?;
        let issuer = self.pick_issuer(&profile, issuer_id).await?;
        let alg = profile.key;
        let key = self
            .hsm_call(move |h| h.generate_exportable_keypair(alg))
            .await?;
        let spki = crate::x509::spki_owned(key.public.alg, &key.public.point)?;
        let issued = self
            .sign_and_record(
                &profile,
                &issuer,
                subject,
                spki,
                validity_days,
                None,
                actor,
                None,
            )
            .await?;
        Ok((issued, key))
    }

    /// Build, sign (HSM), verify and size-check a certificate, and the record and audit entry
    /// that go with it; nothing is stored yet.
    #[allow(clippy::too_many_arguments)]
    async fn build_record(
        &self,
        profile: &Profile,
        issuer: &IssuerHandle,
        subject: &CheckedSubject,
        spki: &SubjectPublicKeyInfoOwned,
        validity_days: Option<u32>,
        key_id: Option<&KeyRef>,
        actor: &str,
    ) -> Result<(ParsedCert, CertRecord, AuditEvent), CaError> {
        let built = build::build_certificate(
            self,
            profile,
            build::Signer::Issuer(issuer),
            &subject.name,
            &subject.sans,
            spki,
            validity_days,
        )
        .await?;
        let record = CertRecord {
            issuer_id: issuer.record.id.clone(),
            serial_hex: built.serial_hex(),
            profile: profile.name.clone(),
            subject: built.subject_string(),
            emaid: subject.emaid.clone(),
            evse_id: subject.evse_id.clone(),
            pcid: subject.pcid.clone(),
            not_before: built.not_before(),
            not_after: built.not_after(),
            status: CertStatus::Valid,
            revoked_at: None,
            revocation_reason: None,
            key_id: key_id.map(|k| hex::encode(&k.id)),
            tenant: subject.tenant.clone(),
            der: built.der.clone(),
            created_at: self.now(),
            issuer_generation: issuer.record.generation,
        };
        let event = AuditEvent::new(
            actor,
            "certificate.issue",
            &format!("{}/{}", record.issuer_id, record.serial_hex),
            serde_json::json!({
                "profile": record.profile,
                "subject": record.subject,
                "not_after": record.not_after,
                "sha256": hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&built.der)),
            }),
        );
        Ok((built, record, event))
    }

    /// Build, sign (HSM), verify, size-check and record. Retries on the (astronomically unlikely)
    /// duplicate serial, with a fresh serial.
    #[allow(clippy::too_many_arguments)]
    async fn sign_and_record(
        &self,
        profile: &Profile,
        issuer: &IssuerHandle,
        subject: CheckedSubject,
        spki: SubjectPublicKeyInfoOwned,
        validity_days: Option<u32>,
        key_id: Option<&KeyRef>,
        actor: &str,
        idem: Option<&crate::model::IdempotencyKey>,
    ) -> Result<Issued, CaError> {
        for attempt in 0..3 {
            let (built, record, event) = self
                .build_record(
                    profile,
                    issuer,
                    &subject,
                    &spki,
                    validity_days,
                    key_id,
                    actor,
                )
                .await?;
            match self
                .inner
                .store
                .record_issuance(&record, None, &event, idem)
                .await
            {
                Ok(_) => {
                    self.announce_issued(&record);
                    let chain = issuer.chain.to_vec();
                    return Ok(Issued {
                        record,
                        cert: built,
                        chain,
                    });
                }
                Err(StoreError::DuplicateSerial { .. }) if attempt < 2 => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(CaError::Internal(
            "could not find a free serial number".into(),
        ))
    }

    fn announce_issued(&self, record: &CertRecord) {
        tracing::info!(issuer = %record.issuer_id, serial = %record.serial_hex, profile = %record.profile, "certificate issued");
        for o in self.observers() {
            o.issued(&record.issuer_id, &record.serial_hex);
        }
    }

    /// Build and sign a contract certificate for a key pair generated in the HSM (session
    /// objects, handed out once), without recording it: provisioning first wraps the key and
    /// signs its answer, and only records ([`Ca::commit_provisioned`]) what it can deliver.
    /// Only leaf profiles.
    pub async fn prepare_leaf_with_generated_key(
        &self,
        subject: CheckedSubject,
        issuer_id: Option<&str>,
        validity_days: Option<u32>,
        actor: &str,
    ) -> Result<(Prepared, ExportableKey), CaError> {
        let profile = self.leaf_profile(&subject.profile)?;
        let issuer = self.pick_issuer(&profile, issuer_id).await?;
        let alg = profile.key;
        let key = self
            .hsm_call(move |h| h.generate_exportable_keypair(alg))
            .await?;
        let spki = crate::x509::spki_owned(key.public.alg, &key.public.point)?;
        let (cert, record, event) = self
            .build_record(
                &profile,
                &issuer,
                &subject,
                &spki,
                validity_days,
                None,
                actor,
            )
            .await?;
        let chain = issuer.chain.to_vec();
        Ok((
            Prepared {
                record,
                cert,
                chain,
                event,
            },
            key,
        ))
    }

    /// Record a prepared certificate with the request that produced it and its audit entry, in
    /// one transaction, then announce it (OCSP). A duplicate serial (2^-63) is refused; the
    /// caller's retry builds a new one. What the transaction revoked (the contract's
    /// certificates it supersedes with no grace period, a replaced pre-generated answer's) is
    /// published before this returns: every OCSP replica has applied it; the CRL is made when
    /// next asked for (`publish_revocation`). A failure there is logged, not returned: the
    /// certificate is recorded and must be delivered.
    /// Returns the certificates revoked.
    pub async fn commit_provisioned(
        &self,
        prepared: Prepared,
        link: &ProvisioningLink,
    ) -> Result<(Issued, Vec<SupersededNow>), CaError> {
        let mut event = prepared.event;
        event.events.extend(link.events.iter().cloned());
        if let Some(o) = event.details.as_object_mut() {
            o.insert("contract".into(), link.contract_id.clone().into());
            o.insert("provisioning".into(), link.kind.as_str().into());
            o.insert("schema".into(), link.schema_version.into());
            o.insert(
                "request_sha256".into(),
                hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&link.request)).into(),
            );
        }
        let revoked = self
            .inner
            .store
            .record_provisioning(&prepared.record, link, &event)
            .await?;
        self.announce_issued(&prepared.record);
        for r in &revoked {
            let notice = events::Revoked {
                issuer_id: r.issuer_id.clone(),
                serial_hex: r.serial_hex.clone(),
                epoch: r.epoch,
            };
            let reason = RevocationReason::Superseded;
            match self
                .publish_revocation(&notice, reason, Some(r.issuer_generation), None)
                .await
            {
                Ok(()) => {
                    tracing::info!(issuer = %r.issuer_id, serial = %r.serial_hex, reason = %reason, "revocation");
                }
                Err(e) => {
                    tracing::warn!(issuer = %r.issuer_id, serial = %r.serial_hex, error = %e, "a superseded certificate is revoked, but telling OCSP replicas failed");
                }
            }
        }
        Ok((
            Issued {
                record: prepared.record,
                cert: prepared.cert,
                chain: prepared.chain,
            },
            revoked,
        ))
    }

    /// Revocations this process made since it started, by reason (every reason, zeros too).
    pub fn revocation_counts(&self) -> Vec<(RevocationReason, u64)> {
        RevocationReason::ALL
            .iter()
            .zip(&self.inner.revocations)
            .map(|(r, n)| (*r, n.load(std::sync::atomic::Ordering::Relaxed)))
            .collect()
    }

    /// Calls of the token, failures and signing time by kind (`/metrics`).
    pub fn hsm_stats(&self) -> crate::stats::HsmSnapshot {
        self.inner.hsm.stats()
    }

    /// Revoke by issuer and serial; idempotent. The revocation, its audit entry and the OCSP
    /// epoch bump commit together; then every observer is told and awaited, so that once this
    /// returns no OCSP replica answers "good" for the certificate.
    pub async fn revoke(
        &self,
        issuer_id: &str,
        serial_hex: &str,
        reason: RevocationReason,
        actor: &str,
    ) -> Result<RevokeOutcome, CaError> {
        self.revoke_keyed(issuer_id, serial_hex, reason, actor, None)
            .await
    }

    /// [`Ca::revoke`], recording the call's idempotency key with the outcome in the revocation's
    /// transaction (see `Store::revoke`).
    pub async fn revoke_keyed(
        &self,
        issuer_id: &str,
        serial_hex: &str,
        reason: RevocationReason,
        actor: &str,
        idem: Option<&crate::model::IdempotencyKey>,
    ) -> Result<RevokeOutcome, CaError> {
        let serial = crate::x509::normalize_serial_hex(serial_hex).ok_or_else(|| {
            CaError::NotFound(format!(
                "'{}' is not a hex serial number",
                serial_hex.chars().take(64).collect::<String>()
            ))
        })?;
        let event = AuditEvent::revocation(actor, issuer_id, &serial, reason);
        let done = self
            .inner
            .store
            .revoke(issuer_id, &serial, reason, self.now(), &event, idem)
            .await?;
        if done.outcome == RevokeOutcome::NotFound {
            return Err(CaError::NotFound(format!(
                "no certificate with serial {serial} from issuer {issuer_id}"
            )));
        }
        // Also for a certificate revoked before (a client retrying after a timeout): the answer
        // comes only once the guarantee holds, for the epoch in force now.
        let epoch = match done.epoch {
            Some(e) => e,
            None => self.inner.store.ocsp_epoch().await?,
        };
        let notice = events::Revoked {
            issuer_id: issuer_id.to_string(),
            serial_hex: serial.clone(),
            epoch,
        };
        self.publish_revocation(&notice, reason, done.generation, Some(actor))
            .await?;
        tracing::info!(issuer = %issuer_id, serial = %serial, reason = %reason, outcome = ?done.outcome, "revocation");
        Ok(done.outcome)
    }

    /// What follows a committed revocation: every observer is told and awaited (OCSP replicas,
    /// `ocsp::freshness`), so that no replica answers "good" once this returns; then, for one
    /// this process revoked (`generation`: the issuer's key generation that signed it), the
    /// counter and, with `crl_by` (the actor it is issued as), the CRL. A failing observer is
    /// this call's error, once the CRL is made.
    ///
    /// Without `crl_by` the CRL is made when it is next asked for (`current_crl` notices that
    /// the stored one counts fewer revocations) or by the scheduler: what the provisioning path
    /// does, where supersessions come at the installation rate and a CRL made for each (every
    /// one listing every revoked certificate of the MO sub-CA, signed and stored) halved the
    /// installations per second.
    async fn publish_revocation(
        &self,
        notice: &events::Revoked,
        reason: RevocationReason,
        generation: Option<i64>,
        crl_by: Option<&str>,
    ) -> Result<(), CaError> {
        let mut failed = None;
        for o in self.observers() {
            if let Err(e) = o.revoked(notice).await {
                failed.get_or_insert(e);
            }
        }
        if let Some(generation) = generation {
            if let Some(n) = RevocationReason::ALL
                .iter()
                .position(|r| *r == reason)
                .and_then(|i| self.inner.revocations.get(i))
            {
                n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            // Publish the CRL at once, whatever the replicas did; a failure is logged, and the
            // next request or the scheduler regenerates it (a request notices a revocation newer
            // than the stored CRL). Coalesced: concurrent revocations under one key wait for
            // the CRL lock in turn, and one that finds a CRL made after its own revocation
            // committed (the stored CRL counts every revocation so far: counts only grow, there
            // is no hold release) has nothing to add: one CRL for many revocations instead of
            // one each, each listing every revoked certificate.
            if let Some(actor) = crl_by
                && let Err(e) = self.current_crl(&notice.issuer_id, generation, actor).await
            {
                tracing::warn!(issuer = %notice.issuer_id, error = %e, "CRL regeneration after revocation failed");
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Run a blocking token operation on the blocking pool.
    async fn hsm_call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Hsm) -> Result<T, HsmError> + Send + 'static,
    ) -> Result<T, CaError> {
        let hsm = self.inner.hsm.clone();
        tokio::task::spawn_blocking(move || f(&hsm))
            .await
            .map_err(CaError::internal)?
            .map_err(CaError::from)
    }
}
