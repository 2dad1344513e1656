/* wh_pg - connect, migrate, prepare, reconnect. */
#include "wh_pg.h"
#include "wh_err.h"
#include "wh_log.h"
#include "wh_text.h"

#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <errno.h>
#include <poll.h>

/* While the database is down, connecting is tried at most this often (the
 * wait doubles from the first to the last), and the failure is logged when
 * it starts and then at most every WH_PG_LOG_MS: a service that is asked
 * for work thousands of times a second must not try, or log, as often. */
#define WH_PG_RETRY_FIRST_MS 50
#define WH_PG_RETRY_MAX_MS 1000
#define WH_PG_LOG_MS 30000
#define WH_PG_WRITER_LOCK "727275" /* held by a service's session (s_claim_writer) */
#define WH_PIPELINE_MAX 16 /* statements in one pipeline */

struct wh_pg_s {
  char *conninfo;
  PGconn *conn;
  const wh_migration_t *const *migrations;
  const char *session; /* options for every new connection ("-c x=y ...") */
  const wh_stmt_t *prepared[64]; /* statements prepared on this connection */
  int nprepared;
  unsigned long conn_no; /* counts connections made, so rows know theirs */
  int broken;
  char sqlstate[6]; /* of the last statement that failed; "" if none said */
  char why[256];    /* its primary message (never the row's values) */
  int64_t retry_at, retry_ms, logged_at; /* monotonic ms; 0 = up */
  long failures;                         /* attempts since it went down */
};

static int64_t s_mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

wh_pg_t *wh_pg_new(const char *conninfo, const wh_migration_t *const *migrations) {
  wh_pg_t *pg = calloc(1, sizeof *pg);
  if (!pg) return NULL;
  pg->conninfo = strdup(conninfo);
  pg->migrations = migrations;
  return pg;
}

void wh_pg_set_session(wh_pg_t *pg, const char *options) { pg->session = options; }

void wh_pg_destroy(wh_pg_t **self_p) {
  if (!self_p || !*self_p) return;
  wh_pg_t *pg = *self_p;
  if (pg->conn) PQfinish(pg->conn);
  free(pg->conninfo);
  free(pg);
  *self_p = NULL;
}

