/* ask - the center's tries of a report on triage's request socket. */
#include "ask.h"
#include "wh_bus.h"
#include "wh_codec.h"
#include "wh_consumer.h"
#include "wh_err.h"
#include "wh_log.h"
#include "wh_text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Requests answered per turn of the loop (each a decision of some tens of
 * microseconds); the loop's other sockets and timers come between. */
#define ASK_PER_TURN 4
/* The limits of intake's front door (intake.h), so a try is refused where
 * a report would be. */
#define ASK_MAX_TEXT 4000
#define ASK_MAX_GRID 64
#define ASK_MAX_ADDRESS 512
#define ASK_MAX_COMMUNITY 64
#define ASK_MAX_TAGS 8

struct triage_ask_s {
  wh_bus_t *bus;
  const char *center;
  int secure;
  wh_org_t *const *org;
  wh_rules_t *const *rules;
  wh_learn_t *learned;
};

static void s_send(triage_ask_t *a, zmq_msg_t *route, const char *mid, Whistle__TriageAnswer *ans) {
  Whistle__Envelope out = WHISTLE__ENVELOPE__INIT;
  out.message_id = (char *)mid;
  out.sender = "triage";
  out.body_case = WHISTLE__ENVELOPE__BODY_TRIAGE_ANSWER;
  out.triage_answer = ans;
  wh_reply(a->bus, route, &out);
}

static void s_refuse(triage_ask_t *a, zmq_msg_t *route, const char *mid, int err, const char *text) {
  Whistle__TriageAnswer ans = WHISTLE__TRIAGE_ANSWER__INIT;
  Whistle__Error e = WHISTLE__ERROR__INIT;
  e.code = wh_err_to_wire(err);
  e.text = (char *)text;
  ans.error = &e;
  s_send(a, route, mid, &ans);
}

/* Checks the report of a try as intake's front door would, less what only
 * a stored report needs (source, ids, times, reporter). Returns 0, or a
 * WH_E* code with a sentence naming the field in why. */
static int s_check(const wh_rules_t *rules, const wh_org_t *org, const Whistle__SubmitTicket *t,
                   char *why, size_t len) {
  int rc;
  if ((rc = wh_text_check(t->text, 1, ASK_MAX_TEXT)))
    return snprintf(why, len, "text: %s", wh_strerror(rc)), rc;
  if (t->community[0]) {
    if ((rc = wh_code_check(t->community, ASK_MAX_COMMUNITY)))
      return snprintf(why, len, "community: %s", wh_strerror(rc)), rc;
    if (!wh_org_has_community(org, t->community))
      return snprintf(why, len, "community: '%s' is not on the org chart", t->community), WH_ENOTFOUND;
  }
  if ((rc = wh_text_check(t->grid, 0, ASK_MAX_GRID)))
    return snprintf(why, len, "grid: %s", wh_strerror(rc)), rc;
  if ((rc = wh_text_check(t->address, 0, ASK_MAX_ADDRESS)))
    return snprintf(why, len, "address: %s", wh_strerror(rc)), rc;
  if (t->source < WHISTLE__SOURCE__SOURCE_UNSPECIFIED || t->source > WHISTLE__SOURCE__SOURCE_WALK_IN)
    return snprintf(why, len, "source: %s", wh_strerror(WH_ESOURCE)), WH_ESOURCE;
  if (t->category[0] && (wh_code_check(t->category, 48) || !wh_rules_category(rules, t->category)))
    return snprintf(why, len, "category: not a class of the catalogue"), WH_ECATEGORY;
  if (t->n_care_tags > ASK_MAX_TAGS)
    return snprintf(why, len, "care_tags: at most %d", ASK_MAX_TAGS), WH_ETOOLONG;
  for (size_t i = 0; i < t->n_care_tags; i++)
    if (wh_code_check(t->care_tags[i], 32) || !wh_rules_care_known(rules, t->care_tags[i]))
      return snprintf(why, len, "care_tags: not a care tag of the rules"), WH_EFIELD;
  return 0;
}

