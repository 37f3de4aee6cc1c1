//! Webhooks (OPCP `webhooks.v1`): endpoints an API client registers for itself, and the
//! deliverer that POSTs the outbox's events to them, signed, at least once.
//!
//! Events are written by the store in the transaction of what caused them (`crate::events`);
//! here they leave the building. One replica at a time delivers (job lease `webhooks`); every
//! attempt goes through the guarded fetcher, whose address rules apply at registration and
//! again at each attempt (a name that resolves elsewhere later is refused then). A 2xx ends a
//! delivery; a 4xx other than 408/429 gives it up at once; anything else is retried on the
//! `PNC_WEBHOOK_RETRY` schedule with the same body and `eventId`, then given up.

use std::time::Duration;

use serde_json::{Value, json};

use super::{Ra, RaError};
use crate::events::{self, Audience, OutboxEvent};
use crate::fetch::FetchError;
use crate::model::{AuditEvent, ContractRecord, WebhookDelivery, WebhookEndpoint};
use crate::policy::authz::{Operation, Principal, Role, Target, Via};

/// Endpoints one client may have.
pub const MAX_ENDPOINTS_PER_CLIENT: i64 = 20;
/// Longest endpoint URL.
const MAX_URL: usize = 2048;
/// Deliveries sent per pass.
const BATCH: i64 = 32;
/// Deliveries in flight at once (each bounded by the fetcher's timeout).
const IN_FLIGHT: usize = 8;
/// The answer body we read from a receiver (and throw away).
const MAX_ANSWER: usize = 4096;
/// How long the deliverer sleeps when nothing wakes it.
const IDLE: Duration = Duration::from_millis(500);
/// The deliverer's lease.
const LEASE_MS: i64 = 30_000;

/// A vehicle's or contract's event: `oem.*` to the OEM of the PCID's WMI, `mo.*` to the MO of
/// the EMAID.
pub(super) fn contract_event(
    event_type: &str,
    c: &ContractRecord,
    contract_cert: Option<&[u8]>,
    now: i64,
) -> OutboxEvent {
    vehicle_event(event_type, &c.emaid, &c.pcid, contract_cert, now)
}

/// [`contract_event`] from its parts.
pub(super) fn vehicle_event(
    event_type: &str,
    emaid: &str,
    pcid: &str,
    contract_cert: Option<&[u8]>,
    now: i64,
) -> OutboxEvent {
    let audience = if event_type.starts_with("oem.") {
        Audience::Oem(pcid.to_string())
    } else {
        Audience::Mo(emaid.to_string())
    };
    OutboxEvent::new(
        event_type,
        events::NS_ISO2,
        events::contract_payload(emaid, pcid, contract_cert),
        audience,
        now,
    )
}

/// A root pool event (everyone subscribed hears of it).
pub(super) fn root_event(event_type: &str, der: &[u8], root_type: &str, now: i64) -> OutboxEvent {
    events::root_event(event_type, der, root_type, now)
}

/// What a caller sends to create or change an endpoint (OPCP `EndpointRequest`).
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointRequest {
    /// Where events go.
    pub url: Option<String>,
    /// Event types to enable.
    pub enabled_events: Option<Vec<String>>,
    /// `enabled` (default) or `disabled`.
    pub status: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// The caller's key-value pairs.
    pub metadata: Option<Value>,
    /// Only `v1`.
    pub api_version: Option<String>,
}

impl Ra {
    async fn may_manage_webhooks(&self, p: &Principal) -> Result<(), RaError> {
        self.authorize(
            p,
            Operation::ManageWebhooks,
            Target::Any,
            "webhook/endpoints",
        )
        .await?;
        if p.via != Via::Client {
            return Err(RaError::bad(
                "not_an_api_client",
                "webhook endpoints belong to API clients: register one with an API client's token",
            ));
        }
        Ok(())
    }

