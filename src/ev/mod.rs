//! The car side of contract provisioning, for people testing their own setup (`pnc-pki ev …`),
//! for the tests and for the load tool: build and sign a `CertificateInstallationReq` /
//! `CertificateUpdateReq` with a key held in a file, check a `CertificateInstallationRes` /
//! `CertificateUpdateRes` as an EV does (CPS signature, both chains, SessionID, the contract key
//! decrypted and matched to the certificate), and make a throw-away, profile-conformant OEM PKI.
//!
//! Keys here are ordinary files: this is the vehicle, not the CA, so no HSM and no data dir are
//! involved. A leaf module: EXI codec, key encryption and path validation, no I/O.

pub mod oem;

use openssl::bn::BigNumContext;
use openssl::ec::{EcGroup, EcKey, EcPoint, PointConversionForm};
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::X509;
use serde::Serialize;

use crate::exi::bigint::BigInteger;
use crate::exi::xmldsig::{RawSigner, SignatureError, SignerError, Suite, VerifyingKey};
use crate::exi::{CodecError, Message, Schema, iso2, iso20, keyenc};
use crate::x509::ParsedCert;

/// Why a request could not be built or an answer not be read at all (a check that merely fails
/// is no error: it is a line of the [`CheckReport`]).
#[derive(Debug, thiserror::Error)]
pub enum EvError {
    /// Input that cannot be used.
    #[error("{0}")]
    Invalid(String),
    /// OpenSSL failed.
    #[error("crypto: {0}")]
    Crypto(#[from] openssl::error::ErrorStack),
    /// EXI encoding or decoding failed.
    #[error("EXI: {0}")]
    Codec(#[from] CodecError),
    /// Signing failed.
    #[error("signature: {0}")]
    Signature(#[from] SignatureError),
}

type R<T> = Result<T, EvError>;

fn invalid(s: impl Into<String>) -> EvError {
    EvError::Invalid(s.into())
}

/// An EC private key from PEM (PKCS#8 or SEC1 `EC PRIVATE KEY`) or DER.
pub fn load_key(bytes: &[u8]) -> R<PKey<Private>> {
    let key = if bytes.starts_with(b"-----") {
        PKey::private_key_from_pem(bytes)
    } else {
        PKey::private_key_from_der(bytes)
    }
    .map_err(|_| invalid("not a private key (PEM or DER)"))?;
    key.ec_key()
        .map_err(|_| invalid("the key is not an EC key (ISO 15118 uses P-256 or P-521)"))?;
    Ok(key)
}

/// Every certificate of a PEM bundle, or one DER certificate.
pub fn load_certs(bytes: &[u8]) -> R<Vec<X509>> {
    let certs = if bytes.starts_with(b"-----") || bytes.trim_ascii_start().starts_with(b"-----") {
        X509::stack_from_pem(bytes).map_err(|_| invalid("not a PEM certificate"))?
    } else {
        vec![X509::from_der(bytes).map_err(|_| invalid("not a certificate (PEM or DER)"))?]
    };
    if certs.is_empty() {
        return Err(invalid("no certificate in the file"));
    }
    Ok(certs)
}

/// Signs with a file key, returning raw `r‖s` padded to the curve size.
pub struct KeySigner(EcKey<Private>);

impl KeySigner {
    /// A signer for `key` (EC).
    pub fn new(key: &PKey<Private>) -> R<KeySigner> {
        Ok(KeySigner(
            key.ec_key().map_err(|_| invalid("not an EC key"))?,
        ))
    }
}

impl RawSigner for KeySigner {
    fn sign_digest(&self, digest: &[u8]) -> Result<Vec<u8>, SignerError> {
        let n = (self.0.group().degree() as usize).div_ceil(8) as i32;
        let sig = openssl::ecdsa::EcdsaSig::sign(digest, &self.0)?;
        Ok([sig.r().to_vec_padded(n)?, sig.s().to_vec_padded(n)?].concat())
    }
}

fn curve_of(key: &PKey<Private>) -> Option<Nid> {
    key.ec_key().ok()?.group().curve_name()
}

/// The private scalar of an EC key, padded to the curve size.
pub fn scalar(key: &PKey<Private>) -> R<Vec<u8>> {
    let ec = key.ec_key()?;
    let n = (ec.group().degree() as usize).div_ceil(8) as i32;
    Ok(ec.private_key().to_vec_padded(n)?)
}

/// The EC private key with scalar `d` on `nid`.
pub fn key_from_scalar(nid: Nid, d: &[u8]) -> R<PKey<Private>> {
    let g = EcGroup::from_curve_name(nid)?;
    let mut ctx = BigNumContext::new()?;
    let bn = openssl::bn::BigNum::from_slice(d)?;
    let mut p = EcPoint::new(&g)?;
    p.mul_generator2(&g, &bn, &mut ctx)?;
    Ok(PKey::from_ec_key(EcKey::from_private_components(
        &g, &bn, &p,
    )?)?)
}

fn public_point(cert: &X509) -> R<Vec<u8>> {
    let ec = cert
        .public_key()?
        .ec_key()
        .map_err(|_| invalid("certificate key is not EC"))?;
    let mut ctx = BigNumContext::new()?;
    Ok(ec
        .public_key()
        .to_bytes(ec.group(), PointConversionForm::UNCOMPRESSED, &mut ctx)?)
}

fn key_point(key: &PKey<Private>) -> R<Vec<u8>> {
    let ec = key.ec_key()?;
    let mut ctx = BigNumContext::new()?;
    Ok(ec
        .public_key()
        .to_bytes(ec.group(), PointConversionForm::UNCOMPRESSED, &mut ctx)?)
}

/// The `RootCertificateID` an EV lists for `root`: its subject DN as text and its serial.
pub fn root_id(root: &X509) -> R<iso2::X509IssuerSerial> {
    let parsed = ParsedCert::from_der(&root.to_der()?)
        .map_err(|e| invalid(format!("root certificate: {e}")))?;
    Ok(iso2::X509IssuerSerial {
        issuer_name: parsed.subject_string(),
        serial_number: BigInteger::from_be_bytes(&root.serial_number().to_bn()?.to_vec()),
    })
}

/// The CN of a certificate (the PCID of a provisioning certificate, the eMAID of a contract).
pub fn common_name(cert: &X509) -> Option<String> {
    cert.subject_name()
        .entries_by_nid(Nid::COMMONNAME)
        .next()
        .and_then(|e| String::from_utf8(e.data().as_slice().to_vec()).ok())
}

/// A fresh random 8-byte SessionID.
pub fn random_session_id() -> R<Vec<u8>> {
    let mut s = vec![0u8; 8];
    openssl::rand::rand_bytes(&mut s)?;
    Ok(s)
}

/// Parses a SessionID given as hex (1–8 bytes).
pub fn parse_session_id(hex_text: &str) -> R<Vec<u8>> {
    let v = hex::decode(hex_text.trim())
        .map_err(|_| invalid(format!("session id '{hex_text}' is not hex")))?;
    if v.is_empty() || v.len() > 8 {
        return Err(invalid(format!(
            "session id '{hex_text}' must be 1 to 8 bytes (2 to 16 hex digits)"
        )));
    }
    Ok(v)
}

/// What a `CertificateInstallationReq` is made of.
pub struct InstallRequest<'a> {
    /// ISO 15118-2 (P-256) or -20 (P-521).
    pub schema: Schema,
    /// The OEM provisioning certificate.
    pub oem_cert: &'a X509,
    /// Its key (signs the request; the contract key comes back encrypted for it).
    pub oem_key: &'a PKey<Private>,
    /// The OEM sub-CAs, sub-CA 2 first (-20 only: a -2 request has no room for them, the CPO
    /// pool must hold them).
    pub oem_chain: &'a [X509],
    /// The V2G roots the car trusts (1..20).
    pub roots: &'a [X509],
    /// The SessionID of the header.
    pub session_id: &'a [u8],
    /// The -20 TimeStamp (Unix seconds).
    pub now: u64,
}

fn root_ids(roots: &[X509]) -> R<Vec<iso2::X509IssuerSerial>> {
    if roots.is_empty() || roots.len() > 20 {
        return Err(invalid("list 1 to 20 V2G roots"));
    }
    roots.iter().map(root_id).collect()
}

fn matches_key(cert: &X509, key: &PKey<Private>) -> R<()> {
    if public_point(cert)? != key_point(key)? {
        return Err(invalid(
            "the key does not belong to the certificate (public keys differ)",
        ));
    }
    Ok(())
}

/// Builds and signs a `CertificateInstallationReq`; returns its EXI.
pub fn install_request(r: &InstallRequest<'_>) -> R<Vec<u8>> {
    matches_key(r.oem_cert, r.oem_key)?;
    let signer = KeySigner::new(r.oem_key)?;
    let roots = root_ids(r.roots)?;
    match r.schema {
        Schema::Iso2 => {
            if curve_of(r.oem_key) != Some(Nid::X9_62_PRIME256V1) {
                return Err(invalid(
                    "ISO 15118-2 needs a P-256 provisioning key (use --schema 20 for P-521)",
                ));
            }
            let mut m = iso2::V2gMessage {
                header: iso2::schema::MessageHeader {
                    session_id: r.session_id.to_vec(),
                    notification: None,
                    signature: None,
                },
                body: iso2::Body::CertificateInstallationReq(iso2::CertificateInstallationReq {
                    id: "ID1".into(),
                    oem_provisioning_cert: r.oem_cert.to_der()?,
                    list_of_root_certificate_ids: roots,
                }),
            };
            m.sign(&signer)?;
            Ok(m.encode()?)
        }
        Schema::Iso20 => {
            let suite = match curve_of(r.oem_key) {
                Some(Nid::SECP521R1) => Suite::EcdsaP521Sha512,
                Some(Nid::X9_62_PRIME256V1) => Suite::EcdsaP256Sha256,
                _ => return Err(invalid("ISO 15118-20 needs a P-521 (or P-256) key")),
            };
            if r.oem_chain.len() > 3 {
                return Err(invalid("at most 3 OEM sub-CAs"));
            }
            let subs = r
                .oem_chain
                .iter()
                .map(|c| c.to_der())
                .collect::<Result<Vec<_>, _>>()?;
            let mut m =
                iso20::Message::CertificateInstallationReq(iso20::CertificateInstallationReq {
                    header: iso20::common::MessageHeader {
                        session_id: r.session_id.to_vec(),
                        time_stamp: r.now,
                        signature: None,
                    },
                    oem_provisioning_certificate_chain: iso20::schema::SignedCertificateChain {
                        id: "ID1".into(),
                        certificate: r.oem_cert.to_der()?,
                        sub_certificates: (!subs.is_empty())
                            .then_some(iso20::schema::SubCertificates { certificate: subs }),
                    },
                    list_of_root_certificate_ids: roots,
                    maximum_contract_certificate_chains: 1,
                    prioritized_emaids: None,
                });
            m.sign(suite, &signer)?;
            Ok(m.encode()?)
        }
    }
}

/// What a (-2) `CertificateUpdateReq` is made of.
pub struct UpdateRequest<'a> {
    /// The current contract certificate.
    pub contract_cert: &'a X509,
    /// Its key (signs the request; the new contract key comes back encrypted for it).
    pub contract_key: &'a PKey<Private>,
    /// The MO sub-CAs, sub-CA 2 first (may be empty).
    pub contract_chain: &'a [X509],
    /// The eMAID (default: the contract certificate's CN).
    pub emaid: Option<&'a str>,
    /// The V2G roots the car trusts.
    pub roots: &'a [X509],
    /// The SessionID of the header.
    pub session_id: &'a [u8],
}

/// Builds and signs an ISO 15118-2 `CertificateUpdateReq` (-20 has none); returns its EXI.
pub fn update_request(r: &UpdateRequest<'_>) -> R<Vec<u8>> {
    matches_key(r.contract_cert, r.contract_key)?;
    if curve_of(r.contract_key) != Some(Nid::X9_62_PRIME256V1) {
        return Err(invalid("ISO 15118-2 needs a P-256 contract key"));
    }
    let emaid = match r.emaid {
        Some(e) => e.to_string(),
        None => common_name(r.contract_cert)
            .ok_or_else(|| invalid("the contract certificate has no CN (give --emaid)"))?,
    };
    let subs = r
        .contract_chain
        .iter()
        .map(|c| c.to_der())
        .collect::<Result<Vec<_>, _>>()?;
    let mut m = iso2::V2gMessage {
        header: iso2::schema::MessageHeader {
            session_id: r.session_id.to_vec(),
            notification: None,
            signature: None,
        },
        body: iso2::Body::CertificateUpdateReq(iso2::CertificateUpdateReq {
            id: "ID1".into(),
            contract_signature_cert_chain: iso2::schema::CertificateChain {
                id: None,
                certificate: r.contract_cert.to_der()?,
                sub_certificates: (!subs.is_empty())
                    .then_some(iso2::schema::SubCertificates { certificate: subs }),
            },
            emaid,
            list_of_root_certificate_ids: root_ids(r.roots)?,
        }),
    };
    m.sign(&KeySigner::new(r.contract_key)?)?;
    Ok(m.encode()?)
}

/// What an answer is checked against.
pub struct CheckInput<'a> {
    /// The answer's EXI.
    pub exi: &'a [u8],
    /// The key the contract key was encrypted for (OEM provisioning key, or the old contract
    /// key for an update).
    pub key: &'a PKey<Private>,
    /// V2G roots the CPS chain must end in.
    pub v2g_roots: &'a [X509],
    /// MO roots the contract chain must end in.
    pub mo_roots: &'a [X509],
    /// The SessionID of the request (not checked when absent).
    pub session_id: Option<&'a [u8]>,
    /// The PCID (-20: part of the AES-GCM associated data; default: unknown → decryption fails).
    pub pcid: Option<&'a str>,
    /// Time of the path checks (Unix seconds).
    pub now: i64,
}

