/* notify - fans work events out to the parties' feeds and to reporters.
 *
 * Every party has a feed: a gap-free sequence of items, numbered under a row
 * lock on the party's counter in the same transaction that stores the item,
 * so commit order is feed order. After commit the items are published on a
 * PUB socket, topic "<party>\0"; PUB drops silently when a subscriber is slow,
 * so nothing depends on it: a party that sees a gap, or was away, asks for a
 * replay from any sequence and gets the stored items. Messages to reporters go
 * into a delivery log in the same transaction and are then written to the
 * sink; what the sink refused stays pending and is tried again. */
#include "notify.h"
#include "wh_clock.h"
#include "wh_codec.h"
#include "wh_err.h"
#include "wh_log.h"
#include "wh_outbox.h"
#include "wh_text.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REPLAY_MAX 500
#define REPLAY_MAX_BYTES (WH_FRAME_MAX / 2)
#define SINK_RETRY_MS 5000
#define SINK_MAX_ATTEMPTS 10
#define SINK_BATCH 500

typedef struct {
  char party[96];
  uint8_t *frame;
  size_t len;
} s_pub_t;

typedef struct {
  wh_service_t *svc;
  wh_consumer_t *in;
  wh_bus_t *pub;
  s_pub_t *queue;
  size_t nqueue, capqueue;
  int deliveries_waiting;
  uv_timer_t sink_timer;
  char center[96];
} s_notify_t;

static const wh_stmt_t s_next_seq = {
    "notify_next_seq",
    "INSERT INTO party_seq (party, last) VALUES ($1, 1)"
    " ON CONFLICT (party) DO UPDATE SET last = party_seq.last + 1 RETURNING last"};
static const wh_stmt_t s_insert_feed = {
    "notify_insert_feed",
    "INSERT INTO feed (party, seq, ticket_id, kind, version, role, at, item)"
    " VALUES ($1, $2, $3, $4, $5, $6, to_timestamp($7::double precision / 1000), $8)"};
static const wh_stmt_t s_insert_delivery = {
    "notify_insert_delivery",
    "INSERT INTO delivery (ticket_id, channel, recipient, body) VALUES ($1, 'reporter', $2, $3)"};
static const wh_stmt_t s_replay = {
    "notify_replay",
    "SELECT item FROM feed WHERE party = $1 AND seq >= $2 ORDER BY seq LIMIT $3"};
static const wh_stmt_t s_head = {
    "notify_head", "SELECT last FROM party_seq WHERE party = $1"};
static const wh_stmt_t s_pending = {
    "notify_pending",
    "SELECT id, ticket_id, recipient, body, attempts FROM delivery WHERE state = 'pending'"
    " ORDER BY id LIMIT 500"}; /* SINK_BATCH */
static const wh_stmt_t s_delivered = {
    "notify_delivered",
    "UPDATE delivery SET state = 'sent', sent_at = now(), attempts = attempts + 1"
    " WHERE id = ANY($1::bigint[])"};
static const wh_stmt_t s_failed = {
    "notify_failed",
    "UPDATE delivery SET attempts = attempts + 1,"
    " state = CASE WHEN attempts + 1 >= $2 THEN 'parked' ELSE 'pending' END"
    " WHERE id = ANY($1::bigint[])"};

