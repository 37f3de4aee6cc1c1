//! `GET /ui/webhooks`: webhook endpoints and their latest deliveries (admins and auditors).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;

use super::ConsoleState;
use super::layout::{self, page, respond};
use super::session::SignedIn;

/// Deliveries shown per endpoint.
const PER_ENDPOINT: i64 = 20;

/// The page: delivery counts by state, then each endpoint (owner, URL, events, status) with its
/// latest deliveries and every attempt. Secrets are never shown.
pub async fn webhooks(State(st): State<ConsoleState>, SignedIn(s): SignedIn) -> Response {
    let (endpoints, counts) = match st.ra.webhook_overview(&s.principal, PER_ENDPOINT).await {
        Ok(v) => v,
        Err(e) => return layout::error_page(Some(&s), &e),
    };
    let body = html! {
        p { "Ecosystem events (docs/webhooks.md): written with what caused them, delivered signed, at least once." }
        @if counts.is_empty() { p { "No deliveries yet." } } @else {
            ul class="counts" id="delivery-counts" {
                @for (state, n) in &counts { li { (state) ": " strong { (n) } } }
            }
        }
        @if endpoints.is_empty() { p { "No webhook endpoints." } }
        @for (e, owner, deliveries) in &endpoints {
            section class="endpoint" {
                h2 { (e.id) }
                dl {
                    dt { "Client" } dd { (owner) " (" (e.client_id) ")" }
                    dt { "URL" } dd class="wrap" { (e.url) }
                    dt { "Status" } dd { (e.status) }
                    dt { "Events" } dd class="wrap" { (e.events.join(", ")) }
                    @if !e.description.is_empty() { dt { "Description" } dd { (e.description) } }
                }
                @if deliveries.is_empty() { p { "No deliveries." } } @else {
                    div class="scroll" {
                        table class="deliveries" {
                            thead { tr {
                                th scope="col" { "Event" } th scope="col" { "Type" } th scope="col" { "State" }
                                th scope="col" { "Attempts" } th scope="col" { "Written" } th scope="col" { "Log" }
                            } }
                            tbody {
                                @for d in deliveries {
                                    tr {
                                        td class="wrap" { (d.event_id) }
                                        td { (d.event_type) }
                                        td { (d.state) }
                                        td { (d.attempts) }
                                        td { (layout::when(d.created_at)) }
                                        td class="wrap" {
                                            @for a in d.log.as_array().into_iter().flatten() {
                                                div {
                                                    (a["at"].as_str().unwrap_or("")) " · "
                                                    (a["ms"].as_i64().unwrap_or(0)) " ms · "
                                                    @if let Some(err) = a["error"].as_str() { (err) }
                                                    @else { "HTTP " (a["status"].to_string().trim_matches('"')) }
                                                }
                                            }
                                        }
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
        page("Webhooks", Some(&s), "/ui/webhooks", body),
    )
}
