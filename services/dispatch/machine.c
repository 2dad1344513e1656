/* machine - the table, and the one function that reads it. */
#include "machine.h"

#include <stddef.h>
#include <string.h>

#define S(x) (1u << (x))
/* Where a party still has the work, or the center has it back. */
#define OPEN (S(WO_DISPATCHED) | S(WO_SIGNED) | S(WO_IN_PROGRESS) | S(WO_RETURNED) | S(WO_REOPENED))
#define WORKING (S(WO_SIGNED) | S(WO_IN_PROGRESS) | S(WO_REOPENED))
/* The next state is where the order was (a co-party's part, a request). */
#define WO_SAME WO_NSTATES
/* ... or where it was before it was returned (uphold). */
#define WO_BEFORE_RETURN (WO_NSTATES + 1)

typedef wo_code_t (*wo_guard_t)(const wo_order_t *o, const wo_request_t *q, const char **why);

typedef struct {
  wo_action_t action;
  unsigned who;  /* roles that may, WR_* */
  unsigned from; /* states it may be taken from */
  /* Which row of the action applies, when it has several (the lead's or a
   * co-party's sign; a feedback's rating); NULL: this one. */
  int (*match)(const wo_request_t *q);
  wo_guard_t guard; /* refuses, or NULL */
  unsigned next;    /* a wo_state_t, WO_SAME or WO_BEFORE_RETURN */
  unsigned effects;
} wo_row_t;

static int s_as_lead(const wo_request_t *q) { return (q->roles & WR_LEAD) != 0; }
static int s_as_co(const wo_request_t *q) { return !(q->roles & WR_LEAD) && (q->roles & WR_CO); }
static int s_closes(const wo_request_t *q) {
  return !q->unresolved && (q->rating == WF_SATISFIED || q->rating == WF_BASICALLY_SATISFIED);
}
static int s_reopens(const wo_request_t *q) {
  return q->rating == WF_UNSATISFIED || (q->unresolved && q->rating != WF_NONE);
}
static int s_unreachable(const wo_request_t *q) {
  return q->rating == WF_UNREACHABLE && !q->unresolved;
}

static int s_one_of(const char *s, const char *const *codes) {
  for (; s && *codes; codes++)
    if (!strcmp(s, *codes)) return 1;
  return 0;
}

static wo_code_t g_part_unsigned(const wo_order_t *o, const wo_request_t *q, const char **why) {
  (void)q;
  if (!o->part_signed) return WO_OK;
  *why = "this party's part is signed for already";
  return WO_WRONG_STATE;
}

static wo_code_t g_part_signed(const wo_order_t *o, const wo_request_t *q, const char **why) {
  (void)q;
  if (o->part_signed && !o->part_done) return WO_OK;
  *why = o->part_done ? "this party's part is done" : "sign for this party's part first";
  return WO_WRONG_STATE;
}

static wo_code_t g_return(const wo_order_t *o, const wo_request_t *q, const char **why) {
  static const char *const reasons[] = {"not_ours", "wrong_place", "unclear_owner", "other", NULL};
  if (!s_one_of(q->reason, reasons)) {
    *why = "REASON is one of not_ours, wrong_place, unclear_owner, other";
    return WO_BAD_REASON;
  }
  if (o->return_until_ms && q->now_ms > o->return_until_ms) {
    *why = "the return window has passed";
    return WO_TOO_LATE;
  }
  return WO_OK;
}

static wo_code_t g_extend(const wo_order_t *o, const wo_request_t *q, const char **why) {
  if (o->extension_pending) {
    *why = "an extension is pending already";
    return WO_WRONG_STATE;
  }
  if (o->resolve_due_ms && q->now_ms > o->resolve_due_ms) {
    *why = "the deadline has lapsed: an extension is asked before it does";
    return WO_TOO_LATE;
  }
  if (q->until_ms <= q->now_ms || (o->resolve_due_ms && q->until_ms <= o->resolve_due_ms)) {
    *why = "UNTIL is later than the deadline in force";
    return WO_BAD_TIME;
  }
  if (o->resolve_due_ms && q->until_ms > o->resolve_due_ms + o->extension_max_ms) {
    *why = "UNTIL is beyond the longest extension allowed";
    return WO_TOO_FAR;
  }
  return WO_OK;
}

static wo_code_t g_pending(const wo_order_t *o, const wo_request_t *q, const char **why) {
  (void)q;
  if (o->extension_pending) return WO_OK;
  *why = "no extension is pending";
  return WO_WRONG_STATE;
}

