-- Spotter schema v12 (sqlite only: PostgreSQL plans the claim from its statistics and keeps its
-- indexes): the outbox's claim walks its candidates in the order it takes them
-- (priority, then age), so it stops after the messages it takes instead of reading every pending
-- row and sorting: a chat backlog of 17,000 messages (a storm of declarations, delivered at
-- Discord's pace) made each claim 16 ms, 0.2 ms this way. The pages and broadcast lanes take
-- one kind; the chat lane takes every other kind. These replace the indexes by due time, which
-- only the claim used.
DROP INDEX outbox_due;
DROP INDEX outbox_lanes;
CREATE INDEX outbox_claim ON outbox (state, priority DESC, id);
CREATE INDEX outbox_lane_claim ON outbox (state, kind, priority DESC, id);
