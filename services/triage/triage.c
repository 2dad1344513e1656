/* triage - decides every report intake passes on.
 *
 * The rules file (deploy/<conf>/rules.conf) and the org chart decide colour,
 * level, lead and co-parties; the decision is stored with the name of the rule
 * that made it. A report of the same class in the same grid as an issue still
 * open, received within the rules' window of it, is a repeat: it is merged
 * under the first (duplicate_of) and not handled twice. The decision and its
 * outbox row for dispatch commit together. */
#include "triage.h"
#include "ask.h"
#include "wh_clock.h"
#include "wh_codec.h"
#include "wh_err.h"
#include "wh_log.h"
#include "wh_org.h"
#include "wh_consumer.h"
#include "wh_learn.h"
#include "wh_outbox.h"
#include "wh_rules.h"
#include "wh_text.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DECIDE_US_MAX 4096

/* What prepare found for one report of the batch. */
typedef struct {
  int valid;
  wh_decision_t d;
  char first[32];   /* the open issue in the database this repeats, or "" */
  int64_t first_at; /* its received_at */
  int64_t place;    /* s_place of its klass, community and grid */
} s_pre_t;

/* A class the center gave by hand, as dispatch told it, until its batch
 * commits (and its example joins the ones in memory). */
typedef struct {
  char ticket[WH_RELAY_ID_MAX + 1], klass[64], community[72], prior[64], by[96];
  char *text;
  int64_t at;
} s_lesson_t;

/* A report of this batch that may be repeated by a later one. */
typedef struct {
  char ticket[32], klass[64], community[72], grid[260]; /* a grid: 64 characters, up to 4 bytes each */
  int64_t place; /* s_place of klass, community and grid: compared first */
  int64_t at;
} s_head_t;

typedef struct {
  wh_service_t *svc;
  wh_org_t *org;
  wh_rules_t *rules;
  wh_consumer_t *in;
  wh_relay_t *relay;
  triage_ask_t *ask; /* the center's tries; NULL without --ask */
  s_pre_t pre[WH_CONSUMER_BATCH];
  const Whistle__Envelope *env_of[WH_CONSUMER_BATCH]; /* pre[i] is for env_of[i] */
  int npre, cursor;
  wh_rows_t q;                 /* the repeat lookup's rows */
  int map[WH_CONSUMER_BATCH];  /* its row k is for pre[map[k]] */
  char window[24];
  const char *extra[1];
  s_head_t heads[WH_CONSUMER_BATCH];
  int nheads;
  wh_rows_t rows; /* decision rows of the batch */
  /* what the center taught (--lessons): examples in memory, and a batch's */
  wh_learn_t *learned;
  wh_consumer_t *lessons;
  s_lesson_t lesson[WH_CONSUMER_BATCH];
  int nlesson;
  wh_rows_t lrows;
  /* How long each decision took (wh_rules_decide, the catalogue and the
   * examples included), in µs: counts per µs up to DECIDE_US_MAX, above it
   * one count; logged when triage stops (make bench prints it). The wall
   * clock's time holds what the machine's other processes took meanwhile;
   * the thread's CPU time is the decision's own. */
  uint32_t decide_us[DECIDE_US_MAX + 1];
  uint32_t decide_cpu_us[DECIDE_US_MAX + 1]; /* the same in the thread's CPU time */
  uint64_t decisions;
  int64_t decide_max_ns;
} s_triage_t;

/* For each report that may repeat an open issue, the first such issue. */
static const wh_stmt_t s_find_first = {
    "triage_first",
    "SELECT x.n, d.ticket_id, round(extract(epoch FROM d.received_at) * 1000)::bigint"
    " FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bigint[]) WITH ORDINALITY"
    "   AS x(place, klass, community, grid, at, n)"
    " CROSS JOIN LATERAL (SELECT ticket_id, received_at FROM decision"
    "   WHERE place = x.place AND klass = x.klass AND community = x.community AND grid = x.grid"
    "   AND open AND duplicate_of IS NULL AND mergeable"
    "   AND received_at BETWEEN to_timestamp((x.at - $6::bigint)::double precision / 1000)"
    "                       AND to_timestamp((x.at + $6::bigint)::double precision / 1000)"
    "   ORDER BY received_at, ticket_id LIMIT 1) d"};
