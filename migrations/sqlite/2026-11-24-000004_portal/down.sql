DROP INDEX audit_events_event_at;
DROP TABLE announcements;
ALTER TABLE clients DROP COLUMN disabled_at;
ALTER TABLE clients DROP COLUMN portal_url;
ALTER TABLE clients DROP COLUMN portal_description;
ALTER TABLE clients DROP COLUMN portal_category;
ALTER TABLE clients DROP COLUMN audience;
DROP TABLE account_roles;
