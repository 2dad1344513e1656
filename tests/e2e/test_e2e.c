/* test_e2e - whole stacks: PostgreSQL and the four services as real
 * processes, driven through whistlectl and raw sockets.
 *
 *   scenarios   every scenario routed as practice gave it, repeats merged,
 *               resubmission idempotent, each lead's feed has its work
 *   bad_input   every front-door check answered with its code, nothing
 *               stored, every service still alive after garbage frames
 *   hostile_frames  damaged frames of every kind into each service's
 *               socket: every answer a whistle envelope, intake answering
 *               each frame and storing only what it answered with a ticket,
 *               every service alive and a good report routed after
 *   restart     1,000 tickets while each process, PostgreSQL included, is
 *               killed with SIGKILL and restarted: each ticket reaches its
 *               lead's feed exactly once, in order per ticket
 *   carried_built  a message built again from its row, when resent and
 *               after a restart, is the one first sent from memory
 *   authenticated  an unknown key refused at the handshake; forged relayed
 *               messages from known keys refused and nothing stored; a full
 *               phone masked at dispatch; each party only its own feed
 *   intake_lost_commit  the connection to PostgreSQL cut right after it
 *               committed a batch, before intake heard so (a proxy between
 *               them drops the COMMIT's answer): the report is answered
 *               "send it again", a new report after it is stored, the first
 *               sent again is the ticket it was, each reaches dispatch once
 *   repeat_waits_for_its_first  a repeat that overtakes its first is answered
 *               "not yet" and merged once the first has come: one order
 *   notify_sink_writes_each_once  notify's database session lost between
 *               the sink taking receipts and marking them: each written once
 *   parked_redrive  events notify's database refuses are parked with their
 *               tickets' later events, the rest flow past them; the center
 *               lists them with `whistlectl parked` and, the cause fixed,
 *               sends them again in order with `whistlectl redrive`; any
 *               other party is refused and nothing moves
 *
 * WHISTLE_ROOT, WHISTLE_BIN and WHISTLE_E2E_VAR come from tests/run.sh. */
#define _GNU_SOURCE /* memmem */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <json-c/json.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "wh_clock.h"
#include "wh_codec.h"
#include "wh_keys.h"
#include "wh_pg.h"
#include "wh_text.h"
#include "../mutate.h"

static const char *s_root, *s_bin, *s_var;

static int s_sh(const char *fmt, ...) {
  char cmd[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  int st = system(cmd);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *s_capture(int *status, const char *fmt, ...) {
  char cmd[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  FILE *p = popen(cmd, "r");
  assert_non_null(p);
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap);
  size_t got;
  while ((got = fread(buf + n, 1, cap - n - 1, p)) > 0) {
    n += got;
    if (cap - n < 4096) buf = realloc(buf, cap *= 2);
  }
  buf[n] = '\0';
  int st = pclose(p);
  if (status) *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return buf;
}

static void s_stack(const char *name, const char *cmd) {
  assert_int_equal(s_sh("WHISTLE_VAR=%s/%s WHISTLE_BIN=%s %s/deploy/local/stack.sh %s >/dev/null",
                        s_var, name, s_bin, s_root, cmd), 0);
}

/* Reads KEY from a stack's stack.env into out. */
static void s_env(const char *name, const char *key, char *out, size_t len) {
  char path[1024], line[1024];
  snprintf(path, sizeof path, "%s/%s/stack.env", s_var, name);
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  out[0] = '\0';
  size_t kl = strlen(key);
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, key, kl) || line[kl] != '=') continue;
    char *v = line + kl + 1;
    v[strcspn(v, "\n")] = '\0';
    if (*v == '\'') v++;
    size_t n = strlen(v);
    if (n && v[n - 1] == '\'') v[n - 1] = '\0';
    snprintf(out, len, "%s", v);
  }
  fclose(f);
}

/* The service that listens at the endpoint KEY of stack.env names, by the
 * name of its key. */
static const char *s_server_of(const char *key) {
  /* WHISTLE_<SERVICE>, its admin socket WHISTLE_<SERVICE>_ADMIN */
  return !strcmp(key, "WHISTLE_DESK")            ? "dispatch"
         : !strcmp(key, "WHISTLE_LESSONS")       ? "triage"
         : !strcmp(key, "WHISTLE_CONTACTS")      ? "intake"
         : !strncmp(key, "WHISTLE_INTAKE", 14)   ? "intake"
         : !strncmp(key, "WHISTLE_TRIAGE", 14)   ? "triage"
         : !strncmp(key, "WHISTLE_DISPATCH", 16) ? "dispatch"
                                                 : "notify"; /* WHISTLE_NOTIFY, WHISTLE_FEED */
}

/* Who relays to the service at KEY: the one key its relayed messages may
 * come with (for intake, a channel: the hotline integrator). */
static const char *s_upstream_of(const char *key) {
  return strstr(key, "_ADMIN")              ? "center" /* the one key an admin socket answers */
         : !strcmp(key, "WHISTLE_TRIAGE_ASK") ? "center" /* the one key it answers */
         : !strcmp(key, "WHISTLE_DESK")     ? "center" /* who may do the most there */
         : !strcmp(key, "WHISTLE_CONTACTS") ? "notify" /* the one key it answers */
         : !strcmp(key, "WHISTLE_INTAKE")   ? "hotline"
         : !strcmp(key, "WHISTLE_TRIAGE")   ? "intake"
         : !strcmp(key, "WHISTLE_DISPATCH") ? "triage"
                                            : "dispatch"; /* WHISTLE_NOTIFY, WHISTLE_LESSONS */
}

/* A socket of type in ctx, connected to the endpoint KEY of stack name as
 * the party (or service) `as`, with its key pair from the stack's keys. */
static void *s_sock(void *ctx, int type, const char *name, const char *key, const char *as) {
  char ep[1024], secret[1024], pub[1024], err[2048];
  s_env(name, key, ep, sizeof ep);
  snprintf(secret, sizeof secret, "%s/%s/keys/%s.key", s_var, name, as);
  snprintf(pub, sizeof pub, "%s/%s/keys/%s.pub", s_var, name, s_server_of(key));
  void *s = zmq_socket(ctx, type);
  int linger = 0;
  zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
  if (wh_keys_client_files(s, secret, pub, err, sizeof err)) fail_msg("%s", err);
  assert_int_equal(zmq_connect(s, ep), 0);
  return s;
}

static wh_pg_t *s_db(const char *name, const char *key) {
  char conn[1024];
  s_env(name, key, conn, sizeof conn);
  wh_pg_t *pg = wh_pg_new(conn, NULL);
  assert_int_equal(wh_pg_ready(pg), 0);
  return pg;
}

static long s_count(wh_pg_t *pg, const char *sql) {
  PGresult *r = wh_pg_query(pg, sql, 0, NULL);
  assert_non_null(r);
  long n = atol(PQgetvalue(r, 0, 0));
  PQclear(r);
  return n;
}

#define CTL(name) "WHISTLE_STATE=%s/" name "/stack.env %s/whistlectl"

static json_object *s_lines(const char *text) {
  json_object *arr = json_object_new_array();
  const char *p = text;
  while (*p) {
    const char *nl = strchr(p, '\n');
    size_t n = nl ? (size_t)(nl - p) : strlen(p);
    char *line = strndup(p, n);
    json_object *o = json_tokener_parse(line);
    if (o) json_object_array_add(arr, o);
    free(line);
    p += n + (nl ? 1 : 0);
  }
  return arr;
}

static const char *s_str(json_object *o, const char *k) {
  json_object *v;
  return json_object_object_get_ex(o, k, &v) && v ? json_object_get_string(v) : NULL;
}

/* The clock `name` of an order's JSON ("deadlines"), or NULL. */
static json_object *s_clock(json_object *order, const char *name) {
  json_object *dl = json_object_object_get(order, "deadlines");
  for (size_t i = 0; dl && i < json_object_array_length(dl); i++) {
    json_object *c = json_object_array_get_idx(dl, i);
    if (s_str(c, "name") && !strcmp(s_str(c, "name"), name)) return c;
  }
  return NULL;
}

/* "xiangdong.rc" -> "rc" */
static const char *s_short(const char *party) {
  const char *dot = strchr(party, '.');
  return dot ? dot + 1 : party;
}

/* Polls until the count that sql answers is between lo and hi; fails after
 * timeout. */
static void s_wait_count(wh_pg_t *pg, const char *sql, long lo, long hi, int seconds) {
  long have = 0;
  for (int i = 0; i < seconds * 10; i++) {
    have = s_count(pg, sql);
    if (have >= lo && have <= hi) return;
    usleep(100 * 1000);
  }
  fail_msg("%s: %ld, expected %ld to %ld", sql, have, lo, hi);
}

/* Polls dispatch until it holds n work orders; fails after timeout. */
static void s_wait_orders(wh_pg_t *dispatch, long n, int seconds) {
  s_wait_count(dispatch, "SELECT count(*) FROM work_order", n, LONG_MAX, seconds);
}

static void scenarios(void **state) {
  (void)state;
  s_stack("scenarios", "up");
  char scen[1024];
  snprintf(scen, sizeof scen, "%s/tests/data/scenarios.jsonl", s_root);
  int st;
  char *out = s_capture(&st, CTL("scenarios") " submit < %s", s_var, s_bin, scen);
  assert_int_equal(st, 0);
  json_object *answers = s_lines(out);
  free(out);
  char *again = s_capture(&st, CTL("scenarios") " submit < %s", s_var, s_bin, scen);
  json_object *answers2 = s_lines(again);
  free(again);
  char *text = s_capture(NULL, "cat %s", scen);
  json_object *cases = s_lines(text);
  free(text);
  size_t n = json_object_array_length(cases);
  assert_int_equal(n, 28);
  assert_int_equal(json_object_array_length(answers), n);
  for (size_t i = 0; i < n; i++) /* a retry is the same ticket */
    assert_string_equal(s_str(json_object_array_get_idx(answers, i), "ticket_id"),
                        s_str(json_object_array_get_idx(answers2, i), "ticket_id"));

  wh_pg_t *dispatch = s_db("scenarios", "WHISTLE_DISPATCH_DB");
  wh_pg_t *intake = s_db("scenarios", "WHISTLE_INTAKE_DB");
  wh_pg_t *notify = s_db("scenarios", "WHISTLE_NOTIFY_DB");
  assert_int_equal(s_count(intake, "SELECT count(*) FROM ticket"), 28);
  s_wait_orders(dispatch, 28, 60);
  /* Triage's number for each decision's place (its C code) is the one the
   * database computes (decision_place, which filled the rows stored before). */
  wh_pg_t *triage = s_db("scenarios", "WHISTLE_TRIAGE_DB");
  assert_int_equal(s_count(triage, "SELECT count(*) FROM decision WHERE place IS NOT NULL"
                                   " AND place = decision_place(klass, community, grid)"), 28);
  wh_pg_destroy(&triage);

  for (size_t i = 0; i < n; i++) {
    json_object *c = json_object_array_get_idx(cases, i), *expect, *v;
    const char *sid = s_str(c, "id");
    const char *ticket = s_str(json_object_array_get_idx(answers, i), "ticket_id");
    json_object_object_get_ex(c, "expect", &expect);
    char *shown = s_capture(&st, CTL("scenarios") " --json show %s", s_var, s_bin, ticket);
    assert_int_equal(st, 0);
    json_object *o = json_tokener_parse(shown);
    free(shown);
    assert_non_null(o);
    print_message("%s %s: %s %s lead %s\n", sid, ticket, s_str(o, "color"), s_str(o, "level"),
                  s_str(o, "lead"));
    assert_string_equal(s_str(o, "color"), s_str(expect, "color"));
    assert_string_equal(s_str(o, "level"), s_str(expect, "level"));
    json_object *leads;
    json_object_object_get_ex(expect, "lead", &leads);
    int lead_ok = 0;
    for (size_t k = 0; k < json_object_array_length(leads); k++)
      lead_ok |= !strcmp(s_short(s_str(o, "lead")),
                         json_object_get_string(json_object_array_get_idx(leads, k)));
    if (!lead_ok) fail_msg("%s: lead %s is not among the acceptable", sid, s_str(o, "lead"));
    if (json_object_object_get_ex(expect, "co", &v)) {
      json_object *co;
      json_object_object_get_ex(o, "co", &co);
      for (size_t k = 0; k < json_object_array_length(v); k++) {
        int found = 0;
        for (size_t m = 0; m < json_object_array_length(co); m++)
          found |= !strcmp(s_short(json_object_get_string(json_object_array_get_idx(co, m))),
                           json_object_get_string(json_object_array_get_idx(v, k)));
        if (!found) fail_msg("%s: co-party %s missing", sid,
                             json_object_get_string(json_object_array_get_idx(v, k)));
      }
    }
    const char *dup = s_str(o, "duplicate_of");
    if (json_object_object_get_ex(expect, "duplicate_of", &v)) {
      const char *first_sid = json_object_get_string(v);
      const char *first_ticket = NULL;
      for (size_t k = 0; k < n; k++)
        if (!strcmp(s_str(json_object_array_get_idx(cases, k), "id"), first_sid))
          first_ticket = s_str(json_object_array_get_idx(answers, k), "ticket_id");
      assert_non_null(dup);
      assert_string_equal(dup, first_ticket);
      assert_string_equal(s_str(o, "state"), "merged");
    } else {
      assert_null(dup);
      assert_string_equal(s_str(o, "state"), "dispatched");
    }
    json_object *deadlines, *timeline;
    json_object_object_get_ex(o, "deadlines", &deadlines);
    json_object_object_get_ex(o, "timeline", &timeline);
    /* The timeline opens with the report, the decision and the dispatch
     * (or the merge), in that order, each by the service that did it. */
    static const char *const opening[2][3][2] = {
        {{"received", "intake"}, {"triaged", "triage"}, {"dispatched", "dispatch"}},
        {{"received", "intake"}, {"triaged", "triage"}, {"merged", "triage"}}};
    assert_true(json_object_array_length(timeline) >= 3);
    for (size_t k = 0; k < 3; k++) {
      json_object *e = json_object_array_get_idx(timeline, k);
      assert_string_equal(s_str(e, "kind"), opening[dup != NULL][k][0]);
      assert_string_equal(s_str(e, "actor"), opening[dup != NULL][k][1]);
      assert_true(strlen(s_str(e, "note")) > 0);
    }
    if (!dup) assert_non_null(strstr(s_str(json_object_array_get_idx(timeline, 2), "note"), s_str(o, "lead")));
    /* The dispatch's note, worked out from the order's row, names each
     * deadline and when it falls, as the deadlines list does. */
    for (size_t k = 0; !dup && k < json_object_array_length(deadlines); k++) {
      json_object *d = json_object_array_get_idx(deadlines, k);
      char want[160];
      snprintf(want, sizeof want, "; %s by %s", s_str(d, "name"), s_str(d, "due_at"));
      assert_non_null(strstr(s_str(json_object_array_get_idx(timeline, 2), "note"), want));
    }
    if (!dup) assert_true(json_object_array_length(deadlines) >= 1);
    assert_non_null(s_str(o, "ticket_id"));
    assert_string_equal(s_str(o, "external_id"), s_str(c, "external_id"));
    /* A rule's or the catalogue's decision names the words of the report
     * that made it; a channel's category needs none. */
    const char *rule = s_str(o, "rule"), *words = s_str(o, "words");
    if (!strncmp(rule, "rule:", 5) || !strncmp(rule, "catalogue:", 10)) {
      if (!words) fail_msg("%s: decided by %s, with no words", sid, rule);
      char w[256];
      snprintf(w, sizeof w, "%s", words);
      for (char *save = NULL, *t = strtok_r(w, " ", &save); t; t = strtok_r(NULL, " ", &save))
        if (!strstr(s_str(o, "text"), t)) fail_msg("%s: word '%s' is not in the report", sid, t);
    } else if (!strncmp(rule, "category:", 9)) {
      assert_null(words);
    }

    /* The lead's feed, read through whistlectl as a department would. */
    char *feed = s_capture(&st, CTL("scenarios") " --json feed %s", s_var, s_bin, s_str(o, "lead"));
    assert_int_equal(st, 0);
    json_object *items = s_lines(feed);
    free(feed);
    int got = 0;
    for (size_t k = 0; k < json_object_array_length(items); k++) {
      json_object *it = json_object_array_get_idx(items, k);
      if (!strcmp(s_str(it, "ticket_id"), ticket) &&
          !strcmp(s_str(it, "kind"), dup ? "merged" : "dispatched"))
        got++;
    }
    if (got != 1) fail_msg("%s: %d items for %s on %s's feed", sid, got, ticket, s_str(o, "lead"));
    json_object_put(items);
    json_object_put(o);
  }
  /* Old reports are overdue, and say so. */
  assert_true(s_count(dispatch, "SELECT count(DISTINCT ticket_id) FROM deadline WHERE overdue_at IS NOT NULL") >= 20);
  for (int i = 0; i < 100 && s_count(notify, "SELECT count(*) FROM feed WHERE kind = 'overdue' AND role = 'supervisor'") < 20; i++)
    usleep(100 * 1000);
  assert_true(s_count(notify, "SELECT count(*) FROM feed WHERE kind = 'overdue' AND role = 'supervisor'") >= 20);
  /* Receipts to reporters, phones masked; what the sink took (once intake
   * gave the numbers) is marked sent soon after. */
  for (int i = 0; i < 150 && s_count(notify, "SELECT count(*) FROM delivery_status WHERE state = 'sent'") < 28; i++)
    usleep(20 * 1000);
  assert_int_equal(s_count(notify, "SELECT count(*) FROM delivery_status WHERE state = 'sent'"), 28);
  assert_int_equal(s_count(notify, "SELECT count(*) FROM delivery WHERE recipient !~ '^[0-9]{3}[*]{4}[0-9]{4}$'"), 0);

  /* One push that mixes a report sent twice, a report stored before and a
   * new one: each report is one ticket, and only the new ones move on. */
  char mixed[1024];
  snprintf(mixed, sizeof mixed, "%s/scenarios/mixed.jsonl", s_var);
  char *first_case = s_capture(NULL, "head -n 1 %s", scen);
  FILE *f = fopen(mixed, "w");
  assert_non_null(f);
  const char *fresh = "{\"source\":\"app\",\"external_id\":\"mixed-%d\",\"received_at\":\"2025-06-02T10:12:00+08:00\","
                      "\"community\":\"wenhan\",\"grid\":\"g\",\"text\":\"小区门口路灯坏了\"}\n";
  fprintf(f, fresh, 1);
  fprintf(f, fresh, 1);
  fprintf(f, "%s", first_case);
  fprintf(f, fresh, 2);
  fclose(f);
  free(first_case);
  out = s_capture(&st, CTL("scenarios") " submit < %s", s_var, s_bin, mixed);
  assert_int_equal(st, 0);
  json_object *mixed_answers = s_lines(out);
  free(out);
  assert_int_equal(json_object_array_length(mixed_answers), 4);
  const char *m1 = s_str(json_object_array_get_idx(mixed_answers, 0), "ticket_id");
  const char *m2 = s_str(json_object_array_get_idx(mixed_answers, 3), "ticket_id");
  assert_string_equal(s_str(json_object_array_get_idx(mixed_answers, 1), "ticket_id"), m1);
  assert_string_equal(s_str(json_object_array_get_idx(mixed_answers, 2), "ticket_id"),
                      s_str(json_object_array_get_idx(answers, 0), "ticket_id"));
  assert_string_not_equal(m1, m2);
  assert_int_equal(s_count(intake, "SELECT count(*) FROM ticket"), 30);
  s_wait_orders(dispatch, 30, 60);
  char q[256];
  snprintf(q, sizeof q, "SELECT count(*) FROM feed WHERE ticket_id IN ('%s', '%s') AND role = 'lead'"
                           " AND kind IN ('dispatched', 'merged')", m1, m2);
  for (int i = 0; i < 100 && s_count(notify, q) < 2; i++) usleep(100 * 1000);
  assert_int_equal(s_count(notify, q), 2);
  json_object_put(mixed_answers);

  /* The center tries reports on triage's request socket: the decision, the
   * words that made it and the runners-up, with nothing stored. */
  triage = s_db("scenarios", "WHISTLE_TRIAGE_DB");
  long decided = s_count(triage, "SELECT count(*) FROM decision");
  out = s_capture(&st, CTL("scenarios") " --json triage --community wenhan --grid wenhan-1"
                  " '楼道里堆满了纸箱和旧家具，把消防通道都堵住了'", s_var, s_bin);
  assert_int_equal(st, 0);
  json_object *tr = json_tokener_parse(out);
  free(out);
  assert_non_null(tr);
  assert_string_equal(s_str(tr, "class"), "stairwell_clutter");
  assert_string_equal(s_str(tr, "community"), "wenhan");
  assert_non_null(s_str(tr, "words"));
  char first_word[192];
  snprintf(first_word, sizeof first_word, "%s", s_str(tr, "words"));
  first_word[strcspn(first_word, " ")] = '\0';
  assert_non_null(strstr("楼道里堆满了纸箱和旧家具，把消防通道都堵住了", first_word));
  json_object_put(tr);
  /* The same text as a real report gets the same decision. */
  out = s_capture(&st, CTL("scenarios") " triage --community wenhan '小区门口路灯坏了'", s_var, s_bin);
  assert_int_equal(st, 0);
  assert_non_null(strstr(out, "class     street_lamp"));
  assert_non_null(strstr(out, "words     路灯"));
  free(out);
  /* A danger signal raises whatever class: said with its words. */
  out = s_capture(&st, CTL("scenarios") " --json triage '楼下的垃圾桶着火了，冒着黑烟'", s_var, s_bin);
  assert_int_equal(st, 0);
  tr = json_tokener_parse(out);
  free(out);
  assert_string_equal(s_str(tr, "level"), "1");
  assert_non_null(s_str(tr, "danger"));
  assert_non_null(s_str(tr, "danger_words"));
  json_object_put(tr);
  /* A negated signal is not one. */
  out = s_capture(&st, CTL("scenarios") " --json triage '厨房没有漏气，就是燃气灶打不着火'", s_var, s_bin);
  assert_int_equal(st, 0);
  tr = json_tokener_parse(out);
  free(out);
  assert_null(s_str(tr, "danger"));
  assert_string_not_equal(s_str(tr, "class"), "gas_leak");
  assert_string_not_equal(s_str(tr, "level"), "1");
  json_object_put(tr);
  /* A care tag raises the level where it changes the stakes, and the rule
   * says which; a tagged resident's question stays routine. */
  out = s_capture(&st, CTL("scenarios") " triage --care elderly_alone '我一个人在家，头晕，身体不舒服'",
                  s_var, s_bin);
  assert_int_equal(st, 0);
  assert_non_null(strstr(out, "care:elderly_alone level 2 to 1"));
  free(out);
  out = s_capture(&st, CTL("scenarios") " --json triage --care elderly_alone '想咨询一下高龄补贴怎么申请'",
                  s_var, s_bin);
  assert_int_equal(st, 0);
  tr = json_tokener_parse(out);
  free(out);
  assert_string_equal(s_str(tr, "level"), "2");
  assert_null(strstr(s_str(tr, "rule"), "care"));
  json_object_put(tr);
  /* Refused, with the field, and nothing changes: a community off the
   * chart, text that is not UTF-8, a category the catalogue lacks, and any
   * party but the center. */
  out = s_capture(&st, CTL("scenarios") " triage --community atlantis '路灯坏了' 2>&1", s_var, s_bin);
  assert_int_equal(st, 1);
  assert_non_null(strstr(out, "community"));
  free(out);
  out = s_capture(&st, CTL("scenarios") " triage \"$(printf '\\377\\376')路灯\" 2>&1", s_var, s_bin);
  assert_int_equal(st, 1);
  assert_non_null(strstr(out, "bad_utf8"));
  free(out);
  out = s_capture(&st, CTL("scenarios") " triage --category no_such_class '路灯坏了' 2>&1", s_var, s_bin);
  assert_int_equal(st, 1);
  assert_non_null(strstr(out, "category"));
  free(out);
  out = s_capture(&st, CTL("scenarios") " --as transport triage '路灯坏了' 2>&1", s_var, s_bin);
  assert_int_equal(st, 1);
  assert_non_null(strstr(out, "forbidden"));
  free(out);
  assert_int_equal(s_count(triage, "SELECT count(*) FROM decision"), decided);
  wh_pg_destroy(&triage);

  wh_pg_destroy(&dispatch);
  wh_pg_destroy(&intake);
  wh_pg_destroy(&notify);
  json_object_put(answers);
  json_object_put(answers2);
  json_object_put(cases);
  s_stack("scenarios", "down");
}

