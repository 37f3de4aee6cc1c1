//! ISO 15118-2 (2013) certificate messages: `V2G_Message` documents and the
//! fragments the XML signatures are computed over.
//!
//! Responses and most types come from the `iso15118` crate (re-exported as
//! [`schema`]); the two request bodies are ours because they carry
//! `X509SerialNumber`, which must be a big integer.

use iso15118::exi::seq::{SIMPLE_WIDTH, SeqReader, SeqWriter, Shape, Step};
use iso15118::exi::{Decoder, Encoder, ExiError, ExiResult, Header, Lengths, ValueCtx};
pub use iso15118::iso2 as schema;

use super::bigint::BigInteger;
use super::error::{CodecError, Result};
use super::{MAX_INPUT_LEN, check_input, encode_vec, run_decoder};

/// Document event code width of the -2 schema set.
pub const DOCUMENT_WIDTH: u32 = 7;
/// Document event code of `V2G_Message`.
pub const V2G_MESSAGE_CODE: u64 = 76;
/// Body choice width.
const BODY_WIDTH: u32 = 6;
const BODY_ELEMENT_CODE: u64 = 2;
const BODY_INSTALL_REQ: u64 = 5;
const BODY_INSTALL_RES: u64 = 6;
const BODY_UPDATE_REQ: u64 = 7;
const BODY_UPDATE_RES: u64 = 8;
const BODY_EE: u64 = 35;

/// Fragment grammar event code width.
pub const FRAGMENT_WIDTH: u32 = 8;
/// Fragment codes (elements of the -2 schema set sorted by local name, namespace).
pub const FRAG_CERTIFICATE_INSTALLATION_REQ: u64 = 15;
/// `CertificateUpdateReq` fragment code.
pub const FRAG_CERTIFICATE_UPDATE_REQ: u64 = 17;
/// `ContractSignatureCertChain` fragment code.
pub const FRAG_CONTRACT_SIGNATURE_CERT_CHAIN: u64 = 33;
/// `ContractSignatureEncryptedPrivateKey` fragment code.
pub const FRAG_CONTRACT_SIGNATURE_ENCRYPTED_PRIVATE_KEY: u64 = 34;
/// `DHpublickey` fragment code.
pub const FRAG_DH_PUBLICKEY: u64 = 45;
/// `eMAID` fragment code.
pub const FRAG_EMAID: u64 = 236;
/// End of fragment.
pub const FRAG_END: u64 = 244;
/// Element-fragment grammar width for eMAID's first state (attributes + elements + CH).
const EMAID_EF0_WIDTH: u32 = 9;
/// `AT({MsgDataTypes}Id)` in the element fragment grammar.
const EMAID_AT_ID: u64 = 4;
/// `CH [untyped]` in the element fragment grammar.
const EMAID_CH: u64 = 256;

// Value-table partitions, identical to the crate's so that hits resolve alike.
const CTX_BODY_ID: ValueCtx = ValueCtx(106);
const CTX_X509_ISSUER_NAME: ValueCtx = ValueCtx(202);
const CTX_EMAID: ValueCtx = ValueCtx(211);
const CTX_DT_ID: ValueCtx = ValueCtx(107);

const ID_LEN: Lengths = Lengths::max(64);
const ISSUER_NAME_LEN: Lengths = Lengths::max(1024);
const CERT_LEN: Lengths = Lengths::max(800);
const EMAID_LEN: Lengths = Lengths::new(14, 15);

/// `X509IssuerSerialType` with a big-integer serial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct X509IssuerSerial {
    /// Issuer DN as a string (RFC 4514 style as sent by the EV).
    pub issuer_name: String,
    /// Serial number (arbitrary size).
    pub serial_number: BigInteger,
}

/// `CertificateInstallationReqType`.
#[derive(Debug, Clone, PartialEq)]
pub struct CertificateInstallationReq {
    /// `{MsgBody}Id` attribute.
    pub id: String,
    /// DER of the OEM provisioning certificate.
    pub oem_provisioning_cert: Vec<u8>,
    /// `ListOfRootCertificateIDs` (1..20).
    pub list_of_root_certificate_ids: Vec<X509IssuerSerial>,
}

