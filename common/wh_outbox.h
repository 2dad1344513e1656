/* wh_outbox - no issue lost, none handled twice.
 *
 * A sender writes its state change and the envelopes it will emit in one
 * transaction (wh_outbox_put). A relay per destination sends undelivered rows
 * over a DEALER socket, oldest first, keeps at most a window of them in
 * flight, and counts a row delivered only when the receiver acknowledges
 * it; what is not acknowledged within the resend interval is sent again,
 * across restarts, because the rows are the truth and memory only a cache.
 * What a relay has ready goes out as one frame (a Batch of envelopes), and
 * a row's first sending, from the memory of the transaction that committed
 * it, is marked first_send. The outbox is a log: a line per destination says what is delivered, and
 * the relay empties the table when all of it is. A service's outbox has
 * one relay (one destination) and one writer, the service itself.
 *
 * A receiver (wh_consumer) drains whatever has arrived, applies it all in one
 * transaction together with its inbox rows, commits, then acknowledges. Each
 * table is written once per batch, however many messages the batch holds
 * (wh_rows_t): under load one commit carries hundreds of messages, and when
 * idle a batch is one message, so nothing waits for company. The
 * inbox keeps, per sender and ticket, the last sequence applied: a repeat is
 * acknowledged and ignored, and an event that arrives before its predecessor
 * is answered "retry", so events of one ticket apply in order. */
#ifndef WH_OUTBOX_H
#define WH_OUTBOX_H

#include <stdint.h>
#include <uv.h>

#include "wh_bus.h"
#include "wh_codec.h"
#include "wh_pg.h"
#include "whistle.pb-c.h"

/* The outbox and inbox tables: every service lists the first before its
 * own migrations and the later ones after them. */
extern const wh_migration_t wh_outbox_migration;
extern const wh_migration_t wh_outbox_migration_1;
extern const wh_migration_t wh_outbox_migration_2;
extern const wh_migration_t wh_outbox_migration_3;
extern const wh_migration_t wh_outbox_migration_4;
extern const wh_migration_t wh_outbox_migration_5;

typedef struct wh_relay_s wh_relay_t;

/* Messages a relay keeps in flight (sent, not yet acknowledged), at most. */
#define WH_RELAY_WINDOW 1024

/* Starts relaying pg's outbox rows for dest to endpoint. With keys, the
 * relay is a CURVE client that must find dest's key at endpoint. Returns
 * NULL on failure. The relay borrows loop, ctx, pg and keys. */
wh_relay_t *wh_relay_new(uv_loop_t *loop, void *zctx, wh_pg_t *pg, const wh_keys_t *keys,
                         const char *dest, const char *endpoint);
void wh_relay_destroy(wh_relay_t **self_p);
/* Holds input (borrowed; the bus the service takes its work from) while
 * this relay is backed up: while committed messages wait for room and the
 * receiver is acknowledging. Call once, after both exist. */
void wh_relay_throttle(wh_relay_t *relay, wh_bus_t *input);

/* Writing, inside the caller's open transaction:
 *   wh_outbox_put     stamps env with a new message id, sender and creation
 *                     time (env->ticket_id and env->seq are the caller's),
 *                     packs it and holds it for this transaction;
 *   wh_relay_flush    stores what was put, in one statement (before COMMIT);
 *   wh_relay_committed after COMMIT: sends them, from memory, at once;
 *   wh_relay_aborted  after ROLLBACK: forgets them.
 * wh_outbox_put returns 0 or WH_ENOMEM; wh_relay_flush 0 or WH_EDB. */
int wh_outbox_put(wh_relay_t *relay, const char *sender, Whistle__Envelope *env);
/* The same for a message that rides in the state row the caller inserts in
 * this transaction, instead of an outbox row of its own (a ticket's first
 * message: one row fewer per ticket). The packed envelope becomes column col
 * of rows (bytea), the row's out_payload. The caller's INSERT gives the row
 * out_id = nextval('outbox_id_seq') and returns (out_id, ticket_id), in that
 * order, to wh_relay_carried (its step's on_result, with the relay as arg);
 * the service's migration defines the view outbox_carried over those
 * columns (see wh_outbox_migration_4). Returns 0 or WH_ENOMEM. */