static const wh_stmt_t s_insert = {
    "triage_insert",
    "INSERT INTO decision (ticket_id, source, external_id, received_at, community, grid,"
    " category, klass, color, level, lead, co, rule, decided_by, weight, mergeable, duplicate_of,"
    " out_id, out_payload, place, words, danger)"
    " SELECT r.ticket_id, r.source, r.external_id, r.received_at, r.community, r.grid,"
    "   r.category, r.klass, r.color, r.level, r.lead, r.co, r.rule, 'rules', r.weight,"
    "   r.mergeable, r.duplicate_of, nextval('outbox_id_seq'), r.out_payload, r.place,"
    "   r.words, r.danger"
    " FROM unnest($1::decision_row[]) AS r"
    " RETURNING out_id, ticket_id"};

/* The repeat lookup's number for a place: FNV-1a (64 bits) of klass,
 * community and grid joined by U+001F, as decision_place() computes it in
 * sql/005_repeat_place.sql. */
static int64_t s_place(const char *klass, const char *community, const char *grid) {
  const char *parts[3] = {klass, community, grid};
  uint64_t h = UINT64_C(14695981039346656037);
  for (int i = 0; i < 3; i++) {
    if (i) h = (h ^ 0x1f) * UINT64_C(1099511628211);
    for (const unsigned char *p = (const unsigned char *)parts[i]; *p; p++)
      h = (h ^ *p) * UINT64_C(1099511628211);
  }
  int64_t v;
  memcpy(&v, &h, sizeof v);
  return v;
}

static int s_report_ok(const Whistle__Envelope *env) {
  const Whistle__TicketReceived *rec = env->received;
  const Whistle__SubmitTicket *rep = rec ? rec->report : NULL;
  return rep && !strcmp(rec->ticket_id, env->ticket_id) && rep->text[0] && rep->community[0];
}

/* The answers of the repeat lookup: for each report that may repeat an open
 * issue, the first such issue (rows numbered by WITH ORDINALITY). */
static void s_on_first(void *arg, const PGresult *r) {
  s_triage_t *t = arg;
  for (int k = 0; k < PQntuples(r); k++) {
    int o = atoi(PQgetvalue(r, k, 0)) - 1;
    if (o < 0 || o >= t->q.nrows) continue;
    s_pre_t *p = &t->pre[t->map[o]];
    snprintf(p->first, sizeof p->first, "%s", PQgetvalue(r, k, 1));
    p->first_at = strtoll(PQgetvalue(r, k, 2), NULL, 10);
  }
}

static void s_decide_timed(s_triage_t *t, int64_t ns, int64_t cpu_ns) {
  int64_t us = ns / 1000, cpu_us = cpu_ns / 1000;
  t->decide_us[us < DECIDE_US_MAX ? us : DECIDE_US_MAX]++;
  t->decide_cpu_us[cpu_us < 0 ? 0 : cpu_us < DECIDE_US_MAX ? cpu_us : DECIDE_US_MAX]++;
  t->decisions++;
  if (ns > t->decide_max_ns) t->decide_max_ns = ns;
}

/* The decision time at or below which a share q of the decisions took, in
 * µs (DECIDE_US_MAX: above the counted range). */
static int s_decide_quantile(const s_triage_t *t, const uint32_t *hist, double q) {
  uint64_t want = (uint64_t)(q * (double)t->decisions + 0.999999), seen = 0;
  for (int us = 0; us <= DECIDE_US_MAX; us++)
    if ((seen += hist[us]) >= want) return us + 1;
  return DECIDE_US_MAX;
}

/* Decides every report of the batch, and looks up in one statement, sent
 * with the claims, the open issue each mergeable one may repeat. */
