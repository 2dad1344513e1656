/* intake - the front door.
 *
 * Channels send SubmitTicket envelopes to a ROUTER socket. Intake drains what
 * has arrived, answers invalid ones at once (nothing stored), then stores the
 * valid ones and their outbox rows in one transaction, commits, and only then
 * answers each with its ticket id: an answer means the report is durable. The
 * same source and external id always map to the same ticket, so a pusher that
 * did not hear the answer simply sends again.
 *
 * A batch first goes the short way: BEGIN, a plain INSERT of its reports and
 * COMMIT in one round trip, with ticket numbers the intake reserved
 * beforehand; each report's TicketReceived rides in its own row
 * (wh_outbox_carry). Only when that fails (usually because a report was
 * stored before: its (source, external id) key is taken) does the batch go
 * the careful way, which skips what is stored and looks it up. Reserved
 * numbers that a failure or a restart leaves unused are gaps in the
 * numbering, as a rolled-back sequence value always was; and numbers a
 * batch was given are never given again when the connection broke before
 * its COMMIT was answered, since PostgreSQL may have committed it. */
#include "intake.h"
#include "wh_clock.h"
#include "wh_codec.h"
#include "wh_err.h"
#include "wh_log.h"
#include "wh_consumer.h"
#include "wh_outbox.h"
#include "wh_text.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reports stored in one transaction at most (see WH_CONSUMER_BATCH). */
#define INTAKE_BATCH 512
_Static_assert((INTAKE_BATCH & (INTAKE_BATCH - 1)) == 0, "firsts is indexed by a mask");

#define CONTACT_QUEUE 16 /* notify's requests taken before they are answered */
#define CONTACT_MAX 4096 /* tickets a request names at most (notify asks for no more) */

typedef struct {
  zmq_msg_t peer;
  Whistle__Envelope *env;
  char ticket_id[32];
  int duplicate;
  int same; /* a copy of reqs[same], sent in the same batch; -1 if none */
  uint32_t key; /* wh_hash_str of source and external id: copies are looked for by it first */
  int64_t stored_ms; /* intake's clock when it gathered the row: stored_at */
  int err;
} s_req_t;

typedef struct {
  wh_service_t *svc;
  wh_rules_t *rules;
  wh_bus_t *front;
  wh_bus_t *contacts;    /* --contacts: notify's requests for reporters' numbers */
  uv_idle_t *contact_idle;
  zmq_msg_t cq_route[CONTACT_QUEUE], cq_body[CONTACT_QUEUE];
  int ncq;
  wh_relay_t *relay;
  wh_builder_t builder; /* builds a carried TicketReceived again from its row */
  s_req_t reqs[INTAKE_BATCH];
  int nreqs;
  wh_arena_t *arena; /* the envelopes of reqs, until the batch is answered */
  wh_rows_t rows;  /* the batch's ticket rows, the careful way */
  wh_rows_t crows; /* ... the short way: with the message each carries */
  int from, to;   /* the requests being stored */
  /* The first copy of each report of the range being gathered, by key:
   * 1 + its index in reqs, 0 for none (open addressing). */
  uint16_t firsts[4 * INTAKE_BATCH];
  /* Ticket numbers reserved from the ticket_no sequence, not yet used:
   * ids[next..nids). A number is used once its report has committed. */
  int64_t ids[INTAKE_BATCH];
  int next, nids;
  uv_check_t *store; /* stores the round's reports after the loop's poll phase */
} s_intake_t;

/* A ticket id is "WH" and its number, at least eight digits. */
#define TICKET_ID_FMT "WH%08" PRId64

/* The reports, as ticket_row (sql/003_ticket_row.sql). */
#define INTAKE_INSERT                                                                         \
  "INSERT INTO ticket (ticket_id, source, external_id, received_at, community, grid, address," \
  " category, body, reporter_name, reporter_phone, care_tags, lat, lng, stored_at, trace_id)"  \
  " SELECT r.ticket_id, r.source, r.external_id, r.received_at, r.community, r.grid,"         \
  "   r.address, r.category, r.body, r.reporter_name, r.reporter_phone, r.care_tags, r.lat,"  \
  "   r.lng, r.stored_at, r.trace_id"                                                         \
  " FROM unnest($1::ticket_row[]) AS r"
/* The short way: every report is new (a taken key fails the batch). Its
 * TicketReceived is carried, and not stored: s_build makes it again. */
