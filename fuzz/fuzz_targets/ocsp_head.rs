//! Fuzz the request-head classifier of the direct OCSP path
//! (`pnc_pki::server::classify`): never panic, and whatever it takes as OCSP
//! must be something the direct path can act on safely.
//!
//! Run: `RUSTC_BOOTSTRAP=1 cargo fuzz run ocsp_head corpus/ocsp_head -- -max_len=10240`
#![no_main]

use libfuzzer_sys::fuzz_target;
use pnc_pki::ocsp::http::MAX_BODY_LEN;
use pnc_pki::server::{Classified, classify};

fuzz_target!(|data: &[u8]| {
    if let Classified::Ocsp {
        get,
        path,
        head_len,
        body_len,
    } = classify(data)
    {
        assert!(
            head_len <= data.len(),
            "head_len {head_len} > input {}",
            data.len()
        );
        assert!(path.starts_with("/ocsp"), "path {path:?}");
        assert!(
            body_len <= MAX_BODY_LEN,
            "body_len {body_len} > {MAX_BODY_LEN}"
        );
        assert!(!get || body_len == 0, "GET with body_len {body_len}");
    }
});