static void s_try(triage_ask_t *a, zmq_msg_t *route, const char *mid, const Whistle__TriageTry *q) {
  const wh_rules_t *rules = *a->rules;
  const wh_org_t *org = *a->org;
  const Whistle__SubmitTicket *t = q->report;
  if (!t) {
    s_refuse(a, route, mid, WH_EMISSING, "report: the report to try is missing");
    return;
  }
  char why[160];
  int rc = s_check(rules, org, t, why, sizeof why);
  if (rc) {
    s_refuse(a, route, mid, rc, why);
    return;
  }
  const char *community = t->community[0] ? t->community
                          : org->ncommunities ? org->communities[0].code : "";
  wh_report_t in = {.category = t->category, .text = t->text,
                    .channel = t->source ? wh_source_name(t->source) : "", .community = community,
                    .grid = t->grid, .address = t->address,
                    .care_tags = t->care_tags, .ncare_tags = t->n_care_tags,
                    .learned = a->learned};
  wh_decision_t d;
  wh_rules_decide(rules, org, &in, &d);

  char *co[WH_MAX_CO], *runners[3];
  for (int i = 0; i < d.nco; i++) co[i] = d.co[i];
  for (int i = 0; i < d.nrunner_up; i++) runners[i] = d.runner_up[i];
  const wh_category_t *c = wh_rules_category(rules, d.klass);
  Whistle__TriageAnswer ans = WHISTLE__TRIAGE_ANSWER__INIT;
  ans.color = d.color;
  ans.level = (uint32_t)d.level;
  ans.lead = d.lead;
  ans.co = co;
  ans.n_co = (size_t)d.nco;
  ans.klass = d.klass;
  ans.klass_name = c && c->name ? c->name : "";
  ans.rule = d.rule;
  ans.words = d.words;
  ans.danger = d.danger;
  ans.danger_words = d.danger_words;
  ans.place = d.place;
  ans.runner_up = runners;
  ans.n_runner_up = (size_t)d.nrunner_up;
  ans.weight = (uint32_t)d.weight;
  ans.mergeable = d.merge;
  ans.community = (char *)community;
  ans.suggested = d.suggested.klass;
  ans.suggested_score = (uint32_t)d.suggested.score;
  ans.suggested_like = d.suggested.like;
  s_send(a, route, mid, &ans);
}

static void s_answer(triage_ask_t *a, zmq_msg_t *route, zmq_msg_t *body) {
  const char *who = wh_peer(body);
  Whistle__Envelope *env = NULL;
  int rc = wh_env_unpack(zmq_msg_data(body), zmq_msg_size(body), &env);
  const char *mid = rc == 0 ? env->message_id : "";
  if (rc) {
    s_refuse(a, route, mid, rc, wh_strerror(rc));
  } else if (!a->secure || !who || strcmp(who, a->center)) {
    wh_warn("triage try from %s refused: only the center's key is answered", who ? who : "(no key)");
    s_refuse(a, route, mid, WH_EFORBIDDEN,
             a->secure ? "only the center may try a report on triage"
                       : "this service runs without keys: its request socket answers nobody");
  } else if (env->body_case != WHISTLE__ENVELOPE__BODY_TRIAGE_TRY || !env->triage_try) {
    s_refuse(a, route, mid, WH_EUNEXPECTED, "triage's request socket takes tries of a report");
  } else {
    s_try(a, route, mid, env->triage_try);
  }
  if (env) wh_env_free(env);
}

static void s_on_readable(wh_bus_t *bus, void *arg) {
  triage_ask_t *a = arg;
  for (int k = 0; k < ASK_PER_TURN; k++) {
    zmq_msg_t route, body;
    if (wh_bus_recv(bus, &route, &body) != 1) break;
    s_answer(a, &route, &body);
    zmq_msg_close(&route);
    zmq_msg_close(&body);
  }
}

triage_ask_t *triage_ask_new(wh_service_t *svc, wh_org_t *const *org, wh_rules_t *const *rules,
                             wh_learn_t *learned, const char *endpoint) {
  triage_ask_t *a = calloc(1, sizeof *a);
  if (!a) return NULL;
  a->center = svc->center;
  a->secure = svc->keys != NULL;
  a->org = org;
  a->rules = rules;
  a->learned = learned;
  a->bus = wh_bus_new(svc->loop, svc->zctx, ZMQ_ROUTER, endpoint, 1, svc->keys, NULL, s_on_readable, a);
  if (!a->bus) {
    free(a);
    return NULL;
  }
  return a;
}

void triage_ask_destroy(triage_ask_t **self_p) {
  if (!self_p || !*self_p) return;
  triage_ask_t *a = *self_p;
  *self_p = NULL;
  wh_bus_destroy(&a->bus);
  free(a);
}
