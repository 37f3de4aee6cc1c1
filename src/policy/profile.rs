//! Certificate profiles as data: one TOML file per profile in `policies/`, loaded and validated at
//! start-up. The files are compiled into the binary as the defaults; an operator may point
//! `PNC_POLICIES_DIR` (or `--policies`) at a directory of edited copies.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::PolicyError;
use crate::alg::{HashAlg, KeyAlg};
use crate::policy::identifiers::{self, IdError};
use crate::x509::SkiMethod;

/// Which ISO 15118 PKI a profile belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
pub enum Standard {
    /// ISO 15118-2 (P-256, SHA-256, 800-byte certificates).
    #[serde(rename = "iso15118-2")]
    Iso2,
    /// ISO 15118-20 (P-521, SHA-512, 1600-byte certificates).
    #[serde(rename = "iso15118-20")]
    Iso20,
    /// OCPP 2.0.1 security profiles 2 and 3: the CSMS / charging-station TLS PKI and firmware
    /// signing (RSA or ECDSA, no ISO 15118 size cap).
    #[serde(rename = "ocpp")]
    Ocpp,
}

/// Where the subjectAltName of a certificate comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SanRule {
    /// No subjectAltName is issued (a CSR asking for one is tolerated and ignored).
    #[default]
    None,
    /// The DNS names and IP addresses the CSR asks for, each checked against the caller's
    /// allow-list, and nothing else (no other name types); at least one.
    DnsIpAllowed,
}

/// What a certificate of the profile is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A self-signed root CA.
    Root,
    /// An intermediate CA.
    SubCa,
    /// An end-entity certificate.
    Leaf,
    /// A delegated OCSP signer (key held by the service).
    OcspSigner,
}

impl Kind {
    /// Root or sub-CA.
    pub fn is_ca(self) -> bool {
        matches!(self, Kind::Root | Kind::SubCa)
    }
}

/// What the CN must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CnRule {
    /// Any non-blank text.
    Free,
    /// ISO 15118-2 EVSE ID (DIN SPEC 91286).
    EvseId,
    /// ISO 15118-20 SECCID; a -2 EVSE ID is also accepted.
    Seccid,
    /// ISO 15118-2 EMAID, normalised, with a correct check digit.
    Emaid,
    /// ISO 15118-20 EMAID (IEC 63119-2).
    #[serde(rename = "emaid-20")]
    Emaid20,
    /// Provisioning certificate ID (-2: 17–18 characters).
    Pcid,
    /// -20 PCID (18–255 characters with check digit).
    #[serde(rename = "pcid-20")]
    Pcid20,
}

/// What to do with a request whose subject lacks the profile's DC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DcMissing {
    /// A request without the profile's DC is refused.
    Reject,
    /// The CA appends the profile's DC when the request lacks it.
    Add,
    /// DC may be absent; when present it must equal the profile's value.
    Allow,
}

/// What a subject may contain.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectRules {
    /// Attributes that must be present (short names: C, O, OU, CN, DC).
    pub required: Vec<String>,
    /// Attributes that may be present; anything else is refused.
    pub allowed: Vec<String>,
    /// Required DC value, if the profile fixes one (V2G, CPO, MO, OEM, CPS).
    #[serde(default)]
    pub dc: Option<String>,
    /// When DC is absent.
    #[serde(default = "default_dc_missing")]
    pub dc_missing: DcMissing,
    /// What the CN must be.
    pub cn: CnRule,
}

fn default_dc_missing() -> DcMissing {
    DcMissing::Reject
}

/// Validity periods.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ValidityRules {
    /// When the request names none.
    pub default_days: u32,
    /// The most a request may ask for.
    pub max_days: u32,
}

/// basicConstraints as issued.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct BasicConstraintsRule {
    /// cA.
    pub ca: bool,
    /// pathLenConstraint.
    #[serde(default)]
    pub path_len: Option<u8>,
}

/// Named keyUsage bits (RFC 5280 §4.2.1.3).
pub const KEY_USAGE_NAMES: &[&str] = &[
    "digitalSignature",
    "nonRepudiation",
    "keyEncipherment",
    "dataEncipherment",
    "keyAgreement",
    "keyCertSign",
    "cRLSign",
];

