-- The PostgreSQL schema: the same records as the SQLite store's, with native types (JSONB,
-- BOOLEAN, BYTEA) and full-text search through a generated tsvector column.

-- Jobs: the shared queue. `params` is the JSON of app::types::JobParams (seed resolved);
-- `attempts` counts claims that were not put back on purpose.
CREATE TABLE jobs (
    id          TEXT PRIMARY KEY,
    state       TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    mode        TEXT NOT NULL,
    params      JSONB NOT NULL,
    created_ms  BIGINT NOT NULL,
    started_ms  BIGINT,
    finished_ms BIGINT,
    step        BIGINT NOT NULL DEFAULT 0,
    total       BIGINT NOT NULL DEFAULT 0,
    message     TEXT,
    video_id    TEXT,
    attempts    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX jobs_by_time ON jobs (created_ms, id);
CREATE INDEX jobs_queued ON jobs (created_ms, id) WHERE state = 'queued';
CREATE INDEX jobs_running ON jobs (id) WHERE state = 'running';

-- Videos: the gallery. `prompt_words` holds the prompt's words as the gallery search sees
-- them: lowercased, split at anything but letters and digits, no stemming and no stop words
-- (the 'simple' configuration), so a search finds what the SQLite store's finds.
CREATE TABLE videos (
    id          TEXT PRIMARY KEY,
    mode        TEXT NOT NULL,
    model       TEXT NOT NULL,
    prompt      TEXT NOT NULL,
    params      JSONB NOT NULL,
    metadata    JSONB NOT NULL,
    created_ms  BIGINT NOT NULL,
    favorite    BOOLEAN NOT NULL DEFAULT FALSE,
    scores      JSONB,
    motion      DOUBLE PRECISION,
    sharpness   DOUBLE PRECISION,
    smoothness  DOUBLE PRECISION,
    consistency DOUBLE PRECISION,
    -- 'still', 'camera_only' or 'object_motion' (app::scores::ScoreFlag).
    flag        TEXT,
    prompt_words TSVECTOR GENERATED ALWAYS AS
        (to_tsvector('simple', regexp_replace(prompt, '[^[:alnum:]]+', ' ', 'g'))) STORED
);
CREATE INDEX videos_by_time ON videos (created_ms, id);
CREATE INDEX videos_by_model ON videos (model, created_ms, id);
CREATE INDEX videos_search ON videos USING GIN (prompt_words);
CREATE INDEX videos_by_motion ON videos (motion, created_ms, id) WHERE motion IS NOT NULL;
CREATE INDEX videos_by_sharpness ON videos (sharpness, created_ms, id) WHERE sharpness IS NOT NULL;
CREATE INDEX videos_by_smoothness ON videos (smoothness, created_ms, id) WHERE smoothness IS NOT NULL;
CREATE INDEX videos_by_consistency ON videos (consistency, created_ms, id) WHERE consistency IS NOT NULL;
CREATE INDEX videos_by_flag ON videos (flag, created_ms, id) WHERE flag IS NOT NULL;

-- Votes of side-by-side comparisons (app::votes::Vote).
CREATE TABLE votes (
    id          TEXT PRIMARY KEY,
    created_ms  BIGINT NOT NULL,
    axis        TEXT NOT NULL CHECK (axis IN ('quality', 'faithfulness')),
    winner      TEXT NOT NULL,
    candidates  JSONB NOT NULL,
    reasons     JSONB NOT NULL,
    blind       BOOLEAN NOT NULL
);
CREATE INDEX votes_by_time ON votes (created_ms, id);

-- What each clip shows, as a CLIP image embedding per CLIP model (little-endian f32).
CREATE TABLE video_embeddings (
    video_id  TEXT NOT NULL REFERENCES videos (id) ON DELETE CASCADE,
    model     TEXT NOT NULL,
    vector    BYTEA NOT NULL,
    PRIMARY KEY (model, video_id)
);
