/* desk - the parties' actions and reads, each request its own transaction.
 *
 * An action reads the order under its row lock, asks machine.c's table
 * what it does, and writes the order's new row as a whole (the update is
 * fenced by the version it read), its timeline event, the co-party's part,
 * the outbox's WORK_ACTED event and the answer under the request id, then
 * commits. The windows an action is judged by (return, extension, feedback,
 * reopen) are reckoned from the order's own times with the calendar. */
#include "desk.h"
#include "dispatch.h"
#include "machine.h"
#include "order.h"
#include "wh_bus.h"
#include "wh_clock.h"
#include "wh_codec.h"
#include "wh_consumer.h"
#include "wh_err.h"
#include "wh_log.h"
#include "wh_rules.h"
#include "wh_text.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DESK_QUEUE 256    /* requests waiting for the idle phase, at most */
#define DESK_PER_TURN 8   /* answered per turn of the loop */
#define DESK_NOTE_MAX 2000 /* characters of a note */
#define DESK_LIST_MAX 100 /* orders a page holds at most */
/* An answer is kept under this many bytes (the frame cap is 256 KB): a
 * page or a timeline that would pass it is cut, and says so. */
#define DESK_ANSWER_BUDGET (200 * 1024)
#define DESK_PURGE_MS (10 * 60000) /* how often old request ids are let go */


typedef struct {
  zmq_msg_t route, body;
} s_req_t;

struct desk_s {
  desk_conf_t c;
  wh_bus_t *bus;
  uv_idle_t *idle;
  s_req_t q[DESK_QUEUE];
  int head, n;
  int64_t purged_ms;
};

/* ---- the order as it is read -------------------------------------------- */

#define MS ORDER_MS

static const wh_stmt_t s_order_locked = {"desk_order_locked",
                                         ORDER_SELECT " WHERE w.ticket_id = $1 FOR UPDATE"};
static const wh_stmt_t s_order = {"desk_order", ORDER_SELECT " WHERE w.ticket_id = $1"};
static const wh_stmt_t s_list = {
    "desk_list",
    ORDER_SELECT " WHERE ($1::text IS NULL OR w.lead = $1 OR $1 = ANY (w.co)"
    "   OR EXISTS (SELECT 1 FROM escalation e WHERE e.ticket_id = w.ticket_id AND e.party = $1))"
    " AND ($2::text IS NULL OR w.state = $2) AND ($3::text IS NULL OR w.color = $3)"
    " AND ($4::int IS NULL OR w.level = $4)"
    " AND ($5::bigint IS NULL OR (w.state NOT IN ('resolved', 'closed', 'void', 'merged')"
    "   AND EXISTS (SELECT 1 FROM unnest(w.due_names, w.due_ms, w.due_met_ms) AS x(n, d, m)"
    "               WHERE x.m IS NULL AND x.d < $5::bigint AND x.n <> 'feedback')))"
    " AND ($6::text IS NULL OR w.extension_state = $6)"
    " AND ($7::text IS NULL OR w.ticket_id > $7)"
    " ORDER BY w.ticket_id LIMIT $8::int"};
static const wh_stmt_t s_parts = {
    "desk_parts",
    "SELECT party, " MS("signed_at") ", " MS("done_at")
    " FROM order_part WHERE ticket_id = $1 ORDER BY party"};
static const wh_stmt_t s_timeline = {
    "desk_timeline",
    "SELECT " MS("at") ", kind, actor, note, coalesce(internal, ''), coalesce(version, 0)::bigint,"
    " coalesce(role, '') FROM"
    " (SELECT at, o, 0::bigint AS id, kind, actor, note, NULL::text AS internal,"
    "   NULL::int AS version, NULL::text AS role FROM opening WHERE ticket_id = $1"
    "  UNION ALL SELECT at, 100, id, kind, actor, note, internal, version, role"
    "   FROM timeline WHERE ticket_id = $1) t ORDER BY at, o, id"};
static const wh_stmt_t s_escalations = {
    "desk_escalations",
    "SELECT step::bigint, party, " MS("at") ", by_whom FROM escalation WHERE ticket_id = $1"
    " ORDER BY step"};
static const wh_stmt_t s_seen = {
    "desk_seen", "SELECT reply FROM desk_request WHERE party = $1 AND request_id = $2"};
static const wh_stmt_t s_remember = {
    "desk_remember",
    "INSERT INTO desk_request (party, request_id, ticket_id, reply) VALUES ($1, $2, $3, $4)"};
static const wh_stmt_t s_purge = {
    "desk_purge", "DELETE FROM desk_request WHERE at < now() - make_interval(hours => $1::int)"};
#define T(n) "to_timestamp(nullif(" n "::bigint, 0)::double precision / 1000)"
static const wh_stmt_t s_update = {
    "desk_update",
    "UPDATE work_order SET version = version + 1, updated_at = now(), state = $3,"
    " before_return = nullif($4, ''), returns = nullif($5::int, 0), reopens = nullif($6::int, 0),"
    " lead = $7, co = $8::text[], klass = $9, color = $10, level = $11::int,"
    " lead_since = " T("$12") ", signed_at = " T("$13") ", resolved_at = " T("$14") ","
    " closed_at = " T("$15") ", extension_until = " T("$16") ", extension_state = nullif($17, ''),"
    " feedback_rating = nullif($18, ''),"
    " feedback_resolved = CASE WHEN $18 = '' THEN NULL ELSE $19::bool END,"
    " due_names = $20::text[], due_ms = $21::bigint[], due_overdue_ms = $22::bigint[],"
    " due_met_ms = $23::bigint[], next_due_at = " T("$24") ", due_set_ms = $25::bigint[],"
    " due_remind_ms = $26::bigint[], ladder_step = nullif($27::int, 0),"
    " ladder_next_at = " T("$28")
    " WHERE ticket_id = $1 AND version = $2::int RETURNING version"};
static const wh_stmt_t s_event = {
    "desk_event",
    "INSERT INTO timeline (ticket_id, at, kind, actor, note, version, role, internal)"
    " VALUES ($1, " T("$2") ", $3, $4, $5, $6::int, $7, nullif($8, ''))"};
static const wh_stmt_t s_part = {
    "desk_part",
    "INSERT INTO order_part (ticket_id, party, signed_at, done_at)"
    " VALUES ($1, $2, " T("$3") ", " T("$4") ") ON CONFLICT (ticket_id, party) DO UPDATE SET"
    " signed_at = coalesce(order_part.signed_at, EXCLUDED.signed_at),"
    " done_at = coalesce(order_part.done_at, EXCLUDED.done_at)"};
static const wh_stmt_t s_parts_clear = {"desk_parts_clear",
                                        "DELETE FROM order_part WHERE ticket_id = $1"};
static const wh_stmt_t s_repeats = {
    "desk_repeats",
    "SELECT ticket_id, reporter_masked FROM work_order WHERE duplicate_of = $1"
    " AND state = 'merged' ORDER BY ticket_id LIMIT 100"};

static const char *s_v(const PGresult *r, int row, int col) { return PQgetvalue(r, row, col); }
static int64_t s_i(const PGresult *r, int row, int col) {
  return (int64_t)wh_pg_get_u64(r, row, col);
}

/* ---- roles and windows ---------------------------------------------------- */

static unsigned s_roles(const desk_t *d, const order_t *o, const char *who) {
  if (!strcmp(who, d->c.svc->center)) return WR_CENTER;
  if (!strcmp(who, d->c.hotline)) return WR_HOTLINE;
  unsigned roles = 0;
  if (!strcmp(o->lead, who)) roles |= WR_LEAD;
  for (int i = 0; i < o->nco; i++)
    if (!strcmp(o->co[i], who)) roles |= WR_CO;
  return roles;
}

