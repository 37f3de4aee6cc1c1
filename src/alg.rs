//! Key, hash and signature algorithms: the vocabulary every layer shares (profiles, the HSM, X.509,
//! CRL and OCSP encodings). A leaf: no I/O, no keys.
//!
//! There is one [`HashAlg`] for everything. SHA-1 is in it because OCSP CertIDs use it (RFC 5019's
//! default); [`SignatureAlg`] has no SHA-1 member, so nothing can be signed with it.

use der::asn1::ObjectIdentifier;
use sha2::Digest;

/// Key algorithms the CA can hold. ECDSA for ISO 15118 (and OCPP), RSA for OCPP security
/// profiles 2 and 3, where most charging stations in the field only do RSA 2048. Ed448 is not
/// offered yet (see docs/profiles.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyAlg {
    /// NIST P-256 (secp256r1): ISO 15118-2.
    EcP256,
    /// NIST P-384 (secp384r1).
    EcP384,
    /// NIST P-521 (secp521r1): ISO 15118-20.
    EcP521,
    /// RSA with a 2048-bit modulus (OCPP only).
    #[serde(rename = "rsa-2048")]
    Rsa2048,
    /// RSA with a 3072-bit modulus (OCPP only).
    #[serde(rename = "rsa-3072")]
    Rsa3072,
    /// RSA with a 4096-bit modulus (OCPP only).
    #[serde(rename = "rsa-4096")]
    Rsa4096,
}

impl KeyAlg {
    /// Every key algorithm, in a fixed order.
    pub const ALL: [KeyAlg; 6] = [
        KeyAlg::EcP256,
        KeyAlg::EcP384,
        KeyAlg::EcP521,
        KeyAlg::Rsa2048,
        KeyAlg::Rsa3072,
        KeyAlg::Rsa4096,
    ];

    /// Whether this is an RSA key (else an EC key).
    pub fn is_rsa(self) -> bool {
        self.rsa_bits().is_some()
    }

    /// The modulus length of an RSA key; `None` for EC keys.
    pub fn rsa_bits(self) -> Option<u32> {
        match self {
            KeyAlg::Rsa2048 => Some(2048),
            KeyAlg::Rsa3072 => Some(3072),
            KeyAlg::Rsa4096 => Some(4096),
            _ => None,
        }
    }

    /// The RSA algorithm of a modulus length; only the three sizes we issue for (RSA 1024 and
    /// odd sizes are refused).
    pub fn from_rsa_bits(bits: u32) -> Option<KeyAlg> {
        Self::ALL.into_iter().find(|a| a.rsa_bits() == Some(bits))
    }

    /// DER of the namedCurve OID, as PKCS#11 `CKA_EC_PARAMS` wants it (empty for RSA).
    pub fn ec_params(self) -> Vec<u8> {
        // A constant OID always encodes; the fallback is never taken.
        self.curve_oid()
            .and_then(|o| der::Encode::to_der(&o).ok())
            .unwrap_or_default()
    }

    /// The namedCurve OID; `None` for RSA.
    pub fn curve_oid(self) -> Option<ObjectIdentifier> {
        match self {
            KeyAlg::EcP256 => Some(const_oid::db::rfc5912::SECP_256_R_1),
            KeyAlg::EcP384 => Some(const_oid::db::rfc5912::SECP_384_R_1),
            KeyAlg::EcP521 => Some(const_oid::db::rfc5912::SECP_521_R_1),
            _ => None,
        }
    }

    /// Length in bytes of one EC coordinate (and of the private scalar), or of an RSA modulus
    /// (and so of its signatures).
    pub fn field_len(self) -> usize {
        match self {
            KeyAlg::EcP256 => 32,
            KeyAlg::EcP384 => 48,
            KeyAlg::EcP521 => 66,
            KeyAlg::Rsa2048 => 256,
            KeyAlg::Rsa3072 => 384,
            KeyAlg::Rsa4096 => 512,
        }
    }

