//! Issuance from CSRs made by the openssl CLI, for every leaf profile, on both stores; the results
//! verify with `openssl verify` (also with the keys on kryoptic, a second PKCS#11 module). Then
//! every way a request can be wrong: a clear one-line error and nothing written.

mod common;

use common::*;
use std::path::Path;

struct Case {
    profile: &'static str,
    curve: &'static str,
    subject: &'static str,
    root: &'static str,
    chain: &'static [&'static str],
}

const CASES: &[Case] = &[
    Case {
        profile: "secc-leaf",
        curve: "prime256v1",
        subject: "/C=DE/O=Example CPO/DC=CPO/CN=DE*ABC*E123*1",
        root: "v2g-root",
        chain: &["cpo-sub-ca-1", "cpo-sub-ca-2"],
    },
    Case {
        profile: "secc-leaf-20",
        curve: "secp521r1",
        subject: "/O=Example CPO/CN=DE-ABC-S-00003C4D557878675645330967543476-2",
        root: "v2g-root-20",
        chain: &["cpo-sub-ca-1-20", "cpo-sub-ca-2-20"],
    },
    Case {
        profile: "contract",
        curve: "prime256v1",
        subject: "/O=Example MO/CN=DE8AAA1B2C3D4EV",
        root: "mo-root",
        chain: &["mo-sub-ca-1", "mo-sub-ca-2"],
    },
    Case {
        profile: "contract-20",
        curve: "secp521r1",
        subject: "/O=Example MO/CN=DE8AAA1B2C3D4EV",
        root: "mo-root-20",
        chain: &["mo-sub-ca-1-20", "mo-sub-ca-2-20"],
    },
    Case {
        profile: "oem-provisioning",
        curve: "prime256v1",
        subject: "/O=Example OEM/DC=OEM/CN=WP012345678901234",
        root: "oem-root",
        chain: &["oem-sub-ca-1", "oem-sub-ca-2"],
    },
    Case {
        profile: "oem-provisioning-20",
        curve: "secp521r1",
        subject: "/O=Example OEM/CN=WP01234567890123456",
        root: "oem-root-20",
        chain: &["oem-sub-ca-1-20", "oem-sub-ca-2-20"],
    },
];

fn verify(export: &Path, root: &str, chain: &[&str], leaf: &Path) -> (bool, String) {
    let untrusted = export.join(format!("untrusted-{root}.pem"));
    let bytes: Vec<u8> = chain
        .iter()
        .flat_map(|c| std::fs::read(export.join(format!("{c}.pem"))).unwrap())
        .collect();
    std::fs::write(&untrusted, bytes).unwrap();
    openssl(&[
        "verify",
        "-x509_strict",
        "-CAfile",
        export.join(format!("{root}.pem")).to_str().unwrap(),
        "-untrusted",
        untrusted.to_str().unwrap(),
        leaf.to_str().unwrap(),
    ])
}

fn cert_count(env: &Env) -> usize {
    let out = env.ok(&["list", "--json", "--limit", "1000"]);
    serde_json::from_str::<Vec<serde_json::Value>>(&out)
        .unwrap()
        .len()
}

/// Audit entries (as exported) other than refusals: a refused request is audited as
/// `certificate.enroll.refused`, and writes nothing else.
fn audit_entries_but_refusals(env: &Env) -> (u64, u64) {
    let out = env.ok(&["audit", "export"]);
    let (mut other, mut refused) = (0, 0);
    for l in out.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        if v["action"].as_str().unwrap_or("").ends_with(".refused") {
            refused += 1;
        } else {
            other += 1;
        }
    }
    (other, refused)
}

