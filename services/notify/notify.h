/* notify - party feeds with sequence and replay; messages to reporters. */
#ifndef WH_NOTIFY_H
#define WH_NOTIFY_H

#include "wh_service.h"

/* Starts notify on an initialised service. Returns 0 or an error. */
int notify_start(wh_service_t *svc);

#endif