/// `CertificateUpdateReqType`.
#[derive(Debug, Clone, PartialEq)]
pub struct CertificateUpdateReq {
    /// `{MsgBody}Id` attribute.
    pub id: String,
    /// Current contract certificate chain.
    pub contract_signature_cert_chain: schema::CertificateChain,
    /// Plain eMAID string (14..15 chars).
    pub emaid: String,
    /// `ListOfRootCertificateIDs` (1..20).
    pub list_of_root_certificate_ids: Vec<X509IssuerSerial>,
}

/// The supported bodies.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)]
pub enum Body {
    /// `CertificateInstallationReq`.
    CertificateInstallationReq(CertificateInstallationReq),
    /// `CertificateInstallationRes`.
    CertificateInstallationRes(schema::CertificateInstallationRes),
    /// `CertificateUpdateReq`.
    CertificateUpdateReq(CertificateUpdateReq),
    /// `CertificateUpdateRes`.
    CertificateUpdateRes(schema::CertificateUpdateRes),
}

impl Body {
    /// Element name of the body.
    pub fn name(&self) -> &'static str {
        match self {
            Self::CertificateInstallationReq(_) => "CertificateInstallationReq",
            Self::CertificateInstallationRes(_) => "CertificateInstallationRes",
            Self::CertificateUpdateReq(_) => "CertificateUpdateReq",
            Self::CertificateUpdateRes(_) => "CertificateUpdateRes",
        }
    }
}

/// An ISO 15118-2 `V2G_Message` carrying a certificate message.
#[derive(Debug, Clone, PartialEq)]
pub struct V2gMessage {
    /// `Header` (SessionID, Notification, Signature).
    pub header: schema::MessageHeader,
    /// `Body`.
    pub body: Body,
}

// ---------------------------------------------------------------------------
// Grammars of our own types (event-code arithmetic identical to the schema's)
// ---------------------------------------------------------------------------

const X509_SHAPE: Shape = Shape {
    prod_before: &[0, 1, 2],
    width: &[1, 1, 1],
    repeat_width: &[0, 0],
    min: &[1, 1],
    max: &[1, 1],
};
const ROOT_LIST_SHAPE: Shape = Shape {
    prod_before: &[0, 1],
    width: &[1, 1],
    repeat_width: &[2],
    min: &[1],
    max: &[20],
};
const INSTALL_REQ_SHAPE: Shape = Shape {
    prod_before: &[0, 1, 2, 3],
    width: &[1, 1, 1, 1],
    repeat_width: &[0, 0, 0],
    min: &[1, 1, 1],
    max: &[1, 1, 1],
};
const UPDATE_REQ_SHAPE: Shape = Shape {
    prod_before: &[0, 1, 2, 3, 4],
    width: &[1, 1, 1, 1, 1],
    repeat_width: &[0, 0, 0, 0],
    min: &[1, 1, 1, 1],
    max: &[1, 1, 1, 1],
};

/// Maximum RootCertificateIDs per list (schema maxOccurs).
pub const MAX_ROOT_CERTIFICATE_IDS: usize = 20;

pub(crate) fn encode_x509(
    v: &X509IssuerSerial,
    e: &mut Encoder<'_>,
    name_ctx: ValueCtx,
) -> ExiResult<()> {
    e.enter()?;
    let mut w = SeqWriter::new(X509_SHAPE);
    w.start(e, 0, 0)?;
    e.event(0, SIMPLE_WIDTH)?;
    e.string(name_ctx, &v.issuer_name, ISSUER_NAME_LEN)?;
    e.event(0, SIMPLE_WIDTH)?;
    w.finish(0, 1);
    w.start(e, 1, 0)?;
    e.event(0, SIMPLE_WIDTH)?;
    v.serial_number.encode(e)?;
    e.event(0, SIMPLE_WIDTH)?;
    w.finish(1, 1);
    w.end(e)?;
    e.leave();
    Ok(())
}

