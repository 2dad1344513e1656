/* wh_words - cut a report's text into words with friso (see wh_words.h). */
#include "wh_words.h"
#include "wh_text.h"
#include "wh_wordset.h"
#include "wh_err.h"
#include "wh_config.h"

#include <friso/friso.h>
#include <opencc/opencc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_DIR "/usr/share/friso/dict/UTF-8/"
#define MAX_TOKENS (WH_WORDS_TEXT_MAX / 2)
/* The longest word the segmenter looks up, in characters. MMSEG looks up
 * every length up to it at each of a chunk's three words: 4 instead of 5
 * is a tenth less work, and a word of 5 ("小区大门外") is found wherever
 * it stands without being kept whole (only words of 1 or 2 characters
 * must be whole words of the cut). */
#define SEGMENT_CHARS 4

typedef struct {
  int start, end; /* bytes */
  int clause;
  int negator, filler;
  int hedge; /* what follows in its clause is feared or supposed ("就怕") */
  int neg_end; /* a word of a verb and 不/没 ("打不" of 打不着火): what follows cannot be */
  int neg_after; /* a word that makes the one before it a risk ("隐患") */
} s_tok_t;

struct wh_words {
  friso_t friso;
  friso_config_t config;
  friso_task_t task;
  opencc_t t2s;          /* traditional characters to simplified (OpenCC's t2s) */
  uint64_t *traditional; /* a bit for each BMP character t2s changes */
  char *simplified;      /* the last text wh_words_simplified converted */
  wh_wordset_t *marks; /* the negators, hedges, fillers and negators after */
  uint8_t *mark;       /* by the word's id in marks: what it is (M_ below) */
  char text[WH_WORDS_TEXT_MAX + 1];
  /* what the segmenter reads: text with each run of spaces made one (the
   * clauses left out are spaces), and where each of its bytes is in text */
  char seg[WH_WORDS_TEXT_MAX + 1];
  uint16_t seg_at[WH_WORDS_TEXT_MAX + 1];
  size_t len;
  uint8_t edge[WH_WORDS_TEXT_MAX + 1]; /* 1: a word starts here; 2: one ends here */
  int16_t tok_at[WH_WORDS_TEXT_MAX + 1]; /* the word covering this byte, or -1 */
  uint16_t sentence[WH_WORDS_TEXT_MAX + 1], clause[WH_WORDS_TEXT_MAX + 1];
  s_tok_t tok[MAX_TOKENS];
  int ntok;
};

/* Words that may stand between a negator and what it negates: "没有也",
 * "不是都" do not occur, but "并没有", "根本不", "从来没" do, and "不" in
 * "也不" stays a negator. */
static char *const s_fillers[] = {"也", "都", "还", "并", "就", "再", "真", "可",
                                  "根本", "从来", "一直", "完全", "再也", NULL};
enum { M_NEGATOR = 1, M_FILLER = 2, M_HEDGE = 4, M_AFTER = 8 };

/* The character at code point cp in UTF-8 (BMP: at most 3 bytes); its length. */
static size_t s_utf8_of(uint32_t cp, char *out) {
  if (cp < 0x80) return out[0] = (char)cp, 1;
  if (cp < 0x800) return out[0] = (char)(0xC0 | cp >> 6), out[1] = (char)(0x80 | (cp & 0x3F)), 2;
  out[0] = (char)(0xE0 | cp >> 12);
  out[1] = (char)(0x80 | (cp >> 6 & 0x3F));
  out[2] = (char)(0x80 | (cp & 0x3F));
  return 3;
}

/* Opens OpenCC's traditional-to-simplified conversion and marks the
 * characters it changes, so that a text in simplified characters (nearly
 * every report) is passed by at the cost of a look at each character. */
