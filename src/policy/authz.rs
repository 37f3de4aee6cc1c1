//! Who may do what: roles, principals, tenant rules and the one decision "may principal P do
//! operation O on target T" ([`decide`]). Front ends only establish *who* is asking (a token, a
//! client certificate, the local operator); the RA asks this module *whether*.
//!
//! Tenants are identifier prefixes: an EVSE operator (`DE*ABC`) for CPOs, an EMAID provider
//! (`DE8AA`) for MOs, a PCID WMI (`WP0`) for OEMs. A CPO may enroll and manage certificates for
//! EVSE IDs under its operator prefixes only, and so on. Admins and the local operator act for
//! every tenant; auditors read everything and change nothing.

use std::fmt;
use std::str::FromStr;

use super::PolicyError;
use super::identifiers;
use super::profile::Standard;

/// What an API client (or a person, later) may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Charge point operator: SECC certificates for its EVSE IDs.
    Cpo,
    /// Mobility operator: contract certificates for its EMAIDs.
    Mo,
    /// Vehicle maker: provisioning certificates for its PCIDs.
    Oem,
    /// Certificate provisioning service: CPS leaf certificates.
    Cps,
    /// Charging station management system (OCPP): charging-station certificates for its CSO
    /// organization, its own TLS server certificates (names on its allow-list), and SECC
    /// certificates for its EVSE operator prefixes, relayed from OCPP SignCertificate.
    Csms,
    /// Everything an API client can do, for every tenant.
    Admin,
    /// Reads certificates, CAs, clients and the audit log; changes nothing.
    Auditor,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 7] = [
        Role::Cpo,
        Role::Mo,
        Role::Oem,
        Role::Cps,
        Role::Csms,
        Role::Admin,
        Role::Auditor,
    ];

    /// The name used in tokens, the database and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Cpo => "cpo",
            Role::Mo => "mo",
            Role::Oem => "oem",
            Role::Cps => "cps",
            Role::Csms => "csms",
            Role::Admin => "admin",
            Role::Auditor => "auditor",
        }
    }

    /// Whether clients of this role carry tenant prefixes.
    pub fn has_tenants(self) -> bool {
        matches!(self, Role::Cpo | Role::Mo | Role::Oem | Role::Csms)
    }

    /// Whether this role sees every tenant's certificates.
    pub fn sees_all_tenants(self) -> bool {
        matches!(self, Role::Admin | Role::Auditor)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = PolicyError;
    fn from_str(s: &str) -> Result<Role, PolicyError> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                PolicyError::UnknownRole(format!(
                    "unknown role '{}' (use one of: cpo, mo, oem, cps, csms, admin, auditor)",
                    s.chars().take(40).collect::<String>()
                ))
            })
    }
}

/// How a principal was established.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// The local operator running the CLI (holds the data dir and the HSM PIN).
    Operator,
    /// An API client (access token or client certificate).
    Client,
    /// A person signed in to the operator console (`/ui/`): the same rules as a client of
    /// the same role and tenants.
    User,
}

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// Client id, or the operator's user name.
    pub id: String,
    /// Its role.
    pub role: Role,
    /// Its normalised tenant prefixes.
    pub tenants: Vec<String>,
    /// How it was established.
    pub via: Via,
    /// The API client's registered name, written beside its id in audit entries.
    pub name: Option<String>,
}

impl Principal {
    /// The local operator (CLI): admin rights plus the operations only the key holder may do.
    pub fn operator(user: &str) -> Principal {
        Principal {
            id: user.to_string(),
            role: Role::Admin,
            tenants: Vec::new(),
            via: Via::Operator,
            name: None,
        }
    }

    /// The operator named by `$USER` (or `$LOGNAME`); `local` when neither is set (cron,
    /// containers): the audit log names someone, never "unknown".
    pub fn local_operator() -> Principal {
        let named = |k: &str| {
            std::env::var(k)
                .ok()
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty() && !v.chars().any(char::is_control))
        };
        let user = named("USER")
            .or_else(|| named("LOGNAME"))
            .unwrap_or_else(|| "local".into());
        Self::operator(&user)
    }

    /// An API client.
    pub fn client(id: &str, role: Role, tenants: Vec<String>) -> Principal {
        Principal {
            id: id.to_string(),
            role,
            tenants,
            via: Via::Client,
            name: None,
        }
    }

    /// This principal with the API client's registered name (shown beside its id).
    pub fn named(mut self, name: &str) -> Principal {
        self.name = Some(name.to_string());
        self
    }

    /// A person signed in to the console.
    pub fn user(name: &str, role: Role, tenants: Vec<String>) -> Principal {
        Principal {
            id: name.to_string(),
            role,
            tenants,
            via: Via::User,
            name: None,
        }
    }

    /// The name audit entries carry: `cli:alice`, `api:Example CPO (pnc_…)`, `ui:bob` (a
    /// client id alone when its name is unknown: external tokens, certificate holders).
    pub fn actor(&self) -> String {
        match (self.via, &self.name) {
            (Via::Client, Some(name)) => format!("api:{name} ({})", self.id),
            _ => self.key(),
        }
    }

    /// The stable identity (`cli:alice`, `api:pnc_…`, `ui:bob`): what idempotency keys are
    /// bound to, unchanged by a client's name.
    pub fn key(&self) -> String {
        match self.via {
            Via::Operator => format!("cli:{}", self.id),
            Via::Client => format!("api:{}", self.id),
            Via::User => format!("ui:{}", self.id),
        }
    }
}

