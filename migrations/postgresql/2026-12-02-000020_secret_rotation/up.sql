-- Client secret rotation with overlap: the secret an operator replaced keeps working, next to the
-- new one, until previous_secret_expires_at (epoch seconds). Both NULL when there is no overlap.
-- Only the SHA-256 is kept, as for the current secret.
ALTER TABLE clients ADD COLUMN previous_secret_hash TEXT;
ALTER TABLE clients ADD COLUMN previous_secret_expires_at BIGINT;
