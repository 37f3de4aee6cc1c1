//! The CA hierarchy, API clients, the audit log (with chain verification), contracts and the
//! provisioning-certificate pool.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::{Markup, html};

use super::certs::{audit_table, pem_download};
use super::layout::{
    self, csrf_field, day, enc, page, problem, respond, see_other, validity_bar, when,
};
use super::session::SignedIn;
use super::{ConsoleState, Posted, button_form, posted, query};
use crate::model::{AuditFilter, CaRecord};
use crate::policy::authz::Role;
use crate::ra::users::ConsoleSession;

fn sees_all(s: &ConsoleSession) -> bool {
    s.principal.role.sees_all_tenants()
}

// ------------------------------------------------------------------------------ hierarchy

/// What the hierarchy page shows for each CA besides the CA itself.
struct TreeView<'a> {
    s: &'a ConsoleSession,
    children: BTreeMap<String, Vec<&'a CaRecord>>,
    counts: BTreeMap<String, (i64, i64)>,
    show_counts: bool,
    now: i64,
}

/// A root: no parent of ours and self-signed (a CA signed elsewhere has no parent either).
fn is_root(ca: &CaRecord) -> bool {
    ca.parent_id.is_none()
        && crate::x509::ParsedCert::from_der(&ca.cert_der)
            .map(|c| c.subject_der() == c.issuer_der())
            .unwrap_or(true)
}

fn ca_node(ca: &CaRecord, v: &TreeView<'_>) -> Markup {
    let (children, counts, show_counts, now) = (&v.children, &v.counts, v.show_counts, v.now);
    let (valid, revoked) = counts.get(&ca.id).copied().unwrap_or((0, 0));
    html! {
        li {
            div class="node" id=(format!("ca-{}", ca.id)) {
                strong { (ca.id) } " " span class="muted" { (ca.profile) }
                br;
                span { (ca.subject) }
                br;
                span class="muted" { (ca.key_alg.name()) " · " (day(ca.not_before)) " – " (day(ca.not_after)) " " }
                (validity_bar(ca.not_before, ca.not_after, now))
                @if show_counts {
                    br;
                    span { "issued " (valid + revoked) ", revoked " (revoked) }
                }
                br;
                a href=(format!("/ui/cas/{}/pem", enc(&ca.id))) download { "PEM" }
                " · "
                a href=(format!("/crl/{}.crl", enc(&ca.id))) { "CRL" }
                // Admins only, and not for a root (a root has no parent to revoke it).
                @if super::compromise::may_report(v.s) && !is_root(ca) {
                    " · "
                    form method="post" action=(format!("/ui/cas/{}/compromise", enc(&ca.id))) class="inline" {
                        (csrf_field(v.s))
                        button type="submit" class="danger" data-ca=(ca.id) { "Report compromise…" }
                    }
                }
            }
            @if let Some(kids) = children.get(&ca.id) {
                ul {
                    @for k in kids { (ca_node(k, v)) }
                }
            }
        }
    }
}

/// `GET /ui/hierarchy`: every CA as a tree, roots first.
pub async fn hierarchy(State(st): State<ConsoleState>, SignedIn(s): SignedIn) -> Response {
    let cas = match st.ra.list_cas(&s.principal).await {
        Ok(c) => c,
        Err(e) => return layout::error_page(Some(&s), &e),
    };
    // Issued/revoked counts cover every tenant: shown to those who see every tenant only.
    let show_counts = sees_all(&s);
    let counts: BTreeMap<String, (i64, i64)> = if show_counts {
        match st.ra.counts_by_issuer().await {
            Ok(v) => v.into_iter().map(|(id, a, b)| (id, (a, b))).collect(),
            Err(e) => return layout::error_page(Some(&s), &e),
        }
    } else {
        BTreeMap::new()
    };
    let ids: std::collections::HashSet<&str> = cas.iter().map(|c| c.id.as_str()).collect();
    let mut children: BTreeMap<String, Vec<&CaRecord>> = BTreeMap::new();
    let mut roots = Vec::new();
    for c in &cas {
        match c.parent_id.as_deref().filter(|p| ids.contains(p)) {
            Some(p) => children.entry(p.to_string()).or_default().push(c),
            None => roots.push(c),
        }
    }
    let view = TreeView {
        s: &s,
        children,
        counts,
        show_counts,
        now: st.ra.now(),
    };
    let body = html! {
        @if cas.is_empty() {
            p { "No CA yet: run " code { "pnc-pki init" } "." }
        } @else {
            ul class="tree" id="tree" {
                @for r in &roots { (ca_node(r, &view)) }
            }
        }
    };
    respond(
        StatusCode::OK,
        page("CA hierarchy", Some(&s), "/ui/hierarchy", body),
    )
}

