/* wh_calendar - working days.
 *
 * A working day is a weekday that is not a public holiday, or a make-up
 * working day (a weekend day the state calendar turns into a working day).
 * Days are reckoned in the calendar's local time (China, UTC+8, by default).
 * The clocks that count working days are dispatch's (clocks.conf). */
#ifndef WH_CALENDAR_H
#define WH_CALENDAR_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
  int32_t *holidays; /* sorted day numbers (days since 1970-01-01, local) */
  size_t nholidays;
  int32_t *workdays; /* make-up working days, sorted */
  size_t nworkdays;
  int weekend[8];    /* weekend[iso weekday] = 1 */
  int tz_offset_min;
} wh_calendar_t;

/* Loads a calendar; NULL with "file:line: text" in err on error. */
wh_calendar_t *wh_calendar_load(const char *path, char *err, size_t errlen);
void wh_calendar_destroy(wh_calendar_t **self_p);
/* 1 if the local day containing ms is a working day. */
int wh_calendar_is_workday(const wh_calendar_t *cal, int64_t ms);
/* The last millisecond (local) of the nth working day after the day that
 * holds from_ms: "within n working days" of it. */
int64_t wh_calendar_workdays_end(const wh_calendar_t *cal, int64_t from_ms, int n);

#endif