/// The leaf families the API enrolls, each owned by one role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// SECC (charger) certificates: CPOs.
    Secc,
    /// Contract certificates: MOs.
    Contract,
    /// OEM provisioning certificates: OEMs.
    OemProvisioning,
    /// CPS leaf certificates: CPSs.
    Cps,
    /// OCPP charging-station TLS client certificates: CSMSs.
    ChargingStation,
    /// OCPP CSMS TLS server certificates: CSMSs.
    CsmsServer,
}

impl Family {
    /// The role that enrolls this family.
    pub fn role(self) -> Role {
        match self {
            Family::Secc => Role::Cpo,
            Family::Contract => Role::Mo,
            Family::OemProvisioning => Role::Oem,
            Family::Cps => Role::Cps,
            Family::ChargingStation | Family::CsmsServer => Role::Csms,
        }
    }

    /// The profile this family is issued under for `standard` (`secc-leaf`, `secc-leaf-20`, …).
    /// The OCPP families have one profile whatever the standard asked for.
    pub fn profile(self, standard: Standard) -> String {
        let base = match self {
            Family::Secc => "secc-leaf",
            Family::Contract => "contract",
            Family::OemProvisioning => "oem-provisioning",
            Family::Cps => "cps-leaf",
            Family::ChargingStation => return "charging-station".into(),
            Family::CsmsServer => return "csms-server".into(),
        };
        match standard {
            Standard::Iso2 | Standard::Ocpp => base.to_string(),
            Standard::Iso20 => format!("{base}-20"),
        }
    }
}

/// An identifier a request is about, as the subject check found it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Identifier<'a> {
    /// An EVSE ID or SECCID.
    EvseId(&'a str),
    /// An EMAID.
    Emaid(&'a str),
    /// A PCID.
    Pcid(&'a str),
    /// The organization (subject O) of an OCPP certificate: a CSO.
    Organization(&'a str),
}

impl Identifier<'_> {
    fn what(&self) -> &'static str {
        match self {
            Identifier::EvseId(_) => "EVSE ID",
            Identifier::Emaid(_) => "EMAID",
            Identifier::Pcid(_) => "PCID",
            Identifier::Organization(_) => "organization",
        }
    }

    fn value(&self) -> &str {
        match self {
            Identifier::EvseId(v)
            | Identifier::Emaid(v)
            | Identifier::Pcid(v)
            | Identifier::Organization(v) => v,
        }
    }

    /// Whether this identifier lies under tenant prefix `t`.
    fn in_tenant(&self, t: &str) -> bool {
        match self {
            Identifier::EvseId(v) => identifiers::evse_id_in_tenant(v, t),
            Identifier::Emaid(v) => identifiers::emaid_in_tenant(v, t),
            Identifier::Pcid(v) => identifiers::pcid_in_tenant(v, t),
            // An organization is a tenant by its exact name (as the CSR writes it).
            Identifier::Organization(v) => *v == t,
        }
    }

    /// The tenant prefix of this identifier, normalised as tenants are stored.
    pub fn tenant(&self) -> Option<String> {
        match self {
            Identifier::EvseId(v) => identifiers::evse_operator_prefix(v).ok(),
            Identifier::Emaid(v) => identifiers::emaid_prefix(v).ok(),
            Identifier::Pcid(v) => identifiers::pcid_wmi(v).ok(),
            Identifier::Organization(v) => Some(v.to_string()),
        }
    }
}

/// Something a principal asks to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// Obtain a certificate of a leaf family from a CSR.
    Enroll(Family),
    /// Issue a leaf with a key generated in the HSM and handed out (operator only).
    IssueWithExportedKey,
    /// Issue any leaf profile from a CSR, choosing issuer and validity (operator only).
    IssueAnyLeaf,
    /// Create or import CAs, service certificates and OCSP signers (operator only).
    ManageHierarchy,
    /// Inspect the HSM's keys (operator only).
    InspectHsm,
    /// List and read certificates.
    ReadCertificates,
    /// Revoke a certificate.
    Revoke,
    /// Read CA certificates and chains.
    ReadCas,
    /// List API clients (never their secrets).
    ReadClients,
    /// Register or disable API clients.
    ManageClients,
    /// Read, export and verify the audit log.
    ReadAudit,
    /// OCPP-shaped OCSP lookups relayed by a CSMS.
    OcspLookup,
    /// Create and cancel contracts (EMAID ↔ PCID bindings).
    ManageContracts,
    /// List and read contracts.
    ReadContracts,
    /// Upload and delete OEM provisioning certificate chains.
    ManageProvCerts,
    /// Read OEM provisioning certificate chains.
    ReadProvCerts,
    /// Ask for a contract certificate for an EV (`CertificateInstallationReq` / `UpdateReq`
    /// relayed by a CSMS): the EV's signature, not the caller's tenant, names the vehicle.
    ProvisionContract,
    /// Trust or distrust external roots: the root pool (the operator, and admins over the API
    /// as OPCP's `saveRootCa`/`deleteRootCa`).
    ManageTrust,
    /// Register, change and delete one's own webhook endpoints.
    ManageWebhooks,
    /// Pull a vehicle's signed contract data over the air (the OEM of its WMI).
    PullContractData,
    /// Add, disable or reset console users (operator only: people get their rights from
    /// whoever holds the data dir, as API clients' admins do not).
    ManageUsers,
    /// Copy the whole database (operator only: it holds every hash and the audit log).
    Backup,
    /// Sign a firmware image with the service-held firmware-signing key (operator only).
    SignFirmware,
    /// Ask whether a contract certificate (any PKI's) authorizes its eMAID now (OCPP Authorize).
    AuthorizeContract,
    /// Respond to a sub-CA's compromise (`ca compromise`, the console's "Report compromise"):
    /// stop its key, revoke what it signed, replace it. The operator, and an admin *signed in
    /// to the console* (a person, audited as `ui:NAME`); never an API client, whatever its role:
    /// a machine's stored token is not trusted with the hierarchy (see [`ManageHierarchy`]).
    ///
    /// [`ManageHierarchy`]: Operation::ManageHierarchy
    RespondToCompromise,
}