static wo_code_t g_rating(const wo_order_t *o, const wo_request_t *q, const char **why) {
  (void)o;
  (void)q;
  *why = "RATING is one of satisfied, basically_satisfied, unsatisfied, unreachable";
  return WO_BAD_REASON;
}

static wo_code_t g_close(const wo_order_t *o, const wo_request_t *q, const char **why) {
  if (o->feedback_given || (o->feedback_until_ms && q->now_ms > o->feedback_until_ms)) return WO_OK;
  *why = "no feedback yet, and the feedback window is still open";
  return WO_WRONG_STATE;
}

static wo_code_t g_reopen(const wo_order_t *o, const wo_request_t *q, const char **why) {
  if (!o->reopen_until_ms || q->now_ms <= o->reopen_until_ms) return WO_OK;
  *why = "closed too long ago to reopen";
  return WO_TOO_LATE;
}

static wo_code_t g_ladder(const wo_order_t *o, const wo_request_t *q, const char **why) {
  (void)q;
  if (o->ladder_left > 0) return WO_OK;
  *why = "every step of the escalation ladder is taken";
  return WO_WRONG_STATE;
}

static wo_code_t g_void(const wo_order_t *o, const wo_request_t *q, const char **why) {
  static const char *const reasons[] = {"prank", "test", "not_street", NULL};
  (void)o;
  if (s_one_of(q->reason, reasons)) return WO_OK;
  *why = "REASON is one of prank, test, not_street";
  return WO_BAD_REASON;
}

/* The table. An action's rows are tried in order: the first whose match
 * holds and whose roles include the actor's is the one. */
static const wo_row_t s_rows[] = {
    /* 签收: the lead for the order, each co-party for its own part */
    {WA_SIGN, WR_LEAD, S(WO_DISPATCHED) | S(WO_REOPENED), s_as_lead, NULL, WO_SIGNED,
     WE_SIGN_MET | WE_TELL_REPORTER},
    {WA_SIGN, WR_CO, S(WO_DISPATCHED) | WORKING, s_as_co, g_part_unsigned, WO_SAME, WE_PART_SIGNED},
    /* 进度 */
    {WA_PROGRESS, WR_LEAD, WORKING, s_as_lead, NULL, WO_IN_PROGRESS, WE_TELL_REPORTER},
    {WA_PROGRESS, WR_CO, S(WO_DISPATCHED) | WORKING, s_as_co, g_part_signed, WO_SAME,
     WE_TELL_REPORTER},
    /* 退单, within the return window */
    {WA_RETURN, WR_LEAD, S(WO_DISPATCHED) | S(WO_SIGNED), NULL, g_return, WO_RETURNED,
     WE_RETURN_COUNTED | WE_TO_CENTER},
    /* 派单/改派: a new lead, its clocks from now */
    {WA_ASSIGN, WR_CENTER, OPEN, NULL, NULL, WO_DISPATCHED, WE_CLOCKS_RESTART | WE_TELL_REPORTER},
    /* the return refused: back to the same lead, clocks as they were */
    {WA_UPHOLD, WR_CENTER, S(WO_RETURNED), NULL, NULL, WO_BEFORE_RETURN, 0},
    /* 延期申请, before the deadline lapses, at most the maximum beyond it */
    {WA_EXTEND, WR_LEAD, WORKING, NULL, g_extend, WO_SAME, WE_EXTENSION_ASKED | WE_TO_CENTER},
    {WA_APPROVE, WR_CENTER, WORKING, NULL, g_pending, WO_SAME, WE_DEADLINE_MOVED | WE_TELL_REPORTER},
    {WA_REFUSE, WR_CENTER, WORKING, NULL, g_pending, WO_SAME, WE_EXTENSION_REFUSED},
    /* 办结: the lead's result goes to the reporter, and to every repeat's */
    {WA_RESOLVE, WR_LEAD, WORKING, s_as_lead, NULL, WO_RESOLVED,
     WE_TELL_REPORTER | WE_TELL_REPEATS | WE_FEEDBACK_CLOCK},
    {WA_RESOLVE, WR_CO, S(WO_DISPATCHED) | WORKING, s_as_co, g_part_signed, WO_SAME, WE_PART_DONE},
    /* 回访/评单, by the hotline integrator or the center */
    {WA_FEEDBACK, WR_HOTLINE | WR_CENTER, S(WO_RESOLVED), s_closes, NULL, WO_CLOSED,
     WE_FEEDBACK_NOTED | WE_TELL_REPORTER},
    {WA_FEEDBACK, WR_HOTLINE | WR_CENTER, S(WO_RESOLVED), s_reopens, NULL, WO_REOPENED,
     WE_FEEDBACK_NOTED | WE_RESOLVE_RESTART | WE_REOPEN_COUNTED | WE_TELL_REPORTER},
    {WA_FEEDBACK, WR_HOTLINE | WR_CENTER, S(WO_RESOLVED), s_unreachable, NULL, WO_SAME,
     WE_FEEDBACK_NOTED},
    {WA_FEEDBACK, WR_HOTLINE | WR_CENTER, S(WO_RESOLVED), NULL, g_rating, WO_SAME, 0},
    /* 结案, after feedback or once its window has passed */
    {WA_CLOSE, WR_CENTER, S(WO_RESOLVED), NULL, g_close, WO_CLOSED, WE_TELL_REPORTER},
    /* 回头看, within the reopen window */
    {WA_REOPEN, WR_CENTER, S(WO_CLOSED), NULL, g_reopen, WO_REOPENED,
     WE_RESOLVE_RESTART | WE_REOPEN_COUNTED | WE_TELL_REPORTER},
    /* 无效工单 */
    {WA_VOID, WR_CENTER, S(WO_DISPATCHED) | S(WO_RETURNED), NULL, g_void, WO_VOID, WE_TELL_REPORTER},
    /* 督办: the next step of the ladder, now */
    {WA_SUPERVISE, WR_CENTER, OPEN, NULL, g_ladder, WO_SAME, WE_LADDER_STEP},
};

