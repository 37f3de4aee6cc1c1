//! Signing/verification tests: 128-bit serial request built from scratch,
//! and the negative cases (flipped bit, wrong signer, forbidden SignedInfo).

use std::path::{Path, PathBuf};

use base64::Engine;
use pnc_pki::exi::bigint::BigInteger;
use pnc_pki::exi::xmldsig::{self, SignatureError, Suite, VerifyingKey};
use pnc_pki::exi::{Message, Schema, iso2, iso20};

fn vdir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/exi")
}

fn json(rel: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(vdir().join(rel)).expect("read")).expect("json")
}

fn b64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .expect("b64")
}

struct P256Signer(p256::ecdsa::SigningKey);
impl xmldsig::RawSigner for P256Signer {
    fn sign_digest(&self, digest: &[u8]) -> Result<Vec<u8>, xmldsig::SignerError> {
        use p256::ecdsa::signature::hazmat::PrehashSigner;
        let s: p256::ecdsa::Signature = self.0.sign_prehash(digest)?;
        Ok(s.to_bytes().to_vec())
    }
}

fn pki() -> serde_json::Value {
    json("iso15118-2/gen_iso2_test_pki.json")
}

fn cert(name: &str) -> Vec<u8> {
    b64(pki()["certificates_der_b64"][name].as_str().expect("cert"))
}

fn signer(name: &str) -> P256Signer {
    let k = hex::decode(pki()["private_keys_hex"][name].as_str().expect("key")).expect("hex");
    P256Signer(p256::ecdsa::SigningKey::from_slice(&k).expect("key"))
}

fn decode2(bytes: &[u8]) -> iso2::V2gMessage {
    match Message::decode(bytes, Some(Schema::Iso2)).expect("decode") {
        Message::Iso2(m) => m,
        Message::Iso20(_) => panic!("schema"),
    }
}

fn verify2(m: &iso2::V2gMessage, cert: &[u8]) -> Result<xmldsig::VerifyReport, SignatureError> {
    let key = VerifyingKey::from_certificate(cert)?;
    xmldsig::verify(
        m.header.signature.as_ref().ok_or(SignatureError::Missing)?,
        &m.signed_fragments()?,
        &key,
    )
}

/// Hubject's V2G root serial (128 bits) as seen in its production chain.
const SERIAL_128: &str = "7b31d02052e7423a8475e9b615f3bf11";

fn big_serial_request() -> iso2::V2gMessage {
    let serial = BigInteger::from_be_bytes(&hex::decode(SERIAL_128).expect("hex"));
    assert!(serial.to_i128().is_none() || serial.magnitude().len() == 16);
    let req = iso2::CertificateInstallationReq {
        id: "ID1".into(),
        oem_provisioning_cert: cert("oemprov"),
        list_of_root_certificate_ids: vec![
            iso2::X509IssuerSerial {
                issuer_name: "DC=V2G,C=DE,O=Hubject GmbH,CN=V2G Root CA QA G1".into(),
                serial_number: serial,
            },
            iso2::X509IssuerSerial {
                issuer_name: "CN=V2GRootCA-Test".into(),
                serial_number: BigInteger::from(1001),
            },
        ],
    };
    let frag = req.to_fragment().expect("fragment");
    let sig = xmldsig::sign(
        Suite::EcdsaP256Sha256,
        &[("ID1", &frag)],
        &signer("oemprov"),
    )
    .expect("sign");
    iso2::V2gMessage {
        header: iso2::schema::MessageHeader {
            session_id: vec![0x4a, 0x5b, 0x6c, 0x7d, 0x8e, 0x9f, 0, 0x11],
            notification: None,
            signature: Some(sig),
        },
        body: iso2::Body::CertificateInstallationReq(req),
    }
}

