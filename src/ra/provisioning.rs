//! Contract certificate provisioning: an EV's `CertificateInstallationReq` or
//! `CertificateUpdateReq` (ISO 15118-2, or -20 installation) in, a signed answer carrying a new
//! contract certificate and its key encrypted for that car out.
//!
//! Install vs update and -2 vs -20 are read from the EXI itself (MaEVe always declares the -2
//! namespace and ignores the OCPP `action`). Order of work, so that a refusal costs no HSM time
//! and nothing is stored unless the answer can be delivered: decode → verify the EV's signature
//! → validate the OEM (or current contract) chain and its status → find the contract → choose
//! the chains the EV's root list accepts → generate the key and sign the certificate (not yet
//! recorded) → encrypt the key → sign the answer with the CPS key → encode and size-check →
//! record certificate, request and audit entry in one transaction.

use super::contracts::{common_name, normalize_emaid, normalize_pcid};
use super::webhooks::contract_event;
use super::{Ra, RaError};
use crate::ca::CaError;
use crate::ca::cps::CpsSigner;
use crate::error::ErrorKind;
use crate::exi::xmldsig::{Suite, VerifyingKey};
use crate::exi::{self, Message, Schema, iso2, iso20, keyenc};
use crate::model::IdempotencyKey;
use crate::model::{
    CertRecord, CertStatus, ContractRecord, ContractStatus, PROVISIONING_ACTOR, ProvisioningKind,
    ProvisioningLink, RevocationReason,
};
use crate::policy::authz::{Operation, Principal, Target};
use crate::policy::profile::Standard;
use crate::policy::subject;
use crate::store::StoreError;
use crate::validation::{Failure, IsoCode, Role};
use crate::x509::{ParsedCert, chain};

/// A provisioning request as a front end received it.
#[derive(Debug, Clone, Default)]
pub struct ProvisionRequest {
    /// The EXI stream (already base64-decoded).
    pub exi: Vec<u8>,
    /// The OCPP `action`, when the caller sent one: a mismatch with the EXI is refused.
    pub action: Option<ProvisioningKind>,
    /// OCPP 2.1 `maximumContractCertificateChains` (overrides the -20 request's own).
    pub maximum_chains: Option<u8>,
    /// OCPP 2.1 `prioritizedEMAIDs` (added after the -20 request's own).
    pub prioritized_emaids: Vec<String>,
    /// `Idempotency-Key`, with the route and body it is bound to (see [`Ra::provision`]).
    pub idempotency: Option<super::KeyedRequest>,
}

/// A delivered answer.
#[derive(Debug, Clone)]
pub struct Provisioned {
    /// The EXI answer (`CertificateInstallationRes` / `CertificateUpdateRes`).
    pub exi: Vec<u8>,
    /// The contract certificate's EMAID.
    pub emaid: String,
    /// Install or update.
    pub kind: ProvisioningKind,
    /// ISO 15118-2 or -20.
    pub schema: Schema,
    /// -20: contract chains still to deliver (the car asks again); -2: 0.
    pub remaining: u8,
    /// The certificate issued, when it is ours (an MO's own contract data: `None`).
    pub certificate: Option<CertRecord>,
    /// Serial (hex) of the contract certificate delivered.
    pub serial_hex: String,
    /// The contract it was issued under.
    pub contract_id: String,
}

/// A CPS signer (OPCP `getAllCpsSigners`).
#[derive(Clone, Debug)]
pub struct CpsSignerInfo {
    /// The ISO 15118 namespace it signs for.
    pub namespace: &'static str,
    /// The CPS leaf.
    pub leaf: crate::x509::ParsedCert,
    /// Its chain, issuing CA first, root last.
    pub chain: Vec<crate::x509::ParsedCert>,
}

/// An OEM's over-the-air pull (`provideSignedContractData`).
#[derive(Clone, Debug, Default)]
pub struct OtaRequest {
    /// The contract's EMAID.
    pub emaid: String,
    /// The vehicle.
    pub pcid: String,
    /// The SessionID to put in the header (hex, 1..8 bytes; default eight zero bytes).
    pub session_id: Option<String>,
    /// `xsdMsgDefNamespace` (ISO 15118-2 only).
    pub namespace: Option<String>,
    /// SHA-256 of the V2G root the CPS signer must chain to.
    pub cps_root_fingerprint: Option<String>,
}

/// Over-the-air contract data.
#[derive(Clone, Debug)]
pub struct Provided {
    /// The `CertificateInstallationRes`, EXI.
    pub exi: Vec<u8>,
    /// SHA-256 (hex) of the V2G root of the CPS signer.
    pub cps_root_fingerprint: String,
}

/// A refused provisioning request.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{detail}")]
pub struct ProvisionFailure {
    /// Machine-readable reason (`no_contract`, `signature_invalid`, …).
    pub code: &'static str,
    /// HTTP class.
    pub kind: ErrorKind,
    /// What is wrong.
    pub detail: String,
    /// A FAILED answer with the ISO `ResponseCode` and the request's SessionID, when the request
    /// was readable enough to address one (ISO 15118-2 only).
    pub failed_exi: Option<Vec<u8>>,
    /// Install or update, when known.
    pub request_kind: Option<ProvisioningKind>,
}

/// What a failure answer needs to know about the request.
#[derive(Clone)]
struct Ctx {
    schema: Schema,
    kind: ProvisioningKind,
    session_id: Vec<u8>,
    emaid: Option<String>,
    /// The call's idempotency key, recorded with the certificate and the answer (`deliver`).
    idem: Option<IdempotencyKey>,
    /// The ecosystem event the delivered contract data causes (`oem.contract.created` or
    /// `…updated` for pre-generated data), written with it.
    announce: Option<&'static str>,
}

impl Ctx {
    fn fail(
        &self,
        code: &'static str,
        kind: ErrorKind,
        iso: iso2::schema::ResponseCode,
        detail: impl Into<String>,
    ) -> RaError {
        let failed_exi = match self.schema {
            Schema::Iso2 => failed_iso2(self, iso).ok(),
            Schema::Iso20 => None,
        };
        RaError::Provisioning(Box::new(ProvisionFailure {
            code,
            kind,
            detail: detail.into(),
            failed_exi,
            request_kind: Some(self.kind),
        }))
    }
}

/// Whose certificate a validation failure is about, for its refusal code.
#[derive(Clone, Copy)]
enum Presented {
    /// The vehicle's OEM provisioning certificate (and its chain).
    Oem,
    /// The current contract certificate of an update.
    Contract,
}

impl Ctx {
    /// The refusal of a request whose certificate the engine refused: one mapping for every
    /// route (the ISO code from the engine, the code from what was presented).
    fn fail_cert(&self, what: Presented, f: Failure) -> RaError {
        let code = match (what, &f) {
            (_, Failure::RevocationUnknown(_)) => "revocation_unknown",
            (Presented::Oem, Failure::Malformed(_)) => "oem_certificate_invalid",
            (Presented::Oem, Failure::Expired(_) | Failure::NotYetValid(_)) => {
                "oem_certificate_expired"
            }
            (Presented::Oem, Failure::Revoked(_)) => "oem_revoked",
            (Presented::Oem, _) => "oem_untrusted",
            (Presented::Contract, Failure::Malformed(_)) => "contract_certificate_invalid",
            (Presented::Contract, Failure::Expired(_) | Failure::NotYetValid(_)) => {
                "contract_expired"
            }
            (Presented::Contract, Failure::Revoked(_)) => "contract_revoked",
            (Presented::Contract, _) => "contract_untrusted",
        };
        let iso = match f.iso2() {
            IsoCode::CertChainError => Rc2::FAILEDCertChainError,
            IsoCode::SignatureError => Rc2::FAILEDSignatureError,
            IsoCode::CertificateExpired => Rc2::FAILEDCertificateExpired,
            IsoCode::CertificateRevoked => Rc2::FAILEDCertificateRevoked,
            IsoCode::Failed => Rc2::FAILED,
        };
        let whose = match what {
            Presented::Oem => "OEM provisioning certificate",
            Presented::Contract => "current contract certificate",
        };
        self.fail(code, ErrorKind::BadRequest, iso, format!("{whose}: {f}"))
    }
}

fn refuse(code: &'static str, kind: ErrorKind, detail: impl Into<String>) -> RaError {
    RaError::Provisioning(Box::new(ProvisionFailure {
        code,
        kind,
        detail: detail.into(),
        failed_exi: None,
        request_kind: None,
    }))
}

/// A schema-valid -2 FAILED answer: placeholders where the schema demands content, no header
/// signature (the EV stops at the ResponseCode; signing would spend HSM time on refusals).
fn failed_iso2(ctx: &Ctx, code: iso2::schema::ResponseCode) -> Result<Vec<u8>, exi::CodecError> {
    let emaid = ctx
        .emaid
        .clone()
        .filter(|e| (14..=15).contains(&e.len()))
        .unwrap_or_else(|| "ZZ000000000000".to_string());
    answer_iso2(
        ctx.kind,
        code,
        &ctx.session_id,
        (vec![0], Vec::new()),
        (vec![0], Vec::new()),
        vec![0; 48],
        vec![0; 65],
        emaid,
    )
    .encode()
}

