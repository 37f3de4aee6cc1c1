//! Sub-CA compromise response (`pnc-pki ca compromise`) while `serve` runs: the compromised key
//! stops at once (the store refuses what it signs), its certificate is revoked at its parent
//! (CRL and OCSP), everything it signed is revoked (OCSP), a replacement issues from then on
//! (`cacerts`, enrollment), an interrupted run is finished by running it again, a root is
//! refused. Checked with the openssl CLI. The MO case (contract data regenerated and accepted
//! by a test EV) is in tests/provisioning.rs.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::openssl_cli::{aki, bundle, ocsp_verified, ski, verify};
use common::*;
use serde_json::Value;

fn serial(pem: &Path) -> String {
    let (ok, out) = openssl(&["x509", "-in", pem.to_str().unwrap(), "-noout", "-serial"]);
    assert!(ok, "{out}");
    out.trim()
        .trim_start_matches("serial=")
        .to_ascii_lowercase()
}

/// Enroll an SECC leaf; the answer.
fn try_enroll(env: &Env, base: &str, auth: &str, name: &str) -> Reply {
    let csr = env.csr_b64(name, &format!("/C=DE/O=ABC/DC=CPO/CN=DE*ABC*{name}"));
    try_enroll_secc(base, auth, &csr, None).expect("an answer")
}

fn enroll(env: &Env, srv: &Server, auth: &str, name: &str) -> (String, PathBuf) {
    let r = try_enroll(env, &srv.url(""), auth, name);
    assert_eq!(r.status, 200, "{}", r.text());
    pkcs7_leaf(env.path(), name, &r.text())
}

