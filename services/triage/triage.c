/* triage - decides every report intake passes on.
 *
 * The rules file (deploy/<conf>/rules.conf) and the org chart decide colour,
 * level, lead and co-parties; the decision is stored with the name of the rule
 * that made it. A report of the same class in the same grid as an issue still
 * open, received within the rules' window of it, is a repeat: it is merged
 * under the first (duplicate_of) and not handled twice. The decision and its
 * outbox row for dispatch commit together. */
#include "triage.h"
#include "wh_clock.h"
#include "wh_codec.h"
#include "wh_err.h"
#include "wh_log.h"
#include "wh_org.h"
#include "wh_outbox.h"
#include "wh_rules.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  wh_service_t *svc;
  wh_org_t *org;
  wh_rules_t *rules;
  wh_consumer_t *in;
  wh_relay_t *relay;
} s_triage_t;

static const wh_stmt_t s_find_first = {
    "triage_first",
    "SELECT ticket_id FROM decision WHERE klass = $1 AND community = $2 AND grid = $3"
    " AND open AND duplicate_of IS NULL AND mergeable"
    " AND received_at BETWEEN to_timestamp(($4::bigint - $5::bigint)::double precision / 1000)"
    "                     AND to_timestamp(($4::bigint + $5::bigint)::double precision / 1000)"
    " ORDER BY received_at, ticket_id LIMIT 1"};
static const wh_stmt_t s_insert = {
    "triage_insert",
    "INSERT INTO decision (ticket_id, source, external_id, received_at, community, grid,"
    " category, klass, color, level, lead, co, rule, decided_by, weight, mergeable, duplicate_of)"
    " VALUES ($1, $2, $3, to_timestamp($4::double precision / 1000), $5, $6, $7, $8, $9, $10,"
    " $11, $12::text[], $13, 'rules', $14, $15, $16)"};

static int s_apply(void *arg, const Whistle__Envelope *env) {
  s_triage_t *t = arg;
  wh_pg_t *pg = t->svc->pg;
  const Whistle__TicketReceived *rec = env->received;
  const Whistle__SubmitTicket *rep = rec->report;
  if (!rep || strcmp(rec->ticket_id, env->ticket_id) || !rep->text[0] || !rep->community[0])
    return WH_EFIELD;

  wh_report_t in = {.category = rep->category, .text = rep->text,
                    .channel = wh_source_name(rep->source), .community = rep->community,
                    .care_tags = rep->care_tags, .ncare_tags = rep->n_care_tags};
  wh_decision_t d;
  wh_rules_decide(t->rules, t->org, &in, &d);

  char first[64] = "";
  char at[24], window[24];
  snprintf(at, sizeof at, "%" PRId64, rep->received_at_ms);
  snprintf(window, sizeof window, "%" PRId64, t->rules->dedup_window_ms);
  if (d.merge && t->rules->dedup_window_ms > 0) {
    const char *v[5] = {d.klass, rep->community, rep->grid, at, window};
    PGresult *r = wh_pg_run(pg, &s_find_first, 5, v, NULL, NULL);
    if (!r) return WH_EDB;
    if (PQntuples(r) == 1) snprintf(first, sizeof first, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
  }

  char level[4], weight[12], co[WH_MAX_CO * 100 + 4];
  snprintf(level, sizeof level, "%d", d.level);
  snprintf(weight, sizeof weight, "%d", d.weight);
  char *cov[WH_MAX_CO];
  for (int i = 0; i < d.nco; i++) cov[i] = d.co[i];
  if (wh_pg_text_array(cov, (size_t)d.nco, co, sizeof co)) return WH_EFIELD;
  const char *v[16] = {rec->ticket_id, wh_source_name(rep->source), rep->external_id, at,
                       rep->community, rep->grid, rep->category, d.klass,
                       wh_color_name(d.color), level, d.lead, co, d.rule, weight,
                       d.merge ? "true" : "false", first[0] ? first : NULL};
  PGresult *r = wh_pg_run(pg, &s_insert, 16, v, NULL, NULL);
  if (!r) return WH_EDB;
  PQclear(r);

  Whistle__TicketTriaged tri = WHISTLE__TICKET_TRIAGED__INIT;
  tri.ticket = (Whistle__TicketReceived *)rec;
  tri.color = d.color;
  tri.level = (uint32_t)d.level;
  tri.lead = d.lead;
  tri.co = cov;
  tri.n_co = (size_t)d.nco;
  tri.klass = d.klass;
  tri.rule = d.rule;
  tri.duplicate_of = first;
  tri.weight = (uint32_t)d.weight;
  tri.decided_at_ms = wh_clock_now_ms();
  Whistle__Envelope out = WHISTLE__ENVELOPE__INIT;
  out.ticket_id = rec->ticket_id;
  out.seq = 1;
  out.trace_id = env->trace_id;
  out.body_case = WHISTLE__ENVELOPE__BODY_TRIAGED;
  out.triaged = &tri;
  wh_info("%s %s level %d lead %s (%s)%s%s", d.klass, wh_color_name(d.color), d.level, d.lead,
          d.rule, first[0] ? " repeat of " : "", first);
  return wh_outbox_put(pg, "triage", "dispatch", &out);
}

static void s_committed(void *arg) {
  s_triage_t *t = arg;
  wh_relay_kick(t->relay);
}

static const wh_consumer_ops_t s_ops = {
    .body = WHISTLE__ENVELOPE__BODY_RECEIVED, .apply = s_apply, .committed = s_committed};

static int s_load(wh_service_t *svc, wh_org_t **org, wh_rules_t **rules) {
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
  return 0;
}

static void s_reload(wh_service_t *svc) {
  s_triage_t *t = svc->data;
  wh_org_t *org;
  wh_rules_t *rules;
  if (s_load(svc, &org, &rules)) {
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
  wh_consumer_destroy(&t->in);
  wh_relay_destroy(&t->relay);
  wh_org_destroy(&t->org);
  wh_rules_destroy(&t->rules);
  free(t);
  svc->data = NULL;
}

int triage_start(wh_service_t *svc) {
  if (!svc->peer) {
    wh_error("--peer (dispatch's endpoint) is required");
    return WH_EINVAL;
  }
  s_triage_t *t = calloc(1, sizeof *t);
  t->svc = svc;
  svc->data = t;
  svc->on_reload = s_reload;
  svc->on_stop = s_stop;
  if (s_load(svc, &t->org, &t->rules)) return WH_ECONFIG;
  t->relay = wh_relay_new(svc->loop, svc->zctx, svc->pg, "dispatch", svc->peer);
  t->in = wh_consumer_new(svc->loop, svc->zctx, svc->pg, svc->listen, &s_ops, t);
  if (!t->relay || !t->in) return WH_EZMQ;
  wh_info("taking reports on %s, passing decisions to %s", svc->listen, svc->peer);
  return 0;
}