static int s_add_item(s_notify_t *n, const Whistle__WorkEvent *ev, const char *party,
                      const char *role) {
  wh_pg_t *pg = n->svc->pg;
  const char *pv[1] = {party};
  PGresult *r = wh_pg_run(pg, &s_next_seq, 1, pv, NULL, NULL);
  if (!r) return WH_EDB;
  uint64_t seq = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
  PQclear(r);

  Whistle__FeedItem item = WHISTLE__FEED_ITEM__INIT;
  item.party = (char *)party;
  item.seq = seq;
  item.ticket_id = ev->ticket_id;
  item.kind = ev->kind;
  item.version = ev->version;
  item.role = (char *)role;
  item.at_ms = wh_clock_now_ms();
  item.event = (Whistle__WorkEvent *)ev;
  size_t ilen = whistle__feed_item__get_packed_size(&item);
  uint8_t *ibuf = malloc(ilen + 1);
  if (!ibuf) return WH_ENOMEM;
  whistle__feed_item__pack(&item, ibuf);

  char seq_s[24], ver[12], at[24];
  snprintf(seq_s, sizeof seq_s, "%" PRIu64, seq);
  snprintf(ver, sizeof ver, "%u", ev->version);
  snprintf(at, sizeof at, "%" PRId64, item.at_ms);
  const char *v[8] = {party, seq_s, ev->ticket_id, wh_work_kind_name(ev->kind), ver, role, at,
                      (const char *)ibuf};
  int l[8] = {0, 0, 0, 0, 0, 0, 0, (int)ilen};
  int f[8] = {0, 0, 0, 0, 0, 0, 0, 1};
  r = wh_pg_run(pg, &s_insert_feed, 8, v, l, f);
  free(ibuf);
  if (!r) return WH_EDB;
  PQclear(r);

  /* Publish after commit; keep the frame until then. */
  Whistle__Envelope env = WHISTLE__ENVELOPE__INIT;
  env.ticket_id = ev->ticket_id;
  env.seq = ev->version;
  env.body_case = WHISTLE__ENVELOPE__BODY_FEED;
  env.feed = &item;
  if (n->nqueue == n->capqueue) {
    size_t cap = n->capqueue ? n->capqueue * 2 : 64;
    s_pub_t *q = realloc(n->queue, cap * sizeof *q);
    if (!q) return WH_ENOMEM;
    n->queue = q;
    n->capqueue = cap;
  }
  s_pub_t *p = &n->queue[n->nqueue];
  if (wh_env_pack(&env, &p->frame, &p->len)) return WH_ENOMEM;
  snprintf(p->party, sizeof p->party, "%s", party);
  n->nqueue++;
  return 0;
}

static int s_add_delivery(s_notify_t *n, const Whistle__WorkEvent *ev) {
  if (!ev->reporter_masked[0]) return 0;
  char body[512], when[40];
  if (ev->kind == WHISTLE__WORK_EVENT_KIND__WORK_MERGED) {
    snprintf(body, sizeof body,
             "您反映的问题已受理（工单 %s），与正在办理的工单 %s 为同一问题，已合并办理。",
             ev->ticket_id, ev->duplicate_of);
  } else {
    const char *due = ev->n_deadlines
                          ? wh_time_format(ev->deadlines[ev->n_deadlines - 1]->due_at_ms, when,
                                           sizeof when)
                          : "";
    snprintf(body, sizeof body, "您反映的问题已受理（工单 %s），已派 %s 办理%s%s。", ev->ticket_id,
             ev->lead, due[0] ? "，办理时限 " : "", due);
  }
  const char *v[3] = {ev->ticket_id, ev->reporter_masked, body};
  PGresult *r = wh_pg_run(n->svc->pg, &s_insert_delivery, 3, v, NULL, NULL);
  if (!r) return WH_EDB;
  PQclear(r);
  n->deliveries_waiting = 1;
  return 0;
}

static int s_apply(void *arg, const Whistle__Envelope *env) {
  s_notify_t *n = arg;
  const Whistle__WorkEvent *ev = env->work;
  if (strcmp(ev->ticket_id, env->ticket_id) || !ev->lead[0] || ev->version != env->seq ||
      wh_code_check(ev->lead, 95))
    return WH_EFIELD;
  for (size_t i = 0; i < ev->n_co; i++)
    if (wh_code_check(ev->co[i], 95)) return WH_EFIELD;
  int rc;
  switch (ev->kind) {
  case WHISTLE__WORK_EVENT_KIND__WORK_DISPATCHED:
    if ((rc = s_add_item(n, ev, ev->lead, "lead"))) return rc;
    for (size_t i = 0; i < ev->n_co; i++)
      if ((rc = s_add_item(n, ev, ev->co[i], "co"))) return rc;
    return s_add_delivery(n, ev);
  case WHISTLE__WORK_EVENT_KIND__WORK_MERGED:
    if ((rc = s_add_item(n, ev, ev->lead, "lead"))) return rc;
    return s_add_delivery(n, ev);
  case WHISTLE__WORK_EVENT_KIND__WORK_OVERDUE:
    if ((rc = s_add_item(n, ev, ev->lead, "lead"))) return rc;
    /* The command center supervises every lapse [挂牌督办]. */
    if (strcmp(ev->lead, n->center)) return s_add_item(n, ev, n->center, "supervisor");
    return 0;
  default:
    return WH_EFIELD;
  }
}

