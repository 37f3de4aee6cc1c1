//! Configuration: the hierarchy file given to `init`, and the settings `init` leaves in
//! `DATA_DIR/pnc-pki.toml` for every later command. Environment variables override both.
//!
//! | variable              | meaning                                               |
//! |-----------------------|-------------------------------------------------------|
//! | `PNC_DATABASE_URL`    | `sqlite://…` or `postgres://…`                        |
//! | `PNC_PUBLIC_URL`      | base of the OCSP/CRL URLs written into certificates   |
//! | `PNC_HSM_MODULE`      | PKCS#11 module path                                   |
//! | `PNC_HSM_TOKEN_LABEL` | token label                                           |
//! | `PNC_HSM_PIN`         | user PIN (or `hsm.pin_file` in the settings)          |
//! | `PNC_HSM_SO_PIN`      | SO PIN, only used to create an embedded SoftHSM token |
//! | `PNC_POLICIES_DIR`    | directory of profile files replacing the built-in set |
//! | `PNC_CRL_VALIDITY`    | CRL nextUpdate − thisUpdate, e.g. `1d` (default `1d`) |

pub mod limits;
pub mod ocsp;

use std::path::{Path, PathBuf};

pub use ocsp::{OcspSettings, SignWith};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::hsm::{DEMO_SO_PIN, HsmConfig, PinSource, softhsm};

/// Name of the settings file `init` writes into the data dir.
pub const SETTINGS_FILE: &str = "pnc-pki.toml";
/// Public URL when none is configured.
pub const DEFAULT_PUBLIC_URL: &str = "http://127.0.0.1:8080";
/// Token label when none is configured.
pub const DEFAULT_TOKEN_LABEL: &str = "pnc-pki";
const DEMO_HIERARCHY: &str = include_str!("../../policies/hierarchy-demo.toml");

/// A configuration that cannot be read or used.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// The `[hsm]` section.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct HsmSettings {
    /// PKCS#11 module; absent = the embedded SoftHSM2 token under DATA_DIR/hsm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<PathBuf>,
    /// Token label (default `pnc-pki`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_label: Option<String>,
    /// File holding the user PIN (mode 0600). `PNC_HSM_PIN` wins when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin_file: Option<PathBuf>,
    /// Worker sessions kept open (default 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_size: Option<usize>,
}

/// What `init` persists in DATA_DIR/pnc-pki.toml.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Base URL written into certificates.
    pub public_url: String,
    /// `sqlite://…` or `postgres://…`.
    pub database_url: String,
    /// The token.
    #[serde(default)]
    pub hsm: HsmSettings,
    /// Profile files replacing the built-in set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies_dir: Option<PathBuf>,
    /// OCSP responder settings (see [`ocsp`]).
    #[serde(default, skip_serializing_if = "OcspSettings::is_default")]
    pub ocsp: OcspSettings,
}

/// A CA (or a service-held certificate) described in the hierarchy file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaSpec {
    /// Identifier (paths, CRL names, exports).
    pub id: String,
    /// Profile name.
    pub profile: String,
    /// Subject DN as text.
    pub subject: String,
    /// Issuing CA id; absent for a self-signed root.
    #[serde(default)]
    pub parent: Option<String>,
    /// Validity, days (default: the profile's).
    #[serde(default)]
    pub validity_days: Option<u32>,
}

/// The `--config` file of `init`.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct HierarchyConfig {
    /// Public URL to record in the settings.
    #[serde(default)]
    pub public_url: Option<String>,
    /// Database URL to record in the settings.
    #[serde(default)]
    pub database_url: Option<String>,
    /// Token settings to record.
    #[serde(default)]
    pub hsm: Option<HsmSettings>,
    /// Profile directory to record.
    #[serde(default)]
    pub policies_dir: Option<PathBuf>,
    /// CAs in creation order (parents before children).
    #[serde(default)]
    pub ca: Vec<CaSpec>,
    /// Certificates whose keys the service itself holds (the CPS leaf).
    #[serde(default)]
    pub service_cert: Vec<CaSpec>,
    /// Issue a delegated OCSP signer for every CA.
    #[serde(default = "yes")]
    pub ocsp_signers: bool,
}

