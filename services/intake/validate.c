/* validate - every check a report must pass before intake stores it.
 *
 * Nothing here touches the database: a report that fails is answered with a
 * code and a sentence, and leaves no trace. */
#include "intake.h"
#include "wh_err.h"
#include "wh_text.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static int s_fail(int rc, const char *field, char *detail, size_t len) {
  snprintf(detail, len, "%s: %s", field, wh_strerror(rc));
  return rc;
}

int intake_validate(const wh_rules_t *rules, const Whistle__SubmitTicket *t, int64_t now_ms,
                    char *detail, size_t len) {
  int rc;
  if (t->source <= WHISTLE__SOURCE__SOURCE_UNSPECIFIED || t->source > WHISTLE__SOURCE__SOURCE_WALK_IN)
    return s_fail(WH_ESOURCE, "source", detail, len);
  if ((rc = wh_code_check(t->external_id, INTAKE_MAX_ID)))
    return s_fail(rc, "external_id", detail, len);
  if (t->received_at_ms == 0) return s_fail(WH_EMISSING, "received_at", detail, len);
  if (t->received_at_ms < INTAKE_EARLIEST_MS || t->received_at_ms > now_ms + INTAKE_FUTURE_SLACK_MS)
    return s_fail(WH_ETIME, "received_at (before 2000 or in the future)", detail, len);
  if ((rc = wh_code_check(t->community, INTAKE_MAX_COMMUNITY)))
    return s_fail(rc, "community", detail, len);
  if (strchr(t->community, '.')) return s_fail(WH_EFIELD, "community", detail, len);
  if ((rc = wh_text_check(t->grid, 1, INTAKE_MAX_GRID))) return s_fail(rc, "grid", detail, len);
  if ((rc = wh_text_check(t->address, 0, INTAKE_MAX_ADDRESS)))
    return s_fail(rc, "address", detail, len);
  if ((rc = wh_text_check(t->text, 1, INTAKE_MAX_TEXT))) return s_fail(rc, "text", detail, len);
  if (t->category[0]) {
    if ((rc = wh_code_check(t->category, 48))) return s_fail(rc, "category", detail, len);
    if (!wh_rules_category(rules, t->category)) {
      snprintf(detail, len, "category: unknown category '%s'", t->category);
      return WH_ECATEGORY;
    }
  }
  if (t->reporter) {
    if ((rc = wh_text_check(t->reporter->name, 0, INTAKE_MAX_NAME)))
      return s_fail(rc, "reporter.name", detail, len);
    if (t->reporter->phone[0] && wh_phone_check(t->reporter->phone))
      return s_fail(WH_EPHONE, "reporter.phone", detail, len);
  }
  if (t->n_care_tags > INTAKE_MAX_TAGS) return s_fail(WH_ETOOLONG, "care_tags", detail, len);
  for (size_t i = 0; i < t->n_care_tags; i++) {
    if ((rc = wh_code_check(t->care_tags[i], 32))) return s_fail(rc, "care_tags", detail, len);
    if (!wh_rules_care_known(rules, t->care_tags[i])) {
      snprintf(detail, len, "care_tags: unknown care tag '%s'", t->care_tags[i]);
      return WH_EFIELD;
    }
  }
  if (t->location) {
    double lat = t->location->lat, lng = t->location->lng;
    if (!isfinite(lat) || !isfinite(lng) || lat < -90 || lat > 90 || lng < -180 || lng > 180 ||
        (lat == 0 && lng == 0))
      return s_fail(WH_ELOCATION, "location", detail, len);
  }
  return 0;
}
