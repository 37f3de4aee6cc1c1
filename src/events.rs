//! Ecosystem events (OPCP `webhook.payload.v1`): their names, who may hear of them, their
//! bodies and signatures. A leaf: no I/O. The store writes an event to its outbox in the same
//! transaction as what caused it (see [`OutboxEvent`]); `ra::webhooks` delivers it.

use hmac::{Hmac, Mac};
use rand::RngCore;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::policy::authz::Role;
use crate::policy::identifiers;

/// Every event type an endpoint can enable (OPCP's list, with `root.cert.revoked` and
/// `mo.prov.cert.factory.reset` of the payload schema).
pub const EVENT_TYPES: [&str; 17] = [
    ROOT_ADDED,
    ROOT_EXPIRED,
    ROOT_REVOKED,
    PROV_UPDATED,
    PROV_DELETED,
    "mo.prov.cert.factory.reset",
    "mo.prov.cert.updated.factory.reset",
    DELIVERED_TO_OEM,
    "mo.contract.created.sent.to.oem",
    "mo.contract.updated.sent.to.oem",
    "mo.contract.deleted.sent.to.oem",
    REJECTED_BY_OEM,
    QUEUED_TO_OEM,
    OEM_CREATED,
    OEM_UPDATED,
    OEM_DELETED,
    // Not in OPCP's list: an operator's test delivery.
    "webhook.test",
];

/// A root joined the pool (ours or a trusted external one).
pub const ROOT_ADDED: &str = "root.cert.added";
/// A root of the pool expired.
pub const ROOT_EXPIRED: &str = "root.cert.expired";
/// A root left the pool (removed by the operator: revoked, or no longer trusted).
pub const ROOT_REVOKED: &str = "root.cert.revoked";
/// A vehicle's provisioning certificate was replaced by one with another key.
pub const PROV_UPDATED: &str = "mo.prov.cert.updated";
/// A vehicle's provisioning certificate left the pool.
pub const PROV_DELETED: &str = "mo.prov.cert.deleted";
/// The OEM pulled the contract data over the air.
pub const DELIVERED_TO_OEM: &str = "mo.contract.delivered.to.oem";
/// An `oem.contract.*` event could not be delivered and was given up.
pub const REJECTED_BY_OEM: &str = "mo.contract.rejected.by.oem";
/// An `oem.contract.*` event failed once and is retried.
pub const QUEUED_TO_OEM: &str = "mo.contract.queued.to.oem";
/// New contract data for a vehicle.
pub const OEM_CREATED: &str = "oem.contract.created";
/// Updated contract data for a vehicle.
pub const OEM_UPDATED: &str = "oem.contract.updated";
/// A vehicle's contract data was deleted.
pub const OEM_DELETED: &str = "oem.contract.deleted";

/// The ISO 15118-2 namespace, the default of every payload.
pub const NS_ISO2: &str = "urn:iso:15118:2:2013:MsgDef";
/// The ISO 15118-20 namespace.
pub const NS_ISO20: &str = "urn:iso:15118:20:2022:MsgDef";

/// Whether `name` is an event type an endpoint can enable.
pub fn is_event_type(name: &str) -> bool {
    EVENT_TYPES.contains(&name)
}

/// For `oem.contract.created|updated|deleted`, the MO's `mo.contract.*.sent.to.oem` twin.
pub fn sent_to_oem(event_type: &str) -> Option<&'static str> {
    match event_type {
        OEM_CREATED => Some("mo.contract.created.sent.to.oem"),
        OEM_UPDATED => Some("mo.contract.updated.sent.to.oem"),
        OEM_DELETED => Some("mo.contract.deleted.sent.to.oem"),
        _ => None,
    }
}

/// Who may hear of an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Audience {
    /// Every subscribed endpoint (root pool changes).
    All,
    /// The OEM of this PCID's WMI.
    Oem(String),
    /// The MO of this EMAID.
    Mo(String),
}

