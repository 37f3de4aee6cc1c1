//! X.509 structures we build ourselves: TBSCertificate assembly, names, extensions, SKIs, ECDSA
//! signature encoding, CRLs ([`crl`]), PKCS#10 requests ([`csr`]) and certs-only PKCS#7
//! ([`pkcs7`]). A leaf: no I/O, no keys.
//!
//! x509-cert 0.3 keeps `TbsCertificate`'s fields private and its builder imposes CA/B Forum
//! profiles; ISO 15118 profiles differ (8-byte SKIs, no EKU, critical KU everywhere), so we encode
//! the TBS with our own `der` derive and reuse x509-cert's types for every field inside it.

pub mod chain;
pub mod crl;
pub mod csr;
pub mod ecdsa;
pub mod name;
pub mod pkcs7;

use der::asn1::{BitString, ObjectIdentifier, OctetString};
use der::{Decode, Encode, Sequence};
use sha1::{Digest, Sha1};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::ext::Extension;
use x509_cert::name::RdnSequence;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};

use crate::alg::{KeyAlg, SignatureAlg};

/// id-ecPublicKey.
pub const OID_EC_PUBLIC_KEY: ObjectIdentifier = const_oid::db::rfc5912::ID_EC_PUBLIC_KEY;
/// id-pkix-ocsp-nocheck (RFC 6960 §4.2.2.2.1).
pub const OID_OCSP_NOCHECK: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.5");
/// id-kp-OCSPSigning.
pub const OID_KP_OCSP_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.9");
/// id-ad-ocsp (AIA access method).
pub const OID_AD_OCSP: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1");

/// Errors of the X.509 format code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum X509Error {
    /// DER encoding or decoding failed.
    #[error("DER: {0}")]
    Der(String),
    /// A distinguished name (as text or DER) is not acceptable.
    #[error("{0}")]
    Name(String),
    /// A key, curve or signature we cannot use.
    #[error("{0}")]
    Key(String),
    /// PEM input of the wrong kind.
    #[error("{0}")]
    Pem(String),
}

impl From<der::Error> for X509Error {
    fn from(e: der::Error) -> X509Error {
        X509Error::Der(e.to_string())
    }
}

/// TBSCertificate with public fields (v3 only).
#[derive(Clone, Debug, Sequence)]
pub struct TbsCertificate {
    /// Always 2 (v3).
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
    pub version: u8,
    /// Serial number.
    pub serial_number: SerialNumber,
    /// Signature algorithm (must match the outer one).
    pub signature: AlgorithmIdentifierOwned,
    /// Issuer name.
    pub issuer: RdnSequence,
    /// Validity period.
    pub validity: Validity,
    /// Subject name.
    pub subject: RdnSequence,
    /// Subject public key.
    pub subject_public_key_info: SubjectPublicKeyInfoOwned,
    /// Extensions (v3).
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

/// `AlgorithmIdentifier` of a signature: ecdsa-with-SHAx with parameters absent (RFC 5758),
/// sha256WithRSAEncryption with NULL parameters (RFC 4055 §5: they MUST be present and NULL).
pub fn signature_alg_id(sig: SignatureAlg) -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid: sig.oid(),
        parameters: sig.is_rsa().then(|| der::Any::from(der::asn1::Null)),
    }
}

/// Signed structure = SEQUENCE { tbs, algorithm, BIT STRING signature }.
pub fn assemble_signed(
    tbs_der: &[u8],
    sig: SignatureAlg,
    sig_der: &[u8],
) -> Result<Vec<u8>, X509Error> {
    let alg = signature_alg_id(sig).to_der()?;
    let bits = BitString::from_bytes(sig_der).and_then(|b| b.to_der())?;
    Ok(der_sequence(&[tbs_der, &alg, &bits]))
}

/// ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }
#[derive(Sequence)]
struct EcdsaSigValue<'a> {
    r: der::asn1::UintRef<'a>,
    s: der::asn1::UintRef<'a>,
}

