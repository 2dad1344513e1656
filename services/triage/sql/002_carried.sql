-- A decision's TicketTriaged rides in its own row (out_id, out_payload), not
-- in an outbox row beside it: the relay reads it through outbox_carried (see
-- wh_outbox.c). Rows decided before this migration have out_id NULL.
ALTER TABLE decision ADD COLUMN out_id bigint, ADD COLUMN out_payload bytea;
-- Ids grow with the rows: a block range index finds them at next to no cost
-- per insert; ranges are summarized as they fill.
CREATE INDEX decision_out ON decision USING brin (out_id)
  WITH (pages_per_range = 32, autosummarize = on);
-- Kept whole in the row, without trying to compress it first.
ALTER TABLE decision SET (toast_tuple_target = 8160);
CREATE VIEW outbox_carried AS
  SELECT out_id AS id, 'dispatch'::text AS dest, NULL::text AS message_id, ticket_id,
    1 AS seq, out_payload AS payload, decided_at AS created_at
  FROM decision WHERE out_id IS NOT NULL;
