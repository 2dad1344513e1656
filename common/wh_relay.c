/* wh_relay - sends one destination's outbox rows, from memory when it
 * can, and counts them delivered when the receiver acknowledges them. */
#include "wh_outbox.h"
#include "wh_clock.h"
#include "wh_consumer.h"
#include "wh_codec.h"
#include "wh_err.h"
#include "wh_log.h"
#include "wh_text.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RELAY_WINDOW WH_RELAY_WINDOW
#define RELAY_RESEND_MS 2000  /* unacknowledged this long: send again; twice as long each time */
#define RELAY_RETRY_MS 250    /* answered "retry", or not sent: again after this; twice each time */
#define RELAY_RETRY_MAX_MS 10000 /* ... but no longer than this */
#define RELAY_BACKOFF_MAX_MS 30000 /* an unanswered message is sent again at least this often */
#define RELAY_SCAN_MS 500     /* look for what is due to be sent again */
#define RELAY_READ_SPAN (4 * RELAY_WINDOW) /* ids one read-back looks through */
#define RELAY_EMPTY_ROWS 20000 /* rows written since the table was emptied: empty it */
#define RELAY_EMPTY_MS 60000   /* ... or this long since, whatever it holds */
#define RELAY_STUCK_MS 60000  /* unanswered, or answered "retry", this long: say so in the log */
#define RELAY_ALIVE_MS 1000   /* heard an acknowledgement this recently: the receiver works */
#define RELAY_LINE_MS 50      /* acknowledgements move the stored line this long after, at once */
#define RELAY_BATCH WH_RELAY_BATCH /* envelopes in one frame, at most */
/* ... and bytes: the frame, with a few bytes of framing per envelope, must
 * stay within the cap every receiver enforces. */
#define RELAY_BATCH_BYTES (WH_FRAME_MAX - RELAY_BATCH * 8 - 64)

static const wh_stmt_t s_put = {
    "wh_outbox_put",
    "INSERT INTO outbox (dest, message_id, ticket_id, seq, payload)"
    " SELECT $5, m, t, s, p FROM (SELECT unnest($1::text[]) AS m, unnest($2::text[]) AS t,"
    "   unnest($3::bigint[]) AS s, unnest($4::bytea[]) AS p) AS x RETURNING id, message_id"};
/* Reads by id carry bounds: BRIN narrows a range, not a list. */
static const wh_stmt_t s_new_rows = {
    "wh_outbox_new",
    "SELECT id, payload FROM outbox_all WHERE dest = $1 AND parked_at IS NULL"
    " AND id > $2 AND id <= $3 ORDER BY id LIMIT $4"};
static const wh_stmt_t s_last_id = {"wh_outbox_last", "SELECT last_value FROM outbox_id_seq"};
static const wh_stmt_t s_due_rows = {
    "wh_outbox_due",
    "SELECT id, payload FROM outbox_all WHERE id >= $2 AND id <= $3 AND id = ANY($1::bigint[])"
    " AND parked_at IS NULL ORDER BY id"};
static const wh_stmt_t s_line_start = {
    "wh_outbox_line_start",
    "INSERT INTO outbox_line (dest, upto) VALUES ($1, 0) ON CONFLICT (dest) DO NOTHING"};
static const wh_stmt_t s_line_get = {"wh_outbox_line_get",
                                     "SELECT upto FROM outbox_line WHERE dest = $1"};
static const wh_stmt_t s_line_move = {
    "wh_outbox_line_move",
    "UPDATE outbox_line l SET upto = x.u, at = now() FROM unnest($1::bigint[]) AS x(u)"
    " WHERE l.dest = $2 AND l.upto < x.u"};
/* Parks row $1 with the error $2; a carried message (not in the outbox) is
 * copied from its state row, with the message id $3 that the receiver
 * named, once; one that is not stored, with the bytes $4 built from it. */
static const wh_stmt_t s_parked = {
    "wh_outbox_parked",
    "WITH p AS (UPDATE outbox SET parked_at = now(), last_error = $2 WHERE id = $1 RETURNING *)"
    " INSERT INTO outbox_parked SELECT * FROM p"
    " UNION ALL SELECT id, dest, $3::text, ticket_id, seq, coalesce(payload, $4), created_at,"
    "   NULL, now(), $2"
    "   FROM outbox_carried c WHERE id = $1 AND NOT EXISTS (SELECT FROM p)"
    "   AND NOT EXISTS (SELECT FROM outbox_parked q WHERE q.id = $1)"
    " RETURNING ticket_id, message_id"};
/* Parks row $1 (message $3 of ticket $4, seq $5, bytes $6) behind the
 * refused message $8 of its ticket, with the reason $7, without sending
 * it: from the outbox when it is there, else from what the relay holds. */
static const wh_stmt_t s_park_behind = {
    "wh_outbox_park_behind",
    "WITH u AS (UPDATE outbox SET parked_at = now(), last_error = $7 WHERE id = $1::bigint"
    "   RETURNING created_at)"
    " INSERT INTO outbox_parked (id, dest, message_id, ticket_id, seq, payload, created_at,"
    "   parked_at, last_error, behind)"
    " SELECT $1::bigint, $2, $3, $4, $5::integer, $6::bytea,"
    "   coalesce((SELECT created_at FROM u), now()), now(), $7, $8"
    " WHERE NOT EXISTS (SELECT FROM outbox_parked WHERE id = $1::bigint)"};
/* The tickets whose messages to $1 wait behind a refused one, with it. */
static const wh_stmt_t s_parked_tickets = {
    "wh_outbox_parked_tickets",
    "SELECT DISTINCT ON (ticket_id) ticket_id, message_id FROM outbox_parked"
    " WHERE dest = $1 AND redriven_at IS NULL ORDER BY ticket_id, id"};
/* ---- the in-flight table: outbox id -> time sent ---------------------- */

typedef struct {
  uint64_t id; /* 0 = empty */
  int64_t due_ms;   /* when it is sent again, unless answered first */
  int64_t first_ms; /* when this process first sent it */
  uint8_t tries;    /* times sent again: each waits twice as long as the one before */
  uint8_t answered; /* the receiver answered "retry" since it was last sent */
  uint8_t asked;    /* read back for resending in this scan */
  uint8_t warned;   /* told the log it is stuck (unanswered, or behind a missing predecessor) */
} s_slot_t;

/* base, doubled for each time a message was sent again, up to cap. */
static int64_t s_backoff(int64_t base, int tries, int64_t cap) {
  int64_t w = base << (tries < 10 ? tries : 10);
  return w < cap ? w : cap;
}

/* Due again soon: answered "retry", or its sending or parking failed. */
static void s_slot_soon(s_slot_t *slot, int64_t now) {
  slot->due_ms = now + s_backoff(RELAY_RETRY_MS, slot->tries, RELAY_RETRY_MAX_MS);
}

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

/* 1 if id is not among the ids (column 0) of a binary result. */
static int s_gone(const PGresult *res, uint64_t id) {
  for (int i = 0; i < PQntuples(res); i++)
    if (wh_pg_get_u64(res, i, 0) == id) return 0;
  return 1;
}

/* ---- relay ------------------------------------------------------------- */

/* Refusals a round of acknowledgements keeps to park after it, at most;
 * one more is left owed, sent again and refused again later. */
#define RELAY_REFUSED_MAX 64

