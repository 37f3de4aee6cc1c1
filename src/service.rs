//! The composition root: opens the token, the store and the profiles from a data dir's settings,
//! builds the CA and the RA on one clock, and subscribes the observers the CA announces to (the
//! OCSP cache in `serve`, the cross-replica freshness protocol everywhere). Front ends get an
//! [`Service`] and talk to its [`Ra`]; nothing else here is theirs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::ca::bootstrap::Step;
use crate::ca::{Ca, CaConfig, CaError};
use crate::clock::{self, SharedClock};
use crate::config::{self, ConfigError, HierarchyConfig, Settings};
use crate::hsm::{Hsm, HsmConfig, HsmError, softhsm};
use crate::ocsp::Responder;
use crate::ocsp::freshness::Freshness;
use crate::policy::PolicyError;
use crate::policy::authz::Principal;
use crate::policy::profile::Profiles;
use crate::ra::{Ra, RaError};
use crate::store::{Store, StoreError, redact_url};

/// Why a deployment could not be opened or initialised.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Settings or the hierarchy file.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Profiles.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The token.
    #[error(transparent)]
    Hsm(#[from] HsmError),
    /// The database.
    #[error("database {url}: {source}")]
    Store {
        /// The URL, password hidden.
        url: String,
        /// What failed.
        source: StoreError,
    },
    /// Building the hierarchy, or starting the OCSP responder.
    #[error(transparent)]
    Ca(#[from] CaError),
    /// The RA refused or failed.
    #[error(transparent)]
    Ra(#[from] RaError),
    /// A file or directory of the data dir.
    #[error("{0}")]
    Io(String),
}

/// Settings and the token's configuration, resolved before the async runtime starts (SoftHSM2
/// reads its configuration file's location from the environment when it initialises).
pub struct Prepared {
    settings: Settings,
    hsm: HsmConfig,
}

impl Prepared {
    /// The settings in force.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }
}

/// Load an initialised data dir's settings and token configuration. Call before starting threads.
pub fn prepare(dir: &Path) -> Result<Prepared, ServiceError> {
    restrict_data_dir(dir);
    let settings = Settings::load(dir)?;
    let hsm = settings.hsm_config(dir)?;
    Ok(Prepared { settings, hsm })
}

/// What a process does with the deployment it opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A command: issues, revokes, exits.
    Command,
    /// `serve`: also runs the OCSP responder (cache, replica lease, pre-production).
    Serve,
}

/// An opened deployment.
pub struct Service {
    /// What front ends call.
    pub ra: Ra,
    ca: Ca,
    responder: Option<Responder>,
}

/// The data dir holds the database (argon2 hashes, the audit log), the settings and the
/// embedded token: only its owner may enter it (0700). An existing directory open to others
/// is tightened, with a log line saying so.
fn restrict_data_dir(dir: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let Ok(meta) = std::fs::metadata(dir) else {
            return;
        };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            match std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)) {
                Ok(()) => {
                    tracing::warn!(dir = %dir.display(), was = format!("{mode:o}"), "data directory was open to other users; now 0700")
                }
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "data directory is open to other users and cannot be restricted")
                }
            }
        }
    }
}

async fn connect(url: &str, clock: SharedClock) -> Result<Store, ServiceError> {
    let store = Store::connect(url, clock)
        .await
        .map_err(|source| ServiceError::Store {
            url: redact_url(url),
            source,
        })?;
    // Subjects stored before they were RFC 4514-escaped are re-rendered from their DER, once
    // (see `Store::rewrite_legacy_subjects`). Not fatal: an old row keeps its old text, which
    // only an exact subject comparison would miss.
    let render = |der: &[u8]| {
        crate::x509::ParsedCert::from_der(der)
            .ok()
            .map(|c| c.subject_string())
    };
    if let Err(e) = store.rewrite_legacy_subjects(&render).await {
        tracing::warn!(error = %e, "could not rewrite the stored subject names");
    }
    Ok(store)
}

fn profiles(settings: &Settings) -> Result<Profiles, ServiceError> {
    Ok(Profiles::load(settings.policies_dir.as_deref())?)
}

/// Open the token, the store and the profiles of `p` on the system clock.
pub async fn open(p: &Prepared, mode: Mode) -> Result<Service, ServiceError> {
    open_with_clock(p, mode, clock::system()).await
}

