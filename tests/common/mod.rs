//! Shared harness for integration tests: a data dir with a real SoftHSM2 token, a real SQLite
//! file or a fresh PostgreSQL database, the real `pnc-pki` binary, and a running server.
#![allow(dead_code)]

pub mod openssl_cli;
pub mod pg;
pub mod receiver;
pub mod token;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const USER_PIN: &str = "test-user-pin-1234";
pub const SO_PIN: &str = "test-so-pin-12345678";

/// The binary under test: this build, or `PNC_TEST_BIN` (to run the suite against another
/// build, e.g. to show a new test failing on the code before a fix).
pub fn bin() -> PathBuf {
    std::env::var_os("PNC_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_pnc-pki")))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub fn postgres_admin_url() -> String {
    std::env::var("PNC_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

fn postgres_available() -> Result<(), String> {
    block_on(async {
        use sqlx::Connection;
        let c = tokio::time::timeout(
            Duration::from_secs(5),
            sqlx::PgConnection::connect(&postgres_admin_url()),
        )
        .await
        .map_err(|_| "timeout".to_string())?
        .map_err(|e| e.to_string())?;
        let _ = c.close().await;
        Ok(())
    })
}

/// Backends to run a test against. PostgreSQL is required when `CI` is set; elsewhere a missing
/// server is reported loudly and those runs are skipped.
pub fn backends() -> Vec<Backend> {
    match postgres_available() {
        Ok(()) => vec![Backend::Sqlite, Backend::Postgres],
        Err(e) => {
            if std::env::var_os("CI").is_some() {
                panic!(
                    "CI is set but PostgreSQL at {} is unavailable: {e}",
                    postgres_admin_url()
                );
            }
            eprintln!(
                "\n!!! SKIPPED PostgreSQL runs: {} unavailable ({e}); set PNC_TEST_POSTGRES_URL !!!\n",
                postgres_admin_url()
            );
            vec![Backend::Sqlite]
        }
    }
}

/// Whether a test for `backend` can run: SQLite always; PostgreSQL when reachable. When `CI` is
/// set a missing PostgreSQL fails the test; elsewhere the skip is reported loudly.
pub fn backend_ready(backend: Backend) -> bool {
    match backend {
        Backend::Sqlite => true,
        Backend::Postgres => backends().contains(&Backend::Postgres),
    }
}

/// Run one statement as the PostgreSQL admin (fault tests change database settings).
pub fn pg_admin_exec(sql: &str) {
    block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&postgres_admin_url())
            .await
            .expect("connect postgres");
        sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(&mut c)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    });
}

/// A throw-away PostgreSQL database, dropped with the value.
pub struct PgDb {
    pub name: String,
    pub url: String,
}

impl PgDb {
    pub fn create() -> PgDb {
        let name = format!("pnc_test_{}", hex::encode(rand::random::<[u8; 6]>()));
        let admin = postgres_admin_url();
        block_on(async {
            use sqlx::Connection;
            let mut c = sqlx::PgConnection::connect(&admin)
                .await
                .expect("connect postgres");
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut c)
                .await
                .expect("create database");
        });
        let base = admin
            .rsplit_once('/')
            .map(|(b, _)| b.to_string())
            .unwrap_or(admin);
        PgDb {
            url: format!("{base}/{name}"),
            name,
        }
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let admin = postgres_admin_url();
        let name = self.name.clone();
        block_on(async move {
            use sqlx::Connection;
            if let Ok(mut c) = sqlx::PgConnection::connect(&admin).await {
                let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut c)
                .await;
            }
        });
    }
}

/// The label of the kryoptic token the tests create (not the default `pnc-pki`, so that a run
/// proves `PNC_HSM_TOKEN_LABEL` is what selects the token).
pub const KRYOPTIC_LABEL: &str = "pnc-kryoptic";

/// The PKCS#11 token behind a deployment.
#[derive(Debug, Clone)]
pub enum Token {
    /// The embedded SoftHSM2 token `init` creates under DATA_DIR/hsm.
    SoftHsm,
    /// A kryoptic token made by hsm/kryoptic-token.sh, handed to pnc-pki only through
    /// `PNC_HSM_MODULE` and `PNC_HSM_TOKEN_LABEL` (and kryoptic's own `KRYOPTIC_CONF`).
    Kryoptic { module: PathBuf, conf: PathBuf },
}

