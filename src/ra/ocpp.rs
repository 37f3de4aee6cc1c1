//! OCPP 2.0.1/2.1 certificate operations a CSMS relays for its charging stations (security
//! profiles 2 and 3): `SignCertificate` for charging-station (TLS client) and V2G (SECC)
//! certificates, and the root set a new station installs (`InstallCertificate`,
//! `GetInstalledCertificateIds`). The CSMS authenticated the station; it tells us which one
//! (`stationId`), and the RA holds the CSR to it.

use super::{Ra, RaError};
use crate::alg::HashAlg;
use crate::model::{Issued, RootKind};
use crate::policy::authz::{self, Family, Operation, Principal, Target};
use crate::policy::profile::Standard;
use crate::x509::{CertHashData, ParsedCert, cert_hash_data};

/// OCPP `CertificateSigningUseEnumType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OcppCertificateType {
    /// `ChargingStationCertificate`: the station's TLS client certificate towards the CSMS.
    ChargingStation,
    /// `V2GCertificate`: the ISO 15118-2 SECC certificate.
    V2g,
    /// `V2G20Certificate` (OCPP 2.1): the ISO 15118-20 SECC certificate.
    V2g20,
}

impl OcppCertificateType {
    /// The OCPP name.
    pub fn name(self) -> &'static str {
        match self {
            OcppCertificateType::ChargingStation => "ChargingStationCertificate",
            OcppCertificateType::V2g => "V2GCertificate",
            OcppCertificateType::V2g20 => "V2G20Certificate",
        }
    }

    /// The type of an OCPP name (exact, as the schema's enum).
    pub fn from_name(s: &str) -> Option<OcppCertificateType> {
        [
            OcppCertificateType::ChargingStation,
            OcppCertificateType::V2g,
            OcppCertificateType::V2g20,
        ]
        .into_iter()
        .find(|t| t.name() == s)
    }

    /// The leaf family and standard it is issued under.
    fn family(self) -> (Family, Standard) {
        match self {
            OcppCertificateType::ChargingStation => (Family::ChargingStation, Standard::Ocpp),
            OcppCertificateType::V2g => (Family::Secc, Standard::Iso2),
            OcppCertificateType::V2g20 => (Family::Secc, Standard::Iso20),
        }
    }
}

/// OCPP `CertificateHashDataType` as a request carries it (`hashRootCertificate`). Other
/// members (OCPP's `customData`) are ignored; the four below are required.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HashDataIn {
    /// `SHA256`, `SHA384` or `SHA512`.
    pub hash_algorithm: String,
    /// Hex.
    pub issuer_name_hash: String,
    /// Hex.
    pub issuer_key_hash: String,
    /// Hex, leading zeros optional.
    pub serial_number: String,
}

impl HashDataIn {
    /// Whether it names `root`.
    pub(super) fn names(&self, root: &ParsedCert) -> bool {
        let alg = match self.hash_algorithm.as_str() {
            "SHA256" => HashAlg::Sha256,
            "SHA384" => HashAlg::Sha384,
            "SHA512" => HashAlg::Sha512,
            _ => return false,
        };
        let want = cert_hash_data(root, root, alg);
        let serial = self.serial_number.trim().to_ascii_lowercase();
        let serial = serial.trim_start_matches('0');
        self.issuer_name_hash
            .eq_ignore_ascii_case(&want.issuer_name_hash)
            && self
                .issuer_key_hash
                .eq_ignore_ascii_case(&want.issuer_key_hash)
            && (if serial.is_empty() { "0" } else { serial }) == want.serial_number
    }
}

/// A `SignCertificateRequest` relayed by a CSMS, with the station it authenticated.
#[derive(Debug)]
pub struct SignCertificate<'a> {
    /// The charging station's identity as the CSMS authenticated it.
    pub station_id: &'a str,
    /// The PEM PKCS#10 request.
    pub csr: &'a [u8],
    /// What to issue.
    pub certificate_type: OcppCertificateType,
    /// The root the station expects its certificate under (OCPP 2.1), if it named one.
    pub hash_root: Option<&'a HashDataIn>,
    /// The caller's `Idempotency-Key`: a retry gets the first certificate (see `Ra::enroll`).
    pub idempotency_key: Option<&'a str>,
}