/// Raw `r||s` (64 bytes for P-256, 96 for P-384, 132 for P-521, as PKCS#11 `CKM_ECDSA` returns
/// it) to DER `ECDSA-Sig-Value`, as X.509, CRLs and OCSP carry it. Refuses other lengths and a
/// zero `r` or `s`.
pub fn ecdsa_raw_to_der(raw: &[u8]) -> Result<Vec<u8>, X509Error> {
    if !matches!(raw.len(), 64 | 96 | 132) {
        return Err(X509Error::Key(format!(
            "raw ECDSA signature of {} bytes",
            raw.len()
        )));
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    if r.iter().all(|&b| b == 0) || s.iter().all(|&b| b == 0) {
        return Err(X509Error::Key("zero r or s in ECDSA signature".into()));
    }
    Ok(EcdsaSigValue {
        r: der::asn1::UintRef::new(r)?,
        s: der::asn1::UintRef::new(s)?,
    }
    .to_der()?)
}

/// SubjectPublicKeyInfo DER for an EC point (or an RSA public key, see [`spki_owned`]).
pub fn spki_der(alg: KeyAlg, point: &[u8]) -> Result<Vec<u8>, X509Error> {
    Ok(spki_owned(alg, point)?.to_der()?)
}

/// SubjectPublicKeyInfo for `key`: an uncompressed EC point on `alg`'s curve, or for an RSA
/// `alg` the DER `RSAPublicKey` (PKCS#1) under rsaEncryption with NULL parameters.
pub fn spki_owned(alg: KeyAlg, key: &[u8]) -> Result<SubjectPublicKeyInfoOwned, X509Error> {
    let algorithm = match alg.curve_oid() {
        Some(curve) => AlgorithmIdentifierOwned {
            oid: OID_EC_PUBLIC_KEY,
            parameters: Some(der::Any::from(curve)),
        },
        None => AlgorithmIdentifierOwned {
            oid: OID_RSA_ENCRYPTION,
            parameters: Some(der::Any::from(der::asn1::Null)),
        },
    };
    Ok(SubjectPublicKeyInfoOwned {
        algorithm,
        subject_public_key: BitString::from_bytes(key)?,
    })
}

/// rsaEncryption (PKCS#1).
pub const OID_RSA_ENCRYPTION: ObjectIdentifier = const_oid::db::rfc5912::RSA_ENCRYPTION;

/// RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }
#[derive(Sequence)]
struct RsaPublicKey<'a> {
    modulus: der::asn1::UintRef<'a>,
    public_exponent: der::asn1::UintRef<'a>,
}

/// DER `RSAPublicKey` from a big-endian modulus and exponent (as PKCS#11 returns them).
pub fn rsa_public_key_der(modulus: &[u8], exponent: &[u8]) -> Result<Vec<u8>, X509Error> {
    Ok(RsaPublicKey {
        modulus: der::asn1::UintRef::new(modulus)?,
        public_exponent: der::asn1::UintRef::new(exponent)?,
    }
    .to_der()?)
}

/// Modulus length in bits of a DER `RSAPublicKey`.
fn rsa_modulus_bits(der: &[u8]) -> Result<u32, X509Error> {
    let k =
        RsaPublicKey::from_der(der).map_err(|e| X509Error::Key(format!("RSA public key: {e}")))?;
    let m = k.modulus.as_bytes();
    let lead = m.first().copied().unwrap_or(0);
    if lead == 0 {
        return Err(X509Error::Key("RSA modulus is zero".into()));
    }
    Ok((m.len() as u32 - 1) * 8 + (8 - lead.leading_zeros()))
}

