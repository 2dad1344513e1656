/* dispatch - turns each decision into a work order on a clock.
 *
 * A decision opens a work order for its lead and co-parties with the
 * deadlines of its level (wh_calendar), or, for a repeat, records it merged
 * under the first order. Deadlines are rows: at start, and after every change,
 * one libuv timer is armed for the earliest pending one. When it fires, the
 * lapsed rows are marked overdue in the same statement that finds them (so a
 * repeated or stale firing finds nothing), the order's version moves on, and
 * an OVERDUE event goes out through the outbox with the order's new version
 * as its sequence. */
#include "dispatch.h"
#include "wh_calendar.h"
#include "wh_clock.h"
#include "wh_codec.h"
#include "wh_err.h"
#include "wh_log.h"
#include "wh_outbox.h"
#include "wh_rules.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TIMER_BATCH 500
#define TIMER_RECHECK_MS 60000

typedef struct {
  wh_service_t *svc;
  wh_calendar_t *cal;
  wh_consumer_t *in;
  wh_relay_t *relay;
  uv_timer_t timer;
} s_dispatch_t;

static const wh_stmt_t s_insert_order = {
    "dispatch_insert_order",
    "INSERT INTO work_order (ticket_id, version, state, external_id, source, community, grid,"
    " address, category, klass, body, reporter_masked, received_at, color, level, lead, co,"
    " rule, weight, duplicate_of) VALUES ($1, 1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11,"
    " to_timestamp($12::double precision / 1000), $13, $14, $15, $16::text[], $17, $18, $19)"};
static const wh_stmt_t s_insert_deadline = {
    "dispatch_insert_deadline",
    "INSERT INTO deadline (ticket_id, name, due_at)"
    " VALUES ($1, $2, to_timestamp($3::double precision / 1000))"};
static const wh_stmt_t s_insert_timeline = {
    "dispatch_insert_timeline",
    "INSERT INTO timeline (ticket_id, at, kind, actor, note)"
    " VALUES ($1, to_timestamp($2::double precision / 1000), $3, $4, $5)"};
static const wh_stmt_t s_first_order = {
    "dispatch_first_order", "SELECT lead FROM work_order WHERE ticket_id = $1 FOR UPDATE"};
static const wh_stmt_t s_next_due = {
    "dispatch_next_due",
    "SELECT (extract(epoch FROM min(due_at)) * 1000)::bigint FROM deadline"
    " WHERE met_at IS NULL AND overdue_at IS NULL"};
static const wh_stmt_t s_lapse = {
    "dispatch_lapse",
    "UPDATE deadline SET overdue_at = to_timestamp($1::double precision / 1000)"
    " WHERE (ticket_id, name) IN (SELECT ticket_id, name FROM deadline"
    "   WHERE met_at IS NULL AND overdue_at IS NULL"
    "   AND due_at <= to_timestamp($1::double precision / 1000) ORDER BY due_at LIMIT $2)"
    " RETURNING ticket_id, name"};
static const wh_stmt_t s_bump = {
    "dispatch_bump",
    "UPDATE work_order SET version = version + 1, updated_at = now() WHERE ticket_id = $1"
    " RETURNING version, state, color, level, lead, co, community, grid,"
    " klass || ' @ ' || community || '/' || grid || ' ' || address || ': ' || body,"
    " reporter_masked"};

static int s_timeline(wh_pg_t *pg, const char *ticket, int64_t at_ms, const char *kind,
                      const char *actor, const char *note) {
  char at[24];
  snprintf(at, sizeof at, "%" PRId64, at_ms);
  const char *v[5] = {ticket, at, kind, actor, note};
  PGresult *r = wh_pg_run(pg, &s_insert_timeline, 5, v, NULL, NULL);
  if (!r) return WH_EDB;
  PQclear(r);
  return 0;
}

static int s_emit(s_dispatch_t *d, Whistle__WorkEvent *ev, const char *trace) {
  Whistle__Envelope out = WHISTLE__ENVELOPE__INIT;
  out.ticket_id = ev->ticket_id;
  out.seq = ev->version;
  out.trace_id = (char *)(trace ? trace : "");
  out.body_case = WHISTLE__ENVELOPE__BODY_WORK;
  out.work = ev;
  return wh_outbox_put(d->svc->pg, "dispatch", "notify", &out);
}

