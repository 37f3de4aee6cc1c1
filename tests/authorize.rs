//! Plug & Charge authorization for a CSMS (`POST /api/v1/ocpp/authorize`) against the real
//! binary: another MO's PKI made here, its revocation served by a responder we did not write
//! (`openssl ocsp`, whose index marks one certificate revoked), our own contract certificates
//! from the store, and the guarded fetcher's refusals (a responder that never answers, one on
//! an address outside `PNC_FETCH_ALLOW`, one that signs with the wrong key).

mod common;

use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Env, http, reply};
use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{BasicConstraints, KeyUsage};
use openssl::x509::{X509, X509Extension, X509NameBuilder};
use serde_json::{Value, json};

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn key() -> PKey<Private> {
    let g = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    PKey::from_ec_key(EcKey::generate(&g).unwrap()).unwrap()
}

struct Made {
    cert: X509,
    key: PKey<Private>,
}

/// A certificate `O=Other MO, CN=cn`, signed by `issuer` (self-signed without), with an OCSP URL
/// when given.
fn make(
    cn: &str,
    issuer: Option<&Made>,
    ca: bool,
    validity: (i64, i64),
    ocsp: Option<&str>,
) -> Made {
    let k = key();
    let mut n = X509NameBuilder::new().unwrap();
    n.append_entry_by_text("O", "Other MO").unwrap();
    n.append_entry_by_text("CN", cn).unwrap();
    let n = n.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    let mut serial = BigNum::new().unwrap();
    serial.rand(63, openssl::bn::MsbOption::ONE, false).unwrap();
    b.set_serial_number(&serial.to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&n).unwrap();
    b.set_issuer_name(issuer.map_or(&n, |i| i.cert.subject_name()))
        .unwrap();
    b.set_pubkey(&k).unwrap();
    b.set_not_before(&Asn1Time::from_unix(validity.0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::from_unix(validity.1).unwrap())
        .unwrap();
    if ca {
        b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
            .unwrap();
        b.append_extension(
            KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                .build()
                .unwrap(),
        )
        .unwrap();
    } else {
        b.append_extension(BasicConstraints::new().critical().build().unwrap())
            .unwrap();
        b.append_extension(
            KeyUsage::new()
                .critical()
                .digital_signature()
                .key_agreement()
                .build()
                .unwrap(),
        )
        .unwrap();
    }
    if let Some(url) = ocsp {
        #[allow(deprecated)]
        let aia = X509Extension::new_nid(None, None, Nid::INFO_ACCESS, &format!("OCSP;URI:{url}"))
            .unwrap();
        b.append_extension(aia).unwrap();
    }
    b.sign(issuer.map_or(&k, |i| &i.key), MessageDigest::sha256())
        .unwrap();
    Made {
        cert: b.build(),
        key: k,
    }
}

fn valid() -> (i64, i64) {
    (now() - 3600, now() + 30 * 86_400)
}

fn pem(c: &X509) -> String {
    String::from_utf8(c.to_pem().unwrap()).unwrap()
}

fn write(dir: &Path, name: &str, data: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p.display().to_string()
}

/// An `openssl ocsp` index line.
fn index_line(c: &X509, revoked: bool) -> String {
    let serial = c
        .serial_number()
        .to_bn()
        .unwrap()
        .to_hex_str()
        .unwrap()
        .to_string();
    let exp = "491231235959Z";
    // Unique per line: `openssl ocsp` refuses an index with two equal subjects.
    let subject = format!("/O=Other MO/CN={serial}");
    if revoked {
        format!(
            "R\t{exp}\t{}\t{serial}\tunknown\t{subject}\n",
            "240101000000Z"
        )
    } else {
        format!("V\t{exp}\t\t{serial}\tunknown\t{subject}\n")
    }
}

/// `openssl ocsp` serving `index` for `ca`, signing with `signer` (OpenSSL 3.0 binds every
/// address; it is reached as 127.0.0.5).
struct Responder(Child);

impl Responder {
    fn start(
        dir: &Path,
        name: &str,
        port: u16,
        index: &str,
        ca: &Made,
        signer: &Made,
    ) -> Responder {
        let idx = write(dir, &format!("{name}.index"), index.as_bytes());
        let ca_pem = write(dir, &format!("{name}-ca.pem"), &ca.cert.to_pem().unwrap());
        let rsigner = write(
            dir,
            &format!("{name}-signer.pem"),
            &signer.cert.to_pem().unwrap(),
        );
        let rkey = write(
            dir,
            &format!("{name}-signer.key"),
            &signer.key.private_key_to_pem_pkcs8().unwrap(),
        );
        let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
        let child = Command::new("openssl")
            .args([
                "ocsp",
                "-index",
                &idx,
                "-port",
                &port.to_string(),
                "-rsigner",
                &rsigner,
                "-rkey",
                &rkey,
                "-CA",
                &ca_pem,
                "-nmin",
                "10",
            ])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("openssl ocsp");
        // Wait for its banner, not with a probe connection: `openssl ocsp` 3.0 stalls on a
        // connection closed without a request.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default();
            if text.contains("waiting for OCSP client connections") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "openssl ocsp did not start: {text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Responder(child)
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port_on(ip: &str) -> u16 {
    TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A listener that counts connections and never answers.
fn silent(ip: &str) -> (u16, Arc<AtomicUsize>) {
    let l = TcpListener::bind((ip, 0)).unwrap();
    let port = l.local_addr().unwrap().port();
    let n = Arc::new(AtomicUsize::new(0));
    let seen = n.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            seen.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf);
                std::thread::sleep(Duration::from_secs(10));
            });
        }
    });
    (port, n)
}

