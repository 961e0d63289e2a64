ALTER TABLE clients DROP COLUMN resource_server;
ALTER TABLE clients DROP COLUMN client_credentials_allowed;
