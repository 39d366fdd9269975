-- Where each incident's conversation lives on a chat platform (a Discord channel or thread),
-- and the message holding its live card. Commands typed in that channel default to the incident.
CREATE TABLE chat_bindings (
    incident        BIGINT NOT NULL REFERENCES incidents (number),
    platform        TEXT   NOT NULL,
    channel_id      TEXT   NOT NULL,
    card_message_id TEXT,
    PRIMARY KEY (incident, platform)
);
CREATE UNIQUE INDEX chat_bindings_by_channel ON chat_bindings (platform, channel_id);