/// An ISO 15118-2 answer of `kind` (unsigned): the CPS chain and the contract chain as
/// (certificate, sub-CAs), the encrypted key, the DH public key and the eMAID under the Ids
/// `ID1`..`ID4` that every real CPS uses.
#[allow(clippy::too_many_arguments)]
fn answer_iso2(
    kind: ProvisioningKind,
    code: iso2::schema::ResponseCode,
    session_id: &[u8],
    cps: (Vec<u8>, Vec<Vec<u8>>),
    contract: (Vec<u8>, Vec<Vec<u8>>),
    encrypted_key: Vec<u8>,
    dh_public_key: Vec<u8>,
    emaid: String,
) -> iso2::V2gMessage {
    use iso2::schema as s;
    let chain =
        |id: Option<&str>, (certificate, subs): (Vec<u8>, Vec<Vec<u8>>)| s::CertificateChain {
            id: id.map(str::to_string),
            certificate,
            sub_certificates: (!subs.is_empty())
                .then_some(s::SubCertificates { certificate: subs }),
        };
    let (sa, cc) = (chain(None, cps), chain(Some("ID1"), contract));
    let k = s::ContractSignatureEncryptedPrivateKey {
        id: "ID2".into(),
        value: encrypted_key,
    };
    let dh = s::DiffieHellmanPublickey {
        id: "ID3".into(),
        value: dh_public_key,
    };
    let e = s::EMAID {
        id: "ID4".into(),
        value: emaid,
    };
    let body = match kind {
        ProvisioningKind::Install => {
            iso2::Body::CertificateInstallationRes(s::CertificateInstallationRes {
                response_code: code,
                sa_provisioning_certificate_chain: sa,
                contract_signature_cert_chain: cc,
                contract_signature_encrypted_private_key: k,
                dh_public_key: dh,
                e_maid: e,
            })
        }
        ProvisioningKind::Update => iso2::Body::CertificateUpdateRes(s::CertificateUpdateRes {
            response_code: code,
            sa_provisioning_certificate_chain: sa,
            contract_signature_cert_chain: cc,
            contract_signature_encrypted_private_key: k,
            dh_public_key: dh,
            e_maid: e,
            retry_counter: None,
        }),
    };
    iso2::V2gMessage {
        header: s::MessageHeader {
            session_id: session_id.to_vec(),
            notification: None,
            signature: None,
        },
        body,
    }
}

/// Sign a -2 answer with the CPS key (the token blocks: on the blocking pool).
async fn sign_iso2(
    mut msg: iso2::V2gMessage,
    signer: CpsSigner,
) -> Result<iso2::V2gMessage, RaError> {
    tokio::task::spawn_blocking(move || msg.sign(&signer).map(|()| msg))
        .await
        .map_err(|e| RaError::Internal(e.to_string()))?
        .map_err(|e| RaError::Internal(format!("signing the answer: {e}")))
}

use iso2::schema::ResponseCode as Rc2;

/// The CPS signer and its chain without the root.
struct CpsChain {
    signer: CpsSigner,
    subs: Vec<Vec<u8>>,
}

impl Ra {
    /// Provision a contract certificate for the EV whose request is `req` (see the module).
    ///
    /// With an idempotency key (`req.idempotency`), a retry of the same call (same caller, key,
    /// route and body, within 24 h) gets the first call's answer byte for byte and issues
    /// nothing; the same key with another body is refused (409 `idempotency_key_reused`). A
    /// second run could not give that answer (a new key pair, a new encryption for the car, a
    /// new signature), so the answer itself is kept with the key, in the transaction that
    /// records the certificate: after a crash a retry finds both or neither. The kept answer
    /// holds the contract key only encrypted for the car (readable by that car alone), and is
    /// deleted with the key after 24 h. Refusals and pre-generated answers (which issue nothing)
    /// record no key: a retry is decided again.
    pub async fn provision(
        &self,
        p: &Principal,
        req: ProvisionRequest,
    ) -> Result<Provisioned, RaError> {
        self.authorize(p, Operation::ProvisionContract, Target::Any, "provisioning")
            .await?;
        let idem = req
            .idempotency
            .as_ref()
            .map(|k| super::idempotency(p, &k.key, k.scope, &k.body))
            .transpose()?;
        if let Some(k) = &idem
            && let Some(prev) = self.earlier(k).await?
        {
            return self.replay_provisioned(&prev).await;
        }
        // Each answer is an issuance: the per-client issuance limit applies.
        self.limit_enrollment(p)?;
        let r = match self.provision_inner(p, req, idem.clone()).await {
            Err(RaError::Ca(CaError::Store(StoreError::IdempotencyKeyTaken(_)))) => {
                // A concurrent call with this key committed first: its answer.
                self.replay_keyed(idem.as_ref()).await
            }
            other => other,
        };
        // Refusals of the EV's request are audited (aggregated like every refusal); policy
        // denials were audited by `authorize`, faults on our side are logged where they happen.
        if let Err(RaError::Provisioning(f)) = &r {
            tracing::info!(code = f.code, detail = %f.detail, "provisioning refused");
            let _ = self
                .refused(
                    p,
                    "contract.provision.refused",
                    "provisioning",
                    RaError::Provisioning(f.clone()),
                )
                .await;
        }
        r
    }

    /// The answer kept with `k` by a concurrent call that committed it first.
    async fn replay_keyed(&self, k: Option<&IdempotencyKey>) -> Result<Provisioned, RaError> {
        let prev = match k {
            Some(k) => self.earlier(k).await?,
            None => None,
        }
        .ok_or_else(|| RaError::Internal("an idempotency key was taken but is not found".into()))?;
        self.replay_provisioned(&prev).await
    }

    /// The answer an earlier keyed provisioning delivered, as it delivered it.
    async fn replay_provisioned(
        &self,
        prev: &crate::model::IdempotentResult,
    ) -> Result<Provisioned, RaError> {
        let kept: KeptAnswer = prev
            .response
            .as_deref()
            .and_then(|r| serde_json::from_slice(r).ok())
            .ok_or_else(|| {
                RaError::Internal("an idempotency key of a provisioning has no answer".into())
            })?;
        let exi = hex::decode(&kept.exi)
            .map_err(|e| RaError::Internal(format!("a kept answer is not hex: {e}")))?;
        let kind = match kept.kind.as_str() {
            "update" => ProvisioningKind::Update,
            _ => ProvisioningKind::Install,
        };
        let schema = match kept.schema.as_str() {
            "iso15118-20" => Schema::Iso20,
            _ => Schema::Iso2,
        };
        let certificate = self
            .inner
            .store
            .get_cert(&prev.issuer_id, &prev.serial_hex)
            .await?;
        tracing::info!(issuer = %prev.issuer_id, serial = %prev.serial_hex, "idempotent retry answered with the first provisioning answer");
        Ok(Provisioned {
            exi,
            emaid: kept.emaid,
            kind,
            schema,
            remaining: kept.remaining,
            certificate,
            serial_hex: prev.serial_hex.clone(),
            contract_id: kept.contract_id,
        })
    }

    async fn provision_inner(
        &self,
        p: &Principal,
        req: ProvisionRequest,
        idem: Option<IdempotencyKey>,
    ) -> Result<Provisioned, RaError> {
        let msg = Message::decode(&req.exi, None).map_err(|e| {
            refuse(
                "exi_invalid",
                ErrorKind::BadRequest,
                format!("EXI format is invalid: {e}"),
            )
        })?;
        match msg {
            Message::Iso2(m) => {
                let session_id = m.header.session_id.clone();
                match &m.body {
                    iso2::Body::CertificateInstallationReq(r) => {
                        let ctx = Ctx {
                            schema: Schema::Iso2,
                            kind: ProvisioningKind::Install,
                            session_id,
                            emaid: None,
                            idem: idem.clone(),
                            announce: None,
                        };
                        check_action(&ctx, req.action)?;
                        if let Some(out) = self.replayed(&ctx, &req.exi).await? {
                            return Ok(out);
                        }
                        self.install_iso2(p, &m, r, &req.exi, ctx).await
                    }
                    iso2::Body::CertificateUpdateReq(r) => {
                        let ctx = Ctx {
                            schema: Schema::Iso2,
                            kind: ProvisioningKind::Update,
                            session_id,
                            emaid: normalize_emaid(&r.emaid).ok(),
                            idem: idem.clone(),
                            announce: None,
                        };
                        check_action(&ctx, req.action)?;
                        if let Some(out) = self.replayed(&ctx, &req.exi).await? {
                            return Ok(out);
                        }
                        self.update_iso2(p, &m, r, &req.exi, ctx).await
                    }
                    other => Err(refuse(
                        "unsupported_message",
                        ErrorKind::BadRequest,
                        format!(
                            "{} is an answer, not a CertificateInstallationReq or CertificateUpdateReq",
                            other.name()
                        ),
                    )),
                }
            }
            Message::Iso20(iso20::Message::CertificateInstallationReq(r)) => {
                let ctx = Ctx {
                    schema: Schema::Iso20,
                    kind: ProvisioningKind::Install,
                    session_id: r.header.session_id.clone(),
                    emaid: None,
                    idem: idem.clone(),
                    announce: None,
                };
                check_action(&ctx, req.action)?;
                if let Some(out) = self.replayed(&ctx, &req.exi).await? {
                    return Ok(out);
                }
                let m = iso20::Message::CertificateInstallationReq(r.clone());
                self.install_iso20(p, &m, &r, &req, ctx).await
            }
            Message::Iso20(other) => Err(refuse(
                "unsupported_message",
                ErrorKind::BadRequest,
                format!("{} is an answer, not a request", other.name()),
            )),
        }
    }

    // ----------------------------------------------------------------------------- checks

