//! Contract private key encryption.
//!
//! * ISO 15118-2 ([V2G2-818]): ECDH P-256 between an ephemeral key and the
//!   recipient (OEM provisioning / current contract) key, `Z` = x-coordinate,
//!   `K = SHA-256(00000001 ‖ Z ‖ 01 55 56)[..16]`, AES-128-CBC without padding
//!   over the 32-byte scalar; `EncryptedPrivateKey = IV ‖ ct` (48 bytes),
//!   `DHpublickey = 04 ‖ X ‖ Y` (65 bytes).
//! * ISO 15118-20 SECP521: ECDH P-521, `K = SHA-512(00000001 ‖ Z ‖ 01 55 56)[..32]`,
//!   AES-256-GCM with 12-byte IV and AAD = PCID ‖ SKI (uppercase hex);
//!   `SECP521_EncryptedPrivateKey = IV ‖ ct(66) ‖ tag(16)` (94 bytes),
//!   `DHPublicKey = 04 ‖ X ‖ Y` (133 bytes).

use openssl::bn::{BigNum, BigNumContext};
use openssl::ec::{EcGroup, EcKey, EcPoint, PointConversionForm};
use openssl::nid::Nid;
use openssl::symm::{Cipher, Crypter, Mode, decrypt_aead, encrypt_aead};
use sha2::{Digest, Sha256, Sha512};

/// OtherInfo = AlgorithmID 0x01 ‖ PartyUInfo 'U' ‖ PartyVInfo 'V'.
pub const OTHER_INFO: [u8; 3] = [0x01, 0x55, 0x56];

/// Key-encryption errors.
#[derive(Debug, thiserror::Error)]
pub enum KeyEncError {
    /// Wrong input length or invalid point/scalar.
    #[error("invalid input: {0}")]
    Invalid(String),
    /// Crypto library failure (including GCM tag mismatch).
    #[error("crypto error: {0}")]
    Crypto(String),
}

impl From<openssl::error::ErrorStack> for KeyEncError {
    fn from(e: openssl::error::ErrorStack) -> Self {
        Self::Crypto(e.to_string())
    }
}

type R<T> = Result<T, KeyEncError>;

fn ecdh_x(nid: Nid, private: &[u8], peer_point: &[u8], coord_len: usize) -> R<Vec<u8>> {
    let group = EcGroup::from_curve_name(nid)?;
    let mut ctx = BigNumContext::new()?;
    let peer = EcPoint::from_bytes(&group, peer_point, &mut ctx)
        .map_err(|_| KeyEncError::Invalid("peer public key is not a point on the curve".into()))?;
    let d = BigNum::from_slice(private)?;
    let mut order = BigNum::new()?;
    group.order(&mut order, &mut ctx)?;
    if d.num_bits() == 0 || d >= order {
        return Err(KeyEncError::Invalid("private scalar out of range".into()));
    }
    let mut shared = EcPoint::new(&group)?;
    shared.mul2(&group, &peer, &d, &mut ctx)?;
    let mut x = BigNum::new()?;
    let mut y = BigNum::new()?;
    shared.affine_coordinates(&group, &mut x, &mut y, &mut ctx)?;
    Ok(x.to_vec_padded(coord_len as i32)?)
}

fn public_point(nid: Nid, private: &[u8]) -> R<Vec<u8>> {
    let group = EcGroup::from_curve_name(nid)?;
    let mut ctx = BigNumContext::new()?;
    let d = BigNum::from_slice(private)?;
    let mut p = EcPoint::new(&group)?;
    p.mul_generator2(&group, &d, &mut ctx)?;
    Ok(p.to_bytes(&group, PointConversionForm::UNCOMPRESSED, &mut ctx)?)
}

fn fresh_private(nid: Nid, len: usize) -> R<Vec<u8>> {
    let group = EcGroup::from_curve_name(nid)?;
    let k = EcKey::generate(&group)?;
    Ok(k.private_key().to_vec_padded(len as i32)?)
}

fn left_pad(v: &[u8], len: usize) -> R<Vec<u8>> {
    let v = {
        let first = v.iter().position(|b| *b != 0).unwrap_or(v.len());
        &v[first..]
    };
    if v.len() > len {
        return Err(KeyEncError::Invalid(format!(
            "scalar longer than {len} bytes"
        )));
    }
    let mut out = vec![0u8; len - v.len()];
    out.extend_from_slice(v);
    Ok(out)
}

