-- ANALYZE samples 30,000 rows and works out statistics for every column;
-- nothing ever looks a ticket up by its text, address, reporter, care
-- tags, place on the map, trace id or message, so their statistics guide
-- no plan. Gathering them was about a third of what analyzing the table
-- cost (autovacuum's analyze after a 100,000-ticket burst: 0.49-0.50 CPU s,
-- now 0.29), and autovacuum analyzes it every time it grows by a tenth,
-- while reports keep coming.
ALTER TABLE ticket
  ALTER COLUMN body SET STATISTICS 0, ALTER COLUMN address SET STATISTICS 0,
  ALTER COLUMN reporter_name SET STATISTICS 0, ALTER COLUMN reporter_phone SET STATISTICS 0,
  ALTER COLUMN care_tags SET STATISTICS 0, ALTER COLUMN lat SET STATISTICS 0,
  ALTER COLUMN lng SET STATISTICS 0, ALTER COLUMN trace_id SET STATISTICS 0,
  ALTER COLUMN out_payload SET STATISTICS 0;