static int s_lookup(void *arg, const Whistle__Envelope *const *envs, int n, wh_pg_step_t *step) {
  s_triage_t *t = arg;
  wh_rows_reset(&t->q);
  t->npre = n;
  t->cursor = 0;
  t->nheads = 0;
  for (int i = 0; i < n; i++) {
    s_pre_t *p = &t->pre[i];
    t->env_of[i] = envs[i];
    p->valid = s_report_ok(envs[i]);
    p->first[0] = '\0';
    if (!p->valid) continue;
    const Whistle__SubmitTicket *rep = envs[i]->received->report;
    wh_report_t in = {.category = rep->category, .text = rep->text,
                      .channel = wh_source_name(rep->source), .community = rep->community,
                      .grid = rep->grid, .address = rep->address,
                      .care_tags = rep->care_tags, .ncare_tags = rep->n_care_tags,
                      .learned = t->learned};
    struct timespec t0, t1, c0, c1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
    wh_rules_decide(t->rules, t->org, &in, &p->d);
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    s_decide_timed(t, (int64_t)(t1.tv_sec - t0.tv_sec) * 1000000000 + (t1.tv_nsec - t0.tv_nsec),
                   (int64_t)(c1.tv_sec - c0.tv_sec) * 1000000000 + (c1.tv_nsec - c0.tv_nsec));
    p->place = s_place(p->d.klass, rep->community, rep->grid);
    if (!p->d.merge || t->rules->dedup_window_ms <= 0) continue;
    t->map[t->q.nrows] = i;
    wh_rows_next(&t->q);
    wh_rows_int(&t->q, 0, p->place);
    wh_rows_text(&t->q, 1, p->d.klass);
    wh_rows_text(&t->q, 2, rep->community);
    wh_rows_text(&t->q, 3, rep->grid);
    wh_rows_int(&t->q, 4, rep->received_at_ms);
  }
  if (!t->q.nrows) return 0;
  snprintf(t->window, sizeof t->window, "%" PRId64, t->rules->dedup_window_ms);
  t->extra[0] = t->window;
  *step = (wh_pg_step_t){.st = &s_find_first, .rows = &t->q, .nextra = 1, .extra = t->extra,
                         .on_result = s_on_first, .arg = t};
  return 1;
}

static void s_copy(char *dst, size_t n, const char *src) {
  size_t l = strnlen(src, n - 1);
  memcpy(dst, src, l);
  dst[l] = '\0';
}

static int64_t s_abs(int64_t v) { return v < 0 ? -v : v; }

static int s_apply(void *arg, const Whistle__Envelope *env) {
  s_triage_t *t = arg;
  /* Claimed reports come in batch order; the others were looked up too. */
  while (t->cursor < t->npre && t->env_of[t->cursor] != env) t->cursor++;
  if (t->cursor >= t->npre) return WH_EINVAL;
  s_pre_t *p = &t->pre[t->cursor++];
  if (!p->valid) return WH_EFIELD;
  const Whistle__TicketReceived *rec = env->received;
  const Whistle__SubmitTicket *rep = rec->report;
  wh_decision_t *d = &p->d;

  /* The first open issue this repeats: the database's, or one earlier in
   * this batch, whichever was received first. */
  char first[32];
  snprintf(first, sizeof first, "%s", p->first);
  int64_t first_at = p->first_at;
  int64_t window = t->rules->dedup_window_ms;
  int64_t place = p->place;
  for (int h = 0; d->merge && window > 0 && h < t->nheads; h++) {
    s_head_t *e = &t->heads[h];
    if (e->place != place || s_abs(e->at - rep->received_at_ms) > window ||
        strcmp(e->grid, rep->grid) || strcmp(e->community, rep->community) ||
        strcmp(e->klass, d->klass))
      continue;
    if (!first[0] || e->at < first_at || (e->at == first_at && strcmp(e->ticket, first) < 0)) {
      snprintf(first, sizeof first, "%s", e->ticket);
      first_at = e->at;
    }
  }

  char *cov[WH_MAX_CO];
  for (int i = 0; i < d->nco; i++) cov[i] = d->co[i];

  Whistle__TicketTriaged tri = WHISTLE__TICKET_TRIAGED__INIT;
  tri.ticket = (Whistle__TicketReceived *)rec;
  tri.color = d->color;
  tri.level = (uint32_t)d->level;
  tri.lead = d->lead;
  tri.co = cov;
  tri.n_co = (size_t)d->nco;
  tri.klass = d->klass;
  tri.rule = d->rule;
  tri.duplicate_of = first;
  tri.weight = (uint32_t)d->weight;
  tri.decided_at_ms = wh_clock_now_ms();
  tri.words = d->words;
  tri.danger = d->danger;
  tri.danger_words = d->danger_words;
  tri.place = d->place;
  tri.suggested = d->suggested.klass;
  tri.suggested_score = (uint32_t)d->suggested.score;
  tri.suggested_like = d->suggested.like;
  Whistle__Envelope out = WHISTLE__ENVELOPE__INIT;
  out.ticket_id = rec->ticket_id;
  out.seq = 1;
  out.trace_id = env->trace_id;
  out.body_case = WHISTLE__ENVELOPE__BODY_TRIAGED;
  out.triaged = &tri;

  wh_rows_t *r = &t->rows;
  wh_rows_next(r);
  wh_rows_text(r, 0, rec->ticket_id);
  wh_rows_text(r, 1, wh_source_name(rep->source));
  wh_rows_text(r, 2, rep->external_id);
  wh_rows_time(r, 3, &rep->received_at_ms);
  wh_rows_text(r, 4, rep->community);
  wh_rows_text(r, 5, rep->grid);
  wh_rows_text(r, 6, rep->category);
  wh_rows_text(r, 7, d->klass);
  wh_rows_text(r, 8, wh_color_name(d->color));
  wh_rows_int(r, 9, d->level);
  wh_rows_text(r, 10, d->lead);
  wh_rows_texts(r, 11, (const char *const *)cov, (size_t)d->nco);
  wh_rows_text(r, 12, d->rule);
  wh_rows_int(r, 13, d->weight);
  wh_rows_bool(r, 14, d->merge);
  wh_rows_text(r, 15, first[0] ? first : NULL);
  /* The decision's row carries its TicketTriaged. */
  if (wh_outbox_carry(t->relay, "triage", &out, r, 16)) return WH_EDB; /* roll back, try alone */
  wh_rows_int(r, 17, place);
  wh_rows_text(r, 18, d->words[0] ? d->words : NULL);
  wh_rows_text(r, 19, d->danger[0] ? d->danger : NULL);

  if (d->merge && !first[0] && t->nheads < WH_CONSUMER_BATCH) {
    s_head_t *e = &t->heads[t->nheads++];
    s_copy(e->ticket, sizeof e->ticket, rec->ticket_id);
    s_copy(e->klass, sizeof e->klass, d->klass);
    s_copy(e->community, sizeof e->community, rep->community);
    s_copy(e->grid, sizeof e->grid, rep->grid);
    e->at = rep->received_at_ms;
    e->place = place;
  }
  wh_debug("%s %s level %d lead %s (%s)%s%s", d->klass, wh_color_name(d->color), d->level,
           d->lead, d->rule, first[0] ? " repeat of " : "", first);
  return 0;
}

