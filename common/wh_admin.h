/* wh_admin - a service's admin socket, where the command center looks
 * after the message path.
 *
 * Every service binds one ROUTER (--admin ENDPOINT, a CURVE server with the
 * service's key) that answers AdminRequest envelopes, and answers them only
 * for the center's key (WHISTLE_CENTER, default "center"): any other party,
 * and every peer of a service started --insecure, is answered
 * ERR_FORBIDDEN and nothing changes. What it answers:
 *   parked   the messages this service's outbox has parked (refused by
 *            their receiver, or waiting behind one of their ticket that was),
 *            a page at a time, with the reason;
 *   redrive  one parked message, with every other parked message of its
 *            ticket to the same destination, sent again in order, once its
 *            cause is fixed;
 *   clock    tests only: moves the service's business clock (real time plus
 *            an offset) and has it re-arm its timers; refused unless the
 *            service started with WHISTLE_TEST_CLOCK=1.
 * A turn of the loop answers a bounded number of requests, so a flood of
 * them does not keep the service from its work. */
#ifndef WH_ADMIN_H
#define WH_ADMIN_H

#include <uv.h>

#include "wh_keys.h"
#include "wh_outbox.h"

typedef struct wh_admin_s wh_admin_t;

/* Parked messages one answer holds at most; a page asking for more gets
 * this many, and `more` says there are others. */
#define WH_ADMIN_PAGE_MAX 100

/* Binds the admin socket of service (its name, borrowed) at endpoint, over
 * ob. keys NULL: no CURVE, and every request is refused. center names the
 * party whose key is answered (borrowed). Returns NULL on failure. */
wh_admin_t *wh_admin_new(uv_loop_t *loop, void *zctx, const wh_keys_t *keys, wh_outbox_t *ob,
                         const char *service, const char *center, const char *endpoint);
void wh_admin_destroy(wh_admin_t **self_p);
/* Called after the clock request moved the business clock. */
void wh_admin_on_clock(wh_admin_t *a, void (*fn)(void *arg), void *arg);

#endif