#[test]
fn every_leaf_profile_issues_from_csr_and_verifies() {
    for env in every_deployment() {
        env.init();
        let export = env.export();
        for c in CASES {
            let csr = env.openssl_csr(c.profile, c.curve, c.subject);
            let out = env.path().join(format!("{}.pem", c.profile));
            let stdout = env.ok(&[
                "issue",
                "--profile",
                c.profile,
                "--csr",
                csr.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ]);
            assert!(stdout.contains("issued"), "{stdout}");
            let (ok, text) = verify(&export, c.root, c.chain, &out);
            assert!(ok && text.contains(": OK"), "{}: {text}", c.profile);
            let der = read_pem_der(&out);
            let max = if c.profile.ends_with("-20") {
                1600
            } else {
                800
            };
            assert!(der.len() <= max, "{} is {} bytes", c.profile, der.len());
        }
        // Identifiers are searchable.
        let by_evse = env.ok(&["list", "--json", "--evse-id", "DE*ABC*E123*1"]);
        let v: Vec<serde_json::Value> = serde_json::from_str(&by_evse).unwrap();
        assert_eq!(v.len(), 1, "{by_evse}");
        assert_eq!(v[0]["profile"], "secc-leaf");
        let by_emaid = env.ok(&["list", "--json", "--emaid", "DE-8AA-A1B2C3D4E-V"]);
        let v: Vec<serde_json::Value> = serde_json::from_str(&by_emaid).unwrap();
        assert_eq!(v.len(), 2, "-2 and -20 contract: {by_emaid}");
        let serial = v[0]["serial_hex"].as_str().unwrap().to_string();
        let issuer = v[0]["issuer_id"].as_str().unwrap().to_string();
        let shown = env.ok(&["show", "--serial", &serial, "--issuer", &issuer]);
        assert!(
            shown.contains("BEGIN CERTIFICATE") && shown.contains("DE8AAA1B2C3D4EV"),
            "{shown}"
        );
    }
}

