-- Contract provisioning (sqlite). Keep in step with the other backend's 0007.

-- External roots the service trusts (OEM provisioning chains, roots EVs list), added by the
-- operator with `pnc-pki trust add`. Our own roots are in `cas` and need no row here.
CREATE TABLE trusted_roots (
    id          TEXT PRIMARY KEY,          -- SHA-256 of the DER, hex
    kind        TEXT NOT NULL,             -- oem-root | v2g-root | mo-root
    subject     TEXT NOT NULL,
    serial_hex  TEXT NOT NULL,
    not_before  BIGINT NOT NULL,
    not_after   BIGINT NOT NULL,
    der         BLOB NOT NULL,
    added_at    BIGINT NOT NULL
);

-- The OEM provisioning certificate pool: the chain of one vehicle (PCID), checked at upload.
CREATE TABLE prov_certs (
    pcid         TEXT PRIMARY KEY,
    tenant       TEXT NOT NULL,            -- WMI
    namespace    TEXT NOT NULL,            -- xsdMsgDefNamespace as uploaded
    leaf_der     BLOB NOT NULL,
    sub_ca1_der  BLOB,
    sub_ca2_der  BLOB,
    root_der     BLOB NOT NULL,            -- the trusted root the chain ended in
    uploaded_by  TEXT NOT NULL,
    uploaded_at  BIGINT NOT NULL
);

-- A contract binds an EMAID to a vehicle (PCID); installation issues under it.
CREATE TABLE contracts (
    id             TEXT PRIMARY KEY,
    emaid          TEXT NOT NULL,
    pcid           TEXT NOT NULL,
    tenant         TEXT NOT NULL,          -- EMAID prefix (country + provider)
    issuer_id      TEXT,                   -- MO sub-CA to issue under; NULL: the default
    organization   TEXT,                   -- O of the contract certificates; NULL: the issuer's
    valid_from     BIGINT,
    valid_to       BIGINT,
    grace_seconds  BIGINT NOT NULL,        -- an updated certificate is revoked this much later
    status         TEXT NOT NULL,          -- active | cancelled
    created_by     TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    cancelled_at   BIGINT
);
CREATE INDEX contracts_pcid ON contracts (pcid, status);
CREATE UNIQUE INDEX contracts_active_emaid ON contracts (emaid) WHERE status = 'active';

-- Every contract certificate a provisioning request produced, with the request itself.
CREATE TABLE provisionings (
    issuer_id          TEXT NOT NULL,
    serial_hex         TEXT NOT NULL,
    contract_id        TEXT NOT NULL,
    kind               TEXT NOT NULL,      -- install | update
    schema_version     TEXT NOT NULL,      -- iso15118-2 | iso15118-20
    request_sha256     TEXT NOT NULL,
    request            BLOB NOT NULL,
    response_size      BIGINT NOT NULL,
    supersedes_issuer  TEXT,               -- the certificate an update replaces
    supersedes_serial  TEXT,
    supersede_at       BIGINT,             -- when to revoke it (superseded); NULL: nothing due
    created_at         BIGINT NOT NULL,
    PRIMARY KEY (issuer_id, serial_hex)
);
CREATE INDEX provisionings_contract ON provisionings (contract_id);
CREATE INDEX provisionings_due ON provisionings (supersede_at);

-- Pre-generated answers (Hubject's fast path): signed ahead of time for a contract and the OEM
-- key of its vehicle; delivered with the live SessionID (outside the signed elements).
CREATE TABLE pregenerated (
    contract_id     TEXT NOT NULL,
    schema_version  TEXT NOT NULL,
    issuer_id       TEXT NOT NULL,          -- the contract certificate inside
    serial_hex      TEXT NOT NULL,
    oem_sha256      TEXT NOT NULL,          -- the OEM certificate it is encrypted for ('': any of the PCID)
    not_after       BIGINT NOT NULL,        -- the contract certificate's expiry
    exi             BLOB NOT NULL,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (contract_id, schema_version)
);
