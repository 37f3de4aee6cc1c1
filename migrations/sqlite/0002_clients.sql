-- HTTP API: OAuth2 clients, the token signing key, CRL state (sqlite). Keep in step with the other backend's 0002.

-- API clients (OAuth2 client credentials). The secret is stored only as an argon2id PHC string.
CREATE TABLE api_clients (
    client_id    TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    role         TEXT NOT NULL CHECK (role IN ('cpo', 'mo', 'oem', 'cps', 'admin')),
    -- JSON array of normalised tenant prefixes (EVSE operator, EMAID provider or PCID WMI).
    tenants      TEXT NOT NULL,
    secret_hash  TEXT NOT NULL,
    disabled_at  BIGINT,
    created_at   BIGINT NOT NULL
);

-- Access-token signing keys: the private key lives in the HSM (key_id); the public point is kept
-- here so verification needs no HSM round trip.
CREATE TABLE api_signing_keys (
    kid          TEXT PRIMARY KEY,
    key_id       TEXT NOT NULL,
    key_alg      TEXT NOT NULL,
    public_point BLOB NOT NULL,
    created_at   BIGINT NOT NULL
);

-- Newest CRL per CA. crl_number only ever grows (RFC 5280 §5.2.3).
CREATE TABLE crl_state (
    issuer_id    TEXT PRIMARY KEY REFERENCES cas(id),
    crl_number   BIGINT NOT NULL,
    this_update  BIGINT NOT NULL,
    next_update  BIGINT NOT NULL,
    der          BLOB NOT NULL
);
