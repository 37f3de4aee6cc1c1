//! Throwaway PostgreSQL clusters of a test's own (`initdb`/`pg_ctl` on free loopback ports, so
//! the machine's server is never touched): a primary, a streaming standby made with
//! `pg_basebackup -R`, promotion and `kill -9` of a postmaster. Every cluster is stopped
//! (`-m immediate`) and its directory removed when dropped, also when the test fails.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use super::free_port;

/// The PostgreSQL server binaries (Debian: /usr/lib/postgresql/N/bin). `None` outside CI is a
/// loud skip; under `CI` a missing server fails the test.
pub fn pg_bin() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| {
            p.join("pg_ctl").exists()
                && p.join("initdb").exists()
                && p.join("pg_basebackup").exists()
        })
        .collect();
    found.sort();
    let bin = found.pop();
    if bin.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but the PostgreSQL server binaries (initdb, pg_ctl, pg_basebackup) are missing"
        );
        eprintln!("\n!!! SKIPPED: no initdb/pg_ctl/pg_basebackup under /usr/lib/postgresql !!!\n");
    }
    bin
}

/// A cluster in a temporary directory, run as the `postgres` user when we are root (initdb
/// refuses to run as root).
pub struct Cluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    pub port: u16,
    as_postgres: bool,
    /// Extra `-c name=value` server settings given at every start.
    settings: Vec<String>,
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
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

    fn must(&self, tool: &str, args: &[&str]) {
        let out = self.run(tool, args);
        assert!(
            out.status.success(),
            "{tool} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The data directory.
    pub fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn empty(bin: PathBuf, settings: &[&str]) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let as_postgres = is_root();
        if as_postgres {
            let st = Command::new("chown")
                .args(["-R", "postgres"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(st.success());
        }
        Cluster {
            bin,
            dir,
            port: free_port(),
            as_postgres,
            settings: settings.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// A new cluster (trust authentication, loopback only), started, with `settings`
    /// (`name=value`) on its command line.
    pub fn new_with(bin: PathBuf, settings: &[&str]) -> Cluster {
        let c = Cluster::empty(bin, settings);
        c.must(
            "initdb",
            &["-D", &c.data(), "-U", "postgres", "--auth=trust", "-N"],
        );
        c.start();
        c
    }

    /// A new cluster with default settings, started.
    pub fn new(bin: PathBuf) -> Cluster {
        Cluster::new_with(bin, &[])
    }

    /// A streaming standby of `primary` (`pg_basebackup -R`), started, with `settings`.
    pub fn standby_of(primary: &Cluster, settings: &[&str]) -> Cluster {
        Cluster::standby_on(primary, free_port(), settings)
    }

    /// [`Cluster::standby_of`] on `port` (a dead server's, as an HA manager rebuilds a failed
    /// primary as a standby on its own address).
    pub fn standby_on(primary: &Cluster, port: u16, settings: &[&str]) -> Cluster {
        let mut c = Cluster::empty(primary.bin.clone(), settings);
        c.port = port;
        let port = primary.port.to_string();
        c.must(
            "pg_basebackup",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "postgres",
                "-D",
                &c.data(),
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
            ],
        );
        c.start();
        c
    }

    /// Start (waiting until it accepts connections, or for a standby until it runs).
    pub fn start(&self) {
        let sock = self.dir.path().display().to_string();
        let mut opts = format!(
            "-p {} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port
        );
        for s in &self.settings {
            opts.push_str(&format!(" -c {s}"));
        }
        let log = self.dir.path().join("pg.log").display().to_string();
        self.must(
            "pg_ctl",
            &["-D", &self.data(), "-o", &opts, "-l", &log, "-w", "start"],
        );
    }

    /// Stop cleanly.
    pub fn stop(&self) {
        self.must("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"]);
    }

    /// Promote a standby and wait until it accepts writes.
    pub fn promote(&self) {
        self.must("pg_ctl", &["-D", &self.data(), "-w", "promote"]);
    }

    /// `kill -9` of the postmaster (its backends notice and exit by themselves).
    pub fn kill_postmaster(&self) {
        let pid = std::fs::read_to_string(self.dir.path().join("data/postmaster.pid"))
            .expect("postmaster.pid");
        let pid = pid.lines().next().expect("a pid").trim().to_string();
        let st = Command::new("kill").args(["-9", &pid]).status().unwrap();
        assert!(st.success(), "kill -9 {pid}");
    }

    /// The server log so far (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pg.log")).unwrap_or_default()
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// `host:port` for a host list.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The first column of the first row of `sql` as text (`psql -At`), bounded to 10 s.
    pub fn query(&self, sql: &str) -> String {
        let out = Command::new("timeout")
            .args([
                "10",
                "psql",
                "-X",
                "-At",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
            ])
            .args(["-p", &self.port.to_string(), "-d", "postgres", "-c", sql])
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Wait (at most 30 s) until `sql` answers `want`.
    pub fn wait_for(&self, sql: &str, want: &str) {
        let t = Instant::now();
        loop {
            let got = self.query(sql);
            if got == want {
                return;
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "{sql}: {got}, not {want}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.run("pg_ctl", &["-D", &self.data(), "-m", "immediate", "stop"]);
        // After a kill -9 of the postmaster pg_ctl finds none; its orphaned backends exit on
        // their own, and nothing of ours listens any more.
    }
}
