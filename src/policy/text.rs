//! Which characters callers may send in text: paths, query strings, identifiers and the string
//! fields of JSON and form bodies (issue 20).
//!
//! Control characters (Unicode category Cc: U+0000–U+001F, U+007F–U+009F) have no business in an
//! identifier, a path or a filter. A NUL in particular cannot be stored by PostgreSQL (a text
//! parameter holding one fails with SQLSTATE 22021) while SQLite stores it, so letting one
//! through made the same request a 503 on one store and a silently corrupted row on the other.
//! The front ends refuse them with `400 invalid_characters` before anything is looked up.
//!
//! Multi-line values (a PEM certificate or CSR inside JSON, a textarea) legitimately carry line
//! breaks and tabs, so free text allows `\t`, `\n` and `\r`; identifiers allow no control
//! character at all.

/// The stable code of the refusal.
pub const CODE: &str = "invalid_characters";

/// Field names (JSON keys, form fields) whose values are identifiers or names: no control
/// character at all, not even a line break. Every other string field is free text (see
/// [`text_ok`]).
pub const IDENTIFIER_FIELDS: &[&str] = &[
    "action",
    "certificateType",
    "client_id",
    "emaid",
    "evse_id",
    "grant_type",
    "idToken",
    "iso15118SchemaVersion",
    "issuer_id",
    "name",
    "organization",
    "pcid",
    "prioritizedEMAIDs",
    "profile",
    "reason",
    "role",
    "serial_hex",
    "stationId",
    "status",
    "tenant",
    "tenants",
    "type",
    "xsdMsgDefNamespace",
];

/// True when `s` holds no control character: what an identifier, a name or a filter may be.
pub fn identifier_ok(s: &str) -> bool {
    !s.chars().any(char::is_control)
}

/// True when `s` holds no control character other than tab, line feed and carriage return:
/// what free text (a PEM block, a comment) may be.
pub fn text_ok(s: &str) -> bool {
    !s.chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
}

/// True when the percent-decoded bytes of a path or query string hold no control character:
/// C0 and DEL as bytes, C1 as their UTF-8 encoding (`C2 80`–`C2 9F`). Bytes that are not UTF-8
/// are left to the extractors, which refuse them.
pub fn uri_component_ok(raw: &str) -> bool {
    // The URI parser admits no raw control bytes, so without a `%` there is nothing to decode
    // (the common case: no allocation per request).
    if !raw.contains('%') {
        return !raw.chars().any(char::is_control);
    }
    let b = percent_decode(raw);
    if b.iter().any(|&c| c < 0x20 || c == 0x7f) {
        return false;
    }
    !b.windows(2)
        .any(|w| w[0] == 0xc2 && (0x80..=0x9f).contains(&w[1]))
}

/// `%XX` decoded; anything else (a lone `%` included) kept as is.
fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// Whether a JSON body could hold a control character in a string at all. JSON forbids raw
/// C0 characters inside strings, so they can only arrive escaped (`\u0000`, `\n`, …), and DEL
/// and C1 characters as their raw bytes. Bodies without any of these — nearly all — skip the
/// walk in [`json_ok`].
pub fn json_may_hold_controls(body: &[u8]) -> bool {
    body.iter().any(|&c| c == b'\\' || c == 0x7f)
        || body
            .windows(2)
            .any(|w| w[0] == 0xc2 && (0x80..=0x9f).contains(&w[1]))
}

/// Check every key and string value of a JSON document: keys and the values of
/// [`IDENTIFIER_FIELDS`] must be [`identifier_ok`], every other string [`text_ok`]. `Err` names
/// the offending field.
pub fn json_ok(v: &serde_json::Value) -> Result<(), String> {
    walk(v, "", false)
}

