//! Fuzz the OCSP request parser (`pnc_pki::ocsp::wire::parse_request`), and the
//! response encoder on whatever the parser accepts (the responder echoes every
//! accepted CertID and nonce back into a ResponseData).
//!
//! Run: `cargo fuzz run ocsp_request fuzz/corpus/ocsp_request`
#![no_main]

use libfuzzer_sys::fuzz_target;
use pnc_pki::ocsp::wire::{
    CertStatus, MAX_CERT_IDS, SingleResponseSpec, encode_response_data, parse_request,
};

fuzz_target!(|data: &[u8]| {
    let Ok(req) = parse_request(data) else {
        return;
    };
    assert!(!req.cert_ids.is_empty() && req.cert_ids.len() <= MAX_CERT_IDS);
    let singles: Vec<SingleResponseSpec> = req
        .cert_ids
        .iter()
        .map(|id| {
            assert_eq!(id.issuer_name_hash.len(), id.hash_alg.output_len());
            assert_eq!(id.issuer_key_hash.len(), id.hash_alg.output_len());
            assert!(!id.serial.is_empty());
            SingleResponseSpec {
                cert_id_der: id.der.clone(),
                status: CertStatus::Unknown,
                this_update: 1_700_000_000,
                next_update: Some(1_700_086_400),
            }
        })
        .collect();
    let tbs = encode_response_data(&[0; 20], 1_700_000_000, &singles, req.nonce.as_deref());
    assert!(tbs.is_ok(), "accepted request must be answerable: {tbs:?}");
});