static const char *s_roles_name(unsigned roles, char *buf, size_t len) {
  wh_str_t s;
  wh_str_init(&s, buf, len);
  static const struct { unsigned bit; const char *name; } names[] = {
      {WR_LEAD, "lead"}, {WR_CO, "co"}, {WR_CENTER, "center"}, {WR_HOTLINE, "hotline"},
      {WR_SUPERVISOR, "supervisor"}};
  for (size_t i = 0; i < sizeof names / sizeof *names; i++)
    if (roles & names[i].bit) wh_str_cat(&s, s.len ? "," : "", names[i].name, (char *)NULL);
  return buf;
}

/* The role an event names its actor by: the first it has. */
static const char *s_role_of(unsigned roles) {
  return roles & WR_CENTER ? "center" : roles & WR_HOTLINE ? "hotline" : roles & WR_LEAD ? "lead"
                                                                                        : "co";
}

/* The policy frozen onto the order (the one in force for orders older
 * than policies). */
static const clk_policy_t *s_policy(const desk_t *d, const order_t *o) {
  return d->c.policy(d->c.arg, o->policy);
}

/* An order's row read, its clocks filled in as its policy says. */
static int s_read(const desk_t *d, const PGresult *r, int row, order_t *o) {
  int rc = order_read(r, row, o);
  if (!rc) order_clocks_fill(o, s_policy(d, o));
  return rc;
}

/* The deadline an extension moves: the last of the level's own clocks. */
static int64_t s_resolve_due(const order_t *o) {
  int i = clk_main(&o->clocks);
  return i < 0 ? 0 : o->clocks.c[i].due_ms;
}

static int64_t s_return_until(const desk_t *d, const order_t *o) {
  return clk_span_end(*d->c.cal, s_policy(d, o)->return_window, o->lead_since);
}

static int64_t s_feedback_until(const desk_t *d, const order_t *o) {
  return o->resolved_at ? clk_span_end(*d->c.cal, s_policy(d, o)->feedback_window, o->resolved_at)
                        : 0;
}

static void s_machine_order(const desk_t *d, const order_t *o, int part_signed, int part_done,
                            wo_order_t *m) {
  const clk_policy_t *p = s_policy(d, o);
  memset(m, 0, sizeof *m);
  int st = wo_state_parse(o->state);
  m->state = st < 0 ? WO_NSTATES : (wo_state_t)st;
  m->version = o->version;
  int br = wo_state_parse(o->before_return);
  m->before_return = br < 0 ? WO_DISPATCHED : (wo_state_t)br;
  m->part_signed = part_signed;
  m->part_done = part_done;
  m->return_until_ms = s_return_until(d, o);
  m->resolve_due_ms = s_resolve_due(o);
  if (m->resolve_due_ms)
    m->extension_max_ms =
        clk_span_end(*d->c.cal, p->extension_max, m->resolve_due_ms) - m->resolve_due_ms;
  m->extension_pending = !strcmp(o->ext_state, "requested");
  m->feedback_given = o->rating[0] != '\0';
  m->feedback_until_ms = s_feedback_until(d, o);
  m->reopen_until_ms = o->closed_at ? clk_span_end(*d->c.cal, p->reopen_window, o->closed_at) : 0;
  m->ladder_left = p->nsteps - o->ladder_step;
}

/* ---- answers ------------------------------------------------------------ */

static void s_send_reply(desk_t *d, zmq_msg_t *route, const char *mid, Whistle__DeskReply *rep) {
  Whistle__Envelope out = WHISTLE__ENVELOPE__INIT;
  out.message_id = (char *)mid;
  out.sender = "dispatch";
  out.body_case = WHISTLE__ENVELOPE__BODY_DESK_REPLY;
  out.desk_reply = rep;
  wh_reply(d->bus, route, &out);
}

static void s_refuse(desk_t *d, zmq_msg_t *route, const char *mid, const char *rid, int err,
                     const char *text) {
  Whistle__DeskReply rep = WHISTLE__DESK_REPLY__INIT;
  Whistle__Error e = WHISTLE__ERROR__INIT;
  e.code = wh_err_to_wire(err);
  e.text = (char *)text;
  rep.request_id = (char *)rid;
  rep.error = &e;
  s_send_reply(d, route, mid, &rep);
}

/* Fills v (strings borrowed from o's result or a) with the order as roles
 * (the asking party's) see it at now. */
static int s_view(const order_t *o, unsigned roles, int64_t now, wh_arena_t *a,
                  Whistle__OrderView *v, const desk_t *d) {
  const PGresult *r = o->r;
  int k = o->row;
  whistle__order_view__init(v);
  v->ticket_id = (char *)o->ticket;
  v->external_id = (char *)s_v(r, k, C_EXT);
  v->source = (char *)s_v(r, k, C_SOURCE);
  v->community = (char *)s_v(r, k, C_COMMUNITY);
  v->grid = (char *)s_v(r, k, C_GRID);
  v->address = (char *)s_v(r, k, C_ADDRESS);
  v->category = (char *)s_v(r, k, C_CATEGORY);
  v->klass = (char *)o->klass;
  v->color = wh_color_parse(o->color);
  v->level = (uint32_t)o->level;
  v->lead = (char *)o->lead;
  v->co = (char **)o->co;
  v->n_co = (size_t)o->nco;
  v->state = (char *)o->state;
  v->duplicate_of = (char *)s_v(r, k, C_DUP);
  v->rule = (char *)s_v(r, k, C_RULE);
  v->words = (char *)s_v(r, k, C_WORDS);
  v->danger = (char *)s_v(r, k, C_DANGER);
  v->danger_words = (char *)s_v(r, k, C_DANGER_WORDS);
  v->weight = (uint32_t)s_i(r, k, C_WEIGHT);
  v->received_at_ms = s_i(r, k, C_RECEIVED);
  v->text = (char *)s_v(r, k, C_BODY);
  v->reporter_masked = (char *)s_v(r, k, C_REPORTER);
  v->version = o->version;
  v->signed_at_ms = o->signed_at;
  v->resolved_at_ms = o->resolved_at;
  v->closed_at_ms = o->closed_at;
  v->returns = (uint32_t)o->returns;
  v->reopens = (uint32_t)o->reopens;
  v->extension_until_ms = o->ext_until;
  v->extension_state = (char *)o->ext_state;
  v->feedback_rating = (char *)o->rating;
  v->feedback_resolved = o->fb_resolved;
  char *rn = wh_arena_alloc(a, 64);
  Whistle__OrderDeadline *dl = wh_arena_alloc(a, CLK_MAX * sizeof *dl);
  Whistle__OrderDeadline **dlp = wh_arena_alloc(a, CLK_MAX * sizeof *dlp);
  char **co = wh_arena_alloc(a, WH_MAX_CO * sizeof *co);
  if (!rn || !dl || !dlp || !co) return WH_ENOMEM;
  /* o's arrays may live on the caller's stack: the view keeps copies */
  for (int i = 0; i < o->nco; i++) {
    size_t n = strlen(o->co[i]) + 1;
    if (!(co[i] = wh_arena_alloc(a, n))) return WH_ENOMEM;
    memcpy(co[i], o->co[i], n);
  }
  v->co = co;
  v->your_roles = (char *)s_roles_name(roles, rn, 64);
  int open = !order_done_state(o->state);
  for (int i = 0; i < o->clocks.n; i++) {
    const clk_t *c = &o->clocks.c[i];
    whistle__order_deadline__init(&dl[i]);
    size_t n = strlen(c->name) + 1;
    if (!(dl[i].name = wh_arena_alloc(a, n))) return WH_ENOMEM;
    memcpy(dl[i].name, c->name, n);
    dl[i].due_at_ms = c->due_ms;
    dl[i].met = c->met_ms != 0;
    dl[i].lapsed = c->lapsed_ms != 0;
    dl[i].remind_at_ms = c->remind_ms;
    dl[i].set_at_ms = c->set_ms;
    /* a feedback window is the center's, not the lead's: never "overdue" */
    dl[i].overdue = open && !c->met_ms && c->due_ms < now && !clk_is_feedback(c->name);
    if (dl[i].overdue) v->overdue = 1;
    dlp[i] = &dl[i];
  }
  v->deadlines = dlp;
  v->n_deadlines = (size_t)o->clocks.n;
  v->ladder_next_ms = o->ladder_next;
  v->policy = o->policy;
  if (!strcmp(o->state, "dispatched") || !strcmp(o->state, "signed"))
    v->return_until_ms = s_return_until(d, o);
  v->feedback_until_ms = s_feedback_until(d, o);
  return 0;
}