static int s_apply(void *arg, const Whistle__Envelope *env) {
  s_dispatch_t *d = arg;
  wh_pg_t *pg = d->svc->pg;
  const Whistle__TicketTriaged *t = env->triaged;
  if (!t->ticket || !t->ticket->report || strcmp(t->ticket->ticket_id, env->ticket_id) ||
      !wh_color_name(t->color)[0] || t->level < 1 || t->level > 3 || !t->lead[0] ||
      t->n_co > WH_MAX_CO)
    return WH_EFIELD;
  const Whistle__SubmitTicket *rep = t->ticket->report;
  const char *ticket = t->ticket->ticket_id;
  int64_t now = wh_clock_now_ms();

  /* A repeat merges under the first order, if dispatch has it. */
  char first_lead[96] = "";
  if (t->duplicate_of[0]) {
    const char *v[1] = {t->duplicate_of};
    PGresult *r = wh_pg_run(pg, &s_first_order, 1, v, NULL, NULL);
    if (!r) return WH_EDB;
    if (PQntuples(r) == 1) snprintf(first_lead, sizeof first_lead, "%s", PQgetvalue(r, 0, 0));
    else wh_warn("repeat of %s, which dispatch does not have; dispatching it", t->duplicate_of);
    PQclear(r);
  }
  int merged = first_lead[0] != '\0';

  char received[24], level[4], weight[12], co[WH_MAX_CO * 100 + 4];
  snprintf(received, sizeof received, "%" PRId64, rep->received_at_ms);
  snprintf(level, sizeof level, "%u", t->level);
  snprintf(weight, sizeof weight, "%u", t->weight);
  if (wh_pg_text_array(t->co, t->n_co, co, sizeof co)) return WH_EFIELD;
  const char *masked = rep->reporter ? rep->reporter->phone : "";
  const char *v[19] = {ticket, merged ? "merged" : "dispatched", rep->external_id,
                       wh_source_name(rep->source), rep->community, rep->grid, rep->address,
                       rep->category, t->klass, rep->text, masked, received,
                       wh_color_name(t->color), level, t->lead, co, t->rule, weight,
                       merged ? t->duplicate_of : NULL};
  PGresult *r = wh_pg_run(pg, &s_insert_order, 19, v, NULL, NULL);
  if (!r) return WH_EDB;
  PQclear(r);

  char note[512];
  snprintf(note, sizeof note, "%s from %s", rep->external_id, wh_source_name(rep->source));
  if (s_timeline(pg, ticket, rep->received_at_ms, "received", "intake", note)) return WH_EDB;
  snprintf(note, sizeof note, "%s %s, level %u, lead %s (%s)", t->klass, wh_color_name(t->color),
           t->level, t->lead, t->rule);
  if (s_timeline(pg, ticket, t->decided_at_ms ? t->decided_at_ms : now, "triaged", "triage", note))
    return WH_EDB;

  char summary[4600];
  snprintf(summary, sizeof summary, "%s @ %s/%s %s: %s", t->klass, rep->community, rep->grid,
           rep->address, rep->text);
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

  if (merged) {
    snprintf(note, sizeof note, "repeat of %s; merged", t->duplicate_of);
    if (s_timeline(pg, ticket, now, "merged", "triage", note)) return WH_EDB;
    snprintf(note, sizeof note, "repeat report %s (%s) merged here", ticket, rep->external_id);
    if (s_timeline(pg, t->duplicate_of, now, "repeat", "triage", note)) return WH_EDB;
    ev.kind = WHISTLE__WORK_EVENT_KIND__WORK_MERGED;
    ev.state = "merged";
    ev.lead = first_lead;
    ev.duplicate_of = t->duplicate_of;
    return s_emit(d, &ev, env->trace_id);
  }

  wh_due_t due[WH_MAX_DEADLINES];
  int ndue = wh_calendar_deadlines(d->cal, (int)t->level, rep->received_at_ms, due);
  Whistle__Deadline dl[WH_MAX_DEADLINES];
  Whistle__Deadline *dlp[WH_MAX_DEADLINES];
  size_t o = (size_t)snprintf(note, sizeof note, "lead %s", t->lead);
  for (size_t i = 0; i < t->n_co && o < sizeof note; i++)
    o += (size_t)snprintf(note + o, sizeof note - o, "%s%s", i ? ", " : "; co ", t->co[i]);
  for (int i = 0; i < ndue; i++) {
    char at[24], when[40];
    snprintf(at, sizeof at, "%" PRId64, due[i].due_ms);
    const char *dv[3] = {ticket, due[i].name, at};
    PGresult *dr = wh_pg_run(pg, &s_insert_deadline, 3, dv, NULL, NULL);
    if (!dr) return WH_EDB;
    PQclear(dr);
    whistle__deadline__init(&dl[i]);
    dl[i].name = (char *)due[i].name;
    dl[i].due_at_ms = due[i].due_ms;
    dlp[i] = &dl[i];
    if (o < sizeof note)
      o += (size_t)snprintf(note + o, sizeof note - o, "; %s by %s", due[i].name,
                            wh_time_format(due[i].due_ms, when, sizeof when));
  }
  if (s_timeline(pg, ticket, now, "dispatched", "dispatch", note)) return WH_EDB;
  ev.kind = WHISTLE__WORK_EVENT_KIND__WORK_DISPATCHED;
  ev.state = "dispatched";
  ev.lead = t->lead;
  ev.co = t->co;
  ev.n_co = t->n_co;
  ev.deadlines = dlp;
  ev.n_deadlines = (size_t)ndue;
  return s_emit(d, &ev, env->trace_id);
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
  uv_timer_start(&d->timer, s_on_timer, (uint64_t)delay, 0);
}

