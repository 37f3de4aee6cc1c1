//! Degenerate ("certs-only") PKCS#7 / CMS SignedData, as EST and OPCP return certificates.
//!
//! Built by hand rather than with `openssl::pkcs7` or a `der` SET OF: both sort the certificates
//! (DER SET OF ordering), but OPCP clients read positions — MaEVe and CitrineOS take
//! `certificates[0]` as the leaf, CitrineOS treats the last cacerts entry as the root. Hubject's
//! own answers keep the semantic order, and so do we (BER allows it; every parser accepts it).

use super::der_sequence;

const OID_SIGNED_DATA: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02,
];
const OID_DATA: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01,
];

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    // der_sequence writes tag 0x30; reuse its length encoding and swap the tag.
    let mut v = der_sequence(&[content]);
    v[0] = tag;
    v
}

/// ContentInfo { signedData, SignedData { v1, {}, {data}, `[0]` certs (in the given order), {} } }.
pub fn certs_only(certs: &[&[u8]]) -> Vec<u8> {
    let all: Vec<u8> = certs.iter().flat_map(|c| c.iter().copied()).collect();
    let signed_data = der_sequence(&[
        &[0x02, 0x01, 0x01],        // version 1
        &[0x31, 0x00],              // digestAlgorithms: empty SET
        &der_sequence(&[OID_DATA]), // encapContentInfo: id-data, no content
        &tlv(0xa0, &all),           // certificates [0] IMPLICIT
        &[0x31, 0x00],              // signerInfos: empty SET
    ]);
    der_sequence(&[OID_SIGNED_DATA, &tlv(0xa0, &signed_data)])
}

/// [`certs_only`], base64 (what EST and OPCP put in the body).
pub fn certs_only_base64(certs: &[&[u8]]) -> String {
    base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        certs_only(certs),
    )
}
