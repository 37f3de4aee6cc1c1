//! CRLs (RFC 5280 §5): the TBSCertList we sign. Format code only; the CA signs it.
//!
//! x509-cert 0.3's `CrlBuilder` wants an in-process `Signer` and keeps `TbsCertList` fields
//! private; like [`super::TbsCertificate`], we encode the TBS with our own `der` derive.

use der::asn1::{OctetString, Uint};
use der::{Encode, Sequence};
use spki::AlgorithmIdentifierOwned;
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::AuthorityKeyIdentifier;
use x509_cert::name::RdnSequence;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::Time;

use super::{ParsedCert, X509Error};
use crate::alg::SignatureAlg;

const OID_CRL_NUMBER: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("2.5.29.20");
const OID_CRL_REASON: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("2.5.29.21");
const OID_AKI: der::asn1::ObjectIdentifier = der::asn1::ObjectIdentifier::new_unwrap("2.5.29.35");

#[derive(Clone, Debug, Sequence)]
struct RevokedCert {
    serial: SerialNumber,
    revocation_date: Time,
    #[asn1(optional = "true")]
    extensions: Option<Vec<Extension>>,
}

/// TBSCertList (v2).
#[derive(Clone, Debug, Sequence)]
struct TbsCertList {
    version: u8,
    signature: AlgorithmIdentifierOwned,
    issuer: RdnSequence,
    this_update: Time,
    next_update: Time,
    #[asn1(optional = "true")]
    revoked: Option<Vec<RevokedCert>>,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    extensions: Option<Vec<Extension>>,
}

/// One revoked certificate as a CRL lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Serial, lower-case hex.
    pub serial_hex: String,
    /// revocationDate, unix seconds.
    pub revoked_at: i64,
    /// CRLReason code; `None` (and never 0, which RFC 5280 says to omit) for no reason.
    pub reason_code: Option<u8>,
}

/// What a CRL says.
#[derive(Debug)]
pub struct CrlContent<'a> {
    /// The CA certificate (issuer name and AKI come from it).
    pub issuer: &'a ParsedCert,
    /// CRL number.
    pub number: i64,
    /// thisUpdate, unix seconds.
    pub this_update: i64,
    /// nextUpdate, unix seconds.
    pub next_update: i64,
    /// The revoked, unexpired certificates.
    pub entries: &'a [Entry],
    /// The signature algorithm the CA key uses.
    pub signature: SignatureAlg,
}

/// The DER TBSCertList of `c`, ready to be signed.
pub fn tbs_der(c: &CrlContent<'_>) -> Result<Vec<u8>, X509Error> {
    let mut revoked = Vec::with_capacity(c.entries.len());
    for e in c.entries {
        let bytes = hex::decode(&e.serial_hex)
            .map_err(|x| X509Error::Der(format!("stored serial {}: {x}", e.serial_hex)))?;
        // RFC 5280 §5.3.1: omit reasonCode rather than encode unspecified (0).
        let extensions = match e.reason_code.filter(|c| *c != 0) {
            None => None,
            Some(code) => Some(vec![Extension {
                extn_id: OID_CRL_REASON,
                critical: false,
                extn_value: OctetString::new(vec![0x0a, 0x01, code])?,
            }]),
        };
        revoked.push(RevokedCert {
            serial: SerialNumber::new(&bytes)?,
            revocation_date: super::x509_time(e.revoked_at)?,
            extensions,
        });
    }
    let aki = AuthorityKeyIdentifier {
        key_identifier: c.issuer.ski().map(OctetString::new).transpose()?,
        authority_cert_issuer: None,
        authority_cert_serial_number: None,
    };
    let number = u64::try_from(c.number)
        .map_err(|_| X509Error::Der(format!("CRL number {} is negative", c.number)))?;
    let tbs = TbsCertList {
        version: 1,
        signature: super::signature_alg_id(c.signature),
        issuer: c.issuer.tbs().subject().as_ref().clone(),
        this_update: super::x509_time(c.this_update)?,
        next_update: super::x509_time(c.next_update)?,
        revoked: if revoked.is_empty() {
            None
        } else {
            Some(revoked)
        },
        extensions: Some(vec![
            super::extension(OID_AKI, false, &aki)?,
            super::extension(OID_CRL_NUMBER, false, &Uint::new(&number.to_be_bytes())?)?,
        ]),
    };
    Ok(tbs.to_der()?)
}
