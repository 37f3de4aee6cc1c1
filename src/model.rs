//! The records every layer passes around (Boulder's `core` package): CAs, certificates, API
//! clients, CRLs and audit entries, with their status enums. Plain data: no I/O. The store reads
//! and writes them, the CA and RA produce them, the front ends render them.

use std::fmt;
use std::str::FromStr;

use crate::alg::KeyAlg;
use crate::policy::authz::Role;
use crate::x509::ParsedCert;

/// Whether a certificate may still be relied on (expiry is a separate, time-dependent question).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CertStatus {
    /// Not revoked.
    Valid,
    /// Revoked; `revoked_at` and `revocation_reason` say when and why.
    Revoked,
}

impl CertStatus {
    /// The form stored in the database and shown in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            CertStatus::Valid => "valid",
            CertStatus::Revoked => "revoked",
        }
    }

    /// The status of its stored form.
    pub fn from_db(s: &str) -> Option<CertStatus> {
        match s {
            "valid" => Some(CertStatus::Valid),
            "revoked" => Some(CertStatus::Revoked),
            _ => None,
        }
    }
}

impl fmt::Display for CertStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status filter for listings: the two stored statuses, or "expired" (valid, `not_after` past).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    /// Not revoked (expired ones included).
    Valid,
    /// Revoked.
    Revoked,
    /// Not revoked and past `not_after`.
    Expired,
}

/// A status filter that is not `valid`, `revoked` or `expired`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("status must be valid, revoked or expired, not '{0}'")]
pub struct BadStatusFilter(pub String);

impl FromStr for StatusFilter {
    type Err = BadStatusFilter;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "valid" => Ok(StatusFilter::Valid),
            "revoked" => Ok(StatusFilter::Revoked),
            "expired" => Ok(StatusFilter::Expired),
            other => Err(BadStatusFilter(other.chars().take(40).collect())),
        }
    }
}

/// RFC 5280 §5.3.1 CRLReason, as the API takes it (camelCase names) and CRLs and OCSP encode it
/// (codes). `removeFromCRL` (8) is not offered: we have no certificateHold release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RevocationReason {
    /// 0: no reason given (omitted from CRL entries and OCSP answers).
    Unspecified,
    /// 1: the subject's key is compromised.
    KeyCompromise,
    /// 2: the issuing CA's key is compromised.
    CaCompromise,
    /// 3: the subject's affiliation changed.
    AffiliationChanged,
    /// 4: replaced by another certificate.
    Superseded,
    /// 5: no longer needed.
    CessationOfOperation,
    /// 6: on hold.
    CertificateHold,
    /// 9: the privilege it granted was withdrawn.
    PrivilegeWithdrawn,
    /// 10: the attribute authority is compromised.
    AaCompromise,
}

/// A revocation reason name that RFC 5280 does not define.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown revocation reason '{0}' (use one of: {names})", names = RevocationReason::names().join(", "))]
pub struct UnknownReason(pub String);

impl RevocationReason {
    /// Every reason, in code order.
    pub const ALL: [RevocationReason; 9] = [
        RevocationReason::Unspecified,
        RevocationReason::KeyCompromise,
        RevocationReason::CaCompromise,
        RevocationReason::AffiliationChanged,
        RevocationReason::Superseded,
        RevocationReason::CessationOfOperation,
        RevocationReason::CertificateHold,
        RevocationReason::PrivilegeWithdrawn,
        RevocationReason::AaCompromise,
    ];

