/* whistle-bench - the load generator behind `make bench`.
 *
 * It speaks intake's real protocol (SubmitTicket envelopes to intake's ROUTER)
 * and subscribes to every party's feed on notify's PUB socket. Tickets are
 * generated from a seed, so two runs send the same ones: every category of
 * the rules and, one in four, a call without a category that opens with a
 * resident's own words (--texts FILE, one a line: the catalogue places it)
 * or a keyword rule's keyword, eight
 * communities with thousands of grids, Chinese text of 100-600 bytes, care
 * tags, and about one in a hundred a deliberate repeat of a recent report.
 *
 *   1. throughput: --count tickets as fast as intake answers, at most --window
 *      unanswered; tickets per second from the first submit to the last
 *      arrival on a lead's feed.
 *   2. latency: --rate tickets per second for --seconds; submit to arrival
 *      on the lead's feed, p50 / p99 / p99.9 / max.
 *   3. durable check: every party's feed is replayed from notify's store;
 *      each accepted ticket must be on its lead's feed exactly once (lost,
 *      duplicated), and no (party, ticket, version) may appear twice.
 *   4. cost: CPU seconds per 1,000 tickets of each service, of PostgreSQL
 *      (the postmaster and all its children) and of the load generator
 *      itself over the throughput phase, whose reports it packs before;
 *      each service's RSS after 10,000 tickets, at the end, and its peak.
 *   5. with --disk DIR, after the latency phase: the disk's own flush
 *      latency beside the cluster, a tail no commit on it can beat.
 *   6. with --desk EP and --loop N: N of the orders taken through their life
 *      at dispatch's desk, each party with its own key (sign, progress and
 *      resolve by the lead, feedback "satisfied" by the hotline), at most
 *      LOOP_WINDOW orders at a time: orders closed per second, the round
 *      trip of an action (p50, p99), and each service's CPU per 1,000
 *      actions.
 *
 * Prints a table, then one JSON object as its last line. */
#include "wh_clock.h"
#include "wh_codec.h"
#include "wh_keys.h"
#include "wh_org.h"
#include "wh_rules.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define MAX_PROCS 8
#define STALL_NS (60LL * 1000000000LL) /* no arrival for this long: stop waiting */

typedef struct {
  char name[16];
  int pid;
  int is_pg; /* the postmaster: count it and every child */
  int is_self; /* the load generator itself: its CPU, beside what it measures */
  long cpu_start, cpu_end; /* clock ticks */
  long rss_10k, rss_end, hwm;
} s_proc_t;

typedef struct {
  /* options */
  const char *intake, *feed, *notify, *conf;
  const char *keys; /* the stack's key directory; NULL: plain sockets */
  const char *desk; /* dispatch's desk, for the loop phase */
  long loop;        /* orders the loop phase closes */
  /* each arrived order's lead, as an index into parties (0: none yet) */
  uint8_t *lead_of;
  size_t nlead_of;
  char parties[256][96];
  int nparties;
  long count, rate, seconds, window;
  char latency_start[40]; /* when the latency phase began, as PostgreSQL logs time */
  uint64_t seed;
  double ceiling;
  /* configuration the tickets are drawn from */
  wh_org_t *org;
  wh_rules_t *rules;
  /* what an uncategorized call opens with: the --texts lines (owned), then
   * one keyword per keyword rule */
  const char **keywords;
  size_t nkeywords;
  char **texts;
  size_t ntexts;
  const char *texts_path;
  /* sockets */
  void *ctx, *front, *sub;
  /* per ticket, by submit index */
  long total;
  int64_t *submit_ns;
  int64_t *submit_ms; /* wall clock, to compare with the services' stamps */
  int32_t *tno;     /* ticket number intake gave (WH + 8 digits), 0 = none yet */
  uint8_t *state;   /* 0 not sent, 1 sent, 2 accepted, 3 refused */
  /* by ticket number */
  int64_t *arrive_ns;
  int64_t (*hops)[3]; /* wall ms: dispatch applied, notify applied, arrived */
  size_t narrive;
  long accepted, refused, duplicates, arrived, live_repeats, resent;
  /* tickets intake could not store, to send again after a pause */
  long *retry_idx;
  int64_t *retry_at;
  size_t nretry, capretry;
  int64_t last_arrival_ns;
  s_proc_t procs[MAX_PROCS];
  int nprocs;
  int rss_10k_taken;
  /* the throughput phase's submits, packed before it starts: what is
   * measured is whistle, not the load generator making reports */
  long pre_from, pre_to;
  uint8_t *pre;
  size_t *pre_off; /* ticket pre_from + i is pre[pre_off[i] .. pre_off[i + 1]) */
  /* replies and live feed items are unpacked here, and it is emptied every
   * 256 of them: the load generator shares the machine's two cores with
   * what it measures */
  wh_arena_t *arena;
  int arena_used;
} s_bench_t;

static int64_t s_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static uint64_t s_mix(uint64_t *x) { /* splitmix64 */
  uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* ---- processes: CPU and memory from /proc ----------------------------- */

static long s_proc_cpu_one(int pid, int *ppid) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  char *p = strrchr(buf, ')'); /* the command name may hold spaces */
  if (!p) return -1;
  char state;
  int pp;
  unsigned long ut, st;
  if (sscanf(p + 2, "%c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &state, &pp, &ut,
             &st) != 4)
    return -1;
  if (ppid) *ppid = pp;
  return (long)(ut + st);
}

static long s_proc_cpu(const s_proc_t *p) {
  long total = s_proc_cpu_one(p->pid, NULL);
  if (!p->is_pg || total < 0) return total;
  DIR *d = opendir("/proc");
  if (!d) return total;
  struct dirent *e;
  while ((e = readdir(d))) {
    int pid = atoi(e->d_name), pp = 0;
    if (pid <= 0) continue;
    long c = s_proc_cpu_one(pid, &pp);
    if (c > 0 && pp == p->pid) total += c;
  }
  closedir(d);
  return total;
}

static long s_proc_status(int pid, const char *field) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  long v = -1;
  size_t flen = strlen(field);
  while (fgets(line, sizeof line, f))
    if (!strncmp(line, field, flen) && line[flen] == ':') {
      v = strtol(line + flen + 1, NULL, 10);
      break;
    }
  fclose(f);
  return v;
}

static void s_sample_cpu(s_bench_t *b, int end) {
  for (int i = 0; i < b->nprocs; i++) {
    long c = s_proc_cpu(&b->procs[i]);
    if (end) b->procs[i].cpu_end = c;
    else b->procs[i].cpu_start = c;
  }
}

/* The machine's CPU time so far (jiffies): all of it, and the part a
 * hypervisor gave to other guests (steal). On a shared virtual machine a
 * phase's figures mean little when much of its time was stolen. */
static void s_machine_cpu(long long *total, long long *steal) {
  long long v[8] = {0};
  FILE *f = fopen("/proc/stat", "r");
  *total = *steal = 0;
  if (!f) return;
  if (fscanf(f, "cpu %lld %lld %lld %lld %lld %lld %lld %lld", &v[0], &v[1], &v[2], &v[3], &v[4],
             &v[5], &v[6], &v[7]) == 8) {
    for (int i = 0; i < 8; i++) *total += v[i];
    *steal = v[7];
  }
  fclose(f);
}

/* "; 12% of the machine's CPU time was stolen" for the span since
 * (total0, steal0), or "" when there was none to speak of. */
static const char *s_stolen(long long total0, long long steal0, char *buf, size_t len) {
  long long total, steal;
  s_machine_cpu(&total, &steal);
  buf[0] = '\0';
  if (total > total0 && steal - steal0 > (total - total0) / 100)
    snprintf(buf, len, " (%.0f%% of the machine's CPU time stolen by the hypervisor)",
             100.0 * (double)(steal - steal0) / (double)(total - total0));
  return buf;
}

