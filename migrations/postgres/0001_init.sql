-- Spotter schema v1 (PostgreSQL). Released migrations are never edited; add a new file instead.
--
-- Times are BIGINT Unix milliseconds (UTC) and flags are 0/1 integers: the one representation
-- both backends share through sqlx's Any driver, so one adapter serves SQLite and PostgreSQL.

-- Incidents, INC-<number>. `version` is bumped by every write (optimistic concurrency).
CREATE TABLE incidents (
    number          BIGINT PRIMARY KEY,
    level           BIGINT NOT NULL,
    title           TEXT   NOT NULL,
    components      TEXT   NOT NULL DEFAULT '',   -- comma-separated component ids
    commander       TEXT,
    source          TEXT   NOT NULL,
    state           TEXT   NOT NULL,
    phase           TEXT   NOT NULL,
    declared_by     TEXT   NOT NULL,
    declared_at     BIGINT NOT NULL,
    acknowledged_at BIGINT,
    acknowledged_by TEXT,
    resolved_at     BIGINT,
    closed_at       BIGINT,
    rto_deadline    BIGINT NOT NULL,
    summary         TEXT,
    version         BIGINT NOT NULL
);
CREATE INDEX incidents_by_state ON incidents (state, number);

-- The append-only timeline. A trigger refuses edits so history cannot be rewritten by the app.
CREATE TABLE timeline (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    incident  BIGINT NOT NULL REFERENCES incidents (number),
    at        BIGINT NOT NULL,
    actor     TEXT   NOT NULL,
    kind      TEXT   NOT NULL,
    text      TEXT   NOT NULL,
    public    BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX timeline_by_incident ON timeline (incident, id);
CREATE FUNCTION timeline_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the timeline is append-only';
END;
$$;
CREATE TRIGGER timeline_no_change BEFORE UPDATE OR DELETE ON timeline
FOR EACH ROW EXECUTE FUNCTION timeline_append_only();

-- The hash-chained audit log (see core/src/audit.rs) and its head, which guards the end of the
-- chain and is the row every writer locks (SELECT … FOR UPDATE) to keep the chain linear when
-- several replicas share the database.
CREATE TABLE audit_log (
    seq       BIGINT PRIMARY KEY,
    at        BIGINT NOT NULL,
    actor     TEXT   NOT NULL,
    action    TEXT   NOT NULL,
    subject   TEXT   NOT NULL,
    detail    TEXT   NOT NULL,
    prev_hash TEXT   NOT NULL,
    hash      TEXT   NOT NULL
);
CREATE TABLE audit_head (
    id   BIGINT PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash TEXT   NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- The transactional outbox: every outbound message, written with the change that caused it.
CREATE TABLE outbox (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel         TEXT   NOT NULL,
    kind            TEXT   NOT NULL,
    target          TEXT   NOT NULL,
    incident        BIGINT,
    text            TEXT   NOT NULL,
    priority        BIGINT NOT NULL DEFAULT 0,
    idempotency_key TEXT   NOT NULL UNIQUE,
    ordering_key    TEXT   NOT NULL,
    state           TEXT   NOT NULL DEFAULT 'pending',  -- pending | delivered | failed
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_owner     TEXT,
    lease_until     BIGINT,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    delivered_at    BIGINT
);
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);
CREATE INDEX outbox_ordering ON outbox (ordering_key, state, id);

-- Scheduled work (RTO breaches, escalation tiers), claimable by one replica at a time.
CREATE TABLE jobs (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_key     TEXT   NOT NULL UNIQUE,
    kind        TEXT   NOT NULL,
    incident    BIGINT,
    due_at      BIGINT NOT NULL,
    payload     TEXT   NOT NULL DEFAULT '{}',
    state       TEXT   NOT NULL DEFAULT 'pending',      -- pending | done | cancelled
    attempts    BIGINT NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until BIGINT,
    created_at  BIGINT NOT NULL,
    done_at     BIGINT
);
CREATE INDEX jobs_due ON jobs (state, due_at);
