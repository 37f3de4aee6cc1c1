-- Abuse resistance (sqlite). Keep in step with the other backend's 0006.

-- Mutual TLS: a client is bound to one client certificate by its SHA-256 fingerprint.
ALTER TABLE api_clients ADD COLUMN cert_sha256 TEXT;
CREATE UNIQUE INDEX api_clients_cert_sha256 ON api_clients (cert_sha256);

-- How many certificates of the CA were revoked when this CRL was made: a CRL is current while
-- that count has not grown (a revocation count, unlike a time, cannot tie). -1: unknown.
ALTER TABLE crl_state ADD COLUMN revoked_count BIGINT NOT NULL DEFAULT -1;

-- Readiness writes here (one row, updated): a store that can read but not write is not ready.
CREATE TABLE health_probe (
    id         INTEGER PRIMARY KEY,
    checked_at BIGINT NOT NULL
);
INSERT INTO health_probe (id, checked_at) VALUES (1, 0);