typedef struct {
  uint64_t tag;
  char message_id[3 * WH_RELAY_ID_MAX + 1];
  char text[256];
} s_refusal_t;

typedef struct {
  uint64_t id;
  uint8_t *bytes; /* the packed envelope, as stored */
  size_t len;
  char mid[64];
  int carried;    /* in the caller's state row (wh_outbox_carry), not an outbox row */
  char ticket[72]; /* a carried message is matched to its row by ticket */
} s_frame_t;

/* Tickets with a parked message, and the refused message each waits
 * behind: a set of strings by open addressing, emptied and refilled from
 * the table when a redrive changes it. */
typedef struct {
  char ticket[72];
  char head[200];
} s_parked_t;

typedef struct {
  s_parked_t *slots;
  size_t cap, n; /* cap a power of two, or 0 */
} s_parked_set_t;

/* The slot of ticket among cap slots (a power of two): its own, or the
 * empty one where it would go. */
static s_parked_t *s_parked_slot(s_parked_t *slots, size_t cap, const char *ticket) {
  size_t i = wh_hash_str(WH_HASH_INIT, ticket) & (cap - 1);
  while (slots[i].ticket[0] && strcmp(slots[i].ticket, ticket)) i = (i + 1) & (cap - 1);
  return &slots[i];
}

static s_parked_t *s_parked_find(const s_parked_set_t *set, const char *ticket) {
  if (!set->n) return NULL;
  s_parked_t *p = s_parked_slot(set->slots, set->cap, ticket);
  return p->ticket[0] ? p : NULL;
}

/* Returns 0, or WH_ENOMEM (the set unchanged). */
static int s_parked_add(s_parked_set_t *set, const char *ticket, const char *head) {
  if (s_parked_find(set, ticket)) return 0;
  if ((set->n + 1) * 2 > set->cap) {
    size_t cap = set->cap ? set->cap * 2 : 16;
    s_parked_t *slots = calloc(cap, sizeof *slots);
    if (!slots) return WH_ENOMEM;
    for (size_t i = 0; i < set->cap; i++)
      if (set->slots[i].ticket[0]) *s_parked_slot(slots, cap, set->slots[i].ticket) = set->slots[i];
    free(set->slots);
    set->slots = slots;
    set->cap = cap;
  }
  s_parked_t *p = s_parked_slot(set->slots, set->cap, ticket);
  wh_str_copy(p->ticket, sizeof p->ticket, ticket);
  wh_str_copy(p->head, sizeof p->head, head);
  set->n++;
  return 0;
}

static void s_parked_clear(s_parked_set_t *set) {
  if (set->cap) memset(set->slots, 0, set->cap * sizeof *set->slots);
  set->n = 0;
}

/* The outbox: one table, the relays that send from it (one per
 * destination), and what they decide together. */
struct wh_outbox_s {
  wh_pg_t *pg;
  wh_relay_t *relays[WH_OUTBOX_DESTS];
  int nrelays;
  long written;      /* rows written since the table was last emptied */
  int64_t emptied_ms;
  int64_t warned_ms; /* said that rows of no relay keep the table from emptying */
  wh_bus_t *input;  /* held while any relay is backed up (wh_outbox_throttle) */
  int holding;
};

struct wh_relay_s {
  wh_outbox_t *ob;
  wh_pg_t *pg;
  wh_bus_t *bus;
  char *dest;
  uv_timer_t scan;
  uv_timer_t line_timer; /* armed by an acknowledgement: store the line soon */
  /* After the loop's poll phase: parks what was refused and sends more,
   * so no query runs inside the acknowledgements' receive callback. */
  uv_check_t after_acks;
  s_refusal_t refused[RELAY_REFUSED_MAX];
  int nrefused;
  int open_handles;      /* timers still to close */
  s_slot_t *inflight;
  int ninflight;
  uint64_t high;   /* newest id sent or queued by this process */
  int behind;      /* rows newer than high may be stored but not queued */
  uint64_t head;   /* newest id this process knows to be committed */
  uint64_t line, line_stored; /* delivered up to here; as the table has it */
  int line_loaded;
  /* put in the open transaction, not yet stored */
  s_frame_t *put;
  int nput, capput, ncarried;
  int put_unmatched; /* the table's answer did not match what was put */
  wh_rows_t rows;
  /* committed, waiting for room in the window (oldest first) */
  s_frame_t *queue;
  int qhead, qlen;
  wh_rows_t line_row; /* the line, as the one row of its statement */
  int64_t acked_ms; /* when the receiver last acknowledged anything */
  int64_t heard_ms; /* when it last answered anything, "retry" included */
  int holding;      /* backed up: its outbox holds the input */
  s_parked_set_t parked; /* tickets whose messages wait behind a refused one */
  int parked_loaded;
  wh_arena_t *park_arena; /* a message decoded to be parked */
  wh_arena_t *arena; /* the answer being read */
  const wh_builder_t *builder; /* builds carried messages that are not stored */
  /* stamped envelopes that go out together, in one Batch frame */
  wh_sbuf_t out;
  size_t out_at[RELAY_BATCH + 1]; /* where each begins in out; then the end */
  uint64_t out_id[RELAY_BATCH];
  int nout;
};

/* Committed frames kept in memory at most; beyond, the rows are read back. */
#define RELAY_QUEUE RELAY_WINDOW

/* The message id of a carried message that is built from its row: the
 * same every time, and unique, since a sender carries one message per
 * ticket and sequence number. */
static void s_built_id(char *out, size_t len, const char *sender, const Whistle__Envelope *env) {
  snprintf(out, len, "%s:%s:%" PRIu32, sender, env->ticket_id, env->seq);
}

/* Packs env as stored (or as built again from its row): with message id
 * mid and the sender, never claiming first_send (the relay stamps that).
 * Returns 0 or WH_ENOMEM; env is left as it was given. */
static int s_pack_stored(Whistle__Envelope *env, const char *sender, const char *mid,
                         uint8_t **bytes, size_t *len) {
  env->message_id = (char *)mid;
  env->sender = (char *)sender;
  env->first_send = 0;
  int rc = wh_env_pack(env, bytes, len);
  env->message_id = (char *)protobuf_c_empty_string;
  env->sender = (char *)protobuf_c_empty_string;
  return rc;
}

/* Stamps env with a message id, sender and time, packs it, and holds it as
 * the open transaction's next frame: carried (1) in the caller's row, or
 * built (2) from it; else (0) an outbox row. A built message keeps the
 * caller's creation time and gets its id from sender, ticket and seq.
 * Returns the frame, or NULL. */
static s_frame_t *s_relay_hold_frame(wh_relay_t *r, const char *sender, Whistle__Envelope *env,
                                     int carried) {
  if (r->nput == r->capput) {
    int cap = r->capput ? r->capput * 2 : 64;
    s_frame_t *p = realloc(r->put, (size_t)cap * sizeof *p);
    if (!p) return NULL;
    r->put = p;
    r->capput = cap;
  }
  s_frame_t *f = &r->put[r->nput];
  if (carried == 2) {
    s_built_id(f->mid, sizeof f->mid, sender, env);
  } else {
    wh_uuid(f->mid);
    env->created_at_ms = wh_clock_now_ms();
  }
  if (s_pack_stored(env, sender, f->mid, &f->bytes, &f->len)) return NULL;
  f->id = 0;
  f->carried = carried != 0;
  wh_str_copy(f->ticket, sizeof f->ticket, env->ticket_id);
  r->nput++;
  r->ncarried += carried != 0;
  return f;
}

