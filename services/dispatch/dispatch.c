/* dispatch - turns each decision into a work order on a clock.
 *
 * A decision opens a work order for its lead and co-parties with the clocks
 * of its level (clocks.conf, whose policy in force is frozen onto the order),
 * or, for a repeat, records it merged under the first order. Each clock is an
 * entry of the order's row with its start, due time and next reminder; the
 * row's next_due_at is the earliest firing still to come (a reminder, a
 * lapse, a ladder step). At start, and after every change, one libuv timer
 * is armed for the earliest of all. When it fires, the due orders are read
 * under their row locks, what is due is worked out (clocks.c), and each
 * order's row is written back fenced by the version read, in the same
 * transaction as its timeline and its events (OVERDUE, REMINDER, ESCALATED,
 * FEEDBACK_DUE, each its own version), so a repeated or stale firing does
 * nothing. */
#include "dispatch.h"
#include "desk.h"
#include "clocks.h"
#include "lapse.h"
#include "order.h"
#include "wh_calendar.h"
#include "wh_clock.h"
#include "wh_codec.h"
#include "wh_err.h"
#include "wh_log.h"
#include "wh_consumer.h"
#include "wh_outbox.h"
#include "wh_rules.h"
#include "wh_text.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TIMER_RECHECK_MS 60000
#define REPEAT_WAIT_MS (10 * 60000) /* a repeat waits this long for its first to arrive */

/* A work order opened earlier in this batch, which a repeat may merge under. */
typedef struct {
  char ticket[32];
  char lead[96];
} s_opened_t;

#define POLICY_CACHE 8 /* earlier policies kept parsed, for the orders frozen on them */

typedef struct {
  wh_service_t *svc;
  wh_calendar_t *cal;
  clk_policy_t *policy;              /* clocks.conf in force */
  int policy_fresh;                  /* its id was taken in the open transaction */
  clk_policy_t *older[POLICY_CACHE]; /* earlier ones, by id */
  int nolder;
  wh_org_t *org; /* the org chart: the parties an assignment may name */
  wh_rules_t *rules; /* the catalogue: the classes an assignment may name */
  wh_relay_t *lessons; /* to triage: the classes the center gave by hand */
  desk_t *desk;
  wh_consumer_t *in;
  wh_relay_t *relay;
  wh_builder_t builder; /* builds an order's dispatched event again from its row */
  uv_timer_t timer;
  int64_t armed_ms;  /* the deadline the timer is set for */
  int64_t batch_due; /* the earliest deadline this transaction adds */
  /* the batch's rows, written once per table before COMMIT */
  wh_rows_t orders, timeline, fired;
  /* leads of the orders repeats in this batch name (looked up by prepare) */
  char (*first)[2][96];
  int nfirst;
  s_opened_t opened[WH_CONSUMER_BATCH];
  int nopened;
} s_dispatch_t;

static const wh_stmt_t s_insert_order = {
    "dispatch_insert_order",
    "INSERT INTO work_order (ticket_id, version, state, external_id, source, community, grid,"
    " address, category, klass, body, reporter_masked, received_at, color, level, lead, co,"
    " rule, weight, duplicate_of, decided_at, created_at, updated_at, due_names, due_ms,"
    " next_due_at, policy_id, words, danger, danger_words, out_id, out_payload, trace_id)"
    " SELECT r.ticket_id, 1, r.state, r.external_id, r.source, r.community, r.grid, r.address,"
    "   r.category, r.klass, r.body, r.reporter_masked, r.received_at, r.color, r.level, r.lead,"
    "   r.co, r.rule, r.weight, r.duplicate_of, r.decided_at, r.at, r.at, r.due_names, r.due_ms,"
    "   r.next_due_at, r.policy_id::int,"
    "   r.words, r.danger, r.danger_words, nextval('outbox_id_seq'), r.out_payload, r.trace_id"
    " FROM unnest($1::work_order_row[]) AS r"
    " RETURNING out_id, ticket_id"};
/* What s_build makes a dispatched event of (see wh_builder_t): the order as
 * it was opened, in its row or, once changed, in work_order_first. */
#define BUILT_COLUMNS                                                                          \
  "out_id, ticket_id, state, klass, community, grid, address, body, reporter_masked, color,"  \
  " level::bigint, lead, co, due_names, due_ms, created_at, coalesce(trace_id, '')"
static const wh_stmt_t s_built_rows = {
    "dispatch_built_rows",
    "SELECT " BUILT_COLUMNS " FROM work_order WHERE out_id = ANY($1::bigint[])"
    " AND out_id BETWEEN $2::bigint AND $3::bigint AND out_payload IS NULL"
    " UNION ALL SELECT " BUILT_COLUMNS " FROM work_order_first WHERE out_id = ANY($1::bigint[])"
    " AND out_payload IS NULL"};
/* Copies kept only to build events that notify has now taken go (see
 * wh_builder_t.taken): without this the table kept every one for good, an
 * order apiece that changed before notify took its event, without bound
 * while notify was down and deadlines lapsed. */
static const wh_stmt_t s_first_taken = {
    "dispatch_first_taken",
    "DELETE FROM work_order_first WHERE out_id <= (SELECT max(u) FROM unnest($1::bigint[]) AS u)"};
static const wh_stmt_t s_insert_timeline = {
    "dispatch_insert_timeline",
    "INSERT INTO timeline (ticket_id, at, kind, actor, note)"
    " SELECT t, to_timestamp(a::double precision / 1000), k, ac, n"
    " FROM (SELECT unnest($1::text[]) AS t, unnest($2::bigint[]) AS a,"
    "   unnest($3::text[]) AS k, unnest($4::text[]) AS ac, unnest($5::text[]) AS n) AS x"};
