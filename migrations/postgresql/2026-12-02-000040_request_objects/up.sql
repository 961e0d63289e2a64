-- Signed request objects (RFC 9101): the algorithm a client signs them with (NULL: any of
-- RS256, PS256, ES256) and whether its authorization requests must come as one.
ALTER TABLE clients ADD COLUMN request_object_signing_alg TEXT;
ALTER TABLE clients ADD COLUMN require_signed_request_object BOOLEAN NOT NULL DEFAULT FALSE;
