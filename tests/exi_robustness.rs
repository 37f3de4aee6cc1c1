//! Untrusted-input robustness: truncation, oversized lengths, unknown event
//! codes, caps, string-table hits on decode, and a decode/encode property test.

use std::path::{Path, PathBuf};

use pnc_pki::exi::bigint::BigInteger;
use pnc_pki::exi::{CodecError, Message, Schema, iso2, iso20};
use proptest::prelude::*;

fn vdir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/exi")
}

fn vector(rel: &str) -> Vec<u8> {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(vdir().join(rel)).expect("read")).expect("json");
    hex::decode(v["exi_hex"].as_str().expect("hex")).expect("hex")
}

fn samples() -> Vec<Vec<u8>> {
    vec![
        vector("iso15118-2/gen_iso2_CertificateInstallationReq.json"),
        vector("iso15118-2/gen_iso2_CertificateUpdateRes.json"),
        vector("iso15118-20/gen_iso20_CertificateInstallationReq.json"),
        vector("iso15118-20/gen_iso20_CertificateInstallationRes.json"),
    ]
}

/// Minimal MSB-first bit writer to craft hostile streams.
#[derive(Default)]
struct Bits(Vec<bool>);
impl Bits {
    fn n(mut self, v: u64, n: u32) -> Self {
        for i in (0..n).rev() {
            self.0.push(v >> i & 1 == 1);
        }
        self
    }
    fn uint(mut self, mut v: u64) -> Self {
        loop {
            let b = v & 0x7f;
            v >>= 7;
            self = self.n(if v > 0 { b | 0x80 } else { b }, 8);
            if v == 0 {
                return self;
            }
        }
    }
    fn bytes(self) -> Vec<u8> {
        self.0
            .chunks(8)
            .map(|c| {
                c.iter()
                    .enumerate()
                    .fold(0u8, |a, (i, b)| a | (u8::from(*b) << (7 - i)))
            })
            .collect()
    }
}

#[test]
fn every_truncation_is_a_clean_positioned_error() {
    for s in samples() {
        for len in 0..s.len() {
            match Message::decode(&s[..len], None) {
                Err(CodecError::Decode { bit, .. }) => {
                    assert!(bit <= len * 8 + 8, "position {bit} beyond input {len}")
                }
                Err(e) => panic!("unexpected error kind at len {len}: {e}"),
                Ok(_) => panic!("truncated stream of {len} bytes decoded"),
            }
        }
    }
}

#[test]
fn error_message_names_the_position() {
    let s = &samples()[0];
    let err = Message::decode(&s[..100], None).expect_err("truncated");
    let text = err.to_string();
    assert!(text.contains("bit") && text.contains("byte"), "{text}");
}

#[test]
fn trailing_garbage_is_rejected() {
    let mut s = samples()[0].clone();
    s.extend_from_slice(&[0xff, 0xff]);
    assert!(matches!(
        Message::decode(&s, None),
        Err(CodecError::Decode { .. })
    ));
}

#[test]
fn oversized_length_prefix_is_rejected_before_allocating() {
    // DHpublickey fragment: SE(DHpublickey)=45, AT(Id)=0, "id3", CH=0, then a 4 GiB length
    let b = Bits::default()
        .n(0x80, 8)
        .n(45, 8)
        .n(0, 1)
        .uint(5)
        .uint(u64::from(b'i'))
        .uint(u64::from(b'd'))
        .uint(u64::from(b'3'))
        .n(0, 1)
        .uint(0xffff_ffff)
        .n(0, 64);
    let err = iso2::Fragment::decode(&b.bytes()).expect_err("oversized");
    assert!(matches!(err, CodecError::Decode { .. }), "{err}");
    // same for a string (Id) claiming 2^40 characters
    let b = Bits::default()
        .n(0x80, 8)
        .n(45, 8)
        .n(0, 1)
        .uint(1 << 40)
        .n(0, 64);
    assert!(matches!(
        iso2::Fragment::decode(&b.bytes()),
        Err(CodecError::Decode { .. })
    ));
    // and a serial number magnitude longer than any certificate serial
    let mut huge = Bits::default()
        .n(0x80, 8)
        .n(15, 8)
        .n(0, 1)
        .uint(5)
        .uint(73)
        .uint(68)
        .uint(49);
    huge = huge.n(0, 1).n(0, 1).uint(1).n(0, 8).n(0, 1); // OEMProvisioningCert of 1 byte + EE
    huge = huge.n(0, 1).n(0, 1).n(0, 1).uint(3).uint(65).n(0, 1); // List, RootCertificateID, X509IssuerName "A"
    huge = huge.n(0, 1).n(0, 1).n(0, 1);
    for _ in 0..200 {
        huge = huge.n(0xff, 8);
    }
    assert!(matches!(
        iso2::Fragment::decode(&huge.n(0, 64).bytes()),
        Err(CodecError::Decode { .. })
    ));
}

