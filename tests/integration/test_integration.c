/* test_integration - the store and the outbox/inbox against a real
 * PostgreSQL (WHISTLE_TEST_DB names a database to create test databases
 * from): migrations from empty and re-run, inbox ordering, a consumer that
 * gets the same message twice and changes state once, a relay that
 * marks rows delivered only when acknowledged, state rows that record a
 * ticket's first message in place of the inbox, and batched rows that come
 * back exactly as they were given. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wh_clock.h"
#include "wh_codec.h"
#include "wh_err.h"
#include "wh_consumer.h"
#include "wh_outbox.h"
#include "wh_pg.h"
#include "../../services/dispatch/lapse.h"

extern const wh_migration_t *const triage_migrations[];
extern const wh_migration_t *const dispatch_migrations[];

static char s_conninfo[1024];

/* Connects pg, which must succeed. A handle that migrates takes its
 * database's writer lock, which the connection of a test just ended may
 * hold until its backend has exited: it is waited for, as a restarting
 * service waits. */
static void s_ready(wh_pg_t *pg) {
  int64_t until = wh_clock_now_ms() + 5000;
  while (wh_pg_ready(pg) && wh_clock_now_ms() < until) usleep(20000);
  assert_int_equal(wh_pg_ready(pg), 0);
}

static void s_admin(const char *sql) {
  const char *base = getenv("WHISTLE_TEST_DB");
  wh_pg_t *pg = wh_pg_new(base, NULL);
  assert_int_equal(wh_pg_ready(pg), 0);
  wh_pg_exec(pg, sql);
  wh_pg_destroy(&pg);
}

static int s_setup(void **state) {
  (void)state;
  const char *base = getenv("WHISTLE_TEST_DB");
  if (!base) {
    fprintf(stderr, "WHISTLE_TEST_DB is not set\n");
    return -1;
  }
  char sql[256];
  snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS whistle_it_%d", (int)getpid());
  s_admin(sql);
  snprintf(sql, sizeof sql, "CREATE DATABASE whistle_it_%d", (int)getpid());
  s_admin(sql);
  snprintf(s_conninfo, sizeof s_conninfo, "%s dbname=whistle_it_%d", base, (int)getpid());
  return 0;
}

static int s_teardown(void **state) {
  (void)state;
  if (!getenv("WHISTLE_TEST_DB")) return 0; /* s_setup said so */
  char sql[256];
  snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS whistle_it_%d", (int)getpid());
  s_admin(sql);
  return 0;
}

static long s_count(wh_pg_t *pg, const char *sql) {
  PGresult *r = wh_pg_query(pg, sql, 0, NULL);
  assert_non_null(r);
  long n = atol(PQgetvalue(r, 0, 0));
  PQclear(r);
  return n;
}

static void migrations_from_empty_and_rerun(void **state) {
  (void)state;
  wh_pg_t *pg = wh_pg_new(s_conninfo, triage_migrations);
  s_ready(pg);
  /* The shared outbox, triage's own, then the shared ones that came later. */
  assert_int_equal(s_count(pg, "SELECT count(*) FROM schema_migrations"), 16);
  assert_int_equal(s_count(pg, "SELECT count(*) FROM decision"), 0);
  assert_int_equal(s_count(pg, "SELECT count(*) FROM example"), 0);
  assert_int_equal(s_count(pg, "SELECT count(*) FROM pg_indexes WHERE indexname = 'outbox_pending'"), 0);
  /* The outbox is a log: no primary key, a BRIN index on id, a line. */
  assert_int_equal(s_count(pg, "SELECT count(*) FROM pg_indexes WHERE tablename = 'outbox'"
                               " AND indexdef LIKE '%USING brin (id)%'"), 1);
  assert_int_equal(s_count(pg, "SELECT count(*) FROM pg_indexes WHERE tablename = 'outbox'"), 1);
  /* A decision's carried message gets no statistics; its place does. */
  assert_int_equal(s_count(pg, "SELECT count(*) FROM pg_attribute WHERE attrelid = 'decision'::regclass"
                               " AND attname IN ('out_payload', 'rule') AND attstattarget = 0"), 2);
  assert_int_equal(s_count(pg, "SELECT count(*) FROM pg_attribute WHERE attrelid = 'decision'::regclass"
                               " AND attnum > 0 AND attstattarget = 0"), 2);
  wh_pg_destroy(&pg);
  /* A service's session never JIT-compiles (a compile took 60 ms of a
   * burst's wake) and hears no notices, whatever options its conninfo gives,
   * which it keeps, as it keeps the service's own. */
  char conninfo[1200];
  snprintf(conninfo, sizeof conninfo, "%s options='-c statement_timeout=12345'", s_conninfo);
  pg = wh_pg_new(conninfo, triage_migrations);
  wh_pg_set_session(pg, "-c enable_seqscan=off");
  s_ready(pg);
  assert_int_equal(s_count(pg, "SELECT count(*) FROM pg_settings WHERE"
                               " (name = 'jit' AND setting = 'off')"
                               " OR (name = 'client_min_messages' AND setting = 'warning')"
                               " OR (name = 'statement_timeout' AND setting = '12345')"
                               " OR (name = 'enable_seqscan' AND setting = 'off')"), 4);
  wh_pg_destroy(&pg);
  /* Starting again applies nothing twice. */
  pg = wh_pg_new(s_conninfo, triage_migrations);
  s_ready(pg);
  assert_int_equal(s_count(pg, "SELECT count(*) FROM schema_migrations"), 16);
  assert_int_equal(s_count(pg, "SELECT count(*) FROM outbox_owed"), 0);
  wh_pg_destroy(&pg);
}

/* Fills dispatch's work_order up to n orders, each with one deadline still
 * to come, and refreshes the statistics a plan is made from. */
static void s_orders_up_to(wh_pg_t *pg, long n) {
  char sql[1024];
  snprintf(sql, sizeof sql,
           "INSERT INTO work_order (ticket_id, version, state, external_id, source, community,"
           " grid, address, category, klass, body, reporter_masked, received_at, color, level,"
           " lead, co, rule, weight, due_names, due_ms, due_overdue_ms, due_met_ms, next_due_at)"
           " SELECT 'T' || g, 1, 'dispatched', 'e' || g, 'hotline', 'c', 'g', 'a', 'k', 'k', 'b',"
           " '138****0000', now(), 'red', 2, 'p', '{}', 'r', 1, '{resolve}',"
           " ARRAY[2000000000000 + g], '{NULL}', '{NULL}',"
           " to_timestamp((2000000000000 + g) / 1000.0)"
           " FROM generate_series((SELECT count(*) FROM work_order) + 1, %ld) g;"
           " ANALYZE work_order",
           n);
  assert_int_equal(wh_pg_exec(pg, sql), 0);
}

/* The estimates of the generic plan PostgreSQL settles on for the scan after
 * five runs: its total cost and the rows it expects. */
static void s_lapse_plan(wh_pg_t *pg, double *cost, long *rows) {
  assert_int_equal(wh_pg_exec(pg, "SET plan_cache_mode = force_generic_plan;"
                                  " DEALLOCATE ALL; PREPARE probe (bigint) AS " DISPATCH_LAPSE_SQL),
                   0);
  PGresult *r = wh_pg_query(pg, "EXPLAIN EXECUTE probe (0)", 0, NULL);
  assert_non_null(r);
  const char *top = PQgetvalue(r, 0, 0);
  const char *c = strstr(top, ".."), *n = strstr(top, "rows=");
  assert_non_null(c);
  assert_non_null(n);
  *cost = atof(c + 2);
  *rows = atol(n + 5);
  PQclear(r);
}

/* Dispatch's scan for lapsed deadlines is planned for one batch of orders,
 * however many the table holds. Planned for a share of the table, its
 * estimate once grew past jit_above_cost, and each run, once a minute,
 * spent 60 ms compiling with LLVM while the messages behind it waited. */
static void lapse_scan_planned_for_one_batch(void **state) {
  (void)state;
  char sql[256], conninfo[1100];
  snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS whistle_it_%d_lapse", (int)getpid());
  s_admin(sql);
  snprintf(sql, sizeof sql, "CREATE DATABASE whistle_it_%d_lapse", (int)getpid());
  s_admin(sql);
  snprintf(conninfo, sizeof conninfo, "%s_lapse", s_conninfo);
  wh_pg_t *pg = wh_pg_new(conninfo, dispatch_migrations);
  s_ready(pg);
  /* The copy an order's first event is built from takes the whole row, in
   * order (keep_first_event inserts OLD.*): a column added to the order and
   * not to the copy failed every update of an order notify had not taken. */
  assert_int_equal(s_count(pg, "WITH c AS (SELECT attrelid, attname, atttypid,"
                               " row_number() OVER (PARTITION BY attrelid ORDER BY attnum) AS n"
                               " FROM pg_attribute WHERE attnum > 0 AND NOT attisdropped),"
                               " o AS (SELECT n, attname, atttypid FROM c"
                               "       WHERE attrelid = 'work_order'::regclass),"
                               " f AS (SELECT n, attname, atttypid FROM c"
                               "       WHERE attrelid = 'work_order_first'::regclass)"
                               " SELECT (SELECT count(*) FROM (TABLE o EXCEPT TABLE f) x)"
                               "      + (SELECT count(*) FROM (TABLE f EXCEPT TABLE o) y)"), 0);
  s_orders_up_to(pg, 200000);
  double cost;
  long rows;
  s_lapse_plan(pg, &cost, &rows);
  PGresult *r = wh_pg_query(pg, "SELECT current_setting('jit_above_cost')", 0, NULL);
  assert_non_null(r);
  double jit_above = atof(PQgetvalue(r, 0, 0));
  PQclear(r);
  print_message("lapse scan at 200,000 orders: %ld rows, cost %.0f (jit_above_cost %.0f)\n", rows,
                cost, jit_above);
  assert_int_equal(rows, DISPATCH_LAPSE_BATCH);
  assert_true(cost < jit_above);
  wh_pg_destroy(&pg);
  snprintf(sql, sizeof sql, "DROP DATABASE whistle_it_%d_lapse", (int)getpid());
  s_admin(sql);
}

/* A service is its database's one writer: a second process of it waits
 * (its connection fails, and is retried) until the first has gone, while
 * a reader (whistlectl) is never in the way. */
static void one_writer_per_database(void **state) {
  (void)state;
  wh_pg_t *first = wh_pg_new(s_conninfo, triage_migrations);
  assert_int_equal(wh_pg_ready(first), 0);
  wh_pg_t *second = wh_pg_new(s_conninfo, triage_migrations);
  assert_int_equal(wh_pg_ready(second), WH_EDB);
  wh_pg_t *reader = wh_pg_new(s_conninfo, NULL);
  assert_int_equal(wh_pg_ready(reader), 0);
  assert_int_equal(wh_pg_ready(second), WH_EDB); /* still held, or not yet retried */
  wh_pg_destroy(&first);
  int64_t until = wh_clock_now_ms() + 5000;
  while (wh_pg_ready(second) && wh_clock_now_ms() < until) usleep(20000);
  assert_int_equal(wh_pg_ready(second), 0);
  assert_int_equal(s_count(reader, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                                   " AND pid = pg_backend_pid()"), 0);
  wh_pg_destroy(&reader);
  wh_pg_destroy(&second);
}

static void inbox_applies_in_order_once(void **state) {
  (void)state;
  wh_pg_t *pg = wh_pg_new(s_conninfo, triage_migrations);
  s_ready(pg);
  assert_int_equal(wh_pg_exec(pg, "BEGIN"), 0);
  assert_int_equal(wh_inbox_claim(pg, "intake", "WH1", 1), WH_INBOX_APPLY);
  assert_int_equal(wh_inbox_claim(pg, "intake", "WH1", 1), WH_INBOX_SEEN);
  assert_int_equal(wh_inbox_claim(pg, "intake", "WH1", 3), WH_INBOX_GAP);
  assert_int_equal(wh_inbox_claim(pg, "intake", "WH1", 2), WH_INBOX_APPLY);
  assert_int_equal(wh_inbox_claim(pg, "intake", "WH1", 3), WH_INBOX_APPLY);
  assert_int_equal(wh_inbox_claim(pg, "intake", "WH1", 2), WH_INBOX_SEEN);
  assert_int_equal(wh_inbox_claim(pg, "intake", "WH2", 2), WH_INBOX_GAP); /* 1 never came */
  assert_int_equal(wh_inbox_claim(pg, "other", "WH1", 1), WH_INBOX_APPLY); /* per sender */
  /* A whole batch in one statement: a message repeated within the batch is
   * applied once, and a successor in the same batch waits for the next. */
  wh_claim_t c[5] = {{"intake", "WH5", 1, -1}, {"intake", "WH5", 1, -1}, {"intake", "WH6", 2, -1},
                     {"intake", "WH7", 1, -1}, {"intake", "WH7", 2, -1}};
  assert_int_equal(wh_inbox_claim_batch(pg, c, 5), 0);
  assert_int_equal(c[0].claim, WH_INBOX_APPLY);
  assert_int_equal(c[1].claim, WH_INBOX_SEEN);
  assert_int_equal(c[2].claim, WH_INBOX_GAP);
  assert_int_equal(c[3].claim, WH_INBOX_APPLY);
  assert_int_equal(c[4].claim, WH_INBOX_GAP);
  assert_int_equal(wh_inbox_claim(pg, "intake", "WH7", 2), WH_INBOX_APPLY);
  assert_int_equal(wh_pg_exec(pg, "COMMIT"), 0);
  wh_pg_destroy(&pg);
}

/* ---- a consumer over real sockets -------------------------------------- */

#define RIG_ACKS 64 /* answers a rig keeps */

typedef struct {
  wh_pg_t *pg;
  int applied;
  void *dealer;
  int acks[RIG_ACKS];
  char ack_mid[RIG_ACKS][16];
  int nacks, want, frames, commits, requests;
  int other_reads, other_at_apply; /* another socket of the loop: its reads, as apply saw them */
  uv_loop_t *loop, loop_s;
  void *zctx;
  wh_consumer_t *consumer;
  uv_timer_t timer;
  int64_t deadline;
} s_rig_t;

/* A consumer with ops on endpoint, over triage's migrations plus table, and
 * a DEALER connected to it as a relay would be. */
