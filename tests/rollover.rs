//! CA key rollover while `serve` runs (`pnc-pki ca rollover`): certificates issued before keep
//! verifying and answering OCSP and their CRL under the old key; new ones carry the new authority
//! key identifier and their own CRL; the cacerts route and `export` show the new CA certificate.
//! Checked with the openssl CLI, on SQLite and PostgreSQL.

mod common;

use std::path::{Path, PathBuf};

use common::openssl_cli::{aki, bundle, ocsp_verified, ski, verify};
use common::*;

/// GET a CRL from `srv` at `path` into `dir/name.pem`, checked by openssl against `issuer`.
fn fetch_crl(srv: &Server, path: &str, dir: &Path, name: &str, issuer: &Path) -> PathBuf {
    let r = reply(http().get(&srv.url(path)).call());
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    let der = dir.join(format!("{name}.der"));
    std::fs::write(&der, &r.body).unwrap();
    let pem = dir.join(format!("{name}.pem"));
    let (ok, out) = openssl(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        der.to_str().unwrap(),
        "-CAfile",
        issuer.to_str().unwrap(),
        "-out",
        pem.to_str().unwrap(),
    ]);
    assert!(ok && out.contains("verify OK"), "{path}: {out}");
    pem
}

fn enroll(env: &Env, srv: &Server, auth: &str, name: &str) -> (String, PathBuf) {
    let csr = env.csr_b64(name, &format!("/C=DE/O=ABC/DC=CPO/CN=DE*ABC*{name}"));
    let r = srv.enroll_secc(auth, &csr, None);
    assert_eq!(r.status, 200, "{}", r.text());
    pkcs7_leaf(env.path(), name, &r.text())
}

