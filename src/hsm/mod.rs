//! The only place that touches private keys: a PKCS#11 token reached through `cryptoki`.
//!
//! One `Pkcs11` context per process (initialised with OS locking), one long-lived "keeper"
//! session that holds the login for the whole application, and a small pool of worker sessions.
//! Sessions that die (token restarted, `CKR_SESSION_HANDLE_INVALID`, `CKR_DEVICE_ERROR`, …) are
//! dropped and reopened; the operation is retried once on a fresh session.
//!
//! Tokens differ in which mechanisms they offer (SoftHSM2 has no `CKM_ECDSA_SHA256`), so we always
//! hash in process and sign the digest with plain `CKM_ECDSA`, which every token supports.

pub mod softhsm;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as P11Error, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use zeroize::Zeroizing;

use crate::stats::{HsmOp, HsmSnapshot, HsmStats};

use crate::alg::{HashAlg, KeyAlg};

/// Failures talking to the token.
#[derive(Debug, thiserror::Error)]
pub enum HsmError {
    /// The module could not be loaded or initialised.
    #[error("cannot load PKCS#11 module {path}: {source}")]
    Module {
        /// Module path.
        path: String,
        /// What PKCS#11 said.
        source: P11Error,
    },
    /// The module file does not exist.
    #[error("PKCS#11 module {0} does not exist (set hsm.module in the configuration)")]
    ModuleMissing(String),
    /// No slot holds a token with the configured label.
    #[error("no token labelled '{0}' in any slot of the PKCS#11 module")]
    TokenNotFound(String),
    /// C_Login said CKR_PIN_INCORRECT.
    #[error("HSM login failed: the user PIN is incorrect")]
    PinIncorrect,
    /// C_Login said CKR_PIN_LOCKED.
    #[error("HSM login failed: the user PIN is locked")]
    PinLocked,
    /// No private key with that CKA_ID.
    #[error("no private key with id {0} on the token")]
    KeyNotFound(String),
    /// Any other PKCS#11 failure.
    #[error("PKCS#11 {op}: {source}")]
    Pkcs11 {
        /// The PKCS#11 function.
        op: &'static str,
        /// What it returned.
        source: P11Error,
    },
    /// The token returned something we cannot use.
    #[error("HSM returned a malformed value: {0}")]
    Malformed(String),
    /// The PIN could not be read from where the configuration says.
    #[error("{0}")]
    Pin(String),
}

fn p11(op: &'static str) -> impl FnOnce(P11Error) -> HsmError {
    move |source| HsmError::Pkcs11 { op, source }
}

/// Errors after which the session itself is suspect: drop it, open a new one and retry once.
fn session_is_dead(e: &HsmError) -> bool {
    matches!(
        e,
        HsmError::Pkcs11 {
            source: P11Error::Pkcs11(
                RvError::SessionHandleInvalid
                    | RvError::SessionClosed
                    | RvError::DeviceError
                    | RvError::DeviceRemoved
                    | RvError::TokenNotPresent
                    | RvError::UserNotLoggedIn
                    | RvError::ObjectHandleInvalid
                    | RvError::KeyHandleInvalid
                    | RvError::SlotIdInvalid
                    | RvError::CryptokiNotInitialized,
                _
            ),
            ..
        } | HsmError::TokenNotFound(_)
    )
}

/// Least time between two re-initialisations of the module: a token that stays away costs one
/// `C_Finalize`/`C_Initialize` a second, however many requests fail meanwhile.
const REINIT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Where the user PIN comes from. Never a command-line argument.
#[derive(Debug, Clone)]
pub enum PinSource {
    /// An environment variable (`PNC_HSM_PIN`).
    Env(String),
    /// A file (mode 0600); a trailing newline is ignored.
    File(PathBuf),
    /// Documented demo default, used only when nothing is configured.
    Demo,
}

/// The demo user PIN of the embedded SoftHSM2 token.
pub const DEMO_USER_PIN: &str = "1234";
/// The demo SO PIN of the embedded SoftHSM2 token.
pub const DEMO_SO_PIN: &str = "12345678";

impl PinSource {
    /// Read the PIN.
    pub fn read(&self) -> Result<Zeroizing<String>, HsmError> {
        match self {
            PinSource::Env(var) => std::env::var(var).map(Zeroizing::new).map_err(|_| {
                HsmError::Pin(format!("environment variable {var} (HSM PIN) is not set"))
            }),
            PinSource::File(p) => std::fs::read_to_string(p)
                .map(|s| Zeroizing::new(s.trim_end_matches(['\n', '\r']).to_string()))
                .map_err(|e| {
                    HsmError::Pin(format!("cannot read HSM PIN file {}: {e}", p.display()))
                }),
            PinSource::Demo => Ok(Zeroizing::new(DEMO_USER_PIN.to_string())),
        }
    }
}