#[test]
fn request_with_128_bit_root_serial_roundtrips_and_verifies() {
    let m = big_serial_request();
    let bytes = m.encode().expect("encode");
    let back = decode2(&bytes);
    assert_eq!(back, m);
    assert_eq!(back.encode().expect("re-encode"), bytes, "byte for byte");
    let iso2::Body::CertificateInstallationReq(r) = &back.body else {
        panic!("body")
    };
    assert_eq!(
        hex::encode(r.list_of_root_certificate_ids[0].serial_number.magnitude()),
        SERIAL_128
    );
    assert_eq!(
        r.list_of_root_certificate_ids[0].serial_number.to_decimal(),
        "163753687329768964350198339356358590225"
    );
    let report = verify2(&back, &r.oem_provisioning_cert).expect("profile");
    assert!(report.is_valid(), "{report:?}");
    // the iso15118 crate (i64 serial) cannot decode this request: that is why we own it
    assert!(
        <iso15118::iso2::V2GMessage as iso15118::exi::ExiDocument>::from_bytes(&bytes).is_err()
    );
}

#[test]
fn iso20_request_with_128_bit_root_serial_roundtrips() {
    let v = json("iso15118-20/gen_iso20_CertificateInstallationReq.json");
    let Message::Iso20(iso20::Message::CertificateInstallationReq(mut req)) = Message::decode(
        &hex::decode(v["exi_hex"].as_str().expect("hex")).expect("hex"),
        None,
    )
    .expect("decode") else {
        panic!("req")
    };
    req.list_of_root_certificate_ids[0].serial_number =
        BigInteger::from_be_bytes(&hex::decode(SERIAL_128).expect("hex"));
    let m = iso20::Message::CertificateInstallationReq(req);
    let bytes = m.encode().expect("enc");
    assert_eq!(iso20::Message::decode(&bytes).expect("dec"), m);
    // negative serials too (xs:integer)
    let mut neg = m.clone();
    if let iso20::Message::CertificateInstallationReq(r) = &mut neg {
        r.list_of_root_certificate_ids[0].serial_number =
            BigInteger::parse_decimal("-170141183460469231731687303715884105729").expect("p");
    }
    let nb = neg.encode().expect("enc");
    assert_eq!(iso20::Message::decode(&nb).expect("dec"), neg);
}

fn gen_res() -> iso2::V2gMessage {
    let v = json("iso15118-2/gen_iso2_CertificateInstallationRes.json");
    decode2(&hex::decode(v["exi_hex"].as_str().expect("hex")).expect("hex"))
}

#[test]
fn flipped_bit_in_signed_element_is_a_digest_mismatch() {
    let mut m = gen_res();
    let iso2::Body::CertificateInstallationRes(r) = &mut m.body else {
        panic!("body")
    };
    r.dh_public_key.value[10] ^= 0x01;
    let bytes = m.encode().expect("enc");
    let back = decode2(&bytes);
    let report = verify2(&back, &cert("cpsleaf")).expect("profile");
    assert!(!report.is_valid());
    let bad: Vec<_> = report
        .references
        .iter()
        .filter(|r| !r.ok())
        .map(|r| r.uri.clone())
        .collect();
    assert_eq!(bad, vec!["#ID3".to_string()]);
    assert!(matches!(report.into_result(), Err(SignatureError::DigestMismatch(u)) if u == "#ID3"));

    // a flipped bit in the eMAID (element fragment grammar) is caught as well
    let mut m = gen_res();
    let iso2::Body::CertificateInstallationRes(r) = &mut m.body else {
        panic!("body")
    };
    r.e_maid.value.replace_range(0..1, "X");
    assert!(
        matches!(verify2(&m, &cert("cpsleaf")).expect("p").into_result(), Err(SignatureError::DigestMismatch(u)) if u == "#ID4")
    );
}

#[test]
fn flipped_bit_in_signature_value_or_signed_info_fails() {
    let mut m = gen_res();
    m.header
        .signature
        .as_mut()
        .expect("sig")
        .signature_value
        .value[5] ^= 0x80;
    assert!(matches!(
        verify2(&m, &cert("cpsleaf")).expect("p").into_result(),
        Err(SignatureError::BadSignature)
    ));
    let mut m = gen_res();
    m.header
        .signature
        .as_mut()
        .expect("sig")
        .signed_info
        .reference[0]
        .digest_value[0] ^= 1;
    let report = verify2(&m, &cert("cpsleaf")).expect("p");
    assert!(report.signature.is_err());
    assert!(!report.references[0].ok());
}