pub(crate) fn decode_x509(d: &mut Decoder<'_>, name_ctx: ValueCtx) -> ExiResult<X509IssuerSerial> {
    d.enter()?;
    let mut r = SeqReader::new(X509_SHAPE);
    let mut name = None;
    let mut serial = None;
    loop {
        match r.next(d)? {
            Step::End => break,
            Step::Item { index: 0, .. } => {
                d.expect_event(0, SIMPLE_WIDTH)?;
                name = Some(d.string(name_ctx, ISSUER_NAME_LEN)?);
                d.expect_event(0, SIMPLE_WIDTH)?;
            }
            Step::Item { index: 1, .. } => {
                d.expect_event(0, SIMPLE_WIDTH)?;
                serial = Some(BigInteger::decode(d)?);
                d.expect_event(0, SIMPLE_WIDTH)?;
            }
            Step::Item { .. } => return Err(ExiError::UnknownEventCode),
        }
    }
    d.leave();
    Ok(X509IssuerSerial {
        issuer_name: name.ok_or(ExiError::MissingElement)?,
        serial_number: serial.ok_or(ExiError::MissingElement)?,
    })
}

pub(crate) fn encode_root_list(
    list: &[X509IssuerSerial],
    e: &mut Encoder<'_>,
    name_ctx: ValueCtx,
) -> ExiResult<()> {
    if list.is_empty() || list.len() > MAX_ROOT_CERTIFICATE_IDS {
        return Err(ExiError::ValueOutOfRange);
    }
    e.enter()?;
    let mut w = SeqWriter::new(ROOT_LIST_SHAPE);
    for (c, item) in list.iter().enumerate() {
        w.start(e, 0, c as u32)?;
        encode_x509(item, e, name_ctx)?;
    }
    w.finish(0, list.len() as u32);
    w.end(e)?;
    e.leave();
    Ok(())
}

pub(crate) fn decode_root_list(
    d: &mut Decoder<'_>,
    name_ctx: ValueCtx,
) -> ExiResult<Vec<X509IssuerSerial>> {
    d.enter()?;
    let mut r = SeqReader::new(ROOT_LIST_SHAPE);
    let mut out = Vec::new();
    loop {
        match r.next(d)? {
            Step::End => break,
            Step::Item { index: 0, .. } => {
                if out.len() >= MAX_ROOT_CERTIFICATE_IDS {
                    return Err(ExiError::ValueOutOfRange);
                }
                out.push(decode_x509(d, name_ctx)?);
            }
            Step::Item { .. } => return Err(ExiError::UnknownEventCode),
        }
    }
    d.leave();
    if out.is_empty() {
        return Err(ExiError::MissingElement);
    }
    Ok(out)
}

impl CertificateInstallationReq {
    /// Writes the element content and EE (the parent writes SE).
    pub fn encode_body(&self, e: &mut Encoder<'_>) -> ExiResult<()> {
        e.enter()?;
        let mut w = SeqWriter::new(INSTALL_REQ_SHAPE);
        w.start(e, 0, 0)?;
        e.string(CTX_BODY_ID, &self.id, ID_LEN)?;
        w.finish(0, 1);
        w.start(e, 1, 0)?;
        e.event(0, SIMPLE_WIDTH)?;
        e.binary(&self.oem_provisioning_cert, CERT_LEN)?;
        e.event(0, SIMPLE_WIDTH)?;
        w.finish(1, 1);
        w.start(e, 2, 0)?;
        encode_root_list(&self.list_of_root_certificate_ids, e, CTX_X509_ISSUER_NAME)?;
        w.finish(2, 1);
        w.end(e)?;
        e.leave();
        Ok(())
    }

    /// Reads the element content up to and including EE.
    pub fn decode_body(d: &mut Decoder<'_>) -> ExiResult<Self> {
        d.enter()?;
        let mut r = SeqReader::new(INSTALL_REQ_SHAPE);
        let (mut id, mut cert, mut list) = (None, None, None);
        loop {
            match r.next(d)? {
                Step::End => break,
                Step::Item { index: 0, .. } => id = Some(d.string(CTX_BODY_ID, ID_LEN)?),
                Step::Item { index: 1, .. } => {
                    d.expect_event(0, SIMPLE_WIDTH)?;
                    cert = Some(d.binary(CERT_LEN)?);
                    d.expect_event(0, SIMPLE_WIDTH)?;
                }
                Step::Item { index: 2, .. } => {
                    list = Some(decode_root_list(d, CTX_X509_ISSUER_NAME)?)
                }
                Step::Item { .. } => return Err(ExiError::UnknownEventCode),
            }
        }
        d.leave();
        Ok(Self {
            id: id.ok_or(ExiError::MissingElement)?,
            oem_provisioning_cert: cert.ok_or(ExiError::MissingElement)?,
            list_of_root_certificate_ids: list.ok_or(ExiError::MissingElement)?,
        })
    }