/// Uncompressed SEC1 point (`04 ‖ X ‖ Y`) of the EC key in a DER or PEM
/// certificate: the recipient key for [`iso2_encrypt`] (OEM provisioning or
/// current contract certificate) and [`iso20_encrypt`] (OEM provisioning).
pub fn recipient_public_key(cert: &[u8]) -> R<Vec<u8>> {
    let x = if cert.starts_with(b"-----") {
        openssl::x509::X509::from_pem(cert)?
    } else {
        openssl::x509::X509::from_der(cert)?
    };
    let ec = x
        .public_key()?
        .ec_key()
        .map_err(|_| KeyEncError::Invalid("certificate key is not EC".into()))?;
    let mut ctx = BigNumContext::new()?;
    Ok(ec
        .public_key()
        .to_bytes(ec.group(), PointConversionForm::UNCOMPRESSED, &mut ctx)?)
}

/// ConcatKDF (one round) with SHA-256, 16-byte output (ISO 15118-2).
pub fn kdf_iso2(z: &[u8]) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update([0, 0, 0, 1]);
    h.update(z);
    h.update(OTHER_INFO);
    let out = h.finalize();
    let mut k = [0u8; 16];
    k.copy_from_slice(&out[..16]);
    k
}

/// ConcatKDF (one round) with SHA-512, 32-byte output (ISO 15118-20).
pub fn kdf_iso20(z: &[u8]) -> [u8; 32] {
    let mut h = Sha512::new();
    h.update([0, 0, 0, 1]);
    h.update(z);
    h.update(OTHER_INFO);
    let out = h.finalize();
    let mut k = [0u8; 32];
    k.copy_from_slice(&out[..32]);
    k
}

/// Output of the ISO 15118-2 key encryption.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iso2Envelope {
    /// `ContractSignatureEncryptedPrivateKey` = IV ‖ ciphertext (48 bytes).
    pub encrypted_private_key: Vec<u8>,
    /// `DHpublickey` = 04 ‖ X ‖ Y (65 bytes).
    pub dh_public_key: Vec<u8>,
}

/// ISO 15118-2 encryption with a fresh ephemeral key and random IV.
pub fn iso2_encrypt(recipient_public: &[u8], contract_private: &[u8]) -> R<Iso2Envelope> {
    let eph = fresh_private(Nid::X9_62_PRIME256V1, 32)?;
    let mut iv = [0u8; 16];
    openssl::rand::rand_bytes(&mut iv)?;
    iso2_encrypt_with(recipient_public, contract_private, &eph, &iv)
}

/// ISO 15118-2 encryption with given ephemeral key and IV (known-answer tests).
pub fn iso2_encrypt_with(
    recipient_public: &[u8],
    contract_private: &[u8],
    ephemeral_private: &[u8],
    iv: &[u8; 16],
) -> R<Iso2Envelope> {
    let z = ecdh_x(
        Nid::X9_62_PRIME256V1,
        ephemeral_private,
        recipient_public,
        32,
    )?;
    let key = kdf_iso2(&z);
    let pt = left_pad(contract_private, 32)?;
    let ct = aes128_cbc(Mode::Encrypt, &key, iv, &pt)?;
    let mut encrypted_private_key = iv.to_vec();
    encrypted_private_key.extend_from_slice(&ct);
    Ok(Iso2Envelope {
        encrypted_private_key,
        dh_public_key: public_point(Nid::X9_62_PRIME256V1, ephemeral_private)?,
    })
}

/// ISO 15118-2 decryption (EV side; used in tests).
pub fn iso2_decrypt(
    recipient_private: &[u8],
    dh_public_key: &[u8],
    encrypted_private_key: &[u8],
) -> R<[u8; 32]> {
    if encrypted_private_key.len() != 48 || dh_public_key.len() != 65 {
        return Err(KeyEncError::Invalid(
            "expect 48-byte IV||ct and 65-byte DH key".into(),
        ));
    }
    let z = ecdh_x(Nid::X9_62_PRIME256V1, recipient_private, dh_public_key, 32)?;
    let key = kdf_iso2(&z);
    let mut iv = [0u8; 16];
    iv.copy_from_slice(&encrypted_private_key[..16]);
    let pt = aes128_cbc(Mode::Decrypt, &key, &iv, &encrypted_private_key[16..])?;
    let mut out = [0u8; 32];
    out.copy_from_slice(&pt[..32]);
    Ok(out)
}

