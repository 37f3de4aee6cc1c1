//! PostgreSQL goes down and comes back while `serve` runs, on a throwaway cluster of the test's
//! own (`initdb`/`pg_ctl` on a free port, so the machine's server is never touched): calls that
//! need the database answer 503, readiness turns red, cached OCSP answers keep being served,
//! and once the database is back the service reconnects by itself; no acknowledged write is
//! lost and the audit chain is intact.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// The PostgreSQL server binaries (Debian: /usr/lib/postgresql/N/bin).
fn pg_bin() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("pg_ctl").exists() && p.join("initdb").exists())
        .collect();
    found.sort();
    found.pop()
}

/// A cluster in a temporary directory, run as the `postgres` user when we are root (initdb
/// refuses to run as root).
struct Cluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    as_postgres: bool,
}

impl Cluster {
    fn run(&self, tool: &str, args: &[&str]) -> std::process::Output {
        let exe = self.bin.join(tool);
        let mut c = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        c.args(args).output().expect("run a PostgreSQL tool")
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn new(bin: PathBuf) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let as_postgres = unsafe_is_root();
        if as_postgres {
            let st = Command::new("chown")
                .args(["-R", "postgres"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(st.success());
        }
        let c = Cluster {
            bin,
            dir,
            port: free_port(),
            as_postgres,
        };
        let out = c.run(
            "initdb",
            &["-D", &c.data(), "-U", "postgres", "--auth=trust", "-N"],
        );
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        c.start();
        c
    }

    fn start(&self) {
        let sock = self.dir.path().display().to_string();
        let opts = format!(
            "-p {} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port
        );
        let log = self.dir.path().join("pg.log").display().to_string();
        let out = self.run(
            "pg_ctl",
            &["-D", &self.data(), "-o", &opts, "-l", &log, "-w", "start"],
        );
        assert!(
            out.status.success(),
            "pg_ctl start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn stop(&self) {
        let out = self.run("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"]);
        assert!(
            out.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.run("pg_ctl", &["-D", &self.data(), "-m", "immediate", "stop"]);
    }
}

fn unsafe_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

#[test]
fn postgres_restart_while_serving() {
    let Some(bin) = pg_bin() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but the PostgreSQL server binaries (initdb, pg_ctl) are missing"
        );
        eprintln!("\n!!! SKIPPED: no initdb/pg_ctl under /usr/lib/postgresql !!!\n");
        return;
    };
    let cluster = Cluster::new(bin);
    let mut env = Env::new(Backend::Sqlite);
    env.db_url = cluster.url();
    env.init();
    let ex = env.export();
    let srv = env.serve();
    let auth = srv.bearer(&env.client_add("cpo", "cpo", &["DE*ABC"]));
    let csr = env.csr_b64("e1", "/C=DE/O=ABC/DC=CPO/CN=DE*ABC*E1");
    let r = srv.enroll_secc(&auth, &csr, None);
    assert_eq!(r.status, 200, "{}", r.text());
    let mut acknowledged = 1;
    let (_, leaf) = pkcs7_leaf(env.path(), "e1", &r.text());
    let issuer = ex.join("cpo-sub-ca-2.pem");
    let out = ocsp_status(&srv.url(""), &issuer, &leaf);
    assert_eq!(out, "good", "OCSP good before the outage");

    cluster.stop();
    let down = Instant::now();
    let r = srv.enroll_secc(&auth, &csr, None);
    eprintln!("refused {:?} after PostgreSQL stopped", down.elapsed());
    assert_eq!(r.status, 503, "{}", r.text());
    let t = Instant::now();
    loop {
        let r = reply(http().get(&srv.url("/health/ready")).call());
        if r.status == 503 {
            assert!(r.text().contains("\"store\":\"down\""), "{}", r.text());
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "readiness stayed green"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // A PostgreSQL replica answers from memory only while it holds its lease (it could miss
    // a revocation otherwise, docs/ocsp.md): "good" within it, tryLater after; never wrong.
    let out = ocsp_status(&srv.url(""), &issuer, &leaf);
    assert!(
        out == "good" || out.contains("trylater"),
        "OCSP while the database is down: {out}"
    );

    cluster.start();
    let back = Instant::now();
    loop {
        let r = srv.enroll_secc(&auth, &csr, None);
        if r.status == 200 {
            acknowledged += 1;
            break;
        }
        assert_eq!(r.status, 503, "{}", r.text());
        assert!(
            back.elapsed() < Duration::from_secs(20),
            "no reconnect within 20 s: {}",
            r.text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!(
        "reconnected {:?} after PostgreSQL came back",
        back.elapsed()
    );
    let t = Instant::now();
    while ocsp_status(&srv.url(""), &issuer, &leaf) != "good" {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "OCSP did not come back"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(srv.enroll_secc(&auth, &csr, None).status, 200);
    acknowledged += 1;
    assert_eq!(env.listed("secc-leaf").len(), acknowledged);
    assert!(env.ok(&["audit", "verify"]).contains("audit log OK"));
}
