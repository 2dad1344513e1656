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

#endif
