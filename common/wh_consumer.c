/* wh_consumer - applies what relays send, a batch per transaction. */
#include "wh_consumer.h"
#include "wh_outbox.h"
#include "wh_clock.h"
#include "wh_codec.h"
#include "wh_err.h"
#include "wh_log.h"
#include "wh_text.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONSUMER_BATCH WH_CONSUMER_BATCH


/* ---- consumer ---------------------------------------------------------- */

typedef struct {
  zmq_msg_t peer;
  Whistle__Envelope *env;
  int status; /* Whistle__AckStatus */
  int err;
  const char *why; /* the refusal in words, when more than err says */
} s_item_t;

/* Requests (ops->request) waiting to be answered, at most: each is
 * answered from the loop's idle phase, one a turn, never inside the
 * receive round, so a flood of them neither holds up the batch behind
 * them nor keeps the loop from its other sockets and timers. */
#define CONSUMER_REQUESTS 64

typedef struct {
  zmq_msg_t peer;
  uint8_t *frame; /* the request, packed again */
  size_t len;
  char who[WH_KEY_NAME_MAX + 1];
  int has_who;
} s_request_t;

struct wh_consumer_s {
  wh_pg_t *pg;
  wh_bus_t *bus;
  const wh_consumer_ops_t *ops;
  void *svc;
  s_item_t items[CONSUMER_BATCH];
  int nitems;
  wh_arena_t *arena; /* the envelopes of items, until the round ends */
  /* with ops->first_applied: the claim, and the check for one ticket */
  wh_inbox_t inbox;
  s_request_t requests[CONSUMER_REQUESTS]; /* a ring */
  int rhead, rlen;
  uv_idle_t *serve; /* answers one request a turn while any wait */
  uv_check_t *flush; /* applies the round's batch after the loop's poll phase */
};

static void s_on_serve(uv_idle_t *h) {
  wh_consumer_t *c = h->data;
  if (!c || c->rlen == 0) {
    uv_idle_stop(h);
    return;
  }
  s_request_t *q = &c->requests[c->rhead];
  c->rhead = (c->rhead + 1) % CONSUMER_REQUESTS;
  c->rlen--;
  Whistle__Envelope *env = NULL;
  if (wh_env_unpack(q->frame, q->len, &env) == 0)
    c->ops->request(c->svc, c, &q->peer, q->has_who ? q->who : NULL, env);
  wh_env_free(env);
  free(q->frame);
  zmq_msg_close(&q->peer);
  if (c->rlen == 0) uv_idle_stop(h);
}

static void s_free_handle(uv_handle_t *h) { free(h); }

/* Keeps a request for the idle phase; when too many wait, answers it
 * "busy" at once. */
static void s_request_keep(wh_consumer_t *c, const zmq_msg_t *peer, const char *who,
                           const Whistle__Envelope *env) {
  s_request_t *q = &c->requests[(c->rhead + c->rlen) % CONSUMER_REQUESTS];
  if (c->rlen == CONSUMER_REQUESTS || wh_env_pack(env, &q->frame, &q->len)) {
    wh_reply_error(c->bus, peer, WH_EDB, "busy: too many requests waiting; ask again");
    return;
  }
  zmq_msg_init(&q->peer);
  zmq_msg_copy(&q->peer, (zmq_msg_t *)peer);
  q->has_who = who != NULL;
  if (who) wh_str_copy(q->who, sizeof q->who, who);
  c->rlen++;
  if (!uv_is_active((uv_handle_t *)c->serve)) uv_idle_start(c->serve, s_on_serve);
}

int wh_reply(wh_bus_t *bus, const zmq_msg_t *peer, const Whistle__Envelope *env) {
  uint8_t *buf;
  size_t len;
  if (wh_env_pack(env, &buf, &len)) return WH_ENOMEM;
  int rc = wh_bus_send(bus, zmq_msg_data((zmq_msg_t *)peer), zmq_msg_size((zmq_msg_t *)peer), buf,
                       len);
  free(buf);
  return rc;
}

void wh_reply_error(wh_bus_t *bus, const zmq_msg_t *peer, int err, const char *text) {
  Whistle__Error e = WHISTLE__ERROR__INIT;
  e.code = wh_err_to_wire(err);
  e.text = (char *)(text ? text : wh_strerror(err));
  Whistle__Envelope env = WHISTLE__ENVELOPE__INIT;
  env.body_case = WHISTLE__ENVELOPE__BODY_ERROR;
  env.error = &e;
  wh_reply(bus, peer, &env);
}

