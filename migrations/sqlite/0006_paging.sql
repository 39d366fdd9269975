-- Spotter schema v6 (sqlite): paging real people.
--
-- incidents.escalation_tier: the tier of the escalation matrix last paged (0-based), so an
-- expired acknowledgement or an RTO warning pages the row the incident had reached.
-- outbox.payload: what a page carries beyond its text (person, contact method, tier, the id of
-- its acknowledgement link), as JSON. Pages of one incident are found (and cancelled on
-- acknowledgement) through outbox_pages.
ALTER TABLE incidents ADD COLUMN escalation_tier INTEGER;
ALTER TABLE outbox ADD COLUMN payload TEXT;
CREATE INDEX outbox_pages ON outbox (incident, kind, state);
CREATE INDEX outbox_lanes ON outbox (state, kind, next_attempt_at);

-- One-time acknowledgement links carried by pages: bound to one person and one incident. The
-- link's token is an HMAC of its id under a key that is not in the database, so whoever reads
-- this table cannot acknowledge anything.
CREATE TABLE ack_links (
    id         TEXT   PRIMARY KEY,
    incident   INTEGER NOT NULL REFERENCES incidents (number),
    person     TEXT   NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
);

-- /oncall override: someone else on call for a rotation for a while.
CREATE TABLE rotation_overrides (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    rotation   TEXT   NOT NULL,
    person     TEXT   NOT NULL,
    starts_at  INTEGER NOT NULL,
    ends_at    INTEGER NOT NULL,
    created_by TEXT   NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX rotation_overrides_by_end ON rotation_overrides (rotation, ends_at);
