-- OCPP (sqlite): the csms role, and scheduled supersessions. Keep in step with the other backend's 0009.
-- SQLite cannot alter a CHECK constraint: the table is rebuilt with the same columns, rows and
-- index (as 0005 did for the auditor role).
CREATE TABLE api_clients_new (
    client_id    TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    role         TEXT NOT NULL CHECK (role IN ('cpo', 'mo', 'oem', 'cps', 'csms', 'admin', 'auditor')),
    tenants      TEXT NOT NULL,
    secret_hash  TEXT NOT NULL,
    disabled_at  BIGINT,
    created_at   BIGINT NOT NULL,
    cert_sha256  TEXT
);
INSERT INTO api_clients_new (client_id, name, role, tenants, secret_hash, disabled_at, created_at, cert_sha256)
    SELECT client_id, name, role, tenants, secret_hash, disabled_at, created_at, cert_sha256 FROM api_clients;
DROP TABLE api_clients;
ALTER TABLE api_clients_new RENAME TO api_clients;
CREATE UNIQUE INDEX api_clients_cert_sha256 ON api_clients (cert_sha256);

-- Certificates a re-issue for the same subject replaced (OCPP stations, EST simplereenroll):
-- revoked as superseded once supersede_at has passed (PNC_SUPERSEDE_GRACE).
CREATE TABLE supersessions (
    issuer_id    TEXT NOT NULL,
    serial_hex   TEXT NOT NULL,
    by_issuer    TEXT NOT NULL,
    by_serial    TEXT NOT NULL,
    supersede_at BIGINT NOT NULL,
    PRIMARY KEY (issuer_id, serial_hex)
);
CREATE INDEX supersessions_due ON supersessions (supersede_at);