impl Audience {
    /// The stored form: `all`, `oem:<PCID>`, `mo:<EMAID>`.
    pub fn to_db(&self) -> String {
        match self {
            Audience::All => "all".into(),
            Audience::Oem(p) => format!("oem:{p}"),
            Audience::Mo(e) => format!("mo:{e}"),
        }
    }

    /// Parse the stored form.
    pub fn from_db(s: &str) -> Option<Audience> {
        match s.split_once(':') {
            None if s == "all" => Some(Audience::All),
            Some(("oem", p)) => Some(Audience::Oem(p.to_string())),
            Some(("mo", e)) => Some(Audience::Mo(e.to_string())),
            _ => None,
        }
    }

    /// Whether an endpoint owned by a client of `role` and `tenants` may receive the event:
    /// root events go to everyone; a vehicle's events to the OEM of its WMI, a contract's to the
    /// MO of its EMAID; admins hear everything. Never an event of another tenant.
    pub fn admits(&self, role: Role, tenants: &[String]) -> bool {
        match self {
            Audience::All => true,
            _ if role == Role::Admin => true,
            Audience::Oem(pcid) => {
                role == Role::Oem && tenants.iter().any(|t| identifiers::pcid_in_tenant(pcid, t))
            }
            Audience::Mo(emaid) => {
                role == Role::Mo
                    && tenants
                        .iter()
                        .any(|t| identifiers::emaid_in_tenant(emaid, t))
            }
        }
    }
}

/// An event as the outbox keeps it: the exact body every endpoint receives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxEvent {
    /// UUID, the same on every retry.
    pub event_id: String,
    /// One of [`EVENT_TYPES`].
    pub event_type: String,
    /// Who may hear of it.
    pub audience: Audience,
    /// The JSON body, signed as these bytes.
    pub body: Vec<u8>,
    /// Unix seconds.
    pub created_at: i64,
}

impl OutboxEvent {
    /// An event of `event_type` about `payload`, stamped `now` (unix seconds).
    pub fn new(
        event_type: &str,
        namespace: &str,
        payload: Value,
        audience: Audience,
        now: i64,
    ) -> OutboxEvent {
        let event_id = uuid_v4();
        let body = json!({
            "eventId": event_id,
            "timestamp": rfc3339(now),
            "eventType": event_type,
            "xsdMsgDefNamespace": namespace,
            "payload": payload,
        });
        OutboxEvent {
            event_id,
            event_type: event_type.to_string(),
            audience,
            body: serde_json::to_vec(&body).unwrap_or_default(),
            created_at: now,
        }
    }
}

/// RFC 3339 UTC time of unix seconds (here rather than `model`'s, which depends on this module).
fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

/// A random (version 4) UUID. Hand-written: eleven lines do not justify the `uuid` crate.
pub fn uuid_v4() -> String {
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    uuid_text(&b)
}

/// A UUID-shaped id derived from a certificate (OPCP's `rootCertificateId` is a uuid): the
/// first 16 bytes of its SHA-256, so that the same root always has the same id.
pub fn cert_uuid(der: &[u8]) -> String {
    let h = Sha256::digest(der);
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    uuid_text(&b)
}

fn uuid_text(b: &[u8; 16]) -> String {
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// OPCP's `rootType` of one of our root profiles (`v2g-root`, `mo-root`, `oem-root`, and their
/// `-20` variants).
pub fn root_type_of(profile: &str) -> Option<&'static str> {
    match profile.trim_end_matches("-20") {
        "v2g-root" => Some("V2G"),
        "mo-root" => Some("MO"),
        "oem-root" => Some("OEM"),
        _ => None,
    }
}

