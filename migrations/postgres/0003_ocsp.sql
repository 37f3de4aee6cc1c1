-- OCSP responder (postgres). Keep in step with the other backend's 0003_ocsp.sql.
-- (0002 is reserved for the API clients table.)

-- Pre-produced responses, one per (certificate, CertID form). Shared by every replica; a row is
-- only served while its status still equals certificates.status (checked with a join on load).
CREATE TABLE ocsp_responses (
    cert_id       BYTEA PRIMARY KEY,
    issuer_id     TEXT NOT NULL,
    serial_hex    TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('valid', 'revoked')),
    this_update   BIGINT NOT NULL,
    next_update   BIGINT NOT NULL,
    produced_at   BIGINT NOT NULL,
    response_der  BYTEA NOT NULL
);
CREATE INDEX ocsp_responses_cert ON ocsp_responses (issuer_id, serial_hex);
CREATE INDEX ocsp_responses_this_update ON ocsp_responses (this_update);

-- Revocation epoch: bumped (row-locked) by every revocation; orders ocsp_events.
CREATE TABLE ocsp_state (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    epoch  BIGINT NOT NULL
);
INSERT INTO ocsp_state (id, epoch) VALUES (1, 0);

-- What changed at each epoch: replicas drop their cached responses for these certificates.
CREATE TABLE ocsp_events (
    seq         BIGINT PRIMARY KEY,
    issuer_id   TEXT NOT NULL,
    serial_hex  TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

-- Serving replicas: the epoch each has applied and until when it may serve from memory.
CREATE TABLE ocsp_replicas (
    id              TEXT PRIMARY KEY,
    acked           BIGINT NOT NULL,
    lease_until_ms  BIGINT NOT NULL,
    started_at      BIGINT NOT NULL
);
