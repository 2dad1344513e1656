/* wh_clock - real time plus a test offset; RFC 3339 in and out. */
#include "wh_clock.h"
#include "wh_err.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int64_t s_offset_ms;

void wh_clock_init(void) {
  const char *off = getenv("WHISTLE_CLOCK_OFFSET_S");
  if (off && *off) s_offset_ms = strtoll(off, NULL, 10) * 1000;
}

void wh_clock_set_offset_ms(int64_t offset_ms) { s_offset_ms = offset_ms; }

int64_t wh_clock_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + s_offset_ms;
}

static int64_t s_mono_shift_ms;

void wh_clock_mono_shift_ms(int64_t shift_ms) { s_mono_shift_ms = shift_ms; }

int64_t wh_clock_mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + s_mono_shift_ms;
}

/* Writes n decimal digits of v at p (zero-padded). */
static void s_digits_out(char *p, int v, int n) {
  for (int i = n - 1; i >= 0; i--, v /= 10) p[i] = (char)('0' + v % 10);
}

char *wh_time_format(int64_t ms, char *buf, int len) {
  time_t t = (time_t)(ms / 1000) + 8 * 3600;
  struct tm tm;
  gmtime_r(&t, &tm);
  /* Spelled out by hand for four-digit years: strftime's locale machinery
   * was most of the cost of the few times every ticket's notes carry. */
  int year = tm.tm_year + 1900;
  if (year < 0 || year > 9999 || len < 26) {
    strftime(buf, (size_t)len, "%Y-%m-%dT%H:%M:%S+08:00", &tm);
    return buf;
  }
  memcpy(buf, "0000-00-00T00:00:00+08:00", 26);
  s_digits_out(buf, year, 4);
  s_digits_out(buf + 5, tm.tm_mon + 1, 2);
  s_digits_out(buf + 8, tm.tm_mday, 2);
  s_digits_out(buf + 11, tm.tm_hour, 2);
  s_digits_out(buf + 14, tm.tm_min, 2);
  s_digits_out(buf + 17, tm.tm_sec, 2);
  return buf;
}

static int s_digits(const char *s, int n, int *out) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (!isdigit((unsigned char)s[i])) return -1;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return 0;
}

int wh_time_parse(const char *s, int64_t *ms_out) {
  int y, mo, d, h, mi, se, frac_ms = 0;
  if (!s || strlen(s) < 20) return WH_ETIME;
  if (s_digits(s, 4, &y) || s[4] != '-' || s_digits(s + 5, 2, &mo) || s[7] != '-' ||
      s_digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
      s_digits(s + 11, 2, &h) || s[13] != ':' || s_digits(s + 14, 2, &mi) || s[16] != ':' ||
      s_digits(s + 17, 2, &se))
    return WH_ETIME;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60) return WH_ETIME;
  const char *p = s + 19;
  if (*p == '.') {
    int scale = 100;
    p++;
    if (!isdigit((unsigned char)*p)) return WH_ETIME;
    while (isdigit((unsigned char)*p)) {
      frac_ms += (*p - '0') * scale;
      scale /= 10;
      p++;
    }
  }
  int off_s = 0;
  if (*p == 'Z' || *p == 'z') {
    p++;
  } else if (*p == '+' || *p == '-') {
    int oh, om;
    if (s_digits(p + 1, 2, &oh) || p[3] != ':' || s_digits(p + 4, 2, &om) || oh > 23 || om > 59)
      return WH_ETIME;
    off_s = (oh * 3600 + om * 60) * (*p == '-' ? -1 : 1);
    p += 6;
  } else {
    return WH_ETIME;
  }
  if (*p) return WH_ETIME;
  static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  if (d > mdays[mo - 1] + (mo == 2 && leap)) return WH_ETIME;
  struct tm tm = {0};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = se;
  time_t t = timegm(&tm);
  *ms_out = ((int64_t)t - off_s) * 1000 + frac_ms;
  return 0;
}
