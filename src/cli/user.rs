//! `pnc-pki user …`: people who sign in to the operator console at `/ui/` (not API clients).
//! Needs only the database, not the HSM.

use clap::Subcommand;

use super::{CliError, DataDir, print_json, with_store};
use crate::policy::authz::{Principal, Role};

/// `pnc-pki user …`.
#[derive(Subcommand, Debug)]
pub enum UserCmd {
    /// Add a console user; prints a one-time password (shown only this once, never stored).
    Add {
        /// Where the deployment lives.
        #[command(flatten)]
        dir: DataDir,
        /// Sign-in name: 1–64 letters, digits, `.`, `_`, `-` or `@`.
        #[arg(long)]
        name: String,
        /// admin, auditor, cpo or mo.
        #[arg(long)]
        role: Role,
        /// Tenant prefix (repeatable): EVSE operator `DE*ABC` for cpo, EMAID provider `DE8AA`
        /// for mo.
        #[arg(long = "tenant")]
        tenants: Vec<String>,
        /// Print JSON (`{"name", "password", "role", "tenants"}`).
        #[arg(long)]
        json: bool,
    },
    /// List console users (never their password hashes).
    List {
        /// Where the deployment lives.
        #[command(flatten)]
        dir: DataDir,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Disable a user and end its sessions.
    Disable {
        /// Where the deployment lives.
        #[command(flatten)]
        dir: DataDir,
        /// Its name.
        #[arg(long)]
        name: String,
    },
    /// Give a user a new one-time password and end its sessions.
    ResetPassword {
        /// Where the deployment lives.
        #[command(flatten)]
        dir: DataDir,
        /// Its name.
        #[arg(long)]
        name: String,
        /// Print JSON (`{"name", "password"}`).
        #[arg(long)]
        json: bool,
    },
}

/// Run a user command as `op`.
pub fn run(cmd: UserCmd, op: &Principal) -> Result<i32, CliError> {
    match cmd {
        UserCmd::Add {
            dir,
            name,
            role,
            tenants,
            json,
        } => with_store(&dir.data_dir, async |ra| {
            let (rec, password) = ra
                .create_user(op, &name, role, &tenants)
                .await
                .map_err(|e| CliError::Invalid(format!("{}: {e}", e.code())))?;
            if json {
                print_json(
                    &serde_json::json!({
                        "name": rec.name,
                        "password": password,
                        "role": rec.role,
                        "tenants": rec.tenants,
                    }),
                    false,
                )?;
            } else {
                println!("name:     {}", rec.name);
                println!("password: {password}");
                println!("(the password is not stored and cannot be shown again)");
            }
            Ok(0)
        }),
        UserCmd::List { dir, json } => with_store(&dir.data_dir, async |ra| {
            let all = ra.list_users(op).await?;
            if json {
                print_json(&all, true)?;
            } else {
                for u in all {
                    println!(
                        "{:<24} {:<8} {:<9} {}",
                        u.name,
                        u.role.as_str(),
                        if u.disabled_at.is_some() {
                            "disabled"
                        } else {
                            "active"
                        },
                        u.tenants.join(","),
                    );
                }
            }
            Ok(0)
        }),
        UserCmd::Disable { dir, name } => with_store(&dir.data_dir, async |ra| {
            let changed = ra.disable_user(op, &name).await?;
            println!(
                "{name} {}",
                if changed {
                    "disabled"
                } else {
                    "was already disabled"
                }
            );
            Ok(0)
        }),
        UserCmd::ResetPassword { dir, name, json } => with_store(&dir.data_dir, async |ra| {
            let password = ra.reset_user_password(op, &name).await?;
            if json {
                print_json(
                    &serde_json::json!({"name": name, "password": password}),
                    false,
                )?;
            } else {
                println!("password: {password}");
                println!("(the password is not stored and cannot be shown again)");
            }
            Ok(0)
        }),
    }
}
