/* wh_codec - the only place whistle packs and unpacks envelopes.
 *
 * Frames are capped before unpacking, so a hostile peer cannot make a service
 * allocate without bound; every unpacked envelope is freed by wh_env_free. */
#ifndef WH_CODEC_H
#define WH_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "whistle.pb-c.h"

/* The largest frame any whistle socket accepts. */
#define WH_FRAME_MAX (256 * 1024)

/* Unpacks a frame into *env_out (caller owns; free with wh_env_free).
 * Returns 0, WH_ETOOBIG, WH_EDECODE, or WH_ENUL when a string field of any
 * message in it holds a NUL byte (protobuf-c would cut it there). */
int wh_env_unpack(const void *data, size_t len, Whistle__Envelope **env_out);
void wh_env_free(Whistle__Envelope *env);
/* Packs env into a new buffer (caller frees with free()). Returns 0 or WH_ENOMEM. */
int wh_env_pack(const Whistle__Envelope *env, uint8_t **buf_out, size_t *len_out);
/* Writes the stamp a relay puts after an already packed envelope: its
 * delivery tag, send time and first_send. Protobuf merges concatenated
 * messages, so the stored bytes followed by the stamp are the envelope so
 * stamped, and need not be unpacked. out holds WH_STAMP_MAX bytes; returns
 * the stamp's length. */
#define WH_STAMP_MAX 32
size_t wh_env_stamp(uint64_t tag, int64_t sent_at_ms, int first_send, uint8_t *out);
/* An arena that envelopes are unpacked into: every piece of an envelope is
 * cut from a few large blocks, and all of a batch's envelopes go at once
 * when the arena is reset, where unpacking with malloc cost a service
 * dozens of allocations and frees per message. Reset keeps a bounded amount
 * of memory for the next round. */
typedef struct wh_arena_s wh_arena_t;

wh_arena_t *wh_arena_new(void);
void wh_arena_destroy(wh_arena_t **self_p);
/* Forgets everything unpacked into a since the last reset. */
void wh_arena_reset(wh_arena_t *a);
/* The arena as a protobuf-c allocator (borrowed), to unpack other messages
 * into it. */
ProtobufCAllocator *wh_arena_allocator(wh_arena_t *a);
/* n bytes from a, until its next reset; NULL when out of memory. */
void *wh_arena_alloc(wh_arena_t *a, size_t n);
/* Like wh_env_unpack, but *env_out lives in a until its next reset (or
 * destroy): it must not be given to wh_env_free. */
int wh_env_unpack_in(wh_arena_t *a, const void *data, size_t len, Whistle__Envelope **env_out);

/* Writes a random (v4) UUID as 36 characters plus NUL into out. */
void wh_uuid(char out[37]);



/* Names of wire enums as operators and JSON write them. */
const char *wh_source_name(int source);   /* "hotline" ... or "" */
int wh_source_parse(const char *name);    /* 0 when unknown */
const char *wh_work_kind_name(int kind);  /* "dispatched" | "merged" | "overdue" */
#endif
