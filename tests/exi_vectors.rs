//! Vector tests for `pnc_pki::exi` (vectors in tests/vectors/exi, made by
//! independent implementations).

use std::path::{Path, PathBuf};

use base64::Engine;
use pnc_pki::exi::{Message, Schema, iso2, iso20};

fn vdir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/exi")
}

fn json(rel: &str) -> serde_json::Value {
    let p = vdir().join(rel);
    serde_json::from_slice(&std::fs::read(&p).unwrap_or_else(|e| panic!("{p:?}: {e}")))
        .expect("json")
}

fn unhex(v: &serde_json::Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("hex string")).expect("hex")
}

fn b64file(rel: &str) -> Vec<u8> {
    let s = std::fs::read_to_string(vdir().join(rel)).expect("b64");
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .expect("b64 decode")
}

/// Every complete message vector: (name, schema, bytes).
fn all_messages() -> Vec<(String, Schema, Vec<u8>)> {
    let mut v = Vec::new();
    for n in [
        "CertificateInstallationReq",
        "CertificateInstallationRes",
        "CertificateUpdateReq",
        "CertificateUpdateRes",
    ] {
        let f = format!("iso15118-2/gen_iso2_{n}.json");
        v.push((f.clone(), Schema::Iso2, unhex(&json(&f)["exi_hex"])));
    }
    for f in [
        "iso15118-2/public/hubject_opcp_iso2_CertificateInstallationReq.b64",
        "iso15118-2/public/hubject_opcp_iso2_CertificateInstallationRes.b64",
        "iso15118-2/public/citrineos_hubject_legacy_iso2_CertificateInstallationRes_xsitype.b64",
    ] {
        v.push((f.to_string(), Schema::Iso2, b64file(f)));
    }
    for f in [
        "iso15118-2/public/hubject_opcp_cps_signedData_iso2_CertificateInstallationRes.expected.json",
        "iso15118-2/rise_v2g_iso2_CertificateInstallationRes.expected.json",
    ] {
        v.push((f.to_string(), Schema::Iso2, unhex(&json(f)["exi_hex"])));
    }
    for (schema, dir) in [
        (Schema::Iso2, "iso15118-2/pypi-iso15118-0.31.2/messages"),
        (Schema::Iso20, "iso15118-20/pypi-iso15118-0.31.2/messages"),
    ] {
        let mut names: Vec<_> = std::fs::read_dir(vdir().join(dir))
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().to_string())
            .collect();
        names.sort();
        for n in names {
            let f = format!("{dir}/{n}/message.exi");
            v.push((
                f.clone(),
                schema,
                std::fs::read(vdir().join(&f)).expect("exi"),
            ));
        }
    }
    for n in ["CertificateInstallationReq", "CertificateInstallationRes"] {
        let f = format!("iso15118-20/gen_iso20_{n}.json");
        v.push((f.clone(), Schema::Iso20, unhex(&json(&f)["exi_hex"])));
    }
    v
}

