//! The operator console at `/ui/`, over real HTTP against the real binary on both stores:
//! sign-in (form token, bounded attempts, audited), the session cookie's attributes, CSRF on
//! every form, tenant isolation (also by typed URL), HTML escaping of subjects from CSRs,
//! revocation with a confirmation step (then OCSP says revoked on the page and the audit log
//! has the entry), sign-out, idle and absolute timeouts, and `PNC_UI=off`; an admin reporting a
//! sub-CA's compromise (confirmation with the store's numbers, background run, status page,
//! what the store and OCSP then say, refusals, an interrupted run finished after a restart).
//! `tests/console_browser.rs` drives the same pages in headless Chromium.

mod common;

use std::time::Duration;

use base64::Engine;
use common::openssl_cli::ski;
use common::*;

const B64: base64::engine::general_purpose::GeneralPurpose =
    base64::engine::general_purpose::STANDARD;

/// An HTTP client that keeps one session cookie and never follows redirects.
struct Ui {
    base: String,
    cookie: Option<String>,
    agent: ureq::Agent,
}

struct Page {
    status: u16,
    location: Option<String>,
    set_cookie: Vec<String>,
    headers: Vec<(String, String)>,
    body: String,
}

impl Page {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The value of the first hidden field `name` on the page.
    fn field(&self, name: &str) -> Option<String> {
        let needle = format!("name=\"{name}\" value=\"");
        let i = self.body.find(&needle)? + needle.len();
        let j = self.body[i..].find('"')?;
        Some(self.body[i..i + j].to_string())
    }

    /// The text of the element with id `id` (no nested tags).
    fn by_id(&self, id: &str) -> Option<String> {
        let needle = format!("id=\"{id}\"");
        let i = self.body.find(&needle)?;
        let start = self.body[i..].find('>')? + i + 1;
        let end = self.body[start..].find('<')? + start;
        Some(self.body[start..end].to_string())
    }
}

impl Ui {
    fn new(srv: &Server) -> Ui {
        Ui {
            base: srv.url(""),
            cookie: None,
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .max_redirects(0)
                .build()
                .into(),
        }
    }