static const wh_stmt_t s_first_orders = {
    "dispatch_first_orders",
    "SELECT ticket_id, lead FROM work_order WHERE ticket_id = ANY($1::text[]) FOR UPDATE"};
static const wh_stmt_t s_next_due = {
    "dispatch_next_due",
    "SELECT (extract(epoch FROM min(next_due_at)) * 1000)::bigint FROM work_order"
    " WHERE next_due_at IS NOT NULL"};
/* lapse.h says why the scan's batch is a literal. */
static const wh_stmt_t s_lapse = {"dispatch_lapse", DISPATCH_LAPSE_SQL};
static const wh_stmt_t s_fired = {"dispatch_fired", DISPATCH_FIRED_SQL};
static const wh_stmt_t s_store_policy = {
    "dispatch_policy_store",
    "INSERT INTO clock_policy (digest, body) VALUES (md5($1), $1)"
    " ON CONFLICT (digest) DO UPDATE SET loaded_at = now() RETURNING id"};
static const wh_stmt_t s_policy_body = {"dispatch_policy_body",
                                        "SELECT body FROM clock_policy WHERE id = $1::int"};

static void s_timeline(s_dispatch_t *d, const char *ticket, int64_t at_ms, const char *kind,
                       const char *actor, const char *note) {
  wh_rows_t *r = &d->timeline;
  wh_rows_next(r);
  wh_rows_text(r, 0, ticket);
  wh_rows_int(r, 1, at_ms);
  wh_rows_text(r, 2, kind);
  wh_rows_text(r, 3, actor);
  wh_rows_text(r, 4, note);
}

enum { EMIT_OUTBOX, EMIT_CARRY, EMIT_BUILT };

/* Puts ev in the outbox; or, for an order's first event, carries it in the
 * order row gathered last: stored in its out_payload (EMIT_CARRY), or built
 * from the row (EMIT_BUILT). A carried event ends the row with its trace id. */
static int s_emit(s_dispatch_t *d, Whistle__WorkEvent *ev, const char *trace, int how) {
  Whistle__Envelope out = WHISTLE__ENVELOPE__INIT;
  out.ticket_id = ev->ticket_id;
  out.seq = ev->version;
  out.trace_id = (char *)(trace ? trace : "");
  out.created_at_ms = ev->at_ms;
  out.body_case = WHISTLE__ENVELOPE__BODY_WORK;
  out.work = ev;
  int rc;
  if (how == EMIT_OUTBOX) return wh_outbox_put(d->relay, "dispatch", &out);
  if (how == EMIT_CARRY) {
    rc = wh_outbox_carry(d->relay, "dispatch", &out, &d->orders, 28);
  } else {
    wh_rows_bytes(&d->orders, 28, NULL, 0);
    rc = wh_outbox_carry_built(d->relay, "dispatch", &out);
  }
  wh_rows_text(&d->orders, 29, out.trace_id);
  return rc;
}

void dispatch_summary(char *buf, size_t len, const char *klass, const char *community,
                      const char *grid, const char *address, const char *text) {
  wh_str_t sum;
  wh_str_init(&sum, buf, len);
  wh_str_cat(&sum, klass, " @ ", community, "/", grid, " ", address, ": ", text, (char *)NULL);
}


/* A dispatched event, built again from row k of s_built_rows exactly as
 * s_apply made it. */
static int s_build(void *arg, const PGresult *res, int k, Whistle__Envelope *env,
                   wh_arena_t *arena) {
  (void)arg;
  if (strcmp(PQgetvalue(res, k, 2), "dispatched")) return WH_EFIELD;
  Whistle__WorkEvent *ev = wh_arena_alloc(arena, sizeof *ev);
  char *summary = wh_arena_alloc(arena, DISPATCH_SUMMARY_MAX);
  char **co = wh_arena_alloc(arena, WH_MAX_CO * sizeof *co);
  char *cobuf = wh_arena_alloc(arena, WH_MAX_CO * 96);
  char **names = wh_arena_alloc(arena, CLK_MAX * sizeof *names);
  char *namebuf = wh_arena_alloc(arena, CLK_MAX * CLK_NAME_MAX);
  int64_t *due = wh_arena_alloc(arena, CLK_MAX * sizeof *due);
  Whistle__Deadline *dl = wh_arena_alloc(arena, CLK_MAX * sizeof *dl);
  Whistle__Deadline **dlp = wh_arena_alloc(arena, CLK_MAX * sizeof *dlp);
  if (!ev || !summary || !co || !cobuf || !names || !namebuf || !due || !dl || !dlp)
    return WH_ENOMEM;
  int nco = wh_pg_get_texts(res, k, 12, co, WH_MAX_CO, cobuf, WH_MAX_CO * 96);
  int nnames = wh_pg_get_texts(res, k, 13, names, CLK_MAX, namebuf, CLK_MAX * CLK_NAME_MAX);
  int ndue = wh_pg_get_ints(res, k, 14, due, CLK_MAX);
  if (nco < 0 || nnames < 0 || ndue != nnames) return WH_EFIELD;
  for (int i = 0; i < ndue; i++) {
    whistle__deadline__init(&dl[i]);
    dl[i].name = names[i];
    dl[i].due_at_ms = due[i];
    dlp[i] = &dl[i];
  }
  dispatch_summary(summary, DISPATCH_SUMMARY_MAX, PQgetvalue(res, k, 3), PQgetvalue(res, k, 4),
            PQgetvalue(res, k, 5), PQgetvalue(res, k, 6), PQgetvalue(res, k, 7));
  whistle__work_event__init(ev);
  ev->ticket_id = PQgetvalue(res, k, 1);
  ev->version = 1;
  ev->color = wh_color_parse(PQgetvalue(res, k, 9));
  ev->level = (uint32_t)wh_pg_get_u64(res, k, 10);
  ev->community = PQgetvalue(res, k, 4);
  ev->grid = PQgetvalue(res, k, 5);
  ev->summary = summary;
  ev->reporter_masked = PQgetvalue(res, k, 8);
  ev->at_ms = wh_pg_get_time_ms(res, k, 15);
  ev->kind = WHISTLE__WORK_EVENT_KIND__WORK_DISPATCHED;
  ev->state = PQgetvalue(res, k, 2);
  ev->lead = PQgetvalue(res, k, 11);
  ev->co = co;
  ev->n_co = (size_t)nco;
  ev->deadlines = dlp;
  ev->n_deadlines = (size_t)ndue;
  whistle__envelope__init(env);
  env->ticket_id = ev->ticket_id;
  env->seq = 1;
  env->trace_id = PQgetvalue(res, k, 16);
  env->created_at_ms = ev->at_ms;
  env->body_case = WHISTLE__ENVELOPE__BODY_WORK;
  env->work = ev;
  return 0;
}