/* Splits a Postgres text[] of plain codes into out (pointers into buf). */
static size_t s_split_array(char *buf, char **out, size_t max) {
  size_t n = 0;
  char *p = buf;
  if (*p == '{') p++;
  while (*p && *p != '}' && n < max) {
    if (*p == '"') p++;
    out[n++] = p;
    while (*p && *p != ',' && *p != '}' && *p != '"') p++;
    if (*p == '"') *p++ = '\0';
    if (*p == ',' || *p == '}') *p++ = '\0';
  }
  return n;
}

static int s_lapse_one(s_dispatch_t *d, const char *ticket, char **names, size_t nnames,
                       int64_t now) {
  wh_pg_t *pg = d->svc->pg;
  const char *v[1] = {ticket};
  PGresult *r = wh_pg_run(pg, &s_bump, 1, v, NULL, NULL);
  if (!r) return WH_EDB;
  if (PQntuples(r) != 1) {
    PQclear(r);
    return 0;
  }
  char cobuf[WH_MAX_CO * 100 + 4];
  snprintf(cobuf, sizeof cobuf, "%s", PQgetvalue(r, 0, 5));
  char *co[WH_MAX_CO];
  size_t nco = s_split_array(cobuf, co, WH_MAX_CO);
  Whistle__WorkEvent ev = WHISTLE__WORK_EVENT__INIT;
  ev.ticket_id = (char *)ticket;
  ev.kind = WHISTLE__WORK_EVENT_KIND__WORK_OVERDUE;
  ev.version = (uint32_t)strtoul(PQgetvalue(r, 0, 0), NULL, 10);
  ev.state = PQgetvalue(r, 0, 1);
  ev.color = wh_color_parse(PQgetvalue(r, 0, 2));
  ev.level = (uint32_t)atoi(PQgetvalue(r, 0, 3));
  ev.lead = PQgetvalue(r, 0, 4);
  ev.co = co;
  ev.n_co = nco;
  ev.community = PQgetvalue(r, 0, 6);
  ev.grid = PQgetvalue(r, 0, 7);
  ev.summary = PQgetvalue(r, 0, 8);
  ev.reporter_masked = PQgetvalue(r, 0, 9);
  ev.lapsed = names;
  ev.n_lapsed = nnames;
  ev.at_ms = now;
  char note[256];
  size_t o = (size_t)snprintf(note, sizeof note, "overdue:");
  for (size_t i = 0; i < nnames && o < sizeof note; i++)
    o += (size_t)snprintf(note + o, sizeof note - o, " %s", names[i]);
  int rc = s_timeline(pg, ticket, now, "overdue", "clock", note);
  if (!rc) rc = s_emit(d, &ev, NULL);
  PQclear(r);
  return rc;
}

