//! Two `serve` replicas on one PostgreSQL under concurrent enrollment and revocation, with one
//! replica killed (`kill -9`) and restarted several times mid-load. Clients send an
//! `Idempotency-Key` and retry what failed, as a client behind a load balancer would. Then:
//! every acknowledged certificate is in the store and the store holds nothing else, no serial
//! twice, a retry after a kill returned the first certificate, OCSP on both replicas agrees
//! with the store, and the audit chain verifies.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

/// A request that has not been answered yet, kept for its retry.
#[derive(Clone)]
struct Pending {
    key: String,
    csr: Arc<String>,
}

fn enroll(base: &str, auth: &str, p: &Pending) -> Result<Reply, String> {
    try_enroll_secc(base, auth, &p.csr, Some(&p.key))
}

#[test]
fn two_replicas_under_load_with_kill_9_keep_every_acknowledged_certificate() {
    if !backend_ready(Backend::Postgres) {
        return;
    }
    let env = Env::new(Backend::Postgres);
    env.init();
    let issuer = env.export().join("cpo-sub-ca-2.pem");
    let vars = [("PNC_LIMIT_ENROLL_PER_CLIENT", "off")];
    let mut a = env.serve_with_env(&vars);
    let b = env.serve_with_env(&vars);
    let client = env.client_add("cpo", "cpo", &["DE*ABC"]);
    let admin = b.bearer(&env.client_add("ops", "admin", &[]));
    // Tokens are signed by the key the replicas share: one from B works on A too.
    let auth = b.bearer(&client);
    let csrs: Vec<Arc<String>> = (0..4)
        .map(|i| {
            Arc::new(env.csr_b64(
                &format!("e{i}"),
                &format!("/C=DE/O=ABC/DC=CPO/CN=DE*ABC*E{i}"),
            ))
        })
        .collect();

    let urls = Arc::new(Mutex::new([a.url(""), b.url("")]));
    let acked: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
    let failed: Arc<Mutex<Vec<Pending>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (urls, acked, failed, stop) =
                (urls.clone(), acked.clone(), failed.clone(), stop.clone());
            let (auth, csr) = (auth.clone(), csrs[w].clone());
            std::thread::spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::SeqCst) && i < 400 {
                    let p = Pending {
                        key: format!("w{w}-{i}"),
                        csr: csr.clone(),
                    };
                    let base = urls.lock().unwrap()[(w + i) % 2].clone();
                    match enroll(&base, &auth, &p) {
                        Ok(r) if r.status == 200 => {
                            acked.lock().unwrap().insert(p.key.clone(), r.text());
                        }
                        // 503 (shutting down, store or token trouble) or a cut connection:
                        // not answered, so retried later with the same key.
                        Ok(r) if r.status == 503 => failed.lock().unwrap().push(p),
                        Ok(r) => panic!("unexpected {}: {}", r.status, r.text()),
                        Err(_) => {
                            failed.lock().unwrap().push(p);
                            std::thread::sleep(Duration::from_millis(50));
                        }
                    }
                    i += 1;
                }
            })
        })
        .collect();

    // Three rounds: let the load run, kill -9 replica A in the middle of it, restart it.
    for round in 0..3 {
        let before = acked.lock().unwrap().len();
        let t = Instant::now();
        while acked.lock().unwrap().len() < before + 40 && t.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(20));
        }
        a.child.kill().unwrap();
        a.child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(300));
        a = env.serve_with_env(&vars);
        urls.lock().unwrap()[0] = a.url("");
        eprintln!(
            "round {round}: {} acknowledged",
            acked.lock().unwrap().len()
        );
    }
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.join().expect("a worker saw an unexpected answer");
    }

    // Retry everything that was not answered, with its key: the first certificate if it was
    // committed before the kill, else a new one; never two.
    let retried = failed.lock().unwrap().clone();
    for p in &retried {
        let r = enroll(&b.url(""), &auth, p).expect("replica B answers");
        assert_eq!(r.status, 200, "retry of {}: {}", p.key, r.text());
        let mut acked = acked.lock().unwrap();
        if let Some(first) = acked.get(&p.key) {
            assert_eq!(first, &r.text(), "a retry of an acknowledged call differs");
        }
        acked.insert(p.key.clone(), r.text());
    }
    // And one retry of an acknowledged call, after the kills: its first certificate.
    let (k0, first) = acked
        .lock()
        .unwrap()
        .iter()
        .next()
        .map(|(k, v)| (k.clone(), v.clone()))
        .unwrap();
    let w: usize = k0[1..k0.find('-').unwrap()].parse().unwrap();
    let again = enroll(
        &a.url(""),
        &auth,
        &Pending {
            key: k0.clone(),
            csr: csrs[w].clone(),
        },
    )
    .unwrap();
    assert_eq!(
        again.text(),
        first,
        "retry after the kills returns the first certificate"
    );

    let acked = acked.lock().unwrap().clone();
    eprintln!(
        "{} acknowledged, {} retried after kills",
        acked.len(),
        retried.len()
    );
    let mut by_serial: BTreeMap<String, std::path::PathBuf> = BTreeMap::new();
    for (k, body) in &acked {
        let (serial, pem) = pkcs7_leaf(env.path(), k, body);
        assert!(
            by_serial.insert(serial, pem).is_none(),
            "two keys got one certificate"
        );
    }

    // Revoke every fifth, alternating replicas.
    let mut revoked = BTreeSet::new();
    for (n, serial) in by_serial.keys().enumerate().filter(|(n, _)| n % 5 == 0) {
        let srv = if n % 2 == 0 { &a } else { &b };
        let r = reply(
            http()
                .post(&srv.url(&format!(
                    "/api/v1/certificates/cpo-sub-ca-2/{serial}/revoke"
                )))
                .header("authorization", &admin)
                .header("content-type", "application/json")
                .send(br#"{"reason":"keyCompromise"}"#.as_slice()),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        revoked.insert(serial.clone());
    }

    // The store holds exactly the acknowledged certificates, each serial once.
    let listed: serde_json::Value = serde_json::from_str(&env.ok(&[
        "list",
        "--profile",
        "secc-leaf",
        "--limit",
        "5000",
        "--json",
    ]))
    .unwrap();
    let stored: Vec<String> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["serial_hex"].as_str().unwrap().to_string())
        .collect();
    let stored_set: BTreeSet<String> = stored.iter().cloned().collect();
    assert_eq!(stored.len(), stored_set.len(), "a serial twice");
    let acked_set: BTreeSet<String> = by_serial.keys().cloned().collect();
    assert_eq!(
        stored_set, acked_set,
        "stored and acknowledged certificates differ"
    );

    // OCSP on both replicas agrees with the store, for revoked and good ones.
    let sample: Vec<(&String, &std::path::PathBuf)> = by_serial
        .iter()
        .filter(|(s, _)| revoked.contains(*s))
        .take(6)
        .chain(
            by_serial
                .iter()
                .filter(|(s, _)| !revoked.contains(*s))
                .take(6),
        )
        .collect();
    for (serial, pem) in sample {
        let want = if revoked.contains(serial) {
            "revoked"
        } else {
            "good"
        };
        for srv in [&a, &b] {
            assert_eq!(ocsp_status(&srv.url(""), &issuer, pem), want, "{serial}");
        }
    }
    assert!(env.ok(&["audit", "verify"]).contains("audit log OK"));
}