int wh_outbox_put(wh_relay_t *r, const char *sender, Whistle__Envelope *env) {
  s_frame_t *f = s_relay_hold_frame(r, sender, env, 0);
  if (!f) return WH_ENOMEM;
  wh_rows_next(&r->rows);
  wh_rows_text(&r->rows, 0, f->mid);
  wh_rows_text(&r->rows, 1, env->ticket_id);
  wh_rows_int(&r->rows, 2, env->seq);
  wh_rows_bytes(&r->rows, 3, f->bytes, f->len);
  return 0;
}

int wh_outbox_carry(wh_relay_t *r, const char *sender, Whistle__Envelope *env, wh_rows_t *rows,
                    int col) {
  s_frame_t *f = s_relay_hold_frame(r, sender, env, 1);
  if (!f) return WH_ENOMEM;
  wh_rows_bytes(rows, col, f->bytes, f->len);
  return 0;
}

int wh_outbox_carry_built(wh_relay_t *r, const char *sender, Whistle__Envelope *env) {
  return s_relay_hold_frame(r, sender, env, 2) ? 0 : WH_ENOMEM;
}

void wh_relay_builder(wh_relay_t *r, const wh_builder_t *builder) { r->builder = builder; }

/* Messages built again from their rows, for one read: id -> bytes. */
typedef struct {
  uint64_t id;
  uint8_t *bytes;
  size_t len;
} s_built_t;

/* Builds the carried messages of ids[0..n) (ascending) from their rows
 * with the service's builder, into built (n entries; an id whose row is
 * not found, or does not build, keeps no bytes). Returns 0, or -1 when
 * the rows could not be read. */
static int s_relay_build(wh_relay_t *r, const uint64_t *ids, int n, s_built_t *built) {
  const wh_builder_t *b = r->builder;
  wh_sbuf_t list = {0};
  int oom = 0;
  for (int i = 0; i < n; i++) {
    built[i] = (s_built_t){.id = ids[i]};
    char num[24];
    int len = snprintf(num, sizeof num, "%s%" PRIu64, i ? "," : "{", ids[i]);
    oom |= wh_sbuf_put(&list, num, (size_t)len);
  }
  oom |= wh_sbuf_put(&list, "}", 1);
  char lo[24], hi[24];
  snprintf(lo, sizeof lo, "%" PRIu64, ids[0]);
  snprintf(hi, sizeof hi, "%" PRIu64, ids[n - 1]);
  const char *v[3] = {list.buf, lo, hi};
  PGresult *res = oom || !b || wh_pg_ready(r->pg) ? NULL : wh_pg_run_binary(r->pg, b->st, 3, v);
  free(list.buf);
  if (!res) return -1;
  wh_arena_t *arena = wh_arena_new();
  for (int k = 0, i = 0; arena && k < PQntuples(res); k++) {
    uint64_t id = wh_pg_get_u64(res, k, 0);
    for (int m = 0; m < n && built[i].id != id; m++) i = (i + 1) % n;
    if (built[i].id != id || built[i].bytes) continue;
    Whistle__Envelope env = WHISTLE__ENVELOPE__INIT;
    char mid[64];
    if (b->build(b->arg, res, k, &env, arena) == 0) {
      s_built_id(mid, sizeof mid, b->sender, &env);
      if (s_pack_stored(&env, b->sender, mid, &built[i].bytes, &built[i].len))
        built[i].bytes = NULL;
    }
    wh_arena_reset(arena);
  }
  wh_arena_destroy(&arena);
  PQclear(res);
  return 0;
}

static void s_built_free(s_built_t *built, int n) {
  for (int i = 0; i < n; i++) free(built[i].bytes);
  free(built);
}

/* The ids given to the frames of this transaction: a result's rows are
 * (id, key), the key a message id for outbox rows and a ticket for carried
 * ones. Rows come back in the order they were put; they are matched by key
 * all the same. Should any be missing, the frames are not sent from memory:
 * the rows are read back from the table instead. */
static void s_relay_match(wh_relay_t *r, const PGresult *res, int carried) {
  int n = PQntuples(res);
  if (n != (carried ? r->ncarried : r->nput - r->ncarried)) {
    r->put_unmatched = 1;
    return;
  }
  for (int i = 0, j = 0; i < n; i++) {
    const char *key = PQgetvalue(res, i, 1);
    int k = 0;
    for (; k < r->nput; k++, j = (j + 1) % r->nput) {
      const s_frame_t *f = &r->put[j];
      if (f->carried == carried && !f->id && !strcmp(carried ? f->ticket : f->mid, key)) break;
    }
    if (k == r->nput) {
      r->put_unmatched = 1;
      return;
    }
    r->put[j].id = strtoull(PQgetvalue(res, i, 0), NULL, 10);
    j = (j + 1) % r->nput;
  }
}

static void s_relay_on_put(void *arg, const PGresult *res) { s_relay_match(arg, res, 0); }

void wh_relay_carried(void *relay, const PGresult *res) { s_relay_match(relay, res, 1); }

void wh_relay_step(wh_relay_t *r, wh_pg_step_t *step) {
  *step = (wh_pg_step_t){.st = &s_put, .rows = &r->rows, .nextra = 1,
                         .extra = (const char *const *)&r->dest,
                         .on_result = s_relay_on_put, .arg = r};
}

int wh_relay_flush(wh_relay_t *r) {
  if (r->nput == 0) return 0;
  wh_pg_step_t step;
  wh_relay_step(r, &step);
  return wh_pg_pipeline(r->pg, 0, &step, 1, 0);
}

static void s_frames_free(s_frame_t *f, int n) {
  for (int i = 0; i < n; i++) free(f[i].bytes);
}

void wh_relay_aborted(wh_relay_t *r) {
  /* The commit may have happened all the same (the answer was lost): its
   * rows, if any, have ids above every row known, and are read back. */
  if (r->nput) r->behind = 1;
  s_frames_free(r->put, r->nput);
  r->nput = r->ncarried = 0;
  r->put_unmatched = 0;
  wh_rows_reset(&r->rows);
}

/* Sends what s_relay_send gathered: one frame, a Batch when it holds more
 * than one envelope. Returns 0, or -1 when the socket would block; the
 * envelopes are then sent again by the next scan (they are in flight). */
static int s_relay_flush_out(wh_relay_t *r) {
  if (r->nout == 0) return 0;
  int rc;
  if (r->nout == 1) {
    rc = wh_bus_send(r->bus, NULL, 0, r->out.buf, r->out.len);
  } else {
    ProtobufCBinaryData items[RELAY_BATCH];
    for (int i = 0; i < r->nout; i++)
      items[i] = (ProtobufCBinaryData){.len = r->out_at[i + 1] - r->out_at[i],
                                       .data = (uint8_t *)r->out.buf + r->out_at[i]};
    Whistle__Batch b = WHISTLE__BATCH__INIT;
    b.n_envelopes = (size_t)r->nout;
    b.envelopes = items;
    Whistle__Envelope env = WHISTLE__ENVELOPE__INIT;
    env.body_case = WHISTLE__ENVELOPE__BODY_BATCH;
    env.batch = &b;
    uint8_t *frame = NULL;
    size_t flen = 0;
    rc = wh_env_pack(&env, &frame, &flen);
    if (rc == 0) {
      rc = wh_bus_send(r->bus, NULL, 0, frame, flen);
      free(frame);
    }
  }
  if (rc) { /* not sent: due again soon */
    int64_t now = wh_clock_mono_ms();
    for (int i = 0; i < r->nout; i++) {
      s_slot_t *slot = s_find(r->inflight, r->out_id[i]);
      if (slot->id == r->out_id[i]) s_slot_soon(slot, now);
    }
  }
  r->nout = 0;
  r->out.len = 0;
  return rc ? -1 : 0;
}

