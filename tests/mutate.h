/* mutate - valid frames of every kind, and repeatable damage to them, for the
 * tests that feed the codec and the running services what a broken or
 * hostile peer might send.
 *
 * A few edits per frame, each the kind that trips a decoder: a flipped bit,
 * a byte set to a boundary value, a cut, bytes inserted, a span removed or
 * doubled, a run of 0xff that reads as an endless varint. The generator is a
 * seeded xorshift, so a failure names the seed and iteration that made it. */
#ifndef WH_TEST_MUTATE_H
#define WH_TEST_MUTATE_H
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wh_codec.h"

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

/* The valid frames that the damage starts from, one of each kind a peer
 * sends (index: enum below), for a ticket numbered as intake never numbers
 * one (FZ...), so a fake event can never stand in for a real ticket. */
enum { SEED_SUBMIT, SEED_RECEIVED, SEED_TRIAGED, SEED_WORK, SEED_REPLAY, SEED_FEED, SEED_ACKS,
       SEED_ERROR, SEED_BATCH, SEED_ADMIN, SEED_DESK, SEED_CONTACT, SEED_TRY,
       SEED_TAUGHT, SEED_N };

/* Packs the SEED_N seed frames into buf[] and len[] (caller frees each);
 * returns SEED_N, or -1 when out of memory. */
