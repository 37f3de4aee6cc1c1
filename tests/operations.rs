//! Running the service: log output (plain text without escape codes when not on a terminal, or
//! JSON lines) and graceful shutdown on SIGTERM under load (every request completes or is
//! refused before any work; exit 0 within the grace period; nothing half-written).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;

#[test]
fn logs_are_plain_text_without_escape_codes_or_json_lines() {
    let env = Env::new(Backend::Sqlite);
    env.init();
    let srv = env.serve();
    let _ = reply(http().get(&srv.url("/health/live")).call());
    let _ = reply(http().get(&srv.url("/no/such/route")).call());
    std::thread::sleep(Duration::from_millis(200));
    let text = srv.log();
    assert!(text.contains("request"), "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "escape codes in a log file: {text:?}"
    );
    drop(srv);

    let srv = env.serve_with_env(&[("PNC_LOG_FORMAT", "json")]);
    let _ = reply(http().get(&srv.url("/health/live")).call());
    std::thread::sleep(Duration::from_millis(200));
    let log = srv.log();
    let mut requests = 0;
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(
            v["level"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
        if v["fields"]["message"] == "request" && v["fields"]["path"] == "/health/live" {
            requests += 1;
            assert_eq!(v["fields"]["status"], 200, "{line}");
        }
    }
    assert!(requests >= 1, "a request line in JSON: {log}");
    drop(srv);

    let out = env
        .command()
        .args([
            "serve",
            "--data-dir",
            &env.data_dir(),
            "--listen",
            "127.0.0.1:0",
        ])
        .env("PNC_LOG_FORMAT", "yaml")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("PNC_LOG_FORMAT"));
}

