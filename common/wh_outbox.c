/* wh_outbox - outbox rows, the relay that sends them, the inbox that
 * receives them, and the batching consumer. */
#include "wh_outbox.h"
#include "wh_clock.h"
#include "wh_codec.h"
#include "wh_err.h"
#include "wh_log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RELAY_WINDOW 1024     /* rows in flight per destination */
#define RELAY_RESEND_MS 2000  /* unacknowledged this long: send again */
#define RELAY_SCAN_MS 500     /* full scan for resends and stragglers */
#define CONSUMER_BATCH 256    /* envelopes applied per transaction at most */

const wh_migration_t wh_outbox_migration = {
    "000_outbox",
    "CREATE TABLE outbox ("
    "  id bigserial PRIMARY KEY,"
    "  dest text NOT NULL,"
    "  message_id text NOT NULL,"
    "  ticket_id text NOT NULL,"
    "  seq integer NOT NULL,"
    "  payload bytea NOT NULL,"
    "  created_at timestamptz NOT NULL DEFAULT now(),"
    "  delivered_at timestamptz,"
    "  parked_at timestamptz,"
    "  last_error text);"
    "CREATE INDEX outbox_pending ON outbox (dest, id)"
    "  WHERE delivered_at IS NULL AND parked_at IS NULL;"
    "CREATE TABLE inbox ("
    "  source text NOT NULL,"
    "  ticket_id text NOT NULL,"
    "  last_seq integer NOT NULL,"
    "  updated_at timestamptz NOT NULL DEFAULT now(),"
    "  PRIMARY KEY (source, ticket_id));"};

static const wh_stmt_t s_put = {
    "wh_outbox_put",
    "INSERT INTO outbox (dest, message_id, ticket_id, seq, payload) VALUES ($1,$2,$3,$4,$5)"};
static const wh_stmt_t s_new_rows = {
    "wh_outbox_new",
    "SELECT id, payload FROM outbox WHERE dest = $1 AND delivered_at IS NULL"
    " AND parked_at IS NULL AND id > $2 ORDER BY id LIMIT $3"};
static const wh_stmt_t s_delivered = {
    "wh_outbox_delivered",
    "UPDATE outbox SET delivered_at = now() WHERE id = ANY($1::bigint[])"};
static const wh_stmt_t s_parked = {
    "wh_outbox_parked", "UPDATE outbox SET parked_at = now(), last_error = $2 WHERE id = $1"};
static const wh_stmt_t s_inbox_first = {
    "wh_inbox_first",
    "INSERT INTO inbox (source, ticket_id, last_seq) VALUES ($1,$2,1)"
    " ON CONFLICT (source, ticket_id) DO NOTHING RETURNING last_seq"};
static const wh_stmt_t s_inbox_next = {
    "wh_inbox_next",
    "UPDATE inbox SET last_seq = $3, updated_at = now()"
    " WHERE source = $1 AND ticket_id = $2 AND last_seq = $3 - 1 RETURNING last_seq"};
static const wh_stmt_t s_inbox_get = {
    "wh_inbox_get", "SELECT last_seq FROM inbox WHERE source = $1 AND ticket_id = $2"};

int wh_outbox_put(wh_pg_t *pg, const char *sender, const char *dest, Whistle__Envelope *env) {
  char mid[37];
  wh_uuid(mid);
  env->message_id = mid;
  env->sender = (char *)sender;
  env->created_at_ms = wh_clock_now_ms();
  uint8_t *buf;
  size_t len;
  if (wh_env_pack(env, &buf, &len)) return WH_ENOMEM;
  char seq[16];
  snprintf(seq, sizeof seq, "%" PRIu32, env->seq);
  const char *v[5] = {dest, mid, env->ticket_id, seq, (const char *)buf};
  int l[5] = {0, 0, 0, 0, (int)len};
  int f[5] = {0, 0, 0, 0, 1};
  PGresult *r = wh_pg_run(pg, &s_put, 5, v, l, f);
  free(buf);
  env->message_id = (char *)protobuf_c_empty_string;
  env->sender = (char *)protobuf_c_empty_string;
  if (!r) return WH_EDB;
  PQclear(r);
  return 0;
}