static inline int s_seed_frames(uint8_t *buf[SEED_N], size_t len[SEED_N]) {
  Whistle__SubmitTicket t = WHISTLE__SUBMIT_TICKET__INIT;
  t.source = WHISTLE__SOURCE__SOURCE_HOTLINE;
  t.external_id = "12345-250603-0042";
  t.received_at_ms = 1748914200000; /* 2025-06-03 09:30 +08:00 */
  t.community = "wenhan";
  t.grid = "wenhan-3";
  t.address = "文诚路思涌路";
  t.category = "sidewalk";
  t.text = "文诚路一侧约300米没有人行道";
  Whistle__Reporter rep = WHISTLE__REPORTER__INIT;
  rep.name = "王阿姨";
  rep.phone = "13900000001";
  t.reporter = &rep;
  Whistle__Location loc = WHISTLE__LOCATION__INIT;
  loc.lat = 31.2;
  loc.lng = 121.4;
  t.location = &loc;
  char *tags[] = {"elderly_alone"};
  t.care_tags = tags;
  t.n_care_tags = 1;
  Whistle__TicketReceived rcv = WHISTLE__TICKET_RECEIVED__INIT;
  rcv.ticket_id = "FZ00000042";
  rcv.report = &t;
  rcv.stored_at_ms = t.received_at_ms + 5;
  Whistle__TicketTriaged tri = WHISTLE__TICKET_TRIAGED__INIT;
  char *co[] = {"greening", "wenhan.property"};
  tri.ticket = &rcv;
  tri.color = WHISTLE__COLOR__COLOR_RED;
  tri.level = 2;
  tri.lead = "transport";
  tri.co = co;
  tri.n_co = 2;
  tri.klass = "sidewalk";
  tri.rule = "sidewalk";
  Whistle__Deadline d1 = WHISTLE__DEADLINE__INIT, d2 = WHISTLE__DEADLINE__INIT;
  d1.name = "respond";
  d1.due_at_ms = t.received_at_ms + 3600000;
  d2.name = "resolve";
  d2.due_at_ms = t.received_at_ms + 5 * 86400000LL;
  Whistle__Deadline *dl[] = {&d1, &d2};
  char *lapsed[] = {"respond"};
  Whistle__WorkEvent work = WHISTLE__WORK_EVENT__INIT;
  work.ticket_id = rcv.ticket_id;
  work.kind = WHISTLE__WORK_EVENT_KIND__WORK_OVERDUE;
  work.version = 2;
  work.state = "dispatched";
  work.color = tri.color;
  work.level = 2;
  work.lead = tri.lead;
  work.co = co;
  work.n_co = 2;
  work.deadlines = dl;
  work.n_deadlines = 2;
  work.lapsed = lapsed;
  work.n_lapsed = 1;
  work.summary = t.text;
  work.reporter_masked = "139****0001";
  Whistle__ReplayRequest replay = WHISTLE__REPLAY_REQUEST__INIT;
  replay.party = "transport";
  replay.from_seq = 7;
  replay.max = 100;
  Whistle__FeedItem feed = WHISTLE__FEED_ITEM__INIT;
  feed.party = "transport";
  feed.seq = 8;
  feed.ticket_id = rcv.ticket_id;
  feed.kind = work.kind;
  feed.role = "lead";
  feed.event = &work;
  Whistle__Error err = WHISTLE__ERROR__INIT;
  err.code = WHISTLE__ERROR_CODE__ERR_OUT_OF_ORDER;
  err.text = "an earlier event of this ticket is missing";
  Whistle__Ack a1 = WHISTLE__ACK__INIT, a2 = WHISTLE__ACK__INIT;
  a1.message_id = "intake:FZ00000042:1";
  a1.delivery_tag = 41;
  a2.message_id = "intake:FZ00000043:1";
  a2.delivery_tag = 42;
  a2.status = WHISTLE__ACK_STATUS__ACK_RETRY;
  a2.error = &err;
  Whistle__Ack *acks[] = {&a1, &a2};
  Whistle__Acks ackset = WHISTLE__ACKS__INIT;
  ackset.acks = acks;
  ackset.n_acks = 2;

  Whistle__Envelope env = WHISTLE__ENVELOPE__INIT;
  env.message_id = "intake:FZ00000042:1";
  env.ticket_id = rcv.ticket_id;
  env.seq = 1;
  env.sender = "intake";
  env.delivery_tag = 41;
  env.first_send = 1;
  Whistle__Envelope__BodyCase kinds[] = {
      [SEED_SUBMIT] = WHISTLE__ENVELOPE__BODY_SUBMIT, [SEED_RECEIVED] = WHISTLE__ENVELOPE__BODY_RECEIVED,
      [SEED_TRIAGED] = WHISTLE__ENVELOPE__BODY_TRIAGED, [SEED_WORK] = WHISTLE__ENVELOPE__BODY_WORK,
      [SEED_REPLAY] = WHISTLE__ENVELOPE__BODY_REPLAY,   [SEED_FEED] = WHISTLE__ENVELOPE__BODY_FEED,
      [SEED_ACKS] = WHISTLE__ENVELOPE__BODY_ACKS,       [SEED_ERROR] = WHISTLE__ENVELOPE__BODY_ERROR,
      [SEED_BATCH] = WHISTLE__ENVELOPE__BODY_BATCH, [SEED_ADMIN] = WHISTLE__ENVELOPE__BODY_ADMIN,
      [SEED_DESK] = WHISTLE__ENVELOPE__BODY_DESK, [SEED_CONTACT] = WHISTLE__ENVELOPE__BODY_CONTACT,
      [SEED_TRY] = WHISTLE__ENVELOPE__BODY_TRIAGE_TRY, [SEED_TAUGHT] = WHISTLE__ENVELOPE__BODY_TAUGHT};
  /* notify asking intake for the numbers of two tickets */
  char *ctk[] = {"FZ00000042", "WH00000001"};
  Whistle__ContactRequest contact = WHISTLE__CONTACT_REQUEST__INIT;
  contact.ticket_ids = ctk;
  contact.n_ticket_ids = 2;
  /* the center's request to send a parked message again */
  Whistle__Redrive redrive = WHISTLE__REDRIVE__INIT;
  redrive.message_id = "dispatch:FZ00000042:2";
  Whistle__AdminRequest admin = WHISTLE__ADMIN_REQUEST__INIT;
  admin.what_case = WHISTLE__ADMIN_REQUEST__WHAT_REDRIVE;
  admin.redrive = &redrive;
  /* a party's action at dispatch's desk, on a ticket intake never numbers */
  Whistle__DeskAction act = WHISTLE__DESK_ACTION__INIT;
  act.ticket_id = "FZ00000042";
  act.action = "extend";
  act.until_ms = 1750000000000;
  act.note = "需要采购材料，申请延期";
  act.internal_note = "内部备注";
  act.reason = "other";
  Whistle__DeskRequest desk = WHISTLE__DESK_REQUEST__INIT;
  desk.request_id = "hostile-1";
  desk.what_case = WHISTLE__DESK_REQUEST__WHAT_ACT;
  desk.act = &act;
  /* the center trying a report on triage's request socket */
  Whistle__TriageTry try = WHISTLE__TRIAGE_TRY__INIT;
  try.report = &t;
  /* dispatch telling triage the class the center gave by hand */
  Whistle__ClassTaught taught = WHISTLE__CLASS_TAUGHT__INIT;
  taught.klass = "sidewalk";
  taught.text = t.text;
  taught.community = "wenhan";
  taught.prior_klass = "unplaced";
  taught.taught_by = "center";
  taught.taught_at_ms = t.received_at_ms + 60000;
  ProtobufCBinaryData inner[3];
  Whistle__Batch batch = WHISTLE__BATCH__INIT;
  batch.envelopes = inner;
  batch.n_envelopes = 3;
  for (int k = 0; k < SEED_N; k++) {
    env.body_case = kinds[k];
    /* each sender names itself, as the services' relays do */
    env.sender = k == SEED_TRIAGED ? "triage" : k == SEED_WORK || k == SEED_TAUGHT ? "dispatch" : "intake";
    switch (kinds[k]) {
    case WHISTLE__ENVELOPE__BODY_SUBMIT: env.submit = &t; break;
    case WHISTLE__ENVELOPE__BODY_RECEIVED: env.received = &rcv; break;
    case WHISTLE__ENVELOPE__BODY_TRIAGED: env.triaged = &tri; break;
    case WHISTLE__ENVELOPE__BODY_WORK: env.work = &work; break;
    case WHISTLE__ENVELOPE__BODY_REPLAY: env.replay = &replay; break;
    case WHISTLE__ENVELOPE__BODY_FEED: env.feed = &feed; break;
    case WHISTLE__ENVELOPE__BODY_ACKS: env.acks = &ackset; break;
    case WHISTLE__ENVELOPE__BODY_ERROR: env.error = &err; break;
    case WHISTLE__ENVELOPE__BODY_ADMIN: env.admin = &admin; break;
    case WHISTLE__ENVELOPE__BODY_DESK: env.desk = &desk; break;
    case WHISTLE__ENVELOPE__BODY_CONTACT: env.contact = &contact; break;
    case WHISTLE__ENVELOPE__BODY_TRIAGE_TRY: env.triage_try = &try; break;
    case WHISTLE__ENVELOPE__BODY_TAUGHT: env.taught = &taught; break;
    default: /* a relay's batch: a received, a triaged and a work event */
      for (int e = 0; e < 3; e++) inner[e] = (ProtobufCBinaryData){len[1 + e], buf[1 + e]};
      env.batch = &batch;
    }
    if (wh_env_pack(&env, &buf[k], &len[k])) {
      while (k--) free(buf[k]);
      return -1;
    }
  }
  return SEED_N;
}
#endif
