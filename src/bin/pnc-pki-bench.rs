//! Throughput of the CA core on this machine: raw signing through the HSM layer, and complete
//! issuances from CSRs (parse, verify, policy, build, HSM sign, OpenSSL self-check, store + audit).
//!
//! Usage: pnc-pki-bench [--signatures N] [--issuances N] [--database-url URL]
//! It creates a throw-away data dir with its own SoftHSM2 token and demo hierarchy.
//!
//! `pnc-pki-bench --ev-request V2G_ROOT.pem --out DIR --pcid PCID` instead writes what a load
//! test of contract provisioning needs (`tools/bench-install.sh`): a throw-away OEM root
//! (`DIR/oem-root.pem`, to `trust add`), and an EV's signed ISO 15118-2
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
}

/// An OpenSSL-made certificate (throw-away OEM PKI of `--ev-request`).
fn oem_cert(
    cn: &str,
    key: &openssl::pkey::PKey<openssl::pkey::Private>,
    issuer: Option<(
        &openssl::x509::X509,
        &openssl::pkey::PKey<openssl::pkey::Private>,
    )>,
    ca: bool,
) -> Result<openssl::x509::X509> {
    use openssl::x509::extension::BasicConstraints;
    let mut name = openssl::x509::X509NameBuilder::new()?;
    name.append_entry_by_text("O", "Bench OEM")?;
    name.append_entry_by_text("CN", cn)?;
    let name = name.build();
    let mut b = openssl::x509::X509::builder()?;
    b.set_version(2)?;
    let mut serial = openssl::bn::BigNum::new()?;
    serial.rand(64, openssl::bn::MsbOption::MAYBE_ZERO, false)?;
    let serial = serial.to_asn1_integer()?;
    b.set_serial_number(&serial)?;
    b.set_subject_name(&name)?;
    b.set_issuer_name(issuer.map_or(&name, |(c, _)| c.subject_name()))?;
    b.set_pubkey(key)?;
    let (nb, na) = (
        openssl::asn1::Asn1Time::days_from_now(0)?,
        openssl::asn1::Asn1Time::days_from_now(30)?,
    );
    b.set_not_before(&nb)?;
    b.set_not_after(&na)?;
    let bc = if ca {
        BasicConstraints::new().critical().ca().build()?
    } else {
        BasicConstraints::new().critical().build()?
    };
    b.append_extension(bc)?;
    b.sign(
        issuer.map_or(key, |(_, k)| k),
        openssl::hash::MessageDigest::sha256(),
    )?;
    Ok(b.build())
}

/// Signs with an OpenSSL P-256 key, raw `r‖s`.
struct FileSigner(openssl::ec::EcKey<openssl::pkey::Private>);

impl pnc_pki::exi::xmldsig::RawSigner for FileSigner {
    fn sign_digest(
        &self,
        d: &[u8],
    ) -> std::result::Result<Vec<u8>, pnc_pki::exi::xmldsig::SignerError> {
        let sig = openssl::ecdsa::EcdsaSig::sign(d, &self.0)?;
        Ok([sig.r().to_vec_padded(32)?, sig.s().to_vec_padded(32)?].concat())
    }
}

fn ev_request(v2g_root: &std::path::Path, out: &std::path::Path, pcid: &str) -> Result<()> {
    use base64::Engine;
    use openssl::ec::{EcGroup, EcKey};
    use pnc_pki::exi::iso2;
    let group = EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1)?;
    let root_key = openssl::pkey::PKey::from_ec_key(EcKey::generate(&group)?)?;
    let root = oem_cert("Bench OEM Root", &root_key, None, true)?;
    let car_ec = EcKey::generate(&group)?;
    let car_key = openssl::pkey::PKey::from_ec_key(car_ec.clone())?;
    let car = oem_cert(pcid, &car_key, Some((&root, &root_key)), false)?;
    let v2g = openssl::x509::X509::from_pem(&std::fs::read(v2g_root)?)?;
    let issuer_name: Vec<String> = v2g
        .subject_name()
        .entries()
        .map(|e| {
            format!(
                "{}={}",
                e.object().nid().short_name().unwrap_or("?"),
                String::from_utf8_lossy(e.data().as_slice())
            )
        })
        .collect();
    let mut m = iso2::V2gMessage {
        header: iso2::schema::MessageHeader {
            session_id: vec![0x4a, 0x5b, 0x6c, 0x7d, 0x8e, 0x9f, 0x01, 0x11],
            notification: None,
            signature: None,
        },
        body: iso2::Body::CertificateInstallationReq(iso2::CertificateInstallationReq {
            id: "ID1".into(),
            oem_provisioning_cert: car.to_der()?,
            list_of_root_certificate_ids: vec![iso2::X509IssuerSerial {
                issuer_name: issuer_name.join(","),
                serial_number: pnc_pki::exi::bigint::BigInteger::from_be_bytes(
                    &v2g.serial_number().to_bn()?.to_vec(),
                ),
            }],
        }),
    };
    m.sign(&FileSigner(car_ec))?;
    let exi = m.encode()?;
    std::fs::create_dir_all(out)?;
    std::fs::write(out.join("oem-root.pem"), root.to_pem()?)?;
    let body = serde_json::json!({
        "certificateInstallationReq": base64::engine::general_purpose::STANDARD.encode(&exi),
        "xsdMsgDefNamespace": "urn:iso:15118:2:2013:MsgDef",
    });
    std::fs::write(out.join("ccp.json"), body.to_string())?;
    let pool = serde_json::json!({
        "vehicleCertificate": base64::engine::general_purpose::STANDARD.encode(car.to_der()?),
        "xsdMsgDefNamespace": "urn:iso:15118:2:2013:MsgDef",
    });
    std::fs::write(out.join("provcert.json"), pool.to_string())?;
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
        return ev_request(root, &out, &args.pcid);
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
