-- An order's opening (received, triaged and, unless it was merged,
-- dispatched) is kept on the order row, as (kind, actor, at_ms, note) fours,
-- instead of as three timeline rows: the timeline table holds what happens
-- after. Orders opened before this migration keep their rows there.
ALTER TABLE work_order ADD COLUMN opening text[];
-- Nothing looks orders up by state alone (lists go by lead, or scan).
DROP INDEX work_order_state;
