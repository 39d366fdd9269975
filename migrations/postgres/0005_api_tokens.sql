-- Spotter schema v5 (PostgreSQL): per-person API tokens (`spotter token create --person dba`).
--
-- A request with one of these acts as its person, with that person's roles; the shared token
-- stays for automation, limited to `api.shared_token_role`. Only the SHA-256 of a token is kept
-- (the token is printed once, at creation); `id` is the public part of the token, so a request's
-- row is found by key and its hash compared in constant time. Revoked rows stay, so `token list`
-- shows them and an id is never handed out twice. Times are Unix milliseconds.
CREATE TABLE api_tokens (
    id           TEXT   PRIMARY KEY,
    person       TEXT   NOT NULL,
    hash         TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    revoked_at   BIGINT,
    last_used_at BIGINT
);
CREATE INDEX api_tokens_by_person ON api_tokens (person, created_at);
