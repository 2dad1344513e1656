/* wh_bus - ZeroMQ on uv_poll_t, with the edge-trigger drain. */
#include "wh_bus.h"
#include "wh_err.h"
#include "wh_log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct wh_bus_s {
  uv_poll_t poll;
  uv_idle_t idle;       /* re-checks ZMQ_EVENTS on the next loop turn */
  uv_timer_t tick;      /* safety net against a missed edge */
  void *sock;
  int type;
  int closing;
  int held; /* wh_bus_hold: input waits in the socket */
  int open_handles;
  wh_bus_cb on_readable;
  void *arg;
};

static int s_pending_in(wh_bus_t *b) {
  int ev = 0;
  size_t len = sizeof ev;
  if (zmq_getsockopt(b->sock, ZMQ_EVENTS, &ev, &len) != 0) return 0;
  return (ev & ZMQ_POLLIN) != 0;
}

static void s_on_idle(uv_idle_t *h);

static void s_drain(wh_bus_t *b) {
  /* One round per loop turn: a round may be a whole batch and its commit,
   * and a service's other sockets (a relay's acknowledgements above all)
   * must be served between two batches, or a busy front door starves the
   * path behind it. The idle handle brings us back if input remains. */
  /* ZMQ_EVENTS is read even while held: reading it is what clears the fd,
   * which would otherwise wake the loop again at once. */
  if (b->closing || !b->on_readable || !s_pending_in(b) || b->held) return;
  b->on_readable(b, b->arg);
  if (!b->closing && !b->held && b->on_readable && s_pending_in(b) &&
      !uv_is_active((uv_handle_t *)&b->idle))
    uv_idle_start(&b->idle, s_on_idle);
}

static void s_on_poll(uv_poll_t *h, int status, int events) {
  (void)status;
  (void)events;
  s_drain(h->data);
}

static void s_on_idle(uv_idle_t *h) {
  uv_idle_stop(h);
  s_drain(h->data);
}

static void s_on_tick(uv_timer_t *h) { s_drain(h->data); }

static void s_kick(wh_bus_t *b) {
  if (!b->closing && !b->held && b->on_readable && s_pending_in(b) &&
      !uv_is_active((uv_handle_t *)&b->idle))
    uv_idle_start(&b->idle, s_on_idle);
}

void wh_bus_hold(wh_bus_t *b, int hold) {
  b->held = hold != 0;
  s_kick(b); /* the edge that announced input may have come while held */
}

