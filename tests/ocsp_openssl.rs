//! The `openssl ocsp` client against a running `pnc-pki serve`: good, revoked, unknown; SHA-1 and
//! SHA-256 CertIDs; with and without nonce; POST and GET; signatures verified to the root. The
//! first test also runs with the CA and OCSP signer keys on kryoptic (a second PKCS#11 module).

mod common;
mod ocsp_support;

use common::*;
use ocsp_support::*;

#[test]
fn good_revoked_unknown_over_post_and_get() {
    for env in every_deployment() {
        let pki = setup_on(env, "");
        let server = pki.env.serve();
        let url = server.url("/ocsp");

        for digest in [&[][..], &["-sha256"][..]] {
            for nonce in [&[][..], &["-no_nonce"][..]] {
                let args: Vec<&str> = digest.iter().chain(nonce.iter()).copied().collect();
                let out = pki.query(&url, &args);
                assert_status(&out, "good");
                if nonce.is_empty() {
                    assert!(
                        !out.contains("WARNING: no nonce"),
                        "nonce not echoed: {out}"
                    );
                }
                // The delegated signer is the only embedded certificate.
                assert_eq!(out.matches("BEGIN CERTIFICATE").count(), 1, "{out}");
                assert!(out.contains("OCSP Signer"), "{out}");
            }
        }

        // GET, plain and percent-encoded base64, with RFC 5019 caching headers.
        for digest in [&[][..], &["-sha256"][..]] {
            let mut args: Vec<&str> = digest.to_vec();
            args.push("-no_nonce");
            let req = pki.request_der(&args);
            let plain = b64(&req);
            let encoded = plain
                .replace('+', "%2B")
                .replace('/', "%2F")
                .replace('=', "%3D");
            for path in [plain.clone(), encoded] {
                let (status, headers, body) = get(&format!("{url}/{path}"));
                assert_eq!(status, 200);
                let h = |n: &str| {
                    headers
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(n))
                        .map(|(_, v)| v.clone())
                };
                assert_eq!(
                    h("content-type").as_deref(),
                    Some("application/ocsp-response")
                );
                let cc = h("cache-control").unwrap_or_default();
                assert!(cc.contains("max-age=") && cc.contains("public"), "{cc}");
                assert!(
                    h("etag").is_some() && h("last-modified").is_some() && h("expires").is_some(),
                    "{headers:?}"
                );
                let f = pki.env.path().join("get.der");
                std::fs::write(&f, &body).unwrap();
                assert_status(&pki.check_file(&f), "good");
                // Cached: the same bytes again.
                let (_, _, again) = get(&format!("{url}/{plain}"));
                assert_eq!(again, body);
            }
        }

        // A serial we never issued is "unknown", never "good".
        let issuer = pki.issuer.to_str().unwrap();
        let root = pki.root.to_str().unwrap();
        let chain = pki.chain.to_str().unwrap();
        let (_, out) = openssl(&[
            "ocsp",
            "-issuer",
            issuer,
            "-serial",
            "0x0badc0ffee",
            "-url",
            &url,
            "-CAfile",
            root,
            "-verify_other",
            chain,
        ]);
        assert_status(&out, "unknown");

        // Revoke through the CLI; the very next answers (cached POST, GET, nonce) say revoked.
        pki.revoke_cli("keyCompromise");
        for args in [&["-no_nonce"][..], &["-sha256", "-no_nonce"][..], &[][..]] {
            let out = pki.query(&url, args);
            assert_status(&out, "revoked");
            assert!(out.contains("Reason: keyCompromise"), "{out}");
        }
        let req = pki.request_der(&["-no_nonce"]);
        let (_, _, body) = get(&format!("{url}/{}", b64(&req)));
        let f = pki.env.path().join("get-revoked.der");
        std::fs::write(&f, &body).unwrap();
        assert_status(&pki.check_file(&f), "revoked");
        drop(server);
    }
}

#[test]
fn ca_signed_mode_embeds_no_certificate() {
    for backend in backends() {
        let pki = setup(backend, "sign_with = \"ca\"\nnonce = false");
        let server = pki.env.serve();
        let url = server.url("/ocsp");
        let req = pki.request_der(&["-sha256"]);
        let (_, body) = post(&url, &req);
        assert!(
            body.len() < 600,
            "CA-signed response is {} bytes",
            body.len()
        );
        let f = pki.env.path().join("ca.der");
        std::fs::write(&f, &body).unwrap();
        let out = pki.check_file(&f);
        assert_status(&out, "good");
        assert!(!out.contains("BEGIN CERTIFICATE"), "{out}");
        // nonce = false: the request carried a nonce, the (cached) answer does not echo it.
        assert!(out.contains("no nonce") || !out.contains("Nonce"), "{out}");
        drop(server);
    }
}

