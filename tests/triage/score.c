/* whistle-triage-score - how triage routes labelled reports, as practice would.
 *
 *   tests/triage/score.sh BIN [--conf DIR] [--misses|--decisions] [--learn] [--floor C,L,D,Q] NAME=FILE...
 *
 * Decides every report of each FILE (one JSON object a line, the format of
 * tests/data/scenarios.jsonl, which score.sh hands over as tab-separated
 * fields) with the rules and org chart of DIR (default
 * deploy/demo), as triage would, stores nothing, and prints per part the
 * share whose colour is the expected one, whose level and lead are among
 * the acceptable ones, and the share left to the command center's manual
 * queue. `--floor` names the least shares (colour, level, lead) and the
 * most left to the queue that the first part must meet; the exit status is
 * 1 when it does not. `--misses` lists each report decided otherwise, for
 * the part rules are tuned against: never read it for the held-back part
 * (tests/data/README.md). `--learn` also measures learning from the
 * center: each report the rules place is left out in turn, the others
 * taught as the center would have placed them (their class), and the
 * class of the most alike is compared with its own, by score band.
 * `--decisions` prints every decision in full, a line each, to compare a
 * change of the catalogue or of the matching decision by decision. */
#include "wh_learn.h"
#include "wh_org.h"
#include "wh_rules.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_TIMED 4096
typedef struct {
  int n, color, level, lead, queue;
  double us[MAX_TIMED]; /* each decision's time, for the figures printed */
} s_score_t;

/* The placed reports of every part, for --learn. */
#define MAX_LEARN 4096
static char *s_ltext[MAX_LEARN], s_lclass[MAX_LEARN][64];
static int s_nlearn;

static int s_cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* 1 if the comma-separated list holds item (for a lead, less its
 * community: "xiangdong.pm" is "pm"). */
static int s_listed(const char *list, const char *item) {
  const char *dot = strchr(item, '.');
  const char *bare = dot ? dot + 1 : item;
  size_t n = strlen(bare);
  for (const char *p = list; *p;) {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    if (len == n && !memcmp(p, bare, n)) return 1;
    if (!end) break;
    p = end + 1;
  }
  return 0;
}

/* The fields score.sh writes, a line each: id, source, community, grid,
 * address, category, care tags, colour, levels, leads (both lists comma-
 * separated), text. */
enum { F_ID, F_SOURCE, F_COMMUNITY, F_GRID, F_ADDRESS, F_CATEGORY, F_CARE, F_COLOR, F_LEVELS,
       F_LEADS, F_TEXT, F_N };

static int s_score(const wh_rules_t *rules, const wh_org_t *org, const char *name, const char *path,
                   int misses, s_score_t *s) {
  FILE *f = fopen(path, "r");
  if (!f) {
    fprintf(stderr, "whistle-triage-score: %s: cannot open\n", path);
    return -1;
  }
  char *line = NULL;
  size_t cap = 0;
  int lineno = 0, rc = 0;
  memset(s, 0, sizeof *s);
  while (getline(&line, &cap, f) > 0) {
    lineno++;
    line[strcspn(line, "\n")] = '\0';
    if (!line[0]) continue;
    char *field[F_N];
    int nf = 0;
    for (char *p = line; nf < F_N; nf++) {
      field[nf] = p;
      char *tab = strchr(p, '\t');
      if (!tab) {
        nf++;
        break;
      }
      *tab = '\0';
      p = tab + 1;
    }
    if (nf != F_N) {
      fprintf(stderr, "%s:%d: not a labelled report\n", path, lineno);
      rc = -1;
      break;
    }
    char *care[16];
    size_t ncare = 0;
    for (char *save = NULL, *t = strtok_r(field[F_CARE], ",", &save); t && ncare < 16;
         t = strtok_r(NULL, ",", &save))
      care[ncare++] = t;
    wh_report_t rep = {.category = field[F_CATEGORY], .text = field[F_TEXT],
                       .channel = field[F_SOURCE], .community = field[F_COMMUNITY],
                       .grid = field[F_GRID], .address = field[F_ADDRESS],
                       .care_tags = care, .ncare_tags = ncare};
    wh_decision_t d;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    wh_rules_decide(rules, org, &rep, &d);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (s->n < MAX_TIMED)
      s->us[s->n] = (double)(t1.tv_sec - t0.tv_sec) * 1e6 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e3;
    char level[4];
    snprintf(level, sizeof level, "%d", d.level);
    int c_ok = !strcmp(wh_color_name(d.color), field[F_COLOR]);
    int v_ok = s_listed(field[F_LEVELS], level);
    int l_ok = s_listed(field[F_LEADS], d.lead);
    int queued = !strcmp(d.lead, org->center);
    if (strcmp(d.klass, "unplaced") && s_nlearn < MAX_LEARN && (s_ltext[s_nlearn] = strdup(rep.text))) {
      snprintf(s_lclass[s_nlearn], sizeof s_lclass[0], "%s", d.klass);
      s_nlearn++;
    }
    s->n++;
    s->color += c_ok;
    s->level += v_ok;
    s->lead += l_ok;
    s->queue += queued;
    if (misses == 2) {
      printf("  decision %s %s: %s %d %s co", name, field[F_ID], wh_color_name(d.color), d.level, d.lead);
      for (int k = 0; k < d.nco; k++) printf("%s%s", k ? "," : " ", d.co[k]);
      printf(" class %s by %s [%s] place %s danger %s [%s] runners", d.klass, d.rule, d.words, d.place,
             d.danger, d.danger_words);
      for (int k = 0; k < d.nrunner_up; k++) printf("%s%s", k ? "," : " ", d.runner_up[k]);
      printf("\n");
    } else if (misses && !(c_ok && v_ok && l_ok))
      printf("  miss %s %s: %s %d %s by %s [%s%s%s] (expected %s [%s] [%s]): %s\n", name,
             field[F_ID], wh_color_name(d.color), d.level, d.lead, d.rule, d.words,
             d.danger[0] ? " danger " : "", d.danger, field[F_COLOR], field[F_LEVELS],
             field[F_LEADS], rep.text);
  }
  free(line);
  fclose(f);
  if (!rc && !s->n) {
    fprintf(stderr, "whistle-triage-score: %s: no reports\n", path);
    rc = -1;
  }
  return rc;
}