#[test]
fn every_message_decodes_and_reencodes_byte_identical() {
    let mut failures = Vec::new();
    let all = all_messages();
    assert_eq!(all.len(), 21);
    for (name, schema, bytes) in all {
        if name.contains("xsitype") {
            continue;
        }
        match Message::decode(&bytes, Some(schema)) {
            Ok(m) => {
                assert_eq!(
                    Message::decode(&bytes, None).ok().as_ref(),
                    Some(&m),
                    "autodetect {name}"
                );
                match m.encode() {
                    Ok(re) if re == bytes => {}
                    Ok(re) => failures.push(format!(
                        "{name}: re-encode differs ({} vs {} bytes)",
                        re.len(),
                        bytes.len()
                    )),
                    Err(e) => failures.push(format!("{name}: encode error {e}")),
                }
            }
            Err(e) => failures.push(format!("{name}: decode error {e}")),
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

struct P256Signer(p256::ecdsa::SigningKey);
impl pnc_pki::exi::xmldsig::RawSigner for P256Signer {
    fn sign_digest(&self, digest: &[u8]) -> Result<Vec<u8>, pnc_pki::exi::xmldsig::SignerError> {
        use p256::ecdsa::signature::hazmat::PrehashSigner;
        let s: p256::ecdsa::Signature = self.0.sign_prehash(digest)?;
        Ok(s.to_bytes().to_vec())
    }
}

/// RFC 6979 (HMAC-SHA-512) deterministic ECDSA on P-521, computed with
/// openssl big numbers (p521 0.13 signs with a random nonce).
struct P521Signer(Vec<u8>);
impl pnc_pki::exi::xmldsig::RawSigner for P521Signer {
    fn sign_digest(&self, digest: &[u8]) -> Result<Vec<u8>, pnc_pki::exi::xmldsig::SignerError> {
        use openssl::bn::{BigNum, BigNumContext};
        let group = openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::SECP521R1)?;
        let mut ctx = BigNumContext::new()?;
        let mut q = BigNum::new()?;
        group.order(&mut q, &mut ctx)?;
        let d = BigNum::from_slice(&self.0)?;
        let e = BigNum::from_slice(digest)?; // 512-bit hash < qlen: bits2int is the identity
        let mut h = BigNum::new()?;
        h.nnmod(&e, &q, &mut ctx)?;
        let mut drbg = rfc6979::HmacDrbg::<sha2::Sha512>::new(
            &d.to_vec_padded(66)?,
            &h.to_vec_padded(66)?,
            &[],
        );
        loop {
            let mut t = [0u8; 66];
            drbg.fill_bytes(&mut t);
            let mut k = BigNum::from_slice(&t)?;
            k.rshift(&*BigNum::from_slice(&t)?, 7)?; // bits2int: leftmost 521 of 528 bits
            if k.num_bits() == 0 || k >= q {
                continue;
            }
            let mut p = openssl::ec::EcPoint::new(&group)?;
            p.mul_generator2(&group, &k, &mut ctx)?;
            let (mut x, mut y) = (BigNum::new()?, BigNum::new()?);
            p.affine_coordinates(&group, &mut x, &mut y, &mut ctx)?;
            let mut r = BigNum::new()?;
            r.nnmod(&x, &q, &mut ctx)?;
            let mut rd = BigNum::new()?;
            rd.mod_mul(&r, &d, &q, &mut ctx)?;
            let mut sum = BigNum::new()?;
            sum.mod_add(&e, &rd, &q, &mut ctx)?;
            let mut kinv = BigNum::new()?;
            kinv.mod_inverse(&k, &q, &mut ctx)?;
            let mut s = BigNum::new()?;
            s.mod_mul(&kinv, &sum, &q, &mut ctx)?;
            if r.num_bits() == 0 || s.num_bits() == 0 {
                continue;
            }
            let mut out = r.to_vec_padded(66)?;
            out.extend_from_slice(&s.to_vec_padded(66)?);
            return Ok(out);
        }
    }
}

fn p256_signer(hex_key: &str) -> P256Signer {
    P256Signer(
        p256::ecdsa::SigningKey::from_slice(&hex::decode(hex_key).expect("hex")).expect("key"),
    )
}

fn p521_signer(hex_key: &str) -> P521Signer {
    P521Signer(hex::decode(hex_key).expect("hex"))
}

fn b64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .expect("b64")
}

fn pem_private_scalar(rel: &str) -> Vec<u8> {
    let pem = std::fs::read(vdir().join(rel)).expect("key pem");
    let k = openssl::pkey::PKey::private_key_from_pem(&pem).expect("pkcs8");
    let ec = k.ec_key().expect("ec");
    let len = if ec.group().degree() > 256 { 66 } else { 32 };
    ec.private_key().to_vec_padded(len).expect("pad")
}

fn cert_public_point(cert: &[u8]) -> Vec<u8> {
    let via_lib = keyenc::recipient_public_key(cert).expect("recipient key");
    let x = if cert.starts_with(b"-----") {
        openssl::x509::X509::from_pem(cert)
    } else {
        openssl::x509::X509::from_der(cert)
    }
    .expect("cert");
    let ec = x.public_key().expect("pk").ec_key().expect("ec");
    let mut ctx = openssl::bn::BigNumContext::new().expect("ctx");
    let point = ec
        .public_key()
        .to_bytes(
            ec.group(),
            openssl::ec::PointConversionForm::UNCOMPRESSED,
            &mut ctx,
        )
        .expect("point");
    assert_eq!(via_lib, point);
    point
}

fn iso2_msg(bytes: &[u8]) -> iso2::V2gMessage {
    match Message::decode(bytes, Some(Schema::Iso2)).expect("decode") {
        Message::Iso2(m) => m,
        Message::Iso20(_) => panic!("schema"),
    }
}

fn iso20_msg(bytes: &[u8]) -> iso20::Message {
    match Message::decode(bytes, Some(Schema::Iso20)).expect("decode") {
        Message::Iso20(m) => m,
        Message::Iso2(_) => panic!("schema"),
    }
}

/// The certificate that must verify the header signature of a -2 message.
fn iso2_signer_cert(m: &iso2::V2gMessage) -> Vec<u8> {
    match &m.body {
        iso2::Body::CertificateInstallationReq(r) => r.oem_provisioning_cert.clone(),
        iso2::Body::CertificateUpdateReq(r) => r.contract_signature_cert_chain.certificate.clone(),
        iso2::Body::CertificateInstallationRes(r) => {
            r.sa_provisioning_certificate_chain.certificate.clone()
        }
        iso2::Body::CertificateUpdateRes(r) => {
            r.sa_provisioning_certificate_chain.certificate.clone()
        }
    }
}

fn verify_iso2(m: &iso2::V2gMessage, cert: &[u8]) -> xmldsig::VerifyReport {
    let sig = m.header.signature.as_ref().expect("signature");
    let key = xmldsig::VerifyingKey::from_certificate(cert).expect("key");
    xmldsig::verify(sig, &m.signed_fragments().expect("fragments"), &key).expect("profile")
}

use pnc_pki::exi::{keyenc, xmldsig};

// ---------------------------------------------------------------------------
// generated -2 set (deterministic, RFC 6979)
// ---------------------------------------------------------------------------

#[test]
fn gen_iso2_fragments_digests_signedinfo_signature_rfc6979() {
    let pki = json("iso15118-2/gen_iso2_test_pki.json");
    for (n, signer_key) in [
        ("CertificateInstallationReq", "oemprov"),
        ("CertificateInstallationRes", "cpsleaf"),
        ("CertificateUpdateReq", "contract"),
        ("CertificateUpdateRes", "cpsleaf"),
    ] {
        let v = json(&format!("iso15118-2/gen_iso2_{n}.json"));
        let bytes = unhex(&v["exi_hex"]);
        assert_eq!(bytes, b64(v["exi_base64"].as_str().expect("b64")), "{n}");
        let m = iso2_msg(&bytes);
        assert_eq!(m.body.name(), n);
        assert_eq!(
            hex::encode_upper(&m.header.session_id),
            v["SessionID"].as_str().expect("sid")
        );
        let frags = m.signed_fragments().expect("fragments");
        let want = v["signed_fragment_hex"].as_object().expect("obj");
        assert_eq!(frags.len(), want.len(), "{n}");
        for (id, frag) in &frags {
            assert_eq!(
                hex::encode(frag),
                want[id].as_str().expect("hex"),
                "{n} fragment {id}"
            );
            let d = hex::encode(sha2::Digest::finalize(sha2::Digest::chain_update(
                sha2::Sha256::default(),
                frag,
            )));
            assert_eq!(
                d,
                v["digest_sha256_hex"][id].as_str().expect("digest"),
                "{n} digest {id}"
            );
        }
        let sig = m.header.signature.as_ref().expect("sig");
        let si = xmldsig::signed_info_fragment(&sig.signed_info).expect("si");
        assert_eq!(
            hex::encode(&si),
            v["SignedInfo_exi_hex"].as_str().expect("si"),
            "{n} SignedInfo"
        );
        assert_eq!(
            hex::encode(&sig.signature_value.value),
            v["SignatureValue_hex"].as_str().expect("sv")
        );
        // the signer certificate inside the message verifies
        let report = verify_iso2(&m, &iso2_signer_cert(&m));
        assert!(report.is_valid(), "{n}: {report:?}");
        // the pki's cert for the signer is the same key
        let pki_cert = b64(pki["certificates_der_b64"][signer_key]
            .as_str()
            .expect("cert"));
        assert!(verify_iso2(&m, &pki_cert).is_valid());
        // rebuild SignedInfo in the vector's reference order and re-sign deterministically
        let order: Vec<String> = match v.get("reference_order_in_SignedInfo") {
            Some(o) => o
                .as_array()
                .expect("arr")
                .iter()
                .map(|x| x.as_str().expect("s").to_string())
                .collect(),
            None => frags.iter().map(|(id, _)| id.clone()).collect(),
        };
        let refs: Vec<(&str, &[u8])> = order
            .iter()
            .map(|id| {
                let f = frags.iter().find(|(i, _)| i == id).expect("id");
                (id.as_str(), f.1.as_slice())
            })
            .collect();
        assert_eq!(
            v["signature_is_rfc6979_deterministic"],
            serde_json::Value::Bool(true)
        );
        let signer = p256_signer(pki["private_keys_hex"][signer_key].as_str().expect("key"));
        let new_sig = xmldsig::sign(xmldsig::Suite::EcdsaP256Sha256, &refs, &signer).expect("sign");
        assert_eq!(
            &new_sig, sig,
            "{n}: RFC 6979 signature reproduces the vector"
        );
    }
}

#[test]
fn gen_iso2_key_encryption_kat_both_directions() {
    let pki = json("iso15118-2/gen_iso2_test_pki.json");
    for (n, recipient) in [
        ("CertificateInstallationRes", "oemprov"),
        ("CertificateUpdateRes", "contract"),
    ] {
        let v = json(&format!("iso15118-2/gen_iso2_{n}.json"));
        let k = &v["key_encryption"];
        let h = |f: &str| unhex(&k[f]);
        let cert = b64(pki["certificates_der_b64"][recipient]
            .as_str()
            .expect("cert"));
        let iv: [u8; 16] = h("IV").try_into().expect("iv");
        let env = keyenc::iso2_encrypt_with(
            &cert_public_point(&cert),
            &h("plaintext_private_key"),
            &h("ephemeral_private_key"),
            &iv,
        )
        .expect("encrypt");
        assert_eq!(
            env.encrypted_private_key,
            h("ContractSignatureEncryptedPrivateKey"),
            "{n}"
        );
        assert_eq!(env.dh_public_key, h("DHpublickey"), "{n}");
        assert_eq!(
            keyenc::kdf_iso2(&h("Z_shared_secret_x")).to_vec(),
            h("AES128_key")
        );
        let priv_key =
            hex::decode(pki["private_keys_hex"][recipient].as_str().expect("k")).expect("hex");
        let pt = keyenc::iso2_decrypt(
            &priv_key,
            &h("DHpublickey"),
            &h("ContractSignatureEncryptedPrivateKey"),
        )
        .expect("decrypt");
        assert_eq!(pt.to_vec(), h("plaintext_private_key"));
        // and the message carries exactly these fields
        let m = iso2_msg(&unhex(&v["exi_hex"]));
        let (key, dh) = match &m.body {
            iso2::Body::CertificateInstallationRes(r) => (
                &r.contract_signature_encrypted_private_key,
                &r.dh_public_key,
            ),
            iso2::Body::CertificateUpdateRes(r) => (
                &r.contract_signature_encrypted_private_key,
                &r.dh_public_key,
            ),
            _ => panic!("body"),
        };
        assert_eq!(key.value, env.encrypted_private_key);
        assert_eq!(dh.value, env.dh_public_key);
        // the libcbv2g eMAID bytes are not what we produce
        if let Some(wrong) = v.get("libcbv2g_WRONG_eMAID_fragment_hex") {
            let frags = m.signed_fragments().expect("f");
            assert_ne!(hex::encode(&frags[3].1), wrong.as_str().expect("s"));
        }
    }
}

// ---------------------------------------------------------------------------
// PyPI iso15118 0.31.2 (EXIficient) sets
// ---------------------------------------------------------------------------

fn pypi_dirs(base: &str) -> Vec<String> {
    let mut names: Vec<_> = std::fs::read_dir(vdir().join(base))
        .expect("dir")
        .map(|e| e.expect("e").file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    names.into_iter().map(|n| format!("{base}/{n}")).collect()
}

#[test]
fn pypi_iso2_fragments_signedinfo_and_signatures() {
    let base = "iso15118-2/pypi-iso15118-0.31.2";
    let mut checked = 0;
    for dir in pypi_dirs(&format!("{base}/messages")) {
        let bytes = std::fs::read(vdir().join(format!("{dir}/message.exi"))).expect("exi");
        let b64text =
            std::fs::read_to_string(vdir().join(format!("{dir}/message.b64"))).expect("b64");
        assert_eq!(b64(b64text.trim()), bytes);
        let m = iso2_msg(&bytes);
        let meta = json(&format!("{dir}/meta.json"));
        assert_eq!(
            m.body.name(),
            meta["message"].as_str().expect("msg"),
            "{dir}"
        );
        assert_eq!(
            hex::encode_upper(&m.header.session_id),
            meta["session_id"].as_str().expect("sid")
        );
        if !vdir().join(format!("{dir}/signature.json")).exists() {
            assert!(m.header.signature.is_none());
            continue;
        }
        let sj = json(&format!("{dir}/signature.json"));
        let sig = m.header.signature.as_ref().expect("sig");
        let si = xmldsig::signed_info_fragment(&sig.signed_info).expect("si");
        assert_eq!(
            hex::encode(&si),
            sj["signed_info"]["exi_hex"].as_str().expect("si"),
            "{dir}"
        );
        assert_eq!(
            si,
            std::fs::read(vdir().join(format!("{dir}/fragments/SignedInfo.exi"))).expect("f")
        );
        assert_eq!(
            xmldsig::decode_signed_info_fragment(&si).expect("decode si"),
            sig.signed_info
        );
        assert_eq!(
            hex::encode(&sig.signature_value.value),
            sj["signature_value_hex"].as_str().expect("sv")
        );
        let frags = m.signed_fragments().expect("fragments");
        for r in sj["references"].as_array().expect("refs") {
            let id = &r["uri"].as_str().expect("uri")[1..];
            let (_, frag) = frags
                .iter()
                .find(|(i, _)| i == id)
                .expect("fragment for id");
            let file =
                std::fs::read(vdir().join(format!("{dir}/{}", r["file"].as_str().expect("file"))))
                    .expect("frag");
            assert_eq!(frag, &file, "{dir} {id}");
            assert_eq!(hex::encode(frag), r["exi_hex"].as_str().expect("hex"));
            // fragment decodes and re-encodes
            let decoded = iso2::Fragment::decode(&file).expect("fragment decode");
            assert_eq!(decoded.encode().expect("enc"), file);
        }
        let cert = std::fs::read(vdir().join(format!(
            "{base}/{}",
            sj["signer_certificate"].as_str().expect("c")
        )))
        .expect("pem");
        let report = verify_iso2(&m, &cert);
        assert!(report.is_valid(), "{dir}: {report:?}");
        assert!(verify_iso2(&m, &iso2_signer_cert(&m)).is_valid());
        checked += 1;
    }
    assert_eq!(checked, 6);
}

#[test]
fn pypi_iso2_key_decryption() {
    let base = "iso15118-2/pypi-iso15118-0.31.2";
    for name in ["install-res-01", "install-res-02"] {
        let dir = format!("{base}/messages/{name}");
        let c = json(&format!("{dir}/crypto.json"));
        let h = |f: &str| unhex(&c[f]);
        let oem_priv = pem_private_scalar(&format!(
            "{base}/{}",
            c["oem_private_key"].as_str().expect("k")
        ));
        let pt = keyenc::iso2_decrypt(
            &oem_priv,
            &h("dh_public_key_hex"),
            &h("encrypted_private_key_hex"),
        )
        .expect("dec");
        assert_eq!(pt.to_vec(), h("contract_private_key_hex"));
        let oem_cert = std::fs::read(vdir().join(format!(
            "{base}/{}",
            c["oem_provisioning_certificate"].as_str().expect("c")
        )))
        .expect("pem");
        let iv: [u8; 16] = h("iv_hex").try_into().expect("iv");
        let env = keyenc::iso2_encrypt_with(
            &cert_public_point(&oem_cert),
            &h("contract_private_key_hex"),
            &h("ephemeral_private_key_hex"),
            &iv,
        )
        .expect("enc");
        assert_eq!(env.encrypted_private_key, h("encrypted_private_key_hex"));
        assert_eq!(env.dh_public_key, h("dh_public_key_hex"));
        let m = iso2_msg(&std::fs::read(vdir().join(format!("{dir}/message.exi"))).expect("exi"));
        let iso2::Body::CertificateInstallationRes(r) = &m.body else {
            panic!("body")
        };
        assert_eq!(r.dh_public_key.value, env.dh_public_key);
    }
}

#[test]
fn pypi_iso20_requests() {
    let base = "iso15118-20/pypi-iso15118-0.31.2";
    let mut n = 0;
    for dir in pypi_dirs(&format!("{base}/messages")) {
        let bytes = std::fs::read(vdir().join(format!("{dir}/message.exi"))).expect("exi");
        let m = iso20_msg(&bytes);
        let meta = json(&format!("{dir}/meta.json"));
        let iso20::Message::CertificateInstallationReq(req) = &m else {
            panic!("req")
        };
        assert_eq!(
            hex::encode_upper(&req.header.session_id),
            meta["session_id"].as_str().expect("sid")
        );
        assert_eq!(
            req.header.time_stamp,
            meta["timestamp"].as_u64().expect("ts")
        );
        assert_eq!(
            u64::from(req.maximum_contract_certificate_chains),
            meta["maximum_contract_certificate_chains"]
                .as_u64()
                .expect("m")
        );
        let roots = meta["root_certificate_ids"].as_array().expect("roots");
        assert_eq!(req.list_of_root_certificate_ids.len(), roots.len());
        for (r, want) in req.list_of_root_certificate_ids.iter().zip(roots) {
            assert_eq!(r.issuer_name, want["issuer"].as_str().expect("i"));
            assert_eq!(r.serial_number.to_decimal(), want["serial"].to_string());
        }
        let sj = json(&format!("{dir}/signature.json"));
        let sig = xmldsig::from_iso20(req.header.signature.as_ref().expect("sig"));
        let si = xmldsig::signed_info_fragment(&sig.signed_info).expect("si");
        assert_eq!(
            hex::encode(&si),
            sj["signed_info"]["exi_hex"].as_str().expect("si")
        );
        let frags = m.signed_fragments().expect("frags");
        for r in sj["references"].as_array().expect("refs") {
            let file =
                std::fs::read(vdir().join(format!("{dir}/{}", r["file"].as_str().expect("f"))))
                    .expect("frag");
            assert_eq!(frags[0].1, file, "{dir}");
            assert_eq!(
                iso20::Fragment::decode(&file)
                    .expect("dec")
                    .encode()
                    .expect("enc"),
                file
            );
        }
        let cert = std::fs::read(vdir().join(format!(
            "{base}/{}",
            sj["signer_certificate"].as_str().expect("c")
        )))
        .expect("pem");
        let key = xmldsig::VerifyingKey::from_certificate(&cert).expect("key");
        let report = xmldsig::verify(&sig, &frags, &key).expect("profile");
        assert!(report.is_valid(), "{dir}: {report:?}");
        n += 1;
    }
    assert_eq!(n, 3);
}

// ---------------------------------------------------------------------------
// generated -20 set (P-521, SHA-512, RFC 6979)
// ---------------------------------------------------------------------------

#[test]
fn gen_iso20_fragments_signedinfo_signature_rfc6979() {
    let pki = json("iso15118-20/gen_iso20_test_pki.json");
    for (n, signer_key) in [
        ("CertificateInstallationReq", "oemprov"),
        ("CertificateInstallationRes", "cpsleaf"),
    ] {
        let v = json(&format!("iso15118-20/gen_iso20_{n}.json"));
        let bytes = unhex(&v["exi_hex"]);
        let m = iso20_msg(&bytes);
        assert_eq!(m.name(), n);
        assert_eq!(
            hex::encode_upper(&m.header().session_id),
            v["SessionID"].as_str().expect("sid")
        );
        assert_eq!(m.header().time_stamp, v["TimeStamp"].as_u64().expect("ts"));
        let frags = m.signed_fragments().expect("frags");
        assert_eq!(frags.len(), 1);
        assert_eq!(frags[0].0, "ID1");
        assert_eq!(
            hex::encode(&frags[0].1),
            v["signed_fragment_hex"]["ID1"].as_str().expect("f"),
            "{n}"
        );
        assert_eq!(
            hex::encode(xmldsig::Suite::EcdsaP521Sha512.digest(&frags[0].1)),
            v["digest_sha512_hex"]["ID1"].as_str().expect("d")
        );
        let sig = xmldsig::from_iso20(m.header().signature.as_ref().expect("sig"));
        let si = xmldsig::signed_info_fragment(&sig.signed_info).expect("si");
        assert_eq!(
            hex::encode(&si),
            v["SignedInfo_exi_hex"].as_str().expect("si"),
            "{n}"
        );
        assert_eq!(
            hex::encode(&sig.signature_value.value),
            v["SignatureValue_hex"].as_str().expect("sv")
        );
        let cert = b64(pki["certificates_der_b64"][signer_key]
            .as_str()
            .expect("cert"));
        let key = xmldsig::VerifyingKey::from_certificate(&cert).expect("key");
        let report = xmldsig::verify(&sig, &frags, &key).expect("profile");
        assert_eq!(report.suite, xmldsig::Suite::EcdsaP521Sha512);
        assert!(report.is_valid(), "{n}: {report:?}");
        let signer = p521_signer(pki["private_keys_hex"][signer_key].as_str().expect("k"));
        let refs: Vec<(&str, &[u8])> = frags
            .iter()
            .map(|(i, f)| (i.as_str(), f.as_slice()))
            .collect();
        let new_sig = xmldsig::sign(xmldsig::Suite::EcdsaP521Sha512, &refs, &signer).expect("sign");
        assert_eq!(
            new_sig, sig,
            "{n}: RFC 6979 P-521 signature reproduces the vector"
        );
        if let iso20::Message::CertificateInstallationReq(req) = &m {
            // the alternative (whole request minus header Signature) fragment is also reproducible
            let mut unsigned = req.clone();
            unsigned.header.signature = None;
            assert_eq!(
                hex::encode(unsigned.to_fragment().expect("f")),
                v["alternative_whole_request_fragment_hex_NOT_USED"]
                    .as_str()
                    .expect("alt")
            );
        }
    }
}

#[test]
fn gen_iso20_key_encryption_kat_both_directions() {
    let pki = json("iso15118-20/gen_iso20_test_pki.json");
    let v = json("iso15118-20/gen_iso20_CertificateInstallationRes.json");
    let k = &v["key_encryption"];
    let h = |f: &str| unhex(&k[f]);
    let aad = keyenc::iso20_aad(
        k["PCID"].as_str().expect("pcid"),
        &unhex(&k["contract_cert_SKI_hex"]),
    );
    assert_eq!(aad, h("AAD_hex"));
    assert_eq!(
        keyenc::kdf_iso20(&h("Z_shared_secret_x")).to_vec(),
        h("AES256_key")
    );
    let oem = b64(pki["certificates_der_b64"]["oemprov"].as_str().expect("c"));
    let iv: [u8; 12] = h("IV").try_into().expect("iv");
    let env = keyenc::iso20_encrypt_with(
        &cert_public_point(&oem),
        &h("plaintext_private_key_66_bytes"),
        &aad,
        &h("ephemeral_private_key"),
        &iv,
    )
    .expect("enc");
    assert_eq!(env.encrypted_private_key, h("SECP521_EncryptedPrivateKey"));
    assert_eq!(env.dh_public_key, h("DHPublicKey"));
    let oem_priv =
        hex::decode(pki["private_keys_hex"]["oemprov"].as_str().expect("k")).expect("hex");
    let pt = keyenc::iso20_decrypt(
        &oem_priv,
        &h("DHPublicKey"),
        &h("SECP521_EncryptedPrivateKey"),
        &aad,
    )
    .expect("dec");
    assert_eq!(pt, h("plaintext_private_key_66_bytes"));
    // wrong AAD is rejected
    assert!(
        keyenc::iso20_decrypt(
            &oem_priv,
            &h("DHPublicKey"),
            &h("SECP521_EncryptedPrivateKey"),
            b"PNXOEM20000001TST0BE726881CCB24860"
        )
        .is_err()
    );
    let m = iso20_msg(&unhex(&v["exi_hex"]));
    let iso20::Message::CertificateInstallationRes(res) = &m else {
        panic!("res")
    };
    assert_eq!(
        res.signed_installation_data.dh_public_key,
        env.dh_public_key
    );
}

// ---------------------------------------------------------------------------
// public vectors (Hubject OPCP production bytes, RISE-V2G)
// ---------------------------------------------------------------------------

#[test]
fn public_vectors_fragments_digests_signatures() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "iso15118-2/public/hubject_opcp_iso2_CertificateInstallationReq.expected.json",
            b64file("iso15118-2/public/hubject_opcp_iso2_CertificateInstallationReq.b64"),
        ),
        (
            "iso15118-2/public/hubject_opcp_iso2_CertificateInstallationRes.expected.json",
            b64file("iso15118-2/public/hubject_opcp_iso2_CertificateInstallationRes.b64"),
        ),
        (
            "iso15118-2/public/hubject_opcp_cps_signedData_iso2_CertificateInstallationRes.expected.json",
            unhex(
                &json(
                    "iso15118-2/public/hubject_opcp_cps_signedData_iso2_CertificateInstallationRes.expected.json",
                )["exi_hex"],
            ),
        ),
        (
            "iso15118-2/rise_v2g_iso2_CertificateInstallationRes.expected.json",
            unhex(
                &json("iso15118-2/rise_v2g_iso2_CertificateInstallationRes.expected.json")["exi_hex"],
            ),
        ),
    ];
    for (f, bytes) in cases {
        let v = json(f);
        assert_eq!(
            bytes.len() as u64,
            v["exi_length"].as_u64().expect("len"),
            "{f}"
        );
        let m = iso2_msg(&bytes);
        assert_eq!(m.body.name(), v["Body"].as_str().expect("body"));
        assert_eq!(
            hex::encode(&m.header.session_id),
            v["SessionID"].as_str().expect("sid")
        );
        let sig = m.header.signature.as_ref().expect("sig");
        let si = xmldsig::signed_info_fragment(&sig.signed_info).expect("si");
        assert_eq!(
            hex::encode(&si),
            v["SignedInfo_fragment_exi_hex (xmldsig schema grammar)"]
                .as_str()
                .expect("si"),
            "{f}"
        );
        assert_eq!(
            hex::encode(&sig.signature_value.value),
            v["SignatureValue_hex"].as_str().expect("sv")
        );
        let frags = m.signed_fragments().expect("frags");
        let want = v["signed_fragment_exi_hex"].as_object().expect("obj");
        for (id, frag) in &frags {
            assert_eq!(
                hex::encode(frag),
                want[id].as_str().expect("hex"),
                "{f} {id}"
            );
        }
        if let Some(w) = v.get("libcbv2g_WRONG_eMAID_fragment_hex") {
            assert_ne!(hex::encode(&frags[3].1), w.as_str().expect("w"));
        }
        let report = verify_iso2(&m, &iso2_signer_cert(&m));
        assert!(report.is_valid(), "{f}: {report:?}");
        if let iso2::Body::CertificateInstallationReq(r) = &m.body {
            let roots = v["ListOfRootCertificateIDs"].as_array().expect("roots");
            for (r, want) in r.list_of_root_certificate_ids.iter().zip(roots) {
                assert_eq!(r.issuer_name, want["X509IssuerName"].as_str().expect("n"));
                assert_eq!(
                    hex::encode(r.serial_number.magnitude()),
                    want["X509SerialNumber_octets_hex"].as_str().expect("o")
                );
            }
        }
    }
}

