//! ECDSA over our named curves with OpenSSL's EC primitives, for the per-request checks (a CSR's
//! self-signature, the point a CSR carries, our own signature on a certificate just built).
//!
//! The SEC1 point goes straight into an `EC_KEY` (`EC_POINT_oct2point`, which checks the point
//! is on the curve) and the DER signature into `ECDSA_do_verify`; the digest is computed in
//! process. This skips what `X509_REQ_verify` / `d2i_PUBKEY` cost in OpenSSL 3: a provider
//! decoder context per key and algorithm fetches under a process-wide lock, which took more CPU
//! than the verification itself (about 45% of an enrollment, `docs/benchmarks.md`). The
//! arithmetic is still OpenSSL's; RSA keys keep the generic OpenSSL path.

use std::sync::OnceLock;

use const_oid::ObjectIdentifier;
use openssl::bn::BigNumContext;
use openssl::ec::{EcGroup, EcKey, EcPoint};
use openssl::ecdsa::EcdsaSig;
use openssl::nid::Nid;
use spki::SubjectPublicKeyInfoRef;

use crate::alg::KeyAlg;

/// The curve group of `alg` (built once per process; groups are immutable).
fn group(alg: KeyAlg) -> Option<&'static EcGroup> {
    static GROUPS: [OnceLock<Option<EcGroup>>; 3] =
        [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let (slot, nid) = match alg {
        KeyAlg::EcP256 => (0, Nid::X9_62_PRIME256V1),
        KeyAlg::EcP384 => (1, Nid::SECP384R1),
        KeyAlg::EcP521 => (2, Nid::SECP521R1),
        _ => return None,
    };
    GROUPS[slot]
        .get_or_init(|| EcGroup::from_curve_name(nid).ok())
        .as_ref()
}

/// The curve and SEC1 point of an EC SPKI (DER); `None` for anything else (RSA, unknown
/// curves, malformed input).
fn ec_point(spki_der: &[u8]) -> Option<(KeyAlg, Vec<u8>)> {
    use der::Decode;
    let spki = SubjectPublicKeyInfoRef::from_der(spki_der).ok()?;
    if spki.algorithm.oid != super::OID_EC_PUBLIC_KEY {
        return None;
    }
    let curve: ObjectIdentifier = spki.algorithm.parameters?.decode_as().ok()?;
    let alg = KeyAlg::from_curve_oid(&curve)?;
    Some((alg, spki.subject_public_key.raw_bytes().to_vec()))
}

/// The public key of an EC SPKI as an OpenSSL key, the point checked to be on its curve.
/// `None` when the SPKI is not an EC key on our curves; `Some(Err)` when its point is invalid.
fn ec_key(spki_der: &[u8]) -> Option<Result<EcKey<openssl::pkey::Public>, ()>> {
    let (alg, point) = ec_point(spki_der)?;
    let g = group(alg)?;
    let key = (|| {
        let mut ctx = BigNumContext::new().map_err(|_| ())?;
        let p = EcPoint::from_bytes(g, &point, &mut ctx).map_err(|_| ())?;
        if !p.is_on_curve(g, &mut ctx).map_err(|_| ())? {
            return Err(());
        }
        EcKey::from_public_key(g, &p).map_err(|_| ())
    })();
    Some(key)
}

/// Whether an EC SPKI's point is a valid point of its curve; `None` when it is not an EC key on
/// one of our curves (ask OpenSSL's generic decoder).
pub fn ec_point_valid(spki_der: &[u8]) -> Option<bool> {
    ec_key(spki_der).map(|k| k.is_ok())
}

/// The digest an ECDSA signature algorithm signs; `None` for other algorithms.
fn digest(sig_alg: &ObjectIdentifier, data: &[u8]) -> Option<Vec<u8>> {
    use const_oid::db::rfc5912 as o;
    use sha2::Digest;
    Some(match *sig_alg {
        o::ECDSA_WITH_SHA_256 => sha2::Sha256::digest(data).to_vec(),
        o::ECDSA_WITH_SHA_384 => sha2::Sha384::digest(data).to_vec(),
        o::ECDSA_WITH_SHA_512 => sha2::Sha512::digest(data).to_vec(),
        _ => return None,
    })
}

