-- What the center taught: a report it placed in a class by hand (assign
-- --class, from its manual queue or over a misrouted order), as dispatch
-- told triage. Its text is an example of that class: a new report no rule
-- places is given the class of the most alike example. A ticket taught
-- again keeps only its last class.
CREATE TABLE example (
  ticket_id   text PRIMARY KEY,
  klass       text NOT NULL,
  text        text NOT NULL,
  community   text NOT NULL,
  prior_klass text,
  taught_by   text NOT NULL,
  taught_at   timestamptz NOT NULL
);
