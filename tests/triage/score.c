/* whistle-triage-score - how triage routes labelled reports, as practice would.
 *
 *   whistle-triage-score [--conf DIR] [--misses] [--floor C,L,D,Q] NAME=FILE...
 *
 * Decides every report of each FILE (one JSON object a line, the format of
 * tests/data/scenarios.jsonl) with the rules and org chart of DIR (default
 * deploy/demo), as triage would, stores nothing, and prints per part the
 * share whose colour is the expected one, whose level and lead are among
 * the acceptable ones, and the share left to the command center's manual
 * queue. `--floor` names the least shares (colour, level, lead) and the
 * most left to the queue that the first part must meet; the exit status is
 * 1 when it does not. `--misses` lists each report decided otherwise, for
 * the part rules are tuned against: never read it for the held-back part
 * (tests/data/README.md). */
#include "wh_org.h"
#include "wh_rules.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  int n, color, level, lead, queue;
} s_score_t;

/* 1 if the JSON value v (a number or a list of numbers) holds level. */
static int s_level_ok(json_object *v, int level) {
  if (json_object_is_type(v, json_type_int)) return json_object_get_int(v) == level;
  if (!json_object_is_type(v, json_type_array)) return 0;
  for (size_t i = 0; i < json_object_array_length(v); i++)
    if (json_object_get_int(json_object_array_get_idx(v, i)) == level) return 1;
  return 0;
}

/* 1 if the list v holds lead, less its community ("xiangdong.pm" is "pm"). */
static int s_lead_ok(json_object *v, const char *lead) {
  const char *dot = strchr(lead, '.');
  const char *bare = dot ? dot + 1 : lead;
  for (size_t i = 0; v && i < json_object_array_length(v); i++)
    if (!strcmp(json_object_get_string(json_object_array_get_idx(v, i)), bare)) return 1;
  return 0;
}

static const char *s_str(json_object *o, const char *key) {
  json_object *v;
  if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string)) return "";
  return json_object_get_string(v);
}

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
    if (line[0] == '\n') continue;
    json_object *o = json_tokener_parse(line), *expect, *tags = NULL;
    if (!o || !json_object_object_get_ex(o, "expect", &expect)) {
      fprintf(stderr, "%s:%d: not a labelled report\n", path, lineno);
      json_object_put(o);
      rc = -1;
      break;
    }
    char *care[16];
    size_t ncare = 0;
    if (json_object_object_get_ex(o, "care_tags", &tags) && json_object_is_type(tags, json_type_array))
      for (size_t i = 0; i < json_object_array_length(tags) && ncare < 16; i++)
        care[ncare++] = (char *)json_object_get_string(json_object_array_get_idx(tags, i));
    wh_report_t rep = {.category = s_str(o, "category"), .text = s_str(o, "text"),
                       .channel = s_str(o, "source"), .community = s_str(o, "community"),
                       .care_tags = care, .ncare_tags = ncare};
    wh_decision_t d;
    wh_rules_decide(rules, org, &rep, &d);
    json_object *color = NULL, *level = NULL, *lead = NULL;
    json_object_object_get_ex(expect, "color", &color);
    json_object_object_get_ex(expect, "level", &level);
    json_object_object_get_ex(expect, "lead", &lead);
    int c_ok = color && !strcmp(wh_color_name(d.color), json_object_get_string(color));
    int v_ok = level && s_level_ok(level, d.level);
    int l_ok = s_lead_ok(lead, d.lead);
    int queued = !strcmp(d.lead, org->center);
    s->n++;
    s->color += c_ok;
    s->level += v_ok;
    s->lead += l_ok;
    s->queue += queued;
    if (misses && !(c_ok && v_ok && l_ok))
      printf("  miss %s %s: %s %d %s by %s (expected %s %s %s): %s\n", name, s_str(o, "id"),
             wh_color_name(d.color), d.level, d.lead, d.rule, json_object_get_string(color),
             json_object_to_json_string(level), json_object_to_json_string(lead), rep.text);
    json_object_put(o);
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

int main(int argc, char **argv) {
  const char *conf = "deploy/demo";
  int misses = 0, has_floor = 0, first = 1;
  double floor[4] = {0};
  for (; first < argc && argv[first][0] == '-'; first++) {
    if (!strcmp(argv[first], "--misses")) {
      misses = 1;
    } else if (!strcmp(argv[first], "--conf") && first + 1 < argc) {
      conf = argv[++first];
    } else if (!strcmp(argv[first], "--floor") && first + 1 < argc &&
               sscanf(argv[first + 1], "%lf,%lf,%lf,%lf", &floor[0], &floor[1], &floor[2], &floor[3]) == 4) {
      has_floor = 1;
      first++;
    } else {
      fprintf(stderr, "usage: whistle-triage-score [--conf DIR] [--misses] [--floor C,L,D,Q] NAME=FILE...\n");
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
    s_score_t s;
    if (s_score(rules, org, argv[i], eq + 1, misses, &s)) {
      rc = 2;
      break;
    }
    double c = s_share(s.color, s.n), l = s_share(s.level, s.n), d = s_share(s.lead, s.n),
           q = s_share(s.queue, s.n);
    printf("%-10s %8d %7.1f%% %7.1f%% %7.1f%% %7.1f%%\n", argv[i], s.n, 100 * c, 100 * l, 100 * d,
           100 * q);
    if (i == first && has_floor && (c < floor[0] || l < floor[1] || d < floor[2] || q > floor[3])) {
      printf("%s is below its floor: colour %.0f%%, level %.0f%%, lead %.0f%% at least, queue %.0f%% at most\n",
             argv[i], 100 * floor[0], 100 * floor[1], 100 * floor[2], 100 * floor[3]);
      rc = 1;
    }
  }
  wh_rules_destroy(&rules);
  wh_org_destroy(&org);
  return rc;
}