#[test]
fn input_cap() {
    let big = vec![0x80u8; pnc_pki::exi::MAX_INPUT_LEN + 1];
    assert!(matches!(
        Message::decode(&big, None),
        Err(CodecError::InputTooLarge { .. })
    ));
}

#[test]
fn unknown_event_codes_and_unsupported_messages() {
    // -2 document code 77 is not V2G_Message
    let b = Bits::default().n(0x80, 8).n(77, 7).n(0, 32).bytes();
    assert!(matches!(
        Message::decode(&b, Some(Schema::Iso2)),
        Err(CodecError::Decode { .. })
    ));
    // header byte must be 0x80
    let mut s = samples()[0].clone();
    s[0] = 0x81;
    assert!(matches!(
        Message::decode(&s, Some(Schema::Iso2)),
        Err(CodecError::Decode { bit: _, .. })
    ));
    // a SessionSetupReq body (code 29) is unsupported, with a clear message
    let b = Bits::default()
        .n(0x80, 8)
        .n(76, 7)
        .n(0, 1)
        .n(0, 1)
        .n(0, 1)
        .uint(1)
        .n(0xab, 8)
        .n(0, 1)
        .n(2, 2) // header: SessionID, EE
        .n(0, 1)
        .n(29, 6)
        .n(0, 32)
        .bytes();
    let err = Message::decode(&b, None).expect_err("unsupported");
    assert!(
        matches!(&err, CodecError::UnsupportedMessage(m) if m.contains("SessionSetupReq")),
        "{err}"
    );
    // -20 document code 20 is not a certificate message
    let b = Bits::default().n(0x80, 8).n(20, 6).n(0, 32).bytes();
    assert!(matches!(
        Message::decode(&b, Some(Schema::Iso20)),
        Err(CodecError::UnsupportedMessage(_))
    ));
    // fragment code 200 is not a signed element
    let b = Bits::default().n(0x80, 8).n(200, 8).n(0, 8).bytes();
    assert!(matches!(
        iso2::Fragment::decode(&b),
        Err(CodecError::UnsupportedMessage(_))
    ));
    let b = Bits::default().n(0x80, 8).n(300, 9).n(0, 8).bytes();
    assert!(matches!(
        iso20::Fragment::decode(&b),
        Err(CodecError::UnsupportedMessage(_))
    ));
    // escape (undeclared content) inside the Body content is refused
    let b = Bits::default()
        .n(0x80, 8)
        .n(76, 7)
        .n(0, 1)
        .n(0, 1)
        .n(0, 1)
        .uint(1)
        .n(0xab, 8)
        .n(0, 1)
        .n(2, 2)
        .n(0, 1)
        .n(63, 6)
        .n(0, 32)
        .bytes();
    assert!(Message::decode(&b, None).is_err());
}

#[test]
fn string_table_hits_are_tolerated_on_decode_and_never_written() {
    use iso15118::exi::{ExiDocument, ValueCoding};
    let bytes = vector("iso15118-2/gen_iso2_CertificateInstallationRes.json");
    let crate_msg =
        <iso15118::iso2::V2GMessage as ExiDocument>::from_bytes(&bytes).expect("crate decode");
    let referenced = crate_msg
        .to_vec_with(ValueCoding::Referenced)
        .expect("referenced");
    assert!(
        referenced.len() < bytes.len(),
        "the referenced form uses hits"
    );
    let ours = Message::decode(&referenced, None).expect("decode with hits");
    assert_eq!(ours, Message::decode(&bytes, None).expect("literal"));
    assert_eq!(
        ours.encode().expect("enc"),
        bytes,
        "encoder writes literals only"
    );
}

#[test]
fn random_mutations_never_panic() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let legacy = std::fs::read_to_string(vdir().join(
        "iso15118-2/public/citrineos_hubject_legacy_iso2_CertificateInstallationRes_xsitype.b64",
    ))
    .expect("legacy");
    let legacy = pnc_pki::exi::from_raw_or_base64(legacy.as_bytes()).expect("b64");
    let mut all = samples();
    all.push(legacy);
    all.push(
        hex::decode("80ec0202a4a21a4004111154139610cc0c0c0c0c0c0c0c7d3d00")
            .expect("emaid fragment"),
    );
    for s in all {
        for _ in 0..400 {
            let mut m = s.clone();
            for _ in 0..(next() % 4 + 1) {
                let i = (next() as usize) % m.len();
                m[i] ^= 1 << (next() % 8);
            }
            let _ = Message::decode(&m, None);
            let _ = iso2::Fragment::decode(&m);
            let _ = iso20::Fragment::decode(&m);
        }
    }
}