/* Adds the order's parts to v (a's memory); PGresults go to *keep. */
static int s_view_parts(desk_t *d, const char *ticket, Whistle__OrderView *v, wh_arena_t *a,
                        PGresult **keep) {
  const char *p[1] = {ticket};
  PGresult *r = wh_pg_run_binary(d->c.svc->pg, &s_parts, 1, p);
  if (!r) return WH_EDB;
  *keep = r;
  int n = PQntuples(r);
  if (!n) return 0;
  Whistle__OrderPart *parts = wh_arena_alloc(a, (size_t)n * sizeof *parts);
  Whistle__OrderPart **pp = wh_arena_alloc(a, (size_t)n * sizeof *pp);
  if (!parts || !pp) return WH_ENOMEM;
  for (int i = 0; i < n; i++) {
    whistle__order_part__init(&parts[i]);
    parts[i].party = (char *)s_v(r, i, 0);
    parts[i].signed_at_ms = s_i(r, i, 1);
    parts[i].done_at_ms = s_i(r, i, 2);
    pp[i] = &parts[i];
  }
  v->parts = pp;
  v->n_parts = (size_t)n;
  return 0;
}

/* Adds the ladder steps the order reached to v; *supervisor says whether
 * `who` is one of their parties. */
static int s_view_escalations(desk_t *d, const char *ticket, const char *who,
                              Whistle__OrderView *v, wh_arena_t *a, PGresult **keep,
                              int *supervisor) {
  const char *p[1] = {ticket};
  PGresult *r = wh_pg_run_binary(d->c.svc->pg, &s_escalations, 1, p);
  if (!r) return WH_EDB;
  *keep = r;
  int n = PQntuples(r);
  *supervisor = 0;
  if (!n) return 0;
  Whistle__OrderEscalation *e = wh_arena_alloc(a, (size_t)n * sizeof *e);
  Whistle__OrderEscalation **ep = wh_arena_alloc(a, (size_t)n * sizeof *ep);
  if (!e || !ep) return WH_ENOMEM;
  for (int i = 0; i < n; i++) {
    whistle__order_escalation__init(&e[i]);
    e[i].step = (uint32_t)s_i(r, i, 0);
    e[i].party = (char *)s_v(r, i, 1);
    e[i].at_ms = s_i(r, i, 2);
    e[i].by = (char *)s_v(r, i, 3);
    if (!strcmp(e[i].party, who)) *supervisor = 1;
    ep[i] = &e[i];
  }
  v->escalations = ep;
  v->n_escalations = (size_t)n;
  return 0;
}

static int s_view_timeline(desk_t *d, const char *ticket, Whistle__OrderView *v, wh_arena_t *a,
                           PGresult **keep) {
  const char *p[1] = {ticket};
  PGresult *r = wh_pg_run_binary(d->c.svc->pg, &s_timeline, 1, p);
  if (!r) return WH_EDB;
  *keep = r;
  int n = PQntuples(r);
  if (!n) return 0;
  Whistle__OrderEvent *ev = wh_arena_alloc(a, (size_t)n * sizeof *ev);
  Whistle__OrderEvent **evp = wh_arena_alloc(a, (size_t)n * sizeof *evp);
  if (!ev || !evp) return WH_ENOMEM;
  v->timeline = evp;
  size_t size = whistle__order_view__get_packed_size(v);
  for (int i = 0; i < n; i++) {
    whistle__order_event__init(&ev[i]);
    ev[i].at_ms = s_i(r, i, 0);
    ev[i].kind = (char *)s_v(r, i, 1);
    ev[i].actor = (char *)s_v(r, i, 2);
    ev[i].note = (char *)s_v(r, i, 3);
    ev[i].internal_note = (char *)s_v(r, i, 4);
    ev[i].version = (uint32_t)s_i(r, i, 5);
    ev[i].role = (char *)s_v(r, i, 6);
    size += whistle__order_event__get_packed_size(&ev[i]) + 8;
    if (size > DESK_ANSWER_BUDGET) {
      v->timeline_cut = 1;
      break;
    }
    evp[v->n_timeline++] = &ev[i];
  }
  return 0;
}

/* ---- show and list ---------------------------------------------------- */

static void s_show(desk_t *d, zmq_msg_t *route, const char *mid, const char *rid,
                   const char *who, const Whistle__DeskShow *q) {
  if (wh_code_check(q->ticket_id, 64)) {
    s_refuse(d, route, mid, rid, WH_EFIELD, "ticket_id: a ticket id");
    return;
  }
  const char *p[1] = {q->ticket_id};
  PGresult *r = wh_pg_run_binary(d->c.svc->pg, &s_order, 1, p);
  if (!r) {
    s_refuse(d, route, mid, rid, WH_EDB, "dispatch's store is unavailable; ask again");
    return;
  }
  if (PQntuples(r) != 1) {
    PQclear(r);
    s_refuse(d, route, mid, rid, WH_ETICKET, "no such ticket at dispatch (yet)");
    return;
  }
  order_t o;
  wh_arena_t *a = wh_arena_new();
  PGresult *parts = NULL, *tl = NULL, *esc = NULL;
  Whistle__OrderView v;
  whistle__order_view__init(&v);
  int rc = a ? s_read(d, r, 0, &o) : WH_ENOMEM;
  unsigned roles = rc ? 0 : s_roles(d, &o, who);
  int supervisor = 0;
  /* A party the ladder reached reads the order too. */
  if (!rc) rc = s_view_escalations(d, o.ticket, who, &v, a, &esc, &supervisor);
  if (!rc && !roles && supervisor) roles = WR_SUPERVISOR;
  if (!rc && !roles) {
    s_refuse(d, route, mid, rid, WH_EFORBIDDEN, "this party has no role on that order");
  } else {
    if (!rc) {
      /* s_view starts the view afresh: the escalations go on after it */
      Whistle__OrderEscalation **ep = v.escalations;
      size_t nep = v.n_escalations;
      rc = s_view(&o, roles, wh_clock_now_ms(), a, &v, d);
      v.escalations = ep;
      v.n_escalations = nep;
    }
    if (!rc) rc = s_view_parts(d, o.ticket, &v, a, &parts);
    if (!rc) rc = s_view_timeline(d, o.ticket, &v, a, &tl);
    if (rc) {
      s_refuse(d, route, mid, rid, rc, rc == WH_EDB ? "dispatch's store is unavailable; ask again"
                                                    : wh_strerror(rc));
    } else {
      Whistle__DeskReply rep = WHISTLE__DESK_REPLY__INIT;
      rep.request_id = (char *)rid;
      rep.order = &v;
      s_send_reply(d, route, mid, &rep);
    }
  }
  if (esc) PQclear(esc);
  if (parts) PQclear(parts);
  if (tl) PQclear(tl);
  PQclear(r);
  wh_arena_destroy(&a);
}

