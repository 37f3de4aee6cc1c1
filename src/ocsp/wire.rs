//! OCSP wire format (RFC 6960, RFC 5019, RFC 9654 nonces): DER parsing of
//! requests and DER encoding of responses. A leaf module: no I/O, no keys.
//!
//! The responder built on top of this module is expected to:
//! 1. [`parse_request`] the body (POST) or the base64-decoded path (GET);
//!    on error answer [`encode_error_response`] with [`WireError::ocsp_status`];
//! 2. look up each [`CertId`] (its hashes are compared against
//!    [`issuer_hashes`] of every CA it serves) and build one
//!    [`SingleResponseSpec`] per CertID, echoing [`CertId::der`];
//! 3. [`encode_response_data`], sign those bytes (ECDSA, DER signature; an
//!    HSM's raw `r||s` goes through [`crate::x509::ecdsa_raw_to_der`]), and
//!    wrap with [`encode_basic_response`].
//!
//! Parsing is DER (the `der` crate's DER rules: definite, minimal lengths),
//! bounded by [`MAX_REQUEST_LEN`], and never panics on any input. Two
//! non-DER encodings seen from real clients are tolerated: an explicit
//! `version v1` in TBSRequest and an explicit `critical FALSE` in extensions.
//! Hash algorithm parameters may be absent or NULL.
//!
//! Nonces: RFC 9654 (which obsoletes RFC 8954) allows 1..=128 octets, so
//! [`MAX_NONCE_LEN`] is 128, not RFC 8954's 32. A nonce is echoed in the
//! RFC 9654 form (extnValue = DER OCTET STRING holding the nonce), which is
//! what OpenSSL sends and compares.

use der::asn1::{AnyRef, BitStringRef, GeneralizedTime, ObjectIdentifier, OctetString, UintRef};
use der::{Decode, Encode, Reader, Sequence, SliceReader, Tag, TagNumber, Tagged};
use spki::AlgorithmIdentifier;
use std::time::Duration;
use x509_cert::ext::Extension;

use crate::alg::HashAlg;
use crate::alg::SignatureAlg;

/// Largest request accepted (RFC 5019 clients send well under 1 KiB).
pub const MAX_REQUEST_LEN: usize = 4096;
/// Most CertIDs accepted in one request.
pub const MAX_CERT_IDS: usize = 64;
/// Nonce length bounds. RFC 8954 capped the nonce at 32 octets; RFC 9654
/// (which obsoletes RFC 8954) raised the cap to 128 octets and keeps the
/// 1-octet minimum. Requests outside `MIN_NONCE_LEN..=MAX_NONCE_LEN` are
/// malformed.
pub const MIN_NONCE_LEN: usize = 1;
/// See [`MIN_NONCE_LEN`].
pub const MAX_NONCE_LEN: usize = 128;

/// id-pkix-ocsp-basic (1.3.6.1.5.5.7.48.1.1).
pub const OID_OCSP_BASIC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.1");
/// id-pkix-ocsp-nonce (1.3.6.1.5.5.7.48.1.2).
pub const OID_OCSP_NONCE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.2");

/// Errors of this module. Request-side variants map to `malformedRequest`,
/// encode-side variants (bad arguments from our own code) to `internalError`;
/// see [`WireError::ocsp_status`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The request is larger than [`MAX_REQUEST_LEN`].
    #[error("OCSP request larger than {MAX_REQUEST_LEN} bytes")]
    TooLarge,
    /// The request is not a valid DER OCSPRequest or violates a limit.
    #[error("malformed OCSP request: {0}")]
    Malformed(String),
    /// A CertID uses a hash algorithm other than SHA-1/256/384/512.
    #[error("unsupported CertID hash algorithm {0}")]
    UnsupportedHash(String),
    /// The request carries a critical extension we do not understand
    /// (RFC 6960 §4.4: only non-critical unknown extensions may be ignored).
    #[error("unsupported critical extension {0}")]
    UnsupportedCriticalExtension(String),
    /// An argument to an encoding function is invalid (caller bug or bad
    /// stored data), or a certificate given to [`issuer_hashes`] is not DER.
    #[error("invalid input: {0}")]
    InvalidInput(String),
}

impl WireError {
    /// The OCSPResponseStatus to answer with when this error happens.
    pub fn ocsp_status(&self) -> ErrorStatus {
        match self {
            WireError::TooLarge
            | WireError::Malformed(_)
            | WireError::UnsupportedHash(_)
            | WireError::UnsupportedCriticalExtension(_) => ErrorStatus::MalformedRequest,
            WireError::InvalidInput(_) => ErrorStatus::InternalError,
        }
    }
}

fn malformed(e: impl std::fmt::Display) -> WireError {
    WireError::Malformed(e.to_string())
}

fn invalid(e: impl std::fmt::Display) -> WireError {
    WireError::InvalidInput(e.to_string())
}

/// One CertID of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertId {
    /// Hash of the two issuer hashes.
    pub hash_alg: HashAlg,
    /// Hash of the issuer's subject Name DER.
    pub issuer_name_hash: Vec<u8>,
    /// Hash of the issuer's subjectPublicKey contents.
    pub issuer_key_hash: Vec<u8>,
    /// Unsigned big-endian, no leading zero bytes (serial 0 is `[0]`).
    pub serial: Vec<u8>,
    /// The CertID TLV exactly as received, to echo back in the
    /// SingleResponse (clients compare it byte for byte, hash algorithm
    /// parameters included).
    pub der: Vec<u8>,
}

/// A parsed OCSPRequest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OcspRequest {
    /// 1..=[`MAX_CERT_IDS`] CertIDs, in request order.
    pub cert_ids: Vec<CertId>,
    /// The nonce value (the contents of the RFC 9654 `Nonce ::= OCTET
    /// STRING`), if the request carried id-pkix-ocsp-nonce. A legacy bare
    /// extnValue (not an OCTET STRING TLV) is taken as the nonce itself.
    pub nonce: Option<Vec<u8>>,
    /// The request carried `optionalSignature` (not verified here).
    pub has_signature: bool,
}

/// Read one TLV; returns (tag, value, whole TLV).
fn read_tlv<'a>(r: &mut SliceReader<'a>) -> Result<(Tag, &'a [u8], &'a [u8]), WireError> {
    let tlv = r.tlv_bytes().map_err(malformed)?;
    let any = AnyRef::from_der(tlv).map_err(malformed)?;
    Ok((any.tag(), any.value(), tlv))
}

fn expect_tlv<'a>(
    r: &mut SliceReader<'a>,
    tag: Tag,
    what: &str,
) -> Result<(&'a [u8], &'a [u8]), WireError> {
    if r.is_finished() {
        return Err(WireError::Malformed(format!("missing {what}")));
    }
    let (t, value, tlv) = read_tlv(r)?;
    if t != tag {
        return Err(WireError::Malformed(format!(
            "{what}: expected {tag}, found {t}"
        )));
    }
    Ok((value, tlv))
}

fn reader(bytes: &[u8]) -> Result<SliceReader<'_>, WireError> {
    SliceReader::new(bytes).map_err(malformed)
}

fn finish(r: SliceReader<'_>, what: &str) -> Result<(), WireError> {
    if r.is_finished() {
        Ok(())
    } else {
        Err(WireError::Malformed(format!(
            "unexpected data after {what}"
        )))
    }
}

fn ctx(number: u32, constructed: bool) -> Tag {
    TagNumber(number).context_specific(constructed)
}

fn peek_is(r: &SliceReader<'_>, tag: Tag) -> bool {
    !r.is_finished() && Tag::peek(r).is_ok_and(|t| t == tag)
}

