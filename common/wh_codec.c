/* wh_codec - envelope pack/unpack with a size cap, and message ids. */
#include "wh_codec.h"
#include "wh_err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

int wh_env_unpack(const void *data, size_t len, Whistle__Envelope **env_out) {
  *env_out = NULL;
  if (len > WH_FRAME_MAX) return WH_ETOOBIG;
  Whistle__Envelope *env = whistle__envelope__unpack(NULL, len, data);
  if (!env) return WH_EDECODE;
  *env_out = env;
  return 0;
}

void wh_env_free(Whistle__Envelope *env) {
  if (env) whistle__envelope__free_unpacked(env, NULL);
}

int wh_env_pack(const Whistle__Envelope *env, uint8_t **buf_out, size_t *len_out) {
  size_t n = whistle__envelope__get_packed_size(env);
  uint8_t *buf = malloc(n ? n : 1);
  if (!buf) return WH_ENOMEM;
  *len_out = whistle__envelope__pack(env, buf);
  *buf_out = buf;
  return 0;
}

size_t wh_env_stamp(const uint8_t *packed, size_t len, uint64_t tag, int64_t sent_at_ms,
                    int first_send, uint8_t *out) {
  Whistle__Envelope tail = WHISTLE__ENVELOPE__INIT;
  tail.delivery_tag = tag;
  tail.sent_at_ms = sent_at_ms;
  tail.first_send = first_send != 0;
  memcpy(out, packed, len);
  return len + whistle__envelope__pack(&tail, out + len);
}

void wh_uuid(char out[37]) {
  /* Random bytes are drawn from the kernel a few kilobytes at a time, not
   * one system call per message id. */
  static __thread uint8_t pool[4096];
  static __thread size_t left;
  if (left < 16) {
    size_t got = 0;
    while (got < sizeof pool) {
      ssize_t r = getrandom(pool + got, sizeof pool - got, 0);
      if (r > 0) got += (size_t)r;
    }
    left = sizeof pool;
  }
  uint8_t b[16];
  memcpy(b, pool + sizeof pool - left, sizeof b);
  left -= sizeof b;
  b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
  b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
  /* Every relayed message gets one: spelled out by hand, not by snprintf
   * (a sixth of a relay's time under load went to formatting them). */
  static const char hex[] = "0123456789abcdef";
  char *o = out;
  for (int i = 0; i < 16; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10) *o++ = '-';
    *o++ = hex[b[i] >> 4];
    *o++ = hex[b[i] & 15];
  }
  *o = '\0';
}

static const char *const s_sources[] = {"", "hotline", "wechat", "qr", "app", "patrol", "walk_in"};

const char *wh_source_name(int source) {
  return source > 0 && source < (int)(sizeof s_sources / sizeof *s_sources) ? s_sources[source]
                                                                            : "";
}

int wh_source_parse(const char *name) {
  for (int i = 1; name && i < (int)(sizeof s_sources / sizeof *s_sources); i++)
    if (!strcmp(name, s_sources[i])) return i;
  return 0;
}

const char *wh_work_kind_name(int kind) {
  switch (kind) {
  case WHISTLE__WORK_EVENT_KIND__WORK_DISPATCHED: return "dispatched";
  case WHISTLE__WORK_EVENT_KIND__WORK_MERGED: return "merged";
  case WHISTLE__WORK_EVENT_KIND__WORK_OVERDUE: return "overdue";
  default: return "unknown";
  }
}
