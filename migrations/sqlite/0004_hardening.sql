-- Spotter schema v4 (SQLite): an append-only audit log, cancelling jobs by incident and kind
-- through an index, dead-lettered jobs, indexes for retention, and the signatures seen by
-- signed intake (replay protection that survives restarts and spans replicas).

-- The audit log is append-only like the timeline: the application never edits or deletes it.
-- (SQLite has no TRUNCATE; its DELETE-without-WHERE shortcut is off when a delete trigger exists.)
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;

-- Jobs: why the last attempt failed (a dead letter keeps it), and the index that cancels an
-- incident's pending jobs of one kind.
ALTER TABLE jobs ADD COLUMN last_error TEXT;
CREATE INDEX jobs_by_incident ON jobs (incident, kind, state);

-- Retention deletes finished rows oldest first, in small batches.
CREATE INDEX jobs_finished ON jobs (state, done_at);
CREATE INDEX outbox_finished ON outbox (state, delivered_at);
CREATE INDEX alerts_by_change ON alerts (status, changed_at);

-- Signatures of signed intake requests, kept until their timestamp window closes.
CREATE TABLE seen_signatures (
    signature  TEXT    PRIMARY KEY,
    expires_at INTEGER NOT NULL
);
CREATE INDEX seen_signatures_expiry ON seen_signatures (expires_at);