#[test]
fn contract_with_service_generated_key() {
    let env = Env::new(Backend::Sqlite);
    env.init();
    let export = env.export();
    let cert = env.path().join("contract.pem");
    let key = env.path().join("contract.key");
    env.ok(&[
        "issue",
        "--profile",
        "contract",
        "--subject",
        "O=Example MO, CN=DE8AAA1B2C3D4EV",
        "--key-out",
        key.to_str().unwrap(),
        "--out",
        cert.to_str().unwrap(),
    ]);
    let (ok, text) = verify(&export, "mo-root", &["mo-sub-ca-1", "mo-sub-ca-2"], &cert);
    assert!(ok, "{text}");
    // The key file holds the private key of that certificate, and only its owner can read it.
    let (_, cert_pub) = openssl(&["x509", "-in", cert.to_str().unwrap(), "-noout", "-pubkey"]);
    let (ok, key_pub) = openssl(&["pkey", "-in", key.to_str().unwrap(), "-pubout"]);
    assert!(ok, "{key_pub}");
    assert_eq!(cert_pub.trim(), key_pub.trim());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn refused_requests_are_clear_and_write_nothing() {
    let env = Env::new(Backend::Sqlite);
    env.init();
    let before_certs = cert_count(&env);
    let before_audit = audit_entries_but_refusals(&env).0;
    let out = env.path().join("refused.pem");
    let out_s = out.to_str().unwrap().to_string();
    let issue = |profile: &str, csr: &Path| -> String {
        env.fails(&[
            "issue",
            "--profile",
            profile,
            "--csr",
            csr.to_str().unwrap(),
            "--out",
            &out_s,
        ])
    };
    let good = env.openssl_csr(
        "good",
        "prime256v1",
        "/C=DE/O=Example CPO/DC=CPO/CN=DE*ABC*E123*1",
    );

    // Bad signature: flip a bit inside the signature of an otherwise valid CSR.
    let mut der = read_pem_der(&good);
    let n = der.len();
    der[n - 5] ^= 0x01;
    let bad_sig = env.path().join("badsig.der");
    std::fs::write(&bad_sig, &der).unwrap();
    let e = issue("secc-leaf", &bad_sig);
    assert!(e.contains("signature does not verify"), "{e}");

    let mut cases: Vec<(&str, std::path::PathBuf, &str)> = vec![
        (
            "secc-leaf",
            env.openssl_csr(
                "p384",
                "secp384r1",
                "/C=DE/O=Example CPO/DC=CPO/CN=DE*ABC*E123*1",
            ),
            "requires ec-p256",
        ),
        (
            "secc-leaf-20",
            env.openssl_csr(
                "p256for20",
                "prime256v1",
                "/O=Example CPO/CN=DE-ABC-S-00003C4D557878675645330967543476-2",
            ),
            "requires ec-p521",
        ),
        (
            "secc-leaf",
            env.openssl_csr(
                "badevse",
                "prime256v1",
                "/C=DE/O=Example CPO/DC=CPO/CN=not an evse id",
            ),
            "CN",
        ),
        (
            "secc-leaf",
            env.openssl_csr("nodc", "prime256v1", "/C=DE/O=Example CPO/CN=DE*ABC*E123*1"),
            "lacks DC=CPO",
        ),
        (
            "secc-leaf",
            env.openssl_csr(
                "wrongdc",
                "prime256v1",
                "/C=DE/O=Example CPO/DC=MO/CN=DE*ABC*E123*1",
            ),
            "DC must be 'CPO'",
        ),
        (
            "secc-leaf",
            env.openssl_csr(
                "extra-ou",
                "prime256v1",
                "/C=DE/O=Example CPO/OU=x/DC=CPO/CN=DE*ABC*E123*1",
            ),
            "OU is not allowed",
        ),
        (
            "contract",
            env.openssl_csr("badcheck", "prime256v1", "/O=Example MO/CN=DE8AAA1B2C3D4E5"),
            "check digit",
        ),
        (
            "contract",
            env.openssl_csr(
                "emaid-lower",
                "prime256v1",
                "/O=Example MO/CN=de8aaa1b2c3d4ev",
            ),
            "normalised",
        ),
        (
            "oem-provisioning",
            env.openssl_csr("shortpcid", "prime256v1", "/O=Example OEM/DC=OEM/CN=WP0123"),
            "PCID",
        ),
        (
            "oem-provisioning",
            env.openssl_csr(
                "nodc-oem",
                "prime256v1",
                "/O=Example OEM/CN=WP012345678901234",
            ),
            "lacks DC=OEM",
        ),
        ("no-such-profile", good.clone(), "unknown profile"),
        ("v2g-root", good.clone(), "only leaf profiles"),
    ];
    // CSRs asking for things the CA does not issue.
    let key = env.path().join("good.key");
    for (name, ext, want) in [
        ("ca-true", "basicConstraints=critical,CA:TRUE", "cA=TRUE"),
        ("unknown-ext", "nsComment=hello", "does not issue"),
    ] {
        let csr = env.path().join(format!("{name}.csr"));
        let (ok, t) = openssl(&[
            "req",
            "-new",
            "-key",
            key.to_str().unwrap(),
            "-subj",
            "/C=DE/O=Example CPO/DC=CPO/CN=DE*ABC*E123*1",
            "-addext",
            ext,
            "-out",
            csr.to_str().unwrap(),
        ]);
        assert!(ok, "{t}");
        cases.push(("secc-leaf", csr, want));
    }
    let garbage = env.path().join("garbage.csr");
    std::fs::write(&garbage, "this is not a CSR").unwrap();
    cases.push(("secc-leaf", garbage, "not valid PEM or DER"));
    for (profile, csr, want) in &cases {
        let e = issue(profile, csr);
        assert!(
            e.contains(want),
            "{profile} {}: expected '{want}' in: {e}",
            csr.display()
        );
        assert_eq!(
            e.trim().lines().filter(|l| l.starts_with("error:")).count(),
            1,
            "one error line: {e}"
        );
    }
    // Validity beyond the profile maximum.
    let e = env.fails(&[
        "issue",
        "--profile",
        "secc-leaf",
        "--csr",
        good.to_str().unwrap(),
        "--days",
        "1000",
        "--out",
        &out_s,
    ]);
    assert!(e.contains("outside 1..=90 days"), "{e}");

    // Oversize: the same request against a profile capped at 400 bytes.
    let pol = env.path().join("policies");
    std::fs::create_dir_all(&pol).unwrap();
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/policies")).unwrap() {
        let p = entry.unwrap().path();
        let text = std::fs::read_to_string(&p).unwrap();
        let text = if p.file_name().unwrap() == "secc-leaf.toml" {
            text.replace("max_der_len = 800", "max_der_len = 400")
        } else {
            text
        };
        std::fs::write(pol.join(p.file_name().unwrap()), text).unwrap();
    }
    let o = env
        .command()
        .env("PNC_POLICIES_DIR", &pol)
        .args([
            "issue",
            "--data-dir",
            &env.data_dir(),
            "--profile",
            "secc-leaf",
            "--csr",
            good.to_str().unwrap(),
            "--out",
            &out_s,
        ])
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && e.contains("over the 400-byte limit"),
        "{e}"
    );

    // Wrong PIN and a missing module: refused before anything is touched.
    let o = env
        .command()
        .env("PNC_HSM_PIN", "wrong-pin")
        .args([
            "issue",
            "--data-dir",
            &env.data_dir(),
            "--profile",
            "secc-leaf",
            "--csr",
            good.to_str().unwrap(),
            "--out",
            &out_s,
        ])
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && e.contains("PIN is incorrect"), "{e}");
    let o = env
        .command()
        .env("PNC_HSM_MODULE", "/nonexistent/libpkcs11.so")
        .args([
            "issue",
            "--data-dir",
            &env.data_dir(),
            "--profile",
            "secc-leaf",
            "--csr",
            good.to_str().unwrap(),
            "--out",
            &out_s,
        ])
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && e.contains("/nonexistent/libpkcs11.so does not exist"),
        "{e}"
    );

    assert!(!out.exists(), "no certificate file was written");
    assert_eq!(
        cert_count(&env),
        before_certs,
        "no certificate was recorded"
    );
    assert_eq!(
        audit_entries_but_refusals(&env).0,
        before_audit,
        "no audit entry but the refusals was written"
    );
    // And the good request still works afterwards.
    env.ok(&[
        "issue",
        "--profile",
        "secc-leaf",
        "--csr",
        good.to_str().unwrap(),
        "--out",
        &out_s,
    ]);
    assert_eq!(cert_count(&env), before_certs + 1);
    assert_eq!(audit_entries_but_refusals(&env).0, before_audit + 1);
}

