/* wh_outbox - no issue lost, none handled twice.
 *
 * A sender writes its state change and the envelopes it will emit in one
 * transaction (wh_outbox_put). A service's outbox is one table serving any
 * number of destinations, a relay per destination: each relay sends its
 * destination's undelivered rows over a DEALER socket, oldest first, keeps
 * at most a window of them in flight, and counts a row delivered only when
 * the receiver acknowledges it; what is not acknowledged within the resend
 * interval is sent again, across restarts, because the rows are the truth
 * and memory only a cache. What a relay has ready goes out as one frame (a
 * Batch of envelopes), and a row's first sending, from the memory of the
 * transaction that committed it, is marked first_send. The outbox is a log:
 * a line per destination (outbox_line) says what that destination has
 * been delivered, and the table is emptied only when every destination's
 * line has passed every row in it (the database is asked, under the
 * table's lock, before emptying). A service is its outbox's one writer.
 * The receiving side is wh_consumer (wh_consumer.h) with its inbox
 * (wh_inbox.h). */
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
extern const wh_migration_t wh_outbox_migration_6;

typedef struct wh_relay_s wh_relay_t;
typedef struct wh_outbox_s wh_outbox_t;

/* Destinations one outbox serves at most. */
#define WH_OUTBOX_DESTS 8

/* A service's outbox over pg (borrowed). Its relays are made with
 * wh_relay_new and destroyed before it. */
wh_outbox_t *wh_outbox_new(wh_pg_t *pg);
void wh_outbox_destroy(wh_outbox_t **self_p);
/* Holds input (borrowed; the bus the service takes its work from) while
 * any of the outbox's relays is backed up: while committed messages wait
 * for room and the receiver is acknowledging. Call once the relays exist. */
void wh_outbox_throttle(wh_outbox_t *ob, wh_bus_t *input);

/* Messages a relay keeps in flight (sent, not yet acknowledged), at most. */
#define WH_RELAY_WINDOW 1024
/* Envelopes a relay sends in one frame (a Batch), at most. */
#define WH_RELAY_BATCH 128

/* A parked message: refused by its receiver, or waiting behind one of
 * its ticket that was (behind names it). Strings are borrowed for the
 * call that hands it over. */
typedef struct {
  uint64_t id; /* the outbox row it was parked from */
  const char *dest, *message_id, *ticket_id, *reason, *behind;
  uint32_t seq;
  int64_t parked_at_ms;
} wh_parked_msg_t;

/* Hands each of the next max parked messages (id above after, oldest
 * first) to each; *more says whether there are others after them.
 * Returns how many, or WH_EDB. */
int wh_outbox_parked(wh_outbox_t *ob, uint64_t after, int max,
                     void (*each)(void *arg, const wh_parked_msg_t *m), void *arg, int *more);
/* Sends the parked message message_id again, with every other parked
 * message of its ticket to the same destination, oldest first: they
 * become outbox rows again, and the relay sends them in order. Returns how
 * many, WH_ENOTFOUND (nothing parked by that id) or WH_EDB. */
int wh_outbox_redrive(wh_outbox_t *ob, const char *message_id);

/* Starts relaying ob's rows for dest (one relay per destination) to
 * endpoint. With keys, the relay is a CURVE client that must find dest's
 * key at endpoint. Returns NULL on failure. The relay borrows loop, ctx, ob
 * and keys. */
wh_relay_t *wh_relay_new(uv_loop_t *loop, void *zctx, wh_outbox_t *ob, const wh_keys_t *keys,
                         const char *dest, const char *endpoint);
void wh_relay_destroy(wh_relay_t **self_p);

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
