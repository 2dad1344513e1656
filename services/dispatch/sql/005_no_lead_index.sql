-- Lists by party ask for orders a party leads or co-handles (lead = $1 OR
-- $1 = ANY (co)): an index on lead alone cannot answer that OR, and the
-- planner walks the primary key in ticket order instead. The index only
-- cost every order an entry.
DROP INDEX IF EXISTS work_order_lead;