static void s_rig_open(s_rig_t *rig, const char *table, const char *endpoint,
                       const wh_consumer_ops_t *ops) {
  rig->pg = wh_pg_new(s_conninfo, triage_migrations);
  s_ready(rig->pg);
  assert_int_equal(wh_pg_exec(rig->pg, table), 0);
  rig->loop = &rig->loop_s;
  uv_loop_init(rig->loop);
  rig->zctx = zmq_ctx_new();
  rig->consumer = wh_consumer_new(rig->loop, rig->zctx, rig->pg, NULL, endpoint, ops, rig);
  assert_non_null(rig->consumer);
  rig->dealer = zmq_socket(rig->zctx, ZMQ_DEALER);
  assert_int_equal(zmq_connect(rig->dealer, endpoint), 0);
  uv_timer_init(rig->loop, &rig->timer);
  rig->timer.data = rig;
}

static void s_rig_close(s_rig_t *rig) {
  uv_close((uv_handle_t *)&rig->timer, NULL);
  wh_consumer_destroy(&rig->consumer);
  uv_run(rig->loop, UV_RUN_DEFAULT);
  uv_loop_close(rig->loop);
  zmq_close(rig->dealer);
  zmq_ctx_term(rig->zctx);
  wh_pg_destroy(&rig->pg);
}

static int s_count_apply(void *arg, const Whistle__Envelope *env) {
  s_rig_t *rig = arg;
  rig->applied++;
  const char *v[1] = {env->ticket_id};
  PGresult *r = wh_pg_query(rig->pg, "INSERT INTO applied VALUES ($1)", 1, v);
  if (!r) return WH_EDB;
  PQclear(r);
  return 0;
}

static void s_count_commit(void *arg) {
  s_rig_t *rig = arg;
  rig->commits++;
}

static void s_poll_acks(uv_timer_t *t) {
  s_rig_t *rig = t->data;
  zmq_msg_t m;
  zmq_msg_init(&m);
  while (zmq_msg_recv(&m, rig->dealer, ZMQ_DONTWAIT) >= 0) {
    Whistle__Envelope *env;
    if (wh_env_unpack(zmq_msg_data(&m), zmq_msg_size(&m), &env) == 0) {
      /* A batch's answers come in one frame. */
      rig->frames++;
      Whistle__Ack *one[1] = {NULL}, **acks = one;
      size_t n = 0;
      if (env->body_case == WHISTLE__ENVELOPE__BODY_ACKS) {
        acks = env->acks->acks;
        n = env->acks->n_acks;
      } else if (env->body_case == WHISTLE__ENVELOPE__BODY_ACK) {
        one[0] = env->ack;
        n = 1;
      }
      for (size_t i = 0; i < n && rig->nacks < RIG_ACKS; i++) {
        snprintf(rig->ack_mid[rig->nacks], sizeof rig->ack_mid[0], "%s", acks[i]->message_id);
        rig->acks[rig->nacks++] = acks[i]->status;
      }
      wh_env_free(env);
    }
    zmq_msg_close(&m);
    zmq_msg_init(&m);
  }
  zmq_msg_close(&m);
  if (rig->nacks >= rig->want || wh_clock_now_ms() > rig->deadline) uv_stop(rig->loop);
}

/* Packs a relayed TicketReceived into *buf (caller frees); first_send as a
 * relay stamps a message's first sending. */
static void s_pack_received(const char *ticket, const char *mid, uint32_t seq, uint64_t tag,
                            int first_send, uint8_t **buf, size_t *len) {
  Whistle__TicketReceived rec = WHISTLE__TICKET_RECEIVED__INIT;
  rec.ticket_id = (char *)ticket;
  Whistle__Envelope env = WHISTLE__ENVELOPE__INIT;
  env.message_id = (char *)mid;
  env.ticket_id = (char *)ticket;
  env.sender = "intake";
  env.seq = seq;
  env.delivery_tag = tag;
  env.first_send = first_send != 0;
  env.body_case = WHISTLE__ENVELOPE__BODY_RECEIVED;
  env.received = &rec;
  assert_int_equal(wh_env_pack(&env, buf, len), 0);
}

static void s_send_as(void *sock, const char *ticket, const char *mid, uint32_t seq, uint64_t tag,
                      int first_send) {
  uint8_t *buf;
  size_t len;
  s_pack_received(ticket, mid, seq, tag, first_send, &buf, &len);
  assert_true(zmq_send(sock, buf, len, 0) >= 0);
  free(buf);
}

static void s_send_for(void *sock, const char *ticket, const char *mid, uint32_t seq,
                       uint64_t tag) {
  s_send_as(sock, ticket, mid, seq, tag, 0);
}

static void s_send(void *sock, const char *mid, uint32_t seq, uint64_t tag) {
  s_send_for(sock, "WH77", mid, seq, tag);
}

/* Sends items as one Batch frame, as a relay sends what it has ready. */
static void s_send_batch(void *sock, ProtobufCBinaryData *items, size_t n) {
  Whistle__Batch batch = WHISTLE__BATCH__INIT;
  batch.n_envelopes = n;
  batch.envelopes = items;
  Whistle__Envelope env = WHISTLE__ENVELOPE__INIT;
  env.body_case = WHISTLE__ENVELOPE__BODY_BATCH;
  env.batch = &batch;
  uint8_t *frame;
  size_t len;
  assert_int_equal(wh_env_pack(&env, &frame, &len), 0);
  assert_true(zmq_send(sock, frame, len, 0) >= 0);
  free(frame);
}

static int s_ack_of(const s_rig_t *rig, const char *mid) {
  int st = -1;
  for (int i = 0; i < rig->nacks; i++)
    if (!strcmp(rig->ack_mid[i], mid)) st = rig->acks[i];
  return st;
}

/* Runs the consumer until want acks in all have come, or for at most ms. */
static void s_run_for(s_rig_t *rig, int want, int ms) {
  rig->want = want;
  rig->deadline = wh_clock_now_ms() + ms;
  uv_timer_start(&rig->timer, s_poll_acks, 10, 10);
  uv_run(rig->loop, UV_RUN_DEFAULT);
  uv_timer_stop(&rig->timer);
}

/* Runs the consumer until want acks in all have come. */
static void s_run_until(s_rig_t *rig, int want) {
  s_run_for(rig, want, 10000);
  assert_int_equal(rig->nacks, want);
}

static void consumer_same_message_twice_changes_state_once(void **state) {
  (void)state;
  s_rig_t rig = {0};
  wh_consumer_ops_t ops = {.body = WHISTLE__ENVELOPE__BODY_RECEIVED, .apply = s_count_apply};
  s_rig_open(&rig, "CREATE TABLE applied (ticket text)", "inproc://it-consumer", &ops);
  s_send(rig.dealer, "m-1", 1, 11);
  s_send(rig.dealer, "m-1", 1, 11); /* redelivered */
  s_send(rig.dealer, "m-3", 3, 13); /* seq 2 has not come */
  s_run_until(&rig, 3);
  assert_int_equal(rig.frames, 1); /* one batch, answered in one frame */
  assert_int_equal(rig.acks[0], WHISTLE__ACK_STATUS__ACK_OK);
  assert_int_equal(rig.acks[1], WHISTLE__ACK_STATUS__ACK_OK);
  assert_int_equal(rig.acks[2], WHISTLE__ACK_STATUS__ACK_RETRY);
  assert_int_equal(rig.applied, 1);
  assert_int_equal(s_count(rig.pg, "SELECT count(*) FROM applied"), 1);
  assert_int_equal(s_count(rig.pg, "SELECT last_seq FROM inbox WHERE ticket_id = 'WH77'"), 1);
  s_rig_close(&rig);
}

/* Frames waiting on the rig's dealer, read and counted. */
static int s_rig_drain(s_rig_t *rig) {
  int n = 0;
  zmq_msg_t m;
  zmq_msg_init(&m);
  while (zmq_msg_recv(&m, rig->dealer, ZMQ_DONTWAIT) >= 0) n++;
  zmq_msg_close(&m);
  return n;
}

/* A flood of frames that are not envelopes is taken a round at a time: the
 * first turn of the loop answers at most a few rounds of it, not all, so
 * the other handles of the loop (a relay's acknowledgements, the timers)
 * run between; every frame is answered in the end, and a real message
 * sent after the flood is applied. */
static void consumer_round_is_bounded(void **state) {
  (void)state;
  s_rig_t rig = {0};
  wh_consumer_ops_t ops = {.body = WHISTLE__ENVELOPE__BODY_RECEIVED, .apply = s_count_apply};
  s_rig_open(&rig, "CREATE TABLE IF NOT EXISTS applied (ticket text)", "inproc://it-consumer-round",
             &ops);
  static const char garbage[] = "\xff\xff\xff\xff\xff not an envelope";
  int sent = 0;
  while (sent < 20000 && zmq_send(rig.dealer, garbage, sizeof garbage, ZMQ_DONTWAIT) >= 0) sent++;
  assert_true(sent > 4 * WH_BUS_ROUND);
  s_send_for(rig.dealer, "WH57", "m-round", 1, 11);
  int answered = 0, first = 0;
  for (int i = 0; i < 20000 && answered < sent + 1; i++) {
    uv_run(rig.loop, UV_RUN_NOWAIT);
    int got = s_rig_drain(&rig);
    if (got && !first) first = got;
    answered += got;
    if (!got) usleep(1000);
  }
  print_message("%d frames: the first turn answered %d, all %d in the end\n", sent, first, answered);
  assert_true(first > 0);
  assert_true(first <= 3 * WH_BUS_ROUND);
  assert_int_equal(answered, sent + 1);
  assert_int_equal(rig.applied, 1);
  s_rig_close(&rig);
}

static int s_apply_noting_other(void *arg, const Whistle__Envelope *env) {
  s_rig_t *rig = arg;
  rig->other_at_apply = rig->other_reads;
  return s_count_apply(arg, env);
}

static void s_other_input(wh_bus_t *bus, void *arg) {
  s_rig_t *rig = arg;
  zmq_msg_t head, body;
  while (wh_bus_recv(bus, &head, &body) == 1) {
    rig->other_reads++;
    zmq_msg_close(&head);
    zmq_msg_close(&body);
  }
}

/* A batch is applied after the loop has read every socket that had input
 * (here another one, as a relay's acknowledgements would be), not inside
 * the consumer's receive callback: its queries wait for the other
 * socket's turn, though the consumer's input came first. */
static void consumer_applies_after_the_poll_phase(void **state) {
  (void)state;
  s_rig_t rig = {0};
  rig.other_at_apply = -1;
  wh_consumer_ops_t ops = {.body = WHISTLE__ENVELOPE__BODY_RECEIVED, .apply = s_apply_noting_other};
  s_rig_open(&rig, "CREATE TABLE IF NOT EXISTS applied (ticket text)", "inproc://it-consumer-poll",
             &ops);
  wh_bus_t *other = wh_bus_new(rig.loop, rig.zctx, ZMQ_ROUTER, "inproc://it-other", 1, NULL, NULL,
                               s_other_input, &rig);
  assert_non_null(other);
  void *client = zmq_socket(rig.zctx, ZMQ_DEALER);
  assert_int_equal(zmq_connect(client, "inproc://it-other"), 0);
  uv_run(rig.loop, UV_RUN_NOWAIT); /* both sockets quiet, their edges taken */
  s_send_for(rig.dealer, "WH53", "m-poll", 1, 13);
  assert_true(zmq_send(client, "ack", 3, 0) == 3);
  for (int i = 0; i < 1000 && rig.other_at_apply < 0; i++) {
    uv_run(rig.loop, UV_RUN_NOWAIT);
    if (rig.other_at_apply < 0) usleep(1000);
  }
  print_message("when the batch was applied, the other socket had been read %d time(s)\n",
                rig.other_at_apply);
  assert_int_equal(rig.other_at_apply, 1);
  s_run_until(&rig, 1);
  assert_int_equal(rig.acks[0], WHISTLE__ACK_STATUS__ACK_OK);
  zmq_close(client);
  wh_bus_destroy(&other);
  s_rig_close(&rig);
}

/* A request (a replay, which queries): answered with its own envelope,
 * after as long as a query takes. */
static void s_rig_request(void *arg, wh_consumer_t *c, const zmq_msg_t *peer, const char *who,
                          const Whistle__Envelope *env) {
  (void)who;
  s_rig_t *rig = arg;
  rig->requests++;
  usleep(2000);
  wh_consumer_reply(c, peer, env);
}

/* Requests are answered from the loop's idle phase, one a turn, not in
 * the receive round: a relayed message sent after 60 requests is
 * acknowledged before most of them are answered, and every one is
 * answered in the end. */
static void consumer_requests_wait_their_turn(void **state) {
  (void)state;
  s_rig_t rig = {0};
  wh_consumer_ops_t ops = {.body = WHISTLE__ENVELOPE__BODY_RECEIVED, .apply = s_count_apply,
                           .request = s_rig_request};
  s_rig_open(&rig, "CREATE TABLE IF NOT EXISTS applied (ticket text)", "inproc://it-consumer-req",
             &ops);
  Whistle__ReplayRequest q = WHISTLE__REPLAY_REQUEST__INIT;
  q.party = "water";
  Whistle__Envelope env = WHISTLE__ENVELOPE__INIT;
  env.message_id = "replay-1";
  env.body_case = WHISTLE__ENVELOPE__BODY_REPLAY;
  env.replay = &q;
  uint8_t *buf;
  size_t len;
  assert_int_equal(wh_env_pack(&env, &buf, &len), 0);
  for (int i = 0; i < 60; i++) assert_true(zmq_send(rig.dealer, buf, len, 0) == (int)len);
  free(buf);
  s_send_for(rig.dealer, "WH54", "m-req", 1, 12);
  int answers = 0, at_ack = -1;
  for (int i = 0; i < 20000 && (at_ack < 0 || answers < 60); i++) {
    uv_run(rig.loop, UV_RUN_NOWAIT);
    zmq_msg_t m;
    zmq_msg_init(&m);
    while (zmq_msg_recv(&m, rig.dealer, ZMQ_DONTWAIT) >= 0) {
      Whistle__Envelope *got;
      if (wh_env_unpack(zmq_msg_data(&m), zmq_msg_size(&m), &got) == 0) {
        if (got->body_case == WHISTLE__ENVELOPE__BODY_REPLAY) answers++;
        else if (at_ack < 0 && (got->body_case == WHISTLE__ENVELOPE__BODY_ACKS ||
                                got->body_case == WHISTLE__ENVELOPE__BODY_ACK))
          at_ack = rig.requests;
        wh_env_free(got);
      }
    }
    zmq_msg_close(&m);
    usleep(200);
  }
  print_message("the relayed message acknowledged after %d of 60 requests; %d answered\n", at_ack,
                answers);
  assert_true(at_ack >= 0 && at_ack < 30);
  assert_int_equal(answers, 60);
  assert_int_equal(rig.applied, 1);
  s_rig_close(&rig);
}