    /// The RFC 5280 name (`keyCompromise`, `cACompromise`, …).
    pub fn name(self) -> &'static str {
        match self {
            RevocationReason::Unspecified => "unspecified",
            RevocationReason::KeyCompromise => "keyCompromise",
            RevocationReason::CaCompromise => "cACompromise",
            RevocationReason::AffiliationChanged => "affiliationChanged",
            RevocationReason::Superseded => "superseded",
            RevocationReason::CessationOfOperation => "cessationOfOperation",
            RevocationReason::CertificateHold => "certificateHold",
            RevocationReason::PrivilegeWithdrawn => "privilegeWithdrawn",
            RevocationReason::AaCompromise => "aACompromise",
        }
    }

    /// The CRLReason code.
    pub fn code(self) -> u8 {
        match self {
            RevocationReason::Unspecified => 0,
            RevocationReason::KeyCompromise => 1,
            RevocationReason::CaCompromise => 2,
            RevocationReason::AffiliationChanged => 3,
            RevocationReason::Superseded => 4,
            RevocationReason::CessationOfOperation => 5,
            RevocationReason::CertificateHold => 6,
            RevocationReason::PrivilegeWithdrawn => 9,
            RevocationReason::AaCompromise => 10,
        }
    }

    /// The code to encode in a CRL entry or OCSP answer: `None` for `unspecified`, which RFC 5280
    /// says to omit rather than encode.
    pub fn encoded_code(self) -> Option<u8> {
        Some(self.code()).filter(|c| *c != 0)
    }

    /// Every name, in code order.
    pub fn names() -> Vec<&'static str> {
        Self::ALL.iter().map(|r| r.name()).collect()
    }

    /// The reason of a name, case-insensitively (`keycompromise` works).
    pub fn parse(name: &str) -> Result<RevocationReason, UnknownReason> {
        Self::ALL
            .into_iter()
            .find(|r| r.name().eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| UnknownReason(name.chars().take(40).collect()))
    }
}

impl fmt::Display for RevocationReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl serde::Serialize for RevocationReason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// What a revocation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeOutcome {
    /// It was valid and is now revoked.
    Revoked,
    /// It was revoked before; nothing changed.
    AlreadyRevoked,
    /// No such certificate; nothing changed.
    NotFound,
}

impl RevokeOutcome {
    /// The stored and answered form (`revoked`, `already_revoked`, `not_found`).
    pub fn name(self) -> &'static str {
        match self {
            RevokeOutcome::Revoked => "revoked",
            RevokeOutcome::AlreadyRevoked => "already_revoked",
            RevokeOutcome::NotFound => "not_found",
        }
    }

    /// The outcome [`RevokeOutcome::name`] wrote, if it is one.
    pub fn parse(s: &[u8]) -> Option<RevokeOutcome> {
        match s {
            b"revoked" => Some(RevokeOutcome::Revoked),
            b"already_revoked" => Some(RevokeOutcome::AlreadyRevoked),
            b"not_found" => Some(RevokeOutcome::NotFound),
            _ => None,
        }
    }
}

/// A CA whose key the service holds.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CaRecord {
    /// Identifier used in paths, CRL names and exports (`cpo-sub-ca-2`).
    pub id: String,
    /// Profile it was issued under.
    pub profile: String,
    /// Issuing CA, when that is one of ours.
    pub parent_id: Option<String>,
    /// CKA_ID of its key in the token, hex.
    pub key_id: String,
    /// Algorithm of its key.
    pub key_alg: KeyAlg,
    /// Serial of its certificate, lower-case hex.
    pub serial_hex: String,
    /// Subject DN, as text.
    pub subject: String,
    /// Its certificate, DER.
    #[serde(skip)]
    pub cert_der: Vec<u8>,
    /// Validity start, unix seconds.
    pub not_before: i64,
    /// Validity end, unix seconds.
    pub not_after: i64,
    /// When it was recorded, unix seconds.
    pub created_at: i64,
    /// For a CA signed by an issuer we do not hold: that issuer's chain (PEM, issuer first).
    #[serde(skip)]
    pub external_chain: Option<String>,
    /// Which of the CA's keys this is: 1 for the key `init` made, one more at each
    /// `ca rollover`.
    pub generation: i64,
}

