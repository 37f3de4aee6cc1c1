//! The freshness contract: once a revocation returns, no replica answers "good"; delegated
//! signers rotate without breaking verification; cached responses are refreshed before expiry.

mod common;
mod ocsp_support;

use std::time::{Duration, Instant};

use common::*;
use ocsp_support::*;

#[test]
fn revocation_reaches_every_replica_before_revoke_returns() {
    for backend in backends() {
        let pki = setup(backend, "");
        let a = pki.env.serve();
        let b = pki.env.serve();
        let (ua, ub) = (a.url("/ocsp"), b.url("/ocsp"));
        let req = pki.request_der(&["-no_nonce"]);
        // Both replicas have the good answer in memory (same bytes: pre-produced, shared).
        let (_, ra) = post(&ua, &req);
        let (_, rb) = post(&ub, &req);
        assert_eq!(
            ra, rb,
            "replicas should serve the same pre-produced response"
        );
        let f = pki.env.path().join("before.der");
        std::fs::write(&f, &rb).unwrap();
        assert_status(&pki.check_file(&f), "good");

        // Revoke through process A's database writer (the CLI is a third process); then ask B
        // first, with no pause at all.
        let started = Instant::now();
        pki.revoke_cli("keyCompromise");
        let took = started.elapsed();
        let (_, rb2) = post(&ub, &req);
        let (_, ra2) = post(&ua, &req);
        for (name, body) in [("B", &rb2), ("A", &ra2)] {
            let f = pki.env.path().join(format!("after-{name}.der"));
            std::fs::write(&f, body).unwrap();
            let out = pki.check_file(&f);
            assert_status(&out, "revoked");
        }
        assert!(took < Duration::from_secs(5), "revoke took {took:?}");
        eprintln!("{backend:?}: revoke with two live replicas took {took:?}");
        drop(a);
        drop(b);
    }
}

#[test]
fn a_stopped_replica_does_not_block_revocation_for_long() {
    // A replica killed without deregistering holds a lease for at most `lease`.
    for backend in backends() {
        let pki = setup(backend, "lease = \"2s\"");
        let a = pki.env.serve();
        let b = pki.env.serve();
        let req = pki.request_der(&["-no_nonce"]);
        let _ = post(&a.url("/ocsp"), &req);
        drop(b); // SIGKILL: its row stays with a live lease
        let started = Instant::now();
        pki.revoke_cli("cessationOfOperation");
        let took = started.elapsed();
        assert!(took < Duration::from_secs(5), "revoke took {took:?}");
        let (_, body) = post(&a.url("/ocsp"), &req);
        let f = pki.env.path().join("after.der");
        std::fs::write(&f, &body).unwrap();
        assert_status(&pki.check_file(&f), "revoked");
        drop(a);
    }
}

fn field(out: &str, name: &str) -> String {
    out.lines()
        .find(|l| l.trim_start().starts_with(name))
        .map(|l| l.trim().to_string())
        .unwrap_or_default()
}

#[test]
fn signer_rotation_and_cached_response_refresh() {
    for backend in backends() {
        // Tiny lifetimes: responses valid 8 s, re-signed after 3 s; the signer is renewed at
        // every check (margin larger than its 30-day life).
        let pki = setup(
            backend,
            "validity = \"8s\"\nrefresh_after = \"3s\"\nrefresh_interval = \"1s\"\nbackdate = 0\n\
             signer_renew_margin = \"40d\"\nsigner_check_interval = \"2s\"",
        );
        let server = pki.env.serve();
        let url = server.url("/ocsp");
        let req = pki.request_der(&["-no_nonce"]);
        let (_, first) = post(&url, &req);
        let f1 = pki.env.path().join("first.der");
        std::fs::write(&f1, &first).unwrap();
        let out1 = pki.check_file(&f1);
        assert_status(&out1, "good");
        let responder1 = field(&out1, "Responder Id");
        let this1 = field(&out1, "This Update");

        let deadline = Instant::now() + Duration::from_secs(25);
        let mut rotated = None;
        let mut refreshed = false;
        while Instant::now() < deadline && (rotated.is_none() || !refreshed) {
            std::thread::sleep(Duration::from_millis(700));
            let (_, body) = post(&url, &req);
            let f = pki.env.path().join("now.der");
            std::fs::write(&f, &body).unwrap();
            let out = pki.check_file(&f);
            assert_status(&out, "good");
            // Never an expired answer.
            assert!(!out.contains("Status times invalid"), "{out}");
            if field(&out, "This Update") != this1 {
                refreshed = true;
            }
            if field(&out, "Responder Id") != responder1 {
                rotated = Some(out);
            }
        }
        assert!(refreshed, "the cached response was never refreshed");
        let rotated = rotated.expect("the delegated signer never rotated");
        assert!(rotated.contains("OCSP Signer"), "{rotated}");
        // The response signed by the previous signer still verifies.
        let again = pki.check_file(&f1);
        assert!(again.contains("Response verify OK"), "{again}");
        drop(server);
    }
}

#[test]
fn revocation_through_the_api_is_visible_on_every_replica_when_it_returns() {
    for backend in backends() {
        let pki = setup(backend, "");
        let a = pki.env.serve();
        let b = pki.env.serve();
        let req = pki.request_der(&["-no_nonce"]);
        let (_, before) = post(&b.url("/ocsp"), &req);
        let f = pki.env.path().join("api-before.der");
        std::fs::write(&f, &before).unwrap();
        assert_status(&pki.check_file(&f), "good");

        // A CPO client of the leaf's operator revokes it on replica A over HTTP.
        let client = pki.env.client_add("cpo-ops", "cpo", &["DE*ABC"]);
        let bearer = a.bearer(&client);
        let r = ureq::post(&a.url(&format!(
            "/api/v1/certificates/cpo-sub-ca-2/{}/revoke",
            pki.serial
        )))
        .header("Authorization", &bearer)
        .header("Content-Type", "application/json")
        .send(br#"{"reason":"keyCompromise"}"#.as_slice())
        .unwrap();
        assert_eq!(r.status().as_u16(), 200);

        // The very next answers, from the other replica first, say revoked.
        for (name, server) in [("B", &b), ("A", &a)] {
            let (_, body) = post(&server.url("/ocsp"), &req);
            let f = pki.env.path().join(format!("api-after-{name}.der"));
            std::fs::write(&f, &body).unwrap();
            let out = pki.check_file(&f);
            assert_status(&out, "revoked");
            assert!(
                out.contains("Revocation Reason: keyCompromise"),
                "{name}: {out}"
            );
        }
        drop(a);
        drop(b);
    }
}