static double s_share(int k, int n) { return n ? (double)k / n : 0; }

/* Leaves each placed report out, teaches the rest, and prints how often
 * the most alike had its class, by score band and from the rules'
 * suggest_at and route_at. */
static int s_learn(const wh_rules_t *rules) {
  int band[10] = {0}, right[10] = {0}, from[2] = {0}, from_right[2] = {0};
  int at[2] = {rules->learn_suggest_at, rules->learn_route_at};
  char ticket[32];
  for (int i = 0; i < s_nlearn; i++) {
    wh_learn_t *l = wh_learn_new();
    if (!l) return 2;
    for (int k = 0; k < s_nlearn; k++) {
      snprintf(ticket, sizeof ticket, "E%d", k);
      if (k != i) wh_learn_add(l, ticket, s_lclass[k], s_ltext[k]);
    }
    wh_suggestion_t sg;
    if (wh_learn_suggest(l, s_ltext[i], NULL, NULL, &sg)) {
      int b = sg.score >= 1000 ? 9 : sg.score / 100, ok = !strcmp(sg.klass, s_lclass[i]);
      band[b]++;
      right[b] += ok;
      for (int k = 0; k < 2; k++)
        if (at[k] && sg.score >= at[k]) {
          from[k]++;
          from_right[k] += ok;
        }
    }
    wh_learn_destroy(&l);
  }
  printf("learning: %d placed reports, each left out and the rest taught; the most alike's class\n",
         s_nlearn);
  for (int b = 0; b < 10; b++)
    if (band[b])
      printf("  score %.1f-%.1f  %4d reports, right %5.1f%%\n", b / 10.0, (b + 1) / 10.0, band[b],
             100 * s_share(right[b], band[b]));
  /* the cost of a suggestion among many examples: each report taught 32
   * times over (as a center's years of assignments), each text asked */
  wh_learn_t *big = wh_learn_new();
  if (!big) return 2;
  for (int r = 0; r < 32; r++)
    for (int k = 0; k < s_nlearn; k++) {
      snprintf(ticket, sizeof ticket, "E%d.%d", k, r);
      wh_learn_add(big, ticket, s_lclass[k], s_ltext[k]);
    }
  wh_learn_refresh(big);
  static double us[MAX_LEARN];
  for (int i = 0; i < s_nlearn; i++) {
    wh_suggestion_t sg;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    wh_learn_suggest(big, s_ltext[i], NULL, NULL, &sg);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    us[i] = (double)(t1.tv_sec - t0.tv_sec) * 1e6 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e3;
  }
  if (s_nlearn) {
    qsort(us, (size_t)s_nlearn, sizeof us[0], s_cmp);
    printf("  a suggestion among %zu examples: p50 %.0f us, p99 %.0f us\n", wh_learn_count(big),
           us[s_nlearn / 2], us[s_nlearn * 99 / 100]);
  }
  wh_learn_destroy(&big);
  static const char *what[2] = {"suggested", "routed"};
  for (int k = 0; k < 2; k++)
    if (at[k])
      printf("  %s from %d.%03d: %5.1f%% of them, right %5.1f%%\n", what[k], at[k] / 1000, at[k] % 1000,
             100 * s_share(from[k], s_nlearn), 100 * s_share(from_right[k], from[k]));
  return 0;
}

