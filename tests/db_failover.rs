//! A PostgreSQL failover with no operator and no proxy, on throwaway clusters of the test's own
//! (a primary with a synchronous standby made by `pg_basebackup -R`, free loopback ports,
//! dropped at the end even when the test fails): the replicas are given the libpq host list
//! `postgres://postgres@P1,P2/postgres?target_session_attrs=read-write`, the primary's
//! postmaster is killed (`kill -9`) and the standby promoted, as an HA manager would.
//!
//! - Under keyed enrollment load on two `serve` replicas: every acknowledged certificate is on
//!   the new primary and it holds nothing else, no serial twice, both replicas serve again
//!   within 5 s of the promotion without a restart, every 503 carries `Retry-After`, readiness
//!   is red for the store only, and `audit verify` passes through the same URL afterwards. A
//!   URL whose only host is a standby is refused with a clear error.
//! - A commit in doubt (the primary killed while the commit waits for the standby's
//!   acknowledgement) is answered `503 outcome_unknown` with `Retry-After`, not as a failure,
//!   while no primary can be asked, and the retry with the same Idempotency-Key gets the
//!   certificate that committed; when the standby is promoted while the writer is still
//!   checking, the first call itself gets that certificate.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::pg::{Cluster, pg_bin};
use common::*;

/// A primary whose commits wait for a synchronous standby (`commit`: when the standby has
/// flushed, `on`, or applied, `remote_apply`), and that standby.
fn pair(bin: std::path::PathBuf, commit: &str) -> (Cluster, Cluster) {
    let sync = format!("synchronous_commit={commit}");
    let primary = Cluster::new_with(bin, &["synchronous_standby_names='*'", &sync]);
    let standby = Cluster::standby_of(&primary, &[]);
    primary.wait_for("SELECT sync_state FROM pg_stat_replication", "sync");
    (primary, standby)
}

/// An `Env` on the host list of `hosts` (in order).
fn env_on(hosts: &[&Cluster]) -> Env {
    let mut env = Env::new(Backend::Sqlite);
    let list: Vec<String> = hosts.iter().map(|c| c.host()).collect();
    env.db_url = format!(
        "postgres://postgres@{}/postgres?target_session_attrs=read-write",
        list.join(",")
    );
    env.init();
    env
}