static int s_steps(void *arg, wh_pg_step_t *steps) {
  s_triage_t *t = arg;
  steps[0] = (wh_pg_step_t){.st = &s_insert, .rows = &t->rows, .on_result = wh_relay_carried,
                            .arg = t->relay};
  wh_relay_step(t->relay, &steps[1]);
  return 2;
}

static void s_committed(void *arg) {
  s_triage_t *t = arg;
  wh_rows_reset(&t->rows);
  wh_relay_committed(t->relay);
}

static void s_aborted(void *arg) {
  s_triage_t *t = arg;
  wh_rows_reset(&t->rows);
  wh_relay_aborted(t->relay);
}

static const wh_consumer_ops_t s_ops = {.body = WHISTLE__ENVELOPE__BODY_RECEIVED,
                                        .from = "intake",
                                        .lookup = s_lookup,
                                        .apply = s_apply,
                                        .steps = s_steps,
                                        .committed = s_committed,
                                        .aborted = s_aborted,
                                        .first_applied = "SELECT ticket_id FROM decision WHERE ticket_id = ANY($2::text[])"};

/* ---- what the center taught ------------------------------------------- */

static const wh_stmt_t s_teach = {
    "triage_teach",
    "INSERT INTO example (ticket_id, klass, text, community, prior_klass, taught_by, taught_at)"
    " SELECT unnest($1::text[]), unnest($2::text[]), unnest($3::text[]), unnest($4::text[]),"
    "   unnest($5::text[]), unnest($6::text[]), unnest($7::timestamptz[])"
    " ON CONFLICT (ticket_id) DO UPDATE SET klass = excluded.klass, text = excluded.text,"
    "   community = excluded.community, prior_klass = excluded.prior_klass,"
    "   taught_by = excluded.taught_by, taught_at = excluded.taught_at"};
static const wh_stmt_t s_examples = {
    "triage_examples", "SELECT ticket_id, klass, text FROM example ORDER BY taught_at, ticket_id"};

static void s_lessons_clear(s_triage_t *t) {
  for (int i = 0; i < t->nlesson; i++) free(t->lesson[i].text);
  t->nlesson = 0;
  wh_rows_reset(&t->lrows);
}

