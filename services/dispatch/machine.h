/* machine - a work order's life as one table: state x action -> guard -> effect.
 *
 * 派单 -> 签收 -> 办理 -> 办结 -> 回访/评单 -> 结案, with returns (退单), extensions
 * (延期), reopening (回头看), void orders and supervision (督办). wo_decide
 * looks an action up in the table and answers what it does to the order:
 * refused, with a code and a sentence (and nothing changes), or the state the
 * order moves to and the effects the caller carries out in the same
 * transaction (clocks started, stopped or moved, events out, reporter
 * messages). It reads nothing and writes nothing: the order as it stands and
 * the request are all it is given, so every row and every refusal is tested
 * on its own. Who the actor is comes from its key; its roles on the order
 * (lead, co-party, the center, the hotline integrator) are the caller's to
 * work out from the order's parties. */
#ifndef WH_DISPATCH_MACHINE_H
#define WH_DISPATCH_MACHINE_H

#include <stdint.h>

typedef enum {
  WO_DISPATCHED, /* with its lead (the center's manual queue: lead center) */
  WO_SIGNED,     /* the lead signed for it */
  WO_IN_PROGRESS,
  WO_RESOLVED,   /* the lead says done; feedback awaited */
  WO_CLOSED,
  WO_RETURNED,   /* handed back by the lead, waiting at the center */
  WO_REOPENED,   /* back with the lead: feedback said unresolved, or the center reopened it */
  WO_MERGED,     /* a repeat, under its first: no action */
  WO_VOID,       /* not a matter for the street: no action */
  WO_NSTATES
} wo_state_t;

typedef enum {
  WA_SIGN, WA_PROGRESS, WA_RETURN, WA_ASSIGN, WA_UPHOLD, WA_EXTEND, WA_APPROVE, WA_REFUSE,
  WA_RESOLVE, WA_FEEDBACK, WA_CLOSE, WA_REOPEN, WA_VOID, WA_SUPERVISE, WA_NACTIONS
} wo_action_t;

/* The actor's roles on the order (a bit each). */
enum { WR_LEAD = 1, WR_CO = 2, WR_CENTER = 4, WR_HOTLINE = 8,
       WR_SUPERVISOR = 16 /* a step of the order's ladder reached it: it reads the order */ };

typedef enum {
  WO_OK,
  WO_FORBIDDEN,   /* the actor has no role on the order that may do this */
  WO_WRONG_STATE, /* not from the order's state (or its part's) */
  WO_TOO_LATE,    /* a window has passed */
  WO_TOO_FAR,     /* an extension beyond the maximum */
  WO_BAD_REASON,  /* a reason or rating that is not one of the codes */
  WO_BAD_TIME,    /* a time that cannot be (an extension to before the deadline) */
  WO_STALE        /* the request named a version the order has moved on from */
} wo_code_t;

typedef enum { WF_NONE, WF_SATISFIED, WF_BASICALLY_SATISFIED, WF_UNSATISFIED, WF_UNREACHABLE } wo_rating_t;

/* What the caller does when the action is taken (a bit each). */
enum {
  WE_SIGN_MET = 1 << 0,        /* the lead's sign-for clock is met */
  WE_PART_SIGNED = 1 << 1,     /* the co-party's part is signed; its sign-for clock met */
  WE_TELL_REPORTER = 1 << 2,   /* the public note (or result, new date, void) goes to the reporter */
  WE_CLOCKS_RESTART = 1 << 3,  /* every clock starts again from now (a new lead) */
  WE_RETURN_COUNTED = 1 << 4,  /* one return more (ping-pong) */
  WE_EXTENSION_ASKED = 1 << 5, /* an extension request, pending; clocks keep running */
  WE_DEADLINE_MOVED = 1 << 6,  /* the pending extension approved: the deadline moves to it */
  WE_EXTENSION_REFUSED = 1 << 7,
  WE_FEEDBACK_CLOCK = 1 << 8,  /* resolved: the feedback window starts */
  WE_TELL_REPEATS = 1 << 9,    /* the result goes to the reporters of every repeat merged under it */
  WE_RESOLVE_RESTART = 1 << 10, /* back with the lead: its resolve clock starts again */
  WE_REOPEN_COUNTED = 1 << 11,
  WE_FEEDBACK_NOTED = 1 << 12, /* a rating recorded */
  WE_LADDER_STEP = 1 << 13,    /* the next escalation step not yet taken, now */
  WE_TO_CENTER = 1 << 14,      /* an item on the center's queue */
  WE_PART_DONE = 1 << 15       /* the co-party's part is done */
};

/* The order as the state machine needs it. Times are Unix ms; 0 is "none". */
typedef struct {
  wo_state_t state;
  uint32_t version;
  wo_state_t before_return;  /* where a return came from: uphold goes back there */
  int part_signed, part_done; /* the acting co-party's part */
  int64_t return_until_ms;   /* the return window's end */
  int64_t resolve_due_ms;    /* the resolve (or plan) deadline in force */
  int64_t extension_max_ms;  /* how far past that deadline an extension may reach */
  int extension_pending;
  int feedback_given;
  int64_t feedback_until_ms; /* the feedback window's end */
  int64_t reopen_until_ms;   /* a closed order may be reopened until then */
  int ladder_left;           /* steps of the escalation ladder not yet taken */
} wo_order_t;

typedef struct {
  wo_action_t action;
  unsigned roles;    /* the actor's, on this order */
  int64_t now_ms;    /* business time */
  uint32_t version;  /* --version N, or 0 */
  const char *reason; /* return and void reasons */
  int64_t until_ms;  /* extend */
  wo_rating_t rating; /* feedback */
  int unresolved;    /* feedback --unresolved */
} wo_request_t;

typedef struct {
  wo_code_t code;
  const char *why;  /* a sentence, for a refusal */
  wo_state_t next;  /* the order's state after it */
  unsigned effects; /* WE_* */
} wo_outcome_t;

wo_outcome_t wo_decide(const wo_order_t *order, const wo_request_t *req);

/* Names as whistlectl and the wire write them: "dispatched", "sign",
 * "forbidden", "satisfied"; wo_*_parse answer -1 for an unknown name. */
const char *wo_state_name(wo_state_t s);
const char *wo_action_name(wo_action_t a);
const char *wo_code_name(wo_code_t c);
int wo_state_parse(const char *name);
int wo_action_parse(const char *name);
int wo_rating_parse(const char *name);

#endif