/// A certificate profile (`policies/<name>.toml`).
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Name (= file stem).
    pub name: String,
    /// What it is for.
    pub description: String,
    /// ISO 15118-2 or -20.
    pub standard: Standard,
    /// CA, leaf or OCSP signer.
    pub kind: Kind,
    /// Key algorithm of the subject key (for CAs and service keys the key made in the HSM; for
    /// leaves also the issuing CA's algorithm).
    pub key: KeyAlg,
    /// Further key algorithms a CSR for this leaf profile may carry (OCPP stations: RSA 2048
    /// as well as P-256). Empty: only `key`.
    #[serde(default)]
    pub csr_keys: Vec<KeyAlg>,
    /// Signature hash (must match the key).
    pub hash: HashAlg,
    /// Largest DER encoding allowed (800 for -2, 1600 for -20).
    pub max_der_len: usize,
    /// Validity periods.
    pub validity: ValidityRules,
    /// Subject rules.
    pub subject: SubjectRules,
    /// basicConstraints.
    pub basic_constraints: BasicConstraintsRule,
    /// keyUsage bits (critical).
    pub key_usage: Vec<String>,
    /// keyUsage bits for an RSA subject key, when they differ (RSA TLS clients encipher the
    /// key, EC ones agree on it). Empty: `key_usage`.
    #[serde(default)]
    pub key_usage_rsa: Vec<String>,
    /// Where the subjectAltName comes from.
    #[serde(default)]
    pub san: SanRule,
    /// extendedKeyUsage names or OIDs (absent when empty).
    #[serde(default)]
    pub extended_key_usage: Vec<String>,
    /// id-pkix-ocsp-nocheck (OCSP signers).
    #[serde(default)]
    pub ocsp_nocheck: bool,
    /// Exactly one OCSP URL ({public_url}/ocsp) in AIA.
    pub aia_ocsp: bool,
    /// CRL distribution point ({public_url}/crl/{issuer}.crl).
    #[serde(default)]
    pub crl_dp: bool,
    /// certificatePolicies OIDs (non-critical).
    #[serde(default)]
    pub policies: Vec<String>,
    /// How the subject key identifier is derived.
    pub ski: SkiMethod,
    /// Profiles of the CAs allowed to issue this profile (empty for a root).
    #[serde(default)]
    pub issuer_profiles: Vec<String>,
}

impl Profile {
    /// Validate a CN against the profile's identifier rule; returns the value to put in the cert.
    /// Validate a CN against the profile's identifier rule; returns the value to put in the cert.
    /// A free CN only has to be non-blank.
    pub fn check_cn(&self, cn: &str) -> Result<String, IdError> {
        match self.subject.cn {
            CnRule::Free => Ok(cn.to_string()),
            CnRule::EvseId => identifiers::validate_evse_id(cn),
            CnRule::Seccid => {
                identifiers::validate_seccid(cn).or_else(|_| identifiers::validate_evse_id(cn))
            }
            CnRule::Emaid => identifiers::normalize_emaid(cn),
            CnRule::Emaid20 => identifiers::normalize_emaid_20(cn),
            CnRule::Pcid => identifiers::validate_pcid(cn),
            CnRule::Pcid20 => identifiers::validate_pcid_20(cn),
        }
    }

    /// Whether certificates of this profile are leaves (no CA, no OCSP signer).
    pub fn is_leaf(&self) -> bool {
        self.kind == Kind::Leaf
    }

    /// Whether a CSR for this profile may carry a key of `alg`.
    pub fn accepts_key(&self, alg: KeyAlg) -> bool {
        alg == self.key || self.csr_keys.contains(&alg)
    }

    /// The keyUsage bits for a subject key of `alg`.
    pub fn key_usage_for(&self, alg: KeyAlg) -> &[String] {
        if alg.is_rsa() && !self.key_usage_rsa.is_empty() {
            &self.key_usage_rsa
        } else {
            &self.key_usage
        }
    }

