-- Spotter schema v7 (sqlite): runbook runs, their approvals and their steps.
--
-- A run's lock_key (`runbook:target`) is unique among active runs (pending_approval, approved,
-- running) through a partial unique index, so two requests for the same runbook and target
-- cannot both be active, on any replica. owner/lease_until name the worker executing it; a
-- running run whose lease lapsed belongs to a worker that died, and is marked interrupted
-- (never re-run). Output is stored redacted. Times are Unix milliseconds.
CREATE TABLE runbook_runs (
    id               INTEGER PRIMARY KEY,
    runbook          TEXT    NOT NULL,
    incident         INTEGER REFERENCES incidents (number),
    level            INTEGER,
    lock_key         TEXT    NOT NULL,
    state            TEXT    NOT NULL,
    params           TEXT    NOT NULL,
    requested_by     TEXT    NOT NULL,
    requested_at     INTEGER NOT NULL,
    gate             INTEGER NOT NULL,
    needed           INTEGER NOT NULL,
    role             TEXT    NOT NULL,
    expires_at       INTEGER,
    owner            TEXT,
    lease_until      INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    started_at       INTEGER,
    finished_at      INTEGER,
    outcome          TEXT,
    version          INTEGER NOT NULL
);
CREATE UNIQUE INDEX runbook_runs_one_active ON runbook_runs (lock_key)
    WHERE state IN ('pending_approval', 'approved', 'running');
CREATE INDEX runbook_runs_by_state ON runbook_runs (state, lease_until);
CREATE INDEX runbook_runs_by_incident ON runbook_runs (incident, id);

CREATE TABLE run_approvals (
    run      INTEGER NOT NULL REFERENCES runbook_runs (id),
    gate     INTEGER NOT NULL,
    person   TEXT    NOT NULL,
    decision TEXT    NOT NULL,
    at       INTEGER NOT NULL,
    PRIMARY KEY (run, gate, person, decision)
);

CREATE TABLE run_steps (
    run         INTEGER NOT NULL REFERENCES runbook_runs (id),
    idx         INTEGER NOT NULL,
    step_id     TEXT    NOT NULL,
    state       TEXT    NOT NULL,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER,
    detail      TEXT    NOT NULL,
    output      TEXT    NOT NULL,
    PRIMARY KEY (run, idx)
);
