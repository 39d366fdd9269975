-- Spotter schema v1 (SQLite). Released migrations are never edited; add a new file instead.
--
-- Times are BIGINT Unix milliseconds (UTC) and flags are 0/1 integers: the one representation
-- both backends share through sqlx's Any driver, so one adapter serves SQLite and PostgreSQL.

-- Incidents, INC-<number>. `version` is bumped by every write (optimistic concurrency).
CREATE TABLE incidents (
    number          INTEGER PRIMARY KEY,
    level           INTEGER NOT NULL,
    title           TEXT    NOT NULL,
    components      TEXT    NOT NULL DEFAULT '',   -- comma-separated component ids
    commander       TEXT,
    source          TEXT    NOT NULL,
    state           TEXT    NOT NULL,
    phase           TEXT    NOT NULL,
    declared_by     TEXT    NOT NULL,
    declared_at     INTEGER NOT NULL,
    acknowledged_at INTEGER,
    acknowledged_by TEXT,
    resolved_at     INTEGER,
    closed_at       INTEGER,
    rto_deadline    INTEGER NOT NULL,
    summary         TEXT,
    version         INTEGER NOT NULL
);
CREATE INDEX incidents_by_state ON incidents (state, number);

-- The append-only timeline. Triggers refuse edits so history cannot be rewritten by the app.
CREATE TABLE timeline (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    incident  INTEGER NOT NULL REFERENCES incidents (number),
    at        INTEGER NOT NULL,
    actor     TEXT    NOT NULL,
    kind      TEXT    NOT NULL,
    text      TEXT    NOT NULL,
    public    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX timeline_by_incident ON timeline (incident, id);
CREATE TRIGGER timeline_no_update BEFORE UPDATE ON timeline
BEGIN SELECT RAISE(ABORT, 'the timeline is append-only'); END;
CREATE TRIGGER timeline_no_delete BEFORE DELETE ON timeline
BEGIN SELECT RAISE(ABORT, 'the timeline is append-only'); END;

-- The hash-chained audit log (see core/src/audit.rs) and its head, which guards the end of the
-- chain and, on PostgreSQL, is the row every writer locks to keep the chain linear.
CREATE TABLE audit_log (
    seq       INTEGER PRIMARY KEY,
    at        INTEGER NOT NULL,
    actor     TEXT    NOT NULL,
    action    TEXT    NOT NULL,
    subject   TEXT    NOT NULL,
    detail    TEXT    NOT NULL,
    prev_hash TEXT    NOT NULL,
    hash      TEXT    NOT NULL
);
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash TEXT    NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- The transactional outbox: every outbound message, written with the change that caused it.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    channel         TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    target          TEXT    NOT NULL,
    incident        INTEGER,
    text            TEXT    NOT NULL,
    priority        INTEGER NOT NULL DEFAULT 0,
    idempotency_key TEXT    NOT NULL UNIQUE,
    ordering_key    TEXT    NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'pending',  -- pending | delivered | failed
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_owner     TEXT,
    lease_until     INTEGER,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    delivered_at    INTEGER
);
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);
CREATE INDEX outbox_ordering ON outbox (ordering_key, state, id);

-- Scheduled work (RTO breaches, escalation tiers), claimable by one replica at a time.
CREATE TABLE jobs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    job_key     TEXT    NOT NULL UNIQUE,
    kind        TEXT    NOT NULL,
    incident    INTEGER,
    due_at      INTEGER NOT NULL,
    payload     TEXT    NOT NULL DEFAULT '{}',
    state       TEXT    NOT NULL DEFAULT 'pending',      -- pending | done | cancelled
    attempts    INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until INTEGER,
    created_at  INTEGER NOT NULL,
    done_at     INTEGER
);
CREATE INDEX jobs_due ON jobs (state, due_at);
