/* dispatch - work orders, their deadlines, and the clocks that watch them. */
#ifndef WH_DISPATCH_H
#define WH_DISPATCH_H

#include "wh_service.h"

/* The longest summary: class, place, an address of 512 characters and a
 * text of 4,000, each character up to 4 bytes (intake's limits). */
#define DISPATCH_SUMMARY_MAX (19 * 1024)

/* "<class> @ <community>/<grid> <address>: <text>", for the party reading
 * its feed; cut to fit buf. */
void dispatch_summary(char *buf, size_t len, const char *klass, const char *community,
                      const char *grid, const char *address, const char *text);

/* Starts dispatch on an initialised service. Returns 0 or an error. */
int dispatch_start(wh_service_t *svc);

#endif