    /// Validate an OEM provisioning certificate: chain to a trusted OEM or V2G root (with the
    /// pool's or the request's sub-CAs), validity now, our own revocation status. Returns the PCID.
    async fn check_oem(
        &self,
        ctx: &Ctx,
        leaf_der: &[u8],
        request_subs: &[Vec<u8>],
    ) -> Result<String, RaError> {
        let leaf = ParsedCert::from_der(leaf_der).map_err(|e| {
            ctx.fail(
                "oem_certificate_invalid",
                ErrorKind::BadRequest,
                Rc2::FAILEDCertChainError,
                format!("OEM provisioning certificate: {e}"),
            )
        })?;
        let pcid = common_name(&leaf)
            .and_then(|cn| normalize_pcid(&cn).ok())
            .ok_or_else(|| {
                ctx.fail(
                    "oem_certificate_invalid",
                    ErrorKind::BadRequest,
                    Rc2::FAILEDCertChainError,
                    "the OEM provisioning certificate's CN is not a PCID",
                )
            })?;
        let pooled = self.inner.store.get_prov_cert(&pcid).await?;
        // The request's sub-CAs and the pool's are candidates only: the engine accepts a path
        // through them only when every signature up to a trusted OEM or V2G root verifies and
        // every sub-CA is of the OEM family.
        let mut presented: Vec<Vec<u8>> = request_subs.to_vec();
        if let Some(pc) = &pooled {
            presented.extend(pc.sub_ca2_der.clone());
            presented.extend(pc.sub_ca1_der.clone());
        }
        self.judge(leaf_der, &presented, Role::OemProvisioning)
            .await?
            .map_err(|f| ctx.fail_cert(Presented::Oem, f))?;
        Ok(pcid)
    }

    /// Active contracts of a vehicle valid now, in delivery order (its default first); a
    /// cancelled-only vehicle and an unknown one are told apart.
    async fn contracts_of(&self, ctx: &Ctx, pcid: &str) -> Result<Vec<ContractRecord>, RaError> {
        let all = self
            .inner
            .store
            .list_contracts(&crate::store::ContractQuery {
                pcid: Some(pcid.to_string()),
                limit: 100,
                ..Default::default()
            })
            .await?;
        let now = self.now();
        let active: Vec<ContractRecord> = all
            .iter()
            .filter(|c| {
                c.status == ContractStatus::Active
                    && c.valid_from.is_none_or(|f| f <= now)
                    && c.valid_to.is_none_or(|t| t > now)
            })
            .cloned()
            .collect();
        if !active.is_empty() {
            // The vehicle's default first (`defaults`): the newest contract does not win.
            let choices = self.vehicle_choices(pcid).await?;
            return Ok(super::defaults::delivery_order(active, &choices));
        }
        if all.iter().any(|c| c.status == ContractStatus::Cancelled) {
            return Err(ctx.fail(
                "contract_cancelled",
                ErrorKind::NotFound,
                Rc2::FAILEDContractCanceled,
                format!("the contract for PCID {pcid} is cancelled"),
            ));
        }
        Err(ctx.fail(
            "no_contract",
            ErrorKind::NotFound,
            Rc2::FAILEDNoCertificateAvailable,
            format!("Contract or Vehicle not found: no valid contract for PCID {pcid}"),
        ))
    }

    /// The CPS signer of `standard`, refused unless its root is one the EV lists.
    async fn cps_chain(
        &self,
        ctx: &Ctx,
        standard: Standard,
        listed: Option<&[(String, Vec<u8>)]>,
    ) -> Result<CpsChain, RaError> {
        let signer = self.ca()?.cps_signer(standard).await?;
        let root = signer
            .chain
            .last()
            .cloned()
            .ok_or_else(|| RaError::Internal("CPS chain without a root".into()))?;
        if let Some(listed) = listed
            && !listed
                .iter()
                .any(|(name, serial)| chain::root_matches(&root, name, serial))
        {
            return Err(ctx.fail(
                "no_matching_root",
                ErrorKind::NotFound,
                Rc2::FAILEDNoCertificateAvailable,
                format!(
                    "none of the {} roots in ListOfRootCertificateIDs is {} (serial {}), the root of our CPS chain",
                    listed.len(),
                    root.subject_string(),
                    root.serial_hex()
                ),
            ));
        }
        let subs = signer
            .chain
            .iter()
            .filter(|c| !c.is_self_issued())
            .map(|c| c.der.clone())
            .collect();
        Ok(CpsChain { signer, subs })
    }

    /// Subject, validity and issuing CA of the next contract certificate of `contract` under
    /// `profile` (`contract` or `contract-20`). The subject is built attribute by attribute, so
    /// an organization with a comma stays one value, and checked against the profile. The
    /// contract's `issuer_id` applies where it is an MO sub-CA 2 of the profile's schema; the
    /// other schema issues under its default MO sub-CA 2.
    pub(super) async fn contract_subject(
        &self,
        contract: &ContractRecord,
        profile: &str,
    ) -> Result<(subject::CheckedSubject, Option<u32>, Option<String>), RaError> {
        let ca = self.ca()?;
        let prof = self.inner.profiles.get(profile)?.clone();
        let issuer = match &contract.issuer_id {
            Some(id) => self
                .inner
                .store
                .get_ca(id)
                .await?
                .filter(|c| prof.issuer_profiles.contains(&c.profile))
                .map(|c| c.id),
            None => None,
        };
        let org = match &contract.organization {
            Some(o) => o.clone(),
            None => {
                let chain = match &issuer {
                    Some(id) => ca.chain(id).await?,
                    None => ca.issuing_chain(profile).await?,
                };
                issuer_organization(&chain)
            }
        };
        let checked = contract_subject_of(&prof, &org, &contract.emaid)?;
        let days = contract.valid_to.map(|t| {
            let left = (t - self.now()).max(86_400) / 86_400;
            u32::try_from(left)
                .unwrap_or(u32::MAX)
                .min(prof.validity.default_days)
        });
        Ok((checked, days, issuer))
    }

    fn check_size(&self, ctx: &Ctx, exi_len: usize) -> Result<(), RaError> {
        let chars = exi_len.div_ceil(3) * 4;
        let cap = match ctx.schema {
            Schema::Iso2 => self.inner.response_caps.0,
            Schema::Iso20 => self.inner.response_caps.1,
        };
        if chars > cap {
            return Err(refuse(
                "response_too_large",
                ErrorKind::Internal,
                format!(
                    "the answer would be {chars} base64 characters ({exi_len} bytes of EXI), over the configured cap of {cap}; nothing was issued"
                ),
            ));
        }
        Ok(())
    }

    // ------------------------------------------------------------------------ ISO 15118-2

