-- A decision records the words of the report that decided it and the danger
-- signal that raised it (NULL: none, or decided before this migration), as
-- its TicketTriaged carries them to dispatch.
ALTER TABLE decision ADD COLUMN words text, ADD COLUMN danger text;
ALTER TYPE decision_row ADD ATTRIBUTE words text, ADD ATTRIBUTE danger text;
