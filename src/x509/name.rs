//! Distinguished names: building them from "C=DE, O=…, CN=…" text and reading them back.
//!
//! We support exactly the attributes ISO 15118 profiles use. Values are encoded as
//! PrintableString when they fit its alphabet (as Hubject's certificates do), otherwise UTF8String;
//! DC is always IA5String (RFC 4519).

use der::asn1::{Ia5StringRef, ObjectIdentifier, PrintableStringRef, Utf8StringRef};
use der::{Any, Decode, Encode, Tag, Tagged};
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::name::{RdnSequence, RelativeDistinguishedName};

use super::X509Error;

/// countryName.
pub const OID_C: ObjectIdentifier = const_oid::db::rfc4519::C;
/// organizationName.
pub const OID_O: ObjectIdentifier = const_oid::db::rfc4519::O;
/// organizationalUnitName.
pub const OID_OU: ObjectIdentifier = const_oid::db::rfc4519::OU;
/// commonName.
pub const OID_CN: ObjectIdentifier = const_oid::db::rfc4519::CN;
/// domainComponent.
pub const OID_DC: ObjectIdentifier = const_oid::db::rfc4519::DC;

/// (short name, OID, upper bound on the value length from X.520 / RFC 5280 Appendix A)
const ATTRS: &[(&str, ObjectIdentifier, usize)] = &[
    ("C", OID_C, 2),
    ("O", OID_O, 64),
    ("OU", OID_OU, 64),
    ("CN", OID_CN, 64),
    ("DC", OID_DC, 63),
];

/// The short name (`CN`, …) of an attribute we support.
pub fn short_name(oid: &ObjectIdentifier) -> Option<&'static str> {
    ATTRS.iter().find(|(_, o, _)| o == oid).map(|(n, _, _)| *n)
}

fn attr_by_name(name: &str) -> Option<(ObjectIdentifier, usize)> {
    ATTRS
        .iter()
        .find(|(n, _, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, o, ub)| (*o, *ub))
}

fn printable(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b" '()+,-./:=?".contains(&b))
}

fn bad(m: String) -> X509Error {
    X509Error::Name(m)
}

fn encode_value(oid: ObjectIdentifier, value: &str) -> Result<Any, X509Error> {
    let any = if oid == OID_DC {
        Any::encode_from(
            &Ia5StringRef::new(value)
                .map_err(|_| bad(format!("DC value '{value}' is not ASCII")))?,
        )
    } else if printable(value) {
        Any::encode_from(&PrintableStringRef::new(value)?)
    } else {
        Any::encode_from(&Utf8StringRef::new(value)?)
    };
    Ok(any?)
}

/// Parse "C=DE, O=Example, DC=V2G, CN=Root" into (attribute, value) pairs, keeping the order.
pub fn parse_pairs(text: &str) -> Result<Vec<(String, String)>, X509Error> {
    let mut out = Vec::new();
    for part in text.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| bad(format!("'{part}' is not ATTRIBUTE=value")))?;
        let k = k.trim().to_ascii_uppercase();
        let v = v.trim().to_string();
        if attr_by_name(&k).is_none() {
            return Err(bad(format!(
                "unsupported name attribute '{k}' (allowed: C, O, OU, CN, DC)"
            )));
        }
        if v.is_empty() {
            return Err(bad(format!("empty value for {k}")));
        }
        out.push((k, v));
    }
    if out.is_empty() {
        return Err(bad("empty distinguished name".into()));
    }
    Ok(out)
}