static const wh_stmt_t s_insert_new = {
    "intake_insert_new",
    "INSERT INTO ticket (ticket_id, source, external_id, received_at, community, grid, address,"
    " category, body, reporter_name, reporter_phone, care_tags, lat, lng, stored_at, trace_id,"
    " out_id)"
    " SELECT r.ticket_id, r.source, r.external_id, r.received_at, r.community, r.grid,"
    "   r.address, r.category, r.body, r.reporter_name, r.reporter_phone, r.care_tags, r.lat,"
    "   r.lng, r.stored_at, r.trace_id, nextval('outbox_id_seq')"
    " FROM unnest($1::ticket_row[]) AS r"
    " RETURNING out_id, ticket_id"};
/* What s_build makes a carried TicketReceived of (see wh_builder_t). */
static const wh_stmt_t s_built_rows = {
    "intake_built_rows",
    "SELECT out_id, ticket_id, source, external_id, received_at, community, grid, address,"
    " category, body, reporter_name, reporter_phone, care_tags, lat, lng, stored_at,"
    " coalesce(trace_id, '')"
    " FROM ticket WHERE out_id = ANY($1::bigint[]) AND out_id BETWEEN $2::bigint AND $3::bigint"
    " AND out_payload IS NULL"};
/* The careful way: a report stored before is skipped, and looked up. */
static const wh_stmt_t s_insert = {
    "intake_insert",
    INTAKE_INSERT " ON CONFLICT (source, external_id) DO NOTHING RETURNING ticket_id, source, external_id"};
static const wh_stmt_t s_reserve_stmt = {
    "intake_reserve", "SELECT nextval('ticket_no') FROM generate_series(1, $1::integer)"};
static const wh_stmt_t s_existing = {
    "intake_existing", "SELECT ticket_id FROM ticket WHERE source = $1 AND external_id = $2"};

static void s_reply(s_intake_t *in, s_req_t *r, const char *detail) {
  Whistle__SubmitReply rep = WHISTLE__SUBMIT_REPLY__INIT;
  Whistle__Error e = WHISTLE__ERROR__INIT;
  rep.external_id = r->env->submit ? r->env->submit->external_id : (char *)"";
  if (r->err) {
    e.code = wh_err_to_wire(r->err);
    e.text = (char *)(detail ? detail : wh_strerror(r->err));
    rep.error = &e;
  } else {
    rep.ticket_id = r->ticket_id;
    rep.duplicate = r->duplicate;
  }
  Whistle__Envelope env = WHISTLE__ENVELOPE__INIT;
  env.message_id = r->env->message_id; /* the client matches answers by it */
  env.ticket_id = r->err ? (char *)"" : r->ticket_id;
  env.body_case = WHISTLE__ENVELOPE__BODY_SUBMIT_REPLY;
  env.submit_reply = &rep;
  uint8_t *buf;
  size_t len;
  if (wh_env_pack(&env, &buf, &len)) return;
  wh_bus_send(in->front, zmq_msg_data(&r->peer), zmq_msg_size(&r->peer), buf, len);
  free(buf);
}

/* Gathers one valid report's row into w. */
static int s_gather(wh_rows_t *w, s_req_t *r) {
  Whistle__SubmitTicket *t = r->env->submit;
  if (t->n_care_tags > INTAKE_MAX_TAGS) return WH_ETOOLONG; /* validated before */
  wh_rows_next(w);
  wh_rows_text(w, 0, wh_source_name(t->source));
  wh_rows_text(w, 1, t->external_id);
  wh_rows_time(w, 2, &t->received_at_ms);
  wh_rows_text(w, 3, t->community);
  wh_rows_text(w, 4, t->grid);
  wh_rows_text(w, 5, t->address);
  wh_rows_text(w, 6, t->category);
  wh_rows_text(w, 7, t->text);
  wh_rows_text(w, 8, t->reporter ? t->reporter->name : "");
  wh_rows_text(w, 9, t->reporter ? t->reporter->phone : "");
  wh_rows_texts(w, 10, (const char *const *)t->care_tags, t->n_care_tags);
  wh_rows_float(w, 11, t->location ? &t->location->lat : NULL);
  wh_rows_float(w, 12, t->location ? &t->location->lng : NULL);
  wh_rows_text(w, 13, r->ticket_id);
  return 0;
}

/* The row's last fields, after its out_payload: when intake stored it, and
 * the channel's trace id. */
static void s_gather_end(wh_rows_t *w, const s_req_t *r) {
  wh_rows_time(w, 15, &r->stored_ms);
  wh_rows_text(w, 16, r->env->trace_id);
}

