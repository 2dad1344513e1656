-- A ticket's first event always writes its lead's feed item with version 1,
-- in the transaction that applies it: that item, under this unique index,
-- is the record that the first event was applied, so notify's inbox row
-- for a ticket starts with its second event (a row per ticket less).
CREATE UNIQUE INDEX feed_first ON feed (ticket_id) WHERE version = 1 AND role = 'lead';
