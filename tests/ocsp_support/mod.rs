//! Helpers shared by the OCSP integration tests (`mod ocsp_support;`).
#![allow(dead_code)]

use std::path::PathBuf;

use crate::common::*;

/// A deployment with one issued SECC leaf, its issuer chain exported as PEM files.
pub struct Pki {
    pub env: Env,
    pub ex: PathBuf,
    pub leaf: PathBuf,
    pub serial: String,
    /// cpo-sub-ca-2 (issuer of the leaf).
    pub issuer: PathBuf,
    /// cpo-sub-ca-2 + cpo-sub-ca-1 (untrusted chain for the delegated signer).
    pub chain: PathBuf,
    pub root: PathBuf,
}

pub fn setup(backend: Backend, ocsp_settings: &str) -> Pki {
    setup_on(Env::new(backend), ocsp_settings)
}

/// [`setup`] on a given (not yet initialised) deployment, e.g. one on another token.
pub fn setup_on(env: Env, ocsp_settings: &str) -> Pki {
    env.init();
    if !ocsp_settings.is_empty() {
        let p = env.path().join("pnc-pki.toml");
        let mut s = std::fs::read_to_string(&p).unwrap();
        s.push_str("\n[ocsp]\n");
        s.push_str(ocsp_settings);
        s.push('\n');
        std::fs::write(&p, s).unwrap();
    }
    let ex = env.export();
    let leaf = issue_leaf(&env, "leaf", "DEABCE12345");
    let serial = cert_serial(&leaf);
    let chain = env.path().join("chain.pem");
    let mut c = std::fs::read(ex.join("cpo-sub-ca-2.pem")).unwrap();
    c.extend(std::fs::read(ex.join("cpo-sub-ca-1.pem")).unwrap());
    std::fs::write(&chain, c).unwrap();
    Pki {
        issuer: ex.join("cpo-sub-ca-2.pem"),
        root: ex.join("v2g-root.pem"),
        env,
        ex,
        leaf,
        serial,
        chain,
    }
}

pub fn issue_leaf(env: &Env, name: &str, evse: &str) -> PathBuf {
    let csr = env.openssl_csr(
        name,
        "prime256v1",
        &format!("/C=DE/O=Test CPO/DC=CPO/CN={evse}"),
    );
    let out = env.path().join(format!("{name}.pem"));
    env.ok(&[
        "issue",
        "--profile",
        "secc-leaf",
        "--issuer",
        "cpo-sub-ca-2",
        "--csr",
        csr.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    out
}

pub fn cert_serial(pem: &std::path::Path) -> String {
    let (ok, out) = openssl(&["x509", "-in", pem.to_str().unwrap(), "-noout", "-serial"]);
    assert!(ok, "{out}");
    out.trim()
        .trim_start_matches("serial=")
        .to_ascii_lowercase()
}

impl Pki {
    /// `openssl ocsp` against `url` for the leaf; `extra` e.g. `-sha256`, `-no_nonce`.
    pub fn query(&self, url: &str, extra: &[&str]) -> String {
        let mut args: Vec<&str> = vec!["ocsp"];
        // The digest option must come before -cert.
        args.extend(extra);
        let issuer = self.issuer.to_str().unwrap().to_string();
        let leaf = self.leaf.to_str().unwrap().to_string();
        let root = self.root.to_str().unwrap().to_string();
        let chain = self.chain.to_str().unwrap().to_string();
        args.extend([
            "-issuer",
            &issuer,
            "-cert",
            &leaf,
            "-url",
            url,
            "-CAfile",
            &root,
            "-verify_other",
            &chain,
            "-resp_text",
        ]);
        let (_, out) = openssl(&args);
        out
    }

    /// Verify a DER response file for the leaf.
    pub fn check_file(&self, resp: &std::path::Path) -> String {
        let (_, out) = openssl(&[
            "ocsp",
            "-respin",
            resp.to_str().unwrap(),
            "-issuer",
            self.issuer.to_str().unwrap(),
            "-cert",
            self.leaf.to_str().unwrap(),
            "-CAfile",
            self.root.to_str().unwrap(),
            "-verify_other",
            self.chain.to_str().unwrap(),
            "-resp_text",
        ]);
        out
    }

    /// DER request for the leaf written by `openssl ocsp -reqout`.
    pub fn request_der(&self, extra: &[&str]) -> Vec<u8> {
        let out = self
            .env
            .path()
            .join(format!("req-{}.der", rand::random::<u32>()));
        let mut args: Vec<&str> = vec!["ocsp"];
        args.extend(extra);
        let issuer = self.issuer.to_str().unwrap().to_string();
        let leaf = self.leaf.to_str().unwrap().to_string();
        let o = out.to_str().unwrap().to_string();
        args.extend(["-issuer", &issuer, "-cert", &leaf, "-reqout", &o]);
        let (ok, text) = openssl(&args);
        assert!(ok, "{text}");
        std::fs::read(&out).unwrap()
    }

    pub fn revoke_cli(&self, reason: &str) {
        self.env.ok(&[
            "revoke",
            "--serial",
            &self.serial,
            "--issuer",
            "cpo-sub-ca-2",
            "--reason",
            reason,
        ]);
    }
}

pub fn assert_status(out: &str, status: &str) {
    assert!(
        out.contains("Response verify OK"),
        "response does not verify: {out}"
    );
    assert!(
        out.contains(&format!(": {status}")),
        "expected {status}: {out}"
    );
}

pub fn post(url: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let mut r = ureq::post(url)
        .header("Content-Type", "application/ocsp-request")
        .send(body)
        .expect("POST");
    let status = r.status().as_u16();
    (status, r.body_mut().read_to_vec().expect("body"))
}

pub fn get(url: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut r = ureq::get(url).call().expect("GET");
    let status = r.status().as_u16();
    let headers = r
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    (status, headers, r.body_mut().read_to_vec().expect("body"))
}

pub fn b64(der: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(der)
}