static int s_traditional(wh_words_t *w, char *err, size_t errlen) {
  w->t2s = opencc_open(OPENCC_DEFAULT_CONFIG_TRAD_TO_SIMP);
  if (w->t2s == (opencc_t)-1) {
    snprintf(err, errlen, "no traditional-to-simplified table: %s (install libopencc-data)", opencc_error());
    return WH_ECONFIG;
  }
  if (!(w->traditional = calloc(65536 / 64, sizeof *w->traditional))) {
    snprintf(err, errlen, "out of memory");
    return WH_ENOMEM;
  }
  static const uint32_t ranges[][2] = {{0x3400, 0x4DBF}, {0x4E00, 0x9FFF}, {0xF900, 0xFAFF}};
  for (size_t r = 0; r < sizeof ranges / sizeof *ranges; r++)
    for (uint32_t cp = ranges[r][0]; cp <= ranges[r][1]; cp++) {
      char in[4], out[32];
      size_t n = s_utf8_of(cp, in);
      in[n] = '\0';
      size_t m = opencc_convert_utf8_to_buffer(w->t2s, in, n, out);
      if (m == (size_t)-1 || m != n || memcmp(in, out, n)) w->traditional[cp >> 6] |= 1ull << (cp & 63);
    }
  return 0;
}

wh_words_t *wh_words_new(const char *dir, char *err, size_t errlen) {
  wh_words_t *w = calloc(1, sizeof *w);
  if (!w) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  w->friso = friso_new();
  w->config = friso_new_config();
  w->task = friso_new_task();
  w->config->max_len = SEGMENT_CHARS;
  w->config->r_name = 0;  /* no person names: they would swallow words */
  w->config->add_syn = 0; /* no synonyms added to the cut */
  w->config->clr_stw = 0; /* stopwords stay: "不", "没" are among them */
  w->config->keep_urec = 0;
  w->config->spx_out = 0;
  w->config->en_sseg = 0; /* no second cut of latin words */
  w->config->st_minl = 2;
  w->config->mix_len = 2;
  w->config->lna_len = 1;
  w->config->nthreshold = 2000000;
  snprintf(w->config->kpuncs, sizeof w->config->kpuncs, "%s", "@%.#&+");
  w->friso->charset = FRISO_UTF8;
  friso_set_mode(w->config, __FRISO_COMPLEX_MODE__);
  w->friso->dic = friso_dic_new();
  char path[1024];
  snprintf(path, sizeof path, "%s", dir ? dir : DEFAULT_DIR);
  size_t n = strlen(path);
  if (n && path[n - 1] != '/' && n + 1 < sizeof path) strcat(path, "/");
  /* friso prints a warning of its own for a missing file; what is loaded
   * tells. */
  friso_dic_load_from_ifile(w->friso, w->config, path, SEGMENT_CHARS * 3);
  if (friso_spec_dic_size(w->friso->dic, __LEX_CJK_WORDS__) < 1000) {
    snprintf(err, errlen, "no word dictionary in %s (install friso-dict)", path);
    wh_words_destroy(&w);
    return NULL;
  }
  if (s_traditional(w, err, errlen)) {
    wh_words_destroy(&w);
    return NULL;
  }
  return w;
}

void wh_words_destroy(wh_words_t **self_p) {
  if (!self_p || !*self_p) return;
  wh_words_t *w = *self_p;
  if (w->task) friso_free_task(w->task);
  if (w->friso) friso_free(w->friso);
  free(w->config);
  wh_wordset_destroy(&w->marks);
  free(w->mark);
  if (w->t2s && w->t2s != (opencc_t)-1) opencc_close(w->t2s);
  free(w->traditional);
  if (w->simplified) opencc_convert_utf8_free(w->simplified);
  free(w);
  *self_p = NULL;
}

void wh_words_add(wh_words_t *w, const char *word) {
  size_t chars = 0;
  for (const unsigned char *p = (const unsigned char *)word; *p; p++) {
    if (*p < 0xE0 && (*p & 0xC0) != 0x80) return; /* not all CJK: friso cuts those itself */
    if ((*p & 0xC0) != 0x80) chars++;
  }
  if (chars < 2 || chars > SEGMENT_CHARS) return;
  if (friso_dic_match(w->friso->dic, __LEX_CJK_WORDS__, (char *)word)) return;
  char *copy = strdup(word); /* the dictionary owns it */
  if (copy) friso_dic_add(w->friso->dic, __LEX_CJK_WORDS__, copy, NULL);
}

