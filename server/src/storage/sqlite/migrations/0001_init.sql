-- Jobs: the persisted queue. `params` is the JSON of app::types::JobParams (seed resolved).
CREATE TABLE jobs (
    id          TEXT PRIMARY KEY,
    state       TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    mode        TEXT NOT NULL,
    params      TEXT NOT NULL,
    created_ms  INTEGER NOT NULL,
    started_ms  INTEGER,
    finished_ms INTEGER,
    step        INTEGER NOT NULL DEFAULT 0,
    total       INTEGER NOT NULL DEFAULT 0,
    message     TEXT,
    video_id    TEXT
);
CREATE INDEX jobs_by_state ON jobs (state, created_ms, id);
CREATE INDEX jobs_by_time ON jobs (created_ms, id);

-- Videos: the gallery. Media files live under DATA_DIR/media/<id>/.
CREATE TABLE videos (
    rowid       INTEGER PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    mode        TEXT NOT NULL,
    model       TEXT NOT NULL,
    prompt      TEXT NOT NULL,
    params      TEXT NOT NULL,
    metadata    TEXT NOT NULL,
    created_ms  INTEGER NOT NULL,
    favorite    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX videos_by_time ON videos (created_ms, id);

-- Full-text search over prompts, kept in step with `videos` by triggers.
CREATE VIRTUAL TABLE videos_fts USING fts5 (prompt, content = 'videos', content_rowid = 'rowid');
CREATE TRIGGER videos_ai AFTER INSERT ON videos BEGIN
    INSERT INTO videos_fts (rowid, prompt) VALUES (new.rowid, new.prompt);
END;
CREATE TRIGGER videos_ad AFTER DELETE ON videos BEGIN
    INSERT INTO videos_fts (videos_fts, rowid, prompt) VALUES ('delete', old.rowid, old.prompt);
END;
CREATE TRIGGER videos_au AFTER UPDATE OF prompt ON videos BEGIN
    INSERT INTO videos_fts (videos_fts, rowid, prompt) VALUES ('delete', old.rowid, old.prompt);
    INSERT INTO videos_fts (rowid, prompt) VALUES (new.rowid, new.prompt);
END;
