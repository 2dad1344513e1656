/* whistle-intake - the front door: channels push reports here. */
#include "intake.h"

extern const wh_migration_t *const intake_migrations[];

int main(int argc, char **argv) {
  wh_service_t svc;
  if (wh_service_init(&svc, "intake", argc, argv, intake_migrations)) return 2;
  if (intake_start(&svc)) return wh_service_end(&svc, 2);
  return wh_service_run(&svc);
}
