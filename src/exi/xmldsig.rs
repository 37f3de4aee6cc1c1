//! XML signatures over EXI (ISO 15118-2 Annex J / -20 §8.x).
//!
//! SignedInfo is EXI-encoded as a fragment with the **xmldsig-core schema as
//! the only grammar** (6-bit codes, start 32, end 46), every string literal.
//! The signature is ECDSA over those bytes (the digest handed to
//! [`RawSigner`] is SHA-256 / SHA-512 of the fragment) in raw `r‖s` form.

use iso15118::iso2 as s2;
use iso15118::iso20::common as s20;
use openssl::bn::{BigNum, BigNumContext};
use openssl::ec::{EcGroup, EcKey, EcPoint};
use openssl::ecdsa::EcdsaSig;
use openssl::nid::Nid;
use openssl::pkey::Public;
use openssl::x509::X509;
use sha2::{Digest, Sha256, Sha512};

use super::error::CodecError;

/// `http://www.w3.org/TR/canonical-exi/`
pub const CANONICAL_EXI: &str = "http://www.w3.org/TR/canonical-exi/";
/// `…xmldsig-more#ecdsa-sha256`
pub const ECDSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256";
/// `…xmldsig-more#ecdsa-sha512`
pub const ECDSA_SHA512: &str = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512";
/// `…xmlenc#sha256`
pub const SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";
/// `…xmlenc#sha512`
pub const SHA512: &str = "http://www.w3.org/2001/04/xmlenc#sha512";
/// [V2G2-909]: at most 4 References.
pub const MAX_REFERENCES: usize = 4;

/// Signature suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suite {
    /// ECDSA P-256 with SHA-256 (ISO 15118-2, and -20 test PKIs using P-256).
    EcdsaP256Sha256,
    /// ECDSA P-521 with SHA-512 (ISO 15118-20 secp521r1 profile).
    EcdsaP521Sha512,
}

impl Suite {
    /// SignatureMethod URI.
    pub fn signature_method(self) -> &'static str {
        match self {
            Self::EcdsaP256Sha256 => ECDSA_SHA256,
            Self::EcdsaP521Sha512 => ECDSA_SHA512,
        }
    }
    /// DigestMethod URI.
    pub fn digest_method(self) -> &'static str {
        match self {
            Self::EcdsaP256Sha256 => SHA256,
            Self::EcdsaP521Sha512 => SHA512,
        }
    }
    /// Hash of `data` with the suite's hash.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Self::EcdsaP256Sha256 => Sha256::digest(data).to_vec(),
            Self::EcdsaP521Sha512 => Sha512::digest(data).to_vec(),
        }
    }
    /// Length of raw `r‖s`.
    pub fn signature_len(self) -> usize {
        2 * self.coordinate_len()
    }
    fn coordinate_len(self) -> usize {
        match self {
            Self::EcdsaP256Sha256 => 32,
            Self::EcdsaP521Sha512 => 66,
        }
    }
    fn curve(self) -> Nid {
        match self {
            Self::EcdsaP256Sha256 => Nid::X9_62_PRIME256V1,
            Self::EcdsaP521Sha512 => Nid::SECP521R1,
        }
    }
    /// Suite named by a SignatureMethod URI.
    pub fn from_signature_method(uri: &str) -> Option<Self> {
        match uri {
            ECDSA_SHA256 => Some(Self::EcdsaP256Sha256),
            ECDSA_SHA512 => Some(Self::EcdsaP521Sha512),
            _ => None,
        }
    }
}

/// Error type signers return.
pub type SignerError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Something that signs a digest with an EC key and returns raw `r‖s`
/// (each coordinate left-padded to the curve size: 64 bytes for P-256,
/// 132 for P-521). Implemented by the CA for HSM keys.
pub trait RawSigner {
    /// Signs `digest` (already hashed: SHA-256 or SHA-512 of the SignedInfo fragment).
    fn sign_digest(&self, digest: &[u8]) -> Result<Vec<u8>, SignerError>;
}

