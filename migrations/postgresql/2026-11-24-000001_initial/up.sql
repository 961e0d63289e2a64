-- Portable schema: TEXT ids, BIGINT epoch seconds, states as TEXT.
CREATE TABLE agencies (
    code TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    parent_code TEXT,
    oid TEXT,
    updated_at BIGINT NOT NULL
);

-- The personnel register. The national ID is stored sealed (AES-GCM) with a keyed HMAC index
-- for look-ups; it never appears in clear at rest.
CREATE TABLE people (
    id TEXT PRIMARY KEY NOT NULL,
    national_id_index TEXT NOT NULL UNIQUE,
    national_id_sealed TEXT NOT NULL,
    name TEXT NOT NULL,
    agency_code TEXT NOT NULL REFERENCES agencies(code),
    unit TEXT NOT NULL,
    person_category TEXT NOT NULL,
    concurrent_duty TEXT NOT NULL,
    status TEXT NOT NULL,
    email TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- One account per register person; `id` is the opaque subject given to applications.
CREATE TABLE accounts (
    id TEXT PRIMARY KEY NOT NULL,
    person_id TEXT NOT NULL UNIQUE REFERENCES people(id),
    account_name TEXT,
    account_name_key TEXT UNIQUE,
    email TEXT,
    password_hash TEXT,
    state TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE one_time_passwords (
    account_id TEXT PRIMARY KEY NOT NULL REFERENCES accounts(id),
    password_hash TEXT NOT NULL,
    issued_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE clients (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    secret_hash TEXT,
    kind TEXT NOT NULL,
    redirect_uris TEXT NOT NULL,
    post_logout_redirect_uris TEXT NOT NULL,
    id_token_alg TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- SSO sessions live in the database so a restart or another node keeps them.
CREATE TABLE sessions (
    id TEXT PRIMARY KEY NOT NULL,
    sid TEXT NOT NULL UNIQUE,
    account_id TEXT NOT NULL REFERENCES accounts(id),
    auth_time BIGINT NOT NULL,
    acr TEXT NOT NULL,
    amr TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_account_id ON sessions(account_id);

CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY NOT NULL,
    alg TEXT NOT NULL,
    private_sealed TEXT NOT NULL,
    public_jwk TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    retired_at BIGINT
);

CREATE TABLE audit_events (
    id TEXT PRIMARY KEY NOT NULL,
    at BIGINT NOT NULL,
    event TEXT NOT NULL,
    outcome TEXT NOT NULL,
    actor TEXT,
    account_id TEXT,
    client_id TEXT,
    address TEXT,
    detail TEXT NOT NULL
);
CREATE INDEX audit_events_at ON audit_events(at);