/// Replicas started at the same moment on a new deployment create the access-token signing key
/// once between them: a token one of them grants is accepted by the other (as behind a load
/// balancer), both ways.
#[test]
fn replicas_started_at_once_accept_each_others_tokens() {
    if !backend_ready(Backend::Postgres) {
        return;
    }
    for round in 0..3 {
        let env = Env::new(Backend::Postgres);
        env.init();
        let client = env.client_add("cpo", "cpo", &["DE*ABC"]);
        let csr = env.csr_b64("e", "/C=DE/O=ABC/DC=CPO/CN=DE*ABC*E1");
        let servers: Vec<Server> = (0..3).map(|_| env.spawn_serve(&[])).collect();
        for s in &servers {
            s.wait_ready();
        }
        for from in &servers {
            let token = from.bearer(&client);
            for to in &servers {
                let r = to.enroll_secc(&token, &csr, None);
                assert_eq!(
                    r.status,
                    200,
                    "round {round}: a token of {} refused by {}: {}",
                    from.base,
                    to.base,
                    r.text()
                );
            }
        }
        let keys = env.ok(&["audit", "export", "--action", "api.signing_key.create"]);
        assert_eq!(
            keys.lines().count(),
            1,
            "round {round}: one signing key: {keys}"
        );
    }
}
