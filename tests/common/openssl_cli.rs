//! Certificate facts and checks through the openssl CLI (the independent verifier), shared by
//! the tests that watch a CA's keys change (rollover, compromise).

use std::path::{Path, PathBuf};

use super::openssl;

/// The value line of `openssl x509 -ext NAME` of a PEM file.
fn ext_value(pem: &Path, name: &str) -> String {
    let (ok, out) = openssl(&["x509", "-in", pem.to_str().unwrap(), "-noout", "-ext", name]);
    assert!(ok, "{out}");
    out.lines()
        .nth(1)
        .unwrap_or_else(|| panic!("a {name}: {out}"))
        .trim()
        .to_string()
}

/// The subject key identifier, as openssl prints it (`AB:CD:…`).
pub fn ski(pem: &Path) -> String {
    ext_value(pem, "subjectKeyIdentifier")
}

/// The authority key identifier, as openssl prints it.
pub fn aki(pem: &Path) -> String {
    ext_value(pem, "authorityKeyIdentifier")
        .trim_start_matches("keyid:")
        .to_string()
}

/// Concatenate PEM files into `out`.
pub fn bundle(out: &Path, parts: &[&Path]) -> PathBuf {
    let mut s = String::new();
    for p in parts {
        s.push_str(&std::fs::read_to_string(p).unwrap());
    }
    std::fs::write(out, s).unwrap();
    out.to_path_buf()
}

/// `openssl verify` of `leaf` up to `root` through `untrusted`, optionally with a CRL
/// (`-crl_check`): `Ok` or openssl's complaint.
pub fn verify(
    root: &Path,
    untrusted: &Path,
    leaf: &Path,
    crl: Option<&Path>,
) -> Result<(), String> {
    let mut args = vec![
        "verify",
        "-CAfile",
        root.to_str().unwrap(),
        "-untrusted",
        untrusted.to_str().unwrap(),
    ];
    if let Some(c) = crl {
        args.extend(["-crl_check", "-CRLfile", c.to_str().unwrap()]);
    }
    args.push(leaf.to_str().unwrap());
    let (ok, out) = openssl(&args);
    if ok && out.contains(": OK") {
        Ok(())
    } else {
        Err(out)
    }
}

/// OCSP status (`good`, `revoked`, `unknown`) of `leaf` under `issuer` from `{base}/ocsp`, the
/// response verified up to `root` through `chain` (openssl checks the responder's authority for
/// that issuer key).
pub fn ocsp_verified(base: &str, issuer: &Path, leaf: &Path, root: &Path, chain: &Path) -> String {
    let (_, out) = openssl(&[
        "ocsp",
        "-issuer",
        issuer.to_str().unwrap(),
        "-cert",
        leaf.to_str().unwrap(),
        "-url",
        &format!("{base}/ocsp"),
        "-no_nonce",
        "-CAfile",
        root.to_str().unwrap(),
        "-verify_other",
        chain.to_str().unwrap(),
    ]);
    assert!(
        out.contains("Response verify OK"),
        "{} / {}: {out}",
        issuer.display(),
        leaf.display()
    );
    for s in ["good", "revoked", "unknown"] {
        if out.contains(&format!(": {s}")) {
            return s.to_string();
        }
    }
    out
}

/// GET `path` of `srv`'s CRL into `dir/name.der`, checked by openssl against `ca_file`: its text,
/// lower case, without colons.
pub fn fetch_crl(
    srv: &super::Server,
    path: &str,
    dir: &Path,
    name: &str,
    ca_file: &Path,
) -> String {
    let r = super::reply(super::http().get(&srv.url(path)).call());
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    let der = dir.join(format!("{name}.der"));
    std::fs::write(&der, &r.body).unwrap();
    let (ok, out) = openssl(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        der.to_str().unwrap(),
        "-CAfile",
        ca_file.to_str().unwrap(),
        "-noout",
        "-text",
    ]);
    assert!(ok && out.contains("verify OK"), "{path}: {out}");
    out.to_ascii_lowercase().replace(':', "")
}