wh_bus_t *wh_consumer_bus(wh_consumer_t *c) { return c->bus; }

int wh_consumer_reply(wh_consumer_t *c, const zmq_msg_t *peer, const Whistle__Envelope *env) {
  return wh_reply(c->bus, peer, env);
}

static void s_ack_fill(const s_item_t *it, Whistle__Ack *a, Whistle__Error *e) {
  whistle__ack__init(a);
  whistle__error__init(e);
  a->message_id = it->env->message_id;
  a->delivery_tag = it->env->delivery_tag;
  a->status = it->status;
  if (it->err) {
    e->code = wh_err_to_wire(it->err);
    e->text = (char *)(it->why ? it->why : wh_strerror(it->err));
    a->error = e;
  }
}

static void s_ack(wh_consumer_t *c, s_item_t *it) {
  Whistle__Ack a;
  Whistle__Error e;
  s_ack_fill(it, &a, &e);
  Whistle__Envelope env = WHISTLE__ENVELOPE__INIT;
  env.body_case = WHISTLE__ENVELOPE__BODY_ACK;
  env.ack = &a;
  wh_consumer_reply(c, &it->peer, &env);
}

static int s_same_peer(zmq_msg_t *a, zmq_msg_t *b) {
  return zmq_msg_size(a) == zmq_msg_size(b) && !memcmp(zmq_msg_data(a), zmq_msg_data(b), zmq_msg_size(a));
}

/* Answers every item of a committed batch: one frame per sender (a batch
 * holds at most CONSUMER_BATCH answers of a few dozen bytes each, well
 * within the frame cap), where a frame per message cost both sides a
 * packing, a send and an unpacking apiece. */
static void s_ack_all(wh_consumer_t *c) {
  Whistle__Ack a[CONSUMER_BATCH];
  Whistle__Error e[CONSUMER_BATCH];
  Whistle__Ack *list[CONSUMER_BATCH];
  char done[CONSUMER_BATCH] = {0};
  for (int i = 0; i < c->nitems; i++) {
    if (done[i]) continue;
    size_t n = 0;
    for (int j = i; j < c->nitems; j++) {
      if (done[j] || !s_same_peer(&c->items[i].peer, &c->items[j].peer)) continue;
      s_ack_fill(&c->items[j], &a[n], &e[n]);
      list[n] = &a[n];
      n++;
      done[j] = 1;
    }
    Whistle__Acks acks = WHISTLE__ACKS__INIT;
    acks.n_acks = n;
    acks.acks = list;
    Whistle__Envelope env = WHISTLE__ENVELOPE__INIT;
    env.body_case = WHISTLE__ENVELOPE__BODY_ACKS;
    env.acks = &acks;
    wh_consumer_reply(c, &c->items[i].peer, &env);
  }
}

/* Applies items[from..to) in one transaction: one statement claims them
 * all in the inbox, the service looks up what they need at once, applies
 * each in memory and writes its tables once. Returns 0 when committed,
 * WH_EDB when rolled back (statuses then mean nothing).
 * trust_first: a first message (seq 1) its relay sent for the first time
 * (first_send) is applied without asking the database whether it was
 * before, when the service's state rows record first messages: no one can
 * have applied it. Should the flag be wrong all the same, the state row's
 * key refuses the second copy, the batch fails, and the retry in halves
 * (s_apply_split), which trusts no flag, finds it seen. */
