//! Command-line front end. Every failure is one line on stderr with its cause and a non-zero exit.
//!
//! The CLI acts as the local operator ([`Principal::local_operator`]): whoever holds the data dir
//! and the HSM PIN. It opens the deployment through `crate::service` and asks the RA for
//! everything; the token and the database are never touched here.

pub mod client;
pub mod compromise;
pub mod ev;
pub mod exi;
mod show;
mod tree;
pub mod trust;
pub mod user;

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use zeroize::Zeroizing;

use crate::config;
use crate::model::{AuditFilter, CertFilter, Issued, RevokeOutcome, StatusFilter, rfc3339};
use crate::policy::authz::Principal;
use crate::policy::profile::Profiles;
use crate::ra::{Ra, RaError};
use crate::service::{self, InitOptions, Mode, ServiceError};
use crate::x509::to_pem;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The deployment could not be opened or initialised.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// The RA refused or failed.
    #[error(transparent)]
    Ra(#[from] RaError),
    /// `serve` could not start or stopped with an error.
    #[error(transparent)]
    Serve(#[from] crate::api::ServeError),
    /// A file could not be read or written.
    #[error("{what} {path}: {source}")]
    File {
        /// `cannot read`, `cannot write`, …
        what: &'static str,
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Arguments or input that cannot be used.
    #[error("{0}")]
    Invalid(String),
    /// Writing to stdout failed.
    #[error("stdout: {0}")]
    Stdout(std::io::Error),
}

impl CliError {
    fn read(path: &Path) -> impl FnOnce(std::io::Error) -> CliError + '_ {
        move |source| CliError::File {
            what: "cannot read",
            path: path.display().to_string(),
            source,
        }
    }

    fn write(path: &Path) -> impl FnOnce(std::io::Error) -> CliError + '_ {
        move |source| CliError::File {
            what: "cannot write",
            path: path.display().to_string(),
            source,
        }
    }

    pub(crate) fn stdout(e: std::io::Error) -> CliError {
        CliError::Stdout(e)
    }
}

fn invalid(e: impl std::fmt::Display) -> CliError {
    CliError::Invalid(e.to_string())
}

/// `pnc-pki`.
#[derive(Parser, Debug)]
#[command(
    name = "pnc-pki",
    version,
    about = "Plug & Charge (ISO 15118) PKI and certificate authority"
)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// `--data-dir`.
#[derive(clap::Args, Debug, Clone)]
pub struct DataDir {
    /// Data directory created by `init` (settings, SQLite database, embedded SoftHSM2 token).
    #[arg(long, env = "PNC_DATA_DIR", default_value = "./var")]
    pub data_dir: PathBuf,
}