/* The database fails, not the message (here: out of disk space, raised by a
 * trigger while `failing` holds a row): nothing is refused or answered, so
 * the sender keeps its messages and sends them again; once the database
 * works, they are applied, once. Data the database refuses (a value too
 * long for its column) is refused, and the rest of the batch goes through. */
static void consumer_database_failure_refuses_nothing(void **state) {
  (void)state;
  s_rig_t rig = {0};
  wh_consumer_ops_t ops = {.body = WHISTLE__ENVELOPE__BODY_RECEIVED, .apply = s_count_apply};
  s_rig_open(&rig,
             "DROP TABLE IF EXISTS applied, failing;"
             "CREATE TABLE applied (ticket varchar(8));"
             "CREATE TABLE failing (on_ boolean);"
             "INSERT INTO failing VALUES (true);"
             "CREATE FUNCTION applied_fail() RETURNS trigger LANGUAGE plpgsql AS $$"
             " BEGIN IF EXISTS (SELECT FROM failing) THEN"
             "   RAISE EXCEPTION 'no space left' USING ERRCODE = 'disk_full'; END IF;"
             " RETURN NEW; END $$;"
             "CREATE TRIGGER applied_fail BEFORE INSERT ON applied"
             " FOR EACH ROW EXECUTE FUNCTION applied_fail()",
             "inproc://it-dbfail", &ops);
  s_send_for(rig.dealer, "WH41", "d-1", 1, 41);
  s_send_for(rig.dealer, "WH42", "d-2", 1, 42);
  s_run_for(&rig, 1, 1000);
  assert_int_equal(rig.nacks, 0); /* neither refused nor acknowledged */
  assert_int_equal(s_count(rig.pg, "SELECT count(*) FROM inbox WHERE ticket_id IN ('WH41', 'WH42')"), 0);
  /* The database works again; the sender sends them again, with one whose
   * ticket does not fit the column. */
  assert_int_equal(wh_pg_exec(rig.pg, "DELETE FROM failing"), 0);
  s_send_for(rig.dealer, "WH41", "d-1", 1, 41);
  s_send_for(rig.dealer, "WH42", "d-2", 1, 42);
  s_send_for(rig.dealer, "WH4300000", "d-3", 1, 43);
  s_run_until(&rig, 3);
  assert_int_equal(s_ack_of(&rig, "d-1"), WHISTLE__ACK_STATUS__ACK_OK);
  assert_int_equal(s_ack_of(&rig, "d-2"), WHISTLE__ACK_STATUS__ACK_OK);
  assert_int_equal(s_ack_of(&rig, "d-3"), WHISTLE__ACK_STATUS__ACK_REJECTED);
  assert_int_equal(s_count(rig.pg, "SELECT count(*) FROM applied"), 2);
  assert_int_equal(wh_pg_exec(rig.pg, "DROP TABLE applied, failing; DROP FUNCTION applied_fail()"), 0);
  s_rig_close(&rig);
}

/* A batch in which the database refuses three messages' data (the first,
 * one in the middle, the last) is applied again in halves: the 37 others
 * go through, each once, and the three are refused, in far fewer commits
 * than one per message, each of which would wait for the disk. */
static void consumer_refused_data_splits_batch(void **state) {
  (void)state;
  s_rig_t rig = {0};
  wh_consumer_ops_t ops = {.body = WHISTLE__ENVELOPE__BODY_RECEIVED, .apply = s_count_apply,
                           .committed = s_count_commit};
  s_rig_open(&rig, "DROP TABLE IF EXISTS applied; CREATE TABLE applied (ticket varchar(8))",
             "inproc://it-split", &ops);
  enum { N = 40 };
  uint8_t *each[N];
  ProtobufCBinaryData items[N];
  for (int i = 0; i < N; i++) {
    char ticket[32], mid[16];
    int bad = i == 0 || i == 17 || i == N - 1;
    snprintf(ticket, sizeof ticket, bad ? "SPLIT%05d" : "SP%02d", i); /* too long when bad */
    snprintf(mid, sizeof mid, "s-%d", i);
    s_pack_received(ticket, mid, 1, 100 + (uint64_t)i, 0, &each[i], &items[i].len);
    items[i].data = each[i];
  }
  s_send_batch(rig.dealer, items, N);
  s_run_until(&rig, N);
  for (int i = 0; i < N; i++) {
    char mid[16];
    snprintf(mid, sizeof mid, "s-%d", i);
    int bad = i == 0 || i == 17 || i == N - 1;
    assert_int_equal(s_ack_of(&rig, mid),
                     bad ? WHISTLE__ACK_STATUS__ACK_REJECTED : WHISTLE__ACK_STATUS__ACK_OK);
  }
  assert_int_equal(s_count(rig.pg, "SELECT count(*) FROM applied"), N - 3);
  assert_int_equal(s_count(rig.pg, "SELECT count(DISTINCT ticket) FROM applied"), N - 3);
  print_message("%d messages, 3 refused: %d commits\n", N, rig.commits);
  assert_true(rig.commits < N / 2); /* one per message would be 37 */
  for (int i = 0; i < N; i++) free(each[i]);
  assert_int_equal(wh_pg_exec(rig.pg, "DROP TABLE applied"), 0);
  s_rig_close(&rig);
}

/* A relay's batch frame: each envelope in it is applied and acknowledged as
 * if it had come alone; one that does not decode, or lacks its ticket, is
 * refused without holding the others back; a batch inside a batch is not
 * taken. */
static void consumer_batch_frame_applies_each(void **state) {
  (void)state;
  s_rig_t rig = {0};
  wh_consumer_ops_t ops = {.body = WHISTLE__ENVELOPE__BODY_RECEIVED, .apply = s_count_apply};
  s_rig_open(&rig, "CREATE TABLE IF NOT EXISTS applied (ticket text)", "inproc://it-batch", &ops);
  uint8_t *b1, *b2, *b3, *inner;
  size_t l1, l2, l3, linner;
  s_pack_received("WH61", "k-1", 1, 71, 0, &b1, &l1);
  s_pack_received("WH62", "k-2", 1, 72, 0, &b2, &l2);
  s_pack_received("", "k-3", 1, 73, 0, &b3, &l3); /* no ticket */
  Whistle__Batch nested = WHISTLE__BATCH__INIT;
  ProtobufCBinaryData one[1] = {{.len = l1, .data = b1}};
  nested.n_envelopes = 1;
  nested.envelopes = one;
  Whistle__Envelope nenv = WHISTLE__ENVELOPE__INIT;
  nenv.body_case = WHISTLE__ENVELOPE__BODY_BATCH;
  nenv.batch = &nested;
  assert_int_equal(wh_env_pack(&nenv, &inner, &linner), 0);
  ProtobufCBinaryData items[5] = {{.len = l1, .data = b1},
                                  {.len = 3, .data = (uint8_t *)"\xff\xff\xff"},
                                  {.len = l2, .data = b2},
                                  {.len = l3, .data = b3},
                                  {.len = linner, .data = inner}};
  s_send_batch(rig.dealer, items, 5);
  s_run_until(&rig, 3);
  assert_int_equal(s_ack_of(&rig, "k-1"), WHISTLE__ACK_STATUS__ACK_OK);
  assert_int_equal(s_ack_of(&rig, "k-2"), WHISTLE__ACK_STATUS__ACK_OK);
  assert_int_equal(s_ack_of(&rig, "k-3"), WHISTLE__ACK_STATUS__ACK_REJECTED);
  assert_int_equal(rig.applied, 2);
  assert_int_equal(s_count(rig.pg, "SELECT count(*) FROM applied WHERE ticket IN ('WH61', 'WH62')"), 2);
  free(b1);
  free(b2);
  free(b3);
  free(inner);
  s_rig_close(&rig);
}

/* ---- state rows as the inbox of first messages ------------------------- */

/* Applies a message the way triage and dispatch do: a first message writes
 * the ticket's state row (its record of having been applied), a later one
 * changes it. */
static int s_state_apply(void *arg, const Whistle__Envelope *env) {
  s_rig_t *rig = arg;
  rig->applied++;
  const char *v[1] = {env->ticket_id};
  PGresult *r = wh_pg_query(rig->pg,
                            env->seq == 1 ? "INSERT INTO state_row (ticket_id, n) VALUES ($1, 1)"
                                          : "UPDATE state_row SET n = n + 1 WHERE ticket_id = $1",
                            1, v);
  if (!r) return WH_EDB;
  PQclear(r);
  return 0;
}

/* A rig whose consumer records first messages by state rows, as triage,
 * dispatch and notify do. */
static void s_state_rig_open(s_rig_t *rig, const char *endpoint) {
  static const wh_consumer_ops_t ops = {
      .body = WHISTLE__ENVELOPE__BODY_RECEIVED,
      .apply = s_state_apply,
      .first_applied = "SELECT ticket_id FROM state_row WHERE ticket_id = ANY($2::text[])"};
  s_rig_open(rig, "CREATE TABLE IF NOT EXISTS state_row (ticket_id text PRIMARY KEY, n int)",
             endpoint, &ops);
}

static void consumer_first_message_recorded_by_state_row(void **state) {
  (void)state;
  s_rig_t rig = {0};
  s_state_rig_open(&rig, "inproc://it-lean");
  /* A first message, twice: applied once, both acknowledged, and no inbox
   * row written: the state row is the record. */
  s_send_for(rig.dealer, "WH88", "a-1", 1, 21);
  s_send_for(rig.dealer, "WH88", "a-1", 1, 21);
  s_run_until(&rig, 2);
  assert_int_equal(rig.acks[0], WHISTLE__ACK_STATUS__ACK_OK);
  assert_int_equal(rig.acks[1], WHISTLE__ACK_STATUS__ACK_OK);
  assert_int_equal(rig.applied, 1);
  assert_int_equal(s_count(rig.pg, "SELECT n FROM state_row WHERE ticket_id = 'WH88'"), 1);
  assert_int_equal(s_count(rig.pg, "SELECT count(*) FROM inbox WHERE ticket_id = 'WH88'"), 0);
  /* The second starts the ticket's inbox row; the fourth waits for the third. */
  s_send_for(rig.dealer, "WH88", "a-2", 2, 22);
  s_run_until(&rig, 3);
  s_send_for(rig.dealer, "WH88", "a-4", 4, 24);
  s_run_until(&rig, 4);
  assert_int_equal(s_ack_of(&rig, "a-2"), WHISTLE__ACK_STATUS__ACK_OK);
  assert_int_equal(s_ack_of(&rig, "a-4"), WHISTLE__ACK_STATUS__ACK_RETRY);
  assert_int_equal(s_count(rig.pg, "SELECT last_seq FROM inbox WHERE ticket_id = 'WH88'"), 2);
  /* Late copies of the first and second are seen, not applied; the third
   * applies, and then the fourth. */
  s_send_for(rig.dealer, "WH88", "a-1", 1, 21);
  s_run_until(&rig, 5);
  s_send_for(rig.dealer, "WH88", "a-2", 2, 22);
  s_run_until(&rig, 6);
  s_send_for(rig.dealer, "WH88", "a-3", 3, 23);
  s_run_until(&rig, 7);
  s_send_for(rig.dealer, "WH88", "a-4", 4, 24);
  s_run_until(&rig, 8);
  for (int i = 4; i < 8; i++) assert_int_equal(rig.acks[i], WHISTLE__ACK_STATUS__ACK_OK);
  assert_int_equal(rig.applied, 4); /* a-1, a-2, a-3, a-4: each once */
  assert_int_equal(s_count(rig.pg, "SELECT n FROM state_row WHERE ticket_id = 'WH88'"), 4);
  assert_int_equal(s_count(rig.pg, "SELECT last_seq FROM inbox WHERE ticket_id = 'WH88'"), 4);
  /* A second message whose first never came waits, and writes nothing. */
  s_send_for(rig.dealer, "WH89", "b-2", 2, 32);
  s_run_until(&rig, 9);
  assert_int_equal(rig.acks[8], WHISTLE__ACK_STATUS__ACK_RETRY);
  assert_int_equal(s_count(rig.pg, "SELECT count(*) FROM inbox WHERE ticket_id = 'WH89'"), 0);
  s_rig_close(&rig);
}

/* A first message its relay sends for the first time is applied without
 * looking for it. The flag is trusted only so far: a copy that carries it
 * all the same (in a later batch, or beside a resend in the same one) is
 * seen, not applied twice, and not refused; and it never lets a message
 * pass its predecessor. */
static void consumer_first_send_applies_once(void **state) {
  (void)state;
  s_rig_t rig = {0};
  s_state_rig_open(&rig, "inproc://it-first-send");
  s_send_as(rig.dealer, "WH91", "f-1", 1, 41, 1);
  s_run_until(&rig, 1);
  assert_int_equal(rig.acks[0], WHISTLE__ACK_STATUS__ACK_OK);
  assert_int_equal(s_count(rig.pg, "SELECT n FROM state_row WHERE ticket_id = 'WH91'"), 1);
  /* the same, flagged again, in a batch of its own */
  s_send_as(rig.dealer, "WH91", "f-1", 1, 41, 1);
  s_run_until(&rig, 2);
  assert_int_equal(rig.acks[1], WHISTLE__ACK_STATUS__ACK_OK);
  assert_int_equal(s_count(rig.pg, "SELECT n FROM state_row WHERE ticket_id = 'WH91'"), 1);
  /* a first sending and a resend of another ticket's first message in one batch */
  s_send_as(rig.dealer, "WH92", "g-1", 1, 51, 1);
  s_send_as(rig.dealer, "WH92", "g-1", 1, 51, 0);
  s_run_until(&rig, 4);
  assert_int_equal(rig.acks[2], WHISTLE__ACK_STATUS__ACK_OK);
  assert_int_equal(rig.acks[3], WHISTLE__ACK_STATUS__ACK_OK);
  assert_int_equal(s_count(rig.pg, "SELECT n FROM state_row WHERE ticket_id = 'WH92'"), 1);
  /* a second message, flagged, whose first has not come: it waits */
  s_send_as(rig.dealer, "WH93", "h-2", 2, 62, 1);
  s_run_until(&rig, 5);
  assert_int_equal(rig.acks[4], WHISTLE__ACK_STATUS__ACK_RETRY);
  assert_int_equal(s_count(rig.pg, "SELECT count(*) FROM state_row WHERE ticket_id = 'WH93'"), 0);
  assert_int_equal(s_count(rig.pg, "SELECT count(*) FROM inbox WHERE ticket_id LIKE 'WH9_'"), 0);
  s_rig_close(&rig);
}