/* The peak resident memory (VmHWM, kB) of service in stack name, or -1. */
static long s_peak_kb(const char *name, const char *service) {
  char path[1024], line[256];
  snprintf(path, sizeof path, "%s/%s/run/%s.pid", s_var, name, service);
  FILE *f = fopen(path, "r");
  long pid = 0, kb = -1;
  if (f) {
    if (fscanf(f, "%ld", &pid) != 1) pid = 0;
    fclose(f);
  }
  snprintf(path, sizeof path, "/proc/%ld/status", pid);
  f = pid > 0 ? fopen(path, "r") : NULL;
  while (f && fgets(line, sizeof line, f))
    if (!strncmp(line, "VmHWM:", 6)) kb = atol(line + 6);
  if (f) fclose(f);
  return kb;
}

/* Sends one frame, as `as`, to the endpoint KEY of stack name on a socket
 * of its own and returns the answer (caller frees with wh_env_free), or
 * NULL when none decodes within ms. */
static Whistle__Envelope *s_ask(const char *name, const char *key, const char *as,
                                const void *data, size_t len, int ms) {
  void *ctx = zmq_ctx_new(), *s = s_sock(ctx, ZMQ_DEALER, name, key, as);
  int tmo = ms;
  zmq_setsockopt(s, ZMQ_RCVTIMEO, &tmo, sizeof tmo);
  zmq_send(s, data, len, 0);
  zmq_msg_t m;
  zmq_msg_init(&m);
  Whistle__Envelope *env = NULL;
  if (zmq_msg_recv(&m, s, 0) >= 0 && wh_env_unpack(zmq_msg_data(&m), zmq_msg_size(&m), &env))
    env = NULL;
  zmq_msg_close(&m);
  zmq_close(s);
  zmq_ctx_term(ctx);
  return env;
}

/* s_ask's answer as an error code: 0 for an answer that is not an error,
 * -1 for none. */
static int s_raw(const char *name, const char *key, const char *as, const void *data, size_t len) {
  Whistle__Envelope *env = s_ask(name, key, as, data, len, 5000);
  int code = -1;
  if (env) {
    if (env->body_case == WHISTLE__ENVELOPE__BODY_ERROR) code = env->error->code;
    else if (env->body_case == WHISTLE__ENVELOPE__BODY_SUBMIT_REPLY && env->submit_reply->error)
      code = env->submit_reply->error->code;
    else if (env->body_case == WHISTLE__ENVELOPE__BODY_REPLAY_REPLY && env->replay_reply->error)
      code = env->replay_reply->error->code;
    else code = 0;
    wh_env_free(env);
  }
  return code;
}

static void bad_input(void **state) {
  (void)state;
  s_stack("bad", "up");
  assert_int_equal(s_raw("bad", "WHISTLE_INTAKE", "hotline", "\xff\x01garbage", 9), WHISTLE__ERROR_CODE__ERR_DECODE);
  size_t big = WH_FRAME_MAX + 10;
  char *huge = calloc(1, big);
  assert_int_equal(s_raw("bad", "WHISTLE_INTAKE", "hotline", huge, big), WHISTLE__ERROR_CODE__ERR_TOO_LARGE);
  free(huge);
  /* A frame of 64 MB is refused by ZeroMQ before it is read: intake's
   * peak memory does not grow by it, and intake goes on answering. */
  long hwm_before = s_peak_kb("bad", "intake");
  size_t giant = 64u << 20;
  char *g = calloc(1, giant);
  assert_non_null(g);
  void *gctx = zmq_ctx_new(), *gs = s_sock(gctx, ZMQ_DEALER, "bad", "WHISTLE_INTAKE", "hotline");
  assert_true(zmq_send(gs, g, giant, 0) == (int)giant);
  usleep(1500 * 1000);
  zmq_close(gs);
  zmq_ctx_term(gctx);
  free(g);
  long hwm_after = s_peak_kb("bad", "intake");
  print_message("a 64 MB frame: intake's peak memory %ld kB, then %ld kB\n", hwm_before, hwm_after);
  assert_true(hwm_before > 0 && hwm_after - hwm_before < 16 * 1024);
  assert_int_equal(s_raw("bad", "WHISTLE_INTAKE", "hotline", "\xff\x01garbage", 9),
                   WHISTLE__ERROR_CODE__ERR_DECODE);
  Whistle__ReplayRequest q = WHISTLE__REPLAY_REQUEST__INIT;
  q.party = "water";
  Whistle__Envelope env = WHISTLE__ENVELOPE__INIT;
  env.body_case = WHISTLE__ENVELOPE__BODY_REPLAY;
  env.replay = &q;
  uint8_t *buf;
  size_t len;
  wh_env_pack(&env, &buf, &len);
  assert_int_equal(s_raw("bad", "WHISTLE_INTAKE", "hotline", buf, len), WHISTLE__ERROR_CODE__ERR_UNEXPECTED);
  /* A pusher's trace id goes with the report to every service: an id, not
   * a text, and not a long one. */
  uint8_t *seed[SEED_N];
  size_t seedlen[SEED_N];
  assert_int_equal(s_seed_frames(seed, seedlen), SEED_N);
  Whistle__Envelope *senv;
  assert_int_equal(wh_env_unpack(seed[SEED_SUBMIT], seedlen[SEED_SUBMIT], &senv), 0);
  char *was = senv->trace_id;
  char longtrace[130];
  memset(longtrace, 'a', sizeof longtrace - 1);
  longtrace[sizeof longtrace - 1] = '\0';
  const struct {
    char *trace;
    int code;
  } traces[] = {{"trace id\nINFO forged", WHISTLE__ERROR_CODE__ERR_BAD_FIELD},
                {longtrace, WHISTLE__ERROR_CODE__ERR_FIELD_TOO_LONG}};
  for (int i = 0; i < 2; i++) {
    uint8_t *sbuf;
    size_t slen;
    senv->trace_id = traces[i].trace;
    assert_int_equal(wh_env_pack(senv, &sbuf, &slen), 0);
    assert_int_equal(s_raw("bad", "WHISTLE_INTAKE", "hotline", sbuf, slen), traces[i].code);
    free(sbuf);
  }
  senv->trace_id = was;
  /* A NUL inside a string would cut it when stored: two external ids that
   * differ only after one would be one ticket, a text would lose its end. */
  char *fields[2][2] = {{"nul-1#a", "nul-1#b"}, {"路灯#坏了", "路灯#不亮"}};
  for (int f = 0; f < 2; f++)
    for (int v = 0; v < 2; v++) {
      char **field = f == 0 ? &senv->submit->external_id : &senv->submit->text;
      char *keep = *field;
      *field = fields[f][v];
      uint8_t *nbuf;
      size_t nlen;
      assert_int_equal(wh_env_pack(senv, &nbuf, &nlen), 0);
      *field = keep;
      uint8_t *hash = memchr(nbuf, '#', nlen);
      assert_non_null(hash);
      *hash = '\0';
      assert_int_equal(s_raw("bad", "WHISTLE_INTAKE", "hotline", nbuf, nlen),
                       WHISTLE__ERROR_CODE__ERR_BAD_FIELD);
      free(nbuf);
    }
  wh_env_free(senv);
  for (int k = 0; k < SEED_N; k++) free(seed[k]);
  /* Garbage to the inner services: answered, never a crash. */
  const char *inner[] = {"WHISTLE_TRIAGE", "WHISTLE_DISPATCH", "WHISTLE_NOTIFY"};
  for (int i = 0; i < 3; i++) {
    const char *up = s_upstream_of(inner[i]);
    assert_int_equal(s_raw("bad", inner[i], up, "\x0a\xff\xff\xff", 4), WHISTLE__ERROR_CODE__ERR_DECODE);
    /* notify answers replay requests (the center's, of any feed); the
     * others take only relayed events */
    assert_int_equal(s_raw("bad", inner[i], i == 2 ? "center" : up, buf, len),
                     i == 2 ? 0 : WHISTLE__ERROR_CODE__ERR_UNEXPECTED);
  }
  free(buf);

  /* Each front-door check, through whistlectl as a pusher would. */
  static const struct {
    const char *line;
    const char *code;
  } cases[] = {
      {"{\"source\":\"fax\",\"external_id\":\"b1\",\"received_at\":\"2025-06-02T10:12:00+08:00\",\"community\":\"wenhan\",\"grid\":\"g\",\"text\":\"路灯坏了\"}", "unknown_source"},
      {"{\"source\":\"app\",\"received_at\":\"2025-06-02T10:12:00+08:00\",\"community\":\"wenhan\",\"grid\":\"g\",\"text\":\"路灯坏了\"}", "missing_field"},
      {"{\"source\":\"app\",\"external_id\":\"b3\",\"received_at\":\"2025-06-02T10:12:00+08:00\",\"community\":\"wenhan\",\"grid\":\"g\",\"text\":\"\"}", "missing_field"},
      {"{\"source\":\"app\",\"external_id\":\"b4\",\"received_at\":\"2025-06-02T10:12:00+08:00\",\"community\":\"wenhan\",\"grid\":\"g\",\"text\":\"\xe8\xb7\xaf\xff\"}", "bad_utf8"},
      {"{\"source\":\"app\",\"external_id\":\"b5\",\"received_at\":\"2025-06-02T10:12:00+08:00\",\"community\":\"wenhan\",\"grid\":\"g\",\"category\":\"dragons\",\"text\":\"路灯坏了\"}", "unknown_category"},
      {"{\"source\":\"app\",\"external_id\":\"b6\",\"received_at\":\"1999-06-02T10:12:00+08:00\",\"community\":\"wenhan\",\"grid\":\"g\",\"text\":\"路灯坏了\"}", "bad_time"},
      {"{\"source\":\"app\",\"external_id\":\"b7\",\"received_at\":\"2099-06-02T10:12:00+08:00\",\"community\":\"wenhan\",\"grid\":\"g\",\"text\":\"路灯坏了\"}", "bad_time"},
      {"{\"source\":\"app\",\"external_id\":\"b8\",\"received_at\":\"2025-06-02T10:12:00+08:00\",\"community\":\"wenhan\",\"grid\":\"g\",\"text\":\"路灯坏了\",\"reporter\":{\"name\":\"x\",\"phone\":\"DROP TABLE\"}}", "bad_phone"},
      {"{\"source\":\"app\",\"external_id\":\"b9\",\"received_at\":\"2025-06-02T10:12:00+08:00\",\"community\":\"wenhan\",\"grid\":\"g\",\"text\":\"路灯坏了\",\"location\":{\"lat\":123.4,\"lng\":500}}", "bad_location"},
      {"{\"source\":\"app\",\"external_id\":\"b10\",\"received_at\":\"2025-06-02T10:12:00+08:00\",\"community\":\"wen'han\",\"grid\":\"g\",\"text\":\"路灯坏了\"}", "bad_field"},
      {"{\"source\":\"app\",\"external_id\":\"b11\",\"received_at\":\"2025-06-02T10:12:00+08:00\",\"community\":\"wenhan\",\"grid\":\"g\",\"text\":\"路灯坏了\",\"care_tags\":[\"vip\"]}", "bad_field"},
      {"{\"source\":\"app\",\"external_id\":\"b12\",\"received_at\":\"2025-06-02T10:12:00+08:00\",\"community\":\"wenhan\",\"grid\":\"g\",\"address\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\",\"text\":\"路灯坏了\"}", "field_too_long"},
      {"not json at all", "bad_json"},
      /* the wrong shape is refused, never dropped */
      {"{\"source\":\"app\",\"external_id\":\"b15\",\"received_at\":\"2025-06-02T10:12:00+08:00\",\"community\":\"wenhan\",\"grid\":\"g\",\"text\":\"路灯坏了\",\"reporter\":\"张三\"}", "bad_field"},
      {"{\"source\":\"app\",\"external_id\":\"b16\",\"received_at\":\"2025-06-02T10:12:00+08:00\",\"community\":\"wenhan\",\"grid\":\"g\",\"text\":\"路灯坏了\",\"reporter\":{\"name\":\"张三\",\"phone\":13900000001}}", "bad_field"},
      {"{\"source\":\"app\",\"external_id\":\"b17\",\"received_at\":\"2025-06-02T10:12:00+08:00\",\"community\":\"wenhan\",\"grid\":\"g\",\"text\":\"路灯坏了\",\"care_tags\":\"elderly_alone\"}", "bad_field"},
      {"{\"source\":\"app\",\"external_id\":\"b18\",\"received_at\":\"2025-06-02T10:12:00+08:00\",\"community\":\"wenhan\",\"grid\":\"g\",\"text\":\"路灯坏了\",\"location\":[31.2,121.4]}", "bad_location"},
      {"{\"source\":\"app\",\"external_id\":\"b19\",\"received_at\":\"2025-06-02T10:12:00+08:00\",\"community\":\"wenhan\",\"grid\":\"g\",\"text\":\"\\u0000路灯坏了\"}", "bad_field"},
      {"{\"source\":\"app\",\"external_id\":\"b14\",\"received_at\":\"last tuesday\",\"community\":\"wenhan\",\"grid\":\"g\",\"text\":\"路灯坏了\"}", "bad_time"},
  };
  char path[1024];
  snprintf(path, sizeof path, "%s/bad/bad.jsonl", s_var);
  FILE *f = fopen(path, "w");
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) fprintf(f, "%s\n", cases[i].line);
  fclose(f);
  int st;
  char *out = s_capture(&st, CTL("bad") " submit < %s", s_var, s_bin, path);
  assert_int_equal(st, 1);
  json_object *answers = s_lines(out);
  free(out);
  assert_int_equal(json_object_array_length(answers), sizeof cases / sizeof *cases);
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    json_object *a = json_object_array_get_idx(answers, i), *e;
    assert_true(json_object_object_get_ex(a, "error", &e));
    if (strcmp(s_str(e, "code"), cases[i].code))
      fail_msg("case %zu: got %s (%s), expected %s", i, s_str(e, "code"), s_str(e, "text"),
               cases[i].code);
    assert_true(strlen(s_str(e, "text")) > 0);
  }
  json_object_put(answers);
  /* A text's limit is 4,000 characters, whatever their bytes: 4,001 of
   * them is refused (and 4,000, 12,000 bytes, is taken below). */
  char *longtext = malloc(3 * 4001 + 1);
  for (int i = 0; i < 4001; i++) memcpy(longtext + 3 * i, "路", 3);
  longtext[3 * 4001] = '\0';
  snprintf(path, sizeof path, "%s/bad/long.jsonl", s_var);
  f = fopen(path, "w");
  fprintf(f, "{\"source\":\"app\",\"external_id\":\"long-1\",\"received_at\":\"2025-06-02T10:12:00+08:00\","
             "\"community\":\"wenhan\",\"grid\":\"g\",\"text\":\"%s\"}\n", longtext);
  fclose(f);
  out = s_capture(&st, CTL("bad") " submit < %s", s_var, s_bin, path);
  assert_int_equal(st, 1);
  assert_non_null(strstr(out, "field_too_long"));
  free(out);
  wh_pg_t *intake = s_db("bad", "WHISTLE_INTAKE_DB");
  assert_int_equal(s_count(intake, "SELECT count(*) FROM ticket"), 0);
  assert_int_equal(s_count(intake, "SELECT count(*) FROM outbox_owed"), 0);
  /* Every service is alive: a good report goes all the way through. */
  snprintf(path, sizeof path, "%s/bad/good.jsonl", s_var);
  f = fopen(path, "w");
  fprintf(f, "{\"source\":\"app\",\"external_id\":\"good-1\",\"received_at\":\"2025-06-02T10:12:00+08:00\",\"community\":\"wenhan\",\"grid\":\"g\",\"text\":\"小区门口路灯坏了\"}\n");
  longtext[3 * 4000] = '\0';
  fprintf(f, "{\"source\":\"app\",\"external_id\":\"long-2\",\"received_at\":\"2025-06-02T10:12:00+08:00\","
             "\"community\":\"wenhan\",\"grid\":\"g\",\"text\":\"%s\"}\n", longtext);
  free(longtext);
  fclose(f);
  out = s_capture(&st, CTL("bad") " submit < %s", s_var, s_bin, path);
  assert_int_equal(st, 0);
  free(out);
  wh_pg_t *dispatch = s_db("bad", "WHISTLE_DISPATCH_DB");
  /* all 4,000 characters reach dispatch */
  s_wait_count(dispatch, "SELECT count(*) FROM work_order WHERE external_id = 'long-2'"
                         " AND char_length(body) = 4000", 1, 1, 30);
  s_wait_orders(dispatch, 2, 30);
  assert_int_equal(s_count(intake, "SELECT count(*) FROM ticket"), 2);
  wh_pg_destroy(&intake);
  wh_pg_destroy(&dispatch);
  assert_int_equal(s_sh("WHISTLE_VAR=%s/bad %s/deploy/local/stack.sh status | grep -c 'not running' | grep -qx 0", s_var, s_root), 0);
  s_stack("bad", "down");
}

#define HOSTILE_FRAMES 1500 /* to each service */
#define HOSTILE_ROUND 50

/* Sends one round of damaged frames to sock; the frame kinds that the
 * service takes come four times in five. Now and then a frame goes in two
 * parts, as a peer that misuses the socket would send it. */