/// An issued certificate.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CertRecord {
    /// Issuing CA id.
    pub issuer_id: String,
    /// Serial, lower-case hex as DER has it.
    pub serial_hex: String,
    /// Profile it was issued under.
    pub profile: String,
    /// Subject DN, as text.
    pub subject: String,
    /// EMAID (contract certificates), compact form.
    pub emaid: Option<String>,
    /// EVSE ID or SECCID (SECC certificates), compact form.
    pub evse_id: Option<String>,
    /// PCID (OEM provisioning certificates).
    pub pcid: Option<String>,
    /// Validity start, unix seconds.
    pub not_before: i64,
    /// Validity end, unix seconds.
    pub not_after: i64,
    /// Revoked or not.
    pub status: CertStatus,
    /// When it was revoked, unix seconds.
    pub revoked_at: Option<i64>,
    /// Why it was revoked.
    pub revocation_reason: Option<RevocationReason>,
    /// CKA_ID (hex) of its key when the service holds that key (CPS leaf, OCSP signers).
    #[serde(skip)]
    pub key_id: Option<String>,
    /// Tenant prefix of its identifier (EVSE operator, EMAID provider, PCID WMI).
    pub tenant: Option<String>,
    /// The certificate, DER.
    #[serde(skip)]
    pub der: Vec<u8>,
    /// When it was recorded, unix seconds.
    pub created_at: i64,
    /// Which key generation of the issuer signed it ([`CaRecord::generation`]).
    pub issuer_generation: i64,
}

/// Filters for listing certificates; all optional, combined with AND. A front end fills it as
/// asked; the RA decides `tenant` and normalises identifiers before the store sees it.
#[derive(Clone, Debug, Default)]
pub struct CertFilter {
    /// Issuing CA id.
    pub issuer_id: Option<String>,
    /// Profile name.
    pub profile: Option<String>,
    /// EMAID, compact form.
    pub emaid: Option<String>,
    /// EVSE ID, compact form.
    pub evse_id: Option<String>,
    /// PCID.
    pub pcid: Option<String>,
    /// Status (or expired).
    pub status: Option<StatusFilter>,
    /// Serial, lower-case hex.
    pub serial_hex: Option<String>,
    /// Free text: a case-insensitive part of the subject, or of the EVSE ID, EMAID, PCID or
    /// serial (those compared without separators).
    pub text: Option<String>,
    /// Tenant prefix (as stored, once the RA has decided it).
    pub tenant: Option<String>,
    /// Subject DN exactly as stored (`C=DE, O=…, CN=…`).
    pub subject: Option<String>,
    /// Only certificates with `not_after` before this (unix seconds).
    pub expiring_before: Option<i64>,
    /// Only certificates with `not_after` at or after this (unix seconds).
    pub expiring_after: Option<i64>,
    /// Keyset pagination cursor: `issuer_id/serial_hex` of the last item seen.
    pub after: Option<String>,
    /// Page size, clamped to 1..=1000 (default 100).
    pub limit: Option<i64>,
}

/// One page of a listing with the cursor of the next page (`None` on the last one).
#[derive(Clone, Debug)]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Pass as `after` to get the next page.
    pub next: Option<String>,
}

/// A registered API client. `secret_hash` is an argon2id PHC string, never the secret.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ClientRecord {
    /// Its `client_id`.
    pub client_id: String,
    /// Human-readable name.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// Normalised tenant prefixes it acts for.
    pub tenants: Vec<String>,
    /// argon2id PHC string of its secret.
    #[serde(skip)]
    pub secret_hash: String,
    /// SHA-256 (hex) of the client certificate it may authenticate with over mutual TLS.
    pub cert_sha256: Option<String>,
    /// When it was disabled, unix seconds.
    pub disabled_at: Option<i64>,
    /// When it was registered, unix seconds.
    pub created_at: i64,
}

/// The access-token signing key: the private half lives in the HSM (`key_id`), the public point
/// here so that verification needs no HSM round trip.
#[derive(Clone, Debug)]
pub struct SigningKeyRecord {
    /// JWS `kid`.
    pub kid: String,
    /// CKA_ID of the key in the token, hex.
    pub key_id: String,
    /// Its algorithm.
    pub key_alg: KeyAlg,
    /// Uncompressed EC point.
    pub public_point: Vec<u8>,
    /// When it was made, unix seconds.
    pub created_at: i64,
}