/* ---- the in-flight table: outbox id -> time sent ---------------------- */

typedef struct {
  uint64_t id; /* 0 = empty */
  int64_t sent_ms;
} s_slot_t;

#define SLOTS (RELAY_WINDOW * 4)

static s_slot_t *s_find(s_slot_t *t, uint64_t id) {
  for (size_t i = (size_t)(id * 11400714819323198485ull) % SLOTS;; i = (i + 1) % SLOTS)
    if (t[i].id == id || t[i].id == 0) return &t[i];
}

static void s_remove(s_slot_t *t, uint64_t id) {
  s_slot_t *s = s_find(t, id);
  if (s->id != id) return;
  /* Backward-shift deletion keeps probe chains intact without tombstones. */
  size_t i = (size_t)(s - t);
  for (size_t j = (i + 1) % SLOTS; t[j].id; j = (j + 1) % SLOTS) {
    size_t home = (size_t)(t[j].id * 11400714819323198485ull) % SLOTS;
    if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
      t[i] = t[j];
      i = j;
    }
  }
  t[i].id = 0;
}

/* ---- relay ------------------------------------------------------------- */

struct wh_relay_s {
  wh_pg_t *pg;
  wh_bus_t *bus;
  char *dest;
  uv_timer_t scan;
  s_slot_t *inflight;
  int ninflight;
  uint64_t high; /* newest id sent by this process */
};

static void s_relay_send_rows(wh_relay_t *r, uint64_t after, int64_t now) {
  char after_s[24], lim[16];
  snprintf(after_s, sizeof after_s, "%" PRIu64, after);
  snprintf(lim, sizeof lim, "%d", RELAY_WINDOW);
  const char *v[3] = {r->dest, after_s, lim};
  if (wh_pg_ready(r->pg)) return;
  PGresult *res = wh_pg_run(r->pg, &s_new_rows, 3, v, NULL, NULL);
  if (!res) return;
  uint8_t *frame = NULL;
  size_t cap = 0;
  for (int i = 0; i < PQntuples(res); i++) {
    uint64_t id = strtoull(PQgetvalue(res, i, 0), NULL, 10);
    s_slot_t *slot = s_find(r->inflight, id);
    if (slot->id == id && now - slot->sent_ms < RELAY_RESEND_MS) continue;
    if (slot->id != id && r->ninflight >= RELAY_WINDOW) break;
    size_t blen;
    unsigned char *bytes = PQunescapeBytea((const unsigned char *)PQgetvalue(res, i, 1), &blen);
    if (!bytes) continue;
    if (blen + 32 > cap) {
      cap = blen + 32;
      uint8_t *nf = realloc(frame, cap);
      if (!nf) {
        PQfreemem(bytes);
        break;
      }
      frame = nf;
    }
    size_t flen = wh_env_stamp(bytes, blen, id, now, frame);
    PQfreemem(bytes);
    if (wh_bus_send(r->bus, NULL, 0, frame, flen)) break; /* queue full: next scan */
    if (slot->id != id) {
      slot->id = id;
      r->ninflight++;
    }
    slot->sent_ms = now;
    if (id > r->high) r->high = id;
  }
  free(frame);
  PQclear(res);
}

static void s_relay_on_scan(uv_timer_t *t) {
  wh_relay_t *r = t->data;
  s_relay_send_rows(r, 0, wh_clock_now_ms());
}

void wh_relay_kick(wh_relay_t *r) {
  if (r->ninflight < RELAY_WINDOW) s_relay_send_rows(r, r->high, wh_clock_now_ms());
}

