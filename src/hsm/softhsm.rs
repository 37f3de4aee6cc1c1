//! The embedded SoftHSM2 default: a token directory and config under the data dir.

use std::path::{Path, PathBuf};

const TEMPLATE: &str = include_str!("../../hsm/softhsm2.conf.template");

/// Where Debian/Ubuntu and other distributions install the SoftHSM2 module.
const MODULE_CANDIDATES: &[&str] = &[
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
    "/usr/lib64/pkcs11/libsofthsm2.so",
    "/opt/homebrew/lib/softhsm/libsofthsm2.so",
];

/// The installed SoftHSM2 module, if any.
pub fn find_module() -> Option<PathBuf> {
    MODULE_CANDIDATES
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// Path of the embedded token's config file.
pub fn conf_path(data_dir: &Path) -> PathBuf {
    data_dir.join("hsm").join("softhsm2.conf")
}

/// Write `DIR/hsm/softhsm2.conf` (and the token directory) unless it exists already.
pub fn ensure_conf(data_dir: &Path) -> std::io::Result<PathBuf> {
    let tokens = data_dir.join("hsm").join("tokens");
    std::fs::create_dir_all(&tokens)?;
    let conf = conf_path(data_dir);
    if !conf.exists() {
        let tokens = std::fs::canonicalize(&tokens)?;
        let text = TEMPLATE.replace("@TOKENDIR@", &tokens.display().to_string());
        std::fs::write(&conf, text)?;
    }
    Ok(conf)
}