/// The newest CRL of a CA.
#[derive(Clone, Debug)]
pub struct CrlRecord {
    /// CA id.
    pub issuer_id: String,
    /// The key generation of the CA that signs it and whose certificates it lists.
    pub generation: i64,
    /// CRL number; only ever grows.
    pub crl_number: i64,
    /// thisUpdate, unix seconds.
    pub this_update: i64,
    /// nextUpdate, unix seconds.
    pub next_update: i64,
    /// How many certificates of the CA were revoked when it was made (-1: unknown). The CRL is
    /// current while that count has not grown.
    pub revoked_count: i64,
    /// The CRL, DER.
    pub der: Vec<u8>,
}

/// A revoked certificate as a CRL lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevokedEntry {
    /// Serial, lower-case hex.
    pub serial_hex: String,
    /// When it was revoked, unix seconds.
    pub revoked_at: i64,
    /// Why.
    pub reason: Option<RevocationReason>,
}

/// What happened, before it is numbered and chained into the audit log.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AuditEvent {
    /// Who did it (`cli:alice`, `api:pnc_…`, `service`, …).
    pub actor: String,
    /// What (`certificate.issue`, `crl.issued`, …).
    pub action: String,
    /// To what (`cpo-sub-ca-2/4a…`, a CA id, a client id, …).
    pub target: String,
    /// Details as JSON.
    pub details: serde_json::Value,
    /// Ecosystem events the same change causes: written to the webhook outbox in the same
    /// transaction as this entry (see `crate::events`).
    #[serde(skip)]
    pub events: Vec<crate::events::OutboxEvent>,
}

/// Longest audit target kept; longer ones (request paths sent by anonymous callers) are cut, so
/// that nobody can grow the append-only log by sending long URLs.
pub const MAX_AUDIT_TARGET: usize = 256;

/// The actor of what provisioning does on its own: supersessions, their revocations.
pub const PROVISIONING_ACTOR: &str = "service:provisioning";

impl AuditEvent {
    /// An event; `target` is cut to [`MAX_AUDIT_TARGET`] characters.
    pub fn new(actor: &str, action: &str, target: &str, details: serde_json::Value) -> Self {
        AuditEvent {
            actor: actor.chars().take(MAX_AUDIT_TARGET).collect(),
            action: action.into(),
            target: target.chars().take(MAX_AUDIT_TARGET).collect(),
            details,
            events: Vec::new(),
        }
    }

    /// The entry of a certificate's revocation (`certificate.revoke`, target `issuer/serial`).
    pub fn revocation(
        actor: &str,
        issuer_id: &str,
        serial_hex: &str,
        reason: RevocationReason,
    ) -> Self {
        AuditEvent::new(
            actor,
            "certificate.revoke",
            &format!("{issuer_id}/{serial_hex}"),
            serde_json::json!({ "reason": reason.name() }),
        )
    }

    /// The same entry with `key` set to `value` in its details (an object).
    pub fn with_detail(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        if let Some(o) = self.details.as_object_mut() {
            o.insert(key.into(), value.into());
        }
        self
    }

    /// The same entry, also causing `event` (written to the outbox with it).
    pub fn with_event(mut self, event: crate::events::OutboxEvent) -> Self {
        self.events.push(event);
        self
    }
}

/// An entry of the audit log as stored.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AuditEntry {
    /// Position in the chain, from 1.
    pub seq: i64,
    /// When, unix seconds.
    pub ts: i64,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// To what.
    pub target: String,
    /// Details, canonical JSON text (as hashed).
    pub details: String,
    /// Hash of the previous entry.
    pub prev_hash: String,
    /// SHA-256 over `prev_hash` and this entry's canonical form.
    pub hash: String,
}