/* ---- a relay against a receiver that acknowledges late ----------------- */

typedef struct {
  wh_pg_t *pg;
  void *router;
  int seen, acked;
  uv_loop_t *loop;
  int64_t deadline;
} s_recv_t;

/* Answers outbox row tag (message mid) with an Ack of the given status, to
 * the peer whose routing id is id. */
static void s_answer_tag(void *router, zmq_msg_t *id, const char *mid, uint64_t tag, int status) {
  Whistle__Ack a = WHISTLE__ACK__INIT;
  a.message_id = (char *)mid;
  a.delivery_tag = tag;
  a.status = status;
  Whistle__Envelope out = WHISTLE__ENVELOPE__INIT;
  out.body_case = WHISTLE__ENVELOPE__BODY_ACK;
  out.ack = &a;
  uint8_t *buf;
  size_t len;
  assert_int_equal(wh_env_pack(&out, &buf, &len), 0);
  zmq_send(router, zmq_msg_data(id), zmq_msg_size(id), ZMQ_SNDMORE);
  zmq_send(router, buf, len, 0);
  free(buf);
}

/* Answers a relayed envelope. */
static void s_answer(void *router, zmq_msg_t *id, const Whistle__Envelope *env, int status) {
  s_answer_tag(router, id, env->message_id, env->delivery_tag, status);
}

/* Hands each envelope a relay has sent to router to on_env, with the
 * routing id of its sender; a batch frame's envelopes one by one. */
static void s_router_each(void *router, void (*on_env)(void *arg, zmq_msg_t *id,
                                                       const Whistle__Envelope *env),
                          void *arg) {
  zmq_msg_t id, m;
  zmq_msg_init(&id);
  zmq_msg_init(&m);
  while (zmq_msg_recv(&id, router, ZMQ_DONTWAIT) >= 0 && zmq_msg_recv(&m, router, 0) >= 0) {
    Whistle__Envelope *env;
    if (wh_env_unpack(zmq_msg_data(&m), zmq_msg_size(&m), &env) == 0) {
      if (env->body_case == WHISTLE__ENVELOPE__BODY_BATCH) {
        for (size_t i = 0; i < env->batch->n_envelopes; i++) {
          Whistle__Envelope *one;
          ProtobufCBinaryData *b = &env->batch->envelopes[i];
          assert_int_equal(wh_env_unpack(b->data, b->len, &one), 0);
          on_env(arg, &id, one);
          wh_env_free(one);
        }
      } else {
        on_env(arg, &id, env);
      }
      wh_env_free(env);
    }
    zmq_msg_close(&id);
    zmq_msg_close(&m);
    zmq_msg_init(&id);
    zmq_msg_init(&m);
  }
  zmq_msg_close(&id);
  zmq_msg_close(&m);
}

/* The first sighting of each row goes unanswered: the relay must send it
 * again; the second is acknowledged. */
static void s_ack_late(void *arg, zmq_msg_t *id, const Whistle__Envelope *env) {
  s_recv_t *r = arg;
  if (++r->seen > 3) {
    s_answer(r->router, id, env, WHISTLE__ACK_STATUS__ACK_OK);
    r->acked++;
  }
}

static void s_receiver(uv_timer_t *t) {
  s_recv_t *r = t->data;
  s_router_each(r->router, s_ack_late, r);
  long left = s_count(r->pg, "SELECT count(*) FROM outbox_owed");
  if ((r->acked >= 3 && left == 0) || wh_clock_now_ms() > r->deadline) uv_stop(r->loop);
}

static void relay_resends_until_acknowledged(void **state) {
  (void)state;
  s_recv_t r = {0};
  r.pg = wh_pg_new(s_conninfo, triage_migrations);
  s_ready(r.pg);
  assert_int_equal(wh_pg_exec(r.pg, "TRUNCATE outbox"), 0);
  uv_loop_t loop;
  uv_loop_init(&loop);
  r.loop = &loop;
  void *zctx = zmq_ctx_new();
  r.router = zmq_socket(zctx, ZMQ_ROUTER);
  assert_int_equal(zmq_bind(r.router, "inproc://it-relay"), 0);
  wh_outbox_t *ob = wh_outbox_new(r.pg);
  wh_relay_t *relay = wh_relay_new(&loop, zctx, ob, NULL, "triage", "inproc://it-relay");
  assert_non_null(relay);
  /* A batch that rolls back leaves nothing to send. */
  assert_int_equal(wh_pg_exec(r.pg, "BEGIN"), 0);
  Whistle__TicketReceived gone = WHISTLE__TICKET_RECEIVED__INIT;
  gone.ticket_id = "WH87";
  Whistle__Envelope genv = WHISTLE__ENVELOPE__INIT;
  genv.ticket_id = "WH87";
  genv.seq = 1;
  genv.body_case = WHISTLE__ENVELOPE__BODY_RECEIVED;
  genv.received = &gone;
  assert_int_equal(wh_outbox_put(relay, "intake", &genv), 0);
  assert_int_equal(wh_relay_flush(relay), 0);
  assert_int_equal(wh_pg_exec(r.pg, "ROLLBACK"), 0);
  wh_relay_aborted(relay);
  /* Three rows in one transaction: one statement stores them. */
  assert_int_equal(wh_pg_exec(r.pg, "BEGIN"), 0);
  for (uint32_t i = 1; i <= 3; i++) {
    Whistle__TicketReceived rec = WHISTLE__TICKET_RECEIVED__INIT;
    rec.ticket_id = "WH88";
    Whistle__Envelope env = WHISTLE__ENVELOPE__INIT;
    env.ticket_id = "WH88";
    env.seq = i;
    env.body_case = WHISTLE__ENVELOPE__BODY_RECEIVED;
    env.received = &rec;
    assert_int_equal(wh_outbox_put(relay, "intake", &env), 0);
  }
  assert_int_equal(wh_relay_flush(relay), 0);
  assert_int_equal(wh_pg_exec(r.pg, "COMMIT"), 0);
  assert_int_equal(s_count(r.pg, "SELECT count(*) FROM outbox WHERE ticket_id = 'WH88'"), 3);
  assert_int_equal(s_count(r.pg, "SELECT count(*) FROM outbox WHERE ticket_id = 'WH87'"), 0);
  wh_relay_committed(relay);
  uv_timer_t t;
  uv_timer_init(&loop, &t);
  t.data = &r;
  r.deadline = wh_clock_now_ms() + 20000;
  uv_timer_start(&t, s_receiver, 20, 20);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_true(r.seen >= 6); /* each row sent at least twice */
  assert_int_equal(s_count(r.pg, "SELECT count(*) FROM outbox_owed"), 0);
  uv_close((uv_handle_t *)&t, NULL);
  wh_relay_destroy(&relay);
  wh_outbox_destroy(&ob);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  zmq_close(r.router);
  zmq_ctx_term(zctx);
  wh_pg_destroy(&r.pg);
}

/* Flow control: a relay holds its service's input while committed messages
 * wait for room in its window and the receiver is acknowledging; it lets go
 * once they have gone out, or once the receiver falls silent. */
typedef struct {
  wh_pg_t *pg;
  uv_loop_t loop;
  void *zctx, *router; /* the receiver */
  wh_outbox_t *ob;
  wh_relay_t *relay;
  uv_timer_t tick, stop;
  int take;   /* acknowledge what arrives; else keep it for later */
  int refuse; /* with take: answer "rejected" instead */
  int seen, reads;
  char last_mid[64], last_lead[32]; /* of the last TicketTriaged that arrived */
  zmq_msg_t peer;
  uint64_t tags[2 * WH_RELAY_WINDOW];
  int ntags;
  /* When set, answers in place of take/refuse. */
  void (*on_env)(void *f, zmq_msg_t *id, const Whistle__Envelope *env);
  void *on_env_arg;
} s_flow_t;

static void s_flow_ack_tag(s_flow_t *f, uint64_t tag) {
  s_answer_tag(f->router, &f->peer, "", tag, WHISTLE__ACK_STATUS__ACK_OK);
}

static void s_flow_recv(void *arg, zmq_msg_t *id, const Whistle__Envelope *env) {
  s_flow_t *f = arg;
  f->seen++;
  zmq_msg_copy(&f->peer, id);
  if (env->body_case == WHISTLE__ENVELOPE__BODY_TRIAGED) {
    snprintf(f->last_mid, sizeof f->last_mid, "%s", env->message_id);
    snprintf(f->last_lead, sizeof f->last_lead, "%s", env->triaged->lead);
  }
  if (f->on_env) {
    f->on_env(f->on_env_arg, &f->peer, env);
    return;
  }
  if (f->take && f->refuse)
    s_answer_tag(f->router, &f->peer, "", env->delivery_tag, WHISTLE__ACK_STATUS__ACK_REJECTED);
  else if (f->take) s_flow_ack_tag(f, env->delivery_tag);
  else if (f->ntags < 2 * WH_RELAY_WINDOW) f->tags[f->ntags++] = env->delivery_tag;
}

/* Acknowledges what was kept unanswered. */
static void s_flow_answer_kept(s_flow_t *f) {
  for (int i = 0; i < f->ntags; i++) s_flow_ack_tag(f, f->tags[i]);
  f->ntags = 0;
}

static void s_flow_tick(uv_timer_t *t) {
  s_flow_t *f = t->data;
  s_router_each(f->router, s_flow_recv, f);
}

static void s_flow_input(wh_bus_t *bus, void *arg) {
  s_flow_t *f = arg;
  zmq_msg_t head, body;
  while (wh_bus_recv(bus, &head, &body) == 1) {
    f->reads++;
    zmq_msg_close(&head);
    zmq_msg_close(&body);
  }
}

static void s_stop_loop(uv_timer_t *t) { uv_stop(t->loop); }

/* A relay to dest over triage's migrations (its outbox emptied) and a
 * receiver bound at endpoint that answers as f->take says, polled every
 * 5 ms. */
static void s_flow_open_to(s_flow_t *f, const char *endpoint, const char *dest) {
  memset(f, 0, sizeof *f);
  zmq_msg_init(&f->peer);
  f->pg = wh_pg_new(s_conninfo, triage_migrations);
  s_ready(f->pg);
  assert_int_equal(wh_pg_exec(f->pg, "TRUNCATE outbox"), 0);
  uv_loop_init(&f->loop);
  f->zctx = zmq_ctx_new();
  f->router = zmq_socket(f->zctx, ZMQ_ROUTER);
  assert_int_equal(zmq_bind(f->router, endpoint), 0);
  f->ob = wh_outbox_new(f->pg);
  f->relay = wh_relay_new(&f->loop, f->zctx, f->ob, NULL, dest, endpoint);
  assert_non_null(f->relay);
  uv_timer_init(&f->loop, &f->tick);
  uv_timer_init(&f->loop, &f->stop);
  f->tick.data = f;
  uv_timer_start(&f->tick, s_flow_tick, 5, 5);
}

static void s_flow_open(s_flow_t *f, const char *endpoint) { s_flow_open_to(f, endpoint, "triage"); }

static void s_flow_close(s_flow_t *f) {
  uv_close((uv_handle_t *)&f->tick, NULL);
  uv_close((uv_handle_t *)&f->stop, NULL);
  wh_relay_destroy(&f->relay);
  wh_outbox_destroy(&f->ob);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  uv_loop_close(&f->loop);
  zmq_msg_close(&f->peer);
  zmq_close(f->router);
  zmq_ctx_term(f->zctx);
  wh_pg_destroy(&f->pg);
}

/* Runs the loop for ms of real time. */
static void s_flow_run(s_flow_t *f, int ms) {
  uv_timer_start(&f->stop, s_stop_loop, (uint64_t)ms, 0);
  uv_run(&f->loop, UV_RUN_DEFAULT);
}

/* The log, captured: s_log_start sends stderr to a temporary file (its
 * descriptor in cap[0], the saved stderr in cap[1]); s_log_end puts stderr
 * back and reads what was written into log (len bytes at most, NUL
 * ended), removing the file. */
static void s_log_start(int cap[2]) {
  char path[] = "/tmp/whistle-it-log-XXXXXX"; /* mkstemp's template */
  cap[0] = mkstemp(path);
  cap[1] = dup(2);
  assert_true(cap[0] >= 0 && cap[1] >= 0);
  unlink(path); /* open until s_log_end */
  assert_int_equal(dup2(cap[0], 2), 2);
}

static ssize_t s_log_end(int cap[2], char *log, size_t len) {
  dup2(cap[1], 2);
  close(cap[1]);
  ssize_t n = pread(cap[0], log, len - 1, 0);
  close(cap[0]);
  log[n > 0 ? n : 0] = '\0';
  return n;
}

/* What the server says beside a result (a COMMIT with no transaction draws
 * a WARNING) is one entry of the service's log, not libpq's raw lines. */
static void server_warning_is_one_log_entry(void **state) {
  (void)state;
  wh_pg_t *pg = wh_pg_new(s_conninfo, triage_migrations);
  s_ready(pg);
  int cap[2];
  s_log_start(cap);
  int rc = wh_pg_exec(pg, "COMMIT");
  char log[4096];
  ssize_t n = s_log_end(cap, log, sizeof log);
  assert_int_equal(rc, 0);
  assert_true(n > 0);
  assert_non_null(strstr(log, " WARN  whistle: database: WARNING:  there is no transaction in progress\n"));
  assert_ptr_equal(strchr(log, '\n'), log + n - 1); /* one line */
  wh_pg_destroy(&pg);
}

/* A statement the database refuses is logged by its message, never by
 * the row it refused: PostgreSQL's DETAIL of a check or a not-null
 * violation spells the failing row out, a reporter's phone with it. */
