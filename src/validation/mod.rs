//! The one certificate validation engine: every certificate that arrives from outside (an OEM
//! provisioning chain, the contract certificate of a `CertificateUpdateReq`, an MO's own
//! contract data, a pool upload, …) is judged here, and nowhere else.
//!
//! [`validate`] builds an RFC 5280 path from the leaf to a trust anchor and checks it:
//! - candidate issuers are matched by name *and* by key identifier (the child's authority key
//!   identifier against the candidate's subject key identifier, when both are there), and every
//!   candidate is tried, so two trusted roots with one name (a re-keyed OEM root) both work;
//! - every signature on the path is verified with the issuer's key (ECDSA through OpenSSL's EC
//!   primitives, anything else through OpenSSL's generic verifier);
//! - validity at the caller's clock, basic constraints and path length, key usage of issuers,
//!   no unrecognised critical extension;
//! - the ISO 15118 / OCPP **role** the certificate claims ([`Role`]): what the leaf must look
//!   like (CA flag, key usage, DC, CN form from the profiles in `policies/`) and which roots and
//!   sub-CA kinds it may chain through (a vehicle certificate never through a CPO sub-CA).
//!
//! Revocation is not decided here (this module does no I/O): [`ValidPath::issued_by_us`] says
//! which certificates of the path our own CAs signed, and the RA looks those up in the store
//! by their bytes; a certificate of another PKI goes to an external revocation source (issue
//! "PnC authorization and other PKIs") through [`RevocationSource`].
//!
//! Why hand-written: RustCrypto has no path validator; OpenSSL's builder looks issuers up by
//! name in a store (two roots with one name broke it) and cannot express ISO 15118 roles;
//! rustls-webpki validates TLS server and client roles only. The cryptography is OpenSSL's.

pub mod ocsp;
pub mod role;

use const_oid::ObjectIdentifier;
use const_oid::db::rfc5280 as ext_oid;
use der::{Decode, Encode};

use crate::x509::{ParsedCert, name};
pub use role::Role;

/// The longest path tried: leaf, up to four sub-CAs, root (ISO 15118 allows two sub-CAs; OCPP
/// chains are shorter still).
const MAX_DEPTH: usize = 6;

/// The kinds of trust anchor a role may chain to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AnchorKind {
    /// A V2G root (ours or a trusted one).
    V2g,
    /// A mobility operator root.
    Mo,
    /// An OEM root.
    Oem,
    /// The OCPP CSMS root (ours).
    Csms,
    /// The OCPP manufacturer root (ours).
    Manufacturer,
}

impl AnchorKind {
    /// Lower-case name for messages.
    pub fn as_str(self) -> &'static str {
        match self {
            AnchorKind::V2g => "V2G",
            AnchorKind::Mo => "MO",
            AnchorKind::Oem => "OEM",
            AnchorKind::Csms => "CSMS",
            AnchorKind::Manufacturer => "manufacturer",
        }
    }

    /// The kind of anchor one of our root profiles is (`v2g-root-20` → V2G, …).
    pub fn of_profile(profile: &str) -> Option<AnchorKind> {
        match profile.trim_end_matches("-20") {
            "v2g-root" => Some(AnchorKind::V2g),
            "mo-root" => Some(AnchorKind::Mo),
            "oem-root" => Some(AnchorKind::Oem),
            "csms-root" => Some(AnchorKind::Csms),
            "manufacturer-root" => Some(AnchorKind::Manufacturer),
            _ => None,
        }
    }
}

/// Where a certificate the engine may use came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Presented by the caller, or uploaded by someone (the pool): it vouches for nothing by
    /// itself, only signatures up to an anchor do.
    Presented,
    /// One of our CA certificates (the current key or a retired one), with its id and profile.
    OwnCa {
        /// CA id.
        id: String,
        /// Its profile (`mo-sub-ca-2`, …).
        profile: String,
    },
    /// A trust anchor; `own` is our CA id when it is one of our roots.
    Anchor {
        /// What it is the root of.
        kind: AnchorKind,
        /// Our CA id, for our own roots.
        own: Option<String>,
    },
}

/// A certificate the engine may build paths through.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The certificate.
    pub cert: ParsedCert,
    /// Where it came from.
    pub source: Source,
}

