-- A message to the reporter names the template it was made of (its stable
-- id in messages.conf), and the sink writes it beside the text.
ALTER TABLE delivery ADD COLUMN template text;
DROP TYPE delivery_row;
CREATE TYPE delivery_row AS (ticket_id text, recipient text, body text, template text);