#[test]
fn rollover_while_serving_keeps_old_certificates_answered() {
    for backend in backends() {
        let env = Env::new(backend);
        env.init();
        let d = env.path();
        let srv = env.serve();
        let auth = srv.bearer(&env.client_add("cpo", "cpo", &["DE*ABC"]));
        let e1 = env.export();
        let root = e1.join("v2g-root.pem");
        let sub1 = e1.join("cpo-sub-ca-1.pem");
        let old_ca = e1.join("cpo-sub-ca-2.pem");
        let old_chain = bundle(&d.join("old-chain.pem"), &[&old_ca, &sub1]);

        let (serial_a, a) = enroll(&env, &srv, &auth, "E1");
        let (serial_a2, a2) = enroll(&env, &srv, &auth, "E2");
        assert_eq!(aki(&a), ski(&old_ca));

        // The rollover runs in its own process next to the server, as an operator runs it.
        let out = env.ok(&["ca", "rollover", "--ca", "cpo-sub-ca-2", "--json"]);
        let done: serde_json::Value = serde_json::from_str(out.trim()).expect("--json");
        assert_eq!(done["generation"], 2, "{done}");
        assert_eq!(done["previous_generation"], 1, "{done}");
        assert!(
            done["ocsp_signer"].as_str().unwrap().starts_with("created"),
            "{done}"
        );

        // export and the cacerts route show the new certificate: same name, new key.
        let e2 = d.join("export2");
        env.ok(&["export", "--out", e2.to_str().unwrap()]);
        let new_ca = e2.join("cpo-sub-ca-2.pem");
        assert_ne!(ski(&new_ca), ski(&old_ca));
        let subject =
            |p: &Path| openssl(&["x509", "-in", p.to_str().unwrap(), "-noout", "-subject"]).1;
        assert_eq!(subject(&new_ca), subject(&old_ca));
        assert_eq!(
            done["subject_key_identifier"].as_str().unwrap(),
            ski(&new_ca).replace(':', "").to_ascii_lowercase()
        );
        let r = reply(http().get(&srv.url("/cpo/cacerts/ISO15118-2")).call());
        assert_eq!(r.status, 200, "{}", r.text());
        let (_, cacerts) = pkcs7_leaf(d, "cacerts", &r.text());
        assert_eq!(
            ski(&cacerts),
            ski(&new_ca),
            "{backend:?}: cacerts leads with the new CA"
        );
        let new_chain = bundle(&d.join("new-chain.pem"), &[&new_ca, &sub1]);

        // Issued after: the new authority key identifier and the new key's CRL.
        let (serial_b, b) = enroll(&env, &srv, &auth, "E3");
        assert_eq!(
            aki(&b),
            ski(&new_ca),
            "{backend:?}: issued with the new key"
        );
        assert_ne!(aki(&b), aki(&a));
        // The store knows which key signed what.
        let generation_of = |serial: &str| {
            env.listed("secc-leaf")
                .into_iter()
                .find(|c| c["serial_hex"] == serial)
                .map(|c| c["issuer_generation"].clone())
        };
        assert_eq!(generation_of(&serial_a), Some(1.into()));
        assert_eq!(generation_of(&serial_b), Some(2.into()));
        verify(&root, &new_chain, &b, None).unwrap();
        // Issued before: still verifies with the chain it came with, and not with the new CA.
        verify(&root, &old_chain, &a, None).unwrap();
        assert!(verify(&root, &new_chain, &a, None).is_err());

        // OCSP: each certificate under the key that signed it, the answer verified by openssl
        // (which checks that the responder speaks for that very issuer key).
        let url = srv.url("");
        assert_eq!(ocsp_verified(&url, &old_ca, &a, &root, &old_chain), "good");
        assert_eq!(ocsp_verified(&url, &new_ca, &b, &root, &new_chain), "good");
        // A serial asked under the other key of the same CA: that key never issued it.
        assert_eq!(
            ocsp_verified(&url, &new_ca, &a, &root, &new_chain),
            "unknown"
        );
        assert_eq!(
            ocsp_verified(&url, &old_ca, &b, &root, &old_chain),
            "unknown"
        );

        // Revoke one certificate of each key (the CLI, another process).
        for s in [&serial_a, &serial_b] {
            env.ok(&[
                "revoke",
                "--serial",
                s,
                "--issuer",
                "cpo-sub-ca-2",
                "--reason",
                "keyCompromise",
            ]);
        }
        assert_eq!(
            ocsp_verified(&url, &old_ca, &a, &root, &old_chain),
            "revoked"
        );
        assert_eq!(
            ocsp_verified(&url, &new_ca, &b, &root, &new_chain),
            "revoked"
        );
        assert_eq!(ocsp_verified(&url, &old_ca, &a2, &root, &old_chain), "good");

        // CRLs: one per key (the first key's at the name it always had), signed by that key,
        // listing only what that key signed.
        let crl_old = fetch_crl(&srv, "/crl/cpo-sub-ca-2.crl", d, "crl-old", &old_chain);
        let crl_new = fetch_crl(&srv, "/crl/cpo-sub-ca-2.g2.crl", d, "crl-new", &new_chain);
        let listed = |crl: &Path| {
            openssl(&["crl", "-in", crl.to_str().unwrap(), "-noout", "-text"])
                .1
                .to_ascii_lowercase()
                .replace(':', "")
        };
        assert!(listed(&crl_old).contains(&serial_a), "{}", listed(&crl_old));
        assert!(!listed(&crl_old).contains(&serial_b));
        assert!(!listed(&crl_old).contains(&serial_a2));
        assert!(listed(&crl_new).contains(&serial_b), "{}", listed(&crl_new));
        assert!(!listed(&crl_new).contains(&serial_a));
        let full = |chain: &Path, crl: &Path, name: &str| {
            // openssl -crl_check wants the CRL of the leaf's issuer; the chain's others are
            // not checked.
            bundle(&d.join(name), &[chain, crl])
        };
        let old_bundle = full(&old_chain, &crl_old, "old-bundle.pem");
        let new_bundle = full(&new_chain, &crl_new, "new-bundle.pem");
        let e = verify(&root, &old_chain, &a, Some(&old_bundle)).unwrap_err();
        assert!(e.contains("revoked"), "{e}");
        verify(&root, &old_chain, &a2, Some(&old_bundle)).unwrap();
        let e = verify(&root, &new_chain, &b, Some(&new_bundle)).unwrap_err();
        assert!(e.contains("revoked"), "{e}");

        // A restarted server loads both keys from the store.
        drop(srv);
        let srv = env.serve();
        let url = srv.url("");
        assert_eq!(ocsp_verified(&url, &old_ca, &a2, &root, &old_chain), "good");
        assert_eq!(
            ocsp_verified(&url, &old_ca, &a, &root, &old_chain),
            "revoked"
        );
        let auth = srv.bearer(&env.client_add("cpo2", "cpo", &["DE*ABC"]));
        let (_, c) = enroll(&env, &srv, &auth, "E4");
        assert_eq!(aki(&c), ski(&new_ca));
        assert_eq!(ocsp_verified(&url, &new_ca, &c, &root, &new_chain), "good");

        // A second rollover: the first key is still answered, the second retires too.
        let out = env.ok(&["ca", "rollover", "--ca", "cpo-sub-ca-2", "--json"]);
        let done: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(done["generation"], 3, "{done}");
        let (_, f) = enroll(&env, &srv, &auth, "E5");
        assert_ne!(aki(&f), aki(&c));
        assert_ne!(aki(&f), aki(&a));
        let e3 = d.join("export3");
        env.ok(&["export", "--out", e3.to_str().unwrap()]);
        let third = e3.join("cpo-sub-ca-2.pem");
        assert_eq!(aki(&f), ski(&third));
        let chain3 = bundle(&d.join("chain3.pem"), &[&third, &sub1]);
        fetch_crl(&srv, "/crl/cpo-sub-ca-2.g3.crl", d, "crl-3", &chain3);
        assert_eq!(ocsp_verified(&url, &third, &f, &root, &chain3), "good");
        assert_eq!(ocsp_verified(&url, &old_ca, &a2, &root, &old_chain), "good");
        assert_eq!(ocsp_verified(&url, &new_ca, &c, &root, &new_chain), "good");

        // Every step is audited and the chain is intact.
        let audit = env.ok(&["audit", "export", "--action", "ca.rollover"]);
        assert_eq!(audit.matches("\"ca.rollover\"").count(), 2, "{audit}");
        assert!(env.ok(&["audit", "verify"]).contains("audit log OK"));
        assert_eq!(env.listed("secc-leaf").len(), 5);

        // Clear refusals.
        let e = env.fails(&["ca", "rollover", "--ca", "no-such-ca"]);
        assert!(e.contains("no CA with id 'no-such-ca'"), "{e}");
        let r = reply(http().get(&srv.url("/crl/cpo-sub-ca-2.g9.crl")).call());
        assert_eq!(r.status, 404, "{}", r.text());
    }
}
