//! Namespace-qualified XML rendering of the decoded messages, and parsing of
//! such XML back into typed messages (for `pnc-pki exi decode|encode`).
//!
//! Binary values are base64, `SessionID` is hex (xs:hexBinary), serial
//! numbers are decimal. Parsing matches elements and attributes by local
//! name (namespaces are written, not enforced on input).

use base64::Engine;
use iso15118::iso2 as s2;
use iso15118::iso20::common as c20;
use iso15118::iso20::messages as m20;

use super::bigint::BigInteger;
use super::error::{CodecError, Result};
use super::{Message, iso2, iso20};

/// `urn:iso:15118:2:2013:MsgDef`
pub const NS_MSG_DEF: &str = "urn:iso:15118:2:2013:MsgDef";
/// `urn:iso:15118:2:2013:MsgHeader`
pub const NS_MSG_HEADER: &str = "urn:iso:15118:2:2013:MsgHeader";
/// `urn:iso:15118:2:2013:MsgBody`
pub const NS_MSG_BODY: &str = "urn:iso:15118:2:2013:MsgBody";
/// `urn:iso:15118:2:2013:MsgDataTypes`
pub const NS_MSG_DATA_TYPES: &str = "urn:iso:15118:2:2013:MsgDataTypes";
/// `http://www.w3.org/2000/09/xmldsig#`
pub const NS_XMLDSIG: &str = "http://www.w3.org/2000/09/xmldsig#";
/// `urn:iso:std:iso:15118:-20:CommonMessages`
pub const NS_CM: &str = "urn:iso:std:iso:15118:-20:CommonMessages";
/// `urn:iso:std:iso:15118:-20:CommonTypes`
pub const NS_CT: &str = "urn:iso:std:iso:15118:-20:CommonTypes";

const PREFIXES: [(&str, &str); 7] = [
    (NS_MSG_DEF, "v2gci_d"),
    (NS_MSG_HEADER, "v2gci_h"),
    (NS_MSG_BODY, "v2gci_b"),
    (NS_MSG_DATA_TYPES, "v2gci_t"),
    (NS_XMLDSIG, "xmlsig"),
    (NS_CM, "cm"),
    (NS_CT, "ct"),
];

/// Maximum XML input accepted by [`parse`].
pub const MAX_XML_LEN: usize = 1024 * 1024;

/// Minimal element tree.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct El {
    ns: &'static str,
    name: String,
    attrs: Vec<(Option<&'static str>, String, String)>,
    children: Vec<El>,
    text: Option<String>,
}

fn el(ns: &'static str, name: &str) -> El {
    El {
        ns,
        name: name.into(),
        ..El::default()
    }
}

impl El {
    fn attr(mut self, ns: Option<&'static str>, name: &str, value: &str) -> Self {
        self.attrs.push((ns, name.into(), value.into()));
        self
    }
    fn opt_attr(self, ns: Option<&'static str>, name: &str, value: Option<&str>) -> Self {
        match value {
            Some(v) => self.attr(ns, name, v),
            None => self,
        }
    }
    fn text(mut self, t: impl Into<String>) -> Self {
        self.text = Some(t.into());
        self
    }
    fn child(mut self, c: El) -> Self {
        self.children.push(c);
        self
    }
    fn opt_child(mut self, c: Option<El>) -> Self {
        if let Some(c) = c {
            self.children.push(c);
        }
        self
    }
    fn leaf(ns: &'static str, name: &str, t: impl Into<String>) -> El {
        el(ns, name).text(t)
    }
}

fn b64(v: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(v)
}

fn prefix(ns: &str) -> &'static str {
    PREFIXES
        .iter()
        .find(|(n, _)| *n == ns)
        .map(|(_, p)| *p)
        .unwrap_or("ns")
}

fn escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => {
                out.push_str(&format!("&#{};", c as u32))
            }
            c => out.push(c),
        }
    }
}

fn used(e: &El, acc: &mut Vec<&'static str>) {
    if !acc.contains(&e.ns) {
        acc.push(e.ns);
    }
    for (ns, _, _) in &e.attrs {
        if let Some(ns) = ns
            && !acc.contains(ns)
        {
            acc.push(ns);
        }
    }
    for c in &e.children {
        used(c, acc);
    }
}