static void s_sample_rss(s_bench_t *b, int at_10k) {
  for (int i = 0; i < b->nprocs; i++) {
    s_proc_t *p = &b->procs[i];
    if (p->is_pg || p->is_self) continue;
    long rss = s_proc_status(p->pid, "VmRSS");
    if (at_10k) p->rss_10k = rss;
    else p->rss_end = rss;
    p->hwm = s_proc_status(p->pid, "VmHWM");
  }
}

/* ---- tickets ------------------------------------------------------------ */

static const char *s_phrases[] = {
    "您好，我是小区的居民，", "这个情况已经持续了好几天，", "每天早上上班的时候都能看到，",
    "家里有老人和小孩，出行很不方便，", "之前跟物业反映过，但是一直没有人来处理，",
    "希望有关部门尽快派人来看一下，", "晚上路过的时候特别明显，", "周围的邻居也都有意见，",
    "下雨天的时候情况更严重，", "麻烦你们帮忙协调一下，", "具体位置在单元门口往东大概二十米，",
    "我已经拍了照片，可以提供，", "上个月也出现过一次，后来好了一阵，", "附近有一所幼儿园，",
    "早晚高峰的时候人特别多，", "谢谢你们，辛苦了。", "请处理完以后给我回个电话。",
    "这个问题影响到整栋楼的住户，", "我们楼里住的大多是退休职工，", "周末的时候更厉害，",
};

typedef struct {
  int source;
  const char *category;   /* "" for a call without one */
  const char *keyword;    /* what one without a category opens with */
  const char *community;
  int grid;
  const char *care;
} s_attrs_t;

static void s_attrs(const s_bench_t *b, long idx, s_attrs_t *a) {
  uint64_t x = b->seed * 0x9E3779B97F4A7C15ull ^ (uint64_t)idx * 0xD1B54A32D192ED03ull;
  static const int sources[] = {1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 4, 4, 5, 5, 5, 6};
  a->source = sources[s_mix(&x) % 20];
  if (s_mix(&x) % 4 == 0 && b->nkeywords) {
    a->category = "";
    a->keyword = b->keywords[s_mix(&x) % b->nkeywords];
  } else {
    a->category = b->rules->categories[s_mix(&x) % b->rules->ncategories].code;
    a->keyword = NULL;
  }
  a->community = b->org->communities[s_mix(&x) % b->org->ncommunities].code;
  a->grid = 1 + (int)(s_mix(&x) % 5000);
  a->care = s_mix(&x) % 20 == 0 && b->rules->ncare ? b->rules->care[s_mix(&x) % b->rules->ncare].tag
                                                   : NULL;
}

/* Packs the submit envelope of ticket idx into buf; returns its length. */
static size_t s_ticket(const s_bench_t *b, long idx, uint8_t *buf, size_t cap) {
  uint64_t x = b->seed ^ ((uint64_t)idx << 20) ^ 0x5DEECE66Dull;
  s_attrs_t a;
  s_attrs(b, idx, &a);
  if (idx >= 100 && s_mix(&x) % 100 == 0) {
    /* A repeat: the same kind of issue in the same grid as a recent report. */
    s_attrs_t first;
    s_attrs(b, idx - 1 - (long)(s_mix(&x) % 100), &first);
    a.category = first.category;
    a.keyword = first.keyword;
    a.community = first.community;
    a.grid = first.grid;
  }
  char text[700], grid[32], address[96], ext[48], mid[24], phone[16];
  size_t want = 100 + s_mix(&x) % 501, o = 0;
  if (a.keyword) o = (size_t)snprintf(text, sizeof text, "%s，", a.keyword);
  while (o < want) {
    const char *p = s_phrases[s_mix(&x) % (sizeof s_phrases / sizeof *s_phrases)];
    size_t l = strlen(p);
    if (o + l >= sizeof text) break;
    memcpy(text + o, p, l);
    o += l;
  }
  text[o] = '\0';
  snprintf(grid, sizeof grid, "第%d网格", a.grid);
  snprintf(address, sizeof address, "%s第%d网格%d号楼%d室", a.community, a.grid,
           1 + (int)(s_mix(&x) % 40), 101 + (int)(s_mix(&x) % 1800));
  snprintf(ext, sizeof ext, "bench-%" PRIx64 "-%ld", b->seed, idx);
  snprintf(mid, sizeof mid, "%ld", idx);
  snprintf(phone, sizeof phone, "139%08d", (int)(s_mix(&x) % 100000000));

  Whistle__Reporter rep = WHISTLE__REPORTER__INIT;
  rep.name = "居民";
  rep.phone = phone;
  Whistle__SubmitTicket t = WHISTLE__SUBMIT_TICKET__INIT;
  t.source = a.source;
  t.external_id = ext;
  t.received_at_ms = wh_clock_now_ms();
  t.community = (char *)a.community;
  t.grid = grid;
  t.address = address;
  t.category = (char *)a.category;
  t.text = text;
  t.reporter = &rep;
  char *care[1] = {(char *)a.care};
  if (a.care) {
    t.care_tags = care;
    t.n_care_tags = 1;
  }
  Whistle__Envelope env = WHISTLE__ENVELOPE__INIT;
  env.message_id = mid;
  env.body_case = WHISTLE__ENVELOPE__BODY_SUBMIT;
  env.submit = &t;
  if (whistle__envelope__get_packed_size(&env) > cap) return 0;
  return whistle__envelope__pack(&env, buf);
}

#define TICKET_MAX 4096

/* Packs ticket idx into buf (TICKET_MAX bytes); returns its length. */
static size_t s_pack(const s_bench_t *b, long idx, uint8_t *buf) {
  size_t len = s_ticket(b, idx, buf, TICKET_MAX);
  if (!len) {
    fprintf(stderr, "whistle-bench: ticket %ld does not fit\n", idx);
    exit(2);
  }
  return len;
}

/* Packs tickets [from, to) into one buffer, each as s_send would. */
static void s_pregenerate(s_bench_t *b, long from, long to) {
  size_t cap = (size_t)(to - from) * 1200 + TICKET_MAX, used = 0;
  b->pre = malloc(cap);
  b->pre_off = malloc((size_t)(to - from + 1) * sizeof *b->pre_off);
  if (!b->pre || !b->pre_off) exit(3);
  for (long i = from; i < to; i++) {
    if (cap - used < TICKET_MAX) {
      cap *= 2;
      if (!(b->pre = realloc(b->pre, cap))) exit(3);
    }
    b->pre_off[i - from] = used;
    used += s_pack(b, i, b->pre + used);
  }
  b->pre_off[to - from] = used;
  b->pre_from = from;
  b->pre_to = to;
}

static int s_send(s_bench_t *b, long idx) {
  uint8_t buf[TICKET_MAX];
  int rc;
  if (idx >= b->pre_from && idx < b->pre_to) {
    /* zero copy: the packed tickets outlive every message made of them */
    zmq_msg_t m;
    size_t off = b->pre_off[idx - b->pre_from], len = b->pre_off[idx - b->pre_from + 1] - off;
    zmq_msg_init_data(&m, b->pre + off, len, NULL, NULL);
    if ((rc = zmq_msg_send(&m, b->front, ZMQ_DONTWAIT)) < 0) zmq_msg_close(&m);
  } else {
    rc = zmq_send(b->front, buf, s_pack(b, idx, buf), ZMQ_DONTWAIT);
  }
  if (rc < 0) return -1;
  if (b->state[idx] == 0) {
    b->submit_ns[idx] = s_now_ns();
    b->submit_ms[idx] = wh_clock_now_ms();
  }
  b->state[idx] = 1;
  return 0;
}

/* ---- what comes back ----------------------------------------------------- */

/* One message's unpacking is done with: every 256, the arena is emptied. */
static void s_arena_turn(s_bench_t *b) {
  if (++b->arena_used == 256) {
    wh_arena_reset(b->arena);
    b->arena_used = 0;
  }
}

static int32_t s_ticket_no(const char *id) {
  if (strncmp(id, "WH", 2)) return 0;
  return (int32_t)strtol(id + 2, NULL, 10);
}

