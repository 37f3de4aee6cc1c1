//! Roles: what a certificate must look like to be taken as an OEM provisioning certificate, a
//! contract certificate, a SECC leaf, a charging-station or a CSMS server certificate, and which
//! roots and sub-CA kinds it may chain through. The leaf's CN form and DC value come from the
//! profiles in `policies/` (the ones we issue the role under); the functional key usage bits
//! are the ones the protocol uses the key for.

use super::{AnchorKind, Candidate, Failure, Source, basic_constraints, key_usage};
use crate::policy::profile::Profiles;
use crate::x509::{ParsedCert, name};

/// The role a certificate is presented in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// A vehicle's OEM provisioning certificate (CN = PCID): signs the installation request,
    /// and the contract key is encrypted for its key.
    OemProvisioning,
    /// A contract certificate (CN = EMAID), issued under an MO sub-CA.
    Contract,
    /// A charger's SECC leaf (CN = EVSE ID / SECCID), issued under a CPO sub-CA.
    SeccLeaf,
    /// A CPS leaf (signs contract data), issued under a CPS sub-CA.
    CpsLeaf,
    /// An OCPP charging-station certificate (TLS client), under a CSO sub-CA.
    ChargingStation,
    /// An OCPP CSMS server certificate (TLS server), under a CSO sub-CA.
    CsmsServer,
}

impl Role {
    /// The role of certificates we issue under `profile` (leaf profiles only).
    pub fn of_profile(profile: &str) -> Option<Role> {
        match profile.trim_end_matches("-20") {
            "oem-provisioning" => Some(Role::OemProvisioning),
            "contract" => Some(Role::Contract),
            "secc-leaf" => Some(Role::SeccLeaf),
            "cps-leaf" => Some(Role::CpsLeaf),
            "charging-station" => Some(Role::ChargingStation),
            "csms-server" => Some(Role::CsmsServer),
            _ => None,
        }
    }

    /// Name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Role::OemProvisioning => "OEM provisioning certificate",
            Role::Contract => "contract certificate",
            Role::SeccLeaf => "SECC certificate",
            Role::CpsLeaf => "CPS certificate",
            Role::ChargingStation => "charging-station certificate",
            Role::CsmsServer => "CSMS server certificate",
        }
    }

    /// Roots the role may chain to.
    pub fn anchors(self) -> &'static [AnchorKind] {
        match self {
            Role::OemProvisioning => &[AnchorKind::Oem, AnchorKind::V2g],
            Role::Contract => &[AnchorKind::Mo, AnchorKind::V2g],
            Role::SeccLeaf | Role::CpsLeaf => &[AnchorKind::V2g],
            Role::ChargingStation | Role::CsmsServer => &[AnchorKind::Csms],
        }
    }

    /// Our profiles the leaf is issued under (its CN rule and DC come from them).
    fn leaf_profiles(self) -> &'static [&'static str] {
        match self {
            Role::OemProvisioning => &["oem-provisioning", "oem-provisioning-20"],
            Role::Contract => &["contract", "contract-20"],
            Role::SeccLeaf => &["secc-leaf", "secc-leaf-20"],
            Role::CpsLeaf => &["cps-leaf", "cps-leaf-20"],
            Role::ChargingStation => &["charging-station"],
            Role::CsmsServer => &["csms-server"],
        }
    }

    /// The prefix of our sub-CA profiles the role may chain through.
    fn own_sub_prefix(self) -> &'static str {
        match self {
            Role::OemProvisioning => "oem-sub-ca",
            Role::Contract => "mo-sub-ca",
            Role::SeccLeaf => "cpo-sub-ca",
            Role::CpsLeaf => "cps-sub-ca",
            Role::ChargingStation | Role::CsmsServer => "cso-sub-ca",
        }
    }

    /// The DC value of the role's family: a certificate of the path that carries a DC must
    /// carry this one (ISO 15118-2 [V2G2-925]); OCPP certificates carry none.
    fn family_dc(self) -> Option<&'static str> {
        match self {
            Role::OemProvisioning => Some("OEM"),
            Role::Contract => Some("MO"),
            Role::SeccLeaf => Some("CPO"),
            Role::CpsLeaf => Some("CPS"),
            Role::ChargingStation | Role::CsmsServer => None,
        }
    }

    /// The extended key usage the role needs when the leaf restricts it.
    fn eku(self) -> Option<const_oid::ObjectIdentifier> {
        match self {
            Role::ChargingStation => Some(const_oid::db::rfc5280::ID_KP_CLIENT_AUTH),
            Role::CsmsServer => Some(const_oid::db::rfc5280::ID_KP_SERVER_AUTH),
            _ => None,
        }
    }
}

