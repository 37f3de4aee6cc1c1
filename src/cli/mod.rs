//! Command-line front end. Every failure is one line on stderr with its cause and a non-zero exit.

pub mod client;
mod tree;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Parser, Subcommand};

use crate::ca::{Actor, Ca};
use crate::config::{self, HierarchyConfig, Settings};
use crate::hsm::{Hsm, HsmConfig, softhsm};
use crate::policy::profile::Profiles;
use crate::store::{CertFilter, RevokeOutcome, Store};
use crate::x509::{ParsedCert, to_pem};

#[derive(Parser, Debug)]
#[command(
    name = "pnc-pki",
    version,
    about = "Plug & Charge (ISO 15118) PKI and certificate authority"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Args, Debug, Clone)]
pub struct DataDir {
    /// Data directory created by `init` (settings, SQLite database, embedded SoftHSM2 token).
    #[arg(long, env = "PNC_DATA_DIR", default_value = "./var")]
    pub data_dir: PathBuf,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create the token, database and PKI hierarchy (idempotent).
    Init {
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
        #[arg(long)]
        json: bool,
    },
    /// Run the HTTP service.
    Serve {
        #[command(flatten)]
        dir: DataDir,
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
    },
    /// Issue a leaf certificate from a CSR (or with a key generated in the HSM).
    Issue {
        #[command(flatten)]
        dir: DataDir,
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
        #[command(flatten)]
        dir: DataDir,
        /// CA id (as used by the API, CRL paths and export).
        #[arg(long)]
        id: String,
        #[arg(long)]
        profile: String,
        #[arg(long)]
        subject: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Import the externally signed certificate of a CA whose key `csr` created.
    ImportCa {
        #[command(flatten)]
        dir: DataDir,
        #[arg(long)]
        id: String,
        #[arg(long)]
        profile: String,
        #[arg(long)]
        cert: PathBuf,
        /// The issuer's chain (PEM, issuer first) when the issuer is not one of our CAs.
        #[arg(long)]
        issuer_chain: Option<PathBuf>,
    },
    /// Revoke a certificate (idempotent).
    Revoke {
        #[command(flatten)]
        dir: DataDir,
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
        #[command(flatten)]
        dir: DataDir,
        #[arg(long)]
        profile: Option<String>,
        #[arg(long)]
        issuer: Option<String>,
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        emaid: Option<String>,
        #[arg(long)]
        evse_id: Option<String>,
        #[arg(long)]
        pcid: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// Show one certificate.
    Show {
        #[command(flatten)]
        dir: DataDir,
        #[arg(long)]
        serial: String,
        #[arg(long)]
        issuer: Option<String>,
        /// Print the PEM only.
        #[arg(long)]
        pem: bool,
    },
    /// Write every CA and service certificate as OUT/<id>.pem.
    Export {
        #[command(flatten)]
        dir: DataDir,
        #[arg(long)]
        out: PathBuf,
    },
    /// Audit log operations.
    Audit {
        #[command(subcommand)]
        cmd: AuditCmd,
    },
    /// Draw the CA hierarchy.
    Tree {
        #[command(flatten)]
        dir: DataDir,
    },
    /// Token diagnostics.
    Hsm {
        #[command(subcommand)]
        cmd: HsmCmd,
    },
    /// ISO 15118 EXI messages: decode to XML, encode XML, verify the header signature.
    Exi {
        #[command(subcommand)]
        cmd: crate::exi::cli::ExiCommand,
    },
    /// HTTP API clients (OAuth2 client credentials).
    Client {
        #[command(subcommand)]
        cmd: client::ClientCmd,
    },
    /// List the certificate profiles in force.
    Profiles {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum AuditCmd {
    /// Recompute the hash chain of the whole audit log.
    Verify {
        #[command(flatten)]
        dir: DataDir,
    },
}

#[derive(Subcommand, Debug)]
pub enum HsmCmd {
    /// Check module, token, login and every CA key; prints key attributes read from the token.
    Doctor {
        #[command(flatten)]
        dir: DataDir,
        #[arg(long)]
        json: bool,
    },
}

/// Things resolved before the async runtime starts (SoftHSM2 reads its config at C_Initialize).
pub struct Prepared {
    pub settings: Settings,
    pub hsm_cfg: HsmConfig,
}

/// Load an initialised data dir's settings and HSM configuration. Call before starting threads.
pub fn prepare(dir: &Path) -> Result<Prepared> {
    let settings = Settings::load(dir).map_err(|e| anyhow!(e))?;
    let hsm_cfg = settings.hsm_config(dir).map_err(|e| anyhow!(e))?;
    Ok(Prepared { settings, hsm_cfg })
}

/// Open the token, the store and the profiles.
pub async fn open_ca(p: &Prepared) -> Result<Ca> {
    let hsm_cfg = p.hsm_cfg.clone();
    let hsm = tokio::task::spawn_blocking(move || Hsm::open(&hsm_cfg)).await??;
    let store = Store::connect(&p.settings.database_url)
        .await
        .with_context(|| {
            format!(
                "database {}",
                crate::store::redact_url(&p.settings.database_url)
            )
        })?;
    let profiles = Profiles::load(p.settings.policies_dir.as_deref()).map_err(|e| anyhow!(e))?;
    Ok(Ca {
        hsm,
        store,
        profiles,
        public_url: p.settings.public_url.clone(),
    })
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Run a parsed command; returns the process exit code.
pub fn run(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Init {
            dir,
            config,
            public_url,
            database_url,
            json,
        } => init(&dir.data_dir, config, public_url, database_url, json),
        Command::Serve { dir, listen } => {
            let p = prepare(&dir.data_dir)?;
            runtime()?.block_on(async {
                let ca = open_ca(&p).await?;
                let ocsp = crate::ocsp::start(&ca, &p.settings.ocsp).await?;
                let served = crate::api::serve(ca, &listen).await;
                ocsp.stop().await;
                served
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
            let p = prepare(&dir.data_dir)?;
            runtime()?.block_on(async {
                let ca = open_ca(&p).await?;
                let actor = Actor::cli();
                let (issued, key) = match (csr, subject) {
                    (Some(csr), None) => {
                        let input = std::fs::read(&csr)
                            .with_context(|| format!("cannot read {}", csr.display()))?;
                        (
                            ca.issue_from_csr(&profile, &input, issuer.as_deref(), days, &actor)
                                .await?,
                            None,
                        )
                    }
                    (None, Some(subject)) => {
                        let (i, k) = ca
                            .issue_with_generated_key(
                                &profile,
                                &subject,
                                issuer.as_deref(),
                                days,
                                &actor,
                            )
                            .await?;
                        (i, Some(k))
                    }
                    _ => bail!("give either --csr FILE or --subject DN with --key-out FILE"),
                };
                let mut pem = issued.cert.pem();
                if chain {
                    for c in issued
                        .chain
                        .iter()
                        .filter(|c| c.tbs().issuer() != c.tbs().subject())
                    {
                        pem.push_str(&c.pem());
                    }
                }
                std::fs::write(&out, pem)
                    .with_context(|| format!("cannot write {}", out.display()))?;
                if let (Some(k), Some(path)) = (key, key_out) {
                    write_private_key(
                        &path,
                        issued.cert.spki().algorithm.parameters.as_ref(),
                        &k,
                        &issued.cert,
                    )?;
                }
                println!(
                    "issued {} serial {} by {} (valid until {})",
                    issued.record.profile,
                    issued.record.serial_hex,
                    issued.record.issuer_id,
                    fmt_time(issued.record.not_after)
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
        } => {
            let p = prepare(&dir.data_dir)?;
            runtime()?.block_on(async {
                let ca = open_ca(&p).await?;
                let pem = ca
                    .create_ca_csr(&id, &profile, &subject, &Actor::cli())
                    .await?;
                std::fs::write(&out, pem)
                    .with_context(|| format!("cannot write {}", out.display()))?;
                println!(
                    "wrote CSR for CA '{id}' ({profile}) to {}; key held in the token",
                    out.display()
                );
                Ok(0)
            })
        }
        Command::ImportCa {
            dir,
            id,
            profile,
            cert,
            issuer_chain,
        } => {
            let p = prepare(&dir.data_dir)?;
            runtime()?.block_on(async {
                let ca = open_ca(&p).await?;
                let pem = std::fs::read(&cert)
                    .with_context(|| format!("cannot read {}", cert.display()))?;
                let chain = match &issuer_chain {
                    Some(f) => Some(
                        std::fs::read(f).with_context(|| format!("cannot read {}", f.display()))?,
                    ),
                    None => None,
                };
                let rec = ca
                    .import_ca(&id, &profile, &pem, chain.as_deref(), &Actor::cli())
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
        } => {
            let p = prepare(&dir.data_dir)?;
            runtime()?.block_on(async {
                let ca = open_ca(&p).await?;
                let issuer_id = match issuer {
                    Some(i) => i,
                    None => find_unique_issuer(&ca, &serial).await?,
                };
                let out = ca
                    .revoke(&issuer_id, &serial, &reason, &Actor::cli())
                    .await?;
                match out {
                    RevokeOutcome::Revoked => println!("revoked {issuer_id}/{serial} ({reason})"),
                    RevokeOutcome::AlreadyRevoked => {
                        println!("{issuer_id}/{serial} was already revoked; unchanged")
                    }
                    RevokeOutcome::NotFound => bail!("no certificate {issuer_id}/{serial}"),
                }
                Ok(0)
            })
        }
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
            let settings = Settings::load(&dir.data_dir).map_err(|e| anyhow!(e))?;
            runtime()?.block_on(async {
                let store = Store::connect(&settings.database_url).await?;
                let certs = store
                    .list_certs(&CertFilter {
                        profile,
                        issuer_id: issuer,
                        status,
                        emaid: emaid.map(|e| crate::policy::identifiers::compact_id(&e)),
                        evse_id: evse_id.map(|e| crate::policy::identifiers::compact_id(&e)),
                        pcid,
                        limit: Some(limit),
                        ..Default::default()
                    })
                    .await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&certs)?);
                } else {
                    println!(
                        "{:<16} {:<34} {:<20} {:<8} {:<20} SUBJECT",
                        "ISSUER", "SERIAL", "PROFILE", "STATUS", "NOT AFTER"
                    );
                    for c in certs {
                        println!(
                            "{:<16} {:<34} {:<20} {:<8} {:<20} {}",
                            c.issuer_id,
                            c.serial_hex,
                            c.profile,
                            c.status,
                            fmt_time(c.not_after),
                            c.subject
                        );
                    }
                }
                Ok(0)
            })
        }
        Command::Show {
            dir,
            serial,
            issuer,
            pem,
        } => {
            let settings = Settings::load(&dir.data_dir).map_err(|e| anyhow!(e))?;
            runtime()?.block_on(async {
                let store = Store::connect(&settings.database_url).await?;
                let serial_n = crate::ca::normalize_serial(&serial)
                    .ok_or_else(|| anyhow!("'{serial}' is not a hex serial number"))?;
                let certs = store
                    .list_certs(&CertFilter {
                        serial_hex: Some(serial_n.clone()),
                        issuer_id: issuer,
                        ..Default::default()
                    })
                    .await?;
                let c = match certs.as_slice() {
                    [c] => c,
                    [] => bail!("no certificate with serial {serial_n}"),
                    _ => bail!("serial {serial_n} exists under several issuers; add --issuer"),
                };
                if pem {
                    print!("{}", to_pem("CERTIFICATE", &c.der));
                } else {
                    let mut v = serde_json::to_value(c)?;
                    v["pem"] = serde_json::Value::String(to_pem("CERTIFICATE", &c.der));
                    println!("{}", serde_json::to_string_pretty(&v)?);
                }
                Ok(0)
            })
        }
        Command::Export { dir, out } => {
            let settings = Settings::load(&dir.data_dir).map_err(|e| anyhow!(e))?;
            runtime()?.block_on(async {
                let store = Store::connect(&settings.database_url).await?;
                std::fs::create_dir_all(&out)
                    .with_context(|| format!("cannot create {}", out.display()))?;
                let mut n = 0;
                for ca in store.list_cas().await? {
                    std::fs::write(
                        out.join(format!("{}.pem", ca.id)),
                        to_pem("CERTIFICATE", &ca.cert_der),
                    )?;
                    n += 1;
                }
                // Service-held leaf certificates (CPS leaf): the newest valid one per profile.
                let mut newest: std::collections::BTreeMap<String, crate::store::CertRecord> =
                    Default::default();
                let now = crate::store::now();
                for c in store
                    .list_certs(&CertFilter {
                        status: Some("valid".into()),
                        limit: Some(1000),
                        ..Default::default()
                    })
                    .await?
                {
                    if c.key_id.is_some() && c.profile.starts_with("cps-leaf") && c.not_after > now
                    {
                        let e = newest.entry(c.profile.clone()).or_insert_with(|| c.clone());
                        if c.not_before > e.not_before {
                            *e = c;
                        }
                    }
                }
                for (profile, c) in newest {
                    std::fs::write(
                        out.join(format!("{profile}.pem")),
                        to_pem("CERTIFICATE", &c.der),
                    )?;
                    n += 1;
                }
                println!("exported {n} certificates to {}", out.display());
                Ok(0)
            })
        }
        Command::Audit {
            cmd: AuditCmd::Verify { dir },
        } => {
            let settings = Settings::load(&dir.data_dir).map_err(|e| anyhow!(e))?;
            runtime()?.block_on(async {
                let store = Store::connect(&settings.database_url).await?;
                let r = store.audit_verify().await?;
                match &r.broken_at {
                    None => {
                        println!("audit log OK: {} entries, head {}", r.entries, r.head_hash);
                        Ok(0)
                    }
                    Some((seq, why)) => {
                        eprintln!("error: audit log chain broken at entry {seq}: {why} ({} entries verified before it)", r.entries);
                        Ok(1)
                    }
                }
            })
        }
        Command::Tree { dir } => {
            let settings = Settings::load(&dir.data_dir).map_err(|e| anyhow!(e))?;
            runtime()?.block_on(async {
                let store = Store::connect(&settings.database_url).await?;
                print!("{}", tree::render(&store).await?);
                Ok(0)
            })
        }
        Command::Hsm {
            cmd: HsmCmd::Doctor { dir, json },
        } => {
            let p = prepare(&dir.data_dir)?;
            runtime()?.block_on(async {
                let ca = open_ca(&p).await?;
                let mut keys = Vec::new();
                let mut problems = Vec::new();
                for rec in ca.store.list_cas().await? {
                    let id = hex::decode(&rec.key_id)?;
                    match ca.hsm.key_attributes(&id) {
                        Ok(a) => {
                            if !a.sensitive || a.extractable || !a.token || !a.private {
                                problems.push(format!(
                                    "CA {} key is not sensitive/non-extractable",
                                    rec.id
                                ));
                            }
                            keys.push(serde_json::json!({"ca": rec.id, "attributes": a}));
                        }
                        Err(e) => problems.push(format!("CA {}: {e}", rec.id)),
                    }
                }
                let report = serde_json::json!({
                    "module": p.hsm_cfg.module,
                    "token": ca.hsm.token_label()?,
                    "objects": ca.hsm.object_count()?,
                    "keys": keys,
                    "problems": problems,
                });
                if json {
                    println!("{}", serde_json::to_string_pretty(&report)?);
                } else {
                    println!(
                        "module {}  token '{}'  {} objects",
                        p.hsm_cfg.module.display(),
                        report["token"].as_str().unwrap_or(""),
                        report["objects"]
                    );
                    for k in &keys {
                        println!("  {} {}", k["ca"].as_str().unwrap_or(""), k["attributes"]);
                    }
                    for pr in &problems {
                        println!("PROBLEM: {pr}");
                    }
                }
                Ok(if problems.is_empty() { 0 } else { 1 })
            })
        }
        Command::Exi { cmd } => crate::exi::cli::run(cmd),
        Command::Client { cmd } => client::run(cmd),
        Command::Profiles { json } => {
            let profiles = Profiles::load(None).map_err(|e| anyhow!(e))?;
            if json {
                let all: Vec<_> = profiles.iter().collect();
                println!("{}", serde_json::to_string_pretty(&all)?);
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

async fn find_unique_issuer(ca: &Ca, serial: &str) -> Result<String> {
    let serial_n = crate::ca::normalize_serial(serial)
        .ok_or_else(|| anyhow!("'{serial}' is not a hex serial number"))?;
    let certs = ca
        .store
        .list_certs(&CertFilter {
            serial_hex: Some(serial_n.clone()),
            ..Default::default()
        })
        .await?;
    match certs.as_slice() {
        [c] => Ok(c.issuer_id.clone()),
        [] => bail!("no certificate with serial {serial_n}"),
        _ => bail!("serial {serial_n} exists under several issuers; add --issuer"),
    }
}

fn init(
    dir: &Path,
    config_file: Option<PathBuf>,
    public_url: Option<String>,
    database_url: Option<String>,
    json: bool,
) -> Result<i32> {
    let hierarchy = match &config_file {
        Some(f) => HierarchyConfig::load(f).map_err(|e| anyhow!(e))?,
        None => HierarchyConfig::demo(),
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let previous = Settings::load(dir).ok();
    let mut settings = previous.clone().unwrap_or_else(|| Settings {
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
    if let Some(u) = public_url {
        settings.public_url = u;
    }
    if let Some(u) = database_url {
        settings.database_url = u;
    }
    settings.apply_env();
    // Validate the profiles before touching the token.
    let profiles = Profiles::load(settings.policies_dir.as_deref()).map_err(|e| anyhow!(e))?;
    for spec in hierarchy.ca.iter().chain(&hierarchy.service_cert) {
        profiles
            .get(&spec.profile)
            .map_err(|e| anyhow!("[[ca]] {}: {e}", spec.id))?;
    }
    let mut token_created = false;
    if settings.embedded_softhsm() {
        let conf = softhsm::ensure_conf(dir)?;
        config::set_softhsm_conf(&conf);
        let module = softhsm::find_module()
            .ok_or_else(|| anyhow!("SoftHSM2 is not installed (apt-get install softhsm2) and no hsm.module is configured"))?;
        let user_pin = settings.pin_source().read().map_err(|e| anyhow!(e))?;
        token_created = Hsm::init_token(
            &module,
            &settings.token_label(),
            &config::so_pin(),
            &user_pin,
        )?;
    }
    let hsm_cfg = settings.hsm_config(dir).map_err(|e| anyhow!(e))?;
    let p = Prepared {
        settings: settings.clone(),
        hsm_cfg,
    };
    let steps = runtime()?.block_on(async {
        let ca = open_ca(&p).await?;
        let steps = ca.init_hierarchy(&hierarchy, &Actor::cli()).await?;
        anyhow::Ok(steps)
    })?;
    settings.save(dir).map_err(|e| anyhow!(e))?;
    let created = steps.iter().filter(|s| s.created).count();
    if json {
        println!(
            "{}",
            serde_json::json!({"token_created": token_created, "created": created, "steps": steps})
        );
    } else {
        if token_created {
            println!(
                "created token '{}' under {}",
                settings.token_label(),
                dir.join("hsm").display()
            );
        }
        for s in &steps {
            println!("{:<22} {}", s.id, s.detail);
        }
        if created == 0 && !token_created {
            println!(
                "nothing to do: the hierarchy in {} is complete ({} items unchanged)",
                dir.display(),
                steps.len()
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

/// PKCS#8 PEM of a service-generated EC key, written with mode 0600.
fn write_private_key(
    path: &Path,
    _params: Option<&der::Any>,
    scalar: &[u8],
    cert: &ParsedCert,
) -> Result<()> {
    use openssl::bn::{BigNum, BigNumContext};
    use openssl::ec::{EcGroup, EcKey, EcPoint};
    use openssl::nid::Nid;
    let alg = crate::x509::spki_key_alg(cert.spki()).map_err(|e| anyhow!(e))?;
    let nid = match alg {
        crate::hsm::KeyAlg::EcP256 => Nid::X9_62_PRIME256V1,
        crate::hsm::KeyAlg::EcP384 => Nid::SECP384R1,
        crate::hsm::KeyAlg::EcP521 => Nid::SECP521R1,
    };
    let group = EcGroup::from_curve_name(nid)?;
    let mut ctx = BigNumContext::new()?;
    let point = EcPoint::from_bytes(&group, cert.spki().subject_public_key.raw_bytes(), &mut ctx)?;
    let key = EcKey::from_private_components(&group, &*BigNum::from_slice(scalar)?, &point)?;
    key.check_key()?;
    let pem = openssl::pkey::PKey::from_ec_key(key)?.private_key_to_pem_pkcs8()?;
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(&pem)?;
    Ok(())
}

pub fn fmt_time(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}
