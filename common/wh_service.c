/* wh_service - flags, loop, context, database, signals. */
#include "wh_service.h"
#include "wh_admin.h"
#include "wh_outbox.h"
#include "wh_clock.h"
#include "wh_log.h"

#include <getopt.h>
#include <stdio.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

static void s_usage(const char *name) {
  fprintf(stderr,
          "usage: whistle-%s --db CONNINFO --listen ENDPOINT [--peer ENDPOINT] [--pub ENDPOINT]\n"
          "                  --keys DIR [--admin ENDPOINT] [--conf-dir DIR] [--sink FILE]\n"
          "  --keys DIR  this service's NAME.key and everyone's public keys (WHISTLE_KEYS);\n"
          "              --insecure (WHISTLE_INSECURE=1) runs without, to measure CURVE's cost\n"
          "  --admin EP  where the center lists parked messages and sends them again\n"
          "              (answered for the key of WHISTLE_CENTER, default center)\n"
          "  --desk EP   (dispatch) where the parties act on their work orders and read them\n"
          "  --ask EP    (triage) where the center tries the decision a report would get\n"
          "  --contacts EP  (intake) where notify asks for a reporter's number;\n"
          "              (notify) where it asks, at each attempt to send a message\n"
          "  --lessons EP (triage) where dispatch tells it the classes the center gave\n"
          "              by hand; (dispatch) where it tells them\n",
          name);
}

static void s_on_stop_signal(uv_signal_t *h, int signum) {
  wh_service_t *svc = h->data;
  wh_info("signal %d: stopping", signum);
  uv_stop(svc->loop);
}

static void s_on_hup(uv_signal_t *h, int signum) {
  (void)signum;
  wh_service_t *svc = h->data;
  wh_info("SIGHUP: reloading configuration");
  char err[512];
  if (svc->keys && wh_keys_reload(svc->keys, err, sizeof err))
    wh_error("keys not reloaded, the keyring in force stays: %s", err);
  if (svc->on_reload) svc->on_reload(svc);
}

void wh_service_conf_path(const wh_service_t *svc, const char *file, char *out, size_t outlen) {
  snprintf(out, outlen, "%s/%s", svc->conf_dir ? svc->conf_dir : "deploy/demo", file);
}

wh_org_t *wh_service_org(const wh_service_t *svc) {
  char path[512], err[512];
  wh_service_conf_path(svc, "org.conf", path, sizeof path);
  wh_org_t *org = wh_org_load(path, err, sizeof err);
  if (!org) wh_error("%s", err);
  return org;
}

static void s_clock_moved(void *arg) {
  wh_service_t *svc = arg;
  if (svc->on_clock) svc->on_clock(svc);
}

/* How a service's statements are planned. Each is prepared once per
 * connection and planned once, with no parameter values (a plan per use cost
 * 0.1-0.4 ms a statement, more than most of them take to run; and for a batch
 * insert PostgreSQL would otherwise go on planning each use, because a plan
 * for one row looks cheaper than the plan for any number of rows). A service
 * only ever finds rows by key, through an index: sequential scans are off, so
 * that a plan made while a table was empty, when scanning it whole looked
 * cheapest, does not go on scanning it whole as it grows. */
static const char s_session[] =
    "-c plan_cache_mode=force_generic_plan -c enable_seqscan=off";

static void s_on_trim(uv_timer_t *t);

