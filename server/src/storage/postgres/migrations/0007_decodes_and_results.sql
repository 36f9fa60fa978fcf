-- Jobs whose decode failed keep their sampled latents (app::types::Job::decode_retries): NULL
-- for every other job; the number of decode retries asked since. A job in state 'failed' with
-- a count is "decode failed" (the state column's check predates it).
ALTER TABLE jobs ADD COLUMN decode_retries BIGINT;

-- The run whose result is the job's (its files under attempts/ID/RUN/), decided by the store
-- while that run's worker holds the job; NULL until then, and again for a job that did not end
-- done. Whoever finishes the job copies that run's files, and no other's, into media/ID/.
ALTER TABLE jobs ADD COLUMN result_attempt TEXT;
