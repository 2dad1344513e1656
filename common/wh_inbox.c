/* wh_inbox - what a receiver has applied, per sender and ticket. */
#include "wh_inbox.h"
#include "wh_err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const wh_stmt_t s_inbox_claim = {
    "wh_inbox_claim",
    "WITH x AS (SELECT unnest($1::text[]) AS source, unnest($2::text[]) AS ticket_id,"
    "   unnest($3::bigint[]) AS seq),"
    " ins AS (INSERT INTO inbox (source, ticket_id, last_seq)"
    "   SELECT DISTINCT source, ticket_id, 1 FROM x WHERE seq = 1"
    "   ON CONFLICT (source, ticket_id) DO NOTHING RETURNING source, ticket_id, last_seq),"
    " upd AS (UPDATE inbox i SET last_seq = x.seq, updated_at = now() FROM x"
    "   WHERE x.seq > 1 AND i.source = x.source AND i.ticket_id = x.ticket_id"
    "   AND i.last_seq = x.seq - 1 RETURNING i.source, i.ticket_id, i.last_seq)"
    " SELECT * FROM ins UNION ALL SELECT * FROM upd"};
static const wh_stmt_t s_inbox_get = {
    "wh_inbox_get", "SELECT last_seq FROM inbox WHERE source = $1 AND ticket_id = $2"};

/* ---- inbox ------------------------------------------------------------- */

typedef struct {
  wh_claim_t *claims;
  int n;
} s_claims_t;

int wh_claim_same(const wh_claim_t *a, const wh_claim_t *b) {
  return a->seq == b->seq && !strcmp(a->ticket_id, b->ticket_id) && !strcmp(a->source, b->source);
}

/* Each returned (source, ticket, seq) was claimed once: it goes to the first
 * message that carries it; a repeat later in the batch was seen. */
static void s_on_claimed(void *arg, const PGresult *res) {
  s_claims_t *cs = arg;
  for (int k = 0, from = 0; k < PQntuples(res); k++) {
    const char *src = PQgetvalue(res, k, 0), *tid = PQgetvalue(res, k, 1);
    uint32_t seq = (uint32_t)strtoul(PQgetvalue(res, k, 2), NULL, 10);
    for (int m = 0; m < cs->n; m++) {
      wh_claim_t *c = &cs->claims[(from + m) % cs->n];
      if (c->claim < 0 && c->seq == seq && !strcmp(c->ticket_id, tid) && !strcmp(c->source, src)) {
        c->claim = WH_INBOX_APPLY;
        from = (int)(c - cs->claims) + 1;
        break;
      }
    }
  }
}

/* The claim when state rows record first messages (ops->first_applied, as
 * `a`): a first message is new unless its ticket is in `a`; a second one
 * starts the ticket's inbox row when the first is in `a`. */
static const char s_claim_first_fmt[] =
    "WITH x AS (SELECT unnest($1::text[]) AS source, unnest($2::text[]) AS ticket_id,"
    "   unnest($3::bigint[]) AS seq),"
    " a AS (%s),"
    " f AS (SELECT DISTINCT source, ticket_id, 1 AS last_seq FROM x"
    "   WHERE seq = 1 AND ticket_id NOT IN (SELECT ticket_id FROM a)),"
    " ins AS (INSERT INTO inbox (source, ticket_id, last_seq)"
    "   SELECT DISTINCT source, ticket_id, 2 FROM x WHERE seq = 2 AND ticket_id IN (SELECT ticket_id FROM a)"
    "   ON CONFLICT (source, ticket_id) DO NOTHING RETURNING source, ticket_id, last_seq),"
    " upd AS (UPDATE inbox i SET last_seq = x.seq, updated_at = now() FROM x"
    "   WHERE x.seq > 1 AND i.source = x.source AND i.ticket_id = x.ticket_id"
    "   AND i.last_seq = x.seq - 1 RETURNING i.source, i.ticket_id, i.last_seq)"
    " SELECT * FROM f UNION ALL SELECT * FROM ins UNION ALL SELECT * FROM upd";
static const char s_first_get_fmt[] = "SELECT 1 FROM (%s) a WHERE ticket_id = $1";

