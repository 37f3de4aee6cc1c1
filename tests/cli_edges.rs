//! The CLI's rough edges: a closed pipe ends quietly, `show` prints text (or JSON) and takes
//! `list`'s filters, `hsm doctor` ends with a verdict, the demo-PIN warning comes once.

mod common;

use std::process::Stdio;

use common::*;

#[test]
fn list_into_a_closed_pipe_ends_quietly() {
    let env = Env::new(Backend::Sqlite);
    env.init();
    let mut child = env
        .command()
        .args(["list", "--data-dir", &env.data_dir()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The reader goes away before the first line is written (`pnc-pki list | head -0`).
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
        "{:?}: {stderr}",
        out.status
    );
}

#[test]
fn show_prints_text_or_json_and_takes_the_filters_of_list() {
    let env = Env::new(Backend::Sqlite);
    env.init();
    let cert = env.path().join("contract.pem");
    let key = env.path().join("contract.key");
    env.ok(&[
        "issue",
        "--profile",
        "contract",
        "--subject",
        "O=Example MO, CN=DE8AAA1B2C3D4EV",
        "--key-out",
        key.to_str().unwrap(),
        "--out",
        cert.to_str().unwrap(),
    ]);
    // Text by default: the fields, days left, the PEM.
    let text = env.ok(&["show", "--emaid", "de-8aa-a1b2c3d4e"]);
    assert!(
        text.contains("DE8AAA1B2C3D4EV")
            && text.contains("days left")
            && text.contains("BEGIN CERTIFICATE")
            && !text.trim_start().starts_with('{'),
        "{text}"
    );
    // JSON: an array for filters, an object for --serial.
    let arr: Vec<serde_json::Value> =
        serde_json::from_str(&env.ok(&["show", "--json", "--profile", "contract"])).unwrap();
    assert_eq!(arr.len(), 1);
    let serial = arr[0]["serial_hex"].as_str().unwrap().to_string();
    let one: serde_json::Value =
        serde_json::from_str(&env.ok(&["show", "--json", "--serial", &serial])).unwrap();
    assert_eq!(one["serial_hex"], serial.as_str());
    assert!(one["pem"].as_str().unwrap().contains("BEGIN CERTIFICATE"));
    let pem = env.ok(&["show", "--pem", "--serial", &serial]);
    assert!(pem.starts_with("-----BEGIN CERTIFICATE"), "{pem}");

    // A revoked certificate has no days left.
    env.ok(&["revoke", "--serial", &serial, "--reason", "keyCompromise"]);
    let text = env.ok(&["show", "--serial", &serial]);
    assert!(
        text.contains("revoked") && text.contains("keyCompromise") && !text.contains("days left"),
        "{text}"
    );

    let e = env.fails(&["show"]);
    assert!(e.contains("--serial") && e.contains("--emaid"), "{e}");
    let e = env.fails(&["show", "--pcid", "WP0ZZZ99ZTS000000"]);
    assert!(e.contains("no certificate matches"), "{e}");
}

#[test]
fn hsm_doctor_ends_with_a_verdict_and_the_demo_pin_is_warned_about_once() {
    let env = Env::new(Backend::Sqlite);
    let d = env.data_dir();
    let demo = |args: &[&str]| {
        let mut c = env.command();
        c.env_remove("PNC_HSM_PIN")
            .args(args)
            .args(["--data-dir", &d]);
        c.output().unwrap()
    };
    let out = demo(&["init", "--database-url", &env.db_url]);
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("demo PIN").count(),
        1,
        "init says it once: {stderr}"
    );

    let out = demo(&["hsm", "doctor"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        !stderr.contains("demo PIN"),
        "not on every command: {stderr}"
    );
    let last = stdout.lines().last().unwrap_or("");
    assert!(
        last.starts_with("verdict: OK") && last.contains("non-extractable"),
        "{stdout}"
    );
    let out = demo(&["list"]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("demo PIN"));
}

#[test]
fn report_expiring_shows_ocsp_signers_apart() {
    let env = Env::new(Backend::Sqlite);
    env.init();
    // Right after init only the OCSP signers (30 days, renewed by the service) end this soon.
    let out = env.ok(&["report", "expiring", "--within", "31d"]);
    let rows: Vec<&str> = out
        .lines()
        .skip(1)
        .filter(|l| l.starts_with("20"))
        .collect();
    assert!(rows.is_empty(), "nobody has to act: {out}");
    assert!(
        out.contains("OCSP signer certificates") && out.contains("--ocsp-signers"),
        "{out}"
    );
    let out = env.ok(&["report", "expiring", "--within", "31d", "--ocsp-signers"]);
    assert!(out.contains("OCSP Signer"), "{out}");
    // JSON lists every one; a program tells them apart by profile.
    let json: Vec<serde_json::Value> =
        serde_json::from_str(&env.ok(&["report", "expiring", "--within", "31d", "--json"]))
            .unwrap();
    assert!(
        !json.is_empty()
            && json
                .iter()
                .all(|c| c["profile"].as_str().unwrap().starts_with("ocsp-signer")),
        "{json:?}"
    );
    let out = env.ok(&[
        "report",
        "expiring",
        "--within",
        "31d",
        "--profile",
        "ocsp-signer",
    ]);
    assert!(
        out.contains("OCSP Signer") && !out.contains("--ocsp-signers"),
        "{out}"
    );
}
