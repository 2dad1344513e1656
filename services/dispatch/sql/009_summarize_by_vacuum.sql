-- The block ranges of work_order_out were summarized as they filled
-- (autosummarize), each by a request to autovacuum. Its queue holds 256
-- requests for the whole cluster: at a few hundred reports a second, and in
-- any burst, the rest were dropped, each with a line and its statement in
-- the database's log (a megabyte for 100,000 tickets), and their ranges
-- waited for a vacuum all the same. Vacuum summarizes them instead: it runs
-- on this table once 5,000 rows have come since the last (checked every
-- minute), not only after a fifth of the table, so at most a few MB of it
-- is read whole by a range lookup, which only the relay's reading back
-- does.
ALTER INDEX work_order_out SET (autosummarize = off);
ALTER TABLE work_order SET (autovacuum_vacuum_insert_threshold = 5000, autovacuum_vacuum_insert_scale_factor = 0);
