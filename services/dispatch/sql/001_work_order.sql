-- dispatch's work orders, their deadlines and their timelines.
CREATE TABLE work_order (
  ticket_id       text PRIMARY KEY,
  version         integer NOT NULL,
  state           text NOT NULL,
  external_id     text NOT NULL,
  source          text NOT NULL,
  community       text NOT NULL,
  grid            text NOT NULL,
  address         text NOT NULL,
  category        text NOT NULL,
  klass           text NOT NULL,
  body            text NOT NULL,
  reporter_masked text NOT NULL,
  received_at     timestamptz NOT NULL,
  color           text NOT NULL,
  level           integer NOT NULL,
  lead            text NOT NULL,
  co              text[] NOT NULL,
  rule            text NOT NULL,
  weight          integer NOT NULL,
  duplicate_of    text REFERENCES work_order (ticket_id),
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX work_order_lead ON work_order (lead);
CREATE INDEX work_order_state ON work_order (state);

CREATE TABLE deadline (
  ticket_id  text NOT NULL REFERENCES work_order (ticket_id),
  name       text NOT NULL,
  due_at     timestamptz NOT NULL,
  overdue_at timestamptz,
  met_at     timestamptz,
  PRIMARY KEY (ticket_id, name)
);
-- The timer looks here for the next deadline to arm.
CREATE INDEX deadline_pending ON deadline (due_at) WHERE met_at IS NULL AND overdue_at IS NULL;

CREATE TABLE timeline (
  id        bigserial PRIMARY KEY,
  ticket_id text NOT NULL,
  at        timestamptz NOT NULL,
  kind      text NOT NULL,
  actor     text NOT NULL,
  note      text NOT NULL
);
CREATE INDEX timeline_ticket ON timeline (ticket_id, id);