    /// Check an endpoint's fields; `base` is the endpoint being changed.
    async fn checked_endpoint(
        &self,
        req: EndpointRequest,
        mut base: WebhookEndpoint,
    ) -> Result<WebhookEndpoint, RaError> {
        if let Some(url) = req.url {
            let url = url.trim().to_string();
            if url.is_empty() || url.len() > MAX_URL {
                return Err(RaError::bad(
                    "bad_url",
                    format!("url must be 1..{MAX_URL} characters"),
                ));
            }
            self.inner
                .external
                .fetcher
                .check_push(&url)
                .await
                .map_err(|e| RaError::bad("bad_url", format!("url: {e}")))?;
            base.url = url;
        }
        if base.url.is_empty() {
            return Err(RaError::bad("bad_url", "url is required"));
        }
        if let Some(list) = req.enabled_events {
            if list.is_empty() || list.len() > events::EVENT_TYPES.len() {
                return Err(RaError::bad(
                    "bad_events",
                    "enabledEvents must list at least one event type",
                ));
            }
            let mut v: Vec<String> = Vec::new();
            for e in list {
                if !events::is_event_type(&e) {
                    return Err(RaError::bad(
                        "bad_events",
                        format!(
                            "unknown event type '{}' (known: {})",
                            e.chars().take(64).collect::<String>(),
                            events::EVENT_TYPES.join(", ")
                        ),
                    ));
                }
                if !v.contains(&e) {
                    v.push(e);
                }
            }
            base.events = v;
        }
        if base.events.is_empty() {
            return Err(RaError::bad("bad_events", "enabledEvents is required"));
        }
        if let Some(s) = req.status {
            if s != "enabled" && s != "disabled" {
                return Err(RaError::bad(
                    "bad_status",
                    "status must be enabled or disabled",
                ));
            }
            base.status = s;
        }
        if let Some(d) = req.description {
            if d.chars().count() > 1024 || d.chars().any(char::is_control) {
                return Err(RaError::bad(
                    "bad_description",
                    "description must be at most 1024 characters, without control characters",
                ));
            }
            base.description = d;
        }
        if let Some(m) = req.metadata {
            if !m.is_object() || m.to_string().len() > 4096 {
                return Err(RaError::bad(
                    "bad_metadata",
                    "metadata must be a JSON object of at most 4096 bytes",
                ));
            }
            base.metadata = m;
        }
        if let Some(v) = req.api_version
            && v != "v1"
        {
            return Err(RaError::bad("bad_api_version", "apiVersion must be v1"));
        }
        Ok(base)
    }

    /// Register an endpoint for the calling API client; its secret is made here and returned
    /// this once.
    pub async fn create_webhook_endpoint(
        &self,
        p: &Principal,
        req: EndpointRequest,
    ) -> Result<WebhookEndpoint, RaError> {
        self.may_manage_webhooks(p).await?;
        if req.url.is_none() {
            return Err(RaError::bad("bad_url", "url is required"));
        }
        if req.enabled_events.is_none() {
            return Err(RaError::bad("bad_events", "enabledEvents is required"));
        }
        if self.inner.store.count_webhook_endpoints(&p.id).await? >= MAX_ENDPOINTS_PER_CLIENT {
            return Err(RaError::bad(
                "too_many_endpoints",
                format!("a client may have at most {MAX_ENDPOINTS_PER_CLIENT} webhook endpoints"),
            ));
        }
        let mut secret = [0u8; 32];
        openssl::rand::rand_bytes(&mut secret).map_err(|e| RaError::Internal(e.to_string()))?;
        let now = self.now();
        let base = WebhookEndpoint {
            id: format!("we_{}", events::uuid_v4().replace('-', "")),
            client_id: p.id.clone(),
            url: String::new(),
            events: Vec::new(),
            status: "enabled".into(),
            description: String::new(),
            metadata: json!({}),
            api_version: "v1".into(),
            secret: format!("whsec_{}", hex::encode(secret)),
            created_at: now,
            updated_at: now,
        };
        let e = self.checked_endpoint(req, base).await?;
        let ev = AuditEvent::new(
            &p.actor(),
            "webhook.endpoint.create",
            &format!("webhook/{}", e.id),
            json!({ "url": e.url, "events": e.events, "status": e.status }),
        );
        self.inner.store.insert_webhook_endpoint(&e, &ev).await?;
        tracing::info!(endpoint = %e.id, client = %p.id, "webhook endpoint registered");
        Ok(e)
    }

