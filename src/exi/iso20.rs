//! ISO 15118-20 CommonMessages certificate installation documents and
//! fragments.

use iso15118::exi::seq::{SIMPLE_WIDTH, SeqReader, SeqWriter, Shape, Step};
use iso15118::exi::{Decoder, Encoder, ExiError, ExiResult, Header, ValueCtx};
pub use iso15118::iso20::common;
pub use iso15118::iso20::messages as schema;

use super::error::{CodecError, Result};
use super::iso2::{X509IssuerSerial, decode_root_list, encode_root_list};
use super::{check_input, encode_vec, run_decoder};

/// Document event-code width of the CommonMessages schema set.
pub const DOCUMENT_WIDTH: u32 = 6;
/// Document code of `CertificateInstallationReq`.
pub const INSTALL_REQ_CODE: u64 = 7;
/// Document code of `CertificateInstallationRes`.
pub const INSTALL_RES_CODE: u64 = 8;
/// Fragment grammar width.
pub const FRAGMENT_WIDTH: u32 = 9;
/// Fragment code of `CertificateInstallationReq`.
pub const FRAG_CERTIFICATE_INSTALLATION_REQ: u64 = 27;
/// Fragment code of `OEMProvisioningCertificateChain`.
pub const FRAG_OEM_PROVISIONING_CERTIFICATE_CHAIN: u64 = 128;
/// Fragment code of `SignedInstallationData`.
pub const FRAG_SIGNED_INSTALLATION_DATA: u64 = 231;
/// End of fragment.
pub const FRAG_END: u64 = 282;

const CTX_X509_ISSUER_NAME: ValueCtx = ValueCtx(65);

const INSTALL_REQ_SHAPE: Shape = Shape {
    prod_before: &[0, 1, 2, 3, 4, 5],
    width: &[1, 1, 1, 1, 2, 1],
    repeat_width: &[0, 0, 0, 0, 0],
    min: &[1, 1, 1, 1, 0],
    max: &[1, 1, 1, 1, 1],
};

/// ISO 15118-20 `CertificateInstallationReq` (big-integer serials).
#[derive(Debug, Clone, PartialEq)]
pub struct CertificateInstallationReq {
    /// Header (SessionID, TimeStamp, Signature).
    pub header: common::MessageHeader,
    /// `OEMProvisioningCertificateChain` (signed element, `Id` required).
    pub oem_provisioning_certificate_chain: schema::SignedCertificateChain,
    /// `ListOfRootCertificateIDs` (1..20).
    pub list_of_root_certificate_ids: Vec<X509IssuerSerial>,
    /// `MaximumContractCertificateChains`.
    pub maximum_contract_certificate_chains: u8,
    /// `PrioritizedEMAIDs`.
    pub prioritized_emaids: Option<schema::EMAIDList>,
}

impl CertificateInstallationReq {
    /// Writes content and EE.
    pub fn encode_body(&self, e: &mut Encoder<'_>) -> ExiResult<()> {
        e.enter()?;
        let mut w = SeqWriter::new(INSTALL_REQ_SHAPE);
        w.start(e, 0, 0)?;
        self.header.encode_body(e)?;
        w.finish(0, 1);
        w.start(e, 1, 0)?;
        self.oem_provisioning_certificate_chain.encode_body(e)?;
        w.finish(1, 1);
        w.start(e, 2, 0)?;
        encode_root_list(&self.list_of_root_certificate_ids, e, CTX_X509_ISSUER_NAME)?;
        w.finish(2, 1);
        w.start(e, 3, 0)?;
        e.event(0, SIMPLE_WIDTH)?;
        e.restricted(i64::from(self.maximum_contract_certificate_chains), 0, 255)?;
        e.event(0, SIMPLE_WIDTH)?;
        w.finish(3, 1);
        if let Some(list) = &self.prioritized_emaids {
            w.start(e, 4, 0)?;
            list.encode_body(e)?;
            w.finish(4, 1);
        }
        w.end(e)?;
        e.leave();
        Ok(())
    }

