/* whistlectl - what operators, department clerks and hotline integrators type.
 *
 *   whistlectl submit < reports.jsonl      push reports (scenario format), one JSON answer a line
 *   whistlectl show TICKET                 an order: routing, parts, deadlines, whole timeline
 *   whistlectl list [--mine] [--color C] [--level N] [--party P] [--state S] [--overdue]
 *                   [--extension pending] [--limit N] [--after CURSOR]
 *   whistlectl sign|progress|return|assign|uphold|extend|approve|refuse|resolve|feedback|
 *              close|reopen|void|supervise ID ...   act on an order at dispatch's desk
 *   whistlectl feed [PARTY] [--from N] [--follow]  a feed: one's own, or any for the center
 *   whistlectl parked                      (center) every service's parked messages, with why
 *   whistlectl redrive MESSAGE_ID          (center) send a parked message again, in order
 *   whistlectl clock TIME|OFFSET_S         (center, test stacks) move every service's clock
 *   whistlectl keygen [--dir D] [--org FILE] [--missing] [NAME...]  CURVE key pairs
 *
 * Every connection is CURVE, with the key pair of the party given by --as
 * (WHISTLE_AS; default the center) from the key directory (--keys,
 * WHISTLE_KEYS, or the stack's): a key the service does not know is refused
 * at the handshake, and whistlectl says `unauthenticated` at once.
 *
 * Human-readable output by default, --json everywhere; exit status 0 on
 * success, 1 when any report or request failed, 2 on bad usage or when the
 * stack cannot be reached. Where the stack is comes from flags, then
 * environment (WHISTLE_INTAKE, WHISTLE_NOTIFY, WHISTLE_FEED, WHISTLE_DESK,
 * WHISTLE_KEYS), then the state file `make up` writes (var/stack.env,
 * found from the current directory upwards, or WHISTLE_STATE). show, list
 * and the actions go through dispatch's desk, as the party --as names: no
 * database login is needed, and a party sees and acts on its own orders. */
#include "wh_clock.h"
#include "wh_codec.h"
#include "wh_err.h"
#include "wh_keys.h"
#include "wh_log.h"
#include "wh_org.h"
#include "wh_pg.h"
#include "wh_rules.h"
#include "wh_text.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

/* The services, in the order of the message path; each has an admin socket. */
static const char *const s_services[] = {"intake", "triage", "dispatch", "notify"};
#define NSERVICES 4

typedef struct {
  char intake[256], notify[256], feed[256], desk[256], ask[256], intake_db[512], keys[PATH_MAX - 128];
  char admin[NSERVICES][256]; /* WHISTLE_<SERVICE>_ADMIN */
  const char *as; /* the party whose key speaks */
  int json;
  void *zctx;
  int nmon;
  void *mon[4]; /* a monitor of each connection: a refused handshake shows there */
  const char *mon_server[4];
} s_ctx_t;

static void s_kv(s_ctx_t *c, const char *k, const char *v) {
  if (!strcmp(k, "WHISTLE_INTAKE")) snprintf(c->intake, sizeof c->intake, "%s", v);
  else if (!strcmp(k, "WHISTLE_NOTIFY")) snprintf(c->notify, sizeof c->notify, "%s", v);
  else if (!strcmp(k, "WHISTLE_FEED")) snprintf(c->feed, sizeof c->feed, "%s", v);
  else if (!strcmp(k, "WHISTLE_DESK")) snprintf(c->desk, sizeof c->desk, "%s", v);
  else if (!strcmp(k, "WHISTLE_TRIAGE_ASK")) snprintf(c->ask, sizeof c->ask, "%s", v);
  else if (!strcmp(k, "WHISTLE_INTAKE_DB")) snprintf(c->intake_db, sizeof c->intake_db, "%s", v);
  else if (!strcmp(k, "WHISTLE_KEYS")) snprintf(c->keys, sizeof c->keys, "%s", v);
  else if (!strcmp(k, "WHISTLE_INTAKE_ADMIN")) snprintf(c->admin[0], sizeof c->admin[0], "%s", v);
  else if (!strcmp(k, "WHISTLE_TRIAGE_ADMIN")) snprintf(c->admin[1], sizeof c->admin[1], "%s", v);
  else if (!strcmp(k, "WHISTLE_DISPATCH_ADMIN")) snprintf(c->admin[2], sizeof c->admin[2], "%s", v);
  else if (!strcmp(k, "WHISTLE_NOTIFY_ADMIN")) snprintf(c->admin[3], sizeof c->admin[3], "%s", v);
}

/* A socket of type to server's endpoint, a CURVE client with the key pair of
 * c->as, watched for a refused handshake (s_check_auth). Exits with status
 * 2 when the keys cannot be read. */
static void *s_socket(s_ctx_t *c, int type, const char *server, const char *endpoint) {
  if (!c->zctx) c->zctx = zmq_ctx_new();
  void *s = zmq_socket(c->zctx, type);
  int linger = 0;
  zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
  char secret[PATH_MAX], pub[PATH_MAX], err[PATH_MAX + 128];
  snprintf(secret, sizeof secret, "%s/%s.key", c->keys[0] ? c->keys : ".", c->as);
  snprintf(pub, sizeof pub, "%s/%s.pub", c->keys[0] ? c->keys : ".", server);
  if (wh_keys_client_files(s, secret, pub, err, sizeof err)) {
    fprintf(stderr, "whistlectl: keys of %s: %s (--as PARTY, --keys DIR)\n", c->as, err);
    exit(2);
  }
  if (c->nmon < (int)(sizeof c->mon / sizeof *c->mon)) {
    char ep[64];
    snprintf(ep, sizeof ep, "inproc://monitor-%d", c->nmon);
    /* Only a refusal of the key: a handshake cut short because the service
     * went away (NO_DETAIL) is a service restarting, which the request
     * survives (it waits for the service to come back). */
    zmq_socket_monitor(s, ep, ZMQ_EVENT_HANDSHAKE_FAILED_AUTH);
    void *m = zmq_socket(c->zctx, ZMQ_PAIR);
    zmq_setsockopt(m, ZMQ_LINGER, &linger, sizeof linger);
    zmq_connect(m, ep);
    c->mon_server[c->nmon] = server;
    c->mon[c->nmon++] = m;
  }
  if (zmq_connect(s, endpoint)) {
    fprintf(stderr, "whistlectl: cannot connect to %s: %s\n", endpoint, zmq_strerror(errno));
    exit(2);
  }
  return s;
}

/* Exits with status 1 saying `unauthenticated` if a service has refused
 * c->as's key: whatever was asked would wait for ever otherwise. */
static void s_check_auth(s_ctx_t *c) {
  for (int i = 0; i < c->nmon; i++) {
    zmq_msg_t ev;
    zmq_msg_init(&ev);
    int got = zmq_msg_recv(&ev, c->mon[i], ZMQ_DONTWAIT) >= 0;
    zmq_msg_close(&ev);
    if (!got) continue;
    fprintf(stderr, "whistlectl: unauthenticated: %s refused the key of %s\n", c->mon_server[i], c->as);
    exit(1);
  }
}

static void s_load_state(s_ctx_t *c) {
  char path[PATH_MAX] = "";
  const char *env = getenv("WHISTLE_STATE");
  if (env && *env) {
    snprintf(path, sizeof path, "%s", env);
  } else {
    char dir[PATH_MAX - 32];
    if (!getcwd(dir, sizeof dir)) return;
    for (;;) {
      snprintf(path, sizeof path, "%s/var/stack.env", dir);
      if (access(path, R_OK) == 0) break;
      char *slash = strrchr(dir, '/');
      if (!slash || slash == dir) {
        path[0] = '\0';
        break;
      }
      *slash = '\0';
    }
  }
  FILE *f = path[0] ? fopen(path, "r") : NULL;
  if (!f) return;
  char line[1024];
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = '\0';
    char *eq = strchr(line, '=');
    if (!eq || line[0] == '#') continue;
    *eq = '\0';
    char *v = eq + 1;
    size_t n = strlen(v);
    if (n >= 2 && v[0] == '\'' && v[n - 1] == '\'') {
      v[n - 1] = '\0';
      v++;
    }
    s_kv(c, line, v);
  }
  fclose(f);
}

static void s_load_env(s_ctx_t *c) {
  static const char *keys[] = {"WHISTLE_INTAKE", "WHISTLE_NOTIFY", "WHISTLE_FEED",
                               "WHISTLE_DESK", "WHISTLE_TRIAGE_ASK", "WHISTLE_INTAKE_DB", "WHISTLE_KEYS",
                               "WHISTLE_INTAKE_ADMIN", "WHISTLE_TRIAGE_ADMIN",
                               "WHISTLE_DISPATCH_ADMIN", "WHISTLE_NOTIFY_ADMIN"};
  for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
    const char *v = getenv(keys[i]);
    if (v && *v) s_kv(c, keys[i], v);
  }
}

/* "ERR_BAD_UTF8" -> "bad_utf8" */
static const char *s_code_name(int code, char *buf, size_t len) {
  const ProtobufCEnumValue *v =
      protobuf_c_enum_descriptor_get_value(&whistle__error_code__descriptor, code);
  const char *name = v ? v->name : "ERR_UNKNOWN";
  if (!strncmp(name, "ERR_", 4)) name += 4;
  size_t i = 0;
  for (; name[i] && i + 1 < len; i++) buf[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]);
  buf[i] = '\0';
  return buf;
}

