//! ISO 15118-2 V2G_Message decoding of untrusted bytes: never panic, and
//! whatever decodes must re-encode and decode to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pnc_pki::exi::{Message, Schema};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Message::decode(data, Some(Schema::Iso2)) {
        let bytes = m.encode().expect("a decoded message re-encodes");
        let back = Message::decode(&bytes, Some(Schema::Iso2)).expect("re-encoded bytes decode");
        assert_eq!(back, m);
        let _ = m.clone();
        if let Message::Iso2(v) = &m {
            let _ = v.signed_fragments();
        }
    }
});
