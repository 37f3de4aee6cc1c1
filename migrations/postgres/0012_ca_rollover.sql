-- CA key rollover (postgres). Keep in step with the other backend's 0012.
--
-- A CA keeps its id across key rollovers; each key is a generation (1 = the key `init` made).
-- `cas` holds the current generation; the ones before it move to `ca_retired_keys`, which keep
-- answering OCSP and signing CRLs for the certificates they issued until those expire.
ALTER TABLE cas ADD COLUMN generation BIGINT NOT NULL DEFAULT 1;

-- Which key of its issuer signed each certificate (every row before this migration: the first).
ALTER TABLE certificates ADD COLUMN issuer_generation BIGINT NOT NULL DEFAULT 1;

CREATE TABLE ca_retired_keys (
    id             TEXT NOT NULL REFERENCES cas(id),
    generation     BIGINT NOT NULL,
    profile        TEXT NOT NULL,
    parent_id      TEXT,
    key_id         TEXT NOT NULL,
    key_alg        TEXT NOT NULL,
    serial_hex     TEXT NOT NULL,
    subject        TEXT NOT NULL,
    cert_der       BYTEA NOT NULL,
    not_before     BIGINT NOT NULL,
    not_after      BIGINT NOT NULL,
    created_at     BIGINT NOT NULL,
    external_chain TEXT,
    retired_at     BIGINT NOT NULL,
    PRIMARY KEY (id, generation)
);

-- One CRL per key generation: a CRL is signed by the key that issued the certificates it lists.
CREATE TABLE crls (
    issuer_id     TEXT NOT NULL REFERENCES cas(id),
    generation    BIGINT NOT NULL,
    crl_number    BIGINT NOT NULL,
    this_update   BIGINT NOT NULL,
    next_update   BIGINT NOT NULL,
    revoked_count BIGINT NOT NULL DEFAULT -1,
    der           BYTEA NOT NULL,
    PRIMARY KEY (issuer_id, generation)
);
INSERT INTO crls (issuer_id, generation, crl_number, this_update, next_update, revoked_count, der)
    SELECT issuer_id, 1, crl_number, this_update, next_update, revoked_count, der FROM crl_state;
DROP TABLE crl_state;
