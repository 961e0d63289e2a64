-- A session ended by a password reset, a password change or separation keeps its rows here,
-- marked, until every application in it has been sent its back-channel logout: the marking is
-- made in the same transaction that ends the session, so a delivery survives a restart and any
-- node can pick it up.
ALTER TABLE session_clients ADD COLUMN ended_at BIGINT;
CREATE INDEX session_clients_ended ON session_clients(ended_at);
