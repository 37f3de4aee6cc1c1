//! Runs the built `pnc-pki` binary: `exi decode`, `exi encode`, `exi verify`.
//! (Needs the `Exi` subcommand wired into src/main.rs.)

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn vdir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/exi")
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pnc-pki"))
}

fn run(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut c = bin();
    c.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn pnc-pki");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input)
            .expect("write stdin");
    } else {
        drop(child.stdin.take());
    }
    child.wait_with_output().expect("wait")
}

fn path(rel: &str) -> String {
    vdir().join(rel).to_string_lossy().to_string()
}

const REQ_B64: &str = "iso15118-2/public/hubject_opcp_iso2_CertificateInstallationReq.b64";
const RES_B64: &str = "iso15118-2/public/hubject_opcp_iso2_CertificateInstallationRes.b64";

#[test]
fn decode_prints_namespace_qualified_xml_and_encode_restores_the_bytes() {
    for (rel, schema) in [
        (REQ_B64, "iso15118-2"),
        (RES_B64, "iso15118-2"),
        (
            "iso15118-2/pypi-iso15118-0.31.2/messages/update-req-01/message.exi",
            "iso15118-2",
        ),
        (
            "iso15118-20/pypi-iso15118-0.31.2/messages/install-req-02/message.exi",
            "iso15118-20",
        ),
    ] {
        let out = run(&["exi", "decode", "--schema", schema, &path(rel)], None);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{rel}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let xml = String::from_utf8(out.stdout).expect("utf8");
        assert!(xml.contains("xmlns:") && xml.contains("Signature"), "{rel}");
        // autodetected schema gives the same XML
        let auto = run(&["exi", "decode", &path(rel)], None);
        assert_eq!(String::from_utf8_lossy(&auto.stdout), xml);
        let enc = run(
            &["exi", "encode", "--schema", schema, "-"],
            Some(xml.as_bytes()),
        );
        assert_eq!(
            enc.status.code(),
            Some(0),
            "{rel}: {}",
            String::from_utf8_lossy(&enc.stderr)
        );
        let raw = std::fs::read(vdir().join(rel)).expect("read");
        let expected = pnc_pki::exi::from_raw_or_base64(&raw).expect("exi");
        assert_eq!(enc.stdout, expected, "{rel}: encode(decode(x)) == x");
    }
}

#[test]
fn decode_from_stdin_base64_and_errors() {
    let b64 = std::fs::read(vdir().join(REQ_B64)).expect("read");
    let out = run(&["exi", "decode", "-"], Some(&b64));
    assert_eq!(out.status.code(), Some(0));
    // garbage: one error line, non-zero exit
    let out = run(&["exi", "decode", "-"], Some(b"definitely not exi"));
    assert_ne!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
    // truncated EXI: one error line naming the position
    let raw = pnc_pki::exi::from_raw_or_base64(&b64).expect("exi");
    let out = run(&["exi", "decode", "-"], Some(&raw[..200]));
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("bit"), "{err}");
    // wrong schema
    let out = run(
        &["exi", "decode", "--schema", "iso15118-20", &path(REQ_B64)],
        None,
    );
    assert_ne!(out.status.code(), Some(0));
}

#[test]
fn verify_checks_digests_and_signature() {
    for rel in [
        REQ_B64,
        RES_B64,
        "iso15118-2/public/citrineos_hubject_legacy_iso2_CertificateInstallationRes_xsitype.b64",
        "iso15118-2/pypi-iso15118-0.31.2/messages/install-res-01/message.b64",
        "iso15118-20/pypi-iso15118-0.31.2/messages/install-req-01/message.exi",
    ] {
        let out = run(&["exi", "verify", &path(rel)], None);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{rel}: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains("verdict: VALID") && text.contains("digest"),
            "{text}"
        );
    }
    // explicit signer certificate (PEM)
    let out = run(
        &[
            "exi",
            "verify",
            &path("iso15118-2/pypi-iso15118-0.31.2/messages/install-res-02/message.exi"),
            "--cert",
            &path("iso15118-2/pypi-iso15118-0.31.2/pki/certs/cpsLeafCert.pem"),
        ],
        None,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // wrong signer certificate -> invalid, non-zero
    let out = run(
        &[
            "exi",
            "verify",
            &path("iso15118-2/pypi-iso15118-0.31.2/messages/install-res-02/message.exi"),
            "--cert",
            &path("iso15118-2/pypi-iso15118-0.31.2/pki/certs/oemLeafCert.pem"),
        ],
        None,
    );
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("verdict: INVALID"));
    // tampered signed element (via XML): digest mismatch -> non-zero
    let xml = String::from_utf8(run(&["exi", "decode", &path(RES_B64)], None).stdout).expect("xml");
    let tampered = xml.replace(">EMP99CQAPAB004<", ">EMP99CQAPAB005<");
    assert_ne!(tampered, xml);
    let exi = run(&["exi", "encode", "-"], Some(tampered.as_bytes())).stdout;
    let out = run(&["exi", "verify", "-"], Some(&exi));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("MISMATCH"));
    // unsigned message -> cannot check
    let out = run(
        &[
            "exi",
            "verify",
            &path("iso15118-2/pypi-iso15118-0.31.2/messages/install-res-failed-01/message.exi"),
        ],
        None,
    );
    assert_ne!(out.status.code(), Some(0));
}