fn aes128_cbc(mode: Mode, key: &[u8; 16], iv: &[u8; 16], data: &[u8]) -> R<Vec<u8>> {
    let cipher = Cipher::aes_128_cbc();
    let mut c = Crypter::new(cipher, mode, key, Some(iv))?;
    c.pad(false);
    let mut out = vec![0u8; data.len() + cipher.block_size()];
    let mut n = c.update(data, &mut out)?;
    n += c.finalize(&mut out[n..])?;
    out.truncate(n);
    if out.len() != 32 {
        return Err(KeyEncError::Invalid(
            "AES-CBC output is not 32 bytes".into(),
        ));
    }
    Ok(out)
}

/// Output of the ISO 15118-20 SECP521 key encryption.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iso20Envelope {
    /// `SECP521_EncryptedPrivateKey` = IV(12) ‖ ct(66) ‖ tag(16) = 94 bytes.
    pub encrypted_private_key: Vec<u8>,
    /// `DHPublicKey` = 04 ‖ X ‖ Y (133 bytes).
    pub dh_public_key: Vec<u8>,
}

/// AAD = PCID (ASCII) ‖ SKI of the contract certificate as uppercase hex.
pub fn iso20_aad(pcid: &str, contract_ski: &[u8]) -> Vec<u8> {
    let mut aad = pcid.as_bytes().to_vec();
    aad.extend_from_slice(hex::encode_upper(contract_ski).as_bytes());
    aad
}

/// ISO 15118-20 SECP521 encryption with fresh ephemeral key and IV.
pub fn iso20_encrypt(
    recipient_public: &[u8],
    contract_private: &[u8],
    aad: &[u8],
) -> R<Iso20Envelope> {
    let eph = fresh_private(Nid::SECP521R1, 66)?;
    let mut iv = [0u8; 12];
    openssl::rand::rand_bytes(&mut iv)?;
    iso20_encrypt_with(recipient_public, contract_private, aad, &eph, &iv)
}

/// ISO 15118-20 SECP521 encryption with given ephemeral key and IV.
pub fn iso20_encrypt_with(
    recipient_public: &[u8],
    contract_private: &[u8],
    aad: &[u8],
    ephemeral_private: &[u8],
    iv: &[u8; 12],
) -> R<Iso20Envelope> {
    let z = ecdh_x(Nid::SECP521R1, ephemeral_private, recipient_public, 66)?;
    let key = kdf_iso20(&z);
    let pt = left_pad(contract_private, 66)?;
    let mut tag = [0u8; 16];
    let ct = encrypt_aead(Cipher::aes_256_gcm(), &key, Some(iv), aad, &pt, &mut tag)?;
    let mut encrypted_private_key = iv.to_vec();
    encrypted_private_key.extend_from_slice(&ct);
    encrypted_private_key.extend_from_slice(&tag);
    Ok(Iso20Envelope {
        encrypted_private_key,
        dh_public_key: public_point(Nid::SECP521R1, ephemeral_private)?,
    })
}

/// ISO 15118-20 SECP521 decryption (EV side; used in tests). Returns the
/// 66-byte scalar and rejects a non-zero top 7 bits.
pub fn iso20_decrypt(
    recipient_private: &[u8],
    dh_public_key: &[u8],
    encrypted_private_key: &[u8],
    aad: &[u8],
) -> R<Vec<u8>> {
    if encrypted_private_key.len() != 94 || dh_public_key.len() != 133 {
        return Err(KeyEncError::Invalid(
            "expect 94-byte IV||ct||tag and 133-byte DH key".into(),
        ));
    }
    let z = ecdh_x(Nid::SECP521R1, recipient_private, dh_public_key, 66)?;
    let key = kdf_iso20(&z);
    let (iv, rest) = encrypted_private_key.split_at(12);
    let (ct, tag) = rest.split_at(66);
    let pt = decrypt_aead(Cipher::aes_256_gcm(), &key, Some(iv), aad, ct, tag)?;
    if pt.first().is_some_and(|b| b & 0xfe != 0) {
        return Err(KeyEncError::Invalid(
            "top 7 bits of the P-521 scalar are not zero".into(),
        ));
    }
    Ok(pt)
}
