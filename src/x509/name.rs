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

/// One character of a DN string and whether it was written escaped (`\,`, `\2C`).
type Lexed = (char, bool);

/// Split RFC 4514 text into characters, decoding `\<special>` and `\XX` (a sequence of hex
/// pairs is one UTF-8 string). `\` before anything else is an error.
fn lex(text: &str) -> Result<Vec<Lexed>, X509Error> {
    let mut out = Vec::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut bytes: Vec<u8> = Vec::new();
    let flush = |bytes: &mut Vec<u8>, out: &mut Vec<Lexed>| -> Result<(), X509Error> {
        if !bytes.is_empty() {
            let s = String::from_utf8(std::mem::take(bytes))
                .map_err(|_| bad("an escaped \\XX sequence is not UTF-8".into()))?;
            out.extend(s.chars().map(|c| (c, true)));
        }
        Ok(())
    };
    while let Some(c) = chars.next() {
        if c != '\\' {
            flush(&mut bytes, &mut out)?;
            out.push((c, false));
            continue;
        }
        let Some(n) = chars.next() else {
            return Err(bad("a name ends in a lone backslash".into()));
        };
        if let Some(h) = n.to_digit(16)
            && let Some(l) = chars.peek().and_then(|c| c.to_digit(16))
        {
            chars.next();
            bytes.push((h * 16 + l) as u8);
            continue;
        }
        flush(&mut bytes, &mut out)?;
        if !matches!(
            n,
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=' | ' ' | '#'
        ) {
            return Err(bad(format!("'\\{n}' is not an escape (RFC 4514)")));
        }
        out.push((n, true));
    }
    flush(&mut bytes, &mut out)?;
    Ok(out)
}

