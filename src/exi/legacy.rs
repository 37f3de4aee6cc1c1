//! Reader for the legacy ISO 15118-2 body form `<BodyElement
//! xsi:type="CertificateInstallationResType">` (older Hubject responses).
//!
//! EXIficient encodes such a body as: SE(BodyElement) → second-level
//! AT(xsi:type) → the named type's grammar. In the Hubject data the content
//! then deviates from the schema (ResponseCode missing, every child carrying
//! `xsi:type="xsd:anyType"`), so it is written with non-strict second-level
//! `SE(*)` events, built-in element grammars (EXI 1.0 §8.4.3, with learning)
//! and the `anyType` (ur-type) grammar, with base64 certificate text as
//! untyped character data. This module reads exactly that family of streams
//! into the typed response; it never writes it (encode produces the normal
//! `CertificateInstallationRes` element form).
//!
//! Bounds: at most [`MAX_NODES`] elements, nesting [`MAX_DEPTH`], 64 new
//! string-table entries, names ≤ 256 characters; everything else is bounded by
//! the 64 KiB input cap.

use std::collections::HashMap;

use base64::Engine;
use iso15118::exi::{Decoder, ExiError, ExiResult, Lengths, ValueCtx};

use super::error::CodecError;
use super::iso2::{Body, schema};
use super::strtable::{ISO2_GLOBAL_ELEMENTS, ISO2_PARTITIONS};

const MAX_NODES: usize = 256;
const MAX_DEPTH: usize = 8;
const MAX_NEW_ENTRIES: usize = 64;
const MAX_NAME_LEN: u64 = 256;
const MAX_TEXT: Lengths = Lengths::max(16 * 1024);

const URI_XSI: usize = 2;
const URI_XSD: usize = 3;
const URI_MSG_BODY: usize = 5;

/// Result of the legacy reader: either a typed body, or a semantic error
/// (unsupported construct, invalid content) that stops decoding.
pub(crate) type Outcome = Result<Body, CodecError>;

