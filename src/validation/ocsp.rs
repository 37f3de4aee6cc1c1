//! Asking another PKI's OCSP responder (RFC 6960), as format code: the request for a
//! certificate and its issuer, and the verification of the answer. No I/O: the RA sends the
//! request through the guarded fetcher.
//!
//! An answer counts only when it verifies: signed by the certificate's issuer or by a responder
//! the issuer certified with id-kp-OCSPSigning (OpenSSL's `OCSP_basic_verify`, at our clock's
//! time, the issuer as the only trust anchor), a single response for exactly our CertID,
//! `thisUpdate` not more than 5 minutes ahead of our clock and `nextUpdate` not passed.
//! Anything else is [`OcspError`], which callers treat as *unreachable*, never as good.

use openssl::hash::MessageDigest;
use openssl::ocsp::{OcspCertId, OcspCertStatus, OcspFlag, OcspRequest, OcspResponse};
use openssl::stack::Stack;
use openssl::x509::X509;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::verify::{X509VerifyFlags, X509VerifyParam};

use crate::x509::ParsedCert;

/// How far ahead of our clock a `thisUpdate` may be (clock skew).
const SKEW: i64 = 300;

/// A verified answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OcspAnswer {
    /// Good until `next_update` (Unix seconds, when the responder gave one).
    Good {
        /// `nextUpdate`.
        next_update: Option<i64>,
    },
    /// Revoked, with the reason's name when given.
    Revoked {
        /// CRLReason name, or `unspecified`.
        reason: String,
        /// `nextUpdate`.
        next_update: Option<i64>,
    },
    /// The responder does not know the certificate.
    Unknown {
        /// `nextUpdate`.
        next_update: Option<i64>,
    },
}

/// An answer that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("OCSP answer not usable: {0}")]
pub struct OcspError(pub String);

fn e(what: &str) -> impl Fn(openssl::error::ErrorStack) -> OcspError + '_ {
    move |err| OcspError(format!("{what}: {err}"))
}

/// The OCSP URL of a certificate's authority information access, when it has one (http only,
/// as RFC 6960 responders are).
pub fn responder_url(cert: &ParsedCert) -> Option<String> {
    use der::Decode;
    let ext = cert.extension(const_oid::db::rfc5280::ID_PE_AUTHORITY_INFO_ACCESS)?;
    let aia = x509_cert::ext::pkix::AuthorityInfoAccessSyntax::from_der(ext.extn_value.as_bytes())
        .ok()?;
    aia.0.into_iter().find_map(|ad| {
        if ad.access_method != const_oid::db::rfc5280::ID_AD_OCSP {
            return None;
        }
        match ad.access_location {
            x509_cert::ext::pkix::name::GeneralName::UniformResourceIdentifier(u) => {
                Some(u.to_string())
            }
            _ => None,
        }
    })
}

/// The first CRL distribution point URL of a certificate, when it has one.
pub fn crl_url(cert: &ParsedCert) -> Option<String> {
    use der::Decode;
    let ext = cert.extension(const_oid::db::rfc5280::ID_CE_CRL_DISTRIBUTION_POINTS)?;
    let dps =
        x509_cert::ext::pkix::CrlDistributionPoints::from_der(ext.extn_value.as_bytes()).ok()?;
    dps.0
        .into_iter()
        .find_map(|dp| match dp.distribution_point? {
            x509_cert::ext::pkix::name::DistributionPointName::FullName(names) => {
                names.into_iter().find_map(|n| match n {
                    x509_cert::ext::pkix::name::GeneralName::UniformResourceIdentifier(u) => {
                        Some(u.to_string())
                    }
                    _ => None,
                })
            }
            _ => None,
        })
}

fn x509(c: &ParsedCert) -> Result<X509, OcspError> {
    X509::from_der(&c.der).map_err(e("certificate"))
}

fn cert_id(
    cert: &ParsedCert,
    issuer: &ParsedCert,
    md: MessageDigest,
) -> Result<OcspCertId, OcspError> {
    let (c, i) = (x509(cert)?, x509(issuer)?);
    OcspCertId::from_cert(md, &c, &i).map_err(e("CertID"))
}