    /// The caller's endpoints (an admin's: everyone's).
    pub async fn list_webhook_endpoints(
        &self,
        p: &Principal,
    ) -> Result<Vec<WebhookEndpoint>, RaError> {
        self.may_manage_webhooks(p).await?;
        let owner = (p.role != Role::Admin).then_some(p.id.as_str());
        Ok(self.inner.store.list_webhook_endpoints(owner).await?)
    }

    /// One of the caller's endpoints; another client's is "not found" (its existence is not
    /// disclosed).
    pub async fn webhook_endpoint(
        &self,
        p: &Principal,
        id: &str,
    ) -> Result<WebhookEndpoint, RaError> {
        self.may_manage_webhooks(p).await?;
        let e = self.inner.store.get_webhook_endpoint(id).await?;
        match e {
            Some(e) if e.client_id == p.id || p.role == Role::Admin => Ok(e),
            _ => Err(RaError::NotFound(format!(
                "no webhook endpoint {}",
                id.chars().take(64).collect::<String>()
            ))),
        }
    }

    /// Change one of the caller's endpoints (URL, events, status, description, metadata).
    pub async fn update_webhook_endpoint(
        &self,
        p: &Principal,
        id: &str,
        req: EndpointRequest,
    ) -> Result<WebhookEndpoint, RaError> {
        let current = self.webhook_endpoint(p, id).await?;
        let mut e = self.checked_endpoint(req, current).await?;
        e.updated_at = self.now();
        let ev = AuditEvent::new(
            &p.actor(),
            "webhook.endpoint.update",
            &format!("webhook/{}", e.id),
            json!({ "url": e.url, "events": e.events, "status": e.status }),
        );
        if !self.inner.store.update_webhook_endpoint(&e, &ev).await? {
            return Err(RaError::NotFound(format!("no webhook endpoint {}", e.id)));
        }
        self.inner.webhook_wake.notify_one();
        Ok(e)
    }

    /// Delete one of the caller's endpoints; its pending deliveries are cancelled.
    pub async fn delete_webhook_endpoint(&self, p: &Principal, id: &str) -> Result<(), RaError> {
        let e = self.webhook_endpoint(p, id).await?;
        let ev = AuditEvent::new(
            &p.actor(),
            "webhook.endpoint.delete",
            &format!("webhook/{}", e.id),
            json!({ "url": e.url }),
        );
        if !self.inner.store.delete_webhook_endpoint(&e.id, &ev).await? {
            return Err(RaError::NotFound(format!("no webhook endpoint {}", e.id)));
        }
        Ok(())
    }

    /// An endpoint's deliveries with their attempts, newest first.
    pub async fn webhook_deliveries(
        &self,
        p: &Principal,
        id: &str,
        limit: i64,
    ) -> Result<Vec<WebhookDelivery>, RaError> {
        let e = self.webhook_endpoint(p, id).await?;
        Ok(self.inner.store.webhook_deliveries(&e.id, limit).await?)
    }

    /// Every endpoint with its owner's name and latest deliveries, and delivery counts by
    /// state, for the console (admins and auditors; never a secret shown there).
    #[allow(clippy::type_complexity)]
    pub async fn webhook_overview(
        &self,
        p: &Principal,
        per_endpoint: i64,
    ) -> Result<
        (
            Vec<(WebhookEndpoint, String, Vec<WebhookDelivery>)>,
            Vec<(String, i64)>,
        ),
        RaError,
    > {
        self.authorize(p, Operation::ReadAudit, Target::Any, "webhook/endpoints")
            .await?;
        let names: std::collections::HashMap<String, String> = self
            .inner
            .store
            .list_clients()
            .await?
            .into_iter()
            .map(|c| (c.client_id, c.name))
            .collect();
        let mut out = Vec::new();
        for e in self.inner.store.list_webhook_endpoints(None).await? {
            let d = self
                .inner
                .store
                .webhook_deliveries(&e.id, per_endpoint)
                .await?;
            let name = names.get(&e.client_id).cloned().unwrap_or_default();
            out.push((e, name, d));
        }
        Ok((out, self.inner.store.webhook_delivery_counts().await?))
    }

