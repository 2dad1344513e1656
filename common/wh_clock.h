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

/* How long things take, not when they happen: milliseconds on
 * CLOCK_MONOTONIC, which neither the business clock's offset nor a change
 * of the wall clock moves. Resends, liveness, a stuck message's warning,
 * the log's rate windows and a client's timeouts read it; deadlines and
 * timestamps read wh_clock_now_ms. */
int64_t wh_clock_mono_ms(void);
/* Tests only: how far the monotonic clock reads ahead of the system's
 * (a minute of silence without a minute of waiting). */
void wh_clock_mono_shift_ms(int64_t shift_ms);

/* Formats ms as RFC 3339 in China time (+08:00) into buf; returns buf. */
char *wh_time_format(int64_t ms, char *buf, int len);
/* Parses RFC 3339 (with Z or +hh:mm offset, optional fraction) into Unix ms.
 * Returns 0 or WH_ETIME. */
int wh_time_parse(const char *s, int64_t *ms_out);

#endif