/* The TicketReceived of a report, in env and the messages it points to:
 * what the report's row holds, and nothing else (not a field the sender
 * added that this build does not know), so that it is built again from the
 * row (s_build) byte for byte. Downstream sees the phone masked (into
 * masked); the full number stays here. */
typedef struct {
  Whistle__Envelope env;
  Whistle__TicketReceived rec;
  Whistle__SubmitTicket report;
  Whistle__Reporter reporter;
  Whistle__Location location;
  char masked[32];
} s_received_t;

static void s_received(s_received_t *m, const char *ticket_id, const Whistle__SubmitTicket *t,
                       const char *name, const char *phone, const double *lat, const double *lng,
                       int64_t stored_ms, const char *trace_id) {
  whistle__envelope__init(&m->env);
  whistle__ticket_received__init(&m->rec);
  whistle__submit_ticket__init(&m->report);
  whistle__reporter__init(&m->reporter);
  whistle__location__init(&m->location);
  wh_phone_mask(phone, m->masked, sizeof m->masked);
  m->reporter.name = (char *)name;
  m->reporter.phone = m->masked;
  m->report.source = t->source;
  m->report.external_id = t->external_id;
  m->report.received_at_ms = t->received_at_ms;
  m->report.community = t->community;
  m->report.grid = t->grid;
  m->report.address = t->address;
  m->report.category = t->category;
  m->report.text = t->text;
  m->report.reporter = &m->reporter;
  m->report.n_care_tags = t->n_care_tags;
  m->report.care_tags = t->care_tags;
  if (lat && lng) {
    m->location.lat = *lat;
    m->location.lng = *lng;
    m->report.location = &m->location;
  }
  m->rec.ticket_id = (char *)ticket_id;
  m->rec.report = &m->report;
  m->rec.stored_at_ms = stored_ms;
  m->env.ticket_id = (char *)ticket_id;
  m->env.seq = 1;
  m->env.trace_id = (char *)trace_id;
  m->env.created_at_ms = stored_ms;
  m->env.body_case = WHISTLE__ENVELOPE__BODY_RECEIVED;
  m->env.received = &m->rec;
}

/* Puts the TicketReceived event of a newly stored report in the outbox, or,
 * with carry, carries it in the report's row, built from it. */
static int s_pass_on(s_intake_t *in, s_req_t *r, int carry) {
  const Whistle__SubmitTicket *t = r->env->submit;
  s_received_t m;
  s_received(&m, r->ticket_id, t, t->reporter ? t->reporter->name : "",
             t->reporter ? t->reporter->phone : "", t->location ? &t->location->lat : NULL,
             t->location ? &t->location->lng : NULL, r->stored_ms, r->env->trace_id);
  if (carry) return wh_outbox_carry_built(in->relay, "intake", &m.env);
  return wh_outbox_put(in->relay, "intake", &m.env);
}

/* Builds a carried TicketReceived again from row k of s_built_rows, as
 * s_pass_on built it from the report. */
static int s_build(void *arg, const PGresult *res, int k, Whistle__Envelope *env,
                   wh_arena_t *arena) {
  (void)arg;
  s_received_t *m = wh_arena_alloc(arena, sizeof *m);
  char **tags = wh_arena_alloc(arena, INTAKE_MAX_TAGS * sizeof *tags);
  char *tagbuf = wh_arena_alloc(arena, INTAKE_MAX_TAGS * 64);
  if (!m || !tags || !tagbuf) return WH_ENOMEM;
  Whistle__SubmitTicket t = WHISTLE__SUBMIT_TICKET__INIT;
  t.source = wh_source_parse(PQgetvalue(res, k, 2));
  t.external_id = PQgetvalue(res, k, 3);
  t.received_at_ms = wh_pg_get_time_ms(res, k, 4);
  t.community = PQgetvalue(res, k, 5);
  t.grid = PQgetvalue(res, k, 6);
  t.address = PQgetvalue(res, k, 7);
  t.category = PQgetvalue(res, k, 8);
  t.text = PQgetvalue(res, k, 9);
  int ntags = wh_pg_get_texts(res, k, 12, tags, INTAKE_MAX_TAGS, tagbuf, INTAKE_MAX_TAGS * 64);
  if (ntags < 0) return WH_EFIELD;
  t.n_care_tags = (size_t)ntags;
  t.care_tags = tags;
  double lat = wh_pg_get_f64(res, k, 13), lng = wh_pg_get_f64(res, k, 14);
  int located = !PQgetisnull(res, k, 13) && !PQgetisnull(res, k, 14);
  s_received(m, PQgetvalue(res, k, 1), &t, PQgetvalue(res, k, 10), PQgetvalue(res, k, 11),
             located ? &lat : NULL, located ? &lng : NULL, wh_pg_get_time_ms(res, k, 15),
             PQgetvalue(res, k, 16));
  *env = m->env; /* what it points at is in the arena, or in res */
  return 0;
}