    fn validate(&self, stem: &str) -> Result<(), PolicyError> {
        let err = |m: String| Err(PolicyError::ProfileFile(format!("profile {stem}: {m}")));
        if self.name != stem {
            return err(format!("name '{}' does not match the file name", self.name));
        }
        if self.validity.default_days == 0 || self.validity.default_days > self.validity.max_days {
            return err("validity.default_days must be between 1 and max_days".into());
        }
        let bits: Vec<&str> = self.key_usage.iter().map(String::as_str).collect();
        for b in self.key_usage.iter().chain(&self.key_usage_rsa) {
            if !KEY_USAGE_NAMES.contains(&b.as_str()) {
                return err(format!("unknown keyUsage '{b}'"));
            }
        }
        if self.key_usage_rsa.iter().any(|b| b == "keyCertSign") && !self.kind.is_ca() {
            return err("a leaf must not have keyCertSign".into());
        }
        let iso = self.standard != Standard::Ocpp;
        for k in std::iter::once(&self.key).chain(&self.csr_keys) {
            if iso && k.is_rsa() {
                return err(format!(
                    "{} is for OCPP profiles only (ISO 15118 certificates are ECDSA)",
                    k.name()
                ));
            }
        }
        if !self.csr_keys.is_empty() && !self.is_leaf() {
            return err("csr_keys is for leaf profiles only".into());
        }
        if self.san != SanRule::None && (iso || !self.is_leaf()) {
            return err("a subjectAltName rule is for OCPP leaf profiles only".into());
        }
        if bits.is_empty() {
            return err(
                "keyUsage must not be empty (ISO 15118: always present and critical)".into(),
            );
        }
        for a in self.subject.required.iter().chain(&self.subject.allowed) {
            if !["C", "O", "OU", "CN", "DC"].contains(&a.as_str()) {
                return err(format!("unknown subject attribute '{a}'"));
            }
        }
        for a in &self.subject.required {
            if !self.subject.allowed.contains(a) {
                return err(format!("required attribute {a} is not in allowed"));
            }
        }
        if self.subject.dc.is_some() && !self.subject.allowed.iter().any(|a| a == "DC") {
            return err("subject.dc is set but DC is not allowed".into());
        }
        let expected_hash = self.key.signature_alg().hash();
        if self.hash != expected_hash {
            return err(format!(
                "{:?} must be signed with {:?}",
                self.key, expected_hash
            ));
        }
        let is_ca_bc = self.basic_constraints.ca;
        match self.kind {
            Kind::Root => {
                if !is_ca_bc || self.basic_constraints.path_len.is_some() {
                    return err("a root has cA=TRUE and no pathLen".into());
                }
                if !self.issuer_profiles.is_empty() || self.aia_ocsp {
                    return err("a root has no issuer profiles and no AIA".into());
                }
            }
            Kind::SubCa => {
                if !is_ca_bc || self.basic_constraints.path_len.is_none() {
                    return err("a sub-CA has cA=TRUE and a pathLen".into());
                }
            }
            Kind::Leaf | Kind::OcspSigner => {
                if is_ca_bc || self.basic_constraints.path_len.is_some() {
                    return err("a leaf has cA=FALSE and no pathLen".into());
                }
                if bits.contains(&"keyCertSign") {
                    return err("a leaf must not have keyCertSign".into());
                }
            }
        }
        if self.kind.is_ca() && !(bits.contains(&"keyCertSign") && bits.contains(&"cRLSign")) {
            return err("a CA needs keyCertSign and cRLSign".into());
        }
        if self.kind == Kind::OcspSigner
            && (!self.ocsp_nocheck || !self.extended_key_usage.iter().any(|e| e == "ocspSigning"))
        {
            return err("an OCSP signer needs EKU ocspSigning and id-pkix-ocsp-nocheck".into());
        }
        for e in &self.extended_key_usage {
            if eku_oid(e).is_none() {
                return err(format!("unknown extended key usage '{e}'"));
            }
        }
        for p in &self.policies {
            if der::asn1::ObjectIdentifier::new(p).is_err() {
                return err(format!("policy '{p}' is not an OID"));
            }
        }
        if self.kind != Kind::Root && self.issuer_profiles.is_empty() {
            return err("issuer_profiles must name at least one CA profile".into());
        }
        if !self.kind.is_ca() && self.kind != Kind::OcspSigner && !self.aia_ocsp {
            return err("every non-root certificate carries an OCSP URL (aia_ocsp = true)".into());
        }
        Ok(())
    }
}

/// The OID of an extendedKeyUsage name (`serverAuth`, …) or dotted OID.
pub fn eku_oid(name: &str) -> Option<der::asn1::ObjectIdentifier> {
    Some(match name {
        "ocspSigning" => crate::x509::OID_KP_OCSP_SIGNING,
        "serverAuth" => const_oid::db::rfc5280::ID_KP_SERVER_AUTH,
        "clientAuth" => const_oid::db::rfc5280::ID_KP_CLIENT_AUTH,
        "codeSigning" => const_oid::db::rfc5280::ID_KP_CODE_SIGNING,
        other => return der::asn1::ObjectIdentifier::new(other).ok(),
    })
}

