//! `pnc-pki client …`: register, list and disable HTTP API clients (OAuth2 client credentials).
//! Needs only the database, not the HSM.

use clap::Subcommand;

use super::{CliError, DataDir, print_json, with_store};
use crate::policy::authz::{Principal, Role};

/// `pnc-pki client …`.
#[derive(Subcommand, Debug)]
pub enum ClientCmd {
    /// Register a client; prints its id and secret (the secret is shown only this once).
    Add {
        /// Where the deployment lives.
        #[command(flatten)]
        dir: DataDir,
        /// Human-readable name (default: the role and the first tenant, `csms ACME CSO`).
        #[arg(long)]
        name: Option<String>,
        /// cpo, mo, oem, cps, csms, admin or auditor.
        #[arg(long)]
        role: Role,
        /// Tenant prefix (repeatable): EVSE operator `DE*ABC` for cpo, EMAID provider `DE8AA` for
        /// mo, PCID WMI for oem; for csms the CSO's organization name (subject O), EVSE operator
        /// prefixes (with `*`) and its subjectAltName allow-list (`dns:NAME`, `dns:*.DOMAIN`,
        /// `ip:ADDRESS`).
        #[arg(long = "tenant")]
        tenants: Vec<String>,
        /// Client certificate (PEM) it may also authenticate with over mutual TLS: bound by its
        /// SHA-256 fingerprint, so only exactly this certificate works; it must allow clientAuth.
        #[arg(long = "cert", value_name = "FILE")]
        cert: Option<std::path::PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List clients (never their secrets).
    List {
        /// Where the deployment lives.
        #[command(flatten)]
        dir: DataDir,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Disable a client: no new tokens for it.
    Disable {
        /// Where the deployment lives.
        #[command(flatten)]
        dir: DataDir,
        /// Its id.
        #[arg(long)]
        client_id: String,
    },
}

/// Run a client command as `op`.
pub fn run(cmd: ClientCmd, op: &Principal) -> Result<i32, CliError> {
    match cmd {
        ClientCmd::Add {
            dir,
            name,
            role,
            tenants,
            cert,
            json,
        } => with_store(&dir.data_dir, async |ra| {
            let pem =
                match &cert {
                    Some(path) => Some(std::fs::read(path).map_err(|e| {
                        CliError::Invalid(format!("--cert {}: {e}", path.display()))
                    })?),
                    None => None,
                };
            let name = name.unwrap_or_else(|| match tenants.first() {
                Some(t) => format!("{role} {}", t.trim()),
                None => format!("{role} client"),
            });
            let (rec, secret) = ra
                .create_client(op, &name, role, &tenants, pem.as_deref())
                .await
                .map_err(|e| CliError::Invalid(format!("{}: {e}", e.code())))?;
            if json {
                print_json(
                    &serde_json::json!({
                        "client_id": rec.client_id,
                        "client_secret": secret,
                        "name": rec.name,
                        "role": rec.role,
                        "tenants": rec.tenants,
                        "cert_sha256": rec.cert_sha256,
                    }),
                    false,
                )?;
            } else {
                println!("client_id:     {}", rec.client_id);
                println!("client_secret: {secret}");
                if let Some(fp) = &rec.cert_sha256 {
                    println!("certificate:   sha256 {fp}");
                }
                println!("(the secret is not stored and cannot be shown again)");
            }
            Ok(0)
        }),
        ClientCmd::List { dir, json } => with_store(&dir.data_dir, async |ra| {
            let all = ra.list_clients(op).await?;
            if json {
                print_json(&all, true)?;
            } else {
                for c in all {
                    println!(
                        "{:<26} {:<7} {:<9} {:<30} {}",
                        c.client_id,
                        c.role.as_str(),
                        if c.disabled_at.is_some() {
                            "disabled"
                        } else {
                            "active"
                        },
                        c.tenants.join(","),
                        c.name
                    );
                }
            }
            Ok(0)
        }),
        ClientCmd::Disable { dir, client_id } => with_store(&dir.data_dir, async |ra| {
            let changed = ra.disable_client(op, &client_id).await?;
            println!(
                "{client_id} {}",
                if changed {
                    "disabled"
                } else {
                    "was already disabled"
                }
            );
            Ok(0)
        }),
    }
}
