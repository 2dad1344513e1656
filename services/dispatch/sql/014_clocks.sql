-- The clocks of clocks.conf. Each policy dispatch has loaded is kept here,
-- once (by its text's digest), and an order carries the id of the one in
-- force when it was dispatched (NULL, for orders older than this: the
-- policy in force): a changed file moves new orders only.
CREATE TABLE clock_policy (
  id        serial PRIMARY KEY,
  digest    text NOT NULL UNIQUE,
  body      text NOT NULL,
  loaded_at timestamptz NOT NULL DEFAULT now()
);
-- Each clock of an order is an entry of its arrays (see 006): beside its
-- name, due time and when it lapsed or was met, when it started and when
-- its next reminder is (0: none left). An order only opened leaves these
-- two NULL: its sign-for clocks start at its opening, the others at the
-- report's receipt, and the first reminder of each is the first share after
-- the opening, which dispatch works out again when it reads the order. The ladder [挂牌督办] is the
-- order's: how many steps it has taken, and when the next is due (NULL:
-- not running). next_due_at stays the earliest of every firing still to
-- come, reminders and ladder steps included.
ALTER TABLE work_order
  ADD COLUMN policy_id integer,
  ADD COLUMN due_set_ms bigint[],
  ADD COLUMN due_remind_ms bigint[],
  ADD COLUMN ladder_step integer,
  ADD COLUMN ladder_next_at timestamptz;
ALTER TABLE work_order_first
  ADD COLUMN policy_id integer,
  ADD COLUMN due_set_ms bigint[],
  ADD COLUMN due_remind_ms bigint[],
  ADD COLUMN ladder_step integer,
  ADD COLUMN ladder_next_at timestamptz;
-- Every step of the ladder an order reached: whom, when, and whether the
-- clock took it (a lapse) or the center did (supervise).
CREATE TABLE escalation (
  ticket_id text NOT NULL,
  step      integer NOT NULL,
  party     text NOT NULL,
  at        timestamptz NOT NULL,
  by_whom   text NOT NULL,
  PRIMARY KEY (ticket_id, step)
);
CREATE INDEX escalation_party ON escalation (party);
CREATE OR REPLACE VIEW deadline AS
  SELECT w.ticket_id, x.name,
         to_timestamp(x.due::double precision / 1000) AS due_at,
         to_timestamp(x.overdue::double precision / 1000) AS overdue_at,
         to_timestamp(x.met::double precision / 1000) AS met_at,
         to_timestamp(nullif(x.set, 0)::double precision / 1000) AS set_at,
         to_timestamp(nullif(x.remind, 0)::double precision / 1000) AS remind_at
    FROM work_order w
   CROSS JOIN LATERAL unnest(w.due_names, w.due_ms, w.due_overdue_ms, w.due_met_ms,
                             w.due_set_ms, w.due_remind_ms)
         AS x(name, due, overdue, met, set, remind);
-- A new order's row gains its policy; the carried message and the trace id
-- stay last (s_emit adds them).
DROP TYPE work_order_row;
CREATE TYPE work_order_row AS (
  ticket_id text, state text, external_id text, source text, community text, grid text,
  address text, category text, klass text, body text, reporter_masked text,
  received_at timestamptz, color text, level bigint, lead text, co text[], rule text,
  weight bigint, duplicate_of text, decided_at timestamptz, at timestamptz, due_names text[],
  due_ms bigint[], next_due_at timestamptz, policy_id bigint, out_payload bytea, trace_id text
);
-- What a run of the clock writes back to an order it fired: fenced by the
-- version it read (old_version). Times are Unix ms, 0 for none.
CREATE TYPE clock_fired_row AS (
  ticket_id text, old_version bigint, version bigint, due_overdue_ms bigint[],
  due_remind_ms bigint[], next_due_ms bigint, ladder_step bigint, ladder_next_ms bigint
);
