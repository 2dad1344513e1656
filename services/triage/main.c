/* whistle-triage - colour, level and parties for every report. */
#include "triage.h"

extern const wh_migration_t *const triage_migrations[];

int main(int argc, char **argv) {
  wh_service_t svc;
  if (wh_service_init(&svc, "triage", argc, argv, triage_migrations)) return 2;
  if (triage_start(&svc)) return wh_service_end(&svc, 2);
  return wh_service_run(&svc);
}