/// One check of an answer.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Short name (`cps_signature`, `cps_chain`, `contract_chain`, `session_id`, `emaid`,
    /// `contract_key`, `response_code`).
    pub name: &'static str,
    /// Whether it passed (`None`: not checked).
    pub ok: Option<bool>,
    /// What was found.
    pub detail: String,
}

/// The contract an answer delivered, once every check passed.
#[derive(Debug, Clone)]
pub struct Contract {
    /// The contract certificate.
    pub cert: X509,
    /// Its sub-CAs (MO sub-CA 2, sub-CA 1).
    pub chain: Vec<X509>,
    /// The decrypted private key.
    pub key: PKey<Private>,
    /// The eMAID.
    pub emaid: String,
}

/// Every check of an answer, and what it delivered.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// `CertificateInstallationRes` or `CertificateUpdateRes`.
    pub message: String,
    /// `iso15118-2` or `iso15118-20`.
    pub schema: &'static str,
    /// The SessionID of the answer, hex.
    pub session_id: String,
    /// The eMAID the answer names.
    pub emaid: Option<String>,
    /// Serial of the contract certificate, hex.
    pub contract_serial: Option<String>,
    /// The checks, in order.
    pub checks: Vec<Check>,
    /// Whether every check that ran passed.
    pub ok: bool,
    /// The contract (only when every check passed).
    #[serde(skip)]
    pub contract: Option<Contract>,
}

