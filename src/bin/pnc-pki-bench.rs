//! Throughput of the CA core on this machine: raw signing through the HSM layer, and complete
//! issuances from CSRs (parse, verify, policy, build, HSM sign, OpenSSL self-check, store + audit).
//!
//! Usage: pnc-pki-bench [--signatures N] [--issuances N] [--database-url URL]
//! It creates a throw-away data dir with its own SoftHSM2 token and demo hierarchy.
//!
//! `pnc-pki-bench --ev-request V2G_ROOT.pem --out DIR --pcid PCID` instead writes what a load
//! test of contract provisioning needs (`tools/bench-install.sh`): a throw-away OEM root with two
//! sub-CAs (as `pnc-pki ev oem-chain` makes; `DIR/oem-root.pem`, to `trust add`), and an EV's signed ISO 15118-2
//! `CertificateInstallationReq` for PCID listing that V2G root, as the body of
//! `POST /v1/ccp/signedContractData` (`DIR/ccp.json`), and the car's pool entry as the body of
//! `PUT /v1/oem/provCerts` (`DIR/provcert.json`).

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
    /// Write an EV request listing this V2G root instead of benchmarking.
    #[arg(long)]
    ev_request: Option<std::path::PathBuf>,
    /// Where `--ev-request` writes.
    #[arg(long)]
    out: Option<std::path::PathBuf>,
    /// The vehicle's PCID for `--ev-request`.
    #[arg(long, default_value = "WP0ZZZ99ZTS392124")]
    pcid: String,
    /// With `--ev-request`, also write this many distinct requests of the same car (each with
    /// its own SessionID, so none is answered as a replay of another), one JSON body per line,
    /// to `DIR/ccp.jsonl`.
    #[arg(long, default_value_t = 0)]
    requests: usize,
    /// With `--requests`, spread them over this many cars of the same OEM (PCID
    /// `WP0ZZZ99ZT` + 7 digits, contract `DE8AA` + 9 digits): request i is car i mod CARS's.
    /// Their pool entries go to `DIR/provcerts.jsonl`, their contracts (with `--grace`) to
    /// `DIR/contracts.jsonl`. 1: the one car of `--pcid`.
    #[arg(long, default_value_t = 1)]
    cars: usize,
    /// Grace period (seconds) of the contracts in `DIR/contracts.jsonl`.
    #[arg(long, default_value_t = 0)]
    grace: i64,
}

/// The car of `--ev-request`: the library's throw-away OEM PKI and request builder
/// (`pnc-pki ev oem-chain` / `ev install-req`), written as the bodies the load test sends.
fn ev_request(v2g_root: &std::path::Path, out: &std::path::Path, args: &Args) -> Result<()> {
    let (pcid, requests) = (args.pcid.as_str(), args.requests);
    use base64::Engine;
    use pnc_pki::ev;
    let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
    let oem = ev::oem::oem_chain(pnc_pki::exi::Schema::Iso2, pcid, "Bench OEM")?;
    let v2g = ev::load_certs(&std::fs::read(v2g_root)?)?;
    let pool_entry = |leaf: &openssl::x509::X509| -> Result<String> {
        Ok(serde_json::json!({
            "vehicleCertificate": b64(&leaf.to_der()?),
            "subCA2Certificate": b64(&oem.sub2.to_der()?),
            "subCA1Certificate": b64(&oem.sub1.to_der()?),
            "xsdMsgDefNamespace": "urn:iso:15118:2:2013:MsgDef",
        })
        .to_string())
    };
    let body = |car: (
        &openssl::x509::X509,
        &openssl::pkey::PKey<openssl::pkey::Private>,
    ),
                session_id: &[u8]|
     -> Result<String> {
        let exi = ev::install_request(&ev::InstallRequest {
            schema: pnc_pki::exi::Schema::Iso2,
            oem_cert: car.0,
            oem_key: car.1,
            oem_chain: &[],
            roots: &v2g,
            session_id,
            now: 0,
        })?;
        Ok(serde_json::json!({
            "certificateInstallationReq": b64(&exi),
            "xsdMsgDefNamespace": "urn:iso:15118:2:2013:MsgDef",
        })
        .to_string())
    };
    std::fs::create_dir_all(out)?;
    std::fs::write(out.join("oem-root.pem"), oem.root.to_pem()?)?;
    std::fs::write(
        out.join("ccp.json"),
        body(
            (&oem.leaf, &oem.leaf_key),
            &[0x4a, 0x5b, 0x6c, 0x7d, 0x8e, 0x9f, 0x01, 0x11],
        )?,
    )?;
    if requests > 0 {
        // A fleet: the first car is the one of `--pcid`, the others are made here.
        let mut cars = vec![(oem.leaf.clone(), oem.leaf_key.clone())];
        let (mut pool, mut contracts) = (String::new(), String::new());
        for k in 0..args.cars.max(1) {
            let (pcid, emaid) = if k == 0 {
                (pcid.to_string(), "DE8AA123456789".to_string())
            } else {
                let p = format!("WP0ZZZ99ZT{k:07}");
                cars.push(ev::oem::another_vehicle(&oem, &p)?);
                pool.push_str(&pool_entry(&cars[k].0)?);
                pool.push('\n');
                (p, format!("DE8AA{k:09}"))
            };
            contracts.push_str(
                &serde_json::json!({"emaid": emaid, "pcid": pcid, "grace_seconds": args.grace})
                    .to_string(),
            );
            contracts.push('\n');
        }
        std::fs::write(out.join("provcerts.jsonl"), pool)?;
        std::fs::write(out.join("contracts.jsonl"), contracts)?;
        // A request answered before is answered again from the store (a replay, no new
        // certificate): a load test of real installations needs a new request each time.
        let mut lines = String::new();
        for i in 0..requests {
            let sid = (0x1000_0000_0000_0000u64 + i as u64).to_be_bytes();
            let car = &cars[i % cars.len()];
            lines.push_str(&body((&car.0, &car.1), &sid)?);
            lines.push('\n');
        }
        std::fs::write(out.join("ccp.jsonl"), lines)?;
    }
    std::fs::write(out.join("provcert.json"), pool_entry(&oem.leaf)?)?;
    Ok(())
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
    if let Some(root) = &args.ev_request {
        let out = args.out.clone().unwrap_or_else(|| ".".into());
        return ev_request(root, &out, &args);
    }
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