/// Parse a DER OCSPRequest (RFC 6960 §4.1.1).
///
/// Rejects (as [`WireError::TooLarge`] / [`WireError::Malformed`]): more than
/// [`MAX_REQUEST_LEN`] bytes, non-DER, trailing data, a version other than
/// v1, zero or more than [`MAX_CERT_IDS`] CertIDs, a CertID whose hash
/// lengths do not match its algorithm, a negative serial, a nonce outside
/// `MIN_NONCE_LEN..=MAX_NONCE_LEN` or present twice; unknown hash algorithms
/// as [`WireError::UnsupportedHash`]; unknown critical extensions as
/// [`WireError::UnsupportedCriticalExtension`]. The requestorName and the
/// optional signature are skipped (only their presence as well-formed TLVs is
/// checked).
pub fn parse_request(der: &[u8]) -> Result<OcspRequest, WireError> {
    if der.len() > MAX_REQUEST_LEN {
        return Err(WireError::TooLarge);
    }
    if der.is_empty() {
        return Err(malformed("empty request"));
    }
    // OCSPRequest ::= SEQUENCE { tbsRequest, optionalSignature [0] EXPLICIT Signature OPTIONAL }
    let mut top = reader(der)?;
    let (outer, _) = expect_tlv(&mut top, Tag::Sequence, "OCSPRequest")?;
    finish(top, "OCSPRequest")?;

    let mut r = reader(outer)?;
    let (tbs, _) = expect_tlv(&mut r, Tag::Sequence, "TBSRequest")?;
    let mut has_signature = false;
    if !r.is_finished() {
        let (tag, value, _) = read_tlv(&mut r)?;
        if tag != ctx(0, true) || value.is_empty() {
            return Err(malformed("invalid optionalSignature"));
        }
        has_signature = true;
    }
    finish(r, "optionalSignature")?;

    // TBSRequest ::= SEQUENCE { version [0] EXPLICIT Version DEFAULT v1,
    //   requestorName [1] EXPLICIT GeneralName OPTIONAL,
    //   requestList SEQUENCE OF Request,
    //   requestExtensions [2] EXPLICIT Extensions OPTIONAL }
    let mut r = reader(tbs)?;
    if peek_is(&r, ctx(0, true)) {
        let (value, _) = expect_tlv(&mut r, ctx(0, true), "version")?;
        let mut vr = reader(value)?;
        let (v, _) = expect_tlv(&mut vr, Tag::Integer, "version")?;
        finish(vr, "version")?;
        // Tolerate the (non-DER) explicit encoding of the DEFAULT v1.
        if v != [0] {
            return Err(malformed("unsupported OCSPRequest version"));
        }
    }
    if peek_is(&r, ctx(1, true)) {
        let (value, _) = expect_tlv(&mut r, ctx(1, true), "requestorName")?;
        let mut nr = reader(value)?;
        read_tlv(&mut nr)?;
        finish(nr, "requestorName")?;
    }
    let (list, _) = expect_tlv(&mut r, Tag::Sequence, "requestList")?;
    let mut nonce = None;
    if peek_is(&r, ctx(2, true)) {
        let (value, _) = expect_tlv(&mut r, ctx(2, true), "requestExtensions")?;
        let mut er = reader(value)?;
        let (exts, _) = expect_tlv(&mut er, Tag::Sequence, "requestExtensions")?;
        finish(er, "requestExtensions")?;
        for ext in parse_extensions(exts)? {
            if ext.extn_id == OID_OCSP_NONCE {
                if nonce.is_some() {
                    return Err(malformed("duplicate nonce extension"));
                }
                nonce = Some(parse_nonce(ext.extn_value.as_bytes())?);
            } else if ext.critical {
                return Err(WireError::UnsupportedCriticalExtension(
                    ext.extn_id.to_string(),
                ));
            }
        }
    }
    finish(r, "TBSRequest")?;

    let mut cert_ids = Vec::new();
    let mut lr = reader(list)?;
    while !lr.is_finished() {
        if cert_ids.len() == MAX_CERT_IDS {
            return Err(WireError::Malformed(format!(
                "more than {MAX_CERT_IDS} CertIDs in one request"
            )));
        }
        // Request ::= SEQUENCE { reqCert CertID,
        //   singleRequestExtensions [0] EXPLICIT Extensions OPTIONAL }
        let (req, _) = expect_tlv(&mut lr, Tag::Sequence, "Request")?;
        let mut rr = reader(req)?;
        let (_, cert_id_tlv) = expect_tlv(&mut rr, Tag::Sequence, "CertID")?;
        if peek_is(&rr, ctx(0, true)) {
            let (value, _) = expect_tlv(&mut rr, ctx(0, true), "singleRequestExtensions")?;
            let mut er = reader(value)?;
            let (exts, _) = expect_tlv(&mut er, Tag::Sequence, "singleRequestExtensions")?;
            finish(er, "singleRequestExtensions")?;
            for ext in parse_extensions(exts)? {
                if ext.critical {
                    return Err(WireError::UnsupportedCriticalExtension(
                        ext.extn_id.to_string(),
                    ));
                }
            }
        }
        finish(rr, "Request")?;
        cert_ids.push(parse_cert_id(cert_id_tlv)?);
    }
    if cert_ids.is_empty() {
        return Err(malformed("empty requestList"));
    }
    Ok(OcspRequest {
        cert_ids,
        nonce,
        has_signature,
    })
}

/// CertID ::= SEQUENCE { hashAlgorithm AlgorithmIdentifier, issuerNameHash
/// OCTET STRING, issuerKeyHash OCTET STRING, serialNumber INTEGER }
fn parse_cert_id(tlv: &[u8]) -> Result<CertId, WireError> {
    let mut top = reader(tlv)?;
    let (body, _) = expect_tlv(&mut top, Tag::Sequence, "CertID")?;
    let mut r = reader(body)?;
    let (alg_tlv_value, _) = expect_tlv(&mut r, Tag::Sequence, "hashAlgorithm")?;
    let mut ar = reader(alg_tlv_value)?;
    let (oid_bytes, oid_tlv) = expect_tlv(&mut ar, Tag::ObjectIdentifier, "hashAlgorithm OID")?;
    if oid_bytes.is_empty() {
        return Err(malformed("empty hashAlgorithm OID"));
    }
    let oid = ObjectIdentifier::from_der(oid_tlv).map_err(malformed)?;
    // Parameters: absent or NULL for the SHA family (both seen in the wild).
    if !ar.is_finished() {
        let (ptag, pval, _) = read_tlv(&mut ar)?;
        if ptag != Tag::Null || !pval.is_empty() {
            return Err(malformed("unexpected hashAlgorithm parameters"));
        }
    }
    finish(ar, "hashAlgorithm")?;
    let hash_alg =
        HashAlg::from_oid(&oid).ok_or_else(|| WireError::UnsupportedHash(oid.to_string()))?;
    let (name_hash, _) = expect_tlv(&mut r, Tag::OctetString, "issuerNameHash")?;
    let (key_hash, _) = expect_tlv(&mut r, Tag::OctetString, "issuerKeyHash")?;
    let (_, serial_tlv) = expect_tlv(&mut r, Tag::Integer, "serialNumber")?;
    finish(r, "CertID")?;
    let len = hash_alg.output_len();
    if name_hash.len() != len || key_hash.len() != len {
        return Err(malformed("CertID hash length does not match its algorithm"));
    }
    let serial = UintRef::from_der(serial_tlv)
        .map_err(|e| WireError::Malformed(format!("negative or non-canonical serial: {e}")))?;
    Ok(CertId {
        hash_alg,
        issuer_name_hash: name_hash.to_vec(),
        issuer_key_hash: key_hash.to_vec(),
        serial: serial.as_bytes().to_vec(),
        der: tlv.to_vec(),
    })
}

/// Parse an `Extensions` SEQUENCE body by hand rather than with
/// [`Extension`]'s derived decoder, to tolerate a (non-DER) explicit
/// `critical FALSE` some clients send.
fn parse_extensions(body: &[u8]) -> Result<Vec<Extension>, WireError> {
    let mut out = Vec::new();
    let mut r = reader(body)?;
    while !r.is_finished() {
        let (ext, _) = expect_tlv(&mut r, Tag::Sequence, "Extension")?;
        let mut er = reader(ext)?;
        let (_, oid_tlv) = expect_tlv(&mut er, Tag::ObjectIdentifier, "extnID")?;
        let extn_id = ObjectIdentifier::from_der(oid_tlv).map_err(malformed)?;
        let mut critical = false;
        if peek_is(&er, Tag::Boolean) {
            let (b, _) = expect_tlv(&mut er, Tag::Boolean, "critical")?;
            match b {
                [0] => {}
                [_] => critical = true,
                _ => return Err(malformed("invalid BOOLEAN")),
            }
        }
        let (value, _) = expect_tlv(&mut er, Tag::OctetString, "extnValue")?;
        finish(er, "Extension")?;
        out.push(Extension {
            extn_id,
            critical,
            extn_value: OctetString::new(value).map_err(malformed)?,
        });
    }
    if out.is_empty() {
        return Err(malformed("empty Extensions"));
    }
    Ok(out)
}

/// extnValue of id-pkix-ocsp-nonce: RFC 9654 `Nonce ::= OCTET STRING`
/// (what OpenSSL and most clients send); a legacy bare value is accepted too.
fn parse_nonce(extn_value: &[u8]) -> Result<Vec<u8>, WireError> {
    let value = match der::asn1::OctetString::from_der(extn_value) {
        Ok(inner) => inner.as_bytes().to_vec(),
        Err(_) => extn_value.to_vec(),
    };
    if !(MIN_NONCE_LEN..=MAX_NONCE_LEN).contains(&value.len()) {
        return Err(WireError::Malformed(format!(
            "nonce of {} octets (allowed {MIN_NONCE_LEN}..={MAX_NONCE_LEN})",
            value.len()
        )));
    }
    Ok(value)
}

/// Status of one certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertStatus {
    /// Not revoked.
    Good,
    /// `time`: unix seconds; `reason`: CRLReason code (0..=10, not 7).
    Revoked {
        /// revocationTime, unix seconds.
        time: i64,
        /// CRLReason code, when not `unspecified`.
        reason: Option<u8>,
    },
    /// Not a certificate we know.
    Unknown,
}

/// Input for one SingleResponse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SingleResponseSpec {
    /// A CertID TLV, normally [`CertId::der`] echoed from the request.
    pub cert_id_der: Vec<u8>,
    /// Its status.
    pub status: CertStatus,
    /// Unix seconds.
    pub this_update: i64,
    /// Unix seconds; must not precede `this_update`.
    pub next_update: Option<i64>,
}

fn gen_time(unix: i64, what: &str) -> Result<GeneralizedTime, WireError> {
    let secs =
        u64::try_from(unix).map_err(|_| WireError::InvalidInput(format!("{what} before 1970")))?;
    GeneralizedTime::from_unix_duration(Duration::from_secs(secs))
        .map_err(|e| WireError::InvalidInput(format!("{what}: {e}")))
}

/// Parse `bytes` as exactly one TLV with tag `tag`.
fn single_tlv<'a>(bytes: &'a [u8], tag: Tag, what: &str) -> Result<AnyRef<'a>, WireError> {
    let any =
        AnyRef::from_der(bytes).map_err(|e| WireError::InvalidInput(format!("{what}: {e}")))?;
    if any.tag() != tag {
        return Err(WireError::InvalidInput(format!(
            "{what}: expected {tag}, found {}",
            any.tag()
        )));
    }
    Ok(any)
}