/// The anchors and our own CA certificates, built once per trust change and shared.
#[derive(Debug, Clone, Default)]
pub struct TrustStore {
    known: Vec<Candidate>,
}

impl TrustStore {
    /// An empty store.
    pub fn new() -> TrustStore {
        TrustStore::default()
    }

    /// Add a trust anchor (a self-signed root); unreadable DER is skipped.
    pub fn add_anchor(&mut self, der: &[u8], kind: AnchorKind, own: Option<String>) {
        if let Ok(cert) = ParsedCert::from_der(der) {
            self.known.push(Candidate {
                cert,
                source: Source::Anchor { kind, own },
            });
        }
    }

    /// Add one of our CA certificates (a sub-CA; roots go in as anchors).
    pub fn add_own_ca(&mut self, der: &[u8], id: &str, profile: &str) {
        if let Ok(cert) = ParsedCert::from_der(der) {
            self.known.push(Candidate {
                cert,
                source: Source::OwnCa {
                    id: id.to_string(),
                    profile: profile.to_string(),
                },
            });
        }
    }

    /// Every anchor and own CA certificate.
    pub fn candidates(&self) -> &[Candidate] {
        &self.known
    }

    /// Our CA id of a certificate that is one of ours (by its bytes).
    pub fn own_id_of(&self, der: &[u8]) -> Option<&str> {
        self.known.iter().find_map(|c| match &c.source {
            Source::OwnCa { id, .. } if c.cert.der == der => Some(id.as_str()),
            Source::Anchor { own: Some(id), .. } if c.cert.der == der => Some(id.as_str()),
            _ => None,
        })
    }
}

/// A validated path, leaf first, anchor last.
#[derive(Debug, Clone)]
pub struct ValidPath {
    /// The certificates, leaf first, the anchor last.
    pub certs: Vec<Candidate>,
}

impl ValidPath {
    /// The leaf.
    pub fn leaf(&self) -> &ParsedCert {
        &self.certs[0].cert
    }

    /// The anchor the path ends in.
    pub fn anchor(&self) -> &ParsedCert {
        &self.certs[self.certs.len() - 1].cert
    }

    /// The kind of anchor.
    pub fn anchor_kind(&self) -> Option<AnchorKind> {
        match &self.certs.last()?.source {
            Source::Anchor { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    /// The certificates of the path that one of our CAs signed and that are not themselves our
    /// CA certificates, with that CA's id: their revocation status is ours to tell (from the
    /// store, by their bytes).
    pub fn issued_by_us(&self) -> Vec<(&ParsedCert, &str)> {
        let mut out = Vec::new();
        for w in self.certs.windows(2) {
            if !matches!(w[0].source, Source::Presented) {
                continue;
            }
            let id = match &w[1].source {
                Source::OwnCa { id, .. } => id.as_str(),
                Source::Anchor { own: Some(id), .. } => id.as_str(),
                _ => continue,
            };
            out.push((&w[0].cert, id));
        }
        out
    }

    /// The certificates of the path another PKI signed (for an external revocation source),
    /// each with its issuer.
    pub fn issued_by_others(&self) -> Vec<(&ParsedCert, &ParsedCert)> {
        self.certs
            .windows(2)
            .filter(|w| {
                matches!(w[0].source, Source::Presented)
                    && matches!(
                        w[1].source,
                        Source::Presented | Source::Anchor { own: None, .. }
                    )
            })
            .map(|w| (&w[0].cert, &w[1].cert))
            .collect()
    }
}

/// Why a certificate is refused: the first failure that explains it (see [`validate`] for
/// which failure is reported when several paths fail differently).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// The certificate (or one presented with it) is not a readable X.509 v3 certificate.
    #[error("malformed certificate: {0}")]
    Malformed(String),
    /// No issuer found for a certificate of the path: nothing leads to a trusted root.
    #[error("no path to a trusted root: {0}")]
    NoPath(String),
    /// A certificate's signature does not verify under any candidate issuer with its name.
    #[error("bad signature: {0}")]
    BadSignature(String),
    /// A CA of the path may not issue what it issued (basic constraints, path length, key
    /// usage), or a certificate carries a critical extension we do not process.
    #[error("constraint violated: {0}")]
    Constraint(String),
    /// The certificate is not what the role needs (its form, its root, its sub-CA kinds).
    #[error("wrong role: {0}")]
    Role(String),
    /// A certificate of the path has expired.
    #[error("expired: {0}")]
    Expired(String),
    /// A certificate of the path is not valid yet.
    #[error("not yet valid: {0}")]
    NotYetValid(String),
    /// A certificate of the path is revoked.
    #[error("revoked: {0}")]
    Revoked(String),
    /// Signed by one of our CAs, but not a certificate we recorded (the bytes differ from our
    /// record, or there is none): never accepted.
    #[error("not a certificate we issued: {0}")]
    Unrecorded(String),
    /// The revocation status could not be learnt (another PKI's responder).
    #[error("revocation status unknown: {0}")]
    RevocationUnknown(String),
}

/// ISO 15118-2 `ResponseCode` names a failure maps to (the RA turns the name into the EXI enum).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsoCode {
    /// `FAILED_CertChainError`.
    CertChainError,
    /// `FAILED_SignatureError`.
    SignatureError,
    /// `FAILED_CertificateExpired`.
    CertificateExpired,
    /// `FAILED_CertificateRevoked`.
    CertificateRevoked,
    /// `FAILED` (no more specific code).
    Failed,
}

impl Failure {
    /// Machine-readable code, the same for every caller.
    pub fn code(&self) -> &'static str {
        match self {
            Failure::Malformed(_) => "certificate_invalid",
            Failure::NoPath(_) => "untrusted_chain",
            Failure::BadSignature(_) => "certificate_signature_invalid",
            Failure::Constraint(_) => "certificate_constraint_violated",
            Failure::Role(_) => "certificate_wrong_role",
            Failure::Expired(_) | Failure::NotYetValid(_) => "certificate_expired",
            Failure::Revoked(_) => "certificate_revoked",
            Failure::Unrecorded(_) => "certificate_unknown",
            Failure::RevocationUnknown(_) => "revocation_unknown",
        }
    }

