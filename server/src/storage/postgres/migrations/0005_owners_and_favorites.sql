-- People own their work (named tokens): a video keeps its job's owner, so the gallery can say
-- who may delete it (a result's id is its job's).
ALTER TABLE videos ADD COLUMN owner TEXT NOT NULL DEFAULT '';
UPDATE videos SET owner = j.owner FROM jobs j WHERE j.id = videos.id;

-- Favourites per person: `person` is a named token's name, empty for everyone on a server
-- without named tokens. The `favorite` column of videos held everyone's one set: its marks
-- become the favourites of the empty name, and it is no longer read or written.
CREATE TABLE favorites (
    person   TEXT NOT NULL,
    video_id TEXT NOT NULL REFERENCES videos (id) ON DELETE CASCADE,
    PRIMARY KEY (person, video_id)
);
CREATE INDEX favorites_by_video ON favorites (video_id);
INSERT INTO favorites (person, video_id) SELECT '', id FROM videos WHERE favorite;