/// How to reach the token.
#[derive(Clone)]
pub struct HsmConfig {
    /// PKCS#11 module path.
    pub module: PathBuf,
    /// Label of the token.
    pub token_label: String,
    /// User PIN.
    pub pin: Zeroizing<String>,
    /// Worker sessions kept open; more than the core count does not help.
    pub pool_size: usize,
}

impl std::fmt::Debug for HsmConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the PIN.
        f.debug_struct("HsmConfig")
            .field("module", &self.module)
            .field("token_label", &self.token_label)
            .field("pool_size", &self.pool_size)
            .finish()
    }
}

/// A key held in the token, found again by its CKA_ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRef {
    /// CKA_ID.
    pub id: Vec<u8>,
    /// Its algorithm.
    pub alg: KeyAlg,
}

/// Public data of a key pair: the algorithm and the public key as an SPKI's BIT STRING holds it.
#[derive(Debug, Clone)]
pub struct PublicKey {
    /// Its algorithm.
    pub alg: KeyAlg,
    /// EC: the uncompressed SEC1 point `04 || X || Y`; RSA: the DER `RSAPublicKey` (PKCS#1).
    pub point: Vec<u8>,
}

/// A key pair made to leave the service (a contract key): its public point and the private
/// scalar, which is wiped from memory when dropped.
pub struct ExportableKey {
    /// Public half.
    pub public: PublicKey,
    /// Private scalar, big-endian, left-padded to the field length.
    pub scalar: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for ExportableKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportableKey")
            .field("public", &self.public)
            .field("scalar", &"<redacted>")
            .finish()
    }
}

/// Attributes of a private key as the token reports them (for audits and tests).
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyAttributes {
    /// CKA_LABEL.
    pub label: String,
    /// CKA_ID, hex.
    pub id_hex: String,
    /// CKA_TOKEN: persistent.
    pub token: bool,
    /// CKA_PRIVATE: needs a login.
    pub private: bool,
    /// CKA_SENSITIVE: never revealed in plain.
    pub sensitive: bool,
    /// CKA_EXTRACTABLE: may be wrapped out.
    pub extractable: bool,
    /// CKA_ALWAYS_SENSITIVE.
    pub always_sensitive: bool,
    /// CKA_NEVER_EXTRACTABLE.
    pub never_extractable: bool,
}

/// A logged-in session with the private-key handles it has looked up. SoftHSM2 (and others)
/// re-read every object on C_FindObjects, which costs more than the signature itself, so handles
/// are cached per session; a stale handle surfaces as a dead-session error and the session (with
/// its cache) is replaced.
struct Pooled {
    session: Session,
    handles: std::collections::HashMap<Vec<u8>, ObjectHandle>,
    /// The module generation it was opened under (see `Hsm::reinitialize`).
    generation: u64,
}

impl Pooled {
    fn private_key(&mut self, id: &[u8]) -> Result<ObjectHandle, HsmError> {
        if let Some(h) = self.handles.get(id) {
            return Ok(*h);
        }
        let h = Hsm::find_private(&self.session, id)?;
        self.handles.insert(id.to_vec(), h);
        Ok(h)
    }
}

struct Inner {
    ctx: Pkcs11,
    /// The token's slot; found again by label after a re-initialisation.
    slot: Mutex<Slot>,
    token_label: String,
    pin: AuthPin,
    /// Bumped by every re-initialisation: sessions of an older generation are never reused.
    generation: std::sync::atomic::AtomicU64,
    /// When the module was last re-initialised (serialises and spaces out attempts).
    last_reinit: Mutex<Option<std::time::Instant>>,
    /// Every PKCS#11 call holds this for reading; a re-initialisation for writing, so that
    /// `C_Finalize` never runs while another thread is inside the module (undefined behaviour
    /// by the standard, a crash in SoftHSM2).
    calls: std::sync::RwLock<()>,
    /// Calls, failures and signing time by kind (`/metrics`): atomics, no lock.
    stats: HsmStats,
    /// Keeps the application logged in for the life of the process.
    keeper: Mutex<Option<Session>>,
    idle: Mutex<Vec<Pooled>>,
    pool_size: usize,
}

/// Handle to the token. Cheap to clone; all clones share the context and the pool.
#[derive(Clone)]
pub struct Hsm {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Hsm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hsm")
            .field("token", &self.inner.token_label)
            .finish()
    }
}

fn load_module(module: &Path) -> Result<Pkcs11, HsmError> {
    if !module.is_file() {
        return Err(HsmError::ModuleMissing(module.display().to_string()));
    }
    let err = |source| HsmError::Module {
        path: module.display().to_string(),
        source,
    };
    let ctx = Pkcs11::new(module).map_err(err)?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(P11Error::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => Ok(ctx),
        Err(e) => Err(err(e)),
    }
}