/* Stamps one row and adds it to what goes out together (s_relay_flush_out);
 * returns 0, or -1 when a full batch could not be sent (the socket would
 * block). first: this is the row's first sending, from the memory of the
 * transaction that committed it (see first_send in the envelope). */
static int s_relay_send(wh_relay_t *r, uint64_t id, const uint8_t *bytes, size_t len, int64_t now,
                        int first) {
  if ((r->nout == RELAY_BATCH || r->out.len + len + WH_STAMP_MAX > RELAY_BATCH_BYTES) &&
      s_relay_flush_out(r))
    return -1;
  uint8_t stamp[WH_STAMP_MAX];
  /* now is the monotonic clock's; the envelope says when, on the wall's */
  size_t slen = wh_env_stamp(id, wh_clock_now_ms(), first, stamp);
  size_t at = r->out.len;
  if (wh_sbuf_put(&r->out, bytes, len) || wh_sbuf_put(&r->out, stamp, slen)) {
    r->out.len = at; /* the envelopes before it stay whole */
    return -1;
  }
  r->out_at[r->nout] = at;
  r->out_at[r->nout + 1] = r->out.len;
  r->out_id[r->nout++] = id;
  s_slot_t *slot = s_find(r->inflight, id);
  if (slot->id != id) {
    *slot = (s_slot_t){.id = id, .first_ms = now};
    r->ninflight++;
  } else if (slot->tries < UINT8_MAX) {
    slot->tries++;
  }
  slot->answered = 0;
  slot->due_ms = now + s_backoff(RELAY_RESEND_MS, slot->tries, RELAY_BACKOFF_MAX_MS);
  if (id > r->high) r->high = id;
  if (id > r->head) r->head = id;
  return 0;
}

/* Parks row id (bytes: its envelope as stored) behind the refused message
 * of its ticket, p, instead of sending it. Returns 0, or -1 when it could
 * not be recorded (it stays owed, and is offered again). */
static int s_relay_park_behind(wh_relay_t *r, uint64_t id, const uint8_t *bytes, size_t len,
                               const Whistle__Envelope *env, const s_parked_t *p) {
  char ids[24], seq[16], why[320];
  snprintf(ids, sizeof ids, "%" PRIu64, id);
  snprintf(seq, sizeof seq, "%" PRIu32, env->seq);
  snprintf(why, sizeof why, "waits behind %s, refused by %s", p->head, r->dest);
  const char *v[8] = {ids, r->dest, env->message_id, env->ticket_id, seq, (const char *)bytes,
                      why, p->head};
  int lens[8] = {0, 0, 0, 0, 0, (int)len, 0, 0}, fmts[8] = {0, 0, 0, 0, 0, 1, 0, 0};
  PGresult *res = wh_pg_ready(r->pg) ? NULL : wh_pg_run(r->pg, &s_park_behind, 8, v, lens, fmts);
  if (!res) return -1;
  PQclear(res);
  wh_warn("%s seq %" PRIu32 " (message %s) parked for %s: it %s", env->ticket_id, env->seq,
          env->message_id, r->dest, why);
  s_slot_t *slot = s_find(r->inflight, id);
  if (slot->id == id) {
    s_remove(r->inflight, id);
    r->ninflight--;
  }
  return 0;
}

/* Sends row id as s_relay_send does, unless its ticket (given, or read
 * from the bytes) has a parked message: then it is parked behind it.
 * Returns 0 (sent or parked) or -1 (stopped; it stays owed). */
static int s_relay_offer(wh_relay_t *r, uint64_t id, const uint8_t *bytes, size_t len, int64_t now,
                         int first, const char *ticket) {
  if (r->parked.n) {
    const s_parked_t *p = ticket ? s_parked_find(&r->parked, ticket) : NULL;
    Whistle__Envelope *env = NULL;
    if (!ticket || p) {
      wh_arena_reset(r->park_arena);
      if (wh_env_unpack_in(r->park_arena, bytes, len, &env) == 0)
        p = s_parked_find(&r->parked, env->ticket_id);
      else
        env = NULL;
    }
    if (p && env) return s_relay_park_behind(r, id, bytes, len, env, p);
  }
  return s_relay_send(r, id, bytes, len, now, first);
}

/* Sends the rows of a binary result (id, payload) that are not in flight,
 * or in flight too long, while the window has room. Returns the number of
 * rows, or -1 when it stopped before the last one (the socket would block,
 * or the window is full). */
static int s_relay_send_result(wh_relay_t *r, PGresult *res, int64_t now) {
  int n = PQntuples(res);
  /* Carried messages that are not stored (payload NULL) are built again
   * from their rows first, all in one statement. */
  uint64_t *ids = NULL;
  s_built_t *built = NULL;
  int nbuilt = 0;
  for (int i = 0; i < n; i++)
    if (PQgetisnull(res, i, 1)) nbuilt++;
  if (nbuilt) {
    ids = malloc((size_t)nbuilt * sizeof *ids);
    built = calloc((size_t)nbuilt, sizeof *built);
    nbuilt = 0;
    for (int i = 0; ids && built && i < n; i++)
      if (PQgetisnull(res, i, 1)) ids[nbuilt++] = wh_pg_get_u64(res, i, 0);
    int rc = ids && built ? s_relay_build(r, ids, nbuilt, built) : -1;
    free(ids);
    if (rc) {
      s_built_free(built, nbuilt);
      return -1;
    }
  }
  int sent = n;
  for (int i = 0, b = 0; i < n; i++) {
    uint64_t id = wh_pg_get_u64(res, i, 0);
    const uint8_t *bytes = (const uint8_t *)PQgetvalue(res, i, 1);
    size_t len = (size_t)PQgetlength(res, i, 1);
    if (PQgetisnull(res, i, 1)) {
      bytes = built[b].bytes;
      len = built[b++].len;
    }
    s_slot_t *slot = s_find(r->inflight, id);
    if (slot->id == id && now < slot->due_ms) continue;
    if (!bytes) {
      /* Its row is there (the read found it) but did not build: it waits,
       * and the messages after it with it, until a fixed build runs. */
      wh_error("could not build the message of outbox row %" PRIu64 " for %s from its row;"
               " it and what follows it wait",
               id, r->dest);
      sent = -1;
      break;
    }
    if ((slot->id != id && r->ninflight >= RELAY_WINDOW) ||
        s_relay_offer(r, id, bytes, len, now, 0, NULL)) {
      sent = -1;
      break;
    }
  }
  s_built_free(built, nbuilt);
  return sent;
}