impl CheckReport {
    fn push(&mut self, name: &'static str, ok: Option<bool>, detail: impl Into<String>) {
        self.checks.push(Check {
            name,
            ok,
            detail: detail.into(),
        });
    }
}

/// The parts of an answer every check needs, for both schemas.
struct Answer {
    message: String,
    schema: Schema,
    session_id: Vec<u8>,
    response_ok: bool,
    response_code: String,
    signature: Result<(), String>,
    cps: Vec<u8>,
    cps_subs: Vec<Vec<u8>>,
    contract: Vec<u8>,
    contract_subs: Vec<Vec<u8>>,
    emaid: Option<String>,
    dh_public_key: Vec<u8>,
    encrypted_key: Option<Vec<u8>>,
}

fn signature_result(
    r: Result<crate::exi::xmldsig::VerifyReport, SignatureError>,
) -> Result<(), String> {
    r.and_then(|rep| rep.into_result())
        .map_err(|e| e.to_string())
}

fn read_answer(exi: &[u8]) -> R<Answer> {
    let bytes = crate::exi::from_raw_or_base64(exi)?;
    match Message::decode(&bytes, None)? {
        Message::Iso2(m) => {
            let (name, code, sa, cc, enc, dh, emaid) = match &m.body {
                iso2::Body::CertificateInstallationRes(r) => (
                    "CertificateInstallationRes",
                    r.response_code,
                    &r.sa_provisioning_certificate_chain,
                    &r.contract_signature_cert_chain,
                    &r.contract_signature_encrypted_private_key.value,
                    &r.dh_public_key.value,
                    &r.e_maid.value,
                ),
                iso2::Body::CertificateUpdateRes(r) => (
                    "CertificateUpdateRes",
                    r.response_code,
                    &r.sa_provisioning_certificate_chain,
                    &r.contract_signature_cert_chain,
                    &r.contract_signature_encrypted_private_key.value,
                    &r.dh_public_key.value,
                    &r.e_maid.value,
                ),
                other => {
                    return Err(invalid(format!(
                        "the answer is a {}, not a certificate installation or update response",
                        other.name()
                    )));
                }
            };
            let signature = match VerifyingKey::from_certificate(&sa.certificate) {
                Ok(k) => signature_result(m.verify(&k)),
                Err(e) => Err(format!("CPS certificate: {e}")),
            };
            let ok = matches!(
                code,
                iso2::schema::ResponseCode::OK
                    | iso2::schema::ResponseCode::OKNewSessionEstablished
            );
            Ok(Answer {
                message: name.into(),
                schema: Schema::Iso2,
                session_id: m.header.session_id.clone(),
                response_ok: ok,
                response_code: format!("{code:?}"),
                signature,
                cps: sa.certificate.clone(),
                cps_subs: sa
                    .sub_certificates
                    .as_ref()
                    .map(|s| s.certificate.clone())
                    .unwrap_or_default(),
                contract: cc.certificate.clone(),
                contract_subs: cc
                    .sub_certificates
                    .as_ref()
                    .map(|s| s.certificate.clone())
                    .unwrap_or_default(),
                emaid: Some(emaid.clone()),
                dh_public_key: dh.clone(),
                encrypted_key: Some(enc.clone()),
            })
        }
        Message::Iso20(iso20::Message::CertificateInstallationRes(res)) => {
            let m = iso20::Message::CertificateInstallationRes(res.clone());
            let signature =
                match VerifyingKey::from_certificate(&res.cp_s_certificate_chain.certificate) {
                    Ok(k) => signature_result(m.verify(&k)),
                    Err(e) => Err(format!("CPS certificate: {e}")),
                };
            let sid = &res.signed_installation_data;
            let encrypted_key = match &sid.choice {
                iso20::schema::SignedInstallationDataChoice::SECP521EncryptedPrivateKey(k) => {
                    Some(k.clone())
                }
                _ => None,
            };
            Ok(Answer {
                message: "CertificateInstallationRes".into(),
                schema: Schema::Iso20,
                session_id: res.header.session_id.clone(),
                response_ok: matches!(
                    res.response_code,
                    iso20::common::ResponseCode::OK
                        | iso20::common::ResponseCode::OKCertificateExpiresSoon
                ),
                response_code: format!("{:?}", res.response_code),
                signature,
                cps: res.cp_s_certificate_chain.certificate.clone(),
                cps_subs: res
                    .cp_s_certificate_chain
                    .sub_certificates
                    .as_ref()
                    .map(|s| s.certificate.clone())
                    .unwrap_or_default(),
                contract: sid.contract_certificate_chain.certificate.clone(),
                contract_subs: sid
                    .contract_certificate_chain
                    .sub_certificates
                    .certificate
                    .clone(),
                emaid: None,
                dh_public_key: sid.dh_public_key.clone(),
                encrypted_key,
            })
        }
        Message::Iso20(other) => Err(invalid(format!(
            "the answer is a {}, not a certificate installation response",
            other.name()
        ))),
    }
}