static wo_outcome_t s_refused(wo_code_t code, const char *why, const wo_order_t *o) {
  return (wo_outcome_t){.code = code, .why = why, .next = o->state};
}

wo_outcome_t wo_decide(const wo_order_t *o, const wo_request_t *q) {
  if ((unsigned)o->state >= WO_NSTATES || (unsigned)q->action >= WA_NACTIONS)
    return s_refused(WO_WRONG_STATE, "not a state or an action of a work order", o);
  if (q->version && q->version != o->version)
    return s_refused(WO_STALE, "the order has moved on since that version", o);
  const wo_row_t *row = NULL;
  int has_action = 0;
  for (size_t i = 0; i < sizeof s_rows / sizeof *s_rows && !row; i++) {
    const wo_row_t *r = &s_rows[i];
    if (r->action != q->action) continue;
    has_action = 1;
    if ((r->who & q->roles) && (!r->match || r->match(q))) row = r;
  }
  if (!row) {
    return s_refused(has_action ? WO_FORBIDDEN : WO_WRONG_STATE,
                     has_action ? "this party has no role on the order that may do this"
                                : "no such action",
                     o);
  }
  if (!(row->from & S(o->state)))
    return s_refused(WO_WRONG_STATE, "not from the order's state", o);
  const char *why = NULL;
  wo_code_t code = row->guard ? row->guard(o, q, &why) : WO_OK;
  if (code != WO_OK) return s_refused(code, why, o);
  wo_state_t next = row->next == WO_SAME           ? o->state
                    : row->next == WO_BEFORE_RETURN ? o->before_return
                                                    : (wo_state_t)row->next;
  return (wo_outcome_t){.code = WO_OK, .next = next, .effects = row->effects};
}

static const char *const s_states[WO_NSTATES] = {
    "dispatched", "signed", "in_progress", "resolved", "closed", "returned", "reopened", "merged",
    "void"};
static const char *const s_actions[WA_NACTIONS] = {
    "sign", "progress", "return", "assign", "uphold", "extend", "approve",
    "refuse", "resolve", "feedback", "close", "reopen", "void", "supervise"};
static const char *const s_codes[] = {"ok",       "forbidden",  "wrong_state", "too_late",
                                      "too_far",  "bad_reason", "bad_time",    "stale"};
static const char *const s_ratings[] = {"", "satisfied", "basically_satisfied", "unsatisfied",
                                        "unreachable"};

const char *wo_state_name(wo_state_t s) { return (unsigned)s < WO_NSTATES ? s_states[s] : ""; }
const char *wo_action_name(wo_action_t a) { return (unsigned)a < WA_NACTIONS ? s_actions[a] : ""; }
const char *wo_code_name(wo_code_t c) {
  return (unsigned)c < sizeof s_codes / sizeof *s_codes ? s_codes[c] : "";
}

static int s_parse(const char *name, const char *const *names, int n, int from) {
  for (int i = from; name && i < n; i++)
    if (!strcmp(name, names[i])) return i;
  return -1;
}

int wo_state_parse(const char *name) { return s_parse(name, s_states, WO_NSTATES, 0); }
int wo_action_parse(const char *name) { return s_parse(name, s_actions, WA_NACTIONS, 0); }
int wo_rating_parse(const char *name) { return s_parse(name, s_ratings, 5, 1); }
