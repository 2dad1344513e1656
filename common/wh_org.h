/* wh_org - the org chart: departments, communities and their own parties.
 *
 * A party code on a feed is either a department ("water", "police") or a
 * community's own party qualified by the community ("xiangdong.rc"). Rules
 * name community parties unqualified ("rc"); wh_org_resolve qualifies them
 * for the report's community, and sends them to the command center when the
 * community is not on the chart or has no such party. */
#ifndef WH_ORG_H
#define WH_ORG_H

#include <stddef.h>

typedef struct {
  char *code;
  char *name;
} wh_party_t;

typedef struct {
  char *code;
  char *name;
  char **parties; /* kinds this community has: rc, oc, pm, grid ... */
  char **road_grids; /* its grids that are public road or public space */
  /* who takes the work of a kind it lacks: kind, then the kind standing in
   * (pm, rc: where no property company serves, the residents' committee
   * does [兜底]); NULL-terminated pairs */
  char **stands_in;
} wh_community_t;

typedef struct {
  wh_party_t *departments;
  size_t ndepartments;
  wh_party_t *kinds; /* community party kinds */
  size_t nkinds;
  wh_community_t *communities;
  size_t ncommunities;
  char *center; /* the command center's party code */
  /* Who the escalation ladder [挂牌督办] reaches: a community party kind
   * (each community's own), the street's and the district's parties. NULL:
   * the center. */
  char *sup_community, *sup_street, *sup_district;
} wh_org_t;

/* Loads an org chart. On error returns NULL and writes "file:line: text". */
wh_org_t *wh_org_load(const char *path, char *err, size_t errlen);
void wh_org_destroy(wh_org_t **self_p);
/* 1 if code names a department or a community party kind. */
int wh_org_knows(const wh_org_t *org, const char *code);
/* 1 if code names a community of the chart. */
int wh_org_has_community(const wh_org_t *org, const char *code);
/* Resolves a rule's party code for a report from community into out: a
 * department stays as it is, a community kind becomes "community.kind" (or
 * the kind that stands in for it there, where the community has none), and
 * anything that cannot be placed becomes the center. */
void wh_org_resolve(const wh_org_t *org, const char *community, const char *code, char *out,
                    size_t outlen);
/* 1 if party is a code a feed can carry (department, center, or a known
 * community's party). */
int wh_org_valid_party(const wh_org_t *org, const char *party);
/* The name a reporter reads for party, into out: a department's name
 * ("区交通委"), a community party's with its community's ("文涵居民区居委会"),
 * or the code itself when the chart does not name it. */
void wh_org_name(const wh_org_t *org, const char *party, char *out, size_t outlen);
/* Where a grid of community lies: "road" (public road or space, as the
 * community's road_grids list it), "compound" (any other grid of a known
 * community: inside a residential compound), or "" (unknown). */
const char *wh_org_grid_kind(const wh_org_t *org, const char *community, const char *grid);
/* The supervisor a ladder step `to` (community, street, district) reaches
 * for an order of community, into out: the center when the chart names
 * none or that community has no such party. */
void wh_org_supervisor(const wh_org_t *org, const char *to, const char *community, char *out,
                       size_t outlen);

#endif
