-- E-mail verification. accounts.email_verified_at: when the account's current e-mail was proven
-- (a verification link followed); NULL while it is not, and set back to NULL whenever the
-- address changes. One row per link mailed: only the SHA-256 of its token is kept, with the
-- account and the exact address it was sent for, when it expires and when it was used (a link
-- works once, and only while that address is still the account's).
ALTER TABLE accounts ADD COLUMN email_verified_at BIGINT;
CREATE TABLE email_verifications (
    token_hash TEXT PRIMARY KEY NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    email TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX email_verifications_account ON email_verifications (account_id);
CREATE INDEX email_verifications_expiry ON email_verifications (expires_at);
