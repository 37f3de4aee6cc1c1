-- One valid contract certificate per contract and schema, and replays answered, not re-issued
-- (sqlite). Keep in step with the other backend's 0014. Each provisioning keeps the answer it
-- delivered, so that the same request bytes again (a replay, or a car's retry) get that answer
-- while its certificate is current and are refused after it was superseded; the request hash is
-- indexed for that lookup.
ALTER TABLE provisionings ADD COLUMN response BLOB;
CREATE INDEX provisionings_request_sha256 ON provisionings (request_sha256);
