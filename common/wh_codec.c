/* wh_codec - envelope pack/unpack with a size cap, and message ids. */
#include "wh_codec.h"
#include "wh_err.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* Reads a varint at *p (before end); returns 0, or -1 when cut short. */
static int s_varint(const uint8_t **p, const uint8_t *end, uint64_t *v) {
  *v = 0;
  for (int shift = 0; shift < 64 && *p < end; shift += 7) {
    uint8_t b = *(*p)++;
    *v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) return 0;
  }
  return -1;
}

/* Walks a frame that protobuf-c has decoded, as message d, and returns 0,
 * or why it must be refused all the same:
 *  - WH_ENUL: a string field holds a NUL byte. protobuf-c keeps a string as
 *    a C string, so the text would be stored cut at the NUL, and two
 *    external ids that differ only after one would be one ticket.
 *  - WH_EDECODE: a field numbered 0. protobuf-c refuses that number in a
 *    one-byte key but takes it written long (0x82 0x00), keeps it as an
 *    unknown field, and packs it back as the short key it refuses: forwarded
 *    inside triage's or notify's own message, it would stick the ticket
 *    between two services, or leave a feed item no replay can read. Field 0
 *    is not protobuf, and Google's parser refuses it too.
 * Known message fields are walked into; what protobuf-c keeps as unknown is
 * bytes to it and packs back as it came. */
static int s_wire_check(const ProtobufCMessageDescriptor *d, const uint8_t *p, const uint8_t *end) {
  while (p < end) {
    uint64_t key, n;
    if (s_varint(&p, end, &key)) return WH_EDECODE;
    if ((key >> 3) == 0) return WH_EDECODE;
    const ProtobufCFieldDescriptor *fd =
        key >> 3 <= UINT32_MAX ? protobuf_c_message_descriptor_get_field(d, (unsigned)(key >> 3)) : NULL;
    switch (key & 7) {
    case 0:
      if (s_varint(&p, end, &n)) return WH_EDECODE;
      break;
    case 1:
      if (end - p < 8) return WH_EDECODE;
      p += 8;
      break;
    case 5:
      if (end - p < 4) return WH_EDECODE;
      p += 4;
      break;
    case 2:
      if (s_varint(&p, end, &n) || n > (uint64_t)(end - p)) return WH_EDECODE;
      if (fd && fd->type == PROTOBUF_C_TYPE_STRING && memchr(p, 0, n)) return WH_ENUL;
      if (fd && fd->type == PROTOBUF_C_TYPE_MESSAGE) {
        int rc = s_wire_check(fd->descriptor, p, p + n);
        if (rc) return rc;
      }
      p += n;
      break;
    default: /* groups: protobuf-c refused them before this runs */
      return WH_EDECODE;
    }
  }
  return 0;
}

static int s_unpack(ProtobufCAllocator *alloc, const void *data, size_t len,
                    Whistle__Envelope **env_out) {
  *env_out = NULL;
  if (len > WH_FRAME_MAX) return WH_ETOOBIG;
  Whistle__Envelope *env = whistle__envelope__unpack(alloc, len, data);
  if (!env) return WH_EDECODE;
  int rc = s_wire_check(&whistle__envelope__descriptor, data, (const uint8_t *)data + len);
  if (rc) {
    whistle__envelope__free_unpacked(env, alloc);
    return rc;
  }
  *env_out = env;
  return 0;
}

int wh_env_unpack(const void *data, size_t len, Whistle__Envelope **env_out) {
  return s_unpack(NULL, data, len, env_out);
}

/* ---- the arena --------------------------------------------------------- */

#define ARENA_BLOCK (64 * 1024) /* a block's usual size */
#define ARENA_KEEP 8            /* blocks of the usual size a reset keeps */

/* Under AddressSanitizer every piece is a block of its own, freed at the
 * reset, so a pointer kept past it is caught. */
#if defined(__SANITIZE_ADDRESS__)
#define ARENA_EACH 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ARENA_EACH 1
#endif
#endif
#ifndef ARENA_EACH
#define ARENA_EACH 0
#endif

typedef struct s_block_s {
  struct s_block_s *next;
  size_t cap, used;
  max_align_t data[]; /* aligned for anything protobuf-c puts there */
} s_block_t;

struct wh_arena_s {
  ProtobufCAllocator pc;
  s_block_t *head; /* the block being cut, then the full ones */
  s_block_t *spare; /* kept by the last reset */
};

static void *s_arena_alloc(void *arg, size_t n) {
  wh_arena_t *a = arg;
  n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
  s_block_t *b = a->head;
  if (ARENA_EACH || !b || b->cap - b->used < n) {
    if (!ARENA_EACH && n <= ARENA_BLOCK && a->spare) {
      b = a->spare;
      a->spare = b->next;
    } else {
      size_t cap = ARENA_EACH || n > ARENA_BLOCK ? n : ARENA_BLOCK;
      b = malloc(sizeof *b + cap);
      if (!b) return NULL;
      b->cap = cap;
    }
    b->used = 0;
    b->next = a->head;
    a->head = b;
  }
  void *p = (unsigned char *)b->data + b->used;
  b->used += n;
  return p;
}

/* Pieces go back all at once, at the reset. */
static void s_arena_free(void *arg, void *p) {
  (void)arg;
  (void)p;
}

wh_arena_t *wh_arena_new(void) {
  wh_arena_t *a = calloc(1, sizeof *a);
  if (!a) return NULL;
  a->pc = (ProtobufCAllocator){.alloc = s_arena_alloc, .free = s_arena_free, .allocator_data = a};
  return a;
}

void wh_arena_reset(wh_arena_t *a) {
  int kept = 0;
  for (s_block_t *s = a->spare; s; s = s->next) kept++;
  while (a->head) {
    s_block_t *b = a->head;
    a->head = b->next;
    if (b->cap == ARENA_BLOCK && kept < ARENA_KEEP) {
      b->next = a->spare;
      a->spare = b;
      kept++;
    } else {
      free(b);
    }
  }
}

void wh_arena_destroy(wh_arena_t **self_p) {
  if (!self_p || !*self_p) return;
  wh_arena_t *a = *self_p;
  *self_p = NULL;
  wh_arena_reset(a);
  while (a->spare) {
    s_block_t *b = a->spare;
    a->spare = b->next;
    free(b);
  }
  free(a);
}

ProtobufCAllocator *wh_arena_allocator(wh_arena_t *a) { return &a->pc; }

void *wh_arena_alloc(wh_arena_t *a, size_t n) { return s_arena_alloc(a, n ? n : 1); }

int wh_env_unpack_in(wh_arena_t *a, const void *data, size_t len, Whistle__Envelope **env_out) {
  return s_unpack(&a->pc, data, len, env_out);
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

size_t wh_env_stamp(uint64_t tag, int64_t sent_at_ms, int first_send, uint8_t *out) {
  Whistle__Envelope tail = WHISTLE__ENVELOPE__INIT;
  tail.delivery_tag = tag;
  tail.sent_at_ms = sent_at_ms;
  tail.first_send = first_send != 0;
  return whistle__envelope__pack(&tail, out);
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
  case WHISTLE__WORK_EVENT_KIND__WORK_ACTED: return "acted";
  case WHISTLE__WORK_EVENT_KIND__WORK_REMINDER: return "reminder";
  case WHISTLE__WORK_EVENT_KIND__WORK_ESCALATED: return "supervisor";
  case WHISTLE__WORK_EVENT_KIND__WORK_FEEDBACK_DUE: return "feedback_due";
  default: return "unknown";
  }
}
