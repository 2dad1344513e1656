-- A deadline is written only by dispatch, in the transaction that writes its
-- order, and orders are never deleted: the foreign key guarded nothing, yet
-- its check locked the order row for every deadline inserted (a row lock is
-- a write and a WAL record of its own).
ALTER TABLE deadline DROP CONSTRAINT IF EXISTS deadline_ticket_id_fkey;
