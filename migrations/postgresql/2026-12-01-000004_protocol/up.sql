-- Operator permissions a client's own metadata cannot grant: client_credentials for a
-- dynamically registered client, and introspecting tokens issued to other clients.
ALTER TABLE clients ADD COLUMN client_credentials_allowed BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE clients ADD COLUMN resource_server BOOLEAN NOT NULL DEFAULT FALSE;
