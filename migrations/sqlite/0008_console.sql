-- Operator console (sqlite): people who sign in at /ui/ and their sessions. Keep in step with the
-- other backend's 0008.

-- A person: separate from API clients (no client credentials, no tokens). The password is stored
-- only as an argon2id PHC string.
CREATE TABLE ui_users (
    name          TEXT PRIMARY KEY,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'auditor', 'cpo', 'mo')),
    -- JSON array of normalised tenant prefixes (EVSE operator or EMAID provider).
    tenants       TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    disabled_at   BIGINT,
    created_at    BIGINT NOT NULL
);

-- A signed-in browser. Only the SHA-256 of the cookie value is kept, so a copy of the database
-- cannot be replayed as a session. Shared by every replica.
CREATE TABLE ui_sessions (
    id_hash    TEXT PRIMARY KEY,
    user_name  TEXT NOT NULL REFERENCES ui_users(name),
    csrf       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen  BIGINT NOT NULL
);
CREATE INDEX ui_sessions_user ON ui_sessions (user_name);
CREATE INDEX ui_sessions_last_seen ON ui_sessions (last_seen);

-- The key that signs sign-in form tokens (CSRF before a session exists), made on first use and
-- shared by every replica.
CREATE TABLE ui_secret (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    secret TEXT NOT NULL
);