    /// The ISO 15118-2 `ResponseCode` of a provisioning answer refused for this.
    pub fn iso2(&self) -> IsoCode {
        match self {
            Failure::BadSignature(_) => IsoCode::SignatureError,
            Failure::Expired(_) | Failure::NotYetValid(_) => IsoCode::CertificateExpired,
            Failure::Revoked(_) => IsoCode::CertificateRevoked,
            Failure::RevocationUnknown(_) => IsoCode::Failed,
            _ => IsoCode::CertChainError,
        }
    }

    /// The OCPP 2.0.1 `AuthorizeCertificateStatusEnumType` value for this.
    pub fn ocpp_status(&self) -> &'static str {
        match self {
            Failure::BadSignature(_) => "SignatureError",
            Failure::Expired(_) | Failure::NotYetValid(_) => "CertificateExpired",
            Failure::Revoked(_) => "CertificateRevoked",
            Failure::RevocationUnknown(_) => "CertChainError",
            _ => "CertChainError",
        }
    }

    /// Which failure explains a refusal best when several candidate paths failed: the one that
    /// got furthest (an expired path with good signatures says more than a bad signature, which
    /// says more than no issuer at all).
    fn rank(&self) -> u8 {
        match self {
            Failure::Malformed(_) => 0,
            Failure::NoPath(_) => 1,
            Failure::BadSignature(_) => 2,
            Failure::Role(_) => 3,
            Failure::Constraint(_) => 4,
            Failure::Expired(_) | Failure::NotYetValid(_) => 5,
            Failure::Revoked(_) | Failure::Unrecorded(_) | Failure::RevocationUnknown(_) => 6,
        }
    }
}

/// Where revocation statuses of other PKIs' certificates come from (issue "PnC authorization
/// and other PKIs" plugs in OCSP and CRL fetching here). Our own certificates are looked up in
/// the store by the RA and never reach a source.
pub trait RevocationSource {
    /// The status of `cert`, issued by `issuer`.
    fn status(
        &self,
        cert: &ParsedCert,
        issuer: &ParsedCert,
    ) -> impl std::future::Future<Output = ExternalStatus> + Send;
}

/// What an external revocation source says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExternalStatus {
    /// Good at its responder.
    Good,
    /// Revoked at its responder.
    Revoked(String),
    /// The responder could not be reached or its answer not verified.
    Unknown(String),
    /// The certificate names no revocation source (allowed; counted).
    NoSource,
}

