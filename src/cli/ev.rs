//! `pnc-pki ev …`: the car side, for testing a deployment with your own OEM chain (or a
//! throw-away one). Keys are files; no data dir and no HSM are involved.
//!
//! * `oem-chain --pcid P --out DIR [--schema 2|20]`: a throw-away OEM root, sub-CA 1, sub-CA 2 and
//!   provisioning certificate with its key (`crate::ev::oem`).
//! * `install-req --oem-cert LEAF --oem-key KEY [--oem-chain SUB2 SUB1] --root V2GROOT … [--schema
//!   2|20] [--session-id HEX] [--out REQ.b64]`: a signed `CertificateInstallationReq`, base64 EXI.
//! * `update-req --contract-cert C --contract-key K [--contract-chain SUB2 SUB1] --root V2GROOT …`:
//!   a signed -2 `CertificateUpdateReq`.
//! * `check-res --res RES --key KEY --v2g-root ROOT --mo-root ROOT [--session-id HEX] [--pcid P]
//!   [--save-contract DIR] [--json]`: every check a car makes; exit 0 only when all pass.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use openssl::x509::X509;

use super::CliError;
use crate::ev::{self, CheckInput, InstallRequest, UpdateRequest};
use crate::exi::Schema;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// `--schema 2` or `--schema 20`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchemaNum {
    /// ISO 15118-2 (P-256).
    #[value(name = "2", alias = "iso15118-2")]
    Two,
    /// ISO 15118-20 (P-521).
    #[value(name = "20", alias = "iso15118-20")]
    Twenty,
}

impl From<SchemaNum> for Schema {
    fn from(s: SchemaNum) -> Schema {
        match s {
            SchemaNum::Two => Schema::Iso2,
            SchemaNum::Twenty => Schema::Iso20,
        }
    }
}