    /// The signed fragment (fragment grammar code 15).
    pub fn to_fragment(&self) -> Result<Vec<u8>> {
        fragment(FRAG_CERTIFICATE_INSTALLATION_REQ, |e| self.encode_body(e))
    }
}

impl CertificateUpdateReq {
    /// Writes the element content and EE (the parent writes SE).
    pub fn encode_body(&self, e: &mut Encoder<'_>) -> ExiResult<()> {
        e.enter()?;
        let mut w = SeqWriter::new(UPDATE_REQ_SHAPE);
        w.start(e, 0, 0)?;
        e.string(CTX_BODY_ID, &self.id, ID_LEN)?;
        w.finish(0, 1);
        w.start(e, 1, 0)?;
        self.contract_signature_cert_chain.encode_body(e)?;
        w.finish(1, 1);
        w.start(e, 2, 0)?;
        e.event(0, SIMPLE_WIDTH)?;
        e.string(CTX_EMAID, &self.emaid, EMAID_LEN)?;
        e.event(0, SIMPLE_WIDTH)?;
        w.finish(2, 1);
        w.start(e, 3, 0)?;
        encode_root_list(&self.list_of_root_certificate_ids, e, CTX_X509_ISSUER_NAME)?;
        w.finish(3, 1);
        w.end(e)?;
        e.leave();
        Ok(())
    }

    /// Reads the element content up to and including EE.
    pub fn decode_body(d: &mut Decoder<'_>) -> ExiResult<Self> {
        d.enter()?;
        let mut r = SeqReader::new(UPDATE_REQ_SHAPE);
        let (mut id, mut chain, mut emaid, mut list) = (None, None, None, None);
        loop {
            match r.next(d)? {
                Step::End => break,
                Step::Item { index: 0, .. } => id = Some(d.string(CTX_BODY_ID, ID_LEN)?),
                Step::Item { index: 1, .. } => {
                    chain = Some(schema::CertificateChain::decode_body(d)?)
                }
                Step::Item { index: 2, .. } => {
                    d.expect_event(0, SIMPLE_WIDTH)?;
                    emaid = Some(d.string(CTX_EMAID, EMAID_LEN)?);
                    d.expect_event(0, SIMPLE_WIDTH)?;
                }
                Step::Item { index: 3, .. } => {
                    list = Some(decode_root_list(d, CTX_X509_ISSUER_NAME)?)
                }
                Step::Item { .. } => return Err(ExiError::UnknownEventCode),
            }
        }
        d.leave();
        Ok(Self {
            id: id.ok_or(ExiError::MissingElement)?,
            contract_signature_cert_chain: chain.ok_or(ExiError::MissingElement)?,
            emaid: emaid.ok_or(ExiError::MissingElement)?,
            list_of_root_certificate_ids: list.ok_or(ExiError::MissingElement)?,
        })
    }

    /// The signed fragment (fragment grammar code 17).
    pub fn to_fragment(&self) -> Result<Vec<u8>> {
        fragment(FRAG_CERTIFICATE_UPDATE_REQ, |e| self.encode_body(e))
    }
}

// ---------------------------------------------------------------------------
// Document
// ---------------------------------------------------------------------------

