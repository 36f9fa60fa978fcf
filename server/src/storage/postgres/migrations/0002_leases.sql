-- A queue shared by workers: who runs a job and until when it is theirs without a heartbeat
-- (NULL: no lease), and a cancel asked of its worker.
ALTER TABLE jobs ADD COLUMN worker TEXT;
ALTER TABLE jobs ADD COLUMN lease_until_ms BIGINT;
ALTER TABLE jobs ADD COLUMN cancel_requested BOOLEAN NOT NULL DEFAULT FALSE;
-- The API token a job came with (named tokens): queued jobs are taken round-robin between
-- owners, the one served least recently first.
ALTER TABLE jobs ADD COLUMN owner TEXT NOT NULL DEFAULT '';
CREATE INDEX jobs_by_owner ON jobs (owner, started_ms);
CREATE INDEX jobs_by_lease ON jobs (lease_until_ms) WHERE state = 'running' AND lease_until_ms IS NOT NULL;
-- Workers as they last reported themselves.
CREATE TABLE workers (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    devices     JSONB NOT NULL,
    models      JSONB NOT NULL,
    loaded      JSONB NOT NULL,
    current_job TEXT,
    started_ms  BIGINT NOT NULL,
    seen_ms     BIGINT NOT NULL
);
CREATE INDEX workers_by_seen ON workers (seen_ms);
-- The latest preview of each running job (a data URL), for web nodes to stream; not worth
-- writing ahead (lost in a crash, which loses nothing else).
CREATE UNLOGGED TABLE job_previews (
    id   TEXT PRIMARY KEY,
    url  TEXT NOT NULL
);