/// Checks beyond the profile that one enrollment path adds (see `Ra::issue_checked`).
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Extra<'a> {
    /// The CN must be exactly this station identity.
    pub station_id: Option<&'a str>,
    /// The issuing chain must end in this root.
    pub hash_root: Option<&'a HashDataIn>,
    /// The subject O to use when the CSR has none: the CSMS's one CSO organization (stations
    /// that do not know their CSO's name still get the certificate OCPP requires).
    pub default_organization: Option<&'a str>,
}

/// `subject` with `O=org` added before its CN (a CSR without an organization).
pub(super) fn with_organization(
    subject: &x509_cert::name::RdnSequence,
    org: &str,
) -> Result<x509_cert::name::RdnSequence, RaError> {
    use crate::x509::name;
    let mut pairs = Vec::new();
    let mut added = false;
    for (oid, v) in name::attributes(subject) {
        let (Some(k), Some(v)) = (name::short_name(&oid), v) else {
            return Err(RaError::bad(
                "invalid_csr_subject",
                format!("the CSR subject holds an attribute this CA does not issue ({oid})"),
            ));
        };
        if oid == name::OID_CN && !added {
            pairs.push(("O".to_string(), org.to_string()));
            added = true;
        }
        pairs.push((k.to_string(), v));
    }
    if !added {
        pairs.push(("O".to_string(), org.to_string()));
    }
    name::build(&pairs).map_err(|e| RaError::bad("invalid_csr_subject", e.to_string()))
}

/// The longest station identity we take (OCPP: `identity` of the websocket URL, ≤ 48).
const MAX_STATION_ID: usize = 48;

/// OCPP `InstallCertificateUseEnumType` of the roots a station installs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OcppRootType {
    /// `CSMSRootCertificate`.
    Csms,
    /// `ManufacturerRootCertificate`.
    Manufacturer,
    /// `V2GRootCertificate`.
    V2g,
    /// `MORootCertificate`.
    Mo,
}

impl OcppRootType {
    /// The OCPP name.
    pub fn name(self) -> &'static str {
        match self {
            OcppRootType::Csms => "CSMSRootCertificate",
            OcppRootType::Manufacturer => "ManufacturerRootCertificate",
            OcppRootType::V2g => "V2GRootCertificate",
            OcppRootType::Mo => "MORootCertificate",
        }
    }

    fn of_profile(profile: &str) -> Option<OcppRootType> {
        match profile {
            "csms-root" => Some(OcppRootType::Csms),
            "manufacturer-root" => Some(OcppRootType::Manufacturer),
            "v2g-root" | "v2g-root-20" => Some(OcppRootType::V2g),
            "mo-root" | "mo-root-20" => Some(OcppRootType::Mo),
            _ => None,
        }
    }
}

/// One root a station installs, with the hash data `GetInstalledCertificateIds` reports for it.
#[derive(Debug, Clone)]
pub struct InstallRoot {
    /// Its OCPP type.
    pub kind: OcppRootType,
    /// The certificate.
    pub cert: ParsedCert,
    /// Its `CertificateHashDataType` (SHA-256).
    pub hash_data: CertHashData,
}

