-- What each clip shows, as a CLIP image embedding (the mean of a few frames' embeddings,
-- normalised; little-endian f32), per CLIP model: what visual search compares a query with.
CREATE TABLE video_embeddings (
    video_id  TEXT NOT NULL REFERENCES videos (id) ON DELETE CASCADE,
    model     TEXT NOT NULL,
    vector    BLOB NOT NULL,
    PRIMARY KEY (model, video_id)
);
