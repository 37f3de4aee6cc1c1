//! `pnc-pki exi …` subcommands.
//!
//! * `decode [--schema iso15118-2|iso15118-20] FILE|-` → namespace-qualified XML on stdout.
//! * `encode [--schema …] FILE|-` → raw EXI on stdout (input: XML as printed by `decode`).
//! * `verify FILE|- [--cert PEM] [--schema …]` → digests and signature verdict.
//!
//! EXI input may be raw (first byte `0x80`) or base64 (as in OCPP
//! `exiRequest`/`exiResponse`). Errors are one line on stderr and a non-zero
//! exit code (1; `verify` uses 1 for "invalid" and 2 for "cannot check").

use std::io::{Read, Write};
use std::path::PathBuf;

use super::CliError;
use crate::exi::xmldsig::{self, VerifyingKey};
use crate::exi::{Message, Schema, iso2, iso20, xml};

/// Largest input file accepted by the CLI.
const MAX_FILE: u64 = 4 * 1024 * 1024;

/// Schema selector.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchemaArg {
    /// ISO 15118-2:2013 (`V2G_Message`).
    #[value(name = "iso15118-2")]
    Iso2,
    /// ISO 15118-20 CommonMessages.
    #[value(name = "iso15118-20")]
    Iso20,
}

impl From<SchemaArg> for Schema {
    fn from(s: SchemaArg) -> Self {
        match s {
            SchemaArg::Iso2 => Schema::Iso2,
            SchemaArg::Iso20 => Schema::Iso20,
        }
    }
}

/// `pnc-pki exi` subcommands.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum ExiCommand {
    /// Decode an EXI message (raw or base64) and print it as XML.
    Decode {
        /// Schema; autodetected when absent.
        #[arg(long, value_enum)]
        schema: Option<SchemaArg>,
        /// Input file, or `-` for stdin.
        file: String,
    },
    /// Encode XML (as printed by `decode`) to raw EXI on stdout.
    Encode {
        /// Schema the XML must belong to; taken from the root element when absent.
        #[arg(long, value_enum)]
        schema: Option<SchemaArg>,
        /// Input file, or `-` for stdin.
        file: String,
    },
    /// Check the header signature of a message: every digest and the ECDSA value.
    Verify {
        /// Input file (raw EXI or base64), or `-` for stdin.
        file: String,
        /// Signer certificate (PEM or DER); default: the one inside the message.
        #[arg(long)]
        cert: Option<PathBuf>,
        /// Schema; autodetected when absent.
        #[arg(long, value_enum)]
        schema: Option<SchemaArg>,
    },
}

/// Runs a subcommand; returns the process exit code.
pub fn run(cmd: ExiCommand) -> Result<i32, CliError> {
    let out = std::io::stdout();
    let mut out = out.lock();
    let (code, err) = match cmd {
        ExiCommand::Decode { schema, file } => match decode(&file, schema) {
            Ok(xml) => {
                out.write_all(xml.as_bytes()).map_err(CliError::stdout)?;
                (0, None)
            }
            Err(e) => (1, Some(e)),
        },
        ExiCommand::Encode { schema, file } => match encode(&file, schema) {
            Ok(bytes) => {
                out.write_all(&bytes).map_err(CliError::stdout)?;
                (0, None)
            }
            Err(e) => (1, Some(e)),
        },
        ExiCommand::Verify { file, cert, schema } => match verify(&file, cert, schema, &mut out) {
            Ok(true) => (0, None),
            Ok(false) => (1, None),
            Err(e) => (2, Some(e)),
        },
    };
    out.flush().map_err(CliError::stdout)?;
    if let Some(e) = err {
        eprintln!("error: {}", e.to_string().replace('\n', " "));
    }
    Ok(code)
}

fn msg(m: impl std::fmt::Display) -> CliError {
    CliError::Invalid(m.to_string())
}

fn read_input(file: &str) -> Result<Vec<u8>, CliError> {
    let mut buf = Vec::new();
    if file == "-" {
        std::io::stdin()
            .take(MAX_FILE + 1)
            .read_to_end(&mut buf)
            .map_err(|e| msg(format!("stdin: {e}")))?;
    } else {
        std::fs::File::open(file)
            .and_then(|f| f.take(MAX_FILE + 1).read_to_end(&mut buf))
            .map_err(|e| msg(format!("{file}: {e}")))?;
    }
    if buf.len() as u64 > MAX_FILE {
        return Err(msg(format!("{file}: input larger than {MAX_FILE} bytes")));
    }
    Ok(buf)
}

fn load(file: &str, schema: Option<SchemaArg>) -> Result<Message, CliError> {
    let exi = crate::exi::from_raw_or_base64(&read_input(file)?).map_err(msg)?;
    Message::decode(&exi, schema.map(Schema::from)).map_err(msg)
}

