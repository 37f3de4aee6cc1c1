//! The certificate authority: builds certificates from profiles and signs them, only through the
//! HSM layer, then records them (with their audit entry) before anyone sees them.

pub mod bootstrap;
pub mod build;
pub mod external;
pub mod subject;

use der::Encode;
use spki::SubjectPublicKeyInfoOwned;

use crate::hsm::{Hsm, HsmError, KeyAlg, KeyRef};
use crate::policy::profile::{Kind, Profile, Profiles};
use crate::store::{AuditEvent, CaRecord, CertRecord, RevokeOutcome, Store, StoreError};
use crate::x509::ParsedCert;
use crate::x509::csr::{self, CsrError};

/// Errors with a stable machine-readable code (used by the CLI and the HTTP API).
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error(transparent)]
    Csr(#[from] CsrError),
    #[error("request refused by profile {profile}: {reason}")]
    Profile { profile: String, reason: String },
    #[error(
        "certificate would be {len} bytes of DER, over the {max}-byte limit of profile {profile}"
    )]
    TooLarge {
        profile: String,
        len: usize,
        max: usize,
    },
    #[error("{0}")]
    UnknownProfile(String),
    #[error("{0}")]
    UnknownIssuer(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Config(String),
    #[error("HSM: {0}")]
    Hsm(#[from] HsmError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("internal: {0}")]
    Internal(String),
}

impl CaError {
    pub fn code(&self) -> &'static str {
        match self {
            CaError::Csr(CsrError::BadSignature) => "csr_bad_signature",
            CaError::Csr(CsrError::TooLarge(_)) => "csr_too_large",
            CaError::Csr(CsrError::UnsupportedAlgorithm(_)) => "csr_unsupported_algorithm",
            CaError::Csr(CsrError::Malformed(_)) => "csr_malformed",
            CaError::Profile { .. } => "profile_violation",
            CaError::TooLarge { .. } => "certificate_too_large",
            CaError::UnknownProfile(_) => "unknown_profile",
            CaError::UnknownIssuer(_) => "unknown_issuer",
            CaError::NotFound(_) => "not_found",
            CaError::Config(_) => "config",
            CaError::Hsm(_) => "hsm_unavailable",
            CaError::Store(StoreError::DuplicateSerial { .. }) => "duplicate_serial",
            CaError::Store(_) => "store_unavailable",
            CaError::Internal(_) => "internal",
        }
    }

    /// True when the caller's input is at fault (HTTP 4xx), false for our side (5xx).
    pub fn is_client_error(&self) -> bool {
        !matches!(
            self,
            CaError::Hsm(_) | CaError::Store(_) | CaError::Internal(_) | CaError::Config(_)
        )
    }

    fn profile(p: &Profile, reason: impl Into<String>) -> CaError {
        CaError::Profile {
            profile: p.name.clone(),
            reason: reason.into(),
        }
    }
}

/// RFC 5280 CRLReason names, camelCase as the API takes them, with their codes.
pub const REVOCATION_REASONS: &[(&str, u8)] = &[
    ("unspecified", 0),
    ("keyCompromise", 1),
    ("cACompromise", 2),
    ("affiliationChanged", 3),
    ("superseded", 4),
    ("cessationOfOperation", 5),
    ("certificateHold", 6),
    ("privilegeWithdrawn", 9),
    ("aACompromise", 10),
];

pub fn reason_code(name: &str) -> Option<u8> {
    REVOCATION_REASONS
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, c)| *c)
}

pub fn reason_name(code: u8) -> Option<&'static str> {
    REVOCATION_REASONS
        .iter()
        .find(|(_, c)| *c == code)
        .map(|(n, _)| *n)
}

/// Who is asking, for audit entries and tenant checks.
#[derive(Debug, Clone)]
pub struct Actor {
    pub name: String,
}

impl Actor {
    pub fn cli() -> Actor {
        let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
        Actor {
            name: format!("cli:{user}"),
        }
    }
}

