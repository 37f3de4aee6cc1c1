//! One duration syntax everywhere (`crate::duration`): a unit is required, a bare number is an
//! error that says which unit to add, `w` and `y` work. Checked through the real binary on a
//! flag (`report expiring --within`) and an environment variable (`PNC_CRL_VALIDITY`, which took
//! bare seconds before; read by every command that opens the CA, such as `hsm doctor`).

mod common;

use common::{Backend, Env};

fn serials(out: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(out).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|c| format!("{}/{}", c["issuer_id"], c["serial_hex"]))
        .collect()
}

#[test]
fn report_expiring_wants_a_unit_and_takes_weeks() {
    let env = Env::new(Backend::Sqlite);
    env.init();
    let e = env.fails(&["report", "expiring", "--within", "30"]);
    assert!(e.contains("--within") && e.contains("add a unit"), "{e}");
    assert!(
        e.contains("30d") && e.contains("30s"),
        "names the units: {e}"
    );
    assert_eq!(e.trim().lines().count(), 1, "one line: {e}");

    env.ok(&["report", "expiring", "--within", "4w"]);
    let weeks = serials(&env.ok(&["report", "expiring", "--within", "5w", "--json"]));
    let days = serials(&env.ok(&["report", "expiring", "--days", "35", "--json"]));
    assert!(!weeks.is_empty(), "init's OCSP signers end within 5 weeks");
    assert_eq!(weeks, days, "5w is 35 days");
    let year = serials(&env.ok(&["report", "expiring", "--within", "1y", "--json"]));
    assert!(year.len() >= weeks.len());

    let e = env.fails(&["report", "expiring", "--within", "3months"]);
    assert!(e.contains("12w") && e.contains("90d"), "{e}");
}

#[test]
fn crl_validity_takes_a_duration_and_refuses_bare_seconds() {
    let env = Env::new(Backend::Sqlite);
    env.init();
    let d = env.data_dir();
    let run = |v: &str| {
        env.command()
            .env("PNC_CRL_VALIDITY", v)
            .args(["hsm", "doctor", "--data-dir", &d, "--json"])
            .output()
            .unwrap()
    };
    let bare = run("86400");
    assert!(!bare.status.success());
    let e = String::from_utf8_lossy(&bare.stderr);
    assert!(
        e.contains("PNC_CRL_VALIDITY") && e.contains("add a unit"),
        "{e}"
    );
    let ok = run("12h");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let short = run("30s");
    assert!(!short.status.success(), "below 60s is refused");
}