fn decode(file: &str, schema: Option<SchemaArg>) -> Result<String, CliError> {
    Ok(xml::to_xml(&load(file, schema)?))
}

fn encode(file: &str, schema: Option<SchemaArg>) -> Result<Vec<u8>, CliError> {
    let buf = read_input(file)?;
    let text = std::str::from_utf8(&buf).map_err(|_| msg(format!("{file}: XML is not UTF-8")))?;
    let m = xml::parse(text).map_err(msg)?;
    if let Some(s) = schema
        && m.schema() != Schema::from(s)
    {
        return Err(msg(format!(
            "XML is a {:?} message, not {:?}",
            m.schema(),
            s
        )));
    }
    m.encode().map_err(msg)
}

fn subject(cert: &[u8]) -> String {
    let x = if cert.starts_with(b"-----") {
        openssl::x509::X509::from_pem(cert)
    } else {
        openssl::x509::X509::from_der(cert)
    };
    x.ok()
        .map(|x| {
            x.subject_name()
                .entries()
                .filter_map(|e| {
                    Some(format!(
                        "{}={}",
                        e.object().nid().short_name().ok()?,
                        e.data().to_string().ok()?
                    ))
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_else(|| "?".into())
}

fn verify(
    file: &str,
    cert: Option<PathBuf>,
    schema: Option<SchemaArg>,
    out: &mut impl Write,
) -> Result<bool, CliError> {
    let m = load(file, schema)?;
    let (sig, frags, inner_cert, what) = match &m {
        Message::Iso2(v) => {
            let c = match &v.body {
                iso2::Body::CertificateInstallationReq(r) => r.oem_provisioning_cert.clone(),
                iso2::Body::CertificateUpdateReq(r) => {
                    r.contract_signature_cert_chain.certificate.clone()
                }
                iso2::Body::CertificateInstallationRes(r) => {
                    r.sa_provisioning_certificate_chain.certificate.clone()
                }
                iso2::Body::CertificateUpdateRes(r) => {
                    r.sa_provisioning_certificate_chain.certificate.clone()
                }
            };
            let sig = v
                .header
                .signature
                .clone()
                .ok_or_else(|| msg("message carries no Signature"))?;
            (
                sig,
                v.signed_fragments().map_err(msg)?,
                c,
                format!("ISO 15118-2 {}", v.body.name()),
            )
        }
        Message::Iso20(v) => {
            let c = match v {
                iso20::Message::CertificateInstallationReq(r) => {
                    r.oem_provisioning_certificate_chain.certificate.clone()
                }
                iso20::Message::CertificateInstallationRes(r) => {
                    r.cp_s_certificate_chain.certificate.clone()
                }
            };
            let sig = v
                .header()
                .signature
                .as_ref()
                .map(xmldsig::from_iso20)
                .ok_or_else(|| msg("message carries no Signature"))?;
            (
                sig,
                v.signed_fragments().map_err(msg)?,
                c,
                format!("ISO 15118-20 {}", v.name()),
            )
        }
    };
    let cert_bytes = match &cert {
        Some(p) => std::fs::read(p).map_err(|e| msg(format!("{}: {e}", p.display())))?,
        None => inner_cert,
    };
    let key = VerifyingKey::from_certificate(&cert_bytes)
        .map_err(|e| msg(format!("signer certificate: {e}")))?;
    let w = |out: &mut dyn Write, s: String| out.write_all(s.as_bytes()).map_err(CliError::stdout);
    w(out, format!("message: {what}\n"))?;
    w(
        out,
        format!(
            "signer: {} ({})\n",
            subject(&cert_bytes),
            if cert.is_some() {
                "--cert"
            } else {
                "from message"
            }
        ),
    )?;
    let report = match xmldsig::verify(&sig, &frags, &key) {
        Ok(r) => r,
        Err(e) => {
            w(
                out,
                format!("signature: REJECTED ({e})\nverdict: INVALID\n"),
            )?;
            return Ok(false);
        }
    };
    for r in &report.references {
        w(
            out,
            format!(
                "reference {}: digest {} {}\n",
                r.uri,
                hex::encode(&r.computed),
                if r.ok() {
                    "OK".to_string()
                } else {
                    format!("MISMATCH (SignedInfo has {})", hex::encode(&r.expected))
                }
            ),
        )?;
    }
    let alg = report.suite.signature_method();
    match &report.signature {
        Ok(()) => w(out, format!("signature: OK ({alg})\n"))?,
        Err(e) => w(out, format!("signature: FAILED ({alg}: {e})\n"))?,
    }
    let ok = report.is_valid();
    w(
        out,
        format!("verdict: {}\n", if ok { "VALID" } else { "INVALID" }),
    )?;
    Ok(ok)
}
