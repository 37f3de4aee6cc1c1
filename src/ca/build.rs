//! Assemble a TBSCertificate from a profile, sign it in the HSM, and check the result before it
//! goes anywhere: parses back, verifies with OpenSSL against the issuer key, fits the size cap.

use der::Encode;
use der::asn1::{Ia5String, Null, OctetString};
use der::flagset::FlagSet;
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::ext::pkix::certpolicy::PolicyInformation;
use x509_cert::ext::pkix::crl::dp::DistributionPoint;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{
    AccessDescription, AuthorityInfoAccessSyntax, AuthorityKeyIdentifier, BasicConstraints,
    CertificatePolicies, CrlDistributionPoints, ExtendedKeyUsage, KeyUsage, KeyUsages,
    SubjectAltName, SubjectKeyIdentifier,
};
use x509_cert::name::RdnSequence;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::Validity;

use super::signing::Form;
use super::{Ca, CaError, IssuerHandle};
use crate::hsm::{KeyRef, PublicKey};
use crate::policy::profile::{Profile, eku_oid};
use crate::policy::subject::SanName;
use crate::x509::{self, ParsedCert, TbsCertificate};

/// Who signs a certificate.
pub(super) enum Signer<'a> {
    Issuer(&'a IssuerHandle),
    /// A root signs itself with its own new key.
    SelfSigned {
        key: &'a KeyRef,
        public: &'a PublicKey,
    },
}

/// Random positive 128-bit serial (126 bits of entropy; never a leading zero byte).
fn random_serial() -> Vec<u8> {
    let mut b = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
    b[0] = (b[0] & 0x3f) | 0x40;
    b.to_vec()
}

fn key_usage(names: &[String]) -> KeyUsage {
    let mut set = FlagSet::<KeyUsages>::default();
    for n in names {
        set |= match n.as_str() {
            "digitalSignature" => KeyUsages::DigitalSignature,
            "nonRepudiation" => KeyUsages::NonRepudiation,
            "keyEncipherment" => KeyUsages::KeyEncipherment,
            "dataEncipherment" => KeyUsages::DataEncipherment,
            "keyAgreement" => KeyUsages::KeyAgreement,
            "keyCertSign" => KeyUsages::KeyCertSign,
            _ => KeyUsages::CRLSign,
        };
    }
    KeyUsage(set)
}

fn internal(e: impl std::fmt::Display) -> CaError {
    CaError::Internal(e.to_string())
}

fn uri(s: &str) -> Result<GeneralName, CaError> {
    Ok(GeneralName::UniformResourceIdentifier(
        Ia5String::new(s).map_err(internal)?,
    ))
}

