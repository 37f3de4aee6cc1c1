//! PKCS#10 certification requests: parse, verify the self-signature, and extract what issuance needs.

use der::asn1::ObjectIdentifier;
use der::{Decode, Encode};
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::ext::Extension;
use x509_cert::name::RdnSequence;
use x509_cert::request::CertReq;

/// Hard cap on CSR size (OCPP caps `SignCertificateRequest.csr` at 5500 characters).
pub const MAX_CSR_LEN: usize = 8192;

const OID_EXTENSION_REQUEST: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.14");

/// A parsed CSR whose self-signature verified.
#[derive(Debug)]
pub struct Csr {
    /// The request, DER.
    pub der: Vec<u8>,
    /// The subject it asks for (checked by policy, never trusted as is).
    pub subject: RdnSequence,
    /// Its public key.
    pub spki: SubjectPublicKeyInfoOwned,
    /// Extensions it asks for (only refused or tolerated; the profile decides).
    pub requested_extensions: Vec<Extension>,
}

/// Why a CSR was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum CsrError {
    /// Larger than [`MAX_CSR_LEN`].
    #[error("CSR is {0} bytes, larger than the {MAX_CSR_LEN}-byte limit")]
    TooLarge(usize),
    /// Not PEM, base64 or DER PKCS#10.
    #[error("CSR is not valid PEM or DER PKCS#10: {0}")]
    Malformed(String),
    /// The self-signature does not verify.
    #[error("CSR signature does not verify with the public key it contains")]
    BadSignature,
    /// Signed with an algorithm we do not accept.
    #[error(
        "CSR signature algorithm {0} is not supported (use ecdsa-with-SHA256/384/512 or sha256/384/512WithRSAEncryption)"
    )]
    UnsupportedAlgorithm(String),
}

impl CsrError {
    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            CsrError::BadSignature => "csr_bad_signature",
            CsrError::TooLarge(_) => "csr_too_large",
            CsrError::UnsupportedAlgorithm(_) => "csr_unsupported_algorithm",
            CsrError::Malformed(_) => "csr_malformed",
        }
    }
}

/// Accept PEM (`CERTIFICATE REQUEST`), base64 DER with or without line breaks, or raw DER.
pub fn decode_any(input: &[u8]) -> Result<Vec<u8>, CsrError> {
    if input.len() > MAX_CSR_LEN * 2 {
        return Err(CsrError::TooLarge(input.len()));
    }
    // Binary DER is taken as is: trimming "whitespace" would eat a signature byte such as 0x0a.
    if input.first() == Some(&0x30) {
        if input.len() > MAX_CSR_LEN {
            return Err(CsrError::TooLarge(input.len()));
        }
        return Ok(input.to_vec());
    }
    let trimmed: &[u8] = input.trim_ascii();
    let der = if trimmed.starts_with(b"-----BEGIN") {
        let (label, der) =
            der::pem::decode_vec(trimmed).map_err(|e| CsrError::Malformed(e.to_string()))?;
        if label != "CERTIFICATE REQUEST" && label != "NEW CERTIFICATE REQUEST" {
            return Err(CsrError::Malformed(format!("PEM label is {label}")));
        }
        der
    } else {
        let compact: Vec<u8> = trimmed
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &compact)
            .map_err(|e| CsrError::Malformed(format!("invalid base64: {e}")))?
    };
    if der.len() > MAX_CSR_LEN {
        return Err(CsrError::TooLarge(der.len()));
    }
    Ok(der)
}

