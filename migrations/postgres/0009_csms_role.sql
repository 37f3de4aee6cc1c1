-- The OCPP csms role (postgres). Keep in step with the other backend's 0009.
ALTER TABLE api_clients DROP CONSTRAINT api_clients_role_check;
ALTER TABLE api_clients ADD CONSTRAINT api_clients_role_check
    CHECK (role IN ('cpo', 'mo', 'oem', 'cps', 'csms', 'admin', 'auditor'));