fn ask(srv: &common::Server, token: &str, body: Value) -> (u16, Value) {
    let r = reply(
        http()
            .post(&srv.url("/api/v1/ocpp/authorize"))
            .header("authorization", token)
            .header("content-type", "application/json")
            .send(body.to_string().as_bytes()),
    );
    let v = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    (r.status, v)
}

fn chain_body(emaid: &str, certs: &[&X509]) -> Value {
    let pem: String = certs.iter().map(|c| pem(c)).collect();
    json!({"idToken": {"idToken": emaid, "type": "eMAID"}, "certificate": pem})
}

fn status(v: &Value) -> (String, String) {
    (
        v["certificateStatus"].as_str().unwrap_or("-").to_string(),
        v["idTokenInfo"]["status"]
            .as_str()
            .unwrap_or("-")
            .to_string(),
    )
}

#[test]
fn contract_certificates_of_other_pkis_and_ours_are_authorized_as_ocpp_reads() {
    let env = Env::new(common::Backend::Sqlite);
    env.init();
    let dir = env.path().to_path_buf();
    let port = free_port_on("0.0.0.0");
    let url = format!("http://127.0.0.5:{port}");
    // Another MO's PKI: root (trusted) → sub-CA → contract certificates naming our responder.
    let root = make(
        "Other MO Root",
        None,
        true,
        (now() - 3600, now() + 3650 * 86_400),
        None,
    );
    let sub = make("Other MO Sub-CA", Some(&root), true, valid(), None);
    let good = make("DE8AA111111111", Some(&sub), false, valid(), Some(&url));
    let revoked = make("DE8AA222222222", Some(&sub), false, valid(), Some(&url));
    let expired = make(
        "DE8AA333333333",
        Some(&sub),
        false,
        (now() - 10 * 86_400, now() - 86_400),
        Some(&url),
    );
    let root_pem = write(&dir, "other-mo-root.pem", &root.cert.to_pem().unwrap());
    env.ok(&["trust", "add", "--kind", "mo-root", &root_pem]);
    let index = [
        index_line(&good.cert, false),
        index_line(&revoked.cert, true),
        index_line(&expired.cert, false),
    ]
    .concat();
    let _responder = Responder::start(&dir, "mo", port, &index, &sub, &sub);
    // A responder signing with a key the sub-CA never certified.
    let rogue_port = free_port_on("0.0.0.0");
    let rogue_url = format!("http://127.0.0.5:{rogue_port}");
    let rogue_signer = make("Rogue Responder", None, false, valid(), None);
    let forged_ok = make(
        "DE8AA444444444",
        Some(&sub),
        false,
        valid(),
        Some(&rogue_url),
    );
    let _rogue = Responder::start(
        &dir,
        "rogue",
        rogue_port,
        &index_line(&forged_ok.cert, false),
        &sub,
        &rogue_signer,
    );
    // A responder that never answers, and one outside the allow-list that counts connections.
    let (hang_port, _) = silent("127.0.0.5");
    let hanging = make(
        "DE8AA555555555",
        Some(&sub),
        false,
        valid(),
        Some(&format!("http://127.0.0.5:{hang_port}")),
    );
    let (loop_port, loop_seen) = silent("127.0.0.1");
    let internal = make(
        "DE8AA666666666",
        Some(&sub),
        false,
        valid(),
        Some(&format!("http://127.0.0.1:{loop_port}")),
    );
    let metadata = make(
        "DE8AA777777777",
        Some(&sub),
        false,
        valid(),
        Some("http://169.254.169.254/latest"),
    );
    // An untrusted PKI with the same names.
    let fake_root = make("Other MO Root", None, true, valid(), None);
    let fake_sub = make("Other MO Sub-CA", Some(&fake_root), true, valid(), None);
    let untrusted = make(
        "DE8AA111111111",
        Some(&fake_sub),
        false,
        valid(),
        Some(&url),
    );

    let csms = env.client_add("csms", "csms", &["ACME CSO"]);
    let srv = env.serve_with_env(&[
        ("PNC_FETCH_ALLOW", "127.0.0.5/32"),
        ("PNC_FETCH_TIMEOUT", "1s"),
    ]);
    let token = srv.bearer(&csms);

    let norm = pnc_pki::policy::identifiers::normalize_emaid("DE8AA111111111").unwrap();
    let dashed = format!(
        "{}-{}-{}-{}",
        &norm[..2],
        &norm[2..5],
        &norm[5..14],
        &norm[14..]
    )
    .to_lowercase();
    let stranger_root = make("Unrelated Root", None, true, valid(), None);
    let stranger_sub = make(
        "Unrelated Sub-CA",
        Some(&stranger_root),
        true,
        valid(),
        None,
    );
    let stranger = make(
        "DE8AA111111111",
        Some(&stranger_sub),
        false,
        valid(),
        Some(&url),
    );
    let cases: Vec<(&str, Value, (&str, &str))> = vec![
        (
            "unrelated PKI",
            chain_body("DE8AA111111111", &[&stranger.cert, &stranger_sub.cert]),
            ("CertChainError", "Invalid"),
        ),
        (
            "good",
            chain_body("DE8AA111111111", &[&good.cert, &sub.cert]),
            ("Accepted", "Accepted"),
        ),
        (
            "good, eMAID with dashes and check digit",
            chain_body(&dashed, &[&good.cert, &sub.cert]),
            ("Accepted", "Accepted"),
        ),
        (
            "revoked at its responder",
            chain_body("DE8AA222222222", &[&revoked.cert, &sub.cert]),
            ("CertificateRevoked", "Blocked"),
        ),
        (
            "expired",
            chain_body("DE8AA333333333", &[&expired.cert, &sub.cert]),
            ("CertificateExpired", "Expired"),
        ),
        (
            "untrusted root",
            chain_body("DE8AA111111111", &[&untrusted.cert, &fake_sub.cert]),
            ("SignatureError", "Invalid"),
        ),
        (
            "wrong eMAID",
            chain_body("DE8AA999999999", &[&good.cert, &sub.cert]),
            ("CertChainError", "Invalid"),
        ),
        (
            "no certificate",
            json!({"idToken": {"idToken": "DE8AA111111111", "type": "eMAID"}}),
            ("NoCertificateAvailable", "Invalid"),
        ),
        (
            "answer signed by the wrong key",
            chain_body("DE8AA444444444", &[&forged_ok.cert, &sub.cert]),
            ("-", "Unknown"),
        ),
        (
            "responder outside the allow-list",
            chain_body("DE8AA666666666", &[&internal.cert, &sub.cert]),
            ("-", "Unknown"),
        ),
        (
            "cloud metadata responder",
            chain_body("DE8AA777777777", &[&metadata.cert, &sub.cert]),
            ("-", "Unknown"),
        ),
    ];
    for (what, body, want) in cases {
        let (code, v) = ask(&srv, &token, body);
        assert_eq!(code, 200, "{what}: {v}");
        let log = srv.log();
        let tail: Vec<&str> = log.lines().rev().take(6).collect();
        assert_eq!(
            status(&v),
            (want.0.to_string(), want.1.to_string()),
            "{what}: {v}\n{tail:#?}"
        );
    }
    // Hash data of another PKI's certificates: asked at their responderURL, their issuer (the
    // sub-CA) having been seen in a validated chain above.
    let hd = |c: &X509, issuer: &X509, responder: &str| -> Value {
        let spki = pnc_pki::x509::ParsedCert::from_der(&issuer.to_der().unwrap()).unwrap();
        json!({
            "hashAlgorithm": "SHA256",
            "issuerNameHash": hex::encode(openssl::hash::hash(MessageDigest::sha256(), &issuer.subject_name().to_der().unwrap()).unwrap()),
            "issuerKeyHash": hex::encode(openssl::hash::hash(MessageDigest::sha256(), spki.spki().subject_public_key.raw_bytes()).unwrap()).to_uppercase(),
            "serialNumber": c.serial_number().to_bn().unwrap().to_hex_str().unwrap().to_string(),
            "responderURL": responder,
        })
    };
    let status_of = |body: Value| -> Value {
        let r = reply(
            http()
                .post(&srv.url("/api/v1/ocsp/certificate-status"))
                .header("authorization", &token)
                .header("content-type", "application/json")
                .send(body.to_string().as_bytes()),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    };
    for (c, want) in [
        (&good.cert, openssl::ocsp::OcspCertStatus::GOOD),
        (&revoked.cert, openssl::ocsp::OcspCertStatus::REVOKED),
    ] {
        let v = status_of(json!({"ocspRequestData": hd(c, &sub.cert, &url)}));
        assert_eq!(v["status"], "Accepted", "{v}");
        use base64::Engine;
        let der = base64::engine::general_purpose::STANDARD
            .decode(v["ocspResult"].as_str().unwrap())
            .unwrap();
        let resp = openssl::ocsp::OcspResponse::from_der(&der).unwrap();
        let basic = resp.basic().unwrap();
        let id =
            openssl::ocsp::OcspCertId::from_cert(MessageDigest::sha256(), c, &sub.cert).unwrap();
        assert_eq!(
            basic.find_status(&id).unwrap().status,
            want,
            "the other responder's answer, relayed"
        );
    }
    let v = status_of(
        json!({"ocspRequestData": hd(&good.cert, &sub.cert, &format!("http://127.0.0.1:{loop_port}/"))}),
    );
    assert_eq!(v["status"], "Failed", "{v}");
    let v = status_of(json!({"ocspRequestData": hd(&stranger.cert, &stranger_sub.cert, &url)}));
    assert_eq!(v["status"], "Failed", "an issuer never seen: {v}");
    let v = status_of(json!({"ocspRequestData": hd(&forged_ok.cert, &sub.cert, &rogue_url)}));
    assert_eq!(
        v["status"], "Failed",
        "an answer signed by the wrong key is not relayed: {v}"
    );
    // OCPP 2.1 GetCertificateChainStatus: each entry asked at the responder in its `urls`.
    let r = reply(
        http()
            .post(&srv.url("/api/v1/ocsp/chain-status"))
            .header("authorization", &token)
            .header("content-type", "application/json")
            .send(
                json!({"certificateStatusRequests": [
                    {"certificateHashData": hd(&good.cert, &sub.cert, &url), "source": "OCSP", "urls": [url]},
                    {"certificateHashData": hd(&revoked.cert, &sub.cert, &url), "source": "OCSP", "urls": [url]},
                    {"certificateHashData": hd(&good.cert, &sub.cert, &url), "source": "OCSP", "urls": [format!("http://127.0.0.1:{loop_port}/")]},
                ]})
                .to_string()
                .as_bytes(),
            ),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let st: Vec<String> = r.json()["certificateStatus"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(st, ["Good", "Revoked", "Unknown"], "{}", r.text());
    let by_hash = |c: &X509, issuer: &X509| json!({"idToken": {"idToken": "DE8AA111111111", "type": "eMAID"}, "iso15118CertificateHashData": [hd(c, issuer, &url)]});
    let (_, v) = ask(&srv, &token, by_hash(&good.cert, &sub.cert));
    assert_eq!(status(&v), ("Accepted".into(), "Accepted".into()), "{v}");
    let (_, v) = ask(&srv, &token, by_hash(&revoked.cert, &sub.cert));
    assert_eq!(
        status(&v),
        ("CertificateRevoked".into(), "Blocked".into()),
        "{v}"
    );
    let (_, v) = ask(&srv, &token, by_hash(&stranger.cert, &stranger_sub.cert));
    assert_eq!(status(&v), ("-".into(), "Unknown".into()), "{v}");

    // A tampered signature.
    let mut der = good.cert.to_der().unwrap();
    let n = der.len();
    der[n - 2] ^= 0x01;
    let tampered = X509::from_der(&der).unwrap();
    let (_, v) = ask(
        &srv,
        &token,
        chain_body("DE8AA111111111", &[&tampered, &sub.cert]),
    );
    assert_eq!(
        status(&v),
        ("SignatureError".into(), "Invalid".into()),
        "{v}"
    );
    // A responder that never answers costs one budget.
    let t = Instant::now();
    let (code, v) = ask(
        &srv,
        &token,
        chain_body("DE8AA555555555", &[&hanging.cert, &sub.cert]),
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(status(&v), ("-".to_string(), "Unknown".to_string()), "{v}");
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "one fetch budget: {:?}",
        t.elapsed()
    );
    assert_eq!(
        loop_seen.load(Ordering::SeqCst),
        0,
        "a loopback responder outside the allow-list was contacted"
    );
    // Warm: the same good chain again is answered from the caches.
    for _ in 0..5 {
        let (_, v) = ask(
            &srv,
            &token,
            chain_body("DE8AA111111111", &[&good.cert, &sub.cert]),
        );
        assert_eq!(status(&v), ("Accepted".into(), "Accepted".into()), "{v}");
    }

    // Our own contract certificate: from the store, revoked at once.
    let own = dir.join("own.pem");
    env.ok(&[
        "issue",
        "--profile",
        "contract",
        "--subject",
        "O=Our MO, CN=DE8AA8888888884",
        "--key-out",
        dir.join("own.key").to_str().unwrap(),
        "--out",
        own.to_str().unwrap(),
        "--chain",
    ]);
    let own_chain = std::fs::read_to_string(&own).unwrap();
    let body = json!({"idToken": {"idToken": "DE8AA8888888884", "type": "eMAID"}, "certificate": own_chain});
    let (_, v) = ask(&srv, &token, body.clone());
    assert_eq!(status(&v), ("Accepted".into(), "Accepted".into()), "{v}");
    let own_leaf = X509::stack_from_pem(own_chain.as_bytes())
        .unwrap()
        .remove(0);
    let serial = own_leaf
        .serial_number()
        .to_bn()
        .unwrap()
        .to_hex_str()
        .unwrap()
        .to_string();
    // Hash data only: our CertID from the store.
    let issuer = X509::stack_from_pem(own_chain.as_bytes())
        .unwrap()
        .remove(1);
    let name_hash = hex::encode(
        openssl::hash::hash(
            MessageDigest::sha256(),
            &issuer.subject_name().to_der().unwrap(),
        )
        .unwrap(),
    );
    let pk = issuer.public_key().unwrap().public_key_to_der().unwrap();
    let spki = pnc_pki::x509::ParsedCert::from_der(&issuer.to_der().unwrap()).unwrap();
    let key_hash = hex::encode(
        openssl::hash::hash(
            MessageDigest::sha256(),
            spki.spki().subject_public_key.raw_bytes(),
        )
        .unwrap(),
    );
    assert!(!pk.is_empty());
    let hashes = json!({"idToken": {"idToken": "DE8AA8888888884", "type": "eMAID"}, "iso15118CertificateHashData": [
        {"hashAlgorithm": "SHA256", "issuerNameHash": name_hash.to_uppercase(), "issuerKeyHash": key_hash, "serialNumber": serial.to_lowercase(), "responderURL": "http://127.0.0.1:1/"}]});
    let (_, v) = ask(&srv, &token, hashes.clone());
    assert_eq!(status(&v), ("Accepted".into(), "Accepted".into()), "{v}");
    env.ok(&[
        "revoke",
        "--serial",
        &serial.to_lowercase(),
        "--reason",
        "keyCompromise",
    ]);
    let (_, v) = ask(&srv, &token, body);
    assert_eq!(
        status(&v),
        ("CertificateRevoked".into(), "Blocked".into()),
        "{v}"
    );
    let (_, v) = ask(&srv, &token, hashes);
    assert_eq!(
        status(&v),
        ("CertificateRevoked".into(), "Blocked".into()),
        "{v}"
    );

    // Roles: an MO may not ask; no token, no answer.
    let mo = env.client_add("mo", "mo", &["DE8AA"]);
    let mo = srv.bearer(&mo);
    let (code, _) = ask(
        &srv,
        &mo,
        chain_body("DE8AA111111111", &[&good.cert, &sub.cert]),
    );
    assert_eq!(code, 403);
    let (code, _) = ask(
        &srv,
        "Bearer nonsense",
        chain_body("DE8AA111111111", &[&good.cert, &sub.cert]),
    );
    assert_eq!(code, 401);
    // Oversized certificate field.
    let (code, v) = ask(
        &srv,
        &token,
        json!({"idToken": {"idToken": "x", "type": "eMAID"}, "certificate": "A".repeat(6000)}),
    );
    assert_eq!(code, 400, "{v}");
}

#[test]
fn oem_provisioning_certificates_are_checked_at_their_oem_responder() {
    let env = Env::new(common::Backend::Sqlite);
    env.init();
    let dir = env.path().to_path_buf();
    let port = free_port_on("0.0.0.0");
    let url = format!("http://127.0.0.5:{port}");
    let root = make("Other OEM Root", None, true, valid(), None);
    let sub = make("Other OEM Sub-CA", Some(&root), true, valid(), None);
    let good = make("WP0ZZZ99ZTS392124", Some(&sub), false, valid(), Some(&url));
    let revoked = make("WP0ZZZ99ZTS392125", Some(&sub), false, valid(), Some(&url));
    let (hang_port, _) = silent("127.0.0.5");
    let unreachable = make(
        "WP0ZZZ99ZTS392126",
        Some(&sub),
        false,
        valid(),
        Some(&format!("http://127.0.0.5:{hang_port}")),
    );
    let root_pem = write(&dir, "oem-root.pem", &root.cert.to_pem().unwrap());
    env.ok(&["trust", "add", "--kind", "oem-root", &root_pem]);
    let index = [
        index_line(&good.cert, false),
        index_line(&revoked.cert, true),
    ]
    .concat();
    let _responder = Responder::start(&dir, "oem", port, &index, &sub, &sub);
    let oem = env.client_add("oem", "oem", &["WP0"]);
    let srv = env.serve_with_env(&[
        ("PNC_FETCH_ALLOW", "127.0.0.5/32"),
        ("PNC_FETCH_TIMEOUT", "1s"),
    ]);
    let token = srv.bearer(&oem);
    let put = |v: &Made| {
        use base64::Engine;
        let b64 = |c: &X509| base64::engine::general_purpose::STANDARD.encode(c.to_der().unwrap());
        reply(
            http()
                .put(&srv.url("/v1/oem/provCerts"))
                .header("authorization", &token)
                .header("content-type", "application/json")
                .send(
                    json!({"vehicleCertificate": b64(&v.cert), "subCA2Certificate": b64(&sub.cert),
                           "xsdMsgDefNamespace": "urn:iso:15118:2:2013:MsgDef"})
                    .to_string()
                    .as_bytes(),
                ),
        )
    };
    let r = put(&good);
    assert!(r.status == 201 || r.status == 200, "{}", r.text());
    let r = put(&revoked);
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["code"], "oem_revoked", "{}", r.text());
    // Unreachable responder: refused by default (PNC_EXTERNAL_REVOCATION=require).
    let r = put(&unreachable);
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["code"], "revocation_unknown", "{}", r.text());
}
