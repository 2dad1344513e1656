/* wh_learn - examples the center taught, and the class they suggest. */
#include "wh_learn.h"
#include "wh_err.h"
#include "wh_text.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Grams a text gives at most (a report's text is at most 4000
 * characters); a gram of a posting list longer than this carries
 * next to nothing (it is in most examples) and is not walked. */
#define LEARN_GRAMS_MAX 4096
#define LEARN_POSTING_WALK 8192

typedef struct {
  uint64_t gram;
  uint32_t tf;
} s_gram_t;

typedef struct {
  char ticket[32];
  char klass[64];
  s_gram_t *grams; /* sorted by gram, each once */
  uint32_t ngrams;
  int dead;        /* replaced by a later teaching of its ticket */
  float norm;
} s_example_t;

typedef struct {
  uint32_t ex;
  uint32_t tf;
} s_post_t;

typedef struct {
  s_post_t *p;
  uint32_t n, cap;
  uint32_t df; /* live examples that hold the gram */
} s_list_t;

/* An open-addressing map of non-zero 64-bit keys to 32-bit values. */
typedef struct {
  uint64_t *keys;
  uint32_t *vals;
  size_t cap, n;
} s_map_t;

struct wh_learn_s {
  s_example_t *ex;
  size_t nex, capex, live;
  s_list_t *lists;
  size_t nlists, caplists;
  s_map_t grams;   /* gram -> its list */
  s_map_t tickets; /* ticket's hash -> its example (collisions: the next slot) */
  int dirty;       /* weights to work out again */
  float *acc;      /* the scores of one suggestion, per example */
  uint32_t *touched;
};

static uint64_t s_mix(uint64_t k) {
  k ^= k >> 33;
  k *= UINT64_C(0xff51afd7ed558ccd);
  k ^= k >> 33;
  return k;
}

/* The slot of key, or of the empty slot where it would go. */
static size_t s_slot(const s_map_t *m, uint64_t key) {
  size_t i = (size_t)s_mix(key) & (m->cap - 1);
  while (m->keys[i] && m->keys[i] != key) i = (i + 1) & (m->cap - 1);
  return i;
}

static int s_map_grow(s_map_t *m) {
  if (m->cap && (m->n + 1) * 2 <= m->cap) return 0;
  size_t cap = m->cap ? m->cap * 2 : 1024;
  s_map_t g = {calloc(cap, sizeof *g.keys), calloc(cap, sizeof *g.vals), cap, m->n};
  if (!g.keys || !g.vals) {
    free(g.keys);
    free(g.vals);
    return WH_ENOMEM;
  }
  for (size_t i = 0; i < m->cap; i++)
    if (m->keys[i]) {
      size_t j = s_slot(&g, m->keys[i]);
      g.keys[j] = m->keys[i];
      g.vals[j] = m->vals[i];
    }
  free(m->keys);
  free(m->vals);
  *m = g;
  return 0;
}

static int s_map_get(const s_map_t *m, uint64_t key, uint32_t *val) {
  if (!m->cap) return 0;
  size_t i = s_slot(m, key);
  if (!m->keys[i]) return 0;
  *val = m->vals[i];
  return 1;
}

static int s_map_put(s_map_t *m, uint64_t key, uint32_t val) {
  if (s_map_grow(m)) return WH_ENOMEM;
  size_t i = s_slot(m, key);
  if (!m->keys[i]) m->n++;
  m->keys[i] = key;
  m->vals[i] = val;
  return 0;
}

static uint64_t s_ticket_key(const char *t) {
  uint64_t h = UINT64_C(14695981039346656037);
  for (const unsigned char *p = (const unsigned char *)t; *p; p++) h = (h ^ *p) * UINT64_C(1099511628211);
  return h ? h : 1;
}

/* The character at s as a code point, lowercased and folded from its
 * full-width form; 0 when it is not one a gram is made of (punctuation,
 * spaces, symbols, controls). *n: its bytes (at least 1). */
static uint32_t s_gram_char(const char *s, size_t len, size_t *n) {
  size_t k = wh_utf8_char(s, len);
  *n = k ? k : 1;
  if (!k) return 0;
  const unsigned char *p = (const unsigned char *)s;
  uint32_t c = k == 1 ? p[0] : k == 2 ? (uint32_t)(p[0] & 0x1F) << 6 | (p[1] & 0x3F)
               : k == 3 ? (uint32_t)(p[0] & 0x0F) << 12 | (uint32_t)(p[1] & 0x3F) << 6 | (p[2] & 0x3F)
                        : (uint32_t)(p[0] & 0x07) << 18 | (uint32_t)(p[1] & 0x3F) << 12 |
                              (uint32_t)(p[2] & 0x3F) << 6 | (p[3] & 0x3F);
  if (c >= 0xFF10 && c <= 0xFF5A) c -= 0xFEE0; /* full-width digits and letters */
  if (c >= 'A' && c <= 'Z') c += 32;
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z')) return c;
  if ((c >= 0x3400 && c <= 0x4DBF) || (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0xF900 && c <= 0xFAFF) ||
      (c >= 0x20000 && c <= 0x3134F))
    return c;
  return 0;
}

