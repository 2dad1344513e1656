/* clocks - the clocks a work order runs on, as clocks.conf sets them.
 *
 * A policy (one clocks.conf as read) says, per response level, the sign-for
 * time and the level's own clocks (respond, control, follow_up; resolve;
 * plan), the windows of the loop (return, extension, feedback, reopen), the
 * reminders (shares of a clock's allowed time) and the escalation ladder
 * [挂牌督办]. dispatch stores each policy it loads in clock_policy and every
 * order carries the id of the one in force when it was dispatched, so a
 * changed file moves new orders only.
 *
 * An order's clocks are entries of its row (names, start, due, next
 * reminder, lapsed, met): the lead's sign-for clock "sign_for", a
 * co-party's "sign_for:PARTY", the level's clocks, and once resolved the
 * feedback window "feedback". What firing them does at a time is worked
 * out here, without the database: clk_fire marks what lapsed and what is
 * to be reminded, and says what the order's next firing is. */
#ifndef WH_DISPATCH_CLOCKS_H
#define WH_DISPATCH_CLOCKS_H

#include "wh_calendar.h"

#include <stddef.h>
#include <stdint.h>

#define CLK_MAX 16          /* clocks an order runs at once */
#define CLK_LEVEL_MAX 4     /* a level's own clocks, beside sign_for */
#define CLK_REMINDERS_MAX 4 /* reminder shares */
#define CLK_STEPS_MAX 6     /* ladder steps */
#define CLK_NAME_MAX 112    /* "sign_for:" and a party code */

typedef enum { CLK_MINUTES, CLK_HOURS, CLK_DAYS, CLK_WORKDAYS } clk_unit_t;

/* "4 hours", "1 working day". */
typedef struct {
  int n;
  clk_unit_t unit;
} clk_span_t;

typedef struct {
  char name[24];
  clk_span_t within;
} clk_def_t;

typedef struct {
  clk_span_t sign_for;
  clk_def_t clocks[CLK_LEVEL_MAX];
  int nclocks;
} clk_level_t;

/* A ladder step: whom it reaches (org.conf's supervisors: community,
 * street, district) and how long after the step before (the first: after
 * the lapse). */
typedef struct {
  char to[16];
  clk_span_t after;
} clk_step_t;

typedef struct {
  clk_level_t levels[3];
  clk_span_t return_window, extension_max, feedback_window, reopen_window;
  int reminders[CLK_REMINDERS_MAX]; /* percent, ascending */
  int nreminders;
  clk_step_t ladder[CLK_STEPS_MAX];
  int nsteps;
  char *text;  /* the file as read: what clock_policy keeps */
  uint32_t id; /* its clock_policy row, once stored (0 before) */
} clk_policy_t;

/* Loads clocks.conf; NULL with "file:line: text" in err on error. */
clk_policy_t *clk_policy_load(const char *path, char *err, size_t errlen);
/* Reads a policy from its text (a stored one); origin names it in errors. */
clk_policy_t *clk_policy_parse(const char *text, const char *origin, char *err, size_t errlen);
void clk_policy_destroy(clk_policy_t **self_p);

/* Parses "N minutes|hours|days|working days" (singular too). 0 or -1. */
int clk_span_parse(const char *s, clk_span_t *out);
/* The end of span s started at from_ms: elapsed time, or the end of the
 * Nth working day after the day of from_ms. */
int64_t clk_span_end(const wh_calendar_t *cal, clk_span_t s, int64_t from_ms);

/* One clock of an order. Times are Unix ms; 0 is none. */
typedef struct {
  char name[CLK_NAME_MAX];
  int64_t set_ms, due_ms, remind_ms, lapsed_ms, met_ms;
} clk_t;

typedef struct {
  clk_t c[CLK_MAX];
  int n;
} clk_set_t;

/* What kind of clock a name is. */
int clk_is_sign(const char *name);        /* sign_for or sign_for:PARTY */
const char *clk_party(const char *name);  /* PARTY of sign_for:PARTY, or NULL */
int clk_is_feedback(const char *name);
/* 1 while the clock runs: neither lapsed nor met. */
int clk_running(const clk_t *c);

/* The first reminder share of clock c's time after `after`; 0: none left
 * (a feedback window has none). */
int64_t clk_remind_after(const clk_policy_t *p, const clk_t *c, int64_t after);
/* Adds a clock to s, its first reminder the first share not yet past at
 * now (one already past is not sent). Returns its index, or -1 when s is
 * full. */
int clk_add(const clk_policy_t *p, clk_set_t *s, const char *name, int64_t set_ms,
            int64_t due_ms, int64_t now);
/* Starts the order's clocks for level: the lead's sign-for clock from
 * sign_from (none when the lead is the center's queue: lead_signs 0), each
 * co-party's, and the level's own clocks from start. Replaces s. Returns
 * the number of clocks, or -1 for a level the policy has not. */
int clk_start(const clk_policy_t *p, const wh_calendar_t *cal, int level, int lead_signs,
              char *const *co, size_t nco, int64_t sign_from, int64_t start, int64_t now,
              clk_set_t *s);
/* Marks clock `name` met at now (no-op when absent or not running). */
void clk_meet(clk_set_t *s, const char *name, int64_t now);
/* Marks every running clock but the feedback window met (the result). */
void clk_meet_all(clk_set_t *s, int64_t now);
/* Drops the clocks whose name starts with prefix ("sign_for:"), or is name. */
void clk_drop(clk_set_t *s, const char *name, int prefix);
/* Moves clock i to due_ms, started again at now (an approved extension). */
void clk_move(const clk_policy_t *p, clk_set_t *s, int i, int64_t due_ms, int64_t now);
/* The deadline an extension moves: the last of the level's own clocks. -1: none. */
int clk_main(const clk_set_t *s);

/* What one firing did. */
typedef struct {
  int lapsed[CLK_MAX], nlapsed;       /* indices into the set */
  int reminded[CLK_MAX], nreminded;
  int share;                          /* the largest share passed among the reminded */
  int64_t lead_lapse_due_ms;          /* the earliest lapsed clock of the lead's work (0: none) */
  int feedback_due;                   /* the feedback window passed */
} clk_fired_t;

/* Fires s at now: a running clock past due lapses (its reminders left
 * unsent), one whose next reminder has come is reminded once, however many
 * shares have passed, and waits for the next share after now. */
void clk_fire(const clk_policy_t *p, clk_set_t *s, int64_t now, clk_fired_t *f);
/* The earliest firing still to come (a reminder or a due time): 0 none. */
int64_t clk_next(const clk_set_t *s);

/* When the ladder's step `step` (from 0) falls due after `from_ms` (the
 * lapse, or the step before); 0 when the ladder has no such step. */
int64_t clk_ladder_due(const clk_policy_t *p, const wh_calendar_t *cal, int step, int64_t from_ms);

#endif