/* Reads undelivered rows after `after` from the table, RELAY_READ_SPAN ids
 * at a time up to the last id given, and sends them as s_relay_send_result
 * does. Returns the number of rows read (fewer than limit: there are no
 * more), or -1 when reading failed or sending stopped early. */
static int s_relay_send_rows(wh_relay_t *r, uint64_t after, int limit, int64_t now) {
  if (wh_pg_ready(r->pg)) return -1;
  uint64_t last = 0;
  int total = 0;
  while (total < limit) {
    uint64_t upto = after + RELAY_READ_SPAN;
    char after_s[24], upto_s[24], lim[16];
    snprintf(after_s, sizeof after_s, "%" PRIu64, after);
    snprintf(upto_s, sizeof upto_s, "%" PRIu64, upto);
    snprintf(lim, sizeof lim, "%d", limit - total);
    const char *v[4] = {r->dest, after_s, upto_s, lim};
    PGresult *res = wh_pg_run_binary(r->pg, &s_new_rows, 4, v);
    if (!res) return -1;
    int n = s_relay_send_result(r, res, now);
    PQclear(res);
    if (n < 0) return -1;
    total += n;
    if (total == limit) break;
    after = upto; /* that span is read to its end */
    if (!last) {
      res = wh_pg_run_binary(r->pg, &s_last_id, 0, NULL);
      if (!res) return -1;
      last = PQntuples(res) == 1 ? wh_pg_get_u64(res, 0, 0) : 0;
      PQclear(res);
      if (!last) break;
    }
    if (after >= last) break;
  }
  return total;
}

static int s_id_cmp(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Sends again what is due (unanswered for its wait, which doubles with
 * each sending up to RELAY_BACKOFF_MAX_MS, or answered "retry"), oldest
 * first, reading only those rows. A row that is gone was acknowledged or
 * parked meanwhile. A receiver that has answered nothing for
 * RELAY_RESEND_MS is sent only the oldest RELAY_BATCH messages in flight,
 * a probe: the rest wait until it answers, instead of the whole window
 * going into a socket that holds it. */
static void s_relay_resend_overdue(wh_relay_t *r, int64_t now) {
  wh_sbuf_t ids = {0};
  int n = 0, stuck = 0;
  uint64_t lo = UINT64_MAX, hi = 0, oldest = 0, cutoff = UINT64_MAX;
  int64_t waited = 0;
  if (r->ninflight == 0) return;
  if (now - r->heard_ms >= RELAY_RESEND_MS && r->ninflight > RELAY_BATCH) {
    uint64_t *all = malloc((size_t)r->ninflight * sizeof *all);
    int k = 0;
    for (size_t i = 0; all && i < SLOTS && k < r->ninflight; i++)
      if (r->inflight[i].id) all[k++] = r->inflight[i].id;
    if (all && k > RELAY_BATCH) {
      qsort(all, (size_t)k, sizeof *all, s_id_cmp);
      cutoff = all[RELAY_BATCH - 1];
    }
    free(all);
  }
  for (size_t i = 0; i < SLOTS; i++) {
    s_slot_t *slot = &r->inflight[i];
    uint64_t id = slot->id;
    if (!id || now < slot->due_ms || id > cutoff) continue;
    /* Sent and sent again for a minute without an answer: the receiver is
     * down, or cannot take it (its database failing). Said once per row,
     * in one line per scan. */
    if (!slot->warned && !slot->answered && now - slot->first_ms >= RELAY_STUCK_MS) {
      slot->warned = 1;
      stuck++;
      if (now - slot->first_ms > waited) {
        waited = now - slot->first_ms;
        oldest = id;
      }
    }
    char num[24];
    int len = snprintf(num, sizeof num, "%s%" PRIu64, n ? "," : "{", id);
    if (wh_sbuf_put(&ids, num, (size_t)len)) break;
    slot->asked = 1;
    n++;
    if (id < lo) lo = id;
    if (id > hi) hi = id;
  }
  if (stuck)
    wh_warn("%s has not acknowledged %d message%s for a minute or more (the oldest, outbox row"
            " %" PRIu64 ", sent first %" PRId64 " s ago); sending them again until it does",
            r->dest, stuck, stuck == 1 ? "" : "s", oldest, waited / 1000);
  PGresult *res = NULL;
  if (n && wh_sbuf_put(&ids, "}", 1) == 0 && wh_pg_ready(r->pg) == 0) {
    char lo_s[24], hi_s[24];
    snprintf(lo_s, sizeof lo_s, "%" PRIu64, lo);
    snprintf(hi_s, sizeof hi_s, "%" PRIu64, hi);
    const char *v[3] = {ids.buf, lo_s, hi_s};
    res = wh_pg_run_binary(r->pg, &s_due_rows, 3, v);
    if (res) {
      s_relay_send_result(r, res, now);
      s_relay_flush_out(r);
    }
  }
  /* Forget what is gone meanwhile; what could not be read is due soon. */
  for (size_t i = 0; i < SLOTS; i++) {
    s_slot_t *slot = &r->inflight[i];
    if (!slot->id || !slot->asked) continue;
    slot->asked = 0;
    if (!res) {
      s_slot_soon(slot, now);
    } else if (now >= slot->due_ms && s_gone(res, slot->id)) {
      s_remove(r->inflight, slot->id);
      r->ninflight--;
      i--; /* backward shift may have moved another slot here */
    }
  }
  if (res) PQclear(res);
  free(ids.buf);
}

/* Sends queued frames while the window has room; then, if rows were left
 * out of memory, reads them back from the table. */
/* Where the previous run left the line: reading back starts above it. */
static int s_relay_load_line(wh_relay_t *r) {
  const char *v[1] = {r->dest};
  if (wh_pg_ready(r->pg)) return -1;
  PGresult *res = wh_pg_run(r->pg, &s_line_start, 1, v, NULL, NULL);
  if (!res) return -1;
  PQclear(res);
  res = wh_pg_run(r->pg, &s_line_get, 1, v, NULL, NULL);
  if (!res) return -1;
  uint64_t upto = PQntuples(res) == 1 ? strtoull(PQgetvalue(res, 0, 0), NULL, 10) : 0;
  PQclear(res);
  if (upto > r->high) r->high = upto;
  if (upto > r->head) r->head = upto;
  r->line = r->line_stored = upto;
  r->line_loaded = 1;
  return 0;
}

/* The tickets that wait behind a refused message, as the table has them. */
static int s_relay_load_parked(wh_relay_t *r) {
  const char *v[1] = {r->dest};
  if (wh_pg_ready(r->pg)) return -1;
  PGresult *res = wh_pg_run(r->pg, &s_parked_tickets, 1, v, NULL, NULL);
  if (!res) return -1;
  s_parked_clear(&r->parked);
  int rc = 0;
  for (int i = 0; i < PQntuples(res) && !rc; i++)
    rc = s_parked_add(&r->parked, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1));
  PQclear(res);
  if (rc) return -1;
  r->parked_loaded = 1;
  return 0;
}