fn chain_check(leaf: &[u8], subs: &[Vec<u8>], roots: &[X509], now: i64) -> Result<String, String> {
    if roots.is_empty() {
        return Err("no root given".into());
    }
    let roots: Vec<Vec<u8>> = roots.iter().filter_map(|r| r.to_der().ok()).collect();
    let root_refs: Vec<&[u8]> = roots.iter().map(Vec::as_slice).collect();
    let sub_refs: Vec<&[u8]> = subs.iter().map(Vec::as_slice).collect();
    crate::x509::chain::verify(leaf, &sub_refs, &root_refs, now)
        .map(|root| {
            X509::from_der(&root)
                .ok()
                .and_then(|r| common_name(&r))
                .map_or_else(|| "verified".to_string(), |cn| format!("verified to {cn}"))
        })
        .map_err(|e| e.to_string())
}

/// Checks an answer as a car does. `Err` only when the answer cannot be read at all; a failed
/// check is a line of the report with `ok = false`.
pub fn check_response(c: &CheckInput<'_>) -> R<CheckReport> {
    let a = read_answer(c.exi)?;
    let mut rep = CheckReport {
        message: a.message.clone(),
        schema: match a.schema {
            Schema::Iso2 => "iso15118-2",
            Schema::Iso20 => "iso15118-20",
        },
        session_id: hex::encode_upper(&a.session_id),
        emaid: a.emaid.clone(),
        contract_serial: None,
        checks: Vec::new(),
        ok: false,
        contract: None,
    };
    rep.push(
        "response_code",
        Some(a.response_ok),
        a.response_code.clone(),
    );
    match c.session_id {
        Some(want) => rep.push(
            "session_id",
            Some(want == a.session_id.as_slice()),
            if want == a.session_id.as_slice() {
                format!("{} as requested", hex::encode_upper(&a.session_id))
            } else {
                format!(
                    "answer has {}, the request had {}",
                    hex::encode_upper(&a.session_id),
                    hex::encode_upper(want)
                )
            },
        ),
        None => rep.push(
            "session_id",
            None,
            format!(
                "{} (not checked: no --session-id)",
                hex::encode_upper(&a.session_id)
            ),
        ),
    }
    match &a.signature {
        Ok(()) => rep.push("cps_signature", Some(true), "verifies with the CPS leaf"),
        Err(e) => rep.push("cps_signature", Some(false), e.clone()),
    }
    match chain_check(&a.cps, &a.cps_subs, c.v2g_roots, c.now) {
        Ok(d) => rep.push("cps_chain", Some(true), d),
        Err(e) => rep.push("cps_chain", Some(false), e),
    }
    match chain_check(&a.contract, &a.contract_subs, c.mo_roots, c.now) {
        Ok(d) => rep.push("contract_chain", Some(true), d),
        Err(e) => rep.push("contract_chain", Some(false), e),
    }
    let contract = X509::from_der(&a.contract).ok();
    let cn = contract.as_ref().and_then(common_name);
    if let Some(x) = &contract {
        rep.contract_serial = x
            .serial_number()
            .to_bn()
            .ok()
            .map(|b| hex::encode_upper(b.to_vec()));
    }
    match (&a.emaid, &cn) {
        (Some(e), Some(cn)) => rep.push(
            "emaid",
            Some(e == cn),
            if e == cn {
                format!("{e} = the certificate's CN")
            } else {
                format!("eMAID {e} differs from the certificate's CN {cn}")
            },
        ),
        (Some(e), None) => rep.push("emaid", Some(false), format!("{e}, certificate has no CN")),
        (None, _) => {
            // -20 carries no separate eMAID element: the CN is the eMAID.
            rep.emaid = cn.clone();
        }
    }
    let key = decrypt(c, &a, contract.as_ref());
    match &key {
        Ok(_) => rep.push(
            "contract_key",
            Some(true),
            "decrypted; it is the key of the contract certificate",
        ),
        Err(e) => rep.push("contract_key", Some(false), e.clone()),
    }
    rep.ok = rep.checks.iter().all(|c| c.ok != Some(false));
    if rep.ok
        && let (Ok(key), Some(cert), Some(emaid)) = (key, contract, rep.emaid.clone())
    {
        let chain = a
            .contract_subs
            .iter()
            .map(|d| X509::from_der(d))
            .collect::<Result<Vec<_>, _>>()?;
        rep.contract = Some(Contract {
            cert,
            chain,
            key,
            emaid,
        });
    }
    Ok(rep)
}