    /// Reads content up to and including EE.
    pub fn decode_body(d: &mut Decoder<'_>) -> ExiResult<Self> {
        d.enter()?;
        let mut r = SeqReader::new(INSTALL_REQ_SHAPE);
        let (mut header, mut chain, mut list, mut max, mut emaids) = (None, None, None, None, None);
        loop {
            match r.next(d)? {
                Step::End => break,
                Step::Item { index: 0, .. } => {
                    header = Some(common::MessageHeader::decode_body(d)?)
                }
                Step::Item { index: 1, .. } => {
                    chain = Some(schema::SignedCertificateChain::decode_body(d)?)
                }
                Step::Item { index: 2, .. } => {
                    list = Some(decode_root_list(d, CTX_X509_ISSUER_NAME)?)
                }
                Step::Item { index: 3, .. } => {
                    d.expect_event(0, SIMPLE_WIDTH)?;
                    let v = d.restricted(0, 255)?;
                    max = Some(u8::try_from(v).map_err(|_| ExiError::ValueOutOfRange)?);
                    d.expect_event(0, SIMPLE_WIDTH)?;
                }
                Step::Item { index: 4, .. } => emaids = Some(schema::EMAIDList::decode_body(d)?),
                Step::Item { .. } => return Err(ExiError::UnknownEventCode),
            }
        }
        d.leave();
        Ok(Self {
            header: header.ok_or(ExiError::MissingElement)?,
            oem_provisioning_certificate_chain: chain.ok_or(ExiError::MissingElement)?,
            list_of_root_certificate_ids: list.ok_or(ExiError::MissingElement)?,
            maximum_contract_certificate_chains: max.ok_or(ExiError::MissingElement)?,
            prioritized_emaids: emaids,
        })
    }

    /// The whole request as a fragment (code 27). Not what SwitchEV signs;
    /// provided for the open question in the design note §9.1.
    pub fn to_fragment(&self) -> Result<Vec<u8>> {
        fragment(FRAG_CERTIFICATE_INSTALLATION_REQ, |e| self.encode_body(e))
    }
}

/// A decoded ISO 15118-20 certificate document.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)]
pub enum Message {
    /// `CertificateInstallationReq`.
    CertificateInstallationReq(CertificateInstallationReq),
    /// `CertificateInstallationRes`.
    CertificateInstallationRes(schema::CertificateInstallationRes),
}

impl Message {
    /// Root element name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::CertificateInstallationReq(_) => "CertificateInstallationReq",
            Self::CertificateInstallationRes(_) => "CertificateInstallationRes",
        }
    }

    /// The message header.
    pub fn header(&self) -> &common::MessageHeader {
        match self {
            Self::CertificateInstallationReq(m) => &m.header,
            Self::CertificateInstallationRes(m) => &m.header,
        }
    }

    /// Mutable header (to place the signature).
    pub fn header_mut(&mut self) -> &mut common::MessageHeader {
        match self {
            Self::CertificateInstallationReq(m) => &mut m.header,
            Self::CertificateInstallationRes(m) => &mut m.header,
        }
    }

    /// Decodes a complete EXI document.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        check_input(bytes)?;
        run_decoder(bytes, |d| {
            d.read_header()?;
            let code = d.event(DOCUMENT_WIDTH)?;
            let m = match code {
                INSTALL_REQ_CODE => {
                    Message::CertificateInstallationReq(CertificateInstallationReq::decode_body(d)?)
                }
                INSTALL_RES_CODE => Message::CertificateInstallationRes(
                    schema::CertificateInstallationRes::decode_body(d)?,
                ),
                other => {
                    return Ok(Err(CodecError::UnsupportedMessage(format!(
                        "ISO 15118-20 document event code {other} (only CertificateInstallationReq/Res are handled)"
                    ))));
                }
            };
            Ok(Ok(m))
        })?
    }

    /// Encodes a complete EXI document.
    pub fn encode(&self) -> Result<Vec<u8>> {
        encode_vec(|e| {
            e.write_header(Header::ISO15118)?;
            match self {
                Self::CertificateInstallationReq(m) => {
                    e.event(INSTALL_REQ_CODE, DOCUMENT_WIDTH)?;
                    m.encode_body(e)
                }
                Self::CertificateInstallationRes(m) => {
                    e.event(INSTALL_RES_CODE, DOCUMENT_WIDTH)?;
                    m.encode_body(e)
                }
            }
        })
    }

    /// `(Id, fragment)` of the element the header signature covers
    /// (request: OEMProvisioningCertificateChain; response: SignedInstallationData).
    pub fn signed_fragments(&self) -> Result<Vec<(String, Vec<u8>)>> {
        match self {
            Self::CertificateInstallationReq(m) => Ok(vec![(
                m.oem_provisioning_certificate_chain.id.clone(),
                oem_provisioning_certificate_chain_fragment(&m.oem_provisioning_certificate_chain)?,
            )]),
            Self::CertificateInstallationRes(m) => Ok(vec![(
                m.signed_installation_data.id.clone(),
                signed_installation_data_fragment(&m.signed_installation_data)?,
            )]),
        }
    }
}