fn yes() -> bool {
    true
}

impl HierarchyConfig {
    /// The built-in ISO 15118-2 and -20 demo hierarchy (`policies/hierarchy-demo.toml`).
    pub fn demo() -> Result<HierarchyConfig, ConfigError> {
        toml::from_str(DEMO_HIERARCHY)
            .map_err(|e| ConfigError(format!("built-in demo hierarchy: {e}")))
    }

    /// A hierarchy file.
    pub fn load(path: &Path) -> Result<HierarchyConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read config {}: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| ConfigError(format!("config {}: {e}", path.display())))
    }
}

/// `DATA_DIR/pnc-pki.toml`.
pub fn settings_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SETTINGS_FILE)
}

/// The embedded SQLite database of a data dir.
pub fn default_sqlite_url(data_dir: &Path) -> String {
    format!("sqlite://{}", data_dir.join("pnc-pki.db").display())
}

impl Settings {
    /// Settings of an initialised data dir, with environment overrides applied.
    pub fn load(data_dir: &Path) -> Result<Settings, ConfigError> {
        let p = settings_path(data_dir);
        let text = std::fs::read_to_string(&p).map_err(|e| {
            ConfigError(format!(
                "{} is not an initialised data dir ({}: {e}); run `pnc-pki init --data-dir {}` first",
                data_dir.display(),
                p.display(),
                data_dir.display()
            ))
        })?;
        let mut s: Settings =
            toml::from_str(&text).map_err(|e| ConfigError(format!("{}: {e}", p.display())))?;
        s.apply_env();
        Ok(s)
    }

    /// Apply `PNC_DATABASE_URL`, `PNC_PUBLIC_URL`, `PNC_HSM_MODULE`, `PNC_HSM_TOKEN_LABEL`.
    pub fn apply_env(&mut self) {
        if let Ok(v) = std::env::var("PNC_DATABASE_URL")
            && !v.is_empty()
        {
            self.database_url = v;
        }
        if let Ok(v) = std::env::var("PNC_PUBLIC_URL")
            && !v.is_empty()
        {
            self.public_url = v;
        }
        if let Ok(v) = std::env::var("PNC_HSM_MODULE")
            && !v.is_empty()
        {
            self.hsm.module = Some(PathBuf::from(v));
        }
        if let Ok(v) = std::env::var("PNC_HSM_TOKEN_LABEL")
            && !v.is_empty()
        {
            self.hsm.token_label = Some(v);
        }
    }

    /// Write the settings file (never a PIN).
    pub fn save(&self, data_dir: &Path) -> Result<(), ConfigError> {
        let text = toml::to_string_pretty(self).map_err(|e| ConfigError(e.to_string()))?;
        let body = format!(
            "# pnc-pki settings written by `pnc-pki init`. Environment variables override them\n\
             # (PNC_DATABASE_URL, PNC_PUBLIC_URL, PNC_HSM_MODULE, PNC_HSM_TOKEN_LABEL, PNC_HSM_PIN).\n\
             # No PIN or secret is ever stored here.\n{text}"
        );
        std::fs::write(settings_path(data_dir), body).map_err(|e| ConfigError(e.to_string()))
    }

    /// Whether the token is the embedded SoftHSM2 one under the data dir.
    pub fn embedded_softhsm(&self) -> bool {
        self.hsm.module.is_none()
    }

    /// The token label in force.
    pub fn token_label(&self) -> String {
        self.hsm
            .token_label
            .clone()
            .unwrap_or_else(|| DEFAULT_TOKEN_LABEL.into())
    }

