//! The token itself, read through PKCS#11 by this test (not by our HSM layer): every key the CA
//! holds is a private, sensitive, never-extractable token object; contract keys never become token
//! objects; a lost login/session is recovered without restarting. (A wrong PIN through a fresh
//! process is covered in tests/ca_issue.rs; the same checks on kryoptic in tests/kryoptic.rs.)
//!
//! This file holds one test so that its process owns the SoftHSM2 configuration (SoftHSM2 reads
//! SOFTHSM2_CONF once, at C_Initialize).

mod common;

use common::*;
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};

#[test]
fn ca_keys_are_sensitive_and_non_extractable_and_sessions_recover() {
    let env = Env::new(Backend::Sqlite);
    env.init();
    let conf = env.path().join("hsm").join("softhsm2.conf");
    // SAFETY: set before any PKCS#11 call and before this test starts threads; single test per file.
    unsafe { std::env::set_var("SOFTHSM2_CONF", &conf) };
    let module = pnc_pki::hsm::softhsm::find_module().expect("softhsm2 installed");
    let ctx = Pkcs11::new(&module).unwrap();
    ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .unwrap();
    token::check_token(&env, &ctx, &module, "pnc-pki");
}
