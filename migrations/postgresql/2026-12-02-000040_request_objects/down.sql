ALTER TABLE clients DROP COLUMN require_signed_request_object;
ALTER TABLE clients DROP COLUMN request_object_signing_alg;
