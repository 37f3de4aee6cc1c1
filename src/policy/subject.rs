//! Policy checks on what a requester asks for: subject DN and requested extensions.
//! The CA never copies extensions from a request; it only refuses requests it cannot honour.

use der::asn1::ObjectIdentifier;
use x509_cert::ext::Extension;
use x509_cert::name::RdnSequence;

use super::PolicyError;
use super::authz::Identifier;
use crate::policy::identifiers;
use crate::policy::profile::{CnRule, DcMissing, Profile, SanRule, Standard};
use crate::x509::name;

/// A subject that passed its profile, with the identifiers it carries. Only [`check_subject`]
/// makes one, so holding one proves the check ran: the CA issues only for checked subjects.
// The private field (not `#[non_exhaustive]`, which only binds other crates) keeps every other
// module of this crate, the CA included, from building one without the check.
#[allow(clippy::manual_non_exhaustive)]
#[derive(Debug, Clone)]
pub struct CheckedSubject {
    /// The subject to put in the certificate (with DC added where the profile says so).
    pub name: RdnSequence,
    /// The EMAID of a contract certificate, compact form.
    pub emaid: Option<String>,
    /// The EVSE ID or SECCID of a SECC certificate, compact form.
    pub evse_id: Option<String>,
    /// The PCID of an OEM provisioning certificate.
    pub pcid: Option<String>,
    /// Tenant prefix the identifier belongs to (EMAID CC+provider, EVSE operator, PCID WMI).
    pub tenant: Option<String>,
    /// The profile it was checked against.
    pub profile: String,
    /// The organization (O) of an OCPP certificate: the CSO or manufacturer, its tenant.
    pub organization: Option<String>,
    /// The subjectAltName entries to issue (OCPP server certificates only), checked by
    /// [`CheckedSubject::with_requested_sans`].
    pub sans: Vec<SanName>,
    _checked: (),
}

/// One subjectAltName entry we issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SanName {
    /// dNSName, lower case.
    Dns(String),
    /// iPAddress.
    Ip(std::net::IpAddr),
}

impl std::fmt::Display for SanName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SanName::Dns(n) => write!(f, "DNS:{n}"),
            SanName::Ip(a) => write!(f, "IP:{a}"),
        }
    }
}

impl CheckedSubject {
    /// The identifier the subject carries, for the tenant decision.
    pub fn identifier(&self) -> Option<Identifier<'_>> {
        if let Some(e) = &self.evse_id {
            Some(Identifier::EvseId(e))
        } else if let Some(e) = &self.emaid {
            Some(Identifier::Emaid(e))
        } else if let Some(p) = &self.pcid {
            Some(Identifier::Pcid(p))
        } else {
            self.organization.as_deref().map(Identifier::Organization)
        }
    }

    /// Take the subjectAltName the CSR asks for, as the profile says: under
    /// [`SanRule::DnsIpAllowed`] every entry must be a DNS name or IP address that `allowed`
    /// accepts, and there must be at least one; under [`SanRule::None`] nothing is issued.
    pub fn with_requested_sans(
        mut self,
        profile: &Profile,
        exts: &[Extension],
        allowed: impl Fn(&SanName) -> bool,
    ) -> Result<CheckedSubject, PolicyError> {
        if profile.san == SanRule::None {
            return Ok(self);
        }
        use x509_cert::ext::pkix::name::GeneralName;
        let mut sans = Vec::new();
        for e in exts
            .iter()
            .filter(|e| e.extn_id == const_oid::db::rfc5280::ID_CE_SUBJECT_ALT_NAME)
        {
            let names: x509_cert::ext::pkix::SubjectAltName =
                der::Decode::from_der(e.extn_value.as_bytes())
                    .map_err(|_| refuse(profile, "malformed subjectAltName request".into()))?;
            for n in names.0 {
                let san = match n {
                    GeneralName::DnsName(d) => {
                        let raw = d.to_string();
                        let norm = super::authz::normalize_dns_allowed(&raw)
                            .filter(|n| !n.starts_with("*."))
                            .ok_or_else(|| {
                                refuse(profile, format!("'{raw}' is not a DNS host name"))
                            })?;
                        SanName::Dns(norm)
                    }
                    GeneralName::IpAddress(os) => {
                        let b = os.as_bytes();
                        let ip = match b.len() {
                            4 => std::net::IpAddr::from(<[u8; 4]>::try_from(b).unwrap_or_default()),
                            16 => {
                                std::net::IpAddr::from(<[u8; 16]>::try_from(b).unwrap_or_default())
                            }
                            _ => {
                                return Err(refuse(profile, "malformed IP address in SAN".into()));
                            }
                        };
                        SanName::Ip(ip)
                    }
                    _ => {
                        return Err(refuse(
                            profile,
                            "subjectAltName may hold DNS names and IP addresses only".into(),
                        ));
                    }
                };
                if !allowed(&san) {
                    return Err(refuse(
                        profile,
                        format!("{san} is not on this client's subjectAltName allow-list"),
                    ));
                }
                if !sans.contains(&san) {
                    sans.push(san);
                }
            }
        }
        if sans.is_empty() {
            return Err(refuse(
                profile,
                "the CSR must ask for at least one DNS name or IP address (subjectAltName)".into(),
            ));
        }
        // A server certificate's CN is a host name too (clients that ignore subjectAltName
        // read it): it must be on the allow-list like every SAN, or another CSO's host name
        // could be had in the CN.
        for cn in name::values(&self.name, name::OID_CN) {
            let as_san = match cn.trim().parse::<std::net::IpAddr>() {
                Ok(ip) => Some(SanName::Ip(ip)),
                Err(_) => super::authz::normalize_dns_allowed(&cn)
                    .filter(|n| !n.starts_with("*."))
                    .map(SanName::Dns),
            };
            if !as_san.as_ref().is_some_and(&allowed) {
                return Err(refuse(
                    profile,
                    format!(
                        "the CN '{}' is not on this client's allow-list (a server certificate's CN is checked like its subjectAltName)",
                        cn.chars().take(64).collect::<String>()
                    ),
                ));
            }
        }
        self.sans = sans;
        Ok(self)
    }
}