/// Result of an issuance.
#[derive(Debug, Clone)]
pub struct Issued {
    pub record: CertRecord,
    pub cert: ParsedCert,
    /// Issuer chain, issuing CA first, root last.
    pub chain: Vec<ParsedCert>,
}

#[derive(Clone)]
pub struct Ca {
    pub hsm: Hsm,
    pub store: Store,
    pub profiles: Profiles,
    pub public_url: String,
}

/// One loaded issuing CA: record, key and parsed certificate.
#[derive(Debug, Clone)]
pub struct IssuerHandle {
    pub record: CaRecord,
    pub cert: ParsedCert,
    pub key: KeyRef,
}

pub fn key_alg_from_name(name: &str) -> Result<KeyAlg, CaError> {
    match name {
        "ec-p256" => Ok(KeyAlg::EcP256),
        "ec-p384" => Ok(KeyAlg::EcP384),
        "ec-p521" => Ok(KeyAlg::EcP521),
        other => Err(CaError::Internal(format!("unknown key algorithm {other}"))),
    }
}

impl Ca {
    pub fn ocsp_url(&self) -> String {
        format!("{}/ocsp", self.public_url.trim_end_matches('/'))
    }

    pub fn crl_url(&self, issuer_id: &str) -> String {
        format!(
            "{}/crl/{issuer_id}.crl",
            self.public_url.trim_end_matches('/')
        )
    }

    pub async fn issuer(&self, id: &str) -> Result<IssuerHandle, CaError> {
        let record = self
            .store
            .get_ca(id)
            .await?
            .ok_or_else(|| CaError::UnknownIssuer(format!("no CA with id '{id}'")))?;
        let cert = ParsedCert::from_der(&record.cert_der).map_err(CaError::Internal)?;
        let key = KeyRef {
            id: hex::decode(&record.key_id).map_err(|e| CaError::Internal(e.to_string()))?,
            alg: key_alg_from_name(&record.key_alg)?,
        };
        Ok(IssuerHandle { record, cert, key })
    }

    /// Chain above and including `id`: that CA first, root last.
    pub async fn chain(&self, id: &str) -> Result<Vec<ParsedCert>, CaError> {
        let mut out = Vec::new();
        let mut next = Some(id.to_string());
        while let Some(cur) = next {
            if out.len() > 8 {
                return Err(CaError::Internal("CA hierarchy loops".into()));
            }
            let h = self.issuer(&cur).await?;
            next = h.record.parent_id.clone();
            let external = h.record.external_chain.clone();
            out.push(h.cert);
            if let Some(pem) = external {
                for c in x509_cert::Certificate::load_pem_chain(pem.as_bytes())
                    .map_err(|e| CaError::Internal(format!("stored external chain: {e}")))?
                {
                    let der = c.to_der().map_err(|e| CaError::Internal(e.to_string()))?;
                    out.push(ParsedCert::from_der(&der).map_err(CaError::Internal)?);
                }
            }
        }
        Ok(out)
    }