static void database_errors_never_log_row_values(void **state) {
  (void)state;
  wh_pg_t *pg = wh_pg_new(s_conninfo, triage_migrations);
  s_ready(pg);
  assert_int_equal(wh_pg_exec(pg, "CREATE TABLE IF NOT EXISTS held (phone text"
                                  " CONSTRAINT held_short CHECK (length(phone) < 5))"), 0);
  int cap[2];
  s_log_start(cap);
  const char *v[1] = {"13911110001"};
  PGresult *r = wh_pg_query(pg, "INSERT INTO held VALUES ($1)", 1, v);
  char log[4096];
  ssize_t n = s_log_end(cap, log, sizeof log);
  assert_null(r);
  assert_true(wh_pg_refused(pg));
  assert_true(n > 0);
  assert_non_null(strstr(log, "held_short"));
  assert_null(strstr(log, "13911110001"));
  wh_pg_destroy(&pg);
}

/* Runs the loop until the receiver has seen `seen` messages, or for at most
 * ms: a slow machine may need more than one scan. */
static void s_flow_until(s_flow_t *f, int seen, int ms) {
  for (int waited = 0; f->seen < seen && waited < ms; waited += 100) s_flow_run(f, 100);
}

/* Puts messages from..to of ticket for relay in the open transaction. */
static void s_put_range(wh_relay_t *relay, const char *ticket, int from, int to) {
  for (int i = from; i <= to; i++) {
    Whistle__TicketReceived rec = WHISTLE__TICKET_RECEIVED__INIT;
    rec.ticket_id = (char *)ticket;
    Whistle__Envelope env = WHISTLE__ENVELOPE__INIT;
    env.ticket_id = (char *)ticket;
    env.seq = (uint32_t)i;
    env.body_case = WHISTLE__ENVELOPE__BODY_RECEIVED;
    env.received = &rec;
    assert_int_equal(wh_outbox_put(relay, "intake", &env), 0);
  }
}

/* Commits n messages of ticket `ticket` in one transaction; then the relay
 * sends them, or (forget) memory drops them as if they had rolled back. */
static void s_flow_put(s_flow_t *f, const char *ticket, int n, int forget) {
  assert_int_equal(wh_pg_exec(f->pg, "BEGIN"), 0);
  s_put_range(f->relay, ticket, 1, n);
  assert_int_equal(wh_relay_flush(f->relay), 0);
  assert_int_equal(wh_pg_exec(f->pg, "COMMIT"), 0);
  if (forget) wh_relay_aborted(f->relay);
  else wh_relay_committed(f->relay);
}

/* Sets the clock so that it reads `from` now and runs on from there: the
 * time a busy machine took committing a test's rows (more than a second,
 * with much of the CPU stolen) does not count as the receiver's silence. */
static void s_clock_resume(int64_t from) {
  wh_clock_mono_shift_ms(0);
  wh_clock_mono_shift_ms(from - wh_clock_mono_ms());
}

/* The business clock (deadlines, timestamps; WHISTLE_CLOCK_OFFSET_S moves
 * it) does not drive the relay: an hour on it is no silence of the
 * receiver, so nothing is sent again and nothing is called stuck. The
 * monotonic clock does: two seconds and a half on it, and the message
 * unanswered is sent again. */
static void relay_timers_ignore_the_business_clock(void **state) {
  (void)state;
  s_flow_t f;
  s_flow_open(&f, "inproc://it-mono");
  f.take = 0;
  s_flow_put(&f, "WH58", 1, 0);
  s_flow_run(&f, 100);
  assert_int_equal(f.seen, 1);
  int cap[2];
  s_log_start(cap);
  wh_clock_set_offset_ms(3600 * 1000);
  s_flow_run(&f, 1200);
  wh_clock_set_offset_ms(0);
  char log[4096];
  s_log_end(cap, log, sizeof log);
  assert_int_equal(f.seen, 1);
  assert_null(strstr(log, "has not acknowledged"));
  wh_clock_mono_shift_ms(2500);
  s_flow_run(&f, 700);
  wh_clock_mono_shift_ms(0);
  assert_int_equal(f.seen, 2);
  f.take = 1;
  s_flow_answer_kept(&f);
  s_flow_run(&f, 100);
  assert_int_equal(s_count(f.pg, "SELECT count(*) FROM outbox_owed"), 0);
  s_flow_close(&f);
}

/* Answers "retry" to everything (a receiver waiting for a predecessor). */
static void s_flow_say_retry(void *arg, zmq_msg_t *id, const Whistle__Envelope *env) {
  s_flow_t *f = arg;
  s_answer_tag(f->router, id, env->message_id, env->delivery_tag, WHISTLE__ACK_STATUS__ACK_RETRY);
}

/* Runs f's relay for `steps` scans, the monotonic clock `step_ms` further
 * on at each; returns how many messages arrived meanwhile. */
static int s_flow_steps(s_flow_t *f, int steps, int64_t step_ms, int64_t *shift) {
  int before = f->seen;
  for (int i = 0; i < steps; i++) {
    *shift += step_ms;
    wh_clock_mono_shift_ms(*shift);
    s_flow_run(f, 550); /* a scan comes every 500 ms */
  }
  return f->seen - before;
}

/* Sending again backs off. A message nobody answers is sent again after
 * 2 s, then 4, 8, 16, then every 30 s: not every 2 s for ever (a minute
 * in 5 s steps sends it again at most 5 times, where a fixed interval sent
 * it at every step). A receiver that answers nothing is sent the oldest
 * batch of what is in flight, not the whole window again; once it answers,
 * the rest follows. A message answered "retry" is sent again after 250 ms,
 * then 500, 1,000, ... up to 10 s: not at every scan. */
static void relay_backs_off(void **state) {
  (void)state;
  s_flow_t f;
  s_flow_open(&f, "inproc://it-backoff");
  int64_t shift = 0;
  f.take = 0;
  s_flow_put(&f, "WH59", 1, 0);
  s_flow_run(&f, 100);
  assert_int_equal(f.seen, 1);
  int again = s_flow_steps(&f, 12, 5000, &shift);
  print_message("unanswered, a minute in 5 s steps: sent again %d times\n", again);
  assert_true(again >= 3 && again <= 5);
  f.take = 1;
  s_flow_answer_kept(&f);
  s_flow_run(&f, 100);

  f.take = 0;
  s_flow_put(&f, "WH56", 300, 0);
  s_flow_run(&f, 200);
  int seen = f.seen;
  again = s_flow_steps(&f, 1, 3000, &shift);
  print_message("a silent receiver, 300 in flight: %d sent again\n", again);
  assert_true(again > 0 && again < 300);
  assert_int_equal(f.seen - seen, again);
  f.take = 1;
  s_flow_answer_kept(&f);
  s_flow_steps(&f, 3, 3000, &shift);
  assert_int_equal(s_count(f.pg, "SELECT count(*) FROM outbox_owed"), 0);

  f.on_env = s_flow_say_retry;
  f.on_env_arg = &f;
  s_flow_put(&f, "WH55", 1, 0);
  s_flow_run(&f, 100);
  seen = f.seen;
  again = s_flow_steps(&f, 12, 1000, &shift);
  print_message("answered retry, 12 s in 1 s steps: sent again %d times\n", again);
  assert_true(again >= 3 && again <= 7);
  f.on_env = NULL;
  wh_clock_mono_shift_ms(0);
  s_flow_close(&f);
}

static void relay_holds_input_while_backed_up(void **state) {
  (void)state;
  s_flow_t f;
  s_flow_open(&f, "inproc://it-flow");
  wh_bus_t *input = wh_bus_new(&f.loop, f.zctx, ZMQ_ROUTER, "inproc://it-flow-in", 1, NULL, NULL, s_flow_input, &f);
  assert_non_null(input);
  wh_outbox_throttle(f.ob, input);
  void *client = zmq_socket(f.zctx, ZMQ_DEALER);
  assert_int_equal(zmq_connect(client, "inproc://it-flow-in"), 0);

  /* A receiver at work: one message goes out and is acknowledged. */
  f.take = 1;
  s_flow_put(&f, "WH60", 1, 0);
  s_flow_run(&f, 100);
  assert_int_equal(f.seen, 1);
  /* It takes its time answering; more than a window is committed: the
   * rest waits, and so does the input. */
  f.take = 0;
  int64_t heard = wh_clock_mono_ms();
  s_flow_put(&f, "WH61", WH_RELAY_WINDOW + 50, 0);
  s_clock_resume(heard);
  assert_true(zmq_send(client, "work", 4, 0) == 4);
  s_flow_run(&f, 100);
  assert_int_equal(f.seen, 1 + WH_RELAY_WINDOW);
  assert_int_equal(f.reads, 0);
  /* Once it answers, the waiting messages go out and the input is read. */
  f.take = 1;
  s_flow_answer_kept(&f);
  s_flow_run(&f, 300);
  assert_int_equal(f.seen, 1 + WH_RELAY_WINDOW + 50);
  assert_int_equal(f.reads, 1);
  assert_int_equal(s_count(f.pg, "SELECT count(*) FROM outbox_owed"), 0);
  /* A receiver that falls silent does not hold the input for long: the
   * table keeps what waits. */
  f.take = 0;
  heard = wh_clock_mono_ms();
  s_flow_put(&f, "WH62", WH_RELAY_WINDOW + 50, 0);
  s_clock_resume(heard);
  assert_true(zmq_send(client, "more", 4, 0) == 4);
  s_flow_run(&f, 100);
  assert_int_equal(f.reads, 1);
  s_flow_run(&f, 1500);
  assert_int_equal(f.reads, 2);
  wh_clock_mono_shift_ms(0);

  wh_bus_destroy(&input);
  zmq_close(client);
  s_flow_close(&f);
}

/* A row stored but forgotten by memory (here: committed, then dropped as
 * if rolled back, as when the answer to COMMIT is lost) is read back from
 * the table and sent. */
static void relay_reads_back_a_row_memory_lost(void **state) {
  (void)state;
  s_flow_t f;
  s_flow_open(&f, "inproc://it-lost");
  f.take = 1;
  s_flow_run(&f, 200); /* started: the table is read, nothing owed */
  s_flow_put(&f, "WH63", 1, 1);
  assert_int_equal(s_count(f.pg, "SELECT count(*) FROM outbox_owed"), 1);
  s_flow_until(&f, 1, 5000);
  s_flow_run(&f, 100); /* its acknowledgement */
  assert_int_equal(f.seen, 1);
  assert_int_equal(s_count(f.pg, "SELECT count(*) FROM outbox_owed"), 0);
  /* Ids come a thousand at a time per session: a new session (here, the
   * old one's reserve dropped) leaves a gap, and reading back goes past it. */
  long before = s_count(f.pg, "SELECT max(id) FROM outbox");
  assert_int_equal(wh_pg_exec(f.pg, "DISCARD SEQUENCES"), 0);
  s_flow_put(&f, "WH63", 1, 1);
  assert_true(s_count(f.pg, "SELECT max(id) FROM outbox") > before + 900);
  assert_int_equal(s_count(f.pg, "SELECT count(*) FROM outbox_owed"), 1);
  s_flow_until(&f, 2, 5000);
  s_flow_run(&f, 100);
  assert_int_equal(f.seen, 2);
  assert_int_equal(s_count(f.pg, "SELECT count(*) FROM outbox_owed"), 0);
  s_flow_close(&f);
}

/* Stops the relay and starts another on the same table, as a restart does. */
static void s_flow_restart(s_flow_t *f, const char *endpoint) {
  wh_relay_destroy(&f->relay);
  uv_run(&f->loop, UV_RUN_NOWAIT);
  f->relay = wh_relay_new(&f->loop, f->zctx, f->ob, NULL, "triage", endpoint);
  assert_non_null(f->relay);
}

/* 1 when the relay's line is at the newest row of the outbox. */
static int s_line_at_newest(wh_pg_t *pg) {
  return s_count(pg, "SELECT count(*) FROM outbox_line WHERE dest = 'triage'"
                     " AND upto = (SELECT max(id) FROM outbox)") == 1;
}

/* The outbox as a log: what is acknowledged is below the line and is not
 * sent again after a restart; what is not is; a refused message is parked
 * and kept when the relay empties the table of what it delivered. */
static void relay_line_restart_and_emptying(void **state) {
  (void)state;
  s_flow_t f;
  s_flow_open(&f, "inproc://it-log");
  f.take = 1;
  s_flow_put(&f, "WH64", 3, 0);
  s_flow_run(&f, 200);
  assert_int_equal(f.seen, 3);
  assert_int_equal(s_count(f.pg, "SELECT count(*) FROM outbox_owed"), 0);
  assert_true(s_line_at_newest(f.pg));
  /* Acknowledged: a restarted relay has nothing to send. */
  s_flow_restart(&f, "inproc://it-log");
  s_flow_run(&f, 700);
  assert_int_equal(f.seen, 3);
  /* Refused for good: parked, and no longer owed. */
  f.refuse = 1;
  s_flow_put(&f, "WH65", 1, 0);
  s_flow_run(&f, 200);
  assert_int_equal(f.seen, 4);
  assert_int_equal(s_count(f.pg, "SELECT count(*) FROM outbox_parked WHERE ticket_id = 'WH65'"
                                 " AND last_error <> ''"), 1);
  assert_int_equal(s_count(f.pg, "SELECT count(*) FROM outbox_owed"), 0);
  /* Sent, never answered, then the relay restarts: sent again. */
  f.refuse = 0;
  f.take = 0;
  s_flow_put(&f, "WH66", 2, 0);
  s_flow_run(&f, 200);
  assert_int_equal(f.seen, 6);
  assert_int_equal(s_count(f.pg, "SELECT count(*) FROM outbox_owed"), 2);
  f.take = 1;
  f.ntags = 0;
  s_flow_restart(&f, "inproc://it-log");
  s_flow_run(&f, 700);
  assert_int_equal(f.seen, 8);
  assert_int_equal(s_count(f.pg, "SELECT count(*) FROM outbox_owed"), 0);
  /* All delivered and a while later: the table is emptied, the parked
   * message kept, and the next rows go out with newer ids. */
  assert_true(s_count(f.pg, "SELECT count(*) FROM outbox") >= 6);
  wh_clock_mono_shift_ms(61000);
  s_flow_run(&f, 700);
  wh_clock_mono_shift_ms(0);
  assert_int_equal(s_count(f.pg, "SELECT count(*) FROM outbox"), 0);
  assert_int_equal(s_count(f.pg, "SELECT count(*) FROM outbox_parked WHERE ticket_id = 'WH65'"), 1);
  s_flow_put(&f, "WH67", 1, 0);
  s_flow_run(&f, 200);
  assert_int_equal(f.seen, 9);
  assert_int_equal(s_count(f.pg, "SELECT count(*) FROM outbox_owed"), 0);
  assert_true(s_line_at_newest(f.pg));
  s_flow_close(&f);
}