    /// Where the user PIN comes from.
    pub fn pin_source(&self) -> PinSource {
        if std::env::var_os("PNC_HSM_PIN").is_some() {
            PinSource::Env("PNC_HSM_PIN".into())
        } else if let Some(f) = &self.hsm.pin_file {
            PinSource::File(f.clone())
        } else {
            PinSource::Demo
        }
    }

    /// Warn when the token is opened with the documented demo PIN. Said once, by `init` and
    /// `serve` (where a deployment is made and run), not by every command.
    pub fn warn_demo_pin(&self) {
        if matches!(self.pin_source(), PinSource::Demo) {
            tracing::warn!(
                "PNC_HSM_PIN is not set and no hsm.pin_file is configured: using the documented demo PIN"
            );
        }
    }

    /// Resolve the module path and PIN. For the embedded token this also points SoftHSM2 at
    /// DATA_DIR/hsm/softhsm2.conf (`SOFTHSM2_CONF` must be set before the module initialises,
    /// so `main` calls this before starting any thread).
    pub fn hsm_config(&self, data_dir: &Path) -> Result<HsmConfig, ConfigError> {
        let module = match &self.hsm.module {
            Some(m) => m.clone(),
            None => {
                let conf = softhsm::conf_path(data_dir);
                if conf.exists() {
                    set_softhsm_conf(&conf);
                }
                softhsm::find_module().ok_or_else(|| ConfigError(
                    "SoftHSM2 is not installed (apt-get install softhsm2) and no hsm.module is configured".into(),
                ))?
            }
        };
        let source = self.pin_source();
        Ok(HsmConfig {
            module,
            token_label: self.token_label(),
            pin: source.read().map_err(|e| ConfigError(e.to_string()))?,
            pool_size: self.hsm.pool_size.unwrap_or(4),
        })
    }
}

/// SO PIN for creating the embedded token.
pub fn so_pin() -> Zeroizing<String> {
    match std::env::var("PNC_HSM_SO_PIN") {
        Ok(v) if !v.is_empty() => Zeroizing::new(v),
        _ => {
            tracing::warn!("PNC_HSM_SO_PIN is not set: using the documented demo SO PIN");
            Zeroizing::new(DEMO_SO_PIN.to_string())
        }
    }
}

/// `PNC_CRL_VALIDITY` in seconds: a duration with a unit (`1d`, `12h`), at least `60s`; default
/// one day. It took bare seconds before; those are refused now with a message naming the unit,
/// as every duration of the crate (`crate::duration`).
pub fn crl_validity() -> Result<i64, ConfigError> {
    match std::env::var("PNC_CRL_VALIDITY") {
        Ok(v) if !v.trim().is_empty() => {
            let d = crate::duration::parse_duration(&v)
                .map_err(|e| ConfigError(format!("PNC_CRL_VALIDITY: {e}")))?;
            match i64::try_from(d.as_secs()) {
                Ok(n) if n >= 60 => Ok(n),
                _ => Err(ConfigError(format!(
                    "PNC_CRL_VALIDITY='{v}' must be at least 60s"
                ))),
            }
        }
        _ => Ok(86_400),
    }
}

/// Point SoftHSM2 at our config. Only called from the main thread before any other thread
/// exists (the CLI resolves the HSM configuration before building the async runtime).
// The one `unsafe` of the crate: SoftHSM2 reads its configuration from the environment at
// C_Initialize, and `set_var` is unsafe because another thread could read the environment at
// the same time. None exists yet when this runs (see SAFETY below).
#[allow(unsafe_code)]
pub fn set_softhsm_conf(conf: &Path) {
    if std::env::var_os("SOFTHSM2_CONF").as_deref() == Some(conf.as_os_str()) {
        return;
    }
    // SAFETY: called during single-threaded start-up, before the tokio runtime or any other
    // thread is created, so no other thread can be reading the environment concurrently.
    unsafe { std::env::set_var("SOFTHSM2_CONF", conf) };
}
