-- triage's decisions: colour, level, parties, and who or what decided.
CREATE TABLE decision (
  ticket_id    text PRIMARY KEY,
  version      integer NOT NULL DEFAULT 1,
  source       text NOT NULL,
  external_id  text NOT NULL,
  received_at  timestamptz NOT NULL,
  community    text NOT NULL,
  grid         text NOT NULL,
  category     text NOT NULL,
  klass        text NOT NULL,
  color        text NOT NULL,
  level        integer NOT NULL,
  lead         text NOT NULL,
  co           text[] NOT NULL,
  rule         text NOT NULL,
  decided_by   text NOT NULL,
  weight       integer NOT NULL,
  mergeable    boolean NOT NULL,
  duplicate_of text,
  open         boolean NOT NULL DEFAULT true,
  decided_at   timestamptz NOT NULL DEFAULT now()
);
-- Finding the open issue a new report repeats.
CREATE INDEX decision_repeat ON decision (klass, community, grid, received_at)
  WHERE open AND duplicate_of IS NULL AND mergeable;
