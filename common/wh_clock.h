/* wh_clock - the one clock every service reads.
 *
 * Real time plus an offset, so tests can move a service's "now" forward and
 * watch deadlines lapse without sleeping. The offset comes from the
 * WHISTLE_CLOCK_OFFSET_S environment variable at start, or wh_clock_set_offset. */
#ifndef WH_CLOCK_H
#define WH_CLOCK_H

#include <stdint.h>

/* Returns now, as Unix milliseconds, with the offset applied. */
int64_t wh_clock_now_ms(void);
/* Sets the offset in milliseconds added to real time. */
void wh_clock_set_offset_ms(int64_t offset_ms);
/* Reads WHISTLE_CLOCK_OFFSET_S once; call at start. */
void wh_clock_init(void);

/* Formats ms as RFC 3339 in China time (+08:00) into buf; returns buf. */
char *wh_time_format(int64_t ms, char *buf, int len);
/* Parses RFC 3339 (with Z or +hh:mm offset, optional fraction) into Unix ms.
 * Returns 0 or WH_ETIME. */
int wh_time_parse(const char *s, int64_t *ms_out);

#endif