/// What an unknown status means for a refusal (`PNC_EXTERNAL_REVOCATION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownPolicy {
    /// Refused (`revocation_unknown`): the default.
    Require,
    /// Accepted and logged.
    BestEffort,
}

impl UnknownPolicy {
    /// From `PNC_EXTERNAL_REVOCATION` (`require`, the default, or `best-effort`).
    pub fn from_env() -> Result<UnknownPolicy, String> {
        match std::env::var("PNC_EXTERNAL_REVOCATION").as_deref() {
            Err(_) | Ok("require") | Ok("") => Ok(UnknownPolicy::Require),
            Ok("best-effort") => Ok(UnknownPolicy::BestEffort),
            Ok(other) => Err(format!(
                "PNC_EXTERNAL_REVOCATION must be require or best-effort, not '{}'",
                other.chars().take(32).collect::<String>()
            )),
        }
    }
}

/// Today's external source: none is consulted (no outbound fetcher yet); every certificate of
/// another PKI is [`ExternalStatus::NoSource`].
pub struct NoExternalSource;

impl RevocationSource for NoExternalSource {
    async fn status(&self, _cert: &ParsedCert, _issuer: &ParsedCert) -> ExternalStatus {
        ExternalStatus::NoSource
    }
}

/// What to validate.
pub struct Request<'a> {
    /// The leaf, DER.
    pub leaf: &'a [u8],
    /// Certificates that may be intermediates (presented with the leaf, or from the pool): they
    /// are candidates only, vouched for by their signatures.
    pub presented: &'a [Vec<u8>],
    /// The role the leaf claims.
    pub role: Role,
    /// The time to validate at (Unix seconds, the injected clock's).
    pub at: i64,
}

/// Validate `req` against `trust` (see the module). The first failure reported is the best
/// explanation over every candidate path ([`Failure`]'s ranking).
pub fn validate(
    trust: &TrustStore,
    profiles: &crate::policy::profile::Profiles,
    req: &Request<'_>,
) -> Result<ValidPath, Failure> {
    let leaf = ParsedCert::from_der(req.leaf).map_err(|e| Failure::Malformed(e.to_string()))?;
    check_structure(&leaf)?;
    role::check_leaf(req.role, profiles, &leaf)?;
    let mut cands: Vec<Candidate> = Vec::with_capacity(req.presented.len() + trust.known.len());
    for d in req.presented.iter().take(8) {
        // Unreadable extras vouch for nothing; the leaf's own failure is what matters.
        // A copy of one of our own CA certificates is used as ours (with its profile's role
        // limits), never as an anonymous presented one.
        if let Ok(cert) = ParsedCert::from_der(d)
            && cert.der != leaf.der
            && !trust.known.iter().any(|k| k.cert.der == cert.der)
            && !cands.iter().any(|k: &Candidate| k.cert.der == cert.der)
        {
            cands.push(Candidate {
                cert,
                source: Source::Presented,
            });
        }
    }
    cands.extend(trust.known.iter().cloned());
    let mut search = Search {
        cands: &cands,
        role: req.role,
        at: req.at,
        best: None,
    };
    let mut path = Vec::new();
    let found = search.extend(&leaf, &mut path, 0);
    let Some(path) = found else {
        return Err(search.best.unwrap_or_else(|| {
            Failure::NoPath(format!("no issuer for {}", leaf.subject_string()))
        }));
    };
    time_check(&leaf, req.at, "the certificate")?;
    let mut certs = vec![Candidate {
        cert: leaf,
        source: Source::Presented,
    }];
    certs.extend(path.into_iter().map(|i| cands[i].clone()));
    Ok(ValidPath { certs })
}

struct Search<'a> {
    cands: &'a [Candidate],
    role: Role,
    at: i64,
    best: Option<Failure>,
}

