-- Two lookups that read whole tables (postgres). Keep in step with the other backend's 0019.
--
-- A contract by EMAID whatever its status (the contract API, pre-generation, the compromise
-- response): the only index on emaid was the partial one of active contracts, which a query
-- without "status = 'active'" cannot use, so each lookup scanned every contract.
CREATE INDEX contracts_emaid ON contracts (emaid, created_at);

-- The current signer certificate of a profile under an issuer (the CPS and OCSP signers, the
-- only certificates whose key is in the token): the query filtered on status and validity,
-- which matched every valid certificate of the store, then sorted them. Signers are few; a
-- partial index holds only them.
CREATE INDEX certificates_signers ON certificates (issuer_id, profile, not_before)
    WHERE key_id IS NOT NULL;
