/* wh_bus - a ZeroMQ socket watched by the service's libuv loop.
 *
 * ZMQ_FD is edge-triggered: it signals a change, not a level. So a bus never
 * trusts one wake-up: whenever its fd fires, after every send, and on a short
 * safety tick, it re-reads ZMQ_EVENTS and calls the owner's on_readable until
 * nothing is pending. on_readable must receive with wh_bus_recv until it
 * returns 0 (or stop early, the bus will call again). */
#ifndef WH_BUS_H
#define WH_BUS_H

#include <stddef.h>
#include <uv.h>
#include <zmq.h>

#include "wh_codec.h"
#include "wh_keys.h"

/* The largest frame a socket reads. Twice the codec's cap: a frame a little
 * over the cap still reaches the service, which answers it ERR_TOO_LARGE, and
 * one of a gigabyte never takes the memory it declares. */
#define WH_BUS_MSG_MAX (2 * WH_FRAME_MAX)

/* Frames a receive callback takes in one turn of the loop at most,
 * whatever they are (a batch, a request, garbage, a wrong type, a refusal):
 * the bus calls it again on the next turn while input remains, so the
 * other sockets' answers and the timers always come between. */
#define WH_BUS_ROUND 512

typedef struct wh_bus_s wh_bus_t;
typedef void (*wh_bus_cb)(wh_bus_t *bus, void *arg);

/* Creates a socket of zmq type `type` on ctx and watches it on loop. If bind
 * is non-zero the socket binds to endpoint, else connects. With keys
 * (borrowed), a bound socket is a CURVE server and a connecting one a CURVE
 * client of server, the name of the key it must find at the other end;
 * without, the socket is plain (in-process sockets, tests). A frame over
 * WH_BUS_MSG_MAX is refused by ZeroMQ before it is read into memory: the
 * peer is disconnected. Returns NULL (and logs) on failure. on_readable may
 * be NULL for send-only sockets. */
wh_bus_t *wh_bus_new(uv_loop_t *loop, void *ctx, int type, const char *endpoint, int bind,
                     const wh_keys_t *keys, const char *server, wh_bus_cb on_readable, void *arg);
/* Stops watching and closes the socket; the handle memory is freed in the
 * libuv close callback. Accepts NULL; nulls *self_p. */
void wh_bus_destroy(wh_bus_t **self_p);
/* Holds (hold != 0) or releases input: while held, on_readable is not
 * called and what arrives waits in the socket; on release it is read on the
 * next loop turn. Flow control for a service whose output is backed up. */
void wh_bus_hold(wh_bus_t *bus, int hold);
/* Returns the ZeroMQ socket (borrowed). */
void *wh_bus_socket(wh_bus_t *bus);
/* Receives one message without blocking. For ROUTER sockets (and SUB, where
 * it is the topic) the first frame goes to *head; the last frame is *body
 * (on an XPUB, a subscription: byte 1 or 0, then the topic).
 * Returns 1 when a message was read, 0 when none is pending, or WH_EZMQ.
 * The caller closes both zmq_msg_t on return 1. */
int wh_bus_recv(wh_bus_t *bus, zmq_msg_t *head, zmq_msg_t *body);
/* Sends [head,] body without blocking; head may be NULL (DEALER/PUSH).
 * Returns 0, or WH_EZMQ when the peer is gone or the queue is full (the
 * message is dropped: callers must not depend on it arriving). */
int wh_bus_send(wh_bus_t *bus, const void *head, size_t headlen, const void *body,
                size_t bodylen);

#endif
