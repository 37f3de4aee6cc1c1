//! A throw-away OEM PKI for trying provisioning out (`pnc-pki ev oem-chain`): root, sub-CA 1,
//! sub-CA 2 and one provisioning certificate, made with OpenSSL in process to the `oem-*`
//! profiles of `policies/` (docs/profiles.md): P-256/SHA-256 (-2) or P-521/SHA-512 (-20),
//! DC=OEM on the root and the leaf, critical basicConstraints (pathLen 1 / 0 on the sub-CAs),
//! critical keyUsage (keyCertSign + cRLSign; digitalSignature + keyAgreement on the leaf),
//! 8-byte SKI (`0100` + low 60 bits of SHA-1 over the SPKI) and AKI = issuer SKI, 128-bit
//! positive serials, CN = PCID on the leaf. Unlike a real OEM PKI they carry no AIA: there is no
//! responder for a throw-away chain, and an OCSP URL nobody answers would make a CPO that
//! requires revocation status refuse the vehicle.

use openssl::asn1::{Asn1Object, Asn1OctetString, Asn1Time};
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{BasicConstraints, KeyUsage};
use openssl::x509::{X509, X509Extension, X509NameBuilder};
use sha1::{Digest, Sha1};

use super::{EvError, R};
use crate::exi::Schema;

/// The certificates and keys of a throw-away OEM PKI.
pub struct OemChain {
    /// OEM root (self-signed, DC=OEM).
    pub root: X509,
    /// OEM sub-CA 1 (pathLen 1).
    pub sub1: X509,
    /// OEM sub-CA 2 (pathLen 0), issuer of the provisioning certificate.
    pub sub2: X509,
    /// The vehicle's provisioning certificate (CN = PCID).
    pub leaf: X509,
    /// Its private key.
    pub leaf_key: PKey<Private>,
    /// Sub-CA 2's private key: more vehicles of the same OEM ([`another_vehicle`]).
    pub sub2_key: PKey<Private>,
    /// The schema and organisation the chain was made for.
    schema: Schema,
    org: String,
}

/// The 8-byte SKI of the profiles: `01` nibble marker + the low 60 bits of SHA-1 over the SPKI.
pub fn short_ski(key: &PKey<impl openssl::pkey::HasPublic>) -> R<Vec<u8>> {
    let d = Sha1::digest(key.public_key_to_der()?);
    let mut v = d[12..].to_vec();
    v[0] = 0x40 | (v[0] & 0x0f);
    Ok(v)
}

fn der_octets(v: &[u8]) -> Vec<u8> {
    let mut out = vec![0x04, v.len() as u8];
    out.extend_from_slice(v);
    out
}

enum Kind {
    Root,
    Sub(u32),
    Leaf,
}

struct Spec<'a> {
    kind: Kind,
    o: &'a str,
    cn: &'a str,
    dc: bool,
    days: u32,
}

fn new_key(schema: Schema) -> R<PKey<Private>> {
    let nid = match schema {
        Schema::Iso2 => Nid::X9_62_PRIME256V1,
        Schema::Iso20 => Nid::SECP521R1,
    };
    let group = EcGroup::from_curve_name(nid)?;
    Ok(PKey::from_ec_key(EcKey::generate(&group)?)?)
}

fn make(
    schema: Schema,
    s: &Spec<'_>,
    key: &PKey<Private>,
    issuer: Option<(&X509, &PKey<Private>)>,
) -> R<X509> {
    let mut name = X509NameBuilder::new()?;
    if matches!(s.kind, Kind::Root) {
        name.append_entry_by_text("C", "DE")?;
    }
    name.append_entry_by_text("O", s.o)?;
    if s.dc {
        name.append_entry_by_text("DC", "OEM")?;
    }
    name.append_entry_by_text("CN", s.cn)?;
    let name = name.build();
    let mut b = X509::builder()?;
    b.set_version(2)?;
    let mut serial = BigNum::new()?;
    serial.rand(127, MsbOption::ONE, false)?;
    let serial = serial.to_asn1_integer()?;
    b.set_serial_number(&serial)?;
    b.set_subject_name(&name)?;
    b.set_issuer_name(issuer.map_or(&name, |(c, _)| c.subject_name()))?;
    b.set_pubkey(key)?;
    // An hour back: the clocks of the car, the CPO and the CA differ a little.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let (not_before, not_after) = (
        Asn1Time::from_unix(now - 3600)?,
        Asn1Time::days_from_now(s.days)?,
    );
    b.set_not_before(&not_before)?;
    b.set_not_after(&not_after)?;
    let bc = match s.kind {
        Kind::Root => BasicConstraints::new().critical().ca().build()?,
        Kind::Sub(n) => BasicConstraints::new().critical().ca().pathlen(n).build()?,
        Kind::Leaf => BasicConstraints::new().critical().build()?,
    };
    b.append_extension(bc)?;
    let ku = match s.kind {
        Kind::Leaf => KeyUsage::new()
            .critical()
            .digital_signature()
            .key_agreement()
            .build()?,
        _ => KeyUsage::new()
            .critical()
            .key_cert_sign()
            .crl_sign()
            .build()?,
    };
    b.append_extension(ku)?;
    let ski = short_ski(key)?;
    let ski_oid = Asn1Object::from_str("2.5.29.14")?;
    let ski_value = Asn1OctetString::new_from_bytes(&der_octets(&ski))?;
    b.append_extension(X509Extension::new_from_der(&ski_oid, false, &ski_value)?)?;
    let aki = match issuer {
        Some((_, k)) => short_ski(k)?,
        None => ski,
    };
    // AuthorityKeyIdentifier ::= SEQUENCE { [0] keyIdentifier }
    let mut aki_der = vec![0x30, (aki.len() + 2) as u8, 0x80, aki.len() as u8];
    aki_der.extend_from_slice(&aki);
    let aki_oid = Asn1Object::from_str("2.5.29.35")?;
    let aki_value = Asn1OctetString::new_from_bytes(&aki_der)?;
    b.append_extension(X509Extension::new_from_der(&aki_oid, false, &aki_value)?)?;
    let md = match schema {
        Schema::Iso2 => MessageDigest::sha256(),
        Schema::Iso20 => MessageDigest::sha512(),
    };
    b.sign(issuer.map_or(key, |(_, k)| k), md)?;
    Ok(b.build())
}

