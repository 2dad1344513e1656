/* desk - dispatch's request socket, where the parties act on their work
 * orders and read them.
 *
 * A CURVE ROUTER (--desk ENDPOINT). Who asks is the party its key names
 * (ZAP's User-Id), never a field of the request. A DeskRequest is one of:
 *   act   an action of the work order's table (machine.h): the order is
 *         read under its row lock, the asking party's roles on it worked
 *         out from its lead and co-parties (the center and the hotline
 *         integrator by their codes), and wo_decide answers. A refusal
 *         changes nothing. A taken action moves the order (its version
 *         fences the update), writes the event on its timeline, puts a
 *         WORK_ACTED event in the outbox for notify (feeds and the
 *         reporter), an assign --class also a ClassTaught message for triage
 *         (the order's text an example of the class the center gave), and
 *         records the answer under the party's request id,
 *         all in one transaction: the same id again gets the same answer
 *         and changes nothing more (for at least DESK_REQUEST_KEEP_H hours).
 *   show  one order, with its parts, clocks, ladder steps and whole
 *         timeline (a party a ladder step reached reads it too);
 *   list  a page of orders, filtered, after a cursor.
 * A party sees the orders it has a role on; the center and the hotline
 * integrator see all. Requests are taken from the socket into a bounded
 * queue and answered from the loop's idle phase, a few a turn, never inside
 * the receive callback. */
#ifndef WH_DISPATCH_DESK_H
#define WH_DISPATCH_DESK_H

#include "clocks.h"
#include "wh_calendar.h"
#include "wh_org.h"
#include "wh_outbox.h"
#include "wh_rules.h"
#include "wh_service.h"

/* Hours an answer is kept under its request id, at least. */
#define DESK_REQUEST_KEEP_H 25

typedef struct desk_s desk_t;

typedef struct {
  wh_service_t *svc;          /* borrowed: loop, context, keys, database */
  wh_relay_t *relay;          /* borrowed: the outbox's relay to notify */
  /* borrowed, may be NULL: the outbox's relay to triage, which an assign
   * --class tells the class the center gave (triage learns from it) */
  wh_relay_t *lessons;
  /* borrowed: the rules in force, whose catalogue --class must name */
  wh_rules_t *const *rules;
  wh_calendar_t *const *cal;  /* borrowed: the calendar in force (reloads swap it) */
  wh_org_t *const *org;       /* borrowed: the org chart in force */
  const char *hotline;        /* the hotline integrator's party code */
  /* The clock policy of id (an order's frozen one; 0: the one in force). */
  const clk_policy_t *(*policy)(void *arg, uint32_t id);
  /* Called after an action committed that set a deadline due at due_ms,
   * so the clock's timer can be moved earlier. */
  void (*deadline)(void *arg, int64_t due_ms);
  void *arg;
} desk_conf_t;

/* Binds the desk at endpoint. Returns NULL (logged) on failure. */
desk_t *desk_new(const desk_conf_t *conf, const char *endpoint);
void desk_destroy(desk_t **self_p);

#endif