/// Key algorithm of an SPKI, if it is an EC key on a curve we support or an RSA key of 2048,
/// 3072 or 4096 bits (which profiles take it is policy's business).
pub fn spki_key_alg(spki: &SubjectPublicKeyInfoOwned) -> Result<KeyAlg, X509Error> {
    if spki.algorithm.oid == OID_RSA_ENCRYPTION {
        let bits = rsa_modulus_bits(spki.subject_public_key.raw_bytes())?;
        return KeyAlg::from_rsa_bits(bits).ok_or_else(|| {
            X509Error::Key(format!(
                "RSA key of {bits} bits is not accepted (use 2048, 3072 or 4096)"
            ))
        });
    }
    if spki.algorithm.oid != OID_EC_PUBLIC_KEY {
        return Err(X509Error::Key(format!(
            "public key algorithm {} is not id-ecPublicKey or rsaEncryption",
            spki.algorithm.oid
        )));
    }
    let curve: ObjectIdentifier = spki
        .algorithm
        .parameters
        .as_ref()
        .ok_or_else(|| X509Error::Key("EC public key without namedCurve parameters".into()))?
        .decode_as()
        .map_err(|_| X509Error::Key("EC parameters are not a namedCurve OID".into()))?;
    KeyAlg::from_curve_oid(&curve)
        .ok_or_else(|| X509Error::Key(format!("unsupported curve {curve}")))
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

/// The subject key identifier of `spki` by `method`.
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

/// An extension holding the DER of `value`.
pub fn extension<T: Encode>(
    oid: ObjectIdentifier,
    critical: bool,
    value: &T,
) -> Result<Extension, X509Error> {
    Ok(Extension {
        extn_id: oid,
        critical,
        extn_value: OctetString::new(value.to_der()?)?,
    })
}

/// RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050.
pub fn x509_time(unix: i64) -> Result<Time, X509Error> {
    let secs = u64::try_from(unix).map_err(|_| X509Error::Der("time before 1970".into()))?;
    let dt = der::DateTime::from_unix_duration(std::time::Duration::from_secs(secs))?;
    if dt.year() < 2050 {
        Ok(Time::UtcTime(der::asn1::UtcTime::from_date_time(dt)?))
    } else {
        Ok(Time::GeneralTime(
            der::asn1::GeneralizedTime::from_date_time(dt),
        ))
    }
}

/// Unix seconds of an X.509 time.
pub fn time_to_unix(t: &Time) -> i64 {
    t.to_unix_duration().as_secs() as i64
}

/// A parsed certificate with the fields the CA needs, kept together with its DER.
#[derive(Clone, Debug)]
pub struct ParsedCert {
    /// The certificate as received or issued.
    pub der: Vec<u8>,
    /// Its decoded form.
    pub cert: x509_cert::Certificate,
}

impl ParsedCert {
    /// Parse DER.
    pub fn from_der(der: &[u8]) -> Result<ParsedCert, X509Error> {
        let cert = x509_cert::Certificate::from_der(der)?;
        Ok(ParsedCert {
            der: der.to_vec(),
            cert,
        })
    }
    /// Parse one PEM `CERTIFICATE` block.
    pub fn from_pem(pem: &[u8]) -> Result<ParsedCert, X509Error> {
        let (label, der) = der::pem::decode_vec(pem).map_err(|e| X509Error::Pem(e.to_string()))?;
        if label != "CERTIFICATE" {
            return Err(X509Error::Pem(format!(
                "expected a CERTIFICATE PEM block, found {label}"
            )));
        }
        Self::from_der(&der)
    }
    /// Parse every `CERTIFICATE` block of a PEM bundle, in order.
    pub fn chain_from_pem(pem: &[u8]) -> Result<Vec<ParsedCert>, X509Error> {
        let certs = x509_cert::Certificate::load_pem_chain(pem)
            .map_err(|e| X509Error::Pem(e.to_string()))?;
        let mut out = Vec::with_capacity(certs.len());
        for c in certs {
            out.push(ParsedCert::from_der(&c.to_der()?)?);
        }
        Ok(out)
    }
    /// The TBSCertificate.
    pub fn tbs(&self) -> &x509_cert::TbsCertificate {
        self.cert.tbs_certificate()
    }
    /// Subject name, DER.
    pub fn subject_der(&self) -> Vec<u8> {
        self.tbs().subject().to_der().unwrap_or_default()
    }
    /// Subject name as text (`C=DE, O=…, CN=…`).
    pub fn subject_string(&self) -> String {
        name::to_string(self.tbs().subject().as_ref())
    }
    /// Issuer name as text.
    pub fn issuer_string(&self) -> String {
        name::to_string(self.tbs().issuer().as_ref())
    }
    /// Serial number, lower-case hex as DER has it.
    pub fn serial_hex(&self) -> String {
        hex::encode(self.tbs().serial_number().as_bytes())
    }
    /// notBefore, unix seconds.
    pub fn not_before(&self) -> i64 {
        time_to_unix(&self.tbs().validity().not_before)
    }
    /// notAfter, unix seconds.
    pub fn not_after(&self) -> i64 {
        time_to_unix(&self.tbs().validity().not_after)
    }
    /// Its public key.
    pub fn spki(&self) -> &SubjectPublicKeyInfoOwned {
        self.tbs().subject_public_key_info()
    }
    /// Its public key, DER.
    pub fn spki_der(&self) -> Vec<u8> {
        self.spki().to_der().unwrap_or_default()
    }
    /// Whether it is self-issued (a root).
    pub fn is_self_issued(&self) -> bool {
        self.tbs().issuer() == self.tbs().subject()
    }
    /// Raw extension value by OID.
    pub fn extension(&self, oid: ObjectIdentifier) -> Option<&Extension> {
        self.tbs()
            .extensions()
            .and_then(|exts| exts.iter().find(|e| e.extn_id == oid))
    }
    /// The extendedKeyUsage purposes, `None` when the extension is absent.
    pub fn extended_key_usage(&self) -> Option<Vec<ObjectIdentifier>> {
        let e = self.extension(const_oid::db::rfc5280::ID_CE_EXT_KEY_USAGE)?;
        x509_cert::ext::pkix::ExtendedKeyUsage::from_der(e.extn_value.as_bytes())
            .ok()
            .map(|eku| eku.0)
    }

    /// Its subjectAltName DNS names and IP addresses as allow-list entries (`dns:NAME`,
    /// `ip:ADDRESS`); other name types are left out.
    pub fn subject_alt_names(&self) -> Vec<String> {
        use x509_cert::ext::pkix::name::GeneralName;
        let Some(e) = self.extension(const_oid::db::rfc5280::ID_CE_SUBJECT_ALT_NAME) else {
            return Vec::new();
        };
        let Ok(names) = x509_cert::ext::pkix::SubjectAltName::from_der(e.extn_value.as_bytes())
        else {
            return Vec::new();
        };
        names
            .0
            .into_iter()
            .filter_map(|n| match n {
                GeneralName::DnsName(d) => {
                    Some(format!("dns:{}", d.to_string().to_ascii_lowercase()))
                }
                GeneralName::IpAddress(os) => {
                    let b = os.as_bytes();
                    let ip = match b.len() {
                        4 => std::net::IpAddr::from(<[u8; 4]>::try_from(b).ok()?),
                        16 => std::net::IpAddr::from(<[u8; 16]>::try_from(b).ok()?),
                        _ => return None,
                    };
                    Some(format!("ip:{ip}"))
                }
                _ => None,
            })
            .collect()
    }

    /// Issuer name, DER.
    pub fn issuer_der(&self) -> Vec<u8> {
        self.tbs().issuer().to_der().unwrap_or_default()
    }

    /// SHA-256 of the DER, lower-case hex (a certificate's fingerprint).
    pub fn sha256_hex(&self) -> String {
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&self.der))
    }

    /// Its subject key identifier.
    pub fn ski(&self) -> Option<Vec<u8>> {
        let e = self.extension(const_oid::db::rfc5280::ID_CE_SUBJECT_KEY_IDENTIFIER)?;
        let os = OctetString::from_der(e.extn_value.as_bytes()).ok()?;
        Some(os.as_bytes().to_vec())
    }

    /// The key identifier of its authority key identifier (which issuer key signed it).
    pub fn aki(&self) -> Option<Vec<u8>> {
        let e = self.extension(const_oid::db::rfc5280::ID_CE_AUTHORITY_KEY_IDENTIFIER)?;
        let aki =
            x509_cert::ext::pkix::AuthorityKeyIdentifier::from_der(e.extn_value.as_bytes()).ok()?;
        aki.key_identifier.map(|k| k.as_bytes().to_vec())
    }

    /// PEM `CERTIFICATE`.
    pub fn pem(&self) -> String {
        to_pem("CERTIFICATE", &self.der)
    }
}