/* A second destination of the same outbox: a receiver that keeps what
 * arrives unanswered until told to take it. */
typedef struct {
  void *router;
  zmq_msg_t peer;
  int take, seen;
  uint64_t tags[64];
  int ntags;
} s_side_t;

static void s_side_recv(void *arg, zmq_msg_t *id, const Whistle__Envelope *env) {
  s_side_t *s = arg;
  s->seen++;
  zmq_msg_copy(&s->peer, id);
  if (s->take) s_answer_tag(s->router, &s->peer, "", env->delivery_tag, WHISTLE__ACK_STATUS__ACK_OK);
  else if (s->ntags < 64) s->tags[s->ntags++] = env->delivery_tag;
}

static void s_side_tick(uv_timer_t *t) {
  s_side_t *s = t->data;
  s_router_each(s->router, s_side_recv, s);
  if (s->take) {
    for (int i = 0; i < s->ntags; i++)
      s_answer_tag(s->router, &s->peer, "", s->tags[i], WHISTLE__ACK_STATUS__ACK_OK);
    s->ntags = 0;
  }
}

/* One outbox, two destinations, each with its own line: the one that has
 * taken everything does not empty the table under the one that still
 * owes, nor under rows for a destination no relay serves; once every line
 * has passed every row, the table is emptied. */
static void outbox_many_destinations(void **state) {
  (void)state;
  s_flow_t f;
  s_flow_open_to(&f, "inproc://it-many-l", "left");
  f.take = 1;
  s_side_t r = {0};
  zmq_msg_init(&r.peer);
  r.router = zmq_socket(f.zctx, ZMQ_ROUTER);
  assert_int_equal(zmq_bind(r.router, "inproc://it-many-r"), 0);
  wh_relay_t *right = wh_relay_new(&f.loop, f.zctx, f.ob, NULL, "right", "inproc://it-many-r");
  assert_non_null(right);
  /* One relay per destination. */
  assert_null(wh_relay_new(&f.loop, f.zctx, f.ob, NULL, "right", "inproc://it-many-r"));
  uv_timer_t tick;
  uv_timer_init(&f.loop, &tick);
  tick.data = &r;
  uv_timer_start(&tick, s_side_tick, 5, 5);
  /* One transaction writes for both. */
  assert_int_equal(wh_pg_exec(f.pg, "BEGIN"), 0);
  s_put_range(f.relay, "WH70", 1, 2);
  s_put_range(right, "WH71", 1, 3);
  assert_int_equal(wh_relay_flush(f.relay), 0);
  assert_int_equal(wh_relay_flush(right), 0);
  assert_int_equal(wh_pg_exec(f.pg, "COMMIT"), 0);
  wh_relay_committed(f.relay);
  wh_relay_committed(right);
  s_flow_run(&f, 300);
  assert_int_equal(f.seen, 2);
  assert_int_equal(r.seen, 3);
  assert_int_equal(s_count(f.pg, "SELECT count(*) FROM outbox_owed WHERE dest = 'left'"), 0);
  assert_int_equal(s_count(f.pg, "SELECT count(*) FROM outbox_owed WHERE dest = 'right'"), 3);
  /* A minute on, left has had everything: right's rows stay. */
  wh_clock_mono_shift_ms(61000);
  s_flow_run(&f, 700);
  assert_int_equal(s_count(f.pg, "SELECT count(*) FROM outbox WHERE dest = 'right'"), 3);
  /* Right takes them (its resends included); then the table is emptied. */
  r.take = 1;
  s_flow_run(&f, 300);
  assert_int_equal(s_count(f.pg, "SELECT count(*) FROM outbox_owed"), 0);
  wh_clock_mono_shift_ms(2 * 61000);
  s_flow_run(&f, 700);
  assert_int_equal(s_count(f.pg, "SELECT count(*) FROM outbox"), 0);
  /* A row for a destination none of the relays serves (one configured
   * before) keeps the table from being emptied. */
  assert_int_equal(wh_pg_exec(f.pg, "INSERT INTO outbox (dest, message_id, ticket_id, seq, payload)"
                                    " VALUES ('webhook', 'm-webhook', 'WH72', 1, '\\x00')"), 0);
  assert_int_equal(wh_pg_exec(f.pg, "BEGIN"), 0);
  s_put_range(f.relay, "WH73", 1, 1);
  assert_int_equal(wh_relay_flush(f.relay), 0);
  assert_int_equal(wh_pg_exec(f.pg, "COMMIT"), 0);
  wh_relay_committed(f.relay);
  s_flow_run(&f, 300);
  assert_int_equal(f.seen, 3);
  int cap[2];
  s_log_start(cap);
  wh_clock_mono_shift_ms(3 * 61000);
  s_flow_run(&f, 700);
  char log[8192];
  s_log_end(cap, log, sizeof log);
  wh_clock_mono_shift_ms(0);
  assert_int_equal(s_count(f.pg, "SELECT count(*) FROM outbox WHERE dest = 'webhook'"), 1);
  assert_non_null(strstr(log, "the outbox is not emptied: it still owes webhook 1 message"));
  uv_close((uv_handle_t *)&tick, NULL);
  wh_relay_destroy(&right);
  zmq_msg_close(&r.peer);
  zmq_close(r.router);
  s_flow_close(&f);
}

/* A receiver that applies each ticket's messages in order, as a consumer
 * does: the next one is taken, a repeat is acknowledged, one ahead of a
 * missing predecessor is answered "retry"; while `refuse` names a ticket,
 * its first message is refused for good. */
typedef struct {
  s_flow_t *f;
  char refuse[16];
  char tickets[8][16];
  uint32_t last[8];
  int n, refused;
  uint32_t seen_seq4; /* times WH80 seq 4 or later arrived */
  char first_mid[64]; /* WH80's first message id, as sent */
} s_order_t;

static void s_order_recv(void *arg, zmq_msg_t *id, const Whistle__Envelope *env) {
  s_order_t *o = arg;
  int k = 0;
  while (k < o->n && strcmp(o->tickets[k], env->ticket_id)) k++;
  if (k == o->n && o->n < 8) snprintf(o->tickets[o->n++], sizeof o->tickets[0], "%s", env->ticket_id);
  if (!strcmp(env->ticket_id, "WH80") && env->seq == 1)
    snprintf(o->first_mid, sizeof o->first_mid, "%s", env->message_id);
  if (!strcmp(env->ticket_id, "WH80") && env->seq >= 4) o->seen_seq4++;
  int status = WHISTLE__ACK_STATUS__ACK_OK;
  if (env->seq == o->last[k] + 1) {
    if (env->seq == 1 && !strcmp(o->refuse, env->ticket_id)) {
      status = WHISTLE__ACK_STATUS__ACK_REJECTED;
      o->refused++;
    } else {
      o->last[k]++;
    }
  } else if (env->seq > o->last[k] + 1) {
    status = WHISTLE__ACK_STATUS__ACK_RETRY;
  }
  s_answer(o->f->router, id, env, status);
}

static uint32_t s_order_last(const s_order_t *o, const char *ticket) {
  for (int k = 0; k < o->n; k++)
    if (!strcmp(o->tickets[k], ticket)) return o->last[k];
  return 0;
}

/* Commits messages from..to of ticket in one transaction, and sends. */
static void s_flow_put_range(s_flow_t *f, const char *ticket, int from, int to) {
  assert_int_equal(wh_pg_exec(f->pg, "BEGIN"), 0);
  s_put_range(f->relay, ticket, from, to);
  assert_int_equal(wh_relay_flush(f->relay), 0);
  assert_int_equal(wh_pg_exec(f->pg, "COMMIT"), 0);
  wh_relay_committed(f->relay);
}

static void s_count_parked(void *arg, const wh_parked_msg_t *m) {
  int *n = arg;
  if (!strcmp(m->ticket_id, "WH80") && m->seq == (uint32_t)(*n + 1) && !strcmp(m->dest, "triage") &&
      (m->seq == 1 ? m->behind[0] == '\0' : strstr(m->reason, "waits behind") != NULL))
    (*n)++;
}

/* A refused message is parked, and its ticket's later messages with it,
 * in order, instead of being sent again for ever behind it; other tickets
 * go on; a restart keeps them parked; a redrive sends them again in
 * order once the cause is fixed. */
static void relay_parks_a_ticket_behind_its_refused_message(void **state) {
  (void)state;
  s_flow_t f;
  s_flow_open(&f, "inproc://it-park");
  /* What earlier tests parked is not this test's. */
  assert_int_equal(wh_pg_exec(f.pg, "TRUNCATE outbox_parked"), 0);
  s_order_t o = {.f = &f};
  snprintf(o.refuse, sizeof o.refuse, "WH80");
  f.on_env = s_order_recv;
  f.on_env_arg = &o;
  s_flow_put_range(&f, "WH80", 1, 3);
  s_flow_put_range(&f, "WH81", 1, 1);
  for (int waited = 0; waited < 5000 &&
       s_count(f.pg, "SELECT count(*) FROM outbox_parked WHERE ticket_id = 'WH80'") < 3;
       waited += 100)
    s_flow_run(&f, 100);
  assert_int_equal(o.refused, 1);
  assert_int_equal(s_order_last(&o, "WH81"), 1);
  assert_int_equal(s_count(f.pg, "SELECT count(*) FROM outbox_parked WHERE ticket_id = 'WH80'"
                                 " AND redriven_at IS NULL"), 3);
  assert_int_equal(s_count(f.pg, "SELECT count(*) FROM outbox_parked WHERE ticket_id = 'WH80'"
                                 " AND behind IS NULL AND seq = 1"), 1);
  assert_int_equal(s_count(f.pg, "SELECT count(*) FROM outbox_parked p WHERE ticket_id = 'WH80'"
                                 " AND seq > 1 AND behind = (SELECT message_id FROM outbox_parked"
                                 "   WHERE ticket_id = 'WH80' AND seq = 1)"), 2);
  /* Nothing is owed, nothing in flight: the line is at the newest row. */
  s_flow_run(&f, 200);
  assert_int_equal(s_count(f.pg, "SELECT count(*) FROM outbox_owed"), 0);
  assert_true(s_line_at_newest(f.pg));
  /* A later message of the ticket is parked at once, not sent. */
  s_flow_put_range(&f, "WH80", 4, 4);
  s_flow_run(&f, 300);
  assert_int_equal(o.seen_seq4, 0);
  /* A restart: still parked, and the next one too. */
  s_flow_restart(&f, "inproc://it-park");
  s_flow_put_range(&f, "WH80", 5, 5);
  s_flow_put_range(&f, "WH81", 2, 2);
  s_flow_run(&f, 700);
  assert_int_equal(o.seen_seq4, 0);
  assert_int_equal(s_order_last(&o, "WH81"), 2);
  int listed = 0, more = 1;
  assert_int_equal(wh_outbox_parked(f.ob, 0, 100, s_count_parked, &listed, &more), 5);
  assert_int_equal(listed, 5);
  assert_int_equal(more, 0);
  listed = 0;
  assert_int_equal(wh_outbox_parked(f.ob, 0, 2, s_count_parked, &listed, &more), 2);
  assert_int_equal(more, 1);
  /* Fixed: a redrive sends all five again, in order. */
  assert_int_equal(wh_outbox_redrive(f.ob, "no-such-message"), WH_ENOTFOUND);
  o.refuse[0] = '\0';
  assert_int_equal(wh_outbox_redrive(f.ob, o.first_mid), 5);
  for (int waited = 0; waited < 5000 && s_order_last(&o, "WH80") < 5; waited += 100)
    s_flow_run(&f, 100);
  assert_int_equal(s_order_last(&o, "WH80"), 5);
  assert_int_equal(wh_outbox_parked(f.ob, 0, 100, s_count_parked, &listed, &more), 0);
  assert_int_equal(wh_outbox_redrive(f.ob, o.first_mid), WH_ENOTFOUND);
  s_flow_run(&f, 200);
  assert_int_equal(s_count(f.pg, "SELECT count(*) FROM outbox_owed"), 0);
  s_flow_close(&f);
}

/* Triage's decision rows carry their TicketTriaged (out_id, out_payload),
 * as its own INSERT does. */
static const wh_stmt_t s_carry_insert = {
    "test_carry_insert",
    "INSERT INTO decision (ticket_id, source, external_id, received_at, community, grid,"
    " category, klass, color, level, lead, co, rule, decided_by, weight, mergeable, out_id,"
    " out_payload)"
    " SELECT t, 'hotline', t, now(), 'c', 'g', 'cat', 'k', 'red', 1, 'lead', '{}', 'r', 'rules',"
    "   0, false, nextval('outbox_id_seq'), p FROM unnest($1::text[], $2::bytea[]) AS x(t, p)"
    " RETURNING out_id, ticket_id"};

/* Commits, in one transaction, a decision row carrying its message for
 * each of tickets, and (with also) one outbox row of ticket `also`; then
 * the relay sends them, or (forget) memory drops them. */
static void s_flow_carry(s_flow_t *f, const char *const *tickets, int n, const char *also,
                         int forget) {
  wh_rows_t rows;
  wh_rows_init(&rows, 2);
  for (int i = 0; i < n; i++) {
    Whistle__TicketTriaged tri = WHISTLE__TICKET_TRIAGED__INIT;
    tri.lead = "lead";
    Whistle__Envelope env = WHISTLE__ENVELOPE__INIT;
    env.ticket_id = (char *)tickets[i];
    env.seq = 1;
    env.body_case = WHISTLE__ENVELOPE__BODY_TRIAGED;
    env.triaged = &tri;
    wh_rows_next(&rows);
    wh_rows_text(&rows, 0, tickets[i]);
    assert_int_equal(wh_outbox_carry(f->relay, "triage", &env, &rows, 1), 0);
  }
  if (also) {
    Whistle__TicketTriaged tri = WHISTLE__TICKET_TRIAGED__INIT;
    Whistle__Envelope env = WHISTLE__ENVELOPE__INIT;
    env.ticket_id = (char *)also;
    env.seq = 2;
    env.body_case = WHISTLE__ENVELOPE__BODY_TRIAGED;
    env.triaged = &tri;
    assert_int_equal(wh_outbox_put(f->relay, "triage", &env), 0);
  }
  wh_pg_step_t steps[2] = {{.st = &s_carry_insert, .rows = &rows, .on_result = wh_relay_carried,
                            .arg = f->relay}};
  wh_relay_step(f->relay, &steps[1]);
  assert_int_equal(wh_pg_pipeline(f->pg, 1, steps, 2, WH_PG_COMMIT), 0);
  if (forget) wh_relay_aborted(f->relay);
  else wh_relay_committed(f->relay);
  wh_rows_free(&rows);
}