/* ---- submit ------------------------------------------------------------ */

typedef struct {
  char *external_id;
  uint8_t *frame;
  size_t len;
  char msg_id[37];
  int64_t sent_ms, first_ms;
  int done;
  json_object *answer;
} s_sub_t;

/* The string under k: "" when absent or null, NULL when it is not a string
 * or holds a NUL (which would cut it short unseen). */
static const char *s_jstr(json_object *o, const char *k) {
  json_object *v;
  if (!json_object_object_get_ex(o, k, &v) || json_object_is_type(v, json_type_null)) return "";
  if (!json_object_is_type(v, json_type_string)) return NULL;
  const char *str = json_object_get_string(v);
  return strlen(str) == (size_t)json_object_get_string_len(v) ? str : NULL;
}

/* The member under k when present and not null, else NULL. */
static json_object *s_jget(json_object *o, const char *k) {
  json_object *v;
  return json_object_object_get_ex(o, k, &v) && !json_object_is_type(v, json_type_null) ? v : NULL;
}


static json_object *s_error_answer(const char *ext, const char *code, const char *text) {
  json_object *a = json_object_new_object();
  json_object_object_add(a, "external_id", ext ? json_object_new_string(ext) : NULL);
  json_object *e = json_object_new_object();
  json_object_object_add(e, "code", json_object_new_string(code));
  json_object_object_add(e, "text", json_object_new_string(text));
  json_object_object_add(a, "error", e);
  return a;
}

/* Builds the envelope for one scenario-format line; on a client-side error
 * sets s->answer and s->done instead. What is given in the wrong shape is
 * refused, never dropped: a reporter given as a bare name would otherwise go
 * unrecorded, and never hear back. */
static void s_build(s_sub_t *s, const char *line) {
  json_object *o = json_tokener_parse(line);
  if (!o || !json_object_is_type(o, json_type_object)) {
    s->answer = s_error_answer(NULL, "bad_json", "line is not a JSON object");
    s->done = 1;
    json_object_put(o);
    return;
  }
  const char *ext = s_jstr(o, "external_id");
  s->external_id = strdup(ext ? ext : "");
  const char *code = "bad_field", *why = NULL;
  char buf[96];
  const char *strs[] = {"source", "external_id", "received_at", "community", "grid",
                        "address", "category", "text"};
  for (size_t i = 0; i < sizeof strs / sizeof *strs && !why; i++)
    if (!s_jstr(o, strs[i])) {
      snprintf(buf, sizeof buf, "%s: must be a string (without NUL)", strs[i]);
      why = buf;
    }
  if (why) goto refuse;
  Whistle__SubmitTicket t = WHISTLE__SUBMIT_TICKET__INIT;
  Whistle__Reporter rep = WHISTLE__REPORTER__INIT;
  Whistle__Location loc = WHISTLE__LOCATION__INIT;
  t.source = wh_source_parse(s_jstr(o, "source"));
  t.external_id = (char *)s_jstr(o, "external_id");
  const char *at = s_jstr(o, "received_at");
  if (at[0] && wh_time_parse(at, &t.received_at_ms)) {
    code = "bad_time";
    why = "received_at: not an RFC 3339 time";
    goto refuse;
  }
  t.community = (char *)s_jstr(o, "community");
  t.grid = (char *)s_jstr(o, "grid");
  t.address = (char *)s_jstr(o, "address");
  t.category = (char *)s_jstr(o, "category");
  t.text = (char *)s_jstr(o, "text");
  json_object *r = s_jget(o, "reporter"), *tags = s_jget(o, "care_tags");
  json_object *lo = s_jget(o, "location"), *la = NULL, *ln = NULL;
  if (r) {
    if (!json_object_is_type(r, json_type_object) || !s_jstr(r, "name") || !s_jstr(r, "phone")) {
      why = "reporter: must be an object whose name and phone are strings";
      goto refuse;
    }
    rep.name = (char *)s_jstr(r, "name");
    rep.phone = (char *)s_jstr(r, "phone");
    t.reporter = &rep;
  }
  char *tagv[64];
  if (tags) {
    if (!json_object_is_type(tags, json_type_array)) {
      why = "care_tags: must be an array of strings";
      goto refuse;
    }
    size_t n = json_object_array_length(tags);
    if (n > sizeof tagv / sizeof *tagv) {
      code = "field_too_long";
      why = "care_tags: too many";
      goto refuse;
    }
    for (size_t i = 0; i < n; i++) {
      json_object *tg = json_object_array_get_idx(tags, i);
      if (!json_object_is_type(tg, json_type_string) ||
          strlen(json_object_get_string(tg)) != (size_t)json_object_get_string_len(tg)) {
        why = "care_tags: must be an array of strings";
        goto refuse;
      }
      tagv[t.n_care_tags++] = (char *)json_object_get_string(tg);
    }
    t.care_tags = tagv;
  }
  if (lo) {
    if (!json_object_is_type(lo, json_type_object) || !json_object_object_get_ex(lo, "lat", &la) ||
        !json_object_object_get_ex(lo, "lng", &ln) ||
        !(json_object_is_type(la, json_type_double) || json_object_is_type(la, json_type_int)) ||
        !(json_object_is_type(ln, json_type_double) || json_object_is_type(ln, json_type_int))) {
      code = "bad_location";
      why = "location: must be an object with numbers lat and lng";
      goto refuse;
    }
    loc.lat = json_object_get_double(la);
    loc.lng = json_object_get_double(ln);
    t.location = &loc;
  }
  Whistle__Envelope env = WHISTLE__ENVELOPE__INIT;
  wh_uuid(s->msg_id);
  env.message_id = s->msg_id;
  env.trace_id = s->msg_id;
  env.sender = "whistlectl";
  env.created_at_ms = wh_clock_now_ms();
  env.body_case = WHISTLE__ENVELOPE__BODY_SUBMIT;
  env.submit = &t;
  if (wh_env_pack(&env, &s->frame, &s->len)) {
    s->answer = s_error_answer(s->external_id, "internal", "out of memory");
    s->done = 1;
  }
  json_object_put(o);
  return;
refuse:
  s->answer = s_error_answer(s->external_id, code, why);
  s->done = 1;
  json_object_put(o);
}