impl AuditEntry {
    /// The exported form (`pnc-pki audit export`, `GET /api/v1/audit`): `seq`, `at` (RFC 3339),
    /// `actor`, `action`, `subject`, `details` (JSON) and `hash`.
    pub fn export_json(&self) -> serde_json::Value {
        let details: serde_json::Value = serde_json::from_str(&self.details)
            .unwrap_or_else(|_| serde_json::Value::String(self.details.clone()));
        serde_json::json!({
            "seq": self.seq,
            "at": rfc3339(self.ts),
            "actor": self.actor,
            "action": self.action,
            "subject": self.target,
            "details": details,
            "hash": self.hash,
        })
    }
}

/// Result of walking the whole audit chain.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AuditReport {
    /// Entries that verified.
    pub entries: i64,
    /// Hash of the last entry that verified.
    pub head_hash: String,
    /// First problem found, if any: (seq, description).
    pub broken_at: Option<(i64, String)>,
}

impl AuditReport {
    /// The chain is intact.
    pub fn ok(&self) -> bool {
        self.broken_at.is_none()
    }
}

/// Filters for reading the audit log.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    /// Only entries with a larger `seq`.
    pub after_seq: Option<i64>,
    /// Only entries whose action starts with this.
    pub action_prefix: Option<String>,
    /// Only entries with a smaller `seq` (paging backwards).
    pub before_seq: Option<i64>,
    /// Only entries about exactly this target (`issuer/serial`, a client id, a user name).
    pub target: Option<String>,
    /// Only entries by exactly this actor (`api:pnc_…`, `ui:alice`, `cli:root`).
    pub actor: Option<String>,
    /// Newest first instead of oldest first.
    pub newest_first: bool,
    /// Page size, clamped to 1..=1000 (default 100).
    pub limit: Option<i64>,
}

/// A certificate just issued, with the chain above it.
#[derive(Debug, Clone)]
pub struct Issued {
    /// Its stored record.
    pub record: CertRecord,
    /// The certificate.
    pub cert: ParsedCert,
    /// Issuer chain, issuing CA first, root last.
    pub chain: Vec<ParsedCert>,
}

impl Issued {
    /// The issuing CAs without the root (what an enrollment answer or `--chain` carries).
    pub fn intermediates(&self) -> impl Iterator<Item = &ParsedCert> {
        self.chain
            .iter()
            .filter(|c| c.tbs().issuer() != c.tbs().subject())
    }
}

/// Unix seconds as RFC 3339 UTC (`2026-12-01T22:06:46Z`).
pub fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_parse_by_name_and_keep_their_codes() {
        assert_eq!(
            RevocationReason::parse("keycompromise").unwrap(),
            RevocationReason::KeyCompromise
        );
        assert_eq!(RevocationReason::parse("cACompromise").unwrap().code(), 2);
        assert_eq!(RevocationReason::AaCompromise.code(), 10);
        assert_eq!(RevocationReason::Unspecified.encoded_code(), None);
        let e = RevocationReason::parse("lostIt").unwrap_err();
        assert!(e.to_string().contains("keyCompromise"), "{e}");
        for r in RevocationReason::ALL {
            assert_eq!(RevocationReason::parse(r.name()).unwrap(), r);
        }
        assert_eq!(
            serde_json::to_string(&RevocationReason::Superseded).unwrap(),
            "\"superseded\""
        );
    }

    #[test]
    fn statuses_and_filters() {
        assert_eq!(CertStatus::from_db("revoked"), Some(CertStatus::Revoked));
        assert_eq!(CertStatus::from_db("x"), None);
        assert_eq!(
            "expired".parse::<StatusFilter>().unwrap(),
            StatusFilter::Expired
        );
        assert!("gone".parse::<StatusFilter>().is_err());
    }

    #[test]
    fn audit_export_shape() {
        let e = AuditEntry {
            seq: 7,
            ts: 1_795_600_000,
            actor: "cli:root".into(),
            action: "crl.issued".into(),
            target: "v2g-root".into(),
            details: "{\"number\":3}".into(),
            prev_hash: "00".into(),
            hash: "ab".into(),
        };
        let v = e.export_json();
        assert_eq!(v["at"], "2026-11-25T09:46:40Z");
        assert_eq!(v["subject"], "v2g-root");
        assert_eq!(v["details"]["number"], 3);
        let long = AuditEvent::new("a", "b", &"x".repeat(10_000), serde_json::json!({}));
        assert_eq!(long.target.len(), MAX_AUDIT_TARGET);
    }
}

