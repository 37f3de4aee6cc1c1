//! The HTTP API over a real socket (`pnc-pki serve`), on SQLite and PostgreSQL: OAuth2 tokens,
//! OPCP enrollment checked with the openssl CLI, cacerts order, rootCerts JSON, revocation seen in
//! the CRL by `openssl crl` and `openssl verify -crl_check`, the role/tenant/token route matrix,
//! bad input, and the audit trail.

mod common;

use std::path::{Path, PathBuf};

use base64::Engine;
use common::*;
use serde_json::json;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;
const EXT_ISSUER: &str = "https://idp.example.test";
const EXT_KID: &str = "ext-test-key";

struct Clients {
    cpo: (String, String),
    cpo_other: (String, String),
    mo: (String, String),
    mo_other: (String, String),
    oem: (String, String),
    oem_other: (String, String),
    cps: (String, String),
    csms: (String, String),
    csms_other: (String, String),
    admin: (String, String),
    auditor: (String, String),
}

/// An external token issuer: P-256 key (PKCS#8 PEM) and a JWKS file the server trusts.
fn external_issuer(dir: &Path) -> (Vec<u8>, PathBuf) {
    use openssl::bn::{BigNum, BigNumContext};
    use openssl::ec::{EcGroup, EcKey};
    use openssl::nid::Nid;
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    let key = EcKey::generate(&group).unwrap();
    let mut ctx = BigNumContext::new().unwrap();
    let (mut x, mut y) = (BigNum::new().unwrap(), BigNum::new().unwrap());
    key.public_key()
        .affine_coordinates(&group, &mut x, &mut y, &mut ctx)
        .unwrap();
    let jwks = json!({"keys": [{
        "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": EXT_KID,
        "x": B64URL.encode(x.to_vec_padded(32).unwrap()),
        "y": B64URL.encode(y.to_vec_padded(32).unwrap()),
    }]});
    let path = dir.join("jwks.json");
    std::fs::write(&path, jwks.to_string()).unwrap();
    let pem = openssl::pkey::PKey::from_ec_key(key)
        .unwrap()
        .private_key_to_pem_pkcs8()
        .unwrap();
    (pem, path)
}

/// A JWT signed by the external issuer's key.
fn mint(
    pem: &[u8],
    kid: &str,
    iss: &str,
    aud: &str,
    exp_in: i64,
    role: &str,
    tenants: &[&str],
) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    h.kid = Some(kid.to_string());
    let claims = json!({
        "iss": iss, "sub": "ext-client", "aud": aud, "iat": now, "nbf": now - 5,
        "exp": now + exp_in, "jti": "t", "role": role, "tenants": tenants,
    });
    let token = jsonwebtoken::encode(
        &h,
        &claims,
        &jsonwebtoken::EncodingKey::from_ec_pem(pem).unwrap(),
    )
    .unwrap();
    low_s(&token)
}

/// The token with its ES256 signature in low-S form (S replaced by n − S when above n/2): the
/// service refuses high-S tokens (`non_canonical_signature`) and `jsonwebtoken` does not
/// normalise, so half of its signatures would be refused.
fn low_s(token: &str) -> String {
    use openssl::bn::BigNum;
    let (input, sig) = token.rsplit_once('.').unwrap();
    let raw = B64URL.decode(sig).unwrap();
    let n =
        BigNum::from_hex_str("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551")
            .unwrap();
    let mut half = BigNum::new().unwrap();
    half.rshift1(&n).unwrap();
    let s = BigNum::from_slice(&raw[32..]).unwrap();
    if s <= half {
        return token.to_string();
    }
    let mut flipped = BigNum::new().unwrap();
    flipped.checked_sub(&n, &s).unwrap();
    let mut out = raw[..32].to_vec();
    out.extend(flipped.to_vec_padded(32).unwrap());
    format!("{input}.{}", B64URL.encode(out))
}

