/* wh_org - load and query the org chart. */
#include "wh_org.h"
#include "wh_text.h"
#include "wh_config.h"
#include "wh_err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void s_parties_free(wh_party_t *p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(p[i].code);
    free(p[i].name);
  }
  free(p);
}

void wh_org_destroy(wh_org_t **self_p) {
  if (!self_p || !*self_p) return;
  wh_org_t *o = *self_p;
  s_parties_free(o->departments, o->ndepartments);
  s_parties_free(o->kinds, o->nkinds);
  for (size_t i = 0; i < o->ncommunities; i++) {
    free(o->communities[i].code);
    free(o->communities[i].name);
    wh_strv_free(o->communities[i].parties);
    wh_strv_free(o->communities[i].road_grids);
    wh_strv_free(o->communities[i].stands_in);
  }
  free(o->communities);
  free(o->center);
  free(o->sup_community);
  free(o->sup_street);
  free(o->sup_district);
  free(o);
  *self_p = NULL;
}

static int s_load_parties(config_t *cfg, const char *name, wh_party_t **out, size_t *nout,
                          char *err, size_t errlen) {
  config_setting_t *list = config_lookup(cfg, name);
  if (!list || !config_setting_is_list(list)) {
    snprintf(err, errlen, "%s: '%s' must be a list of { code = ...; name = ...; }",
             config_setting_source_file(config_root_setting(cfg)), name);
    return WH_ECONFIG;
  }
  size_t n = (size_t)config_setting_length(list);
  *out = calloc(n + 1, sizeof **out);
  *nout = 0;
  for (size_t i = 0; i < n; i++) {
    config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
    const char *code = wh_config_str(e, "code"), *pname = wh_config_str(e, "name");
    if (!code || !*code) return wh_config_fail(e, err, errlen, "%s entry without a code", name);
    (*out)[i].code = strdup(code);
    (*out)[i].name = strdup(pname ? pname : code);
    (*nout)++;
  }
  return 0;
}

static int s_is_dept(const wh_org_t *o, const char *code);
static int s_is_kind(const wh_org_t *o, const char *code);

wh_org_t *wh_org_load(const char *path, char *err, size_t errlen) {
  config_t cfg;
  if (wh_config_read(&cfg, path, err, errlen)) return NULL;
  wh_org_t *o = calloc(1, sizeof *o);
  const char *center = NULL;
  if (!config_lookup_string(&cfg, "center", &center) || !*center) {
    snprintf(err, errlen, "%s: 'center' (the command center's party code) is required", path);
    goto fail;
  }
  o->center = strdup(center);
  if (s_load_parties(&cfg, "departments", &o->departments, &o->ndepartments, err, errlen) ||
      s_load_parties(&cfg, "community_parties", &o->kinds, &o->nkinds, err, errlen))
    goto fail;
  config_setting_t *list = config_lookup(&cfg, "communities");
  if (!list || !config_setting_is_list(list)) {
    snprintf(err, errlen, "%s: 'communities' must be a list", path);
    goto fail;
  }
  size_t n = (size_t)config_setting_length(list);
  o->communities = calloc(n + 1, sizeof *o->communities);
  for (size_t i = 0; i < n; i++) {
    config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
    const char *code = wh_config_str(e, "code"), *name = wh_config_str(e, "name");
    if (!code || !*code) {
      wh_config_fail(e, err, errlen, "community without a code");
      goto fail;
    }
    for (size_t k = 0; k < o->ncommunities; k++)
      if (!strcmp(o->communities[k].code, code)) {
        wh_config_fail(e, err, errlen, "community '%s' listed twice", code);
        goto fail;
      }
    wh_community_t *c = &o->communities[o->ncommunities++];
    c->code = strdup(code);
    c->name = strdup(name ? name : code);
    if (wh_config_strv(e, "parties", &c->parties, err, errlen) ||
        wh_config_strv(e, "road_grids", &c->road_grids, err, errlen))
      goto fail;
    for (char **p = c->parties; *p; p++) {
      int known = 0;
      for (size_t k = 0; k < o->nkinds; k++) known |= !strcmp(o->kinds[k].code, *p);
      if (!known) {
        wh_config_fail(e, err, errlen, "community '%s': party kind '%s' is not in community_parties",
                       code, *p);
        goto fail;
      }
    }
    config_setting_t *si = config_setting_get_member(e, "stands_in");
    int nsi = si ? config_setting_length(si) : 0;
    if (si && !config_setting_is_group(si)) {
      wh_config_fail(si, err, errlen, "community '%s': stands_in is { kind = \"kind\"; ... }", code);
      goto fail;
    }
    c->stands_in = calloc((size_t)nsi * 2 + 1, sizeof *c->stands_in);
    if (!c->stands_in) goto fail;
    for (int k = 0; k < nsi; k++) {
      config_setting_t *m = config_setting_get_elem(si, (unsigned)k);
      const char *kind = config_setting_name(m), *by = config_setting_get_string(m);
      int has_kind = 0, has_by = 0;
      for (char **p = c->parties; *p; p++) {
        has_kind |= !strcmp(*p, kind);
        has_by |= by && !strcmp(*p, by);
      }
      if (!s_is_kind(o, kind) || has_kind || !has_by) {
        wh_config_fail(m, err, errlen,
                       "community '%s': stands_in.%s must name a kind it lacks and one of its parties",
                       code, kind);
        goto fail;
      }
      c->stands_in[2 * k] = strdup(kind);
      c->stands_in[2 * k + 1] = strdup(by);
    }
  }
  config_setting_t *sup = config_lookup(&cfg, "supervisors");
  if (sup) {
    static const char *const levels[3] = {"community", "street", "district"};
    char **slot[3] = {&o->sup_community, &o->sup_street, &o->sup_district};
    for (int i = 0; i < 3; i++) {
      const char *v = wh_config_str(sup, levels[i]);
      if (!v) continue;
      int ok = i == 0 ? s_is_kind(o, v) : s_is_dept(o, v);
      if (!ok) {
        wh_config_fail(sup, err, errlen, "supervisors.%s: '%s' is not %s", levels[i], v,
                       i == 0 ? "in community_parties" : "a department");
        goto fail;
      }
      *slot[i] = strdup(v);
    }
  }
  config_destroy(&cfg);
  return o;
fail:
  config_destroy(&cfg);
  wh_org_destroy(&o);
  return NULL;
}

