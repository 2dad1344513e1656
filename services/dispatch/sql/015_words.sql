-- An order keeps the words of the report that decided its triage, and the
-- danger signal that raised it with its words, as TicketTriaged carries
-- them: `show` names them. NULL: none, or opened before this migration.
-- They come in a new order's row before the carried message and the trace
-- id, which stay last (s_emit adds them).
ALTER TABLE work_order ADD COLUMN words text, ADD COLUMN danger text, ADD COLUMN danger_words text;
-- The copy of an order as it was opened (011) takes them too, in the same
-- place: keep_first_event inserts the whole old row.
ALTER TABLE work_order_first ADD COLUMN words text, ADD COLUMN danger text,
  ADD COLUMN danger_words text;
DROP TYPE work_order_row;
CREATE TYPE work_order_row AS (
  ticket_id text, state text, external_id text, source text, community text, grid text,
  address text, category text, klass text, body text, reporter_masked text,
  received_at timestamptz, color text, level bigint, lead text, co text[], rule text,
  weight bigint, duplicate_of text, decided_at timestamptz, at timestamptz, due_names text[],
  due_ms bigint[], next_due_at timestamptz, policy_id bigint, words text, danger text,
  danger_words text, out_payload bytea, trace_id text
);