impl Operation {
    /// A stable name for audit entries.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Enroll(_) => "enroll",
            Operation::IssueWithExportedKey => "issue_with_exported_key",
            Operation::IssueAnyLeaf => "issue",
            Operation::ManageHierarchy => "manage_hierarchy",
            Operation::InspectHsm => "inspect_hsm",
            Operation::ReadCertificates => "read_certificates",
            Operation::Revoke => "revoke",
            Operation::ReadCas => "read_cas",
            Operation::ReadClients => "read_clients",
            Operation::ManageClients => "manage_clients",
            Operation::ReadAudit => "read_audit",
            Operation::OcspLookup => "ocsp_lookup",
            Operation::ManageContracts => "manage_contracts",
            Operation::ReadContracts => "read_contracts",
            Operation::ManageProvCerts => "manage_prov_certs",
            Operation::ReadProvCerts => "read_prov_certs",
            Operation::ProvisionContract => "provision_contract",
            Operation::ManageUsers => "manage_users",
            Operation::Backup => "backup",
            Operation::ManageTrust => "manage_trust",
            Operation::ManageWebhooks => "manage_webhooks",
            Operation::PullContractData => "pull_contract_data",
            Operation::SignFirmware => "sign_firmware",
            Operation::AuthorizeContract => "authorize_contract",
            Operation::RespondToCompromise => "respond_to_compromise",
        }
    }
}

/// What an operation is applied to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target<'a> {
    /// The operation as such: checks the role only.
    Any,
    /// An existing object and the tenant stored with it (a certificate).
    Stored {
        /// Its stored tenant prefix (`None`: belongs to no tenant).
        tenant: Option<&'a str>,
    },
    /// An identifier a request asks for (the CN of a CSR).
    Identifier(Identifier<'a>),
    /// A request that names no identifier although the operation needs one.
    NoIdentifier(&'static str),
}

/// Why a principal was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DenialCode {
    /// The role may not use the operation.
    ForbiddenRole,
    /// The object belongs to another tenant.
    ForbiddenTenant,
}

impl DenialCode {
    /// The machine-readable code (`forbidden_role`, `forbidden_tenant`).
    pub fn as_str(self) -> &'static str {
        match self {
            DenialCode::ForbiddenRole => "forbidden_role",
            DenialCode::ForbiddenTenant => "forbidden_tenant",
        }
    }
}