/* The statements that write the transaction's gathered rows, one per table
 * (orders first: deadlines and repeats refer to them). */
static int s_steps(void *arg, wh_pg_step_t *steps) {
  s_dispatch_t *d = arg;
  steps[0] = (wh_pg_step_t){.st = &s_insert_order, .rows = &d->orders,
                            .on_result = wh_relay_carried, .arg = d->relay};
  steps[1] = (wh_pg_step_t){.st = &s_insert_timeline, .rows = &d->timeline};
  wh_relay_step(d->relay, &steps[2]);
  return 3;
}

static void s_reset(s_dispatch_t *d) {
  wh_rows_reset(&d->orders);
  wh_rows_reset(&d->timeline);
  wh_rows_reset(&d->fired);
  d->nopened = 0;
  d->nfirst = 0;
}

static int s_policy_store(s_dispatch_t *d);

/* Looks up, in one statement, the orders the batch's repeats merge under. */
static int s_prepare(void *arg, const Whistle__Envelope *const *envs, int n) {
  s_dispatch_t *d = arg;
  s_reset(d);
  d->batch_due = INT64_MAX;
  /* New orders carry the id of the policy in force: stored first. */
  if (!d->policy->id) {
    if (s_policy_store(d)) return WH_EDB;
    d->policy_fresh = 1;
  }
  wh_rows_t q;
  wh_rows_init(&q, 1);
  for (int i = 0; i < n; i++) {
    const Whistle__TicketTriaged *t = envs[i]->triaged;
    if (!t || !t->duplicate_of[0]) continue;
    wh_rows_next(&q);
    wh_rows_text(&q, 0, t->duplicate_of);
  }
  int rc = 0;
  if (q.nrows) {
    PGresult *r = wh_rows_run(d->svc->pg, &s_first_orders, &q, 0, NULL);
    if (!r) rc = WH_EDB;
    for (int k = 0; r && k < PQntuples(r) && k < WH_CONSUMER_BATCH; k++) {
      snprintf(d->first[d->nfirst][0], 96, "%s", PQgetvalue(r, k, 0));
      snprintf(d->first[d->nfirst][1], 96, "%s", PQgetvalue(r, k, 1));
      d->nfirst++;
    }
    if (r) PQclear(r);
  }
  wh_rows_free(&q);
  return rc;
}

/* The order's row (work_order_row, see sql/010_opening_derived.sql); its
 * last fields, the carried message and the trace id, are added by s_emit. */
static void s_order_row(s_dispatch_t *d, const Whistle__TicketTriaged *t, const char *state,
                        int64_t decided, int64_t now, const clk_set_t *cs, int64_t next_due) {
  /* Only the names and due times: the starts and reminders of an opening
   * are worked out again when read (order_clocks_fill). */
  const char *due_names[CLK_MAX];
  int64_t due_ms[CLK_MAX];
  for (int i = 0; i < cs->n; i++) {
    due_names[i] = cs->c[i].name;
    due_ms[i] = cs->c[i].due_ms;
  }
  size_t ndue = (size_t)cs->n;
  const Whistle__SubmitTicket *rep = t->ticket->report;
  wh_rows_t *r = &d->orders;
  wh_rows_next(r);
  wh_rows_text(r, 0, t->ticket->ticket_id);
  wh_rows_text(r, 1, state);
  wh_rows_text(r, 2, rep->external_id);
  wh_rows_text(r, 3, wh_source_name(rep->source));
  wh_rows_text(r, 4, rep->community);
  wh_rows_text(r, 5, rep->grid);
  wh_rows_text(r, 6, rep->address);
  wh_rows_text(r, 7, rep->category);
  wh_rows_text(r, 8, t->klass);
  wh_rows_text(r, 9, rep->text);
  wh_rows_text(r, 10, rep->reporter ? rep->reporter->phone : "");
  wh_rows_time(r, 11, &rep->received_at_ms);
  wh_rows_text(r, 12, wh_color_name(t->color));
  wh_rows_int(r, 13, t->level);
  wh_rows_text(r, 14, t->lead);
  wh_rows_texts(r, 15, (const char *const *)t->co, t->n_co);
  wh_rows_text(r, 16, t->rule);
  wh_rows_int(r, 17, t->weight);
  wh_rows_text(r, 18, !strcmp(state, "merged") ? t->duplicate_of : NULL);
  wh_rows_time(r, 19, &decided);
  wh_rows_time(r, 20, &now);
  wh_rows_texts(r, 21, due_names, ndue);
  wh_rows_ints(r, 22, due_ms, ndue);
  wh_rows_time(r, 23, next_due ? &next_due : NULL); /* NULL: none running */
  wh_rows_int(r, 24, d->policy->id);
  wh_rows_text(r, 25, t->words[0] ? t->words : NULL);
  wh_rows_text(r, 26, t->danger[0] ? t->danger : NULL);
  wh_rows_text(r, 27, t->danger_words[0] ? t->danger_words : NULL);
  /* 28, 29: the carried event and its trace (s_emit) */
}

