/* notify - fans work events out to the parties' feeds and to reporters.
 *
 * Every party has a feed: a gap-free sequence of items, numbered under a row
 * lock on the party's counter in the same transaction that stores the item,
 * so commit order is feed order. After commit the items are published on a
 * PUB socket, topic "<party>\0"; PUB drops silently when a subscriber is slow,
 * so nothing depends on it: a party that sees a gap, or was away, asks for a
 * replay from any sequence and gets the stored items. Messages to reporters go
 * into a delivery log in the same transaction; after commit they are written
 * to the sink from memory, with the ids the insert returned. Messages go out
 * oldest first, so "sent" is a line in the log (delivery_mark): what the
 * sink took moves it past the newest id, one single-row update for all the
 * batches of SINK_MARK_MS (before anything is read back). What the
 * sink refused, or a crash left between commit and mark, stays pending above
 * the line and is read back and tried again, oldest first, before any newer
 * message goes out.
 *
 * Every message to a reporter carries a stable id, its delivery row's
 * ("id=<n>" in the sink line), so a receiver can drop a repeat; and the
 * sink writes each once: ids go out ascending, and notify skips any up to
 * the newest the sink has taken (remembered, and read back from the sink
 * file's last line at start), so a mark lost with the database session, or
 * a crash between writing and marking, writes nothing twice. */
#include "notify.h"
#include "messages.h"
#include "wh_clock.h"
#include "wh_codec.h"
#include "wh_err.h"
#include "wh_log.h"
#include "wh_consumer.h"
#include "wh_org.h"
#include "wh_outbox.h"
#include "wh_rules.h"
#include "wh_text.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REPLAY_MAX 500
#define REPLAY_MAX_BYTES (WH_FRAME_MAX / 2)
#define SINK_RETRY_MS 5000
#define SINK_MAX_ATTEMPTS 10
#define SINK_BATCH 500
#define SINK_LINES_MAX (4u << 20) /* a batch's reporter messages kept in memory */
#define SINK_MARK_MS 50 /* what the sink took is marked this long after, at once */
#define SINK_GATHER_MS 20 /* batches this close go to the sink together (one ask of intake) */

typedef struct {
  char party[96];
  uint8_t *frame;
  size_t len;
} s_pub_t;

/* Messages to write to the sink once intake has given their reporters'
 * numbers: their lines (each NUL-terminated) and ids, from the memory path
 * (a batch just committed) or the log path (read back). One at a time. */
typedef struct {
  int active, from_log;
  char mid[32];
  wh_sbuf_t lines;
  int64_t *ids;
  size_t n, cap;
} s_job_t;

/* A party the batch adds items to, and the sequence numbers it got. */
typedef struct {
  char party[96];
  int count;     /* items of this batch */
  uint64_t next; /* the next one to hand out */
} s_party_t;

/* Where one event goes. */
typedef struct {
  const char *party, *role;
} s_target_t;

/* lead, co-parties, the center, and after an assignment those it left */
/* A reporter message's line, at most (a longer note is cut at a character). */
#define SINK_LINE_MAX 2560
#define MAX_TARGETS (2 * WH_MAX_CO + 3)
#define MAX_PARTIES (WH_CONSUMER_BATCH * MAX_TARGETS)

typedef struct {
  wh_service_t *svc;
  wh_consumer_t *in;
  wh_bus_t *pub;
  s_pub_t *queue;
  size_t nqueue, capqueue;
  int backlog; /* pending messages in the log that are not in `msgs` */
  wh_sbuf_t lines; /* this batch's messages to reporters, as sink lines */
  size_t nmsgs;
  wh_rows_t sent; /* their delivery ids, from the insert: one column */
  int64_t *sent_ids; /* the same, to write into the lines */
  size_t cap_ids;
  int64_t sent_max; /* the newest of them */
  int64_t sink_upto; /* the newest message the sink has taken: never written again */
  uv_timer_t sink_timer;
  int64_t mark_upto;    /* the newest message the sink took, not yet marked */
  uv_timer_t mark_timer; /* marks it */
  wh_rows_t mark;
  char center[96];
  msg_set_t *msgs; /* messages.conf: what the reporter is told */
  wh_bus_t *contacts; /* DEALER to intake's --contacts: the reporters' numbers */
  unsigned contact_seq;
  s_job_t job;         /* the sink write waiting for them */
  uv_timer_t job_timer, gather_timer;
  wh_org_t *org;   /* org.conf: the names the reporter reads */
  s_party_t *parties;
  int nparties;
  wh_rows_t feed, delivery;
} s_notify_t;

/* Numbers for every party of a batch, in one statement; parties in code
 * order, so two transactions never wait on each other's rows crosswise. */
static const wh_stmt_t s_next_seq = {
    "notify_next_seq",
    "INSERT INTO party_seq AS s (party, last)"
    " SELECT p, c FROM unnest($1::text[], $2::bigint[]) AS x(p, c) ORDER BY p"
    " ON CONFLICT (party) DO UPDATE SET last = s.last + excluded.last RETURNING party, last"};
static const wh_stmt_t s_insert_feed = {
    "notify_insert_feed",
    "INSERT INTO feed (party, seq, ticket_id, kind, version, role, at, frame)"
    " SELECT r.party, r.seq, r.ticket_id, r.kind, r.version, r.role, r.at, r.frame"
    " FROM unnest($1::feed_row[]) AS r"};
static const wh_stmt_t s_insert_delivery = {
    "notify_insert_delivery",
    "INSERT INTO delivery (ticket_id, channel, recipient, body, template)"
    " SELECT r.ticket_id, 'reporter', r.recipient, r.body, r.template"
    " FROM unnest($1::delivery_row[]) AS r"
    " RETURNING id"};
/* A row's item: its frame, or (stored before frames were) the item alone,
 * or neither: a co-party's item of a ticket's first event shares the frame
 * of that event's lead item, which s_lead_frames reads. */
static const wh_stmt_t s_replay = {
    "notify_replay",
    "SELECT item, frame, seq, role, (extract(epoch FROM at) * 1000)::bigint, ticket_id"
    " FROM feed WHERE party = $1 AND seq >= $2 ORDER BY seq LIMIT $3"};
/* A statement of its own, not a join in s_replay: right after a burst the
 * statistics still describe the feed as it was, a few hundred items, and
 * the planner joined by reading every lead item once per row (seconds an
 * answer). Here its only sensible path is feed_first. */
static const wh_stmt_t s_lead_frames = {
    "notify_lead_frames",
    "SELECT ticket_id, frame FROM feed WHERE ticket_id = ANY($1::text[])"
    " AND version = 1 AND role = 'lead'"};
static const wh_stmt_t s_head = {
    "notify_head", "SELECT last FROM party_seq WHERE party = $1"};