int main(int argc, char **argv) {
  const char *conf = "deploy/demo";
  int misses = 0, has_floor = 0, first = 1, learn = 0;
  double floor[4] = {0};
  for (; first < argc && argv[first][0] == '-'; first++) {
    if (!strcmp(argv[first], "--misses")) {
      misses = 1;
    } else if (!strcmp(argv[first], "--decisions")) {
      misses = 2;
    } else if (!strcmp(argv[first], "--learn")) {
      learn = 1;
    } else if (!strcmp(argv[first], "--conf") && first + 1 < argc) {
      conf = argv[++first];
    } else if (!strcmp(argv[first], "--floor") && first + 1 < argc &&
               sscanf(argv[first + 1], "%lf,%lf,%lf,%lf", &floor[0], &floor[1], &floor[2], &floor[3]) == 4) {
      has_floor = 1;
      first++;
    } else {
      fprintf(stderr, "usage: whistle-triage-score [--conf DIR] [--misses|--decisions] [--learn] [--floor C,L,D,Q] NAME=FILE...\n");
      return 2;
    }
  }
  if (first == argc) {
    fprintf(stderr, "whistle-triage-score: name at least one NAME=FILE\n");
    return 2;
  }
  char path[4096], err[512];
  snprintf(path, sizeof path, "%s/org.conf", conf);
  wh_org_t *org = wh_org_load(path, err, sizeof err);
  if (!org) {
    fprintf(stderr, "whistle-triage-score: %s\n", err);
    return 2;
  }
  snprintf(path, sizeof path, "%s/rules.conf", conf);
  wh_rules_t *rules = wh_rules_load(path, org, err, sizeof err);
  if (!rules) {
    fprintf(stderr, "whistle-triage-score: %s\n", err);
    wh_org_destroy(&org);
    return 2;
  }
  if (wh_rules_words(rules, NULL, NULL, err, sizeof err)) {
    fprintf(stderr, "whistle-triage-score: %s\n", err);
    wh_rules_destroy(&rules);
    wh_org_destroy(&org);
    return 2;
  }
  int rc = 0;
  printf("%-10s %8s %8s %8s %8s %8s\n", "part", "reports", "colour", "level", "lead", "queue");
  for (int i = first; i < argc; i++) {
    char *eq = strchr(argv[i], '=');
    if (!eq) {
      fprintf(stderr, "whistle-triage-score: %s: NAME=FILE\n", argv[i]);
      rc = 2;
      break;
    }
    *eq = '\0';
    static s_score_t s;
    if (s_score(rules, org, argv[i], eq + 1, misses, &s)) {
      rc = 2;
      break;
    }
    double c = s_share(s.color, s.n), l = s_share(s.level, s.n), d = s_share(s.lead, s.n),
           q = s_share(s.queue, s.n);
    int timed = s.n < MAX_TIMED ? s.n : MAX_TIMED;
    qsort(s.us, (size_t)timed, sizeof s.us[0], s_cmp);
    printf("%-10s %8d %7.1f%% %7.1f%% %7.1f%% %7.1f%%   decision p50 %.0f us, p99 %.0f us\n", argv[i],
           s.n, 100 * c, 100 * l, 100 * d, 100 * q, s.us[timed / 2], s.us[timed * 99 / 100]);
    if (i == first && has_floor && (c < floor[0] || l < floor[1] || d < floor[2] || q > floor[3])) {
      printf("%s is below its floor: colour %.0f%%, level %.0f%%, lead %.0f%% at least, queue %.0f%% at most\n",
             argv[i], 100 * floor[0], 100 * floor[1], 100 * floor[2], 100 * floor[3]);
      rc = 1;
    }
  }
  if (!rc && learn) rc = s_learn(rules);
  for (int i = 0; i < s_nlearn; i++) free(s_ltext[i]);
  wh_rules_destroy(&rules);
  wh_org_destroy(&org);
  return rc;
}