    fn read(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Page {
        let mut r = r.expect("HTTP transport");
        let headers: Vec<(String, String)> = r
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        Page {
            status: r.status().as_u16(),
            location: r
                .headers()
                .get("location")
                .map(|v| v.to_str().unwrap().to_string()),
            set_cookie: r
                .headers()
                .get_all("set-cookie")
                .iter()
                .map(|v| v.to_str().unwrap().to_string())
                .collect(),
            headers,
            body: r.body_mut().read_to_string().unwrap_or_default(),
        }
    }

    fn get(&self, path: &str) -> Page {
        let mut req = self.agent.get(&format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            req = req.header("cookie", &format!("pnc_session={c}"));
        }
        Ui::read(req.call())
    }

    fn post_with(&self, path: &str, form: &[(&str, &str)], extra: &[(&str, &str)]) -> Page {
        let body = serde_urlencoded::to_string(form).unwrap();
        let mut req = self
            .agent
            .post(&format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded");
        if let Some(c) = &self.cookie {
            req = req.header("cookie", &format!("pnc_session={c}"));
        }
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        Ui::read(req.send(body.as_bytes()))
    }

    fn post(&self, path: &str, form: &[(&str, &str)]) -> Page {
        self.post_with(path, form, &[])
    }

    /// Sign in through the form; keeps the cookie.
    fn sign_in(&mut self, name: &str, password: &str) -> Page {
        let login = self.get("/ui/login");
        assert_eq!(login.status, 200, "{}", login.body);
        let token = login.field("csrf").expect("sign-in form token");
        let p = self.post(
            "/ui/login",
            &[("name", name), ("password", password), ("csrf", &token)],
        );
        if let Some(c) = p
            .set_cookie
            .iter()
            .find_map(|c| c.strip_prefix("pnc_session="))
        {
            self.cookie = Some(c.split(';').next().unwrap().to_string());
        }
        p
    }
}

fn user_add(env: &Env, name: &str, role: &str, tenants: &[&str]) -> String {
    let mut args = vec!["user", "add", "--name", name, "--role", role, "--json"];
    for t in tenants {
        args.extend(["--tenant", t]);
    }
    let v: serde_json::Value = serde_json::from_str(env.ok(&args).trim()).unwrap();
    assert_eq!(v["name"], name);
    v["password"].as_str().unwrap().to_string()
}

/// Enroll a SECC certificate over the API; returns (issuer_id, serial_hex).
fn enroll(env: &Env, srv: &Server, auth: &str, name: &str, subject: &str) -> (String, String) {
    let r = srv.enroll_secc(auth, &env.csr_b64(name, subject), None);
    assert_eq!(r.status, 200, "enroll {subject}: {}", r.text());
    let certs = reply(
        http()
            .get(&srv.url("/api/v1/certificates?limit=1000"))
            .header("authorization", auth)
            .call(),
    )
    .json();
    let cn = subject.rsplit("CN=").next().unwrap().replace('*', "");
    let c = certs["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["evse_id"].as_str() == Some(&cn))
        .max_by_key(|c| c["created_at"].as_i64())
        .unwrap_or_else(|| panic!("no certificate for {cn}: {certs}"))
        .clone();
    (
        c["issuer_id"].as_str().unwrap().to_string(),
        c["serial_hex"].as_str().unwrap().to_string(),
    )
}

/// The API clients and certificates both console tests start from: an admin, two CPOs of
/// different operators, and certificates (issuer, serial) for each, one of them with a
/// `<script>` subject.
struct Fixture {
    admin_api: String,
    abc: String,
    mine: (String, String),
    theirs: (String, String),
    script: (String, String),
}

fn fixture(env: &Env, srv: &Server) -> Fixture {
    let admin_api = srv.bearer(&env.client_add("ops", "admin", &[]));
    let abc = srv.bearer(&env.client_add("abc", "cpo", &["DE*ABC"]));
    let xyz = srv.bearer(&env.client_add("xyz", "cpo", &["DE*XYZ"]));
    let mine = enroll(
        env,
        srv,
        &abc,
        "e1",
        "/C=DE/O=ABC Charging/DC=CPO/CN=DE*ABC*E1",
    );
    let theirs = enroll(env, srv, &xyz, "x1", "/C=DE/O=XYZ/DC=CPO/CN=DE*XYZ*E9");
    let script = enroll(
        env,
        srv,
        &abc,
        "s1",
        "/C=DE/O=<script>alert(1)<\\/script>/DC=CPO/CN=DE*ABC*E2",
    );
    Fixture {
        admin_api,
        abc,
        mine,
        theirs,
        script,
    }
}

fn audit_actions(srv: &Server, admin: &str, action: &str) -> Vec<serde_json::Value> {
    let r = reply(
        http()
            .get(&srv.url(&format!("/api/v1/audit?action={action}&limit=1000")))
            .header("authorization", admin)
            .call(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["items"].as_array().unwrap().clone()
}

fn status_of(srv: &Server, admin: &str, issuer: &str, serial: &str) -> String {
    let r = reply(
        http()
            .get(&srv.url(&format!("/api/v1/certificates/{issuer}/{serial}")))
            .header("authorization", admin)
            .call(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["status"].as_str().unwrap().to_string()
}

#[test]
fn console_pages_sessions_csrf_tenants_and_revocation() {
    for backend in backends() {
        run_console(backend);
    }
}

fn run_console(backend: Backend) {
    let env = Env::new(backend);
    env.init();
    let admin_pw = user_add(&env, "alice", "admin", &[]);
    let cpo_pw = user_add(&env, "carol", "cpo", &["DE*ABC"]);
    let other_pw = user_add(&env, "oscar", "cpo", &["DE*XYZ"]);
    let auditor_pw = user_add(&env, "audrey", "auditor", &[]);
    let guess_pw = user_add(&env, "gina", "admin", &[]);
    // Console users are people: no machine roles, no duplicate names, plain names.
    let e = env.fails(&["user", "add", "--name", "robot", "--role", "oem"]);
    assert!(e.contains("invalid_role"), "{e}");
    let e = env.fails(&["user", "add", "--name", "alice", "--role", "admin"]);
    assert!(e.contains("exists"), "{e}");
    let e = env.fails(&["user", "add", "--name", "<b>x</b>", "--role", "admin"]);
    assert!(e.contains("invalid_user_name"), "{e}");

    let srv = env.serve();
    let Fixture {
        admin_api,
        mine: (ai, mine),
        theirs: (xi, theirs),
        script: (si, script),
        ..
    } = fixture(&env, &srv);

    // Anonymous: the sign-in page, with the security headers.
    let mut ui = Ui::new(&srv);
    let p = ui.get("/ui/");
    assert_eq!(p.status, 200);
    assert!(p.body.contains("action=\"/ui/login\""), "{}", p.body);
    assert!(p.body.contains("name=\"name\"") && p.body.contains("name=\"password\""));
    let csp = p.header("content-security-policy").unwrap();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(p.header("x-frame-options"), Some("DENY"));
    assert_eq!(p.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(p.header("cache-control"), Some("no-store"));
    assert!(!p.body.contains("<script"), "the console has no script");
    // Pages behind the sign-in redirect to it.
    assert_eq!(ui.get("/ui/certificates").status, 303);
    assert_eq!(ui.get("/ui/audit").location.as_deref(), Some("/ui/login"));

    // Sign-in forms without our token, with a forged one, or from another site: refused.
    let token = ui.get("/ui/login").field("csrf").unwrap();
    let p = ui.post("/ui/login", &[("name", "alice"), ("password", &admin_pw)]);
    assert_eq!(p.status, 403, "no token: {}", p.body);
    assert!(p.set_cookie.is_empty());
    let forged = B64.encode([0u8; 56]);
    let p = ui.post(
        "/ui/login",
        &[
            ("name", "alice"),
            ("password", &admin_pw),
            ("csrf", &forged),
        ],
    );
    assert_eq!(p.status, 403);
    let p = ui.post_with(
        "/ui/login",
        &[("name", "alice"), ("password", &admin_pw), ("csrf", &token)],
        &[("origin", "http://evil.example")],
    );
    assert_eq!(p.status, 403, "cross-site sign-in");
    assert!(p.set_cookie.is_empty());

    // A wrong password: 401 and audited under the name tried.
    let p = ui.post(
        "/ui/login",
        &[("name", "alice"), ("password", "wrong"), ("csrf", &token)],
    );
    assert_eq!(p.status, 401, "{}", p.body);
    assert!(p.set_cookie.is_empty());
    let failures = audit_actions(&srv, &admin_api, "ui.signin.failure");
    assert!(
        failures.iter().any(|e| e["actor"] == "ui:alice"),
        "{failures:?}"
    );

    // Bounded attempts per user name: beyond five failures even the right password waits.
    let mut g = Ui::new(&srv);
    for _ in 0..6 {
        assert_eq!(g.sign_in("gina", "nope").status, 401);
    }
    let p = g.sign_in("gina", &guess_pw);
    assert_eq!(p.status, 429, "{}", p.body);
    assert!(p.header("retry-after").is_some());
    assert!(g.cookie.is_none());

    // The right password: a strict session cookie and the dashboard.
    let p = ui.sign_in("alice", &admin_pw);
    assert_eq!(p.status, 303, "{}", p.body);
    assert_eq!(p.location.as_deref(), Some("/ui"));
    let c = &p.set_cookie[0];
    assert!(
        c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.contains("Path=/ui"),
        "{c}"
    );
    assert!(
        !c.contains("Secure"),
        "plain HTTP on loopback: no Secure flag ({c})"
    );
    let signins = audit_actions(&srv, &admin_api, "ui.signin");
    assert!(
        signins
            .iter()
            .any(|e| e["action"] == "ui.signin" && e["actor"] == "ui:alice")
    );

    // Dashboard numbers are the store's.
    let all = reply(
        http()
            .get(&srv.url("/api/v1/certificates?limit=1000"))
            .header("authorization", &admin_api)
            .call(),
    )
    .json();
    let total = all["items"].as_array().unwrap().len();
    let dash = ui.get("/ui");
    assert_eq!(dash.status, 200);
    assert_eq!(
        dash.by_id("count-all"),
        Some(total.to_string()),
        "{}",
        dash.body
    );
    assert_eq!(dash.by_id("count-revoked").as_deref(), Some("0"));
    assert_eq!(dash.by_id("health-db").as_deref(), Some("ok"));

    // Search by EVSE ID finds it, links to its page; the subject from the CSR is escaped.
    let p = ui.get("/ui/certificates?q=DE*ABC*E2");
    assert_eq!(p.status, 200);
    assert!(
        p.body.contains(&format!("/ui/certificates/{si}/{script}")),
        "{}",
        p.body
    );
    assert!(
        // RFC 4514 escapes < and > in names (`\<`), HTML escapes them again (`&lt;`).
        p.body
            .contains(r"\&lt;script\&gt;alert(1)\&lt;/script\&gt;"),
        "{}",
        p.body
    );
    assert!(!p.body.contains("<script>"), "raw markup from a CSR");
    let p = ui.get(&format!("/ui/certificates/{si}/{script}"));
    assert_eq!(p.status, 200);
    assert!(p.body.contains("&lt;script&gt;") && !p.body.contains("<script>"));
    let p = ui.get("/ui/certificates?q=DE*ABC&status=valid");
    assert!(p.body.contains(&mine) && p.body.contains(&script));
    assert!(!p.body.contains(&theirs));

    // The CPO user sees only its operator's certificates, also when typing the URL.
    let mut cpo = Ui::new(&srv);
    assert_eq!(cpo.sign_in("carol", &cpo_pw).status, 303);
    let p = cpo.get("/ui/certificates");
    assert_eq!(p.status, 200);
    assert!(p.body.contains(&mine), "{}", p.body);
    assert!(
        !p.body.contains(&theirs),
        "another operator's certificate listed"
    );
    let p = cpo.get(&format!("/ui/certificates/{xi}/{theirs}"));
    assert_eq!(p.status, 403, "{}", p.body);
    assert!(p.body.contains("forbidden_tenant"));
    let p = cpo.get(&format!("/ui/certificates/{xi}/{theirs}/pem"));
    assert_eq!(p.status, 403);
    let p = cpo.get("/ui/certificates?q=DE*XYZ*E9");
    assert!(!p.body.contains(&theirs));
    // Its dashboard counts its own certificates only.
    let dash = cpo.get("/ui");
    assert_eq!(
        dash.by_id("count-all").as_deref(),
        Some("2"),
        "{}",
        dash.body
    );
    // It has no audit log or client pages.
    assert_eq!(cpo.get("/ui/audit").status, 403);
    assert_eq!(cpo.get("/ui/clients").status, 403);
    let denied = audit_actions(&srv, &admin_api, "auth.denied");
    assert!(
        denied.iter().any(|e| e["actor"] == "ui:carol"),
        "{denied:?}"
    );

    // Revocation: without the CSRF token refused and nothing changes; another operator's
    // certificate refused; then a confirmation page, then the revocation.
    let detail = cpo.get(&format!("/ui/certificates/{ai}/{mine}"));
    let csrf = detail.field("csrf").expect("session CSRF field");
    assert_eq!(detail.by_id("ocsp-status").as_deref(), Some("good"));
    let rv = format!("/ui/certificates/{ai}/{mine}/revoke");
    let p = cpo.post(&rv, &[("reason", "keyCompromise"), ("confirm", "yes")]);
    assert_eq!(p.status, 403, "{}", p.body);
    assert!(p.body.contains("csrf"));
    let p = cpo.post(
        &rv,
        &[
            ("reason", "keyCompromise"),
            ("confirm", "yes"),
            ("csrf", "x"),
        ],
    );
    assert_eq!(p.status, 403);
    assert_eq!(status_of(&srv, &admin_api, &ai, &mine), "valid");
    let p = cpo.post(
        &format!("/ui/certificates/{xi}/{theirs}/revoke"),
        &[
            ("reason", "keyCompromise"),
            ("confirm", "yes"),
            ("csrf", &csrf),
        ],
    );
    assert_eq!(p.status, 403);
    assert_eq!(status_of(&srv, &admin_api, &xi, &theirs), "valid");
    let mut auditor = Ui::new(&srv);
    assert_eq!(auditor.sign_in("audrey", &auditor_pw).status, 303);
    let acsrf = auditor.get("/ui").field("csrf").unwrap();
    let p = auditor.post(
        &rv,
        &[
            ("reason", "keyCompromise"),
            ("confirm", "yes"),
            ("csrf", &acsrf),
        ],
    );
    assert_eq!(p.status, 403, "auditors change nothing");
    assert_eq!(status_of(&srv, &admin_api, &ai, &mine), "valid");
    let p = cpo.post(&rv, &[("reason", "keyCompromise"), ("csrf", &csrf)]);
    assert_eq!(p.status, 200);
    assert!(
        p.body.contains("confirm-revoke"),
        "confirmation step: {}",
        p.body
    );
    assert_eq!(
        status_of(&srv, &admin_api, &ai, &mine),
        "valid",
        "asked, not done"
    );
    let p = cpo.post(
        &rv,
        &[
            ("reason", "keyCompromise"),
            ("confirm", "yes"),
            ("csrf", &csrf),
        ],
    );
    assert_eq!(p.status, 303, "{}", p.body);
    assert_eq!(status_of(&srv, &admin_api, &ai, &mine), "revoked");
    let detail = cpo.get(&format!("/ui/certificates/{ai}/{mine}"));
    assert!(
        detail.by_id("ocsp-status").unwrap().starts_with("revoked"),
        "{}",
        detail.body
    );
    assert!(detail.body.contains("certificate.revoke") && detail.body.contains("ui:carol"));
    assert!(
        !detail.body.contains("days left"),
        "a revoked certificate has no days left"
    );
    let revs = audit_actions(&srv, &admin_api, "certificate.revoke");
    assert!(
        revs.iter()
            .any(|e| e["actor"] == "ui:carol" && e["details"]["reason"] == "keyCompromise")
    );

    // The audit log page and its verification, recorded and shown on the dashboard.
    let p = ui.get("/ui/audit?action=certificate.revoke");
    assert_eq!(p.status, 200);
    assert!(p.body.contains("ui:carol"));
    let acsrf = ui.get("/ui/audit").field("csrf").unwrap();
    assert_eq!(ui.post("/ui/audit/verify", &[]).status, 403);
    let p = ui.post("/ui/audit/verify", &[("csrf", &acsrf)]);
    assert_eq!(p.status, 200);
    assert!(p.body.contains("The audit chain is intact"), "{}", p.body);
    let dash = ui.get("/ui");
    assert!(dash.body.contains("verified intact"), "{}", dash.body);
    assert_eq!(dash.by_id("count-revoked").as_deref(), Some("1"));
    // The OCSP signers (30 days, renewed by the service itself) are counted apart from the
    // certificates people act on (nothing else here ends within 30 days).
    assert_eq!(
        dash.by_id("expiring-30").as_deref(),
        Some("0"),
        "{}",
        dash.body
    );
    let signers = dash.by_id("ocsp-signers-expiring").unwrap_or_default();
    assert!(
        signers.contains("OCSP signer") && !signers.contains(": 0 "),
        "{signers}"
    );

    // API clients: the secret once, in the answer to the form only.
    let p = ui.post(
        "/ui/clients",
        &[
            ("name", "new-csms"),
            ("role", "cpo"),
            ("tenants", "DE*ABC"),
            ("csrf", &acsrf),
        ],
    );
    assert_eq!(p.status, 201, "{}", p.body);
    let secret = p.by_id("new-client-secret").unwrap();
    let id = p.by_id("new-client-id").unwrap();
    assert!(
        srv.bearer(&(id.clone(), secret.clone()))
            .starts_with("Bearer ")
    );
    let list = ui.get("/ui/clients");
    assert!(list.body.contains(&id) && !list.body.contains(&secret));
    assert_eq!(
        ui.post(&format!("/ui/clients/{id}/disable"), &[]).status,
        403
    );
    let p = ui.post(&format!("/ui/clients/{id}/disable"), &[("csrf", &acsrf)]);
    assert_eq!(p.status, 303);
    let created = audit_actions(&srv, &admin_api, "client.");
    assert!(
        created
            .iter()
            .any(|e| e["action"] == "client.create" && e["actor"] == "ui:alice")
    );
    assert!(
        created
            .iter()
            .any(|e| e["action"] == "client.disable" && e["actor"] == "ui:alice")
    );

    // Other pages render for an admin; unknown ones are 404 pages.
    for path in [
        "/ui/hierarchy",
        "/ui/contracts",
        "/ui/provisioning-certificates",
        "/ui/assets/console.css",
    ] {
        assert_eq!(ui.get(path).status, 200, "{path}");
    }
    assert!(ui.get("/ui/hierarchy").body.contains("cpo-sub-ca-2"));
    assert_eq!(ui.get("/ui/nothing-here").status, 404);
    assert_eq!(ui.get("/ui/certificates?status=bogus").status, 400);

    // Sign-out needs the token, ends the session here and for the old cookie.
    assert_eq!(cpo.post("/ui/logout", &[]).status, 403);
    let p = cpo.post("/ui/logout", &[("csrf", &csrf)]);
    assert_eq!(p.status, 303);
    assert!(p.set_cookie[0].contains("Max-Age=0"));
    let p = cpo.get("/ui/certificates");
    assert_eq!(p.status, 303, "the old cookie must not work");
    assert_eq!(p.location.as_deref(), Some("/ui/login"));
    let outs = audit_actions(&srv, &admin_api, "ui.signout");
    assert!(outs.iter().any(|e| e["actor"] == "ui:carol"));

    // A disabled user's session ends at once.
    env.ok(&["user", "disable", "--name", "audrey"]);
    assert_eq!(auditor.get("/ui/audit").status, 303);
    assert_eq!(auditor.sign_in("audrey", &auditor_pw).status, 401);

    // Five failed sign-ins above for oscar's neighbour did not lock oscar.
    let mut o = Ui::new(&srv);
    assert_eq!(o.sign_in("oscar", &other_pw).status, 303);

    assert!(env.ok(&["audit", "verify"]).contains("OK"));
}

#[test]
fn sessions_end_when_idle_or_too_old_and_the_console_can_be_off() {
    let env = Env::new(Backend::Sqlite);
    env.init();
    let pw = user_add(&env, "alice", "admin", &[]);
    let srv = env.serve_with_env(&[("PNC_UI_IDLE_TIMEOUT", "2s"), ("PNC_UI_SESSION_MAX", "8s")]);
    // Idle: activity keeps the session, a pause longer than the idle timeout ends it.
    let mut ui = Ui::new(&srv);
    assert_eq!(ui.sign_in("alice", &pw).status, 303);
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(1000));
        assert_eq!(ui.get("/ui").status, 200, "active within the idle timeout");
    }
    std::thread::sleep(Duration::from_millis(3500));
    assert_eq!(ui.get("/ui/audit").status, 303, "idle session must end");
    // Absolute: however active, a session ends that long after sign-in.
    let mut ui = Ui::new(&srv);
    assert_eq!(ui.sign_in("alice", &pw).status, 303);
    let mut ended = false;
    for _ in 0..12 {
        std::thread::sleep(Duration::from_millis(1000));
        if ui.get("/ui/audit").status == 303 {
            ended = true;
            break;
        }
    }
    assert!(
        ended,
        "an active session must still end after PNC_UI_SESSION_MAX"
    );
    drop(srv);

    let srv = env.serve_with_env(&[("PNC_UI", "off")]);
    let p = Ui::new(&srv).get("/ui");
    assert_eq!(p.status, 404);
    assert!(!p.body.contains("<form"));
}

/// A Python with Selenium 4.51 (4.52 needs a `certifi` the registry lacks), in a venv kept under
/// the target dir so reruns reuse it. `None` (outside CI) when it cannot be made.
fn selenium_python() -> Option<std::path::PathBuf> {
    let venv = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-venv");
    let py = venv.join("bin/python");
    let has = |py: &std::path::Path| {
        std::process::Command::new(py)
            .args([
                "-c",
                "import selenium, sys; sys.exit(selenium.__version__ != '4.51.0')",
            ])
            .status()
            .is_ok_and(|s| s.success())
    };
    if has(&py) {
        return Some(py);
    }
    let made = std::process::Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .is_ok_and(|s| s.success())
        && std::process::Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "selenium==4.51.0"])
            .status()
            .is_ok_and(|s| s.success());
    (made && has(&py)).then_some(py)
}

fn tool(path: &str) -> bool {
    std::path::Path::new(path).exists()
}

/// Chromium, its driver and a Python with Selenium, or `None` outside CI when one is missing (in
/// CI a missing one fails the test).
struct Browser {
    py: std::path::PathBuf,
    chromium: String,
    driver: String,
}

impl Browser {
    fn find() -> Option<Browser> {
        let ci = std::env::var_os("CI").is_some();
        let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let driver =
            std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        if !tool(&chromium) || !tool(&driver) {
            assert!(
                !ci,
                "CI is set but {chromium} or {driver} is missing (Debian: chromium chromium-driver)"
            );
            eprintln!("\n!!! SKIPPED the browser test: {chromium} or {driver} missing !!!\n");
            return None;
        }
        let Some(py) = selenium_python() else {
            assert!(
                !ci,
                "CI is set but a venv with selenium==4.51.0 could not be made"
            );
            eprintln!("\n!!! SKIPPED the browser test: no selenium venv !!!\n");
            return None;
        };
        Some(Browser {
            py,
            chromium,
            driver,
        })
    }

    /// Run `tests/console/{script}` against `srv` with `fixture`, screenshots to `shots`; the
    /// script's output (stdout and stderr), after it succeeded.
    fn run(&self, script: &str, srv: &Server, fixture: &serde_json::Value, shots: &str) -> String {
        std::fs::create_dir_all(shots).unwrap();
        let path = format!("{}/tests/console/{script}", env!("CARGO_MANIFEST_DIR"));
        let out = std::process::Command::new(&self.py)
            .arg(path)
            .env("PNC_UI_URL", srv.url(""))
            .env("PNC_UI_FIXTURE", fixture.to_string())
            .env("SHOTS", shots)
            .env("CHROMIUM", &self.chromium)
            .env("CHROMEDRIVER", &self.driver)
            // Selenium must use the driver given, never fetch one.
            .env("SE_OFFLINE", "true")
            .output()
            .expect("run the browser script");
        let log = format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("{log}");
        assert!(out.status.success(), "browser checks failed:\n{log}");
        log
    }
}

/// Where screenshots go: `PNC_CONSOLE_SHOTS`, default under the target dir (`make screenshots`
/// writes them to docs/console/).
fn shots_dir() -> String {
    std::env::var("PNC_CONSOLE_SHOTS")
        .unwrap_or_else(|_| format!("{}/console-shots", env!("CARGO_TARGET_TMPDIR")))
}

/// The console in a real browser: sign in with the keyboard, dashboard numbers equal the store,
/// find a certificate, revoke it with a reason through the confirmation page, see OCSP say
/// revoked and the audit entry on its page, a `<script>` subject rendered as text, a form
/// without its CSRF token refused, sign-out, a CPO user kept to its own certificates. Saves a
/// screenshot of every page (`shots_dir`).
#[test]
fn the_console_in_headless_chromium() {
    let Some(browser) = Browser::find() else {
        return;
    };

    let env = Env::new(Backend::Sqlite);
    env.init();
    let admin_pw = user_add(&env, "alice", "admin", &[]);
    let cpo_pw = user_add(&env, "carol", "cpo", &["DE*ABC"]);
    let srv = env.serve();
    let Fixture {
        admin_api,
        abc,
        mine: (ai, mine),
        theirs: (xi, theirs),
        script: (si, script),
    } = fixture(&env, &srv);
    // One already revoked, so the revoked count is not trivially zero.
    let (ri, gone) = enroll(
        &env,
        &srv,
        &abc,
        "r1",
        "/C=DE/O=ABC Charging/DC=CPO/CN=DE*ABC*E3",
    );
    let r = reply(
        http()
            .post(&srv.url(&format!("/api/v1/certificates/{ri}/{gone}/revoke")))
            .header("authorization", &admin_api)
            .header("content-type", "application/json")
            .send(br#"{"reason":"superseded"}"#.as_slice()),
    );
    assert_eq!(r.status, 200, "{}", r.text());

    // What the store holds, as the API lists it.
    let all = reply(
        http()
            .get(&srv.url("/api/v1/certificates?limit=1000"))
            .header("authorization", &admin_api)
            .call(),
    )
    .json();
    let items = all["items"].as_array().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let valid = items
        .iter()
        .filter(|c| c["status"] == "valid" && c["not_after"].as_i64().unwrap() >= now)
        .count();
    let revoked = items.iter().filter(|c| c["status"] == "revoked").count();
    let cpo_count = items
        .iter()
        .filter(|c| c["tenant"].as_str() == Some("DE*ABC"))
        .count();
    assert_eq!(revoked, 1);
    let fixture = serde_json::json!({
        "admin": {"name": "alice", "password": admin_pw},
        "cpo": {"name": "carol", "password": cpo_pw},
        "counts": {"all": items.len(), "valid": valid, "revoked": revoked},
        "cpo_count": cpo_count,
        "mine": {"issuer": ai, "serial": mine, "evse_id": "DE*ABC*E1"},
        "script": {"issuer": si, "serial": script},
        "theirs": {"issuer": xi, "serial": theirs},
    });
    let shots = shots_dir();
    let log = browser.run("browser.py", &srv, &fixture, &shots);
    assert!(
        log.contains("ok: no audit log link for a CPO"),
        "the script ran to its end:\n{log}"
    );
    for page in [
        "signin",
        "dashboard",
        "dashboard-phone",
        "hierarchy",
        "certificates",
        "certificate",
        "revoke-confirm",
        "certificate-revoked",
        "audit",
        "audit-verified",
        "clients",
    ] {
        let png = std::path::Path::new(&shots).join(format!("{page}.png"));
        let bytes = std::fs::read(&png).unwrap_or_default();
        assert!(
            bytes.starts_with(b"\x89PNG"),
            "screenshot {}",
            png.display()
        );
    }
    // The browser's revocation reached the store, under the person's name.
    assert_eq!(status_of(&srv, &admin_api, &ai, &mine), "revoked");
    assert_eq!(status_of(&srv, &admin_api, &si, &script), "valid");
    let revs = audit_actions(&srv, &admin_api, "certificate.revoke");
    assert!(revs.iter().any(|e| e["actor"] == "ui:alice"));
}

#[test]
fn the_webhooks_page_shows_endpoints_and_deliveries_but_no_secret() {
    let env = Env::new(Backend::Sqlite);
    env.init();
    let mo = env.client_add("mo-hooks", "mo", &["DE8AA"]);
    let admin_pw = user_add(&env, "hookadmin", "admin", &[]);
    let mo_pw = user_add(&env, "hookmo", "mo", &["DE8AA"]);
    let srv = env.serve_with_env(&[("PNC_FETCH_ALLOW", "127.0.0.1/32")]);
    let rx = receiver::Receiver::start();
    let r = reply(
        http()
            .post(&srv.url("/v1/webhook/endpoints"))
            .header("authorization", &srv.bearer(&mo))
            .header("content-type", "application/json")
            .send(
                serde_json::json!({"url": rx.url("/in"), "enabledEvents": ["root.cert.added"],
                    "description": "console check"})
                .to_string()
                .as_bytes(),
            ),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let (id, secret) = (
        r.json()["id"].as_str().unwrap().to_string(),
        r.json()["secret"].as_str().unwrap().to_string(),
    );
    let root = TestCa::new(env.path(), "Hooks OEM Root");
    env.ok(&[
        "trust",
        "add",
        "--kind",
        "oem-root",
        root.cert.to_str().unwrap(),
    ]);
    let got = rx.wait_for("root.cert.added", 1, 20);
    let event_id = got[0].json()["eventId"].as_str().unwrap().to_string();

    let mut ui = Ui::new(&srv);
    ui.sign_in("hookadmin", &admin_pw);
    let p = ui.get("/ui/webhooks");
    assert_eq!(p.status, 200, "{}", p.body);
    for want in [
        id.as_str(),
        "mo-hooks",
        event_id.as_str(),
        "delivered",
        "HTTP 2xx",
    ] {
        assert!(p.body.contains(want), "{want} on the page: {}", p.body);
    }
    assert!(!p.body.contains(&secret), "the secret is never shown");

    let mut ui = Ui::new(&srv);
    ui.sign_in("hookmo", &mo_pw);
    assert_eq!(ui.get("/ui/webhooks").status, 403);
}

/// Enroll an SECC certificate for EVSE `cn` under `auth`; its serial and a PEM file of it.
fn enroll_pem(env: &Env, srv: &Server, auth: &str, cn: &str) -> (String, std::path::PathBuf) {
    let name = cn.replace('*', "-");
    let r = srv.enroll_secc(
        auth,
        &env.csr_b64(&name, &format!("/C=DE/O=Charging/DC=CPO/CN={cn}")),
        None,
    );
    assert_eq!(r.status, 200, "enroll {cn}: {}", r.text());
    pkcs7_leaf(env.path(), &name, &r.text())
}

/// `pnc-pki list --issuer ISSUER --json`.
fn issued_by(env: &Env, issuer: &str) -> Vec<serde_json::Value> {
    let out = env.ok(&["list", "--issuer", issuer, "--limit", "5000", "--json"]);
    serde_json::from_str::<serde_json::Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// Poll the status page until the response is no longer running; its last answer.
fn wait_until_done(ui: &Ui, path: &str) -> Page {
    let t0 = std::time::Instant::now();
    loop {
        let p = ui.get(path);
        assert_eq!(p.status, 200, "{}", p.body);
        let state = p.by_id("compromise-state").unwrap_or_default();
        if state != "running" {
            return p;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(180),
            "still running after 3 minutes"
        );
        assert!(
            p.body.contains("http-equiv=\"refresh\""),
            "a running response's page reloads itself"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// An admin reports the compromise of `cpo-sub-ca-2` in the console (in Chromium on SQLite, over
/// plain HTTP on PostgreSQL): hierarchy button, confirmation page with the store's numbers,
/// confirm, status page until finished. Then the store has the leaves revoked (`pnc-pki list`,
/// OCSP), `cacerts` serves the replacement, every audit entry names the person, the CSV list
/// downloads, a repeat is refused, and after a restart the page shows what the store recorded.
/// An auditor sees no button and is refused when posting anyway, a form without the CSRF token
/// is refused, and a root is refused with why.
#[test]
fn reporting_a_sub_ca_compromise_in_the_console() {
    for backend in backends() {
        run_compromise(backend);
    }
}

fn run_compromise(backend: Backend) {
    let env = Env::new(backend);
    env.init();
    let admin_pw = user_add(&env, "alice", "admin", &[]);
    let auditor_pw = user_add(&env, "audrey", "auditor", &[]);
    let srv = env.serve();
    let admin_api = srv.bearer(&env.client_add("ops", "admin", &[]));
    let abc = srv.bearer(&env.client_add("abc", "cpo", &["DE*ABC"]));
    let xyz = srv.bearer(&env.client_add("xyz", "cpo", &["DE*XYZ"]));
    let old = env.export();
    let old_ca = old.join("cpo-sub-ca-2.pem");
    let mut leaves = Vec::new();
    for i in 0..5 {
        leaves.push(enroll_pem(&env, &srv, &abc, &format!("DE*ABC*E{i}")));
    }
    leaves.push(enroll_pem(&env, &srv, &xyz, "DE*XYZ*E9"));
    // What the store says will be revoked: every valid certificate the CA's key signed (the
    // leaves, and its OCSP signer if it has one).
    let valid_before = issued_by(&env, "cpo-sub-ca-2")
        .iter()
        .filter(|c| c["status"] == "valid")
        .count();
    assert!(valid_before >= leaves.len(), "{valid_before}");
    let url = srv.url("");
    assert_eq!(ocsp_status(&url, &old_ca, &leaves[0].1), "good");

    // An auditor: no button, and a POST anyway is refused by the RA, audited, nothing done.
    let mut auditor = Ui::new(&srv);
    assert_eq!(auditor.sign_in("audrey", &auditor_pw).status, 303);
    let h = auditor.get("/ui/hierarchy");
    assert_eq!(h.status, 200);
    assert!(
        !h.body.contains("Report compromise") && !h.body.contains("/compromise\""),
        "{}",
        h.body
    );
    let acsrf = h.field("csrf").unwrap();
    let ca_path = "/ui/cas/cpo-sub-ca-2/compromise";
    for form in [
        vec![("csrf", acsrf.as_str())],
        vec![("csrf", acsrf.as_str()), ("confirm", "yes")],
    ] {
        let p = auditor.post(ca_path, &form);
        assert_eq!(p.status, 403, "{}", p.body);
        assert!(p.body.contains("forbidden_role"), "{}", p.body);
    }
    let denied = audit_actions(&srv, &admin_api, "auth.denied");
    assert!(
        denied.iter().any(|e| e["actor"] == "ui:audrey"),
        "{denied:?}"
    );

    // The admin sees the button on every CA but the roots.
    let mut ui = Ui::new(&srv);
    assert_eq!(ui.sign_in("alice", &admin_pw).status, 303);
    let h = ui.get("/ui/hierarchy");
    assert!(
        h.body
            .contains("action=\"/ui/cas/cpo-sub-ca-2/compromise\""),
        "{}",
        h.body
    );
    assert!(h.body.contains("data-ca=\"cpo-sub-ca-1\""));
    assert!(
        !h.body.contains("data-ca=\"v2g-root\""),
        "no button for a root"
    );
    let csrf = h.field("csrf").unwrap();
    // Without the CSRF token, or from another site: refused, nothing shown or done.
    let p = ui.post(ca_path, &[("confirm", "yes")]);
    assert_eq!(p.status, 403, "{}", p.body);
    assert!(p.body.contains("csrf"));
    let p = ui.post_with(
        ca_path,
        &[("csrf", &csrf), ("confirm", "yes")],
        &[("origin", "http://evil.example")],
    );
    assert_eq!(p.status, 403, "cross-site: {}", p.body);
    // A root, typed by hand: refused before anything, with why and what to do instead.
    let p = ui.post("/ui/cas/v2g-root/compromise", &[("csrf", &csrf)]);
    assert_eq!(p.status, 409, "{}", p.body);
    assert!(
        p.body.contains("ca_is_root") && p.body.contains("is a root") && p.body.contains("Retire"),
        "{}",
        p.body
    );
    let p = ui.post(
        "/ui/cas/v2g-root/compromise",
        &[("csrf", &csrf), ("confirm", "yes")],
    );
    assert_eq!(p.status, 409);
    assert_eq!(
        ui.post("/ui/cas/no-such-ca/compromise", &[("csrf", &csrf)])
            .status,
        404
    );
    assert_eq!(
        ui.post(ca_path, &[("csrf", &csrf), ("reason", "bogus")])
            .status,
        400
    );
    // Nothing happened so far.
    assert_eq!(
        issued_by(&env, "cpo-sub-ca-2")
            .iter()
            .filter(|c| c["status"] == "valid")
            .count(),
        valid_before
    );
    let p = ui.get(ca_path);
    assert_eq!(p.by_id("compromise-state").as_deref(), Some("none"));

    // The confirmation page: the store's numbers, and nothing done yet.
    let p = ui.post(ca_path, &[("csrf", &csrf)]);
    assert_eq!(p.status, 200, "{}", p.body);
    assert_eq!(
        p.by_id("confirm-revoked"),
        Some(valid_before.to_string()),
        "{}",
        p.body
    );
    assert_eq!(p.by_id("confirm-reenroll"), Some(leaves.len().to_string()));
    assert!(
        p.by_id("confirm-parent")
            .unwrap()
            .starts_with("cpo-sub-ca-1")
    );
    assert_eq!(p.by_id("confirm-sub-cas").as_deref(), Some("none"));
    assert!(p.body.contains("cannot be undone"));
    assert!(p.body.contains("DE*ABC: 5") && p.body.contains("DE*XYZ: 1"));
    assert!(
        p.body
            .contains("<option value=\"keyCompromise\" selected>keyCompromise</option>"),
        "keyCompromise is the default: {}",
        p.body
    );
    assert!(p.body.contains("id=\"confirm-compromise\""));
    assert_eq!(ocsp_status(&url, &old_ca, &leaves[0].1), "good");
    // Cpo-sub-ca-1's confirmation counts the CA below it too.
    let p = ui.post("/ui/cas/cpo-sub-ca-1/compromise", &[("csrf", &csrf)]);
    assert_eq!(p.status, 200, "{}", p.body);
    assert_eq!(p.by_id("confirm-sub-cas").as_deref(), Some("cpo-sub-ca-2"));
    assert_eq!(p.by_id("confirm-ca-certs").as_deref(), Some("1"));

    // Confirm: in Chromium on SQLite, over plain HTTP on PostgreSQL.
    let browser = if backend == Backend::Sqlite {
        Browser::find()
    } else {
        None
    };
    match browser {
        Some(b) => {
            let fixture = serde_json::json!({
                "admin": {"name": "alice", "password": admin_pw},
                "ca": "cpo-sub-ca-2",
                "parent": "cpo-sub-ca-1",
                "root": "v2g-root",
                "revoked": valid_before,
                "reenroll": leaves.len(),
            });
            let log = b.run("compromise.py", &srv, &fixture, &shots_dir());
            assert!(
                log.contains("ok: compromise reported in the browser"),
                "{log}"
            );
        }
        None => {
            let p = ui.post(
                ca_path,
                &[
                    ("csrf", &csrf),
                    ("reason", "keyCompromise"),
                    ("confirm", "yes"),
                ],
            );
            assert_eq!(p.status, 303, "{}", p.body);
            assert_eq!(p.location.as_deref(), Some(ca_path));
            // A second POST while it runs shows the running one (or the finished one).
            let again = ui.post(ca_path, &[("csrf", &csrf), ("confirm", "yes")]);
            assert!(
                again.status == 303 || again.status == 409,
                "{}: {}",
                again.status,
                again.body
            );
        }
    }
    let p = wait_until_done(&ui, ca_path);
    assert_eq!(
        p.by_id("compromise-state").as_deref(),
        Some("finished"),
        "{}",
        p.body
    );
    assert_eq!(p.by_id("report-revoked"), Some(valid_before.to_string()));
    assert_eq!(p.by_id("report-reenroll"), Some(leaves.len().to_string()));
    assert!(
        !p.body.contains("http-equiv=\"refresh\""),
        "done: no reload"
    );
    assert!(
        p.body
            .contains("href=\"/ui/cas/cpo-sub-ca-2/compromise/reenroll.csv\"")
    );

    // The store: every leaf revoked (cACompromise), OCSP says so, cacerts has the replacement.
    let after = issued_by(&env, "cpo-sub-ca-2");
    for (serial, _) in &leaves {
        let c = after
            .iter()
            .find(|c| c["serial_hex"].as_str() == Some(serial))
            .unwrap_or_else(|| panic!("{serial} listed"));
        assert_eq!(c["status"], "revoked", "{c}");
        assert_eq!(c["revocation_reason"], "cACompromise", "{c}");
    }
    for (_, leaf) in &leaves {
        assert_eq!(ocsp_status(&url, &old_ca, leaf), "revoked");
    }
    let r = reply(http().get(&srv.url("/cpo/cacerts/ISO15118-2")).call());
    assert_eq!(r.status, 200, "{}", r.text());
    let (_, cacerts) = pkcs7_leaf(env.path(), "cacerts", &r.text());
    let new = env.path().join("export-new");
    env.ok(&["export", "--out", new.to_str().unwrap()]);
    let new_ca = new.join("cpo-sub-ca-2.pem");
    assert_ne!(ski(&new_ca), ski(&old_ca), "a new key");
    assert_eq!(
        ski(&cacerts),
        ski(&new_ca),
        "cacerts serves the replacement"
    );

    // Every step audited under the person's name.
    let steps = audit_actions(&srv, &admin_api, "ca.compromise");
    for action in [
        "ca.compromise.stop",
        "ca.compromise.revoke-batch",
        "ca.compromise.replaced",
        "ca.compromise.finished",
    ] {
        assert!(
            steps.iter().any(|e| e["action"] == action),
            "{action}: {steps:?}"
        );
    }
    assert!(steps.iter().all(|e| e["actor"] == "ui:alice"), "{steps:?}");
    let revoked = audit_actions(&srv, &admin_api, "certificate.revoke");
    assert!(
        revoked
            .iter()
            .any(|e| e["actor"] == "ui:alice" && e["details"]["reason"] == "keyCompromise"),
        "the CA's certificate revoked at its parent by the person: {revoked:?}"
    );

    // The CSV list: admins and auditors, one row per holder to enroll again.
    for who in [&ui, &auditor] {
        let csv = who.get(&format!("{ca_path}/reenroll.csv"));
        assert_eq!(csv.status, 200, "{}", csv.body);
        assert!(csv.header("content-type").unwrap().starts_with("text/csv"));
        assert!(
            csv.header("content-disposition")
                .unwrap()
                .contains("cpo-sub-ca-2-reenroll.csv")
        );
        let lines: Vec<&str> = csv.body.lines().collect();
        assert!(lines[0].starts_with("tenant,profile,issuer_id,serial_hex"));
        assert_eq!(lines.len(), 1 + leaves.len(), "{}", csv.body);
        for (serial, _) in &leaves {
            assert!(csv.body.contains(serial.as_str()), "{serial}: {}", csv.body);
        }
    }
    // The auditor reads the status page too.
    let p = auditor.get(ca_path);
    assert_eq!(p.status, 200);
    assert_eq!(p.by_id("compromise-state").as_deref(), Some("finished"));
    assert!(!p.body.contains("id=\"run-again\""));

    // Confirming again now would compromise the replacement: refused unless asked for.
    let p = ui.post(ca_path, &[("csrf", &csrf)]);
    assert_eq!(p.status, 200);
    assert!(p.body.contains("id=\"again-notice\""), "{}", p.body);
    let p = ui.post(ca_path, &[("csrf", &csrf), ("confirm", "yes")]);
    assert_eq!(p.status, 409, "{}", p.body);
    assert!(p.body.contains("compromise_finished"));

    // After a restart the page shows what the store recorded.
    drop(srv);
    let srv = env.serve();
    let mut ui = Ui::new(&srv);
    assert_eq!(ui.sign_in("alice", &admin_pw).status, 303);
    let p = ui.get(ca_path);
    assert_eq!(p.status, 200, "{}", p.body);
    assert_eq!(
        p.by_id("compromise-state").as_deref(),
        Some("finished"),
        "{}",
        p.body
    );
    assert!(p.body.contains("ui:alice") && p.body.contains("keyCompromise"));
    assert!(p.body.contains("id=\"compromises\""));
    assert_eq!(
        Ui::new(&srv).get(ca_path).status,
        303,
        "signed out: sign in"
    );
    assert!(env.ok(&["audit", "verify"]).contains("OK"));
}

/// A response started in the console and cut short (the server exits right after the
/// revocations, as a crash would) is shown from the store after the restart as not finished,
/// with "run it again"; the confirmation then says it resumes, and confirming finishes it.
#[test]
fn an_interrupted_compromise_is_finished_from_the_console() {
    let env = Env::new(Backend::Sqlite);
    env.init();
    let pw = user_add(&env, "alice", "admin", &[]);
    let old_ca = env.export().join("cpo-sub-ca-2.pem");
    let mut srv = env.serve_with_env(&[("PNC_COMPROMISE_EXIT_AFTER", "revoke-issued")]);
    let abc = srv.bearer(&env.client_add("abc", "cpo", &["DE*ABC"]));
    let leaves: Vec<_> = (0..3)
        .map(|i| enroll_pem(&env, &srv, &abc, &format!("DE*ABC*E{i}")))
        .collect();
    let mut ui = Ui::new(&srv);
    assert_eq!(ui.sign_in("alice", &pw).status, 303);
    let csrf = ui.get("/ui/hierarchy").field("csrf").unwrap();
    let ca_path = "/ui/cas/cpo-sub-ca-2/compromise";
    let p = ui.post(
        ca_path,
        &[
            ("csrf", &csrf),
            ("reason", "superseded"),
            ("confirm", "yes"),
        ],
    );
    assert_eq!(p.status, 303, "{}", p.body);
    let t0 = std::time::Instant::now();
    let code = loop {
        if let Some(s) = srv.child.try_wait().unwrap() {
            break s.code();
        }
        assert!(t0.elapsed() < Duration::from_secs(120), "{}", srv.log());
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(code, Some(137), "the crash hook ended serve: {}", srv.log());
    drop(srv);

    let srv = env.serve();
    let mut ui = Ui::new(&srv);
    assert_eq!(ui.sign_in("alice", &pw).status, 303);
    let p = ui.get(ca_path);
    assert_eq!(p.status, 200, "{}", p.body);
    assert_eq!(
        p.by_id("compromise-state").as_deref(),
        Some("not finished"),
        "{}",
        p.body
    );
    assert!(p.body.contains("Run it again to finish") && p.body.contains("id=\"run-again\""));
    let csrf = p.field("csrf").unwrap();
    // "Run it again…" posts the confirmation, which says it resumes with the reason of then.
    let p = ui.post(ca_path, &[("csrf", &csrf), ("reason", "superseded")]);
    assert_eq!(p.status, 200, "{}", p.body);
    assert!(p.body.contains("id=\"resumes\""), "{}", p.body);
    assert!(p.body.contains("<code>superseded</code>"), "{}", p.body);
    let p = ui.post(
        ca_path,
        &[
            ("csrf", &csrf),
            ("reason", "keyCompromise"),
            ("confirm", "yes"),
        ],
    );
    assert_eq!(p.status, 303, "{}", p.body);
    let p = wait_until_done(&ui, ca_path);
    assert_eq!(
        p.by_id("compromise-state").as_deref(),
        Some("finished"),
        "{}",
        p.body
    );
    assert!(
        p.body.contains("it finished an interrupted response"),
        "{}",
        p.body
    );
    assert!(p.body.contains("<code>superseded</code>"), "{}", p.body);
    let url = srv.url("");
    for (_, leaf) in &leaves {
        assert_eq!(ocsp_status(&url, &old_ca, leaf), "revoked");
    }
    let r = reply(http().get(&srv.url("/cpo/cacerts/ISO15118-2")).call());
    let (_, cacerts) = pkcs7_leaf(env.path(), "cacerts", &r.text());
    assert_ne!(
        ski(&cacerts),
        ski(&old_ca),
        "cacerts serves the replacement"
    );
}