/// Build the extensions exactly as the profile says; nothing comes from the request except the
/// subjectAltName entries policy checked (OCPP server certificates).
fn extensions(
    ca: &Ca,
    profile: &Profile,
    spki: &SubjectPublicKeyInfoOwned,
    sans: &[SanName],
    issuer_ski: Option<&[u8]>,
    issuer: (&str, i64),
) -> Result<Vec<x509_cert::ext::Extension>, CaError> {
    use const_oid::db::rfc5280 as o;
    let mut exts = Vec::new();
    exts.push(
        x509::extension(
            o::ID_CE_BASIC_CONSTRAINTS,
            true,
            &BasicConstraints {
                ca: profile.basic_constraints.ca,
                path_len_constraint: profile.basic_constraints.path_len,
            },
        )
        .map_err(internal)?,
    );
    // RSA and EC subject keys may differ in keyUsage (keyEncipherment / keyAgreement).
    let subject_alg = x509::spki_key_alg(spki).map_err(internal)?;
    exts.push(
        x509::extension(
            o::ID_CE_KEY_USAGE,
            true,
            &key_usage(profile.key_usage_for(subject_alg)),
        )
        .map_err(internal)?,
    );
    if !profile.extended_key_usage.is_empty() {
        let oids = profile
            .extended_key_usage
            .iter()
            .filter_map(|e| eku_oid(e))
            .collect();
        exts.push(
            x509::extension(o::ID_CE_EXT_KEY_USAGE, false, &ExtendedKeyUsage(oids))
                .map_err(internal)?,
        );
    }
    let ski = x509::compute_ski(profile.ski, spki);
    exts.push(
        x509::extension(
            o::ID_CE_SUBJECT_KEY_IDENTIFIER,
            false,
            &SubjectKeyIdentifier(OctetString::new(ski.clone()).map_err(internal)?),
        )
        .map_err(internal)?,
    );
    let aki = issuer_ski.map(<[u8]>::to_vec).unwrap_or(ski);
    exts.push(
        x509::extension(
            o::ID_CE_AUTHORITY_KEY_IDENTIFIER,
            false,
            &AuthorityKeyIdentifier {
                key_identifier: Some(OctetString::new(aki).map_err(internal)?),
                authority_cert_issuer: None,
                authority_cert_serial_number: None,
            },
        )
        .map_err(internal)?,
    );
    if profile.aia_ocsp {
        exts.push(
            x509::extension(
                o::ID_PE_AUTHORITY_INFO_ACCESS,
                false,
                &AuthorityInfoAccessSyntax(vec![AccessDescription {
                    access_method: x509::OID_AD_OCSP,
                    access_location: uri(&ca.ocsp_url())?,
                }]),
            )
            .map_err(internal)?,
        );
    }
    if profile.crl_dp {
        exts.push(
            x509::extension(
                o::ID_CE_CRL_DISTRIBUTION_POINTS,
                false,
                &CrlDistributionPoints(vec![DistributionPoint {
                    distribution_point: Some(DistributionPointName::FullName(vec![uri(
                        &ca.crl_url(issuer.0, issuer.1)
                    )?])),
                    reasons: None,
                    crl_issuer: None,
                }]),
            )
            .map_err(internal)?,
        );
    }
    if !profile.policies.is_empty() {
        let mut pis = Vec::new();
        for p in &profile.policies {
            pis.push(PolicyInformation {
                policy_identifier: der::asn1::ObjectIdentifier::new(p).map_err(internal)?,
                policy_qualifiers: None,
            });
        }
        exts.push(
            x509::extension(
                o::ID_CE_CERTIFICATE_POLICIES,
                false,
                &CertificatePolicies(pis),
            )
            .map_err(internal)?,
        );
    }
    if !sans.is_empty() {
        let mut names = Vec::with_capacity(sans.len());
        for n in sans {
            names.push(match n {
                SanName::Dns(d) => GeneralName::DnsName(Ia5String::new(d).map_err(internal)?),
                SanName::Ip(std::net::IpAddr::V4(a)) => {
                    GeneralName::IpAddress(OctetString::new(a.octets()).map_err(internal)?)
                }
                SanName::Ip(std::net::IpAddr::V6(a)) => {
                    GeneralName::IpAddress(OctetString::new(a.octets()).map_err(internal)?)
                }
            });
        }
        // Non-critical: the subject (O, CN) is not empty.
        exts.push(
            x509::extension(o::ID_CE_SUBJECT_ALT_NAME, false, &SubjectAltName(names))
                .map_err(internal)?,
        );
    }
    if profile.ocsp_nocheck {
        exts.push(x509::extension(x509::OID_OCSP_NOCHECK, false, &Null).map_err(internal)?);
    }
    Ok(exts)
}

