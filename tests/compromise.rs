//! Sub-CA compromise response (`pnc-pki ca compromise`) while `serve` runs: the compromised key
//! stops at once (the store refuses what it signs), its certificate is revoked at its parent
//! (CRL and OCSP), everything it signed is revoked (OCSP), a replacement issues from then on
//! (`cacerts`, enrollment), an interrupted run is finished by running it again, a root is
//! refused; the CAs below the compromised one are stopped, revoked and replaced top-down; a CA
//! signed by an issuer we do not hold is answered with what to send that issuer and a CSR for
//! its new key, and finished once its certificate is imported. Checked with the openssl CLI.
//! The MO case (contract data regenerated and accepted by a test EV) is in
//! tests/provisioning.rs.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use common::openssl_cli::{aki, bundle, fetch_crl, ocsp_verified, ski, verify};
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

/// Run `f` while another thread enrolls SECC leaves at `base`, one after the other, from before
/// it starts until it returns: what `f` returned and every enrollment's (status, body).
fn while_enrolling<R>(
    env: &Env,
    base: &str,
    auth: &str,
    f: impl FnOnce() -> R,
) -> (R, Vec<(u16, String)>) {
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let during = s.spawn(|| {
            let mut answers = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let r = try_enroll(env, base, auth, &format!("ED{i}"));
                answers.push((r.status, r.text()));
            }
            answers
        });
        std::thread::sleep(std::time::Duration::from_millis(300));
        let out = f();
        stop.store(true, Ordering::Relaxed);
        let answers = during.join().unwrap();
        eprintln!(
            "enrollments during the command: {} answered, {} refused (key stopped)",
            answers.iter().filter(|a| a.0 == 200).count(),
            answers.iter().filter(|a| a.0 == 503).count()
        );
        assert!(!answers.is_empty());
        // Answered, or refused while the key was stopped and not yet replaced (503
        // issuer_key_stopped), never anything else.
        for (status, body) in &answers {
            assert!(
                *status == 200 || (*status == 503 && body.contains("issuer_key_stopped")),
                "{status}: {body}"
            );
        }
        (out, answers)
    })
}

/// The audit entry of the (only) compromise stop.
fn stop_entry(env: &Env) -> Value {
    let mut stops = audit(env, "ca.compromise.stop");
    assert_eq!(stops.len(), 1, "stopped once: {stops:?}");
    stops.remove(0)
}

