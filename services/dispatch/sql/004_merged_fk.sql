-- A merged order names the order it repeats; dispatch merges only under an
-- order it has (it looks the first up in the same batch, and dispatches the
-- repeat itself when the first is missing), and orders are never deleted:
-- the foreign key guarded nothing, yet its check locked the first order's
-- row for every repeat (a write and a WAL record of its own, and after a
-- checkpoint a whole page image).
ALTER TABLE work_order DROP CONSTRAINT IF EXISTS work_order_duplicate_of_fkey;