/* Gathers the rows one decision makes. After the first row is gathered, a
 * failure must roll the whole batch back: it returns WH_EDB. */
static int s_apply(void *arg, const Whistle__Envelope *env) {
  s_dispatch_t *d = arg;
  const Whistle__TicketTriaged *t = env->triaged;
  if (!t->ticket || !t->ticket->report || strcmp(t->ticket->ticket_id, env->ticket_id) ||
      !wh_color_name(t->color)[0] || t->level < 1 || t->level > 3 || !t->lead[0] ||
      t->n_co > WH_MAX_CO)
    return WH_EFIELD;
  const Whistle__SubmitTicket *rep = t->ticket->report;
  const char *ticket = t->ticket->ticket_id;
  int64_t now = wh_clock_now_ms();
  /* Masked again here: a number intake masked stays as it is, and a full
   * one, however it came, never reaches this database or a feed. */
  if (rep->reporter && rep->reporter->phone[0])
    wh_phone_mask(rep->reporter->phone, rep->reporter->phone, strlen(rep->reporter->phone) + 1);
  for (size_t i = 0; i < t->n_co; i++)
    if (strnlen(t->co[i], 96) >= 96) return WH_EFIELD;
  if (t->suggested[0] && (wh_code_check(t->suggested, 63) || wh_code_check(t->suggested_like, 64) ||
                          t->suggested_score > 1000))
    return WH_EFIELD;

  /* A repeat merges under the first order, if dispatch has it: opened
   * earlier in this batch, or found by prepare. */
  char first_lead[96] = "";
  if (t->duplicate_of[0]) {
    for (int i = 0; i < d->nopened && !first_lead[0]; i++)
      if (!strcmp(d->opened[i].ticket, t->duplicate_of))
        wh_str_copy(first_lead, sizeof first_lead, d->opened[i].lead);
    for (int i = 0; i < d->nfirst && !first_lead[0]; i++)
      if (!strcmp(d->first[i][0], t->duplicate_of))
        wh_str_copy(first_lead, sizeof first_lead, d->first[i][1]);
    /* A repeat that overtook its first (which was sent again, or waits
     * in a backlog) waits for it: answered "not yet", it comes again. A
     * first that has not come in REPEAT_WAIT_MS may never come (refused,
     * parked): the repeat is dispatched on its own. */
    int64_t waited = env->created_at_ms > 0 ? now - env->created_at_ms : REPEAT_WAIT_MS;
    if (!first_lead[0] && waited < REPEAT_WAIT_MS) {
      wh_info("repeat of %s, which has not reached dispatch yet: it waits for it",
              t->duplicate_of);
      return WH_EORDER;
    }
    if (!first_lead[0])
      wh_warn("repeat of %s, which has not reached dispatch in %d minutes; dispatching it on its"
              " own", t->duplicate_of, REPEAT_WAIT_MS / 60000);
  }
  int merged = first_lead[0] != '\0';

  /* The order's opening (received, triaged and, unless merged, dispatched)
   * is not written: the view opening works it out from the row. */
  /* The order's clocks, from the policy in force: the sign-for clocks from
   * now, the level's own from receipt. */
  clk_set_t cs = {.n = 0};
  int64_t next_due = 0;
  Whistle__Deadline dl[CLK_MAX];
  Whistle__Deadline *dlp[CLK_MAX];
  if (!merged) {
    clk_start(d->policy, d->cal, (int)t->level, strcmp(t->lead, d->svc->center) != 0, t->co,
              t->n_co, now, rep->received_at_ms, now, &cs);
    next_due = clk_next(&cs);
    if (next_due && next_due < d->batch_due) d->batch_due = next_due;
    for (int i = 0; i < cs.n; i++) {
      whistle__deadline__init(&dl[i]);
      dl[i].name = cs.c[i].name;
      dl[i].due_at_ms = cs.c[i].due_ms;
      dlp[i] = &dl[i];
    }
  }
  s_order_row(d, t, merged ? "merged" : "dispatched", t->decided_at_ms ? t->decided_at_ms : now,
              now, &cs, next_due);

  char summary[DISPATCH_SUMMARY_MAX];
  dispatch_summary(summary, sizeof summary, t->klass, rep->community, rep->grid, rep->address,
            rep->text);
  const char *masked = rep->reporter ? rep->reporter->phone : "";
  Whistle__WorkEvent ev = WHISTLE__WORK_EVENT__INIT;
  ev.ticket_id = (char *)ticket;
  ev.version = 1;
  ev.color = t->color;
  ev.level = t->level;
  ev.community = rep->community;
  ev.grid = rep->grid;
  ev.summary = summary;
  ev.reporter_masked = (char *)masked;
  ev.at_ms = now;

  /* What the center's examples said of a report no rule placed: the
   * class it was routed by, or the one suggested to the center. */
  if (t->suggested[0]) {
    char note[512];
    int routed = !strncmp(t->rule, "learned:", 8);
    snprintf(note, sizeof note, "%s %s: %d.%03d like %s, an order the center placed by hand%s",
             routed ? "routed as" : "the center's examples suggest", t->suggested,
             t->suggested_score / 1000, t->suggested_score % 1000, t->suggested_like,
             routed ? "" : "; below the score that routes, the center decides");
    s_timeline(d, ticket, now, routed ? "learned" : "suggested", "triage", note);
  }
  if (merged) {
    char note[512];
    snprintf(note, sizeof note, "repeat of %s; merged", t->duplicate_of);
    s_timeline(d, ticket, now, "merged", "triage", note);
    snprintf(note, sizeof note, "repeat report %s (%s) merged here", ticket, rep->external_id);
    s_timeline(d, t->duplicate_of, now, "repeat", "triage", note);
    ev.kind = WHISTLE__WORK_EVENT_KIND__WORK_MERGED;
    ev.state = "merged";
    ev.lead = first_lead;
    ev.duplicate_of = t->duplicate_of;
    return s_emit(d, &ev, env->trace_id, EMIT_CARRY) ? WH_EDB : 0;
  }

  if (d->nopened < WH_CONSUMER_BATCH) {
    s_opened_t *op = &d->opened[d->nopened++];
    wh_str_copy(op->ticket, sizeof op->ticket, ticket);
    wh_str_copy(op->lead, sizeof op->lead, t->lead);
  }
  ev.kind = WHISTLE__WORK_EVENT_KIND__WORK_DISPATCHED;
  ev.state = "dispatched";
  ev.lead = t->lead;
  ev.co = t->co;
  ev.n_co = t->n_co;
  ev.deadlines = dlp;
  ev.n_deadlines = (size_t)cs.n;
  return s_emit(d, &ev, env->trace_id, EMIT_BUILT) ? WH_EDB : 0;
}