impl V2gMessage {
    /// Decodes a complete EXI document (header byte 0x80 included).
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        check_input(bytes)?;
        run_decoder(bytes, |d| {
            d.read_header()?;
            d.expect_event(V2G_MESSAGE_CODE, DOCUMENT_WIDTH)?;
            d.enter()?;
            d.expect_event(0, 1)?; // SE(Header)
            let header = schema::MessageHeader::decode_body(d)?;
            d.expect_event(0, 1)?; // SE(Body)
            d.enter()?;
            let code = d.event(BODY_WIDTH)?;
            let body = match code {
                BODY_INSTALL_REQ => {
                    Body::CertificateInstallationReq(CertificateInstallationReq::decode_body(d)?)
                }
                BODY_INSTALL_RES => Body::CertificateInstallationRes(
                    schema::CertificateInstallationRes::decode_body(d)?,
                ),
                BODY_UPDATE_REQ => {
                    Body::CertificateUpdateReq(CertificateUpdateReq::decode_body(d)?)
                }
                BODY_UPDATE_RES => {
                    Body::CertificateUpdateRes(schema::CertificateUpdateRes::decode_body(d)?)
                }
                BODY_ELEMENT_CODE => match super::legacy::read_body_element(d)? {
                    Ok(b) => b,
                    Err(e) => return Ok(Err(e)),
                },
                other => return Ok(Err(unsupported_body(other))),
            };
            d.expect_event(0, 1)?; // EE(Body)
            d.leave();
            d.expect_event(0, 1)?; // EE(V2G_Message)
            d.leave();
            Ok(Ok(V2gMessage { header, body }))
        })?
    }

    /// Encodes to a complete EXI document (never uses string-table hits).
    pub fn encode(&self) -> Result<Vec<u8>> {
        encode_vec(|e| {
            e.write_header(Header::ISO15118)?;
            e.event(V2G_MESSAGE_CODE, DOCUMENT_WIDTH)?;
            e.enter()?;
            e.event(0, 1)?;
            self.header.encode_body(e)?;
            e.event(0, 1)?;
            e.enter()?;
            {
                {
                    match &self.body {
                        Body::CertificateInstallationReq(b) => {
                            e.event(BODY_INSTALL_REQ, BODY_WIDTH)?;
                            b.encode_body(e)?;
                        }
                        Body::CertificateInstallationRes(b) => {
                            e.event(BODY_INSTALL_RES, BODY_WIDTH)?;
                            b.encode_body(e)?;
                        }
                        Body::CertificateUpdateReq(b) => {
                            e.event(BODY_UPDATE_REQ, BODY_WIDTH)?;
                            b.encode_body(e)?;
                        }
                        Body::CertificateUpdateRes(b) => {
                            e.event(BODY_UPDATE_RES, BODY_WIDTH)?;
                            b.encode_body(e)?;
                        }
                    }
                }
            }
            e.event(0, 1)?; // EE(Body)
            e.leave();
            e.event(0, 1)?; // EE(V2G_Message)
            e.leave();
            Ok(())
        })
    }

    /// The `(Id, fragment)` pairs of every element this message signs,
    /// in the order of the message (requests: the request element; responses:
    /// ContractSignatureCertChain, EncryptedPrivateKey, DHpublickey, eMAID).
    pub fn signed_fragments(&self) -> Result<Vec<(String, Vec<u8>)>> {
        match &self.body {
            Body::CertificateInstallationReq(r) => Ok(vec![(r.id.clone(), r.to_fragment()?)]),
            Body::CertificateUpdateReq(r) => Ok(vec![(r.id.clone(), r.to_fragment()?)]),
            Body::CertificateInstallationRes(r) => response_fragments(
                &r.contract_signature_cert_chain,
                &r.contract_signature_encrypted_private_key,
                &r.dh_public_key,
                &r.e_maid,
            ),
            Body::CertificateUpdateRes(r) => response_fragments(
                &r.contract_signature_cert_chain,
                &r.contract_signature_encrypted_private_key,
                &r.dh_public_key,
                &r.e_maid,
            ),
        }
    }
}

impl V2gMessage {
    /// Signs the message's signed elements (in message order) with an
    /// ECDSA P-256 key and puts the Signature into the header (replacing any).
    /// Requests: the OEM provisioning / contract key; responses: the CPS leaf key.
    pub fn sign(
        &mut self,
        signer: &dyn super::xmldsig::RawSigner,
    ) -> Result<(), super::xmldsig::SignatureError> {
        self.header.signature = None;
        let frags = self.signed_fragments()?;
        let refs: Vec<(&str, &[u8])> = frags
            .iter()
            .map(|(i, f)| (i.as_str(), f.as_slice()))
            .collect();
        self.header.signature = Some(super::xmldsig::sign(
            super::xmldsig::Suite::EcdsaP256Sha256,
            &refs,
            signer,
        )?);
        Ok(())
    }

    /// Verifies the header signature with `key` (see [`super::xmldsig::verify`]).
    pub fn verify(
        &self,
        key: &super::xmldsig::VerifyingKey,
    ) -> Result<super::xmldsig::VerifyReport, super::xmldsig::SignatureError> {
        let sig = self
            .header
            .signature
            .as_ref()
            .ok_or(super::xmldsig::SignatureError::Missing)?;
        super::xmldsig::verify(sig, &self.signed_fragments()?, key)
    }
}