#[test]
fn wrong_signer_is_a_signature_error() {
    let m = gen_res();
    for wrong in ["oemprov", "cpssub2", "v2groot"] {
        let report = verify2(&m, &cert(wrong)).expect("profile");
        assert!(report.references.iter().all(|r| r.ok()));
        assert!(
            matches!(report.signature, Err(SignatureError::BadSignature)),
            "{wrong}"
        );
    }
    // a P-521 key for a P-256 signature is refused
    let p521 = b64(
        json("iso15118-20/gen_iso20_test_pki.json")["certificates_der_b64"]["cpsleaf"]
            .as_str()
            .expect("c"),
    );
    assert!(matches!(
        verify2(&m, &p521).expect("p").signature,
        Err(SignatureError::Key(_))
    ));
}

fn forbidden(mutate: impl Fn(&mut iso15118::iso2::Signature)) -> SignatureError {
    let mut m = gen_res();
    mutate(m.header.signature.as_mut().expect("sig"));
    match verify2(&m, &cert("cpsleaf")) {
        Err(e) => e,
        Ok(r) => panic!("accepted: {r:?}"),
    }
}

#[test]
fn signed_info_profile_violations_are_rejected_before_hashing() {
    use iso15118::iso2 as s;
    assert!(matches!(
        forbidden(|g| g.signed_info.id = Some("x".into())),
        SignatureError::Forbidden(_)
    ));
    assert!(matches!(
        forbidden(|g| g.signature_value.id = Some("x".into())),
        SignatureError::Forbidden(_)
    ));
    assert!(matches!(
        forbidden(|g| g.signed_info.signature_method.hmac_output_length = Some(128)),
        SignatureError::Forbidden(_)
    ));
    assert!(matches!(
        forbidden(|g| g.signed_info.reference[0].r#type = Some("t".into())),
        SignatureError::Forbidden(_)
    ));
    assert!(matches!(
        forbidden(|g| g.signed_info.signature_method.algorithm =
            "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256".into()),
        SignatureError::UnknownAlgorithm(_)
    ));
    assert!(matches!(
        forbidden(|g| g.signed_info.canonicalization_method.algorithm =
            "http://www.w3.org/2001/10/xml-exc-c14n#".into()),
        SignatureError::UnknownAlgorithm(_)
    ));
    assert!(matches!(
        forbidden(|g| g.signed_info.reference[0].digest_method.algorithm =
            "http://www.w3.org/2000/09/xmldsig#sha1".into()),
        SignatureError::UnknownAlgorithm(_)
    ));
    // XPath / any other transform
    assert!(matches!(
        forbidden(
            |g| g.signed_info.reference[0].transforms = Some(s::Transforms {
                transform: vec![s::Transform {
                    algorithm: "http://www.w3.org/TR/1999/REC-xpath-19991116".into()
                }]
            })
        ),
        SignatureError::UnknownAlgorithm(_)
    ));
    // more than one transform
    assert!(matches!(
        forbidden(|g| g.signed_info.reference[0]
            .transforms
            .as_mut()
            .expect("t")
            .transform
            .push(s::Transform {
                algorithm: xmldsig::CANONICAL_EXI.into()
            })),
        SignatureError::Forbidden(_)
    ));
    // five references
    assert!(matches!(
        forbidden(|g| {
            let r = g.signed_info.reference[0].clone();
            g.signed_info.reference.push(r)
        }),
        SignatureError::TooManyReferences(5)
    ));
    // duplicate / unknown URIs
    assert!(matches!(
        forbidden(|g| g.signed_info.reference[1].uri = g.signed_info.reference[0].uri.clone()),
        SignatureError::Forbidden(_)
    ));
    assert!(matches!(
        forbidden(|g| g.signed_info.reference[0].uri = Some("#nope".into())),
        SignatureError::UnknownReference(_)
    ));
    assert!(matches!(
        forbidden(|g| g.signed_info.reference[0].uri = Some("http://x/".into())),
        SignatureError::Forbidden(_)
    ));
    // building with more than 4 elements is refused too
    let f = [0x80u8];
    assert!(matches!(
        xmldsig::build_signed_info(
            Suite::EcdsaP256Sha256,
            &[("a", &f), ("b", &f), ("c", &f), ("d", &f), ("e", &f)]
        ),
        Err(SignatureError::TooManyReferences(5))
    ));
}

fn bits_of(bytes: &[u8]) -> Vec<bool> {
    bytes
        .iter()
        .flat_map(|b| (0..8).rev().map(move |i| b >> i & 1 == 1))
        .collect()
}

fn bytes_of(bits: &[bool]) -> Vec<u8> {
    bits.chunks(8)
        .map(|c| {
            c.iter()
                .enumerate()
                .fold(0u8, |a, (i, b)| a | (u8::from(*b) << (7 - i)))
        })
        .collect()
}

#[test]
fn signature_with_key_info_or_object_is_rejected() {
    // After SignatureValue the Signature grammar offers KeyInfo (0), Object (1), EE (2)
    // in 2 bits. Rewrite the EE into KeyInfo / Object and the decoder must refuse.
    let m = gen_res();
    let bytes = m.encode().expect("enc");
    let sv = bits_of(
        &m.header
            .signature
            .as_ref()
            .expect("sig")
            .signature_value
            .value,
    );
    let bits = bits_of(&bytes);
    let start = (0..bits.len() - sv.len())
        .find(|&i| bits[i..i + sv.len()] == sv[..])
        .expect("signature value in stream");
    let code_at = start + sv.len() + 1; // + EE of SignatureValue
    assert_eq!(
        &bits[code_at..code_at + 2],
        &[true, false],
        "EE(Signature) is code 2"
    );
    for (code, what) in [([false, false], "KeyInfo"), ([false, true], "Object")] {
        let mut b = bits.clone();
        b[code_at..code_at + 2].copy_from_slice(&code);
        let err = Message::decode(&bytes_of(&b), None).expect_err(what);
        assert!(err.to_string().contains("bit"), "{what}: {err}");
    }
}

#[test]
fn response_signing_end_to_end() {
    // sign a response with the CPS key and verify it after an encode/decode cycle
    let mut m = gen_res();
    m.header.signature = None;
    let frags = m.signed_fragments().expect("frags");
    let refs: Vec<(&str, &[u8])> = frags
        .iter()
        .map(|(i, f)| (i.as_str(), f.as_slice()))
        .collect();
    m.header.signature =
        Some(xmldsig::sign(Suite::EcdsaP256Sha256, &refs, &signer("cpsleaf")).expect("sign"));
    let back = decode2(&m.encode().expect("enc"));
    assert!(verify2(&back, &cert("cpsleaf")).expect("p").is_valid());
    // a signer returning DER instead of raw r||s is refused
    struct Der;
    impl xmldsig::RawSigner for Der {
        fn sign_digest(&self, _: &[u8]) -> Result<Vec<u8>, xmldsig::SignerError> {
            Ok(vec![0x30; 71])
        }
    }
    assert!(matches!(
        xmldsig::sign(Suite::EcdsaP256Sha256, &refs, &Der),
        Err(SignatureError::Signer(_))
    ));
}

#[test]
fn message_sign_and_verify_helpers() {
    // -2: re-sign the generated response with the CPS key (RFC 6979) -> the vector's bytes
    let v = json("iso15118-2/gen_iso2_CertificateUpdateReq.json");
    let bytes = hex::decode(v["exi_hex"].as_str().expect("hex")).expect("hex");
    let mut m = decode2(&bytes);
    m.sign(&signer("contract")).expect("sign");
    assert_eq!(m.encode().expect("enc"), bytes);
    assert!(
        m.verify(&VerifyingKey::from_certificate(&cert("contract")).expect("k"))
            .expect("p")
            .is_valid()
    );
    // -20: sign a request with a P-256 test key, verify
    let v = json("iso15118-20/gen_iso20_CertificateInstallationReq.json");
    let Message::Iso20(mut m) = Message::decode(
        &hex::decode(v["exi_hex"].as_str().expect("hex")).expect("hex"),
        None,
    )
    .expect("d") else {
        panic!("iso20")
    };
    m.sign(Suite::EcdsaP256Sha256, &signer("oemprov"))
        .expect("sign");
    let back = iso20::Message::decode(&m.encode().expect("enc")).expect("dec");
    assert!(
        back.verify(&VerifyingKey::from_certificate(&cert("oemprov")).expect("k"))
            .expect("p")
            .is_valid()
    );
    assert!(matches!(
        back.verify(&VerifyingKey::from_certificate(&cert("cpsleaf")).expect("k"))
            .expect("p")
            .signature,
        Err(SignatureError::BadSignature)
    ));
}