/* ---- the deadline clock ------------------------------------------------ */

static void s_on_timer(uv_timer_t *h);

static void s_arm(s_dispatch_t *d) {
  int64_t delay = TIMER_RECHECK_MS;
  if (wh_pg_ready(d->svc->pg) == 0) {
    PGresult *r = wh_pg_run(d->svc->pg, &s_next_due, 0, NULL, NULL, NULL);
    if (r && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0)) {
      int64_t due = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
      delay = due - wh_clock_now_ms();
      if (delay < 0) delay = 0;
      if (delay > TIMER_RECHECK_MS) delay = TIMER_RECHECK_MS;
    }
    if (r) PQclear(r);
  } else {
    delay = 1000; /* database down: look again soon */
  }
  d->armed_ms = wh_clock_now_ms() + delay;
  uv_timer_start(&d->timer, s_on_timer, (uint64_t)delay, 0);
}

/* ---- the clock policy ------------------------------------------------ */

/* Stores the policy in force (in the open transaction, if one is) and
 * takes its id. */
static int s_policy_store(s_dispatch_t *d) {
  const char *v[1] = {d->policy->text};
  PGresult *r = wh_pg_run(d->svc->pg, &s_store_policy, 1, v, NULL, NULL);
  if (!r) return WH_EDB;
  int rc = PQntuples(r) == 1 ? 0 : WH_EDB;
  if (!rc) d->policy->id = (uint32_t)strtoul(PQgetvalue(r, 0, 0), NULL, 10);
  PQclear(r);
  return rc;
}

/* Keeps an earlier policy parsed, for the orders frozen on it; the oldest
 * kept goes when there are POLICY_CACHE. */
static void s_keep_older(s_dispatch_t *d, clk_policy_t *p) {
  if (d->nolder == POLICY_CACHE) {
    clk_policy_destroy(&d->older[0]);
    memmove(d->older, d->older + 1, (POLICY_CACHE - 1) * sizeof *d->older);
    d->nolder--;
  }
  d->older[d->nolder++] = p;
}

/* The policy an order was frozen on (id 0: an order older than policies,
 * which runs on the one in force). One not parsed yet is read from
 * clock_policy; one that cannot be read falls back to the one in force. */
static const clk_policy_t *s_policy(void *arg, uint32_t id) {
  s_dispatch_t *d = arg;
  if (!id || id == d->policy->id) return d->policy;
  for (int i = 0; i < d->nolder; i++)
    if (d->older[i]->id == id) return d->older[i];
  char b[16], err[512];
  snprintf(b, sizeof b, "%u", id);
  const char *v[1] = {b};
  PGresult *r = wh_pg_run(d->svc->pg, &s_policy_body, 1, v, NULL, NULL);
  clk_policy_t *p = NULL;
  if (r && PQntuples(r) == 1) {
    char origin[32];
    snprintf(origin, sizeof origin, "clock_policy %u", id);
    if (!(p = clk_policy_parse(PQgetvalue(r, 0, 0), origin, err, sizeof err)))
      wh_error("%s", err);
  }
  if (r) PQclear(r);
  if (!p) {
    wh_warn("clock policy %u cannot be read: the one in force stands in", id);
    return d->policy;
  }
  p->id = id;
  s_keep_older(d, p);
  return p;
}

/* ---- the clock --------------------------------------------------------- */

