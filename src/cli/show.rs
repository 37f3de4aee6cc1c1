//! `pnc-pki show`: one certificate by serial, or every certificate matching the filters `list`
//! takes, as text (default), JSON or PEM.

use std::io::Write;

use super::{CliError, DataDir, print_json, with_store};
use crate::model::{CertFilter, CertRecord, CertStatus, StatusFilter, rfc3339};
use crate::policy::authz::Principal;
use crate::ra::RaError;
use crate::x509::to_pem;

/// `pnc-pki show`.
#[derive(clap::Args, Debug)]
pub struct ShowArgs {
    /// Where the deployment lives.
    #[command(flatten)]
    dir: DataDir,
    /// Serial, hex: exactly that certificate.
    #[arg(long)]
    serial: Option<String>,
    /// Issuing CA id.
    #[arg(long)]
    issuer: Option<String>,
    /// EMAID, with or without dashes and check digit.
    #[arg(long)]
    emaid: Option<String>,
    /// EVSE ID.
    #[arg(long)]
    evse_id: Option<String>,
    /// PCID (OEM provisioning and contract certificates).
    #[arg(long)]
    pcid: Option<String>,
    /// Profile.
    #[arg(long)]
    profile: Option<String>,
    /// valid, revoked or expired.
    #[arg(long)]
    status: Option<String>,
    /// With filters: at most this many.
    #[arg(long, default_value_t = 20)]
    limit: i64,
    /// Print the PEM only.
    #[arg(long)]
    pem: bool,
    /// Print JSON: an object for `--serial`, an array for filters.
    #[arg(long, conflicts_with = "pem")]
    json: bool,
}

/// Run `show`.
pub(super) fn run(a: ShowArgs, op: &Principal) -> Result<i32, CliError> {
    let status = match &a.status {
        Some(s) => Some(s.parse::<StatusFilter>().map_err(super::invalid)?),
        None => None,
    };
    let filtered = a.emaid.is_some()
        || a.evse_id.is_some()
        || a.pcid.is_some()
        || a.profile.is_some()
        || status.is_some();
    if a.serial.is_none() && !filtered {
        return Err(CliError::Invalid(
            "give --serial HEX, or a filter: --emaid, --pcid, --evse-id, --profile, --status \
             (with --issuer)"
                .into(),
        ));
    }
    with_store(&a.dir.data_dir, async |ra| {
        let now = ra.now();
        let (certs, one) = match &a.serial {
            Some(serial) if !filtered => (
                vec![ra.find_certificate(op, serial, a.issuer.as_deref()).await?],
                true,
            ),
            serial => {
                let page = ra
                    .list_certificates(
                        op,
                        CertFilter {
                            serial_hex: serial.clone(),
                            issuer_id: a.issuer.clone(),
                            profile: a.profile.clone(),
                            status,
                            emaid: a.emaid.clone(),
                            evse_id: a.evse_id.clone(),
                            pcid: a.pcid.clone(),
                            limit: Some(a.limit),
                            ..Default::default()
                        },
                    )
                    .await?;
                if page.items.is_empty() {
                    return Err(RaError::NotFound("no certificate matches".into()).into());
                }
                let n = page.items.len();
                (page.items, a.serial.is_some() && n == 1)
            }
        };
        if a.pem {
            let mut out = std::io::stdout().lock();
            for c in &certs {
                write!(out, "{}", to_pem("CERTIFICATE", &c.der)).map_err(CliError::stdout)?;
            }
            return Ok(0);
        }
        if a.json {
            let mut all = Vec::with_capacity(certs.len());
            for c in &certs {
                let mut v = serde_json::to_value(c).map_err(super::invalid)?;
                v["pem"] = serde_json::Value::String(to_pem("CERTIFICATE", &c.der));
                all.push(v);
            }
            return if one {
                print_json(&all[0], true).map(|()| 0)
            } else {
                print_json(&all, true).map(|()| 0)
            };
        }
        let mut out = std::io::stdout().lock();
        for (i, c) in certs.iter().enumerate() {
            if i > 0 {
                writeln!(out).map_err(CliError::stdout)?;
            }
            out.write_all(text(c, now).as_bytes())
                .map_err(CliError::stdout)?;
        }
        Ok(0)
    })
}

/// One certificate as text: the fields people look for, then the PEM.
fn text(c: &CertRecord, now: i64) -> String {
    let mut s = String::new();
    let mut line = |k: &str, v: &str| s.push_str(&format!("{k:<12} {v}\n"));
    line("serial", &c.serial_hex);
    line("issuer", &c.issuer_id);
    line("profile", &c.profile);
    line("subject", &c.subject);
    line("status", &status(c, now));
    line("not before", &rfc3339(c.not_before));
    line("not after", &rfc3339(c.not_after));
    for (k, v) in [
        ("emaid", &c.emaid),
        ("evse id", &c.evse_id),
        ("pcid", &c.pcid),
        ("tenant", &c.tenant),
    ] {
        if let Some(v) = v {
            line(k, v);
        }
    }
    s.push_str(&to_pem("CERTIFICATE", &c.der));
    s
}

/// `valid (12 days left)`, `expired`, `revoked 2026-… (keyCompromise)`: a revoked certificate
/// has no days left.
fn status(c: &CertRecord, now: i64) -> String {
    match c.status {
        CertStatus::Revoked => format!(
            "revoked {} ({})",
            c.revoked_at.map(rfc3339).unwrap_or_default(),
            c.revocation_reason
                .map(|r| r.name())
                .unwrap_or("unspecified")
        ),
        CertStatus::Valid if c.not_after <= now => "expired".into(),
        CertStatus::Valid => format!("valid ({} days left)", (c.not_after - now) / 86_400),
    }
}
