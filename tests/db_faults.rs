//! PostgreSQL goes down and comes back while `serve` runs, on a throwaway cluster of the test's
//! own (`initdb`/`pg_ctl` on a free port, so the machine's server is never touched): calls that
//! need the database answer 503, readiness turns red, cached OCSP answers keep being served,
//! and once the database is back the service reconnects by itself; no acknowledged write is
//! lost and the audit chain is intact.

mod common;

use std::time::{Duration, Instant};

use common::pg::{Cluster, pg_bin};
use common::*;

#[test]
fn postgres_restart_while_serving() {
    let Some(bin) = pg_bin() else {
        return;
    };
    let cluster = Cluster::new(bin);
    let mut env = Env::new(Backend::Sqlite);
    env.db_url = cluster.url();
    env.init();
    let ex = env.export();
    let srv = env.serve();
    let auth = srv.bearer(&env.client_add("cpo", "cpo", &["DE*ABC"]));
    let csr = env.csr_b64("e1", "/C=DE/O=ABC/DC=CPO/CN=DE*ABC*E1");
    let r = srv.enroll_secc(&auth, &csr, None);
    assert_eq!(r.status, 200, "{}", r.text());
    let mut acknowledged = 1;
    let (_, leaf) = pkcs7_leaf(env.path(), "e1", &r.text());
    let issuer = ex.join("cpo-sub-ca-2.pem");
    let out = ocsp_status(&srv.url(""), &issuer, &leaf);
    assert_eq!(out, "good", "OCSP good before the outage");

    cluster.stop();
    let down = Instant::now();
    let r = srv.enroll_secc(&auth, &csr, None);
    eprintln!("refused {:?} after PostgreSQL stopped", down.elapsed());
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(
        r.retry_after.is_some(),
        "a 503 without Retry-After: {}",
        r.text()
    );
    let t = Instant::now();
    loop {
        let r = reply(http().get(&srv.url("/health/ready")).call());
        if r.status == 503 {
            // The token is fine: only the store is blamed.
            assert!(r.text().contains("\"store\":\"down\""), "{}", r.text());
            assert!(r.text().contains("\"hsm\":\"ok\""), "{}", r.text());
            assert!(r.retry_after.is_some(), "readiness 503 without Retry-After");
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "readiness stayed green"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // A PostgreSQL replica answers from memory only while it holds its lease (it could miss
    // a revocation otherwise, docs/ocsp.md): "good" within it, tryLater after; never wrong.
    let out = ocsp_status(&srv.url(""), &issuer, &leaf);
    assert!(
        out == "good" || out.contains("trylater"),
        "OCSP while the database is down: {out}"
    );

    cluster.start();
    let back = Instant::now();
    loop {
        let r = srv.enroll_secc(&auth, &csr, None);
        if r.status == 200 {
            acknowledged += 1;
            break;
        }
        assert_eq!(r.status, 503, "{}", r.text());
        assert!(
            back.elapsed() < Duration::from_secs(20),
            "no reconnect within 20 s: {}",
            r.text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!(
        "reconnected {:?} after PostgreSQL came back",
        back.elapsed()
    );
    let t = Instant::now();
    while ocsp_status(&srv.url(""), &issuer, &leaf) != "good" {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "OCSP did not come back"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(srv.enroll_secc(&auth, &csr, None).status, 200);
    acknowledged += 1;
    assert_eq!(env.listed("secc-leaf").len(), acknowledged);
    assert!(env.ok(&["audit", "verify"]).contains("audit log OK"));
}
