/* wh_rules - triage rules: which colour, level and parties a report gets.
 *
 * The rules file lists categories (what a hotline call-taker can pick, each
 * with its default routing), care tags (with the weight they add), and an
 * ordered list of rules over the report: the first rule whose conditions all
 * hold decides, and records its name. Conditions: the given category is one
 * of `category`; the text holds any of `any`, all of `all`, none of `none`;
 * the channel is one of `channels`; with `uncategorized = true`, the report
 * came without a category (a call-taker's pick is trusted over keywords,
 * except by the emergency and refinement rules placed before). A rule that names a `class` and leaves out
 * colour, level or parties takes them from that category. No rule and a
 * category: the category's defaults. No rule and no category: the class
 * of the center's most alike example when it scores `learning.route_at`
 * (rule "learned:CODE 0.72 like WH..."), else `unplaced`, the command
 * center's manual queue, with that class as a suggestion from
 * `learning.suggest_at`. */
#ifndef WH_RULES_H
#define WH_RULES_H

#include <stddef.h>
#include <stdint.h>

#include "wh_learn.h"
#include "wh_org.h"
#include "wh_words.h"

#define WH_MAX_CO 8

typedef struct {
  int color; /* Whistle__Color */
  int level;
  char *lead;
  char **co;
} wh_route_t;

/* One way residents say a class: words that must all stand in one
 * sentence, not negated ("垃圾 没人收|没人清": 垃圾 and one of the two);
 * each alternative's id among the catalogue's words (wh_rules_words). */
typedef struct {
  char **alts;
  uint32_t *ids;
} wh_term_t;
/* The most words one phrase may combine. */
#define WH_PHRASE_TERMS 16
typedef struct {
  char *text; /* as the catalogue writes it */
  wh_term_t *terms;
  size_t nterms;
} wh_phrase_t;

typedef struct {
  char *code;
  char *name;
  int merge; /* repeats in the same grid merge */
  wh_route_t route;
  /* from the catalogue [派单目录]: */
  char *group;
  wh_phrase_t *phrases;
  size_t nphrases;
  int danger;     /* a level-1 signal: raises any report it is in */
  int takes_lead; /* ... and its own lead takes the report */
  int has_road, has_compound;
  wh_route_t road, compound; /* the owner by place, where it differs */
} wh_category_t;

typedef struct {
  char *code;
  char *name;
} wh_group_t;

/* A keyword's characters as bits of the set a report's text is checked
 * against (wh_rules.c), worked out once when the rules load; a keyword of
 * more characters keeps its first WH_KW_BITS, which rule out as surely. */
#define WH_KW_BITS 15
typedef struct wh_kwbits {
  uint16_t n;
  uint16_t bit[WH_KW_BITS];
} wh_kwbits_t;

typedef struct {
  char *name;
  char **category; /* conditions */
  char **any;
  char **all;
  char **none;
  char **channels;
  int uncategorized; /* only for reports that came without a category */
  char *klass; /* outcome */
  int has_color, has_level, has_lead, has_co;
  wh_route_t route;
  /* worked out at load: category as indexes into the rules' categories
   * (-1 ends), the keywords' characters (in the order of any, all, none),
   * and the category the outcome takes what it does not set from */
  int *category_idx;
  wh_kwbits_t *any_bits, *all_bits, *none_bits;
  int base_idx; /* -1: none */
} wh_rule_t;

typedef struct {
  char *tag;
  int weight;
  /* where the tag changes the stakes (alone and unwell, locked out in the
   * cold): a report of one of these classes goes to this level (0: none) */
  int raise_level;
  char **raise_classes;
} wh_care_t;

typedef struct {
  wh_category_t *categories;
  size_t ncategories;
  wh_rule_t *rules;
  size_t nrules;
  wh_care_t *care;
  size_t ncare;
  wh_route_t unplaced;
  int64_t dedup_window_ms;
  /* the catalogue's */
  wh_group_t *groups;
  size_t ngroups;
  char **negators;       /* right before a word: it is not so ("没有" 冒烟) */
  char **hedges;         /* before, in its clause: feared or supposed ("就怕" 哪天着火) */
  char **negators_after; /* after a word: it is a risk only ("火灾" 隐患) */
  char **road_words, **compound_words; /* words that place a report */
  wh_words_t *words; /* the segmenter; NULL until wh_rules_words */
  struct wh_catidx *catidx; /* the catalogue's words, found in a text in one pass (wh_rules.c) */
  /* learning = { suggest_at; route_at; }, in thousandths (0: never): a
   * report no rule places is given the class of the center's most alike
   * example when it scores suggest_at, and routed by it at route_at */
  int learn_suggest_at, learn_route_at;
} wh_rules_t;

/* What triage needs of a report to decide. */
typedef struct {
  const char *category; /* "" when none */
  const char *text;
  const char *channel;  /* hotline | wechat | ... */
  const char *community;
  const char *grid;     /* NULL or "": not given */
  const char *address;
  char *const *care_tags;
  size_t ncare_tags;
  wh_learn_t *learned; /* the center's examples (NULL: none) */
} wh_report_t;

typedef struct {
  int color;
  int level;
  char lead[96];
  char co[WH_MAX_CO][96];
  int nco;
  char klass[64];
  char rule[160]; /* what decided, and any care tag that raised it */
  int weight;
  int merge;
  char words[192];   /* the words that decided ("垃圾 没人收"), or "" */
  char place[16];    /* road | compound, where it chose the owner */
  char danger[64];   /* the danger signal that raised it, or "" */
  char danger_words[192]; /* the words it was found by */
  char runner_up[3][64]; /* the next classes the text matched, best first */
  int nrunner_up;
  /* what the center's examples suggest, where no rule placed it */
  wh_suggestion_t suggested; /* klass "" when none */
} wh_decision_t;

/* Loads rules from path, checking every party against org (which may be
 * NULL to skip that check, as intake does), and the catalogue the rules
 * name (`catalogue = "catalogue.conf"`, beside the rules file): its
 * classes are the categories. Returns NULL and writes "file:line: text" on
 * error. */
wh_rules_t *wh_rules_load(const char *path, const wh_org_t *org, char *err, size_t errlen);
void wh_rules_destroy(wh_rules_t **self_p);
/* Readies the catalogue's phrases for wh_rules_decide: loads the word
 * dictionary (dir NULL: friso-dict's), or takes over the one of old (rules
 * being replaced: a reload), and adds the catalogue's words. Without it,
 * decide uses the rules and categories alone. Returns 0, or WH_ECONFIG
 * with a sentence in err. */
int wh_rules_words(wh_rules_t *rules, wh_rules_t *old, const char *dir, char *err, size_t errlen);
/* Returns the category with this code, or NULL. */
const wh_category_t *wh_rules_category(const wh_rules_t *rules, const char *code);
/* Returns 1 if tag is a known care tag. */
int wh_rules_care_known(const wh_rules_t *rules, const char *tag);
/* Decides a report; parties are resolved through org for the community. */
void wh_rules_decide(const wh_rules_t *rules, const wh_org_t *org, const wh_report_t *report,
                     wh_decision_t *out);
/* "red" / "yellow" / "green" for a Whistle__Color, "" otherwise; and back
 * (returns 0 for an unknown name). */
const char *wh_color_name(int color);
int wh_color_parse(const char *name);

#endif