/// Verify `sig_der` (an ECDSA-Sig-Value) by `sig_alg` over `signed` under the EC key of
/// `spki_der`. `None` when the key is not EC on our curves or `sig_alg` is not ECDSA with SHA-2
/// (ask OpenSSL's generic path); `Some(false)` for a bad signature or an invalid point.
pub fn verify(
    spki_der: &[u8],
    sig_alg: &ObjectIdentifier,
    signed: &[u8],
    sig_der: &[u8],
) -> Option<bool> {
    let key = ec_key(spki_der)?;
    let d = digest(sig_alg, signed)?;
    let Ok(key) = key else {
        return Some(false);
    };
    let Ok(sig) = EcdsaSig::from_der(sig_der) else {
        return Some(false);
    };
    Some(sig.verify(&d, &key).unwrap_or(false))
}

/// A raw P-256 ECDSA signature (`r‖s`, 64 bytes, as JWS ES256 carries it) in low-S form: `s`
/// replaced by `n − s` when it is above `n/2`. Both are valid signatures of the same message
/// (ECDSA is malleable), so a verifier that accepts both lets anyone turn one token into a
/// second, different-looking one; we emit only low-S and accept only low-S. `None` when `raw`
/// is not a well-formed signature (wrong length, `r` or `s` zero or not below `n`).
pub fn p256_low_s(raw: &[u8]) -> Option<Vec<u8>> {
    let (r, s, high) = p256_split(raw)?;
    if !high {
        return Some(raw.to_vec());
    }
    let mut flipped = openssl::bn::BigNum::new().ok()?;
    flipped.checked_sub(p256_order()?, &s).ok()?;
    let mut out = r;
    out.extend(flipped.to_vec_padded(32).ok()?);
    Some(out)
}

/// Whether a raw P-256 signature (`r‖s`) is well-formed and low-S (`s ≤ n/2`).
pub fn p256_is_low_s(raw: &[u8]) -> bool {
    p256_split(raw).is_some_and(|(_, _, high)| !high)
}

/// The order n of P-256.
fn p256_order() -> Option<&'static openssl::bn::BigNumRef> {
    static N: OnceLock<Option<openssl::bn::BigNum>> = OnceLock::new();
    N.get_or_init(|| {
        openssl::bn::BigNum::from_hex_str(
            "FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551",
        )
        .ok()
    })
    .as_deref()
}

