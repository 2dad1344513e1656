-- delivery_id's block ranges are summarized by vacuum (it never asked
-- autovacuum to summarize them as they filled: that queue holds 256
-- requests for the whole cluster and drops the rest). Vacuum runs on this
-- table once 5,000 messages have come since the last (checked every
-- minute), not only after a fifth of the table, so reading the pending
-- messages above the sent line reads at most a few MB whole.
ALTER TABLE delivery SET (autovacuum_vacuum_insert_threshold = 5000, autovacuum_vacuum_insert_scale_factor = 0);