/* A message carried in its state row is sent, acknowledged, read back
 * when memory lost it, parked when refused, sent again when unanswered (and
 * the log says so after a minute) and after a restart, and not after;
 * emptying the outbox leaves it in its row. */
static void relay_carried_messages(void **state) {
  (void)state;
  s_flow_t f;
  s_flow_open_to(&f, "inproc://it-carry", "dispatch");
  assert_int_equal(wh_pg_exec(f.pg, "TRUNCATE decision, outbox_parked"), 0);
  f.take = 1;
  s_flow_run(&f, 200);
  /* Three carried and one outbox row in one transaction, sent from memory. */
  const char *three[3] = {"WH70", "WH71", "WH72"};
  s_flow_carry(&f, three, 3, "WH70", 0);
  assert_int_equal(s_count(f.pg, "SELECT count(*) FROM outbox_carried"), 3);
  assert_int_equal(s_count(f.pg, "SELECT count(*) FROM outbox"), 1);
  assert_int_equal(s_count(f.pg, "SELECT count(*) FROM outbox_owed"), 4);
  s_flow_run(&f, 200);
  assert_int_equal(f.seen, 4);
  assert_int_equal(s_count(f.pg, "SELECT count(*) FROM outbox_owed"), 0);
  /* Committed, but forgotten by memory: read back from its row. */
  const char *lost[1] = {"WH73"};
  s_flow_carry(&f, lost, 1, NULL, 1);
  assert_int_equal(s_count(f.pg, "SELECT count(*) FROM outbox_owed WHERE ticket_id = 'WH73'"), 1);
  s_flow_until(&f, 5, 5000);
  s_flow_run(&f, 100);
  assert_int_equal(f.seen, 5);
  assert_int_equal(s_count(f.pg, "SELECT count(*) FROM outbox_owed"), 0);
  /* Refused: parked once, whole, and no longer owed. */
  f.refuse = 1;
  const char *bad[1] = {"WH74"};
  s_flow_carry(&f, bad, 1, NULL, 0);
  s_flow_run(&f, 200);
  assert_int_equal(f.seen, 6);
  assert_int_equal(s_count(f.pg, "SELECT count(*) FROM outbox_parked WHERE ticket_id = 'WH74'"
                                 " AND dest = 'dispatch' AND seq = 1 AND last_error <> ''"
                                 " AND length(payload) > 0"),
                   1);
  assert_int_equal(s_count(f.pg, "SELECT count(*) FROM outbox_owed"), 0);
  /* Unanswered, then the relay restarts: sent again, and only that one. */
  f.refuse = 0;
  f.take = 0;
  const char *quiet[1] = {"WH75"};
  s_flow_carry(&f, quiet, 1, NULL, 0);
  s_flow_run(&f, 200);
  assert_int_equal(f.seen, 7);
  assert_int_equal(s_count(f.pg, "SELECT count(*) FROM outbox_owed"), 1);
  /* A minute unanswered: the log says so, once. */
  int cap[2];
  s_log_start(cap);
  wh_clock_mono_shift_ms(61000);
  s_flow_run(&f, 1200);
  wh_clock_mono_shift_ms(0);
  char log[4096];
  assert_true(s_log_end(cap, log, sizeof log) > 0);
  const char *say = strstr(log, "dispatch has not acknowledged 1 message for a minute");
  assert_non_null(say);
  assert_null(strstr(say + strlen("dispatch has"), "has not acknowledged"));
  assert_true(f.seen >= 8); /* sent again meanwhile */
  f.seen = 8;
  f.take = 1;
  f.ntags = 0;
  wh_relay_destroy(&f.relay);
  uv_run(&f.loop, UV_RUN_NOWAIT);
  f.relay = wh_relay_new(&f.loop, f.zctx, f.ob, NULL, "dispatch", "inproc://it-carry");
  assert_non_null(f.relay);
  s_flow_until(&f, 9, 5000);
  s_flow_run(&f, 100);
  assert_int_equal(f.seen, 9);
  assert_int_equal(s_count(f.pg, "SELECT count(*) FROM outbox_owed"), 0);
  /* Emptying the outbox a while later keeps the carried rows, sends
   * nothing again, and the parked copy stays. */
  wh_clock_mono_shift_ms(61000);
  s_flow_run(&f, 700);
  wh_clock_mono_shift_ms(0);
  assert_int_equal(s_count(f.pg, "SELECT count(*) FROM outbox"), 0);
  assert_int_equal(s_count(f.pg, "SELECT count(*) FROM outbox_carried"), 6);
  assert_int_equal(s_count(f.pg, "SELECT count(*) FROM outbox_parked WHERE ticket_id = 'WH74'"), 1);
  assert_int_equal(f.seen, 9);
  s_flow_close(&f);
}

/* Carried messages that are not stored: decision rows whose out_payload
 * is NULL, built again from lead and decided_at. */
static const wh_stmt_t s_built_insert = {
    "test_built_insert",
    "INSERT INTO decision (ticket_id, source, external_id, received_at, community, grid,"
    " category, klass, color, level, lead, co, rule, decided_by, weight, mergeable, decided_at,"
    " out_id)"
    " SELECT t, 'hotline', t, now(), 'c', 'g', 'cat', 'k', 'red', 1, 'lead-' || t, '{}', 'r',"
    "   'rules', 0, false, to_timestamp(1700000000), nextval('outbox_id_seq')"
    " FROM unnest($1::text[]) AS t RETURNING out_id, ticket_id"};
static const wh_stmt_t s_built_rows = {
    "test_built_rows",
    "SELECT out_id, ticket_id, lead, decided_at FROM decision WHERE out_id = ANY($1::bigint[])"
    " AND out_id BETWEEN $2::bigint AND $3::bigint AND out_payload IS NULL"};

/* The message of one such row, as s_flow_carry_built put it. */
static void s_built_env(Whistle__Envelope *env, Whistle__TicketTriaged *tri, const char *ticket,
                        const char *lead, int64_t at_ms) {
  whistle__envelope__init(env);
  whistle__ticket_triaged__init(tri);
  tri->lead = (char *)lead;
  env->ticket_id = (char *)ticket;
  env->seq = 1;
  env->created_at_ms = at_ms;
  env->body_case = WHISTLE__ENVELOPE__BODY_TRIAGED;
  env->triaged = tri;
}

static int s_build(void *arg, const PGresult *res, int k, Whistle__Envelope *env,
                   wh_arena_t *arena) {
  (void)arg;
  Whistle__TicketTriaged *tri = wh_arena_alloc(arena, sizeof *tri);
  if (!tri) return WH_ENOMEM;
  s_built_env(env, tri, PQgetvalue(res, k, 1), PQgetvalue(res, k, 2),
              wh_pg_get_time_ms(res, k, 3));
  return 0;
}

static const wh_builder_t s_builder = {.sender = "triage", .st = &s_built_rows, .build = s_build};

static void s_flow_carry_built(s_flow_t *f, const char *ticket, int forget) {
  wh_rows_t rows;
  wh_rows_init(&rows, 1);
  wh_rows_next(&rows);
  wh_rows_text(&rows, 0, ticket);
  char lead[32];
  snprintf(lead, sizeof lead, "lead-%s", ticket);
  Whistle__Envelope env;
  Whistle__TicketTriaged tri;
  s_built_env(&env, &tri, ticket, lead, INT64_C(1700000000000));
  assert_int_equal(wh_outbox_carry_built(f->relay, "triage", &env), 0);
  wh_pg_step_t step = {.st = &s_built_insert, .rows = &rows, .on_result = wh_relay_carried,
                       .arg = f->relay};
  assert_int_equal(wh_pg_pipeline(f->pg, 1, &step, 1, WH_PG_COMMIT), 0);
  if (forget) wh_relay_aborted(f->relay);
  else wh_relay_committed(f->relay);
  wh_rows_free(&rows);
}

/* A carried message that is not stored goes from memory; read back, it is
 * built again from its row (the same id, the same content); refused, it is
 * parked whole, as built. */
static void relay_built_messages(void **state) {
  (void)state;
  s_flow_t f;
  s_flow_open_to(&f, "inproc://it-built", "dispatch");
  wh_relay_builder(f.relay, &s_builder);
  assert_int_equal(wh_pg_exec(f.pg, "TRUNCATE decision, outbox_parked"), 0);
  f.take = 1;
  s_flow_run(&f, 200);
  s_flow_carry_built(&f, "WH80", 0);
  s_flow_run(&f, 200);
  assert_int_equal(f.seen, 1);
  assert_string_equal(f.last_mid, "triage:WH80:1");
  assert_string_equal(f.last_lead, "lead-WH80");
  assert_int_equal(s_count(f.pg, "SELECT count(*) FROM outbox_owed"), 0);
  /* Forgotten by memory: read back, built from its row. */
  s_flow_carry_built(&f, "WH81", 1);
  f.last_mid[0] = f.last_lead[0] = '\0';
  s_flow_until(&f, 2, 5000);
  s_flow_run(&f, 100);
  assert_int_equal(f.seen, 2);
  assert_string_equal(f.last_mid, "triage:WH81:1");
  assert_string_equal(f.last_lead, "lead-WH81");
  assert_int_equal(s_count(f.pg, "SELECT count(*) FROM outbox_owed"), 0);
  /* Refused: parked with the bytes built from its row. */
  f.refuse = 1;
  s_flow_carry_built(&f, "WH82", 0);
  s_flow_run(&f, 200);
  assert_int_equal(f.seen, 3);
  PGresult *r = wh_pg_query(f.pg, "SELECT payload FROM outbox_parked WHERE ticket_id = 'WH82'", 0,
                            NULL);
  assert_non_null(r);
  assert_int_equal(PQntuples(r), 1);
  size_t len;
  unsigned char *bytes = PQunescapeBytea((const unsigned char *)PQgetvalue(r, 0, 0), &len);
  Whistle__Envelope *env;
  assert_int_equal(wh_env_unpack(bytes, len, &env), 0);
  assert_string_equal(env->message_id, "triage:WH82:1");
  assert_int_equal(env->created_at_ms, INT64_C(1700000000000));
  assert_int_equal(env->body_case, WHISTLE__ENVELOPE__BODY_TRIAGED);
  assert_string_equal(env->triaged->lead, "lead-WH82");
  wh_env_free(env);
  PQfreemem(bytes);
  PQclear(r);
  assert_int_equal(s_count(f.pg, "SELECT count(*) FROM outbox_owed"), 0);
  s_flow_close(&f);
}

/* Batched rows go as binary arrays: every value comes back as it was
 * given, hostile text, NULLs, zero bytes and extreme numbers included, in
 * one statement, and in the lazily committed transaction. */
static const wh_stmt_t s_rows_insert = {
    "test_rows_insert",
    "INSERT INTO rows_rt (t, i, b, f, ok, n)"
    " SELECT t, i, b, f, ok, n FROM unnest($1::text[], $2::bigint[], $3::bytea[],"
    "   $4::float8[], $5::boolean[]) WITH ORDINALITY AS x(t, i, b, f, ok, n)"};
static const wh_stmt_t s_rows_drop = {
    "test_rows_drop", "DELETE FROM rows_rt WHERE i = ANY($1::bigint[])"};

static void rows_round_trip_every_type(void **state) {
  (void)state;
  wh_pg_t *pg = wh_pg_new(s_conninfo, NULL);
  s_ready(pg);
  assert_int_equal(wh_pg_exec(pg, "DROP TABLE IF EXISTS rows_rt;"
                                  "CREATE TABLE rows_rt (n bigint, t text, i bigint, b bytea,"
                                  " f float8, ok boolean)"), 0);
  static const char *texts[] = {"路灯坏了，\"夜里\"一片黑", "back\\slash {,} NULL", "", NULL};
  static const int64_t ints[] = {INT64_MIN, -1, 0, INT64_MAX};
  static const unsigned char bytes[] = {0, 1, 0xff, '"', '\\', 0};
  static const double floats[] = {31.2304, -121.4737, 1e-300};
  wh_rows_t rows;
  wh_rows_init(&rows, 5);
  for (int round = 0; round < 2; round++) { /* the buffers are reused */
    wh_rows_reset(&rows);
    for (int k = 0; k < 4; k++) {
      wh_rows_next(&rows);
      wh_rows_text(&rows, 0, texts[k]);
      wh_rows_int(&rows, 1, ints[k]);
      wh_rows_bytes(&rows, 2, bytes, (size_t)k * 2);
      wh_rows_float(&rows, 3, k < 3 ? &floats[k] : NULL);
      wh_rows_bool(&rows, 4, k & 1);
    }
    PGresult *r = wh_rows_run(pg, &s_rows_insert, &rows, 0, NULL);
    assert_non_null(r);
    PQclear(r);
  }
  assert_int_equal(s_count(pg, "SELECT count(*) FROM rows_rt"), 8);
  /* Both rounds wrote the same rows: one of each. */
  PGresult *r = wh_pg_query(pg, "SELECT DISTINCT ON (n) t, i::text, encode(b, 'hex'), f::text, ok::text,"
                                " t IS NULL, f IS NULL FROM rows_rt ORDER BY n", 0, NULL);
  assert_non_null(r);
  assert_int_equal(PQntuples(r), 4);
  assert_string_equal(PQgetvalue(r, 0, 0), texts[0]);
  assert_string_equal(PQgetvalue(r, 1, 0), texts[1]);
  assert_string_equal(PQgetvalue(r, 2, 0), "");
  assert_string_equal(PQgetvalue(r, 3, 5), "t");
  assert_string_equal(PQgetvalue(r, 0, 1), "-9223372036854775808");
  assert_string_equal(PQgetvalue(r, 3, 1), "9223372036854775807");
  assert_string_equal(PQgetvalue(r, 0, 2), "");
  assert_string_equal(PQgetvalue(r, 3, 2), "0001ff225c00");
  assert_string_equal(PQgetvalue(r, 0, 3), "31.2304");
  assert_string_equal(PQgetvalue(r, 1, 3), "-121.4737");
  assert_string_equal(PQgetvalue(r, 2, 3), "1e-300");
  assert_string_equal(PQgetvalue(r, 3, 6), "t");
  assert_string_equal(PQgetvalue(r, 0, 4), "false");
  assert_string_equal(PQgetvalue(r, 1, 4), "true");
  PQclear(r);
  /* A column given two types refuses to run, and changes nothing. */
  wh_rows_reset(&rows);
  wh_rows_next(&rows);
  wh_rows_text(&rows, 0, "x");
  wh_rows_text(&rows, 1, "1");
  wh_rows_bytes(&rows, 2, "", 0);
  wh_rows_float(&rows, 3, NULL);
  wh_rows_bool(&rows, 4, 0);
  wh_rows_next(&rows);
  wh_rows_text(&rows, 0, "y");
  wh_rows_int(&rows, 1, 2);
  wh_rows_bytes(&rows, 2, "", 0);
  wh_rows_float(&rows, 3, NULL);
  wh_rows_bool(&rows, 4, 0);
  assert_null(wh_rows_run(pg, &s_rows_insert, &rows, 0, NULL));
  assert_int_equal(s_count(pg, "SELECT count(*) FROM rows_rt"), 8);
  /* A lazily committed statement is committed all the same. */
  wh_rows_t ids;
  wh_rows_init(&ids, 1);
  assert_int_equal(wh_pg_run_lazily(pg, &s_rows_drop, &ids, 0, NULL), 0); /* nothing to do */
  wh_rows_next(&ids);
  wh_rows_int(&ids, 0, -1);
  wh_rows_next(&ids);
  wh_rows_int(&ids, 0, 0);
  assert_int_equal(wh_pg_run_lazily(pg, &s_rows_drop, &ids, 0, NULL), 0);
  assert_int_equal(PQtransactionStatus(wh_pg_conn(pg)), PQTRANS_IDLE);
  assert_int_equal(s_count(pg, "SELECT count(*) FROM rows_rt"), 4);
  wh_rows_free(&ids);
  wh_rows_free(&rows);
  wh_pg_destroy(&pg);
}