int wh_service_init(wh_service_t *svc, const char *name, int argc, char **argv,
                    const wh_migration_t *const *migrations) {
  memset(svc, 0, sizeof *svc);
  svc->name = name;
  wh_log_init(name);
  wh_clock_init();
  svc->db = getenv("WHISTLE_DB");
  svc->conf_dir = getenv("WHISTLE_CONF_DIR");
  svc->keys_dir = getenv("WHISTLE_KEYS");
  const char *center = getenv("WHISTLE_CENTER");
  svc->center = center && *center ? center : "center";
  const char *insecure_env = getenv("WHISTLE_INSECURE");
  int insecure = insecure_env && !strcmp(insecure_env, "1");
  static const struct option opts[] = {
      {"db", required_argument, 0, 'd'},     {"listen", required_argument, 0, 'l'},
      {"peer", required_argument, 0, 'p'},   {"pub", required_argument, 0, 'P'},
      {"conf-dir", required_argument, 0, 'c'}, {"sink", required_argument, 0, 's'},
      {"keys", required_argument, 0, 'k'},   {"insecure", no_argument, 0, 'i'},
      {"admin", required_argument, 0, 'a'},  {"desk", required_argument, 0, 'K'},
      {"contacts", required_argument, 0, 'N'}, {"ask", required_argument, 0, 'T'},
      {"lessons", required_argument, 0, 'L'},
      {"help", no_argument, 0, 'h'},         {0, 0, 0, 0}};
  int ch;
  while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (ch) {
    case 'd': svc->db = optarg; break;
    case 'l': svc->listen = optarg; break;
    case 'p': svc->peer = optarg; break;
    case 'P': svc->pub = optarg; break;
    case 'c': svc->conf_dir = optarg; break;
    case 's': svc->sink = optarg; break;
    case 'k': svc->keys_dir = optarg; break;
    case 'i': insecure = 1; break;
    case 'a': svc->admin_ep = optarg; break;
    case 'K': svc->desk_ep = optarg; break;
    case 'N': svc->contacts_ep = optarg; break;
    case 'T': svc->ask_ep = optarg; break;
    case 'L': svc->lessons_ep = optarg; break;
    default: s_usage(name); return 2;
    }
  }
  if (!svc->db || !svc->listen || (!svc->keys_dir && !insecure)) {
    s_usage(name);
    return 2;
  }
  svc->loop = uv_default_loop();
  svc->zctx = zmq_ctx_new();
  if (insecure) {
    wh_warn("--insecure: no CURVE; any process that reaches a socket speaks as anyone");
  } else {
    char err[512];
    svc->keys = wh_keys_load(svc->keys_dir, name, err, sizeof err);
    if (!svc->keys) {
      wh_error("keys: %s", err);
      return wh_service_end(svc, 2);
    }
    svc->zap = wh_zap_new(svc->loop, svc->zctx, svc->keys);
    if (!svc->zap) return wh_service_end(svc, 2);
  }
  svc->pg = wh_pg_new(svc->db, migrations);
  if (!svc->pg) return wh_service_end(svc, 2);
  wh_pg_set_session(svc->pg, s_session);
  svc->outbox = wh_outbox_new(svc->pg);
  if (!svc->outbox) return wh_service_end(svc, 2);
  if (svc->admin_ep && !(svc->admin = wh_admin_new(svc->loop, svc->zctx, svc->keys, svc->outbox,
                                                   name, svc->center, svc->admin_ep)))
    return wh_service_end(svc, 2);
  wh_admin_on_clock(svc->admin, s_clock_moved, svc);
  int waited_ms = 0;
  while (wh_pg_ready(svc->pg)) {
    if (waited_ms >= 60000) {
      wh_error("database not reachable after 60 s; giving up");
      return wh_service_end(svc, 2);
    }
    usleep(250 * 1000);
    waited_ms += 250;
  }
  uv_signal_init(svc->loop, &svc->sig_int);
  uv_signal_init(svc->loop, &svc->sig_term);
  uv_signal_init(svc->loop, &svc->sig_hup);
  svc->sig_int.data = svc->sig_term.data = svc->sig_hup.data = svc;
  uv_signal_start(&svc->sig_int, s_on_stop_signal, SIGINT);
  uv_signal_start(&svc->sig_term, s_on_stop_signal, SIGTERM);
  uv_signal_start(&svc->sig_hup, s_on_hup, SIGHUP);
  /* A burst leaves freed batches, envelopes and results in the heap; give
   * them back once a second, so a service's size follows its work, not
   * its busiest moment. */
  uv_timer_init(svc->loop, &svc->trim);
  uv_timer_start(&svc->trim, s_on_trim, 1000, 1000);
  uv_unref((uv_handle_t *)&svc->trim);
  return 0;
}

static void s_on_trim(uv_timer_t *t) {
  (void)t;
  malloc_trim(0);
}

static void s_close_any(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h)) uv_close(h, NULL);
}

int wh_service_run(wh_service_t *svc) {
  wh_info("running");
  uv_run(svc->loop, UV_RUN_DEFAULT);
  return wh_service_end(svc, 0);
}

int wh_service_end(wh_service_t *svc, int code) {
  if (svc->on_stop) svc->on_stop(svc);
  svc->on_stop = NULL;
  wh_admin_destroy(&svc->admin);
  wh_zap_destroy(&svc->zap);
  if (svc->loop) {
    /* Let the close callbacks the service queued run, then close the rest. */
    uv_run(svc->loop, UV_RUN_NOWAIT);
    uv_walk(svc->loop, s_close_any, NULL);
    uv_run(svc->loop, UV_RUN_DEFAULT);
    uv_loop_close(svc->loop);
    svc->loop = NULL;
  }
  wh_keys_destroy(&svc->keys);
  wh_outbox_destroy(&svc->outbox);
  wh_pg_destroy(&svc->pg);
  if (svc->zctx) zmq_ctx_term(svc->zctx);
  svc->zctx = NULL;
  if (!code) wh_info("stopped");
  return code;
}
