/* intake - the front door: validate, de-duplicate, store, answer, pass on. */
#ifndef WH_INTAKE_H
#define WH_INTAKE_H

#include <stddef.h>
#include <stdint.h>

#include "wh_rules.h"
#include "wh_service.h"
#include "whistle.pb-c.h"

/* Longest accepted field values, in bytes. */
/* Free-text limits are in characters (wh_text_check), codes in bytes. */
#define INTAKE_MAX_ID 64
#define INTAKE_MAX_COMMUNITY 64
#define INTAKE_MAX_GRID 64
#define INTAKE_MAX_ADDRESS 512
#define INTAKE_MAX_TEXT 4000
#define INTAKE_MAX_NAME 64
#define INTAKE_MAX_TAGS 8
#define INTAKE_MAX_TRACE 128 /* the pusher's trace id, carried to every service */
#define INTAKE_FUTURE_SLACK_MS (5 * 60 * 1000)
#define INTAKE_EARLIEST_MS 946684800000LL /* 2000-01-01T00:00:00Z */

/* Checks a submission against every front-door rule; rules (borrowed) give
 * the known categories and care tags, now_ms the time. Returns 0, or a WH_E*
 * code with a sentence naming the field in detail. */
int intake_validate(const wh_rules_t *rules, const Whistle__SubmitTicket *t, int64_t now_ms,
                    char *detail, size_t detail_len);

/* Starts intake on an initialised service. Returns 0 or an error. */
int intake_start(wh_service_t *svc);

#endif