/// The built-in profile files, compiled in so the binary works from anywhere.
const BUILTIN: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/policies.rs"));

/// All profiles, by name. Cloned with every `Ca` handle (per request in the HTTP front end), so
/// the map is shared rather than copied.
#[derive(Debug, Clone)]
pub struct Profiles {
    by_name: std::sync::Arc<BTreeMap<String, Profile>>,
}

impl Profiles {
    /// The profiles compiled into the binary (from `policies/`).
    pub fn builtin() -> Result<Profiles, PolicyError> {
        Self::from_sources(BUILTIN.iter().map(|(n, t)| (n.to_string(), t.to_string())))
    }

    /// The profiles in a directory of `*.toml` files (hierarchy files skipped).
    pub fn load_dir(dir: &Path) -> Result<Profiles, PolicyError> {
        let mut files = Vec::new();
        let rd = std::fs::read_dir(dir).map_err(|e| {
            PolicyError::ProfileFile(format!(
                "cannot read policies directory {}: {e}",
                dir.display()
            ))
        })?;
        for entry in rd.flatten() {
            let p = entry.path();
            if p.extension().and_then(|e| e.to_str()) == Some("toml") {
                let stem = p
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or_default()
                    .to_string();
                if stem.starts_with("hierarchy") {
                    continue;
                }
                let text = std::fs::read_to_string(&p).map_err(|e| {
                    PolicyError::ProfileFile(format!("cannot read {}: {e}", p.display()))
                })?;
                files.push((stem, text));
            }
        }
        Self::from_sources(files.into_iter())
    }

    /// Profiles from `PNC_POLICIES_DIR` if set, else the built-in set.
    pub fn load(dir: Option<&Path>) -> Result<Profiles, PolicyError> {
        match dir {
            Some(d) => Self::load_dir(d),
            None => match std::env::var_os("PNC_POLICIES_DIR") {
                Some(d) => Self::load_dir(Path::new(&d)),
                None => Self::builtin(),
            },
        }
    }

    fn from_sources(
        files: impl Iterator<Item = (String, String)>,
    ) -> Result<Profiles, PolicyError> {
        let bad = PolicyError::ProfileFile;
        let mut by_name = BTreeMap::new();
        for (stem, text) in files {
            let p: Profile =
                toml::from_str(&text).map_err(|e| bad(format!("profile {stem}: {e}")))?;
            p.validate(&stem)?;
            by_name.insert(stem, p);
        }
        if by_name.is_empty() {
            return Err(bad("no certificate profiles found".into()));
        }
        // Cross-checks: issuers exist, are CAs, and use the same key algorithm.
        for p in by_name.values() {
            for ip in &p.issuer_profiles {
                let issuer = by_name.get(ip).ok_or_else(|| {
                    bad(format!(
                        "profile {}: issuer profile {ip} does not exist",
                        p.name
                    ))
                })?;
                if !issuer.kind.is_ca() {
                    return Err(bad(format!(
                        "profile {}: issuer profile {ip} is not a CA",
                        p.name
                    )));
                }
                // ISO 15118 chains keep one algorithm throughout; the OCPP PKI may mix them (an
                // RSA CA with an EC OCSP signer), as TLS stacks and OCSP clients take both.
                let mixed_ok = p.standard == Standard::Ocpp;
                if (issuer.key != p.key && !mixed_ok) || issuer.standard != p.standard {
                    return Err(bad(format!(
                        "profile {}: issuer profile {ip} uses another key algorithm or standard",
                        p.name
                    )));
                }
            }
        }
        Ok(Profiles {
            by_name: std::sync::Arc::new(by_name),
        })
    }