/* A report comes back when it was new; the first request that carries it
 * takes it (a repeat in the same batch, or of an earlier one, is looked up). */
static void s_on_stored(void *arg, const PGresult *res) {
  s_intake_t *in = arg;
  int from = in->from, to = in->to;
  for (int k = 0, i = from; k < PQntuples(res); k++) {
    const char *src = PQgetvalue(res, k, 1), *ext = PQgetvalue(res, k, 2);
    for (int m = 0; m < to - from; m++, i = i + 1 < to ? i + 1 : from) {
      s_req_t *r = &in->reqs[i];
      if (r->err || r->same >= 0 || r->ticket_id[0] || strcmp(r->env->submit->external_id, ext) ||
          strcmp(wh_source_name(r->env->submit->source), src))
        continue;
      snprintf(r->ticket_id, sizeof r->ticket_id, "%s", PQgetvalue(res, k, 0));
      break;
    }
  }
}

/* Tops the reserved ticket numbers up to a batch's worth when fewer than n
 * are left. Outside any transaction: a sequence hands numbers out for good,
 * committed or not. Returns 0 or WH_EDB. */
static int s_reserve(s_intake_t *in, int n) {
  if (in->nids - in->next >= n) return 0;
  in->nids -= in->next;
  memmove(in->ids, in->ids + in->next, (size_t)in->nids * sizeof *in->ids);
  in->next = 0;
  char want[16];
  snprintf(want, sizeof want, "%d", INTAKE_BATCH - in->nids);
  const char *v[1] = {want};
  PGresult *res = wh_pg_run(in->svc->pg, &s_reserve_stmt, 1, v, NULL, NULL);
  if (!res) return WH_EDB;
  for (int k = 0; k < PQntuples(res) && in->nids < INTAKE_BATCH; k++)
    in->ids[in->nids++] = strtoll(PQgetvalue(res, k, 0), NULL, 10);
  PQclear(res);
  return in->nids - in->next >= n ? 0 : WH_EDB;
}


static int s_same_report(const s_req_t *a, const s_req_t *b) {
  return a->key == b->key && a->env->submit->source == b->env->submit->source &&
         !strcmp(a->env->submit->external_id, b->env->submit->external_id);
}

/* Gathers the rows of reqs[from..to) that passed validation, each with the
 * ticket id it is given: with carry, into crows, each with the message it
 * carries; else into rows. A report sent twice in the batch is gathered once
 * (`same` names the first). Returns how many reserved numbers it used, or
 * WH_ENOMEM. */
static int s_gather_range(s_intake_t *in, int from, int to, int carry) {
  wh_rows_t *w = carry ? &in->crows : &in->rows;
  wh_rows_reset(w);
  memset(in->firsts, 0, sizeof in->firsts);
  const size_t mask = sizeof in->firsts / sizeof *in->firsts - 1;
  int used = 0;
  for (int i = from; i < to; i++) {
    s_req_t *r = &in->reqs[i];
    r->ticket_id[0] = '\0';
    r->duplicate = 0;
    r->same = -1;
    if (r->err) continue;
    r->key = wh_hash_str(wh_hash_str(WH_HASH_INIT, wh_source_name(r->env->submit->source)),
                         r->env->submit->external_id);
    size_t at = r->key & mask;
    /* (a first copy refused while gathering copies nothing) */
    while (in->firsts[at] && (in->reqs[in->firsts[at] - 1].err ||
                              !s_same_report(&in->reqs[in->firsts[at] - 1], r)))
      at = (at + 1) & mask;
    if (in->firsts[at]) {
      r->same = in->firsts[at] - 1;
      continue;
    }
    in->firsts[at] = (uint16_t)(i + 1);
    snprintf(r->ticket_id, sizeof r->ticket_id, TICKET_ID_FMT, in->ids[in->next + used]);
    r->stored_ms = wh_clock_now_ms();
    if (s_gather(w, r)) {
      r->err = WH_ETOOLONG;
      r->ticket_id[0] = '\0';
      s_reply(in, r, "care_tags: too long");
      continue;
    }
    used++;
    /* out_payload: neither way stores a message in the row (the careful
     * way puts it in the outbox, the short way builds it from the row). */
    wh_rows_bytes(w, 14, NULL, 0);
    s_gather_end(w, r);
    if (!carry) continue;
    wh_log_ctx(r->ticket_id, r->env->message_id);
    int rc = s_pass_on(in, r, 1);
    wh_log_ctx(NULL, NULL);
    if (rc) return WH_ENOMEM;
  }
  return used;
}