static int s_gram_cmp(const void *a, const void *b) {
  uint64_t x = ((const s_gram_t *)a)->gram, y = ((const s_gram_t *)b)->gram;
  return x < y ? -1 : x > y;
}

/* text's grams into g (room for LEARN_GRAMS_MAX), sorted, each once with
 * its count. Returns how many. */
static uint32_t s_grams(const char *text, s_gram_t *g) {
  size_t len = strlen(text), n;
  uint32_t k = 0, prev = 0;
  int run = 0;
  for (size_t i = 0; i < len && k < LEARN_GRAMS_MAX; i += n) {
    uint32_t c = s_gram_char(text + i, len - i, &n);
    if (!c) {
      if (run == 1) g[k++] = (s_gram_t){(uint64_t)prev << 32, 1};
      run = 0;
      continue;
    }
    if (run) g[k++] = (s_gram_t){(uint64_t)prev << 32 | c, 1};
    prev = c;
    run++;
  }
  if (run == 1 && k < LEARN_GRAMS_MAX) g[k++] = (s_gram_t){(uint64_t)prev << 32, 1};
  qsort(g, k, sizeof *g, s_gram_cmp);
  uint32_t out = 0;
  for (uint32_t i = 0; i < k; i++) {
    if (out && g[out - 1].gram == g[i].gram) g[out - 1].tf++;
    else g[out++] = g[i];
  }
  return out;
}

wh_learn_t *wh_learn_new(void) { return calloc(1, sizeof(wh_learn_t)); }

void wh_learn_destroy(wh_learn_t **self_p) {
  wh_learn_t *l = *self_p;
  if (!l) return;
  for (size_t i = 0; i < l->nex; i++) free(l->ex[i].grams);
  for (size_t i = 0; i < l->nlists; i++) free(l->lists[i].p);
  free(l->ex);
  free(l->lists);
  free(l->grams.keys);
  free(l->grams.vals);
  free(l->tickets.keys);
  free(l->tickets.vals);
  free(l->acc);
  free(l->touched);
  free(l);
  *self_p = NULL;
}

size_t wh_learn_count(const wh_learn_t *l) { return l->live; }

/* The example of ticket, live, or NULL. */
static s_example_t *s_find(wh_learn_t *l, const char *ticket, uint64_t *key) {
  uint64_t k = s_ticket_key(ticket);
  uint32_t v;
  for (;;) { /* a colliding ticket took the next key */
    if (!s_map_get(&l->tickets, k, &v)) break;
    if (!strcmp(l->ex[v].ticket, ticket)) {
      *key = k;
      return &l->ex[v];
    }
    k = k + 1 ? k + 1 : 1;
  }
  *key = k;
  return NULL;
}

static void s_kill(wh_learn_t *l, s_example_t *e) {
  for (uint32_t i = 0; i < e->ngrams; i++) {
    uint32_t li;
    if (s_map_get(&l->grams, e->grams[i].gram, &li)) l->lists[li].df--;
  }
  e->dead = 1;
  free(e->grams);
  e->grams = NULL;
  e->ngrams = 0;
  l->live--;
}

