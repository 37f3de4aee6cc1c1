//! Input hygiene over real HTTP (`pnc-pki serve`), on SQLite and PostgreSQL (issue 20):
//! control characters in paths, queries and bodies are refused with `400 invalid_characters`
//! before they reach a database (PostgreSQL refuses a NUL in text with an error, SQLite stores
//! it); every error body, the 413s included, carries a `code`; ES256 tokens with a high S are
//! refused (ours are always low-S); subject names are shown with RFC 4514 escaping.

mod common;

use std::path::{Path, PathBuf};

use base64::Engine;
use common::*;
use serde_json::json;

const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;
/// The order of the P-256 group.
const P256_N: &str = "FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551";
/// The demo hierarchy's CSO organization (the CSO sub-CA's `O`).
const ORG: &str = "pnc-pki Demo CSO";

/// One request; `auth` is a whole `Authorization` value.
fn send(
    srv: &Server,
    method: &str,
    path: &str,
    auth: Option<&str>,
    ctype: &str,
    body: &[u8],
) -> Reply {
    let url = srv.url(path);
    let agent = http();
    let with = |mut b: ureq::RequestBuilder<ureq::typestate::WithBody>| {
        if let Some(a) = auth {
            b = b.header("authorization", a);
        }
        if !ctype.is_empty() {
            b = b.header("content-type", ctype);
        }
        reply(b.send(body))
    };
    match method {
        "GET" => {
            let mut b = agent.get(&url);
            if let Some(a) = auth {
                b = b.header("authorization", a);
            }
            reply(b.call())
        }
        "POST" => with(agent.post(&url)),
        "PUT" => with(agent.put(&url)),
        m => panic!("method {m}"),
    }
}

/// A 4xx answer whose body is JSON with `code`; problem+json on `/api/` paths.
fn assert_refused(r: &Reply, status: u16, code: &str, what: &str) {
    let text: String = r.text().chars().take(300).collect();
    assert_eq!(r.status, status, "{what}: {text}");
    let v = r.json();
    assert_eq!(v["code"], code, "{what}: {v}");
}

fn assert_problem(r: &Reply, status: u16, code: &str, what: &str) {
    assert_refused(r, status, code, what);
    assert_eq!(r.ctype, "application/problem+json", "{what}");
}

/// Log lines at ERROR level (text format: the level follows the timestamp).
fn error_lines(log: &str) -> Vec<&str> {
    log.lines().filter(|l| l.contains(" ERROR ")).collect()
}