/// A stand-in for a certificate known only by its CertID: `serial`, issued by `issuer` (its
/// issuer name), with a throw-away key. OpenSSL builds CertIDs only from certificates; the
/// CertID of this one is the requested one, since it hashes the same issuer name and key and
/// carries the same serial. It is never trusted for anything else.
pub fn stand_in(issuer: &ParsedCert, serial: &[u8]) -> Result<ParsedCert, OcspError> {
    let iss = x509(issuer)?;
    let group = openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1)
        .map_err(e("stand-in"))?;
    let key = openssl::ec::EcKey::generate(&group)
        .and_then(openssl::pkey::PKey::from_ec_key)
        .map_err(e("stand-in"))?;
    let mut b = X509::builder().map_err(e("stand-in"))?;
    let sn = openssl::bn::BigNum::from_slice(serial)
        .and_then(|b| b.to_asn1_integer())
        .map_err(e("stand-in"))?;
    b.set_version(2).map_err(e("stand-in"))?;
    b.set_serial_number(&sn).map_err(e("stand-in"))?;
    let (from, to) = (
        openssl::asn1::Asn1Time::from_unix(0).map_err(e("stand-in"))?,
        openssl::asn1::Asn1Time::from_unix(1).map_err(e("stand-in"))?,
    );
    b.set_not_before(&from).map_err(e("stand-in"))?;
    b.set_not_after(&to).map_err(e("stand-in"))?;
    b.set_issuer_name(iss.subject_name())
        .map_err(e("stand-in"))?;
    b.set_subject_name(iss.subject_name())
        .map_err(e("stand-in"))?;
    b.set_pubkey(&key).map_err(e("stand-in"))?;
    b.sign(&key, MessageDigest::sha256())
        .map_err(e("stand-in"))?;
    let der = b.build().to_der().map_err(e("stand-in"))?;
    ParsedCert::from_der(&der).map_err(|err| OcspError(format!("stand-in: {err}")))
}

/// The cache key of a certificate's status: its CertID (SHA-1 of the issuer's name and key, the
/// serial), as `OCSP_cert_to_id` computes it.
pub fn cache_key(cert: &ParsedCert, issuer: &ParsedCert) -> Vec<u8> {
    let ik = issuer.spki().subject_public_key.raw_bytes();
    let mut k = Vec::with_capacity(64);
    k.extend_from_slice(&<sha1::Sha1 as sha1::Digest>::digest(cert.issuer_der()));
    k.extend_from_slice(&<sha1::Sha1 as sha1::Digest>::digest(ik));
    k.extend_from_slice(cert.tbs().serial_number().as_bytes());
    k
}

/// A DER OCSP request for `cert`, issued by `issuer`, its CertID hashed with `md` (no nonce:
/// answers are cacheable, RFC 5019).
pub fn request(
    cert: &ParsedCert,
    issuer: &ParsedCert,
    md: MessageDigest,
) -> Result<Vec<u8>, OcspError> {
    let mut req = OcspRequest::new().map_err(e("request"))?;
    req.add_id(cert_id(cert, issuer, md)?)
        .map_err(e("request"))?;
    req.to_der().map_err(e("request"))
}

/// Unix seconds of an ASN.1 GeneralizedTime as OpenSSL prints it (`Dec  6 05:00:00 2026 GMT`):
/// the binding exposes no conversion for this type.
fn unix(t: &openssl::asn1::Asn1GeneralizedTimeRef) -> Result<i64, OcspError> {
    let text = t.to_string();
    let bad = || OcspError(format!("unreadable time '{text}'"));
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [mon, day, hms, year, "GMT"] = parts.as_slice() else {
        return Err(bad());
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let m = MONTHS.iter().position(|x| x == mon).ok_or_else(bad)?;
    let month =
        time::Month::try_from(u8::try_from(m + 1).map_err(|_| bad())?).map_err(|_| bad())?;
    let hms: Vec<u8> = hms
        .split(':')
        .map(|x| x.split('.').next().unwrap_or(x).parse::<u8>())
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    let [h, mi, se] = hms.as_slice() else {
        return Err(bad());
    };
    let date = time::Date::from_calendar_date(
        year.parse().map_err(|_| bad())?,
        month,
        day.parse().map_err(|_| bad())?,
    )
    .map_err(|_| bad())?;
    let t = date.with_hms(*h, *mi, *se).map_err(|_| bad())?.assume_utc();
    Ok(t.unix_timestamp())
}

/// Verify `der`, the answer about `cert` (issued by `issuer`, CertID hashed with `md`), at
/// `now` (see the module).
pub fn verify(
    der: &[u8],
    cert: &ParsedCert,
    issuer: &ParsedCert,
    md: MessageDigest,
    now: i64,
) -> Result<OcspAnswer, OcspError> {
    let resp = OcspResponse::from_der(der).map_err(e("decoding"))?;
    if resp.status() != openssl::ocsp::OcspResponseStatus::SUCCESSFUL {
        return Err(OcspError(format!(
            "responder status {}",
            resp.status().as_raw()
        )));
    }
    let basic = resp.basic().map_err(e("basic response"))?;
    let issuer_x = x509(issuer)?;
    let mut sb = X509StoreBuilder::new().map_err(e("store"))?;
    sb.add_cert(issuer_x.clone()).map_err(e("store"))?;
    let mut param = X509VerifyParam::new().map_err(e("store"))?;
    param.set_time(now);
    // The issuer is the anchor even when it is a sub-CA.
    param
        .set_flags(X509VerifyFlags::PARTIAL_CHAIN)
        .map_err(e("store"))?;
    sb.set_param(&param).map_err(e("store"))?;
    let store = sb.build();
    let mut certs = Stack::new().map_err(e("store"))?;
    certs.push(issuer_x).map_err(e("store"))?;
    basic
        .verify(&certs, &store, OcspFlag::empty())
        .map_err(e("signature"))?;
    let id = cert_id(cert, issuer, md)?;
    let st = basic
        .find_status(&id)
        .ok_or_else(|| OcspError("no response for this certificate's CertID".into()))?;
    let this_update = unix(st.this_update)?;
    if this_update > now + SKEW {
        return Err(OcspError(format!(
            "thisUpdate is {}s ahead of our clock",
            this_update - now
        )));
    }
    let next_update = match st.next_update() {
        Some(t) => Some(unix(t)?),
        None => None,
    };
    if next_update.is_some_and(|n| n < now) {
        return Err(OcspError("nextUpdate has passed".into()));
    }
    Ok(match st.status {
        OcspCertStatus::GOOD => OcspAnswer::Good { next_update },
        OcspCertStatus::REVOKED => OcspAnswer::Revoked {
            reason: reason_name(st.reason.as_raw()).to_string(),
            next_update,
        },
        _ => OcspAnswer::Unknown { next_update },
    })
}

fn reason_name(r: i32) -> &'static str {
    match r {
        1 => "keyCompromise",
        2 => "cACompromise",
        3 => "affiliationChanged",
        4 => "superseded",
        5 => "cessationOfOperation",
        6 => "certificateHold",
        8 => "removeFromCRL",
        9 => "privilegeWithdrawn",
        10 => "aACompromise",
        _ => "unspecified",
    }
}

