//! Bad requests get the right OCSP error status (HTTP 200, `application/ocsp-response`), never
//! a panic or a 500.

mod common;
mod ocsp_support;

use common::*;
use ocsp_support::*;

const MALFORMED: [u8; 5] = [0x30, 0x03, 0x0a, 0x01, 0x01];
const UNAUTHORIZED: [u8; 5] = [0x30, 0x03, 0x0a, 0x01, 0x06];

#[test]
fn malformed_truncated_oversized_unsupported_and_foreign() {
    for backend in backends() {
        let pki = setup(backend, "");
        let server = pki.env.serve();
        let url = server.url("/ocsp");
        let good = pki.request_der(&["-no_nonce"]);

        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("garbage", b"hello, responder".to_vec()),
            ("empty", Vec::new()),
            ("truncated", good[..good.len() - 3].to_vec()),
            ("trailing", [good.clone(), vec![0]].concat()),
            ("oversized", vec![0x30; 5000]),
            ("huge", vec![0x5a; 60_000]),
        ];
        for (name, body) in cases {
            let (status, resp) = post(&url, &body);
            assert_eq!(status, 200, "{name}");
            assert_eq!(resp, MALFORMED, "{name}");
        }
        // All hex digits: taken as a hex-text request (CitrineOS), so the error comes as hex.
        let (status, resp) = post(&url, &vec![b'A'; 60_000]);
        assert_eq!((status, resp.as_slice()), (200, &b"30030a0101"[..]));
        // Unsupported CertID hash (MD5).
        let md5 = pki.request_der(&["-md5", "-no_nonce"]);
        assert_eq!(post(&url, &md5).1, MALFORMED);

        // An issuer we do not serve: a throw-away CA made with openssl.
        let dir = pki.env.path();
        let key = dir.join("other.key");
        let crt = dir.join("other.pem");
        let (ok, out) = openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            crt.to_str().unwrap(),
            "-subj",
            "/CN=Not Ours",
            "-days",
            "2",
        ]);
        assert!(ok, "{out}");
        let req = dir.join("foreign.der");
        let (ok, out) = openssl(&[
            "ocsp",
            "-issuer",
            crt.to_str().unwrap(),
            "-serial",
            "0x01",
            "-no_nonce",
            "-reqout",
            req.to_str().unwrap(),
        ]);
        assert!(ok, "{out}");
        let foreign = std::fs::read(&req).unwrap();
        assert_eq!(post(&url, &foreign).1, UNAUTHORIZED);
        let (status, _, body) = get(&format!("{url}/{}", b64(&foreign)));
        assert_eq!((status, body), (200, UNAUTHORIZED.to_vec()));

        // GET with broken base64, an empty path, or a truncated request.
        for path in ["/ocsp/!!!notbase64", "/ocsp/", "/ocsp", "/ocsp/%zz"] {
            let (status, headers, body) = get(&server.url(path));
            assert_eq!(status, 200, "{path}");
            assert_eq!(body, MALFORMED, "{path}");
            assert!(
                headers
                    .iter()
                    .any(|(k, v)| k == "content-type" && v == "application/ocsp-response")
            );
        }
        let (_, _, body) = get(&format!("{url}/{}", b64(&good[..good.len() - 1])));
        assert_eq!(body, MALFORMED);

        // Hex-text body (CitrineOS) is understood, and answered in hex.
        let (_, resp) = post(&url, hex::encode(&good).as_bytes());
        let f = dir.join("hex.der");
        std::fs::write(&f, hex::decode(&resp).unwrap()).unwrap();
        assert_status(&pki.check_file(&f), "good");

        // Still serving after all that.
        assert_status(&pki.query(&url, &[]), "good");
        drop(server);
    }
}