/// A refusal: who was refused, why, and a message for them.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct Denial {
    /// Machine-readable reason.
    pub code: DenialCode,
    /// Human-readable reason.
    pub detail: String,
    /// The refused principal's audit name.
    pub actor: String,
    /// The operation refused.
    pub operation: Operation,
}

fn deny(p: &Principal, op: Operation, code: DenialCode, detail: String) -> Denial {
    Denial {
        code,
        detail,
        actor: p.actor(),
        operation: op,
    }
}

/// Roles allowed to use `op` (the operator and admins aside).
fn roles_for(op: Operation) -> &'static [Role] {
    match op {
        Operation::Enroll(Family::Secc) => &[Role::Cpo, Role::Csms],
        Operation::Enroll(Family::ChargingStation | Family::CsmsServer) => &[Role::Csms],
        Operation::Enroll(Family::Contract) => &[Role::Mo],
        Operation::Enroll(Family::OemProvisioning) => &[Role::Oem],
        Operation::Enroll(Family::Cps) => &[Role::Cps],
        Operation::ReadCertificates => &[Role::Cpo, Role::Mo, Role::Oem, Role::Csms, Role::Auditor],
        Operation::Revoke => &[Role::Cpo, Role::Mo, Role::Oem, Role::Csms],
        Operation::ReadCas | Operation::OcspLookup => &Role::ALL,
        Operation::ReadClients | Operation::ReadAudit => &[Role::Auditor],
        Operation::ManageClients => &[],
        Operation::ManageContracts => &[Role::Mo],
        Operation::ReadContracts => &[Role::Mo, Role::Auditor],
        Operation::ManageProvCerts => &[Role::Oem],
        Operation::ReadProvCerts => &[Role::Mo, Role::Oem, Role::Auditor],
        Operation::ProvisionContract => &[Role::Cpo, Role::Cps],
        Operation::AuthorizeContract => &[Role::Cpo, Role::Csms],
        Operation::ManageWebhooks => &[Role::Cpo, Role::Mo, Role::Oem, Role::Cps, Role::Csms],
        Operation::PullContractData => &[Role::Oem],
        Operation::ManageTrust
        | Operation::ManageUsers
        | Operation::Backup
        | Operation::SignFirmware => &[],
        Operation::IssueWithExportedKey
        | Operation::IssueAnyLeaf
        | Operation::ManageHierarchy
        | Operation::InspectHsm => &[],
        // Admins only (below: people only).
        Operation::RespondToCompromise => &[],
    }
}

/// Operations only people may do besides the operator: an admin signed in to the console, not
/// an API client of any role.
fn people_only(op: Operation) -> bool {
    matches!(op, Operation::RespondToCompromise)
}

/// Operations only the local operator may do: they hand out key material or change the CA
/// hierarchy, which no API role (admin included) is trusted with.
fn operator_only(op: Operation) -> bool {
    matches!(
        op,
        Operation::IssueWithExportedKey
            | Operation::IssueAnyLeaf
            | Operation::ManageHierarchy
            | Operation::InspectHsm
            | Operation::ManageUsers
            | Operation::Backup
            | Operation::SignFirmware
    )
}

/// May `p` do `op` on `target`?
pub fn decide(p: &Principal, op: Operation, target: Target<'_>) -> Result<(), Denial> {
    if p.via == Via::Operator {
        return Ok(());
    }
    let person_ok = !people_only(op) || p.via == Via::User;
    let role_ok = !operator_only(op)
        && person_ok
        && (p.role == Role::Admin || roles_for(op).contains(&p.role));
    if !role_ok {
        let detail = if people_only(op) && p.via == Via::Client {
            "only the operator or an admin signed in to the console may use this operation, \
             not an API client"
                .to_string()
        } else {
            format!("role {} may not use this operation", p.role)
        };
        return Err(deny(p, op, DenialCode::ForbiddenRole, detail));
    }
    if p.role.sees_all_tenants() {
        return Ok(());
    }
    match target {
        Target::Any => Ok(()),
        Target::NoIdentifier(_) if !p.role.has_tenants() => Ok(()),
        Target::NoIdentifier(what) => Err(deny(
            p,
            op,
            DenialCode::ForbiddenTenant,
            format!(
                "the request carries no {what} of a tenant of client {}",
                p.id
            ),
        )),
        Target::Identifier(id) => {
            if p.tenants.iter().any(|t| id.in_tenant(t)) {
                Ok(())
            } else {
                Err(deny(
                    p,
                    op,
                    DenialCode::ForbiddenTenant,
                    format!(
                        "{} {} is outside the tenants of client {}",
                        id.what(),
                        id.value(),
                        p.id
                    ),
                ))
            }
        }
        Target::Stored { tenant } => {
            if tenant.is_some_and(|t| p.tenants.iter().any(|m| m == t)) {
                Ok(())
            } else {
                Err(deny(
                    p,
                    op,
                    DenialCode::ForbiddenTenant,
                    format!("this object is outside the tenants of client {}", p.id),
                ))
            }
        }
    }
}

