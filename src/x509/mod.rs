//! X.509 structures we build ourselves: TBSCertificate assembly, names, extensions, SKIs, ECDSA
//! signature encoding. A leaf: no I/O, no keys.
//!
//! x509-cert 0.3 keeps `TbsCertificate`'s fields private and its builder imposes CA/B Forum
//! profiles; ISO 15118 profiles differ (8-byte SKIs, no EKU, critical KU everywhere), so we encode
//! the TBS with our own `der` derive and reuse x509-cert's types for every field inside it.

pub mod csr;
pub mod name;

use der::asn1::{BitString, ObjectIdentifier, OctetString};
use der::{Decode, Encode, Sequence};
use sha1::{Digest, Sha1};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::ext::Extension;
use x509_cert::name::RdnSequence;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};

use crate::hsm::{HashAlg, KeyAlg};

pub const OID_EC_PUBLIC_KEY: ObjectIdentifier = const_oid::db::rfc5912::ID_EC_PUBLIC_KEY;
pub const OID_OCSP_NOCHECK: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.5");
pub const OID_KP_OCSP_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.9");
pub const OID_AD_OCSP: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1");

/// TBSCertificate with public fields (v3 only).
#[derive(Clone, Debug, Sequence)]
pub struct TbsCertificate {
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
    pub version: u8,
    pub serial_number: SerialNumber,
    pub signature: AlgorithmIdentifierOwned,
    pub issuer: RdnSequence,
    pub validity: Validity,
    pub subject: RdnSequence,
    pub subject_public_key_info: SubjectPublicKeyInfoOwned,
    #[asn1(context_specific = "3", tag_mode = "EXPLICIT")]
    pub extensions: Vec<Extension>,
}

/// DER length octets.
fn der_len(len: usize) -> Vec<u8> {
    if len < 0x80 {
        vec![len as u8]
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        let mut out = vec![0x80 | bytes.len() as u8];
        out.extend(bytes);
        out
    }
}

/// DER SEQUENCE over already-encoded parts.
pub fn der_sequence(parts: &[&[u8]]) -> Vec<u8> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut out = vec![0x30];
    out.extend(der_len(len));
    for p in parts {
        out.extend_from_slice(p);
    }
    out
}

/// `AlgorithmIdentifier` for ecdsa-with-SHAx (parameters absent).
pub fn ecdsa_alg(hash: HashAlg) -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid: hash.ecdsa_oid(),
        parameters: None,
    }
}

/// Signed structure = SEQUENCE { tbs, algorithm, BIT STRING signature }.
pub fn assemble_signed(tbs_der: &[u8], hash: HashAlg, sig_der: &[u8]) -> Result<Vec<u8>, String> {
    let alg = ecdsa_alg(hash).to_der().map_err(|e| e.to_string())?;
    let bits = BitString::from_bytes(sig_der)
        .and_then(|b| b.to_der())
        .map_err(|e| e.to_string())?;
    Ok(der_sequence(&[tbs_der, &alg, &bits]))
}

/// Raw `r || s` (as CKM_ECDSA returns it) to DER `ECDSA-Sig-Value`.
pub fn ecdsa_raw_to_der(raw: &[u8]) -> Result<Vec<u8>, String> {
    if raw.is_empty() || !raw.len().is_multiple_of(2) {
        return Err(format!("raw ECDSA signature of odd length {}", raw.len()));
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    let r = der::asn1::UintRef::new(r).map_err(|e| e.to_string())?;
    let s = der::asn1::UintRef::new(s).map_err(|e| e.to_string())?;
    let r = r.to_der().map_err(|e| e.to_string())?;
    let s = s.to_der().map_err(|e| e.to_string())?;
    Ok(der_sequence(&[&r, &s]))
}

/// SubjectPublicKeyInfo DER for an EC point.
pub fn spki_der(alg: KeyAlg, point: &[u8]) -> Vec<u8> {
    spki_owned(alg, point)
        .to_der()
        .expect("SPKI of a valid point encodes")
}

pub fn spki_owned(alg: KeyAlg, point: &[u8]) -> SubjectPublicKeyInfoOwned {
    SubjectPublicKeyInfoOwned {
        algorithm: AlgorithmIdentifierOwned {
            oid: OID_EC_PUBLIC_KEY,
            parameters: Some(der::Any::from(alg.curve_oid())),
        },
        subject_public_key: BitString::from_bytes(point).expect("point fits a BIT STRING"),
    }
}

/// Key algorithm of an SPKI, if it is an EC key on a curve we support.
pub fn spki_key_alg(spki: &SubjectPublicKeyInfoOwned) -> Result<KeyAlg, String> {
    if spki.algorithm.oid != OID_EC_PUBLIC_KEY {
        return Err(format!(
            "public key algorithm {} is not id-ecPublicKey",
            spki.algorithm.oid
        ));
    }
    let curve: ObjectIdentifier = spki
        .algorithm
        .parameters
        .as_ref()
        .ok_or("EC public key without namedCurve parameters")?
        .decode_as()
        .map_err(|_| "EC parameters are not a namedCurve OID".to_string())?;
    KeyAlg::from_curve_oid(&curve).ok_or_else(|| format!("unsupported curve {curve}"))
}

/// How the subject key identifier is derived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SkiMethod {
    /// 8 bytes: `0100` + the low 60 bits of SHA-1 over the whole SPKI DER (Hubject's practice;
    /// saves 12 bytes per SKI/AKI under the 800-byte cap).
    Short,
    /// 20 bytes: SHA-1 over the subjectPublicKey BIT STRING contents (RFC 5280 §4.2.1.2 method 1).
    Sha1,
}