/// Parse "C=DE, O=Example, DC=V2G, CN=Root" into (attribute, value) pairs, keeping the order.
///
/// Values are read as RFC 4514 writes them ([`to_string`]): `\,`, `\+`, `\"`, `\\`, `\<`,
/// `\>`, `\;`, `\=`, `\#`, `\ ` and `\XX` stand for the character, and unescaped spaces
/// around a value are dropped. An unescaped `,` separates attributes; an unescaped `+` is taken
/// literally (what this parser accepted before escaping existed), since one attribute per RDN
/// is all we build.
pub fn parse_pairs(text: &str) -> Result<Vec<(String, String)>, X509Error> {
    let lexed = lex(text)?;
    let mut out = Vec::new();
    for part in lexed.split(|&(c, esc)| c == ',' && !esc) {
        let start = part.iter().position(|&(c, esc)| esc || !c.is_whitespace());
        let end = part.iter().rposition(|&(c, esc)| esc || !c.is_whitespace());
        let part = match (start, end) {
            (Some(s), Some(e)) => &part[s..=e],
            _ => continue,
        };
        let shown: String = part.iter().map(|&(c, _)| c).collect();
        let eq = part
            .iter()
            .position(|&(c, esc)| c == '=' && !esc)
            .ok_or_else(|| bad(format!("'{shown}' is not ATTRIBUTE=value")))?;
        let k: String = part[..eq].iter().map(|&(c, _)| c).collect();
        let k = k.trim().to_ascii_uppercase();
        let raw = &part[eq + 1..];
        let raw = match raw.iter().position(|&(c, esc)| esc || !c.is_whitespace()) {
            Some(s) => &raw[s..],
            None => &[],
        };
        if let Some(&('#', false)) = raw.first() {
            return Err(bad(format!(
                "{k}: hex-encoded values (#…) are not supported; escape a leading # as \\#"
            )));
        }
        let v: String = raw.iter().map(|&(c, _)| c).collect();
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

/// A value escaped as RFC 4514 §2.4 says: `"`, `+`, `,`, `;`, `<`, `>` and `\` with a
/// backslash, a leading `#` or space and a trailing space too, and control characters as `\XX`
/// per UTF-8 byte (NUL must be; the others would break a line or a terminal).
pub fn escape_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 4);
    let last = v.chars().count().saturating_sub(1);
    for (i, c) in v.chars().enumerate() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            c if c.is_control() => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("\\{b:02X}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// "C=DE, O=…, CN=…" in DER order, values escaped as RFC 4514 says ([`escape_value`]), so a
/// value holding ", O=…" cannot pass for another attribute. The attributes of a multi-valued RDN
/// are joined with `+`; a value that is not a string is `#` and the hex of its DER (RFC 4514
/// §2.4). This is the one place names become text: certificate records, the API, the CLI and
/// the console all show it, and [`parse_pairs`] reads it back.
pub fn to_string(seq: &RdnSequence) -> String {
    seq.iter()
        .map(|rdn| {
            rdn.iter()
                .map(|atv| {
                    let k = short_name(&atv.oid)
                        .map(str::to_string)
                        .unwrap_or_else(|| atv.oid.to_string());
                    let v = match value_string(&atv.value) {
                        Some(v) => escape_value(&v),
                        None => format!(
                            "#{}",
                            hex::encode_upper(atv.value.to_der().unwrap_or_default())
                        ),
                    };
                    format!("{k}={v}")
                })
                .collect::<Vec<_>>()
                .join("+")
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

/// A name most specific first, `short=value` joined by `, ` (`CN=V2G Root CA G2, DC=V2G,
/// O=Hubject GmbH, C=DE`), as OPCP's `distinguishedName` shows it. For display only: values
/// are not escaped.
pub fn opcp_dn(name: &RdnSequence) -> String {
    let mut parts: Vec<String> = attributes(name)
        .into_iter()
        .map(|(oid, v)| {
            let k = short_name(&oid)
                .map(str::to_string)
                .unwrap_or_else(|| oid.to_string());
            format!("{k}={}", v.unwrap_or_default())
        })
        .collect();
    parts.reverse();
    parts.join(", ")
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
    fn values_are_escaped_as_rfc_4514_says_and_read_back() {
        let evil = build(&[
            ("O".into(), "EVIL CSO, O=ACME CSO".into()),
            ("CN".into(), "CS-0001".into()),
        ])
        .unwrap();
        assert_eq!(to_string(&evil), r"O=EVIL CSO\, O=ACME CSO, CN=CS-0001");
        let cases: &[(&str, &str)] = &[
            ("a,b", r"a\,b"),
            ("a+b", r"a\+b"),
            ("say \"hi\"", r#"say \"hi\""#),
            (r"back\slash", r"back\\slash"),
            ("<x>;y", r"\<x\>\;y"),
            ("#1", r"\#1"),
            ("a#1", "a#1"),
            (" lead", r"\ lead"),
            ("trail ", r"trail\ "),
            ("in side", "in side"),
            ("nul\0x", r"nul\00x"),
            ("line\nbreak", r"line\0Abreak"),
            ("c1\u{85}", r"c1\C2\85"),
            ("Müller=AG", "Müller=AG"),
        ];
        for (value, shown) in cases {
            assert_eq!(escape_value(value), *shown, "{value:?}");
            let text = format!("O={shown}, CN=x");
            let back = parse_pairs(&text).unwrap();
            assert_eq!(
                back,
                vec![
                    ("O".to_string(), value.to_string()),
                    ("CN".to_string(), "x".to_string())
                ],
                "{text}"
            );
            // Through a real name and back.
            let seq = build(&back).unwrap_or_else(|_| build_utf8(&back));
            assert_eq!(to_string(&seq), text);
        }
        // Hand-written forms: spaces around values, hex escapes, lower-case hex.
        assert_eq!(
            parse_pairs(r"O = ACME\2c Inc. ,CN=a\c3\bc").unwrap(),
            vec![
                ("O".to_string(), "ACME, Inc.".to_string()),
                ("CN".to_string(), "aü".to_string())
            ]
        );
        assert!(parse_pairs(r"O=a\q").is_err(), "not an escape");
        assert!(parse_pairs(r"O=a\").is_err(), "lone backslash");
        assert!(parse_pairs(r"O=\ff").is_err(), "not UTF-8");
        assert!(parse_pairs("O=#0403414243").is_err(), "hex values");
    }

    /// `build` refuses what a profile never holds (a C of the wrong shape); the round trip above
    /// only needs the name, so fall back to a plain UTF8String one.
    fn build_utf8(pairs: &[(String, String)]) -> RdnSequence {
        let mut seq = RdnSequence::default();
        for (k, v) in pairs {
            let (oid, _) = attr_by_name(k).unwrap();
            let mut rdn = RelativeDistinguishedName::default();
            rdn.insert(AttributeTypeAndValue {
                oid,
                value: Any::encode_from(&Utf8StringRef::new(v).unwrap()).unwrap(),
            })
            .unwrap();
            seq.push(rdn);
        }
        seq
    }

    #[test]
    fn multi_valued_rdns_and_non_string_values_are_shown_as_rfc_4514_says() {
        let mut rdn = RelativeDistinguishedName::default();
        for (oid, v) in [(OID_O, "A"), (OID_CN, "B")] {
            rdn.insert(AttributeTypeAndValue {
                oid,
                value: encode_value(oid, v).unwrap(),
            })
            .unwrap();
        }
        let mut seq = RdnSequence::default();
        seq.push(rdn);
        let mut other = RelativeDistinguishedName::default();
        other
            .insert(AttributeTypeAndValue {
                oid: OID_OU,
                value: Any::encode_from(&der::asn1::OctetStringRef::new(b"AB").unwrap()).unwrap(),
            })
            .unwrap();
        seq.push(other);
        let text = to_string(&seq);
        assert!(
            text == "O=A+CN=B, OU=#04024142" || text == "CN=B+O=A, OU=#04024142",
            "{text}"
        );
    }

    #[test]
    fn non_printable_values_use_utf8() {
        let seq = build_from_text("O=Müller AG").unwrap();
        assert_eq!(values(&seq, OID_O), vec!["Müller AG".to_string()]);
    }
}
