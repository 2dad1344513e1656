/* wh_rules - load triage rules and apply them to a report. */
#include "wh_rules.h"
#include "wh_config.h"
#include "wh_err.h"
#include "wh_text.h"
#include "whistle.pb-c.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *wh_color_name(int color) {
  switch (color) {
  case WHISTLE__COLOR__COLOR_RED: return "red";
  case WHISTLE__COLOR__COLOR_YELLOW: return "yellow";
  case WHISTLE__COLOR__COLOR_GREEN: return "green";
  default: return "";
  }
}

int wh_color_parse(const char *name) {
  if (!name) return 0;
  if (!strcmp(name, "red")) return WHISTLE__COLOR__COLOR_RED;
  if (!strcmp(name, "yellow")) return WHISTLE__COLOR__COLOR_YELLOW;
  if (!strcmp(name, "green")) return WHISTLE__COLOR__COLOR_GREEN;
  return 0;
}

static void s_route_free(wh_route_t *r) {
  free(r->lead);
  wh_strv_free(r->co);
}

void wh_rules_destroy(wh_rules_t **self_p) {
  if (!self_p || !*self_p) return;
  wh_rules_t *r = *self_p;
  for (size_t i = 0; i < r->ncategories; i++) {
    free(r->categories[i].code);
    free(r->categories[i].name);
    s_route_free(&r->categories[i].route);
  }
  free(r->categories);
  for (size_t i = 0; i < r->nrules; i++) {
    wh_rule_t *u = &r->rules[i];
    free(u->name);
    free(u->klass);
    wh_strv_free(u->category);
    wh_strv_free(u->any);
    wh_strv_free(u->all);
    wh_strv_free(u->none);
    wh_strv_free(u->channels);
    free(u->category_idx);
    free(u->any_bits);
    free(u->all_bits);
    free(u->none_bits);
    s_route_free(&u->route);
  }
  free(r->rules);
  for (size_t i = 0; i < r->ncare; i++) free(r->care[i].tag);
  free(r->care);
  s_route_free(&r->unplaced);
  free(r);
  *self_p = NULL;
}

/* Reads color/level/lead/co from s into r; `need` demands all of them.
 * Sets the has_* flags when given. */
static int s_route(const config_setting_t *s, wh_route_t *r, int need, int *has_color,
                   int *has_level, int *has_lead, int *has_co, const wh_org_t *org, char *err,
                   size_t errlen) {
  const char *color = wh_config_str(s, "color");
  const char *lead = wh_config_str(s, "lead");
  int level = 0;
  int got_level = config_setting_lookup_int(s, "level", &level) == CONFIG_TRUE;
  if (color && !(r->color = wh_color_parse(color)))
    return wh_config_fail(s, err, errlen, "colour '%s' is not red, yellow or green", color);
  if (got_level && (level < 1 || level > 3))
    return wh_config_fail(s, err, errlen, "level %d is not 1, 2 or 3", level);
  r->level = level;
  if (need && (!color || !got_level || !lead))
    return wh_config_fail(s, err, errlen, "colour, level and lead are all required here");
  if (lead) {
    if (org && !wh_org_knows(org, lead))
      return wh_config_fail(s, err, errlen, "lead '%s' is not a party on the org chart", lead);
    r->lead = strdup(lead);
  }
  *has_co = config_setting_lookup((config_setting_t *)s, "co") != NULL;
  if (wh_config_strv(s, "co", &r->co, err, errlen)) return WH_ECONFIG;
  if (wh_strv_len(r->co) > WH_MAX_CO)
    return wh_config_fail(s, err, errlen, "at most %d co-parties", WH_MAX_CO);
  for (char **p = r->co; org && *p; p++)
    if (!wh_org_knows(org, *p))
      return wh_config_fail(s, err, errlen, "co-party '%s' is not a party on the org chart", *p);
  *has_color = color != NULL;
  *has_level = got_level;
  *has_lead = lead != NULL;
  return 0;
}

static int s_compile(wh_rules_t *r, wh_rule_t *u);

