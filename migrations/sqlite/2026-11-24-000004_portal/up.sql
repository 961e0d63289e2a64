-- Roles granted by operators (helpdesk, operator). Employee and HR staff come from the register.
CREATE TABLE account_roles (
    account_id TEXT NOT NULL REFERENCES accounts(id),
    role TEXT NOT NULL,
    granted_by TEXT NOT NULL,
    granted_at BIGINT NOT NULL,
    PRIMARY KEY (account_id, role)
);

-- Who may use an application and how the portal shows it.
ALTER TABLE clients ADD COLUMN audience TEXT NOT NULL DEFAULT 'everyone';
ALTER TABLE clients ADD COLUMN portal_category TEXT;
ALTER TABLE clients ADD COLUMN portal_description TEXT;
ALTER TABLE clients ADD COLUMN portal_url TEXT;
ALTER TABLE clients ADD COLUMN disabled_at BIGINT;

-- 最新公告: announcements by operators.
CREATE TABLE announcements (
    id TEXT PRIMARY KEY NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    published_at BIGINT NOT NULL,
    expires_at BIGINT,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX announcements_published ON announcements(published_at);
CREATE INDEX audit_events_event_at ON audit_events(event, at);