// ------------------------------------------------------------------------- contract provisioning

/// The kind of an external root the operator trusts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum RootKind {
    /// An OEM root: OEM provisioning chains end in it.
    #[serde(rename = "oem-root")]
    Oem,
    /// A V2G root.
    #[serde(rename = "v2g-root")]
    V2g,
    /// A mobility operator root.
    #[serde(rename = "mo-root")]
    Mo,
}

impl RootKind {
    /// Every kind.
    pub const ALL: [RootKind; 3] = [RootKind::Oem, RootKind::V2g, RootKind::Mo];

    /// The stored and displayed form (`oem-root`, `v2g-root`, `mo-root`).
    pub fn as_str(self) -> &'static str {
        match self {
            RootKind::Oem => "oem-root",
            RootKind::V2g => "v2g-root",
            RootKind::Mo => "mo-root",
        }
    }

    /// OPCP's `rootType` (`OEM`, `V2G`, `MO`).
    pub fn opcp_type(self) -> &'static str {
        match self {
            RootKind::Oem => "OEM",
            RootKind::V2g => "V2G",
            RootKind::Mo => "MO",
        }
    }
}

impl FromStr for RootKind {
    type Err = String;
    fn from_str(s: &str) -> Result<RootKind, String> {
        RootKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown root kind '{}' (use oem-root, v2g-root or mo-root)",
                    s.chars().take(32).collect::<String>()
                )
            })
    }
}

/// An external root certificate the operator trusts.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TrustedRoot {
    /// SHA-256 of the DER, hex.
    pub id: String,
    /// What it is trusted for.
    pub kind: RootKind,
    /// Subject DN.
    pub subject: String,
    /// Serial number, hex.
    pub serial_hex: String,
    /// Validity start, Unix seconds.
    pub not_before: i64,
    /// Validity end, Unix seconds.
    pub not_after: i64,
    /// The certificate.
    #[serde(skip)]
    pub der: Vec<u8>,
    /// When it was added.
    pub added_at: i64,
}

/// One vehicle's OEM provisioning certificate chain in the pool.
#[derive(Debug, Clone)]
pub struct ProvCertRecord {
    /// PCID (the leaf's CN), uppercase.
    pub pcid: String,
    /// The PCID's WMI.
    pub tenant: String,
    /// `xsdMsgDefNamespace` as uploaded.
    pub namespace: String,
    /// The OEM provisioning certificate.
    pub leaf_der: Vec<u8>,
    /// OEM sub-CA 1 (next to the root).
    pub sub_ca1_der: Option<Vec<u8>>,
    /// OEM sub-CA 2 (issuer of the leaf).
    pub sub_ca2_der: Option<Vec<u8>>,
    /// The trusted root the chain ended in at upload.
    pub root_der: Vec<u8>,
    /// Who uploaded it.
    pub uploaded_by: String,
    /// When.
    pub uploaded_at: i64,
}

/// Whether a contract may still be provisioned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ContractStatus {
    /// Provisioning allowed.
    Active,
    /// Cancelled: its certificates are revoked, nothing more is issued.
    Cancelled,
}

impl ContractStatus {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            ContractStatus::Active => "active",
            ContractStatus::Cancelled => "cancelled",
        }
    }

    /// Parse the stored form.
    pub fn from_db(s: &str) -> Option<ContractStatus> {
        match s {
            "active" => Some(ContractStatus::Active),
            "cancelled" => Some(ContractStatus::Cancelled),
            _ => None,
        }
    }
}