/* After a failure: when the connection broke, the batch may have been
 * committed all the same (its COMMIT's answer lost), so the numbers it was
 * given may be taken; they are spent, not given to the next batch, whose
 * every report would meet a taken ticket id. */
static void s_failed(s_intake_t *in, int used) {
  if (used > 0 && wh_pg_broken(in->svc->pg)) in->next += used;
}

/* After a commit: the reserved numbers the batch used are spent, and a
 * report sent twice in the batch answers with its first copy's ticket. */
static void s_stored(s_intake_t *in, int from, int to, int used) {
  in->next += used;
  for (int i = from; i < to; i++) {
    s_req_t *r = &in->reqs[i];
    if (r->err || r->same < 0) continue;
    memmove(r->ticket_id, in->reqs[r->same].ticket_id, sizeof r->ticket_id); /* same < i */
    r->duplicate = 1;
  }
}

/* The short way: BEGIN, the reports with the messages they carry, and
 * COMMIT in one round trip. Returns 0 when committed; WH_EDB when it was
 * not, e.g. because a report's key was taken (then nothing is kept, nothing
 * is sent). */
static int s_store_new(s_intake_t *in, int from, int to) {
  int used = s_gather_range(in, from, to, 1);
  if (used < 0) goto failed;
  if (!in->crows.nrows) return 0; /* every one was refused */
  wh_pg_step_t step = {.st = &s_insert_new, .rows = &in->crows, .quiet = 1,
                       .on_result = wh_relay_carried, .arg = in->relay};
  if (wh_pg_pipeline(in->svc->pg, 1, &step, 1, WH_PG_COMMIT)) goto failed;
  wh_relay_committed(in->relay);
  s_stored(in, from, to, used);
  return 0;
failed:
  s_failed(in, used);
  wh_relay_aborted(in->relay);
  return WH_EDB;
}

/* The careful way: a report stored before is skipped by the INSERT and
 * looked up; BEGIN and the reports go in one round trip, the outbox rows and
 * COMMIT in a second. Returns 0 when committed, else WH_EDB (rolled back). */
static int s_store_careful(s_intake_t *in, int from, int to) {
  wh_pg_t *pg = in->svc->pg;
  int used = s_gather_range(in, from, to, 0);
  if (used < 0) return WH_ENOMEM;
  if (!in->rows.nrows) return 0;
  /* Which reports are new is known from the INSERT's answer (s_on_stored). */
  in->from = from;
  in->to = to;
  for (int i = from; i < to; i++) in->reqs[i].ticket_id[0] = '\0';
  wh_pg_step_t step = {.st = &s_insert, .rows = &in->rows, .on_result = s_on_stored, .arg = in};
  if (wh_pg_pipeline(pg, 1, &step, 1, WH_PG_OPEN)) goto rollback;
  PGresult *res;
  for (int i = from; i < to; i++) {
    s_req_t *r = &in->reqs[i];
    if (r->err || r->same >= 0) continue;
    if (r->ticket_id[0]) {
      wh_log_ctx(r->ticket_id, r->env->message_id);
      if (s_pass_on(in, r, 0)) goto rollback;
      continue;
    }
    /* Seen before: the same ticket, and nothing new to pass on. */
    const char *v[2] = {wh_source_name(r->env->submit->source), r->env->submit->external_id};
    res = wh_pg_run(pg, &s_existing, 2, v, NULL, NULL);
    if (!res) goto rollback;
    if (PQntuples(res) != 1) {
      PQclear(res);
      goto rollback;
    }
    snprintf(r->ticket_id, sizeof r->ticket_id, "%s", PQgetvalue(res, 0, 0));
    r->duplicate = 1;
    PQclear(res);
  }
  wh_log_ctx(NULL, NULL);
  /* The outbox rows and the COMMIT go in one round trip. */
  wh_relay_step(in->relay, &step);
  if (wh_pg_pipeline(pg, 0, &step, 1, WH_PG_COMMIT)) goto rollback;
  wh_relay_committed(in->relay);
  s_stored(in, from, to, used);
  return 0;
rollback:
  wh_log_ctx(NULL, NULL);
  s_failed(in, used);
  wh_pg_rollback(pg);
  wh_relay_aborted(in->relay);
  return WH_EDB;
}