static int s_apply_batch(wh_consumer_t *c, int from, int to, int trust_first) {
  wh_pg_t *pg = c->pg;
  if (wh_pg_ready(pg)) return WH_EDB;
  wh_claim_t claims[CONSUMER_BATCH], ask[CONSUMER_BATCH];
  int asked[CONSUMER_BATCH];
  const Whistle__Envelope *apply[CONSUMER_BATCH], *all[CONSUMER_BATCH];
  int n = to - from, napply = 0, nask = 0;
  int lean = c->inbox.get_first != NULL;
  for (int i = 0; i < n; i++) {
    const Whistle__Envelope *env = all[i] = c->items[from + i].env;
    claims[i] = (wh_claim_t){.source = env->sender, .ticket_id = env->ticket_id, .seq = env->seq};
    if (trust_first && lean && env->first_send && env->seq == 1) {
      claims[i].claim = WH_INBOX_APPLY;
    } else {
      asked[nask] = i;
      ask[nask++] = claims[i];
    }
  }
  /* BEGIN, the claims and the service's lookup go in one round trip; with
   * nothing to ask or look up, BEGIN waits for the first statement. */
  wh_pg_step_t look;
  int has_look = c->ops->lookup ? c->ops->lookup(c->svc, all, n, &look) : 0;
  int open = 0;
  if (nask) {
    if (wh_inbox_claim_in(pg, &c->inbox, 1, ask, nask, has_look ? &look : NULL))
      goto rollback;
    for (int k = 0; k < nask; k++) claims[asked[k]].claim = ask[k].claim;
    open = 1;
  } else if (has_look) {
    if (wh_pg_pipeline(pg, 1, &look, 1, WH_PG_OPEN)) goto rollback;
    open = 1;
  }
  /* One message twice in the batch, a first sending and a resend that the
   * database was asked about (s_claim settles copies among those): the
   * later copy was seen. Under load a batch holds first sendings only, and
   * this costs nothing. */
  for (int k = 0; k < nask && nask < n; k++) {
    wh_claim_t *a = &claims[asked[k]];
    for (int i = 0; i < n && a->claim == WH_INBOX_APPLY; i++) {
      wh_claim_t *b = &claims[i];
      if (b == a || b->claim != WH_INBOX_APPLY || !wh_claim_same(a, b)) continue;
      (i < asked[k] ? a : b)->claim = WH_INBOX_SEEN;
    }
  }
  for (int i = 0; i < n; i++) {
    s_item_t *it = &c->items[from + i];
    if (claims[i].claim == WH_INBOX_SEEN) {
      it->status = WHISTLE__ACK_STATUS__ACK_OK;
    } else if (claims[i].claim == WH_INBOX_GAP) {
      wh_debug("%s seq %u arrived before its predecessor; asking for a resend",
               it->env->ticket_id, it->env->seq);
      it->status = WHISTLE__ACK_STATUS__ACK_RETRY;
      it->err = WH_EORDER;
    } else {
      apply[napply++] = it->env;
    }
  }
  if (napply && c->ops->prepare && !open) {
    if (wh_pg_exec(pg, "BEGIN")) goto rollback;
    open = 1;
  }
  if (napply && c->ops->prepare && c->ops->prepare(c->svc, apply, napply)) goto rollback;
  for (int i = 0; i < n; i++) {
    s_item_t *it = &c->items[from + i];
    if (claims[i].claim != WH_INBOX_APPLY) continue;
    wh_log_ctx(it->env->ticket_id, it->env->message_id);
    int rc = c->ops->apply(c->svc, it->env);
    if (rc == WH_EDB) goto rollback;
    it->err = rc;
    if (rc == WH_EORDER && lean && it->env->seq == 1) {
      /* Not yet: what it depends on has not come. Nothing of it is
       * recorded (a first message's record is its state row), so its
       * sender sends it again. */
      it->status = WHISTLE__ACK_STATUS__ACK_RETRY;
      continue;
    }
    it->status = rc ? WHISTLE__ACK_STATUS__ACK_REJECTED : WHISTLE__ACK_STATUS__ACK_OK;
    if (rc) wh_error("rejected: %s", wh_strerror(rc));
  }
  wh_log_ctx(NULL, NULL);
  /* Every table's rows and the COMMIT go in one round trip. */
  wh_pg_step_t steps[WH_CONSUMER_STEPS];
  int nsteps = c->ops->steps ? c->ops->steps(c->svc, steps) : 0;
  if (wh_pg_pipeline(pg, !open, steps, nsteps, WH_PG_COMMIT)) goto aborted;
  return 0;
rollback:
  wh_log_ctx(NULL, NULL);
  wh_pg_rollback(pg);
aborted:
  if (c->ops->aborted) c->ops->aborted(c->svc);
  return WH_EDB;
}

/* Applies items [from, to) of a batch that failed as a whole: as one
 * transaction if that passes, else each half in the same way, in order,
 * down to one message. The database refusing that message's data
 * (wh_pg_refused) will refuse it every time: it is rejected, and its
 * sender parks it. Any other failure (out of space, read-only, a timeout, a
 * statement this build got wrong) is the database's or ours, not the
 * message's: it and all after it go unanswered, and their senders send
 * them again until they pass. One refused message among 512 costs about 18
 * transactions this way, where one transaction per message cost 512
 * commits, each waiting for the disk, while the rest of the path waited.
 * Returns 0, or WH_EDB when the caller must stop. */
