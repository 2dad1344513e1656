/* wh_pg - one service's connection to its own PostgreSQL database.
 *
 * Connecting applies the service's versioned migrations (under an advisory
 * lock, so two starting processes do not race) and prepares every statement
 * the service registered; a lost connection is re-established, with the same
 * preparation, on the next wh_pg_ready(). A handle with migrations is its
 * database's one writer: its session holds an advisory lock, and a second
 * such handle on the same database waits (wh_pg_ready fails, retrying) until
 * the first lets go. Parameters are always passed separately from SQL text. */
#ifndef WH_PG_H
#define WH_PG_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
  const char *name;   /* e.g. "001_init" */
  const char *sql;
} wh_migration_t;

typedef struct {
  const char *name;   /* prepared statement name */
  const char *sql;
} wh_stmt_t;

typedef struct wh_pg_s wh_pg_t;

/* Creates a handle for conninfo; does not connect yet. The NULL-terminated
 * migration list is borrowed and must outlive the handle. */
wh_pg_t *wh_pg_new(const char *conninfo, const wh_migration_t *const *migrations);
void wh_pg_destroy(wh_pg_t **self_p);
/* Settings every new connection starts with, as libpq's options give them
 * ("-c x=y -c z=w"), after any the conninfo names. options is borrowed and
 * must outlive the handle. */
void wh_pg_set_session(wh_pg_t *pg, const char *options);
/* Connects (migrating and preparing) if not connected. Returns 0 or WH_EDB. */
int wh_pg_ready(wh_pg_t *pg);
/* Returns the live connection (borrowed), or NULL when down. */
PGconn *wh_pg_conn(wh_pg_t *pg);
/* Runs a statement without parameters; returns 0 or WH_EDB (logged). */
int wh_pg_exec(wh_pg_t *pg, const char *sql);
/* Runs statement st, preparing it on this connection the first time (a
 * statement is known by its address, so it must be static). Parameters are
 * text unless formats[i] is 1 (binary); lengths/formats may be NULL. Returns
 * the result (caller PQclears) when it is COMMAND_OK or TUPLES_OK, else logs,
 * clears and returns NULL; a broken connection is marked for reconnect. */
PGresult *wh_pg_run(wh_pg_t *pg, const wh_stmt_t *st, int nparams, const char *const *values,
                    const int *lengths, const int *formats);
/* Like wh_pg_run with text parameters, but the result comes in binary:
 * bytea as its raw bytes (no hex to encode and decode), bigint as 8 bytes
 * in network order (wh_pg_get_u64). */
PGresult *wh_pg_run_binary(wh_pg_t *pg, const wh_stmt_t *st, int nparams,
                           const char *const *values);
/* A bigint from a binary result; 0 when the field is not 8 bytes. */
uint64_t wh_pg_get_u64(const PGresult *r, int row, int col);
/* A timestamptz from a binary result, in ms since the epoch (rounded
 * down); 0 when the field is not 8 bytes. */
int64_t wh_pg_get_time_ms(const PGresult *r, int row, int col);
/* A float8 from a binary result; NaN when the field is not 8 bytes. */
double wh_pg_get_f64(const PGresult *r, int row, int col);
/* The elements of a one-dimensional text[] in a binary result: each is
 * copied, NUL-terminated, into buf (len bytes), and items[i] points at it.
 * Returns how many (an empty array has none), or -1 when the field is not
 * such an array, holds a NULL, or does not fit max items or len bytes. */
int wh_pg_get_texts(const PGresult *r, int row, int col, char **items, int max, char *buf,
                    size_t len);
/* The same for a bigint[]. */
int wh_pg_get_ints(const PGresult *r, int row, int col, int64_t *items, int max);
/* Like wh_pg_run for ad-hoc SQL with parameters (used by the ctl and tests). */
PGresult *wh_pg_query(wh_pg_t *pg, const char *sql, int nparams, const char *const *values);
/* Writes items as a Postgres text[] literal ({"a","b"}, each quoted and
 * escaped) into out, to be passed as one parameter cast to text[]. Returns
 * 0, or WH_ETOOLONG when out is too small. */
