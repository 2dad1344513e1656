/* triage - colour, level and parties for every report, and repeats merged. */
#ifndef WH_TRIAGE_H
#define WH_TRIAGE_H

#include "wh_service.h"

/* Starts triage on an initialised service. Returns 0 or an error. */
int triage_start(wh_service_t *svc);

#endif
