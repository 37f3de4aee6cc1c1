//! Throughput of the CA core on this machine: raw signing through the HSM layer, and complete
//! issuances from CSRs (parse, verify, policy, build, HSM sign, OpenSSL self-check, store + audit).
//!
//! Usage: pnc-pki-bench [--signatures N] [--issuances N] [--database-url URL]
//! It creates a throw-away data dir with its own SoftHSM2 token and demo hierarchy.

use std::time::Instant;

use clap::Parser;
use pnc_pki::alg::{HashAlg, KeyAlg};
use pnc_pki::hsm::Hsm;
use pnc_pki::policy::authz::Principal;
use pnc_pki::service::{self, Mode};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 20_000)]
    signatures: usize,
    #[arg(long, default_value_t = 2_000)]
    issuances: usize,
    /// Store for the issuance run (default: SQLite in the temp data dir).
    #[arg(long)]
    database_url: Option<String>,
}

fn csr(i: usize) -> Result<Vec<u8>> {
    use openssl::ec::{EcGroup, EcKey};
    use openssl::nid::Nid;
    use openssl::x509::{X509NameBuilder, X509ReqBuilder};
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    let key = openssl::pkey::PKey::from_ec_key(EcKey::generate(&group)?)?;
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_text("C", "DE")?;
    name.append_entry_by_text("O", "Bench CPO")?;
    name.append_entry_by_text("DC", "CPO")?;
    name.append_entry_by_text("CN", &format!("DE*BEN*E{i:08}"))?;
    let mut req = X509ReqBuilder::new()?;
    req.set_subject_name(&name.build())?;
    req.set_pubkey(&key)?;
    req.sign(&key, openssl::hash::MessageDigest::sha256())?;
    Ok(req.build().to_der()?)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let d = dir.path().display().to_string();
    let mut init = vec!["pnc-pki", "init", "--data-dir", d.as_str()];
    if let Some(u) = &args.database_url {
        init.extend(["--database-url", u.as_str()]);
    }
    let quiet = std::env::var("PNC_HSM_PIN").is_ok();
    if !quiet {
        eprintln!("(using the demo PIN for the throw-away token)");
    }
    pnc_pki::cli::run(pnc_pki::cli::Cli::parse_from(init))?;
    let settings = pnc_pki::config::Settings::load(dir.path())?;
    // Raw signing measures the HSM layer itself, so it opens the token directly.
    let hsm = Hsm::open(&settings.hsm_config(dir.path())?)?;
    let p = service::prepare(dir.path())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let svc = rt.block_on(service::open(&p, Mode::Command))?;

    println!("\n| measurement | count | seconds | per second |");
    println!("|---|---:|---:|---:|");
    for (alg, hash, label) in [
        (
            KeyAlg::EcP256,
            HashAlg::Sha256,
            "ECDSA P-256 sign (SHA-256 in process + CKM_ECDSA)",
        ),
        (
            KeyAlg::EcP521,
            HashAlg::Sha512,
            "ECDSA P-521 sign (SHA-512 in process + CKM_ECDSA)",
        ),
    ] {
        let (key, _) = hsm.generate_ca_key(alg, "pnc-pki:bench")?;
        let n = if alg == KeyAlg::EcP256 {
            args.signatures
        } else {
            args.signatures / 8
        };
        for threads in [1usize, 2] {
            let t = Instant::now();
            std::thread::scope(|s| {
                for _ in 0..threads {
                    let hsm = hsm.clone();
                    let key = key.clone();
                    s.spawn(move || {
                        for i in 0..n / threads {
                            hsm.sign_raw(&key, hash, &i.to_be_bytes()).expect("sign");
                        }
                    });
                }
            });
            let secs = t.elapsed().as_secs_f64();
            println!(
                "| {label}, {threads} thread(s) | {n} | {secs:.2} | {:.0} |",
                n as f64 / secs
            );
        }
    }
    let csrs: Vec<Vec<u8>> = (0..args.issuances).map(csr).collect::<Result<_>>()?;
    for concurrency in [1usize, 4] {
        let chunk = args.issuances / concurrency / 2;
        let offset = if concurrency == 1 {
            0
        } else {
            args.issuances / 2
        };
        let t = Instant::now();
        rt.block_on(async {
            let mut tasks = Vec::new();
            for w in 0..concurrency {
                let ra = svc.ra.clone();
                let mine: Vec<Vec<u8>> =
                    csrs[offset + w * chunk..offset + (w + 1) * chunk].to_vec();
                tasks.push(tokio::spawn(async move {
                    let op = Principal::operator("bench");
                    for c in mine {
                        ra.issue_from_csr(&op, "secc-leaf", &c, None, None)
                            .await
                            .expect("issue");
                    }
                }));
            }
            for t in tasks {
                t.await.expect("task");
            }
        });
        let n = chunk * concurrency;
        let secs = t.elapsed().as_secs_f64();
        println!(
            "| issuance from CSR (secc-leaf, {} store), {concurrency} concurrent | {n} | {secs:.2} | {:.0} |",
            settings.database_url.split(':').next().unwrap_or("?"),
            n as f64 / secs
        );
    }
    Ok(())
}
