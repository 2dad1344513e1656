/* wh_words - a report's text cut into words, its sentences and negations.
 *
 * Chinese has no spaces: friso (Debian's libfriso, its dictionary from
 * friso-dict) cuts the text into words, so a catalogue's phrase matches
 * only where a word starts and another ends ("火" is not in "火锅"). The
 * catalogue's own words are added to the dictionary, so the cut keeps them
 * whole. A text is also split into sentences (at 。！？；and line ends: the
 * words of one phrase must share one) and clauses (at commas too); a word
 * is negated when a negator ("没有", "不是", "差点" ...) stands right before
 * it in its clause, as in "没有冒烟".
 *
 * One wh_words_t is used by one thread at a time; a cut lives until the
 * next one. */
#ifndef WH_WORDS_H
#define WH_WORDS_H

#include <stddef.h>
#include <stdint.h>

typedef struct wh_words wh_words_t;

/* The longest text cut, in bytes; a longer one is cut at this length. */
#define WH_WORDS_TEXT_MAX 8192

/* Loads the dictionary from dir (NULL: friso-dict's UTF-8 dictionary).
 * NULL and a sentence in err when it cannot be read. */
wh_words_t *wh_words_new(const char *dir, char *err, size_t errlen);
void wh_words_destroy(wh_words_t **self_p);
/* The text in simplified characters: text itself when it holds no
 * traditional one (nearly every report), else its conversion by OpenCC's
 * t2s ("樓道裡堆滿了雜物" is "楼道里堆满了杂物"), which lives until the next
 * call. The catalogue's words are simplified; a resident who writes
 * traditional characters is read the same. */
const char *wh_words_simplified(wh_words_t *w, const char *text);
/* Adds a word the segmenter should keep whole (one a dictionary lacks). */
void wh_words_add(wh_words_t *w, const char *word);
/* The words that negate what follows them in a clause ("没有" 冒烟), those
 * that make all that follows them in the clause feared or supposed, not so
 * ("就怕" 哪天着火, "要是" 着火了), and those that make what stands right
 * before them (or before a 的) a risk, not the thing ("火灾" 隐患, "着火的"
 * 风险); replace any earlier lists (NULL-terminated; copied).
 * Returns 0 or WH_ENOMEM. */
int wh_words_negators(wh_words_t *w, char *const *before, char *const *hedges,
                      char *const *after);

/* 1 if the character at p ends a sentence (。！？；, a line's end), 2 if
 * it ends a clause (，、： ...), else 0; its length in *n when it does. */
int wh_words_stop(const char *p, size_t *n);
/* How many bytes of text a cut reads: all, or WH_WORDS_TEXT_MAX less what
 * would split a character. */
size_t wh_words_len(const char *text);

/* Whether a clause of the text (len bytes from byte at, between the marks
 * that end clauses and sentences) may hold a word the caller looks for: 1
 * to cut it, 0 to leave it out. */
typedef int (*wh_words_keep_fn)(size_t at, size_t len, void *arg);
/* Cuts text (only the clauses keep says may hold a word, all when keep is
 * NULL); what follows asks about this cut. Returns 0, or WH_ENOMEM. */
int wh_words_cut(wh_words_t *w, const char *text, wh_words_keep_fn keep, void *arg);
/* Forgets the last cut: no word is found until the next. */
void wh_words_clear(wh_words_t *w);
/* The cut text (at most WH_WORDS_TEXT_MAX bytes, NUL-terminated). */
const char *wh_words_text(const wh_words_t *w);

/* An occurrence of a phrase's word in the cut text. */
typedef struct {
  size_t at, len; /* bytes */
  int sentence;
  int negated;
} wh_hit_t;

/* Whether word (n bytes, chars characters) stands at byte at of the cut
 * text as a word (one of one or two characters must start and end on the
 * cut's word edges; none stands in a clause left uncut); returns 1 and
 * fills hit, or 0. */
int wh_words_at(const wh_words_t *w, const char *word, size_t n, size_t chars, size_t at,
                wh_hit_t *hit);
/* Finds the next occurrence of word at or after byte from that starts and
 * ends on word edges; returns 1 and fills hit, or 0 when there is none. */
int wh_words_find(const wh_words_t *w, const char *word, size_t from, wh_hit_t *hit);
/* How many words the cut made (for tests). */
int wh_words_count(const wh_words_t *w);

#endif