fn write(e: &El, depth: usize, root_decl: &str, out: &mut String) {
    let indent = "  ".repeat(depth);
    out.push_str(&indent);
    out.push('<');
    out.push_str(prefix(e.ns));
    out.push(':');
    out.push_str(&e.name);
    out.push_str(root_decl);
    for (ns, n, v) in &e.attrs {
        out.push(' ');
        if let Some(ns) = ns {
            out.push_str(prefix(ns));
            out.push(':');
        }
        out.push_str(n);
        out.push_str("=\"");
        escape(v, out);
        out.push('"');
    }
    if e.children.is_empty() && e.text.is_none() {
        out.push_str("/>\n");
        return;
    }
    out.push('>');
    if let Some(t) = &e.text {
        escape(t, out);
    } else {
        out.push('\n');
        for c in &e.children {
            write(c, depth + 1, "", out);
        }
        out.push_str(&indent);
    }
    out.push_str("</");
    out.push_str(prefix(e.ns));
    out.push(':');
    out.push_str(&e.name);
    out.push_str(">\n");
}

fn serialize(root: &El) -> String {
    let mut ns = Vec::new();
    used(root, &mut ns);
    let mut decl = String::new();
    for n in PREFIXES.iter().map(|(n, _)| *n).filter(|n| ns.contains(n)) {
        decl.push_str(&format!(" xmlns:{}=\"{}\"", prefix(n), n));
    }
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    write(root, 0, &decl, &mut out);
    out
}

/// Renders a decoded message as namespace-qualified XML.
pub fn to_xml(m: &Message) -> String {
    serialize(&match m {
        Message::Iso2(m) => iso2_to_el(m),
        Message::Iso20(m) => iso20_to_el(m),
    })
}

// ------------------------------- rendering -------------------------------

