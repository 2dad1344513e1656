-- A batch's new orders come as one array of this type (a row per order, in
-- binary), unnested once, where one array per column used to be walked in
-- the select list and co, opening and deadlines came as text to be parsed.
-- The fields are the insert's, in its order (see s_insert_order).
CREATE TYPE work_order_row AS (
  ticket_id text, state text, external_id text, source text, community text, grid text,
  address text, category text, klass text, body text, reporter_masked text,
  received_at timestamptz, color text, level bigint, lead text, co text[], rule text,
  weight bigint, duplicate_of text, opening text[], at timestamptz, due_names text[],
  due_ms bigint[], next_due_at timestamptz, out_payload bytea
);
