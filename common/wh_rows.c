/* wh_rows - many rows gathered for one statement, as PostgreSQL's binary
 * arrays (or one array of a composite type). */
#include "wh_pg.h"
#include "wh_err.h"
#include "wh_log.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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
  if (ncols > WH_ROWS_MAXCOLS) wh_error("rows of %d columns: at most %d", ncols, WH_ROWS_MAXCOLS);
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
                     : *ms * 1000 - WH_PG_EPOCH_US;
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
int wh_rows_nparams(const wh_rows_t *r) { return r->record ? 1 : r->ncols; }

/* Record mode: looks up the composite type's oid on this connection, once. */
int wh_rows_ready(wh_rows_t *r, PGconn *conn, unsigned long conn_no) {
  if (!r->record || (r->record_oid && r->record_conn == conn_no)) return 0;
  const char *v[1] = {r->record};
  PGresult *res = PQexecParams(conn, "SELECT to_regtype($1)::oid", 1, NULL, v, NULL, NULL, 0);
  unsigned oid = 0;
  if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
    oid = (unsigned)strtoul(PQgetvalue(res, 0, 0), NULL, 10);
  else if (PQresultStatus(res) != PGRES_TUPLES_OK)
    wh_error("database: %s", PQresultErrorMessage(res));
  PQclear(res);
  if (!oid) {
    wh_error("the database has no type %s", r->record);
    return -1;
  }
  r->record_oid = oid;
  r->record_conn = conn_no;
  return 0;
}

/* Fills every column's header and points v, len and fmt at them. Every
 * column must hold nrows elements. Returns 0, or -1 when one does not. */
int wh_rows_close(wh_rows_t *r, const char **v, int *len, int *fmt) {
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