static const wh_stmt_t s_pending = {
    "notify_pending",
    "SELECT id, ticket_id, recipient, body, attempts, coalesce(template, '') FROM delivery"
    " WHERE id > (SELECT sent_upto FROM delivery_mark WHERE sink = 'reporter')"
    " AND state = 'pending' ORDER BY id LIMIT 500"}; /* SINK_BATCH */
static const wh_stmt_t s_sent = {
    "notify_sent",
    "UPDATE delivery_mark SET sent_upto = greatest(sent_upto,"
    "   (SELECT max(x) FROM unnest($1::bigint[]) AS x)), at = now() WHERE sink = 'reporter'"};
static const wh_stmt_t s_failed = {
    "notify_failed",
    "UPDATE delivery SET attempts = attempts + 1,"
    " state = CASE WHEN attempts + 1 >= $2 THEN 'parked' ELSE 'pending' END"
    " WHERE id = ANY($1::bigint[])"};

/* Adds party to the k targets in out unless it is there; returns the count. */
static int s_target_add(s_target_t *out, int k, const char *party, const char *role) {
  for (int i = 0; i < k; i++)
    if (!strcmp(out[i].party, party)) return k;
  out[k] = (s_target_t){party, role};
  return k + 1;
}

/* 1 if party is one of the event's co-parties. */
static int s_co_of(const Whistle__WorkEvent *ev, const char *party) {
  for (size_t i = 0; i < ev->n_co; i++)
    if (!strcmp(ev->co[i], party)) return 1;
  return 0;
}

/* The feeds an event goes to, or -1 when it is not a valid event. */
static int s_targets(const s_notify_t *n, const Whistle__Envelope *env, s_target_t *out) {
  const Whistle__WorkEvent *ev = env->work;
  if (!ev || strcmp(ev->ticket_id, env->ticket_id) || !ev->lead[0] || ev->version != env->seq ||
      wh_code_check(ev->lead, 95) || ev->n_co > WH_MAX_CO)
    return -1;
  for (size_t i = 0; i < ev->n_co; i++)
    if (wh_code_check(ev->co[i], 95)) return -1;
  int k = 0;
  out[k++] = (s_target_t){ev->lead, "lead"};
  switch (ev->kind) {
  case WHISTLE__WORK_EVENT_KIND__WORK_DISPATCHED:
    for (size_t i = 0; i < ev->n_co; i++) out[k++] = (s_target_t){ev->co[i], "co"};
    return k;
  case WHISTLE__WORK_EVENT_KIND__WORK_MERGED:
    return k;
  case WHISTLE__WORK_EVENT_KIND__WORK_OVERDUE:
    /* The command center supervises every lapse [挂牌督办]; a co-party's
     * own sign-for clock goes to it too. */
    if (ev->n_lapsed > 64) return -1;
    for (size_t i = 0; i < ev->n_lapsed; i++)
      if (!strncmp(ev->lapsed[i], "sign_for:", 9) && s_co_of(ev, ev->lapsed[i] + 9))
        k = s_target_add(out, k, ev->lapsed[i] + 9, "co");
    return s_target_add(out, k, n->center, "supervisor");
  case WHISTLE__WORK_EVENT_KIND__WORK_REMINDER:
    /* A reminder goes to the party whose clock it is: the lead, or the
     * co-party of its own sign-for clock. */
    if (!ev->n_reminded || ev->n_reminded > 64) return -1;
    k = 0;
    for (size_t i = 0; i < ev->n_reminded; i++) {
      if (!strncmp(ev->reminded[i], "sign_for:", 9)) {
        if (s_co_of(ev, ev->reminded[i] + 9)) k = s_target_add(out, k, ev->reminded[i] + 9, "co");
      } else {
        k = s_target_add(out, k, ev->lead, "lead");
      }
    }
    return k ? k : -1;
  case WHISTLE__WORK_EVENT_KIND__WORK_ESCALATED:
    /* A ladder step (the clock's, or the center's supervise): a
     * supervisor item for the party it reaches; the lead and the center
     * see it too. */
    if (!ev->step || !ev->supervisor[0] || wh_code_check(ev->supervisor, 95)) return -1;
    k = 0;
    k = s_target_add(out, k, ev->supervisor, "supervisor");
    k = s_target_add(out, k, ev->lead, "lead");
    return s_target_add(out, k, n->center, "center");
  case WHISTLE__WORK_EVENT_KIND__WORK_FEEDBACK_DUE:
    /* The feedback window passed: the center's item (it may close). */
    k = 0;
    return s_target_add(out, k, n->center, "center");
  case WHISTLE__WORK_EVENT_KIND__WORK_ACTED:
    /* An action goes to everyone on the order, the center, and, after an
     * assignment, the parties that had it: each once. */
    if (!ev->action[0] || wh_code_check(ev->actor, 95) || ev->n_previous > WH_MAX_CO + 1 ||
        ev->n_repeats != ev->n_repeat_reporters)
      return -1;
    for (size_t i = 0; i < ev->n_previous; i++)
      if (wh_code_check(ev->previous[i], 95)) return -1;
    for (size_t i = 0; i < ev->n_co; i++) k = s_target_add(out, k, ev->co[i], "co");
    k = s_target_add(out, k, n->center, "center");
    for (size_t i = 0; i < ev->n_previous; i++) k = s_target_add(out, k, ev->previous[i], "previous");
    return k;
  default:
    return -1;
  }
}

static s_party_t *s_party(s_notify_t *n, const char *party) {
  for (int i = 0; i < n->nparties; i++)
    if (!strcmp(n->parties[i].party, party)) return &n->parties[i];
  if (n->nparties == MAX_PARTIES) return NULL;
  s_party_t *p = &n->parties[n->nparties++];
  snprintf(p->party, sizeof p->party, "%s", party);
  p->count = 0;
  p->next = 0;
  return p;
}

/* Takes, in one statement, as many feed numbers for each party as the
 * batch's events will use. */
static int s_prepare(void *arg, const Whistle__Envelope *const *envs, int nenv) {
  s_notify_t *n = arg;
  n->nparties = 0;
  s_target_t tg[MAX_TARGETS];
  for (int i = 0; i < nenv; i++) {
    int k = s_targets(n, envs[i], tg);
    for (int j = 0; j < k; j++) {
      s_party_t *p = s_party(n, tg[j].party);
      if (!p) return WH_EDB;
      p->count++;
    }
  }
  if (!n->nparties) return 0;
  wh_rows_t q;
  wh_rows_init(&q, 2);
  for (int i = 0; i < n->nparties; i++) {
    wh_rows_next(&q);
    wh_rows_text(&q, 0, n->parties[i].party);
    wh_rows_int(&q, 1, n->parties[i].count);
  }
  PGresult *r = wh_rows_run(n->svc->pg, &s_next_seq, &q, 0, NULL);
  wh_rows_free(&q);
  if (!r) return WH_EDB;
  int rc = PQntuples(r) == n->nparties ? 0 : WH_EDB;
  for (int k = 0; k < PQntuples(r) && !rc; k++) {
    s_party_t *p = s_party(n, PQgetvalue(r, k, 0));
    if (!p) rc = WH_EDB;
    else p->next = strtoull(PQgetvalue(r, k, 1), NULL, 10) - (uint64_t)p->count + 1;
  }
  PQclear(r);
  return rc;
}