#[test]
fn revocation_is_idempotent_and_audited_and_tampering_is_detected() {
    for backend in backends() {
        let env = Env::new(backend);
        env.init();
        let csr = env.openssl_csr(
            "secc",
            "prime256v1",
            "/C=DE/O=Example CPO/DC=CPO/CN=DE*ABC*E123*1",
        );
        let out = env.path().join("secc.pem");
        let stdout = env.ok(&[
            "issue",
            "--profile",
            "secc-leaf",
            "--csr",
            csr.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        let serial = stdout.split_whitespace().nth(3).unwrap().to_string();
        let r = env.ok(&[
            "revoke",
            "--serial",
            &serial,
            "--issuer",
            "cpo-sub-ca-2",
            "--reason",
            "keyCompromise",
        ]);
        assert!(r.contains("revoked"), "{r}");
        let r = env.ok(&[
            "revoke",
            "--serial",
            &serial.to_uppercase(),
            "--reason",
            "keyCompromise",
        ]);
        assert!(r.contains("already revoked"), "{r}");
        let e = env.fails(&["revoke", "--serial", &serial, "--reason", "becauseISaidSo"]);
        assert!(e.contains("unknown revocation reason"), "{e}");
        let e = env.fails(&[
            "revoke",
            "--serial",
            "abcdef",
            "--issuer",
            "cpo-sub-ca-2",
            "--reason",
            "superseded",
        ]);
        assert!(e.contains("no certificate"), "{e}");
        let listed = env.ok(&["list", "--json", "--status", "revoked"]);
        let v: Vec<serde_json::Value> = serde_json::from_str(&listed).unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0]["revocation_reason"], "keyCompromise");
        assert!(env.ok(&["audit", "verify"]).contains("audit log OK"));

        // Tamper: someone with database access drops the guard and edits an entry.
        tamper(&env);
        let o = env.run(&["audit", "verify", "--data-dir", &env.data_dir()]);
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && e.contains("chain broken at entry 2"),
            "{e}"
        );
    }
}

