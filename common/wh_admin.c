/* wh_admin - the center's requests on a service's admin socket. */
#include "wh_admin.h"
#include "wh_bus.h"
#include "wh_clock.h"
#include "wh_codec.h"
#include "wh_consumer.h"
#include "wh_err.h"
#include "wh_log.h"
#include "wh_text.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* Requests answered per turn of the loop: each may be a query, and the
 * loop's other sockets and timers come between two. */
#define ADMIN_PER_TURN 1
/* A reason is cut to this many bytes (at a character boundary) in an
 * answer, so that a page always fits the frame cap. */
#define ADMIN_REASON_MAX 512

struct wh_admin_s {
  wh_bus_t *bus;
  wh_outbox_t *ob;
  const char *service, *center;
  int secure;
  int test_clock; /* WHISTLE_TEST_CLOCK=1 at start: the clock may be moved */
  void (*on_clock)(void *arg);
  void *clock_arg;
};

typedef struct {
  wh_arena_t *arena;
  Whistle__ParkedMessage **items;
  size_t n;
  int oom;
} s_page_t;

static char *s_dup(wh_arena_t *a, const char *s, size_t max) {
  size_t cap = strnlen(s, max) + 1;
  char *d = wh_arena_alloc(a, cap);
  if (d) wh_str_copy(d, cap, s);
  return d;
}

static void s_each(void *arg, const wh_parked_msg_t *m) {
  s_page_t *p = arg;
  Whistle__ParkedMessage *pm = wh_arena_alloc(p->arena, sizeof *pm);
  if (!pm) {
    p->oom = 1;
    return;
  }
  whistle__parked_message__init(pm);
  pm->id = m->id;
  pm->seq = m->seq;
  pm->parked_at_ms = m->parked_at_ms;
  pm->dest = s_dup(p->arena, m->dest, 128);
  pm->message_id = s_dup(p->arena, m->message_id, 128);
  pm->ticket_id = s_dup(p->arena, m->ticket_id, 128);
  pm->reason = s_dup(p->arena, m->reason, ADMIN_REASON_MAX);
  pm->behind = s_dup(p->arena, m->behind, 128);
  if (!pm->dest || !pm->message_id || !pm->ticket_id || !pm->reason || !pm->behind) {
    p->oom = 1;
    return;
  }
  p->items[p->n++] = pm;
}

static void s_send(wh_admin_t *a, zmq_msg_t *route, const char *message_id,
                   Whistle__AdminReply *rep) {
  Whistle__Envelope out = WHISTLE__ENVELOPE__INIT;
  out.message_id = (char *)message_id;
  out.sender = (char *)a->service;
  out.body_case = WHISTLE__ENVELOPE__BODY_ADMIN_REPLY;
  out.admin_reply = rep;
  wh_reply(a->bus, route, &out);
}

static void s_refuse(wh_admin_t *a, zmq_msg_t *route, const char *message_id, int err,
                     const char *text) {
  Whistle__AdminReply rep = WHISTLE__ADMIN_REPLY__INIT;
  Whistle__Error e = WHISTLE__ERROR__INIT;
  rep.service = (char *)a->service;
  e.code = wh_err_to_wire(err);
  e.text = (char *)text;
  rep.error = &e;
  s_send(a, route, message_id, &rep);
}

static void s_parked(wh_admin_t *a, zmq_msg_t *route, const char *mid,
                     const Whistle__ParkedQuery *q) {
  int max = q->max && q->max < WH_ADMIN_PAGE_MAX ? (int)q->max : WH_ADMIN_PAGE_MAX;
  Whistle__ParkedMessage *items[WH_ADMIN_PAGE_MAX];
  s_page_t p = {wh_arena_new(), items, 0, 0};
  int more = 0;
  int n = p.arena ? wh_outbox_parked(a->ob, q->after, max, s_each, &p, &more) : WH_ENOMEM;
  if (n < 0 || p.oom) {
    s_refuse(a, route, mid, n == WH_EDB ? WH_EDB : WH_ENOMEM,
             n == WH_EDB ? "the outbox store is unavailable; ask again" : "out of memory");
  } else {
    Whistle__AdminReply rep = WHISTLE__ADMIN_REPLY__INIT;
    rep.service = (char *)a->service;
    rep.parked = p.items;
    rep.n_parked = p.n;
    rep.more = more;
    s_send(a, route, mid, &rep);
  }
  wh_arena_destroy(&p.arena);
}

