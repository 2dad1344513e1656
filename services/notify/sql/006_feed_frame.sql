-- A feed item is stored as the frame notify publishes (an Envelope holding
-- the FeedItem), in `frame`, where it used to be packed twice: once as the
-- FeedItem to store (`item`) and again inside the frame. Items stored
-- before keep `item`; a row has one or the other.
ALTER TABLE feed ADD COLUMN frame bytea;
ALTER TABLE feed ALTER COLUMN item DROP NOT NULL;
