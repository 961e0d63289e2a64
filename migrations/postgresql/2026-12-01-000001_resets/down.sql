DROP INDEX session_clients_ended;
ALTER TABLE session_clients DROP COLUMN ended_at;