/// Build, sign through the HSM, and check a certificate.
pub(super) async fn build_certificate(
    ca: &Ca,
    profile: &Profile,
    signer: Signer<'_>,
    subject: &RdnSequence,
    sans: &[SanName],
    spki: &SubjectPublicKeyInfoOwned,
    validity_days: Option<u32>,
) -> Result<ParsedCert, CaError> {
    let days = validity_days.unwrap_or(profile.validity.default_days);
    if days == 0 || days > profile.validity.max_days {
        return Err(CaError::Profile {
            profile: profile.name.clone(),
            reason: format!(
                "validity of {days} days is outside 1..={} days",
                profile.validity.max_days
            ),
        });
    }
    // Backdate a little for clock skew on chargers and vehicles.
    let not_before = ca.now() - 300;
    let mut not_after = not_before + i64::from(days) * 86_400;
    let (issuer_name, issuer_ski, (issuer_id, issuer_generation), key, issuer_spki_der) =
        match &signer {
            Signer::Issuer(h) => {
                // Never outlive the issuer.
                not_after = not_after.min(h.cert.not_after());
                (
                    h.cert.tbs().subject().as_ref().clone(),
                    h.cert.ski(),
                    (h.record.id.clone(), h.record.generation),
                    h.key.clone(),
                    h.cert.spki_der(),
                )
            }
            Signer::SelfSigned { key, public } => (
                subject.clone(),
                None,
                (String::new(), 1),
                (*key).clone(),
                x509::spki_der(public.alg, &public.point)?,
            ),
        };
    // A root signs with the key its profile names; an issuer's key was checked against its own
    // profile when it was made (and the profiles against each other when they were loaded).
    if matches!(signer, Signer::SelfSigned { .. }) && key.alg != profile.key {
        return Err(CaError::Profile {
            profile: profile.name.clone(),
            reason: format!(
                "issuer key is {}, profile needs {}",
                key.alg.name(),
                profile.key.name()
            ),
        });
    }
    let tbs = TbsCertificate {
        version: 2,
        serial_number: SerialNumber::new(&random_serial()).map_err(internal)?,
        signature: x509::signature_alg_id(key.alg.signature_alg()),
        issuer: issuer_name,
        validity: Validity::new(
            x509::x509_time(not_before).map_err(internal)?,
            x509::x509_time(not_after).map_err(internal)?,
        ),
        subject: subject.clone(),
        subject_public_key_info: spki.clone(),
        extensions: extensions(
            ca,
            profile,
            spki,
            sans,
            issuer_ski.as_deref(),
            (&issuer_id, issuer_generation),
        )?,
    };
    let tbs_der = tbs.to_der().map_err(internal)?;
    let sig = ca.sign(&key, tbs_der.clone(), Form::Der).await?;
    let der = x509::assemble_signed(&tbs_der, key.alg.signature_alg(), &sig)?;
    if der.len() > profile.max_der_len {
        return Err(CaError::TooLarge {
            profile: profile.name.clone(),
            len: der.len(),
            max: profile.max_der_len,
        });
    }
    let parsed = ParsedCert::from_der(&der)?;
    // Check the token's signature before anything is stored: through OpenSSL's EC primitives
    // for EC issuers (`x509::ecdsa`), its generic certificate check otherwise.
    let sig_oid = key.alg.signature_alg().oid();
    match x509::ecdsa::verify(&issuer_spki_der, &sig_oid, &tbs_der, &sig) {
        Some(true) => {}
        Some(false) => return Err(bad_token_signature()),
        None => verify_signed_by(&der, &issuer_spki_der)?,
    }
    Ok(parsed)
}

fn bad_token_signature() -> CaError {
    CaError::Internal(
        "the HSM produced a signature that does not verify; certificate discarded".into(),
    )
}

/// Independent check with OpenSSL that `cert_der` verifies under the issuer's public key.
pub(super) fn verify_signed_by(cert_der: &[u8], issuer_spki_der: &[u8]) -> Result<(), CaError> {
    let cert = openssl::x509::X509::from_der(cert_der).map_err(internal)?;
    let key = openssl::pkey::PKey::public_key_from_der(issuer_spki_der).map_err(internal)?;
    if cert.verify(&key).map_err(internal)? {
        Ok(())
    } else {
        Err(bad_token_signature())
    }
}