fn signature_el(s: &s2::Signature) -> El {
    let d = NS_XMLDSIG;
    let si = &s.signed_info;
    let mut info = el(d, "SignedInfo")
        .opt_attr(None, "Id", si.id.as_deref())
        .child(el(d, "CanonicalizationMethod").attr(
            None,
            "Algorithm",
            &si.canonicalization_method.algorithm,
        ))
        .child(
            el(d, "SignatureMethod")
                .attr(None, "Algorithm", &si.signature_method.algorithm)
                .opt_child(
                    si.signature_method
                        .hmac_output_length
                        .map(|h| El::leaf(d, "HMACOutputLength", h.to_string())),
                ),
        );
    for r in &si.reference {
        let mut re = el(d, "Reference")
            .opt_attr(None, "Id", r.id.as_deref())
            .opt_attr(None, "URI", r.uri.as_deref())
            .opt_attr(None, "Type", r.r#type.as_deref());
        if let Some(t) = &r.transforms {
            let mut ts = el(d, "Transforms");
            for x in &t.transform {
                ts = ts.child(el(d, "Transform").attr(None, "Algorithm", &x.algorithm));
            }
            re = re.child(ts);
        }
        re = re
            .child(el(d, "DigestMethod").attr(None, "Algorithm", &r.digest_method.algorithm))
            .child(El::leaf(d, "DigestValue", b64(&r.digest_value)));
        info = info.child(re);
    }
    el(d, "Signature")
        .opt_attr(None, "Id", s.id.as_deref())
        .child(info)
        .child(
            El::leaf(d, "SignatureValue", b64(&s.signature_value.value)).opt_attr(
                None,
                "Id",
                s.signature_value.id.as_deref(),
            ),
        )
}

fn roots_el(ns: &'static str, item_ns: &'static str, roots: &[iso2::X509IssuerSerial]) -> El {
    let mut l = el(ns, "ListOfRootCertificateIDs");
    for r in roots {
        l = l.child(
            el(item_ns, "RootCertificateID")
                .child(El::leaf(
                    NS_XMLDSIG,
                    "X509IssuerName",
                    r.issuer_name.clone(),
                ))
                .child(El::leaf(
                    NS_XMLDSIG,
                    "X509SerialNumber",
                    r.serial_number.to_decimal(),
                )),
        );
    }
    l
}

fn chain2_el(name: &str, c: &s2::CertificateChain) -> El {
    let t = NS_MSG_DATA_TYPES;
    el(NS_MSG_BODY, name)
        .opt_attr(Some(t), "Id", c.id.as_deref())
        .child(El::leaf(t, "Certificate", b64(&c.certificate)))
        .opt_child(c.sub_certificates.as_ref().map(|s| {
            s.certificate.iter().fold(el(t, "SubCertificates"), |a, x| {
                a.child(El::leaf(t, "Certificate", b64(x)))
            })
        }))
}

#[allow(clippy::too_many_arguments)]
fn res2_el(
    name: &str,
    rc: s2::ResponseCode,
    sa: &s2::CertificateChain,
    c: &s2::CertificateChain,
    k: &s2::ContractSignatureEncryptedPrivateKey,
    dh: &s2::DiffieHellmanPublickey,
    e: &s2::EMAID,
    retry: Option<i16>,
) -> El {
    let (b, t) = (NS_MSG_BODY, NS_MSG_DATA_TYPES);
    el(b, name)
        .child(El::leaf(b, "ResponseCode", rc.as_str()))
        .child(chain2_el("SAProvisioningCertificateChain", sa))
        .child(chain2_el("ContractSignatureCertChain", c))
        .child(
            El::leaf(b, "ContractSignatureEncryptedPrivateKey", b64(&k.value)).attr(
                Some(t),
                "Id",
                &k.id,
            ),
        )
        .child(El::leaf(b, "DHpublickey", b64(&dh.value)).attr(Some(t), "Id", &dh.id))
        .child(El::leaf(b, "eMAID", e.value.clone()).attr(Some(t), "Id", &e.id))
        .opt_child(retry.map(|r| El::leaf(b, "RetryCounter", r.to_string())))
}

fn iso2_to_el(m: &iso2::V2gMessage) -> El {
    let h = &m.header;
    let header = el(NS_MSG_DEF, "Header")
        .child(El::leaf(
            NS_MSG_HEADER,
            "SessionID",
            hex::encode_upper(&h.session_id),
        ))
        .opt_child(h.notification.as_ref().map(|n| {
            el(NS_MSG_HEADER, "Notification")
                .child(El::leaf(
                    NS_MSG_DATA_TYPES,
                    "FaultCode",
                    n.fault_code.as_str(),
                ))
                .opt_child(
                    n.fault_msg
                        .as_ref()
                        .map(|f| El::leaf(NS_MSG_DATA_TYPES, "FaultMsg", f.clone())),
                )
        }))
        .opt_child(h.signature.as_ref().map(signature_el));
    let b = NS_MSG_BODY;
    let body = match &m.body {
        iso2::Body::CertificateInstallationReq(r) => el(b, "CertificateInstallationReq")
            .attr(Some(b), "Id", &r.id)
            .child(El::leaf(
                b,
                "OEMProvisioningCert",
                b64(&r.oem_provisioning_cert),
            ))
            .child(roots_el(
                b,
                NS_MSG_DATA_TYPES,
                &r.list_of_root_certificate_ids,
            )),
        iso2::Body::CertificateUpdateReq(r) => el(b, "CertificateUpdateReq")
            .attr(Some(b), "Id", &r.id)
            .child(chain2_el(
                "ContractSignatureCertChain",
                &r.contract_signature_cert_chain,
            ))
            .child(El::leaf(b, "eMAID", r.emaid.clone()))
            .child(roots_el(
                b,
                NS_MSG_DATA_TYPES,
                &r.list_of_root_certificate_ids,
            )),
        iso2::Body::CertificateInstallationRes(r) => res2_el(
            "CertificateInstallationRes",
            r.response_code,
            &r.sa_provisioning_certificate_chain,
            &r.contract_signature_cert_chain,
            &r.contract_signature_encrypted_private_key,
            &r.dh_public_key,
            &r.e_maid,
            None,
        ),
        iso2::Body::CertificateUpdateRes(r) => res2_el(
            "CertificateUpdateRes",
            r.response_code,
            &r.sa_provisioning_certificate_chain,
            &r.contract_signature_cert_chain,
            &r.contract_signature_encrypted_private_key,
            &r.dh_public_key,
            &r.e_maid,
            r.retry_counter,
        ),
    };
    el(NS_MSG_DEF, "V2G_Message")
        .child(header)
        .child(el(NS_MSG_DEF, "Body").child(body))
}

fn subs20_el(s: &m20::SubCertificates) -> El {
    s.certificate
        .iter()
        .fold(el(NS_CM, "SubCertificates"), |a, x| {
            a.child(El::leaf(NS_CM, "Certificate", b64(x)))
        })
}

fn header20_el(h: &c20::MessageHeader) -> El {
    el(NS_CT, "Header")
        .child(El::leaf(
            NS_CT,
            "SessionID",
            hex::encode_upper(&h.session_id),
        ))
        .child(El::leaf(NS_CT, "TimeStamp", h.time_stamp.to_string()))
        .opt_child(
            h.signature
                .as_ref()
                .map(|s| signature_el(&super::xmldsig::from_iso20(s))),
        )
}

fn iso20_to_el(m: &iso20::Message) -> El {
    let cm = NS_CM;
    match m {
        iso20::Message::CertificateInstallationReq(r) => {
            let c = &r.oem_provisioning_certificate_chain;
            el(cm, "CertificateInstallationReq")
                .child(header20_el(&r.header))
                .child(
                    el(cm, "OEMProvisioningCertificateChain")
                        .attr(Some(cm), "Id", &c.id)
                        .child(El::leaf(cm, "Certificate", b64(&c.certificate)))
                        .opt_child(c.sub_certificates.as_ref().map(subs20_el)),
                )
                .child(roots_el(cm, NS_CT, &r.list_of_root_certificate_ids))
                .child(El::leaf(
                    cm,
                    "MaximumContractCertificateChains",
                    r.maximum_contract_certificate_chains.to_string(),
                ))
                .opt_child(r.prioritized_emaids.as_ref().map(|l| {
                    l.emaid.iter().fold(el(cm, "PrioritizedEMAIDs"), |a, e| {
                        a.child(El::leaf(cm, "EMAID", e.clone()))
                    })
                }))
        }
        iso20::Message::CertificateInstallationRes(r) => {
            let s = &r.signed_installation_data;
            let (key_name, key) = match &s.choice {
                m20::SignedInstallationDataChoice::SECP521EncryptedPrivateKey(k) => {
                    ("SECP521_EncryptedPrivateKey", k)
                }
                m20::SignedInstallationDataChoice::X448EncryptedPrivateKey(k) => {
                    ("X448_EncryptedPrivateKey", k)
                }
                m20::SignedInstallationDataChoice::TPMEncryptedPrivateKey(k) => {
                    ("TPM_EncryptedPrivateKey", k)
                }
            };
            el(cm, "CertificateInstallationRes")
                .child(header20_el(&r.header))
                .child(El::leaf(NS_CT, "ResponseCode", r.response_code.as_str()))
                .child(El::leaf(cm, "EVSEProcessing", r.evse_processing.as_str()))
                .child(
                    el(cm, "CPSCertificateChain")
                        .child(El::leaf(
                            cm,
                            "Certificate",
                            b64(&r.cp_s_certificate_chain.certificate),
                        ))
                        .opt_child(
                            r.cp_s_certificate_chain
                                .sub_certificates
                                .as_ref()
                                .map(subs20_el),
                        ),
                )
                .child(
                    el(cm, "SignedInstallationData")
                        .attr(Some(cm), "Id", &s.id)
                        .child(
                            el(cm, "ContractCertificateChain")
                                .child(El::leaf(
                                    cm,
                                    "Certificate",
                                    b64(&s.contract_certificate_chain.certificate),
                                ))
                                .child(subs20_el(&s.contract_certificate_chain.sub_certificates)),
                        )
                        .child(El::leaf(cm, "ECDHCurve", s.ec_dh_curve.as_str()))
                        .child(El::leaf(cm, "DHPublicKey", b64(&s.dh_public_key)))
                        .child(El::leaf(cm, key_name, b64(key))),
                )
                .child(El::leaf(
                    cm,
                    "RemainingContractCertificateChains",
                    r.remaining_contract_certificate_chains.to_string(),
                ))
        }
    }
}

// -------------------------------- parsing --------------------------------

fn bad(msg: impl Into<String>) -> CodecError {
    CodecError::Invalid(msg.into())
}

fn convert(n: roxmltree::Node<'_, '_>) -> El {
    let mut e = El {
        name: n.tag_name().name().to_string(),
        ..El::default()
    };
    for a in n.attributes() {
        e.attrs
            .push((None, a.name().to_string(), a.value().to_string()));
    }
    let mut text = String::new();
    for c in n.children() {
        if c.is_element() {
            e.children.push(convert(c));
        } else if c.is_text() {
            text.push_str(c.text().unwrap_or(""));
        }
    }
    if e.children.is_empty() {
        e.text = Some(text.trim().to_string());
    }
    e
}

/// Parses XML produced by [`to_xml`] (or equivalent) into a typed message.
pub fn parse(xml: &str) -> Result<Message> {
    if xml.len() > MAX_XML_LEN {
        return Err(CodecError::InputTooLarge {
            len: xml.len(),
            limit: MAX_XML_LEN,
        });
    }
    let opts = roxmltree::ParsingOptions {
        allow_dtd: false,
        nodes_limit: 100_000,
        ..Default::default()
    };
    let doc =
        roxmltree::Document::parse_with_options(xml, opts).map_err(|e| bad(format!("XML: {e}")))?;
    let root = convert(doc.root_element());
    match root.name.as_str() {
        "V2G_Message" => Ok(Message::Iso2(iso2_from_el(&root)?)),
        "CertificateInstallationReq" | "CertificateInstallationRes" => {
            Ok(Message::Iso20(iso20_from_el(&root)?))
        }
        other => Err(CodecError::UnsupportedMessage(format!(
            "XML root element {other}"
        ))),
    }
}

impl El {
    fn get(&self, name: &str) -> Result<&El> {
        self.opt(name)
            .ok_or_else(|| bad(format!("<{}> lacks <{name}>", self.name)))
    }
    fn opt(&self, name: &str) -> Option<&El> {
        self.children.iter().find(|c| c.name == name)
    }
    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a El> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }
    fn txt(&self) -> &str {
        self.text.as_deref().unwrap_or("")
    }
    fn bin(&self) -> Result<Vec<u8>> {
        let clean: String = self.txt().chars().filter(|c| !c.is_whitespace()).collect();
        base64::engine::general_purpose::STANDARD
            .decode(clean.as_bytes())
            .map_err(|e| bad(format!("<{}> is not base64: {e}", self.name)))
    }
    fn num<T: std::str::FromStr>(&self) -> Result<T> {
        self.txt()
            .trim()
            .parse()
            .map_err(|_| bad(format!("<{}> is not a number", self.name)))
    }
    fn at(&self, name: &str) -> Option<String> {
        self.attrs
            .iter()
            .find(|(_, n, _)| n == name)
            .map(|(_, _, v)| v.clone())
    }
    fn at_req(&self, name: &str) -> Result<String> {
        self.at(name)
            .ok_or_else(|| bad(format!("<{}> lacks attribute {name}", self.name)))
    }
}

