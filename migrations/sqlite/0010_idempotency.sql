-- Idempotency-Key on issuing calls (sqlite). Keep in step with the other backend's 0010.
-- A key is written in the same transaction as the certificate it produced, so after a crash a
-- retry with the same key finds either both or neither. Keys older than 24 h are purged.
CREATE TABLE idempotency_keys (
    actor          TEXT NOT NULL,
    idem_key       TEXT NOT NULL,
    request_sha256 TEXT NOT NULL,
    issuer_id      TEXT NOT NULL,
    serial_hex     TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    PRIMARY KEY (actor, idem_key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