static void s_list_orders(desk_t *d, zmq_msg_t *route, const char *mid, const char *rid,
                          const char *who, const Whistle__DeskList *q) {
  int sees_all = !strcmp(who, d->c.svc->center) || !strcmp(who, d->c.hotline);
  const char *party = NULL;
  if (q->party[0] && wh_code_check(q->party, 95)) {
    s_refuse(d, route, mid, rid, WH_EFIELD, "party: a party code");
    return;
  }
  if (q->mine) party = who;
  else if (q->party[0]) party = q->party;
  else if (!sees_all) party = who;
  if (party && strcmp(party, who) && !sees_all) {
    s_refuse(d, route, mid, rid, WH_EFORBIDDEN, "a party lists its own orders only");
    return;
  }
  if (q->state[0] && wo_state_parse(q->state) < 0) {
    s_refuse(d, route, mid, rid, WH_EFIELD,
             "state: dispatched, signed, in_progress, resolved, closed, returned, reopened,"
             " merged or void");
    return;
  }
  if (q->extension[0] && strcmp(q->extension, "pending")) {
    s_refuse(d, route, mid, rid, WH_EFIELD, "extension: pending");
    return;
  }
  if (q->after[0] && wh_code_check(q->after, 64)) {
    s_refuse(d, route, mid, rid, WH_EFIELD, "after: the cursor a page gave");
    return;
  }
  if (q->level > 3 || (q->color && !wh_color_name(q->color)[0])) {
    s_refuse(d, route, mid, rid, WH_EFIELD, "color red, yellow or green; level 1, 2 or 3");
    return;
  }
  int limit = q->limit && q->limit < DESK_LIST_MAX ? (int)q->limit : DESK_LIST_MAX;
  int64_t now = wh_clock_now_ms();
  char level[4], nowbuf[24], lim[8];
  snprintf(level, sizeof level, "%u", q->level);
  snprintf(nowbuf, sizeof nowbuf, "%" PRId64, now);
  snprintf(lim, sizeof lim, "%d", limit + 1);
  const char *p[8] = {party,
                      q->state[0] ? q->state : NULL,
                      q->color ? wh_color_name(q->color) : NULL,
                      q->level ? level : NULL,
                      q->overdue ? nowbuf : NULL,
                      q->extension[0] ? "requested" : NULL,
                      q->after[0] ? q->after : NULL,
                      lim};
  PGresult *r = wh_pg_run_binary(d->c.svc->pg, &s_list, 8, p);
  if (!r) {
    s_refuse(d, route, mid, rid, WH_EDB, "dispatch's store is unavailable; ask again");
    return;
  }
  int n = PQntuples(r);
  wh_arena_t *a = wh_arena_new();
  Whistle__OrderView *views = a ? wh_arena_alloc(a, (size_t)(n + 1) * sizeof *views) : NULL;
  Whistle__OrderView **vp = a ? wh_arena_alloc(a, (size_t)(n + 1) * sizeof *vp) : NULL;
  Whistle__DeskReply rep = WHISTLE__DESK_REPLY__INIT;
  rep.request_id = (char *)rid;
  rep.orders = vp;
  int rc = views && vp ? 0 : WH_ENOMEM;
  size_t size = 64;
  for (int i = 0; i < n && !rc; i++) {
    if (i == limit) {
      rep.more = 1;
      break;
    }
    order_t o;
    rc = s_read(d, r, i, &o);
    unsigned ro = rc ? 0 : s_roles(d, &o, who);
    if (!ro && party && !strcmp(party, who)) ro = WR_SUPERVISOR; /* listed by a ladder step */
    if (!rc) rc = s_view(&o, ro, now, a, &views[i], d);
    if (rc) break;
    size += whistle__order_view__get_packed_size(&views[i]) + 8;
    if (size > DESK_ANSWER_BUDGET && i > 0) {
      rep.more = 1;
      break;
    }
    vp[rep.n_orders++] = &views[i];
  }
  if (rc) {
    s_refuse(d, route, mid, rid, rc, wh_strerror(rc));
  } else {
    if (rep.more && rep.n_orders) rep.next_after = vp[rep.n_orders - 1]->ticket_id;
    s_send_reply(d, route, mid, &rep);
  }
  PQclear(r);
  wh_arena_destroy(&a);
}

/* ---- actions ------------------------------------------------------------ */

static int s_wo_err(wo_code_t c) {
  switch (c) {
  case WO_FORBIDDEN: return WH_EFORBIDDEN;
  case WO_WRONG_STATE: return WH_EWRONGSTATE;
  case WO_TOO_LATE: return WH_ETOOLATE;
  case WO_TOO_FAR: return WH_ETOOFAR;
  case WO_BAD_REASON: return WH_EREASON;
  case WO_BAD_TIME: return WH_ETIME;
  case WO_STALE: return WH_ESTALE;
  default: return WH_EINVAL;
  }
}

/* Checks what an action carries before the order is read: a clear error,
 * and nothing read or written. */
static int s_check_action(const desk_t *d, const Whistle__DeskAction *q, const char **why) {
  if (wh_code_check(q->ticket_id, 64)) return *why = "ticket_id: a ticket id", WH_EFIELD;
  int a = wo_action_parse(q->action);
  if (a < 0)
    return *why = "action: sign, progress, return, assign, uphold, extend, approve, refuse,"
                  " resolve, feedback, close, reopen, void or supervise",
           WH_EFIELD;
  int rc = wh_text_check(q->note, 0, DESK_NOTE_MAX);
  if (!rc) rc = wh_text_check(q->internal_note, 0, DESK_NOTE_MAX);
  if (rc) return *why = "a note is valid UTF-8 of at most 2000 characters", rc;
  if (q->reason[0] && wh_code_check(q->reason, 32))
    return *why = "reason: one of the codes", WH_EREASON;
  if ((a == WA_PROGRESS || a == WA_RESOLVE || a == WA_RETURN) && !q->note[0])
    return *why = "TEXT is required: what was done, or why", WH_EMISSING;
  if (a == WA_ASSIGN) {
    const wh_org_t *org = *d->c.org;
    if (!q->lead[0] || wh_code_check(q->lead, 95) || !wh_org_valid_party(org, q->lead))
      return *why = "--lead: a party of the org chart", WH_EPARTY;
    if (q->n_co > WH_MAX_CO) return *why = "--co: at most 8 parties", WH_EFIELD;
    for (size_t i = 0; i < q->n_co; i++) {
      if (wh_code_check(q->co[i], 95) || !wh_org_valid_party(org, q->co[i]))
        return *why = "--co: parties of the org chart", WH_EPARTY;
      if (!strcmp(q->co[i], q->lead)) return *why = "--co: the lead is not its own co-party", WH_EFIELD;
      for (size_t j = 0; j < i; j++)
        if (!strcmp(q->co[i], q->co[j])) return *why = "--co: each party once", WH_EFIELD;
    }
    if (q->klass[0] && (wh_code_check(q->klass, 63) || !wh_rules_category(*d->c.rules, q->klass)))
      return *why = "--class: the code of a class of the catalogue", WH_EFIELD;
    if (q->color && !wh_color_name(q->color)[0]) return *why = "--color: red, yellow or green", WH_EFIELD;
    if (q->level > 3) return *why = "--level: 1, 2 or 3", WH_EFIELD;
  }
  return 0;
}

/* "{1,NULL,3}": zeros as NULL. */
static void s_int_array(const int64_t *v, int n, int zero_null, char *out, size_t len) {
  wh_str_t s;
  wh_str_init(&s, out, len);
  wh_str_add(&s, "{");
  for (int i = 0; i < n; i++) {
    if (i) wh_str_add(&s, ",");
    if (zero_null && !v[i]) wh_str_add(&s, "NULL");
    else wh_str_int(&s, v[i]);
  }
  wh_str_add(&s, "}");
}

/* The order as the action leaves it: order_t's fields over new storage. */
typedef struct {
  const char *state, *before_return, *lead, *klass, *color, *ext_state, *rating;
  char *co[WH_MAX_CO];
  int nco, level, returns, reopens, fb_resolved, ladder_step;
  int64_t lead_since, signed_at, resolved_at, closed_at, ext_until, ladder_next;
  clk_set_t clocks;
  char supervisor[CLK_NAME_MAX]; /* supervise: the party the step reached */
} s_next_t;

