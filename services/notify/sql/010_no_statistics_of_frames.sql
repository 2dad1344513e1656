-- Nothing looks a feed item up by its frame, or a message to a reporter
-- by its text: their statistics guide no plan, and autovacuum gathers
-- them every time the table grows by a tenth.
ALTER TABLE feed ALTER COLUMN frame SET STATISTICS 0, ALTER COLUMN item SET STATISTICS 0;
ALTER TABLE delivery ALTER COLUMN body SET STATISTICS 0;
