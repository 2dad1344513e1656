/* mutate - repeatable damage to a valid frame, for the tests that feed the
 * codec and the running services what a broken or hostile peer might send.
 *
 * A few edits per frame, each the kind that trips a decoder: a flipped bit,
 * a byte set to a boundary value, a cut, bytes inserted, a span removed or
 * doubled, a run of 0xff that reads as an endless varint. The generator is a
 * seeded xorshift, so a failure names the seed and iteration that made it. */
#ifndef WH_TEST_MUTATE_H
#define WH_TEST_MUTATE_H
#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint64_t s_mut_next(uint64_t *s) {
  uint64_t x = *s ? *s : 0x9E3779B97F4A7C15ull;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return *s = x;
}

/* Writes a damaged copy of in[0..len) into out (cap bytes, at least len + 64)
 * and returns its length, which may be 0. */
static inline size_t s_mutate(uint64_t *rng, const uint8_t *in, size_t len, uint8_t *out,
                              size_t cap) {
  static const uint8_t edge[] = {0x00, 0x01, 0x7f, 0x80, 0xff, 0x0a, 0x12, 0xc0, 0xfe};
  memcpy(out, in, len);
  size_t n = len;
  int edits = 1 + (int)(s_mut_next(rng) % 4);
  for (int e = 0; e < edits; e++) {
    uint64_t r = s_mut_next(rng);
    size_t at = n ? (size_t)(s_mut_next(rng) % n) : 0;
    switch (r % 7) {
    case 0: /* one bit */
      if (n) out[at] ^= (uint8_t)(1u << (r >> 8) % 8);
      break;
    case 1: /* a boundary byte */
      if (n) out[at] = edge[(r >> 8) % sizeof edge];
      break;
    case 2: /* cut short */
      n = at;
      break;
    case 3: { /* 1-8 random bytes inserted */
      size_t k = 1 + (size_t)((r >> 8) % 8);
      if (n + k > cap) break;
      memmove(out + at + k, out + at, n - at);
      for (size_t i = 0; i < k; i++) out[at + i] = (uint8_t)s_mut_next(rng);
      n += k;
      break;
    }
    case 4: { /* a span removed */
      size_t k = n - at ? 1 + (size_t)((r >> 8) % (n - at)) : 0;
      memmove(out + at, out + at + k, n - at - k);
      n -= k;
      break;
    }
    case 5: { /* a span doubled, so lengths and fields repeat */
      size_t k = n - at ? 1 + (size_t)((r >> 8) % (n - at)) : 0;
      if (k > 32) k = 32;
      if (n + k > cap) break;
      memmove(out + at + k, out + at, n - at);
      n += k;
      break;
    }
    default: { /* a varint that never ends */
      size_t k = 5 + (size_t)((r >> 8) % 6);
      if (n + k > cap) break;
      memmove(out + at + k, out + at, n - at);
      memset(out + at, 0xff, k);
      n += k;
      break;
    }
    }
  }
  return n;
}
#endif
