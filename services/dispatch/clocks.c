/* clocks - clocks.conf read, and an order's clocks fired. */
#include "clocks.h"
#include "wh_config.h"
#include "wh_err.h"
#include "wh_text.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIN_MS INT64_C(60000)
#define HOUR_MS (60 * MIN_MS)
#define DAY_MS (24 * HOUR_MS)

int clk_span_parse(const char *s, clk_span_t *out) {
  if (!s) return -1;
  char *end;
  while (*s == ' ') s++;
  if (!isdigit((unsigned char)*s)) return -1;
  long n = strtol(s, &end, 10);
  if (end == s || n < 0 || n > 100000) return -1;
  while (*end == ' ') end++;
  static const struct {
    const char *word;
    clk_unit_t unit;
    long max;
  } units[] = {{"minutes", CLK_MINUTES, 100000}, {"minute", CLK_MINUTES, 100000},
               {"hours", CLK_HOURS, 10000},      {"hour", CLK_HOURS, 10000},
               {"working days", CLK_WORKDAYS, 365}, {"working day", CLK_WORKDAYS, 365},
               {"days", CLK_DAYS, 365},           {"day", CLK_DAYS, 365}};
  for (size_t i = 0; i < sizeof units / sizeof *units; i++)
    if (!strcmp(end, units[i].word)) {
      if (n > units[i].max) return -1;
      *out = (clk_span_t){(int)n, units[i].unit};
      return 0;
    }
  return -1;
}

int64_t clk_span_end(const wh_calendar_t *cal, clk_span_t s, int64_t from_ms) {
  switch (s.unit) {
  case CLK_MINUTES: return from_ms + s.n * MIN_MS;
  case CLK_HOURS: return from_ms + s.n * HOUR_MS;
  case CLK_DAYS: return from_ms + s.n * DAY_MS;
  case CLK_WORKDAYS: return wh_calendar_workdays_end(cal, from_ms, s.n);
  }
  return from_ms;
}

/* ---- the file ---------------------------------------------------------- */

static int s_span(config_setting_t *parent, const char *name, clk_span_t *out, int required,
                  char *err, size_t errlen) {
  config_setting_t *s = config_setting_get_member(parent, name);
  if (!s) {
    if (!required) return 0;
    return wh_config_fail(parent, err, errlen, "'%s' is required", name);
  }
  const char *v = config_setting_get_string(s);
  if (!v || clk_span_parse(v, out))
    return wh_config_fail(s, err, errlen,
                          "'%s' is a time: \"N minutes\", \"N hours\", \"N days\" or"
                          " \"N working days\"",
                          name);
  return 0;
}

static int s_level(config_setting_t *root, int level, clk_level_t *out, char *err, size_t errlen) {
  char path[32];
  snprintf(path, sizeof path, "level%d", level);
  config_setting_t *levels = config_setting_get_member(root, "levels");
  if (!levels || !config_setting_is_group(levels))
    return wh_config_fail(root, err, errlen, "'levels' is required: level1, level2, level3");
  config_setting_t *l = config_setting_get_member(levels, path);
  if (!l || !config_setting_is_group(l))
    return wh_config_fail(levels, err, errlen, "'levels.%s' is required", path);
  if (s_span(l, "sign_for", &out->sign_for, 1, err, errlen)) return WH_ECONFIG;
  config_setting_t *cl = config_setting_get_member(l, "clocks");
  int n = cl && config_setting_is_list(cl) ? config_setting_length(cl) : 0;
  if (n < 1 || n > CLK_LEVEL_MAX)
    return wh_config_fail(cl ? cl : l, err, errlen,
                          "'clocks' is a list of 1 to %d ( { name = ...; within = ...; } )",
                          CLK_LEVEL_MAX);
  for (int i = 0; i < n; i++) {
    config_setting_t *c = config_setting_get_elem(cl, (unsigned)i);
    const char *name = config_setting_is_group(c) ? wh_config_str(c, "name") : NULL;
    if (!name || wh_code_check(name, 23) || strchr(name, ':') || !strcmp(name, "feedback") ||
        !strncmp(name, "sign_for", 8))
      return wh_config_fail(c, err, errlen,
                            "a clock's 'name' is a code (not sign_for or feedback), at most 23"
                            " characters");
    for (int j = 0; j < i; j++)
      if (!strcmp(out->clocks[j].name, name))
        return wh_config_fail(c, err, errlen, "clock '%s' is named twice", name);
    snprintf(out->clocks[i].name, sizeof out->clocks[i].name, "%s", name);
    if (s_span(c, "within", &out->clocks[i].within, 1, err, errlen)) return WH_ECONFIG;
  }
  out->nclocks = n;
  return 0;
}