/// Normalise a tenant prefix for a role: `DE*ABC` for CPOs, `DE8AA` for MOs, a 3-character WMI
/// for OEMs. Other roles have no tenants.
pub fn normalize_tenant(role: Role, t: &str) -> Result<String, PolicyError> {
    let invalid = |m: String| PolicyError::InvalidTenant(m);
    match role {
        Role::Cpo => {
            identifiers::normalize_evse_tenant_prefix(t).map_err(|e| invalid(e.to_string()))
        }
        Role::Mo => {
            identifiers::normalize_emaid_tenant_prefix(t).map_err(|e| invalid(e.to_string()))
        }
        Role::Oem => {
            let u = t.trim().to_ascii_uppercase();
            if u.len() == 3 && u.bytes().all(|b| b.is_ascii_alphanumeric()) {
                Ok(u)
            } else {
                Err(invalid(format!(
                    "'{}' is not a 3-character WMI prefix",
                    t.chars().take(40).collect::<String>()
                )))
            }
        }
        Role::Csms => normalize_csms_tenant(t),
        Role::Cps | Role::Admin | Role::Auditor => {
            Err(invalid(format!("{role} clients have no tenant prefixes")))
        }
    }
}

/// A CSMS tenant: an EVSE operator prefix when it holds a `*` (`DE*ABC`, for V2G certificates),
/// a name on its subjectAltName allow-list as `dns:NAME` (`dns:*.example.com`: one label) or
/// `ip:ADDRESS`, else the exact organization name (subject O) of its CSO.
fn normalize_csms_tenant(t: &str) -> Result<String, PolicyError> {
    let invalid = |m: String| PolicyError::InvalidTenant(m);
    let t = t.trim();
    let shown = || t.chars().take(64).collect::<String>();
    if let Some(name) = t.strip_prefix("dns:") {
        return normalize_dns_allowed(name)
            .map(|n| format!("dns:{n}"))
            .ok_or_else(|| invalid(format!("'{}' is not a DNS name", shown())));
    }
    if let Some(ip) = t.strip_prefix("ip:") {
        return ip
            .parse::<std::net::IpAddr>()
            .map(|a| format!("ip:{a}"))
            .map_err(|_| invalid(format!("'{}' is not an IP address", shown())));
    }
    if t.contains('*') {
        return identifiers::normalize_evse_tenant_prefix(t).map_err(|e| invalid(e.to_string()));
    }
    if t.is_empty() || t.chars().count() > 64 || t.chars().any(char::is_control) {
        return Err(invalid(format!(
            "'{}' is not an organization name (1 to 64 printable characters)",
            shown()
        )));
    }
    Ok(t.to_string())
}

/// The organization names (subject O of its CSO) among a CSMS's tenants: what is neither an
/// EVSE operator prefix nor a `dns:`/`ip:` allow-list entry.
pub fn csms_organizations(p: &Principal) -> Vec<&str> {
    if p.role != Role::Csms {
        return Vec::new();
    }
    p.tenants
        .iter()
        .filter(|t| !t.starts_with("dns:") && !t.starts_with("ip:") && !t.contains('*'))
        .map(String::as_str)
        .collect()
}

/// A DNS name (or `*.` wildcard pattern) in lower case, `None` if it is not one.
pub fn normalize_dns_allowed(name: &str) -> Option<String> {
    let n = name.trim().trim_end_matches('.').to_ascii_lowercase();
    let rest = n.strip_prefix("*.").unwrap_or(&n);
    let ok = !rest.is_empty()
        && n.len() <= 253
        && rest.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    ok.then_some(n)
}

/// Whether DNS name `name` (lower case) is on a CSMS's allow-list: an exact `dns:` entry, or a
/// `dns:*.suffix` entry covering exactly one more label.
pub fn dns_name_allowed(p: &Principal, name: &str) -> bool {
    if p.via == Via::Operator || p.role == Role::Admin {
        return true;
    }
    p.tenants.iter().any(|t| {
        let Some(pat) = t.strip_prefix("dns:") else {
            return false;
        };
        match pat.strip_prefix("*.") {
            Some(suffix) => name
                .split_once('.')
                .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
            None => pat == name,
        }
    })
}

/// Whether IP address `ip` is on a CSMS's allow-list (`ip:` entries).
pub fn ip_allowed(p: &Principal, ip: &std::net::IpAddr) -> bool {
    p.via == Via::Operator
        || p.role == Role::Admin
        || p.tenants.iter().any(|t| t == &format!("ip:{ip}"))
}

