-- A queue shared by workers: who runs a job and until when it is theirs without a heartbeat
-- (NULL: the embedded worker, recovered at start instead), and a cancel asked of its worker.
ALTER TABLE jobs ADD COLUMN worker TEXT;
ALTER TABLE jobs ADD COLUMN lease_until_ms INTEGER;
ALTER TABLE jobs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
-- The API token a job came with (named tokens): queued jobs are taken round-robin between
-- owners, the one served least recently first.
ALTER TABLE jobs ADD COLUMN owner TEXT NOT NULL DEFAULT '';
CREATE INDEX jobs_by_owner ON jobs (owner, started_ms);
CREATE INDEX jobs_by_lease ON jobs (lease_until_ms) WHERE state = 'running' AND lease_until_ms IS NOT NULL;
-- Workers as they last reported themselves (`devices`, `models`, `loaded`: JSON arrays).
CREATE TABLE workers (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    devices     TEXT NOT NULL,
    models      TEXT NOT NULL,
    loaded      TEXT NOT NULL,
    current_job TEXT,
    started_ms  INTEGER NOT NULL,
    seen_ms     INTEGER NOT NULL
);
CREATE INDEX workers_by_seen ON workers (seen_ms);