impl Ra {
    /// OCPP `SignCertificate` relayed by a CSMS: a charging-station certificate whose CN is the
    /// station the CSMS authenticated and whose O is the CSMS's CSO, or a V2G (SECC)
    /// certificate for an EVSE ID of the CSMS's operator prefixes. Refusals are audited like
    /// every enrollment refusal.
    pub async fn ocpp_sign_certificate(
        &self,
        p: &Principal,
        req: SignCertificate<'_>,
    ) -> Result<Issued, RaError> {
        let (family, standard) = req.certificate_type.family();
        let op = Operation::Enroll(family);
        let profile_name = family.profile(standard);
        let r = async {
            self.authorize(p, op, Target::Any, &profile_name).await?;
            let sid = req.station_id;
            if sid.trim().is_empty()
                || sid.chars().count() > MAX_STATION_ID
                || sid.chars().any(char::is_control)
            {
                return Err(RaError::bad(
                    "invalid_station_id",
                    format!("stationId must be 1 to {MAX_STATION_ID} printable characters"),
                ));
            }
            // What a retry must repeat: the station, the type and the CSR.
            let idem = match req.idempotency_key {
                Some(k) => {
                    let mut what = Vec::with_capacity(req.csr.len() + 64);
                    what.extend_from_slice(sid.as_bytes());
                    what.push(b'\n');
                    what.extend_from_slice(req.certificate_type.name().as_bytes());
                    what.push(b'\n');
                    what.extend_from_slice(req.csr);
                    Some(super::idempotency(p, k, &profile_name, &what)?)
                }
                None => None,
            };
            let orgs = authz::csms_organizations(p);
            let extra = Extra {
                station_id: (family == Family::ChargingStation).then_some(sid),
                hash_root: req.hash_root,
                default_organization: match orgs.as_slice() {
                    [one] if family == Family::ChargingStation => Some(*one),
                    _ => None,
                },
            };
            self.idempotent(idem.as_ref(), || async {
                self.limit_enrollment(p)?;
                self.issue_checked(
                    p,
                    op,
                    &profile_name,
                    req.csr,
                    None,
                    None,
                    extra,
                    idem.as_ref(),
                )
                .await
            })
            .await
        }
        .await;
        match r {
            Ok(i) => {
                if family == Family::ChargingStation {
                    // A station keeps one certificate: the one it just asked for.
                    self.supersede_previous(&i, &p.actor()).await;
                }
                Ok(i)
            }
            Err(e) => Err(self
                .refused(p, "certificate.enroll.refused", &profile_name, e)
                .await),
        }
    }

    /// The roots a CSMS installs on a new station (`InstallCertificate`), ours and the external
    /// V2G/MO roots the operator trusts, each with its hash data. Every authenticated client may
    /// ask (roots are public; the route needs a token so that it is not a free directory).
    pub async fn ocpp_install_roots(&self, p: &Principal) -> Result<Vec<InstallRoot>, RaError> {
        self.authorize(
            p,
            Operation::ReadCas,
            Target::Any,
            "ocpp/install-certificates",
        )
        .await?;
        let mut out = Vec::new();
        let now = self.now();
        for ca in self.inner.store.list_cas().await? {
            let Some(kind) = OcppRootType::of_profile(&ca.profile) else {
                continue;
            };
            if ca.parent_id.is_some() || ca.not_after <= now {
                continue;
            }
            let cert = ParsedCert::from_der(&ca.cert_der).map_err(crate::ca::CaError::from)?;
            out.push(root(kind, cert));
        }
        for t in self.inner.store.list_trusted_roots().await? {
            let kind = match t.kind {
                RootKind::V2g => OcppRootType::V2g,
                RootKind::Mo => OcppRootType::Mo,
                RootKind::Oem => continue,
            };
            if t.not_after <= now {
                continue;
            }
            let cert = ParsedCert::from_der(&t.der).map_err(crate::ca::CaError::from)?;
            out.push(root(kind, cert));
        }
        Ok(out)
    }
}

fn root(kind: OcppRootType, cert: ParsedCert) -> InstallRoot {
    let hash_data = cert_hash_data(&cert, &cert, HashAlg::Sha256);
    InstallRoot {
        kind,
        cert,
        hash_data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_type_names_round_trip() {
        for t in [
            OcppCertificateType::ChargingStation,
            OcppCertificateType::V2g,
            OcppCertificateType::V2g20,
        ] {
            assert_eq!(OcppCertificateType::from_name(t.name()), Some(t));
        }
        assert_eq!(
            OcppCertificateType::from_name("chargingstationcertificate"),
            None
        );
    }
}