/// `pnc-pki ca compromise … --json` with extra environment variables: (exit code, stdout,
/// stderr).
fn compromise(env: &Env, ca: &str, extra: &[&str], vars: &[(&str, &str)]) -> (i32, String, String) {
    let d = env.data_dir();
    let mut args = vec!["ca", "compromise", "--ca", ca, "--json", "--data-dir", &d];
    args.extend(extra);
    let out = env
        .command()
        .args(&args)
        .envs(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
        .output()
        .expect("run");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every certificate issued by `issuer` (`pnc-pki list --json`).
fn issued_by(env: &Env, issuer: &str) -> Vec<Value> {
    let out = env.ok(&["list", "--issuer", issuer, "--limit", "5000", "--json"]);
    serde_json::from_str::<Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// The audit log as parsed JSON lines.
fn audit(env: &Env, action: &str) -> Vec<Value> {
    env.ok(&["audit", "export", "--action", action])
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

/// GET `path` of `srv`'s CRL into `dir/name.pem`, checked by openssl against `ca_file`.
fn fetch_crl(srv: &Server, path: &str, dir: &Path, name: &str, ca_file: &Path) -> String {
    let r = reply(http().get(&srv.url(path)).call());
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    let der = dir.join(format!("{name}.der"));
    std::fs::write(&der, &r.body).unwrap();
    let (ok, out) = openssl(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        der.to_str().unwrap(),
        "-CAfile",
        ca_file.to_str().unwrap(),
        "-noout",
        "-text",
    ]);
    assert!(ok && out.contains("verify OK"), "{path}: {out}");
    out.to_ascii_lowercase().replace(':', "")
}

#[test]
fn cpo_sub_ca_compromise_while_serving() {
    let env = Env::new(Backend::Sqlite);
    env.init();
    let d = env.path();
    let srv = env.serve();
    let auth = srv.bearer(&env.client_add("cpo", "cpo", &["DE*ABC"]));
    let admin = srv.bearer(&env.client_add("adm", "admin", &[]));
    let e1 = env.export();
    let root = e1.join("v2g-root.pem");
    let sub1 = e1.join("cpo-sub-ca-1.pem");
    let old_ca = e1.join("cpo-sub-ca-2.pem");
    let old_chain = bundle(&d.join("old-chain.pem"), &[&old_ca, &sub1]);
    let parent_chain = bundle(&d.join("parent-chain.pem"), &[&sub1, &root]);

    let mut leaves = Vec::new();
    for i in 0..6 {
        leaves.push(enroll(&env, &srv, &auth, &format!("E{i}")));
    }
    let url = srv.url("");
    assert_eq!(
        ocsp_verified(&url, &sub1, &old_ca, &root, &parent_chain),
        "good"
    );

    // Enrollments keep coming while the command runs.
    let stop = Arc::new(AtomicBool::new(false));
    let during = {
        let stop = stop.clone();
        let base = url.clone();
        let auth = auth.clone();
        let env_dir = d.to_path_buf();
        std::thread::spawn(move || {
            let mut answers = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let name = format!("ED{i}");
                let csr = {
                    let key = env_dir.join(format!("{name}.key"));
                    let csr = env_dir.join(format!("{name}.csr"));
                    let (ok, out) = openssl(&[
                        "req",
                        "-new",
                        "-newkey",
                        "ec",
                        "-pkeyopt",
                        "ec_paramgen_curve:prime256v1",
                        "-nodes",
                        "-keyout",
                        key.to_str().unwrap(),
                        "-subj",
                        &format!("/C=DE/O=ABC/DC=CPO/CN=DE*ABC*{name}"),
                        "-outform",
                        "DER",
                        "-out",
                        csr.to_str().unwrap(),
                    ]);
                    assert!(ok, "{out}");
                    use base64::Engine;
                    base64::engine::general_purpose::STANDARD.encode(std::fs::read(&csr).unwrap())
                };
                let r = try_enroll_secc(&base, &auth, &csr, None).expect("an answer");
                answers.push((r.status, r.text()));
            }
            answers
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (code, out, err) = compromise(&env, "cpo-sub-ca-2", &["--batch-size", "3"], &[]);
    stop.store(true, Ordering::Relaxed);
    let answers = during.join().unwrap();
    assert_eq!(code, 0, "{err}\n{out}");
    let report: Value = serde_json::from_str(out.trim()).expect("--json report");
    eprintln!(
        "enrollments during the command: {} answered, {} refused (key stopped)",
        answers.iter().filter(|a| a.0 == 200).count(),
        answers.iter().filter(|a| a.0 == 503).count()
    );
    assert!(!answers.is_empty());
    // Enrollments during the command were answered, or refused while the key was stopped and
    // not yet replaced (503 issuer_key_stopped), never anything else.
    for (status, body) in &answers {
        assert!(
            *status == 200 || (*status == 503 && body.contains("issuer_key_stopped")),
            "{status}: {body}"
        );
    }

    // Nothing signed by the old key was recorded after the stop committed, and all of it is
    // revoked with cACompromise.
    let stop_seq = audit(&env, "ca.compromise.stop")[0]["seq"]
        .as_i64()
        .unwrap();
    let issued_after_stop: BTreeSet<String> = audit(&env, "certificate.issue")
        .into_iter()
        .filter(|e| e["seq"].as_i64().unwrap() > stop_seq)
        .map(|e| e["subject"].as_str().unwrap().to_string())
        .collect();
    let certs = issued_by(&env, "cpo-sub-ca-2");
    let old: Vec<&Value> = certs
        .iter()
        .filter(|c| c["issuer_generation"] == 1)
        .collect();
    assert!(
        old.len() >= 7,
        "6 leaves and the OCSP signer: {}",
        old.len()
    );
    for c in &old {
        let target = format!("cpo-sub-ca-2/{}", c["serial_hex"].as_str().unwrap());
        assert!(
            !issued_after_stop.contains(&target),
            "{target} recorded after the stop"
        );
        assert_eq!(c["status"], "revoked", "{c}");
        assert_eq!(c["revocation_reason"], "cACompromise", "{c}");
    }
    // The report's counts are the store's.
    assert_eq!(
        report["revoked"].as_i64().unwrap(),
        old.len() as i64,
        "{report}"
    );
    assert_eq!(report["contracts_regenerated"], 0, "{report}");
    assert_eq!(report["sub_cas_revoked"], 0, "{report}");
    let secc_old = old.iter().filter(|c| c["profile"] == "secc-leaf").count() as i64;
    assert_eq!(report["reenroll"].as_i64().unwrap(), secc_old, "{report}");
    assert_eq!(report["reenroll_by_tenant"]["DE*ABC"], secc_old, "{report}");
    let batches = audit(&env, "ca.compromise.revoke-batch");
    assert_eq!(
        batches.len() as i64,
        (old.len() as i64 + 2) / 3,
        "batches of 3"
    );
    let steps: Vec<&str> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        [
            "stop",
            "revoke-ca",
            "revoke-issued",
            "replace",
            "contracts",
            "reenroll"
        ]
    );

    // The parent's CRL lists the sub-CA, OCSP answers revoked for it and for its leaves.
    let crl = fetch_crl(
        &srv,
        "/crl/cpo-sub-ca-1.crl",
        d,
        "parent-crl",
        &parent_chain,
    );
    assert!(crl.contains(&serial(&old_ca)), "{crl}");
    assert!(crl.contains("key compromise"), "{crl}");
    assert_eq!(
        ocsp_verified(&url, &sub1, &old_ca, &root, &parent_chain),
        "revoked"
    );
    for (_, leaf) in [&leaves[0], &leaves[3], &leaves[5]] {
        assert_eq!(
            ocsp_verified(&url, &old_ca, leaf, &root, &old_chain),
            "revoked"
        );
    }
    // The stopped key's own CRL lists its leaves.
    let own = fetch_crl(&srv, "/crl/cpo-sub-ca-2.crl", d, "own-crl", &old_chain);
    for (s, _) in &leaves {
        assert!(own.contains(s.as_str()), "{s}: {own}");
    }

    // cacerts serves the replacement; new enrollments chain to the root through it.
    let r = reply(http().get(&srv.url("/cpo/cacerts/ISO15118-2")).call());
    assert_eq!(r.status, 200, "{}", r.text());
    let (_, cacerts) = pkcs7_leaf(d, "cacerts", &r.text());
    assert_ne!(
        ski(&cacerts),
        ski(&old_ca),
        "cacerts leads with the replacement"
    );
    let e2 = d.join("export2");
    env.ok(&["export", "--out", e2.to_str().unwrap()]);
    let new_ca = e2.join("cpo-sub-ca-2.pem");
    assert_eq!(ski(&cacerts), ski(&new_ca));
    let new_chain = bundle(&d.join("new-chain.pem"), &[&new_ca, &sub1]);
    let (_, fresh) = enroll(&env, &srv, &auth, "EN1");
    assert_eq!(aki(&fresh), ski(&new_ca));
    verify(&root, &new_chain, &fresh, None).unwrap();
    assert!(verify(&root, &old_chain, &fresh, None).is_err());
    assert_eq!(
        ocsp_verified(&url, &new_ca, &fresh, &root, &new_chain),
        "good"
    );
    assert_eq!(
        report["replaced"][0]["subject_key_identifier"]
            .as_str()
            .unwrap(),
        ski(&new_ca).replace(':', "").to_ascii_lowercase()
    );

    // The re-enrollment report, JSON and CSV, for admins and auditors.
    let get = |path: &str, accept: &str| {
        reply(
            http()
                .get(&srv.url(path))
                .header("authorization", &admin)
                .header("accept", accept)
                .call(),
        )
    };
    let r = get("/api/v1/cas/cpo-sub-ca-2/compromise", "application/json");
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["reenroll"].as_array().unwrap().len() as i64, secc_old);
    assert_eq!(v["compromises"][0]["generation"], 1);
    let csv = get("/api/v1/cas/cpo-sub-ca-2/compromise", "text/csv").text();
    assert_eq!(csv.lines().count() as i64, secc_old + 1, "{csv}");
    assert!(csv.contains(&leaves[2].0), "{csv}");
    assert_eq!(
        get("/api/v1/cas/cpo-sub-ca-2/compromise?format=csv", "*/*").text(),
        csv
    );
    let r = get("/api/v1/cas/cpo-sub-ca-2/compromise", "application/json");
    let cpo_view = reply(
        http()
            .get(&srv.url("/api/v1/cas/cpo-sub-ca-2/compromise"))
            .header("authorization", &auth)
            .call(),
    );
    assert_eq!(cpo_view.status, 403, "{}", cpo_view.text());
    assert_eq!(r.status, 200);

    // Audited, and the chain is intact. A second run changes nothing.
    assert_eq!(audit(&env, "ca.compromise.finished").len(), 1);
    assert!(env.ok(&["audit", "verify"]).contains("audit log OK"));
    let (code, _, err) = compromise(&env, "cpo-sub-ca-2", &[], &[]);
    assert_ne!(code, 0);
    assert!(err.contains("--again"), "{err}");

    // A root is refused, and nothing is stopped.
    let (code, _, err) = compromise(&env, "v2g-root", &[], &[]);
    assert_ne!(code, 0);
    assert!(err.contains("is a root"), "{err}");
    assert_eq!(audit(&env, "ca.compromise.stop").len(), 1);
    let (code, _, err) = compromise(&env, "no-such-ca", &[], &[]);
    assert_ne!(code, 0);
    assert!(err.contains("no CA with id 'no-such-ca'"), "{err}");
}

#[test]
fn an_interrupted_compromise_is_finished_by_running_it_again() {
    let env = Env::new(Backend::Sqlite);
    env.init();
    let d = env.path();
    let srv = env.serve();
    let auth = srv.bearer(&env.client_add("cpo", "cpo", &["DE*ABC"]));
    let e1 = env.export();
    let old_ca = e1.join("cpo-sub-ca-2.pem");
    let mut leaves = Vec::new();
    for i in 0..5 {
        leaves.push(enroll(&env, &srv, &auth, &format!("E{i}")));
    }

    // Killed right after the stop: the key is stopped on the running server at once.
    let (code, _, err) = compromise(
        &env,
        "cpo-sub-ca-2",
        &["--batch-size", "2"],
        &[("PNC_COMPROMISE_EXIT_AFTER", "stop")],
    );
    assert_eq!(code, 137, "{err}");
    let r = try_enroll(&env, &srv.url(""), &auth, "ES1");
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.text().contains("issuer_key_stopped"), "{}", r.text());
    assert!(
        issued_by(&env, "cpo-sub-ca-2")
            .iter()
            .all(|c| c["status"] == "valid"),
        "nothing revoked yet"
    );

    // Killed after the revocations: everything revoked, not yet replaced.
    let (code, _, err) = compromise(
        &env,
        "cpo-sub-ca-2",
        &["--batch-size", "2"],
        &[("PNC_COMPROMISE_EXIT_AFTER", "revoke-issued")],
    );
    assert_eq!(code, 137, "{err}");
    let certs = issued_by(&env, "cpo-sub-ca-2");
    assert!(certs.iter().all(|c| c["status"] == "revoked"), "{certs:?}");
    let r = try_enroll(&env, &srv.url(""), &auth, "ES2");
    assert_eq!(r.status, 503, "{}", r.text());

    // The rerun finishes: the same end state as one uninterrupted run.
    let (code, out, err) = compromise(&env, "cpo-sub-ca-2", &["--batch-size", "2"], &[]);
    assert_eq!(code, 0, "{err}");
    let report: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(report["resumed"], true, "{report}");
    assert_eq!(report["revoked_this_run"], 0, "{report}");
    let certs = issued_by(&env, "cpo-sub-ca-2");
    let old: Vec<&Value> = certs
        .iter()
        .filter(|c| c["issuer_generation"] == 1)
        .collect();
    assert_eq!(old.len(), 6, "5 leaves and the OCSP signer");
    assert!(old.iter().all(|c| c["revocation_reason"] == "cACompromise"));
    assert_eq!(report["revoked"], 6, "{report}");
    assert_eq!(report["reenroll"], 5, "{report}");
    assert_eq!(audit(&env, "ca.compromise.stop").len(), 1, "stopped once");
    assert_eq!(audit(&env, "ca.compromise.revoke-batch").len(), 3);
    assert_eq!(audit(&env, "ca.rollover").len(), 1, "replaced once");
    assert_eq!(audit(&env, "ca.compromise.finished").len(), 1);
    let (_, fresh) = enroll(&env, &srv, &auth, "EN1");
    assert_ne!(aki(&fresh), ski(&old_ca));
    assert_eq!(ocsp_status(&srv.url(""), &old_ca, &leaves[4].1), "revoked");
    assert!(env.ok(&["audit", "verify"]).contains("audit log OK"));
    let _ = d;
}

#[test]
fn cpo_sub_ca_compromise_with_two_replicas_on_postgres() {
    if !backend_ready(Backend::Postgres) {
        return;
    }
    let env = Env::new(Backend::Postgres);
    env.init();
    let d = env.path();
    let a = env.serve();
    let b = env.serve();
    let auth = a.bearer(&env.client_add("cpo", "cpo", &["DE*ABC"]));
    let e1 = env.export();
    let root = e1.join("v2g-root.pem");
    let sub1 = e1.join("cpo-sub-ca-1.pem");
    let old_ca = e1.join("cpo-sub-ca-2.pem");
    let old_chain = bundle(&d.join("old-chain.pem"), &[&old_ca, &sub1]);
    let parent_chain = bundle(&d.join("parent-chain.pem"), &[&sub1, &root]);
    let mut leaves = Vec::new();
    for i in 0..4 {
        leaves.push(enroll(&env, &a, &auth, &format!("E{i}")));
    }
    // Replica B has answered "good" for them (and cached it).
    for (_, leaf) in &leaves {
        assert_eq!(ocsp_status(&b.url(""), &old_ca, leaf), "good");
    }

    // Killed right after the stop: replica B, which has not reloaded its keys, refuses.
    let (code, _, err) = compromise(
        &env,
        "cpo-sub-ca-2",
        &[],
        &[("PNC_COMPROMISE_EXIT_AFTER", "stop")],
    );
    assert_eq!(code, 137, "{err}");
    let r = try_enroll(&env, &b.url(""), &auth, "ES1");
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.text().contains("issuer_key_stopped"), "{}", r.text());

    let (code, out, err) = compromise(&env, "cpo-sub-ca-2", &["--batch-size", "2"], &[]);
    assert_eq!(code, 0, "{err}");
    let report: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        report["revoked"], 5,
        "4 leaves and the OCSP signer: {report}"
    );
    assert_eq!(report["contracts_regenerated"], 0, "{report}");
    let old: Vec<Value> = issued_by(&env, "cpo-sub-ca-2")
        .into_iter()
        .filter(|c| c["issuer_generation"] == 1)
        .collect();
    assert_eq!(old.len(), 5);
    assert!(old.iter().all(|c| c["revocation_reason"] == "cACompromise"));

    // On both replicas as soon as the command returned: revoked.
    for srv in [&a, &b] {
        let url = srv.url("");
        assert_eq!(
            ocsp_verified(&url, &sub1, &old_ca, &root, &parent_chain),
            "revoked"
        );
        for (_, leaf) in &leaves {
            assert_eq!(
                ocsp_verified(&url, &old_ca, leaf, &root, &old_chain),
                "revoked"
            );
        }
        let crl = fetch_crl(srv, "/crl/cpo-sub-ca-1.crl", d, "parent-crl", &parent_chain);
        assert!(crl.contains(&serial(&old_ca)), "{crl}");
    }
    // Both issue under the replacement.
    let e2 = d.join("export2");
    env.ok(&["export", "--out", e2.to_str().unwrap()]);
    let new_ca = e2.join("cpo-sub-ca-2.pem");
    let new_chain = bundle(&d.join("new-chain.pem"), &[&new_ca, &sub1]);
    for (i, srv) in [&a, &b].into_iter().enumerate() {
        let r = reply(http().get(&srv.url("/cpo/cacerts/ISO15118-2")).call());
        let (_, cacerts) = pkcs7_leaf(d, &format!("cacerts{i}"), &r.text());
        assert_eq!(ski(&cacerts), ski(&new_ca));
        let (_, fresh) = enroll(&env, srv, &auth, &format!("EN{i}"));
        assert_eq!(aki(&fresh), ski(&new_ca));
        verify(&root, &new_chain, &fresh, None).unwrap();
    }
    assert!(env.ok(&["audit", "verify"]).contains("audit log OK"));
}