/// Wait until `srv`'s readiness is red, and return its body.
fn wait_not_ready(srv: &Server) -> Reply {
    let t = Instant::now();
    loop {
        let r = reply(http().get(&srv.url("/health/ready")).call());
        if r.status == 503 {
            return r;
        }
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "readiness stayed green"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn failover_to_a_promoted_standby_under_keyed_load() {
    let Some(bin) = pg_bin() else {
        return;
    };
    let (primary, standby) = pair(bin, "on");
    let env = env_on(&[&primary, &standby]);

    // A URL whose only host is a standby: refused with the reason, not a failed CREATE TABLE.
    let out = env
        .command()
        .env(
            "PNC_DATABASE_URL",
            format!("postgres://postgres@{}/postgres", standby.host()),
        )
        .env("PNC_DB_ACQUIRE_TIMEOUT", "1s")
        .args(["audit", "verify", "--data-dir", &env.data_dir()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a standby-only URL was accepted");
    assert!(
        err.contains("standby") && err.contains(&standby.host()),
        "unclear refusal: {err}"
    );

    let issuer = env.export().join("cpo-sub-ca-2.pem");
    let vars = [("PNC_LIMIT_ENROLL_PER_CLIENT", "off")];
    let a = env.serve_with_env(&vars);
    let b = env.serve_with_env(&vars);
    let auth = b.bearer(&env.client_add("cpo", "cpo", &["DE*ABC"]));
    let csrs: Vec<Arc<String>> = (0..4)
        .map(|i| {
            Arc::new(env.csr_b64(
                &format!("e{i}"),
                &format!("/C=DE/O=ABC/DC=CPO/CN=DE*ABC*E{i}"),
            ))
        })
        .collect();

    let urls = [a.url(""), b.url("")];
    // key -> (CSR index, answer)
    let acked: Arc<Mutex<BTreeMap<String, (usize, String)>>> = Arc::default();
    let failed: Arc<Mutex<Vec<(String, usize)>>> = Arc::default();
    let no_retry_after: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (acked, failed, nra, stop) = (
                acked.clone(),
                failed.clone(),
                no_retry_after.clone(),
                stop.clone(),
            );
            let (auth, csr, urls) = (auth.clone(), csrs[w].clone(), urls.clone());
            std::thread::spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::SeqCst) {
                    let key = format!("w{w}-{i}");
                    match try_enroll_secc(&urls[(w + i) % 2], &auth, &csr, Some(&key)) {
                        Ok(r) if r.status == 200 => {
                            acked.lock().unwrap().insert(key, (w, r.text()));
                        }
                        Ok(r) if r.status == 503 => {
                            if r.retry_after.is_none() {
                                nra.lock().unwrap().push(r.text());
                            }
                            failed.lock().unwrap().push((key, w));
                            std::thread::sleep(Duration::from_millis(50));
                        }
                        Ok(r) => panic!("unexpected {}: {}", r.status, r.text()),
                        Err(_) => {
                            failed.lock().unwrap().push((key, w));
                            std::thread::sleep(Duration::from_millis(50));
                        }
                    }
                    i += 1;
                }
            })
        })
        .collect();
    let acked_now = || acked.lock().unwrap().len();
    let t = Instant::now();
    while acked_now() < 60 {
        assert!(t.elapsed() < Duration::from_secs(60), "no load");
        std::thread::sleep(Duration::from_millis(20));
    }

    // The primary dies; the HA manager notices (readiness meanwhile) and promotes the standby.
    primary.kill_postmaster();
    let killed = Instant::now();
    for srv in [&a, &b] {
        let r = wait_not_ready(srv);
        let v = r.json();
        assert_eq!(
            (v["hsm"].as_str(), v["store"].as_str()),
            (Some("ok"), Some("down")),
            "readiness must blame the store only: {v}"
        );
        assert!(r.retry_after.is_some(), "readiness 503 without Retry-After");
    }
    eprintln!(
        "both replicas not ready {:?} after the kill",
        killed.elapsed()
    );
    standby.promote();
    let promoted = Instant::now();

    // Each replica's first success after the promotion, measured side by side.
    let firsts: Vec<_> = urls
        .iter()
        .enumerate()
        .map(|(n, base)| {
            let (base, auth, csr) = (base.clone(), auth.clone(), csrs[0].clone());
            let (acked, nra) = (acked.clone(), no_retry_after.clone());
            std::thread::spawn(move || {
                let mut i = 0;
                loop {
                    let key = format!("probe{n}-{i}");
                    if let Ok(r) = try_enroll_secc(&base, &auth, &csr, Some(&key)) {
                        if r.status == 200 {
                            let took = promoted.elapsed();
                            acked.lock().unwrap().insert(key, (0, r.text()));
                            return took;
                        }
                        assert_eq!(r.status, 503, "{}", r.text());
                        if r.retry_after.is_none() {
                            nra.lock().unwrap().push(r.text());
                        }
                    }
                    assert!(
                        promoted.elapsed() < Duration::from_secs(15),
                        "replica {n} did not serve again"
                    );
                    i += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        })
        .collect();
    let firsts: Vec<Duration> = firsts.into_iter().map(|h| h.join().unwrap()).collect();
    eprintln!(
        "first success after the promotion: replica A {:?}, replica B {:?} (kill to promotion {:?})",
        firsts[0],
        firsts[1],
        promoted - killed
    );
    for (n, f) in firsts.iter().enumerate() {
        assert!(
            *f < Duration::from_secs(5),
            "replica {n} served again only {f:?} after the promotion\n{}",
            [&a, &b][n].log()
        );
    }
    // OCSP answers again from both replicas once their leases are renewed on the new primary
    // (tryLater in between, never a stale answer).
    let (k, (_, body)) = acked
        .lock()
        .unwrap()
        .iter()
        .next()
        .map(|(k, v)| (k.clone(), v.clone()))
        .unwrap();
    let (_, leaf) = pkcs7_leaf(env.path(), &k, &body);
    for srv in [&a, &b] {
        let t = Instant::now();
        loop {
            let out = ocsp_status(&srv.url(""), &issuer, &leaf);
            if out == "good" {
                break;
            }
            assert!(out.contains("trylater"), "OCSP after the failover: {out}");
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "OCSP did not come back"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let before = acked_now();
    let t = Instant::now();
    while acked_now() < before + 40 {
        assert!(t.elapsed() < Duration::from_secs(60), "load did not resume");
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.join().expect("a worker saw an unexpected answer");
    }

    // What was not answered is retried with its key: the certificate if it was stored (in
    // doubt or not), else a new one; never two.
    let retried = failed.lock().unwrap().clone();
    for (key, w) in &retried {
        let r = try_enroll_secc(&b.url(""), &auth, &csrs[*w], Some(key)).expect("B answers");
        assert_eq!(r.status, 200, "retry of {key}: {}", r.text());
        let mut acked = acked.lock().unwrap();
        if let Some((_, first)) = acked.get(key) {
            assert_eq!(first, &r.text(), "a retry of an acknowledged call differs");
        }
        acked.insert(key.clone(), (*w, r.text()));
    }
    let nra = no_retry_after.lock().unwrap().clone();
    assert!(nra.is_empty(), "503s without Retry-After: {nra:?}");

    // The new primary holds exactly the acknowledged certificates, each serial once.
    assert_eq!(standby.query("SELECT pg_is_in_recovery()"), "f");
    let acked = acked.lock().unwrap().clone();
    let mut acked_serials = BTreeSet::new();
    for (k, (_, body)) in &acked {
        let (serial, _) = pkcs7_leaf(env.path(), k, body);
        assert!(acked_serials.insert(serial), "two keys got one certificate");
    }
    let stored: Vec<String> = env
        .listed("secc-leaf")
        .iter()
        .map(|c| c["serial_hex"].as_str().unwrap().to_string())
        .collect();
    let stored_set: BTreeSet<String> = stored.iter().cloned().collect();
    assert_eq!(stored.len(), stored_set.len(), "a serial twice");
    assert_eq!(
        stored_set, acked_serials,
        "stored and acknowledged certificates differ"
    );
    eprintln!(
        "{} acknowledged ({} retried after the failover)",
        acked.len(),
        retried.len()
    );
    assert!(env.ok(&["audit", "verify"]).contains("audit log OK"));
}

#[test]
fn commits_in_doubt_are_answered_with_the_certificate_that_committed() {
    let Some(bin) = pg_bin() else {
        return;
    };
    // remote_apply: the primary's commit waits until the standby has applied it, so with the
    // standby's replay paused a commit is stored on both and acknowledged by neither.
    let (primary, standby) = pair(bin, "remote_apply");
    let env = env_on(&[&primary, &standby]);
    let srv = env.serve_with_env(&[("PNC_LIMIT_ENROLL_PER_CLIENT", "off")]);
    let auth = srv.bearer(&env.client_add("cpo", "cpo", &["DE*ABC"]));
    let csr = env.csr_b64("e1", "/C=DE/O=ABC/DC=CPO/CN=DE*ABC*E1");
    assert_eq!(srv.enroll_secc(&auth, &csr, Some("warm")).status, 200);

    // Start-up writes (the first CRLs) done: once replay is paused, the first transaction to
    // commit holds the audit head until the end, and it must be the enrollment's.
    wait_quiet(&primary);
    standby.query("SELECT pg_wal_replay_pause()");
    standby.wait_for("SELECT pg_get_wal_replay_pause_state()", "paused");
    let in_doubt = enroll_in_doubt(&srv, &auth, &csr, "in-doubt", &primary, &standby);
    primary.kill_postmaster();

    let r = in_doubt.join().unwrap().expect("an answer");
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(
        r.json()["code"],
        "outcome_unknown",
        "{}\n{}",
        r.text(),
        srv.log()
    );
    assert!(
        r.retry_after.is_some(),
        "outcome_unknown without Retry-After"
    );
    assert!(r.text().contains("Idempotency-Key"), "{}", r.text());

    // The HA manager promotes the standby: the commit is there.
    standby.promote();
    assert_eq!(
        standby.query("SELECT count(*) FROM certificates WHERE profile = 'secc-leaf'"),
        "2"
    );
    let committed =
        standby.query("SELECT serial_hex FROM idempotency_keys WHERE idem_key = 'in-doubt'");
    assert!(!committed.is_empty(), "the in-doubt commit did not survive");
    let t = Instant::now();
    let again = loop {
        let r = srv.enroll_secc(&auth, &csr, Some("in-doubt"));
        if r.status == 200 {
            break r;
        }
        assert_eq!(r.status, 503, "{}", r.text());
        assert!(t.elapsed() < Duration::from_secs(10), "{}", r.text());
        std::thread::sleep(Duration::from_millis(100));
    };
    let (serial, _) = pkcs7_leaf(env.path(), "in-doubt", &again.text());
    let stored: BTreeSet<String> = env
        .listed("secc-leaf")
        .iter()
        .map(|c| c["serial_hex"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(stored.len(), 2, "the retry issued a second certificate");
    assert!(
        stored.contains(&serial),
        "the retry's certificate is not stored"
    );
    assert_eq!(
        serial, committed,
        "the retry must answer the certificate the in-doubt commit stored"
    );

    // Again the other way round, and this time the promotion comes while the writer is still
    // checking: the old primary rebuilt as a synchronous standby on its own address, a commit
    // in doubt, the new primary killed, the rebuilt one promoted at once. The writer finds the
    // certificate on it and answers it: 200 to the first call, no retry needed.
    let (now_primary, dead) = (standby, primary);
    let port = dead.port;
    drop(dead);
    let rebuilt = Cluster::standby_on(&now_primary, port, &[]);
    now_primary.query("ALTER SYSTEM SET synchronous_standby_names = '*'");
    now_primary.query("ALTER SYSTEM SET synchronous_commit = 'remote_apply'");
    now_primary.query("SELECT pg_reload_conf()");
    now_primary.wait_for("SELECT sync_state FROM pg_stat_replication", "sync");
    wait_quiet(&now_primary);
    rebuilt.query("SELECT pg_wal_replay_pause()");
    rebuilt.wait_for("SELECT pg_get_wal_replay_pause_state()", "paused");
    let in_doubt = enroll_in_doubt(&srv, &auth, &csr, "in-doubt-2", &now_primary, &rebuilt);
    now_primary.kill_postmaster();
    rebuilt.promote();
    let r = in_doubt.join().unwrap().expect("an answer");
    assert_eq!(r.status, 200, "{}\n{}", r.text(), srv.log());
    assert!(
        srv.log()
            .contains("the batch is stored (checked on a fresh connection)"),
        "the answer did not come from the check"
    );
    let (serial, _) = pkcs7_leaf(env.path(), "in-doubt-2", &r.text());
    assert_eq!(
        rebuilt.query("SELECT serial_hex FROM idempotency_keys WHERE idem_key = 'in-doubt-2'"),
        serial
    );
    assert_eq!(env.listed("secc-leaf").len(), 3, "a certificate too many");
    assert!(env.ok(&["audit", "verify"]).contains("audit log OK"));
}

/// Wait until the audit log has not moved for 1.5 s (start-up CRLs and the like are written).
fn wait_quiet(primary: &Cluster) {
    let mut last = String::new();
    let mut quiet_since = Instant::now();
    while quiet_since.elapsed() < Duration::from_millis(1500) {
        let seq = primary.query("SELECT max(seq) FROM audit_log");
        if seq != last {
            last = seq;
            quiet_since = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Send a keyed enrollment whose batch's COMMIT then waits for `standby` (replay paused) and
/// return once that commit is on the standby's disk, unacknowledged; the call's answer is the
/// thread's result.
fn enroll_in_doubt(
    srv: &Server,
    auth: &str,
    csr: &str,
    key: &str,
    primary: &Cluster,
    standby: &Cluster,
) -> std::thread::JoinHandle<Result<Reply, String>> {
    let (base, auth, csr, key) = (
        srv.url(""),
        auth.to_string(),
        csr.to_string(),
        key.to_string(),
    );
    let call = std::thread::spawn(move || try_enroll_secc(&base, &auth, &csr, Some(&key)));
    // The batch's transaction holds the certificates table until its COMMIT returns.
    let t = Instant::now();
    while primary.query(
        "SELECT count(*) FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid \
         WHERE a.wait_event = 'SyncRep' AND l.relation = 'certificates'::regclass",
    ) == "0"
    {
        assert!(t.elapsed() < Duration::from_secs(20), "no commit waits");
        std::thread::sleep(Duration::from_millis(20));
    }
    let lsn = primary.query("SELECT pg_current_wal_flush_lsn()");
    standby.wait_for(
        &format!("SELECT pg_wal_lsn_diff('{lsn}', pg_last_wal_receive_lsn()) <= 0"),
        "t",
    );
    call
}