static void s_hostile_round(void *sock, uint64_t *rng, const int kinds[2], uint8_t *seed[],
                            const size_t seedlen[]) {
  static uint8_t frame[8192];
  for (int i = 0; i < HOSTILE_ROUND; i++) {
    int k = s_mut_next(rng) % 5 ? kinds[s_mut_next(rng) % 2] : (int)(s_mut_next(rng) % SEED_N);
    size_t n = s_mutate(rng, seed[k], seedlen[k], frame, sizeof frame);
    if (n > 1 && s_mut_next(rng) % 20 == 0) {
      assert_true(zmq_send(sock, frame, n / 2, ZMQ_SNDMORE) >= 0);
      assert_true(zmq_send(sock, frame + n / 2, n - n / 2, 0) >= 0);
    } else {
      assert_true(zmq_send(sock, frame, n, 0) >= 0);
    }
  }
}

/* Reads answers on sock until want have come (want > 0) or none has come for
 * quiet_ms; each must be a whistle envelope. Intake's answers with a ticket
 * id are added to ids. Returns how many came. */
static long s_hostile_answers(void *sock, long want, int quiet_ms, json_object *ids) {
  long got = 0;
  zmq_pollitem_t it = {.socket = sock, .events = ZMQ_POLLIN};
  while ((want <= 0 || got < want) && zmq_poll(&it, 1, want > 0 ? 20000 : quiet_ms) > 0) {
    zmq_msg_t m;
    zmq_msg_init(&m);
    assert_true(zmq_msg_recv(&m, sock, 0) >= 0);
    assert_false(zmq_msg_more(&m));
    Whistle__Envelope *env;
    assert_int_equal(wh_env_unpack(zmq_msg_data(&m), zmq_msg_size(&m), &env), 0);
    zmq_msg_close(&m);
    if (env->body_case == WHISTLE__ENVELOPE__BODY_SUBMIT_REPLY && !env->submit_reply->error) {
      assert_true(env->submit_reply->ticket_id[0]);
      json_object_object_add(ids, env->submit_reply->ticket_id, NULL);
    } else if (env->body_case == WHISTLE__ENVELOPE__BODY_ERROR ||
               (env->body_case == WHISTLE__ENVELOPE__BODY_SUBMIT_REPLY)) {
      const Whistle__Error *e =
          env->body_case == WHISTLE__ENVELOPE__BODY_ERROR ? env->error : env->submit_reply->error;
      assert_true(e->code > 0 && e->text[0]); /* a code and a sentence */
    } else if (env->body_case == WHISTLE__ENVELOPE__BODY_ADMIN_REPLY && env->admin_reply->error) {
      assert_true(env->admin_reply->error->code > 0 && env->admin_reply->error->text[0]);
      assert_non_null(env->admin_reply->service);
    } else if (env->body_case == WHISTLE__ENVELOPE__BODY_DESK_REPLY && env->desk_reply->error) {
      assert_true(env->desk_reply->error->code > 0 && env->desk_reply->error->text[0]);
    }
    wh_env_free(env);
    got++;
  }
  return got;
}

/* Fails unless every line of a stack's service log is an entry of its own:
 * valid UTF-8 that starts with the entry's time, whatever hostile text the
 * service wrote into it. Returns the number of lines. */
static long s_log_lines_whole(const char *stack, const char *service) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s/log/%s.log", s_var, stack, service);
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  char *line = NULL;
  size_t cap = 0;
  ssize_t n;
  long no = 0;
  while ((n = getline(&line, &cap, f)) > 0) {
    no++;
    if (line[n - 1] == '\n') line[--n] = '\0';
    if (!wh_utf8_ok(line, (size_t)n) || n < 24 || line[4] != '-' || line[10] != 'T' ||
        line[23] != 'Z')
      fail_msg("%s line %ld is not a whole entry: %.80s", path, no, line);
  }
  free(line);
  fclose(f);
  assert_true(no > 0);
  return no;
}

/* Sends seed frame k, as `as`, to the endpoint KEY of stack name with its
 * ticket id (in the envelope and in the body, which must agree) replaced by
 * ticket; returns the acknowledgement's status, or -1 when none came within
 * 30 s, and its error code in *code when code is not NULL. */
static int s_relay_as(const char *name, const char *key, const char *as, uint8_t *seed[],
                      const size_t seedlen[], int k, const char *ticket, int *code) {
  Whistle__Envelope *env;
  assert_int_equal(wh_env_unpack(seed[k], seedlen[k], &env), 0);
  char **body = k == SEED_RECEIVED  ? &env->received->ticket_id
                : k == SEED_TRIAGED ? &env->triaged->ticket->ticket_id
                                    : &env->work->ticket_id;
  char *was[2] = {env->ticket_id, *body};
  env->ticket_id = *body = (char *)ticket;
  uint8_t *buf;
  size_t len;
  assert_int_equal(wh_env_pack(env, &buf, &len), 0);
  env->ticket_id = was[0]; /* what the envelope frees is its own */
  *body = was[1];
  wh_env_free(env);
  /* The service may still be working through damaged frames sent before. */
  Whistle__Envelope *ans = s_ask(name, key, as, buf, len, 30000);
  free(buf);
  int status = -1;
  const Whistle__Ack *ack = !ans ? NULL
                            : ans->body_case == WHISTLE__ENVELOPE__BODY_ACK ? ans->ack
                            : ans->body_case == WHISTLE__ENVELOPE__BODY_ACKS && ans->acks->n_acks == 1
                                ? ans->acks->acks[0]
                                : NULL;
  if (ack) status = (int)ack->status;
  if (code) *code = ack && ack->error ? (int)ack->error->code : 0;
  if (ans) wh_env_free(ans);
  return status;
}

/* The same as the service's own upstream, in stack "hostile". */
static int s_relayed_with_ticket(const char *key, uint8_t *seed[], const size_t seedlen[], int k,
                                 const char *ticket) {
  return s_relay_as("hostile", key, s_upstream_of(key), seed, seedlen, k, ticket, NULL);
}

/* What a broken or hostile peer sends, into every service's own socket:
 * 1,500 damaged frames each, built from valid frames of every kind
 * (tests/mutate.h) for a ticket intake never numbers. Every answer must be
 * a whistle envelope, and every error a code with a sentence. Intake must
 * answer each frame, and store a ticket only where it answered with its id.
 * Afterwards every process is still running (under ASan and UBSan too, whose
 * reports in a service's log fail the run), a good report still goes all the
 * way to a work order, and each line of each service's log is one whole
 * entry: no id or text from a frame has broken a line or forged one, and
 * no frame has a line of its own. */
static void hostile_frames(void **state) {
  (void)state;
  s_stack("hostile", "up");
  uint8_t *seed[SEED_N];
  size_t seedlen[SEED_N];
  assert_int_equal(s_seed_frames(seed, seedlen), SEED_N);
  static const struct {
    const char *key;
    int kinds[2];
  } doors[] = {
      {"WHISTLE_INTAKE", {SEED_SUBMIT, SEED_SUBMIT}},
      {"WHISTLE_TRIAGE", {SEED_RECEIVED, SEED_BATCH}},
      {"WHISTLE_DISPATCH", {SEED_TRIAGED, SEED_BATCH}},
      {"WHISTLE_NOTIFY", {SEED_WORK, SEED_REPLAY}}, /* the relayed kind first */
      /* each admin socket, as the center: every frame answered */
      {"WHISTLE_INTAKE_ADMIN", {SEED_ADMIN, SEED_ADMIN}},
      {"WHISTLE_TRIAGE_ADMIN", {SEED_ADMIN, SEED_ADMIN}},
      {"WHISTLE_DISPATCH_ADMIN", {SEED_ADMIN, SEED_ADMIN}},
      {"WHISTLE_NOTIFY_ADMIN", {SEED_ADMIN, SEED_ADMIN}},
      /* dispatch's desk, as the center: every frame answered */
      {"WHISTLE_DESK", {SEED_DESK, SEED_DESK}},
      /* intake's contacts, as notify: every frame answered */
      {"WHISTLE_CONTACTS", {SEED_CONTACT, SEED_CONTACT}},
      /* triage's request socket, as the center: every frame answered */
      {"WHISTLE_TRIAGE_ASK", {SEED_TRY, SEED_TRY}},
      /* triage's lessons, as dispatch: relayed, acknowledged */
      {"WHISTLE_LESSONS", {SEED_TAUGHT, SEED_BATCH}},
  };
  void *zctx = zmq_ctx_new();
  json_object *ids = json_object_new_object();
  uint64_t rng = 20261122;
  for (size_t d = 0; d < sizeof doors / sizeof *doors; d++) {
    /* As the service's own upstream: the frames get past the key check
     * and reach every decoder and validator behind it. */
    void *sock = s_sock(zctx, ZMQ_DEALER, "hostile", doors[d].key, s_upstream_of(doors[d].key));
    long answers = 0;
    for (int round = 0; round < HOSTILE_FRAMES / HOSTILE_ROUND; round++) {
      s_hostile_round(sock, &rng, doors[d].kinds, seed, seedlen);
      if (d == 0 || strstr(doors[d].key, "_ADMIN") || !strcmp(doors[d].key, "WHISTLE_DESK") ||
          !strcmp(doors[d].key, "WHISTLE_CONTACTS") || !strcmp(doors[d].key, "WHISTLE_TRIAGE_ASK")) {
        long got = s_hostile_answers(sock, HOSTILE_ROUND, 0, ids);
        if (got != HOSTILE_ROUND)
          fail_msg("%s answered %ld of round %d's %d frames", doors[d].key, got, round,
                   HOSTILE_ROUND);
        answers += got;
      } else {
        answers += s_hostile_answers(sock, 0, 100, ids);
      }
    }
    print_message("%s: %d damaged frames, %ld answers\n", doors[d].key, HOSTILE_FRAMES, answers);
    assert_true(answers > 0);
    zmq_close(sock);
  }
  zmq_ctx_term(zctx);
  /* A ticket id of kilobytes would fail the inbox's index, which is the
   * database failing, not the data: left unanswered, its sender would send
   * it for ever. One that is not an id at all is refused as well. */
  static char huge[5001];
  for (size_t i = 0; i < sizeof huge - 1; i++) huge[i] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"[(i * 7 + i / 32) % 32];
  for (size_t d = 1; d < 4; d++) { /* the relayed doors */
    assert_int_equal(s_relayed_with_ticket(doors[d].key, seed, seedlen, doors[d].kinds[0], huge),
                     WHISTLE__ACK_STATUS__ACK_REJECTED);
    assert_int_equal(s_relayed_with_ticket(doors[d].key, seed, seedlen, doors[d].kinds[0], "工单 42"),
                     WHISTLE__ACK_STATUS__ACK_REJECTED);
  }
  assert_int_equal(s_relayed_with_ticket("WHISTLE_LESSONS", seed, seedlen, SEED_TAUGHT, huge),
                   WHISTLE__ACK_STATUS__ACK_REJECTED);
  for (int k = 0; k < SEED_N; k++) free(seed[k]);
  wh_pg_t *intake = s_db("hostile", "WHISTLE_INTAKE_DB");
  long stored = s_count(intake, "SELECT count(*) FROM ticket");
  print_message("intake stored %ld tickets, answered %d ticket ids\n", stored,
                json_object_object_length(ids));
  assert_int_equal(stored, json_object_object_length(ids));
  json_object_put(ids);
  assert_int_equal(s_sh("WHISTLE_VAR=%s/hostile %s/deploy/local/stack.sh status | grep -c 'not running' | grep -qx 0", s_var, s_root), 0);
  /* A good report still goes all the way through. */
  char path[1024];
  snprintf(path, sizeof path, "%s/hostile/good.jsonl", s_var);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fprintf(f, "{\"source\":\"app\",\"external_id\":\"after-hostile-1\",\"received_at\":\"2025-06-02T10:12:00+08:00\",\"community\":\"wenhan\",\"grid\":\"g\",\"text\":\"小区门口路灯坏了\"}\n");
  fclose(f);
  int st;
  char *out = s_capture(&st, CTL("hostile") " submit < %s", s_var, s_bin, path);
  assert_int_equal(st, 0);
  free(out);
  wh_pg_t *dispatch = s_db("hostile", "WHISTLE_DISPATCH_DB");
  s_wait_count(dispatch, "SELECT count(*) FROM work_order WHERE external_id = 'after-hostile-1'", 1, 1, 30);
  wh_pg_destroy(&dispatch);
  wh_pg_destroy(&intake);
  s_stack("hostile", "down");
  static const char *services[] = {"intake", "triage", "dispatch", "notify"};
  /* Each place that logs a refusal writes 100 lines in 10 s and counts the
   * rest: 1,500 refusals in a few seconds are not 1,500 lines. */
  for (int i = 0; i < 4; i++) assert_true(s_log_lines_whole("hostile", services[i]) < 500);
}

static const char *s_restart_kinds[][2] = {
    {"water_main", "水管爆了"},        {"street_lamp", "路灯坏了好几天"},
    {"parking", "电动车乱停堵住门口"}, {"noise", "晚上噪音太大"},
    {"gas_leak", "闻到煤气味"},        {"stairwell_clutter", "楼道堆满杂物"},
    {"consult", "咨询补贴政策"},       {"illegal_build", "有人违章搭建"},
};

/* Replays a party's whole feed from notify, page by page, as a department
 * that was away would: every answer fits the frame cap, items come in
 * sequence with nothing skipped or repeated, and the pages end at the head.
 * Returns how many pages stopped short of what was asked because of the
 * cap; *items gets the count of items replayed. */
static int s_replay_all(const char *name, const char *party, long *items, wh_pg_t *notify) {
  void *ctx = zmq_ctx_new(), *s = s_sock(ctx, ZMQ_DEALER, name, "WHISTLE_NOTIFY", party);
  int tmo = 10000;
  zmq_setsockopt(s, ZMQ_RCVTIMEO, &tmo, sizeof tmo);
  uint64_t from = 1, head = 1;
  int capped = 0, retries = 0;
  *items = 0;
  while (from <= head) {
    Whistle__ReplayRequest q = WHISTLE__REPLAY_REQUEST__INIT;
    q.party = (char *)party;
    q.from_seq = from;
    q.max = 500;
    Whistle__Envelope env = WHISTLE__ENVELOPE__INIT;
    env.body_case = WHISTLE__ENVELOPE__BODY_REPLAY;
    env.replay = &q;
    uint8_t *buf;
    size_t len;
    assert_int_equal(wh_env_pack(&env, &buf, &len), 0);
    assert_true(zmq_send(s, buf, len, 0) >= 0);
    free(buf);
    zmq_msg_t m;
    zmq_msg_init(&m);
    assert_true(zmq_msg_recv(&m, s, 0) >= 0);
    assert_true(zmq_msg_size(&m) <= WH_FRAME_MAX);
    Whistle__Envelope *rep;
    assert_int_equal(wh_env_unpack(zmq_msg_data(&m), zmq_msg_size(&m), &rep), 0);
    zmq_msg_close(&m);
    assert_int_equal(rep->body_case, WHISTLE__ENVELOPE__BODY_REPLAY_REPLY);
    Whistle__ReplayReply *r = rep->replay_reply;
    if (r->error && r->error->code == WHISTLE__ERROR_CODE__ERR_INTERNAL && ++retries <= 25) {
      /* "ask again": the store is away for a moment (PostgreSQL was killed
       * and restarted above); a department's client asks again. */
      print_message("replay of %s from %" PRIu64 ": %s\n", party, from, r->error->text);
      wh_env_free(rep);
      usleep(200 * 1000);
      continue;
    }
    if (r->error) fail_msg("replay of %s from %" PRIu64 ": %s", party, from, r->error->text);
    head = r->head_seq;
    assert_true(r->n_items > 0 || from > head);
    for (size_t i = 0; i < r->n_items; i++) {
      const Whistle__FeedItem *it = r->items[i];
      assert_int_equal(it->seq, from);
      assert_string_equal(it->party, party);
      assert_non_null(it->event);
      assert_string_equal(it->event->ticket_id, it->ticket_id);
      assert_int_equal(it->event->version, it->version);
      if (notify) { /* the item is the row's: a shared frame is readdressed */
        char seq[24];
        snprintf(seq, sizeof seq, "%" PRIu64, from);
        const char *v[2] = {party, seq};
        PGresult *row = wh_pg_query(notify,
                                    "SELECT ticket_id, role, version,"
                                    " (extract(epoch FROM at) * 1000)::bigint FROM feed"
                                    " WHERE party = $1 AND seq = $2", 2, v);
        assert_non_null(row);
        assert_int_equal(PQntuples(row), 1);
        assert_string_equal(it->ticket_id, PQgetvalue(row, 0, 0));
        assert_string_equal(it->role, PQgetvalue(row, 0, 1));
        assert_int_equal(it->version, atol(PQgetvalue(row, 0, 2)));
        assert_int_equal(it->at_ms, atoll(PQgetvalue(row, 0, 3)));
        PQclear(row);
      }
      from++;
    }
    *items += (long)r->n_items;
    if (r->n_items < 500 && from <= head) capped++;
    wh_env_free(rep);
  }
  zmq_close(s);
  zmq_ctx_term(ctx);
  return capped;
}