static void s_redrive(wh_admin_t *a, zmq_msg_t *route, const char *mid, const char *who,
                      const Whistle__Redrive *q) {
  if (!q->message_id[0] || strlen(q->message_id) > 128) {
    s_refuse(a, route, mid, WH_EFIELD, "message_id: 1-128 characters");
    return;
  }
  int n = wh_outbox_redrive(a->ob, q->message_id);
  if (n == WH_ENOTFOUND) {
    s_refuse(a, route, mid, WH_ENOTFOUND, "no message of that id is parked here");
    return;
  }
  if (n < 0) {
    s_refuse(a, route, mid, WH_EDB, "the outbox store is unavailable; ask again");
    return;
  }
  wh_info("%s asked to send parked message %.128s again", who, q->message_id);
  Whistle__AdminReply rep = WHISTLE__ADMIN_REPLY__INIT;
  rep.service = (char *)a->service;
  rep.redriven = (uint32_t)n;
  s_send(a, route, mid, &rep);
}

/* Tests only: the business clock moved, and the service told to re-arm. */
static void s_clock(wh_admin_t *a, zmq_msg_t *route, const char *mid, const Whistle__ClockOffset *q) {
  if (!a->test_clock) {
    s_refuse(a, route, mid, WH_EFORBIDDEN,
             "the business clock is fixed; a test stack starts with WHISTLE_TEST_CLOCK=1");
    return;
  }
  if (q->offset_s < -INT64_C(10) * 365 * 86400 || q->offset_s > INT64_C(10) * 365 * 86400) {
    s_refuse(a, route, mid, WH_EFIELD, "offset_s: within ten years");
    return;
  }
  wh_clock_set_offset_ms(q->offset_s * 1000);
  wh_info("business clock moved to real time %+" PRId64 " s", q->offset_s);
  if (a->on_clock) a->on_clock(a->clock_arg);
  Whistle__AdminReply rep = WHISTLE__ADMIN_REPLY__INIT;
  rep.service = (char *)a->service;
  rep.now_ms = wh_clock_now_ms();
  s_send(a, route, mid, &rep);
}

void wh_admin_on_clock(wh_admin_t *a, void (*fn)(void *arg), void *arg) {
  if (!a) return;
  a->on_clock = fn;
  a->clock_arg = arg;
}

static void s_answer(wh_admin_t *a, zmq_msg_t *route, zmq_msg_t *body) {
  const char *who = wh_peer(body);
  Whistle__Envelope *env = NULL;
  int rc = wh_env_unpack(zmq_msg_data(body), zmq_msg_size(body), &env);
  const char *mid = rc == 0 ? env->message_id : "";
  if (rc) {
    s_refuse(a, route, mid, rc, wh_strerror(rc));
  } else if (!a->secure || !who || strcmp(who, a->center)) {
    wh_warn("admin request from %s refused: only the center's key is answered",
            who ? who : "(no key)");
    s_refuse(a, route, mid, WH_EFORBIDDEN,
             a->secure ? "only the center may ask a service's admin socket"
                       : "this service runs without keys: its admin socket answers nobody");
  } else if (env->body_case != WHISTLE__ENVELOPE__BODY_ADMIN || !env->admin) {
    s_refuse(a, route, mid, WH_EUNEXPECTED, "the admin socket takes admin requests");
  } else if (env->admin->what_case == WHISTLE__ADMIN_REQUEST__WHAT_PARKED) {
    s_parked(a, route, mid, env->admin->parked);
  } else if (env->admin->what_case == WHISTLE__ADMIN_REQUEST__WHAT_REDRIVE) {
    s_redrive(a, route, mid, who, env->admin->redrive);
  } else if (env->admin->what_case == WHISTLE__ADMIN_REQUEST__WHAT_CLOCK) {
    s_clock(a, route, mid, env->admin->clock);
  } else {
    s_refuse(a, route, mid, WH_EUNEXPECTED, "an admin request asks for parked or redrive");
  }
  if (env) wh_env_free(env);
}

static void s_on_readable(wh_bus_t *bus, void *arg) {
  wh_admin_t *a = arg;
  for (int k = 0; k < ADMIN_PER_TURN; k++) {
    zmq_msg_t route, body;
    if (wh_bus_recv(bus, &route, &body) != 1) break;
    s_answer(a, &route, &body);
    zmq_msg_close(&route);
    zmq_msg_close(&body);
  }
}

wh_admin_t *wh_admin_new(uv_loop_t *loop, void *zctx, const wh_keys_t *keys, wh_outbox_t *ob,
                         const char *service, const char *center, const char *endpoint) {
  wh_admin_t *a = calloc(1, sizeof *a);
  if (!a) return NULL;
  a->ob = ob;
  a->service = service;
  a->center = center;
  a->secure = keys != NULL;
  const char *tc = getenv("WHISTLE_TEST_CLOCK");
  a->test_clock = tc && !strcmp(tc, "1");
  a->bus = wh_bus_new(loop, zctx, ZMQ_ROUTER, endpoint, 1, keys, NULL, s_on_readable, a);
  if (!a->bus) {
    free(a);
    return NULL;
  }
  return a;
}

void wh_admin_destroy(wh_admin_t **self_p) {
  if (!self_p || !*self_p) return;
  wh_admin_t *a = *self_p;
  *self_p = NULL;
  wh_bus_destroy(&a->bus);
  free(a);
}