#[test]
fn sigterm_under_load_drains_and_exits_zero_with_nothing_half_written() {
    let env = Env::new(Backend::Sqlite);
    env.init();
    let mut srv = env.serve_with_env(&[("PNC_LIMIT_ENROLL_PER_CLIENT", "off")]);
    let client = env.client_add("cpo", "cpo", &["DE*ABC"]);
    let auth = srv.bearer(&client);
    let body = Arc::new(env.csr_b64("e1", "/C=DE/O=ABC/DC=CPO/CN=DE*ABC*E1"));
    let url = srv.url("/cpo/simpleenroll/ISO15118-2");
    let (ok, refused, cut) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (url, auth, body) = (url.clone(), auth.clone(), body.clone());
            let (ok, refused, cut, stop) = (ok.clone(), refused.clone(), cut.clone(), stop.clone());
            std::thread::spawn(move || {
                let agent = http();
                while !stop.load(Ordering::SeqCst) {
                    match agent
                        .post(&url)
                        .header("authorization", &auth)
                        .header("content-type", "application/pkcs10")
                        .send(body.as_bytes())
                    {
                        Ok(mut r) => {
                            let status = r.status().as_u16();
                            let text = r.body_mut().read_to_string().unwrap_or_default();
                            match status {
                                200 => {
                                    ok.fetch_add(1, Ordering::SeqCst);
                                }
                                503 => {
                                    assert!(text.contains("shutting_down"), "{text}");
                                    refused.fetch_add(1, Ordering::SeqCst);
                                }
                                other => panic!("unexpected {other}: {text}"),
                            }
                        }
                        // Closed or refused before the request was read: nothing was done.
                        Err(_) => {
                            cut.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(20));
                        }
                    }
                }
            })
        })
        .collect();
    // Load for a while, then SIGTERM in the middle of it.
    let t0 = Instant::now();
    while ok.load(Ordering::SeqCst) < 40 && t0.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let before = ok.load(Ordering::SeqCst);
    assert!(before >= 40, "the load ran: {before} enrollments");
    let st = std::process::Command::new("kill")
        .args(["-TERM", &srv.child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let sent = Instant::now();
    let status = loop {
        if let Some(s) = srv.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(15),
            "serve did not exit within the grace period after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.join().expect("a worker saw an unexpected answer");
    }
    assert!(
        status.success(),
        "exit status after SIGTERM: {status:?}\n{}",
        srv.log()
    );
    assert!(
        srv.log().contains("shutting down: draining"),
        "{}",
        srv.log()
    );

    eprintln!(
        "acknowledged {}, refused 503 {}, cut before being read {}",
        ok.load(Ordering::SeqCst),
        refused.load(Ordering::SeqCst),
        cut.load(Ordering::SeqCst)
    );
    // Every acknowledged certificate is stored, and nothing was stored that was not
    // acknowledged: the store holds exactly as many as the clients received.
    let acknowledged = ok.load(Ordering::SeqCst);
    assert_eq!(
        secc_count(&env),
        acknowledged,
        "stored vs acknowledged (refused {}, cut {})",
        refused.load(Ordering::SeqCst),
        cut.load(Ordering::SeqCst)
    );
    assert!(env.ok(&["audit", "verify"]).contains("audit log OK"));
}

fn enroll_n(srv: &Server, auth: &str, csr_b64: &str, n: usize) {
    for _ in 0..n {
        let r = srv.enroll_secc(auth, csr_b64, None);
        assert_eq!(r.status, 200, "{}", r.text());
    }
}

fn secc_count(env: &Env) -> usize {
    env.listed("secc-leaf").len()
}

#[test]
fn sqlite_backup_while_serving_then_restore_verified() {
    let env = Env::new(Backend::Sqlite);
    env.init();
    let srv = env.serve();
    let auth = srv.bearer(&env.client_add("cpo", "cpo", &["DE*ABC"]));
    let csr = env.csr_b64("e1", "/C=DE/O=ABC/DC=CPO/CN=DE*ABC*E1");
    enroll_n(&srv, &auth, &csr, 3);
    // Online: the server keeps serving while the copy is made.
    let backup = env.path().join("backup-1.db");
    let b = backup.display().to_string();
    let out = env.ok(&["backup", "--out", &b]);
    assert!(out.contains("backup written"), "{out}");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&backup).unwrap().permissions());
    assert_eq!(mode & 0o077, 0, "the backup is owner-only: {mode:o}");
    let e = env.fails(&["backup", "--out", &b]);
    assert!(e.contains("exists already"), "never overwritten: {e}");
    enroll_n(&srv, &auth, &csr, 2);
    assert_eq!(secc_count(&env), 5);
    drop(srv);

    // A tampered copy is refused and nothing changes.
    let tampered = env.path().join("tampered.db");
    std::fs::copy(&backup, &tampered).unwrap();
    let py = format!(
        "import sqlite3; c = sqlite3.connect('{}'); \
         [c.execute('DROP TRIGGER ' + r[0]) for r in c.execute(\"SELECT name FROM sqlite_master WHERE type='trigger'\").fetchall()]; \
         c.execute(\"UPDATE audit_log SET actor = 'someone-else' WHERE seq = 2\"); c.commit()",
        tampered.display()
    );
    let st = std::process::Command::new("python3")
        .args(["-c", &py])
        .status()
        .unwrap();
    assert!(st.success());
    let e = env.fails(&["restore", "--from", &tampered.display().to_string()]);
    assert!(e.contains("audit chain is broken"), "{e}");
    assert_eq!(secc_count(&env), 5, "a refused restore changes nothing");

    // The good copy: the state at backup time, chain intact, the old database kept aside.
    let out = env.ok(&["restore", "--from", &b]);
    assert!(
        out.contains("chain verified") && out.contains("before-restore"),
        "{out}"
    );
    assert_eq!(secc_count(&env), 3);
    assert!(env.ok(&["audit", "verify"]).contains("audit log OK"));
    let srv = env.serve();
    let auth = srv.bearer(&env.client_add("cpo2", "cpo", &["DE*ABC"]));
    enroll_n(&srv, &auth, &csr, 1);
    assert_eq!(
        secc_count(&env),
        4,
        "the restored database takes new issuances"
    );
}