static void s_on_reply(s_bench_t *b) {
  zmq_msg_t m;
  zmq_msg_init(&m);
  while (zmq_msg_recv(&m, b->front, ZMQ_DONTWAIT) >= 0) {
    Whistle__Envelope *env;
    if (wh_env_unpack_in(b->arena, zmq_msg_data(&m), zmq_msg_size(&m), &env) == 0) {
      long idx = strtol(env->message_id, NULL, 10);
      if (env->body_case == WHISTLE__ENVELOPE__BODY_SUBMIT_REPLY && idx >= 0 && idx < b->total &&
          b->state[idx] == 1) {
        Whistle__SubmitReply *r = env->submit_reply;
        if (r->error && r->error->code == WHISTLE__ERROR_CODE__ERR_INTERNAL) {
          /* Not stored (its database is away): send it again after a pause,
           * as a channel would, rather than at once. */
          if (b->nretry == b->capretry) {
            b->capretry = b->capretry ? b->capretry * 2 : 1024;
            b->retry_idx = realloc(b->retry_idx, b->capretry * sizeof *b->retry_idx);
            b->retry_at = realloc(b->retry_at, b->capretry * sizeof *b->retry_at);
            if (!b->retry_idx || !b->retry_at) exit(3);
          }
          b->retry_idx[b->nretry] = idx;
          b->retry_at[b->nretry++] = s_now_ns() + 200000000LL;
          b->resent++;
        } else if (r->error) {
          fprintf(stderr, "whistle-bench: ticket %ld refused: %s\n", idx, r->error->text);
          b->state[idx] = 3;
          b->refused++;
        } else {
          if (r->duplicate) b->duplicates++; /* seen before: nothing new will arrive */
          b->tno[idx] = s_ticket_no(r->ticket_id);
          b->state[idx] = 2;
          b->accepted++;
        }
      } else if (env->body_case == WHISTLE__ENVELOPE__BODY_ERROR) {
        fprintf(stderr, "whistle-bench: intake: %s\n", env->error->text);
      }
    }
    s_arena_turn(b);
    zmq_msg_close(&m);
    zmq_msg_init(&m);
  }
  zmq_msg_close(&m);
}

/* Live feed items are unpacked into the arena (s_arena_turn). */
/* Keeps order no's lead (the party whose lead item it is), for the loop. */
static void s_note_lead(s_bench_t *b, int32_t no, const char *party) {
  if (!b->nparties) b->nparties = 1; /* 0 is "none" */
  int k = 1;
  while (k < b->nparties && strcmp(b->parties[k], party)) k++;
  if (k == b->nparties) {
    if (b->nparties == 256 || strlen(party) >= sizeof b->parties[0]) return;
    k = b->nparties++;
    snprintf(b->parties[k], sizeof b->parties[k], "%s", party);
  }
  if ((size_t)no >= b->nlead_of) {
    size_t n = b->nlead_of ? b->nlead_of : 1024;
    while (n <= (size_t)no) n *= 2;
    uint8_t *l = realloc(b->lead_of, n);
    if (!l) exit(3);
    memset(l + b->nlead_of, 0, n - b->nlead_of);
    b->lead_of = l;
    b->nlead_of = n;
  }
  b->lead_of[no] = (uint8_t)k;
}

static void s_on_feed(s_bench_t *b) {
  zmq_msg_t topic, m;
  zmq_msg_init(&topic);
  zmq_msg_init(&m);
  while (zmq_msg_recv(&topic, b->sub, ZMQ_DONTWAIT) >= 0) {
    if (!zmq_msg_more(&topic) || zmq_msg_recv(&m, b->sub, ZMQ_DONTWAIT) < 0) continue;
    int64_t now = s_now_ns();
    Whistle__Envelope *env;
    if (wh_env_unpack_in(b->arena, zmq_msg_data(&m), zmq_msg_size(&m), &env) == 0) {
      Whistle__FeedItem *it = env->body_case == WHISTLE__ENVELOPE__BODY_FEED ? env->feed : NULL;
      if (it && !strcmp(it->role, "lead") &&
          (it->kind == WHISTLE__WORK_EVENT_KIND__WORK_DISPATCHED ||
           it->kind == WHISTLE__WORK_EVENT_KIND__WORK_MERGED)) {
        int32_t no = s_ticket_no(it->ticket_id);
        if (no > 0) {
          if ((size_t)no >= b->narrive) {
            size_t n = b->narrive ? b->narrive : 1024;
            while (n <= (size_t)no) n *= 2;
            int64_t *a = realloc(b->arrive_ns, n * sizeof *a);
            int64_t(*h)[3] = realloc(b->hops, n * sizeof *h);
            if (!a || !h) exit(3);
            memset(a + b->narrive, 0, (n - b->narrive) * sizeof *a);
            memset(h + b->narrive, 0, (n - b->narrive) * sizeof *h);
            b->arrive_ns = a;
            b->hops = h;
            b->narrive = n;
          }
          if (it->kind == WHISTLE__WORK_EVENT_KIND__WORK_DISPATCHED) s_note_lead(b, no, it->party);
          if (b->arrive_ns[no]) {
            b->live_repeats++;
          } else {
            b->arrive_ns[no] = now;
            b->hops[no][0] = it->event ? it->event->at_ms : 0;
            b->hops[no][1] = it->at_ms;
            b->hops[no][2] = wh_clock_now_ms();
            b->arrived++;
            b->last_arrival_ns = now;
          }
        }
      }
    }
    s_arena_turn(b);
    zmq_msg_close(&m);
    zmq_msg_init(&m);
  }
  zmq_msg_close(&topic);
  zmq_msg_close(&m);
  if (!b->rss_10k_taken && b->arrived >= 10000) {
    s_sample_rss(b, 1);
    b->rss_10k_taken = 1;
  }
}

static void s_resend_due(s_bench_t *b) {
  int64_t now = s_now_ns();
  size_t keep = 0;
  for (size_t i = 0; i < b->nretry; i++) {
    if (b->retry_at[i] <= now && s_send(b, b->retry_idx[i]) == 0) continue;
    b->retry_idx[keep] = b->retry_idx[i];
    b->retry_at[keep++] = b->retry_at[i];
  }
  b->nretry = keep;
}

static void s_poll(s_bench_t *b, long timeout_ms) {
  if (b->nretry) {
    s_resend_due(b);
    if (timeout_ms > 50) timeout_ms = 50;
  }
  zmq_pollitem_t pi[2] = {{b->front, 0, ZMQ_POLLIN, 0}, {b->sub, 0, ZMQ_POLLIN, 0}};
  if (zmq_poll(pi, 2, timeout_ms) <= 0) return;
  if (pi[0].revents & ZMQ_POLLIN) s_on_reply(b);
  if (pi[1].revents & ZMQ_POLLIN) s_on_feed(b);
}

/* Waits until every accepted ticket has arrived, or nothing arrived for a
 * while. Returns the number still missing on the live feeds. */
static long s_settle(s_bench_t *b, long upto) {
  int64_t last = s_now_ns();
  long seen = b->arrived;
  for (;;) {
    long open = 0;
    for (long i = 0; i < upto; i++) open += b->state[i] == 1;
    if (!open && b->arrived >= b->accepted) return 0;
    s_poll(b, 100);
    if (b->arrived != seen) {
      seen = b->arrived;
      last = s_now_ns();
    } else if (s_now_ns() - last > STALL_NS) {
      return b->accepted - b->arrived;
    }
  }
}

/* ---- the phases ---------------------------------------------------------- */

typedef struct {
  long tickets;
  double seconds, per_s;
  double p50, p99, p999, max;
  long missing;
} s_result_t;

