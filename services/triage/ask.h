/* ask - triage's request socket, where the command center tries a report.
 *
 * A CURVE ROUTER (--ask ENDPOINT). A TriageTry is answered with the
 * TriageAnswer the report would get: colour, level, parties, class, the
 * rule and the words that decided, the danger signal, the place and the
 * runner-up classes, and what the center's examples suggest where no rule
 * places it, worked out by the rules and catalogue in force, as
 * for a real report, and stored nowhere. Only the center's key is
 * answered (an operator tries a phrasing before adding it to the
 * catalogue); any other party, and every peer of a service started
 * --insecure, is refused. A bad report (invalid UTF-8, oversize text, an
 * unknown community, category or care tag) is refused with the field that
 * is wrong. A turn of the loop answers a few requests, so a flood of them
 * does not keep triage from its reports. */
#ifndef WH_TRIAGE_ASK_H
#define WH_TRIAGE_ASK_H

#include "wh_org.h"
#include "wh_rules.h"
#include "wh_service.h"

typedef struct triage_ask_s triage_ask_t;

/* Binds the request socket at endpoint for svc (its loop, context, keys
 * and center). org and rules point at the ones in force (a reload swaps
 * them). Returns NULL (logged) on failure. */
triage_ask_t *triage_ask_new(wh_service_t *svc, wh_org_t *const *org, wh_rules_t *const *rules,
                             wh_learn_t *learned, const char *endpoint);
void triage_ask_destroy(triage_ask_t **self_p);

#endif
