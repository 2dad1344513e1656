/* wh_text - UTF-8 validation (RFC 3629), field checks, phone masking, and
 * strings built by appending (wh_str_t). */
#include "wh_text.h"
#include "wh_err.h"

#include <ctype.h>
#include <stdarg.h>
#include <string.h>

size_t wh_utf8_char(const char *str, size_t len) {
  const unsigned char *s = (const unsigned char *)str;
  if (len == 0) return 0;
  unsigned c = s[0], cp;
  size_t n;
  if (c < 0x80) return 1;
  if (c >= 0xc2 && c <= 0xdf) { n = 1; cp = c & 0x1f; }
  else if (c >= 0xe0 && c <= 0xef) { n = 2; cp = c & 0x0f; }
  else if (c >= 0xf0 && c <= 0xf4) { n = 3; cp = c & 0x07; }
  else return 0;
  if (n >= len) return 0; /* cut short */
  for (size_t k = 1; k <= n; k++) {
    unsigned cc = s[k];
    if ((cc & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (cc & 0x3f);
  }
  if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
      (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return n + 1;
}

int wh_utf8_control(const char *str, size_t n) {
  const unsigned char *s = (const unsigned char *)str;
  if (n == 1) return s[0] < 0x20 || s[0] == 0x7f;
  return n == 2 && s[0] == 0xc2 && s[1] < 0xa0;
}

int wh_utf8_ok(const char *str, size_t len) {
  const unsigned char *s = (const unsigned char *)str;
  size_t i = 0;
  while (i < len) {
    unsigned c = s[i];
    size_t n = wh_utf8_char(str + i, len - i);
    if (n == 0) return 0;
    if (wh_utf8_control(str + i, n) && c != '\t' && c != '\n' && c != '\r') return 0;
    i += n;
  }
  return 1;
}

int wh_text_check(const char *s, int required, size_t max) {
  size_t len = s ? strlen(s) : 0;
  if (len == 0) return required ? WH_EMISSING : 0;
  if (len > 4 * max) return WH_ETOOLONG; /* more bytes than max characters can take */
  if (!wh_utf8_ok(s, len)) return WH_EUTF8;
  size_t chars = 0;
  for (size_t i = 0; i < len; i++) chars += ((unsigned char)s[i] & 0xC0) != 0x80;
  return chars > max ? WH_ETOOLONG : 0;
}

int wh_code_check(const char *s, size_t max) {
  size_t len = s ? strlen(s) : 0;
  if (len == 0) return WH_EMISSING;
  if (len > max) return WH_ETOOLONG;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (!(isalnum(c) || c == '_' || c == '-' || c == '.' || c == ':')) {
      return (c >= 0x80 && !wh_utf8_ok(s, len)) ? WH_EUTF8 : WH_EFIELD;
    }
  }
  return 0;
}

int wh_phone_check(const char *s) {
  if (!s) return WH_EPHONE;
  size_t len = strlen(s), digits = 0;
  if (len == 0 || len > 24) return WH_EPHONE;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (isdigit(c)) digits++;
    else if (c == '+' && i == 0) continue;
    else if ((c == '-' || c == ' ') && i > 0 && i + 1 < len) continue;
    else return WH_EPHONE;
  }
  return (digits >= 3 && digits <= 20) ? 0 : WH_EPHONE;
}

void wh_phone_mask(const char *phone, char *out, size_t outlen) {
  char d[32];
  size_t n = 0;
  for (const char *p = phone ? phone : ""; *p && n < sizeof d - 1; p++)
    if (isdigit((unsigned char)*p) || *p == '*') d[n++] = *p; /* a '*' is a digit masked */
  d[n] = '\0';
  if (outlen == 0) return;
  size_t keep_head = n > 7 ? 3 : 0, keep_tail = n > 7 ? 4 : (n > 2 ? 2 : 0);
  size_t o = 0;
  for (size_t i = 0; i < n && o + 1 < outlen; i++)
    out[o++] = (i < keep_head || i >= n - keep_tail) ? d[i] : '*';
  out[o] = '\0';
}

uint32_t wh_hash_str(uint32_t h, const char *s) {
  for (const unsigned char *c = (const unsigned char *)s; *c; c++) h = (h ^ *c) * 16777619u;
  return (h ^ 0xffu) * 16777619u; /* a byte no UTF-8 text holds: "ab"+"c" is not "a"+"bc" */
}

void wh_str_init(wh_str_t *s, char *buf, size_t cap) {
  s->buf = buf;
  s->cap = cap;
  s->len = 0;
  s->full = 0;
  buf[0] = '\0';
}

void wh_str_addn(wh_str_t *s, const char *text, size_t n) {
  if (s->full) return;
  size_t room = s->cap - 1 - s->len;
  if (n > room) {
    n = room;
    /* Back off to the start of the character the cut falls in. */
    while (n > 0 && ((unsigned char)text[n] & 0xC0) == 0x80) n--;
    s->full = 1;
  }
  memcpy(s->buf + s->len, text, n);
  s->len += n;
  s->buf[s->len] = '\0';
}

void wh_str_add(wh_str_t *s, const char *text) {
  if (text) wh_str_addn(s, text, strlen(text));
}

void wh_str_cat(wh_str_t *s, ...) {
  va_list ap;
  va_start(ap, s);
  for (const char *p = va_arg(ap, const char *); p; p = va_arg(ap, const char *))
    wh_str_add(s, p);
  va_end(ap);
}

void wh_str_int(wh_str_t *s, int64_t v) {
  char d[24];
  size_t i = sizeof d;
  uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
  do {
    d[--i] = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  if (v < 0) d[--i] = '-';
  if (sizeof d - i > s->cap - 1 - s->len) s->full = 1; /* a number is never cut */
  wh_str_addn(s, d + i, sizeof d - i);
}

char *wh_str_copy(char *buf, size_t cap, const char *text) {
  wh_str_t s;
  wh_str_init(&s, buf, cap);
  wh_str_add(&s, text);
  return buf;
}