    /// The name used in profiles, the database and the API (`ec-p256`, `rsa-2048`, …).
    pub fn name(self) -> &'static str {
        match self {
            KeyAlg::EcP256 => "ec-p256",
            KeyAlg::EcP384 => "ec-p384",
            KeyAlg::EcP521 => "ec-p521",
            KeyAlg::Rsa2048 => "rsa-2048",
            KeyAlg::Rsa3072 => "rsa-3072",
            KeyAlg::Rsa4096 => "rsa-4096",
        }
    }

    /// The algorithm of a [`KeyAlg::name`].
    pub fn from_name(name: &str) -> Option<KeyAlg> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The algorithm of a namedCurve OID, if we support that curve.
    pub fn from_curve_oid(oid: &ObjectIdentifier) -> Option<KeyAlg> {
        Self::ALL.into_iter().find(|a| a.curve_oid() == Some(*oid))
    }

    /// The signature algorithm every certificate, CRL and OCSP response made with this key uses:
    /// the hash whose strength matches the curve (ISO 15118-2: P-256/SHA-256, -20: P-521/SHA-512);
    /// RSA keys of every size sign SHA-256 with PKCS#1 v1.5, which is what OCPP stations verify.
    pub fn signature_alg(self) -> SignatureAlg {
        match self {
            KeyAlg::EcP256 => SignatureAlg::EcdsaSha256,
            KeyAlg::EcP384 => SignatureAlg::EcdsaSha384,
            KeyAlg::EcP521 => SignatureAlg::EcdsaSha512,
            KeyAlg::Rsa2048 | KeyAlg::Rsa3072 | KeyAlg::Rsa4096 => SignatureAlg::RsaSha256,
        }
    }
}

/// Hash algorithms: CertID hashes (all four) and the hashes of our signatures (SHA-2 only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HashAlg {
    /// SHA-1: only for OCSP CertIDs and key identifiers, never for a signature.
    Sha1,
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl HashAlg {
    /// Every hash algorithm, in a fixed order.
    pub const ALL: [HashAlg; 4] = [
        HashAlg::Sha1,
        HashAlg::Sha256,
        HashAlg::Sha384,
        HashAlg::Sha512,
    ];

    /// Hash `data`.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            HashAlg::Sha1 => sha1::Sha1::digest(data).to_vec(),
            HashAlg::Sha256 => sha2::Sha256::digest(data).to_vec(),
            HashAlg::Sha384 => sha2::Sha384::digest(data).to_vec(),
            HashAlg::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }

    /// The digest algorithm's OBJECT IDENTIFIER (as in an OCSP CertID).
    pub fn oid(self) -> ObjectIdentifier {
        match self {
            HashAlg::Sha1 => const_oid::db::rfc5912::ID_SHA_1,
            HashAlg::Sha256 => const_oid::db::rfc5912::ID_SHA_256,
            HashAlg::Sha384 => const_oid::db::rfc5912::ID_SHA_384,
            HashAlg::Sha512 => const_oid::db::rfc5912::ID_SHA_512,
        }
    }

    /// The algorithm of a digest OID, if supported.
    pub fn from_oid(oid: &ObjectIdentifier) -> Option<HashAlg> {
        Self::ALL.into_iter().find(|a| a.oid() == *oid)
    }

    /// Digest length in bytes.
    pub fn output_len(self) -> usize {
        match self {
            HashAlg::Sha1 => 20,
            HashAlg::Sha256 => 32,
            HashAlg::Sha384 => 48,
            HashAlg::Sha512 => 64,
        }
    }

    /// OCPP 2.0.1 `HashAlgorithmEnumType` name (`SHA256`, `SHA384`, `SHA512`; SHA-1 is not in
    /// the OCPP enum but is named `SHA1` here).
    pub fn ocpp_name(self) -> &'static str {
        match self {
            HashAlg::Sha1 => "SHA1",
            HashAlg::Sha256 => "SHA256",
            HashAlg::Sha384 => "SHA384",
            HashAlg::Sha512 => "SHA512",
        }
    }
}

/// Signature algorithms of everything we sign: ECDSA over a SHA-2 hash, parameters absent
/// (RFC 5758), or SHA-256 with RSA PKCS#1 v1.5, parameters NULL (RFC 4055).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignatureAlg {
    /// ecdsa-with-SHA256.
    EcdsaSha256,
    /// ecdsa-with-SHA384.
    EcdsaSha384,
    /// ecdsa-with-SHA512.
    EcdsaSha512,
    /// sha256WithRSAEncryption (PKCS#1 v1.5).
    RsaSha256,
}

/// DER DigestInfo prefix of a SHA-256 digest (RFC 8017 §9.2 note 1): `CKM_RSA_PKCS` signs
/// `prefix ‖ digest`, which is PKCS#1 v1.5 with the hash done in process, as for ECDSA.
const SHA256_DIGEST_INFO_PREFIX: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