/* Stores reqs[from..to) that passed validation, and their outbox rows, in
 * one transaction: the short way, or when that fails the careful way. */
static int s_store_range(s_intake_t *in, int from, int to) {
  wh_pg_t *pg = in->svc->pg;
  int n = 0;
  for (int i = from; i < to; i++) n += !in->reqs[i].err;
  if (!n) return 0;
  if (wh_pg_ready(pg) || s_reserve(in, n)) return WH_EDB;
  if (s_store_new(in, from, to) == 0) return 0;
  if (wh_pg_broken(pg)) return WH_EDB;
  return s_store_careful(in, from, to);
}

static void s_flush(s_intake_t *in) {
  int stored = 0;
  for (int i = 0; i < in->nreqs; i++) stored += !in->reqs[i].err;
  if (stored) {
    if (s_store_range(in, 0, in->nreqs)) {
      /* Retry one by one, so one report the database refuses does not
       * refuse its neighbours. */
      for (int i = 0; i < in->nreqs; i++) {
        if (in->reqs[i].err) continue;
        if (s_store_range(in, i, i + 1)) in->reqs[i].err = WH_EDB;
      }
    }
  }
  for (int i = 0; i < in->nreqs; i++) {
    s_req_t *r = &in->reqs[i];
    if (!r->err || r->err == WH_EDB) s_reply(in, r, r->err ? "could not store the report; send it again" : NULL);
    if (!r->err && !r->duplicate) wh_debug("stored %s as %s", r->env->submit->external_id, r->ticket_id);
    zmq_msg_close(&r->peer);
  }
  in->nreqs = 0;
  wh_arena_reset(in->arena);
}

/* The round's reports, stored after the loop's poll phase: every socket
 * that had input has been read by then (the relay's acknowledgements
 * among them), and no query runs inside a receive callback. */
static void s_on_store(uv_check_t *h) {
  uv_check_stop(h);
  if (h->data) s_flush(h->data);
}

static void s_free_handle(uv_handle_t *h) { free(h); }

static void s_on_front(wh_bus_t *bus, void *arg) {
  s_intake_t *in = arg;
  zmq_msg_t head, body;
  int64_t now = wh_clock_now_ms();
  if (uv_is_active((uv_handle_t *)in->store)) return; /* the last round waits to be stored */
  /* Every frame counts, refused ones too: a flood of garbage is taken a
   * round at a time, with the relay's answers and the timers between. */
  for (int frames = 0;
       frames < WH_BUS_ROUND && in->nreqs < INTAKE_BATCH && wh_bus_recv(bus, &head, &body) == 1;
       frames++) {
    Whistle__Envelope *env;
    int rc = wh_env_unpack_in(in->arena, zmq_msg_data(&body), zmq_msg_size(&body), &env);
    zmq_msg_close(&body);
    if (rc == 0 && env->body_case != WHISTLE__ENVELOPE__BODY_SUBMIT) rc = WH_EUNEXPECTED;
    if (rc) {
      wh_warn("refused a frame: %s", wh_strerror(rc));
      wh_reply_error(bus, &head, rc, NULL);
      zmq_msg_close(&head);
      continue;
    }
    s_req_t *r = &in->reqs[in->nreqs++];
    memset(r, 0, sizeof *r);
    zmq_msg_init(&r->peer);
    zmq_msg_move(&r->peer, &head);
    zmq_msg_close(&head);
    r->env = env;
    char detail[256];
    r->err = intake_validate(in->rules, env->submit, now, detail, sizeof detail);
    /* The trace id rides on every message the report causes, and into each
     * service's row: an id, not a text. */
    if (!r->err && env->trace_id[0] && (r->err = wh_code_check(env->trace_id, INTAKE_MAX_TRACE)))
      snprintf(detail, sizeof detail, "trace_id: %s", wh_strerror(r->err));
    if (r->err) {
      wh_info("refused report %.64s: %s", env->submit->external_id, detail);
      s_reply(in, r, detail);
    }
  }
  if (in->nreqs) uv_check_start(in->store, s_on_store);
  else wh_arena_reset(in->arena);
}

/* ---- reporters' numbers, for notify alone ------------------------------ */

