-- The media key of the image a job starts from (image to video, edits): its own upload, or a
-- stored result's file. Jobs queued before it was kept read their upload, which is where
-- they kept it.
ALTER TABLE jobs ADD COLUMN input TEXT;
UPDATE jobs SET input = 'uploads/' || id || '.png'
    WHERE mode IN ('image-to-video', 'edit') AND state IN ('queued', 'running');