int wh_outbox_carry(wh_relay_t *relay, const char *sender, Whistle__Envelope *env,
                    wh_rows_t *rows, int col);
void wh_relay_carried(void *relay, const PGresult *res);
/* The same for a message that is not stored at all: everything it is made
 * of is in the state row (out_payload stays NULL), and the relay builds it
 * again from that row (wh_relay_builder) whenever it must read it back: a
 * carried message is sent from memory once, and read back only after a
 * restart, a resend or a backlog, while its bytes would be written to the
 * table and its log for every ticket. env->created_at_ms must be set, and
 * stored in the row, by the caller; the message id is
 * "<sender>:<ticket>:<seq>", the same every time it is built. The caller's
 * INSERT returns (out_id, ticket_id) to wh_relay_carried as above. */
int wh_outbox_carry_built(wh_relay_t *relay, const char *sender, Whistle__Envelope *env);

/* How a service builds its carried messages again from their rows. */
typedef struct {
  const char *sender;
  /* Selects the rows of the out ids in $1 (a bigint[]), which lie from $2
   * to $3 (bigint; a block range index narrows a range, not a list), with
   * out_id as column 0. Its result comes in binary (wh_pg_get_*). */
  const wh_stmt_t *st;
  /* Fills env (ticket_id, seq, trace_id, created_at_ms, the body) from
   * row `row` of res exactly as it was filled when the message was put:
   * strings may point into res or into arena. Returns 0 or an error. */
  int (*build)(void *arg, const PGresult *res, int row, Whistle__Envelope *env,
               wh_arena_t *arena);
  void *arg;
  /* Optional: drops what the service kept only to build messages that the
   * receiver has now taken. Its $1 (a bigint[] of one) is the relay's
   * line: every message at or below it was acknowledged, or parked whole.
   * It runs in the transaction that stores the line. */
  const wh_stmt_t *taken;
} wh_builder_t;
/* Gives relay the builder of its service's carried messages (borrowed; it
 * must outlive the relay). */
void wh_relay_builder(wh_relay_t *relay, const wh_builder_t *builder);
int wh_relay_flush(wh_relay_t *relay);
/* The statement that stores what was put, as a step of a caller's pipeline
 * (wh_pg_pipeline) instead of wh_relay_flush. */
void wh_relay_step(wh_relay_t *relay, wh_pg_step_t *step);
void wh_relay_committed(wh_relay_t *relay);
void wh_relay_aborted(wh_relay_t *relay);

enum { WH_INBOX_APPLY = 0, WH_INBOX_SEEN = 1, WH_INBOX_GAP = 2 };

typedef struct {
  const char *source, *ticket_id;
  uint32_t seq;
  int claim; /* out: WH_INBOX_* */
} wh_claim_t;

/* Inside the caller's transaction, for a whole batch in one statement:
 * claims each (source, ticket, seq). claim becomes WH_INBOX_APPLY when seq is
 * the next one for its ticket (and it is recorded), WH_INBOX_SEEN when it was
 * applied before (or is a repeat of one earlier in the batch), WH_INBOX_GAP
 * when an earlier one is missing. Returns 0 or WH_EDB. */
int wh_inbox_claim_batch(wh_pg_t *pg, wh_claim_t *claims, int n);
/* The same for one message: returns a WH_INBOX_* value or WH_EDB. */
int wh_inbox_claim(wh_pg_t *pg, const char *source, const char *ticket_id, uint32_t seq);

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
   * error rejects the message for good and must leave nothing behind. */
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
/* The consumer's ROUTER (borrowed), e.g. for wh_relay_throttle. */
wh_bus_t *wh_consumer_bus(wh_consumer_t *c);
/* Sends env to the peer a request came from. Returns 0 or WH_EZMQ. */
int wh_consumer_reply(wh_consumer_t *c, const zmq_msg_t *peer, const Whistle__Envelope *env);
/* Sends an Error envelope to peer. */
void wh_reply_error(wh_bus_t *bus, const zmq_msg_t *peer, int err, const char *text);

#endif