int wh_pg_text_array(char *const *items, size_t n, char *out, size_t len);
/* Rolls back the open transaction, if there is one (a failed pipeline may
 * already have ended it). */
void wh_pg_rollback(wh_pg_t *pg);
/* 1 if the last failure broke the connection (so retrying may help). */
int wh_pg_broken(wh_pg_t *pg);
/* 1 if the statement that failed last was refused for what it was given: a
 * data exception or an integrity constraint violation (SQLSTATE classes 22
 * and 23), which the same input meets every time. Any other failure (the
 * server out of space or read-only, a timeout, a lock, a statement this
 * build got wrong) may pass another time, or after a fix. */
int wh_pg_refused(const wh_pg_t *pg);
/* What the database said of the statement that failed last: its primary
 * message (which names a constraint, never the row's values), or "". */
const char *wh_pg_why(const wh_pg_t *pg);

/* ---- many rows, one statement ----------------------------------------
 * A batch's rows for one table are gathered column by column into arrays
 * and written by one statement that unnests them in its select list
 * ("INSERT ... SELECT * FROM (SELECT unnest($1::text[]) AS a,
 * unnest($2::bigint[]) AS b, ...) x"): the database parses, plans and
 * executes once per batch, not once per row. In the select list the arrays
 * are walked in step, row by row, in array order; in FROM
 * (unnest($1, $2, ...)) each array was first copied into a tuplestore of
 * its own, a tenth of the database's CPU under load.
 * Each array goes in PostgreSQL's binary form (a header, then each element's
 * length and bytes): nothing is quoted, escaped or hex-encoded here, and
 * nothing parsed there. A column's parameter must be cast to the array of
 * its element type: text[] (wh_rows_text), bigint[] (wh_rows_int), bytea[],
 * float8[] or boolean[]. The buffers keep their memory between batches. */
#define WH_ROWS_MAXCOLS 32
/* PostgreSQL counts time from 2000-01-01; Unix from 1970-01-01 (in µs). */
#define WH_PG_EPOCH_US INT64_C(946684800000000)

typedef struct {
  char *buf;
  size_t len, cap;
} wh_sbuf_t;

/* Appends n bytes to b, growing it, and keeps a NUL after them. Returns 0,
 * or WH_ENOMEM (b unchanged). */
int wh_sbuf_put(wh_sbuf_t *b, const void *p, size_t n);

typedef struct {
  wh_sbuf_t col[WH_ROWS_MAXCOLS];
  unsigned type[WH_ROWS_MAXCOLS]; /* element type oid, from the first value */
  unsigned char nulls[WH_ROWS_MAXCOLS];
  int ncols;
  int nrows; /* rows begun with wh_rows_next */
  int oom;   /* an append failed, or a column mixed types: running refuses */
  /* Record mode (wh_rows_init_record): every row is one element of an array
   * of a composite type, all in col[0]. */
  const char *record;  /* the composite type's name, or NULL */
  unsigned record_oid; /* its oid, looked up on the connection of record_conn */
  unsigned long record_conn;
  size_t row_at;       /* where the current row's length goes */
  int next_col;        /* the column the current row takes next */
} wh_rows_t;

void wh_rows_init(wh_rows_t *r, int ncols);
/* Record mode: the rows go as ONE parameter, an array of the composite type
 * named type (which the service's migrations create, its fields in column
 * order), to be read as "INSERT ... SELECT r.a, r.b, ... FROM
 * unnest($1::type[]) AS r". Unnesting one array in FROM costs the database
 * about half of what walking one array per column in the select list does
 * (measured: 3.4-5 against 6.5 us a row of 17 columns). Columns must be
 * given in order, each exactly once per row; a column may also be an array
 * (wh_rows_texts, wh_rows_ints), sent in binary where a text literal had to
 * be parsed. The type's oid is looked up once per connection. */
