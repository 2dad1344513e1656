-- Nothing looks an order up by its text, address, reporter, deadlines'
-- arrays, opening notes, rule, trace id or carried message: their
-- statistics guide no plan (arrays' the costliest to gather), and
-- gathering them was a third of what analyzing the table cost
-- (autovacuum's analyze after a 100,000-ticket burst: 0.98 CPU s, now
-- 0.68), which autovacuum does every time it grows by a tenth.
ALTER TABLE work_order
  ALTER COLUMN body SET STATISTICS 0, ALTER COLUMN address SET STATISTICS 0,
  ALTER COLUMN reporter_masked SET STATISTICS 0, ALTER COLUMN due_names SET STATISTICS 0,
  ALTER COLUMN due_ms SET STATISTICS 0, ALTER COLUMN due_overdue_ms SET STATISTICS 0,
  ALTER COLUMN due_met_ms SET STATISTICS 0, ALTER COLUMN opening SET STATISTICS 0,
  ALTER COLUMN rule SET STATISTICS 0, ALTER COLUMN trace_id SET STATISTICS 0,
  ALTER COLUMN out_payload SET STATISTICS 0;
