-- A batch's reports come as one array of this type (a row per report, in
-- binary), unnested once, where one array per column used to be walked in
-- the select list and care tags came as text to be parsed. The fields are
-- the inserts', in their order; the careful way (which carries no message)
-- leaves out_payload empty and unused.
CREATE TYPE ticket_row AS (
  source text, external_id text, received_at timestamptz, community text, grid text,
  address text, category text, body text, reporter_name text, reporter_phone text,
  care_tags text[], lat float8, lng float8, ticket_id text, out_payload bytea
);