/// A contract: an EMAID bound to a vehicle (PCID), under which contract certificates are issued.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ContractRecord {
    /// Identifier (random, URL-safe).
    pub id: String,
    /// EMAID, normalised (no separators, with check digit for -2).
    pub emaid: String,
    /// PCID, uppercase.
    pub pcid: String,
    /// EMAID prefix (country + provider): the MO tenant.
    pub tenant: String,
    /// MO sub-CA to issue under (`None`: the default one).
    pub issuer_id: Option<String>,
    /// `O` of the contract certificates (`None`: the issuing sub-CA's).
    pub organization: Option<String>,
    /// Provisioning allowed from (Unix seconds).
    pub valid_from: Option<i64>,
    /// Provisioning allowed until, and the latest expiry of its certificates (Unix seconds).
    pub valid_to: Option<i64>,
    /// Seconds after an update before the replaced certificate is revoked (`superseded`).
    pub grace_seconds: i64,
    /// Active or cancelled.
    pub status: ContractStatus,
    /// Who created it.
    pub created_by: String,
    /// When.
    pub created_at: i64,
    /// When it was cancelled.
    pub cancelled_at: Option<i64>,
}

/// Install or update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProvisioningKind {
    /// `CertificateInstallationReq`.
    Install,
    /// `CertificateUpdateReq`.
    Update,
}

impl ProvisioningKind {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            ProvisioningKind::Install => "install",
            ProvisioningKind::Update => "update",
        }
    }
}

/// What ties an issued contract certificate to the request that produced it; stored in the
/// issuance's transaction.
#[derive(Debug, Clone)]
pub struct ProvisioningLink {
    /// The contract.
    pub contract_id: String,
    /// Install or update.
    pub kind: ProvisioningKind,
    /// `iso15118-2` or `iso15118-20`.
    pub schema_version: &'static str,
    /// The EXI request as received.
    pub request: Vec<u8>,
    /// Size of the EXI response, bytes.
    pub response_size: usize,
    /// The contract's other valid certificates of the same schema (issuer, serial), superseded
    /// by this one: scheduled for revocation at `supersede_at` in the same transaction.
    pub supersedes: Vec<(String, String)>,
    /// When the superseded certificates are revoked (now + the contract's grace period).
    pub supersede_at: i64,
    /// The answer delivered, kept so that the same request bytes get it again.
    pub response: Option<Vec<u8>>,
    /// A pre-generated answer to keep for later delivery: (SHA-256 of the OEM provisioning
    /// certificate it is encrypted for, the signed EXI).
    pub pregenerated: Option<(String, Vec<u8>)>,
    /// The call's idempotency key and the answer to give its retries, stored in the same
    /// transaction (`Ra::provision`).
    pub idempotency: Option<(IdempotencyKey, Vec<u8>)>,
    /// Ecosystem events this provisioning causes (`oem.contract.created|updated`), written with
    /// it.
    pub events: Vec<crate::events::OutboxEvent>,
}

/// A pre-generated answer, ready to deliver with the live SessionID.
#[derive(Debug, Clone)]
pub struct Pregenerated {
    /// The contract.
    pub contract_id: String,
    /// `iso15118-2`.
    pub schema_version: String,
    /// Issuer of the contract certificate inside.
    pub issuer_id: String,
    /// Its serial.
    pub serial_hex: String,
    /// SHA-256 (hex) of the OEM provisioning certificate the key is encrypted for (empty: an
    /// MO encrypted it itself, for whichever certificate of the vehicle it chose).
    pub oem_sha256: String,
    /// Expiry of the contract certificate inside (Unix seconds).
    pub not_after: i64,
    /// The signed answer (SessionID to be replaced).
    pub exi: Vec<u8>,
    /// When it was made.
    pub created_at: i64,
}