    /// The issuing CA for a profile: the one given, else the only CA whose profile may issue it.
    pub async fn pick_issuer(
        &self,
        profile: &Profile,
        issuer_id: Option<&str>,
    ) -> Result<IssuerHandle, CaError> {
        if let Some(id) = issuer_id {
            let h = self.issuer(id).await?;
            if !profile.issuer_profiles.contains(&h.record.profile) {
                return Err(CaError::UnknownIssuer(format!(
                    "CA '{id}' (profile {}) may not issue {} certificates",
                    h.record.profile, profile.name
                )));
            }
            return Ok(h);
        }
        let now = crate::store::now();
        let candidates: Vec<CaRecord> = self
            .store
            .list_cas()
            .await?
            .into_iter()
            .filter(|c| profile.issuer_profiles.contains(&c.profile) && c.not_after > now)
            .collect();
        // Prefer the most specific issuer listed first in the profile (sub-CA 2 before root).
        for ip in &profile.issuer_profiles {
            let of_profile: Vec<&CaRecord> =
                candidates.iter().filter(|c| &c.profile == ip).collect();
            match of_profile.len() {
                0 => continue,
                1 => return self.issuer(&of_profile[0].id).await,
                _ => {
                    return Err(CaError::UnknownIssuer(format!(
                        "several CAs can issue {}: {}; choose one with --issuer",
                        profile.name,
                        of_profile
                            .iter()
                            .map(|c| c.id.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
            }
        }
        Err(CaError::UnknownIssuer(format!(
            "no CA in this deployment can issue {} certificates (needs a CA of profile {})",
            profile.name,
            profile.issuer_profiles.join(" or ")
        )))
    }

    fn check_key(profile: &Profile, spki: &SubjectPublicKeyInfoOwned) -> Result<(), CaError> {
        let alg = crate::x509::spki_key_alg(spki).map_err(|r| CaError::profile(profile, r))?;
        if alg != profile.key {
            return Err(CaError::profile(
                profile,
                format!(
                    "public key is {}, the profile requires {}",
                    alg.name(),
                    profile.key.name()
                ),
            ));
        }
        // The point must be on the curve: let OpenSSL parse it.
        let der = spki
            .to_der()
            .map_err(|e| CaError::Internal(e.to_string()))?;
        openssl::pkey::PKey::public_key_from_der(&der).map_err(|_| {
            CaError::profile(profile, "public key is not a valid point on its curve")
        })?;
        Ok(())
    }

    /// Issue from a PKCS#10 CSR (PEM, base64 or DER).
    pub async fn issue_from_csr(
        &self,
        profile_name: &str,
        csr_input: &[u8],
        issuer_id: Option<&str>,
        validity_days: Option<u32>,
        actor: &Actor,
    ) -> Result<Issued, CaError> {
        let profile = self
            .profiles
            .get(profile_name)
            .map_err(CaError::UnknownProfile)?
            .clone();
        if !matches!(profile.kind, Kind::Leaf) {
            return Err(CaError::profile(
                &profile,
                "only leaf profiles are issued from CSRs; CAs are created with `init` or `csr`/`import-ca`",
            ));
        }
        let csr = csr::parse_and_verify(csr_input)?;
        Self::check_key(&profile, &csr.spki)?;
        subject::check_requested_extensions(&profile, &csr.requested_extensions)?;
        let checked = subject::check_subject(&profile, &csr.subject)?;
        let issuer = self.pick_issuer(&profile, issuer_id).await?;
        self.sign_and_record(
            &profile,
            &issuer,
            checked,
            csr.spki,
            validity_days,
            None,
            actor,
        )
        .await
    }

    /// Issue with a key pair generated in the HSM as session objects (contract certificates).
    /// Returns the certificate and the private scalar, which the caller must encrypt or hand over.
    pub async fn issue_with_generated_key(
        &self,
        profile_name: &str,
        subject_text: &str,
        issuer_id: Option<&str>,
        validity_days: Option<u32>,
        actor: &Actor,
    ) -> Result<(Issued, Vec<u8>), CaError> {
        let profile = self
            .profiles
            .get(profile_name)
            .map_err(CaError::UnknownProfile)?
            .clone();
        let subj = crate::x509::name::build_from_text(subject_text)
            .map_err(|r| CaError::profile(&profile, r))?;
        let checked = subject::check_subject(&profile, &subj)?;
        let hsm = self.hsm.clone();
        let alg = profile.key;
        let (public, scalar) =
            tokio::task::spawn_blocking(move || hsm.generate_exportable_keypair(alg))
                .await
                .map_err(|e| CaError::Internal(e.to_string()))??;
        let spki = crate::x509::spki_owned(public.alg, &public.point);
        let issuer = self.pick_issuer(&profile, issuer_id).await?;
        let issued = self
            .sign_and_record(&profile, &issuer, checked, spki, validity_days, None, actor)
            .await?;
        Ok((issued, scalar))
    }

    /// Build, sign (HSM), verify, size-check and record. Retries on the (astronomically unlikely)
    /// duplicate serial, with a fresh serial.
    #[allow(clippy::too_many_arguments)]
    pub async fn sign_and_record(
        &self,
        profile: &Profile,
        issuer: &IssuerHandle,
        subject: subject::CheckedSubject,
        spki: SubjectPublicKeyInfoOwned,
        validity_days: Option<u32>,
        key_id: Option<&KeyRef>,
        actor: &Actor,
    ) -> Result<Issued, CaError> {
        for attempt in 0..3 {
            let built = build::build_certificate(
                self,
                profile,
                build::Signer::Issuer(issuer),
                &subject.name,
                &spki,
                validity_days,
            )
            .await?;
            let record = CertRecord {
                issuer_id: issuer.record.id.clone(),
                serial_hex: built.serial_hex(),
                profile: profile.name.clone(),
                subject: built.subject_string(),
                emaid: subject.emaid.clone(),
                evse_id: subject.evse_id.clone(),
                pcid: subject.pcid.clone(),
                not_before: built.not_before(),
                not_after: built.not_after(),
                status: "valid".into(),
                revoked_at: None,
                revocation_reason: None,
                key_id: key_id.map(|k| hex::encode(&k.id)),
                tenant: subject.tenant.clone(),
                der: built.der.clone(),
                created_at: crate::store::now(),
            };
            let event = AuditEvent::new(
                &actor.name,
                "certificate.issue",
                &format!("{}/{}", record.issuer_id, record.serial_hex),
                serde_json::json!({
                    "profile": record.profile,
                    "subject": record.subject,
                    "not_after": record.not_after,
                    "sha256": hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&built.der)),
                }),
            );
            match self.store.record_issuance(&record, None, &event).await {
                Ok(_) => {
                    tracing::info!(issuer = %record.issuer_id, serial = %record.serial_hex, profile = %record.profile, "certificate issued");
                    crate::ocsp::on_issued(&record.issuer_id, &record.serial_hex).await;
                    let chain = self.chain(&issuer.record.id).await?;
                    return Ok(Issued {
                        record,
                        cert: built,
                        chain,
                    });
                }
                Err(StoreError::DuplicateSerial { .. }) if attempt < 2 => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(CaError::Internal(
            "could not find a free serial number".into(),
        ))
    }

    /// Revoke by issuer and serial; idempotent.
    pub async fn revoke(
        &self,
        issuer_id: &str,
        serial_hex: &str,
        reason: &str,
        actor: &Actor,
    ) -> Result<RevokeOutcome, CaError> {
        let code = reason_code(reason).ok_or_else(|| CaError::Profile {
            profile: "-".into(),
            reason: format!(
                "unknown revocation reason '{reason}' (use one of: {})",
                REVOCATION_REASONS
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })?;
        let name = reason_name(code).unwrap_or("unspecified");
        let serial = normalize_serial(serial_hex).ok_or_else(|| {
            CaError::NotFound(format!("'{serial_hex}' is not a hex serial number"))
        })?;
        let event = AuditEvent::new(
            &actor.name,
            "certificate.revoke",
            &format!("{issuer_id}/{serial}"),
            serde_json::json!({ "reason": name }),
        );
        let out = self
            .store
            .revoke(issuer_id, &serial, name, crate::store::now(), &event)
            .await?;
        if out == RevokeOutcome::NotFound {
            return Err(CaError::NotFound(format!(
                "no certificate with serial {serial} from issuer {issuer_id}"
            )));
        }
        // Once this returns, no OCSP replica answers "good" (see crate::ocsp::sync).
        crate::ocsp::on_revoked(self, issuer_id, &serial).await?;
        tracing::info!(issuer = %issuer_id, serial = %serial, reason = %name, outcome = ?out, "revocation");
        Ok(out)
    }
}

/// Lower-case hex without separators or leading "0x"; leading zero bytes kept as DER has them.
pub fn normalize_serial(s: &str) -> Option<String> {
    let t: String = s
        .trim()
        .trim_start_matches("0x")
        .chars()
        .filter(|c| *c != ':' && *c != ' ')
        .collect::<String>()
        .to_ascii_lowercase();
    if t.is_empty() || t.len() > 42 || !t.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    Some(if t.len() % 2 == 1 { format!("0{t}") } else { t })
}