/// Decode (see [`decode_any`]), parse, and verify the self-signature.
pub fn parse_and_verify(input: &[u8]) -> Result<Csr, CsrError> {
    let der = decode_any(input)?;
    let req = CertReq::from_der(&der).map_err(|e| CsrError::Malformed(e.to_string()))?;
    let alg = req.algorithm.oid;
    // RSA requests are read too (OCPP stations); which key a profile takes is policy's business.
    if ![
        const_oid::db::rfc5912::ECDSA_WITH_SHA_256,
        const_oid::db::rfc5912::ECDSA_WITH_SHA_384,
        const_oid::db::rfc5912::ECDSA_WITH_SHA_512,
        const_oid::db::rfc5912::SHA_256_WITH_RSA_ENCRYPTION,
        const_oid::db::rfc5912::SHA_384_WITH_RSA_ENCRYPTION,
        const_oid::db::rfc5912::SHA_512_WITH_RSA_ENCRYPTION,
    ]
    .contains(&alg)
    {
        return Err(CsrError::UnsupportedAlgorithm(alg.to_string()));
    }
    let spki_der = req
        .info
        .public_key
        .to_der()
        .map_err(|e| CsrError::Malformed(e.to_string()))?;
    // ECDSA on our curves: OpenSSL's EC primitives directly (see `super::ecdsa`), over the
    // request info as DER (what a valid request signs: `CertReq::from_der` accepted DER only).
    // Anything else, or a signature that does not verify that way, goes to OpenSSL's
    // generic check on the original bytes, which decides.
    let info_der = req
        .info
        .to_der()
        .map_err(|e| CsrError::Malformed(e.to_string()))?;
    let fast = super::ecdsa::verify(&spki_der, &alg, &info_der, req.signature.raw_bytes());
    if fast != Some(true) {
        let ossl = openssl::x509::X509Req::from_der(&der)
            .map_err(|e| CsrError::Malformed(e.to_string()))?;
        let key = ossl
            .public_key()
            .map_err(|e| CsrError::Malformed(format!("public key: {e}")))?;
        if !ossl.verify(&key).unwrap_or(false) {
            return Err(CsrError::BadSignature);
        }
    }
    let subject: RdnSequence = req.info.subject.clone().into();
    let mut requested_extensions = Vec::new();
    for attr in req.info.attributes.iter() {
        if attr.oid == OID_EXTENSION_REQUEST {
            for v in attr.values.iter() {
                let exts: Vec<Extension> = v
                    .decode_as()
                    .map_err(|e| CsrError::Malformed(format!("extensionRequest: {e}")))?;
                requested_extensions.extend(exts);
            }
        }
    }
    let spki = SubjectPublicKeyInfoOwned::from_der(&spki_der)
        .map_err(|e| CsrError::Malformed(e.to_string()))?;
    Ok(Csr {
        der,
        subject,
        spki,
        requested_extensions,
    })
}

/// RFC 7030 §4.5.2 `CsrAttrs` (DER) telling an EST client what to put in its request: the
/// key types (`id-ecPublicKey` with the curves as an attribute, `rsaEncryption` as an OID), the
/// signature algorithms, and, when `wants_san`, an extensionRequest for subjectAltName.
pub fn csr_attrs_der(keys: &[crate::alg::KeyAlg], wants_san: bool) -> Vec<u8> {
    use der::Encode;
    let oid = |o: ObjectIdentifier| o.to_der().unwrap_or_default();
    let set = |mut items: Vec<Vec<u8>>| {
        // DER SET OF: elements in ascending order of their encodings.
        items.sort();
        items.dedup();
        let mut body = super::der_sequence(&items.iter().map(Vec::as_slice).collect::<Vec<_>>());
        body[0] = 0x31;
        body
    };
    let mut out: Vec<Vec<u8>> = Vec::new();
    let curves: Vec<Vec<u8>> = keys.iter().filter_map(|k| k.curve_oid()).map(oid).collect();
    if !curves.is_empty() {
        let attr_oid = oid(super::OID_EC_PUBLIC_KEY);
        out.push(super::der_sequence(&[&attr_oid, &set(curves)]));
    }
    if keys.iter().any(|k| k.is_rsa()) {
        out.push(oid(super::OID_RSA_ENCRYPTION));
    }
    if wants_san {
        let attr_oid = oid(OID_EXTENSION_REQUEST);
        let san = oid(const_oid::db::rfc5280::ID_CE_SUBJECT_ALT_NAME);
        out.push(super::der_sequence(&[&attr_oid, &set(vec![san])]));
    }
    let mut sigs: Vec<ObjectIdentifier> = Vec::new();
    for k in keys {
        let s = k.signature_alg().oid();
        if !sigs.contains(&s) {
            sigs.push(s);
        }
    }
    out.extend(sigs.into_iter().map(oid));
    super::der_sequence(&out.iter().map(Vec::as_slice).collect::<Vec<_>>())
}

