-- Spotter schema v13 (sqlite only, like v12): the claim indexes hold pending messages only.
-- Every row was in both claim indexes whatever its state, and the lane index, keyed by kind
-- first, took each new chat message in the middle of the tree: a third of an outbox insert's
-- cost (24 µs a row with a 15,000-message chat backlog, 15 µs this way). A delivered message
-- now leaves the claim indexes instead of moving inside them. The pages and broadcast lanes
-- get an index each, holding only their kind; the claims name them (`INDEXED BY`) and repeat
-- their conditions word for word, as SQLite requires to use a partial index.
DROP INDEX outbox_claim;
DROP INDEX outbox_lane_claim;
CREATE INDEX outbox_claim ON outbox (priority DESC, id) WHERE state = 'pending';
CREATE INDEX outbox_page_claim ON outbox (priority DESC, id) WHERE state = 'pending' AND kind = 'page';
CREATE INDEX outbox_broadcast_claim ON outbox (priority DESC, id)
    WHERE state = 'pending' AND kind = 'broadcast';