/// The kryoptic module to run the second-implementation tests against: the path in
/// `PNC_TEST_KRYOPTIC_MODULE` (hsm/build-kryoptic.sh prints it). When `CI` is set a missing
/// module fails the test; elsewhere the skip is reported loudly.
pub fn kryoptic_module() -> Option<PathBuf> {
    let why = match std::env::var_os("PNC_TEST_KRYOPTIC_MODULE") {
        Some(p) if Path::new(&p).is_file() => return Some(PathBuf::from(p)),
        Some(p) => format!(
            "PNC_TEST_KRYOPTIC_MODULE={} is not a file",
            p.to_string_lossy()
        ),
        None => "PNC_TEST_KRYOPTIC_MODULE is not set".to_string(),
    };
    if std::env::var_os("CI").is_some() {
        panic!("CI is set but {why} (run hsm/build-kryoptic.sh)");
    }
    // Straight to fd 2: the test harness captures eprintln! of passing tests, and a skip must show.
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "\n!!! SKIPPED kryoptic runs: {why}; set it to the path hsm/build-kryoptic.sh prints !!!\n"
    );
    None
}

/// Fresh deployments for a test that must hold on every store and on every PKCS#11
/// implementation: the embedded SoftHSM2 token on each of [`backends`], then a kryoptic token
/// on SQLite (see [`Env::kryoptic`]). Each is made only when the one before is done; which one
/// is running goes to stderr, so a failure names it.
pub fn every_deployment() -> impl Iterator<Item = Env> {
    let softhsm = backends().into_iter().map(Env::new);
    let kryoptic = std::iter::once_with(|| Env::kryoptic(Backend::Sqlite)).flatten();
    softhsm.chain(kryoptic).inspect(|e| {
        let token = match &e.token {
            Token::SoftHsm => "SoftHSM2".to_string(),
            Token::Kryoptic { module, .. } => format!("kryoptic ({})", module.display()),
        };
        eprintln!("=== {:?} store, {token} token", e.backend);
    })
}

/// One deployment: data dir + token + database.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub backend: Backend,
    pub db_url: String,
    pub public_url: String,
    pub token: Token,
    _token_dir: Option<tempfile::TempDir>,
    _pg: Option<PgDb>,
}