/// RevokedInfo ::= SEQUENCE { revocationTime GeneralizedTime,
///   revocationReason [0] EXPLICIT CRLReason OPTIONAL }
#[derive(Sequence)]
struct RevokedInfo<'a> {
    revocation_time: GeneralizedTime,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    revocation_reason: Option<AnyRef<'a>>,
}

/// SingleResponse ::= SEQUENCE { certID CertID, certStatus CertStatus,
///   thisUpdate GeneralizedTime, nextUpdate [0] EXPLICIT GeneralizedTime OPTIONAL,
///   singleExtensions [1] EXPLICIT Extensions OPTIONAL }
#[derive(Sequence)]
struct SingleResponse<'a> {
    cert_id: AnyRef<'a>,
    /// CHOICE { good [0] IMPLICIT NULL, revoked [1] IMPLICIT RevokedInfo,
    /// unknown [2] IMPLICIT UnknownInfo (NULL) }, pre-tagged.
    cert_status: AnyRef<'a>,
    this_update: GeneralizedTime,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    next_update: Option<GeneralizedTime>,
}

/// ResponseData ::= SEQUENCE { version [0] EXPLICIT Version DEFAULT v1 (omitted),
///   responderID ResponderID (byKey [2] EXPLICIT KeyHash), producedAt GeneralizedTime,
///   responses SEQUENCE OF SingleResponse, responseExtensions [1] EXPLICIT Extensions OPTIONAL }
#[derive(Sequence)]
struct ResponseData<'a> {
    #[asn1(context_specific = "2", tag_mode = "EXPLICIT")]
    responder_key_hash: AnyRef<'a>,
    produced_at: GeneralizedTime,
    responses: Vec<SingleResponse<'a>>,
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    response_extensions: Option<Vec<Extension>>,
}

/// BasicOCSPResponse ::= SEQUENCE { tbsResponseData ResponseData,
///   signatureAlgorithm AlgorithmIdentifier, signature BIT STRING,
///   certs [0] EXPLICIT SEQUENCE OF Certificate OPTIONAL }
#[derive(Sequence)]
struct BasicOcspResponse<'a> {
    tbs_response_data: AnyRef<'a>,
    signature_algorithm: AlgorithmIdentifier<AnyRef<'a>>,
    signature: BitStringRef<'a>,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    certs: Option<Vec<AnyRef<'a>>>,
}

/// ResponseBytes ::= SEQUENCE { responseType OBJECT IDENTIFIER, response OCTET STRING }
#[derive(Sequence)]
struct ResponseBytes {
    response_type: ObjectIdentifier,
    response: OctetString,
}

/// OCSPResponse ::= SEQUENCE { responseStatus OCSPResponseStatus,
///   responseBytes [0] EXPLICIT ResponseBytes OPTIONAL }
#[derive(Sequence)]
struct OcspResponse<'a> {
    response_status: AnyRef<'a>,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    response_bytes: Option<ResponseBytes>,
}

/// DER of ResponseData (the bytes to sign). ResponderID is byKey: the SHA-1
/// of the signer's SubjectPublicKey BIT STRING contents (for a certificate,
/// `issuer_hashes(cert, HashAlg::Sha1)?.1`). `produced_at`, times in the
/// specs: unix seconds, encoded as GeneralizedTime `YYYYMMDDHHMMSSZ`.
/// `nonce` is the nonce value; it is echoed in RFC 9654 form (extnValue =
/// DER OCTET STRING holding the nonce), as OpenSSL sends and checks it.
pub fn encode_response_data(
    responder_key_hash: &[u8; 20],
    produced_at: i64,
    singles: &[SingleResponseSpec],
    nonce: Option<&[u8]>,
) -> Result<Vec<u8>, WireError> {
    if singles.is_empty() {
        return Err(invalid("no SingleResponse"));
    }
    let key_hash_tlv = OctetString::new(responder_key_hash.as_slice())
        .and_then(|o| o.to_der())
        .map_err(invalid)?;

    // Pre-encode the certStatus values: their bytes must outlive the AnyRefs.
    let mut status_bytes: Vec<(Tag, Vec<u8>)> = Vec::with_capacity(singles.len());
    for s in singles {
        single_tlv(&s.cert_id_der, Tag::Sequence, "cert_id_der")?;
        if let Some(next) = s.next_update
            && next < s.this_update
        {
            return Err(invalid("next_update before this_update"));
        }
        status_bytes.push(match s.status {
            CertStatus::Good => (ctx(0, false), Vec::new()),
            CertStatus::Unknown => (ctx(2, false), Vec::new()),
            CertStatus::Revoked { time, reason } => {
                if let Some(code) = reason
                    && (code > 10 || code == 7)
                {
                    return Err(WireError::InvalidInput(format!("invalid CRLReason {code}")));
                }
                let reason_bytes = reason.map(|c| [c]);
                let reason_any = match &reason_bytes {
                    Some(b) => Some(AnyRef::new(Tag::Enumerated, b).map_err(invalid)?),
                    None => None,
                };
                let info = RevokedInfo {
                    revocation_time: gen_time(time, "revocation time")?,
                    revocation_reason: reason_any,
                };
                // IMPLICIT [1]: keep the SEQUENCE contents, replace the tag.
                let der = info.to_der().map_err(invalid)?;
                let any = AnyRef::from_der(&der).map_err(invalid)?;
                (ctx(1, true), any.value().to_vec())
            }
        });
    }
    let mut responses = Vec::with_capacity(singles.len());
    for (s, (tag, bytes)) in singles.iter().zip(&status_bytes) {
        responses.push(SingleResponse {
            cert_id: AnyRef::from_der(&s.cert_id_der).map_err(invalid)?,
            cert_status: AnyRef::new(*tag, bytes).map_err(invalid)?,
            this_update: gen_time(s.this_update, "this_update")?,
            next_update: s
                .next_update
                .map(|t| gen_time(t, "next_update"))
                .transpose()?,
        });
    }
    let response_extensions = match nonce {
        None => None,
        Some(n) => {
            if !(MIN_NONCE_LEN..=MAX_NONCE_LEN).contains(&n.len()) {
                return Err(WireError::InvalidInput(format!(
                    "nonce of {} octets",
                    n.len()
                )));
            }
            let wrapped = OctetString::new(n)
                .and_then(|o| o.to_der())
                .map_err(invalid)?;
            Some(vec![Extension {
                extn_id: OID_OCSP_NONCE,
                critical: false,
                extn_value: OctetString::new(wrapped).map_err(invalid)?,
            }])
        }
    };
    ResponseData {
        responder_key_hash: AnyRef::from_der(&key_hash_tlv).map_err(invalid)?,
        produced_at: gen_time(produced_at, "produced_at")?,
        responses,
        response_extensions,
    }
    .to_der()
    .map_err(invalid)
}

/// Full OCSPResponse (successful, id-pkix-ocsp-basic) from signed
/// ResponseData. `signature_der` is a DER ECDSA-Sig-Value or an RSA signature as is (see
/// [`crate::x509::ecdsa_raw_to_der`] for HSM `r||s` output); `certs` are DER certificates
/// to embed (the delegated signer), or empty when the CA signs itself.
pub fn encode_basic_response(
    response_data_der: &[u8],
    sig_alg: SignatureAlg,
    signature_der: &[u8],
    certs: &[Vec<u8>],
) -> Result<Vec<u8>, WireError> {
    let tbs = single_tlv(response_data_der, Tag::Sequence, "response_data_der")?;
    if sig_alg.is_rsa() {
        // An RSA signature is an integer as long as the modulus, not a DER structure.
        if signature_der.len() < 256 {
            return Err(WireError::InvalidInput(format!(
                "signature_der: an RSA signature of {} bytes",
                signature_der.len()
            )));
        }
    } else {
        single_tlv(signature_der, Tag::Sequence, "signature_der")?;
    }
    let certs = if certs.is_empty() {
        None
    } else {
        Some(
            certs
                .iter()
                .map(|c| single_tlv(c, Tag::Sequence, "certificate"))
                .collect::<Result<Vec<_>, _>>()?,
        )
    };
    let basic = BasicOcspResponse {
        tbs_response_data: tbs,
        signature_algorithm: AlgorithmIdentifier {
            oid: sig_alg.oid(),
            // RSA PKCS#1 v1.5 carries NULL parameters (RFC 4055); ECDSA none (RFC 5758).
            parameters: sig_alg.is_rsa().then_some(AnyRef::NULL),
        },
        signature: BitStringRef::from_bytes(signature_der).map_err(invalid)?,
        certs,
    }
    .to_der()
    .map_err(invalid)?;
    OcspResponse {
        response_status: AnyRef::new(Tag::Enumerated, &[0]).map_err(invalid)?,
        response_bytes: Some(ResponseBytes {
            response_type: OID_OCSP_BASIC,
            response: OctetString::new(basic).map_err(invalid)?,
        }),
    }
    .to_der()
    .map_err(invalid)
}

/// Unsuccessful OCSPResponseStatus values (RFC 6960 §4.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ErrorStatus {
    /// The request is not a valid OCSPRequest.
    MalformedRequest = 1,
    /// Our fault.
    InternalError = 2,
    /// Try again later (overloaded, dependency down).
    TryLater = 3,
    /// A signed request is required.
    SigRequired = 5,
    /// We are not authoritative for the certificate's issuer.
    Unauthorized = 6,
}