int wh_words_negators(wh_words_t *w, char *const *before, char *const *hedges,
                      char *const *after) {
  char *const *lists[4] = {before, s_fillers, hedges, after};
  static const uint8_t kinds[4] = {M_NEGATOR, M_FILLER, M_HEDGE, M_AFTER};
  wh_wordset_t *marks = wh_wordset_new();
  size_t n = 0;
  for (int l = 0; l < 4; l++) n += wh_strv_len(lists[l]);
  uint8_t *mark = calloc(n + 1, 1);
  int rc = marks && mark ? 0 : WH_ENOMEM;
  for (int l = 0; l < 4 && !rc; l++)
    for (char *const *p = lists[l]; *p && !rc; p++) {
      int id = wh_wordset_add(marks, *p);
      if (id >= 0) mark[id] |= kinds[l];
      else if (**p && wh_utf8_ok(*p, strlen(*p))) rc = WH_ENOMEM; /* an empty or broken word marks nothing */
    }
  if (rc) {
    wh_wordset_destroy(&marks);
    free(mark);
    return rc;
  }
  wh_wordset_destroy(&w->marks);
  free(w->mark);
  w->marks = marks;
  w->mark = mark;
  for (char *const *p = before; *p; p++) wh_words_add(w, *p);
  for (char *const *p = hedges; *p; p++) wh_words_add(w, *p);
  for (char *const *p = after; *p; p++) wh_words_add(w, *p);
  return 0;
}

/* What the word of len bytes at s marks (M_ bits), 0 for none. */
static int s_mark(const wh_words_t *w, const char *s, size_t len) {
  int id = w->marks ? wh_wordset_find(w->marks, s, len) : -1;
  return id < 0 ? 0 : w->mark[id];
}

const char *wh_words_simplified(wh_words_t *w, const char *text) {
  size_t len = strlen(text);
  int any = 0;
  for (size_t i = 0; i < len && !any;) {
    size_t n = wh_utf8_char(text + i, len - i);
    if (n == 3) { /* every Chinese character of the table is one of three bytes */
      const unsigned char *c = (const unsigned char *)text + i;
      uint32_t cp = (uint32_t)(c[0] & 0x0F) << 12 | (uint32_t)(c[1] & 0x3F) << 6 | (c[2] & 0x3F);
      any = w->traditional[cp >> 6] >> (cp & 63) & 1;
    }
    i += n ? n : 1;
  }
  if (!any) return text;
  if (w->simplified) opencc_convert_utf8_free(w->simplified);
  w->simplified = opencc_convert_utf8(w->t2s, text, len);
  return w->simplified ? w->simplified : text;
}

int wh_words_stop(const char *p, size_t *n) {
  /* Most characters are none of these: their first byte says so. */
  unsigned char b = (unsigned char)*p;
  if (b >= 0x80 ? b != 0xE2 && b != 0xE3 && b != 0xEF : !b || !strchr("!?;\n,:() ", b)) return 0;
  static const char *const sentence[] = {"。", "！", "？", "；", "!", "?", ";", "\n", "…", NULL};
  static const char *const clause[] = {"，", ",", "、", "：", ":", "（", "）", "(", ")", "“", "”", " ", NULL};
  for (int i = 0; sentence[i]; i++)
    if (!strncmp(p, sentence[i], strlen(sentence[i]))) return *n = strlen(sentence[i]), 1;
  for (int i = 0; clause[i]; i++)
    if (!strncmp(p, clause[i], strlen(clause[i]))) return *n = strlen(clause[i]), 2;
  return 0;
}

void wh_words_clear(wh_words_t *w) {
  w->text[0] = '\0';
  w->len = 0;
  w->ntok = 0;
  w->edge[0] = 0;
  w->tok_at[0] = -1;
}