/// A restore under a running `serve` would move the database aside while the service keeps
/// issuing into the file moved aside: those certificates would be lost at the next start.
#[test]
fn restore_is_refused_while_serve_runs() {
    let env = Env::new(Backend::Sqlite);
    env.init();
    let srv = env.serve();
    let auth = srv.bearer(&env.client_add("cpo", "cpo", &["DE*ABC"]));
    let csr = env.csr_b64("e1", "/C=DE/O=ABC/DC=CPO/CN=DE*ABC*E1");
    enroll_n(&srv, &auth, &csr, 1);
    let backup = env.path().join("backup.db");
    let b = backup.display().to_string();
    env.ok(&["backup", "--out", &b]);
    enroll_n(&srv, &auth, &csr, 1);
    let pid = srv.child.id().to_string();

    let e = env.fails(&["restore", "--from", &b]);
    assert!(
        e.contains("serve is running") && e.contains(&pid) && e.contains("stop it first"),
        "{e}"
    );
    let entries = |dir: &std::path::Path| {
        std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("before-restore") || n.contains("restoring"))
            .collect::<Vec<_>>()
    };
    assert!(entries(env.path()).is_empty(), "nothing moved aside");
    // The service keeps issuing into the database in place, and that certificate survives a
    // restart.
    enroll_n(&srv, &auth, &csr, 1);
    drop(srv);
    let srv = env.serve();
    assert_eq!(
        secc_count(&env),
        3,
        "every served enrollment is still there"
    );
    drop(srv);

    // Stopped: the restore goes through.
    let out = env.ok(&["restore", "--from", &b]);
    assert!(out.contains("chain verified"), "{out}");
    assert_eq!(secc_count(&env), 1);
}

/// A data dir made without `--public-url` writes 127.0.0.1:8080 into its certificates; a
/// `serve` elsewhere on loopback says so, and `init --public-url` says what it changed.
#[test]
fn public_url_elsewhere_on_loopback_is_warned_and_init_reports_a_change() {
    let env = Env::new(Backend::Sqlite);
    env.init();
    let srv = env.serve();
    let listen = srv.base.trim_start_matches("http://").to_string();
    let log = srv.log();
    let warn = log
        .lines()
        .find(|l| l.contains("WARN") && l.contains("public URL"))
        .unwrap_or_else(|| panic!("no WARN line: {log}"));
    assert!(
        warn.contains(&listen) && warn.contains("http://127.0.0.1:8080"),
        "{warn}"
    );
    drop(srv);

    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let out = env.ok(&["init", "--public-url", &url]);
    assert!(
        out.contains("public URL changed from http://127.0.0.1:8080 to")
            && out.contains(&url)
            && out.contains("rollover")
            && !out.contains("nothing to do"),
        "{out}"
    );
    // Unchanged the second time.
    let out = env.ok(&["init", "--public-url", &url]);
    assert!(out.contains("nothing to do"), "{out}");

    // Listening where the public URL points: no warning.
    let log_path = env.path().join("serve-match.log");
    let child = env
        .command()
        .args(["serve", "--data-dir", &env.data_dir()])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("PNC_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let srv = Server {
        child,
        base: url.clone(),
        log: log_path,
    };
    srv.wait_ready();
    let log = srv.log();
    assert!(log.contains("listening"), "{log}");
    assert!(!log.contains("public URL written"), "{log}");
}

