/* wh_wordset - a set of words, and every place a text holds one of them.
 *
 * The catalogue's words (its phrases' alternatives, the place words) are
 * looked for in every report. One pass over the text finds them all: each
 * position's character leads to the words that begin with it, compared in
 * place. Triage learns from it which phrases may hold and in which
 * sentences, which clauses the segmenter must cut, and where each word
 * stands, without searching the text once per word.
 *
 * Built once (add every word, then wh_wordset_build); a built set is only
 * read, and may be scanned by any number of threads at once. */
#ifndef WH_WORDSET_H
#define WH_WORDSET_H

#include <stddef.h>
#include <stdint.h>

typedef struct wh_wordset wh_wordset_t;

/* A word of the set found in a text: its id and the byte it starts at. */
typedef struct {
  uint32_t id;
  uint32_t at;
} wh_spot_t;

wh_wordset_t *wh_wordset_new(void);
void wh_wordset_destroy(wh_wordset_t **self_p);
/* Adds word (copied; a word added before keeps its id). Returns its id, or
 * -1 for an empty word, one that is not whole UTF-8, or no memory. */
int wh_wordset_add(wh_wordset_t *ws, const char *word);
/* The id of the word that is exactly the n bytes at p, or -1. */
int wh_wordset_find(const wh_wordset_t *ws, const char *p, size_t n);
/* Readies the set for scanning once the last word is added: 0 or WH_ENOMEM. */
int wh_wordset_build(wh_wordset_t *ws);
size_t wh_wordset_count(const wh_wordset_t *ws);
const char *wh_wordset_word(const wh_wordset_t *ws, uint32_t id);
size_t wh_wordset_len(const wh_wordset_t *ws, uint32_t id);    /* bytes */
size_t wh_wordset_chars(const wh_wordset_t *ws, uint32_t id);  /* characters */
/* The most spots a text of len bytes can hold: at one position the words
 * found differ in length, so at most one of each. */
size_t wh_wordset_max_spots(const wh_wordset_t *ws, size_t len);
/* Every occurrence of a word of the set in the len bytes at text, in the
 * order of their positions (at one position, longest first), into spots
 * (room for wh_wordset_max_spots); returns how many. A word is found at
 * every byte that starts a character, however the text around it reads. */
size_t wh_wordset_scan(const wh_wordset_t *ws, const char *text, size_t len, wh_spot_t *spots);

#endif