fn unsupported_body(code: u64) -> CodecError {
    const NAMES: [&str; 35] = [
        "AuthorizationReq",
        "AuthorizationRes",
        "BodyElement",
        "CableCheckReq",
        "CableCheckRes",
        "CertificateInstallationReq",
        "CertificateInstallationRes",
        "CertificateUpdateReq",
        "CertificateUpdateRes",
        "ChargeParameterDiscoveryReq",
        "ChargeParameterDiscoveryRes",
        "ChargingStatusReq",
        "ChargingStatusRes",
        "CurrentDemandReq",
        "CurrentDemandRes",
        "MeteringReceiptReq",
        "MeteringReceiptRes",
        "PaymentDetailsReq",
        "PaymentDetailsRes",
        "PaymentServiceSelectionReq",
        "PaymentServiceSelectionRes",
        "PowerDeliveryReq",
        "PowerDeliveryRes",
        "PreChargeReq",
        "PreChargeRes",
        "ServiceDetailReq",
        "ServiceDetailRes",
        "ServiceDiscoveryReq",
        "ServiceDiscoveryRes",
        "SessionSetupReq",
        "SessionSetupRes",
        "SessionStopReq",
        "SessionStopRes",
        "WeldingDetectionReq",
        "WeldingDetectionRes",
    ];
    match usize::try_from(code).ok().and_then(|i| NAMES.get(i)) {
        Some(n) => CodecError::UnsupportedMessage(format!(
            "ISO 15118-2 body {n} (only CertificateInstallationReq/Res and CertificateUpdateReq/Res are handled)"
        )),
        None if code == BODY_EE => {
            CodecError::UnsupportedMessage("ISO 15118-2 message with an empty Body".into())
        }
        None => CodecError::UnsupportedMessage(format!("ISO 15118-2 body event code {code}")),
    }
}

fn response_fragments(
    chain: &schema::CertificateChain,
    key: &schema::ContractSignatureEncryptedPrivateKey,
    dh: &schema::DiffieHellmanPublickey,
    emaid: &schema::EMAID,
) -> Result<Vec<(String, Vec<u8>)>> {
    let chain_id = chain
        .id
        .clone()
        .ok_or_else(|| CodecError::Invalid("ContractSignatureCertChain has no Id".into()))?;
    Ok(vec![
        (chain_id, contract_signature_cert_chain_fragment(chain)?),
        (key.id.clone(), encrypted_private_key_fragment(key)?),
        (dh.id.clone(), dh_publickey_fragment(dh)?),
        (emaid.id.clone(), emaid_fragment(emaid)?),
    ])
}

// ---------------------------------------------------------------------------
// Fragments
// ---------------------------------------------------------------------------

