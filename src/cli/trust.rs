//! `pnc-pki trust …`: the external roots the service trusts (OEM roots that provisioning
//! certificate chains end in, V2G and MO roots of other PKIs). Needs only the database.

use std::path::PathBuf;

use clap::Subcommand;

use super::{CliError, DataDir, print_json, with_store};
use crate::model::RootKind;
use crate::policy::authz::Principal;
use crate::x509::ParsedCert;

/// `pnc-pki trust …`.
#[derive(Subcommand, Debug)]
pub enum TrustCmd {
    /// Trust a root certificate (PEM or DER; the first certificate of a PEM file).
    Add {
        /// Where the deployment lives.
        #[command(flatten)]
        dir: DataDir,
        /// oem-root, v2g-root or mo-root.
        #[arg(long)]
        kind: RootKind,
        /// The certificate file.
        cert: PathBuf,
    },
    /// List the trusted external roots.
    List {
        /// Where the deployment lives.
        #[command(flatten)]
        dir: DataDir,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Stop trusting a root: by its SHA-256 (as `list` shows it) or by its certificate file.
    Remove {
        /// Where the deployment lives.
        #[command(flatten)]
        dir: DataDir,
        /// SHA-256 (hex) or certificate file.
        root: String,
    },
}

fn read_der(path: &std::path::Path) -> Result<Vec<u8>, CliError> {
    let bytes =
        std::fs::read(path).map_err(|e| CliError::Invalid(format!("{}: {e}", path.display())))?;
    let cert = if bytes.starts_with(b"-----") {
        ParsedCert::from_pem(&bytes)
    } else {
        ParsedCert::from_der(&bytes)
    }
    .map_err(|e| CliError::Invalid(format!("{}: {e}", path.display())))?;
    Ok(cert.der)
}

/// Run a trust command as `op`.
pub fn run(cmd: TrustCmd, op: &Principal) -> Result<i32, CliError> {
    match cmd {
        TrustCmd::Add { dir, kind, cert } => {
            let der = read_der(&cert)?;
            with_store(&dir.data_dir, async |ra| {
                let r = ra
                    .trust_root(op, kind, &der)
                    .await
                    .map_err(|e| CliError::Invalid(format!("{}: {e}", e.code())))?;
                println!("trusted {} {} ({})", r.kind.as_str(), r.id, r.subject);
                Ok(0)
            })
        }
        TrustCmd::List { dir, json } => with_store(&dir.data_dir, async |ra| {
            let all = ra.trusted_roots().await?;
            if json {
                print_json(&all, true)?;
            } else {
                for r in all {
                    println!("{} {:<9} {}", r.id, r.kind.as_str(), r.subject);
                }
            }
            Ok(0)
        }),
        TrustCmd::Remove { dir, root } => {
            let id = if std::path::Path::new(&root).is_file() {
                let der = read_der(std::path::Path::new(&root))?;
                hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&der))
            } else {
                root
            };
            with_store(&dir.data_dir, async |ra| {
                ra.distrust_root(op, &id).await?;
                println!("removed {id}");
                Ok(0)
            })
        }
    }
}
