-- What the center taught triage by hand: each assign --class of an order
-- is a ClassTaught message to triage, numbered per ticket (the stream's own
-- sequence, apart from the order's version that notify's events carry).
CREATE TABLE lesson_seq (
  ticket_id text PRIMARY KEY,
  seq       integer NOT NULL
);