int wh_words_cut(wh_words_t *w, const char *text, wh_words_keep_fn keep, void *arg) {
  size_t len = wh_words_len(text);
  memcpy(w->text, text, len);
  w->text[len] = '\0';
  w->len = len;
  /* A byte that starts no whole character (intake lets none through, but
   * the rules may be tried on anything) becomes a space: the segmenter
   * reads characters by their first byte and would step out of line. */
  for (size_t i = 0; i < len;) {
    size_t n = wh_utf8_char(w->text + i, len - i);
    if (n) {
      i += n;
    } else {
      w->text[i++] = ' ';
    }
  }
  memset(w->edge, 0, len + 1);
  memset(w->tok_at, 0xff, (len + 1) * sizeof w->tok_at[0]);
  uint16_t s = 0, c = 0;
  size_t from = 0; /* where the clause began */
  for (size_t i = 0; i < len;) {
    size_t n = 1;
    int stop = wh_words_stop(w->text + i, &n);
    for (size_t k = i; k < i + n && k < len; k++) {
      w->sentence[k] = s;
      w->clause[k] = c;
    }
    if (stop == 1 && s < UINT16_MAX) s++;
    if (stop && c < UINT16_MAX) c++;
    /* A clause keep says holds nothing looked for is left uncut: spaces,
     * which the segmenter passes over; positions, clauses and sentences
     * stay. No word crosses a clause's end, but friso's cut of a clause
     * can depend on what stood before it: rarely, a kept clause is cut
     * otherwise than in the whole text (of the tune reports and the
     * scenarios none was; of 800 long bench texts, one). */
    if (stop && keep && i > from && !keep(from, i - from, arg)) memset(w->text + from, ' ', i - from);
    if (stop) from = i + n;
    i += n;
  }
  if (keep && len > from && !keep(from, len - from, arg)) memset(w->text + from, ' ', len - from);
  w->sentence[len] = s;
  w->clause[len] = c;
  w->ntok = 0;
  /* The segmenter passes over spaces one by one; a clause left out is
   * hundreds of them, and one stands for them as well: a word never
   * crosses a space. */
  size_t nseg = 0;
  for (size_t i = 0; i < len; i++) {
    if (w->text[i] == ' ' && nseg && w->seg[nseg - 1] == ' ') continue;
    w->seg[nseg] = w->text[i];
    w->seg_at[nseg++] = (uint16_t)i;
  }
  w->seg[nseg] = '\0';
  friso_set_text(w->task, w->seg);
  while (w->config->next_token(w->friso, w->config, w->task)) {
    friso_token_t t = w->task->token;
    if (t->offset < 0 || (size_t)t->offset + t->rlen > nseg || !t->rlen) continue;
    size_t start = w->seg_at[t->offset];
    if (w->seg_at[t->offset + t->rlen - 1] != start + t->rlen - 1) continue; /* over a run of spaces */
    if (w->ntok == MAX_TOKENS) break;
    s_tok_t *k = &w->tok[w->ntok];
    k->start = (int)start;
    k->end = (int)(start + t->rlen);
    k->clause = w->clause[k->start];
    int mark = s_mark(w, w->text + k->start, t->rlen);
    k->negator = !!(mark & M_NEGATOR);
    k->filler = !!(mark & M_FILLER);
    k->hedge = !!(mark & M_HEDGE);
    k->neg_after = !!(mark & M_AFTER);
    k->neg_end = t->rlen > 3 && (!memcmp(w->text + k->end - 3, "不", 3) ||
                                 !memcmp(w->text + k->end - 3, "没", 3));
    w->edge[k->start] |= 1;
    w->edge[k->end] |= 2;
    for (int b = k->start; b < k->end; b++) w->tok_at[b] = (int16_t)w->ntok;
    w->ntok++;
  }
  return 0;
}

const char *wh_words_text(const wh_words_t *w) { return w->text; }

int wh_words_count(const wh_words_t *w) { return w->ntok; }