impl SignatureAlg {
    /// The hash applied (in process) before the HSM's `CKM_ECDSA` / `CKM_RSA_PKCS`.
    pub fn hash(self) -> HashAlg {
        match self {
            SignatureAlg::EcdsaSha256 | SignatureAlg::RsaSha256 => HashAlg::Sha256,
            SignatureAlg::EcdsaSha384 => HashAlg::Sha384,
            SignatureAlg::EcdsaSha512 => HashAlg::Sha512,
        }
    }

    /// The `ecdsa-with-SHAx` / `sha256WithRSAEncryption` OBJECT IDENTIFIER.
    pub fn oid(self) -> ObjectIdentifier {
        match self {
            SignatureAlg::EcdsaSha256 => const_oid::db::rfc5912::ECDSA_WITH_SHA_256,
            SignatureAlg::EcdsaSha384 => const_oid::db::rfc5912::ECDSA_WITH_SHA_384,
            SignatureAlg::EcdsaSha512 => const_oid::db::rfc5912::ECDSA_WITH_SHA_512,
            SignatureAlg::RsaSha256 => const_oid::db::rfc5912::SHA_256_WITH_RSA_ENCRYPTION,
        }
    }

    /// Whether the signature is RSA PKCS#1 v1.5 (the AlgorithmIdentifier then carries NULL
    /// parameters, and the signature bytes go into X.509 as they come from the token).
    pub fn is_rsa(self) -> bool {
        self == SignatureAlg::RsaSha256
    }

    /// What the token signs for a digest: the digest itself for ECDSA, the DER DigestInfo for
    /// RSA PKCS#1 v1.5.
    pub fn token_input(self, digest: &[u8]) -> Vec<u8> {
        match self {
            SignatureAlg::RsaSha256 => {
                let mut v = SHA256_DIGEST_INFO_PREFIX.to_vec();
                v.extend_from_slice(digest);
                v
            }
            _ => digest.to_vec(),
        }
    }

    /// The ECDSA signature algorithm over `hash`; `None` for SHA-1, which we never sign with.
    pub fn with_hash(hash: HashAlg) -> Option<SignatureAlg> {
        match hash {
            HashAlg::Sha1 => None,
            HashAlg::Sha256 => Some(SignatureAlg::EcdsaSha256),
            HashAlg::Sha384 => Some(SignatureAlg::EcdsaSha384),
            HashAlg::Sha512 => Some(SignatureAlg::EcdsaSha512),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_oids_and_lengths_round_trip() {
        for k in KeyAlg::ALL {
            assert_eq!(KeyAlg::from_name(k.name()), Some(k));
            match k.curve_oid() {
                Some(oid) => assert_eq!(KeyAlg::from_curve_oid(&oid), Some(k)),
                None => assert_eq!(k.rsa_bits().and_then(KeyAlg::from_rsa_bits), Some(k)),
            }
        }
        assert_eq!(KeyAlg::from_rsa_bits(1024), None);
        // The DigestInfo prefix is the one openssl writes (RFC 8017 §9.2 note 1).
        let d = [0u8; 32];
        let di = SignatureAlg::RsaSha256.token_input(&d);
        assert_eq!(
            hex::encode(&di[..19]),
            "3031300d060960864801650304020105000420"
        );
        assert_eq!(SignatureAlg::EcdsaSha256.token_input(&d), d.to_vec());
        for h in HashAlg::ALL {
            assert_eq!(HashAlg::from_oid(&h.oid()), Some(h));
            assert_eq!(h.digest(b"abc").len(), h.output_len());
        }
        assert_eq!(KeyAlg::EcP256.signature_alg().hash(), HashAlg::Sha256);
        assert_eq!(KeyAlg::EcP384.signature_alg().hash(), HashAlg::Sha384);
        assert_eq!(KeyAlg::EcP521.signature_alg().hash(), HashAlg::Sha512);
        assert_eq!(SignatureAlg::with_hash(HashAlg::Sha1), None);
        assert_eq!(
            SignatureAlg::with_hash(HashAlg::Sha512).map(SignatureAlg::hash),
            Some(HashAlg::Sha512)
        );
        assert_eq!(
            HashAlg::Sha1.oid().to_string(),
            "1.3.14.3.2.26",
            "the OID OpenSSL and Go put in CertIDs"
        );
    }
}
