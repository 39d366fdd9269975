-- Spotter schema v14: each index by state holds only the rows its queries ask for, so a new job
-- or message enters fewer indexes and a finished one moves in none. A storm of declarations
-- writes six jobs and three chat messages per incident: before, each job entered five B-trees
-- (one of them the finished-jobs index, under state 'pending') and each message six (the pages
-- index, for a chat message; the finished index, while pending). Every query these serve names
-- the index's condition in its own WHERE clause, word for word, as SQLite requires to use a
-- partial index (the purges, the claims, the cancellations, the metrics counts).
DROP INDEX jobs_due;
DROP INDEX jobs_by_incident;
DROP INDEX jobs_finished;
CREATE INDEX jobs_due ON jobs (due_at) WHERE state = 'pending';
CREATE INDEX jobs_by_incident ON jobs (incident, kind) WHERE state = 'pending';
CREATE INDEX jobs_finished ON jobs (done_at) WHERE state IN ('done', 'cancelled', 'dead');

DROP INDEX outbox_finished;
DROP INDEX outbox_pages;
DROP INDEX outbox_ordering;
CREATE INDEX outbox_delivered ON outbox (delivered_at) WHERE state = 'delivered';
CREATE INDEX outbox_cancelled ON outbox (created_at) WHERE state = 'cancelled';
CREATE INDEX outbox_failed ON outbox (kind, ordering_key) WHERE state = 'failed';
CREATE INDEX outbox_pages ON outbox (incident, state) WHERE kind = 'page';
CREATE INDEX outbox_ordering ON outbox (ordering_key, id) WHERE state = 'pending';