fn find_slot(ctx: &Pkcs11, label: &str) -> Result<Option<Slot>, HsmError> {
    for slot in ctx
        .get_slots_with_initialized_token()
        .map_err(p11("C_GetSlotList"))?
    {
        let info = ctx.get_token_info(slot).map_err(p11("C_GetTokenInfo"))?;
        if info.label().trim_end() == label {
            return Ok(Some(slot));
        }
    }
    Ok(None)
}

/// Pauses before the retries of [`generate_key_pair_retrying`].
const GENERATE_RETRY_PAUSES_MS: [u64; 3] = [50, 200, 500];

/// C_GenerateKeyPair with a bounded retry on CKR_GENERAL_ERROR / CKR_FUNCTION_FAILED /
/// CKR_TEMPLATE_INCONSISTENT: SoftHSM2 2.6.1 on OpenSSL 3 very occasionally fails an EC key
/// generation that succeeds when repeated with the very same templates (GENERAL_ERROR seen once
/// in ~2000 generations in our test runs, TEMPLATE_INCONSISTENT once while generating the API
/// token key at a first `serve`). Nothing usable is left by the failed call, and each attempt is
/// a separate, complete generation. A template a token really refuses fails every attempt and
/// its error is returned. The attempts are spaced (50, 200, 500 ms): once, under a loaded
/// machine, three immediate attempts at a `serve` start all failed with GENERAL_ERROR and the
/// same generation passed when run again; the pause is spent only on that error path.
fn generate_key_pair_retrying(
    s: &Session,
    alg: KeyAlg,
    public: &[Attribute],
    private: &[Attribute],
) -> Result<(ObjectHandle, ObjectHandle), HsmError> {
    let mechanism = if alg.is_rsa() {
        Mechanism::RsaPkcsKeyPairGen
    } else {
        Mechanism::EccKeyPairGen
    };
    let mut attempt = 0;
    loop {
        match s.generate_key_pair(&mechanism, public, private) {
            Ok(pair) => return Ok(pair),
            Err(P11Error::Pkcs11(
                rv @ (RvError::GeneralError
                | RvError::FunctionFailed
                | RvError::TemplateInconsistent),
                _,
            )) if attempt < GENERATE_RETRY_PAUSES_MS.len() => {
                tracing::warn!(attempt = attempt + 1, error = %rv, "C_GenerateKeyPair failed; retrying");
                std::thread::sleep(std::time::Duration::from_millis(
                    GENERATE_RETRY_PAUSES_MS[attempt],
                ));
                attempt += 1;
            }
            Err(e) => {
                return Err(HsmError::Pkcs11 {
                    op: "C_GenerateKeyPair",
                    source: e,
                });
            }
        }
    }
}

