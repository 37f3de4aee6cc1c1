//! ISO 15118-20 CertificateInstallationReq/Res decoding of untrusted bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pnc_pki::exi::{Message, Schema};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Message::decode(data, Some(Schema::Iso20)) {
        let bytes = m.encode().expect("a decoded message re-encodes");
        let back = Message::decode(&bytes, Some(Schema::Iso20)).expect("re-encoded bytes decode");
        assert_eq!(back, m);
        if let Message::Iso20(v) = &m {
            let _ = v.signed_fragments();
        }
    }
});