/// `payload-signature`: lowercase hex HMAC-SHA256 of the exact body bytes with the endpoint's
/// secret.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| Hmac::<Sha256>::new_from_slice(b"-").expect("HMAC takes any key"));
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The payload of a `root.cert.*` event (OPCP's root payload).
pub fn root_payload(der: &[u8], root_type: &str) -> Value {
    let Ok(cert) = crate::x509::ParsedCert::from_der(der) else {
        return json!({ "rootCertificateId": cert_uuid(der), "rootType": root_type });
    };
    let subject: &x509_cert::name::RdnSequence = cert.tbs().subject().as_ref();
    let cn = crate::x509::name::values(subject, const_oid::db::rfc4519::CN)
        .into_iter()
        .next()
        .unwrap_or_default();
    json!({
        "rootCertificateId": cert_uuid(der),
        "distinguishedName": crate::x509::name::opcp_dn(subject),
        "commonName": cn,
        "rootType": root_type,
        "rootSerialNumber": cert.serial_hex(),
        "signatureAlgorithm": curve_name(&cert),
        "fingerprintSHA256": cert.sha256_hex(),
    })
}

/// A root pool event for everyone subscribed; a P-521 root is announced in the -20 namespace.
pub fn root_event(event_type: &str, der: &[u8], root_type: &str, now: i64) -> OutboxEvent {
    let payload = root_payload(der, root_type);
    let ns = if payload["signatureAlgorithm"] == "secp521r1" {
        NS_ISO20
    } else {
        NS_ISO2
    };
    OutboxEvent::new(event_type, ns, payload, Audience::All, now)
}

/// OPCP's name of the certificate's curve (`secp256r1` unless it is P-521).
fn curve_name(cert: &crate::x509::ParsedCert) -> &'static str {
    let p521 = const_oid::ObjectIdentifier::new_unwrap("1.3.132.0.35");
    let params = cert
        .spki()
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<const_oid::ObjectIdentifier>().ok());
    if params == Some(p521) {
        "secp521r1"
    } else {
        "secp256r1"
    }
}

/// The payload of a vehicle or contract event: EMAID, PCID and, where there is one, the
/// contract certificate (base64 DER).
pub fn contract_payload(emaid: &str, pcid: &str, contract_cert: Option<&[u8]>) -> Value {
    let mut v = json!({ "emaid": emaid, "pcid": pcid });
    if let Some(der) = contract_cert {
        use base64::Engine;
        v["contractCert"] = base64::engine::general_purpose::STANDARD.encode(der).into();
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hex_hmac_sha256_of_the_body() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn audiences_keep_tenants_apart() {
        let oem = vec!["WMA".to_string()];
        let mo = vec!["DE8AA".to_string()];
        let a = Audience::Oem("WMAABC1234567890X".into());
        assert!(a.admits(Role::Oem, &oem));
        assert!(!a.admits(Role::Oem, &["WMB".to_string()]));
        assert!(!a.admits(Role::Mo, &mo));
        assert!(a.admits(Role::Admin, &[]));
        let m = Audience::Mo("DE8AAC12345678".into());
        assert!(m.admits(Role::Mo, &mo));
        assert!(!m.admits(Role::Mo, &["DE8AB".to_string()]));
        assert!(!m.admits(Role::Oem, &oem));
        assert!(Audience::All.admits(Role::Cpo, &[]));
        for a in [Audience::All, a, m] {
            assert_eq!(Audience::from_db(&a.to_db()), Some(a));
        }
    }

    #[test]
    fn bodies_carry_the_opcp_fields() {
        let e = OutboxEvent::new(
            OEM_CREATED,
            NS_ISO2,
            contract_payload("DE8AAC12345678", "WMAABC1234567890X", None),
            Audience::Oem("WMAABC1234567890X".into()),
            1_700_000_000,
        );
        let v: Value = serde_json::from_slice(&e.body).unwrap();
        assert_eq!(v["eventId"], e.event_id.as_str());
        assert_eq!(v["eventType"], OEM_CREATED);
        assert_eq!(v["timestamp"], "2023-11-14T22:13:20Z");
        assert_eq!(v["xsdMsgDefNamespace"], NS_ISO2);
        assert_eq!(v["payload"]["pcid"], "WMAABC1234567890X");
        let re = regex::Regex::new(
            "^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$",
        )
        .unwrap();
        assert!(re.is_match(&e.event_id), "{}", e.event_id);
        assert_ne!(uuid_v4(), uuid_v4());
    }
}