fn decrypt(
    c: &CheckInput<'_>,
    a: &Answer,
    contract: Option<&X509>,
) -> Result<PKey<Private>, String> {
    let contract = contract.ok_or("the contract certificate does not parse")?;
    let enc = a
        .encrypted_key
        .as_ref()
        .ok_or("the answer carries no SECP521 encrypted key (X448/TPM are not supported)")?;
    let d = scalar(c.key).map_err(|e| e.to_string())?;
    let (nid, plain) = match a.schema {
        Schema::Iso2 => (
            Nid::X9_62_PRIME256V1,
            keyenc::iso2_decrypt(&d, &a.dh_public_key, enc)
                .map(|k| k.to_vec())
                .map_err(|e| format!("cannot decrypt with this key: {e}"))?,
        ),
        Schema::Iso20 => {
            let pcid = c
                .pcid
                .ok_or("-20 answers need the PCID (--pcid): it is part of the encryption")?;
            let ski = ParsedCert::from_der(&a.contract)
                .ok()
                .and_then(|p| p.ski())
                .ok_or("the contract certificate has no SKI")?;
            (
                Nid::SECP521R1,
                keyenc::iso20_decrypt(&d, &a.dh_public_key, enc, &keyenc::iso20_aad(pcid, &ski))
                    .map_err(|e| format!("cannot decrypt with this key and PCID: {e}"))?,
            )
        }
    };
    let key =
        key_from_scalar(nid, &plain).map_err(|e| format!("decrypted value is no key: {e}"))?;
    let ours = key_point(&key).map_err(|e| e.to_string())?;
    let theirs = public_point(contract).map_err(|e| e.to_string())?;
    if ours != theirs {
        return Err(
            "decrypted a key, but it is not the key of the contract certificate (wrong key?)"
                .into(),
        );
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oem_chain_follows_the_profiles_and_signs_a_request_that_verifies() {
        for (schema, pcid, curve) in [
            (Schema::Iso2, "WP0ZZZ99ZTS392124", Nid::X9_62_PRIME256V1),
            (Schema::Iso20, "WP0ZZZ99ZTS3921245", Nid::SECP521R1),
        ] {
            let c = oem::oem_chain(schema, pcid, "Test OEM").unwrap();
            assert_eq!(curve_of(&c.leaf_key), Some(curve));
            let der = |x: &X509| x.to_der().unwrap();
            let leaf = ParsedCert::from_der(&der(&c.leaf)).unwrap();
            let sub2 = ParsedCert::from_der(&der(&c.sub2)).unwrap();
            let sub1 = ParsedCert::from_der(&der(&c.sub1)).unwrap();
            let root = ParsedCert::from_der(&der(&c.root)).unwrap();
            for (child, parent) in [(&leaf, &sub2), (&sub2, &sub1), (&sub1, &root)] {
                let ski = parent.ski().unwrap();
                assert_eq!(ski.len(), 8, "short SKI");
                assert_eq!(ski[0] >> 4, 4, "0100 marker");
                assert_eq!(child.aki(), Some(ski), "AKI = issuer SKI");
            }
            assert!(leaf.subject_string().contains("DC=OEM"));
            assert!(leaf.subject_string().ends_with(&format!("CN={pcid}")));
            assert_eq!(common_name(&c.leaf).as_deref(), Some(pcid));
            assert_eq!(c.leaf.serial_number().to_bn().unwrap().num_bits(), 127);
            let subs = [der(&c.sub2), der(&c.sub1)];
            crate::x509::chain::verify(
                &der(&c.leaf),
                &[&subs[0], &subs[1]],
                &[&der(&c.root)],
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs() as i64,
            )
            .unwrap();
            let exi = install_request(&InstallRequest {
                schema,
                oem_cert: &c.leaf,
                oem_key: &c.leaf_key,
                oem_chain: &[c.sub2.clone(), c.sub1.clone()],
                roots: std::slice::from_ref(&c.root),
                session_id: &[1, 2, 3, 4, 5, 6, 7, 8],
                now: 1_800_000_000,
            })
            .unwrap();
            let key = VerifyingKey::from_certificate(&der(&c.leaf)).unwrap();
            let report = match Message::decode(&exi, Some(schema)).unwrap() {
                Message::Iso2(m) => m.verify(&key).unwrap(),
                Message::Iso20(m) => m.verify(&key).unwrap(),
            };
            assert!(report.is_valid());
        }
    }

    #[test]
    fn a_key_that_is_not_the_certificates_and_bad_input_are_refused() {
        let c = oem::oem_chain(Schema::Iso2, "WP0ZZZ99ZTS392124", "Test OEM").unwrap();
        let other = oem::oem_chain(Schema::Iso2, "WP0ZZZ99ZTS392125", "Test OEM").unwrap();
        let r = InstallRequest {
            schema: Schema::Iso2,
            oem_cert: &c.leaf,
            oem_key: &other.leaf_key,
            oem_chain: &[],
            roots: std::slice::from_ref(&c.root),
            session_id: &[1],
            now: 0,
        };
        let e = install_request(&r).unwrap_err().to_string();
        assert!(e.contains("does not belong"), "{e}");
        let r = InstallRequest {
            oem_key: &c.leaf_key,
            roots: &[],
            ..r
        };
        assert!(install_request(&r).is_err(), "no root");
        assert!(oem::oem_chain(Schema::Iso2, "WP0", "Test OEM").is_err());
        assert!(oem::oem_chain(Schema::Iso20, "IO0ZZZ99ZTS3921245", "Test OEM").is_err());
        assert!(parse_session_id("0A1B2C3D4E5F6071").is_ok());
        assert!(parse_session_id("0A1B2C3D4E5F607182").is_err(), "9 bytes");
        assert!(parse_session_id("xyz").is_err());
        assert!(load_key(b"not a key").is_err());
        assert!(
            load_certs(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").is_err()
        );
    }
}