wh_rules_t *wh_rules_load(const char *path, const wh_org_t *org, char *err, size_t errlen) {
  config_t cfg;
  if (wh_config_read(&cfg, path, err, errlen)) return NULL;
  wh_rules_t *r = calloc(1, sizeof *r);
  int a, b, c, d, hours = 48;
  config_lookup_int(&cfg, "dedup_window_hours", &hours);
  if (hours < 0 || hours > 24 * 90) {
    snprintf(err, errlen, "%s: dedup_window_hours must be 0..2160", path);
    goto fail;
  }
  r->dedup_window_ms = (int64_t)hours * 3600 * 1000;

  config_setting_t *list = config_lookup(&cfg, "categories");
  if (!list || !config_setting_is_list(list)) {
    snprintf(err, errlen, "%s: 'categories' must be a list", path);
    goto fail;
  }
  size_t n = (size_t)config_setting_length(list);
  r->categories = calloc(n + 1, sizeof *r->categories);
  for (size_t i = 0; i < n; i++) {
    config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
    wh_category_t *cat = &r->categories[r->ncategories++];
    const char *code = wh_config_str(e, "code"), *name = wh_config_str(e, "name");
    if (!code || !*code) {
      wh_config_fail(e, err, errlen, "category without a code");
      goto fail;
    }
    if (wh_rules_category(r, code)) {
      wh_config_fail(e, err, errlen, "category '%s' listed twice", code);
      goto fail;
    }
    cat->code = strdup(code);
    cat->name = strdup(name ? name : code);
    cat->merge = 1;
    config_setting_lookup_bool(e, "merge", &cat->merge);
    if (s_route(e, &cat->route, 1, &a, &b, &c, &d, org, err, errlen)) goto fail;
  }

  list = config_lookup(&cfg, "rules");
  n = list ? (size_t)config_setting_length(list) : 0;
  r->rules = calloc(n + 1, sizeof *r->rules);
  for (size_t i = 0; i < n; i++) {
    config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
    wh_rule_t *u = &r->rules[r->nrules++];
    const char *name = wh_config_str(e, "name"), *klass = wh_config_str(e, "class");
    if (!name || !*name) {
      wh_config_fail(e, err, errlen, "rule without a name");
      goto fail;
    }
    u->name = strdup(name);
    config_setting_lookup_bool(e, "uncategorized", &u->uncategorized);
    if (wh_config_strv(e, "category", &u->category, err, errlen) ||
        wh_config_strv(e, "any", &u->any, err, errlen) ||
        wh_config_strv(e, "all", &u->all, err, errlen) ||
        wh_config_strv(e, "none", &u->none, err, errlen) ||
        wh_config_strv(e, "channels", &u->channels, err, errlen))
      goto fail;
    for (char **p = u->category; *p; p++)
      if (!wh_rules_category(r, *p)) {
        wh_config_fail(e, err, errlen, "rule '%s': unknown category '%s'", name, *p);
        goto fail;
      }
    if (!u->category[0] && !u->any[0] && !u->all[0]) {
      wh_config_fail(e, err, errlen, "rule '%s' has no condition (category, any or all)", name);
      goto fail;
    }
    const wh_category_t *base = klass ? wh_rules_category(r, klass) : NULL;
    u->klass = strdup(klass ? klass : (u->category[0] ? u->category[0] : name));
    if (s_route(e, &u->route, 0, &u->has_color, &u->has_level, &u->has_lead, &u->has_co, org,
                err, errlen))
      goto fail;
    if (!base && u->category[0]) base = wh_rules_category(r, u->category[0]);
    if (!base && !(u->has_color && u->has_level && u->has_lead)) {
      wh_config_fail(e, err, errlen,
                     "rule '%s': give colour, level and lead, or a class that is a category",
                     name);
      goto fail;
    }
    if (s_compile(r, u)) {
      snprintf(err, errlen, "%s: out of memory", path);
      goto fail;
    }
  }

  list = config_lookup(&cfg, "care_tags");
  n = list ? (size_t)config_setting_length(list) : 0;
  r->care = calloc(n + 1, sizeof *r->care);
  for (size_t i = 0; i < n; i++) {
    config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
    const char *tag = wh_config_str(e, "tag");
    int w = 1;
    config_setting_lookup_int(e, "weight", &w);
    if (!tag || !*tag || w < 0 || w > 100) {
      wh_config_fail(e, err, errlen, "care tag needs a tag and a weight 0..100");
      goto fail;
    }
    r->care[r->ncare].tag = strdup(tag);
    r->care[r->ncare++].weight = w;
  }

  config_setting_t *un = config_lookup(&cfg, "unplaced");
  if (!un) {
    snprintf(err, errlen, "%s: 'unplaced' (where no rule places a report) is required", path);
    goto fail;
  }
  if (s_route(un, &r->unplaced, 1, &a, &b, &c, &d, org, err, errlen)) goto fail;
  config_destroy(&cfg);
  return r;
fail:
  config_destroy(&cfg);
  wh_rules_destroy(&r);
  return NULL;
}