static void restart(void **state) {
  (void)state;
  const int total = 1000, chunks = 5;
  s_stack("restart", "up");
  char path[1024];
  int64_t at = wh_clock_now_ms() - 3 * 3600 * 1000; /* level-1 clocks will have lapsed */
  char when[40];
  wh_time_format(at, when, sizeof when);
  for (int c = 0; c < chunks; c++) {
    snprintf(path, sizeof path, "%s/restart/chunk%d.jsonl", s_var, c);
    FILE *f = fopen(path, "w");
    for (int i = c * total / chunks; i < (c + 1) * total / chunks; i++) {
      const char **k = s_restart_kinds[i % 8];
      /* A hotline operator's note runs to a few hundred bytes. */
      static const char note[] = "来电人表示情况已持续一段时间，希望有关部门尽快派人到现场查看并回复处理结果，"
                                 "联系方式已登记。";
      fprintf(f, "{\"source\":\"hotline\",\"external_id\":\"r-%d\",\"received_at\":\"%s\","
                 "\"community\":\"xiangdong\",\"grid\":\"g-%d\",\"category\":\"%s\","
                 "\"text\":\"%s（第%d号）%s%s\",\"reporter\":{\"name\":\"测\",\"phone\":\"139%08d\"}}\n",
              i, when, i, k[0], k[1], i, note, note, i);
    }
    fclose(f);
  }
  /* The reporters' sink refuses for a while (a directory where its file
   * should be): their messages wait in notify's log, pending, and go out
   * when it takes them again. */
  snprintf(path, sizeof path, "%s/restart/sink/reporter.txt", s_var);
  unlink(path);
  assert_int_equal(mkdir(path, 0755), 0);
  static const char *victims[] = {"intake", "triage", "dispatch", "notify", "postgres"};
  pid_t pids[5];
  for (int c = 0; c < chunks; c++) {
    pid_t pid = fork();
    if (pid == 0) {
      char cmd[2048];
      snprintf(cmd, sizeof cmd,
               CTL("restart") " submit < %s/restart/chunk%d.jsonl > %s/restart/answers%d.jsonl",
               s_var, s_bin, s_var, c, s_var, c);
      execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
      _exit(127);
    }
    pids[c] = pid;
    usleep(150 * 1000);
    print_message("kill -9 %s\n", victims[c]);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "kill %s", victims[c]);
    s_stack("restart", cmd);
    usleep(300 * 1000);
    snprintf(cmd, sizeof cmd, "start %s", victims[c]);
    s_stack("restart", cmd);
  }
  assert_int_equal(rmdir(path), 0);
  for (int c = 0; c < chunks; c++) {
    int st;
    waitpid(pids[c], &st, 0);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  }
  wh_pg_t *intake = s_db("restart", "WHISTLE_INTAKE_DB");
  wh_pg_t *dispatch = s_db("restart", "WHISTLE_DISPATCH_DB");
  wh_pg_t *notify = s_db("restart", "WHISTLE_NOTIFY_DB");
  assert_int_equal(s_count(intake, "SELECT count(*) FROM ticket"), total);
  s_wait_orders(dispatch, total, 120);
  long level1 = s_count(dispatch, "SELECT count(*) FROM work_order WHERE level = 1");
  assert_true(level1 > 0);
  /* Wait for every dispatched item and every lapse to reach the feeds. */
  long got = 0, over = 0;
  for (int i = 0; i < 1200; i++) {
    got = s_count(notify, "SELECT count(DISTINCT ticket_id) FROM feed WHERE kind = 'dispatched' AND role = 'lead'");
    over = s_count(notify, "SELECT count(DISTINCT ticket_id) FROM feed WHERE kind = 'overdue' AND role = 'lead'");
    if (got == total && over == level1) break;
    usleep(100 * 1000);
  }
  print_message("%ld tickets on their lead's feed, %ld level-1 lapses reported\n", got, over);
  assert_int_equal(got, total);
  assert_int_equal(over, level1);
  /* Exactly once: no (ticket, party, version) twice on any feed. */
  assert_int_equal(s_count(notify, "SELECT count(*) FROM (SELECT 1 FROM feed GROUP BY ticket_id, party, version HAVING count(*) > 1) d"), 0);
  assert_int_equal(s_count(notify, "SELECT count(*) FROM feed WHERE kind = 'dispatched' AND role = 'lead'"), total);
  /* A ticket's first event is recorded by its lead's item, not an inbox
   * row: the inbox holds only tickets that had a second event (a lapse). */
  assert_int_equal(s_count(notify, "SELECT count(*) FROM inbox WHERE last_seq < 2"), 0);
  assert_int_equal(s_count(notify, "SELECT count(*) FROM inbox"), level1);
  /* In order per ticket: versions rise along each feed. */
  assert_int_equal(s_count(notify, "SELECT count(*) FROM (SELECT version, lag(version) OVER (PARTITION BY party, ticket_id ORDER BY seq) AS prev FROM feed) x WHERE prev >= version"), 0);
  /* Gap-free feeds. */
  assert_int_equal(s_count(notify, "SELECT count(*) FROM (SELECT party FROM feed GROUP BY party HAVING max(seq) <> count(*)) g"), 0);
  /* The busiest feed replays whole, in answers that fit the frame cap: 500
   * of its items (what one answer may hold) need more bytes than that. */
  PGresult *busiest = wh_pg_query(notify, "SELECT party, count(*), 500 * avg(octet_length(coalesce(frame, item)))"
                                          " FROM feed GROUP BY party ORDER BY 2 DESC LIMIT 1", 0, NULL);
  assert_non_null(busiest);
  assert_true(atof(PQgetvalue(busiest, 0, 2)) > WH_FRAME_MAX / 2);
  long replayed = 0;
  int capped = s_replay_all("restart", PQgetvalue(busiest, 0, 0), &replayed, NULL);
  print_message("%s's feed: %ld items replayed, %d answers cut short by the frame cap\n",
                PQgetvalue(busiest, 0, 0), replayed, capped);
  assert_int_equal(replayed, atol(PQgetvalue(busiest, 0, 1)));
  assert_true(capped > 0);
  PQclear(busiest);
  /* A co-party's item of a first event is stored without its frame (the
   * lead's item holds the event): its feed replays whole, each item
   * addressed to it, as the live feed published it. */
  PGresult *co = wh_pg_query(notify, "SELECT party, count(*) FROM feed GROUP BY party"
                                     " ORDER BY count(*) FILTER (WHERE role = 'co' AND frame IS NULL"
                                     " AND item IS NULL) DESC LIMIT 1", 0, NULL);
  assert_non_null(co);
  assert_true(s_count(notify, "SELECT count(*) FROM feed WHERE role = 'co' AND frame IS NULL") > 0);
  assert_int_equal(s_count(notify, "SELECT count(*) FROM feed WHERE role = 'lead' AND frame IS NULL"), 0);
  s_replay_all("restart", PQgetvalue(co, 0, 0), &replayed, notify);
  print_message("%s's feed: %ld items replayed and each checked against its row\n",
                PQgetvalue(co, 0, 0), replayed);
  assert_int_equal(replayed, atol(PQgetvalue(co, 0, 1)));
  PQclear(co);
  /* Each ticket is on the feed of the lead dispatch gave it. */
  PGresult *r = wh_pg_query(dispatch, "SELECT ticket_id, lead FROM work_order ORDER BY ticket_id", 0, NULL);
  assert_non_null(r);
  for (int i = 0; i < PQntuples(r); i++) {
    const char *v[2] = {PQgetvalue(r, i, 0), PQgetvalue(r, i, 1)};
    PGresult *q = wh_pg_query(notify, "SELECT count(*) FROM feed WHERE ticket_id = $1 AND party = $2 AND kind = 'dispatched'", 2, v);
    assert_non_null(q);
    if (atol(PQgetvalue(q, 0, 0)) != 1) fail_msg("%s not once on %s's feed", v[0], v[1]);
    PQclear(q);
  }
  PQclear(r);
  /* Every reporter got the receipt: each message is sent (none parked),
   * and the sink holds a line for each ticket, at least once. */
  long sent = 0;
  for (int i = 0; i < 300 && sent < total; i++) {
    sent = s_count(notify, "SELECT count(*) FROM delivery_status WHERE state = 'sent'");
    if (sent < total) usleep(100 * 1000);
  }
  /* ... after the sink had refused them: they came from the log. */
  assert_int_equal(s_sh("grep -q 'refused messages' %s/restart/log/notify.log", s_var), 0);
  assert_int_equal(sent, total);
  assert_int_equal(s_count(notify, "SELECT count(*) FROM delivery"), total);
  int status;
  char *lines = s_capture(&status, "grep -o 'ticket=WH[0-9]*' %s | sort -u | wc -l", path);
  assert_int_equal(status, 0);
  assert_int_equal(atol(lines), total);
  free(lines);
  wh_pg_destroy(&intake);
  wh_pg_destroy(&dispatch);
  wh_pg_destroy(&notify);
  s_stack("restart", "down");
}

/* An envelope as the relay stored or built it: the stamps of one sending
 * (sent_at, delivery tag, first_send) taken off, packed anew. Caller frees
 * *out. */
static void s_unstamped(const Whistle__Envelope *env, uint8_t **out, size_t *len) {
  Whistle__Envelope e = *env;
  e.sent_at_ms = 0;
  e.delivery_tag = 0;
  e.first_send = 0;
  assert_int_equal(wh_env_pack(&e, out, len), 0);
}

#define BUILT_MAX 256

typedef struct {
  uint64_t tag;
  uint8_t *first; /* as first sent, from memory */
  size_t first_len;
  int copies;     /* sendings seen */
  int same;       /* later sendings equal to the first */
} s_sent_t;

/* Takes every envelope that has arrived at router (alone or in a Batch),
 * recording each sending of each delivery tag in sent (n of them). When ack
 * is set, acknowledges each. */
static void s_take_sent(void *router, s_sent_t *sent, int *n, int ack) {
  for (;;) {
    zmq_msg_t id, body;
    zmq_msg_init(&id);
    zmq_msg_init(&body);
    if (zmq_msg_recv(&id, router, ZMQ_DONTWAIT) < 0) {
      zmq_msg_close(&id);
      zmq_msg_close(&body);
      return;
    }
    assert_true(zmq_msg_recv(&body, router, 0) >= 0);
    Whistle__Envelope *frame;
    assert_int_equal(wh_env_unpack(zmq_msg_data(&body), zmq_msg_size(&body), &frame), 0);
    size_t count = frame->body_case == WHISTLE__ENVELOPE__BODY_BATCH ? frame->batch->n_envelopes : 1;
    for (size_t i = 0; i < count; i++) {
      Whistle__Envelope *env = frame;
      if (frame->body_case == WHISTLE__ENVELOPE__BODY_BATCH)
        assert_int_equal(wh_env_unpack(frame->batch->envelopes[i].data,
                                       frame->batch->envelopes[i].len, &env), 0);
      uint8_t *bytes;
      size_t len;
      s_unstamped(env, &bytes, &len);
      int k = 0;
      while (k < *n && sent[k].tag != env->delivery_tag) k++;
      if (k == *n) {
        assert_true(*n < BUILT_MAX);
        /* The first sending comes from the memory of the transaction. */
        assert_true(env->first_send);
        sent[(*n)++] = (s_sent_t){.tag = env->delivery_tag, .first = bytes, .first_len = len};
      } else {
        assert_false(env->first_send);
        sent[k].same += len == sent[k].first_len && !memcmp(bytes, sent[k].first, len);
        free(bytes);
      }
      sent[k].copies++;
      if (ack) {
        Whistle__Ack a = WHISTLE__ACK__INIT;
        a.message_id = env->message_id;
        a.delivery_tag = env->delivery_tag;
        Whistle__Envelope out = WHISTLE__ENVELOPE__INIT;
        out.body_case = WHISTLE__ENVELOPE__BODY_ACK;
        out.ack = &a;
        uint8_t *abuf;
        size_t alen;
        assert_int_equal(wh_env_pack(&out, &abuf, &alen), 0);
        zmq_send(router, zmq_msg_data(&id), zmq_msg_size(&id), ZMQ_SNDMORE);
        zmq_send(router, abuf, alen, 0);
        free(abuf);
      }
      if (env != frame) wh_env_free(env);
    }
    wh_env_free(frame);
    zmq_msg_close(&id);
    zmq_msg_close(&body);
  }
}

/* Takes what arrives for ms milliseconds. */
static void s_take_for(void *router, s_sent_t *sent, int *n, int ack, int ms) {
  for (int waited = 0; waited < ms; waited += 50) {
    s_take_sent(router, sent, n, ack);
    usleep(50 * 1000);
  }
}

/* 1 when each of n messages was sent at least `copies` times. */
static int s_all_sent(const s_sent_t *sent, int n, int copies) {
  for (int i = 0; i < n; i++)
    if (sent[i].copies < copies) return 0;
  return 1;
}

/* Checks what `service` of stack "built" sends to router, which stands in
 * for its receiver: at least `want` messages, each first sent from memory;
 * left unanswered, each sent again (read back, a carried one built from its
 * row), and after the service restarts, again: every sending the same,
 * byte for byte, as the first. Then answers them all: nothing more comes. */
static void s_built_check(void *router, const char *service, int want) {
  s_sent_t sent[BUILT_MAX];
  int n = 0;
  for (int i = 0; i < 50 && n < want; i++) s_take_for(router, sent, &n, 0, 100);
  assert_true(n >= want);
  /* Unanswered: sent again after two seconds. */
  for (int i = 0; i < 60 && !s_all_sent(sent, n, 2); i++) s_take_for(router, sent, &n, 0, 100);
  assert_true(s_all_sent(sent, n, 2));
  for (int i = 0; i < n; i++) assert_int_equal(sent[i].same, sent[i].copies - 1);
  /* A restart: what it had sent is read back, and sent again. */
  for (int i = 0; i < n; i++) {
    sent[i].copies = 1;
    sent[i].same = 0;
  }
  char cmd[64];
  snprintf(cmd, sizeof cmd, "kill %s", service);
  s_stack("built", cmd);
  snprintf(cmd, sizeof cmd, "start %s", service);
  s_stack("built", cmd);
  int had = n;
  for (int i = 0; i < 100 && !s_all_sent(sent, n, 2); i++) s_take_for(router, sent, &n, 0, 100);
  assert_true(s_all_sent(sent, n, 2));
  for (int i = 0; i < n; i++) assert_int_equal(sent[i].same, sent[i].copies - 1);
  assert_int_equal(n, had);
  /* Answered, each as it comes again (a slow machine may take more than
   * one resend interval): then nothing is sent again. */
  for (int i = 0; i < n; i++) sent[i].copies = 0;
  for (int i = 0; i < 300 && !s_all_sent(sent, n, 1); i++) s_take_for(router, sent, &n, 1, 100);
  assert_true(s_all_sent(sent, n, 1));
  s_take_for(router, sent, &n, 1, 500); /* answers in flight */
  for (int i = 0; i < n; i++) sent[i].copies = 0;
  s_take_for(router, sent, &n, 1, 2500);
  assert_int_equal(n, had);
  assert_true(s_all_sent(sent, n, 0) && !s_all_sent(sent, n, 1));
  for (int i = 0; i < n; i++) free(sent[i].first);
}

/* Feed items the SUB socket s receives within ms, counted by topic party. */
static int s_items_for(void *s, const char *party, int ms) {
  int n = 0;
  int64_t until = wh_clock_now_ms() + ms;
  while (wh_clock_now_ms() < until) {
    zmq_pollitem_t pi = {s, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&pi, 1, 100) <= 0) continue;
    zmq_msg_t topic, m;
    zmq_msg_init(&topic);
    zmq_msg_init(&m);
    if (zmq_msg_recv(&topic, s, 0) >= 0 && zmq_msg_more(&topic) && zmq_msg_recv(&m, s, 0) >= 0)
      n += !strcmp(zmq_msg_data(&topic), party);
    zmq_msg_close(&topic);
    zmq_msg_close(&m);
  }
  return n;
}

/* A replay request for party (empty: the asker's own), as `as`: the answer's
 * error code (0 for none) and, in *got, the party it answered for. */
static int s_replay_as(const char *as, const char *party, char *got, size_t gotlen, long *items) {
  Whistle__ReplayRequest q = WHISTLE__REPLAY_REQUEST__INIT;
  q.party = (char *)party;
  q.from_seq = 1;
  q.max = 500;
  Whistle__Envelope env = WHISTLE__ENVELOPE__INIT;
  env.message_id = "auth-replay";
  env.body_case = WHISTLE__ENVELOPE__BODY_REPLAY;
  env.replay = &q;
  uint8_t *buf;
  size_t len;
  assert_int_equal(wh_env_pack(&env, &buf, &len), 0);
  Whistle__Envelope *ans = s_ask("auth", "WHISTLE_NOTIFY", as, buf, len, 10000);
  free(buf);
  assert_non_null(ans);
  assert_int_equal(ans->body_case, WHISTLE__ENVELOPE__BODY_REPLAY_REPLY);
  int code = ans->replay_reply->error ? (int)ans->replay_reply->error->code : 0;
  snprintf(got, gotlen, "%s", ans->replay_reply->party);
  *items = (long)ans->replay_reply->n_items;
  wh_env_free(ans);
  return code;
}

/* Who speaks is the key it holds, on every socket. A key no service knows
 * is refused at the handshake, and whistlectl says so at once. A key that is
 * known but is not a service's upstream cannot relay: a forged first event
 * of a real ticket, sent ahead of it, is refused and does not make the real
 * one look seen; forged reports, decisions and work events store nothing.
 * A full phone number handed to dispatch as "masked" is masked there. A
 * party follows and replays only its own feed; the center any. */
static void authenticated(void **state) {
  (void)state;
  s_stack("auth", "up");
  wh_pg_t *intake = s_db("auth", "WHISTLE_INTAKE_DB"), *triage = s_db("auth", "WHISTLE_TRIAGE_DB");
  wh_pg_t *dispatch = s_db("auth", "WHISTLE_DISPATCH_DB"), *notify = s_db("auth", "WHISTLE_NOTIFY_DB");

  /* A key of its own that no service has. */
  char rogue[1024];
  snprintf(rogue, sizeof rogue, "%s/auth/rogue", s_var);
  assert_int_equal(s_sh("rm -rf %s && mkdir -p %s && %s/whistlectl keygen --dir %s rogue &&"
                        " cp %s/auth/keys/intake.pub %s/auth/keys/notify.pub %s/",
                        rogue, rogue, s_bin, rogue, s_var, s_var, rogue), 0);
  struct stat st_key;
  char keyfile[1100];
  snprintf(keyfile, sizeof keyfile, "%s/rogue.key", rogue);
  assert_int_equal(stat(keyfile, &st_key), 0);
  assert_int_equal(st_key.st_mode & 0777, 0600);
  /* keygen never replaces a pair */
  assert_int_not_equal(s_sh("%s/whistlectl keygen --dir %s rogue 2>/dev/null", s_bin, rogue), 0);
  const char *verbs[] = {"submit < %s/tests/data/scenarios.jsonl", "feed water%.0s"};
  for (int i = 0; i < 2; i++) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, verbs[i], s_root);
    int st;
    int64_t t0 = wh_clock_now_ms();
    char *out = s_capture(&st, CTL("auth") " --keys %s --as rogue %s 2>&1", s_var, s_bin, rogue, cmd);
    int64_t took = wh_clock_now_ms() - t0;
    print_message("an unknown key: whistlectl %.6s exits %d in %" PRId64 " ms: %s", cmd, st, took, out);
    assert_int_not_equal(st, 0);
    assert_non_null(strstr(out, "unauthenticated"));
    assert_true(took < 5000);
    free(out);
  }
  assert_int_equal(s_count(intake, "SELECT count(*) FROM ticket"), 0);

  /* Known keys that are not the upstream: a party, or another service. The
   * first ticket's first event of each stage, sent before it exists. */
  uint8_t *seed[SEED_N];
  size_t seedlen[SEED_N];
  assert_int_equal(s_seed_frames(seed, seedlen), SEED_N);
  const struct {
    const char *key, *as;
    int kind;
  } forged[] = {
      {"WHISTLE_TRIAGE", "hotline", SEED_RECEIVED}, {"WHISTLE_TRIAGE", "dispatch", SEED_RECEIVED},
      {"WHISTLE_DISPATCH", "intake", SEED_TRIAGED}, {"WHISTLE_DISPATCH", "water", SEED_TRIAGED},
      {"WHISTLE_NOTIFY", "water", SEED_WORK},       {"WHISTLE_NOTIFY", "triage", SEED_WORK},
  };
  for (size_t i = 0; i < sizeof forged / sizeof *forged; i++) {
    int code = 0;
    assert_int_equal(s_relay_as("auth", forged[i].key, forged[i].as, seed, seedlen, forged[i].kind,
                                "WH00000001", &code),
                     WHISTLE__ACK_STATUS__ACK_REJECTED);
    assert_int_equal(code, WHISTLE__ERROR_CODE__ERR_FORBIDDEN);
  }
  assert_int_equal(s_count(triage, "SELECT count(*) FROM decision"), 0);
  assert_int_equal(s_count(dispatch, "SELECT count(*) FROM work_order"), 0);
  assert_int_equal(s_count(notify, "SELECT count(*) FROM feed"), 0);
  assert_int_equal(s_count(notify, "SELECT count(*) FROM inbox"), 0);

  /* The real reports, from the hotline integrator's key: the first ticket
   * reaches its lead's feed, its first event applied, not taken as seen. */
  int st;
  char *out = s_capture(&st, CTL("auth") " --as hotline submit < %s/tests/data/scenarios.jsonl",
                        s_var, s_bin, s_root);
  assert_int_equal(st, 0);
  free(out);
  s_wait_count(notify, "SELECT count(*) FROM feed WHERE ticket_id = 'WH00000001' AND role = 'lead'"
                       " AND version = 1", 1, 1, 30);
  s_wait_count(dispatch, "SELECT count(*) FROM work_order", 28, 28, 30);

  /* triage's key (a triage gone wrong) hands dispatch a full number. */
  assert_int_equal(s_relay_as("auth", "WHISTLE_DISPATCH", "triage", seed, seedlen, SEED_TRIAGED,
                              "FZ90000001", NULL),
                   WHISTLE__ACK_STATUS__ACK_OK);
  s_wait_count(notify, "SELECT count(*) FROM feed WHERE ticket_id = 'FZ90000001'", 1, 10, 30);
  assert_int_equal(s_count(dispatch, "SELECT count(*) FROM work_order WHERE ticket_id = 'FZ90000001'"
                                     " AND reporter_masked = '139****0001'"), 1);
  /* the seed's number, 13900000001, in no frame of any feed */
  assert_int_equal(s_count(notify, "SELECT count(*) FROM feed WHERE position('13900000001'::bytea"
                                   " IN coalesce(frame, item)) > 0"), 0);
  for (int k = 0; k < SEED_N; k++) free(seed[k]);

  /* Replays: a party's own feed, when it names none or itself; another's is
   * refused; the center reads any. */
  char got[96];
  long items = 0;
  long water = s_count(notify, "SELECT count(*) FROM feed WHERE party = 'water'");
  assert_true(water > 0);
  assert_int_equal(s_replay_as("water", "", got, sizeof got, &items), 0);
  assert_string_equal(got, "water");
  assert_int_equal(items, water);
  assert_int_equal(s_replay_as("police", "water", got, sizeof got, &items),
                   WHISTLE__ERROR_CODE__ERR_FORBIDDEN);
  assert_int_equal(s_replay_as("center", "water", got, sizeof got, &items), 0);
  assert_int_equal(items, water);

  /* Live feeds: police's subscriptions to water's feed and to every feed
   * get nothing; water's and the center's get water's new item. */
  void *zctx = zmq_ctx_new();
  const struct {
    const char *as, *topic;
    size_t len;
    int gets;
  } subs[] = {{"police", "water", 6, 0}, {"police", "", 0, 0}, {"water", "water", 6, 1},
              {"center", "water", 6, 1}};
  void *sock[4];
  for (int i = 0; i < 4; i++) {
    sock[i] = s_sock(zctx, ZMQ_SUB, "auth", "WHISTLE_FEED", subs[i].as);
    zmq_setsockopt(sock[i], ZMQ_SUBSCRIBE, subs[i].topic, subs[i].len);
  }
  usleep(500 * 1000); /* the subscriptions reach notify */
  char path[1024];
  snprintf(path, sizeof path, "%s/auth/water.jsonl", s_var);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fprintf(f, "{\"source\":\"app\",\"external_id\":\"auth-water-1\",\"received_at\":\"2025-06-02T10:12:00+08:00\","
             "\"community\":\"wenhan\",\"grid\":\"wenhan-9\",\"text\":\"9号楼前主水管破裂，水一直在冒\"}\n");
  fclose(f);
  out = s_capture(&st, CTL("auth") " --as hotline submit < %s", s_var, s_bin, path);
  assert_int_equal(st, 0);
  free(out);
  for (int i = 0; i < 4; i++) {
    int n = s_items_for(sock[i], "water", subs[i].gets ? 10000 : 1500);
    print_message("%s following %s: %d items of water's feed\n", subs[i].as,
                  subs[i].len ? subs[i].topic : "every feed", n);
    if (subs[i].gets) assert_true(n >= 1);
    else assert_int_equal(n, 0);
    zmq_close(sock[i]);
  }
  zmq_ctx_term(zctx);
  wh_pg_destroy(&intake);
  wh_pg_destroy(&triage);
  wh_pg_destroy(&dispatch);
  wh_pg_destroy(&notify);
  s_stack("auth", "down");
}