static void s_relay_pump_rows(wh_relay_t *r) {
  int64_t now = wh_clock_mono_ms();
  if (!r->line_loaded && s_relay_load_line(r)) return;
  if (!r->parked_loaded && s_relay_load_parked(r)) return;
  while (r->qlen && r->ninflight < RELAY_WINDOW) {
    s_frame_t *f = &r->queue[r->qhead];
    /* A queued frame was committed by this process and never sent: rows
     * are read back from the table only above the newest one queued. */
    if (s_relay_offer(r, f->id, f->bytes, f->len, now, 1, f->ticket)) return;
    free(f->bytes);
    r->qhead = (r->qhead + 1) % RELAY_QUEUE;
    r->qlen--;
  }
  if (r->qlen == 0 && r->behind && r->ninflight < RELAY_WINDOW) {
    int room = RELAY_WINDOW - r->ninflight;
    int n = s_relay_send_rows(r, r->high, room, now);
    if (n >= 0 && n < room) r->behind = 0; /* all read, all sent */
  }
}

/* Sends what is queued or unread while the window has room, in frames of
 * many envelopes. */
static void s_relay_pump(wh_relay_t *r) {
  s_relay_pump_rows(r);
  s_relay_flush_out(r);
}

/* Flow control: while committed messages wait for room in the window (or
 * in the table) and the receiver is working through them, the input that
 * makes more waits in its socket. What this process already committed then
 * goes out from memory, where reading it back from the table would cost the
 * database as much again. A receiver that has gone quiet (stopped, or down)
 * releases the input: the table takes the backlog, and nothing that arrives
 * waits on a peer that may not come back soon. */
static void s_outbox_hold(wh_outbox_t *ob) {
  int hold = 0;
  for (int i = 0; i < ob->nrelays; i++) hold |= ob->relays[i]->holding;
  if (ob->input && hold != ob->holding) wh_bus_hold(ob->input, hold);
  ob->holding = hold;
}

static void s_relay_hold(wh_relay_t *r) {
  r->holding = (r->qlen > 0 || r->behind) && wh_clock_mono_ms() - r->acked_ms < RELAY_ALIVE_MS;
  if (r->ob) s_outbox_hold(r->ob);
}

void wh_outbox_throttle(wh_outbox_t *ob, wh_bus_t *input) {
  ob->input = input;
  ob->holding = 0;
  s_outbox_hold(ob);
}

void wh_relay_committed(wh_relay_t *r) {
  for (int i = 0; i < r->nput; i++) {
    s_frame_t *f = &r->put[i];
    if (r->ob) r->ob->written += !f->carried; /* rows of the outbox table, which emptying drops */
    if (f->id > r->head) r->head = f->id;
    if (!r->behind && !r->put_unmatched && f->id && r->qlen < RELAY_QUEUE) {
      r->queue[(r->qhead + r->qlen++) % RELAY_QUEUE] = *f;
      if (f->id > r->high) r->high = f->id;
    } else {
      r->behind = 1; /* stored; read back once the queue has drained */
      free(f->bytes);
    }
  }
  r->nput = r->ncarried = 0;
  r->put_unmatched = 0;
  wh_rows_reset(&r->rows);
  s_relay_pump(r);
  s_relay_hold(r);
}

/* Delivered up to here: below the oldest row in flight or queued, and
 * below what may be stored unread (behind) or not yet committed. */
static uint64_t s_relay_line(const wh_relay_t *r) {
  if (!r->line_loaded) return 0;
  uint64_t line = r->behind ? r->high : r->head;
  for (size_t i = 0; i < SLOTS; i++)
    if (r->inflight[i].id && r->inflight[i].id <= line) line = r->inflight[i].id - 1;
  for (int i = 0; i < r->qlen; i++) {
    uint64_t id = r->queue[(r->qhead + i) % RELAY_QUEUE].id;
    if (id <= line) line = id - 1;
  }
  return line;
}

/* Moves the line in the table, committed lazily: a line lost in a crash
 * only means rows above the older line are sent again, and the receiver's
 * inbox makes the repeats harmless. The builder's `taken` statement goes
 * in the same transaction, so what it drops is never above a stored line. */
static void s_relay_store_line(wh_relay_t *r) {
  uint64_t line = s_relay_line(r);
  if (line > r->line) r->line = line;
  if (r->line <= r->line_stored || wh_pg_ready(r->pg)) return;
  wh_rows_reset(&r->line_row);
  wh_rows_next(&r->line_row);
  wh_rows_int(&r->line_row, 0, (int64_t)r->line);
  const char *v[1] = {r->dest};
  wh_pg_step_t steps[2] = {{.st = &s_line_move, .rows = &r->line_row, .nextra = 1, .extra = v},
                           {.st = r->builder ? r->builder->taken : NULL, .rows = &r->line_row}};
  int nsteps = steps[1].st ? 2 : 1;
  if (wh_pg_pipeline(r->pg, 1, steps, nsteps, WH_PG_COMMIT_LAZILY) == 0) r->line_stored = r->line;
}

/* What the outbox table still owes, by destination, as the database
 * sees it (rows above their destination's stored line, not parked). */
static const wh_stmt_t s_owed_in_table = {
    "wh_outbox_owed_in_table",
    "SELECT o.dest, count(*) FROM outbox o LEFT JOIN outbox_line l ON l.dest = o.dest"
    " WHERE o.parked_at IS NULL AND o.id > coalesce(l.upto, 0) GROUP BY o.dest ORDER BY o.dest"};

/* 1 when relay r has delivered everything this process knows of: nothing
 * in flight, queued, unread or being written, and its line stored at the
 * newest row of its destination. */
static int s_relay_drained(wh_relay_t *r) {
  if (!r->line_loaded || r->behind || r->qlen || r->ninflight || r->nput) return 0;
  s_relay_store_line(r);
  return r->line == r->head && r->line_stored == r->line;
}

/* Empties the table once every destination has been delivered all of it.
 * TRUNCATE drops the rows at the cost of a few files, where deleting them
 * would write a record apiece and leave them to vacuum. It waits for no
 * one: a reader holding the table (an operator's query) makes it give up
 * until the next time. The relays' word is not taken alone: under the
 * table's lock the database is asked whether any row is still owed, to a
 * relay of this process or to a destination none serves (one configured
 * before, or soon), and the table is emptied only when none is. */
static void s_outbox_empty(wh_outbox_t *ob, int64_t now) {
  if (!ob->written) return;
  if (ob->written < RELAY_EMPTY_ROWS && now - ob->emptied_ms < RELAY_EMPTY_MS) return;
  for (int i = 0; i < ob->nrelays; i++)
    if (!s_relay_drained(ob->relays[i])) return;
  if (wh_pg_ready(ob->pg)) return;
  ob->emptied_ms = now;
  if (wh_pg_exec(ob->pg, "BEGIN; SET LOCAL lock_timeout = '100ms';"
                         " LOCK TABLE outbox IN ACCESS EXCLUSIVE MODE")) {
    wh_pg_rollback(ob->pg);
    return;
  }
  PGresult *res = wh_pg_run(ob->pg, &s_owed_in_table, 0, NULL, NULL, NULL);
  if (!res || PQntuples(res) > 0) {
    if (res && now - ob->warned_ms >= RELAY_STUCK_MS) {
      ob->warned_ms = now;
      wh_warn("the outbox is not emptied: it still owes %s %s message%s%s", PQgetvalue(res, 0, 0),
              PQgetvalue(res, 0, 1), strcmp(PQgetvalue(res, 0, 1), "1") ? "s" : "",
              PQntuples(res) > 1 ? ", and other destinations theirs" : "");
    }
    PQclear(res);
    wh_pg_rollback(ob->pg);
    return;
  }
  PQclear(res);
  if (wh_pg_exec(ob->pg, "TRUNCATE outbox; COMMIT")) {
    wh_pg_rollback(ob->pg);
    return;
  }
  ob->written = 0;
}