static int s_submit(s_ctx_t *c) {
  if (!c->intake[0]) {
    fprintf(stderr, "whistlectl: where is intake? run `make up`, or give --intake ENDPOINT\n");
    return 2;
  }
  size_t n = 0, cap = 64;
  s_sub_t *subs = calloc(cap, sizeof *subs);
  char *line = NULL;
  size_t lcap = 0;
  ssize_t got;
  while ((got = getline(&line, &lcap, stdin)) >= 0) {
    while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r')) line[--got] = '\0';
    if (got == 0) continue;
    if (n == cap) {
      cap *= 2;
      subs = realloc(subs, cap * sizeof *subs);
    }
    memset(&subs[n], 0, sizeof subs[n]);
    s_build(&subs[n], line);
    n++;
  }
  free(line);

  void *sock = s_socket(c, ZMQ_DEALER, "intake", c->intake);
  const int window = 64;
  const int64_t resend_ms = 3000, give_up_ms = 120000;
  size_t next = 0, open = 0, remaining = 0;
  for (size_t i = 0; i < n; i++) remaining += !subs[i].done;
  while (remaining) {
    int64_t now = wh_clock_mono_ms();
    while (open < (size_t)window && next < n) {
      s_sub_t *s = &subs[next++];
      if (s->done) continue;
      s->sent_ms = s->first_ms = now;
      zmq_send(sock, s->frame, s->len, 0);
      open++;
    }
    /* Resend what has waited too long: intake maps the same source and
     * external id to the same ticket, so a repeat is harmless. */
    for (size_t i = 0; i < next; i++) {
      s_sub_t *s = &subs[i];
      if (s->done || now - s->sent_ms < resend_ms) continue;
      if (now - s->first_ms > give_up_ms) {
        s->answer = s_error_answer(s->external_id, "unreachable", "intake did not answer");
        s->done = 1;
        open--;
        remaining--;
        continue;
      }
      s->sent_ms = now;
      zmq_send(sock, s->frame, s->len, 0);
    }
    zmq_pollitem_t pi = {sock, 0, ZMQ_POLLIN, 0};
    s_check_auth(c);
    if (zmq_poll(&pi, 1, 200) <= 0) continue;
    zmq_msg_t m;
    zmq_msg_init(&m);
    while (zmq_msg_recv(&m, sock, ZMQ_DONTWAIT) >= 0) {
      Whistle__Envelope *env;
      if (wh_env_unpack(zmq_msg_data(&m), zmq_msg_size(&m), &env) == 0) {
        for (size_t i = 0; i < next; i++) {
          s_sub_t *s = &subs[i];
          if (s->done || strcmp(s->msg_id, env->message_id)) continue;
          if (env->body_case == WHISTLE__ENVELOPE__BODY_SUBMIT_REPLY) {
            Whistle__SubmitReply *r = env->submit_reply;
            if (r->error && r->error->code == WHISTLE__ERROR_CODE__ERR_INTERNAL) break; /* resend */
            if (r->error) {
              char code[48];
              s->answer = s_error_answer(s->external_id, s_code_name(r->error->code, code, sizeof code),
                                         r->error->text);
            } else {
              s->answer = json_object_new_object();
              json_object_object_add(s->answer, "external_id", json_object_new_string(s->external_id));
              json_object_object_add(s->answer, "ticket_id", json_object_new_string(r->ticket_id));
            }
            s->done = 1;
            open--;
            remaining--;
          }
          break;
        }
        if (env->body_case == WHISTLE__ENVELOPE__BODY_ERROR)
          fprintf(stderr, "whistlectl: intake: %s\n", env->error->text);
        wh_env_free(env);
      }
      zmq_msg_close(&m);
      zmq_msg_init(&m);
    }
    zmq_msg_close(&m);
  }
  zmq_close(sock);

  int failed = 0;
  for (size_t i = 0; i < n; i++) {
    s_sub_t *s = &subs[i];
    json_object *e;
    int is_err = json_object_object_get_ex(s->answer, "error", &e);
    failed |= is_err;
    puts(json_object_to_json_string_ext(s->answer, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(s->answer);
    free(s->external_id);
    free(s->frame);
  }
  free(subs);
  return failed ? 1 : 0;
}

/* ---- the desk: show, list and the actions -------------------------------- */

/* Sends env (its body set; its message id is stamped here) on sock and
 * waits up to timeout_ms for the answer of body case `reply` to it.
 * Returns the reply envelope (caller frees), or NULL when none came. */
static Whistle__Envelope *s_ask(s_ctx_t *c, void *sock, Whistle__Envelope *env, int reply,
                                int timeout_ms) {
  char mid[37];
  wh_uuid(mid);
  env->message_id = mid;
  uint8_t *buf;
  size_t len;
  if (wh_env_pack(env, &buf, &len)) return NULL;
  int sent = zmq_send(sock, buf, len, ZMQ_DONTWAIT) == (int)len;
  free(buf);
  zmq_pollitem_t pi = {sock, 0, ZMQ_POLLIN, 0};
  int64_t until = wh_clock_mono_ms() + timeout_ms;
  while (sent && wh_clock_mono_ms() < until) {
    s_check_auth(c);
    if (zmq_poll(&pi, 1, 100) <= 0) continue;
    zmq_msg_t m;
    zmq_msg_init(&m);
    Whistle__Envelope *rep = NULL;
    int ok = zmq_msg_recv(&m, sock, 0) >= 0 &&
             wh_env_unpack(zmq_msg_data(&m), zmq_msg_size(&m), &rep) == 0;
    zmq_msg_close(&m);
    if (ok && (int)rep->body_case == reply && !strcmp(rep->message_id, mid)) return rep;
    if (rep) wh_env_free(rep);
  }
  return NULL;
}

/* Sends q to dispatch's desk as c->as and waits up to 10 s for the answer.
 * Returns the reply envelope (caller frees), or NULL having said why on
 * stderr. */
static Whistle__Envelope *s_desk_ask(s_ctx_t *c, Whistle__DeskRequest *q) {
  if (!c->desk[0]) {
    fprintf(stderr, "whistlectl: where is dispatch's desk? run `make up`, or give --desk EP\n");
    return NULL;
  }
  void *sock = s_socket(c, ZMQ_DEALER, "dispatch", c->desk);
  Whistle__Envelope env = WHISTLE__ENVELOPE__INIT;
  env.body_case = WHISTLE__ENVELOPE__BODY_DESK;
  env.desk = q;
  Whistle__Envelope *got = s_ask(c, sock, &env, WHISTLE__ENVELOPE__BODY_DESK_REPLY, 10000);
  zmq_close(sock);
  if (got && !got->desk_reply) {
    wh_env_free(got);
    got = NULL;
  }
  if (!got) fprintf(stderr, "whistlectl: dispatch's desk did not answer on %s (is it running?)\n", c->desk);
  return got;
}

/* Says what the desk refused (stderr, or JSON on stdout); returns 1. */
static int s_desk_refused(s_ctx_t *c, const char *what, const Whistle__Error *e) {
  char name[64];
  s_code_name(e->code, name, sizeof name);
  if (c->json) {
    json_object *o = s_error_answer(NULL, name, e->text);
    json_object_object_del(o, "external_id");
    puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
  } else {
    fprintf(stderr, "whistlectl: %s: %s: %s\n", what, name, e->text);
  }
  return 1;
}

static json_object *s_jtime(int64_t ms) {
  char buf[40];
  return ms ? json_object_new_string(wh_time_format(ms, buf, sizeof buf)) : NULL;
}

static json_object *s_jstrs(char **items, size_t n) {
  json_object *a = json_object_new_array();
  for (size_t i = 0; i < n; i++) json_object_array_add(a, json_object_new_string(items[i]));
  return a;
}

static json_object *s_jstr_or_null(const char *s) { return s && s[0] ? json_object_new_string(s) : NULL; }

/* An order as show --json and list --json write it. */
static json_object *s_view_json(const Whistle__OrderView *v, int with_timeline) {
  json_object *o = json_object_new_object();
  json_object_object_add(o, "ticket_id", json_object_new_string(v->ticket_id));
  json_object_object_add(o, "external_id", json_object_new_string(v->external_id));
  json_object_object_add(o, "source", json_object_new_string(v->source));
  json_object_object_add(o, "community", json_object_new_string(v->community));
  json_object_object_add(o, "grid", json_object_new_string(v->grid));
  json_object_object_add(o, "address", json_object_new_string(v->address));
  json_object_object_add(o, "category", json_object_new_string(v->category));
  json_object_object_add(o, "class", json_object_new_string(v->klass));
  json_object_object_add(o, "color", json_object_new_string(wh_color_name(v->color)));
  json_object_object_add(o, "level", json_object_new_int((int)v->level));
  json_object_object_add(o, "lead", json_object_new_string(v->lead));
  json_object_object_add(o, "co", s_jstrs(v->co, v->n_co));
  json_object_object_add(o, "state", json_object_new_string(v->state));
  json_object_object_add(o, "duplicate_of", s_jstr_or_null(v->duplicate_of));
  json_object_object_add(o, "rule", json_object_new_string(v->rule));
  json_object_object_add(o, "words", s_jstr_or_null(v->words));
  json_object_object_add(o, "danger", s_jstr_or_null(v->danger));
  json_object_object_add(o, "danger_words", s_jstr_or_null(v->danger_words));
  json_object_object_add(o, "weight", json_object_new_int((int)v->weight));
  json_object_object_add(o, "received_at", s_jtime(v->received_at_ms));
  json_object_object_add(o, "text", json_object_new_string(v->text));
  json_object_object_add(o, "reporter", json_object_new_string(v->reporter_masked));
  json_object_object_add(o, "overdue", json_object_new_boolean(v->overdue));
  json_object_object_add(o, "version", json_object_new_int((int)v->version));
  json_object_object_add(o, "signed_at", s_jtime(v->signed_at_ms));
  json_object_object_add(o, "resolved_at", s_jtime(v->resolved_at_ms));
  json_object_object_add(o, "closed_at", s_jtime(v->closed_at_ms));
  json_object_object_add(o, "returns", json_object_new_int((int)v->returns));
  json_object_object_add(o, "reopens", json_object_new_int((int)v->reopens));
  json_object_object_add(o, "your_roles", json_object_new_string(v->your_roles));
  json_object *parts = json_object_new_array();
  for (size_t i = 0; i < v->n_parts; i++) {
    json_object *p = json_object_new_object();
    json_object_object_add(p, "party", json_object_new_string(v->parts[i]->party));
    json_object_object_add(p, "signed_at", s_jtime(v->parts[i]->signed_at_ms));
    json_object_object_add(p, "done_at", s_jtime(v->parts[i]->done_at_ms));
    json_object_array_add(parts, p);
  }
  json_object_object_add(o, "parts", parts);
  json_object *ext = NULL;
  if (v->extension_state[0]) {
    ext = json_object_new_object();
    json_object_object_add(ext, "until", s_jtime(v->extension_until_ms));
    json_object_object_add(ext, "state", json_object_new_string(v->extension_state));
  }
  json_object_object_add(o, "extension", ext);
  json_object *fb = NULL;
  if (v->feedback_rating[0]) {
    fb = json_object_new_object();
    json_object_object_add(fb, "rating", json_object_new_string(v->feedback_rating));
    json_object_object_add(fb, "resolved", json_object_new_boolean(v->feedback_resolved));
  }
  json_object_object_add(o, "feedback", fb);
  json_object_object_add(o, "return_until", s_jtime(v->return_until_ms));
  json_object_object_add(o, "feedback_until", s_jtime(v->feedback_until_ms));
  json_object *dl = json_object_new_array();
  for (size_t i = 0; i < v->n_deadlines; i++) {
    const Whistle__OrderDeadline *d = v->deadlines[i];
    json_object *j = json_object_new_object();
    json_object_object_add(j, "name", json_object_new_string(d->name));
    json_object_object_add(j, "due_at", s_jtime(d->due_at_ms));
    json_object_object_add(j, "overdue", json_object_new_boolean(d->overdue));
    json_object_object_add(j, "lapsed", json_object_new_boolean(d->lapsed));
    json_object_object_add(j, "met", json_object_new_boolean(d->met));
    json_object_object_add(j, "started_at", s_jtime(d->set_at_ms));
    json_object_object_add(j, "remind_at", s_jtime(d->remind_at_ms));
    json_object_array_add(dl, j);
  }
  json_object_object_add(o, "deadlines", dl);
  json_object *esc = json_object_new_array();
  for (size_t i = 0; i < v->n_escalations; i++) {
    const Whistle__OrderEscalation *e = v->escalations[i];
    json_object *j = json_object_new_object();
    json_object_object_add(j, "step", json_object_new_int((int)e->step));
    json_object_object_add(j, "party", json_object_new_string(e->party));
    json_object_object_add(j, "at", s_jtime(e->at_ms));
    json_object_object_add(j, "by", json_object_new_string(e->by));
    json_object_array_add(esc, j);
  }
  json_object_object_add(o, "escalations", esc);
  json_object_object_add(o, "ladder_next", s_jtime(v->ladder_next_ms));
  json_object_object_add(o, "policy", v->policy ? json_object_new_int((int)v->policy) : NULL);
  if (with_timeline) {
    json_object *tl = json_object_new_array();
    for (size_t i = 0; i < v->n_timeline; i++) {
      const Whistle__OrderEvent *e = v->timeline[i];
      json_object *j = json_object_new_object();
      json_object_object_add(j, "at", s_jtime(e->at_ms));
      json_object_object_add(j, "kind", json_object_new_string(e->kind));
      json_object_object_add(j, "actor", json_object_new_string(e->actor));
      json_object_object_add(j, "role", s_jstr_or_null(e->role));
      json_object_object_add(j, "version", e->version ? json_object_new_int((int)e->version) : NULL);
      json_object_object_add(j, "note", json_object_new_string(e->note));
      json_object_object_add(j, "internal_note", s_jstr_or_null(e->internal_note));
      json_object_array_add(tl, j);
    }
    json_object_object_add(o, "timeline", tl);
    json_object_object_add(o, "timeline_cut", json_object_new_boolean(v->timeline_cut));
  }
  return o;
}

static const char *s_js(json_object *o, const char *k) {
  json_object *v;
  if (!json_object_object_get_ex(o, k, &v) || !v) return "-";
  return json_object_get_string(v);
}

static void s_print_view(const Whistle__OrderView *v, json_object *o) {
  printf("%s  %s %s, level %u, %s, version %u%s\n", v->ticket_id, v->klass,
         wh_color_name(v->color), v->level, v->state, v->version, v->overdue ? ", OVERDUE" : "");
  printf("  from      %s %s, received %s\n", v->source, v->external_id, s_js(o, "received_at"));
  printf("  where     %s / %s  %s\n", v->community, v->grid, v->address);
  printf("  report    %s\n", v->text);
  printf("  lead      %s   co %s   rule %s   weight %u\n", v->lead, s_js(o, "co"), v->rule,
         v->weight);
  if (v->words[0]) printf("  words     %s\n", v->words);
  if (v->danger[0]) printf("  danger    %s (%s)\n", v->danger, v->danger_words);
  if (v->duplicate_of[0]) printf("  repeat of %s\n", v->duplicate_of);
  if (v->returns || v->reopens) printf("  returned  %u time(s), reopened %u time(s)\n", v->returns, v->reopens);
  for (size_t i = 0; i < v->n_parts; i++)
    printf("  part      %-20s signed %s  done %s\n", v->parts[i]->party,
           v->parts[i]->signed_at_ms ? "yes" : "no", v->parts[i]->done_at_ms ? "yes" : "no");
  if (v->extension_state[0])
    printf("  extension %s until %s\n", v->extension_state,
           s_js(json_object_object_get(o, "extension"), "until"));
  if (v->feedback_rating[0])
    printf("  feedback  %s%s\n", v->feedback_rating, v->feedback_resolved ? "" : ", unresolved");
  json_object *dl = json_object_object_get(o, "deadlines");
  for (size_t i = 0; i < v->n_deadlines; i++) {
    const Whistle__OrderDeadline *d = v->deadlines[i];
    printf("  deadline  %-9s %s%s%s\n", d->name, s_js(json_object_array_get_idx(dl, i), "due_at"),
           d->met ? "  met" : "", d->overdue ? "  OVERDUE" : "");
  }
  json_object *esc = json_object_object_get(o, "escalations");
  for (size_t i = 0; i < v->n_escalations; i++)
    printf("  escalated step %u to %s at %s (by %s)\n", v->escalations[i]->step,
           v->escalations[i]->party, s_js(json_object_array_get_idx(esc, i), "at"),
           v->escalations[i]->by);
  if (v->ladder_next_ms) printf("  ladder    next step due %s\n", s_js(o, "ladder_next"));
  json_object *tl = json_object_object_get(o, "timeline");
  for (size_t i = 0; tl && i < json_object_array_length(tl); i++) {
    json_object *e = json_object_array_get_idx(tl, i);
    const Whistle__OrderEvent *ev = v->timeline[i];
    printf("  %s  %-10s %-20s %s%s%s\n", s_js(e, "at"), ev->kind, ev->actor, ev->note,
           ev->internal_note[0] ? "  [internal] " : "", ev->internal_note);
  }
  if (v->timeline_cut) printf("  (older events did not fit)\n");
}

static int s_show(s_ctx_t *c, const char *ticket) {
  Whistle__DeskRequest q = WHISTLE__DESK_REQUEST__INIT;
  Whistle__DeskShow sh = WHISTLE__DESK_SHOW__INIT;
  sh.ticket_id = (char *)ticket;
  q.what_case = WHISTLE__DESK_REQUEST__WHAT_SHOW;
  q.show = &sh;
  q.request_id = "";
  Whistle__Envelope *rep = s_desk_ask(c, &q);
  if (!rep) return 2;
  const Whistle__DeskReply *r = rep->desk_reply;
  int rc = 0;
  if (r->error || !r->order) {
    Whistle__Error none = WHISTLE__ERROR__INIT;
    rc = s_desk_refused(c, ticket, r->error ? r->error : &none);
  } else {
    json_object *o = s_view_json(r->order, 1);
    if (c->json) puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    else s_print_view(r->order, o);
    json_object_put(o);
  }
  wh_env_free(rep);
  return rc;
}

/* ---- triage: what a report would get --------------------------------------- */

typedef struct {
  const char *community, *grid, *address, *category, *care;
} s_try_q;

/* Asks triage's request socket for the decision text would get, as the
 * center, and prints it; nothing is stored. */
static int s_triage(s_ctx_t *c, const char *text, const s_try_q *tq) {
  if (!c->ask[0]) {
    fprintf(stderr, "whistlectl: where is triage's request socket? run `make up`, or set WHISTLE_TRIAGE_ASK\n");
    return 2;
  }
  Whistle__SubmitTicket rep = WHISTLE__SUBMIT_TICKET__INIT;
  rep.text = (char *)text;
  rep.community = (char *)(tq->community ? tq->community : "");
  rep.grid = (char *)(tq->grid ? tq->grid : "");
  rep.address = (char *)(tq->address ? tq->address : "");
  rep.category = (char *)(tq->category ? tq->category : "");
  char tags[256] = "", *tagv[8];
  if (tq->care) {
    snprintf(tags, sizeof tags, "%s", tq->care);
    for (char *save = NULL, *t = strtok_r(tags, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
      if (rep.n_care_tags == 8) {
        fprintf(stderr, "whistlectl: --care: at most 8 tags\n");
        return 2;
      }
      tagv[rep.n_care_tags++] = t;
    }
    rep.care_tags = tagv;
  }
  Whistle__TriageTry q = WHISTLE__TRIAGE_TRY__INIT;
  q.report = &rep;
  Whistle__Envelope env = WHISTLE__ENVELOPE__INIT;
  env.body_case = WHISTLE__ENVELOPE__BODY_TRIAGE_TRY;
  env.triage_try = &q;
  void *sock = s_socket(c, ZMQ_DEALER, "triage", c->ask);
  Whistle__Envelope *got = s_ask(c, sock, &env, WHISTLE__ENVELOPE__BODY_TRIAGE_ANSWER, 10000);
  zmq_close(sock);
  if (!got || !got->triage_answer) {
    fprintf(stderr, "whistlectl: triage did not answer on %s (is it running?)\n", c->ask);
    if (got) wh_env_free(got);
    return 2;
  }
  const Whistle__TriageAnswer *a = got->triage_answer;
  int rc = 0;
  if (a->error) {
    rc = s_desk_refused(c, "triage", a->error);
  } else if (c->json) {
    json_object *o = json_object_new_object();
    json_object_object_add(o, "class", json_object_new_string(a->klass));
    json_object_object_add(o, "class_name", s_jstr_or_null(a->klass_name));
    json_object_object_add(o, "color", json_object_new_string(wh_color_name(a->color)));
    json_object_object_add(o, "level", json_object_new_int((int)a->level));
    json_object_object_add(o, "lead", json_object_new_string(a->lead));
    json_object_object_add(o, "co", s_jstrs(a->co, a->n_co));
    json_object_object_add(o, "rule", json_object_new_string(a->rule));
    json_object_object_add(o, "words", s_jstr_or_null(a->words));
    json_object_object_add(o, "danger", s_jstr_or_null(a->danger));
    json_object_object_add(o, "danger_words", s_jstr_or_null(a->danger_words));
    json_object_object_add(o, "place", s_jstr_or_null(a->place));
    json_object_object_add(o, "runner_up", s_jstrs(a->runner_up, a->n_runner_up));
    json_object_object_add(o, "weight", json_object_new_int((int)a->weight));
    json_object_object_add(o, "mergeable", json_object_new_boolean(a->mergeable));
    json_object_object_add(o, "community", json_object_new_string(a->community));
    if (a->suggested[0]) {
      json_object *sg = json_object_new_object();
      json_object_object_add(sg, "class", json_object_new_string(a->suggested));
      json_object_object_add(sg, "score", json_object_new_double(a->suggested_score / 1000.0));
      json_object_object_add(sg, "like", json_object_new_string(a->suggested_like));
      json_object_object_add(o, "suggested", sg);
    } else {
      json_object_object_add(o, "suggested", NULL);
    }
    puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
  } else {
    printf("class     %s%s%s%s   %s, level %u\n", a->klass, a->klass_name[0] ? " (" : "",
           a->klass_name, a->klass_name[0] ? ")" : "", wh_color_name(a->color), a->level);
    printf("lead      %s\n", a->lead);
    printf("co        ");
    for (size_t i = 0; i < a->n_co; i++) printf("%s%s", i ? ", " : "", a->co[i]);
    printf("%s\n", a->n_co ? "" : "-");
    printf("rule      %s\n", a->rule);
    printf("words     %s\n", a->words[0] ? a->words : "-");
    if (a->danger[0]) printf("danger    %s (%s): level 1\n", a->danger, a->danger_words);
    if (a->place[0]) printf("place     %s\n", a->place);
    printf("runners   ");
    for (size_t i = 0; i < a->n_runner_up; i++) printf("%s%s", i ? ", " : "", a->runner_up[i]);
    printf("%s\n", a->n_runner_up ? "" : "-");
    if (a->suggested[0])
      printf("learned   %s %u.%03u like %s (the center's example)%s\n", a->suggested,
             a->suggested_score / 1000, a->suggested_score % 1000, a->suggested_like,
             strncmp(a->rule, "learned:", 8) ? ": a suggestion, below the score that routes" : "");
    printf("weight    %u%s\n", a->weight, a->mergeable ? ", repeats in its grid merge" : "");
    printf("for       %s\n", a->community);
  }
  wh_env_free(got);
  return rc;
}

typedef struct {
  const char *color, *level, *party, *state, *extension, *after;
  int overdue, mine, limit;
} s_list_q;

/* Pages through the desk until limit orders or the end. */
static int s_list(s_ctx_t *c, const s_list_q *lq) {
  json_object *all = json_object_new_array();
  char after[96];
  wh_str_copy(after, sizeof after, lq->after ? lq->after : "");
  int more = 0, rc = 0;
  for (;;) {
    Whistle__DeskRequest q = WHISTLE__DESK_REQUEST__INIT;
    Whistle__DeskList l = WHISTLE__DESK_LIST__INIT;
    int want = lq->limit - (int)json_object_array_length(all);
    l.mine = lq->mine;
    l.state = (char *)(lq->state ? lq->state : "");
    l.party = (char *)(lq->party ? lq->party : "");
    l.color = lq->color ? wh_color_parse(lq->color) : 0;
    l.level = lq->level ? (uint32_t)atoi(lq->level) : 0;
    l.overdue = lq->overdue;
    l.extension = (char *)(lq->extension ? lq->extension : "");
    l.limit = (uint32_t)want;
    l.after = after;
    q.request_id = "";
    q.what_case = WHISTLE__DESK_REQUEST__WHAT_LIST;
    q.list = &l;
    Whistle__Envelope *rep = s_desk_ask(c, &q);
    if (!rep) {
      json_object_put(all);
      return 2;
    }
    const Whistle__DeskReply *r = rep->desk_reply;
    if (r->error) {
      rc = s_desk_refused(c, "list", r->error);
      wh_env_free(rep);
      json_object_put(all);
      return rc;
    }
    for (size_t i = 0; i < r->n_orders; i++) json_object_array_add(all, s_view_json(r->orders[i], 0));
    more = r->more;
    wh_str_copy(after, sizeof after, r->next_after);
    wh_env_free(rep);
    if (!more || (int)json_object_array_length(all) >= lq->limit || !after[0]) break;
  }
  if (c->json) {
    json_object *o = json_object_new_object();
    json_object_object_add(o, "orders", all);
    json_object_object_add(o, "more", json_object_new_boolean(more));
    json_object_object_add(o, "next_after", more ? json_object_new_string(after) : NULL);
    puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
    return 0;
  }
  printf("%-14s %-6s %-5s %-18s %-11s %-20s %s\n", "TICKET", "COLOUR", "LEVEL", "CLASS", "STATE",
         "LEAD", "OVERDUE");
  for (size_t i = 0; i < json_object_array_length(all); i++) {
    json_object *o = json_object_array_get_idx(all, i);
    printf("%-14s %-6s %-5s %-18s %-11s %-20s %s\n", s_js(o, "ticket_id"), s_js(o, "color"),
           s_js(o, "level"), s_js(o, "class"), s_js(o, "state"), s_js(o, "lead"),
           json_object_get_boolean(json_object_object_get(o, "overdue")) ? "yes" : "");
  }
  if (more) printf("more: whistlectl list --after %s\n", after);
  json_object_put(all);
  return 0;
}

/* The verbs that act, and what follows ID on their command line. */
typedef struct {
  const char *verb;
  int first;    /* 1: the word after ID is REASON, RATING or UNTIL */
  int need_text;
} s_verb_t;
static const s_verb_t s_verbs[] = {
    {"sign", 0, 0},    {"progress", 0, 1}, {"return", 1, 1},  {"assign", 0, 0},
    {"uphold", 0, 0},  {"extend", 1, 0},   {"approve", 0, 0}, {"refuse", 0, 0},
    {"resolve", 0, 1}, {"feedback", 1, 0}, {"close", 0, 0},   {"reopen", 0, 0},
    {"void", 1, 0},    {"supervise", 0, 0}};

static const s_verb_t *s_verb(const char *cmd) {
  for (size_t i = 0; i < sizeof s_verbs / sizeof *s_verbs; i++)
    if (!strcmp(cmd, s_verbs[i].verb)) return &s_verbs[i];
  return NULL;
}

/* UNTIL: a date (the end of that day, China time) or an RFC 3339 time. */
static int s_until(const char *s, int64_t *ms) {
  char buf[64];
  if (strlen(s) == 10 && s[4] == '-' && s[7] == '-') {
    snprintf(buf, sizeof buf, "%sT23:59:59.999+08:00", s);
    return wh_time_parse(buf, ms);
  }
  return wh_time_parse(s, ms);
}

typedef struct {
  const char *request_id, *internal, *lead, *co, *klass, *color, *level;
  unsigned version;
  int unresolved;
} s_act_opts;

static int s_act(s_ctx_t *c, const s_verb_t *vb, char **args, int nargs, const s_act_opts *ao) {
  Whistle__DeskAction a = WHISTLE__DESK_ACTION__INIT;
  a.ticket_id = args[0];
  a.action = (char *)vb->verb;
  a.version = ao->version;
  a.internal_note = (char *)(ao->internal ? ao->internal : "");
  int k = 1;
  if (vb->first) {
    if (nargs < 2) {
      fprintf(stderr, "whistlectl: %s ID %s TEXT\n", vb->verb,
              !strcmp(vb->verb, "extend") ? "UNTIL" : !strcmp(vb->verb, "feedback") ? "RATING" : "REASON");
      return 2;
    }
    if (!strcmp(vb->verb, "extend")) {
      if (s_until(args[1], &a.until_ms)) {
        fprintf(stderr, "whistlectl: bad_time: UNTIL is a date (2026-12-10) or an RFC 3339 time\n");
        return 2;
      }
    } else {
      a.reason = args[1];
    }
    k = 2;
  }
  /* TEXT: the rest of the words */
  char text[16384];
  wh_str_t t;
  wh_str_init(&t, text, sizeof text);
  for (int i = k; i < nargs; i++) wh_str_cat(&t, i > k ? " " : "", args[i], (char *)NULL);
  if (vb->need_text && !text[0]) {
    fprintf(stderr, "whistlectl: %s ID%s TEXT: say what was done, or why\n", vb->verb,
            vb->first ? " REASON" : "");
    return 2;
  }
  a.note = text;
  a.unresolved = ao->unresolved;
  char cobuf[1024];
  char *co[16];
  if (!strcmp(vb->verb, "assign")) {
    if (!ao->lead) {
      fprintf(stderr, "whistlectl: assign ID --lead PARTY [--co P,..] [--class C] [--color C] [--level N] TEXT\n");
      return 2;
    }
    a.lead = (char *)ao->lead;
    if (ao->co && ao->co[0]) {
      wh_str_copy(cobuf, sizeof cobuf, ao->co);
      char *save = NULL;
      for (char *p = strtok_r(cobuf, ",", &save); p && a.n_co < 16; p = strtok_r(NULL, ",", &save))
        co[a.n_co++] = p;
      a.co = co;
    }
    a.klass = (char *)(ao->klass ? ao->klass : "");
    a.color = ao->color ? wh_color_parse(ao->color) : 0;
    a.level = ao->level ? (uint32_t)atoi(ao->level) : 0;
  }
  char rid[37];
  Whistle__DeskRequest q = WHISTLE__DESK_REQUEST__INIT;
  if (ao->request_id) {
    q.request_id = (char *)ao->request_id;
  } else {
    wh_uuid(rid);
    q.request_id = rid;
  }
  q.what_case = WHISTLE__DESK_REQUEST__WHAT_ACT;
  q.act = &a;
  Whistle__Envelope *rep = s_desk_ask(c, &q);
  if (!rep) return 2;
  const Whistle__DeskReply *r = rep->desk_reply;
  int rc = 0;
  char what[160];
  snprintf(what, sizeof what, "%s %s", vb->verb, args[0]);
  if (r->error || !r->order) {
    Whistle__Error none = WHISTLE__ERROR__INIT;
    rc = s_desk_refused(c, what, r->error ? r->error : &none);
  } else if (c->json) {
    json_object *o = json_object_new_object();
    json_object_object_add(o, "request_id", json_object_new_string(r->request_id));
    json_object_object_add(o, "repeated", json_object_new_boolean(r->repeated_request));
    json_object_object_add(o, "order", s_view_json(r->order, 0));
    puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
  } else {
    printf("%s: %s, lead %s, version %u%s\n", r->order->ticket_id, r->order->state,
           r->order->lead, r->order->version,
           r->repeated_request ? " (this request was answered before: nothing more done)" : "");
  }
  wh_env_free(rep);
  return rc;
}

/* ---- feed -------------------------------------------------------------- */

static void s_print_item(s_ctx_t *c, const Whistle__FeedItem *it) {
  const Whistle__WorkEvent *ev = it->event;
  char when[40];
  wh_time_format(it->at_ms, when, sizeof when);
  if (c->json) {
    json_object *o = json_object_new_object();
    json_object_object_add(o, "party", json_object_new_string(it->party));
    json_object_object_add(o, "seq", json_object_new_int64((int64_t)it->seq));
    json_object_object_add(o, "ticket_id", json_object_new_string(it->ticket_id));
    json_object_object_add(o, "kind", json_object_new_string(wh_work_kind_name(it->kind)));
    json_object_object_add(o, "version", json_object_new_int((int)it->version));
    json_object_object_add(o, "role", json_object_new_string(it->role));
    json_object_object_add(o, "at", json_object_new_string(when));
    if (ev) {
      json_object_object_add(o, "color", json_object_new_string(
          ev->color == 1 ? "red" : ev->color == 2 ? "yellow" : ev->color == 3 ? "green" : ""));
      json_object_object_add(o, "level", json_object_new_int((int)ev->level));
      json_object_object_add(o, "lead", json_object_new_string(ev->lead));
      json_object *co = json_object_new_array();
      for (size_t i = 0; i < ev->n_co; i++) json_object_array_add(co, json_object_new_string(ev->co[i]));
      json_object_object_add(o, "co", co);
      json_object_object_add(o, "duplicate_of", ev->duplicate_of[0] ? json_object_new_string(ev->duplicate_of) : NULL);
      json_object *dl = json_object_new_array();
      for (size_t i = 0; i < ev->n_deadlines; i++) {
        json_object *d = json_object_new_object();
        char due[40];
        json_object_object_add(d, "name", json_object_new_string(ev->deadlines[i]->name));
        json_object_object_add(d, "due_at", json_object_new_string(wh_time_format(ev->deadlines[i]->due_at_ms, due, sizeof due)));
        json_object_array_add(dl, d);
      }
      json_object_object_add(o, "deadlines", dl);
      json_object *lp = json_object_new_array();
      for (size_t i = 0; i < ev->n_lapsed; i++) json_object_array_add(lp, json_object_new_string(ev->lapsed[i]));
      json_object_object_add(o, "lapsed", lp);
      json_object_object_add(o, "summary", json_object_new_string(ev->summary));
      if (ev->action[0]) {
        json_object_object_add(o, "action", json_object_new_string(ev->action));
        json_object_object_add(o, "actor", json_object_new_string(ev->actor));
        json_object_object_add(o, "note", json_object_new_string(ev->note));
      }
      if (ev->n_reminded) {
        json_object *rm = json_object_new_array();
        for (size_t i = 0; i < ev->n_reminded; i++)
          json_object_array_add(rm, json_object_new_string(ev->reminded[i]));
        json_object_object_add(o, "reminded", rm);
        json_object_object_add(o, "share", json_object_new_int((int)ev->share));
      }
      if (ev->step) {
        json_object_object_add(o, "step", json_object_new_int((int)ev->step));
        json_object_object_add(o, "supervisor", json_object_new_string(ev->supervisor));
      }
    }
    puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
  } else {
    /* what the item says beyond its kind: the action and who, the clock
     * reminded, the ladder's step */
    char what[160] = "";
    if (ev && ev->action[0])
      snprintf(what, sizeof what, "%s by %s: ", ev->action, ev->actor);
    else if (ev && ev->n_reminded)
      snprintf(what, sizeof what, "%u%% of %s: ", ev->share, ev->reminded[0]);
    if (ev && ev->step) {
      size_t k = strlen(what);
      snprintf(what + k, sizeof what - k, "step %u, %s: ", ev->step, ev->supervisor);
    }
    printf("%6" PRIu64 "  %s  %-10s %-4s %s  %s%s\n", it->seq, when, wh_work_kind_name(it->kind),
           it->role, it->ticket_id, what, ev ? ev->summary : "");
  }
  fflush(stdout);
}

/* Asks notify for items from `from`; prints them; returns the next sequence
 * wanted, or 0 on error. *head gets the feed's newest sequence. */
static uint64_t s_replay(s_ctx_t *c, void *sock, const char *party, uint64_t from, uint64_t *head) {
  Whistle__ReplayRequest q = WHISTLE__REPLAY_REQUEST__INIT;
  q.party = (char *)party;
  q.from_seq = from;
  q.max = 500;
  Whistle__Envelope env = WHISTLE__ENVELOPE__INIT;
  char mid[37];
  wh_uuid(mid);
  env.message_id = mid;
  env.body_case = WHISTLE__ENVELOPE__BODY_REPLAY;
  env.replay = &q;
  uint8_t *buf;
  size_t len;
  if (wh_env_pack(&env, &buf, &len)) return 0;
  for (int attempt = 0; attempt < 20; attempt++) {
    zmq_send(sock, buf, len, 0);
    zmq_pollitem_t pi = {sock, 0, ZMQ_POLLIN, 0};
    int64_t until = wh_clock_mono_ms() + 3000;
    while (wh_clock_mono_ms() < until) {
      s_check_auth(c);
      if (zmq_poll(&pi, 1, 200) <= 0) continue;
      zmq_msg_t m;
      zmq_msg_init(&m);
      if (zmq_msg_recv(&m, sock, 0) < 0) {
        zmq_msg_close(&m);
        continue;
      }
      Whistle__Envelope *rep = NULL;
      int ok = wh_env_unpack(zmq_msg_data(&m), zmq_msg_size(&m), &rep) == 0;
      zmq_msg_close(&m);
      if (!ok) continue;
      if (rep->body_case != WHISTLE__ENVELOPE__BODY_REPLAY_REPLY || strcmp(rep->message_id, mid)) {
        wh_env_free(rep);
        continue;
      }
      Whistle__ReplayReply *rr = rep->replay_reply;
      uint64_t next = from;
      if (rr->error && rr->error->code != WHISTLE__ERROR_CODE__ERR_INTERNAL) {
        fprintf(stderr, "whistlectl: feed %s: %s\n", party, rr->error->text);
        wh_env_free(rep);
        free(buf);
        return 0;
      }
      if (!rr->error) {
        for (size_t i = 0; i < rr->n_items; i++) {
          if (rr->items[i]->seq < next) continue;
          s_print_item(c, rr->items[i]);
          next = rr->items[i]->seq + 1;
        }
        *head = rr->head_seq;
        wh_env_free(rep);
        free(buf);
        return next;
      }
      wh_env_free(rep);
      break; /* store busy: ask again */
    }
  }
  free(buf);
  fprintf(stderr, "whistlectl: notify did not answer\n");
  return 0;
}

static int s_feed(s_ctx_t *c, const char *party, uint64_t from, int follow) {
  if (!c->notify[0] || (follow && !c->feed[0])) {
    fprintf(stderr, "whistlectl: where is notify? run `make up`, or give --notify/--feed\n");
    return 2;
  }
  void *req = s_socket(c, ZMQ_DEALER, "notify", c->notify), *sub = NULL;
  if (follow) {
    /* Subscribe before catching up, so nothing falls between the two. */
    sub = s_socket(c, ZMQ_SUB, "notify", c->feed);
    zmq_setsockopt(sub, ZMQ_SUBSCRIBE, party, strlen(party) + 1);
  }
  uint64_t next = from ? from : 1, head = 0;
  int rc = 0;
  for (;;) {
    uint64_t n = s_replay(c, req, party, next, &head);
    if (!n) {
      rc = 1;
      break;
    }
    if (n == next && next > head) break; /* caught up */
    next = n;
    if (next > head) break;
  }
  while (follow && !rc) {
    zmq_pollitem_t pi = {sub, 0, ZMQ_POLLIN, 0};
    s_check_auth(c);
    if (zmq_poll(&pi, 1, 1000) <= 0) continue;
    zmq_msg_t topic, m;
    zmq_msg_init(&topic);
    zmq_msg_init(&m);
    if (zmq_msg_recv(&topic, sub, 0) >= 0 && zmq_msg_more(&topic) && zmq_msg_recv(&m, sub, 0) >= 0) {
      Whistle__Envelope *env;
      if (wh_env_unpack(zmq_msg_data(&m), zmq_msg_size(&m), &env) == 0 &&
          env->body_case == WHISTLE__ENVELOPE__BODY_FEED) {
        uint64_t seq = env->feed->seq;
        if (seq > next) { /* missed some: the stored feed fills the gap */
          uint64_t h;
          while (next <= seq && (next = s_replay(c, req, party, next, &h)) && next <= seq) {}
          if (!next) rc = 1;
        } else if (seq == next) {
          s_print_item(c, env->feed);
          next++;
        }
      }
      if (env) wh_env_free(env);
    }
    zmq_msg_close(&topic);
    zmq_msg_close(&m);
  }
  zmq_close(req);
  if (sub) zmq_close(sub);
  return rc;
}

/* ---- parked, redrive ----------------------------------------------------- */

/* Sends q to service i's admin socket and waits up to 5 s for its answer.
 * Returns the reply envelope (caller frees), or NULL having said why on
 * stderr. */
static Whistle__Envelope *s_admin_ask(s_ctx_t *c, void *sock, int i, Whistle__AdminRequest *q) {
  Whistle__Envelope env = WHISTLE__ENVELOPE__INIT;
  env.body_case = WHISTLE__ENVELOPE__BODY_ADMIN;
  env.admin = q;
  Whistle__Envelope *rep = s_ask(c, sock, &env, WHISTLE__ENVELOPE__BODY_ADMIN_REPLY, 5000);
  if (!rep)
    fprintf(stderr, "whistlectl: %s did not answer on %s (is it running?)\n", s_services[i],
            c->admin[i]);
  return rep;
}

/* Says on stderr what an admin answer refused; returns its wire code. */
static int s_admin_error(const Whistle__AdminReply *r, const char *what) {
  char name[64];
  fprintf(stderr, "whistlectl: %s: %s: %s: %s\n", r->service, what,
          s_code_name(r->error->code, name, sizeof name), r->error->text);
  return r->error->code;
}

static void s_print_parked(s_ctx_t *c, const char *service, const Whistle__ParkedMessage *m) {
  char when[40];
  wh_time_format(m->parked_at_ms, when, sizeof when);
  if (c->json) {
    json_object *o = json_object_new_object();
    json_object_object_add(o, "service", json_object_new_string(service));
    json_object_object_add(o, "dest", json_object_new_string(m->dest));
    json_object_object_add(o, "message_id", json_object_new_string(m->message_id));
    json_object_object_add(o, "ticket_id", json_object_new_string(m->ticket_id));
    json_object_object_add(o, "seq", json_object_new_int((int)m->seq));
    json_object_object_add(o, "parked_at", json_object_new_string(when));
    json_object_object_add(o, "reason", json_object_new_string(m->reason));
    json_object_object_add(o, "behind", m->behind[0] ? json_object_new_string(m->behind) : NULL);
    puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
  } else {
    printf("%-8s -> %-8s %s  %s seq %u  %s\n         %s\n", service, m->dest, when, m->ticket_id,
           m->seq, m->message_id, m->reason);
  }
}

/* parked: every service's parked messages, oldest first within each. */
static int s_parked_all(s_ctx_t *c) {
  int rc = 0, total = 0;
  for (int i = 0; i < NSERVICES; i++) {
    if (!c->admin[i][0]) {
      fprintf(stderr, "whistlectl: where is %s's admin socket? run `make up`, or set"
              " WHISTLE_%s_ADMIN\n", s_services[i], i == 0 ? "INTAKE" : i == 1 ? "TRIAGE"
              : i == 2 ? "DISPATCH" : "NOTIFY");
      rc = 1;
      continue;
    }
    void *sock = s_socket(c, ZMQ_DEALER, s_services[i], c->admin[i]);
    uint64_t after = 0;
    for (;;) {
      Whistle__ParkedQuery pq = WHISTLE__PARKED_QUERY__INIT;
      Whistle__AdminRequest q = WHISTLE__ADMIN_REQUEST__INIT;
      pq.after = after;
      q.what_case = WHISTLE__ADMIN_REQUEST__WHAT_PARKED;
      q.parked = &pq;
      Whistle__Envelope *rep = s_admin_ask(c, sock, i, &q);
      if (!rep) {
        rc = 1;
        break;
      }
      Whistle__AdminReply *r = rep->admin_reply;
      if (r->error) {
        s_admin_error(r, "parked");
        wh_env_free(rep);
        rc = 1;
        break;
      }
      for (size_t k = 0; k < r->n_parked; k++) {
        s_print_parked(c, s_services[i], r->parked[k]);
        after = r->parked[k]->id;
        total++;
      }
      int more = r->more && r->n_parked > 0;
      wh_env_free(rep);
      if (!more) break;
    }
    zmq_close(sock);
  }
  if (!c->json && !rc && !total) printf("nothing parked\n");
  fflush(stdout);
  return rc;
}

/* redrive ID: asks each service to send the parked message ID again; the
 * one that holds it does, with its ticket's other parked messages. */
static int s_redrive_one(s_ctx_t *c, const char *id) {
  int found = 0, unanswered = 0, refused = 0;
  for (int i = 0; i < NSERVICES && !found; i++) {
    if (!c->admin[i][0]) {
      unanswered++;
      continue;
    }
    void *sock = s_socket(c, ZMQ_DEALER, s_services[i], c->admin[i]);
    Whistle__Redrive rd = WHISTLE__REDRIVE__INIT;
    Whistle__AdminRequest q = WHISTLE__ADMIN_REQUEST__INIT;
    rd.message_id = (char *)id;
    q.what_case = WHISTLE__ADMIN_REQUEST__WHAT_REDRIVE;
    q.redrive = &rd;
    Whistle__Envelope *rep = s_admin_ask(c, sock, i, &q);
    zmq_close(sock);
    if (!rep) {
      unanswered++;
      continue;
    }
    Whistle__AdminReply *r = rep->admin_reply;
    if (r->error && r->error->code != WHISTLE__ERROR_CODE__ERR_NOT_FOUND) {
      s_admin_error(r, "redrive");
      refused++;
    } else if (!r->error) {
      found = 1;
      if (c->json) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "message_id", json_object_new_string(id));
        json_object_object_add(o, "service", json_object_new_string(r->service));
        json_object_object_add(o, "redriven", json_object_new_int((int)r->redriven));
        puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
        json_object_put(o);
      } else {
        printf("%s: sent again by %s, with its ticket's other parked messages: %u in all, in"
               " order\n", id, r->service, r->redriven);
      }
    }
    wh_env_free(rep);
  }
  if (found) return 0;
  if (!refused)
    fprintf(stderr, "whistlectl: not_found: no %sservice has parked a message %s\n",
            unanswered ? "answering " : "", id);
  return 1;
}

/* clock TIME|OFFSET_S (tests only): every service's business clock moved
 * to TIME (RFC 3339), or to real time plus OFFSET_S, each re-arming its
 * timers. */
static int s_clock_all(s_ctx_t *c, const char *arg) {
  char *end;
  int64_t at;
  long long off = strtoll(arg, &end, 10);
  if (wh_time_parse(arg, &at) == 0) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    off = (long long)((at - ((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000)) / 1000);
  } else if (end == arg || *end) {
    fprintf(stderr, "whistlectl: clock TIME|OFFSET_S: an RFC 3339 time, or whole seconds from"
                    " real time (+86400 is a day on)\n");
    return 2;
  }
  int failed = 0;
  for (int i = 0; i < NSERVICES; i++) {
    if (!c->admin[i][0]) {
      fprintf(stderr, "whistlectl: no admin endpoint for %s\n", s_services[i]);
      failed++;
      continue;
    }
    void *sock = s_socket(c, ZMQ_DEALER, s_services[i], c->admin[i]);
    Whistle__ClockOffset co = WHISTLE__CLOCK_OFFSET__INIT;
    Whistle__AdminRequest q = WHISTLE__ADMIN_REQUEST__INIT;
    co.offset_s = off;
    q.what_case = WHISTLE__ADMIN_REQUEST__WHAT_CLOCK;
    q.clock = &co;
    Whistle__Envelope *rep = s_admin_ask(c, sock, i, &q);
    zmq_close(sock);
    if (!rep) {
      failed++;
      continue;
    }
    Whistle__AdminReply *r = rep->admin_reply;
    if (r->error) {
      s_admin_error(r, "clock");
      failed++;
    } else {
      char when[40];
      printf("%s: now %s\n", r->service, wh_time_format(r->now_ms, when, sizeof when));
    }
    wh_env_free(rep);
  }
  return failed ? 1 : 0;
}

/* keygen: a pair for each NAME, and with --org one for every party of that
 * org chart; with --missing a name that has its pair already is left as it
 * is (the local stack makes what a first `make up` lacks). */
static int s_keygen(const char *dir, const char *org_path, int missing, char **names, int n) {
  wh_org_t *org = NULL;
  char err[PATH_MAX + 256];
  if (org_path && !(org = wh_org_load(org_path, err, sizeof err))) {
    fprintf(stderr, "whistlectl: %s\n", err);
    return 2;
  }
  /* The list: the names given, then the org's departments (the center
   * among them) and each community's parties. */
  size_t cap = (size_t)n + 1 + (org ? org->ndepartments + org->ncommunities * 16 : 0), k = 0;
  char **all = calloc(cap, sizeof *all);
  for (int i = 0; i < n; i++) all[k++] = strdup(names[i]);
  if (org) {
    all[k++] = strdup(org->center);
    for (size_t i = 0; i < org->ndepartments; i++) all[k++] = strdup(org->departments[i].code);
    for (size_t i = 0; i < org->ncommunities; i++)
      for (char **p = org->communities[i].parties; p && *p && k < cap; p++) {
        char code[256];
        snprintf(code, sizeof code, "%s.%s", org->communities[i].code, *p);
        all[k++] = strdup(code);
      }
  }
  int rc = 0, made = 0;
  for (size_t i = 0; i < k; i++) {
    int dup = 0;
    for (size_t j = 0; j < i && !dup; j++) dup = !strcmp(all[i], all[j]);
    char kp[PATH_MAX], pp[PATH_MAX];
    snprintf(kp, sizeof kp, "%s/%s.key", dir, all[i]);
    snprintf(pp, sizeof pp, "%s/%s.pub", dir, all[i]);
    if (dup || (missing && access(kp, F_OK) == 0 && access(pp, F_OK) == 0)) continue;
    if (wh_keygen(dir, all[i], err, sizeof err)) {
      fprintf(stderr, "whistlectl: %s\n", err);
      rc = 1;
    } else {
      made++;
    }
  }
  if (!rc && isatty(STDOUT_FILENO)) printf("%d key pair%s written in %s\n", made, made == 1 ? "" : "s", dir);
  for (size_t i = 0; i < k; i++) free(all[i]);
  free(all);
  wh_org_destroy(&org);
  return rc;
}

static void s_usage(void) {
  fprintf(stderr,
          "usage: whistlectl [--json] [--intake EP] [--notify EP] [--feed EP] [--desk EP]\n"
          "                  submit < reports.jsonl\n"
          "                  show TICKET\n"
          "                  triage [--community C] [--grid G] [--address A] [--category C]\n"
          "                         [--care TAG,..] TEXT  (center) the decision TEXT would get,\n"
          "                         with the words that decided; nothing is stored\n"
          "                  list [--mine] [--color red|yellow|green] [--level 1|2|3] [--party P]\n"
          "                       [--state S] [--overdue] [--extension pending] [--limit N] [--after T]\n"
          "   at the desk, each with [--request-id ID] [--version N] [--internal TEXT]:\n"
          "                  sign ID                      progress ID TEXT\n"
          "                  return ID not_ours|wrong_place|unclear_owner|other TEXT\n"
          "                  assign ID --lead P [--co P,..] [--class C] [--color C] [--level N] TEXT\n"
          "                  uphold ID TEXT               extend ID UNTIL TEXT\n"
          "                  approve ID TEXT              refuse ID TEXT\n"
          "                  resolve ID TEXT              close ID TEXT     reopen ID TEXT\n"
          "                  feedback ID satisfied|basically_satisfied|unsatisfied|unreachable\n"
          "                           [--unresolved] [TEXT]\n"
          "                  void ID prank|test|not_street TEXT           supervise ID TEXT\n"
          "                  feed [PARTY] [--from N] [--follow]\n"
          "                  parked                 (center) what each service has parked, and why\n"
          "                  redrive MESSAGE_ID     (center) send it again, with its ticket's others\n"
          "                  clock TIME|OFFSET_S    (center, test stacks) every service's clock to\n"
          "                                         TIME, or real time + OFFSET_S (WHISTLE_TEST_CLOCK=1)\n"
          "                  keygen [--dir DIR] [--org FILE] [--missing] [NAME...]\n"
          "       --as PARTY (default center) speaks with DIR/PARTY.key from --keys DIR\n");
}

int main(int argc, char **argv) {
  s_ctx_t c = {0};
  wh__log_level = WH_LOG_ERROR; /* the client's own output is its answer */
  s_load_state(&c);
  s_load_env(&c);
  const char *color = NULL, *level = NULL, *party = NULL, *state = NULL;
  const char *dir = ".", *org = NULL;
  int missing = 0;
  c.as = getenv("WHISTLE_AS") && *getenv("WHISTLE_AS") ? getenv("WHISTLE_AS") : "center";
  int overdue = 0, follow = 0, limit = 100, mine = 0;
  const char *after = NULL, *extension = NULL;
  s_act_opts ao = {0};
  s_try_q tq = {0};
  uint64_t from = 1;
  static const struct option opts[] = {
      {"json", no_argument, 0, 'j'},         {"intake", required_argument, 0, 'i'},
      {"notify", required_argument, 0, 'n'}, {"feed", required_argument, 0, 'f'},
      {"desk", required_argument, 0, 'D'}, {"color", required_argument, 0, 'c'},
      {"level", required_argument, 0, 'l'},  {"party", required_argument, 0, 'p'},
      {"state", required_argument, 0, 's'},  {"overdue", no_argument, 0, 'o'},
      {"limit", required_argument, 0, 'L'},  {"from", required_argument, 0, 'F'},
      {"follow", no_argument, 0, 'w'},       {"help", no_argument, 0, 'h'},
      {"as", required_argument, 0, 'a'},     {"keys", required_argument, 0, 'k'},
      {"dir", required_argument, 0, 'd'},    {"org", required_argument, 0, 'O'},
      {"missing", no_argument, 0, 'm'},
      {"mine", no_argument, 0, 'M'},         {"after", required_argument, 0, 'A'},
      {"extension", required_argument, 0, 'E'}, {"request-id", required_argument, 0, 'R'},
      {"version", required_argument, 0, 'V'}, {"internal", required_argument, 0, 'I'},
      {"lead", required_argument, 0, 'Q'},   {"co", required_argument, 0, 'C'},
      {"class", required_argument, 0, 'K'},  {"unresolved", no_argument, 0, 'U'},
      {"community", required_argument, 0, 'y'}, {"grid", required_argument, 0, 'g'},
      {"address", required_argument, 0, 'x'}, {"category", required_argument, 0, 'z'},
      {"care", required_argument, 0, 'e'},
      {0, 0, 0, 0}};
  int ch;
  while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (ch) {
    case 'j': c.json = 1; break;
    case 'i': s_kv(&c, "WHISTLE_INTAKE", optarg); break;
    case 'n': s_kv(&c, "WHISTLE_NOTIFY", optarg); break;
    case 'f': s_kv(&c, "WHISTLE_FEED", optarg); break;
    case 'D': s_kv(&c, "WHISTLE_DESK", optarg); break;
    case 'c': color = optarg; break;
    case 'l': level = optarg; break;
    case 'p': party = optarg; break;
    case 's': state = optarg; break;
    case 'o': overdue = 1; break;
    case 'L': limit = atoi(optarg); break;
    case 'F': from = strtoull(optarg, NULL, 10); break;
    case 'w': follow = 1; break;
    case 'a': c.as = optarg; break;
    case 'k': s_kv(&c, "WHISTLE_KEYS", optarg); break;
    case 'd': dir = optarg; break;
    case 'O': org = optarg; break;
    case 'm': missing = 1; break;
    case 'M': mine = 1; break;
    case 'A': after = optarg; break;
    case 'E': extension = optarg; break;
    case 'R': ao.request_id = optarg; break;
    case 'V': ao.version = (unsigned)strtoul(optarg, NULL, 10); break;
    case 'I': ao.internal = optarg; break;
    case 'Q': ao.lead = optarg; break;
    case 'C': ao.co = optarg; break;
    case 'K': ao.klass = optarg; break;
    case 'U': ao.unresolved = 1; break;
    case 'y': tq.community = optarg; break;
    case 'g': tq.grid = optarg; break;
    case 'x': tq.address = optarg; break;
    case 'z': tq.category = optarg; break;
    case 'e': tq.care = optarg; break;
    default: s_usage(); return 2;
    }
  }
  if (optind >= argc) {
    s_usage();
    return 2;
  }
  const char *cmd = argv[optind];
  if (wh_code_check(c.as, WH_KEY_NAME_MAX)) {
    fprintf(stderr, "whistlectl: --as is a party code\n");
    return 2;
  }
  if (color && strcmp(color, "red") && strcmp(color, "yellow") && strcmp(color, "green")) {
    fprintf(stderr, "whistlectl: --color is red, yellow or green\n");
    return 2;
  }
  if (level && strcmp(level, "1") && strcmp(level, "2") && strcmp(level, "3")) {
    fprintf(stderr, "whistlectl: --level is 1, 2 or 3\n");
    return 2;
  }
  if (!strcmp(cmd, "submit") && optind + 1 == argc) return s_submit(&c);
  if (!strcmp(cmd, "show") && optind + 2 == argc) return s_show(&c, argv[optind + 1]);
  if (!strcmp(cmd, "triage") && optind + 2 == argc) return s_triage(&c, argv[optind + 1], &tq);
  if (!strcmp(cmd, "list") && optind + 1 == argc) {
    s_list_q lq = {color, level, party, state, extension, after, overdue, mine,
                   limit > 0 ? limit : 100};
    return s_list(&c, &lq);
  }
  const s_verb_t *vb = s_verb(cmd);
  if (vb && optind + 2 <= argc) {
    ao.color = color;
    ao.level = level;
    return s_act(&c, vb, argv + optind + 1, argc - optind - 1, &ao);
  }
  if (!strcmp(cmd, "feed") && optind + 2 >= argc)
    return s_feed(&c, optind + 2 == argc ? argv[optind + 1] : c.as, from, follow);
  if (!strcmp(cmd, "parked") && optind + 1 == argc) return s_parked_all(&c);
  if (!strcmp(cmd, "redrive") && optind + 2 == argc) return s_redrive_one(&c, argv[optind + 1]);
  if (!strcmp(cmd, "clock") && optind + 2 == argc) return s_clock_all(&c, argv[optind + 1]);
  if (!strcmp(cmd, "keygen") && (optind + 1 < argc || org))
    return s_keygen(dir, org, missing, argv + optind + 1, argc - optind - 1);
  s_usage();
  return 2;
}
