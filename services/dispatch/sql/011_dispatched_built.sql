-- An order's dispatched event is no longer stored with the order: out_payload
-- stays NULL, and dispatch builds the event again from the row when its
-- relay must read it back (after a restart, a resend or a backlog; see
-- s_build in dispatch.c). Its 640 bytes were an eighth of what a ticket
-- wrote to the database's log. The row gains the trace id the event
-- carries. A merged order still stores its event, which names the first
-- order's lead as it was then.
ALTER TABLE work_order ADD COLUMN trace_id text;
ALTER TYPE work_order_row ADD ATTRIBUTE trace_id text;
-- The event is built from the order as it was opened. An update to an
-- order whose event notify may not have taken yet (above the relay's line,
-- which is stored a little after the fact, so this errs on the safe side)
-- first keeps the row as it was here, and the event is built from that
-- copy; the order's own row no longer carries it.
CREATE TABLE work_order_first (LIKE work_order);
CREATE INDEX work_order_first_out ON work_order_first (out_id);
CREATE FUNCTION keep_first_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.out_id > coalesce((SELECT upto FROM outbox_line WHERE dest = 'notify'), 0) THEN
    INSERT INTO work_order_first SELECT OLD.*;
  END IF;
  NEW.out_id := NULL;
  RETURN NEW;
END $$;
CREATE TRIGGER work_order_first_event BEFORE UPDATE ON work_order FOR EACH ROW
  WHEN (OLD.out_id IS NOT NULL AND OLD.out_payload IS NULL)
  EXECUTE FUNCTION keep_first_event();
CREATE OR REPLACE VIEW outbox_carried AS
  SELECT out_id AS id, 'notify'::text AS dest, NULL::text AS message_id, ticket_id,
    1 AS seq, out_payload AS payload, created_at
  FROM work_order WHERE out_id IS NOT NULL
  UNION ALL
  SELECT out_id, 'notify'::text, NULL::text, ticket_id, 1, out_payload, created_at
  FROM work_order_first;