static void s_clear_queue(s_notify_t *n) {
  for (size_t i = 0; i < n->nqueue; i++) free(n->queue[i].frame);
  n->nqueue = 0;
}

static void s_on_sink_timer(uv_timer_t *h);

/* Writes pending reporter messages to the log-file sink, then marks them in
 * one statement. That commit need not wait for the disk: were it lost in a
 * crash, the messages would be written again (the sink is at-least-once),
 * never dropped. */
static void s_flush_deliveries(s_notify_t *n) {
  wh_pg_t *pg = n->svc->pg;
  n->deliveries_waiting = 0;
  if (wh_pg_ready(pg)) return;
  PGresult *r = wh_pg_run(pg, &s_pending, 0, NULL, NULL, NULL);
  if (!r) return;
  int rows = PQntuples(r);
  FILE *f = n->svc->sink ? fopen(n->svc->sink, "a") : NULL;
  int ok = f != NULL;
  for (int i = 0; i < rows && ok; i++)
    ok = fprintf(f, "%" PRId64 "\tticket=%s\tto=%s\t%s\n", wh_clock_now_ms(), PQgetvalue(r, i, 1),
                 PQgetvalue(r, i, 2), PQgetvalue(r, i, 3)) > 0;
  if (f && fclose(f) != 0) ok = 0;
  /* The ids as a bigint[] literal: digits and commas only. */
  size_t cap = (size_t)rows * 21 + 3, o = 0;
  char *ids = rows ? malloc(cap) : NULL;
  if (ids) {
    ids[o++] = '{';
    for (int i = 0; i < rows; i++)
      o += (size_t)snprintf(ids + o, cap - o, "%s%s", i ? "," : "", PQgetvalue(r, i, 0));
    ids[o++] = '}';
    ids[o] = '\0';
    char max[12];
    snprintf(max, sizeof max, "%d", SINK_MAX_ATTEMPTS);
    const char *v[2] = {ids, max};
    if (wh_pg_exec(pg, "BEGIN") == 0) {
      PGresult *u = NULL;
      if (wh_pg_exec(pg, "SET LOCAL synchronous_commit = off") == 0)
        u = wh_pg_run(pg, ok ? &s_delivered : &s_failed, ok ? 1 : 2, v, NULL, NULL);
      if (u) PQclear(u);
      wh_pg_exec(pg, u ? "COMMIT" : "ROLLBACK");
    }
    free(ids);
  }
  if (rows && !ok) {
    wh_warn("reporter sink %s refused messages; retrying", n->svc->sink ? n->svc->sink : "(none)");
    uv_timer_start(&n->sink_timer, s_on_sink_timer, SINK_RETRY_MS, 0);
  } else if (rows == SINK_BATCH) {
    uv_timer_start(&n->sink_timer, s_on_sink_timer, 0, 0); /* more wait: go on next turn */
  }
  PQclear(r);
}

static void s_on_sink_timer(uv_timer_t *h) { s_flush_deliveries(h->data); }

static void s_committed(void *arg) {
  s_notify_t *n = arg;
  for (size_t i = 0; i < n->nqueue; i++) {
    s_pub_t *p = &n->queue[i];
    wh_bus_send(n->pub, p->party, strlen(p->party) + 1, p->frame, p->len);
  }
  s_clear_queue(n);
  if (n->deliveries_waiting) s_flush_deliveries(n);
}

static void s_aborted(void *arg) {
  s_notify_t *n = arg;
  s_clear_queue(n);
  n->deliveries_waiting = 0;
}