fn width(n: usize) -> u32 {
    if n <= 1 {
        0
    } else {
        usize::BITS - (n - 1).leading_zeros()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct QName {
    uri: usize,
    local: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Prod {
    Ee,
    At(QName),
    Se(QName),
    Ch,
}

#[derive(Debug, Default)]
struct BuiltIn {
    start: Vec<Prod>,
    content: Vec<Prod>,
}

#[derive(Debug, Default)]
struct Node {
    local: String,
    attrs: Vec<(String, String)>,
    children: Vec<Node>,
    text: String,
}

struct Reader<'a, 'b> {
    d: &'a mut Decoder<'b>,
    uris: Vec<String>,
    names: Vec<Vec<String>>,
    added: usize,
    grammars: HashMap<QName, BuiltIn>,
    ctxs: HashMap<QName, u32>,
    nodes: usize,
}

/// Internal failure: grammar error (positioned by the caller) or semantic stop.
enum Stop {
    Exi(ExiError),
    Semantic(CodecError),
}

impl From<ExiError> for Stop {
    fn from(e: ExiError) -> Self {
        Self::Exi(e)
    }
}

fn unsupported(what: impl Into<String>) -> Stop {
    Stop::Semantic(CodecError::UnsupportedMessage(what.into()))
}

fn invalid(what: impl Into<String>) -> Stop {
    Stop::Semantic(CodecError::Invalid(what.into()))
}

type R<T> = Result<T, Stop>;

impl<'a, 'b> Reader<'a, 'b> {
    fn new(d: &'a mut Decoder<'b>) -> Self {
        Self {
            d,
            uris: ISO2_PARTITIONS
                .iter()
                .map(|(u, _)| (*u).to_string())
                .collect(),
            names: ISO2_PARTITIONS
                .iter()
                .map(|(_, n)| n.iter().map(|s| (*s).to_string()).collect())
                .collect(),
            added: 0,
            grammars: HashMap::new(),
            ctxs: HashMap::new(),
            nodes: 0,
        }
    }

    fn chars(&mut self, n: u64) -> R<String> {
        if n > MAX_NAME_LEN {
            return Err(Stop::Exi(ExiError::ValueTooLong));
        }
        let mut s = String::new();
        for _ in 0..n {
            let cp = self.d.uint()?;
            let c = u32::try_from(cp)
                .ok()
                .and_then(char::from_u32)
                .ok_or(ExiError::InvalidCodePoint)?;
            s.push(c);
        }
        Ok(s)
    }

    fn grow(&mut self) -> R<()> {
        self.added += 1;
        if self.added > MAX_NEW_ENTRIES {
            return Err(unsupported(
                "too many new string-table entries in legacy body",
            ));
        }
        Ok(())
    }

    /// QName as in SE(*)/AT(*) and xsi:type values (uri + local-name partitions).
    fn qname(&mut self) -> R<QName> {
        let v = self.d.nbit(width(self.uris.len() + 1))?;
        let uri = if v == 0 {
            let n = self.d.uint()?;
            let s = self.chars(n)?;
            self.grow()?;
            self.uris.push(s);
            self.names.push(Vec::new());
            self.uris.len() - 1
        } else {
            let i = usize::try_from(v - 1).map_err(|_| ExiError::BadStringTableIndex)?;
            if i >= self.uris.len() {
                return Err(Stop::Exi(ExiError::BadStringTableIndex));
            }
            i
        };
        let n = self.d.uint()?;
        let local = if n == 0 {
            let part = &self.names[uri];
            let id = self.d.nbit(width(part.len()))?;
            part.get(usize::try_from(id).unwrap_or(usize::MAX))
                .cloned()
                .ok_or(Stop::Exi(ExiError::BadStringTableIndex))?
        } else {
            let s = self.chars(n - 1)?;
            self.grow()?;
            self.names[uri].push(s.clone());
            s
        };
        Ok(QName { uri, local })
    }

    fn value(&mut self, q: &QName) -> R<String> {
        let next = 100_000 + self.ctxs.len() as u32;
        let ctx = *self.ctxs.entry(q.clone()).or_insert(next);
        Ok(self.d.string(ValueCtx(ctx), MAX_TEXT)?)
    }

    fn is_global(&self, q: &QName) -> bool {
        let uri = self.uris[q.uri].as_str();
        ISO2_GLOBAL_ELEMENTS
            .iter()
            .any(|(u, l)| *u == uri && *l == q.local)
    }

    fn enter(&mut self, q: &QName, depth: usize) -> R<Node> {
        self.nodes += 1;
        if self.nodes > MAX_NODES || depth > MAX_DEPTH {
            return Err(unsupported("legacy body too large or too deep"));
        }
        if self.is_global(q) {
            return Err(unsupported(format!(
                "legacy body: schema-deviating content with global element {}",
                q.local
            )));
        }
        Ok(Node {
            local: q.local.clone(),
            ..Node::default()
        })
    }

    /// Element under a built-in element grammar (EXI 1.0 §8.4.3) with learning.
    fn builtin(&mut self, q: QName, depth: usize) -> R<Node> {
        let mut node = self.enter(&q, depth)?;
        let mut in_start = true;
        loop {
            let g = self.grammars.entry(q.clone()).or_default();
            let learned = if in_start {
                g.start.clone()
            } else {
                g.content.clone()
            };
            // first level: learned productions, then (ElementContent only) EE, then the escape
            let first = learned.len() + usize::from(!in_start);
            let code = usize::try_from(self.d.nbit(width(first + 1))?).unwrap_or(usize::MAX);
            let (prod, generic) = if code < learned.len() {
                (learned[code].clone(), false)
            } else if !in_start && code == learned.len() {
                (Prod::Ee, false)
            } else if code == first {
                if in_start {
                    match self.d.nbit(2)? {
                        0 => (Prod::Ee, true),
                        1 => (
                            Prod::At(QName {
                                uri: usize::MAX,
                                local: String::new(),
                            }),
                            true,
                        ),
                        2 => (
                            Prod::Se(QName {
                                uri: usize::MAX,
                                local: String::new(),
                            }),
                            true,
                        ),
                        _ => (Prod::Ch, true),
                    }
                } else if self.d.nbit(1)? == 0 {
                    (
                        Prod::Se(QName {
                            uri: usize::MAX,
                            local: String::new(),
                        }),
                        true,
                    )
                } else {
                    (Prod::Ch, true)
                }
            } else {
                return Err(Stop::Exi(ExiError::UnknownEventCode));
            };
            let learn = |r: &mut Self, p: Prod, start: bool| {
                let g = r.grammars.entry(q.clone()).or_default();
                let list = if start { &mut g.start } else { &mut g.content };
                if !list.contains(&p) {
                    list.insert(0, p);
                }
            };
            match prod {
                Prod::Ee => {
                    if generic {
                        learn(self, Prod::Ee, true);
                    }
                    return Ok(node);
                }
                Prod::At(a) => {
                    let a = if generic { self.qname()? } else { a };
                    if generic {
                        learn(self, Prod::At(a.clone()), true);
                    }
                    if a.uri == URI_XSI && a.local == "type" {
                        let t = self.qname()?;
                        if t.uri == URI_XSD && t.local == "anyType" {
                            return self.any_type(node, depth);
                        }
                        return Err(unsupported(format!(
                            "legacy body: xsi:type {} inside content",
                            t.local
                        )));
                    }
                    let v = self.value(&a)?;
                    node.attrs.push((a.local, v));
                }
                Prod::Se(c) => {
                    let c = if generic { self.qname()? } else { c };
                    if generic {
                        learn(self, Prod::Se(c.clone()), in_start);
                    }
                    let child = self.builtin(c, depth + 1)?;
                    node.children.push(child);
                    in_start = false;
                }
                Prod::Ch => {
                    if generic {
                        learn(self, Prod::Ch, in_start);
                    }
                    let v = self.value(&q)?;
                    node.text.push_str(&v);
                    in_start = false;
                }
            }
        }
    }

    /// Content under the schema-informed `anyType` (ur-type) grammar.
    fn any_type(&mut self, mut node: Node, depth: usize) -> R<Node> {
        let q = QName {
            uri: usize::MAX,
            local: node.local.clone(),
        };
        let mut start = true;
        loop {
            let ev = if start {
                match self.d.nbit(3)? {
                    0 => 'A',
                    1 => 'S',
                    2 => 'E',
                    3 => 'C',
                    _ => {
                        return Err(unsupported(
                            "legacy body: undeclared event in anyType content",
                        ));
                    }
                }
            } else {
                match self.d.nbit(2)? {
                    0 => 'S',
                    1 => 'E',
                    2 => 'C',
                    _ => {
                        return Err(unsupported(
                            "legacy body: undeclared event in anyType content",
                        ));
                    }
                }
            };
            match ev {
                'A' => {
                    let a = self.qname()?;
                    let v = self.value(&a)?;
                    node.attrs.push((a.local, v));
                }
                'S' => {
                    let c = self.qname()?;
                    let child = self.builtin(c, depth + 1)?;
                    node.children.push(child);
                    start = false;
                }
                'C' => {
                    let v = self.value(&q)?;
                    node.text.push_str(&v);
                    start = false;
                }
                _ => return Ok(node),
            }
        }
    }
}

/// Reads the content of `BodyElement` after its SE event; returns the typed
/// body. The caller reads Body's and V2G_Message's EE afterwards.
pub(crate) fn read_body_element(d: &mut Decoder<'_>) -> ExiResult<Outcome> {
    let mut r = Reader::new(d);
    match read(&mut r) {
        Ok(b) => Ok(Ok(b)),
        Err(Stop::Semantic(e)) => Ok(Err(e)),
        Err(Stop::Exi(e)) => Err(e),
    }
}

fn read(r: &mut Reader<'_, '_>) -> R<Body> {
    // BodyBaseType start: EE is the only first-level production (1 bit);
    // escape (1), then second level (3 bits): AT(xsi:type) = 0.
    if r.d.nbit(1)? != 1 || r.d.nbit(3)? != 0 {
        return Err(unsupported("BodyElement without xsi:type"));
    }
    let t = r.qname()?;
    if t.uri != URI_MSG_BODY {
        return Err(unsupported(format!("BodyElement xsi:type {}", t.local)));
    }
    let is_update = match t.local.as_str() {
        "CertificateInstallationResType" => false,
        "CertificateUpdateResType" => true,
        other => return Err(unsupported(format!("BodyElement xsi:type {other}"))),
    };
    // Element_0 of the response type: SE(ResponseCode) = 0, escape = 1.
    let mut start = true;
    let mut children = Vec::new();
    loop {
        if r.d.nbit(1)? == 0 {
            if !children.is_empty() {
                return Err(unsupported(
                    "legacy body mixing schema-valid and deviating content",
                ));
            }
            return typed_response(r.d, is_update).map_err(Stop::Exi);
        }
        let ev = if start {
            match r.d.nbit(3)? {
                0 => 'E',
                5 => 'S',
                _ => return Err(unsupported("legacy body: unsupported second-level event")),
            }
        } else {
            match r.d.nbit(2)? {
                0 => 'E',
                1 => 'S',
                _ => return Err(unsupported("legacy body: unsupported second-level event")),
            }
        };
        if ev == 'E' {
            break;
        }
        let q = r.qname()?;
        children.push(r.builtin(q, 1)?);
        start = false;
    }
    to_body(children, is_update)
}

/// Schema-valid content after `xsi:type` (the SE(ResponseCode) bit is consumed).
fn typed_response(d: &mut Decoder<'_>, is_update: bool) -> ExiResult<Body> {
    d.expect_event(0, 1)?; // CH
    let response_code = schema::ResponseCode::from_index(d.nbit(schema::ResponseCode::WIDTH)?)?;
    d.expect_event(0, 1)?; // EE
    d.expect_event(0, 1)?;
    let sa = schema::CertificateChain::decode_body(d)?;
    d.expect_event(0, 1)?;
    let contract = schema::CertificateChain::decode_body(d)?;
    d.expect_event(0, 1)?;
    let key = schema::ContractSignatureEncryptedPrivateKey::decode_body(d)?;
    d.expect_event(0, 1)?;
    let dh = schema::DiffieHellmanPublickey::decode_body(d)?;
    d.expect_event(0, 1)?;
    let emaid = schema::EMAID::decode_body(d)?;
    if is_update {
        let retry_counter = match d.nbit(2)? {
            0 => {
                d.expect_event(0, 1)?;
                let v = i16::try_from(d.int()?).map_err(|_| ExiError::ValueOutOfRange)?;
                d.expect_event(0, 1)?;
                d.expect_event(0, 1)?; // EE
                Some(v)
            }
            1 => None,
            _ => return Err(ExiError::UnknownEventCode),
        };
        Ok(Body::CertificateUpdateRes(schema::CertificateUpdateRes {
            response_code,
            sa_provisioning_certificate_chain: sa,
            contract_signature_cert_chain: contract,
            contract_signature_encrypted_private_key: key,
            dh_public_key: dh,
            e_maid: emaid,
            retry_counter,
        }))
    } else {
        d.expect_event(0, 1)?; // EE
        Ok(Body::CertificateInstallationRes(
            schema::CertificateInstallationRes {
                response_code,
                sa_provisioning_certificate_chain: sa,
                contract_signature_cert_chain: contract,
                contract_signature_encrypted_private_key: key,
                dh_public_key: dh,
                e_maid: emaid,
            },
        ))
    }
}

fn attr<'n>(n: &'n Node, name: &str) -> Option<&'n str> {
    n.attrs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn base64_text(n: &Node, max: usize) -> R<Vec<u8>> {
    let clean: String = n.text.chars().filter(|c| !c.is_whitespace()).collect();
    let v = base64::engine::general_purpose::STANDARD
        .decode(clean.as_bytes())
        .map_err(|e| invalid(format!("legacy body: {} is not base64: {e}", n.local)))?;
    if v.len() > max {
        return Err(invalid(format!(
            "legacy body: {} longer than {max} bytes",
            n.local
        )));
    }
    Ok(v)
}

fn chain(n: &Node) -> R<schema::CertificateChain> {
    let mut certificate = None;
    let mut subs = None;
    for c in &n.children {
        match c.local.as_str() {
            "Certificate" if certificate.is_none() => certificate = Some(base64_text(c, 800)?),
            "SubCertificates" if subs.is_none() => {
                let mut list = Vec::new();
                for s in &c.children {
                    if s.local != "Certificate" || list.len() >= 4 {
                        return Err(invalid("legacy body: bad SubCertificates"));
                    }
                    list.push(base64_text(s, 800)?);
                }
                subs = Some(schema::SubCertificates { certificate: list });
            }
            other => {
                return Err(invalid(format!(
                    "legacy body: unexpected {other} in {}",
                    n.local
                )));
            }
        }
    }
    Ok(schema::CertificateChain {
        id: attr(n, "Id").map(str::to_string),
        certificate: certificate
            .ok_or_else(|| invalid(format!("legacy body: {} without Certificate", n.local)))?,
        sub_certificates: subs,
    })
}

fn to_body(children: Vec<Node>, is_update: bool) -> R<Body> {
    let find = |name: &str| children.iter().find(|c| c.local == name);
    let need =
        |name: &str| find(name).ok_or_else(|| invalid(format!("legacy body without {name}")));
    if let Some(other) = children.iter().find(|c| {
        !matches!(
            c.local.as_str(),
            "ResponseCode"
                | "SAProvisioningCertificateChain"
                | "ContractSignatureCertChain"
                | "ContractSignatureEncryptedPrivateKey"
                | "DHpublickey"
                | "eMAID"
                | "RetryCounter"
        )
    }) {
        return Err(invalid(format!(
            "legacy body: unexpected element {}",
            other.local
        )));
    }
    // A missing ResponseCode is read as OK (the legacy Hubject response has none;
    // it is not covered by the signature).
    let response_code = match find("ResponseCode") {
        None => schema::ResponseCode::OK,
        Some(n) => schema::ResponseCode::ALL
            .into_iter()
            .find(|c| c.as_str() == n.text.trim())
            .ok_or_else(|| invalid(format!("legacy body: ResponseCode {}", n.text)))?,
    };
    let id = |n: &Node| {
        attr(n, "Id")
            .map(str::to_string)
            .ok_or_else(|| invalid(format!("legacy body: {} without Id", n.local)))
    };
    let key = need("ContractSignatureEncryptedPrivateKey")?;
    let dh = need("DHpublickey")?;
    let emaid = need("eMAID")?;
    let emaid_value = emaid.text.trim().to_string();
    if !(14..=15).contains(&emaid_value.chars().count()) {
        return Err(invalid("legacy body: eMAID length"));
    }
    let sa = chain(need("SAProvisioningCertificateChain")?)?;
    let contract = chain(need("ContractSignatureCertChain")?)?;
    let key = schema::ContractSignatureEncryptedPrivateKey {
        id: id(key)?,
        value: base64_text(key, 48)?,
    };
    let dh = schema::DiffieHellmanPublickey {
        id: id(dh)?,
        value: base64_text(dh, 65)?,
    };
    let e_maid = schema::EMAID {
        id: id(emaid)?,
        value: emaid_value,
    };
    if is_update {
        let retry_counter = match find("RetryCounter") {
            None => None,
            Some(n) => Some(
                n.text
                    .trim()
                    .parse::<i16>()
                    .map_err(|_| invalid("legacy body: RetryCounter"))?,
            ),
        };
        Ok(Body::CertificateUpdateRes(schema::CertificateUpdateRes {
            response_code,
            sa_provisioning_certificate_chain: sa,
            contract_signature_cert_chain: contract,
            contract_signature_encrypted_private_key: key,
            dh_public_key: dh,
            e_maid,
            retry_counter,
        }))
    } else {
        Ok(Body::CertificateInstallationRes(
            schema::CertificateInstallationRes {
                response_code,
                sa_provisioning_certificate_chain: sa,
                contract_signature_cert_chain: contract,
                contract_signature_encrypted_private_key: key,
                dh_public_key: dh,
                e_maid,
            },
        ))
    }
}