static void s_throughput(s_bench_t *b, long from, long to, s_result_t *r) {
  s_pregenerate(b, from, to);
  s_sample_cpu(b, 0);
  long base = b->arrived;
  int64_t t0 = s_now_ns();
  long next = from, answered0 = b->accepted + b->refused;
  while (next < to) {
    /* outstanding: sent and not yet answered */
    long outstanding = (next - from) - (b->accepted + b->refused - answered0);
    while (outstanding < b->window && next < to) {
      if (s_send(b, next)) break;
      next++;
      outstanding++;
    }
    s_poll(b, 10);
  }
  r->missing = s_settle(b, to);
  s_sample_cpu(b, 1);
  s_sample_rss(b, 0);
  r->tickets = b->arrived - base;
  r->seconds = (double)(b->last_arrival_ns - t0) / 1e9;
  r->per_s = r->seconds > 0 ? (double)r->tickets / r->seconds : 0;
}

static int s_cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

/* Fills cpu[*sampled + 1 .. upto] with the machine's CPU time now: the
 * seconds of a schedule that have begun since the last call. */
static void s_cpu_upto(long long (*cpu)[2], long *sampled, long upto) {
  while (cpu && *sampled < upto) {
    ++*sampled;
    s_machine_cpu(&cpu[*sampled][0], &cpu[*sampled][1]);
  }
}

static void s_latency(s_bench_t *b, long from, long to, s_result_t *r) {
  int64_t t0 = s_now_ns(), gap = 1000000000LL / b->rate;
  time_t began = time(NULL);
  struct tm tm;
  strftime(b->latency_start, sizeof b->latency_start, "%H:%M:%S UTC", gmtime_r(&began, &tm));
  long next = from;
  /* The machine's CPU time at each second of the schedule, so each slow
   * second can say how much of it the hypervisor took. */
  long nsec = (to - from + b->rate - 1) / b->rate, sampled = -1;
  long long(*cpu)[2] = calloc((size_t)nsec + 1, sizeof *cpu);
  s_cpu_upto(cpu, &sampled, 0);
  while (next < to) {
    int64_t due = t0 + (next - from) * gap, now = s_now_ns();
    s_cpu_upto(cpu, &sampled, (next - from) / b->rate);
    if (now >= due) {
      if (s_send(b, next) == 0) next++;
      else s_poll(b, 1);
      continue;
    }
    s_poll(b, (due - now + 999999) / 1000000); /* round up: never spin */
  }
  s_cpu_upto(cpu, &sampled, nsec);
  r->missing = s_settle(b, to);
  int64_t *lat = malloc((size_t)(to - from) * sizeof *lat);
  long n = 0;
  for (long i = from; i < to; i++) {
    int32_t no = b->tno[i];
    if (b->state[i] == 2 && no > 0 && (size_t)no < b->narrive && b->arrive_ns[no])
      lat[n++] = b->arrive_ns[no] - b->submit_ns[i];
  }
  /* Where the time goes, by the services' own stamps (median of each hop):
   * submit -> dispatch applied -> notify applied -> on the feed here. */
  int64_t *hop[3];
  long nh = 0;
  for (int k = 0; k < 3; k++) hop[k] = malloc((size_t)(to - from) * sizeof **hop);
  for (long i = from; i < to && hop[0] && hop[1] && hop[2]; i++) {
    int32_t no = b->tno[i];
    if (b->state[i] != 2 || no <= 0 || (size_t)no >= b->narrive || !b->arrive_ns[no]) continue;
    hop[0][nh] = b->hops[no][0] - b->submit_ms[i];
    hop[1][nh] = b->hops[no][1] - b->hops[no][0];
    hop[2][nh] = b->hops[no][2] - b->hops[no][1];
    nh++;
  }
  if (nh) {
    for (int k = 0; k < 3; k++) qsort(hop[k], (size_t)nh, sizeof **hop, s_cmp_i64);
    printf("  median ms: submit to dispatch %" PRId64 ", dispatch to notify %" PRId64
           ", notify to the feed here %" PRId64 "\n",
           hop[0][nh / 2], hop[1][nh / 2], hop[2][nh / 2]);
  }
  for (int k = 0; k < 3; k++) free(hop[k]);
  /* BENCH_LATENCY_FILE: one line per ticket of the phase (wall ms at
   * submit, ms to arrival, then the three hops), to find which hop a slow
   * second came from. */
  const char *dump = getenv("BENCH_LATENCY_FILE");
  FILE *df = dump && *dump ? fopen(dump, "w") : NULL;
  for (long i = from; df && i < to; i++) {
    int32_t no = b->tno[i];
    if (b->state[i] != 2 || no <= 0 || (size_t)no >= b->narrive || !b->arrive_ns[no]) continue;
    fprintf(df, "%" PRId64 " %.2f %" PRId64 " %" PRId64 " %" PRId64 "\n", b->submit_ms[i],
            (double)(b->arrive_ns[no] - b->submit_ns[i]) / 1e6, b->hops[no][0] - b->submit_ms[i],
            b->hops[no][1] - b->hops[no][0], b->hops[no][2] - b->hops[no][1]);
  }
  if (df) fclose(df);
  /* When the tail happened: the slowest ticket of each second of the
   * phase, the worst three printed, so a stall can be matched with what the
   * database logged at that time, and with the machine's CPU time that the
   * hypervisor took in that second (from 1%). */
  int64_t *worst = calloc((size_t)nsec, sizeof *worst);
  for (long i = from; worst && i < to; i++) {
    int32_t no = b->tno[i];
    if (b->state[i] != 2 || no <= 0 || (size_t)no >= b->narrive || !b->arrive_ns[no]) continue;
    long sec = (i - from) / b->rate;
    int64_t l = b->arrive_ns[no] - b->submit_ns[i];
    if (l > worst[sec]) worst[sec] = l;
  }
  if (worst && nsec > 0) {
    printf("  slowest seconds (from the phase's start):");
    for (int k = 0; k < 3 && k < nsec; k++) {
      long at = 0;
      for (long sec = 1; sec < nsec; sec++)
        if (worst[sec] > worst[at]) at = sec;
      printf(" %lds %.1f ms", at, (double)worst[at] / 1e6);
      long long total = cpu ? cpu[at + 1][0] - cpu[at][0] : 0;
      long long steal = cpu ? cpu[at + 1][1] - cpu[at][1] : 0;
      if (total > 0 && steal * 100 >= total)
        printf(" (%.0f%% stolen)", 100.0 * (double)steal / (double)total);
      printf("%s", k < 2 && k + 1 < nsec ? "," : "");
      worst[at] = -1;
    }
    printf(" (phase began %s)\n", b->latency_start);
  }
  free(worst);
  free(cpu);
  qsort(lat, (size_t)n, sizeof *lat, s_cmp_i64);
  r->tickets = n;
  r->seconds = (double)(to - from) / (double)b->rate;
  r->per_s = (double)b->rate;
  if (n) {
    r->p50 = (double)lat[(n - 1) * 50 / 100] / 1e6;
    r->p99 = (double)lat[(n - 1) * 99 / 100] / 1e6;
    r->p999 = (double)lat[(n - 1) * 999 / 1000] / 1e6;
    r->max = (double)lat[n - 1] / 1e6;
  }
  free(lat);
}

/* ---- the disk's own latency ---------------------------------------------- */

#define DISK_PROBE_S 5

/* What one commit's flush costs on this disk without PostgreSQL: 8 KB
 * written and flushed (fdatasync) every 2 ms for DISK_PROBE_S seconds, in a
 * file in dir (the cluster's own file system) that is unlinked at once.
 * Fills ms with p50, p99, p99.9 and max; returns the number of flushes, or
 * -1 when dir cannot take the file. */
