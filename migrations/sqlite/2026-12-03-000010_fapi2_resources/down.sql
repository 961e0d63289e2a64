ALTER TABLE refresh_tokens DROP COLUMN resource;
DROP INDEX clients_resource_uri;
ALTER TABLE clients DROP COLUMN resource_uri;
ALTER TABLE clients DROP COLUMN fapi2;