/// A `&'static str` for a route template built at run time (a test's handful of strings).
fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn token_form(srv: &Server, c: &(String, String)) -> String {
    let body = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}&audience={}",
        c.0, c.1, srv.base
    );
    let r = reply(
        http()
            .post(&srv.url("/oauth/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .send(body.as_bytes()),
    );
    assert_eq!(r.status, 200, "form token: {}", r.text());
    let v = r.json();
    assert_eq!(v["token_type"], "Bearer");
    assert!(v["expires_in"].as_i64().unwrap() > 0);
    assert!(v["scope"].is_string());
    v["access_token"].as_str().unwrap().to_string()
}

fn token_json(srv: &Server, c: &(String, String)) -> String {
    let r = reply(
        http()
            .post(&srv.url("/oauth/token"))
            .header("content-type", "application/json")
            .send(
                json!({"grant_type": "client_credentials", "client_id": c.0, "client_secret": c.1})
                    .to_string()
                    .as_bytes(),
            ),
    );
    assert_eq!(r.status, 200, "json token: {}", r.text());
    r.json()["access_token"].as_str().unwrap().to_string()
}

/// base64 DER of a CSR, wrapped at 64 columns (clients may send line breaks).
fn csr_body(env: &Env, name: &str, curve: &str, subject: &str) -> Vec<u8> {
    let der = read_pem_der(&env.openssl_csr(name, curve, subject));
    let b = B64.encode(der);
    b.as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join("\r\n")
        .into_bytes()
}

fn send(
    srv: &Server,
    method: &str,
    path: &str,
    token: Option<&str>,
    ctype: &str,
    body: &[u8],
) -> Reply {
    let url = srv.url(path);
    let agent = http();
    let mut req = match method {
        "GET" => agent.get(&url).force_send_body(),
        "POST" => agent.post(&url),
        "DELETE" => agent.delete(&url).force_send_body(),
        m => panic!("method {m}"),
    };
    if let Some(t) = token {
        // As MaEVe does: both headers, same value.
        req = req
            .header("authorization", &format!("Bearer {t}"))
            .header("x-api-key", t);
    }
    if !ctype.is_empty() {
        req = req.header("content-type", ctype);
    }
    reply(req.send(body))
}

/// Certificates of a base64 PKCS#7, in order, as PEM strings (via `openssl pkcs7`).
fn pkcs7_certs(dir: &Path, name: &str, b64: &[u8]) -> Vec<String> {
    let compact: Vec<u8> = b64
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let der = B64.decode(compact).expect("PKCS#7 body is base64");
    let f = dir.join(format!("{name}.p7b"));
    std::fs::write(&f, der).unwrap();
    let (ok, out) = openssl(&[
        "pkcs7",
        "-inform",
        "DER",
        "-in",
        f.to_str().unwrap(),
        "-print_certs",
    ]);
    assert!(ok, "openssl pkcs7: {out}");
    out.split("-----BEGIN CERTIFICATE-----")
        .skip(1)
        .map(|s| {
            let end = s.find("-----END CERTIFICATE-----").unwrap();
            format!(
                "-----BEGIN CERTIFICATE-----{}-----END CERTIFICATE-----\n",
                &s[..end]
            )
        })
        .collect()
}

fn subject_of(dir: &Path, pem: &str) -> String {
    let f = dir.join("subject.pem");
    std::fs::write(&f, pem).unwrap();
    let (ok, out) = openssl(&[
        "x509",
        "-in",
        f.to_str().unwrap(),
        "-noout",
        "-subject",
        "-serial",
    ]);
    assert!(ok, "{out}");
    out
}

fn serial_of(dir: &Path, pem: &str) -> String {
    let out = subject_of(dir, pem);
    out.lines()
        .find_map(|l| l.strip_prefix("serial="))
        .unwrap()
        .trim()
        .to_ascii_lowercase()
}

/// One deployment with its clients and a running server; each scenario below gets its own, so
/// that one failure does not hide the others.
struct Deployment {
    env: Env,
    srv: Server,
    c: Clients,
    ext_pem: Vec<u8>,
    export: PathBuf,
}

fn deploy(backend: Backend) -> Deployment {
    let env = Env::new(backend);
    env.init();
    let c = Clients {
        cpo: env.client_add("CPO ABC", "cpo", &["DE*ABC"]),
        cpo_other: env.client_add("CPO XYZ", "cpo", &["de-xyz"]),
        mo: env.client_add("MO 8AA", "mo", &["DE8AA"]),
        mo_other: env.client_add("MO 8BB", "mo", &["DE-8BB"]),
        oem: env.client_add("OEM WP0", "oem", &["WP0"]),
        oem_other: env.client_add("OEM WMI", "oem", &["WMI"]),
        cps: env.client_add("CPS", "cps", &[]),
        csms: env.client_add("CSMS", "csms", &["ACME CSO", "DE*ABC", "dns:csms.test"]),
        csms_other: env.client_add("CSMS other", "csms", &["Other CSO"]),
        admin: env.client_add("Admin", "admin", &[]),
        auditor: env.client_add("Auditor", "auditor", &[]),
    };
    let (ext_pem, jwks) = external_issuer(env.path());
    let srv = env.serve_with_env(&[
        ("PNC_API_JWKS_FILE", jwks.to_str().unwrap()),
        ("PNC_API_JWKS_ISSUER", EXT_ISSUER),
        ("PNC_API_MAX_BODY", "16384"),
        // These scenarios fail authentication and fetch tokens on purpose, hundreds of times,
        // from one address; the limits themselves are tested in tests/abuse.rs.
        ("PNC_LIMIT_AUTH_FAILURES_PER_IP", "off"),
        ("PNC_LIMIT_TOKEN_PER_IP", "off"),
        ("PNC_LIMIT_TOKEN_PER_CLIENT", "off"),
    ]);
    let export = env.export();
    Deployment {
        env,
        srv,
        c,
        ext_pem,
        export,
    }
}

/// `scenario` against a fresh deployment on `backend` (PostgreSQL: see `common::backend_ready`).
fn run(backend: Backend, scenario: fn(&Deployment)) {
    if backend_ready(backend) {
        scenario(&deploy(backend));
    }
}

/// A scenario as two tests, one per database.
macro_rules! on_both_backends {
    ($name:ident) => {
        mod $name {
            #[test]
            fn sqlite() {
                super::run(super::Backend::Sqlite, super::$name);
            }
            #[test]
            fn postgres() {
                super::run(super::Backend::Postgres, super::$name);
            }
        }
    };
}

on_both_backends!(enrollment_chain_and_crl);
on_both_backends!(route_matrix);
on_both_backends!(bad_input);
on_both_backends!(audit_trail);

#[test]
fn a_tenant_must_fit_the_role() {
    let env = Env::new(Backend::Sqlite);
    env.init();
    // Refused before anything is stored.
    let err = env.fails(&[
        "client",
        "add",
        "--name",
        "bad",
        "--role",
        "cpo",
        "--tenant",
        "nonsense!",
        "--json",
    ]);
    assert!(err.contains("invalid_tenant"), "{err}");
    let err = env.fails(&[
        "client", "add", "--name", "bad", "--role", "auditor", "--tenant", "DE*ABC",
    ]);
    assert!(err.contains("invalid_tenant"), "{err}");
    let err = env.fails(&["client", "add", "--name", "bad", "--role", "root"]);
    assert!(err.contains("unknown role"), "{err}");
    let listed = env.ok(&["client", "list", "--json"]);
    assert_eq!(listed.trim(), "[]", "nothing was stored: {listed}");
}

fn enrollment_chain_and_crl(d: &Deployment) {
    let (env, srv, c, export) = (&d.env, &d.srv, &d.c, d.export.as_path());
    let dir = env.path();
    let tok = token_form(srv, &c.cpo);
    let body = csr_body(
        env,
        "evse1",
        "prime256v1",
        "/C=DE/O=ACME Charging/DC=CPO/CN=DE*ABC*E1234567",
    );
    let r = send(
        srv,
        "POST",
        "/cpo/simpleenroll/ISO15118-2",
        Some(&tok),
        "application/pkcs10",
        &body,
    );
    assert_eq!(r.status, 200, "enroll: {}", r.text());
    assert!(r.ctype.starts_with("application/pkcs7-mime"), "{}", r.ctype);
    let certs = pkcs7_certs(dir, "enroll", &r.body);
    assert_eq!(certs.len(), 3, "leaf + sub-CA 2 + sub-CA 1");
    assert!(
        subject_of(dir, &certs[0]).contains("CN = DE*ABC*E1234567"),
        "leaf first"
    );
    assert!(subject_of(dir, &certs[1]).contains("CPO Sub2"));
    assert!(subject_of(dir, &certs[2]).contains("CPO Sub1"));
    let leaf = dir.join("leaf.pem");
    std::fs::write(&leaf, &certs[0]).unwrap();
    let untrusted = dir.join("subs.pem");
    std::fs::write(&untrusted, certs[1..].concat()).unwrap();
    let root = export.join("v2g-root.pem");
    let (ok, out) = openssl(&[
        "verify",
        "-x509_strict",
        "-CAfile",
        root.to_str().unwrap(),
        "-untrusted",
        untrusted.to_str().unwrap(),
        leaf.to_str().unwrap(),
    ]);
    assert!(ok && out.contains(": OK"), "openssl verify: {out}");
    let serial = serial_of(dir, &certs[0]);

    // Aliases, the JSON token form and a doubled slash (MaEVe with a base URL ending in '/').
    let tok_json = token_json(srv, &c.cpo);
    for path in [
        "/.well-known/cpo/simpleenroll",
        "/.well-known/est/cpo/simpleenroll/ISO15118-2",
        "//cpo/simpleenroll/ISO15118-2",
    ] {
        let b = csr_body(
            env,
            "evse2",
            "prime256v1",
            "/C=DE/O=ACME Charging/DC=CPO/CN=DE*ABC*E7654321",
        );
        let r = send(srv, "POST", path, Some(&tok_json), "application/pkcs10", &b);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
    }
    // ISO 15118-20 maps to the -20 profile (P-521 keys, SECCID).
    let b20 = csr_body(
        env,
        "evse20",
        "secp521r1",
        "/O=ACME Charging/CN=DE*ABC*E1234567",
    );
    let r = send(
        srv,
        "POST",
        "/cpo/simpleenroll/ISO15118-20",
        Some(&tok),
        "application/pkcs10",
        &b20,
    );
    assert_eq!(r.status, 200, "-20 enroll: {}", r.text());
    let c20 = pkcs7_certs(dir, "enroll20", &r.body);
    assert!(
        subject_of(dir, &c20[1]).contains("ISO20"),
        "issued under the -20 hierarchy"
    );

    // cacerts: sub-CA 2, sub-CA 1, root (root last); public.
    for path in [
        "/cpo/cacerts/ISO15118-2",
        "/.well-known/cpo/cacerts",
        "/cpo/cacerts/ISO15118-2/secp256r1/",
    ] {
        let r = send(srv, "GET", path, None, "", b"");
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        let chain = pkcs7_certs(dir, "cacerts", &r.body);
        assert_eq!(chain.len(), 3, "{path}");
        assert!(subject_of(dir, &chain[0]).contains("CPO Sub2"), "{path}");
        assert!(subject_of(dir, &chain[1]).contains("CPO Sub1"), "{path}");
        assert!(subject_of(dir, &chain[2]).contains("V2G Root"), "{path}");
    }
    for (path, want) in [
        ("/mo/cacerts/ISO15118-2", "MO Sub2"),
        ("/oem/cacerts/ISO15118-2", "OEM Sub2"),
        ("/cps/cacerts/ISO15118-20", "CPS Sub2 CA ISO20"),
    ] {
        let r = send(srv, "GET", path, None, "", b"");
        assert_eq!(r.status, 200, "{path}");
        assert!(
            subject_of(dir, &pkcs7_certs(dir, "ca", &r.body)[0]).contains(want),
            "{path}"
        );
    }

    // rootCerts: the OPCP shape, base64 DER roots matching the exported ones.
    let r = send(srv, "GET", "/v1/root/rootCerts", Some(&tok), "", b"");
    assert_eq!(r.status, 200);
    let v = r.json();
    let roots = v["RootCertificateCollection"]["rootCertificates"]
        .as_array()
        .unwrap();
    assert_eq!(roots.len(), 6, "V2G, MO, OEM for -2 and -20");
    let v2g = roots
        .iter()
        .find(|x| x["commonName"] == "Demo V2G Root CA")
        .expect("V2G root listed");
    for k in [
        "rootCertificateId",
        "distinguishedName",
        "caCertificate",
        "commonName",
        "rootAuthorityKeyIdentifier",
        "rootIssuerSerialNumber",
        "validFrom",
        "validTo",
        "organizationName",
        "rootType",
        "fingerprint",
    ] {
        assert!(v2g[k].is_string(), "{k} missing: {v2g}");
    }
    assert_eq!(v2g["rootType"], "V2G");
    assert_eq!(
        v2g["distinguishedName"],
        "CN=Demo V2G Root CA, DC=V2G, O=pnc-pki Demo, C=DE"
    );
    let der = B64.decode(v2g["caCertificate"].as_str().unwrap()).unwrap();
    assert_eq!(der, read_pem_der(&export.join("v2g-root.pem")));
    assert_eq!(v2g["fingerprint"].as_str().unwrap().len(), 64);
    assert!(v2g["validTo"].as_str().unwrap().ends_with('Z'));
    let one = send(
        srv,
        "GET",
        &format!(
            "/v1/root/rootCerts/{}",
            v2g["rootCertificateId"].as_str().unwrap()
        ),
        None,
        "",
        b"",
    );
    assert_eq!(one.status, 200);
    assert_eq!(&one.json()["RootResponse"], v2g);
    assert_eq!(
        send(srv, "GET", "/v1/root/rootCerts/nope", None, "", b"").status,
        404
    );
    let r = send(srv, "GET", "/v1/root/rootCerts?rootType=MO", None, "", b"");
    let mo_roots = r.json()["RootCertificateCollection"]["rootCertificates"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(mo_roots.len(), 2);
    assert!(mo_roots.iter().all(|x| x["rootType"] == "MO"));

    // Search finds the certificate with the issuer_id used by revoke and the CRL path.
    let r = send(
        srv,
        "GET",
        "/api/v1/certificates?evse_id=DE*ABC*E1234567&status=valid",
        Some(&tok),
        "",
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let items = r.json()["items"].as_array().unwrap().clone();
    let item = items
        .iter()
        .find(|i| i["serial_hex"] == serial.as_str())
        .expect("enrolled certificate listed");
    for k in [
        "issuer_id",
        "serial_hex",
        "profile",
        "subject",
        "not_before",
        "not_after",
        "status",
    ] {
        assert!(!item[k].is_null(), "{k}");
    }
    let issuer_id = item["issuer_id"].as_str().unwrap().to_string();
    assert_eq!(issuer_id, "cpo-sub-ca-2");
    assert_eq!(item["profile"], "secc-leaf");
    // Get it as JSON, PEM and DER.
    let one = format!("/api/v1/certificates/{issuer_id}/{serial}");
    let r = reply(
        http()
            .get(&srv.url(&one))
            .header("authorization", &format!("Bearer {tok}"))
            .header("accept", "application/pkix-cert")
            .call(),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body, read_pem_der(&leaf));
    let r = reply(
        http()
            .get(&srv.url(&one))
            .header("x-api-key", &tok)
            .header("accept", "application/x-pem-file")
            .call(),
    );
    assert!(r.text().starts_with("-----BEGIN CERTIFICATE-----"));
    let r = reply(http().get(&srv.url(&one)).header("x-api-key", &tok).call());
    assert_eq!(r.json()["status"], "valid");

    // CRL before: valid signature by sub-CA 2, serial absent, verify -crl_check passes.
    let crl_file = dir.join("crl.der");
    let crl_pem = dir.join("crl.pem");
    let fetch_crl = || {
        let r = send(srv, "GET", &format!("/crl/{issuer_id}.crl"), None, "", b"");
        assert_eq!(r.status, 200);
        assert_eq!(r.ctype, "application/pkix-crl");
        std::fs::write(&crl_file, &r.body).unwrap();
        let (ok, text) = openssl(&[
            "crl",
            "-inform",
            "DER",
            "-in",
            crl_file.to_str().unwrap(),
            "-text",
            "-noout",
        ]);
        assert!(ok, "openssl crl: {text}");
        let (ok, out) = openssl(&[
            "crl",
            "-inform",
            "DER",
            "-in",
            crl_file.to_str().unwrap(),
            "-out",
            crl_pem.to_str().unwrap(),
        ]);
        assert!(ok, "{out}");
        let number: u64 = text
            .lines()
            .skip_while(|l| !l.contains("CRL Number"))
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .expect("CRL number");
        (text, number)
    };
    let (text, n1) = fetch_crl();
    assert!(
        !text.to_ascii_lowercase().contains(&serial),
        "serial listed before revocation"
    );
    let sub2 = dir.join("sub2.pem");
    std::fs::write(&sub2, &certs[1]).unwrap();
    let (ok, out) = openssl(&[
        "crl",
        "-in",
        crl_pem.to_str().unwrap(),
        "-CAfile",
        sub2.to_str().unwrap(),
        "-noout",
    ]);
    assert!(ok && out.contains("verify OK"), "CRL signature: {out}");
    let verify_crl = || {
        openssl(&[
            "verify",
            "-crl_check",
            "-CAfile",
            root.to_str().unwrap(),
            "-untrusted",
            untrusted.to_str().unwrap(),
            "-CRLfile",
            crl_pem.to_str().unwrap(),
            leaf.to_str().unwrap(),
        ])
    };
    let (ok, out) = verify_crl();
    assert!(ok, "crl_check before revocation: {out}");

    // Revoke (idempotent), then the CRL lists it and verify -crl_check fails.
    let path = format!("/api/v1/certificates/{issuer_id}/{serial}/revoke");
    let r = send(
        srv,
        "POST",
        &path,
        Some(&tok),
        "application/json",
        br#"{"reason": "keyCompromise"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["outcome"], "revoked");
    let r = send(
        srv,
        "POST",
        &path,
        Some(&tok),
        "application/json",
        br#"{"reason": "keyCompromise"}"#,
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["outcome"], "already_revoked");
    let (text, n2) = fetch_crl();
    assert!(n2 > n1, "CRL number must grow: {n1} then {n2}");
    assert!(
        text.to_ascii_lowercase().contains(&serial),
        "revoked serial not in CRL: {text}"
    );
    assert!(text.contains("Key Compromise"), "{text}");
    let (ok, out) = verify_crl();
    assert!(
        !ok && out.contains("revoked"),
        "crl_check must fail for a revoked certificate: {out}"
    );
    let r = send(
        srv,
        "GET",
        &format!("/api/v1/certificates?issuer_id={issuer_id}&status=revoked"),
        Some(&tok),
        "",
        b"",
    );
    assert!(
        r.json()["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["serial_hex"] == serial.as_str())
    );
    // Unknown CA → 404.
    assert_eq!(send(srv, "GET", "/crl/nope.crl", None, "", b"").status, 404);
}

/// One protected operation: how to call it and which clients are right / wrong for it.
struct Case {
    method: &'static str,
    /// The route template as the router's table names it (`/cpo/simpleenroll/{iso}`).
    route: &'static str,
    path: String,
    ctype: &'static str,
    body: Vec<u8>,
    right: (String, String),
    right_claims: (&'static str, Vec<&'static str>),
    wrong_role: Option<(String, String)>,
    wrong_tenant: Option<(String, String)>,
    ok_status: u16,
}

/// Routes that need credentials: everything under `/api/v1/` and every enrollment alias.
fn protected_routes() -> std::collections::BTreeSet<(String, String)> {
    pnc_pki::api::route_table()
        .into_iter()
        .filter(|(p, _)| p.starts_with("/api/v1/") || p.contains("simpleenroll"))
        .collect()
}

fn route_matrix(d: &Deployment) {
    let (env, srv, c, ext_pem) = (&d.env, &d.srv, &d.c, d.ext_pem.as_slice());
    // One token per client: argon2 makes token requests the slow part of this test.
    let tokens = std::cell::RefCell::new(std::collections::HashMap::<String, String>::new());
    let token = |client: &(String, String)| -> String {
        tokens
            .borrow_mut()
            .entry(client.0.clone())
            .or_insert_with(|| token_json(srv, client))
            .clone()
    };
    let admin_tok = token(&c.admin);
    let cpo_tok = token(&c.cpo);
    // Certificates to read and revoke in the matrix.
    let b = csr_body(
        env,
        "m1",
        "prime256v1",
        "/C=DE/O=ACME Charging/DC=CPO/CN=DE*ABC*E5550001",
    );
    let r = send(
        srv,
        "POST",
        "/cpo/simpleenroll/ISO15118-2",
        Some(&cpo_tok),
        "application/pkcs10",
        &b,
    );
    assert_eq!(r.status, 200);
    let s1 = serial_of(env.path(), &pkcs7_certs(env.path(), "m1", &r.body)[0]);
    // Contracts to read and cancel in the matrix.
    let mo_tok = token(&c.mo);
    let contract = |emaid: &str| -> String {
        let r = send(
            srv,
            "POST",
            "/api/v1/contracts",
            Some(&mo_tok),
            "application/json",
            json!({"emaid": emaid, "pcid": "WP0ZZZ99ZTS392124"})
                .to_string()
                .as_bytes(),
        );
        assert_eq!(r.status, 201, "{}", r.text());
        r.json()["id"].as_str().unwrap().to_string()
    };
    let contract_a = contract("DE8AA000000002");
    let contract_b = contract("DE8AA000000003");
    // One CSR per enrolling domain, for both standards; enrolling the same CSR twice is allowed.
    let csr2 = |n: &str, subject: &str| csr_body(env, n, "prime256v1", subject);
    let csr20 = |n: &str, subject: &str| csr_body(env, n, "secp521r1", subject);
    let domains = [
        (
            "cpo",
            csr2("e2", "/C=DE/O=ACME Charging/DC=CPO/CN=DE*ABC*E1112223"),
            csr20("e20", "/O=ACME Charging/CN=DE*ABC*E1112223"),
            c.cpo.clone(),
            ("cpo", vec!["DE*ABC"]),
            c.mo.clone(),
            Some(c.cpo_other.clone()),
        ),
        (
            "mo",
            csr2("mo2", "/C=DE/O=Example MO/CN=DE8AA123456789L"),
            csr20("mo20", "/O=Example MO/CN=DE8AA123456789L"),
            c.mo.clone(),
            ("mo", vec!["DE8AA"]),
            c.cpo.clone(),
            Some(c.mo_other.clone()),
        ),
        (
            "oem",
            csr2("oem2", "/O=Example OEM/DC=OEM/CN=WP0123456789012345"),
            csr20("oem20", "/O=Example OEM/CN=WP01234567890123456"),
            c.oem.clone(),
            ("oem", vec!["WP0"]),
            c.mo.clone(),
            Some(c.oem_other.clone()),
        ),
        (
            "cps",
            csr2("cps2", "/C=DE/O=Example CPS/DC=CPS/CN=Example CPS Leaf"),
            csr20("cps20", "/C=DE/O=Example CPS/CN=Example CPS Leaf"),
            c.cps.clone(),
            ("cps", vec![]),
            c.cpo.clone(),
            None,
        ),
    ];
    let victim = env.client_add("to disable", "cpo", &["DE*ABC"]);
    let mut cases = Vec::new();
    for (dom, body2, body20, right, claims, wrong_role, wrong_tenant) in &domains {
        let aliases: [(&'static str, String, &Vec<u8>); 4] = [
            (
                leak(format!("/{dom}/simpleenroll/{{iso}}")),
                format!("/{dom}/simpleenroll/ISO15118-20"),
                body20,
            ),
            (
                leak(format!("/.well-known/est/{dom}/simpleenroll/{{iso}}")),
                format!("/.well-known/est/{dom}/simpleenroll/ISO15118-2"),
                body2,
            ),
            (
                leak(format!("/.well-known/{dom}/simpleenroll")),
                format!("/.well-known/{dom}/simpleenroll"),
                body2,
            ),
            (
                leak(format!("/.well-known/est/{dom}/simpleenroll")),
                format!("/.well-known/est/{dom}/simpleenroll"),
                body2,
            ),
        ];
        for (route, path, body) in aliases {
            cases.push(Case {
                method: "POST",
                route,
                path,
                ctype: "application/pkcs10",
                body: body.clone(),
                right: right.clone(),
                right_claims: (claims.0, claims.1.clone()),
                wrong_role: Some(wrong_role.clone()),
                wrong_tenant: wrong_tenant.clone(),
                ok_status: 200,
            });
        }
    }
    // CharIN OPNC's enrollment route: the domain is a query parameter.
    for (dom, opnc_dom) in [("cpo", "cpo"), ("mo", "emsp")] {
        let (_, body2, _, right, claims, wrong_role, wrong_tenant) =
            domains.iter().find(|d| d.0 == dom).unwrap();
        cases.push(Case {
            method: "POST",
            route: "/opnc/v1/pki/est/simpleenroll",
            path: format!(
                "/opnc/v1/pki/est/simpleenroll?caDomain={opnc_dom}&iso15118Version=ISO15118-2"
            ),
            ctype: "application/pkcs10",
            body: body2.clone(),
            right: right.clone(),
            right_claims: (claims.0, claims.1.clone()),
            wrong_role: Some(wrong_role.clone()),
            wrong_tenant: wrong_tenant.clone(),
            ok_status: 200,
        });
    }
    let status_body = {
        let issuer = read_pem_der(&d.export.join("cpo-sub-ca-2.pem"));
        let (n, k) =
            pnc_pki::ocsp::wire::issuer_hashes(&issuer, pnc_pki::alg::HashAlg::Sha256).unwrap();
        json!({"ocspRequestData": {"hashAlgorithm": "SHA256", "issuerNameHash": hex::encode(n),
            "issuerKeyHash": hex::encode(k), "serialNumber": s1, "responderURL": "http://x/ocsp"}})
    };
    let chain_body = json!({"certificateStatusRequests": [
        {"certificateHashData": status_body["ocspRequestData"].clone(), "source": "OCSP", "urls": []}
    ]});
    cases.extend([
        Case {
            method: "GET",
            route: "/api/v1/certificates",
            path: "/api/v1/certificates?evse_id=DE*ABC*E5550001".into(),
            ctype: "",
            body: vec![],
            right: c.cpo.clone(),
            right_claims: ("cpo", vec!["DE*ABC"]),
            wrong_role: Some(c.cps.clone()),
            wrong_tenant: None,
            ok_status: 200,
        },
        Case {
            method: "GET",
            route: "/api/v1/certificates",
            path: "/api/v1/certificates?tenant=DE*XYZ".into(),
            ctype: "",
            body: vec![],
            right: c.cpo_other.clone(),
            right_claims: ("cpo", vec!["DE*XYZ"]),
            wrong_role: Some(c.cps.clone()),
            wrong_tenant: Some(c.cpo.clone()),
            ok_status: 200,
        },
        Case {
            method: "GET",
            route: "/api/v1/certificates/{issuer_id}/{serial_hex}",
            path: format!("/api/v1/certificates/cpo-sub-ca-2/{s1}"),
            ctype: "",
            body: vec![],
            right: c.cpo.clone(),
            right_claims: ("cpo", vec!["DE*ABC"]),
            wrong_role: Some(c.cps.clone()),
            wrong_tenant: Some(c.cpo_other.clone()),
            ok_status: 200,
        },
        Case {
            method: "POST",
            route: "/api/v1/certificates/{issuer_id}/{serial_hex}/revoke",
            path: format!("/api/v1/certificates/cpo-sub-ca-2/{s1}/revoke"),
            ctype: "application/json",
            body: br#"{"reason":"superseded"}"#.to_vec(),
            right: c.cpo.clone(),
            right_claims: ("cpo", vec!["DE*ABC"]),
            wrong_role: Some(c.auditor.clone()),
            wrong_tenant: Some(c.cpo_other.clone()),
            ok_status: 200,
        },
        Case {
            method: "GET",
            route: "/api/v1/cas",
            path: "/api/v1/cas".into(),
            ctype: "",
            body: vec![],
            right: c.cps.clone(),
            right_claims: ("cps", vec![]),
            wrong_role: None,
            wrong_tenant: None,
            ok_status: 200,
        },
        Case {
            method: "GET",
            route: "/api/v1/cas/{id}/chain",
            path: "/api/v1/cas/cpo-sub-ca-2/chain".into(),
            ctype: "",
            body: vec![],
            right: c.mo.clone(),
            right_claims: ("mo", vec!["DE8AA"]),
            wrong_role: None,
            wrong_tenant: None,
            ok_status: 200,
        },
        Case {
            method: "GET",
            route: "/api/v1/cas/{id}/compromise",
            path: "/api/v1/cas/cpo-sub-ca-2/compromise".into(),
            ctype: "",
            body: vec![],
            right: c.auditor.clone(),
            right_claims: ("auditor", vec![]),
            wrong_role: Some(c.cpo.clone()),
            wrong_tenant: None,
            ok_status: 200,
        },
        Case {
            method: "GET",
            route: "/api/v1/clients",
            path: "/api/v1/clients".into(),
            ctype: "",
            body: vec![],
            right: c.auditor.clone(),
            right_claims: ("auditor", vec![]),
            wrong_role: Some(c.cpo.clone()),
            wrong_tenant: None,
            ok_status: 200,
        },
        Case {
            method: "POST",
            route: "/api/v1/clients",
            path: "/api/v1/clients".into(),
            ctype: "application/json",
            body: br#"{"name":"new mo","role":"mo","tenants":["NL-ABC"]}"#.to_vec(),
            right: c.admin.clone(),
            right_claims: ("admin", vec![]),
            wrong_role: Some(c.auditor.clone()),
            wrong_tenant: None,
            ok_status: 201,
        },
        Case {
            method: "DELETE",
            route: "/api/v1/clients/{client_id}",
            path: format!("/api/v1/clients/{}", victim.0),
            ctype: "",
            body: vec![],
            right: c.admin.clone(),
            right_claims: ("admin", vec![]),
            wrong_role: Some(c.cps.clone()),
            wrong_tenant: None,
            ok_status: 204,
        },
        Case {
            method: "GET",
            route: "/api/v1/audit",
            path: "/api/v1/audit?limit=5".into(),
            ctype: "",
            body: vec![],
            right: c.auditor.clone(),
            right_claims: ("auditor", vec![]),
            wrong_role: Some(c.mo.clone()),
            wrong_tenant: None,
            ok_status: 200,
        },
        Case {
            method: "POST",
            route: "/api/v1/contracts",
            path: "/api/v1/contracts".into(),
            ctype: "application/json",
            body: br#"{"emaid":"DE8AA000000001","pcid":"WP0ZZZ99ZTS392124"}"#.to_vec(),
            right: c.mo.clone(),
            right_claims: ("mo", vec!["DE8AA"]),
            wrong_role: Some(c.cpo.clone()),
            wrong_tenant: Some(c.mo_other.clone()),
            ok_status: 201,
        },
        Case {
            method: "GET",
            route: "/api/v1/contracts",
            path: "/api/v1/contracts?limit=5".into(),
            ctype: "",
            body: vec![],
            right: c.mo.clone(),
            right_claims: ("mo", vec!["DE8AA"]),
            wrong_role: Some(c.cpo.clone()),
            wrong_tenant: None,
            ok_status: 200,
        },
        Case {
            method: "GET",
            route: "/api/v1/contracts/{id}",
            path: format!("/api/v1/contracts/{contract_a}"),
            ctype: "",
            body: vec![],
            right: c.mo.clone(),
            right_claims: ("mo", vec!["DE8AA"]),
            wrong_role: Some(c.oem.clone()),
            wrong_tenant: Some(c.mo_other.clone()),
            ok_status: 200,
        },
        Case {
            method: "DELETE",
            route: "/api/v1/contracts/{id}",
            path: format!("/api/v1/contracts/{contract_b}"),
            ctype: "",
            body: vec![],
            right: c.mo.clone(),
            right_claims: ("mo", vec!["DE8AA"]),
            wrong_role: Some(c.cpo.clone()),
            wrong_tenant: Some(c.mo_other.clone()),
            ok_status: 200,
        },
        Case {
            method: "POST",
            route: "/api/v1/ocpp/authorize",
            path: "/api/v1/ocpp/authorize".into(),
            ctype: "application/json",
            body: json!({"idToken": {"idToken": "DE8AA111111111", "type": "eMAID"}})
                .to_string()
                .into_bytes(),
            right: c.csms.clone(),
            right_claims: ("csms", vec!["ACME CSO"]),
            wrong_role: Some(c.mo.clone()),
            // Contract certificates belong to no CPO or CSO: no tenant applies.
            wrong_tenant: None,
            ok_status: 200,
        },
        Case {
            method: "POST",
            route: "/api/v1/ocpp/sign-certificate",
            path: "/api/v1/ocpp/sign-certificate".into(),
            ctype: "application/json",
            body: json!({
                "stationId": "CS-0001",
                "csr": std::fs::read_to_string(env.openssl_csr("ocpp1", "prime256v1", "/O=ACME CSO/CN=CS-0001")).unwrap(),
                "certificateType": "ChargingStationCertificate",
            })
            .to_string()
            .into_bytes(),
            right: c.csms.clone(),
            right_claims: ("csms", vec!["ACME CSO"]),
            wrong_role: Some(c.cpo.clone()),
            // Another CSO's station is refused in OCPP terms (tests/ocpp_pki.rs), not as a problem.
            wrong_tenant: None,
            ok_status: 200,
        },
        Case {
            method: "GET",
            route: "/api/v1/ocpp/install-certificates",
            path: "/api/v1/ocpp/install-certificates?stationId=CS-0001".into(),
            ctype: "",
            body: vec![],
            right: c.csms.clone(),
            right_claims: ("csms", vec!["ACME CSO"]),
            wrong_role: None,
            wrong_tenant: None,
            ok_status: 200,
        },
        Case {
            method: "POST",
            route: "/.well-known/est/charging-station/simpleenroll",
            path: "/.well-known/est/charging-station/simpleenroll".into(),
            ctype: "application/pkcs10",
            body: csr_body(env, "ocpp2", "prime256v1", "/O=ACME CSO/CN=CS-0002"),
            right: c.csms.clone(),
            right_claims: ("csms", vec!["ACME CSO"]),
            wrong_role: Some(c.cpo.clone()),
            wrong_tenant: Some(c.csms_other.clone()),
            ok_status: 200,
        },
        Case {
            method: "POST",
            route: "/.well-known/est/csms/simpleenroll",
            path: "/.well-known/est/csms/simpleenroll".into(),
            ctype: "application/pkcs10",
            body: {
                let k = env.path().join("ocpp3.key");
                let csr = env.path().join("ocpp3.csr");
                let (ok, out) = openssl(&[
                    "req", "-new", "-nodes", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-keyout", k.to_str().unwrap(),
                    "-subj", "/O=ACME CSO/CN=csms.test", "-addext",
                    "subjectAltName=DNS:csms.test", "-out", csr.to_str().unwrap(),
                ]);
                assert!(ok, "{out}");
                B64.encode(read_pem_der(&csr)).into_bytes()
            },
            right: c.csms.clone(),
            right_claims: ("csms", vec!["ACME CSO", "dns:csms.test"]),
            wrong_role: Some(c.cpo.clone()),
            wrong_tenant: Some(c.csms_other.clone()),
            ok_status: 200,
        },
        Case {
            method: "POST",
            route: "/api/v1/ocpp/get-15118-ev-certificate",
            path: "/api/v1/ocpp/get-15118-ev-certificate".into(),
            ctype: "application/json",
            body: br#"{"iso15118SchemaVersion":"urn:iso:15118:2:2013:MsgDef","action":"Install","exiRequest":"gJg="}"#.to_vec(),
            right: c.cpo.clone(),
            right_claims: ("cpo", vec!["DE*ABC"]),
            wrong_role: Some(c.mo.clone()),
            wrong_tenant: None,
            ok_status: 200,
        },
        Case {
            method: "POST",
            route: "/api/v1/ocsp/certificate-status",
            path: "/api/v1/ocsp/certificate-status".into(),
            ctype: "application/json",
            body: status_body.to_string().into_bytes(),
            right: c.cpo.clone(),
            right_claims: ("cpo", vec!["DE*ABC"]),
            wrong_role: None,
            wrong_tenant: None,
            ok_status: 200,
        },
        Case {
            method: "POST",
            route: "/api/v1/ocsp/chain-status",
            path: "/api/v1/ocsp/chain-status".into(),
            ctype: "application/json",
            body: chain_body.to_string().into_bytes(),
            right: c.auditor.clone(),
            right_claims: ("auditor", vec![]),
            wrong_role: None,
            wrong_tenant: None,
            ok_status: 200,
        },
    ]);
    // The matrix must cover every route that needs credentials: a protected route added without
    // a case here fails this test.
    let covered: std::collections::BTreeSet<(String, String)> = cases
        .iter()
        .map(|c| (c.route.to_string(), c.method.to_ascii_lowercase()))
        .collect();
    let missing: Vec<_> = protected_routes().difference(&covered).cloned().collect();
    assert!(
        missing.is_empty(),
        "protected routes without a case: {missing:?}"
    );
    let unknown: Vec<_> = covered.difference(&protected_routes()).cloned().collect();
    assert!(
        unknown.is_empty(),
        "cases for routes that are not protected: {unknown:?}"
    );
    for case in &cases {
        let call =
            |tok: Option<&str>| send(srv, case.method, &case.path, tok, case.ctype, &case.body);
        let what = format!("{} {}", case.method, case.path);
        let (role, tenants) = (&case.right_claims.0, &case.right_claims.1);
        let expect = |r: Reply, status: u16, code: &str, label: &str| {
            assert_eq!(r.status, status, "{what} [{label}]: {}", r.text());
            let v = r.json();
            assert_eq!(v["code"], code, "{what} [{label}]: {v}");
            assert!(v["traceId"].is_string(), "{what} [{label}]: no traceId");
            if case.path.starts_with("/api/") {
                assert_eq!(r.ctype, "application/problem+json", "{what}");
            } else {
                assert!(v["errorMessages"].is_array(), "{what}: OPCP error shape");
            }
        };
        expect(call(None), 401, "missing_credentials", "no token");
        let expired = mint(
            ext_pem, EXT_KID, EXT_ISSUER, "pnc-pki", -3600, role, tenants,
        );
        expect(call(Some(&expired)), 401, "token_expired", "expired");
        let wrong_aud = mint(
            ext_pem,
            EXT_KID,
            EXT_ISSUER,
            "someone-else",
            600,
            role,
            tenants,
        );
        expect(
            call(Some(&wrong_aud)),
            401,
            "invalid_audience",
            "wrong audience",
        );
        // Our own token's header and claims, signed by another key: bad signature.
        let real = token(&case.right);
        let forged_sig = mint(ext_pem, EXT_KID, EXT_ISSUER, "pnc-pki", 600, role, tenants);
        let parts: Vec<&str> = real.split('.').collect();
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            parts[1],
            forged_sig.rsplit('.').next().unwrap()
        );
        expect(call(Some(&forged)), 401, "bad_signature", "bad signature");
        // Tokens from an issuer we do not trust for that key id.
        let wrong_iss = mint(
            ext_pem,
            EXT_KID,
            "https://evil.example",
            "pnc-pki",
            600,
            role,
            tenants,
        );
        expect(
            call(Some(&wrong_iss)),
            401,
            "invalid_issuer",
            "untrusted issuer",
        );
        if let Some(w) = &case.wrong_role {
            expect(call(Some(&token(w))), 403, "forbidden_role", "wrong role");
        }
        if let Some(w) = &case.wrong_tenant {
            expect(
                call(Some(&token(w))),
                403,
                "forbidden_tenant",
                "wrong tenant",
            );
        }
        let r = call(Some(&real));
        assert_eq!(
            r.status,
            case.ok_status,
            "{what} [right role]: {}",
            r.text()
        );
    }
    // A disabled client gets no new token.
    let r = reply(
        http()
            .post(&srv.url("/oauth/token"))
            .header("content-type", "application/json")
            .send(json!({"grant_type": "client_credentials", "client_id": victim.0, "client_secret": victim.1}).to_string().as_bytes()),
    );
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"], "invalid_client");
    // Wrong secret, unknown grant.
    let r = reply(
        http().post(&srv.url("/oauth/token")).send(
            format!(
                "grant_type=client_credentials&client_id={}&client_secret=nope",
                c.cpo.0
            )
            .as_bytes(),
        ),
    );
    assert_eq!(r.status, 401);
    let r = reply(
        http()
            .post(&srv.url("/oauth/token"))
            .send(b"grant_type=password".as_slice()),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"], "unsupported_grant_type");
    // An externally issued token with the right claims is accepted (JWKS trust).
    let ext = mint(ext_pem, EXT_KID, EXT_ISSUER, "pnc-pki", 600, "admin", &[]);
    assert_eq!(
        send(srv, "GET", "/api/v1/clients", Some(&ext), "", b"").status,
        200
    );
    // X-API-Key alone works; different values in the two headers do not.
    let r = reply(
        http()
            .get(&srv.url("/api/v1/clients"))
            .header("x-api-key", &admin_tok)
            .call(),
    );
    assert_eq!(r.status, 200);
    let r = reply(
        http()
            .get(&srv.url("/api/v1/clients"))
            .header("x-api-key", &admin_tok)
            .header("authorization", &format!("Bearer {cpo_tok}"))
            .call(),
    );
    assert_eq!(r.status, 401);
    // The admin-created client can log in; its secret was shown once.
    let r = send(
        srv,
        "POST",
        "/api/v1/clients",
        Some(&admin_tok),
        "application/json",
        br#"{"name":"api made","role":"oem","tenants":["wp0"]}"#,
    );
    let v = r.json();
    assert_eq!(v["tenants"], json!(["WP0"]));
    let made = (
        v["client_id"].as_str().unwrap().to_string(),
        v["client_secret"].as_str().unwrap().to_string(),
    );
    let _ = token_form(srv, &made);
    let listed = send(srv, "GET", "/api/v1/clients", Some(&admin_tok), "", b"").text();
    assert!(
        !listed.contains(&made.1) && !listed.contains("argon2"),
        "secrets or hashes listed"
    );
}

fn bad_input(d: &Deployment) {
    let (env, srv, c) = (&d.env, &d.srv, &d.c);
    let tok = token_json(srv, &c.cpo);
    let enroll = |body: &[u8]| {
        send(
            srv,
            "POST",
            "/cpo/simpleenroll/ISO15118-2",
            Some(&tok),
            "application/pkcs10",
            body,
        )
    };
    let r = enroll(b"this is not base64 !!!");
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["code"], "csr_malformed");
    assert!(
        r.json()["errorMessages"][0]
            .as_str()
            .unwrap()
            .contains("base64")
    );
    let r = enroll(B64.encode(b"valid base64, not DER").as_bytes());
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["code"], "csr_malformed");
    // A CSR for an EVSE ID that is not an EVSE ID, and one with the wrong key type.
    let r = enroll(&csr_body(
        env,
        "bad1",
        "prime256v1",
        "/C=DE/O=ACME/DC=CPO/CN=not an evse id",
    ));
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["code"], "profile_violation");
    let r = enroll(&csr_body(
        env,
        "bad2",
        "secp384r1",
        "/C=DE/O=ACME/DC=CPO/CN=DE*ABC*E1234567",
    ));
    assert_eq!(r.status, 400, "{}", r.text());
    let r = send(
        srv,
        "POST",
        "/cpo/simpleenroll/ISO15118-99",
        Some(&tok),
        "application/pkcs10",
        b"x",
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["code"], "unknown_iso_version");
    // Oversized body → 413 (limit set to 16 KiB for this server).
    let r = enroll(&vec![b'A'; 40_000]);
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(r.json()["code"], "body_too_large");
    // Malformed JSON and an unknown reason on the native API.
    let r = send(
        srv,
        "POST",
        "/api/v1/certificates/cpo-sub-ca-2/01/revoke",
        Some(&tok),
        "application/json",
        b"{not json",
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.ctype, "application/problem+json");
    assert_eq!(r.json()["code"], "malformed_json");
    let r = send(
        srv,
        "POST",
        "/api/v1/certificates/cpo-sub-ca-2/01/revoke",
        Some(&tok),
        "application/json",
        br#"{"reason":"bored"}"#,
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["code"], "invalid_reason");
    let r = send(
        srv,
        "POST",
        "/api/v1/certificates/cpo-sub-ca-2/zz/revoke",
        Some(&tok),
        "application/json",
        b"{}",
    );
    assert_eq!(r.status, 400);
    let r = send(
        srv,
        "GET",
        "/api/v1/certificates?status=sideways",
        Some(&tok),
        "",
        b"",
    );
    assert_eq!(r.status, 400);
    let r = send(
        srv,
        "POST",
        "/oauth/token",
        None,
        "application/json",
        b"{\"grant_type\":",
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"], "invalid_request");
    // Unknown routes and methods answer JSON.
    for path in ["/api/v1/nope", "/nope", "/cpo/nothing"] {
        let r = send(srv, "GET", path, None, "", b"");
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.json()["code"], "not_found");
    }
    assert_eq!(
        send(srv, "DELETE", "/api/v1/cas", Some(&tok), "", b"").status,
        405
    );
    // Operations endpoints, after one enrollment and one expired token.
    let before = metrics(srv);
    let good = csr_body(
        env,
        "good",
        "prime256v1",
        "/C=DE/O=ACME/DC=CPO/CN=DE*ABC*E1234567",
    );
    let issued = enroll(&good);
    assert_eq!(issued.status, 200);
    let after_enroll = metrics(srv);
    let sign = "pnc_hsm_operations_total{op=\"sign\"}";
    assert!(
        after_enroll[sign] > before[sign] && after_enroll[sign] >= 1.0,
        "an enrollment signs: {} then {}",
        before[sign],
        after_enroll[sign]
    );
    let signs = "pnc_hsm_sign_duration_seconds_count";
    assert!(after_enroll[signs] > before[signs], "signing time recorded");
    assert_eq!(after_enroll["pnc_hsm_errors_total{op=\"sign\"}"], 0.0);
    assert!(after_enroll["pnc_db_pool_connections_max"] >= 1.0);
    assert!(after_enroll.contains_key("pnc_db_pool_connections_in_use"));
    assert!(
        after_enroll["pnc_db_pool_connections_idle"] >= 1.0,
        "a pool that served requests"
    );
    // One revocation, one OCSP question about it.
    let (serial, leaf) = pkcs7_leaf(env.path(), "metrics-leaf", &issued.text());
    let r = send(
        srv,
        "POST",
        &format!("/api/v1/certificates/cpo-sub-ca-2/{serial}/revoke"),
        Some(&tok),
        "application/json",
        br#"{"reason": "keyCompromise"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let status = ocsp_status(&srv.url(""), &d.export.join("cpo-sub-ca-2.pem"), &leaf);
    assert_eq!(status, "revoked");
    let after_revoke = metrics(srv);
    let revs = "pnc_revocations_total{reason=\"keyCompromise\"}";
    assert_eq!(
        after_revoke[revs],
        after_enroll[revs] + 1.0,
        "one revocation counted"
    );
    let answers = "pnc_ocsp_answer_duration_seconds_count";
    assert!(
        after_revoke[answers] > after_enroll[answers],
        "OCSP answer time recorded"
    );
    assert!(
        after_revoke["pnc_ocsp_cache_hits_total"] + after_revoke["pnc_ocsp_cache_misses_total"]
            > after_enroll["pnc_ocsp_cache_hits_total"]
                + after_enroll["pnc_ocsp_cache_misses_total"],
        "the OCSP request was a hit or a miss"
    );
    let expired = mint(
        &d.ext_pem,
        EXT_KID,
        EXT_ISSUER,
        "pnc-pki",
        -3600,
        "cpo",
        &["DE*ABC"],
    );
    assert_eq!(
        send(srv, "GET", "/api/v1/cas", Some(&expired), "", b"").status,
        401
    );
    let r = send(srv, "GET", "/metrics", None, "", b"");
    assert_eq!(r.status, 200);
    let m = r.text();
    assert!(m.contains("pnc_http_requests_total{method=\"POST\",route=\"/cpo/simpleenroll/{iso}\",status=\"200\"}"), "{m}");
    assert!(
        m.contains("pnc_certificates_issued_total{profile=\"secc-leaf\"}"),
        "{m}"
    );
    assert!(
        m.contains("pnc_auth_failures_total{reason=\"token_expired\"}"),
        "{m}"
    );
    let r = send(srv, "GET", "/api/openapi.yaml", None, "", b"");
    assert_eq!(r.status, 200);
    assert!(r.text().starts_with("openapi: 3.1"));
    let r = send(srv, "GET", "/oauth/jwks.json", None, "", b"");
    assert_eq!(r.json()["keys"][0]["alg"], "ES256");
    // Request ids come back.
    let r = http()
        .get(&srv.url("/health/live"))
        .header("x-request-id", "abc-123")
        .call()
        .unwrap();
    assert_eq!(r.headers().get("x-request-id").unwrap(), "abc-123");
    // Secrets and tokens never reach the log.
    let log = srv.log();
    assert!(
        !log.contains(&c.cpo.1) && !log.contains(&tok) && !log.contains("eyJ"),
        "secret or token in the log"
    );
}

/// `/metrics` as series (name with labels) → value.
fn metrics(srv: &Server) -> std::collections::BTreeMap<String, f64> {
    let r = send(srv, "GET", "/metrics", None, "", b"");
    assert_eq!(r.status, 200);
    r.text()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// `pnc-pki audit export` as parsed JSON lines.
fn audit_export(env: &Env, extra: &[&str]) -> Vec<serde_json::Value> {
    let mut args = vec!["audit", "export"];
    args.extend_from_slice(extra);
    env.ok(&args)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect()
}

/// Every kind of event reaches the audit log, which security officers read with `audit export`
/// and `GET /api/v1/audit` (admins and auditors only), and which still verifies.
fn audit_trail(d: &Deployment) {
    let (env, srv, c) = (&d.env, &d.srv, &d.c);
    let cpo = token_json(srv, &c.cpo);
    let b = csr_body(
        env,
        "audit1",
        "prime256v1",
        "/C=DE/O=ACME Charging/DC=CPO/CN=DE*ABC*E9990001",
    );
    let r = send(
        srv,
        "POST",
        "/cpo/simpleenroll/ISO15118-2",
        Some(&cpo),
        "application/pkcs10",
        &b,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let serial = serial_of(env.path(), &pkcs7_certs(env.path(), "audit1", &r.body)[0]);
    let r = send(
        srv,
        "POST",
        &format!("/api/v1/certificates/cpo-sub-ca-2/{serial}/revoke"),
        Some(&cpo),
        "application/json",
        br#"{"reason":"keyCompromise"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        send(srv, "GET", "/crl/cpo-sub-ca-2.crl", None, "", b"").status,
        200
    );
    // A refusal (another tenant's certificate) and an authentication failure.
    let other = token_json(srv, &c.cpo_other);
    let r = send(
        srv,
        "GET",
        &format!("/api/v1/certificates/cpo-sub-ca-2/{serial}"),
        Some(&other),
        "",
        b"",
    );
    assert_eq!(r.status, 403);
    assert_eq!(
        send(srv, "GET", "/api/v1/cas", Some("garbage"), "", b"").status,
        401
    );
    let victim = env.client_add("audited", "mo", &["DE8AA"]);
    env.ok(&["client", "disable", "--client-id", &victim.0]);

    let all = audit_export(env, &[]);
    for (i, e) in all.iter().enumerate() {
        assert_eq!(
            e["seq"].as_i64(),
            Some(i as i64 + 1),
            "entries in order from 1: {e}"
        );
        for k in ["at", "actor", "action", "subject", "hash"] {
            assert!(e[k].is_string(), "{k} in {e}");
        }
        assert!(e["details"].is_object(), "details are JSON: {e}");
        assert!(e["at"].as_str().unwrap().ends_with('Z'), "{e}");
    }
    let actions: std::collections::BTreeSet<&str> =
        all.iter().filter_map(|e| e["action"].as_str()).collect();
    for action in [
        "ca.create",
        "certificate.issue",
        "certificate.revoke",
        "crl.issued",
        "client.create",
        "client.disable",
        "auth.failure",
        "auth.denied",
        "api.signing_key.create",
    ] {
        assert!(actions.contains(action), "no {action} in {actions:?}");
    }
    let revoke = all
        .iter()
        .find(|e| e["action"] == "certificate.revoke")
        .unwrap();
    assert_eq!(revoke["subject"], format!("cpo-sub-ca-2/{serial}"));
    assert_eq!(revoke["details"]["reason"], "keyCompromise");
    assert!(revoke["actor"].as_str().unwrap().starts_with("api:"));
    let crl = all
        .iter()
        .rfind(|e| e["action"] == "crl.issued" && e["subject"] == "cpo-sub-ca-2")
        .expect("the revocation's CRL is audited");
    assert!(crl["details"]["number"].as_i64().unwrap() >= 1);
    assert!(crl["details"]["entries"].as_i64().unwrap() >= 1);
    let denied = all.iter().find(|e| e["action"] == "auth.denied").unwrap();
    assert_eq!(denied["details"]["reason"], "forbidden_tenant");
    // The client by name beside its id.
    assert_eq!(denied["actor"], format!("api:CPO XYZ ({})", c.cpo_other.0));
    // Filters: --since is inclusive, --action a prefix.
    let tail = audit_export(env, &["--since", "3"]);
    assert_eq!(tail.len(), all.len() - 2);
    assert_eq!(tail[0]["seq"], 3);
    let certs = audit_export(env, &["--action", "certificate."]);
    assert!(!certs.is_empty());
    assert!(
        certs
            .iter()
            .all(|e| e["action"].as_str().unwrap().starts_with("certificate.")),
        "{certs:?}"
    );
    assert_eq!(
        certs.len(),
        all.iter()
            .filter(|e| e["action"].as_str().unwrap().starts_with("certificate."))
            .count()
    );
    // Over HTTP: the same entries, a page at a time, for admins and auditors only.
    for reader in [&c.admin, &c.auditor] {
        let tok = token_json(srv, reader);
        let mut seen: Vec<serde_json::Value> = Vec::new();
        let mut path = "/api/v1/audit?limit=7".to_string();
        loop {
            let r = send(srv, "GET", &path, Some(&tok), "", b"");
            assert_eq!(r.status, 200, "{}", r.text());
            let v = r.json();
            let items = v["items"].as_array().unwrap();
            assert!(items.len() <= 7);
            seen.extend(items.iter().cloned());
            match v["next"].as_i64() {
                Some(n) => path = format!("/api/v1/audit?limit=7&after={n}"),
                None => break,
            }
        }
        // Reading the log over HTTP is not itself audited, so the export taken above is a
        // prefix of what the pages show.
        assert!(seen.len() >= all.len());
        assert_eq!(&seen[..all.len()], &all[..], "HTTP pages = audit export");
    }
    let tok = token_json(srv, &c.admin);
    let r = send(
        srv,
        "GET",
        "/api/v1/audit?action=crl.&limit=1000",
        Some(&tok),
        "",
        b"",
    );
    let items = r.json()["items"].as_array().unwrap().clone();
    assert!(!items.is_empty() && items.iter().all(|e| e["action"] == "crl.issued"));
    for bad in [
        "/api/v1/audit?after=-1",
        "/api/v1/audit?limit=x",
        "/api/v1/audit?what=1",
    ] {
        let r = send(srv, "GET", bad, Some(&tok), "", b"");
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
        assert_eq!(r.json()["code"], "bad_query");
    }
    let r = send(srv, "GET", "/api/v1/audit", Some(&cpo), "", b"");
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["code"], "forbidden_role");
    assert_eq!(send(srv, "GET", "/api/v1/audit", None, "", b"").status, 401);
    let out = env.ok(&["audit", "verify"]);
    assert!(out.contains("audit log OK"), "{out}");
}

/// TLS 1.3 only, optional mutual TLS (a client certificate authenticates only as the client it
/// was registered for with `client add --cert`), and no plain HTTP off loopback. Transport only,
/// so SQLite suffices. The attacks on mutual TLS are in tests/abuse.rs.
#[test]
fn tls13_and_mutual_tls() {
    let env = Env::new(Backend::Sqlite);
    env.init();
    let d = env.path();
    let tca = TestCa::new(d, "tca");
    let (srv_cert, srv_key) = tca.server_cert();
    let (cli_cert, cli_key) = tca.issue("cli", "/CN=csms-1", "extendedKeyUsage=clientAuth\n");
    let cpo = env.client_add_with_cert("CPO over mTLS", "cpo", &["DE*ABC"], &cli_cert);
    // The same certificate cannot be bound twice; one without clientAuth not at all.
    let err = env.fails(&[
        "client",
        "add",
        "--name",
        "again",
        "--role",
        "cpo",
        "--tenant",
        "DE*ABC",
        "--cert",
        cli_cert.to_str().unwrap(),
    ]);
    assert!(err.contains("already_registered"), "{err}");
    let (srv_only, _) = tca.issue("srvonly", "/CN=x", "extendedKeyUsage=serverAuth\n");
    let err = env.fails(&[
        "client",
        "add",
        "--name",
        "x",
        "--role",
        "cpo",
        "--tenant",
        "DE*ABC",
        "--cert",
        srv_only.to_str().unwrap(),
    ]);
    assert!(err.contains("invalid_client_certificate"), "{err}");
    // A certificate from the same CA whose CN is the client id: verifies, but is not the bound one.
    let (forged, forged_key) = tca.issue(
        "forged",
        &format!("/CN={}", cpo.0),
        "extendedKeyUsage=clientAuth\n",
    );
    let s = |p: &std::path::Path| p.display().to_string();
    let srv = env.spawn_serve(&[
        ("PNC_TLS_CERT", &s(&srv_cert)),
        ("PNC_TLS_KEY", &s(&srv_key)),
        ("PNC_TLS_CLIENT_CA", &s(&tca.cert)),
    ]);
    let ca = s(&tca.cert);
    let base = wait_tls_ready(&srv, &tca.cert);
    let url = |path: &str| format!("{base}{path}");
    // TLS 1.2 is refused; 1.3 works.
    let (code, _) = curl(&[
        "--cacert",
        &ca,
        "--tlsv1.2",
        "--tls-max",
        "1.2",
        &url("/health/live"),
    ]);
    assert_eq!(code, 0, "TLS 1.2 handshake must fail");
    // No token, no certificate: 401. The registered certificate: authenticated as its client.
    let list = url("/api/v1/certificates?evse_id=DE*ABC*E1234567");
    assert_eq!(curl(&["--cacert", &ca, &list]).0, 401);
    let (code, body) = curl(&[
        "--cacert",
        &ca,
        "--cert",
        &s(&cli_cert),
        "--key",
        &s(&cli_key),
        &list,
    ]);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"items\""));
    // The CN names the client, but the certificate is not the one registered: no credential.
    let (code, body) = curl(&[
        "--cacert",
        &ca,
        "--cert",
        &s(&forged),
        "--key",
        &s(&forged_key),
        &list,
    ]);
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("missing_credentials"), "{body}");
    // Disabled: the certificate stops working.
    env.ok(&["client", "disable", "--client-id", &cpo.0]);
    let (code, body) = curl(&[
        "--cacert",
        &ca,
        "--cert",
        &s(&cli_cert),
        "--key",
        &s(&cli_key),
        &list,
    ]);
    assert_eq!(code, 401, "{body}");
    let cpo = env.client_add("CPO with a secret", "cpo", &["DE*ABC"]);
    // Tokens work over TLS too.
    let form = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}",
        cpo.0, cpo.1
    );
    let (code, body) = curl(&["--cacert", &ca, "-d", &form, &url("/oauth/token")]);
    assert_eq!(code, 200, "{body}");
    drop(srv);

    // Plain HTTP is for loopback only.
    let out = env
        .command()
        .args([
            "serve",
            "--data-dir",
            &env.data_dir(),
            "--listen",
            &format!("0.0.0.0:{}", free_port()),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("refusing plain HTTP"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
