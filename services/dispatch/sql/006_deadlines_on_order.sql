-- An order's deadlines live on the order row, as arrays in step (name, due,
-- and when each lapsed or was met, in Unix ms; NULL while neither), with
-- next_due_at the earliest one still running. Every order wrote one to
-- three deadline rows, each with two index entries, in a table of its own;
-- the row it has anyway now carries them, and the clock finds what is due
-- by one partial index on next_due_at. The view `deadline` shows them as
-- rows, as the table did, for the command line and for operators.
ALTER TABLE work_order
  ADD COLUMN due_names text[],
  ADD COLUMN due_ms bigint[],
  ADD COLUMN due_overdue_ms bigint[],
  ADD COLUMN due_met_ms bigint[],
  ADD COLUMN next_due_at timestamptz;
UPDATE work_order w SET due_names = d.names, due_ms = d.due, due_overdue_ms = d.overdue,
       due_met_ms = d.met, next_due_at = d.next
  FROM (SELECT ticket_id,
               array_agg(name ORDER BY due_at, name) AS names,
               array_agg(round(extract(epoch FROM due_at) * 1000)::bigint ORDER BY due_at, name) AS due,
               array_agg(round(extract(epoch FROM overdue_at) * 1000)::bigint ORDER BY due_at, name) AS overdue,
               array_agg(round(extract(epoch FROM met_at) * 1000)::bigint ORDER BY due_at, name) AS met,
               min(due_at) FILTER (WHERE overdue_at IS NULL AND met_at IS NULL) AS next
          FROM deadline GROUP BY ticket_id) d
 WHERE w.ticket_id = d.ticket_id;
DROP TABLE deadline;
CREATE INDEX work_order_next_due ON work_order (next_due_at) WHERE next_due_at IS NOT NULL;
CREATE VIEW deadline AS
  SELECT w.ticket_id, x.name,
         to_timestamp(x.due::double precision / 1000) AS due_at,
         to_timestamp(x.overdue::double precision / 1000) AS overdue_at,
         to_timestamp(x.met::double precision / 1000) AS met_at
    FROM work_order w
   CROSS JOIN LATERAL unnest(w.due_names, w.due_ms, w.due_overdue_ms, w.due_met_ms)
         AS x(name, due, overdue, met);
