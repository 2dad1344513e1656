/* lapse - dispatch's scan for lapsed deadlines, as one statement.
 *
 * The statement lives in a header so the integration test can plan the very
 * text dispatch runs. Its batch is a literal, not a parameter: PostgreSQL
 * plans a prepared statement generically after five runs, and a generic
 * plan guesses that LIMIT $n keeps a tenth of the rows. With a parameter
 * the estimate grew with the table (147,000 at 500,000 orders), passed
 * jit_above_cost, and every run, once a minute, spent 60 ms compiling with
 * LLVM while the messages behind it waited. With a literal it is bounded by
 * the batch (7,700 at 100,000 orders, 8,700 at 500,000). */
#ifndef WH_DISPATCH_LAPSE_H
#define WH_DISPATCH_LAPSE_H

/* Orders one run of the scan handles; more wait for the next, at once. */
#define DISPATCH_LAPSE_BATCH 500
#define DISPATCH_LAPSE_STR(x) #x
#define DISPATCH_LAPSE_XSTR(x) DISPATCH_LAPSE_STR(x)

/* Marks lapsed the deadlines due by $1 (Unix ms) of up to
 * DISPATCH_LAPSE_BATCH orders, and returns them (ticket, name). Every CTE
 * reads the rows as they were before the update, so `lapsed` names exactly
 * what the update marks. */
#define DISPATCH_LAPSE_SQL                                                                 \
  "WITH due AS (SELECT ticket_id FROM work_order WHERE next_due_at IS NOT NULL"            \
  "   AND next_due_at <= to_timestamp($1::bigint::double precision / 1000)"                \
  "   ORDER BY next_due_at LIMIT " DISPATCH_LAPSE_XSTR(DISPATCH_LAPSE_BATCH) "),"           \
  " lapsed AS (SELECT w.ticket_id, x.name FROM work_order w JOIN due USING (ticket_id)"     \
  "   CROSS JOIN LATERAL unnest(w.due_names, w.due_ms, w.due_overdue_ms, w.due_met_ms)"    \
  "     AS x(name, due, overdue, met)"                                                     \
  "   WHERE x.overdue IS NULL AND x.met IS NULL AND x.due <= $1::bigint),"                 \
  " upd AS (UPDATE work_order w SET"                                                       \
  "   due_overdue_ms = ARRAY(SELECT CASE WHEN x.overdue IS NULL AND x.met IS NULL"         \
  "       AND x.due <= $1::bigint THEN $1::bigint ELSE x.overdue END"                      \
  "     FROM unnest(w.due_ms, w.due_overdue_ms, w.due_met_ms) WITH ORDINALITY"             \
  "       AS x(due, overdue, met, i) ORDER BY x.i),"                                       \
  "   next_due_at = (SELECT to_timestamp(min(x.due)::double precision / 1000)"             \
  "     FROM unnest(w.due_ms, w.due_overdue_ms, w.due_met_ms) AS x(due, overdue, met)"     \
  "     WHERE x.overdue IS NULL AND x.met IS NULL AND x.due > $1::bigint)"                 \
  "   FROM due WHERE w.ticket_id = due.ticket_id)"                                         \
  " SELECT ticket_id, name FROM lapsed"

#endif
