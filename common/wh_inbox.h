/* wh_inbox - a receiver's record of what it applied: per sender and
 * ticket, the last sequence number. A repeat is seen, an event ahead of
 * its predecessor is a gap, and the next one is applied, recorded in the
 * same transaction as what applying it changed. */
#ifndef WH_INBOX_H
#define WH_INBOX_H

#include <stdint.h>

#include "wh_pg.h"

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

/* 1 when a and b claim the same (source, ticket, seq). */
int wh_claim_same(const wh_claim_t *a, const wh_claim_t *b);

/* The claim a consumer makes: the inbox table alone, or (first_applied,
 * see wh_consumer_ops_t) the service's state rows for first messages. */
typedef struct {
  const wh_stmt_t *claim, *get_first; /* get_first NULL: the inbox table alone */
  wh_stmt_t first, get;               /* owned, with first_applied */
} wh_inbox_t;

/* Returns 0 or WH_ENOMEM. */
int wh_inbox_init(wh_inbox_t *ib, const char *first_applied);
void wh_inbox_fini(wh_inbox_t *ib);
/* Claims as wh_inbox_claim_batch does, through ib; begin: open the
 * transaction in the same round trip; also: one more statement for it. */
int wh_inbox_claim_in(wh_pg_t *pg, const wh_inbox_t *ib, int begin, wh_claim_t *claims, int n,
                      wh_pg_step_t *also);

#endif