static int s_apply_split(wh_consumer_t *c, int from, int to) {
  for (int i = from; i < to; i++) c->items[i].err = 0;
  if (s_apply_batch(c, from, to, 0) == 0) {
    if (c->ops->committed) c->ops->committed(c->svc);
    for (int i = from; i < to; i++) s_ack(c, &c->items[i]);
    return 0;
  }
  if (wh_pg_broken(c->pg)) return WH_EDB;
  if (to - from > 1) {
    int mid = from + (to - from) / 2;
    return s_apply_split(c, from, mid) ? WH_EDB : s_apply_split(c, mid, to);
  }
  s_item_t *it = &c->items[from];
  if (wh_pg_refused(c->pg)) {
    char why[320];
    wh_str_t w;
    wh_str_init(&w, why, sizeof why);
    wh_str_cat(&w, "the receiver's database refused it: ", wh_pg_why(c->pg), (char *)NULL);
    it->status = WHISTLE__ACK_STATUS__ACK_REJECTED;
    it->err = WH_EDB;
    it->why = why;
    s_ack(c, it);
    it->why = NULL;
    return 0;
  }
  wh_warn("%s seq %u from %s not taken: the database failed, not the message;"
          " left to be sent again", it->env->ticket_id, it->env->seq, it->env->sender);
  return WH_EDB;
}

static void s_consumer_flush(wh_consumer_t *c) {
  if (c->nitems == 0) return;
  int rc = s_apply_batch(c, 0, c->nitems, 1);
  if (rc == 0) {
    if (c->ops->committed) c->ops->committed(c->svc);
    s_ack_all(c);
  } else if (!wh_pg_broken(c->pg)) {
    s_apply_split(c, 0, c->nitems); /* the mark of a first sending trusted no more */
  }
  for (int i = 0; i < c->nitems; i++) zmq_msg_close(&c->items[i].peer);
  c->nitems = 0;
}

/* Answers env, from peer, at once, with status and err. */
static void s_ack_now(wh_consumer_t *c, zmq_msg_t *peer, Whistle__Envelope *env, int status,
                      int err) {
  s_item_t tmp = {.env = env, .status = status, .err = err};
  zmq_msg_init(&tmp.peer);
  zmq_msg_copy(&tmp.peer, peer);
  s_ack(c, &tmp);
  zmq_msg_close(&tmp.peer);
}

/* Takes one envelope that came from peer (borrowed; copied when kept):
 * a relayed event joins the batch, a request waits for the idle phase. */
static void s_consumer_take(wh_consumer_t *c, zmq_msg_t *peer, const char *who,
                            Whistle__Envelope *env) {
  if (env->body_case == c->ops->body) {
    /* The sender is the key the message came with, not what it says. */
    if (who) env->sender = (char *)c->ops->from;
    int err = who && strcmp(who, c->ops->from) ? WH_EFORBIDDEN
              : !env->ticket_id[0] || !env->sender[0] || env->seq == 0 || !env->message_id[0]
                  ? WH_EMISSING
              /* ids as whistle makes them: these are keys of the inbox and of
               * the services' tables, where an id of kilobytes fails the
               * index (not the data), so the message would never be answered */
              : wh_code_check(env->ticket_id, WH_RELAY_ID_MAX) ? WH_EFIELD
              : wh_code_check(env->sender, WH_RELAY_ID_MAX)    ? WH_EFIELD
              : wh_code_check(env->message_id, 3 * WH_RELAY_ID_MAX) ? WH_EFIELD
                                                                     : 0;
    if (err == WH_EFORBIDDEN) {
      wh_warn("relayed envelope from %s refused: only %s relays here", who, c->ops->from);
    } else if (err) {
      wh_warn("relayed envelope refused: %s (a ticket and a sender of at most %d characters"
              " [A-Za-z0-9_.:-], a message id of at most %d, a sequence)", wh_strerror(err),
              WH_RELAY_ID_MAX, 3 * WH_RELAY_ID_MAX);
    }
    if (err) {
      s_ack_now(c, peer, env, WHISTLE__ACK_STATUS__ACK_REJECTED, err);
      return;
    }
    if (c->nitems == CONSUMER_BATCH) {
      /* A frame of more envelopes than a relay sends at once: what does
       * not fit is not taken now, and its sender sends it again. */
      s_ack_now(c, peer, env, WHISTLE__ACK_STATUS__ACK_RETRY, 0);
      return;
    }
    s_item_t *it = &c->items[c->nitems++];
    memset(it, 0, sizeof *it);
    zmq_msg_init(&it->peer);
    zmq_msg_copy(&it->peer, peer);
    it->env = env;
  } else if (env->body_case != WHISTLE__ENVELOPE__BODY_BATCH && c->ops->request) {
    s_request_keep(c, peer, who, env);
  } else {
    wh_reply_error(c->bus, peer, WH_EUNEXPECTED, NULL);
  }
}