    /// Deliver what is due now, once; the number of attempts made (deferred sends are not
    /// attempts). Only the holder of the
    /// `webhooks` lease sends.
    pub async fn deliver_webhooks_once(&self) -> Result<usize, RaError> {
        let now_ms = self.inner.clock.now_ms();
        if !self
            .inner
            .store
            .job_lease("webhooks", &self.inner.holder, now_ms, LEASE_MS)
            .await?
        {
            return Ok(0);
        }
        let due = self
            .inner
            .store
            .due_webhook_deliveries(now_ms, BATCH)
            .await?;
        let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
        let mut tasks = tokio::task::JoinSet::new();
        for d in due {
            let ra = self.clone();
            let permit = sem.clone().acquire_owned().await;
            tasks.spawn(async move {
                let _p = permit;
                ra.attempt(d).await
            });
        }
        let mut n = 0;
        while let Some(r) = tasks.join_next().await {
            n += usize::from(r.unwrap_or(false));
        }
        Ok(n)
    }

    /// One attempt of one delivery; false when it was deferred (not an attempt).
    async fn attempt(&self, d: crate::model::DueDelivery) -> bool {
        let sig = events::signature(&d.secret, &d.body);
        let headers = [
            ("payload-signature", sig.clone()),
            ("X-Hubject-Signature", format!("sha256={sig}")),
            ("X-Pnc-Event-Id", d.event_id.clone()),
            ("X-Pnc-Event-Type", d.event_type.clone()),
        ];
        let started = std::time::Instant::now();
        let r = self
            .inner
            .external
            .fetcher
            .post_with_headers(
                &d.url,
                "application/json",
                &headers,
                d.body.clone(),
                MAX_ANSWER,
            )
            .await;
        if let Err(FetchError::Busy(why)) = &r {
            // Our own bound on outbound requests, not the receiver's answer: not an attempt;
            // the delivery stays due and goes out on a later pass.
            tracing::debug!(event = %d.event_id, why = %why, "webhook delivery deferred (fetcher busy)");
            return false;
        }
        let ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let now = self.now();
        let attempt_no = usize::try_from(d.attempts).unwrap_or(usize::MAX);
        let mut entry = json!({ "at": crate::model::rfc3339(now), "ms": ms });
        let (state, next_at_ms) = match &r {
            Ok(_) => {
                entry["status"] = "2xx".into();
                ("delivered", 0)
            }
            Err(e) => {
                match e {
                    FetchError::Status(s) => entry["status"] = (*s).into(),
                    other => entry["error"] = other.to_string().into(),
                }
                let final_refusal = matches!(e, FetchError::Status(s) if (400..500).contains(s) && *s != 408 && *s != 429)
                    || matches!(e, FetchError::BadUrl(_) | FetchError::Forbidden(_));
                match self.inner.webhook_retry.get(attempt_no) {
                    Some(wait) if !final_refusal => (
                        "pending",
                        self.inner
                            .clock
                            .now_ms()
                            .saturating_add(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX)),
                    ),
                    _ => ("failed", 0),
                }
            }
        };
        let mut log = d.log.clone();
        if let Some(a) = log.as_array_mut() {
            a.push(entry);
        }
        let follow_up = self.follow_up(&d, state, attempt_no, now);
        let a = crate::store::Attempt {
            state,
            next_at_ms,
            log,
            now,
            follow_up,
        };
        match self
            .inner
            .store
            .record_webhook_attempt(&d.event_id, &d.endpoint_id, &a)
            .await
        {
            Ok(_) => {
                tracing::info!(event = %d.event_id, endpoint = %d.endpoint_id, event_type = %d.event_type, state, attempt = attempt_no + 1, "webhook delivery attempt");
            }
            Err(e) => {
                // Not recorded: the delivery stays pending and is sent again (at least once).
                tracing::warn!(event = %d.event_id, endpoint = %d.endpoint_id, error = %e, "recording a webhook attempt failed");
            }
        }
        true
    }

    /// The MO's view of what became of an `oem.contract.*` event: sent, queued (first failure
    /// of several) or rejected (given up).
    fn follow_up(
        &self,
        d: &crate::model::DueDelivery,
        state: &str,
        attempt_no: usize,
        now: i64,
    ) -> Vec<OutboxEvent> {
        // Only what reached (or failed to reach) an OEM's own endpoint is news for the MO.
        if !d.event_type.starts_with("oem.contract.") || d.owner_role != "oem" {
            return Vec::new();
        }
        let Ok(body) = serde_json::from_slice::<Value>(&d.body) else {
            return Vec::new();
        };
        let (Some(emaid), Some(pcid)) = (
            body["payload"]["emaid"].as_str(),
            body["payload"]["pcid"].as_str(),
        ) else {
            return Vec::new();
        };
        let t = match state {
            "delivered" => events::sent_to_oem(&d.event_type),
            "failed" => Some(events::REJECTED_BY_OEM),
            _ if attempt_no == 0 => Some(events::QUEUED_TO_OEM),
            _ => None,
        };
        t.map(|t| vehicle_event(t, emaid, pcid, None, now))
            .into_iter()
            .collect()
    }

    /// Announce roots of the pool (ours and trusted) that expired, once each.
    pub async fn announce_expired_roots(&self) -> Result<usize, RaError> {
        let now = self.now();
        let done = self.inner.store.announced_expiries().await?;
        let mut roots: Vec<(Vec<u8>, &'static str)> = Vec::new();
        for t in self.inner.store.list_trusted_roots().await? {
            if t.not_after <= now {
                roots.push((t.der, t.kind.opcp_type()));
            }
        }
        for ca in self.inner.store.list_cas().await? {
            if ca.parent_id.is_none()
                && let Some(rt) = crate::events::root_type_of(&ca.profile)
                && let Ok(c) = crate::x509::ParsedCert::from_der(&ca.cert_der)
                && c.not_after() <= now
            {
                roots.push((ca.cert_der.clone(), rt));
            }
        }
        let mut n = 0;
        for (der, rt) in roots {
            let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&der));
            if done.contains(&sha) {
                continue;
            }
            let ev = root_event(events::ROOT_EXPIRED, &der, rt, now);
            if self.inner.store.announce_root_expiry(&sha, &ev).await? {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Give the deliverer's lease up (graceful shutdown), so another replica takes over at once.
    pub async fn release_webhook_lease(&self) {
        if let Err(e) = self
            .inner
            .store
            .release_job_lease("webhooks", &self.inner.holder)
            .await
        {
            tracing::warn!(error = %e, "releasing the webhook lease failed");
        }
    }

    /// The deliverer: sends due deliveries whenever this replica holds the lease, woken at once
    /// by events this process writes and every half second for those of others (the CLI,
    /// other replicas); once a minute it looks for roots that expired and forgets deliveries
    /// finished longer ago than `PNC_WEBHOOK_RETENTION`.
    pub async fn run_webhook_deliverer(self) {
        let mut last_sweep = std::time::Instant::now() - Duration::from_secs(3600);
        loop {
            if last_sweep.elapsed() >= Duration::from_secs(60) {
                last_sweep = std::time::Instant::now();
                if let Err(e) = self.announce_expired_roots().await {
                    tracing::warn!(error = %e, "looking for expired roots failed");
                }
                let before = self.now().saturating_sub(self.inner.webhook_retention);
                match self.inner.store.purge_webhook_history(before).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(deliveries = n, "old webhook deliveries forgotten"),
                    Err(e) => tracing::warn!(error = %e, "purging webhook history failed"),
                }
            }
            match self.deliver_webhooks_once().await {
                Ok(n) if n as i64 == BATCH => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "webhook delivery pass failed"),
            }
            let _ = tokio::time::timeout(IDLE, self.inner.webhook_wake.notified()).await;
        }
    }
}
