//! Reporting a sub-CA's compromise from the console (`pnc-pki ca compromise` for a person):
//! the hierarchy page's "Report compromise…" button posts here, a confirmation page says what
//! will happen with the store's numbers, and the confirmed response runs in the background while
//! a status page shows its progress and then its report.
//!
//! - `POST /ui/cas/{id}/compromise` without `confirm=yes`: the confirmation page
//!   ([`crate::ra::Ra::compromise_preview`]); a root is refused there already, with why.
//! - With `confirm=yes`: the response starts ([`crate::ra::Ra::compromise_ca`], under the
//!   signed-in person's principal, so every audit entry names them) and the answer is a 303 to
//!   the status page. It can take tens of seconds for ten thousand certificates: the request is
//!   not held. At most one runs per CA in this process; a second POST meanwhile shows it.
//! - `GET /ui/cas/{id}/compromise`: progress while it runs (the page reloads itself every two
//!   seconds), then the report; after a restart (or for a response run by the CLI) what the
//!   store recorded. A failed or interrupted response is finished by running it again.
//! - `GET /ui/cas/{id}/compromise/reenroll.csv`: who must enroll again, as the API's
//!   `?format=csv` (whose bearer-token authentication a console session cannot use).
//!
//! Who may: the RA decides ([`crate::policy::authz::Operation::RespondToCompromise`]: admins
//! signed in here; auditors read the status page and the CSV).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};

use super::layout::{
    self, csrf_field, enc, page, page_refreshing, problem, respond, see_other, when,
};
use super::session::SignedIn;
use super::{ConsoleState, Posted, posted};
use crate::ca::compromise::CompromiseOptions;
use crate::model::RevocationReason;
use crate::policy::authz::Role;
use crate::ra::RaError;
use crate::ra::compromise::{CompromiseListing, CompromisePreview, CompromiseReport};
use crate::ra::users::ConsoleSession;

/// Certificates revoked per transaction, as the CLI's default `--batch-size`.
const BATCH_SIZE: i64 = 1000;

/// Seconds between reloads of the status page while a response runs.
const REFRESH_SECS: u32 = 2;

/// Whether the hierarchy page offers "Report compromise…" to this viewer. Only a hint: the RA
/// refuses everyone else when they post anyway.
pub(super) fn may_report(s: &ConsoleSession) -> bool {
    s.principal.role == Role::Admin
}

/// The compromise responses this process started from the console, by CA id (the newest of
/// each CA; a finished one stays until the next, so its report can be shown again).
#[derive(Default)]
pub(super) struct Jobs {
    by_ca: Mutex<HashMap<String, Arc<Job>>>,
}

impl Jobs {
    fn get(&self, ca: &str) -> Option<Arc<Job>> {
        self.by_ca
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(ca)
            .cloned()
    }

    /// Register `job` for `ca` unless one is running for it (then that one, `Err`).
    fn start(&self, ca: &str, job: Arc<Job>) -> Result<(), Arc<Job>> {
        let mut g = self.by_ca.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(running) = g.get(ca).filter(|j| j.is_running()) {
            return Err(running.clone());
        }
        g.insert(ca.to_string(), job);
        Ok(())
    }
}

/// How a response ended.
enum Outcome {
    Done(Box<CompromiseReport>),
    Failed {
        status: StatusCode,
        code: String,
        message: String,
    },
}

struct JobState {
    /// The last progress report: (step, count so far).
    progress: Option<(String, i64)>,
    outcome: Option<Outcome>,
}

/// One compromise response running (or run) in the background.
struct Job {
    actor: String,
    reason: String,
    started_at: i64,
    started: Instant,
    state: Mutex<JobState>,
}

impl Job {
    fn lock(&self) -> std::sync::MutexGuard<'_, JobState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn is_running(&self) -> bool {
        self.lock().outcome.is_none()
    }

    fn progress(&self, step: &str, n: i64) {
        self.lock().progress = Some((step.to_string(), n));
    }

    fn finish(&self, r: Result<CompromiseReport, RaError>) {
        let outcome = match r {
            Ok(report) => Outcome::Done(Box::new(report)),
            Err(e) => {
                let status = layout::status_of(&e);
                tracing::error!(error = %e, "console: compromise response failed");
                let message = if status.is_server_error() {
                    "the compromise response stopped with an error; the service's log has the details"
                        .to_string()
                } else {
                    e.to_string()
                };
                Outcome::Failed {
                    status,
                    code: e.code().to_string(),
                    message,
                }
            }
        };
        self.lock().outcome = Some(outcome);
    }
}