/* Works out the order's new fields from o, the outcome's effects and q. */
static void s_next(const desk_t *d, const order_t *o, const Whistle__DeskAction *q,
                   const wo_outcome_t *out, const char *who, int64_t now, s_next_t *n) {
  const clk_policy_t *p = s_policy(d, o);
  const wh_calendar_t *cal = *d->c.cal;
  memset(n, 0, sizeof *n);
  n->state = wo_state_name(out->next);
  n->before_return = o->before_return;
  n->lead = o->lead;
  n->klass = o->klass;
  n->color = o->color;
  n->ext_state = o->ext_state;
  n->rating = o->rating;
  for (int i = 0; i < o->nco; i++) n->co[i] = o->co[i];
  n->nco = o->nco;
  n->level = o->level;
  n->returns = o->returns;
  n->reopens = o->reopens;
  n->fb_resolved = o->fb_resolved;
  n->lead_since = o->lead_since;
  n->signed_at = o->signed_at;
  n->resolved_at = o->resolved_at;
  n->closed_at = o->closed_at;
  n->ext_until = o->ext_until;
  n->ladder_step = o->ladder_step;
  n->ladder_next = o->ladder_next;
  n->clocks = o->clocks;
  unsigned e = out->effects;
  if (e & WE_SIGN_MET) {
    n->signed_at = now;
    clk_meet(&n->clocks, "sign_for", now);
  }
  if (e & WE_PART_SIGNED) {
    char name[CLK_NAME_MAX];
    snprintf(name, sizeof name, "sign_for:%s", who);
    clk_meet(&n->clocks, name, now);
  }
  if (e & WE_RETURN_COUNTED) {
    n->returns++;
    n->before_return = o->state;
  }
  if (e & WE_CLOCKS_RESTART) { /* assign: a new lead, every clock from now */
    n->lead = q->lead;
    n->nco = (int)q->n_co;
    for (size_t i = 0; i < q->n_co; i++) n->co[i] = q->co[i];
    if (q->klass[0]) n->klass = q->klass;
    if (q->color) n->color = wh_color_name(q->color);
    if (q->level) n->level = (int)q->level;
    n->lead_since = now;
    n->signed_at = 0;
    n->ext_until = 0;
    n->ext_state = "";
    n->before_return = "";
    n->ladder_next = 0; /* the ladder waits for a lapse of the new lead's clocks */
    clk_start(p, cal, n->level, strcmp(n->lead, d->c.svc->center) != 0, n->co, (size_t)n->nco,
              now, now, now, &n->clocks);
  }
  if (e & WE_EXTENSION_ASKED) {
    n->ext_until = q->until_ms;
    n->ext_state = "requested";
  }
  if (e & WE_DEADLINE_MOVED) {
    n->ext_state = "approved";
    clk_move(p, &n->clocks, clk_main(&n->clocks), o->ext_until, now);
  }
  if (e & WE_EXTENSION_REFUSED) n->ext_state = "refused";
  if (e & WE_FEEDBACK_CLOCK) { /* resolved: the lead's clocks met, the ladder stops */
    n->resolved_at = now;
    clk_meet_all(&n->clocks, now);
    n->ladder_next = 0;
    clk_drop(&n->clocks, "feedback", 0);
    clk_add(p, &n->clocks, "feedback", now, clk_span_end(cal, p->feedback_window, now), now);
  }
  if (e & WE_FEEDBACK_NOTED) {
    int r = wo_rating_parse(q->reason);
    n->rating = r >= 0 ? q->reason : "";
    n->fb_resolved = !q->unresolved && r != WF_UNSATISFIED;
    clk_meet(&n->clocks, "feedback", now);
  }
  if (out->next == WO_CLOSED) {
    n->closed_at = now;
    clk_meet(&n->clocks, "feedback", now);
  }
  if (out->next == WO_VOID) {
    clk_meet_all(&n->clocks, now);
    n->ladder_next = 0;
  }
  if (e & WE_RESOLVE_RESTART) { /* back with the same lead: its clocks from now */
    n->reopens += (e & WE_REOPEN_COUNTED) ? 1 : 0;
    n->resolved_at = 0;
    n->closed_at = 0;
    n->rating = "";
    n->fb_resolved = 0;
    n->signed_at = 0;
    clk_start(p, cal, n->level, strcmp(n->lead, d->c.svc->center) != 0, NULL, 0, now, now, now,
              &n->clocks);
  }
  if (e & WE_LADDER_STEP) { /* supervise: the next step now; a running ladder goes on from it */
    n->ladder_step++;
    if (n->ladder_next) n->ladder_next = clk_ladder_due(p, cal, n->ladder_step, now);
    wh_org_supervisor(*d->c.org, p->ladder[o->ladder_step].to, o->community, n->supervisor,
                      sizeof n->supervisor);
  }
}

/* The note the timeline keeps: what the action decided, then its text. */
static void s_event_note(const Whistle__DeskAction *q, wo_action_t a, const s_next_t *n,
                         char *buf, size_t len) {
  wh_str_t s;
  wh_str_init(&s, buf, len);
  char when[40];
  switch (a) {
  case WA_RETURN: case WA_VOID: wh_str_cat(&s, q->reason, (char *)NULL); break;
  case WA_ASSIGN:
    wh_str_cat(&s, "lead ", n->lead, (char *)NULL);
    for (int i = 0; i < n->nco; i++) wh_str_cat(&s, i ? ", " : "; co ", n->co[i], (char *)NULL);
    wh_str_cat(&s, "; ", n->klass, " ", n->color, ", level ", (char *)NULL);
    wh_str_int(&s, n->level);
    break;
  case WA_EXTEND:
    wh_str_cat(&s, "until ", wh_time_format(q->until_ms, when, sizeof when), (char *)NULL);
    break;
  case WA_APPROVE: {
    int m = clk_main(&n->clocks);
    if (m >= 0)
      wh_str_cat(&s, n->clocks.c[m].name, " by ",
                 wh_time_format(n->clocks.c[m].due_ms, when, sizeof when), (char *)NULL);
    break;
  }
  case WA_SUPERVISE:
    wh_str_cat(&s, "step ", (char *)NULL);
    wh_str_int(&s, n->ladder_step);
    wh_str_cat(&s, ": ", n->supervisor, (char *)NULL);
    break;
  case WA_FEEDBACK:
    wh_str_cat(&s, q->reason, q->unresolved ? ", unresolved" : "", (char *)NULL);
    break;
  default: break;
  }
  if (q->note[0]) wh_str_cat(&s, s.len ? ": " : "", q->note, (char *)NULL);
}

typedef struct {
  desk_t *d;
  zmq_msg_t *route;
  const char *mid, *rid, *who;
  wh_arena_t *a;
  PGresult *res[4];
  int nres;
} s_act_t;

/* Stores rep under the request id (in the open transaction). */
static int s_remember_reply(s_act_t *x, const char *ticket, const Whistle__DeskReply *rep) {
  size_t len = whistle__desk_reply__get_packed_size(rep);
  uint8_t *buf = wh_arena_alloc(x->a, len ? len : 1);
  if (!buf) return WH_ENOMEM;
  whistle__desk_reply__pack(rep, buf);
  const char *v[4] = {x->who, x->rid, ticket, (const char *)buf};
  int lens[4] = {0, 0, 0, (int)len};
  int fmts[4] = {0, 0, 0, 1};
  PGresult *r = wh_pg_run(x->d->c.svc->pg, &s_remember, 4, v, lens, fmts);
  if (!r) return WH_EDB;
  PQclear(r);
  return 0;
}

/* Runs a statement of text parameters that returns nothing we keep. */
static int s_do(desk_t *d, const wh_stmt_t *st, int n, const char *const *v) {
  PGresult *r = wh_pg_run(d->c.svc->pg, st, n, v, NULL, NULL);
  if (!r) return WH_EDB;
  PQclear(r);
  return 0;
}