/// The DC values of a certificate's subject.
fn dcs(c: &ParsedCert) -> Vec<String> {
    name::values(c.tbs().subject().as_ref(), name::OID_DC)
}

/// The leaf as the role needs it: an end entity, the key usage the protocol uses (when the
/// extension restricts usage), the family's DC when it has one, a CN the role's profile
/// accepts, the extended key usage of OCPP TLS certificates.
pub(super) fn check_leaf(
    role: Role,
    profiles: &Profiles,
    leaf: &ParsedCert,
) -> Result<(), Failure> {
    let who = || leaf.subject_string();
    if basic_constraints(leaf)?.is_some_and(|bc| bc.ca) {
        return Err(Failure::Role(format!(
            "{} is a CA certificate, not a {}",
            who(),
            role.name()
        )));
    }
    if let Some(ku) = key_usage(leaf)? {
        if ku.key_cert_sign() || ku.crl_sign() {
            return Err(Failure::Role(format!(
                "{} may sign certificates; a {} may not",
                who(),
                role.name()
            )));
        }
        if !ku.digital_signature() {
            return Err(Failure::Role(format!(
                "{} lacks digitalSignature, which a {} needs",
                who(),
                role.name()
            )));
        }
        if role == Role::OemProvisioning && !ku.key_agreement() {
            return Err(Failure::Role(format!(
                "{} lacks keyAgreement, which the contract key's encryption needs",
                who()
            )));
        }
    }
    if let Some(want) = role.family_dc() {
        for dc in dcs(leaf) {
            if !dc.eq_ignore_ascii_case(want) {
                return Err(Failure::Role(format!(
                    "{} carries DC={dc}; a {} carries DC={want} or none",
                    who(),
                    role.name()
                )));
            }
        }
    }
    let cn = name::values(leaf.tbs().subject().as_ref(), name::OID_CN)
        .into_iter()
        .next()
        .ok_or_else(|| Failure::Role(format!("{} has no CN", who())))?;
    let mut last = String::new();
    let ok = role.leaf_profiles().iter().any(|p| match profiles.get(p) {
        Ok(prof) => match prof.check_cn(&cn) {
            Ok(_) => true,
            Err(e) => {
                last = e.to_string();
                false
            }
        },
        Err(_) => false,
    });
    if !ok {
        return Err(Failure::Role(format!(
            "the CN '{}' is not what a {} carries: {last}",
            cn.chars().take(64).collect::<String>(),
            role.name()
        )));
    }
    if let (Some(want), Some(have)) = (role.eku(), leaf.extended_key_usage())
        && !have.contains(&want)
    {
        return Err(Failure::Role(format!(
            "{}'s extended key usage does not allow its use as a {}",
            who(),
            role.name()
        )));
    }
    Ok(())
}

/// A sub-CA of the path: one of ours only of the role's own family (a vehicle certificate
/// never chains through our CPO sub-CAs); another PKI's only without a DC of another family.
pub(super) fn check_intermediate(role: Role, c: &Candidate) -> Result<(), Failure> {
    match &c.source {
        Source::OwnCa { profile, .. } => {
            if !profile.starts_with(role.own_sub_prefix()) {
                return Err(Failure::Role(format!(
                    "a {} cannot chain through our {profile} {}",
                    role.name(),
                    c.cert.subject_string()
                )));
            }
        }
        Source::Presented => {
            if let Some(want) = role.family_dc() {
                for dc in dcs(&c.cert) {
                    if !dc.eq_ignore_ascii_case(want) {
                        return Err(Failure::Role(format!(
                            "a {} cannot chain through the DC={dc} sub-CA {}",
                            role.name(),
                            c.cert.subject_string()
                        )));
                    }
                }
            }
        }
        Source::Anchor { .. } => {}
    }
    Ok(())
}
