//! In-process scenarios on a deployment made by the real `pnc-pki init`: the library is opened on
//! a `ManualClock`, so tests move time instead of sleeping. SoftHSM2 reads its configuration once
//! per process, so each test binary that uses this module opens exactly one deployment.
#![allow(dead_code)]

use std::time::Duration;

use pnc_pki::clock::{Clock, ManualClock, SharedClock};
use pnc_pki::model::{CertStatus, RevokeOutcome};
use pnc_pki::policy::authz::Principal;
use pnc_pki::service::{self, Mode, Service};
use pnc_pki::store::Store;

use super::common::*;

/// Point the data dir's settings at a PIN file (the test process has no `PNC_HSM_PIN`).
fn use_pin_file(env: &Env) {
    let pin = env.path().join("user.pin");
    std::fs::write(&pin, USER_PIN).unwrap();
    let path = env.path().join("pnc-pki.toml");
    let mut settings: toml::Table =
        toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let hsm = settings
        .entry("hsm")
        .or_insert_with(|| toml::Value::Table(Default::default()));
    hsm.as_table_mut()
        .unwrap()
        .insert("pin_file".into(), pin.display().to_string().into());
    std::fs::write(&path, toml::to_string(&settings).unwrap()).unwrap();
}

/// A deployment made by `init`, opened in this process on a manual clock.
pub struct InProcess<'a> {
    pub env: &'a Env,
    pub clock: std::sync::Arc<ManualClock>,
    pub svc: Service,
    /// A store handle of the test's own, for what a dead replica would have left behind.
    pub store: Store,
    pub op: Principal,
}

/// `init` the deployment of `env` (with the binary), then open it here. `env` outlives the
/// runtime: a PostgreSQL test database is dropped with it, outside any runtime.
pub async fn open(env: &Env) -> InProcess<'_> {
    env.init();
    use_pin_file(env);
    let clock = ManualClock::starting_now();
    let shared: SharedClock = clock.clone();
    let p = service::prepare(env.path()).expect("prepare");
    let svc = service::open_with_clock(&p, Mode::Command, shared.clone())
        .await
        .expect("open");
    let store = Store::connect(&p.settings().database_url, shared)
        .await
        .unwrap();
    InProcess {
        env,
        clock,
        svc,
        store,
        op: Principal::operator("test"),
    }
}

/// A DER CSR for a SECC certificate with a fresh P-256 key.
pub fn secc_csr(evse_id: &str) -> Vec<u8> {
    use openssl::ec::{EcGroup, EcKey};
    use openssl::nid::Nid;
    use openssl::x509::{X509NameBuilder, X509ReqBuilder};
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    let key = openssl::pkey::PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    for (k, v) in [
        ("C", "DE"),
        ("O", "Test CPO"),
        ("DC", "CPO"),
        ("CN", evse_id),
    ] {
        name.append_entry_by_text(k, v).unwrap();
    }
    let mut req = X509ReqBuilder::new().unwrap();
    req.set_subject_name(&name.build()).unwrap();
    req.set_pubkey(&key).unwrap();
    req.sign(&key, openssl::hash::MessageDigest::sha256())
        .unwrap();
    req.build().to_der().unwrap()
}

/// Serials (lower-case hex) a DER CRL lists, read by the openssl CLI, and its number.
fn crl_serials(dir: &std::path::Path, der: &[u8]) -> (Vec<String>, u64, String) {
    let f = dir.join("clock.crl");
    std::fs::write(&f, der).unwrap();
    let (ok, text) = openssl(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        f.to_str().unwrap(),
        "-text",
        "-noout",
    ]);
    assert!(ok, "{text}");
    let serials = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Serial Number: "))
        .map(|s| s.trim().to_ascii_lowercase())
        .collect();
    let number = text
        .lines()
        .skip_while(|l| !l.contains("CRL Number"))
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .expect("CRL number");
    (serials, number, text)
}