/// Open the token. `serve` waits for it (`PNC_HSM_START_WAIT`, default `30s`, retrying with a
/// growing pause up to 2 s) when it is not there yet or the module fails to start — replicas and
/// a network HSM starting at the same moment; a command fails at once. A wrong PIN is never
/// retried: each try would count towards locking the token.
async fn open_token(p: &Prepared, mode: Mode) -> Result<Hsm, ServiceError> {
    let wait = match (mode, std::env::var("PNC_HSM_START_WAIT")) {
        (Mode::Command, _) => std::time::Duration::ZERO,
        (Mode::Serve, Ok(v)) if !v.trim().is_empty() => crate::duration::parse_duration(&v)
            .map_err(|e| ConfigError(format!("PNC_HSM_START_WAIT: {e}")))?,
        (Mode::Serve, _) => std::time::Duration::from_secs(30),
    };
    let until = std::time::Instant::now() + wait;
    let mut pause = std::time::Duration::from_millis(200);
    loop {
        let cfg = p.hsm.clone();
        let r = tokio::task::spawn_blocking(move || Hsm::open(&cfg))
            .await
            .map_err(|e| ServiceError::Io(e.to_string()))?;
        match r {
            Ok(h) => return Ok(h),
            Err(
                e
                @ (HsmError::TokenNotFound(_) | HsmError::Module { .. } | HsmError::Pkcs11 { .. }),
            ) if std::time::Instant::now() + pause < until => {
                tracing::warn!(error = %e, retry_in_ms = pause.as_millis() as u64, "the token is not available yet; waiting (PNC_HSM_START_WAIT)");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(std::time::Duration::from_secs(2));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// [`open`] on a given clock (tests move time with a `ManualClock`).
pub async fn open_with_clock(
    p: &Prepared,
    mode: Mode,
    clock: SharedClock,
) -> Result<Service, ServiceError> {
    let hsm = open_token(p, mode).await?;
    let store = connect(&p.settings.database_url, clock.clone()).await?;
    let profiles = profiles(&p.settings)?;
    let ca = Ca::new(CaConfig {
        hsm,
        store: store.clone(),
        profiles: profiles.clone(),
        public_url: p.settings.public_url.clone(),
        crl_validity: config::crl_validity()?,
        clock: clock.clone(),
    });
    let responder = match mode {
        Mode::Serve => Some(
            Responder::new(
                ca.clone(),
                store.clone(),
                clock.clone(),
                p.settings.ocsp.clone(),
            )
            .start()
            .await?,
        ),
        Mode::Command => None,
    };
    // After the local responder (which `start` subscribed): a revocation wakes this process's
    // cache first, then waits for every replica's acknowledgement.
    ca.subscribe(Arc::new(Freshness::new(store.clone(), clock.clone())));
    let limits = config::limits::LimitSettings::from_env()?;
    let ra = Ra::new(store, profiles, clock, Some(ca.clone()), limits);
    Ok(Service { ra, ca, responder })
}

/// An RA over the database alone (listing, clients, the audit log): no token is opened, and
/// every signing operation is refused.
pub async fn open_store_only(dir: &Path) -> Result<Ra, ServiceError> {
    restrict_data_dir(dir);
    let settings = Settings::load(dir)?;
    let clock = clock::system();
    let store = connect(&settings.database_url, clock.clone()).await?;
    Ok(Ra::new(
        store,
        profiles(&settings)?,
        clock,
        None,
        config::limits::LimitSettings::from_env()?,
    ))
}

impl Service {
    /// The OCSP responder (`Mode::Serve` only).
    pub fn responder(&self) -> Option<&Responder> {
        self.responder.as_ref()
    }

    /// Start the CRL scheduler: every CA's CRL is refreshed before half its life.
    pub fn spawn_crl_scheduler(&self) {
        tokio::spawn(self.ca.clone().run_crl_scheduler());
    }

    /// Leave the replica set (graceful shutdown).
    pub async fn stop(&self) {
        if let Some(r) = &self.responder {
            r.stop().await;
        }
    }
}

/// What `init` did.
#[derive(Debug, Clone)]
pub struct InitReport {
    /// Whether the embedded token was created by this run.
    pub token_created: bool,
    /// Its label.
    pub token_label: String,
    /// Where the embedded token lives.
    pub token_dir: PathBuf,
    /// One line per CA, service certificate and OCSP signer.
    pub steps: Vec<Step>,
    /// Where the settings were written.
    pub settings_path: PathBuf,
    /// The public URL an existing data dir had, when this run changed it (to
    /// `settings.public_url`): CA certificates already signed keep the old one.
    pub public_url_changed: Option<(String, String)>,
}

/// What `init` is given.
#[derive(Debug, Clone, Default)]
pub struct InitOptions {
    /// Hierarchy file; default: the demo hierarchy.
    pub config: Option<PathBuf>,
    /// Public URL override.
    pub public_url: Option<String>,
    /// Database URL override.
    pub database_url: Option<String>,
}

/// `pnc-pki init`: settings, token (embedded SoftHSM2), schema, CAs, CPS leaf, OCSP signers.
/// Idempotent. Runs its own runtime after the single-threaded preparation SoftHSM2 needs.
pub fn init(
    dir: &Path,
    opts: &InitOptions,
    operator: &Principal,
) -> Result<InitReport, ServiceError> {
    let hierarchy = match &opts.config {
        Some(f) => HierarchyConfig::load(f)?,
        None => HierarchyConfig::demo()?,
    };
    std::fs::create_dir_all(dir)
        .map_err(|e| ServiceError::Io(format!("cannot create {}: {e}", dir.display())))?;
    restrict_data_dir(dir);
    let previous = Settings::load(dir).ok();
    let previous_url = previous.as_ref().map(|p| p.public_url.clone());
    let mut settings = previous.unwrap_or_else(|| Settings {
        public_url: config::DEFAULT_PUBLIC_URL.into(),
        database_url: config::default_sqlite_url(dir),
        hsm: Default::default(),
        policies_dir: None,
        ocsp: Default::default(),
    });
    if let Some(h) = &hierarchy.hsm {
        settings.hsm = h.clone();
    }
    if let Some(u) = &hierarchy.public_url {
        settings.public_url = u.clone();
    }
    if let Some(u) = &hierarchy.database_url {
        settings.database_url = u.clone();
    }
    if let Some(p) = &hierarchy.policies_dir {
        settings.policies_dir = Some(p.clone());
    }
    if let Some(u) = &opts.public_url {
        settings.public_url = u.clone();
    }
    if let Some(u) = &opts.database_url {
        settings.database_url = u.clone();
    }
    settings.apply_env();
    settings.warn_demo_pin();
    // Validate the profiles before touching the token.
    let all = profiles(&settings)?;
    for spec in hierarchy.ca.iter().chain(&hierarchy.service_cert) {
        all.get(&spec.profile)
            .map_err(|e| ServiceError::Config(ConfigError(format!("[[ca]] {}: {e}", spec.id))))?;
    }
    let mut token_created = false;
    if settings.embedded_softhsm() {
        let conf = softhsm::ensure_conf(dir)
            .map_err(|e| ServiceError::Io(format!("cannot write the SoftHSM2 config: {e}")))?;
        config::set_softhsm_conf(&conf);
        let module = softhsm::find_module().ok_or_else(|| {
            ConfigError("SoftHSM2 is not installed (apt-get install softhsm2) and no hsm.module is configured".into())
        })?;
        let user_pin = settings
            .pin_source()
            .read()
            .map_err(|e| ConfigError(e.to_string()))?;
        token_created = Hsm::init_token(
            &module,
            &settings.token_label(),
            &config::so_pin(),
            &user_pin,
        )?;
    }
    let hsm = settings.hsm_config(dir)?;
    let p = Prepared {
        settings: settings.clone(),
        hsm,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| ServiceError::Io(e.to_string()))?;
    let steps = rt.block_on(async {
        let svc = open(&p, Mode::Command).await?;
        Ok::<_, ServiceError>(svc.ra.init_hierarchy(operator, &hierarchy).await?)
    })?;
    settings.save(dir)?;
    Ok(InitReport {
        token_created,
        token_label: settings.token_label(),
        token_dir: dir.join("hsm"),
        steps,
        settings_path: config::settings_path(dir),
        public_url_changed: previous_url
            .filter(|old| *old != settings.public_url)
            .map(|old| (old, settings.public_url.clone())),
    })
}

/// The file under the data dir that `serve` holds a shared lock on (replicas of one data dir
/// may serve together) and `restore` takes exclusively: a restore can never move the database
/// aside under a running service, which would keep writing to the file moved aside.
const SERVE_LOCK: &str = "serve.lock";

/// A lock on a data dir, held until dropped (the kernel releases it when the process ends,
/// however it ends).
#[derive(Debug)]
pub struct DataDirLock {
    _file: Option<std::fs::File>,
}

fn open_lock_file(dir: &Path) -> Result<std::fs::File, ServiceError> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(SERVE_LOCK);
    std::fs::OpenOptions::new()
        .mode(0o600)
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| ServiceError::Io(format!("cannot open {}: {e}", path.display())))
}

/// The lock `serve` holds for its lifetime; refused while a `restore` runs. Records this
/// process id for `restore`'s message.
pub fn lock_for_serve(dir: &Path) -> Result<DataDirLock, ServiceError> {
    use std::io::Write;
    // A read-only data dir (settings and token mounted from elsewhere, PostgreSQL store) cannot
    // be restored into either: serve without the lock rather than not at all.
    let mut file = match open_lock_file(dir) {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(error = %e, "serving without the data-dir lock that keeps `restore` out");
            return Ok(DataDirLock { _file: None });
        }
    };
    match file.try_lock_shared() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(ServiceError::Io(format!(
                "a restore is running on {}; start serve when it has finished",
                dir.display()
            )));
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(ServiceError::Io(format!(
                "cannot lock {}: {e}",
                dir.join(SERVE_LOCK).display()
            )));
        }
    }
    // Best effort: only a message depends on it.
    let _ = file
        .set_len(0)
        .and_then(|()| write!(file, "{}", std::process::id()));
    Ok(DataDirLock { _file: Some(file) })
}

