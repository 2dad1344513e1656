/* wh_pg - connect, migrate, prepare, reconnect. */
#include "wh_pg.h"
#include "wh_err.h"
#include "wh_log.h"

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
  snprintf(pg->sqlstate, sizeof pg->sqlstate, "%s", code ? code : "");
}

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
    if (conn) PQsetNoticeProcessor(conn, s_notice, NULL);
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

/* Microseconds from the Unix epoch to PostgreSQL's (2000-01-01 UTC). */
#define s_PG_EPOCH_US INT64_C(946684800000000)

int64_t wh_pg_get_time_ms(const PGresult *r, int row, int col) {
  if (PQgetlength(r, row, col) != 8) return 0;
  int64_t us = (int64_t)wh_pg_get_u64(r, row, col) + s_PG_EPOCH_US;
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

int wh_sbuf_put(wh_sbuf_t *b, const void *p, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 1024;
    while (b->len + n + 1 > cap) cap *= 2;
    char *nb = realloc(b->buf, cap);
    if (!nb) return WH_ENOMEM;
    b->buf = nb;
    b->cap = cap;
  }
  memcpy(b->buf + b->len, p, n);
  b->len += n;
  b->buf[b->len] = '\0';
  return 0;
}

/* ---- many rows, one statement ------------------------------------------ */

/* Makes room for n more bytes (and a NUL); 0, or -1 with r->oom set. */
static int s_reserve(wh_rows_t *r, wh_sbuf_t *b, size_t n) {
  if (b->len + n + 2 <= b->cap) return 0;
  size_t cap = b->cap ? b->cap : 256;
  while (b->len + n + 2 > cap) cap *= 2;
  char *nb = realloc(b->buf, cap);
  if (!nb) {
    r->oom = 1;
    return -1;
  }
  b->buf = nb;
  b->cap = cap;
  return 0;
}

void wh_rows_init(wh_rows_t *r, int ncols) {
  memset(r, 0, sizeof *r);
  r->ncols = ncols < WH_ROWS_MAXCOLS ? ncols : WH_ROWS_MAXCOLS;
}

void wh_rows_init_record(wh_rows_t *r, int ncols, const char *type) {
  wh_rows_init(r, ncols);
  r->record = type;
}

void wh_rows_reset(wh_rows_t *r) {
  for (int i = 0; i < r->ncols; i++) {
    r->col[i].len = 0;
    r->type[i] = 0;
    r->nulls[i] = 0;
  }
  r->nrows = 0;
  r->oom = 0;
  r->next_col = 0;
}

void wh_rows_free(wh_rows_t *r) {
  for (int i = 0; i < WH_ROWS_MAXCOLS; i++) free(r->col[i].buf);
  memset(r, 0, sizeof *r);
}

/* Element type oids (pg_type.h), as array_recv and record_recv check them. */
enum {
  s_BOOL = 16, s_BYTEA = 17, s_INT8 = 20, s_TEXT = 25, s_FLOAT8 = 701, s_TEXT_ARRAY = 1009,
  s_INT8_ARRAY = 1016, s_TIMESTAMPTZ = 1184
};
/* The array header: ndim, flags (has nulls), element type, length, lower
 * bound; filled in when the rows are sent. */
#define s_HEADER 20

static void s_be32(unsigned char *o, uint32_t v) {
  for (int i = 3; i >= 0; i--, v >>= 8) o[i] = (unsigned char)v;
}

static void s_be64(unsigned char *o, uint64_t v) {
  for (int i = 7; i >= 0; i--, v >>= 8) o[i] = (unsigned char)v;
}

/* Record mode: the row just gathered gets its length, once it has every
 * column. */
static void s_row_end(wh_rows_t *r) {
  if (!r->nrows) return;
  wh_sbuf_t *b = &r->col[0];
  if (r->next_col != r->ncols) {
    wh_error("row %d of %s has %d of its %d columns", r->nrows, r->record, r->next_col, r->ncols);
    r->oom = 1;
    return;
  }
  if (r->oom) return;
  s_be32((unsigned char *)b->buf + r->row_at, (uint32_t)(b->len - r->row_at - 4));
}

void wh_rows_next(wh_rows_t *r) {
  if (r->record) {
    /* An element: its length, then the record's column count. */
    s_row_end(r);
    wh_sbuf_t *b = &r->col[0];
    if (s_reserve(r, b, (b->len ? 0 : s_HEADER) + 8)) return;
    if (b->len == 0) b->len = s_HEADER;
    r->row_at = b->len;
    s_be32((unsigned char *)b->buf + b->len + 4, (uint32_t)r->ncols);
    b->len += 8;
    r->next_col = 0;
  }
  r->nrows++;
}

/* Appends one element of col: its length (-1 for NULL, p then unused) and
 * its n bytes; in record mode a field, its type first. The first element
 * also makes room for the header. */