impl Search<'_> {
    fn note(&mut self, f: Failure) {
        if self.best.as_ref().is_none_or(|b| f.rank() > b.rank()) {
            self.best = Some(f);
        }
    }

    /// Extend `path` (indices of `cands`, from the child upwards) from `child` to an anchor;
    /// `cas_below` counts the non-self-issued CAs already on the path (for pathLenConstraint).
    fn extend(
        &mut self,
        child: &ParsedCert,
        path: &mut Vec<usize>,
        cas_below: u32,
    ) -> Option<Vec<usize>> {
        let issuer_name = child.issuer_der();
        let aki = child.aki();
        let mut any = false;
        for i in 0..self.cands.len() {
            let cand = &self.cands[i];
            if path.contains(&i) || !names_match(&issuer_name, &cand.cert.subject_der()) {
                continue;
            }
            if let (Some(a), Some(s)) = (&aki, cand.cert.ski())
                && *a != s
            {
                continue;
            }
            any = true;
            if !signed_by(child, &cand.cert) {
                self.note(Failure::BadSignature(format!(
                    "{} is not signed by the key of {}",
                    child.subject_string(),
                    cand.cert.subject_string()
                )));
                continue;
            }
            match &cand.source {
                Source::Anchor { kind, .. } => {
                    if !self.role.anchors().contains(kind) {
                        self.note(Failure::Role(format!(
                            "{} chains to the {} root {}, not to a root a {} may chain to",
                            child.subject_string(),
                            kind.as_str(),
                            cand.cert.subject_string(),
                            self.role.name()
                        )));
                        continue;
                    }
                    if let Err(f) = time_check(&cand.cert, self.at, "the root") {
                        self.note(f);
                        continue;
                    }
                    path.push(i);
                    return Some(path.clone());
                }
                Source::Presented | Source::OwnCa { .. } => {
                    if let Err(f) = ca_check(&cand.cert, cas_below)
                        .and_then(|()| check_structure(&cand.cert))
                        .and_then(|()| role::check_intermediate(self.role, cand))
                        .and_then(|()| time_check(&cand.cert, self.at, "a sub-CA"))
                    {
                        self.note(f);
                        continue;
                    }
                    if path.len() + 2 > MAX_DEPTH {
                        self.note(Failure::NoPath(format!(
                            "the path through {} is longer than {MAX_DEPTH} certificates",
                            cand.cert.subject_string()
                        )));
                        continue;
                    }
                    path.push(i);
                    let below = cas_below + u32::from(!cand.cert.is_self_issued());
                    if let Some(p) = self.extend(&cand.cert, path, below) {
                        return Some(p);
                    }
                    path.pop();
                }
            }
        }
        if !any {
            self.note(Failure::NoPath(format!(
                "no trusted or presented issuer named {} for {}",
                child.issuer_string(),
                child.subject_string()
            )));
        }
        None
    }
}

/// Names are the same: the same DER, or (RFC 5280 §7.1, simplified) the same attributes in the
/// same order with values equal ignoring case and surrounding space.
pub fn names_match(a: &[u8], b: &[u8]) -> bool {
    if a == b {
        return true;
    }
    let (Ok(x), Ok(y)) = (name::from_der(a), name::from_der(b)) else {
        return false;
    };
    let norm = |s: &x509_cert::name::RdnSequence| -> Option<Vec<(ObjectIdentifier, String)>> {
        name::attributes(s)
            .into_iter()
            .map(|(o, v)| {
                v.map(|v| {
                    (
                        o,
                        v.split_whitespace()
                            .collect::<Vec<_>>()
                            .join(" ")
                            .to_lowercase(),
                    )
                })
            })
            .collect()
    };
    match (norm(&x), norm(&y)) {
        (Some(x), Some(y)) => !x.is_empty() && x == y,
        _ => false,
    }
}

/// Whether `child`'s signature verifies under `issuer`'s public key (and its outer signature
/// algorithm is the one its TBS names).
pub fn signed_by(child: &ParsedCert, issuer: &ParsedCert) -> bool {
    let Ok(tbs) = child.tbs().to_der() else {
        return false;
    };
    if child.cert.signature_algorithm() != child.tbs().signature() {
        return false;
    }
    let Some(sig) = child.cert.signature().as_bytes() else {
        return false;
    };
    let alg = &child.cert.signature_algorithm().oid;
    let spki = issuer.spki_der();
    if let Some(ok) = crate::x509::ecdsa::verify(&spki, alg, &tbs, sig) {
        return ok;
    }
    // Not ECDSA on our curves: OpenSSL's generic verifier on the whole certificate.
    let (Ok(c), Ok(k)) = (
        openssl::x509::X509::from_der(&child.der),
        openssl::pkey::PKey::public_key_from_der(&spki),
    ) else {
        return false;
    };
    c.verify(&k).unwrap_or(false)
}