/// OCPP `CertificateHashDataType` of a certificate (what `GetInstalledCertificateIds` reports
/// and `hashRootCertificate` names): hex hashes of its issuer's name and public key (the
/// subjectPublicKey BIT STRING contents, as in an OCSP CertID) and its serial in lower-case hex
/// without leading zeros (as EVerest writes it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CertHashData {
    /// `SHA256`, `SHA384` or `SHA512`.
    pub hash_algorithm: &'static str,
    /// Hex hash of the issuer's DER name.
    pub issuer_name_hash: String,
    /// Hex hash of the issuer's public key.
    pub issuer_key_hash: String,
    /// Hex serial number, leading zeros stripped.
    pub serial_number: String,
}

/// The hash data of `cert` issued by `issuer` (a root is its own issuer).
pub fn cert_hash_data(
    cert: &ParsedCert,
    issuer: &ParsedCert,
    hash: crate::alg::HashAlg,
) -> CertHashData {
    let serial = cert.serial_hex();
    let stripped = serial.trim_start_matches('0');
    CertHashData {
        hash_algorithm: hash.ocpp_name(),
        issuer_name_hash: hex::encode(hash.digest(&cert.issuer_der())),
        issuer_key_hash: hex::encode(hash.digest(issuer.spki().subject_public_key.raw_bytes())),
        serial_number: if stripped.is_empty() { "0" } else { stripped }.to_string(),
    }
}