/// Audit entries say who acted in words: the API client's name beside its id, the operator's
/// OS user name or `cli:local`, never `cli:unknown`.
#[test]
fn audit_actors_name_the_client_and_the_operator() {
    let env = Env::new(Backend::Sqlite);
    env.init();
    let srv = env.serve();
    let (id, secret) = env.client_add("Example CPO", "cpo", &["DE*ABC"]);
    let auth = srv.bearer(&(id.clone(), secret));
    let csr = env.csr_b64("e1", "/C=DE/O=ABC/DC=CPO/CN=DE*ABC*E1");
    enroll_n(&srv, &auth, &csr, 1);
    // With neither USER nor LOGNAME (cron, containers).
    let out = env
        .command()
        .args(["client", "add", "--name", "anon", "--role", "auditor"])
        .args(["--data-dir", &env.data_dir()])
        .env_remove("USER")
        .env_remove("LOGNAME")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    drop(srv);

    let export = env.ok(&["audit", "export"]);
    let entries: Vec<serde_json::Value> = export
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let issued = entries
        .iter()
        .find(|e| {
            e["action"] == "certificate.issue" && e["actor"].as_str().unwrap().starts_with("api:")
        })
        .unwrap_or_else(|| panic!("no API issuance: {export}"));
    assert_eq!(
        issued["actor"],
        format!("api:Example CPO ({id})"),
        "{issued}"
    );
    let anon = entries
        .iter()
        .find(|e| e["action"] == "client.create" && e["details"].to_string().contains("anon"))
        .unwrap_or_else(|| panic!("no client.create for anon: {export}"));
    assert_eq!(anon["actor"], "cli:local", "{anon}");
    assert!(!export.contains("cli:unknown"), "{export}");
    assert!(env.ok(&["audit", "verify"]).contains("audit log OK"));
}

#[test]
fn postgres_backups_are_pg_dumps() {
    if !backend_ready(Backend::Postgres) {
        return;
    }
    let env = Env::new(Backend::Postgres);
    env.init();
    let out = env.path().join("x.db").display().to_string();
    let e = env.fails(&["backup", "--out", &out]);
    assert!(e.contains("pg_dump"), "{e}");
    let e = env.fails(&["restore", "--from", &out]);
    assert!(e.contains("pg_restore"), "{e}");
}