void wh_rows_init_record(wh_rows_t *r, int ncols, const char *type);
void wh_rows_reset(wh_rows_t *r);
void wh_rows_free(wh_rows_t *r);
/* Begins a row; every column must then be given exactly once. */
void wh_rows_next(wh_rows_t *r);
void wh_rows_text(wh_rows_t *r, int col, const char *s); /* NULL: SQL NULL */
void wh_rows_int(wh_rows_t *r, int col, int64_t v);
void wh_rows_bytes(wh_rows_t *r, int col, const void *p, size_t n); /* bytea; p NULL: NULL */
void wh_rows_float(wh_rows_t *r, int col, const double *v); /* NULL: SQL NULL */
void wh_rows_bool(wh_rows_t *r, int col, int v);
/* A moment in ms since the epoch, as timestamptz; NULL: SQL NULL. */
void wh_rows_time(wh_rows_t *r, int col, const int64_t *ms);
/* Record mode only: a text[] or bigint[] of n items (at most 64) as one
 * column. */
void wh_rows_texts(wh_rows_t *r, int col, const char *const *items, size_t n);
void wh_rows_ints(wh_rows_t *r, int col, const int64_t *items, size_t n);
/* Between wh_pg and wh_rows (wh_rows.c), not for services: the parameters
 * rows take (one in record mode, else one per column); the composite
 * type's oid looked up on conn (connection number conn_no) once, 0 or -1;
 * every column's header filled and v, len, fmt pointed at them, 0 or -1
 * when a column does not hold a value for every row. */
int wh_rows_nparams(const wh_rows_t *r);
int wh_rows_ready(wh_rows_t *r, PGconn *conn, unsigned long conn_no);
int wh_rows_close(wh_rows_t *r, const char **v, int *len, int *fmt);
/* Runs st with column i as parameter $i+1 (a binary array), followed by
 * nextra further text parameters. Returns as wh_pg_run does (NULL on any
 * failure, out of memory included). Call it with at least one row. */
PGresult *wh_rows_run(wh_pg_t *pg, const wh_stmt_t *st, wh_rows_t *r, int nextra,
                      const char *const *extra);

/* ---- many statements, one round trip ---------------------------------
 * A step is one statement whose parameters are a wh_rows_t (plus extra
 * text parameters); a step without rows is skipped. wh_pg_pipeline sends
 * BEGIN when begin is set, the steps, and COMMIT when commit is
 * set, back to back in libpq's pipeline mode, then reads every answer: one
 * round trip instead of one per statement. Each step's result goes to its
 * on_result (may be NULL) in order. Returns 0 when every statement
 * succeeded; otherwise WH_EDB, and an open transaction was rolled back. */
typedef struct {
  const wh_stmt_t *st;
  wh_rows_t *rows;
  int nextra;
  const char *const *extra;
  void (*on_result)(void *arg, const PGresult *res);
  void *arg;
  int quiet; /* its failure is expected at times (a key already taken) and
                handled by the caller: logged at debug level, not as an error */
} wh_pg_step_t;

/* commit: what ends the pipeline. WH_PG_COMMIT_LAZILY commits without
 * waiting for the disk (synchronous_commit off for that transaction): for
 * bookkeeping whose loss in a crash only means some work is done again (a
 * resend the receiver absorbs, a reporter message written twice). */
enum { WH_PG_OPEN = 0, WH_PG_COMMIT = 1, WH_PG_COMMIT_LAZILY = 2 };

int wh_pg_pipeline(wh_pg_t *pg, int begin, wh_pg_step_t *steps, int nsteps, int commit);
/* Runs st with rows (and extra) as a transaction of its own, committed
 * lazily: BEGIN, the statement and COMMIT in one round trip. Returns 0 or
 * WH_EDB (rolled back); 0 at once when rows is empty. */
int wh_pg_run_lazily(wh_pg_t *pg, const wh_stmt_t *st, wh_rows_t *rows, int nextra,
                     const char *const *extra);

#endif