/// PEM with `label` (LF line endings).
pub fn to_pem(label: &str, der: &[u8]) -> String {
    der::pem::encode_string(label, der::pem::LineEnding::LF, der).unwrap_or_default()
}

/// A serial number as the store keys it: lower-case hex without separators or `0x`, an even
/// number of digits (leading zero bytes kept as DER has them). `None` when it is not hex or longer
/// than 21 bytes.
pub fn normalize_serial_hex(s: &str) -> Option<String> {
    let t: String = s
        .trim()
        .trim_start_matches("0x")
        .chars()
        .filter(|c| *c != ':' && *c != ' ')
        .collect::<String>()
        .to_ascii_lowercase();
    if t.is_empty() || t.len() > 42 || !t.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    Some(if t.len() % 2 == 1 { format!("0{t}") } else { t })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_signatures_convert_only_at_curve_lengths() {
        let mut raw = vec![0u8; 64];
        raw[31] = 1;
        raw[63] = 2;
        assert_eq!(
            ecdsa_raw_to_der(&raw).unwrap(),
            vec![0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x02]
        );
        let mut high = vec![0x80u8; 132];
        high[0] = 0x01;
        let der = ecdsa_raw_to_der(&high).unwrap();
        assert!(openssl::ecdsa::EcdsaSig::from_der(&der).is_ok());
        assert!(ecdsa_raw_to_der(&[1u8; 63]).is_err());
        assert!(ecdsa_raw_to_der(&[]).is_err());
        let mut zero_s = vec![1u8; 64];
        zero_s[32..].fill(0);
        assert!(ecdsa_raw_to_der(&zero_s).is_err());
    }

    #[test]
    fn serials_normalise() {
        assert_eq!(normalize_serial_hex("0x0A:BC").as_deref(), Some("0abc"));
        assert_eq!(normalize_serial_hex("abc").as_deref(), Some("0abc"));
        assert_eq!(normalize_serial_hex("xyz"), None);
        assert_eq!(normalize_serial_hex(&"a".repeat(44)), None);
    }
}