static int s_claim(wh_pg_t *pg, int begin, const wh_stmt_t *st, const wh_stmt_t *get_first,
                   wh_claim_t *claims, int n, wh_pg_step_t *also) {
  if (n <= 0) return 0;
  wh_rows_t rows;
  wh_rows_init(&rows, 3);
  for (int i = 0; i < n; i++) {
    wh_rows_next(&rows);
    wh_rows_text(&rows, 0, claims[i].source);
    wh_rows_text(&rows, 1, claims[i].ticket_id);
    wh_rows_int(&rows, 2, claims[i].seq);
    claims[i].claim = -1;
  }
  s_claims_t cs = {claims, n};
  wh_pg_step_t steps[2] = {{.st = st, .rows = &rows, .on_result = s_on_claimed, .arg = &cs}};
  if (also) steps[1] = *also;
  int rc = wh_pg_pipeline(pg, begin, steps, also ? 2 : 1, 0);
  wh_rows_free(&rows);
  if (rc) return WH_EDB;
  for (int i = 0; i < n; i++) {
    wh_claim_t *c = &claims[i];
    if (c->claim >= 0) continue;
    for (int k = 0; k < i && c->claim < 0; k++) /* a copy of one claimed just now */
      if (claims[k].claim == WH_INBOX_APPLY && wh_claim_same(&claims[k], c)) c->claim = WH_INBOX_SEEN;
    if (c->claim >= 0) continue;
    const char *v[2] = {c->source, c->ticket_id};
    PGresult *res = wh_pg_run(pg, &s_inbox_get, 2, v, NULL, NULL);
    if (!res) return WH_EDB;
    uint32_t last = PQntuples(res) == 1 ? (uint32_t)strtoul(PQgetvalue(res, 0, 0), NULL, 10) : 0;
    PQclear(res);
    if (last == 0 && get_first) { /* no inbox row: was the first applied? */
      const char *t[2] = {c->ticket_id, NULL};
      char arr[256];
      char *items[1] = {(char *)c->ticket_id};
      if (wh_pg_text_array(items, 1, arr, sizeof arr)) return WH_EDB;
      t[1] = arr;
      res = wh_pg_run(pg, get_first, 2, t, NULL, NULL);
      if (!res) return WH_EDB;
      last = PQntuples(res) > 0;
      PQclear(res);
    }
    c->claim = c->seq <= last ? WH_INBOX_SEEN : WH_INBOX_GAP;
  }
  return 0;
}

int wh_inbox_init(wh_inbox_t *ib, const char *first_applied) {
  memset(ib, 0, sizeof *ib);
  ib->claim = &s_inbox_claim;
  if (!first_applied) return 0;
  size_t len = strlen(first_applied);
  char *claim = malloc(sizeof s_claim_first_fmt + len), *get = malloc(sizeof s_first_get_fmt + len);
  if (!claim || !get) {
    free(claim);
    free(get);
    return WH_ENOMEM;
  }
  snprintf(claim, sizeof s_claim_first_fmt + len, s_claim_first_fmt, first_applied);
  snprintf(get, sizeof s_first_get_fmt + len, s_first_get_fmt, first_applied);
  ib->first = (wh_stmt_t){"wh_inbox_claim_first", claim};
  ib->get = (wh_stmt_t){"wh_inbox_get_first", get};
  ib->claim = &ib->first;
  ib->get_first = &ib->get;
  return 0;
}

void wh_inbox_fini(wh_inbox_t *ib) {
  free((char *)ib->first.sql);
  free((char *)ib->get.sql);
  memset(ib, 0, sizeof *ib);
}

int wh_inbox_claim_in(wh_pg_t *pg, const wh_inbox_t *ib, int begin, wh_claim_t *claims, int n,
                      wh_pg_step_t *also) {
  return s_claim(pg, begin, ib->claim, ib->get_first, claims, n, also);
}

int wh_inbox_claim_batch(wh_pg_t *pg, wh_claim_t *claims, int n) {
  return s_claim(pg, 0, &s_inbox_claim, NULL, claims, n, NULL);
}

int wh_inbox_claim(wh_pg_t *pg, const char *source, const char *ticket_id, uint32_t seq) {
  wh_claim_t c = {.source = source, .ticket_id = ticket_id, .seq = seq};
  int rc = wh_inbox_claim_batch(pg, &c, 1);
  return rc ? rc : c.claim;
}
