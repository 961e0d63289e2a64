-- Back-channel logout deliveries owed, one row per (session, client): any node claims due rows
-- (moving next_attempt_at forward as a lease, attempts up by one), delivers, and marks the row
-- done or due again after the retry delay. Finished rows are kept for a while for operators and
-- purged by the clean-up.
CREATE TABLE logout_outbox (
    sid TEXT NOT NULL,
    client_id TEXT NOT NULL,
    account_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    done_at BIGINT,
    outcome TEXT,
    PRIMARY KEY (sid, client_id)
);
CREATE INDEX logout_outbox_due ON logout_outbox(done_at, next_attempt_at);

-- What the previous queue (session_clients.ended_at) still owed moves into the outbox.
INSERT INTO logout_outbox (sid, client_id, account_id, created_at, next_attempt_at, attempts)
    SELECT sid, client_id, account_id, ended_at, ended_at, 0 FROM session_clients WHERE ended_at IS NOT NULL;
DELETE FROM session_clients WHERE ended_at IS NOT NULL;

-- The clean-up finds expired rows by these.
CREATE INDEX sessions_expires ON sessions(expires_at);
CREATE INDEX one_time_passwords_expires ON one_time_passwords(expires_at);
CREATE INDEX registration_tokens_expires ON registration_tokens(expires_at);