static void s_relay_on_scan(uv_timer_t *t) {
  wh_relay_t *r = t->data;
  int64_t now = wh_clock_mono_ms();
  s_relay_pump(r);
  s_relay_resend_overdue(r, now);
  s_relay_store_line(r);
  if (r->ob) s_outbox_empty(r->ob, now);
  s_relay_hold(r);
}

/* Takes one answer from the receiver. Returns 1 when it acknowledged a
 * row, else 0. */
static int s_relay_take_ack(wh_relay_t *r, const Whistle__Ack *a) {
  s_slot_t *slot = s_find(r->inflight, a->delivery_tag);
  if (a->status == WHISTLE__ACK_STATUS__ACK_OK) {
    if (slot->id == a->delivery_tag) {
      s_remove(r->inflight, a->delivery_tag);
      r->ninflight--;
    }
    return 1;
  }
  if (a->status == WHISTLE__ACK_STATUS__ACK_REJECTED) {
    if (r->nrefused == RELAY_REFUSED_MAX) {
      if (slot->id == a->delivery_tag) s_slot_soon(slot, wh_clock_mono_ms()); /* owed */
      return 0;
    }
    s_refusal_t *f = &r->refused[r->nrefused++];
    f->tag = a->delivery_tag;
    wh_str_copy(f->message_id, sizeof f->message_id, a->message_id ? a->message_id : "");
    wh_str_copy(f->text, sizeof f->text, a->error && a->error->text ? a->error->text : "rejected");
  } else if (slot->id == a->delivery_tag) {
    /* Retry: sent again after its predecessor, each time after twice
     * the wait before (up to RELAY_RETRY_MAX_MS). A message that waits
     * for long waits for one that may never come (refused, parked):
     * that must not go unseen. */
    int64_t now = wh_clock_mono_ms();
    if (!slot->warned && now - slot->first_ms >= RELAY_STUCK_MS) {
      slot->warned = 1;
      wh_warn("%s has waited %" PRId64 " s for an earlier message of its ticket before"
              " taking outbox row %" PRIu64 " (message %s); it is sent again until then",
              r->dest, (now - slot->first_ms) / 1000, a->delivery_tag, a->message_id);
    }
    slot->answered = 1;
    s_slot_soon(slot, now);
  }
  return 0;
}

/* Parks a refused message, with its ticket's later ones behind it. */
static void s_relay_park_refused(wh_relay_t *r, const s_refusal_t *f) {
  s_slot_t *slot = s_find(r->inflight, f->tag);
  char tag[24];
  snprintf(tag, sizeof tag, "%" PRIu64, f->tag);
  wh_error("%s rejected message %s: %s; parked, with its ticket's later messages", r->dest,
           f->message_id, f->text);
  /* A carried message that is not stored is parked whole: built again. */
  s_built_t built = {0};
  if (r->builder && s_relay_build(r, &f->tag, 1, &built)) built.bytes = NULL;
  const char *v[4] = {tag, f->text, f->message_id, (const char *)built.bytes};
  int lens[4] = {0, 0, 0, (int)built.len}, fmts[4] = {0, 0, 0, 1};
  PGresult *res = wh_pg_ready(r->pg) ? NULL : wh_pg_run(r->pg, &s_parked, 4, v, lens, fmts);
  free(built.bytes);
  if (!res) {
    if (slot->id == f->tag) s_slot_soon(slot, wh_clock_mono_ms()); /* not parked: owed */
    return;
  }
  /* Its ticket's later messages are parked behind it, not sent. */
  if (PQntuples(res) == 1 && s_parked_add(&r->parked, PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1)))
    r->parked_loaded = 0; /* read again from the table before sending more */
  PQclear(res);
  if (slot->id == f->tag) {
    s_remove(r->inflight, f->tag);
    r->ninflight--;
  }
}

static void s_relay_on_after_acks(uv_check_t *h) {
  uv_check_stop(h);
  wh_relay_t *r = h->data;
  for (int i = 0; i < r->nrefused; i++) s_relay_park_refused(r, &r->refused[i]);
  r->nrefused = 0;
  s_relay_pump(r);
  s_relay_hold(r);
}

static void s_relay_on_line_timer(uv_timer_t *t) { s_relay_store_line(t->data); }

static void s_relay_on_ack(wh_bus_t *bus, void *arg) {
  wh_relay_t *r = arg;
  zmq_msg_t head, body;
  int got = 0, frames = 0;
  while (frames++ < RELAY_WINDOW && wh_bus_recv(bus, &head, &body) == 1) {
    r->heard_ms = wh_clock_mono_ms();
    Whistle__Envelope *env;
    if (wh_env_unpack_in(r->arena, zmq_msg_data(&body), zmq_msg_size(&body), &env) == 0) {
      if (env->body_case == WHISTLE__ENVELOPE__BODY_ACKS) {
        for (size_t i = 0; i < env->acks->n_acks; i++) got += s_relay_take_ack(r, env->acks->acks[i]);
      } else if (env->body_case == WHISTLE__ENVELOPE__BODY_ACK) {
        got += s_relay_take_ack(r, env->ack);
      } else if (env->body_case == WHISTLE__ENVELOPE__BODY_ERROR) {
        wh_warn("%s answered an error: %s", r->dest, env->error->text);
      }
    }
    wh_arena_reset(r->arena);
    zmq_msg_close(&head);
    zmq_msg_close(&body);
  }
  if (got) {
    /* The line follows the acknowledgements of the next RELAY_LINE_MS in
     * one update, not one transaction per answer: at a few hundred tickets
     * a second that was a transaction of its own per ticket and stage. */
    if (!uv_is_active((uv_handle_t *)&r->line_timer))
      uv_timer_start(&r->line_timer, s_relay_on_line_timer, RELAY_LINE_MS, 0);
    r->acked_ms = wh_clock_mono_ms();
  }
  if ((got || r->nrefused) && !uv_is_active((uv_handle_t *)&r->after_acks))
    uv_check_start(&r->after_acks, s_relay_on_after_acks);
  s_relay_hold(r);
}

/* ---- what is parked, and sending it again ------------------------------ */

static const wh_stmt_t s_parked_list = {
    "wh_outbox_parked_list",
    "SELECT id, dest, message_id, ticket_id, seq,"
    "   (extract(epoch FROM parked_at) * 1000)::bigint, coalesce(last_error, ''),"
    "   coalesce(behind, '')"
    " FROM outbox_parked WHERE redriven_at IS NULL AND id > $1::bigint ORDER BY id LIMIT $2"};
/* A ticket's parked messages to one destination become outbox rows again,
 * oldest first (the sequence gives their new ids in that order), and are
 * marked redriven; one statement, so all or none. */