fn refuse(p: &Profile, reason: String) -> PolicyError {
    PolicyError::refused(p, reason)
}

/// Parse a subject written as text (`"C=DE, O=…, CN=…"`) and check it against `profile`.
pub fn check_subject_text(profile: &Profile, text: &str) -> Result<CheckedSubject, PolicyError> {
    let subject = name::build_from_text(text).map_err(|e| refuse(profile, e.to_string()))?;
    check_subject(profile, &subject)
}

/// Check a subject against `profile`: allowed and required attributes, DC, and the CN's
/// identifier rule (which also yields the tenant).
pub fn check_subject(
    profile: &Profile,
    subject: &RdnSequence,
) -> Result<CheckedSubject, PolicyError> {
    let mut seen: Vec<&'static str> = Vec::new();
    let mut cn = None;
    let mut dc = None;
    for rdn in subject.iter() {
        if rdn.len() != 1 {
            return Err(refuse(profile, "multi-valued RDNs are not allowed".into()));
        }
        for atv in rdn.iter() {
            let short = name::short_name(&atv.oid).ok_or_else(|| {
                refuse(
                    profile,
                    format!("subject attribute {} is not allowed", atv.oid),
                )
            })?;
            if !profile.subject.allowed.iter().any(|a| a == short) {
                return Err(refuse(
                    profile,
                    format!(
                        "subject attribute {short} is not allowed (allowed: {})",
                        profile.subject.allowed.join(", ")
                    ),
                ));
            }
            if seen.contains(&short) {
                return Err(refuse(
                    profile,
                    format!("subject attribute {short} appears twice"),
                ));
            }
            seen.push(short);
            let value = name::value_string(&atv.value).ok_or_else(|| {
                refuse(
                    profile,
                    format!("subject {short} is not a string type we accept"),
                )
            })?;
            if value.trim().is_empty() {
                return Err(refuse(profile, format!("subject {short} is empty")));
            }
            match short {
                "CN" => cn = Some(value),
                "DC" => dc = Some(value),
                "C" if !(value.len() == 2 && value.bytes().all(|b| b.is_ascii_uppercase())) => {
                    return Err(refuse(
                        profile,
                        format!("C must be a 2-letter country code, got '{value}'"),
                    ));
                }
                _ => {}
            }
        }
    }
    let mut name = subject.clone();
    if let Some(want) = &profile.subject.dc {
        match &dc {
            Some(have) if have != want => {
                return Err(refuse(
                    profile,
                    format!("DC must be '{want}', the request has '{have}'"),
                ));
            }
            Some(_) => {}
            None => match profile.subject.dc_missing {
                DcMissing::Reject => {
                    return Err(refuse(profile, format!("subject lacks DC={want}")));
                }
                DcMissing::Add => {
                    let mut pairs: Vec<(String, String)> = name::attributes(subject)
                        .into_iter()
                        .map(|(o, v)| {
                            (
                                name::short_name(&o).unwrap_or("?").to_string(),
                                v.unwrap_or_default(),
                            )
                        })
                        .collect();
                    pairs.push(("DC".into(), want.clone()));
                    name = name::build(&pairs).map_err(|r| refuse(profile, r.to_string()))?;
                    seen.push("DC");
                }
                DcMissing::Allow => {}
            },
        }
    }
    for req in &profile.subject.required {
        let added_by_ca = req == "DC" && profile.subject.dc_missing == DcMissing::Add;
        if !added_by_ca && !seen.iter().any(|s| s == req) {
            return Err(refuse(
                profile,
                format!("subject lacks required attribute {req}"),
            ));
        }
    }
    let cn = cn.ok_or_else(|| refuse(profile, "subject has no CN".into()))?;
    let normal = profile
        .check_cn(&cn)
        .map_err(|r| refuse(profile, format!("CN: {r}")))?;
    if profile.subject.cn != CnRule::Free && normal != cn {
        return Err(refuse(
            profile,
            format!("CN '{cn}' must be written in its normalised form '{normal}'"),
        ));
    }
    let mut out = CheckedSubject {
        name,
        emaid: None,
        evse_id: None,
        pcid: None,
        tenant: None,
        profile: profile.name.clone(),
        organization: None,
        sans: Vec::new(),
        _checked: (),
    };
    if profile.standard == Standard::Ocpp && profile.is_leaf() {
        // OCPP leaves belong to the organization (the CSO, the manufacturer) they are made out to.
        let org = name::values(&out.name, name::OID_O).into_iter().next();
        out.tenant = org.clone();
        out.organization = org;
    }
    match profile.subject.cn {
        CnRule::Emaid | CnRule::Emaid20 => {
            out.tenant = identifiers::emaid_prefix(&normal).ok();
            out.emaid = Some(identifiers::compact_id(&normal));
        }
        CnRule::EvseId | CnRule::Seccid => {
            out.tenant = identifiers::evse_operator_prefix(&normal).ok();
            out.evse_id = Some(identifiers::compact_id(&normal));
        }
        CnRule::Pcid | CnRule::Pcid20 => {
            out.tenant = identifiers::pcid_wmi(&normal).ok();
            out.pcid = Some(normal.to_ascii_uppercase());
        }
        CnRule::Free => {}
    }
    Ok(out)
}