#[cfg(test)]
mod tests {
    //! Answers made by a responder we did not write (`openssl ocsp -reqin`), judged here.
    use super::*;
    use std::process::Command;

    fn sh(args: &[&str]) {
        let out = Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn another_serial_and_a_passed_next_update_are_not_usable() {
        let d = tempfile::tempdir().unwrap();
        let p = |n: &str| d.path().join(n).display().to_string();
        sh(&[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            &p("ca.key"),
        ]);
        sh(&[
            "req",
            "-x509",
            "-new",
            "-key",
            &p("ca.key"),
            "-subj",
            "/CN=Test CA",
            "-days",
            "2",
            "-out",
            &p("ca.pem"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        let mut certs = Vec::new();
        for (i, serial) in ["1001", "1002"].iter().enumerate() {
            let key = p(&format!("l{i}.key"));
            let csr = p(&format!("l{i}.csr"));
            let pem = p(&format!("l{i}.pem"));
            sh(&[
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
                &key,
            ]);
            sh(&[
                "req",
                "-new",
                "-key",
                &key,
                "-subj",
                &format!("/CN=leaf {i}"),
                "-out",
                &csr,
            ]);
            sh(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &p("ca.pem"),
                "-CAkey",
                &p("ca.key"),
                "-set_serial",
                &format!("0x{serial}"),
                "-days",
                "1",
                "-out",
                &pem,
            ]);
            certs.push(ParsedCert::from_pem(&std::fs::read(&pem).unwrap()).unwrap());
        }
        let ca = ParsedCert::from_pem(&std::fs::read(p("ca.pem")).unwrap()).unwrap();
        std::fs::write(
            p("index"),
            "V\t491231235959Z\t\t1001\tunknown\t/CN=a\nV\t491231235959Z\t\t1002\tunknown\t/CN=b\n",
        )
        .unwrap();
        let req = request(&certs[0], &ca, MessageDigest::sha1()).unwrap();
        std::fs::write(p("req.der"), &req).unwrap();
        sh(&[
            "ocsp",
            "-index",
            &p("index"),
            "-CA",
            &p("ca.pem"),
            "-rsigner",
            &p("ca.pem"),
            "-rkey",
            &p("ca.key"),
            "-reqin",
            &p("req.der"),
            "-respout",
            &p("resp.der"),
            "-nmin",
            "10",
        ]);
        let resp = std::fs::read(p("resp.der")).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let good = verify(&resp, &certs[0], &ca, MessageDigest::sha1(), now).unwrap();
        assert!(
            matches!(good, OcspAnswer::Good { next_update: Some(n) } if n > now),
            "{good:?}"
        );
        // The same answer replayed for another certificate of the issuer.
        let e = verify(&resp, &certs[1], &ca, MessageDigest::sha1(), now).unwrap_err();
        assert!(e.0.contains("CertID"), "{e}");
        // Judged after its nextUpdate.
        let e = verify(&resp, &certs[0], &ca, MessageDigest::sha1(), now + 3600).unwrap_err();
        assert!(e.0.contains("nextUpdate"), "{e}");
        // thisUpdate far ahead of our clock.
        let e = verify(&resp, &certs[0], &ca, MessageDigest::sha1(), now - 3600).unwrap_err();
        assert!(e.0.contains("ahead") || e.0.contains("signature"), "{e}");
        // Truncated.
        assert!(
            verify(
                &resp[..resp.len() / 2],
                &certs[0],
                &ca,
                MessageDigest::sha1(),
                now
            )
            .is_err()
        );
    }
}