/// `OCSPResponse { responseStatus }` without responseBytes (5 bytes).
pub fn encode_error_response(status: ErrorStatus) -> Vec<u8> {
    vec![0x30, 0x03, 0x0a, 0x01, status as u8]
}

/// CertID hashes of an issuer certificate: (hash of the subject Name DER,
/// hash of the SubjectPublicKey BIT STRING contents without the unused-bits
/// octet), hashed with `alg`. The Name bytes are hashed exactly as they
/// appear in the certificate (no re-encoding). With `HashAlg::Sha1` the
/// second value is also the ResponderID byKey of that certificate's key.
pub fn issuer_hashes(
    issuer_cert_der: &[u8],
    alg: HashAlg,
) -> Result<(Vec<u8>, Vec<u8>), WireError> {
    let (subject, key) = cert_subject_and_key(issuer_cert_der).map_err(|e| match e {
        WireError::Malformed(m) => WireError::InvalidInput(format!("certificate: {m}")),
        other => other,
    })?;
    Ok((alg.digest(subject), alg.digest(key)))
}

/// (subject Name TLV, subjectPublicKey BIT STRING contents) of a certificate.
fn cert_subject_and_key(cert: &[u8]) -> Result<(&[u8], &[u8]), WireError> {
    let mut top = reader(cert)?;
    let (body, _) = expect_tlv(&mut top, Tag::Sequence, "Certificate")?;
    finish(top, "Certificate")?;
    let mut r = reader(body)?;
    let (tbs, _) = expect_tlv(&mut r, Tag::Sequence, "TBSCertificate")?;
    let mut t = reader(tbs)?;
    if peek_is(&t, ctx(0, true)) {
        read_tlv(&mut t)?; // version
    }
    expect_tlv(&mut t, Tag::Integer, "serialNumber")?;
    expect_tlv(&mut t, Tag::Sequence, "signature")?;
    expect_tlv(&mut t, Tag::Sequence, "issuer")?;
    expect_tlv(&mut t, Tag::Sequence, "validity")?;
    let (_, subject) = expect_tlv(&mut t, Tag::Sequence, "subject")?;
    let (spki, _) = expect_tlv(&mut t, Tag::Sequence, "subjectPublicKeyInfo")?;
    let mut s = reader(spki)?;
    expect_tlv(&mut s, Tag::Sequence, "algorithm")?;
    let (_, bits_tlv) = expect_tlv(&mut s, Tag::BitString, "subjectPublicKey")?;
    finish(s, "subjectPublicKeyInfo")?;
    let bits = BitStringRef::from_der(bits_tlv).map_err(malformed)?;
    Ok((subject, bits.raw_bytes()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use openssl::asn1::{Asn1Integer, Asn1Object, Asn1OctetString, Asn1Time};
    use openssl::bn::BigNum;
    use openssl::ec::{EcGroup, EcKey};
    use openssl::ecdsa::EcdsaSig;
    use openssl::hash::MessageDigest;
    use openssl::nid::Nid;
    use openssl::ocsp::{
        OcspCertId, OcspCertStatus, OcspFlag, OcspRequest as SslRequest,
        OcspResponse as SslResponse, OcspResponseStatus, OcspRevokedStatus,
    };
    use openssl::pkey::{PKey, Private};
    use openssl::sign::Signer;
    use openssl::stack::Stack;
    use openssl::x509::extension::{
        AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectKeyIdentifier,
    };
    use openssl::x509::store::{X509Store, X509StoreBuilder};
    use openssl::x509::{X509, X509Builder, X509Extension, X509NameBuilder};
    use std::path::Path;
    use std::process::Command;

    const NOW: i64 = 1_764_072_000; // 2025-11-25T12:00:00Z

    #[derive(Clone, Copy, PartialEq)]
    enum Kind {
        Ca,
        /// Profile "OCSP signer": EKU OCSPSigning, nocheck, KU, AKI.
        OcspSigner,
        /// The same without KU and AKI (smallest a client accepts).
        MinimalSigner,
        Leaf,
    }

    struct Pki {
        ca: X509,
        ca_key: PKey<Private>,
        signer: X509,
        signer_key: PKey<Private>,
        leaf: X509,
        leaf2: X509,
        leaf3: X509,
    }

    fn p256() -> PKey<Private> {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
    }

    fn make_cert(
        cn: &str,
        serial: &[u8],
        key: &PKey<Private>,
        issuer: Option<(&X509, &PKey<Private>)>,
        kind: Kind,
    ) -> X509 {
        let mut name = X509NameBuilder::new().unwrap();
        if kind != Kind::MinimalSigner {
            name.append_entry_by_text("O", "PnC Test").unwrap();
        }
        name.append_entry_by_text("CN", cn).unwrap();
        let name = name.build();
        let mut b = X509Builder::new().unwrap();
        b.set_version(2).unwrap();
        let serial = Asn1Integer::from_bn(&BigNum::from_slice(serial).unwrap()).unwrap();
        b.set_serial_number(&serial).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(issuer.map_or(&name, |(c, _)| c.subject_name()))
            .unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(30).unwrap())
            .unwrap();
        b.set_pubkey(key).unwrap();
        match kind {
            Kind::Ca => {
                b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
                    .unwrap();
                b.append_extension(
                    KeyUsage::new()
                        .critical()
                        .key_cert_sign()
                        .crl_sign()
                        .build()
                        .unwrap(),
                )
                .unwrap();
                let ski = SubjectKeyIdentifier::new()
                    .build(&b.x509v3_context(None, None))
                    .unwrap();
                b.append_extension(ski).unwrap();
            }
            Kind::OcspSigner | Kind::MinimalSigner => {
                b.append_extension(
                    ExtendedKeyUsage::new()
                        .other("OCSPSigning")
                        .build()
                        .unwrap(),
                )
                .unwrap();
                // id-pkix-ocsp-nocheck, NULL
                let nocheck = Asn1Object::from_str("1.3.6.1.5.5.7.48.1.5").unwrap();
                let null = Asn1OctetString::new_from_bytes(&[0x05, 0x00]).unwrap();
                b.append_extension(X509Extension::new_from_der(&nocheck, false, &null).unwrap())
                    .unwrap();
                if kind == Kind::OcspSigner {
                    b.append_extension(
                        KeyUsage::new()
                            .critical()
                            .digital_signature()
                            .build()
                            .unwrap(),
                    )
                    .unwrap();
                    let aki = AuthorityKeyIdentifier::new()
                        .keyid(true)
                        .build(&b.x509v3_context(issuer.map(|(c, _)| c.as_ref()), None))
                        .unwrap();
                    b.append_extension(aki).unwrap();
                }
            }
            Kind::Leaf => {
                b.append_extension(
                    KeyUsage::new()
                        .critical()
                        .digital_signature()
                        .build()
                        .unwrap(),
                )
                .unwrap();
            }
        }
        let signing_key = issuer.map_or(key, |(_, k)| k);
        b.sign(signing_key, MessageDigest::sha256()).unwrap();
        b.build()
    }

    fn pki() -> Pki {
        let ca_key = p256();
        let ca = make_cert("Root", &[0x01], &ca_key, None, Kind::Ca);
        let signer_key = p256();
        let serial16 = [0x5a; 16];
        let signer = make_cert(
            "OCSP",
            &serial16,
            &signer_key,
            Some((&ca, &ca_key)),
            Kind::OcspSigner,
        );
        let serial1 = [0x80, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99];
        let leaf = make_cert("EVSE1", &serial1, &p256(), Some((&ca, &ca_key)), Kind::Leaf);
        let leaf2 = make_cert(
            "EVSE2",
            &[0x7f, 0x01],
            &p256(),
            Some((&ca, &ca_key)),
            Kind::Leaf,
        );
        let leaf3 = make_cert("EVSE3", &[0x42], &p256(), Some((&ca, &ca_key)), Kind::Leaf);
        Pki {
            ca,
            ca_key,
            signer,
            signer_key,
            leaf,
            leaf2,
            leaf3,
        }
    }

    fn ssl_request(md: MessageDigest, issuer: &X509, certs: &[&X509]) -> Vec<u8> {
        let mut req = SslRequest::new().unwrap();
        for c in certs {
            req.add_id(OcspCertId::from_cert(md, c, issuer).unwrap())
                .unwrap();
        }
        req.to_der().unwrap()
    }

    fn serial_of(cert: &X509) -> Vec<u8> {
        cert.serial_number().to_bn().unwrap().to_vec()
    }

    fn key_hash(cert: &X509) -> [u8; 20] {
        let (_, k) = issuer_hashes(&cert.to_der().unwrap(), HashAlg::Sha1).unwrap();
        k.try_into().unwrap()
    }

    fn sign(key: &PKey<Private>, data: &[u8]) -> Vec<u8> {
        let mut s = Signer::new(MessageDigest::sha256(), key).unwrap();
        s.update(data).unwrap();
        s.sign_to_vec().unwrap()
    }

    fn store_with(ca: &X509) -> X509Store {
        let mut sb = X509StoreBuilder::new().unwrap();
        sb.add_cert(ca.clone()).unwrap();
        sb.build()
    }

    // ---- tiny DER builder for hand-made (mostly invalid) requests ----
    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let n = content.len();
        if n < 0x80 {
            out.push(n as u8);
        } else if n < 0x100 {
            out.extend([0x81, n as u8]);
        } else {
            out.extend([0x82, (n >> 8) as u8, n as u8]);
        }
        out.extend_from_slice(content);
        out
    }

    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    const SHA1_OID_TLV: [u8; 7] = [0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a];

    fn cert_id(alg_oid_tlv: &[u8], hash_len: usize, serial_content: &[u8]) -> Vec<u8> {
        let alg = tlv(0x30, &cat(&[alg_oid_tlv, &[0x05, 0x00]]));
        tlv(
            0x30,
            &cat(&[
                &alg,
                &tlv(0x04, &vec![0xaa; hash_len]),
                &tlv(0x04, &vec![0xbb; hash_len]),
                &tlv(0x02, serial_content),
            ]),
        )
    }

    fn ext(oid_tlv: &[u8], critical: bool, value: &[u8]) -> Vec<u8> {
        let crit: &[u8] = if critical { &[0x01, 0x01, 0xff] } else { &[] };
        tlv(0x30, &cat(&[oid_tlv, crit, &tlv(0x04, value)]))
    }

    const NONCE_OID_TLV: [u8; 11] = [
        0x06, 0x09, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x02,
    ];

    /// OCSPRequest from CertIDs, optional `[2]` extension list, optional extra
    /// TBSRequest prefix (version / requestorName) and optional signature.
    fn hand_request(
        prefix: &[u8],
        cert_ids: &[Vec<u8>],
        exts: &[Vec<u8>],
        signature: Option<&[u8]>,
    ) -> Vec<u8> {
        let list: Vec<u8> = cert_ids.iter().flat_map(|c| tlv(0x30, c)).collect();
        let mut tbs = cat(&[prefix, &tlv(0x30, &list)]);
        if !exts.is_empty() {
            tbs.extend(tlv(0xa2, &tlv(0x30, &exts.concat())));
        }
        let mut body = tlv(0x30, &tbs);
        if let Some(sig) = signature {
            body.extend(tlv(0xa0, sig));
        }
        tlv(0x30, &body)
    }

    /// A tool a test needs is missing: under `CI` that fails the test, elsewhere the skip is
    /// reported (a test that passes because it did nothing must not look like a pass in CI).
    fn missing(what: &str) {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but {what} is missing"
        );
        eprintln!("{what} not available; skipped");
    }

    fn openssl_bin() -> Option<&'static str> {
        let found = Command::new("openssl")
            .arg("version")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|_| "openssl");
        if found.is_none() {
            missing("the openssl CLI");
        }
        found
    }

    fn write_pem(dir: &Path, name: &str, cert: &X509) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, cert.to_pem().unwrap()).unwrap();
        p
    }

    /// Build, sign and wrap a response the way the responder will.
    fn respond(pki: &Pki, req: &OcspRequest, statuses: &[CertStatus], delegated: bool) -> Vec<u8> {
        let singles: Vec<SingleResponseSpec> = req
            .cert_ids
            .iter()
            .zip(statuses)
            .map(|(id, st)| SingleResponseSpec {
                cert_id_der: id.der.clone(),
                status: *st,
                this_update: NOW - 3600,
                next_update: Some(NOW + 6 * 86400),
            })
            .collect();
        let (signer, key) = if delegated {
            (&pki.signer, &pki.signer_key)
        } else {
            (&pki.ca, &pki.ca_key)
        };
        let tbs =
            encode_response_data(&key_hash(signer), NOW, &singles, req.nonce.as_deref()).unwrap();
        let sig = sign(key, &tbs);
        let certs = if delegated {
            vec![signer.to_der().unwrap()]
        } else {
            vec![]
        };
        encode_basic_response(&tbs, SignatureAlg::EcdsaSha256, &sig, &certs).unwrap()
    }

    fn gt(t: i64) -> String {
        Asn1Time::from_unix(t).unwrap().to_string()
    }

    // ------------------------------------------------------------------
    // Requests made by OpenSSL
    // ------------------------------------------------------------------

    #[test]
    fn parses_openssl_sha1_request() {
        let pki = pki();
        let der = ssl_request(MessageDigest::sha1(), &pki.ca, &[&pki.leaf]);
        let req = parse_request(&der).unwrap();
        assert_eq!(req.cert_ids.len(), 1);
        assert_eq!(req.nonce, None);
        assert!(!req.has_signature);
        let id = &req.cert_ids[0];
        assert_eq!(id.hash_alg, HashAlg::Sha1);
        let ca_der = pki.ca.to_der().unwrap();
        let (nh, kh) = issuer_hashes(&ca_der, HashAlg::Sha1).unwrap();
        assert_eq!(id.issuer_name_hash, nh);
        assert_eq!(id.issuer_key_hash, kh);
        // independent: SHA-1 of the subject Name DER as OpenSSL encodes it,
        // and the SKI (RFC 5280 method 1 = SHA-1 of the key BIT STRING).
        assert_eq!(
            nh,
            HashAlg::Sha1.digest(&pki.ca.subject_name().to_der().unwrap())
        );
        assert_eq!(kh, pki.ca.subject_key_id().unwrap().as_slice());
        assert_eq!(id.serial, serial_of(&pki.leaf));
        assert_eq!(id.serial[0], 0x80, "high-bit serial, 0x00 pad stripped");
        // the echoed CertID is a sub-slice of the request
        assert!(der.windows(id.der.len()).any(|w| w == id.der.as_slice()));
    }

    #[test]
    fn parses_openssl_sha256_384_512_multi_requests() {
        let pki = pki();
        for (md, alg) in [
            (MessageDigest::sha256(), HashAlg::Sha256),
            (MessageDigest::sha384(), HashAlg::Sha384),
            (MessageDigest::sha512(), HashAlg::Sha512),
        ] {
            let der = ssl_request(md, &pki.ca, &[&pki.leaf, &pki.leaf2, &pki.leaf3]);
            let req = parse_request(&der).unwrap();
            assert_eq!(req.cert_ids.len(), 3);
            let (nh, kh) = issuer_hashes(&pki.ca.to_der().unwrap(), alg).unwrap();
            for (id, cert) in req.cert_ids.iter().zip([&pki.leaf, &pki.leaf2, &pki.leaf3]) {
                assert_eq!(id.hash_alg, alg);
                assert_eq!(id.issuer_name_hash.len(), alg.output_len());
                assert_eq!(id.issuer_name_hash, nh);
                assert_eq!(id.issuer_key_hash, kh);
                assert_eq!(id.serial, serial_of(cert));
            }
        }
    }

    #[test]
    fn parses_openssl_cli_requests_with_and_without_nonce() {
        let Some(bin) = openssl_bin() else {
            return;
        };
        let pki = pki();
        let dir = tempfile::tempdir().unwrap();
        let ca = write_pem(dir.path(), "ca.pem", &pki.ca);
        let leaf = write_pem(dir.path(), "leaf.pem", &pki.leaf);
        let leaf2 = write_pem(dir.path(), "leaf2.pem", &pki.leaf2);
        let out = dir.path().join("req.der");
        let run = |extra: &[&str]| {
            let st = Command::new(bin)
                .arg("ocsp")
                .arg("-issuer")
                .arg(&ca)
                .args(extra)
                .arg("-cert")
                .arg(&leaf)
                .arg("-cert")
                .arg(&leaf2)
                .arg("-reqout")
                .arg(&out)
                .output()
                .unwrap();
            assert!(
                st.status.success(),
                "{}",
                String::from_utf8_lossy(&st.stderr)
            );
            parse_request(&std::fs::read(&out).unwrap()).unwrap()
        };
        let with_nonce = run(&[]);
        assert_eq!(with_nonce.cert_ids.len(), 2);
        assert_eq!(with_nonce.nonce.as_ref().map(Vec::len), Some(16));
        let sha256 = run(&["-no_nonce", "-sha256"]);
        assert_eq!(sha256.nonce, None);
        assert_eq!(sha256.cert_ids[1].hash_alg, HashAlg::Sha256);
        assert_eq!(sha256.cert_ids[1].serial, serial_of(&pki.leaf2));
    }

    // ------------------------------------------------------------------
    // Responses checked by OpenSSL
    // ------------------------------------------------------------------

    #[test]
    fn delegated_response_good_revoked_unknown_verifies_in_openssl() {
        let pki = pki();
        for md in [MessageDigest::sha1(), MessageDigest::sha256()] {
            let der = ssl_request(md, &pki.ca, &[&pki.leaf, &pki.leaf2, &pki.leaf3]);
            let req = parse_request(&der).unwrap();
            let revoked_at = NOW - 86_400;
            let resp = respond(
                &pki,
                &req,
                &[
                    CertStatus::Good,
                    CertStatus::Revoked {
                        time: revoked_at,
                        reason: Some(1),
                    },
                    CertStatus::Unknown,
                ],
                true,
            );
            let parsed = SslResponse::from_der(&resp).unwrap();
            assert_eq!(parsed.status(), OcspResponseStatus::SUCCESSFUL);
            let basic = parsed.basic().unwrap();
            let store = store_with(&pki.ca);
            let empty: Stack<X509> = Stack::new().unwrap();
            basic.verify(&empty, &store, OcspFlag::empty()).unwrap();

            let id = |c: &X509| OcspCertId::from_cert(md, c, &pki.ca).unwrap();
            let good = basic.find_status(&id(&pki.leaf)).unwrap();
            assert_eq!(good.status, OcspCertStatus::GOOD);
            assert_eq!(good.this_update.to_string(), gt(NOW - 3600));
            assert_eq!(good.next_update().unwrap().to_string(), gt(NOW + 6 * 86400));
            good.check_validity(300, None).unwrap_err(); // NOW is in the past
            let rev = basic.find_status(&id(&pki.leaf2)).unwrap();
            assert_eq!(rev.status, OcspCertStatus::REVOKED);
            assert_eq!(rev.reason, OcspRevokedStatus::KEY_COMPROMISE);
            assert_eq!(rev.revocation_time.unwrap().to_string(), gt(revoked_at));
            let unk = basic.find_status(&id(&pki.leaf3)).unwrap();
            assert_eq!(unk.status, OcspCertStatus::UNKNOWN);
            // a cert we did not ask about is not in the response
            let other = make_cert("X", &[9], &p256(), Some((&pki.ca, &pki.ca_key)), Kind::Leaf);
            assert!(basic.find_status(&id(&other)).is_none());
        }
    }

    #[test]
    fn ca_signed_response_without_certs_verifies() {
        let pki = pki();
        let der = ssl_request(MessageDigest::sha256(), &pki.ca, &[&pki.leaf]);
        let req = parse_request(&der).unwrap();
        let resp = respond(
            &pki,
            &req,
            &[CertStatus::Revoked {
                time: NOW,
                reason: None,
            }],
            false,
        );
        let basic = SslResponse::from_der(&resp).unwrap().basic().unwrap();
        let mut certs: Stack<X509> = Stack::new().unwrap();
        certs.push(pki.ca.clone()).unwrap();
        basic
            .verify(&certs, &store_with(&pki.ca), OcspFlag::empty())
            .unwrap();
        let st = basic
            .find_status(
                &OcspCertId::from_cert(MessageDigest::sha256(), &pki.leaf, &pki.ca).unwrap(),
            )
            .unwrap();
        assert_eq!(st.status, OcspCertStatus::REVOKED);
        assert_eq!(st.reason, OcspRevokedStatus::NO_STATUS);
        // The signature really covers ResponseData: flip one byte of it.
        let mut bad = resp.clone();
        let pos = bad.len() - 200; // inside ResponseData (before sigalg/signature)
        bad[pos] ^= 0x01;
        if let Ok(r) = SslResponse::from_der(&bad)
            && let Ok(b) = r.basic()
        {
            assert!(
                b.verify(&certs, &store_with(&pki.ca), OcspFlag::empty())
                    .is_err()
            );
        }
    }

    #[test]
    fn every_crl_reason_round_trips() {
        let pki = pki();
        let der = ssl_request(MessageDigest::sha1(), &pki.ca, &[&pki.leaf]);
        let req = parse_request(&der).unwrap();
        let expected = [
            (0, OcspRevokedStatus::UNSPECIFIED),
            (1, OcspRevokedStatus::KEY_COMPROMISE),
            (2, OcspRevokedStatus::CA_COMPROMISE),
            (3, OcspRevokedStatus::AFFILIATION_CHANGED),
            (4, OcspRevokedStatus::STATUS_SUPERSEDED),
            (5, OcspRevokedStatus::STATUS_CESSATION_OF_OPERATION),
            (6, OcspRevokedStatus::STATUS_CERTIFICATE_HOLD),
            (8, OcspRevokedStatus::REMOVE_FROM_CRL),
        ];
        for (code, want) in expected {
            let resp = respond(
                &pki,
                &req,
                &[CertStatus::Revoked {
                    time: NOW - 10,
                    reason: Some(code),
                }],
                true,
            );
            let basic = SslResponse::from_der(&resp).unwrap().basic().unwrap();
            let id = OcspCertId::from_cert(MessageDigest::sha1(), &pki.leaf, &pki.ca).unwrap();
            assert_eq!(
                basic.find_status(&id).unwrap().reason,
                want,
                "reason {code}"
            );
        }
    }

    #[test]
    fn typical_response_size() {
        let mut pki = pki();
        let der = ssl_request(MessageDigest::sha1(), &pki.ca, &[&pki.leaf]);
        let req = parse_request(&der).unwrap();
        let ca_signed = respond(&pki, &req, &[CertStatus::Good], false);
        let full = respond(&pki, &req, &[CertStatus::Good], true);
        let full_cert = pki.signer.to_der().unwrap().len();
        // The wire overhead besides the embedded certificate: OCSPResponse
        // wrappers, ResponderID, 3 times, the echoed CertID, P-256 signature.
        let overhead = full.len() - full_cert;
        let mut nreq = req.clone();
        nreq.nonce = Some(vec![7; 32]);
        let with_nonce = respond(&pki, &nreq, &[CertStatus::Good], true);
        pki.signer = make_cert(
            "OCSP",
            &[0x5a; 16],
            &pki.signer_key,
            Some((&pki.ca, &pki.ca_key)),
            Kind::MinimalSigner,
        );
        let minimal = respond(&pki, &req, &[CertStatus::Good], true);
        let minimal_cert = pki.signer.to_der().unwrap().len();
        eprintln!(
            "OCSP response sizes (SHA-1 CertID, 10-byte serial, P-256): CA-signed {} B; \
             delegated with {full_cert} B signer cert {} B (+32-byte nonce: {} B); \
             delegated with {minimal_cert} B minimal signer cert {} B; overhead {overhead} B",
            ca_signed.len(),
            full.len(),
            with_nonce.len(),
            minimal.len(),
        );
        // Under 600 B needs a signer certificate of at most 600 - overhead
        // (~315 B); the profile with realistic names is larger (see
        // the report), the CA-signed mode is far below.
        assert!(overhead <= 290, "{overhead}");
        assert!(ca_signed.len() < 290, "{}", ca_signed.len());
        assert!(minimal.len() <= overhead + minimal_cert + 2);
        assert!(full.len() < 720, "{}", full.len());
        let nonce_ext = with_nonce.len() - full.len();
        assert!((50..=56).contains(&nonce_ext), "{nonce_ext}");
    }

    #[test]
    fn openssl_cli_prints_and_verifies_response_with_nonce() {
        let Some(bin) = openssl_bin() else {
            return;
        };
        let pki = pki();
        let dir = tempfile::tempdir().unwrap();
        let ca = write_pem(dir.path(), "ca.pem", &pki.ca);
        let leaf = write_pem(dir.path(), "leaf.pem", &pki.leaf);
        let req_path = dir.path().join("req.der");
        let resp_path = dir.path().join("resp.der");
        let st = Command::new(bin)
            .args(["ocsp", "-sha256", "-issuer"])
            .arg(&ca)
            .arg("-cert")
            .arg(&leaf)
            .arg("-reqout")
            .arg(&req_path)
            .output()
            .unwrap();
        assert!(st.status.success());
        let req = parse_request(&std::fs::read(&req_path).unwrap()).unwrap();
        assert!(req.nonce.is_some());
        let resp = respond(
            &pki,
            &req,
            &[CertStatus::Revoked {
                time: NOW - 7200,
                reason: Some(4),
            }],
            true,
        );
        std::fs::write(&resp_path, &resp).unwrap();

        // 1. -resp_text: structure as OpenSSL sees it.
        let out = Command::new(bin)
            .args(["ocsp", "-noverify", "-resp_text", "-respin"])
            .arg(&resp_path)
            .output()
            .unwrap();
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        for needle in [
            "OCSP Response Status: successful (0x0)",
            "Response Type: Basic OCSP Response",
            "Version: 1 (0x0)",
            &format!("Responder Id: {}", hex::encode_upper(key_hash(&pki.signer))),
            "Hash Algorithm: sha256",
            "Cert Status: revoked",
            "Revocation Reason: superseded (0x4)",
            "OCSP Nonce:",
            "Signature Algorithm: ecdsa-with-SHA256",
            "OCSP Signing",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }

        // 2. request + response: nonce check and signature/chain verification.
        let out = Command::new(bin)
            .args(["ocsp", "-reqin"])
            .arg(&req_path)
            .arg("-respin")
            .arg(&resp_path)
            .arg("-CAfile")
            .arg(&ca)
            .arg("-resp_text")
            .output()
            .unwrap();
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(all.contains("Response verify OK"), "{all}");
        assert!(!all.contains("WARNING: no nonce"), "{all}");
        assert!(!all.contains("Nonce Verify error"), "{all}");
        assert!(all.contains("Cert Status: revoked"), "{all}");
        assert!(out.status.success(), "{all}");

        // 3. a different nonce is detected by OpenSSL (negative control).
        let mut other = req.clone();
        other.nonce = Some(vec![0x55; 16]);
        let resp2 = respond(&pki, &other, &[CertStatus::Good], true);
        std::fs::write(&resp_path, &resp2).unwrap();
        let out = Command::new(bin)
            .args(["ocsp", "-reqin"])
            .arg(&req_path)
            .arg("-respin")
            .arg(&resp_path)
            .arg("-CAfile")
            .arg(&ca)
            .output()
            .unwrap();
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(all.contains("Nonce Verify error"), "{all}");
    }

    #[test]
    fn error_responses_parse_in_openssl() {
        for (st, want) in [
            (
                ErrorStatus::MalformedRequest,
                OcspResponseStatus::MALFORMED_REQUEST,
            ),
            (
                ErrorStatus::InternalError,
                OcspResponseStatus::INTERNAL_ERROR,
            ),
            (ErrorStatus::TryLater, OcspResponseStatus::TRY_LATER),
            (ErrorStatus::SigRequired, OcspResponseStatus::SIG_REQUIRED),
            (ErrorStatus::Unauthorized, OcspResponseStatus::UNAUTHORIZED),
        ] {
            let der = encode_error_response(st);
            let r = SslResponse::from_der(&der).unwrap();
            assert_eq!(r.status(), want);
            assert!(r.basic().is_err());
        }
        assert_eq!(
            WireError::TooLarge.ocsp_status(),
            ErrorStatus::MalformedRequest
        );
        assert_eq!(
            WireError::UnsupportedHash("x".into()).ocsp_status(),
            ErrorStatus::MalformedRequest
        );
        assert_eq!(
            WireError::InvalidInput("x".into()).ocsp_status(),
            ErrorStatus::InternalError
        );
    }

    // ------------------------------------------------------------------
    // HSM r||s to DER (x509::ecdsa_raw_to_der, checked against OpenSSL) / issuer_hashes
    // ------------------------------------------------------------------

    #[test]
    fn raw_ecdsa_signatures_convert_to_openssl_der() {
        let key = p256();
        for i in 0..64u8 {
            let der = sign(&key, &[i; 10]);
            let sig = EcdsaSig::from_der(&der).unwrap();
            let raw = [
                sig.r().to_vec_padded(32).unwrap(),
                sig.s().to_vec_padded(32).unwrap(),
            ]
            .concat();
            assert_eq!(crate::x509::ecdsa_raw_to_der(&raw).unwrap(), der);
        }
        // P-384 / P-521 sizes, leading zeros and high bits
        for size in [48usize, 66] {
            let mut raw = vec![0u8; 2 * size];
            raw[2] = 0x01; // r with two leading zero bytes
            raw[size] = 0xff; // s with high bit set
            raw[2 * size - 1] = 0x03;
            let der = crate::x509::ecdsa_raw_to_der(&raw).unwrap();
            let sig = EcdsaSig::from_der(&der).unwrap();
            assert_eq!(sig.r().to_vec(), raw[2..size].to_vec());
            assert_eq!(sig.s().to_vec(), raw[size..].to_vec());
        }
        for bad in [vec![1u8; 63], vec![1u8; 65], vec![], vec![0u8; 64]] {
            assert!(matches!(
                crate::x509::ecdsa_raw_to_der(&bad),
                Err(crate::x509::X509Error::Key(_))
            ));
        }
        let mut zero_s = vec![1u8; 64];
        zero_s[32..].fill(0);
        assert!(crate::x509::ecdsa_raw_to_der(&zero_s).is_err());
    }

    #[test]
    fn issuer_hashes_rejects_garbage() {
        let pki = pki();
        let der = pki.ca.to_der().unwrap();
        assert!(issuer_hashes(&der[..der.len() - 1], HashAlg::Sha1).is_err());
        assert!(issuer_hashes(&[der.as_slice(), &[0]].concat(), HashAlg::Sha1).is_err());
        assert!(issuer_hashes(b"", HashAlg::Sha256).is_err());
        assert!(issuer_hashes(&[0x30, 0x00], HashAlg::Sha256).is_err());
        let (nh, kh) = issuer_hashes(&der, HashAlg::Sha512).unwrap();
        assert_eq!((nh.len(), kh.len()), (64, 64));
    }

    // ------------------------------------------------------------------
    // Encoder argument checks
    // ------------------------------------------------------------------

    #[test]
    fn encoder_rejects_bad_arguments() {
        let id = cert_id(&SHA1_OID_TLV, 20, &[0x01]);
        let spec = |status, this, next| SingleResponseSpec {
            cert_id_der: id.clone(),
            status,
            this_update: this,
            next_update: next,
        };
        let kh = [0u8; 20];
        let ok = encode_response_data(&kh, NOW, &[spec(CertStatus::Good, NOW, None)], None);
        assert!(ok.is_ok());
        let bad = |singles: &[SingleResponseSpec], nonce: Option<&[u8]>, produced: i64| {
            matches!(
                encode_response_data(&kh, produced, singles, nonce),
                Err(WireError::InvalidInput(_))
            )
        };
        assert!(bad(&[], None, NOW));
        assert!(bad(&[spec(CertStatus::Good, NOW, None)], None, -1));
        assert!(bad(
            &[spec(CertStatus::Good, NOW, Some(NOW - 1))],
            None,
            NOW
        ));
        assert!(bad(&[spec(CertStatus::Good, NOW, None)], Some(&[]), NOW));
        assert!(bad(
            &[spec(CertStatus::Good, NOW, None)],
            Some(&[1; 129]),
            NOW
        ));
        assert!(bad(
            &[spec(CertStatus::Good, 300_000_000_000, None)],
            None,
            NOW
        ));
        for reason in [7u8, 11, 255] {
            let st = CertStatus::Revoked {
                time: NOW,
                reason: Some(reason),
            };
            assert!(bad(&[spec(st, NOW, None)], None, NOW), "reason {reason}");
        }
        let mut not_der = spec(CertStatus::Good, NOW, None);
        not_der.cert_id_der.push(0);
        assert!(bad(&[not_der], None, NOW));
        let tbs = ok.unwrap();
        let sig = crate::x509::ecdsa_raw_to_der(&[1u8; 64]).unwrap();
        assert!(encode_basic_response(&tbs, SignatureAlg::EcdsaSha384, &sig, &[]).is_ok());
        assert!(encode_basic_response(&tbs[1..], SignatureAlg::EcdsaSha256, &sig, &[]).is_err());
        assert!(encode_basic_response(&tbs, SignatureAlg::EcdsaSha256, &[1, 2], &[]).is_err());
        assert!(encode_basic_response(&tbs, SignatureAlg::RsaSha256, &[1u8; 256], &[]).is_ok());
        assert!(encode_basic_response(&tbs, SignatureAlg::RsaSha256, &[1u8; 64], &[]).is_err());
        assert!(
            encode_basic_response(&tbs, SignatureAlg::EcdsaSha256, &sig, &[vec![0x30]]).is_err()
        );
    }

    #[test]
    fn response_data_layout() {
        let id = cert_id(&SHA1_OID_TLV, 20, &[0x01]);
        let spec = SingleResponseSpec {
            cert_id_der: id.clone(),
            status: CertStatus::Revoked {
                time: 0,
                reason: Some(1),
            },
            this_update: 1_000_000_000,
            next_update: None,
        };
        let kh = [0x11u8; 20];
        let der = encode_response_data(&kh, 1_000_000_000, &[spec], Some(&[9, 9])).unwrap();
        let expected = tlv(
            0x30,
            &cat(&[
                &tlv(0xa2, &tlv(0x04, &kh)),
                &tlv(0x18, b"20010909014640Z"),
                &tlv(
                    0x30,
                    &tlv(
                        0x30,
                        &cat(&[
                            &id,
                            &tlv(
                                0xa1,
                                &cat(&[
                                    &tlv(0x18, b"19700101000000Z"),
                                    &tlv(0xa0, &[0x0a, 0x01, 0x01]),
                                ]),
                            ),
                            &tlv(0x18, b"20010909014640Z"),
                        ]),
                    ),
                ),
                &tlv(
                    0xa1,
                    &tlv(0x30, &ext(&NONCE_OID_TLV, false, &tlv(0x04, &[9, 9]))),
                ),
            ]),
        );
        assert_eq!(hex::encode(&der), hex::encode(&expected));
    }

    // ------------------------------------------------------------------
    // Hand-made and hostile requests
    // ------------------------------------------------------------------

    fn is_malformed(r: Result<OcspRequest, WireError>) -> bool {
        matches!(r, Err(WireError::Malformed(_)))
    }

    #[test]
    fn hand_made_variants_accepted() {
        let id = cert_id(&SHA1_OID_TLV, 20, &[0x00, 0x80]);
        // explicit v1, requestorName, signature, non-critical unknown ext,
        // nonce in bare (legacy) form, singleRequestExtensions.
        let version = tlv(0xa0, &[0x02, 0x01, 0x00]);
        let requestor = tlv(0xa1, &tlv(0x82, b"ocsp.example"));
        let unknown = ext(&[0x06, 0x03, 0x2a, 0x03, 0x04], false, &[0x05, 0x00]);
        let bare_nonce = ext(&NONCE_OID_TLV, false, &[0xde, 0xad, 0xbe, 0xef]);
        let sig = tlv(
            0x30,
            &cat(&[
                &tlv(
                    0x30,
                    &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02],
                ),
                &tlv(0x03, &[0x00, 0x01]),
            ]),
        );
        let single_ext = tlv(0xa0, &tlv(0x30, &unknown));
        let req_entry = cat(&[&id, &single_ext]);
        let der = hand_request(
            &cat(&[&version, &requestor]),
            &[id.clone(), req_entry],
            &[unknown.clone(), bare_nonce],
            Some(&sig),
        );
        let req = parse_request(&der).unwrap();
        assert!(req.has_signature);
        assert_eq!(req.nonce, Some(vec![0xde, 0xad, 0xbe, 0xef]));
        assert_eq!(req.cert_ids.len(), 2);
        assert_eq!(req.cert_ids[0].serial, vec![0x80]);
        assert_eq!(req.cert_ids[0].der, id);
        // wrapped nonce, explicit critical FALSE, hash alg without NULL params
        let no_null = tlv(
            0x30,
            &cat(&[
                &tlv(0x30, &SHA1_OID_TLV),
                &tlv(0x04, &[1; 20]),
                &tlv(0x04, &[2; 20]),
                &tlv(0x02, &[0x00]),
            ]),
        );
        let wrapped = tlv(
            0x30,
            &cat(&[
                &NONCE_OID_TLV,
                &[0x01, 0x01, 0x00],
                &tlv(0x04, &tlv(0x04, &[7; 128])),
            ]),
        );
        let req = parse_request(&hand_request(
            &[],
            std::slice::from_ref(&no_null),
            &[wrapped],
            None,
        ))
        .unwrap();
        assert_eq!(req.nonce, Some(vec![7; 128]));
        assert_eq!(req.cert_ids[0].serial, vec![0]);
        assert_eq!(req.cert_ids[0].der, no_null);
        // 64 CertIDs is the limit
        let many = vec![id.clone(); MAX_CERT_IDS];
        assert_eq!(
            parse_request(&hand_request(&[], &many, &[], None))
                .unwrap()
                .cert_ids
                .len(),
            64
        );
    }

    #[test]
    fn hostile_requests_rejected() {
        let pki = pki();
        let good = ssl_request(MessageDigest::sha1(), &pki.ca, &[&pki.leaf]);
        assert!(parse_request(&good).is_ok());
        // truncated at every length
        for n in 0..good.len() {
            assert!(parse_request(&good[..n]).is_err(), "prefix {n}");
        }
        // trailing garbage
        assert!(is_malformed(parse_request(&cat(&[&good, &[0x00]]))));
        assert!(is_malformed(parse_request(&cat(&[&good, &good]))));
        // > 4 KiB, even if well-formed, and huge junk
        let id = cert_id(&SHA1_OID_TLV, 20, &[0x01]);
        let big = hand_request(
            &[],
            std::slice::from_ref(&id),
            &[ext(&[0x06, 0x02, 0x2a, 0x03], false, &[0; 4200])],
            None,
        );
        assert_eq!(parse_request(&big), Err(WireError::TooLarge));
        assert_eq!(parse_request(&vec![0x30; 10_000]), Err(WireError::TooLarge));
        // wrong outer tags
        let mut set = good.clone();
        set[0] = 0x31;
        assert!(is_malformed(parse_request(&set)));
        let mut ctx_tag = good.clone();
        ctx_tag[0] = 0xa0;
        assert!(is_malformed(parse_request(&ctx_tag)));
        // unknown hash OID: MD5 (made by OpenSSL) and a hand-made one
        let md5 = ssl_request(MessageDigest::md5(), &pki.ca, &[&pki.leaf]);
        assert_eq!(
            parse_request(&md5),
            Err(WireError::UnsupportedHash("1.2.840.113549.2.5".into()))
        );
        let sm3 = cert_id(&[0x06, 0x03, 0x2a, 0x03, 0x04], 20, &[0x01]);
        assert!(matches!(
            parse_request(&hand_request(&[], &[sm3], &[], None)),
            Err(WireError::UnsupportedHash(_))
        ));
        // empty request list, and too many CertIDs
        assert!(is_malformed(parse_request(&hand_request(
            &[],
            &[],
            &[],
            None
        ))));
        let too_many = vec![id.clone(); MAX_CERT_IDS + 1];
        assert!(is_malformed(parse_request(&hand_request(
            &[],
            &too_many,
            &[],
            None
        ))));
        // huge length prefixes
        for bytes in [
            vec![0x30, 0x84, 0xff, 0xff, 0xff, 0xff, 0x30, 0x00],
            vec![0x30, 0x88, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            vec![0x30, 0x80, 0x30, 0x00, 0x00, 0x00], // BER indefinite length
            vec![0x30, 0x82, 0x00, 0x05, 0x30, 0x03, 0x30, 0x01, 0x00], // non-minimal length
            vec![0x30],
            vec![],
        ] {
            assert!(is_malformed(parse_request(&bytes)), "{bytes:02x?}");
        }
        // nonce lengths 0 and 129 (wrapped and bare), duplicate nonce
        for value in [tlv(0x04, &[]), tlv(0x04, &[1; 129]), vec![], vec![3; 129]] {
            let n = ext(&NONCE_OID_TLV, false, &value);
            assert!(is_malformed(parse_request(&hand_request(
                &[],
                std::slice::from_ref(&id),
                &[n],
                None
            ))));
        }
        let n = ext(&NONCE_OID_TLV, false, &tlv(0x04, &[1; 16]));
        assert!(is_malformed(parse_request(&hand_request(
            &[],
            std::slice::from_ref(&id),
            &[n.clone(), n],
            None
        ))));
        // unknown critical extensions (request and single request level)
        let crit = ext(&[0x06, 0x03, 0x2a, 0x03, 0x04], true, &[0x05, 0x00]);
        assert_eq!(
            parse_request(&hand_request(
                &[],
                std::slice::from_ref(&id),
                std::slice::from_ref(&crit),
                None
            )),
            Err(WireError::UnsupportedCriticalExtension("1.2.3.4".into()))
        );
        let entry = cat(&[&id, &tlv(0xa0, &tlv(0x30, &crit))]);
        assert!(matches!(
            parse_request(&hand_request(&[], &[entry], &[], None)),
            Err(WireError::UnsupportedCriticalExtension(_))
        ));
        // hash length not matching the algorithm, negative / non-minimal serial
        for bad_id in [
            cert_id(&SHA1_OID_TLV, 32, &[0x01]),
            cert_id(&SHA1_OID_TLV, 20, &[0x80]),
            cert_id(&SHA1_OID_TLV, 20, &[0x00, 0x01]),
            cert_id(&SHA1_OID_TLV, 20, &[]),
        ] {
            assert!(is_malformed(parse_request(&hand_request(
                &[],
                &[bad_id],
                &[],
                None
            ))));
        }
        // version v2, empty signature, empty extensions list
        let v2 = tlv(0xa0, &[0x02, 0x01, 0x01]);
        assert!(is_malformed(parse_request(&hand_request(
            &v2,
            std::slice::from_ref(&id),
            &[],
            None
        ))));
        assert!(is_malformed(parse_request(&hand_request(
            &[],
            std::slice::from_ref(&id),
            &[],
            Some(&[])
        ))));
        let empty_exts = tlv(
            0x30,
            &cat(&[&tlv(0x30, &tlv(0x30, &id)), &tlv(0xa2, &tlv(0x30, &[]))]),
        );
        assert!(is_malformed(parse_request(&tlv(0x30, &empty_exts))));
    }

    #[test]
    fn fuzz_seed_corpus_parses() {
        // The named seeds in fuzz/corpus/ocsp_request (part of the repository), made with
        // `openssl ocsp -reqout`.
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/ocsp_request");
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("the seed corpus {} is missing: {e}", dir.display()));
        let mut seen = 0;
        for e in entries {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            // Only the named seeds: the fuzzer adds its own (mostly invalid) inputs by hash.
            if !name.ends_with(".der") {
                continue;
            }
            let req = parse_request(&std::fs::read(&path).unwrap())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(req.nonce.is_some(), name.contains("nonce"), "{name}");
            assert_eq!(req.has_signature, name.contains("signed"), "{name}");
            if name.starts_with("sha256_three") {
                assert_eq!(req.cert_ids.len(), 3);
            }
            seen += 1;
        }
        assert!(seen >= 5, "{seen} seeds");
    }

    /// xorshift64*: deterministic, no extra dev-dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    #[test]
    fn random_mutations_never_panic() {
        let pki = pki();
        let mut seeds = vec![
            ssl_request(MessageDigest::sha1(), &pki.ca, &[&pki.leaf]),
            ssl_request(MessageDigest::sha256(), &pki.ca, &[&pki.leaf, &pki.leaf2]),
            hand_request(
                &tlv(0xa0, &[0x02, 0x01, 0x00]),
                &[cert_id(&SHA1_OID_TLV, 20, &[0x01])],
                &[ext(&NONCE_OID_TLV, false, &tlv(0x04, &[1; 16]))],
                Some(&tlv(0x30, &tlv(0x03, &[0x00]))),
            ),
        ];
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let (mut ok, mut err) = (0usize, 0usize);
        for i in 0..30_000 {
            let seed = &seeds[i % seeds.len()];
            let mut m = seed.clone();
            for _ in 0..=rng.below(4) {
                let len = m.len();
                match rng.below(7) {
                    0 if len > 0 => {
                        let p = rng.below(len);
                        m[p] ^= 1 << rng.below(8);
                    }
                    1 if len > 0 => {
                        let p = rng.below(len);
                        m[p] = rng.next() as u8;
                    }
                    2 => {
                        let p = rng.below(len + 1);
                        m.insert(p, rng.next() as u8);
                    }
                    3 if len > 0 => {
                        m.remove(rng.below(len));
                    }
                    4 => m.truncate(rng.below(len + 1)),
                    5 if len > 0 => {
                        // set a plausible length byte to an extreme
                        let p = rng.below(len);
                        m[p] = [0x00, 0x7f, 0x80, 0x81, 0x84, 0xff][rng.below(6)];
                    }
                    _ if len > 4 => {
                        // duplicate a slice
                        let a = rng.below(len);
                        let b = (a + rng.below(32)).min(len);
                        let chunk = m[a..b].to_vec();
                        let p = rng.below(len);
                        m.splice(p..p, chunk);
                    }
                    _ => {}
                }
            }
            match parse_request(&m) {
                Ok(req) => {
                    ok += 1;
                    assert!(!req.cert_ids.is_empty() && req.cert_ids.len() <= MAX_CERT_IDS);
                    for id in &req.cert_ids {
                        assert_eq!(id.issuer_name_hash.len(), id.hash_alg.output_len());
                        // every echoed CertID is itself encodable
                        let spec = SingleResponseSpec {
                            cert_id_der: id.der.clone(),
                            status: CertStatus::Unknown,
                            this_update: NOW,
                            next_update: None,
                        };
                        encode_response_data(&[0; 20], NOW, &[spec], req.nonce.as_deref()).unwrap();
                    }
                    if ok % 50 == 0 && seeds.len() < 16 {
                        seeds.push(m);
                    }
                }
                Err(_) => err += 1,
            }
        }
        eprintln!("mutations: {ok} accepted, {err} rejected");
        assert!(err > 1000);
    }
}
