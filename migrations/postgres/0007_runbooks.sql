-- Spotter schema v7 (postgres): runbook runs, their approvals and their steps.
--
-- A run's lock_key (`runbook:target`) is unique among active runs (pending_approval, approved,
-- running) through a partial unique index, so two requests for the same runbook and target
-- cannot both be active, on any replica. owner/lease_until name the worker executing it; a
-- running run whose lease lapsed belongs to a worker that died, and is marked interrupted
-- (never re-run). Output is stored redacted. Times are Unix milliseconds.
CREATE TABLE runbook_runs (
    id               BIGINT PRIMARY KEY,
    runbook          TEXT    NOT NULL,
    incident         BIGINT REFERENCES incidents (number),
    level            BIGINT,
    lock_key         TEXT    NOT NULL,
    state            TEXT    NOT NULL,
    params           TEXT    NOT NULL,
    requested_by     TEXT    NOT NULL,
    requested_at     BIGINT NOT NULL,
    gate             BIGINT NOT NULL,
    needed           BIGINT NOT NULL,
    role             TEXT    NOT NULL,
    expires_at       BIGINT,
    owner            TEXT,
    lease_until      BIGINT,
    cancel_requested BIGINT NOT NULL DEFAULT 0,
    started_at       BIGINT,
    finished_at      BIGINT,
    outcome          TEXT,
    version          BIGINT NOT NULL
);
CREATE UNIQUE INDEX runbook_runs_one_active ON runbook_runs (lock_key)
    WHERE state IN ('pending_approval', 'approved', 'running');
CREATE INDEX runbook_runs_by_state ON runbook_runs (state, lease_until);
CREATE INDEX runbook_runs_by_incident ON runbook_runs (incident, id);

CREATE TABLE run_approvals (
    run      BIGINT NOT NULL REFERENCES runbook_runs (id),
    gate     BIGINT NOT NULL,
    person   TEXT    NOT NULL,
    decision TEXT    NOT NULL,
    at       BIGINT NOT NULL,
    PRIMARY KEY (run, gate, person, decision)
);

CREATE TABLE run_steps (
    run         BIGINT NOT NULL REFERENCES runbook_runs (id),
    idx         BIGINT NOT NULL,
    step_id     TEXT    NOT NULL,
    state       TEXT    NOT NULL,
    started_at  BIGINT NOT NULL,
    finished_at BIGINT,
    detail      TEXT    NOT NULL,
    output      TEXT    NOT NULL,
    PRIMARY KEY (run, idx)
);