fn enum_from<T: Copy>(all: &[T], name: impl Fn(T) -> &'static str, e: &El) -> Result<T> {
    all.iter()
        .copied()
        .find(|v| name(*v) == e.txt().trim())
        .ok_or_else(|| bad(format!("<{}> unknown value {}", e.name, e.txt())))
}

fn signature_from(e: &El) -> Result<s2::Signature> {
    let si = e.get("SignedInfo")?;
    let sm = si.get("SignatureMethod")?;
    let mut reference = Vec::new();
    for r in si.all("Reference") {
        let transforms = match r.opt("Transforms") {
            None => None,
            Some(t) => Some(s2::Transforms {
                transform: t
                    .all("Transform")
                    .map(|x| {
                        Ok(s2::Transform {
                            algorithm: x.at_req("Algorithm")?,
                        })
                    })
                    .collect::<Result<_>>()?,
            }),
        };
        reference.push(s2::Reference {
            id: r.at("Id"),
            r#type: r.at("Type"),
            uri: r.at("URI"),
            transforms,
            digest_method: s2::DigestMethod {
                algorithm: r.get("DigestMethod")?.at_req("Algorithm")?,
            },
            digest_value: r.get("DigestValue")?.bin()?,
        });
    }
    let sv = e.get("SignatureValue")?;
    Ok(s2::Signature {
        id: e.at("Id"),
        signed_info: s2::SignedInfo {
            id: si.at("Id"),
            canonicalization_method: s2::CanonicalizationMethod {
                algorithm: si.get("CanonicalizationMethod")?.at_req("Algorithm")?,
            },
            signature_method: s2::SignatureMethod {
                algorithm: sm.at_req("Algorithm")?,
                hmac_output_length: sm.opt("HMACOutputLength").map(|h| h.num()).transpose()?,
            },
            reference,
        },
        signature_value: s2::SignatureValue {
            id: sv.at("Id"),
            value: sv.bin()?,
        },
    })
}