/* A firing's line on the order's timeline and its event, at version v. */
static int s_fire_event(s_dispatch_t *d, const order_t *o, uint32_t v, int64_t now,
                        Whistle__WorkEventKind kind, const char *tl_kind, const char *note,
                        Whistle__WorkEvent *proto) {
  char summary[DISPATCH_SUMMARY_MAX];
  Whistle__Deadline dl[CLK_MAX];
  Whistle__Deadline *dlp[CLK_MAX];
  Whistle__WorkEvent ev;
  order_event(o, &ev, v, now, summary, dl, dlp);
  ev.kind = kind;
  ev.lapsed = proto->lapsed;
  ev.n_lapsed = proto->n_lapsed;
  ev.reminded = proto->reminded;
  ev.n_reminded = proto->n_reminded;
  ev.share = proto->share;
  ev.step = proto->step;
  ev.supervisor = proto->supervisor;
  s_timeline(d, o->ticket, now, tl_kind, "clock", note);
  return s_emit(d, &ev, NULL, EMIT_OUTBOX) ? WH_EDB : 0;
}

/* Fires what is due on one order at now; its row goes to d->fired. *nev
 * counts the events. */
static int s_fire_order(s_dispatch_t *d, order_t *o, int64_t now, int *nev) {
  const clk_policy_t *p = s_policy(d, o->policy);
  order_clocks_fill(o, p);
  clk_fired_t f;
  clk_fire(p, &o->clocks, now, &f);
  uint32_t v = o->version;
  int done = order_done_state(o->state);
  int rc = 0;
  char note[512];
  char *names[CLK_MAX];
  Whistle__WorkEvent proto = WHISTLE__WORK_EVENT__INIT;
  wh_str_t s;
  /* the lapses of the parties' clocks */
  size_t nl = 0;
  wh_str_init(&s, note, sizeof note);
  wh_str_add(&s, "overdue:");
  for (int i = 0; i < f.nlapsed; i++) {
    const char *name = o->clocks.c[f.lapsed[i]].name;
    if (clk_is_feedback(name)) continue;
    names[nl++] = (char *)name;
    wh_str_cat(&s, " ", name, (char *)NULL);
  }
  if (nl) {
    proto.lapsed = names;
    proto.n_lapsed = nl;
    rc = s_fire_event(d, o, ++v, now, WHISTLE__WORK_EVENT_KIND__WORK_OVERDUE, "overdue", note,
                      &proto);
    (*nev)++;
  }
  if (!rc && f.feedback_due) {
    Whistle__WorkEvent none = WHISTLE__WORK_EVENT__INIT;
    rc = s_fire_event(d, o, ++v, now, WHISTLE__WORK_EVENT_KIND__WORK_FEEDBACK_DUE, "feedback_due",
                      "the feedback window has passed: the center may close it", &none);
    (*nev)++;
  }
  if (!rc && f.nreminded) {
    Whistle__WorkEvent rem = WHISTLE__WORK_EVENT__INIT;
    char *rn[CLK_MAX];
    wh_str_init(&s, note, sizeof note);
    wh_str_add(&s, "reminder: ");
    wh_str_int(&s, f.share);
    wh_str_add(&s, "% of the time for");
    for (int i = 0; i < f.nreminded; i++) {
      rn[i] = o->clocks.c[f.reminded[i]].name;
      wh_str_cat(&s, " ", rn[i], (char *)NULL);
    }
    rem.reminded = rn;
    rem.n_reminded = (size_t)f.nreminded;
    rem.share = (uint32_t)f.share;
    rc = s_fire_event(d, o, ++v, now, WHISTLE__WORK_EVENT_KIND__WORK_REMINDER, "reminder", note,
                      &rem);
    (*nev)++;
  }
  /* The ladder: started when a lapse of the lead's clocks is found (an
   * order that arrives with its clocks long past starts it now, not back
   * then), each later step due `after` the one before as scheduled (a late
   * run takes every step due, each once), stopped once resolved. */
  int step = o->ladder_step;
  int64_t next = o->ladder_next;
  if (f.lead_lapse_due_ms && !next && !done && step < p->nsteps)
    next = clk_ladder_due(p, d->cal, step, now);
  while (!rc && !done && next && next <= now && step < p->nsteps) {
    char party[CLK_NAME_MAX];
    rc = order_step_row(d->svc->pg, d->org, p, o, step, "clock", now, party);
    if (rc) break;
    Whistle__WorkEvent es = WHISTLE__WORK_EVENT__INIT;
    es.step = (uint32_t)step + 1;
    es.supervisor = party;
    wh_str_init(&s, note, sizeof note);
    wh_str_add(&s, "escalated, step ");
    wh_str_int(&s, step + 1);
    wh_str_cat(&s, ": ", party, (char *)NULL);
    rc = s_fire_event(d, o, ++v, now, WHISTLE__WORK_EVENT_KIND__WORK_ESCALATED, "escalated", note,
                      &es);
    (*nev)++;
    step++;
    next = clk_ladder_due(p, d->cal, step, next);
  }
  if (done) next = 0;
  if (rc) return rc;
  int64_t due = clk_next(&o->clocks);
  if (next && (!due || next < due)) due = next;
  int64_t ovd[CLK_MAX], rem[CLK_MAX];
  for (int i = 0; i < o->clocks.n; i++) {
    ovd[i] = o->clocks.c[i].lapsed_ms;
    rem[i] = o->clocks.c[i].remind_ms;
  }
  wh_rows_t *r = &d->fired;
  wh_rows_next(r);
  wh_rows_text(r, 0, o->ticket);
  wh_rows_int(r, 1, o->version);
  wh_rows_int(r, 2, v);
  wh_rows_ints(r, 3, ovd, (size_t)o->clocks.n);
  wh_rows_ints(r, 4, rem, (size_t)o->clocks.n);
  wh_rows_int(r, 5, due);
  wh_rows_int(r, 6, step);
  wh_rows_int(r, 7, next);
  if (due && due < d->batch_due) d->batch_due = due;
  return 0;
}