#define I64(buf, v) (snprintf(buf, sizeof buf, "%" PRId64, (int64_t)(v)), buf)

static const wh_stmt_t s_lesson_seq = {
    "desk_lesson_seq",
    "INSERT INTO lesson_seq (ticket_id, seq) VALUES ($1, 1)"
    " ON CONFLICT (ticket_id) DO UPDATE SET seq = lesson_seq.seq + 1 RETURNING seq"};

/* The class the center gave by hand goes to triage, which keeps the
 * order's text as an example of it: in this transaction, from the outbox,
 * numbered per ticket. */
static int s_teach(s_act_t *x, const order_t *o, const Whistle__DeskAction *q, int64_t now) {
  desk_t *d = x->d;
  const char *v[1] = {o->ticket};
  PGresult *r = wh_pg_run(d->c.svc->pg, &s_lesson_seq, 1, v, NULL, NULL);
  if (!r) return WH_EDB;
  uint32_t seq = PQntuples(r) == 1 ? (uint32_t)strtoul(PQgetvalue(r, 0, 0), NULL, 10) : 0;
  PQclear(r);
  if (!seq) return WH_EDB;
  Whistle__ClassTaught c = WHISTLE__CLASS_TAUGHT__INIT;
  c.klass = q->klass;
  c.text = (char *)o->body;
  c.community = (char *)o->community;
  c.prior_klass = (char *)o->klass;
  c.taught_by = (char *)x->who;
  c.taught_at_ms = now;
  Whistle__Envelope env = WHISTLE__ENVELOPE__INIT;
  env.ticket_id = (char *)o->ticket;
  env.seq = seq;
  env.trace_id = "";
  env.created_at_ms = now;
  env.body_case = WHISTLE__ENVELOPE__BODY_TAUGHT;
  env.taught = &c;
  if (wh_outbox_put(d->c.lessons, "dispatch", &env) || wh_relay_flush(d->c.lessons)) return WH_EDB;
  return 0;
}

/* Writes the taken action: the order, the part, the timeline, the event. */
static int s_write(s_act_t *x, const order_t *o, const s_next_t *n, const Whistle__DeskAction *q,
                   wo_action_t a, const wo_outcome_t *out, unsigned roles, int64_t now,
                   uint32_t *version, int64_t *next_due_out) {
  desk_t *d = x->d;
  const clk_set_t *cs = &n->clocks;
  char b_ver[24], b_ret[24], b_reo[24], b_lvl[24], b_ls[24], b_sg[24], b_rs[24], b_cl[24],
      b_eu[24], b_next[24], b_lst[24], b_lnx[24];
  char co[WH_MAX_CO * 200], names[CLK_MAX * (2 * CLK_NAME_MAX + 4)], due[CLK_MAX * 24],
      ovd[CLK_MAX * 24], met[CLK_MAX * 24], set[CLK_MAX * 24], rem[CLK_MAX * 24];
  const char *nv[CLK_MAX];
  int64_t dv[CLK_MAX], ov[CLK_MAX], mv[CLK_MAX], sv[CLK_MAX], rv[CLK_MAX];
  for (int i = 0; i < cs->n; i++) {
    nv[i] = cs->c[i].name;
    dv[i] = cs->c[i].due_ms;
    ov[i] = cs->c[i].lapsed_ms;
    mv[i] = cs->c[i].met_ms;
    sv[i] = cs->c[i].set_ms;
    rv[i] = cs->c[i].remind_ms;
  }
  if (wh_pg_text_array(n->co, (size_t)n->nco, co, sizeof co) ||
      wh_pg_text_array((char *const *)nv, (size_t)cs->n, names, sizeof names))
    return WH_ETOOLONG;
  s_int_array(dv, cs->n, 0, due, sizeof due);
  s_int_array(ov, cs->n, 1, ovd, sizeof ovd);
  s_int_array(mv, cs->n, 1, met, sizeof met);
  s_int_array(sv, cs->n, 0, set, sizeof set);
  s_int_array(rv, cs->n, 0, rem, sizeof rem);
  /* The next firing: a running clock's reminder or due time, or the ladder. */
  int64_t next_due = clk_next(cs);
  if (n->ladder_next && (!next_due || n->ladder_next < next_due)) next_due = n->ladder_next;
  *next_due_out = next_due;
  const char *v[28] = {o->ticket, I64(b_ver, o->version), n->state, n->before_return,
                       I64(b_ret, n->returns), I64(b_reo, n->reopens), n->lead, co, n->klass,
                       n->color, I64(b_lvl, n->level), I64(b_ls, n->lead_since),
                       I64(b_sg, n->signed_at), I64(b_rs, n->resolved_at), I64(b_cl, n->closed_at),
                       I64(b_eu, n->ext_until), n->ext_state, n->rating,
                       n->fb_resolved ? "t" : "f", names, due, ovd, met, I64(b_next, next_due),
                       set, rem, I64(b_lst, n->ladder_step), I64(b_lnx, n->ladder_next)};
  PGresult *r = wh_pg_run(d->c.svc->pg, &s_update, 28, v, NULL, NULL);
  if (!r) return WH_EDB;
  if (PQntuples(r) != 1) { /* the version moved under the lock: cannot be */
    PQclear(r);
    return WH_EDB;
  }
  *version = (uint32_t)strtoul(PQgetvalue(r, 0, 0), NULL, 10);
  PQclear(r);
  if (out->effects & WE_LADDER_STEP) {
    char party[CLK_NAME_MAX];
    int rc = order_step_row(d->c.svc->pg, *d->c.org, s_policy(d, o), o, o->ladder_step, x->who,
                            now, party);
    if (rc) return rc;
  }

  char b_now[24], b_v2[24];
  if (out->effects & (WE_PART_SIGNED | WE_PART_DONE)) {
    const char *pv[4] = {o->ticket, x->who, (out->effects & WE_PART_SIGNED) ? I64(b_now, now) : "0",
                         (out->effects & WE_PART_DONE) ? I64(b_now, now) : "0"};
    if (s_do(d, &s_part, 4, pv)) return WH_EDB;
  }
  if (out->effects & WE_CLOCKS_RESTART) {
    const char *pv[1] = {o->ticket};
    if (s_do(d, &s_parts_clear, 1, pv)) return WH_EDB;
  }
  char *note = wh_arena_alloc(x->a, 4 * DESK_NOTE_MAX + 1024);
  if (!note) return WH_ENOMEM;
  s_event_note(q, a, n, note, 4 * DESK_NOTE_MAX + 1024);
  const char *role = s_role_of(roles);
  const char *tv[8] = {o->ticket, I64(b_now, now), wo_action_name(a), x->who, note,
                       I64(b_v2, *version), role, q->internal_note};
  if (s_do(d, &s_event, 8, tv)) return WH_EDB;

  /* The event for the feeds and the reporter. */
  Whistle__WorkEvent ev = WHISTLE__WORK_EVENT__INIT;
  char *summary = wh_arena_alloc(x->a, DISPATCH_SUMMARY_MAX);
  Whistle__Deadline *dl = wh_arena_alloc(x->a, CLK_MAX * sizeof *dl);
  Whistle__Deadline **dlp = wh_arena_alloc(x->a, CLK_MAX * sizeof *dlp);
  if (!summary || !dl || !dlp) return WH_ENOMEM;
  dispatch_summary(summary, DISPATCH_SUMMARY_MAX, n->klass, o->community, o->grid, o->address,
                   o->body);
  for (int i = 0; i < cs->n; i++) {
    if (!clk_running(&cs->c[i])) continue;
    whistle__deadline__init(&dl[ev.n_deadlines]);
    dl[ev.n_deadlines].name = (char *)cs->c[i].name;
    dl[ev.n_deadlines].due_at_ms = cs->c[i].due_ms;
    dlp[ev.n_deadlines] = &dl[ev.n_deadlines];
    ev.n_deadlines++;
  }
  ev.deadlines = dlp;
  ev.ticket_id = (char *)o->ticket;
  ev.kind = WHISTLE__WORK_EVENT_KIND__WORK_ACTED;
  ev.version = *version;
  ev.state = (char *)n->state;
  ev.color = wh_color_parse(n->color);
  ev.level = (uint32_t)n->level;
  ev.lead = (char *)n->lead;
  ev.co = (char **)n->co;
  ev.n_co = (size_t)n->nco;
  ev.summary = summary;
  ev.reporter_masked = (char *)o->reporter;
  ev.community = (char *)o->community;
  ev.grid = (char *)o->grid;
  ev.at_ms = now;
  ev.action = (char *)wo_action_name(a);
  ev.actor = (char *)x->who;
  ev.actor_role = (char *)role;
  ev.note = q->note;
  ev.internal_note = q->internal_note;
  ev.reason = q->reason;
  ev.tell_reporter = (out->effects & WE_TELL_REPORTER) != 0;
  if (a == WA_EXTEND) ev.until_ms = q->until_ms;
  if (a == WA_APPROVE) {
    int m = clk_main(cs);
    ev.until_ms = m >= 0 ? cs->c[m].due_ms : o->ext_until;
  }
  if (a == WA_SUPERVISE) { /* a ladder step, the center's: a supervisor item for its party */
    ev.kind = WHISTLE__WORK_EVENT_KIND__WORK_ESCALATED;
    ev.step = (uint32_t)n->ladder_step;
    ev.supervisor = (char *)n->supervisor;
  }
  char *prev[WH_MAX_CO + 1];
  if (a == WA_ASSIGN) {
    prev[0] = (char *)o->lead;
    for (int i = 0; i < o->nco; i++) prev[i + 1] = o->co[i];
    ev.previous = prev;
    ev.n_previous = (size_t)o->nco + 1;
  }
  if (out->effects & WE_TELL_REPEATS) {
    const char *pv[1] = {o->ticket};
    PGresult *rr = wh_pg_run(d->c.svc->pg, &s_repeats, 1, pv, NULL, NULL);
    if (!rr) return WH_EDB;
    x->res[x->nres++] = rr;
    int k = PQntuples(rr);
    char **ids = wh_arena_alloc(x->a, (size_t)(k + 1) * sizeof *ids);
    char **to = wh_arena_alloc(x->a, (size_t)(k + 1) * sizeof *to);
    if (!ids || !to) return WH_ENOMEM;
    for (int i = 0; i < k; i++) {
      ids[i] = PQgetvalue(rr, i, 0);
      to[i] = PQgetvalue(rr, i, 1);
    }
    ev.repeats = ids;
    ev.n_repeats = (size_t)k;
    ev.repeat_reporters = to;
    ev.n_repeat_reporters = (size_t)k;
  }
  Whistle__Envelope env = WHISTLE__ENVELOPE__INIT;
  env.ticket_id = ev.ticket_id;
  env.seq = ev.version;
  env.trace_id = "";
  env.created_at_ms = now;
  env.body_case = WHISTLE__ENVELOPE__BODY_WORK;
  env.work = &ev;
  if (wh_outbox_put(d->c.relay, "dispatch", &env) || wh_relay_flush(d->c.relay)) return WH_EDB;
  if (a == WA_ASSIGN && q->klass[0] && d->c.lessons) return s_teach(x, o, q, now);
  return 0;
}

