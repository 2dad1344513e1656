-- A ticket's TicketReceived is no longer stored beside the report it is
-- made of: out_payload stays NULL, and intake builds the message again from
-- the row when its relay must read it back (after a restart, a resend or a
-- backlog; see s_build in intake.c). Its 590 bytes were a tenth of what a
-- ticket wrote to the database's log. The row gains what the message holds
-- beyond the report: the channel's trace id, and stored_at, now intake's
-- own clock at the millisecond, as the message gives it. Rows stored before
-- keep their stored messages.
ALTER TABLE ticket ADD COLUMN trace_id text;
ALTER TYPE ticket_row ADD ATTRIBUTE stored_at timestamptz, ADD ATTRIBUTE trace_id text;
