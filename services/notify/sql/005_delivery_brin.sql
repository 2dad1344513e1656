-- Messages to reporters are read by ranges of ids above the line
-- (delivery_mark), and a failed batch is marked by its ids: ids grow in
-- insertion order, so a BRIN index narrows those reads as well as the
-- primary key's btree did, at next to nothing per insert. The sequence
-- keeps ids unique.
ALTER TABLE delivery DROP CONSTRAINT delivery_pkey;
CREATE INDEX delivery_id ON delivery USING brin (id) WITH (pages_per_range = 32);