static void s_relay_on_ack(wh_bus_t *bus, void *arg) {
  wh_relay_t *r = arg;
  char list[RELAY_WINDOW * 21 + 3];
  size_t n = 0;
  list[n++] = '{';
  int got = 0;
  zmq_msg_t head, body;
  while (got < RELAY_WINDOW && wh_bus_recv(bus, &head, &body) == 1) {
    Whistle__Envelope *env;
    if (wh_env_unpack(zmq_msg_data(&body), zmq_msg_size(&body), &env) == 0) {
      if (env->body_case == WHISTLE__ENVELOPE__BODY_ACK) {
        Whistle__Ack *a = env->ack;
        s_slot_t *slot = s_find(r->inflight, a->delivery_tag);
        if (a->status == WHISTLE__ACK_STATUS__ACK_OK) {
          n += (size_t)snprintf(list + n, sizeof list - n, "%s%" PRIu64, got ? "," : "",
                                a->delivery_tag);
          got++;
          if (slot->id == a->delivery_tag) {
            s_remove(r->inflight, a->delivery_tag);
            r->ninflight--;
          }
        } else if (a->status == WHISTLE__ACK_STATUS__ACK_REJECTED) {
          char tag[24];
          snprintf(tag, sizeof tag, "%" PRIu64, a->delivery_tag);
          const char *text = a->error && a->error->text ? a->error->text : "rejected";
          wh_error("%s rejected message %s: %s; parked", r->dest, a->message_id, text);
          const char *v[2] = {tag, text};
          PGresult *res = wh_pg_ready(r->pg) ? NULL : wh_pg_run(r->pg, &s_parked, 2, v, NULL, NULL);
          if (res) PQclear(res);
          if (slot->id == a->delivery_tag) {
            s_remove(r->inflight, a->delivery_tag);
            r->ninflight--;
          }
        } else if (slot->id == a->delivery_tag) {
          /* Retry: let the next scan send it again, after its predecessor. */
          slot->sent_ms = 0;
        }
      } else if (env->body_case == WHISTLE__ENVELOPE__BODY_ERROR) {
        wh_warn("%s answered an error: %s", r->dest, env->error->text);
      }
      wh_env_free(env);
    }
    zmq_msg_close(&head);
    zmq_msg_close(&body);
  }
  list[n++] = '}';
  list[n] = '\0';
  if (got && wh_pg_ready(r->pg) == 0) {
    const char *v[1] = {list};
    PGresult *res = wh_pg_run(r->pg, &s_delivered, 1, v, NULL, NULL);
    if (res) PQclear(res);
    /* If that failed the rows stay undelivered and are sent again: the
     * receiver's inbox makes the repeat harmless. */
  }
  if (got) wh_relay_kick(r);
}

wh_relay_t *wh_relay_new(uv_loop_t *loop, void *zctx, wh_pg_t *pg, const char *dest,
                         const char *endpoint) {
  wh_relay_t *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  r->pg = pg;
  r->dest = strdup(dest);
  r->inflight = calloc(SLOTS, sizeof *r->inflight);
  r->bus = wh_bus_new(loop, zctx, ZMQ_DEALER, endpoint, 0, s_relay_on_ack, r);
  if (!r->bus || !r->inflight || !r->dest) {
    wh_bus_destroy(&r->bus);
    free(r->inflight);
    free(r->dest);
    free(r);
    return NULL;
  }
  uv_timer_init(loop, &r->scan);
  r->scan.data = r;
  uv_timer_start(&r->scan, s_relay_on_scan, 50, RELAY_SCAN_MS);
  return r;
}

static void s_relay_closed(uv_handle_t *h) {
  wh_relay_t *r = h->data;
  free(r->inflight);
  free(r->dest);
  free(r);
}

void wh_relay_destroy(wh_relay_t **self_p) {
  if (!self_p || !*self_p) return;
  wh_relay_t *r = *self_p;
  *self_p = NULL;
  wh_bus_destroy(&r->bus);
  uv_close((uv_handle_t *)&r->scan, s_relay_closed);
}

/* ---- inbox ------------------------------------------------------------- */

int wh_inbox_claim(wh_pg_t *pg, const char *source, const char *ticket_id, uint32_t seq) {
  char seq_s[16];
  snprintf(seq_s, sizeof seq_s, "%" PRIu32, seq);
  const char *v[3] = {source, ticket_id, seq_s};
  PGresult *r = seq == 1 ? wh_pg_run(pg, &s_inbox_first, 2, v, NULL, NULL)
                         : wh_pg_run(pg, &s_inbox_next, 3, v, NULL, NULL);
  if (!r) return WH_EDB;
  int claimed = PQntuples(r) == 1;
  PQclear(r);
  if (claimed) return WH_INBOX_APPLY;
  if (seq == 1) return WH_INBOX_SEEN;
  r = wh_pg_run(pg, &s_inbox_get, 2, v, NULL, NULL);
  if (!r) return WH_EDB;
  uint32_t last = PQntuples(r) == 1 ? (uint32_t)strtoul(PQgetvalue(r, 0, 0), NULL, 10) : 0;
  PQclear(r);
  return seq <= last ? WH_INBOX_SEEN : WH_INBOX_GAP;
}

