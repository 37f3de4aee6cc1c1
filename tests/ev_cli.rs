//! `pnc-pki ev …` (the car side) against a running service, the real binary and a real SoftHSM2
//! token: a throw-away OEM chain, a signed installation request, the answer checked and the
//! contract saved; every check of `ev check-res` refuses a broken answer; and the requests and
//! answer checks agree with the in-process EV of these tests (the codec used directly, as in
//! `tests/provisioning.rs`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use base64::Engine;
use common::{Backend, Env, Server, http, openssl, reply};
use openssl::bn::BigNumContext;
use openssl::ec::PointConversionForm;
use openssl::x509::X509;
use pnc_pki::exi::xmldsig::VerifyingKey;
use pnc_pki::exi::{Message, iso2, keyenc};
use serde_json::{Value, json};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const NS2: &str = "urn:iso:15118:2:2013:MsgDef";
const NS20: &str = "urn:iso:std:iso:15118:-20:CommonMessages";
const PCID: &str = "WP0ZZZ99ZTS392124";
const PCID20: &str = "WP0ZZZ99ZTS3921245";
const SID: &str = "0A1B2C3D4E5F6071";

struct Deployment {
    env: Env,
    srv: Server,
    ex: PathBuf,
    cpo: String,
    mo: String,
    oem: String,
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

impl Deployment {
    fn new() -> Deployment {
        let env = Env::new(Backend::Sqlite);
        env.init();
        let ex = env.export();
        let cpo = env.client_add("cpo", "cpo", &["DE*ABC"]);
        let mo = env.client_add("mo", "mo", &["DE8AA"]);
        let oem = env.client_add("oem", "oem", &["WP0"]);
        let srv = env.serve();
        let (cpo, mo, oem) = (srv.bearer(&cpo), srv.bearer(&mo), srv.bearer(&oem));
        Deployment {
            env,
            srv,
            ex,
            cpo,
            mo,
            oem,
        }
    }

    /// `pnc-pki ARGS` (no data dir: the `ev` commands need none).
    fn ev(&self, args: &[&str]) -> Output {
        self.env
            .command()
            .env_remove("PNC_HSM_PIN")
            .arg("ev")
            .args(args)
            .output()
            .unwrap()
    }