#[test]
fn ocpp_shaped_lookups() {
    use pnc_pki::alg::HashAlg;
    use pnc_pki::ocsp::wire::issuer_hashes;
    for backend in backends() {
        let pki = setup(backend, "");
        let server = pki.env.serve();
        let issuer_der = read_pem_der(&pki.issuer);
        let (n, k) = issuer_hashes(&issuer_der, HashAlg::Sha256).unwrap();
        // EVerest style: upper-case hex and the serial's leading zeros stripped.
        let serial = pki.serial.trim_start_matches('0').to_ascii_uppercase();
        let data = serde_json::json!({
            "hashAlgorithm": "SHA256",
            "issuerNameHash": hex::encode_upper(&n),
            "issuerKeyHash": hex::encode(&k),
            "serialNumber": serial,
            "responderURL": server.url("/ocsp"),
        });
        // The OCPP-shaped lookups are for authenticated clients (a CSMS relaying for stations).
        let client = pki.env.client_add("csms", "cpo", &["DE*ABC"]);
        let bearer = server.bearer(&client);
        let anonymous = ureq::post(&server.url("/api/v1/ocsp/certificate-status"))
            .config()
            .http_status_as_error(false)
            .build()
            .header("Content-Type", "application/json")
            .send(b"{}".as_slice())
            .unwrap();
        assert_eq!(
            anonymous.status().as_u16(),
            401,
            "OCPP lookups need a token"
        );
        let call = |path: &str, body: serde_json::Value| -> (u16, serde_json::Value) {
            let mut r = ureq::post(&server.url(path))
                .config()
                .http_status_as_error(false)
                .build()
                .header("Content-Type", "application/json")
                .header("Authorization", &bearer)
                .send(body.to_string().as_bytes())
                .unwrap();
            let s = r.status().as_u16();
            (
                s,
                serde_json::from_slice(&r.body_mut().read_to_vec().unwrap()).unwrap_or_default(),
            )
        };
        let (s, v) = call(
            "/api/v1/ocsp/certificate-status",
            serde_json::json!({ "ocspRequestData": data }),
        );
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["status"], "Accepted", "{v}");
        let b = v["ocspResult"].as_str().unwrap();
        assert!(
            b.len() <= 5500,
            "ocspResult is {} base64 characters",
            b.len()
        );
        use base64::Engine;
        let der = base64::engine::general_purpose::STANDARD.decode(b).unwrap();
        let f = pki.env.path().join("ocpp.der");
        std::fs::write(&f, &der).unwrap();
        // openssl's own CertID (SHA-1 by default) differs; ask with -sha256 semantics.
        let (_, out) = openssl(&[
            "ocsp",
            "-respin",
            f.to_str().unwrap(),
            "-sha256",
            "-issuer",
            pki.issuer.to_str().unwrap(),
            "-cert",
            pki.leaf.to_str().unwrap(),
            "-CAfile",
            pki.root.to_str().unwrap(),
            "-verify_other",
            pki.chain.to_str().unwrap(),
        ]);
        assert_status(&out, "good");

        let mut unknown = data.clone();
        unknown["serialNumber"] = "0BADC0FFEE".into();
        let chain_req = serde_json::json!({"certificateStatusRequests": [
            {"certificateHashData": data, "source": "OCSP", "urls": [server.url("/ocsp")]},
            {"certificateHashData": unknown, "source": "OCSP", "urls": [server.url("/ocsp")]},
        ]});
        let (s, v) = call("/api/v1/ocsp/chain-status", chain_req.clone());
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["certificateStatus"][0]["status"], "Good", "{v}");
        assert_eq!(v["certificateStatus"][1]["status"], "Unknown", "{v}");
        assert!(
            v["certificateStatus"][0]["nextUpdate"]
                .as_str()
                .unwrap()
                .ends_with('Z'),
            "{v}"
        );

        pki.revoke_cli("superseded");
        let (_, v) = call("/api/v1/ocsp/chain-status", chain_req);
        assert_eq!(v["certificateStatus"][0]["status"], "Revoked", "{v}");

        // Bad input is a 400 problem, not a 500.
        let (s, v) = call(
            "/api/v1/ocsp/certificate-status",
            serde_json::json!({"ocspRequestData": {"hashAlgorithm": "MD5"}}),
        );
        assert_eq!(s, 400, "{v}");
        let (s, _) = call(
            "/api/v1/ocsp/chain-status",
            serde_json::json!({"certificateStatusRequests": []}),
        );
        assert_eq!(s, 400);
        drop(server);
    }
}

#[test]
fn several_cert_ids_and_sha384_sha512() {
    for backend in backends() {
        let pki = setup(backend, "");
        let second = issue_leaf(&pki.env, "second", "DEABCE67890");
        let server = pki.env.serve();
        let url = server.url("/ocsp");
        // SHA-384 and SHA-512 CertIDs are signed on first use, then served from the cache.
        for digest in ["-sha384", "-sha512"] {
            for _ in 0..2 {
                assert_status(&pki.query(&url, &[digest, "-no_nonce"]), "good");
            }
        }
        // Two CertIDs in one request (with nonce): two SingleResponses, one signature.
        let issuer = pki.issuer.to_str().unwrap();
        let (_, out) = openssl(&[
            "ocsp",
            "-issuer",
            issuer,
            "-cert",
            pki.leaf.to_str().unwrap(),
            "-cert",
            second.to_str().unwrap(),
            "-serial",
            "0x0badc0ffee",
            "-url",
            &url,
            "-CAfile",
            pki.root.to_str().unwrap(),
            "-verify_other",
            pki.chain.to_str().unwrap(),
        ]);
        assert!(out.contains("Response verify OK"), "{out}");
        assert!(
            out.contains("leaf.pem: good") && out.contains("second.pem: good"),
            "{out}"
        );
        assert!(out.contains("0x0badc0ffee: unknown"), "{out}");
        drop(server);
    }
}
