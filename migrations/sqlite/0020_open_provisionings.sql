-- What an installation supersedes, found without walking the contract's history (sqlite).
-- Keep in step with the other backend's 0020.
--
-- Each installation looks up its contract's certificates that are still current (valid, not yet
-- superseded) through the contract's provisionings, one certificate lookup per provisioning the
-- contract ever had, growing with every installation. A provisioning is closed once its
-- certificate is superseded (scheduled or revoked with its successor's commit; certificates
-- revoked before this migration too), and the index leads with what the lookup asks for: the
-- contract's open provisionings. Lookups by contract alone use its first column as before.
ALTER TABLE provisionings ADD COLUMN closed_at INTEGER;
UPDATE provisionings SET closed_at = (
        SELECT COALESCE(c.revoked_at, 0) FROM certificates c
        WHERE c.issuer_id = provisionings.issuer_id AND c.serial_hex = provisionings.serial_hex)
    WHERE EXISTS (
        SELECT 1 FROM certificates c
        WHERE c.issuer_id = provisionings.issuer_id AND c.serial_hex = provisionings.serial_hex
          AND c.status = 'revoked');
DROP INDEX provisionings_contract;
CREATE INDEX provisionings_contract ON provisionings (contract_id, closed_at);
