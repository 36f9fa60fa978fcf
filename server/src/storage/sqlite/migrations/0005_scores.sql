-- Automatic scores of a clip (the JSON of app::scores::Scores; NULL until measured, and for
-- still images), and the values the gallery sorts and filters by, each indexed in gallery order
-- so a sorted page walks one index.
ALTER TABLE videos ADD COLUMN scores TEXT;
ALTER TABLE videos ADD COLUMN motion REAL;
ALTER TABLE videos ADD COLUMN sharpness REAL;
ALTER TABLE videos ADD COLUMN smoothness REAL;
ALTER TABLE videos ADD COLUMN consistency REAL;
-- 'still', 'camera_only' or 'object_motion' (app::scores::ScoreFlag).
ALTER TABLE videos ADD COLUMN flag TEXT;
CREATE INDEX videos_by_motion ON videos (motion, sort_key) WHERE motion IS NOT NULL;
CREATE INDEX videos_by_sharpness ON videos (sharpness, sort_key) WHERE sharpness IS NOT NULL;
CREATE INDEX videos_by_smoothness ON videos (smoothness, sort_key) WHERE smoothness IS NOT NULL;
CREATE INDEX videos_by_consistency ON videos (consistency, sort_key) WHERE consistency IS NOT NULL;
CREATE INDEX videos_by_flag ON videos (flag, sort_key) WHERE flag IS NOT NULL;