static void s_request(void *arg, wh_consumer_t *c, const zmq_msg_t *peer,
                      const Whistle__Envelope *env) {
  s_notify_t *n = arg;
  Whistle__ReplayReply rep = WHISTLE__REPLAY_REPLY__INIT;
  Whistle__Error e = WHISTLE__ERROR__INIT;
  Whistle__Envelope out = WHISTLE__ENVELOPE__INIT;
  out.message_id = env->message_id;
  out.body_case = WHISTLE__ENVELOPE__BODY_REPLAY_REPLY;
  out.replay_reply = &rep;
  if (env->body_case != WHISTLE__ENVELOPE__BODY_REPLAY) {
    e.code = wh_err_to_wire(WH_EUNEXPECTED);
    e.text = "notify takes work events and replay requests";
    rep.error = &e;
    wh_consumer_reply(c, peer, &out);
    return;
  }
  const Whistle__ReplayRequest *q = env->replay;
  rep.party = q->party;
  if (wh_code_check(q->party, 95)) {
    e.code = wh_err_to_wire(WH_EPARTY);
    e.text = "party: not a party code";
    rep.error = &e;
    wh_consumer_reply(c, peer, &out);
    return;
  }
  char from[24], max[12];
  snprintf(from, sizeof from, "%" PRIu64, q->from_seq ? q->from_seq : 1);
  snprintf(max, sizeof max, "%u", q->max && q->max < REPLAY_MAX ? q->max : REPLAY_MAX);
  const char *v[3] = {q->party, from, max};
  PGresult *r = NULL, *h = NULL;
  Whistle__FeedItem **items = NULL;
  size_t nitems = 0;
  if (wh_pg_ready(n->svc->pg) == 0) {
    h = wh_pg_run(n->svc->pg, &s_head, 1, v, NULL, NULL);
    r = wh_pg_run(n->svc->pg, &s_replay, 3, v, NULL, NULL);
  }
  if (!r || !h) {
    e.code = wh_err_to_wire(WH_EDB);
    e.text = "feed store unavailable; ask again";
    rep.error = &e;
  } else {
    rep.head_seq = PQntuples(h) ? strtoull(PQgetvalue(h, 0, 0), NULL, 10) : 0;
    items = calloc((size_t)PQntuples(r) + 1, sizeof *items);
    size_t bytes = 0;
    for (int i = 0; i < PQntuples(r); i++) {
      size_t blen;
      unsigned char *b = PQunescapeBytea((const unsigned char *)PQgetvalue(r, i, 0), &blen);
      if (!b) continue;
      /* The answer must fit the frame cap every whistle socket enforces;
       * the client asks again from where this answer stops. */
      if (nitems && bytes + blen + 16 > REPLAY_MAX_BYTES) {
        PQfreemem(b);
        break;
      }
      Whistle__FeedItem *it = whistle__feed_item__unpack(NULL, blen, b);
      PQfreemem(b);
      if (it) {
        items[nitems++] = it;
        bytes += blen + 16;
      }
    }
    rep.items = items;
    rep.n_items = nitems;
  }
  wh_consumer_reply(c, peer, &out);
  for (size_t i = 0; i < nitems; i++) whistle__feed_item__free_unpacked(items[i], NULL);
  free(items);
  if (r) PQclear(r);
  if (h) PQclear(h);
}

static const wh_consumer_ops_t s_ops = {.body = WHISTLE__ENVELOPE__BODY_WORK,
                                        .apply = s_apply,
                                        .committed = s_committed,
                                        .aborted = s_aborted,
                                        .request = s_request};

static void s_stop(wh_service_t *svc) {
  s_notify_t *n = svc->data;
  wh_consumer_destroy(&n->in);
  wh_bus_destroy(&n->pub);
  s_clear_queue(n);
  free(n->queue);
  uv_timer_stop(&n->sink_timer);
  uv_close((uv_handle_t *)&n->sink_timer, NULL);
  uv_run(svc->loop, UV_RUN_NOWAIT);
  free(n);
  svc->data = NULL;
}

int notify_start(wh_service_t *svc) {
  if (!svc->pub) {
    wh_error("--pub (where party feeds are published) is required");
    return WH_EINVAL;
  }
  s_notify_t *n = calloc(1, sizeof *n);
  n->svc = svc;
  svc->data = n;
  svc->on_stop = s_stop;
  const char *center = getenv("WHISTLE_CENTER");
  snprintf(n->center, sizeof n->center, "%s", center && *center ? center : "center");
  uv_timer_init(svc->loop, &n->sink_timer);
  n->sink_timer.data = n;
  n->pub = wh_bus_new(svc->loop, svc->zctx, ZMQ_PUB, svc->pub, 1, NULL, NULL);
  n->in = wh_consumer_new(svc->loop, svc->zctx, svc->pg, svc->listen, &s_ops, n);
  if (!n->pub || !n->in) return WH_EZMQ;
  s_flush_deliveries(n); /* what a crash left between commit and sink */
  wh_info("taking work events and replay requests on %s, publishing feeds on %s", svc->listen,
          svc->pub);
  return 0;
}