impl Env {
    pub fn new(backend: Backend) -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let (db_url, pg) = match backend {
            Backend::Sqlite => (
                format!("sqlite://{}", dir.path().join("pnc-pki.db").display()),
                None,
            ),
            Backend::Postgres => {
                let pg = PgDb::create();
                (pg.url.clone(), Some(pg))
            }
        };
        Env {
            dir,
            backend,
            db_url,
            public_url: "http://127.0.0.1:8080".into(),
            token: Token::SoftHsm,
            _token_dir: None,
            _pg: pg,
        }
    }

    /// A deployment on a fresh kryoptic token (created the documented way, with
    /// hsm/kryoptic-token.sh, outside the data dir), or `None` when no module is available
    /// outside CI (see [`kryoptic_module`]).
    pub fn kryoptic(backend: Backend) -> Option<Env> {
        let module = kryoptic_module()?;
        let mut env = Env::new(backend);
        let token_dir = tempfile::tempdir().expect("tempdir");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("hsm/kryoptic-token.sh");
        let out = Command::new("bash")
            .arg(&script)
            .arg(&module)
            .arg(token_dir.path())
            .arg(KRYOPTIC_LABEL)
            .env("PNC_HSM_PIN", USER_PIN)
            .env("PNC_HSM_SO_PIN", SO_PIN)
            .stdin(Stdio::null())
            .output()
            .expect("run hsm/kryoptic-token.sh");
        assert!(
            out.status.success(),
            "hsm/kryoptic-token.sh failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        env.token = Token::Kryoptic {
            module,
            conf: token_dir.path().join("kryoptic.conf"),
        };
        env._token_dir = Some(token_dir);
        Some(env)
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn data_dir(&self) -> String {
        self.dir.path().display().to_string()
    }

    pub fn command(&self) -> Command {
        let mut c = Command::new(bin());
        c.env("PNC_HSM_PIN", USER_PIN)
            .env("PNC_HSM_SO_PIN", SO_PIN)
            .env_remove("PNC_DATABASE_URL")
            .env_remove("PNC_POLICIES_DIR")
            .env_remove("SOFTHSM2_CONF")
            .stdin(Stdio::null());
        match &self.token {
            Token::SoftHsm => {
                c.env_remove("PNC_HSM_MODULE")
                    .env_remove("PNC_HSM_TOKEN_LABEL")
                    .env_remove("KRYOPTIC_CONF");
            }
            // Configuration alone: nothing in pnc-pki knows it is kryoptic.
            Token::Kryoptic { module, conf } => {
                c.env("PNC_HSM_MODULE", module)
                    .env("PNC_HSM_TOKEN_LABEL", KRYOPTIC_LABEL)
                    .env("KRYOPTIC_CONF", conf);
            }
        }
        c
    }

    /// Run `pnc-pki ARGS` (the data dir is not added automatically).
    pub fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("run pnc-pki")
    }

    /// Run with `--data-dir` appended, and assert success.
    pub fn ok(&self, args: &[&str]) -> String {
        let mut a: Vec<&str> = args.to_vec();
        let d = self.data_dir();
        a.extend(["--data-dir", &d]);
        let out = self.run(&a);
        assert!(
            out.status.success(),
            "pnc-pki {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Run with `--data-dir` appended, and assert failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let mut a: Vec<&str> = args.to_vec();
        let d = self.data_dir();
        a.extend(["--data-dir", &d]);
        let out = self.run(&a);
        assert!(
            !out.status.success(),
            "pnc-pki {args:?} unexpectedly succeeded: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    pub fn init(&self) -> String {
        let d = self.data_dir();
        let out = self.run(&[
            "init",
            "--data-dir",
            &d,
            "--database-url",
            &self.db_url,
            "--public-url",
            &self.public_url,
        ]);
        assert!(
            out.status.success(),
            "init failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Export CA certificates into DIR/export and return that path.
    pub fn export(&self) -> PathBuf {
        let out = self.path().join("export");
        self.ok(&["export", "--out", &out.display().to_string()]);
        out
    }

    /// Start `pnc-pki serve` on a free port and wait until it is ready.
    pub fn serve(&self) -> Server {
        self.serve_with_env(&[])
    }

    /// `serve` with extra environment variables (API settings such as `PNC_API_JWKS_FILE`).
    pub fn serve_with_env(&self, vars: &[(&str, &str)]) -> Server {
        let server = self.spawn_serve(vars);
        server.wait_ready();
        server
    }

    /// Start `pnc-pki serve` without waiting for plain-HTTP readiness (TLS tests poll themselves).
    pub fn spawn_serve(&self, vars: &[(&str, &str)]) -> Server {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let log =
            std::fs::File::create(self.path().join(format!("serve-{port}.log"))).expect("log");
        let child = self
            .command()
            .args(["serve", "--data-dir", &self.data_dir(), "--listen", &listen])
            .env("PNC_LOG", "info")
            .envs(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn serve");
        Server {
            child,
            base: format!("http://{listen}"),
            log: self.path().join(format!("serve-{port}.log")),
        }
    }

    /// Write a CSR (and its key) made by the openssl CLI; returns the CSR path.
    pub fn openssl_csr(&self, name: &str, curve: &str, subject: &str) -> PathBuf {
        let key = self.path().join(format!("{name}.key"));
        let csr = self.path().join(format!("{name}.csr"));
        let st = Command::new("openssl")
            .args(["ecparam", "-genkey", "-name", curve, "-noout", "-out"])
            .arg(&key)
            .status()
            .expect("openssl");
        assert!(st.success());
        let st = Command::new("openssl")
            .args(["req", "-new", "-key"])
            .arg(&key)
            .args(["-subj", subject, "-sha256", "-out"])
            .arg(&csr)
            .status()
            .expect("openssl req");
        assert!(st.success(), "openssl req -subj {subject}");
        csr
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

pub struct Server {
    pub child: Child,
    pub base: String,
    pub log: PathBuf,
}

impl Server {
    /// Wait until `/health/ready` answers 200 (panics after 30 s with the log).
    pub fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(r) = ureq::get(&format!("{}/health/ready", self.base)).call()
                && r.status() == 200
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "server did not become ready: {}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `Authorization` header value for a registered client (OAuth2 client credentials, JSON body).
    pub fn bearer(&self, client: &(String, String)) -> String {
        let r = reply(
            http()
                .post(&self.url("/oauth/token"))
                .header("content-type", "application/json")
                .send(
                    serde_json::json!({"grant_type": "client_credentials", "client_id": client.0, "client_secret": client.1})
                        .to_string()
                        .as_bytes(),
                ),
        );
        assert_eq!(r.status, 200, "token: {}", r.text());
        format!("Bearer {}", r.json()["access_token"].as_str().unwrap())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Env {
    /// `pnc-pki client add … --json`; returns (client_id, client_secret).
    pub fn client_add(&self, name: &str, role: &str, tenants: &[&str]) -> (String, String) {
        let mut args = vec!["client", "add", "--name", name, "--role", role, "--json"];
        for t in tenants {
            args.extend(["--tenant", t]);
        }
        let out = self.ok(&args);
        let v: serde_json::Value =
            serde_json::from_str(out.trim()).expect("client add --json output");
        (
            v["client_id"].as_str().expect("client_id").to_string(),
            v["client_secret"]
                .as_str()
                .expect("client_secret")
                .to_string(),
        )
    }
}

/// HTTP client that returns 4xx/5xx answers instead of failing on them.
pub fn http() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// A response read whole: (status, content type, body).
pub struct Reply {
    pub status: u16,
    pub ctype: String,
    pub body: Vec<u8>,
    /// The `Retry-After` header, if any.
    pub retry_after: Option<String>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

pub fn reply(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Reply {
    let mut r = r.expect("HTTP request failed at transport level");
    let ctype = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let status = r.status().as_u16();
    let retry_after = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = r
        .body_mut()
        .with_config()
        .limit(50 << 20)
        .read_to_vec()
        .expect("read body");
    Reply {
        status,
        ctype,
        body,
        retry_after,
    }
}

/// Run the openssl CLI; returns (success, stdout+stderr).
pub fn openssl(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl");
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), s)
}

pub fn read_pem_der(path: &Path) -> Vec<u8> {
    let pem = std::fs::read(path).expect("read pem");
    let (_, der) = der::pem::decode_vec(&pem).expect("pem");
    der
}

/// A throwaway CA made with the openssl CLI (TLS server and client certificates for tests).
pub struct TestCa {
    pub cert: PathBuf,
    pub key: PathBuf,
    dir: PathBuf,
}

fn must_openssl(args: &[&str]) {
    let (ok, out) = openssl(args);
    assert!(ok, "openssl {args:?}: {out}");
}

impl TestCa {
    /// A self-signed P-256 CA `CN=<name>` in `dir`.
    pub fn new(dir: &Path, name: &str) -> TestCa {
        let key = dir.join(format!("{name}.key"));
        let cert = dir.join(format!("{name}.pem"));
        must_openssl(&[
            "ecparam",
            "-genkey",
            "-name",
            "prime256v1",
            "-noout",
            "-out",
            key.to_str().unwrap(),
        ]);
        must_openssl(&[
            "req",
            "-x509",
            "-new",
            "-key",
            key.to_str().unwrap(),
            "-subj",
            &format!("/CN={name}"),
            "-days",
            "2",
            "-out",
            cert.to_str().unwrap(),
        ]);
        TestCa {
            cert,
            key,
            dir: dir.to_path_buf(),
        }
    }

    /// Issue `name` (a fresh P-256 key) with subject `subj` and the extensions in `ext`
    /// (openssl extfile syntax); returns (certificate, key).
    pub fn issue(&self, name: &str, subj: &str, ext: &str) -> (PathBuf, PathBuf) {
        let p = |suffix: &str| self.dir.join(format!("{name}.{suffix}"));
        must_openssl(&[
            "ecparam",
            "-genkey",
            "-name",
            "prime256v1",
            "-noout",
            "-out",
            p("key").to_str().unwrap(),
        ]);
        must_openssl(&[
            "req",
            "-new",
            "-key",
            p("key").to_str().unwrap(),
            "-subj",
            subj,
            "-out",
            p("csr").to_str().unwrap(),
        ]);
        self.sign_csr(&p("csr"), ext, &p("pem"));
        (p("pem"), p("key"))
    }

    /// Sign the PKCS#10 request `csr` (PEM; a key held elsewhere, e.g. a CA key `pnc-pki csr`
    /// made in the token) with the extensions in `ext` (openssl extfile syntax), valid 2 days,
    /// into `out` (PEM): what the owner of an external CA does.
    pub fn sign_csr(&self, csr: &Path, ext: &str, out: &Path) {
        let ext_file = out.with_extension("ext");
        std::fs::write(&ext_file, ext).unwrap();
        must_openssl(&[
            "x509",
            "-req",
            "-in",
            csr.to_str().unwrap(),
            "-CA",
            self.cert.to_str().unwrap(),
            "-CAkey",
            self.key.to_str().unwrap(),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            ext_file.to_str().unwrap(),
            "-out",
            out.to_str().unwrap(),
        ]);
    }

    /// A TLS server certificate for 127.0.0.1.
    pub fn server_cert(&self) -> (PathBuf, PathBuf) {
        self.issue(
            "srv",
            "/CN=127.0.0.1",
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        )
    }
}

/// `curl -s` with a 10 s limit; returns (HTTP status or 0, body).
pub fn curl(args: &[&str]) -> (i32, String) {
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/stdout",
            "-w",
            "\n%{http_code}",
            "--max-time",
            "10",
        ])
        .args(args)
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let code = text
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0);
    (code, text)
}

/// Wait until `serve` answers readiness over TLS (trusting `ca`).
pub fn wait_tls_ready(srv: &Server, ca: &Path) -> String {
    let base = srv.base.replace("http://", "https://");
    for _ in 0..300 {
        if curl(&[
            "--cacert",
            ca.to_str().unwrap(),
            &format!("{base}/health/ready"),
        ])
        .0 == 200
        {
            return base;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("TLS server not ready: {}", srv.log());
}

impl Env {
    /// `client add … --cert FILE --json`; returns (client_id, client_secret).
    pub fn client_add_with_cert(
        &self,
        name: &str,
        role: &str,
        tenants: &[&str],
        cert: &Path,
    ) -> (String, String) {
        let cert = cert.display().to_string();
        let mut args = vec![
            "client", "add", "--name", name, "--role", role, "--json", "--cert", &cert,
        ];
        for t in tenants {
            args.extend(["--tenant", t]);
        }
        let out = self.ok(&args);
        let v: serde_json::Value = serde_json::from_str(out.trim()).expect("client add --json");
        assert!(v["cert_sha256"].is_string(), "{v}");
        (
            v["client_id"].as_str().unwrap().to_string(),
            v["client_secret"].as_str().unwrap().to_string(),
        )
    }
}

/// POST a base64 CSR to `base`'s SECC enrollment (`/cpo/simpleenroll/ISO15118-2`) with `auth`
/// and, if given, an `Idempotency-Key`. `Err`: no answer (refused or cut connection).
pub fn try_enroll_secc(
    base: &str,
    auth: &str,
    csr_b64: &str,
    key: Option<&str>,
) -> Result<Reply, String> {
    let mut req = http()
        .post(&format!("{base}/cpo/simpleenroll/ISO15118-2"))
        .header("authorization", auth)
        .header("content-type", "application/pkcs10");
    if let Some(k) = key {
        req = req.header("idempotency-key", k);
    }
    match req.send(csr_b64.as_bytes()) {
        Ok(r) => Ok(reply(Ok(r))),
        Err(e) => Err(e.to_string()),
    }
}

impl Server {
    /// [`try_enroll_secc`] against this server; a transport failure fails the test.
    pub fn enroll_secc(&self, auth: &str, csr_b64: &str, key: Option<&str>) -> Reply {
        try_enroll_secc(&self.url(""), auth, csr_b64, key).expect("enrollment request")
    }
}

impl Env {
    /// A P-256 CSR (openssl) for `subject`, base64 DER as enrollment bodies carry it.
    pub fn csr_b64(&self, name: &str, subject: &str) -> String {
        use base64::Engine;
        let der = read_pem_der(&self.openssl_csr(name, "prime256v1", subject));
        base64::engine::general_purpose::STANDARD.encode(der)
    }

    /// The certificates of `profile` in the store (`pnc-pki list --json`).
    pub fn listed(&self, profile: &str) -> Vec<serde_json::Value> {
        let out = self.ok(&["list", "--profile", profile, "--limit", "5000", "--json"]);
        let v: serde_json::Value = serde_json::from_str(&out).expect("list --json");
        v.as_array().expect("a JSON array").clone()
    }
}

/// The leaf of a base64 certs-only PKCS#7 (an enrollment answer), read by openssl: its serial
/// (lower-case hex) and a PEM file `dir/NAME.pem` holding it first.
pub fn pkcs7_leaf(dir: &Path, name: &str, p7_b64: &str) -> (String, PathBuf) {
    use base64::Engine;
    let der = base64::engine::general_purpose::STANDARD
        .decode(p7_b64.trim())
        .expect("base64 PKCS#7");
    let p7 = dir.join(format!("{name}.p7"));
    std::fs::write(&p7, der).unwrap();
    let pem = dir.join(format!("{name}.pem"));
    let (ok, out) = openssl(&[
        "pkcs7",
        "-inform",
        "DER",
        "-in",
        p7.to_str().unwrap(),
        "-print_certs",
        "-out",
        pem.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    // print_certs writes the leaf first; `x509` reads the first certificate of the file.
    let (ok, out) = openssl(&["x509", "-in", pem.to_str().unwrap(), "-noout", "-serial"]);
    assert!(ok, "{out}");
    let serial = out
        .trim()
        .trim_start_matches("serial=")
        .to_ascii_lowercase();
    (serial, pem)
}

/// What `base`'s OCSP responder says of `leaf` (openssl, no nonce, signature not checked):
/// `good`, `revoked` or `unknown`, else openssl's whole output (an error status such as
/// tryLater).
pub fn ocsp_status(base: &str, issuer: &Path, leaf: &Path) -> String {
    let (_, out) = openssl(&[
        "ocsp",
        "-issuer",
        issuer.to_str().unwrap(),
        "-cert",
        leaf.to_str().unwrap(),
        "-url",
        &format!("{base}/ocsp"),
        "-no_nonce",
        "-noverify",
    ]);
    for s in ["good", "revoked", "unknown"] {
        if out.contains(&format!(": {s}")) {
            return s.to_string();
        }
    }
    out
}

/// A console page as an admin sees it: sign in through the form, then GET `path`.
/// Each call signs in as a new admin (`ops1`, `ops2`, …).
pub fn console_page(env: &Env, srv: &Server, path: &str) -> String {
    static USERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let name = format!(
        "ops{}",
        USERS.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1
    );
    let out = env.ok(&["user", "add", "--name", &name, "--role", "admin", "--json"]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let password = v["password"].as_str().unwrap().to_string();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let login = agent
        .get(&srv.url("/ui/login"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let needle = "name=\"csrf\" value=\"";
    let i = login.find(needle).expect("sign-in form token") + needle.len();
    let csrf = &login[i..i + login[i..].find('"').unwrap()];
    let form = serde_urlencoded::to_string([
        ("name", name.as_str()),
        ("password", &password),
        ("csrf", csrf),
    ])
    .unwrap();
    let r = agent
        .post(&srv.url("/ui/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .send(form.as_bytes())
        .unwrap();
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .find_map(|c| {
            c.to_str()
                .ok()?
                .strip_prefix("pnc_session=")
                .map(str::to_string)
        })
        .expect("session cookie");
    let cookie = cookie.split(';').next().unwrap().to_string();
    let mut page = agent
        .get(&srv.url(path))
        .header("cookie", &format!("pnc_session={cookie}"))
        .call()
        .unwrap();
    assert_eq!(page.status(), 200, "{path}");
    page.body_mut().read_to_string().unwrap()
}
