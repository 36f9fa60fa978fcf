-- Votes of side-by-side comparisons (app::votes::Vote). `candidates` and `reasons` are JSON
-- arrays; the leaderboard is added up from these rows and the videos they name.
CREATE TABLE votes (
    id          TEXT PRIMARY KEY,
    created_ms  INTEGER NOT NULL,
    axis        TEXT NOT NULL CHECK (axis IN ('quality', 'faithfulness')),
    winner      TEXT NOT NULL,
    candidates  TEXT NOT NULL,
    reasons     TEXT NOT NULL,
    blind       INTEGER NOT NULL
);
CREATE INDEX votes_by_time ON votes (created_ms, id);