fn roots_from(e: &El) -> Result<Vec<iso2::X509IssuerSerial>> {
    e.get("ListOfRootCertificateIDs")?
        .all("RootCertificateID")
        .map(|r| {
            let sn = r.get("X509SerialNumber")?;
            Ok(iso2::X509IssuerSerial {
                issuer_name: r.get("X509IssuerName")?.txt().to_string(),
                serial_number: BigInteger::parse_decimal(sn.txt())
                    .ok_or_else(|| bad("X509SerialNumber is not an integer"))?,
            })
        })
        .collect()
}

fn chain2_from(e: &El) -> Result<s2::CertificateChain> {
    Ok(s2::CertificateChain {
        id: e.at("Id"),
        certificate: e.get("Certificate")?.bin()?,
        sub_certificates: match e.opt("SubCertificates") {
            None => None,
            Some(s) => Some(s2::SubCertificates {
                certificate: s.all("Certificate").map(El::bin).collect::<Result<_>>()?,
            }),
        },
    })
}

fn hexbin(e: &El) -> Result<Vec<u8>> {
    hex::decode(e.txt().trim()).map_err(|_| bad(format!("<{}> is not hex", e.name)))
}

fn iso2_from_el(root: &El) -> Result<iso2::V2gMessage> {
    let h = root.get("Header")?;
    let header = s2::MessageHeader {
        session_id: hexbin(h.get("SessionID")?)?,
        notification: match h.opt("Notification") {
            None => None,
            Some(n) => Some(s2::Notification {
                fault_code: enum_from(
                    &s2::FaultCode::ALL,
                    s2::FaultCode::as_str,
                    n.get("FaultCode")?,
                )?,
                fault_msg: n.opt("FaultMsg").map(|f| f.txt().to_string()),
            }),
        },
        signature: h.opt("Signature").map(signature_from).transpose()?,
    };
    let b = root
        .get("Body")?
        .children
        .first()
        .ok_or_else(|| bad("empty Body"))?;
    let res = |b: &El| -> Result<_> {
        let k = b.get("ContractSignatureEncryptedPrivateKey")?;
        let dh = b.get("DHpublickey")?;
        let em = b.get("eMAID")?;
        Ok((
            enum_from(
                &s2::ResponseCode::ALL,
                s2::ResponseCode::as_str,
                b.get("ResponseCode")?,
            )?,
            chain2_from(b.get("SAProvisioningCertificateChain")?)?,
            chain2_from(b.get("ContractSignatureCertChain")?)?,
            s2::ContractSignatureEncryptedPrivateKey {
                id: k.at_req("Id")?,
                value: k.bin()?,
            },
            s2::DiffieHellmanPublickey {
                id: dh.at_req("Id")?,
                value: dh.bin()?,
            },
            s2::EMAID {
                id: em.at_req("Id")?,
                value: em.txt().to_string(),
            },
        ))
    };
    let body = match b.name.as_str() {
        "CertificateInstallationReq" => {
            iso2::Body::CertificateInstallationReq(iso2::CertificateInstallationReq {
                id: b.at_req("Id")?,
                oem_provisioning_cert: b.get("OEMProvisioningCert")?.bin()?,
                list_of_root_certificate_ids: roots_from(b)?,
            })
        }
        "CertificateUpdateReq" => iso2::Body::CertificateUpdateReq(iso2::CertificateUpdateReq {
            id: b.at_req("Id")?,
            contract_signature_cert_chain: chain2_from(b.get("ContractSignatureCertChain")?)?,
            emaid: b.get("eMAID")?.txt().to_string(),
            list_of_root_certificate_ids: roots_from(b)?,
        }),
        "CertificateInstallationRes" => {
            let (response_code, sa, c, k, dh, e) = res(b)?;
            iso2::Body::CertificateInstallationRes(s2::CertificateInstallationRes {
                response_code,
                sa_provisioning_certificate_chain: sa,
                contract_signature_cert_chain: c,
                contract_signature_encrypted_private_key: k,
                dh_public_key: dh,
                e_maid: e,
            })
        }
        "CertificateUpdateRes" => {
            let (response_code, sa, c, k, dh, e) = res(b)?;
            iso2::Body::CertificateUpdateRes(s2::CertificateUpdateRes {
                response_code,
                sa_provisioning_certificate_chain: sa,
                contract_signature_cert_chain: c,
                contract_signature_encrypted_private_key: k,
                dh_public_key: dh,
                e_maid: e,
                retry_counter: b.opt("RetryCounter").map(|r| r.num()).transpose()?,
            })
        }
        other => {
            return Err(CodecError::UnsupportedMessage(format!(
                "ISO 15118-2 body {other}"
            )));
        }
    };
    Ok(iso2::V2gMessage { header, body })
}