/* ---- a proxy between a service and PostgreSQL --------------------------
 * It passes bytes both ways and reads the server's messages (a type byte
 * and a length). Armed, it cuts the connection at the CommandComplete of a
 * COMMIT that follows one of an INSERT: PostgreSQL has committed the
 * batch, and the service never hears so; or, given cut_client, where
 * the service sends a statement of that name. For 1.5 s after, the network
 * being down, it refuses new connections. */
#define PROXY_PAIRS 8

typedef struct {
  int c, u; /* the service's end, PostgreSQL's end; -1 when free */
  uint8_t buf[1 << 16]; /* what the server sent that is not yet passed on */
  size_t have;
  size_t skip; /* bytes of a message too long for buf, passed on unread */
  int inserted; /* the last command completed was an INSERT */
} s_pair_t;

typedef struct {
  int lfd, port, upstream;
  atomic_int armed, cuts, stop;
  int64_t down_until; /* monotonic ms: refuse connections until then */
  const char *cut_client; /* armed: cut where the service names this, not at a COMMIT */
  s_pair_t pairs[PROXY_PAIRS];
  pthread_t th;
} s_proxy_t;

static void s_pair_close(s_pair_t *p) {
  if (p->c >= 0) close(p->c);
  if (p->u >= 0) close(p->u);
  p->c = p->u = -1;
  p->have = p->skip = 0;
  p->inserted = 0;
}

static int s_write_all(int fd, const uint8_t *b, size_t n) {
  while (n) {
    ssize_t w = write(fd, b, n);
    if (w <= 0) return -1;
    b += w;
    n -= (size_t)w;
  }
  return 0;
}

static void s_proxy_cut(s_proxy_t *px, s_pair_t *p) {
  s_pair_close(p);
  atomic_store(&px->armed, 0);
  atomic_fetch_add(&px->cuts, 1);
  px->down_until = wh_clock_mono_ms() + 1500;
}

/* Passes on the server's whole messages, or cuts before a COMMIT's. */
static void s_proxy_from_server(s_proxy_t *px, s_pair_t *p) {
  size_t at = p->skip < p->have ? p->skip : p->have;
  p->skip -= at;
  while (p->have - at >= 5) {
    uint32_t len;
    memcpy(&len, p->buf + at + 1, 4);
    len = ntohl(len);
    if (len + 1 > sizeof p->buf / 2 && p->have - at < len + 1) {
      /* a long row: passed on as it comes */
      p->skip = len + 1 - (p->have - at);
      at = p->have;
      break;
    }
    if (p->have - at < len + 1) break;
    const uint8_t *m = p->buf + at;
    if (m[0] == 'C') {
      int commit = len >= 4 + 7 && !memcmp(m + 5, "COMMIT", 7);
      if (commit && p->inserted && !px->cut_client && atomic_load(&px->armed)) {
        s_write_all(p->c, p->buf, at);
        s_proxy_cut(px, p);
        return;
      }
      p->inserted = len >= 4 + 6 && !memcmp(m + 5, "INSERT", 6);
    }
    at += len + 1;
  }
  if (at && s_write_all(p->c, p->buf, at)) {
    s_pair_close(p);
    return;
  }
  memmove(p->buf, p->buf + at, p->have - at);
  p->have -= at;
}

static void *s_proxy_run(void *arg) {
  s_proxy_t *px = arg;
  while (!atomic_load(&px->stop)) {
    struct pollfd fds[1 + 2 * PROXY_PAIRS];
    int nf = 0;
    fds[nf++] = (struct pollfd){.fd = px->lfd, .events = POLLIN};
    for (int i = 0; i < PROXY_PAIRS; i++) {
      fds[nf++] = (struct pollfd){.fd = px->pairs[i].c, .events = POLLIN};
      fds[nf++] = (struct pollfd){.fd = px->pairs[i].u, .events = POLLIN};
    }
    if (poll(fds, (nfds_t)nf, 100) <= 0) continue;
    if (fds[0].revents & POLLIN) {
      int c = accept(px->lfd, NULL, NULL);
      int slot = -1;
      for (int i = 0; i < PROXY_PAIRS && slot < 0; i++)
        if (px->pairs[i].c < 0) slot = i;
      int u = socket(AF_INET, SOCK_STREAM, 0);
      struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)px->upstream)};
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      if (c < 0 || slot < 0 || u < 0 || wh_clock_mono_ms() < px->down_until ||
          connect(u, (struct sockaddr *)&a, sizeof a)) {
        if (c >= 0) close(c);
        if (u >= 0) close(u);
      } else {
        px->pairs[slot].c = c;
        px->pairs[slot].u = u;
      }
      continue; /* the descriptors polled have changed */
    }
    for (int i = 0; i < PROXY_PAIRS; i++) {
      s_pair_t *p = &px->pairs[i];
      if (p->c < 0) continue;
      struct pollfd *fc = &fds[1 + 2 * i], *fu = &fds[2 + 2 * i];
      if (fc->revents & (POLLIN | POLLHUP | POLLERR)) {
        uint8_t b[1 << 14];
        ssize_t n = read(p->c, b, sizeof b);
        if (n > 0 && px->cut_client && atomic_load(&px->armed) &&
            memmem(b, (size_t)n, px->cut_client, strlen(px->cut_client))) {
          s_proxy_cut(px, p);
          continue;
        }
        if (n <= 0 || s_write_all(p->u, b, (size_t)n)) {
          s_pair_close(p);
          continue;
        }
      }
      if (fu->revents & (POLLIN | POLLHUP | POLLERR)) {
        ssize_t n = read(p->u, p->buf + p->have, sizeof p->buf - p->have);
        if (n <= 0) {
          s_pair_close(p);
          continue;
        }
        p->have += (size_t)n;
        s_proxy_from_server(px, p);
      }
    }
  }
  for (int i = 0; i < PROXY_PAIRS; i++) s_pair_close(&px->pairs[i]);
  return NULL;
}

/* Starts a proxy to PostgreSQL on upstream (a port on 127.0.0.1). */
static void s_proxy_start(s_proxy_t *px, int upstream, const char *cut_client) {
  memset(px, 0, sizeof *px);
  px->cut_client = cut_client;
  for (int i = 0; i < PROXY_PAIRS; i++) px->pairs[i].c = px->pairs[i].u = -1;
  px->upstream = upstream;
  px->lfd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(px->lfd >= 0);
  struct sockaddr_in a = {.sin_family = AF_INET};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(px->lfd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(px->lfd, 16), 0);
  socklen_t alen = sizeof a;
  assert_int_equal(getsockname(px->lfd, (struct sockaddr *)&a, &alen), 0);
  px->port = ntohs(a.sin_port);
  assert_int_equal(pthread_create(&px->th, NULL, s_proxy_run, px), 0);
}

static void s_proxy_stop(s_proxy_t *px) {
  atomic_store(&px->stop, 1);
  pthread_join(px->th, NULL);
  close(px->lfd);
}

/* Restarts service of stack name with its database reached through a
 * proxy, started here, to the stack's PostgreSQL (cut_client: see
 * s_proxy_t). */
static void s_through_proxy(const char *name, const char *service, const char *cut_client,
                            s_proxy_t *px) {
  char port[16], cmd[128], key[64];
  s_env(name, "WHISTLE_PGPORT", port, sizeof port);
  s_proxy_start(px, atoi(port), cut_client);
  snprintf(cmd, sizeof cmd, "kill %s", service);
  s_stack(name, cmd);
  snprintf(key, sizeof key, "WHISTLE_%s_DB", service);
  for (char *k = key; *k; k++) *k = (char)(*k >= 'a' && *k <= 'z' ? *k - 32 : *k);
  assert_int_equal(s_sh("sed -i \"s|^%s=.*|%s='host=127.0.0.1 port=%d user=whistle"
                        " dbname=whistle_%s sslmode=disable gssencmode=disable connect_timeout=5'|\""
                        " %s/%s/stack.env", key, key, px->port, service, s_var, name), 0);
  snprintf(cmd, sizeof cmd, "start %s", service);
  s_stack(name, cmd);
}

/* A report as a channel sends it, for external id ext. */
static void s_report_frame(const char *ext, uint8_t **buf, size_t *len) {
  uint8_t *seed[SEED_N];
  size_t seedlen[SEED_N];
  assert_int_equal(s_seed_frames(seed, seedlen), SEED_N);
  Whistle__Envelope *env;
  assert_int_equal(wh_env_unpack(seed[SEED_SUBMIT], seedlen[SEED_SUBMIT], &env), 0);
  char mid[37];
  wh_uuid(mid);
  char *was[2] = {env->message_id, env->submit->external_id};
  env->message_id = mid;
  env->submit->external_id = (char *)ext;
  assert_int_equal(wh_env_pack(env, buf, len), 0);
  env->message_id = was[0]; /* what the envelope frees is its own */
  env->submit->external_id = was[1];
  wh_env_free(env);
  for (int k = 0; k < SEED_N; k++) free(seed[k]);
}

/* Intake's answer to the report ext: its ticket id into ticket (when it
 * has one), and the error code (0 for none, -1 for no answer). */
static int s_report(const char *name, const char *ext, char *ticket, size_t len, int *duplicate) {
  uint8_t *buf;
  size_t n;
  s_report_frame(ext, &buf, &n);
  Whistle__Envelope *env = s_ask(name, "WHISTLE_INTAKE", "hotline", buf, n, 10000);
  free(buf);
  int code = -1;
  ticket[0] = '\0';
  if (env && env->body_case == WHISTLE__ENVELOPE__BODY_SUBMIT_REPLY) {
    const Whistle__SubmitReply *r = env->submit_reply;
    code = r->error ? (int)r->error->code : 0;
    if (!r->error) snprintf(ticket, len, "%s", r->ticket_id);
    if (duplicate) *duplicate = r->duplicate;
  }
  if (env) wh_env_free(env);
  return code;
}

static void intake_lost_commit(void **state) {
  (void)state;
  s_stack("lost", "up");
  s_proxy_t px;
  s_through_proxy("lost", "intake", NULL, &px);
  char a[64], b[64], again[64];
  int dup = 0;
  /* A report goes through, and the next one's COMMIT answer is lost. */
  assert_int_equal(s_report("lost", "lost-0", a, sizeof a, NULL), 0);
  atomic_store(&px.armed, 1);
  int code = s_report("lost", "lost-a", a, sizeof a, NULL);
  assert_int_equal(atomic_load(&px.cuts), 1);
  assert_int_equal(code, WHISTLE__ERROR_CODE__ERR_INTERNAL);
  /* Once intake has its connection back, a new report is stored. */
  code = -1;
  for (int i = 0; i < 30 && code != 0; i++) {
    code = s_report("lost", "lost-b", b, sizeof b, NULL);
    if (code) usleep(500 * 1000);
  }
  print_message("after the lost COMMIT answer: a new report answered %d, ticket %s\n", code, b);
  assert_int_equal(code, 0);
  /* The first, sent again: the ticket PostgreSQL committed for it. */
  assert_int_equal(s_report("lost", "lost-a", again, sizeof again, &dup), 0);
  assert_true(dup);
  assert_string_not_equal(again, b);
  assert_int_equal(atomic_load(&px.cuts), 1);
  wh_pg_t *dispatch = s_db("lost", "WHISTLE_DISPATCH_DB");
  s_wait_count(dispatch, "SELECT count(*) FROM work_order WHERE external_id LIKE 'lost-%'", 3, 3, 30);
  char sql[256];
  snprintf(sql, sizeof sql, "SELECT count(*) FROM work_order WHERE ticket_id IN ('%s', '%s')", again, b);
  assert_int_equal(s_count(dispatch, sql), 2);
  wh_pg_destroy(&dispatch);
  s_stack("lost", "down");
  s_proxy_stop(&px);
}

/* notify loses its database session right after the sink took a batch's
 * receipts and before it marked them sent (a proxy cuts the connection
 * where notify sends the mark): the receipts come back from the log as
 * pending, and the sink writes each once all the same, with its stable id. */
static void notify_sink_writes_each_once(void **state) {
  (void)state;
  s_stack("sink", "up");
  s_proxy_t px;
  s_through_proxy("sink", "notify", "notify_sent", &px);
  wh_pg_t *notify = s_db("sink", "WHISTLE_NOTIFY_DB");
  int st;
  char *out = s_capture(&st, "head -n 1 %s/tests/data/scenarios.jsonl | " CTL("sink") " --as hotline submit",
                        s_root, s_var, s_bin);
  assert_int_equal(st, 0);
  free(out);
  s_wait_count(notify, "SELECT count(*) FROM delivery_status WHERE state = 'sent'", 1, 1, 30);
  atomic_store(&px.armed, 1);
  out = s_capture(&st, "sed -n 2,4p %s/tests/data/scenarios.jsonl | " CTL("sink") " --as hotline submit",
                  s_root, s_var, s_bin);
  assert_int_equal(st, 0);
  free(out);
  for (int i = 0; i < 100 && !atomic_load(&px.cuts); i++) usleep(100 * 1000);
  assert_int_equal(atomic_load(&px.cuts), 1);
  /* The next report, once notify has its database again, brings the
   * pending receipts back from the log. */
  usleep(2000 * 1000);
  out = s_capture(&st, "sed -n 5p %s/tests/data/scenarios.jsonl | " CTL("sink") " --as hotline submit",
                  s_root, s_var, s_bin);
  assert_int_equal(st, 0);
  free(out);
  long total = 0;
  for (int i = 0; i < 300; i++) {
    total = s_count(notify, "SELECT count(*) FROM delivery");
    if (total >= 5 && s_count(notify, "SELECT count(*) FROM delivery_status WHERE state = 'sent'") == total)
      break;
    usleep(100 * 1000);
  }
  assert_true(total >= 5);
  assert_int_equal(s_count(notify, "SELECT count(*) FROM delivery_status WHERE state = 'sent'"), total);
  char *lines = s_capture(&st, "wc -l < %s/sink/sink/reporter.txt", s_var);
  char *ids = s_capture(&st, "grep -o 'id=[0-9]*' %s/sink/sink/reporter.txt | sort -u | wc -l", s_var);
  print_message("%ld receipts; the sink holds %ld lines, %ld ids\n", total, atol(lines), atol(ids));
  assert_int_equal(atol(ids), total);
  assert_int_equal(atol(lines), total);
  free(lines);
  free(ids);
  wh_pg_destroy(&notify);
  s_stack("sink", "down");
  s_proxy_stop(&px);
}

/* Triage's decision on ticket, as triage relays it: a repeat of first when
 * first is not NULL. Returns the acknowledgement's status (-1: none). */
static int s_decided(const char *name, const char *ticket, const char *first) {
  uint8_t *seed[SEED_N];
  size_t seedlen[SEED_N];
  assert_int_equal(s_seed_frames(seed, seedlen), SEED_N);
  Whistle__Envelope *env;
  assert_int_equal(wh_env_unpack(seed[SEED_TRIAGED], seedlen[SEED_TRIAGED], &env), 0);
  for (int k = 0; k < SEED_N; k++) free(seed[k]);
  char mid[96];
  snprintf(mid, sizeof mid, "triage:%s:1", ticket);
  char *was[4] = {env->ticket_id, env->triaged->ticket->ticket_id, env->triaged->duplicate_of,
                  env->message_id};
  env->ticket_id = env->triaged->ticket->ticket_id = (char *)ticket;
  env->triaged->duplicate_of = (char *)(first ? first : "");
  env->message_id = mid;
  env->created_at_ms = env->triaged->decided_at_ms = wh_clock_now_ms();
  uint8_t *buf;
  size_t len;
  assert_int_equal(wh_env_pack(env, &buf, &len), 0);
  env->ticket_id = was[0];
  env->triaged->ticket->ticket_id = was[1];
  env->triaged->duplicate_of = was[2];
  env->message_id = was[3];
  wh_env_free(env);
  Whistle__Envelope *ans = s_ask(name, "WHISTLE_DISPATCH", "triage", buf, len, 30000);
  free(buf);
  const Whistle__Ack *ack = !ans ? NULL
                            : ans->body_case == WHISTLE__ENVELOPE__BODY_ACK ? ans->ack
                            : ans->body_case == WHISTLE__ENVELOPE__BODY_ACKS && ans->acks->n_acks == 1
                                ? ans->acks->acks[0]
                                : NULL;
  int status = ack ? (int)ack->status : -1;
  if (ans) wh_env_free(ans);
  return status;
}

/* A repeat that reaches dispatch before its first (the first was sent
 * again, or waited in a backlog) is answered "not yet", and opens nothing;
 * once the first has come, the repeat is merged under it: one order. */
static void repeat_waits_for_its_first(void **state) {
  (void)state;
  s_stack("repeat", "up");
  wh_pg_t *dispatch = s_db("repeat", "WHISTLE_DISPATCH_DB");
  assert_int_equal(s_decided("repeat", "FZ90000003", "FZ90000002"), WHISTLE__ACK_STATUS__ACK_RETRY);
  assert_int_equal(s_count(dispatch, "SELECT count(*) FROM work_order"), 0);
  assert_int_equal(s_decided("repeat", "FZ90000002", NULL), WHISTLE__ACK_STATUS__ACK_OK);
  assert_int_equal(s_decided("repeat", "FZ90000003", "FZ90000002"), WHISTLE__ACK_STATUS__ACK_OK);
  assert_int_equal(s_count(dispatch, "SELECT count(*) FROM work_order WHERE ticket_id = 'FZ90000003'"
                                     " AND state = 'merged' AND duplicate_of = 'FZ90000002'"), 1);
  assert_int_equal(s_count(dispatch, "SELECT count(*) FROM work_order WHERE state = 'dispatched'"), 1);
  /* Sent again, it is seen: still one order, one repeat. */
  assert_int_equal(s_decided("repeat", "FZ90000003", "FZ90000002"), WHISTLE__ACK_STATUS__ACK_OK);
  assert_int_equal(s_count(dispatch, "SELECT count(*) FROM work_order"), 2);
  wh_pg_destroy(&dispatch);
  s_stack("repeat", "down");
}

/* The tickets whose events to notify name transport: what notify refuses
 * while its feed holds no row for transport. */
static const char s_transport_sql[] =
    "SELECT count(*) FROM work_order WHERE lead = 'transport' OR 'transport' = ANY (co)";