/// `GET /ui/cas/{id}/pem`.
pub async fn ca_pem(
    State(st): State<ConsoleState>,
    SignedIn(s): SignedIn,
    Path(id): Path<String>,
) -> Response {
    match st.ra.list_cas(&s.principal).await {
        Ok(cas) => match cas.iter().find(|c| c.id == id) {
            Some(c) => pem_download(&format!("{}.pem", c.id), &c.cert_der),
            None => problem(Some(&s), StatusCode::NOT_FOUND, "not_found", "no such CA"),
        },
        Err(e) => layout::error_page(Some(&s), &e),
    }
}

// ------------------------------------------------------------------------------ API clients

fn clients_page(
    s: &ConsoleSession,
    list: &[crate::model::ClientRecord],
    created: Option<(&str, &str)>,
) -> Markup {
    let admin = s.principal.role == Role::Admin;
    html! {
        @if let Some((id, secret)) = created {
            div class="notice" role="status" id="created" {
                p { "Client " code id="new-client-id" { (id) } " was registered. Its secret is shown "
                    strong { "only now" } "; store it in the client's configuration:" }
                p { code id="new-client-secret" class="secret" { (secret) } }
            }
        }
        div class="scroll" {
            table id="clients" {
                thead { tr {
                    th scope="col" { "Client id" } th scope="col" { "Name" } th scope="col" { "Role" }
                    th scope="col" { "Tenants" } th scope="col" { "Certificate" } th scope="col" { "Created" }
                    th scope="col" { "State" }
                } }
                tbody {
                    @for c in list {
                        tr {
                            td { code { (c.client_id) } }
                            td { (c.name) }
                            td { (c.role.as_str()) }
                            td { (c.tenants.join(", ")) }
                            td { @if c.cert_sha256.is_some() { "pinned" } @else { "–" } }
                            td { (day(c.created_at)) }
                            td {
                                @if let Some(t) = c.disabled_at { "disabled " (day(t)) }
                                @else {
                                    "enabled"
                                    @if admin {
                                        " " (button_form(s, &format!("/ui/clients/{}/disable", enc(&c.client_id)), "Disable"))
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if admin {
            section aria-labelledby="add" {
                h2 id="add" { "Register a client" }
                form method="post" action="/ui/clients" class="stack" {
                    (csrf_field(s))
                    label for="name" { "Name" }
                    input id="name" name="name" type="text" required maxlength="200";
                    label for="role" { "Role" }
                    select id="role" name="role" {
                        @for r in Role::ALL { option value=(r.as_str()) { (r.as_str()) } }
                    }
                    label for="tenants" { "Tenants (comma-separated: DE*ABC, DE8AA, WP0)" }
                    input id="tenants" name="tenants" type="text" maxlength="500";
                    button type="submit" { "Register" }
                }
            }
        }
    }
}

/// `GET /ui/clients` (admins and auditors).
pub async fn clients(State(st): State<ConsoleState>, SignedIn(s): SignedIn) -> Response {
    match st.ra.list_clients(&s.principal).await {
        Ok(list) => respond(
            StatusCode::OK,
            page(
                "API clients",
                Some(&s),
                "/ui/clients",
                clients_page(&s, &list, None),
            ),
        ),
        Err(e) => layout::error_page(Some(&s), &e),
    }
}

#[derive(Debug, Default, serde::Deserialize)]
struct AddClientForm {
    csrf: Option<String>,
    name: Option<String>,
    role: Option<String>,
    tenants: Option<String>,
}

impl Posted for AddClientForm {
    fn csrf(&self) -> Option<&str> {
        self.csrf.as_deref()
    }
}

/// `POST /ui/clients`: register, then show the secret once (in this answer only: never in a URL,
/// never stored, `Cache-Control: no-store`).
pub async fn add_client(
    State(st): State<ConsoleState>,
    SignedIn(s): SignedIn,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let f: AddClientForm = match posted(&headers, &s, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let role: Role = match f.role.as_deref().unwrap_or("").parse() {
        Ok(r) => r,
        Err(e) => {
            return layout::error_page(Some(&s), &crate::ra::RaError::Policy(e));
        }
    };
    let tenants: Vec<String> = f
        .tenants
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect();
    let created = st
        .ra
        .create_client(
            &s.principal,
            f.name.as_deref().unwrap_or(""),
            role,
            &tenants,
            None,
        )
        .await;
    let (rec, secret) = match created {
        Ok(v) => v,
        Err(e) => return layout::error_page(Some(&s), &e),
    };
    match st.ra.list_clients(&s.principal).await {
        Ok(list) => respond(
            StatusCode::CREATED,
            page(
                "API clients",
                Some(&s),
                "/ui/clients",
                clients_page(&s, &list, Some((&rec.client_id, &secret))),
            ),
        ),
        Err(e) => layout::error_page(Some(&s), &e),
    }
}

/// `POST /ui/clients/{id}/disable`.
pub async fn disable_client(
    State(st): State<ConsoleState>,
    SignedIn(s): SignedIn,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if let Err(r) = posted::<super::CsrfForm>(&headers, &s, &body) {
        return r;
    }
    match st.ra.disable_client(&s.principal, &id).await {
        Ok(_) => see_other("/ui/clients"),
        Err(e) => layout::error_page(Some(&s), &e),
    }
}

// ------------------------------------------------------------------------------ audit log

#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct AuditQuery {
    action: Option<String>,
    actor: Option<String>,
    target: Option<String>,
    before: Option<i64>,
}

const AUDIT_PAGE: i64 = 50;

fn audit_page(
    s: &ConsoleSession,
    q: &AuditQuery,
    entries: &[crate::model::AuditEntry],
    verified: Option<&crate::model::AuditReport>,
) -> Markup {
    let keep = layout::keep_param;
    let older = (entries.len() as i64 == AUDIT_PAGE)
        .then(|| entries.last().map(|e| e.seq))
        .flatten()
        .map(|seq| {
            format!(
                "/ui/audit?before={seq}{}{}{}",
                keep("action", &q.action),
                keep("actor", &q.actor),
                keep("target", &q.target)
            )
        });
    html! {
        @if let Some(r) = verified {
            @match &r.broken_at {
                None => div class="notice ok" role="status" id="verify-result" {
                    "The audit chain is intact: " (r.entries) " entries verified, head "
                    code { (r.head_hash.chars().take(16).collect::<String>()) "…" } "."
                },
                Some((seq, why)) => div class="notice failing" role="alert" id="verify-result" {
                    "The audit chain is broken at entry " strong id="broken-at" { (seq) } ": " (why)
                    ". " (r.entries) " entries before it verified."
                },
            }
        }
        form method="post" action="/ui/audit/verify" class="inline" {
            (csrf_field(s))
            button type="submit" id="verify" { "Verify the audit chain" }
        }
        form class="search" method="get" action="/ui/audit" {
            div { label for="action" { "Action starts with" }
                input id="action" name="action" type="text" value=(q.action.clone().unwrap_or_default()) maxlength="64"; }
            div { label for="actor" { "Actor" }
                input id="actor" name="actor" type="text" value=(q.actor.clone().unwrap_or_default()) maxlength="128"; }
            div { label for="target" { "Target" }
                input id="target" name="target" type="text" value=(q.target.clone().unwrap_or_default()) maxlength="256"; }
            div { button type="submit" { "Filter" } }
        }
        (audit_table(entries))
        @if let Some(h) = older {
            p { a id="older" href=(h) rel="next" { "Older entries" } }
        }
    }
}

async fn render_audit(
    st: &ConsoleState,
    s: &ConsoleSession,
    q: &AuditQuery,
    verified: Option<&crate::model::AuditReport>,
) -> Response {
    let nonempty = layout::nonempty;
    let f = AuditFilter {
        action_prefix: nonempty(&q.action),
        actor: nonempty(&q.actor),
        target: nonempty(&q.target),
        before_seq: q.before,
        newest_first: true,
        limit: Some(AUDIT_PAGE),
        ..Default::default()
    };
    match st.ra.audit_entries(&s.principal, &f).await {
        Ok(entries) => respond(
            StatusCode::OK,
            page(
                "Audit log",
                Some(s),
                "/ui/audit",
                audit_page(s, q, &entries, verified),
            ),
        ),
        Err(e) => layout::error_page(Some(s), &e),
    }
}

/// `GET /ui/audit`: newest first, filtered, a page at a time (cursor: `before`).
pub async fn audit(
    State(st): State<ConsoleState>,
    SignedIn(s): SignedIn,
    RawQuery(raw): RawQuery,
) -> Response {
    let q: AuditQuery = match query(Some(&s), raw.as_deref()) {
        Ok(q) => q,
        Err(r) => return r,
    };
    render_audit(&st, &s, &q, None).await
}

/// `POST /ui/audit/verify`: recompute the chain, record the result, show it.
pub async fn verify_audit(
    State(st): State<ConsoleState>,
    SignedIn(s): SignedIn,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = posted::<super::CsrfForm>(&headers, &s, &body) {
        return r;
    }
    match st.ra.verify_audit_recorded(&s.principal).await {
        Ok(report) => render_audit(&st, &s, &AuditQuery::default(), Some(&report)).await,
        Err(e) => layout::error_page(Some(&s), &e),
    }
}

// ------------------------------------------------------------------------------ contracts

#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct ContractQuery {
    emaid: Option<String>,
    pcid: Option<String>,
}

/// `GET /ui/contracts`: contracts the viewer may see, newest first.
pub async fn contracts(
    State(st): State<ConsoleState>,
    SignedIn(s): SignedIn,
    RawQuery(raw): RawQuery,
) -> Response {
    let q: ContractQuery = match query(Some(&s), raw.as_deref()) {
        Ok(q) => q,
        Err(r) => return r,
    };
    let nonempty = layout::nonempty;
    let (emaid, pcid) = (nonempty(&q.emaid), nonempty(&q.pcid));
    let list = match st
        .ra
        .list_contracts(&s.principal, emaid.as_deref(), pcid.as_deref(), Some(100))
        .await
    {
        Ok(l) => l,
        Err(e) => return layout::error_page(Some(&s), &e),
    };
    // Which certificate of each contract is current (the newest valid one) and how many older
    // ones are still valid (an update's grace period).
    let now = st.ra.now();
    let mut current = Vec::with_capacity(list.len());
    for c in &list {
        let valid: Vec<crate::model::CertRecord> = st
            .ra
            .contract_certificates(&s.principal, &c.id)
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.status == crate::model::CertStatus::Valid && r.not_after > now)
            .collect();
        current.push(valid);
    }
    let body = html! {
        form class="search" method="get" action="/ui/contracts" {
            div { label for="emaid" { "EMAID" }
                input id="emaid" name="emaid" type="text" value=(emaid.clone().unwrap_or_default()) maxlength="32"; }
            div { label for="pcid" { "PCID" }
                input id="pcid" name="pcid" type="text" value=(pcid.clone().unwrap_or_default()) maxlength="32"; }
            div { button type="submit" { "Filter" } }
        }
        @if list.is_empty() { p { "No contracts." } } @else {
            div class="scroll" {
                table id="contracts" {
                    thead { tr {
                        th scope="col" { "EMAID" } th scope="col" { "PCID" } th scope="col" { "Tenant" }
                        th scope="col" { "Status" } th scope="col" { "Valid to" } th scope="col" { "Created" }
                        th scope="col" { "Current certificate" }
                    } }
                    tbody {
                        @for (c, valid) in list.iter().zip(&current) {
                            tr data-contract=(c.id) {
                                td { a href=(format!("/ui/certificates?q={}", enc(&c.emaid))) { (c.emaid) } }
                                td { (c.pcid) }
                                td { (c.tenant) }
                                td { (format!("{:?}", c.status).to_lowercase()) }
                                td { (c.valid_to.map(day).unwrap_or_else(|| "–".into())) }
                                td { (when(c.created_at)) " by " (c.created_by) }
                                td class="current" {
                                    @match valid.first() {
                                        Some(r) => {
                                            a href=(format!("/ui/certificates/{}/{}", enc(&r.issuer_id), r.serial_hex)) {
                                                code { (r.serial_hex) }
                                            }
                                            @if valid.len() > 1 {
                                                " " span class="muted" { "(+" (valid.len() - 1) " older, still valid until revoked as superseded)" }
                                            }
                                        }
                                        None => { span class="muted" { "none" } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    respond(
        StatusCode::OK,
        page("Contracts", Some(&s), "/ui/contracts", body),
    )
}

#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct PoolQuery {
    pcid: Option<String>,
}

/// `GET /ui/provisioning-certificates`: the OEM provisioning-certificate pool (admins and
/// auditors list it; an MO looks one vehicle up by PCID).
pub async fn provisioning_certificates(
    State(st): State<ConsoleState>,
    SignedIn(s): SignedIn,
    RawQuery(raw): RawQuery,
) -> Response {
    let q: PoolQuery = match query(Some(&s), raw.as_deref()) {
        Ok(q) => q,
        Err(r) => return r,
    };
    let list = match q.pcid.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
        Some(pcid) => match st.ra.prov_cert(&s.principal, pcid).await {
            Ok(r) => vec![r],
            Err(crate::ra::RaError::NotFound(_)) => Vec::new(),
            Err(e) => return layout::error_page(Some(&s), &e),
        },
        None if sees_all(&s) => match st.ra.list_prov_certs(&s.principal, 100).await {
            Ok(l) => l,
            Err(e) => return layout::error_page(Some(&s), &e),
        },
        None => Vec::new(),
    };
    let now = st.ra.now();
    let body = html! {
        form class="search" method="get" action="/ui/provisioning-certificates" {
            div { label for="pcid" { "PCID" }
                input id="pcid" name="pcid" type="text" value=(q.pcid.clone().unwrap_or_default()) maxlength="32"; }
            div { button type="submit" { "Look up" } }
        }
        @if list.is_empty() { p { "No provisioning certificates to show." } } @else {
            div class="scroll" {
                table id="pool" {
                    thead { tr {
                        th scope="col" { "PCID" } th scope="col" { "Tenant" } th scope="col" { "Subject" }
                        th scope="col" { "Validity" } th scope="col" { "Uploaded" }
                    } }
                    tbody {
                        @for p in &list {
                            @let leaf = crate::x509::ParsedCert::from_der(&p.leaf_der).ok();
                            tr {
                                td { (p.pcid) }
                                td { (p.tenant) }
                                td { (leaf.as_ref().map(|l| l.subject_string()).unwrap_or_default()) }
                                td { @if let Some(l) = &leaf { (validity_bar(l.not_before(), l.not_after(), now)) } }
                                td { (when(p.uploaded_at)) " by " (p.uploaded_by) }
                            }
                        }
                    }
                }
            }
        }
    };
    respond(
        StatusCode::OK,
        page(
            "Provisioning certificates",
            Some(&s),
            "/ui/provisioning-certificates",
            body,
        ),
    )
}