static int s_ok(PGresult *r) {
  ExecStatusType st = PQresultStatus(r);
  return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

/* Remembers why r failed (its SQLSTATE), for wh_pg_refused. */
static void s_failed(wh_pg_t *pg, const PGresult *r) {
  const char *code = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
  const char *why = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
  snprintf(pg->sqlstate, sizeof pg->sqlstate, "%s", code ? code : "");
  wh_str_copy(pg->why, sizeof pg->why, why ? why : "");
}

const char *wh_pg_why(const wh_pg_t *pg) { return pg->why; }

int wh_pg_refused(const wh_pg_t *pg) {
  return !strncmp(pg->sqlstate, "22", 2) || !strncmp(pg->sqlstate, "23", 2);
}

int wh_pg_exec(wh_pg_t *pg, const char *sql) {
  if (!pg->conn) return WH_EDB;
  PGresult *r = PQexec(pg->conn, sql);
  int ok = s_ok(r);
  if (!ok) {
    s_failed(pg, r);
    wh_error("sql failed: %s", PQerrorMessage(pg->conn));
    if (PQstatus(pg->conn) != CONNECTION_OK) pg->broken = 1;
  }
  PQclear(r);
  return ok ? 0 : WH_EDB;
}

/* A service is its database's one writer: outbox ids follow commit order
 * only because one session, one transaction at a time, takes them (see
 * wh_outbox.c), and the outbox sequence hands each session a range of ids
 * of its own. A second process of the same service on the same database (a
 * copy started by mistake, or a restarted one whose old session is not yet
 * gone) would break that order, so it waits, retrying as for a database that
 * is down, until this session-level lock is free. It goes with the session:
 * a process that dies, or loses its connection, lets it go. A reader (no
 * migrations: whistlectl) takes nothing. Returns 0 when this session holds
 * it, 1 when another does, or WH_EDB. */
static int s_claim_writer(wh_pg_t *pg) {
  if (!pg->migrations) return 0;
  PGresult *r = PQexec(pg->conn, "SELECT pg_try_advisory_lock(" WH_PG_WRITER_LOCK ")");
  int ok = s_ok(r) && PQntuples(r) == 1;
  int got = ok && PQgetvalue(r, 0, 0)[0] == 't';
  if (!ok) {
    s_failed(pg, r);
    wh_error("sql failed: %s", PQerrorMessage(pg->conn));
  }
  PQclear(r);
  return got ? 0 : ok ? 1 : WH_EDB;
}

static int s_migrate(wh_pg_t *pg) {
  if (!pg->migrations) return 0; /* a reader (whistlectl) changes nothing */
  if (wh_pg_exec(pg, "SELECT pg_advisory_lock(727274)") ||
      wh_pg_exec(pg, "CREATE TABLE IF NOT EXISTS schema_migrations ("
                     " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"))
    return WH_EDB;
  int rc = 0;
  for (int i = 0; pg->migrations && pg->migrations[i] && !rc; i++) {
    const wh_migration_t *m = pg->migrations[i];
    const char *p[1] = {m->name};
    PGresult *r = PQexecParams(pg->conn, "SELECT 1 FROM schema_migrations WHERE name = $1", 1,
                               NULL, p, NULL, NULL, 0);
    int have = s_ok(r) && PQntuples(r) == 1;
    if (!s_ok(r)) rc = WH_EDB;
    PQclear(r);
    if (rc || have) continue;
    if (wh_pg_exec(pg, "BEGIN") || wh_pg_exec(pg, m->sql)) {
      wh_error("migration %s failed", m->name);
      wh_pg_exec(pg, "ROLLBACK");
      rc = WH_EDB;
      break;
    }
    r = PQexecParams(pg->conn, "INSERT INTO schema_migrations (name) VALUES ($1)", 1, NULL, p,
                     NULL, NULL, 0);
    if (!s_ok(r)) rc = WH_EDB;
    PQclear(r);
    if (rc || wh_pg_exec(pg, "COMMIT")) {
      wh_pg_exec(pg, "ROLLBACK");
      rc = WH_EDB;
    } else {
      wh_info("applied migration %s", m->name);
    }
  }
  wh_pg_exec(pg, "SELECT pg_advisory_unlock(727274)");
  return rc;
}

static void s_down(wh_pg_t *pg, const char *why) {
  int64_t now = s_mono_ms();
  pg->failures++;
  if (!pg->logged_at || now - pg->logged_at >= WH_PG_LOG_MS) {
    wh_warn("database unreachable (%ld attempt%s): %s", pg->failures, pg->failures == 1 ? "" : "s",
            why);
    pg->logged_at = now;
  }
  pg->retry_ms = pg->retry_ms ? pg->retry_ms * 2 : WH_PG_RETRY_FIRST_MS;
  if (pg->retry_ms > WH_PG_RETRY_MAX_MS) pg->retry_ms = WH_PG_RETRY_MAX_MS;
  pg->retry_at = now + pg->retry_ms;
}

/* What the server says beside a result (a WARNING) goes to the service's log
 * as one entry, where libpq would write it to stderr as it came. */
static void s_notice(void *arg, const char *message) {
  (void)arg;
  wh_warn("database: %s", message);
}

/* Connects with the settings every service session runs with, given at
 * connection start, after any options the conninfo names:
 * - no JIT: a service's statements touch a handful of rows, but a generic
 *   plan's estimate can pass jit_above_cost as a table grows (dispatch's
 *   scan for lapsed deadlines once did, lapse.h), and then every run spends
 *   60 ms compiling with LLVM while the messages behind it wait. Given at
 *   start, not by SET: in paired bursts, SET jit = off cost PostgreSQL 5-7%
 *   more CPU per ticket, for reasons not found.
 * - warnings and errors only, not notices.
 * Then the handle's own (session, from wh_pg_set_session); a later setting
 * of one name wins. */
static PGconn *s_connect(const char *conninfo, const char *session) {
  static const char ours[] = "-c jit=off -c client_min_messages=warning";
  char *err = NULL;
  PQconninfoOption *given = PQconninfoParse(conninfo, &err);
  if (!given) {
    PQfreemem(err);
    return PQconnectdb(conninfo); /* fails, and says why as it always has */
  }
  const char *theirs = "";
  for (PQconninfoOption *o = given; o->keyword; o++)
    if (!strcmp(o->keyword, "options") && o->val) theirs = o->val;
  if (!session) session = "";
  size_t n = strlen(theirs) + sizeof ours + strlen(session) + 2;
  char *options = malloc(n);
  PGconn *conn = NULL;
  if (options) {
    snprintf(options, n, "%s%s%s%s%s", theirs, *theirs ? " " : "", ours, *session ? " " : "",
             session);
    /* The conninfo is expanded first; the options after it replace its own. */
    const char *keys[] = {"dbname", "options", NULL};
    const char *vals[] = {conninfo, options, NULL};
    conn = PQconnectdbParams(keys, vals, 1);
    free(options);
    if (conn) {
      PQsetNoticeProcessor(conn, s_notice, NULL);
      /* Errors say what failed, never the row: a violation's DETAIL
       * spells out the failing row, a reporter's phone with it. */
      PQsetErrorVerbosity(conn, PQERRORS_TERSE);
    }
  }
  PQconninfoFree(given);
  return conn;
}

int wh_pg_ready(wh_pg_t *pg) {
  if (pg->conn && !pg->broken && PQstatus(pg->conn) == CONNECTION_OK) return 0;
  if (pg->conn) {
    PQfinish(pg->conn);
    pg->conn = NULL;
  }
  if (pg->retry_at && s_mono_ms() < pg->retry_at) return WH_EDB;
  pg->broken = 0;
  pg->nprepared = 0;
  pg->conn_no++;
  pg->conn = s_connect(pg->conninfo, pg->session);
  if (PQstatus(pg->conn) != CONNECTION_OK) {
    char why[512];
    snprintf(why, sizeof why, "%s", pg->conn ? PQerrorMessage(pg->conn) : "out of memory");
    why[strcspn(why, "\n")] = '\0';
    PQfinish(pg->conn);
    pg->conn = NULL;
    s_down(pg, why);
    return WH_EDB;
  }
  const char *why = "could not prepare the database";
  int writer = s_claim_writer(pg);
  if (writer) {
    if (writer == 1)
      why = "another process holds this database as its writer (advisory lock " WH_PG_WRITER_LOCK
            "); waiting for it to go";
    goto fail;
  }
  if (s_migrate(pg)) goto fail;
  if (pg->failures) wh_info("database connected after %ld failed attempt%s", pg->failures,
                            pg->failures == 1 ? "" : "s");
  else wh_info("database connected");
  pg->retry_at = pg->retry_ms = pg->logged_at = 0;
  pg->failures = 0;
  return 0;
fail:
  PQfinish(pg->conn);
  pg->conn = NULL;
  s_down(pg, why);
  return WH_EDB;
}

PGconn *wh_pg_conn(wh_pg_t *pg) { return pg->conn; }

int wh_pg_text_array(char *const *items, size_t n, char *out, size_t len) {
  size_t o = 0;
  if (len < 3) return WH_ETOOLONG;
  out[o++] = '{';
  for (size_t i = 0; i < n; i++) {
    if (o + 3 >= len) return WH_ETOOLONG;
    if (i) out[o++] = ',';
    out[o++] = '"';
    for (const char *p = items[i]; *p; p++) {
      if (o + 4 >= len) return WH_ETOOLONG;
      if (*p == '"' || *p == '\\') out[o++] = '\\';
      out[o++] = *p;
    }
    out[o++] = '"';
  }
  if (o + 2 > len) return WH_ETOOLONG;
  out[o++] = '}';
  out[o] = '\0';
  return 0;
}

void wh_pg_rollback(wh_pg_t *pg) {
  if (pg->conn && PQtransactionStatus(pg->conn) != PQTRANS_IDLE) wh_pg_exec(pg, "ROLLBACK");
}

int wh_pg_broken(wh_pg_t *pg) {
  return !pg->conn || pg->broken || PQstatus(pg->conn) != CONNECTION_OK;
}

static PGresult *s_check(wh_pg_t *pg, PGresult *r, const char *what) {
  if (s_ok(r)) return r;
  s_failed(pg, r);
  wh_error("%s failed: %s", what, pg->conn ? PQerrorMessage(pg->conn) : "no connection");
  if (!pg->conn || PQstatus(pg->conn) != CONNECTION_OK) pg->broken = 1;
  PQclear(r);
  return NULL;
}

static int s_prepare(wh_pg_t *pg, const wh_stmt_t *st) {
  for (int i = 0; i < pg->nprepared; i++)
    if (pg->prepared[i] == st) return 0;
  PGresult *r = s_check(pg, PQprepare(pg->conn, st->name, st->sql, 0, NULL), st->name);
  if (!r) return WH_EDB;
  PQclear(r);
  if (pg->nprepared < (int)(sizeof pg->prepared / sizeof pg->prepared[0])) {
    pg->prepared[pg->nprepared++] = st;
    return 0;
  }
  wh_warn("too many prepared statements; %s is re-prepared per use", st->name);
  return 1;
}

static PGresult *s_run(wh_pg_t *pg, const wh_stmt_t *st, int nparams, const char *const *values,
                       const int *lengths, const int *formats, int binary) {
  if (!pg->conn || pg->broken) return NULL;
  int temporary = s_prepare(pg, st);
  if (temporary < 0) return NULL;
  PGresult *r = PQexecPrepared(pg->conn, st->name, nparams, values, lengths, formats, binary);
  PGresult *ok = s_check(pg, r, st->name);
  if (temporary) { /* not cached: drop it so the next use can prepare anew */
    char sql[160];
    snprintf(sql, sizeof sql, "DEALLOCATE %s", st->name);
    wh_pg_exec(pg, sql);
  }
  return ok;
}

PGresult *wh_pg_run(wh_pg_t *pg, const wh_stmt_t *st, int nparams, const char *const *values,
                    const int *lengths, const int *formats) {
  return s_run(pg, st, nparams, values, lengths, formats, 0);
}

PGresult *wh_pg_run_binary(wh_pg_t *pg, const wh_stmt_t *st, int nparams,
                           const char *const *values) {
  return s_run(pg, st, nparams, values, NULL, NULL, 1);
}

uint64_t wh_pg_get_u64(const PGresult *r, int row, int col) {
  const unsigned char *p = (const unsigned char *)PQgetvalue(r, row, col);
  if (PQgetlength(r, row, col) != 8) return 0;
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = v << 8 | p[i];
  return v;
}


int64_t wh_pg_get_time_ms(const PGresult *r, int row, int col) {
  if (PQgetlength(r, row, col) != 8) return 0;
  int64_t us = (int64_t)wh_pg_get_u64(r, row, col) + WH_PG_EPOCH_US;
  return us >= 0 ? us / 1000 : -((-us + 999) / 1000);
}

double wh_pg_get_f64(const PGresult *r, int row, int col) {
  uint64_t bits = wh_pg_get_u64(r, row, col);
  double v;
  if (PQgetlength(r, row, col) != 8) return NAN;
  memcpy(&v, &bits, sizeof v);
  return v;
}

static uint32_t s_get_be32(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Walks a binary one-dimensional array: its header (dimensions, a flag
 * for NULLs, the element type; then size and lower bound per dimension),
 * then each element as a length and its bytes. Calls each(i, bytes, n) for
 * every element; returns the count, or -1 when malformed or each refuses. */
static int s_array_each(const PGresult *r, int row, int col, int max,
                        int (*each)(void *arg, int i, const unsigned char *p, uint32_t n),
                        void *arg) {
  if (PQgetisnull(r, row, col) || PQfformat(r, col) != 1) return -1;
  const unsigned char *p = (const unsigned char *)PQgetvalue(r, row, col);
  size_t len = (size_t)PQgetlength(r, row, col);
  if (len < 12) return -1;
  uint32_t ndim = s_get_be32(p);
  if (ndim == 0) return 0;
  if (ndim != 1 || len < 20) return -1;
  uint32_t count = s_get_be32(p + 12);
  if (count > (uint32_t)max) return -1;
  size_t at = 20;
  for (uint32_t i = 0; i < count; i++) {
    if (len - at < 4) return -1;
    uint32_t n = s_get_be32(p + at);
    at += 4;
    if (n == UINT32_MAX || n > len - at) return -1; /* a NULL element, or cut short */
    if (each(arg, (int)i, p + at, n)) return -1;
    at += n;
  }
  return at == len ? (int)count : -1;
}

typedef struct {
  char **items;
  char *buf;
  size_t len, used;
} s_texts_t;

static int s_text_each(void *arg, int i, const unsigned char *p, uint32_t n) {
  s_texts_t *t = arg;
  if (t->len - t->used < (size_t)n + 1) return -1;
  t->items[i] = t->buf + t->used;
  memcpy(t->items[i], p, n);
  t->items[i][n] = '\0';
  t->used += (size_t)n + 1;
  return 0;
}

int wh_pg_get_texts(const PGresult *r, int row, int col, char **items, int max, char *buf,
                    size_t len) {
  s_texts_t t = {items, buf, len, 0};
  return s_array_each(r, row, col, max, s_text_each, &t);
}

static int s_int_each(void *arg, int i, const unsigned char *p, uint32_t n) {
  if (n != 8) return -1;
  uint64_t v = 0;
  for (int k = 0; k < 8; k++) v = v << 8 | p[k];
  ((int64_t *)arg)[i] = (int64_t)v;
  return 0;
}

int wh_pg_get_ints(const PGresult *r, int row, int col, int64_t *items, int max) {
  return s_array_each(r, row, col, max, s_int_each, items);
}

PGresult *wh_pg_query(wh_pg_t *pg, const char *sql, int nparams, const char *const *values) {
  if (!pg->conn || pg->broken) return NULL;
  PGresult *r = PQexecParams(pg->conn, sql, nparams, NULL, values, NULL, NULL, 0);
  return s_check(pg, r, "query");
}

PGresult *wh_rows_run(wh_pg_t *pg, const wh_stmt_t *st, wh_rows_t *r, int nextra,
                      const char *const *extra) {
  if (r->oom || r->nrows == 0) {
    wh_error("%s: %s", st->name, r->oom ? "its rows could not be gathered" : "no rows");
    return NULL;
  }
  const char *v[WH_ROWS_MAXCOLS + 4];
  int len[WH_ROWS_MAXCOLS + 4], fmt[WH_ROWS_MAXCOLS + 4], np = wh_rows_nparams(r);
  if (!pg->conn || pg->broken || wh_rows_ready(r, pg->conn, pg->conn_no) ||
      np + nextra > (int)(sizeof v / sizeof *v) || wh_rows_close(r, v, len, fmt))
    return NULL;
  for (int i = 0; i < nextra; i++) {
    v[np + i] = extra[i];
    len[np + i] = fmt[np + i] = 0;
  }
  return wh_pg_run(pg, st, np + nextra, v, len, fmt);
}

/* ---- many statements, one round trip ---------------------------------- */

/* Writes what libpq holds, reading answers meanwhile so that neither side
 * waits on a full socket. */
static int s_flush_all(PGconn *conn) {
  for (;;) {
    int rc = PQflush(conn);
    if (rc <= 0) return rc;
    struct pollfd pfd = {.fd = PQsocket(conn), .events = POLLIN | POLLOUT};
    if (poll(&pfd, 1, 10000) < 0 && errno != EINTR) return -1;
    if ((pfd.revents & POLLIN) && !PQconsumeInput(conn)) return -1;
  }
}

/* A pipeline's BEGIN and COMMIT, prepared like its steps: sent as text,
 * each was parsed and planned anew, at every transaction. */
static const wh_stmt_t s_begin = {"wh_begin", "BEGIN"};
static const wh_stmt_t s_commit = {"wh_commit", "COMMIT"};
static const wh_stmt_t s_lazily = {"wh_commit_lazily", "SET LOCAL synchronous_commit = off"};

int wh_pg_pipeline(wh_pg_t *pg, int begin, wh_pg_step_t *steps, int nsteps, int commit) {
  if (!pg->conn || pg->broken || nsteps > WH_PIPELINE_MAX - 3) return WH_EDB;
  pg->sqlstate[0] = '\0';
  pg->why[0] = '\0';
  if ((begin && s_prepare(pg, &s_begin)) || (commit && s_prepare(pg, &s_commit)) ||
      (commit == WH_PG_COMMIT_LAZILY && s_prepare(pg, &s_lazily)))
    return WH_EDB;
  /* Statements are prepared outside the pipeline, once per connection. */
  const char *v[WH_ROWS_MAXCOLS + 4];
  int len[WH_ROWS_MAXCOLS + 4], fmt[WH_ROWS_MAXCOLS + 4];
  for (int i = 0; i < nsteps; i++)
    if (steps[i].rows && steps[i].rows->nrows &&
        (steps[i].rows->oom || s_prepare(pg, steps[i].st) != 0 ||
         wh_rows_ready(steps[i].rows, pg->conn, pg->conn_no)))
      return WH_EDB;
  PGconn *c = pg->conn;
  if (PQsetnonblocking(c, 1) || !PQenterPipelineMode(c)) {
    PQsetnonblocking(c, 0);
    return WH_EDB;
  }
  int ok = 1, expect[WH_PIPELINE_MAX], nexp = 0;
  if (begin) {
    ok &= PQsendQueryPrepared(c, s_begin.name, 0, NULL, NULL, NULL, 0);
    expect[nexp++] = -1;
  }
  for (int i = 0; i < nsteps && ok; i++) {
    wh_rows_t *r = steps[i].rows;
    if (!r || !r->nrows) continue;
    int nr = wh_rows_nparams(r);
    if (nr + steps[i].nextra > (int)(sizeof v / sizeof *v)) {
      ok = 0;
      break;
    }
    if (wh_rows_close(r, v, len, fmt)) {
      ok = 0;
      break;
    }
    for (int k = 0; k < steps[i].nextra; k++) {
      v[nr + k] = steps[i].extra[k];
      len[nr + k] = fmt[nr + k] = 0;
    }
    const wh_stmt_t *st = steps[i].st;
    int np = nr + steps[i].nextra;
    ok &= PQsendQueryPrepared(c, st->name, np, v, len, fmt, 0);
    expect[nexp++] = i;
  }
  if (ok && commit == WH_PG_COMMIT_LAZILY) {
    ok &= PQsendQueryPrepared(c, s_lazily.name, 0, NULL, NULL, NULL, 0);
    expect[nexp++] = -1;
  }
  if (ok && commit) {
    ok &= PQsendQueryPrepared(c, s_commit.name, 0, NULL, NULL, NULL, 0);
    expect[nexp++] = -1;
  }
  ok &= PQpipelineSync(c) && s_flush_all(c) == 0;
  /* Read every answer, up to the sync, whatever happened. */
  int failed = !ok;
  for (int e = 0; e < nexp && ok; e++) {
    PGresult *r = PQgetResult(c);
    if (!r) {
      failed = 1;
      break;
    }
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
      if (expect[e] >= 0 && steps[expect[e]].on_result) steps[expect[e]].on_result(steps[expect[e]].arg, r);
    } else {
      if (!failed && st != PGRES_PIPELINE_ABORTED) {
        s_failed(pg, r);
        if (expect[e] >= 0 && steps[expect[e]].quiet)
          wh_debug("%s failed: %s", steps[expect[e]].st->name, PQresultErrorMessage(r));
        else
          wh_error("%s failed: %s", expect[e] >= 0 ? steps[expect[e]].st->name : "pipeline",
                   PQresultErrorMessage(r));
      }
      failed = 1;
    }
    PQclear(r);
    while ((r = PQgetResult(c))) PQclear(r); /* the NULL that ends each answer */
  }
  for (PGresult *r; ok && (r = PQgetResult(c));) { /* the sync */
    int sync = PQresultStatus(r) == PGRES_PIPELINE_SYNC;
    PQclear(r);
    if (sync) break;
  }
  if (!PQexitPipelineMode(c)) failed = 1;
  PQsetnonblocking(c, 0);
  if (PQstatus(c) != CONNECTION_OK) {
    pg->broken = 1;
    return WH_EDB;
  }
  if (failed) {
    if (!ok) {
      wh_error("pipeline failed: %s", PQerrorMessage(c));
      pg->broken = 1; /* the connection's state is unknown: start afresh */
      return WH_EDB;
    }
    wh_pg_rollback(pg);
    return WH_EDB;
  }
  return 0;
}

int wh_pg_run_lazily(wh_pg_t *pg, const wh_stmt_t *st, wh_rows_t *rows, int nextra,
                     const char *const *extra) {
  if (!rows->nrows) return 0;
  wh_pg_step_t step = {.st = st, .rows = rows, .nextra = nextra, .extra = extra};
  return wh_pg_pipeline(pg, 1, &step, 1, WH_PG_COMMIT_LAZILY);
}