wh_bus_t *wh_bus_new(uv_loop_t *loop, void *ctx, int type, const char *endpoint, int bind,
                     const wh_keys_t *keys, const char *server, wh_bus_cb on_readable, void *arg) {
  wh_bus_t *b = calloc(1, sizeof *b);
  if (!b) return NULL;
  b->type = type;
  b->on_readable = on_readable;
  b->arg = arg;
  b->sock = zmq_socket(ctx, type);
  if (!b->sock) goto fail;
  int linger = 0, hwm = 100000;
  int64_t maxmsg = WH_BUS_MSG_MAX;
  zmq_setsockopt(b->sock, ZMQ_LINGER, &linger, sizeof linger);
  zmq_setsockopt(b->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
  zmq_setsockopt(b->sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
  zmq_setsockopt(b->sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
  if (type == ZMQ_ROUTER) {
    int one = 1; /* a reply to a vanished client is an error, not a silent drop */
    zmq_setsockopt(b->sock, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
  }
  if (type == ZMQ_XPUB) {
    /* A subscription takes effect only when the owner grants it (ZMQ_SUBSCRIBE
     * on this socket right after reading it): it checks who asked. */
    int manual = 1;
    zmq_setsockopt(b->sock, ZMQ_XPUB_MANUAL, &manual, sizeof manual);
  }
  if (type == ZMQ_DEALER) {
    /* Queue nothing for a peer that is not connected: the outbox rows are
     * the queue, and a dead peer must not make this process grow. */
    int immediate = 1, ivl = 100, max = 1000;
    zmq_setsockopt(b->sock, ZMQ_IMMEDIATE, &immediate, sizeof immediate);
    zmq_setsockopt(b->sock, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
    zmq_setsockopt(b->sock, ZMQ_RECONNECT_IVL_MAX, &max, sizeof max);
  }
  if (keys) {
    int sec = bind ? wh_keys_server(keys, b->sock) : wh_keys_client(keys, b->sock, server);
    if (sec) {
      wh_error("%s: no CURVE %s: %s", endpoint, bind ? "server key" : "key of the server",
               bind ? zmq_strerror(errno) : server);
      goto fail;
    }
  }
  int rc = bind ? zmq_bind(b->sock, endpoint) : zmq_connect(b->sock, endpoint);
  if (rc != 0) {
    wh_error("%s %s: %s", bind ? "bind" : "connect", endpoint, zmq_strerror(errno));
    goto fail;
  }
  int fd;
  size_t fdlen = sizeof fd;
  zmq_getsockopt(b->sock, ZMQ_FD, &fd, &fdlen);
  uv_poll_init(loop, &b->poll, fd);
  uv_idle_init(loop, &b->idle);
  uv_timer_init(loop, &b->tick);
  b->poll.data = b->idle.data = b->tick.data = b;
  b->open_handles = 3;
  if (on_readable) {
    uv_poll_start(&b->poll, UV_READABLE, s_on_poll);
    uv_timer_start(&b->tick, s_on_tick, 100, 100);
  }
  return b;
fail:
  if (b->sock) zmq_close(b->sock);
  free(b);
  return NULL;
}

static void s_on_close(uv_handle_t *h) {
  wh_bus_t *b = h->data;
  if (--b->open_handles == 0) free(b);
}

void wh_bus_destroy(wh_bus_t **self_p) {
  if (!self_p || !*self_p) return;
  wh_bus_t *b = *self_p;
  *self_p = NULL;
  b->closing = 1;
  uv_poll_stop(&b->poll);
  zmq_close(b->sock);
  b->sock = NULL;
  uv_close((uv_handle_t *)&b->poll, s_on_close);
  uv_close((uv_handle_t *)&b->idle, s_on_close);
  uv_close((uv_handle_t *)&b->tick, s_on_close);
}

void *wh_bus_socket(wh_bus_t *bus) { return bus->sock; }

int wh_bus_recv(wh_bus_t *b, zmq_msg_t *head, zmq_msg_t *body) {
  int want_head = b->type == ZMQ_ROUTER || b->type == ZMQ_SUB;
  zmq_msg_init(head);
  zmq_msg_init(body);
  int nparts = 0;
  for (;;) {
    zmq_msg_t part;
    zmq_msg_init(&part);
    if (zmq_msg_recv(&part, b->sock, ZMQ_DONTWAIT) < 0) {
      int e = errno;
      zmq_msg_close(&part);
      if (e == EAGAIN && nparts == 0) return 0;
      if (nparts == 0) return WH_EZMQ;
      break;
    }
    int more = zmq_msg_more(&part);
    if (nparts == 0 && want_head) {
      zmq_msg_move(head, &part);
    } else {
      zmq_msg_move(body, &part); /* the last frame wins; extras are dropped */
    }
    zmq_msg_close(&part);
    nparts++;
    if (!more) break;
  }
  return 1;
}

int wh_bus_send(wh_bus_t *b, const void *head, size_t headlen, const void *body,
                size_t bodylen) {
  int rc = 0;
  if (head && zmq_send(b->sock, head, headlen, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) rc = WH_EZMQ;
  if (!rc && zmq_send(b->sock, body, bodylen, ZMQ_DONTWAIT) < 0) rc = WH_EZMQ;
  if (rc) wh_debug("send dropped: %s", zmq_strerror(errno));
  s_kick(b); /* a send can swallow the edge that announced input */
  return rc;
}