/// Extensions a CSR may ask for: they are ignored (the profile decides), but anything else is
/// refused so that nobody believes they got an extension they did not.
const TOLERATED: &[ObjectIdentifier] = &[
    const_oid::db::rfc5280::ID_CE_KEY_USAGE,
    const_oid::db::rfc5280::ID_CE_BASIC_CONSTRAINTS,
    const_oid::db::rfc5280::ID_CE_EXT_KEY_USAGE,
    const_oid::db::rfc5280::ID_CE_SUBJECT_KEY_IDENTIFIER,
    const_oid::db::rfc5280::ID_CE_SUBJECT_ALT_NAME,
];

/// Refuse a CSR that asks for extensions we would not issue (or for cA=TRUE on a leaf).
pub fn check_requested_extensions(
    profile: &Profile,
    exts: &[Extension],
) -> Result<(), PolicyError> {
    for e in exts {
        if !TOLERATED.contains(&e.extn_id) {
            return Err(refuse(
                profile,
                format!(
                    "the CSR requests extension {} which this CA does not issue",
                    e.extn_id
                ),
            ));
        }
        if e.extn_id == const_oid::db::rfc5280::ID_CE_BASIC_CONSTRAINTS {
            let bc: x509_cert::ext::pkix::BasicConstraints =
                der::Decode::from_der(e.extn_value.as_bytes())
                    .map_err(|_| refuse(profile, "malformed basicConstraints request".into()))?;
            if bc.ca && !profile.basic_constraints.ca {
                return Err(refuse(
                    profile,
                    "the CSR asks for cA=TRUE on a leaf profile".into(),
                ));
            }
        }
    }
    Ok(())
}