fn fragment(code: u64, body: impl Fn(&mut Encoder<'_>) -> ExiResult<()>) -> Result<Vec<u8>> {
    encode_vec(|e| {
        e.write_header(Header::ISO15118)?;
        e.event(code, FRAGMENT_WIDTH)?;
        body(e)?;
        e.event(FRAG_END, FRAGMENT_WIDTH)
    })
}

/// `ContractSignatureCertChain` fragment (code 33).
pub fn contract_signature_cert_chain_fragment(chain: &schema::CertificateChain) -> Result<Vec<u8>> {
    fragment(FRAG_CONTRACT_SIGNATURE_CERT_CHAIN, |e| chain.encode_body(e))
}

/// `ContractSignatureEncryptedPrivateKey` fragment (code 34).
pub fn encrypted_private_key_fragment(
    key: &schema::ContractSignatureEncryptedPrivateKey,
) -> Result<Vec<u8>> {
    fragment(FRAG_CONTRACT_SIGNATURE_ENCRYPTED_PRIVATE_KEY, |e| {
        key.encode_body(e)
    })
}

/// `DHpublickey` fragment (code 45).
pub fn dh_publickey_fragment(dh: &schema::DiffieHellmanPublickey) -> Result<Vec<u8>> {
    fragment(FRAG_DH_PUBLICKEY, |e| dh.encode_body(e))
}

/// `eMAID` fragment with the schema-informed *element fragment grammar*
/// (EXI 1.0 §8.5.3), as OpenV2G ≥ 0.9.4, EXIficient, RISE-V2G and Hubject do.
pub fn emaid_fragment(emaid: &schema::EMAID) -> Result<Vec<u8>> {
    if !EMAID_LEN.admits(emaid.value.chars().count()) {
        return Err(CodecError::Invalid(format!(
            "eMAID length {}",
            emaid.value.len()
        )));
    }
    encode_vec(|e| {
        e.write_header(Header::ISO15118)?;
        e.event(FRAG_EMAID, FRAGMENT_WIDTH)?;
        e.event(EMAID_AT_ID, EMAID_EF0_WIDTH)?;
        e.string(CTX_DT_ID, &emaid.id, ID_LEN)?;
        e.event(EMAID_CH, EMAID_EF0_WIDTH)?;
        e.string(CTX_EMAID, &emaid.value, EMAID_LEN)?;
        e.event(FRAG_END, FRAGMENT_WIDTH)?; // EE (ElementFragment_2)
        e.event(FRAG_END, FRAGMENT_WIDTH) // ED
    })
}

/// A decoded -2 fragment.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)]
pub enum Fragment {
    /// Code 15.
    CertificateInstallationReq(CertificateInstallationReq),
    /// Code 17.
    CertificateUpdateReq(CertificateUpdateReq),
    /// Code 33.
    ContractSignatureCertChain(schema::CertificateChain),
    /// Code 34.
    ContractSignatureEncryptedPrivateKey(schema::ContractSignatureEncryptedPrivateKey),
    /// Code 45.
    DHpublickey(schema::DiffieHellmanPublickey),
    /// Code 236 (element fragment grammar).
    EMAID(schema::EMAID),
}

impl Fragment {
    /// Decodes one of the signed-element fragments.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        check_input(bytes)?;
        run_decoder(bytes, |d| {
            d.read_header()?;
            let code = d.event(FRAGMENT_WIDTH)?;
            let frag = match code {
                FRAG_CERTIFICATE_INSTALLATION_REQ => Fragment::CertificateInstallationReq(
                    CertificateInstallationReq::decode_body(d)?,
                ),
                FRAG_CERTIFICATE_UPDATE_REQ => {
                    Fragment::CertificateUpdateReq(CertificateUpdateReq::decode_body(d)?)
                }
                FRAG_CONTRACT_SIGNATURE_CERT_CHAIN => {
                    Fragment::ContractSignatureCertChain(schema::CertificateChain::decode_body(d)?)
                }
                FRAG_CONTRACT_SIGNATURE_ENCRYPTED_PRIVATE_KEY => {
                    Fragment::ContractSignatureEncryptedPrivateKey(
                        schema::ContractSignatureEncryptedPrivateKey::decode_body(d)?,
                    )
                }
                FRAG_DH_PUBLICKEY => {
                    Fragment::DHpublickey(schema::DiffieHellmanPublickey::decode_body(d)?)
                }
                FRAG_EMAID => {
                    d.expect_event(EMAID_AT_ID, EMAID_EF0_WIDTH)?;
                    let id = d.string(CTX_DT_ID, ID_LEN)?;
                    d.expect_event(EMAID_CH, EMAID_EF0_WIDTH)?;
                    let value = d.string(CTX_EMAID, EMAID_LEN)?;
                    d.expect_event(FRAG_END, FRAGMENT_WIDTH)?;
                    Fragment::EMAID(schema::EMAID { id, value })
                }
                other => {
                    return Ok(Err(CodecError::UnsupportedMessage(format!(
                        "ISO 15118-2 fragment event code {other}"
                    ))));
                }
            };
            d.expect_event(FRAG_END, FRAGMENT_WIDTH)?;
            Ok(Ok(frag))
        })?
    }

    /// Re-encodes the fragment.
    pub fn encode(&self) -> Result<Vec<u8>> {
        match self {
            Self::CertificateInstallationReq(r) => r.to_fragment(),
            Self::CertificateUpdateReq(r) => r.to_fragment(),
            Self::ContractSignatureCertChain(c) => contract_signature_cert_chain_fragment(c),
            Self::ContractSignatureEncryptedPrivateKey(k) => encrypted_private_key_fragment(k),
            Self::DHpublickey(k) => dh_publickey_fragment(k),
            Self::EMAID(m) => emaid_fragment(m),
        }
    }
}

/// Largest accepted input for this module.
pub const MAX_LEN: usize = MAX_INPUT_LEN;