static void s_act(desk_t *d, zmq_msg_t *route, const char *mid, const char *rid, const char *who,
                  const Whistle__DeskAction *q) {
  const char *why = NULL;
  int rc = s_check_action(d, q, &why);
  if (rc) {
    s_refuse(d, route, mid, rid, rc, why);
    return;
  }
  if (wh_code_check(rid, 128)) {
    s_refuse(d, route, mid, rid, WH_EFIELD, "request_id: 1-128 of [A-Za-z0-9_.:-]");
    return;
  }
  wh_pg_t *pg = d->c.svc->pg;
  s_act_t x = {.d = d, .route = route, .mid = mid, .rid = rid, .who = who, .a = wh_arena_new()};
  if (!x.a || wh_pg_ready(pg) || wh_pg_exec(pg, "BEGIN")) {
    wh_arena_destroy(&x.a);
    s_refuse(d, route, mid, rid, WH_EDB, "dispatch's store is unavailable; ask again");
    return;
  }
  const char *sv[2] = {who, rid};
  int taken = 0;
  int64_t next_due = 0;
  PGresult *seen = wh_pg_run_binary(pg, &s_seen, 2, sv);
  rc = seen ? 0 : WH_EDB;
  if (!rc && PQntuples(seen) == 1) {
    /* Answered before: the same answer, nothing more done. */
    Whistle__DeskReply *old = whistle__desk_reply__unpack(
        NULL, (size_t)PQgetlength(seen, 0, 0), (const uint8_t *)PQgetvalue(seen, 0, 0));
    wh_pg_rollback(pg);
    if (old) {
      old->repeated_request = 1;
      s_send_reply(d, route, mid, old);
      whistle__desk_reply__free_unpacked(old, NULL);
    } else {
      s_refuse(d, route, mid, rid, WH_EDB, "the answer kept for that request id is unreadable");
    }
    PQclear(seen);
    wh_arena_destroy(&x.a);
    return;
  }
  if (seen) PQclear(seen);
  const char *tv[1] = {q->ticket_id};
  PGresult *r = rc ? NULL : wh_pg_run_binary(pg, &s_order_locked, 1, tv);
  if (!rc && !r) rc = WH_EDB;
  if (!rc && PQntuples(r) != 1) {
    PQclear(r);
    wh_pg_rollback(pg);
    wh_arena_destroy(&x.a);
    s_refuse(d, route, mid, rid, WH_ETICKET, "no such ticket at dispatch (yet)");
    return;
  }
  order_t o;
  Whistle__DeskReply rep = WHISTLE__DESK_REPLY__INIT;
  Whistle__Error err = WHISTLE__ERROR__INIT;
  Whistle__OrderView view;
  rep.request_id = (char *)rid;
  if (!rc) rc = s_read(d, r, 0, &o);
  if (!rc) {
    unsigned roles = s_roles(d, &o, who);
    int part_signed = 0, part_done = 0;
    if ((roles & WR_CO) && !(roles & WR_LEAD)) {
      PGresult *pr = wh_pg_run_binary(pg, &s_parts, 1, tv);
      if (!pr) rc = WH_EDB;
      for (int i = 0; pr && i < PQntuples(pr); i++)
        if (!strcmp(s_v(pr, i, 0), who)) {
          part_signed = s_i(pr, i, 1) != 0;
          part_done = s_i(pr, i, 2) != 0;
        }
      if (pr) PQclear(pr);
    }
    wo_order_t m;
    s_machine_order(d, &o, part_signed, part_done, &m);
    wo_action_t a = (wo_action_t)wo_action_parse(q->action);
    wo_request_t wq = {.action = a, .roles = roles, .now_ms = wh_clock_now_ms(),
                       .version = q->version, .reason = q->reason, .until_ms = q->until_ms,
                       .rating = a == WA_FEEDBACK && wo_rating_parse(q->reason) > 0
                                     ? (wo_rating_t)wo_rating_parse(q->reason)
                                     : WF_NONE,
                       .unresolved = q->unresolved};
    wo_outcome_t out = rc ? (wo_outcome_t){0} : wo_decide(&m, &wq);
    if (!rc && out.code != WO_OK) {
      err.code = wh_err_to_wire(s_wo_err(out.code));
      err.text = (char *)out.why;
      rep.error = &err;
      wh_info("%s by %s refused: %s", q->action, who, wo_code_name(out.code));
    } else if (!rc) {
      s_next_t n;
      uint32_t version = 0;
      s_next(d, &o, q, &out, who, wq.now_ms, &n);
      rc = s_write(&x, &o, &n, q, a, &out, roles, wq.now_ms, &version, &next_due);
      if (!rc) {
        /* The answer shows the order as the action left it. */
        PGresult *after = wh_pg_run_binary(pg, &s_order, 1, tv);
        order_t o2;
        if (!after || PQntuples(after) != 1) rc = WH_EDB;
        if (after) x.res[x.nres++] = after;
        if (!rc) rc = s_read(d, after, 0, &o2);
        if (!rc) rc = s_view(&o2, roles, wq.now_ms, x.a, &view, d);
        PGresult *esc = NULL;
        int sup = 0;
        if (!rc) rc = s_view_escalations(d, o2.ticket, who, &view, x.a, &esc, &sup);
        if (esc) x.res[x.nres++] = esc;
        if (!rc) rep.order = &view;
        taken = 1;
        wh_info("%s by %s (%s): %s -> %s, version %u", q->action, who, s_role_of(roles),
                o.state, n.state, version);
      }
    }
  }
  if (!rc) rc = s_remember_reply(&x, q->ticket_id, &rep);
  if (!rc) rc = wh_pg_exec(pg, "COMMIT");
  if (rc) {
    wh_pg_rollback(pg);
    if (taken) wh_relay_aborted(d->c.relay);
    if (taken && d->c.lessons) wh_relay_aborted(d->c.lessons);
    s_refuse(d, route, mid, rid, rc,
             rc == WH_EDB ? "dispatch's store is unavailable; nothing changed; ask again"
                          : wh_strerror(rc));
  } else {
    if (taken) wh_relay_committed(d->c.relay);
    if (taken && d->c.lessons) wh_relay_committed(d->c.lessons);
    s_send_reply(d, route, mid, &rep);
    if (taken && next_due && d->c.deadline) d->c.deadline(d->c.arg, next_due);
  }
  if (r) PQclear(r);
  for (int i = 0; i < x.nres; i++) PQclear(x.res[i]);
  wh_arena_destroy(&x.a);
}