#[test]
fn idempotency_keys_return_the_first_certificate_even_after_a_kill() {
    for backend in backends() {
        let env = Env::new(backend);
        env.init();
        let mut srv = env.serve();
        let a = env.client_add("a", "cpo", &["DE*ABC"]);
        let auth = srv.bearer(&a);
        let other = srv.bearer(&env.client_add("b", "cpo", &["DE*ABC"]));
        let b64 = |name: &str, cn: &str| env.csr_b64(name, &format!("/C=DE/O=ABC/DC=CPO/CN={cn}"));
        let (csr1, csr2) = (b64("e1", "DE*ABC*E1"), b64("e2", "DE*ABC*E2"));

        let first = srv.enroll_secc(&auth, &csr1, Some("k-1"));
        assert_eq!(first.status, 200, "{}", first.text());
        let again = srv.enroll_secc(&auth, &csr1, Some("k-1"));
        assert_eq!(again.status, 200);
        assert_eq!(
            again.body, first.body,
            "a retry gets the same certificate bytes"
        );
        assert_eq!(
            secc_count(&env),
            1,
            "{backend:?}: one certificate for two calls"
        );
        // The same key with another request: 409, nothing issued.
        let r = srv.enroll_secc(&auth, &csr2, Some("k-1"));
        assert_eq!(r.status, 409, "{}", r.text());
        assert!(r.text().contains("idempotency_key_reused"), "{}", r.text());
        assert_eq!(secc_count(&env), 1);
        // Keys are per caller; without a key every call issues.
        assert_eq!(srv.enroll_secc(&other, &csr1, Some("k-1")).status, 200);
        assert_eq!(srv.enroll_secc(&auth, &csr1, None).status, 200);
        assert_eq!(secc_count(&env), 3);
        let r = srv.enroll_secc(&auth, &csr1, Some(&"x".repeat(300)));
        assert_eq!(r.status, 400, "{}", r.text());
        assert_eq!(secc_count(&env), 3);

        // Concurrent retries with one key: one certificate, every caller gets it.
        let bodies: Vec<Vec<u8>> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..6)
                .map(|_| {
                    let (srv, auth, csr2) = (&srv, &auth, &csr2);
                    s.spawn(move || {
                        let r = srv.enroll_secc(auth, csr2, Some("k-burst"));
                        assert_eq!(r.status, 200, "{}", r.text());
                        r.body
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(
            bodies.windows(2).all(|w| w[0] == w[1]),
            "{backend:?}: one answer for all"
        );
        assert_eq!(secc_count(&env), 4);

        // kill -9, restart, retry: the first certificate again.
        srv.child.kill().unwrap();
        srv.child.wait().unwrap();
        let srv = env.serve();
        let auth = srv.bearer(&a);
        let after = srv.enroll_secc(&auth, &csr1, Some("k-1"));
        assert_eq!(after.status, 200, "{}", after.text());
        assert_eq!(
            after.body, first.body,
            "{backend:?}: after a kill, the first certificate"
        );
        assert_eq!(secc_count(&env), 4);
        assert!(env.ok(&["audit", "verify"]).contains("audit log OK"));
    }
}

#[test]
fn report_expiring_takes_a_duration() {
    let env = Env::new(Backend::Sqlite);
    env.init();
    let parse = |out: String| -> Vec<String> {
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|c| format!("{}/{}", c["issuer_id"], c["serial_hex"]))
            .collect()
    };
    let by_duration = parse(env.ok(&["report", "expiring", "--within", "30d", "--json"]));
    let by_days = parse(env.ok(&["report", "expiring", "--days", "30", "--json"]));
    // init's OCSP signers live a few days: they are what expires first.
    assert!(
        !by_duration.is_empty(),
        "the OCSP signers expire within 30 days"
    );
    assert_eq!(by_duration, by_days);
    assert!(parse(env.ok(&["report", "expiring", "--within", "1m", "--json"])).is_empty());
    let all = parse(env.ok(&["report", "expiring", "--within", "36500d", "--json"]));
    assert!(all.len() > by_duration.len());
    let e = env.fails(&["report", "expiring", "--within", "soon"]);
    assert!(e.contains("--within"), "{e}");
}

#[test]
fn ocpp_sign_certificate_retries_with_an_idempotency_key_get_the_first_certificate() {
    let env = Env::new(Backend::Sqlite);
    env.init();
    let srv = env.serve();
    let auth = srv.bearer(&env.client_add("csms", "csms", &["ACME CSO"]));
    let pem = |name: &str, cn: &str| {
        let p = env.openssl_csr(name, "prime256v1", &format!("/O=ACME CSO/CN={cn}"));
        std::fs::read_to_string(p).unwrap()
    };
    let sign = |key: &str, station: &str, csr: &str| {
        reply(
            http()
                .post(&srv.url("/api/v1/ocpp/sign-certificate"))
                .header("authorization", &auth)
                .header("content-type", "application/json")
                .header("idempotency-key", key)
                .send(
                    serde_json::json!({"stationId": station, "csr": csr,
                        "certificateType": "ChargingStationCertificate"})
                    .to_string()
                    .as_bytes(),
                ),
        )
    };
    let stations = |env: &Env| env.listed("charging-station").len();
    let (c9, c8) = (pem("cs9", "CS-0009"), pem("cs8", "CS-0008"));
    let first = sign("sc-1", "CS-0009", &c9);
    assert_eq!(first.status, 200, "{}", first.text());
    let again = sign("sc-1", "CS-0009", &c9);
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(
        first.json()["certificateChain"],
        again.json()["certificateChain"],
        "a retry gets the first certificate"
    );
    assert_eq!(stations(&env), 1, "one certificate for two calls");
    let other = sign("sc-1", "CS-0008", &c8);
    assert_eq!(other.status, 409, "{}", other.text());
    assert_eq!(stations(&env), 1);
    assert_eq!(sign("sc-2", "CS-0008", &c8).status, 200);
    assert_eq!(stations(&env), 2);
}

/// `certificate.revoke` entries in the audit log (`audit export` matches by prefix, which
/// also takes `certificate.revoke.refused`).
fn revoke_entries(env: &Env) -> usize {
    env.ok(&["audit", "export", "--action", "certificate.revoke"])
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["action"] == "certificate.revoke"
        })
        .count()
}