static long s_disk_probe(const char *dir, double ms[4]) {
  char path[4096];
  snprintf(path, sizeof path, "%s/whistle-bench-disk-probe", dir);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) return -1;
  unlink(path);
  static char block[8192];
  memset(block, 'w', sizeof block);
  size_t cap = DISK_PROBE_S * 1000, n = 0;
  int64_t *lat = malloc(cap * sizeof *lat);
  int64_t end = s_now_ns() + DISK_PROBE_S * 1000000000LL;
  off_t at = 0;
  while (lat && n < cap && s_now_ns() < end) {
    int64_t t = s_now_ns();
    if (pwrite(fd, block, sizeof block, at) != (ssize_t)sizeof block || fdatasync(fd)) break;
    lat[n++] = s_now_ns() - t;
    at = (at + (off_t)sizeof block) % (16 << 20);
    usleep(2000);
  }
  close(fd);
  if (!n) {
    free(lat);
    return -1;
  }
  qsort(lat, n, sizeof *lat, s_cmp_i64);
  ms[0] = (double)lat[(n - 1) * 50 / 100] / 1e6;
  ms[1] = (double)lat[(n - 1) * 99 / 100] / 1e6;
  ms[2] = (double)lat[(n - 1) * 999 / 1000] / 1e6;
  ms[3] = (double)lat[n - 1] / 1e6;
  free(lat);
  return (long)n;
}

/* ---- the durable check: replay every party's feed ------------------------ */

typedef struct {
  uint64_t *keys;
  size_t cap, n;
} s_set_t;

/* Returns 1 if the key was there, 0 if added, -1 out of memory. The table
 * starts at 2^20 slots and doubles at half full: a stack that kept its
 * feeds across runs holds millions of items. */
static int s_set_add(s_set_t *s, uint64_t key) {
  if (!key) key = 1;
  if (2 * (s->n + 1) > s->cap) {
    size_t cap = s->cap ? 2 * s->cap : 1u << 20;
    uint64_t *keys = calloc(cap, sizeof *keys);
    if (!keys) return -1;
    for (size_t j = 0; j < s->cap; j++) {
      if (!s->keys[j]) continue;
      size_t i = s->keys[j] & (cap - 1);
      while (keys[i]) i = (i + 1) & (cap - 1);
      keys[i] = s->keys[j];
    }
    free(s->keys);
    s->keys = keys;
    s->cap = cap;
  }
  for (size_t i = key & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
    if (s->keys[i] == key) return 1;
    if (!s->keys[i]) {
      s->keys[i] = key;
      s->n++;
      return 0;
    }
  }
}

static uint64_t s_fnv(const char *a, const char *b2, uint32_t v) {
  uint64_t h = 1469598103934665603ull;
  for (const char *p = a; *p; p++) h = (h ^ (uint8_t)*p) * 1099511628211ull;
  h = (h ^ 0xff) * 1099511628211ull;
  for (const char *p = b2; *p; p++) h = (h ^ (uint8_t)*p) * 1099511628211ull;
  return (h ^ v) * 1099511628211ull;
}

/* Replays one party's feed; counts lead items per ticket number. Returns
 * the items read, or -1 when notify did not answer. */
static long s_replay_party(void *sock, const char *party, uint16_t *lead_count,
                           size_t nlead, s_set_t *seen, long *dup_items) {
  uint64_t from = 1;
  long items = 0;
  for (;;) {
    Whistle__ReplayRequest q = WHISTLE__REPLAY_REQUEST__INIT;
    q.party = (char *)party;
    q.from_seq = from;
    q.max = 500;
    Whistle__Envelope env = WHISTLE__ENVELOPE__INIT;
    env.message_id = "replay";
    env.body_case = WHISTLE__ENVELOPE__BODY_REPLAY;
    env.replay = &q;
    uint8_t buf[512];
    size_t len = whistle__envelope__pack(&env, buf);
    if (zmq_send(sock, buf, len, 0) < 0) return -1;
    zmq_pollitem_t pi = {sock, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&pi, 1, 30000) <= 0) return -1;
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, sock, 0) < 0) return -1;
    Whistle__Envelope *rep;
    int rc = wh_env_unpack(zmq_msg_data(&m), zmq_msg_size(&m), &rep);
    zmq_msg_close(&m);
    if (rc || rep->body_case != WHISTLE__ENVELOPE__BODY_REPLAY_REPLY || rep->replay_reply->error) {
      fprintf(stderr, "whistle-bench: replay of %s: %s\n", party,
              rc ? "undecodable answer"
              : rep->body_case == WHISTLE__ENVELOPE__BODY_ERROR ? rep->error->text
              : rep->body_case == WHISTLE__ENVELOPE__BODY_REPLAY_REPLY && rep->replay_reply->error
                  ? rep->replay_reply->error->text
                  : "unexpected answer");
      wh_env_free(rep);
      return -1;
    }
    Whistle__ReplayReply *rr = rep->replay_reply;
    for (size_t i = 0; i < rr->n_items; i++) {
      Whistle__FeedItem *it = rr->items[i];
      items++;
      int again = s_set_add(seen, s_fnv(party, it->ticket_id, it->version));
      if (again < 0) {
        fprintf(stderr, "whistle-bench: replay of %s: out of memory\n", party);
        wh_env_free(rep);
        return -1;
      }
      if (again) (*dup_items)++;
      int32_t no = s_ticket_no(it->ticket_id);
      if (!strcmp(it->role, "lead") && no > 0 && (size_t)no < nlead &&
          (it->kind == WHISTLE__WORK_EVENT_KIND__WORK_DISPATCHED ||
           it->kind == WHISTLE__WORK_EVENT_KIND__WORK_MERGED))
        lead_count[no]++;
      from = it->seq + 1;
    }
    int done = rr->n_items == 0 || from > rr->head_seq;
    wh_env_free(rep);
    if (done) return items;
  }
}

/* Makes sock a CURVE client of server as the party `as`, when the stack has
 * keys: reports come as the hotline integrator's, feeds are read as the
 * center's, which may follow every one. Returns 0, or -1 having said why. */
static int s_secure(const s_bench_t *b, void *sock, const char *as, const char *server) {
  if (!b->keys) return 0;
  char secret[4096], pub[4096], err[8192];
  snprintf(secret, sizeof secret, "%s/%s.key", b->keys, as);
  snprintf(pub, sizeof pub, "%s/%s.pub", b->keys, server);
  if (!wh_keys_client_files(sock, secret, pub, err, sizeof err)) return 0;
  fprintf(stderr, "whistle-bench: %s\n", err);
  return -1;
}

static int s_durable_check(s_bench_t *b, long *lost, long *duplicated, long *items_out) {
  int32_t maxno = 0;
  for (long i = 0; i < b->total; i++)
    if (b->tno[i] > maxno) maxno = b->tno[i];
  size_t nlead = (size_t)maxno + 1;
  uint16_t *lead = calloc(nlead, sizeof *lead);
  s_set_t seen = {0}; /* allocated by its first s_set_add */
  void *sock = lead ? zmq_socket(b->ctx, ZMQ_DEALER) : NULL;
  int linger = 0;
  if (sock) zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
  if (!sock || s_secure(b, sock, "center", "notify") || zmq_connect(sock, b->notify)) {
    fprintf(stderr, "whistle-bench: cannot replay the feeds from %s: %s\n", b->notify,
            lead ? zmq_strerror(zmq_errno()) : "out of memory");
    if (sock) zmq_close(sock);
    free(lead);
    return -1;
  }
  long items = 0, dup_items = 0;
  char party[160];
  int rc = 0;
  /* Every party a feed can belong to: departments (the center among them)
   * and each community's own parties. */
  for (size_t i = 0; i < b->org->ndepartments && !rc; i++) {
    long n = s_replay_party(sock, b->org->departments[i].code, lead, nlead, &seen, &dup_items);
    if (n < 0) rc = -1;
    else items += n;
  }
  for (size_t c = 0; c < b->org->ncommunities && !rc; c++)
    for (char **k = b->org->communities[c].parties; k && *k && !rc; k++) {
      snprintf(party, sizeof party, "%s.%s", b->org->communities[c].code, *k);
      long n = s_replay_party(sock, party, lead, nlead, &seen, &dup_items);
      if (n < 0) rc = -1;
      else items += n;
    }
  zmq_close(sock);
  *lost = *duplicated = 0;
  for (long i = 0; i < b->total && !rc; i++) {
    if (b->state[i] == 1) (*lost)++; /* never answered */
    if (b->state[i] != 2) continue;
    int32_t no = b->tno[i];
    if (no <= 0 || lead[no] == 0) (*lost)++;
    else if (lead[no] > 1) *duplicated += lead[no] - 1;
  }
  *duplicated += dup_items;
  *items_out = items;
  free(lead);
  free(seen.keys);
  return rc;
}

