//! OCPP security profiles 2 and 3 end to end, against the real binary, a real SoftHSM2 token and
//! both stores, with the openssl CLI as the independent peer: station certificates (RSA 2048 and
//! P-256) through `POST /api/v1/ocpp/sign-certificate`, a CSMS server certificate through the
//! RFC 7030 tree, a TLS 1.3 mutual handshake between `openssl s_server` and `openssl s_client`
//! holding them (and its refusal for a revoked station or another CSO's root), the root set a
//! station installs, firmware signing, `simplereenroll` over mutual TLS, and the negative list.
//!
//! No EST client library is in the registries this project may use, so the EST calls here are a
//! client written from RFC 7030 (curl with the RFC's content types, openssl to decode).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine;
use common::*;
use serde_json::{Value, json};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const ORG: &str = "pnc-pki Demo CSO";

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn must(args: &[&str]) -> String {
    let (ok, out) = openssl(args);
    assert!(ok, "openssl {args:?}: {out}");
    out
}

/// A CSR made by the openssl CLI: `key` is `rsa:BITS` or `ec:CURVE`; extra `-addext` values.
fn csr(dir: &Path, name: &str, key: &str, subj: &str, addext: &[&str]) -> (PathBuf, PathBuf) {
    let k = dir.join(format!("{name}.key"));
    let c = dir.join(format!("{name}.csr"));
    let mut args: Vec<String> = vec!["req".into(), "-new".into(), "-nodes".into()];
    match key.split_once(':') {
        Some(("rsa", bits)) => {
            args.extend(["-newkey".into(), format!("rsa:{bits}")]);
        }
        Some(("ec", curve)) => {
            args.extend([
                "-newkey".into(),
                "ec".into(),
                "-pkeyopt".into(),
                format!("ec_paramgen_curve:{curve}"),
            ]);
        }
        _ => panic!("key {key}"),
    }
    args.extend(["-keyout".into(), s(&k), "-subj".into(), subj.into()]);
    for e in addext {
        args.extend(["-addext".into(), e.to_string()]);
    }
    args.extend(["-sha256".into(), "-out".into(), s(&c)]);
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    must(&a);
    (c, k)
}

/// The HTTPS side of one `serve`: base URL, the CA its server certificate chains to, a token.
struct Api {
    base: String,
    ca: String,
    token: String,
}

impl Api {
    fn call(&self, method: &str, path: &str, ctype: &str, body: Option<&str>) -> (i32, String) {
        let url = format!("{}{path}", self.base);
        let auth = format!("Authorization: Bearer {}", self.token);
        let ct = format!("Content-Type: {ctype}");
        let mut args = vec!["--cacert", &self.ca, "-X", method, "-H", &auth, "-H", &ct];
        if let Some(b) = body {
            args.extend(["--data-binary", b]);
        }
        args.push(&url);
        let (code, out) = curl(&args);
        let body = out.rsplit_once('\n').map(|x| x.0).unwrap_or("").to_string();
        (code, body)
    }

    /// POST a SignCertificate body; (status, JSON).
    fn sign(&self, v: &Value) -> (i32, Value) {
        let (code, body) = self.call(
            "POST",
            "/api/v1/ocpp/sign-certificate",
            "application/json",
            Some(&v.to_string()),
        );
        let j = serde_json::from_str(&body).unwrap_or_else(|_| json!({ "raw": body }));
        (code, j)
    }

    fn get_json(&self, path: &str) -> (i32, Value) {
        let (code, body) = self.call("GET", path, "application/json", None);
        (code, serde_json::from_str(&body).unwrap_or(Value::Null))
    }
}

/// The constraints of the OCPP 2.0.1 / 2.1 JSON schemas (OCA) for the bodies we answer,
/// restated: properties, required, additionalProperties false, maxLength, enums.
fn ocpp_schema(name: &str) -> Value {
    let hash_data = json!({
        "type": "object", "additionalProperties": false,
        "required": ["hashAlgorithm", "issuerNameHash", "issuerKeyHash", "serialNumber"],
        "properties": {
            "hashAlgorithm": {"enum": ["SHA256", "SHA384", "SHA512"]},
            "issuerNameHash": {"type": "string", "maxLength": 128},
            "issuerKeyHash": {"type": "string", "maxLength": 128},
            "serialNumber": {"type": "string", "maxLength": 40},
        },
    });
    let custom = json!({"type": "object", "required": ["vendorId"]});
    match name {
        // OCPP 2.0.1 CertificateSignedRequest.
        "CertificateSignedRequest-2.0.1" => json!({
            "type": "object", "additionalProperties": false, "required": ["certificateChain"],
            "properties": {
                "customData": custom,
                "certificateChain": {"type": "string", "maxLength": 10000},
                "certificateType": {"enum": ["ChargingStationCertificate", "V2GCertificate"]},
            },
        }),
        // OCPP 2.1 CertificateSignedRequest: requestId, V2G20Certificate.
        "CertificateSignedRequest-2.1" => json!({
            "type": "object", "additionalProperties": false, "required": ["certificateChain"],
            "properties": {
                "customData": custom,
                "certificateChain": {"type": "string", "maxLength": 10000},
                "certificateType": {"enum": ["ChargingStationCertificate", "V2GCertificate", "V2G20Certificate"]},
                "requestId": {"type": "integer"},
            },
        }),
        "SignCertificateResponse" => json!({
            "type": "object", "additionalProperties": false, "required": ["status"],
            "properties": {
                "customData": custom,
                "status": {"enum": ["Accepted", "Rejected"]},
                "statusInfo": {
                    "type": "object", "additionalProperties": false, "required": ["reasonCode"],
                    "properties": {
                        "reasonCode": {"type": "string", "maxLength": 20},
                        "additionalInfo": {"type": "string", "maxLength": 512},
                    },
                },
            },
        }),
        "InstallCertificateRequest" => json!({
            "type": "object", "additionalProperties": false,
            "required": ["certificateType", "certificate"],
            "properties": {
                "customData": custom,
                "certificateType": {"enum": ["V2GRootCertificate", "MORootCertificate", "CSMSRootCertificate", "ManufacturerRootCertificate"]},
                "certificate": {"type": "string", "maxLength": 5500},
            },
        }),
        "CertificateHashDataChainType" => json!({
            "type": "object", "additionalProperties": false,
            "required": ["certificateType", "certificateHashData"],
            "properties": {
                "certificateType": {"enum": ["V2GRootCertificate", "MORootCertificate", "CSMSRootCertificate", "V2GCertificateChain", "ManufacturerRootCertificate"]},
                "certificateHashData": hash_data,
            },
        }),
        other => panic!("schema {other}"),
    }
}

