//! The token goes away while `serve` runs and comes back: SoftHSM2's token directory (the one
//! `DIR/hsm/softhsm2.conf` names) is moved away and back. Meanwhile calls that need the token
//! answer 503 `hsm_unavailable`, readiness turns red, cached OCSP answers keep being served (and
//! say "good"), and afterwards enrollment works again by itself, without a restart.

mod common;
mod ocsp_support;

use std::time::{Duration, Instant};

use common::*;
use ocsp_support::*;

fn ready(srv: &Server) -> (u16, String) {
    let r = reply(http().get(&srv.url("/health/ready")).call());
    (r.status, r.text())
}

#[test]
fn the_token_goes_away_and_comes_back_while_serving() {
    let pki = setup(Backend::Sqlite, "");
    let srv = pki.env.serve();
    let auth = srv.bearer(&pki.env.client_add("cpo", "cpo", &["DE*ABC"]));
    let csr = pki.env.csr_b64("e1", "/C=DE/O=ABC/DC=CPO/CN=DE*ABC*E1");
    let ocsp = srv.url("/ocsp");
    assert_status(&pki.query(&ocsp, &["-no_nonce"]), "good");
    assert_eq!(srv.enroll_secc(&auth, &csr, None).status, 200);
    let mut acknowledged = 1;

    let tokens = pki.env.path().join("hsm/tokens");
    let away = pki.env.path().join("hsm/tokens.away");
    let conf = std::fs::read_to_string(pki.env.path().join("hsm/softhsm2.conf")).unwrap();
    assert!(conf.contains(&tokens.display().to_string()), "{conf}");
    std::fs::rename(&tokens, &away).unwrap();

    let r = srv.enroll_secc(&auth, &csr, None);
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["code"], "hsm_unavailable", "{}", r.text());
    let t = Instant::now();
    loop {
        let (status, body) = ready(&srv);
        if status == 503 {
            assert!(body.contains("\"hsm\":\"down\""), "{body}");
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "readiness stayed green: {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Chargers keep getting their cached answers, and they are right.
    for _ in 0..3 {
        assert_status(&pki.query(&ocsp, &["-no_nonce"]), "good");
    }
    let r = srv.enroll_secc(&auth, &csr, None);
    assert_eq!(r.status, 503, "still away: {}", r.text());

    std::fs::rename(&away, &tokens).unwrap();
    let back = Instant::now();
    loop {
        let r = srv.enroll_secc(&auth, &csr, None);
        if r.status == 200 {
            acknowledged += 1;
            break;
        }
        assert_eq!(r.status, 503, "{}", r.text());
        assert!(
            back.elapsed() < Duration::from_secs(10),
            "enrollment did not recover within 10 s without a restart: {}\n{}",
            r.text(),
            srv.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("recovered {:?} after the token came back", back.elapsed());
    // Readiness is probed at most once a second: green again right after.
    let t = Instant::now();
    while ready(&srv).0 != 200 {
        assert!(t.elapsed() < Duration::from_secs(5), "readiness stayed red");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(srv.enroll_secc(&auth, &csr, None).status, 200);
    acknowledged += 1;
    assert_status(&pki.query(&ocsp, &[]), "good");

    // Exactly the acknowledged certificates are stored (plus the one `setup` issued); the
    // audit chain is intact.
    assert_eq!(pki.env.listed("secc-leaf").len(), acknowledged + 1);
    assert!(pki.env.ok(&["audit", "verify"]).contains("audit log OK"));
}

#[test]
fn serve_waits_a_bounded_time_for_a_token_that_is_not_there_yet() {
    let env = Env::new(Backend::Sqlite);
    env.init();
    let tokens = env.path().join("hsm/tokens");
    let away = env.path().join("hsm/tokens.away");
    std::fs::rename(&tokens, &away).unwrap();
    // Without waiting, serve gives up at once, saying why.
    let out = env
        .command()
        .args([
            "serve",
            "--data-dir",
            &env.data_dir(),
            "--listen",
            "127.0.0.1:0",
        ])
        .env("PNC_HSM_START_WAIT", "0s")
        .output()
        .unwrap();
    assert!(!out.status.success());
    // Starting while the token is away, it comes up once the token appears.
    let srv = env.spawn_serve(&[("PNC_HSM_START_WAIT", "20s")]);
    std::thread::sleep(Duration::from_millis(1500));
    std::fs::rename(&away, &tokens).unwrap();
    let t = Instant::now();
    loop {
        if let Ok(r) = ureq::get(&srv.url("/health/ready")).call()
            && r.status() == 200
        {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "serve did not start once the token appeared: {}",
            srv.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        srv.log().contains("the token is not available yet"),
        "{}",
        srv.log()
    );
}
