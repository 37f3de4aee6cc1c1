//! A second PKCS#11 implementation: kryoptic (a software token from crates.io, built by
//! hsm/build-kryoptic.sh), reached only through `PNC_HSM_MODULE` and `PNC_HSM_TOKEN_LABEL` like
//! any vendor module (plus `KRYOPTIC_CONF`, kryoptic's own configuration). `init` runs on it and
//! the token is read back through PKCS#11 with the same checks as tests/hsm_token.rs, then `serve`
//! enrolls a SECC over the API and answers OCSP for it. Issuance of every leaf profile, contract
//! provisioning and OCSP signing on kryoptic run in tests/ca_issue.rs, tests/provisioning.rs and
//! tests/ocsp_openssl.rs (their tests over `every_deployment()`).
//!
//! The module path comes from `PNC_TEST_KRYOPTIC_MODULE`; under CI a missing module fails.
//! This file holds one test so that its process owns `KRYOPTIC_CONF` (read at C_Initialize).

mod common;

use common::*;
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};

#[test]
fn kryoptic_token_holds_the_ca_keys_like_softhsm() {
    let Some(env) = Env::kryoptic(Backend::Sqlite) else {
        return; // reported loudly by kryoptic_module(); under CI it panicked instead
    };
    let Token::Kryoptic { module, conf } = env.token.clone() else {
        unreachable!()
    };
    let out = env.init();
    assert!(out.contains("created 53 items"), "{out}");
    let settings = std::fs::read_to_string(env.path().join("pnc-pki.toml")).unwrap();
    assert!(
        settings.contains(KRYOPTIC_LABEL) && settings.contains(&*module.to_string_lossy()),
        "{settings}"
    );
    // Nothing of SoftHSM2 was made: the service used the configured module.
    assert!(!env.path().join("hsm/softhsm2.conf").exists());

    // A token that is not there, and a wrong PIN: one clear line each, nothing touched.
    let o = env
        .command()
        .env("PNC_HSM_TOKEN_LABEL", "no-such-token")
        .args(["hsm", "doctor", "--data-dir", &env.data_dir()])
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && e.contains("no-such-token"), "{e}");
    let o = env
        .command()
        .env("PNC_HSM_PIN", "wrong-pin-000")
        .args(["hsm", "doctor", "--data-dir", &env.data_dir()])
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && e.contains("PIN is incorrect"), "{e}");

    // SAFETY: set before any PKCS#11 call in this process and before this test starts threads;
    // single test per file.
    unsafe { std::env::set_var("KRYOPTIC_CONF", &conf) };
    let ctx = Pkcs11::new(&module).unwrap();
    ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .unwrap();
    let info = ctx.get_library_info().unwrap();
    assert!(
        info.manufacturer_id().contains("Kryoptic"),
        "{}",
        info.manufacturer_id()
    );
    token::check_token(&env, &ctx, &module, KRYOPTIC_LABEL);

    // `serve` on it (while this process keeps the token open too): a SECC enrolls over the API,
    // the certificate verifies to the V2G root, OCSP answers for it, signed on the token.
    let export = env.export();
    let cpo = env.client_add("cpo", "cpo", &["DE*ABC"]);
    let srv = env.serve();
    let r = srv.enroll_secc(
        &srv.bearer(&cpo),
        &env.csr_b64("secc", "/C=DE/O=Test CPO/DC=CPO/CN=DEABCE12345"),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let (_, leaf) = pkcs7_leaf(env.path(), "secc", &r.text());
    let chain = env.path().join("untrusted.pem");
    let mut c = std::fs::read(export.join("cpo-sub-ca-2.pem")).unwrap();
    c.extend(std::fs::read(export.join("cpo-sub-ca-1.pem")).unwrap());
    std::fs::write(&chain, c).unwrap();
    let (ok, out) = openssl(&[
        "verify",
        "-CAfile",
        export.join("v2g-root.pem").to_str().unwrap(),
        "-untrusted",
        chain.to_str().unwrap(),
        leaf.to_str().unwrap(),
    ]);
    assert!(ok && out.contains(": OK"), "{out}");
    assert_eq!(
        ocsp_status(&srv.url(""), &export.join("cpo-sub-ca-2.pem"), &leaf),
        "good"
    );
    let ready = reply(http().get(&srv.url("/health/ready")).call());
    assert_eq!(ready.status, 200, "{}", ready.text());
}