/// `pnc-pki ev` subcommands.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum EvCmd {
    /// Make a throw-away OEM PKI (root, sub-CA 1, sub-CA 2) and a provisioning certificate with
    /// its key for PCID, to the oem-* profiles; writes PEM files into DIR.
    OemChain {
        /// The vehicle's PCID (CN of the provisioning certificate).
        #[arg(long)]
        pcid: String,
        /// Directory to write into (created).
        #[arg(long)]
        out: PathBuf,
        /// ISO 15118-2 (P-256) or -20 (P-521).
        #[arg(long, value_enum, default_value = "2")]
        schema: SchemaNum,
        /// Organisation (O) of every certificate.
        #[arg(long, default_value = "Test OEM")]
        org: String,
    },
    /// Build and sign a CertificateInstallationReq with your provisioning certificate and key.
    InstallReq {
        /// The OEM provisioning certificate (PEM or DER).
        #[arg(long)]
        oem_cert: PathBuf,
        /// Its private key (PEM or DER).
        #[arg(long)]
        oem_key: PathBuf,
        /// The OEM sub-CAs, sub-CA 2 first (-20 sends them; a -2 request has no room for them).
        #[arg(long, num_args = 1..)]
        oem_chain: Vec<PathBuf>,
        /// V2G root(s) the vehicle trusts (listed in ListOfRootCertificateIDs).
        #[arg(long, num_args = 1.., required = true)]
        root: Vec<PathBuf>,
        /// ISO 15118-2 or -20.
        #[arg(long, value_enum, default_value = "2")]
        schema: SchemaNum,
        /// SessionID as hex (default: random, printed).
        #[arg(long)]
        session_id: Option<String>,
        /// Where the base64 EXI goes (default: stdout).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Build and sign an ISO 15118-2 CertificateUpdateReq with your current contract.
    UpdateReq {
        /// The current contract certificate.
        #[arg(long)]
        contract_cert: PathBuf,
        /// Its private key.
        #[arg(long)]
        contract_key: PathBuf,
        /// The MO sub-CAs, sub-CA 2 first.
        #[arg(long, num_args = 1..)]
        contract_chain: Vec<PathBuf>,
        /// The eMAID (default: the contract certificate's CN).
        #[arg(long)]
        emaid: Option<String>,
        /// V2G root(s) the vehicle trusts.
        #[arg(long, num_args = 1.., required = true)]
        root: Vec<PathBuf>,
        /// SessionID as hex (default: random, printed).
        #[arg(long)]
        session_id: Option<String>,
        /// Where the base64 EXI goes (default: stdout).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Check an installation or update answer as a car does: CPS signature, CPS chain to the V2G
    /// root, contract chain to the MO root, SessionID, eMAID, and the contract key decrypted and
    /// matched to the certificate. Exit 0 only when every check passes.
    CheckRes {
        /// The answer: base64 or raw EXI, or the JSON of the OCPP (`exiResponse`) or OPCP
        /// (`CCPResponse`) route.
        #[arg(long)]
        res: PathBuf,
        /// The key the contract key is encrypted for (OEM provisioning key; old contract key for
        /// an update).
        #[arg(long)]
        key: PathBuf,
        /// V2G root(s) the CPS chain must end in.
        #[arg(long, num_args = 1.., required = true)]
        v2g_root: Vec<PathBuf>,
        /// MO root(s) the contract chain must end in.
        #[arg(long, num_args = 1.., required = true)]
        mo_root: Vec<PathBuf>,
        /// The request's SessionID as hex (checked when given).
        #[arg(long)]
        session_id: Option<String>,
        /// The PCID (needed for -20 answers: it is part of the key encryption).
        #[arg(long)]
        pcid: Option<String>,
        /// Write contract.pem, contract.key (0600), contract-chain.pem and emaid.txt here when
        /// every check passes.
        #[arg(long)]
        save_contract: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn read(path: &Path) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(CliError::read(path))
}

fn certs(path: &Path) -> Result<Vec<X509>, CliError> {
    ev::load_certs(&read(path)?).map_err(|e| CliError::Invalid(format!("{}: {e}", path.display())))
}

fn cert(path: &Path) -> Result<X509, CliError> {
    Ok(certs(path)?.remove(0))
}

fn all_certs(paths: &[PathBuf]) -> Result<Vec<X509>, CliError> {
    let mut out = Vec::new();
    for p in paths {
        out.extend(certs(p)?);
    }
    Ok(out)
}

fn key(path: &Path) -> Result<openssl::pkey::PKey<openssl::pkey::Private>, CliError> {
    ev::load_key(&read(path)?).map_err(|e| CliError::Invalid(format!("{}: {e}", path.display())))
}

fn invalid(e: impl std::fmt::Display) -> CliError {
    CliError::Invalid(e.to_string())
}

fn session(given: Option<&str>) -> Result<Vec<u8>, CliError> {
    match given {
        Some(h) => ev::parse_session_id(h).map_err(invalid),
        None => ev::random_session_id().map_err(invalid),
    }
}

fn write(path: &Path, data: &[u8]) -> Result<(), CliError> {
    std::fs::write(path, data).map_err(CliError::write(path))
}

/// Writes a private key file readable by its owner only (created so, never widened).
fn write_secret(path: &Path, data: &[u8]) -> Result<(), CliError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(CliError::write(path))?;
    // An existing file keeps its mode on open: narrow it.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(CliError::write(path))?;
    f.write_all(data).map_err(CliError::write(path))
}

fn pem(c: &X509) -> Result<Vec<u8>, CliError> {
    c.to_pem().map_err(invalid)
}

fn emit(out: Option<&Path>, exi: &[u8], what: &str, sid: &[u8]) -> Result<(), CliError> {
    let b64 = B64.encode(exi);
    match out {
        Some(p) => {
            write(p, format!("{b64}\n").as_bytes())?;
            println!(
                "wrote {} ({what}, {} bytes EXI, {} base64 characters, SessionID {})",
                p.display(),
                exi.len(),
                b64.len(),
                hex::encode_upper(sid)
            );
        }
        None => {
            println!("{b64}");
            eprintln!("{what}, SessionID {}", hex::encode_upper(sid));
        }
    }
    Ok(())
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The EXI inside an answer file: base64 or raw EXI, or the JSON body of either route.
fn answer_bytes(raw: &[u8]) -> Result<Vec<u8>, CliError> {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(raw) else {
        return Ok(raw.to_vec());
    };
    let found = v
        .get("exiResponse")
        .or_else(|| v.pointer("/CCPResponse/emaidContent/0/messageDef/certificateInstallationRes"))
        .and_then(|s| s.as_str());
    match (found, v.as_str()) {
        (Some(s), _) | (None, Some(s)) => Ok(s.as_bytes().to_vec()),
        (None, None) => Err(CliError::Invalid(
            "JSON answer without exiResponse or CCPResponse.emaidContent[0].messageDef.certificateInstallationRes"
                .into(),
        )),
    }
}

/// Runs an `ev` subcommand.
pub fn run(cmd: EvCmd) -> Result<i32, CliError> {
    match cmd {
        EvCmd::OemChain {
            pcid,
            out,
            schema,
            org,
        } => {
            let schema = Schema::from(schema);
            let c = ev::oem::oem_chain(schema, &pcid, &org).map_err(invalid)?;
            std::fs::create_dir_all(&out).map_err(CliError::write(&out))?;
            let ns = match schema {
                Schema::Iso2 => "urn:iso:15118:2:2013:MsgDef",
                Schema::Iso20 => "urn:iso:std:iso:15118:-20:CommonMessages",
            };
            let der = |c: &X509| c.to_der().map(|d| B64.encode(d)).map_err(invalid);
            let pool = serde_json::json!({
                "vehicleCertificate": der(&c.leaf)?,
                "subCA2Certificate": der(&c.sub2)?,
                "subCA1Certificate": der(&c.sub1)?,
                "xsdMsgDefNamespace": ns,
            });
            let mut chain = pem(&c.sub2)?;
            chain.extend(pem(&c.sub1)?);
            let key = c.leaf_key.private_key_to_pem_pkcs8().map_err(invalid)?;
            let files: [(&str, Vec<u8>, &str); 7] = [
                (
                    "oem-root.pem",
                    pem(&c.root)?,
                    "OEM root (trust add --kind oem-root)",
                ),
                ("oem-sub-ca-1.pem", pem(&c.sub1)?, "OEM sub-CA 1"),
                ("oem-sub-ca-2.pem", pem(&c.sub2)?, "OEM sub-CA 2"),
                ("oem-chain.pem", chain, "sub-CA 2 + sub-CA 1 (--oem-chain)"),
                (
                    "provisioning.pem",
                    pem(&c.leaf)?,
                    "provisioning certificate, CN = PCID",
                ),
                ("provisioning.key", key, "its private key (0600)"),
                (
                    "provcert.json",
                    pool.to_string().into_bytes(),
                    "body of PUT /v1/oem/provCerts (the CPO pool)",
                ),
            ];
            for (name, data, what) in &files {
                let p = out.join(name);
                if name.ends_with(".key") {
                    write_secret(&p, data)?;
                } else {
                    write(&p, data)?;
                }
                println!("{:<40} {what}", p.display());
            }
            Ok(0)
        }
        EvCmd::InstallReq {
            oem_cert,
            oem_key,
            oem_chain,
            root,
            schema,
            session_id,
            out,
        } => {
            let schema = Schema::from(schema);
            let leaf = cert(&oem_cert)?;
            let k = key(&oem_key)?;
            let chain = all_certs(&oem_chain)?;
            if schema == Schema::Iso2 && !chain.is_empty() {
                eprintln!(
                    "note: an ISO 15118-2 request carries no OEM sub-CAs; the CPO finds them in its pool (PUT /v1/oem/provCerts)"
                );
            }
            let roots = all_certs(&root)?;
            let sid = session(session_id.as_deref())?;
            let exi = ev::install_request(&InstallRequest {
                schema,
                oem_cert: &leaf,
                oem_key: &k,
                oem_chain: &chain,
                roots: &roots,
                session_id: &sid,
                now: now() as u64,
            })
            .map_err(invalid)?;
            emit(out.as_deref(), &exi, "CertificateInstallationReq", &sid)?;
            Ok(0)
        }
        EvCmd::UpdateReq {
            contract_cert,
            contract_key,
            contract_chain,
            emaid,
            root,
            session_id,
            out,
        } => {
            let c = cert(&contract_cert)?;
            let k = key(&contract_key)?;
            let chain: Vec<X509> = all_certs(&contract_chain)?
                .into_iter()
                // A chain file may start with the contract certificate itself.
                .filter(|x| x.to_der().ok() != c.to_der().ok())
                .collect();
            let roots = all_certs(&root)?;
            let sid = session(session_id.as_deref())?;
            let exi = ev::update_request(&UpdateRequest {
                contract_cert: &c,
                contract_key: &k,
                contract_chain: &chain,
                emaid: emaid.as_deref(),
                roots: &roots,
                session_id: &sid,
            })
            .map_err(invalid)?;
            emit(out.as_deref(), &exi, "CertificateUpdateReq", &sid)?;
            Ok(0)
        }
        EvCmd::CheckRes {
            res,
            key: key_path,
            v2g_root,
            mo_root,
            session_id,
            pcid,
            save_contract,
            json,
        } => {
            let exi = answer_bytes(&read(&res)?)?;
            let k = key(&key_path)?;
            let v2g = all_certs(&v2g_root)?;
            let mo = all_certs(&mo_root)?;
            let sid = session_id
                .as_deref()
                .map(ev::parse_session_id)
                .transpose()
                .map_err(invalid)?;
            let rep = ev::check_response(&CheckInput {
                exi: &exi,
                key: &k,
                v2g_roots: &v2g,
                mo_roots: &mo,
                session_id: sid.as_deref(),
                pcid: pcid.as_deref(),
                now: now(),
            })
            .map_err(|e| CliError::Invalid(format!("{}: {e}", res.display())))?;
            let mut saved = Vec::new();
            if let (Some(dir), Some(c)) = (&save_contract, &rep.contract) {
                std::fs::create_dir_all(dir).map_err(CliError::write(dir))?;
                let p = dir.join("contract.pem");
                write(&p, &pem(&c.cert)?)?;
                saved.push(p);
                let p = dir.join("contract.key");
                write_secret(&p, &c.key.private_key_to_pem_pkcs8().map_err(invalid)?)?;
                saved.push(p);
                let mut chain = pem(&c.cert)?;
                for s in &c.chain {
                    chain.extend(pem(s)?);
                }
                let p = dir.join("contract-chain.pem");
                write(&p, &chain)?;
                saved.push(p);
                let p = dir.join("emaid.txt");
                write(&p, format!("{}\n", c.emaid).as_bytes())?;
                saved.push(p);
            }
            if json {
                let mut v = serde_json::to_value(&rep).map_err(invalid)?;
                v["saved"] = serde_json::json!(
                    saved
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                );
                println!("{v:#}");
            } else {
                println!(
                    "{} ({}), SessionID {}",
                    rep.message, rep.schema, rep.session_id
                );
                for c in &rep.checks {
                    let mark = match c.ok {
                        Some(true) => "ok  ",
                        Some(false) => "FAIL",
                        None => "-   ",
                    };
                    println!("  {mark} {:<15} {}", c.name, c.detail);
                }
                if let Some(e) = &rep.emaid {
                    println!("  eMAID {e}");
                }
                for p in &saved {
                    println!("  wrote {}", p.display());
                }
                if save_contract.is_some() && saved.is_empty() {
                    println!("  nothing saved: not every check passed");
                }
                println!(
                    "{}",
                    if rep.ok {
                        "verdict: every check passed"
                    } else {
                        "verdict: FAILED"
                    }
                );
            }
            if !rep.ok {
                let failed: Vec<&str> = rep
                    .checks
                    .iter()
                    .filter(|c| c.ok == Some(false))
                    .map(|c| c.name)
                    .collect();
                eprintln!("error: the answer fails: {}", failed.join(", "));
                return Ok(1);
            }
            Ok(0)
        }
    }
}