/// Validate every (schema, body) with python-jsonschema, and read every base64 PKCS#7 body with
/// pyca/cryptography: two readers we did not write, in one Python run. Under CI a missing
/// module fails the test.
fn independent_checks(dir: &Path, schemas: &[(&str, Value)], pkcs7_b64: &[String]) {
    let input = json!({
        "schemas": schemas.iter().map(|(n, v)| json!([ocpp_schema(n), v, n])).collect::<Vec<_>>(),
        "pkcs7": pkcs7_b64,
    });
    let path = dir.join("independent.json");
    std::fs::write(&path, input.to_string()).unwrap();
    let script = "import json, sys, base64\n\
try:\n    import jsonschema\n    from cryptography.hazmat.primitives.serialization import pkcs7\n\
except ImportError as e:\n    print('MISSING', e); sys.exit(3)\n\
d = json.load(open(sys.argv[1]))\n\
for schema, body, name in d['schemas']:\n    jsonschema.validate(body, schema)\n\
for b in d['pkcs7']:\n    certs = pkcs7.load_der_pkcs7_certificates(base64.b64decode(b))\n    assert certs, 'empty PKCS#7'\n\
print('OK', len(d['schemas']), len(d['pkcs7']))\n";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(&path)
        .output();
    let Ok(out) = out else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but python3 is missing"
        );
        eprintln!("\n!!! SKIPPED: python3 is missing !!!\n");
        return;
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.code() == Some(3) {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but python-jsonschema / pyca/cryptography is missing: {text}"
        );
        eprintln!("\n!!! SKIPPED: {text} !!!\n");
        return;
    }
    assert!(out.status.success() && text.starts_with("OK"), "{text}");
}

/// A file of `tests/vectors/ocpp/`.
fn vector(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors/ocpp")
        .join(name)
}