#[test]
fn rise_signature_testdata_fragments_and_negative_namespace() {
    let v = json("iso15118-2/rise_v2g_signature_testdata.json");
    let m = iso2_msg(&unhex(
        &json("iso15118-2/rise_v2g_iso2_CertificateInstallationRes.expected.json")["exi_hex"],
    ));
    let frags = m.signed_fragments().expect("frags");
    let conf = &v["conforming_namespace_urn:iso:15118:2:2013:MsgBody"]["fragments"];
    let neg = &v["NEGATIVE_nonconforming_empty_namespace"]["fragments"];
    for ((_, frag), (name, key)) in frags.iter().zip([
        (
            "ContractSignatureCertChain",
            "ContractSignatureCertChain (id1)",
        ),
        (
            "ContractSignatureEncryptedPrivateKey",
            "ContractSignatureEncryptedPrivateKey (id2)",
        ),
        ("DHpublickey", "DHpublickey (id3)"),
        ("eMAID", "eMAID (id4)"),
    ]) {
        assert_eq!(
            hex::encode(frag),
            conf[key]["fragment_exi_hex"].as_str().expect("h"),
            "{name}"
        );
        assert_ne!(
            hex::encode(frag),
            neg[name]["fragment_exi_hex"].as_str().expect("h"),
            "{name}"
        );
    }
    let sig = m.header.signature.as_ref().expect("sig");
    assert_eq!(
        hex::encode(xmldsig::signed_info_fragment(&sig.signed_info).expect("si")),
        v["conforming_namespace_urn:iso:15118:2:2013:MsgBody"]["SignedInfo_fragment_exi_hex (references in order id2, id1, id4, id3)"].as_str().expect("si")
    );
    let point = unhex(&v["inputs"]["signing_public_key_uncompressed_hex"]);
    let key =
        xmldsig::VerifyingKey::from_sec1(xmldsig::Suite::EcdsaP256Sha256, &point).expect("key");
    assert!(
        xmldsig::verify(sig, &frags, &key)
            .expect("profile")
            .is_valid()
    );
}

