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

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::hsm::{DEMO_SO_PIN, HsmConfig, PinSource, softhsm};

pub const SETTINGS_FILE: &str = "pnc-pki.toml";
pub const DEFAULT_PUBLIC_URL: &str = "http://127.0.0.1:8080";
pub const DEFAULT_TOKEN_LABEL: &str = "pnc-pki";
const DEMO_HIERARCHY: &str = include_str!("../policies/hierarchy-demo.toml");

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct HsmSettings {
    /// PKCS#11 module; absent = the embedded SoftHSM2 token under DATA_DIR/hsm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_label: Option<String>,
    /// File holding the user PIN (mode 0600). `PNC_HSM_PIN` wins when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_size: Option<usize>,
}

/// What `init` persists in DATA_DIR/pnc-pki.toml.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub public_url: String,
    pub database_url: String,
    #[serde(default)]
    pub hsm: HsmSettings,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies_dir: Option<PathBuf>,
    /// OCSP responder settings (see `crate::ocsp::settings`).
    #[serde(default, skip_serializing_if = "crate::ocsp::OcspSettings::is_default")]
    pub ocsp: crate::ocsp::OcspSettings,
}

/// A CA (or a service-held certificate) described in the hierarchy file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaSpec {
    pub id: String,
    pub profile: String,
    pub subject: String,
    /// Issuing CA id; absent for a self-signed root.
    #[serde(default)]
    pub parent: Option<String>,
    #[serde(default)]
    pub validity_days: Option<u32>,
}

/// The `--config` file of `init`.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct HierarchyConfig {
    #[serde(default)]
    pub public_url: Option<String>,
    #[serde(default)]
    pub database_url: Option<String>,
    #[serde(default)]
    pub hsm: Option<HsmSettings>,
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
    pub fn demo() -> HierarchyConfig {
        toml::from_str(DEMO_HIERARCHY).expect("built-in demo hierarchy parses")
    }

    pub fn load(path: &Path) -> Result<HierarchyConfig, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("config {}: {e}", path.display()))
    }
}

pub fn settings_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SETTINGS_FILE)
}

pub fn default_sqlite_url(data_dir: &Path) -> String {
    format!("sqlite://{}", data_dir.join("pnc-pki.db").display())
}

impl Settings {
    /// Settings of an initialised data dir, with environment overrides applied.
    pub fn load(data_dir: &Path) -> Result<Settings, String> {
        let p = settings_path(data_dir);
        let text = std::fs::read_to_string(&p).map_err(|e| {
            format!(
                "{} is not an initialised data dir ({}: {e}); run `pnc-pki init --data-dir {}` first",
                data_dir.display(),
                p.display(),
                data_dir.display()
            )
        })?;
        let mut s: Settings = toml::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))?;
        s.apply_env();
        Ok(s)
    }

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

    pub fn save(&self, data_dir: &Path) -> Result<(), String> {
        let text = toml::to_string_pretty(self).map_err(|e| e.to_string())?;
        let body = format!(
            "# pnc-pki settings written by `pnc-pki init`. Environment variables override them\n\
             # (PNC_DATABASE_URL, PNC_PUBLIC_URL, PNC_HSM_MODULE, PNC_HSM_TOKEN_LABEL, PNC_HSM_PIN).\n\
             # No PIN or secret is ever stored here.\n{text}"
        );
        std::fs::write(settings_path(data_dir), body).map_err(|e| e.to_string())
    }

    pub fn embedded_softhsm(&self) -> bool {
        self.hsm.module.is_none()
    }

    pub fn token_label(&self) -> String {
        self.hsm
            .token_label
            .clone()
            .unwrap_or_else(|| DEFAULT_TOKEN_LABEL.into())
    }

    pub fn pin_source(&self) -> PinSource {
        if std::env::var_os("PNC_HSM_PIN").is_some() {
            PinSource::Env("PNC_HSM_PIN".into())
        } else if let Some(f) = &self.hsm.pin_file {
            PinSource::File(f.clone())
        } else {
            PinSource::Demo
        }
    }

    /// Resolve the module path and PIN. For the embedded token this also points SoftHSM2 at
    /// DATA_DIR/hsm/softhsm2.conf (`SOFTHSM2_CONF` must be set before the module initialises,
    /// so `main` calls this before starting any thread).
    pub fn hsm_config(&self, data_dir: &Path) -> Result<HsmConfig, String> {
        let module = match &self.hsm.module {
            Some(m) => m.clone(),
            None => {
                let conf = softhsm::conf_path(data_dir);
                if conf.exists() {
                    set_softhsm_conf(&conf);
                }
                softhsm::find_module().ok_or(
                    "SoftHSM2 is not installed (apt-get install softhsm2) and no hsm.module is configured",
                )?
            }
        };
        let source = self.pin_source();
        if matches!(source, PinSource::Demo) {
            tracing::warn!(
                "PNC_HSM_PIN is not set and no hsm.pin_file is configured: using the documented demo PIN"
            );
        }
        Ok(HsmConfig {
            module,
            token_label: self.token_label(),
            pin: source.read()?,
            pool_size: self.hsm.pool_size.unwrap_or(4),
        })
    }
}

/// SO PIN for creating the embedded token.
pub fn so_pin() -> String {
    match std::env::var("PNC_HSM_SO_PIN") {
        Ok(v) if !v.is_empty() => v,
        _ => {
            tracing::warn!("PNC_HSM_SO_PIN is not set: using the documented demo SO PIN");
            DEMO_SO_PIN.to_string()
        }
    }
}

/// Point SoftHSM2 at our config. Only called from the main thread before any other thread
/// exists (the CLI resolves the HSM configuration before building the async runtime).
pub fn set_softhsm_conf(conf: &Path) {
    if std::env::var_os("SOFTHSM2_CONF").as_deref() == Some(conf.as_os_str()) {
        return;
    }
    // SAFETY: called during single-threaded start-up, before the tokio runtime or any other
    // thread is created, so no other thread can be reading the environment concurrently.
    unsafe { std::env::set_var("SOFTHSM2_CONF", conf) };
}