static void parked_redrive(void **state) {
  (void)state;
  s_stack("park", "up");
  wh_pg_t *dispatch = s_db("park", "WHISTLE_DISPATCH_DB"), *notify = s_db("park", "WHISTLE_NOTIFY_DB");
  /* An operator's mistake in notify's schema: transport's items refused. */
  PGresult *r = wh_pg_query(notify, "ALTER TABLE feed ADD CONSTRAINT hold_transport"
                                    " CHECK (party <> 'transport')", 0, NULL);
  assert_non_null(r);
  PQclear(r);
  int st;
  char *out = s_capture(&st, CTL("park") " --as hotline submit < %s/tests/data/scenarios.jsonl",
                        s_var, s_bin, s_root);
  assert_int_equal(st, 0);
  free(out);
  s_wait_orders(dispatch, 28, 30);
  long held = s_count(dispatch, s_transport_sql);
  assert_true(held >= 2);
  /* Every other ticket reaches the feeds past them. */
  s_wait_count(notify, "SELECT count(DISTINCT ticket_id) FROM feed", 28 - held, 28 - held, 30);
  s_wait_count(dispatch, "SELECT count(DISTINCT ticket_id) FROM outbox_parked"
                         " WHERE redriven_at IS NULL AND behind IS NULL", held, held, 30);
  /* Each ticket's events after the refused one (its lapses) wait behind
   * it; nothing else is owed. */
  s_wait_count(dispatch, "SELECT count(*) FROM outbox_parked WHERE redriven_at IS NULL"
                         " AND behind IS NOT NULL", 1, LONG_MAX, 30);
  s_wait_count(dispatch, "SELECT count(*) FROM outbox_owed", 0, 0, 30);
  long total = s_count(dispatch, "SELECT count(*) FROM outbox_parked WHERE redriven_at IS NULL");
  assert_true(total > held);

  /* The center's list: each refused event with the database's reason, and
   * each one behind it. */
  out = s_capture(&st, CTL("park") " --json parked", s_var, s_bin);
  assert_int_equal(st, 0);
  json_object *rows = s_lines(out);
  free(out);
  assert_int_equal(json_object_array_length(rows), total);
  char head_id[128] = "", follower_id[128] = "", ticket[64] = "";
  for (size_t i = 0; i < json_object_array_length(rows); i++) {
    json_object *o = json_object_array_get_idx(rows, i);
    assert_string_equal(s_str(o, "service"), "dispatch");
    assert_string_equal(s_str(o, "dest"), "notify");
    if (!s_str(o, "behind")) {
      assert_non_null(strstr(s_str(o, "reason"), "hold_transport"));
      if (!head_id[0]) {
        snprintf(head_id, sizeof head_id, "%s", s_str(o, "message_id"));
        snprintf(ticket, sizeof ticket, "%s", s_str(o, "ticket_id"));
      }
    } else {
      assert_non_null(strstr(s_str(o, "reason"), "waits behind"));
    }
  }
  for (size_t i = 0; i < json_object_array_length(rows); i++) {
    json_object *o = json_object_array_get_idx(rows, i);
    if (s_str(o, "behind") && !strcmp(s_str(o, "behind"), head_id) && !follower_id[0])
      snprintf(follower_id, sizeof follower_id, "%s", s_str(o, "message_id"));
  }
  json_object_put(rows);
  assert_true(head_id[0] && follower_id[0]);

  /* Any other party is refused, and nothing moves. */
  out = s_capture(&st, CTL("park") " --as transport parked 2>&1", s_var, s_bin);
  assert_int_not_equal(st, 0);
  assert_non_null(strstr(out, "forbidden"));
  free(out);
  out = s_capture(&st, CTL("park") " --as transport redrive %s 2>&1", s_var, s_bin, head_id);
  assert_int_not_equal(st, 0);
  assert_non_null(strstr(out, "forbidden"));
  free(out);
  out = s_capture(&st, CTL("park") " redrive no-such-message 2>&1", s_var, s_bin);
  assert_int_equal(st, 1);
  assert_non_null(strstr(out, "not_found"));
  free(out);
  assert_int_equal(s_count(dispatch, "SELECT count(*) FROM outbox_parked WHERE redriven_at IS NULL"),
                   total);

  /* The cause fixed, one ticket sent again by the id of an event behind:
   * its events reach transport's feed in order, the others stay parked. */
  r = wh_pg_query(notify, "ALTER TABLE feed DROP CONSTRAINT hold_transport", 0, NULL);
  assert_non_null(r);
  PQclear(r);
  char sql[512];
  snprintf(sql, sizeof sql, "SELECT count(*) FROM outbox_parked WHERE redriven_at IS NULL"
                            " AND ticket_id = '%s'", ticket);
  long mine = s_count(dispatch, sql);
  out = s_capture(&st, CTL("park") " redrive %s", s_var, s_bin, follower_id);
  assert_int_equal(st, 0);
  char want[64];
  snprintf(want, sizeof want, "%ld in all", mine);
  assert_non_null(strstr(out, want));
  free(out);
  snprintf(sql, sizeof sql, "SELECT count(*) FROM feed WHERE ticket_id = '%s'"
                            " AND party = (SELECT party FROM feed WHERE ticket_id = '%s'"
                            "   ORDER BY seq LIMIT 1)", ticket, ticket);
  s_wait_count(notify, sql, mine, mine, 30);
  assert_int_equal(s_count(dispatch, "SELECT count(*) FROM outbox_parked WHERE redriven_at IS NULL"),
                   total - mine);

  /* The rest, each by its refused event's id. */
  out = s_capture(&st, CTL("park") " --json parked", s_var, s_bin);
  assert_int_equal(st, 0);
  rows = s_lines(out);
  free(out);
  for (size_t i = 0; i < json_object_array_length(rows); i++) {
    json_object *o = json_object_array_get_idx(rows, i);
    if (s_str(o, "behind")) continue;
    assert_int_equal(s_sh(CTL("park") " redrive %s >/dev/null", s_var, s_bin,
                          s_str(o, "message_id")), 0);
  }
  json_object_put(rows);
  s_wait_count(notify, "SELECT count(DISTINCT ticket_id) FROM feed", 28, 28, 30);
  out = s_capture(&st, CTL("park") " parked", s_var, s_bin);
  assert_int_equal(st, 0);
  assert_string_equal(out, "nothing parked\n");
  free(out);
  /* On every feed, each ticket's items come in the order of its events. */
  assert_int_equal(s_count(notify, "SELECT count(*) FROM (SELECT version < lag(version)"
                                   " OVER (PARTITION BY party, ticket_id ORDER BY seq) AS back"
                                   " FROM feed) x WHERE back"), 0);
  assert_int_equal(s_count(notify, "SELECT count(*) FROM feed WHERE party = 'transport'"),
                   s_count(notify, "SELECT count(DISTINCT (ticket_id, version)) FROM feed"
                                   " WHERE party = 'transport'"));
  /* A redriven message is parked no more. */
  out = s_capture(&st, CTL("park") " redrive %s 2>&1", s_var, s_bin, head_id);
  assert_int_equal(st, 1);
  assert_non_null(strstr(out, "not_found"));
  free(out);
  wh_pg_destroy(&dispatch);
  wh_pg_destroy(&notify);
  s_stack("park", "down");
}

/* A router bound at the endpoint KEY of stack "built", in zctx, with the
 * key of the service it stands in for (no ZAP handler in zctx: it takes
 * whoever connects). */
static void *s_stand_in(void *zctx, const char *key) {
  char ep[1024], dir[1024], err[1024];
  s_env("built", key, ep, sizeof ep);
  snprintf(dir, sizeof dir, "%s/built/keys", s_var);
  wh_keys_t *keys = wh_keys_load(dir, s_server_of(key), err, sizeof err);
  if (!keys) fail_msg("%s", err);
  void *router = zmq_socket(zctx, ZMQ_ROUTER);
  assert_int_equal(wh_keys_server(keys, router), 0);
  wh_keys_destroy(&keys);
  assert_int_equal(zmq_bind(router, ep), 0);
  return router;
}

/* A ticket's TicketReceived, and an order's dispatched event, ride in their
 * rows and are not stored: intake and dispatch build them again from the
 * rows whenever they are read back. What a resend, and a restarted service,
 * send is byte for byte what was first sent from memory, for an order that
 * changed since it was opened too (its deadlines lapsed: built from the row
 * as it was). The receiver's place is taken by this test, which answers
 * late. */
static void carried_built(void **state) {
  (void)state;
  s_stack("built", "up");
  s_stack("built", "kill triage");
  s_stack("built", "kill intake");
  void *zctx = zmq_ctx_new();
  void *router = s_stand_in(zctx, "WHISTLE_TRIAGE");
  s_stack("built", "start intake"); /* it connects to this one */

  /* The scenarios, and reports with a place on the map, care tags, no
   * reporter, no category, a trace id of the channel's. */
  char path[1024];
  snprintf(path, sizeof path, "%s/built/more.jsonl", s_var);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fprintf(f, "{\"source\":\"app\",\"external_id\":\"b-1\",\"received_at\":\"2025-06-02T10:12:00.123+08:00\","
             "\"community\":\"xiangdong\",\"grid\":\"xiangdong-1\",\"address\":\"\","
             "\"text\":\"路灯不亮\\\"三盏\\\"，晚上很黑\",\"location\":{\"lat\":31.2345678,\"lng\":121.4567891},"
             "\"care_tags\":[\"elderly_alone\",\"disabled\"]}\n");
  fprintf(f, "{\"source\":\"qr\",\"external_id\":\"b-2\",\"received_at\":\"2025-06-03T09:30:00+08:00\","
             "\"community\":\"xiangdong\",\"grid\":\"xiangdong-2\",\"category\":\"noise\","
             "\"text\":\"夜间施工噪音\",\"reporter\":{\"name\":\"\",\"phone\":\"\"}}\n");
  fclose(f);
  int st;
  char *out = s_capture(&st, "cat %s/tests/data/scenarios.jsonl %s | " CTL("built") " submit",
                        s_root, path, s_var, s_bin);
  assert_int_equal(st, 0);
  free(out);
  wh_pg_t *intake = s_db("built", "WHISTLE_INTAKE_DB");
  assert_int_equal(s_count(intake, "SELECT count(*) FROM ticket WHERE out_payload IS NULL"
                                   " AND out_id IS NOT NULL"), 30);
  s_built_check(router, "intake", 30);
  zmq_close(router);

  /* Dispatch, with notify's place taken: the scenarios again (as new
   * reports), their deadlines long lapsed. */
  s_stack("built", "kill notify");
  s_stack("built", "kill dispatch");
  router = s_stand_in(zctx, "WHISTLE_NOTIFY");
  s_stack("built", "start dispatch");
  s_stack("built", "start triage");
  out = s_capture(&st, "sed 's/\"external_id\":\"/\"external_id\":\"d-/' %s/tests/data/scenarios.jsonl | "
                  CTL("built") " submit", s_root, s_var, s_bin);
  assert_int_equal(st, 0);
  free(out);
  wh_pg_t *dispatch = s_db("built", "WHISTLE_DISPATCH_DB");
  s_wait_orders(dispatch, 28, 30);
  /* The orders changed (lapsed) before notify took their events. */
  s_wait_count(dispatch, "SELECT count(*) FROM work_order_first", 20, LONG_MAX, 10);
  s_built_check(router, "dispatch", 28);
  assert_true(s_count(dispatch, "SELECT count(*) FROM work_order WHERE state = 'dispatched'"
                                " AND out_payload IS NULL") >= 20);
  /* Once notify has taken the events, the copies they were built from go. */
  s_wait_count(dispatch, "SELECT count(*) FROM work_order_first", 0, 0, 10);
  wh_pg_destroy(&dispatch);
  wh_pg_destroy(&intake);
  zmq_close(router);
  zmq_ctx_term(zctx);
  s_stack("built", "down");
}

/* ---- the loop at the desk ------------------------------------------------ */

/* The stack the desk helpers speak to. */
static const char *s_desk_stack = "loop";

/* Runs whistlectl on the desk's stack as party as, with stderr; returns
 * its output and sets *st. */
static char *s_desk(int *st, const char *as, const char *fmt, ...) {
  char args[3072];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(args, sizeof args, fmt, ap);
  va_end(ap);
  return s_capture(st, "WHISTLE_STATE=%s/%s/stack.env %s/whistlectl --as %s %s 2>&1", s_var,
                   s_desk_stack, s_bin, as, args);
}

/* Acts, expecting success; returns the order's JSON (caller puts). */
static json_object *s_acted(const char *as, const char *fmt, ...) {
  char args[3072];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(args, sizeof args, fmt, ap);
  va_end(ap);
  int st;
  char *out = s_desk(&st, as, "--json %s", args);
  if (st != 0) fail_msg("%s as %s: exit %d: %s", args, as, st, out);
  json_object *o = json_tokener_parse(out);
  free(out);
  assert_non_null(o);
  return o;
}

/* Acts, expecting the refusal code; nothing may change (the version
 * before and after is compared by the caller). */
static void s_refused(const char *as, const char *code, const char *fmt, ...) {
  char args[3072];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(args, sizeof args, fmt, ap);
  va_end(ap);
  int st;
  char *out = s_desk(&st, as, "%s", args);
  char want[80];
  snprintf(want, sizeof want, ": %s: ", code);
  if (st != 1 || !strstr(out, want))
    fail_msg("%s as %s: wanted %s, exit %d: %s", args, as, code, st, out);
  free(out);
}

/* The order as the center's show --json gives it (caller puts). */
static json_object *s_order(const char *ticket) {
  int st;
  char *out = s_desk(&st, "center", "--json show %s", ticket);
  if (st != 0) fail_msg("show %s: exit %d: %s", ticket, st, out);
  json_object *o = json_tokener_parse(out);
  free(out);
  assert_non_null(o);
  return o;
}

static int s_jint(json_object *o, const char *k) {
  json_object *v;
  return json_object_object_get_ex(o, k, &v) && v ? json_object_get_int(v) : -1;
}

static json_object *s_jorder(json_object *answer) {
  json_object *v;
  assert_true(json_object_object_get_ex(answer, "order", &v) && v);
  return v;
}

/* The state and version an answer's order has, checked. */
static void s_is(json_object *answer, const char *state, int version) {
  json_object *o = s_jorder(answer);
  if (strcmp(s_str(o, "state"), state) || s_jint(o, "version") != version)
    fail_msg("%s: %s version %d, expected %s version %d", s_str(o, "ticket_id"),
             s_str(o, "state"), s_jint(o, "version"), state, version);
  json_object_put(answer);
}

static int s_version(const char *ticket) {
  json_object *o = s_order(ticket);
  int v = s_jint(o, "version");
  json_object_put(o);
  return v;
}

/* Waits until dispatch has ticket, and returns its version then. */
static int s_await(const char *ticket) {
  for (int i = 0; i < 100; i++) {
    int st;
    char *out = s_desk(&st, "center", "--json show %s", ticket);
    free(out);
    if (st == 0) return s_version(ticket);
    usleep(100000);
  }
  fail_msg("%s never reached dispatch", ticket);
  return -1;
}

/* A date days from now, as UNTIL takes it. */
static void s_date(int days, char *out, size_t len) {
  char t[40];
  wh_time_format(wh_clock_now_ms() + (int64_t)days * 86400000, t, sizeof t);
  snprintf(out, len, "%.10s", t);
}

static void loop_life(void **state) {
  (void)state;
  s_stack("loop", "up");
  wh_pg_t *notify = s_db("loop", "WHISTLE_NOTIFY_DB");
  char path[1024];
  snprintf(path, sizeof path, "%s/loop/reports.jsonl", s_var);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  /* received now, so no clock has lapsed: A (lead transport), B (lead
   * transport, co street_office), C and D (no rule: the center's queue) */
  char now[40];
  wh_time_format(wh_clock_now_ms(), now, sizeof now);
  fprintf(f, "{\"source\":\"hotline\",\"external_id\":\"loop-a\",\"received_at\":\"%s\",\"community\":\"wenhan\",\"grid\":\"wenhan-3\","
        "\"address\":\"文诚路\",\"category\":\"sidewalk\",\"text\":\"人行道缺了一段，老人只能走马路\","
        "\"reporter\":{\"name\":\"李女士\",\"phone\":\"13911112001\"}}\n"
        "{\"source\":\"hotline\",\"external_id\":\"loop-b\",\"received_at\":\"%s\",\"community\":\"wenhan\",\"grid\":\"wenhan-3\","
        "\"address\":\"文涵路\",\"category\":\"guardrail\",\"text\":\"护栏出入口太远，商户卸货绕路\","
        "\"reporter\":{\"name\":\"王店主\",\"phone\":\"13911112002\"}}\n"
        "{\"source\":\"hotline\",\"external_id\":\"loop-c\",\"received_at\":\"%s\",\"community\":\"wenhan\",\"grid\":\"wenhan-1\","
        "\"address\":\"文涵路1号\",\"text\":\"测试一下这个电话能不能打通\","
        "\"reporter\":{\"name\":\"张先生\",\"phone\":\"13911112003\"}}\n"
        "{\"source\":\"hotline\",\"external_id\":\"loop-d\",\"received_at\":\"%s\",\"community\":\"wenhan\",\"grid\":\"wenhan-1\","
        "\"address\":\"文涵路2号\",\"text\":\"楼道里一股味道，说不清是什么\","
        "\"reporter\":{\"name\":\"赵阿姨\",\"phone\":\"13911112004\"}}\n", now, now, now, now);
  fclose(f);
  int st;
  char *out = s_capture(&st, CTL("loop") " --as hotline submit < %s", s_var, s_bin, path);
  assert_int_equal(st, 0);
  json_object *answers = s_lines(out);
  free(out);
  assert_int_equal(json_object_array_length(answers), 4);
  char a[32], b[32], c[32], d[32];
  snprintf(a, sizeof a, "%s", s_str(json_object_array_get_idx(answers, 0), "ticket_id"));
  snprintf(b, sizeof b, "%s", s_str(json_object_array_get_idx(answers, 1), "ticket_id"));
  snprintf(c, sizeof c, "%s", s_str(json_object_array_get_idx(answers, 2), "ticket_id"));
  snprintf(d, sizeof d, "%s", s_str(json_object_array_get_idx(answers, 3), "ticket_id"));
  json_object_put(answers);
  int va = s_await(a);
  s_await(b);
  s_await(c);
  s_await(d);
  json_object *o = s_order(a);
  assert_string_equal(s_str(o, "lead"), "transport");
  assert_string_equal(s_str(o, "state"), "dispatched");
  json_object_put(o);

  /* Only the right party acts: a party of another community, a key the
   * org chart does not name (a service's), the wrong role, the wrong state. */
  s_refused("xiangdong.rc", "forbidden", "sign %s", a);
  s_refused("intake", "forbidden", "sign %s", a);
  s_refused("water", "forbidden", "sign %s", a);
  s_refused("xiangdong.rc", "forbidden", "show %s", a);
  s_refused("transport", "wrong_state", "progress %s 已到现场", a);
  s_refused("hotline", "wrong_state", "feedback %s satisfied", a);
  s_refused("transport", "unknown_ticket", "sign WH99999999");
  s_refused("center", "bad_reason", "void %s joke 只是玩笑", a);
  assert_int_equal(s_version(a), va);

  /* 签收, once for a request id however often it is sent */
  s_is(s_acted("transport", "sign %s --request-id loop-a-sign", a), "signed", va + 1);
  o = s_acted("transport", "sign %s --request-id loop-a-sign", a);
  assert_true(json_object_get_boolean(json_object_object_get(o, "repeated")));
  s_is(o, "signed", va + 1);
  /* two clerks racing on the same version: one wins, one is told */
  s_is(s_acted("transport", "progress %s --version %d --internal 需采购材料 已派人到现场", a, va + 1),
       "in_progress", va + 2);
  s_refused("transport", "stale", "progress %s --version %d 也到现场了", a, va + 1);

  /* 延期: after the deadline is refused, too far is refused, then asked,
   * approved by the center only, and the deadline moves */
  char near[16], ok[16], far[16];
  s_date(2, near, sizeof near);
  s_date(10, ok, sizeof ok);
  s_date(60, far, sizeof far);
  s_refused("transport", "bad_time", "extend %s %s 需要采购", a, near);
  s_refused("transport", "too_far", "extend %s %s 需要采购", a, far);
  s_is(s_acted("transport", "extend %s %s 需要采购材料", a, ok), "in_progress", va + 3);
  out = s_desk(&st, "center", "--json list --extension pending");
  assert_int_equal(st, 0);
  assert_non_null(strstr(out, a));
  free(out);
  s_refused("transport", "forbidden", "approve %s 自己批", a);
  s_refused("transport", "forbidden", "list --extension pending --party center");
  o = s_acted("center", "approve %s 同意延期", a);
  json_object *dl = s_clock(s_jorder(o), "resolve");
  assert_non_null(dl);
  assert_non_null(strstr(s_str(dl, "due_at"), ok));
  assert_string_equal(s_str(json_object_object_get(s_jorder(o), "extension"), "state"), "approved");
  s_is(o, "in_progress", va + 4);

  /* 办结 -> 回访: unsatisfied reopens to the same lead; then closed */
  /* a result is required: whistlectl says so before asking */
  out = s_desk(&st, "transport", "resolve %s", a);
  assert_int_equal(st, 2);
  free(out);
  s_is(s_acted("transport", "resolve %s 人行道已补齐", a), "resolved", va + 5);
  s_refused("center", "wrong_state", "close %s 结案", a);
  s_refused("transport", "forbidden", "feedback %s satisfied", a);
  s_refused("hotline", "bad_reason", "feedback %s happy", a);
  o = s_acted("hotline", "feedback %s unsatisfied 还是缺一段", a);
  assert_int_equal(s_jint(s_jorder(o), "reopens"), 1);
  assert_string_equal(s_str(s_jorder(o), "lead"), "transport");
  s_is(o, "reopened", va + 6);
  s_is(s_acted("transport", "sign %s", a), "signed", va + 7);
  s_is(s_acted("transport", "resolve %s 全部补齐", a), "resolved", va + 8);
  o = s_acted("hotline", "feedback %s satisfied 满意", a);
  assert_string_equal(s_str(json_object_object_get(s_jorder(o), "feedback"), "rating"), "satisfied");
  s_is(o, "closed", va + 9);
  s_is(s_acted("center", "reopen %s 回头看发现又坏了", a), "reopened", va + 10);

  /* A co-party's own part, a return, the center's reassignment */
  int vb = s_version(b);
  s_refused("street_office", "wrong_state", "progress %s 先看看", b);
  s_is(s_acted("street_office", "sign %s", b), "dispatched", vb + 1);
  s_refused("street_office", "wrong_state", "sign %s", b);
  s_is(s_acted("street_office", "resolve %s 配合完成", b), "dispatched", vb + 2);
  o = s_order(b);
  json_object *part = json_object_array_get_idx(json_object_object_get(o, "parts"), 0);
  assert_string_equal(s_str(part, "party"), "street_office");
  assert_non_null(s_str(part, "signed_at"));
  assert_non_null(s_str(part, "done_at"));
  json_object_put(o);
  s_refused("transport", "bad_reason", "return %s lazy 不想做", b);
  out = s_desk(&st, "transport", "return %s not_ours", b);
  assert_int_equal(st, 2);
  free(out);
  s_is(s_acted("transport", "return %s not_ours 护栏归街道管", b), "returned", vb + 3);
  out = s_desk(&st, "center", "--json list --state returned");
  assert_non_null(strstr(out, b));
  free(out);
  s_refused("transport", "wrong_state", "sign %s", b);
  s_refused("center", "unknown_party", "assign %s --lead nobody 改派", b);
  o = s_acted("center", "assign %s --lead street_office --co transport 由街道管理办牵头", b);
  assert_string_equal(s_str(s_jorder(o), "lead"), "street_office");
  assert_int_equal(s_jint(s_jorder(o), "returns"), 1);
  s_is(o, "dispatched", vb + 4);
  o = s_order(b);
  assert_int_equal(json_object_array_length(json_object_object_get(o, "parts")), 0);
  json_object_put(o);
  s_is(s_acted("transport", "sign %s", b), "dispatched", vb + 5);
  s_is(s_acted("street_office", "sign %s", b), "signed", vb + 6);

  /* The center's queue: void, and an assignment that sets class and level */
  o = s_order(c);
  assert_string_equal(s_str(o, "lead"), "center");
  json_object_put(o);
  s_is(s_acted("center", "void %s test 测试电话", c), "void", s_version(c) + 1);
  s_refused("center", "wrong_state", "assign %s --lead water 改派", c);
  o = s_acted("center", "assign %s --lead housing --class public_housing --level 1 --color red 查楼道异味", d);
  assert_string_equal(s_str(s_jorder(o), "class"), "public_housing");
  assert_int_equal(s_jint(s_jorder(o), "level"), 1);
  /* level 1's clocks, from now: the new lead's sign-for clock and the level's three */
  assert_int_equal(json_object_array_length(json_object_object_get(s_jorder(o), "deadlines")), 4);
  assert_non_null(s_clock(s_jorder(o), "sign_for"));
  assert_non_null(s_clock(s_jorder(o), "follow_up"));
  json_object_put(o);

  /* The timeline names each actor and role; the internal note is there
   * for the parties, the public one went to the reporter. */
  o = s_order(a);
  json_object *tl = json_object_object_get(o, "timeline");
  int signs = 0, internal = 0;
  for (size_t i = 0; i < json_object_array_length(tl); i++) {
    json_object *e = json_object_array_get_idx(tl, i);
    if (!strcmp(s_str(e, "kind"), "sign")) {
      assert_string_equal(s_str(e, "actor"), "transport");
      assert_string_equal(s_str(e, "role"), "lead");
      signs++;
    }
    if (s_str(e, "internal_note") && !strcmp(s_str(e, "internal_note"), "需采购材料")) internal++;
  }
  assert_int_equal(signs, 2);
  assert_int_equal(internal, 1);
  json_object_put(o);

  /* Every action on A is on the center's feed and transport's, once. */
  char sql[256];
  snprintf(sql, sizeof sql, "SELECT count(*) FROM feed WHERE ticket_id = '%s' AND kind = 'acted'"
                            " AND party = 'center'", a);
  s_wait_count(notify, sql, 10, 10, 20);
  snprintf(sql, sizeof sql, "SELECT count(*) FROM feed WHERE ticket_id = '%s' AND kind = 'acted'"
                            " AND party = 'transport'", a);
  s_wait_count(notify, sql, 10, 10, 20);
  /* B's return went to the center; after the assignment transport sees it as co */
  snprintf(sql, sizeof sql, "SELECT count(*) FROM feed WHERE ticket_id = '%s' AND party = 'street_office'"
                            " AND kind = 'acted' AND role = 'lead'", b);
  s_wait_count(notify, sql, 1, LONG_MAX, 20);

  /* The reporter hears each step once: the receipt, signed, the progress,
   * the new date, the result, reopened, signed, the result, closed,
   * reopened. The internal note never reaches them. */
  snprintf(sql, sizeof sql, "SELECT count(*) FROM delivery WHERE ticket_id = '%s'", a);
  s_wait_count(notify, sql, 10, 10, 20);
  char log[1024];
  snprintf(log, sizeof log, "%s/loop/sink/reporter.txt", s_var);
  for (int i = 0; i < 100; i++) {
    out = s_capture(&st, "grep -c 'ticket=%s' %s", a, log);
    int n = atoi(out);
    free(out);
    if (n >= 10) break;
    usleep(100000);
  }
  out = s_capture(&st, "grep 'ticket=%s' %s", a, log);
  int lines = 0;
  for (char *p = out; (p = strchr(p, '\n')); p++) lines++;
  assert_int_equal(lines, 10);
  /* each from its template in messages.conf, named by its stable id, the
   * lead by its name on the org chart */
  assert_non_null(strstr(out, "\tmsg=rpt-accepted\t您反映的问题已受理（工单 "));
  assert_non_null(strstr(out, "\tmsg=rpt-signed\t"));
  assert_non_null(strstr(out, "已由区交通委签收"));
  assert_non_null(strstr(out, "\tmsg=rpt-extended\t"));
  assert_non_null(strstr(out, "\tmsg=rpt-resolved\t"));
  assert_null(strstr(out, "已由transport"));
  assert_non_null(strstr(out, "已派人到现场"));
  assert_non_null(strstr(out, "人行道已补齐"));
  assert_non_null(strstr(out, "办理时限延至"));
  assert_non_null(strstr(out, "已结案"));
  assert_null(strstr(out, "需采购材料"));
  free(out);
  out = s_capture(&st, "grep 'ticket=%s' %s", c, log);
  assert_non_null(strstr(out, "无效处理"));
  free(out);
  /* The sink sends to the real number, which notify asked intake for at
   * each attempt: every line of A's goes to it. The number is nowhere else:
   * not in notify's or dispatch's database, not in any service's log. */
  out = s_capture(&st, "grep -c 'ticket=%s\tto=13911112001\t' %s", a, log);
  assert_int_equal(atoi(out), 10);
  free(out);
  assert_int_equal(s_count(notify, "SELECT count(*) FROM delivery WHERE recipient LIKE '%13911112001%'"
                                   " OR body LIKE '%13911112001%'"), 0);
  wh_pg_t *dispatch = s_db("loop", "WHISTLE_DISPATCH_DB");
  assert_int_equal(s_count(dispatch, "SELECT count(*) FROM work_order WHERE reporter_masked LIKE '%13911112001%'"), 0);
  wh_pg_destroy(&dispatch);
  out = s_capture(&st, "grep -rl 13911112001 %s/loop/log | wc -l", s_var);
  assert_int_equal(atoi(out), 0);
  free(out);
  /* A key other than notify's is not given the numbers: the center's is
   * refused, and the answer holds none. */
  void *zc = zmq_ctx_new();
  void *cs = s_sock(zc, ZMQ_DEALER, "loop", "WHISTLE_CONTACTS", "center");
  char *ctk[1] = {a};
  Whistle__ContactRequest cq = WHISTLE__CONTACT_REQUEST__INIT;
  cq.ticket_ids = ctk;
  cq.n_ticket_ids = 1;
  Whistle__Envelope ce = WHISTLE__ENVELOPE__INIT;
  ce.message_id = "ask-1";
  ce.body_case = WHISTLE__ENVELOPE__BODY_CONTACT;
  ce.contact = &cq;
  uint8_t *cbuf;
  size_t clen;
  assert_int_equal(wh_env_pack(&ce, &cbuf, &clen), 0);
  assert_true(zmq_send(cs, cbuf, clen, 0) >= 0);
  free(cbuf);
  int tmo = 5000;
  zmq_setsockopt(cs, ZMQ_RCVTIMEO, &tmo, sizeof tmo);
  zmq_msg_t cm;
  zmq_msg_init(&cm);
  assert_true(zmq_msg_recv(&cm, cs, 0) >= 0);
  Whistle__Envelope *cr = NULL;
  assert_int_equal(wh_env_unpack(zmq_msg_data(&cm), zmq_msg_size(&cm), &cr), 0);
  assert_int_equal(cr->body_case, WHISTLE__ENVELOPE__BODY_CONTACT_REPLY);
  assert_non_null(cr->contact_reply->error);
  assert_int_equal(cr->contact_reply->error->code, WHISTLE__ERROR_CODE__ERR_FORBIDDEN);
  assert_int_equal(cr->contact_reply->n_contacts, 0);
  wh_env_free(cr);
  zmq_msg_close(&cm);
  zmq_close(cs);
  zmq_ctx_term(zc);
  wh_pg_destroy(&notify);
  s_stack("loop", "down");
}