static const wh_stmt_t s_numbers = {
    "intake_numbers",
    "SELECT t.ticket_id, t.reporter_phone FROM unnest($1::text[]) WITH ORDINALITY AS u(id, i)"
    " JOIN ticket t ON t.ticket_id = u.id ORDER BY u.i"}; /* in the request's order */

static void s_contact_reply(s_intake_t *in, zmq_msg_t *route, const char *mid,
                            Whistle__ContactReply *rep) {
  Whistle__Envelope out = WHISTLE__ENVELOPE__INIT;
  out.message_id = (char *)mid;
  out.sender = "intake";
  out.body_case = WHISTLE__ENVELOPE__BODY_CONTACT_REPLY;
  out.contact_reply = rep;
  wh_reply(in->contacts, route, &out);
}

static void s_contact_refuse(s_intake_t *in, zmq_msg_t *route, const char *mid, int err,
                             const char *text) {
  Whistle__ContactReply rep = WHISTLE__CONTACT_REPLY__INIT;
  Whistle__Error e = WHISTLE__ERROR__INIT;
  e.code = wh_err_to_wire(err);
  e.text = (char *)text;
  rep.error = &e;
  s_contact_reply(in, route, mid, &rep);
}

/* Answers one request: the numbers of its tickets, read from the store.
 * Only notify's key is answered; nothing about a number is logged. */
static void s_contact_answer(s_intake_t *in, zmq_msg_t *route, zmq_msg_t *body) {
  const char *who = wh_peer(body);
  Whistle__Envelope *env = NULL;
  int rc = wh_env_unpack(zmq_msg_data(body), zmq_msg_size(body), &env);
  const char *mid = rc ? "" : env->message_id;
  if (rc) {
    s_contact_refuse(in, route, mid, rc, wh_strerror(rc));
  } else if (!who || strcmp(who, "notify")) {
    wh_warn("a request for reporters' numbers from %s refused: notify's key only",
            who ? who : "(no key)");
    s_contact_refuse(in, route, mid, WH_EFORBIDDEN, "reporters' numbers are notify's to ask");
  } else if (env->body_case != WHISTLE__ENVELOPE__BODY_CONTACT || !env->contact ||
             env->contact->n_ticket_ids > CONTACT_MAX) {
    s_contact_refuse(in, route, mid, WH_EUNEXPECTED, "a contact request of at most 4096 tickets");
  } else {
    const Whistle__ContactRequest *q = env->contact;
    int bad = 0;
    for (size_t i = 0; i < q->n_ticket_ids; i++) bad |= wh_code_check(q->ticket_ids[i], 64) != 0;
    char *arr = NULL;
    size_t cap = 8 + q->n_ticket_ids * 132;
    if (bad || !(arr = malloc(cap)) || wh_pg_text_array(q->ticket_ids, q->n_ticket_ids, arr, cap)) {
      s_contact_refuse(in, route, mid, WH_EFIELD, "ticket_ids: ticket ids");
    } else {
      const char *v[1] = {arr};
      PGresult *r = wh_pg_ready(in->svc->pg) ? NULL : wh_pg_run(in->svc->pg, &s_numbers, 1, v, NULL, NULL);
      if (!r) {
        s_contact_refuse(in, route, mid, WH_EDB, "intake's store is unavailable; ask again");
      } else {
        int n = PQntuples(r);
        Whistle__Contact *c = calloc((size_t)n + 1, sizeof *c);
        Whistle__Contact **cp = calloc((size_t)n + 1, sizeof *cp);
        Whistle__ContactReply rep = WHISTLE__CONTACT_REPLY__INIT;
        for (int i = 0; c && cp && i < n; i++) {
          whistle__contact__init(&c[i]);
          c[i].ticket_id = PQgetvalue(r, i, 0);
          c[i].phone = PQgetvalue(r, i, 1);
          cp[rep.n_contacts++] = &c[i];
        }
        rep.contacts = cp;
        if (c && cp) s_contact_reply(in, route, mid, &rep);
        else s_contact_refuse(in, route, mid, WH_ENOMEM, wh_strerror(WH_ENOMEM));
        free(c);
        free(cp);
        PQclear(r);
      }
    }
    free(arr);
  }
  if (env) wh_env_free(env);
}

static void s_on_contact_idle(uv_idle_t *h) {
  s_intake_t *in = h->data;
  for (int i = 0; i < in->ncq; i++) {
    s_contact_answer(in, &in->cq_route[i], &in->cq_body[i]);
    zmq_msg_close(&in->cq_route[i]);
    zmq_msg_close(&in->cq_body[i]);
  }
  in->ncq = 0;
  uv_idle_stop(h);
}

