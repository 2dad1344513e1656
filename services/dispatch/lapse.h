/* lapse - dispatch's scan for the orders whose clocks are due.
 *
 * The statement lives in a header so the integration test can plan the very
 * text dispatch runs. Its batch is a literal, not a parameter: PostgreSQL
 * plans a prepared statement generically after five runs, and a generic
 * plan guesses that LIMIT $n keeps a tenth of the rows. With a parameter
 * the estimate grew with the table (147,000 at 500,000 orders), passed
 * jit_above_cost, and every run, once a minute, spent 60 ms compiling with
 * LLVM while the messages behind it waited. With a literal it is bounded by
 * the batch. */
#ifndef WH_DISPATCH_LAPSE_H
#define WH_DISPATCH_LAPSE_H

#include "order.h"

/* Orders one run of the scan handles; more wait for the next, at once. */
#define DISPATCH_LAPSE_BATCH 500
#define DISPATCH_LAPSE_STR(x) #x
#define DISPATCH_LAPSE_XSTR(x) DISPATCH_LAPSE_STR(x)

/* The orders with a firing due by $1 (Unix ms: a reminder, a lapse, a
 * ladder step), earliest first, locked: the desk (or another worker) acting
 * on one meanwhile is skipped until the next run. */
#define DISPATCH_LAPSE_SQL                                                                 \
  ORDER_SELECT " WHERE w.next_due_at IS NOT NULL"                                          \
  " AND w.next_due_at <= to_timestamp($1::bigint::double precision / 1000)"                \
  " ORDER BY w.next_due_at LIMIT " DISPATCH_LAPSE_XSTR(DISPATCH_LAPSE_BATCH)              \
  " FOR UPDATE OF w SKIP LOCKED"

/* What the scan writes back, one clock_fired_row per order fired, fenced by
 * the version it read. */
#define DISPATCH_FIRED_SQL                                                                 \
  "UPDATE work_order w SET version = r.version, updated_at = now(),"                        \
  " due_overdue_ms = ARRAY(SELECT nullif(u.x, 0) FROM unnest(r.due_overdue_ms)"             \
  "   WITH ORDINALITY AS u(x, i) ORDER BY u.i),"                                          \
  " due_remind_ms = r.due_remind_ms,"                                                     \
  " next_due_at = to_timestamp(nullif(r.next_due_ms, 0)::double precision / 1000),"         \
  " ladder_step = nullif(r.ladder_step, 0),"                                               \
  " ladder_next_at = to_timestamp(nullif(r.ladder_next_ms, 0)::double precision / 1000)"    \
  " FROM unnest($1::clock_fired_row[]) AS r"                                               \
  " WHERE w.ticket_id = r.ticket_id AND w.version = r.old_version"

#endif