#[test]
fn revocation_retries_with_an_idempotency_key_get_the_first_answer() {
    for backend in backends() {
        let env = Env::new(backend);
        env.init();
        let mut srv = env.serve();
        let client = env.client_add("a", "cpo", &["DE*ABC"]);
        let auth = srv.bearer(&client);
        let b64 = |name: &str, cn: &str| env.csr_b64(name, &format!("/C=DE/O=ABC/DC=CPO/CN={cn}"));
        let mut targets = Vec::new();
        for (name, cn) in [("r1", "DE*ABC*E71"), ("r2", "DE*ABC*E72")] {
            let r = srv.enroll_secc(&auth, &b64(name, cn), None);
            assert_eq!(r.status, 200, "{}", r.text());
            let (serial, _) = pkcs7_leaf(env.path(), name, r.text().trim());
            targets.push(serial);
        }
        let issuer = env.listed("secc-leaf")[0]["issuer_id"]
            .as_str()
            .unwrap()
            .to_string();
        let revoke = |srv: &Server, auth: &str, serial: &str, key: &str, reason: &str| {
            reply(
                http()
                    .post(&srv.url(&format!("/api/v1/certificates/{issuer}/{serial}/revoke")))
                    .header("authorization", auth)
                    .header("content-type", "application/json")
                    .header("idempotency-key", key)
                    .send(
                        serde_json::json!({ "reason": reason })
                            .to_string()
                            .as_bytes(),
                    ),
            )
        };
        let before = revoke_entries(&env);
        let first = revoke(&srv, &auth, &targets[0], "rv-1", "keyCompromise");
        assert_eq!(first.status, 200, "{}", first.text());
        assert_eq!(first.json()["outcome"], "revoked");
        let again = revoke(&srv, &auth, &targets[0], "rv-1", "keyCompromise");
        assert_eq!(again.status, 200, "{}", again.text());
        assert_eq!(
            again.body, first.body,
            "{backend:?}: a retry gets the first answer, not already_revoked"
        );
        assert_eq!(
            revoke_entries(&env),
            before + 1,
            "{backend:?}: one revocation entry"
        );
        // The same key with another reason or another certificate: 409, nothing revoked.
        for (serial, reason) in [(&targets[0], "superseded"), (&targets[1], "keyCompromise")] {
            let r = revoke(&srv, &auth, serial, "rv-1", reason);
            assert_eq!(r.status, 409, "{}", r.text());
            assert!(r.text().contains("idempotency_key_reused"), "{}", r.text());
        }
        assert_eq!(revoke_entries(&env), before + 1);
        let valid = |env: &Env| {
            env.listed("secc-leaf")
                .iter()
                .filter(|c| c["status"] == "valid")
                .count()
        };
        assert_eq!(
            valid(&env),
            1,
            "{backend:?}: the other certificate is untouched"
        );
        // Without a key a repeat says what it did: nothing.
        let r = reply(
            http()
                .post(&srv.url(&format!(
                    "/api/v1/certificates/{issuer}/{}/revoke",
                    targets[0]
                )))
                .header("authorization", &auth)
                .send(br#"{"reason": "keyCompromise"}"#),
        );
        assert_eq!(r.json()["outcome"], "already_revoked", "{}", r.text());

        // kill -9, restart, retry: the first answer again, still one entry.
        srv.child.kill().unwrap();
        srv.child.wait().unwrap();
        let srv = env.serve();
        let auth = srv.bearer(&client);
        let after = revoke(&srv, &auth, &targets[0], "rv-1", "keyCompromise");
        assert_eq!(after.status, 200, "{}", after.text());
        assert_eq!(
            after.body, first.body,
            "{backend:?}: after a kill, the first answer"
        );
        assert_eq!(revoke_entries(&env), before + 1);
        assert!(env.ok(&["audit", "verify"]).contains("audit log OK"));
    }
}