/* The round's batch, applied after the loop's poll phase: every socket
 * that had input has been read by then (a relay's acknowledgements among
 * them), and no query runs inside a receive callback. */
static void s_on_flush(uv_check_t *h) {
  uv_check_stop(h);
  wh_consumer_t *c = h->data;
  if (!c) return;
  s_consumer_flush(c);
  wh_arena_reset(c->arena); /* every envelope of the round */
}

static void s_consumer_on_readable(wh_bus_t *bus, void *arg) {
  wh_consumer_t *c = arg;
  zmq_msg_t head, body;
  if (uv_is_active((uv_handle_t *)c->flush)) return; /* the last round waits to be applied */
  /* Frames are read while a whole relay batch still fits. */
  for (int frames = 0; frames < WH_BUS_ROUND && c->nitems <= CONSUMER_BATCH - WH_RELAY_BATCH &&
                       wh_bus_recv(bus, &head, &body) == 1;
       frames++) {
    Whistle__Envelope *env;
    char whobuf[WH_KEY_NAME_MAX + 1];
    const char *who = wh_peer(&body);
    if (who) who = wh_str_copy(whobuf, sizeof whobuf, who);
    int rc = wh_env_unpack_in(c->arena, zmq_msg_data(&body), zmq_msg_size(&body), &env);
    zmq_msg_close(&body);
    if (rc) {
      wh_warn("bad frame from peer: %s", wh_strerror(rc));
      wh_reply_error(bus, &head, rc, NULL);
    } else if (env->body_case == WHISTLE__ENVELOPE__BODY_BATCH) {
      /* Each envelope of a batch stands alone: one that does not decode is
       * refused, and the others are taken. */
      const Whistle__Batch *b = env->batch;
      for (size_t i = 0; i < b->n_envelopes; i++) {
        Whistle__Envelope *one;
        rc = wh_env_unpack_in(c->arena, b->envelopes[i].data, b->envelopes[i].len, &one);
        if (rc) {
          wh_warn("bad envelope in a batch from peer: %s", wh_strerror(rc));
          wh_reply_error(bus, &head, rc, NULL);
          continue;
        }
        s_consumer_take(c, &head, who, one);
      }
    } else {
      s_consumer_take(c, &head, who, env);
    }
    zmq_msg_close(&head);
  }
  if (c->nitems) uv_check_start(c->flush, s_on_flush);
  else wh_arena_reset(c->arena);
}

wh_consumer_t *wh_consumer_new(uv_loop_t *loop, void *zctx, wh_pg_t *pg, const wh_keys_t *keys,
                               const char *endpoint, const wh_consumer_ops_t *ops, void *svc) {
  wh_consumer_t *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->pg = pg;
  c->ops = ops;
  c->svc = svc;
  if (wh_inbox_init(&c->inbox, ops->first_applied)) {
    free(c);
    return NULL;
  }
  c->arena = wh_arena_new();
  c->serve = malloc(sizeof *c->serve);
  if (c->serve) {
    uv_idle_init(loop, c->serve);
    c->serve->data = c;
  }
  c->flush = malloc(sizeof *c->flush);
  if (c->flush) {
    uv_check_init(loop, c->flush);
    c->flush->data = c;
  }
  c->bus = wh_bus_new(loop, zctx, ZMQ_ROUTER, endpoint, 1, keys, NULL, s_consumer_on_readable, c);
  if (!c->bus || !c->arena || !c->serve || !c->flush) {
    wh_consumer_destroy(&c);
    return NULL;
  }
  return c;
}

void wh_consumer_destroy(wh_consumer_t **self_p) {
  if (!self_p || !*self_p) return;
  wh_consumer_t *c = *self_p;
  *self_p = NULL;
  for (; c->rlen; c->rlen--, c->rhead = (c->rhead + 1) % CONSUMER_REQUESTS) {
    free(c->requests[c->rhead].frame);
    zmq_msg_close(&c->requests[c->rhead].peer);
  }
  if (c->serve) {
    c->serve->data = NULL;
    uv_close((uv_handle_t *)c->serve, s_free_handle);
  }
  if (c->flush) {
    c->flush->data = NULL;
    uv_close((uv_handle_t *)c->flush, s_free_handle);
  }
  /* A batch read and not applied is not answered: its senders send it again. */
  for (int i = 0; i < c->nitems; i++) zmq_msg_close(&c->items[i].peer);
  c->nitems = 0;
  wh_bus_destroy(&c->bus);
  wh_arena_destroy(&c->arena);
  wh_inbox_fini(&c->inbox);
  free(c);
}
