/* order - a work order's row as the desk and the clock read it, and the
 * ladder step both of them take.
 *
 * ORDER_SELECT reads every column an action, a view or a firing needs, in
 * binary; order_read makes an order_t of one row of it (strings borrowed
 * from the result), its clocks as a clk_set_t. */
#ifndef WH_DISPATCH_ORDER_H
#define WH_DISPATCH_ORDER_H

#include "clocks.h"
#include "wh_org.h"
#include "wh_outbox.h"
#include "wh_pg.h"
#include "wh_rules.h"

#include <stdint.h>

#define ORDER_MS(x) "coalesce(round(extract(epoch FROM " x ") * 1000)::bigint, 0)"
#define ORDER_ARR0(x)                                                                          \
  "ARRAY(SELECT coalesce(u.x, 0) FROM unnest(" x ") WITH ORDINALITY AS u(x, i) ORDER BY u.i)"
#define ORDER_SELECT                                                                           \
  "SELECT w.ticket_id, w.external_id, w.source, w.community, w.grid, w.address, w.category,"   \
  " w.klass, w.color, w.level::bigint, w.lead, w.co, w.state, coalesce(w.duplicate_of, ''),"   \
  " w.rule, w.weight::bigint, " ORDER_MS("w.received_at") ", w.body, w.reporter_masked,"       \
  " w.version::bigint, " ORDER_MS("w.signed_at") ", " ORDER_MS("w.resolved_at") ","            \
  " " ORDER_MS("w.closed_at") ", coalesce(w.returns, 0)::bigint,"                             \
  " coalesce(w.reopens, 0)::bigint, " ORDER_MS("w.extension_until") ","                       \
  " coalesce(w.extension_state, ''), coalesce(w.feedback_rating, ''),"                         \
  " coalesce(w.feedback_resolved, false)::int::bigint,"                                       \
  " coalesce(w.due_names, '{}'::text[]), coalesce(w.due_ms, '{}'::bigint[]),"                  \
  " " ORDER_ARR0("w.due_overdue_ms") ", " ORDER_ARR0("w.due_met_ms") ","                       \
  " coalesce(w.before_return, ''), " ORDER_MS("coalesce(w.lead_since, w.created_at)") ","      \
  " " ORDER_ARR0("w.due_set_ms") ", " ORDER_ARR0("w.due_remind_ms") ","                        \
  " coalesce(w.policy_id, 0)::bigint, coalesce(w.ladder_step, 0)::bigint,"                    \
  " " ORDER_MS("w.ladder_next_at") ", coalesce(w.words, ''), coalesce(w.danger, ''),"          \
  " coalesce(w.danger_words, '') FROM work_order w"

enum {
  C_TICKET, C_EXT, C_SOURCE, C_COMMUNITY, C_GRID, C_ADDRESS, C_CATEGORY, C_KLASS, C_COLOR,
  C_LEVEL, C_LEAD, C_CO, C_STATE, C_DUP, C_RULE, C_WEIGHT, C_RECEIVED, C_BODY, C_REPORTER,
  C_VERSION, C_SIGNED, C_RESOLVED, C_CLOSED, C_RETURNS, C_REOPENS, C_EXT_UNTIL, C_EXT_STATE,
  C_RATING, C_FB_RESOLVED, C_DUE_NAMES, C_DUE_MS, C_DUE_OVERDUE, C_DUE_MET, C_BEFORE_RETURN,
  C_LEAD_SINCE, C_DUE_SET, C_DUE_REMIND, C_POLICY, C_LADDER_STEP, C_LADDER_NEXT, C_WORDS,
  C_DANGER, C_DANGER_WORDS
};

typedef struct {
  const PGresult *r;
  int row;
  const char *ticket, *lead, *state, *klass, *color, *before_return, *ext_state, *rating;
  const char *community, *grid, *address, *body, *reporter;
  char *co[WH_MAX_CO];
  int nco;
  char cobuf[WH_MAX_CO * 96];
  clk_set_t clocks;
  uint32_t version, policy;
  int level, returns, reopens, fb_resolved, ladder_step;
  int64_t signed_at, resolved_at, closed_at, ext_until, lead_since, ladder_next, received;
  int no_set, no_remind; /* the row has not written its clocks' starts, reminders yet */
} order_t;

/* Reads row `row` of an ORDER_SELECT result (binary). 0, or WH_EDB when
 * the row is not what the select makes. */
int order_read(const PGresult *r, int row, order_t *o);
/* Fills in what an order's row leaves to be worked out: an order only
 * opened stores its clocks' names and due times, not their starts (the
 * sign-for clocks' is its opening, the level's its receipt) nor their next
 * reminders (the first share after its opening, under its policy p). */
void order_clocks_fill(order_t *o, const clk_policy_t *p);
/* 1 for a state no party works in any more (resolved, closed, void, merged). */
int order_done_state(const char *state);

/* Fills ev with what every work event of o carries (strings borrowed from
 * o and summary, which must hold DISPATCH_SUMMARY_MAX), at version and
 * now; deadlines are the running clocks, in dl/dlp (CLK_MAX each). */
void order_event(const order_t *o, Whistle__WorkEvent *ev, uint32_t version, int64_t now,
                 char *summary, Whistle__Deadline *dl, Whistle__Deadline **dlp);

/* The ladder's next step for o, taken now by `by` ("clock", or the
 * center's code): the escalation row, and the step's party in party
 * (CLK_NAME_MAX). Returns 0 or WH_EDB; WH_EINVAL when no step is left. */
int order_step_row(wh_pg_t *pg, const wh_org_t *org, const clk_policy_t *p, const order_t *o,
                   int step, const char *by, int64_t now, char *party);

#endif
