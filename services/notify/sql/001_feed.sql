-- notify's per-party feeds and its delivery log to reporters.
CREATE TABLE party_seq (
  party text PRIMARY KEY,
  last  bigint NOT NULL
);
CREATE TABLE feed (
  party     text NOT NULL,
  seq       bigint NOT NULL,
  ticket_id text NOT NULL,
  kind      text NOT NULL,
  version   integer NOT NULL,
  role      text NOT NULL,
  at        timestamptz NOT NULL,
  item      bytea NOT NULL,   -- the packed FeedItem, as published
  PRIMARY KEY (party, seq)
);
CREATE INDEX feed_ticket ON feed (ticket_id);
CREATE TABLE delivery (
  id         bigserial PRIMARY KEY,
  ticket_id  text NOT NULL,
  channel    text NOT NULL,
  recipient  text NOT NULL,
  body       text NOT NULL,
  state      text NOT NULL DEFAULT 'pending',
  attempts   integer NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL DEFAULT now(),
  sent_at    timestamptz
);
CREATE INDEX delivery_pending ON delivery (id) WHERE state = 'pending';