static void s_elem(wh_rows_t *r, int col, unsigned type, const void *p, int64_t n) {
  if (col < 0 || col >= r->ncols || (r->record && col != r->next_col)) {
    wh_error("%s: column %d given out of order", r->record ? r->record : "rows", col);
    r->oom = 1;
    return;
  }
  wh_sbuf_t *b = &r->col[r->record ? 0 : col];
  if (r->type[col] && r->type[col] != type) {
    wh_error("column %d given two types (%u, %u)", col, r->type[col], type);
    r->oom = 1;
    return;
  }
  r->type[col] = type;
  size_t need = (b->len ? 0 : s_HEADER) + (r->record ? 8 : 4) + (n > 0 ? (size_t)n : 0);
  if (n > INT32_MAX || s_reserve(r, b, need)) {
    r->oom = 1;
    return;
  }
  if (b->len == 0) b->len = s_HEADER;
  unsigned char *o = (unsigned char *)b->buf + b->len;
  if (r->record) {
    s_be32(o, type);
    o += 4;
    b->len += 4;
    r->next_col++;
  }
  s_be32(o, n < 0 ? UINT32_MAX : (uint32_t)n);
  if (n > 0) memcpy(o + 4, p, (size_t)n);
  b->len += 4 + (n > 0 ? (size_t)n : 0);
  if (n < 0) r->nulls[col] = 1;
}


void wh_rows_time(wh_rows_t *r, int col, const int64_t *ms) {
  unsigned char o[8];
  if (ms) {
    /* A time too far off to convert goes as one PostgreSQL refuses (past
     * its last timestamp, short of infinity): a data exception, like any
     * other time out of its range. */
    int64_t us = *ms > INT64_C(9000000000000000) || *ms < -INT64_C(9000000000000000)
                     ? INT64_MAX - 1
                     : *ms * 1000 - s_PG_EPOCH_US;
    s_be64(o, (uint64_t)us);
  }
  s_elem(r, col, s_TIMESTAMPTZ, o, ms ? 8 : -1);
}

/* A one-dimensional binary array of n elements of type elem, as one field
 * of a record: the header, then each element's length and bytes. */
static void s_array_field(wh_rows_t *r, int col, unsigned type, unsigned elem,
                          const void *const *items, const size_t *lens, size_t n) {
  if (!r->record) {
    wh_error("column %d: arrays of arrays need record mode", col);
    r->oom = 1;
    return;
  }
  size_t total = n ? s_HEADER : 12;
  for (size_t i = 0; i < n; i++) total += 4 + lens[i];
  if (total > INT32_MAX || n > INT32_MAX) {
    r->oom = 1;
    return;
  }
  /* The field is written in place: its header first, then the elements. */
  s_elem(r, col, type, NULL, 0);
  wh_sbuf_t *b = &r->col[0];
  if (r->oom || s_reserve(r, b, total)) return;
  unsigned char *o = (unsigned char *)b->buf + b->len;
  s_be32(o - 4, (uint32_t)total);
  s_be32(o, n ? 1 : 0); /* an empty array has no dimensions */
  s_be32(o + 4, 0);
  s_be32(o + 8, elem);
  size_t at = 12;
  if (n) {
    s_be32(o + 12, (uint32_t)n);
    s_be32(o + 16, 1);
    at = s_HEADER;
  }
  for (size_t i = 0; i < n; i++) {
    s_be32(o + at, (uint32_t)lens[i]);
    memcpy(o + at + 4, items[i], lens[i]);
    at += 4 + lens[i];
  }
  b->len += total;
}

/* The items one array field may hold. */
#define s_MAX_ITEMS 64

static int s_items_fit(wh_rows_t *r, int col, size_t n) {
  if (n <= s_MAX_ITEMS) return 1;
  wh_error("column %d: %zu items, at most %d", col, n, s_MAX_ITEMS);
  r->oom = 1;
  return 0;
}

void wh_rows_texts(wh_rows_t *r, int col, const char *const *items, size_t n) {
  const void *p[s_MAX_ITEMS];
  size_t l[s_MAX_ITEMS];
  if (!s_items_fit(r, col, n)) return;
  for (size_t i = 0; i < n; i++) {
    p[i] = items[i];
    l[i] = strlen(items[i]);
  }
  s_array_field(r, col, s_TEXT_ARRAY, s_TEXT, p, l, n);
}

void wh_rows_ints(wh_rows_t *r, int col, const int64_t *items, size_t n) {
  unsigned char v[s_MAX_ITEMS][8];
  const void *p[s_MAX_ITEMS];
  size_t l[s_MAX_ITEMS];
  if (!s_items_fit(r, col, n)) return;
  for (size_t i = 0; i < n; i++) {
    s_be64(v[i], (uint64_t)items[i]);
    p[i] = v[i];
    l[i] = 8;
  }
  s_array_field(r, col, s_INT8_ARRAY, s_INT8, p, l, n);
}

void wh_rows_text(wh_rows_t *r, int col, const char *s) {
  s_elem(r, col, s_TEXT, s, s ? (int64_t)strlen(s) : -1);
}

