-- Nothing looks feed items up by ticket: replay goes by party and sequence
-- (the primary key). The index cost every item a second index entry.
DROP INDEX feed_ticket;
