-- A ticket's TicketReceived rides in its own row (out_id, out_payload) and
-- not in an outbox row beside it: the relay reads it through outbox_carried
-- (see wh_outbox.c). Rows stored the careful way, and rows stored before
-- this migration, keep theirs in the outbox (out_id NULL).
ALTER TABLE ticket ADD COLUMN out_id bigint, ADD COLUMN out_payload bytea;
-- Ids grow with the rows, so a block range index finds them, at next to no
-- cost per insert; ranges are summarized as they fill.
CREATE INDEX ticket_out ON ticket USING brin (out_id)
  WITH (pages_per_range = 32, autosummarize = on);
-- A row with its message is about 1.3 KB, a long report's over 2 KB: kept
-- whole in the row, without trying to compress it first.
ALTER TABLE ticket SET (toast_tuple_target = 8160);
CREATE VIEW outbox_carried AS
  SELECT out_id AS id, 'triage'::text AS dest, NULL::text AS message_id, ticket_id,
    1 AS seq, out_payload AS payload, stored_at AS created_at
  FROM ticket WHERE out_id IS NOT NULL;
