-- Comparisons as the server issues them (app::votes::Comparison): the results compared, in the
-- order first shown, and whether the voter was shown which made which.
CREATE TABLE comparisons (
    id          TEXT PRIMARY KEY,
    created_ms  BIGINT NOT NULL,
    candidates  JSONB NOT NULL,
    blind       BOOLEAN NOT NULL
);

-- A vote names its comparison and its voter (votes of earlier versions have neither), and a
-- voter has one vote per comparison and axis.
ALTER TABLE votes ADD COLUMN comparison_id TEXT;
ALTER TABLE votes ADD COLUMN voter TEXT NOT NULL DEFAULT '';
CREATE UNIQUE INDEX votes_one_per_voter ON votes (comparison_id, axis, voter) WHERE comparison_id IS NOT NULL;

-- What the server signs with, kept with the data so that every web node and every restart
-- signs alike: `voter`, the key of the voter cookies.
CREATE TABLE secrets (
    name   TEXT PRIMARY KEY,
    value  BYTEA NOT NULL
);
