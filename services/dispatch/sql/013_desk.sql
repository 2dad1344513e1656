-- The loop: what the parties and the center do to an order at the desk.
-- An order's life after its opening is kept on its row (its state and
-- version already are): where a return came from, how often it came back
-- (returns: ping-pong between center and parties; reopens), when it was
-- signed for, resolved and closed, the extension asked, and the
-- reporter's feedback. All stay NULL until an action sets them, so an
-- order that is only opened writes nothing more than before. lead_since is
-- when the lead in force got it (NULL: at the opening, created_at): the
-- return window runs from there.
ALTER TABLE work_order
  ADD COLUMN before_return text,
  ADD COLUMN returns integer,
  ADD COLUMN reopens integer,
  ADD COLUMN lead_since timestamptz,
  ADD COLUMN signed_at timestamptz,
  ADD COLUMN resolved_at timestamptz,
  ADD COLUMN closed_at timestamptz,
  ADD COLUMN extension_until timestamptz,
  ADD COLUMN extension_state text,
  ADD COLUMN feedback_rating text,
  ADD COLUMN feedback_resolved boolean;
-- The copy an order's first event is built from (work_order_first, made
-- LIKE work_order, filled by SELECT OLD.*) keeps the same columns.
ALTER TABLE work_order_first
  ADD COLUMN before_return text,
  ADD COLUMN returns integer,
  ADD COLUMN reopens integer,
  ADD COLUMN lead_since timestamptz,
  ADD COLUMN signed_at timestamptz,
  ADD COLUMN resolved_at timestamptz,
  ADD COLUMN closed_at timestamptz,
  ADD COLUMN extension_until timestamptz,
  ADD COLUMN extension_state text,
  ADD COLUMN feedback_rating text,
  ADD COLUMN feedback_resolved boolean;
-- A repeat's first is found from the repeat (resolve tells the reporters of
-- every repeat merged under it).
CREATE INDEX work_order_repeats ON work_order (duplicate_of) WHERE duplicate_of IS NOT NULL;
-- Each co-party's own part of an order: signed for, done. A row is written
-- when the co-party first acts; a new assignment clears the parts.
CREATE TABLE order_part (
  ticket_id text NOT NULL,
  party     text NOT NULL,
  signed_at timestamptz,
  done_at   timestamptz,
  PRIMARY KEY (ticket_id, party)
);
-- Every transition is an event on the order: the version it made, the
-- actor's role, and besides the public note (for the reporter) an internal
-- one that only the parties and the center read.
ALTER TABLE timeline
  ADD COLUMN version integer,
  ADD COLUMN role text,
  ADD COLUMN internal text;
-- The answer the desk gave each request id of each party, kept at least a
-- day: an action sent again under the same id takes effect once and is
-- answered the same. The id is the asking party's own: one party cannot
-- read another's answer by guessing its ids.
CREATE TABLE desk_request (
  party      text NOT NULL,
  request_id text NOT NULL,
  ticket_id  text NOT NULL,
  reply      bytea NOT NULL,
  at         timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (party, request_id)
);
CREATE INDEX desk_request_at ON desk_request (at);
