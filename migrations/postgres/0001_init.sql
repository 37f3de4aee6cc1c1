-- pnc-pki schema (PostgreSQL). Keep in step with migrations/sqlite/0001_init.sql.
-- Portable types: timestamps are unix seconds (BIGINT), serials and key ids are lower-case hex TEXT.

CREATE TABLE cas (
    id              TEXT PRIMARY KEY,
    profile         TEXT NOT NULL,
    parent_id       TEXT REFERENCES cas(id),
    key_id          TEXT NOT NULL,
    key_alg         TEXT NOT NULL,
    serial_hex      TEXT NOT NULL,
    subject         TEXT NOT NULL,
    cert_der        BYTEA NOT NULL,
    not_before      BIGINT NOT NULL,
    not_after       BIGINT NOT NULL,
    created_at      BIGINT NOT NULL
);

CREATE TABLE certificates (
    issuer_id         TEXT NOT NULL REFERENCES cas(id),
    serial_hex        TEXT NOT NULL,
    profile           TEXT NOT NULL,
    subject           TEXT NOT NULL,
    emaid             TEXT,
    evse_id           TEXT,
    pcid              TEXT,
    not_before        BIGINT NOT NULL,
    not_after         BIGINT NOT NULL,
    status            TEXT NOT NULL DEFAULT 'valid' CHECK (status IN ('valid', 'revoked')),
    revoked_at        BIGINT,
    revocation_reason TEXT,
    key_id            TEXT,
    tenant            TEXT,
    der               BYTEA NOT NULL,
    created_at        BIGINT NOT NULL,
    PRIMARY KEY (issuer_id, serial_hex)
);
CREATE INDEX certificates_emaid ON certificates (emaid);
CREATE INDEX certificates_evse_id ON certificates (evse_id);
CREATE INDEX certificates_pcid ON certificates (pcid);
CREATE INDEX certificates_serial ON certificates (serial_hex);
CREATE INDEX certificates_status_not_after ON certificates (status, not_after);
CREATE INDEX certificates_profile ON certificates (profile);

CREATE TABLE audit_log (
    seq        BIGINT PRIMARY KEY,
    ts         BIGINT NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    target     TEXT NOT NULL,
    details    TEXT NOT NULL,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL
);

CREATE TABLE audit_head (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    seq   BIGINT NOT NULL,
    hash  TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

CREATE FUNCTION audit_log_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
