-- A worker preparing GPU kernels reports how far it has come (JSON: done, total, current);
-- NULL when it does not prepare them.
ALTER TABLE workers ADD COLUMN warm_up TEXT;