/// A person who signs in to the operator console (never an API client). `password_hash` is an
/// argon2id PHC string, never the password.
#[derive(Clone, Debug, serde::Serialize)]
pub struct UserRecord {
    /// Sign-in name (unique).
    pub name: String,
    /// Role, one of admin, auditor, cpo, mo.
    pub role: crate::policy::authz::Role,
    /// Normalised tenant prefixes (cpo, mo).
    pub tenants: Vec<String>,
    /// argon2id PHC string of the password.
    #[serde(skip)]
    pub password_hash: String,
    /// When it was disabled, unix seconds.
    pub disabled_at: Option<i64>,
    /// When it was created, unix seconds.
    pub created_at: i64,
}

/// A console session as stored: the user it belongs to and its CSRF token.
#[derive(Clone, Debug)]
pub struct SessionRecord {
    /// SHA-256 (hex) of the cookie value.
    pub id_hash: String,
    /// The signed-in user.
    pub user: UserRecord,
    /// The token every state-changing form must carry.
    pub csrf: String,
    /// Sign-in time, unix seconds.
    pub created_at: i64,
    /// Last request, unix seconds (updated at most every few seconds).
    pub last_seen: i64,
}

/// An `Idempotency-Key` sent with an issuing call: who sent it, the key, and a digest of what
/// was asked (route and body). Stored with the certificate it produced, in the same transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyKey {
    /// The caller (`api:pnc_…`).
    pub actor: String,
    /// The key as sent.
    pub key: String,
    /// SHA-256 (hex) of the request it came with.
    pub request_sha256: String,
}

/// What an earlier call with the same idempotency key produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotentResult {
    /// SHA-256 (hex) of that request.
    pub request_sha256: String,
    /// The certificate it produced: issuer.
    pub issuer_id: String,
    /// The certificate it produced: serial.
    pub serial_hex: String,
    /// What is needed to answer a retry exactly like the first call, for calls whose answer
    /// the certificate alone does not give (a revocation's outcome, a provisioning's answer).
    pub response: Option<Vec<u8>>,
}

/// A webhook endpoint (OPCP `webhooks.v1`), owned by the API client that registered it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookEndpoint {
    /// Our id.
    pub id: String,
    /// The owning API client.
    pub client_id: String,
    /// Where events are POSTed.
    pub url: String,
    /// Enabled event types.
    pub events: Vec<String>,
    /// `enabled` or `disabled`.
    pub status: String,
    /// The caller's description.
    pub description: String,
    /// The caller's key-value pairs (a JSON object).
    pub metadata: serde_json::Value,
    /// The API version events are rendered as (`v1`).
    pub api_version: String,
    /// The HMAC key of `payload-signature` (shown once, at creation).
    pub secret: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

/// One event's delivery to one endpoint, with its attempts.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookDelivery {
    /// The event's UUID (the same on every attempt).
    pub event_id: String,
    /// Its type.
    pub event_type: String,
    /// The endpoint.
    pub endpoint_id: String,
    /// `pending`, `delivered`, `failed` (given up) or `cancelled` (endpoint deleted).
    pub state: String,
    /// Attempts made.
    pub attempts: i64,
    /// When the next attempt is due (pending only), unix milliseconds.
    pub next_attempt_ms: Option<i64>,
    /// Each attempt: `{at, ms, status}` or `{at, ms, error}`.
    pub log: serde_json::Value,
    /// When the event was written, unix seconds.
    pub created_at: i64,
    /// When it was delivered or given up, unix seconds.
    pub finished_at: Option<i64>,
}

/// A delivery that is due, with what sending it needs.
#[derive(Clone, Debug)]
pub struct DueDelivery {
    /// The event's UUID.
    pub event_id: String,
    /// Its type.
    pub event_type: String,
    /// Who may hear of it (stored form).
    pub audience: String,
    /// The exact body.
    pub body: Vec<u8>,
    /// The endpoint.
    pub endpoint_id: String,
    /// Its URL at the time of sending.
    pub url: String,
    /// Its secret.
    pub secret: String,
    /// The role of the client that owns the endpoint (`oem`, `mo`, …).
    pub owner_role: String,
    /// Attempts made so far.
    pub attempts: i64,
    /// The attempt log so far.
    pub log: serde_json::Value,
}