#[test]
fn ocpp_examples_are_the_generated_messages() {
    let v = json("ocpp201_Get15118EVCertificate_examples.json");
    for (k, field) in [
        ("generated_iso2_install_request", "exiRequest"),
        ("generated_iso2_install_response", "exiResponse"),
        ("generated_iso2_update_request", "exiRequest"),
        ("generated_iso2_update_response", "exiResponse"),
        ("generated_iso20_install_request", "exiRequest"),
        ("generated_iso20_install_response", "exiResponse"),
    ] {
        let bytes = b64(v[k][field].as_str().expect("b64"));
        let m = Message::decode(&bytes, None).expect(k);
        assert_eq!(m.encode().expect("enc"), bytes, "{k}");
    }
}

#[test]
fn legacy_xsi_type_body_decodes_and_verifies() {
    let f = "iso15118-2/public/citrineos_hubject_legacy_iso2_CertificateInstallationRes_xsitype.expected.json";
    let v = json(f);
    let bytes = b64file(
        "iso15118-2/public/citrineos_hubject_legacy_iso2_CertificateInstallationRes_xsitype.b64",
    );
    assert_eq!(
        bytes.len() as u64,
        v["original_exi_length"].as_u64().expect("len")
    );
    let m = iso2_msg(&bytes);
    assert_eq!(
        hex::encode(&m.header.session_id),
        v["SessionID"].as_str().expect("sid")
    );
    let iso2::Body::CertificateInstallationRes(r) = &m.body else {
        panic!("body")
    };
    assert_eq!(
        r.response_code as u64,
        v["ResponseCode_enum_index"].as_u64().expect("rc")
    );
    assert_eq!(
        hex::encode(&r.sa_provisioning_certificate_chain.certificate),
        v["SAProvisioningCertificateChain_leaf_der_hex"]
            .as_str()
            .expect("c")
    );
    let subs: Vec<String> = r
        .sa_provisioning_certificate_chain
        .sub_certificates
        .as_ref()
        .expect("subs")
        .certificate
        .iter()
        .map(hex::encode)
        .collect();
    let want: Vec<String> = v["SAProvisioningCertificateChain_subs_der_hex"]
        .as_array()
        .expect("a")
        .iter()
        .map(|x| x.as_str().expect("s").to_string())
        .collect();
    assert_eq!(subs, want);
    assert_eq!(
        r.contract_signature_cert_chain.id.as_deref(),
        v["ContractSignatureCertChain_Id"].as_str()
    );
    assert_eq!(
        hex::encode(&r.contract_signature_cert_chain.certificate),
        v["ContractSignatureCertChain_leaf_der_hex"]
            .as_str()
            .expect("c")
    );
    assert_eq!(
        r.contract_signature_encrypted_private_key.id,
        v["ContractSignatureEncryptedPrivateKey"]["Id"]
            .as_str()
            .expect("id")
    );
    assert_eq!(
        hex::encode(&r.contract_signature_encrypted_private_key.value),
        v["ContractSignatureEncryptedPrivateKey"]["hex"]
            .as_str()
            .expect("h")
    );
    assert_eq!(
        hex::encode(&r.dh_public_key.value),
        v["DHpublickey"]["hex"].as_str().expect("h")
    );
    assert_eq!(r.e_maid.id, v["eMAID"]["Id"].as_str().expect("id"));
    assert_eq!(r.e_maid.value, v["eMAID"]["value"].as_str().expect("v"));
    // fragments, digests, SignedInfo and signature
    let frags = m.signed_fragments().expect("frags");
    for (id, frag) in &frags {
        assert_eq!(
            hex::encode(frag),
            v["signed_fragment_exi_hex"][id].as_str().expect("f"),
            "{id}"
        );
        assert_eq!(
            hex::encode(xmldsig::Suite::EcdsaP256Sha256.digest(frag)),
            v["recomputed_digest_sha256_hex"][id].as_str().expect("d")
        );
    }
    let sig = m.header.signature.as_ref().expect("sig");
    assert_eq!(
        hex::encode(xmldsig::signed_info_fragment(&sig.signed_info).expect("si")),
        v["SignedInfo_fragment_exi_hex (xmldsig schema grammar)"]
            .as_str()
            .expect("si")
    );
    assert!(verify_iso2(&m, &iso2_signer_cert(&m)).is_valid());
    // re-encoding writes the normal element form, identical to the vector's plain re-encoding
    let re = m.encode().expect("encode");
    assert_eq!(
        hex::encode(&re),
        v["reencoded_plain_body_exi_hex"].as_str().expect("plain")
    );
    assert_eq!(re.len() as u64, v["exi_length"].as_u64().expect("len"));
    // every truncation of the legacy stream is a clean error
    for len in (0..bytes.len()).step_by(7) {
        assert!(Message::decode(&bytes[..len], None).is_err());
    }
}

#[test]
fn xml_rendering_roundtrips_for_every_vector() {
    for (name, schema, bytes) in all_messages() {
        let m = Message::decode(&bytes, Some(schema)).expect("decode");
        let text = pnc_pki::exi::xml::to_xml(&m);
        assert!(text.contains("xmlns:"), "{name}");
        let back = pnc_pki::exi::xml::parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(back, m, "{name}");
        if !name.contains("xsitype") {
            assert_eq!(back.encode().expect("encode"), bytes, "{name}");
        }
    }
}
