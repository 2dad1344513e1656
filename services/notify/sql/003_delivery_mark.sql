-- Messages to reporters go to the sink in the order of their ids (older
-- pending ones first), so "sent" is a line, not a flag on each row: every
-- message up to sent_upto has gone to the sink, except those marked
-- parked. A batch that the sink took moves the line once, where marking its
-- rows rewrote each of them (a new row version and index entry apiece).
-- delivery.state now holds only what the line cannot say: 'parked' (and
-- the 'sent' of rows marked before this migration); delivery_status gives
-- every message's state.
CREATE TABLE delivery_mark (
  sink      text PRIMARY KEY,
  sent_upto bigint NOT NULL,
  at        timestamptz NOT NULL DEFAULT now()
);
INSERT INTO delivery_mark (sink, sent_upto)
  SELECT 'reporter', coalesce((SELECT min(id) - 1 FROM delivery WHERE state = 'pending'),
                              (SELECT max(id) FROM delivery), 0);
-- Pending messages are found from the line on, by the primary key.
DROP INDEX delivery_pending;
CREATE VIEW delivery_status AS
  SELECT d.id, d.ticket_id, d.channel, d.recipient, d.body, d.attempts, d.created_at,
         CASE WHEN d.state <> 'pending' THEN d.state
              WHEN d.id <= m.sent_upto THEN 'sent' ELSE 'pending' END AS state
  FROM delivery d CROSS JOIN delivery_mark m WHERE m.sink = 'reporter';