/* ---- main ------------------------------------------------------------- */

/* A JSON number written with a fixed number of decimals. */
static json_object *s_num(double v, const char *fmt) {
  char buf[48];
  snprintf(buf, sizeof buf, fmt, v);
  return json_object_new_double_s(v, buf);
}


/* ---- 6. the loop at the desk ------------------------------------------ */

#define LOOP_WINDOW 32 /* orders with an action in flight at once */
#define LOOP_STEPS 4   /* sign, progress, resolve, feedback */

typedef struct {
  long orders, closed, actions, refused;
  double seconds, per_s, p50, p99;
  double cpu_per_1k[MAX_PROCS];
} s_loop_t;

typedef struct {
  int32_t no;
  int step;     /* the next action, 0..LOOP_STEPS (closed) */
  int64_t sent; /* ns, 0: none in flight */
} s_order_t;

/* The desk socket speaking as party (made once). */
static void *s_party_sock(s_bench_t *b, void **socks, int k, const char *party) {
  if (socks[k]) return socks[k];
  void *s = zmq_socket(b->ctx, ZMQ_DEALER);
  int linger = 0;
  zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
  if (s_secure(b, s, party, "dispatch") || zmq_connect(s, b->desk)) {
    zmq_close(s);
    return NULL;
  }
  return socks[k] = s;
}

static int s_loop_send(s_bench_t *b, void **socks, s_order_t *o) {
  static const char *const verbs[LOOP_STEPS] = {"sign", "progress", "resolve", "feedback"};
  int lead = b->lead_of[o->no];
  int k = o->step == 3 ? 0 : lead; /* socket 0: the hotline's */
  void *sock = s_party_sock(b, socks, k, k ? b->parties[k] : "hotline");
  if (!sock) return -1;
  char ticket[16], rid[48];
  snprintf(ticket, sizeof ticket, "WH%08d", o->no);
  snprintf(rid, sizeof rid, "bench-%d-%d", o->no, o->step);
  Whistle__DeskAction act = WHISTLE__DESK_ACTION__INIT;
  act.ticket_id = ticket;
  act.action = (char *)verbs[o->step];
  act.note = o->step == 1 ? "已派人到现场" : o->step == 2 ? "已处理完毕" : "";
  act.reason = o->step == 3 ? "satisfied" : "";
  Whistle__DeskRequest q = WHISTLE__DESK_REQUEST__INIT;
  q.request_id = rid;
  q.what_case = WHISTLE__DESK_REQUEST__WHAT_ACT;
  q.act = &act;
  Whistle__Envelope env = WHISTLE__ENVELOPE__INIT;
  env.message_id = rid;
  env.body_case = WHISTLE__ENVELOPE__BODY_DESK;
  env.desk = &q;
  uint8_t buf[1024];
  size_t len = whistle__envelope__get_packed_size(&env);
  if (len > sizeof buf) return -1;
  whistle__envelope__pack(&env, buf);
  if (zmq_send(sock, buf, len, 0) < 0) return -1;
  o->sent = s_now_ns();
  return 0;
}