impl Message {
    /// Signs the signed element (request: OEMProvisioningCertificateChain;
    /// response: SignedInstallationData) and puts the Signature into the header.
    pub fn sign(
        &mut self,
        suite: super::xmldsig::Suite,
        signer: &dyn super::xmldsig::RawSigner,
    ) -> Result<(), super::xmldsig::SignatureError> {
        self.header_mut().signature = None;
        let frags = self.signed_fragments()?;
        let refs: Vec<(&str, &[u8])> = frags
            .iter()
            .map(|(i, f)| (i.as_str(), f.as_slice()))
            .collect();
        let sig = super::xmldsig::sign(suite, &refs, signer)?;
        self.header_mut().signature = Some(super::xmldsig::to_iso20(&sig));
        Ok(())
    }

    /// Verifies the header signature with `key`.
    pub fn verify(
        &self,
        key: &super::xmldsig::VerifyingKey,
    ) -> Result<super::xmldsig::VerifyReport, super::xmldsig::SignatureError> {
        let sig = self
            .header()
            .signature
            .as_ref()
            .ok_or(super::xmldsig::SignatureError::Missing)?;
        super::xmldsig::verify(
            &super::xmldsig::from_iso20(sig),
            &self.signed_fragments()?,
            key,
        )
    }
}

fn fragment(code: u64, body: impl Fn(&mut Encoder<'_>) -> ExiResult<()>) -> Result<Vec<u8>> {
    encode_vec(|e| {
        e.write_header(Header::ISO15118)?;
        e.event(code, FRAGMENT_WIDTH)?;
        body(e)?;
        e.event(FRAG_END, FRAGMENT_WIDTH)
    })
}

/// `OEMProvisioningCertificateChain` fragment (code 128).
pub fn oem_provisioning_certificate_chain_fragment(
    chain: &schema::SignedCertificateChain,
) -> Result<Vec<u8>> {
    fragment(FRAG_OEM_PROVISIONING_CERTIFICATE_CHAIN, |e| {
        chain.encode_body(e)
    })
}

/// `SignedInstallationData` fragment (code 231).
pub fn signed_installation_data_fragment(data: &schema::SignedInstallationData) -> Result<Vec<u8>> {
    fragment(FRAG_SIGNED_INSTALLATION_DATA, |e| data.encode_body(e))
}

/// A decoded -20 fragment.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)]
pub enum Fragment {
    /// Code 27.
    CertificateInstallationReq(CertificateInstallationReq),
    /// Code 128.
    OEMProvisioningCertificateChain(schema::SignedCertificateChain),
    /// Code 231.
    SignedInstallationData(schema::SignedInstallationData),
}

impl Fragment {
    /// Decodes one fragment.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        check_input(bytes)?;
        run_decoder(bytes, |d| {
            d.read_header()?;
            let f = match d.event(FRAGMENT_WIDTH)? {
                FRAG_CERTIFICATE_INSTALLATION_REQ => Fragment::CertificateInstallationReq(
                    CertificateInstallationReq::decode_body(d)?,
                ),
                FRAG_OEM_PROVISIONING_CERTIFICATE_CHAIN => {
                    Fragment::OEMProvisioningCertificateChain(
                        schema::SignedCertificateChain::decode_body(d)?,
                    )
                }
                FRAG_SIGNED_INSTALLATION_DATA => Fragment::SignedInstallationData(
                    schema::SignedInstallationData::decode_body(d)?,
                ),
                other => {
                    return Ok(Err(CodecError::UnsupportedMessage(format!(
                        "ISO 15118-20 fragment event code {other}"
                    ))));
                }
            };
            d.expect_event(FRAG_END, FRAGMENT_WIDTH)?;
            Ok(Ok(f))
        })?
    }

    /// Re-encodes.
    pub fn encode(&self) -> Result<Vec<u8>> {
        match self {
            Self::CertificateInstallationReq(r) => r.to_fragment(),
            Self::OEMProvisioningCertificateChain(c) => {
                oem_provisioning_certificate_chain_fragment(c)
            }
            Self::SignedInstallationData(s) => signed_installation_data_fragment(s),
        }
    }
}