static int s_cmp_rows(const void *a, const void *b) {
  return strcmp(((char *const *)a)[0], ((char *const *)b)[0]);
}

static void s_on_timer(uv_timer_t *h) {
  s_dispatch_t *d = h->data;
  wh_pg_t *pg = d->svc->pg;
  int64_t now = wh_clock_now_ms();
  int more = 0;
  if (wh_pg_ready(pg) == 0 && wh_pg_exec(pg, "BEGIN") == 0) {
    char at[24], lim[12];
    snprintf(at, sizeof at, "%" PRId64, now);
    snprintf(lim, sizeof lim, "%d", TIMER_BATCH);
    const char *v[2] = {at, lim};
    PGresult *r = wh_pg_run(pg, &s_lapse, 2, v, NULL, NULL);
    int rc = r ? 0 : WH_EDB;
    int n = r ? PQntuples(r) : 0;
    more = n == TIMER_BATCH;
    /* Group lapsed deadlines by ticket: one OVERDUE event per order. */
    char *(*rows)[2] = n ? calloc((size_t)n, sizeof *rows) : NULL;
    for (int i = 0; i < n; i++) {
      rows[i][0] = PQgetvalue(r, i, 0);
      rows[i][1] = PQgetvalue(r, i, 1);
    }
    if (n) qsort(rows, (size_t)n, sizeof *rows, s_cmp_rows);
    for (int i = 0; i < n && !rc;) {
      char *names[WH_MAX_DEADLINES];
      size_t nn = 0;
      int j = i;
      while (j < n && !strcmp(rows[j][0], rows[i][0])) {
        if (nn < WH_MAX_DEADLINES) names[nn++] = rows[j][1];
        j++;
      }
      wh_log_ctx(rows[i][0], NULL);
      rc = s_lapse_one(d, rows[i][0], names, nn, now);
      wh_log_ctx(NULL, NULL);
      i = j;
    }
    free(rows);
    if (r) PQclear(r);
    if (rc || wh_pg_exec(pg, "COMMIT")) {
      wh_pg_exec(pg, "ROLLBACK");
      more = 0;
    } else if (n) {
      wh_info("%d deadline(s) lapsed", n);
      wh_relay_kick(d->relay);
    }
  }
  if (more) uv_timer_start(&d->timer, s_on_timer, 0, 0);
  else s_arm(d);
}

static void s_committed(void *arg) {
  s_dispatch_t *d = arg;
  wh_relay_kick(d->relay);
  s_arm(d);
}

static const wh_consumer_ops_t s_ops = {
    .body = WHISTLE__ENVELOPE__BODY_TRIAGED, .apply = s_apply, .committed = s_committed};

static wh_calendar_t *s_load(wh_service_t *svc) {
  char path[512], err[512];
  wh_service_conf_path(svc, "calendar.conf", path, sizeof path);
  wh_calendar_t *cal = wh_calendar_load(path, err, sizeof err);
  if (!cal) wh_error("%s", err);
  return cal;
}

static void s_reload(wh_service_t *svc) {
  s_dispatch_t *d = svc->data;
  wh_calendar_t *cal = s_load(svc);
  if (!cal) {
    wh_error("reload refused; the calendar in force stays");
    return;
  }
  wh_calendar_destroy(&d->cal);
  d->cal = cal;
  wh_info("calendar reloaded");
}

static void s_stop(wh_service_t *svc) {
  s_dispatch_t *d = svc->data;
  wh_consumer_destroy(&d->in);
  wh_relay_destroy(&d->relay);
  wh_calendar_destroy(&d->cal);
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
  d->svc = svc;
  svc->data = d;
  svc->on_reload = s_reload;
  svc->on_stop = s_stop;
  if (!(d->cal = s_load(svc))) return WH_ECONFIG;
  uv_timer_init(svc->loop, &d->timer);
  d->timer.data = d;
  d->relay = wh_relay_new(svc->loop, svc->zctx, svc->pg, "notify", svc->peer);
  d->in = wh_consumer_new(svc->loop, svc->zctx, svc->pg, svc->listen, &s_ops, d);
  if (!d->relay || !d->in) return WH_EZMQ;
  s_arm(d); /* deadlines live in the database: re-arm what a restart left */
  wh_info("taking decisions on %s, passing work events to %s", svc->listen, svc->peer);
  return 0;
}