static int s_is_dept(const wh_org_t *o, const char *code) {
  if (!strcmp(code, o->center)) return 1;
  for (size_t i = 0; i < o->ndepartments; i++)
    if (!strcmp(o->departments[i].code, code)) return 1;
  return 0;
}

static int s_is_kind(const wh_org_t *o, const char *code) {
  for (size_t i = 0; i < o->nkinds; i++)
    if (!strcmp(o->kinds[i].code, code)) return 1;
  return 0;
}

int wh_org_knows(const wh_org_t *o, const char *code) {
  return s_is_dept(o, code) || s_is_kind(o, code);
}

static const wh_community_t *s_community(const wh_org_t *o, const char *code) {
  for (size_t i = 0; i < o->ncommunities; i++)
    if (!strcmp(o->communities[i].code, code)) return &o->communities[i];
  return NULL;
}

int wh_org_has_community(const wh_org_t *o, const char *code) { return s_community(o, code) != NULL; }

const char *wh_org_grid_kind(const wh_org_t *o, const char *community, const char *grid) {
  const wh_community_t *c = s_community(o, community);
  if (!c || !grid || !grid[0]) return "";
  for (char **g = c->road_grids; *g; g++)
    if (!strcmp(*g, grid)) return "road";
  return "compound";
}

void wh_org_resolve(const wh_org_t *o, const char *community, const char *code, char *out,
                    size_t outlen) {
  if (s_is_dept(o, code)) {
    wh_str_copy(out, outlen, code);
    return;
  }
  const wh_community_t *c = s_community(o, community);
  for (char **si = c ? c->stands_in : NULL; si && *si; si += 2)
    if (!strcmp(si[0], code)) {
      code = si[1];
      break;
    }
  if (c && s_is_kind(o, code))
    for (char **p = c->parties; *p; p++)
      if (!strcmp(*p, code)) {
        wh_str_t s; /* "<community>.<kind>" */
        wh_str_init(&s, out, outlen);
        wh_str_cat(&s, c->code, ".", code, (char *)NULL);
        return;
      }
  wh_str_copy(out, outlen, o->center);
}

void wh_org_name(const wh_org_t *o, const char *party, char *out, size_t outlen) {
  for (size_t i = 0; i < o->ndepartments; i++)
    if (!strcmp(o->departments[i].code, party)) {
      wh_str_copy(out, outlen, o->departments[i].name);
      return;
    }
  const char *dot = strchr(party, '.');
  char comm[128];
  if (dot && (size_t)(dot - party) < sizeof comm) {
    memcpy(comm, party, (size_t)(dot - party));
    comm[dot - party] = '\0';
    const wh_community_t *c = s_community(o, comm);
    for (size_t i = 0; c && i < o->nkinds; i++)
      if (!strcmp(o->kinds[i].code, dot + 1)) {
        wh_str_t s;
        wh_str_init(&s, out, outlen);
        wh_str_cat(&s, c->name, o->kinds[i].name, (char *)NULL);
        return;
      }
  }
  wh_str_copy(out, outlen, party);
}

void wh_org_supervisor(const wh_org_t *o, const char *to, const char *community, char *out,
                       size_t outlen) {
  const char *code = !strcmp(to, "community") ? o->sup_community
                     : !strcmp(to, "street")  ? o->sup_street
                     : !strcmp(to, "district") ? o->sup_district
                                               : NULL;
  if (!code) {
    wh_str_copy(out, outlen, o->center);
    return;
  }
  wh_org_resolve(o, community, code, out, outlen);
}

int wh_org_valid_party(const wh_org_t *o, const char *party) {
  if (s_is_dept(o, party)) return 1;
  const char *dot = strchr(party, '.');
  if (!dot) return 0;
  char comm[128];
  size_t n = (size_t)(dot - party);
  if (n >= sizeof comm) return 0;
  memcpy(comm, party, n);
  comm[n] = '\0';
  const wh_community_t *c = s_community(o, comm);
  if (!c) return 0;
  for (char **p = c->parties; *p; p++)
    if (!strcmp(*p, dot + 1)) return 1;
  return 0;
}
