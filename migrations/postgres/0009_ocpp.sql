-- OCPP (postgres): the csms role, and scheduled supersessions. Keep in step with the other backend's 0009.
ALTER TABLE api_clients DROP CONSTRAINT api_clients_role_check;
ALTER TABLE api_clients ADD CONSTRAINT api_clients_role_check
    CHECK (role IN ('cpo', 'mo', 'oem', 'cps', 'csms', 'admin', 'auditor'));

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
