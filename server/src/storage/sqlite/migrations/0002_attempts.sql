-- How many times a job has been claimed by a worker without being put back on purpose: a job
-- that was running during two crashes is failed instead of queued a third time.
ALTER TABLE jobs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