static clk_policy_t *s_read(config_t *cfg, char *err, size_t errlen) {
  clk_policy_t *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  config_setting_t *root = config_root_setting(cfg);
  for (int l = 1; l <= 3; l++)
    if (s_level(root, l, &p->levels[l - 1], err, errlen)) goto fail;
  if (s_span(root, "return_window", &p->return_window, 1, err, errlen) ||
      s_span(root, "extension_max", &p->extension_max, 1, err, errlen) ||
      s_span(root, "feedback_window", &p->feedback_window, 1, err, errlen) ||
      s_span(root, "reopen_window", &p->reopen_window, 1, err, errlen))
    goto fail;
  config_setting_t *rem = config_setting_get_member(root, "reminders");
  int n = rem ? config_setting_length(rem) : 0;
  if (rem && (!config_setting_is_array(rem) || n > CLK_REMINDERS_MAX)) {
    wh_config_fail(rem, err, errlen, "'reminders' is an array of at most %d percentages",
                   CLK_REMINDERS_MAX);
    goto fail;
  }
  for (int i = 0; i < n; i++) {
    config_setting_t *e = config_setting_get_elem(rem, (unsigned)i);
    int v = config_setting_get_int(e);
    if (config_setting_type(e) != CONFIG_TYPE_INT || v < 1 || v > 99 ||
        (i && v <= p->reminders[i - 1])) {
      wh_config_fail(rem, err, errlen, "'reminders' are percentages 1..99, ascending");
      goto fail;
    }
    p->reminders[p->nreminders++] = v;
  }
  config_setting_t *lad = config_setting_get_member(root, "ladder");
  n = lad ? config_setting_length(lad) : 0;
  if (lad && (!config_setting_is_list(lad) || n > CLK_STEPS_MAX)) {
    wh_config_fail(lad, err, errlen, "'ladder' is a list of at most %d steps", CLK_STEPS_MAX);
    goto fail;
  }
  for (int i = 0; i < n; i++) {
    config_setting_t *st = config_setting_get_elem(lad, (unsigned)i);
    const char *to = config_setting_is_group(st) ? wh_config_str(st, "to") : NULL;
    if (!to || (strcmp(to, "community") && strcmp(to, "street") && strcmp(to, "district"))) {
      wh_config_fail(st, err, errlen, "a step's 'to' is community, street or district");
      goto fail;
    }
    snprintf(p->ladder[i].to, sizeof p->ladder[i].to, "%s", to);
    if (s_span(st, "after", &p->ladder[i].after, 1, err, errlen)) goto fail;
    p->nsteps++;
  }
  return p;
fail:
  free(p);
  return NULL;
}

clk_policy_t *clk_policy_parse(const char *text, const char *origin, char *err, size_t errlen) {
  config_t cfg;
  config_init(&cfg);
  if (config_read_string(&cfg, text) != CONFIG_TRUE) {
    snprintf(err, errlen, "%s:%d: %s", origin, config_error_line(&cfg), config_error_text(&cfg));
    config_destroy(&cfg);
    return NULL;
  }
  clk_policy_t *p = s_read(&cfg, err, errlen);
  config_destroy(&cfg);
  if (p && !(p->text = strdup(text))) clk_policy_destroy(&p);
  return p;
}

clk_policy_t *clk_policy_load(const char *path, char *err, size_t errlen) {
  config_t cfg;
  if (wh_config_read(&cfg, path, err, errlen)) return NULL;
  clk_policy_t *p = s_read(&cfg, err, errlen);
  config_destroy(&cfg);
  if (!p) return NULL;
  /* The text kept is the file's, so a stored policy reads back the same. */
  FILE *f = fopen(path, "rb");
  long len = -1;
  if (f && fseek(f, 0, SEEK_END) == 0) len = ftell(f);
  if (f && len >= 0 && len < 1 << 20 && fseek(f, 0, SEEK_SET) == 0 &&
      (p->text = malloc((size_t)len + 1))) {
    if (fread(p->text, 1, (size_t)len, f) != (size_t)len) {
      free(p->text);
      p->text = NULL;
    } else {
      p->text[len] = '\0';
    }
  }
  if (f) fclose(f);
  if (!p->text) {
    snprintf(err, errlen, "%s: cannot read file", path);
    clk_policy_destroy(&p);
  }
  return p;
}

void clk_policy_destroy(clk_policy_t **self_p) {
  if (!self_p || !*self_p) return;
  free((*self_p)->text);
  free(*self_p);
  *self_p = NULL;
}

/* ---- an order's clocks ------------------------------------------------ */

int clk_is_sign(const char *name) {
  return !strcmp(name, "sign_for") || !strncmp(name, "sign_for:", 9);
}

const char *clk_party(const char *name) {
  return !strncmp(name, "sign_for:", 9) ? name + 9 : NULL;
}

int clk_is_feedback(const char *name) { return !strcmp(name, "feedback"); }

int clk_running(const clk_t *c) { return !c->lapsed_ms && !c->met_ms; }

int64_t clk_remind_after(const clk_policy_t *p, const clk_t *c, int64_t after) {
  if (clk_is_feedback(c->name) || c->due_ms <= c->set_ms) return 0;
  for (int i = 0; i < p->nreminders; i++) {
    int64_t t = c->set_ms + (c->due_ms - c->set_ms) * p->reminders[i] / 100;
    if (t > after && t < c->due_ms) return t;
  }
  return 0;
}

