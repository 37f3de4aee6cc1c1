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

#[derive(Debug)]
pub struct Csr {
    pub der: Vec<u8>,
    pub subject: RdnSequence,
    pub spki: SubjectPublicKeyInfoOwned,
    pub requested_extensions: Vec<Extension>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CsrError {
    #[error("CSR is {0} bytes, larger than the {MAX_CSR_LEN}-byte limit")]
    TooLarge(usize),
    #[error("CSR is not valid PEM or DER PKCS#10: {0}")]
    Malformed(String),
    #[error("CSR signature does not verify with the public key it contains")]
    BadSignature,
    #[error("CSR signature algorithm {0} is not supported (use ecdsa-with-SHA256/384/512)")]
    UnsupportedAlgorithm(String),
}

/// Accept PEM (`CERTIFICATE REQUEST`), base64 DER with or without line breaks, or raw DER.
pub fn decode_any(input: &[u8]) -> Result<Vec<u8>, CsrError> {
    if input.len() > MAX_CSR_LEN * 2 {
        return Err(CsrError::TooLarge(input.len()));
    }
    let trimmed: &[u8] = input.trim_ascii();
    let der = if trimmed.starts_with(b"-----BEGIN") {
        let (label, der) =
            der::pem::decode_vec(trimmed).map_err(|e| CsrError::Malformed(e.to_string()))?;
        if label != "CERTIFICATE REQUEST" && label != "NEW CERTIFICATE REQUEST" {
            return Err(CsrError::Malformed(format!("PEM label is {label}")));
        }
        der
    } else if trimmed.first() == Some(&0x30) {
        trimmed.to_vec()
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

pub fn parse_and_verify(input: &[u8]) -> Result<Csr, CsrError> {
    let der = decode_any(input)?;
    let req = CertReq::from_der(&der).map_err(|e| CsrError::Malformed(e.to_string()))?;
    let alg = req.algorithm.oid;
    if ![
        const_oid::db::rfc5912::ECDSA_WITH_SHA_256,
        const_oid::db::rfc5912::ECDSA_WITH_SHA_384,
        const_oid::db::rfc5912::ECDSA_WITH_SHA_512,
    ]
    .contains(&alg)
    {
        return Err(CsrError::UnsupportedAlgorithm(alg.to_string()));
    }
    // Verify with OpenSSL: it knows every curve we accept and is not our own code.
    let ossl =
        openssl::x509::X509Req::from_der(&der).map_err(|e| CsrError::Malformed(e.to_string()))?;
    let key = ossl
        .public_key()
        .map_err(|e| CsrError::Malformed(format!("public key: {e}")))?;
    if !ossl.verify(&key).unwrap_or(false) {
        return Err(CsrError::BadSignature);
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
    let spki_der = req
        .info
        .public_key
        .to_der()
        .map_err(|e| CsrError::Malformed(e.to_string()))?;
    let spki = SubjectPublicKeyInfoOwned::from_der(&spki_der)
        .map_err(|e| CsrError::Malformed(e.to_string()))?;
    Ok(Csr {
        der,
        subject,
        spki,
        requested_extensions,
    })
}
