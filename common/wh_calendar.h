/* wh_calendar - working days and the clocks each response level runs on.
 *
 * A working day is a weekday that is not a public holiday, or a make-up
 * working day (a weekend day the state calendar turns into a working day).
 * Days are reckoned in the calendar's local time (China, UTC+8, by default).
 * Clocks per level come from the same file:
 *   level 1: respond, control and follow up, minutes from receipt;
 *   level 2: resolve by the end of the Nth working day after the day of receipt;
 *   level 3: a solution plan within N calendar days. */
#ifndef WH_CALENDAR_H
#define WH_CALENDAR_H

#include <stddef.h>
#include <stdint.h>

#define WH_MAX_DEADLINES 4

typedef struct {
  int32_t *holidays; /* sorted day numbers (days since 1970-01-01, local) */
  size_t nholidays;
  int32_t *workdays; /* make-up working days, sorted */
  size_t nworkdays;
  int weekend[8];    /* weekend[iso weekday] = 1 */
  int tz_offset_min;
  int l1_respond_min, l1_control_min, l1_follow_min;
  int l2_resolve_days;
  int l3_plan_days;
} wh_calendar_t;

typedef struct {
  const char *name;
  int64_t due_ms;
} wh_due_t;

/* Loads a calendar; NULL with "file:line: text" in err on error. */
wh_calendar_t *wh_calendar_load(const char *path, char *err, size_t errlen);
void wh_calendar_destroy(wh_calendar_t **self_p);
/* 1 if the local day containing ms is a working day. */
int wh_calendar_is_workday(const wh_calendar_t *cal, int64_t ms);
/* The last millisecond (local) of the nth working day after the day that
 * holds from_ms: "within n working days" of it. */
int64_t wh_calendar_workdays_end(const wh_calendar_t *cal, int64_t from_ms, int n);
/* Writes the deadlines of a ticket of `level` received at received_ms into
 * out (at most WH_MAX_DEADLINES); returns how many, or 0 for a bad level. */
int wh_calendar_deadlines(const wh_calendar_t *cal, int level, int64_t received_ms,
                          wh_due_t *out);

#endif