/* Requests are taken here and answered from the idle phase, never inside
 * the receive callback; a full queue waits for it. */
static void s_on_contacts(wh_bus_t *bus, void *arg) {
  s_intake_t *in = arg;
  while (in->ncq < CONTACT_QUEUE &&
         wh_bus_recv(bus, &in->cq_route[in->ncq], &in->cq_body[in->ncq]) == 1)
    in->ncq++;
  if (in->ncq && !uv_is_active((uv_handle_t *)in->contact_idle))
    uv_idle_start(in->contact_idle, s_on_contact_idle);
}

static void s_reload(wh_service_t *svc) {
  s_intake_t *in = svc->data;
  char path[512], err[512];
  wh_service_conf_path(svc, "rules.conf", path, sizeof path);
  wh_rules_t *rules = wh_rules_load(path, NULL, err, sizeof err);
  if (!rules) {
    wh_error("reload refused, keeping the rules in force: %s", err);
    return;
  }
  wh_rules_destroy(&in->rules);
  in->rules = rules;
  wh_info("rules reloaded");
}

static void s_stop(wh_service_t *svc) {
  s_intake_t *in = svc->data;
  if (in->store) {
    in->store->data = NULL;
    uv_close((uv_handle_t *)in->store, s_free_handle);
  }
  /* Reports read and not stored are not answered: their pushers send them again. */
  for (int i = 0; i < in->nreqs; i++) zmq_msg_close(&in->reqs[i].peer);
  wh_bus_destroy(&in->front);
  wh_bus_destroy(&in->contacts);
  for (int i = 0; i < in->ncq; i++) {
    zmq_msg_close(&in->cq_route[i]);
    zmq_msg_close(&in->cq_body[i]);
  }
  if (in->contact_idle) {
    uv_idle_stop(in->contact_idle);
    uv_close((uv_handle_t *)in->contact_idle, s_free_handle);
  }
  wh_relay_destroy(&in->relay);
  wh_rules_destroy(&in->rules);
  wh_rows_free(&in->rows);
  wh_rows_free(&in->crows);
  wh_arena_destroy(&in->arena);
  free(in);
  svc->data = NULL;
}

int intake_start(wh_service_t *svc) {
  if (!svc->peer) {
    wh_error("--peer (triage's endpoint) is required");
    return WH_EINVAL;
  }
  s_intake_t *in = calloc(1, sizeof *in);
  if (!in) return WH_ENOMEM;
  in->svc = svc;
  svc->data = in;
  svc->on_reload = s_reload;
  svc->on_stop = s_stop;
  wh_rows_init_record(&in->rows, 17, "ticket_row");
  wh_rows_init_record(&in->crows, 17, "ticket_row");
  if (!(in->store = malloc(sizeof *in->store))) return WH_ENOMEM;
  uv_check_init(svc->loop, in->store);
  in->store->data = in;
  if (!(in->arena = wh_arena_new())) return WH_ENOMEM;
  char path[512], err[512];
  wh_service_conf_path(svc, "rules.conf", path, sizeof path);
  in->rules = wh_rules_load(path, NULL, err, sizeof err);
  if (!in->rules) {
    wh_error("%s", err);
    return WH_ECONFIG;
  }
  in->relay = wh_relay_new(svc->loop, svc->zctx, svc->outbox, svc->keys, "triage", svc->peer);
  in->builder = (wh_builder_t){.sender = "intake", .st = &s_built_rows, .build = s_build, .arg = in};
  if (in->relay) wh_relay_builder(in->relay, &in->builder);
  in->front = wh_bus_new(svc->loop, svc->zctx, ZMQ_ROUTER, svc->listen, 1, svc->keys, NULL, s_on_front, in);
  if (!in->relay || !in->front) return WH_EZMQ;
  wh_outbox_throttle(svc->outbox, in->front);
  if (svc->contacts_ep) {
    in->contact_idle = malloc(sizeof *in->contact_idle);
    if (!in->contact_idle) return WH_ENOMEM;
    uv_idle_init(svc->loop, in->contact_idle);
    in->contact_idle->data = in;
    in->contacts = wh_bus_new(svc->loop, svc->zctx, ZMQ_ROUTER, svc->contacts_ep, 1, svc->keys,
                              NULL, s_on_contacts, in);
    if (!in->contacts) return WH_EZMQ;
  }
  wh_info("front door on %s, passing reports to %s", svc->listen, svc->peer);
  return 0;
}