/// Signature creation / verification errors.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    /// A construct ISO 15118 forbids in a signature.
    #[error("forbidden in ISO 15118 signatures: {0}")]
    Forbidden(String),
    /// Unknown or disallowed algorithm URI.
    #[error("unsupported algorithm: {0}")]
    UnknownAlgorithm(String),
    /// More References than allowed.
    #[error("too many References: {0} (max {MAX_REFERENCES})")]
    TooManyReferences(usize),
    /// A Reference URI names no element of the message.
    #[error("reference {0} does not name a signed element of the message")]
    UnknownReference(String),
    /// A digest does not match.
    #[error("digest mismatch for {0}")]
    DigestMismatch(String),
    /// The ECDSA check failed.
    #[error("signature value does not verify")]
    BadSignature,
    /// The key does not fit the suite.
    #[error("key/curve error: {0}")]
    Key(String),
    /// The message has no signature.
    #[error("message carries no Signature")]
    Missing,
    /// The external signer failed.
    #[error("signer failed: {0}")]
    Signer(SignerError),
    /// EXI encoding failed.
    #[error(transparent)]
    Codec(#[from] CodecError),
}

impl From<openssl::error::ErrorStack> for SignatureError {
    fn from(e: openssl::error::ErrorStack) -> Self {
        Self::Key(e.to_string())
    }
}

/// `#id` URI.
pub fn reference_uri(id: &str) -> String {
    format!("#{id}")
}

/// Builds a SignedInfo covering `elements` (`(Id, fragment bytes)`), in order.
pub fn build_signed_info(
    suite: Suite,
    elements: &[(&str, &[u8])],
) -> Result<s2::SignedInfo, SignatureError> {
    if elements.len() > MAX_REFERENCES {
        return Err(SignatureError::TooManyReferences(elements.len()));
    }
    if elements.is_empty() {
        return Err(SignatureError::Forbidden(
            "SignedInfo without Reference".into(),
        ));
    }
    Ok(s2::SignedInfo {
        id: None,
        canonicalization_method: s2::CanonicalizationMethod {
            algorithm: CANONICAL_EXI.into(),
        },
        signature_method: s2::SignatureMethod {
            algorithm: suite.signature_method().into(),
            hmac_output_length: None,
        },
        reference: elements
            .iter()
            .map(|(id, frag)| s2::Reference {
                id: None,
                r#type: None,
                uri: Some(reference_uri(id)),
                transforms: Some(s2::Transforms {
                    transform: vec![s2::Transform {
                        algorithm: CANONICAL_EXI.into(),
                    }],
                }),
                digest_method: s2::DigestMethod {
                    algorithm: suite.digest_method().into(),
                },
                digest_value: suite.digest(frag),
            })
            .collect(),
    })
}

/// SignedInfo as the xmldsig-only EXI fragment (the bytes that are signed).
pub fn signed_info_fragment(si: &s2::SignedInfo) -> Result<Vec<u8>, CodecError> {
    si.to_xmldsig_fragment().map_err(CodecError::Encode)
}

/// Decodes a SignedInfo xmldsig fragment.
pub fn decode_signed_info_fragment(bytes: &[u8]) -> Result<s2::SignedInfo, CodecError> {
    super::check_input(bytes)?;
    s2::SignedInfo::from_xmldsig_fragment(bytes).map_err(|k| CodecError::Decode { kind: k, bit: 0 })
}

/// Signs `elements` and returns the complete `Signature` (for the -2 header;
/// convert with [`to_iso20`] for -20).
pub fn sign(
    suite: Suite,
    elements: &[(&str, &[u8])],
    signer: &dyn RawSigner,
) -> Result<s2::Signature, SignatureError> {
    let signed_info = build_signed_info(suite, elements)?;
    let bytes = signed_info_fragment(&signed_info)?;
    let value = signer
        .sign_digest(&suite.digest(&bytes))
        .map_err(SignatureError::Signer)?;
    if value.len() != suite.signature_len() {
        return Err(SignatureError::Signer(
            format!(
                "signer returned {} bytes, expected raw r||s of {}",
                value.len(),
                suite.signature_len()
            )
            .into(),
        ));
    }
    Ok(s2::Signature {
        id: None,
        signed_info,
        signature_value: s2::SignatureValue { id: None, value },
    })
}

