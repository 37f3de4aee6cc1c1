-- Sub-CA compromise response, `pnc-pki ca compromise` (postgres). Keep in step with the other
-- backend's 0017.
--
-- One row per compromised CA key generation (the CA the command named, and every CA below it).
-- The row is the first thing the command commits: from then on no certificate signed by that key
-- generation can be recorded, whichever process signed it (the trigger below), so a replica that
-- has not yet reloaded its keys refuses instead of issuing. The row stays after the replacement:
-- the old key remains stopped forever.
CREATE TABLE ca_compromises (
    ca_id        TEXT NOT NULL REFERENCES cas(id),
    generation   BIGINT NOT NULL,          -- the compromised key generation
    reason       TEXT NOT NULL,            -- why its own certificate is revoked at its parent
    origin       TEXT NOT NULL,            -- the CA the command was run for (this one or above)
    actor        TEXT NOT NULL,
    started_at   BIGINT NOT NULL,
    finished_at  BIGINT,                   -- every step done
    PRIMARY KEY (ca_id, generation)
);

CREATE FUNCTION pnc_refuse_stopped_key() RETURNS trigger AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM ca_compromises
               WHERE ca_id = NEW.issuer_id AND generation = NEW.issuer_generation) THEN
        RAISE EXCEPTION 'ca_key_stopped: the issuing CA key is stopped (compromised)';
    END IF;
    RETURN NEW;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER certificates_refuse_stopped_key BEFORE INSERT ON certificates
    FOR EACH ROW EXECUTE FUNCTION pnc_refuse_stopped_key();

-- The bulk revocation walks a CA key's certificates.
CREATE INDEX certificates_issuer_generation ON certificates (issuer_id, issuer_generation, status);