/* ---- consumer ---------------------------------------------------------- */

typedef struct {
  zmq_msg_t peer;
  Whistle__Envelope *env;
  int status; /* Whistle__AckStatus */
  int err;
} s_item_t;

struct wh_consumer_s {
  wh_pg_t *pg;
  wh_bus_t *bus;
  const wh_consumer_ops_t *ops;
  void *svc;
  s_item_t items[CONSUMER_BATCH];
  int nitems;
};

void wh_reply_error(wh_bus_t *bus, const zmq_msg_t *peer, int err, const char *text) {
  Whistle__Error e = WHISTLE__ERROR__INIT;
  e.code = wh_err_to_wire(err);
  e.text = (char *)(text ? text : wh_strerror(err));
  Whistle__Envelope env = WHISTLE__ENVELOPE__INIT;
  env.body_case = WHISTLE__ENVELOPE__BODY_ERROR;
  env.error = &e;
  uint8_t *buf;
  size_t len;
  if (wh_env_pack(&env, &buf, &len)) return;
  wh_bus_send(bus, zmq_msg_data((zmq_msg_t *)peer), zmq_msg_size((zmq_msg_t *)peer), buf, len);
  free(buf);
}

int wh_consumer_reply(wh_consumer_t *c, const zmq_msg_t *peer, const Whistle__Envelope *env) {
  uint8_t *buf;
  size_t len;
  if (wh_env_pack(env, &buf, &len)) return WH_ENOMEM;
  int rc = wh_bus_send(c->bus, zmq_msg_data((zmq_msg_t *)peer), zmq_msg_size((zmq_msg_t *)peer),
                       buf, len);
  free(buf);
  return rc;
}

static void s_ack(wh_consumer_t *c, s_item_t *it) {
  Whistle__Ack a = WHISTLE__ACK__INIT;
  Whistle__Error e = WHISTLE__ERROR__INIT;
  a.message_id = it->env->message_id;
  a.delivery_tag = it->env->delivery_tag;
  a.status = it->status;
  if (it->err) {
    e.code = wh_err_to_wire(it->err);
    e.text = (char *)wh_strerror(it->err);
    a.error = &e;
  }
  Whistle__Envelope env = WHISTLE__ENVELOPE__INIT;
  env.body_case = WHISTLE__ENVELOPE__BODY_ACK;
  env.ack = &a;
  wh_consumer_reply(c, &it->peer, &env);
}

/* Applies items[from..to) in one transaction. Returns 0 when committed,
 * WH_EDB when rolled back (statuses then mean nothing). */
static int s_apply_batch(wh_consumer_t *c, int from, int to) {
  wh_pg_t *pg = c->pg;
  if (wh_pg_ready(pg) || wh_pg_exec(pg, "BEGIN")) return WH_EDB;
  for (int i = from; i < to; i++) {
    s_item_t *it = &c->items[i];
    Whistle__Envelope *env = it->env;
    wh_log_ctx(env->ticket_id, env->message_id);
    int claim = wh_inbox_claim(pg, env->sender, env->ticket_id, env->seq);
    if (claim < 0) goto rollback;
    if (claim == WH_INBOX_SEEN) {
      it->status = WHISTLE__ACK_STATUS__ACK_OK;
    } else if (claim == WH_INBOX_GAP) {
      wh_debug("seq %u arrived before its predecessor; asking for a resend", env->seq);
      it->status = WHISTLE__ACK_STATUS__ACK_RETRY;
      it->err = WH_EORDER;
    } else {
      int rc = c->ops->apply(c->svc, env);
      if (rc == WH_EDB) goto rollback;
      it->status = rc ? WHISTLE__ACK_STATUS__ACK_REJECTED : WHISTLE__ACK_STATUS__ACK_OK;
      it->err = rc;
      if (rc) wh_error("rejected: %s", wh_strerror(rc));
    }
  }
  wh_log_ctx(NULL, NULL);
  if (wh_pg_exec(pg, "COMMIT")) goto aborted;
  return 0;
rollback:
  wh_log_ctx(NULL, NULL);
  wh_pg_exec(pg, "ROLLBACK");
aborted:
  if (c->ops->aborted) c->ops->aborted(c->svc);
  return WH_EDB;
}

