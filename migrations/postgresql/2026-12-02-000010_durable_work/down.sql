DROP INDEX registration_tokens_expires;
DROP INDEX one_time_passwords_expires;
DROP INDEX sessions_expires;
INSERT INTO session_clients (sid, client_id, account_id, created_at, ended_at)
    SELECT sid, client_id, account_id, created_at, created_at FROM logout_outbox WHERE done_at IS NULL;
DROP INDEX logout_outbox_due;
DROP TABLE logout_outbox;