/* Adds the item of ev for party to the batch: its row, and its frame to
 * publish after commit. A co-party's item of a ticket's first event is
 * stored without its frame: the lead's item, written in the same
 * statement, holds the same event, and the replay readdresses that one
 * (s_lead_frames). Two copies of every first event cost the database a
 * tenth of what a ticket writes. */
static int s_add_item(s_notify_t *n, const Whistle__WorkEvent *ev, const char *party,
                      const char *role) {
  s_party_t *p = s_party(n, party);
  if (!p || p->next == 0) return WH_EDB;
  Whistle__FeedItem item = WHISTLE__FEED_ITEM__INIT;
  item.party = (char *)party;
  item.seq = p->next++;
  item.ticket_id = ev->ticket_id;
  item.kind = ev->kind;
  item.version = ev->version;
  item.role = (char *)role;
  item.at_ms = wh_clock_now_ms();
  item.event = (Whistle__WorkEvent *)ev;
  /* The frame to publish after commit is also what the feed stores: one
   * packing. */
  Whistle__Envelope env = WHISTLE__ENVELOPE__INIT;
  env.ticket_id = ev->ticket_id;
  env.seq = ev->version;
  env.body_case = WHISTLE__ENVELOPE__BODY_FEED;
  env.feed = &item;
  if (n->nqueue == n->capqueue) {
    size_t cap = n->capqueue ? n->capqueue * 2 : 64;
    s_pub_t *q = realloc(n->queue, cap * sizeof *q);
    if (!q) return WH_EDB;
    n->queue = q;
    n->capqueue = cap;
  }
  s_pub_t *pq = &n->queue[n->nqueue];
  if (wh_env_pack(&env, &pq->frame, &pq->len)) return WH_EDB;
  wh_str_copy(pq->party, sizeof pq->party, party);
  n->nqueue++;
  wh_rows_t *r = &n->feed;
  wh_rows_next(r);
  wh_rows_text(r, 0, party);
  wh_rows_int(r, 1, (int64_t)item.seq);
  wh_rows_text(r, 2, ev->ticket_id);
  wh_rows_text(r, 3, wh_work_kind_name(ev->kind));
  wh_rows_int(r, 4, ev->version);
  wh_rows_text(r, 5, role);
  wh_rows_time(r, 6, &item.at_ms);
  int shared = ev->version == 1 && strcmp(role, "lead");
  wh_rows_bytes(r, 7, shared ? NULL : pq->frame, pq->len);
  return 0;
}

/* The reporter's message of an action, into b; 0 when the action sends none. */
/* The template an action's message is made of; -1: the reporter does not
 * hear of it. */
static int s_acted_event(const Whistle__WorkEvent *ev) {
  const char *a = ev->action;
  if (!strcmp(a, "feedback"))
    return !strcmp(ev->state, "closed") ? MSG_FEEDBACK_CLOSED : MSG_FEEDBACK_REOPENED;
  static const struct { const char *action; msg_event_t ev; } map[] = {
      {"sign", MSG_SIGN},     {"assign", MSG_ASSIGN},   {"progress", MSG_PROGRESS},
      {"approve", MSG_APPROVE}, {"resolve", MSG_RESOLVE}, {"reopen", MSG_REOPEN},
      {"close", MSG_CLOSE},   {"void", MSG_VOID}};
  for (size_t i = 0; i < sizeof map / sizeof *map; i++)
    if (!strcmp(a, map[i].action)) return (int)map[i].ev;
  return -1;
}

static void s_deliver(s_notify_t *n, const char *ticket, const char *to, const char *body,
                      const char *template);

/* A time as a reporter reads it: "2026年10月13日23:59" (China time). */
static void s_when(int64_t ms, char *out, size_t len) {
  char t[40];
  wh_time_format(ms, t, sizeof t); /* 2026-10-13T23:59:59+08:00 */
  snprintf(out, len, "%.4s年%.2s月%.2s日%.5s", t, t + 5, t + 8, t + 11);
}

/* The reporter's message of ev for ticket (the order's, or a repeat's). */
static void s_tell(s_notify_t *n, const Whistle__WorkEvent *ev, msg_event_t what,
                   const char *ticket, const char *to) {
  char body[2048], lead[256], due[40] = "", until[40] = "";
  wh_str_t b;
  wh_str_init(&b, body, sizeof body);
  wh_org_name(n->org, ev->lead, lead, sizeof lead);
  if (ev->n_deadlines) s_when(ev->deadlines[ev->n_deadlines - 1]->due_at_ms, due, sizeof due);
  if (ev->until_ms) s_when(ev->until_ms, until, sizeof until);
  msg_args_t a = {.ticket = ticket, .lead = lead, .note = ev->note, .due = due, .until = until,
                  .first = ev->duplicate_of};
  const char *id = msg_render(n->msgs, what, &a, &b);
  s_deliver(n, ticket, to, body, id);
}

static void s_add_delivery(s_notify_t *n, const Whistle__WorkEvent *ev) {
  if (ev->kind == WHISTLE__WORK_EVENT_KIND__WORK_ACTED) {
    int what = s_acted_event(ev);
    if (!ev->tell_reporter || what < 0) return;
    if (ev->reporter_masked[0]) s_tell(n, ev, (msg_event_t)what, ev->ticket_id, ev->reporter_masked);
    /* The result reaches the reporters of every repeat merged under it. */
    for (size_t i = 0; i < ev->n_repeats && what == MSG_RESOLVE; i++)
      if (ev->repeat_reporters[i][0])
        s_tell(n, ev, MSG_RESOLVE, ev->repeats[i], ev->repeat_reporters[i]);
    return;
  }
  if (!ev->reporter_masked[0]) return;
  s_tell(n, ev, ev->kind == WHISTLE__WORK_EVENT_KIND__WORK_MERGED ? MSG_MERGED : MSG_DISPATCHED,
         ev->ticket_id, ev->reporter_masked);
}

static void s_deliver(s_notify_t *n, const char *ticket, const char *to, const char *body,
                      const char *template) {
  wh_rows_next(&n->delivery);
  wh_rows_text(&n->delivery, 0, ticket);
  wh_rows_text(&n->delivery, 1, to);
  wh_rows_text(&n->delivery, 2, body);
  wh_rows_text(&n->delivery, 3, template);
  /* The sink line, less the time it is written at, NUL-terminated. */
  char line[SINK_LINE_MAX];
  wh_str_t l;
  wh_str_init(&l, line, sizeof line);
  wh_str_cat(&l, "ticket=", ticket, "\tto=", to, "\tmsg=", template, "\t", body, (char *)NULL);
  size_t len = l.len;
  if (l.full || n->lines.len + len + 1 > SINK_LINES_MAX) {
    n->backlog = 1; /* the log has it; the flush reads it back */
    return;
  }
  if (wh_sbuf_put(&n->lines, line, len + 1)) { /* the line and its NUL */
    n->backlog = 1;
    return;
  }
  n->nmsgs++;
}