/// Revoked certificates stay on their CA's CRL until they expire, and leave it then: shown by
/// moving the clock two days forward instead of waiting.
pub async fn expired_certificates_leave_the_crl(t: &InProcess<'_>) {
    let ra = &t.svc.ra;
    let short = ra
        .issue_from_csr(
            &t.op,
            "secc-leaf",
            &secc_csr("DE*ABC*E0000001"),
            None,
            Some(1),
        )
        .await
        .unwrap();
    let long = ra
        .issue_from_csr(
            &t.op,
            "secc-leaf",
            &secc_csr("DE*ABC*E0000002"),
            None,
            Some(30),
        )
        .await
        .unwrap();
    let issuer = short.record.issuer_id.clone();
    for c in [&short, &long] {
        let r = ra
            .revoke(
                &t.op,
                &c.record.issuer_id,
                &c.record.serial_hex,
                "keyCompromise",
            )
            .await
            .unwrap();
        assert_eq!(r.outcome, RevokeOutcome::Revoked);
        assert_eq!(r.record.status, CertStatus::Revoked);
    }
    let crl = ra.crl(&issuer).await.unwrap();
    let (listed, n1, _) = crl_serials(t.env.path(), &crl.der);
    assert!(listed.contains(&short.record.serial_hex), "{listed:?}");
    assert!(listed.contains(&long.record.serial_hex), "{listed:?}");
    assert_eq!(crl.this_update, t.clock.now());

    t.clock.advance_secs(2 * 86_400);
    let crl = ra.crl(&issuer).await.unwrap();
    let (listed, n2, text) = crl_serials(t.env.path(), &crl.der);
    assert!(
        !listed.contains(&short.record.serial_hex),
        "an expired certificate is still listed: {text}"
    );
    assert!(listed.contains(&long.record.serial_hex), "{text}");
    assert!(n2 > n1, "CRL number {n1} then {n2}");
    assert_eq!(
        crl.this_update,
        t.clock.now(),
        "thisUpdate comes from the injected clock"
    );
    let audited = ra
        .audit_entries(
            &t.op,
            &pnc_pki::model::AuditFilter {
                action_prefix: Some("crl.issued".into()),
                limit: Some(1000),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(
        audited
            .iter()
            .any(|e| e.target == issuer && e.details.contains(&format!("\"number\":{n2}"))),
        "the CRL is audited with its number: {audited:?}"
    );
}

/// A revoker waits for a replica that died holding a lease (it never acknowledges), and returns
/// once that lease has run out by the clock; the revocation itself committed at once.
pub async fn revoker_waits_for_a_dead_replicas_lease(t: &InProcess<'_>) {
    let ra = t.svc.ra.clone();
    let c = ra
        .issue_from_csr(&t.op, "secc-leaf", &secc_csr("DE*ABC*E0000003"), None, None)
        .await
        .unwrap();
    // What a replica killed with -9 leaves: a row with a lease 30 s ahead, never renewed again.
    let epoch = t.store.ocsp_epoch().await.unwrap();
    t.store
        .ocsp_register_replica("dead-replica", epoch)
        .await
        .unwrap();
    let lease_ms = 30_000;
    assert!(
        t.store
            .ocsp_renew_lease("dead-replica", epoch, t.clock.now_ms() + lease_ms)
            .await
            .unwrap()
    );
    let (issuer, serial) = (c.record.issuer_id.clone(), c.record.serial_hex.clone());
    let op = t.op.clone();
    let revoke = tokio::spawn(async move { ra.revoke(&op, &issuer, &serial, "superseded").await });
    // The revocation is committed and the revoker is waiting for the lease.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let row = t
            .store
            .get_cert(&c.record.issuer_id, &c.record.serial_hex)
            .await
            .unwrap()
            .unwrap();
        if row.status == CertStatus::Revoked {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "revocation never committed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(
            !revoke.is_finished(),
            "returned while a replica could still answer good"
        );
    }
    // Not yet: the lease has a second left (plus the tolerated clock skew).
    t.clock.advance_ms(lease_ms - 1_000);
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!revoke.is_finished(), "returned before the lease ran out");
    }
    t.clock
        .advance_ms(1_000 + pnc_pki::ocsp::freshness::CLOCK_SKEW_MS + 1);
    let done = tokio::time::timeout(Duration::from_secs(10), revoke)
        .await
        .expect("the revoker returns once the lease has run out")
        .unwrap()
        .unwrap();
    assert_eq!(done.outcome, RevokeOutcome::Revoked);

    // A client that timed out and retries gets "already revoked", and that answer too waits until
    // no replica holding a lease can still answer good. Here the replica took a new lease and
    // then died again while another revocation was under way.
    let d = t
        .svc
        .ra
        .issue_from_csr(&t.op, "secc-leaf", &secc_csr("DE*ABC*E0000004"), None, None)
        .await
        .unwrap();
    let epoch = t.store.ocsp_epoch().await.unwrap();
    assert!(
        t.store
            .ocsp_renew_lease("dead-replica", epoch, t.clock.now_ms() + lease_ms)
            .await
            .unwrap()
    );
    let spawn_revoke = |issuer: String, serial: String| {
        let (ra, op) = (t.svc.ra.clone(), t.op.clone());
        tokio::spawn(async move { ra.revoke(&op, &issuer, &serial, "superseded").await })
    };
    let other = spawn_revoke(d.record.issuer_id.clone(), d.record.serial_hex.clone());
    while t.store.ocsp_epoch().await.unwrap() == epoch {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let retry = spawn_revoke(c.record.issuer_id.clone(), c.record.serial_hex.clone());
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(
            !retry.is_finished(),
            "the retry returned while a replica could answer good"
        );
        assert!(!other.is_finished());
    }
    t.clock
        .advance_ms(lease_ms + pnc_pki::ocsp::freshness::CLOCK_SKEW_MS + 1);
    for (task, want) in [
        (retry, RevokeOutcome::AlreadyRevoked),
        (other, RevokeOutcome::Revoked),
    ] {
        let r = tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("returns once the lease has run out")
            .unwrap()
            .unwrap();
        assert_eq!(r.outcome, want);
    }
    t.store
        .ocsp_deregister_replica("dead-replica")
        .await
        .unwrap();
}

