-- Pushed authorization requests (RFC 9126 §6) and DPoP (RFC 9449 §5.2) as client metadata: a
-- client that requires PAR is refused at /authorize unless the request was pushed, and one with
-- DPoP-bound access tokens is refused at the token endpoint without a DPoP proof.
ALTER TABLE clients ADD COLUMN require_pushed_authorization_requests BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE clients ADD COLUMN dpop_bound_access_tokens BOOLEAN NOT NULL DEFAULT FALSE;
-- A public client's refresh token is bound to the DPoP key of the request that got it (RFC 9449
-- §5): the JWK SHA-256 thumbprint, NULL for an unbound token.
ALTER TABLE refresh_tokens ADD COLUMN dpop_jkt TEXT;
