-- An order's first event (dispatched, or merged) rides in the order's own
-- row (out_id, out_payload), not in an outbox row beside it: the relay reads
-- it through outbox_carried (see wh_outbox.c). Orders opened before this
-- migration have out_id NULL.
ALTER TABLE work_order ADD COLUMN out_id bigint, ADD COLUMN out_payload bytea;
-- Ids grow with the rows: a block range index finds them at next to no cost
-- per insert; ranges are summarized as they fill.
CREATE INDEX work_order_out ON work_order USING brin (out_id)
  WITH (pages_per_range = 32, autosummarize = on);
-- An order with its event is 2-3 KB: kept whole in the row, without trying
-- to compress it first (which would cost more than the row's other work).
ALTER TABLE work_order SET (toast_tuple_target = 8160);
CREATE VIEW outbox_carried AS
  SELECT out_id AS id, 'notify'::text AS dest, NULL::text AS message_id, ticket_id,
    1 AS seq, out_payload AS payload, created_at
  FROM work_order WHERE out_id IS NOT NULL;