static void s_on_timer(uv_timer_t *h) {
  s_dispatch_t *d = h->data;
  wh_pg_t *pg = d->svc->pg;
  int64_t now = wh_clock_now_ms();
  int more = 0, failed = 1, nev = 0;
  if (wh_pg_ready(pg) == 0 && wh_pg_exec(pg, "BEGIN") == 0) {
    char at[24];
    snprintf(at, sizeof at, "%" PRId64, now);
    const char *v[1] = {at};
    PGresult *r = wh_pg_run_binary(pg, &s_lapse, 1, v);
    int rc = r ? 0 : WH_EDB;
    int n = r ? PQntuples(r) : 0;
    more = n >= DISPATCH_LAPSE_BATCH;
    wh_rows_reset(&d->fired);
    for (int i = 0; i < n && !rc; i++) {
      order_t o;
      rc = order_read(r, i, &o);
      wh_log_ctx(o.ticket, NULL);
      if (!rc) rc = s_fire_order(d, &o, now, &nev);
      wh_log_ctx(NULL, NULL);
    }
    if (!rc && d->fired.nrows) {
      PGresult *u = wh_rows_run(pg, &s_fired, &d->fired, 0, NULL);
      if (!u || atoi(PQcmdTuples(u)) != d->fired.nrows) rc = WH_EDB; /* fenced: cannot be */
      if (u) PQclear(u);
    }
    if (r) PQclear(r);
    wh_pg_step_t steps[WH_CONSUMER_STEPS];
    int nsteps = s_steps(d, steps);
    if (rc || wh_pg_pipeline(pg, 0, steps, nsteps, 1)) {
      wh_pg_rollback(pg);
      s_reset(d);
      wh_relay_aborted(d->relay);
      more = 0;
    } else {
      failed = 0;
      if (nev) wh_info("%d clock firing(s) on %d order(s)", nev, n);
      s_reset(d);
      wh_relay_committed(d->relay);
    }
  }
  d->batch_due = INT64_MAX;
  if (more) {
    d->armed_ms = now;
    uv_timer_start(&d->timer, s_on_timer, 0, 0);
  } else if (failed) {
    /* The scan failed (the database down, or refusing it): look again in a
     * second, not at once and for ever. */
    d->armed_ms = now + 1000;
    uv_timer_start(&d->timer, s_on_timer, 1000, 0);
  } else {
    s_arm(d);
  }
}

static void s_committed(void *arg) {
  s_dispatch_t *d = arg;
  d->policy_fresh = 0;
  s_reset(d);
  wh_relay_committed(d->relay);
  /* Only a deadline earlier than the one the timer waits for moves it; the
   * database need not be asked. */
  if (d->batch_due < d->armed_ms) {
    int64_t delay = d->batch_due - wh_clock_now_ms();
    d->armed_ms = d->batch_due;
    uv_timer_start(&d->timer, s_on_timer, (uint64_t)(delay > 0 ? delay : 0), 0);
  }
  d->batch_due = INT64_MAX;
}

static void s_aborted(void *arg) {
  s_dispatch_t *d = arg;
  if (d->policy_fresh) d->policy->id = 0; /* its row went with the transaction */
  d->policy_fresh = 0;
  s_reset(d);
  wh_relay_aborted(d->relay);
  d->batch_due = INT64_MAX;
}

static const wh_consumer_ops_t s_ops = {.body = WHISTLE__ENVELOPE__BODY_TRIAGED,
                                        .from = "triage",
                                        .prepare = s_prepare,
                                        .apply = s_apply,
                                        .steps = s_steps,
                                        .committed = s_committed,
                                        .aborted = s_aborted,
                                        .first_applied = "SELECT ticket_id FROM work_order WHERE ticket_id = ANY($2::text[])"};

static wh_calendar_t *s_load(wh_service_t *svc) {
  char path[512], err[512];
  wh_service_conf_path(svc, "calendar.conf", path, sizeof path);
  wh_calendar_t *cal = wh_calendar_load(path, err, sizeof err);
  if (!cal) wh_error("%s", err);
  return cal;
}

static clk_policy_t *s_load_policy(wh_service_t *svc) {
  char path[512], err[512];
  wh_service_conf_path(svc, "clocks.conf", path, sizeof path);
  clk_policy_t *p = clk_policy_load(path, err, sizeof err);
  if (!p) wh_error("%s", err);
  return p;
}

/* The rules and their catalogue, for the class codes an assignment may
 * name (no words: dispatch decides nothing from a text). */
static wh_rules_t *s_load_rules(wh_service_t *svc, const wh_org_t *org) {
  char path[512], err[512];
  wh_service_conf_path(svc, "rules.conf", path, sizeof path);
  wh_rules_t *r = org ? wh_rules_load(path, org, err, sizeof err) : NULL;
  if (!r && org) wh_error("%s", err);
  return r;
}