macro_rules! convert_signature {
    ($name:ident, $from:ident, $to:ident) => {
        /// Converts between the structurally identical -2 and -20 signature types.
        pub fn $name(sig: &$from::Signature) -> $to::Signature {
            let si = &sig.signed_info;
            $to::Signature {
                id: sig.id.clone(),
                signed_info: $to::SignedInfo {
                    id: si.id.clone(),
                    canonicalization_method: $to::CanonicalizationMethod {
                        algorithm: si.canonicalization_method.algorithm.clone(),
                    },
                    signature_method: $to::SignatureMethod {
                        algorithm: si.signature_method.algorithm.clone(),
                        hmac_output_length: si.signature_method.hmac_output_length,
                    },
                    reference: si
                        .reference
                        .iter()
                        .map(|r| $to::Reference {
                            id: r.id.clone(),
                            r#type: r.r#type.clone(),
                            uri: r.uri.clone(),
                            transforms: r.transforms.as_ref().map(|t| $to::Transforms {
                                transform: t
                                    .transform
                                    .iter()
                                    .map(|x| $to::Transform {
                                        algorithm: x.algorithm.clone(),
                                    })
                                    .collect(),
                            }),
                            digest_method: $to::DigestMethod {
                                algorithm: r.digest_method.algorithm.clone(),
                            },
                            digest_value: r.digest_value.clone(),
                        })
                        .collect(),
                },
                signature_value: $to::SignatureValue {
                    id: sig.signature_value.id.clone(),
                    value: sig.signature_value.value.clone(),
                },
            }
        }
    };
}
convert_signature!(to_iso20, s2, s20);
convert_signature!(from_iso20, s20, s2);

/// A verification key (EC public key from a certificate or SEC1 point).
pub struct VerifyingKey {
    key: EcKey<Public>,
}

impl VerifyingKey {
    /// From a DER or PEM certificate.
    pub fn from_certificate(cert: &[u8]) -> Result<Self, SignatureError> {
        let x = if cert.starts_with(b"-----") {
            X509::from_pem(cert)?
        } else {
            X509::from_der(cert)?
        };
        let key = x
            .public_key()?
            .ec_key()
            .map_err(|_| SignatureError::Key("not an EC key".into()))?;
        Ok(Self { key })
    }

    /// From an uncompressed SEC1 point on the suite's curve.
    pub fn from_sec1(suite: Suite, point: &[u8]) -> Result<Self, SignatureError> {
        let group = EcGroup::from_curve_name(suite.curve())?;
        let mut ctx = BigNumContext::new()?;
        let p = EcPoint::from_bytes(&group, point, &mut ctx)?;
        Ok(Self {
            key: EcKey::from_public_key(&group, &p)?,
        })
    }

    fn curve(&self) -> Option<Nid> {
        self.key.group().curve_name()
    }

    /// Verifies raw `r‖s` over `message` (hashed here with the suite's hash).
    pub fn verify(&self, suite: Suite, message: &[u8], rs: &[u8]) -> Result<(), SignatureError> {
        if self.curve() != Some(suite.curve()) {
            return Err(SignatureError::Key(format!(
                "key curve {:?} does not match {}",
                self.curve(),
                suite.signature_method()
            )));
        }
        if rs.len() != suite.signature_len() {
            return Err(SignatureError::BadSignature);
        }
        let n = suite.coordinate_len();
        let sig = EcdsaSig::from_private_components(
            BigNum::from_slice(&rs[..n])?,
            BigNum::from_slice(&rs[n..])?,
        )?;
        match sig.verify(&suite.digest(message), &self.key) {
            Ok(true) => Ok(()),
            _ => Err(SignatureError::BadSignature),
        }
    }
}

/// Result of checking one Reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferenceCheck {
    /// The Reference URI.
    pub uri: String,
    /// DigestValue carried in SignedInfo.
    pub expected: Vec<u8>,
    /// Digest of the re-encoded fragment.
    pub computed: Vec<u8>,
}

impl ReferenceCheck {
    /// Whether the digests agree.
    pub fn ok(&self) -> bool {
        self.expected == self.computed
    }
}

/// Outcome of a signature verification.
#[derive(Debug)]
pub struct VerifyReport {
    /// The suite named by SignatureMethod.
    pub suite: Suite,
    /// Per-reference digests.
    pub references: Vec<ReferenceCheck>,
    /// SignedInfo fragment bytes (what was verified).
    pub signed_info: Vec<u8>,
    /// ECDSA result.
    pub signature: Result<(), SignatureError>,
}

impl VerifyReport {
    /// True when every digest and the signature check out.
    pub fn is_valid(&self) -> bool {
        self.signature.is_ok() && self.references.iter().all(ReferenceCheck::ok)
    }