static void s_consumer_flush(wh_consumer_t *c) {
  if (c->nitems == 0) return;
  int rc = s_apply_batch(c, 0, c->nitems);
  if (rc == 0) {
    for (int i = 0; i < c->nitems; i++) s_ack(c, &c->items[i]);
  } else if (!wh_pg_broken(c->pg)) {
    /* One message made the batch fail: apply them one by one, so only that
     * one is refused and the rest go through. */
    for (int i = 0; i < c->nitems; i++) {
      s_item_t *it = &c->items[i];
      it->err = 0;
      if (s_apply_batch(c, i, i + 1) == 0) {
        s_ack(c, it);
      } else if (!wh_pg_broken(c->pg)) {
        it->status = WHISTLE__ACK_STATUS__ACK_REJECTED;
        it->err = WH_EDB;
        s_ack(c, it);
      } else {
        break; /* the database went away: no ack, the sender resends */
      }
    }
  }
  if (c->ops->committed) c->ops->committed(c->svc);
  for (int i = 0; i < c->nitems; i++) {
    zmq_msg_close(&c->items[i].peer);
    wh_env_free(c->items[i].env);
  }
  c->nitems = 0;
}

static void s_consumer_on_readable(wh_bus_t *bus, void *arg) {
  wh_consumer_t *c = arg;
  zmq_msg_t head, body;
  while (c->nitems < CONSUMER_BATCH && wh_bus_recv(bus, &head, &body) == 1) {
    Whistle__Envelope *env;
    int rc = wh_env_unpack(zmq_msg_data(&body), zmq_msg_size(&body), &env);
    zmq_msg_close(&body);
    if (rc) {
      wh_warn("bad frame from peer: %s", wh_strerror(rc));
      wh_reply_error(bus, &head, rc, NULL);
      zmq_msg_close(&head);
      continue;
    }
    if (env->body_case == c->ops->body) {
      if (!env->ticket_id[0] || !env->sender[0] || env->seq == 0 || !env->message_id[0]) {
        wh_warn("relayed envelope without ticket, sender, message id or sequence");
        s_item_t tmp = {.env = env, .status = WHISTLE__ACK_STATUS__ACK_REJECTED,
                        .err = WH_EMISSING};
        zmq_msg_init(&tmp.peer);
        zmq_msg_move(&tmp.peer, &head);
        s_ack(c, &tmp);
        zmq_msg_close(&tmp.peer);
        wh_env_free(env);
        zmq_msg_close(&head);
        continue;
      }
      s_item_t *it = &c->items[c->nitems++];
      memset(it, 0, sizeof *it);
      zmq_msg_init(&it->peer);
      zmq_msg_move(&it->peer, &head);
      it->env = env;
    } else if (c->ops->request) {
      c->ops->request(c->svc, c, &head, env);
      wh_env_free(env);
    } else {
      wh_reply_error(bus, &head, WH_EUNEXPECTED, NULL);
      wh_env_free(env);
    }
    zmq_msg_close(&head);
  }
  s_consumer_flush(c);
}

wh_consumer_t *wh_consumer_new(uv_loop_t *loop, void *zctx, wh_pg_t *pg, const char *endpoint,
                               const wh_consumer_ops_t *ops, void *svc) {
  wh_consumer_t *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->pg = pg;
  c->ops = ops;
  c->svc = svc;
  c->bus = wh_bus_new(loop, zctx, ZMQ_ROUTER, endpoint, 1, s_consumer_on_readable, c);
  if (!c->bus) {
    free(c);
    return NULL;
  }
  return c;
}

void wh_consumer_destroy(wh_consumer_t **self_p) {
  if (!self_p || !*self_p) return;
  wh_consumer_t *c = *self_p;
  *self_p = NULL;
  wh_bus_destroy(&c->bus);
  free(c);
}