static void s_reload(wh_service_t *svc) {
  s_dispatch_t *d = svc->data;
  wh_calendar_t *cal = s_load(svc);
  wh_org_t *org = wh_service_org(svc);
  clk_policy_t *policy = s_load_policy(svc);
  wh_rules_t *rules = s_load_rules(svc, org);
  if (!cal || !org || !policy || !rules) {
    wh_error("reload refused; the calendar, clocks, org chart and catalogue in force stay");
    wh_calendar_destroy(&cal);
    wh_org_destroy(&org);
    clk_policy_destroy(&policy);
    wh_rules_destroy(&rules);
    return;
  }
  wh_rules_destroy(&d->rules);
  d->rules = rules;
  wh_calendar_destroy(&d->cal);
  d->cal = cal;
  wh_org_destroy(&d->org);
  d->org = org;
  if (policy->text && d->policy->text && !strcmp(policy->text, d->policy->text)) {
    clk_policy_destroy(&policy); /* the same clocks: the same id */
  } else {
    /* The policy it replaces stays for the orders frozen on it. */
    if (d->policy->id) s_keep_older(d, d->policy);
    else clk_policy_destroy(&d->policy);
    d->policy = policy;
    if (wh_pg_ready(svc->pg) == 0 && s_policy_store(d))
      wh_warn("the new clocks are stored with the first order they open");
  }
  wh_info("calendar, clocks, org chart and catalogue reloaded");
}

/* A desk action set a deadline: the timer moves only if it is earlier. */
static void s_desk_deadline(void *arg, int64_t due_ms) {
  s_dispatch_t *d = arg;
  if (due_ms >= d->armed_ms) return;
  int64_t delay = due_ms - wh_clock_now_ms();
  d->armed_ms = due_ms;
  uv_timer_start(&d->timer, s_on_timer, (uint64_t)(delay > 0 ? delay : 0), 0);
}

/* The business clock moved (tests): the timer waits for the earliest
 * firing as the new time reckons it. */
static void s_clock_moved(wh_service_t *svc) {
  s_dispatch_t *d = svc->data;
  if (d) s_arm(d);
}

static void s_stop(wh_service_t *svc) {
  s_dispatch_t *d = svc->data;
  desk_destroy(&d->desk);
  wh_consumer_destroy(&d->in);
  wh_relay_destroy(&d->relay);
  wh_relay_destroy(&d->lessons);
  wh_rules_destroy(&d->rules);
  wh_calendar_destroy(&d->cal);
  wh_org_destroy(&d->org);
  clk_policy_destroy(&d->policy);
  for (int i = 0; i < d->nolder; i++) clk_policy_destroy(&d->older[i]);
  wh_rows_free(&d->orders);
  wh_rows_free(&d->timeline);
  wh_rows_free(&d->fired);
  free(d->first);
  uv_timer_stop(&d->timer);
  uv_close((uv_handle_t *)&d->timer, NULL);
  uv_run(svc->loop, UV_RUN_NOWAIT);
  free(d);
  svc->data = NULL;
}

int dispatch_start(wh_service_t *svc) {
  if (!svc->peer) {
    wh_error("--peer (notify's endpoint) is required");
    return WH_EINVAL;
  }
  s_dispatch_t *d = calloc(1, sizeof *d);
  if (!d) return WH_ENOMEM;
  d->svc = svc;
  svc->data = d;
  uv_timer_init(svc->loop, &d->timer); /* first: s_stop closes it, whatever start got to */
  d->timer.data = d;
  svc->on_reload = s_reload;
  svc->on_stop = s_stop;
  svc->on_clock = s_clock_moved;
  wh_rows_init_record(&d->orders, 30, "work_order_row");
  wh_rows_init(&d->timeline, 5);
  wh_rows_init_record(&d->fired, 8, "clock_fired_row");
  d->batch_due = INT64_MAX;
  d->first = calloc(WH_CONSUMER_BATCH, sizeof *d->first);
  if (!d->first) return WH_ENOMEM;
  if (!(d->cal = s_load(svc)) || !(d->org = wh_service_org(svc)) || !(d->policy = s_load_policy(svc)) ||
      !(d->rules = s_load_rules(svc, d->org)))
    return WH_ECONFIG;
  d->relay = wh_relay_new(svc->loop, svc->zctx, svc->outbox, svc->keys, "notify", svc->peer);
  d->builder = (wh_builder_t){.sender = "dispatch", .st = &s_built_rows, .build = s_build, .arg = d,
                                .taken = &s_first_taken};
  if (d->relay) wh_relay_builder(d->relay, &d->builder);
  d->in = wh_consumer_new(svc->loop, svc->zctx, svc->pg, svc->keys, svc->listen, &s_ops, d);
  if (svc->lessons_ep &&
      !(d->lessons = wh_relay_new(svc->loop, svc->zctx, svc->outbox, svc->keys, "triage", svc->lessons_ep)))
    return WH_EZMQ;
  if (!d->relay || !d->in) return WH_EZMQ;
  wh_outbox_throttle(svc->outbox, wh_consumer_bus(d->in));
  if (svc->desk_ep) {
    const char *hotline = getenv("WHISTLE_HOTLINE");
    desk_conf_t dc = {.svc = svc, .relay = d->relay, .lessons = d->lessons, .rules = &d->rules,
                      .cal = &d->cal, .org = &d->org,
                      .hotline = hotline && *hotline ? hotline : "hotline", .policy = s_policy,
                      .deadline = s_desk_deadline, .arg = d};
    if (!(d->desk = desk_new(&dc, svc->desk_ep))) return WH_EZMQ;
  }
  if (wh_pg_ready(svc->pg) == 0 && s_policy_store(d))
    wh_warn("the clocks in force are stored with the first order they open");
  s_arm(d); /* clocks live in the database: re-arm what a restart left */
  wh_info("taking decisions on %s, passing work events to %s", svc->listen, svc->peer);
  return 0;
}