static int s_apply(void *arg, const Whistle__Envelope *env) {
  s_notify_t *n = arg;
  s_target_t tg[MAX_TARGETS];
  int k = s_targets(n, env, tg);
  if (k < 0) return WH_EFIELD;
  const Whistle__WorkEvent *ev = env->work;
  for (int j = 0; j < k; j++) {
    int rc = s_add_item(n, ev, tg[j].party, tg[j].role);
    if (rc) return rc;
  }
  /* The reporter hears of the opening and of the parties' actions; the
   * clock's firings are the parties' and the center's. */
  if (ev->kind == WHISTLE__WORK_EVENT_KIND__WORK_DISPATCHED ||
      ev->kind == WHISTLE__WORK_EVENT_KIND__WORK_MERGED ||
      ev->kind == WHISTLE__WORK_EVENT_KIND__WORK_ACTED)
    s_add_delivery(n, ev);
  return 0;
}

/* The ids of this batch's messages, in the order they were added. */
static void s_on_delivery_ids(void *arg, const PGresult *res) {
  s_notify_t *n = arg;
  wh_rows_reset(&n->sent);
  if ((size_t)PQntuples(res) != n->nmsgs) {
    n->backlog = 1; /* not the rows we kept: let the log speak */
    return;
  }
  n->sent_max = 0;
  if ((size_t)PQntuples(res) > n->cap_ids) {
    int64_t *grown = realloc(n->sent_ids, (size_t)PQntuples(res) * sizeof *grown);
    if (!grown) {
      n->backlog = 1;
      return;
    }
    n->sent_ids = grown;
    n->cap_ids = (size_t)PQntuples(res);
  }
  for (int i = 0; i < PQntuples(res); i++) {
    int64_t id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
    wh_rows_next(&n->sent);
    wh_rows_int(&n->sent, 0, id);
    n->sent_ids[i] = id;
    if (id > n->sent_max) n->sent_max = id;
  }
}

static int s_steps(void *arg, wh_pg_step_t *steps) {
  s_notify_t *n = arg;
  steps[0] = (wh_pg_step_t){.st = &s_insert_feed, .rows = &n->feed};
  steps[1] = (wh_pg_step_t){
      .st = &s_insert_delivery, .rows = &n->delivery, .on_result = s_on_delivery_ids, .arg = n};
  return 2;
}

static void s_clear_queue(s_notify_t *n) {
  for (size_t i = 0; i < n->nqueue; i++) free(n->queue[i].frame);
  n->nqueue = 0;
}

static void s_on_sink_timer(uv_timer_t *h);

static void s_clear_msgs(s_notify_t *n) {
  n->lines.len = 0;
  n->nmsgs = 0;
  wh_rows_reset(&n->sent);
}

/* Appends one sink line, stamped with the time it is written and the
 * message's stable id, addressed to phone (the reporter's number, from
 * intake for this attempt; NULL: as the line has it); a message the sink
 * has taken is not written again (and counts as written). */
static int s_sink_line(s_notify_t *n, FILE *f, int64_t id, const char *line, const char *phone) {
  if (id <= n->sink_upto) return 1;
  char stamp[64];
  wh_str_t s;
  wh_str_init(&s, stamp, sizeof stamp);
  wh_str_int(&s, wh_clock_now_ms());
  wh_str_add(&s, "\tid=");
  wh_str_int(&s, id);
  wh_str_add(&s, "\t");
  const char *to = strstr(line, "\tto="), *rest = to ? strchr(to + 4, '\t') : NULL;
  if (!phone || !phone[0] || !rest)
    return fputs(stamp, f) >= 0 && fputs(line, f) >= 0 && putc('\n', f) != EOF;
  return fputs(stamp, f) >= 0 && fwrite(line, 1, (size_t)(to + 4 - line), f) == (size_t)(to + 4 - line) &&
         fputs(phone, f) >= 0 && fputs(rest, f) >= 0 && putc('\n', f) != EOF;
}

/* ---- the reporters' numbers, asked of intake at each attempt --------- */

/* intake's answer is waited for this long at most; then the messages wait
 * in the log for the next attempt. Nothing waits for it: the loop goes on. */
#define CONTACT_WAIT_MS 2000
#define CONTACT_MAX 4096 /* tickets one request names at most (intake's limit) */
#define CONTACT_RETRY_MS 500 /* asked again this soon when intake was away or slow */

/* The ticket a sink line is for ("ticket=<id>\t..."), into buf. */
static const char *s_line_ticket(const char *line, char *buf, size_t len) {
  const char *t = line + 7, *tab = strchr(t, '\t');
  size_t k = tab ? (size_t)(tab - t) : 0;
  if (strncmp(line, "ticket=", 7) || !k || k >= len) return NULL;
  memcpy(buf, t, k);
  buf[k] = '\0';
  return buf;
}

/* The number intake gave for ticket, or NULL. intake answers in the order
 * it was asked, which is the lines' order: *at, the next line's place in
 * the answer, is tried first; a ticket intake did not know breaks step and
 * the answer is searched. */
static const char *s_number(const Whistle__ContactReply *r, const char *ticket, size_t *at) {
  if (!r || !ticket) return NULL;
  if (*at < r->n_contacts && !strcmp(r->contacts[*at]->ticket_id, ticket))
    return r->contacts[(*at)++]->phone;
  for (size_t i = 0; i < r->n_contacts; i++)
    if (!strcmp(r->contacts[i]->ticket_id, ticket)) {
      *at = i + 1;
      return r->contacts[i]->phone;
    }
  return NULL;
}

static void s_job_begin(s_notify_t *n, int from_log) {
  uv_timer_stop(&n->gather_timer); /* what was gathered is in the log too */
  n->job.from_log = from_log;
  n->job.lines.len = 0;
  n->job.n = 0;
}

static int s_job_add(s_notify_t *n, int64_t id, const char *line) {
  s_job_t *j = &n->job;
  if (j->n == j->cap) {
    size_t cap = j->cap ? 2 * j->cap : 512;
    int64_t *ids = realloc(j->ids, cap * sizeof *ids);
    if (!ids) return -1;
    j->ids = ids;
    j->cap = cap;
  }
  if (wh_sbuf_put(&j->lines, line, strlen(line) + 1)) return -1;
  j->ids[j->n++] = id;
  return 0;
}

static void s_flush_deliveries(s_notify_t *n);
static void s_sink_failed(s_notify_t *n);
static void s_on_mark_timer(uv_timer_t *h);
static void s_on_job_timer(uv_timer_t *h);
static int s_mark(s_notify_t *n, wh_rows_t *ids, int ok);

