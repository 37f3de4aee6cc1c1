//! Policy checks on what a requester asks for: subject DN and requested extensions.
//! The CA never copies extensions from a request; it only refuses requests it cannot honour.

use der::asn1::ObjectIdentifier;
use x509_cert::ext::Extension;
use x509_cert::name::RdnSequence;

use super::PolicyError;
use super::authz::Identifier;
use crate::policy::identifiers;
use crate::policy::profile::{CnRule, DcMissing, Profile};
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
    _checked: (),
}

impl CheckedSubject {
    /// The identifier the subject carries, for the tenant decision.
    pub fn identifier(&self) -> Option<Identifier<'_>> {
        if let Some(e) = &self.evse_id {
            Some(Identifier::EvseId(e))
        } else if let Some(e) = &self.emaid {
            Some(Identifier::Emaid(e))
        } else {
            self.pcid.as_deref().map(Identifier::Pcid)
        }
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
        _checked: (),
    };
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