static int s_cmp_dbl(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static void s_loop(s_bench_t *b, s_loop_t *r) {
  memset(r, 0, sizeof *r);
  s_order_t *orders = calloc((size_t)b->loop, sizeof *orders);
  double *ms = calloc((size_t)b->loop * LOOP_STEPS, sizeof *ms);
  void *socks[256] = {0};
  if (!orders || !ms) exit(3);
  /* orders on a party's feed, not the center's manual queue (which the
   * center would assign first) */
  for (size_t no = 1; no < b->nlead_of && r->orders < b->loop; no++)
    if (b->lead_of[no] && strcmp(b->parties[b->lead_of[no]], "center"))
      orders[r->orders++] = (s_order_t){.no = (int32_t)no};
  long cpu0[MAX_PROCS];
  for (int i = 0; i < b->nprocs; i++) cpu0[i] = s_proc_cpu(&b->procs[i]);
  int64_t t0 = s_now_ns(), last = t0;
  long next = 0, inflight = 0, done = 0;
  while (done < r->orders && s_now_ns() - last < STALL_NS) {
    for (; inflight < LOOP_WINDOW && next < r->orders; next++, inflight++)
      if (s_loop_send(b, socks, &orders[next])) {
        fprintf(stderr, "whistle-bench: the desk cannot be reached as %s\n",
                b->parties[b->lead_of[orders[next].no]]);
        exit(2);
      }
    zmq_pollitem_t pi[256];
    int np = 0, map[256];
    for (int k = 0; k < 256; k++)
      if (socks[k]) {
        pi[np] = (zmq_pollitem_t){socks[k], 0, ZMQ_POLLIN, 0};
        map[np++] = k;
      }
    if (zmq_poll(pi, np, 100) <= 0) continue;
    for (int i = 0; i < np; i++) {
      if (!(pi[i].revents & ZMQ_POLLIN)) continue;
      zmq_msg_t m;
      zmq_msg_init(&m);
      while (zmq_msg_recv(&m, socks[map[i]], ZMQ_DONTWAIT) >= 0) {
        int64_t now = s_now_ns();
        Whistle__Envelope *env;
        int no = 0, step = -1;
        if (wh_env_unpack_in(b->arena, zmq_msg_data(&m), zmq_msg_size(&m), &env) == 0 &&
            env->body_case == WHISTLE__ENVELOPE__BODY_DESK_REPLY &&
            sscanf(env->desk_reply->request_id, "bench-%d-%d", &no, &step) == 2) {
          /* the order is found by its number (they were taken in order) */
          long lo = 0, hi = r->orders - 1;
          while (lo < hi) {
            long mid = (lo + hi) / 2;
            if (orders[mid].no < no) lo = mid + 1; else hi = mid;
          }
          s_order_t *o = &orders[lo];
          if (o->no == no && o->step == step && o->sent) {
            ms[r->actions++] = (double)(now - o->sent) / 1e6;
            o->sent = 0;
            last = now;
            if (env->desk_reply->error) {
              r->refused++;
              o->step = LOOP_STEPS;
              done++;
              inflight--;
            } else if (++o->step == LOOP_STEPS) {
              r->closed++;
              done++;
              inflight--;
            } else if (s_loop_send(b, socks, o)) {
              exit(2);
            }
          }
        }
        s_arena_turn(b);
        zmq_msg_close(&m);
        zmq_msg_init(&m);
      }
      zmq_msg_close(&m);
    }
  }
  r->seconds = (double)(s_now_ns() - t0) / 1e9;
  r->per_s = r->seconds > 0 ? (double)r->closed / r->seconds : 0;
  if (r->actions) {
    qsort(ms, (size_t)r->actions, sizeof *ms, s_cmp_dbl);
    r->p50 = ms[r->actions / 2];
    r->p99 = ms[(size_t)((double)r->actions * 0.99)];
  }
  double tick = (double)sysconf(_SC_CLK_TCK);
  for (int i = 0; i < b->nprocs; i++)
    r->cpu_per_1k[i] = r->actions ? (double)(s_proc_cpu(&b->procs[i]) - cpu0[i]) / tick /
                                        ((double)r->actions / 1000.0)
                                  : -1;
  for (int k = 0; k < 256; k++)
    if (socks[k]) zmq_close(socks[k]);
  free(orders);
  free(ms);
}

static void s_usage(void) {
  fprintf(stderr,
          "usage: whistle-bench --intake EP --feed EP --notify EP --conf DIR [--count N]\n"
          "         [--rate R] [--seconds S] [--window W] [--seed X] [--ceiling T]\n"
          "         [--pid NAME=PID]... [--pg-pid PID] [--disk DIR] [--keys DIR]\n"
          "         [--desk EP --loop N] [--texts FILE]\n");
  exit(2);
}

static void s_add_proc(s_bench_t *b, const char *name, int pid, int is_pg) {
  if (b->nprocs == MAX_PROCS || pid <= 0) return;
  s_proc_t *p = &b->procs[b->nprocs++];
  snprintf(p->name, sizeof p->name, "%s", name);
  p->pid = pid;
  p->is_pg = is_pg;
}

/* Residents' own words, one report a line (what the catalogue places): a
 * line longer than TEXT_MAX bytes is left out, so that a ticket's text,
 * the words and the filler after them, is never cut inside a character. */
#define TEXT_MAX 400
static void s_load_texts(s_bench_t *b) {
  FILE *f = fopen(b->texts_path, "r");
  if (!f) {
    fprintf(stderr, "whistle-bench: %s: %s\n", b->texts_path, strerror(errno));
    exit(2);
  }
  char *line = NULL;
  size_t cap = 0, have = 0;
  ssize_t n;
  while ((n = getline(&line, &cap, f)) > 0) {
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
    if (!n || n > TEXT_MAX) continue;
    if (b->ntexts == have) {
      have = have ? have * 2 : 256;
      b->texts = realloc(b->texts, have * sizeof *b->texts);
    }
    b->texts[b->ntexts++] = strdup(line);
  }
  free(line);
  fclose(f);
  if (!b->ntexts) {
    fprintf(stderr, "whistle-bench: %s holds no text of at most %d bytes\n", b->texts_path, TEXT_MAX);
    exit(2);
  }
}

static void s_load_conf(s_bench_t *b) {
  char path[1024], err[512];
  snprintf(path, sizeof path, "%s/org.conf", b->conf);
  if (!(b->org = wh_org_load(path, err, sizeof err))) {
    fprintf(stderr, "whistle-bench: %s\n", err);
    exit(2);
  }
  snprintf(path, sizeof path, "%s/rules.conf", b->conf);
  if (!(b->rules = wh_rules_load(path, b->org, err, sizeof err))) {
    fprintf(stderr, "whistle-bench: %s\n", err);
    exit(2);
  }
  if (b->texts_path) s_load_texts(b);
  b->keywords = calloc(b->ntexts + b->rules->nrules + 1, sizeof *b->keywords);
  for (size_t i = 0; i < b->ntexts; i++) b->keywords[b->nkeywords++] = b->texts[i];
  for (size_t i = 0; i < b->rules->nrules; i++) {
    const wh_rule_t *r = &b->rules->rules[i];
    if (!r->category && r->any && r->any[0]) b->keywords[b->nkeywords++] = r->any[0];
  }
}

int main(int argc, char **argv) {
  s_bench_t b = {.count = 100000, .rate = 500, .seconds = 30, .window = 1024, .seed = 12345};
  static const struct option opts[] = {
      {"intake", 1, 0, 'i'}, {"feed", 1, 0, 'f'},    {"notify", 1, 0, 'n'},
      {"conf", 1, 0, 'c'},   {"count", 1, 0, 'N'},   {"rate", 1, 0, 'r'},
      {"seconds", 1, 0, 's'}, {"window", 1, 0, 'w'}, {"seed", 1, 0, 'x'},
      {"ceiling", 1, 0, 'C'}, {"pid", 1, 0, 'p'},    {"pg-pid", 1, 0, 'g'},
      {"disk", 1, 0, 'd'},   {"keys", 1, 0, 'k'},    {"desk", 1, 0, 'D'},
      {"loop", 1, 0, 'L'},   {"texts", 1, 0, 'T'},   {0, 0, 0, 0}};
  const char *disk = NULL;
  int o;
  while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (o) {
    case 'i': b.intake = optarg; break;
    case 'f': b.feed = optarg; break;
    case 'n': b.notify = optarg; break;
    case 'c': b.conf = optarg; break;
    case 'N': b.count = atol(optarg); break;
    case 'r': b.rate = atol(optarg); break;
    case 's': b.seconds = atol(optarg); break;
    case 'w': b.window = atol(optarg); break;
    case 'x': b.seed = strtoull(optarg, NULL, 0); break;
    case 'C': b.ceiling = atof(optarg); break;
    case 'p': {
      char *eq = strchr(optarg, '=');
      if (!eq) s_usage();
      *eq = '\0';
      s_add_proc(&b, optarg, atoi(eq + 1), 0);
      break;
    }
    case 'g': s_add_proc(&b, "postgres", atoi(optarg), 1); break;
    case 'd': disk = optarg; break;
    case 'k': b.keys = optarg; break;
    case 'D': b.desk = optarg; break;
    case 'L': b.loop = atol(optarg); break;
    case 'T': b.texts_path = optarg; break;
    default: s_usage();
    }
  }
  if (b.nprocs) { /* measuring: the load generator's own share of the machine, too */
    s_add_proc(&b, "loadgen", getpid(), 0);
    b.procs[b.nprocs - 1].is_self = 1;
  }
  if (!b.intake || !b.feed || !b.notify || !b.conf || b.count < 1 || b.rate < 1 ||
      b.seconds < 1 || b.window < 1)
    s_usage();
  wh_clock_init();
  s_load_conf(&b);

  long nlat = b.rate * b.seconds;
  b.total = b.count + nlat;
  b.submit_ns = calloc((size_t)b.total, sizeof *b.submit_ns);
  b.submit_ms = calloc((size_t)b.total, sizeof *b.submit_ms);
  b.tno = calloc((size_t)b.total, sizeof *b.tno);
  b.state = calloc((size_t)b.total, 1);
  if (!(b.arena = wh_arena_new())) return 3;
  b.ctx = zmq_ctx_new();
  b.front = zmq_socket(b.ctx, ZMQ_DEALER);
  b.sub = zmq_socket(b.ctx, ZMQ_SUB);
  int linger = 0, hwm = 1000000;
  zmq_setsockopt(b.front, ZMQ_LINGER, &linger, sizeof linger);
  zmq_setsockopt(b.front, ZMQ_SNDHWM, &hwm, sizeof hwm);
  zmq_setsockopt(b.front, ZMQ_RCVHWM, &hwm, sizeof hwm);
  zmq_setsockopt(b.sub, ZMQ_LINGER, &linger, sizeof linger);
  zmq_setsockopt(b.sub, ZMQ_RCVHWM, &hwm, sizeof hwm);
  zmq_setsockopt(b.sub, ZMQ_SUBSCRIBE, "", 0); /* every party's feed */
  if (s_secure(&b, b.front, "hotline", "intake") || s_secure(&b, b.sub, "center", "notify"))
    return 2;
  if (!b.submit_ns || !b.submit_ms || !b.tno || !b.state || zmq_connect(b.front, b.intake) ||
      zmq_connect(b.sub, b.feed)) {
    fprintf(stderr, "whistle-bench: cannot connect: %s\n", zmq_strerror(errno));
    return 2;
  }
  usleep(300000); /* let the subscription reach notify before the first item */

  s_result_t thr = {0}, lat = {0};
  printf("throughput: %ld tickets, at most %ld unanswered\n", b.count, b.window);
  fflush(stdout);
  long long total0, steal0;
  char stolen[96];
  s_machine_cpu(&total0, &steal0);
  s_throughput(&b, 0, b.count, &thr);
  printf("  %ld arrived on their lead's feed in %.2f s: %.0f tickets/s%s%s\n", thr.tickets,
         thr.seconds, thr.per_s, thr.missing ? " (some never arrived live)" : "",
         s_stolen(total0, steal0, stolen, sizeof stolen));
  printf("latency: %ld tickets/s for %ld s\n", b.rate, b.seconds);
  fflush(stdout);
  s_machine_cpu(&total0, &steal0);
  s_latency(&b, b.count, b.total, &lat);
  printf("  p50 %.1f ms  p99 %.1f ms  p99.9 %.1f ms  max %.1f ms over %ld tickets%s\n", lat.p50,
         lat.p99, lat.p999, lat.max, lat.tickets, s_stolen(total0, steal0, stolen, sizeof stolen));
  double flush[4] = {-1, -1, -1, -1};
  if (disk) {
    long n = s_disk_probe(disk, flush);
    if (n > 0)
      printf("disk: 8 KB written and flushed every 2 ms for %d s beside the cluster: p50 %.1f ms"
             "  p99 %.1f ms  p99.9 %.1f ms  max %.1f ms over %ld flushes\n",
             DISK_PROBE_S, flush[0], flush[1], flush[2], flush[3], n);
    else
      fprintf(stderr, "whistle-bench: %s: cannot probe the disk: %s\n", disk, strerror(errno));
  }
  printf("durable check: replaying every party's feed\n");
  fflush(stdout);
  long lost = -1, duplicated = -1, items = 0;
  if (s_durable_check(&b, &lost, &duplicated, &items)) {
    fprintf(stderr, "whistle-bench: the feeds could not be replayed; lost and duplicated unknown\n");
    lost = duplicated = -1;
  }
  printf("  %ld feed items; %ld accepted tickets, %ld refused, %ld lost, %ld duplicated"
         " (%ld repeated on the live feed, %ld resent after a store failure)\n",
         items, b.accepted, b.refused, lost, duplicated, b.live_repeats, b.resent);

  s_loop_t lp = {0};
  if (b.desk && b.loop > 0 && b.keys) {
    printf("loop: %ld orders signed, progressed, resolved and fed back at the desk, %d at a time\n",
           b.loop, LOOP_WINDOW);
    fflush(stdout);
    s_loop(&b, &lp);
    printf("  %ld closed of %ld in %.2f s: %.0f orders closed/s; an action p50 %.1f ms, p99 %.1f ms"
           " (%ld actions, %ld refused)\n",
           lp.closed, lp.orders, lp.seconds, lp.per_s, lp.p50, lp.p99, lp.actions, lp.refused);
    for (int i = 0; i < b.nprocs; i++)
      printf("  %-10s %.3f cpu s / 1k actions\n", b.procs[i].name, lp.cpu_per_1k[i]);
  }

  if (b.duplicates)
    fprintf(stderr, "whistle-bench: intake had seen %ld of these tickets before; run on a fresh stack\n",
            b.duplicates);
  double k = (double)thr.tickets / 1000.0, tick = (double)sysconf(_SC_CLK_TCK);
  printf("\n%-10s %14s %12s %12s %12s\n", "process", "cpu s / 1k", "rss@10k kB", "rss@end kB",
         "peak kB");
  json_object *cpu = json_object_new_object(), *rss = json_object_new_object();
  for (int i = 0; i < b.nprocs; i++) {
    s_proc_t *p = &b.procs[i];
    double c = k > 0 && p->cpu_end >= p->cpu_start ? (double)(p->cpu_end - p->cpu_start) / tick / k
                                                    : -1;
    json_object_object_add(cpu, p->name, s_num(c, "%.3f"));
    if (p->is_pg || p->is_self) {
      printf("%-10s %14.3f %12s %12s %12s\n", p->name, c, "-", "-", "-");
      continue;
    }
    printf("%-10s %14.3f %12ld %12ld %12ld\n", p->name, c, p->rss_10k, p->rss_end, p->hwm);
    json_object *r = json_object_new_object();
    json_object_object_add(r, "after_10k", json_object_new_int64(p->rss_10k));
    json_object_object_add(r, "after_all", json_object_new_int64(p->rss_end));
    json_object_object_add(r, "peak", json_object_new_int64(p->hwm));
    json_object_object_add(rss, p->name, r);
  }
  double ratio = b.ceiling > 0 ? thr.per_s / b.ceiling : 0;
  printf("\n%-34s %12.0f\n%-34s %12.0f\n%-34s %12.3f\n", "whistle, tickets/s", thr.per_s,
         "ceiling (pgbench), tickets/s", b.ceiling, "ratio", ratio);
  printf("%-34s %12ld\n%-34s %12.1f\n%-34s %12.1f\n%-34s %12.1f\n%-34s %12.1f\n",
         "latency at tickets/s", b.rate, "p50 ms", lat.p50, "p99 ms", lat.p99, "p99.9 ms", lat.p999,
         "max ms", lat.max);
  if (flush[2] >= 0)
    printf("%-34s %12.1f\n", "the disk's own flush, p99.9 ms", flush[2]);
  printf("%-34s %12ld\n%-34s %12ld\n", "lost", lost, "duplicated", duplicated);

  json_object *j = json_object_new_object();
#define R2(x) s_num(x, "%.2f")
  json_object_object_add(j, "tickets_per_s", json_object_new_int64((int64_t)(thr.per_s + 0.5)));
  json_object_object_add(j, "ceiling_tickets_per_s", json_object_new_int64((int64_t)(b.ceiling + 0.5)));
  json_object_object_add(j, "ratio", s_num(ratio, "%.3f"));
  json_object_object_add(j, "rate", json_object_new_int64(b.rate));
  json_object_object_add(j, "p50_ms", R2(lat.p50));
  json_object_object_add(j, "p99_ms", R2(lat.p99));
  json_object_object_add(j, "p999_ms", R2(lat.p999));
  json_object_object_add(j, "max_ms", R2(lat.max));
  json_object_object_add(j, "lost", json_object_new_int64(lost));
  json_object_object_add(j, "duplicated", json_object_new_int64(duplicated));
  json_object_object_add(j, "rss_kb", rss);
  json_object_object_add(j, "cpu_s_per_1k", cpu);
  if (flush[2] >= 0) {
    json_object_object_add(j, "disk_flush_p999_ms", R2(flush[2]));
    json_object_object_add(j, "disk_flush_max_ms", R2(flush[3]));
  }
  if (lp.orders) {
    json_object *l = json_object_new_object(), *lc = json_object_new_object();
    json_object_object_add(l, "orders", json_object_new_int64(lp.orders));
    json_object_object_add(l, "closed", json_object_new_int64(lp.closed));
    json_object_object_add(l, "refused", json_object_new_int64(lp.refused));
    json_object_object_add(l, "closed_per_s", R2(lp.per_s));
    json_object_object_add(l, "action_p50_ms", R2(lp.p50));
    json_object_object_add(l, "action_p99_ms", R2(lp.p99));
    for (int i = 0; i < b.nprocs; i++)
      json_object_object_add(lc, b.procs[i].name, s_num(lp.cpu_per_1k[i], "%.3f"));
    json_object_object_add(l, "cpu_s_per_1k_actions", lc);
    json_object_object_add(j, "loop", l);
    printf("%-34s %12.1f\n%-34s %12.1f\n", "orders closed/s at the desk", lp.per_s,
           "an action's p99 ms", lp.p99);
  }
  printf("%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN));
  json_object_put(j);

  zmq_close(b.front);
  zmq_close(b.sub);
  zmq_ctx_term(b.ctx);
  wh_rules_destroy(&b.rules);
  wh_org_destroy(&b.org);
  free(b.keywords);
  for (size_t i = 0; i < b.ntexts; i++) free(b.texts[i]);
  free(b.texts);
  free(b.submit_ns);
  free(b.submit_ms);
  free(b.hops);
  free(b.tno);
  free(b.state);
  free(b.arrive_ns);
  free(b.lead_of);
  free(b.retry_idx);
  free(b.retry_at);
  free(b.pre);
  free(b.pre_off);
  wh_arena_destroy(&b.arena);
  return lost == 0 && duplicated == 0 && b.refused == 0 && lp.refused == 0 &&
                 lp.closed == lp.orders
             ? 0
             : 1;
}