const wh_category_t *wh_rules_category(const wh_rules_t *r, const char *code) {
  for (size_t i = 0; i < r->ncategories; i++)
    if (r->categories[i].code && !strcmp(r->categories[i].code, code)) return &r->categories[i];
  return NULL;
}

int wh_rules_care_known(const wh_rules_t *r, const char *tag) {
  for (size_t i = 0; i < r->ncare; i++)
    if (!strcmp(r->care[i].tag, tag)) return 1;
  return 0;
}

static int s_in(char *const *list, const char *s) {
  for (; *list; list++)
    if (!strcmp(*list, s)) return 1;
  return 0;
}

/* The characters a report's text holds, as a set of hashed bits: a keyword
 * with a character the text lacks cannot be in it. A rules file has
 * hundreds of keywords and every report is checked against the emergency
 * ones at least; searching the text for each was a fifth of triage's CPU,
 * where most are now ruled out by a few lookups. A set bit may stand for
 * another character; a clear one is certain, so the filter never hides a
 * keyword the text holds. */
typedef struct {
  uint64_t bits[64];
} s_chars_t;

/* The UTF-8 character at p, its bytes packed in *c; returns its length,
 * or 0 when p is not the start of a whole character (a continuation byte,
 * or one cut short: the NUL ends the string before any read past it). */
static size_t s_char_at(const unsigned char *p, uint32_t *c) {
  unsigned b = p[0];
  size_t n = b < 0x80 ? 1 : b < 0xC0 ? 0 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
  uint32_t v = b;
  for (size_t i = 1; i < n; i++) {
    if ((p[i] & 0xC0) != 0x80) return 0;
    v = v << 8 | p[i];
  }
  *c = v;
  return n;
}

static unsigned s_char_bit(uint32_t c) { return (c * 2654435761u) >> 20; }

/* Every position that starts a whole character is marked, not only those a
 * left-to-right walk would land on, so a keyword is found however the text
 * around it is cut. */
static void s_chars_of(s_chars_t *set, const char *text) {
  memset(set, 0, sizeof *set);
  uint32_t c;
  for (const unsigned char *p = (const unsigned char *)text; *p; p++)
    /* Most of a Chinese text's bytes continue a character: they start none. */
    if ((*p & 0xC0) != 0x80 && s_char_at(p, &c)) {
      unsigned bit = s_char_bit(c);
      set->bits[bit >> 6] |= 1ull << (bit & 63);
    }
}

/* The bits of kw's first WH_KW_BITS characters. */
static void s_kw_bits(const char *kw, wh_kwbits_t *b) {
  uint32_t c;
  b->n = 0;
  for (const unsigned char *p = (const unsigned char *)kw; *p && b->n < WH_KW_BITS; p++)
    if (s_char_at(p, &c)) b->bit[b->n++] = (uint16_t)s_char_bit(c);
}

static wh_kwbits_t *s_kw_list(char **kws) {
  size_t n = wh_strv_len(kws);
  wh_kwbits_t *b = calloc(n + 1, sizeof *b);
  for (size_t i = 0; b && i < n; i++) s_kw_bits(kws[i], &b[i]);
  return b;
}

/* What a rule's conditions need at every report, worked out once. */
static int s_compile(wh_rules_t *r, wh_rule_t *u) {
  size_t n = wh_strv_len(u->category);
  u->category_idx = malloc((n + 1) * sizeof *u->category_idx);
  u->any_bits = s_kw_list(u->any);
  u->all_bits = s_kw_list(u->all);
  u->none_bits = s_kw_list(u->none);
  if (!u->category_idx || !u->any_bits || !u->all_bits || !u->none_bits) return WH_ENOMEM;
  for (size_t i = 0; i < n; i++)
    u->category_idx[i] = (int)(wh_rules_category(r, u->category[i]) - r->categories);
  u->category_idx[n] = -1;
  const wh_category_t *base = wh_rules_category(r, u->klass);
  if (!base && u->category[0]) base = wh_rules_category(r, u->category[0]);
  u->base_idx = base ? (int)(base - r->categories) : -1;
  return 0;
}

/* 0 when the text cannot hold the keyword of bits b; else 1. */
static int s_may_hold_bits(const s_chars_t *set, const wh_kwbits_t *b) {
  for (int i = 0; i < b->n; i++)
    if (!(set->bits[b->bit[i] >> 6] >> (b->bit[i] & 63) & 1)) return 0;
  return 1;
}

