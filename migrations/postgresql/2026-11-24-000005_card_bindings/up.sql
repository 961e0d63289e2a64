-- Certificates bound to accounts. Looked up by issuer + serial, and by the public-key hash so a
-- renewed certificate for the same card key still finds its account.
CREATE TABLE card_bindings (
    id TEXT PRIMARY KEY NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts(id),
    kind TEXT NOT NULL,
    issuer TEXT NOT NULL,
    serial TEXT NOT NULL,
    spki_sha256 TEXT NOT NULL,
    subject TEXT NOT NULL,
    agency_code TEXT,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT
);
CREATE UNIQUE INDEX card_bindings_issuer_serial ON card_bindings(issuer, serial);
CREATE INDEX card_bindings_spki ON card_bindings(spki_sha256);
CREATE INDEX card_bindings_account ON card_bindings(account_id);

-- A session opened with an agency card acts for that agency.
ALTER TABLE sessions ADD COLUMN acting_agency TEXT;