fn time_check(c: &ParsedCert, at: i64, what: &str) -> Result<(), Failure> {
    if at < c.not_before() {
        return Err(Failure::NotYetValid(format!(
            "{what} {} is not valid before {}",
            c.subject_string(),
            c.not_before()
        )));
    }
    if at > c.not_after() {
        return Err(Failure::Expired(format!(
            "{what} {} expired at {}",
            c.subject_string(),
            c.not_after()
        )));
    }
    Ok(())
}

/// Extensions we process; a critical extension outside this list refuses the certificate
/// (RFC 5280 §4.2; ISO 15118-20 §7.3.2 "all critical extensions must be processed").
const RECOGNISED: &[ObjectIdentifier] = &[
    ext_oid::ID_CE_BASIC_CONSTRAINTS,
    ext_oid::ID_CE_KEY_USAGE,
    ext_oid::ID_CE_EXT_KEY_USAGE,
    ext_oid::ID_CE_SUBJECT_KEY_IDENTIFIER,
    ext_oid::ID_CE_AUTHORITY_KEY_IDENTIFIER,
    ext_oid::ID_CE_SUBJECT_ALT_NAME,
    ext_oid::ID_CE_CERTIFICATE_POLICIES,
    ext_oid::ID_CE_CRL_DISTRIBUTION_POINTS,
    ext_oid::ID_PE_AUTHORITY_INFO_ACCESS,
];

/// Version 3, and no critical extension we do not process.
fn check_structure(c: &ParsedCert) -> Result<(), Failure> {
    if c.tbs().version() != x509_cert::certificate::Version::V3 {
        return Err(Failure::Constraint(format!(
            "{} is not an X.509 v3 certificate",
            c.subject_string()
        )));
    }
    for e in c.tbs().extensions().into_iter().flatten() {
        if e.critical && !RECOGNISED.contains(&e.extn_id) {
            return Err(Failure::Constraint(format!(
                "{} has a critical extension {} that is not processed",
                c.subject_string(),
                e.extn_id
            )));
        }
    }
    Ok(())
}

/// The basic constraints of a certificate: `None` when absent, `Err` when unreadable.
pub(crate) fn basic_constraints(
    c: &ParsedCert,
) -> Result<Option<x509_cert::ext::pkix::BasicConstraints>, Failure> {
    match c.extension(ext_oid::ID_CE_BASIC_CONSTRAINTS) {
        None => Ok(None),
        Some(e) => x509_cert::ext::pkix::BasicConstraints::from_der(e.extn_value.as_bytes())
            .map(Some)
            .map_err(|err| {
                Failure::Malformed(format!("{}: basicConstraints: {err}", c.subject_string()))
            }),
    }
}

/// The key usage bits of a certificate: `None` when the extension is absent.
pub(crate) fn key_usage(c: &ParsedCert) -> Result<Option<x509_cert::ext::pkix::KeyUsage>, Failure> {
    match c.extension(ext_oid::ID_CE_KEY_USAGE) {
        None => Ok(None),
        Some(e) => x509_cert::ext::pkix::KeyUsage::from_der(e.extn_value.as_bytes())
            .map(Some)
            .map_err(|err| Failure::Malformed(format!("{}: keyUsage: {err}", c.subject_string()))),
    }
}

/// An issuer of the path: a CA (basic constraints cA), within its path length, allowed to sign
/// certificates by its key usage.
fn ca_check(c: &ParsedCert, cas_below: u32) -> Result<(), Failure> {
    let bc = basic_constraints(c)?.ok_or_else(|| {
        Failure::Constraint(format!(
            "{} has no basicConstraints and cannot be an issuer",
            c.subject_string()
        ))
    })?;
    if !bc.ca {
        return Err(Failure::Constraint(format!(
            "{} is not a CA (basicConstraints cA=FALSE) but issued a certificate",
            c.subject_string()
        )));
    }
    if let Some(n) = bc.path_len_constraint
        && cas_below > u32::from(n)
    {
        return Err(Failure::Constraint(format!(
            "{} allows {n} sub-CA(s) below it, the path has {cas_below}",
            c.subject_string()
        )));
    }
    if let Some(ku) = key_usage(c)?
        && !ku.key_cert_sign()
    {
        return Err(Failure::Constraint(format!(
            "{} lacks keyCertSign in its key usage",
            c.subject_string()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