/// `curl -s` writing the body to `out`; the HTTP status.
fn curl_to_file(args: &[&str], out: &Path) -> i32 {
    let o = Command::new("curl")
        .args(["-s", "--max-time", "10", "-w", "%{http_code}", "-o"])
        .arg(out)
        .args(args)
        .output()
        .expect("curl");
    String::from_utf8_lossy(&o.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

fn sign_req(station: &str, csr: &Path, ty: Option<&str>) -> Value {
    let mut v = json!({ "stationId": station, "csr": std::fs::read_to_string(csr).unwrap() });
    if let Some(t) = ty {
        v["certificateType"] = t.into();
    }
    v
}

/// Split a PEM bundle into files `name-0.pem`, `name-1.pem`, …; returns their paths.
fn split_pem(dir: &Path, name: &str, pem: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for (i, block) in pem
        .split("-----END CERTIFICATE-----")
        .filter(|b| b.contains("BEGIN"))
        .enumerate()
    {
        let p = dir.join(format!("{name}-{i}.pem"));
        std::fs::write(
            &p,
            format!("{}-----END CERTIFICATE-----\n", block.trim_start()),
        )
        .unwrap();
        out.push(p);
    }
    out
}

/// `openssl verify -x509_strict [-purpose P]` of `leaf` with `untrusted` against `root`.
fn verify(root: &Path, untrusted: &Path, leaf: &Path, purpose: Option<&str>) -> (bool, String) {
    let mut a = vec!["verify", "-x509_strict"];
    if let Some(p) = purpose {
        a.extend(["-purpose", p]);
    }
    let (r, u, l) = (s(root), s(untrusted), s(leaf));
    a.extend(["-CAfile", &r, "-untrusted", &u, &l]);
    let (ok, out) = openssl(&a);
    (ok && out.contains(": OK"), out)
}

fn count_certs(env: &Env, profile: &str) -> usize {
    let out = env.ok(&["list", "--profile", profile, "--json"]);
    serde_json::from_str::<Value>(&out)
        .unwrap()
        .as_array()
        .map(|a| a.len())
        .unwrap_or(0)
}

/// One TLS 1.3 handshake: `openssl s_server` with `server` (+ chain) asking for a client
/// certificate under `client_ca` (and checking `crl` when given), `openssl s_client` presenting
/// `client`. Returns whether the server accepted the client (its page names the client).
#[allow(clippy::too_many_arguments)]
fn handshake(
    dir: &Path,
    server: (&Path, &Path, &Path),
    client_ca: &Path,
    crl: Option<&Path>,
    client: (&Path, &Path, &Path),
    server_root: &Path,
    expect_cn: &str,
) -> bool {
    let port = free_port().to_string();
    let mut sargs: Vec<String> = [
        "s_server",
        "-accept",
        &port,
        "-tls1_3",
        "-cert",
        &s(server.0),
        "-key",
        &s(server.1),
        "-cert_chain",
        &s(server.2),
        "-Verify",
        "3",
        "-verify_return_error",
        "-CAfile",
        &s(client_ca),
        "-www",
    ]
    .iter()
    .map(|x| x.to_string())
    .collect();
    if let Some(c) = crl {
        sargs.extend(["-CRL".into(), s(c), "-crl_check".into()]);
    }
    let log_path = dir.join(format!("s_server-{port}.log"));
    let log = std::fs::File::create(&log_path).unwrap();
    let mut srv = Command::new("openssl")
        .args(&sargs)
        .stdin(Stdio::piped())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("openssl s_server");
    // s_server says ACCEPT once it listens (a probe connection would be a handshake of its own).
    for _ in 0..200 {
        if std::fs::read_to_string(&log_path).is_ok_and(|l| l.contains("ACCEPT")) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-tls1_3",
            "-cert",
            &s(client.0),
            "-key",
            &s(client.1),
            "-cert_chain",
            &s(client.2),
            "-CAfile",
            &s(server_root),
            "-verify_return_error",
            "-verify_hostname",
            "csms.test",
            "-ign_eof",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .unwrap()
                .write_all(b"GET / HTTP/1.0\r\n\r\n")?;
            c.wait_with_output()
        })
        .expect("openssl s_client");
    let _ = srv.kill();
    let _ = srv.wait();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.contains("Verification: OK")
        && text.contains("Protocol  : TLSv1.3")
        && text.contains("Client certificate")
        && text.contains(&format!("CN={expect_cn}"))
}

#[test]
fn ocpp_station_and_csms_certificates_over_http_and_tls() {
    for backend in backends() {
        let env = Env::new(backend);
        let d = env.path().to_path_buf();
        env.init();
        let export = env.export();
        let root = export.join("csms-root.pem");
        let sub = export.join("cso-sub-ca.pem");
        for id in ["csms-root", "cso-sub-ca", "manufacturer-root"] {
            assert!(
                export.join(format!("{id}.pem")).exists(),
                "{id} not exported"
            );
        }
        // `client add --role csms --tenant ORG --tenant 'DE*ABC'` as an operator types it (the
        // name defaults to the role and first tenant).
        let out = env.ok(&[
            "client",
            "add",
            "--role",
            "csms",
            "--tenant",
            ORG,
            "--tenant",
            "DE*ABC",
            "--tenant",
            "dns:csms.test",
            "--tenant",
            "ip:127.0.0.1",
            "--json",
        ]);
        let v: Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(v["name"], format!("csms {ORG}"));
        assert_eq!(
            v["tenants"],
            json!([ORG, "DE*ABC", "dns:csms.test", "ip:127.0.0.1"])
        );
        let csms = (
            v["client_id"].as_str().unwrap().to_string(),
            v["client_secret"].as_str().unwrap().to_string(),
        );
        let cpo = env.client_add("cpo", "cpo", &["DE*ABC"]);
        // A TLS server for the API whose client CA is our CSO chain: simplereenroll needs it.
        let tca = TestCa::new(&d, "api-tls");
        let (api_cert, api_key) = tca.server_cert();
        let client_ca = d.join("client-ca.pem");
        let mut bundle = std::fs::read(&sub).unwrap();
        bundle.extend(std::fs::read(&root).unwrap());
        std::fs::write(&client_ca, &bundle).unwrap();
        let srv = env.spawn_serve(&[
            ("PNC_TLS_CERT", &s(&api_cert)),
            ("PNC_TLS_KEY", &s(&api_key)),
            ("PNC_TLS_CLIENT_CA", &s(&client_ca)),
            ("PNC_TLS_CLIENT_CA_ALLOW_OWN", "1"),
            // Superseded certificates are revoked at once here; the grace period is below.
            ("PNC_SUPERSEDE_GRACE", "0"),
        ]);
        let base = wait_tls_ready(&srv, &tca.cert);
        let token_of = |c: &(String, String)| {
            let body =
                json!({"grant_type": "client_credentials", "client_id": c.0, "client_secret": c.1})
                    .to_string();
            let (code, out) = curl(&[
                "--cacert",
                &s(&tca.cert),
                "-H",
                "Content-Type: application/json",
                "--data-binary",
                &body,
                &format!("{base}/oauth/token"),
            ]);
            assert_eq!(code, 200, "{out}");
            let j: Value = serde_json::from_str(out.rsplit_once('\n').unwrap().0).unwrap();
            j["access_token"].as_str().unwrap().to_string()
        };
        let api = Api {
            base: base.clone(),
            ca: s(&tca.cert),
            token: token_of(&csms),
        };
        // Bodies for the schema check, PKCS#7 answers for a second reader (checked at the end).
        let mut bodies: Vec<(&str, Value)> = Vec::new();
        let mut p7s: Vec<String> = Vec::new();

        // --- RSA 2048 and P-256 stations through the OCPP route.
        let (rsa_csr, rsa_key) = csr(&d, "cs1", "rsa:2048", &format!("/O={ORG}/CN=CS-0001"), &[]);
        let mut req = sign_req("CS-0001", &rsa_csr, Some("ChargingStationCertificate"));
        req["requestId"] = 42.into();
        let (code, body) = api.sign(&req);
        assert_eq!(code, 200, "{body}");
        let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            ["certificateChain", "certificateType", "requestId"],
            "{body}"
        );
        assert_eq!(body["certificateType"], "ChargingStationCertificate");
        assert_eq!(body["requestId"], 42);
        bodies.push(("CertificateSignedRequest-2.1", body.clone()));
        let chain_pem = body["certificateChain"].as_str().unwrap();
        assert!(chain_pem.len() <= 10_000);
        let rsa_chain = d.join("cs1-chain.pem");
        std::fs::write(&rsa_chain, chain_pem).unwrap();
        let parts = split_pem(&d, "cs1", chain_pem);
        assert_eq!(parts.len(), 2, "leaf and sub-CA, no root");
        let rsa_leaf = parts[0].clone();
        let (ok, out) = verify(&root, &rsa_chain, &rsa_leaf, Some("sslclient"));
        assert!(ok, "{out}");
        let text = must(&["x509", "-in", &s(&rsa_leaf), "-noout", "-text"]);
        assert!(
            text.contains("Subject: O = pnc-pki Demo CSO, CN = CS-0001"),
            "{text}"
        );
        assert!(
            text.contains("Digital Signature, Key Encipherment"),
            "{text}"
        );
        assert!(text.contains("TLS Web Client Authentication"), "{text}");
        assert!(text.contains("OCSP - URI:"), "{text}");

        let (ec_csr, ec_key) = csr(&d, "cs2", "ec:P-256", &format!("/O={ORG}/CN=CS-0002"), &[]);
        // certificateType omitted: the documented default, ChargingStationCertificate.
        let (code, body) = api.sign(&sign_req("CS-0002", &ec_csr, None));
        assert_eq!(code, 200, "{body}");
        assert_eq!(body["certificateType"], "ChargingStationCertificate");
        assert!(body.get("requestId").is_none());
        bodies.push(("CertificateSignedRequest-2.0.1", body.clone()));
        let ec_chain = d.join("cs2-chain.pem");
        std::fs::write(&ec_chain, body["certificateChain"].as_str().unwrap()).unwrap();
        let ec_leaf = split_pem(&d, "cs2", body["certificateChain"].as_str().unwrap())[0].clone();
        let (ok, out) = verify(&root, &ec_chain, &ec_leaf, Some("sslclient"));
        assert!(ok, "{out}");
        let text = must(&["x509", "-in", &s(&ec_leaf), "-noout", "-text"]);
        assert!(text.contains("Digital Signature, Key Agreement"), "{text}");

        // A station that does not know its CSO's name sends CN only: the CA writes the CSMS's
        // one organization into O (a CSR with another O is refused below).
        let (bare_csr, _) = csr(&d, "cs5", "ec:P-256", "/CN=CS-0005", &[]);
        let (code, body) = api.sign(&sign_req(
            "CS-0005",
            &bare_csr,
            Some("ChargingStationCertificate"),
        ));
        assert_eq!(code, 200, "{body}");
        let bare_chain = d.join("cs5-chain.pem");
        std::fs::write(&bare_chain, body["certificateChain"].as_str().unwrap()).unwrap();
        let bare_leaf = split_pem(&d, "cs5", body["certificateChain"].as_str().unwrap())[0].clone();
        let (ok, out) = verify(&root, &bare_chain, &bare_leaf, Some("sslclient"));
        assert!(ok, "{out}");
        let text = must(&["x509", "-in", &s(&bare_leaf), "-noout", "-subject"]);
        assert!(
            text.contains("O = pnc-pki Demo CSO, CN = CS-0005"),
            "{text}"
        );

        // --- A V2G (SECC) certificate through the same route, for the operator prefix.
        let (v2g_csr, _) = csr(
            &d,
            "secc",
            "ec:P-256",
            "/C=DE/O=ACME/DC=CPO/CN=DE*ABC*E1234567",
            &[],
        );
        let (code, body) = api.sign(&sign_req("CS-0001", &v2g_csr, Some("V2GCertificate")));
        assert_eq!(code, 200, "{body}");
        assert_eq!(body["certificateType"], "V2GCertificate");
        bodies.push(("CertificateSignedRequest-2.0.1", body.clone()));
        let v2g_chain = d.join("secc-chain.pem");
        std::fs::write(&v2g_chain, body["certificateChain"].as_str().unwrap()).unwrap();
        let v2g_leaf = split_pem(&d, "secc", body["certificateChain"].as_str().unwrap())[0].clone();
        let (ok, out) = verify(&export.join("v2g-root.pem"), &v2g_chain, &v2g_leaf, None);
        assert!(ok, "{out}");

        // --- The root set a station installs, and hashRootCertificate taken from it.
        let (code, set) = api.get_json("/api/v1/ocpp/install-certificates?stationId=CS-0001");
        assert_eq!(code, 200, "{set}");
        let types: Vec<&str> = set["installCertificateRequests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["certificateType"].as_str().unwrap())
            .collect();
        for t in [
            "CSMSRootCertificate",
            "ManufacturerRootCertificate",
            "V2GRootCertificate",
            "MORootCertificate",
        ] {
            assert!(types.contains(&t), "{t} missing: {types:?}");
        }
        for r in set["installCertificateRequests"].as_array().unwrap() {
            bodies.push(("InstallCertificateRequest", r.clone()));
        }
        for h in set["certificateHashDataChain"].as_array().unwrap() {
            bodies.push(("CertificateHashDataChainType", h.clone()));
        }
        let csms_root_pem = std::fs::read_to_string(&root).unwrap();
        let entry = set["installCertificateRequests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["certificateType"] == "CSMSRootCertificate")
            .unwrap();
        assert_eq!(entry["certificate"].as_str().unwrap(), csms_root_pem);
        let hash = set["certificateHashDataChain"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["certificateType"] == "CSMSRootCertificate")
            .unwrap()["certificateHashData"]
            .clone();
        // Independently: the serial as openssl prints it, the name hash over the DER subject.
        let serial = must(&["x509", "-in", &s(&root), "-noout", "-serial"]);
        let serial = serial
            .trim()
            .trim_start_matches("serial=")
            .to_ascii_lowercase();
        assert_eq!(
            hash["serialNumber"].as_str().unwrap(),
            serial.trim_start_matches('0')
        );
        let (hr_csr, _) = csr(&d, "cs3", "rsa:2048", &format!("/O={ORG}/CN=CS-0003"), &[]);
        let mut req = sign_req("CS-0003", &hr_csr, Some("ChargingStationCertificate"));
        req["hashRootCertificate"] = hash.clone();
        let (code, body) = api.sign(&req);
        assert_eq!(code, 200, "the true root hash: {body}");

        // --- Negatives: each refused in OCPP terms, nothing issued.
        let before = count_certs(&env, "charging-station");
        let before_secc = count_certs(&env, "secc-leaf");
        let mut forged = hash.clone();
        let k = forged["issuerKeyHash"].as_str().unwrap().to_string();
        let flipped = if k.starts_with('0') { "1" } else { "0" };
        forged["issuerKeyHash"] = format!("{flipped}{}", &k[1..]).into();
        let (other_csr, _) = csr(&d, "other", "rsa:2048", "/O=Other CSO/CN=CS-0009", &[]);
        let (r1024, _) = csr(
            &d,
            "r1024",
            "rsa:1024",
            &format!("/O={ORG}/CN=CS-0004"),
            &[],
        );
        let (rsa_v2g, _) = csr(
            &d,
            "rsav2g",
            "rsa:2048",
            "/C=DE/O=ACME/DC=CPO/CN=DE*ABC*E7654321",
            &[],
        );
        let (ca_csr, _) = csr(
            &d,
            "catrue",
            "rsa:2048",
            &format!("/O={ORG}/CN=CS-0005"),
            &["basicConstraints=critical,CA:TRUE"],
        );
        let mut with_forged = sign_req("CS-0003", &hr_csr, Some("ChargingStationCertificate"));
        with_forged["hashRootCertificate"] = forged;
        let malformed = json!({
            "stationId": "CS-0001",
            "csr": "-----BEGIN CERTIFICATE REQUEST-----\nnot base64 at all\n-----END CERTIFICATE REQUEST-----\n",
            "certificateType": "ChargingStationCertificate",
        });
        let cases: Vec<(&str, Value, i32, &str)> = vec![
            (
                "CN is not stationId",
                sign_req("CS-9999", &rsa_csr, Some("ChargingStationCertificate")),
                400,
                "station_id_mismatch",
            ),
            (
                "another CSO's station",
                sign_req("CS-0009", &other_csr, Some("ChargingStationCertificate")),
                403,
                "forbidden_tenant",
            ),
            (
                "RSA 1024",
                sign_req("CS-0004", &r1024, Some("ChargingStationCertificate")),
                400,
                "profile_violation",
            ),
            (
                "RSA for a V2G profile",
                sign_req("CS-0001", &rsa_v2g, Some("V2GCertificate")),
                400,
                "profile_violation",
            ),
            (
                "a CSR asking for CA:TRUE",
                sign_req("CS-0005", &ca_csr, Some("ChargingStationCertificate")),
                400,
                "profile_violation",
            ),
            (
                "a forged hashRootCertificate",
                with_forged,
                400,
                "root_hash_mismatch",
            ),
            ("malformed PEM", malformed, 400, "csr_malformed"),
            (
                "EVerest's CSR without a CN (station certificate)",
                sign_req(
                    "CS-0001",
                    &vector("everest-csr-no-cn.pem"),
                    Some("ChargingStationCertificate"),
                ),
                400,
                "profile_violation",
            ),
            (
                "EVerest's CSR without a CN (V2G certificate)",
                sign_req(
                    "CS-0001",
                    &vector("everest-csr-no-cn.pem"),
                    Some("V2GCertificate"),
                ),
                400,
                "profile_violation",
            ),
        ];
        for (what, v, status, code) in cases {
            let (got, body) = api.sign(&v);
            assert_eq!(got, status, "{what}: {body}");
            assert_eq!(body["status"], "Rejected", "{what}: {body}");
            // What the CSMS answers the station: the OCPP part of the refusal.
            bodies.push((
                "SignCertificateResponse",
                json!({"status": body["status"], "statusInfo": body["statusInfo"]}),
            ));
            assert_eq!(body["code"], code, "{what}: {body}");
            let reason = body["statusInfo"]["reasonCode"].as_str().unwrap();
            assert!(!reason.is_empty() && reason.len() <= 20, "{what}: {body}");
            assert!(
                !body["statusInfo"]["additionalInfo"]
                    .as_str()
                    .unwrap()
                    .is_empty(),
                "{what}: {body}"
            );
        }
        assert_eq!(
            count_certs(&env, "charging-station"),
            before,
            "nothing issued"
        );
        assert_eq!(
            count_certs(&env, "secc-leaf"),
            before_secc,
            "nothing issued"
        );
        // A role that may not relay SignCertificate is refused in HTTP terms.
        let cpo_api = Api {
            base: base.clone(),
            ca: s(&tca.cert),
            token: token_of(&cpo),
        };
        let (code, body) = cpo_api.sign(&sign_req("CS-0001", &rsa_csr, None));
        assert_eq!(code, 403, "{body}");
        assert_eq!(body["code"], "forbidden_role", "{body}");

        // --- The CSMS server certificate through the RFC 7030 tree, SANs exactly as asked.
        let (srv_csr, srv_key) = csr(
            &d,
            "csms",
            "ec:P-256",
            &format!("/O={ORG}/CN=csms.test"),
            &["subjectAltName=DNS:csms.test,IP:127.0.0.1"],
        );
        must(&[
            "req",
            "-in",
            &s(&srv_csr),
            "-outform",
            "DER",
            "-out",
            &s(&d.join("csms.der")),
        ]);
        let b64 = B64.encode(std::fs::read(d.join("csms.der")).unwrap());
        let (code, p7) = api.call(
            "POST",
            "/.well-known/est/csms/simpleenroll",
            "application/pkcs10",
            Some(&b64),
        );
        assert_eq!(code, 200, "{p7}");
        p7s.push(p7.trim().to_string());
        let p7_der = d.join("csms.p7");
        std::fs::write(&p7_der, B64.decode(p7.trim()).unwrap()).unwrap();
        let csms_chain = d.join("csms-chain.pem");
        must(&[
            "pkcs7",
            "-inform",
            "DER",
            "-in",
            &s(&p7_der),
            "-print_certs",
            "-out",
            &s(&csms_chain),
        ]);
        let parts = split_pem(&d, "csms", &std::fs::read_to_string(&csms_chain).unwrap());
        let srv_leaf = parts[0].clone();
        let (ok, out) = verify(&root, &csms_chain, &srv_leaf, Some("sslserver"));
        assert!(ok, "{out}");
        let san = must(&[
            "x509",
            "-in",
            &s(&srv_leaf),
            "-noout",
            "-ext",
            "subjectAltName",
        ]);
        let san_line = san.lines().nth(1).unwrap_or("").trim().to_string();
        assert_eq!(san_line, "DNS:csms.test, IP Address:127.0.0.1", "{san}");
        // A name that is not on this CSMS's allow-list: refused, nothing issued.
        let (bad_csr, _) = csr(
            &d,
            "evil",
            "ec:P-256",
            &format!("/O={ORG}/CN=csms.test"),
            &["subjectAltName=DNS:csms.test,DNS:evil.test"],
        );
        must(&[
            "req",
            "-in",
            &s(&bad_csr),
            "-outform",
            "DER",
            "-out",
            &s(&d.join("evil.der")),
        ]);
        let before_srv = count_certs(&env, "csms-server");
        let (code, out) = api.call(
            "POST",
            "/.well-known/est/csms/simpleenroll",
            "application/pkcs10",
            Some(&B64.encode(std::fs::read(d.join("evil.der")).unwrap())),
        );
        assert_eq!(code, 400, "{out}");
        assert!(out.contains("allow-list"), "{out}");
        assert_eq!(count_certs(&env, "csms-server"), before_srv);
        // Another CSO's host name in the CN (every SAN allowed): refused the same way.
        let (cn_csr, _) = csr(
            &d,
            "evil-cn",
            "ec:P-256",
            &format!("/O={ORG}/CN=csms.evil.example"),
            &["subjectAltName=DNS:csms.test"],
        );
        must(&[
            "req",
            "-in",
            &s(&cn_csr),
            "-outform",
            "DER",
            "-out",
            &s(&d.join("evil-cn.der")),
        ]);
        let (code, out) = api.call(
            "POST",
            "/.well-known/est/csms/simpleenroll",
            "application/pkcs10",
            Some(&B64.encode(std::fs::read(d.join("evil-cn.der")).unwrap())),
        );
        assert_eq!(code, 400, "{out}");
        assert!(out.contains("CN 'csms.evil.example'"), "{out}");
        assert_eq!(count_certs(&env, "csms-server"), before_srv);

        // --- TLS 1.3, mutual: the CSMS server certificate and the RSA station certificate.
        let server = (srv_leaf.as_path(), srv_key.as_path(), sub.as_path());
        assert!(
            handshake(
                &d,
                server,
                &root,
                None,
                (&rsa_leaf, &rsa_key, &sub),
                &root,
                "CS-0001"
            ),
            "RSA station ↔ CSMS handshake"
        );
        assert!(
            handshake(
                &d,
                server,
                &root,
                None,
                (&ec_leaf, &ec_key, &sub),
                &root,
                "CS-0002"
            ),
            "P-256 station ↔ CSMS handshake"
        );
        // Revoke the P-256 station: OCSP says so, and a server checking revocation refuses it.
        let serial = must(&["x509", "-in", &s(&ec_leaf), "-noout", "-serial"]);
        let serial = serial
            .trim()
            .trim_start_matches("serial=")
            .to_ascii_lowercase();
        let (code, out) = api.call(
            "POST",
            &format!("/api/v1/certificates/cso-sub-ca/{serial}/revoke"),
            "application/json",
            Some(r#"{"reason":"keyCompromise"}"#),
        );
        assert_eq!(code, 200, "{out}");
        // What the CSMS asks before it lets a station in: OCSP (the responder is behind this
        // server's TLS, so the request goes through curl and openssl reads the answer).
        must(&[
            "ocsp",
            "-issuer",
            &s(&sub),
            "-cert",
            &s(&ec_leaf),
            "-reqout",
            &s(&d.join("ocsp.req")),
            "-no_nonce",
        ]);
        let code = curl_to_file(
            &[
                "--cacert",
                &s(&tca.cert),
                "-H",
                "Content-Type: application/ocsp-request",
                "--data-binary",
                &format!("@{}", s(&d.join("ocsp.req"))),
                &format!("{base}/ocsp"),
            ],
            &d.join("ocsp.resp"),
        );
        assert_eq!(code, 200);
        let status = must(&[
            "ocsp",
            "-respin",
            &s(&d.join("ocsp.resp")),
            "-issuer",
            &s(&sub),
            "-cert",
            &s(&ec_leaf),
            "-CAfile",
            &s(&root),
        ]);
        assert!(status.contains(": revoked"), "OCSP: {status}");
        assert!(status.contains("Response verify OK"), "OCSP: {status}");
        let code = curl_to_file(
            &[
                "--cacert",
                &s(&tca.cert),
                &format!("{base}/crl/cso-sub-ca.crl"),
            ],
            &d.join("sub.crl"),
        );
        assert_eq!(code, 200);
        let crl_pem = d.join("sub.crl.pem");
        must(&[
            "crl",
            "-inform",
            "DER",
            "-in",
            &s(&d.join("sub.crl")),
            "-out",
            &s(&crl_pem),
        ]);
        let ca_and_sub = d.join("ca-and-sub.pem");
        std::fs::write(&ca_and_sub, &bundle).unwrap();
        assert!(
            !handshake(
                &d,
                server,
                &ca_and_sub,
                Some(&crl_pem),
                (&ec_leaf, &ec_key, &sub),
                &root,
                "CS-0002"
            ),
            "a revoked station must be refused"
        );
        assert!(
            handshake(
                &d,
                server,
                &ca_and_sub,
                Some(&crl_pem),
                (&rsa_leaf, &rsa_key, &sub),
                &root,
                "CS-0001"
            ),
            "the CRL check itself lets a good station in"
        );
        // A station certificate from another CSO's root.
        let foreign = TestCa::new(&d, "other-cso-root");
        let (f_cert, f_key) = foreign.issue(
            "foreign-station",
            "/O=Other CSO/CN=CS-0001",
            "extendedKeyUsage=clientAuth\n",
        );
        assert!(
            !handshake(
                &d,
                server,
                &root,
                None,
                (&f_cert, &f_key, &foreign.cert),
                &root,
                "CS-0001"
            ),
            "another CSO's root must be refused"
        );

        // --- Re-issue supersedes: a new certificate for CS-0001 revokes the first one.
        let (rsa2_csr, _) = csr(&d, "cs1b", "rsa:2048", &format!("/O={ORG}/CN=CS-0001"), &[]);
        let (code, body) = api.sign(&sign_req("CS-0001", &rsa2_csr, None));
        assert_eq!(code, 200, "{body}");
        let old_serial = must(&["x509", "-in", &s(&rsa_leaf), "-noout", "-serial"]);
        let old_serial = old_serial
            .trim()
            .trim_start_matches("serial=")
            .to_ascii_lowercase();
        let (code, rec) = api.get_json(&format!("/api/v1/certificates/cso-sub-ca/{old_serial}"));
        assert_eq!(code, 200, "{rec}");
        assert_eq!(rec["status"], "revoked", "{rec}");
        assert_eq!(rec["revocation_reason"], "superseded", "{rec}");

        // --- Renewal report: the valid station certificates, not the superseded one.
        let report = env.ok(&[
            "report",
            "expiring",
            "--days",
            "400",
            "--profile",
            "charging-station",
            "--json",
        ]);
        let report: Value = serde_json::from_str(&report).unwrap();
        let subjects: Vec<&str> = report
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["subject"].as_str().unwrap())
            .collect();
        assert!(
            subjects.contains(&"O=pnc-pki Demo CSO, CN=CS-0003"),
            "{subjects:?}"
        );
        assert_eq!(
            subjects
                .iter()
                .filter(|s| s.ends_with("CN=CS-0001"))
                .count(),
            1,
            "only the newest CS-0001: {subjects:?}"
        );
        assert!(
            !subjects.iter().any(|s| s.ends_with("CN=CS-0002")),
            "revoked"
        );

        // The search API, as the CSMS sees it: its CSO's station certificates, soon to expire.
        let soon = 1_000_000_000_000i64;
        let (code, page) = api.get_json(&format!(
            "/api/v1/certificates?profile=charging-station&status=valid&tenant=pnc-pki%20Demo%20CSO&expiring_before={soon}"
        ));
        assert_eq!(code, 200, "{page}");
        let listed: Vec<&str> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["subject"].as_str().unwrap())
            .collect();
        assert!(
            listed.contains(&"O=pnc-pki Demo CSO, CN=CS-0003"),
            "{listed:?}"
        );
        let (code, page) =
            api.get_json("/api/v1/certificates?profile=charging-station&tenant=Other%20CSO");
        assert_eq!(code, 403, "another CSO's certificates: {page}");

        // --- EST cacerts and csrattrs, parsed by openssl.
        let (code, p7) = api.call(
            "GET",
            "/.well-known/est/charging-station/cacerts",
            "application/pkcs7-mime",
            None,
        );
        assert_eq!(code, 200);
        p7s.push(p7.trim().to_string());
        std::fs::write(d.join("cacerts.p7"), B64.decode(p7.trim()).unwrap()).unwrap();
        let printed = must(&[
            "pkcs7",
            "-inform",
            "DER",
            "-in",
            &s(&d.join("cacerts.p7")),
            "-print_certs",
        ]);
        assert!(printed.contains("CN = Demo CSO Sub CA"), "{printed}");
        assert!(printed.contains("CN = Demo CSMS Root CA"), "{printed}");
        let (code, attrs) = api.call(
            "GET",
            "/.well-known/est/csms/csrattrs",
            "application/csrattrs",
            None,
        );
        assert_eq!(code, 200);
        std::fs::write(d.join("csrattrs.der"), B64.decode(attrs.trim()).unwrap()).unwrap();
        let parsed = must(&[
            "asn1parse",
            "-inform",
            "DER",
            "-in",
            &s(&d.join("csrattrs.der")),
        ]);
        for want in [
            "id-ecPublicKey",
            "prime256v1",
            "rsaEncryption",
            "sha256WithRSAEncryption",
            "ecdsa-with-SHA256",
            "X509v3 Subject Alternative Name",
        ] {
            assert!(parsed.contains(want), "{want}: {parsed}");
        }

        // --- simplereenroll over mutual TLS with the current (second) CS-0001 certificate.
        let cur_chain = d.join("cs1b-chain.pem");
        std::fs::write(&cur_chain, body["certificateChain"].as_str().unwrap()).unwrap();
        let cur_leaf = split_pem(&d, "cs1b", body["certificateChain"].as_str().unwrap())[0].clone();
        let cur_key = d.join("cs1b.key");
        let (re_csr, _) = csr(&d, "cs1c", "rsa:2048", &format!("/O={ORG}/CN=CS-0001"), &[]);
        must(&[
            "req",
            "-in",
            &s(&re_csr),
            "-outform",
            "DER",
            "-out",
            &s(&d.join("cs1c.der")),
        ]);
        let re_body = B64.encode(std::fs::read(d.join("cs1c.der")).unwrap());
        let reenroll = |cert: Option<(&Path, &Path)>, body: &str| {
            let url = format!("{base}/.well-known/est/charging-station/simplereenroll");
            let ca = s(&tca.cert);
            let mut args = vec![
                "--cacert".to_string(),
                ca,
                "-H".into(),
                "Content-Type: application/pkcs10".into(),
                "--data-binary".into(),
                body.to_string(),
            ];
            if let Some((c, k)) = cert {
                args.extend(["--cert".into(), s(c), "--key".into(), s(k)]);
            }
            args.push(url);
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            curl(&a)
        };
        let (code, out) = reenroll(None, &re_body);
        assert_eq!(code, 401, "no client certificate: {out}");
        let (other_subj, _) = csr(&d, "cs1d", "rsa:2048", &format!("/O={ORG}/CN=CS-0077"), &[]);
        must(&[
            "req",
            "-in",
            &s(&other_subj),
            "-outform",
            "DER",
            "-out",
            &s(&d.join("cs1d.der")),
        ]);
        let (code, out) = reenroll(
            Some((&cur_chain, &cur_key)),
            &B64.encode(std::fs::read(d.join("cs1d.der")).unwrap()),
        );
        assert_eq!(code, 400, "another subject: {out}");
        assert!(out.contains("subject_mismatch"), "{out}");
        let (code, out) = reenroll(Some((&cur_chain, &cur_key)), &re_body);
        assert_eq!(code, 200, "{out}");
        let body_b64 = out.rsplit_once('\n').unwrap().0.trim().to_string();
        p7s.push(body_b64.clone());
        std::fs::write(d.join("re.p7"), B64.decode(body_b64).unwrap()).unwrap();
        let printed = must(&[
            "pkcs7",
            "-inform",
            "DER",
            "-in",
            &s(&d.join("re.p7")),
            "-print_certs",
        ]);
        assert!(printed.contains("CN = CS-0001"), "{printed}");
        let cur_serial = must(&["x509", "-in", &s(&cur_leaf), "-noout", "-serial"]);
        let cur_serial = cur_serial
            .trim()
            .trim_start_matches("serial=")
            .to_ascii_lowercase();
        let (_, rec) = api.get_json(&format!("/api/v1/certificates/cso-sub-ca/{cur_serial}"));
        assert_eq!(rec["revocation_reason"], "superseded", "{rec}");
        // The superseded certificate cannot re-enroll again.
        let (code, out) = reenroll(Some((&cur_chain, &cur_key)), &re_body);
        assert_eq!(code, 401, "a superseded certificate: {out}");

        // --- Firmware signing with the key `init` made in the HSM (`firmware sign`).
        let image = d.join("firmware.bin");
        std::fs::write(&image, vec![0x5au8; 100_000]).unwrap();
        assert!(export.join("firmware-signing.pem").exists());
        let sig = d.join("firmware.hsm.sig");
        let fw_chain = d.join("firmware-chain.pem");
        let out = env.ok(&[
            "firmware",
            "sign",
            "--in",
            &s(&image),
            "--out",
            &s(&sig),
            "--cert-out",
            &s(&fw_chain),
            "--json",
        ]);
        let j: Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(
            B64.decode(j["signature"].as_str().unwrap()).unwrap(),
            std::fs::read(&sig).unwrap()
        );
        let fw_leaf =
            split_pem(&d, "fwhsm", &std::fs::read_to_string(&fw_chain).unwrap())[0].clone();
        assert_eq!(
            std::fs::read_to_string(&fw_leaf).unwrap().trim(),
            j["signingCertificate"].as_str().unwrap().trim()
        );
        let (ok, out) = verify(
            &export.join("manufacturer-root.pem"),
            &fw_chain,
            &fw_leaf,
            None,
        );
        assert!(ok, "{out}");
        let fw_pub = d.join("fwhsm.pub");
        must(&[
            "x509",
            "-in",
            &s(&fw_leaf),
            "-noout",
            "-pubkey",
            "-out",
            &s(&fw_pub),
        ]);
        let out = must(&[
            "dgst",
            "-sha256",
            "-verify",
            &s(&fw_pub),
            "-signature",
            &s(&sig),
            &s(&image),
        ]);
        assert!(out.contains("Verified OK"), "{out}");
        // One changed byte: the signature no longer verifies.
        let mut tampered = std::fs::read(&image).unwrap();
        tampered[500] ^= 1;
        std::fs::write(d.join("tampered.bin"), &tampered).unwrap();
        let (ok, _) = openssl(&[
            "dgst",
            "-sha256",
            "-verify",
            &s(&fw_pub),
            "-signature",
            &s(&sig),
            &s(&d.join("tampered.bin")),
        ]);
        assert!(!ok, "a tampered image must not verify");
        let audit = env.ok(&["audit", "export", "--action", "firmware.sign"]);
        assert!(audit.contains("firmware.sign"), "{audit}");

        // --- Firmware signing from a CSR: a certificate from the manufacturer root.
        let (fw_csr, fw_key) = csr(
            &d,
            "fw",
            "ec:P-256",
            "/O=pnc-pki Demo Manufacturer/CN=Firmware Signing 1",
            &[],
        );
        let fw_cert = d.join("fw.pem");
        env.ok(&[
            "issue",
            "--profile",
            "firmware-signing",
            "--csr",
            &s(&fw_csr),
            "--out",
            &s(&fw_cert),
        ]);
        // RSA is for the TLS certificates only: an RSA firmware-signing CSR is refused.
        let (fw_rsa, _) = csr(
            &d,
            "fwrsa",
            "rsa:2048",
            "/O=pnc-pki Demo Manufacturer/CN=Firmware Signing 2",
            &[],
        );
        let err = env.fails(&[
            "issue",
            "--profile",
            "firmware-signing",
            "--csr",
            &s(&fw_rsa),
            "--out",
            &s(&d.join("fwrsa.pem")),
        ]);
        assert!(err.contains("rsa-2048"), "{err}");
        let mroot = export.join("manufacturer-root.pem");
        let (ok, out) = verify(&mroot, &mroot, &fw_cert, None);
        assert!(ok, "{out}");
        let text = must(&["x509", "-in", &s(&fw_cert), "-noout", "-text"]);
        assert!(text.contains("Code Signing"), "{text}");
        let sig = d.join("firmware.sig");
        must(&[
            "dgst",
            "-sha256",
            "-sign",
            &s(&fw_key),
            "-out",
            &s(&sig),
            &s(&image),
        ]);
        let pubkey = d.join("fw.pub");
        must(&[
            "x509",
            "-in",
            &s(&fw_cert),
            "-noout",
            "-pubkey",
            "-out",
            &s(&pubkey),
        ]);
        let out = must(&[
            "dgst",
            "-sha256",
            "-verify",
            &s(&pubkey),
            "-signature",
            &s(&sig),
            &s(&image),
        ]);
        assert!(out.contains("Verified OK"), "{out}");
        drop(srv);

        independent_checks(&d, &bodies, &p7s);

        // --- With a grace period the replaced certificate stays valid, then is revoked.
        let graced = env.serve_with_env(&[
            ("PNC_SUPERSEDE_GRACE", "2s"),
            ("PNC_OCPP_DEFAULT_CERTIFICATE_TYPE", "V2GCertificate"),
        ]);
        let g = Api {
            base: graced.base.clone(),
            ca: s(&tca.cert),
            token: graced
                .bearer(&csms)
                .trim_start_matches("Bearer ")
                .to_string(),
        };
        let serial_of = |body: &Value, name: &str| {
            let leaf = split_pem(&d, name, body["certificateChain"].as_str().unwrap())[0].clone();
            let out = must(&["x509", "-in", &s(&leaf), "-noout", "-serial"]);
            out.trim()
                .trim_start_matches("serial=")
                .to_ascii_lowercase()
        };
        let (c1, _) = csr(&d, "g1", "ec:P-256", &format!("/O={ORG}/CN=CS-0200"), &[]);
        let (code, first) = g.sign(&sign_req(
            "CS-0200",
            &c1,
            Some("ChargingStationCertificate"),
        ));
        assert_eq!(code, 200, "{first}");
        let (c2, _) = csr(&d, "g2", "ec:P-256", &format!("/O={ORG}/CN=CS-0200"), &[]);
        let (code, second) = g.sign(&sign_req(
            "CS-0200",
            &c2,
            Some("ChargingStationCertificate"),
        ));
        assert_eq!(code, 200, "{second}");
        let old = serial_of(&first, "g1");
        let (_, rec) = g.get_json(&format!("/api/v1/certificates/cso-sub-ca/{old}"));
        assert_eq!(
            rec["status"], "valid",
            "still valid in its grace period: {rec}"
        );
        let audit = env.ok(&["audit", "export", "--action", "certificate.supersede"]);
        assert!(audit.contains(&old), "the schedule is audited: {audit}");
        let mut revoked = Value::Null;
        for _ in 0..100 {
            let (_, rec) = g.get_json(&format!("/api/v1/certificates/cso-sub-ca/{old}"));
            if rec["status"] == "revoked" {
                revoked = rec;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        assert_eq!(revoked["revocation_reason"], "superseded", "{revoked}");
        // This server's documented default for a request without certificateType.
        let (code, body) = g.sign(&sign_req("CS-0200", &v2g_csr, None));
        assert_eq!(code, 200, "{body}");
        assert_eq!(body["certificateType"], "V2GCertificate");
        let new = serial_of(&second, "g2");
        let (_, rec) = g.get_json(&format!("/api/v1/certificates/cso-sub-ca/{new}"));
        assert_eq!(rec["status"], "valid", "{rec}");
    }
}