/* The job could not get its numbers: its messages wait in the log (no
 * attempt is counted against them) and are tried again later. */
static void s_job_wait(s_notify_t *n, const char *why) {
  wh_warn("%s; the reporters' messages wait", why);
  n->job.active = 0;
  n->job.n = 0;
  n->job.lines.len = 0;
  uv_timer_stop(&n->gather_timer);
  uv_timer_stop(&n->job_timer);
  n->backlog = 1;
  if (!uv_is_active((uv_handle_t *)&n->sink_timer))
    uv_timer_start(&n->sink_timer, s_on_sink_timer, CONTACT_RETRY_MS, 0);
}

/* Writes the job's lines, each to its reporter's number in r (NULL: as the
 * line has it, masked), then marks them as its path does. */
static void s_job_write(s_notify_t *n, const Whistle__ContactReply *r) {
  s_job_t *j = &n->job;
  j->active = 0;
  uv_timer_stop(&n->gather_timer);
  uv_timer_stop(&n->job_timer);
  FILE *f = j->n && n->svc->sink ? fopen(n->svc->sink, "a") : NULL;
  int ok = f != NULL;
  int64_t newest = 0;
  const char *line = j->lines.buf;
  size_t at = 0;
  for (size_t i = 0; i < j->n && ok; i++, line += strlen(line) + 1) {
    char t[64];
    ok = s_sink_line(n, f, j->ids[i], line, s_number(r, s_line_ticket(line, t, sizeof t), &at));
    if (j->ids[i] > newest) newest = j->ids[i];
  }
  if (f && fclose(f) != 0) ok = 0;
  if (ok && newest > n->sink_upto) n->sink_upto = newest;
  wh_rows_t ids;
  wh_rows_init(&ids, 1);
  for (size_t i = 0; i < j->n; i++) {
    wh_rows_next(&ids);
    wh_rows_int(&ids, 0, j->ids[i]);
  }
  if (!j->from_log) {
    /* The memory path: marked with the batches of the next SINK_MARK_MS. */
    if (!ok) {
      s_mark(n, &ids, 0); /* an attempt on each */
      s_sink_failed(n);
    } else {
      if (newest > n->mark_upto) n->mark_upto = newest;
      if (!uv_is_active((uv_handle_t *)&n->mark_timer))
        uv_timer_start(&n->mark_timer, s_on_mark_timer, SINK_MARK_MS, 0);
    }
  } else {
    /* The read cleared the backlog when it took the log's last pending
     * message; a message committed since set it again, and goes next. */
    int marked = j->n == 0 || s_mark(n, &ids, ok) == 0;
    if (j->n && !ok) {
      s_sink_failed(n);
    } else if (j->n == SINK_BATCH || !marked) {
      n->backlog = 1;
      uv_timer_start(&n->sink_timer, s_on_sink_timer, marked ? 0 : SINK_RETRY_MS, 0);
    }
  }
  wh_rows_free(&ids);
  j->n = 0;
  j->lines.len = 0;
  /* what came while this waited is in the log: it goes next */
  if (n->backlog && !uv_is_active((uv_handle_t *)&n->sink_timer))
    uv_timer_start(&n->sink_timer, s_on_sink_timer, 0, 0);
}

/* Asks intake for the numbers of the job's messages, or, without
 * --contacts, writes them at once to the masked numbers. */
static void s_job_go(s_notify_t *n) {
  s_job_t *j = &n->job;
  if (!n->contacts || !j->n) {
    s_job_write(n, NULL);
    return;
  }
  char (*tk)[64] = calloc(j->n, sizeof *tk);
  char **tickets = calloc(j->n, sizeof *tickets);
  size_t k = 0;
  const char *line = j->lines.buf;
  for (size_t i = 0; tk && tickets && i < j->n; i++, line += strlen(line) + 1)
    if (s_line_ticket(line, tk[k], sizeof tk[k])) tickets[k] = tk[k], k++;
  snprintf(j->mid, sizeof j->mid, "contacts-%u", ++n->contact_seq);
  Whistle__ContactRequest q = WHISTLE__CONTACT_REQUEST__INIT;
  q.ticket_ids = tickets;
  q.n_ticket_ids = k;
  Whistle__Envelope env = WHISTLE__ENVELOPE__INIT;
  env.message_id = j->mid;
  env.sender = "notify";
  env.body_case = WHISTLE__ENVELOPE__BODY_CONTACT;
  env.contact = &q;
  uint8_t *buf = NULL;
  size_t len;
  int rc = tk && tickets && k <= CONTACT_MAX ? wh_env_pack(&env, &buf, &len) : WH_ENOMEM;
  free(tickets);
  free(tk);
  /* a connecting bus is ZMQ_IMMEDIATE: with intake away the send fails now */
  if (rc || wh_bus_send(n->contacts, NULL, 0, buf, len)) {
    free(buf);
    s_job_wait(n, "intake is not there to give the reporters' numbers");
    return;
  }
  free(buf);
  j->active = 1;
  uv_timer_start(&n->job_timer, s_on_job_timer, CONTACT_WAIT_MS, 0);
}

static void s_on_job_timer(uv_timer_t *h) {
  s_notify_t *n = h->data;
  if (n->job.active) s_job_wait(n, "intake did not give the reporters' numbers in time");
}

/* intake's answers: the one the job waits for is written with; one come
 * late, for a job given up, is dropped. The numbers go with the answer. */
static void s_on_numbers(wh_bus_t *bus, void *arg) {
  s_notify_t *n = arg;
  zmq_msg_t head, body;
  for (int k = 0; k < WH_BUS_ROUND && wh_bus_recv(bus, &head, &body) == 1; k++) {
    Whistle__Envelope *rep = NULL;
    int rc = wh_env_unpack(zmq_msg_data(&body), zmq_msg_size(&body), &rep);
    explicit_bzero(zmq_msg_data(&body), zmq_msg_size(&body));
    zmq_msg_close(&head);
    zmq_msg_close(&body);
    if (rc) continue;
    if (n->job.active && !strcmp(rep->message_id, n->job.mid) &&
        rep->body_case == WHISTLE__ENVELOPE__BODY_CONTACT_REPLY) {
      const Whistle__ContactReply *r = rep->contact_reply;
      if (r->error) {
        char why[300];
        snprintf(why, sizeof why, "intake refused the reporters' numbers: %.200s", r->error->text);
        s_job_wait(n, why);
      } else {
        s_job_write(n, r);
      }
      for (size_t i = 0; i < r->n_contacts; i++)
        explicit_bzero(r->contacts[i]->phone, strlen(r->contacts[i]->phone));
    }
    wh_env_free(rep);
  }
}

/* The id of the newest message the sink file holds: its last whole line's,
 * or 0. */
