-- Gallery search in gallery order. `sort_key` is an integer in the same order as
-- (created_ms, id), with gaps: SqliteStore::insert_video gives a new video a key between those
-- of its neighbours in that order (and renumbers every video the same way as here in the rare
-- case that there is no room). The prompt index is keyed by it, so a search walks the index
-- newest first and stops after one page instead of sorting every match.
ALTER TABLE videos ADD COLUMN sort_key INTEGER NOT NULL DEFAULT 0;
UPDATE videos SET sort_key = k.n * 4294967296
    FROM (SELECT rowid AS r, row_number() OVER (ORDER BY created_ms, id) AS n FROM videos) AS k
    WHERE k.r = videos.rowid;
-- With the filter columns, so a match that a filter leaves out costs no read of its row.
CREATE INDEX videos_by_sort_key ON videos (sort_key, mode, favorite, model);

DROP TRIGGER videos_ai;
DROP TRIGGER videos_ad;
DROP TRIGGER videos_au;
DROP TABLE videos_fts;
CREATE VIRTUAL TABLE videos_fts USING fts5 (prompt, content = 'videos', content_rowid = 'sort_key');
INSERT INTO videos_fts (videos_fts) VALUES ('rebuild');
CREATE TRIGGER videos_ai AFTER INSERT ON videos BEGIN
    INSERT INTO videos_fts (rowid, prompt) VALUES (new.sort_key, new.prompt);
END;
CREATE TRIGGER videos_ad AFTER DELETE ON videos BEGIN
    INSERT INTO videos_fts (videos_fts, rowid, prompt) VALUES ('delete', old.sort_key, old.prompt);
END;
-- A renumbering changes `sort_key` and rebuilds the index itself.
CREATE TRIGGER videos_au AFTER UPDATE OF prompt ON videos BEGIN
    INSERT INTO videos_fts (videos_fts, rowid, prompt) VALUES ('delete', old.sort_key, old.prompt);
    INSERT INTO videos_fts (rowid, prompt) VALUES (new.sort_key, new.prompt);
END;
