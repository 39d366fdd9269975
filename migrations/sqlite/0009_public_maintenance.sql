-- Spotter schema v9 (sqlite): scheduled maintenance on the status page. A window with public = 1
-- is announced there (upcoming, in progress, completed); its reason is its public title.
ALTER TABLE maintenance ADD COLUMN public INTEGER NOT NULL DEFAULT 0;