/* 1 if the word starting at token k is negated in its clause. */
static int s_negated(const wh_words_t *w, int k) {
  int clause = w->tok[k].clause;
  if (k >= 1 && w->tok[k - 1].clause == clause && (w->tok[k - 1].negator || w->tok[k - 1].neg_end))
    return 1;
  if (k >= 2 && w->tok[k - 1].clause == clause && w->tok[k - 2].clause == clause &&
      w->tok[k - 1].filler && w->tok[k - 2].negator)
    return 1;
  for (int j = k - 1; j >= 0 && w->tok[j].clause == clause; j--)
    if (w->tok[j].hedge) return 1;
  return 0;
}

/* 1 if bytes [p, p + n) are one of set (or none at all). A dictionary
 * word may hold a short word with a particle or a locative after it
 * ("着火了", "墙上") or a verb before it ("有裂缝"): the short word is in it. */
static int s_one_of(const char *p, size_t n, const char *const *set) {
  if (!n) return 1;
  for (int i = 0; set[i]; i++)
    if (strlen(set[i]) == n && !memcmp(p, set[i], n)) return 1;
  return 0;
}
static const char *const s_after[] = {"了", "着", "过", "的", "得", "上", "下", "里", "边", "啦", "呀", "啊", "吗", "呢", "吧", NULL};
static const char *const s_before[] = {"有", "没", "是", "被", "把", "在", "的", "一", "也", "都", NULL};

size_t wh_words_len(const char *text) {
  size_t len = strlen(text);
  if (len > WH_WORDS_TEXT_MAX) {
    len = WH_WORDS_TEXT_MAX;
    while (len && ((unsigned char)text[len] & 0xC0) == 0x80) len--; /* a whole character */
  }
  return len;
}

int wh_words_at(const wh_words_t *w, const char *word, size_t n, size_t chars, size_t at,
                wh_hit_t *hit) {
  if (!n || at >= w->len || n > w->len - at) return 0;
  const char *p = w->text + at;
  if (p != word && memcmp(p, word, n)) return 0; /* not there, or in a clause left uncut */
  /* A word of one or two characters must be a word of the text ("火" is
   * not in "火锅", "停电" not in "停电动车"); a longer one is specific
   * enough wherever it stands. */
  if (chars <= 2 && !((w->edge[at] & 1) && (w->edge[at + n] & 2))) {
    int k1 = w->tok_at[at], k2 = w->tok_at[at + n - 1];
    if (k1 < 0 || k1 != k2) return 0; /* across two words: "停电" in "停/电动车" */
    const s_tok_t *t = &w->tok[k1];
    if (!s_one_of(w->text + t->start, at - (size_t)t->start, s_before) ||
        !s_one_of(p + n, (size_t)t->end - at - n, s_after))
      return 0; /* part of another word: "火" in "火锅" */
  }
  hit->at = at;
  hit->len = n;
  hit->sentence = w->sentence[at];
  int k = w->tok_at[at];
  hit->negated = k >= 0 && w->tok[k].start == (int)at && s_negated(w, k);
  /* the word right after, or after a 的, in the same clause, may make it
   * a risk only ("火灾隐患", "着火的风险") */
  int after = at + n < w->len ? w->tok_at[at + n] : -1;
  if (after >= 0 && w->tok[after].start != (int)(at + n)) after = -1;
  if (after >= 0 && after + 1 < w->ntok && w->tok[after].end - w->tok[after].start == 3 &&
      !memcmp(w->text + w->tok[after].start, "的", 3))
    after++;
  if (after >= 0 && w->tok[after].neg_after && w->tok[after].clause == (int)w->clause[at])
    hit->negated = 1;
  return 1;
}

int wh_words_find(const wh_words_t *w, const char *word, size_t from, wh_hit_t *hit) {
  size_t n = strlen(word), chars = 0;
  if (!n || from >= w->len) return 0;
  for (const char *c = word; *c; c++) chars += (*c & 0xC0) != 0x80;
  for (const char *p = w->text + from; (p = strstr(p, word)); p++)
    if (wh_words_at(w, p, n, chars, (size_t)(p - w->text), hit)) return 1;
  return 0;
}