/* ---- the socket ---------------------------------------------------------- */

static void s_answer(desk_t *d, zmq_msg_t *route, zmq_msg_t *body) {
  const char *who = wh_peer(body);
  Whistle__Envelope *env = NULL;
  int rc = wh_env_unpack(zmq_msg_data(body), zmq_msg_size(body), &env);
  const char *mid = rc == 0 ? env->message_id : "";
  const Whistle__DeskRequest *q = rc == 0 ? env->desk : NULL;
  const char *rid = q ? q->request_id : "";
  if (rc) {
    s_refuse(d, route, mid, "", rc, wh_strerror(rc));
  } else if (!who) {
    s_refuse(d, route, mid, rid, WH_EFORBIDDEN,
             "this service runs without keys: its desk answers nobody");
  } else if (env->body_case != WHISTLE__ENVELOPE__BODY_DESK || !q) {
    s_refuse(d, route, mid, "", WH_EUNEXPECTED, "the desk takes desk requests");
  } else if (q->what_case == WHISTLE__DESK_REQUEST__WHAT_ACT) {
    wh_log_ctx(q->act->ticket_id[0] && !wh_code_check(q->act->ticket_id, 64) ? q->act->ticket_id
                                                                               : NULL,
               NULL);
    s_act(d, route, mid, rid, who, q->act);
    wh_log_ctx(NULL, NULL);
  } else if (q->what_case == WHISTLE__DESK_REQUEST__WHAT_SHOW) {
    s_show(d, route, mid, rid, who, q->show);
  } else if (q->what_case == WHISTLE__DESK_REQUEST__WHAT_LIST) {
    s_list_orders(d, route, mid, rid, who, q->list);
  } else {
    s_refuse(d, route, mid, rid, WH_EUNEXPECTED, "a desk request is act, show or list");
  }
  if (env) wh_env_free(env);
}

static void s_purge_old(desk_t *d) {
  int64_t now = wh_clock_mono_ms();
  if (d->purged_ms && now - d->purged_ms < DESK_PURGE_MS) return;
  d->purged_ms = now;
  char h[8];
  snprintf(h, sizeof h, "%d", DESK_REQUEST_KEEP_H);
  const char *v[1] = {h};
  if (wh_pg_ready(d->c.svc->pg) == 0) {
    PGresult *r = wh_pg_run(d->c.svc->pg, &s_purge, 1, v, NULL, NULL);
    if (r) PQclear(r);
  }
}

static void s_on_idle(uv_idle_t *h) {
  desk_t *d = h->data;
  for (int k = 0; k < DESK_PER_TURN && d->n; k++) {
    s_req_t *r = &d->q[d->head];
    d->head = (d->head + 1) % DESK_QUEUE;
    d->n--;
    s_answer(d, &r->route, &r->body);
    zmq_msg_close(&r->route);
    zmq_msg_close(&r->body);
  }
  if (!d->n) {
    uv_idle_stop(h);
    s_purge_old(d);
  }
}

static void s_on_readable(wh_bus_t *bus, void *arg) {
  desk_t *d = arg;
  for (int k = 0; k < WH_BUS_ROUND; k++) {
    zmq_msg_t route, body;
    if (wh_bus_recv(bus, &route, &body) != 1) break;
    if (d->n == DESK_QUEUE) { /* answered at once, without a query */
      Whistle__DeskReply rep = WHISTLE__DESK_REPLY__INIT;
      Whistle__Error e = WHISTLE__ERROR__INIT;
      e.code = WHISTLE__ERROR_CODE__ERR_INTERNAL;
      e.text = "the desk is busy; nothing changed; ask again";
      rep.error = &e;
      Whistle__Envelope *env = NULL;
      int ok = wh_env_unpack(zmq_msg_data(&body), zmq_msg_size(&body), &env) == 0;
      if (ok && env->body_case == WHISTLE__ENVELOPE__BODY_DESK && env->desk)
        rep.request_id = env->desk->request_id;
      s_send_reply(d, &route, ok ? env->message_id : "", &rep);
      if (env) wh_env_free(env);
      zmq_msg_close(&route);
      zmq_msg_close(&body);
      continue;
    }
    s_req_t *r = &d->q[(d->head + d->n) % DESK_QUEUE];
    r->route = route;
    r->body = body;
    d->n++;
  }
  if (d->n && !uv_is_active((uv_handle_t *)d->idle)) uv_idle_start(d->idle, s_on_idle);
}

static void s_free_handle(uv_handle_t *h) { free(h); }

desk_t *desk_new(const desk_conf_t *conf, const char *endpoint) {
  desk_t *d = calloc(1, sizeof *d);
  if (!d) return NULL;
  d->c = *conf;
  d->idle = malloc(sizeof *d->idle);
  if (!d->idle) {
    free(d);
    return NULL;
  }
  uv_idle_init(conf->svc->loop, d->idle);
  d->idle->data = d;
  d->bus = wh_bus_new(conf->svc->loop, conf->svc->zctx, ZMQ_ROUTER, endpoint, 1, conf->svc->keys,
                      NULL, s_on_readable, d);
  if (!d->bus) {
    uv_close((uv_handle_t *)d->idle, s_free_handle);
    free(d);
    return NULL;
  }
  wh_info("the desk answers on %s", endpoint);
  return d;
}

void desk_destroy(desk_t **self_p) {
  if (!self_p || !*self_p) return;
  desk_t *d = *self_p;
  *self_p = NULL;
  wh_bus_destroy(&d->bus);
  for (; d->n; d->n--, d->head = (d->head + 1) % DESK_QUEUE) {
    zmq_msg_close(&d->q[d->head].route);
    zmq_msg_close(&d->q[d->head].body);
  }
  uv_idle_stop(d->idle);
  uv_close((uv_handle_t *)d->idle, s_free_handle);
  free(d);
}