fn csr_pem(dir: &Path, name: &str, subj: &str) -> PathBuf {
    let key = dir.join(format!("{name}.key"));
    let csr = dir.join(format!("{name}.csr"));
    let (ok, out) = openssl(&[
        "req",
        "-new",
        "-nodes",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-keyout",
        key.to_str().unwrap(),
        "-subj",
        subj,
        "-out",
        csr.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    csr
}

fn control_characters(backend: Backend) {
    if !backend_ready(backend) {
        return;
    }
    let env = Env::new(backend);
    env.init();
    let mo = env.client_add("MO 8AA", "mo", &["DE8AA"]);
    let csms = env.client_add("CSMS", "csms", &[ORG]);
    let admin = env.client_add("Admin", "admin", &[]);
    let srv = env.serve_with_env(&[("PNC_LIMIT_AUTH_FAILURES_PER_IP", "off")]);
    let mo_auth = srv.bearer(&mo);
    let admin_auth = srv.bearer(&admin);

    // Anonymous: a CRL path with a NUL (and another control character).
    for path in ["/crl/a%00b.crl", "/crl/a%01b.crl", "/crl/a%7Fb.crl"] {
        let r = send(&srv, "GET", path, None, "", b"");
        assert_refused(&r, 400, "invalid_characters", path);
    }
    // The token endpoint, JSON and form: RFC 6749 shape plus our code.
    let json_body =
        json!({"grant_type": "client_credentials", "client_id": "pnc_\u{0}", "client_secret": "x"});
    let r = send(
        &srv,
        "POST",
        "/oauth/token",
        None,
        "application/json",
        json_body.to_string().as_bytes(),
    );
    assert_refused(&r, 400, "invalid_characters", "token JSON");
    assert_eq!(r.json()["error"], "invalid_request");
    let r = send(
        &srv,
        "POST",
        "/oauth/token",
        None,
        "application/x-www-form-urlencoded",
        b"grant_type=client_credentials&client_id=pnc_%00&client_secret=x",
    );
    assert_refused(&r, 400, "invalid_characters", "token form");
    let r = send(
        &srv,
        "POST",
        "/oauth/token",
        None,
        "application/x-www-form-urlencoded",
        b"grant_type=client_credentials&client_id=pnc_%0Aadmin&client_secret=x",
    );
    assert_refused(&r, 400, "invalid_characters", "token form, newline");
    // Query filters.
    for q in [
        "/api/v1/certificates?emaid=%00",
        "/api/v1/certificates?issuer_id=mo-sub-ca-2%00",
        "/api/v1/certificates?profile=contract%1B",
        "/api/v1/contracts?emaid=DE8AA%00",
        "/api/v1/certificates/mo-sub-ca-2%00/01",
    ] {
        let r = send(&srv, "GET", q, Some(&mo_auth), "", b"");
        assert_problem(&r, 400, "invalid_characters", q);
    }
    let r = send(
        &srv,
        "GET",
        "/api/v1/audit?action=certificate.%00",
        Some(&admin_auth),
        "",
        b"",
    );
    assert_problem(&r, 400, "invalid_characters", "audit action");
    // JSON bodies: a NUL anywhere, and control characters in identifier fields.
    for org in ["EVIL\u{0}", "EVIL\nCSO", "EVIL\u{85}"] {
        let body =
            json!({"emaid": "DE8AA000000002", "pcid": "WP0ZZZ99ZTS392124", "organization": org});
        let r = send(
            &srv,
            "POST",
            "/api/v1/contracts",
            Some(&mo_auth),
            "application/json",
            body.to_string().as_bytes(),
        );
        assert_problem(
            &r,
            400,
            "invalid_characters",
            &format!("contract organization {org:?}"),
        );
    }
    let body = json!({"name": "ops\u{0}", "role": "cpo", "tenants": ["DE*XYZ"]});
    let r = send(
        &srv,
        "POST",
        "/api/v1/clients",
        Some(&admin_auth),
        "application/json",
        body.to_string().as_bytes(),
    );
    assert_problem(&r, 400, "invalid_characters", "client name");
    let body = json!({"name": "ops", "role": "cpo", "tenants": ["DE*XYZ\t"]});
    let r = send(
        &srv,
        "POST",
        "/api/v1/clients",
        Some(&admin_auth),
        "application/json",
        body.to_string().as_bytes(),
    );
    assert_problem(&r, 400, "invalid_characters", "client tenant");
    // A PEM inside JSON keeps its line breaks: an OCPP SignCertificateRequest still works.
    let csr = csr_pem(env.path(), "cs1", &format!("/O={ORG}/CN=CS-0001"));
    let body = json!({"stationId": "CS-0001", "csr": std::fs::read_to_string(&csr).unwrap()});
    let csms_auth = srv.bearer(&csms);
    let r = send(
        &srv,
        "POST",
        "/api/v1/ocpp/sign-certificate",
        Some(&csms_auth),
        "application/json",
        body.to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let body = json!({"stationId": "CS-0001\u{0}", "csr": std::fs::read_to_string(&csr).unwrap()});
    let r = send(
        &srv,
        "POST",
        "/api/v1/ocpp/sign-certificate",
        Some(&csms_auth),
        "application/json",
        body.to_string().as_bytes(),
    );
    // OCPP's own refusal shape (`status: Rejected`), with our code.
    assert_refused(&r, 400, "invalid_characters", "stationId");
    assert_eq!(r.json()["status"], "Rejected");
    let body = json!({"idToken": {"idToken": "DE8AA\u{0}", "type": "eMAID"}});
    let r = send(
        &srv,
        "POST",
        "/api/v1/ocpp/authorize",
        Some(&csms_auth),
        "application/json",
        body.to_string().as_bytes(),
    );
    assert_problem(&r, 400, "invalid_characters", "authorize idToken");
    // A normal contract still goes through.
    let body = json!({"emaid": "DE8AA000000002", "pcid": "WP0ZZZ99ZTS392124"});
    let r = send(
        &srv,
        "POST",
        "/api/v1/contracts",
        Some(&mo_auth),
        "application/json",
        body.to_string().as_bytes(),
    );
    assert_eq!(r.status, 201, "{}", r.text());

    // Nothing on our side failed, and nothing with a NUL reached the database.
    let log = srv.log();
    assert!(
        error_lines(&log).is_empty(),
        "ERROR lines:\n{}",
        error_lines(&log).join("\n")
    );
    assert!(!log.contains("store_unavailable"), "{log}");
    let audit = env.ok(&["audit", "export"]);
    assert!(
        !audit.contains("\\u0000") && !audit.contains('\0'),
        "{audit}"
    );
    let clients = env.ok(&["client", "list", "--json"]);
    assert!(!clients.contains("\\u0000"), "{clients}");
}

#[test]
fn control_characters_are_refused_sqlite() {
    control_characters(Backend::Sqlite);
}

#[test]
fn control_characters_are_refused_postgres() {
    control_characters(Backend::Postgres);
}

#[test]
fn every_error_body_carries_a_code_the_413s_included() {
    let env = Env::new(Backend::Sqlite);
    env.init();
    let admin = env.client_add("Admin", "admin", &[]);
    let cpo = env.client_add("CPO", "cpo", &["DE*ABC"]);
    let srv = env.serve_with_env(&[("PNC_API_MAX_BODY", "2048")]);
    let admin_auth = srv.bearer(&admin);
    let cpo_auth = srv.bearer(&cpo);
    let big = vec![b'{'; 4096];
    for path in [
        "/api/v1/ocsp/certificate-status",
        "/api/v1/ocsp/chain-status",
        "/api/v1/contracts",
        "/api/v1/clients",
        "/api/v1/ocpp/sign-certificate",
        "/api/v1/certificates/cpo-sub-ca-2/01/revoke",
    ] {
        let r = send(
            &srv,
            "POST",
            path,
            Some(&admin_auth),
            "application/json",
            &big,
        );
        assert_problem(&r, 413, "body_too_large", path);
    }
    // OPCP routes answer Hubject's shape, with our code.
    let r = send(
        &srv,
        "POST",
        "/cpo/simpleenroll/ISO15118-2",
        Some(&cpo_auth),
        "application/pkcs10",
        &big,
    );
    assert_refused(&r, 413, "body_too_large", "simpleenroll");
    let r = send(&srv, "POST", "/oauth/token", None, "application/json", &big);
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.json()["code"].is_string(), "{}", r.text());
    // Other rejections the framework makes: a path segment that is not UTF-8, a wrong method.
    let r = send(
        &srv,
        "GET",
        "/api/v1/certificates/%FF/01",
        Some(&admin_auth),
        "",
        b"",
    );
    assert_eq!(
        r.ctype,
        "application/problem+json",
        "{} {}",
        r.status,
        r.text()
    );
    assert!(r.json()["code"].is_string(), "{}", r.text());
    let r = send(
        &srv,
        "PUT",
        "/api/v1/ocsp/chain-status",
        Some(&admin_auth),
        "application/json",
        b"{}",
    );
    assert_problem(&r, 405, "method_not_allowed", "PUT");
}

/// (signing input, r, s) of a compact JWS.
fn split_jws(token: &str) -> (String, Vec<u8>, Vec<u8>) {
    let (input, sig) = token.rsplit_once('.').unwrap();
    let raw = B64URL.decode(sig).unwrap();
    assert_eq!(raw.len(), 64);
    (input.to_string(), raw[..32].to_vec(), raw[32..].to_vec())
}

/// The same token with S replaced by n − S: still a valid ECDSA signature of the same input.
fn malleate(token: &str) -> String {
    use openssl::bn::BigNum;
    let (input, r, s) = split_jws(token);
    let n = BigNum::from_hex_str(P256_N).unwrap();
    let s = BigNum::from_slice(&s).unwrap();
    let mut flipped = BigNum::new().unwrap();
    flipped.checked_sub(&n, &s).unwrap();
    let mut sig = r;
    sig.extend(flipped.to_vec_padded(32).unwrap());
    format!("{input}.{}", B64URL.encode(sig))
}

fn is_low_s(token: &str) -> bool {
    use openssl::bn::BigNum;
    let (_, _, s) = split_jws(token);
    let n = BigNum::from_hex_str(P256_N).unwrap();
    let mut half = BigNum::new().unwrap();
    half.rshift1(&n).unwrap();
    BigNum::from_slice(&s).unwrap() <= half
}

/// The ECDSA signature over `input` with an openssl key, raw r‖s.
fn es256(key: &openssl::ec::EcKey<openssl::pkey::Private>, input: &str) -> (Vec<u8>, Vec<u8>) {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(input.as_bytes());
    let sig = openssl::ecdsa::EcdsaSig::sign(&digest, key).unwrap();
    (
        sig.r().to_vec_padded(32).unwrap(),
        sig.s().to_vec_padded(32).unwrap(),
    )
}

#[test]
fn high_s_tokens_of_ours_are_refused_external_ones_taken() {
    use openssl::bn::{BigNum, BigNumContext};
    use openssl::ec::{EcGroup, EcKey};
    use openssl::nid::Nid;
    let env = Env::new(Backend::Sqlite);
    env.init();
    let admin = env.client_add("Admin", "admin", &[]);
    // An external issuer we trust.
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    let key = EcKey::generate(&group).unwrap();
    let mut ctx = BigNumContext::new().unwrap();
    let (mut x, mut y) = (BigNum::new().unwrap(), BigNum::new().unwrap());
    key.public_key()
        .affine_coordinates(&group, &mut x, &mut y, &mut ctx)
        .unwrap();
    let jwks = json!({"keys": [{
        "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": "ext",
        "x": B64URL.encode(x.to_vec_padded(32).unwrap()),
        "y": B64URL.encode(y.to_vec_padded(32).unwrap()),
    }]});
    let jwks_path = env.path().join("jwks.json");
    std::fs::write(&jwks_path, jwks.to_string()).unwrap();
    let srv = env.serve_with_env(&[
        ("PNC_API_JWKS_FILE", jwks_path.to_str().unwrap()),
        ("PNC_API_JWKS_ISSUER", "https://idp.example.test"),
        ("PNC_LIMIT_TOKEN_PER_IP", "off"),
        ("PNC_LIMIT_TOKEN_PER_CLIENT", "off"),
    ]);
    let get_cas = |token: &str| {
        send(
            &srv,
            "GET",
            "/api/v1/cas",
            Some(&format!("Bearer {token}")),
            "",
            b"",
        )
    };

    // Our tokens: always low-S (the HSM's S is normalised), accepted; n − S refused.
    for i in 0..24 {
        let t = srv.bearer(&admin);
        let t = t.trim_start_matches("Bearer ").to_string();
        assert!(is_low_s(&t), "token {i} has a high S");
        if i < 2 {
            assert_eq!(get_cas(&t).status, 200);
            let r = get_cas(&malleate(&t));
            assert_refused(&r, 401, "non_canonical_signature", "our token, n − S");
        }
    }

    // An external issuer's token: accepted in both forms (identity providers' libraries do
    // not normalise S; a malleated copy grants nothing more).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let header = json!({"alg": "ES256", "typ": "JWT", "kid": "ext"});
    let claims = json!({
        "iss": "https://idp.example.test", "sub": "ext-client", "aud": "pnc-pki", "iat": now,
        "nbf": now - 5, "exp": now + 600, "jti": "t", "role": "auditor", "tenants": [],
    });
    let input = format!(
        "{}.{}",
        B64URL.encode(header.to_string()),
        B64URL.encode(claims.to_string())
    );
    let (r, s) = es256(&key, &input);
    let mut sig = r;
    sig.extend(s);
    let t = format!("{input}.{}", B64URL.encode(sig));
    let (low, high) = if is_low_s(&t) {
        (t.clone(), malleate(&t))
    } else {
        (malleate(&t), t.clone())
    };
    assert_eq!(get_cas(&low).status, 200, "{}", get_cas(&low).text());
    assert_eq!(get_cas(&high).status, 200, "{}", get_cas(&high).text());
}

#[test]
fn subject_names_are_shown_rfc4514_escaped() {
    let env = Env::new(Backend::Sqlite);
    env.init();
    let admin = env.client_add("Admin", "admin", &[]);
    // An organization that reads like two RDNs when shown unescaped.
    let csr = csr_pem(env.path(), "evil", "/O=EVIL CSO, O=ACME CSO/CN=CS-0001");
    let out = env.path().join("evil.pem");
    env.ok(&[
        "issue",
        "--profile",
        "charging-station",
        "--csr",
        csr.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let escaped = r"O=EVIL CSO\, O=ACME CSO, CN=CS-0001";
    let list = env.ok(&["list", "--profile", "charging-station"]);
    assert!(list.contains(escaped), "{list}");
    let listed = env.listed("charging-station");
    assert_eq!(listed[0]["subject"], escaped);
    let srv = env.serve();
    let auth = srv.bearer(&admin);
    let r = send(
        &srv,
        "GET",
        "/api/v1/certificates?profile=charging-station",
        Some(&auth),
        "",
        b"",
    );
    assert_eq!(r.status, 200);
    let items = r.json()["items"].as_array().unwrap().clone();
    assert_eq!(items[0]["subject"], escaped, "{items:?}");
    let path = format!(
        "/api/v1/certificates/{}/{}",
        items[0]["issuer_id"].as_str().unwrap(),
        items[0]["serial_hex"].as_str().unwrap()
    );
    let r = send(&srv, "GET", &path, Some(&auth), "", b"");
    assert_eq!(r.json()["subject"], escaped);
    // The console's certificate page (HTML-escaped by the template, RFC 4514 by us).
    let page = console_page(&env, &srv, &path.replace("/api/v1/", "/ui/"));
    assert!(
        page.contains(r"O=EVIL CSO\, O=ACME CSO, CN=CS-0001"),
        "{page}"
    );

    // `--subject` reads the escaped form back: the same name, shown the same way.
    let key_out = env.path().join("contract.key");
    let out = env.path().join("contract.pem");
    let subject = r"O=Example MO\, Inc., CN=DE8AA0000000020";
    env.ok(&[
        "issue",
        "--profile",
        "contract",
        "--subject",
        subject,
        "--key-out",
        key_out.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let (ok, text) = openssl(&[
        "x509",
        "-in",
        out.to_str().unwrap(),
        "-noout",
        "-subject",
        "-nameopt",
        "RFC2253",
    ]);
    assert!(ok, "{text}");
    assert!(text.contains(r"O=Example MO\, Inc."), "{text}");
    let contracts = env.listed("contract");
    assert!(
        contracts.iter().any(|c| c["subject"] == subject),
        "{contracts:?}"
    );
}