/* ---- the loop under kill -9 ---------------------------------------------- */

#define KILL_ORDERS 200

/* One action until it is answered: a request the desk never answered
 * (dispatch killed), or answered "internal" (its database killed), is sent
 * again under the same request id. Returns 0 once taken, -1 when refused. */
static int s_act_surely(const char *as, const char *rid, const char *args) {
  for (int tries = 0; tries < 200; tries++) {
    int st;
    char *out = s_capture(&st, "WHISTLE_STATE=%s/kill/stack.env %s/whistlectl --as %s"
                               " --request-id %s %s 2>&1", s_var, s_bin, as, rid, args);
    int again = st == 2 || (st == 1 && strstr(out, ": internal: "));
    if (st == 0) {
      free(out);
      return 0;
    }
    if (!again) {
      fprintf(stderr, "%s as %s (%s): exit %d: %s\n", args, as, rid, st, out);
      free(out);
      return -1;
    }
    free(out);
    usleep(200 * 1000);
  }
  return -1;
}

/* Orders moving through their life (signed, resolved, feedback that closes
 * them) while every service and PostgreSQL are killed with SIGKILL in
 * turn and started again: every action takes effect exactly once, its
 * version, its timeline event, its feed item and the reporter's message. */
static void loop_under_kill(void **state) {
  (void)state;
  s_stack("kill", "up");
  char path[1024], now[40];
  snprintf(path, sizeof path, "%s/kill/reports.jsonl", s_var);
  wh_time_format(wh_clock_now_ms(), now, sizeof now);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  for (int i = 0; i < KILL_ORDERS; i++)
    fprintf(f, "{\"source\":\"hotline\",\"external_id\":\"k-%d\",\"received_at\":\"%s\","
               "\"community\":\"wenhan\",\"grid\":\"wenhan-%d\",\"category\":\"sidewalk\","
               "\"text\":\"人行道缺了一段（第%d号）\",\"reporter\":{\"name\":\"测\",\"phone\":\"139%08d\"}}\n",
            i, now, i, i, i);
  fclose(f);
  int st;
  char *out = s_capture(&st, CTL("kill") " --as hotline submit < %s", s_var, s_bin, path);
  assert_int_equal(st, 0);
  json_object *answers = s_lines(out);
  free(out);
  assert_int_equal(json_object_array_length(answers), KILL_ORDERS);
  wh_pg_t *dispatch = s_db("kill", "WHISTLE_DISPATCH_DB");
  s_wait_orders(dispatch, KILL_ORDERS, 60);
  wh_pg_destroy(&dispatch);

  /* A clerk, and the hotline, work through every order while the parent
   * kills. */
  pid_t pid = fork();
  if (pid == 0) {
    static const struct { const char *as, *verb, *rid; } steps[] = {
        {"transport", "sign %s", "sign"},
        {"transport", "resolve %s 人行道已补齐", "resolve"},
        {"hotline", "feedback %s satisfied 满意", "feedback"}};
    for (size_t k = 0; k < 3; k++)
      for (int i = 0; i < KILL_ORDERS; i++) {
        const char *t = s_str(json_object_array_get_idx(answers, (size_t)i), "ticket_id");
        char args[256], rid[96];
        snprintf(args, sizeof args, steps[k].verb, t);
        snprintf(rid, sizeof rid, "kill-%s-%s", steps[k].rid, t);
        if (s_act_surely(steps[k].as, rid, args)) _exit(1);
      }
    _exit(0);
  }
  static const char *victims[] = {"dispatch", "postgres", "notify", "intake", "triage"};
  int done = 0, kills = 0;
  for (int v = 0; !done; v = (v + 1) % 5) {
    usleep(500 * 1000);
    if (waitpid(pid, &st, WNOHANG) == pid) break;
    char cmd[64];
    snprintf(cmd, sizeof cmd, "kill %s", victims[v]);
    s_stack("kill", cmd);
    kills++;
    usleep(300 * 1000);
    snprintf(cmd, sizeof cmd, "start %s", victims[v]);
    s_stack("kill", cmd);
    if (waitpid(pid, &st, WNOHANG) == pid) done = 1;
  }
  if (!done) waitpid(pid, &st, 0);
  print_message("%d kills while %d orders were signed, resolved and closed\n", kills, KILL_ORDERS);
  assert_true(kills >= 5); /* each of the five at least once, while the actions went on */
  assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  json_object_put(answers);

  /* Each action once: every order closed at version 4 (dispatched, signed,
   * resolved, closed), one timeline event per action. */
  dispatch = s_db("kill", "WHISTLE_DISPATCH_DB");
  wh_pg_t *notify = s_db("kill", "WHISTLE_NOTIFY_DB");
  assert_int_equal(s_count(dispatch, "SELECT count(*) FROM work_order WHERE state = 'closed' AND version = 4"),
                   KILL_ORDERS);
  assert_int_equal(s_count(dispatch, "SELECT count(*) FROM (SELECT ticket_id, kind FROM timeline"
                                     " WHERE kind IN ('sign', 'resolve', 'feedback')"
                                     " GROUP BY ticket_id, kind HAVING count(*) = 1) x"), 3 * KILL_ORDERS);
  assert_int_equal(s_count(dispatch, "SELECT count(*) FROM timeline WHERE kind IN ('sign', 'resolve', 'feedback')"),
                   3 * KILL_ORDERS);
  /* ... on the lead's feed once each, and the reporter told once each:
   * the receipt, signed, the result, closed. */
  s_wait_count(notify, "SELECT count(*) FROM feed WHERE kind = 'acted' AND role = 'lead'",
               3 * KILL_ORDERS, 3 * KILL_ORDERS, 60);
  assert_int_equal(s_count(notify, "SELECT count(*) FROM (SELECT 1 FROM feed GROUP BY ticket_id, party, version HAVING count(*) > 1) d"), 0);
  s_wait_count(notify, "SELECT count(*) FROM delivery", 4 * KILL_ORDERS, 4 * KILL_ORDERS, 60);
  s_wait_count(notify, "SELECT count(*) FROM delivery_status WHERE state = 'sent'", 4 * KILL_ORDERS,
               4 * KILL_ORDERS, 60);
  wh_pg_destroy(&notify);
  wh_pg_destroy(&dispatch);
  s_stack("kill", "down");
}

/* ---- the clocks, with time moved ----------------------------------------- */

static int64_t s_t(const char *rfc3339) {
  int64_t ms;
  assert_int_equal(wh_time_parse(rfc3339, &ms), 0);
  return ms;
}

/* Moves every service of the "clock" stack to business time `at` (and
 * keeps the offset in the environment, for a service started again). */
static void s_clock_to(int64_t at) {
  long long off = (long long)((at - wh_clock_now_ms()) / 1000);
  char v[32];
  snprintf(v, sizeof v, "%lld", off);
  setenv("WHISTLE_CLOCK_OFFSET_S", v, 1);
  char when[40];
  wh_time_format(at, when, sizeof when);
  int st;
  char *out = s_desk(&st, "center", "clock %s", when);
  if (st != 0) fail_msg("clock %s: exit %d: %s", when, st, out);
  free(out);
}

/* Feed items of kind on party's feed for ticket, once notify has them:
 * waits (up to 10 s) for at least `want`, then a moment more for any
 * beyond it, and returns how many there are. */
static long s_items(wh_pg_t *notify, const char *party, const char *kind, const char *ticket,
                    long want) {
  char q[512];
  snprintf(q, sizeof q,
           "SELECT count(*) FROM feed WHERE party = '%s' AND kind = '%s' AND ticket_id = '%s'",
           party, kind, ticket);
  long n = 0;
  for (int i = 0; i < 100 && (n = s_count(notify, q)) < want; i++) usleep(100000);
  usleep(300000);
  return s_count(notify, q);
}

/* The clocks on the running stack with the business clock moved while it
 * runs, never slept for: reminders at 50% of the allowed time, a lapse, the
 * ladder's three steps (the community's secretary at the lapse, the street's
 * leader 4 hours on, the district at the end of the next working day, which
 * National Day pushes to 8 October), the feedback window over a make-up
 * Saturday: each once, at the right business time, across a kill -9 and
 * restart of dispatch in the middle. */