#[cfg(test)]
mod tests {

    /// The fuzzing seeds and corpus (fuzz/, part of the repository) replayed on every test run:
    /// no input panics; the ECDSA and RSA seeds made by openssl parse and verify (which keys a
    /// profile takes is policy's business), the bad-signature ones are refused.
    #[test]
    fn fuzz_seeds_and_corpus_replay() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
        let mut ok = 0;
        for e in std::fs::read_dir(root.join("seeds/csr_parse")).expect("seeds") {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if name.ends_with(".sh") {
                continue;
            }
            let r = parse_and_verify(&std::fs::read(&p).unwrap());
            let refused = name.contains("badsig");
            assert_eq!(r.is_err(), refused, "{name}: {r:?}");
            ok += usize::from(r.is_ok());
        }
        assert!(ok >= 20, "{ok} seeds parsed");
        let mut n = 0;
        for e in std::fs::read_dir(root.join("corpus/csr_parse")).expect("corpus") {
            let _ = parse_and_verify(&std::fs::read(e.unwrap().path()).unwrap());
            n += 1;
        }
        assert!(n >= 100, "{n} corpus inputs");
    }
    use super::*;

    fn make_csr() -> Vec<u8> {
        use openssl::ec::{EcGroup, EcKey};
        use openssl::nid::Nid;
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        let key = openssl::pkey::PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
        let mut name = openssl::x509::X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", "x").unwrap();
        let mut req = openssl::x509::X509ReqBuilder::new().unwrap();
        req.set_subject_name(&name.build()).unwrap();
        req.set_pubkey(&key).unwrap();
        req.sign(&key, openssl::hash::MessageDigest::sha256())
            .unwrap();
        req.build().to_der().unwrap()
    }

    #[test]
    fn der_ending_in_a_whitespace_byte_is_not_trimmed() {
        // Regression: found by the issuance benchmark (1 CSR in ~50 ends in 0x09/0x0a/0x0c/0x0d/0x20).
        let der = (0..5000)
            .map(|_| make_csr())
            .find(|d| d.last().is_some_and(|b| b.is_ascii_whitespace()))
            .expect("a CSR ending in a whitespace byte within 5000 tries");
        assert!(parse_and_verify(&der).is_ok());
    }

    #[test]
    fn pem_base64_and_der_forms_agree() {
        let der = make_csr();
        let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &der);
        let wrapped: String = b64
            .as_bytes()
            .chunks(64)
            .map(|c| format!("{}\r\n", std::str::from_utf8(c).unwrap()))
            .collect();
        let pem = crate::x509::to_pem("CERTIFICATE REQUEST", &der);
        for input in [
            der.clone(),
            b64.into_bytes(),
            wrapped.into_bytes(),
            pem.into_bytes(),
        ] {
            assert_eq!(decode_any(&input).unwrap(), der);
        }
        assert!(matches!(decode_any(b"!!!"), Err(CsrError::Malformed(_))));
        assert!(matches!(
            decode_any(&vec![b'A'; 40_000]),
            Err(CsrError::TooLarge(_))
        ));
        let mut truncated = der.clone();
        truncated.truncate(der.len() - 3);
        assert!(matches!(
            parse_and_verify(&truncated),
            Err(CsrError::Malformed(_))
        ));
    }
}