    fn ev_ok(&self, args: &[&str]) -> String {
        let o = self.ev(args);
        assert!(
            o.status.success(),
            "ev {args:?}: {}{}",
            String::from_utf8_lossy(&o.stderr),
            String::from_utf8_lossy(&o.stdout)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Runs `ev ARGS`, asserts a non-zero exit, returns stdout + stderr.
    fn ev_fails(&self, args: &[&str]) -> String {
        let o = self.ev(args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(!o.status.success(), "ev {args:?} passed: {text}");
        text
    }

    fn path(&self, name: &str) -> PathBuf {
        self.env.path().join(name)
    }

    fn send(&self, method: &str, path: &str, token: &str, body: Value) -> common::Reply {
        let url = self.srv.url(path);
        let r = match method {
            "PUT" => http().put(&url),
            _ => http().post(&url),
        };
        reply(
            r.header("authorization", token)
                .header("content-type", "application/json")
                .send(body.to_string().as_bytes()),
        )
    }

    fn contract(&self, emaid: &str, pcid: &str) -> String {
        let r = self.send(
            "POST",
            "/api/v1/contracts",
            &self.mo,
            json!({"emaid": emaid, "pcid": pcid}),
        );
        assert_eq!(r.status, 201, "{}", r.text());
        r.json()["emaid"].as_str().unwrap().to_string()
    }

    /// OPCP installation; returns the whole JSON answer.
    fn ccp(&self, req_b64: &str) -> Value {
        let r = self.send(
            "POST",
            "/v1/ccp/signedContractData",
            &self.cpo,
            json!({"certificateInstallationReq": req_b64.trim(), "xsdMsgDefNamespace": NS2}),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    }

    /// OCPP route; returns `exiResponse`.
    fn ocpp(&self, req_b64: &str, ns: &str, action: &str) -> String {
        let r = self.send(
            "POST",
            "/api/v1/ocpp/get-15118-ev-certificate",
            &self.cpo,
            json!({"iso15118SchemaVersion": ns, "action": action, "exiRequest": req_b64.trim()}),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        assert_eq!(v["status"], "Accepted", "{v}");
        v["exiResponse"].as_str().unwrap().to_string()
    }

    fn trust_oem(&self, root: &Path) {
        let out = self
            .env
            .ok(&["trust", "add", "--kind", "oem-root", s(root)]);
        assert!(out.contains("trusted oem-root"), "{out}");
    }

    fn check_args<'a>(&'a self, res: &'a str, key: &'a str, extra: &[&'a str]) -> Vec<String> {
        let mut a: Vec<String> = [
            "check-res",
            "--res",
            res,
            "--key",
            key,
            "--v2g-root",
            s(&self.ex.join("v2g-root.pem")),
            "--mo-root",
            s(&self.ex.join("mo-root.pem")),
        ]
        .iter()
        .map(|x| x.to_string())
        .collect();
        a.extend(extra.iter().map(|x| x.to_string()));
        a
    }
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn openssl_verify(root: &Path, untrusted: &Path, leaf: &Path) {
    let (ok, out) = openssl(&[
        "verify",
        "-CAfile",
        s(root),
        "-untrusted",
        s(untrusted),
        s(leaf),
    ]);
    assert!(ok && out.contains(": OK"), "openssl verify: {out}");
}

fn text_of(cert: &Path) -> String {
    let (ok, out) = openssl(&["x509", "-in", s(cert), "-noout", "-text"]);
    assert!(ok, "{out}");
    out
}

fn point_of_cert(pem: &[u8]) -> Vec<u8> {
    let c = X509::from_pem(pem).unwrap();
    let ec = c.public_key().unwrap().ec_key().unwrap();
    ec.public_key()
        .to_bytes(
            ec.group(),
            PointConversionForm::UNCOMPRESSED,
            &mut BigNumContext::new().unwrap(),
        )
        .unwrap()
}

fn point_of_key(pem: &[u8]) -> Vec<u8> {
    let k = openssl::pkey::PKey::private_key_from_pem(pem).unwrap();
    let ec = k.ec_key().unwrap();
    ec.public_key()
        .to_bytes(
            ec.group(),
            PointConversionForm::UNCOMPRESSED,
            &mut BigNumContext::new().unwrap(),
        )
        .unwrap()
}

/// The in-process EV of the tests: an answer checked with the codec and key decryption directly
/// (as `tests/provisioning.rs` does), independent of `pnc_pki::ev`.
fn test_ev_accepts(exi: &[u8], key_pem: &[u8], sid: &[u8]) {
    let Message::Iso2(m) = Message::decode(exi, None).unwrap() else {
        panic!("not -2");
    };
    let iso2::Body::CertificateInstallationRes(r) = &m.body else {
        panic!("not an installation answer");
    };
    assert_eq!(m.header.session_id, sid);
    let k =
        VerifyingKey::from_certificate(&r.sa_provisioning_certificate_chain.certificate).unwrap();
    m.verify(&k).unwrap().into_result().unwrap();
    let key = openssl::pkey::PKey::private_key_from_pem(key_pem).unwrap();
    let d = key
        .ec_key()
        .unwrap()
        .private_key()
        .to_vec_padded(32)
        .unwrap();
    let plain = keyenc::iso2_decrypt(
        &d,
        &r.dh_public_key.value,
        &r.contract_signature_encrypted_private_key.value,
    )
    .unwrap();
    let k = pnc_pki::ev::key_from_scalar(openssl::nid::Nid::X9_62_PRIME256V1, &plain).unwrap();
    let x = X509::from_der(&r.contract_signature_cert_chain.certificate).unwrap();
    assert_eq!(
        point_of_key(&k.private_key_to_pem_pkcs8().unwrap()),
        point_of_cert(&x.to_pem().unwrap())
    );
}

/// The request of the in-process EV (the codec and a raw signer used directly).
fn test_ev_request(cert_pem: &[u8], key_pem: &[u8], v2g_root: &Path, sid: &[u8]) -> Vec<u8> {
    struct Signer(openssl::ec::EcKey<openssl::pkey::Private>);
    impl pnc_pki::exi::xmldsig::RawSigner for Signer {
        fn sign_digest(&self, d: &[u8]) -> Result<Vec<u8>, pnc_pki::exi::xmldsig::SignerError> {
            let sig = openssl::ecdsa::EcdsaSig::sign(d, &self.0)?;
            Ok([sig.r().to_vec_padded(32)?, sig.s().to_vec_padded(32)?].concat())
        }
    }
    let root = X509::from_pem(&std::fs::read(v2g_root).unwrap()).unwrap();
    let subject: Vec<String> = root
        .subject_name()
        .entries()
        .map(|e| {
            format!(
                "{}={}",
                e.object().nid().short_name().unwrap(),
                String::from_utf8_lossy(e.data().as_slice())
            )
        })
        .collect();
    let mut m = iso2::V2gMessage {
        header: iso2::schema::MessageHeader {
            session_id: sid.to_vec(),
            notification: None,
            signature: None,
        },
        body: iso2::Body::CertificateInstallationReq(iso2::CertificateInstallationReq {
            id: "ID1".into(),
            oem_provisioning_cert: X509::from_pem(cert_pem).unwrap().to_der().unwrap(),
            list_of_root_certificate_ids: vec![iso2::X509IssuerSerial {
                issuer_name: subject.join(","),
                serial_number: pnc_pki::exi::bigint::BigInteger::from_be_bytes(
                    &root.serial_number().to_bn().unwrap().to_vec(),
                ),
            }],
        }),
    };
    let key = openssl::pkey::PKey::private_key_from_pem(key_pem).unwrap();
    m.sign(&Signer(key.ec_key().unwrap())).unwrap();
    m.encode().unwrap()
}

/// Flips one byte of the answer's SignatureValue and re-encodes it.
fn tamper_signature(b64: &str) -> String {
    let exi = B64.decode(b64.trim()).unwrap();
    let Message::Iso2(mut m) = Message::decode(&exi, None).unwrap() else {
        panic!("not -2");
    };
    let sig = m.header.signature.as_mut().unwrap();
    sig.signature_value.value[10] ^= 0x01;
    B64.encode(m.encode().unwrap())
}

#[test]
fn an_ev_gets_and_checks_its_contract_from_the_service() {
    let d = Deployment::new();
    let car = d.path("car");
    let listed = d.ev_ok(&["oem-chain", "--pcid", PCID, "--out", s(&car)]);
    for f in [
        "oem-root.pem",
        "oem-sub-ca-1.pem",
        "oem-sub-ca-2.pem",
        "oem-chain.pem",
        "provisioning.pem",
        "provisioning.key",
        "provcert.json",
    ] {
        assert!(listed.contains(f), "{f} listed: {listed}");
        assert!(car.join(f).exists(), "{f} written");
    }
    // Profile-conformant: DC=OEM, the key usages, path lengths, chain verifies.
    openssl_verify(
        &car.join("oem-root.pem"),
        &car.join("oem-chain.pem"),
        &car.join("provisioning.pem"),
    );
    let leaf = text_of(&car.join("provisioning.pem"));
    assert!(leaf.contains(&format!("CN = {PCID}")), "{leaf}");
    assert!(leaf.contains("DC = OEM"), "{leaf}");
    assert!(leaf.contains("Digital Signature, Key Agreement"), "{leaf}");
    assert!(leaf.contains("CA:FALSE"), "{leaf}");
    assert!(leaf.contains("prime256v1"), "{leaf}");
    let sub1 = text_of(&car.join("oem-sub-ca-1.pem"));
    assert!(sub1.contains("CA:TRUE, pathlen:1"), "{sub1}");
    assert!(sub1.contains("Certificate Sign, CRL Sign"), "{sub1}");
    let sub2 = text_of(&car.join("oem-sub-ca-2.pem"));
    assert!(sub2.contains("CA:TRUE, pathlen:0"), "{sub2}");
    let root = text_of(&car.join("oem-root.pem"));
    assert!(
        root.contains("DC = OEM") && root.contains("CA:TRUE"),
        "{root}"
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(car.join("provisioning.key"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "the key is the owner's only");

    // The operator trusts the OEM root, the OEM pools the vehicle, the MO makes a contract.
    d.trust_oem(&car.join("oem-root.pem"));
    let pool: Value =
        serde_json::from_slice(&std::fs::read(car.join("provcert.json")).unwrap()).unwrap();
    let r = d.send("PUT", "/v1/oem/provCerts", &d.oem, pool);
    assert!(r.status == 200 || r.status == 201, "{}", r.text());
    let emaid = d.contract("DE8AA123456789", PCID);

    // The request.
    let req = d.path("req.b64");
    let v2g = d.ex.join("v2g-root.pem");
    let out = d.ev_ok(&[
        "install-req",
        "--oem-cert",
        s(&car.join("provisioning.pem")),
        "--oem-key",
        s(&car.join("provisioning.key")),
        "--oem-chain",
        s(&car.join("oem-sub-ca-2.pem")),
        s(&car.join("oem-sub-ca-1.pem")),
        "--root",
        s(&v2g),
        "--session-id",
        SID,
        "--out",
        s(&req),
    ]);
    assert!(out.contains(SID), "{out}");
    let req_b64 = std::fs::read_to_string(&req).unwrap();
    // Its signature verifies with the provisioning certificate (`exi verify`).
    let o = d
        .env
        .command()
        .args([
            "exi",
            "verify",
            s(&req),
            "--cert",
            s(&car.join("provisioning.pem")),
        ])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "exi verify: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );

    // The answer, through OPCP; checked and saved.
    let answer = d.ccp(&req_b64);
    let res_b64 =
        answer["CCPResponse"]["emaidContent"][0]["messageDef"]["certificateInstallationRes"]
            .as_str()
            .unwrap()
            .to_string();
    let res = d.path("res.b64");
    std::fs::write(&res, &res_b64).unwrap();
    let res_json = d.path("res.json");
    std::fs::write(&res_json, answer.to_string()).unwrap();
    let key = car.join("provisioning.key");
    let saved = d.path("contract");
    let args = d.check_args(
        s(&res),
        s(&key),
        &["--session-id", SID, "--save-contract", s(&saved), "--json"],
    );
    let rep: Value = serde_json::from_str(&d.ev_ok(&refs(&args))).unwrap();
    assert_eq!(rep["ok"], true, "{rep:#}");
    for check in [
        "response_code",
        "session_id",
        "cps_signature",
        "cps_chain",
        "contract_chain",
        "emaid",
        "contract_key",
    ] {
        let c = rep["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == check)
            .unwrap_or_else(|| panic!("{check} in {rep:#}"));
        assert_eq!(c["ok"], true, "{check}: {rep:#}");
    }
    assert_eq!(rep["emaid"], emaid.as_str());
    assert_eq!(rep["saved"].as_array().unwrap().len(), 4, "{rep:#}");
    let contract_pem = std::fs::read(saved.join("contract.pem")).unwrap();
    let contract_key = std::fs::read(saved.join("contract.key")).unwrap();
    assert_eq!(
        point_of_cert(&contract_pem),
        point_of_key(&contract_key),
        "the saved key is the certificate's"
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(saved.join("contract.key"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(
        std::fs::read_to_string(saved.join("emaid.txt"))
            .unwrap()
            .trim(),
        emaid
    );
    openssl_verify(
        &d.ex.join("mo-root.pem"),
        &saved.join("contract-chain.pem"),
        &saved.join("contract.pem"),
    );
    // The whole JSON answer of the route is accepted as well, and the text report ends in the verdict.
    let args = d.check_args(s(&res_json), s(&key), &["--session-id", SID]);
    let text = d.ev_ok(&refs(&args));
    assert!(text.contains("verdict: every check passed"), "{text}");

    // Every check refuses what it guards.
    let other = d.path("other");
    d.ev_ok(&[
        "oem-chain",
        "--pcid",
        "WP0ZZZ99ZTS392125",
        "--out",
        s(&other),
    ]);
    let args = d.check_args(s(&res), s(&other.join("provisioning.key")), &[]);
    let e = d.ev_fails(&refs(&args));
    assert!(e.contains("contract_key"), "wrong key: {e}");
    let args = d.check_args(s(&res), s(&key), &["--session-id", "0102030405060708"]);
    let e = d.ev_fails(&refs(&args));
    assert!(e.contains("session_id"), "wrong SessionID: {e}");
    let tampered = d.path("tampered.b64");
    std::fs::write(&tampered, tamper_signature(&res_b64)).unwrap();
    let args = d.check_args(s(&tampered), s(&key), &["--session-id", SID]);
    let e = d.ev_fails(&refs(&args));
    assert!(e.contains("cps_signature"), "tampered: {e}");
    assert!(!e.contains("FAIL session_id"), "{e}");
    let mut args = d.check_args(s(&res), s(&key), &[]);
    args[6] = s(&car.join("oem-root.pem")).to_string();
    let e = d.ev_fails(&refs(&args));
    assert!(e.contains("cps_chain"), "wrong V2G root: {e}");
    let mut args = d.check_args(s(&res), s(&key), &[]);
    args[8] = s(&d.ex.join("v2g-root.pem")).to_string();
    let e = d.ev_fails(&refs(&args));
    assert!(e.contains("contract_chain"), "wrong MO root: {e}");
    let nothing = d.path("nothing");
    let args = d.check_args(
        s(&res),
        s(&other.join("provisioning.key")),
        &["--save-contract", s(&nothing)],
    );
    d.ev_fails(&refs(&args));
    assert!(
        !nothing.join("contract.key").exists(),
        "nothing saved on failure"
    );

    // Update with the saved contract, through the OCPP route; the new key is encrypted for the
    // old contract key.
    let fresh = d.path("fresh");
    let up = d.path("up.b64");
    d.ev_ok(&[
        "update-req",
        "--contract-cert",
        s(&saved.join("contract.pem")),
        "--contract-key",
        s(&saved.join("contract.key")),
        "--contract-chain",
        s(&saved.join("contract-chain.pem")),
        "--root",
        s(&v2g),
        "--session-id",
        SID,
        "--out",
        s(&up),
    ]);
    let up_res = d.ocpp(&std::fs::read_to_string(&up).unwrap(), NS2, "Update");
    let up_res_path = d.path("up-res.b64");
    std::fs::write(&up_res_path, up_res).unwrap();
    let args = d.check_args(
        s(&up_res_path),
        s(&saved.join("contract.key")),
        &["--session-id", SID, "--save-contract", s(&fresh)],
    );
    let text = d.ev_ok(&refs(&args));
    assert!(text.contains("CertificateUpdateRes"), "{text}");
    assert_ne!(
        std::fs::read(fresh.join("contract.pem")).unwrap(),
        contract_pem,
        "a new contract certificate"
    );

    // The in-process test EV accepts what `ev check-res` accepted …
    test_ev_accepts(
        &B64.decode(res_b64.trim()).unwrap(),
        &std::fs::read(&key).unwrap(),
        &hex::decode(SID).unwrap(),
    );
    // … and `ev check-res` accepts the answer to the test EV's own request.
    let sid2 = [0x11u8, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88];
    let own = test_ev_request(
        &std::fs::read(car.join("provisioning.pem")).unwrap(),
        &std::fs::read(&key).unwrap(),
        &v2g,
        &sid2,
    );
    let exi = B64
        .decode(d.ocpp(&B64.encode(own), NS2, "Install"))
        .unwrap();
    test_ev_accepts(&exi, &std::fs::read(&key).unwrap(), &sid2);
    let res2 = d.path("res2.b64");
    std::fs::write(&res2, B64.encode(&exi)).unwrap();
    let args = d.check_args(s(&res2), s(&key), &["--session-id", &hex::encode(sid2)]);
    d.ev_ok(&refs(&args));
}

#[test]
fn an_iso20_ev_gets_and_checks_its_contract() {
    let d = Deployment::new();
    let car = d.path("car20");
    d.ev_ok(&[
        "oem-chain",
        "--schema",
        "20",
        "--pcid",
        PCID20,
        "--out",
        s(&car),
    ]);
    let leaf = text_of(&car.join("provisioning.pem"));
    assert!(
        leaf.contains("secp521r1") || leaf.contains("P-521"),
        "{leaf}"
    );
    d.trust_oem(&car.join("oem-root.pem"));
    d.contract("DE8AA987654321", PCID20);
    let req = d.path("req20.b64");
    d.ev_ok(&[
        "install-req",
        "--schema",
        "20",
        "--oem-cert",
        s(&car.join("provisioning.pem")),
        "--oem-key",
        s(&car.join("provisioning.key")),
        "--oem-chain",
        s(&car.join("oem-chain.pem")),
        "--root",
        s(&d.ex.join("v2g-root-20.pem")),
        "--session-id",
        SID,
        "--out",
        s(&req),
    ]);
    let res = d.ocpp(&std::fs::read_to_string(&req).unwrap(), NS20, "Install");
    let res_path = d.path("res20.b64");
    std::fs::write(&res_path, res).unwrap();
    let key = car.join("provisioning.key");
    let base = |pcid: &str| -> Vec<String> {
        [
            "check-res",
            "--res",
            s(&res_path),
            "--key",
            s(&key),
            "--v2g-root",
            s(&d.ex.join("v2g-root-20.pem")),
            "--mo-root",
            s(&d.ex.join("mo-root-20.pem")),
            "--session-id",
            SID,
            "--pcid",
            pcid,
        ]
        .iter()
        .map(|x| x.to_string())
        .collect()
    };
    let saved = d.path("contract20");
    let mut args = base(PCID20);
    args.extend(["--save-contract".to_string(), s(&saved).to_string()]);
    let text = d.ev_ok(&refs(&args));
    assert!(text.contains("iso15118-20"), "{text}");
    openssl_verify(
        &d.ex.join("mo-root-20.pem"),
        &saved.join("contract-chain.pem"),
        &saved.join("contract.pem"),
    );
    assert_eq!(
        point_of_cert(&std::fs::read(saved.join("contract.pem")).unwrap()),
        point_of_key(&std::fs::read(saved.join("contract.key")).unwrap())
    );
    // The PCID is part of the AES-GCM associated data: another one does not decrypt.
    let e = d.ev_fails(&refs(&base("WP0ZZZ99ZTS3921246")));
    assert!(e.contains("contract_key"), "{e}");
}
