-- Signing-key rotation: a key is published from `created_at`, signs from `activates_at`, and
-- stops signing at `retired_at` (its successor's activation); see idp/src/oidc/keys.rs.
-- Existing keys have been signing since they were made.
ALTER TABLE signing_keys ADD COLUMN activates_at BIGINT NOT NULL DEFAULT 0;
UPDATE signing_keys SET activates_at = created_at;