/// Normalise and de-duplicate the tenants of a new client of `role`.
pub fn normalize_tenants(role: Role, tenants: &[String]) -> Result<Vec<String>, PolicyError> {
    let mut out = Vec::new();
    for t in tenants {
        let n = normalize_tenant(role, t)?;
        if !out.contains(&n) {
            out.push(n);
        }
    }
    Ok(out)
}

/// Which tenant a certificate listing covers. `requested` is the caller's `?tenant=`, `hint` an
/// identifier the caller searches for. `Ok(None)` means every tenant (admins and auditors who ask
/// for none).
pub fn listing_tenant(
    p: &Principal,
    requested: Option<&str>,
    hint: Option<Identifier<'_>>,
) -> Result<Option<String>, PolicyError> {
    decide(p, Operation::ReadCertificates, Target::Any)?;
    if p.via == Via::Operator || p.role.sees_all_tenants() {
        return Ok(requested.map(str::to_string));
    }
    let forbid = |t: &str| {
        PolicyError::Denied(deny(
            p,
            Operation::ReadCertificates,
            DenialCode::ForbiddenTenant,
            format!("tenant {t} is not yours"),
        ))
    };
    match (requested, p.tenants.as_slice()) {
        (Some(t), mine) => {
            let n = normalize_tenant(p.role, t)?;
            if mine.contains(&n) {
                Ok(Some(n))
            } else {
                Err(forbid(&n))
            }
        }
        (None, [one]) => Ok(Some(one.clone())),
        (None, []) => Err(PolicyError::Denied(deny(
            p,
            Operation::ReadCertificates,
            DenialCode::ForbiddenTenant,
            "this client has no tenant to list".into(),
        ))),
        (None, mine) => match hint.and_then(|h| h.tenant()) {
            Some(t) if mine.contains(&t) => Ok(Some(t)),
            Some(t) => Err(forbid(&t)),
            None => Err(PolicyError::BadQuery(
                "choose one of your tenants with ?tenant=".into(),
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(role: Role, tenants: &[&str]) -> Principal {
        Principal::client("c1", role, tenants.iter().map(|s| s.to_string()).collect())
    }

    const ALLOW: Option<DenialCode> = None;
    const ROLE: Option<DenialCode> = Some(DenialCode::ForbiddenRole);
    const TENANT: Option<DenialCode> = Some(DenialCode::ForbiddenTenant);

    /// The whole decision as a table: (principal, operation, target, expected).
    #[test]
    fn decision_table() {
        let cpo = client(Role::Cpo, &["DE*ABC"]);
        let mo = client(Role::Mo, &["DE8AA"]);
        let oem = client(Role::Oem, &["WP0"]);
        let cps = client(Role::Cps, &[]);
        let admin = client(Role::Admin, &[]);
        let auditor = client(Role::Auditor, &[]);
        let csms = client(Role::Csms, &["ACME CSO", "DE*ABC", "dns:csms.test"]);
        let op = Principal::operator("alice");
        let ui_admin = Principal::user("ada", Role::Admin, vec![]);
        let ui_auditor = Principal::user("aud", Role::Auditor, vec![]);
        let ui_cpo = Principal::user("cy", Role::Cpo, vec!["DE*ABC".into()]);
        let evse_ours = Target::Identifier(Identifier::EvseId("DE*ABC*E1234"));
        let evse_theirs = Target::Identifier(Identifier::EvseId("DE*XYZ*E1234"));
        let emaid_ours = Target::Identifier(Identifier::Emaid("DE8AA123456789L"));
        let emaid_theirs = Target::Identifier(Identifier::Emaid("DE8BB123456789X"));
        let pcid_ours = Target::Identifier(Identifier::Pcid("WP0123456789012345"));
        let stored_ours = Target::Stored {
            tenant: Some("DE*ABC"),
        };
        let stored_theirs = Target::Stored {
            tenant: Some("DE*XYZ"),
        };
        let stored_none = Target::Stored { tenant: None };
        let secc = Operation::Enroll(Family::Secc);
        let contract = Operation::Enroll(Family::Contract);
        let cases: Vec<(&Principal, Operation, Target, Option<DenialCode>)> = vec![
            // Enrollment: the family's role, then the identifier's tenant.
            (&cpo, secc, Target::Any, ALLOW),
            (&cpo, secc, evse_ours, ALLOW),
            (&cpo, secc, evse_theirs, TENANT),
            (&cpo, secc, Target::NoIdentifier("EVSE ID"), TENANT),
            (&mo, secc, Target::Any, ROLE),
            (&mo, contract, emaid_ours, ALLOW),
            (&mo, contract, emaid_theirs, TENANT),
            (&cpo, contract, emaid_ours, ROLE),
            (
                &oem,
                Operation::Enroll(Family::OemProvisioning),
                pcid_ours,
                ALLOW,
            ),
            (&oem, secc, Target::Any, ROLE),
            (
                &cps,
                Operation::Enroll(Family::Cps),
                Target::NoIdentifier("CN"),
                ALLOW,
            ),
            (&cpo, Operation::Enroll(Family::Cps), Target::Any, ROLE),
            (&admin, secc, evse_theirs, ALLOW),
            (&auditor, secc, Target::Any, ROLE),
            // OCPP: a CSMS enrolls stations of its CSO and SECC certificates of its operator.
            (
                &csms,
                Operation::Enroll(Family::ChargingStation),
                Target::Identifier(Identifier::Organization("ACME CSO")),
                ALLOW,
            ),
            (
                &csms,
                Operation::Enroll(Family::ChargingStation),
                Target::Identifier(Identifier::Organization("Other CSO")),
                TENANT,
            ),
            (
                &csms,
                Operation::Enroll(Family::ChargingStation),
                Target::Identifier(Identifier::Organization("acme cso")),
                TENANT,
            ),
            (&csms, secc, evse_ours, ALLOW),
            (&csms, secc, evse_theirs, TENANT),
            (&csms, contract, Target::Any, ROLE),
            (
                &cpo,
                Operation::Enroll(Family::ChargingStation),
                Target::Any,
                ROLE,
            ),
            (&csms, Operation::Revoke, stored_ours, ALLOW),
            // Reading and revoking stored certificates: by stored tenant.
            (&cpo, Operation::ReadCertificates, stored_ours, ALLOW),
            (&cpo, Operation::ReadCertificates, stored_theirs, TENANT),
            (&cpo, Operation::ReadCertificates, stored_none, TENANT),
            (&cpo, Operation::Revoke, stored_ours, ALLOW),
            (&cpo, Operation::Revoke, stored_theirs, TENANT),
            (&mo, Operation::Revoke, stored_ours, TENANT),
            (&cps, Operation::ReadCertificates, Target::Any, ROLE),
            (&cps, Operation::Revoke, stored_none, ROLE),
            (&auditor, Operation::ReadCertificates, stored_theirs, ALLOW),
            (&auditor, Operation::Revoke, stored_theirs, ROLE),
            (&admin, Operation::Revoke, stored_theirs, ALLOW),
            // Public-ish reads: any role.
            (&cps, Operation::ReadCas, Target::Any, ALLOW),
            (&auditor, Operation::OcspLookup, Target::Any, ALLOW),
            // Clients and audit.
            (&admin, Operation::ManageClients, Target::Any, ALLOW),
            (&auditor, Operation::ManageClients, Target::Any, ROLE),
            (&cpo, Operation::ReadClients, Target::Any, ROLE),
            (&auditor, Operation::ReadClients, Target::Any, ALLOW),
            (&auditor, Operation::ReadAudit, Target::Any, ALLOW),
            (&admin, Operation::ReadAudit, Target::Any, ALLOW),
            (&mo, Operation::ReadAudit, Target::Any, ROLE),
            // Key material and the hierarchy: the operator only, never an API admin.
            (&admin, Operation::IssueWithExportedKey, Target::Any, ROLE),
            (&admin, Operation::ManageHierarchy, Target::Any, ROLE),
            (&admin, Operation::InspectHsm, Target::Any, ROLE),
            (&admin, Operation::IssueAnyLeaf, Target::Any, ROLE),
            (&admin, Operation::SignFirmware, Target::Any, ROLE),
            (&op, Operation::SignFirmware, Target::Any, ALLOW),
            (&op, Operation::IssueWithExportedKey, Target::Any, ALLOW),
            (&op, Operation::ManageHierarchy, Target::Any, ALLOW),
            (&ui_admin, Operation::ManageHierarchy, Target::Any, ROLE),
            // A compromise response: the operator or an admin person, never an API client.
            (&op, Operation::RespondToCompromise, Target::Any, ALLOW),
            (
                &ui_admin,
                Operation::RespondToCompromise,
                Target::Any,
                ALLOW,
            ),
            (&admin, Operation::RespondToCompromise, Target::Any, ROLE),
            (
                &ui_auditor,
                Operation::RespondToCompromise,
                Target::Any,
                ROLE,
            ),
            (&ui_cpo, Operation::RespondToCompromise, Target::Any, ROLE),
            (&cpo, Operation::RespondToCompromise, Target::Any, ROLE),
            (&op, Operation::Revoke, stored_theirs, ALLOW),
        ];
        for (p, op, target, want) in cases {
            let got = decide(p, op, target).err().map(|d| d.code);
            assert_eq!(got, want, "{:?} {op:?} {target:?}", p.role);
        }
    }

    #[test]
    fn denials_name_the_caller_and_operation() {
        let d = decide(
            &client(Role::Cpo, &["DE*ABC"]),
            Operation::Revoke,
            Target::Stored { tenant: None },
        )
        .unwrap_err();
        assert_eq!(d.actor, "api:c1");
        assert_eq!(d.operation, Operation::Revoke);
        assert_eq!(d.code.as_str(), "forbidden_tenant");
    }

    #[test]
    fn csms_tenants_and_san_allow_lists() {
        let t = |s: &str| normalize_tenant(Role::Csms, s);
        assert_eq!(t(" ACME CSO ").unwrap(), "ACME CSO");
        assert_eq!(t("de*abc").unwrap(), "DE*ABC");
        assert_eq!(t("dns:CSMS.Example.COM.").unwrap(), "dns:csms.example.com");
        assert_eq!(t("dns:*.example.com").unwrap(), "dns:*.example.com");
        assert_eq!(t("ip:10.0.0.1").unwrap(), "ip:10.0.0.1");
        assert!(t("dns:bad_name").is_err());
        assert!(t("ip:10.0.0.300").is_err());
        assert!(t("").is_err());
        let p = client(
            Role::Csms,
            &["dns:csms.test", "dns:*.ws.test", "ip:127.0.0.1"],
        );
        assert!(dns_name_allowed(&p, "csms.test"));
        assert!(!dns_name_allowed(&p, "evil.test"));
        assert!(dns_name_allowed(&p, "a.ws.test"));
        assert!(!dns_name_allowed(&p, "a.b.ws.test"), "one label only");
        assert!(!dns_name_allowed(&p, "ws.test"));
        assert!(ip_allowed(&p, &"127.0.0.1".parse().unwrap()));
        assert!(!ip_allowed(&p, &"127.0.0.2".parse().unwrap()));
    }

    #[test]
    fn listing_tenant_rules() {
        let two = client(Role::Cpo, &["DE*ABC", "DE*XYZ"]);
        let one = client(Role::Cpo, &["DE*ABC"]);
        let none = client(Role::Cpo, &[]);
        let admin = client(Role::Admin, &[]);
        let ev = |s| Some(Identifier::EvseId(s));
        assert_eq!(
            listing_tenant(&one, None, None).unwrap().as_deref(),
            Some("DE*ABC")
        );
        assert_eq!(
            listing_tenant(&one, Some("de-abc"), None)
                .unwrap()
                .as_deref(),
            Some("DE*ABC")
        );
        assert!(matches!(
            listing_tenant(&one, Some("DE*XYZ"), None),
            Err(PolicyError::Denied(_))
        ));
        assert!(matches!(
            listing_tenant(&one, Some("junk!"), None),
            Err(PolicyError::InvalidTenant(_))
        ));
        assert!(matches!(
            listing_tenant(&two, None, None),
            Err(PolicyError::BadQuery(_))
        ));
        assert_eq!(
            listing_tenant(&two, None, ev("DE*XYZ*E1"))
                .unwrap()
                .as_deref(),
            Some("DE*XYZ")
        );
        assert!(matches!(
            listing_tenant(&two, None, ev("NL*QQQ*E1")),
            Err(PolicyError::Denied(_))
        ));
        assert!(matches!(
            listing_tenant(&none, None, None),
            Err(PolicyError::Denied(_))
        ));
        assert_eq!(listing_tenant(&admin, None, None).unwrap(), None);
        assert!(matches!(
            listing_tenant(&client(Role::Cps, &[]), None, None),
            Err(PolicyError::Denied(_))
        ));
    }

    #[test]
    fn tenants_normalise_per_role() {
        assert_eq!(normalize_tenant(Role::Cpo, "de-abc").unwrap(), "DE*ABC");
        assert_eq!(normalize_tenant(Role::Mo, "DE-8AA").unwrap(), "DE8AA");
        assert_eq!(normalize_tenant(Role::Oem, "wp0").unwrap(), "WP0");
        assert!(normalize_tenant(Role::Admin, "x").is_err());
        assert!(normalize_tenant(Role::Auditor, "x").is_err());
        assert_eq!(
            normalize_tenants(Role::Cpo, &["DE*ABC".into(), "de-abc".into()]).unwrap(),
            vec!["DE*ABC".to_string()]
        );
        assert_eq!("auditor".parse::<Role>().unwrap(), Role::Auditor);
        assert!("root".parse::<Role>().is_err());
    }
}
