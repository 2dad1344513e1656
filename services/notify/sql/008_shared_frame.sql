-- A co-party's item of a ticket's first event no longer stores its frame:
-- the lead's item of that event (found by feed_first) holds the same
-- event, and the replay readdresses it with the co row's own party,
-- number, role and time. Rows stored before keep their frames.
COMMENT ON COLUMN feed.frame IS
  'the frame as published; NULL on a co-party''s item of version 1, whose event is the lead''s item''s frame (feed_first)';