static void clock_life(void **state) {
  (void)state;
  s_desk_stack = "clock";
  int64_t t0 = s_t("2026-09-30T10:00:00+08:00"); /* the eve of National Day */
  char v[32];
  snprintf(v, sizeof v, "%lld", (long long)((t0 - wh_clock_now_ms()) / 1000));
  setenv("WHISTLE_TEST_CLOCK", "1", 1);
  setenv("WHISTLE_CLOCK_OFFSET_S", v, 1);
  /* its own copy of the configuration, which the test changes */
  char conf[1024];
  snprintf(conf, sizeof conf, "%s/clock-conf", s_var);
  assert_int_equal(s_sh("rm -rf %s && mkdir -p %s && cp -r %s/deploy/demo %s", conf, s_var, s_root, conf), 0);
  setenv("WHISTLE_CONF_DIR", conf, 1);
  s_stack("clock", "up");
  wh_pg_t *notify = s_db("clock", "WHISTLE_NOTIFY_DB");
  char path[1024];
  snprintf(path, sizeof path, "%s/clock/reports.jsonl", s_var);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  /* Two level-2 reports, each for transport with street_office as co-party. */
  fprintf(f, "{\"source\":\"hotline\",\"external_id\":\"clk-a\",\"received_at\":\"2026-09-30T10:00:00+08:00\","
        "\"community\":\"wenhan\",\"grid\":\"wenhan-3\",\"address\":\"文诚路\",\"category\":\"sidewalk\","
        "\"text\":\"人行道缺了一段，老人只能走马路\",\"reporter\":{\"name\":\"李女士\",\"phone\":\"13911113001\"}}\n"
        "{\"source\":\"hotline\",\"external_id\":\"clk-b\",\"received_at\":\"2026-09-30T10:00:00+08:00\","
        "\"community\":\"wenhan\",\"grid\":\"wenhan-3\",\"address\":\"文涵路\",\"category\":\"guardrail\","
        "\"text\":\"护栏出入口太远，商户卸货绕路\",\"reporter\":{\"name\":\"王店主\",\"phone\":\"13911113002\"}}\n");
  fclose(f);
  int st;
  char *out = s_capture(&st, CTL("clock") " --as hotline submit < %s", s_var, s_bin, path);
  assert_int_equal(st, 0);
  json_object *answers = s_lines(out);
  free(out);
  char a[32], b[32];
  snprintf(a, sizeof a, "%s", s_str(json_object_array_get_idx(answers, 0), "ticket_id"));
  snprintf(b, sizeof b, "%s", s_str(json_object_array_get_idx(answers, 1), "ticket_id"));
  json_object_put(answers);
  s_await(a);
  s_await(b);

  /* The clocks frozen onto the order: sign for in 4 hours, resolve within
   * 5 working days, which the holiday carries to 13 October. */
  json_object *o = s_order(b);
  assert_string_equal(s_str(o, "lead"), "transport");
  assert_non_null(strstr(s_str(s_clock(o, "sign_for"), "due_at"), "2026-09-30T14:00"));
  assert_non_null(strstr(s_str(s_clock(o, "sign_for"), "remind_at"), "2026-09-30T12:00"));
  assert_non_null(s_clock(o, "sign_for:street_office"));
  assert_string_equal(s_str(s_clock(o, "resolve"), "due_at"), "2026-10-13T23:59:59+08:00");
  assert_non_null(json_object_object_get(o, "policy"));
  json_object_put(o);
  assert_int_equal(s_items(notify, "transport", "reminder", b, 0), 0);

  /* Two hours on: half the sign-for time has passed; one reminder each,
   * the co-party's for its own part. */
  s_clock_to(t0 + 2 * 3600000 + 60000);
  assert_int_equal(s_items(notify, "transport", "reminder", a, 1), 1);
  assert_int_equal(s_items(notify, "transport", "reminder", b, 1), 1);
  assert_int_equal(s_items(notify, "street_office", "reminder", b, 1), 1);
  s_is(s_acted("transport", "sign %s", a), "signed", s_version(a) + 1);
  s_is(s_acted("street_office", "sign %s", a), "signed", s_version(a) + 1);

  /* Past the sign-for time: B lapses (the 80% reminder, come meanwhile, is
   * not sent), and the ladder's first step reaches the community's
   * secretary at once. A was signed for, by both: nothing. */
  s_clock_to(t0 + 4 * 3600000 + 120000);
  assert_int_equal(s_items(notify, "center", "overdue", b, 1), 1);
  assert_int_equal(s_items(notify, "street_office", "overdue", b, 1), 1);
  assert_int_equal(s_items(notify, "wenhan.secretary", "supervisor", b, 1), 1);
  assert_int_equal(s_items(notify, "transport", "reminder", b, 0), 1);
  assert_int_equal(s_items(notify, "center", "overdue", a, 0), 0);
  o = s_order(b);
  json_object *esc = json_object_object_get(o, "escalations");
  assert_int_equal(json_object_array_length(esc), 1);
  assert_string_equal(s_str(json_object_array_get_idx(esc, 0), "party"), "wenhan.secretary");
  assert_string_equal(s_str(json_object_array_get_idx(esc, 0), "by"), "clock");
  assert_non_null(strstr(s_str(o, "ladder_next"), "2026-09-30T18:0"));
  json_object_put(o);
  /* The step's party reads the order; not another one. */
  out = s_desk(&st, "wenhan.secretary", "--json show %s", b);
  assert_int_equal(st, 0);
  assert_non_null(strstr(out, "\"your_roles\":\"supervisor\""));
  free(out);
  s_refused("wenhan.secretary", "forbidden", "show %s", a);

  /* dispatch killed and started again: the clocks are re-armed from the
   * database and nothing fired fires again. */
  s_stack("clock", "kill dispatch");
  s_stack("clock", "start dispatch");
  s_await(b);
  assert_int_equal(s_items(notify, "wenhan.secretary", "supervisor", b, 0), 1);
  assert_int_equal(s_items(notify, "transport", "reminder", a, 0), 1);

  /* Four hours after the first step: the street's leader. */
  s_clock_to(t0 + 8 * 3600000 + 180000);
  assert_int_equal(s_items(notify, "street_leader", "supervisor", b, 1), 1);
  /* The third step waits for the end of the next working day after that
   * one: 1-7 October are holidays, so 8 October. On the 7th, nothing yet;
   * half of A's resolve time has passed, which is its second reminder. */
  s_clock_to(s_t("2026-10-07T12:00:00+08:00"));
  assert_int_equal(s_items(notify, "transport", "reminder", a, 2), 2);
  assert_int_equal(s_items(notify, "district", "supervisor", b, 0), 0);
  s_clock_to(s_t("2026-10-09T00:01:00+08:00"));
  assert_int_equal(s_items(notify, "district", "supervisor", b, 1), 1);
  o = s_order(b);
  assert_int_equal(json_object_array_length(json_object_object_get(o, "escalations")), 3);
  assert_null(json_object_object_get(o, "ladder_next"));
  json_object_put(o);
  s_refused("center", "wrong_state", "supervise %s 再督办", b);

  /* The center supervises A, which never lapsed: the first step, now. */
  o = s_acted("center", "supervise %s 请社区督促", a);
  esc = json_object_object_get(s_jorder(o), "escalations");
  assert_int_equal(json_object_array_length(esc), 1);
  assert_string_equal(s_str(json_object_array_get_idx(esc, 0), "by"), "center");
  json_object_put(o);
  assert_int_equal(s_items(notify, "wenhan.secretary", "supervisor", a, 1), 1);

  /* A resolved on Friday 9 October: its feedback window is 1 working day,
   * which is the make-up Saturday. Nobody gives feedback; when it passes,
   * the center gets the item, once, and may close. */
  s_is(s_acted("transport", "resolve %s 已补齐人行道", a), "resolved", s_version(a) + 1);
  o = s_order(a);
  assert_string_equal(s_str(s_clock(o, "feedback"), "due_at"), "2026-10-10T23:59:59+08:00");
  json_object_put(o);
  s_refused("center", "wrong_state", "close %s 结案", a);

  /* clocks.conf changed and reloaded (SIGHUP): level 2 signs for in 2
   * hours now. A new order runs on the new clocks; B keeps those it was
   * dispatched with, across a restart too. A file with a mistake is
   * refused, and the clocks in force stay. */
  o = s_order(b);
  int old_policy = s_jint(o, "policy");
  char b_sign[64];
  snprintf(b_sign, sizeof b_sign, "%s", s_str(s_clock(o, "sign_for"), "due_at"));
  json_object_put(o);
  assert_int_equal(s_sh("sed -i 's/sign_for = \"4 hours\"/sign_for = \"2 hours\"/' %s/clocks.conf", conf), 0);
  assert_int_equal(s_sh("kill -HUP $(cat %s/clock/run/dispatch.pid)", s_var), 0);
  for (int i = 0; i < 50 && s_sh("grep -q 'org chart and catalogue reloaded' %s/clock/log/dispatch.log", s_var); i++)
    usleep(100000);
  assert_int_equal(s_sh("grep -q 'org chart and catalogue reloaded' %s/clock/log/dispatch.log", s_var), 0);
  snprintf(path, sizeof path, "%s/clock/later.jsonl", s_var);
  f = fopen(path, "w");
  assert_non_null(f);
  fprintf(f, "{\"source\":\"hotline\",\"external_id\":\"clk-c\",\"received_at\":\"2026-10-09T00:00:30+08:00\","
        "\"community\":\"wenhan\",\"grid\":\"wenhan-3\",\"address\":\"文诚路\",\"category\":\"sidewalk\","
        "\"text\":\"人行道又缺了一段\",\"reporter\":{\"name\":\"李女士\",\"phone\":\"13911113003\"}}\n");
  fclose(f);
  out = s_capture(&st, CTL("clock") " --as hotline submit < %s", s_var, s_bin, path);
  assert_int_equal(st, 0);
  answers = s_lines(out);
  free(out);
  char c[32];
  snprintf(c, sizeof c, "%s", s_str(json_object_array_get_idx(answers, 0), "ticket_id"));
  json_object_put(answers);
  s_await(c);
  o = s_order(c);
  assert_true(s_jint(o, "policy") > old_policy);
  assert_non_null(strstr(s_str(s_clock(o, "sign_for"), "due_at"), "2026-10-09T02:0"));
  json_object_put(o);
  s_stack("clock", "kill dispatch");
  s_stack("clock", "start dispatch");
  s_await(b);
  o = s_order(b);
  assert_int_equal(s_jint(o, "policy"), old_policy);
  assert_string_equal(s_str(s_clock(o, "sign_for"), "due_at"), b_sign);
  json_object_put(o);
  assert_int_equal(s_sh("sed -i 's/^reminders = \\[50, 80\\];/reminders = [80, 50];/' %s/clocks.conf", conf), 0);
  assert_int_equal(s_sh("kill -HUP $(cat %s/clock/run/dispatch.pid)", s_var), 0);
  /* The refusal is the reload's last line: the reason comes before it. */
  for (int i = 0; i < 100 && s_sh("grep -q 'reload refused' %s/clock/log/dispatch.log", s_var); i++)
    usleep(100000);
  assert_int_equal(s_sh("grep -q 'reload refused' %s/clock/log/dispatch.log", s_var), 0);
  assert_int_equal(s_sh("grep -q 'clocks.conf:.*reminders' %s/clock/log/dispatch.log", s_var), 0);

  s_clock_to(s_t("2026-10-11T08:00:00+08:00"));
  assert_int_equal(s_items(notify, "center", "feedback_due", a, 1), 1);
  s_is(s_acted("center", "close %s 回访未接通，结案", a), "closed", s_version(a) + 1);
  assert_int_equal(s_items(notify, "transport", "reminder", a, 0), 2);
  assert_int_equal(s_items(notify, "center", "feedback_due", a, 0), 1);

  wh_pg_destroy(&notify);
}

/* clock_life's stack down and its environment gone, passed or failed: a
 * failure must not leave the later stacks on its changed configuration. */
static int s_clock_teardown(void **state) {
  (void)state;
  s_sh("WHISTLE_VAR=%s/clock WHISTLE_BIN=%s %s/deploy/local/stack.sh down >/dev/null 2>&1", s_var, s_bin,
       s_root);
  unsetenv("WHISTLE_TEST_CLOCK");
  unsetenv("WHISTLE_CLOCK_OFFSET_S");
  unsetenv("WHISTLE_CONF_DIR");
  s_desk_stack = "loop";
  return 0;
}

/* A service whose configuration is broken refuses to start, says which file
 * and line, and goes without leaving a thing unfreed (the sanitized build's
 * leak check runs at its exit); with the file mended it starts. Each
 * service: the file it reads first that the others do not break. */
static void bad_config_at_start(void **state) {
  (void)state;
  char conf[1024];
  snprintf(conf, sizeof conf, "%s/badconf-conf", s_var);
  assert_int_equal(s_sh("rm -rf %s && mkdir -p %s && cp -r %s/deploy/demo %s", conf, s_var, s_root, conf), 0);
  setenv("WHISTLE_CONF_DIR", conf, 1);
  s_stack("badconf", "up");
  static const struct {
    const char *svc, *file;
  } cases[] = {{"intake", "rules.conf"}, {"triage", "catalogue.conf"}, {"dispatch", "clocks.conf"},
               {"notify", "messages.conf"}, {"dispatch", "catalogue.conf"}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const char *svc = cases[i].svc, *file = cases[i].file;
    char log[1200];
    snprintf(log, sizeof log, "%s/badconf/log/%s.log", s_var, svc);
    print_message("%s with a broken %s\n", svc, file);
    s_sh("WHISTLE_VAR=%s/badconf WHISTLE_BIN=%s %s/deploy/local/stack.sh kill %s >/dev/null", s_var, s_bin,
         s_root, svc);
    assert_int_equal(s_sh(": > %s && cp %s/%s %s/%s.good && echo 'this line = is not a setting' >> %s/%s",
                          log, conf, file, conf, file, conf, file), 0);
    assert_int_not_equal(s_sh("WHISTLE_VAR=%s/badconf WHISTLE_BIN=%s %s/deploy/local/stack.sh start %s "
                              ">/dev/null 2>&1", s_var, s_bin, s_root, svc), 0);
    assert_int_equal(s_sh("grep -q '%s:[0-9]' %s", file, log), 0);
    assert_int_not_equal(s_sh("grep -qE 'Sanitizer|runtime error' %s", log), 0);
    assert_int_equal(s_sh("mv %s/%s.good %s/%s", conf, file, conf, file), 0);
    char start[64];
    snprintf(start, sizeof start, "start %s", svc);
    s_stack("badconf", start);
  }
  s_stack("badconf", "down");
  unsetenv("WHISTLE_CONF_DIR");
}

/* Submits one report as the hotline on stack name; returns its ticket. */
static void s_submit_one(const char *name, const char *ext, const char *community, const char *text,
                         char *ticket, size_t len) {
  char now[40];
  wh_time_format(wh_clock_now_ms(), now, sizeof now);
  int st;
  char *out = s_capture(&st, "printf '%%s\\n' '{\"source\":\"hotline\",\"external_id\":\"%s\",\"received_at\":\"%s\","
                             "\"community\":\"%s\",\"grid\":\"%s-1\",\"text\":\"%s\","
                             "\"reporter\":{\"name\":\"测\",\"phone\":\"13911113001\"}}'"
                             " | WHISTLE_STATE=%s/%s/stack.env %s/whistlectl --as hotline submit 2>&1",
                        ext, now, community, community, text, s_var, name, s_bin);
  if (st != 0) fail_msg("submit %s: %s", ext, out);
  json_object *answers = s_lines(out);
  free(out);
  snprintf(ticket, len, "%s", s_str(json_object_array_get_idx(answers, 0), "ticket_id"));
  json_object_put(answers);
}

/* The kinds of an order's timeline entries by triage, as show gives them. */
static int s_has_entry(const char *ticket, const char *kind, const char *says) {
  json_object *o = s_order(ticket);
  json_object *tl = json_object_object_get(o, "timeline");
  int found = 0;
  for (size_t i = 0; i < json_object_array_length(tl) && !found; i++) {
    json_object *e = json_object_array_get_idx(tl, i);
    found = !strcmp(s_str(e, "kind"), kind) && !strcmp(s_str(e, "actor"), "triage") &&
            strstr(s_str(e, "note"), says) != NULL;
  }
  json_object_put(o);
  return found;
}

/* The center teaches triage: an order from its manual queue assigned with
 * --class becomes an example of the class; a report much like it is routed
 * by it (the timeline says so), one less alike comes to the center with the
 * class suggested, a restart of triage keeps what it learned, and the
 * center's last word on a ticket stands. A class the catalogue lacks is
 * refused and teaches nothing. */
static void learned_from_the_center(void **state) {
  (void)state;
  s_stack("learn", "up");
  s_desk_stack = "learn";
  wh_pg_t *triage = s_db("learn", "WHISTLE_TRIAGE_DB");
  char a[32], b[32], c[32], d[32], e[32];
  s_submit_one("learn", "learn-a", "wenhan", "快递柜的屏幕一直黑着，取不了件", a, sizeof a);
  int va = s_await(a);
  json_object *o = s_order(a);
  assert_string_equal(s_str(o, "class"), "unplaced");
  assert_string_equal(s_str(o, "lead"), "center");
  json_object_put(o);
  s_refused("center", "bad_field", "assign %s --lead wenhan.pm --class no_such_class 物业处理", a);
  assert_int_equal(s_version(a), va);
  s_is(s_acted("center", "assign %s --lead wenhan.pm --class parcel_locker 快递柜归物业管", a), "dispatched",
       va + 1);
  char sql[512];
  snprintf(sql, sizeof sql, "SELECT count(*) FROM example WHERE ticket_id = '%s' AND klass = 'parcel_locker'"
                            " AND text = '快递柜的屏幕一直黑着，取不了件' AND prior_klass = 'unplaced'"
                            " AND taught_by = 'center' AND community = 'wenhan'", a);
  s_wait_count(triage, sql, 1, 1, 20);

  /* much like it: routed by the example, the lead the class's in its community */
  s_submit_one("learn", "learn-b", "xiangdong", "快递柜的屏幕一直黑着，取不了件，好几天了", b, sizeof b);
  s_await(b);
  o = s_order(b);
  assert_string_equal(s_str(o, "class"), "parcel_locker");
  assert_string_equal(s_str(o, "lead"), "xiangdong.pm");
  char like[64];
  snprintf(like, sizeof like, " like %s", a);
  if (strncmp(s_str(o, "rule"), "learned:parcel_locker ", 22) || !strstr(s_str(o, "rule"), like))
    fail_msg("%s: rule %s", b, s_str(o, "rule"));
  json_object_put(o);
  assert_true(s_has_entry(b, "learned", "routed as parcel_locker"));
  /* less alike: the center's queue, the class suggested on the timeline */
  s_submit_one("learn", "learn-c", "wenhan", "快递柜屏幕黑了，取不出快递", c, sizeof c);
  s_await(c);
  o = s_order(c);
  assert_string_equal(s_str(o, "class"), "unplaced");
  assert_string_equal(s_str(o, "lead"), "center");
  json_object_put(o);
  assert_true(s_has_entry(c, "suggested", "suggest parcel_locker"));
  /* and whistlectl triage shows the center what its examples say */
  int st;
  char *out = s_desk(&st, "center", "triage --community haide 快递柜屏幕黑了，取不出快递");
  assert_int_equal(st, 0);
  if (!strstr(out, "learned   parcel_locker 0.") || !strstr(out, "a suggestion")) fail_msg("%s", out);
  free(out);

  /* triage killed and started: the examples come back from its database */
  s_stack("learn", "kill triage");
  s_stack("learn", "start triage");
  s_submit_one("learn", "learn-d", "haide", "快递柜的屏幕一直黑着，取不了件，怎么办", d, sizeof d);
  s_await(d);
  o = s_order(d);
  assert_string_equal(s_str(o, "class"), "parcel_locker");
  assert_string_equal(s_str(o, "lead"), "haide.pm");
  json_object_put(o);

  /* the center changes its mind: its last class stands */
  s_is(s_acted("center", "assign %s --lead wenhan.pm --class facility_repair 设施报修", a), "dispatched",
       va + 2);
  snprintf(sql, sizeof sql, "SELECT count(*) FROM example WHERE ticket_id = '%s' AND klass = 'facility_repair'"
                            " AND prior_klass = 'parcel_locker'", a);
  s_wait_count(triage, sql, 1, 1, 20);
  assert_int_equal(s_count(triage, "SELECT count(*) FROM example"), 1);
  s_submit_one("learn", "learn-e", "wenhan", "快递柜的屏幕一直黑着，取不了件，还是没修", e, sizeof e);
  s_await(e);
  o = s_order(e);
  assert_string_equal(s_str(o, "class"), "facility_repair");
  json_object_put(o);
  wh_pg_destroy(&triage);
  s_stack("learn", "down");
  s_desk_stack = "loop";
}

/* intake gives the reporters' numbers late (stopped, then let go): a
 * message committed while notify waited for the numbers of messages it
 * had read back from the log goes out after them, not left pending. The
 * window is the wait for the numbers (two seconds): an action lands in it
 * when it commits after notify's log read began and before the numbers
 * come, which the times of notify's "in time" warnings bound. */
static long s_late_warnings(void) {
  int st;
  char *out = s_capture(&st, "grep -c 'did not give the reporters. numbers in time' %s/late/log/notify.log", s_var);
  long n = atol(out);
  free(out);
  return n;
}

static void notify_numbers_late(void **state) {
  (void)state;
  s_stack("late", "up");
  s_desk_stack = "late";
  wh_pg_t *notify = s_db("late", "WHISTLE_NOTIFY_DB");
  char now[40];
  wh_time_format(wh_clock_now_ms(), now, sizeof now);
  int st;
  char *out = s_capture(&st, "printf '%%s\\n' '{\"source\":\"hotline\",\"external_id\":\"late-a\",\"received_at\":\"%s\","
                             "\"community\":\"wenhan\",\"grid\":\"wenhan-3\",\"address\":\"文诚路\",\"category\":\"sidewalk\","
                             "\"text\":\"人行道缺了一段，老人只能走马路\",\"reporter\":{\"name\":\"李女士\",\"phone\":\"13911112001\"}}'"
                             " | " CTL("late") " --as hotline submit",
                        now, s_var, s_bin);
  assert_int_equal(st, 0);
  json_object *answers = s_lines(out);
  free(out);
  char a[32];
  snprintf(a, sizeof a, "%s", s_str(json_object_array_get_idx(answers, 0), "ticket_id"));
  json_object_put(answers);
  s_await(a);
  s_wait_count(notify, "SELECT count(*) FROM delivery_status WHERE state = 'sent'", 1, 1, 30);

  /* intake stops: the signing's message waits for its number, then waits
   * in the log, read back every half second and asked for again. */
  assert_int_equal(s_sh("kill -STOP $(cat %s/late/run/intake.pid)", s_var), 0);
  json_object_put(s_acted("transport", "sign %s", a));
  long deliveries = 2, landed = 0;
  for (int k = 0; k < 12 && !landed; k++) {
    long w = s_late_warnings();
    for (int i = 0; i < 100 && s_late_warnings() == w; i++) usleep(20 * 1000);
    int64_t seen = wh_clock_now_ms();
    usleep(700 * 1000); /* the next read of the log has begun */
    json_object_put(s_acted("transport", "progress %s 已派人到现场（第%d次）", a, k + 1));
    deliveries++;
    for (int i = 0; i < 200; i++) {
      if (s_count(notify, "SELECT count(*) FROM delivery") == deliveries) break;
      usleep(10 * 1000);
    }
    assert_int_equal(s_count(notify, "SELECT count(*) FROM delivery"), deliveries);
    landed = s_late_warnings() == w + 1 && wh_clock_now_ms() - seen < 1700;
  }
  assert_int_equal(s_sh("kill -CONT $(cat %s/late/run/intake.pid)", s_var), 0);
  print_message("a message committed during the wait for the numbers: %s, %ld messages\n",
                landed ? "yes" : "no", deliveries);
  assert_true(landed);
  /* Every message goes out, once, to the sink. */
  s_wait_count(notify, "SELECT count(*) FROM delivery_status WHERE state = 'sent'", deliveries, deliveries, 20);
  char *ids = s_capture(&st, "grep -o 'id=[0-9]*' %s/late/sink/reporter.txt | sort -u | wc -l", s_var);
  char *lines = s_capture(&st, "wc -l < %s/late/sink/reporter.txt", s_var);
  assert_int_equal(atol(ids), deliveries);
  assert_int_equal(atol(lines), deliveries);
  free(ids);
  free(lines);
  wh_pg_destroy(&notify);
  s_stack("late", "down");
  s_desk_stack = "loop";
}

int main(int argc, char **argv) {
  s_root = getenv("WHISTLE_ROOT");
  s_bin = getenv("WHISTLE_BIN");
  s_var = getenv("WHISTLE_E2E_VAR");
  if (!s_root || !s_bin || !s_var) {
    fprintf(stderr, "run through tests/run.sh (WHISTLE_ROOT, WHISTLE_BIN, WHISTLE_E2E_VAR)\n");
    return 2;
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(scenarios),
      cmocka_unit_test(bad_input),
      cmocka_unit_test(hostile_frames),
      cmocka_unit_test(restart),
      cmocka_unit_test(carried_built),
      cmocka_unit_test(authenticated),
      cmocka_unit_test(intake_lost_commit),
      cmocka_unit_test(repeat_waits_for_its_first),
      cmocka_unit_test(notify_sink_writes_each_once),
      cmocka_unit_test(parked_redrive),
      cmocka_unit_test(loop_life),
      cmocka_unit_test_teardown(clock_life, s_clock_teardown),
      cmocka_unit_test(loop_under_kill),
      cmocka_unit_test(notify_numbers_late),
      cmocka_unit_test(learned_from_the_center),
      cmocka_unit_test(bad_config_at_start),
  };
  if (argc > 1) cmocka_set_test_filter(argv[1]);
  return cmocka_run_group_tests_name("end-to-end", tests, NULL, NULL);
}