static int64_t s_sink_last_id(const char *path) {
  FILE *f = path ? fopen(path, "r") : NULL;
  if (!f) return 0;
  char tail[8192 + 1];
  long at = 0;
  if (fseek(f, 0, SEEK_END) == 0 && (at = ftell(f)) > (long)sizeof tail - 1)
    fseek(f, at - (long)(sizeof tail - 1), SEEK_SET);
  else
    fseek(f, 0, SEEK_SET);
  size_t got = fread(tail, 1, sizeof tail - 1, f);
  fclose(f);
  tail[got] = '\0';
  int64_t last = 0;
  /* every whole line; the newest id wins (they go out ascending) */
  for (char *line = tail, *nl; (nl = strchr(line, '\n')); line = nl + 1) {
    *nl = '\0';
    char *id = strstr(line, "\tid=");
    if (id) {
      int64_t v = strtoll(id + 4, NULL, 10);
      if (v > last) last = v;
    }
  }
  return last;
}

/* Marks messages the sink took (ok) or refused, in one statement. What
 * the sink took moves the sent line to the newest of them: every older
 * message is sent or parked by then, as messages go out oldest first. A
 * mark that is lost leaves them pending: they are written again (the sink
 * is at-least-once), never dropped. So the mark need not wait for the
 * disk. A refusal counts an attempt on each and parks it after
 * SINK_MAX_ATTEMPTS. */
static int s_mark(s_notify_t *n, wh_rows_t *ids, int ok) {
  wh_pg_t *pg = n->svc->pg;
  if (ok) return wh_pg_run_lazily(pg, &s_sent, ids, 0, NULL);
  char max[12];
  snprintf(max, sizeof max, "%d", SINK_MAX_ATTEMPTS);
  const char *v[1] = {max};
  wh_pg_step_t step = {.st = &s_failed, .rows = ids, .nextra = 1, .extra = v};
  return wh_pg_pipeline(pg, 0, &step, 1, WH_PG_OPEN);
}

/* Marks what the memory path's sink writes took, in one statement for
 * every batch of the last SINK_MARK_MS: at a few hundred reports a second
 * a mark of its own per batch was a transaction per ticket. A mark that
 * fails leaves them pending, to be read back and written again. */
static void s_store_mark(s_notify_t *n) {
  uv_timer_stop(&n->mark_timer);
  if (!n->mark_upto) return;
  wh_rows_reset(&n->mark);
  wh_rows_next(&n->mark);
  wh_rows_int(&n->mark, 0, n->mark_upto);
  n->mark_upto = 0;
  if (s_mark(n, &n->mark, 1)) n->backlog = 1;
}

static void s_on_mark_timer(uv_timer_t *h) { s_store_mark(h->data); }

static void s_sink_failed(s_notify_t *n) {
  wh_warn("reporter sink %s refused messages; retrying", n->svc->sink ? n->svc->sink : "(none)");
  n->backlog = 1;
  uv_timer_start(&n->sink_timer, s_on_sink_timer, SINK_RETRY_MS, 0);
}

/* The log path: pending messages read back from the delivery log, oldest
 * first (after a restart, a refusal by the sink, or a lost mark, or while
 * intake was away or a job waited for it). */
static void s_flush_deliveries(s_notify_t *n) {
  if (n->job.active) return; /* its end calls again */
  wh_pg_t *pg = n->svc->pg;
  if (wh_pg_ready(pg)) {
    uv_timer_start(&n->sink_timer, s_on_sink_timer, SINK_RETRY_MS, 0);
    return;
  }
  s_store_mark(n); /* what the sink took is not read back */
  PGresult *r = wh_pg_run(pg, &s_pending, 0, NULL, NULL, NULL);
  if (!r) {
    uv_timer_start(&n->sink_timer, s_on_sink_timer, SINK_RETRY_MS, 0);
    return;
  }
  int rows = PQntuples(r);
  /* Everything committed is in this read (one session, commits in
   * order) unless the batch is full: what commits while its numbers are
   * asked for sets the backlog again (s_send_batch). */
  n->backlog = rows == SINK_BATCH;
  s_job_begin(n, 1);
  char line[SINK_LINE_MAX];
  int oom = 0;
  for (int i = 0; i < rows && !oom; i++) {
    wh_str_t l;
    wh_str_init(&l, line, sizeof line);
    wh_str_cat(&l, "ticket=", PQgetvalue(r, i, 1), "\tto=", PQgetvalue(r, i, 2), "\tmsg=",
               PQgetvalue(r, i, 5), "\t", PQgetvalue(r, i, 3), (char *)NULL);
    oom = s_job_add(n, strtoll(PQgetvalue(r, i, 0), NULL, 10), line) != 0;
  }
  PQclear(r);
  if (oom) {
    s_job_wait(n, "out of memory for the sink's lines");
    return;
  }
  s_job_go(n);
}

static void s_on_sink_timer(uv_timer_t *h) { s_flush_deliveries(h->data); }

/* The memory path: this batch's messages, just committed as pending, go to
 * the sink as they are (once intake has given their numbers), and are
 * marked sent with the batches that follow within SINK_MARK_MS
 * (s_store_mark). While an earlier write waits for its numbers they wait
 * in the log and follow it. */
static void s_on_gather_timer(uv_timer_t *h) {
  s_notify_t *n = h->data;
  if (!n->job.active && n->job.n) s_job_go(n);
}

static void s_send_batch(s_notify_t *n) {
  if (n->job.active || n->job.n + (size_t)n->sent.nrows > CONTACT_MAX) {
    n->backlog = 1;
    return;
  }
  /* Batches of the next SINK_GATHER_MS go with this one: one question to
   * intake for all of them, not one per commit. */
  if (!n->job.n) s_job_begin(n, 0);
  const char *line = n->lines.buf;
  for (int i = 0; i < n->sent.nrows; i++, line += strlen(line) + 1)
    if (s_job_add(n, n->sent_ids[i], line)) {
      s_job_wait(n, "out of memory for the sink's lines");
      return;
    }
  if (!n->contacts) {
    s_job_go(n);
  } else if (!uv_is_active((uv_handle_t *)&n->gather_timer)) {
    uv_timer_start(&n->gather_timer, s_on_gather_timer, SINK_GATHER_MS, 0);
  }
}

static void s_committed(void *arg) {
  s_notify_t *n = arg;
  wh_rows_reset(&n->feed);
  wh_rows_reset(&n->delivery);
  for (size_t i = 0; i < n->nqueue; i++) {
    s_pub_t *p = &n->queue[i];
    wh_bus_send(n->pub, p->party, strlen(p->party) + 1, p->frame, p->len);
  }
  s_clear_queue(n);
  if (n->nmsgs && (size_t)n->sent.nrows != n->nmsgs) n->backlog = 1;
  if (n->backlog) {
    /* Older messages wait in the log: they go first, and these with them. */
    if (!uv_is_active((uv_handle_t *)&n->sink_timer)) s_flush_deliveries(n);
  } else if (n->sent.nrows) {
    s_send_batch(n);
  }
  s_clear_msgs(n);
}