/* Rows in record mode go as one array of a composite type: every field
 * comes back as given (arrays of text and numbers, empty ones, times,
 * NULLs, hostile text), the type is found again on a new connection, and a
 * row given its columns out of order, or short of one, refuses to run and
 * changes nothing. */
static const wh_stmt_t s_record_insert = {
    "test_record_insert",
    "INSERT INTO record_rt SELECT r.* FROM unnest($1::record_rt_row[]) AS r"};

static void s_record_row(wh_rows_t *rows, int k) {
  static const char *texts[] = {"路灯坏了，\"夜里\"一片黑", "back\\slash {,} NULL", "", NULL};
  static const char *const tags[] = {"elderly_alone", "{\"a\",b}", "", "残疾人"};
  static const int64_t ints[] = {INT64_MIN, -1, 0, INT64_MAX};
  static const int64_t at[] = {0, 1763800000123, -86400000, 4102444800000};
  wh_rows_next(rows);
  wh_rows_int(rows, 0, k);
  wh_rows_text(rows, 1, texts[k]);
  wh_rows_texts(rows, 2, tags, (size_t)k);
  wh_rows_ints(rows, 3, ints, (size_t)(4 - k));
  wh_rows_time(rows, 4, k == 3 ? NULL : &at[k]);
  wh_rows_bytes(rows, 5, texts[0], (size_t)k);
}

static void rows_as_records(void **state) {
  (void)state;
  wh_pg_t *pg = wh_pg_new(s_conninfo, NULL);
  s_ready(pg);
  assert_int_equal(wh_pg_exec(pg, "DROP TABLE IF EXISTS record_rt; DROP TYPE IF EXISTS record_rt_row;"
                                  "CREATE TYPE record_rt_row AS (n bigint, t text, tags text[],"
                                  " ints bigint[], at timestamptz, b bytea);"
                                  "CREATE TABLE record_rt OF record_rt_row"), 0);
  wh_rows_t rows;
  wh_rows_init_record(&rows, 6, "record_rt_row");
  for (int round = 0; round < 2; round++) { /* the buffers and the type's oid are reused */
    wh_rows_reset(&rows);
    for (int k = 0; k < 4; k++) s_record_row(&rows, k);
    PGresult *r = wh_rows_run(pg, &s_record_insert, &rows, 0, NULL);
    assert_non_null(r);
    PQclear(r);
  }
  assert_int_equal(s_count(pg, "SELECT count(*) FROM record_rt"), 8);
  PGresult *r = wh_pg_query(pg, "SELECT DISTINCT ON (n) t, tags::text, ints::text,"
                                " (extract(epoch FROM at) * 1000)::bigint::text, encode(b, 'hex'),"
                                " t IS NULL, at IS NULL, cardinality(tags) FROM record_rt ORDER BY n",
                            0, NULL);
  assert_non_null(r);
  assert_int_equal(PQntuples(r), 4);
  assert_string_equal(PQgetvalue(r, 0, 0), "路灯坏了，\"夜里\"一片黑");
  assert_string_equal(PQgetvalue(r, 1, 0), "back\\slash {,} NULL");
  assert_string_equal(PQgetvalue(r, 3, 5), "t");
  assert_string_equal(PQgetvalue(r, 0, 1), "{}");
  assert_string_equal(PQgetvalue(r, 1, 1), "{elderly_alone}");
  assert_string_equal(PQgetvalue(r, 3, 1), "{elderly_alone,\"{\\\"a\\\",b}\",\"\"}");
  assert_string_equal(PQgetvalue(r, 0, 2), "{-9223372036854775808,-1,0,9223372036854775807}");
  assert_string_equal(PQgetvalue(r, 3, 2), "{-9223372036854775808}");
  assert_string_equal(PQgetvalue(r, 0, 3), "0");
  assert_string_equal(PQgetvalue(r, 1, 3), "1763800000123");
  assert_string_equal(PQgetvalue(r, 2, 3), "-86400000");
  assert_string_equal(PQgetvalue(r, 3, 6), "t");
  assert_string_equal(PQgetvalue(r, 0, 4), "");
  assert_string_equal(PQgetvalue(r, 2, 4), "e8b7");
  assert_string_equal(PQgetvalue(r, 0, 7), "0");
  PQclear(r);
  /* A new connection looks the type up again. */
  wh_pg_destroy(&pg);
  pg = wh_pg_new(s_conninfo, NULL);
  s_ready(pg);
  wh_rows_reset(&rows);
  s_record_row(&rows, 1);
  r = wh_rows_run(pg, &s_record_insert, &rows, 0, NULL);
  assert_non_null(r);
  PQclear(r);
  assert_int_equal(s_count(pg, "SELECT count(*) FROM record_rt"), 9);
  /* Out of order, or a column short: nothing runs. */
  wh_rows_reset(&rows);
  wh_rows_next(&rows);
  wh_rows_int(&rows, 0, 7);
  wh_rows_texts(&rows, 2, NULL, 0);
  assert_null(wh_rows_run(pg, &s_record_insert, &rows, 0, NULL));
  wh_rows_reset(&rows);
  s_record_row(&rows, 2);
  wh_rows_next(&rows);
  wh_rows_int(&rows, 0, 8);
  assert_null(wh_rows_run(pg, &s_record_insert, &rows, 0, NULL));
  assert_int_equal(s_count(pg, "SELECT count(*) FROM record_rt"), 9);
  /* A time out of the database's range is refused as data, whatever its
   * size, and nothing is written. */
  static const int64_t far[] = {INT64_MAX, INT64_MIN, -INT64_C(9000000000000000)};
  for (int i = 0; i < 3; i++) {
    wh_rows_reset(&rows);
    wh_rows_next(&rows);
    wh_rows_int(&rows, 0, 9);
    wh_rows_text(&rows, 1, "far");
    wh_rows_texts(&rows, 2, NULL, 0);
    wh_rows_ints(&rows, 3, NULL, 0);
    wh_rows_time(&rows, 4, &far[i]);
    wh_rows_bytes(&rows, 5, "", 0);
    assert_null(wh_rows_run(pg, &s_record_insert, &rows, 0, NULL));
    assert_true(wh_pg_refused(pg));
  }
  assert_int_equal(s_count(pg, "SELECT count(*) FROM record_rt"), 9);
  /* A type the database does not have: nothing runs. */
  wh_rows_t other;
  wh_rows_init_record(&other, 1, "no_such_row");
  wh_rows_next(&other);
  wh_rows_int(&other, 0, 1);
  assert_null(wh_rows_run(pg, &s_record_insert, &other, 0, NULL));
  wh_rows_free(&other);
  /* Arrays of arrays are for record mode only. */
  wh_rows_t cols;
  wh_rows_init(&cols, 1);
  wh_rows_next(&cols);
  wh_rows_texts(&cols, 0, NULL, 0);
  assert_true(cols.oom);
  wh_rows_free(&cols);
  wh_rows_free(&rows);
  wh_pg_destroy(&pg);
}

/* ---- a message that waits for a predecessor that never comes ---------- */

typedef struct {
  void *router;
  int seen;
  uv_loop_t *loop;
} s_stuck_t;

/* Answers every message "retry", as a consumer does while its predecessor
 * is missing; after the first answer the clock moves on by a minute. */
static void s_say_retry(void *arg, zmq_msg_t *id, const Whistle__Envelope *env) {
  s_stuck_t *k = arg;
  s_answer(k->router, id, env, WHISTLE__ACK_STATUS__ACK_RETRY);
  if (++k->seen == 1) wh_clock_mono_shift_ms(61000);
}

static void s_retrier(uv_timer_t *t) {
  s_stuck_t *k = t->data;
  s_router_each(k->router, s_say_retry, k);
  if (k->seen >= 4) uv_stop(k->loop);
}

static void relay_says_when_a_message_is_stuck(void **state) {
  (void)state;
  s_stuck_t k = {0};
  wh_pg_t *pg = wh_pg_new(s_conninfo, triage_migrations);
  s_ready(pg);
  assert_int_equal(wh_pg_exec(pg, "TRUNCATE outbox"), 0);
  uv_loop_t loop;
  uv_loop_init(&loop);
  k.loop = &loop;
  void *zctx = zmq_ctx_new();
  k.router = zmq_socket(zctx, ZMQ_ROUTER);
  assert_int_equal(zmq_bind(k.router, "inproc://it-stuck"), 0);
  wh_outbox_t *ob = wh_outbox_new(pg);
  wh_relay_t *relay = wh_relay_new(&loop, zctx, ob, NULL, "dispatch", "inproc://it-stuck");
  assert_non_null(relay);
  assert_int_equal(wh_pg_exec(pg, "BEGIN"), 0);
  Whistle__TicketReceived rec = WHISTLE__TICKET_RECEIVED__INIT;
  rec.ticket_id = "WH91";
  Whistle__Envelope env = WHISTLE__ENVELOPE__INIT;
  env.ticket_id = "WH91";
  env.seq = 2; /* its first was never sent */
  env.body_case = WHISTLE__ENVELOPE__BODY_RECEIVED;
  env.received = &rec;
  assert_int_equal(wh_outbox_put(relay, "triage", &env), 0);
  assert_int_equal(wh_relay_flush(relay), 0);
  assert_int_equal(wh_pg_exec(pg, "COMMIT"), 0);
  /* The log, captured: the relay must say, once, that the row is stuck. */
  int cap[2];
  s_log_start(cap);
  wh_relay_committed(relay);
  uv_timer_t t;
  uv_timer_init(&loop, &t);
  t.data = &k;
  uv_timer_start(&t, s_retrier, 20, 20);
  uv_run(&loop, UV_RUN_DEFAULT);
  char log[8192];
  ssize_t n = s_log_end(cap, log, sizeof log);
  wh_clock_mono_shift_ms(0);
  assert_true(n > 0);
  assert_true(k.seen >= 4);
  /* Said once, not at every resend. The resend scan may see the minute go
   * by before the relay has read the first "retry" (both run on the loop
   * after the clock moved): then it is the scan that says so. */
  char *hit = strstr(log, "dispatch has waited");
  if (!hit) hit = strstr(log, "dispatch has not acknowledged");
  assert_non_null(hit);
  assert_non_null(strstr(hit, "outbox row"));
  assert_null(strstr(hit + 1, "dispatch has waited"));
  assert_null(strstr(hit + 1, "dispatch has not acknowledged"));
  uv_close((uv_handle_t *)&t, NULL);
  wh_relay_destroy(&relay);
  wh_outbox_destroy(&ob);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  zmq_close(k.router);
  zmq_ctx_term(zctx);
  wh_pg_destroy(&pg);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(migrations_from_empty_and_rerun),
      cmocka_unit_test(server_warning_is_one_log_entry),
      cmocka_unit_test(database_errors_never_log_row_values),
      cmocka_unit_test(lapse_scan_planned_for_one_batch),
      cmocka_unit_test(one_writer_per_database),
      cmocka_unit_test(inbox_applies_in_order_once),
      cmocka_unit_test(consumer_same_message_twice_changes_state_once),
      cmocka_unit_test(consumer_round_is_bounded),
      cmocka_unit_test(consumer_requests_wait_their_turn),
      cmocka_unit_test(consumer_applies_after_the_poll_phase),
      cmocka_unit_test(consumer_first_message_recorded_by_state_row),
      cmocka_unit_test(consumer_first_send_applies_once),
      cmocka_unit_test(consumer_batch_frame_applies_each),
      cmocka_unit_test(consumer_database_failure_refuses_nothing),
      cmocka_unit_test(consumer_refused_data_splits_batch),
      cmocka_unit_test(relay_resends_until_acknowledged),
      cmocka_unit_test(relay_says_when_a_message_is_stuck),
      cmocka_unit_test(relay_timers_ignore_the_business_clock),
      cmocka_unit_test(relay_backs_off),
      cmocka_unit_test(relay_holds_input_while_backed_up),
      cmocka_unit_test(relay_reads_back_a_row_memory_lost),
      cmocka_unit_test(relay_line_restart_and_emptying),
      cmocka_unit_test(outbox_many_destinations),
      cmocka_unit_test(relay_parks_a_ticket_behind_its_refused_message),
      cmocka_unit_test(relay_carried_messages),
      cmocka_unit_test(relay_built_messages),
      cmocka_unit_test(rows_round_trip_every_type),
      cmocka_unit_test(rows_as_records),
  };
  if (argc > 1) cmocka_set_test_filter(argv[1]);
  return cmocka_run_group_tests_name("integration", tests, s_setup, s_teardown);
}
