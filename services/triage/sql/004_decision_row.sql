-- A batch's decisions come as one array of this type (a row per decision, in
-- binary), unnested once, where one array per column used to be walked in
-- the select list and co came as text to be parsed. The fields are the
-- insert's, in its order (see s_insert).
CREATE TYPE decision_row AS (
  ticket_id text, source text, external_id text, received_at timestamptz, community text,
  grid text, category text, klass text, color text, level bigint, lead text, co text[],
  rule text, weight bigint, mergeable boolean, duplicate_of text, out_payload bytea
);
