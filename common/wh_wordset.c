/* wh_wordset - a set of words, and every place a text holds one of them
 * (see wh_wordset.h). */
#include "wh_wordset.h"
#include "wh_err.h"
#include "wh_text.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
  char *word;
  uint32_t len, chars;
} s_word_t;

/* The words that begin with one character: ids[start .. start + count). */
typedef struct {
  uint32_t key; /* the character's bytes, packed; 0: an empty slot */
  uint32_t start, count;
} s_lead_t;

struct wh_wordset {
  s_word_t *words;
  size_t nwords, cap;
  uint32_t *by_text; /* open addressing over the words' bytes, for add; UINT32_MAX empty */
  size_t text_slots;
  uint32_t *ids; /* the words by their first character, longest first */
  s_lead_t *lead;
  size_t lead_slots; /* a power of two */
  uint32_t max_chars;
};

/* The UTF-8 character at p (n bytes left), packed in *key; its length, or
 * 0 when p starts no whole character. */
static size_t s_key(const char *p, size_t n, uint32_t *key) {
  size_t k = wh_utf8_char(p, n);
  uint32_t v = 0;
  for (size_t i = 0; i < k; i++) v = v << 8 | (unsigned char)p[i];
  *key = v;
  return k;
}

static uint32_t s_hash(const char *p, size_t n) {
  uint32_t h = 2166136261u; /* FNV-1a */
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)p[i]) * 16777619u;
  return h;
}

static uint32_t s_mix(uint32_t key) { return key * 2654435761u; }

wh_wordset_t *wh_wordset_new(void) { return calloc(1, sizeof(wh_wordset_t)); }

void wh_wordset_destroy(wh_wordset_t **self_p) {
  if (!self_p || !*self_p) return;
  wh_wordset_t *ws = *self_p;
  for (size_t i = 0; i < ws->nwords; i++) free(ws->words[i].word);
  free(ws->words);
  free(ws->by_text);
  free(ws->ids);
  free(ws->lead);
  free(ws);
  *self_p = NULL;
}

/* The slot of bytes [p, p + n) in by_text: its word's, or the empty one
 * where it would go. */
static size_t s_text_slot(const wh_wordset_t *ws, const char *p, size_t n) {
  size_t mask = ws->text_slots - 1;
  for (size_t i = s_hash(p, n) & mask;; i = (i + 1) & mask) {
    uint32_t id = ws->by_text[i];
    if (id == UINT32_MAX) return i;
    if (ws->words[id].len == n && !memcmp(ws->words[id].word, p, n)) return i;
  }
}

static int s_grow_text(wh_wordset_t *ws) {
  size_t slots = ws->text_slots ? ws->text_slots * 2 : 256;
  uint32_t *old = ws->by_text;
  size_t old_slots = ws->text_slots;
  ws->by_text = malloc(slots * sizeof *ws->by_text);
  if (!ws->by_text) {
    ws->by_text = old;
    return WH_ENOMEM;
  }
  memset(ws->by_text, 0xff, slots * sizeof *ws->by_text);
  ws->text_slots = slots;
  for (size_t i = 0; i < old_slots; i++)
    if (old[i] != UINT32_MAX) {
      const s_word_t *w = &ws->words[old[i]];
      ws->by_text[s_text_slot(ws, w->word, w->len)] = old[i];
    }
  free(old);
  return 0;
}

int wh_wordset_add(wh_wordset_t *ws, const char *word) {
  size_t n = strlen(word), chars = 0;
  if (!n || n > UINT16_MAX) return -1;
  for (size_t i = 0; i < n;) {
    size_t k = wh_utf8_char(word + i, n - i);
    if (!k) return -1;
    i += k;
    chars++;
  }
  if ((ws->nwords + 1) * 2 > ws->text_slots && s_grow_text(ws)) return -1;
  size_t slot = s_text_slot(ws, word, n);
  if (ws->by_text[slot] != UINT32_MAX) return (int)ws->by_text[slot];
  if (ws->nwords == ws->cap) {
    size_t cap = ws->cap ? ws->cap * 2 : 256;
    s_word_t *words = realloc(ws->words, cap * sizeof *words);
    if (!words) return -1;
    ws->words = words;
    ws->cap = cap;
  }
  s_word_t *w = &ws->words[ws->nwords];
  if (!(w->word = strdup(word))) return -1;
  w->len = (uint32_t)n;
  w->chars = (uint32_t)chars;
  if (chars > ws->max_chars) ws->max_chars = (uint32_t)chars;
  ws->by_text[slot] = (uint32_t)ws->nwords;
  return (int)ws->nwords++;
}