int clk_add(const clk_policy_t *p, clk_set_t *s, const char *name, int64_t set_ms, int64_t due_ms,
            int64_t now) {
  if (s->n >= CLK_MAX) return -1;
  clk_t *c = &s->c[s->n];
  memset(c, 0, sizeof *c);
  snprintf(c->name, sizeof c->name, "%s", name);
  c->set_ms = set_ms;
  c->due_ms = due_ms;
  c->remind_ms = clk_remind_after(p, c, now);
  return s->n++;
}

int clk_start(const clk_policy_t *p, const wh_calendar_t *cal, int level, int lead_signs,
              char *const *co, size_t nco, int64_t sign_from, int64_t start, int64_t now,
              clk_set_t *s) {
  s->n = 0;
  if (level < 1 || level > 3) return -1;
  const clk_level_t *l = &p->levels[level - 1];
  int64_t sign_due = clk_span_end(cal, l->sign_for, sign_from);
  if (lead_signs) clk_add(p, s, "sign_for", sign_from, sign_due, now);
  for (size_t i = 0; i < nco; i++) {
    char name[CLK_NAME_MAX];
    snprintf(name, sizeof name, "sign_for:%s", co[i]);
    clk_add(p, s, name, sign_from, sign_due, now);
  }
  for (int i = 0; i < l->nclocks; i++)
    clk_add(p, s, l->clocks[i].name, start, clk_span_end(cal, l->clocks[i].within, start), now);
  return s->n;
}

void clk_meet(clk_set_t *s, const char *name, int64_t now) {
  for (int i = 0; i < s->n; i++)
    if (!strcmp(s->c[i].name, name) && clk_running(&s->c[i])) {
      s->c[i].met_ms = now;
      s->c[i].remind_ms = 0;
    }
}

void clk_meet_all(clk_set_t *s, int64_t now) {
  for (int i = 0; i < s->n; i++)
    if (clk_running(&s->c[i]) && !clk_is_feedback(s->c[i].name)) {
      s->c[i].met_ms = now;
      s->c[i].remind_ms = 0;
    }
}

void clk_drop(clk_set_t *s, const char *name, int prefix) {
  int k = 0;
  size_t len = strlen(name);
  for (int i = 0; i < s->n; i++) {
    int match = prefix ? !strncmp(s->c[i].name, name, len) : !strcmp(s->c[i].name, name);
    if (!match) s->c[k++] = s->c[i];
  }
  s->n = k;
}

void clk_move(const clk_policy_t *p, clk_set_t *s, int i, int64_t due_ms, int64_t now) {
  if (i < 0 || i >= s->n) return;
  clk_t *c = &s->c[i];
  c->set_ms = now;
  c->due_ms = due_ms;
  c->lapsed_ms = c->met_ms = 0;
  c->remind_ms = clk_remind_after(p, c, now);
}

int clk_main(const clk_set_t *s) {
  for (int i = s->n - 1; i >= 0; i--)
    if (!clk_is_sign(s->c[i].name) && !clk_is_feedback(s->c[i].name)) return i;
  return -1;
}

void clk_fire(const clk_policy_t *p, clk_set_t *s, int64_t now, clk_fired_t *f) {
  memset(f, 0, sizeof *f);
  for (int i = 0; i < s->n; i++) {
    clk_t *c = &s->c[i];
    if (!clk_running(c)) continue;
    if (c->due_ms <= now) {
      c->lapsed_ms = now;
      c->remind_ms = 0;
      f->lapsed[f->nlapsed++] = i;
      if (clk_is_feedback(c->name)) f->feedback_due = 1;
      else if (!clk_party(c->name) && (!f->lead_lapse_due_ms || c->due_ms < f->lead_lapse_due_ms))
        f->lead_lapse_due_ms = c->due_ms;
    } else if (c->remind_ms && c->remind_ms <= now) {
      int passed = (int)((now - c->set_ms) * 100 / (c->due_ms - c->set_ms));
      for (int k = 0; k < p->nreminders; k++)
        if (p->reminders[k] <= passed && p->reminders[k] > f->share) f->share = p->reminders[k];
      c->remind_ms = clk_remind_after(p, c, now);
      f->reminded[f->nreminded++] = i;
    }
  }
}

int64_t clk_next(const clk_set_t *s) {
  int64_t next = 0;
  for (int i = 0; i < s->n; i++) {
    const clk_t *c = &s->c[i];
    if (!clk_running(c)) continue;
    int64_t t = c->remind_ms && c->remind_ms < c->due_ms ? c->remind_ms : c->due_ms;
    if (!next || t < next) next = t;
  }
  return next;
}

int64_t clk_ladder_due(const clk_policy_t *p, const wh_calendar_t *cal, int step, int64_t from_ms) {
  if (step < 0 || step >= p->nsteps) return 0;
  return clk_span_end(cal, p->ladder[step].after, from_ms);
}
