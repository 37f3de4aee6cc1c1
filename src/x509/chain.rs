//! Path validation of certificates we did not issue (OEM provisioning chains, contract chains an
//! EV presents), and matching of the `RootCertificateID`s an EV lists. OpenSSL does the path
//! building and signature checks (RustCrypto has no path validator); the time is the caller's
//! clock, not the system's.

use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::verify::X509VerifyParam;
use openssl::x509::{X509, X509StoreContext, X509VerifyResult};

use super::ParsedCert;
use super::name;

/// Why a chain does not validate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// A certificate of the path has expired (or is not valid yet).
    #[error("certificate chain: {0}")]
    Expired(String),
    /// No path to a trusted root, a bad signature, or a malformed certificate.
    #[error("certificate chain: {0}")]
    Untrusted(String),
}

/// Parse a DER certificate for [`verify_parsed`] (OpenSSL 3 parsing is the expensive part of a
/// path check: parse the fixed sets once and keep them).
pub fn parse(der: &[u8]) -> Result<X509, ChainError> {
    X509::from_der(der).map_err(|e| ChainError::Untrusted(format!("unreadable certificate: {e}")))
}

/// Parse every certificate of `ders` that parses (unreadable ones can vouch for nothing).
pub fn parse_all<'a>(ders: impl IntoIterator<Item = &'a [u8]>) -> Vec<X509> {
    ders.into_iter()
        .filter_map(|d| X509::from_der(d).ok())
        .collect()
}

/// Validate `leaf` through `intermediates` to one of `roots` at Unix time `at`. Returns the DER
/// of the root the path ended in.
pub fn verify(
    leaf: &[u8],
    intermediates: &[&[u8]],
    roots: &[&[u8]],
    at: i64,
) -> Result<Vec<u8>, ChainError> {
    let leaf = parse(leaf)?;
    let mut inter = Vec::with_capacity(intermediates.len());
    for i in intermediates {
        inter.push(parse(i)?);
    }
    let roots = parse_all(roots.iter().copied());
    verify_parsed(&leaf, &inter, &roots, at)
}

/// [`verify`] for parsed certificates.
pub fn verify_parsed(
    leaf: &X509,
    intermediates: &[X509],
    roots: &[X509],
    at: i64,
) -> Result<Vec<u8>, ChainError> {
    let build = || -> Result<Result<Vec<u8>, ChainError>, openssl::error::ErrorStack> {
        let mut sb = X509StoreBuilder::new()?;
        for r in roots {
            sb.add_cert(r.clone())?;
        }
        let mut param = X509VerifyParam::new()?;
        param.set_time(at);
        sb.set_param(&param)?;
        let store = sb.build();
        let mut chain = Stack::new()?;
        for i in intermediates {
            chain.push(i.clone())?;
        }
        let mut ctx = X509StoreContext::new()?;
        ctx.init(&store, leaf, &chain, |c| {
            if c.verify_cert()? {
                let root = c
                    .chain()
                    .and_then(|s| s.iter().last().map(|r| r.to_der()))
                    .transpose()?;
                return Ok(Ok(root.unwrap_or_default()));
            }
            let err = c.error();
            let what = format!("{} (depth {})", err.error_string(), c.error_depth());
            Ok(Err(if is_time_error(err) {
                ChainError::Expired(what)
            } else {
                ChainError::Untrusted(what)
            }))
        })
    };
    build().map_err(|e| ChainError::Untrusted(format!("path validation failed: {e}")))?
}

fn is_time_error(e: X509VerifyResult) -> bool {
    // X509_V_ERR_CERT_NOT_YET_VALID 9, CERT_HAS_EXPIRED 10.
    matches!(e.as_raw(), 9 | 10)
}

/// Whether `root` is the certificate an EV names by `issuer_name` (a DN string in whatever RDN
/// order and spacing the EV sent) and `serial` (big-endian magnitude, no sign). The DN is
/// compared structurally: the same attributes with the same values, in any order, attribute
/// types and values case-insensitively.
pub fn root_matches(root: &ParsedCert, issuer_name: &str, serial: &[u8]) -> bool {
    let ours = root.tbs().serial_number().as_bytes();
    if strip_zeros(ours) != strip_zeros(serial) {
        return false;
    }
    let Ok(pairs) = name::parse_pairs(issuer_name) else {
        return false;
    };
    let mut theirs: Vec<(String, String)> = pairs
        .into_iter()
        .map(|(t, v)| (t.to_ascii_uppercase(), v.trim().to_lowercase()))
        .collect();
    let mut mine: Vec<(String, String)> = name::attributes(root.tbs().subject().as_ref())
        .into_iter()
        .filter_map(|(oid, v)| {
            let t = name::short_name(&oid)?.to_ascii_uppercase();
            Some((t, v?.trim().to_lowercase()))
        })
        .collect();
    theirs.sort();
    mine.sort();
    !mine.is_empty() && theirs == mine
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let i = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    &b[i..]
}