#[derive(Debug, Default, serde::Deserialize)]
struct CompromiseForm {
    csrf: Option<String>,
    reason: Option<String>,
    confirm: Option<String>,
    again: Option<String>,
}

impl Posted for CompromiseForm {
    fn csrf(&self) -> Option<&str> {
        self.csrf.as_deref()
    }
}

fn status_href(id: &str) -> String {
    format!("/ui/cas/{}/compromise", enc(id))
}

/// `POST /ui/cas/{id}/compromise`: the confirmation page, or (`confirm=yes`) start the response
/// and answer 303 to its status page.
pub async fn post(
    State(st): State<ConsoleState>,
    SignedIn(s): SignedIn,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let f: CompromiseForm = match posted(&headers, &s, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let reason = match RevocationReason::parse(f.reason.as_deref().unwrap_or("keyCompromise")) {
        Ok(r) => r,
        Err(_) => {
            return problem(
                Some(&s),
                StatusCode::BAD_REQUEST,
                "invalid_reason",
                "choose one of the offered revocation reasons",
            );
        }
    };
    // Who may, which CA, and not a root: the RA, before anything is shown or done.
    let preview = match st.ra.compromise_preview(&s.principal, &id).await {
        Ok(p) => p,
        Err(e) => return layout::error_page(Some(&s), &e),
    };
    // An interrupted response goes on with the reason chosen when it started.
    let reason = preview
        .resumes
        .as_ref()
        .and_then(|r| RevocationReason::parse(&r.reason).ok())
        .unwrap_or(reason);
    if st
        .compromises
        .get(&preview.ca.id)
        .is_some_and(|j| j.is_running())
    {
        return see_other(&status_href(&preview.ca.id));
    }
    if f.confirm.as_deref() != Some("yes") {
        return confirmation(&s, &preview, reason);
    }
    let again = preview.replaces_replacement.is_some();
    if again && f.again.as_deref() != Some("yes") {
        return problem(
            Some(&s),
            StatusCode::CONFLICT,
            "compromise_finished",
            "This CA's current key is the replacement a finished compromise response put in \
             place. Tick the box on the confirmation page to treat the replacement as \
             compromised too.",
        );
    }
    let ca = preview.ca.id.clone();
    let job = Arc::new(Job {
        actor: s.principal.actor(),
        reason: reason.name().to_string(),
        started_at: st.ra.now(),
        started: Instant::now(),
        state: Mutex::new(JobState {
            progress: None,
            outcome: None,
        }),
    });
    if st.compromises.start(&ca, job.clone()).is_err() {
        // Another request started it between the check above and now.
        return see_other(&status_href(&ca));
    }
    let opts = CompromiseOptions {
        reason,
        batch_size: BATCH_SIZE,
        again,
    };
    let (ra, principal, worker, ca_id) =
        (st.ra.clone(), s.principal.clone(), job.clone(), ca.clone());
    let work = tokio::spawn(async move {
        let progress = |step: &str, n: i64| worker.progress(step, n);
        let r = ra.compromise_ca(&principal, &ca_id, &opts, &progress).await;
        worker.finish(r);
    });
    // A panic in the response must not leave the page saying "running" for ever.
    tokio::spawn(async move {
        if let Err(e) = work.await {
            job.finish(Err(RaError::Internal(format!(
                "the compromise response task ended abnormally: {e}"
            ))));
        }
    });
    see_other(&status_href(&ca))
}

/// The confirmation page: exactly what will happen, counted from the store.
fn confirmation(s: &ConsoleSession, p: &CompromisePreview, reason: RevocationReason) -> Response {
    let id = &p.ca.id;
    let reenroll: i64 = p.reenroll_by_tenant.values().sum();
    let signs_contracts = p.contracts > 0 || p.ca.profile.starts_with("mo-");
    let body = html! {
        p class="notice failing" role="alert" {
            strong { "This cannot be undone." }
            " The key of " strong { (id) } " and of every CA below it stops signing at once, \
              everything they signed is revoked, and new keys and certificates replace them."
        }
        @if let Some(r) = &p.resumes {
            p class="notice" id="resumes" {
                "A compromise response of this CA started " (when(r.started_at)) " by " (r.actor)
                " and did not finish. Confirming finishes it (every step is idempotent), with the \
                 reason chosen then: " code { (r.reason) } "."
            }
        }
        dl class="fields" id="preview" {
            dt { "CA" } dd id="confirm-ca" { (id) " — " (p.ca.subject) }
            dt { "Key generation stopped" } dd { (p.ca.generation) }
            dt { "Parent" }
            dd id="confirm-parent" {
                @match (&p.parent, &p.external_issuer) {
                    (Some(parent), _) => { (parent) ": revokes this CA's certificate (serial "
                        code { (p.ca.serial_hex) } ") with the reason below; its CRL and OCSP say so at once" }
                    (None, Some(issuer)) => { "signed by an issuer this service does not hold (" (issuer)
                        "): that issuer must revoke it. The report will show the certificate, serial \
                         and reason to send it." }
                    (None, None) => { "none" }
                }
            }
            dt { "Certificates revoked" }
            dd {
                span id="confirm-revoked" { (p.end_entity) }
                " valid certificates signed by " (id)
                @if !p.sub_cas.is_empty() { " and the CAs below it" }
                " (leaves and OCSP signers), reason " code { "cACompromise" }
                @if p.ca_certs > 0 {
                    ", and " span id="confirm-ca-certs" { (p.ca_certs) } " CA certificates below it"
                }
            }
            dt { "CAs below it, stopped and replaced too" }
            dd id="confirm-sub-cas" {
                @if p.sub_cas.is_empty() { "none" } @else { (p.sub_cas.join(", ")) }
            }
            @if signs_contracts {
                dt { "Contracts" }
                dd {
                    span id="confirm-contracts" { (p.contracts) }
                    " contracts of vehicles in the provisioning pool get new pre-generated contract \
                      data under the replacement (the OEM is told: " code { "oem.contract.updated" } ")"
                }
            }
            dt { "Holders to enroll again" }
            dd {
                span id="confirm-reenroll" { (reenroll) }
                @if !p.reenroll_by_tenant.is_empty() {
                    " ("
                    @for (i, (tenant, n)) in p.reenroll_by_tenant.iter().enumerate() {
                        @if i > 0 { ", " }
                        (if tenant.is_empty() { "no tenant" } else { tenant }) ": " (n)
                    }
                    ")"
                }
                "; the report lists them for their operators (CSV)"
            }
            dt { "Replacement" }
            dd {
                @if p.external_issuer.is_some() {
                    "a new key; its certificate request (CSR) is in the report, for the issuer to sign"
                } @else {
                    "a new key and certificate with the same name under "
                    (p.parent.as_deref().unwrap_or("the parent")) "; " code { "cacerts" }
                    " and new enrollments use it from then on"
                }
            }
        }
        @if let Some(last) = &p.replaces_replacement {
            p class="notice" id="again-notice" {
                "This CA's current key is the replacement put in place by the compromise response \
                 of key generation " (last.generation) " that finished " (last.finished_at.map(when).unwrap_or_default())
                ". Confirm below only if the replacement is compromised too."
            }
        }
        form method="post" action=(status_href(id)) class="stack" {
            (csrf_field(s))
            input type="hidden" name="confirm" value="yes";
            @if p.resumes.is_some() {
                input type="hidden" name="reason" value=(reason.name());
            } @else {
                label for="reason" { "Reason its certificate is revoked at its parent" }
                select id="reason" name="reason" {
                    @for r in RevocationReason::ALL {
                        option value=(r.name()) selected[r == reason] { (r.name()) }
                    }
                }
            }
            @if p.replaces_replacement.is_some() {
                label {
                    input type="checkbox" name="again" value="yes" required;
                    " The replacement key is compromised too"
                }
            }
            div {
                button type="submit" class="danger" id="confirm-compromise" { "Stop, revoke and replace " (id) }
                " "
                a href="/ui/hierarchy" id="cancel" { "Cancel" }
            }
        }
    };
    respond(
        StatusCode::OK,
        page(
            "Confirm compromise response",
            Some(s),
            "/ui/hierarchy",
            body,
        ),
    )
}

/// `GET /ui/cas/{id}/compromise`: progress, then the report; else what the store recorded.
pub async fn status(
    State(st): State<ConsoleState>,
    SignedIn(s): SignedIn,
    Path(id): Path<String>,
) -> Response {
    // Admins and auditors (the RA's call), and the CA must exist.
    let listing = match st.ra.compromise_report(&s.principal, &id).await {
        Ok(l) => l,
        Err(e) => return layout::error_page(Some(&s), &e),
    };
    let job = st.compromises.get(&id);
    let running = job.as_ref().is_some_and(|j| j.is_running());
    let body = html! {
        @if let Some(j) = &job {
            (job_view(&s, &id, j))
        } @else {
            (stored_view(&s, &listing))
        }
        @if !listing.compromises.is_empty() {
            section aria-labelledby="recorded" {
                h2 id="recorded" { "Recorded compromises of " (id) }
                (records_table(&listing))
            }
            (reenroll_view(&listing))
        }
        p { a href="/ui/hierarchy" { "Back to the CA hierarchy" } }
    };
    respond(
        StatusCode::OK,
        page_refreshing(
            &format!("Compromise response: {id}"),
            Some(&s),
            "/ui/hierarchy",
            running.then_some(REFRESH_SECS),
            body,
        ),
    )
}

/// A response this process ran or runs.
fn job_view(s: &ConsoleSession, id: &str, j: &Job) -> Markup {
    let g = j.lock();
    let started = html! {
        "Started " (when(j.started_at)) " by " (j.actor) ", reason " code { (j.reason) } "."
    };
    match &g.outcome {
        None => {
            let secs = j.started.elapsed().as_secs();
            html! {
                p class="notice" role="status" {
                    "State: " strong id="compromise-state" { "running" } " for " (secs) " s. "
                    (started)
                }
                p id="compromise-progress" {
                    @match &g.progress {
                        Some((step, n)) if step == "revoke-issued" => { "Revoking what the stopped keys signed: " (n) " certificates so far." }
                        Some((step, n)) if step == "contracts" => { "Regenerating contract data: " (n) " contracts so far." }
                        Some((step, n)) => { (step) ": " (n) }
                        None => { "Stopping the keys and revoking the CA's certificate at its parent…" }
                    }
                }
                p class="muted" { "This page reloads every " (REFRESH_SECS) " seconds." }
            }
        }
        Some(Outcome::Done(r)) => report_view(s, id, r, started),
        Some(Outcome::Failed {
            status,
            code,
            message,
        }) => html! {
            p class="notice failing" role="alert" {
                "State: " strong id="compromise-state" { "failed" } ". " (started)
            }
            p class="error" id="compromise-error" { (message) }
            p class="muted" { "Code: " code { (code) } " (HTTP " (status.as_u16()) ")" }
            (run_again(s, id, &j.reason))
        },
    }
}

/// "Run it again to finish": the response is resumable, so the same confirmation again.
fn run_again(s: &ConsoleSession, id: &str, reason: &str) -> Markup {
    html! {
        p { "Run it again to finish: every step is idempotent, and a second run goes on where this one stopped." }
        @if may_report(s) {
            form method="post" action=(status_href(id)) class="inline" {
                (csrf_field(s))
                input type="hidden" name="reason" value=(reason);
                button type="submit" id="run-again" { "Run it again…" }
            }
        }
    }
}

fn report_view(s: &ConsoleSession, id: &str, r: &CompromiseReport, started: Markup) -> Markup {
    let complete = r.contracts_failed.is_empty();
    html! {
        @if complete {
            p class="notice ok" role="status" {
                "State: " strong id="compromise-state" { "finished" } " in "
                (format!("{:.1}", r.seconds)) " s"
                @if r.resumed { " (it finished an interrupted response)" }
                ". " (started)
            }
        } @else {
            p class="notice failing" role="alert" {
                "State: " strong id="compromise-state" { "incomplete" } ": "
                (r.contracts_failed.len()) " contracts could not be regenerated. " (started)
            }
            (run_again(s, id, &r.reason))
        }
        dl class="fields" id="report" {
            dt { "Key generation stopped" } dd { (r.stopped_generation) }
            dt { "Revoked at its parent" } dd { (r.parent.as_deref().unwrap_or("– (external issuer)")) ", reason " code { (r.reason) } }
            dt { "Certificates revoked" } dd id="report-revoked" { (r.revoked) }
            dt { "CA certificates below revoked" } dd id="report-sub-cas" { (r.sub_cas_revoked) }
            dt { "Contracts regenerated" } dd id="report-contracts" { (r.contracts_regenerated) }
            dt { "Holders to enroll again" } dd id="report-reenroll" { (r.reenroll) }
        }
        section aria-labelledby="steps" {
            h2 id="steps" { "Steps" }
            div class="scroll" {
                table id="report-steps" {
                    thead { tr {
                        th scope="col" { "Step" } th scope="col" class="num" { "Count" }
                        th scope="col" class="num" { "Seconds" } th scope="col" { "What it did" }
                    } }
                    tbody {
                        @for st in &r.steps {
                            tr data-step=(st.step) {
                                td { code { (st.step) } }
                                td class="num" { (st.count) }
                                td class="num" { (format!("{:.2}", st.seconds)) }
                                td { (st.detail) }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="replaced" {
            h2 id="replaced" { "Replacements" }
            ul {
                @for x in &r.replaced {
                    li {
                        strong { (x.ca) } ": "
                        @match (&x.generation, &x.csr_pem) {
                            (Some(g), _) => { "key generation " (g) ", certificate serial "
                                code { (x.serial_hex.as_deref().unwrap_or("?")) } ", subject key identifier "
                                code { (x.subject_key_identifier.as_deref().unwrap_or("?")) } }
                            (None, Some(csr)) => { "needs its issuer's signature: send this CSR, then run "
                                code { "pnc-pki ca rollover --ca " (x.ca) " --cert FILE" }
                                pre { (csr) } }
                            (None, None) => { "none" }
                        }
                    }
                }
            }
        }
        @if let Some(e) = &r.external {
            section aria-labelledby="external" {
                h2 id="external" { "Send to the external issuer" }
                p { "Ask " (e.issuer) " to revoke certificate serial " code { (e.serial_hex) }
                    " (" (e.subject) "), reason " code { (e.reason) } ":" }
                pre { (e.certificate_pem) }
            }
        }
        @if !r.contracts_failed.is_empty() {
            section aria-labelledby="failed" {
                h2 id="failed" { "Contracts not regenerated" }
                ul { @for (c, why) in &r.contracts_failed { li { code { (c) } ": " (why) } } }
            }
        }
    }
}

/// No response of this process: what the store says (after a restart, or a CLI run).
fn stored_view(s: &ConsoleSession, l: &CompromiseListing) -> Markup {
    let own: Vec<_> = l.compromises.iter().filter(|c| c.ca_id == l.ca).collect();
    match own.first() {
        None => html! {
            p id="compromise-state" { "none" }
            p { "No compromise of " (l.ca) " is recorded." }
        },
        Some(c) if c.finished_at.is_some() => html! {
            p class="notice ok" role="status" {
                "State: " strong id="compromise-state" { "finished" } ": key generation " (c.generation)
                " was stopped " (when(c.started_at)) " by " (c.actor) " and replaced "
                (c.finished_at.map(when).unwrap_or_default()) "."
            }
        },
        Some(c) => html! {
            p class="notice failing" role="alert" {
                "State: " strong id="compromise-state" { "not finished" } ": key generation "
                (c.generation) " was stopped " (when(c.started_at)) " by " (c.actor)
                ", and the response is not running in this process (the service restarted, or it \
                 runs on another replica or from the command line)."
            }
            (run_again(s, &c.origin, &c.reason))
        },
    }
}

fn records_table(l: &CompromiseListing) -> Markup {
    html! {
        div class="scroll" {
            table id="compromises" {
                thead { tr {
                    th scope="col" { "Key generation" } th scope="col" { "Reason" } th scope="col" { "Reported for" }
                    th scope="col" { "By" } th scope="col" { "Started" } th scope="col" { "Finished" }
                } }
                tbody {
                    @for c in &l.compromises {
                        tr {
                            td class="num" { (c.generation) }
                            td { code { (c.reason) } }
                            td { (c.origin) }
                            td { (c.actor) }
                            td { (when(c.started_at)) }
                            td { (c.finished_at.map(when).unwrap_or_else(|| "not yet".into())) }
                        }
                    }
                }
            }
        }
    }
}

fn reenroll_view(l: &CompromiseListing) -> Markup {
    html! {
        section aria-labelledby="reenroll" {
            h2 id="reenroll" { "Who must enroll again" }
            @if l.reenroll_by_tenant.is_empty() {
                p { "Nobody: no certificate of another holder was signed by the stopped keys." }
            } @else {
                table id="reenroll-by-tenant" {
                    thead { tr { th scope="col" { "Tenant" } th scope="col" class="num" { "Certificates" } } }
                    tbody {
                        @for (t, n) in &l.reenroll_by_tenant {
                            tr { td { (if t.is_empty() { "(none)" } else { t }) } td class="num" { (n) } }
                        }
                    }
                }
            }
            p {
                a id="reenroll-csv" href=(format!("{}/reenroll.csv", status_href(&l.ca))) download {
                    "Download the list (CSV)"
                }
                " — one row per certificate (tenant, profile, issuer, serial, EVSE ID, subject, expiry), \
                  for each operator's CSMS to trigger a new " code { "SignCertificate" } "."
            }
        }
    }
}

/// `GET /ui/cas/{id}/compromise/reenroll.csv`: the re-enrollment list (admins and auditors).
pub async fn reenroll_csv(
    State(st): State<ConsoleState>,
    SignedIn(s): SignedIn,
    Path(id): Path<String>,
) -> Response {
    let listing = match st.ra.compromise_report(&s.principal, &id).await {
        Ok(l) => l,
        Err(e) => return layout::error_page(Some(&s), &e),
    };
    let mut r = (
        [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
        listing.reenroll_csv(),
    )
        .into_response();
    let safe: String = listing
        .ca
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .collect();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{safe}-reenroll.csv\"")) {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    r
}
