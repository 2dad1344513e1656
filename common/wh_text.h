/* wh_text - checks on text that comes from outside, and phone masking. */
#ifndef WH_TEXT_H
#define WH_TEXT_H

#include <stddef.h>
#include <stdint.h>

/* Returns 1 if s[0..len) is well-formed UTF-8 (no overlongs, no surrogates,
 * nothing above U+10FFFF) with no control characters other than tab and
 * newline, else 0. */
int wh_utf8_ok(const char *s, size_t len);
/* Checks a free-text field: required (non-empty) if required, at most max
 * bytes, valid UTF-8. Returns 0, WH_EMISSING, WH_ETOOLONG or WH_EUTF8. */
int wh_text_check(const char *s, int required, size_t max);
/* Checks a code (ids, grids, tags): 1..max bytes of [A-Za-z0-9_.:-].
 * Returns 0, WH_EMISSING, WH_ETOOLONG or WH_EFIELD. */
int wh_code_check(const char *s, size_t max);
/* Checks a phone number: 3-20 digits, optional leading +, inner '-' or ' '.
 * Returns 0 or WH_EPHONE. */
int wh_phone_check(const char *s);
/* Writes the phone masked for use beyond intake: the first three and last
 * four digits kept, the rest '*' (13911110001 -> 139****0001); numbers of
 * seven digits or fewer keep only their last two. out holds len+1 bytes. */
void wh_phone_mask(const char *phone, char *out, size_t outlen);
/* Adds s, and a separator after it, to a string hash (FNV-1a) begun with
 * WH_HASH_INIT: a batch compares its items by such a hash before comparing
 * their strings. Returns the new hash. */
#define WH_HASH_INIT 2166136261u
uint32_t wh_hash_str(uint32_t h, const char *s);

#endif