fn walk(v: &serde_json::Value, field: &str, identifier: bool) -> Result<(), String> {
    use serde_json::Value;
    match v {
        Value::String(s) => {
            let ok = if identifier {
                identifier_ok(s)
            } else {
                text_ok(s)
            };
            if ok { Ok(()) } else { Err(field.to_string()) }
        }
        Value::Array(items) => items.iter().try_for_each(|i| walk(i, field, identifier)),
        Value::Object(map) => map.iter().try_for_each(|(k, v)| {
            if !identifier_ok(k) {
                return Err("a field name".to_string());
            }
            walk(v, k, IDENTIFIER_FIELDS.contains(&k.as_str()))
        }),
        _ => Ok(()),
    }
}

/// Check the fields of a decoded form (or query): names and [`IDENTIFIER_FIELDS`] values must
/// be [`identifier_ok`], every other value [`text_ok`]. `Err` names the offending field.
pub fn form_ok<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<(), String> {
    for (k, v) in pairs {
        if !identifier_ok(k) {
            return Err("a field name".to_string());
        }
        let ok = if IDENTIFIER_FIELDS.contains(&k) {
            identifier_ok(v)
        } else {
            text_ok(v)
        };
        if !ok {
            return Err(k.to_string());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn identifiers_refuse_every_control_character_text_keeps_line_breaks() {
        for s in ["a\0b", "a\nb", "a\tb", "a\u{7f}", "a\u{85}", "\u{9f}"] {
            assert!(!identifier_ok(s), "{s:?}");
        }
        assert!(identifier_ok("Müller GmbH, O=x"));
        assert!(text_ok(
            "-----BEGIN CERTIFICATE REQUEST-----\r\nMIIB\n\t-----END"
        ));
        for s in ["a\0b", "a\u{1b}", "a\u{7f}", "a\u{85}", "a\u{8}"] {
            assert!(!text_ok(s), "{s:?}");
        }
    }

    #[test]
    fn uri_components_are_checked_after_percent_decoding() {
        for s in [
            "/crl/a%00b.crl",
            "emaid=%00",
            "x=%0a",
            "x=%7F",
            "x=%C2%85",
            "x=%c2%9f",
        ] {
            assert!(!uri_component_ok(s), "{s}");
        }
        for s in [
            "/crl/v2g-root.crl",
            "emaid=DE8AA%2A1",
            "x=%",
            "x=%4",
            "x=%zz",
            "x=%C3%BC",
            "x=%0",
        ] {
            assert!(uri_component_ok(s), "{s}");
        }
        // A NUL at the very end is still decoded.
        assert!(!uri_component_ok("a%00"));
    }

    #[test]
    fn json_identifier_fields_refuse_line_breaks_pem_fields_keep_them() {
        assert!(json_ok(&json!({"csr": "-----BEGIN\nMIIB\n-----END\n"})).is_ok());
        assert_eq!(
            json_ok(&json!({"organization": "EVIL\nCSO"})),
            Err("organization".into())
        );
        assert_eq!(
            json_ok(&json!({"tenants": ["DE*ABC", "DE*X\t"]})),
            Err("tenants".into())
        );
        assert_eq!(json_ok(&json!({"csr": "a\u{0}"})), Err("csr".into()));
        assert_eq!(
            json_ok(&json!({"nested": {"deep": ["x\u{0}"]}})),
            Err("deep".into())
        );
        assert!(json_ok(&json!({"k\u{0}": 1})).is_err());
        assert!(!json_may_hold_controls(br#"{"emaid":"DE8AA1"}"#));
        assert!(json_may_hold_controls(br#"{"emaid":"DE8AA\u0000"}"#));
        assert!(json_may_hold_controls("{\"o\":\"\u{85}\"}".as_bytes()));
    }

    #[test]
    fn forms_check_names_and_values() {
        assert!(form_ok([("client_id", "pnc_1"), ("comment", "a\r\nb")]).is_ok());
        assert_eq!(form_ok([("client_id", "pnc_\0")]), Err("client_id".into()));
        assert_eq!(form_ok([("comment", "a\0")]), Err("comment".into()));
    }
}
