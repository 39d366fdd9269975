-- Spotter schema v10 (postgres): the status page's subscribers and what has been announced.
--
-- A subscriber is a signed webhook (its secret stays in the environment variable secret_env
-- names) or an email address, confirmed by a link before it gets anything (double opt-in).
-- Removed subscribers are kept for the record; one address has at most one live subscription.
-- components: comma-separated component ids, empty for all. Times are Unix milliseconds.
CREATE TABLE subscribers (
    id           BIGINT PRIMARY KEY,
    kind         TEXT    NOT NULL,
    address      TEXT    NOT NULL,
    secret_env   TEXT,
    components   TEXT    NOT NULL DEFAULT '',
    state        TEXT    NOT NULL,
    created_at   BIGINT NOT NULL,
    created_by   TEXT    NOT NULL,
    confirmed_at BIGINT,
    removed_at   BIGINT
);
CREATE UNIQUE INDEX subscribers_live_address ON subscribers (kind, address) WHERE state <> 'removed';

-- The last thing announced about each public subject (incident:pi_…, component:<id>,
-- maintenance:<id>): the announcer writes it in the transaction that queues the broadcasts,
-- conditional on what it read, so a change is announced once across replicas and crashes.
CREATE TABLE status_notices (
    subject    TEXT    PRIMARY KEY,
    state      TEXT    NOT NULL,
    updated_at BIGINT NOT NULL
);
