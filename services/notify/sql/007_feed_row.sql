-- A batch's feed items and messages to reporters come as one array each of
-- these types (a row per item or message, in binary), unnested once, where
-- one array per column used to be walked in the select list. The fields are
-- the inserts', in their order (see s_insert_feed, s_insert_delivery).
CREATE TYPE feed_row AS (
  party text, seq bigint, ticket_id text, kind text, version bigint, role text,
  at timestamptz, frame bytea
);
CREATE TYPE delivery_row AS (ticket_id text, recipient text, body text);