/// The exclusive lock `restore` holds: refused, naming the process, while `serve` runs on `dir`.
fn lock_for_restore(dir: &Path) -> Result<DataDirLock, ServiceError> {
    let file = open_lock_file(dir)?;
    match file.try_lock() {
        Ok(()) => Ok(DataDirLock { _file: Some(file) }),
        Err(std::fs::TryLockError::WouldBlock) => {
            let pid = std::fs::read_to_string(dir.join(SERVE_LOCK)).unwrap_or_default();
            let pid = pid.trim();
            let pid = if pid.is_empty() { "unknown" } else { pid };
            Err(ServiceError::Io(format!(
                "serve is running on {} (pid {pid}); stop it first: nothing was restored",
                dir.display()
            )))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(ServiceError::Io(format!(
            "cannot lock {}: {e}",
            dir.join(SERVE_LOCK).display()
        ))),
    }
}

/// What a restore did.
#[derive(Debug, Clone)]
pub struct Restored {
    /// The database file now in use.
    pub database: std::path::PathBuf,
    /// Where the database it replaced was moved (with its `-wal`/`-shm`), if there was one.
    pub previous: Option<std::path::PathBuf>,
    /// Audit entries in the restored database (its chain verified before it was put in place).
    pub audit_entries: i64,
}

/// Put the SQLite backup `from` (made by `pnc-pki backup`) in place of `dir`'s database. The
/// backup is copied, brought up to this version's schema and its audit chain verified first;
/// only then is the current database moved aside (never deleted) and the copy renamed into its
/// place, so a failed restore leaves everything as it was. Refused while `serve` runs on `dir`
/// (the SQLite store only: PostgreSQL is restored with `pg_restore`).
pub async fn restore_sqlite(dir: &Path, from: &Path) -> Result<Restored, ServiceError> {
    let settings = Settings::load(dir)?;
    let url = settings.database_url.clone();
    let Some(db) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .map(|p| std::path::PathBuf::from(p.split('?').next().unwrap_or(p)))
    else {
        return Err(ServiceError::Io(format!(
            "{} is not a SQLite database: restore PostgreSQL with pg_restore (docs/deployment.md)",
            redact_url(&url)
        )));
    };
    // Held until the restored database is in place: `serve` cannot start meanwhile.
    let _lock = lock_for_restore(dir)?;
    let io = |what: &str, e: std::io::Error| ServiceError::Io(format!("{what}: {e}"));
    if !from.is_file() {
        return Err(ServiceError::Io(format!(
            "{}: no such backup file",
            from.display()
        )));
    }
    let staging = db.with_extension("db.restoring");
    let _ = std::fs::remove_file(&staging);
    std::fs::copy(from, &staging).map_err(|e| io("copying the backup", e))?;
    let checked = async {
        let store = connect(&format!("sqlite://{}", staging.display()), clock::system()).await?;
        let report = store
            .audit_verify()
            .await
            .map_err(|source| ServiceError::Store {
                url: staging.display().to_string(),
                source,
            })?;
        store.close().await;
        if let Some((seq, why)) = report.broken_at {
            return Err(ServiceError::Io(format!(
                "the backup's audit chain is broken at entry {seq} ({why}): not restored"
            )));
        }
        Ok(report.entries)
    }
    .await;
    let entries = match checked {
        Ok(n) => n,
        Err(e) => {
            let _ = std::fs::remove_file(&staging);
            return Err(e);
        }
    };
    let previous = if db.exists() {
        let stamp = clock::system().now();
        let aside = db.with_extension(format!("db.before-restore-{stamp}"));
        std::fs::rename(&db, &aside).map_err(|e| io("moving the current database aside", e))?;
        for ext in ["-wal", "-shm"] {
            let side = std::path::PathBuf::from(format!("{}{ext}", db.display()));
            if side.exists() {
                let to = std::path::PathBuf::from(format!("{}{ext}", aside.display()));
                std::fs::rename(&side, &to).map_err(|e| io("moving the current WAL aside", e))?;
            }
        }
        Some(aside)
    } else {
        None
    };
    std::fs::rename(&staging, &db).map_err(|e| io("putting the backup in place", e))?;
    Ok(Restored {
        database: db,
        previous,
        audit_entries: entries,
    })
}
