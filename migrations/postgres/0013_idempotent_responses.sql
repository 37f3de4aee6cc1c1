-- Idempotency-Key on revocation, contract provisioning and contract cancellation (postgres). Keep
-- in step with the other backend's 0013. What a retry must answer and the store cannot rebuild
-- is kept here: a revocation's outcome, a provisioning's answer (the EXI carries the contract key
-- encrypted for the car, readable by that car only), a cancellation's list of certificates it
-- revokes (issuer_id 'contract', serial_hex the contract id). Written in the transaction of the
-- revocation, certificate or cancellation it belongs to; purged with the key after 24 h.
ALTER TABLE idempotency_keys ADD COLUMN response BYTEA;