/// The CPS leaf key signs ISO 15118 XML signatures through `Ca::cps_signer` (the `RawSigner`
/// the provisioning flow uses), for both standards; the signatures verify with the CPS leaf
/// certificate, and a changed fragment does not.
pub async fn cps_key_signs_exi_signatures(t: &InProcess<'_>) {
    use pnc_pki::ca::{Ca, CaConfig};
    use pnc_pki::exi::xmldsig::{self, Suite, VerifyingKey};
    use pnc_pki::policy::profile::{Profiles, Standard};
    let settings = pnc_pki::config::Settings::load(t.env.path()).unwrap();
    let hsm = pnc_pki::hsm::Hsm::open(&settings.hsm_config(t.env.path()).unwrap()).unwrap();
    let ca = Ca::new(CaConfig {
        hsm,
        store: t.store.clone(),
        profiles: Profiles::load(None).unwrap(),
        public_url: settings.public_url.clone(),
        crl_validity: 86_400,
        clock: t.clock.clone(),
    });
    for (standard, suite, sub2) in [
        (Standard::Iso2, Suite::EcdsaP256Sha256, "cps-sub-ca-2"),
        (Standard::Iso20, Suite::EcdsaP521Sha512, "cps-sub-ca-2-20"),
    ] {
        let signer = ca.cps_signer(standard).await.unwrap();
        assert_eq!(signer.chain.len(), 3, "sub-CA 2, sub-CA 1, root");
        assert_eq!(
            signer.cert.tbs().issuer(),
            signer.chain[0].tbs().subject(),
            "issued by {sub2}"
        );
        let cert = signer.cert.der.clone();
        let fragment = vec![0x80, 0x4c, 0x01, 0x02, 0x03, 0x04];
        let f2 = fragment.clone();
        let sig = tokio::task::spawn_blocking(move || {
            xmldsig::sign(suite, &[("id1", f2.as_slice())], &signer)
        })
        .await
        .unwrap()
        .expect("signed in the HSM");
        let key = VerifyingKey::from_certificate(&cert).unwrap();
        let report = xmldsig::verify(&sig, &[("id1".to_string(), fragment.clone())], &key).unwrap();
        assert!(report.is_valid(), "{standard:?}: {report:?}");
        let mut changed = fragment;
        changed[3] ^= 1;
        let report = xmldsig::verify(&sig, &[("id1".to_string(), changed)], &key).unwrap();
        assert!(
            !report.is_valid(),
            "{standard:?}: a changed fragment verified"
        );
    }
}

/// Single-flight CRLs: once the stored CRL is past half its life, 40 concurrent requests for it
/// make exactly one new CRL (the staleness is checked again under the generation lock), not 40.
pub async fn a_stale_crl_is_regenerated_once_for_concurrent_requests(t: &InProcess<'_>) {
    let ra = &t.svc.ra;
    let issuer = "cpo-sub-ca-2";
    let before = ra.crl(issuer).await.unwrap();
    t.clock
        .advance_secs((before.next_update - before.this_update) / 2 + 1);
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let ra = ra.clone();
            tokio::spawn(async move { ra.crl(issuer).await.unwrap().crl_number })
        })
        .collect();
    let mut numbers = std::collections::BTreeSet::new();
    for task in tasks {
        numbers.insert(task.await.unwrap());
    }
    assert_eq!(
        numbers.into_iter().collect::<Vec<_>>(),
        vec![before.crl_number + 1],
        "one new CRL for every request"
    );
}