/// The certificates key generation 1 of `issuer` signed (not `own`, the serial of a CA
/// certificate recorded under the CA itself), from the store: none recorded after the stop
/// (`stop`, its audit entry: by audit order and by issuance time), all revoked with
/// cACompromise.
fn stopped_key_certs(env: &Env, stop: &Value, issuer: &str, own: Option<&str>) -> Vec<Value> {
    let stop_seq = stop["seq"].as_i64().unwrap();
    let stop_at = time::OffsetDateTime::parse(
        stop["at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap()
    .unix_timestamp();
    let issued_after_stop: BTreeSet<String> = audit(env, "certificate.issue")
        .into_iter()
        .filter(|e| e["seq"].as_i64().unwrap() > stop_seq)
        .map(|e| e["subject"].as_str().unwrap().to_string())
        .collect();
    let old: Vec<Value> = issued_by(env, issuer)
        .into_iter()
        .filter(|c| c["issuer_generation"] == 1 && c["serial_hex"].as_str() != own)
        .collect();
    for c in &old {
        let target = format!("{issuer}/{}", c["serial_hex"].as_str().unwrap());
        assert!(
            !issued_after_stop.contains(&target),
            "{target} recorded after the stop"
        );
        assert!(
            c["created_at"].as_i64().unwrap() <= stop_at,
            "{target} recorded after the stop: {c}"
        );
        assert_eq!(c["status"], "revoked", "{c}");
        assert_eq!(c["revocation_reason"], "cACompromise", "{c}");
    }
    old
}

/// Whether key generation 2 of `ca` (its replacement) has a valid delegated OCSP signer, as
/// the stopped generation 1 had.
fn replacement_has_ocsp_signer(env: &Env, ca: &str) -> bool {
    issued_by(env, ca).iter().any(|c| {
        c["profile"] == "ocsp-signer" && c["issuer_generation"] == 2 && c["status"] == "valid"
    })
}

/// The base64 bodies of the certificates in a PEM file (one line each), in order.
fn pem_bodies(pem: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(pem).unwrap();
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    for l in text.lines().map(str::trim) {
        if l.starts_with("-----BEGIN") {
            cur = Some(String::new());
        } else if l.starts_with("-----END") {
            out.extend(cur.take());
        } else if let Some(c) = cur.as_mut() {
            c.push_str(l);
        }
    }
    out
}

/// The public key of a certificate or (`req`) a CSR, PEM, as openssl prints it.
fn pubkey(kind: &str, pem: &Path) -> String {
    let (ok, out) = openssl(&[kind, "-in", pem.to_str().unwrap(), "-noout", "-pubkey"]);
    assert!(ok, "{out}");
    out
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
    let ((code, out, err), _) = while_enrolling(&env, &url, &auth, || {
        compromise(&env, "cpo-sub-ca-2", &["--batch-size", "3"], &[])
    });
    assert_eq!(code, 0, "{err}\n{out}");
    let report: Value = serde_json::from_str(out.trim()).expect("--json report");

    // Nothing signed by the old key was recorded after the stop committed, and all of it is
    // revoked with cACompromise.
    let old = stopped_key_certs(&env, &stop_entry(&env), "cpo-sub-ca-2", None);
    assert!(
        old.len() >= 7,
        "6 leaves and the OCSP signer: {}",
        old.len()
    );
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

/// `cpo-sub-ca-1` is compromised while `serve` runs and enrollments keep coming: the key of
/// `cpo-sub-ca-2` below it (which issues the SECC leaves) is stopped, revoked and replaced with
/// it, top-down.
fn compromise_with_a_sub_ca_below(backend: Backend) {
    let env = Env::new(backend);
    env.init();
    let d = env.path();
    let srv = env.serve();
    let url = srv.url("");
    let auth = srv.bearer(&env.client_add("cpo", "cpo", &["DE*ABC"]));
    let e1 = env.export();
    let root = e1.join("v2g-root.pem");
    let sub1 = e1.join("cpo-sub-ca-1.pem");
    let sub2 = e1.join("cpo-sub-ca-2.pem");
    // The hierarchy `init` made: v2g-root → cpo-sub-ca-1 → cpo-sub-ca-2.
    assert_eq!(aki(&sub1), ski(&root));
    assert_eq!(aki(&sub2), ski(&sub1));
    let sub1_chain = bundle(&d.join("sub1-chain.pem"), &[&sub1, &root]);
    let old_chain = bundle(&d.join("old-chain.pem"), &[&sub2, &sub1]);
    let leaves: Vec<(String, PathBuf)> = (0..4)
        .map(|i| enroll(&env, &srv, &auth, &format!("E{i}")))
        .collect();
    assert_eq!(ocsp_verified(&url, &root, &sub1, &root, &root), "good");
    assert_eq!(
        ocsp_verified(&url, &sub1, &sub2, &root, &sub1_chain),
        "good"
    );

    let ((code, out, err), _) = while_enrolling(&env, &url, &auth, || {
        compromise(&env, "cpo-sub-ca-1", &["--batch-size", "2"], &[])
    });
    assert_eq!(code, 0, "{err}\n{out}");
    let report: Value = serde_json::from_str(out.trim()).expect("--json report");

    // Both keys stopped in one step: nothing recorded under either after it, everything either
    // signed revoked with cACompromise.
    let stop = stop_entry(&env);
    assert_eq!(
        stop["details"]["stopped"],
        serde_json::json!([
            {"ca": "cpo-sub-ca-1", "generation": 1},
            {"ca": "cpo-sub-ca-2", "generation": 1},
        ]),
        "{stop}"
    );
    let under1 = stopped_key_certs(&env, &stop, "cpo-sub-ca-1", None);
    let under2 = stopped_key_certs(&env, &stop, "cpo-sub-ca-2", None);
    let profiles: BTreeSet<&str> = under1
        .iter()
        .map(|c| c["profile"].as_str().unwrap())
        .collect();
    assert_eq!(
        profiles,
        BTreeSet::from(["cpo-sub-ca-2", "ocsp-signer"]),
        "sub-CA 2's certificate and sub-CA 1's OCSP signer: {under1:?}"
    );
    assert!(under1.iter().any(|c| c["serial_hex"] == serial(&sub2)));
    assert!(
        under2.len() >= 5,
        "4 leaves and the OCSP signer: {under2:?}"
    );
    for (s, _) in &leaves {
        assert!(under2.iter().any(|c| c["serial_hex"] == s.as_str()), "{s}");
    }
    // The report's counts are the store's.
    assert_eq!(report["sub_cas_revoked"], 1, "{report}");
    assert_eq!(
        report["revoked"].as_i64().unwrap(),
        (under1.len() + under2.len() - 1) as i64,
        "every end-entity certificate under either key: {report}"
    );
    let secc = under2
        .iter()
        .filter(|c| c["profile"] == "secc-leaf")
        .count() as i64;
    assert_eq!(report["reenroll"].as_i64().unwrap(), secc, "{report}");
    assert_eq!(report["parent"], "v2g-root", "{report}");
    assert_eq!(report["finished"], true, "{report}");
    assert!(report["external"].is_null(), "{report}");

    // Sub-CA 1 is revoked at the root (CRL and OCSP), Key Compromise.
    let crl = fetch_crl(&srv, "/crl/v2g-root.crl", d, "root-crl", &root);
    assert!(crl.contains(&serial(&sub1)), "{crl}");
    assert!(crl.contains("key compromise"), "{crl}");
    assert_eq!(ocsp_verified(&url, &root, &sub1, &root, &root), "revoked");
    // Sub-CA 2's old certificate on sub-CA 1's old CRL (signed by its stopped key) and OCSP,
    // CA Compromise.
    let crl = fetch_crl(&srv, "/crl/cpo-sub-ca-1.crl", d, "sub1-crl", &sub1_chain);
    assert!(crl.contains(&serial(&sub2)), "{crl}");
    assert!(
        crl.contains("ca compromise") && !crl.contains("key compromise"),
        "{crl}"
    );
    assert_eq!(
        ocsp_verified(&url, &sub1, &sub2, &root, &sub1_chain),
        "revoked"
    );
    // Sub-CA 2's leaves: OCSP and its old CRL.
    for (_, leaf) in &leaves {
        assert_eq!(
            ocsp_verified(&url, &sub2, leaf, &root, &old_chain),
            "revoked"
        );
    }
    let crl = fetch_crl(&srv, "/crl/cpo-sub-ca-2.crl", d, "sub2-crl", &old_chain);
    for (s, _) in &leaves {
        assert!(crl.contains(s.as_str()), "{s}: {crl}");
    }

    // Both replaced, top-down: the new sub-CA 2 is signed by the new sub-CA 1.
    let e2 = d.join("export2");
    env.ok(&["export", "--out", e2.to_str().unwrap()]);
    let new1 = e2.join("cpo-sub-ca-1.pem");
    let new2 = e2.join("cpo-sub-ca-2.pem");
    assert_ne!(ski(&new1), ski(&sub1));
    assert_ne!(ski(&new2), ski(&sub2));
    assert_eq!(aki(&new1), ski(&root));
    assert_eq!(aki(&new2), ski(&new1));
    let hex_ski = |p: &Path| ski(p).replace(':', "").to_ascii_lowercase();
    let replaced = report["replaced"].as_array().unwrap();
    assert_eq!(replaced.len(), 2, "{report}");
    for (r, (ca, new)) in replaced
        .iter()
        .zip([("cpo-sub-ca-1", &new1), ("cpo-sub-ca-2", &new2)])
    {
        assert_eq!(r["ca"], ca, "{report}");
        assert_eq!(r["generation"], 2, "{report}");
        assert_eq!(r["subject_key_identifier"], hex_ski(new), "{report}");
    }
    // A new SECC enrollment chains to the V2G root through both replacements.
    let new_chain = bundle(&d.join("new-chain.pem"), &[&new2, &new1]);
    let (_, fresh) = enroll(&env, &srv, &auth, "EN1");
    assert_eq!(aki(&fresh), ski(&new2));
    verify(&root, &new_chain, &fresh, None).unwrap();
    assert!(verify(&root, &old_chain, &fresh, None).is_err());
    assert_eq!(
        ocsp_verified(&url, &new2, &fresh, &root, &new_chain),
        "good"
    );
    let new1_chain = bundle(&d.join("new1-chain.pem"), &[&new1, &root]);
    assert_eq!(
        ocsp_verified(&url, &new1, &new2, &root, &new1_chain),
        "good"
    );
    assert_eq!(ocsp_verified(&url, &root, &new1, &root, &root), "good");
    for ca in ["cpo-sub-ca-1", "cpo-sub-ca-2"] {
        assert!(replacement_has_ocsp_signer(&env, ca), "{ca}");
    }
    // cacerts serves the new pair, not the old one.
    let r = reply(http().get(&srv.url("/cpo/cacerts/ISO15118-2")).call());
    assert_eq!(r.status, 200, "{}", r.text());
    let (_, cacerts) = pkcs7_leaf(d, "cacerts", &r.text());
    let served = pem_bodies(&cacerts);
    assert_eq!(served[0], pem_bodies(&new2)[0], "sub-CA 2 first");
    assert_eq!(served[1], pem_bodies(&new1)[0], "then sub-CA 1");
    for old in [&sub1, &sub2] {
        assert!(!served.contains(&pem_bodies(old)[0]), "{}", old.display());
    }

    assert_eq!(audit(&env, "ca.compromise.finished").len(), 1);
    assert!(env.ok(&["audit", "verify"]).contains("audit log OK"));
}

#[test]
fn compromise_with_a_sub_ca_below_on_sqlite() {
    compromise_with_a_sub_ca_below(Backend::Sqlite);
}

#[test]
fn compromise_with_a_sub_ca_below_on_postgres() {
    if backend_ready(Backend::Postgres) {
        compromise_with_a_sub_ca_below(Backend::Postgres);
    }
}

/// `cpo-sub-ca-1` is signed by an offline root we do not hold (as in tests/ca_external.rs),
/// `cpo-sub-ca-2` below it issues SECC leaves; `cpo-sub-ca-1` is compromised. The report says
/// what to send the root's owner (certificate, serial, reason) and carries the CSR of the new
/// key made in the token; everything under both keys is revoked; nothing issues until the
/// root's owner signed the new key and its certificate is imported; running the command again
/// then replaces sub-CA 2 under it and finishes the response.
fn compromise_of_an_externally_signed_sub_ca(backend: Backend) {
    let env = Env::new(backend);
    let d = env.path();
    let p = |n: &str| d.join(n);
    let ps = |n: &str| d.join(n).display().to_string();
    std::fs::write(p("empty.toml"), "ocsp_signers = false\n").unwrap();
    env.ok(&[
        "init",
        "--config",
        &ps("empty.toml"),
        "--database-url",
        &env.db_url,
        "--public-url",
        &env.public_url,
    ]);
    let offline = TestCa::new(d, "offline-v2g-root");
    let root = offline.cert.clone();
    env.ok(&[
        "csr",
        "--id",
        "cpo-sub-ca-1",
        "--profile",
        "cpo-sub-ca-1",
        "--subject",
        "C=DE, O=Example CPO, CN=Example CPO Sub1",
        "--out",
        &ps("sub1.csr"),
    ]);
    let ext = "basicConstraints=critical,CA:TRUE,pathlen:1\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n";
    let sub1 = p("sub1.pem");
    offline.sign_csr(&p("sub1.csr"), ext, &sub1);
    env.ok(&[
        "import-ca",
        "--id",
        "cpo-sub-ca-1",
        "--profile",
        "cpo-sub-ca-1",
        "--cert",
        &ps("sub1.pem"),
        "--issuer-chain",
        root.to_str().unwrap(),
    ]);
    std::fs::write(
        p("more.toml"),
        "ocsp_signers = true\n[[ca]]\nid = \"cpo-sub-ca-2\"\nprofile = \"cpo-sub-ca-2\"\nsubject = \"C=DE, O=Example CPO, CN=Example CPO Sub2\"\nparent = \"cpo-sub-ca-1\"\n",
    )
    .unwrap();
    env.ok(&["init", "--config", &ps("more.toml")]);
    let sub2 = env.export().join("cpo-sub-ca-2.pem");
    let sub1_chain = bundle(&p("sub1-chain.pem"), &[&sub1, &root]);
    let old_chain = bundle(&p("old-chain.pem"), &[&sub2, &sub1]);

    let srv = env.serve();
    let url = srv.url("");
    let auth = srv.bearer(&env.client_add("cpo", "cpo", &["DE*ABC"]));
    let leaves: Vec<(String, PathBuf)> = (0..3)
        .map(|i| enroll(&env, &srv, &auth, &format!("E{i}")))
        .collect();
    for (_, leaf) in &leaves {
        verify(&root, &old_chain, leaf, None).unwrap();
        assert_eq!(ocsp_verified(&url, &sub2, leaf, &root, &old_chain), "good");
    }

    let (code, out, err) = compromise(&env, "cpo-sub-ca-1", &[], &[]);
    assert_eq!(code, 0, "{err}\n{out}");
    let report: Value = serde_json::from_str(out.trim()).expect("--json report");
    // What to send the external issuer: the certificate, its serial, the reason.
    let ext_req = &report["external"];
    assert_eq!(ext_req["serial_hex"], serial(&sub1), "{report}");
    assert_eq!(ext_req["reason"], "keyCompromise", "{report}");
    assert!(
        ext_req["issuer"]
            .as_str()
            .unwrap()
            .contains("offline-v2g-root"),
        "{report}"
    );
    std::fs::write(p("asked.pem"), ext_req["certificate_pem"].as_str().unwrap()).unwrap();
    assert_eq!(pem_bodies(&p("asked.pem")), pem_bodies(&sub1));
    assert!(report["parent"].is_null(), "{report}");
    // Its replacement waits for the issuer's signature of a new key, made in the token; the
    // CA below waits for that key. Not finished.
    assert_eq!(report["finished"], false, "{report}");
    let replaced = report["replaced"].as_array().unwrap();
    assert_eq!(replaced.len(), 2, "{report}");
    assert_eq!(replaced[0]["ca"], "cpo-sub-ca-1", "{report}");
    assert!(replaced[0]["generation"].is_null(), "{report}");
    let pending = replaced[0]["pending"].as_str().unwrap();
    assert!(
        pending.contains("pnc-pki ca rollover --ca cpo-sub-ca-1 --cert FILE")
            && pending.contains("pnc-pki ca compromise --ca cpo-sub-ca-1"),
        "{pending}"
    );
    assert_eq!(replaced[1]["ca"], "cpo-sub-ca-2", "{report}");
    assert!(replaced[1]["generation"].is_null(), "{report}");
    assert!(
        replaced[1]["pending"]
            .as_str()
            .unwrap()
            .contains("'cpo-sub-ca-1'"),
        "{report}"
    );
    let new_csr = p("new1.csr");
    std::fs::write(&new_csr, replaced[0]["csr_pem"].as_str().unwrap()).unwrap();
    let (ok, t) = openssl(&[
        "req",
        "-in",
        new_csr.to_str().unwrap(),
        "-verify",
        "-noout",
        "-subject",
    ]);
    assert!(ok && t.contains("Example CPO Sub1"), "{t}");
    assert_ne!(pubkey("req", &new_csr), pubkey("x509", &sub1), "a new key");
    // The text report says so too.
    let text = env.ok(&["ca", "compromise", "--ca", "cpo-sub-ca-1"]);
    assert!(
        text.contains("NOT FINISHED") && text.contains("BEGIN CERTIFICATE REQUEST"),
        "{text}"
    );

    // Everything both keys signed is revoked, nothing recorded after the stop; the CA's own
    // certificate (recorded under itself) is not ours to revoke: its issuer does.
    let stop = stop_entry(&env);
    let own = serial(&sub1);
    let under1 = stopped_key_certs(&env, &stop, "cpo-sub-ca-1", Some(&own));
    let under2 = stopped_key_certs(&env, &stop, "cpo-sub-ca-2", None);
    assert_eq!(under1.len(), 2, "sub-CA 2 and the OCSP signer: {under1:?}");
    assert_eq!(under2.len(), 4, "3 leaves and the OCSP signer: {under2:?}");
    let own_row: Vec<Value> = issued_by(&env, "cpo-sub-ca-1")
        .into_iter()
        .filter(|c| c["serial_hex"] == own.as_str())
        .collect();
    assert_eq!(own_row.len(), 1);
    assert_eq!(own_row[0]["status"], "valid", "{own_row:?}");
    assert_eq!(report["revoked"], 5, "{report}");
    assert_eq!(report["sub_cas_revoked"], 1, "{report}");
    for (_, leaf) in &leaves {
        assert_eq!(
            ocsp_verified(&url, &sub2, leaf, &root, &old_chain),
            "revoked"
        );
    }
    assert_eq!(
        ocsp_verified(&url, &sub1, &sub2, &root, &sub1_chain),
        "revoked"
    );
    let crl = fetch_crl(&srv, "/crl/cpo-sub-ca-1.crl", d, "sub1-crl", &sub1_chain);
    assert!(crl.contains(&serial(&sub2)), "{crl}");
    assert!(!crl.contains(&own), "{crl}");

    // Nothing issues until the replacement is in place.
    let r = try_enroll(&env, &url, &auth, "ES1");
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.text().contains("issuer_key_stopped"), "{}", r.text());

    // The CSR can be written again (the same key), and running the command again before the
    // import changes nothing.
    let again = p("again.csr");
    env.ok(&[
        "ca",
        "rollover",
        "--ca",
        "cpo-sub-ca-1",
        "--csr-out",
        again.to_str().unwrap(),
    ]);
    assert_eq!(pubkey("req", &again), pubkey("req", &new_csr));
    let (code, out, err) = compromise(&env, "cpo-sub-ca-1", &[], &[]);
    assert_eq!(code, 0, "{err}\n{out}");
    let rerun: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(rerun["resumed"], true, "{rerun}");
    assert_eq!(rerun["finished"], false, "{rerun}");
    assert_eq!(rerun["revoked_this_run"], 0, "{rerun}");
    std::fs::write(
        p("rerun.csr"),
        rerun["replaced"][0]["csr_pem"].as_str().unwrap(),
    )
    .unwrap();
    assert_eq!(pubkey("req", &p("rerun.csr")), pubkey("req", &new_csr));
    assert!(audit(&env, "ca.compromise.finished").is_empty());

    // The root's owner signs the new key; its import, then the command once more, finish it:
    // sub-CA 2 gets a new key under the new sub-CA 1.
    let new1 = p("new1.pem");
    offline.sign_csr(&new_csr, ext, &new1);
    env.ok(&[
        "ca",
        "rollover",
        "--ca",
        "cpo-sub-ca-1",
        "--cert",
        new1.to_str().unwrap(),
    ]);
    let (code, out, err) = compromise(&env, "cpo-sub-ca-1", &[], &[]);
    assert_eq!(code, 0, "{err}\n{out}");
    let last: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(last["finished"], true, "{last}");
    assert_eq!(last["revoked"], 5, "{last}");
    assert_eq!(last["replaced"][0]["generation"], 2, "{last}");
    assert_eq!(last["replaced"][1]["generation"], 2, "{last}");
    let e2 = d.join("export2");
    env.ok(&["export", "--out", e2.to_str().unwrap()]);
    assert_eq!(pem_bodies(&e2.join("cpo-sub-ca-1.pem")), pem_bodies(&new1));
    let new2 = e2.join("cpo-sub-ca-2.pem");
    assert_ne!(ski(&new2), ski(&sub2));
    assert_eq!(aki(&new2), ski(&new1));
    let new_chain = bundle(&p("new-chain.pem"), &[&new2, &new1]);
    let (_, fresh) = enroll(&env, &srv, &auth, "EN1");
    assert_eq!(aki(&fresh), ski(&new2));
    verify(&root, &new_chain, &fresh, None).unwrap();
    assert_eq!(
        ocsp_verified(&url, &new2, &fresh, &root, &new_chain),
        "good"
    );
    let new1_chain = bundle(&p("new1-chain.pem"), &[&new1, &root]);
    assert_eq!(
        ocsp_verified(&url, &new1, &new2, &root, &new1_chain),
        "good"
    );
    // The imported replacement got a delegated OCSP signer too (the import saw only the
    // stopped key's, revoked).
    for ca in ["cpo-sub-ca-1", "cpo-sub-ca-2"] {
        assert!(replacement_has_ocsp_signer(&env, ca), "{ca}");
    }
    assert_eq!(audit(&env, "ca.compromise.finished").len(), 1);
    assert!(env.ok(&["audit", "verify"]).contains("audit log OK"));
    let (code, _, err) = compromise(&env, "cpo-sub-ca-1", &[], &[]);
    assert_ne!(code, 0);
    assert!(err.contains("--again"), "{err}");
}

#[test]
fn compromise_of_an_externally_signed_sub_ca_on_sqlite() {
    compromise_of_an_externally_signed_sub_ca(Backend::Sqlite);
}

#[test]
fn compromise_of_an_externally_signed_sub_ca_on_postgres() {
    if backend_ready(Backend::Postgres) {
        compromise_of_an_externally_signed_sub_ca(Backend::Postgres);
    }
}