/// Build an RDNSequence, one attribute per RDN, in the given order.
pub fn build(pairs: &[(String, String)]) -> Result<RdnSequence, X509Error> {
    let mut seq = RdnSequence::default();
    for (k, v) in pairs {
        let (oid, ub) = attr_by_name(k).ok_or_else(|| bad(format!("unsupported attribute {k}")))?;
        if v.chars().count() > ub {
            return Err(bad(format!(
                "{k} is {} characters, the limit is {ub}",
                v.chars().count()
            )));
        }
        if oid == OID_C && !(v.len() == 2 && v.bytes().all(|b| b.is_ascii_uppercase())) {
            return Err(bad(format!(
                "C must be a two-letter upper-case country code, got '{v}'"
            )));
        }
        let mut rdn = RelativeDistinguishedName::default();
        rdn.insert(AttributeTypeAndValue {
            oid,
            value: encode_value(oid, v)?,
        })?;
        seq.push(rdn);
    }
    Ok(seq)
}

/// Parse and build a DN written as text (`"C=DE, O=…, CN=…"`).
pub fn build_from_text(text: &str) -> Result<RdnSequence, X509Error> {
    build(&parse_pairs(text)?)
}

/// String value of an attribute, whatever DirectoryString flavour it uses.
pub fn value_string(v: &Any) -> Option<String> {
    match v.tag() {
        Tag::PrintableString => v
            .decode_as::<PrintableStringRef<'_>>()
            .ok()
            .map(|s| s.as_str().to_string()),
        Tag::Utf8String => v
            .decode_as::<Utf8StringRef<'_>>()
            .ok()
            .map(|s| s.as_str().to_string()),
        Tag::Ia5String => v
            .decode_as::<Ia5StringRef<'_>>()
            .ok()
            .map(|s| s.as_str().to_string()),
        Tag::TeletexString | Tag::BmpString | Tag::VisibleString => {
            std::str::from_utf8(v.value()).ok().map(str::to_string)
        }
        _ => None,
    }
}

/// All (OID, value) pairs in order.
pub fn attributes(seq: &RdnSequence) -> Vec<(ObjectIdentifier, Option<String>)> {
    seq.iter()
        .flat_map(|rdn| rdn.iter())
        .map(|atv| (atv.oid, value_string(&atv.value)))
        .collect()
}

/// Values of one attribute.
pub fn values(seq: &RdnSequence, oid: ObjectIdentifier) -> Vec<String> {
    attributes(seq)
        .into_iter()
        .filter(|(o, _)| *o == oid)
        .filter_map(|(_, v)| v)
        .collect()
}

/// "C=DE, O=…, CN=…" in DER order.
pub fn to_string(seq: &RdnSequence) -> String {
    attributes(seq)
        .into_iter()
        .map(|(oid, v)| {
            let k = short_name(&oid)
                .map(str::to_string)
                .unwrap_or_else(|| oid.to_string());
            format!("{k}={}", v.unwrap_or_else(|| "#?".into()))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Decode a DN.
pub fn from_der(der: &[u8]) -> Result<RdnSequence, X509Error> {
    Ok(RdnSequence::from_der(der)?)
}

/// Encode a DN.
pub fn to_der(seq: &RdnSequence) -> Vec<u8> {
    seq.to_der().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_reads_back_in_order() {
        let seq = build_from_text("C=DE, O=Example GmbH, DC=V2G, CN=V2G Root").unwrap();
        assert_eq!(to_string(&seq), "C=DE, O=Example GmbH, DC=V2G, CN=V2G Root");
        let der = to_der(&seq);
        assert_eq!(to_string(&from_der(&der).unwrap()), to_string(&seq));
        assert_eq!(values(&seq, OID_DC), vec!["V2G".to_string()]);
    }

    #[test]
    fn rejects_bad_names() {
        assert!(build_from_text("X=1").is_err());
        assert!(build_from_text("C=Germany").is_err());
        assert!(build_from_text("CN=").is_err());
        assert!(build_from_text(&format!("CN={}", "a".repeat(65))).is_err());
        assert!(build_from_text("").is_err());
    }

    #[test]
    fn non_printable_values_use_utf8() {
        let seq = build_from_text("O=Müller AG").unwrap();
        assert_eq!(values(&seq, OID_O), vec!["Müller AG".to_string()]);
    }
}