/* A word's place in the index: by first character, then longest first,
 * then as added. */
typedef struct {
  uint32_t key, len, id;
} s_entry_t;

static int s_by_lead(const void *a, const void *b) {
  const s_entry_t *x = a, *y = b;
  if (x->key != y->key) return x->key < y->key ? -1 : 1;
  if (x->len != y->len) return x->len > y->len ? -1 : 1;
  return x->id < y->id ? -1 : x->id > y->id;
}

int wh_wordset_build(wh_wordset_t *ws) {
  free(ws->ids);
  free(ws->lead);
  size_t slots = 16;
  while (slots < ws->nwords * 2) slots *= 2;
  ws->ids = malloc((ws->nwords + 1) * sizeof *ws->ids);
  ws->lead = calloc(slots, sizeof *ws->lead);
  ws->lead_slots = slots;
  s_entry_t *e = malloc((ws->nwords + 1) * sizeof *e);
  if (!ws->ids || !ws->lead || !e) {
    free(e);
    free(ws->lead);
    ws->lead = NULL; /* a set not built finds nothing */
    return WH_ENOMEM;
  }
  for (size_t i = 0; i < ws->nwords; i++) {
    s_key(ws->words[i].word, ws->words[i].len, &e[i].key);
    e[i].len = ws->words[i].len;
    e[i].id = (uint32_t)i;
  }
  qsort(e, ws->nwords, sizeof *e, s_by_lead);
  for (size_t i = 0; i < ws->nwords; i++) ws->ids[i] = e[i].id;
  for (size_t i = 0; i < ws->nwords;) {
    size_t j = i + 1;
    while (j < ws->nwords && e[j].key == e[i].key) j++;
    size_t s = s_mix(e[i].key) & (slots - 1);
    while (ws->lead[s].key) s = (s + 1) & (slots - 1);
    ws->lead[s] = (s_lead_t){.key = e[i].key, .start = (uint32_t)i, .count = (uint32_t)(j - i)};
    i = j;
  }
  free(e);
  return 0;
}

int wh_wordset_find(const wh_wordset_t *ws, const char *p, size_t n) {
  if (!ws->text_slots) return -1;
  uint32_t id = ws->by_text[s_text_slot(ws, p, n)];
  return id == UINT32_MAX ? -1 : (int)id;
}

size_t wh_wordset_count(const wh_wordset_t *ws) { return ws->nwords; }
const char *wh_wordset_word(const wh_wordset_t *ws, uint32_t id) { return ws->words[id].word; }
size_t wh_wordset_len(const wh_wordset_t *ws, uint32_t id) { return ws->words[id].len; }
size_t wh_wordset_chars(const wh_wordset_t *ws, uint32_t id) { return ws->words[id].chars; }

size_t wh_wordset_max_spots(const wh_wordset_t *ws, size_t len) {
  return len * (ws->max_chars ? ws->max_chars : 1);
}

size_t wh_wordset_scan(const wh_wordset_t *ws, const char *text, size_t len, wh_spot_t *spots) {
  size_t n = 0;
  if (!ws->lead) return 0;
  const unsigned char *t = (const unsigned char *)text;
  size_t mask = ws->lead_slots - 1;
  for (size_t i = 0; i < len; i++) {
    unsigned b = t[i];
    /* The character's bytes packed, read by its first byte's count: a
     * word is compared in full below, so a text's broken character
     * matches none. */
    uint32_t key;
    if (b < 0x80) key = b;
    else if (b < 0xC0) continue; /* continues a character */
    else if (b < 0xE0) key = i + 1 < len ? b << 8 | t[i + 1] : 0;
    else if (b < 0xF0) key = i + 2 < len ? b << 16 | t[i + 1] << 8 | t[i + 2] : 0;
    else key = i + 3 < len ? (uint32_t)b << 24 | t[i + 1] << 16 | t[i + 2] << 8 | t[i + 3] : 0;
    if (!key) continue;
    const s_lead_t *l;
    for (size_t s = s_mix(key) & mask; (l = &ws->lead[s])->key; s = (s + 1) & mask) {
      if (l->key != key) continue;
      for (uint32_t j = 0; j < l->count; j++) {
        uint32_t id = ws->ids[l->start + j];
        const s_word_t *w = &ws->words[id];
        if (w->len <= len - i && !memcmp(text + i, w->word, w->len))
          spots[n++] = (wh_spot_t){.id = id, .at = (uint32_t)i};
      }
      break;
    }
  }
  return n;
}