/// (r bytes, s, whether s > n/2) of a well-formed raw P-256 signature: 64 bytes, r and s in
/// [1, n − 1].
fn p256_split(raw: &[u8]) -> Option<(Vec<u8>, openssl::bn::BigNum, bool)> {
    use openssl::bn::BigNum;
    if raw.len() != 64 {
        return None;
    }
    let n = p256_order()?;
    let r = BigNum::from_slice(&raw[..32]).ok()?;
    let s = BigNum::from_slice(&raw[32..]).ok()?;
    let zero = BigNum::new().ok()?;
    if r == zero || s == zero || &*r >= n || &*s >= n {
        return None;
    }
    let mut half = BigNum::new().ok()?;
    half.rshift1(n).ok()?;
    let high = s > half;
    Some((raw[..32].to_vec(), s, high))
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::hash::MessageDigest;
    use openssl::pkey::PKey;
    use openssl::sign::Signer;

    fn keypair(nid: Nid) -> (PKey<openssl::pkey::Private>, Vec<u8>) {
        let g = EcGroup::from_curve_name(nid).unwrap();
        let k = PKey::from_ec_key(EcKey::generate(&g).unwrap()).unwrap();
        let spki = k.public_key_to_der().unwrap();
        (k, spki)
    }

    #[test]
    fn agrees_with_openssl_on_good_and_bad_signatures() {
        use const_oid::db::rfc5912 as o;
        for (nid, md, oid) in [
            (
                Nid::X9_62_PRIME256V1,
                MessageDigest::sha256(),
                o::ECDSA_WITH_SHA_256,
            ),
            (
                Nid::SECP384R1,
                MessageDigest::sha384(),
                o::ECDSA_WITH_SHA_384,
            ),
            (
                Nid::SECP521R1,
                MessageDigest::sha512(),
                o::ECDSA_WITH_SHA_512,
            ),
        ] {
            let (k, spki) = keypair(nid);
            let msg = b"to be signed";
            let mut s = Signer::new(md, &k).unwrap();
            s.update(msg).unwrap();
            let sig = s.sign_to_vec().unwrap();
            assert_eq!(verify(&spki, &oid, msg, &sig), Some(true));
            assert_eq!(verify(&spki, &oid, b"to be signeD", &sig), Some(false));
            let (_, other) = keypair(nid);
            assert_eq!(verify(&other, &oid, msg, &sig), Some(false), "another key");
            let mut bad = sig.clone();
            let n = bad.len();
            bad[n - 1] ^= 1;
            assert_eq!(verify(&spki, &oid, msg, &bad), Some(false));
            assert_eq!(verify(&spki, &oid, msg, b"\x30\x00"), Some(false));
            assert_eq!(ec_point_valid(&spki), Some(true));
        }
    }

    #[test]
    fn an_off_curve_point_is_invalid_and_rsa_is_not_ours() {
        let (_, mut spki) = keypair(Nid::X9_62_PRIME256V1);
        let n = spki.len();
        spki[n - 1] ^= 1; // y no longer matches x
        assert_eq!(ec_point_valid(&spki), Some(false));
        let oid = const_oid::db::rfc5912::ECDSA_WITH_SHA_256;
        assert_eq!(verify(&spki, &oid, b"m", b"\x30\x00"), Some(false));
        let rsa = PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
        let rsa_spki = rsa.public_key_to_der().unwrap();
        assert_eq!(ec_point_valid(&rsa_spki), None);
        assert_eq!(verify(&rsa_spki, &oid, b"m", b"\x30\x00"), None);
        let (_, p256) = keypair(Nid::X9_62_PRIME256V1);
        let rsa_alg = const_oid::db::rfc5912::SHA_256_WITH_RSA_ENCRYPTION;
        assert_eq!(verify(&p256, &rsa_alg, b"m", b"\x30\x00"), None);
    }

    #[test]
    fn p256_signatures_are_normalised_to_low_s_and_both_forms_told_apart() {
        // n/2 (floor) is low, n/2 + 1 high; n − s flips between them.
        let n = hex::decode("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551")
            .unwrap();
        let half = hex::decode("7FFFFFFF800000007FFFFFFFFFFFFFFFDE737D56D38BCF4279DCE5617E3192A8")
            .unwrap();
        let r = [7u8; 32];
        let sig = |s: &[u8]| [&r[..], s].concat();
        assert!(p256_is_low_s(&sig(&half)));
        let mut above = half.clone();
        above[31] += 1;
        assert!(!p256_is_low_s(&sig(&above)));
        let low = p256_low_s(&sig(&above)).unwrap();
        assert!(p256_is_low_s(&low));
        assert_eq!(&low[..32], &r[..]);
        // (n/2 + 1) + n/2 = n, so n − (n/2 + 1) = n/2.
        assert_eq!(&low[32..], &half[..]);
        assert_eq!(p256_low_s(&sig(&half)).unwrap(), sig(&half), "already low");
        // Not a signature: s = 0, s = n, the wrong length.
        assert!(!p256_is_low_s(&sig(&[0u8; 32])));
        assert!(!p256_is_low_s(&sig(&n)));
        assert_eq!(p256_low_s(&[1u8; 63]), None);
    }
}