// ---------------------------------------------------------------------------
// property test: decode(encode(m)) == m and encode(decode(b)) == b
// ---------------------------------------------------------------------------

fn ascii(min: usize, max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(0x20u8..0x7f, min..=max)
        .prop_map(|v| v.into_iter().map(char::from).collect())
}

fn serial() -> impl Strategy<Value = BigInteger> {
    (
        any::<bool>(),
        proptest::collection::vec(any::<u8>(), 0..=20),
    )
        .prop_map(|(n, m)| BigInteger::from_sign_magnitude(n, &m))
}

fn roots() -> impl Strategy<Value = Vec<iso2::X509IssuerSerial>> {
    proptest::collection::vec(
        (ascii(0, 80), serial()).prop_map(|(issuer_name, serial_number)| iso2::X509IssuerSerial {
            issuer_name,
            serial_number,
        }),
        1..=20,
    )
}

fn header() -> impl Strategy<Value = iso2::schema::MessageHeader> {
    proptest::collection::vec(any::<u8>(), 1..=8).prop_map(|session_id| {
        iso2::schema::MessageHeader {
            session_id,
            notification: None,
            signature: None,
        }
    })
}

fn chain() -> impl Strategy<Value = iso2::schema::CertificateChain> {
    (
        proptest::option::of(ascii(1, 8)),
        proptest::collection::vec(any::<u8>(), 0..=800),
        proptest::option::of(proptest::collection::vec(
            proptest::collection::vec(any::<u8>(), 0..=100),
            1..=4,
        )),
    )
        .prop_map(|(id, certificate, subs)| iso2::schema::CertificateChain {
            id,
            certificate,
            sub_certificates: subs.map(|certificate| iso2::schema::SubCertificates { certificate }),
        })
}

fn message() -> impl Strategy<Value = iso2::V2gMessage> {
    let install = (
        ascii(1, 10),
        proptest::collection::vec(any::<u8>(), 0..=800),
        roots(),
    )
        .prop_map(|(id, cert, roots)| {
            iso2::Body::CertificateInstallationReq(iso2::CertificateInstallationReq {
                id,
                oem_provisioning_cert: cert,
                list_of_root_certificate_ids: roots,
            })
        });
    let update =
        (ascii(1, 10), chain(), ascii(14, 15), roots()).prop_map(|(id, c, emaid, roots)| {
            iso2::Body::CertificateUpdateReq(iso2::CertificateUpdateReq {
                id,
                contract_signature_cert_chain: c,
                emaid,
                list_of_root_certificate_ids: roots,
            })
        });
    let res = (
        chain(),
        chain(),
        proptest::collection::vec(any::<u8>(), 0..=48),
        proptest::collection::vec(any::<u8>(), 0..=65),
        ascii(14, 15),
    )
        .prop_map(|(sa, mut c, key, dh, emaid)| {
            use iso2::schema as s;
            c.id = Some("ID1".into());
            iso2::Body::CertificateInstallationRes(s::CertificateInstallationRes {
                response_code: s::ResponseCode::OK,
                sa_provisioning_certificate_chain: sa,
                contract_signature_cert_chain: c,
                contract_signature_encrypted_private_key: s::ContractSignatureEncryptedPrivateKey {
                    id: "ID2".into(),
                    value: key,
                },
                dh_public_key: s::DiffieHellmanPublickey {
                    id: "ID3".into(),
                    value: dh,
                },
                e_maid: s::EMAID {
                    id: "ID4".into(),
                    value: emaid,
                },
            })
        });
    (header(), prop_oneof![install, update, res])
        .prop_map(|(header, body)| iso2::V2gMessage { header, body })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn decode_encode_roundtrip(m in message()) {
        let bytes = m.encode().expect("encode");
        let back = iso2::V2gMessage::decode(&bytes).expect("decode");
        prop_assert_eq!(&back, &m);
        prop_assert_eq!(back.encode().expect("re-encode"), bytes);
        for (_, f) in m.signed_fragments().unwrap_or_default() {
            prop_assert_eq!(iso2::Fragment::decode(&f).expect("fragment").encode().expect("enc"), f);
        }
    }

    #[test]
    fn bigint_decimal_roundtrip(v in serial()) {
        prop_assert_eq!(BigInteger::parse_decimal(&v.to_decimal()), Some(v));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let mut b = bytes;
        if !b.is_empty() { b[0] = 0x80; }
        let _ = Message::decode(&b, Some(Schema::Iso2));
        let _ = Message::decode(&b, Some(Schema::Iso20));
        let _ = iso2::Fragment::decode(&b);
        let _ = iso20::Fragment::decode(&b);
        let _ = pnc_pki::exi::xmldsig::decode_signed_info_fragment(&b);
    }
}