void wh_rows_int(wh_rows_t *r, int col, int64_t v) {
  unsigned char o[8];
  s_be64(o, (uint64_t)v);
  s_elem(r, col, s_INT8, o, 8);
}

void wh_rows_bytes(wh_rows_t *r, int col, const void *p, size_t n) {
  s_elem(r, col, s_BYTEA, p, p ? (int64_t)n : -1);
}

void wh_rows_float(wh_rows_t *r, int col, const double *v) {
  unsigned char o[8];
  uint64_t bits = 0;
  if (v) memcpy(&bits, v, sizeof bits);
  s_be64(o, bits);
  s_elem(r, col, s_FLOAT8, o, v ? 8 : -1);
}

void wh_rows_bool(wh_rows_t *r, int col, int v) {
  unsigned char o = v ? 1 : 0;
  s_elem(r, col, s_BOOL, &o, 1);
}

/* The parameters rows take: one in record mode, else one per column. */
static int s_rows_params(const wh_rows_t *r) { return r->record ? 1 : r->ncols; }

/* Record mode: looks up the composite type's oid on this connection, once. */
static int s_rows_ready(wh_pg_t *pg, wh_rows_t *r) {
  if (!r->record || (r->record_oid && r->record_conn == pg->conn_no)) return 0;
  const char *v[1] = {r->record};
  PGresult *res = PQexecParams(pg->conn, "SELECT to_regtype($1)::oid", 1, NULL, v, NULL, NULL, 0);
  unsigned oid = 0;
  if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
    oid = (unsigned)strtoul(PQgetvalue(res, 0, 0), NULL, 10);
  else if (PQresultStatus(res) != PGRES_TUPLES_OK)
    s_failed(pg, res);
  PQclear(res);
  if (!oid) {
    wh_error("the database has no type %s", r->record);
    return -1;
  }
  r->record_oid = oid;
  r->record_conn = pg->conn_no;
  return 0;
}

/* Fills every column's header and points v, len and fmt at them. Every
 * column must hold nrows elements. Returns 0, or -1 when one does not. */
static int s_rows_close(wh_rows_t *r, const char **v, int *len, int *fmt) {
  if (r->record) {
    s_row_end(r);
    wh_sbuf_t *b = &r->col[0];
    if (r->oom || b->len < s_HEADER) return -1;
    unsigned char *h = (unsigned char *)b->buf;
    s_be32(h, 1);
    s_be32(h + 4, 0);
    s_be32(h + 8, r->record_oid);
    s_be32(h + 12, (uint32_t)r->nrows);
    s_be32(h + 16, 1);
    v[0] = b->buf;
    len[0] = (int)b->len;
    fmt[0] = 1;
    return 0;
  }
  for (int i = 0; i < r->ncols; i++) {
    wh_sbuf_t *b = &r->col[i];
    if (b->len < s_HEADER) {
      wh_error("column %d has no values", i);
      return -1;
    }
    unsigned char *h = (unsigned char *)b->buf;
    s_be32(h, 1);
    s_be32(h + 4, r->nulls[i]);
    s_be32(h + 8, r->type[i]);
    s_be32(h + 12, (uint32_t)r->nrows);
    s_be32(h + 16, 1);
    v[i] = b->buf;
    len[i] = (int)b->len;
    fmt[i] = 1;
  }
  return 0;
}

PGresult *wh_rows_run(wh_pg_t *pg, const wh_stmt_t *st, wh_rows_t *r, int nextra,
                      const char *const *extra) {
  if (r->oom || r->nrows == 0) {
    wh_error("%s: %s", st->name, r->oom ? "its rows could not be gathered" : "no rows");
    return NULL;
  }
  const char *v[WH_ROWS_MAXCOLS + 4];
  int len[WH_ROWS_MAXCOLS + 4], fmt[WH_ROWS_MAXCOLS + 4], np = s_rows_params(r);
  if (!pg->conn || pg->broken || s_rows_ready(pg, r) ||
      np + nextra > (int)(sizeof v / sizeof *v) || s_rows_close(r, v, len, fmt))
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
  if ((begin && s_prepare(pg, &s_begin)) || (commit && s_prepare(pg, &s_commit)) ||
      (commit == WH_PG_COMMIT_LAZILY && s_prepare(pg, &s_lazily)))
    return WH_EDB;
  /* Statements are prepared outside the pipeline, once per connection. */
  const char *v[WH_ROWS_MAXCOLS + 4];
  int len[WH_ROWS_MAXCOLS + 4], fmt[WH_ROWS_MAXCOLS + 4];
  for (int i = 0; i < nsteps; i++)
    if (steps[i].rows && steps[i].rows->nrows &&
        (steps[i].rows->oom || s_prepare(pg, steps[i].st) != 0 ||
         s_rows_ready(pg, steps[i].rows)))
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
    int nr = s_rows_params(r);
    if (nr + steps[i].nextra > (int)(sizeof v / sizeof *v)) {
      ok = 0;
      break;
    }
    if (s_rows_close(r, v, len, fmt)) {
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
