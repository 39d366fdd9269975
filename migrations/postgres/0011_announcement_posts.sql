-- Spotter schema v11 (postgres): the posts Spotter made in a chat announcement channel (the
-- status page's Discord channel), so later changes of the same public subject edit the post
-- instead of posting again, even after a restart. subject: incident:pi_…, incident:pi_…:resolved,
-- maintenance:pm_…, maintenance:pm_…:completed. posted_at: Unix milliseconds.
CREATE TABLE announcement_posts (
    platform   TEXT   NOT NULL,
    channel_id TEXT   NOT NULL,
    subject    TEXT   NOT NULL,
    message_id TEXT   NOT NULL,
    posted_at  BIGINT NOT NULL,
    PRIMARY KEY (platform, channel_id, subject)
);
