-- The FAPI 2.0 Security Profile as an operator's per-client setting: private_key_jwt only,
-- pushed requests, PKCE S256, DPoP-bound tokens, codes of at most 60 s.
ALTER TABLE clients ADD COLUMN fapi2 BOOLEAN NOT NULL DEFAULT FALSE;
-- Resource indicators (RFC 8707): the URI a resource server (an API) is asked for by. An access
-- token asked for with `resource` carries it as its audience; one API per URI.
ALTER TABLE clients ADD COLUMN resource_uri TEXT;
CREATE UNIQUE INDEX clients_resource_uri ON clients (resource_uri);
-- The resource the grant was for: every access token refreshed from it is for that API too.
ALTER TABLE refresh_tokens ADD COLUMN resource TEXT;