fn tamper(env: &Env) {
    let url = env.db_url.clone();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async move {
            use sqlx::Connection;
            if url.starts_with("sqlite") {
                let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
                // The trigger refuses the edit first.
                let refused = sqlx::query("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2")
                    .execute(&mut c)
                    .await;
                assert!(refused.is_err(), "append-only trigger must refuse UPDATE");
                sqlx::query("DROP TRIGGER audit_log_no_update")
                    .execute(&mut c)
                    .await
                    .unwrap();
                sqlx::query("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2")
                    .execute(&mut c)
                    .await
                    .unwrap();
            } else {
                let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
                let refused = sqlx::query("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2")
                    .execute(&mut c)
                    .await;
                assert!(refused.is_err(), "append-only trigger must refuse UPDATE");
                sqlx::query("DROP TRIGGER audit_log_no_update ON audit_log")
                    .execute(&mut c)
                    .await
                    .unwrap();
                sqlx::query("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2")
                    .execute(&mut c)
                    .await
                    .unwrap();
            }
        });
}

/// Objects on the token, as `hsm doctor` counts them.
fn token_objects(env: &Env) -> u64 {
    let out = env.ok(&["hsm", "doctor", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["objects"].as_u64().expect("object count")
}

/// A CA or OCSP-signer profile never gets a key generated for export: the command fails with
/// one `error:` line, writes neither file, records nothing and leaves nothing on the token.
#[test]
fn non_leaf_profiles_are_refused_with_an_exported_key() {
    let env = Env::new(Backend::Sqlite);
    env.init();
    let out = env.run(&["profiles", "--json"]);
    assert!(out.status.success());
    let profiles: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let non_leaf: Vec<String> = profiles
        .iter()
        .filter(|p| p["kind"] != "leaf")
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    assert!(
        non_leaf.len() >= 24,
        "every CA and OCSP signer profile of both standards: {non_leaf:?}"
    );
    assert!(non_leaf.iter().any(|p| p == "cpo-sub-ca-2"));
    let before = (
        cert_count(&env),
        audit_entries_but_refusals(&env),
        token_objects(&env),
    );
    let key = env.path().join("k.pem");
    let cert = env.path().join("c.pem");
    for profile in &non_leaf {
        let e = env.fails(&[
            "issue",
            "--profile",
            profile,
            "--subject",
            "CN=X,O=Y,C=DE,DC=V2G",
            "--key-out",
            key.to_str().unwrap(),
            "--out",
            cert.to_str().unwrap(),
        ]);
        let lines: Vec<&str> = e.trim().lines().collect();
        assert_eq!(lines.len(), 1, "{profile}: one line: {e}");
        assert!(lines[0].starts_with("error:"), "{profile}: {e}");
        assert!(lines[0].contains("only leaf profiles"), "{profile}: {e}");
        assert!(lines[0].contains(profile.as_str()), "{profile}: {e}");
        assert!(
            !key.exists() && !cert.exists(),
            "{profile}: a file was written"
        );
    }
    let (certs, (other, refused), objects) = before;
    assert_eq!(
        (
            cert_count(&env),
            audit_entries_but_refusals(&env),
            token_objects(&env)
        ),
        (certs, (other, refused + non_leaf.len() as u64), objects),
        "no certificate, token object or audit entry left behind but one refusal each"
    );
    // A leaf whose key file cannot be written is not issued at all (the key would be lost).
    let e = env.fails(&[
        "issue",
        "--profile",
        "contract",
        "--subject",
        "O=Example MO, CN=DE8AAA1B2C3D4EV",
        "--key-out",
        "/nonexistent-dir/k.pem",
        "--out",
        cert.to_str().unwrap(),
    ]);
    assert!(e.contains("cannot write /nonexistent-dir/k.pem"), "{e}");
    assert!(!cert.exists());
    assert_eq!(
        (cert_count(&env), audit_entries_but_refusals(&env).0),
        (certs, other),
        "nothing issued for an unwritable key path"
    );
    // A leaf profile with the same command still works.
    env.ok(&[
        "issue",
        "--profile",
        "contract",
        "--subject",
        "O=Example MO, CN=DE8AAA1B2C3D4EV",
        "--key-out",
        key.to_str().unwrap(),
        "--out",
        cert.to_str().unwrap(),
    ]);
    assert!(key.exists() && cert.exists());
    assert_eq!(
        token_objects(&env),
        before.2,
        "the contract key was a session object"
    );
}