    async fn install_iso2(
        &self,
        p: &Principal,
        m: &iso2::V2gMessage,
        r: &iso2::CertificateInstallationReq,
        raw: &[u8],
        mut ctx: Ctx,
    ) -> Result<Provisioned, RaError> {
        verify_signature_iso2(&ctx, m, &r.oem_provisioning_cert)?;
        let pcid = self.check_oem(&ctx, &r.oem_provisioning_cert, &[]).await?;
        let contract = self
            .contracts_of(&ctx, &pcid)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| RaError::Internal("empty contract list".into()))?;
        ctx.emaid = Some(contract.emaid.clone());
        let listed = listed_roots(&r.list_of_root_certificate_ids);
        let cps = self.cps_chain(&ctx, Standard::Iso2, Some(&listed)).await?;
        if let Some(out) = self
            .pregenerated_answer(&ctx, &contract, &r.oem_provisioning_cert)
            .await?
        {
            return Ok(out);
        }
        let recipient = keyenc::recipient_public_key(&r.oem_provisioning_cert).map_err(|e| {
            ctx.fail(
                "oem_certificate_invalid",
                ErrorKind::BadRequest,
                Rc2::FAILEDCertChainError,
                format!("OEM provisioning key: {e}"),
            )
        })?;
        self.issue_iso2(p, ctx, contract, cps, &recipient, raw, None)
            .await
    }

    /// The contract's pre-generated answer for this car's OEM key, with the live SessionID, if
    /// there is one whose certificate is still valid: no HSM call, nothing new recorded.
    async fn pregenerated_answer(
        &self,
        ctx: &Ctx,
        contract: &ContractRecord,
        oem_der: &[u8],
    ) -> Result<Option<Provisioned>, RaError> {
        let Some(pre) = self
            .inner
            .store
            .get_pregenerated(&contract.id, "iso15118-2")
            .await?
        else {
            return Ok(None);
        };
        if !pre.oem_sha256.is_empty() && pre.oem_sha256 != sha256_hex(oem_der) {
            return Ok(None);
        }
        if pre.not_after <= self.now() {
            return Ok(None);
        }
        // Our own certificate must not be revoked; an MO's own one is its MO's to revoke.
        let cert = self
            .inner
            .store
            .get_cert(&pre.issuer_id, &pre.serial_hex)
            .await?;
        if cert.as_ref().is_some_and(|c| c.status != CertStatus::Valid) {
            return Ok(None);
        }
        let Message::Iso2(mut m) = Message::decode(&pre.exi, Some(Schema::Iso2))
            .map_err(|e| RaError::Internal(format!("stored answer: {e}")))?
        else {
            return Ok(None);
        };
        // The header is outside the signed elements: the signature stays valid.
        m.header.session_id = ctx.session_id.clone();
        let exi = m
            .encode()
            .map_err(|e| RaError::Internal(format!("encoding the answer: {e}")))?;
        self.check_size(ctx, exi.len())?;
        if cert.is_some() {
            // Delivered now: the contract's other -2 certificates are superseded.
            self.supersede_others(contract, "contract", (&pre.issuer_id, &pre.serial_hex))
                .await?;
        }
        tracing::info!(contract = %contract.id, serial = %pre.serial_hex, exi_bytes = exi.len(), "pre-generated contract data delivered");
        Ok(Some(Provisioned {
            exi,
            emaid: contract.emaid.clone(),
            kind: ProvisioningKind::Install,
            schema: Schema::Iso2,
            remaining: 0,
            serial_hex: pre.serial_hex,
            certificate: cert,
            contract_id: contract.id.clone(),
        }))
    }

    /// Pre-generate a contract's ISO 15118-2 answer for the vehicle in the provisioning pool
    /// (Hubject's `generate/signedContractData`): key, certificate, encrypted key and signature
    /// made now, the answer kept and delivered at installation with the live SessionID. Creates
    /// the contract when the EMAID has none. A previous pre-generated certificate is revoked
    /// (`superseded`).
    pub async fn pregenerate(
        &self,
        p: &Principal,
        req: Pregenerate,
    ) -> Result<Provisioned, RaError> {
        let emaid = normalize_emaid(&req.emaid)?;
        let pcid = normalize_pcid(&req.pcid)?;
        self.authorize(
            p,
            Operation::ManageContracts,
            Target::Identifier(crate::policy::authz::Identifier::Emaid(&emaid)),
            &format!("contracts/{emaid}"),
        )
        .await?;
        let idem = req
            .idempotency_key
            .as_deref()
            .map(|k| super::idempotency(p, k, "pregenerate", &req.body))
            .transpose()?;
        if let Some(k) = &idem
            && let Some(prev) = self.earlier(k).await?
        {
            return self.replay_provisioned(&prev).await;
        }
        self.limit_enrollment(p)?;
        let schema = if is_iso2_namespace(&req.namespace) {
            Schema::Iso2
        } else if is_iso20_namespace(&req.namespace) {
            Schema::Iso20
        } else {
            return Err(RaError::bad(
                "unsupported_namespace",
                "xsdMsgDefNamespace must be ISO 15118-2 (urn:iso:15118:2:2013:MsgDef) or -20 (urn:iso:15118:20:2022:MsgDef)",
            ));
        };
        // Everything that can refuse is checked before a contract is created: a pre-generation
        // that fails commits nothing.
        let pooled = self.inner.store.get_prov_cert(&pcid).await?.ok_or_else(|| {
            RaError::NotFound(format!(
                "no OEM provisioning certificate for PCID {pcid} in the pool (PUT /v1/oem/provCerts)"
            ))
        })?;
        let mut ctx = Ctx {
            schema,
            kind: ProvisioningKind::Install,
            // Replaced by the live SessionID at delivery.
            session_id: vec![0; 8],
            emaid: Some(emaid.clone()),
            idem,
            announce: None,
        };
        let subs: Vec<Vec<u8>> = [&pooled.sub_ca2_der, &pooled.sub_ca1_der]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        self.check_oem(&ctx, &pooled.leaf_der, &subs).await?;
        let (standard, profile) = match schema {
            Schema::Iso2 => (Standard::Iso2, "contract"),
            Schema::Iso20 => (Standard::Iso20, "contract-20"),
        };
        let cps = self.cps_chain(&ctx, standard, None).await?;
        let recipient = keyenc::recipient_public_key(&pooled.leaf_der)
            .map_err(|e| RaError::bad("bad_certificate", format!("OEM provisioning key: {e}")))?;
        if schema == Schema::Iso20 && pcid.len() != 18 {
            return Err(RaError::bad(
                "bad_pcid",
                "ISO 15118-20 contract data is for an 18-character PCID (a -20 provisioning certificate)",
            ));
        }
        if let Some(c) = self.active_contract_of(&emaid).await? {
            if c.pcid != pcid {
                return Err(RaError::Store(crate::store::StoreError::Taken(format!(
                    "EMAID {emaid} has an active contract for another vehicle ({})",
                    c.pcid
                ))));
            }
        } else {
            // A new contract must be installable: its subject is checked before it exists.
            let prof = self.inner.profiles.get(profile)?.clone();
            let org = self.default_contract_organization().await?;
            contract_subject_of(&prof, &org, &emaid)?;
        }
        let (contract, created) = self
            .contract_for_data(p, &emaid, &pcid, req.valid_from, req.valid_to)
            .await?;
        ctx.emaid = Some(contract.emaid.clone());
        ctx.announce = Some(if created {
            crate::events::OEM_CREATED
        } else {
            crate::events::OEM_UPDATED
        });
        let sha = sha256_hex(&pooled.leaf_der);
        let keyed = ctx.idem.clone();
        let issued = match schema {
            Schema::Iso2 => {
                self.issue_iso2(p, ctx, contract, cps, &recipient, &req.body, Some(sha))
                    .await
            }
            Schema::Iso20 => {
                self.issue_iso20(
                    p,
                    ctx,
                    contract,
                    cps,
                    &recipient,
                    &pcid,
                    &req.body,
                    0,
                    Some(sha),
                )
                .await
            }
        };
        match issued {
            Err(RaError::Ca(CaError::Store(StoreError::IdempotencyKeyTaken(_)))) => {
                self.replay_keyed(keyed.as_ref()).await
            }
            other => other,
        }
    }

    /// Over-the-air contract data for the OEM of a pooled vehicle (OPCP
    /// `provideSignedContractData`): the CPS-signed `CertificateInstallationRes` of `emaid`'s
    /// contract for `pcid`, encrypted for the pooled provisioning certificate, with
    /// `session_id` in its header. Pre-generated data is delivered as it is; without it the
    /// answer is made now and kept as pre-generated data (the next pull, or an installation
    /// through a charger, delivers the same). The MO learns of the pull
    /// (`mo.contract.delivered.to.oem`). ISO 15118-2.
    pub async fn provide_contract_data(
        &self,
        p: &Principal,
        req: OtaRequest,
    ) -> Result<Provided, RaError> {
        let emaid = normalize_emaid(&req.emaid)?;
        let pcid = normalize_pcid(&req.pcid)?;
        self.authorize(
            p,
            Operation::PullContractData,
            Target::Identifier(crate::policy::authz::Identifier::Pcid(&pcid)),
            &format!("provideSignedContractData/{pcid}"),
        )
        .await?;
        if let Some(ns) = req.namespace.as_deref()
            && !ns.trim().is_empty()
            && !is_iso2_namespace(ns)
        {
            return Err(RaError::bad(
                "unsupported_namespace",
                "over-the-air contract data is ISO 15118-2 only (urn:iso:15118:2:2013:MsgDef)",
            ));
        }
        let session_id = match req.session_id.as_deref().map(str::trim) {
            None | Some("") => vec![0; 8],
            Some(h) => match hex::decode(h) {
                Ok(b) if !b.is_empty() && b.len() <= 8 => b,
                _ => {
                    return Err(RaError::bad(
                        "bad_session_id",
                        "sessionID must be 1 to 8 bytes of hex (ISO 15118-2 SessionID)",
                    ));
                }
            },
        };
        let contract = self
            .active_contract_of(&emaid)
            .await?
            .filter(|c| c.pcid == pcid)
            .ok_or_else(|| {
                RaError::NotFound(format!(
                    "Contract or Vehicle not found: no active contract of {emaid} for PCID {pcid}"
                ))
            })?;
        let now = self.now();
        if contract.valid_from.is_some_and(|f| f > now)
            || contract.valid_to.is_some_and(|t| t <= now)
        {
            return Err(RaError::NotFound(format!(
                "Contract or Vehicle not found: the contract of {emaid} is not valid now"
            )));
        }
        let pooled = self.inner.store.get_prov_cert(&pcid).await?.ok_or_else(|| {
            RaError::NotFound(format!(
                "no OEM provisioning certificate for PCID {pcid} in the pool (PUT /v1/oem/provCerts)"
            ))
        })?;
        let ctx = Ctx {
            schema: Schema::Iso2,
            kind: ProvisioningKind::Install,
            session_id,
            emaid: Some(emaid.clone()),
            idem: None,
            announce: None,
        };
        let subs: Vec<Vec<u8>> = [&pooled.sub_ca2_der, &pooled.sub_ca1_der]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        // The pooled chain is judged again: revoked or expired since its upload, no answer.
        self.check_oem(&ctx, &pooled.leaf_der, &subs).await?;
        let cps = self.cps_chain(&ctx, Standard::Iso2, None).await?;
        let cps_root = cps
            .signer
            .chain
            .last()
            .map(|r| sha256_hex(&r.der))
            .unwrap_or_default();
        if let Some(fp) = req.cps_root_fingerprint.as_deref().map(str::trim)
            && !fp.is_empty()
            && !fp.replace(':', "").eq_ignore_ascii_case(&cps_root)
        {
            return Err(RaError::NotFound(format!(
                "no CPS signer under the V2G root {} (ours: {cps_root})",
                fp.chars().take(96).collect::<String>()
            )));
        }
        let out = match self
            .pregenerated_answer(&ctx, &contract, &pooled.leaf_der)
            .await?
        {
            Some(out) => out,
            None => {
                let recipient = keyenc::recipient_public_key(&pooled.leaf_der).map_err(|e| {
                    RaError::bad("bad_certificate", format!("OEM provisioning key: {e}"))
                })?;
                // What this answer was made for, recorded as its request.
                let raw = serde_json::to_vec(&serde_json::json!({
                    "provideSignedContractData": { "emaid": emaid, "pcid": pcid, "at": now,
                        "nonce": hex::encode(rand::random::<[u8; 8]>()) }
                }))
                .unwrap_or_default();
                let sha = sha256_hex(&pooled.leaf_der);
                self.issue_iso2(p, ctx, contract.clone(), cps, &recipient, &raw, Some(sha))
                    .await?
            }
        };
        let ev = crate::model::AuditEvent::new(
            &p.actor(),
            "contract.ota.pull",
            &format!("contract/{}", contract.id),
            serde_json::json!({ "emaid": emaid, "pcid": pcid, "serial": out.serial_hex }),
        )
        .with_event(contract_event(
            crate::events::DELIVERED_TO_OEM,
            &contract,
            out.certificate.as_ref().map(|c| c.der.as_slice()),
            now,
        ));
        self.inner.store.audit(&ev).await?;
        Ok(Provided {
            exi: out.exi,
            cps_root_fingerprint: cps_root,
        })
    }

    /// The CPS signers an MO can choose between (OPCP `getAllCpsSigners`): per standard, the
    /// current CPS leaf and its chain (issuing CA first, root last). Public data, for any
    /// authenticated role.
    pub async fn cps_signers(&self, p: &Principal) -> Result<Vec<CpsSignerInfo>, RaError> {
        self.authorize(p, Operation::ReadCas, Target::Any, "cps/signer")
            .await?;
        let mut out = Vec::new();
        for (standard, namespace) in [
            (Standard::Iso2, crate::events::NS_ISO2),
            (Standard::Iso20, crate::events::NS_ISO20),
        ] {
            match self.ca()?.cps_signer(standard).await {
                Ok(s) => out.push(CpsSignerInfo {
                    namespace,
                    leaf: s.cert.clone(),
                    chain: s.chain.clone(),
                }),
                // A deployment without a -20 hierarchy has one signer.
                Err(CaError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(out)
    }

    /// The organization of contract certificates without one of their own: the default MO
    /// sub-CA 2's.
    async fn default_contract_organization(&self) -> Result<String, RaError> {
        let chain = self.ca()?.issuing_chain("contract").await?;
        Ok(issuer_organization(&chain))
    }

    /// The active contract of `emaid` for `pcid`, created (without an event of its own: the
    /// caller announces the contract with its data) when the EMAID has none, and whether it was
    /// created; refused when it is bound to another vehicle.
    async fn contract_for_data(
        &self,
        p: &Principal,
        emaid: &str,
        pcid: &str,
        valid_from: Option<i64>,
        valid_to: Option<i64>,
    ) -> Result<(ContractRecord, bool), RaError> {
        match self.active_contract_of(emaid).await? {
            Some(c) if c.pcid != pcid => {
                Err(RaError::Store(crate::store::StoreError::Taken(format!(
                    "EMAID {emaid} has an active contract for another vehicle ({})",
                    c.pcid
                ))))
            }
            Some(c) => Ok((c, false)),
            None => {
                let c = self
                    .create_contract_quietly(
                        p,
                        super::contracts::NewContract {
                            emaid: emaid.to_string(),
                            pcid: pcid.to_string(),
                            valid_from,
                            valid_to,
                            ..Default::default()
                        },
                    )
                    .await?;
                Ok((c, true))
            }
        }
    }

    /// Accept contract data an MO with its own PKI made (Hubject's `PUT
    /// /v1/cps/contractData/signed`): its contract certificate must chain to a trusted MO (or
    /// V2G) root and carry an EMAID of the caller's tenants; its encrypted key and DH public key
    /// are taken as they are (only the car can check them). We sign the answer with the CPS
    /// key and keep it for delivery like a pre-generated one. ISO 15118-2.
    pub async fn accept_contract_data(
        &self,
        p: &Principal,
        d: OwnContractData,
    ) -> Result<ContractRecord, RaError> {
        let pcid = normalize_pcid(&d.pcid)?;
        let cert = ParsedCert::from_der(&d.contract_certificate)
            .map_err(|e| RaError::bad("bad_certificate", format!("contractCertificate: {e}")))?;
        let emaid = common_name(&cert)
            .and_then(|cn| normalize_emaid(&cn).ok())
            .ok_or_else(|| {
                RaError::bad("bad_emaid", "the contract certificate's CN is not an EMAID")
            })?;
        self.authorize(
            p,
            Operation::ManageContracts,
            Target::Identifier(crate::policy::authz::Identifier::Emaid(&emaid)),
            &format!("contracts/{emaid}"),
        )
        .await?;
        if !is_iso2_namespace(&d.namespace) {
            return Err(RaError::bad(
                "unsupported_namespace",
                "contract data is accepted for ISO 15118-2 only (urn:iso:15118:2:2013:MsgDef)",
            ));
        }
        if d.encrypted_private_key.len() != 48 {
            return Err(RaError::bad(
                "bad_contract_data",
                "contractSignatureEncryptedPrivateKey must be 48 bytes (IV ‖ AES-128-CBC ciphertext)",
            ));
        }
        if d.dh_public_key.len() != 65 || d.dh_public_key.first() != Some(&4) {
            return Err(RaError::bad(
                "bad_contract_data",
                "dHpublickey must be an uncompressed P-256 point (65 bytes, 0x04 first)",
            ));
        }
        let subs: Vec<Vec<u8>> = [&d.sub_ca2, &d.sub_ca1]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        // Judged as a contract certificate: a path to a trusted MO or V2G root, and when one of
        // our MO sub-CAs signed it, our record of it (not revoked). Our own revoked
        // certificate never comes back this way.
        let judged = self
            .judge(&d.contract_certificate, &subs, Role::Contract)
            .await?
            .map_err(|f| super::validate::upload_refusal("contractCertificate", f))?;
        let (contract, created) = self
            .contract_for_data(p, &emaid, &pcid, None, Some(cert.not_after()))
            .await?;
        let ctx = Ctx {
            schema: Schema::Iso2,
            kind: ProvisioningKind::Install,
            session_id: vec![0; 8],
            emaid: Some(emaid.clone()),
            idem: None,
            announce: None,
        };
        let cps = self.cps_chain(&ctx, Standard::Iso2, None).await?;
        let msg = answer_iso2(
            ProvisioningKind::Install,
            iso2::schema::ResponseCode::OK,
            &ctx.session_id,
            (cps.signer.cert.der.clone(), cps.subs.clone()),
            (d.contract_certificate.clone(), subs),
            d.encrypted_private_key,
            d.dh_public_key,
            emaid.clone(),
        );
        let msg = sign_iso2(msg, cps.signer).await?;
        let exi = msg
            .encode()
            .map_err(|e| RaError::bad("bad_contract_data", format!("encoding the answer: {e}")))?;
        self.check_size(&ctx, exi.len())?;
        // Ours: under its real issuer, so that delivery sees its revocation; another PKI's:
        // marked external.
        let issuer_id = match &judged.own {
            Some(rec) => rec.issuer_id.clone(),
            None => format!(
                "external:{}",
                hex::encode(cert.issuer_der()).get(..16).unwrap_or("")
            ),
        };
        let pre = crate::model::Pregenerated {
            contract_id: contract.id.clone(),
            schema_version: "iso15118-2".into(),
            issuer_id,
            serial_hex: cert.serial_hex(),
            oem_sha256: String::new(),
            not_after: cert.not_after(),
            exi,
            created_at: self.now(),
        };
        let ev = crate::model::AuditEvent::new(
            &p.actor(),
            "contract.data.accept",
            &format!("contract/{}", contract.id),
            serde_json::json!({
                "emaid": emaid,
                "pcid": pcid,
                "certificate_sha256": cert.sha256_hex(),
                "issuer": cert.issuer_string(),
            }),
        )
        .with_event(contract_event(
            if created {
                crate::events::OEM_CREATED
            } else {
                crate::events::OEM_UPDATED
            },
            &contract,
            Some(&d.contract_certificate),
            self.now(),
        ));
        self.inner.store.put_pregenerated(&pre, &ev).await?;
        Ok(contract)
    }

    /// Delete a contract's pre-generated data (Hubject's `DELETE signedContractData/{emaid}`);
    /// its certificate is revoked unless `skip_revocation`.
    pub async fn delete_pregenerated(
        &self,
        p: &Principal,
        emaid: &str,
        skip_revocation: bool,
    ) -> Result<usize, RaError> {
        let emaid = normalize_emaid(emaid)?;
        self.authorize(
            p,
            Operation::ManageContracts,
            Target::Identifier(crate::policy::authz::Identifier::Emaid(&emaid)),
            &format!("contracts/{emaid}"),
        )
        .await?;
        let contract = self
            .active_contract_of(&emaid)
            .await?
            .ok_or_else(|| RaError::NotFound(format!("Contract or Vehicle not found: {emaid}")))?;
        let pre = self
            .inner
            .store
            .get_pregenerated(&contract.id, "iso15118-2")
            .await?
            .ok_or_else(|| RaError::NotFound(format!("no signed contract data for {emaid}")))?;
        let ev = crate::model::AuditEvent::new(
            &p.actor(),
            "contract.pregenerated.delete",
            &format!("contract/{}", contract.id),
            serde_json::json!({ "emaid": emaid, "skip_revocation": skip_revocation }),
        )
        .with_event(contract_event(
            crate::events::OEM_DELETED,
            &contract,
            None,
            self.now(),
        ));
        let n = self
            .inner
            .store
            .delete_pregenerated(&contract.id, &ev)
            .await?;
        if !skip_revocation && !pre.issuer_id.starts_with("external:") {
            self.ca()?
                .revoke(
                    &pre.issuer_id,
                    &pre.serial_hex,
                    RevocationReason::CessationOfOperation,
                    &p.actor(),
                )
                .await?;
        }
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    async fn update_iso2(
        &self,
        p: &Principal,
        m: &iso2::V2gMessage,
        r: &iso2::CertificateUpdateReq,
        raw: &[u8],
        ctx: Ctx,
    ) -> Result<Provisioned, RaError> {
        // The presented certificate is judged before anything it says is believed: a path to a
        // trusted MO or V2G root as a contract certificate, then our record of it found by its
        // bytes (a look-alike with the victim's issuer name, serial and subject but another key
        // fails here). Only then is the request's signature checked with its key, and only
        // then is the new contract key encrypted for that key.
        let current_der = &r.contract_signature_cert_chain.certificate;
        let subs: Vec<Vec<u8>> = r
            .contract_signature_cert_chain
            .sub_certificates
            .as_ref()
            .map(|s| s.certificate.clone())
            .unwrap_or_default();
        let judged = self
            .judge(current_der, &subs, Role::Contract)
            .await?
            .map_err(|f| ctx.fail_cert(Presented::Contract, f))?;
        let rec = judged.own.ok_or_else(|| {
            ctx.fail(
                "contract_unknown",
                ErrorKind::BadRequest,
                Rc2::FAILEDCertChainError,
                "the current contract certificate was not issued by this service",
            )
        })?;
        verify_signature_iso2(&ctx, m, current_der)?;
        let contract_id = self
            .inner
            .store
            .contract_of_certificate(&rec.issuer_id, &rec.serial_hex)
            .await?;
        let contract = match contract_id {
            Some(id) => self.inner.store.get_contract(&id).await?,
            None => None,
        }
        .ok_or_else(|| {
            ctx.fail(
                "no_contract",
                ErrorKind::NotFound,
                Rc2::FAILEDNoCertificateAvailable,
                "the current contract certificate belongs to no contract",
            )
        })?;
        if contract.status == ContractStatus::Cancelled {
            return Err(ctx.fail(
                "contract_cancelled",
                ErrorKind::NotFound,
                Rc2::FAILEDContractCanceled,
                format!("contract {} is cancelled", contract.id),
            ));
        }
        if ctx.emaid.as_deref() != Some(contract.emaid.as_str()) {
            return Err(ctx.fail(
                "emaid_mismatch",
                ErrorKind::BadRequest,
                Rc2::FAILED,
                format!(
                    "the request's eMAID is not the contract's ({})",
                    contract.emaid
                ),
            ));
        }
        let listed = listed_roots(&r.list_of_root_certificate_ids);
        let cps = self.cps_chain(&ctx, Standard::Iso2, Some(&listed)).await?;
        let recipient = keyenc::recipient_public_key(current_der).map_err(|e| {
            ctx.fail(
                "contract_certificate_invalid",
                ErrorKind::BadRequest,
                Rc2::FAILEDCertChainError,
                format!("current contract key: {e}"),
            )
        })?;
        // The current certificate is superseded by the general rule (one valid contract
        // certificate per contract and schema, `deliver`).
        self.issue_iso2(p, ctx, contract, cps, &recipient, raw, None)
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn issue_iso2(
        &self,
        p: &Principal,
        ctx: Ctx,
        contract: ContractRecord,
        cps: CpsChain,
        recipient: &[u8],
        raw: &[u8],
        pregenerate: Option<String>,
    ) -> Result<Provisioned, RaError> {
        let ca = self.ca()?;
        let (checked, days, issuer) = self.contract_subject(&contract, "contract").await?;
        let (prepared, key) = ca
            .prepare_leaf_with_generated_key(checked, issuer.as_deref(), days, &p.actor())
            .await?;
        let env = keyenc::iso2_encrypt(recipient, &key.scalar)
            .map_err(|e| RaError::Internal(format!("contract key encryption: {e}")))?;
        drop(key);
        let contract_subs: Vec<Vec<u8>> = prepared
            .chain
            .iter()
            .filter(|c| !c.is_self_issued())
            .map(|c| c.der.clone())
            .collect();
        let msg = answer_iso2(
            ctx.kind,
            iso2::schema::ResponseCode::OK,
            &ctx.session_id,
            (cps.signer.cert.der.clone(), cps.subs.clone()),
            (prepared.record.der.clone(), contract_subs),
            env.encrypted_private_key,
            env.dh_public_key,
            contract.emaid.clone(),
        );
        let msg = sign_iso2(msg, cps.signer).await?;
        let exi = msg
            .encode()
            .map_err(|e| RaError::Internal(format!("encoding the answer: {e}")))?;
        self.deliver(ctx, contract, prepared, raw, exi, 0, pregenerate)
            .await
    }

    /// Size-check, then record certificate, request, answer and audit entry together, with the
    /// supersession of the contract's other valid certificates of the same schema: one valid
    /// contract certificate per contract and schema (after the contract's grace period; at
    /// once when it is 0). A pre-generated answer supersedes nothing until it is delivered.
    #[allow(clippy::too_many_arguments)]
    async fn deliver(
        &self,
        ctx: Ctx,
        contract: ContractRecord,
        mut prepared: crate::ca::Prepared,
        raw: &[u8],
        exi: Vec<u8>,
        remaining: u8,
        pregenerate: Option<String>,
    ) -> Result<Provisioned, RaError> {
        self.check_size(&ctx, exi.len())?;
        // Contract certificates carry the vehicle they were made for (searchable by PCID).
        prepared.record.pcid = Some(contract.pcid.clone());
        let now = self.now();
        let supersedes: Vec<(String, String)> = if pregenerate.is_some() {
            Vec::new()
        } else {
            self.valid_contract_certificates(&contract.id, &prepared.record.profile)
                .await?
        };
        let link = ProvisioningLink {
            contract_id: contract.id.clone(),
            kind: ctx.kind,
            schema_version: match ctx.schema {
                Schema::Iso2 => "iso15118-2",
                Schema::Iso20 => "iso15118-20",
            },
            request: raw.to_vec(),
            response_size: exi.len(),
            supersedes,
            // With a grace period of 0 this is not in the future when the commit writes it: the
            // superseded certificates are revoked in that transaction, before the answer.
            supersede_at: now.saturating_add(contract.grace_seconds),
            response: Some(exi.clone()),
            pregenerated: pregenerate.map(|sha| (sha, exi.clone())),
            idempotency: match ctx.idem.clone() {
                Some(k) => Some((k, kept_answer(&ctx, &contract, &exi, remaining)?)),
                None => None,
            },
            events: ctx
                .announce
                .map(|t| contract_event(t, &contract, Some(&prepared.record.der), self.now()))
                .into_iter()
                .collect(),
        };
        // The previous pre-generated answer (never delivered, or superseded now) and, with no
        // grace period, the superseded certificates are revoked in the commit's transaction.
        let (issued, revoked) = self.ca()?.commit_provisioned(prepared, &link).await?;
        tracing::info!(
            contract = %contract.id,
            emaid = %contract.emaid,
            serial = %issued.record.serial_hex,
            superseded = link.supersedes.len(),
            revoked = revoked.len(),
            kind = ctx.kind.as_str(),
            schema = link.schema_version,
            exi_bytes = exi.len(),
            base64_chars = exi.len().div_ceil(3) * 4,
            "contract certificate provisioned"
        );
        Ok(Provisioned {
            exi,
            emaid: contract.emaid,
            kind: ctx.kind,
            schema: ctx.schema,
            remaining,
            serial_hex: issued.record.serial_hex.clone(),
            certificate: Some(issued.record),
            contract_id: contract.id,
        })
    }

    /// The contract's valid certificates of `profile` not yet due to be superseded, as (issuer,
    /// serial): what a new certificate supersedes (one scheduled before keeps its schedule).
    async fn valid_contract_certificates(
        &self,
        contract_id: &str,
        profile: &str,
    ) -> Result<Vec<(String, String)>, RaError> {
        Ok(self
            .inner
            .store
            .contract_certificates_to_supersede(contract_id, profile, self.now())
            .await?)
    }

    /// Revoke a superseded contract certificate now and forget its scheduled supersession. A
    /// failure is logged; the supersession sweep retries it.
    async fn revoke_superseded(&self, issuer_id: &str, serial_hex: &str) {
        let r = async {
            match self
                .ca()?
                .revoke(
                    issuer_id,
                    serial_hex,
                    RevocationReason::Superseded,
                    PROVISIONING_ACTOR,
                )
                .await
            {
                Ok(_) | Err(CaError::NotFound(_)) => {}
                Err(e) => return Err(RaError::from(e)),
            }
            self.inner
                .store
                .cert_supersession_done(issuer_id, serial_hex)
                .await?;
            Ok::<(), RaError>(())
        }
        .await;
        if let Err(e) = r {
            tracing::warn!(serial = %serial_hex, error = %e, "revoking a superseded contract certificate failed; the sweep retries");
        }
    }

    /// Supersede the contract's valid certificates of `profile` other than `keep` (a
    /// pre-generated answer being delivered): scheduled with an audit entry, revoked at once
    /// when the contract's grace period is 0.
    async fn supersede_others(
        &self,
        contract: &ContractRecord,
        profile: &str,
        keep: (&str, &str),
    ) -> Result<(), RaError> {
        let at = self.now().saturating_add(contract.grace_seconds);
        for (i, s) in self
            .valid_contract_certificates(&contract.id, profile)
            .await?
        {
            if (i.as_str(), s.as_str()) == keep {
                continue;
            }
            let ev = crate::model::AuditEvent::new(
                PROVISIONING_ACTOR,
                "certificate.supersede.scheduled",
                &format!("{i}/{s}"),
                serde_json::json!({
                    "by": format!("{}/{}", keep.0, keep.1),
                    "contract": contract.id,
                    "revoke_at": at,
                }),
            );
            self.inner
                .store
                .schedule_supersession((&i, &s), keep, at, &ev)
                .await?;
            if contract.grace_seconds == 0 {
                self.revoke_superseded(&i, &s).await;
            }
        }
        Ok(())
    }

    /// Answer a request whose exact bytes were answered before: the same answer while the
    /// certificate it delivered is still current (a car's retry, or a replay, gets nothing
    /// new), a refusal once that certificate was superseded, revoked or has expired (a captured
    /// request replayed later mints nothing and supersedes nobody).
    async fn replayed(&self, ctx: &Ctx, raw: &[u8]) -> Result<Option<Provisioned>, RaError> {
        let Some(prev) = self
            .inner
            .store
            .provisioning_by_request(&sha256_hex(raw))
            .await?
        else {
            return Ok(None);
        };
        let cert = self
            .inner
            .store
            .get_cert(&prev.issuer_id, &prev.serial_hex)
            .await?;
        let now = self.now();
        let current = cert
            .as_ref()
            .is_some_and(|c| c.status == CertStatus::Valid && c.not_after > now);
        match (current, prev.response, cert) {
            (true, Some(exi), Some(cert)) => {
                tracing::info!(serial = %prev.serial_hex, contract = %prev.contract_id, "a request answered before got its first answer again");
                Ok(Some(Provisioned {
                    exi,
                    emaid: cert.emaid.clone().unwrap_or_default(),
                    kind: if prev.kind == "update" {
                        ProvisioningKind::Update
                    } else {
                        ProvisioningKind::Install
                    },
                    schema: if prev.schema_version == "iso15118-20" {
                        Schema::Iso20
                    } else {
                        Schema::Iso2
                    },
                    remaining: 0,
                    serial_hex: prev.serial_hex,
                    certificate: Some(cert),
                    contract_id: prev.contract_id,
                }))
            }
            _ => Err(ctx.fail(
                "request_replayed",
                ErrorKind::BadRequest,
                Rc2::FAILED,
                format!(
                    "this exact request was answered before (certificate {}), and that certificate is no longer current: a replayed request is not answered again",
                    prev.serial_hex
                ),
            )),
        }
    }

    /// Revoke a replaced contract certificate (`superseded`) and mark the supersession done.
    /// A failure is logged; the sweep retries it.
    async fn supersede(
        &self,
        issuer_id: &str,
        serial_hex: &str,
        old_issuer: &str,
        old_serial: &str,
    ) {
        let r = async {
            self.ca()?
                .revoke(
                    old_issuer,
                    old_serial,
                    RevocationReason::Superseded,
                    PROVISIONING_ACTOR,
                )
                .await?;
            self.inner
                .store
                .supersession_done(issuer_id, serial_hex)
                .await?;
            Ok::<(), RaError>(())
        }
        .await;
        if let Err(e) = r {
            tracing::warn!(old = %old_serial, error = %e, "revoking a superseded contract certificate failed; the sweep retries");
        }
    }

    /// Revoke every replaced contract certificate whose grace period has ended (at most 100 a
    /// call). Returns how many were due.
    pub async fn sweep_supersessions(&self) -> Result<usize, RaError> {
        let due = self.inner.store.due_supersessions(self.now(), 100).await?;
        for d in &due {
            self.supersede(
                &d.issuer_id,
                &d.serial_hex,
                &d.old_issuer_id,
                &d.old_serial_hex,
            )
            .await;
        }
        Ok(due.len())
    }

    /// Sweep supersessions (contract certificates, and re-issued station certificates) once a
    /// minute, or as often as a shorter grace period needs, until the task is dropped.
    pub async fn run_supersession_sweeper(self) {
        let every = self.supersession_sweep_interval();
        loop {
            tokio::time::sleep(every).await;
            // One replica sweeps at a time (the revocations are idempotent, the work is not free).
            let ttl_ms = i64::try_from((every * 3).as_millis()).unwrap_or(i64::MAX / 4);
            match self
                .inner
                .store
                .job_lease(
                    "supersession.sweep",
                    &self.inner.holder,
                    self.inner.clock.now_ms(),
                    ttl_ms,
                )
                .await
            {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot take the sweep lease; skipping this round");
                    continue;
                }
            }
            if let Err(e) = self.sweep_supersessions().await {
                tracing::warn!(error = %e, "supersession sweep failed");
            }
            if let Err(e) = self.sweep_cert_supersessions().await {
                tracing::warn!(error = %e, "certificate supersession sweep failed");
            }
        }
    }

    // ----------------------------------------------------------------------- ISO 15118-20

    async fn install_iso20(
        &self,
        p: &Principal,
        m: &iso20::Message,
        r: &iso20::CertificateInstallationReq,
        req: &ProvisionRequest,
        ctx: Ctx,
    ) -> Result<Provisioned, RaError> {
        let oem = &r.oem_provisioning_certificate_chain;
        let key = VerifyingKey::from_certificate(&oem.certificate).map_err(|e| {
            ctx.fail(
                "oem_certificate_invalid",
                ErrorKind::BadRequest,
                Rc2::FAILEDCertChainError,
                format!("OEM provisioning certificate: {e}"),
            )
        })?;
        m.verify(&key)
            .and_then(|rep| rep.into_result())
            .map_err(|e| {
                ctx.fail(
                    "signature_invalid",
                    ErrorKind::BadRequest,
                    Rc2::FAILEDSignatureError,
                    format!("request signature: {e}"),
                )
            })?;
        let subs: Vec<Vec<u8>> = oem
            .sub_certificates
            .as_ref()
            .map(|s| s.certificate.clone())
            .unwrap_or_default();
        let pcid = self.check_oem(&ctx, &oem.certificate, &subs).await?;
        let mut contracts = self.contracts_of(&ctx, &pcid).await?;
        // Prioritised EMAIDs first (the request's, then OCPP 2.1's), the rest in delivery order.
        let mut prio: Vec<String> = r
            .prioritized_emaids
            .as_ref()
            .map(|l| l.emaid.clone())
            .unwrap_or_default();
        prio.extend(req.prioritized_emaids.iter().cloned());
        let prio: Vec<String> = prio
            .iter()
            .filter_map(|e| normalize_emaid(e).ok())
            .collect();
        contracts.sort_by_key(|c| {
            prio.iter()
                .position(|e| *e == c.emaid)
                .unwrap_or(usize::MAX)
        });
        // One chain per request: the first contract without a valid -20 certificate yet; the
        // car asks again while RemainingContractCertificateChains > 0.
        let now = self.now();
        let mut pending = Vec::new();
        for c in &contracts {
            let certs = self.inner.store.contract_certificates(&c.id).await?;
            // A pre-generated certificate not delivered yet does not count as the car's.
            let waiting = self
                .inner
                .store
                .get_pregenerated(&c.id, "iso15118-20")
                .await?
                .map(|p| p.serial_hex);
            let has = certs.iter().any(|x| {
                x.profile == "contract-20"
                    && x.status == CertStatus::Valid
                    && x.not_after > now
                    && waiting.as_deref() != Some(x.serial_hex.as_str())
            });
            if !has {
                pending.push(c.clone());
            }
        }
        let max = usize::from(
            req.maximum_chains
                .unwrap_or(r.maximum_contract_certificate_chains)
                .max(1),
        );
        let (contract, remaining) = match pending.first() {
            Some(c) => (
                c.clone(),
                u8::try_from(pending.len().min(max) - 1).unwrap_or(u8::MAX),
            ),
            None => (contracts[0].clone(), 0),
        };
        let listed = listed_roots(&r.list_of_root_certificate_ids);
        let cps = self.cps_chain(&ctx, Standard::Iso20, Some(&listed)).await?;
        if let Some(out) = self
            .pregenerated_answer20(&ctx, &contract, &oem.certificate, remaining)
            .await?
        {
            return Ok(out);
        }
        let recipient = keyenc::recipient_public_key(&oem.certificate).map_err(|e| {
            ctx.fail(
                "oem_certificate_invalid",
                ErrorKind::BadRequest,
                Rc2::FAILEDCertChainError,
                format!("OEM provisioning key: {e}"),
            )
        })?;
        self.issue_iso20(
            p, ctx, contract, cps, &recipient, &pcid, &req.exi, remaining, None,
        )
        .await
    }

    /// Issue a contract certificate under `contract` and answer with an ISO 15118-20
    /// `CertificateInstallationRes` for `recipient` (the OEM provisioning key of `pcid`); kept
    /// as pre-generated data when `pregenerate` names that OEM certificate.
    #[allow(clippy::too_many_arguments)]
    async fn issue_iso20(
        &self,
        p: &Principal,
        ctx: Ctx,
        contract: ContractRecord,
        cps: CpsChain,
        recipient: &[u8],
        pcid: &str,
        raw: &[u8],
        remaining: u8,
        pregenerate: Option<String>,
    ) -> Result<Provisioned, RaError> {
        use iso15118::iso20::common as c20;
        use iso15118::iso20::messages as m20;
        let now = self.now();
        let ca = self.ca()?;
        let (checked, days, issuer) = self.contract_subject(&contract, "contract-20").await?;
        let (prepared, key) = ca
            .prepare_leaf_with_generated_key(checked, issuer.as_deref(), days, &p.actor())
            .await?;
        let ski = prepared
            .cert
            .ski()
            .ok_or_else(|| RaError::Internal("contract certificate without SKI".into()))?;
        let aad = keyenc::iso20_aad(pcid, &ski);
        let env = keyenc::iso20_encrypt(recipient, &key.scalar, &aad)
            .map_err(|e| RaError::Internal(format!("contract key encryption: {e}")))?;
        drop(key);
        let contract_subs: Vec<Vec<u8>> = prepared
            .chain
            .iter()
            .filter(|c| !c.is_self_issued())
            .map(|c| c.der.clone())
            .collect();
        let res = m20::CertificateInstallationRes {
            header: c20::MessageHeader {
                session_id: ctx.session_id.clone(),
                time_stamp: u64::try_from(now).unwrap_or(0),
                signature: None,
            },
            response_code: c20::ResponseCode::OK,
            evse_processing: c20::Processing::Finished,
            cp_s_certificate_chain: m20::CertificateChain {
                certificate: cps.signer.cert.der.clone(),
                sub_certificates: Some(m20::SubCertificates {
                    certificate: cps.subs.clone(),
                }),
            },
            signed_installation_data: m20::SignedInstallationData {
                id: "ID1".into(),
                contract_certificate_chain: m20::ContractCertificateChain {
                    certificate: prepared.record.der.clone(),
                    sub_certificates: m20::SubCertificates {
                        certificate: contract_subs,
                    },
                },
                ec_dh_curve: m20::EcdhCurve::SECP521,
                dh_public_key: env.dh_public_key,
                choice: m20::SignedInstallationDataChoice::SECP521EncryptedPrivateKey(
                    env.encrypted_private_key,
                ),
            },
            remaining_contract_certificate_chains: remaining,
        };
        let mut msg = iso20::Message::CertificateInstallationRes(res);
        let signer = cps.signer;
        let msg = tokio::task::spawn_blocking(move || {
            msg.sign(Suite::EcdsaP521Sha512, &signer).map(|()| msg)
        })
        .await
        .map_err(|e| RaError::Internal(e.to_string()))?
        .map_err(|e| RaError::Internal(format!("signing the answer: {e}")))?;
        let exi = msg
            .encode()
            .map_err(|e| RaError::Internal(format!("encoding the answer: {e}")))?;
        self.deliver(ctx, contract, prepared, raw, exi, remaining, pregenerate)
            .await
    }

    /// The contract's pre-generated ISO 15118-20 answer for this car's OEM key, if there is one
    /// whose certificate is still valid: delivered once, with the live SessionID, a fresh
    /// TimeStamp and the live RemainingContractCertificateChains — all in the header or outside
    /// `SignedInstallationData`, so the CPS signature stays valid. No HSM call.
    async fn pregenerated_answer20(
        &self,
        ctx: &Ctx,
        contract: &ContractRecord,
        oem_der: &[u8],
        remaining: u8,
    ) -> Result<Option<Provisioned>, RaError> {
        let Some(pre) = self
            .inner
            .store
            .get_pregenerated(&contract.id, "iso15118-20")
            .await?
        else {
            return Ok(None);
        };
        if (!pre.oem_sha256.is_empty() && pre.oem_sha256 != sha256_hex(oem_der))
            || pre.not_after <= self.now()
        {
            return Ok(None);
        }
        let cert = self
            .inner
            .store
            .get_cert(&pre.issuer_id, &pre.serial_hex)
            .await?;
        if cert.as_ref().is_some_and(|c| c.status != CertStatus::Valid) {
            return Ok(None);
        }
        let Ok(Message::Iso20(iso20::Message::CertificateInstallationRes(mut res))) =
            Message::decode(&pre.exi, Some(Schema::Iso20))
        else {
            return Err(RaError::Internal(
                "stored -20 answer does not decode".into(),
            ));
        };
        res.header.session_id = ctx.session_id.clone();
        res.header.time_stamp = u64::try_from(self.now()).unwrap_or(0);
        res.remaining_contract_certificate_chains = remaining;
        let exi = iso20::Message::CertificateInstallationRes(res)
            .encode()
            .map_err(|e| RaError::Internal(format!("encoding the answer: {e}")))?;
        self.check_size(ctx, exi.len())?;
        // Delivered once: a concurrent request that took it first wins; this one issues anew.
        if !self
            .inner
            .store
            .take_pregenerated(&contract.id, "iso15118-20", &pre.serial_hex)
            .await?
        {
            return Ok(None);
        }
        if cert.is_some() {
            self.supersede_others(contract, "contract-20", (&pre.issuer_id, &pre.serial_hex))
                .await?;
        }
        tracing::info!(contract = %contract.id, serial = %pre.serial_hex, exi_bytes = exi.len(), "pre-generated -20 contract data delivered");
        Ok(Some(Provisioned {
            exi,
            emaid: contract.emaid.clone(),
            kind: ProvisioningKind::Install,
            schema: Schema::Iso20,
            remaining,
            serial_hex: pre.serial_hex,
            certificate: cert,
            contract_id: contract.id.clone(),
        }))
    }
}

/// Contract data an MO made with its own PKI (Hubject `PUT /v1/cps/contractData/signed`), DER
/// and raw bytes.
#[derive(Debug, Clone, Default)]
pub struct OwnContractData {
    /// The contract certificate.
    pub contract_certificate: Vec<u8>,
    /// MO sub-CA 1.
    pub sub_ca1: Option<Vec<u8>>,
    /// MO sub-CA 2 (issuer of the contract certificate).
    pub sub_ca2: Option<Vec<u8>>,
    /// IV ‖ ciphertext, 48 bytes.
    pub encrypted_private_key: Vec<u8>,
    /// The ephemeral ECDH public key, 65 bytes.
    pub dh_public_key: Vec<u8>,
    /// The vehicle.
    pub pcid: String,
    /// `xsdMsgDefNamespace`.
    pub namespace: String,
}

/// A pre-generation request (Hubject `PUT /v1/cps/generate/signedContractData`).
#[derive(Debug, Clone, Default)]
pub struct Pregenerate {
    /// EMAID.
    pub emaid: String,
    /// PCID of the vehicle (its chain must be in the pool).
    pub pcid: String,
    /// Contract start, when a contract is created (Unix seconds).
    pub valid_from: Option<i64>,
    /// Contract end, when a contract is created (Unix seconds).
    pub valid_to: Option<i64>,
    /// `xsdMsgDefNamespace`.
    pub namespace: String,
    /// The request body, kept with the certificate it produced.
    pub body: Vec<u8>,
    /// `Idempotency-Key`, bound to the caller and `body` (see [`Ra::provision`]).
    pub idempotency_key: Option<String>,
}

/// The answer a keyed provisioning delivered, kept with its key (`idempotency_keys.response`)
/// for 24 h so that a retry gets the same bytes.
#[derive(serde::Serialize, serde::Deserialize)]
struct KeptAnswer {
    /// The EXI answer, hex.
    exi: String,
    emaid: String,
    kind: String,
    schema: String,
    remaining: u8,
    contract_id: String,
}

fn kept_answer(
    ctx: &Ctx,
    contract: &ContractRecord,
    exi: &[u8],
    remaining: u8,
) -> Result<Vec<u8>, RaError> {
    serde_json::to_vec(&KeptAnswer {
        exi: hex::encode(exi),
        emaid: contract.emaid.clone(),
        kind: ctx.kind.as_str().into(),
        schema: match ctx.schema {
            Schema::Iso2 => "iso15118-2".into(),
            Schema::Iso20 => "iso15118-20".into(),
        },
        remaining,
        contract_id: contract.id.clone(),
    })
    .map_err(|e| RaError::Internal(format!("keeping the answer: {e}")))
}

/// The `O` of the issuing CA (first of `chain`): what contract certificates without an
/// organization of their own carry.
fn issuer_organization(chain: &[ParsedCert]) -> String {
    chain
        .first()
        .and_then(|c| {
            crate::x509::name::values(c.tbs().subject().as_ref(), crate::x509::name::OID_O)
                .into_iter()
                .next()
        })
        .unwrap_or_else(|| "pnc-pki".to_string())
}

/// The subject of a contract certificate, `O` and `CN` each one attribute (never parsed from
/// text: an organization with a comma or `CN=` stays a value), checked against `prof`.
pub(super) fn contract_subject_of(
    prof: &crate::policy::profile::Profile,
    organization: &str,
    emaid: &str,
) -> Result<subject::CheckedSubject, RaError> {
    let name = crate::x509::name::build(&[
        ("O".to_string(), organization.to_string()),
        ("CN".to_string(), emaid.to_string()),
    ])
    .map_err(|e| RaError::bad("bad_organization", e.to_string()))?;
    Ok(subject::check_subject(prof, &name)?)
}

/// Whether a declared namespace is ISO 15118-2's.
fn is_iso2_namespace(ns: &str) -> bool {
    ns.is_empty() || ns.starts_with("urn:iso:15118:2:")
}

/// OPCP's `urn:iso:15118:20:2022:MsgDef`, OPNC's `…:2020:…` and the schema's own
/// `urn:iso:std:iso:15118:-20:…`.
fn is_iso20_namespace(ns: &str) -> bool {
    ns.starts_with("urn:iso:15118:20:") || ns.starts_with("urn:iso:std:iso:15118:-20:")
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b))
}

fn check_action(ctx: &Ctx, action: Option<ProvisioningKind>) -> Result<(), RaError> {
    match action {
        Some(a) if a != ctx.kind => Err(ctx.fail(
            "action_mismatch",
            ErrorKind::BadRequest,
            Rc2::FAILED,
            format!(
                "action is {} but the EXI request is a Certificate{}Req",
                a.as_str(),
                match ctx.kind {
                    ProvisioningKind::Install => "Installation",
                    ProvisioningKind::Update => "Update",
                }
            ),
        )),
        _ => Ok(()),
    }
}

fn verify_signature_iso2(
    ctx: &Ctx,
    m: &iso2::V2gMessage,
    signer_der: &[u8],
) -> Result<(), RaError> {
    let key = VerifyingKey::from_certificate(signer_der).map_err(|e| {
        ctx.fail(
            "certificate_invalid",
            ErrorKind::BadRequest,
            Rc2::FAILEDCertChainError,
            format!("signer certificate: {e}"),
        )
    })?;
    m.verify(&key)
        .and_then(|rep| rep.into_result())
        .map_err(|e| {
            ctx.fail(
                "signature_invalid",
                ErrorKind::BadRequest,
                Rc2::FAILEDSignatureError,
                format!("request signature: {e}"),
            )
        })
}

/// The EV's root list as (issuer DN text, serial magnitude); negative serials name nothing.
fn listed_roots(ids: &[iso2::X509IssuerSerial]) -> Vec<(String, Vec<u8>)> {
    ids.iter()
        .filter(|r| !r.serial_number.is_negative())
        .map(|r| (r.issuer_name.clone(), r.serial_number.magnitude().to_vec()))
        .collect()
}
