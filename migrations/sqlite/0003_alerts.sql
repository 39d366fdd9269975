-- Alert intake: the last known state of every alert, which incident each alert group feeds,
-- maintenance windows, and heartbeats (the dead man's switch).

-- One row per alert (source + fingerprint). A notification that repeats this row's status
-- changes nothing, which is what makes Alertmanager HA duplicates harmless.
CREATE TABLE alerts (
    source         TEXT   NOT NULL,
    fingerprint    TEXT   NOT NULL,
    status         TEXT   NOT NULL,          -- firing | resolved
    labels         TEXT   NOT NULL,          -- JSON object
    annotations    TEXT   NOT NULL,          -- JSON object
    summary        TEXT   NOT NULL,
    group_key      TEXT   NOT NULL,
    incident       BIGINT REFERENCES incidents (number),
    starts_at      BIGINT,
    ends_at        BIGINT,
    first_seen_at  BIGINT NOT NULL,
    changed_at     BIGINT NOT NULL,
    recent_changes TEXT   NOT NULL DEFAULT '[]',  -- JSON array of change times (flap detection)
    flapping       BIGINT NOT NULL DEFAULT 0,
    suppressed_by  BIGINT,                   -- maintenance window id, when suppressed
    version        BIGINT NOT NULL DEFAULT 0,  -- optimistic concurrency (HA duplicates race)
    PRIMARY KEY (source, fingerprint)
);
CREATE INDEX alerts_by_incident ON alerts (incident, status);

-- Which incident an alert group currently feeds.
CREATE TABLE alert_groups (
    source    TEXT   NOT NULL,
    group_key TEXT   NOT NULL,
    incident  BIGINT NOT NULL REFERENCES incidents (number),
    PRIMARY KEY (source, group_key)
);

-- Maintenance windows: matching alerts are recorded but open no incident and page nobody.
CREATE TABLE maintenance (
    id         BIGINT PRIMARY KEY,
    components TEXT   NOT NULL,              -- comma-separated component ids
    starts_at  BIGINT NOT NULL,
    ends_at    BIGINT NOT NULL,
    reason     TEXT   NOT NULL,
    created_by TEXT   NOT NULL,
    ended_at   BIGINT,
    ended_by   TEXT
);

-- The dead man's switch: when the heartbeat alert was last seen, and the incident it opened.
CREATE TABLE heartbeats (
    name      TEXT   PRIMARY KEY,
    last_seen BIGINT NOT NULL,
    incident  BIGINT REFERENCES incidents (number)
);
