//! `pnc-pki ca compromise`: the sub-CA compromise response (see `crate::ca::compromise` and
//! `crate::ra::compromise`). Progress goes to stderr on a terminal only; the report to stdout,
//! as text or, with `--json`, as one JSON object.

use std::io::{IsTerminal, Write};

use super::{CliError, DataDir, print_json, with_service};
use crate::ca::compromise::CompromiseOptions;
use crate::model::RevocationReason;
use crate::policy::authz::Principal;
use crate::ra::RaError;
use crate::ra::compromise::CompromiseReport;

/// Arguments of `pnc-pki ca compromise`.
#[derive(Debug, clap::Args)]
pub struct CompromiseArgs {
    /// Where the deployment lives.
    #[command(flatten)]
    pub dir: DataDir,
    /// The compromised CA (`cpo-sub-ca-2`, `mo-sub-ca-2`, …); a root is refused.
    #[arg(long)]
    pub ca: String,
    /// Why its certificate is revoked at its parent (RFC 5280 name).
    #[arg(long, default_value = "keyCompromise")]
    pub reason: String,
    /// Certificates revoked per transaction (one audit entry each).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(i64).range(1..=5000))]
    pub batch_size: i64,
    /// Treat the CA's current key as compromised even when a finished compromise response of
    /// this CA put it in place.
    #[arg(long)]
    pub again: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Run `pnc-pki ca compromise`.
pub fn run(args: CompromiseArgs, op: &Principal) -> Result<i32, CliError> {
    let reason = RevocationReason::parse(&args.reason)
        .map_err(|e| CliError::Invalid(format!("--reason: {e}")))?;
    let opts = CompromiseOptions {
        reason,
        batch_size: args.batch_size,
        again: args.again,
    };
    let tty = std::io::stderr().is_terminal();
    let progress = move |step: &str, n: i64| {
        if tty {
            let mut e = std::io::stderr();
            let _ = write!(e, "\r{step}: {n}   ");
            let _ = e.flush();
        }
    };
    with_service(&args.dir.data_dir, async |ra| {
        let report = ra
            .compromise_ca(op, &args.ca, &opts, &progress)
            .await
            .map_err(CliError::from)?;
        if tty {
            eprintln!();
        }
        if args.json {
            print_json(&report, false)?;
        } else {
            print_text(&report);
        }
        if report.contracts_failed.is_empty() {
            Ok(0)
        } else {
            Err(RaError::Internal(format!(
                "{} contracts could not be regenerated; run the command again to retry them",
                report.contracts_failed.len()
            ))
            .into())
        }
    })
}

fn print_text(r: &CompromiseReport) {
    println!(
        "CA '{}' key generation {} is stopped{}",
        r.ca,
        r.stopped_generation,
        if r.resumed {
            " (finished an interrupted run)"
        } else {
            ""
        }
    );
    for s in &r.steps {
        println!(
            "  {:<14} {:>8}  {:>8.2} s  {}",
            s.step, s.count, s.seconds, s.detail
        );
    }
    println!(
        "revoked: {} end-entity certificates and {} CA certificates below it (cACompromise)",
        r.revoked, r.sub_cas_revoked
    );
    for x in &r.replaced {
        match (&x.generation, &x.csr_pem) {
            (Some(g), _) => println!(
                "replacement: {} key generation {g}, certificate serial {}, subject key identifier {}",
                x.ca,
                x.serial_hex.as_deref().unwrap_or("?"),
                x.subject_key_identifier.as_deref().unwrap_or("?")
            ),
            (None, Some(csr)) => {
                println!(
                    "replacement: {} pending: {}\nCSR of the new key, to send to the issuer:\n{csr}",
                    x.ca,
                    x.pending.as_deref().unwrap_or("")
                )
            }
            (None, None) => println!(
                "replacement: {} pending: {}",
                x.ca,
                x.pending.as_deref().unwrap_or("none")
            ),
        }
    }
    if let Some(e) = &r.external {
        println!(
            "send to the external issuer ({}): revoke certificate serial {} ({}), reason {}:\n{}",
            e.issuer, e.serial_hex, e.subject, e.reason, e.certificate_pem
        );
    }
    println!("contracts regenerated: {}", r.contracts_regenerated);
    for (id, why) in &r.contracts_failed {
        println!("  contract {id} failed: {why}");
    }
    println!("certificates to re-enroll: {}", r.reenroll);
    for (tenant, n) in &r.reenroll_by_tenant {
        let t = if tenant.is_empty() { "(none)" } else { tenant };
        println!("  tenant {t}: {n}");
    }
    if r.finished {
        println!("finished in {:.2} s", r.seconds);
    } else {
        println!(
            "NOT FINISHED ({:.2} s): do what the pending lines above say, then run `pnc-pki ca \
             compromise --ca {}` again",
            r.seconds, r.ca
        );
    }
}
