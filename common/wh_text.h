/* wh_text - checks on text that comes from outside, phone masking, and
 * strings built by appending. */
#ifndef WH_TEXT_H
#define WH_TEXT_H

#include <stddef.h>
#include <stdint.h>

/* Returns 1 if s[0..len) is well-formed UTF-8 (no overlongs, no surrogates,
 * nothing above U+10FFFF) with no control characters other than tab and
 * newline, else 0. */
int wh_utf8_ok(const char *s, size_t len);
/* Returns the length (1-4) of the well-formed UTF-8 character that
 * s[0..len) starts with, control characters included, or 0 when it starts
 * with none (a stray or cut sequence, an overlong form, a surrogate,
 * anything above U+10FFFF, or len 0). */
size_t wh_utf8_char(const char *s, size_t len);
/* Whether the character of n bytes at s (as wh_utf8_char measured it) is a
 * control character: C0, DEL or C1. */
int wh_utf8_control(const char *s, size_t n);
/* Checks a free-text field: required (non-empty) if required, valid UTF-8,
 * at most max characters (code points, so at most 4 * max bytes): a limit
 * a resident can count, the same for Chinese as for Latin text. Returns 0,
 * WH_EMISSING, WH_ETOOLONG or WH_EUTF8. */
int wh_text_check(const char *s, int required, size_t max);
/* Checks a code (ids, grids, tags): 1..max bytes of [A-Za-z0-9_.:-].
 * Returns 0, WH_EMISSING, WH_ETOOLONG or WH_EFIELD. */
int wh_code_check(const char *s, size_t max);
/* Checks a phone number: 3-20 digits, optional leading +, inner '-' or ' '.
 * Returns 0 or WH_EPHONE. */
int wh_phone_check(const char *s);
/* Writes the phone masked for use beyond intake: the first three and last
 * four digits kept, the rest '*' (13911110001 -> 139****0001); numbers of
 * seven digits or fewer keep only their last two. A '*' counts as a digit
 * already masked, so masking a masked number gives it back unchanged, and a
 * service that masks what it receives cannot be handed a full number as
 * "masked". out holds len+1 bytes and may be phone itself. */
void wh_phone_mask(const char *phone, char *out, size_t outlen);
/* Adds s, and a separator after it, to a string hash (FNV-1a) begun with
 * WH_HASH_INIT: a batch compares its items by such a hash before comparing
 * their strings. Returns the new hash. */
#define WH_HASH_INIT 2166136261u
uint32_t wh_hash_str(uint32_t h, const char *s);

/* A string built piece by piece in the caller's buffer, where the hot path
 * formatted with snprintf: a dozen short fields per ticket cost dispatch a
 * sixth of its CPU that way. The buffer always holds a NUL-terminated
 * string; a piece that does not fit is cut at a character boundary (so
 * valid UTF-8 pieces make valid UTF-8), and nothing is added after it. */
typedef struct {
  char *buf;
  size_t cap, len;
  int full;
} wh_str_t;

/* Starts an empty string in buf[0..cap); cap must be at least 1. */
void wh_str_init(wh_str_t *s, char *buf, size_t cap);
/* Appends text (NULL adds nothing). */
void wh_str_add(wh_str_t *s, const char *text);
/* Appends n bytes of text. */
void wh_str_addn(wh_str_t *s, const char *text, size_t n);
/* Appends each of the strings that follow, up to a NULL, as wh_str_add
 * does: wh_str_cat(&s, klass, " @ ", grid, (char *)NULL). */
void wh_str_cat(wh_str_t *s, ...);
/* Appends v in decimal, or nothing when it does not fit whole. */
void wh_str_int(wh_str_t *s, int64_t v);
/* Copies text into buf[0..cap) as wh_str_add would; returns buf. */
char *wh_str_copy(char *buf, size_t cap, const char *text);

#endif