fn subs20_from(e: &El) -> Result<m20::SubCertificates> {
    Ok(m20::SubCertificates {
        certificate: e.all("Certificate").map(El::bin).collect::<Result<_>>()?,
    })
}

fn header20_from(h: &El) -> Result<c20::MessageHeader> {
    Ok(c20::MessageHeader {
        session_id: hexbin(h.get("SessionID")?)?,
        time_stamp: h.get("TimeStamp")?.num()?,
        signature: h
            .opt("Signature")
            .map(|s| signature_from(s).map(|s| super::xmldsig::to_iso20(&s)))
            .transpose()?,
    })
}

fn iso20_from_el(root: &El) -> Result<iso20::Message> {
    let header = header20_from(root.get("Header")?)?;
    if root.name == "CertificateInstallationReq" {
        let c = root.get("OEMProvisioningCertificateChain")?;
        return Ok(iso20::Message::CertificateInstallationReq(
            iso20::CertificateInstallationReq {
                header,
                oem_provisioning_certificate_chain: m20::SignedCertificateChain {
                    id: c.at_req("Id")?,
                    certificate: c.get("Certificate")?.bin()?,
                    sub_certificates: c.opt("SubCertificates").map(subs20_from).transpose()?,
                },
                list_of_root_certificate_ids: roots_from(root)?,
                maximum_contract_certificate_chains: root
                    .get("MaximumContractCertificateChains")?
                    .num()?,
                prioritized_emaids: root.opt("PrioritizedEMAIDs").map(|l| m20::EMAIDList {
                    emaid: l.all("EMAID").map(|e| e.txt().to_string()).collect(),
                }),
            },
        ));
    }
    let s = root.get("SignedInstallationData")?;
    let cc = s.get("ContractCertificateChain")?;
    let cps = root.get("CPSCertificateChain")?;
    let choice = if let Some(k) = s.opt("SECP521_EncryptedPrivateKey") {
        m20::SignedInstallationDataChoice::SECP521EncryptedPrivateKey(k.bin()?)
    } else if let Some(k) = s.opt("X448_EncryptedPrivateKey") {
        m20::SignedInstallationDataChoice::X448EncryptedPrivateKey(k.bin()?)
    } else {
        m20::SignedInstallationDataChoice::TPMEncryptedPrivateKey(
            s.get("TPM_EncryptedPrivateKey")?.bin()?,
        )
    };
    Ok(iso20::Message::CertificateInstallationRes(
        m20::CertificateInstallationRes {
            header,
            response_code: enum_from(
                &c20::ResponseCode::ALL,
                c20::ResponseCode::as_str,
                root.get("ResponseCode")?,
            )?,
            evse_processing: enum_from(
                &c20::Processing::ALL,
                c20::Processing::as_str,
                root.get("EVSEProcessing")?,
            )?,
            cp_s_certificate_chain: m20::CertificateChain {
                certificate: cps.get("Certificate")?.bin()?,
                sub_certificates: cps.opt("SubCertificates").map(subs20_from).transpose()?,
            },
            signed_installation_data: m20::SignedInstallationData {
                id: s.at_req("Id")?,
                contract_certificate_chain: m20::ContractCertificateChain {
                    certificate: cc.get("Certificate")?.bin()?,
                    sub_certificates: subs20_from(cc.get("SubCertificates")?)?,
                },
                ec_dh_curve: enum_from(
                    &m20::EcdhCurve::ALL,
                    m20::EcdhCurve::as_str,
                    s.get("ECDHCurve")?,
                )?,
                dh_public_key: s.get("DHPublicKey")?.bin()?,
                choice,
            },
            remaining_contract_certificate_chains: root
                .get("RemainingContractCertificateChains")?
                .num()?,
        },
    ))
}
