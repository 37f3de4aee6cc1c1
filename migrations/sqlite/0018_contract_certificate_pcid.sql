-- Contract certificates carry the PCID of the vehicle they were made for (sqlite). Keep in step with
-- the other backend's 0018.
--
-- Issuance now records it (the contract's PCID); certificates issued before are given it from
-- the contract their provisioning or pre-generated answer belongs to, so that a vehicle finds
-- its contract certificates (CLI, API and console search).
UPDATE certificates
SET pcid = (
    SELECT c.pcid FROM provisionings p JOIN contracts c ON c.id = p.contract_id
    WHERE p.issuer_id = certificates.issuer_id AND p.serial_hex = certificates.serial_hex
)
WHERE pcid IS NULL AND EXISTS (
    SELECT 1 FROM provisionings p JOIN contracts c ON c.id = p.contract_id
    WHERE p.issuer_id = certificates.issuer_id AND p.serial_hex = certificates.serial_hex
);

UPDATE certificates
SET pcid = (
    SELECT MIN(c.pcid) FROM pregenerated g JOIN contracts c ON c.id = g.contract_id
    WHERE g.issuer_id = certificates.issuer_id AND g.serial_hex = certificates.serial_hex
)
WHERE pcid IS NULL AND EXISTS (
    SELECT 1 FROM pregenerated g JOIN contracts c ON c.id = g.contract_id
    WHERE g.issuer_id = certificates.issuer_id AND g.serial_hex = certificates.serial_hex
);