/// The commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create the token, database and PKI hierarchy (idempotent).
    Init {
        /// Where the deployment lives.
        #[command(flatten)]
        dir: DataDir,
        /// Hierarchy file (TOML); default: the ISO 15118-2 and -20 demo hierarchy.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Base URL written into certificates (OCSP at {url}/ocsp).
        #[arg(long)]
        public_url: Option<String>,
        /// sqlite://FILE or postgres://… (default: sqlite under the data dir).
        #[arg(long, env = "PNC_DATABASE_URL")]
        database_url: Option<String>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run the HTTP service.
    Serve {
        /// Where the deployment lives.
        #[command(flatten)]
        dir: DataDir,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
    },
    /// Issue a leaf certificate from a CSR (or with a key generated in the HSM).
    Issue {
        /// Where the deployment lives.
        #[command(flatten)]
        dir: DataDir,
        /// Leaf profile.
        #[arg(long)]
        profile: String,
        /// PKCS#10 request (PEM, base64 or DER).
        #[arg(long, conflicts_with = "subject")]
        csr: Option<PathBuf>,
        /// Subject for a service-generated key, e.g. "O=Example MO, CN=DE8AAA1B2C3D4EV".
        #[arg(long, requires = "key_out")]
        subject: Option<String>,
        /// Where to write the generated private key (PKCS#8 PEM, mode 0600).
        #[arg(long)]
        key_out: Option<PathBuf>,
        /// Issuing CA id (needed only when several CAs could issue the profile).
        #[arg(long)]
        issuer: Option<String>,
        /// Validity, days (default: the profile's).
        #[arg(long)]
        days: Option<u32>,
        /// Output: the certificate as PEM.
        #[arg(long)]
        out: PathBuf,
        /// Also write the chain (issuer first, root excluded) after the certificate.
        #[arg(long)]
        chain: bool,
    },
    /// Create a CA key in the token and write a CSR for it, to be signed by an external root.
    Csr {
        /// Where the deployment lives.
        #[command(flatten)]
        dir: DataDir,
        /// CA id (as used by the API, CRL paths and export).
        #[arg(long)]
        id: String,
        /// CA profile.
        #[arg(long)]
        profile: String,
        /// Subject DN as text.
        #[arg(long)]
        subject: String,
        /// Where to write the CSR (PEM).
        #[arg(long)]
        out: PathBuf,
    },
    /// Import the externally signed certificate of a CA whose key `csr` created.
    ImportCa {
        /// Where the deployment lives.
        #[command(flatten)]
        dir: DataDir,
        /// CA id given to `csr`.
        #[arg(long)]
        id: String,
        /// CA profile.
        #[arg(long)]
        profile: String,
        /// The signed certificate (PEM).
        #[arg(long)]
        cert: PathBuf,
        /// The issuer's chain (PEM, issuer first) when the issuer is not one of our CAs.
        #[arg(long)]
        issuer_chain: Option<PathBuf>,
    },
    /// Revoke a certificate (idempotent).
    Revoke {
        /// Where the deployment lives.
        #[command(flatten)]
        dir: DataDir,
        /// Serial, hex.
        #[arg(long)]
        serial: String,
        /// Issuing CA id.
        #[arg(long)]
        issuer: Option<String>,
        /// RFC 5280 reason: unspecified, keyCompromise, cACompromise, affiliationChanged,
        /// superseded, cessationOfOperation, certificateHold, privilegeWithdrawn, aACompromise.
        #[arg(long, default_value = "unspecified")]
        reason: String,
    },
    /// List issued certificates.
    List {
        /// Where the deployment lives.
        #[command(flatten)]
        dir: DataDir,
        /// Profile.
        #[arg(long)]
        profile: Option<String>,
        /// Issuing CA id.
        #[arg(long)]
        issuer: Option<String>,
        /// valid, revoked or expired.
        #[arg(long)]
        status: Option<String>,
        /// EMAID.
        #[arg(long)]
        emaid: Option<String>,
        /// EVSE ID.
        #[arg(long)]
        evse_id: Option<String>,
        /// PCID.
        #[arg(long)]
        pcid: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// CA operations.
    Ca {
        /// The operation.
        #[command(subcommand)]
        cmd: CaCmd,
    },
    /// Firmware signing (OCPP SignedUpdateFirmware) with the service-held key.
    Firmware {
        /// The operation.
        #[command(subcommand)]
        cmd: FirmwareCmd,
    },
    /// Reports over the issued certificates.
    Report {
        /// The report.
        #[command(subcommand)]
        cmd: ReportCmd,
    },
    /// Show a certificate by `--serial`, or those matching `list`'s filters: text (default),
    /// `--json` or `--pem`.
    Show(show::ShowArgs),
    /// Write every CA and service certificate as `OUT/<id>.pem`.
    Export {
        /// Where the deployment lives.
        #[command(flatten)]
        dir: DataDir,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
    },
    /// Audit log operations.
    Audit {
        /// The operation.
        #[command(subcommand)]
        cmd: AuditCmd,
    },
    /// Draw the CA hierarchy.
    Tree {
        /// Where the deployment lives.
        #[command(flatten)]
        dir: DataDir,
    },
    /// Token diagnostics.
    Hsm {
        /// The operation.
        #[command(subcommand)]
        cmd: HsmCmd,
    },
    /// ISO 15118 EXI messages: decode to XML, encode XML, verify the header signature.
    Exi {
        /// The operation.
        #[command(subcommand)]
        cmd: exi::ExiCommand,
    },
    /// The vehicle side, for testing: OEM chain, signed installation/update requests, and the
    /// checks a car makes on the answer (keys are files; no data dir).
    Ev {
        /// The operation.
        #[command(subcommand)]
        cmd: ev::EvCmd,
    },
    /// HTTP API clients (OAuth2 client credentials).
    Client {
        /// The operation.
        #[command(subcommand)]
        cmd: client::ClientCmd,
    },
    /// People who sign in to the operator console at `/ui/`.
    User {
        /// The operation.
        #[command(subcommand)]
        cmd: user::UserCmd,
    },
    /// A consistent copy of the SQLite database, made while `serve` runs (PostgreSQL:
    /// `pg_dump`, docs/deployment.md). The HSM token is backed up separately.
    Backup {
        /// Where the deployment lives.
        #[command(flatten)]
        dir: DataDir,
        /// The new backup file (must not exist).
        #[arg(long)]
        out: PathBuf,
    },
    /// Put a `backup` file in place of the SQLite database (stop `serve` first): verified first,
    /// the current database moved aside, never deleted.
    Restore {
        /// Where the deployment lives.
        #[command(flatten)]
        dir: DataDir,
        /// The backup file.
        #[arg(long)]
        from: PathBuf,
    },
    /// External roots the service trusts (OEM, V2G, MO roots of other PKIs).
    Trust {
        /// The operation.
        #[command(subcommand)]
        cmd: trust::TrustCmd,
    },
    /// List the certificate profiles in force.
    Profiles {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `pnc-pki audit …`.
#[derive(Subcommand, Debug)]
pub enum AuditCmd {
    /// Recompute the hash chain of the whole audit log.
    Verify {
        /// Where the deployment lives.
        #[command(flatten)]
        dir: DataDir,
    },
    /// Print audit entries as JSON lines: seq, at, actor, action, subject, details, hash.
    Export {
        /// Where the deployment lives.
        #[command(flatten)]
        dir: DataDir,
        /// Start at this entry (inclusive).
        #[arg(long)]
        since: Option<i64>,
        /// Only actions starting with this (`certificate.`, `crl.issued`, …).
        #[arg(long)]
        action: Option<String>,
    },
}

/// `pnc-pki hsm …`.
#[derive(Subcommand, Debug)]
pub enum HsmCmd {
    /// Check module, token, login and every CA key; prints key attributes read from the token.
    Doctor {
        /// Where the deployment lives.
        #[command(flatten)]
        dir: DataDir,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Invalid(format!("cannot start the runtime: {e}")))
}

fn print_json(v: &impl serde::Serialize, pretty: bool) -> Result<(), CliError> {
    let text = if pretty {
        serde_json::to_string_pretty(v)
    } else {
        serde_json::to_string(v)
    }
    .map_err(invalid)?;
    println!("{text}");
    Ok(())
}

/// Open the deployment of `dir` with the HSM, and run `f` with its RA.
fn with_service<T>(
    dir: &Path,
    f: impl AsyncFnOnce(&Ra) -> Result<T, CliError>,
) -> Result<T, CliError> {
    // SoftHSM2 reads its configuration at C_Initialize: resolve it before any thread starts.
    let p = service::prepare(dir)?;
    runtime()?.block_on(async {
        let svc = service::open(&p, Mode::Command).await?;
        f(&svc.ra).await
    })
}

/// Open only the database of `dir`, and run `f` with its RA.
fn with_store<T>(
    dir: &Path,
    f: impl AsyncFnOnce(&Ra) -> Result<T, CliError>,
) -> Result<T, CliError> {
    runtime()?.block_on(async {
        let ra = service::open_store_only(dir).await?;
        f(&ra).await
    })
}

/// Run a parsed command; returns the process exit code.
pub fn run(cli: Cli) -> Result<i32, CliError> {
    let op = Principal::local_operator();
    match cli.command {
        Command::Init {
            dir,
            config,
            public_url,
            database_url,
            json,
        } => init(
            &dir.data_dir,
            &InitOptions {
                config,
                public_url,
                database_url,
            },
            json,
            &op,
        ),
        Command::Serve { dir, listen } => {
            let p = service::prepare(&dir.data_dir)?;
            // Held until the process ends: `restore` refuses to run under it.
            let _lock = service::lock_for_serve(&dir.data_dir)?;
            p.settings().warn_demo_pin();
            let public_url = p.settings().public_url.clone();
            runtime()?.block_on(async {
                let svc = service::open(&p, Mode::Serve).await?;
                svc.spawn_crl_scheduler();
                let responder = svc
                    .responder()
                    .cloned()
                    .ok_or_else(|| CliError::Invalid("no OCSP responder".into()))?;
                let served =
                    crate::api::serve(svc.ra.clone(), responder, &public_url, &listen).await;
                svc.stop().await;
                served.map_err(CliError::from)
            })?;
            Ok(0)
        }
        Command::Issue {
            dir,
            profile,
            csr,
            subject,
            key_out,
            issuer,
            days,
            out,
            chain,
        } => {
            let input = match &csr {
                Some(path) => Some(std::fs::read(path).map_err(CliError::read(path))?),
                None => None,
            };
            // The output files must be writable before anything is issued.
            let out_file = Pending::public(&out)?;
            let key_file = match (&subject, &key_out) {
                (Some(_), Some(k)) => Some(Pending::private(k)?),
                _ => None,
            };
            with_service(&dir.data_dir, async |ra| {
                let (issued, key) = match (input, subject, &key_out) {
                    (Some(input), None, _) => (
                        ra.issue_from_csr(&op, &profile, &input, issuer.as_deref(), days)
                            .await?,
                        None,
                    ),
                    (None, Some(subject), Some(_)) if key_file.is_some() => {
                        let (i, k) = ra
                            .issue_with_generated_key(
                                &op,
                                &profile,
                                &subject,
                                issuer.as_deref(),
                                days,
                            )
                            .await?;
                        (i, Some(k))
                    }
                    _ => {
                        return Err(invalid(
                            "give either --csr FILE or --subject DN with --key-out FILE",
                        ));
                    }
                };
                let scalar = key.as_ref().map(|k| k.scalar.as_slice());
                write_issued(&issued, chain, out_file, scalar.zip(key_file))?;
                println!(
                    "issued {} serial {} by {} (valid until {})",
                    issued.record.profile,
                    issued.record.serial_hex,
                    issued.record.issuer_id,
                    rfc3339(issued.record.not_after)
                );
                Ok(0)
            })
        }
        Command::Csr {
            dir,
            id,
            profile,
            subject,
            out,
        } => with_service(&dir.data_dir, async |ra| {
            let pem = ra.create_ca_csr(&op, &id, &profile, &subject).await?;
            std::fs::write(&out, pem).map_err(CliError::write(&out))?;
            println!(
                "wrote CSR for CA '{id}' ({profile}) to {}; key held in the token",
                out.display()
            );
            Ok(0)
        }),
        Command::ImportCa {
            dir,
            id,
            profile,
            cert,
            issuer_chain,
        } => {
            let pem = std::fs::read(&cert).map_err(CliError::read(&cert))?;
            let chain = match &issuer_chain {
                Some(f) => Some(std::fs::read(f).map_err(CliError::read(f))?),
                None => None,
            };
            with_service(&dir.data_dir, async |ra| {
                let rec = ra
                    .import_ca(&op, &id, &profile, &pem, chain.as_deref())
                    .await?;
                println!(
                    "imported CA '{id}' ({}, serial {})",
                    rec.subject, rec.serial_hex
                );
                Ok(0)
            })
        }
        Command::Revoke {
            dir,
            serial,
            issuer,
            reason,
        } => with_service(&dir.data_dir, async |ra| {
            let c = ra.find_certificate(&op, &serial, issuer.as_deref()).await?;
            let done = ra.revoke(&op, &c.issuer_id, &c.serial_hex, &reason).await?;
            let what = format!("{}/{}", c.issuer_id, c.serial_hex);
            match done.outcome {
                RevokeOutcome::Revoked => println!(
                    "revoked {what} ({})",
                    done.record
                        .revocation_reason
                        .map(|r| r.name())
                        .unwrap_or("unspecified")
                ),
                RevokeOutcome::AlreadyRevoked => {
                    println!("{what} was already revoked; unchanged")
                }
                RevokeOutcome::NotFound => {
                    return Err(RaError::NotFound(format!("no certificate {what}")).into());
                }
            }
            Ok(0)
        }),
        Command::Firmware {
            cmd:
                FirmwareCmd::Sign {
                    dir,
                    image,
                    out,
                    cert_out,
                    json,
                },
        } => {
            let data = std::fs::read(&image)
                .map_err(|e| CliError::Invalid(format!("{}: {e}", image.display())))?;
            with_service(&dir.data_dir, async |ra| {
                let signed = ra.sign_firmware(&op, data).await?;
                std::fs::write(&out, &signed.signature)
                    .map_err(|e| CliError::Invalid(format!("{}: {e}", out.display())))?;
                if let Some(path) = &cert_out {
                    // The signing certificate, then its chain up to the manufacturer root.
                    let mut pem = signed.cert.pem();
                    for c in &signed.chain {
                        pem.push_str(&c.pem());
                    }
                    std::fs::write(path, pem)
                        .map_err(|e| CliError::Invalid(format!("{}: {e}", path.display())))?;
                }
                if json {
                    // What OCPP's SignedUpdateFirmware FirmwareType carries.
                    print_json(
                        &serde_json::json!({
                            "signature": base64::Engine::encode(
                                &base64::engine::general_purpose::STANDARD,
                                &signed.signature
                            ),
                            "signingCertificate": signed.cert.pem(),
                        }),
                        false,
                    )?;
                } else {
                    println!(
                        "signed {} with {} (serial {})",
                        image.display(),
                        signed.cert.subject_string(),
                        signed.cert.serial_hex()
                    );
                }
                Ok(0)
            })
        }
        Command::Ca {
            cmd:
                CaCmd::Rollover {
                    dir,
                    ca,
                    csr_out,
                    cert,
                    issuer_chain,
                    json,
                },
        } => {
            if let Some(out) = csr_out {
                return with_service(&dir.data_dir, async |ra| {
                    let pem = ra.rollover_ca_csr(&op, &ca).await?;
                    std::fs::write(&out, pem).map_err(CliError::write(&out))?;
                    println!(
                        "wrote the CSR of CA '{ca}''s new key to {}; key held in the token. Have \
                         it signed, then run `pnc-pki ca rollover --ca {ca} --cert FILE`",
                        out.display()
                    );
                    Ok(0)
                });
            }
            let read = |f: &PathBuf| std::fs::read(f).map_err(CliError::read(f));
            let cert_pem = cert.as_ref().map(read).transpose()?;
            let chain_pem = issuer_chain.as_ref().map(read).transpose()?;
            with_service(&dir.data_dir, async |ra| {
                let done = match &cert_pem {
                    Some(c) => {
                        ra.rollover_ca_import(&op, &ca, c, chain_pem.as_deref())
                            .await?
                    }
                    None => ra.rollover_ca(&op, &ca).await?,
                };
                if json {
                    print_json(&done, false)?;
                } else {
                    println!(
                        "CA '{}' rolled over to key generation {} (key id {}, subject key \
                         identifier {}, certificate serial {}, valid until {})",
                        done.ca,
                        done.generation,
                        done.key_id,
                        done.subject_key_identifier,
                        done.serial_hex,
                        rfc3339(done.not_after)
                    );
                    println!(
                        "generation {} (subject key identifier {}) keeps answering OCSP and its \
                         CRL until {}",
                        done.previous_generation,
                        done.previous_subject_key_identifier,
                        rfc3339(done.previous_serves_until)
                    );
                    println!("new CRL: {}", done.crl_url);
                    println!("OCSP signer: {}", done.ocsp_signer);
                }
                Ok(0)
            })
        }
        Command::Ca {
            cmd: CaCmd::Compromise(args),
        } => compromise::run(args, &op),
        Command::Report {
            cmd:
                ReportCmd::Expiring {
                    dir,
                    days,
                    within,
                    profile,
                    limit,
                    json,
                    ocsp_signers,
                },
        } => with_store(&dir.data_dir, async |ra| {
            let wanted = profile.clone();
            let asked_for = move |p: &str| wanted.as_deref() == Some(p);
            let window = match (within, days) {
                (Some(w), _) => i64::try_from(
                    crate::duration::parse_duration(&w)
                        .map_err(|e| CliError::Invalid(format!("--within: {e}")))?
                        .as_secs(),
                )
                .unwrap_or(i64::MAX / 4),
                (None, d) => i64::from(d.unwrap_or(30)) * 86_400,
            };
            // Valid certificates whose end falls within the window, by the process clock.
            let before = ra.now().saturating_add(window);
            let page = ra
                .list_certificates(
                    &op,
                    CertFilter {
                        profile,
                        status: Some(StatusFilter::Valid),
                        expiring_before: Some(before),
                        limit: Some(limit),
                        ..Default::default()
                    },
                )
                .await?;
            let now = ra.now();
            let mut items: Vec<_> = page
                .items
                .into_iter()
                .filter(|c| c.not_after > now)
                .collect();
            items.sort_by_key(|c| c.not_after);
            if json {
                // Every one, OCSP signers included: a program tells them apart by `profile`.
                print_json(&items, true)?;
            } else {
                // OCSP signers renew themselves: a line apart from what people act on, unless
                // asked for.
                let signers = ra.ocsp_signer_profiles();
                let (ocsp, items): (Vec<_>, Vec<_>) = items.into_iter().partition(|c| {
                    !ocsp_signers && signers.contains(&c.profile) && !asked_for(&c.profile)
                });
                println!(
                    "{:<20} {:<16} {:<34} {:<6} SUBJECT",
                    "NOT AFTER", "ISSUER", "SERIAL", "DAYS"
                );
                for c in items {
                    println!(
                        "{:<20} {:<16} {:<34} {:<6} {}",
                        rfc3339(c.not_after),
                        c.issuer_id,
                        c.serial_hex,
                        (c.not_after - now) / 86_400,
                        c.subject
                    );
                }
                if !ocsp.is_empty() {
                    println!(
                        "\nand {} OCSP signer certificates (renewed by the service itself; \
                         --ocsp-signers lists them), the first on {}",
                        ocsp.len(),
                        rfc3339(ocsp[0].not_after)
                    );
                }
            }
            Ok(0)
        }),
        Command::List {
            dir,
            profile,
            issuer,
            status,
            emaid,
            evse_id,
            pcid,
            limit,
            json,
        } => {
            let status = match status {
                Some(s) => Some(s.parse::<StatusFilter>().map_err(invalid)?),
                None => None,
            };
            with_store(&dir.data_dir, async |ra| {
                let page = ra
                    .list_certificates(
                        &op,
                        CertFilter {
                            profile,
                            issuer_id: issuer,
                            status,
                            emaid,
                            evse_id,
                            pcid,
                            limit: Some(limit),
                            ..Default::default()
                        },
                    )
                    .await?;
                if json {
                    print_json(&page.items, true)?;
                } else {
                    println!(
                        "{:<16} {:<34} {:<20} {:<8} {:<20} SUBJECT",
                        "ISSUER", "SERIAL", "PROFILE", "STATUS", "NOT AFTER"
                    );
                    for c in page.items {
                        println!(
                            "{:<16} {:<34} {:<20} {:<8} {:<20} {}",
                            c.issuer_id,
                            c.serial_hex,
                            c.profile,
                            c.status.as_str(),
                            rfc3339(c.not_after),
                            c.subject
                        );
                    }
                }
                Ok(0)
            })
        }
        Command::Show(args) => show::run(args, &op),
        Command::Export { dir, out } => with_store(&dir.data_dir, async |ra| {
            std::fs::create_dir_all(&out).map_err(CliError::write(&out))?;
            let certs = ra.export_certificates(&op).await?;
            for (name, der) in &certs {
                let path = out.join(format!("{name}.pem"));
                std::fs::write(&path, to_pem("CERTIFICATE", der))
                    .map_err(CliError::write(&path))?;
            }
            println!("exported {} certificates to {}", certs.len(), out.display());
            Ok(0)
        }),
        Command::Audit {
            cmd: AuditCmd::Verify { dir },
        } => with_store(&dir.data_dir, async |ra| {
            let r = ra.verify_audit(&op).await?;
            match &r.broken_at {
                None => {
                    println!("audit log OK: {} entries, head {}", r.entries, r.head_hash);
                    Ok(0)
                }
                Some((seq, why)) => {
                    eprintln!(
                        "error: audit log chain broken at entry {seq}: {why} ({} entries verified before it)",
                        r.entries
                    );
                    Ok(1)
                }
            }
        }),
        Command::Audit {
            cmd: AuditCmd::Export { dir, since, action },
        } => with_store(&dir.data_dir, async |ra| {
            audit_export(ra, &op, since, action).await?;
            Ok(0)
        }),
        Command::Tree { dir } => with_store(&dir.data_dir, async |ra| {
            print!("{}", tree::render(ra).await?);
            Ok(0)
        }),
        Command::Hsm {
            cmd: HsmCmd::Doctor { dir, json },
        } => {
            let module = config::Settings::load(&dir.data_dir)
                .map_err(ServiceError::from)?
                .hsm
                .module;
            with_service(&dir.data_dir, async |ra| {
                let r = ra.hsm_doctor(&op).await?;
                let keys: Vec<_> = r
                    .keys
                    .iter()
                    .map(|(ca, a)| serde_json::json!({"ca": ca, "attributes": a}))
                    .collect();
                let module = module
                    .map(|m| m.display().to_string())
                    .unwrap_or_else(|| "embedded SoftHSM2".into());
                if json {
                    print_json(
                        &serde_json::json!({
                            "module": module,
                            "token": r.token,
                            "objects": r.objects,
                            "keys": keys,
                            "problems": r.problems,
                        }),
                        true,
                    )?;
                } else {
                    println!(
                        "module {module}  token '{}'  {} objects",
                        r.token, r.objects
                    );
                    for k in &keys {
                        println!("  {} {}", k["ca"].as_str().unwrap_or(""), k["attributes"]);
                    }
                    for pr in &r.problems {
                        println!("PROBLEM: {pr}");
                    }
                    match r.problems.len() {
                        0 => println!(
                            "verdict: OK — token '{}' ready, {} CA keys sensitive and \
                             non-extractable",
                            r.token,
                            r.keys.len()
                        ),
                        n => println!(
                            "verdict: PROBLEM — {n} problem(s), first: {}",
                            r.problems[0]
                        ),
                    }
                }
                Ok(if r.problems.is_empty() { 0 } else { 1 })
            })
        }
        Command::Exi { cmd } => exi::run(cmd),
        Command::Ev { cmd } => ev::run(cmd),
        Command::Client { cmd } => client::run(cmd, &op),
        Command::User { cmd } => user::run(cmd, &op),
        Command::Backup { dir, out } => with_store(&dir.data_dir, async |ra| {
            ra.backup(&op, &out).await?;
            println!("backup written to {}", out.display());
            Ok(0)
        }),
        Command::Restore { dir, from } => {
            let r = runtime()?.block_on(service::restore_sqlite(&dir.data_dir, &from))?;
            println!(
                "restored {} ({} audit entries, chain verified)",
                r.database.display(),
                r.audit_entries
            );
            if let Some(p) = r.previous {
                println!("the database it replaced is kept at {}", p.display());
            }
            Ok(0)
        }
        Command::Trust { cmd } => trust::run(cmd, &op),
        Command::Profiles { json } => {
            let profiles = Profiles::load(None).map_err(invalid)?;
            if json {
                let all: Vec<_> = profiles.iter().collect();
                print_json(&all, true)?;
            } else {
                for p in profiles.iter() {
                    println!(
                        "{:<22} {:<12} {:<8} {}",
                        p.name,
                        format!("{:?}", p.kind),
                        p.key.name(),
                        p.description
                    );
                }
            }
            Ok(0)
        }
    }
}

/// Every matching entry from `since` on, as JSON lines, read a page at a time.
async fn audit_export(
    ra: &Ra,
    op: &Principal,
    since: Option<i64>,
    action: Option<String>,
) -> Result<(), CliError> {
    use std::io::Write;
    let mut after = since.map(|s| s - 1).filter(|s| *s > 0);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    loop {
        let page = ra
            .audit_entries(
                op,
                &AuditFilter {
                    after_seq: after,
                    action_prefix: action.clone(),
                    limit: Some(1000),
                    ..Default::default()
                },
            )
            .await?;
        for e in &page {
            writeln!(out, "{}", e.export_json()).map_err(CliError::stdout)?;
        }
        match page.last() {
            Some(last) if page.len() == 1000 => after = Some(last.seq),
            _ => break,
        }
    }
    out.flush().map_err(CliError::stdout)
}

fn init(dir: &Path, opts: &InitOptions, json: bool, op: &Principal) -> Result<i32, CliError> {
    let report = service::init(dir, opts, op)?;
    let created = report.steps.iter().filter(|s| s.created).count();
    if json {
        print_json(
            &serde_json::json!({"token_created": report.token_created, "created": created, "steps": report.steps,
                "public_url_changed": report.public_url_changed.as_ref().map(|(from, to)| serde_json::json!({"from": from, "to": to}))}),
            false,
        )?;
    } else {
        if report.token_created {
            println!(
                "created token '{}' under {}",
                report.token_label,
                report.token_dir.display()
            );
        }
        for s in &report.steps {
            println!("{:<22} {}", s.id, s.detail);
        }
        if let Some((old, new)) = &report.public_url_changed {
            println!(
                "public URL changed from {old} to {new}: certificates issued from now on carry \
                 it; the CA certificates already signed keep {old} in their OCSP and CRL \
                 addresses until a rollover (`pnc-pki ca rollover --ca ID`)"
            );
        } else if created == 0 && !report.token_created {
            println!(
                "nothing to do: the hierarchy in {} is complete ({} items unchanged)",
                dir.display(),
                report.steps.len()
            );
        } else {
            println!(
                "created {created} items; settings in {}",
                config::settings_path(dir).display()
            );
        }
    }
    Ok(0)
}

/// A file that will be written after issuance: created first in its directory (mode 0600) so
/// that a path that cannot be written fails before anything is issued, and moved into place only
/// when everything is ready.
struct Pending {
    file: tempfile::NamedTempFile,
    path: PathBuf,
}

impl Pending {
    /// A private file (mode 0600, as temporary files are made).
    fn private(path: &Path) -> Result<Pending, CliError> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let file = tempfile::NamedTempFile::new_in(dir).map_err(CliError::write(path))?;
        Ok(Pending {
            file,
            path: path.to_path_buf(),
        })
    }

    /// A file anyone may read (mode 0644): a certificate.
    fn public(path: &Path) -> Result<Pending, CliError> {
        use std::os::unix::fs::PermissionsExt;
        let p = Self::private(path)?;
        std::fs::set_permissions(p.file.path(), std::fs::Permissions::from_mode(0o644))
            .map_err(CliError::write(path))?;
        Ok(p)
    }

    fn write(&mut self, data: &[u8]) -> Result<(), CliError> {
        use std::io::Write;
        self.file
            .write_all(data)
            .and_then(|()| self.file.as_file().sync_all())
            .map_err(CliError::write(&self.path))
    }

    fn persist(self) -> Result<(), CliError> {
        let path = self.path;
        self.file
            .persist(&path)
            .map(|_| ())
            .map_err(|e| CliError::write(&path)(e.error))
    }
}

/// Write the certificate (and chain) and, for a generated key, the key (mode 0600): both are
/// complete in their directories before either is moved into place, and the key file is removed
/// again if the certificate cannot be, so that no half of the pair is left behind.
fn write_issued(
    issued: &Issued,
    chain: bool,
    mut out: Pending,
    key: Option<(&[u8], Pending)>,
) -> Result<(), CliError> {
    let mut pem = issued.cert.pem();
    if chain {
        for c in issued.intermediates() {
            pem.push_str(&c.pem());
        }
    }
    out.write(pem.as_bytes())?;
    match key {
        Some((scalar, mut k)) => {
            k.write(&private_key_pem(scalar, &issued.cert)?)?;
            let key_path = k.path.clone();
            k.persist()?;
            out.persist().inspect_err(|_| {
                let _ = std::fs::remove_file(&key_path);
            })
        }
        None => out.persist(),
    }
}

/// `pnc-pki firmware …`.
#[derive(Debug, clap::Subcommand)]
pub enum FirmwareCmd {
    /// Sign an image (SHA-256) with the firmware-signing key `init` made under the manufacturer
    /// root; writes the DER signature (`openssl dgst -sha256 -verify` takes it); audited.
    Sign {
        /// Where the deployment lives.
        #[command(flatten)]
        dir: DataDir,
        /// The firmware image.
        #[arg(long = "in", value_name = "FILE")]
        image: std::path::PathBuf,
        /// Where the DER signature goes.
        #[arg(long, value_name = "FILE")]
        out: std::path::PathBuf,
        /// Also write the signing certificate and its chain (PEM).
        #[arg(long, value_name = "FILE")]
        cert_out: Option<std::path::PathBuf>,
        /// Print OCPP's `signature` (base64) and `signingCertificate` as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `pnc-pki ca …`.
#[derive(Debug, clap::Subcommand)]
pub enum CaCmd {
    /// Give a CA a new key and certificate (same name, new key identifier) and switch issuance
    /// to it while `serve` runs; the old key keeps answering OCSP and signing CRLs for what it
    /// issued until its certificate expires. For a CA signed elsewhere: `--csr-out` first, then
    /// `--cert` with what its issuer signed.
    Rollover {
        /// Where the deployment lives.
        #[command(flatten)]
        dir: DataDir,
        /// CA id (`cpo-sub-ca-2`).
        #[arg(long)]
        ca: String,
        /// Externally signed CA, step 1: write the CSR of the new key here (PEM).
        #[arg(long, conflicts_with = "cert")]
        csr_out: Option<PathBuf>,
        /// Externally signed CA, step 2: the certificate its issuer signed (PEM).
        #[arg(long)]
        cert: Option<PathBuf>,
        /// With `--cert`: the issuer's chain (PEM, issuer first), when it changed.
        #[arg(long, requires = "cert")]
        issuer_chain: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Respond to the compromise of a sub-CA while `serve` runs: stop its key on every replica,
    /// revoke it at its parent and everything it issued, replace it, regenerate the contract
    /// data of pooled vehicles, list who must re-enroll. Rerun to finish an interrupted run.
    Compromise(compromise::CompromiseArgs),
}

/// Reports.
#[derive(Debug, clap::Subcommand)]
pub enum ReportCmd {
    /// Valid certificates that expire within `--within` (or `--days`; every profile, or
    /// `--profile`), soonest first: what has to be renewed (OCPP stations re-enroll with
    /// SignCertificate).
    Expiring {
        /// Where the deployment lives.
        #[command(flatten)]
        dir: DataDir,
        /// The window, days from now (default 30).
        #[arg(long, conflicts_with = "within")]
        days: Option<u32>,
        /// The window as a duration with a unit: `4w`, `30d`, `12h`, `90m`, `1y` (a bare
        /// number is refused).
        #[arg(long)]
        within: Option<String>,
        /// Only this profile (`charging-station`, `csms-server`, `secc-leaf`, …).
        #[arg(long)]
        profile: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 1000)]
        limit: i64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// List OCSP signers in the table too (renewed by the service itself: by default only
        /// counted on a line of their own; `--json` always lists them).
        #[arg(long)]
        ocsp_signers: bool,
    },
}

/// PKCS#8 PEM of a service-generated EC key, checked against the certificate's public key.
fn private_key_pem(
    scalar: &[u8],
    cert: &crate::x509::ParsedCert,
) -> Result<Zeroizing<Vec<u8>>, CliError> {
    use openssl::bn::{BigNum, BigNumContext};
    use openssl::ec::{EcGroup, EcKey, EcPoint};
    use openssl::nid::Nid;
    let e = |x: openssl::error::ErrorStack| CliError::Invalid(format!("private key: {x}"));
    let alg = crate::x509::spki_key_alg(cert.spki()).map_err(invalid)?;
    let nid = match alg {
        crate::alg::KeyAlg::EcP256 => Nid::X9_62_PRIME256V1,
        crate::alg::KeyAlg::EcP384 => Nid::SECP384R1,
        crate::alg::KeyAlg::EcP521 => Nid::SECP521R1,
        other => {
            return Err(CliError::Invalid(format!(
                "keys handed out are EC keys, not {}",
                other.name()
            )));
        }
    };
    let group = EcGroup::from_curve_name(nid).map_err(e)?;
    let mut ctx = BigNumContext::new().map_err(e)?;
    let point = EcPoint::from_bytes(&group, cert.spki().subject_public_key.raw_bytes(), &mut ctx)
        .map_err(e)?;
    let key =
        EcKey::from_private_components(&group, &*BigNum::from_slice(scalar).map_err(e)?, &point)
            .map_err(e)?;
    key.check_key().map_err(e)?;
    let pkey = openssl::pkey::PKey::from_ec_key(key).map_err(e)?;
    Ok(Zeroizing::new(pkey.private_key_to_pem_pkcs8().map_err(e)?))
}
