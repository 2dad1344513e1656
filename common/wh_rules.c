/* wh_rules - load triage rules and apply them to a report. */
#include "wh_rules.h"
#include "wh_config.h"
#include "wh_err.h"
#include "wh_text.h"
#include "wh_wordset.h"
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

static void s_catidx_free(struct wh_catidx *x);

static void s_route_free(wh_route_t *r) {
  free(r->lead);
  wh_strv_free(r->co);
}

void wh_rules_destroy(wh_rules_t **self_p) {
  if (!self_p || !*self_p) return;
  wh_rules_t *r = *self_p;
  for (size_t i = 0; i < r->ncategories; i++) {
    wh_category_t *c = &r->categories[i];
    free(c->code);
    free(c->name);
    free(c->group);
    s_route_free(&c->route);
    s_route_free(&c->road);
    s_route_free(&c->compound);
    for (size_t k = 0; k < c->nphrases; k++) {
      for (size_t t = 0; t < c->phrases[k].nterms; t++) {
        wh_strv_free(c->phrases[k].terms[t].alts);
        free(c->phrases[k].terms[t].ids);
      }
      free(c->phrases[k].terms);
      free(c->phrases[k].text);
    }
    free(c->phrases);
  }
  free(r->categories);
  for (size_t i = 0; i < r->ngroups; i++) {
    free(r->groups[i].code);
    free(r->groups[i].name);
  }
  free(r->groups);
  wh_strv_free(r->negators);
  wh_strv_free(r->hedges);
  wh_strv_free(r->negators_after);
  wh_strv_free(r->road_words);
  wh_strv_free(r->compound_words);
  wh_words_destroy(&r->words);
  s_catidx_free(r->catidx);
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
  for (size_t i = 0; i < r->ncare; i++) {
    free(r->care[i].tag);
    wh_strv_free(r->care[i].raise_classes);
  }
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

/* Compiles phrase text ("垃圾 没人收|没人清") into p. */
static int s_phrase(const config_setting_t *e, const char *text, wh_phrase_t *p, char *err,
                    size_t errlen);
static wh_kwbits_t *s_kw_list(char **kws);

/* Reads the classes of list into r (catalogue: 1 when they come from the
 * catalogue, which asks a group and phrases of each). */
static int s_load_classes(wh_rules_t *r, const config_setting_t *list, int catalogue,
                          const wh_org_t *org, char *err, size_t errlen) {
  if (!config_setting_is_list(list))
    return wh_config_fail(list, err, errlen, "classes and categories are a list ( ... )");
  size_t n = (size_t)config_setting_length(list);
  wh_category_t *grown = realloc(r->categories, (r->ncategories + n + 1) * sizeof *grown);
  if (!grown) return wh_config_fail(list, err, errlen, "out of memory");
  r->categories = grown;
  int a, b, c, d;
  for (size_t i = 0; i < n; i++) {
    config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
    wh_category_t *cat = &r->categories[r->ncategories];
    memset(cat, 0, sizeof *cat);
    const char *code = wh_config_str(e, "code"), *name = wh_config_str(e, "name");
    if (!code || !*code) return wh_config_fail(e, err, errlen, "category without a code");
    if (wh_code_check(code, 63)) return wh_config_fail(e, err, errlen, "category code '%s': letters, digits, _ or -", code);
    if (wh_rules_category(r, code))
      return wh_config_fail(e, err, errlen, "category '%s' listed twice", code);
    r->ncategories++;
    cat->code = strdup(code);
    cat->name = strdup(name ? name : code);
    cat->merge = 1;
    config_setting_lookup_bool(e, "merge", &cat->merge);
    if (s_route(e, &cat->route, 1, &a, &b, &c, &d, org, err, errlen)) return WH_ECONFIG;
    if (!catalogue) continue;
    const char *group = wh_config_str(e, "group");
    int known = 0;
    for (size_t k = 0; group && k < r->ngroups; k++) known |= !strcmp(r->groups[k].code, group);
    if (!known)
      return wh_config_fail(e, err, errlen, "class '%s': group '%s' is not in groups", code,
                            group ? group : "");
    cat->group = strdup(group);
    config_setting_lookup_bool(e, "danger", &cat->danger);
    config_setting_lookup_bool(e, "takes_lead", &cat->takes_lead);
    /* The owner by place: what the place changes, over the class's own. */
    static const char *const places[2] = {"road", "compound"};
    for (int k = 0; k < 2; k++) {
      config_setting_t *pl = config_setting_get_member(e, places[k]);
      if (!pl) continue;
      wh_route_t *rt = k ? &cat->compound : &cat->road;
      int hc, hl, hd, ho;
      if (s_route(pl, rt, 0, &hc, &hl, &hd, &ho, org, err, errlen)) return WH_ECONFIG;
      if (!hc) rt->color = cat->route.color;
      if (!hl) rt->level = cat->route.level;
      if (!hd) rt->lead = strdup(cat->route.lead);
      if (!ho) {
        wh_strv_free(rt->co);
        size_t m = wh_strv_len(cat->route.co);
        rt->co = calloc(m + 1, sizeof *rt->co);
        for (size_t x = 0; rt->co && x < m; x++) rt->co[x] = strdup(cat->route.co[x]);
      }
      if (k) cat->has_compound = 1;
      else cat->has_road = 1;
    }
    char **says = NULL;
    if (wh_config_strv(e, "says", &says, err, errlen)) return WH_ECONFIG;
    size_t m = wh_strv_len(says);
    if (!m) {
      wh_strv_free(says);
      return wh_config_fail(e, err, errlen, "class '%s': says = [ ... ] how residents put it", code);
    }
    cat->phrases = calloc(m, sizeof *cat->phrases);
    for (size_t k = 0; cat->phrases && k < m; k++) {
      if (s_phrase(e, says[k], &cat->phrases[k], err, errlen)) {
        cat->nphrases = k + 1;
        wh_strv_free(says);
        return WH_ECONFIG;
      }
      cat->nphrases = k + 1;
    }
    wh_strv_free(says);
    if (!cat->phrases) return wh_config_fail(e, err, errlen, "out of memory");
  }
  return 0;
}

static int s_phrase(const config_setting_t *e, const char *text, wh_phrase_t *p, char *err,
                    size_t errlen) {
  p->text = strdup(text);
  char *copy = strdup(text), *save = NULL;
  size_t n = 0;
  for (char *t = copy; *t; t++) n += *t == ' ';
  p->terms = calloc(n + 1, sizeof *p->terms);
  int rc = 0;
  for (char *tok = strtok_r(copy, " ", &save); tok && !rc; tok = strtok_r(NULL, " ", &save)) {
    wh_term_t *t = &p->terms[p->nterms++];
    size_t k = 1;
    for (char *q = tok; *q; q++) k += *q == '|';
    t->alts = calloc(k + 1, sizeof *t->alts);
    char *save2 = NULL;
    size_t j = 0;
    for (char *alt = strtok_r(tok, "|", &save2); alt; alt = strtok_r(NULL, "|", &save2))
      t->alts[j++] = strdup(alt);
    if (!j) rc = wh_config_fail(e, err, errlen, "phrase '%s': an empty word", text);
  }
  if (!rc && !p->nterms) rc = wh_config_fail(e, err, errlen, "an empty phrase");
  if (!rc && p->nterms > WH_PHRASE_TERMS)
    rc = wh_config_fail(e, err, errlen, "phrase '%s': more than %d words", text, WH_PHRASE_TERMS);
  free(copy);
  return rc;
}

/* Reads the catalogue file `name` (beside the rules file at path). */
static int s_load_catalogue(wh_rules_t *r, const char *path, const char *name, const wh_org_t *org,
                            char *err, size_t errlen) {
  char file[1024];
  const char *slash = strrchr(path, '/');
  if (name[0] == '/' || !slash) snprintf(file, sizeof file, "%s", name);
  else snprintf(file, sizeof file, "%.*s/%s", (int)(slash - path), path, name);
  config_t cfg;
  if (wh_config_read(&cfg, file, err, errlen)) return WH_ECONFIG;
  int rc = 0;
  config_setting_t *groups = config_lookup(&cfg, "groups");
  size_t n = groups ? (size_t)config_setting_length(groups) : 0;
  r->groups = calloc(n + 1, sizeof *r->groups);
  for (size_t i = 0; i < n && !rc; i++) {
    config_setting_t *g = config_setting_get_elem(groups, (unsigned)i);
    const char *code = wh_config_str(g, "code"), *gname = wh_config_str(g, "name");
    if (!code || !gname) rc = wh_config_fail(g, err, errlen, "a group has a code and a name");
    else {
      r->groups[r->ngroups].code = strdup(code);
      r->groups[r->ngroups++].name = strdup(gname);
    }
  }
  config_setting_t *root = config_root_setting(&cfg), *places = config_lookup(&cfg, "places");
  if (!rc && (wh_config_strv(root, "negators", &r->negators, err, errlen) ||
              wh_config_strv(root, "hedges", &r->hedges, err, errlen) ||
              wh_config_strv(root, "negators_after", &r->negators_after, err, errlen) ||
              (places && (wh_config_strv(places, "road", &r->road_words, err, errlen) ||
                          wh_config_strv(places, "compound", &r->compound_words, err, errlen)))))
    rc = WH_ECONFIG;
  if (!rc && !places) {
    r->road_words = calloc(1, sizeof *r->road_words);
    r->compound_words = calloc(1, sizeof *r->compound_words);
  }
  config_setting_t *classes = config_lookup(&cfg, "classes");
  if (!rc && !classes) {
    snprintf(err, errlen, "%s: 'classes' must be a list", file);
    rc = WH_ECONFIG;
  }
  if (!rc) rc = s_load_classes(r, classes, 1, org, err, errlen);
  config_destroy(&cfg);
  return rc;
}

wh_rules_t *wh_rules_load(const char *path, const wh_org_t *org, char *err, size_t errlen) {
  config_t cfg;
  if (wh_config_read(&cfg, path, err, errlen)) return NULL;
  wh_rules_t *r = calloc(1, sizeof *r);
  int a, b, c, d, hours = 48;
  if (!r) {
    config_destroy(&cfg);
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  config_lookup_int(&cfg, "dedup_window_hours", &hours);
  if (hours < 0 || hours > 24 * 90) {
    snprintf(err, errlen, "%s: dedup_window_hours must be 0..2160", path);
    goto fail;
  }
  r->dedup_window_ms = (int64_t)hours * 3600 * 1000;

  /* The categories: the catalogue's classes, then any the rules file
   * lists itself. */
  const char *cat_file = NULL;
  config_lookup_string(&cfg, "catalogue", &cat_file);
  config_setting_t *list = config_lookup(&cfg, "categories");
  if (!cat_file && (!list || !config_setting_is_list(list))) {
    snprintf(err, errlen, "%s: name a 'catalogue' or list 'categories'", path);
    goto fail;
  }
  if (cat_file && s_load_catalogue(r, path, cat_file, org, err, errlen)) goto fail;
  if (list && s_load_classes(r, list, 0, org, err, errlen)) goto fail;

  list = config_lookup(&cfg, "rules");
  size_t n = list ? (size_t)config_setting_length(list) : 0;
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
    wh_care_t *ct = &r->care[r->ncare++];
    ct->tag = strdup(tag);
    ct->weight = w;
    config_setting_t *raise = config_setting_get_member(e, "raise");
    if (raise) {
      if (wh_config_strv(raise, "classes", &ct->raise_classes, err, errlen)) goto fail;
      if (!config_setting_lookup_int(raise, "level", &ct->raise_level) || ct->raise_level < 1 ||
          ct->raise_level > 3 || !ct->raise_classes || !ct->raise_classes[0]) {
        wh_config_fail(raise, err, errlen, "care tag %s: raise = { level = 1..3; classes = [...]; }", tag);
        goto fail;
      }
      for (char **k = ct->raise_classes; *k; k++)
        if (!wh_rules_category(r, *k)) {
          wh_config_fail(raise, err, errlen, "care tag %s raises class '%s', which the catalogue lacks",
                         tag, *k);
          goto fail;
        }
    }
  }

  config_setting_t *learn = config_lookup(&cfg, "learning");
  if (learn) {
    double at = 0, route = 0;
    if (!config_setting_lookup_float(learn, "suggest_at", &at) || at <= 0 || at > 1 ||
        (config_setting_lookup_float(learn, "route_at", &route) && (route < at || route > 1))) {
      wh_config_fail(learn, err, errlen,
                     "learning = { suggest_at = 0..1; route_at = suggest_at..1; } (scores, as 0.6)");
      goto fail;
    }
    r->learn_suggest_at = (int)(at * 1000 + 0.5);
    r->learn_route_at = (int)(route * 1000 + 0.5);
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

/* The keywords of rule u (which holds for rep) that the text holds: the
 * first of `any` it holds, then every one of `all`. */
static void s_rule_words(const wh_rule_t *u, const wh_report_t *rep, const s_chars_t *chars,
                         char *out, size_t len) {
  wh_str_t w;
  wh_str_init(&w, out, len);
  for (size_t i = 0; u->any[i]; i++)
    if (s_holds(chars, rep->text, u->any[i], &u->any_bits[i])) {
      wh_str_add(&w, u->any[i]);
      break;
    }
  for (size_t i = 0; u->all[i]; i++) wh_str_cat(&w, w.len ? " " : "", u->all[i], (char *)NULL);
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

/* The catalogue's words, and what a decision works out from where they
 * stand in the text. Worked out when the words are readied; a decision
 * uses the marks below (one decision at a time, as the segmenter). */
typedef struct {
  uint32_t phrase; /* the phrase's index among all classes' phrases */
  uint32_t term;
} s_use_t;

typedef struct {
  /* its uses: uses[uses_from .. uses_to), the danger signals' first, up to uses_danger */
  uint32_t uses_from, uses_danger, uses_to;
  uint8_t place;      /* 1 a road's place word, 2 a compound's */
  uint32_t head;      /* a decision's: its first spot, when head_tick is the decision's */
  uint32_t head_tick;
  uint32_t tick;      /* a sentence's: a word of a phrase the sentence holds whole */
} s_word_t;

typedef struct {
  const wh_phrase_t *phrase;
  uint32_t cat;  /* its class */
  uint32_t full; /* a bit for each of its words */
  uint32_t tick, mask; /* a sentence's: the words it holds */
  uint32_t cand_tick;  /* a candidate of this decision */
} s_phrase_t;

typedef struct {
  uint32_t sentence;
  int32_t next; /* the next spot of the same word, -1: none */
  uint8_t kept; /* a word of a phrase all of whose words its sentence holds */
} s_at_t;

struct wh_catidx {
  wh_wordset_t *ws;
  wh_wordset_t *danger_ws; /* the danger signals' words alone, by the same ids */
  size_t nwords, nphrases;
  s_word_t *word;
  s_use_t *uses;  /* the phrases' words that each word is an alternative of */
  s_phrase_t *ph; /* in class order, then the class's own order */
  /* a decision's */
  wh_spot_t *spots; /* where each word stands */
  s_at_t *at;       /* and what that spot is, by the same index */
  size_t nspots;
  uint32_t *sentence_full; /* the phrases a sentence holds whole */
  uint32_t *cands;         /* the phrases some sentence holds whole, in order */
  size_t ncands;
  uint32_t tick, decision;
  int danger_scan; /* the spots are the danger signals' words alone */
};

static void s_catidx_free(struct wh_catidx *x) {
  if (!x) return;
  wh_wordset_destroy(&x->ws);
  wh_wordset_destroy(&x->danger_ws);
  free(x->word);
  free(x->uses);
  free(x->ph);
  free(x->spots);
  free(x->at);
  free(x->sentence_full);
  free(x->cands);
  free(x);
}

/* The catalogue's words as a set, each term's alternatives as its ids, and
 * for each word the phrases' words it is an alternative of. */
static struct wh_catidx *s_catidx_new(wh_rules_t *r) {
  struct wh_catidx *x = calloc(1, sizeof *x);
  if (!x || !(x->ws = wh_wordset_new()) || !(x->danger_ws = wh_wordset_new())) goto fail;
  size_t nuses = 0;
  /* The danger signals' words first, into both sets alike: a word's id is
   * the same in each. */
  for (int danger = 1; danger >= 0; danger--)
    for (size_t i = 0; i < r->ncategories; i++) {
      const wh_category_t *c = &r->categories[i];
      if (c->danger != danger) continue;
      x->nphrases += c->nphrases;
      for (size_t k = 0; k < c->nphrases; k++)
        for (size_t t = 0; t < c->phrases[k].nterms; t++) {
          wh_term_t *term = &c->phrases[k].terms[t];
          size_t n = wh_strv_len(term->alts);
          free(term->ids);
          if (!(term->ids = calloc(n + 1, sizeof *term->ids))) goto fail;
          for (size_t a = 0; a < n; a++) {
            int id = wh_wordset_add(x->ws, term->alts[a]);
            if (id < 0 || (danger && wh_wordset_add(x->danger_ws, term->alts[a]) != id)) goto fail;
            term->ids[a] = (uint32_t)id;
          }
          nuses += n;
        }
    }
  for (int kind = 1; kind <= 2; kind++)
    for (char **a = kind == 1 ? r->road_words : r->compound_words; a && *a; a++)
      if (wh_wordset_add(x->ws, *a) < 0) goto fail;
  if (wh_wordset_build(x->ws) || wh_wordset_build(x->danger_ws)) goto fail;
  x->nwords = wh_wordset_count(x->ws);
  size_t nw = x->nwords, np = x->nphrases, maxspots = wh_wordset_max_spots(x->ws, WH_WORDS_TEXT_MAX);
  x->word = calloc(nw + 1, sizeof *x->word);
  x->uses = calloc(nuses + 1, sizeof *x->uses);
  x->ph = calloc(np + 1, sizeof *x->ph);
  x->spots = calloc(maxspots + 1, sizeof *x->spots);
  x->at = calloc(maxspots + 1, sizeof *x->at);
  x->sentence_full = calloc(np + 1, sizeof *x->sentence_full);
  x->cands = calloc(np + 1, sizeof *x->cands);
  if (!x->word || !x->uses || !x->ph || !x->spots || !x->at || !x->sentence_full || !x->cands) goto fail;
  for (int kind = 1; kind <= 2; kind++)
    for (char **a = kind == 1 ? r->road_words : r->compound_words; a && *a; a++)
      x->word[wh_wordset_add(x->ws, *a)].place |= (uint8_t)kind; /* added before: its id */
  /* the uses, grouped by word, the danger signals' first: each word's
   * count, its place among all, then each use into its word's place */
  size_t p = 0;
  for (size_t i = 0; i < r->ncategories; i++)
    for (size_t k = 0; k < r->categories[i].nphrases; k++, p++) {
      const wh_phrase_t *ph = &r->categories[i].phrases[k];
      x->ph[p] = (s_phrase_t){.phrase = ph, .cat = (uint32_t)i,
                              .full = (uint32_t)((1ull << ph->nterms) - 1)};
      for (size_t t = 0; t < ph->nterms; t++)
        for (size_t a = 0; ph->terms[t].alts[a]; a++) x->word[ph->terms[t].ids[a]].uses_to++;
    }
  for (size_t w = 0, from = 0; w < nw; w++) {
    size_t n = x->word[w].uses_to;
    x->word[w].uses_from = x->word[w].uses_danger = x->word[w].uses_to = (uint32_t)from;
    from += n;
  }
  for (int danger = 1; danger >= 0; danger--)
    for (p = 0; p < np; p++) {
      if (r->categories[x->ph[p].cat].danger != danger) continue;
      const wh_phrase_t *ph = x->ph[p].phrase;
      for (size_t t = 0; t < ph->nterms; t++)
        for (size_t a = 0; ph->terms[t].alts[a]; a++) {
          s_word_t *w = &x->word[ph->terms[t].ids[a]];
          x->uses[w->uses_to++] = (s_use_t){.phrase = (uint32_t)p, .term = (uint32_t)t};
          if (danger) w->uses_danger = w->uses_to;
        }
    }
  return x;
fail:
  s_catidx_free(x);
  return NULL;
}

/* A fresh tick for a decision's or a sentence's marks. */
static uint32_t s_tick(struct wh_catidx *x) { return ++x->tick; }

static int s_cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

/* Finds the catalogue's words in text (as the cut reads it: its first
 * WH_WORDS_TEXT_MAX bytes) and the candidates: the phrases (of the danger
 * signals only, with danger_only) all of whose words some one sentence
 * holds, in class order. A spot is kept when it is a word of a candidate
 * in its sentence: only the clauses holding one (or a place word) need
 * the segmenter. */
static void s_spot(const wh_rules_t *r, const char *text, int danger_only) {
  struct wh_catidx *x = r->catidx;
  size_t len = wh_words_len(text);
  x->nspots = wh_wordset_scan(danger_only ? x->danger_ws : x->ws, text, len, x->spots);
  x->danger_scan = danger_only;
  x->ncands = 0;
  if (x->tick > UINT32_MAX - x->nspots - 2) { /* a decision takes a tick and one a sentence at most */
    for (size_t w = 0; w < x->nwords; w++) x->word[w].head_tick = x->word[w].tick = 0;
    for (size_t p = 0; p < x->nphrases; p++) x->ph[p].tick = x->ph[p].cand_tick = 0;
    x->tick = 0;
  }
  uint32_t decision = x->decision = s_tick(x);
  /* each spot's sentence, as the cut numbers them */
  uint32_t sentence = 0;
  size_t i = 0;
  for (size_t k = 0; k < x->nspots; k++) {
    while (i < x->spots[k].at) {
      size_t n = 1;
      unsigned char b = (unsigned char)text[i];
      /* only these bytes start a mark that ends a sentence */
      if ((b == 0xE2 || b == 0xE3 || b == 0xEF || b == '!' || b == '?' || b == ';' || b == '\n') &&
          wh_words_stop(text + i, &n) == 1)
        sentence++;
      i += n;
    }
    x->at[k].sentence = sentence;
  }
  for (size_t k = x->nspots; k-- > 0;) { /* each word's spots, first to last */
    uint32_t id = x->spots[k].id;
    x->at[k].next = x->word[id].head_tick == decision ? (int32_t)x->word[id].head : -1;
    x->word[id].head = (uint32_t)k;
    x->word[id].head_tick = decision;
  }
  for (size_t from = 0; from < x->nspots;) {
    size_t to = from;
    while (to < x->nspots && x->at[to].sentence == x->at[from].sentence) to++;
    uint32_t tick = s_tick(x);
    size_t nfull = 0; /* the phrases this sentence holds whole, in x->sentence_full */
    for (size_t k = from; k < to; k++) {
      uint32_t id = x->spots[k].id, end = danger_only ? x->word[id].uses_danger : x->word[id].uses_to;
      for (uint32_t u = x->word[id].uses_from; u < end; u++) {
        uint32_t p = x->uses[u].phrase;
        if (x->ph[p].tick != tick) {
          x->ph[p].tick = tick;
          x->ph[p].mask = 0;
        }
        if (x->ph[p].mask == x->ph[p].full) continue;
        x->ph[p].mask |= 1u << x->uses[u].term;
        if (x->ph[p].mask == x->ph[p].full) x->sentence_full[nfull++] = p;
      }
    }
    /* their words are what the cut must find in this sentence */
    for (size_t f = 0; f < nfull; f++) {
      s_phrase_t *ph = &x->ph[x->sentence_full[f]];
      if (ph->cand_tick != decision) {
        ph->cand_tick = decision;
        x->cands[x->ncands++] = x->sentence_full[f];
      }
      for (size_t t = 0; t < ph->phrase->nterms; t++)
        for (size_t a = 0; ph->phrase->terms[t].alts[a]; a++) x->word[ph->phrase->terms[t].ids[a]].tick = tick;
    }
    for (size_t k = from; k < to; k++) x->at[k].kept = nfull && x->word[x->spots[k].id].tick == tick;
    from = to;
  }
  qsort(x->cands, x->ncands, sizeof *x->cands, s_cmp_u32);
}

/* wh_words_keep_fn over the spots: a clause is cut when it holds a kept
 * spot, or a place word ("小区里", "马路上"); with places_only, only then. */
typedef struct {
  const struct wh_catidx *x;
  size_t next; /* the clauses come in order: the first spot not yet passed */
  int places_only;
} s_keep_t;

static int s_keep_clause(size_t at, size_t len, void *arg) {
  s_keep_t *k = arg;
  const struct wh_catidx *x = k->x;
  while (k->next < x->nspots && x->spots[k->next].at < at) k->next++;
  for (size_t i = k->next; i < x->nspots && x->spots[i].at < at + len; i++)
    if (x->word[x->spots[i].id].place || (!k->places_only && x->at[i].kept)) return 1;
  return 0;
}

int wh_rules_words(wh_rules_t *r, wh_rules_t *old, const char *dir, char *err, size_t errlen) {
  struct wh_catidx *x = s_catidx_new(r);
  if (!x) {
    snprintf(err, errlen, "out of memory");
    return WH_ECONFIG;
  }
  wh_words_t *w = old && old->words ? old->words : wh_words_new(dir, err, errlen);
  if (!w) {
    s_catidx_free(x);
    return WH_ECONFIG;
  }
  if (old) old->words = NULL; /* the old rules decide no more */
  char *none[1] = {NULL};
  if (wh_words_negators(w, r->negators ? r->negators : none, r->hedges ? r->hedges : none,
                        r->negators_after ? r->negators_after : none)) {
    if (old) old->words = w; /* back to the rules in force */
    else wh_words_destroy(&w);
    s_catidx_free(x);
    snprintf(err, errlen, "out of memory");
    return WH_ECONFIG;
  }
  for (size_t i = 0; i < x->nwords; i++) wh_words_add(w, wh_wordset_word(x->ws, (uint32_t)i));
  wh_words_destroy(&r->words);
  r->words = w;
  s_catidx_free(r->catidx);
  r->catidx = x;
  return 0;
}

/* How well phrase p holds in the cut text: 0 when not (some word missing,
 * or only negated, or not in one sentence with the others); else the
 * characters its words matched in the sentences that hold them all (the
 * longest alternative of each), and one more for each word beyond the
 * first (a combination says more than a word). The words into why. */
static int s_phrase_score(const wh_rules_t *r, const wh_phrase_t *p, wh_str_t *why) {
  const struct wh_catidx *x = r->catidx;
  uint64_t common = ~0ull;
  for (size_t t = 0; t < p->nterms && common; t++) {
    uint64_t in = 0;
    for (size_t k = 0; p->terms[t].alts[k]; k++) {
      uint32_t id = p->terms[t].ids[k];
      if (x->word[id].head_tick != x->decision) continue;
      for (int32_t s = (int32_t)x->word[id].head; s >= 0; s = x->at[s].next) {
        wh_hit_t h;
        if (!x->at[s].kept ||
            !wh_words_at(r->words, p->terms[t].alts[k], wh_wordset_len(x->ws, id),
                         wh_wordset_chars(x->ws, id), x->spots[s].at, &h) ||
            h.negated)
          continue;
        in |= 1ull << (h.sentence < 63 ? h.sentence : 63);
      }
    }
    common &= in;
  }
  if (!common) return 0;
  int score = 0;
  const char *said[WH_PHRASE_TERMS]; /* each word's alternative found, the longest */
  for (size_t t = 0; t < p->nterms; t++) {
    int best = 0;
    said[t] = NULL;
    for (size_t k = 0; p->terms[t].alts[k]; k++) {
      uint32_t id = p->terms[t].ids[k];
      int len = (int)wh_wordset_chars(x->ws, id);
      if (x->word[id].head_tick != x->decision || len <= best) continue;
      for (int32_t s = (int32_t)x->word[id].head; s >= 0; s = x->at[s].next) {
        wh_hit_t h;
        if (x->at[s].kept &&
            wh_words_at(r->words, p->terms[t].alts[k], wh_wordset_len(x->ws, id), (size_t)len,
                        x->spots[s].at, &h) &&
            !h.negated && (common >> (h.sentence < 63 ? h.sentence : 63) & 1)) {
          best = len;
          said[t] = p->terms[t].alts[k];
          break;
        }
      }
    }
    score += best + (t ? 1 : 0);
  }
  if (why) {
    why->len = 0;
    why->full = 0;
    if (why->cap) why->buf[0] = '\0';
    for (size_t t = 0, n = 0; t < p->nterms; t++)
      if (said[t]) wh_str_cat(why, n++ ? " " : "", said[t], (char *)NULL);
  }
  return score;
}

/* The catalogue's best ordinary class and best danger signal for the cut
 * text (indexes, -1: none), and the runners-up; precedence: the higher
 * score, then the class listed first. */
typedef struct {
  int best, danger, runner[3];
  int best_score, danger_score, runner_score[3];
  char words[192], danger_words[192];
  int cut; /* the text was cut: its words are the words' */
} s_match_t;

/* danger_only: a rule or the channel's category decided; only the danger
 * signals are looked for. The text is cut (friso, the costly part) only
 * when some phrase may hold, and only its clauses that hold their words. */
static void s_catalogue_match(const wh_rules_t *r, const char *text, int danger_only, s_match_t *m) {
  memset(m, 0, sizeof *m);
  m->best = m->danger = m->runner[0] = m->runner[1] = m->runner[2] = -1;
  wh_words_clear(r->words);
  s_spot(r, text, danger_only);
  const struct wh_catidx *x = r->catidx;
  if (!x->ncands) return;
  s_keep_t keep = {.x = x};
  if (wh_words_cut(r->words, text, s_keep_clause, &keep)) return;
  m->cut = 1;
  char buf[192];
  wh_str_t why;
  for (size_t n = 0; n < x->ncands;) {
    int i = (int)x->ph[x->cands[n]].cat;
    const wh_category_t *c = &r->categories[i];
    int score = 0;
    for (; n < x->ncands && (int)x->ph[x->cands[n]].cat == i; n++) { /* the candidates of class i */
      wh_str_init(&why, buf, sizeof buf);
      int sc = s_phrase_score(r, x->ph[x->cands[n]].phrase, &why);
      if (sc > score) {
        score = sc;
        if (c->danger && sc > m->danger_score) wh_str_copy(m->danger_words, sizeof m->danger_words, buf);
        if (!c->danger && sc > m->best_score) wh_str_copy(m->words, sizeof m->words, buf);
      }
    }
    if (!score) continue;
    if (c->danger) {
      if (score > m->danger_score) {
        m->danger = (int)i;
        m->danger_score = score;
      }
      continue;
    }
    if (score > m->best_score) {
      /* the old best becomes the first runner-up */
      memmove(&m->runner[1], &m->runner[0], 2 * sizeof m->runner[0]);
      memmove(&m->runner_score[1], &m->runner_score[0], 2 * sizeof m->runner_score[0]);
      m->runner[0] = m->best;
      m->runner_score[0] = m->best_score;
      m->best = (int)i;
      m->best_score = score;
    } else {
      for (int k = 0; k < 3; k++)
        if (score > m->runner_score[k]) {
          memmove(&m->runner[k + 1], &m->runner[k], (size_t)(2 - k) * sizeof m->runner[0]);
          memmove(&m->runner_score[k + 1], &m->runner_score[k], (size_t)(2 - k) * sizeof m->runner_score[0]);
          m->runner[k] = (int)i;
          m->runner_score[k] = score;
          break;
        }
    }
  }
}

/* 1 if the n bytes at byte at of text lie inside a longer word of other
 * written there ("小区" inside "小区大门外" says outside the compound). */
static int s_place_inside(const char *text, size_t at, size_t n, char **other) {
  for (char **b = other; b && *b; b++) {
    size_t len = strlen(*b);
    if (len <= n) continue;
    for (size_t from = at + n > len ? at + n - len : 0; from <= at; from++)
      if (!strncmp(text + from, *b, len)) return 1;
  }
  return 0;
}

/* 1 if a place word of list stands in the cut text, not negated, and not
 * inside a longer place word of other. */
static int s_place_said(const wh_rules_t *r, char **list, char **other) {
  const char *text = wh_words_text(r->words);
  for (char **a = list; a && *a; a++) {
    wh_hit_t h;
    for (size_t from = 0; wh_words_find(r->words, *a, from, &h); from = h.at + 1)
      if (!h.negated && !s_place_inside(text, h.at, h.len, other)) return 1;
  }
  return 0;
}

/* 1 if a place word of list is written in text (an address), not inside a
 * longer place word of other. */
static int s_place_written(const char *text, char **list, char **other) {
  for (char **a = list; a && *a; a++)
    for (const char *p = text; (p = strstr(p, *a)); p++)
      if (!s_place_inside(text, (size_t)(p - text), strlen(*a), other)) return 1;
  return 0;
}

/* Where the report is, for a class that has an owner by place: words in
 * the text first ("小区里", "马路上"), then the address, then the grid's
 * kind on the org chart; "" when none says. */
static const char *s_place(const wh_rules_t *r, const wh_org_t *org, const wh_report_t *rep,
                           s_match_t *m) {
  int road = 0, compound = 0;
  if (r->words && r->catidx->danger_scan) {
    /* the channel gave the class: the spots were the danger signals' alone */
    s_spot(r, rep->text, 0);
    m->cut = 0;
  }
  if (!m->cut && r->words) { /* no phrase could hold (a class the examples gave, or the channel): the place words alone */
    s_keep_t places = {.x = r->catidx, .places_only = 1}; /* the spots are rep->text's */
    if (!wh_words_cut(r->words, rep->text, s_keep_clause, &places)) m->cut = 1;
  }
  road = s_place_said(r, r->road_words, r->compound_words);
  compound = s_place_said(r, r->compound_words, r->road_words);
  if (road != compound) return road ? "road" : "compound";
  if (rep->address && rep->address[0]) {
    road = s_place_written(rep->address, r->road_words, r->compound_words);
    compound = s_place_written(rep->address, r->compound_words, r->road_words);
    if (road != compound) return road ? "road" : "compound";
  }
  return wh_org_grid_kind(org, rep->community, rep->grid);
}

/* The route of class c at place. */
static const wh_route_t *s_class_route(const wh_category_t *c, const char *place) {
  if (!strcmp(place, "road") && c->has_road) return &c->road;
  if (!strcmp(place, "compound") && c->has_compound) return &c->compound;
  return &c->route;
}

/* Routes the report as class c, by its owner at the report's place where
 * the class has one there (and says the place). */
static void s_route_class(const wh_rules_t *r, const wh_org_t *org, const wh_report_t *rep,
                          const wh_category_t *c, s_match_t *m, wh_decision_t *out) {
  const char *place = (c->has_road || c->has_compound) ? s_place(r, org, rep, m) : "";
  s_set_route(org, rep->community, s_class_route(c, place), out);
  if ((c->has_road && !strcmp(place, "road")) || (c->has_compound && !strcmp(place, "compound")))
    wh_str_copy(out->place, sizeof out->place, place);
}

/* Adds a party (as the org chart names it: "wenhan.pm") as a co-party,
 * unless it leads or is one already. */
static void s_add_party(const char *party, wh_decision_t *out) {
  if (!strcmp(party, out->lead)) return;
  for (int k = 0; k < out->nco; k++)
    if (!strcmp(out->co[k], party)) return;
  if (out->nco < WH_MAX_CO) wh_str_copy(out->co[out->nco++], sizeof out->co[0], party);
}

/* The same for a party's code in the rules ("pm": the report's community's). */
static void s_add_co(const wh_org_t *org, const char *community, const char *code,
                     wh_decision_t *out) {
  char party[96];
  wh_org_resolve(org, community, code, party, sizeof party);
  s_add_party(party, out);
}

/* 1 if a danger signal and the class found are of one group: the class
 * says more precisely whose the emergency is (a pipe burst upstairs is the
 * property's, not the water company's, though 水管爆 is a danger), so it
 * keeps the lead and the danger's parties join it. */
static int s_same_group(const wh_category_t *danger, const wh_category_t *c) {
  return danger != c && danger->group && c->group && !strcmp(danger->group, c->group);
}

/* Decides from the catalogue alone; 0 when no class holds. */
static int s_decide_catalogue(const wh_rules_t *r, const wh_org_t *org, const wh_report_t *rep,
                              s_match_t *m, wh_decision_t *out) {
  int lead_by_danger = m->danger >= 0 &&
                       (m->best < 0 || (r->categories[m->danger].takes_lead &&
                                        !s_same_group(&r->categories[m->danger], &r->categories[m->best])));
  int idx = lead_by_danger ? m->danger : m->best;
  if (idx < 0) return 0;
  const wh_category_t *c = &r->categories[idx];
  s_route_class(r, org, rep, c, m, out);
  wh_str_copy(out->klass, sizeof out->klass, c->code);
  snprintf(out->rule, sizeof out->rule, "catalogue:%s", c->code);
  wh_str_copy(out->words, sizeof out->words, lead_by_danger ? m->danger_words : m->words);
  out->merge = c->merge;
  /* the class the danger took the lead from stays on it */
  if (lead_by_danger && m->best >= 0) {
    const wh_category_t *o = &r->categories[m->best];
    s_add_co(org, rep->community, s_class_route(o, s_place(r, org, rep, m))->lead, out);
  }
  return 1;
}

static int s_known_class(void *arg, const char *klass) {
  return wh_rules_category(arg, klass) != NULL;
}

/* Where no rule or class placed it: the center's most alike example
 * suggests its class (out->suggested), and routes by it from route_at;
 * 0 when it does not route. */
static int s_decide_learned(const wh_rules_t *r, const wh_org_t *org, const wh_report_t *rep,
                            s_match_t *m, wh_decision_t *out) {
  wh_suggestion_t sg;
  if (!rep->learned || !r->learn_suggest_at ||
      !wh_learn_suggest(rep->learned, rep->text, s_known_class, (void *)r, &sg) ||
      sg.score < r->learn_suggest_at)
    return 0;
  out->suggested = sg;
  const wh_category_t *c = wh_rules_category(r, sg.klass);
  if (!r->learn_route_at || sg.score < r->learn_route_at || !c) return 0;
  s_route_class(r, org, rep, c, m, out);
  wh_str_copy(out->klass, sizeof out->klass, c->code);
  snprintf(out->rule, sizeof out->rule, "learned:%s %d.%03d like %s", c->code, sg.score / 1000,
           sg.score % 1000, sg.like);
  out->merge = c->merge;
  return 1;
}

void wh_rules_decide(const wh_rules_t *r, const wh_org_t *org, const wh_report_t *report,
                     wh_decision_t *out) {
  memset(out, 0, sizeof *out);
  /* read in simplified characters, as the rules and the catalogue are written */
  wh_report_t simplified = *report;
  if (r->words && report->text) simplified.text = wh_words_simplified(r->words, report->text);
  const wh_report_t *rep = &simplified;
  const wh_category_t *given = rep->category[0] ? wh_rules_category(r, rep->category) : NULL;
  int cat = given ? (int)(given - r->categories) : -1;
  const wh_rule_t *hit = NULL;
  s_chars_t chars;
  s_chars_of(&chars, rep->text);
  for (size_t i = 0; i < r->nrules && !hit; i++)
    if (s_matches(&r->rules[i], rep, cat, &chars)) hit = &r->rules[i];
  s_match_t m;
  memset(&m, 0, sizeof m);
  m.best = m.danger = m.runner[0] = m.runner[1] = m.runner[2] = -1;
  if (r->words) s_catalogue_match(r, rep->text, hit != NULL || given != NULL, &m);
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
    s_rule_words(hit, rep, &chars, out->words, sizeof out->words);
    out->merge = base ? base->merge : 1;
  } else if (given) {
    /* the call-taker's class, with its owner by place (a lamp inside a compound is the property's) */
    s_route_class(r, org, rep, given, &m, out);
    wh_str_copy(out->klass, sizeof out->klass, given->code);
    wh_str_t rule;
    wh_str_init(&rule, out->rule, sizeof out->rule);
    wh_str_cat(&rule, "category:", given->code, (char *)NULL);
    out->merge = given->merge;
  } else if (!s_decide_catalogue(r, org, rep, &m, out) && !s_decide_learned(r, org, rep, &m, out)) {
    s_set_route(org, rep->community, &r->unplaced, out);
    snprintf(out->klass, sizeof out->klass, "unplaced");
    snprintf(out->rule, sizeof out->rule, "unplaced");
    out->merge = 0; /* unrelated reports in one grid are not repeats */
  }
  /* Danger first [over any class]: a signal that takes the lead takes it
   * from whatever decided (a rule, the channel's category), whose lead
   * and co-parties stay on as co-parties; any other raises the report to
   * level 1 and adds its emergency parties. */
  const wh_category_t *decided = wh_rules_category(r, out->klass);
  if (m.danger >= 0 && (hit || given) && r->categories[m.danger].takes_lead &&
      strcmp(out->klass, r->categories[m.danger].code) &&
      !(decided && s_same_group(&r->categories[m.danger], decided))) {
    const wh_category_t *dg = &r->categories[m.danger];
    wh_decision_t base = *out;
    s_set_route(org, rep->community, &dg->route, out);
    s_add_party(base.lead, out); /* named already: "wenhan.pm" is no code to resolve */
    for (int k = 0; k < base.nco; k++) s_add_party(base.co[k], out);
    wh_str_copy(out->klass, sizeof out->klass, dg->code);
    wh_str_t rule;
    wh_str_init(&rule, out->rule, sizeof out->rule);
    wh_str_cat(&rule, "danger:", dg->code, " over ", base.rule, (char *)NULL);
    wh_str_copy(out->words, sizeof out->words, m.danger_words);
    out->merge = dg->merge;
  }
  if (m.danger >= 0 && strcmp(out->klass, r->categories[m.danger].code)) {
    const wh_category_t *dg = &r->categories[m.danger];
    out->level = 1;
    s_add_co(org, rep->community, dg->route.lead, out);
    for (char **p = dg->route.co; p && *p; p++) s_add_co(org, rep->community, *p, out);
    wh_str_copy(out->danger, sizeof out->danger, dg->code);
    wh_str_copy(out->danger_words, sizeof out->danger_words, m.danger_words);
  } else if (m.danger >= 0) {
    wh_str_copy(out->danger, sizeof out->danger, r->categories[m.danger].code);
    wh_str_copy(out->danger_words, sizeof out->danger_words, m.danger_words);
  }
  /* the classes the text also matched, best first, less the one decided */
  int cand[4] = {m.best, m.runner[0], m.runner[1], m.runner[2]};
  for (int k = 0; k < 4 && out->nrunner_up < 3; k++)
    if (cand[k] >= 0 && strcmp(r->categories[cand[k]].code, out->klass))
      wh_str_copy(out->runner_up[out->nrunner_up++], sizeof out->runner_up[0],
                  r->categories[cand[k]].code);
  out->weight = 1;
  for (size_t i = 0; i < rep->ncare_tags; i++)
    for (size_t k = 0; k < r->ncare; k++)
      if (!strcmp(rep->care_tags[i], r->care[k].tag)) out->weight += r->care[k].weight;
  /* A tag raises the level only where it changes the stakes, and the rule
   * says which tag raised it from what: a tagged resident asking about a
   * subsidy stays where the class puts the report. */
  for (size_t i = 0; i < rep->ncare_tags; i++)
    for (size_t k = 0; k < r->ncare; k++) {
      const wh_care_t *ct = &r->care[k];
      if (strcmp(rep->care_tags[i], ct->tag) || !ct->raise_level || out->level <= ct->raise_level ||
          !s_in(ct->raise_classes, out->klass))
        continue;
      size_t n = strlen(out->rule);
      snprintf(out->rule + n, sizeof out->rule - n, "; care:%s level %d to %d", ct->tag, out->level,
               ct->raise_level);
      out->level = ct->raise_level;
    }
}
