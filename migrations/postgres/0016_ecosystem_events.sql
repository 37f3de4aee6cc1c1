-- Ecosystem events (postgres). Keep in step with the other backend's 0016.
--
-- Webhook endpoints (OPCP webhooks.v1): each belongs to the API client that registered it and
-- receives only events about that client's tenants (root events: everyone). The secret signs
-- every delivery (HMAC-SHA256) and is shown once, at creation. Deleted endpoints are kept
-- (deleted_at) so that their delivery log stays readable.
CREATE TABLE webhook_endpoints (
    id           TEXT PRIMARY KEY,
    client_id    TEXT NOT NULL,
    url          TEXT NOT NULL,
    events       TEXT NOT NULL,          -- JSON array of event types
    status       TEXT NOT NULL,          -- enabled | disabled
    description  TEXT NOT NULL,
    metadata     TEXT NOT NULL,          -- JSON object, the caller's
    api_version  TEXT NOT NULL,
    secret       TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    deleted_at   BIGINT
);
CREATE INDEX webhook_endpoints_client ON webhook_endpoints (client_id);

-- The outbox: every event, written in the same transaction as what caused it, with the exact
-- body every endpoint receives (the same eventId on every retry).
CREATE TABLE webhook_events (
    event_id    TEXT PRIMARY KEY,
    event_type  TEXT NOT NULL,
    audience    TEXT NOT NULL,           -- all | oem:<PCID> | mo:<EMAID>
    body        BYTEA NOT NULL,
    created_at  BIGINT NOT NULL
);

-- One row per (event, endpoint) that was enabled and entitled when the event was written.
CREATE TABLE webhook_deliveries (
    event_id     TEXT NOT NULL,
    endpoint_id  TEXT NOT NULL,
    state        TEXT NOT NULL,          -- pending | delivered | failed | cancelled
    attempts     BIGINT NOT NULL,
    next_at_ms   BIGINT NOT NULL,        -- when the next attempt is due (pending)
    log          TEXT NOT NULL,          -- JSON array of attempts: {at, ms, status | error}
    created_at   BIGINT NOT NULL,
    finished_at  BIGINT,
    PRIMARY KEY (event_id, endpoint_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_at_ms);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, created_at);

-- Which contract a vehicle's ISO 15118-2 installation delivers (OPCP setDefaultContract).
-- The OEM's choice between MOs (the tenant whose contract wins) ...
CREATE TABLE vehicle_priorities (
    pcid     TEXT PRIMARY KEY,
    tenant   TEXT NOT NULL,              -- the EMAID prefix of the preferred MO
    set_by   TEXT NOT NULL,
    set_at   BIGINT NOT NULL
);
-- ... and each MO's choice among its own contracts for that vehicle.
CREATE TABLE contract_defaults (
    pcid         TEXT NOT NULL,
    tenant       TEXT NOT NULL,
    contract_id  TEXT NOT NULL,
    set_by       TEXT NOT NULL,
    set_at       BIGINT NOT NULL,
    PRIMARY KEY (pcid, tenant)
);

-- Roots whose expiry was announced (root.cert.expired), ours and trusted ones, by SHA-256.
CREATE TABLE root_expiry_announced (
    root_sha256  TEXT PRIMARY KEY,
    announced_at BIGINT NOT NULL
);