/// Makes a throw-away OEM PKI and a provisioning certificate for `pcid` under organisation `org`.
pub fn oem_chain(schema: Schema, pcid: &str, org: &str) -> R<OemChain> {
    let pcid = match schema {
        Schema::Iso2 => crate::policy::identifiers::validate_pcid(pcid),
        Schema::Iso20 => crate::policy::identifiers::validate_pcid_20(pcid),
    }
    .map_err(|e| EvError::Invalid(format!("PCID '{pcid}': {e}")))?;
    let pcid = pcid.as_str();
    let root_days = if schema == Schema::Iso2 { 14610 } else { 9131 };
    let root_key = new_key(schema)?;
    let root_cn = format!("{org} Root CA");
    let root = make(
        schema,
        &Spec {
            kind: Kind::Root,
            o: org,
            cn: &root_cn,
            dc: true,
            days: root_days,
        },
        &root_key,
        None,
    )?;
    let sub1_key = new_key(schema)?;
    let sub1_cn = format!("{org} Sub-CA 1");
    let sub1 = make(
        schema,
        &Spec {
            kind: Kind::Sub(1),
            o: org,
            cn: &sub1_cn,
            dc: true,
            days: 1461,
        },
        &sub1_key,
        Some((&root, &root_key)),
    )?;
    let sub2_key = new_key(schema)?;
    let sub2_cn = format!("{org} Sub-CA 2");
    let sub2 = make(
        schema,
        &Spec {
            kind: Kind::Sub(0),
            o: org,
            cn: &sub2_cn,
            dc: true,
            days: 1461,
        },
        &sub2_key,
        Some((&sub1, &sub1_key)),
    )?;
    let (leaf, leaf_key) = vehicle(schema, org, pcid, &sub2, &sub2_key)?;
    Ok(OemChain {
        root,
        sub1,
        sub2,
        leaf,
        leaf_key,
        sub2_key,
        schema,
        org: org.to_string(),
    })
}

/// A provisioning certificate (and its key) for PCID `pcid` under `sub2`.
fn vehicle(
    schema: Schema,
    org: &str,
    pcid: &str,
    sub2: &X509,
    sub2_key: &PKey<Private>,
) -> R<(X509, PKey<Private>)> {
    let leaf_key = new_key(schema)?;
    let leaf = make(
        schema,
        &Spec {
            kind: Kind::Leaf,
            o: org,
            cn: pcid,
            dc: true,
            days: 1461,
        },
        &leaf_key,
        Some((sub2, sub2_key)),
    )?;
    Ok((leaf, leaf_key))
}

/// Another vehicle of the OEM of `chain`: a provisioning certificate for `pcid` under the same
/// sub-CA 2 (a fleet for load tests), and its key.
pub fn another_vehicle(chain: &OemChain, pcid: &str) -> R<(X509, PKey<Private>)> {
    let pcid = match chain.schema {
        Schema::Iso2 => crate::policy::identifiers::validate_pcid(pcid),
        Schema::Iso20 => crate::policy::identifiers::validate_pcid_20(pcid),
    }
    .map_err(|e| EvError::Invalid(format!("PCID '{pcid}': {e}")))?;
    vehicle(
        chain.schema,
        &chain.org,
        &pcid,
        &chain.sub2,
        &chain.sub2_key,
    )
}