int wh_learn_add(wh_learn_t *l, const char *ticket, const char *klass, const char *text) {
  if (!ticket[0] || strlen(ticket) >= 32 || !klass[0] || strlen(klass) >= 64 || !text[0])
    return WH_EINVAL;
  s_gram_t *g = malloc(LEARN_GRAMS_MAX * sizeof *g);
  if (!g) return WH_ENOMEM;
  uint32_t ng = s_grams(text, g);
  if (!ng) {
    free(g);
    return WH_EINVAL;
  }
  s_gram_t *keep = realloc(g, ng * sizeof *g);
  if (keep) g = keep;
  if (l->nex == l->capex) {
    size_t cap = l->capex ? l->capex * 2 : 256;
    s_example_t *ex = realloc(l->ex, cap * sizeof *ex);
    float *acc = realloc(l->acc, cap * sizeof *acc);
    if (acc) l->acc = acc;
    uint32_t *t = realloc(l->touched, cap * sizeof *t);
    if (t) l->touched = t;
    if (ex) l->ex = ex;
    if (!ex || !acc || !t) {
      free(g);
      return WH_ENOMEM;
    }
    memset(l->acc + l->capex, 0, (cap - l->capex) * sizeof *acc);
    l->capex = cap;
  }
  uint64_t key;
  s_example_t *old = s_find(l, ticket, &key);
  uint32_t idx = (uint32_t)l->nex;
  /* the lists first: a list that cannot grow leaves the example out whole */
  for (uint32_t i = 0; i < ng; i++) {
    uint32_t li;
    if (!s_map_get(&l->grams, g[i].gram, &li)) {
      if (l->nlists == l->caplists) {
        size_t cap = l->caplists ? l->caplists * 2 : 1024;
        s_list_t *ls = realloc(l->lists, cap * sizeof *ls);
        if (!ls) goto oom;
        l->lists = ls;
        l->caplists = cap;
      }
      li = (uint32_t)l->nlists;
      if (s_map_put(&l->grams, g[i].gram, li)) goto oom;
      l->lists[l->nlists++] = (s_list_t){0};
    }
    s_list_t *ls = &l->lists[li];
    if (ls->n == ls->cap) {
      uint32_t cap = ls->cap ? ls->cap * 2 : 4;
      s_post_t *p = realloc(ls->p, cap * sizeof *p);
      if (!p) goto oom;
      ls->p = p;
      ls->cap = cap;
    }
    ls->p[ls->n++] = (s_post_t){idx, g[i].tf};
    ls->df++;
  }
  if (old) {
    if (s_map_put(&l->tickets, key, idx)) goto oom;
    s_kill(l, old);
  } else if (s_map_put(&l->tickets, key, idx)) {
    goto oom;
  }
  s_example_t *e = &l->ex[l->nex++];
  memset(e, 0, sizeof *e);
  memcpy(e->ticket, ticket, strlen(ticket) + 1);
  memcpy(e->klass, klass, strlen(klass) + 1);
  e->grams = g;
  e->ngrams = ng;
  l->live++;
  l->dirty = 1;
  return 0;
oom:
  /* take back the postings of idx added so far */
  for (uint32_t i = 0; i < ng; i++) {
    uint32_t li;
    if (!s_map_get(&l->grams, g[i].gram, &li)) break;
    s_list_t *ls = &l->lists[li];
    if (ls->n && ls->p[ls->n - 1].ex == idx) {
      ls->n--;
      ls->df--;
    }
  }
  free(g);
  return WH_ENOMEM;
}

static float s_idf(const wh_learn_t *l, uint32_t df) {
  return logf(1.0f + (float)l->live / (float)(df ? df : 1));
}

void wh_learn_refresh(wh_learn_t *l) {
  if (!l->dirty) return;
  for (size_t i = 0; i < l->nex; i++) {
    s_example_t *e = &l->ex[i];
    if (e->dead) continue;
    double sum = 0;
    for (uint32_t k = 0; k < e->ngrams; k++) {
      uint32_t li;
      float w = s_map_get(&l->grams, e->grams[k].gram, &li) ? e->grams[k].tf * s_idf(l, l->lists[li].df) : 0;
      sum += (double)w * w;
    }
    e->norm = (float)sqrt(sum);
  }
  l->dirty = 0;
}

int wh_learn_suggest(wh_learn_t *l, const char *text, int (*keep)(void *arg, const char *klass),
                     void *arg, wh_suggestion_t *out) {
  memset(out, 0, sizeof *out);
  if (!l->live) return 0;
  wh_learn_refresh(l);
  s_gram_t g[LEARN_GRAMS_MAX];
  uint32_t ng = s_grams(text, g);
  double qsum = 0;
  uint32_t nt = 0;
  for (uint32_t i = 0; i < ng; i++) {
    uint32_t li;
    int known = s_map_get(&l->grams, g[i].gram, &li);
    float idf = s_idf(l, known ? l->lists[li].df : 0);
    float wq = g[i].tf * idf;
    qsum += (double)wq * wq;
    if (!known || l->lists[li].n > LEARN_POSTING_WALK) continue;
    const s_list_t *ls = &l->lists[li];
    for (uint32_t k = 0; k < ls->n; k++) {
      uint32_t ex = ls->p[k].ex;
      if (l->ex[ex].dead) continue;
      if (l->acc[ex] == 0) l->touched[nt++] = ex;
      l->acc[ex] += wq * (float)ls->p[k].tf * idf;
    }
  }
  int found = 0;
  float best = 0;
  uint32_t bi = 0;
  float qn = (float)sqrt(qsum);
  for (uint32_t k = 0; k < nt; k++) {
    uint32_t ex = l->touched[k];
    const s_example_t *e = &l->ex[ex];
    float s = e->norm > 0 && qn > 0 ? l->acc[ex] / (qn * e->norm) : 0;
    l->acc[ex] = 0;
    if (keep && !keep(arg, e->klass)) continue;
    /* the best, and of equals the one taught last */
    if (s > best || (found && s == best && ex > bi)) {
      best = s;
      bi = ex;
      found = 1;
    }
  }
  if (!found) return 0;
  const s_example_t *e = &l->ex[bi];
  memcpy(out->klass, e->klass, strlen(e->klass) + 1);
  memcpy(out->like, e->ticket, strlen(e->ticket) + 1);
  int sc = (int)lrintf(best * 1000.0f);
  out->score = sc > 1000 ? 1000 : sc;
  return 1;
}