    /// The profile called `name`.
    pub fn get(&self, name: &str) -> Result<&Profile, PolicyError> {
        self.by_name.get(name).ok_or_else(|| {
            PolicyError::UnknownProfile(format!(
                "unknown profile '{}' (known: {})",
                name.chars().take(64).collect::<String>(),
                self.by_name.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })
    }

    /// Every profile, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Profile> {
        self.by_name.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_profiles_load_and_validate() {
        let p = Profiles::builtin().unwrap();
        for name in [
            "v2g-root",
            "cpo-sub-ca-1",
            "cpo-sub-ca-2",
            "secc-leaf",
            "cps-sub-ca-1",
            "cps-sub-ca-2",
            "cps-leaf",
            "mo-root",
            "mo-sub-ca-1",
            "mo-sub-ca-2",
            "contract",
            "oem-root",
            "oem-sub-ca-1",
            "oem-sub-ca-2",
            "oem-provisioning",
            "ocsp-signer",
        ] {
            let a = p.get(name).unwrap();
            let b = p.get(&format!("{name}-20")).unwrap();
            assert_eq!(a.standard, Standard::Iso2);
            assert_eq!(a.key, KeyAlg::EcP256);
            assert_eq!(a.max_der_len, 800);
            assert_eq!(b.standard, Standard::Iso20);
            assert_eq!(b.key, KeyAlg::EcP521);
            assert_eq!(b.max_der_len, 1600);
        }
        assert_eq!(
            p.get("cpo-sub-ca-1").unwrap().basic_constraints.path_len,
            Some(1)
        );
        assert_eq!(
            p.get("cpo-sub-ca-2").unwrap().basic_constraints.path_len,
            Some(0)
        );
    }

    #[test]
    fn ocpp_profiles_take_rsa_and_ec_csrs_but_iso_profiles_do_not() {
        let p = Profiles::builtin().unwrap();
        assert!(
            !p.get("firmware-signing")
                .unwrap()
                .accepts_key(KeyAlg::Rsa2048)
        );
        for name in ["charging-station", "csms-server"] {
            let prof = p.get(name).unwrap();
            assert_eq!(prof.standard, Standard::Ocpp);
            for k in [KeyAlg::Rsa2048, KeyAlg::Rsa3072, KeyAlg::EcP256] {
                assert!(prof.accepts_key(k), "{name} {k:?}");
            }
        }
        let cs = p.get("charging-station").unwrap();
        assert_eq!(
            cs.key_usage_for(KeyAlg::Rsa2048),
            ["digitalSignature", "keyEncipherment"]
        );
        assert_eq!(
            cs.key_usage_for(KeyAlg::EcP256),
            ["digitalSignature", "keyAgreement"]
        );
        assert_eq!(p.get("csms-server").unwrap().san, SanRule::DnsIpAllowed);
        assert!(!p.get("secc-leaf").unwrap().accepts_key(KeyAlg::Rsa2048));
        // An ISO 15118 profile may not take RSA, nor carry a SAN rule.
        let secc = BUILTIN.iter().find(|(n, _)| *n == "secc-leaf").unwrap().1;
        for bad in [
            secc.replacen(
                "hash = \"sha256\"",
                "csr_keys = [\"rsa-2048\"]\nhash = \"sha256\"",
                1,
            ),
            secc.replacen(
                "hash = \"sha256\"",
                "san = \"dns-ip-allowed\"\nhash = \"sha256\"",
                1,
            ),
            // ISO chains keep one algorithm: a P-384 leaf under P-256 CAs is refused.
            secc.replacen(
                "key = \"ec-p256\"\nhash = \"sha256\"",
                "key = \"ec-p384\"\nhash = \"sha384\"",
                1,
            ),
        ] {
            assert_ne!(bad, secc);
            let r = Profiles::from_sources(BUILTIN.iter().map(|(n, t)| {
                let text = if *n == "secc-leaf" {
                    bad.clone()
                } else {
                    t.to_string()
                };
                (n.to_string(), text)
            }));
            assert!(r.is_err(), "{bad}");
        }
    }

    #[test]
    fn invalid_profiles_are_refused() {
        let good = BUILTIN.iter().find(|(n, _)| *n == "secc-leaf").unwrap().1;
        let cases = [
            ("ca = false", "ca = true"),
            ("max_days = 90", "max_days = 1"),
            (
                "\"digitalSignature\", \"keyAgreement\"]",
                "\"digitalSignature\", \"keyTeleportation\"]",
            ),
            ("hash = \"sha256\"", "hash = \"sha512\""),
            ("aia_ocsp = true", "aia_ocsp = false"),
        ];
        for (from, to) in cases {
            assert!(good.contains(from), "{from}");
            let bad = good.replacen(from, to, 1);
            let r = Profiles::from_sources(BUILTIN.iter().map(|(n, t)| {
                (
                    n.to_string(),
                    if *n == "secc-leaf" {
                        bad.clone()
                    } else {
                        t.to_string()
                    },
                )
            }));
            assert!(r.is_err(), "{from} -> {to} accepted");
        }
        let r = Profiles::from_sources(std::iter::once((
            "x".to_string(),
            "name = 'x'\nbogus = 1".to_string(),
        )));
        assert!(r.is_err());
    }
}