pub fn compute_ski(method: SkiMethod, spki: &SubjectPublicKeyInfoOwned) -> Vec<u8> {
    match method {
        SkiMethod::Short => {
            let d = Sha1::digest(spki.to_der().unwrap_or_default());
            let mut v = d[12..].to_vec();
            v[0] = 0x40 | (v[0] & 0x0f);
            v
        }
        SkiMethod::Sha1 => Sha1::digest(spki.subject_public_key.raw_bytes()).to_vec(),
    }
}

pub fn extension<T: Encode>(
    oid: ObjectIdentifier,
    critical: bool,
    value: &T,
) -> Result<Extension, String> {
    Ok(Extension {
        extn_id: oid,
        critical,
        extn_value: OctetString::new(value.to_der().map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?,
    })
}

/// RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050.
pub fn x509_time(unix: i64) -> Result<Time, String> {
    let secs = u64::try_from(unix).map_err(|_| "time before 1970".to_string())?;
    let dt = der::DateTime::from_unix_duration(std::time::Duration::from_secs(secs))
        .map_err(|e| e.to_string())?;
    if dt.year() < 2050 {
        Ok(Time::UtcTime(
            der::asn1::UtcTime::from_date_time(dt).map_err(|e| e.to_string())?,
        ))
    } else {
        Ok(Time::GeneralTime(
            der::asn1::GeneralizedTime::from_date_time(dt),
        ))
    }
}

pub fn time_to_unix(t: &Time) -> i64 {
    t.to_unix_duration().as_secs() as i64
}

/// A parsed certificate with the fields the CA needs, kept together with its DER.
#[derive(Clone, Debug)]
pub struct ParsedCert {
    pub der: Vec<u8>,
    pub cert: x509_cert::Certificate,
}

impl ParsedCert {
    pub fn from_der(der: &[u8]) -> Result<ParsedCert, String> {
        let cert = x509_cert::Certificate::from_der(der).map_err(|e| e.to_string())?;
        Ok(ParsedCert {
            der: der.to_vec(),
            cert,
        })
    }
    pub fn from_pem(pem: &[u8]) -> Result<ParsedCert, String> {
        let (label, der) = der::pem::decode_vec(pem).map_err(|e| e.to_string())?;
        if label != "CERTIFICATE" {
            return Err(format!("expected a CERTIFICATE PEM block, found {label}"));
        }
        Self::from_der(&der)
    }
    pub fn tbs(&self) -> &x509_cert::TbsCertificate {
        self.cert.tbs_certificate()
    }
    pub fn subject_der(&self) -> Vec<u8> {
        self.tbs().subject().to_der().unwrap_or_default()
    }
    pub fn subject_string(&self) -> String {
        name::to_string(self.tbs().subject().as_ref())
    }
    pub fn issuer_string(&self) -> String {
        name::to_string(self.tbs().issuer().as_ref())
    }
    pub fn serial_hex(&self) -> String {
        hex::encode(self.tbs().serial_number().as_bytes())
    }
    pub fn not_before(&self) -> i64 {
        time_to_unix(&self.tbs().validity().not_before)
    }
    pub fn not_after(&self) -> i64 {
        time_to_unix(&self.tbs().validity().not_after)
    }
    pub fn spki(&self) -> &SubjectPublicKeyInfoOwned {
        self.tbs().subject_public_key_info()
    }
    pub fn spki_der(&self) -> Vec<u8> {
        self.spki().to_der().unwrap_or_default()
    }
    /// Raw extension value by OID.
    pub fn extension(&self, oid: ObjectIdentifier) -> Option<&Extension> {
        self.tbs()
            .extensions()
            .and_then(|exts| exts.iter().find(|e| e.extn_id == oid))
    }
    pub fn ski(&self) -> Option<Vec<u8>> {
        let e = self.extension(const_oid::db::rfc5280::ID_CE_SUBJECT_KEY_IDENTIFIER)?;
        let os = OctetString::from_der(e.extn_value.as_bytes()).ok()?;
        Some(os.as_bytes().to_vec())
    }
    pub fn pem(&self) -> String {
        to_pem("CERTIFICATE", &self.der)
    }
}

pub fn to_pem(label: &str, der: &[u8]) -> String {
    der::pem::encode_string(label, der::pem::LineEnding::LF, der).unwrap_or_default()
}