/* A class the center gave: checked whole before anything is kept. */
static int s_learn_apply(void *arg, const Whistle__Envelope *env) {
  s_triage_t *t = arg;
  const Whistle__ClassTaught *c = env->taught;
  if (!c || wh_code_check(c->klass, 63) || wh_code_check(c->community, 64) ||
      wh_text_check(c->text, 1, 4000) || (c->prior_klass[0] && wh_code_check(c->prior_klass, 63)) ||
      wh_code_check(c->taught_by, 95) || strlen(env->ticket_id) > WH_RELAY_ID_MAX)
    return WH_EFIELD;
  if (t->nlesson == WH_CONSUMER_BATCH) return WH_EINVAL;
  s_lesson_t *l = &t->lesson[t->nlesson];
  if (!(l->text = strdup(c->text))) return WH_ENOMEM;
  s_copy(l->ticket, sizeof l->ticket, env->ticket_id);
  s_copy(l->klass, sizeof l->klass, c->klass);
  s_copy(l->community, sizeof l->community, c->community);
  s_copy(l->prior, sizeof l->prior, c->prior_klass);
  s_copy(l->by, sizeof l->by, c->taught_by);
  l->at = c->taught_at_ms ? c->taught_at_ms : env->created_at_ms;
  t->nlesson++;
  return 0;
}

/* One row per ticket: of two teachings in a batch the later stands. */
static int s_learn_steps(void *arg, wh_pg_step_t *steps) {
  s_triage_t *t = arg;
  wh_rows_reset(&t->lrows);
  for (int i = 0; i < t->nlesson; i++) {
    const s_lesson_t *l = &t->lesson[i];
    int later = 0;
    for (int k = i + 1; k < t->nlesson && !later; k++) later = !strcmp(t->lesson[k].ticket, l->ticket);
    if (later) continue;
    wh_rows_next(&t->lrows);
    wh_rows_text(&t->lrows, 0, l->ticket);
    wh_rows_text(&t->lrows, 1, l->klass);
    wh_rows_text(&t->lrows, 2, l->text);
    wh_rows_text(&t->lrows, 3, l->community);
    wh_rows_text(&t->lrows, 4, l->prior[0] ? l->prior : NULL);
    wh_rows_text(&t->lrows, 5, l->by);
    wh_rows_time(&t->lrows, 6, &l->at);
  }
  if (!t->lrows.nrows) return 0;
  steps[0] = (wh_pg_step_t){.st = &s_teach, .rows = &t->lrows};
  return 1;
}

static void s_learn_committed(void *arg) {
  s_triage_t *t = arg;
  for (int i = 0; i < t->nlesson; i++) {
    const s_lesson_t *l = &t->lesson[i];
    if (wh_learn_add(t->learned, l->ticket, l->klass, l->text))
      wh_warn("%s: its example of %s is stored, not in memory until a restart", l->ticket, l->klass);
    else
      wh_info("%s taught as %s by %s%s%s", l->ticket, l->klass, l->by, l->prior[0] ? ", was " : "",
              l->prior);
  }
  wh_learn_refresh(t->learned);
  s_lessons_clear(t);
}

static void s_learn_aborted(void *arg) { s_lessons_clear(arg); }

static const wh_consumer_ops_t s_learn_ops = {.body = WHISTLE__ENVELOPE__BODY_TAUGHT,
                                              .from = "dispatch",
                                              .apply = s_learn_apply,
                                              .steps = s_learn_steps,
                                              .committed = s_learn_committed,
                                              .aborted = s_learn_aborted};

/* The examples the center taught before this start. */
static int s_learn_load(s_triage_t *t) {
  PGresult *r = wh_pg_run(t->svc->pg, &s_examples, 0, NULL, NULL, NULL);
  if (!r) return WH_EDB;
  int bad = 0;
  for (int i = 0; i < PQntuples(r); i++)
    bad += wh_learn_add(t->learned, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2)) != 0;
  PQclear(r);
  wh_learn_refresh(t->learned);
  if (bad) wh_warn("%d of the center's examples could not be read into memory", bad);
  wh_info("%zu examples the center taught", wh_learn_count(t->learned));
  return 0;
}

/* old: the rules in force, whose word dictionary the new rules take over
 * (loading it again would stall the loop); NULL at start. */
