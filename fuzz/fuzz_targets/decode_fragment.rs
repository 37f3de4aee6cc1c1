//! Fragment decoding (-2 signed elements incl. the eMAID element fragment,
//! -20 fragments, xmldsig SignedInfo) of untrusted bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pnc_pki::exi::{iso2, iso20, xmldsig};

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = iso2::Fragment::decode(data) {
        let bytes = f.encode().expect("re-encodes");
        assert_eq!(iso2::Fragment::decode(&bytes).expect("decodes"), f);
    }
    if let Ok(f) = iso20::Fragment::decode(data) {
        let bytes = f.encode().expect("re-encodes");
        assert_eq!(iso20::Fragment::decode(&bytes).expect("decodes"), f);
    }
    if let Ok(si) = xmldsig::decode_signed_info_fragment(data) {
        let bytes = xmldsig::signed_info_fragment(&si).expect("re-encodes");
        assert_eq!(
            xmldsig::decode_signed_info_fragment(&bytes).expect("decodes"),
            si
        );
    }
});