static const wh_stmt_t s_redrive = {
    "wh_outbox_redrive",
    "WITH h AS (SELECT dest, ticket_id FROM outbox_parked"
    "   WHERE message_id = $1 AND redriven_at IS NULL LIMIT 1),"
    " r AS (UPDATE outbox_parked p SET redriven_at = now() FROM h"
    "   WHERE p.dest = h.dest AND p.ticket_id = h.ticket_id AND p.redriven_at IS NULL"
    "   RETURNING p.id, p.dest, p.message_id, p.ticket_id, p.seq, p.payload),"
    " i AS (INSERT INTO outbox (dest, message_id, ticket_id, seq, payload)"
    "   SELECT dest, message_id, ticket_id, seq, payload FROM r ORDER BY id RETURNING id)"
    " SELECT count(*), (SELECT dest FROM h) FROM i"};

int wh_outbox_parked(wh_outbox_t *ob, uint64_t after, int max,
                     void (*each)(void *arg, const wh_parked_msg_t *m), void *arg, int *more) {
  char after_s[24], lim[16];
  snprintf(after_s, sizeof after_s, "%" PRIu64, after);
  snprintf(lim, sizeof lim, "%d", max + 1);
  const char *v[2] = {after_s, lim};
  PGresult *res = wh_pg_ready(ob->pg) ? NULL : wh_pg_run(ob->pg, &s_parked_list, 2, v, NULL, NULL);
  if (!res) return WH_EDB;
  int n = PQntuples(res) > max ? max : PQntuples(res);
  *more = PQntuples(res) > max;
  for (int i = 0; i < n; i++) {
    wh_parked_msg_t m = {
        .id = strtoull(PQgetvalue(res, i, 0), NULL, 10),
        .dest = PQgetvalue(res, i, 1),
        .message_id = PQgetvalue(res, i, 2),
        .ticket_id = PQgetvalue(res, i, 3),
        .seq = (uint32_t)strtoul(PQgetvalue(res, i, 4), NULL, 10),
        .parked_at_ms = strtoll(PQgetvalue(res, i, 5), NULL, 10),
        .reason = PQgetvalue(res, i, 6),
        .behind = PQgetvalue(res, i, 7),
    };
    each(arg, &m);
  }
  PQclear(res);
  return n;
}

int wh_outbox_redrive(wh_outbox_t *ob, const char *message_id) {
  const char *v[1] = {message_id};
  PGresult *res = wh_pg_ready(ob->pg) ? NULL : wh_pg_run(ob->pg, &s_redrive, 1, v, NULL, NULL);
  if (!res) return WH_EDB;
  int n = PQntuples(res) == 1 ? atoi(PQgetvalue(res, 0, 0)) : 0;
  if (n == 0) {
    PQclear(res);
    return WH_ENOTFOUND;
  }
  wh_info("message %s sent again to %s, with its ticket's other parked messages (%d in all)",
          message_id, PQgetvalue(res, 0, 1), n);
  ob->written += n;
  /* The destination's relay reads what is parked again and the rows now
   * in the table. */
  for (int i = 0; i < ob->nrelays; i++) {
    wh_relay_t *r = ob->relays[i];
    if (strcmp(r->dest, PQgetvalue(res, 0, 1))) continue;
    r->parked_loaded = 0;
    r->behind = 1;
    s_relay_pump(r);
    s_relay_hold(r);
  }
  PQclear(res);
  return n;
}

wh_outbox_t *wh_outbox_new(wh_pg_t *pg) {
  wh_outbox_t *ob = calloc(1, sizeof *ob);
  if (!ob) return NULL;
  ob->pg = pg;
  ob->written = 1; /* a previous run may have left rows: empty once drained */
  ob->emptied_ms = wh_clock_mono_ms();
  return ob;
}

void wh_outbox_destroy(wh_outbox_t **self_p) {
  if (!self_p || !*self_p) return;
  wh_outbox_t *ob = *self_p;
  *self_p = NULL;
  for (int i = 0; i < ob->nrelays; i++) ob->relays[i]->ob = NULL;
  free(ob);
}

wh_relay_t *wh_relay_new(uv_loop_t *loop, void *zctx, wh_outbox_t *ob, const wh_keys_t *keys,
                         const char *dest, const char *endpoint) {
  if (ob->nrelays == WH_OUTBOX_DESTS) {
    wh_error("an outbox serves at most %d destinations", WH_OUTBOX_DESTS);
    return NULL;
  }
  for (int i = 0; i < ob->nrelays; i++)
    if (!strcmp(ob->relays[i]->dest, dest)) {
      wh_error("the outbox has a relay to %s already", dest);
      return NULL;
    }
  wh_relay_t *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  r->ob = ob;
  r->pg = ob->pg;
  r->dest = strdup(dest);
  r->behind = 1; /* what a previous run left is read from the table */
  wh_rows_init(&r->rows, 4);
  wh_rows_init(&r->line_row, 1);
  r->inflight = calloc(SLOTS, sizeof *r->inflight);
  r->queue = calloc(RELAY_QUEUE, sizeof *r->queue);
  r->arena = wh_arena_new();
  r->park_arena = wh_arena_new();
  r->bus = wh_bus_new(loop, zctx, ZMQ_DEALER, endpoint, 0, keys, dest, s_relay_on_ack, r);
  if (!r->bus || !r->inflight || !r->queue || !r->dest || !r->arena || !r->park_arena) {
    wh_bus_destroy(&r->bus);
    wh_arena_destroy(&r->arena);
    wh_arena_destroy(&r->park_arena);
    free(r->inflight);
    free(r->queue);
    free(r->dest);
    free(r);
    return NULL;
  }
  ob->relays[ob->nrelays++] = r;
  uv_timer_init(loop, &r->scan);
  r->scan.data = r;
  uv_timer_start(&r->scan, s_relay_on_scan, 50, RELAY_SCAN_MS);
  uv_timer_init(loop, &r->line_timer);
  r->line_timer.data = r;
  uv_check_init(loop, &r->after_acks);
  r->after_acks.data = r;
  r->open_handles = 3;
  return r;
}

static void s_relay_closed(uv_handle_t *h) {
  wh_relay_t *r = h->data;
  if (--r->open_handles) return;
  s_frames_free(r->put, r->nput);
  for (int i = 0; i < r->qlen; i++) free(r->queue[(r->qhead + i) % RELAY_QUEUE].bytes);
  free(r->put);
  free(r->queue);
  wh_rows_free(&r->line_row);
  wh_rows_free(&r->rows);
  wh_arena_destroy(&r->arena);
  wh_arena_destroy(&r->park_arena);
  free(r->parked.slots);
  free(r->out.buf);
  free(r->inflight);
  free(r->dest);
  free(r);
}

void wh_relay_destroy(wh_relay_t **self_p) {
  if (!self_p || !*self_p) return;
  wh_relay_t *r = *self_p;
  *self_p = NULL;
  wh_bus_destroy(&r->bus);
  wh_outbox_t *ob = r->ob;
  for (int i = 0; ob && i < ob->nrelays; i++)
    if (ob->relays[i] == r) {
      ob->relays[i] = ob->relays[--ob->nrelays];
      r->holding = 0;
      s_outbox_hold(ob);
      break;
    }
  /* Acknowledgements still to be recorded: a stop records them, when the
   * database is there, so a restart does not send those messages again. */
  if (uv_is_active((uv_handle_t *)&r->line_timer) && wh_pg_conn(r->pg)) s_relay_store_line(r);
  uv_close((uv_handle_t *)&r->scan, s_relay_closed);
  uv_close((uv_handle_t *)&r->line_timer, s_relay_closed);
  uv_close((uv_handle_t *)&r->after_acks, s_relay_closed);
}