fn login(session: &Session, pin: &AuthPin) -> Result<(), HsmError> {
    match session.login(UserType::User, Some(pin)) {
        Ok(()) => Ok(()),
        // Login state belongs to the application, not the session: another session already did it.
        Err(P11Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
        Err(P11Error::Pkcs11(RvError::PinIncorrect, _)) => Err(HsmError::PinIncorrect),
        Err(P11Error::Pkcs11(RvError::PinLocked, _)) => Err(HsmError::PinLocked),
        Err(e) => Err(HsmError::Pkcs11 {
            op: "C_Login",
            source: e,
        }),
    }
}

impl Hsm {
    /// Load the module, find the token by label and log in.
    pub fn open(cfg: &HsmConfig) -> Result<Hsm, HsmError> {
        let ctx = load_module(&cfg.module)?;
        let slot = find_slot(&ctx, &cfg.token_label)?
            .ok_or_else(|| HsmError::TokenNotFound(cfg.token_label.clone()))?;
        let pin = AuthPin::from(cfg.pin.to_string());
        let keeper = ctx.open_rw_session(slot).map_err(p11("C_OpenSession"))?;
        login(&keeper, &pin)?;
        Ok(Hsm {
            inner: Arc::new(Inner {
                ctx,
                slot: Mutex::new(slot),
                token_label: cfg.token_label.clone(),
                pin,
                generation: std::sync::atomic::AtomicU64::new(0),
                last_reinit: Mutex::new(None),
                calls: std::sync::RwLock::new(()),
                stats: HsmStats::default(),
                keeper: Mutex::new(Some(keeper)),
                idle: Mutex::new(Vec::new()),
                pool_size: cfg.pool_size.max(1),
            }),
        })
    }

    /// Initialise a token in the first free slot (SoftHSM2 provisioning). Returns false when a token
    /// with that label already exists.
    pub fn init_token(
        module: &Path,
        label: &str,
        so_pin: &str,
        user_pin: &str,
    ) -> Result<bool, HsmError> {
        let ctx = load_module(module)?;
        if find_slot(&ctx, label)?.is_some() {
            return Ok(false);
        }
        let slots = ctx.get_slots_with_token().map_err(p11("C_GetSlotList"))?;
        let mut free = None;
        for s in slots {
            let info = ctx.get_token_info(s).map_err(p11("C_GetTokenInfo"))?;
            if !info.token_initialized() {
                free = Some(s);
                break;
            }
        }
        let slot = free.ok_or_else(|| HsmError::TokenNotFound("<free slot>".into()))?;
        let so = AuthPin::from(so_pin.to_string());
        ctx.init_token(slot, &so, label)
            .map_err(p11("C_InitToken"))?;
        // SoftHSM2 moves the new token to another slot id: find it again by label.
        let slot = find_slot(&ctx, label)?.ok_or_else(|| HsmError::TokenNotFound(label.into()))?;
        let s = ctx.open_rw_session(slot).map_err(p11("C_OpenSession"))?;
        s.login(UserType::So, Some(&so))
            .map_err(p11("C_Login(SO)"))?;
        s.init_pin(&AuthPin::from(user_pin.to_string()))
            .map_err(p11("C_InitPIN"))?;
        s.logout().map_err(p11("C_Logout"))?;
        Ok(true)
    }

    fn slot(&self) -> Slot {
        *self.inner.slot.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn generation(&self) -> u64 {
        self.inner
            .generation
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    fn open_session(&self) -> Result<Session, HsmError> {
        let s = self
            .inner
            .ctx
            .open_rw_session(self.slot())
            .map_err(p11("C_OpenSession"))?;
        login(&s, &self.inner.pin)?;
        Ok(s)
    }

    fn open_pooled(&self) -> Result<Pooled, HsmError> {
        let generation = self.generation();
        Ok(Pooled {
            session: self.open_session()?,
            handles: Default::default(),
            generation,
        })
    }

    /// `C_Finalize` and `C_Initialize` the module, find the token again by label and log in:
    /// what recovers a token that went away and came back (a removed and re-inserted device, a
    /// restarted network HSM, SoftHSM2's token directory moved away and back), where merely
    /// reopening sessions keeps seeing the token as it was when it vanished. At most once per
    /// [`REINIT_EVERY`]; concurrent callers wait for the one in progress. `Ok(false)`: not
    /// attempted (too soon after the last one).
    fn reinitialize(&self) -> Result<bool, HsmError> {
        let mut last = self
            .inner
            .last_reinit
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|t| t.elapsed() < REINIT_EVERY) {
            return Ok(false);
        }
        let t0 = std::time::Instant::now();
        *last = Some(t0);
        let r = self.reinitialize_now();
        self.inner
            .stats
            .record(HsmOp::Reinitialize, r.is_ok(), t0.elapsed());
        r.map(|()| true)
    }

    /// The re-initialisation itself (the caller holds `last_reinit`).
    fn reinitialize_now(&self) -> Result<(), HsmError> {
        let _alone = self.inner.calls.write().unwrap_or_else(|p| p.into_inner());
        // Sessions die with C_Finalize: none may be handed out again.
        self.inner
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.drop_idle_sessions();
        if let Ok(mut k) = self.inner.keeper.lock() {
            k.take();
        }
        let ctx = &self.inner.ctx;
        if let Err(e) = ctx.clone().finalize() {
            tracing::debug!(error = %e, "C_Finalize before re-initialising");
        }
        match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) | Err(P11Error::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => return Err(p11("C_Initialize")(e)),
        }
        let slot = find_slot(ctx, &self.inner.token_label)?
            .ok_or_else(|| HsmError::TokenNotFound(self.inner.token_label.clone()))?;
        *self.inner.slot.lock().unwrap_or_else(|p| p.into_inner()) = slot;
        let keeper = self.open_session()?;
        if let Ok(mut k) = self.inner.keeper.lock() {
            *k = Some(keeper);
        }
        tracing::warn!(token = %self.inner.token_label, "HSM module re-initialised; the token is back");
        Ok(())
    }

    /// Run `f` on a pooled session; on a dead-session error, reopen (re-login) and retry once.
    fn with_session<T>(
        &self,
        op: HsmOp,
        f: impl Fn(&Session) -> Result<T, HsmError>,
    ) -> Result<T, HsmError> {
        self.with_pooled(op, |p| f(&p.session))
    }

    /// [`Hsm::with_session`] with the pooled session itself (its cached key handles); every
    /// token call goes through here, so this is where calls of `op` are counted and timed
    /// (`/metrics`), retries and re-initialisation included.
    fn with_pooled<T>(
        &self,
        op: HsmOp,
        f: impl Fn(&mut Pooled) -> Result<T, HsmError>,
    ) -> Result<T, HsmError> {
        let t0 = std::time::Instant::now();
        let r = self.with_pooled_retrying(f);
        self.inner.stats.record(op, r.is_ok(), t0.elapsed());
        r
    }

    fn with_pooled_retrying<T>(
        &self,
        f: impl Fn(&mut Pooled) -> Result<T, HsmError>,
    ) -> Result<T, HsmError> {
        // Errors after which the token, not the request, is suspect. A missing key counts: a
        // token that went away answers every lookup with "no such object".
        let suspect = |e: &HsmError| session_is_dead(e) || matches!(e, HsmError::KeyNotFound(_));
        let calls = self.inner.calls.read().unwrap_or_else(|p| p.into_inner());
        let pooled = self.inner.idle.lock().map(|mut v| v.pop()).unwrap_or(None);
        if let Some(mut session) = pooled {
            match f(&mut session) {
                Ok(v) => {
                    self.give_back(session);
                    return Ok(v);
                }
                Err(e) if suspect(&e) => {
                    tracing::warn!(error = %e, "HSM session failed; reopening and retrying once");
                    drop(session);
                    self.drop_idle_sessions();
                    self.reconnect_keeper();
                }
                Err(e) => {
                    self.give_back(session);
                    return Err(e);
                }
            }
        }
        match self.run_fresh(&f) {
            Err(e) if suspect(&e) => {
                // A fresh session fails too (or none opens): the token itself went away, and
                // may be back. Re-initialise the module, then try a last time.
                drop(calls);
                match self.reinitialize() {
                    Ok(true) => {
                        let _calls = self.inner.calls.read().unwrap_or_else(|p| p.into_inner());
                        self.run_fresh(&f)
                    }
                    Ok(false) => Err(e),
                    Err(re) => {
                        tracing::warn!(error = %re, "HSM re-initialisation failed; the token is still away");
                        Err(e)
                    }
                }
            }
            other => other,
        }
    }

    /// Run `f` on a newly opened session, pooled afterwards.
    fn run_fresh<T>(&self, f: &impl Fn(&mut Pooled) -> Result<T, HsmError>) -> Result<T, HsmError> {
        let mut s = self.open_pooled()?;
        let out = f(&mut s)?;
        self.give_back(s);
        Ok(out)
    }

    fn give_back(&self, s: Pooled) {
        if s.generation != self.generation() {
            // Opened before a re-initialisation: its handle means nothing now.
            return;
        }
        if let Ok(mut idle) = self.inner.idle.lock()
            && idle.len() < self.inner.pool_size
        {
            idle.push(s);
        }
    }

    fn drop_idle_sessions(&self) {
        if let Ok(mut idle) = self.inner.idle.lock() {
            idle.clear();
        }
    }

    fn reconnect_keeper(&self) {
        if let Ok(mut k) = self.inner.keeper.lock() {
            let alive = k
                .as_ref()
                .map(|s| s.get_session_info().is_ok())
                .unwrap_or(false);
            if !alive {
                *k = self.open_session().ok();
            }
        }
    }

    /// Calls, failures and signing time by kind since the process started (`/metrics`).
    pub fn stats(&self) -> HsmSnapshot {
        self.inner.stats.snapshot()
    }

    /// Health probe: the keeper session answers and is logged in.
    pub fn check(&self) -> Result<(), HsmError> {
        self.with_session(HsmOp::Check, |s| {
            let info = s.get_session_info().map_err(p11("C_GetSessionInfo"))?;
            match info.session_state() {
                cryptoki::session::SessionState::RwUser
                | cryptoki::session::SessionState::RoUser => Ok(()),
                _ => Err(HsmError::Pkcs11 {
                    op: "C_GetSessionInfo",
                    source: P11Error::Pkcs11(
                        RvError::UserNotLoggedIn,
                        cryptoki::context::Function::GetSessionInfo,
                    ),
                }),
            }
        })
    }

    /// Close every session of this handle, which logs the application out of the token (what a
    /// token or proxy restart does). The next operation must reopen and log in again by itself.
    pub fn drop_sessions_for_test(&self) {
        let _calls = self.inner.calls.read().unwrap_or_else(|p| p.into_inner());
        self.drop_idle_sessions();
        if let Ok(mut k) = self.inner.keeper.lock()
            && let Some(s) = k.take()
        {
            let _ = s.close();
        }
    }

    fn find_private(s: &Session, id: &[u8]) -> Result<ObjectHandle, HsmError> {
        let found = s
            .find_objects(&[
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::Id(id.to_vec()),
            ])
            .map_err(p11("C_FindObjects"))?;
        found
            .into_iter()
            .next()
            .ok_or_else(|| HsmError::KeyNotFound(hex::encode(id)))
    }

    fn find_public(s: &Session, id: &[u8]) -> Result<ObjectHandle, HsmError> {
        let found = s
            .find_objects(&[
                Attribute::Class(ObjectClass::PUBLIC_KEY),
                Attribute::Id(id.to_vec()),
            ])
            .map_err(p11("C_FindObjects"))?;
        found
            .into_iter()
            .next()
            .ok_or_else(|| HsmError::KeyNotFound(hex::encode(id)))
    }

    /// A private key found by its label (CKA_ID and algorithm read from the token).
    pub fn find_key_by_label(&self, label: &str) -> Result<Option<(KeyRef, PublicKey)>, HsmError> {
        let found = self.with_session(HsmOp::Find, |s| {
            let privs = s
                .find_objects(&[
                    Attribute::Class(ObjectClass::PRIVATE_KEY),
                    Attribute::Label(label.as_bytes().to_vec()),
                ])
                .map_err(p11("C_FindObjects"))?;
            let Some(h) = privs.first().copied() else {
                return Ok(None);
            };
            let attrs = s
                .get_attributes(h, &[AttributeType::Id])
                .map_err(p11("C_GetAttributeValue"))?;
            let id = attrs
                .into_iter()
                .find_map(|a| match a {
                    Attribute::Id(id) => Some(id),
                    _ => None,
                })
                .ok_or_else(|| HsmError::Malformed(format!("key '{label}' has no CKA_ID")))?;
            let pubh = Self::find_public(s, &id)?;
            if let Some(bits) = rsa_modulus_bits(s, pubh)? {
                let alg = KeyAlg::from_rsa_bits(bits).ok_or_else(|| {
                    HsmError::Malformed(format!("key '{label}' is RSA {bits}, not 2048/3072/4096"))
                })?;
                let point = read_public_key(s, pubh, alg)?;
                return Ok(Some((KeyRef { id, alg }, PublicKey { alg, point })));
            }
            let params = s
                .get_attributes(pubh, &[AttributeType::EcParams])
                .map_err(p11("C_GetAttributeValue"))?;
            let oid = params
                .into_iter()
                .find_map(|a| match a {
                    Attribute::EcParams(p) => {
                        <der::asn1::ObjectIdentifier as der::Decode>::from_der(&p).ok()
                    }
                    _ => None,
                })
                .ok_or_else(|| HsmError::Malformed(format!("key '{label}' has no named curve")))?;
            let alg = KeyAlg::from_curve_oid(&oid).ok_or_else(|| {
                HsmError::Malformed(format!("key '{label}' is on unsupported curve {oid}"))
            })?;
            let point = read_ec_point(s, pubh)?;
            Ok(Some((KeyRef { id, alg }, PublicKey { alg, point })))
        })?;
        Ok(found)
    }

    /// Does a private key with this id exist on the token?
    pub fn has_key(&self, id: &[u8]) -> Result<bool, HsmError> {
        self.with_session(HsmOp::Find, |s| match Self::find_private(s, id) {
            Ok(_) => Ok(true),
            Err(HsmError::KeyNotFound(_)) => Ok(false),
            Err(e) => Err(e),
        })
    }

    /// Generate a persistent CA key inside the token: private, sensitive, never extractable.
    pub fn generate_ca_key(
        &self,
        alg: KeyAlg,
        label: &str,
    ) -> Result<(KeyRef, PublicKey), HsmError> {
        let mut id = vec![0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut id);
        let id2 = id.clone();
        let label = label.to_string();
        let point = self.with_session(HsmOp::Generate, move |s| {
            let mut public = vec![
                Attribute::Token(true),
                Attribute::Private(false),
                Attribute::Verify(true),
                Attribute::Label(label.as_bytes().to_vec()),
                Attribute::Id(id2.clone()),
            ];
            let key_type = match alg.rsa_bits() {
                Some(bits) => {
                    public.push(Attribute::KeyType(KeyType::RSA));
                    public.push(Attribute::ModulusBits(u64::from(bits).into()));
                    // F4, the exponent every TLS stack expects.
                    public.push(Attribute::PublicExponent(vec![0x01, 0x00, 0x01]));
                    KeyType::RSA
                }
                None => {
                    public.push(Attribute::KeyType(KeyType::EC));
                    public.push(Attribute::EcParams(alg.ec_params()));
                    KeyType::EC
                }
            };
            let private = vec![
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Sign(true),
                Attribute::KeyType(key_type),
                Attribute::Label(label.as_bytes().to_vec()),
                Attribute::Id(id2.clone()),
            ];
            let (pubh, _privh) = generate_key_pair_retrying(s, alg, &public, &private)?;
            read_public_key(s, pubh, alg)
        })?;
        Ok((KeyRef { id, alg }, PublicKey { alg, point }))
    }

    /// Public key of a token key, found by id.
    pub fn public_key(&self, key: &KeyRef) -> Result<PublicKey, HsmError> {
        let point = self.with_session(HsmOp::Find, |s| {
            let h = Self::find_public(s, &key.id)?;
            read_public_key(s, h, key.alg)
        })?;
        Ok(PublicKey {
            alg: key.alg,
            point,
        })
    }

    /// Sign `data`: hash in process with `hash`, sign with CKM_ECDSA, return raw `r || s`; for
    /// an RSA key, CKM_RSA_PKCS over the SHA-256 DigestInfo (PKCS#1 v1.5), the signature as is.
    /// Blocks on the token: call from a blocking thread.
    pub fn sign_raw(&self, key: &KeyRef, hash: HashAlg, data: &[u8]) -> Result<Vec<u8>, HsmError> {
        let digest = hash.digest(data);
        self.sign_digest_raw(key, &digest)
    }

    /// Sign a precomputed digest with CKM_ECDSA (raw `r || s`), or with CKM_RSA_PKCS over its
    /// DigestInfo for an RSA key (the digest must then be SHA-256, the only RSA hash we use).
    pub fn sign_digest_raw(&self, key: &KeyRef, digest: &[u8]) -> Result<Vec<u8>, HsmError> {
        if key.alg.is_rsa() {
            if digest.len() != HashAlg::Sha256.output_len() {
                return Err(HsmError::Malformed(format!(
                    "RSA signing takes a SHA-256 digest, got {} bytes",
                    digest.len()
                )));
            }
            let input = key.alg.signature_alg().token_input(digest);
            let sig = self.with_pooled(HsmOp::Sign, |p| {
                let h = p.private_key(&key.id)?;
                p.session
                    .sign(&Mechanism::RsaPkcs, h, &input)
                    .map_err(p11("C_Sign"))
            })?;
            if sig.len() != key.alg.field_len() {
                return Err(HsmError::Malformed(format!(
                    "RSA signature of {} bytes for {}",
                    sig.len(),
                    key.alg.name()
                )));
            }
            return Ok(sig);
        }
        let sig = self.with_pooled(HsmOp::Sign, |p| {
            let h = p.private_key(&key.id)?;
            p.session
                .sign(&Mechanism::Ecdsa, h, digest)
                .map_err(p11("C_Sign"))
        })?;
        if sig.len() != 2 * key.alg.field_len() {
            return Err(HsmError::Malformed(format!(
                "ECDSA signature of {} bytes for {}",
                sig.len(),
                key.alg.name()
            )));
        }
        Ok(sig)
    }

    /// Generate a key pair that must leave the service (a contract key): session objects only,
    /// never persisted on the token, destroyed before returning.
    pub fn generate_exportable_keypair(&self, alg: KeyAlg) -> Result<ExportableKey, HsmError> {
        if alg.is_rsa() {
            // Keys handed out are contract keys, which ISO 15118 makes EC keys.
            return Err(HsmError::Malformed(format!(
                "keys handed out are EC keys; {} is not offered",
                alg.name()
            )));
        }
        self.with_session(HsmOp::Generate, |s| {
            let public = vec![
                Attribute::Token(false),
                Attribute::KeyType(KeyType::EC),
                Attribute::EcParams(alg.ec_params()),
            ];
            let private = vec![
                Attribute::Token(false),
                Attribute::Private(true),
                Attribute::Sensitive(false),
                Attribute::Extractable(true),
                Attribute::Sign(true),
                Attribute::Derive(true),
                Attribute::KeyType(KeyType::EC),
            ];
            let (pubh, privh) = generate_key_pair_retrying(s, alg, &public, &private)?;
            let point = read_ec_point(s, pubh);
            let value = s
                .get_attributes(privh, &[AttributeType::Value])
                .map_err(p11("C_GetAttributeValue"));
            let _ = s.destroy_object(privh);
            let _ = s.destroy_object(pubh);
            let point = point?;
            let mut raw: Option<Zeroizing<Vec<u8>>> = None;
            for a in value? {
                if let Attribute::Value(v) = a {
                    raw = Some(Zeroizing::new(v));
                }
            }
            let raw =
                raw.ok_or_else(|| HsmError::Malformed("private key has no CKA_VALUE".into()))?;
            let len = alg.field_len();
            if raw.len() > len {
                return Err(HsmError::Malformed(format!(
                    "private scalar of {} bytes for {}",
                    raw.len(),
                    alg.name()
                )));
            }
            // Left-pad to the field length (tokens may strip leading zero bytes), into a buffer
            // allocated once at its final size so that no copy is left behind by a reallocation.
            let mut scalar = Zeroizing::new(vec![0u8; len]);
            scalar[len - raw.len()..].copy_from_slice(&raw);
            Ok(ExportableKey {
                public: PublicKey { alg, point },
                scalar,
            })
        })
    }

    /// Read the security attributes of the private key `id` straight from the token.
    pub fn key_attributes(&self, id: &[u8]) -> Result<KeyAttributes, HsmError> {
        self.with_session(HsmOp::Find, |s| {
            let h = Self::find_private(s, id)?;
            let attrs = s
                .get_attributes(
                    h,
                    &[
                        AttributeType::Label,
                        AttributeType::Token,
                        AttributeType::Private,
                        AttributeType::Sensitive,
                        AttributeType::Extractable,
                        AttributeType::AlwaysSensitive,
                        AttributeType::NeverExtractable,
                    ],
                )
                .map_err(p11("C_GetAttributeValue"))?;
            let mut out = KeyAttributes {
                label: String::new(),
                id_hex: hex::encode(id),
                token: false,
                private: false,
                sensitive: false,
                extractable: true,
                always_sensitive: false,
                never_extractable: false,
            };
            for a in attrs {
                match a {
                    Attribute::Label(l) => out.label = String::from_utf8_lossy(&l).into_owned(),
                    Attribute::Token(v) => out.token = v,
                    Attribute::Private(v) => out.private = v,
                    Attribute::Sensitive(v) => out.sensitive = v,
                    Attribute::Extractable(v) => out.extractable = v,
                    Attribute::AlwaysSensitive(v) => out.always_sensitive = v,
                    Attribute::NeverExtractable(v) => out.never_extractable = v,
                    _ => {}
                }
            }
            Ok(out)
        })
    }

    /// Number of objects on the token visible to the user (for `hsm doctor`).
    pub fn object_count(&self) -> Result<usize, HsmError> {
        self.with_session(HsmOp::Other, |s| {
            Ok(s.find_objects(&[]).map_err(p11("C_FindObjects"))?.len())
        })
    }

    /// The label of the token we are logged in to.
    pub fn token_label(&self) -> Result<String, HsmError> {
        let _calls = self.inner.calls.read().unwrap_or_else(|p| p.into_inner());
        let info = self
            .inner
            .ctx
            .get_token_info(self.slot())
            .map_err(p11("C_GetTokenInfo"))?;
        Ok(info.label().trim_end().to_string())
    }
}

/// The modulus length of a public key object if it is an RSA key (`None` for EC keys).
fn rsa_modulus_bits(s: &Session, h: ObjectHandle) -> Result<Option<u32>, HsmError> {
    let attrs = s
        .get_attributes(h, &[AttributeType::KeyType])
        .map_err(p11("C_GetAttributeValue"))?;
    let is_rsa = attrs
        .iter()
        .any(|a| matches!(a, Attribute::KeyType(k) if *k == KeyType::RSA));
    if !is_rsa {
        return Ok(None);
    }
    let attrs = s
        .get_attributes(h, &[AttributeType::Modulus])
        .map_err(p11("C_GetAttributeValue"))?;
    for a in attrs {
        if let Attribute::Modulus(m) = a {
            let m: Vec<u8> = m.into_iter().skip_while(|b| *b == 0).collect();
            let lead = m.first().copied().unwrap_or(0);
            let bits = (m.len() as u32).saturating_sub(1) * 8 + (8 - lead.leading_zeros());
            return Ok(Some(bits));
        }
    }
    Err(HsmError::Malformed(
        "RSA public key has no CKA_MODULUS".into(),
    ))
}

/// The public key as an SPKI's BIT STRING holds it: the EC point, or the DER `RSAPublicKey`
/// built from CKA_MODULUS and CKA_PUBLIC_EXPONENT.
fn read_public_key(s: &Session, h: ObjectHandle, alg: KeyAlg) -> Result<Vec<u8>, HsmError> {
    if !alg.is_rsa() {
        return read_ec_point(s, h);
    }
    let attrs = s
        .get_attributes(h, &[AttributeType::Modulus, AttributeType::PublicExponent])
        .map_err(p11("C_GetAttributeValue"))?;
    let (mut n, mut e) = (None, None);
    for a in attrs {
        match a {
            Attribute::Modulus(m) => n = Some(m),
            Attribute::PublicExponent(x) => e = Some(x),
            _ => {}
        }
    }
    let (Some(n), Some(e)) = (n, e) else {
        return Err(HsmError::Malformed(
            "RSA public key lacks its modulus or exponent".into(),
        ));
    };
    crate::x509::rsa_public_key_der(&n, &e).map_err(|x| HsmError::Malformed(x.to_string()))
}

/// CKA_EC_POINT comes back wrapped in a DER OCTET STRING (`04 41 04 …`); unwrap it.
fn read_ec_point(s: &Session, h: ObjectHandle) -> Result<Vec<u8>, HsmError> {
    let attrs = s
        .get_attributes(h, &[AttributeType::EcPoint])
        .map_err(p11("C_GetAttributeValue"))?;
    for a in attrs {
        if let Attribute::EcPoint(p) = a {
            return unwrap_point(&p);
        }
    }
    Err(HsmError::Malformed("public key has no CKA_EC_POINT".into()))
}

fn unwrap_point(p: &[u8]) -> Result<Vec<u8>, HsmError> {
    if p.first() == Some(&0x04) && p.len() % 2 == 1 {
        // Some tokens return the bare point.
        if let Ok(os) = <der::asn1::OctetString as der::Decode>::from_der(p) {
            let inner = os.as_bytes();
            if inner.first() == Some(&0x04) && inner.len() % 2 == 1 {
                return Ok(inner.to_vec());
            }
        }
        return Ok(p.to_vec());
    }
    let os = <der::asn1::OctetString as der::Decode>::from_der(p)
        .map_err(|e| HsmError::Malformed(format!("CKA_EC_POINT: {e}")))?;
    Ok(os.as_bytes().to_vec())
}
