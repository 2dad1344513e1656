/* wh_consumer - the receiving side of the message path: a ROUTER that
 * drains what relays sent, applies a batch of it in one transaction with
 * its inbox claims, commits, then acknowledges. */
#ifndef WH_CONSUMER_H
#define WH_CONSUMER_H

#include <uv.h>

#include "wh_bus.h"
#include "wh_inbox.h"
#include "wh_pg.h"
#include "whistle.pb-c.h"

/* The longest ticket id or sender name a consumer takes (a message id may
 * be three times as long), of the characters wh_code_check allows: intake
 * numbers tickets WH00000001 and up, and a sender is a service's name. */
#define WH_RELAY_ID_MAX 64

/* Envelopes a consumer applies in one transaction at most. Under load
 * every batch is full: at 512 rather than 256 a stage's fixed cost per
 * transaction (its round trips, its commit) is spread over twice the
 * tickets, and the machine does 3-6% less work per ticket (paired bursts);
 * at 1024, a relay's whole window, the stages wait on each other more. */
#define WH_CONSUMER_BATCH 512
/* Statements a service writes a batch with, at most. */
#define WH_CONSUMER_STEPS 8

typedef struct wh_consumer_s wh_consumer_t;

typedef struct {
  /* Which envelope body this consumer takes from relays, and from whom: the
   * one service (its key's name) whose relay sends them. The sender of a
   * relayed message is the peer's key, whatever its envelope says; a relayed
   * message from any other key is refused (ERR_FORBIDDEN) and changes
   * nothing. On a plain socket (no keys) the envelope's sender is taken. */
  Whistle__Envelope__BodyCase body;
  const char *from;
  /* Before the claimed envelopes of a batch are applied, one by one: look up
   * what they need, for all of them at once. May be NULL. Returns 0 or WH_EDB. */
  int (*prepare)(void *svc, const Whistle__Envelope *const *envs, int n);
  /* Instead of a prepare that queries: looks up what the batch needs for
   * every envelope of it, claimed or not, as one statement sent in the same
   * round trip as BEGIN and the claims. Fills *step (rows the service keeps
   * until the batch ends; its on_result gathers the answers before any
   * apply) and returns 1, or returns 0 when there is nothing to look up.
   * It runs for messages that turn out to be seen, so it must not reserve
   * or change anything. apply is then called for the claimed ones only, in
   * batch order. May be NULL. */
  int (*lookup)(void *svc, const Whistle__Envelope *const *envs, int n, wh_pg_step_t *step);
  /* Applies one claimed envelope inside the batch transaction, gathering its
   * rows in memory. Validate before gathering anything: a non-database
   * error rejects the message for good and must leave nothing behind.
   * WH_EORDER, for a first message (seq 1) when first_applied is set, says
   * "not yet" (it depends on another ticket's message that has not come):
   * it is answered retry, nothing of it recorded, and comes again. */
  int (*apply)(void *svc, const Whistle__Envelope *env);
  /* The statements that write what apply gathered (at most
   * WH_CONSUMER_STEPS, the relay's among them: wh_relay_step): they and the
   * COMMIT go to the database in one round trip. Returns how many. May be NULL. */
  int (*steps)(void *svc, wh_pg_step_t *steps);
  /* After a batch committed (publish, kick relays). May be NULL. */
  void (*committed)(void *svc);
  /* After a batch rolled back (drop what apply queued in memory). May be NULL. */
  void (*aborted)(void *svc);
  /* The service's state rows doubling as its inbox for first messages: a
   * query returning the ticket_id of each ticket in $2 (a text[]) whose
   * first message (seq 1) this service has applied, e.g. "SELECT ticket_id
   * FROM decision WHERE ticket_id = ANY($2::text[])". A first message then
   * writes no inbox row: the state row, under its primary key, is the record
   * that it was applied (a second copy applied at the same time fails on that
   * key and is then seen). The inbox row starts with the second message.
   * A first message its relay sends for the first time (first_send) is not
   * even looked for: no one can have applied it.
   * Every first message the service accepts must write such a row in the
   * same transaction. May be NULL: every message is recorded in the inbox. */
  const char *first_applied;
  /* A request that is not a relayed event (e.g. a replay request), from the
   * authenticated party `who` (NULL on a plain socket). Answer it with
   * wh_consumer_reply. May be NULL: such requests get ERR_UNEXPECTED. */
  void (*request)(void *svc, wh_consumer_t *c, const zmq_msg_t *peer, const char *who,
                  const Whistle__Envelope *env);
} wh_consumer_ops_t;

/* Binds a ROUTER at endpoint (a CURVE server with keys) and applies what
 * relays send. Borrows all args. */
wh_consumer_t *wh_consumer_new(uv_loop_t *loop, void *zctx, wh_pg_t *pg, const wh_keys_t *keys,
                               const char *endpoint, const wh_consumer_ops_t *ops, void *svc);
void wh_consumer_destroy(wh_consumer_t **self_p);
/* The consumer's ROUTER (borrowed), e.g. for wh_outbox_throttle. */
wh_bus_t *wh_consumer_bus(wh_consumer_t *c);
/* Sends env to the peer a request came from. Returns 0 or WH_EZMQ. */
int wh_consumer_reply(wh_consumer_t *c, const zmq_msg_t *peer, const Whistle__Envelope *env);
/* Sends env on bus to peer (the route a request came with). 0 or WH_EZMQ
 * (WH_ENOMEM when it cannot be packed). */
int wh_reply(wh_bus_t *bus, const zmq_msg_t *peer, const Whistle__Envelope *env);
/* Sends an Error envelope to peer. */
void wh_reply_error(wh_bus_t *bus, const zmq_msg_t *peer, int err, const char *text);

#endif
