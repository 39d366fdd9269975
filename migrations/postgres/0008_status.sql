-- Spotter schema v8 (postgres): the public status page.
--
-- A public incident is separate from its internal incident (one each at most): its own title,
-- impact, status and updates, so nothing internal reaches the page. Ids are random and public.
-- A component override is a commander's word on a component's public status; it ends with the
-- incident it was set during (or by hand). A hold keeps an incident off the page. Times are Unix
-- milliseconds.
CREATE TABLE public_incidents (
    id          TEXT    PRIMARY KEY,
    incident    BIGINT NOT NULL UNIQUE REFERENCES incidents (number),
    name        TEXT    NOT NULL,
    impact      TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    components  TEXT    NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    resolved_at BIGINT,
    version     BIGINT NOT NULL
);
CREATE INDEX public_incidents_by_update ON public_incidents (updated_at);

CREATE TABLE public_updates (
    id              TEXT    PRIMARY KEY,
    public_incident TEXT    NOT NULL REFERENCES public_incidents (id),
    status          TEXT    NOT NULL,
    body            TEXT    NOT NULL,
    -- 1, 2, 3… within its public incident: the order of updates made in the same millisecond.
    position        INTEGER NOT NULL,
    created_at      BIGINT NOT NULL
);
CREATE UNIQUE INDEX public_updates_by_incident ON public_updates (public_incident, position);

CREATE TABLE component_overrides (
    component TEXT    PRIMARY KEY,
    status    TEXT    NOT NULL,
    incident  BIGINT,
    set_by    TEXT    NOT NULL,
    set_at    BIGINT NOT NULL
);

CREATE TABLE status_holds (
    incident BIGINT PRIMARY KEY REFERENCES incidents (number),
    held_by  TEXT    NOT NULL,
    held_at  BIGINT NOT NULL
);
