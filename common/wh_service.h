/* wh_service - what every whistle service does before and around its work.
 *
 * Parses the common flags (each with an environment fallback), starts the
 * libuv loop and the ZeroMQ context, waits for the service's database, and
 * turns SIGINT/SIGTERM into a clean stop and SIGHUP into a reload callback. */
#ifndef WH_SERVICE_H
#define WH_SERVICE_H

#include <uv.h>

#include "wh_keys.h"
#include "wh_org.h"
#include "wh_pg.h"

typedef struct wh_service_s {
  const char *name;
  uv_loop_t *loop;
  void *zctx;
  wh_pg_t *pg;
  /* The service's outbox (its table), which its relays share. */
  struct wh_outbox_s *outbox;
  /* Flags; NULL when not given. */
  const char *db;        /* --db / WHISTLE_DB: libpq conninfo */
  const char *listen;    /* --listen: where this service binds its ROUTER */
  const char *peer;      /* --peer: the next service's ROUTER */
  const char *pub;       /* --pub: notify's feed publisher */
  const char *conf_dir;  /* --conf-dir / WHISTLE_CONF_DIR: org, rules, calendar */
  const char *sink;      /* --sink: notify's reporter log file */
  const char *keys_dir;  /* --keys / WHISTLE_KEYS: the key directory */
  const char *admin_ep;  /* --admin: where the center's admin requests come */
  const char *desk_ep;   /* --desk: dispatch's request socket for the parties */
  const char *ask_ep;    /* --ask: triage's request socket, where the center tries a report */
  /* --contacts: where intake answers notify's requests for reporters'
   * numbers (intake binds it, notify connects to it). */
  const char *contacts_ep;
  /* --lessons: where triage takes what the center taught by hand (assign
   * --class) from dispatch (triage binds it, dispatch connects to it). */
  const char *lessons_ep;
  /* The party whose key the admin socket answers, and who supervises every
   * feed (WHISTLE_CENTER; default "center"). */
  const char *center;
  struct wh_admin_s *admin;
  /* This service's key pair and the public keys of everyone it talks with:
   * every socket is CURVE. NULL only when started --insecure
   * (WHISTLE_INSECURE=1), which measures what CURVE costs. */
  wh_keys_t *keys;
  wh_zap_t *zap;
  void (*on_reload)(struct wh_service_s *svc);
  /* The business clock was moved (tests only): re-arm what waits on it. */
  void (*on_clock)(struct wh_service_s *svc);
  void (*on_stop)(struct wh_service_s *svc);
  void *data;
  uv_signal_t sig_int, sig_term, sig_hup;
  uv_timer_t trim; /* hands freed heap back to the system now and then */
} wh_service_t;

/* Parses argv, opens loop and context, loads the keyring and answers ZAP,
 * connects the database (migrating it) with retries for up to 60 s. Returns 0, or prints why and returns 2. */
int wh_service_init(wh_service_t *svc, const char *name, int argc, char **argv,
                    const wh_migration_t *const *migrations);
/* Runs the loop until a stop signal; then calls on_stop, closes every
 * handle and frees what init made. Returns the process exit code. */
int wh_service_run(wh_service_t *svc);
/* The second half of wh_service_run, for a service that could not start:
 * calls on_stop (which must take what start made so far), closes every
 * handle, frees what init made; returns code. */
int wh_service_end(wh_service_t *svc, int code);
/* Writes "<conf_dir>/<file>" into out. */
void wh_service_conf_path(const wh_service_t *svc, const char *file, char *out, size_t outlen);
/* The org chart of the configuration directory, or NULL (the error logged,
 * with file and line). */
wh_org_t *wh_service_org(const wh_service_t *svc);

#endif
