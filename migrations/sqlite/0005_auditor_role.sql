-- The read-only auditor role (sqlite). Keep in step with the other backend's 0005.
-- SQLite cannot alter a CHECK constraint: the table is rebuilt with the same columns and rows.
CREATE TABLE api_clients_new (
    client_id    TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    role         TEXT NOT NULL CHECK (role IN ('cpo', 'mo', 'oem', 'cps', 'admin', 'auditor')),
    tenants      TEXT NOT NULL,
    secret_hash  TEXT NOT NULL,
    disabled_at  BIGINT,
    created_at   BIGINT NOT NULL
);
INSERT INTO api_clients_new (client_id, name, role, tenants, secret_hash, disabled_at, created_at)
    SELECT client_id, name, role, tenants, secret_hash, disabled_at, created_at FROM api_clients;
DROP TABLE api_clients;
ALTER TABLE api_clients_new RENAME TO api_clients;