    /// First failure as an error, if any.
    pub fn into_result(self) -> Result<(), SignatureError> {
        if let Some(r) = self.references.iter().find(|r| !r.ok()) {
            return Err(SignatureError::DigestMismatch(r.uri.clone()));
        }
        self.signature
    }
}

/// Checks the ISO 15118 profile of a SignedInfo before any hashing.
pub fn check_profile(sig: &s2::Signature, max_transforms: usize) -> Result<Suite, SignatureError> {
    let si = &sig.signed_info;
    if si.id.is_some() {
        return Err(SignatureError::Forbidden("SignedInfo@Id".into()));
    }
    if sig.signature_value.id.is_some() {
        return Err(SignatureError::Forbidden("SignatureValue@Id".into()));
    }
    if si.signature_method.hmac_output_length.is_some() {
        return Err(SignatureError::Forbidden("HMACOutputLength".into()));
    }
    if si.canonicalization_method.algorithm != CANONICAL_EXI {
        return Err(SignatureError::UnknownAlgorithm(
            si.canonicalization_method.algorithm.clone(),
        ));
    }
    let suite = Suite::from_signature_method(&si.signature_method.algorithm)
        .ok_or_else(|| SignatureError::UnknownAlgorithm(si.signature_method.algorithm.clone()))?;
    if si.reference.len() > MAX_REFERENCES {
        return Err(SignatureError::TooManyReferences(si.reference.len()));
    }
    if si.reference.is_empty() {
        return Err(SignatureError::Forbidden(
            "SignedInfo without Reference".into(),
        ));
    }
    for r in &si.reference {
        if r.r#type.is_some() {
            return Err(SignatureError::Forbidden("Reference@Type".into()));
        }
        if r.digest_method.algorithm != suite.digest_method() {
            return Err(SignatureError::UnknownAlgorithm(
                r.digest_method.algorithm.clone(),
            ));
        }
        let transforms = r
            .transforms
            .as_ref()
            .map(|t| t.transform.as_slice())
            .unwrap_or(&[]);
        if transforms.len() > max_transforms {
            return Err(SignatureError::Forbidden(format!(
                "{} Transforms in a Reference",
                transforms.len()
            )));
        }
        if let Some(t) = transforms.iter().find(|t| t.algorithm != CANONICAL_EXI) {
            return Err(SignatureError::UnknownAlgorithm(t.algorithm.clone()));
        }
        match r.uri.as_deref() {
            Some(u) if u.starts_with('#') && u.len() > 1 => {}
            other => {
                return Err(SignatureError::Forbidden(format!(
                    "Reference URI {other:?}"
                )));
            }
        }
    }
    Ok(suite)
}

/// Verifies `sig` against the fragments of the signed elements
/// (`(Id, fragment)`) and `key`.
///
/// Profile violations (forbidden constructs, unknown algorithms, too many
/// References, a URI naming no element) are returned as `Err` before any
/// hashing; digest and ECDSA outcomes are reported in the [`VerifyReport`].
pub fn verify(
    sig: &s2::Signature,
    fragments: &[(String, Vec<u8>)],
    key: &VerifyingKey,
) -> Result<VerifyReport, SignatureError> {
    let suite = check_profile(sig, 1)?;
    let mut references = Vec::new();
    for (i, r) in sig.signed_info.reference.iter().enumerate() {
        let uri = r.uri.clone().unwrap_or_default();
        if sig.signed_info.reference[..i]
            .iter()
            .any(|p| p.uri == r.uri)
        {
            return Err(SignatureError::Forbidden(format!(
                "duplicate Reference {uri}"
            )));
        }
        let id = &uri[1..];
        let frag = fragments
            .iter()
            .find(|(fid, _)| fid == id)
            .ok_or_else(|| SignatureError::UnknownReference(uri.clone()))?;
        references.push(ReferenceCheck {
            uri,
            expected: r.digest_value.clone(),
            computed: suite.digest(&frag.1),
        });
    }
    // SignedInfo is re-encoded exactly as received (algorithm URIs included).
    let signed_info = signed_info_fragment(&sig.signed_info)?;
    let signature = key.verify(suite, &signed_info, &sig.signature_value.value);
    Ok(VerifyReport {
        suite,
        references,
        signed_info,
        signature,
    })
}
