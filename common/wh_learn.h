/* wh_learn - what the center taught triage: reports it placed in a class
 * by hand (assign --class), kept as examples of that class, and the class
 * of the examples most like a new report.
 *
 * A text is its character bigrams: the runs of letters, digits and Han
 * characters between punctuation and spaces, each pair of neighbours one
 * gram (a run of one character is that character). Two texts are as alike
 * as the cosine of their gram vectors, each gram weighted by how rare it is
 * among the examples (tf-idf), so "楼道 灯不亮" finds an example that says
 * "楼道的灯坏了不亮" and not one that only shares "小区". The suggestion is
 * the class of the single most alike example, with the score (0-1000) and
 * the example's ticket, so the center can read why. A ticket taught again
 * replaces its example: the center's last word stands. */
#ifndef WH_LEARN_H
#define WH_LEARN_H

#include <stddef.h>

typedef struct wh_learn_s wh_learn_t;

typedef struct {
  char klass[64];
  int score;     /* thousandths of the cosine */
  char like[32]; /* the example's ticket */
} wh_suggestion_t;

wh_learn_t *wh_learn_new(void);
void wh_learn_destroy(wh_learn_t **self_p);
/* Adds the example of ticket (replacing the one it had). Returns 0,
 * WH_EINVAL (a field empty or too long) or WH_ENOMEM. */
int wh_learn_add(wh_learn_t *l, const char *ticket, const char *klass, const char *text);
/* Examples held. */
size_t wh_learn_count(const wh_learn_t *l);
/* Works the weights out again after adds; suggest does it when needed,
 * so a service calls it once after a batch of adds, off the decision path. */
void wh_learn_refresh(wh_learn_t *l);
/* Fills out with the class of the example most like text, and returns 1;
 * 0 when no example shares a gram with it. A class the caller no longer
 * knows is the caller's to skip (keep, when given, says which are known). */
int wh_learn_suggest(wh_learn_t *l, const char *text, int (*keep)(void *arg, const char *klass),
                     void *arg, wh_suggestion_t *out);

#endif