static void s_aborted(void *arg) {
  s_notify_t *n = arg;
  wh_rows_reset(&n->feed);
  wh_rows_reset(&n->delivery);
  s_clear_queue(n);
  s_clear_msgs(n);
}

/* Reads, into *lf, the lead frames that the shared rows of replay result r
 * need (none: *lf stays NULL). Returns 1, or 0 when the read failed. */
static int s_lead_frames_of(s_notify_t *n, const PGresult *r, PGresult **lf) {
  const char *ids[REPLAY_MAX];
  size_t nids = 0, cap = 8;
  for (int i = 0; i < PQntuples(r) && nids < REPLAY_MAX; i++)
    if (PQgetisnull(r, i, 0) && PQgetisnull(r, i, 1)) {
      ids[nids++] = PQgetvalue(r, i, 5);
      cap += 2 * (size_t)PQgetlength(r, i, 5) + 4; /* quoted, each byte escaped at worst */
    }
  if (!nids) return 1;
  char *arr = malloc(cap);
  if (!arr || wh_pg_text_array((char *const *)ids, nids, arr, cap)) {
    free(arr);
    return 0;
  }
  const char *v[1] = {arr};
  *lf = wh_pg_run_binary(n->svc->pg, &s_lead_frames, 1, v);
  free(arr);
  return *lf != NULL;
}

/* The row of lf holding ticket's lead frame, or -1. */
static int s_lead_frame(const PGresult *lf, const char *ticket) {
  for (int k = 0; lf && k < PQntuples(lf); k++)
    if (!strcmp(PQgetvalue(lf, k, 0), ticket)) return k;
  return -1;
}

/* Whether who may read party's feed: its own, and the center every one.
 * On a plain socket (who NULL) there is no one to ask. */
static int s_may_read(const s_notify_t *n, const char *who, const char *party) {
  return !who || !strcmp(who, party) || !strcmp(who, n->center);
}

/* A subscription to the live feeds, granted only for a feed its subscriber
 * may read. Topics are "<party>\0", so a granted topic is exactly one feed;
 * the center may take them all (the empty topic). A refused one is logged
 * and the subscriber simply receives nothing: PUB carries no answers. */
static void s_on_subscribe(wh_bus_t *bus, void *arg) {
  s_notify_t *n = arg;
  zmq_msg_t head, body;
  for (int frames = 0; frames < WH_BUS_ROUND && wh_bus_recv(bus, &head, &body) == 1; frames++) {
    const char *who = wh_peer(&body), *topic = (const char *)zmq_msg_data(&body) + 1;
    size_t len = zmq_msg_size(&body);
    int add = len > 0 && topic[-1] == 1, drop = len > 0 && topic[-1] == 0;
    len = len ? len - 1 : 0;
    /* a topic names one party ("<party>\0"), or every one (empty) */
    int one = len > 1 && topic[len - 1] == '\0' && strlen(topic) == len - 1;
    int ok = (add || drop) && (one ? s_may_read(n, who, topic) : len == 0 && s_may_read(n, who, n->center));
    if (ok) {
      zmq_setsockopt(wh_bus_socket(bus), add ? ZMQ_SUBSCRIBE : ZMQ_UNSUBSCRIBE, topic, len);
    } else if (add) {
      wh_warn("%s may not follow feed %.*s: subscription refused", who ? who : "(no key)",
              one ? (int)(len - 1) : 0, one ? topic : "");
    }
    zmq_msg_close(&head);
    zmq_msg_close(&body);
  }
}

static void s_request(void *arg, wh_consumer_t *c, const zmq_msg_t *peer, const char *who,
                      const Whistle__Envelope *env) {
  s_notify_t *n = arg;
  Whistle__ReplayReply rep = WHISTLE__REPLAY_REPLY__INIT;
  Whistle__Error e = WHISTLE__ERROR__INIT;
  Whistle__Envelope out = WHISTLE__ENVELOPE__INIT;
  out.message_id = env->message_id;
  out.body_case = WHISTLE__ENVELOPE__BODY_REPLAY_REPLY;
  out.replay_reply = &rep;
  if (env->body_case != WHISTLE__ENVELOPE__BODY_REPLAY) {
    e.code = wh_err_to_wire(WH_EUNEXPECTED);
    e.text = "notify takes work events and replay requests";
    rep.error = &e;
    wh_consumer_reply(c, peer, &out);
    return;
  }
  const Whistle__ReplayRequest *q = env->replay;
  /* The asker's own feed when it names none. */
  rep.party = q->party[0] || !who ? q->party : (char *)who;
  if (wh_code_check(rep.party, 95) || !s_may_read(n, who, rep.party)) {
    int forbidden = !wh_code_check(rep.party, 95);
    e.code = wh_err_to_wire(forbidden ? WH_EFORBIDDEN : WH_EPARTY);
    e.text = forbidden ? "a party replays its own feed (the center any)" : "party: not a party code";
    rep.error = &e;
    wh_consumer_reply(c, peer, &out);
    return;
  }
  char from[24], max[12];
  snprintf(from, sizeof from, "%" PRIu64, q->from_seq ? q->from_seq : 1);
  snprintf(max, sizeof max, "%u", q->max && q->max < REPLAY_MAX ? q->max : REPLAY_MAX);
  const char *v[3] = {rep.party, from, max};
  PGresult *r = NULL, *h = NULL;
  Whistle__FeedItem **items = NULL;
  size_t nitems = 0;
  wh_arena_t *arena = wh_arena_new(); /* the items read back, freed at once */
  PGresult *lf = NULL; /* the lead frames that shared rows need */
  int lf_ok = 1;
  if (wh_pg_ready(n->svc->pg) == 0) {
    h = wh_pg_run(n->svc->pg, &s_head, 1, v, NULL, NULL);
    r = wh_pg_run_binary(n->svc->pg, &s_replay, 3, v); /* items as stored, no hex */
    if (r) lf_ok = s_lead_frames_of(n, r, &lf);
  }
  if (!r || !h || !arena || !lf_ok) {
    e.code = wh_err_to_wire(WH_EDB);
    e.text = "feed store unavailable; ask again";
    rep.error = &e;
  } else {
    rep.head_seq = PQntuples(h) ? strtoull(PQgetvalue(h, 0, 0), NULL, 10) : 0;
    items = calloc((size_t)PQntuples(r) + 1, sizeof *items);
    size_t bytes = 0;
    for (int i = 0; i < PQntuples(r); i++) {
      /* The frame as published (or its lead's, shared), or the item. */
      int framed = !PQgetisnull(r, i, 1);
      int shared = !framed && PQgetisnull(r, i, 0);
      size_t blen = (size_t)PQgetlength(r, i, framed);
      const uint8_t *b = (const uint8_t *)PQgetvalue(r, i, framed);
      if (shared) {
        int k = s_lead_frame(lf, PQgetvalue(r, i, 5));
        if (k < 0) {
          wh_error("item %" PRIu64 " of feed %s has no frame of its own and its lead's is"
                   " missing; the replay skips it", wh_pg_get_u64(r, i, 2), rep.party);
          continue;
        }
        framed = 1;
        blen = (size_t)PQgetlength(lf, k, 1);
        b = (const uint8_t *)PQgetvalue(lf, k, 1);
      }
      /* The answer must fit the frame cap every whistle socket enforces;
       * the client asks again from where this answer stops. */
      if (nitems && bytes + blen + 16 > REPLAY_MAX_BYTES) break;
      Whistle__FeedItem *it = NULL;
      if (framed) {
        Whistle__Envelope *fenv;
        if (wh_env_unpack_in(arena, b, blen, &fenv) == 0 &&
            fenv->body_case == WHISTLE__ENVELOPE__BODY_FEED)
          it = fenv->feed;
        if (it && shared) { /* the lead's item: this row's party, number, role, time */
          it->party = rep.party;
          it->seq = wh_pg_get_u64(r, i, 2);
          it->role = PQgetvalue(r, i, 3);
          it->at_ms = (int64_t)wh_pg_get_u64(r, i, 4);
        }
      } else {
        it = whistle__feed_item__unpack(wh_arena_allocator(arena), blen, b);
      }
      if (!it) { /* notify packed it itself: one that does not decode is damage */
        wh_error("a stored item of feed %s does not decode; the replay skips it", rep.party);
        continue;
      }
      items[nitems++] = it;
      bytes += blen + 16;
    }
    rep.items = items;
    rep.n_items = nitems;
  }
  wh_consumer_reply(c, peer, &out);
  wh_arena_destroy(&arena);
  free(items);
  if (r) PQclear(r);
  if (h) PQclear(h);
  if (lf) PQclear(lf);
}

