//! Fuzz PKCS#10 intake (`pnc_pki::x509::csr::parse_and_verify`): PEM, base64
//! DER or raw DER, parsed and its self-signature verified with OpenSSL. It
//! returns a `Result`; the only requirement is that it never panics (and that
//! an accepted CSR respects the documented size cap).
//!
//! Run: `RUSTC_BOOTSTRAP=1 cargo fuzz run csr_parse corpus/csr_parse -- -max_len=20000`
#![no_main]

use libfuzzer_sys::fuzz_target;
use pnc_pki::x509::csr::{MAX_CSR_LEN, parse_and_verify};

fuzz_target!(|data: &[u8]| {
    if let Ok(csr) = parse_and_verify(data) {
        assert!(csr.der.len() <= MAX_CSR_LEN);
    }
});
