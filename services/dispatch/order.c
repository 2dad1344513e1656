/* order - an order's row read, its event's common fields, a ladder step. */
#include "order.h"
#include "dispatch.h"
#include "wh_err.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static int64_t s_i(const PGresult *r, int row, int col) {
  return (int64_t)wh_pg_get_u64(r, row, col);
}

int order_read(const PGresult *r, int row, order_t *o) {
  memset(o, 0, sizeof *o);
  o->r = r;
  o->row = row;
  o->ticket = PQgetvalue(r, row, C_TICKET);
  o->lead = PQgetvalue(r, row, C_LEAD);
  o->state = PQgetvalue(r, row, C_STATE);
  o->klass = PQgetvalue(r, row, C_KLASS);
  o->color = PQgetvalue(r, row, C_COLOR);
  o->before_return = PQgetvalue(r, row, C_BEFORE_RETURN);
  o->ext_state = PQgetvalue(r, row, C_EXT_STATE);
  o->rating = PQgetvalue(r, row, C_RATING);
  o->community = PQgetvalue(r, row, C_COMMUNITY);
  o->grid = PQgetvalue(r, row, C_GRID);
  o->address = PQgetvalue(r, row, C_ADDRESS);
  o->body = PQgetvalue(r, row, C_BODY);
  o->reporter = PQgetvalue(r, row, C_REPORTER);
  o->nco = wh_pg_get_texts(r, row, C_CO, o->co, WH_MAX_CO, o->cobuf, sizeof o->cobuf);
  char *names[CLK_MAX];
  char namebuf[CLK_MAX * CLK_NAME_MAX];
  int64_t due[CLK_MAX], ovd[CLK_MAX], met[CLK_MAX], set[CLK_MAX], rem[CLK_MAX];
  int n = wh_pg_get_texts(r, row, C_DUE_NAMES, names, CLK_MAX, namebuf, sizeof namebuf);
  int nd = wh_pg_get_ints(r, row, C_DUE_MS, due, CLK_MAX);
  int no = wh_pg_get_ints(r, row, C_DUE_OVERDUE, ovd, CLK_MAX);
  int nm = wh_pg_get_ints(r, row, C_DUE_MET, met, CLK_MAX);
  int ns = wh_pg_get_ints(r, row, C_DUE_SET, set, CLK_MAX);
  int nr = wh_pg_get_ints(r, row, C_DUE_REMIND, rem, CLK_MAX);
  if (o->nco < 0 || n < 0 || nd != n || no < 0 || nm < 0 || ns < 0 || nr < 0) return WH_EDB;
  /* arrays never written are empty: nothing lapsed, met, started or to remind */
  o->no_set = ns == 0 && n > 0;
  o->no_remind = nr == 0 && n > 0;
  for (int i = 0; i < n; i++) {
    clk_t *c = &o->clocks.c[i];
    snprintf(c->name, sizeof c->name, "%s", names[i]);
    c->due_ms = due[i];
    c->lapsed_ms = i < no ? ovd[i] : 0;
    c->met_ms = i < nm ? met[i] : 0;
    c->set_ms = i < ns ? set[i] : 0;
    c->remind_ms = i < nr ? rem[i] : 0;
  }
  o->clocks.n = n;
  o->version = (uint32_t)s_i(r, row, C_VERSION);
  o->policy = (uint32_t)s_i(r, row, C_POLICY);
  o->level = (int)s_i(r, row, C_LEVEL);
  o->returns = (int)s_i(r, row, C_RETURNS);
  o->reopens = (int)s_i(r, row, C_REOPENS);
  o->fb_resolved = (int)s_i(r, row, C_FB_RESOLVED);
  o->ladder_step = (int)s_i(r, row, C_LADDER_STEP);
  o->ladder_next = s_i(r, row, C_LADDER_NEXT);
  o->signed_at = s_i(r, row, C_SIGNED);
  o->resolved_at = s_i(r, row, C_RESOLVED);
  o->closed_at = s_i(r, row, C_CLOSED);
  o->ext_until = s_i(r, row, C_EXT_UNTIL);
  o->lead_since = s_i(r, row, C_LEAD_SINCE);
  o->received = s_i(r, row, C_RECEIVED);
  return 0;
}

void order_clocks_fill(order_t *o, const clk_policy_t *p) {
  for (int i = 0; i < o->clocks.n; i++) {
    clk_t *c = &o->clocks.c[i];
    /* untouched since the opening: lead_since is the opening */
    if (o->no_set) c->set_ms = clk_is_sign(c->name) ? o->lead_since : o->received;
    if (o->no_remind) c->remind_ms = clk_running(c) ? clk_remind_after(p, c, o->lead_since) : 0;
  }
  o->no_set = o->no_remind = 0;
}

int order_done_state(const char *state) {
  return !strcmp(state, "resolved") || !strcmp(state, "closed") || !strcmp(state, "void") ||
         !strcmp(state, "merged");
}

void order_event(const order_t *o, Whistle__WorkEvent *ev, uint32_t version, int64_t now,
                 char *summary, Whistle__Deadline *dl, Whistle__Deadline **dlp) {
  whistle__work_event__init(ev);
  dispatch_summary(summary, DISPATCH_SUMMARY_MAX, o->klass, o->community, o->grid, o->address,
                   o->body);
  for (int i = 0; i < o->clocks.n; i++) {
    const clk_t *c = &o->clocks.c[i];
    if (!clk_running(c)) continue;
    whistle__deadline__init(&dl[ev->n_deadlines]);
    dl[ev->n_deadlines].name = (char *)c->name;
    dl[ev->n_deadlines].due_at_ms = c->due_ms;
    dlp[ev->n_deadlines] = &dl[ev->n_deadlines];
    ev->n_deadlines++;
  }
  ev->deadlines = dlp;
  ev->ticket_id = (char *)o->ticket;
  ev->version = version;
  ev->state = (char *)o->state;
  ev->color = wh_color_parse(o->color);
  ev->level = (uint32_t)o->level;
  ev->lead = (char *)o->lead;
  ev->co = (char **)o->co;
  ev->n_co = (size_t)o->nco;
  ev->summary = summary;
  ev->reporter_masked = (char *)o->reporter;
  ev->community = (char *)o->community;
  ev->grid = (char *)o->grid;
  ev->at_ms = now;
}

static const wh_stmt_t s_escalate = {
    "order_escalate",
    "INSERT INTO escalation (ticket_id, step, party, at, by_whom)"
    " VALUES ($1, $2::int, $3, to_timestamp($4::bigint::double precision / 1000), $5)"
    " ON CONFLICT (ticket_id, step) DO NOTHING"};

int order_step_row(wh_pg_t *pg, const wh_org_t *org, const clk_policy_t *p, const order_t *o,
                   int step, const char *by, int64_t now, char *party) {
  if (step < 0 || step >= p->nsteps) return WH_EINVAL;
  wh_org_supervisor(org, p->ladder[step].to, o->community, party, CLK_NAME_MAX);
  char b_step[16], b_now[24];
  snprintf(b_step, sizeof b_step, "%d", step + 1);
  snprintf(b_now, sizeof b_now, "%" PRId64, now);
  const char *v[5] = {o->ticket, b_step, party, b_now, by};
  PGresult *r = wh_pg_run(pg, &s_escalate, 5, v, NULL, NULL);
  if (!r) return WH_EDB;
  PQclear(r);
  return 0;
}