static const wh_consumer_ops_t s_ops = {.body = WHISTLE__ENVELOPE__BODY_WORK,
                                        .from = "dispatch",
                                        .prepare = s_prepare,
                                        .apply = s_apply,
                                        .steps = s_steps,
                                        .committed = s_committed,
                                        .aborted = s_aborted,
                                        .request = s_request,
                                        .first_applied =
                                            "SELECT ticket_id FROM feed WHERE ticket_id = ANY($2::text[])"
                                            " AND version = 1 AND role = 'lead'"};

static msg_set_t *s_load_msgs(wh_service_t *svc) {
  char path[512], err[512];
  wh_service_conf_path(svc, "messages.conf", path, sizeof path);
  msg_set_t *m = msg_load(path, err, sizeof err);
  if (!m) wh_error("%s", err);
  return m;
}

static void s_reload(wh_service_t *svc) {
  s_notify_t *n = svc->data;
  msg_set_t *m = s_load_msgs(svc);
  wh_org_t *org = wh_service_org(svc);
  if (!m || !org) {
    wh_error("reload refused; the messages and org chart in force stay");
    msg_destroy(&m);
    wh_org_destroy(&org);
    return;
  }
  msg_destroy(&n->msgs);
  n->msgs = m;
  wh_org_destroy(&n->org);
  n->org = org;
  wh_info("messages and org chart reloaded");
}

static void s_stop(wh_service_t *svc) {
  s_notify_t *n = svc->data;
  msg_destroy(&n->msgs);
  wh_org_destroy(&n->org);
  wh_bus_destroy(&n->contacts);
  free(n->job.lines.buf);
  free(n->job.ids);
  uv_timer_stop(&n->job_timer);
  uv_close((uv_handle_t *)&n->job_timer, NULL);
  uv_timer_stop(&n->gather_timer);
  uv_close((uv_handle_t *)&n->gather_timer, NULL);
  wh_consumer_destroy(&n->in);
  wh_bus_destroy(&n->pub);
  s_clear_queue(n);
  free(n->queue);
  free(n->parties);
  wh_rows_free(&n->feed);
  wh_rows_free(&n->delivery);
  free(n->lines.buf);
  if (n->mark_upto && wh_pg_conn(svc->pg)) s_store_mark(n); /* a stop marks what was written */
  wh_rows_free(&n->sent);
  free(n->sent_ids);
  wh_rows_free(&n->mark);
  uv_timer_stop(&n->sink_timer);
  uv_close((uv_handle_t *)&n->sink_timer, NULL);
  uv_close((uv_handle_t *)&n->mark_timer, NULL);
  uv_run(svc->loop, UV_RUN_NOWAIT);
  free(n);
  svc->data = NULL;
}

int notify_start(wh_service_t *svc) {
  if (!svc->pub) {
    wh_error("--pub (where party feeds are published) is required");
    return WH_EINVAL;
  }
  s_notify_t *n = calloc(1, sizeof *n);
  if (!n) return WH_ENOMEM;
  n->svc = svc;
  svc->data = n;
  /* The timers first: s_stop closes them, whatever start got to. */
  uv_timer_init(svc->loop, &n->sink_timer);
  n->sink_timer.data = n;
  uv_timer_init(svc->loop, &n->mark_timer);
  n->mark_timer.data = n;
  uv_timer_init(svc->loop, &n->job_timer);
  n->job_timer.data = n;
  uv_timer_init(svc->loop, &n->gather_timer);
  n->gather_timer.data = n;
  svc->on_stop = s_stop;
  svc->on_reload = s_reload;
  snprintf(n->center, sizeof n->center, "%s", svc->center);
  if (!(n->msgs = s_load_msgs(svc)) || !(n->org = wh_service_org(svc))) return WH_ECONFIG;
  wh_rows_init_record(&n->feed, 8, "feed_row");
  wh_rows_init_record(&n->delivery, 4, "delivery_row");
  wh_rows_init(&n->sent, 1);
  wh_rows_init(&n->mark, 1);
  n->parties = calloc(MAX_PARTIES, sizeof *n->parties);
  if (!n->parties) return WH_ENOMEM;
  n->pub = wh_bus_new(svc->loop, svc->zctx, ZMQ_XPUB, svc->pub, 1, svc->keys, NULL,
                      s_on_subscribe, n);
  n->in = wh_consumer_new(svc->loop, svc->zctx, svc->pg, svc->keys, svc->listen, &s_ops, n);
  if (!n->pub || !n->in) return WH_EZMQ;
  if (svc->contacts_ep && svc->keys) {
    n->contacts = wh_bus_new(svc->loop, svc->zctx, ZMQ_DEALER, svc->contacts_ep, 0, svc->keys,
                             "intake", s_on_numbers, n);
    if (!n->contacts) return WH_EZMQ;
  } else if (svc->sink) {
    wh_warn("no --contacts (or no keys): reporters' messages go to their masked numbers");
  }
  n->sink_upto = s_sink_last_id(svc->sink);
  n->backlog = 1;
  s_flush_deliveries(n); /* what a crash left between commit and sink */
  wh_info("taking work events and replay requests on %s, publishing feeds on %s", svc->listen,
          svc->pub);
  return 0;
}