static int s_holds(const s_chars_t *set, const char *text, const char *kw, const wh_kwbits_t *b) {
  return s_may_hold_bits(set, b) && strstr(text, kw) != NULL;
}

/* cat: the report's category as an index into the categories, -1 when it
 * has none or one the rules do not know. */
static int s_matches(const wh_rule_t *u, const wh_report_t *rep, int cat, const s_chars_t *chars) {
  if (u->uncategorized && rep->category[0]) return 0;
  if (u->category_idx[0] >= 0) {
    const int *c = u->category_idx;
    while (*c >= 0 && *c != cat) c++;
    if (cat < 0 || *c < 0) return 0;
  }
  if (u->channels[0] && !s_in(u->channels, rep->channel)) return 0;
  if (u->any[0]) {
    int hit = 0;
    for (size_t i = 0; u->any[i] && !hit; i++)
      hit = s_holds(chars, rep->text, u->any[i], &u->any_bits[i]);
    if (!hit) return 0;
  }
  for (size_t i = 0; u->all[i]; i++)
    if (!s_holds(chars, rep->text, u->all[i], &u->all_bits[i])) return 0;
  for (size_t i = 0; u->none[i]; i++)
    if (s_holds(chars, rep->text, u->none[i], &u->none_bits[i])) return 0;
  return 1;
}

static void s_set_route(const wh_org_t *org, const char *community, const wh_route_t *r,
                        wh_decision_t *out) {
  out->color = r->color;
  out->level = r->level;
  wh_org_resolve(org, community, r->lead, out->lead, sizeof out->lead);
  out->nco = 0;
  for (char **p = r->co; p && *p && out->nco < WH_MAX_CO; p++) {
    char party[96];
    wh_org_resolve(org, community, *p, party, sizeof party);
    int dup = !strcmp(party, out->lead);
    for (int k = 0; k < out->nco && !dup; k++) dup = !strcmp(out->co[k], party);
    if (!dup) wh_str_copy(out->co[out->nco++], sizeof out->co[0], party);
  }
}

void wh_rules_decide(const wh_rules_t *r, const wh_org_t *org, const wh_report_t *rep,
                     wh_decision_t *out) {
  memset(out, 0, sizeof *out);
  const wh_category_t *given = rep->category[0] ? wh_rules_category(r, rep->category) : NULL;
  int cat = given ? (int)(given - r->categories) : -1;
  const wh_rule_t *hit = NULL;
  s_chars_t chars;
  s_chars_of(&chars, rep->text);
  for (size_t i = 0; i < r->nrules && !hit; i++)
    if (s_matches(&r->rules[i], rep, cat, &chars)) hit = &r->rules[i];
  if (hit) {
    const wh_category_t *base = hit->base_idx >= 0 ? &r->categories[hit->base_idx] : NULL;
    wh_route_t route = base ? base->route : hit->route;
    if (hit->has_color) route.color = hit->route.color;
    if (hit->has_level) route.level = hit->route.level;
    if (hit->has_lead) route.lead = hit->route.lead;
    if (hit->has_co) route.co = hit->route.co;
    s_set_route(org, rep->community, &route, out);
    wh_str_copy(out->klass, sizeof out->klass, hit->klass);
    wh_str_t rule;
    wh_str_init(&rule, out->rule, sizeof out->rule);
    wh_str_cat(&rule, "rule:", hit->name, (char *)NULL);
    out->merge = base ? base->merge : 1;
  } else if (given) {
    s_set_route(org, rep->community, &given->route, out);
    wh_str_copy(out->klass, sizeof out->klass, given->code);
    wh_str_t rule;
    wh_str_init(&rule, out->rule, sizeof out->rule);
    wh_str_cat(&rule, "category:", given->code, (char *)NULL);
    out->merge = given->merge;
  } else {
    s_set_route(org, rep->community, &r->unplaced, out);
    snprintf(out->klass, sizeof out->klass, "unplaced");
    snprintf(out->rule, sizeof out->rule, "unplaced");
    out->merge = 0; /* unrelated reports in one grid are not repeats */
  }
  out->weight = 1;
  for (size_t i = 0; i < rep->ncare_tags; i++)
    for (size_t k = 0; k < r->ncare; k++)
      if (!strcmp(rep->care_tags[i], r->care[k].tag)) out->weight += r->care[k].weight;
}
