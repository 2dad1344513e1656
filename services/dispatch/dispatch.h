/* dispatch - work orders, their deadlines, and the clocks that watch them. */
#ifndef WH_DISPATCH_H
#define WH_DISPATCH_H

#include "wh_service.h"

/* Starts dispatch on an initialised service. Returns 0 or an error. */
int dispatch_start(wh_service_t *svc);

#endif
