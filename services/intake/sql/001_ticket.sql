-- intake's own record of every report, with the reporter's full contact.
CREATE SEQUENCE ticket_no;
CREATE TABLE ticket (
  ticket_id      text PRIMARY KEY,
  source         text NOT NULL,
  external_id    text NOT NULL,
  received_at    timestamptz NOT NULL,
  stored_at      timestamptz NOT NULL DEFAULT now(),
  community      text NOT NULL,
  grid           text NOT NULL,
  address        text NOT NULL,
  category       text NOT NULL,
  body           text NOT NULL,
  reporter_name  text NOT NULL,
  reporter_phone text NOT NULL,
  care_tags      text[] NOT NULL,
  lat            double precision,
  lng            double precision,
  UNIQUE (source, external_id)
);
