/* wh_calendar - working-day arithmetic over holidays and make-up days. */
#include "wh_calendar.h"
#include "wh_config.h"
#include "wh_err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DAY_MS (86400LL * 1000)

static int s_cmp(const void *a, const void *b) {
  int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
  return (x > y) - (x < y);
}

static int32_t s_days_from_civil(int y, int m, int d) {
  /* Howard Hinnant's days_from_civil. */
  y -= m <= 2;
  int era = (y >= 0 ? y : y - 399) / 400;
  unsigned yoe = (unsigned)(y - era * 400);
  unsigned doy = (153 * (unsigned)(m + (m > 2 ? -3 : 9)) + 2) / 5 + (unsigned)d - 1;
  unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + (int32_t)doe - 719468;
}

static int s_parse_day(const char *s, int32_t *out) {
  int y, m, d;
  char tail;
  if (sscanf(s, "%4d-%2d-%2d%c", &y, &m, &d, &tail) != 3 || m < 1 || m > 12 || d < 1 || d > 31)
    return -1;
  *out = s_days_from_civil(y, m, d);
  return 0;
}

static int s_days(config_t *cfg, const char *name, int32_t **out, size_t *nout, char *err,
                  size_t errlen) {
  config_setting_t *list = config_lookup(cfg, name);
  size_t n = list ? (size_t)config_setting_length(list) : 0;
  *out = calloc(n + 1, sizeof **out);
  *nout = 0;
  for (size_t i = 0; i < n; i++) {
    config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
    const char *s = config_setting_get_string(e);
    if (!s || s_parse_day(s, &(*out)[i]))
      return wh_config_fail(e, err, errlen, "'%s' needs dates as \"YYYY-MM-DD\"", name);
    (*nout)++;
  }
  qsort(*out, *nout, sizeof **out, s_cmp);
  return 0;
}

void wh_calendar_destroy(wh_calendar_t **self_p) {
  if (!self_p || !*self_p) return;
  free((*self_p)->holidays);
  free((*self_p)->workdays);
  free(*self_p);
  *self_p = NULL;
}

wh_calendar_t *wh_calendar_load(const char *path, char *err, size_t errlen) {
  config_t cfg;
  if (wh_config_read(&cfg, path, err, errlen)) return NULL;
  wh_calendar_t *c = calloc(1, sizeof *c);
  c->tz_offset_min = 480;
  config_lookup_int(&cfg, "tz_offset_minutes", &c->tz_offset_min);
  config_setting_t *wk = config_lookup(&cfg, "weekend");
  if (!wk) {
    c->weekend[6] = c->weekend[7] = 1;
  } else {
    for (int i = 0; i < config_setting_length(wk); i++) {
      int d = config_setting_get_int_elem(wk, i);
      if (d < 1 || d > 7) {
        wh_config_fail(wk, err, errlen, "weekend days are ISO weekdays 1 (Monday) .. 7 (Sunday)");
        goto fail;
      }
      c->weekend[d] = 1;
    }
  }
  if (s_days(&cfg, "holidays", &c->holidays, &c->nholidays, err, errlen) ||
      s_days(&cfg, "workdays", &c->workdays, &c->nworkdays, err, errlen))
    goto fail;
  for (size_t i = 0; i < c->nworkdays; i++)
    if (bsearch(&c->workdays[i], c->holidays, c->nholidays, sizeof(int32_t), s_cmp)) {
      snprintf(err, errlen, "%s: a day is listed both as holiday and as make-up working day",
               path);
      goto fail;
    }
  config_destroy(&cfg);
  return c;
fail:
  config_destroy(&cfg);
  wh_calendar_destroy(&c);
  return NULL;
}

static int32_t s_local_day(const wh_calendar_t *c, int64_t ms) {
  int64_t local = ms + (int64_t)c->tz_offset_min * 60000;
  return (int32_t)(local >= 0 ? local / DAY_MS : (local - DAY_MS + 1) / DAY_MS);
}

static int s_day_is_workday(const wh_calendar_t *c, int32_t day) {
  if (bsearch(&day, c->workdays, c->nworkdays, sizeof day, s_cmp)) return 1;
  if (bsearch(&day, c->holidays, c->nholidays, sizeof day, s_cmp)) return 0;
  int iso = (int)(((day % 7) + 7 + 3) % 7) + 1; /* 1970-01-01 was a Thursday (4) */
  return !c->weekend[iso];
}

int wh_calendar_is_workday(const wh_calendar_t *c, int64_t ms) {
  return s_day_is_workday(c, s_local_day(c, ms));
}

int64_t wh_calendar_workdays_end(const wh_calendar_t *c, int64_t from_ms, int n) {
  int32_t day = s_local_day(c, from_ms);
  for (int k = 0; k < n;)
    if (s_day_is_workday(c, ++day)) k++;
  /* The last millisecond of that local day. */
  return ((int64_t)day + 1) * DAY_MS - (int64_t)c->tz_offset_min * 60000 - 1;
}
