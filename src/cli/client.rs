//! `pnc-pki client …`: register, list and disable HTTP API clients (OAuth2 client credentials).
//! Needs only the database, not the HSM.

use anyhow::{Result, anyhow};
use clap::Subcommand;

use super::DataDir;
use crate::api::auth::{self, Role};
use crate::ca::Actor;
use crate::config::Settings;
use crate::store::Store;

#[derive(Subcommand, Debug)]
pub enum ClientCmd {
    /// Register a client; prints its id and secret (the secret is shown only this once).
    Add {
        #[command(flatten)]
        dir: DataDir,
        #[arg(long)]
        name: String,
        #[arg(long, value_enum)]
        role: Role,
        /// Tenant prefix (repeatable): EVSE operator `DE*ABC` for cpo, EMAID provider `DE8AA` for
        /// mo, PCID WMI for oem.
        #[arg(long = "tenant")]
        tenants: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// List clients (never their secrets).
    List {
        #[command(flatten)]
        dir: DataDir,
        #[arg(long)]
        json: bool,
    },
    /// Disable a client: no new tokens for it.
    Disable {
        #[command(flatten)]
        dir: DataDir,
        #[arg(long)]
        client_id: String,
    },
}

pub fn run(cmd: ClientCmd) -> Result<i32> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let dir = match &cmd {
        ClientCmd::Add { dir, .. }
        | ClientCmd::List { dir, .. }
        | ClientCmd::Disable { dir, .. } => dir.data_dir.clone(),
    };
    let settings = Settings::load(&dir).map_err(|e| anyhow!(e))?;
    rt.block_on(async {
        let store = Store::connect(&settings.database_url).await?;
        match cmd {
            ClientCmd::Add {
                name,
                role,
                tenants,
                json,
                ..
            } => {
                let (rec, secret) =
                    auth::create_client(&store, &name, role, &tenants, &Actor::cli())
                        .await
                        .map_err(|e| anyhow!("{}: {}", e.code, e.detail))?;
                if json {
                    println!(
                        "{}",
                        serde_json::json!({
                            "client_id": rec.client_id,
                            "client_secret": secret,
                            "name": rec.name,
                            "role": rec.role,
                            "tenants": rec.tenants,
                        })
                    );
                } else {
                    println!("client_id:     {}", rec.client_id);
                    println!("client_secret: {secret}");
                    println!("(the secret is not stored and cannot be shown again)");
                }
                Ok(0)
            }
            ClientCmd::List { json, .. } => {
                let all = store.list_clients().await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&all)?);
                } else {
                    for c in all {
                        println!(
                            "{:<26} {:<6} {:<9} {:<30} {}",
                            c.client_id,
                            c.role,
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
            }
            ClientCmd::Disable { client_id, .. } => {
                if store.get_client(&client_id).await?.is_none() {
                    anyhow::bail!("no client {client_id}");
                }
                let changed = auth::disable_client(&store, &client_id, &Actor::cli())
                    .await
                    .map_err(|e| anyhow!("{}: {}", e.code, e.detail))?;
                println!(
                    "{client_id} {}",
                    if changed {
                        "disabled"
                    } else {
                        "was already disabled"
                    }
                );
                Ok(0)
            }
        }
    })
}