static int s_load(wh_service_t *svc, wh_org_t **org, wh_rules_t **rules, wh_rules_t *old) {
  char path[512], err[512];
  wh_service_conf_path(svc, "org.conf", path, sizeof path);
  if (!(*org = wh_org_load(path, err, sizeof err))) {
    wh_error("%s", err);
    return WH_ECONFIG;
  }
  wh_service_conf_path(svc, "rules.conf", path, sizeof path);
  if (!(*rules = wh_rules_load(path, *org, err, sizeof err))) {
    wh_error("%s", err);
    wh_org_destroy(org);
    return WH_ECONFIG;
  }
  if (wh_rules_words(*rules, old, NULL, err, sizeof err)) {
    wh_error("%s", err);
    wh_rules_destroy(rules);
    wh_org_destroy(org);
    return WH_ECONFIG;
  }
  return 0;
}

static void s_reload(wh_service_t *svc) {
  s_triage_t *t = svc->data;
  wh_org_t *org;
  wh_rules_t *rules;
  if (s_load(svc, &org, &rules, t->rules)) {
    wh_error("reload refused; the org chart and rules in force stay");
    return;
  }
  wh_org_destroy(&t->org);
  wh_rules_destroy(&t->rules);
  t->org = org;
  t->rules = rules;
  wh_info("org chart and rules reloaded");
}

static void s_stop(wh_service_t *svc) {
  s_triage_t *t = svc->data;
  if (t->decisions)
    wh_info("%" PRIu64 " decisions since start: p50 under %d us, p99 under %d us, p99.9 under %d us,"
            " the slowest %.0f us; in triage's CPU time p50 under %d us, p99 under %d us, p99.9 under"
            " %d us", t->decisions, s_decide_quantile(t, t->decide_us, 0.50),
            s_decide_quantile(t, t->decide_us, 0.99), s_decide_quantile(t, t->decide_us, 0.999),
            (double)t->decide_max_ns / 1000.0, s_decide_quantile(t, t->decide_cpu_us, 0.50),
            s_decide_quantile(t, t->decide_cpu_us, 0.99), s_decide_quantile(t, t->decide_cpu_us, 0.999));
  triage_ask_destroy(&t->ask);
  wh_consumer_destroy(&t->lessons);
  s_lessons_clear(t);
  wh_rows_free(&t->lrows);
  wh_learn_destroy(&t->learned);
  wh_consumer_destroy(&t->in);
  wh_relay_destroy(&t->relay);
  wh_org_destroy(&t->org);
  wh_rules_destroy(&t->rules);
  wh_rows_free(&t->rows);
  wh_rows_free(&t->q);
  free(t);
  svc->data = NULL;
}

int triage_start(wh_service_t *svc) {
  if (!svc->peer) {
    wh_error("--peer (dispatch's endpoint) is required");
    return WH_EINVAL;
  }
  s_triage_t *t = calloc(1, sizeof *t);
  if (!t) return WH_ENOMEM;
  t->svc = svc;
  svc->data = t;
  svc->on_reload = s_reload;
  svc->on_stop = s_stop;
  wh_rows_init_record(&t->rows, 20, "decision_row");
  wh_rows_init(&t->q, 5);
  wh_rows_init(&t->lrows, 7);
  if (!(t->learned = wh_learn_new())) return WH_ENOMEM;
  if (s_load(svc, &t->org, &t->rules, NULL)) return WH_ECONFIG;
  if (s_learn_load(t)) return WH_EDB;
  t->relay = wh_relay_new(svc->loop, svc->zctx, svc->outbox, svc->keys, "dispatch", svc->peer);
  t->in = wh_consumer_new(svc->loop, svc->zctx, svc->pg, svc->keys, svc->listen, &s_ops, t);
  if (!t->relay || !t->in) return WH_EZMQ;
  if (svc->ask_ep && !(t->ask = triage_ask_new(svc, &t->org, &t->rules, t->learned, svc->ask_ep)))
    return WH_EZMQ;
  if (svc->lessons_ep &&
      !(t->lessons = wh_consumer_new(svc->loop, svc->zctx, svc->pg, svc->keys, svc->lessons_ep,
                                     &s_learn_ops, t)))
    return WH_EZMQ;
  wh_outbox_throttle(svc->outbox, wh_consumer_bus(t->in));
  wh_info("taking reports on %s, passing decisions to %s%s%s%s%s", svc->listen, svc->peer,
          svc->ask_ep ? ", the center's tries on " : "", svc->ask_ep ? svc->ask_ep : "",
          svc->lessons_ep ? ", the classes it gives by hand on " : "",
          svc->lessons_ep ? svc->lessons_ep : "");
  return 0;
}
