-- Idempotency-Key on revocation and contract provisioning (sqlite). Keep in step with the other
-- backend's 0012. A revocation keeps its outcome here, a provisioning the answer it delivered
-- (the EXI carries the contract key encrypted for the car, readable by that car only), so a
-- retry gets the same answer without revoking or issuing again. Written in the transaction of
-- the revocation or certificate it belongs to; purged with the key after 24 h.
ALTER TABLE idempotency_keys ADD COLUMN response BLOB;
